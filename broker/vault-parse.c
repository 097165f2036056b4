/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Classification of Vault replies.
 *
 * Rationale: this is where an HTTP answer becomes a decision for the lease engine (renew again,
 * re-issue, log in again, back off, give up), so every input must map to exactly one class and
 * nothing malformed may pass as a success with empty fields (B14: an HTML login page with status
 * 200 must never become a credential). Vault's messages are matched by substring because they come
 * wrapped in Go multierror strings and vary between Vault and OpenBao releases.
 *
 * Secrets handled here: `auth.client_token` is copied into a Secret and its json-c string is wiped
 * in place; the tokener's scratch buffer is wiped before it is freed. `data` (a DB password, a KV
 * value) stays in a json-c tree because its shape is the secret's own; json-c frees those strings
 * without wiping, so callers keep that tree only for the duration of one callback.
 */

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "broker/vault-parse.h"
#include "common/memory-util.h"
#include "common/secret.h"

/* Durations above this are clamped, so that "seconds * USEC_PER_SEC" never overflows (100 years). */
#define VAULT_DURATION_MAX INT64_C(3153600000)

/* Retry-After values above this are clamped: a hint, not a reason to stall for days. */
#define VAULT_RETRY_AFTER_MAX_SEC 3600

static const char *const result_table[_VAULT_RESULT_MAX] = {
        [VAULT_OK] = "ok",
        [VAULT_NO_CONTENT] = "no-content",
        [VAULT_NOT_FOUND] = "not-found",
        [VAULT_PERMISSION_DENIED] = "permission-denied",
        [VAULT_LEASE_NOT_FOUND] = "lease-not-found",
        [VAULT_NOT_RENEWABLE] = "not-renewable",
        [VAULT_PAST_MAX_TTL] = "past-max-ttl",
        [VAULT_BAD_REQUEST] = "bad-request",
        [VAULT_RATE_LIMITED] = "rate-limited",
        [VAULT_SEALED] = "sealed",
        [VAULT_STANDBY] = "standby",
        [VAULT_SERVER_ERROR] = "server-error",
        [VAULT_NON_JSON] = "non-json",
        [VAULT_TOO_LARGE] = "too-large",
        [VAULT_TRANSPORT] = "transport",
        [VAULT_UNAVAILABLE] = "unavailable",
};

const char *vault_result_to_string(VaultResult r) {
        if (r < 0 || r >= _VAULT_RESULT_MAX)
                return NULL;
        return result_table[r];
}

bool vault_result_is_transient(VaultResult r, long status) {
        switch (r) {
        case VAULT_TRANSPORT:
        case VAULT_SEALED:
        case VAULT_STANDBY:
        case VAULT_RATE_LIMITED:
        case VAULT_UNAVAILABLE:
                return true;
        case VAULT_SERVER_ERROR:
                return status != 501;
        case VAULT_NON_JSON:
                return status >= 500 && status != 501;
        case VAULT_BAD_REQUEST:
                return status == 412;
        default:
                return false;
        }
}

void vault_reply_done(VaultReply *reply) {
        if (!reply)
                return;

        free(reply->lease_id);
        if (reply->data)
                json_object_put(reply->data);
        if (reply->metadata)
                json_object_put(reply->metadata);
        strv_free(reply->warnings);
        secret_free(reply->auth.client_token);
        free(reply->auth.accessor);
        strv_free(reply->auth.policies);
        free(reply->error);

        *reply = (VaultReply) {};
}

int vault_reply_transport_error(VaultResult result, const char *reason, VaultReply *ret) {
        *ret = (VaultReply) {
                .result = result,
        };
        ret->transient = vault_result_is_transient(result, 0);
        ret->error = strdup(reason ?: vault_result_to_string(result) ?: "error");
        return ret->error ? 0 : -ENOMEM;
}

/* Copies at most max bytes of s, keeping printable ASCII and collapsing whitespace runs into one space. */
static char *sanitize(const char *s, size_t len, size_t max) {
        char *out, *p;
        bool space = true; /* drop leading whitespace */

        out = p = malloc(MIN(len, max) + 4);
        if (!out)
                return NULL;

        for (size_t i = 0; i < len && (size_t) (p - out) < max; i++) {
                unsigned char c = (unsigned char) s[i];

                if (isspace(c)) {
                        if (!space)
                                *p++ = ' ';
                        space = true;
                        continue;
                }
                *p++ = (c >= 0x20 && c < 0x7f) ? (char) c : '?';
                space = false;
        }
        while (p > out && p[-1] == ' ')
                p--;
        if (len > max)
                p = stpcpy(p, "...");
        *p = 0;
        return out;
}

static bool contains(const char *haystack, const char *needle) {
        return haystack && strcasestr(haystack, needle);
}

static char **json_to_strv(json_object *a) {
        char **l = NULL;

        if (!json_object_is_type(a, json_type_array))
                return NULL;

        for (size_t i = 0; i < json_object_array_length(a); i++) {
                json_object *e = json_object_array_get_idx(a, i);

                if (!json_object_is_type(e, json_type_string))
                        continue;
                if (strv_extend(&l, json_object_get_string(e)) < 0)
                        return strv_free(l);
        }

        return l;
}

/* Joins errors[] into one sanitized line. Returns 0 also when there are none (*ret stays NULL). */
static int join_errors(json_object *errors, char **ret) {
        _cleanup_free_ char *joined = NULL;
        size_t len = 0;

        *ret = NULL;
        if (!json_object_is_type(errors, json_type_array))
                return 0;

        for (size_t i = 0; i < json_object_array_length(errors); i++) {
                json_object *e = json_object_array_get_idx(errors, i);
                _cleanup_free_ char *s = NULL;
                char *n;

                if (!json_object_is_type(e, json_type_string))
                        continue;

                s = sanitize(json_object_get_string(e), json_object_get_string_len(e), 512);
                if (!s)
                        return -ENOMEM;
                if (!*s)
                        continue;

                n = realloc(joined, len + strlen(s) + 3);
                if (!n)
                        return -ENOMEM;
                joined = n;
                if (len > 0) {
                        memcpy(joined + len, "; ", 2);
                        len += 2;
                }
                strcpy(joined + len, s);
                len += strlen(s);
        }

        *ret = TAKE_PTR(joined);
        return 0;
}

static char *content_type_short(const char *content_type) {
        size_t n;

        if (!content_type)
                return NULL;
        n = strcspn(content_type, ";");
        return sanitize(content_type, n, 64);
}

static bool content_type_is_json(const char *content_type) {
        return content_type && strncasecmp(content_type, "application/json", 16) == 0;
}

static usec_t parse_retry_after(const char *v) {
        unsigned long long sec;
        char *end;

        /* Only the delta-seconds form: Vault sends that. An HTTP date is ignored. */
        if (!v)
                return 0;
        v += strspn(v, " \t");
        if (!isdigit((unsigned char) *v))
                return 0;
        errno = 0;
        sec = strtoull(v, &end, 10);
        if (errno != 0)
                sec = VAULT_RETRY_AFTER_MAX_SEC;
        end += strspn(end, " \t\r\n");
        if (*end)
                return 0;
        return MIN(sec, (unsigned long long) VAULT_RETRY_AFTER_MAX_SEC) * USEC_PER_SEC;
}

static int set_error(VaultReply *r, const char *fmt, ...) _printf_(2, 3);
static int set_error(VaultReply *r, const char *fmt, ...) {
        va_list ap;
        char *s;
        int k;

        va_start(ap, fmt);
        k = vasprintf(&s, fmt, ap);
        va_end(ap);
        if (k < 0)
                return -ENOMEM;
        free(r->error);
        r->error = s;
        return 0;
}

static int classify_non_json(VaultReply *r, const char *content_type, const char *body, size_t size,
                             bool json_broken) {
        _cleanup_free_ char *ct = NULL, *prefix = NULL;

        r->result = VAULT_NON_JSON;

        if (size == 0)
                return set_error(r, "HTTP %ld with an empty body, not JSON", r->status);

        ct = content_type_short(content_type);
        if (!ct && content_type)
                return -ENOMEM;

        if (json_broken)
                /* Looks like JSON but does not parse: a truncated or garbled reply. Never show any
                 * of it, it may be half a secret. */
                return set_error(r, "HTTP %ld with malformed or truncated JSON (%zu bytes, %s)",
                                 r->status, size, ct ?: "no content type");

        /* A proxy's page: a short sanitized prefix helps the operator ("502 Bad Gateway"). Not for
         * 2xx answers, which could be anything the real server sent. */
        if (r->status < 200 || r->status >= 300) {
                prefix = sanitize(body, size, 48);
                if (!prefix)
                        return -ENOMEM;
        }

        return set_error(r, "HTTP %ld with a %s body, not JSON%s%s%s (is something other than Vault answering?)",
                         r->status, ct ?: "untyped", prefix ? ": \"" : "", prefix ?: "",
                         prefix ? "\"" : "");
}

/* Returns 1 if the envelope field has the wrong type, naming it in r->error. */
static int check_type(VaultReply *r, json_object *o, const char *field, json_type t, bool nullable) {
        json_object *v;

        if (!json_object_object_get_ex(o, field, &v))
                return 0;
        if (!v && nullable)
                return 0;
        if (json_object_is_type(v, t))
                return 0;

        r->result = VAULT_NON_JSON;
        if (set_error(r, "HTTP %ld with a malformed Vault envelope: \"%s\" has the wrong type",
                      r->status, field) < 0)
                return -ENOMEM;
        return 1;
}

static int64_t get_duration(json_object *o, const char *field) {
        json_object *v;
        int64_t d;

        if (!json_object_object_get_ex(o, field, &v) || !json_object_is_type(v, json_type_int))
                return 0;
        d = json_object_get_int64(v);
        return d < 0 ? 0 : MIN(d, VAULT_DURATION_MAX);
}

static bool get_bool(json_object *o, const char *field) {
        json_object *v;

        return json_object_object_get_ex(o, field, &v) && json_object_is_type(v, json_type_boolean) &&
                json_object_get_boolean(v);
}

static const char *get_string(json_object *o, const char *field) {
        json_object *v;

        if (!json_object_object_get_ex(o, field, &v) || !json_object_is_type(v, json_type_string))
                return NULL;
        return json_object_get_string(v);
}

static int parse_auth(VaultReply *r, json_object *auth) {
        json_object *v;
        const char *s;
        int k;

        /* Type checks first, so a malformed block is refused as a whole. */
        k = check_type(r, auth, "client_token", json_type_string, true);
        if (k == 0)
                k = check_type(r, auth, "accessor", json_type_string, true);
        if (k == 0)
                k = check_type(r, auth, "lease_duration", json_type_int, false);
        if (k == 0)
                k = check_type(r, auth, "renewable", json_type_boolean, true);
        if (k == 0)
                k = check_type(r, auth, "policies", json_type_array, true);
        if (k != 0)
                return k;

        r->has_auth = true;

        if (json_object_object_get_ex(auth, "client_token", &v) && json_object_is_type(v, json_type_string)) {
                size_t n = json_object_get_string_len(v);

                /* renew-accessor blanks the token: "" means none. */
                if (n > 0) {
                        k = secret_new(json_object_get_string(v), n, &r->auth.client_token);
                        if (k < 0)
                                return k;
                }
                /* Wipe json-c's copy in place; the tree is released later without wiping. */
                explicit_bzero_safe((char *) json_object_get_string(v), n);
        }

        s = get_string(auth, "accessor");
        if (s && *s) {
                r->auth.accessor = strdup(s);
                if (!r->auth.accessor)
                        return -ENOMEM;
        }

        r->auth.lease_duration = get_duration(auth, "lease_duration");
        r->auth.renewable = get_bool(auth, "renewable");

        if (json_object_object_get_ex(auth, "policies", &v) && v) {
                r->auth.policies = json_to_strv(v);
                if (!r->auth.policies && json_object_array_length(v) > 0)
                        return -ENOMEM;
        }

        return 0;
}

/* Envelope fields common to all replies: returns 1 when malformed (r classified), <0 on ENOMEM. */
static int parse_envelope(VaultReply *r, json_object *o, VaultParseFlags flags) {
        json_object *v, *data = NULL, *auth = NULL;
        const char *s;
        int k;

        static const struct {
                const char *field;
                json_type type;
                bool nullable;
        } fields[] = {
                { "lease_id",       json_type_string,  true  },
                { "renewable",      json_type_boolean, true  },
                { "lease_duration", json_type_int,     false },
                { "data",           json_type_object,  true  },
                { "warnings",       json_type_array,   true  },
                { "auth",           json_type_object,  true  },
                { "errors",         json_type_array,   true  },
        };

        for (size_t i = 0; i < ELEMENTSOF(fields); i++) {
                k = check_type(r, o, fields[i].field, fields[i].type, fields[i].nullable);
                if (k != 0)
                        return k;
        }

        s = get_string(o, "lease_id");
        if (s && *s) {
                r->lease_id = strdup(s);
                if (!r->lease_id)
                        return -ENOMEM;
        }
        r->renewable = get_bool(o, "renewable");
        r->lease_duration = get_duration(o, "lease_duration");

        if (json_object_object_get_ex(o, "warnings", &v) && v) {
                r->warnings = json_to_strv(v);
                if (!r->warnings && json_object_array_length(v) > 0)
                        return -ENOMEM;
        }

        (void) json_object_object_get_ex(o, "data", &data);
        if (data && (flags & VAULT_PARSE_KV2)) {
                json_object *inner = NULL, *meta = NULL;

                /* KV v2: {"data": {"data": {...} | null, "metadata": {...}}}. A deleted or destroyed
                 * version has data.data null and metadata filled in. */
                (void) json_object_object_get_ex(data, "data", &inner);
                (void) json_object_object_get_ex(data, "metadata", &meta);
                if ((inner && !json_object_is_type(inner, json_type_object)) ||
                    (meta && !json_object_is_type(meta, json_type_object))) {
                        r->result = VAULT_NON_JSON;
                        return set_error(r, "HTTP %ld with a malformed KV v2 envelope", r->status) < 0 ?
                                -ENOMEM : 1;
                }
                if (!inner && !meta && r->status >= 200 && r->status < 300) {
                        r->result = VAULT_NON_JSON;
                        return set_error(r, "HTTP %ld without a KV v2 envelope (is this a KV v1 mount?)",
                                         r->status) < 0 ? -ENOMEM : 1;
                }
                r->data = inner ? json_object_get(inner) : NULL;
                r->metadata = meta ? json_object_get(meta) : NULL;
        } else if (data)
                r->data = json_object_get(data);

        (void) json_object_object_get_ex(o, "auth", &auth);
        if (auth) {
                k = parse_auth(r, auth);
                if (k != 0)
                        return k;
        }

        return 0;
}

static int classify_health(VaultReply *r, json_object *o) {
        r->data = json_object_get(o);

        if (get_bool(o, "sealed")) {
                r->result = VAULT_SEALED;
                return set_error(r, "Vault is sealed");
        }
        if (r->status == 501 || (json_object_object_get_ex(o, "initialized", NULL) &&
                                 !get_bool(o, "initialized"))) {
                r->result = VAULT_SERVER_ERROR;
                return set_error(r, "Vault is not initialized");
        }
        if (get_bool(o, "standby") || r->status == 429 || r->status == 473) {
                r->result = VAULT_STANDBY;
                return set_error(r, "Vault node is a standby (HTTP %ld)", r->status);
        }
        if (r->status >= 200 && r->status < 300) {
                r->result = VAULT_OK;
                return 0;
        }
        r->result = r->status >= 500 ? VAULT_SERVER_ERROR : VAULT_BAD_REQUEST;
        return set_error(r, "sys/health answered HTTP %ld", r->status);
}

static int classify(VaultReply *r, VaultParseFlags flags) {
        long st = r->status;
        const char *e = r->error;

        if (st >= 200 && st < 300) {
                r->result = VAULT_OK;
                return 0;
        }

        switch (st) {
        case 404:
                r->result = VAULT_NOT_FOUND;
                if (!e && (flags & VAULT_PARSE_KV2) && r->metadata)
                        return set_error(r, "secret version deleted or destroyed");
                return e ? 0 : set_error(r, "not found");
        case 403:
                r->result = VAULT_PERMISSION_DENIED;
                r->invalid_token = contains(e, "invalid token");
                return e ? 0 : set_error(r, "permission denied");
        case 429:
                r->result = VAULT_RATE_LIMITED;
                return e ? 0 : set_error(r, "rate limited");
        }

        if (contains(e, "Vault is sealed") || contains(e, "namespace is sealed")) {
                r->result = VAULT_SEALED;
                return 0;
        }
        if (st >= 500 && (contains(e, "node is not active") || contains(e, "node not active") ||
                          contains(e, "no active Vault instance"))) {
                r->result = VAULT_STANDBY;
                return 0;
        }

        if (st >= 400 && st < 500) {
                if (contains(e, "past the max TTL"))
                        r->result = VAULT_PAST_MAX_TTL;
                else if (contains(e, "lease not found") || contains(e, "invalid lease") ||
                         contains(e, "lease expired") || contains(e, "lease is expired"))
                        r->result = VAULT_LEASE_NOT_FOUND;
                else if (contains(e, "not renewable") || contains(e, "cannot be renewed"))
                        r->result = VAULT_NOT_RENEWABLE;
                else
                        r->result = VAULT_BAD_REQUEST;
                return e ? 0 : set_error(r, "HTTP %ld", st);
        }

        if (st >= 500 && st < 600) {
                r->result = VAULT_SERVER_ERROR;
                return e ? 0 : set_error(r, "HTTP %ld", st);
        }

        r->result = VAULT_NON_JSON;
        return set_error(r, "unexpected HTTP status %ld", st);
}

static void tokener_wipe_free(json_tokener *tok) {
        if (!tok)
                return;
        /* The scratch buffer held the raw text of every string, tokens and passwords included. */
        if (tok->pb && tok->pb->buf && tok->pb->size > 0)
                explicit_bzero_safe(tok->pb->buf, (size_t) tok->pb->size);
        json_tokener_free(tok);
}
DEFINE_TRIVIAL_CLEANUP_FUNC(json_tokener *, tokener_wipe_free);

static void json_putp(json_object **o) {
        if (*o)
                json_object_put(*o);
}

static int reply_parse(long status, const char *content_type, const void *body, size_t size,
                       const char *retry_after, VaultParseFlags flags, VaultReply *r) {
        _cleanup_(tokener_wipe_freep) json_tokener *tok = NULL;
        _cleanup_(json_putp) json_object *o = NULL;
        const char *b = body;
        size_t start;
        int k;

        r->status = status;
        if (status == 429 || status == 503)
                r->retry_after_usec = parse_retry_after(retry_after);

        if (size > VAULT_BODY_MAX) {
                r->result = VAULT_TOO_LARGE;
                return set_error(r, "response too large (HTTP %ld, %zu bytes, limit %u)", status, size,
                                 VAULT_BODY_MAX);
        }

        if (status == 307 || status == 308) {
                r->result = VAULT_STANDBY;
                return set_error(r, "HTTP %ld redirect, probably from a standby node; redirects are never "
                                 "followed, point the address at the active node or a load balancer",
                                 status);
        }
        if (status >= 300 && status < 400) {
                r->result = VAULT_BAD_REQUEST;
                return set_error(r, "HTTP %ld redirect refused; redirects are never followed", status);
        }

        if (status == 204 || status == 202) {
                r->result = VAULT_NO_CONTENT;
                return 0;
        }

        /* Skip leading whitespace; a body must be one JSON object and nothing after it. */
        start = 0;
        while (start < size && isspace((unsigned char) b[start]))
                start++;
        if (start == size)
                return classify_non_json(r, content_type, b, 0, false);
        if (b[start] != '{')
                return classify_non_json(r, content_type, b + start, size - start,
                                         b[start] == '[' || (content_type_is_json(content_type) &&
                                                             b[start] != '<'));

        tok = json_tokener_new_ex(JSON_TOKENER_DEFAULT_DEPTH);
        if (!tok)
                return -ENOMEM;
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT);

        o = json_tokener_parse_ex(tok, b + start, (int) (size - start));
        if (!o || json_tokener_get_error(tok) != json_tokener_success ||
            !json_object_is_type(o, json_type_object))
                return classify_non_json(r, content_type, b + start, size - start, true);

        for (size_t i = start + json_tokener_get_parse_end(tok); i < size; i++)
                if (!isspace((unsigned char) b[i]))
                        return classify_non_json(r, content_type, b + start, size - start, true);

        if ((flags & VAULT_PARSE_HEALTH))
                return classify_health(r, o);

        k = parse_envelope(r, o, flags);
        if (k < 0)
                return k;
        if (k > 0)
                return 0; /* malformed, already classified */

        k = join_errors(json_object_object_get(o, "errors"), &r->error);
        if (k < 0)
                return k;

        /* A 2xx carrying "errors" is not a success (Vault never does that). */
        if (status >= 200 && status < 300 && r->error) {
                r->result = VAULT_SERVER_ERROR;
                return 0;
        }

        return classify(r, flags);
}

int vault_reply_parse(long status, const char *content_type, const void *body, size_t size,
                      const char *retry_after, VaultParseFlags flags, VaultReply *ret) {
        int r;

        *ret = (VaultReply) {};

        r = reply_parse(status, content_type, body, size, retry_after, flags, ret);
        if (r < 0) {
                vault_reply_done(ret);
                return r;
        }

        /* Nothing but OK carries data: never a half-filled "success" from an error reply. The one
         * exception is KV v2's deleted-version 404, whose metadata tells why. */
        if (ret->result != VAULT_OK && !(flags & VAULT_PARSE_HEALTH)) {
                if (ret->data)
                        ret->data = (json_object_put(ret->data), NULL);
                if (ret->result != VAULT_NOT_FOUND && ret->metadata)
                        ret->metadata = (json_object_put(ret->metadata), NULL);
                ret->auth.client_token = secret_free(ret->auth.client_token);
                ret->has_auth = false;
        }

        ret->transient = vault_result_is_transient(ret->result, ret->status);
        return 0;
}

const char *vault_lease_id_for_log(const char *lease_id, char *buf, size_t size) {
        const char *slash, *tail;
        size_t prefix, tail_len;

        if (size == 0)
                return buf;
        if (!lease_id || !*lease_id) {
                snprintf(buf, size, "(none)");
                return buf;
        }

        slash = strrchr(lease_id, '/');
        prefix = slash ? (size_t) (slash - lease_id) + 1 : 0;
        tail = lease_id + prefix;
        tail_len = strlen(tail);

        /* Show 4 characters of the random part only when it is long enough that they reveal
         * nothing useful. */
        snprintf(buf, size, "%.*s\u2026%s", (int) MIN(prefix, (size_t) 200), lease_id,
                 tail_len >= 12 ? tail + tail_len - 4 : "");

        /* Lease ids come from Vault: never let control characters reach a log line. */
        for (char *p = buf; *p; p++)
                if ((unsigned char) *p < 0x20 || *p == 0x7f)
                        *p = '?';

        return buf;
}
