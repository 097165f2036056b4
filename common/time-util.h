/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <time.h>

typedef uint64_t usec_t;

#define USEC_INFINITY ((usec_t) UINT64_MAX)
#define NSEC_PER_USEC ((uint64_t) 1000ULL)
#define USEC_PER_MSEC ((usec_t) 1000ULL)
#define USEC_PER_SEC ((usec_t) 1000000ULL)
#define USEC_PER_MINUTE ((usec_t) (60ULL * USEC_PER_SEC))
#define USEC_PER_HOUR ((usec_t) (60ULL * USEC_PER_MINUTE))
#define USEC_PER_DAY ((usec_t) (24ULL * USEC_PER_HOUR))

/* "2026-01-31 12:34:56 UTC": 23 chars plus NUL, with room to spare */
#define FORMAT_TIMESTAMP_MAX 64

usec_t timespec_load(const struct timespec *ts);
usec_t now(clockid_t clock);

usec_t usec_add(usec_t a, usec_t b);
usec_t usec_sub_unsigned(usec_t a, usec_t b);

usec_t usec_realtime_from_boottime(usec_t boottime, usec_t now_boottime, usec_t now_realtime);
usec_t usec_boottime_from_realtime(usec_t realtime, usec_t now_boottime, usec_t now_realtime);
usec_t boottime_to_realtime(usec_t boottime);

char *format_timestamp(char *buf, size_t l, usec_t realtime);
char *format_timespan(char *buf, size_t l, usec_t span);
