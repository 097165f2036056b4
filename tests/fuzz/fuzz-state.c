/* SPDX-License-Identifier: LGPL-2.1-or-later */
#undef NDEBUG

/*
 * Fuzzes the restart state: the lease table file and its journal (read from disk at start) and the
 * secrets handover (read from the fd store). Any input either fails cleanly or parses into entries that survive a
 * round trip unchanged.
 */

#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "broker/state.h"
#include "common/secret.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        StateTable t = {}, u = {};
        StateSecrets s = {}, v = {};
        Secret *blob = NULL;
        char *text, *out = NULL;
        int r;

        if (size > 64 * 1024)
                return 0;
        text = malloc(size + 1);
        if (!text)
                return 0;
        memcpy(text, data, size);
        text[size] = 0;

        r = state_table_from_json(text, &t);
        if (r == 0) {
                assert(state_table_to_json(&t, &out) == 0);
                assert(state_table_from_json(out, &u) == 0);
                assert(u.n_leases == t.n_leases);
                for (size_t i = 0; i < t.n_leases; i++) {
                        assert(strcmp(u.leases[i].owner, t.leases[i].owner) == 0);
                        assert(u.leases[i].expires == t.leases[i].expires);
                        (void) state_lease_verdict(&t.leases[i], 1000, 10, -1, false);
                }
                free(out);
                state_table_done(&u);
        } else
                assert(r == -EBADMSG || r == -ENOMEM);
        state_table_done(&t);

        {
                StateTable j = {};
                unsigned bad;

                /* as a journal: every line either applies or is counted as bad */
                r = state_journal_apply(&j, text, size, &bad);
                assert(r >= 0 || r == -ENOMEM);
                assert(r < 0 || j.n_leases <= (size_t) r);
                state_table_done(&j);
        }

        r = state_secrets_parse(text, size, &s);
        if (r == 0) {
                assert(state_secrets_serialize(&s, &blob) == 0);
                assert(state_secrets_parse(secret_get(blob), secret_size(blob), &v) == 0);
                assert(v.n_secrets == s.n_secrets && v.generation == s.generation);
                secret_free(blob);
                state_secrets_done(&v);
        } else
                assert(r == -EBADMSG || r == -ENOMEM);
        state_secrets_done(&s);
        free(text);
        return 0;
}
