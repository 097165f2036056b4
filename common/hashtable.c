/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The hash table behind the lease cache's index (see hashtable.h). Keys come from the configuration
 * and from the kernel (uids, unit names), not from what a peer sends, so FNV-1a is enough: nobody can
 * pick keys to flood one bucket.
 */

#include <errno.h>
#include <stdlib.h>

#include "common/hashtable.h"

#define HASH_PRIME UINT64_C(0x100000001b3)
#define N_BUCKETS_MIN 64U

/**
 * hash_bytes() - FNV-1a over @len bytes, continuing from @h (start with HASH_INIT)
 *
 * Return: the new hash
 */
uint64_t hash_bytes(uint64_t h, const void *data, size_t len) {
        const unsigned char *p = data;

        for (size_t i = 0; i < len; i++)
                h = (h ^ p[i]) * HASH_PRIME;
        return h;
}

/**
 * hash_string() - hash_bytes() over a string and its terminating NUL (so "a","bc" != "ab","c")
 */
uint64_t hash_string(uint64_t h, const char *s) {
        for (;; s++) {
                h = (h ^ (unsigned char) *s) * HASH_PRIME;
                if (!*s)
                        return h;
        }
}

/**
 * hash_u64() - hash_bytes() over the 8 bytes of @v
 */
uint64_t hash_u64(uint64_t h, uint64_t v) {
        for (unsigned i = 0; i < 8; i++, v >>= 8)
                h = (h ^ (v & 0xff)) * HASH_PRIME;
        return h;
}

/* The bucket index: FNV's low bits are weak for short keys, so fold the high half in. */
static size_t bucket_of(uint64_t hash, size_t n_buckets) {
        return (size_t) (hash ^ (hash >> 32)) & (n_buckets - 1);
}

static int resize(HashTable *t, size_t n) {
        HashEntry **b;

        b = calloc(n, sizeof(HashEntry *));
        if (!b)
                return -ENOMEM;
        for (size_t i = 0; i < t->n_buckets; i++)
                for (HashEntry *e = t->buckets[i], *next; e; e = next) {
                        size_t k = bucket_of(e->hash, n);

                        next = e->next;
                        e->next = b[k];
                        b[k] = e;
                }
        free(t->buckets);
        t->buckets = b;
        t->n_buckets = n;
        return 0;
}

/**
 * hashtable_add() - insert @e under @hash
 * @t: the table, zero-initialised before first use
 * @e: the entry, not in any table
 * @hash: the hash of its key
 *
 * Growing the buckets is best effort once there are some: a failed resize leaves longer chains.
 *
 * Return: 0, or -ENOMEM when the first buckets cannot be allocated
 */
int hashtable_add(HashTable *t, HashEntry *e, uint64_t hash) {
        size_t k;

        if (t->n_buckets == 0) {
                if (resize(t, N_BUCKETS_MIN) < 0)
                        return -ENOMEM;
        } else if (t->n_entries >= t->n_buckets && t->n_buckets <= SIZE_MAX / 2 / sizeof(HashEntry *))
                (void) resize(t, t->n_buckets * 2);

        e->hash = hash;
        k = bucket_of(hash, t->n_buckets);
        e->next = t->buckets[k];
        t->buckets[k] = e;
        t->n_entries++;
        return 0;
}

/**
 * hashtable_remove() - take @e out of @t; an entry that is not in it is left alone
 */
void hashtable_remove(HashTable *t, HashEntry *e) {
        if (t->n_buckets == 0)
                return;
        for (HashEntry **p = &t->buckets[bucket_of(e->hash, t->n_buckets)]; *p; p = &(*p)->next)
                if (*p == e) {
                        *p = e->next;
                        e->next = NULL;
                        t->n_entries--;
                        return;
                }
}

/**
 * hashtable_bucket() - the first entry of the chain @hash falls into, NULL if empty
 *
 * Entries of other hashes share the chain: compare e->hash and the key (HASHTABLE_FOREACH_HASH).
 */
HashEntry *hashtable_bucket(const HashTable *t, uint64_t hash) {
        if (t->n_buckets == 0)
                return NULL;
        return t->buckets[bucket_of(hash, t->n_buckets)];
}

/**
 * hashtable_done() - free the buckets (not the entries: they belong to the caller)
 */
void hashtable_done(HashTable *t) {
        free(t->buckets);
        *t = (HashTable) {};
}
