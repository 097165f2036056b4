/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * ReplyCache: the wire bytes of a lease's Get answer, kept in the secret arena so that a cached Get is
 * a lookup and a copy, not a parse of the secret plus a JSON build and serialisation. See
 * reply-cache.c for when it is rebuilt.
 */

#include <stdbool.h>
#include <stddef.h>

#include "common/time-util.h"

typedef struct Secret Secret;

/* Everything of the answer that is not the secret itself; the secret changes only with a new read,
 * which clears the cache. */
typedef struct ReplyKey {
        usec_t issued;                  /* CLOCK_BOOTTIME */
        usec_t end;
        usec_t cutoff;
        bool leased;
        bool renewable;
} ReplyKey;

typedef struct ReplyCache {
        Secret *msg;                    /* the varlink reply, NUL included; NULL: nothing cached */
        ReplyKey key;
        usec_t realtime_offset;         /* CLOCK_REALTIME - CLOCK_BOOTTIME when it was built */
} ReplyCache;

/* How far the wall clock may move against boottime before the wall-clock times in the answer are
 * rebuilt (NTP slewing, a clock step, a suspend). */
#define REPLY_CACHE_CLOCK_SLACK_USEC (100 * USEC_PER_MSEC)

bool reply_cache_get(const ReplyCache *c, const ReplyKey *key, usec_t realtime_offset, const char **ret_msg,
                     size_t *ret_len);
int reply_cache_put(ReplyCache *c, const ReplyKey *key, usec_t realtime_offset, const char *msg, size_t len);
void reply_cache_clear(ReplyCache *c);
