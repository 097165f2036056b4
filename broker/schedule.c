/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Renewal rules (DESIGN.md, "Lease lifecycle"), kept free of clocks and I/O:
 *
 * - A lease ends at the earlier of its own expiry and the end of the token that created it: Vault
 *   revokes every lease of a token when the token goes, whatever the lease's TTL says.
 * - It is handed out only while at least max(1 s, 10% of its TTL) is left (the cutoff), so a caller
 *   never receives a credential that dies while it connects. Its TTL is the nominal one, or the
 *   shorter life the last answer really has (token ending first, renewal capped).
 * - A renewable lease that ends before its token is renewed at about two thirds of the time left,
 *   with bounded jitter. Its first renewal falls anywhere between 10% and 73% of its first life, at
 *   a point fixed by the lease (its phase): leases issued together (a boot, a login storm) renew
 *   spread over a whole renewal period, and from then on every 60-73% keeps them spread, instead of
 *   renewing in the same wave every period forever. The point is a function of the lease, not of a
 *   fresh random draw, so a restarted broker that restores the lease keeps it: a restart does not
 *   turn every lease whose new draw fell in the past into one burst of renewals.
 * - Once a renewal returns less than it asked for (max TTL, mount ceiling), renewing is pointless:
 *   the expiry no longer moves: the replacement is read early in what is left (its first quarter),
 *   so callers move to it long before the old one ends, but not before 60-73% of the lease's whole
 *   life: a role whose max TTL equals its TTL is capped by that early first renewal, and must not be
 *   replaced any sooner than a plain renewal would have found it capped.
 * - Non-renewable leases and leases that outlive their token get their replacement read at 80-85% of
 *   their remaining life, capped so that it lands well before the cutoff.
 * - Secrets without a lease (KV) are re-read every refresh period and never renewed.
 * - Failures back off from 10 s, doubling to 5 min, jittered, and never further than half of what
 *   is left of the lease: the next try always happens before the end. When that leaves less than
 *   a second, no more tries: the lease runs out (no retry storm near the end).
 */

#include <assert.h>

#include "broker/schedule.h"
#include "common/macro.h"

static const char *const action_table[_SCHEDULE_ACTION_MAX] = {
        [SCHEDULE_RENEW] = "renew",
        [SCHEDULE_REPLACE] = "replace",
        [SCHEDULE_EXPIRE] = "expire",
};

const char *schedule_action_to_string(ScheduleAction a) {
        if (a < 0 || a >= _SCHEDULE_ACTION_MAX)
                return NULL;
        return action_table[a];
}

/* span * permille / 1000 without overflowing for absurdly long spans. */
static usec_t scale(usec_t span, unsigned permille) {
        if (span > UINT64_MAX / 1000)
                return span / 1000 * permille;
        return span * permille / 1000;
}

static usec_t add_sat(usec_t a, usec_t b) {
        return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/* A value in [lo, hi] picked by rnd. */
static unsigned pick(uint64_t rnd, unsigned lo, unsigned hi) {
        assert(hi >= lo);
        return lo + (unsigned) (rnd % (uint64_t) (hi - lo + 1));
}

/**
 * schedule_end() - when the lease really ends
 * @t: lease times
 *
 * Return: the earlier of the lease's expiry and its token's, or USEC_INFINITY for unleased secrets.
 */
usec_t schedule_end(const LeaseTimes *t) {
        assert(t);

        if (!t->leased)
                return USEC_INFINITY;
        return MIN(t->expiry, t->token_expiry);
}

/**
 * schedule_margin() - how much life a lease must have left to be handed out
 * @t: lease times
 *
 * Return: max(1 s, 10% of the TTL), the TTL being the nominal one or, when shorter, the time from
 * the last answer to the lease's real end.
 */
usec_t schedule_margin(const LeaseTimes *t) {
        usec_t ttl, end;

        assert(t);

        /* The TTL that counts is what the lease can really live: a token ending first, or a renewal
         * capped by the max TTL, shortens it. Otherwise a lease whose token has less than 10% of the
         * lease's nominal TTL left could never be handed out, however fresh. */
        ttl = t->ttl;
        end = schedule_end(t);
        if (end != USEC_INFINITY && end > t->issued)
                ttl = MIN(ttl, end - t->issued);

        return MAX(SCHEDULE_MIN_MARGIN_USEC, ttl / 10);
}

/**
 * schedule_cutoff() - the hand-out cutoff
 * @t: lease times
 *
 * Return: the first moment at which the lease may no longer be handed out; USEC_INFINITY for
 * unleased secrets.
 */
usec_t schedule_cutoff(const LeaseTimes *t) {
        usec_t end, margin;

        assert(t);

        end = schedule_end(t);
        if (end == USEC_INFINITY)
                return USEC_INFINITY;
        margin = schedule_margin(t);
        return end > margin ? end - margin : 0;
}

/**
 * schedule_can_hand_out() - whether the cached answer may be given to a caller now
 * @t: lease times
 * @now: the current boottime
 *
 * Return: true while @now is before the cutoff.
 */
bool schedule_can_hand_out(const LeaseTimes *t, usec_t now) {
        return now < schedule_cutoff(t);
}

/**
 * schedule_backoff() - delay before the next try after @attempt consecutive failures
 * @attempt: failures so far (0: no failure, no delay)
 * @rnd: a random number
 *
 * Return: 10 s doubling per failure up to 5 min, jittered down by up to a quarter.
 */
usec_t schedule_backoff(unsigned attempt, uint64_t rnd) {
        usec_t base;

        if (attempt == 0)
                return 0;

        base = SCHEDULE_BACKOFF_MIN_USEC;
        for (unsigned i = 1; i < attempt && base < SCHEDULE_BACKOFF_MAX_USEC; i++)
                base *= 2;
        base = MIN(base, SCHEDULE_BACKOFF_MAX_USEC);

        return base - base / 4 + rnd % (base / 4 + 1);
}

/**
 * schedule_next() - the next thing to do with a cached answer, and when
 * @t: lease times
 * @now: the current boottime
 * @attempt: consecutive failures of the previous action (0 after a success)
 * @rnd: a random number, for jitter
 * @ret_when: the boottime at which to act, never before @now
 *
 * Return: the action. Calling it again at the returned time with unchanged inputs gives the same
 * action due now, so a timer can simply re-evaluate when it fires (e.g. after the token was renewed).
 */
ScheduleAction schedule_next(const LeaseTimes *t, usec_t now, unsigned attempt, uint64_t rnd, usec_t *ret_when) {
        ScheduleAction action;
        usec_t end, cutoff, span, when;

        assert(t);
        assert(ret_when);

        if (!t->leased) {
                usec_t refresh = t->refresh > 0 ? t->refresh : 300 * USEC_PER_SEC;

                /* Jittered early by up to 10% so that secrets read together spread out. */
                when = add_sat(t->issued, refresh - scale(refresh, pick(rnd, 0, 100)));
                if (attempt > 0)
                        when = MAX(when, add_sat(now, schedule_backoff(attempt, rnd)));
                *ret_when = MAX(when, now);
                return SCHEDULE_REPLACE;
        }

        end = schedule_end(t);
        if (now >= end) {
                *ret_when = now;
                /* A restored lease may have been renewed after its table was saved: one renewal asks
                 * Vault, whose answer (a new expiry, or "lease not found") settles it. */
                if (t->unconfirmed && attempt == 0 && now < t->token_expiry &&
                    schedule_may_outlive_saved_expiry(t->renewable, t->capped, t->expiry, t->ttl, now))
                        return SCHEDULE_RENEW;
                return SCHEDULE_EXPIRE;
        }

        cutoff = schedule_cutoff(t);
        span = end > t->issued ? end - t->issued : 0;

        if (t->renewable && !t->capped && t->expiry < t->token_expiry) {
                /* The lease ends first and renewing moves its end: renew at 60-73% of its life, the
                 * first time anywhere in 10-73%, at the lease's own phase. */
                action = SCHEDULE_RENEW;
                if (t->issued <= t->read)
                        when = t->issued + scale(span, pick(t->phase, 100, 733));
                else
                        when = t->issued + scale(span, pick(rnd, 600, 733));
                if (cutoff > t->issued)
                        when = MIN(when, t->issued + scale(cutoff - t->issued, 900));
        } else if (t->capped) {
                /* The max TTL stopped the renewals: what is left is all this lease will ever have, so
                 * fetch the replacement early in it (first quarter), leaving a long overlap in which
                 * callers get the new answer, rather than handing the old one out to its last second. */
                action = SCHEDULE_REPLACE;
                when = t->issued + scale(span, pick(rnd, 0, 250));
                if (end > t->read)
                        when = MAX(when, t->read + scale(end - t->read, pick(rnd, 600, 733)));
                if (cutoff > t->issued)
                        when = MIN(when, cutoff - (cutoff - t->issued) / 20);
        } else {
                /* Renewing cannot help: fetch a replacement while the old answer still has margin. */
                action = SCHEDULE_REPLACE;
                when = t->issued + scale(span, pick(rnd, 800, 850));
                if (cutoff > t->issued)
                        when = MIN(when, cutoff - (cutoff - t->issued) / 20);
                else
                        when = t->issued;
        }

        if (attempt > 0) {
                usec_t delay = MIN(schedule_backoff(attempt, rnd), (end - now) / 2);

                /* Halving what is left would retry ever faster near the end: below a floor, stop
                 * and let the lease run out. */
                if (delay < SCHEDULE_RETRY_MIN_USEC) {
                        *ret_when = end;
                        return SCHEDULE_EXPIRE;
                }
                when = MAX(when, now + delay);
        }

        *ret_when = MAX(when, now);
        return action;
}

/**
 * schedule_renewal_capped() - whether a renewal hit a ceiling
 * @asked: the increment asked for
 * @returned: the lease_duration Vault returned
 *
 * Vault answers a renewal near the max TTL with 200 and a shorter lease_duration; from then on the
 * expiry no longer moves and the lease must be replaced rather than renewed.
 *
 * Return: true when less than asked came back.
 */
bool schedule_renewal_capped(usec_t asked, usec_t returned) {
        return returned < asked;
}

/**
 * schedule_may_outlive_saved_expiry() - whether a lease whose saved expiry has passed may still live
 * @renewable: the saved lease was renewable ...
 * @capped:    ... and not capped by its max TTL
 * @expiry:    the saved expiry
 * @ttl:       the increment each renewal asks for
 * @now:       the current time, on @expiry's clock
 *
 * The lease table is saved up to a second after a renewal (renewals are coalesced), so a crash can
 * lose the last one. That renewal was made before the saved expiry and asked for @ttl, so the lease
 * cannot outlive @expiry + @ttl; before then only Vault knows.
 *
 * Return: true while the lease may still live in Vault.
 */
bool schedule_may_outlive_saved_expiry(bool renewable, bool capped, usec_t expiry, usec_t ttl, usec_t now) {
        return renewable && !capped && ttl > 0 && now < add_sat(expiry, ttl);
}

/**
 * schedule_revoke_old_at() - when to revoke a lease that has been replaced
 * @old: the replaced lease's times
 * @now: the current boottime (the moment its replacement was first handed out)
 *
 * Callers that just received the old credential get a grace period to finish with it: one minute,
 * or half of what is left of it, whichever is shorter.
 *
 * Return: the boottime at which to revoke it.
 */
usec_t schedule_revoke_old_at(const LeaseTimes *old, usec_t now) {
        usec_t end;

        assert(old);

        end = schedule_end(old);
        if (end <= now)
                return now;
        if (end == USEC_INFINITY)
                return now + SCHEDULE_REVOKE_GRACE_USEC;
        return now + MIN(SCHEDULE_REVOKE_GRACE_USEC, (end - now) / 2);
}
