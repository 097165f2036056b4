/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The lease engine (DESIGN.md, "Lease lifecycle").
 *
 * One Lease per (owner, credential name): alice and bob asking for the same credential get two
 * database users, and concurrent first requests for one key wait on ONE Vault read (the waiters
 * list). The cached answer is handed out while schedule_can_hand_out() says so; before that the
 * schedule has already renewed it or fetched its replacement.
 *
 * Why it is careful:
 * - Trust only what Vault returns: a new expiry is the reply's receipt time plus the returned
 *   lease_duration, never a duration replayed from an earlier answer. The end of a lease is the
 *   earlier of its own and that of the token that created it (Vault revokes a token's leases with it).
 * - A renewal that returns less than asked means the max TTL is near: stop renewing, fetch a
 *   replacement while the old one still has margin, hand out the new one, and revoke the old one
 *   after a short grace period (a Retiree).
 * - Failures back off (schedule_backoff(), bounded by the lease's end); "lease not found" means the
 *   lease is gone and must be re-issued, a 403 on renew means "stop renewing, replace later". A sealed
 *   or unreachable Vault does not stop a still-valid cached answer from being served; after its end
 *   callers get VaultUnavailable.
 * - Secret values live in the locked arena only (Secret, the JSON text of `data`); the json-c tree
 *   handed to a reply is built when replying and its strings are wiped before it is released.
 * - One CLOCK_BOOTTIME timer per lease, re-evaluating the pure schedule when it fires, so a token
 *   renewal or a suspend never leaves a stale deadline behind.
 * - Never logged: the secret, a token, or a lease id other than through vault_lease_id_for_log().
 */

#include <assert.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include <json-c/json.h>

#include "broker/config.h"
#include "broker/format.h"
#include "broker/lease.h"
#include "broker/log.h"
#include "broker/manager.h"
#include "broker/reply-cache.h"
#include "broker/restart.h"
#include "broker/unit-util.h"
#include "broker/state.h"
#include "broker/session.h"
#include "broker/vault.h"
#include "common/hashtable.h"
#include "common/json-util.h"
#include "common/list.h"
#include "common/memory-util.h"
#include "common/secret.h"
#include "common/varlink.h"

#define ERROR_VAULT_UNAVAILABLE "io.vlease.Broker.VaultUnavailable"
#define ERROR_VAULT_ERROR "io.vlease.Broker.VaultError"
#define ERROR_FORMAT "io.vlease.Broker.FormatError"
#define RETIREE_ATTEMPTS_MAX 5
#define TIMER_ACCURACY_USEC (100 * USEC_PER_MSEC)
/* Floor between two reads of one lease: whatever goes wrong, no loop minting credentials. */
#define READ_INTERVAL_MIN_USEC (5 * USEC_PER_SEC)
/* How long a failed first read is remembered and answered from memory (at most; backoff below). */
#define NEGATIVE_CACHE_MAX_USEC (30 * USEC_PER_SEC)

/* Revoke succeeded, or there was nothing left to revoke. */
#define IN_SET_REVOKED(r) ((r) == VAULT_OK || (r) == VAULT_NO_CONTENT || (r) == VAULT_LEASE_NOT_FOUND)

static char *mfree_str(char *p) {
        free(p);
        return NULL;
}

typedef enum LeaseOp {
        OP_NONE,
        OP_READ,
        OP_RENEW,
        OP_REVOKE,
} LeaseOp;

struct LeaseWaiter {
        Lease *lease;
        LeaseWaiter *prev, *next;
        LeaseDoneFunc cb;
        LeaseWireFunc wire;             /* a Get answered with the reply bytes (lease_waiter_set_wire()) */
        void *userdata;
        bool release;
};

struct Lease {
        Manager *manager;
        Lease *prev, *next;
        HashEntry index;                /* in manager->lease_index, by lease_key() */

        uid_t uid;                      /* UID_INVALID for a unit's lease */
        char *unit;                     /* NULL, or the unit owning it (LoadCredential=) */
        char *cgroup;                   /* the unit's cgroup2 path, for the state table */
        bool no_data;                   /* restored without its secret: renewed, never handed out */
        char *owner;                    /* "uid:1000" or "unit:app.service" */
        bool unit_end_warned;           /* a unit's copy can no longer be renewed: warned once */
        const CredentialConfig *cred;
        char *description;              /* "lease:<name>" */

        /* the cached answer */
        bool have_answer;
        char *lease_id;                 /* NULL for KV */
        Secret *data;                   /* JSON text of the secret's data object */
        ReplyCache reply;               /* the wire bytes of a Get answer built from it */
        char *accessor;                 /* of the token that read it */
        LeaseTimes times;
        usec_t issued_boottime;         /* when the answer was first read (renewals keep it) */
        usec_t last_read;               /* when the last read was sent, 0 if never */
        usec_t fail_until;              /* no answer, last read failed: answer its error until then */
        unsigned renewals;

        unsigned attempt;               /* consecutive failures */
        uint64_t rnd;
        bool last_failed_transient;
        long last_status;
        char *last_error;

        LeaseState state;
        LeaseOp op;
        VaultRequest *req;
        sd_event_source *timer;
        LeaseWaiter *waiters;
        usec_t last_used;
        bool release_requested;

        /* identity = user: the user's own token reads it (NULL: the broker's) */
        Secret *token;
        char *token_accessor;
        usec_t token_expires_realtime;  /* USEC_INFINITY: no end */
};

struct Retiree {
        Manager *manager;
        Retiree *prev, *next;
        char *lease_id;
        char *owner;
        char *name;
        sd_event_source *timer;
        VaultRequest *req;
        usec_t until;                   /* retried until then (the lease's end: Vault ends it anyway),
                                         * USEC_INFINITY: RETIREE_ATTEMPTS_MAX tries */
        unsigned attempt;
        bool failed;
        bool stop_counted;              /* one of manager->n_stop_pending */
};

static const char *const state_table[_LEASE_STATE_MAX] = {
        [LEASE_LIVE] = "live",
        [LEASE_RENEWING] = "renewing",
        [LEASE_ROTATING] = "rotating",
        [LEASE_EXPIRING] = "expiring",
        [LEASE_REVOKING] = "revoking",
        [LEASE_REVOKE_FAILED] = "revoke_failed",
};

const char *lease_state_to_string(LeaseState s) {
        if (s < 0 || s >= _LEASE_STATE_MAX)
                return NULL;
        return state_table[s];
}

static uint64_t random_u64(void) {
        uint64_t v = 0;

        if (getrandom(&v, sizeof(v), GRND_NONBLOCK) != sizeof(v))
                v = now(CLOCK_MONOTONIC) * 6364136223846793005ULL;
        return v;
}

/* Where the lease's first renewal falls (schedule.c): the same in every process that holds it. */
static uint64_t lease_phase(const char *lease_id) {
        uint64_t h;

        if (!lease_id)
                return 0;
        h = hash_string(HASH_INIT, lease_id);
        return h ^ (h >> 29);
}

static const char *lease_id_log(const char *id, char *buf, size_t size) {
        return vault_lease_id_for_log(id, buf, size);
}


/* ---- waiters ---- */

static void waiter_unlink(LeaseWaiter *w) {
        Lease *l = w->lease;

        if (!l)
                return;
        LIST_REMOVE(l->waiters, w);
        w->lease = NULL;
}

/**
 * lease_waiter_cancel() - forget a pending Get or Release; its callback will not run
 * @w: the waiter, NULL is fine
 */
void lease_waiter_cancel(LeaseWaiter *w) {
        if (!w)
                return;
        waiter_unlink(w);
        free(w);
}

/**
 * lease_waiter_set_wire() - answer this pending Get with the reply's bytes rather than its parameters
 * @w:    a waiter returned by lease_get()
 * @wire: called instead of the LeaseDoneFunc on success
 *
 * For callers that send the reply as it is (a varlink peer): the answer is built and serialized once,
 * then copied to every such waiter, however many joined the read (a miss storm).
 */
void lease_waiter_set_wire(LeaseWaiter *w, LeaseWireFunc wire) {
        if (w && !w->release)
                w->wire = wire;
}

static LeaseWaiter *waiter_add(Lease *l, bool release, LeaseDoneFunc cb, void *userdata) {
        LeaseWaiter *w;

        w = calloc(1, sizeof(*w));
        if (!w)
                return NULL;
        *w = (LeaseWaiter) { .lease = l, .cb = cb, .userdata = userdata, .release = release };
        LIST_PREPEND(l->waiters, w);
        return w;
}

static bool has_waiters(Lease *l, bool release) {
        for (LeaseWaiter *w = l->waiters; w; w = w->next)
                if (w->release == release)
                        return true;
        return false;
}

/* Completes every waiter of one kind. The callback may do anything but free this lease. */
static void waiters_complete(Lease *l, bool release, const char *error, json_object *params) {
        LeaseWaiter *w, *next;

        for (w = l->waiters; w; w = next) {
                next = w->next;
                if (w->release != release)
                        continue;
                waiter_unlink(w);
                w->cb(error, params, w->userdata);
                free(w);
                next = l->waiters;      /* the list may have changed under us */
        }
}

static void waiters_fail(Lease *l, bool release, const char *error, const char *key, const char *value,
                         long status) {
        json_object *p = json_object_new_object();

        if (p) {
                if (status > 0)
                        (void) json_object_add_or_put(p, "status", json_object_new_int64(status));
                if (key)
                        (void) json_object_add_or_put(p, key, json_object_new_string(value ?: "unknown"));
        }
        waiters_complete(l, release, error, p);
        json_object_put(p);
}

/* Sends the lease's last Vault failure to its waiters of one kind. */
static void waiters_fail_vault(Lease *l, bool release) {
        if (l->last_failed_transient || l->last_status == 0)
                waiters_fail(l, release, ERROR_VAULT_UNAVAILABLE, "reason", l->last_error, 0);
        else
                waiters_fail(l, release, ERROR_VAULT_ERROR, "message", l->last_error, l->last_status);
}

/* ---- the answer ---- */

static void answer_drop(Lease *l) {
        l->have_answer = false;
        l->lease_id = mfree_str(l->lease_id);
        l->data = secret_free(l->data);
        reply_cache_clear(&l->reply);
        l->accessor = mfree_str(l->accessor);
        l->renewals = 0;
        l->times = (LeaseTimes) {};
}

static void record_failure(Lease *l, const VaultReply *reply) {
        free(l->last_error);
        l->last_error = strdup(reply->error ?: vault_result_to_string(reply->result) ?: "unknown error");
        l->last_failed_transient = reply->transient || reply->result == VAULT_UNAVAILABLE;
        l->last_status = reply->status;
        l->attempt++;
}

/* Builds {"credential":{...}} from the cached answer; NULL with *ret_bad_field on a format error. */
static int build_credential(Lease *l, json_object **ret, char **ret_bad_field) {
        _cleanup_(json_object_put_wipedp) json_object *data = NULL, *reply = NULL;
        json_object *cred, *lease;
        struct json_tokener *tok;
        int r;

        tok = json_tokener_new();
        if (!tok)
                return -ENOMEM;
        data = json_tokener_parse_ex(tok, secret_get(l->data), (int) secret_size(l->data));
        json_tokener_free(tok);
        if (!data || !json_object_is_type(data, json_type_object))
                return -EBADMSG;

        reply = json_object_new_object();
        cred = json_object_new_object();
        if (!reply || json_object_add_or_put(reply, "credential", cred) < 0)
                return -ENOMEM;
        if (json_object_add_or_put(cred, "name", json_object_new_string(l->cred->name)) < 0)
                return -ENOMEM;

        if (l->times.leased) {
                usec_t end = schedule_end(&l->times), cutoff = schedule_cutoff(&l->times);

                lease = json_object_new_object();
                r = json_object_add_or_put(cred, "lease", lease);
                if (r < 0)
                        return r;
                if (json_object_add_or_put(lease, "renewable", json_object_new_boolean(l->times.renewable && !l->times.capped)) < 0 ||
                    json_object_add_or_put(lease, "issued_usec",
                             json_object_new_int64((int64_t) realtime_from_boottime(l->issued_boottime))) < 0 ||
                    json_object_add_or_put(lease, "expires_usec", json_object_new_int64((int64_t) realtime_from_boottime(end))) < 0 ||
                    json_object_add_or_put(lease, "rotate_after_usec",
                             json_object_new_int64((int64_t) realtime_from_boottime(cutoff))) < 0)
                        return -ENOMEM;
        }

        if (l->cred->format) {
                _cleanup_(erase_string_freep) char *formatted = NULL;
                _cleanup_free_ char *bad = NULL;

                r = format_render(l->cred->format, data, &formatted, &bad);
                if (r == -ENOKEY || r == -EINVAL) {
                        /* a field the secret lacks, or a value that cannot be rendered */
                        *ret_bad_field = bad ? TAKE_PTR(bad) : strdup("format");
                        return -EBADMSG;
                }
                if (r < 0)
                        return r;
                if (json_object_add_or_put(cred, "formatted", json_object_new_string(formatted)) < 0)
                        return -ENOMEM;
        }

        if (json_object_object_add(cred, "data", data) < 0)
                return -ENOMEM;
        data = NULL;

        *ret = TAKE_PTR(reply);
        return 0;
}

static ReplyKey reply_key(Lease *l) {
        if (!l->times.leased)
                return (ReplyKey) {};
        return (ReplyKey) {
                .issued = l->issued_boottime,
                .end = schedule_end(&l->times),
                .cutoff = schedule_cutoff(&l->times),
                .leased = true,
                .renewable = l->times.renewable && !l->times.capped,
        };
}

/* The wire bytes of the answer: from the reply cache, or built (and cached) now. */
static int lease_reply_bytes(Lease *l, usec_t boottime, const char **ret_msg, size_t *ret_len) {
        _cleanup_(json_object_put_wipedp) json_object *reply = NULL;
        _cleanup_free_ char *bad = NULL;
        ReplyKey key = reply_key(l);
        usec_t offset = now(CLOCK_REALTIME) - boottime;
        char *msg;
        size_t len;
        int r;

        if (reply_cache_get(&l->reply, &key, offset, ret_msg, ret_len))
                return 0;

        r = build_credential(l, &reply, &bad);
        if (r < 0)
                return r;
        r = varlink_reply(reply, &msg, &len);
        if (r < 0)
                return r;
        r = reply_cache_put(&l->reply, &key, offset, msg, len);
        erase_and_free(msg);
        if (r < 0)
                return r;
        return reply_cache_get(&l->reply, &key, offset, ret_msg, ret_len) ? 0 : -EIO;
}

/* Completes the Get waiters that take the reply's bytes, with one serialization for all of them. Not
 * through the reply cache: most leases are read once and never asked for again, and caching every
 * first answer cost 5 MiB of locked memory with 10,000 leases. */
static void serve_wire_waiters(Lease *l, json_object *reply) {
        LeaseWaiter *w, *next;
        char *msg = NULL;
        size_t len = 0;

        for (w = l->waiters; w; w = next) {
                next = w->next;
                if (w->release || !w->wire)
                        continue;
                if (!msg && varlink_reply(reply, &msg, &len) < 0)
                        return;         /* left to the parameters path */
                waiter_unlink(w);
                w->wire(msg, len, w->userdata);
                free(w);
                next = l->waiters;      /* the list may have changed under us */
        }
        if (msg)
                erase_and_free(msg);
}

static void serve_waiters(Lease *l) {
        _cleanup_(json_object_put_wipedp) json_object *reply = NULL;
        _cleanup_free_ char *bad = NULL;
        int r;

        if (!has_waiters(l, false))
                return;

        r = build_credential(l, &reply, &bad);
        if (r == -EBADMSG && bad) {
                log_warning("Credential '%s' for %s: format refers to field '%s' the secret lacks.",
                            l->cred->name, l->owner, bad);
                waiters_fail(l, false, ERROR_FORMAT, "field", bad, 0);
                return;
        }
        if (r < 0) {
                log_error_errno(r, "Failed to build the answer for '%s': %m", l->cred->name);
                waiters_fail(l, false, ERROR_VAULT_UNAVAILABLE, "reason", "internal error", 0);
                return;
        }
        serve_wire_waiters(l, reply);
        waiters_complete(l, false, NULL, reply);
}

/* ---- the timer ---- */

static int on_lease_timer(sd_event_source *s, uint64_t usec, void *userdata);

/* Past the cutoff but Vault is down: the answer is still served while it has a second to live. */
static bool still_usable(Lease *l, usec_t n) {
        return usec_add(n, SCHEDULE_MIN_MARGIN_USEC) < schedule_end(&l->times);
}

/* schedule_next(), plus the floor between two reads of this lease. */
static ScheduleAction lease_next(Lease *l, usec_t n, usec_t *ret_when) {
        ScheduleAction a;

        a = schedule_next(&l->times, n, l->attempt, l->rnd, ret_when);
        if (a == SCHEDULE_REPLACE && (l->unit_end_warned || l->no_data)) {
                /* a unit holds its copy: no replacement to hand it, the lease runs to its end */
                *ret_when = schedule_end(&l->times);
                return SCHEDULE_EXPIRE;
        }
        if (a == SCHEDULE_REPLACE && l->last_read > 0)
                *ret_when = MAX(*ret_when, usec_add(l->last_read, READ_INTERVAL_MIN_USEC));
        return a;
}

static void lease_arm(Lease *l) {
        Manager *m = l->manager;
        usec_t deadline = USEC_INFINITY, when, n = now(CLOCK_BOOTTIME);
        int r;

        if (l->op != OP_NONE) {
                if (l->timer)
                        (void) sd_event_source_set_enabled(l->timer, SD_EVENT_OFF);
                return;
        }

        if (l->have_answer)
                (void) lease_next(l, n, &when), deadline = when;
        if (m->config->broker.idle_release_usec > 0 && !l->unit)
                deadline = MIN(deadline, usec_add(l->last_used, m->config->broker.idle_release_usec));
        if (!l->have_answer)
                deadline = MIN(deadline, MAX(l->fail_until, n));       /* nothing to keep: collect it */

        if (!l->timer) {
                r = sd_event_add_time(m->event, &l->timer, CLOCK_BOOTTIME, deadline, TIMER_ACCURACY_USEC,
                                      on_lease_timer, l);
                if (r < 0) {
                        log_error_errno(r, "Failed to add the timer of %s: %m", l->description);
                        return;
                }
                (void) sd_event_source_set_description(l->timer, l->description);
        } else
                (void) sd_event_source_set_time(l->timer, deadline);
        (void) sd_event_source_set_enabled(l->timer, SD_EVENT_ONESHOT);
}

static void start_read(Lease *l);
static void start_renew(Lease *l);
static void start_revoke(Lease *l);
static void lease_unit_cannot_renew(Lease *l);
static void lease_saved(Lease *l, bool added);

/* After anything changed: serve, fetch, or re-arm. */
static void lease_kick(Lease *l) {
        usec_t n = now(CLOCK_BOOTTIME);

        if (l->release_requested) {
                if (l->op == OP_NONE)
                        start_revoke(l);
                return;
        }

        /* A valid cached answer is served at once, even while a renewal or replacement is in flight. */
        if (l->have_answer && schedule_can_hand_out(&l->times, n))
                serve_waiters(l);
        if (l->op != OP_NONE)
                return;

        if (has_waiters(l, false)) {
                if (!l->have_answer && n < l->fail_until) {
                        /* the last read failed a moment ago: do not hammer Vault for every caller */
                        waiters_fail_vault(l, false);
                } else if (l->have_answer && l->attempt > 0 && l->last_failed_transient &&
                           still_usable(l, n)) {
                        /* Vault is down, the old answer still works until its end: better than nothing */
                        serve_waiters(l);
                } else if (l->have_answer && l->last_read > 0 && n < l->last_read + READ_INTERVAL_MIN_USEC) {
                        /* Just read, and already too short-lived to hand out: do not read again */
                        log_warning("'%s' for %s: Vault's answer ends too soon to be handed out.",
                                    l->cred->name, l->owner);
                        waiters_fail(l, false, ERROR_VAULT_UNAVAILABLE, "reason",
                                     "the credential from Vault expires too soon", 0);
                } else {
                        start_read(l);
                        return;
                }
        }
        lease_arm(l);
}

/* ---- retirees: replaced leases, revoked after a grace period ---- */

static Retiree *retiree_free(Retiree *t) {
        Manager *m;

        if (!t)
                return NULL;
        m = t->manager;
        LIST_REMOVE(m->retirees, t);
        t->req = vault_request_cancel(t->req);
        sd_event_source_disable_unref(t->timer);
        free(t->lease_id);
        free(t->owner);
        free(t->name);
        free(t);
        manager_update_status(m);       /* the last one gone may make the broker idle */
        restart_state_changed(m, true);
        return NULL;
}

static int on_retiree_timer(sd_event_source *s, uint64_t usec, void *userdata);

/* A revoke at stop came back: the stop waits for one fewer. */
static void retiree_stop_done(Retiree *t) {
        Manager *m = t->manager;

        if (!t->stop_counted)
                return;
        t->stop_counted = false;
        if (m->n_stop_pending > 0)
                m->n_stop_pending--;
        manager_check_stopped(m);
}

static void on_retiree_revoked(VaultRequest *req, const VaultReply *reply, void *userdata) {
        Retiree *t = userdata;
        Manager *m = t->manager;
        char idbuf[VAULT_LEASE_LOG_MAX];
        usec_t next;

        t->req = NULL;
        if (IN_SET_REVOKED(reply->result)) {
                log_info("Revoked lease %s of '%s' for %s.",
                         lease_id_log(t->lease_id, idbuf, sizeof(idbuf)), t->name, t->owner);
                retiree_stop_done(t);
                retiree_free(t);
                return;
        }
        t->failed = true;
        t->attempt++;
        if (m->stopping) {
                /* kept in the lease table: the next start tries again */
                log_warning("Revoking lease %s of '%s' for %s at stop failed (status %ld): %s; the next start "
                            "retries.", lease_id_log(t->lease_id, idbuf, sizeof(idbuf)), t->name, t->owner,
                            reply->status, reply->error ?: vault_result_to_string(reply->result));
                retiree_stop_done(t);
                return;
        }
        next = now(CLOCK_BOOTTIME) + schedule_backoff(t->attempt, random_u64());
        if (t->until == USEC_INFINITY ? t->attempt >= RETIREE_ATTEMPTS_MAX : next >= t->until) {
                log_error("Giving up revoking lease %s of '%s' for %s: %s%s",
                          lease_id_log(t->lease_id, idbuf, sizeof(idbuf)), t->name, t->owner,
                          reply->error ?: vault_result_to_string(reply->result),
                          t->until == USEC_INFINITY ? "" : " (it ends before the next try: Vault revokes it then)");
                retiree_free(t);
                return;
        }
        log_warning("Revoking lease %s of '%s' for %s failed (status %ld): %s; trying again in %llus.",
                    lease_id_log(t->lease_id, idbuf, sizeof(idbuf)), t->name, t->owner, reply->status,
                    reply->error ?: vault_result_to_string(reply->result),
                    (unsigned long long) ((next - now(CLOCK_BOOTTIME)) / USEC_PER_SEC));
        (void) sd_event_source_set_time(t->timer, next);
        (void) sd_event_source_set_enabled(t->timer, SD_EVENT_ONESHOT);
}

static int on_retiree_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Retiree *t = userdata;
        int r;

        r = vault_lease_revoke(t->manager->vault, t->lease_id, on_retiree_revoked, t, &t->req);
        if (r < 0) {
                log_error_errno(r, "Failed to start revoking a lease of '%s': %m", t->name);
                retiree_stop_done(t);
                retiree_free(t);
        }
        return 0;
}

/* Revoke now rather than at the timer's time, unless a revoke is already on its way. */
static void retiree_retry_now(Retiree *t) {
        if (t->req)
                return;
        (void) sd_event_source_set_time(t->timer, now(CLOCK_BOOTTIME));
        (void) sd_event_source_set_enabled(t->timer, SD_EVENT_ONESHOT);
}

/* A lease to revoke at @when, retried until @until; takes @lease_id. NULL on failure (logged). */
static Retiree *retiree_add(Manager *m, char *lease_id, const char *owner, const char *name, usec_t when,
                            usec_t until) {
        Retiree *t;
        int r;

        t = calloc(1, sizeof(*t));
        if (!t) {
                free(lease_id);
                log_oom();
                return NULL;
        }
        t->manager = m;
        t->lease_id = lease_id;
        t->owner = strdup(owner);
        t->name = strdup(name);
        t->until = until;
        LIST_PREPEND(m->retirees, t);
        if (!t->lease_id || !t->owner || !t->name) {
                log_oom();
                retiree_free(t);
                return NULL;
        }
        r = sd_event_add_time(m->event, &t->timer, CLOCK_BOOTTIME, when, TIMER_ACCURACY_USEC, on_retiree_timer, t);
        if (r < 0) {
                log_error_errno(r, "Failed to schedule the revoke of a lease of '%s': %m", name);
                retiree_free(t);
                return NULL;
        }
        (void) sd_event_source_set_description(t->timer, "retiree");
        restart_state_changed(m, true);
        return t;
}

/* A replaced lease: revoked after a grace period for the callers that just got it. */
static void retiree_new(Lease *l) {
        (void) retiree_add(l->manager, TAKE_PTR(l->lease_id), l->owner, l->cred->name,
                           schedule_revoke_old_at(&l->times, now(CLOCK_BOOTTIME)), schedule_end(&l->times));
}

/* ---- read ---- */

/* KV v2 wraps the secret as {"data":{...},"metadata":{"version":...}}: hand out data.data. */
static json_object *unwrap_kv2(const VaultReply *reply) {
        json_object *inner, *meta, *v;

        if (reply->lease_id || !reply->data || json_object_object_length(reply->data) != 2)
                return reply->data;
        if (!json_object_object_get_ex(reply->data, "data", &inner) ||
            !json_object_is_type(inner, json_type_object) ||
            !json_object_object_get_ex(reply->data, "metadata", &meta) ||
            !json_object_is_type(meta, json_type_object) ||
            !json_object_object_get_ex(meta, "version", &v))
                return reply->data;
        return inner;
}

/* The end of the broker token, on CLOCK_BOOTTIME; unknown counts as never. */
static usec_t token_end(Manager *m) {
        usec_t e = vault_client_token_expires(m->vault);

        return e == 0 ? USEC_INFINITY : boottime_from_realtime(e);
}

static void on_read_done(VaultRequest *req, const VaultReply *reply, void *userdata) {
        Lease *l = userdata;
        Manager *m = l->manager;
        json_object *data;
        char idbuf[VAULT_LEASE_LOG_MAX];
        int r;

        l->req = NULL;
        l->op = OP_NONE;

        data = reply->result == VAULT_OK ? unwrap_kv2(reply) : NULL;
        if (!data || !json_object_is_type(data, json_type_object)) {
                if (reply->result == VAULT_OK)
                        log_warning("Vault returned no data for '%s' (%s).", l->cred->name, l->cred->path);
                record_failure(l, reply);
                log_warning("Reading '%s' for %s failed: %s (status %ld, attempt %u).",
                            l->cred->path, l->owner, l->last_error, reply->status, l->attempt);
                l->rnd = random_u64();

                if (has_waiters(l, false)) {
                        if (l->have_answer && l->last_failed_transient &&
                            still_usable(l, now(CLOCK_BOOTTIME)))
                                serve_waiters(l);
                        else
                                waiters_fail_vault(l, false);
                }
                if (!l->have_answer)
                        l->fail_until = now(CLOCK_BOOTTIME) +
                                MIN(schedule_backoff(l->attempt, l->rnd), NEGATIVE_CACHE_MAX_USEC);
                lease_kick(l);
                return;
        }

        /* A replaced answer goes on living for a grace period, then is revoked. */
        if (l->have_answer && l->lease_id)
                retiree_new(l);
        answer_drop(l);

        r = secret_new_string(json_object_to_json_string_ext(data, JSON_C_TO_STRING_PLAIN), &l->data);
        /* wipe json-c's print buffer of that text */
        {
                const char *s = json_object_to_json_string_ext(data, JSON_C_TO_STRING_PLAIN);
                explicit_bzero_safe((char *) s, strlen(s));
        }
        if (r < 0) {
                log_oom();
                waiters_fail(l, false, ERROR_VAULT_UNAVAILABLE, "reason", "out of memory", 0);
                lease_free(l);
                return;
        }

        l->have_answer = true;
        l->lease_id = reply->lease_id ? strdup(reply->lease_id) : NULL;
        if (l->token)
                l->accessor = l->token_accessor ? strdup(l->token_accessor) : NULL;
        else
                l->accessor = vault_client_token_accessor(m->vault) ? strdup(vault_client_token_accessor(m->vault)) : NULL;
        l->issued_boottime = reply->received_boottime_usec ?: now(CLOCK_BOOTTIME);
        l->times = (LeaseTimes) {
                .issued = l->issued_boottime,
                .read = l->issued_boottime,
                .phase = lease_phase(l->lease_id),
                .leased = l->lease_id && reply->lease_duration > 0,
                .renewable = reply->renewable,
                .refresh = l->cred->refresh_usec,
                .token_expiry = l->token ? (l->token_expires_realtime == USEC_INFINITY ? USEC_INFINITY :
                                            boottime_from_realtime(l->token_expires_realtime))
                                         : token_end(m),
        };
        if (l->times.leased) {
                l->times.ttl = (usec_t) reply->lease_duration * USEC_PER_SEC;
                l->times.expiry = l->times.issued + l->times.ttl;
        } else {
                l->times.expiry = USEC_INFINITY;
                if (l->lease_id)
                        log_warning("'%s' came with a lease but no duration: treating it as static, "
                                    "re-read every refresh period.", l->cred->name);
        }
        l->attempt = 0;
        l->fail_until = 0;
        l->rnd = random_u64();
        l->state = LEASE_LIVE;

        log_info("Fetched '%s' for %s%s%s.", l->cred->name, l->owner,
                 l->lease_id ? ", lease " : "",
                 l->lease_id ? lease_id_log(l->lease_id, idbuf, sizeof(idbuf)) : "");
        lease_saved(l, true);

        lease_kick(l);
}

static void start_read(Lease *l) {
        int r;

        assert(l->op == OP_NONE);

        l->op = OP_READ;
        l->last_read = now(CLOCK_BOOTTIME);
        if (l->have_answer)
                l->state = LEASE_ROTATING;
        r = vault_read(l->manager->vault, l->cred->path, l->token, 0, on_read_done, l, &l->req);
        if (r < 0) {
                l->op = OP_NONE;
                log_error_errno(r, "Failed to start reading '%s': %m", l->cred->path);
                waiters_fail(l, false, ERROR_VAULT_UNAVAILABLE, "reason", "internal error", 0);
                if (!l->have_answer) {
                        lease_free(l);
                        return;
                }
                l->attempt++;
                lease_arm(l);
        }
}

/* ---- renew ---- */

static void on_renew_done(VaultRequest *req, const VaultReply *reply, void *userdata) {
        Lease *l = userdata;
        char idbuf[VAULT_LEASE_LOG_MAX];

        l->req = NULL;
        l->op = OP_NONE;
        l->rnd = random_u64();

        switch (reply->result) {
        case VAULT_OK: {
                usec_t received = reply->received_boottime_usec ?: now(CLOCK_BOOTTIME);
                usec_t returned = (usec_t) MAX(reply->lease_duration, 0) * USEC_PER_SEC;

                l->times.issued = received;
                l->times.expiry = received + returned;
                l->times.unconfirmed = false;
                l->renewals++;
                l->attempt = 0;
                if (!reply->renewable || schedule_renewal_capped(l->times.ttl, returned)) {
                        l->times.capped = true;
                        l->state = LEASE_ROTATING;
                        log_info("Renewal of '%s' for %s returned %llus of %llus asked: at its max TTL, "
                                 "fetching a replacement.", l->cred->name, l->owner,
                                 (unsigned long long) (returned / USEC_PER_SEC),
                                 (unsigned long long) (l->times.ttl / USEC_PER_SEC));
                } else {
                        l->state = LEASE_LIVE;
                        log_debug("Renewed '%s' for %s for %llus.", l->cred->name, l->owner,
                                  (unsigned long long) (returned / USEC_PER_SEC));
                }
                break;
        }

        case VAULT_LEASE_NOT_FOUND:
                if (l->times.unconfirmed)
                        log_info("Lease %s of '%s' for %s ended before this process could renew it.",
                                 lease_id_log(l->lease_id, idbuf, sizeof(idbuf)), l->cred->name, l->owner);
                else
                        log_warning("Lease %s of '%s' for %s is gone: re-issuing.",
                                    lease_id_log(l->lease_id, idbuf, sizeof(idbuf)), l->cred->name, l->owner);
                answer_drop(l);
                l->attempt = 0;
                if (!has_waiters(l, false) && !l->release_requested) {
                        lease_free(l);
                        return;
                }
                break;

        case VAULT_PERMISSION_DENIED:
        case VAULT_NOT_RENEWABLE:
        case VAULT_PAST_MAX_TTL:
                record_failure(l, reply);
                log_warning("Renewing lease %s of '%s' for %s refused (status %ld: %s): replacing it before "
                            "it ends instead.", lease_id_log(l->lease_id, idbuf, sizeof(idbuf)),
                            l->cred->name, l->owner, reply->status, l->last_error);
                l->attempt = 0;
                l->times.capped = true;
                l->state = LEASE_ROTATING;
                break;

        default:
                record_failure(l, reply);
                log_warning("Renewing lease %s of '%s' for %s failed (status %ld: %s), attempt %u.",
                            lease_id_log(l->lease_id, idbuf, sizeof(idbuf)), l->cred->name, l->owner,
                            reply->status, l->last_error, l->attempt);
                l->state = LEASE_LIVE;
                break;
        }

        lease_saved(l, false);
        lease_kick(l);
}

static void start_renew(Lease *l) {
        int r;

        l->op = OP_RENEW;
        l->state = LEASE_RENEWING;
        r = vault_lease_renew(l->manager->vault, l->lease_id, l->times.ttl / USEC_PER_SEC, on_renew_done, l,
                              &l->req);
        if (r < 0) {
                l->op = OP_NONE;
                l->state = LEASE_LIVE;
                l->attempt++;
                log_error_errno(r, "Failed to start renewing '%s': %m", l->cred->name);
                lease_arm(l);
        }
}

/* ---- revoke / release ---- */

static void on_revoke_done(VaultRequest *req, const VaultReply *reply, void *userdata) {
        Lease *l = userdata;
        char idbuf[VAULT_LEASE_LOG_MAX];
        json_object *p;

        l->req = NULL;
        l->op = OP_NONE;

        if (IN_SET_REVOKED(reply->result)) {
                log_info("Revoked lease %s of '%s' for %s.", lease_id_log(l->lease_id, idbuf, sizeof(idbuf)),
                         l->cred->name, l->owner);
                p = json_object_new_object();
                waiters_complete(l, true, NULL, p);
                json_object_put(p);
                lease_free(l);
                return;
        }

        record_failure(l, reply);
        l->state = LEASE_REVOKE_FAILED;
        log_warning("Revoking lease %s of '%s' for %s failed (status %ld): %s; retrying in the background.",
                    lease_id_log(l->lease_id, idbuf, sizeof(idbuf)), l->cred->name, l->owner, reply->status,
                    l->last_error);
        waiters_fail_vault(l, true);
        waiters_fail(l, false, ERROR_VAULT_UNAVAILABLE, "reason", "the credential is being released", 0);
        /* Nothing hands this answer out again, but the lease lives in Vault (and its database user in
         * the database) until revoked: keep trying, until its own end, across restarts too. */
        if (l->lease_id) {
                Retiree *t = retiree_add(l->manager, TAKE_PTR(l->lease_id), l->owner, l->cred->name,
                                         now(CLOCK_BOOTTIME) + schedule_backoff(1, random_u64()),
                                         schedule_end(&l->times));
                if (t) {
                        t->attempt = 1;
                        t->failed = true;
                }
        }
        answer_drop(l);
        lease_free(l);
}

static void start_revoke(Lease *l) {
        int r;

        l->release_requested = true;
        if (l->op == OP_RENEW) {
                l->req = vault_request_cancel(l->req);
                l->op = OP_NONE;
        }
        if (l->op != OP_NONE)
                return;         /* a read: revoke what it brings */

        waiters_fail(l, false, ERROR_VAULT_UNAVAILABLE, "reason", "the credential is being released", 0);

        if (!l->have_answer || !l->lease_id) {
                json_object *p = json_object_new_object();

                log_info("Released '%s' for %s.", l->cred->name, l->owner);
                waiters_complete(l, true, NULL, p);
                json_object_put(p);
                lease_free(l);
                return;
        }

        l->op = OP_REVOKE;
        l->state = LEASE_REVOKING;
        restart_state_changed(l->manager, true);
        r = vault_lease_revoke(l->manager->vault, l->lease_id, on_revoke_done, l, &l->req);
        if (r < 0) {
                l->op = OP_NONE;
                log_error_errno(r, "Failed to start revoking '%s': %m", l->cred->name);
                waiters_fail(l, true, ERROR_VAULT_UNAVAILABLE, "reason", "internal error", 0);
                lease_free(l);
        }
}

static int on_lease_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Lease *l = userdata;
        Manager *m = l->manager;
        usec_t n = now(CLOCK_BOOTTIME), when;
        ScheduleAction a;

        if (l->op != OP_NONE)
                return 0;

        if (m->config->broker.idle_release_usec > 0 && !l->waiters && !l->unit &&
            n >= usec_add(l->last_used, m->config->broker.idle_release_usec)) {
                if (session_uid_active(m, l->uid)) {
                        /* a live session holds it: not idle */
                        l->last_used = n;
                        lease_arm(l);
                        return 0;
                }
                log_info("'%s' for %s unused for %llus: releasing.", l->cred->name, l->owner,
                         (unsigned long long) (m->config->broker.idle_release_usec / USEC_PER_SEC));
                start_revoke(l);
                return 0;
        }

        if (!l->have_answer) {
                if (!l->waiters && n >= l->fail_until)
                        lease_free(l);
                else
                        lease_arm(l);
                return 0;
        }

        a = lease_next(l, n, &when);
        if (when > n + TIMER_ACCURACY_USEC) {
                lease_arm(l);
                return 0;
        }

        switch (a) {
        case SCHEDULE_RENEW:
                start_renew(l);
                break;
        case SCHEDULE_REPLACE:
                if (l->unit && !has_waiters(l, false)) {
                        lease_unit_cannot_renew(l);
                        break;
                }
                start_read(l);
                break;
        default:
                log_info("'%s' for %s has expired.", l->cred->name, l->owner);
                l->state = LEASE_EXPIRING;
                answer_drop(l);
                lease_free(l);
                break;
        }
        return 0;
}


/* A unit's lease at its hand-off point: the unit keeps the copy it was given, so say when it ends. */
static void lease_unit_cannot_renew(Lease *l) {
        usec_t end = schedule_end(&l->times);

        if (!l->times.leased) {
                /* a static secret (KV): nothing to renew or revoke, the unit keeps its copy */
                lease_free(l);
                return;
        }
        l->unit_end_warned = true;
        l->state = LEASE_EXPIRING;
        log_warning("Unit %s: credential '%s' cannot be renewed past its max TTL and ends in %llus "
                    "(at %llu usec since the epoch); restart the unit before then (RuntimeMaxSec= with "
                    "Restart=, or a role with a longer max_ttl).", l->unit, l->cred->name,
                    (unsigned long long) ((end - MIN(end, now(CLOCK_BOOTTIME))) / USEC_PER_SEC),
                    (unsigned long long) realtime_from_boottime(end));
        lease_arm(l);
}

/* ---- the cache ---- */

/* The index key: the owner (a uid, or a unit's name) and the credential's name. */
static uint64_t lease_key(uid_t uid, const char *unit, const char *name) {
        uint64_t h = HASH_INIT;

        if (unit)
                h = hash_string(hash_u64(h, 1), unit);
        else
                h = hash_u64(hash_u64(h, 0), uid);
        return hash_string(h, name);
}

#define lease_of(e) ((Lease *) ((char *) (e) - offsetof(Lease, index)))

static Lease *lease_find(Manager *m, uid_t uid, const char *name) {
        uint64_t h = lease_key(uid, NULL, name);

        HASHTABLE_FOREACH_HASH(e, &m->lease_index, h) {
                Lease *l = lease_of(e);

                if (!l->unit && !l->no_data && l->uid == uid && strcmp(l->cred->name, name) == 0)
                        return l;
        }
        return NULL;
}

/* A unit's lease being revoked (the unit stopped) is no longer its: a restart gets a new one. */
static Lease *lease_find_unit(Manager *m, const char *unit, const char *name) {
        uint64_t h = lease_key((uid_t) -1, unit, name);

        HASHTABLE_FOREACH_HASH(e, &m->lease_index, h) {
                Lease *l = lease_of(e);

                if (l->unit && !l->release_requested && !l->no_data && strcmp(l->unit, unit) == 0 &&
                    strcmp(l->cred->name, name) == 0)
                        return l;
        }
        return NULL;
}

static int lease_new(Manager *m, uid_t uid, const char *unit, const CredentialConfig *cred, Lease **ret) {
        Lease *l;

        l = calloc(1, sizeof(*l));
        if (!l)
                return -ENOMEM;
        l->manager = m;
        l->uid = uid;
        l->cred = cred;
        l->last_used = now(CLOCK_BOOTTIME);
        l->rnd = random_u64();
        if ((unit ? asprintf(&l->owner, "unit:%s", unit) : asprintf(&l->owner, "uid:%u", (unsigned) uid)) < 0)
                l->owner = NULL;
        if (!l->owner || asprintf(&l->description, "lease:%s", cred->name) < 0 ||
            (unit && !(l->unit = strdup(unit))) ||
            hashtable_add(&m->lease_index, &l->index, lease_key(uid, unit, cred->name)) < 0) {
                free(l->unit);
                free(l->owner);
                free(l->description);
                free(l);
                return -ENOMEM;
        }
        LIST_PREPEND(m->leases, l);
        m->n_leases++;
        *ret = l;
        return 0;
}

/**
 * lease_free() - drop a lease from the cache, wiping its secret
 * @l: the lease, NULL is fine
 *
 * Pending waiters are failed with VaultUnavailable; the Vault request in flight is cancelled. Does
 * not revoke anything.
 *
 * Return: NULL
 */
Lease *lease_free(Lease *l) {
        Manager *m;

        if (!l)
                return NULL;
        m = l->manager;

        LIST_REMOVE(m->leases, l);
        m->n_leases--;
        hashtable_remove(&m->lease_index, &l->index);

        l->req = vault_request_cancel(l->req);
        l->op = OP_NONE;
        if (l->waiters) {
                waiters_fail(l, false, ERROR_VAULT_UNAVAILABLE, "reason", "the credential was dropped", 0);
                waiters_fail(l, true, ERROR_VAULT_UNAVAILABLE, "reason", "the credential was dropped", 0);
        }
        l->timer = sd_event_source_disable_unref(l->timer);
        answer_drop(l);
        secret_free(l->token);
        free(l->token_accessor);
        free(l->last_error);
        free(l->unit);
        free(l->cgroup);
        free(l->owner);
        free(l->description);
        free(l);

        manager_update_status(m);
        manager_check_stopped(m);
        restart_state_changed(m, true);
        return NULL;
}

void lease_free_all(Manager *m) {
        while (m->leases)
                lease_free(m->leases);
}

void retirees_free_all(Manager *m) {
        while (m->retirees)
                retiree_free(m->retirees);
}

static int lease_get_owner(Manager *m, uid_t uid, const char *unit, const CredentialConfig *cred,
                           const Secret *token, const char *accessor, usec_t token_expires_realtime, bool may_start,
                           LeaseDoneFunc cb, void *userdata, LeaseWaiter **ret_waiter);

/**
 * lease_get() - the caller's credential, from the cache or from Vault
 * @m:          the manager
 * @uid:        the owner
 * @cred:       the credential, already authorised for @uid
 * @cb:         gets the reply parameters ({"credential":{...}}) or an error
 * @userdata:   for @cb
 * @ret_waiter: set while the answer is pending (for lease_waiter_cancel()), else NULL
 *
 * A cached answer is given at once (@cb runs before this returns). Otherwise the caller waits for
 * the read, renewal or replacement already in flight for this key, or for a new one, which is only
 * started when @may_start (the caller's uid is under its limit of requests to Vault in flight).
 *
 * Return: 1 when the caller joined a Vault request already in flight, 0 when it was answered from
 * the cache or started a new one, -EBUSY when one would be needed but @may_start is false, another
 * negative errno when nothing was started (@cb does not run on errors).
 */
int lease_get(Manager *m, uid_t uid, const CredentialConfig *cred, bool may_start, LeaseDoneFunc cb,
              void *userdata, LeaseWaiter **ret_waiter) {
        return lease_get_owner(m, uid, NULL, cred, NULL, NULL, 0, may_start, cb, userdata, ret_waiter);
}

/**
 * lease_get_cached() - the wire bytes of a Get answered from the cache, without a waiter
 * @m:       the manager
 * @uid:     the owner
 * @cred:    the credential, already authorised for @uid
 * @ret_msg: the complete varlink reply, NUL included; valid until the event loop runs again. It
 *           carries the secret: copy it into a buffer that is wiped.
 * @ret_len: its length
 *
 * The fast path of a cached Get: no JSON is parsed or built while the answer's times stay the same.
 * Anything else (no answer yet, past its hand-out cutoff, being released, a format error to report,
 * an identity = user credential) is left to lease_get() and userlogin_lease_get().
 *
 * Return: 1 with the bytes, 0 when the caller must use lease_get()
 */
int lease_get_cached(Manager *m, uid_t uid, const CredentialConfig *cred, const char **ret_msg, size_t *ret_len) {
        usec_t n;
        Lease *l;

        /* identity = user: only while the user's own login lasts, which userlogin_lease_get() checks */
        if (cred->identity == CREDENTIAL_IDENTITY_USER)
                return 0;
        l = lease_find(m, uid, cred->name);
        if (!l || !l->have_answer || l->release_requested || !l->data)
                return 0;
        n = now(CLOCK_BOOTTIME);
        if (!schedule_can_hand_out(&l->times, n))
                return 0;
        if (lease_reply_bytes(l, n, ret_msg, ret_len) < 0)
                return 0;
        /* Not re-armed here: when the idle timer fires, on_lease_timer() sees the new last_used and
         * arms for the new deadline, so a hit costs no timer update. */
        l->last_used = n;
        return 1;
}

/**
 * lease_get_unit() - lease_get() for a systemd unit (owner "unit:NAME"), for LoadCredential=
 *
 * The lease is renewed while the unit runs, never idle-released, and revoked by
 * lease_release_unit() when the unit stops. Return: as lease_get().
 */
int lease_get_unit(Manager *m, const char *unit, const char *cgroup, const CredentialConfig *cred, LeaseDoneFunc cb,
                   void *userdata, LeaseWaiter **ret_waiter) {
        Lease *l;
        int r;

        r = lease_get_owner(m, (uid_t) -1, unit, cred, NULL, NULL, 0, true, cb, userdata, ret_waiter);
        if (r >= 0 && cgroup && (l = lease_find_unit(m, unit, cred->name)) && !l->cgroup)
                l->cgroup = strdup(cgroup);
        return r;
}

/**
 * lease_get_as() - lease_get() with a token other than the broker's
 * @token:                  the user's token for identity = user credentials (copied), NULL for the broker's
 * @accessor:               its accessor (leases end with that token: lease_token_changed())
 * @token_expires_realtime: its end, USEC_INFINITY for none
 *
 * The lease is still keyed by (@uid, @cred); later reads use the token given last.
 */
int lease_get_as(Manager *m, uid_t uid, const CredentialConfig *cred, const Secret *token, const char *accessor,
                 usec_t token_expires_realtime, bool may_start, LeaseDoneFunc cb, void *userdata,
                 LeaseWaiter **ret_waiter) {
        return lease_get_owner(m, uid, NULL, cred, token, accessor, token_expires_realtime, may_start, cb, userdata,
                               ret_waiter);
}

/* Remembers the token that reads the lease from now on (identity = user). */
static int lease_set_token(Lease *l, const Secret *token, const char *accessor, usec_t expires_realtime) {
        _cleanup_(secret_freep) Secret *t = NULL;
        char *a = NULL;
        int r;

        if (!token)
                return 0;
        r = secret_dup(token, &t);
        if (r < 0)
                return r;
        if (accessor) {
                a = strdup(accessor);
                if (!a)
                        return -ENOMEM;
        }
        secret_free(l->token);
        free(l->token_accessor);
        l->token = TAKE_PTR(t);
        l->token_accessor = a;
        l->token_expires_realtime = expires_realtime;
        return 0;
}

static int lease_get_owner(Manager *m, uid_t uid, const char *unit, const CredentialConfig *cred,
                           const Secret *token, const char *accessor, usec_t token_expires_realtime, bool may_start,
                           LeaseDoneFunc cb, void *userdata, LeaseWaiter **ret_waiter) {
        LeaseWaiter *w;
        bool joined;
        Lease *l;
        int r;

        *ret_waiter = NULL;

        l = unit ? lease_find_unit(m, unit, cred->name) : lease_find(m, uid, cred->name);
        if (!l) {
                if (!may_start)
                        return -EBUSY;
                r = lease_new(m, uid, unit, cred, &l);
                if (r < 0)
                        return r;
                manager_update_status(m);
        }
        l->last_used = now(CLOCK_BOOTTIME);
        r = lease_set_token(l, token, accessor, token_expires_realtime);
        if (r < 0) {
                if (!l->have_answer && l->op == OP_NONE && !l->waiters)
                        lease_free(l);
                return r;
        }

        joined = l->op != OP_NONE;
        if (!joined && !may_start && !(l->have_answer && schedule_can_hand_out(&l->times, now(CLOCK_BOOTTIME))))
                return -EBUSY;

        w = waiter_add(l, false, cb, userdata);
        if (!w) {
                if (!l->have_answer && l->op == OP_NONE)
                        lease_free(l);
                return -ENOMEM;
        }
        *ret_waiter = w;

        if (l->release_requested) {
                /* being revoked: the caller gets a fresh one once the revoke is done */
                waiters_fail(l, false, ERROR_VAULT_UNAVAILABLE, "reason", "the credential is being released", 0);
                return 0;
        }
        lease_kick(l);
        return joined;
}

/* The retiree of @uid's @name whose revoke failed, if any. */
static Retiree *retiree_failed(Manager *m, uid_t uid, const char *name) {
        char owner[STATE_OWNER_UID_MAX];

        state_owner_of_uid(uid, owner);
        for (Retiree *t = m->retirees; t; t = t->next)
                if (t->failed && strcmp(t->owner, owner) == 0 && strcmp(t->name, name) == 0)
                        return t;
        return NULL;
}

/**
 * lease_release() - revoke the caller's own lease of @cred; @cb runs once it is revoked
 *
 * Return: 0, or a negative errno when nothing was started.
 */
int lease_release(Manager *m, uid_t uid, const CredentialConfig *cred, LeaseDoneFunc cb, void *userdata,
                  LeaseWaiter **ret_waiter) {
        LeaseWaiter *w;
        Lease *l;

        *ret_waiter = NULL;

        /* leases restored without their secret (a restart without the fd store) go too */
        for (Lease *o = m->leases, *next; o; o = next) {
                next = o->next;
                if (o->no_data && !o->unit && o->uid == uid && strcmp(o->cred->name, cred->name) == 0 &&
                    !o->release_requested)
                        start_revoke(o);
        }

        l = lease_find(m, uid, cred->name);
        if (!l) {
                json_object *p = json_object_new_object();
                Retiree *t = retiree_failed(m, uid, cred->name);

                if (t) {
                        /* an earlier release could not revoke yet: not done, say so, and try now */
                        retiree_retry_now(t);
                        if (p)
                                (void) json_object_add_or_put(p, "reason", json_object_new_string(
                                        "an earlier release could not be revoked yet; retrying"));
                        cb(ERROR_VAULT_UNAVAILABLE, p, userdata);
                } else
                        cb(NULL, p, userdata);
                json_object_put(p);
                return 0;
        }

        w = waiter_add(l, true, cb, userdata);
        if (!w)
                return -ENOMEM;
        *ret_waiter = w;

        if (l->op == OP_REVOKE)
                return 0;
        start_revoke(l);
        return 0;
}

/**
 * lease_release_on_logout() - the last session of @uid ended: revoke its release_on_logout leases
 *
 * Return: the number of leases being released
 */
unsigned lease_release_on_logout(Manager *m, uid_t uid) {
        Lease *l, *next;
        unsigned n = 0;

        for (l = m->leases; l; l = next) {
                next = l->next;
                if (l->unit || l->uid != uid || !l->cred->release_on_logout || l->release_requested)
                        continue;
                n++;
                log_info("Releasing '%s' for %s: the user's last session ended.", l->cred->name, l->owner);
                start_revoke(l);        /* may free l */
                next = m->leases;       /* the list may have changed; released leases are skipped */
        }
        return n;
}

static int held_entry(const char *credential, const char *owner, bool has_end, usec_t end, bool renewable,
                      unsigned renewals, const char *state, json_object *array) {
        json_object *e = json_object_new_object();

        if (!e)
                return -ENOMEM;
        if (json_object_array_add(array, e) < 0) {
                json_object_put(e);
                return -ENOMEM;
        }
        if (json_object_add_or_put(e, "credential", json_object_new_string(credential)) < 0 ||
            json_object_add_or_put(e, "owner", json_object_new_string(owner)) < 0 ||
            (has_end && json_object_add_or_put(e, "expires_usec", json_object_new_int64((int64_t) realtime_from_boottime(end))) < 0) ||
            json_object_add_or_put(e, "renewable", json_object_new_boolean(renewable)) < 0 ||
            json_object_add_or_put(e, "renewals", json_object_new_int64(renewals)) < 0 ||
            json_object_add_or_put(e, "state", json_object_new_string(state)) < 0)
                return -ENOMEM;
        return 0;
}

/**
 * lease_append_held() - add Held entries to @array: every lease if @all, else those of @uid
 *
 * Return: 0 or -ENOMEM
 */
int lease_append_held(Manager *m, bool all, uid_t uid, json_object *array) {
        int r;

        for (Lease *l = m->leases; l; l = l->next) {
                usec_t end;

                if (!all && l->uid != uid)
                        continue;
                if (!l->have_answer && l->state != LEASE_REVOKING)
                        continue;
                end = l->have_answer ? schedule_end(&l->times) : USEC_INFINITY;
                r = held_entry(l->cred->name, l->owner, end != USEC_INFINITY, end,
                               l->times.renewable && !l->times.capped, l->renewals,
                               lease_state_to_string(l->state), array);
                if (r < 0)
                        return r;
        }

        for (Retiree *t = m->retirees; t; t = t->next) {
                char owner[STATE_OWNER_UID_MAX];

                if (!all && (!t->owner || strcmp(t->owner, state_owner_of_uid(uid, owner)) != 0))
                        continue;
                r = held_entry(t->name ?: "?", t->owner ?: "?", false, 0, false, 0,
                               t->failed ? "revoke_failed" : "revoking", array);
                if (r < 0)
                        return r;
        }
        return 0;
}

/**
 * lease_revoke_all() - at stop with revoke_on_stop: revoke every lease (and replaced ones), drop the
 * cache; manager_check_stopped() is called as the revokes complete. Revokes that fail or do not
 * complete in time stay as retirees, so that the lease table saved at exit has them and the next
 * start retries them.
 *
 * Return: the number of revokes in flight
 */
unsigned lease_revoke_all(Manager *m) {
        usec_t n = now(CLOCK_BOOTTIME);
        unsigned count = 0;

        for (Lease *l = m->leases; l; l = l->next) {
                l->req = vault_request_cancel(l->req);
                l->op = OP_NONE;
                if (l->have_answer && l->lease_id)
                        (void) retiree_add(m, TAKE_PTR(l->lease_id), l->owner, l->cred->name, n,
                                           schedule_end(&l->times));
        }
        lease_free_all(m);
        for (Retiree *t = m->retirees; t; t = t->next) {
                retiree_retry_now(t);
                t->stop_counted = true;
                count++;
        }
        m->n_stop_pending += count;
        return count;
}

/**
 * lease_token_changed() - the broker token @accessor got a new end, or was lost
 * @event: a VaultTokenEvent
 *
 * Leases are bounded by the end of the token that created them: a renewed token moves their end
 * (and so their schedule); a lost one takes them with it.
 */
void lease_token_changed(Manager *m, int event, const char *accessor, usec_t expires_realtime) {
        Lease *l, *next;

        if (!accessor)
                return;

        for (l = m->leases; l; l = next) {
                next = l->next;
                if (!l->have_answer || !l->accessor || strcmp(l->accessor, accessor) != 0)
                        continue;

                if (event == VAULT_TOKEN_LOST) {
                        if (!l->times.leased)
                                continue;       /* a static secret does not die with the token */
                        log_warning("The token that fetched '%s' for %s is gone, and its lease with it.",
                                    l->cred->name, l->owner);
                        if (l->op == OP_RENEW) {
                                l->req = vault_request_cancel(l->req);
                                l->op = OP_NONE;
                        }
                        answer_drop(l);
                        if (l->op == OP_NONE && !l->waiters) {
                                lease_free(l);
                                continue;
                        }
                        lease_kick(l);
                        continue;
                }

                if (event == VAULT_TOKEN_ACQUIRED || event == VAULT_TOKEN_RENEWED) {
                        l->times.token_expiry = expires_realtime == 0 ? USEC_INFINITY
                                                                      : boottime_from_realtime(expires_realtime);
                        lease_arm(l);
                }
        }
        restart_state_changed(m, true);
}

/**
 * lease_release_unit() - the unit stopped: revoke every lease it owns
 *
 * Return: the number of leases being released
 */
unsigned lease_release_unit(Manager *m, const char *unit) {
        unsigned n = 0;
        Lease *l, *next;

        for (l = m->leases; l; l = next) {
                next = l->next;
                if (!l->unit || l->release_requested || strcmp(l->unit, unit) != 0)
                        continue;
                log_info("Unit %s stopped: releasing '%s'.", unit, l->cred->name);
                n++;
                if (l->op == OP_READ)
                        l->release_requested = true;    /* revoke what the read brings */
                else
                        start_revoke(l);
        }
        return n;
}

/**
 * lease_unit_holds() - whether @unit owns a lease (live or being fetched)
 */
bool lease_unit_holds(Manager *m, const char *unit) {
        for (Lease *l = m->leases; l; l = l->next)
                if (l->unit && !l->release_requested && strcmp(l->unit, unit) == 0)
                        return true;
        return false;
}

/* ---- restart (restart.c): the table without secrets, the secrets for the fd store ---- */

static usec_t rt(usec_t boottime) {
        return boottime == USEC_INFINITY || boottime == 0 ? 0 : realtime_from_boottime(boottime);
}

static usec_t bt(usec_t realtime, usec_t fallback) {
        return realtime == 0 ? fallback : boottime_from_realtime(realtime);
}

/* @l's table entry (times in CLOCK_REALTIME). */
static int lease_export_entry(const Lease *l, StateLease *e) {
        e->retiree = l->release_requested;
        e->no_data = l->no_data;
        if (!(e->owner = strdup(l->owner)) || !(e->credential = strdup(l->cred->name)) ||
            (l->lease_id && !(e->lease_id = strdup(l->lease_id))) ||
            (l->accessor && !(e->accessor = strdup(l->accessor))) ||
            (l->cgroup && !(e->cgroup = strdup(l->cgroup))))
                return -ENOMEM;
        e->issued = rt(l->issued_boottime);
        e->renewed = rt(l->times.issued);
        e->expires = l->times.leased ? rt(l->times.expiry) : 0;
        e->ttl = l->times.ttl;
        e->token_expires = rt(l->times.token_expiry);
        e->last_used = rt(l->last_used);
        e->renewals = l->renewals;
        e->renewable = l->times.renewable;
        e->capped = l->times.capped;
        return 0;
}

/* A lease just fetched (@added: it goes into the table before its reply is written) or renewed. */
static void lease_saved(Lease *l, bool added) {
        StateLease e = {};

        /* what lease_export() would write for it: not a lease whose answer is gone */
        if (l->have_answer && l->lease_id && lease_export_entry(l, &e) >= 0)
                restart_lease_saved(l->manager, &e, added);
        else
                restart_state_changed(l->manager, added);
        state_lease_done(&e);
}

/**
 * lease_export() - the lease table and (when @secrets) the secret values, for restart.c
 *
 * Leases being revoked, and replaced leases waiting for their revoke, are exported as retirees (the next
 * process revokes them). Leases still waiting for their first answer have nothing to export.
 *
 * Return: 0 or -ENOMEM
 */
int lease_export(Manager *m, StateTable *table, StateSecrets *secrets) {
        StateLease *e;
        StateSecret *x;
        int r;

        for (Lease *l = m->leases; l; l = l->next) {
                if (!l->have_answer)
                        continue;
                if (!l->lease_id && (l->no_data || !secrets))
                        continue;       /* a static secret without its value: nothing to keep */
                r = state_table_add(table, &e);
                if (r < 0)
                        return r;
                r = lease_export_entry(l, e);
                if (r < 0)
                        return r;

                if (!secrets || l->no_data || !l->data || l->release_requested)
                        continue;
                r = state_secrets_add(secrets, &x);
                if (r < 0)
                        return r;
                if (!(x->owner = strdup(l->owner)) || !(x->credential = strdup(l->cred->name)) ||
                    (l->lease_id && !(x->lease_id = strdup(l->lease_id))))
                        return -ENOMEM;
                r = secret_dup(l->data, &x->data);
                if (r < 0)
                        return r;
        }

        for (Retiree *t = m->retirees; t; t = t->next) {
                if (!t->lease_id || !t->owner || !t->name)
                        continue;
                r = state_table_add(table, &e);
                if (r < 0)
                        return r;
                e->retiree = true;
                if (!(e->owner = strdup(t->owner)) || !(e->credential = strdup(t->name)) ||
                    !(e->lease_id = strdup(t->lease_id)))
                        return -ENOMEM;
        }
        return 0;
}

/**
 * lease_restore() - take a lease over from the previous process
 * @e:    its table entry (verdict: keep)
 * @cred: its credential's configuration
 * @data: its secret value from the fd store, or NULL: then it is renewed but never handed out, and
 *        the next Get of its key fetches a fresh credential
 *
 * Return: 0, -EINVAL (a malformed owner), -ENOMEM
 */
int lease_restore(Manager *m, const StateLease *e, const CredentialConfig *cred, const Secret *data) {
        usec_t n = now(CLOCK_BOOTTIME);
        const char *unit = NULL;
        uid_t uid = (uid_t) -1;
        Lease *l;
        int r;

        if (strncmp(e->owner, "unit:", 5) == 0) {
                unit = e->owner + 5;
                if (!unit_name_is_valid(unit))
                        return -EINVAL;
        } else {
                uid = state_owner_uid(e->owner);
                if (uid == (uid_t) -1)
                        return -EINVAL;
        }

        r = lease_new(m, uid, unit, cred, &l);
        if (r < 0)
                return r;
        if ((e->lease_id && !(l->lease_id = strdup(e->lease_id))) ||
            (e->accessor && !(l->accessor = strdup(e->accessor))) ||
            (e->cgroup && !(l->cgroup = strdup(e->cgroup))) ||
            (data && secret_dup(data, &l->data) < 0)) {
                lease_free(l);
                return -ENOMEM;
        }
        l->no_data = !data;
        l->have_answer = true;
        l->issued_boottime = bt(e->issued, n);
        l->times = (LeaseTimes) {
                .issued = bt(e->renewed, n),
                .read = l->issued_boottime,
                .phase = lease_phase(l->lease_id),
                .leased = e->lease_id && e->expires > 0,
                .renewable = e->renewable,
                .capped = e->capped,
                .refresh = cred->refresh_usec,
                .ttl = e->ttl,
                .token_expiry = e->token_expires == 0 ? USEC_INFINITY : boottime_from_realtime(e->token_expires),
                .unconfirmed = true,
        };
        l->times.expiry = l->times.leased ? boottime_from_realtime(e->expires) : USEC_INFINITY;
        if (l->times.leased && l->times.ttl == 0)
                l->times.ttl = usec_sub_unsigned(l->times.expiry, l->times.issued);
        l->renewals = e->renewals;
        l->last_used = n;               /* the idle clock restarts */
        l->state = l->times.capped ? LEASE_ROTATING : LEASE_LIVE;
        lease_arm(l);
        return 0;
}

/**
 * lease_restore_retiree() - revoke a lease of the previous process (its owner is gone), with retries
 *
 * Return: 0 or -ENOMEM
 */
int lease_restore_retiree(Manager *m, const StateLease *e) {
        char *id = strdup(e->lease_id);

        if (!id)
                return -ENOMEM;
        return retiree_add(m, id, e->owner, e->credential, now(CLOCK_BOOTTIME), USEC_INFINITY) ? 0 : -ENOMEM;
}

/**
 * lease_accessor_in_use() - whether a live lease was created by the token with @accessor
 */
bool lease_accessor_in_use(Manager *m, const char *accessor) {
        return lease_accessor_kept(m, accessor, false);
}

/**
 * lease_accessor_kept() - whether a live lease was created by the token with @accessor, not counting
 * those being released when @but_released
 */
bool lease_accessor_kept(Manager *m, const char *accessor, bool but_released) {
        for (Lease *l = m->leases; l; l = l->next)
                if (l->have_answer && l->times.leased && l->accessor && strcmp(l->accessor, accessor) == 0 &&
                    !(but_released && l->release_requested))
                        return true;
        return false;
}

/**
 * lease_count_owners() - distinct users and units holding leases, for STATUS=
 */
void lease_count_owners(Manager *m, unsigned *ret_users, unsigned *ret_units) {
        struct OwnerSeen {
                HashEntry e;
                const char *owner;
        };
        _cleanup_free_ struct OwnerSeen *seen = NULL;
        HashTable set = {};
        unsigned users = 0, units = 0, n = 0;

        /* One pass with a set of the owners seen so far (not a walk of the list per lease). */
        seen = calloc(MAX(m->n_leases, 1U), sizeof(struct OwnerSeen));
        for (Lease *l = m->leases; l && seen && n < m->n_leases; l = l->next) {
                uint64_t h = hash_string(HASH_INIT, l->owner);
                bool dup = false;

                HASHTABLE_FOREACH_HASH(e, &set, h)
                        if (strcmp(((struct OwnerSeen *) e)->owner, l->owner) == 0) {
                                dup = true;
                                break;
                        }
                if (dup)
                        continue;
                seen[n].owner = l->owner;
                if (hashtable_add(&set, &seen[n].e, h) < 0)
                        break;
                n++;
                if (l->unit)
                        units++;
                else
                        users++;
        }
        hashtable_done(&set);
        *ret_users = users;
        *ret_units = units;
}
