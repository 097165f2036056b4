/* SPDX-License-Identifier: LGPL-2.1-or-later */
#undef NDEBUG

/*
 * Fuzzes the configuration parser: any text either parses into a configuration whose invariants hold,
 * or fails with an error message that names the file.
 */

#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "broker/config.h"
#include "broker/policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        Config *c = NULL;
        char *text, *e = NULL;
        int r;

        if (size > 256 * 1024)
                return 0;
        text = malloc(size + 1);
        if (!text)
                return 0;
        memcpy(text, data, size);
        text[size] = 0;

        r = config_parse_string(text, "fuzz.conf", &c, &e);
        if (r < 0) {
                assert(!c);
                assert(r == -EINVAL || r == -ENOMEM);
                assert(r == -ENOMEM || (e && strncmp(e, "fuzz.conf", 9) == 0));
        } else {
                assert(c && !e);
                assert(c->vault.address);
                assert(strncmp(c->vault.address, "http", 4) == 0);
                assert(c->vault.timeout_usec > 0);
                assert(c->broker.max_message_size >= 1024);
                for (size_t i = 0; i < c->n_credentials; i++) {
                        const CredentialConfig *cc = &c->credentials[i];

                        assert(credential_name_is_valid(cc->name));
                        assert(cc->path && cc->path[0] && cc->path[0] != '/');
                        assert(config_find_credential(c, cc->name) == cc);
                        assert(!policy_allows(cc, (uid_t) -1, NULL, 0));
                }
        }

        config_free(c);
        free(e);
        free(text);
        return 0;
}
