/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The asynchronous Vault client: transport rules, the broker's own login and token upkeep, and the
 * request queue. See vault.h for the behaviour callers can rely on.
 *
 * Rationale (secrets and failure handling):
 * - The broker token lives in a Secret. It is put into an X-Vault-Token header only while a
 *   transfer runs, and the curl_slist holding it is wiped before it is freed. Login bodies
 *   (secret_id, a user's password) are built in buffers that are wiped on free, response bodies
 *   go into our own buffer that is wiped on free and never reallocated in place (realloc would
 *   leave an unwiped copy behind).
 * - No redirect is ever followed (the token header would travel with it), the protocol set is
 *   limited to the configured scheme, TLS is always verified.
 * - Nothing loops: a request is retried at most twice, only when idempotent; the login backs off
 *   from 10 s to 5 min; token renewal retries are bounded by the token's remaining life.
 */

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <syslog.h>

#include <curl/curl.h>
#include <json-c/json.h>
#include <systemd/sd-event.h>

#include "broker/config.h"
#include "broker/curl-glue.h"
#include "broker/vault.h"
#include "common/json-util.h"
#include "common/list.h"
#include "common/memory-util.h"
#include "common/net-util.h"
#include "common/secret.h"
#include "common/time-util.h"

#define VAULT_RETRIES_MAX 2U
#define VAULT_LOGIN_BACKOFF_MIN (10 * USEC_PER_SEC)
#define VAULT_LOGIN_BACKOFF_MAX (5 * USEC_PER_MINUTE)
#define VAULT_RETRY_AFTER_INTERNAL_MAX (30 * USEC_PER_SEC)
#define VAULT_TOKEN_RENEW_MIN_LEFT (3 * USEC_PER_SEC)
#define VAULT_USER_AGENT "vleased/" VLEASE_VERSION

typedef enum RequestState {
        REQUEST_NEW,
        REQUEST_WAITING_LOGIN,  /* in client->waiting_login */
        REQUEST_WAITING_LOOKUP, /* in client->waiting_lookup, holding its 403 reply */
        REQUEST_QUEUED,         /* in client->queued: waiting for a free slot (max_concurrent) */
        REQUEST_RUNNING,        /* in client->running, transfer added to curl */
        REQUEST_DELAYED,        /* in client->running, retry timer or deferred completion armed */
} RequestState;

typedef enum TokenMode {
        TOKEN_NONE,     /* no token: logins, sys/health */
        TOKEN_BROKER,   /* the broker's current token */
        TOKEN_OWN,      /* req->token */
} TokenMode;

struct VaultRequest {
        VaultClient *client;
        VaultRequest *prev, *next;
        VaultRequest **list;
        RequestState state;

        const char *method;
        char *path;             /* logical path, without /v1/ */
        char *body;             /* may hold a secret: erased on free */
        size_t body_size;
        TokenMode token_mode;
        Secret *token;          /* TOKEN_OWN */
        uint64_t token_generation;
        VaultParseFlags parse_flags;
        bool idempotent;
        bool auth_retried;
        bool internal;          /* the client's own (login, token upkeep): never queued */
        bool upkeep;            /* renews or revokes what exists: queued ahead of new reads */
        bool in_flight;         /* counted in client->n_in_flight */
        unsigned attempt;

        VaultCallback callback;
        void *userdata;

        CURL *easy;
        struct curl_slist *headers;
        char *resp;
        size_t resp_size, resp_allocated;
        bool resp_overflow;
        char errbuf[CURL_ERROR_SIZE];

        sd_event_source *timer;
        VaultReply pending;     /* WAITING_LOOKUP or deferred completion */
        bool has_pending;
};

struct VaultClient {
        sd_event *event;
        CurlGlue *glue;

        char *address;
        char *namespace;
        char *ca_file;
        const char *protocols;
        long timeout_sec;
        VaultAuth auth_method;
        Secret *role_id, *secret_id, *config_token;
        Secret *handover_token;         /* from the previous process (fd store): tried before a login */

        /* The broker token. */
        Secret *token;
        char *accessor;
        usec_t token_expires;           /* CLOCK_REALTIME */
        usec_t token_expires_boottime;
        uint64_t token_ttl_sec;         /* TTL at login: the increment asked for on renewal */
        bool token_renewable;
        uint64_t token_generation;
        bool started;

        VaultRequest *login_req, *renew_req, *lookup_req;
        sd_event_source *token_timer;
        unsigned login_failures;
        unsigned renew_failures;
        bool renew_denied;

        VaultRequest *running, *waiting_login, *waiting_lookup;
        VaultRequest *queued;           /* newest first: started from the tail (FIFO) */
        VaultRequest *queued_upkeep;    /* the same for upkeep requests, started before any of queued */
        unsigned n_in_flight;           /* transfers handed to curl */
        unsigned max_in_flight;         /* [vault] max_concurrent_requests */
        sd_event_source *queue_source;  /* starts queued requests once slots are free */

        VaultTokenChangedFunc token_changed;
        void *token_changed_userdata;
        VaultLogFunc log_func;
        void *log_userdata;

        bool reachable;
        int sealed;
        char *last_error;
};

static void request_free(VaultRequest *req);
static int request_submit(VaultRequest *req);
static void client_schedule_login(VaultClient *c, usec_t delay);
static void client_login(VaultClient *c);

/* ---------------------------------------------------------------- small helpers */

static uint64_t random_u64(void) {
        uint64_t u;

        if (getrandom(&u, sizeof(u), GRND_NONBLOCK) != sizeof(u))
                u = ((uint64_t) random() << 32) ^ (uint64_t) random() ^ now(CLOCK_MONOTONIC);
        return u;
}

/* A value in [lo, hi]. */
static usec_t random_between(usec_t lo, usec_t hi) {
        if (hi <= lo)
                return lo;
        return lo + random_u64() % (hi - lo + 1);
}

static void vlog(VaultClient *c, int priority, const char *fmt, ...) _printf_(3, 4);
static void vlog(VaultClient *c, int priority, const char *fmt, ...) {
        char buf[1024];
        va_list ap;

        if (!c->log_func)
                return;
        va_start(ap, fmt);
        (void) vsnprintf(buf, sizeof(buf), fmt, ap);
        va_end(ap);
        c->log_func(priority, buf, c->log_userdata);
}

static void client_set_last_error(VaultClient *c, const char *error) {
        char *s = NULL;

        if (error) {
                s = strdup(error);
                if (!s)
                        return; /* keep the old text rather than lose state */
        }
        free(c->last_error);
        c->last_error = s;
}

static void list_unlink(VaultRequest *req) {
        if (!req->list)
                return;
        LIST_REMOVE(*req->list, req);
        req->list = NULL;
}

static void list_push(VaultRequest **head, VaultRequest *req) {
        list_unlink(req);
        LIST_PREPEND(*head, req);
        req->list = head;
}

/*
 * Builds {"k1":"v1","k2":"v2",...} from NULL-terminated key/value pairs (values quoted), plus an
 * optional raw suffix (e.g. `"increment":3600`). The buffer is meant to be erase_and_free()d.
 */
static int json_body(char **ret, size_t *ret_size, const char *raw, ...) {
        const char *k, *v;
        va_list ap;
        size_t n = 1, i = 0;
        char *b;

        va_start(ap, raw);
        while ((k = va_arg(ap, const char *))) {
                v = va_arg(ap, const char *);
                n += json_quote(NULL, k) + 1 + json_quote(NULL, v) + 1;
        }
        va_end(ap);
        if (raw)
                n += strlen(raw) + 1;
        n += 2;

        b = malloc(n);
        if (!b)
                return -ENOMEM;

        b[i++] = '{';
        va_start(ap, raw);
        while ((k = va_arg(ap, const char *))) {
                v = va_arg(ap, const char *);
                if (i > 1)
                        b[i++] = ',';
                i += json_quote(b + i, k);
                b[i++] = ':';
                i += json_quote(b + i, v);
        }
        va_end(ap);
        if (raw) {
                if (i > 1)
                        b[i++] = ',';
                memcpy(b + i, raw, strlen(raw));
                i += strlen(raw);
        }
        b[i++] = '}';
        b[i] = 0;

        *ret = b;
        *ret_size = i;
        return 0;
}

static bool path_is_valid(const char *p) {
        if (!p || !*p || *p == '/' || strlen(p) > 1024)
                return false;
        for (const char *s = p; *s; s++)
                if ((unsigned char) *s <= 0x20 || *s == 0x7f || strchr("?#%\\\"", *s))
                        return false;
        /* No "." or ".." segments. */
        for (const char *s = p; s; s = strchr(s, '/') ? strchr(s, '/') + 1 : NULL)
                if ((s[0] == '.' && (s[1] == '/' || !s[1])) ||
                    (s[0] == '.' && s[1] == '.' && (s[2] == '/' || !s[2])))
                        return false;
        return true;
}

static bool name_is_valid(const char *n) {
        if (!n || !*n || strlen(n) > 256)
                return false;
        return strspn(n, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") == strlen(n);
}

/* ---------------------------------------------------------------- requests */

/* A slot came free: start queued requests from the event loop, never from inside a callback. */
static void client_kick_queue(VaultClient *c) {
        if ((c->queued || c->queued_upkeep) && c->queue_source)
                (void) sd_event_source_set_enabled(c->queue_source, SD_EVENT_ONESHOT);
}

static void request_wipe_transfer(VaultRequest *req) {
        if (req->easy) {
                curl_glue_remove(req->client->glue, req->easy);
                curl_easy_cleanup(req->easy);
                req->easy = NULL;
        }
        if (req->in_flight) {
                req->in_flight = false;
                req->client->n_in_flight--;
                client_kick_queue(req->client);
        }
        for (struct curl_slist *l = req->headers; l; l = l->next)
                if (l->data)
                        explicit_bzero_safe(l->data, strlen(l->data));
        curl_slist_free_all(req->headers);
        req->headers = NULL;
        if (req->resp) {
                explicit_bzero_safe(req->resp, req->resp_allocated);
                free(req->resp);
        }
        req->resp = NULL;
        req->resp_size = req->resp_allocated = 0;
        req->resp_overflow = false;
}

static void request_free(VaultRequest *req) {
        VaultClient *c;

        if (!req)
                return;
        c = req->client;

        list_unlink(req);
        request_wipe_transfer(req);
        req->timer = sd_event_source_disable_unref(req->timer);
        if (req->has_pending)
                vault_reply_done(&req->pending);

        if (c->login_req == req)
                c->login_req = NULL;
        if (c->renew_req == req)
                c->renew_req = NULL;
        if (c->lookup_req == req)
                c->lookup_req = NULL;

        free(req->path);
        if (req->body) {
                explicit_bzero_safe(req->body, req->body_size);
                free(req->body);
        }
        secret_free(req->token);
        free(req);
}

static int request_new(VaultClient *c, const char *method, const char *path, TokenMode token_mode,
                       VaultCallback cb, void *userdata, VaultRequest **ret) {
        VaultRequest *req;

        req = calloc(1, sizeof(*req));
        if (!req)
                return -ENOMEM;
        req->client = c;
        req->method = method;
        req->token_mode = token_mode;
        req->callback = cb;
        req->userdata = userdata;
        req->path = strdup(path);
        if (!req->path) {
                free(req);
                return -ENOMEM;
        }

        *ret = req;
        return 0;
}

/* Hands the reply to the callback, then frees the request. Consumes *reply. */
static void request_complete(VaultRequest *req, VaultReply *reply) {
        VaultCallback cb = req->callback;
        void *userdata = req->userdata;

        list_unlink(req);
        req->callback = NULL;
        cb(req, reply, userdata);
        vault_reply_done(reply);
        request_free(req);
}

static int on_request_deferred(sd_event_source *s, void *userdata) {
        VaultRequest *req = userdata;
        VaultReply reply;

        req->timer = sd_event_source_disable_unref(req->timer);
        reply = req->pending;
        req->pending = (VaultReply) {};
        req->has_pending = false;
        request_complete(req, &reply);
        return 0;
}

/* Completes the request from the event loop, never from inside the caller's call. */
static int request_complete_later(VaultRequest *req, VaultResult result, const char *reason) {
        int r;

        if (req->has_pending)
                vault_reply_done(&req->pending);
        r = vault_reply_transport_error(result, reason, &req->pending);
        if (r < 0)
                return r;
        req->has_pending = true;

        req->timer = sd_event_source_disable_unref(req->timer);
        r = sd_event_add_defer(req->client->event, &req->timer, on_request_deferred, req);
        if (r < 0)
                return r;
        (void) sd_event_source_set_description(req->timer, "vault-complete");

        req->state = REQUEST_DELAYED;
        list_push(&req->client->running, req);
        return 0;
}

static size_t on_write(char *ptr, size_t size, size_t nmemb, void *userdata) {
        VaultRequest *req = userdata;
        size_t n = size * nmemb;

        if (n > VAULT_BODY_MAX || req->resp_size + n > VAULT_BODY_MAX) {
                req->resp_overflow = true;
                return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
        }

        if (req->resp_size + n + 1 > req->resp_allocated) {
                size_t a = MAX(req->resp_allocated * 2, req->resp_size + n + 1);
                char *b;

                a = MIN(MAX(a, (size_t) 4096), (size_t) VAULT_BODY_MAX + 1);
                b = malloc(a);
                if (!b)
                        return 0;
                /* Never realloc(): it could leave an unwiped copy of a secret behind. */
                if (req->resp) {
                        memcpy(b, req->resp, req->resp_size);
                        explicit_bzero_safe(req->resp, req->resp_allocated);
                        free(req->resp);
                }
                req->resp = b;
                req->resp_allocated = a;
        }

        memcpy(req->resp + req->resp_size, ptr, n);
        req->resp_size += n;
        req->resp[req->resp_size] = 0;
        return n;
}

static int request_add_header(VaultRequest *req, const char *h) {
        struct curl_slist *l;

        l = curl_slist_append(req->headers, h);
        if (!l)
                return -ENOMEM;
        req->headers = l;
        return 0;
}

static const Secret *request_token(VaultRequest *req) {
        switch (req->token_mode) {
        case TOKEN_BROKER:
                return req->client->token;
        case TOKEN_OWN:
                return req->token;
        default:
                return NULL;
        }
}

static int request_start(VaultRequest *req) {
        VaultClient *c = req->client;
        _cleanup_free_ char *url = NULL;
        const Secret *token;
        int r;

        request_wipe_transfer(req);

        if (asprintf(&url, "%s/v1/%s", c->address, req->path) < 0)
                return -ENOMEM;

        r = request_add_header(req, "X-Vault-Request: true");
        if (r < 0)
                return r;
        r = request_add_header(req, "Expect:");
        if (r < 0)
                return r;
        if (req->body) {
                r = request_add_header(req, "Content-Type: application/json");
                if (r < 0)
                        return r;
        }
        if (c->namespace) {
                _cleanup_free_ char *h = NULL;

                if (asprintf(&h, "X-Vault-Namespace: %s", c->namespace) < 0)
                        return -ENOMEM;
                r = request_add_header(req, h);
                if (r < 0)
                        return r;
        }

        token = request_token(req);
        if (req->token_mode != TOKEN_NONE) {
                static const char prefix[] = "X-Vault-Token: ";
                size_t n;
                char *h;

                if (!token)
                        return -ENOKEY;
                n = sizeof(prefix) - 1 + secret_size(token);
                h = malloc(n + 1);
                if (!h)
                        return -ENOMEM;
                memcpy(h, prefix, sizeof(prefix) - 1);
                memcpy(h + sizeof(prefix) - 1, secret_get(token), secret_size(token));
                h[n] = 0;
                r = request_add_header(req, h);
                explicit_bzero_safe(h, n);
                free(h);
                if (r < 0)
                        return r;
                if (req->token_mode == TOKEN_BROKER)
                        req->token_generation = c->token_generation;
        }

        req->easy = curl_easy_init();
        if (!req->easy)
                return -ENOMEM;

        if (curl_easy_setopt(req->easy, CURLOPT_URL, url) != CURLE_OK ||
            curl_easy_setopt(req->easy, CURLOPT_PRIVATE, req) != CURLE_OK ||
            curl_easy_setopt(req->easy, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
            curl_easy_setopt(req->easy, CURLOPT_PROTOCOLS_STR, c->protocols) != CURLE_OK ||
            curl_easy_setopt(req->easy, CURLOPT_REDIR_PROTOCOLS_STR, c->protocols) != CURLE_OK ||
            curl_easy_setopt(req->easy, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK ||
            curl_easy_setopt(req->easy, CURLOPT_SSL_VERIFYPEER, 1L) != CURLE_OK ||
            curl_easy_setopt(req->easy, CURLOPT_SSL_VERIFYHOST, 2L) != CURLE_OK ||
            curl_easy_setopt(req->easy, CURLOPT_CONNECTTIMEOUT, MIN(c->timeout_sec, 10L)) != CURLE_OK ||
            curl_easy_setopt(req->easy, CURLOPT_TIMEOUT, c->timeout_sec) != CURLE_OK ||
            curl_easy_setopt(req->easy, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t) VAULT_BODY_MAX) != CURLE_OK ||
            curl_easy_setopt(req->easy, CURLOPT_WRITEFUNCTION, on_write) != CURLE_OK ||
            curl_easy_setopt(req->easy, CURLOPT_WRITEDATA, req) != CURLE_OK ||
            curl_easy_setopt(req->easy, CURLOPT_ERRORBUFFER, req->errbuf) != CURLE_OK ||
            curl_easy_setopt(req->easy, CURLOPT_HTTPHEADER, req->headers) != CURLE_OK ||
            curl_easy_setopt(req->easy, CURLOPT_USERAGENT, VAULT_USER_AGENT) != CURLE_OK ||
            curl_easy_setopt(req->easy, CURLOPT_NETRC, (long) CURL_NETRC_IGNORED) != CURLE_OK)
                return -EIO;

        if (c->ca_file && curl_easy_setopt(req->easy, CURLOPT_CAINFO, c->ca_file) != CURLE_OK)
                return -EIO;

        if (req->body) {
                if (curl_easy_setopt(req->easy, CURLOPT_POSTFIELDS, req->body) != CURLE_OK ||
                    curl_easy_setopt(req->easy, CURLOPT_POSTFIELDSIZE, (long) req->body_size) != CURLE_OK)
                        return -EIO;
        }
        if (strcmp(req->method, "GET") != 0 &&
            curl_easy_setopt(req->easy, CURLOPT_CUSTOMREQUEST, req->method) != CURLE_OK)
                return -EIO;

        req->errbuf[0] = 0;
        r = curl_glue_add(c->glue, req->easy);
        if (r < 0)
                return r;
        req->in_flight = true;
        c->n_in_flight++;

        req->state = REQUEST_RUNNING;
        list_push(&c->running, req);
        return 0;
}

/* Starts a request now if it can be, else queues it behind the login or fails it fast. */
static int request_submit(VaultRequest *req) {
        VaultClient *c = req->client;
        int r;

        if (req->token_mode == TOKEN_BROKER && !c->token) {
                if (c->login_req) {
                        req->state = REQUEST_WAITING_LOGIN;
                        list_push(&c->waiting_login, req);
                        return 0;
                }
                return request_complete_later(req, VAULT_UNAVAILABLE,
                                              c->last_error ?: "not logged in to Vault");
        }

        /* Over the cap, wait in line: curl's timeout only starts once the transfer does, so a
         * burst of first reads is sent as fast as Vault answers instead of all at once and timing
         * out after it was served (a database credential Vault minted that nobody learns about). */
        if (!req->internal && c->n_in_flight >= c->max_in_flight) {
                req->state = REQUEST_QUEUED;
                list_push(req->upkeep ? &c->queued_upkeep : &c->queued, req);
                return 0;
        }

        r = request_start(req);
        if (r < 0) {
                request_wipe_transfer(req);
                return request_complete_later(req, VAULT_TRANSPORT, "failed to set up the HTTP request");
        }
        return 0;
}

/* A request that could not be (re)started: its caller gets a transport error. */
static void request_fail_to_start(VaultRequest *req, const char *what) {
        VaultReply reply;

        if (vault_reply_transport_error(VAULT_TRANSPORT, what, &reply) >= 0)
                request_complete(req, &reply);
        else
                request_free(req); /* out of memory: nothing sensible left to report */
}

static int on_queue(sd_event_source *s, void *userdata) {
        VaultClient *c = userdata;

        /* Renewals and revokes first: a renewal stuck behind a burst of first reads can let a lease
         * that is in use lapse, and a read can wait without harm to anything handed out. Upkeep is
         * bounded by the leases held (one renewal per lease per two thirds of its TTL), so reads are
         * not starved unless Vault cannot even keep up with that. */
        while ((c->queued_upkeep || c->queued) && c->n_in_flight < c->max_in_flight) {
                VaultRequest *req = c->queued_upkeep ?: c->queued;

                while (req->next)
                        req = req->next;        /* the oldest */
                list_unlink(req);
                req->state = REQUEST_NEW;
                if (request_submit(req) < 0)
                        request_fail_to_start(req, "failed to start the request");
        }
        return 0;
}

static int on_retry_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        VaultRequest *req = userdata;
        int r;

        req->timer = sd_event_source_disable_unref(req->timer);
        r = request_submit(req);
        if (r < 0)
                request_fail_to_start(req, "failed to retry the request");
        return 0;
}

static int request_retry_later(VaultRequest *req, const VaultReply *reply) {
        usec_t delay;
        int r;

        delay = reply->retry_after_usec > 0 ? reply->retry_after_usec :
                random_between(USEC_PER_SEC, USEC_PER_SEC * 3 / 2);

        request_wipe_transfer(req);
        req->timer = sd_event_source_disable_unref(req->timer);
        r = sd_event_add_time_relative(req->client->event, &req->timer, CLOCK_BOOTTIME, delay, USEC_PER_MSEC,
                                       on_retry_timer, req);
        if (r < 0)
                return r;
        (void) sd_event_source_set_description(req->timer, "vault-retry");

        req->attempt++;
        req->state = REQUEST_DELAYED;
        list_push(&req->client->running, req);
        return 0;
}

static void client_note_reply(VaultClient *c, const VaultReply *reply) {
        switch (reply->result) {
        case VAULT_TRANSPORT:
        case VAULT_NON_JSON:
        case VAULT_TOO_LARGE:
                c->reachable = false;
                break;
        case VAULT_UNAVAILABLE:
                break;
        case VAULT_SEALED:
                c->reachable = true;
                c->sealed = 1;
                break;
        default:
                c->reachable = true;
                if (reply->status > 0 && reply->status < 500)
                        c->sealed = 0;
        }
}

static void client_token_lost(VaultClient *c, const char *why);
static void client_start_lookup(VaultClient *c);

static void on_transfer_finished(CurlGlue *g, CURL *easy, CURLcode result, void *userdata) {
        VaultClient *c = userdata;
        VaultRequest *req = NULL;
        VaultReply reply = {};
        char *p = NULL;
        int r;

        if (curl_easy_getinfo(easy, CURLINFO_PRIVATE, &p) != CURLE_OK || !p) {
                curl_glue_remove(g, easy);
                return;
        }
        req = (VaultRequest *) p;

        if (result == CURLE_OK) {
                struct curl_header *h = NULL;
                const char *ct = NULL, *retry_after = NULL;
                long status = 0;

                (void) curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
                (void) curl_easy_getinfo(easy, CURLINFO_CONTENT_TYPE, &ct);
                if (curl_easy_header(easy, "Retry-After", 0, CURLH_HEADER, -1, &h) == CURLHE_OK && h)
                        retry_after = h->value;

                r = vault_reply_parse(status, ct, req->resp, req->resp_size, retry_after, req->parse_flags,
                                      &reply);
        } else if (req->resp_overflow || result == CURLE_FILESIZE_EXCEEDED) {
                long status = 0;

                r = vault_reply_transport_error(VAULT_TOO_LARGE, "response too large (over 1 MiB), refused",
                                                &reply);
                (void) curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
                reply.status = status;
        } else {
                char reason[CURL_ERROR_SIZE + 64];

                if (result == CURLE_PARTIAL_FILE)
                        snprintf(reason, sizeof(reason), "truncated response: %s",
                                 req->errbuf[0] ? req->errbuf : curl_easy_strerror(result));
                else
                        snprintf(reason, sizeof(reason), "%s",
                                 req->errbuf[0] ? req->errbuf : curl_easy_strerror(result));
                r = vault_reply_transport_error(VAULT_TRANSPORT, reason, &reply);
        }

        request_wipe_transfer(req);

        if (r < 0) {
                if (vault_reply_transport_error(VAULT_TRANSPORT, "out of memory", &reply) < 0) {
                        request_free(req);
                        return;
                }
        }

        reply.received_realtime_usec = now(CLOCK_REALTIME);
        reply.received_boottime_usec = now(CLOCK_BOOTTIME);
        client_note_reply(c, &reply);
        /* last_error is about reaching Vault (for Status), not about one path's answer. */
        if (reply.result == VAULT_OK || reply.result == VAULT_NO_CONTENT)
                client_set_last_error(c, NULL);
        else if (reply.transient && reply.result != VAULT_UNAVAILABLE)
                client_set_last_error(c, reply.error);

        /* Bounded retries of idempotent calls. */
        if (req->idempotent && reply.transient && req->attempt < VAULT_RETRIES_MAX &&
            reply.retry_after_usec <= VAULT_RETRY_AFTER_INTERNAL_MAX &&
            !(req->parse_flags & VAULT_PARSE_HEALTH && reply.result != VAULT_TRANSPORT)) {
                r = request_retry_later(req, &reply);
                if (r >= 0) {
                        vault_reply_done(&reply);
                        return;
                }
        }

        /* A 403 on the broker token: is the token gone, or is this a policy denial? */
        if (reply.result == VAULT_PERMISSION_DENIED && req->token_mode == TOKEN_BROKER &&
            req->callback && !req->auth_retried && req != c->lookup_req && req != c->renew_req) {

                if (req->token_generation != c->token_generation && c->token) {
                        /* Sent with a token that has been replaced meanwhile: send again. */
                        req->auth_retried = true;
                        vault_reply_done(&reply);
                        if (request_submit(req) < 0)
                                request_free(req);
                        return;
                }

                if (reply.invalid_token) {
                        vault_reply_done(&reply);
                        req->auth_retried = true;
                        if (!c->token) {
                                if (request_submit(req) < 0)
                                        request_free(req);
                                return;
                        }
                        /* Park it first: the LOST callback may cancel it, and we must not touch it
                         * after that. It is sent again once the new login is done. */
                        req->state = REQUEST_WAITING_LOGIN;
                        list_push(&c->waiting_login, req);
                        client_token_lost(c, "Vault says the broker token is invalid");
                        return;
                }

                if (c->token) {
                        req->pending = reply;
                        req->has_pending = true;
                        req->state = REQUEST_WAITING_LOOKUP;
                        list_push(&c->waiting_lookup, req);
                        client_start_lookup(c);
                        return;
                }
        }

        request_complete(req, &reply);
}

/* ---------------------------------------------------------------- broker token upkeep */

static void client_emit(VaultClient *c, VaultTokenEvent ev, const char *accessor, usec_t expires) {
        if (c->token_changed)
                c->token_changed(c, ev, accessor, expires, c->token_changed_userdata);
}

/* Completes every request waiting for the login. */
static void client_flush_waiting_login(VaultClient *c) {
        VaultRequest *req;

        while ((req = c->waiting_login)) {
                list_unlink(req);
                if (c->token) {
                        if (request_submit(req) < 0)
                                request_free(req);
                } else {
                        VaultReply reply;
                        _cleanup_free_ char *reason = NULL;

                        if (asprintf(&reason, "not logged in to Vault: %s",
                                     c->last_error ?: "login failed") < 0 ||
                            vault_reply_transport_error(VAULT_UNAVAILABLE, reason, &reply) < 0) {
                                request_free(req);
                                continue;
                        }
                        request_complete(req, &reply);
                }
        }
}

static void client_drop_token(VaultClient *c) {
        c->token = secret_free(c->token);
        free(c->accessor);
        c->accessor = NULL;
        c->token_expires = USEC_INFINITY;
        c->token_expires_boottime = USEC_INFINITY;
        c->token_renewable = false;
        c->token_ttl_sec = 0;
        c->token_timer = sd_event_source_disable_unref(c->token_timer);
}

static void client_token_lost(VaultClient *c, const char *why) {
        _cleanup_free_ char *accessor = NULL;

        if (!c->token)
                return;

        vlog(c, LOG_WARNING, "%s; logging in again", why);
        accessor = TAKE_PTR(c->accessor);
        client_drop_token(c);
        /* Log in before telling: requests made from the LOST callback then wait for the login
         * instead of failing at once. */
        client_login(c);
        client_emit(c, VAULT_TOKEN_LOST, accessor, 0);
}

static int on_token_timer(sd_event_source *s, uint64_t usec, void *userdata);

static void client_arm_token_timer(VaultClient *c, usec_t delay) {
        int r;

        c->token_timer = sd_event_source_disable_unref(c->token_timer);
        r = sd_event_add_time_relative(c->event, &c->token_timer, CLOCK_BOOTTIME, delay, USEC_PER_SEC,
                                       on_token_timer, c);
        if (r < 0) {
                vlog(c, LOG_ERR, "Failed to arm the Vault token timer: %s", strerror(-r));
                return;
        }
        (void) sd_event_source_set_description(c->token_timer, "vault-token");
}

static void client_schedule_login(VaultClient *c, usec_t delay) {
        client_arm_token_timer(c, delay);
}

/* Schedules the next renewal (or re-login) at about 2/3 of the time left. */
static void client_schedule_renewal(VaultClient *c) {
        usec_t left, n;

        if (!c->token || c->token_expires_boottime == USEC_INFINITY) {
                c->token_timer = sd_event_source_disable_unref(c->token_timer);
                return;
        }

        n = now(CLOCK_BOOTTIME);
        left = usec_sub_unsigned(c->token_expires_boottime, n);
        client_arm_token_timer(c, random_between(left * 62 / 100, left * 70 / 100));
}

static void client_set_token(VaultClient *c, Secret *token, const char *accessor, uint64_t ttl_sec,
                             bool renewable, const VaultReply *reply) {
        _cleanup_free_ char *old_accessor = NULL;
        usec_t old_expires = c->token_expires;
        bool had = !!c->token;

        if (had) {
                old_accessor = TAKE_PTR(c->accessor);
                client_drop_token(c);
        }

        c->token = token;
        c->accessor = accessor ? strdup(accessor) : NULL;
        c->token_ttl_sec = ttl_sec;
        c->token_renewable = renewable;
        if (ttl_sec == 0) {
                c->token_expires = USEC_INFINITY;
                c->token_expires_boottime = USEC_INFINITY;
        } else {
                c->token_expires = usec_add(reply->received_realtime_usec, ttl_sec * USEC_PER_SEC);
                c->token_expires_boottime = usec_add(reply->received_boottime_usec, ttl_sec * USEC_PER_SEC);
        }
        c->token_generation++;
        c->login_failures = 0;
        c->renew_failures = 0;

        if (had)
                client_emit(c, VAULT_TOKEN_RETIRED, old_accessor, old_expires);
        client_emit(c, VAULT_TOKEN_ACQUIRED, c->accessor, c->token_expires);

        client_schedule_renewal(c);
        client_flush_waiting_login(c);
}

static void client_login_failed(VaultClient *c, const VaultReply *reply, const char *what) {
        usec_t delay;
        unsigned shift;

        c->login_failures++;
        shift = MIN(c->login_failures - 1, 5U);
        delay = MIN(VAULT_LOGIN_BACKOFF_MIN << shift, VAULT_LOGIN_BACKOFF_MAX);
        delay = random_between(delay * 3 / 4, delay);

        if (reply)
                client_set_last_error(c, reply->error);
        vlog(c, LOG_ERR, "Vault %s failed (%s%s%s); trying again in %llus", what,
             reply ? vault_result_to_string(reply->result) : "error",
             reply && reply->error ? ": " : "", reply && reply->error ? reply->error : "",
             (unsigned long long) (delay / USEC_PER_SEC));

        client_flush_waiting_login(c);
        client_schedule_login(c, delay);
}

static void on_login_reply(VaultRequest *req, const VaultReply *reply, void *userdata) {
        VaultClient *c = userdata;
        Secret *token = NULL;

        c->login_req = NULL;

        if (reply->result != VAULT_OK || !reply->has_auth || !reply->auth.client_token) {
                client_login_failed(c, reply, "AppRole login");
                return;
        }

        if (secret_dup(reply->auth.client_token, &token) < 0) {
                client_login_failed(c, NULL, "AppRole login");
                return;
        }

        vlog(c, LOG_INFO, "Logged in to Vault with AppRole (token TTL %llds%s)",
             (long long) reply->auth.lease_duration, reply->auth.renewable ? ", renewable" : "");
        client_set_token(c, token, reply->auth.accessor, (uint64_t) reply->auth.lease_duration,
                         reply->auth.renewable, reply);
}

static void on_token_file_lookup(VaultRequest *req, const VaultReply *reply, void *userdata) {
        VaultClient *c = userdata;
        json_object *v;
        Secret *token = NULL;
        const char *accessor = NULL;
        int64_t ttl = 0, creation_ttl = 0;
        bool renewable = false;

        c->login_req = NULL;

        if (c->handover_token && (reply->transient || reply->result == VAULT_UNAVAILABLE)) {
                /* Vault unreachable: keep the token and try it again later (backoff) */
                client_login_failed(c, reply, "lookup-self of the handed-over token");
                return;
        }
        if (c->handover_token && (reply->result != VAULT_OK || !reply->data)) {
                /* the previous process's token is gone or unusable: log in as usual */
                vlog(c, LOG_NOTICE, "The Vault token handed over by the previous process is not usable (%s); "
                     "logging in", vault_result_to_string(reply->result) ?: "error");
                c->handover_token = secret_free(c->handover_token);
                client_login(c);
                return;
        }
        if (reply->result != VAULT_OK || !reply->data) {
                client_login_failed(c, reply, "token lookup-self");
                return;
        }

        if (json_object_object_get_ex(reply->data, "accessor", &v) && json_object_is_type(v, json_type_string))
                accessor = json_object_get_string(v);
        if (json_object_object_get_ex(reply->data, "ttl", &v) && json_object_is_type(v, json_type_int))
                ttl = MAX(json_object_get_int64(v), (int64_t) 0);
        if (json_object_object_get_ex(reply->data, "creation_ttl", &v) && json_object_is_type(v, json_type_int))
                creation_ttl = MAX(json_object_get_int64(v), (int64_t) 0);
        if (json_object_object_get_ex(reply->data, "renewable", &v) && json_object_is_type(v, json_type_boolean))
                renewable = json_object_get_boolean(v);

        if (secret_dup(req->token, &token) < 0) {
                client_login_failed(c, NULL, "token lookup-self");
                return;
        }

        if (c->handover_token) {
                c->handover_token = secret_free(c->handover_token);
                vlog(c, LOG_INFO, "Using the Vault token handed over by the previous process (TTL %llds%s)",
                     (long long) ttl, renewable ? ", renewable" : "");
        } else
                vlog(c, LOG_INFO, "Using the configured Vault token (TTL %llds%s)", (long long) ttl,
                     renewable ? ", renewable" : "");
        client_set_token(c, token, accessor, (uint64_t) ttl, renewable, reply);
        /* Ask for the token's full TTL on renewal, not what happened to be left of it. */
        if (creation_ttl > ttl && c->token)
                c->token_ttl_sec = (uint64_t) creation_ttl;
}

static int client_new_internal(VaultClient *c, const char *method, const char *path, TokenMode mode,
                               VaultCallback cb, VaultRequest **ret) {
        int r;

        r = request_new(c, method, path, mode, cb, c, ret);
        if (r >= 0)
                (*ret)->internal = true;
        return r;
}

static void client_login(VaultClient *c) {
        VaultRequest *req = NULL;
        int r;

        if (c->login_req)
                return;
        c->token_timer = sd_event_source_disable_unref(c->token_timer);

        if (c->handover_token) {
                r = client_new_internal(c, "GET", "auth/token/lookup-self", TOKEN_OWN, on_token_file_lookup, &req);
                if (r >= 0)
                        r = secret_dup(c->handover_token, &req->token);
        } else if (c->auth_method == VAULT_AUTH_APPROLE) {
                r = client_new_internal(c, "POST", "auth/approle/login", TOKEN_NONE, on_login_reply, &req);
                if (r >= 0)
                        r = json_body(&req->body, &req->body_size, NULL,
                                      "role_id", secret_get(c->role_id),
                                      "secret_id", secret_get(c->secret_id), NULL);
        } else {
                r = client_new_internal(c, "GET", "auth/token/lookup-self", TOKEN_OWN, on_token_file_lookup, &req);
                if (r >= 0)
                        r = secret_dup(c->config_token, &req->token);
        }
        if (r < 0) {
                request_free(req);
                client_login_failed(c, NULL, "login setup");
                return;
        }

        req->idempotent = c->auth_method == VAULT_AUTH_TOKEN || c->handover_token;
        c->login_req = req;
        if (request_submit(req) < 0) {
                request_free(req);
                client_login_failed(c, NULL, "login setup");
        }
}

static void on_renew_self(VaultRequest *req, const VaultReply *reply, void *userdata) {
        VaultClient *c = userdata;
        usec_t left, delay;

        c->renew_req = NULL;

        if (req->token_generation != c->token_generation)
                return; /* answer about a token we no longer use */

        if (reply->result == VAULT_OK && reply->has_auth) {
                uint64_t ttl = (uint64_t) reply->auth.lease_duration;

                c->renew_failures = 0;
                c->token_expires = usec_add(reply->received_realtime_usec, ttl * USEC_PER_SEC);
                c->token_expires_boottime = usec_add(reply->received_boottime_usec, ttl * USEC_PER_SEC);
                client_emit(c, VAULT_TOKEN_RENEWED, c->accessor, c->token_expires);

                if (ttl + 1 < c->token_ttl_sec) {
                        /* Capped by the max TTL: the token cannot be kept alive much longer. */
                        vlog(c, LOG_NOTICE, "Vault token renewal capped at %llus (asked %llus): token near its max TTL",
                             (unsigned long long) ttl, (unsigned long long) c->token_ttl_sec);
                        if (c->auth_method == VAULT_AUTH_APPROLE) {
                                client_login(c);
                                return;
                        }
                }
                client_schedule_renewal(c);
                return;
        }

        if (reply->result == VAULT_PERMISSION_DENIED && reply->invalid_token) {
                client_token_lost(c, "Vault says the broker token is invalid (renew-self)");
                return;
        }
        if (reply->result == VAULT_PERMISSION_DENIED) {
                /* Either the token is gone or the policy lacks renew-self: lookup-self tells. */
                c->renew_denied = true;
                client_start_lookup(c);
                return;
        }

        if (reply->result == VAULT_NOT_RENEWABLE || reply->result == VAULT_PAST_MAX_TTL) {
                /* Cannot be renewed at all: log in again before it ends (AppRole), else live with it. */
                vlog(c, LOG_NOTICE, "Vault token cannot be renewed (%s)", reply->error ?: "not renewable");
                c->token_renewable = false;
                client_schedule_renewal(c);
                return;
        }

        /* Transient or unknown failure: try again, bounded by the token's remaining life. */
        left = usec_sub_unsigned(c->token_expires_boottime, now(CLOCK_BOOTTIME));
        vlog(c, LOG_WARNING, "Vault token renewal failed (%s); %llus of token life left",
             reply->error ?: vault_result_to_string(reply->result),
             (unsigned long long) (left / USEC_PER_SEC));
        if (left <= VAULT_TOKEN_RENEW_MIN_LEFT) {
                if (c->auth_method == VAULT_AUTH_APPROLE)
                        client_login(c);
                return;
        }
        c->renew_failures++;
        delay = MIN(VAULT_LOGIN_BACKOFF_MIN << MIN(c->renew_failures - 1, 5U), VAULT_LOGIN_BACKOFF_MAX);
        client_arm_token_timer(c, MIN(random_between(delay * 3 / 4, delay), left / 2));
}

static void client_renew_self(VaultClient *c) {
        VaultRequest *req = NULL;
        char inc[64];
        int r;

        if (c->renew_req || !c->token)
                return;

        snprintf(inc, sizeof(inc), "\"increment\":%llu", (unsigned long long) c->token_ttl_sec);
        r = client_new_internal(c, "PUT", "auth/token/renew-self", TOKEN_BROKER, on_renew_self, &req);
        if (r >= 0)
                r = json_body(&req->body, &req->body_size, inc, NULL);
        if (r < 0) {
                request_free(req);
                client_arm_token_timer(c, VAULT_LOGIN_BACKOFF_MIN);
                return;
        }
        req->idempotent = true;
        req->token_generation = c->token_generation;
        c->renew_req = req;
        if (request_submit(req) < 0)
                request_free(req);
}

static int on_token_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        VaultClient *c = userdata;
        usec_t left;

        c->token_timer = sd_event_source_disable_unref(c->token_timer);

        if (!c->token) {
                client_login(c);
                return 0;
        }

        left = usec_sub_unsigned(c->token_expires_boottime, now(CLOCK_BOOTTIME));
        if (left == 0) {
                client_token_lost(c, "Vault token expired");
                return 0;
        }

        if (c->token_renewable && left > VAULT_TOKEN_RENEW_MIN_LEFT)
                client_renew_self(c);
        else if (c->auth_method == VAULT_AUTH_APPROLE)
                client_login(c);
        else
                /* A token from a file that cannot be renewed: it is what it is; note its end. */
                client_arm_token_timer(c, left);
        return 0;
}

static void client_flush_waiting_lookup(VaultClient *c, bool token_valid) {
        VaultRequest *req;

        while ((req = c->waiting_lookup)) {
                list_unlink(req);
                if (token_valid || !req->has_pending) {
                        VaultReply reply = req->pending;

                        req->pending = (VaultReply) {};
                        req->has_pending = false;
                        request_complete(req, &reply);
                } else {
                        /* Token was invalid: send once more, after the new login. */
                        vault_reply_done(&req->pending);
                        req->has_pending = false;
                        req->auth_retried = true;
                        if (request_submit(req) < 0)
                                request_free(req);
                }
        }
}

static void on_lookup_self(VaultRequest *req, const VaultReply *reply, void *userdata) {
        VaultClient *c = userdata;
        bool stale = req->token_generation != c->token_generation;

        c->lookup_req = NULL;

        if (reply->result == VAULT_PERMISSION_DENIED) {
                if (!stale)
                        client_token_lost(c, "Vault rejected the broker token (lookup-self)");
                client_flush_waiting_lookup(c, false);
                return;
        }

        /* Valid token (or no verdict): the 403s were policy denials, deliver them as such. */
        client_flush_waiting_lookup(c, true);

        if (!stale && c->renew_denied && c->token) {
                /* renew-self denied with a valid token: the policy lacks it. Stop renewing; with
                 * AppRole log in again at 2/3 of the TTL, else keep the token until it ends. */
                vlog(c, LOG_ERR, "Vault denied auth/token/renew-self for a valid broker token: check the broker's policy");
                c->token_renewable = false;
                client_schedule_renewal(c);
        }
        c->renew_denied = false;
}

static void client_start_lookup(VaultClient *c) {
        VaultRequest *req = NULL;

        if (c->lookup_req)
                return;
        if (!c->token) {
                client_flush_waiting_lookup(c, false);
                return;
        }

        if (client_new_internal(c, "GET", "auth/token/lookup-self", TOKEN_BROKER, on_lookup_self, &req) < 0) {
                client_flush_waiting_lookup(c, true);
                return;
        }
        req->idempotent = true;
        c->lookup_req = req;
        if (request_submit(req) < 0) {
                request_free(req);
                client_flush_waiting_lookup(c, true);
        }
}

/* ---------------------------------------------------------------- client */

/**
 * vault_client_new() - see vault.h
 */
int vault_client_new(sd_event *e, const VaultConfig *cfg, VaultClient **ret) {
        _cleanup_(vault_client_freep) VaultClient *c = NULL;
        CURLU *u = NULL;
        char *scheme = NULL, *host = NULL, *query = NULL, *fragment = NULL, *user = NULL;
        size_t n;
        int r;

        if (!e || !cfg || !ret || !cfg->address)
                return -EINVAL;

        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->event = sd_event_ref(e);
        c->sealed = -1;
        c->token_expires = USEC_INFINITY;
        c->token_expires_boottime = USEC_INFINITY;

        c->address = strdup(cfg->address);
        if (!c->address)
                return -ENOMEM;
        n = strlen(c->address);
        while (n > 0 && c->address[n - 1] == '/')
                c->address[--n] = 0;

        /* Check the address: scheme, host, and nothing that would change where requests go. */
        u = curl_url();
        if (!u)
                return -ENOMEM;
        r = 0;
        if (curl_url_set(u, CURLUPART_URL, c->address, 0) != CURLUE_OK ||
            curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
            curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK)
                r = -EINVAL;
        else if (curl_url_get(u, CURLUPART_QUERY, &query, 0) == CURLUE_OK ||
                 curl_url_get(u, CURLUPART_FRAGMENT, &fragment, 0) == CURLUE_OK ||
                 curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK)
                r = -EINVAL;
        else if (strcasecmp(scheme, "https") == 0)
                c->protocols = "https";
        else if (strcasecmp(scheme, "http") == 0) {
                if (!host_is_loopback(host) && !cfg->allow_http)
                        r = -EPERM;
                else
                        c->protocols = "http";
        } else
                r = -EINVAL;
        curl_free(scheme);
        curl_free(host);
        curl_free(query);
        curl_free(fragment);
        curl_free(user);
        curl_url_cleanup(u);
        if (r < 0)
                return r;

        if (cfg->namespace && *cfg->namespace) {
                if (strpbrk(cfg->namespace, "\r\n"))
                        return -EINVAL;
                c->namespace = strdup(cfg->namespace);
                if (!c->namespace)
                        return -ENOMEM;
        }
        if (cfg->ca_file) {
                c->ca_file = strdup(cfg->ca_file);
                if (!c->ca_file)
                        return -ENOMEM;
        }

        c->timeout_sec = cfg->timeout_usec > 0 ? (long) MIN((cfg->timeout_usec + USEC_PER_SEC - 1) / USEC_PER_SEC,
                                                             (usec_t) 3600) : 30;

        c->auth_method = cfg->auth;
        if (c->auth_method == VAULT_AUTH_APPROLE) {
                if (!cfg->role_id || !cfg->secret_id)
                        return -EINVAL;
                r = secret_dup(cfg->role_id, &c->role_id);
                if (r < 0)
                        return r;
                r = secret_dup(cfg->secret_id, &c->secret_id);
                if (r < 0)
                        return r;
        } else if (c->auth_method == VAULT_AUTH_TOKEN) {
                if (!cfg->token || secret_size(cfg->token) == 0 ||
                    memchr(secret_get(cfg->token), '\n', secret_size(cfg->token)) ||
                    memchr(secret_get(cfg->token), '\r', secret_size(cfg->token)))
                        return -EINVAL;
                r = secret_dup(cfg->token, &c->config_token);
                if (r < 0)
                        return r;
        } else
                return -EINVAL;

        c->max_in_flight = cfg->max_concurrent_requests > 0 ? cfg->max_concurrent_requests : 32;
        r = sd_event_add_defer(c->event, &c->queue_source, on_queue, c);
        if (r < 0)
                return r;
        (void) sd_event_source_set_enabled(c->queue_source, SD_EVENT_OFF);
        (void) sd_event_source_set_description(c->queue_source, "vault-queue");

        r = curl_glue_new(e, on_transfer_finished, c, &c->glue);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(c);
        return 0;
}

static void free_list(VaultRequest **head) {
        while (*head)
                request_free(*head);
}

/**
 * vault_client_free() - see vault.h
 */
VaultClient *vault_client_free(VaultClient *c) {
        if (!c)
                return NULL;

        c->queue_source = sd_event_source_disable_unref(c->queue_source);
        free_list(&c->queued);
        free_list(&c->queued_upkeep);
        free_list(&c->running);
        free_list(&c->waiting_login);
        free_list(&c->waiting_lookup);
        c->token_timer = sd_event_source_disable_unref(c->token_timer);
        curl_glue_free(c->glue);

        secret_free(c->token);
        secret_free(c->role_id);
        secret_free(c->secret_id);
        secret_free(c->config_token);
        secret_free(c->handover_token);
        free(c->accessor);
        free(c->address);
        free(c->namespace);
        free(c->ca_file);
        free(c->last_error);
        sd_event_unref(c->event);
        free(c);
        return NULL;
}

/**
 * vault_client_start() - see vault.h
 */
int vault_client_start(VaultClient *c) {
        if (!c)
                return -EINVAL;
        if (c->started)
                return 0;
        c->started = true;
        client_login(c);
        return 0;
}

/**
 * vault_client_adopt_token() - before vault_client_start(): try @token (the previous process's, from
 * the fd store) with lookup-self before logging in, so that a restart makes no new login
 *
 * Return: 0 or -ENOMEM
 */
int vault_client_adopt_token(VaultClient *c, const Secret *token) {
        if (!c || !token || c->started)
                return -EINVAL;
        c->handover_token = secret_free(c->handover_token);
        return secret_dup(token, &c->handover_token);
}

/** vault_client_token() - the broker token in use (for the restart handover), NULL while logged out */
const Secret *vault_client_token(VaultClient *c) {
        return c ? c->token : NULL;
}

void vault_client_set_token_changed_callback(VaultClient *c, VaultTokenChangedFunc cb, void *userdata) {
        c->token_changed = cb;
        c->token_changed_userdata = userdata;
}

void vault_client_set_log_func(VaultClient *c, VaultLogFunc f, void *userdata) {
        c->log_func = f;
        c->log_userdata = userdata;
}

void vault_client_set_priority(VaultClient *c, int64_t priority) {
        curl_glue_set_priority(c->glue, priority);
}

void vault_client_raise(VaultClient *c) {
        if (c)
                curl_glue_raise(c->glue);
}

usec_t vault_client_token_expires(VaultClient *c) {
        return c && c->token ? c->token_expires : USEC_INFINITY;
}

const char *vault_client_token_accessor(VaultClient *c) {
        return c && c->token ? c->accessor : NULL;
}

bool vault_client_is_logged_in(VaultClient *c) {
        return c && c->token;
}

void vault_client_get_status(VaultClient *c, VaultStatus *ret) {
        *ret = (VaultStatus) {
                .address = c->address,
                .reachable = c->reachable,
                .sealed = c->sealed,
                .logged_in = !!c->token,
                .token_expires_usec = vault_client_token_expires(c),
                .last_error = c->last_error,
        };
}

/* ---------------------------------------------------------------- public requests */

static int submit_public(VaultRequest *req, VaultRequest **ret_req) {
        int r;

        r = request_submit(req);
        if (r < 0) {
                request_free(req);
                return r;
        }
        if (ret_req)
                *ret_req = req;
        return 0;
}

static int token_mode_for(VaultRequest *req, const Secret *token) {
        if (!token) {
                req->token_mode = TOKEN_BROKER;
                return 0;
        }
        req->token_mode = TOKEN_OWN;
        return secret_dup(token, &req->token);
}

int vault_read(VaultClient *c, const char *path, const Secret *token, VaultReadFlags flags,
               VaultCallback cb, void *userdata, VaultRequest **ret_req) {
        VaultRequest *req;
        int r;

        if (!c || !cb || !path_is_valid(path))
                return -EINVAL;

        r = request_new(c, "GET", path, TOKEN_BROKER, cb, userdata, &req);
        if (r < 0)
                return r;
        r = token_mode_for(req, token);
        if (r < 0) {
                request_free(req);
                return r;
        }
        req->parse_flags = (flags & VAULT_READ_KV2) ? VAULT_PARSE_KV2 : 0;
        req->idempotent = false; /* database/creds mints a new user on every read */

        return submit_public(req, ret_req);
}

static int lease_call(VaultClient *c, const char *path, const char *lease_id, const char *raw,
                      VaultCallback cb, void *userdata, VaultRequest **ret_req) {
        VaultRequest *req;
        int r;

        if (!c || !cb || !lease_id || !*lease_id || strlen(lease_id) > 1024)
                return -EINVAL;

        r = request_new(c, "PUT", path, TOKEN_BROKER, cb, userdata, &req);
        if (r < 0)
                return r;
        r = json_body(&req->body, &req->body_size, raw, "lease_id", lease_id, NULL);
        if (r < 0) {
                request_free(req);
                return r;
        }
        req->idempotent = true;
        req->upkeep = true;

        return submit_public(req, ret_req);
}

int vault_lease_renew(VaultClient *c, const char *lease_id, uint64_t increment_sec,
                      VaultCallback cb, void *userdata, VaultRequest **ret_req) {
        char inc[64];

        snprintf(inc, sizeof(inc), "\"increment\":%llu", (unsigned long long) increment_sec);
        return lease_call(c, "sys/leases/renew", lease_id, inc, cb, userdata, ret_req);
}

int vault_lease_revoke(VaultClient *c, const char *lease_id,
                       VaultCallback cb, void *userdata, VaultRequest **ret_req) {
        return lease_call(c, "sys/leases/revoke", lease_id, "\"sync\":true", cb, userdata, ret_req);
}

int vault_token_renew_accessor(VaultClient *c, const char *accessor, uint64_t increment_sec,
                               VaultCallback cb, void *userdata, VaultRequest **ret_req) {
        VaultRequest *req;
        char inc[64];
        int r;

        if (!c || !cb || !accessor || !*accessor || strlen(accessor) > 256)
                return -EINVAL;

        r = request_new(c, "PUT", "auth/token/renew-accessor", TOKEN_BROKER, cb, userdata, &req);
        if (r < 0)
                return r;
        snprintf(inc, sizeof(inc), "\"increment\":%llu", (unsigned long long) increment_sec);
        r = json_body(&req->body, &req->body_size, inc, "accessor", accessor, NULL);
        if (r < 0) {
                request_free(req);
                return r;
        }
        req->idempotent = true;
        req->upkeep = true;

        return submit_public(req, ret_req);
}

/* A PUT with a user's @token; @raw_fields NULL sends an empty object. */
static int token_self_call(VaultClient *c, const char *path, const Secret *token, const char *raw_fields,
                           VaultCallback cb, void *userdata, VaultRequest **ret_req) {
        VaultRequest *req;
        int r;

        if (!c || !cb || !token)
                return -EINVAL;

        r = request_new(c, "PUT", path, TOKEN_OWN, cb, userdata, &req);
        if (r < 0)
                return r;
        r = secret_dup(token, &req->token);
        if (r >= 0)
                r = json_body(&req->body, &req->body_size, raw_fields, NULL);
        if (r < 0) {
                request_free(req);
                return r;
        }
        req->idempotent = true;
        req->upkeep = true;

        return submit_public(req, ret_req);
}

int vault_token_renew_self(VaultClient *c, const Secret *token, uint64_t increment_sec,
                           VaultCallback cb, void *userdata, VaultRequest **ret_req) {
        char inc[64];

        snprintf(inc, sizeof(inc), "\"increment\":%llu", (unsigned long long) increment_sec);
        return token_self_call(c, "auth/token/renew-self", token, inc, cb, userdata, ret_req);
}

int vault_token_revoke_self(VaultClient *c, const Secret *token, VaultCallback cb, void *userdata,
                            VaultRequest **ret_req) {
        return token_self_call(c, "auth/token/revoke-self", token, NULL, cb, userdata, ret_req);
}

int vault_userpass_login(VaultClient *c, const char *mount, const char *user, const char *password,
                         VaultCallback cb, void *userdata, VaultRequest **ret_req) {
        _cleanup_free_ char *path = NULL;
        VaultRequest *req;
        int r;

        if (!c || !cb || !path_is_valid(mount) || !name_is_valid(user) || !password)
                return -EINVAL;

        if (asprintf(&path, "auth/%s/login/%s", mount, user) < 0)
                return -ENOMEM;

        r = request_new(c, "POST", path, TOKEN_NONE, cb, userdata, &req);
        if (r < 0)
                return r;
        r = json_body(&req->body, &req->body_size, NULL, "password", password, NULL);
        if (r < 0) {
                request_free(req);
                return r;
        }
        req->idempotent = false;

        return submit_public(req, ret_req);
}

int vault_health(VaultClient *c, VaultCallback cb, void *userdata, VaultRequest **ret_req) {
        VaultRequest *req;
        int r;

        if (!c || !cb)
                return -EINVAL;

        r = request_new(c, "GET", "sys/health", TOKEN_NONE, cb, userdata, &req);
        if (r < 0)
                return r;
        req->parse_flags = VAULT_PARSE_HEALTH;
        req->idempotent = true;

        return submit_public(req, ret_req);
}

VaultRequest *vault_request_cancel(VaultRequest *req) {
        request_free(req);
        return NULL;
}

int vault_reply_dup_token(const VaultReply *reply, Secret **ret) {
        if (!reply || !ret)
                return -EINVAL;
        if (!reply->auth.client_token)
                return -ENOENT;
        return secret_dup(reply->auth.client_token, ret);
}
