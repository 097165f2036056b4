/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Manual smoke test of broker/vault.c against a running Vault or vaultdev (not built by meson, not
 * installed). Credentials come from the environment, never argv:
 *
 *   VAULT_ADDR=http://127.0.0.1:8200 [VAULT_CACERT=F] ROLE_ID=... SECRET_ID=... (or VAULT_TOKEN=...) \
 *       vault-smoke [--kv2] [--cancel-on-lost] [--run SECONDS] [read PATH | renew LEASE | revoke LEASE | health | login USER]...
 *
 * `sleep N` waits between commands. USER's password comes from $USER_PASSWORD. Prints one line per reply: the command, the
 * classification, the status, and for reads the data's keys (never their values).
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include <json-c/json.h>
#include <systemd/sd-event.h>

#include "broker/config.h"
#include "broker/vault.h"
#include "common/secret.h"

static int n_pending = 0;
static int n_failed = 0;
static bool kv2 = false;
static char **commands;
static int n_commands, next_command;
static VaultClient *client;
static bool exit_when_done = true;
static bool cancel_on_lost = false;
static VaultRequest *last_req;
static sd_event *event;

static void on_log(int priority, const char *message, void *userdata) {
        fprintf(stderr, "vault[%d]: %s\n", priority, message);
}

static void run_next(void);

static void on_reply(VaultRequest *req, const VaultReply *reply, void *userdata) {
        const char *what = userdata;
        char lease[VAULT_LEASE_LOG_MAX];

        if (req == last_req)
                last_req = NULL;

        printf("%s: %s status=%ld transient=%d invalid_token=%d lease=%s duration=%lld error=%s",
               what, vault_result_to_string(reply->result), reply->status, reply->transient,
               reply->invalid_token, vault_lease_id_for_log(reply->lease_id, lease, sizeof(lease)),
               (long long) reply->lease_duration, reply->error ?: "-");
        if (reply->data && json_object_is_type(reply->data, json_type_object)) {
                printf(" keys=");
                json_object_object_foreach(reply->data, k, v) {
                        (void) v;
                        printf("%s,", k);
                }
        }
        if (reply->has_auth)
                printf(" auth_ttl=%lld token=%s", (long long) reply->auth.lease_duration,
                       reply->auth.client_token ? "yes" : "no");
        printf("\n");
        fflush(stdout);

        n_pending--;
        run_next();
}

static int on_sleep_done(sd_event_source *s, uint64_t usec, void *userdata) {
        n_pending--;
        run_next();
        return 0;
}

static void run_next(void) {
        const char *cmd, *arg;
        int r = 0;

        if (next_command >= n_commands) {
                if (n_pending == 0 && exit_when_done)
                        (void) sd_event_exit(event, n_failed ? 1 : 0);
                return;
        }

        cmd = commands[next_command++];
        arg = next_command < n_commands ? commands[next_command] : NULL;
        n_pending++;

        if (strcmp(cmd, "health") == 0)
                r = vault_health(client, on_reply, (void *) "health", NULL);
        else if (!arg) {
                fprintf(stderr, "%s needs an argument\n", cmd);
                exit(2);
        } else {
                next_command++;
                if (strcmp(cmd, "sleep") == 0)
                        r = sd_event_add_time_relative(event, NULL, CLOCK_MONOTONIC, atol(arg) * USEC_PER_SEC, 0,
                                                       on_sleep_done, NULL);
                else if (strcmp(cmd, "read") == 0)
                        r = vault_read(client, arg, NULL, kv2 ? VAULT_READ_KV2 : 0, on_reply, (void *) "read", NULL);
                else if (strcmp(cmd, "renew") == 0)
                        r = vault_lease_renew(client, arg, 3600, on_reply, (void *) "renew", &last_req);
                else if (strcmp(cmd, "revoke") == 0)
                        r = vault_lease_revoke(client, arg, on_reply, (void *) "revoke", NULL);
                else if (strcmp(cmd, "renew-accessor") == 0)
                        r = vault_token_renew_accessor(client, arg, 0, on_reply, (void *) "renew-accessor", NULL);
                else if (strcmp(cmd, "login") == 0)
                        r = vault_userpass_login(client, "userpass", arg, getenv("USER_PASSWORD") ?: "",
                                                 on_reply, (void *) "login", NULL);
                else {
                        fprintf(stderr, "unknown command %s\n", cmd);
                        exit(2);
                }
        }
        if (r < 0) {
                fprintf(stderr, "%s: failed to start: %s\n", cmd, strerror(-r));
                n_failed++;
                n_pending--;
                run_next();
        }
}

static void on_token(VaultClient *c, VaultTokenEvent ev, const char *accessor, usec_t expires, void *userdata) {
        static const char *const names[] = { "acquired", "renewed", "retired", "lost" };
        usec_t n = now(CLOCK_REALTIME);

        printf("token: %s accessor=%s expires_in=%llds\n", names[ev], accessor ?: "-",
               expires == USEC_INFINITY ? -1LL : (long long) ((int64_t) (expires - n) / (int64_t) USEC_PER_SEC));
        fflush(stdout);

        if (ev == VAULT_TOKEN_LOST && cancel_on_lost && last_req) {
                /* What the lease engine does: drop the renewal of a lease that died with the token. */
                printf("cancelling the pending renew\n");
                last_req = vault_request_cancel(last_req);
                n_pending--;
                run_next();
        }
        if (ev == VAULT_TOKEN_ACQUIRED && next_command == 0)
                run_next();
}

static int on_deadline(sd_event_source *s, uint64_t usec, void *userdata) {
        VaultStatus st;

        vault_client_get_status(client, &st);
        printf("status: reachable=%d sealed=%d logged_in=%d last_error=%s\n", st.reachable, st.sealed,
               st.logged_in, st.last_error ?: "-");
        return sd_event_exit(sd_event_source_get_event(s), n_failed ? 1 : 0);
}

int main(int argc, char **argv) {
        VaultConfig cfg = {
                .address = getenv("VAULT_ADDR"),
                .ca_file = getenv("VAULT_CACERT"),
                .timeout_usec = 5 * USEC_PER_SEC,
        };
        sd_event *e = NULL;
        long run_sec = 30;
        int r, i = 1;

        for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
                if (strcmp(argv[i], "--kv2") == 0)
                        kv2 = true;
                else if (strcmp(argv[i], "--cancel-on-lost") == 0)
                        cancel_on_lost = true;
                else if (strcmp(argv[i], "--run") == 0 && i + 1 < argc) {
                        run_sec = atol(argv[++i]);
                        exit_when_done = false;
                }
        }
        commands = argv + i;
        n_commands = argc - i;

        if (getenv("VAULT_TOKEN")) {
                cfg.auth = VAULT_AUTH_TOKEN;
                if (secret_new_string(getenv("VAULT_TOKEN"), &cfg.token) < 0)
                        return 1;
        } else {
                cfg.auth = VAULT_AUTH_APPROLE;
                if (secret_new_string(getenv("ROLE_ID") ?: "", &cfg.role_id) < 0 ||
                    secret_new_string(getenv("SECRET_ID") ?: "", &cfg.secret_id) < 0)
                        return 1;
        }

        r = sd_event_default(&e);
        if (r < 0)
                return 1;

        r = vault_client_new(e, &cfg, &client);
        if (r < 0) {
                fprintf(stderr, "vault_client_new: %s\n", strerror(-r));
                return 1;
        }
        vault_client_set_log_func(client, on_log, NULL);
        vault_client_set_token_changed_callback(client, on_token, NULL);
        (void) sd_event_add_time_relative(e, NULL, CLOCK_MONOTONIC, run_sec * USEC_PER_SEC, 0, on_deadline, NULL);

        r = vault_client_start(client);
        if (r < 0)
                return 1;
        if (n_commands == 0)
                exit_when_done = false;

        event = e;
        r = sd_event_loop(e);

        client = vault_client_free(client);
        secret_free(cfg.token);
        secret_free(cfg.role_id);
        secret_free(cfg.secret_id);
        sd_event_unref(e);
        return r;
}
