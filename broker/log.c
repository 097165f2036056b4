/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Logging to stderr. Messages are formatted into a bounded stack buffer and written with one
 * write(), so lines from one process never interleave. Nothing here knows what a secret is: the
 * callers are responsible for never passing one (see log.h).
 */

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "broker/log.h"

static int max_level = LOG_INFO;
static bool use_prefix = false;

static const char *const level_names[] = {
        [LOG_EMERG] = "emergency",
        [LOG_ALERT] = "alert",
        [LOG_CRIT] = "critical",
        [LOG_ERR] = "error",
        [LOG_WARNING] = "warning",
        [LOG_NOTICE] = "notice",
        [LOG_INFO] = "info",
        [LOG_DEBUG] = "debug",
};

/*
 * $JOURNAL_STREAM ("DEV:INODE") is set by systemd when stdout/stderr are connected to journald; then
 * each line carries its "<N>" priority prefix, which journald strips and turns into the priority.
 */
static bool stderr_is_journal(void) {
        const char *e = getenv("JOURNAL_STREAM");

        return e && *e;
}

/**
 * log_level_from_string() - parse a $VLEASED_LOG_LEVEL value: "0" to "7" or "debug"
 *
 * Return: the level, or -EINVAL
 */
static int log_level_from_string(const char *s) {
        if (!s)
                return -EINVAL;
        if (strcmp(s, "debug") == 0)
                return LOG_DEBUG;
        if (s[0] >= '0' && s[0] <= '7' && s[1] == 0)
                return s[0] - '0';
        return -EINVAL;
}

/**
 * log_setup() - choose the output style and the level ($VLEASED_LOG_LEVEL: 0-7 or "debug"; unset or
 * empty: info; anything else: a warning, and info)
 */
void log_setup(void) {
        const char *e;
        int l;

        use_prefix = stderr_is_journal();

        e = getenv("VLEASED_LOG_LEVEL");
        if (!e || !*e)
                return;
        l = log_level_from_string(e);
        if (l < 0) {
                log_warning("Invalid $VLEASED_LOG_LEVEL '%s' (expected 0-7 or debug), using the default %i (info).",
                            e, LOG_INFO);
                return;
        }
        max_level = l;
}

void log_set_max_level(int level) {
        max_level = level;
}

int log_get_max_level(void) {
        return max_level;
}

int log_internal(int level, int error, const char *fmt, ...) {
        char buf[2048];
        int saved = errno, n, m;
        va_list ap;

        level &= LOG_PRIMASK;
        if (use_prefix)
                n = snprintf(buf, sizeof(buf), "<%i>", level);
        else
                n = snprintf(buf, sizeof(buf), "vleased: %s: ", level_names[level]);
        if (n < 0)
                n = 0;

        errno = abs(error);
        va_start(ap, fmt);
        m = vsnprintf(buf + n, sizeof(buf) - n - 1, fmt, ap);
        va_end(ap);
        if (m < 0)
                m = 0;
        n = MIN((size_t) n + (size_t) m, sizeof(buf) - 2);

        /* one line per message: fold any newline a caller let through */
        for (char *p = buf; p < buf + n; p++)
                if (*p == '\n')
                        *p = ' ';
        buf[n++] = '\n';
        (void) !write(STDERR_FILENO, buf, n);

        errno = saved;
        return -abs(error);
}
