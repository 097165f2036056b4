/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Surviving a restart (DESIGN.md, "Restart"): the lease table in the state directory, the secrets
 * and the broker token in systemd's fd store, reloaded at start. See restart.c.
 */

#include <stdbool.h>
#include <stddef.h>

typedef struct Manager Manager;
typedef struct Restart Restart;
typedef struct StateLease StateLease;

#define RESTART_FDNAME_PREFIX "vlease-secrets-"

int restart_new(Manager *m, const char *state_dir, Restart **ret);
Restart *restart_free(Restart *r);
int restart_load(Manager *m, const int *fds, size_t n_fds);
void restart_state_changed(Manager *m, bool urgent);
void restart_lease_saved(Manager *m, const StateLease *e, bool added);
int restart_save(Manager *m);
