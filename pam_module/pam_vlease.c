/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * pam_vlease: the login front door of vleased (DESIGN.md, "Identity and isolation").
 *
 * session: open_session calls OpenSession(user, service, tty, rhost, wait_usec) on a connection that
 *          is then KEPT OPEN (close-on-exec) for the life of the session: the broker ends the session
 *          when that connection hits EOF, so a session whose process is killed, or whose stack never
 *          runs close_session, still ends. close_session calls CloseSession on it.
 * auth:    authenticate sends the user's password with Login(user, password); the broker logs in to
 *          Vault as that user and keeps the token for `identity = user` credentials.
 *
 * Why it looks like this:
 * - It runs inside sshd, login, su, sudo and systemd: no event loop, no threads, no globals, no signal
 *   handlers, no fork, no atexit. Each call is one blocking request bounded by one poll() deadline
 *   (the timeout= argument, default 5 s), so a dead or slow broker never holds a login longer than
 *   that. MSG_NOSIGNAL on every send, because the host process may not ignore SIGPIPE.
 * - State between open and close travels with pam_set_data(), keyed by module name; the cleanup
 *   callback closes the kept fd. A forked copy of the handle (another pid) never reuses the kept
 *   connection: it closes its own copy and talks to the broker on a new one.
 * - Mutual check: before anything is sent, the socket's peer must be root or the `vlease` user, so
 *   that whoever managed to bind the socket path can neither collect passwords nor fake sessions.
 * - Return codes are honest: PAM_SUCCESS only when the broker said yes. The administrator chooses
 *   required or optional in the stack.
 * - The password is never logged, and every copy of it that we make (the JSON call) is wiped. The
 *   authtok itself belongs to PAM and is not freed here.
 */

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include <json-c/json.h>
#include <security/pam_ext.h>
#include <security/pam_modules.h>
#include <security/pam_modutil.h>

#include "common/macro.h"
#include "common/json-util.h"
#include "common/memory-util.h"
#include "common/socket-util.h"
#include "common/time-util.h"
#include "common/varlink.h"

#define INTERFACE "io.vlease.Broker"
#define DATA_SESSION "pam_vlease:session"
#define DEFAULT_TIMEOUT_USEC (5 * USEC_PER_SEC)
#define TIMEOUT_MAX_USEC (3600 * USEC_PER_SEC)

typedef struct Args {
        const char *socket;
        usec_t timeout_usec;
        bool debug;
} Args;

/* What open_session leaves for close_session. */
typedef struct SessionData {
        int fd;                 /* the held connection, close-on-exec */
        pid_t pid;              /* the process that opened it */
        char *id;               /* the broker's session id */
} SessionData;

static void session_data_cleanup(pam_handle_t *pamh, void *data, int error_status) {
        SessionData *d = data;

        /* Closing our own copy of the fd is local to this process, also in a forked copy
         * (PAM_DATA_SILENT): the connection ends only when every copy is closed. */
        if (!d)
                return;
        safe_close(d->fd);
        free(d->id);
        free(d);
}

static int parse_timeout(const char *v, usec_t *ret) {
        char *end = NULL;
        double d;

        if (!v || !*v)
                return -EINVAL;
        errno = 0;
        d = strtod(v, &end);
        if (errno != 0 || !end || *end != '\0' || !isfinite(d) || d <= 0 ||
            d * (double) USEC_PER_SEC > (double) TIMEOUT_MAX_USEC)
                return -EINVAL;
        *ret = (usec_t) (d * (double) USEC_PER_SEC);
        if (*ret == 0)
                *ret = 1;
        return 0;
}

static void parse_argv(pam_handle_t *pamh, int argc, const char **argv, Args *ret) {
        *ret = (Args) {
                .socket = VLEASE_SOCKET_PATH,
                .timeout_usec = DEFAULT_TIMEOUT_USEC,
        };

        for (int i = 0; i < argc; i++) {
                const char *a = argv[i];

                if (!a)
                        continue;
                if (strncmp(a, "socket=", 7) == 0) {
                        if (a[7] != '/')
                                pam_syslog(pamh, LOG_ERR, "socket= needs an absolute path, ignoring '%s'.", a + 7);
                        else
                                ret->socket = a + 7;
                } else if (strncmp(a, "timeout=", 8) == 0) {
                        if (parse_timeout(a + 8, &ret->timeout_usec) < 0) {
                                pam_syslog(pamh, LOG_ERR, "Invalid timeout= '%s' (seconds, > 0, at most 3600), "
                                           "using %u s.", a + 8, (unsigned) (DEFAULT_TIMEOUT_USEC / USEC_PER_SEC));
                                ret->timeout_usec = DEFAULT_TIMEOUT_USEC;
                        }
                } else if (strcmp(a, "debug") == 0)
                        ret->debug = true;
                else if (strcmp(a, "use_first_pass") == 0 || strcmp(a, "try_first_pass") == 0)
                        ; /* pam_get_authtok() reads these from the module's arguments itself */
                else
                        pam_syslog(pamh, LOG_WARNING, "Unknown module argument '%s', ignoring.", a);
        }
}

/* The outcome of one exchange with the broker. */
typedef enum CallResult {
        CALL_OK,                /* reply parameters in *ret_params */
        CALL_ERROR,             /* a varlink error reply, its name in *ret_error */
        CALL_UNREACHABLE,       /* no connection, timeout, connection lost, malformed reply */
        CALL_NOT_BROKER,        /* the socket's peer is neither root nor the broker user */
} CallResult;

/* Connects to the broker before @deadline and checks that its peer is root or the broker user. */
static int broker_connect(pam_handle_t *pamh, const Args *args, usec_t deadline, int *ret_fd, CallResult *ret_why) {
        _cleanup_close_ int fd = -1;
        uid_t broker_uid = (uid_t) -1;
        usec_t n = now(CLOCK_MONOTONIC);
        int r;

        if (n >= deadline) {
                *ret_why = CALL_UNREACHABLE;
                return -ETIMEDOUT;
        }
        fd = connect_unix(args->socket, deadline - n);
        if (fd < 0) {
                pam_syslog(pamh, LOG_ERR, "Cannot reach vleased at %s: %s", args->socket, strerror(-fd));
                *ret_why = CALL_UNREACHABLE;
                return fd;
        }

        r = lookup_broker_uid(&broker_uid);
        if (r < 0 && r != -ESRCH && args->debug)
                pam_syslog(pamh, LOG_DEBUG, "Cannot look up user " VLEASE_BROKER_USER ": %s", strerror(-r));
        r = socket_peer_is_broker(fd, r < 0 ? (uid_t) -1 : broker_uid);
        if (r <= 0) {
                pam_syslog(pamh, LOG_ERR, "The peer of %s is neither root nor user " VLEASE_BROKER_USER
                           ": refusing to talk to it.", args->socket);
                *ret_why = CALL_NOT_BROKER;
                return r < 0 ? r : -EPERM;
        }
        *ret_fd = TAKE_FD(fd);
        return 0;
}

/*
 * Sends one call on @fd and waits for the reply until @deadline. On CALL_OK *ret_params holds a
 * reference to the reply parameters; on CALL_ERROR *ret_error a copy of the error name (and
 * *ret_params its parameters).
 */
static CallResult broker_call(pam_handle_t *pamh, int fd, const char *method, json_object *params, usec_t deadline,
                              json_object **ret_params, char **ret_error) {
        _cleanup_(erase_and_freep) char *msg = NULL;
        VarlinkReply reply = {};
        size_t len = 0;
        int r;

        *ret_params = NULL;
        *ret_error = NULL;

        r = varlink_build_call(method, params, false, &msg, &len);
        if (r < 0) {
                pam_syslog(pamh, LOG_ERR, "Cannot build the %s call: %s", method, strerror(-r));
                return CALL_UNREACHABLE;
        }
        r = varlink_call_sync(fd, msg, len, deadline, &reply);
        if (r < 0) {
                pam_syslog(pamh, LOG_ERR, "%s: no answer from vleased: %s", method,
                           r == -ETIMEDOUT ? "timed out" : strerror(-r));
                return CALL_UNREACHABLE;
        }
        if (reply.error) {
                *ret_error = TAKE_PTR(reply.error);
                *ret_params = json_object_get(reply.parameters);
                varlink_reply_done(&reply);
                return CALL_ERROR;
        }
        *ret_params = json_object_get(reply.parameters);
        varlink_reply_done(&reply);
        return CALL_OK;
}

static const char *error_short(const char *error) {
        const char *dot = error ? strrchr(error, '.') : NULL;

        return dot ? dot + 1 : (error ?: "?");
}

static const char *param_string(json_object *params, const char *key) {
        json_object *v;

        if (params && json_object_object_get_ex(params, key, &v) && json_object_is_type(v, json_type_string))
                return json_object_get_string(v);
        return NULL;
}

static int add_string(json_object *o, const char *key, const char *value) {
        json_object *v;

        if (!value)
                return 0;
        v = json_object_new_string(value);
        if (!v || json_object_object_add(o, key, v) < 0) {
                json_object_put(v);
                return -ENOMEM;
        }
        return 0;
}

static int get_item_string(pam_handle_t *pamh, int item, const char **ret) {
        const void *v = NULL;

        if (pam_get_item(pamh, item, &v) != PAM_SUCCESS)
                v = NULL;
        *ret = v;
        return 0;
}

/* ---- session ---- */

_public_ PAM_EXTERN int pam_sm_open_session(pam_handle_t *pamh, int flags, int argc, const char **argv) {
        _cleanup_close_ int fd = -1;
        json_object *params = NULL, *reply = NULL, *prov;
        const char *user = NULL, *service = NULL, *tty = NULL, *rhost = NULL, *id;
        _cleanup_free_ char *error = NULL;
        usec_t deadline, n, left, wait;
        SessionData *d;
        CallResult cr;
        Args args;
        int r, ret = PAM_SESSION_ERR;

        parse_argv(pamh, argc, argv, &args);
        deadline = usec_add(now(CLOCK_MONOTONIC), args.timeout_usec);

        r = pam_get_user(pamh, &user, NULL);
        if (r != PAM_SUCCESS || !user || !*user) {
                pam_syslog(pamh, LOG_ERR, "Cannot get the user name: %s", pam_strerror(pamh, r));
                return PAM_SESSION_ERR;
        }
        (void) get_item_string(pamh, PAM_SERVICE, &service);
        (void) get_item_string(pamh, PAM_TTY, &tty);
        (void) get_item_string(pamh, PAM_RHOST, &rhost);

        if (broker_connect(pamh, &args, deadline, &fd, &cr) < 0)
                return PAM_SESSION_ERR;

        /* Leave the broker room to answer before our own deadline: it waits for provisioning at most
         * wait_usec, whatever is not done by then goes on in the background. */
        n = now(CLOCK_MONOTONIC);
        left = deadline > n ? deadline - n : 0;
        wait = left - MIN(left, MAX(left / 5, 200 * USEC_PER_MSEC));

        params = json_object_new_object();
        if (!params || add_string(params, "user", user) < 0 || add_string(params, "service", service) < 0 ||
            add_string(params, "tty", tty) < 0 || add_string(params, "rhost", rhost) < 0 ||
            json_object_object_add(params, "wait_usec", json_object_new_int64((int64_t) wait)) < 0) {
                json_object_put(params);
                pam_syslog(pamh, LOG_CRIT, "Out of memory.");
                return PAM_BUF_ERR;
        }
        cr = broker_call(pamh, fd, INTERFACE ".OpenSession", params, deadline, &reply, &error);
        json_object_put(params);

        if (cr == CALL_ERROR) {
                pam_syslog(pamh, LOG_ERR, "vleased refused the session of %s: %s", user, error_short(error));
                goto finish;
        }
        if (cr != CALL_OK)
                goto finish;

        id = param_string(reply, "session");
        if (!id || !*id) {
                pam_syslog(pamh, LOG_ERR, "vleased answered OpenSession without a session id.");
                goto finish;
        }

        d = calloc(1, sizeof(*d));
        if (!d || !(d->id = strdup(id))) {
                free(d);
                ret = PAM_BUF_ERR;
                goto finish;
        }
        d->fd = TAKE_FD(fd);
        d->pid = getpid();
        r = pam_set_data(pamh, DATA_SESSION, d, session_data_cleanup);
        if (r != PAM_SUCCESS) {
                session_data_cleanup(pamh, d, 0);
                pam_syslog(pamh, LOG_ERR, "Cannot keep the session's state: %s", pam_strerror(pamh, r));
                ret = PAM_SESSION_ERR;
                goto finish;
        }

        if (args.debug) {
                size_t np = 0;

                if (json_object_object_get_ex(reply, "provisioned", &prov) && json_object_is_type(prov, json_type_array))
                        np = json_object_array_length(prov);
                pam_syslog(pamh, LOG_DEBUG, "Session %.8s… of %s opened, %zu credentials ready.", id, user, np);
        }
        ret = PAM_SUCCESS;

finish:
        json_object_put(reply);
        return ret;
}

_public_ PAM_EXTERN int pam_sm_close_session(pam_handle_t *pamh, int flags, int argc, const char **argv) {
        _cleanup_close_ int own_fd = -1;
        json_object *params = NULL, *reply = NULL;
        _cleanup_free_ char *error = NULL;
        const void *v = NULL;
        const SessionData *d;
        usec_t deadline;
        CallResult cr;
        Args args;
        int fd, ret;

        parse_argv(pamh, argc, argv, &args);
        deadline = usec_add(now(CLOCK_MONOTONIC), args.timeout_usec);

        if (pam_get_data(pamh, DATA_SESSION, &v) != PAM_SUCCESS || !v) {
                /* Nothing was opened by this handle (open failed, or a stack closes what it never
                 * opened): nothing to do. */
                if (args.debug)
                        pam_syslog(pamh, LOG_DEBUG, "No session was opened by this handle, nothing to close.");
                return PAM_SUCCESS;
        }
        d = v;

        /* The kept connection, when it is ours (not a forked copy's) and still works; else a new one,
         * authorised by the broker as root or as the session's own user. */
        fd = d->pid == getpid() ? d->fd : -1;
        params = json_object_new_object();
        if (!params || add_string(params, "session", d->id) < 0) {
                json_object_put(params);
                return PAM_BUF_ERR;
        }
        cr = fd >= 0 ? broker_call(pamh, fd, INTERFACE ".CloseSession", params, deadline, &reply, &error)
                     : CALL_UNREACHABLE;
        if (cr == CALL_UNREACHABLE) {
                free(error);
                error = NULL;
                json_object_put(reply);
                reply = NULL;
                if (broker_connect(pamh, &args, deadline, &own_fd, &cr) >= 0)
                        cr = broker_call(pamh, own_fd, INTERFACE ".CloseSession", params, deadline, &reply, &error);
        }
        json_object_put(params);

        switch (cr) {
        case CALL_OK:
                ret = PAM_SUCCESS;
                break;
        case CALL_ERROR:
                if (strcmp(error, INTERFACE ".NoSuchSession") == 0) {
                        /* already ended (the broker restarted, or the session's connection was lost) */
                        pam_syslog(pamh, LOG_INFO, "Session %.8s… was already ended by vleased.", d->id);
                        ret = PAM_SUCCESS;
                } else {
                        pam_syslog(pamh, LOG_ERR, "vleased refused to close session %.8s…: %s", d->id,
                                   error_short(error));
                        ret = PAM_SESSION_ERR;
                }
                break;
        default:
                ret = PAM_SESSION_ERR;
                break;
        }
        json_object_put(reply);

        /* Drop the state either way: closing the kept connection ends the session on the broker's
         * side too, so even an unanswered close is not left dangling. */
        (void) pam_set_data(pamh, DATA_SESSION, NULL, NULL);
        if (args.debug && ret == PAM_SUCCESS)
                pam_syslog(pamh, LOG_DEBUG, "Session closed.");
        return ret;
}

/* ---- auth ---- */

static int user_exists(pam_handle_t *pamh, const char *user) {
        return pam_modutil_getpwnam(pamh, user) != NULL;
}

_public_ PAM_EXTERN int pam_sm_authenticate(pam_handle_t *pamh, int flags, int argc, const char **argv) {
        _cleanup_close_ int fd = -1;
        json_object *params = NULL, *reply = NULL, *pw;
        _cleanup_free_ char *error = NULL;
        const char *user = NULL, *password = NULL;
        usec_t deadline;
        CallResult cr;
        Args args;
        int r;

        parse_argv(pamh, argc, argv, &args);

        r = pam_get_user(pamh, &user, NULL);
        if (r != PAM_SUCCESS || !user || !*user) {
                pam_syslog(pamh, LOG_ERR, "Cannot get the user name: %s", pam_strerror(pamh, r));
                return r == PAM_CONV_AGAIN ? PAM_INCOMPLETE : PAM_USER_UNKNOWN;
        }
        if (!user_exists(pamh, user)) {
                pam_syslog(pamh, LOG_NOTICE, "No local user '%s'.", user);
                return PAM_USER_UNKNOWN;
        }

        r = pam_get_authtok(pamh, PAM_AUTHTOK, &password, NULL);
        if (r != PAM_SUCCESS) {
                if (r != PAM_CONV_AGAIN)
                        pam_syslog(pamh, LOG_ERR, "Cannot get the password of %s: %s", user, pam_strerror(pamh, r));
                return r == PAM_CONV_AGAIN ? PAM_INCOMPLETE : PAM_AUTHINFO_UNAVAIL;
        }
        if (!password || !*password) {
                /* Vault has no empty passwords; do not send the attempt anywhere */
                pam_syslog(pamh, LOG_NOTICE, "Empty password for %s refused.", user);
                return PAM_AUTH_ERR;
        }

        /* The deadline starts after the prompt: the user's typing is not the broker's time. */
        deadline = usec_add(now(CLOCK_MONOTONIC), args.timeout_usec);
        if (broker_connect(pamh, &args, deadline, &fd, &cr) < 0)
                return PAM_AUTHINFO_UNAVAIL;

        params = json_object_new_object();
        if (!params || add_string(params, "user", user) < 0 || add_string(params, "password", password) < 0) {
                json_object_wipe(params);
                json_object_put(params);
                return PAM_BUF_ERR;
        }
        cr = broker_call(pamh, fd, INTERFACE ".Login", params, deadline, &reply, &error);
        if (json_object_object_get_ex(params, "password", &pw))
                json_object_wipe(pw);
        json_object_put(params);

        switch (cr) {
        case CALL_OK:
                json_object_put(reply);
                if (args.debug)
                        pam_syslog(pamh, LOG_DEBUG, "Vault login of %s succeeded.", user);
                return PAM_SUCCESS;
        case CALL_ERROR:
                break;
        default:
                return PAM_AUTHINFO_UNAVAIL;
        }
        json_object_put(reply);

        if (strcmp(error, INTERFACE ".AuthenticationFailed") == 0) {
                pam_syslog(pamh, LOG_NOTICE, "Vault login of %s failed: wrong user name or password.", user);
                return PAM_AUTH_ERR;
        }
        if (strcmp(error, INTERFACE ".NoSuchUser") == 0) {
                pam_syslog(pamh, LOG_NOTICE, "vleased knows no user '%s'.", user);
                return PAM_USER_UNKNOWN;
        }
        if (strcmp(error, INTERFACE ".VaultUnavailable") == 0 || strcmp(error, INTERFACE ".VaultError") == 0 ||
            strcmp(error, INTERFACE ".TooManyRequests") == 0) {
                pam_syslog(pamh, LOG_ERR, "Vault login of %s not possible now: %s", user, error_short(error));
                return PAM_AUTHINFO_UNAVAIL;
        }
        if (strcmp(error, INTERFACE ".PermissionDenied") == 0) {
                pam_syslog(pamh, LOG_ERR, "vleased refused the login call (the module must run as root).");
                return PAM_AUTHINFO_UNAVAIL;
        }
        pam_syslog(pamh, LOG_ERR, "Unexpected answer from vleased to Login: %s", error_short(error));
        return PAM_SERVICE_ERR;
}

_public_ PAM_EXTERN int pam_sm_setcred(pam_handle_t *pamh, int flags, int argc, const char **argv) {
        /* The Vault token stays with the broker: there are no credentials to set here. */
        return PAM_SUCCESS;
}
