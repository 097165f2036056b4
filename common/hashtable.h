/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * HashTable: an intrusive, chained hash table. The caller embeds a HashEntry in its object, computes
 * the hash of its key, and compares keys itself while walking a bucket: the table only knows hashes,
 * so one object type can be found by keys of any shape, and equal keys may be held more than once.
 * Buckets double when the table holds more entries than buckets. libc only; never logs.
 */

#include <stddef.h>
#include <stdint.h>

typedef struct HashEntry {
        struct HashEntry *next;
        uint64_t hash;
} HashEntry;

typedef struct HashTable {
        HashEntry **buckets;
        size_t n_buckets;               /* 0 or a power of two */
        size_t n_entries;
} HashTable;

#define HASH_INIT UINT64_C(0xcbf29ce484222325)

uint64_t hash_bytes(uint64_t h, const void *data, size_t len);
uint64_t hash_string(uint64_t h, const char *s);
uint64_t hash_u64(uint64_t h, uint64_t v);

int hashtable_add(HashTable *t, HashEntry *e, uint64_t hash);
void hashtable_remove(HashTable *t, HashEntry *e);
HashEntry *hashtable_bucket(const HashTable *t, uint64_t hash);
void hashtable_done(HashTable *t);

/* Walks the entries whose hash is @h (compare the keys in the body). */
#define HASHTABLE_FOREACH_HASH(e, t, h)                                         \
        for (HashEntry *e = hashtable_bucket((t), (h)); e; e = e->next)         \
                if (e->hash == (h))
