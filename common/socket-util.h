/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Blocking client-side socket helpers for the client and the PAM module: one connection, one call, one
 * reply, every wait bounded by a CLOCK_MONOTONIC deadline.
 */

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "common/time-util.h"
#include "common/varlink.h"

/* Name of the system user the broker runs as under systemd. */
#define VLEASE_BROKER_USER "vlease"

int connect_unix(const char *path, usec_t timeout_usec);
int send_all(int fd, const void *buf, size_t len, usec_t deadline);
int varlink_call_sync(int fd, const char *msg, size_t len, usec_t deadline, VarlinkReply *ret);
int lookup_broker_uid(uid_t *ret);
int socket_peer_is_broker(int fd, uid_t broker_uid);
