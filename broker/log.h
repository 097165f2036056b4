/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * vleased's logging: one line per message on stderr. Under journald ($JOURNAL_STREAM naming our
 * stderr) each line starts with a "<N>" syslog priority prefix; otherwise it reads
 * "vleased: error: message".
 *
 * Never pass a secret to these functions: no token, password, secret_id, response body or
 * credential data, and lease ids only through vault_lease_id_for_log(). Name the peer by uid and
 * pid and the credential by name instead.
 */

#include <errno.h>
#include <stdlib.h>
#include <syslog.h>

#include "common/macro.h"

void log_setup(void);
void log_set_max_level(int level);
int log_get_max_level(void);

/**
 * log_internal() - format and write one log line
 * @level: syslog priority (LOG_ERR, ...)
 * @error: an errno (either sign) made available to %m, or 0
 *
 * Return: -abs(@error), so that "return log_error_errno(r, ...)" passes the error on.
 */
int log_internal(int level, int error, const char *fmt, ...) _printf_(3, 4);

#define log_full_errno(level, error, ...)                                       \
        ({                                                                      \
                int _level = (level), _e = (error);                             \
                (log_get_max_level() >= _level)                                 \
                        ? log_internal(_level, _e, __VA_ARGS__)                 \
                        : -abs(_e);                                             \
        })

#define log_full(level, ...) (void) log_full_errno(level, 0, __VA_ARGS__)

#define log_debug(...) log_full(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_full(LOG_INFO, __VA_ARGS__)
#define log_notice(...) log_full(LOG_NOTICE, __VA_ARGS__)
#define log_warning(...) log_full(LOG_WARNING, __VA_ARGS__)
#define log_error(...) log_full(LOG_ERR, __VA_ARGS__)

#define log_debug_errno(error, ...) log_full_errno(LOG_DEBUG, error, __VA_ARGS__)
#define log_info_errno(error, ...) log_full_errno(LOG_INFO, error, __VA_ARGS__)
#define log_warning_errno(error, ...) log_full_errno(LOG_WARNING, error, __VA_ARGS__)
#define log_error_errno(error, ...) log_full_errno(LOG_ERR, error, __VA_ARGS__)

#define log_oom() log_internal(LOG_ERR, ENOMEM, "Out of memory.")
