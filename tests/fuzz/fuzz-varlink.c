/* SPDX-License-Identifier: LGPL-2.1-or-later */
#undef NDEBUG

/*
 * Fuzzes the varlink framing and decoders the broker runs on every byte from local users: the input is
 * fed to a small reader in uneven pieces, every message that comes out is parsed as a call and as a
 * reply, and the parameter helpers run over whatever parameters were found.
 */

#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <json-c/json.h>

#include "common/varlink.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void exercise_params(json_object *params) {
        static const char * const allowed[] = { "name", "user", "wait_usec", NULL };
        const char *s, *bad = NULL;
        json_object *o;
        int64_t i;
        bool b;
        int r;

        assert(params && json_object_is_type(params, json_type_object));

        r = varlink_check_unknown(params, allowed, &bad);
        assert(r == 0 || (r == -EINVAL && bad));

        json_object_object_foreach(params, k, v) {
                (void) v;
                r = varlink_param_string(params, k, false, &s);
                assert(r <= 1);
                if (r == 1)
                        assert(s && strlen(s) == (size_t) json_object_get_string_len(json_object_object_get(params, k)));
                r = varlink_param_int64(params, k, true, &i);
                if (r == 1)
                        assert(i != INT64_MIN && i != INT64_MAX);
                (void) varlink_param_bool(params, k, false, &b);
                (void) varlink_param_object(params, k, false, &o);
                (void) varlink_param_array(params, k, false, &o);
        }
        assert(varlink_param_string(params, "name", false, &s) >= 0 || true);
}

static void exercise_message(const char *m, size_t l) {
        VarlinkCall c = {};
        VarlinkReply rep = {};
        char *out = NULL;
        size_t ol;

        assert(m[l] == 0);

        if (varlink_parse_call(m, l, &c) == 0) {
                assert(c.method && varlink_method_name_is_valid(c.method));
                assert(c.parameters);
                assert((int) c.oneway + (int) c.more + (int) c.upgrade <= 1);
                exercise_params(c.parameters);

                /* What we build from it must parse back. */
                if (varlink_reply(c.parameters, &out, &ol) == 0) {
                        assert(out[ol - 1] == 0 && strlen(out) == ol - 1);
                        assert(varlink_parse_reply(out, ol - 1, &rep) == 0);
                        assert(!rep.error);
                        varlink_reply_done(&rep);
                        free(out);
                }
                varlink_call_done(&c);
        }

        if (varlink_parse_reply(m, l, &rep) == 0) {
                assert(rep.parameters);
                assert(!(rep.error && rep.continues));
                exercise_params(rep.parameters);
                varlink_reply_done(&rep);
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        VarlinkReader r;
        size_t off = 0, step = 1;

        /* Whole input as one message (the NUL-free prefix) */
        {
                size_t l = strnlen((const char *) data, size);
                char *copy = malloc(l + 1);

                if (!copy)
                        return 0;
                memcpy(copy, data, l);
                copy[l] = 0;
                exercise_message(copy, l);
                free(copy);
        }

        /* Through the framing, with a small cap and uneven pieces */
        varlink_reader_init(&r, 4096);
        while (off < size) {
                size_t n = size - off < step ? size - off : step;
                ssize_t k = varlink_reader_feed(&r, data + off, n);
                const char *m;
                size_t l;
                int q;

                assert(k >= 0);
                off += (size_t) k;
                step = step * 3 + 1;
                if (step > 1000)
                        step = 1;

                for (;;) {
                        q = varlink_reader_next(&r, &m, &l);
                        if (q <= 0)
                                break;
                        assert(l < 4096);
                        exercise_message(m, l);
                }
                if (q == -E2BIG)
                        break;
                assert(q == 0);
                assert(varlink_reader_pending(&r) <= 4096);
        }
        varlink_reader_done(&r);
        return 0;
}
