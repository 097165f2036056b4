/* SPDX-License-Identifier: LGPL-2.1-or-later */
#undef NDEBUG

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "broker/schedule.h"
#include "common/macro.h"

#define S(x) ((usec_t) (x) * USEC_PER_SEC)
#define MS(x) ((usec_t) (x) * USEC_PER_MSEC)

/* A few random numbers covering both ends of every jitter range. */
static const uint64_t rnds[] = { 0, 1, 17, 500, 999, 1000, 12345, 0xdeadbeef, UINT64_MAX - 1, UINT64_MAX };

static LeaseTimes leased(usec_t issued, usec_t ttl, bool renewable) {
        return (LeaseTimes) {
                .issued = issued,
                .expiry = issued + ttl,
                .ttl = ttl,
                .token_expiry = USEC_INFINITY,
                .leased = true,
                .renewable = renewable,
        };
}

static void test_end_and_cutoff(void **state) {
        LeaseTimes t = leased(S(100), S(3600), true);

        assert_int_equal(schedule_end(&t), S(3700));
        assert_int_equal(schedule_margin(&t), S(360));
        assert_int_equal(schedule_cutoff(&t), S(3340));
        assert_true(schedule_can_hand_out(&t, S(3339)));
        assert_false(schedule_can_hand_out(&t, S(3340)));

        /* The token ends first: the lease ends with it, and its TTL is what is left of the token. */
        t.token_expiry = S(1000);
        assert_int_equal(schedule_end(&t), S(1000));
        assert_int_equal(schedule_margin(&t), S(90));
        assert_int_equal(schedule_cutoff(&t), S(910));

        /* A fresh answer is always handed out, even with a token about to end (no read loop). */
        t = leased(S(100), S(3600), true);
        t.token_expiry = S(120);
        assert_true(schedule_can_hand_out(&t, S(100)));
        assert_int_equal(schedule_cutoff(&t), S(118));
        t.token_expiry = S(102);
        assert_true(schedule_can_hand_out(&t, S(100)));

        /* Short TTLs keep at least one second of margin. */
        t = leased(S(0), S(5), true);
        assert_int_equal(schedule_margin(&t), S(1));
        assert_int_equal(schedule_cutoff(&t), S(4));
        t = leased(S(0), MS(500), false);
        assert_int_equal(schedule_cutoff(&t), 0);
        assert_false(schedule_can_hand_out(&t, 0));

        /* Unleased secrets never end. */
        t = (LeaseTimes) { .issued = S(5), .expiry = USEC_INFINITY, .refresh = S(300) };
        assert_int_equal(schedule_end(&t), USEC_INFINITY);
        assert_int_equal(schedule_cutoff(&t), USEC_INFINITY);
        assert_true(schedule_can_hand_out(&t, S(1000000)));
}

static void test_renew_jitter(void **state) {
        LeaseTimes t = leased(S(1000), S(3600), true);
        usec_t when, lo = USEC_INFINITY, hi = 0;

        for (size_t i = 0; i < ELEMENTSOF(rnds); i++) {
                assert_int_equal(schedule_next(&t, S(1000), 0, rnds[i], &when), SCHEDULE_RENEW);
                assert_true(when >= S(1000) + S(3600) * 60 / 100);
                assert_true(when <= S(1000) + S(3600) * 734 / 1000);
                assert_true(when < schedule_cutoff(&t));
                lo = MIN(lo, when);
                hi = MAX(hi, when);
        }
        /* the jitter really spreads */
        assert_true(hi - lo > S(60));

        /* re-evaluating later gives the same deadline, so a timer can simply re-check */
        assert_int_equal(schedule_next(&t, S(1100), 0, 17, &when), SCHEDULE_RENEW);
        {
                usec_t again;
                assert_int_equal(schedule_next(&t, when, 0, 17, &again), SCHEDULE_RENEW);
                assert_int_equal(again, when);
        }

        /* overdue: act now */
        assert_int_equal(schedule_next(&t, S(3900), 0, 17, &when), SCHEDULE_RENEW);
        assert_int_equal(when, S(3900));

        /* short TTLs renew before the cutoff too */
        t = leased(S(0), S(2), true);
        for (size_t i = 0; i < ELEMENTSOF(rnds); i++) {
                assert_int_equal(schedule_next(&t, 0, 0, rnds[i], &when), SCHEDULE_RENEW);
                assert_true(when < schedule_cutoff(&t));
        }
}

/* A fresh lease's first renewal: anywhere in 10-73% of its life, fixed by its phase, whatever rnd is. */
static void test_first_renewal_phase(void **state) {
        usec_t when, again, lo = USEC_INFINITY, hi = 0;

        for (size_t i = 0; i < ELEMENTSOF(rnds); i++) {
                LeaseTimes t = leased(S(1000), S(3600), true);

                t.read = t.issued;
                t.phase = rnds[i];
                assert_int_equal(schedule_next(&t, S(1000), 0, 17, &when), SCHEDULE_RENEW);
                assert_true(when >= S(1000) + S(3600) / 10);
                assert_true(when <= S(1000) + S(3600) * 734 / 1000);
                /* the phase decides, not the random number: a restored lease keeps its point */
                assert_int_equal(schedule_next(&t, S(1000), 0, 99999, &again), SCHEDULE_RENEW);
                assert_int_equal(again, when);
                lo = MIN(lo, when);
                hi = MAX(hi, when);

                /* once renewed, the regular 60-73% */
                t.issued = S(2000);
                t.expiry = S(2000) + S(3600);
                assert_int_equal(schedule_next(&t, S(2000), 0, rnds[i], &when), SCHEDULE_RENEW);
                assert_true(when >= S(2000) + S(3600) * 60 / 100);
                assert_true(when <= S(2000) + S(3600) * 734 / 1000);
        }
        assert_true(hi - lo > S(3600) / 2);

        /* A role whose max TTL is its TTL: the early first renewal comes back capped; the replacement
         * still waits until 60-73% of the lease's whole life, as it would have without the early renewal. */
        for (size_t i = 0; i < ELEMENTSOF(rnds); i++) {
                LeaseTimes t = leased(S(0), S(30), true);

                t.read = 0;
                t.issued = S(3);
                t.expiry = S(30);
                t.capped = true;
                assert_int_equal(schedule_next(&t, S(3), 0, rnds[i], &when), SCHEDULE_REPLACE);
                assert_true(when >= S(18));
                assert_true(when <= S(30) * 734 / 1000);
                assert_true(when < schedule_cutoff(&t));
        }
}

static uint64_t splitmix(uint64_t *x) {
        uint64_t z = (*x += UINT64_C(0x9e3779b97f4a7c15));

        z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
        return z ^ (z >> 31);
}

/*
 * 1,000 leases (TTL 30 s) issued within one second, as at boot or in a login storm, followed through
 * three renewal periods: no second sees more than twice the average renewal rate. With every
 * renewal at 60-73% the burst would come back as a wave every period (about 5x the average).
 */
static void test_burst_spreads(void **state) {
        enum { N = 1000, WINDOW = 60 };
        static LeaseTimes t[N];
        static usec_t next[N];
        unsigned per_s[WINDOW] = {}, total = 0, peak = 0;
        uint64_t seed = 42;

        for (size_t i = 0; i < N; i++) {
                t[i] = leased(MS(i), S(30), true);
                t[i].read = t[i].issued;
                t[i].phase = splitmix(&seed);
                assert_int_equal(schedule_next(&t[i], t[i].issued, 0, splitmix(&seed), &next[i]), SCHEDULE_RENEW);
        }
        for (;;) {
                size_t k = 0;

                for (size_t i = 1; i < N; i++)
                        if (next[i] < next[k])
                                k = i;
                if (next[k] >= S(15 + WINDOW))
                        break;
                if (next[k] >= S(15)) {
                        per_s[(next[k] - S(15)) / USEC_PER_SEC]++;
                        total++;
                }
                /* renewed: another 30 s from now */
                t[k].issued = next[k];
                t[k].expiry = next[k] + S(30);
                assert_int_equal(schedule_next(&t[k], next[k], 0, splitmix(&seed), &next[k]), SCHEDULE_RENEW);
        }
        for (size_t s = 0; s < WINDOW; s++)
                peak = MAX(peak, per_s[s]);
        assert_true(total > 2 * N);
        assert_true(peak * WINDOW <= 2 * total);
}

static void test_not_renewable(void **state) {
        LeaseTimes t = leased(S(0), S(3600), false);
        usec_t when;

        for (size_t i = 0; i < ELEMENTSOF(rnds); i++) {
                assert_int_equal(schedule_next(&t, 0, 0, rnds[i], &when), SCHEDULE_REPLACE);
                assert_true(when >= S(3600) * 80 / 100);
                assert_true(when <= S(3600) * 85 / 100);
                assert_true(when < schedule_cutoff(&t));
        }

        /* short TTL: the replacement is still due before the cutoff */
        t = leased(S(0), S(5), false);
        for (size_t i = 0; i < ELEMENTSOF(rnds); i++) {
                assert_int_equal(schedule_next(&t, 0, 0, rnds[i], &when), SCHEDULE_REPLACE);
                assert_true(when < schedule_cutoff(&t));
        }
}

static void test_token_ends_first(void **state) {
        LeaseTimes t = leased(S(0), S(120), true);
        usec_t when;

        t.token_expiry = S(40);
        for (size_t i = 0; i < ELEMENTSOF(rnds); i++) {
                assert_int_equal(schedule_next(&t, S(13), 0, rnds[i], &when), SCHEDULE_REPLACE);
                assert_true(when < schedule_cutoff(&t));
                assert_true(when < S(40) - S(1));
        }

        /* after the token was renewed, the lease ends first again and is renewed */
        t.token_expiry = S(1000);
        assert_int_equal(schedule_next(&t, S(13), 0, 0, &when), SCHEDULE_RENEW);

        /* past the token's end the lease is gone */
        t.token_expiry = S(40);
        assert_int_equal(schedule_next(&t, S(40), 0, 0, &when), SCHEDULE_EXPIRE);
        assert_false(schedule_can_hand_out(&t, S(39)));
}

static void test_expire(void **state) {
        LeaseTimes t = leased(S(0), S(60), true);
        usec_t when;

        assert_int_equal(schedule_next(&t, S(60), 0, 0, &when), SCHEDULE_EXPIRE);
        assert_int_equal(when, S(60));
        assert_int_equal(schedule_next(&t, S(61), 3, 0, &when), SCHEDULE_EXPIRE);
        assert_int_equal(when, S(61));
}

static void test_restored_past_saved_expiry(void **state) {
        /* restored from a table saved before the previous process's last renewal: saved expiry 60 */
        LeaseTimes t = leased(S(0), S(60), true);
        usec_t when;

        t.unconfirmed = true;
        /* one renewal asks Vault, at once */
        assert_int_equal(schedule_next(&t, S(61), 0, 0, &when), SCHEDULE_RENEW);
        assert_int_equal(when, S(61));
        assert_false(schedule_can_hand_out(&t, S(61)));
        /* ... and if it fails, the lease is given up */
        assert_int_equal(schedule_next(&t, S(61), 1, 0, &when), SCHEDULE_EXPIRE);
        /* a renewal made before the saved expiry asked for one TTL: past that, it has ended */
        assert_int_equal(schedule_next(&t, S(120), 0, 0, &when), SCHEDULE_EXPIRE);
        /* nothing to ask about: not renewable, capped, its token ended, or not restored */
        t.renewable = false;
        assert_int_equal(schedule_next(&t, S(61), 0, 0, &when), SCHEDULE_EXPIRE);
        t.renewable = true;
        t.capped = true;
        assert_int_equal(schedule_next(&t, S(61), 0, 0, &when), SCHEDULE_EXPIRE);
        t.capped = false;
        t.token_expiry = S(61);
        assert_int_equal(schedule_next(&t, S(61), 0, 0, &when), SCHEDULE_EXPIRE);
        t.token_expiry = USEC_INFINITY;
        t.unconfirmed = false;
        assert_int_equal(schedule_next(&t, S(61), 0, 0, &when), SCHEDULE_EXPIRE);

        assert_true(schedule_may_outlive_saved_expiry(true, false, S(60), S(60), S(119)));
        assert_false(schedule_may_outlive_saved_expiry(true, false, S(60), S(60), S(120)));
        assert_false(schedule_may_outlive_saved_expiry(true, false, S(60), 0, S(61)));
}

static void test_kv_refresh(void **state) {
        LeaseTimes t = { .issued = S(100), .expiry = USEC_INFINITY, .refresh = S(300),
                         .token_expiry = S(110), .renewable = true };
        usec_t when;

        for (size_t i = 0; i < ELEMENTSOF(rnds); i++) {
                assert_int_equal(schedule_next(&t, S(100), 0, rnds[i], &when), SCHEDULE_REPLACE);
                assert_true(when >= S(100) + S(270));
                assert_true(when <= S(100) + S(300));
        }
        /* the token's end does not matter for an unleased secret: it never expires */
        assert_int_equal(schedule_next(&t, S(100000), 0, 0, &when), SCHEDULE_REPLACE);
        assert_int_equal(when, S(100000));

        /* a failed refresh backs off */
        assert_int_equal(schedule_next(&t, S(400), 1, 0, &when), SCHEDULE_REPLACE);
        assert_true(when >= S(400) + S(7));
        assert_true(when <= S(400) + S(10));

        /* default refresh period */
        t.refresh = 0;
        assert_int_equal(schedule_next(&t, S(100), 0, 0, &when), SCHEDULE_REPLACE);
        assert_int_equal(when, S(400));
}

static void test_backoff(void **state) {
        static const usec_t base[] = { 0, S(10), S(20), S(40), S(80), S(160), S(300), S(300), S(300) };

        for (unsigned a = 0; a < ELEMENTSOF(base); a++)
                for (size_t i = 0; i < ELEMENTSOF(rnds); i++) {
                        usec_t d = schedule_backoff(a, rnds[i]);

                        assert_true(d <= base[a]);
                        assert_true(d >= base[a] - base[a] / 4);
                }
        assert_int_equal(schedule_backoff(1000, 0), S(300) - S(75));
        assert_true(schedule_backoff(UINT32_MAX, UINT64_MAX) <= S(300));
}

static void test_backoff_within_lease(void **state) {
        LeaseTimes t = leased(S(0), S(60), true);
        usec_t when;

        /* B07: a renewal failing at t=40 retries at most half-way to the end */
        for (unsigned a = 1; a < 10; a++)
                for (size_t i = 0; i < ELEMENTSOF(rnds); i++) {
                        assert_int_equal(schedule_next(&t, S(40), a, rnds[i], &when), SCHEDULE_RENEW);
                        assert_true(when > S(40));
                        assert_true(when <= S(50));
                }

        /* early failure: backoff applies from now, the normal deadline still wins if later */
        t = leased(S(0), S(3600), true);
        assert_int_equal(schedule_next(&t, S(2400), 1, 0, &when), SCHEDULE_RENEW);
        assert_true(when >= S(2400) + S(7) && when <= S(2400) + S(10));

        /* a loop of failures approaches the end a few times, retries are at least 1 s apart, then the
         * lease is left to expire at its end */
        t = leased(S(0), S(60), true);
        {
                usec_t now = S(40);
                unsigned a = 1, steps = 0;
                ScheduleAction action;

                for (;;) {
                        action = schedule_next(&t, now, a++, 12345, &when);
                        if (action == SCHEDULE_EXPIRE)
                                break;
                        assert_true(when < S(60));
                        assert_true(when >= now + S(1));
                        now = when;
                        assert_true(++steps < 10);
                }
                assert_int_equal(when, S(60));
                assert_true(steps <= 5);
        }
        /* 1.5 s before the end: no more retries */
        assert_int_equal(schedule_next(&t, S(58) + MS(500), 1, 0, &when), SCHEDULE_EXPIRE);
        assert_int_equal(when, S(60));
}

static void test_capped_renewal(void **state) {
        assert_true(schedule_renewal_capped(S(10), S(5)));
        assert_false(schedule_renewal_capped(S(10), S(10)));
        assert_false(schedule_renewal_capped(S(10), S(11)));

        /* A renewal capped with 9 s left of an 89 s life (ttl 30 s): the replacement is fetched in the
         * first quarter of those 9 s, not at their end, so callers switch to it with time to spare. */
        for (size_t i = 0; i < ELEMENTSOF(rnds); i++) {
                LeaseTimes t = leased(S(80), S(30), true);
                usec_t when;

                t.expiry = S(89);
                t.capped = true;
                assert_int_equal(schedule_next(&t, S(80), 0, rnds[i], &when), SCHEDULE_REPLACE);
                assert_true(when >= S(80) && when <= S(80) + S(9) / 4);
        }
}

/*
 * B02: ttl=10, max_ttl=25 at t=0; each renewal asks for 10 s and gets min(10, 25 - now). Simulate
 * the engine: the lease is renewed until a renewal comes back short, then replaced before its end;
 * at no point is a credential handed out with less than the cutoff margin left.
 */
static void test_max_ttl_simulation(void **state) {
        for (size_t i = 0; i < ELEMENTSOF(rnds); i++) {
                LeaseTimes t = leased(0, S(10), true);
                usec_t now = 0, when, max_end = S(25);
                bool replaced = false;

                for (unsigned step = 0; step < 20 && !replaced; step++) {
                        ScheduleAction a = schedule_next(&t, now, 0, rnds[i] + step, &when);

                        /* every hand-out between now and the action leaves at least the margin */
                        for (usec_t q = now; q < when; q += MS(100))
                                if (schedule_can_hand_out(&t, q))
                                        assert_true(schedule_end(&t) - q >= S(1));

                        now = when;
                        switch (a) {
                        case SCHEDULE_RENEW: {
                                usec_t returned = MIN(S(10), max_end - now);

                                t.issued = now;
                                t.expiry = now + returned;
                                t.capped = schedule_renewal_capped(S(10), returned);
                                break;
                        }
                        case SCHEDULE_REPLACE:
                                assert_true(t.capped);
                                /* the replacement is fetched while the old one still has margin */
                                assert_true(now < schedule_cutoff(&t));
                                assert_true(now < max_end - S(1));
                                replaced = true;
                                break;
                        default:
                                fail_msg("lease expired before it was replaced");
                        }
                }
                assert_true(replaced);
                /* the old lease is revoked after a grace period, before its end */
                assert_true(schedule_revoke_old_at(&t, now) <= max_end);
                assert_true(schedule_revoke_old_at(&t, now) > now);
        }
}

static void test_revoke_old(void **state) {
        LeaseTimes t = leased(S(0), S(3600), true);

        assert_int_equal(schedule_revoke_old_at(&t, S(3000)), S(3060));
        assert_int_equal(schedule_revoke_old_at(&t, S(3580)), S(3590));
        assert_int_equal(schedule_revoke_old_at(&t, S(4000)), S(4000));
}

static void test_action_names(void **state) {
        assert_string_equal(schedule_action_to_string(SCHEDULE_RENEW), "renew");
        assert_string_equal(schedule_action_to_string(SCHEDULE_REPLACE), "replace");
        assert_string_equal(schedule_action_to_string(SCHEDULE_EXPIRE), "expire");
        assert_null(schedule_action_to_string(_SCHEDULE_ACTION_MAX));
        assert_null(schedule_action_to_string(_SCHEDULE_ACTION_INVALID));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_end_and_cutoff),
                cmocka_unit_test(test_renew_jitter),
                cmocka_unit_test(test_first_renewal_phase),
                cmocka_unit_test(test_burst_spreads),
                cmocka_unit_test(test_not_renewable),
                cmocka_unit_test(test_token_ends_first),
                cmocka_unit_test(test_expire),
                cmocka_unit_test(test_kv_refresh),
                cmocka_unit_test(test_backoff),
                cmocka_unit_test(test_backoff_within_lease),
                cmocka_unit_test(test_capped_renewal),
                cmocka_unit_test(test_max_ttl_simulation),
                cmocka_unit_test(test_revoke_old),
                cmocka_unit_test(test_restored_past_saved_expiry),
                cmocka_unit_test(test_action_names),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
