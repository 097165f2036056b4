/* SPDX-License-Identifier: LGPL-2.1-or-later */
#undef NDEBUG

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "broker/state.h"
#include "common/secret.h"

#define S(x) (x * USEC_PER_SEC)

static void test_table_roundtrip(void **state) {
        StateTable t = {}, u = {};
        StateLease *e;
        char *text = NULL;

        assert_int_equal(state_table_add(&t, &e), 0);
        e->owner = strdup("uid:1000");
        e->credential = strdup("db");
        e->lease_id = strdup("database/creds/reader/abc");
        e->accessor = strdup("acc1");
        e->issued = S(100);
        e->renewed = S(200);
        e->expires = S(300);
        e->ttl = S(100);
        e->token_expires = S(4000);
        e->last_used = S(250);
        e->renewals = 3;
        e->renewable = true;
        assert_int_equal(state_table_add(&t, &e), 0);
        e->owner = strdup("unit:app.service");
        e->credential = strdup("db");
        e->cgroup = strdup("/system.slice/app.service");
        e->retiree = true;
        e->lease_id = strdup("x");
        {
                StateSession *x;

                assert_int_equal(state_table_add_session(&t, &x), 0);
                x->id = strdup("0123abcd");
                x->user = strdup("alice");
                x->service = strdup("sshd");
                x->uid = 1000;
                x->gid = 1000;
                x->leader_pid = 4242;
                x->leader_start = 987654;
                x->opened = S(7);
        }

        assert_int_equal(state_table_to_json(&t, &text), 0);
        assert_null(strstr(text, "password"));
        assert_int_equal(state_table_from_json(text, &u), 0);
        assert_int_equal(u.n_leases, 2);
        assert_string_equal(u.leases[0].owner, "uid:1000");
        assert_string_equal(u.leases[0].lease_id, "database/creds/reader/abc");
        assert_string_equal(u.leases[0].accessor, "acc1");
        assert_null(u.leases[0].cgroup);
        assert_true(u.leases[0].expires == S(300) && u.leases[0].renewed == S(200) && u.leases[0].ttl == S(100));
        assert_true(u.leases[0].token_expires == S(4000) && u.leases[0].last_used == S(250));
        assert_int_equal(u.leases[0].renewals, 3);
        assert_true(u.leases[0].renewable && !u.leases[0].retiree);
        assert_string_equal(u.leases[1].cgroup, "/system.slice/app.service");
        assert_true(u.leases[1].retiree);
        assert_int_equal(u.n_sessions, 1);
        assert_string_equal(u.sessions[0].id, "0123abcd");
        assert_string_equal(u.sessions[0].user, "alice");
        assert_string_equal(u.sessions[0].service, "sshd");
        assert_null(u.sessions[0].tty);
        assert_true(u.sessions[0].uid == 1000 && u.sessions[0].gid == 1000 && u.sessions[0].leader_pid == 4242);
        assert_true(u.sessions[0].leader_start == 987654 && u.sessions[0].opened == S(7));
        free(text);
        state_table_done(&t);
        state_table_done(&u);

        assert_int_equal(state_table_from_json("{\"version\":2,\"leases\":[]}", &u), -EBADMSG);
        assert_int_equal(state_table_from_json("{\"version\":1,\"leases\":[{\"owner\":\"x\",\"credential\":\"c\"}]}", &u),
                         -EBADMSG);
        assert_int_equal(state_table_from_json("{\"version\":1,\"leases\":[{\"credential\":\"c\"}]}", &u), -EBADMSG);
        assert_int_equal(state_table_from_json("nope", &u), -EBADMSG);
        assert_int_equal(state_table_from_json("{\"version\":1,\"leases\":[]}", &u), 0);
        assert_int_equal(u.n_leases, 0);
        state_table_done(&u);
}

/* The table and the journal are printed by hand (not by json-c): any string survives, the text is
 * strict JSON, numbers stay in int64 range. */
static bool strict_json(const char *text, size_t len) {
        json_tokener *tok = json_tokener_new();
        json_object *o;
        bool ok;

        assert_non_null(tok);
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
        o = json_tokener_parse_ex(tok, text, (int) len);
        ok = o && json_tokener_get_error(tok) == json_tokener_success &&
                json_tokener_get_parse_end(tok) == len;
        json_object_put(o);
        json_tokener_free(tok);
        return ok;
}

static void test_hand_written_json(void **state) {
        static const char *const odd[] = {
                "quote\" backslash\\ slash/", "nl\n cr\r tab\t bs\b ff\f", "\x01\x1f\x7f", "caf\xc3\xa9 \xe2\x82\xac",
                "}],\"owner\":\"uid:0\"", "",
        };
        char long_cgroup[700];
        StateTable t = {}, u = {};
        StateLease *e;
        char *text = NULL, *line = NULL;
        size_t n = sizeof(odd) / sizeof(odd[0]);
        unsigned bad = 99;

        memset(long_cgroup, 'a', sizeof(long_cgroup) - 1);
        long_cgroup[0] = '/';
        long_cgroup[300] = '"';
        long_cgroup[sizeof(long_cgroup) - 1] = 0;
        for (size_t i = 0; i < n; i++) {
                assert_int_equal(state_table_add(&t, &e), 0);
                assert_true(asprintf(&e->owner, "uid:%zu", 1000 + i) > 0);
                e->credential = strdup(odd[i]);
                e->lease_id = strdup(odd[(i + 1) % n]);
                e->accessor = strdup(odd[(i + 2) % n]);
                e->cgroup = strdup(i == 0 ? long_cgroup : odd[(i + 3) % n]);
                e->expires = UINT64_MAX;
                e->ttl = (usec_t) INT64_MAX;
                e->renewals = i;
                e->capped = i & 1;
                e->no_data = i & 2;
        }
        {
                StateSession *x;

                assert_int_equal(state_table_add_session(&t, &x), 0);
                x->id = strdup("ab");
                x->user = strdup(odd[0]);
                x->service = strdup(odd[1]);
                x->tty = strdup(odd[2]);
                x->uid = 4294967294U;
                x->gid = 0;
                x->leader_pid = 1;
        }
        t.journal_seq = UINT64_MAX;

        assert_int_equal(state_table_to_json(&t, &text), 0);
        assert_true(strict_json(text, strlen(text)));
        assert_int_equal(state_table_from_json(text, &u), 0);
        assert_int_equal(u.journal_seq, (uint64_t) INT64_MAX);
        assert_int_equal(u.n_leases, n);
        for (size_t i = 0; i < n; i++) {
                assert_string_equal(u.leases[i].owner, t.leases[i].owner);
                assert_string_equal(u.leases[i].credential, t.leases[i].credential);
                assert_string_equal(u.leases[i].lease_id, t.leases[i].lease_id);
                assert_string_equal(u.leases[i].accessor, t.leases[i].accessor);
                assert_string_equal(u.leases[i].cgroup, t.leases[i].cgroup);
                assert_int_equal(u.leases[i].expires, (uint64_t) INT64_MAX);
                assert_int_equal(u.leases[i].ttl, (uint64_t) INT64_MAX);
                assert_int_equal(u.leases[i].renewals, i);
                assert_true(u.leases[i].capped == t.leases[i].capped && u.leases[i].no_data == t.leases[i].no_data);
                assert_false(u.leases[i].renewable || u.leases[i].retiree);
                assert_int_equal(u.leases[i].issued, 0);
        }
        assert_int_equal(u.n_sessions, 1);
        assert_string_equal(u.sessions[0].user, odd[0]);
        assert_string_equal(u.sessions[0].service, odd[1]);
        assert_string_equal(u.sessions[0].tty, odd[2]);
        assert_true(u.sessions[0].uid == 4294967294U && u.sessions[0].gid == 0 && u.sessions[0].leader_pid == 1);
        state_table_done(&u);

        /* a journal line of the lease with the long cgroup: one strict JSON line, read back whole */
        u = (StateTable) { .journal_seq = 3 };
        assert_int_equal(state_lease_to_line(&t.leases[0], 3, &line), 0);
        assert_ptr_equal(strchr(line, '\n'), line + strlen(line) - 1);
        assert_true(strict_json(line, strlen(line) - 1));
        assert_int_equal(state_journal_apply(&u, line, strlen(line), &bad), 1);
        assert_int_equal(bad, 0);
        assert_string_equal(u.leases[0].cgroup, long_cgroup);
        assert_string_equal(u.leases[0].credential, odd[0]);

        free(line);
        free(text);
        state_table_done(&t);
        state_table_done(&u);
}

/* A new lease goes to the journal; the table it extends takes it at load, later lines win, lines of an
 * earlier table and damaged lines are skipped. */
static void test_journal(void **state) {
        StateTable t = {}, u = {};
        StateLease l = {
                .owner = (char *) "uid:1000", .credential = (char *) "db", .lease_id = (char *) "db/creds/r/1",
                .accessor = (char *) "acc", .issued = S(10), .renewed = S(10), .expires = S(70), .ttl = S(60),
                .renewable = true,
        };
        char *table = NULL, *a = NULL, *b = NULL, *stale = NULL, *journal = NULL;
        unsigned bad = 99;
        StateLease *e;

        assert_int_equal(state_table_add(&t, &e), 0);
        e->owner = strdup("uid:1001");
        e->credential = strdup("db");
        e->lease_id = strdup("db/creds/r/0");
        t.journal_seq = 7;
        assert_int_equal(state_table_to_json(&t, &table), 0);
        assert_int_equal(state_table_from_json(table, &u), 0);
        assert_int_equal(u.journal_seq, 7);

        assert_int_equal(state_lease_to_line(&l, 7, &a), 0);
        assert_non_null(strchr(a, '\n'));
        assert_ptr_equal(strchr(a, '\n'), a + strlen(a) - 1);          /* one line */
        l.renewed = S(40);
        l.expires = S(100);
        assert_int_equal(state_lease_to_line(&l, 7, &b), 0);
        l.lease_id = (char *) "db/creds/r/old";
        assert_int_equal(state_lease_to_line(&l, 6, &stale), 0);
        /* the second line renews the first; a stale line, a damaged one, and a last one cut short */
        assert_true(asprintf(&journal, "%s%s%s{\"journal_seq\":7,\"owner\":5}\n%.20s", a, stale, b, a) > 0);

        assert_int_equal(state_journal_apply(&u, journal, strlen(journal), &bad), 2);
        assert_int_equal(bad, 2);
        assert_int_equal(u.n_leases, 2);
        assert_string_equal(u.leases[0].lease_id, "db/creds/r/0");
        assert_string_equal(u.leases[1].lease_id, "db/creds/r/1");
        assert_string_equal(u.leases[1].accessor, "acc");
        assert_int_equal(u.leases[1].renewed, S(40));
        assert_int_equal(u.leases[1].expires, S(100));
        assert_true(u.leases[1].renewable);

        /* the journal of a table saved since (a new number) adds nothing */
        u.journal_seq = 8;
        assert_int_equal(state_journal_apply(&u, journal, strlen(journal), &bad), 0);
        assert_int_equal(u.n_leases, 2);

        free(table);
        free(a);
        free(b);
        free(stale);
        free(journal);
        state_table_done(&t);
        state_table_done(&u);
}

static void test_secrets_roundtrip(void **state) {
        StateSecrets s = {}, u = {};
        StateSecret *x;
        Secret *blob = NULL;
        const StateSecret *f;

        s.generation = 7;
        assert_int_equal(secret_new_string("hvs.token", &s.token), 0);
        assert_int_equal(state_secrets_add(&s, &x), 0);
        x->owner = strdup("uid:1000");
        x->credential = strdup("db");
        x->lease_id = strdup("L1");
        assert_int_equal(secret_new_string("{\"username\":\"u\",\"password\":\"p\\\"q\"}", &x->data), 0);
        assert_int_equal(state_secrets_add(&s, &x), 0);
        x->owner = strdup("uid:1001");
        x->credential = strdup("kv");
        assert_int_equal(secret_new_string("{}", &x->data), 0);

        assert_int_equal(state_secrets_serialize(&s, &blob), 0);
        assert_int_equal(state_secrets_parse(secret_get(blob), secret_size(blob), &u), 0);
        assert_int_equal(u.generation, 7);
        assert_string_equal(secret_get(u.token), "hvs.token");
        f = state_secrets_find(&u, "uid:1000", "db", "L1");
        assert_non_null(f);
        assert_string_equal(secret_get(f->data), "{\"username\":\"u\",\"password\":\"p\\\"q\"}");
        assert_null(state_secrets_find(&u, "uid:1000", "db", "L2"));
        assert_null(state_secrets_find(&u, "uid:1000", "db", NULL));
        assert_non_null(state_secrets_find(&u, "uid:1001", "kv", NULL));
        secret_free(blob);
        state_secrets_done(&s);
        state_secrets_done(&u);

        assert_int_equal(state_secrets_parse("{\"secrets\":[{\"owner\":\"a\"}]}", 26, &u), -EBADMSG);
        assert_int_equal(state_secrets_parse("{\"secr", 6, &u), -EBADMSG);
}

static void test_owner(void **state) {
        char buf[STATE_OWNER_UID_MAX];

        assert_string_equal(state_owner_of_uid(1000, buf), "uid:1000");
        assert_string_equal(state_owner_of_uid(4294967294U, buf), "uid:4294967294");
        assert_int_equal(state_owner_uid("uid:1000"), 1000);
        assert_int_equal(state_owner_uid("uid:0"), 0);
        assert_int_equal(state_owner_uid(state_owner_of_uid(4294967294U, buf)), 4294967294U);
        /* a unit, or anything malformed: no uid */
        assert_int_equal(state_owner_uid("unit:app.service"), (uid_t) -1);
        assert_int_equal(state_owner_uid("uid:"), (uid_t) -1);
        assert_int_equal(state_owner_uid("uid:12x"), (uid_t) -1);
        assert_int_equal(state_owner_uid("uid:4294967295"), (uid_t) -1);
        assert_int_equal(state_owner_uid("uid:-1"), (uid_t) -1);
        assert_int_equal(state_owner_uid("1000"), (uid_t) -1);
}

static void test_verdict(void **state) {
        StateLease l = { .owner = (char *) "uid:1000", .credential = (char *) "db", .lease_id = (char *) "L",
                         .expires = S(1000), .token_expires = S(5000), .last_used = S(500) };

        assert_int_equal(state_lease_verdict(&l, S(600), S(3600), -1, false), STATE_KEEP);
        /* idle past idle_release_sec before the restart: revoked */
        assert_int_equal(state_lease_verdict(&l, S(600), S(60), -1, false), STATE_REVOKE);
        assert_int_equal(state_lease_verdict(&l, S(600), 0, -1, false), STATE_KEEP);
        /* ... unless the user has a live session */
        assert_int_equal(state_lease_verdict(&l, S(600), S(60), -1, true), STATE_KEEP);
        /* ended, or its token did */
        assert_int_equal(state_lease_verdict(&l, S(1000), S(3600), -1, false), STATE_DROP);
        /* ... unless renewable: a renewal lost with the previous process may have moved its end, by at
         * most one TTL (the restored lease asks Vault) */
        l.renewable = true;
        l.ttl = S(300);
        assert_int_equal(state_lease_verdict(&l, S(1000), S(3600), -1, false), STATE_KEEP);
        assert_int_equal(state_lease_verdict(&l, S(1299), S(60), -1, false), STATE_REVOKE);
        assert_int_equal(state_lease_verdict(&l, S(1300), S(3600), -1, false), STATE_DROP);
        l.capped = true;
        assert_int_equal(state_lease_verdict(&l, S(1000), S(3600), -1, false), STATE_DROP);
        l.capped = false;
        l.renewable = false;
        l.token_expires = S(550);
        assert_int_equal(state_lease_verdict(&l, S(600), S(3600), -1, false), STATE_DROP);
        l.token_expires = 0;
        l.retiree = true;
        assert_int_equal(state_lease_verdict(&l, S(600), S(3600), -1, false), STATE_REVOKE);
        l.retiree = false;
        /* units: kept while running (or unknown), never idle-released */
        l.owner = (char *) "unit:app.service";
        assert_int_equal(state_lease_verdict(&l, S(600), S(60), 1, false), STATE_KEEP);
        assert_int_equal(state_lease_verdict(&l, S(600), S(60), -EIO, false), STATE_KEEP);
        assert_int_equal(state_lease_verdict(&l, S(600), S(60), 0, false), STATE_REVOKE);
        /* a static secret: nothing to revoke */
        l.lease_id = NULL;
        l.expires = 0;
        assert_int_equal(state_lease_verdict(&l, S(600), S(60), 0, false), STATE_DROP);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_table_roundtrip),
                cmocka_unit_test(test_journal),
                cmocka_unit_test(test_hand_written_json),
                cmocka_unit_test(test_secrets_roundtrip),
                cmocka_unit_test(test_owner),
                cmocka_unit_test(test_verdict),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
