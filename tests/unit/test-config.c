/* SPDX-License-Identifier: LGPL-2.1-or-later */
#undef NDEBUG

#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "broker/config.h"
#include "common/memory-util.h"

#define VAULT "[vault]\naddress = https://vault.example:8200\n"
#define WHY "(no leading '/', no empty, '.' or '..' segment, no space or any of ?#%\\\")"

static Config *parse_ok(const char *text) {
        Config *c = NULL;
        char *e = NULL;
        int r;

        r = config_parse_string(text, "vleased.conf", &c, &e);
        if (r < 0)
                fail_msg("parse failed (%d): %s", r, e ?: "(no error text)");
        assert_null(e);
        assert_non_null(c);
        return c;
}

static void parse_fails(const char *text, const char *expected) {
        Config *c = NULL;
        char *e = NULL;
        int r;

        r = config_parse_string(text, "vleased.conf", &c, &e);
        if (r != -EINVAL)
                fail_msg("expected failure '%s', got %d", expected, r);
        assert_null(c);
        if (!e || strcmp(e, expected) != 0)
                fail_msg("expected error '%s', got '%s'", expected, e ?: "(null)");
        free(e);
}

static void test_defaults(void **state) {
        Config *c = parse_ok(VAULT);

        assert_string_equal(c->vault.address, "https://vault.example:8200");
        assert_null(c->vault.ca_file);
        assert_false(c->vault.allow_http);
        assert_null(c->vault.namespace);
        assert_int_equal(c->vault.auth, VAULT_AUTH_APPROLE);
        assert_true(c->vault.timeout_usec == 30 * USEC_PER_SEC);
        assert_string_equal(c->vault.user_auth_mount, "userpass");
        assert_true(c->broker.idle_release_usec == 3600 * USEC_PER_SEC);
        assert_false(c->broker.revoke_on_stop);
        assert_true(c->broker.idle_exit_usec == 0);
        assert_int_equal(c->broker.max_connections_per_uid, 64);
        assert_int_equal(c->broker.max_connections_root, 4096);
        assert_int_equal(c->broker.max_requests_per_uid, 16);
        assert_true(c->broker.request_timeout_usec == 10 * USEC_PER_SEC);
        assert_int_equal(c->broker.max_message_size, 65536);
        assert_int_equal(c->n_credentials, 0);
        config_free(c);
}

static void test_all_keys(void **state) {
        Config *c = parse_ok(
                "; comment\n"
                "# another\n"
                "[vault]\n"
                "address = http://vault.internal:8200/   ; trailing slash dropped\n"
                "ca_file = /etc/vlease/ca.pem\n"
                "allow_http = YES\n"
                "namespace = team-a\n"
                "auth = token\n"
                "role_id_file = /etc/vlease/role_id\n"
                "secret_id_file = /etc/vlease/secret_id\n"
                "token_file = /etc/vlease/token\n"
                "timeout_sec = 5\n"
                "user_auth_mount = ldap\n"
                "\n"
                "[broker]\n"
                "idle_release_sec = 0\n"
                "revoke_on_stop = on\n"
                "idle_exit_sec = 60\n"
                "max_connections_per_uid = 8\n"
                "max_connections_root = 100\n"
                "max_requests_per_uid = 2\n"
                "request_timeout_sec = 3\n"
                "max_message_size = 4096\n"
                "\n"
                "[credential db-reader]\n"
                "path = database/creds/reader\n"
                "allow_users = alice bob\n"
                "allow_groups = dbusers\n"
                "allow_units = app.service worker@*.service\n"
                "format = {{username}}:{{password}}\n"
                "refresh_sec = 60\n"
                "identity = user\n"
                "provision = true\n"
                "release_on_logout = 0\n"
                "[credential app_config.v2]\n"
                "path = kv/data/app\n");

        assert_string_equal(c->vault.address, "http://vault.internal:8200");
        assert_string_equal(c->vault.ca_file, "/etc/vlease/ca.pem");
        assert_true(c->vault.allow_http);
        assert_string_equal(c->vault.namespace, "team-a");
        assert_int_equal(c->vault.auth, VAULT_AUTH_TOKEN);
        assert_string_equal(c->vault.role_id_file, "/etc/vlease/role_id");
        assert_string_equal(c->vault.secret_id_file, "/etc/vlease/secret_id");
        assert_string_equal(c->vault.token_file, "/etc/vlease/token");
        assert_true(c->vault.timeout_usec == 5 * USEC_PER_SEC);
        assert_string_equal(c->vault.user_auth_mount, "ldap");

        assert_true(c->broker.idle_release_usec == 0);
        assert_true(c->broker.revoke_on_stop);
        assert_true(c->broker.idle_exit_usec == 60 * USEC_PER_SEC);
        assert_int_equal(c->broker.max_connections_per_uid, 8);
        assert_int_equal(c->broker.max_connections_root, 100);
        assert_int_equal(c->broker.max_requests_per_uid, 2);
        assert_true(c->broker.request_timeout_usec == 3 * USEC_PER_SEC);
        assert_int_equal(c->broker.max_message_size, 4096);

        assert_int_equal(c->n_credentials, 2);
        {
                const CredentialConfig *cc = config_find_credential(c, "db-reader");

                assert_non_null(cc);
                assert_ptr_equal(cc, &c->credentials[0]);
                assert_string_equal(cc->path, "database/creds/reader");
                assert_int_equal(strv_length(cc->allow_users), 2);
                assert_string_equal(cc->allow_users[0], "alice");
                assert_string_equal(cc->allow_users[1], "bob");
                assert_string_equal(cc->allow_groups[0], "dbusers");
                assert_string_equal(cc->allow_units[1], "worker@*.service");
                assert_string_equal(cc->format, "{{username}}:{{password}}");
                assert_true(cc->refresh_usec == 60 * USEC_PER_SEC);
                assert_int_equal(cc->identity, CREDENTIAL_IDENTITY_USER);
                assert_true(cc->provision);
                assert_false(cc->release_on_logout);
        }
        {
                const CredentialConfig *cc = config_find_credential(c, "app_config.v2");

                assert_non_null(cc);
                assert_string_equal(cc->path, "kv/data/app");
                assert_null(cc->allow_users);
                assert_null(cc->format);
                assert_true(cc->refresh_usec == 300 * USEC_PER_SEC);
                assert_int_equal(cc->identity, CREDENTIAL_IDENTITY_BROKER);
                assert_false(cc->provision);
                assert_true(cc->release_on_logout);
        }
        assert_null(config_find_credential(c, "nope"));
        config_free(c);
}

static void test_merge(void **state) {
        Config *c = parse_ok(
                "[vault]\n"
                "address = https://a.example\n"
                "[credential x]\n"
                "path = a/b\n"
                "allow_users = alice\n"
                "[broker]\n"
                "idle_exit_sec = 5\n"
                "[vault]\n"
                "address = https://b.example\n"
                "[credential x]\n"
                "path = c/d\n"
                "allow_users = bob alice\n"
                "allow_users = carol\n"
                "    dave\n"
                "\teve\n"
                "format = a={{a}}\n"
                "  b={{b}}\n"
                "[broker]\n"
                "idle_exit_sec = 7\n");

        assert_string_equal(c->vault.address, "https://b.example");
        assert_true(c->broker.idle_exit_usec == 7 * USEC_PER_SEC);
        assert_int_equal(c->n_credentials, 1);
        assert_string_equal(c->credentials[0].path, "c/d");
        /* accumulated, duplicates dropped, in order of first appearance */
        assert_int_equal(strv_length(c->credentials[0].allow_users), 5);
        assert_string_equal(c->credentials[0].allow_users[0], "alice");
        assert_string_equal(c->credentials[0].allow_users[1], "bob");
        assert_string_equal(c->credentials[0].allow_users[2], "carol");
        assert_string_equal(c->credentials[0].allow_users[3], "dave");
        assert_string_equal(c->credentials[0].allow_users[4], "eve");
        assert_string_equal(c->credentials[0].format, "a={{a}}\nb={{b}}");
        config_free(c);

        /* loopback http needs no allow_http */
        c = parse_ok("[vault]\naddress = http://127.0.0.1:8200\n");
        config_free(c);
        c = parse_ok("[vault]\naddress = HTTPS://Vault.Example\n");
        assert_string_equal(c->vault.address, "https://Vault.Example");
        config_free(c);
        c = parse_ok("[vault]\naddress = http://localhost\n");
        config_free(c);
        c = parse_ok("[vault]\naddress = http://[::1]:8200\n");
        config_free(c);
}

static void test_errors(void **state) {
        char long_line[300];

        parse_fails(VAULT "foo = 1\n", "vleased.conf:3: unknown key 'foo' in [vault]");
        parse_fails(VAULT "[broker]\nbar = 1\n", "vleased.conf:4: unknown key 'bar' in [broker]");
        parse_fails(VAULT "[credential x]\npath = a\nallow = 1\n",
                    "vleased.conf:5: unknown key 'allow' in [credential x]");
        parse_fails(VAULT "[bogus]\n", "vleased.conf:3: unknown section [bogus]");
        parse_fails(VAULT "[bogus]\nx = 1\n", "vleased.conf:3: unknown section [bogus]");
        parse_fails(VAULT "[credential]\n", "vleased.conf:3: section [credential] needs a name: [credential NAME]");
        parse_fails(VAULT "[credential a/b]\n",
                    "vleased.conf:3: invalid credential name 'a/b' (allowed: A-Z a-z 0-9 _ . -)");
        parse_fails(VAULT "[credential ..]\n",
                    "vleased.conf:3: invalid credential name '..' (allowed: A-Z a-z 0-9 _ . -)");
        parse_fails("x = 1\n" VAULT, "vleased.conf:1: key 'x' outside of a section");
        parse_fails(VAULT "allow_http = maybe\n", "vleased.conf:3: invalid value 'maybe' for allow_http (yes or no)");
        parse_fails(VAULT "timeout_sec = 0\n", "vleased.conf:3: invalid value '0' for timeout_sec (seconds, 1 to 315360000)");
        parse_fails(VAULT "timeout_sec = -1\n", "vleased.conf:3: invalid value '-1' for timeout_sec (seconds, 1 to 315360000)");
        parse_fails(VAULT "timeout_sec = 99999999999999999999999\n",
                    "vleased.conf:3: invalid value '99999999999999999999999' for timeout_sec (seconds, 1 to 315360000)");
        parse_fails(VAULT "timeout_sec = 1s\n", "vleased.conf:3: invalid value '1s' for timeout_sec (seconds, 1 to 315360000)");
        parse_fails(VAULT "[broker]\nmax_message_size = 10\n",
                    "vleased.conf:4: invalid value '10' for max_message_size (integer, 1024 to 16777216)");
        parse_fails(VAULT "[broker]\nmax_connections_per_uid = 0\n",
                    "vleased.conf:4: invalid value '0' for max_connections_per_uid (integer, 1 to 1000000)");
        parse_fails(VAULT "auth = kerberos\n", "vleased.conf:3: invalid value 'kerberos' for auth (approle or token)");
        parse_fails("[vault]\naddress = vault.example\n",
                    "vleased.conf:2: invalid address 'vault.example' (an http:// or https:// URL)");
        parse_fails("[vault]\naddress = ftp://vault.example\n",
                    "vleased.conf:2: invalid address 'ftp://vault.example' (an http:// or https:// URL)");
        parse_fails("[vault]\naddress = https://user:pw@vault.example\n",
                    "vleased.conf:2: invalid address 'https://user:pw@vault.example' (an http:// or https:// URL)");
        parse_fails("[vault]\naddress = https://\n",
                    "vleased.conf:2: invalid address 'https://' (an http:// or https:// URL)");
        parse_fails("[vault]\naddress = https://v:port\n",
                    "vleased.conf:2: invalid address 'https://v:port' (an http:// or https:// URL)");
        parse_fails("[vault]\naddress = http://vault.example\n",
                    "vleased.conf: address 'http://vault.example' uses plain http to a host that is not loopback; "
                    "use https or set allow_http = yes");
        parse_fails("[broker]\n", "vleased.conf: [vault] address is not set");
        parse_fails(VAULT "[credential x]\npath = /abs\n",
                    "vleased.conf:4: invalid path '/abs' in [credential x] " WHY);
        parse_fails(VAULT "[credential x]\npath =\n",
                    "vleased.conf:4: invalid path '' in [credential x] " WHY);
        parse_fails(VAULT "[credential x]\npath = kv/data/app?version=1\n",
                    "vleased.conf:4: invalid path 'kv/data/app?version=1' in [credential x] " WHY);
        parse_fails(VAULT "[credential x]\npath = kv/%2e%2e/sys\n",
                    "vleased.conf:4: invalid path 'kv/%2e%2e/sys' in [credential x] " WHY);
        parse_fails(VAULT "[credential x]\npath = a/../b\n",
                    "vleased.conf:4: invalid path 'a/../b' in [credential x] " WHY);
        parse_fails(VAULT "[credential x]\nallow_users = a\n", "vleased.conf:3: [credential x] has no path");
        parse_fails(VAULT "[credential x]\npath = a\nformat = {{user\n",
                    "vleased.conf:5: invalid format in [credential x]: unterminated placeholder at offset 0");
        parse_fails(VAULT "[credential x]\npath = a\nidentity = root\n",
                    "vleased.conf:5: invalid value 'root' for identity (broker or user)");
        parse_fails(VAULT "[credential x]\npath = a\nallow_users = a,b\n",
                    "vleased.conf:5: invalid entry 'a,b' in allow_users (separate entries by spaces)");
        parse_fails(VAULT "[credential x]\npath = a\n  b\n",
                    "vleased.conf:5: key 'path' does not take continuation lines");
        parse_fails(VAULT "this is not ini\n", "vleased.conf:3: syntax error (expected [section] or key = value)");
        parse_fails(VAULT "[vault\n", "vleased.conf:3: syntax error (expected [section] or key = value)");

        memset(long_line, 'a', sizeof(long_line));
        memcpy(long_line, VAULT "namespace = ", strlen(VAULT "namespace = "));
        long_line[sizeof(long_line) - 2] = '\n';
        long_line[sizeof(long_line) - 1] = 0;
        parse_fails(long_line, "vleased.conf:3: line too long (at most 197 bytes)");

        /* first error wins */
        parse_fails(VAULT "a = 1\nb = 2\n", "vleased.conf:3: unknown key 'a' in [vault]");
}

static void test_duplicate_keys(void **state) {
        Config *c;

        /* a key set twice under one section header is an error naming both lines */
        parse_fails(VAULT "[credential x]\npath = a\npath = b\n",
                    "vleased.conf:5: duplicate key 'path' in [credential x] (first set on line 4)");
        parse_fails(VAULT "[credential x]\npath = a\nformat = {{a}}\nallow_users = alice\nformat = {{b}}\n",
                    "vleased.conf:7: duplicate key 'format' in [credential x] (first set on line 5)");
        parse_fails(VAULT "timeout_sec = 5\naddress = https://other.example\n",
                    "vleased.conf:4: duplicate key 'address' in [vault] (first set on line 2)");
        parse_fails(VAULT "[broker]\nidle_exit_sec = 5\nrevoke_on_stop = yes\nidle_exit_sec = 5\n",
                    "vleased.conf:6: duplicate key 'idle_exit_sec' in [broker] (first set on line 4)");
        /* an invalid second value: the duplicate is what is reported */
        parse_fails(VAULT "[credential x]\npath = a\nidentity = user\nidentity = nobody\n",
                    "vleased.conf:6: duplicate key 'identity' in [credential x] (first set on line 5)");
        /* keys are per section: the same key in two sections, or two credentials, is fine */
        c = parse_ok(VAULT "[credential x]\npath = a\nformat = {{a}}\n[credential y]\npath = b\nformat = {{b}}\n");
        assert_string_equal(c->credentials[0].path, "a");
        assert_string_equal(c->credentials[1].path, "b");
        config_free(c);

        /* list keys accumulate, format takes continuation lines: neither is a duplicate */
        c = parse_ok(VAULT "[credential x]\npath = a\nallow_users = alice\nallow_users = bob\n"
                     "allow_groups = g1\nallow_groups = g2\nallow_units = a.service\nallow_units = b.service\n"
                     "format = a={{a}}\n  b={{b}}\n");
        assert_int_equal(strv_length(c->credentials[0].allow_users), 2);
        assert_int_equal(strv_length(c->credentials[0].allow_groups), 2);
        assert_int_equal(strv_length(c->credentials[0].allow_units), 2);
        assert_string_equal(c->credentials[0].format, "a={{a}}\nb={{b}}");
        config_free(c);
}

static void test_long_line_limit(void **state) {
        /* 197 bytes of content fit, CRLF is fine */
        char text[512];
        const char *prefix = VAULT "namespace = ";
        size_t pl = strlen(prefix), line = strlen("namespace = ");
        Config *c;

        memcpy(text, prefix, pl);
        memset(text + pl, 'n', 197 - line);
        strcpy(text + pl + 197 - line, "\r\n");
        c = parse_ok(text);
        assert_int_equal(strlen(c->vault.namespace), 197 - line);
        config_free(c);
}

static char *mkdtemp_or_die(void) {
        char *d = strdup("/tmp/test-config-XXXXXX");

        assert_non_null(d);
        assert_non_null(mkdtemp(d));
        return d;
}

static void write_file(const char *dir, const char *name, const char *text, mode_t mode) {
        char *p = NULL;
        FILE *f;

        assert_true(asprintf(&p, "%s/%s", dir, name) > 0);
        f = fopen(p, "we");
        assert_non_null(f);
        fputs(text, f);
        fclose(f);
        assert_int_equal(chmod(p, mode), 0);
        free(p);
}

static int unlink_dropin(const char *dir, const char *name) {
        char *p = NULL;
        int r;

        assert_true(asprintf(&p, "%s/%s", dir, name) > 0);
        r = unlink(p);
        free(p);
        return r;
}

static void rm_rf(const char *dir) {
        char *cmd = NULL;

        assert_true(asprintf(&cmd, "rm -rf '%s'", dir) > 0);
        assert_int_equal(system(cmd), 0);
        free(cmd);
}

/* config_load() fails with @expected and an error containing @needle. */
static void load_fails(const char *path, int expected, const char *needle) {
        Config *c = NULL;
        char *e = NULL;

        assert_int_equal(config_load(path, &c, &e), expected);
        assert_null(c);
        assert_non_null(e);
        assert_non_null(strstr(e, needle));
        free(e);
}

static void test_dropins(void **state) {
        char *d = mkdtemp_or_die(), *main_path = NULL, *dd = NULL, *e = NULL;
        Config *c = NULL;

        assert_true(asprintf(&main_path, "%s/vleased.conf", d) > 0);
        assert_true(asprintf(&dd, "%s/vleased.conf.d", d) > 0);
        assert_int_equal(mkdir(dd, 0755), 0);

        write_file(d, "vleased.conf",
                   VAULT "[credential db]\npath = database/creds/reader\nallow_users = alice\n", 0644);
        write_file(dd, "20-b.conf", "[credential db]\nallow_users = carol\n[broker]\nidle_exit_sec = 20\n", 0644);
        write_file(dd, "10-a.conf", "[credential db]\nallow_users = bob\n[broker]\nidle_exit_sec = 10\n", 0644);
        write_file(dd, "30-c.conf.disabled", "garbage\n", 0644);
        write_file(dd, "Z.conf", "[vault]\nnamespace = last\n[credential db]\npath = database/creds/writer\n", 0644);

        assert_int_equal(config_load(main_path, &c, &e), 0);
        assert_null(e);
        assert_true(c->broker.idle_exit_usec == 20 * USEC_PER_SEC);
        assert_string_equal(c->vault.namespace, "last");
        assert_string_equal(c->credentials[0].path, "database/creds/writer");
        assert_int_equal(strv_length(c->credentials[0].allow_users), 3);
        assert_string_equal(c->credentials[0].allow_users[0], "alice");
        assert_string_equal(c->credentials[0].allow_users[1], "bob");
        assert_string_equal(c->credentials[0].allow_users[2], "carol");
        c = config_free(c);

        /* an error in a drop-in names the drop-in */
        write_file(dd, "15-bad.conf", "[broker]\n\nnope = 1\n", 0644);
        assert_int_equal(config_load(main_path, &c, &e), -EINVAL);
        assert_null(c);
        {
                char *expected = NULL;

                assert_true(asprintf(&expected, "%s/15-bad.conf:3: unknown key 'nope' in [broker]", dd) > 0);
                assert_string_equal(e, expected);
                free(expected);
        }
        free(e);
        e = NULL;

        /* a key given twice in one section of a drop-in names the drop-in */
        write_file(dd, "15-bad.conf", "[broker]\nidle_exit_sec = 1\nidle_exit_sec = 2\n", 0644);
        assert_int_equal(config_load(main_path, &c, &e), -EINVAL);
        {
                char *expected = NULL;

                assert_true(asprintf(&expected, "%s/15-bad.conf:3: duplicate key 'idle_exit_sec' in [broker] "
                                     "(first set on line 2)", dd) > 0);
                assert_string_equal(e, expected);
                free(expected);
        }
        free(e);
        e = NULL;

        /* a credential opened in a drop-in without a path anywhere */
        write_file(dd, "15-bad.conf", "\n[credential other]\nallow_users = x\n", 0644);
        assert_int_equal(config_load(main_path, &c, &e), -EINVAL);
        {
                char *expected = NULL;

                assert_true(asprintf(&expected, "%s/15-bad.conf:2: [credential other] has no path", dd) > 0);
                assert_string_equal(e, expected);
                free(expected);
        }
        free(e);
        e = NULL;

        /* whoever may write the configuration may grant themselves credentials */
        write_file(dd, "15-bad.conf", "[broker]\nidle_exit_sec = 5\n", 0666);
        load_fails(main_path, -EPERM, "15-bad.conf: writable by others than its owner (mode 0666)");
        assert_int_equal(unlink_dropin(dd, "15-bad.conf"), 0);
        assert_int_equal(chmod(dd, 0777), 0);
        load_fails(main_path, -EPERM, "vleased.conf.d: writable by others than its owner (mode 0777)");
        assert_int_equal(chmod(dd, 0755), 0);
        assert_int_equal(chmod(main_path, 0664), 0);
        load_fails(main_path, -EPERM, "vleased.conf: writable by others than its owner (mode 0664)");
        assert_int_equal(chmod(main_path, 0644), 0);
        assert_int_equal(config_load(main_path, &c, &e), 0);
        c = config_free(c);

        /* missing main file */
        {
                char *missing = NULL;

                assert_true(asprintf(&missing, "%s/none.conf", d) > 0);
                assert_int_equal(config_load(missing, &c, &e), -ENOENT);
                assert_non_null(strstr(e, "none.conf: cannot open"));
                free(e);
                free(missing);
        }

        rm_rf(d);
        free(d);
        free(main_path);
        free(dd);
}

/* config_load_secrets() fails with -EINVAL and an error containing @needle. */
static void secrets_fail(Config *c, const char *needle) {
        char *e = NULL;

        assert_int_equal(config_load_secrets(c, NULL, &e), -EINVAL);
        assert_non_null(e);
        assert_non_null(strstr(e, needle));
        free(e);
}

static void test_secrets(void **state) {
        char *d = mkdtemp_or_die(), *creds = NULL, *text = NULL, *e = NULL;
        Config *c = NULL;

        assert_true(asprintf(&creds, "%s/creds", d) > 0);
        assert_int_equal(mkdir(creds, 0700), 0);
        write_file(d, "role_id", "file-role\n", 0600);
        write_file(d, "secret_id", "file-secret\r\n", 0600);
        write_file(d, "token", "file-token", 0644);
        write_file(d, "empty", "\n", 0600);
        write_file(creds, "secret_id", "cred-secret\n", 0400);

        assert_true(asprintf(&text, VAULT "role_id_file = %s/role_id\nsecret_id_file = %s/secret_id\n", d, d) > 0);
        assert_int_equal(config_parse_string(text, "t.conf", &c, &e), 0);

        /* files only */
        assert_int_equal(config_load_secrets(c, NULL, &e), 0);
        assert_string_equal(secret_get(c->vault.role_id), "file-role");
        assert_string_equal(secret_get(c->vault.secret_id), "file-secret");
        assert_null(c->vault.token);

        /* the credentials directory wins where it has a file */
        assert_int_equal(config_load_secrets(c, creds, &e), 0);
        assert_string_equal(secret_get(c->vault.role_id), "file-role");
        assert_string_equal(secret_get(c->vault.secret_id), "cred-secret");
        c = config_free(c);
        free(text);

        /* world-readable token file refused */
        assert_true(asprintf(&text, VAULT "auth = token\ntoken_file = %s/token\n", d) > 0);
        assert_int_equal(config_parse_string(text, "t.conf", &c, &e), 0);
        secrets_fail(c, "readable or writable by others than its owner (mode 0644)");
        /* group-readable too */
        write_file(d, "token", "file-token", 0640);
        secrets_fail(c, "(mode 0640)");
        /* and owned by someone else (as root only: nobody else can give a file away) */
        if (geteuid() == 0) {
                char *p = NULL;

                write_file(d, "token", "file-token", 0600);
                assert_true(asprintf(&p, "%s/token", d) > 0);
                assert_int_equal(chown(p, 65534, 65534), 0);
                secrets_fail(c, "owned by uid 65534");
                free(p);
        }
        /* ... but the credentials directory's token is used */
        write_file(creds, "token", "cred-token\n", 0400);
        assert_int_equal(config_load_secrets(c, creds, &e), 0);
        assert_string_equal(secret_get(c->vault.token), "cred-token");
        c = config_free(c);
        free(text);

        /* empty file, missing file, nothing configured */
        assert_true(asprintf(&text, VAULT "role_id_file = %s/empty\nsecret_id_file = %s/none\n", d, d) > 0);
        assert_int_equal(config_parse_string(text, "t.conf", &c, &e), 0);
        secrets_fail(c, "empty: empty");
        c = config_free(c);
        free(text);

        assert_true(asprintf(&text, VAULT "role_id_file = %s/role_id\nsecret_id_file = %s/none\n", d, d) > 0);
        assert_int_equal(config_parse_string(text, "t.conf", &c, &e), 0);
        assert_int_equal(config_load_secrets(c, NULL, &e), -ENOENT);
        assert_non_null(strstr(e, "none: cannot open"));
        free(e);
        c = config_free(c);
        free(text);

        c = parse_ok(VAULT);
        assert_int_equal(config_load_secrets(c, NULL, &e), -EINVAL);
        assert_string_equal(e, "no role_id: set [vault] role_id_file or pass the credential 'role_id'");
        free(e);
        c = config_free(c);

        rm_rf(d);
        free(d);
        free(creds);
}

/* config_load() on @path fails with @expected and exactly the error "@path: @what". */
static void load_fails_exactly(const char *path, int expected, const char *what) {
        Config *c = NULL;
        char *e = NULL, *want = NULL;

        assert_int_equal(config_load(path, &c, &e), expected);
        assert_null(c);
        assert_true(asprintf(&want, "%s: %s", path, what) > 0);
        assert_non_null(e);
        assert_string_equal(e, want);
        free(want);
        free(e);
}

static void test_not_regular(void **state) {
        char *d = mkdtemp_or_die(), *p = NULL, *dd = NULL, *sub = NULL, *text = NULL;
        Config *c = NULL;

        /* a directory, a device, a FIFO without a writer (open() would block without O_NONBLOCK) */
        load_fails_exactly(d, -EISDIR, "is a directory, not a regular file");
        load_fails_exactly("/dev/zero", -EBADFD, "not a regular file");
        assert_true(asprintf(&p, "%s/fifo", d) > 0);
        assert_int_equal(mkfifo(p, 0600), 0);
        load_fails_exactly(p, -EBADFD, "not a regular file");

        /* drop-ins: refused, not skipped */
        write_file(d, "vleased.conf", VAULT, 0644);
        free(p);
        assert_true(asprintf(&p, "%s/vleased.conf", d) > 0);
        assert_true(asprintf(&dd, "%s/vleased.conf.d", d) > 0);
        assert_int_equal(mkdir(dd, 0755), 0);
        assert_true(asprintf(&sub, "%s/10-dir.conf", dd) > 0);
        assert_int_equal(mkdir(sub, 0755), 0);
        load_fails(p, -EISDIR, "10-dir.conf: is a directory, not a regular file");
        assert_int_equal(rmdir(sub), 0);
        assert_int_equal(mkfifo(sub, 0600), 0);
        load_fails(p, -EBADFD, "10-dir.conf: not a regular file");
        assert_int_equal(unlink(sub), 0);
        assert_int_equal(config_load(p, &c, NULL), 0);
        c = config_free(c);
        /* ... except a symlink to /dev/null: a masked drop-in, skipped */
        assert_int_equal(symlink("/dev/null", sub), 0);
        assert_int_equal(config_load(p, &c, NULL), 0);
        c = config_free(c);

        /* a login secret that is a FIFO */
        assert_true(asprintf(&text, VAULT "role_id_file = %s/fifo\nsecret_id_file = %s/fifo\n", d, d) > 0);
        c = parse_ok(text);
        secrets_fail(c, "fifo: not a regular file");
        c = config_free(c);

        rm_rf(d);
        free(d);
        free(p);
        free(dd);
        free(sub);
        free(text);
}

static void test_names(void **state) {
        assert_true(credential_name_is_valid("db-reader"));
        assert_true(credential_name_is_valid("A.b_c-9"));
        assert_false(credential_name_is_valid(""));
        assert_false(credential_name_is_valid("."));
        assert_false(credential_name_is_valid(".."));
        assert_false(credential_name_is_valid("a b"));
        assert_false(credential_name_is_valid("a/b"));
        assert_false(credential_name_is_valid("ü"));
        assert_false(credential_name_is_valid(NULL));
        assert_string_equal(vault_auth_to_string(VAULT_AUTH_TOKEN), "token");
        assert_int_equal(vault_auth_from_string("approle"), VAULT_AUTH_APPROLE);
        assert_int_equal(vault_auth_from_string("x"), _VAULT_AUTH_INVALID);
        assert_string_equal(credential_identity_to_string(CREDENTIAL_IDENTITY_USER), "user");
        assert_int_equal(credential_identity_from_string("broker"), CREDENTIAL_IDENTITY_BROKER);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_defaults),
                cmocka_unit_test(test_all_keys),
                cmocka_unit_test(test_merge),
                cmocka_unit_test(test_errors),
                cmocka_unit_test(test_duplicate_keys),
                cmocka_unit_test(test_long_line_limit),
                cmocka_unit_test(test_dropins),
                cmocka_unit_test(test_not_regular),
                cmocka_unit_test(test_secrets),
                cmocka_unit_test(test_names),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
