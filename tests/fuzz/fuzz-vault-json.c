/* SPDX-License-Identifier: LGPL-2.1-or-later */
#undef NDEBUG

/*
 * Fuzzes Vault reply classification: every input is parsed as the body of a reply with a range of
 * statuses, content types and parse flags, and the result's invariants are checked. Seeds in
 * corpus/fuzz-vault-json/ are plain response bodies.
 */

#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "broker/vault-parse.h"
#include "common/secret.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const long statuses[] = { 200, 202, 204, 307, 400, 403, 404, 412, 429, 500, 501, 502, 503, 599, 99 };
static const char *const content_types[] = { "application/json", "text/html; charset=utf-8", NULL };
static const VaultParseFlags flag_sets[] = { 0, VAULT_PARSE_KV2, VAULT_PARSE_HEALTH };

static void check(const VaultReply *r, long status, VaultParseFlags flags) {
        char buf[VAULT_LEASE_LOG_MAX];

        assert(r->result >= 0 && r->result < _VAULT_RESULT_MAX);
        assert(r->status == status);
        assert(r->transient == vault_result_is_transient(r->result, r->status));
        assert(r->lease_duration >= 0);
        assert(r->auth.lease_duration >= 0);

        if (r->result != VAULT_OK && r->result != VAULT_NO_CONTENT)
                assert(r->error && *r->error);
        if (r->result != VAULT_OK && !(flags & VAULT_PARSE_HEALTH)) {
                assert(!r->data);
                assert(!r->auth.client_token);
        }
        if (r->error)
                for (const char *p = r->error; *p; p++)
                        assert(*p != '\n' && *p != '\r');
        if (r->auth.client_token)
                assert(secret_size(r->auth.client_token) > 0);

        (void) vault_lease_id_for_log(r->lease_id, buf, sizeof(buf));
        assert(strlen(buf) < sizeof(buf));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        for (size_t s = 0; s < sizeof(statuses) / sizeof(statuses[0]); s++)
                for (size_t f = 0; f < sizeof(flag_sets) / sizeof(flag_sets[0]); f++) {
                        const char *ct = content_types[(s + f) % 3];
                        VaultReply r;

                        if (vault_reply_parse(statuses[s], ct, data, size, s % 2 ? "5" : NULL, flag_sets[f], &r) < 0)
                                continue;
                        check(&r, statuses[s], flag_sets[f]);
                        vault_reply_done(&r);
                }

        return 0;
}
