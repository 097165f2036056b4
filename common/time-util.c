/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <assert.h>
#include <stdio.h>

#include "common/time-util.h"

/**
 * timespec_load() - a timespec as microseconds
 * @ts: time
 *
 * Return: microseconds, USEC_INFINITY on overflow or for negative values
 */
usec_t timespec_load(const struct timespec *ts) {
        if (ts->tv_sec < 0 || ts->tv_nsec < 0)
                return USEC_INFINITY;
        if ((usec_t) ts->tv_sec > (UINT64_MAX - (usec_t) ts->tv_nsec / NSEC_PER_USEC) / USEC_PER_SEC)
                return USEC_INFINITY;
        return (usec_t) ts->tv_sec * USEC_PER_SEC + (usec_t) ts->tv_nsec / NSEC_PER_USEC;
}

/**
 * now() - the current time of a clock in microseconds
 * @clock: CLOCK_BOOTTIME, CLOCK_MONOTONIC, CLOCK_REALTIME, ...
 */
usec_t now(clockid_t clock) {
        struct timespec ts;

        /* Only fails for invalid clock ids: a programming error. */
        assert(clock_gettime(clock, &ts) == 0);
        return timespec_load(&ts);
}

/**
 * usec_add() - saturating addition, USEC_INFINITY absorbs
 */
usec_t usec_add(usec_t a, usec_t b) {
        if (a > USEC_INFINITY - b)
                return USEC_INFINITY;
        return a + b;
}

/**
 * usec_sub_unsigned() - saturating subtraction: 0 rather than wrapping, USEC_INFINITY stays
 */
usec_t usec_sub_unsigned(usec_t a, usec_t b) {
        if (a == USEC_INFINITY)
                return USEC_INFINITY;
        if (a < b)
                return 0;
        return a - b;
}

/**
 * usec_realtime_from_boottime() - map a CLOCK_BOOTTIME instant to wall-clock time
 * @boottime: instant on CLOCK_BOOTTIME
 * @now_boottime: CLOCK_BOOTTIME read at about the same moment as @now_realtime
 * @now_realtime: CLOCK_REALTIME now
 *
 * Pure, so tests can pass their own "now". USEC_INFINITY maps to USEC_INFINITY.
 */
usec_t usec_realtime_from_boottime(usec_t boottime, usec_t now_boottime, usec_t now_realtime) {
        if (boottime == USEC_INFINITY)
                return USEC_INFINITY;
        if (boottime >= now_boottime)
                return usec_add(now_realtime, boottime - now_boottime);
        return usec_sub_unsigned(now_realtime, now_boottime - boottime);
}

/**
 * usec_boottime_from_realtime() - map a wall-clock instant to CLOCK_BOOTTIME
 *
 * The inverse of usec_realtime_from_boottime(); instants before boot map to 0.
 */
usec_t usec_boottime_from_realtime(usec_t realtime, usec_t now_boottime, usec_t now_realtime) {
        if (realtime == USEC_INFINITY)
                return USEC_INFINITY;
        if (realtime >= now_realtime)
                return usec_add(now_boottime, realtime - now_realtime);
        return usec_sub_unsigned(now_boottime, now_realtime - realtime);
}

/**
 * boottime_to_realtime() - map a CLOCK_BOOTTIME instant to wall-clock time using the clocks now
 */
usec_t boottime_to_realtime(usec_t boottime) {
        return usec_realtime_from_boottime(boottime, now(CLOCK_BOOTTIME), now(CLOCK_REALTIME));
}

/**
 * format_timestamp() - wall-clock instant as "YYYY-MM-DD HH:MM:SS UTC"
 * @buf: output buffer
 * @l: its size, FORMAT_TIMESTAMP_MAX is enough
 * @realtime: microseconds since the epoch
 *
 * Return: @buf, or NULL for USEC_INFINITY, 0, or a time that cannot be represented
 */
char *format_timestamp(char *buf, size_t l, usec_t realtime) {
        struct tm tm;
        time_t t;

        if (realtime == 0 || realtime == USEC_INFINITY || l == 0)
                return NULL;
        t = (time_t) (realtime / USEC_PER_SEC);
        if (!gmtime_r(&t, &tm))
                return NULL;
        if (strftime(buf, l, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
                return NULL;
        return buf;
}

/**
 * format_timespan() - a duration as e.g. "1h 2min 3s", rounded down to seconds
 * @buf: output buffer
 * @l: its size
 * @span: microseconds
 *
 * Return: @buf, or NULL if it does not fit
 */
char *format_timespan(char *buf, size_t l, usec_t span) {
        static const struct {
                const char *suffix;
                usec_t usec;
        } table[] = {
                { "d", USEC_PER_DAY },
                { "h", USEC_PER_HOUR },
                { "min", USEC_PER_MINUTE },
                { "s", USEC_PER_SEC },
        };
        size_t n = 0;

        if (l == 0)
                return NULL;
        if (span == USEC_INFINITY) {
                if ((size_t) snprintf(buf, l, "infinity") >= l)
                        return NULL;
                return buf;
        }
        if (span < USEC_PER_SEC) {
                if ((size_t) snprintf(buf, l, "%llums", (unsigned long long) (span / USEC_PER_MSEC)) >= l)
                        return NULL;
                return buf;
        }

        buf[0] = 0;
        for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
                usec_t k = span / table[i].usec;
                int r;

                if (k == 0)
                        continue;
                span -= k * table[i].usec;
                r = snprintf(buf + n, l - n, "%s%llu%s", n > 0 ? " " : "", (unsigned long long) k,
                             table[i].suffix);
                if (r < 0 || (size_t) r >= l - n)
                        return NULL;
                n += (size_t) r;
        }
        return buf;
}
