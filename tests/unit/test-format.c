/* SPDX-License-Identifier: LGPL-2.1-or-later */
#undef NDEBUG

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "broker/format.h"
#include "common/memory-util.h"

static json_object *data(void) {
        json_object *o = json_tokener_parse("{\"username\":\"v-approle-reader-1\",\"password\":\"p/w\\\"q\","
                                            "\"port\":5432,\"ssl\":true,\"ratio\":0.5,\"nested\":{\"a\":[1,\"/\"]},"
                                            "\"nothing\":null,\"empty\":\"\"}");
        assert_non_null(o);
        return o;
}

static void render_ok(const char *t, const char *expected) {
        json_object *d = data();
        char *out = NULL, *bad = NULL;

        assert_int_equal(format_validate(t, NULL), 0);
        assert_int_equal(format_render(t, d, &out, &bad), 0);
        assert_null(bad);
        assert_string_equal(out, expected);
        erase_and_free(out);
        json_object_put(d);
}

static void test_render(void **state) {
        render_ok("", "");
        render_ok("plain", "plain");
        render_ok("{{username}}:{{password}}", "v-approle-reader-1:p/w\"q");
        render_ok("postgresql://{{ username }}:{{password}}@db:{{port}}/app?ssl={{ssl}}",
                  "postgresql://v-approle-reader-1:p/w\"q@db:5432/app?ssl=true");
        render_ok("{{ratio}}", "0.5");
        render_ok("{{nested}}", "{\"a\":[1,\"/\"]}");
        render_ok("[{{empty}}]", "[]");
        render_ok("PGUSER={{username}}\\nPGPORT={{port}}\\t\\\\\\{\\}", "PGUSER=v-approle-reader-1\nPGPORT=5432\t\\{}");
        render_ok("{ {x} }} {", "{ {x} }} {");
        render_ok("\\{{{username}}\\}", "{v-approle-reader-1}");
}

static void test_missing(void **state) {
        json_object *d = data();
        char *out = NULL, *bad = NULL;

        assert_int_equal(format_render("a {{username}} {{nope}}", d, &out, &bad), -ENOKEY);
        assert_null(out);
        assert_string_equal(bad, "nope");
        free(bad);
        bad = NULL;
        assert_int_equal(format_render("{{nothing}}", d, &out, &bad), -ENOKEY);
        assert_string_equal(bad, "nothing");
        free(bad);
        assert_int_equal(format_render("{{nothing}}", d, &out, NULL), -ENOKEY);

        /* not an object */
        assert_int_equal(format_render("x", NULL, &out, NULL), -EINVAL);
        json_object_put(d);
}

static void test_invalid(void **state) {
        static const char * const bad[] = {
                "{{",
                "abc {{user",
                "{{}}",
                "{{ }}",
                "{{a b}}",
                "{{a}",
                "{{a/b}}",
                "\\x",
                "trailing \\",
                "{{ünicode}}",
        };
        json_object *d = data();

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                char *e = NULL, *out = NULL;

                if (format_validate(bad[i], &e) != -EINVAL)
                        fail_msg("template %zu accepted: %s", i, bad[i]);
                assert_non_null(e);
                assert_non_null(strstr(e, "offset"));
                free(e);
                assert_int_equal(format_render(bad[i], d, &out, NULL), -EINVAL);
        }
        json_object_put(d);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_render),
                cmocka_unit_test(test_missing),
                cmocka_unit_test(test_invalid),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
