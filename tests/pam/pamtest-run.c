/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * pamtest-run: runs PAM operations through libpamtest, under pam_wrapper (the service file comes from
 * $PAM_WRAPPER_SERVICE_DIR, nothing is installed into /etc/pam.d).
 *
 *   pamtest-run SERVICE USER OP=EXPECTED...
 *
 * OP is auth, setcred, open or close; EXPECTED a PAM return code name (PAM_SUCCESS, PAM_AUTH_ERR, ...).
 * The password for auth comes from $PAMTEST_PASSWORD. Prints "OP RV" for each operation run. Exit
 * status: 0 when every operation returned what was expected, 1 when one did not, 2 on other errors.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpamtest.h>
#include <security/pam_appl.h>

static const struct {
        const char *name;
        int value;
} codes[] = {
        { "PAM_SUCCESS", PAM_SUCCESS },
        { "PAM_SESSION_ERR", PAM_SESSION_ERR },
        { "PAM_AUTH_ERR", PAM_AUTH_ERR },
        { "PAM_AUTHINFO_UNAVAIL", PAM_AUTHINFO_UNAVAIL },
        { "PAM_USER_UNKNOWN", PAM_USER_UNKNOWN },
        { "PAM_SERVICE_ERR", PAM_SERVICE_ERR },
        { "PAM_PERM_DENIED", PAM_PERM_DENIED },
        { "PAM_IGNORE", PAM_IGNORE },
        { "PAM_SYSTEM_ERR", PAM_SYSTEM_ERR },
};

static const char *code_name(int v) {
        for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
                if (codes[i].value == v)
                        return codes[i].name;
        return "?";
}

int main(int argc, char **argv) {
        struct pam_testcase cases[16];
        const char *ops[16];
        const char *password = getenv("PAMTEST_PASSWORD");
        const char *echo_off[4] = { password ?: "", password ?: "", password ?: "", NULL };
        struct pamtest_conv_data conv = { .in_echo_off = echo_off };
        enum pamtest_err perr;
        size_t n = 0;

        if (argc < 4 || argc - 3 > 16) {
                fprintf(stderr, "usage: pamtest-run SERVICE USER OP=EXPECTED...\n");
                return 2;
        }
        for (int i = 3; i < argc; i++) {
                char *eq = strchr(argv[i], '=');
                enum pamtest_ops op;
                int expected = -1;

                if (!eq) {
                        fprintf(stderr, "bad case '%s'\n", argv[i]);
                        return 2;
                }
                *eq = 0;
                for (size_t j = 0; j < sizeof(codes) / sizeof(codes[0]); j++)
                        if (strcmp(codes[j].name, eq + 1) == 0)
                                expected = codes[j].value;
                if (expected < 0) {
                        fprintf(stderr, "unknown code '%s'\n", eq + 1);
                        return 2;
                }
                if (strcmp(argv[i], "auth") == 0)
                        op = PAMTEST_AUTHENTICATE;
                else if (strcmp(argv[i], "setcred") == 0)
                        op = PAMTEST_SETCRED;
                else if (strcmp(argv[i], "open") == 0)
                        op = PAMTEST_OPEN_SESSION;
                else if (strcmp(argv[i], "close") == 0)
                        op = PAMTEST_CLOSE_SESSION;
                else {
                        fprintf(stderr, "unknown op '%s'\n", argv[i]);
                        return 2;
                }
                ops[n] = argv[i];
                cases[n++] = (struct pam_testcase) pam_test(op, expected);
        }

        perr = _pamtest(argv[1], argv[2], &conv, cases, n, NULL);
        for (size_t i = 0; i < n; i++) {
                printf("%s %s\n", ops[i], code_name(cases[i].op_rv));
                if (cases[i].op_rv != cases[i].expected_rv)
                        break;
        }
        fflush(stdout);
        if (perr == PAMTEST_ERR_OK)
                return 0;
        if (perr == PAMTEST_ERR_CASE)
                return 1;
        fprintf(stderr, "pamtest: %s\n", pamtest_strerror(perr));
        return 2;
}
