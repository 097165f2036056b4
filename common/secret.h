/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Secret: an immutable byte string (Vault token, secret value) kept in one process-wide arena of
 * mlock()ed, MADV_DONTDUMP memory, wiped when freed. Never printed, never logged.
 */

#include <stddef.h>

#include "common/macro.h"

typedef struct Secret Secret;

int secret_new(const void *data, size_t len, Secret **ret);
int secret_new_string(const char *s, Secret **ret);
int secret_dup(const Secret *s, Secret **ret);
const char *secret_get(const Secret *s);
size_t secret_size(const Secret *s);
Secret *secret_free(Secret *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(Secret *, secret_free);
#define _cleanup_secret_free_ _cleanup_(secret_freep)

/* Statistics, for tests and Status: bytes mapped by the arena, bytes of it mlock()ed, live secrets. */
typedef struct SecretArenaStats {
        size_t mapped;
        size_t locked;
        size_t n_live;
} SecretArenaStats;

void secret_arena_stats(SecretArenaStats *ret);
