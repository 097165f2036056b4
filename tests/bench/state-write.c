/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * bench-state: what vleased's lease table costs to write, for tools/bench figure 4. Builds N leases
 * shaped like the benchmark's (owner, credential, a Vault lease ID, an accessor, times), then times,
 * median of R rounds each:
 *   - the whole table written to a file, as vleased does at a journal fold (state_table_write());
 *   - the same bytes written from memory with one fwrite(): the baseline, what the write itself costs;
 *   - one journal line (state_lease_to_line()), per lease.
 * Prints JSON.
 *
 *   bench-state [-n LEASES] [-r ROUNDS] DIR
 */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "broker/state.h"
#include "common/macro.h"
#include "bench-util.h"

static double now_ms(void) {
        return now_us() / 1e3;
}

static double median(double *v, int n) {
        sort_doubles(v, (size_t) n);
        return v[n / 2];
}

_printf_(1, 2) static char *strdupf(const char *fmt, ...) {
        va_list ap;
        char *s = NULL;
        int k;

        va_start(ap, fmt);
        k = vasprintf(&s, fmt, ap);
        va_end(ap);
        if (k < 0)
                abort();
        return s;
}

int main(int argc, char *argv[]) {
        unsigned n = 10000;
        int rounds = 5, c;
        StateTable t = {};
        char path[4096], *text = NULL;
        size_t size = 0;
        double *table_ms, *base_ms, line_ms;
        FILE *f;

        while ((c = getopt(argc, argv, "n:r:")) >= 0)
                switch (c) {
                case 'n': n = (unsigned) strtoul(optarg, NULL, 10); break;
                case 'r': rounds = atoi(optarg); break;
                default: return 2;
                }
        if (optind >= argc || rounds < 1)
                return 2;
        snprintf(path, sizeof(path), "%s/bench-state.json", argv[optind]);

        for (unsigned i = 0; i < n; i++) {
                StateLease *l;

                if (state_table_add(&t, &l) < 0)
                        abort();
                l->owner = strdupf("uid:%u", 100000 + i / 100);
                l->credential = strdupf("bench%u", i % 100);
                l->lease_id = strdupf("database/creds/reader/%08xAbCdEfGhIjKlMn%04x", i * 2654435761U, i & 0xffff);
                l->accessor = strdupf("%08xQrStUvWxYz%04x", i * 40503U, i & 0xffff);
                l->issued = 1764800000000000ULL + i;
                l->renewed = l->issued + 1000000;
                l->expires = l->renewed + 600000000;
                l->ttl = 600000000;
                l->token_expires = l->issued + 3600000000ULL;
                l->last_used = l->renewed;
                l->renewals = i % 7;
                l->renewable = true;
        }
        t.journal_seq = 42;

        table_ms = calloc((size_t) rounds, sizeof(double));
        base_ms = calloc((size_t) rounds, sizeof(double));
        if (!table_ms || !base_ms || state_table_to_json(&t, &text) < 0)
                abort();
        size = strlen(text);

        for (int r = 0; r < rounds; r++) {
                double t0;

                t0 = now_ms();
                f = fopen(path, "we");
                if (!f || state_table_write(&t, f) < 0 || fclose(f) != 0)
                        abort();
                table_ms[r] = now_ms() - t0;

                t0 = now_ms();
                f = fopen(path, "we");
                if (!f || fwrite(text, 1, size, f) != size || fclose(f) != 0)
                        abort();
                base_ms[r] = now_ms() - t0;
        }

        {
                double t0 = now_ms();

                for (unsigned i = 0; i < n; i++) {
                        char *line = NULL;

                        if (state_lease_to_line(&t.leases[i], 42, &line) < 0)
                                abort();
                        free(line);
                }
                line_ms = now_ms() - t0;
        }
        (void) unlink(path);

        printf("{\"leases\":%u,\"bytes\":%zu,\"rounds\":%d,\"table_ms\":%.3f,\"baseline_ms\":%.3f,"
               "\"line_us\":%.3f}\n", n, size, rounds, median(table_ms, rounds), median(base_ms, rounds),
               n ? line_ms * 1e3 / n : 0.0);
        free(text);
        free(table_ms);
        free(base_ms);
        state_table_done(&t);
        return 0;
}
