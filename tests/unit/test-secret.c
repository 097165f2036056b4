/* SPDX-License-Identifier: LGPL-2.1-or-later */
#undef NDEBUG

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#include <cmocka.h>

#include "common/memory-util.h"
#include "common/secret.h"

#define N_SECRETS 10000

static void test_basic(void **state) {
        _cleanup_secret_free_ Secret *s = NULL, *e = NULL, *d = NULL;
        static const char bin[] = { 'a', 0, 'b' };

        assert_int_equal(secret_new("hunter2", 7, &s), 0);
        assert_int_equal(secret_size(s), 7);
        assert_string_equal(secret_get(s), "hunter2");

        assert_int_equal(secret_new(NULL, 0, &e), 0);
        assert_int_equal(secret_size(e), 0);
        assert_string_equal(secret_get(e), "");

        secret_free(TAKE_PTR(e));
        assert_int_equal(secret_new(bin, sizeof(bin), &e), 0);
        assert_int_equal(secret_size(e), 3);
        assert_memory_equal(secret_get(e), bin, 3);
        assert_int_equal(secret_get(e)[3], 0);

        assert_int_equal(secret_dup(s, &d), 0);
        assert_ptr_not_equal(secret_get(d), secret_get(s));
        assert_string_equal(secret_get(d), "hunter2");

        assert_null(secret_free(NULL));
}

static void test_wipe_and_reuse(void **state) {
        Secret *s, *t;
        const char *p;
        SecretArenaStats before, after;

        assert_int_equal(secret_new_string("correct horse battery staple", &s), 0);
        p = secret_get(s);
        secret_arena_stats(&before);
        secret_free(s);

        /* The block stays mapped in the arena; its bytes must be gone. (Reading freed arena memory is
         * fine here: the arena never unmaps small blocks.) */
        assert_null(memmem(p, 28, "horse", 5));
        for (size_t i = 0; i < 28; i++)
                assert_int_equal(p[i], 0);

        /* Same size class: the block is reused, no new mapping. */
        assert_int_equal(secret_new_string("Tr0ub4dor&3 Tr0ub4dor&3 ....", &t), 0);
        assert_ptr_equal(secret_get(t), p);
        secret_arena_stats(&after);
        assert_int_equal(after.mapped, before.mapped);
        secret_free(t);
}

static void test_many(void **state) {
        Secret **v;
        SecretArenaStats st;
        struct rlimit rl;
        char buf[128];

        v = calloc(N_SECRETS, sizeof(Secret *));
        assert_non_null(v);

        for (size_t i = 0; i < N_SECRETS; i++) {
                int n = snprintf(buf, sizeof(buf), "secret-%05zu-%s", i,
                                 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
                assert_int_equal(secret_new(buf, (size_t) n, &v[i]), 0);
        }
        for (size_t i = 0; i < N_SECRETS; i++) {
                snprintf(buf, sizeof(buf), "secret-%05zu-", i);
                assert_memory_equal(secret_get(v[i]), buf, strlen(buf));
                assert_int_equal(secret_size(v[i]), 95);
        }

        secret_arena_stats(&st);
        assert_true(st.n_live >= N_SECRETS);
        /* ~100 bytes each: far below a page per secret, and inside Debian's default 8 MiB memlock */
        assert_true(st.mapped <= 2U * 1024U * 1024U);
        assert_int_equal(getrlimit(RLIMIT_MEMLOCK, &rl), 0);
        if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur >= 8U * 1024U * 1024U)
                assert_int_equal(st.locked, st.mapped);
        print_message("10000 secrets: %zu bytes mapped, %zu locked, memlock limit %llu\n", st.mapped, st.locked,
                      (unsigned long long) rl.rlim_cur);

        for (size_t i = 0; i < N_SECRETS; i++)
                secret_free(v[i]);
        free(v);

        secret_arena_stats(&st);
        assert_int_equal(st.n_live, 0);
}

static void test_large(void **state) {
        SecretArenaStats a, b;
        size_t n = 100000;
        char *big;
        Secret *s;

        big = malloc(n);
        assert_non_null(big);
        memset(big, 'k', n);
        secret_arena_stats(&a);
        assert_int_equal(secret_new(big, n, &s), 0);
        assert_int_equal(secret_size(s), n);
        assert_memory_equal(secret_get(s), big, n);
        secret_free(s);
        secret_arena_stats(&b);
        assert_int_equal(a.mapped, b.mapped);
        free(big);
}

static void test_erase(void **state) {
        char *p = strdup("top secret");
        char **l = NULL;

        assert_null(erase_and_free(p));
        assert_null(erase_and_free(NULL));

        assert_int_equal(strv_extend(&l, "a"), 0);
        assert_int_equal(strv_extend(&l, "b"), 0);
        assert_int_equal(strv_length(l), 2);
        assert_true(strv_contains(l, "b"));
        assert_false(strv_contains(l, "c"));
        assert_false(strv_contains(NULL, "c"));
        l = strv_free(l);
        assert_int_equal(strv_length(l), 0);

        {
                _cleanup_erase_free_ char *q = strdup("x");
                assert_non_null(q);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_basic),
                cmocka_unit_test(test_wipe_and_reuse),
                cmocka_unit_test(test_many),
                cmocka_unit_test(test_large),
                cmocka_unit_test(test_erase),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
