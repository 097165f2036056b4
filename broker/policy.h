/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Who may Get a credential: the users, groups and systemd units listed in its [credential] section.
 * Nobody else, root included (root sees everything in List and Status, which the core decides).
 */

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "broker/config.h"

int policy_resolve(Config *c, char ***ret_unknown);
bool policy_allows(const CredentialConfig *c, uid_t uid, const gid_t *gids, size_t n_gids);
bool policy_allows_unit(const CredentialConfig *c, const char *unit);
