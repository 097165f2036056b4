/* SPDX-License-Identifier: LGPL-2.1-or-later */
#undef NDEBUG

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "broker/unit-util.h"

static int parse(const char *addr, size_t len, char **unit, char **id) {
        *unit = *id = NULL;
        return credential_peer_address_parse(addr, len, unit, id);
}

#define ADDR(s) s, sizeof(s) - 1

static void test_address_ok(void **state) {
        char *unit, *id;

        assert_int_equal(parse(ADDR("\0e9b83a5beca93072/unit/credtest.service/foo"), &unit, &id), 0);
        assert_string_equal(unit, "credtest.service");
        assert_string_equal(id, "foo");
        free(unit), free(id);

        /* hex of any length from 1 to 16 digits, not zero-padded */
        assert_int_equal(parse(ADDR("\0" "1bbbd054def8577/unit/run-u0.service/bar"), &unit, &id), 0);
        assert_string_equal(unit, "run-u0.service");
        free(unit), free(id);
        assert_int_equal(parse(ADDR("\0" "a/unit/app@x-1.service/db.reader_2"), &unit, &id), 0);
        assert_string_equal(unit, "app@x-1.service");
        assert_string_equal(id, "db.reader_2");
        free(unit), free(id);
}

static void test_address_bad(void **state) {
        char *unit, *id;
        static const struct {
                const char *a;
                size_t len;
        } bad[] = {
                { ADDR("") },
                { ADDR("\0") },
                { ADDR("/run/x.sock") },                                /* path address */
                { ADDR("\0/unit/app.service/db") },                     /* no hex */
                { ADDR("\0" "12345678901234567/unit/app.service/db") }, /* 17 hex digits */
                { ADDR("\0" "ABC/unit/app.service/db") },               /* upper case */
                { ADDR("\0" "abc/units/app.service/db") },
                { ADDR("\0" "abc/unit/app.service/") },                 /* empty id */
                { ADDR("\0" "abc/unit//db") },                          /* empty unit */
                { ADDR("\0" "abc/unit/app.service") },                  /* no id */
                { ADDR("\0" "abc/unit/app/db") },                       /* no unit suffix */
                { ADDR("\0" "abc/unit/app@.service/db") },              /* a template */
                { ADDR("\0" "abc/unit/a/b.service/db") },               /* '/' in the unit */
                { ADDR("\0" "abc/unit/app.service/d\0b") },             /* NUL inside */
                { ADDR("\0" "abc/unit/app.service/d b") },              /* invalid id */
                { ADDR("\0" "abcxunit/app.service/db") },
                { ADDR("\0" "abc/unit/app.service/db/") },
        };

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                if (parse(bad[i].a, bad[i].len, &unit, &id) != -EBADMSG)
                        fail_msg("address %zu was accepted", i);
                assert_null(unit);
                assert_null(id);
        }
        /* truncated: the length rules, not a NUL */
        assert_int_equal(parse("\0" "abc/unit/app.service/db", 10, &unit, &id), -EBADMSG);
}

static void test_unit_name(void **state) {
        assert_true(unit_name_is_valid("app.service"));
        assert_true(unit_name_is_valid("app@1.service"));
        assert_true(unit_name_is_valid("system-getty.slice"));
        assert_true(unit_name_is_valid("session-3.scope"));
        assert_false(unit_name_is_valid(".service"));
        assert_false(unit_name_is_valid("app@.service"));
        assert_false(unit_name_is_valid("@a.service"));
        assert_false(unit_name_is_valid("a@b@c.service"));
        assert_false(unit_name_is_valid("app.conf"));
        assert_false(unit_name_is_valid("app service.service"));
        assert_false(unit_name_is_valid(""));
        assert_false(unit_name_is_valid(NULL));
}

static void test_cgroup(void **state) {
        char *unit = NULL, *cg = NULL;

        assert_int_equal(cgroup_unit_from_proc("0::/system.slice/app.service\n", &unit, &cg), 0);
        assert_string_equal(unit, "app.service");
        assert_string_equal(cg, "/system.slice/app.service");
        free(unit), free(cg);

        /* hybrid host: v1 lines first; nested slices; a delegated subtree below the unit */
        assert_int_equal(cgroup_unit_from_proc("12:pids:/\n1:name=systemd:/x\n"
                                               "0::/system.slice/system-app.slice/app@7.service/sub/x\n",
                                               &unit, &cg), 0);
        assert_string_equal(unit, "app@7.service");
        assert_string_equal(cg, "/system.slice/system-app.slice/app@7.service");
        free(unit), free(cg);

        /* a user's service is its user manager's unit for the system */
        assert_int_equal(cgroup_unit_from_proc("0::/user.slice/user-1000.slice/user@1000.service/app.slice/x.service",
                                               &unit, NULL), 0);
        assert_string_equal(unit, "user@1000.service");
        free(unit);

        assert_int_equal(cgroup_unit_from_proc("0::/\n", &unit, &cg), -ENXIO);
        assert_int_equal(cgroup_unit_from_proc("0::/system.slice\n", &unit, &cg), -ENXIO);
        assert_int_equal(cgroup_unit_from_proc("0::/ci-test/app.service\n", &unit, &cg), -ENXIO);
        assert_int_equal(cgroup_unit_from_proc("1:name=systemd:/system.slice/app.service\n", &unit, &cg), -EBADMSG);
        assert_int_equal(cgroup_unit_from_proc("", &unit, &cg), -EBADMSG);
}

static void test_events(void **state) {
        assert_int_equal(cgroup_events_populated("populated 1\nfrozen 0\n"), 1);
        assert_int_equal(cgroup_events_populated("populated 0\nfrozen 0\n"), 0);
        assert_int_equal(cgroup_events_populated("frozen 0\npopulated 0"), 0);
        assert_int_equal(cgroup_events_populated("populated 2\n"), -EBADMSG);
        assert_int_equal(cgroup_events_populated("frozen 0\n"), -EBADMSG);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_address_ok),
                cmocka_unit_test(test_address_bad),
                cmocka_unit_test(test_unit_name),
                cmocka_unit_test(test_cgroup),
                cmocka_unit_test(test_events),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
