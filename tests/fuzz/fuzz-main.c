/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Replays files through a fuzz target when it is not built with libFuzzer (-Dfuzzing=false), so that
 * "meson test --suite fuzz" runs every corpus as a regression test. Arguments are files or
 * directories; a directory's regular files are replayed in name order.
 */

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path) {
        FILE *f;
        uint8_t *buf = NULL;
        size_t n = 0, allocated = 0;

        f = fopen(path, "re");
        if (!f) {
                fprintf(stderr, "fuzz-main: %s: %s\n", path, strerror(errno));
                return -1;
        }
        for (;;) {
                size_t k;

                if (n == allocated) {
                        uint8_t *b;

                        allocated = allocated ? allocated * 2 : 4096;
                        b = realloc(buf, allocated);
                        if (!b) {
                                free(buf);
                                fclose(f);
                                return -1;
                        }
                        buf = b;
                }
                k = fread(buf + n, 1, allocated - n, f);
                n += k;
                if (k == 0)
                        break;
        }
        if (ferror(f)) {
                fprintf(stderr, "fuzz-main: %s: read error\n", path);
                free(buf);
                fclose(f);
                return -1;
        }
        fclose(f);

        /* Copy into an exact-size buffer, so ASan catches reads past the input's end. */
        {
                uint8_t *exact = malloc(n ? n : 1);

                if (!exact) {
                        free(buf);
                        return -1;
                }
                memcpy(exact, buf, n);
                free(buf);
                (void) LLVMFuzzerTestOneInput(exact, n);
                free(exact);
        }
        return 0;
}

static int cmp(const void *a, const void *b) {
        return strcmp(*(char * const *) a, *(char * const *) b);
}

static int run_dir(const char *dir, unsigned *count) {
        char **names = NULL;
        size_t n = 0;
        DIR *d;
        struct dirent *de;
        int r = 0;

        d = opendir(dir);
        if (!d) {
                fprintf(stderr, "fuzz-main: %s: %s\n", dir, strerror(errno));
                return -1;
        }
        while ((de = readdir(d))) {
                char **m;

                if (de->d_name[0] == '.')
                        continue;
                m = realloc(names, (n + 1) * sizeof(char *));
                if (!m) {
                        r = -1;
                        break;
                }
                names = m;
                if (asprintf(&names[n], "%s/%s", dir, de->d_name) < 0) {
                        r = -1;
                        break;
                }
                n++;
        }
        closedir(d);

        if (r == 0 && n > 0)
                qsort(names, n, sizeof(char *), cmp);
        for (size_t i = 0; i < n; i++) {
                struct stat st;

                if (r == 0 && stat(names[i], &st) == 0 && S_ISREG(st.st_mode)) {
                        if (run_file(names[i]) < 0)
                                r = -1;
                        else
                                (*count)++;
                }
                free(names[i]);
        }
        free(names);
        return r;
}

int main(int argc, char *argv[]) {
        unsigned count = 0;

        if (argc < 2) {
                fprintf(stderr, "Usage: %s FILE|DIRECTORY...\n", argv[0]);
                return EXIT_FAILURE;
        }

        for (int i = 1; i < argc; i++) {
                struct stat st;

                if (stat(argv[i], &st) < 0) {
                        fprintf(stderr, "fuzz-main: %s: %s\n", argv[i], strerror(errno));
                        return EXIT_FAILURE;
                }
                if (S_ISDIR(st.st_mode)) {
                        if (run_dir(argv[i], &count) < 0)
                                return EXIT_FAILURE;
                } else {
                        if (run_file(argv[i]) < 0)
                                return EXIT_FAILURE;
                        count++;
                }
        }

        printf("%s: %u inputs replayed\n", argv[0], count);
        return EXIT_SUCCESS;
}
