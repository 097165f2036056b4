/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * PAM sessions: OpenSession, CloseSession, and the end of a session when its connection ends.
 *
 * Why it is careful (field failures B19, B20):
 * - Sessions are tracked by id, never by a counter: every OpenSession gets a fresh random id, a
 *   CloseSession names the id, and a second close of the same id, or a close of an id that never
 *   opened, changes nothing (NoSuchSession). alice's leases are released only when NO session of
 *   hers is left.
 * - The connection OpenSession came on is the session's life line: the PAM module keeps it open for
 *   the session, so when the process holding the session dies (SIGKILL, crash, close_session never
 *   called) the broker sees EOF and ends the session exactly like a CloseSession.
 * - CloseSession is accepted from root and from the session's own user (stacks that close after
 *   dropping privileges), authorised by SO_PEERCRED; nobody else may end someone's session.
 * - Provisioning (credentials with provision = yes that the user may have) starts at once; the reply
 *   waits for it at most wait_usec (the module's timeout, capped below the request deadline), names
 *   what finished, and whatever is still running goes on in the background, logged when it ends.
 * - A session opening while the user's last one is being released must never be handed a lease that
 *   is being revoked: a provisioning fetch that meets a revoke in flight waits for it to finish and
 *   then fetches a fresh lease.
 * - The session's leader (the peer's pid and its start time from /proc) is recorded for the lease
 *   table that survives restarts; it is never used to authorise anything.
 */

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/syscall.h>

#include <json-c/json.h>

#include "broker/config.h"
#include "broker/lease.h"
#include "broker/log.h"
#include "broker/manager.h"
#include "broker/peer.h"
#include "broker/policy.h"
#include "broker/restart.h"
#include "broker/session.h"
#include "broker/state.h"
#include "broker/userlogin.h"
#include "common/list.h"
#include "common/memory-util.h"

#define INTERFACE "io.vlease.Broker"
#define PROVISION_RETRY_USEC (250 * USEC_PER_MSEC)
#define PROVISION_RETRIES_MAX 40
#define SESSION_ID_BYTES 16

typedef struct Provision {
        Session *session;
        const CredentialConfig *cred;
        LeaseWaiter *waiter;
        sd_event_source *retry;
        unsigned attempts;
        bool pending;
        bool ok;
} Provision;

struct Session {
        Manager *manager;
        Session *prev, *next;

        char id[SESSION_ID_BYTES * 2 + 1];
        uid_t uid;
        gid_t gid;
        char *user;
        char *service;
        char *tty;
        char *rhost;
        pid_t leader_pid;
        unsigned long long leader_start;        /* clock ticks after boot, /proc/PID/stat field 22 */
        usec_t opened_realtime;

        Peer *peer;                     /* the held connection: its end is the session's end */
        sd_event_source *leader_source; /* restored after a restart: the leader's pidfd, whose exit ends it */

        Provision *provisions;
        size_t n_provisions;
        unsigned n_pending;

        /* the OpenSession reply, while it waits for provisioning */
        LeaseDoneFunc cb;
        void *userdata;
        sd_event_source *wait_timer;
};

static void reply_error(LeaseDoneFunc cb, void *userdata, const char *error, const char *key, const char *value) {
        json_object *o = json_object_new_object();

        if (o && key)
                (void) json_object_object_add(o, key, json_object_new_string(value));
        cb(error, o, userdata);
        json_object_put(o);
}

static int session_new_id(char ret[static SESSION_ID_BYTES * 2 + 1]) {
        uint8_t b[SESSION_ID_BYTES];

        if (getrandom(b, sizeof(b), 0) != (ssize_t) sizeof(b))
                return negative_errno();
        for (size_t i = 0; i < sizeof(b); i++)
                (void) snprintf(ret + 2 * i, 3, "%02x", b[i]);
        return 0;
}

/* Start time of @pid in clock ticks after boot (field 22 of /proc/PID/stat), 0 if unknown. */
static unsigned long long pid_start_time(pid_t pid) {
        char path[64], buf[1024], *p;
        unsigned long long v = 0;
        size_t n;
        FILE *f;

        if (pid <= 0)
                return 0;
        (void) snprintf(path, sizeof(path), "/proc/%d/stat", (int) pid);
        f = fopen(path, "re");
        if (!f)
                return 0;
        n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[n] = 0;
        p = strrchr(buf, ')');
        if (!p)
                return 0;
        /* after ") " come fields 3 (state) to 52; starttime is field 22 */
        if (sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d %*d %llu",
                   &v) != 1)
                return 0;
        return v;
}

/* ---- replying to OpenSession ---- */

static void session_reply(Session *s) {
        LeaseDoneFunc cb = s->cb;
        json_object *o, *names;

        if (!cb)
                return;
        s->cb = NULL;
        s->wait_timer = sd_event_source_disable_unref(s->wait_timer);

        o = json_object_new_object();
        names = json_object_new_array();
        if (!o || !names) {
                json_object_put(o);
                json_object_put(names);
                reply_error(cb, s->userdata, INTERFACE ".VaultUnavailable", "reason", "out of memory");
                return;
        }
        for (size_t i = 0; i < s->n_provisions; i++)
                if (s->provisions[i].ok)
                        (void) json_object_array_add(names, json_object_new_string(s->provisions[i].cred->name));
        (void) json_object_object_add(o, "session", json_object_new_string(s->id));
        (void) json_object_object_add(o, "provisioned", names);
        cb(NULL, o, s->userdata);
        json_object_put(o);
}

static int on_wait_timeout(sd_event_source *src, uint64_t usec, void *userdata) {
        Session *s = userdata;

        log_info("Session %.8s of %s: %u credentials not ready within the PAM module's wait, "
                 "fetching them in the background.", s->id, s->user, s->n_pending);
        session_reply(s);
        return 0;
}

/* ---- provisioning ---- */

static void provision_start(Provision *pv);

static int on_provision_retry(sd_event_source *src, uint64_t usec, void *userdata) {
        Provision *pv = userdata;

        pv->retry = sd_event_source_disable_unref(pv->retry);
        provision_start(pv);
        return 0;
}

static void provision_finished(Provision *pv, bool ok, const char *error, json_object *params) {
        Session *s = pv->session;
        json_object *v;
        const char *why = NULL;

        pv->pending = false;
        pv->ok = ok;
        if (s->n_pending > 0)
                s->n_pending--;

        if (!ok) {
                if (params && (json_object_object_get_ex(params, "reason", &v) ||
                               json_object_object_get_ex(params, "message", &v) ||
                               json_object_object_get_ex(params, "field", &v) ||
                               json_object_object_get_ex(params, "user", &v)))
                        why = json_object_get_string(v);
                log_warning("Session %.8s of %s: provisioning '%s' failed: %s%s%s", s->id, s->user,
                            pv->cred->name, strrchr(error, '.') ? strrchr(error, '.') + 1 : error,
                            why ? ": " : "", why ?: "");
        } else if (!s->cb)
                log_info("Session %.8s of %s: '%s' ready (in the background).", s->id, s->user, pv->cred->name);
        else
                log_debug("Session %.8s of %s: '%s' ready.", s->id, s->user, pv->cred->name);

        if (s->n_pending == 0)
                session_reply(s);
}

static bool error_is_release_race(const char *error, json_object *params) {
        json_object *v;
        const char *reason;

        if (strcmp(error, INTERFACE ".VaultUnavailable") != 0 || !params ||
            !json_object_object_get_ex(params, "reason", &v))
                return false;
        reason = json_object_get_string(v);
        return reason && (strstr(reason, "being released") || strstr(reason, "was dropped"));
}

static void on_provisioned(const char *error, json_object *params, void *userdata) {
        Provision *pv = userdata;
        Session *s = pv->session;
        int r;

        pv->waiter = NULL;
        if (!error) {
                provision_finished(pv, true, NULL, NULL);
                return;
        }

        /* The user's previous lease is being revoked (the last session just ended): wait for the
         * revoke, then fetch a fresh one. Never hand out a lease on its way out. */
        if (error_is_release_race(error, params) && pv->attempts < PROVISION_RETRIES_MAX) {
                r = sd_event_add_time_relative(s->manager->event, &pv->retry, CLOCK_MONOTONIC,
                                               PROVISION_RETRY_USEC, 10 * USEC_PER_MSEC, on_provision_retry, pv);
                if (r >= 0) {
                        (void) sd_event_source_set_description(pv->retry, "session-provision-retry");
                        return;
                }
        }
        provision_finished(pv, false, error, params);
}

static void provision_start(Provision *pv) {
        Session *s = pv->session;
        int r;

        pv->attempts++;
        if (pv->cred->identity == CREDENTIAL_IDENTITY_USER)
                r = userlogin_lease_get(s->manager, s->uid, pv->cred, true, on_provisioned, pv, &pv->waiter);
        else
                r = lease_get(s->manager, s->uid, pv->cred, true, on_provisioned, pv, &pv->waiter);
        if (r < 0) {
                pv->waiter = NULL;
                log_error_errno(r, "Session %.8s of %s: cannot start provisioning '%s': %m", s->id, s->user,
                                pv->cred->name);
                if (pv->pending)
                        provision_finished(pv, false, INTERFACE ".VaultUnavailable", NULL);
        }
}

static bool config_provisions(const Config *cfg) {
        for (size_t i = 0; i < cfg->n_credentials; i++)
                if (cfg->credentials[i].provision)
                        return true;
        return false;
}

static int session_provision(Session *s) {
        const Config *cfg = s->manager->config;
        _cleanup_free_ gid_t *gids = NULL;
        int ngroups = 64;

        if (!config_provisions(cfg))
                return 0;

        for (;;) {
                gid_t *g = reallocarray(gids, (size_t) ngroups, sizeof(gid_t));
                int n = ngroups;

                if (!g)
                        return -ENOMEM;
                gids = g;
                if (getgrouplist(s->user, s->gid, gids, &n) >= 0) {
                        ngroups = n;
                        break;
                }
                if (n <= ngroups || n > 65536)
                        return -E2BIG;
                ngroups = n;
        }

        s->provisions = calloc(cfg->n_credentials, sizeof(Provision));
        if (!s->provisions)
                return -ENOMEM;

        for (size_t i = 0; i < cfg->n_credentials; i++) {
                const CredentialConfig *c = &cfg->credentials[i];

                if (!c->provision || !policy_allows(c, s->uid, gids, (size_t) ngroups))
                        continue;
                if (c->identity == CREDENTIAL_IDENTITY_USER && !userlogin_have_token(s->manager, s->uid)) {
                        log_info("Session %.8s of %s: '%s' needs the user's own Vault login (identity = user), "
                                 "which this login did not make: not provisioned.", s->id, s->user, c->name);
                        continue;
                }
                s->provisions[s->n_provisions++] = (Provision) {
                        .session = s,
                        .cred = c,
                        .pending = true,
                };
                s->n_pending++;
        }

        /* started only once the list is complete: callbacks may run synchronously */
        for (size_t i = 0; i < s->n_provisions; i++)
                if (s->provisions[i].pending)
                        provision_start(&s->provisions[i]);
        return 0;
}

/* ---- the registry ---- */

static Session *session_find(Manager *m, const char *id) {
        for (Session *s = m->sessions; s; s = s->next)
                if (strcmp(s->id, id) == 0)
                        return s;
        return NULL;
}

/**
 * session_uid_active() - whether @uid has at least one open session
 */
bool session_uid_active(Manager *m, uid_t uid) {
        for (Session *s = m->sessions; s; s = s->next)
                if (s->uid == uid)
                        return true;
        return false;
}

/**
 * session_count() - open sessions: all of them if @all, else those of @uid
 */
unsigned session_count(Manager *m, bool all, uid_t uid) {
        unsigned n = 0;

        for (Session *s = m->sessions; s; s = s->next)
                if (all || s->uid == uid)
                        n++;
        return n;
}

static void session_free(Session *s) {
        Manager *m = s->manager;

        LIST_REMOVE(m->sessions, s);
        if (m->n_sessions > 0)
                m->n_sessions--;

        for (size_t i = 0; i < s->n_provisions; i++) {
                lease_waiter_cancel(s->provisions[i].waiter);
                sd_event_source_disable_unref(s->provisions[i].retry);
        }
        free(s->provisions);
        sd_event_source_disable_unref(s->wait_timer);
        sd_event_source_disable_unref(s->leader_source);
        free(s->user);
        free(s->service);
        free(s->tty);
        free(s->rhost);
        free(s);
        restart_state_changed(m, true);
}

/* Ends @s; when it was the user's last session, releases what is to be released at logout. */
static void session_end(Session *s, const char *why) {
        Manager *m = s->manager;
        uid_t uid = s->uid;
        _cleanup_free_ char *user = NULL;
        unsigned n;

        /* a reply still owed goes out first (with what is ready) */
        session_reply(s);

        log_info("Session %.8s of %s (%s%s%s) ended: %s.", s->id, s->user, s->service ?: "?",
                 s->tty ? ", tty " : "", s->tty ?: "", why);
        user = strdup(s->user);
        session_free(s);

        if (m->freeing || m->stopping)
                return;         /* a stop is not a logout: leases live on for the next process */
        if (session_uid_active(m, uid))
                return;

        n = lease_release_on_logout(m, uid);
        if (n > 0)
                log_info("Last session of %s ended: releasing %u credentials.", user ?: "?", n);
        userlogin_forget(m, uid);
        manager_update_status(m);
}

/**
 * session_peer_gone() - the connection @p is closing: end every session it held, drop replies owed
 * to it
 */
void session_peer_gone(Manager *m, Peer *p) {
        Session *s, *next;

        userlogin_peer_gone(m, p);
        for (s = m->sessions; s; s = next) {
                next = s->next;
                if (s->peer != p)
                        continue;
                s->cb = NULL;
                s->peer = NULL;
                session_end(s, "its connection closed");
                next = m->sessions;     /* the list may have changed */
        }
}

/**
 * session_free_all() - at exit: forget every session (nothing is released)
 */
void session_free_all(Manager *m) {
        while (m->sessions)
                session_free(m->sessions);
}

static int param_optional_string(json_object *params, const char *name, char **ret) {
        const char *v = NULL;
        int r;

        r = varlink_param_string(params, name, false, &v);
        if (r < 0)
                return r;
        if (v && (strlen(v) > 256 || !*v))
                v = NULL;       /* informational only: do not keep junk */
        *ret = v ? strdup(v) : NULL;
        return v && !*ret ? -ENOMEM : 0;
}

/**
 * session_open() - OpenSession(user, service, tty, rhost, wait_usec), root only (checked by the caller)
 * @p: the connection; its end will be the session's end
 * @cb: gets {"session", "provisioned"} or an error; may run before this returns
 *
 * Return: 0 answered (or the answer is pending: then the caller's busy flag is still set by it),
 * negative errno on allocation failure (nothing answered).
 */
int session_open(Manager *m, Peer *p, json_object *params, LeaseDoneFunc cb, void *userdata) {
        struct passwd pw, *res = NULL;
        _cleanup_free_ char *buf = NULL;
        const char *user = NULL, *bad = NULL;
        int64_t wait = 0;
        usec_t cap;
        Session *s;
        int r;

        if (varlink_param_string(params, "user", true, &user) < 0 || !*user) {
                reply_error(cb, userdata, "org.varlink.service.InvalidParameter", "parameter", "user");
                return 0;
        }
        if (varlink_param_int64(params, "wait_usec", false, &wait) < 0 || wait < 0) {
                reply_error(cb, userdata, "org.varlink.service.InvalidParameter", "parameter", "wait_usec");
                return 0;
        }

        buf = malloc(16384);
        if (!buf)
                return -ENOMEM;
        r = getpwnam_r(user, &pw, buf, 16384, &res);
        if (r != 0 || !res) {
                log_notice("OpenSession from pid %u for unknown user '%.64s'.", (unsigned) p->ucred.pid, user);
                reply_error(cb, userdata, INTERFACE ".NoSuchUser", "user", user);
                return 0;
        }

        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->manager = m;
        s->uid = res->pw_uid;
        s->gid = res->pw_gid;
        s->user = strdup(res->pw_name);
        if (!s->user || session_new_id(s->id) < 0) {
                free(s->user);
                free(s);
                return -ENOMEM;
        }
        if (param_optional_string(params, "service", &s->service) < 0 ||
            param_optional_string(params, "tty", &s->tty) < 0 ||
            param_optional_string(params, "rhost", &s->rhost) < 0) {
                bad = s->service ? (s->tty ? "rhost" : "tty") : "service";
                free(s->service);
                free(s->tty);
                free(s->rhost);
                free(s->user);
                free(s);
                reply_error(cb, userdata, "org.varlink.service.InvalidParameter", "parameter", bad);
                return 0;
        }
        s->leader_pid = p->ucred.pid;
        s->leader_start = pid_start_time(p->ucred.pid);
        s->opened_realtime = now(CLOCK_REALTIME);
        s->peer = p;
        s->cb = cb;
        s->userdata = userdata;

        LIST_PREPEND(m->sessions, s);
        m->n_sessions++;

        restart_state_changed(m, true);
        log_info("Session %.8s of %s opened (service %s%s%s%s%s, leader pid %u).", s->id, s->user,
                 s->service ?: "?", s->tty ? ", tty " : "", s->tty ?: "", s->rhost ? ", from " : "",
                 s->rhost ?: "", (unsigned) s->leader_pid);

        r = session_provision(s);
        if (r < 0)
                log_error_errno(r, "Session %.8s of %s: cannot provision: %m", s->id, s->user);

        if (s->n_pending == 0 || wait == 0) {
                session_reply(s);
                manager_update_status(m);
                return 0;
        }

        /* wait, but answer well before the connection's request deadline closes it (that would end
         * the session) */
        cap = m->config->broker.request_timeout_usec > 0 ? m->config->broker.request_timeout_usec * 8 / 10
                                                         : USEC_INFINITY;
        r = sd_event_add_time_relative(m->event, &s->wait_timer, CLOCK_MONOTONIC, MIN((usec_t) wait, cap),
                                       USEC_PER_MSEC, on_wait_timeout, s);
        if (r < 0) {
                log_warning_errno(r, "Cannot wait for provisioning, answering at once: %m");
                session_reply(s);
        } else
                (void) sd_event_source_set_description(s->wait_timer, "session-wait");
        manager_update_status(m);
        return 0;
}

/**
 * session_close() - CloseSession(session): root, or the session's own user
 *
 * Return: 0 (answered through @cb before returning)
 */
int session_close(Manager *m, Peer *p, json_object *params, LeaseDoneFunc cb, void *userdata) {
        const char *id = NULL;
        json_object *o;
        Session *s;

        if (varlink_param_string(params, "session", true, &id) < 0) {
                reply_error(cb, userdata, "org.varlink.service.InvalidParameter", "parameter", "session");
                return 0;
        }
        s = session_find(m, id);
        if (!s) {
                log_debug("CloseSession from uid=%u for unknown session '%.8s'.", (unsigned) p->ucred.uid, id);
                reply_error(cb, userdata, INTERFACE ".NoSuchSession", "session", id);
                return 0;
        }
        if (p->ucred.uid != 0 && p->ucred.uid != s->uid) {
                log_warning("Permission denied: peer uid=%u pid=%u tried to close session %.8s of %s.",
                            (unsigned) p->ucred.uid, (unsigned) p->ucred.pid, s->id, s->user);
                reply_error(cb, userdata, INTERFACE ".PermissionDenied", NULL, NULL);
                return 0;
        }

        session_end(s, "closed");
        o = json_object_new_object();
        cb(NULL, o, userdata);
        json_object_put(o);
        return 0;
}

/* ---- restart (restart.c) ---- */

/**
 * session_export() - add every open session (id, user, leader pid and start time) to @t
 *
 * Return: 0 or -ENOMEM
 */
int session_export(Manager *m, StateTable *t) {
        StateSession *x;
        int r;

        for (Session *s = m->sessions; s; s = s->next) {
                if (s->leader_pid <= 0 || s->leader_start == 0)
                        continue;       /* nothing to recognise the session by after a restart */
                r = state_table_add_session(t, &x);
                if (r < 0)
                        return r;
                if (!(x->id = strdup(s->id)) || !(x->user = strdup(s->user)) ||
                    (s->service && !(x->service = strdup(s->service))) || (s->tty && !(x->tty = strdup(s->tty))))
                        return -ENOMEM;
                x->uid = s->uid;
                x->gid = s->gid;
                x->leader_pid = s->leader_pid;
                x->leader_start = s->leader_start;
                x->opened = s->opened_realtime;
        }
        return 0;
}

static int on_leader_exit(sd_event_source *src, int fd, uint32_t revents, void *userdata) {
        Session *s = userdata;

        session_end(s, "its leader process exited");
        return 0;
}

/**
 * session_restore() - take over a session of the previous process whose leader still runs
 *
 * The held connection died with the previous process, so the session's life line is now its leader:
 * pinned by a pidfd (opened, then checked to be the same process by its start time), whose readability
 * says it exited. CloseSession by id works as before.
 *
 * Return: 1 restored, 0 the leader is gone (the session ended while no broker ran), negative errno
 */
int session_restore(Manager *m, const StateSession *e) {
        Session *s;
        int fd, r;

        if (session_find(m, e->id) || strlen(e->id) != SESSION_ID_BYTES * 2)
                return 0;
        fd = (int) syscall(SYS_pidfd_open, e->leader_pid, 0);
        if (fd < 0)
                return errno == ESRCH ? 0 : -errno;
        if (pid_start_time(e->leader_pid) != e->leader_start) {
                safe_close(fd);
                return 0;       /* the pid was reused: the leader is gone */
        }

        s = calloc(1, sizeof(*s));
        if (!s) {
                safe_close(fd);
                return -ENOMEM;
        }
        s->manager = m;
        memcpy(s->id, e->id, sizeof(s->id));
        s->uid = e->uid;
        s->gid = e->gid;
        s->leader_pid = e->leader_pid;
        s->leader_start = e->leader_start;
        s->opened_realtime = e->opened;
        if (!(s->user = strdup(e->user)) || (e->service && !(s->service = strdup(e->service))) ||
            (e->tty && !(s->tty = strdup(e->tty)))) {
                free(s->user);
                free(s->service);
                free(s);
                safe_close(fd);
                return -ENOMEM;
        }
        r = sd_event_add_io(m->event, &s->leader_source, fd, EPOLLIN, on_leader_exit, s);
        if (r < 0) {
                free(s->user);
                free(s->service);
                free(s->tty);
                free(s);
                safe_close(fd);
                return r;
        }
        (void) sd_event_source_set_io_fd_own(s->leader_source, true);
        (void) sd_event_source_set_description(s->leader_source, "session-leader");

        LIST_PREPEND(m->sessions, s);
        m->n_sessions++;
        log_info("Session %.8s of %s restored (leader pid %u still runs).", s->id, s->user,
                 (unsigned) s->leader_pid);
        return 1;
}
