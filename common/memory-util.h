/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Memory helpers: wiping buffers that held secrets, and small NULL-terminated string vectors (strv).
 */

#include <stdbool.h>
#include <stddef.h>

#include "common/macro.h"

void explicit_bzero_safe(void *p, size_t n);

void *erase_and_free(void *p);
static inline void erase_and_freep(void *p) {
        erase_and_free(*(void **) p);
}
#define _cleanup_erase_free_ _cleanup_(erase_and_freep)

/* Strings holding secrets: wiped (strlen) and freed. */
char *erase_string_free(char *s);
static inline void erase_string_freep(char **s) {
        erase_string_free(*s);
}

char **strv_free(char **l);
DEFINE_TRIVIAL_CLEANUP_FUNC(char **, strv_free);
#define _cleanup_strv_free_ _cleanup_(strv_freep)

size_t strv_length(char * const *l);
bool strv_contains(char * const *l, const char *s);
int strv_extend(char ***l, const char *s);
int strv_consume(char ***l, char *s);
