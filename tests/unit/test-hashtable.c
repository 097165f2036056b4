/* SPDX-License-Identifier: LGPL-2.1-or-later */
#undef NDEBUG

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "common/hashtable.h"

typedef struct Item {
        HashEntry e;
        unsigned owner;
        char name[16];
} Item;

static uint64_t key(unsigned owner, const char *name) {
        return hash_string(hash_u64(HASH_INIT, owner), name);
}

static Item *find(HashTable *t, unsigned owner, const char *name) {
        uint64_t h = key(owner, name);

        HASHTABLE_FOREACH_HASH(e, t, h) {
                Item *i = (Item *) e;

                if (i->owner == owner && strcmp(i->name, name) == 0)
                        return i;
        }
        return NULL;
}

static void test_hash(void **state) {
        /* the NUL is hashed: ("a","bc") and ("ab","c") differ */
        assert_int_not_equal(hash_string(hash_string(HASH_INIT, "a"), "bc"),
                             hash_string(hash_string(HASH_INIT, "ab"), "c"));
        assert_int_equal(hash_bytes(HASH_INIT, "abc", 3), hash_bytes(hash_bytes(HASH_INIT, "a", 1), "bc", 2));
        assert_int_not_equal(hash_u64(HASH_INIT, 1), hash_u64(HASH_INIT, 256));
        assert_int_equal(hash_bytes(HASH_INIT, "", 0), HASH_INIT);
}

static void test_empty(void **state) {
        HashTable t = {};

        assert_null(hashtable_bucket(&t, 42));
        assert_null(find(&t, 1, "x"));
        hashtable_remove(&t, &(HashEntry) {});   /* not in it: left alone */
        hashtable_done(&t);
}

static void test_many(void **state) {
        enum { N = 10000 };
        static Item items[N];
        HashTable t = {};

        for (unsigned i = 0; i < N; i++) {
                items[i].owner = i % 100;
                snprintf(items[i].name, sizeof(items[i].name), "bench%u", i / 100);
                assert_int_equal(hashtable_add(&t, &items[i].e, key(items[i].owner, items[i].name)), 0);
        }
        assert_int_equal(t.n_entries, N);
        assert_true(t.n_buckets >= N / 2);      /* it grew */

        for (unsigned i = 0; i < N; i++)
                assert_ptr_equal(find(&t, items[i].owner, items[i].name), &items[i]);
        assert_null(find(&t, 100, "bench0"));
        assert_null(find(&t, 0, "bench100"));

        /* remove every other one: the rest are still found, the removed ones not */
        for (unsigned i = 0; i < N; i += 2)
                hashtable_remove(&t, &items[i].e);
        assert_int_equal(t.n_entries, N / 2);
        for (unsigned i = 0; i < N; i++)
                assert_ptr_equal(find(&t, items[i].owner, items[i].name), i % 2 ? &items[i] : NULL);

        /* removing twice is harmless */
        hashtable_remove(&t, &items[0].e);
        assert_int_equal(t.n_entries, N / 2);
        hashtable_done(&t);
        assert_int_equal(t.n_buckets, 0);
}

static void test_duplicates(void **state) {
        Item a = { .owner = 7, .name = "db" }, b = { .owner = 7, .name = "db" };
        HashTable t = {};
        unsigned n = 0;
        uint64_t h = key(7, "db");

        assert_int_equal(hashtable_add(&t, &a.e, h), 0);
        assert_int_equal(hashtable_add(&t, &b.e, h), 0);
        HASHTABLE_FOREACH_HASH(e, &t, h)
                n++;
        assert_int_equal(n, 2);
        hashtable_remove(&t, &b.e);
        assert_ptr_equal(find(&t, 7, "db"), &a);
        hashtable_remove(&t, &a.e);
        assert_null(find(&t, 7, "db"));
        hashtable_done(&t);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_hash),
                cmocka_unit_test(test_empty),
                cmocka_unit_test(test_many),
                cmocka_unit_test(test_duplicates),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
