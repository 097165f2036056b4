/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * vleased: the per-host credential broker.
 *
 * The process holds secrets, so before anything else it makes itself non-dumpable (no core file,
 * no ptrace by the same uid) and sets a umask that keeps whatever it creates private. Sockets come
 * from systemd (fd names "varlink" and "credentials") or, with --listen DIR, are bound here.
 */

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "broker/config.h"
#include "broker/log.h"
#include "broker/manager.h"
#include "broker/policy.h"
#include "broker/restart.h"
#include "common/memory-util.h"

static const char *arg_config = VLEASE_CONFIG_PATH;
static const char *arg_listen = NULL;
static bool arg_check_config = false;
static const char *arg_state_dir = NULL;

static void help(void) {
        printf("%s [OPTIONS...]\n\n"
               "Per-host credential broker for HashiCorp Vault and OpenBao.\n\n"
               "  -h --help            Show this help\n"
               "     --version         Show the version\n"
               "  -c --config FILE     Configuration file (default: %s), then FILE.d/*.conf\n"
               "  -l --listen DIR      Bind DIR/io.vlease.Broker and DIR/credentials instead of\n"
               "                       taking the sockets from systemd\n"
               "     --state-dir DIR   Keep the lease table in DIR (default: $STATE_DIRECTORY,\n"
               "                       else /var/lib/vlease if it exists)\n"
               "     --check-config    Validate the configuration and exit\n",
               program_invocation_short_name, VLEASE_CONFIG_PATH);
}

static int parse_argv(int argc, char *argv[]) {
        enum {
                ARG_VERSION = 0x100,
                ARG_CHECK_CONFIG,
                ARG_STATE_DIR,
        };
        static const struct option options[] = {
                { "help",         no_argument,       NULL, 'h'              },
                { "version",      no_argument,       NULL, ARG_VERSION      },
                { "config",       required_argument, NULL, 'c'              },
                { "listen",       required_argument, NULL, 'l'              },
                { "check-config", no_argument,       NULL, ARG_CHECK_CONFIG },
                { "state-dir",    required_argument, NULL, ARG_STATE_DIR    },
                {}
        };
        int c;

        while ((c = getopt_long(argc, argv, "hc:l:", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        printf("vleased %s\n", VLEASE_VERSION);
                        return 0;
                case 'c':
                        arg_config = optarg;
                        break;
                case 'l':
                        arg_listen = optarg;
                        break;
                case ARG_CHECK_CONFIG:
                        arg_check_config = true;
                        break;
                case ARG_STATE_DIR:
                        arg_state_dir = optarg;
                        break;
                case '?':
                        return -EINVAL;
                default:
                        abort();
                }

        if (optind < argc) {
                log_error("%s takes no arguments.", program_invocation_short_name);
                return -EINVAL;
        }
        return 1;
}

static int bind_unix(const char *dir, const char *name, mode_t mode, int *ret) {
        _cleanup_close_ int fd = -1;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int r;

        r = snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/%s", dir, name);
        if (r < 0 || (size_t) r >= sizeof(sa.sun_path))
                return log_error_errno(ENAMETOOLONG, "Socket path %s/%s is too long.", dir, name);

        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return log_error_errno(errno, "Failed to create a socket: %m");

        /* A node someone still answers on is another broker's, not a stale one: taking it over would
         * leave that broker running, unreachable, and remove the node from under it at exit. */
        {
                _cleanup_close_ int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

                if (probe >= 0 && (connect(probe, (struct sockaddr *) &sa, sizeof(sa)) >= 0 || errno == EAGAIN))
                        return log_error_errno(EADDRINUSE, "Another process is listening on %s: refusing to "
                                               "start.", sa.sun_path);
        }
        if (unlink(sa.sun_path) < 0 && errno != ENOENT)
                return log_error_errno(errno, "Failed to remove stale %s: %m", sa.sun_path);
        if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                return log_error_errno(errno, "Failed to bind %s: %m", sa.sun_path);
        if (chmod(sa.sun_path, mode) < 0)
                return log_error_errno(errno, "Failed to set the mode of %s: %m", sa.sun_path);
        if (listen(fd, SOMAXCONN) < 0)
                return log_error_errno(errno, "Failed to listen on %s: %m", sa.sun_path);

        log_debug("Listening on %s.", sa.sun_path);
        *ret = TAKE_FD(fd);
        return 0;
}

/* The fd store's memfds from the previous process (restart.c). */
static int stored_fds[16];
static size_t n_stored_fds;

static int sockets_from_systemd(int *ret_varlink, int *ret_credentials) {
        _cleanup_strv_free_ char **names = NULL;
        int n, varlink = -1, credentials = -1;

        n = sd_listen_fds_with_names(true, &names);
        if (n < 0)
                return log_error_errno(n, "Failed to receive sockets from systemd: %m");
        if (n == 0)
                return log_error_errno(EBADF, "No sockets passed by systemd; use --listen DIR to run by hand.");

        for (int i = 0; i < n; i++) {
                int fd = SD_LISTEN_FDS_START + i;
                const char *name = names && names[i] ? names[i] : "";

                if (strncmp(name, RESTART_FDNAME_PREFIX, strlen(RESTART_FDNAME_PREFIX)) == 0) {
                        if (n_stored_fds < ELEMENTSOF(stored_fds))
                                stored_fds[n_stored_fds++] = fd;
                        else
                                safe_close(fd);
                        continue;
                }
                if (sd_is_socket_unix(fd, SOCK_STREAM, 1, NULL, 0) <= 0) {
                        log_warning("Passed fd %i (%s) is not a listening stream socket: ignoring.", fd, name);
                        continue;
                }
                if (strcmp(name, "varlink") == 0 && varlink < 0)
                        varlink = fd;
                else if (strcmp(name, "credentials") == 0 && credentials < 0)
                        credentials = fd;
                else
                        log_warning("Ignoring passed socket fd %i named '%s'.", fd, name);
        }
        if (varlink < 0)
                return log_error_errno(EBADF, "No socket named 'varlink' passed by systemd.");

        *ret_varlink = varlink;
        *ret_credentials = credentials;
        return 0;
}

static int load_config(Config **ret) {
        _cleanup_(config_freep) Config *c = NULL;
        _cleanup_free_ char *error = NULL;
        _cleanup_strv_free_ char **unknown = NULL;
        int r;

        r = config_load(arg_config, &c, &error);
        if (r < 0) {
                if (error)      /* names the file (and line): say it once */
                        return log_error_errno(r, "%s", error);
                return log_error_errno(r, "Failed to load %s: %m", arg_config);
        }

        r = policy_resolve(c, &unknown);
        if (r < 0)
                return log_error_errno(r, "Failed to resolve the users and groups in %s: %m", arg_config);
        for (char **u = unknown; u && *u; u++)
                log_warning("%s: %s", arg_config, *u);

        *ret = TAKE_PTR(c);
        return 0;
}

/* Every connection is a file descriptor and root alone may hold max_connections_root of them: raise
 * the soft limit to the hard one, as systemd does for itself (sd-event uses epoll, not select). */
static void bump_nofile_limit(void) {
        struct rlimit rl;

        if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= rl.rlim_max)
                return;
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
                log_debug_errno(errno, "Failed to raise RLIMIT_NOFILE, ignoring: %m");
}

/* With --listen the sockets are ours: remove them on exit, so clients get "no such file" rather than
 * "connection refused" from a stale node. */
static void unlink_listen_sockets(void) {
        char p[PATH_MAX];

        if (!arg_listen)
                return;
        if (snprintf(p, sizeof(p), "%s/io.vlease.Broker", arg_listen) < (int) sizeof(p))
                (void) unlink(p);
        if (snprintf(p, sizeof(p), "%s/credentials", arg_listen) < (int) sizeof(p))
                (void) unlink(p);
}

static int run(int argc, char *argv[]) {
        _cleanup_(manager_freep) Manager *m = NULL;
        _cleanup_free_ char *error = NULL;
        Config *config = NULL;
        const char *state_dir;
        int varlink = -1, credentials = -1, r;
        sigset_t ss;

        log_setup();
        (void) prctl(PR_SET_DUMPABLE, 0);
        umask(0077);

        r = parse_argv(argc, argv);
        if (r <= 0)
                return r;

        r = load_config(&config);
        if (r < 0)
                return r;

        /* --check-config reads the login secrets too: a config is only good if the daemon can start. */
        r = config_load_secrets(config, getenv("CREDENTIALS_DIRECTORY"), &error);
        if (r < 0) {
                config_free(config);
                if (error)      /* names the file */
                        return log_error_errno(r, "%s", error);
                return log_error_errno(r, "Failed to read the broker's Vault login secrets: %m");
        }
        if (arg_check_config) {
                config_free(config);
                printf("%s: OK\n", arg_config);
                return 0;
        }

        bump_nofile_limit();
        (void) signal(SIGPIPE, SIG_IGN);
        sigemptyset(&ss);
        sigaddset(&ss, SIGTERM);
        sigaddset(&ss, SIGINT);
        sigaddset(&ss, SIGHUP);
        (void) sigprocmask(SIG_BLOCK, &ss, NULL);

        r = manager_new(config, &m);
        if (r < 0)
                return r;

        if (arg_listen) {
                if (mkdir(arg_listen, 0755) < 0 && errno != EEXIST)
                        return log_error_errno(errno, "Failed to create %s: %m", arg_listen);
                r = bind_unix(arg_listen, "io.vlease.Broker", 0666, &varlink);
                if (r < 0)
                        return r;
                r = bind_unix(arg_listen, "credentials", 0600, &credentials);
                if (r < 0) {
                        safe_close(varlink);
                        return r;
                }
                r = manager_listen(m, varlink, credentials, true);
        } else {
                r = sockets_from_systemd(&varlink, &credentials);
                if (r < 0)
                        return r;
                r = manager_listen(m, varlink, credentials, false);
        }
        if (r < 0)
                return r;

        state_dir = arg_state_dir ?: getenv("STATE_DIRECTORY");
        if (!state_dir && access("/var/lib/vlease", W_OK) >= 0)
                state_dir = "/var/lib/vlease";
        if (!state_dir)
                log_notice("No state directory: leases are not handed over to the next start.");
        r = restart_new(m, state_dir, &m->restart);
        if (r == -ENOMEM)
                return log_oom();
        if (r < 0)
                return r;       /* logged */
        (void) restart_load(m, stored_fds, n_stored_fds);
        n_stored_fds = 0;

        r = manager_start(m);
        if (r < 0)
                return r;

        r = sd_event_loop(m->event);
        if (r < 0)
                return log_error_errno(r, "Event loop failed: %m");
        /* the final table and secrets for the next start; make sure PID 1 has them before we go */
        (void) restart_save(m);
        (void) sd_notify_barrier(false, 5 * USEC_PER_SEC);
        unlink_listen_sockets();
        log_info("Stopped.");
        return r;
}

int main(int argc, char *argv[]) {
        int r;

        r = run(argc, argv);
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
