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
