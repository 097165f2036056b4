/* SPDX-License-Identifier: LGPL-2.1-or-later */
#undef NDEBUG

/*
 * Fuzzes the LoadCredential= peer address parser and the /proc/PID/cgroup reader: any bytes are either
 * rejected or yield a valid unit name and credential id that, put back into systemd's format, give the
 * same bytes.
 */

#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/config.h"
#include "broker/unit-util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char *unit = NULL, *id = NULL, *text, *cg = NULL;
        int r;

        if (size > 4096)
                return 0;
        r = credential_peer_address_parse(data, size, &unit, &id);
        if (r == 0) {
                const char *hex_end = memchr(data + 1, '/', size - 1);
                size_t n;

                assert(unit_name_is_valid(unit));
                assert(credential_name_is_valid(id));
                assert(hex_end);
                n = (size_t) (hex_end - (const char *) data);
                assert(n + strlen("/unit/") + strlen(unit) + 1 + strlen(id) == size);
                assert(memcmp(hex_end + strlen("/unit/"), unit, strlen(unit)) == 0);
                free(unit);
                free(id);
        } else
                assert(r == -EBADMSG && !unit && !id);

        text = malloc(size + 1);
        if (!text)
                return 0;
        memcpy(text, data, size);
        text[size] = 0;
        unit = NULL;
        r = cgroup_unit_from_proc(text, &unit, &cg);
        if (r == 0) {
                assert(unit_name_is_valid(unit));
                assert(strstr(cg, unit));
                free(unit);
                free(cg);
        } else
                assert(r == -ENXIO || r == -EBADMSG);
        (void) cgroup_events_populated(text);
        free(text);
        return 0;
}
