/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <malloc.h>
#include <string.h>

#include "common/memory-util.h"

/**
 * explicit_bzero_safe() - wipe memory in a way the compiler cannot drop
 * @p: memory to wipe, may be NULL when @n is 0
 * @n: number of bytes
 */
void explicit_bzero_safe(void *p, size_t n) {
        if (!p || n == 0)
                return;
        explicit_bzero(p, n);
}

/**
 * erase_and_free() - wipe a malloc()ed block in full, then free it
 * @p: block from malloc() and friends, or NULL
 *
 * The whole usable size of the block is wiped, so the caller does not need to know the length.
 *
 * Return: NULL
 */
void *erase_and_free(void *p) {
        if (!p)
                return NULL;
        explicit_bzero_safe(p, malloc_usable_size(p));
        free(p);
        return NULL;
}

/**
 * erase_string_free() - wipe and free a NUL-terminated string
 * @s: string or NULL
 *
 * Return: NULL
 */
char *erase_string_free(char *s) {
        return erase_and_free(s);
}

/**
 * strv_free() - free a NULL-terminated vector of strings and the strings in it
 * @l: vector or NULL
 *
 * Return: NULL
 */
char **strv_free(char **l) {
        if (!l)
                return NULL;
        for (char **i = l; *i; i++)
                free(*i);
        free(l);
        return NULL;
}

/**
 * strv_length() - number of strings in a vector
 * @l: vector or NULL
 */
size_t strv_length(char * const *l) {
        size_t n = 0;

        if (!l)
                return 0;
        while (l[n])
                n++;
        return n;
}

/**
 * strv_contains() - whether a vector holds a string equal to @s
 * @l: vector or NULL
 * @s: string
 */
bool strv_contains(char * const *l, const char *s) {
        if (!l || !s)
                return false;
        for (char * const *i = l; *i; i++)
                if (strcmp(*i, s) == 0)
                        return true;
        return false;
}

/**
 * strv_consume() - append a string to a vector, taking ownership of it
 * @l: vector, *l may be NULL
 * @s: string, freed on failure
 *
 * Return: 0 or -ENOMEM
 */
int strv_consume(char ***l, char *s) {
        size_t n;
        char **m;

        if (!s)
                return -ENOMEM;

        n = strv_length(*l);
        m = reallocarray(*l, n + 2, sizeof(char *));
        if (!m) {
                free(s);
                return -ENOMEM;
        }
        m[n] = s;
        m[n + 1] = NULL;
        *l = m;
        return 0;
}

/**
 * strv_extend() - append a copy of a string to a vector
 * @l: vector, *l may be NULL
 * @s: string
 *
 * Return: 0 or -ENOMEM
 */
int strv_extend(char ***l, const char *s) {
        return strv_consume(l, strdup(s));
}
