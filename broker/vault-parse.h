/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Pure parsing and classification of one Vault HTTP reply.
 *
 * Input is (HTTP status, Content-Type, body bytes); output is a VaultReply. No I/O, no logging, no
 * clock, so it can be unit-tested and fuzzed. Messages are matched by substring, never equality:
 * Vault wraps them in multierror strings ("1 error occurred:\n\t* permission denied\n\n") and their
 * wording drifts between releases and between Vault and OpenBao.
 *
 * Secrets: the broker token or a login token from an `auth` block is copied into a Secret and the
 * JSON string holding it is wiped before the tree is released. `data` however is a json-c tree that
 * may hold secret values (a database password, a KV secret); json-c frees its strings without
 * wiping them, so that tree must be short-lived: copy what is needed into a Secret and let
 * vault_reply_done() drop it right after. Never log `data` or a body.
 */

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "common/time-util.h"

typedef struct Secret Secret;

/* Bodies above this size are refused (VAULT_TOO_LARGE), whatever the status. */
#define VAULT_BODY_MAX (1024U * 1024U)

typedef enum VaultResult {
        VAULT_OK,                  /* 2xx with a JSON envelope */
        VAULT_NO_CONTENT,          /* 204 (or 202) with no body: revoke, revoke-self */
        VAULT_NOT_FOUND,           /* 404: nothing at that path, or a deleted KV v2 version */
        VAULT_PERMISSION_DENIED,   /* 403; see VaultReply.invalid_token */
        VAULT_LEASE_NOT_FOUND,     /* 400 "lease not found" / "invalid lease" / "lease expired": re-issue */
        VAULT_NOT_RENEWABLE,       /* 400 "lease is not renewable", "cannot be renewed" */
        VAULT_PAST_MAX_TTL,        /* 400 "past the max TTL" */
        VAULT_BAD_REQUEST,         /* any other 4xx (400 validation, 405, 412, 413, ...) */
        VAULT_RATE_LIMITED,        /* 429 (not from sys/health); see retry_after_usec */
        VAULT_SEALED,              /* 503 "Vault is sealed" (or sys/health sealed:true) */
        VAULT_STANDBY,             /* 307 redirect to the active node, or 503 "node is not active" */
        VAULT_SERVER_ERROR,        /* other 5xx with a JSON body */
        VAULT_NON_JSON,            /* a body that is not a JSON object: HTML from a proxy, empty 502, truncated */
        VAULT_TOO_LARGE,           /* body over VAULT_BODY_MAX */
        VAULT_TRANSPORT,           /* connect, TLS, timeout, truncated transfer: no HTTP answer */
        VAULT_UNAVAILABLE,         /* not sent: the broker has no usable token (login failing) */
        _VAULT_RESULT_MAX,
        _VAULT_RESULT_INVALID = -EINVAL,
} VaultResult;

/* How to read `data`. */
typedef enum VaultParseFlags {
        VAULT_PARSE_KV2    = 1 << 0, /* unwrap KV v2: data := data.data, metadata := data.metadata */
        VAULT_PARSE_HEALTH = 1 << 1, /* sys/health: a bare object, parsed whatever the status */
} VaultParseFlags;

typedef struct VaultReplyAuth {
        Secret *client_token;      /* owned; NULL when the block had none */
        char *accessor;            /* not a secret, but cannot be used to authenticate either */
        int64_t lease_duration;    /* token TTL in seconds */
        bool renewable;
        char **policies;           /* NULL-terminated, may be NULL */
} VaultReplyAuth;

typedef struct VaultReply {
        VaultResult result;
        long status;               /* HTTP status; 0 when no answer arrived */
        bool transient;            /* worth retrying later (5xx but 501, 412, 429, sealed, standby, transport) */
        bool invalid_token;        /* 403 known to mean "this token is invalid" (text, or lookup-self) */

        char *lease_id;            /* NULL when Vault sent "" (KV, logins): never renew then */
        bool renewable;
        int64_t lease_duration;    /* seconds; may be > 0 without a lease (KV v1: a re-read hint) */
        json_object *data;         /* owned reference, may be NULL; SECRET, short-lived (see above) */
        json_object *metadata;     /* KV v2 metadata when VAULT_PARSE_KV2, else NULL */
        char **warnings;           /* NULL-terminated, may be NULL */

        bool has_auth;
        VaultReplyAuth auth;

        char *error;               /* errors[] joined with "; ", or a short reason; never a secret */
        usec_t retry_after_usec; /* from Retry-After on 429/503, 0 if none */

        /* Filled by the transport (vault.c), not by the parser: when the answer was received. */
        usec_t received_realtime_usec;
        usec_t received_boottime_usec;
} VaultReply;

/**
 * vault_reply_parse() - classify and parse one HTTP reply
 * @status:       HTTP status code
 * @content_type: Content-Type header value or NULL
 * @body:         body bytes (need not be NUL-terminated), may be NULL when @size is 0
 * @size:         body length; above VAULT_BODY_MAX the body is refused without parsing
 * @retry_after:  Retry-After header value or NULL
 * @flags:        VaultParseFlags
 * @ret:          reply to fill; zero-initialised by this function, release with vault_reply_done()
 *
 * Every input yields a classification: malformed or unexpected input is a reply, not an errno.
 *
 * Return: 0, or -ENOMEM.
 */
int vault_reply_parse(long status, const char *content_type, const void *body, size_t size,
                      const char *retry_after, VaultParseFlags flags, VaultReply *ret);

/**
 * vault_reply_transport_error() - fill a reply for a request that got no HTTP answer
 * @result: VAULT_TRANSPORT, VAULT_TOO_LARGE or VAULT_UNAVAILABLE
 * @reason: short human text (copied), e.g. "connection refused"
 * @ret:    reply to fill (zero-initialised here)
 *
 * Return: 0, or -ENOMEM.
 */
int vault_reply_transport_error(VaultResult result, const char *reason, VaultReply *ret);

/**
 * vault_reply_done() - release everything a reply owns (wiping the token) and zero it
 */
void vault_reply_done(VaultReply *reply);

/**
 * vault_result_to_string() - stable lower-case name of a VaultResult ("permission-denied", ...)
 */
const char *vault_result_to_string(VaultResult r);

/**
 * vault_result_is_transient() - whether a reply of this class is worth retrying later
 *
 * True for TRANSPORT, SEALED, STANDBY, RATE_LIMITED, UNAVAILABLE, SERVER_ERROR except status 501,
 * NON_JSON with a 5xx status (a proxy in the way), and 412. Same value as VaultReply.transient.
 */
bool vault_result_is_transient(VaultResult r, long status);

/**
 * vault_lease_id_for_log() - render a lease id safely for logs
 * @lease_id: full lease id or NULL
 * @buf:      output buffer
 * @size:     its size (VAULT_LEASE_LOG_MAX is enough)
 *
 * Keeps the path part and only the last 4 characters of the random tail:
 * "database/creds/reader/9Y5YA7vmRs2uESbSOInm0BpC" → "database/creds/reader/…0BpC".
 *
 * Return: @buf.
 */
#define VAULT_LEASE_LOG_MAX 256
const char *vault_lease_id_for_log(const char *lease_id, char *buf, size_t size);
