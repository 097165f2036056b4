/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Credential formats: "postgresql://{{username}}:{{password}}@db/app". The rendering holds secrets, so
 * the output buffer is grown by hand and every old copy is wiped; the caller frees the result with
 * erase_and_free().
 */

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "broker/format.h"
#include "common/macro.h"
#include "common/memory-util.h"

#define FORMAT_FIELD_MAX 256

typedef struct Buffer {
        char *data;
        size_t size;
        size_t allocated;
} Buffer;

static int buffer_append(Buffer *b, const char *p, size_t n) {
        if (!b)
                return 0;
        if (b->size + n + 1 > b->allocated) {
                size_t a = MAX(b->allocated * 2, b->size + n + 1);
                char *d;

                a = MAX(a, (size_t) 64);
                d = malloc(a);
                if (!d)
                        return -ENOMEM;
                if (b->data) {
                        memcpy(d, b->data, b->size);
                        explicit_bzero_safe(b->data, b->allocated);
                        free(b->data);
                }
                b->data = d;
                b->allocated = a;
        }
        memcpy(b->data + b->size, p, n);
        b->size += n;
        b->data[b->size] = 0;
        return 0;
}

static bool field_char(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                c == '_' || c == '.' || c == '-';
}

static int set_error(char **ret_error, const char *what, size_t pos) {
        if (ret_error) {
                char *e = NULL;

                if (asprintf(&e, "%s at offset %zu", what, pos) < 0)
                        return -ENOMEM;
                *ret_error = e;
        }
        return -EINVAL;
}

static int append_value(Buffer *out, json_object *v) {
        const char *s;
        size_t n;

        if (json_object_is_type(v, json_type_string)) {
                s = json_object_get_string(v);
                n = strlen(s);  /* an embedded NUL ends the value */
        } else {
                s = json_object_to_json_string_length(v, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &n);
                if (!s)
                        return -ENOMEM;
        }
        return buffer_append(out, s, n);
}

/* Walks the template; renders into @out when @data is given, else only validates. */
static int walk(const char *t, json_object *data, Buffer *out, char **ret_error, char **ret_bad_field) {
        const char *p = t;
        int r;

        while (*p) {
                if (p[0] == '\\') {
                        char c;

                        switch (p[1]) {
                        case 'n':
                                c = '\n';
                                break;
                        case 't':
                                c = '\t';
                                break;
                        case '\\':
                        case '{':
                        case '}':
                                c = p[1];
                                break;
                        default:
                                return set_error(ret_error, "invalid escape", (size_t) (p - t));
                        }
                        r = buffer_append(out, &c, 1);
                        if (r < 0)
                                return r;
                        p += 2;
                        continue;
                }

                if (p[0] == '{' && p[1] == '{') {
                        const char *start = p, *b, *e;
                        char name[FORMAT_FIELD_MAX + 1];
                        json_object *v = NULL;

                        p += 2;
                        while (*p == ' ')
                                p++;
                        b = p;
                        while (field_char(*p))
                                p++;
                        e = p;
                        while (*p == ' ')
                                p++;
                        if (p[0] != '}' || p[1] != '}') {
                                if (!*p)
                                        return set_error(ret_error, "unterminated placeholder",
                                                         (size_t) (start - t));
                                return set_error(ret_error, "invalid placeholder",
                                                 (size_t) (start - t));
                        }
                        if (e == b)
                                return set_error(ret_error, "empty placeholder", (size_t) (start - t));
                        if ((size_t) (e - b) > FORMAT_FIELD_MAX)
                                return set_error(ret_error, "field name too long",
                                                 (size_t) (start - t));
                        p += 2;

                        if (!data)
                                continue;

                        memcpy(name, b, (size_t) (e - b));
                        name[e - b] = 0;

                        if (!json_object_object_get_ex(data, name, &v) || !v) {
                                if (ret_bad_field) {
                                        *ret_bad_field = strdup(name);
                                        if (!*ret_bad_field)
                                                return -ENOMEM;
                                }
                                return -ENOKEY;
                        }
                        r = append_value(out, v);
                        if (r < 0)
                                return r;
                        continue;
                }

                /* A run of plain text */
                {
                        size_t n = 1;

                        while (p[n] && p[n] != '\\' && !(p[n] == '{' && p[n + 1] == '{'))
                                n++;
                        r = buffer_append(out, p, n);
                        if (r < 0)
                                return r;
                        p += n;
                }
        }

        return 0;
}

/**
 * format_validate() - check a template's syntax (at config load)
 * @template: the template
 * @ret_error: a description of the first problem, free() it; may be NULL
 *
 * Return: 0, -EINVAL (with @ret_error set) or -ENOMEM
 */
int format_validate(const char *template, char **ret_error) {
        return walk(template, NULL, NULL, ret_error, NULL);
}

/**
 * format_render() - fill a template's {{field}} placeholders from a secret's data
 * @template: the template
 * @data: JSON object with the fields; strings are copied as is, other values as JSON text
 * @ret: the rendering; it holds secrets: free it with erase_and_free()
 * @ret_bad_field: on -ENOKEY the missing field's name (answer FormatError with it), free() it; may be NULL
 *
 * A field that is absent or null is missing.
 *
 * Return: 0, -ENOKEY, -EINVAL for a bad template or data that is not an object, or -ENOMEM
 */
int format_render(const char *template, json_object *data, char **ret, char **ret_bad_field) {
        Buffer b = {};
        int r;

        if (!data || !json_object_is_type(data, json_type_object))
                return -EINVAL;

        r = walk(template, data, &b, NULL, ret_bad_field);
        if (r >= 0 && !b.data)
                r = buffer_append(&b, "", 0);
        if (r < 0) {
                erase_and_free(b.data);
                return r;
        }

        *ret = b.data;
        return 0;
}
