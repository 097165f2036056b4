/* SPDX-License-Identifier: LGPL-2.1-or-later */
#undef NDEBUG

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "broker/config.h"
#include "broker/policy.h"
#include "common/memory-util.h"

/* Users and groups every Debian system has: root 0, daemon 1; groups root 0, daemon 1, adm 4. */
static Config *load(const char *text) {
        Config *c = NULL;
        char *e = NULL;

        if (config_parse_string(text, "p.conf", &c, &e) < 0)
                fail_msg("%s", e);
        return c;
}

static void test_resolve(void **state) {
        Config *c = load("[vault]\naddress = https://v\n"
                         "[credential a]\npath = p/a\nallow_users = daemon 4242 no-such-user-xyz\n"
                         "allow_groups = adm 777 no-such-group-xyz\n"
                         "[credential b]\npath = p/b\n");
        char **unknown = NULL;
        const CredentialConfig *a, *b;
        gid_t g_adm[] = { 4 }, g_other[] = { 100, 200 }, g_777[] = { 5, 777 };

        assert_int_equal(policy_resolve(c, &unknown), 0);
        assert_int_equal(strv_length(unknown), 2);
        assert_string_equal(unknown[0], "[credential a]: unknown user 'no-such-user-xyz', ignored");
        assert_string_equal(unknown[1], "[credential a]: unknown group 'no-such-group-xyz', ignored");
        strv_free(unknown);

        a = config_find_credential(c, "a");
        b = config_find_credential(c, "b");
        assert_int_equal(a->n_allow_uids, 2);
        assert_int_equal(a->allow_uids[0], 1);
        assert_int_equal(a->allow_uids[1], 4242);
        assert_int_equal(a->n_allow_gids, 2);

        /* by uid */
        assert_true(policy_allows(a, 1, NULL, 0));
        assert_true(policy_allows(a, 4242, g_other, 2));
        assert_false(policy_allows(a, 1000, g_other, 2));
        /* root is not special */
        assert_false(policy_allows(a, 0, NULL, 0));
        /* by group */
        assert_true(policy_allows(a, 1000, g_adm, 1));
        assert_true(policy_allows(a, 1000, g_777, 2));
        /* nobody may use a credential without allow lists */
        assert_false(policy_allows(b, 1, g_adm, 1));
        assert_false(policy_allows(b, 0, NULL, 0));
        assert_false(policy_allows(NULL, 0, NULL, 0));

        /* resolving again replaces, does not leak or duplicate */
        assert_int_equal(policy_resolve(c, NULL), 0);
        assert_int_equal(a->n_allow_uids, 2);
        config_free(c);
}

static void test_units(void **state) {
        Config *c = load("[vault]\naddress = https://v\n"
                         "[credential a]\npath = p/a\nallow_units = app.service worker@*.service\n"
                         "[credential b]\npath = p/b\n");
        const CredentialConfig *a = config_find_credential(c, "a"), *b = config_find_credential(c, "b");

        assert_true(policy_allows_unit(a, "app.service"));
        assert_true(policy_allows_unit(a, "worker@1.service"));
        assert_false(policy_allows_unit(a, "worker.service"));
        assert_false(policy_allows_unit(a, "app.service.d"));
        assert_false(policy_allows_unit(a, "other.service"));
        assert_false(policy_allows_unit(a, ""));
        assert_false(policy_allows_unit(a, NULL));
        assert_false(policy_allows_unit(b, "app.service"));
        /* units do not count as users */
        assert_false(policy_allows(a, 0, NULL, 0));
        config_free(c);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_resolve),
                cmocka_unit_test(test_units),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
