/* SPDX-License-Identifier: LGPL-2.1-or-later */
#undef NDEBUG

/*
 * broker/vault.c against a scripted HTTP server on loopback, run in the same sd-event loop:
 * address checks, headers on the wire, redirects not followed, retries only for idempotent
 * calls, queueing behind the login and fail-fast while logged out.
 */

#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include <systemd/sd-event.h>

#include "broker/config.h"
#include "broker/vault.h"
#include "common/secret.h"

#define MAX_REQUESTS 16

/* ------------------------------------------------------------------ scripted server */

typedef struct Server {
        int fd;
        uint16_t port;
        const char *responses[MAX_REQUESTS];
        size_t n_responses, next_response;
        char *requests[MAX_REQUESTS];
        size_t n_requests;
} Server;

typedef struct Conn {
        Server *server;
        char buf[65536];
        size_t len;
} Conn;

static int on_conn(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Conn *c = userdata;
        ssize_t n;
        char *end;
        size_t body = 0;
        const char *cl;

        n = read(fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len);
        if (n <= 0)
                goto done;
        c->len += (size_t) n;
        c->buf[c->len] = 0;

        end = strstr(c->buf, "\r\n\r\n");
        if (!end)
                return 0;
        cl = strcasestr(c->buf, "\r\nContent-Length:");
        if (cl && cl < end)
                body = strtoul(cl + 17, NULL, 10);
        if (c->len < (size_t) (end + 4 - c->buf) + body)
                return 0;

        {
                Server *srv = c->server;
                const char *resp = srv->next_response < srv->n_responses ? srv->responses[srv->next_response++] :
                        "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\n"
                        "Content-Length: 29\r\nConnection: close\r\n\r\n{\"errors\":[\"out of script\"]}";

                if (srv->n_requests < MAX_REQUESTS)
                        srv->requests[srv->n_requests++] = strdup(c->buf);
                assert_int_equal(write(fd, resp, strlen(resp)), (ssize_t) strlen(resp));
        }

done:
        sd_event_source_disable_unref(s);
        close(fd);
        free(c);
        return 0;
}

static int on_accept(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Server *srv = userdata;
        Conn *c;
        int cfd;

        cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (cfd < 0)
                return 0;
        c = calloc(1, sizeof(*c));
        assert_non_null(c);
        c->server = srv;
        assert_int_equal(sd_event_add_io(sd_event_source_get_event(s), NULL, cfd, EPOLLIN, on_conn, c), 0);
        return 0;
}

static void server_start(sd_event *e, Server *srv) {
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t l = sizeof(sa);

        srv->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        assert_true(srv->fd >= 0);
        assert_int_equal(bind(srv->fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
        assert_int_equal(listen(srv->fd, 16), 0);
        assert_int_equal(getsockname(srv->fd, (struct sockaddr *) &sa, &l), 0);
        srv->port = ntohs(sa.sin_port);
        assert_int_equal(sd_event_add_io(e, NULL, srv->fd, EPOLLIN, on_accept, srv), 0);
}

static void server_done(Server *srv) {
        for (size_t i = 0; i < srv->n_requests; i++)
                free(srv->requests[i]);
        close(srv->fd);
}

static char *response(const char *status, const char *extra_headers, const char *body) {
        char *s;

        assert_true(asprintf(&s, "HTTP/1.1 %s\r\nContent-Type: application/json\r\nConnection: close\r\n%s"
                             "Content-Length: %zu\r\n\r\n%s", status, extra_headers, strlen(body), body) > 0);
        return s;
}

static const char login_body[] =
        "{\"request_id\":\"r\",\"lease_id\":\"\",\"renewable\":false,\"lease_duration\":0,\"data\":null,"
        "\"wrap_info\":null,\"warnings\":null,\"auth\":{\"client_token\":\"hvs.TESTTOKEN\",\"accessor\":\"acc1\","
        "\"policies\":[\"default\"],\"lease_duration\":3600,\"renewable\":true}}";

/* ------------------------------------------------------------------ harness */

typedef struct Result {
        int calls;
        VaultResult result;
        long status;
        char error[512];
        bool in_call;
} Result;

static void on_reply(VaultRequest *req, const VaultReply *reply, void *userdata) {
        Result *r = userdata;

        assert_false(r->in_call); /* never from inside the call that started it */
        r->calls++;
        r->result = reply->result;
        r->status = reply->status;
        snprintf(r->error, sizeof(r->error), "%s", reply->error ?: "");
}

static void run_until(sd_event *e, const Result *r, int calls) {
        for (int i = 0; i < 2000 && r->calls < calls; i++)
                assert_true(sd_event_run(e, 10 * 1000) >= 0);
        assert_int_equal(r->calls, calls);
}

typedef struct Fixture {
        sd_event *event;
        Server server;
        VaultConfig cfg;
        char address[64];
        VaultClient *client;
} Fixture;

static void fixture_init(Fixture *f, VaultAuth auth) {
        *f = (Fixture) {};
        assert_int_equal(sd_event_new(&f->event), 0);
        server_start(f->event, &f->server);
        snprintf(f->address, sizeof(f->address), "http://127.0.0.1:%u/", f->server.port);
        f->cfg.address = f->address;
        f->cfg.timeout_usec = 5 * USEC_PER_SEC;
        f->cfg.auth = auth;
        f->cfg.namespace = (char *) "team-a";
        assert_int_equal(secret_new_string("role-1", &f->cfg.role_id), 0);
        assert_int_equal(secret_new_string("secret\"1\\", &f->cfg.secret_id), 0);
        assert_int_equal(secret_new_string("hvs.FILETOKEN", &f->cfg.token), 0);
}

static void fixture_done(Fixture *f) {
        f->client = vault_client_free(f->client);
        server_done(&f->server);
        secret_free(f->cfg.role_id);
        secret_free(f->cfg.secret_id);
        secret_free(f->cfg.token);
        sd_event_unref(f->event);
}

/* Creates and starts the client, and logs it in with a first read (scripted by the caller). */
static void fixture_start_logged_in(Fixture *f) {
        Result first = {};

        assert_int_equal(vault_client_new(f->event, &f->cfg, &f->client), 0);
        assert_int_equal(vault_client_start(f->client), 0);
        assert_int_equal(vault_read(f->client, "kv/first", NULL, 0, on_reply, &first, NULL), 0);
        run_until(f->event, &first, 1);
        assert_int_equal(first.result, VAULT_OK);
}

/* ------------------------------------------------------------------ tests */

static void test_address_checks(void **state) {
        static const struct {
                const char *address;
                bool allow_http;
                int ret;
        } t[] = {
                { "https://vault.example.com:8200", false, 0 },
                { "https://vault.example.com:8200/", false, 0 },
                { "http://127.0.0.1:8200", false, 0 },
                { "http://127.9.9.9:8200", false, 0 },
                { "http://localhost:8200", false, 0 },
                { "http://[::1]:8200", false, 0 },
                { "http://vault.example.com:8200", false, -EPERM },
                { "http://10.0.0.1:8200", false, -EPERM },
                { "http://[::2]:8200", false, -EPERM },
                { "http://vault.example.com:8200", true, 0 },
                { "ftp://vault.example.com", true, -EINVAL },
                { "https://vault.example.com/?x=1", false, -EINVAL },
                { "https://user:pw@vault.example.com/", false, -EINVAL },
                { "not a url", false, -EINVAL },
        };
        sd_event *e;

        assert_int_equal(sd_event_new(&e), 0);
        for (size_t i = 0; i < ELEMENTSOF(t); i++) {
                VaultConfig cfg = { .address = (char *) t[i].address, .allow_http = t[i].allow_http,
                                    .auth = VAULT_AUTH_TOKEN };
                VaultClient *c = NULL;

                assert_int_equal(secret_new_string("hvs.x", &cfg.token), 0);
                if (vault_client_new(e, &cfg, &c) != t[i].ret)
                        fail_msg("%s: expected %d", t[i].address, t[i].ret);
                vault_client_free(c);
                secret_free(cfg.token);
        }

        /* Missing auth material. */
        {
                VaultConfig cfg = { .address = (char *) "https://v.example.com", .auth = VAULT_AUTH_APPROLE };
                VaultClient *c = NULL;

                assert_int_equal(vault_client_new(e, &cfg, &c), -EINVAL);
                cfg.auth = VAULT_AUTH_TOKEN;
                assert_int_equal(vault_client_new(e, &cfg, &c), -EINVAL);
        }
        sd_event_unref(e);
}

static void test_bad_arguments(void **state) {
        Fixture f;
        Result r = {};

        fixture_init(&f, VAULT_AUTH_APPROLE);
        assert_int_equal(vault_client_new(f.event, &f.cfg, &f.client), 0);

        assert_int_equal(vault_read(f.client, "/abs", NULL, 0, on_reply, &r, NULL), -EINVAL);
        assert_int_equal(vault_read(f.client, "a/../b", NULL, 0, on_reply, &r, NULL), -EINVAL);
        assert_int_equal(vault_read(f.client, "a/b?list=true", NULL, 0, on_reply, &r, NULL), -EINVAL);
        assert_int_equal(vault_read(f.client, "a b", NULL, 0, on_reply, &r, NULL), -EINVAL);
        assert_int_equal(vault_read(f.client, "", NULL, 0, on_reply, &r, NULL), -EINVAL);
        assert_int_equal(vault_read(f.client, "ok/path", NULL, 0, NULL, &r, NULL), -EINVAL);
        assert_int_equal(vault_userpass_login(f.client, "userpass", "al/ice", "pw", on_reply, &r, NULL), -EINVAL);
        assert_int_equal(vault_userpass_login(f.client, "userpass", "a@b", "pw", on_reply, &r, NULL), -EINVAL);
        assert_int_equal(vault_lease_renew(f.client, "", 10, on_reply, &r, NULL), -EINVAL);
        assert_int_equal(vault_token_renew_self(f.client, NULL, 10, on_reply, &r, NULL), -EINVAL);
        assert_int_equal(r.calls, 0);
        fixture_done(&f);
}

static void test_unavailable_before_start(void **state) {
        Fixture f;
        Result r = {};

        fixture_init(&f, VAULT_AUTH_APPROLE);
        assert_int_equal(vault_client_new(f.event, &f.cfg, &f.client), 0);

        r.in_call = true;
        assert_int_equal(vault_read(f.client, "database/creds/ro", NULL, 0, on_reply, &r, NULL), 0);
        r.in_call = false;
        assert_int_equal(r.calls, 0);
        run_until(f.event, &r, 1);
        assert_int_equal(r.result, VAULT_UNAVAILABLE);
        assert_int_equal(f.server.n_requests, 0);
        fixture_done(&f);
}

static void test_login_headers_and_queue(void **state) {
        _cleanup_free_ char *login = response("200 OK", "", login_body);
        _cleanup_free_ char *read = response("200 OK", "", "{\"lease_id\":\"\",\"lease_duration\":2764800,"
                                             "\"data\":{\"k\":\"v\"}}");
        Fixture f;
        Result r = {};
        const char *req;

        fixture_init(&f, VAULT_AUTH_APPROLE);
        f.server.responses[f.server.n_responses++] = login;
        f.server.responses[f.server.n_responses++] = read;
        assert_int_equal(vault_client_new(f.event, &f.cfg, &f.client), 0);
        assert_int_equal(vault_client_start(f.client), 0);
        assert_false(vault_client_is_logged_in(f.client));

        /* Queued behind the login in flight. */
        assert_int_equal(vault_read(f.client, "kv/app", NULL, 0, on_reply, &r, NULL), 0);
        run_until(f.event, &r, 1);
        assert_int_equal(r.result, VAULT_OK);
        assert_true(vault_client_is_logged_in(f.client));
        assert_string_equal(vault_client_token_accessor(f.client), "acc1");
        assert_true(vault_client_token_expires(f.client) > now(CLOCK_REALTIME) + 3500 * USEC_PER_SEC);

        assert_int_equal(f.server.n_requests, 2);
        req = f.server.requests[0];
        assert_non_null(strstr(req, "POST /v1/auth/approle/login HTTP/1.1\r\n"));
        assert_non_null(strstr(req, "\r\nX-Vault-Request: true\r\n"));
        assert_non_null(strstr(req, "\r\nX-Vault-Namespace: team-a\r\n"));
        assert_null(strstr(req, "X-Vault-Token"));
        /* The secret_id is JSON-escaped. */
        assert_non_null(strstr(req, "{\"role_id\":\"role-1\",\"secret_id\":\"secret\\\"1\\\\\"}"));

        req = f.server.requests[1];
        assert_non_null(strstr(req, "GET /v1/kv/app HTTP/1.1\r\n"));
        assert_non_null(strstr(req, "\r\nX-Vault-Token: hvs.TESTTOKEN\r\n"));
        assert_non_null(strstr(req, "\r\nX-Vault-Request: true\r\n"));
        fixture_done(&f);
}

/* Over max_concurrent_requests, requests wait in line and start in order as transfers finish. */
static void test_max_concurrent(void **state) {
        _cleanup_free_ char *login = response("200 OK", "", login_body);
        _cleanup_free_ char *read = response("200 OK", "", "{\"lease_id\":\"\",\"lease_duration\":60,"
                                             "\"data\":{\"k\":\"v\"}}");
        static const char *const paths[] = { "kv/a", "kv/b", "kv/c", "kv/d" };
        Result r = {};
        Fixture f;

        fixture_init(&f, VAULT_AUTH_APPROLE);
        f.cfg.max_concurrent_requests = 1;
        f.server.responses[f.server.n_responses++] = login;
        for (size_t i = 0; i < 1 + ELEMENTSOF(paths); i++)
                f.server.responses[f.server.n_responses++] = read;
        fixture_start_logged_in(&f);

        for (size_t i = 0; i < ELEMENTSOF(paths); i++)
                assert_int_equal(vault_read(f.client, paths[i], NULL, 0, on_reply, &r, NULL), 0);
        run_until(f.event, &r, (int) ELEMENTSOF(paths));
        assert_int_equal(r.result, VAULT_OK);

        assert_int_equal(f.server.n_requests, 2 + ELEMENTSOF(paths));
        for (size_t i = 0; i < ELEMENTSOF(paths); i++) {
                char line[64];

                snprintf(line, sizeof(line), "GET /v1/%s HTTP/1.1\r\n", paths[i]);
                assert_non_null(strstr(f.server.requests[2 + i], line));
        }
        fixture_done(&f);
}

/* Renewals and revokes wait in line ahead of reads: a burst of first reads must not make a lease in
 * use lapse. */
static void test_upkeep_before_reads(void **state) {
        _cleanup_free_ char *login = response("200 OK", "", login_body);
        _cleanup_free_ char *read = response("200 OK", "", "{\"lease_id\":\"\",\"lease_duration\":60,"
                                             "\"data\":{\"k\":\"v\"}}");
        _cleanup_free_ char *done = response("204 No Content", "", "");
        static const char *const lines[] = {
                "GET /v1/kv/a HTTP/1.1\r\n",                   /* started at once */
                "PUT /v1/sys/leases/renew HTTP/1.1\r\n",      /* queued third, started first */
                "PUT /v1/sys/leases/revoke HTTP/1.1\r\n",
                "GET /v1/kv/b HTTP/1.1\r\n",
                "GET /v1/kv/c HTTP/1.1\r\n",
        };
        const char *script[] = { login, read, read, done, done, read, read };
        Result r = {};
        Fixture f;

        fixture_init(&f, VAULT_AUTH_APPROLE);
        f.cfg.max_concurrent_requests = 1;
        for (size_t i = 0; i < ELEMENTSOF(script); i++)
                f.server.responses[f.server.n_responses++] = script[i];
        fixture_start_logged_in(&f);

        assert_int_equal(vault_read(f.client, "kv/a", NULL, 0, on_reply, &r, NULL), 0);
        assert_int_equal(vault_read(f.client, "kv/b", NULL, 0, on_reply, &r, NULL), 0);
        assert_int_equal(vault_lease_renew(f.client, "database/creds/ro/x", 60, on_reply, &r, NULL), 0);
        assert_int_equal(vault_read(f.client, "kv/c", NULL, 0, on_reply, &r, NULL), 0);
        assert_int_equal(vault_lease_revoke(f.client, "database/creds/ro/y", on_reply, &r, NULL), 0);
        run_until(f.event, &r, 5);

        assert_int_equal(f.server.n_requests, 2 + ELEMENTSOF(lines));
        for (size_t i = 0; i < ELEMENTSOF(lines); i++)
                if (!strstr(f.server.requests[2 + i], lines[i]))
                        fail_msg("request %zu is not %s", i, lines[i]);
        fixture_done(&f);
}

static void test_login_failure_fails_queue(void **state) {
        _cleanup_free_ char *bad = response("400 Bad Request", "", "{\"errors\":[\"invalid role or secret ID\"]}");
        Fixture f;
        Result r1 = {}, r2 = {};
        VaultStatus st;

        fixture_init(&f, VAULT_AUTH_APPROLE);
        f.server.responses[f.server.n_responses++] = bad;
        assert_int_equal(vault_client_new(f.event, &f.cfg, &f.client), 0);
        assert_int_equal(vault_client_start(f.client), 0);
        assert_int_equal(vault_read(f.client, "kv/app", NULL, 0, on_reply, &r1, NULL), 0);
        run_until(f.event, &r1, 1);
        assert_int_equal(r1.result, VAULT_UNAVAILABLE);
        assert_non_null(strstr(r1.error, "invalid role or secret ID"));

        /* Backing off: fail fast, nothing sent. */
        assert_int_equal(vault_lease_renew(f.client, "database/creds/ro/abc", 60, on_reply, &r2, NULL), 0);
        run_until(f.event, &r2, 1);
        assert_int_equal(r2.result, VAULT_UNAVAILABLE);
        assert_int_equal(f.server.n_requests, 1);

        vault_client_get_status(f.client, &st);
        assert_true(st.reachable);
        assert_false(st.logged_in);
        assert_non_null(strstr(st.last_error, "invalid role or secret ID"));
        fixture_done(&f);
}

static void test_redirect_not_followed(void **state) {
        _cleanup_free_ char *login = response("200 OK", "", login_body);
        _cleanup_free_ char *redirect = response("307 Temporary Redirect", "Location: http://127.0.0.1:1/v1/kv/app\r\n", "");
        Fixture f;
        Result r = {};

        fixture_init(&f, VAULT_AUTH_APPROLE);
        f.server.responses[f.server.n_responses++] = login;
        f.server.responses[f.server.n_responses++] = redirect;
        assert_int_equal(vault_client_new(f.event, &f.cfg, &f.client), 0);
        assert_int_equal(vault_client_start(f.client), 0);
        assert_int_equal(vault_read(f.client, "kv/app", NULL, 0, on_reply, &r, NULL), 0);
        run_until(f.event, &r, 1);
        assert_int_equal(r.result, VAULT_STANDBY);
        assert_int_equal(r.status, 307);
        assert_non_null(strstr(r.error, "never followed"));
        assert_int_equal(f.server.n_requests, 2);
        fixture_done(&f);
}

static void test_retries(void **state) {
        _cleanup_free_ char *login = response("200 OK", "", login_body);
        _cleanup_free_ char *e502 = response("502 Bad Gateway", "", "");
        _cleanup_free_ char *e429 = response("429 Too Many Requests", "Retry-After: 1\r\n",
                                             "{\"errors\":[\"rate limit quota exceeded\"]}");
        _cleanup_free_ char *renewed = response("200 OK", "", "{\"lease_id\":\"database/creds/ro/abcdefghijkl\","
                                                "\"renewable\":true,\"lease_duration\":60,\"data\":null}");
        Fixture f;
        Result r1 = {}, r2 = {}, r3 = {};

        fixture_init(&f, VAULT_AUTH_APPROLE);
        f.server.responses[f.server.n_responses++] = login;
        f.server.responses[f.server.n_responses++] = e502;     /* read: not retried */
        f.server.responses[f.server.n_responses++] = e502;     /* renew: retried */
        f.server.responses[f.server.n_responses++] = e429;     /* renew: retried */
        f.server.responses[f.server.n_responses++] = renewed;
        f.server.responses[f.server.n_responses++] = e502;     /* revoke: 3 attempts, then given up */
        f.server.responses[f.server.n_responses++] = e502;
        f.server.responses[f.server.n_responses++] = e502;
        assert_int_equal(vault_client_new(f.event, &f.cfg, &f.client), 0);
        assert_int_equal(vault_client_start(f.client), 0);

        assert_int_equal(vault_read(f.client, "database/creds/ro", NULL, 0, on_reply, &r1, NULL), 0);
        run_until(f.event, &r1, 1);
        assert_int_equal(r1.result, VAULT_NON_JSON);
        assert_int_equal(r1.status, 502);
        assert_int_equal(f.server.n_requests, 2);

        assert_int_equal(vault_lease_renew(f.client, "database/creds/ro/abcdefghijkl", 60, on_reply, &r2, NULL), 0);
        run_until(f.event, &r2, 1);
        assert_int_equal(r2.result, VAULT_OK);
        assert_int_equal(f.server.n_requests, 5);
        assert_non_null(strstr(f.server.requests[4], "PUT /v1/sys/leases/renew HTTP/1.1\r\n"));
        assert_non_null(strstr(f.server.requests[4], "{\"lease_id\":\"database/creds/ro/abcdefghijkl\",\"increment\":60}"));

        assert_int_equal(vault_lease_revoke(f.client, "database/creds/ro/abcdefghijkl", on_reply, &r3, NULL), 0);
        run_until(f.event, &r3, 1);
        assert_int_equal(r3.result, VAULT_NON_JSON);
        assert_true(r3.status == 502);
        assert_int_equal(f.server.n_requests, 8);
        assert_non_null(strstr(f.server.requests[7], "\"sync\":true"));
        fixture_done(&f);
}

static void test_cancel(void **state) {
        _cleanup_free_ char *login = response("200 OK", "", login_body);
        Fixture f;
        Result r = {};
        VaultRequest *req = NULL;

        fixture_init(&f, VAULT_AUTH_APPROLE);
        f.server.responses[f.server.n_responses++] = login;
        assert_int_equal(vault_client_new(f.event, &f.cfg, &f.client), 0);
        assert_int_equal(vault_client_start(f.client), 0);
        assert_int_equal(vault_read(f.client, "kv/app", NULL, 0, on_reply, &r, &req), 0);
        assert_non_null(req);
        assert_null(vault_request_cancel(req));
        for (int i = 0; i < 50; i++)
                assert_true(sd_event_run(f.event, 10 * 1000) >= 0);
        assert_int_equal(r.calls, 0);
        assert_true(vault_client_is_logged_in(f.client));
        fixture_done(&f);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_address_checks),
                cmocka_unit_test(test_bad_arguments),
                cmocka_unit_test(test_unavailable_before_start),
                cmocka_unit_test(test_login_headers_and_queue),
                cmocka_unit_test(test_login_failure_fails_queue),
                cmocka_unit_test(test_upkeep_before_reads),
                cmocka_unit_test(test_max_concurrent),
                cmocka_unit_test(test_redirect_not_followed),
                cmocka_unit_test(test_retries),
                cmocka_unit_test(test_cancel),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
