/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * json-c helpers for trees that hold secrets. json-c frees its strings without wiping them, so a
 * tree that carried a password, a token or a credential is wiped string by string before release.
 */

#include <errno.h>

#include "common/json-util.h"
#include "common/memory-util.h"

/**
 * json_object_wipe() - wipe every string in a json-c tree, keys excepted
 * @o: the tree (NULL is fine)
 */
void json_object_wipe(json_object *o) {
        if (!o)
                return;
        switch (json_object_get_type(o)) {
        case json_type_string:
                explicit_bzero_safe((char *) json_object_get_string(o), (size_t) json_object_get_string_len(o));
                break;
        case json_type_object: {
                json_object_object_foreach(o, k, v) {
                        (void) k;
                        json_object_wipe(v);
                }
                break;
        }
        case json_type_array:
                for (size_t i = 0; i < json_object_array_length(o); i++)
                        json_object_wipe(json_object_array_get_idx(o, i));
                break;
        default:
                break;
        }
}

/**
 * json_object_put_wiped() - wipe a tree, then drop the reference
 * @o: the tree (NULL is fine)
 */
void json_object_put_wiped(json_object *o) {
        json_object_wipe(o);
        json_object_put(o);
}

/**
 * json_object_add_or_put() - add @v under @key, taking ownership of @v in every case
 * @o: the object
 * @key: the key
 * @v: the value; NULL (a failed constructor) gives -ENOMEM
 *
 * Return: 0 or -ENOMEM
 */
int json_object_add_or_put(json_object *o, const char *key, json_object *v) {
        if (!v)
                return -ENOMEM;
        if (json_object_object_add(o, key, v) < 0) {
                json_object_put(v);
                return -ENOMEM;
        }
        return 0;
}

/**
 * json_quote() - @s as a JSON string, quoted and escaped
 * @out: where to write it (no NUL is added); NULL only counts
 * @s: the string (UTF-8 is copied as is)
 *
 * `"` and `\` are escaped with a backslash, other bytes below 0x20 as \u00XX. Writes into a
 * buffer the caller sized with a first call, so that a body holding a secret is built in memory it
 * can wipe (no stdio buffer, no realloc leaving copies behind).
 *
 * Return: the bytes written (or needed)
 */
size_t json_quote(char *out, const char *s) {
        static const char hex[] = "0123456789abcdef";
        size_t n = 0;

#define PUT(ch) do { if (out) out[n] = (ch); n++; } while (0)
        PUT('"');
        for (const unsigned char *p = (const unsigned char *) s; *p; p++) {
                if (*p == '"' || *p == '\\') {
                        PUT('\\');
                        PUT((char) *p);
                } else if (*p < 0x20) {
                        PUT('\\'); PUT('u'); PUT('0'); PUT('0');
                        PUT(hex[*p >> 4]);
                        PUT(hex[*p & 15]);
                } else
                        PUT((char) *p);
        }
        PUT('"');
#undef PUT
        return n;
}
