/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Per-user Vault identities (DESIGN.md, "Identity and isolation"): pam_vlease in the auth stack sends
 * the user's password with Login(user, password) (root peers only, checked by the caller); we log in
 * at auth/<user_auth_mount>/login/<user> (userpass, or any method with that login shape such as
 * ldap) and keep the user's token. Credentials with identity = user are fetched with it, so Vault's
 * policies and audit log see the person; without a token, Get answers LoginRequired.
 *
 * Why it is careful:
 * - The password is used for one request and never stored or logged; the copy inside the parsed call
 *   is wiped as soon as the request has been built. Wrong passwords are logged by user name and
 *   Vault's message only.
 * - The token lives in the locked arena (Secret) and is renewed with renew-self at about two thirds
 *   of its TTL. When Vault renews it for less than asked (its max TTL is near) renewing stops and it
 *   ends with its TTL; an invalid token (403) is dropped at once. Every change of its end is passed to
 *   the lease engine (lease_token_changed()), since leases never outlive the token that made them.
 * - A token belongs to the user's sessions: it is revoked (revoke-self) when the user's last session
 *   ends, and one with no session at all (an auth stack without a session stack) after a grace
 *   period, instead of being renewed for ever. A token whose leases are kept is only forgotten: Vault
 *   would revoke them with it.
 */

#include <errno.h>
#include <pwd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <json-c/json.h>

#include "broker/config.h"
#include "broker/lease.h"
#include "broker/log.h"
#include "broker/manager.h"
#include "broker/peer.h"
#include "broker/schedule.h"
#include "broker/session.h"
#include "broker/userlogin.h"
#include "broker/vault.h"
#include "common/list.h"
#include "common/memory-util.h"
#include "common/secret.h"

#define INTERFACE "io.vlease.Broker"
/* A token from a login that opened no session is kept this long, then forgotten. */
#define NO_SESSION_GRACE_USEC (5 * USEC_PER_MINUTE)
#define TIMER_ACCURACY_USEC (100 * USEC_PER_MSEC)

struct UserToken {
        Manager *manager;
        UserToken *prev, *next;

        uid_t uid;
        char *user;
        Secret *token;
        char *accessor;
        usec_t expires_boottime;        /* USEC_INFINITY: no end */
        usec_t issued_boottime;
        usec_t ttl_usec;                /* what the login granted: the increment asked on renewal */
        usec_t login_boottime;
        bool renewable;
        bool capped;                    /* renewals stopped moving the end */
        unsigned attempt;
        sd_event_source *timer;
        VaultRequest *req;
};

struct UserLoginOp {
        Manager *manager;
        UserLoginOp *prev, *next;
        Peer *peer;
        LeaseDoneFunc cb;
        void *userdata;
        uid_t uid;
        char *user;
        VaultRequest *req;
};

static uint64_t random_u64(void) {
        uint64_t v = 0;

        if (getrandom(&v, sizeof(v), GRND_NONBLOCK) != sizeof(v))
                v = now(CLOCK_MONOTONIC) * 6364136223846793005ULL;
        return v;
}

static void reply_error(LeaseDoneFunc cb, void *userdata, const char *error, const char *key, const char *value) {
        json_object *o = json_object_new_object();

        if (o && key)
                (void) json_object_object_add(o, key, json_object_new_string(value));
        cb(error, o, userdata);
        json_object_put(o);
}

static usec_t expires_realtime(const UserToken *t) {
        return t->expires_boottime == USEC_INFINITY ? USEC_INFINITY : realtime_from_boottime(t->expires_boottime);
}

/* ---- tokens ---- */

static UserToken *token_find(Manager *m, uid_t uid) {
        for (UserToken *t = m->user_tokens; t; t = t->next)
                if (t->uid == uid)
                        return t;
        return NULL;
}

static void token_free(UserToken *t) {
        Manager *m;

        if (!t)
                return;
        m = t->manager;
        LIST_REMOVE(m->user_tokens, t);
        t->req = vault_request_cancel(t->req);
        sd_event_source_disable_unref(t->timer);
        secret_free(t->token);
        free(t->accessor);
        free(t->user);
        free(t);
}

static int on_token_timer(sd_event_source *s, uint64_t usec, void *userdata);

static void token_arm(UserToken *t) {
        usec_t n = now(CLOCK_BOOTTIME), when = USEC_INFINITY;
        int r;

        if (t->req)
                return;
        if (!session_uid_active(t->manager, t->uid))
                when = usec_add(t->login_boottime, NO_SESSION_GRACE_USEC);
        if (t->expires_boottime != USEC_INFINITY) {
                usec_t renew_at;

                if (!t->renewable || t->capped)
                        renew_at = t->expires_boottime;         /* just drop it at its end */
                else if (t->attempt > 0)
                        renew_at = MIN(usec_add(n, schedule_backoff(t->attempt, random_u64())), t->expires_boottime);
                else
                        renew_at = t->issued_boottime + (t->expires_boottime - t->issued_boottime) * 2 / 3;
                when = MIN(when, renew_at);
        }
        if (when == USEC_INFINITY) {
                if (t->timer)
                        (void) sd_event_source_set_enabled(t->timer, SD_EVENT_OFF);
                return;
        }
        if (!t->timer) {
                r = sd_event_add_time(t->manager->event, &t->timer, CLOCK_BOOTTIME, when, TIMER_ACCURACY_USEC,
                                      on_token_timer, t);
                if (r < 0) {
                        log_error_errno(r, "Cannot schedule the renewal of %s's Vault token: %m", t->user);
                        return;
                }
                (void) sd_event_source_set_description(t->timer, "user-token");
        } else
                (void) sd_event_source_set_time(t->timer, when);
        (void) sd_event_source_set_enabled(t->timer, SD_EVENT_ONESHOT);
}

static void token_lost(UserToken *t, const char *why) {
        Manager *m = t->manager;
        _cleanup_free_ char *accessor = t->accessor ? strdup(t->accessor) : NULL;

        log_warning("Vault token of %s %s: forgetting it.", t->user, why);
        token_free(t);
        if (accessor)
                lease_token_changed(m, VAULT_TOKEN_LOST, accessor, 0);
}

static void on_revoked(VaultRequest *req, const VaultReply *reply, void *userdata) {
        uid_t uid = (uid_t) (uintptr_t) userdata;

        /* 403: the token was already invalid (revoked, expired): gone all the same */
        if (reply->result == VAULT_OK || reply->result == VAULT_NO_CONTENT ||
            reply->result == VAULT_PERMISSION_DENIED)
                log_debug("Revoked the Vault token of uid %u.", (unsigned) uid);
        else
                log_warning("Revoking the Vault token of uid %u failed (status %ld: %s): it ends with its TTL.",
                            (unsigned) uid, reply->status, reply->error ?: vault_result_to_string(reply->result));
}

/* The token is no longer wanted (@why): revoke it in Vault, unless a lease it created is kept
 * (release_on_logout = no, or fetched without a session): Vault revokes a token's leases with it, so
 * that token is only forgotten and ends with its TTL. Then wipe it. */
static void token_retire(UserToken *t, const char *why) {
        Manager *m = t->manager;
        int r;

        if (t->accessor && lease_accessor_kept(m, t->accessor, true)) {
                log_info("Forgetting the Vault token of %s: %s; it ends with its TTL, and the credentials it "
                         "fetched with it.", t->user, why);
                token_free(t);
                return;
        }
        /* Its leases are being released (revoke-self takes them too: harmless) or there are none. Fire
         * and forget: the request holds its own copy of the token. */
        r = vault_token_revoke_self(m->vault, t->token, on_revoked, (void *) (uintptr_t) t->uid, NULL);
        if (r < 0)
                log_warning_errno(r, "Cannot revoke the Vault token of %s, it ends with its TTL: %m", t->user);
        else
                log_info("Revoking the Vault token of %s: %s.", t->user, why);
        token_free(t);
}

static void on_renew_done(VaultRequest *req, const VaultReply *reply, void *userdata) {
        UserToken *t = userdata;
        usec_t received, asked = t->ttl_usec;

        t->req = NULL;
        received = reply->received_boottime_usec ?: now(CLOCK_BOOTTIME);

        if (reply->result == VAULT_OK && reply->has_auth) {
                usec_t got = (usec_t) MAX(reply->auth.lease_duration, 0) * USEC_PER_SEC;

                t->attempt = 0;
                t->issued_boottime = received;
                t->expires_boottime = got > 0 ? received + got : USEC_INFINITY;
                t->renewable = reply->auth.renewable;
                if (got + USEC_PER_SEC < asked) {
                        t->capped = true;
                        log_info("Vault token of %s renewed for %llus of %llus asked: at its max TTL, it ends then.",
                                 t->user, (unsigned long long) (got / USEC_PER_SEC),
                                 (unsigned long long) (asked / USEC_PER_SEC));
                } else
                        log_debug("Renewed the Vault token of %s for %llus.", t->user,
                                  (unsigned long long) (got / USEC_PER_SEC));
                if (t->accessor)
                        lease_token_changed(t->manager, VAULT_TOKEN_RENEWED, t->accessor, expires_realtime(t));
                token_arm(t);
                return;
        }

        if (reply->result == VAULT_PERMISSION_DENIED || reply->result == VAULT_BAD_REQUEST) {
                /* invalid or expired token, or Vault refuses to renew it: it ends with its TTL */
                if (reply->result == VAULT_PERMISSION_DENIED) {
                        token_lost(t, "was refused by Vault (invalid or revoked)");
                        return;
                }
                log_warning("Vault refused to renew the token of %s (status %ld: %s): it ends with its TTL.",
                            t->user, reply->status, reply->error ?: "?");
                t->capped = true;
                token_arm(t);
                return;
        }

        t->attempt++;
        log_warning("Renewing the Vault token of %s failed (status %ld: %s), attempt %u.", t->user, reply->status,
                    reply->error ?: vault_result_to_string(reply->result), t->attempt);
        token_arm(t);
}

static int on_token_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        UserToken *t = userdata;
        usec_t n = now(CLOCK_BOOTTIME);
        int r;

        if (t->expires_boottime != USEC_INFINITY && n + TIMER_ACCURACY_USEC >= t->expires_boottime) {
                log_info("Vault token of %s has expired.", t->user);
                token_lost(t, "expired");
                return 0;
        }
        if (!session_uid_active(t->manager, t->uid) && n >= usec_add(t->login_boottime, NO_SESSION_GRACE_USEC)) {
                token_retire(t, "no session followed the Vault login");
                return 0;
        }
        if (t->expires_boottime == USEC_INFINITY || !t->renewable || t->capped) {
                token_arm(t);
                return 0;
        }
        r = vault_token_renew_self(t->manager->vault, t->token, t->ttl_usec / USEC_PER_SEC, on_renew_done, t, &t->req);
        if (r < 0) {
                t->attempt++;
                log_error_errno(r, "Cannot start renewing the Vault token of %s: %m", t->user);
                token_arm(t);
        }
        return 0;
}

/* ---- Login ---- */

static void op_free(UserLoginOp *op) {
        Manager *m = op->manager;

        LIST_REMOVE(m->user_logins, op);
        op->req = vault_request_cancel(op->req);
        free(op->user);
        free(op);
}

static void op_reply_error(UserLoginOp *op, const char *error, const char *key, const char *value) {
        if (op->cb)
                reply_error(op->cb, op->userdata, error, key, value);
        op->cb = NULL;
}

static void on_login_done(VaultRequest *req, const VaultReply *reply, void *userdata) {
        UserLoginOp *op = userdata;
        Manager *m = op->manager;
        _cleanup_(secret_freep) Secret *token = NULL;
        const char *mount = m->config->vault.user_auth_mount;
        UserToken *t;
        json_object *o;
        int r;

        op->req = NULL;

        if (reply->result == VAULT_BAD_REQUEST || reply->result == VAULT_PERMISSION_DENIED) {
                log_notice("Vault login of %s at auth/%s failed: %s (status %ld).", op->user, mount,
                           reply->error ?: "refused", reply->status);
                op_reply_error(op, INTERFACE ".AuthenticationFailed", NULL, NULL);
                op_free(op);
                return;
        }
        if (reply->result != VAULT_OK || !reply->has_auth) {
                log_warning("Vault login of %s at auth/%s not possible: %s (status %ld).", op->user, mount,
                            reply->error ?: vault_result_to_string(reply->result), reply->status);
                if (reply->transient || reply->result == VAULT_UNAVAILABLE || reply->status == 0 ||
                    reply->result == VAULT_OK)
                        op_reply_error(op, INTERFACE ".VaultUnavailable", "reason",
                                       reply->error ?: vault_result_to_string(reply->result));
                else if (op->cb) {
                        o = json_object_new_object();
                        if (o) {
                                (void) json_object_object_add(o, "status", json_object_new_int64(reply->status));
                                (void) json_object_object_add(o, "message",
                                        json_object_new_string(reply->error ?: vault_result_to_string(reply->result)));
                        }
                        op->cb(INTERFACE ".VaultError", o, op->userdata);
                        op->cb = NULL;
                        json_object_put(o);
                }
                op_free(op);
                return;
        }

        r = vault_reply_dup_token(reply, &token);
        if (r < 0) {
                log_warning_errno(r, "Vault login of %s at auth/%s returned no token: %m", op->user, mount);
                op_reply_error(op, INTERFACE ".VaultUnavailable", "reason", "Vault returned no token");
                op_free(op);
                return;
        }

        /* a new login replaces the user's token; leases made with the old one keep their end */
        token_free(token_find(m, op->uid));
        t = calloc(1, sizeof(*t));
        if (!t || !(t->user = strdup(op->user)) ||
            (reply->auth.accessor && !(t->accessor = strdup(reply->auth.accessor)))) {
                if (t) {
                        free(t->user);
                        free(t);
                }
                log_oom();
                op_reply_error(op, INTERFACE ".VaultUnavailable", "reason", "out of memory");
                op_free(op);
                return;
        }
        t->manager = m;
        t->uid = op->uid;
        t->token = TAKE_PTR(token);
        t->issued_boottime = reply->received_boottime_usec ?: now(CLOCK_BOOTTIME);
        t->login_boottime = now(CLOCK_BOOTTIME);
        t->ttl_usec = (usec_t) MAX(reply->auth.lease_duration, 0) * USEC_PER_SEC;
        t->expires_boottime = t->ttl_usec > 0 ? t->issued_boottime + t->ttl_usec : USEC_INFINITY;
        t->renewable = reply->auth.renewable;
        LIST_PREPEND(m->user_tokens, t);
        token_arm(t);

        log_info("Vault login of %s at auth/%s succeeded (token ttl %llus%s).", t->user, mount,
                 (unsigned long long) (t->ttl_usec / USEC_PER_SEC), t->renewable ? ", renewable" : "");

        if (op->cb) {
                usec_t e = expires_realtime(t);

                o = json_object_new_object();
                if (o)
                        (void) json_object_object_add(o, "expires_usec",
                                                      json_object_new_int64(e == USEC_INFINITY ? 0 : (int64_t) e));
                op->cb(NULL, o, op->userdata);
                op->cb = NULL;
                json_object_put(o);
        }
        op_free(op);
}

/* The password inside the parsed call: json-c would free it unwiped. */
static void json_string_wipep(json_object **o) {
        if (*o && json_object_is_type(*o, json_type_string))
                explicit_bzero_safe((char *) json_object_get_string(*o), (size_t) json_object_get_string_len(*o));
}

/**
 * userlogin_login() - Login(user, password), root only (checked by the caller)
 * @p: the connection (a reply owed to it is dropped if it closes first)
 * @cb: gets {"expires_usec"} or AuthenticationFailed, NoSuchUser, VaultUnavailable, VaultError
 *
 * Return: 0 (answered, or pending), or -ENOMEM with nothing answered.
 */
int userlogin_login(Manager *m, Peer *p, json_object *params, LeaseDoneFunc cb, void *userdata) {
        struct passwd pw, *res = NULL;
        _cleanup_free_ char *buf = NULL;
        const char *user = NULL, *password = NULL;
        _cleanup_(json_string_wipep) json_object *pwobj = NULL;   /* borrowed: only wiped */
        UserLoginOp *op;
        int r;

        if (varlink_param_string(params, "user", true, &user) < 0 || !*user) {
                reply_error(cb, userdata, "org.varlink.service.InvalidParameter", "parameter", "user");
                return 0;
        }
        if (varlink_param_string(params, "password", true, &password) < 0) {
                reply_error(cb, userdata, "org.varlink.service.InvalidParameter", "parameter", "password");
                return 0;
        }
        (void) json_object_object_get_ex(params, "password", &pwobj);

        buf = malloc(16384);
        if (!buf)
                return -ENOMEM;
        r = getpwnam_r(user, &pw, buf, 16384, &res);
        if (r != 0 || !res) {
                log_notice("Login from pid %u for unknown user '%.64s'.", (unsigned) p->ucred.pid, user);
                reply_error(cb, userdata, INTERFACE ".NoSuchUser", "user", user);
                return 0;
        }
        if (!*password) {
                log_notice("Login of %s with an empty password refused.", res->pw_name);
                reply_error(cb, userdata, INTERFACE ".AuthenticationFailed", NULL, NULL);
                return 0;
        }

        op = calloc(1, sizeof(*op));
        if (!op)
                return -ENOMEM;
        op->user = strdup(res->pw_name);
        if (!op->user) {
                free(op);
                return -ENOMEM;
        }
        op->manager = m;
        op->peer = p;
        op->cb = cb;
        op->userdata = userdata;
        op->uid = res->pw_uid;

        /* the request keeps its own wiped copy of the password */
        r = vault_userpass_login(m->vault, m->config->vault.user_auth_mount, op->user, password, on_login_done, op,
                                 &op->req);
        if (r < 0) {
                if (r == -EINVAL) {
                        log_notice("Login of %s: the name is not valid in a Vault login path.", op->user);
                        reply_error(cb, userdata, INTERFACE ".AuthenticationFailed", NULL, NULL);
                } else {
                        log_error_errno(r, "Cannot start the Vault login of %s: %m", op->user);
                        reply_error(cb, userdata, INTERFACE ".VaultUnavailable", "reason", "internal error");
                }
                free(op->user);
                free(op);
                return 0;
        }
        LIST_PREPEND(m->user_logins, op);
        return 0;
}

/**
 * userlogin_peer_gone() - @p is closing: its pending Login replies are dropped (the login itself goes on)
 */
void userlogin_peer_gone(Manager *m, Peer *p) {
        for (UserLoginOp *op = m->user_logins; op; op = op->next)
                if (op->peer == p) {
                        op->peer = NULL;
                        op->cb = NULL;
                }
}

/**
 * userlogin_have_token() - whether @uid has a Vault token from a Login
 */
bool userlogin_have_token(Manager *m, uid_t uid) {
        return token_find(m, uid) != NULL;
}

/**
 * userlogin_lease_get() - lease_get() for an identity = user credential: with @uid's own token, or
 * LoginRequired (answered through @cb before returning) when there is none
 */
int userlogin_lease_get(Manager *m, uid_t uid, const CredentialConfig *cred, bool may_start, LeaseDoneFunc cb,
                        void *userdata, LeaseWaiter **ret_waiter) {
        UserToken *t = token_find(m, uid);

        *ret_waiter = NULL;
        if (!t) {
                struct passwd *pw = getpwuid(uid);
                char name[32];

                (void) snprintf(name, sizeof(name), "%u", (unsigned) uid);
                log_info("'%s' for uid=%u needs the user's own Vault login (identity = user): login required.",
                         cred->name, (unsigned) uid);
                reply_error(cb, userdata, INTERFACE ".LoginRequired", "user", pw ? pw->pw_name : name);
                return 0;
        }
        return lease_get_as(m, uid, cred, t->token, t->accessor, expires_realtime(t), may_start, cb, userdata,
                            ret_waiter);
}

/**
 * userlogin_forget() - the user's last session ended: retire their token (see token_retire())
 */
void userlogin_forget(Manager *m, uid_t uid) {
        UserToken *t = token_find(m, uid);

        if (t)
                token_retire(t, "no session left");
}

/**
 * userlogin_free_all() - at exit: cancel logins in flight (no reply), wipe every token
 */
void userlogin_free_all(Manager *m) {
        while (m->user_logins)
                op_free(m->user_logins);
        while (m->user_tokens)
                token_free(m->user_tokens);
}
