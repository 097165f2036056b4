/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>

#include <json-c/json.h>

void json_object_wipe(json_object *o);
void json_object_put_wiped(json_object *o);
static inline void json_object_put_wipedp(json_object **o) {
        if (*o)
                json_object_put_wiped(*o);
}
int json_object_add_or_put(json_object *o, const char *key, json_object *v);
size_t json_quote(char *out, const char *s);
