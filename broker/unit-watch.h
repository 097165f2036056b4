/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Unit-bound leases end with their unit: the unit's cgroup2 cgroup.events is watched with inotify, and
 * when it says "populated 0" (or the cgroup is gone) every lease the unit owns is revoked.
 */

#include <stdbool.h>

typedef struct Manager Manager;
typedef struct UnitWatcher UnitWatcher;

const char *cgroup2_root(void);
int cgroup_populated(const char *cgroup);
int unit_watch(Manager *m, const char *unit, const char *cgroup);
UnitWatcher *unit_watcher_free(UnitWatcher *w);
