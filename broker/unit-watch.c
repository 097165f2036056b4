/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Watching units that hold leases (owner "unit:NAME").
 *
 * A stopped service must leave no live database user behind, and a running one must keep its lease:
 * the kernel tells both apart. Every unit has a cgroup2 directory whose cgroup.events file says
 * "populated 1" while any process is in it or below it, and the kernel signals each change to inotify
 * watchers (IN_MODIFY). This needs no D-Bus and no privileges: the hardened unit's read-only
 * /sys/fs/cgroup is enough. The file is re-read on every event rather than trusting the event, and once
 * more right after the watch is added, so a unit that stopped in between is not missed.
 */

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <systemd/sd-event.h>

#include "broker/lease.h"
#include "broker/log.h"
#include "broker/manager.h"
#include "broker/unit-util.h"
#include "broker/unit-watch.h"
#include "common/macro.h"

typedef struct Watch {
        char *unit;
        char *cgroup;           /* relative to cgroup2_root() */
        int wd;
} Watch;

struct UnitWatcher {
        Manager *manager;
        int fd;
        sd_event_source *source;
        Watch *watches;
        size_t n_watches;
};

/**
 * cgroup2_root() - where the cgroup2 hierarchy is mounted: /sys/fs/cgroup on a unified host,
 * /sys/fs/cgroup/unified on a hybrid one
 */
const char *cgroup2_root(void) {
        if (access("/sys/fs/cgroup/cgroup.controllers", F_OK) >= 0 ||
            access("/sys/fs/cgroup/cgroup.events", F_OK) >= 0)
                return "/sys/fs/cgroup";
        return "/sys/fs/cgroup/unified";
}

/**
 * cgroup_populated() - whether the cgroup2 cgroup @cgroup ("/system.slice/app.service") has processes
 *
 * Return: 1 populated, 0 empty or gone, negative errno when it cannot be told
 */
int cgroup_populated(const char *cgroup) {
        char path[PATH_MAX], buf[512];
        _cleanup_close_ int fd = -1;
        ssize_t n;
        int r;

        r = snprintf(path, sizeof(path), "%s%s/cgroup.events", cgroup2_root(), cgroup);
        if (r < 0 || (size_t) r >= sizeof(path))
                return -ENAMETOOLONG;
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return errno == ENOENT ? 0 : -errno;
        n = read(fd, buf, sizeof(buf) - 1);
        if (n < 0)
                return errno == ENODEV || errno == ENOENT ? 0 : -errno;
        buf[n] = 0;
        return cgroup_events_populated(buf);
}

static void watch_drop(UnitWatcher *w, size_t i) {
        if (w->watches[i].wd >= 0)
                (void) inotify_rm_watch(w->fd, w->watches[i].wd);
        free(w->watches[i].unit);
        free(w->watches[i].cgroup);
        w->watches[i] = w->watches[--w->n_watches];
}

/* Re-reads one watched unit; a stopped unit loses its leases and its watch. */
static void watch_check(UnitWatcher *w, size_t i) {
        Watch *x = &w->watches[i];
        int r;

        r = cgroup_populated(x->cgroup);
        if (r > 0)
                return;
        if (r < 0) {
                log_warning_errno(r, "Failed to read cgroup.events of %s, assuming it still runs: %m", x->unit);
                return;
        }
        log_debug("Unit %s has no processes left.", x->unit);
        (void) lease_release_unit(w->manager, x->unit);
        watch_drop(w, i);
}

static int on_inotify(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        UnitWatcher *w = userdata;
        union {
                struct inotify_event ev;
                char raw[4096];
        } buf;
        ssize_t n;

        for (;;) {
                n = read(fd, &buf, sizeof(buf));
                if (n < 0) {
                        if (errno != EAGAIN && errno != EINTR)
                                log_warning_errno(errno, "Failed to read cgroup events: %m");
                        break;
                }
                for (char *p = buf.raw; p < buf.raw + n;) {
                        struct inotify_event *e = (struct inotify_event *) p;

                        for (size_t i = 0; i < w->n_watches; i++)
                                if (w->watches[i].wd == e->wd) {
                                        if (e->mask & IN_IGNORED)
                                                w->watches[i].wd = -1;  /* the cgroup is gone */
                                        watch_check(w, i);
                                        break;
                                }
                        p += sizeof(struct inotify_event) + e->len;
                }
        }
        return 0;
}

static int unit_watcher_new(Manager *m, UnitWatcher **ret) {
        _cleanup_close_ int fd = -1;
        UnitWatcher *w;
        int r;

        fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        if (fd < 0)
                return -errno;
        w = calloc(1, sizeof(*w));
        if (!w)
                return -ENOMEM;
        w->manager = m;
        w->fd = TAKE_FD(fd);
        r = sd_event_add_io(m->event, &w->source, w->fd, EPOLLIN, on_inotify, w);
        if (r < 0) {
                unit_watcher_free(w);
                return r;
        }
        (void) sd_event_source_set_description(w->source, "unit-watch");
        *ret = w;
        return 0;
}

/**
 * unit_watcher_free() - stop watching; no lease is touched
 *
 * Return: NULL
 */
UnitWatcher *unit_watcher_free(UnitWatcher *w) {
        if (!w)
                return NULL;
        while (w->n_watches > 0)
                watch_drop(w, 0);
        free(w->watches);
        sd_event_source_disable_unref(w->source);
        safe_close(w->fd);
        free(w);
        return NULL;
}

/**
 * unit_watch() - revoke @unit's leases when its cgroup @cgroup empties
 * @cgroup: the unit's cgroup2 path ("/system.slice/app.service")
 *
 * Idempotent per unit. If the unit has already stopped, its leases are released at once.
 *
 * Return: 0, or a negative errno (the leases then live until they expire)
 */
int unit_watch(Manager *m, const char *unit, const char *cgroup) {
        char path[PATH_MAX];
        UnitWatcher *w;
        Watch *a;
        int r, wd;

        if (!m->unit_watcher) {
                r = unit_watcher_new(m, &m->unit_watcher);
                if (r < 0)
                        return log_error_errno(r, "Failed to set up watching units: %m");
        }
        w = m->unit_watcher;

        for (size_t i = 0; i < w->n_watches; i++)
                if (strcmp(w->watches[i].unit, unit) == 0) {
                        watch_check(w, i);
                        return 0;
                }

        r = snprintf(path, sizeof(path), "%s%s/cgroup.events", cgroup2_root(), cgroup);
        if (r < 0 || (size_t) r >= sizeof(path))
                return -ENAMETOOLONG;
        wd = inotify_add_watch(w->fd, path, IN_MODIFY);
        if (wd < 0)
                return log_error_errno(errno, "Failed to watch %s of unit %s: %m", path, unit);

        a = reallocarray(w->watches, w->n_watches + 1, sizeof(Watch));
        if (!a)
                return log_oom();
        w->watches = a;
        a[w->n_watches] = (Watch) { .unit = strdup(unit), .cgroup = strdup(cgroup), .wd = wd };
        if (!a[w->n_watches].unit || !a[w->n_watches].cgroup) {
                free(a[w->n_watches].unit);
                free(a[w->n_watches].cgroup);
                (void) inotify_rm_watch(w->fd, wd);
                return log_oom();
        }
        w->n_watches++;
        log_debug("Watching %s for the end of unit %s.", path, unit);
        watch_check(w, w->n_watches - 1);
        return 0;
}
