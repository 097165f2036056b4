/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Pure helpers for the LoadCredential= front door and unit-bound leases: who systemd says is asking
 * (the abstract peer address), which unit a process's cgroup belongs to, and whether a unit's cgroup
 * still holds a process. No I/O, no logging: unit-tested and fuzzed.
 */

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

/* systemd's CREDENTIAL_SIZE_MAX (src/shared/creds-util.h): larger sources fail the unit (E2BIG). */
#define CREDENTIAL_SIZE_MAX ((size_t) 1024U * 1024U)

bool unit_name_is_valid(const char *name);
int credential_peer_address_parse(const void *sun_path, size_t len, char **ret_unit, char **ret_id);
int cgroup_unit_from_proc(const char *text, char **ret_unit, char **ret_cgroup);
int cgroup_events_populated(const char *text);
