/* SPDX-License-Identifier: LGPL-2.1-or-later */
#undef NDEBUG

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "broker/vault-parse.h"
#include "common/macro.h"
#include "common/secret.h"

#define JSON "application/json"

static void parse_full(long status, const char *ct, const char *body, const char *retry_after,
                       VaultParseFlags flags, VaultReply *r) {
        assert_int_equal(vault_reply_parse(status, ct, body, body ? strlen(body) : 0, retry_after, flags, r), 0);
}

static void parse(long status, const char *ct, const char *body, VaultReply *r) {
        parse_full(status, ct, body, NULL, 0, r);
}

static const char *data_string(const VaultReply *r, const char *key) {
        json_object *v;

        assert_non_null(r->data);
        assert_true(json_object_object_get_ex(r->data, key, &v));
        return json_object_get_string(v);
}

static void test_database_creds(void **state) {
        VaultReply r;

        parse(200, JSON,
              "{\"request_id\":\"4e6f5c0a-1\",\"lease_id\":\"database/creds/readonly/9Y5YA7vmRs2uESbSOInm0BpC\","
              "\"renewable\":true,\"lease_duration\":3600,"
              "\"data\":{\"username\":\"v-approle-readonly-x8Zq3oPq0RrJ7tYbN1kA-1717171717\","
              "\"password\":\"A1b-cdefghijklmnopqr\"},"
              "\"wrap_info\":null,\"warnings\":null,\"auth\":null,\"mount_type\":\"database\"}", &r);
        assert_int_equal(r.result, VAULT_OK);
        assert_int_equal(r.status, 200);
        assert_false(r.transient);
        assert_string_equal(r.lease_id, "database/creds/readonly/9Y5YA7vmRs2uESbSOInm0BpC");
        assert_true(r.renewable);
        assert_int_equal(r.lease_duration, 3600);
        assert_string_equal(data_string(&r, "password"), "A1b-cdefghijklmnopqr");
        assert_null(r.warnings);
        assert_false(r.has_auth);
        assert_null(r.error);
        vault_reply_done(&r);
        assert_null(r.data);
}

static void test_kv1(void **state) {
        VaultReply r;

        parse(200, "application/json; charset=utf-8",
              "{\"request_id\":\"x\",\"lease_id\":\"\",\"renewable\":false,\"lease_duration\":2764800,"
              "\"data\":{\"api_key\":\"s3cr3t\"},\"wrap_info\":null,\"warnings\":null,\"auth\":null}", &r);
        assert_int_equal(r.result, VAULT_OK);
        assert_null(r.lease_id); /* "" means: no lease, never renew */
        assert_false(r.renewable);
        assert_int_equal(r.lease_duration, 2764800);
        assert_string_equal(data_string(&r, "api_key"), "s3cr3t");
        vault_reply_done(&r);
}

static const char kv2_body[] =
        "{\"request_id\":\"x\",\"lease_id\":\"\",\"renewable\":false,\"lease_duration\":0,"
        "\"data\":{\"data\":{\"foo\":\"bar\"},"
        "\"metadata\":{\"created_time\":\"2018-03-22T02:24:06.945319214Z\",\"custom_metadata\":null,"
        "\"deletion_time\":\"\",\"destroyed\":false,\"version\":2}},"
        "\"wrap_info\":null,\"warnings\":null,\"auth\":null}";

static void test_kv2(void **state) {
        VaultReply r;
        json_object *v;

        parse_full(200, JSON, kv2_body, NULL, VAULT_PARSE_KV2, &r);
        assert_int_equal(r.result, VAULT_OK);
        assert_string_equal(data_string(&r, "foo"), "bar");
        assert_false(json_object_object_get_ex(r.data, "metadata", NULL));
        assert_non_null(r.metadata);
        assert_true(json_object_object_get_ex(r.metadata, "version", &v));
        assert_int_equal(json_object_get_int(v), 2);
        vault_reply_done(&r);

        /* Without the flag the envelope is left alone. */
        parse(200, JSON, kv2_body, &r);
        assert_int_equal(r.result, VAULT_OK);
        assert_true(json_object_object_get_ex(r.data, "metadata", NULL));
        assert_null(r.metadata);
        vault_reply_done(&r);

        /* KV v2 asked, KV v1 answered: refuse rather than serve the wrong shape. */
        parse_full(200, JSON, "{\"lease_id\":\"\",\"lease_duration\":2764800,\"data\":{\"foo\":\"bar\"}}", NULL,
                   VAULT_PARSE_KV2, &r);
        assert_int_equal(r.result, VAULT_NON_JSON);
        assert_null(r.data);
        assert_non_null(strstr(r.error, "KV v2"));
        vault_reply_done(&r);
}

static void test_kv2_deleted(void **state) {
        VaultReply r;

        parse_full(404, JSON,
                   "{\"request_id\":\"x\",\"lease_id\":\"\",\"renewable\":false,\"lease_duration\":0,"
                   "\"data\":{\"data\":null,\"metadata\":{\"created_time\":\"2018-03-22T02:24:06.945319214Z\","
                   "\"custom_metadata\":null,\"deletion_time\":\"2018-03-22T02:30:00.1Z\",\"destroyed\":false,"
                   "\"version\":3}},\"wrap_info\":null,\"warnings\":null,\"auth\":null}",
                   NULL, VAULT_PARSE_KV2, &r);
        assert_int_equal(r.result, VAULT_NOT_FOUND);
        assert_null(r.data);
        assert_non_null(r.metadata);
        assert_non_null(strstr(r.error, "deleted"));
        assert_false(r.transient);
        vault_reply_done(&r);
}

static void test_not_found(void **state) {
        VaultReply r;

        parse(404, JSON, "{\"errors\":[]}", &r);
        assert_int_equal(r.result, VAULT_NOT_FOUND);
        assert_string_equal(r.error, "not found");
        vault_reply_done(&r);

        parse(404, JSON, "{\"errors\":[\"no handler for route \\\"foo/bar\\\". route entry not found.\"]}", &r);
        assert_int_equal(r.result, VAULT_NOT_FOUND);
        assert_non_null(strstr(r.error, "no handler for route"));
        vault_reply_done(&r);
}

static void test_no_content(void **state) {
        VaultReply r;

        parse(204, NULL, NULL, &r);
        assert_int_equal(r.result, VAULT_NO_CONTENT);
        assert_null(r.error);
        assert_null(r.data);
        vault_reply_done(&r);

        parse(202, NULL, "", &r);
        assert_int_equal(r.result, VAULT_NO_CONTENT);
        vault_reply_done(&r);
}

static void test_permission_denied(void **state) {
        VaultReply r;

        /* Policy denial: multierror, no "invalid token". */
        parse(403, JSON, "{\"errors\":[\"1 error occurred:\\n\\t* permission denied\\n\\n\"]}", &r);
        assert_int_equal(r.result, VAULT_PERMISSION_DENIED);
        assert_false(r.invalid_token);
        assert_false(r.transient);
        assert_string_equal(r.error, "1 error occurred: * permission denied");
        vault_reply_done(&r);

        /* OpenBao, bad token: plain text. */
        parse(403, JSON, "{\"errors\":[\"permission denied\"]}", &r);
        assert_int_equal(r.result, VAULT_PERMISSION_DENIED);
        assert_false(r.invalid_token);
        vault_reply_done(&r);

        /* Vault 1.17+: both messages. */
        parse(403, JSON, "{\"errors\":[\"2 errors occurred:\\n\\t* permission denied\\n\\t* invalid token\\n\\n\"]}",
              &r);
        assert_int_equal(r.result, VAULT_PERMISSION_DENIED);
        assert_true(r.invalid_token);
        vault_reply_done(&r);

        parse(403, JSON, "{\"errors\":[\"permission denied\",\"invalid token\"]}", &r);
        assert_true(r.invalid_token);
        assert_string_equal(r.error, "permission denied; invalid token");
        vault_reply_done(&r);
}

static void test_lease_errors(void **state) {
        VaultReply r;

        parse(400, JSON, "{\"errors\":[\"lease not found\"]}", &r);
        assert_int_equal(r.result, VAULT_LEASE_NOT_FOUND);
        assert_false(r.transient);
        vault_reply_done(&r);

        parse(400, JSON, "{\"errors\":[\"invalid lease\"]}", &r);
        assert_int_equal(r.result, VAULT_LEASE_NOT_FOUND);
        vault_reply_done(&r);

        parse(400, JSON, "{\"errors\":[\"lease expired\"]}", &r);
        assert_int_equal(r.result, VAULT_LEASE_NOT_FOUND);
        vault_reply_done(&r);

        parse(400, JSON, "{\"errors\":[\"lease is not renewable\"]}", &r);
        assert_int_equal(r.result, VAULT_NOT_RENEWABLE);
        vault_reply_done(&r);

        parse(400, JSON, "{\"errors\":[\"batch tokens cannot be renewed\"]}", &r);
        assert_int_equal(r.result, VAULT_NOT_RENEWABLE);
        vault_reply_done(&r);

        parse(400, JSON,
              "{\"errors\":[\"failed to renew entry: resp: (*logical.Response)(nil) err: past the max TTL, cannot renew\"]}",
              &r);
        assert_int_equal(r.result, VAULT_PAST_MAX_TTL);
        vault_reply_done(&r);

        parse(400, JSON, "{\"errors\":[\"lease_id must be specified\"]}", &r);
        assert_int_equal(r.result, VAULT_BAD_REQUEST);
        vault_reply_done(&r);

        parse(400, JSON, "{\"errors\":[\"invalid role or secret ID\"]}", &r);
        assert_int_equal(r.result, VAULT_BAD_REQUEST);
        assert_string_equal(r.error, "invalid role or secret ID");
        vault_reply_done(&r);

        parse(405, JSON, "{\"errors\":[\"1 error occurred:\\n\\t* unsupported operation\\n\\n\"]}", &r);
        assert_int_equal(r.result, VAULT_BAD_REQUEST);
        assert_false(r.transient);
        vault_reply_done(&r);

        parse(412, JSON, "{\"errors\":[\"missing \\\"X-Vault-Request\\\" header\"]}", &r);
        assert_int_equal(r.result, VAULT_BAD_REQUEST);
        assert_true(r.transient);
        vault_reply_done(&r);
}

static void test_renew_capped(void **state) {
        VaultReply r;

        parse(200, JSON,
              "{\"request_id\":\"x\",\"lease_id\":\"database/creds/ro/abcdefghijklmnopqrstuvwx\",\"renewable\":true,"
              "\"lease_duration\":598,\"data\":null,\"wrap_info\":null,"
              "\"warnings\":[\"TTL of \\\"1h\\\" exceeded the effective max_ttl of \\\"9m58s\\\"; TTL value is capped accordingly\"],"
              "\"auth\":null}", &r);
        assert_int_equal(r.result, VAULT_OK);
        assert_int_equal(r.lease_duration, 598);
        assert_null(r.data);
        assert_non_null(r.warnings);
        assert_non_null(strstr(r.warnings[0], "capped"));
        assert_null(r.warnings[1]);
        vault_reply_done(&r);
}

static void test_auth(void **state) {
        VaultReply r;

        parse(200, JSON,
              "{\"request_id\":\"x\",\"lease_id\":\"\",\"renewable\":false,\"lease_duration\":0,\"data\":null,"
              "\"wrap_info\":null,\"warnings\":null,"
              "\"auth\":{\"client_token\":\"hvs.CAESIJ0123456789\",\"accessor\":\"0eU5abcd\","
              "\"policies\":[\"default\",\"db-ro\"],\"token_policies\":[\"default\",\"db-ro\"],"
              "\"metadata\":{\"role_name\":\"broker\"},\"lease_duration\":3600,\"renewable\":true,"
              "\"entity_id\":\"c1d0\",\"token_type\":\"service\",\"orphan\":true,\"mfa_requirement\":null,"
              "\"num_uses\":0}}", &r);
        assert_int_equal(r.result, VAULT_OK);
        assert_true(r.has_auth);
        assert_non_null(r.auth.client_token);
        assert_int_equal(secret_size(r.auth.client_token), strlen("hvs.CAESIJ0123456789"));
        assert_memory_equal(secret_get(r.auth.client_token), "hvs.CAESIJ0123456789", secret_size(r.auth.client_token));
        assert_string_equal(r.auth.accessor, "0eU5abcd");
        assert_int_equal(r.auth.lease_duration, 3600);
        assert_true(r.auth.renewable);
        assert_string_equal(r.auth.policies[0], "default");
        assert_string_equal(r.auth.policies[1], "db-ro");
        assert_null(r.auth.policies[2]);
        vault_reply_done(&r);

        /* renew-accessor blanks the token. */
        parse(200, JSON, "{\"lease_id\":\"\",\"lease_duration\":0,\"data\":null,"
              "\"auth\":{\"client_token\":\"\",\"accessor\":\"acc\",\"lease_duration\":60,\"renewable\":true}}", &r);
        assert_int_equal(r.result, VAULT_OK);
        assert_true(r.has_auth);
        assert_null(r.auth.client_token);
        assert_int_equal(r.auth.lease_duration, 60);
        vault_reply_done(&r);
}

static void test_rate_limited(void **state) {
        VaultReply r;

        parse_full(429, JSON, "{\"errors\":[\"request path \\\"database/creds/ro\\\": rate limit quota exceeded\"]}",
                   "7", 0, &r);
        assert_int_equal(r.result, VAULT_RATE_LIMITED);
        assert_true(r.transient);
        assert_int_equal(r.retry_after_usec, 7 * USEC_PER_SEC);
        vault_reply_done(&r);

        parse_full(429, JSON, "{\"errors\":[\"lease count quota exceeded\"]}", "Wed, 21 Oct 2015 07:28:00 GMT", 0, &r);
        assert_int_equal(r.result, VAULT_RATE_LIMITED);
        assert_int_equal(r.retry_after_usec, 0);
        vault_reply_done(&r);

        parse_full(429, JSON, "{\"errors\":[]}", "999999999999999999999999", 0, &r);
        assert_int_equal(r.retry_after_usec, 3600 * USEC_PER_SEC);
        vault_reply_done(&r);
}

static void test_sealed_standby(void **state) {
        VaultReply r;

        parse(503, JSON, "{\"errors\":[\"Vault is sealed\"]}", &r);
        assert_int_equal(r.result, VAULT_SEALED);
        assert_true(r.transient);
        vault_reply_done(&r);

        parse(503, JSON, "{\"errors\":[\"node is not active\"]}", &r);
        assert_int_equal(r.result, VAULT_STANDBY);
        assert_true(r.transient);
        vault_reply_done(&r);

        parse(503, JSON, "{\"errors\":[\"no active Vault instance found\"]}", &r);
        assert_int_equal(r.result, VAULT_STANDBY);
        vault_reply_done(&r);

        parse(307, NULL, "", &r);
        assert_int_equal(r.result, VAULT_STANDBY);
        assert_non_null(strstr(r.error, "redirect"));
        vault_reply_done(&r);

        parse(302, "text/html", "<a href=\"https://sso.example.com/\">Found</a>", &r);
        assert_int_equal(r.result, VAULT_BAD_REQUEST);
        assert_non_null(strstr(r.error, "redirect"));
        vault_reply_done(&r);
}

static void test_server_error(void **state) {
        VaultReply r;

        parse(500, JSON, "{\"errors\":[\"1 error occurred:\\n\\t* \\\"x\\\" is not an allowed role\\n\\n\"]}", &r);
        assert_int_equal(r.result, VAULT_SERVER_ERROR);
        assert_true(r.transient);
        assert_non_null(strstr(r.error, "is not an allowed role"));
        vault_reply_done(&r);

        parse(501, JSON, "{\"errors\":[]}", &r);
        assert_int_equal(r.result, VAULT_SERVER_ERROR);
        assert_false(r.transient);
        vault_reply_done(&r);

        /* A 2xx with errors is not a success. */
        parse(200, JSON, "{\"errors\":[\"weird\"]}", &r);
        assert_int_equal(r.result, VAULT_SERVER_ERROR);
        assert_null(r.data);
        vault_reply_done(&r);
}

static void test_non_json(void **state) {
        VaultReply r;

        parse(502, "text/html",
              "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway"
              "</h1></center>\r\n<hr><center>nginx/1.22.1</center>\r\n</body>\r\n</html>\r\n", &r);
        assert_int_equal(r.result, VAULT_NON_JSON);
        assert_true(r.transient);
        assert_non_null(strstr(r.error, "HTTP 502 with a text/html body, not JSON"));
        assert_non_null(strstr(r.error, "502 Bad Gateway"));
        assert_null(strchr(r.error, '\n'));
        vault_reply_done(&r);

        parse(502, NULL, "", &r);
        assert_int_equal(r.result, VAULT_NON_JSON);
        assert_true(r.transient);
        assert_string_equal(r.error, "HTTP 502 with an empty body, not JSON");
        vault_reply_done(&r);

        /* A login page with 200: an error, never a success with empty fields, no body shown. */
        parse(200, "text/html; charset=utf-8", "<!DOCTYPE html><html><body>Sign in</body></html>", &r);
        assert_int_equal(r.result, VAULT_NON_JSON);
        assert_false(r.transient);
        assert_null(r.data);
        assert_null(strstr(r.error, "Sign in"));
        assert_non_null(strstr(r.error, "text/html"));
        vault_reply_done(&r);

        /* Truncated JSON: nothing of it may leak into the message. */
        parse(200, JSON, "{\"lease_id\":\"database/creds/ro/abc\",\"data\":{\"password\":\"hunter2-secret", &r);
        assert_int_equal(r.result, VAULT_NON_JSON);
        assert_null(r.data);
        assert_null(r.lease_id);
        assert_null(strstr(r.error, "hunter2"));
        assert_non_null(strstr(r.error, "truncated"));
        vault_reply_done(&r);

        /* Trailing garbage after the object. */
        parse(200, JSON, "{\"data\":{}} x", &r);
        assert_int_equal(r.result, VAULT_NON_JSON);
        vault_reply_done(&r);

        /* JSON, but not an object. */
        parse(200, JSON, "[1,2,3]", &r);
        assert_int_equal(r.result, VAULT_NON_JSON);
        vault_reply_done(&r);

        /* Wrong types in the envelope. */
        parse(200, JSON, "{\"lease_id\":42,\"data\":{}}", &r);
        assert_int_equal(r.result, VAULT_NON_JSON);
        assert_non_null(strstr(r.error, "lease_id"));
        assert_null(r.data);
        vault_reply_done(&r);

        parse(200, JSON, "{\"lease_duration\":\"1h\",\"data\":{}}", &r);
        assert_int_equal(r.result, VAULT_NON_JSON);
        vault_reply_done(&r);

        parse(200, JSON, "{\"data\":\"nope\"}", &r);
        assert_int_equal(r.result, VAULT_NON_JSON);
        vault_reply_done(&r);

        parse(200, JSON, "{\"auth\":{\"client_token\":123}}", &r);
        assert_int_equal(r.result, VAULT_NON_JSON);
        assert_false(r.has_auth);
        assert_null(r.auth.client_token);
        vault_reply_done(&r);
}

static void test_oversize(void **state) {
        VaultReply r;
        size_t n = VAULT_BODY_MAX + 1;
        char *big = malloc(n);

        assert_non_null(big);
        memset(big, ' ', n);
        big[0] = '{';
        big[n - 1] = '}';
        assert_int_equal(vault_reply_parse(200, JSON, big, n, NULL, 0, &r), 0);
        assert_int_equal(r.result, VAULT_TOO_LARGE);
        assert_non_null(strstr(r.error, "too large"));
        assert_false(r.transient);
        vault_reply_done(&r);

        /* Exactly at the cap is fine. */
        assert_int_equal(vault_reply_parse(200, JSON, big, n - 1, NULL, 0, &r), 0);
        assert_int_equal(r.result, VAULT_NON_JSON); /* missing '}' */
        vault_reply_done(&r);
        big[n - 2] = '}';
        assert_int_equal(vault_reply_parse(200, JSON, big, n - 1, NULL, 0, &r), 0);
        assert_int_equal(r.result, VAULT_OK);
        vault_reply_done(&r);
        free(big);
}

static void test_deep_nesting(void **state) {
        char body[4096];
        VaultReply r;
        size_t i = 0;

        i += (size_t) snprintf(body, sizeof(body), "{\"data\":");
        for (int k = 0; k < 200; k++)
                body[i++] = '[';
        for (int k = 0; k < 200; k++)
                body[i++] = ']';
        body[i++] = '}';
        body[i] = 0;

        parse(200, JSON, body, &r);
        assert_int_equal(r.result, VAULT_NON_JSON);
        vault_reply_done(&r);
}

static void test_huge_numbers(void **state) {
        VaultReply r;

        parse(200, JSON, "{\"lease_id\":\"a/b/cdefghijklmnop\",\"lease_duration\":99999999999999999999999,\"data\":{}}", &r);
        /* json-c saturates to INT64_MAX; we clamp to 100 years so that usec arithmetic cannot overflow. */
        assert_int_equal(r.result, VAULT_OK);
        assert_true(r.lease_duration <= INT64_C(3153600000));
        vault_reply_done(&r);

        parse(200, JSON, "{\"lease_duration\":-5,\"data\":{}}", &r);
        assert_int_equal(r.result, VAULT_OK);
        assert_int_equal(r.lease_duration, 0);
        vault_reply_done(&r);
}

static void test_health(void **state) {
        VaultReply r;

        parse_full(200, JSON, "{\"initialized\":true,\"sealed\":false,\"standby\":false,\"version\":\"1.17.0\","
                   "\"server_time_utc\":1717171717,\"cluster_name\":\"c\",\"cluster_id\":\"id\"}", NULL,
                   VAULT_PARSE_HEALTH, &r);
        assert_int_equal(r.result, VAULT_OK);
        vault_reply_done(&r);

        parse_full(503, JSON, "{\"initialized\":true,\"sealed\":true,\"standby\":true,\"version\":\"2.0.0\"}", NULL,
                   VAULT_PARSE_HEALTH, &r);
        assert_int_equal(r.result, VAULT_SEALED);
        vault_reply_done(&r);

        parse_full(429, JSON, "{\"initialized\":true,\"sealed\":false,\"standby\":true}", NULL, VAULT_PARSE_HEALTH, &r);
        assert_int_equal(r.result, VAULT_STANDBY);
        vault_reply_done(&r);

        parse_full(501, JSON, "{\"initialized\":false,\"sealed\":true}", NULL, VAULT_PARSE_HEALTH, &r);
        assert_int_equal(r.result, VAULT_SEALED);
        vault_reply_done(&r);
}

static void test_transport(void **state) {
        VaultReply r;

        assert_int_equal(vault_reply_transport_error(VAULT_TRANSPORT, "Failed to connect to 127.0.0.1 port 1", &r), 0);
        assert_int_equal(r.result, VAULT_TRANSPORT);
        assert_int_equal(r.status, 0);
        assert_true(r.transient);
        assert_string_equal(r.error, "Failed to connect to 127.0.0.1 port 1");
        vault_reply_done(&r);

        assert_int_equal(vault_reply_transport_error(VAULT_UNAVAILABLE, NULL, &r), 0);
        assert_string_equal(r.error, "unavailable");
        assert_true(r.transient);
        vault_reply_done(&r);
}

static void test_result_strings(void **state) {
        for (VaultResult i = 0; i < _VAULT_RESULT_MAX; i++)
                assert_non_null(vault_result_to_string(i));
        assert_null(vault_result_to_string(_VAULT_RESULT_MAX));
        assert_null(vault_result_to_string(_VAULT_RESULT_INVALID));
}

static void test_lease_id_for_log(void **state) {
        char buf[VAULT_LEASE_LOG_MAX];

        assert_string_equal(vault_lease_id_for_log("database/creds/reader/9Y5YA7vmRs2uESbSOInm0BpC", buf, sizeof(buf)),
                            "database/creds/reader/\u20260BpC");
        assert_string_equal(vault_lease_id_for_log(NULL, buf, sizeof(buf)), "(none)");
        assert_string_equal(vault_lease_id_for_log("", buf, sizeof(buf)), "(none)");
        /* Short tails show nothing of themselves. */
        assert_string_equal(vault_lease_id_for_log("a/b/short", buf, sizeof(buf)), "a/b/\u2026");
        assert_string_equal(vault_lease_id_for_log("noslashbutlongenough", buf, sizeof(buf)), "\u2026ough");
        assert_string_equal(vault_lease_id_for_log("x\ny/abcdefghijklmnop", buf, sizeof(buf)), "x?y/\u2026mnop");
        /* Truncated to the buffer, always terminated. */
        assert_int_equal(strlen(vault_lease_id_for_log("database/creds/reader/9Y5YA7vmRs2uESbSOInm0BpC", buf, 8)), 7);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_database_creds),
                cmocka_unit_test(test_kv1),
                cmocka_unit_test(test_kv2),
                cmocka_unit_test(test_kv2_deleted),
                cmocka_unit_test(test_not_found),
                cmocka_unit_test(test_no_content),
                cmocka_unit_test(test_permission_denied),
                cmocka_unit_test(test_lease_errors),
                cmocka_unit_test(test_renew_capped),
                cmocka_unit_test(test_auth),
                cmocka_unit_test(test_rate_limited),
                cmocka_unit_test(test_sealed_standby),
                cmocka_unit_test(test_server_error),
                cmocka_unit_test(test_non_json),
                cmocka_unit_test(test_oversize),
                cmocka_unit_test(test_deep_nesting),
                cmocka_unit_test(test_huge_numbers),
                cmocka_unit_test(test_health),
                cmocka_unit_test(test_transport),
                cmocka_unit_test(test_result_strings),
                cmocka_unit_test(test_lease_id_for_log),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
