/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * A credential's "format": a template with {{field}} placeholders filled from the secret's data.
 * Escapes: \n \t \\ \{ \}. Everything else is copied as is.
 */

#include <stddef.h>

/* json-c's own typedef, repeated so that this header does not pull in json-c. */
typedef struct json_object json_object;

int format_validate(const char *template, char **ret_error);
int format_render(const char *template, json_object *data, char **ret, char **ret_bad_field);
