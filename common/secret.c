/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The secret arena. Vault tokens and secret values must not reach swap or core dumps, so they live in
 * memory that is mlock()ed and marked MADV_DONTDUMP. Locking a page per secret would exhaust the default
 * RLIMIT_MEMLOCK (8 MiB on Debian 12) long before 10,000 leases, so secrets share 64 KiB chunks, cut into
 * power-of-two blocks (32 bytes to 8 KiB) with a free list per size; larger secrets get a mapping of
 * their own. Every block is wiped when freed and chunks are never returned, so the arena only grows to
 * the high-water mark. mlock() is best effort: when the limit is hit we still keep secrets out of core
 * dumps, and secret_arena_stats() tells how much is locked.
 *
 * A mutex makes the arena safe in the PAM module, whose host process may have threads.
 */

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include "common/memory-util.h"
#include "common/secret.h"

#define CHUNK_SIZE ((size_t) 64U * 1024U)
#define CLASS_MIN_SHIFT 5U      /* 32 bytes */
#define CLASS_MAX_SHIFT 13U     /* 8 KiB */
#define N_CLASSES (CLASS_MAX_SHIFT - CLASS_MIN_SHIFT + 1U)

struct Secret {
        size_t size;            /* bytes of data, the trailing NUL not counted */
        size_t block;           /* bytes of the whole block, this header included */
        bool own_locked;        /* large secrets only: their own mapping is mlock()ed */
        char data[];
};

typedef struct FreeBlock {
        struct FreeBlock *next;
} FreeBlock;

static struct {
        pthread_mutex_t lock;
        FreeBlock *free_list[N_CLASSES];
        char *chunk;            /* current chunk being carved */
        size_t chunk_used;
        size_t mapped;
        size_t locked;
        size_t n_live;
} arena = {
        .lock = PTHREAD_MUTEX_INITIALIZER,
};

static int map_locked(size_t size, void **ret, bool *ret_locked) {
        void *p;

        p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
                return negative_errno();

        (void) madvise(p, size, MADV_DONTDUMP);
        *ret_locked = mlock(p, size) >= 0;
        *ret = p;
        return 0;
}

static unsigned class_of(size_t block_size) {
        unsigned c = 0;

        while (((size_t) 1 << (CLASS_MIN_SHIFT + c)) < block_size)
                c++;
        return c;
}

static Secret *block_alloc(size_t need) {
        unsigned c;
        size_t block;
        FreeBlock *f;
        bool locked;
        void *p;

        if (need > ((size_t) 1 << CLASS_MAX_SHIFT)) {
                /* Large secret: a mapping of its own, rounded up to pages. */
                size_t page = (size_t) sysconf(_SC_PAGESIZE);

                block = (need + page - 1) / page * page;
                if (block < need || map_locked(block, &p, &locked) < 0)
                        return NULL;
                arena.mapped += block;
                if (locked)
                        arena.locked += block;
                ((Secret *) p)->block = block;
                ((Secret *) p)->own_locked = locked;
                return p;
        }

        c = class_of(need);
        block = (size_t) 1 << (CLASS_MIN_SHIFT + c);

        f = arena.free_list[c];
        if (f) {
                arena.free_list[c] = f->next;
                f->next = NULL;
                ((Secret *) (void *) f)->block = block;
                return (Secret *) (void *) f;
        }

        if (!arena.chunk || CHUNK_SIZE - arena.chunk_used < block) {
                /* The tail of the old chunk stays unused; at most 8 KiB per 64 KiB. */
                if (map_locked(CHUNK_SIZE, &p, &locked) < 0)
                        return NULL;
                arena.mapped += CHUNK_SIZE;
                if (locked)
                        arena.locked += CHUNK_SIZE;
                arena.chunk = p;
                arena.chunk_used = 0;
        }

        p = arena.chunk + arena.chunk_used;
        arena.chunk_used += block;
        ((Secret *) p)->block = block;
        return p;
}

/**
 * secret_new() - copy bytes into a new secret in the locked arena
 * @data: the bytes, may contain NULs; may be NULL when @len is 0
 * @len: their number
 * @ret: the new secret, free with secret_free()
 *
 * The copy is always followed by a NUL, so text secrets can be used as C strings.
 *
 * Return: 0, -ENOMEM or -E2BIG
 */
int secret_new(const void *data, size_t len, Secret **ret) {
        Secret *s;

        if (len > SIZE_MAX / 2)
                return -E2BIG;

        pthread_mutex_lock(&arena.lock);
        s = block_alloc(sizeof(Secret) + len + 1);
        if (s)
                arena.n_live++;
        pthread_mutex_unlock(&arena.lock);
        if (!s)
                return -ENOMEM;

        s->size = len;
        if (len > 0)
                memcpy(s->data, data, len);
        s->data[len] = 0;
        *ret = s;
        return 0;
}

/**
 * secret_new_string() - secret_new() for a C string, its NUL not counted
 */
int secret_new_string(const char *s, Secret **ret) {
        return secret_new(s, strlen(s), ret);
}

/**
 * secret_dup() - a second copy of a secret
 */
int secret_dup(const Secret *s, Secret **ret) {
        return secret_new(s->data, s->size, ret);
}

/**
 * secret_get() - the secret's bytes, followed by a NUL
 * @s: the secret
 *
 * Return: a pointer valid until secret_free(); never log or print it
 */
const char *secret_get(const Secret *s) {
        return s->data;
}

/**
 * secret_size() - length of the secret's bytes, the trailing NUL not counted
 */
size_t secret_size(const Secret *s) {
        return s->size;
}

/**
 * secret_free() - wipe a secret and give its block back to the arena
 * @s: the secret or NULL
 *
 * Return: NULL
 */
Secret *secret_free(Secret *s) {
        size_t block;
        bool own_locked;

        if (!s)
                return NULL;

        block = s->block;
        own_locked = s->own_locked;
        explicit_bzero_safe(s, block);

        pthread_mutex_lock(&arena.lock);
        arena.n_live--;
        if (block > ((size_t) 1 << CLASS_MAX_SHIFT)) {
                (void) munmap(s, block);
                arena.mapped -= block;
                if (own_locked)
                        arena.locked -= block;
        } else {
                unsigned c = class_of(block);
                FreeBlock *f = (FreeBlock *) (void *) s;

                f->next = arena.free_list[c];
                arena.free_list[c] = f;
        }
        pthread_mutex_unlock(&arena.lock);

        return NULL;
}

/**
 * secret_arena_stats() - how much memory the arena maps and locks, and how many secrets are live
 * @ret: the numbers
 */
void secret_arena_stats(SecretArenaStats *ret) {
        pthread_mutex_lock(&arena.lock);
        *ret = (SecretArenaStats) {
                .mapped = arena.mapped,
                .locked = arena.locked,
                .n_live = arena.n_live,
        };
        pthread_mutex_unlock(&arena.lock);
}
