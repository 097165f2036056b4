/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * vlease: the command-line client. One connection, one varlink call, one reply. The broker is
 * authenticated the other way round too: its socket peer must be root or the "vlease" user, so a
 * process that grabbed the socket path cannot hand out fake credentials. Secrets are only ever
 * printed on stdout, never taken from argv or the environment.
 */

#include <errno.h>
#include <stdarg.h>
#include <getopt.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "common/macro.h"
#include "common/memory-util.h"
#include "common/socket-util.h"
#include "common/time-util.h"
#include "common/varlink.h"

/* A safety net for a hung broker only: the broker itself answers VaultUnavailable once Vault's own
 * timeouts run out, and a first Get may take a login and a read of timeout_sec (30 s) each. */
#define REQUEST_TIMEOUT_USEC (120 * USEC_PER_SEC)
#define CONNECT_TIMEOUT_USEC (5 * USEC_PER_SEC)

enum {
        EXIT_OTHER = 1,
        EXIT_USAGE = 2,
        EXIT_NO_SUCH_CREDENTIAL = 3,
        EXIT_PERMISSION_DENIED = 4,
        EXIT_VAULT = 5,
        EXIT_UNREACHABLE = 6,
        EXIT_LOGIN_REQUIRED = 7,
};

static const char *arg_socket = VLEASE_SOCKET_PATH;
static const char *arg_field = NULL;
static bool arg_json = false;

static void help(void) {
        printf("Usage: vlease [OPTIONS] COMMAND\n"
               "\n"
               "Fetch leased Vault credentials from the local vleased broker.\n"
               "\n"
               "Commands:\n"
               "  get NAME        Print a credential: its format, or one 'field: value' line per field\n"
               "  list            List the credentials you may get and the ones you hold\n"
               "  status          Show the broker's Vault connection and held leases\n"
               "  release NAME    Give a credential back (the broker revokes its lease)\n"
               "\n"
               "Options:\n"
               "  -h --help           Show this help\n"
               "     --version        Show the version\n"
               "     --socket=PATH    Broker socket (default: %s)\n"
               "  -f --field=FIELD    get: print only this field's raw value\n"
               "  -j --json           Print JSON\n"
               "\n"
               "Exit status: 0 success, 1 failure, 2 usage, 3 no such credential, 4 permission denied,\n"
               "5 Vault unavailable or Vault error, 6 broker unreachable, 7 login required.\n",
               VLEASE_SOCKET_PATH);
}

_printf_(1, 2)
static void error(const char *fmt, ...) {
        va_list ap;

        fputs("vlease: ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
}

/* Returns > 0 to go on, 0 to exit successfully, < 0 for a usage error. */
static int parse_argv(int argc, char *argv[]) {
        enum {
                ARG_VERSION = 0x100,
                ARG_SOCKET,
        };
        static const struct option options[] = {
                { "help",    no_argument,       NULL, 'h'         },
                { "version", no_argument,       NULL, ARG_VERSION },
                { "socket",  required_argument, NULL, ARG_SOCKET  },
                { "field",   required_argument, NULL, 'f'         },
                { "json",    no_argument,       NULL, 'j'         },
                {}
        };
        int c;

        while ((c = getopt_long(argc, argv, "hf:j", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        printf("vlease %s\n", VLEASE_VERSION);
                        return 0;
                case ARG_SOCKET:
                        if (!*optarg) {
                                error("--socket needs a path");
                                return -EINVAL;
                        }
                        arg_socket = optarg;
                        break;
                case 'f':
                        arg_field = optarg;
                        break;
                case 'j':
                        arg_json = true;
                        break;
                case '?':
                        return -EINVAL;
                default:
                        return -EINVAL;
                }

        return 1;
}

static int print_json(json_object *o) {
        const char *s;
        size_t n;

        s = json_object_to_json_string_length(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
                                              JSON_C_TO_STRING_NOSLASHESCAPE, &n);
        if (!s)
                return -ENOMEM;
        fwrite(s, 1, n, stdout);
        fputc('\n', stdout);
        /* json-c keeps this text in the object; it may hold secrets */
        explicit_bzero_safe((char *) s, n);
        return 0;
}

/* A value as text: strings as they are, anything else as compact JSON. */
static const char *value_text(json_object *v, size_t *ret_len) {
        if (!v) {
                *ret_len = 4;
                return "null";
        }
        if (json_object_is_type(v, json_type_string)) {
                *ret_len = (size_t) json_object_get_string_len(v);
                return json_object_get_string(v);
        }
        return json_object_to_json_string_length(v, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, ret_len);
}

static int print_value_line(json_object *v) {
        const char *s;
        size_t n;

        s = value_text(v, &n);
        if (!s)
                return -ENOMEM;
        fwrite(s, 1, n, stdout);
        fputc('\n', stdout);
        return 0;
}

static const char *json_string_or(json_object *o, const char *key, const char *fallback) {
        json_object *v;

        if (o && json_object_object_get_ex(o, key, &v) && v && json_object_is_type(v, json_type_string))
                return json_object_get_string(v);
        return fallback;
}

/* A wall-clock µs field as a timestamp, or "-" when absent, null or unusable. */
static const char *json_timestamp(json_object *o, const char *key, char buf[static FORMAT_TIMESTAMP_MAX]) {
        json_object *v;
        int64_t t;

        if (!o || !json_object_object_get_ex(o, key, &v) || !v || !json_object_is_type(v, json_type_int))
                return "-";
        t = json_object_get_int64(v);
        if (t <= 0)
                return "-";
        return format_timestamp(buf, FORMAT_TIMESTAMP_MAX, (usec_t) t) ?: "-";
}

/* For the one-line-per-field view: control characters are shown C-escaped, so that a value can
 * neither pass for another field's line nor drive the terminal. --field and --json give raw values. */
static void print_escaped(const char *s, size_t n) {
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char) s[i];

                if (c == '\n')
                        fputs("\\n", stdout);
                else if (c == '\t')
                        fputs("\\t", stdout);
                else if (c == '\\')
                        fputs("\\\\", stdout);
                else if (c < ' ' || c == 0x7f)
                        printf("\\x%02x", c);
                else
                        fputc(c, stdout);
        }
}

/* "uid:1000" as "uid:1000 (alice)" when the uid has a name here. */
static const char *owner_text(const char *owner, char *buf, size_t size) {
        struct passwd *pw;
        unsigned long uid;
        char *end;

        if (strncmp(owner, "uid:", 4) != 0)
                return owner;
        errno = 0;
        uid = strtoul(owner + 4, &end, 10);
        if (errno != 0 || *end || end == owner + 4)
                return owner;
        pw = getpwuid((uid_t) uid);
        if (!pw)
                return owner;
        (void) snprintf(buf, size, "%s (%s)", owner, pw->pw_name);
        return buf;
}

static int verb_get(json_object *params, const char *name) {
        json_object *cred = NULL, *data = NULL, *formatted = NULL, *v;

        if (varlink_param_object(params, "credential", true, &cred) < 0) {
                error("malformed reply from broker: no credential");
                return EXIT_OTHER;
        }
        if (arg_json)
                return print_json(cred) < 0 ? EXIT_OTHER : EXIT_SUCCESS;

        if (varlink_param_object(cred, "data", false, &data) < 0 || !data) {
                error("malformed reply from broker: credential has no data");
                return EXIT_OTHER;
        }

        if (arg_field) {
                if (!json_object_object_get_ex(data, arg_field, &v) || !v) {
                        error("credential '%s' has no field '%s'", name, arg_field);
                        return EXIT_OTHER;
                }
                return print_value_line(v) < 0 ? EXIT_OTHER : EXIT_SUCCESS;
        }

        if (json_object_object_get_ex(cred, "formatted", &formatted) && formatted &&
            json_object_is_type(formatted, json_type_string)) {
                const char *s = json_object_get_string(formatted);
                size_t n = (size_t) json_object_get_string_len(formatted);

                fwrite(s, 1, n, stdout);
                if (n == 0 || s[n - 1] != '\n')
                        fputc('\n', stdout);
                return EXIT_SUCCESS;
        }

        json_object_object_foreach(data, k, val) {
                const char *s;
                size_t n;

                s = value_text(val, &n);
                if (!s)
                        return EXIT_OTHER;
                print_escaped(k, strlen(k));
                fputs(": ", stdout);
                print_escaped(s, n);
                fputc('\n', stdout);
        }
        return EXIT_SUCCESS;
}

static void print_held(json_object *held) {
        size_t n = held ? json_object_array_length(held) : 0;

        if (n == 0) {
                printf("No leases held.\n");
                return;
        }

        printf("%-24s %-28s %-13s %-23s %s\n", "CREDENTIAL", "OWNER", "STATE", "EXPIRES", "RENEWALS");
        for (size_t i = 0; i < n; i++) {
                json_object *h = json_object_array_get_idx(held, i), *v;
                char ts[FORMAT_TIMESTAMP_MAX], owner[96];
                int64_t renewals = 0;

                if (!h || !json_object_is_type(h, json_type_object))
                        continue;
                if (json_object_object_get_ex(h, "renewals", &v) && v && json_object_is_type(v, json_type_int))
                        renewals = json_object_get_int64(v);
                printf("%-24s %-28s %-13s %-23s %lld\n",
                       json_string_or(h, "credential", "?"),
                       owner_text(json_string_or(h, "owner", "?"), owner, sizeof(owner)),
                       json_string_or(h, "state", "?"),
                       json_timestamp(h, "expires_usec", ts),
                       (long long) renewals);
        }
}

static int verb_list(json_object *params) {
        json_object *allowed = NULL, *held = NULL;
        size_t n;

        if (arg_json)
                return print_json(params) < 0 ? EXIT_OTHER : EXIT_SUCCESS;

        (void) varlink_param_array(params, "allowed", false, &allowed);
        (void) varlink_param_array(params, "held", false, &held);

        n = allowed ? json_object_array_length(allowed) : 0;
        if (n == 0)
                printf("No credentials allowed.\n");
        else {
                printf("ALLOWED\n");
                for (size_t i = 0; i < n; i++) {
                        json_object *v = json_object_array_get_idx(allowed, i);

                        if (v && json_object_is_type(v, json_type_string))
                                printf("%s\n", json_object_get_string(v));
                }
        }
        printf("\n");
        print_held(held);
        return EXIT_SUCCESS;
}

static int verb_status(json_object *params) {
        json_object *vault = NULL, *held = NULL, *v;
        char ts[FORMAT_TIMESTAMP_MAX];
        int64_t sessions = 0;

        if (arg_json)
                return print_json(params) < 0 ? EXIT_OTHER : EXIT_SUCCESS;

        (void) varlink_param_object(params, "vault", false, &vault);
        (void) varlink_param_array(params, "held", false, &held);
        (void) varlink_param_int64(params, "sessions", false, &sessions);

        printf("Vault:          %s\n", json_string_or(vault, "address", "?"));
        if (vault && json_object_object_get_ex(vault, "reachable", &v) && v)
                printf("Reachable:      %s\n", json_object_get_boolean(v) ? "yes" : "no");
        if (vault && json_object_object_get_ex(vault, "sealed", &v) && v)
                printf("Sealed:         %s\n", json_object_get_boolean(v) ? "yes" : "no");
        printf("Token expires:  %s\n", json_timestamp(vault, "token_expires_usec", ts));
        if (json_string_or(vault, "last_error", NULL))
                printf("Last error:     %s\n", json_string_or(vault, "last_error", ""));
        printf("Sessions:       %lld\n\n", (long long) sessions);
        print_held(held);
        return EXIT_SUCCESS;
}

/* Maps an error reply to a message and exit status. */
static int handle_error(const VarlinkReply *rep, const char *name) {
        const char *e = rep->error, *s = NULL;
        int64_t status = 0;

        if (strcmp(e, "io.vlease.Broker.NoSuchCredential") == 0) {
                error("no such credential '%s' (NoSuchCredential)", json_string_or(rep->parameters, "name", name ?: "?"));
                return EXIT_NO_SUCH_CREDENTIAL;
        }
        if (strcmp(e, "io.vlease.Broker.PermissionDenied") == 0 ||
            strcmp(e, "org.varlink.service.PermissionDenied") == 0) {
                if (name)
                        error("permission denied for credential '%s' (PermissionDenied)", name);
                else
                        error("permission denied (PermissionDenied)");
                return EXIT_PERMISSION_DENIED;
        }
        if (strcmp(e, "io.vlease.Broker.VaultUnavailable") == 0) {
                (void) varlink_param_string(rep->parameters, "reason", false, &s);
                error("Vault unavailable: %s (VaultUnavailable)", s ?: "unknown reason");
                return EXIT_VAULT;
        }
        if (strcmp(e, "io.vlease.Broker.VaultError") == 0) {
                (void) varlink_param_int64(rep->parameters, "status", false, &status);
                (void) varlink_param_string(rep->parameters, "message", false, &s);
                error("Vault error %lld: %s (VaultError)", (long long) status, s ?: "no message");
                return EXIT_VAULT;
        }
        if (strcmp(e, "io.vlease.Broker.LoginRequired") == 0) {
                error("credential '%s' needs a Vault login for user '%s' first (LoginRequired)", name ?: "?",
                      json_string_or(rep->parameters, "user", "?"));
                return EXIT_LOGIN_REQUIRED;
        }
        if (strcmp(e, "io.vlease.Broker.FormatError") == 0) {
                error("credential '%s' cannot be formatted: Vault returned no field '%s' (FormatError)", name ?: "?",
                      json_string_or(rep->parameters, "field", "?"));
                return EXIT_OTHER;
        }
        if (strcmp(e, "io.vlease.Broker.TooManyRequests") == 0) {
                error("too many requests, try again later (TooManyRequests)");
                return EXIT_OTHER;
        }
        if (strcmp(e, "org.varlink.service.InvalidParameter") == 0) {
                error("invalid parameter '%s' (InvalidParameter)", json_string_or(rep->parameters, "parameter", "?"));
                return EXIT_OTHER;
        }

        {
                const char *p = json_object_to_json_string_ext(rep->parameters, JSON_C_TO_STRING_PLAIN |
                                                               JSON_C_TO_STRING_NOSLASHESCAPE);
                error("broker returned %s %s", e, p ?: "");
        }
        return EXIT_OTHER;
}

int main(int argc, char *argv[]) {
        _cleanup_close_ int fd = -1;
        _cleanup_free_ char *msg = NULL;
        json_object *params = NULL;
        VarlinkReply rep = {};
        const char *verb, *name = NULL, *method;
        uid_t broker_uid = (uid_t) -1;
        size_t len;
        int r, ret;

        r = parse_argv(argc, argv);
        if (r == 0)
                return EXIT_SUCCESS;
        if (r < 0)
                return EXIT_USAGE;

        if (optind >= argc) {
                error("missing command; see 'vlease --help'");
                return EXIT_USAGE;
        }
        verb = argv[optind];

        if (strcmp(verb, "get") == 0 || strcmp(verb, "release") == 0) {
                if (argc - optind != 2) {
                        error("'%s' takes exactly one credential name", verb);
                        return EXIT_USAGE;
                }
                name = argv[optind + 1];
                method = strcmp(verb, "get") == 0 ? "io.vlease.Broker.Get" : "io.vlease.Broker.Release";
        } else if (strcmp(verb, "list") == 0 || strcmp(verb, "status") == 0) {
                if (argc - optind != 1) {
                        error("'%s' takes no arguments", verb);
                        return EXIT_USAGE;
                }
                method = strcmp(verb, "list") == 0 ? "io.vlease.Broker.List" : "io.vlease.Broker.Status";
        } else {
                error("unknown command '%s'; see 'vlease --help'", verb);
                return EXIT_USAGE;
        }
        if (arg_field && strcmp(verb, "get") != 0) {
                error("--field only applies to 'get'");
                return EXIT_USAGE;
        }
        if (arg_field && arg_json) {
                error("--field and --json exclude each other");
                return EXIT_USAGE;
        }
        if (arg_json && strcmp(verb, "release") == 0) {
                error("--json does not apply to 'release'");
                return EXIT_USAGE;
        }

        params = json_object_new_object();
        if (!params)
                return EXIT_OTHER;
        if (name && json_object_object_add(params, "name", json_object_new_string(name)) < 0) {
                json_object_put(params);
                return EXIT_OTHER;
        }
        r = varlink_build_call(method, params, false, &msg, &len);
        json_object_put(params);
        if (r < 0) {
                error("cannot build request: %s", strerror(-r));
                return EXIT_OTHER;
        }

        fd = connect_unix(arg_socket, CONNECT_TIMEOUT_USEC);
        if (fd < 0) {
                error("cannot connect to the broker at %s: %s", arg_socket, strerror(-fd));
                return EXIT_UNREACHABLE;
        }

        /* Mutual check: only root or the broker's system user may answer us. */
        r = lookup_broker_uid(&broker_uid);
        if (r < 0 && r != -ESRCH) {
                error("cannot look up user '%s': %s", VLEASE_BROKER_USER, strerror(-r));
                return EXIT_OTHER;
        }
        r = socket_peer_is_broker(fd, broker_uid);
        if (r < 0) {
                error("cannot check the broker's credentials on %s: %s", arg_socket, strerror(-r));
                return EXIT_UNREACHABLE;
        }
        if (r == 0) {
                error("refusing to talk to %s: its peer is neither root nor user '%s'", arg_socket,
                      VLEASE_BROKER_USER);
                return EXIT_UNREACHABLE;
        }

        r = varlink_call_sync(fd, msg, len, usec_add(now(CLOCK_MONOTONIC), REQUEST_TIMEOUT_USEC), &rep);
        if (r == -ETIMEDOUT) {
                error("the broker did not answer within %llu s", (unsigned long long) (REQUEST_TIMEOUT_USEC / USEC_PER_SEC));
                return EXIT_UNREACHABLE;
        }
        if (r == -ECONNRESET || r == -EPIPE) {
                error("the broker closed the connection: %s", strerror(-r));
                return EXIT_UNREACHABLE;
        }
        if (r < 0) {
                error("bad reply from the broker: %s", strerror(-r));
                return EXIT_OTHER;
        }

        if (rep.error)
                ret = handle_error(&rep, name);
        else if (strcmp(verb, "get") == 0)
                ret = verb_get(rep.parameters, name);
        else if (strcmp(verb, "list") == 0)
                ret = verb_list(rep.parameters);
        else if (strcmp(verb, "status") == 0)
                ret = verb_status(rep.parameters);
        else
                ret = EXIT_SUCCESS;

        varlink_reply_done(&rep);

        if (fflush(stdout) != 0 || ferror(stdout)) {
                error("cannot write output: %s", strerror(errno));
                return EXIT_OTHER;
        }
        return ret;
}
