/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The asynchronous Vault/OpenBao client used by vleased.
 *
 * Why it looks like this:
 * - One VaultClient per daemon holds the broker's own Vault identity (AppRole login, or a token
 *   file checked with lookup-self), renews that token at about 2/3 of its TTL with jitter, and logs
 *   in again when Vault says the token is invalid or when it cannot be renewed past its max TTL.
 *   A DB credential never outlives the token that fetched it, so every change of the broker token
 *   is reported to the lease engine through the token-changed callback.
 * - All calls are asynchronous on the daemon's sd-event loop (libcurl multi, see curl-glue.h): a slow
 *   Vault never blocks a cached answer. Each call returns a cancellable VaultRequest; its callback
 *   runs exactly once unless the request is cancelled first, never from inside the call that
 *   started it.
 * - Transport rules: X-Vault-Request on every call, the token only in X-Vault-Token (wiped after
 *   use), never follow a redirect (the token would travel with it: a standby's 307 is reported as
 *   VAULT_STANDBY), https with verification always, plain http only to loopback or with
 *   allow_http = yes, bounded response bodies wiped on free.
 * - Retries inside the client only for idempotent calls (lease renew/revoke, token renew/lookup,
 *   health): at most 2 retries, 1-1.5 s apart (or Retry-After), on transport errors, 5xx other than
 *   501, 412 and 429. Reads (database/creds mint a new user each time) and logins are never retried
 *   here. Everything else, including backoff across failures, is the caller's job.
 * - While the broker has no token, requests that need it wait for a login that is in flight; if
 *   that login fails, or none is in flight (the client is backing off between login attempts),
 *   they complete at once with VAULT_UNAVAILABLE and the login error as reason.
 * - A 403 on a call made with the broker token is checked with lookup-self (unless Vault already
 *   said "invalid token"): a valid token means a policy denial, delivered as is; an invalid one
 *   starts a new login and the request is sent again once with the new token (or completes with
 *   VAULT_UNAVAILABLE if that login fails). Calls made with a caller-supplied token are delivered
 *   as they come.
 *
 * Never logged: tokens, secret_ids, passwords, response bodies, full lease ids.
 */

#include <stdbool.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#include "broker/vault-parse.h"
#include "common/macro.h"
#include "common/time-util.h"

typedef struct Secret Secret;
typedef struct VaultConfig VaultConfig;
typedef struct VaultClient VaultClient;
typedef struct VaultRequest VaultRequest;

/**
 * VaultCallback - completion of one request
 * @req:      the handle returned when the request was made; freed right after the callback returns
 * @reply:    the classified reply; valid only during the callback. `reply->data` may hold secret
 *            values: copy what is needed into a Secret, do not keep references.
 * @userdata: as given
 */
typedef void (*VaultCallback)(VaultRequest *req, const VaultReply *reply, void *userdata);

/* What happened to a broker token (see vault_client_set_token_changed_callback()). */
typedef enum VaultTokenEvent {
        VAULT_TOKEN_ACQUIRED,   /* a new token is in use (login, or token file verified) */
        VAULT_TOKEN_RENEWED,    /* the token in use got a new expiry */
        VAULT_TOKEN_RETIRED,    /* no longer used (replaced before its max TTL); still valid until expires */
        VAULT_TOKEN_LOST,       /* Vault says it is invalid (expired/revoked): leases made with it are gone */
        _VAULT_TOKEN_EVENT_MAX,
        _VAULT_TOKEN_EVENT_INVALID = -EINVAL,
} VaultTokenEvent;

/**
 * VaultTokenChangedFunc - the broker token changed
 * @client:       the client
 * @event:        what happened
 * @accessor:     the accessor of the token the event is about (may be NULL if Vault sent none)
 * @expires_usec: that token's end, CLOCK_REALTIME usec; USEC_INFINITY if it never expires;
 *                0 for VAULT_TOKEN_LOST
 * @userdata:     as given
 *
 * On a re-login the order is RETIRED (or LOST) for the old token, then ACQUIRED for the new one.
 * Leases made with a token are bounded by that token's @expires_usec.
 */
typedef void (*VaultTokenChangedFunc)(VaultClient *client, VaultTokenEvent event, const char *accessor,
                                      usec_t expires_usec, void *userdata);

/**
 * VaultLogFunc - optional log hook; @priority is a syslog LOG_* level. The message never holds a
 * secret, a token or a full lease id.
 */
typedef void (*VaultLogFunc)(int priority, const char *message, void *userdata);

typedef enum VaultReadFlags {
        VAULT_READ_KV2 = 1 << 0,   /* unwrap a KV v2 envelope: reply->data is data.data */
} VaultReadFlags;

/* Snapshot for the Status method. */
typedef struct VaultStatus {
        const char *address;
        bool reachable;            /* the last request got an HTTP answer from Vault */
        int sealed;                /* 1 sealed, 0 unsealed, -1 unknown */
        bool logged_in;
        usec_t token_expires_usec;
        const char *last_error;    /* NULL if the last request succeeded; never a secret */
} VaultStatus;

/**
 * vault_client_new() - create a client
 * @e:   event loop (a reference is taken)
 * @cfg: the [vault] section; read now, secrets (role_id, secret_id, token) are copied
 * @ret: the new client
 *
 * Refuses an http:// address unless it is loopback (127.0.0.0/8, ::1, localhost) or allow_http is
 * set, and an address that is neither http:// nor https://. Does not contact Vault.
 *
 * Return: 0, -EINVAL for a bad address or missing auth material, -EPERM for refused plain http,
 * -ENOMEM.
 */
int vault_client_new(sd_event *e, const VaultConfig *cfg, VaultClient **ret);

/**
 * vault_client_free() - cancel every request without calling back, wipe the token, free
 *
 * Does not revoke the token: leases made with it must live on across a restart.
 *
 * Return: NULL
 */
VaultClient *vault_client_free(VaultClient *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(VaultClient *, vault_client_free);

/**
 * vault_client_start() - start logging in (asynchronous) and keep the token alive from then on
 *
 * Return: 0, or a negative errno if nothing could be started.
 */
int vault_client_start(VaultClient *c);

int vault_client_adopt_token(VaultClient *c, const Secret *token);
const Secret *vault_client_token(VaultClient *c);
void vault_client_set_token_changed_callback(VaultClient *c, VaultTokenChangedFunc cb, void *userdata);
void vault_client_set_log_func(VaultClient *c, VaultLogFunc f, void *userdata);

/**
 * vault_client_set_priority() - sd-event priority at which Vault's answers are taken in
 *
 * vault_client_raise() serves them at SD_EVENT_PRIORITY_NORMAL until the next one is taken in: for a
 * caller whose busier sources sit above that priority and must not starve Vault's answers.
 */
void vault_client_set_priority(VaultClient *c, int64_t priority);
void vault_client_raise(VaultClient *c);

/** vault_client_token_expires() - CLOCK_REALTIME usec end of the broker token, USEC_INFINITY if none */
usec_t vault_client_token_expires(VaultClient *c);

/** vault_client_token_accessor() - accessor of the broker token in use, NULL while logged out */
const char *vault_client_token_accessor(VaultClient *c);

/** vault_client_is_logged_in() - whether requests with the broker token can be sent now */
bool vault_client_is_logged_in(VaultClient *c);

/** vault_client_get_status() - fill @ret; its strings are owned by @c and valid until the next event */
void vault_client_get_status(VaultClient *c, VaultStatus *ret);

/*
 * Requests. Common rules:
 * - @cb is required. @ret_req may be NULL (the request then cannot be cancelled).
 * - The returned handle is valid until the callback has returned or vault_request_cancel() was
 *   called, whichever is first.
 * - Callbacks (request and token-changed) may start and cancel other requests, but must not free
 *   the client.
 * - Requests made before vault_client_start() that need the broker token fail with
 *   VAULT_UNAVAILABLE.
 * - Return: 0 when the request was queued (the callback will run), -EINVAL for bad arguments,
 *   -ENOMEM; on error the callback never runs.
 */

/**
 * vault_read() - GET /v1/@path (database/creds/ROLE, KV v1, KV v2 secret/data/PATH)
 * @path:  logical path without /v1/: no leading '/', no '.'/'..' segments, no query ('?'), no
 *         '#', '%', '\\', '"', spaces or control characters (else -EINVAL)
 * @token: token to use, NULL for the broker token (copied, the caller may free it at once)
 * @flags: VaultReadFlags
 *
 * Never retried inside the client: a database/creds read mints a new database user each time.
 */
int vault_read(VaultClient *c, const char *path, const Secret *token, VaultReadFlags flags,
               VaultCallback cb, void *userdata, VaultRequest **ret_req);

/**
 * vault_lease_renew() - PUT sys/leases/renew {lease_id, increment}
 * @increment_sec: requested TTL counted from now, 0 for the backend default. A reply whose
 *                 lease_duration is lower than asked means the lease is at its max TTL.
 */
int vault_lease_renew(VaultClient *c, const char *lease_id, uint64_t increment_sec,
                      VaultCallback cb, void *userdata, VaultRequest **ret_req);

/**
 * vault_lease_revoke() - PUT sys/leases/revoke {lease_id, sync: true}; success is VAULT_NO_CONTENT
 * (also for an unknown lease: revoke is idempotent)
 */
int vault_lease_revoke(VaultClient *c, const char *lease_id,
                       VaultCallback cb, void *userdata, VaultRequest **ret_req);

/**
 * vault_token_renew_accessor() - PUT auth/token/renew-accessor {accessor, increment}
 *
 * Keeps alive a token the broker cannot use any more (one from before a restart) so the leases it
 * created survive. reply->auth.lease_duration is that token's new TTL.
 */
int vault_token_renew_accessor(VaultClient *c, const char *accessor, uint64_t increment_sec,
                               VaultCallback cb, void *userdata, VaultRequest **ret_req);

/**
 * vault_token_revoke_self() - PUT auth/token/revoke-self with @token (a user's token): 204 revokes it,
 * its children and every lease they created
 */
int vault_token_revoke_self(VaultClient *c, const Secret *token, VaultCallback cb, void *userdata,
                            VaultRequest **ret_req);

/**
 * vault_token_renew_self() - PUT auth/token/renew-self {increment} with @token (a user's token);
 * @token NULL renews nothing and is -EINVAL (the broker token is renewed by the client itself)
 */
int vault_token_renew_self(VaultClient *c, const Secret *token, uint64_t increment_sec,
                           VaultCallback cb, void *userdata, VaultRequest **ret_req);

/**
 * vault_userpass_login() - POST auth/@mount/login/@user {password}
 * @mount:    auth mount path, e.g. "userpass" or "ldap"
 * @user:     user name, as Vault expects it in the path ([A-Za-z0-9_.-], else -EINVAL)
 * @password: NUL-terminated; copied into a wiped buffer at once
 *
 * Not retried. On success reply->auth.client_token holds the user's token: copy it with
 * vault_reply_dup_token() during the callback. Wrong user or password: VAULT_BAD_REQUEST.
 */
int vault_userpass_login(VaultClient *c, const char *mount, const char *user, const char *password,
                         VaultCallback cb, void *userdata, VaultRequest **ret_req);

/**
 * vault_health() - GET sys/health (no token; retried only on transport errors)
 *
 * The health body is parsed whatever the status: 503 with sealed:true is VAULT_SEALED, 429/473
 * (standby) VAULT_STANDBY, 200 VAULT_OK. Updates the client's reachable/sealed state.
 */
int vault_health(VaultClient *c, VaultCallback cb, void *userdata, VaultRequest **ret_req);

/**
 * vault_request_cancel() - abort a request; its callback will not run
 *
 * Must not be called on a handle whose callback has already returned, nor from inside the
 * request's own callback. NULL is fine.
 *
 * Return: NULL
 */
VaultRequest *vault_request_cancel(VaultRequest *req);

/**
 * vault_reply_dup_token() - copy reply->auth.client_token into a new Secret
 *
 * Return: 0, -ENOENT if the reply has no token, -ENOMEM.
 */
int vault_reply_dup_token(const VaultReply *reply, Secret **ret);
