/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The lease schedule, as pure functions of times and a random number: when to renew, when to fetch
 * a replacement, until when an answer may be handed out, and how long to back off after a failure.
 * No clock is read here and nothing is logged, so every rule is unit-tested without an event loop.
 *
 * All times are CLOCK_BOOTTIME microseconds; USEC_INFINITY means "never".
 */

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/time-util.h"

typedef enum ScheduleAction {
        SCHEDULE_RENEW,         /* PUT sys/leases/renew on the current lease */
        SCHEDULE_REPLACE,       /* read the path again (replacement, or KV refresh) */
        SCHEDULE_EXPIRE,        /* the lease has ended: stop serving it, evict it */
        _SCHEDULE_ACTION_MAX,
        _SCHEDULE_ACTION_INVALID = -EINVAL,
} ScheduleAction;

/* What the broker knows about one cached answer. */
typedef struct LeaseTimes {
        usec_t issued;          /* receipt time of the answer that set `expiry` (read or renew) */
        usec_t read;            /* receipt time of the read that created the lease (== issued until renewed) */
        usec_t expiry;          /* issued + returned lease_duration; USEC_INFINITY when unleased */
        usec_t ttl;             /* nominal lease duration: what the first read returned */
        usec_t token_expiry;    /* end of the token that created the lease; USEC_INFINITY if none */
        usec_t refresh;         /* re-read period for unleased secrets (KV) */
        uint64_t phase;         /* fixed for the lease's life (a hash of its id): where its first renewal falls */
        bool leased;            /* has a lease_id and a non-zero lease_duration */
        bool renewable;
        bool capped;            /* a renewal returned less than asked: max TTL reached, stop renewing */
        bool unconfirmed;       /* restored from a saved table, which may miss the previous process's last
                                 * renewal: `expiry` is a lower bound until Vault answers a renewal */
} LeaseTimes;

#define SCHEDULE_MIN_MARGIN_USEC (1 * USEC_PER_SEC)
#define SCHEDULE_BACKOFF_MIN_USEC (10 * USEC_PER_SEC)
#define SCHEDULE_BACKOFF_MAX_USEC (5 * USEC_PER_MINUTE)
#define SCHEDULE_RETRY_MIN_USEC (1 * USEC_PER_SEC)
#define SCHEDULE_REVOKE_GRACE_USEC (60 * USEC_PER_SEC)

const char *schedule_action_to_string(ScheduleAction a);

usec_t schedule_end(const LeaseTimes *t);
usec_t schedule_margin(const LeaseTimes *t);
usec_t schedule_cutoff(const LeaseTimes *t);
bool schedule_can_hand_out(const LeaseTimes *t, usec_t now);
usec_t schedule_backoff(unsigned attempt, uint64_t rnd);
ScheduleAction schedule_next(const LeaseTimes *t, usec_t now, unsigned attempt, uint64_t rnd, usec_t *ret_when);
bool schedule_renewal_capped(usec_t asked, usec_t returned);
bool schedule_may_outlive_saved_expiry(bool renewable, bool capped, usec_t expiry, usec_t ttl, usec_t now);
usec_t schedule_revoke_old_at(const LeaseTimes *old, usec_t now);
