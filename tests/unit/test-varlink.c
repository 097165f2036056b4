/* SPDX-License-Identifier: LGPL-2.1-or-later */
#undef NDEBUG

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "common/memory-util.h"
#include "common/varlink.h"

/* Feeds all of @data, draining nothing. */
static void feed_all(VarlinkReader *r, const char *data, size_t len) {
        while (len > 0) {
                ssize_t n = varlink_reader_feed(r, data, len);

                assert_true(n > 0);
                data += n;
                len -= (size_t) n;
        }
}

static void test_reader_split(void **state) {
        static const char msg[] = "{\"method\":\"io.vlease.Broker.List\"}";
        VarlinkReader r;
        const char *m;
        size_t l;

        varlink_reader_init(&r, 0);
        /* Byte by byte: no message until the NUL. */
        for (size_t i = 0; i < sizeof(msg) - 1; i++) {
                feed_all(&r, msg + i, 1);
                assert_int_equal(varlink_reader_next(&r, &m, &l), 0);
        }
        feed_all(&r, "", 1);
        assert_int_equal(varlink_reader_next(&r, &m, &l), 1);
        assert_int_equal(l, sizeof(msg) - 1);
        assert_memory_equal(m, msg, l);
        assert_int_equal(m[l], 0);
        assert_int_equal(varlink_reader_next(&r, &m, &l), 0);
        assert_int_equal(varlink_reader_pending(&r), 0);
        varlink_reader_done(&r);
}

static void test_reader_pipelined(void **state) {
        static const char data[] = "{\"a\":1}\0{\"b\":2}\0{\"c\":";
        VarlinkReader r;
        const char *m;
        size_t l;

        varlink_reader_init(&r, 0);
        feed_all(&r, data, sizeof(data) - 1);
        assert_int_equal(varlink_reader_next(&r, &m, &l), 1);
        assert_string_equal(m, "{\"a\":1}");
        assert_int_equal(varlink_reader_next(&r, &m, &l), 1);
        assert_string_equal(m, "{\"b\":2}");
        assert_int_equal(varlink_reader_next(&r, &m, &l), 0);
        assert_int_equal(varlink_reader_pending(&r), 5);
        feed_all(&r, "3}\0", 3);
        assert_int_equal(varlink_reader_next(&r, &m, &l), 1);
        assert_string_equal(m, "{\"c\":3}");
        /* Empty message: a lone NUL is handed out with length 0 (and is malformed). */
        feed_all(&r, "\0", 1);
        assert_int_equal(varlink_reader_next(&r, &m, &l), 1);
        assert_int_equal(l, 0);
        varlink_reader_done(&r);
}

static void test_reader_oversize(void **state) {
        VarlinkReader r;
        char big[200];
        const char *m;
        size_t l;
        ssize_t n;

        memset(big, 'x', sizeof(big));
        varlink_reader_init(&r, 100);

        /* 99 bytes + NUL fit exactly */
        n = varlink_reader_feed(&r, big, 99);
        assert_int_equal(n, 99);
        assert_int_equal(varlink_reader_next(&r, &m, &l), 0);
        assert_int_equal(varlink_reader_feed(&r, "", 1), 1);
        assert_int_equal(varlink_reader_next(&r, &m, &l), 1);
        assert_int_equal(l, 99);

        /* 100 bytes without a NUL: full, refused */
        n = varlink_reader_feed(&r, big, sizeof(big));
        assert_int_equal(n, 100);
        assert_int_equal(varlink_reader_next(&r, &m, &l), -E2BIG);
        assert_int_equal(varlink_reader_feed(&r, big, 1), 0);
        assert_int_equal(varlink_reader_next(&r, &m, &l), -E2BIG);
        varlink_reader_done(&r);

        /* Pipelined messages beyond the cap are taken in steps. */
        varlink_reader_init(&r, 16);
        n = varlink_reader_feed(&r, "{\"a\":1}\0{\"b\":2}\0{\"c\":3}\0", 24);
        assert_int_equal(n, 16);
        assert_int_equal(varlink_reader_next(&r, &m, &l), 1);
        assert_int_equal(varlink_reader_next(&r, &m, &l), 1);
        assert_int_equal(varlink_reader_next(&r, &m, &l), 0);
        n = varlink_reader_feed(&r, "{\"c\":3}\0", 8);
        assert_int_equal(n, 8);
        assert_int_equal(varlink_reader_next(&r, &m, &l), 1);
        assert_string_equal(m, "{\"c\":3}");
        varlink_reader_done(&r);
}

static void test_reader_fd(void **state) {
        static const char data[] = "{\"method\":\"a.b.C\"}\0{\"method\":\"a.b.D\"}";
        VarlinkReader r;
        const char *m;
        size_t l;
        int p[2];

        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, p), 0);
        assert_int_equal(write(p[1], data, sizeof(data) - 1), (ssize_t) sizeof(data) - 1);
        varlink_reader_init(&r, 0);
        assert_int_equal(varlink_reader_read(&r, p[0]), (ssize_t) sizeof(data) - 1);
        assert_int_equal(varlink_reader_next(&r, &m, &l), 1);
        assert_string_equal(m, "{\"method\":\"a.b.C\"}");
        assert_int_equal(varlink_reader_next(&r, &m, &l), 0);
        close(p[1]);
        assert_int_equal(varlink_reader_read(&r, p[0]), 0);
        assert_int_equal(varlink_reader_pending(&r), 18);
        varlink_reader_done(&r);
        close(p[0]);

        /* A full buffer refuses to read more. */
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, p), 0);
        varlink_reader_init(&r, 8);
        assert_int_equal(write(p[1], "0123456789", 10), 10);
        assert_int_equal(varlink_reader_read(&r, p[0]), 8);
        assert_int_equal(varlink_reader_read(&r, p[0]), -ENOBUFS);
        assert_int_equal(varlink_reader_next(&r, &m, &l), -E2BIG);
        varlink_reader_done(&r);
        close(p[0]);
        close(p[1]);
}

static int parse(const char *s, VarlinkCall *c) {
        return varlink_parse_call(s, strlen(s), c);
}

static void test_parse_call_valid(void **state) {
        VarlinkCall c = {};
        const char *s;

        assert_int_equal(parse("{\"method\":\"io.vlease.Broker.Get\",\"parameters\":{\"name\":\"db\"}}", &c), 0);
        assert_string_equal(c.method, "io.vlease.Broker.Get");
        assert_int_equal(varlink_param_string(c.parameters, "name", true, &s), 1);
        assert_string_equal(s, "db");
        assert_false(c.oneway || c.more || c.upgrade);
        varlink_call_done(&c);

        /* absent and null parameters become {} */
        assert_int_equal(parse("{\"method\":\"io.vlease.Broker.List\"}", &c), 0);
        assert_non_null(c.parameters);
        assert_int_equal(json_object_object_length(c.parameters), 0);
        varlink_call_done(&c);
        assert_int_equal(parse(" { \"parameters\" : null , \"method\" : \"a.b.C\" } ", &c), 0);
        assert_non_null(c.parameters);
        varlink_call_done(&c);

        /* flags */
        assert_int_equal(parse("{\"method\":\"a.b.C\",\"oneway\":true,\"more\":false}", &c), 0);
        assert_true(c.oneway);
        assert_false(c.more);
        varlink_call_done(&c);
        assert_int_equal(parse("{\"method\":\"a.b.C\",\"more\":true}", &c), 0);
        assert_true(c.more);
        varlink_call_done(&c);
        assert_int_equal(parse("{\"method\":\"a.b.C\",\"upgrade\":true}", &c), 0);
        assert_true(c.upgrade);
        varlink_call_done(&c);

        /* vendor extension keys are ignored */
        assert_int_equal(parse("{\"method\":\"a.b.C\",\"org.example\":{\"x\":1}}", &c), 0);
        varlink_call_done(&c);

        /* uppercase interface labels and digits are fine */
        assert_int_equal(parse("{\"method\":\"Org.Example2.Do\"}", &c), 0);
        varlink_call_done(&c);

        /* duplicate keys: last wins (json-c) */
        assert_int_equal(parse("{\"method\":\"a.b.C\",\"parameters\":{\"n\":\"x\",\"n\":\"y\"}}", &c), 0);
        assert_int_equal(varlink_param_string(c.parameters, "n", true, &s), 1);
        assert_string_equal(s, "y");
        varlink_call_done(&c);

        /* a proper surrogate pair is fine */
        assert_int_equal(parse("{\"method\":\"a.b.C\",\"parameters\":{\"n\":\"\\ud83d\\ude00\"}}", &c), 0);
        varlink_call_done(&c);

        /* UTF-8 and escaped "\\u0000" (a backslash, then u0000) are fine */
        assert_int_equal(parse("{\"method\":\"a.b.C\",\"parameters\":{\"n\":\"gr\xc3\xbc\xc3\x9f \\\\u0000\"}}", &c), 0);
        varlink_call_done(&c);
}

static void test_parse_call_malformed(void **state) {
        static const char * const bad[] = {
                "",
                " ",
                "null",
                "[]",
                "\"x\"",
                "42",
                "{",
                "{}",
                "{\"method\":null}",
                "{\"method\":42}",
                "{\"method\":\"\"}",
                "{\"method\":\"Get\"}",
                "{\"method\":\"io.Get\"}",          /* interface needs two labels */
                "{\"method\":\"io.vlease.get\"}",   /* member must start uppercase */
                "{\"method\":\"io..x.Get\"}",
                "{\"method\":\"io.-x.Get\"}",
                "{\"method\":\"io.x-.Get\"}",
                "{\"method\":\"1o.x.Get\"}",
                "{\"method\":\"io.x.Get_It\"}",
                "{\"method\":\"a.b.C\"} ",         /* trailing whitespace is fine in JSON, see below */
                "{\"method\":\"a.b.C\"}{}",
                "{\"method\":\"a.b.C\"}x",
                "{\"method\":\"a.b.C\",}",
                "{'method':'a.b.C'}",
                "{\"method\":\"a.b.C\" /* c */}",
                "{\"method\":\"a.b.C\",\"parameters\":[]}",
                "{\"method\":\"a.b.C\",\"parameters\":\"x\"}",
                "{\"method\":\"a.b.C\",\"parameters\":1}",
                "{\"method\":\"a.b.C\",\"oneway\":1}",
                "{\"method\":\"a.b.C\",\"oneway\":\"true\"}",
                "{\"method\":\"a.b.C\",\"more\":[]}",            /* null is fine: ?bool */
                "{\"method\":\"a.b.C\",\"oneway\":true,\"more\":true}",
                "{\"method\":\"a.b.C\",\"more\":true,\"upgrade\":true}",
                "{\"method\":\"a.b.C\",\"bogus\":1}",
                "{\"method\":\"a.b.C\",\"Parameters\":{}}",
                "{\"method\":\"a.b.C\",\"parameters\":{\"n\":\"a\\u0000b\"}}",
                "{\"method\":\"a.b.C\",\"parameters\":{\"a\\u0000x\":1}}",
                "{\"method\":\"a.b.C\\u0000\"}",
                "{\"method\":\"a.b.C\",\"parameters\":{\"n\":NaN}}",
                "{\"method\":\"a.b.C\",\"parameters\":{\"n\":Infinity}}",
                "{\"method\":\"a.b.C\",\"parameters\":{\"n\":-Infinity}}",
                "{\"method\":\"a.b.C\",\"parameters\":{\"n\":\"\xff\"}}",
                "{\"method\":\"a.b.C\",\"parameters\":{\"n\":\"\xc3\"}}",
                "{\"method\":\"a.b.C\",\"parameters\":{\"n\":\"\xed\xa0\x80\"}}",
                "{\"method\":\"a.b.C\",\"parameters\":{\"n\":\"\xf4\x90\x80\x80\"}}",
                "{\"method\":\"a.b.C\",\"parameters\":{\"n\":\"\xc0\xaf\"}}",
                "{\"method\":\"a.b.C\",\"parameters\":{\"n\":\"\x01\"}}",
                "{\"method\":\"a.b.C\",\"parameters\":{\"n\":\"a\nb\"}}",
                "{\"method\":\"a.b.C\",\"parameters\":{\"n\":\"\x7f\"}}",
                "{\"method\":\"a.b.C\",\"parameters\":{\"n\":\"\\ud800\"}}",
                "{\"method\":\"a.b.C\",\"parameters\":{\"\\udc00\":1}}",
                "{\"method\":\"a.b.C\",\"parameters\":{\"n\":tru}}",
                "{\"method\":\"a.b.C\",\"parameters\":{\"n\":01}}",
                "{\"method\":\"a.b.C\",\"parameters\":{\"n\":\"x\"",
        };
        VarlinkCall c = {};

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                int r = parse(bad[i], &c);

                if (i == 19) {
                        /* whitespace after the object is legal JSON whitespace */
                        assert_int_equal(r, 0);
                        varlink_call_done(&c);
                        continue;
                }
                if (r != -EBADMSG)
                        fail_msg("case %zu accepted (r=%d): %s", i, r, bad[i]);
        }

        /* an embedded NUL inside the given length */
        assert_int_equal(varlink_parse_call("{\"method\":\"a.b.C\"}\0", 19, &c), -EBADMSG);

        /* nesting deeper than json-c's limit */
        {
                char deep[1024];
                size_t n = 0;

                n += (size_t) sprintf(deep, "{\"method\":\"a.b.C\",\"parameters\":{\"x\":");
                for (int i = 0; i < 100; i++)
                        deep[n++] = '[';
                for (int i = 0; i < 100; i++)
                        deep[n++] = ']';
                deep[n++] = '}';
                deep[n++] = '}';
                assert_int_equal(varlink_parse_call(deep, n, &c), -EBADMSG);
        }
}

static void test_params(void **state) {
        static const char * const allowed[] = { "s", "i", "b", "o", "a", "n", NULL };
        VarlinkCall c = {};
        const char *s, *bad = NULL;
        json_object *o;
        int64_t i;
        bool b;

        assert_int_equal(parse("{\"method\":\"a.b.C\",\"parameters\":{\"s\":\"x\",\"i\":-5,\"b\":true,"
                               "\"o\":{},\"a\":[],\"n\":null}}", &c), 0);
        assert_int_equal(varlink_check_unknown(c.parameters, allowed, &bad), 0);

        assert_int_equal(varlink_param_string(c.parameters, "s", true, &s), 1);
        assert_string_equal(s, "x");
        assert_int_equal(varlink_param_string(c.parameters, "i", true, &s), -EINVAL);
        assert_int_equal(varlink_param_string(c.parameters, "n", true, &s), -EINVAL);
        assert_int_equal(varlink_param_string(c.parameters, "n", false, &s), 0);
        assert_null(s);
        assert_int_equal(varlink_param_string(c.parameters, "missing", false, &s), 0);
        assert_int_equal(varlink_param_string(c.parameters, "missing", true, &s), -EINVAL);

        assert_int_equal(varlink_param_int64(c.parameters, "i", true, &i), 1);
        assert_int_equal(i, -5);
        assert_int_equal(varlink_param_int64(c.parameters, "s", true, &i), -EINVAL);
        assert_int_equal(varlink_param_int64(c.parameters, "b", true, &i), -EINVAL);
        assert_int_equal(varlink_param_int64(c.parameters, "n", false, &i), 0);

        assert_int_equal(varlink_param_bool(c.parameters, "b", true, &b), 1);
        assert_true(b);
        assert_int_equal(varlink_param_bool(c.parameters, "i", true, &b), -EINVAL);

        assert_int_equal(varlink_param_object(c.parameters, "o", true, &o), 1);
        assert_int_equal(varlink_param_object(c.parameters, "a", true, &o), -EINVAL);
        assert_int_equal(varlink_param_array(c.parameters, "a", true, &o), 1);
        assert_int_equal(varlink_param_array(c.parameters, "o", true, &o), -EINVAL);

        assert_int_equal(varlink_check_unknown(c.parameters, (const char * const[]) { "s", NULL }, &bad), -EINVAL);
        assert_non_null(bad);
        assert_int_equal(varlink_check_unknown(c.parameters, NULL, &bad), -EINVAL);
        varlink_call_done(&c);

        /* ints: strings, doubles and saturated values are refused */
        assert_int_equal(parse("{\"method\":\"a.b.C\",\"parameters\":{\"q\":\"123\",\"d\":1.5,\"e\":1e3,"
                               "\"big\":99999999999999999999999,\"neg\":-99999999999999999999999,"
                               "\"max\":9223372036854775807,\"u\":18446744073709551615,"
                               "\"ok\":9223372036854775806,\"okn\":-9223372036854775807}}", &c), 0);
        assert_int_equal(varlink_param_int64(c.parameters, "q", true, &i), -EINVAL);
        assert_int_equal(varlink_param_int64(c.parameters, "d", true, &i), -EINVAL);
        assert_int_equal(varlink_param_int64(c.parameters, "e", true, &i), -EINVAL);
        assert_int_equal(varlink_param_int64(c.parameters, "big", true, &i), -EINVAL);
        assert_int_equal(varlink_param_int64(c.parameters, "neg", true, &i), -EINVAL);
        assert_int_equal(varlink_param_int64(c.parameters, "max", true, &i), -EINVAL);
        assert_int_equal(varlink_param_int64(c.parameters, "u", true, &i), -EINVAL);
        assert_int_equal(varlink_param_int64(c.parameters, "ok", true, &i), 1);
        assert_true(i == INT64_MAX - 1);
        assert_int_equal(varlink_param_int64(c.parameters, "okn", true, &i), 1);
        assert_true(i == INT64_MIN + 1);
        varlink_call_done(&c);

        /* non-object params */
        assert_int_equal(varlink_param_string(NULL, "s", false, &s), -EINVAL);
}

static void test_build(void **state) {
        _cleanup_free_ char *m = NULL;
        json_object *p;
        VarlinkReply rep = {};
        VarlinkCall c = {};
        const char *s;
        size_t l;

        p = json_object_new_object();
        json_object_object_add(p, "url", json_object_new_string("http://x/y"));
        assert_int_equal(varlink_reply(p, &m, &l), 0);
        assert_string_equal(m, "{\"parameters\":{\"url\":\"http://x/y\"}}");
        assert_int_equal(l, strlen(m) + 1);
        assert_int_equal(varlink_parse_reply(m, l - 1, &rep), 0);
        assert_null(rep.error);
        assert_false(rep.continues);
        assert_int_equal(varlink_param_string(rep.parameters, "url", true, &s), 1);
        assert_string_equal(s, "http://x/y");
        varlink_reply_done(&rep);
        free(TAKE_PTR(m));

        /* empty parameters are omitted */
        assert_int_equal(varlink_reply(NULL, &m, &l), 0);
        assert_string_equal(m, "{}");
        free(TAKE_PTR(m));

        assert_int_equal(varlink_error("io.vlease.Broker.NoSuchCredential", p, &m, &l), 0);
        assert_int_equal(varlink_parse_reply(m, l - 1, &rep), 0);
        assert_string_equal(rep.error, "io.vlease.Broker.NoSuchCredential");
        varlink_reply_done(&rep);
        free(TAKE_PTR(m));
        assert_int_equal(varlink_error("NoSuchCredential", p, &m, &l), -EINVAL);

        assert_int_equal(varlink_error_invalid_parameter("name", &m, &l), 0);
        assert_string_equal(m, "{\"error\":\"org.varlink.service.InvalidParameter\",\"parameters\":{\"parameter\":\"name\"}}");
        free(TAKE_PTR(m));

        assert_int_equal(varlink_build_call("io.vlease.Broker.Release", p, true, &m, &l), 0);
        assert_int_equal(varlink_parse_call(m, l - 1, &c), 0);
        assert_string_equal(c.method, "io.vlease.Broker.Release");
        assert_true(c.oneway);
        varlink_call_done(&c);
        free(TAKE_PTR(m));
        assert_int_equal(varlink_build_call("bad", p, false, &m, &l), -EINVAL);

        /* non-object params refused */
        assert_int_equal(varlink_reply(json_object_get(json_object_object_get(p, "url")), &m, &l), -EINVAL);
        json_object_put(json_object_object_get(p, "url"));
        json_object_put(p);
}

/* The fast match agrees with the full parser on what it accepts, and refuses anything unusual. */
static void test_match_name_call(void **state) {
        static const char *const no[] = {
                "{\"method\":\"io.vlease.Broker.Get\",\"parameters\":{\"name\":\"\"}}",
                "{\"method\":\"io.vlease.Broker.Get\",\"parameters\":{\"name\":\"d\\u0062\"}}",
                "{\"method\":\"io.vlease.Broker.Get\",\"parameters\":{\"name\":\"a b\"}}",
                "{\"method\":\"io.vlease.Broker.Get\",\"parameters\":{\"name\":\"db\"},\"oneway\":true}",
                "{\"method\":\"io.vlease.Broker.Get\",\"parameters\":{\"name\":\"db\",\"x\":1}}",
                "{\"method\":\"io.vlease.Broker.Get\",\"parameters\":{\"name\":\"db\"}} ",
                "{\"method\": \"io.vlease.Broker.Get\",\"parameters\":{\"name\":\"db\"}}",
                "{\"parameters\":{\"name\":\"db\"},\"method\":\"io.vlease.Broker.Get\"}",
                "{\"method\":\"io.vlease.Broker.GetX\",\"parameters\":{\"name\":\"db\"}}",
                "{\"method\":\"io.vlease.Broker.Release\",\"parameters\":{\"name\":\"db\"}}",
                "{\"method\":\"io.vlease.Broker.Get\",\"parameters\":{\"name\":\"db\"}",
                "{\"method\":\"io.vlease.Broker.Get\"}",
                "",
        };
        static const char ok[] = "{\"method\":\"io.vlease.Broker.Get\",\"parameters\":{\"name\":\"bench-4_2.x\"}}";
        static const char nul[] = "{\"method\":\"io.vlease.Broker.Get\",\"parameters\":{\"name\":\"d\0b\"}}";
        char name[16], small[4];
        json_object *params;
        VarlinkCall call = {};
        const char *s;
        char *msg;
        size_t len;

        assert_true(varlink_match_name_call(ok, strlen(ok), "io.vlease.Broker.Get", name, sizeof(name)));
        assert_string_equal(name, "bench-4_2.x");
        assert_int_equal(varlink_parse_call(ok, strlen(ok), &call), 0);
        assert_string_equal(call.method, "io.vlease.Broker.Get");
        assert_true(varlink_param_string(call.parameters, "name", true, &s) >= 0);
        assert_string_equal(s, name);
        varlink_call_done(&call);

        /* what varlink_build_call() writes is what it matches */
        params = json_object_new_object();
        json_object_object_add(params, "name", json_object_new_string("db"));
        assert_int_equal(varlink_build_call("io.vlease.Broker.Get", params, false, &msg, &len), 0);
        assert_true(varlink_match_name_call(msg, len - 1, "io.vlease.Broker.Get", name, sizeof(name)));
        assert_string_equal(name, "db");
        free(msg);
        json_object_put(params);

        for (size_t i = 0; i < ELEMENTSOF(no); i++)
                assert_false(varlink_match_name_call(no[i], strlen(no[i]), "io.vlease.Broker.Get", name, sizeof(name)));
        assert_false(varlink_match_name_call(nul, sizeof(nul) - 1, "io.vlease.Broker.Get", name, sizeof(name)));
        /* too long for the buffer: not matched (the full path then answers) */
        assert_false(varlink_match_name_call(ok, strlen(ok), "io.vlease.Broker.Get", small, sizeof(small)));
}

static void test_parse_reply_malformed(void **state) {
        static const char * const bad[] = {
                "",
                "[]",
                "{\"error\":1}",
                "{\"error\":\"Nope\"}",
                "{\"error\":\"a.b.C\",\"continues\":true}",
                "{\"continues\":1}",
                "{\"parameters\":[]}",
                "{\"bogus\":true}",
                "{\"parameters\":{}}x",
                "{\"parameters\":{\"p\":\"\\u0000\"}}",
        };
        VarlinkReply r = {};

        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                if (varlink_parse_reply(bad[i], strlen(bad[i]), &r) != -EBADMSG)
                        fail_msg("reply case %zu accepted: %s", i, bad[i]);

        assert_int_equal(varlink_parse_reply("{\"parameters\":{},\"continues\":true}", 34, &r), 0);
        assert_true(r.continues);
        varlink_reply_done(&r);
        assert_int_equal(varlink_parse_reply("{}", 2, &r), 0);
        assert_non_null(r.parameters);
        varlink_reply_done(&r);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_reader_split),
                cmocka_unit_test(test_reader_pipelined),
                cmocka_unit_test(test_reader_oversize),
                cmocka_unit_test(test_reader_fd),
                cmocka_unit_test(test_parse_call_valid),
                cmocka_unit_test(test_parse_call_malformed),
                cmocka_unit_test(test_params),
                cmocka_unit_test(test_build),
                cmocka_unit_test(test_match_name_call),
                cmocka_unit_test(test_parse_reply_malformed),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
