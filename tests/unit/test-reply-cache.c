/* SPDX-License-Identifier: LGPL-2.1-or-later */
#undef NDEBUG

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "broker/reply-cache.h"
#include "common/secret.h"

static const char MSG[] = "{\"parameters\":{\"credential\":{\"name\":\"db\"}}}";

static const ReplyKey KEY = {
        .issued = 1000 * USEC_PER_SEC,
        .end = 1900 * USEC_PER_SEC,
        .cutoff = 1810 * USEC_PER_SEC,
        .leased = true,
        .renewable = true,
};

static void test_empty(void **state) {
        ReplyCache c = {};
        const char *m = NULL;
        size_t n = 0;

        assert_false(reply_cache_get(&c, &KEY, 0, &m, &n));
        reply_cache_clear(&c);
        assert_null(c.msg);
}

static void test_hit(void **state) {
        ReplyCache c = {};
        const char *m = NULL;
        size_t n = 0;

        assert_int_equal(reply_cache_put(&c, &KEY, 5 * USEC_PER_SEC, MSG, sizeof(MSG)), 0);
        assert_true(reply_cache_get(&c, &KEY, 5 * USEC_PER_SEC, &m, &n));
        assert_int_equal(n, sizeof(MSG));
        assert_memory_equal(m, MSG, sizeof(MSG));
        /* a copy, in the arena, not the caller's buffer */
        assert_ptr_not_equal(m, MSG);
        reply_cache_clear(&c);
        assert_false(reply_cache_get(&c, &KEY, 5 * USEC_PER_SEC, &m, &n));
}

/* Every field of the key that the answer shows invalidates it when it changes: renew, cap, replace. */
static void test_key_changes(void **state) {
        ReplyCache c = {};
        const char *m;
        size_t n;
        ReplyKey k;

        assert_int_equal(reply_cache_put(&c, &KEY, 0, MSG, sizeof(MSG)), 0);

        k = KEY, k.end += USEC_PER_SEC;                 /* renewed */
        assert_false(reply_cache_get(&c, &k, 0, &m, &n));
        k = KEY, k.cutoff -= 1;                          /* hand-out cutoff moved */
        assert_false(reply_cache_get(&c, &k, 0, &m, &n));
        k = KEY, k.renewable = false;                    /* capped at max TTL */
        assert_false(reply_cache_get(&c, &k, 0, &m, &n));
        k = KEY, k.issued += 1;                          /* replaced */
        assert_false(reply_cache_get(&c, &k, 0, &m, &n));
        k = KEY, k.leased = false;
        assert_false(reply_cache_get(&c, &k, 0, &m, &n));
        assert_true(reply_cache_get(&c, &KEY, 0, &m, &n));

        /* rebuilt for the new key: the old one no longer hits */
        k = KEY, k.end += USEC_PER_SEC;
        assert_int_equal(reply_cache_put(&c, &k, 0, "x", 2), 0);
        assert_true(reply_cache_get(&c, &k, 0, &m, &n));
        assert_string_equal(m, "x");
        assert_false(reply_cache_get(&c, &KEY, 0, &m, &n));
        reply_cache_clear(&c);
}

/* The wall-clock times in the answer follow a clock step or a suspend, not a few µs of jitter. */
static void test_clock_offset(void **state) {
        usec_t base = 1700000000 * USEC_PER_SEC;
        ReplyCache c = {};
        const char *m;
        size_t n;

        assert_int_equal(reply_cache_put(&c, &KEY, base, MSG, sizeof(MSG)), 0);
        assert_true(reply_cache_get(&c, &KEY, base + 3, &m, &n));
        assert_true(reply_cache_get(&c, &KEY, base - 3, &m, &n));
        assert_true(reply_cache_get(&c, &KEY, base + REPLY_CACHE_CLOCK_SLACK_USEC, &m, &n));
        assert_false(reply_cache_get(&c, &KEY, base + REPLY_CACHE_CLOCK_SLACK_USEC + 1, &m, &n));
        assert_false(reply_cache_get(&c, &KEY, base - REPLY_CACHE_CLOCK_SLACK_USEC - 1, &m, &n));
        assert_false(reply_cache_get(&c, &KEY, base - 3600 * USEC_PER_SEC, &m, &n));
        reply_cache_clear(&c);
}

static void test_no_leak(void **state) {
        SecretArenaStats before, after;
        ReplyCache c = {};

        secret_arena_stats(&before);
        for (unsigned i = 0; i < 100; i++)
                assert_int_equal(reply_cache_put(&c, &KEY, i, MSG, sizeof(MSG)), 0);
        reply_cache_clear(&c);
        secret_arena_stats(&after);
        assert_int_equal(after.n_live, before.n_live);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_empty),
                cmocka_unit_test(test_hit),
                cmocka_unit_test(test_key_changes),
                cmocka_unit_test(test_clock_offset),
                cmocka_unit_test(test_no_leak),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
