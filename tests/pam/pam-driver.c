/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * pam-driver: a long-lived PAM application for the session tests. Real libpam, a real service file
 * read from a private directory with pam_start_confdir() (nothing is installed into /etc/pam.d), and
 * one handle kept for the life of the process, like login or sshd keep theirs.
 *
 *   pam-driver CONFDIR SERVICE USER
 *
 * Prints "ready PID" once the handle exists, then reads commands from stdin, one per line, and
 * answers each with the PAM return code's name:
 *   password TEXT   the answer to password prompts from now on (answers "ok")
 *   tty TEXT | rhost TEXT   set PAM_TTY / PAM_RHOST (answers "ok")
 *   auth | setcred | open | close   pam_authenticate / pam_setcred / pam_open_session / pam_close_session
 *   spawn CMD       run CMD with /bin/sh (fork + exec, as sshd does for the user's shell); answers
 *                   its exit status
 *   end             pam_end(), then exit 0
 * At EOF it exits without pam_end(), like a process that died.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <security/pam_appl.h>

static char *password;

static int conv(int n, const struct pam_message **msg, struct pam_response **resp, void *userdata) {
        struct pam_response *r = calloc((size_t) n, sizeof(*r));

        if (!r)
                return PAM_BUF_ERR;
        for (int i = 0; i < n; i++)
                if (msg[i]->msg_style == PAM_PROMPT_ECHO_OFF || msg[i]->msg_style == PAM_PROMPT_ECHO_ON)
                        r[i].resp = strdup(password ?: "");
        *resp = r;
        return PAM_SUCCESS;
}

int main(int argc, char **argv) {
        struct pam_conv c = { .conv = conv };
        pam_handle_t *pamh = NULL;
        char line[4096];
        int r;

        if (argc != 4) {
                fprintf(stderr, "usage: pam-driver CONFDIR SERVICE USER\n");
                return 2;
        }
        r = pam_start_confdir(argv[2], argv[3], &c, argv[1], &pamh);
        if (r != PAM_SUCCESS) {
                fprintf(stderr, "pam_start_confdir: %d\n", r);
                return 2;
        }
        printf("ready %d\n", (int) getpid());
        fflush(stdout);

        while (fgets(line, sizeof(line), stdin)) {
                char *arg;

                line[strcspn(line, "\n")] = 0;
                arg = strchr(line, ' ');
                if (arg)
                        *arg++ = 0;

                if (strcmp(line, "password") == 0) {
                        free(password);
                        password = strdup(arg ?: "");
                        printf("ok\n");
                } else if (strcmp(line, "tty") == 0) {
                        printf("%s\n", pam_set_item(pamh, PAM_TTY, arg) == PAM_SUCCESS ? "ok" : "error");
                } else if (strcmp(line, "rhost") == 0) {
                        printf("%s\n", pam_set_item(pamh, PAM_RHOST, arg) == PAM_SUCCESS ? "ok" : "error");
                } else if (strcmp(line, "auth") == 0) {
                        printf("%d\n", pam_authenticate(pamh, 0));
                } else if (strcmp(line, "setcred") == 0) {
                        printf("%d\n", pam_setcred(pamh, PAM_ESTABLISH_CRED));
                } else if (strcmp(line, "open") == 0) {
                        printf("%d\n", pam_open_session(pamh, 0));
                } else if (strcmp(line, "close") == 0) {
                        printf("%d\n", pam_close_session(pamh, 0));
                } else if (strcmp(line, "spawn") == 0) {
                        fflush(stdout);
                        printf("%d\n", system(arg ?: "true"));
                } else if (strcmp(line, "end") == 0) {
                        r = pam_end(pamh, PAM_SUCCESS);
                        printf("%d\n", r);
                        fflush(stdout);
                        free(password);
                        return r == PAM_SUCCESS ? 0 : 1;
                } else
                        printf("unknown\n");
                fflush(stdout);
        }
        free(password);
        return 0;
}
