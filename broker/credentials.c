/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Serving LoadCredential=ID:/run/vlease/credentials.
 *
 * systemd, starting a unit, connects from the unit's own cgroup as root after binding the abstract
 * address "\0<random hex>/unit/<unit>/<id>", shuts down its write side and reads until EOF; what it
 * read becomes $CREDENTIALS_DIRECTORY/<id>. Nothing else identifies the request, and the address is
 * only a claim (any process may bind any abstract name), so a connection is served only when:
 *   - the address has exactly systemd's shape (credential_peer_address_parse());
 *   - the peer's SO_PEERCRED uid is 0 (systemd's exec child, before it drops privileges);
 *   - the peer process is in the cgroup of the unit it names. The process is pinned by its pidfd
 *     (SO_PEERPIDFD, taken by the kernel at connect(); pidfd_open() of the SO_PEERCRED pid where the
 *     kernel lacks it), its /proc/PID/cgroup is read, and the pidfd's pid is read again afterwards: if
 *     it changed or the process is gone, the cgroup read may have been another process's;
 *   - the credential exists and its allow_units names the unit.
 *
 * The answer is the credential's `format` rendering, or its `data` as JSON, written without blocking
 * the loop (the fd is non-blocking, writes are driven by EPOLLOUT, a deadline ends a stuck peer).
 *
 * Refusing is harder than it looks: a clean close gives the unit an EMPTY credential and lets it start
 * (field-failures B23; SO_LINGER 0 does not reset an AF_UNIX connection). systemd reads socket sources
 * with READ_FULL_FILE_FAIL_WHEN_LARGER and a 1 MiB limit (CREDENTIAL_SIZE_MAX), and fails credential
 * setup with E2BIG when a source sends more: the unit then fails with 243/CREDENTIALS and does not run
 * (measured with systemd 252, which logs "Failed to set up credentials: Protocol error" because the
 * E2BIG happens in its credential-loading child; tests/system/test_40_credentials.py).
 * So a refusal sends CREDENTIAL_SIZE_MAX + 1 bytes of filler that can never be mistaken for a
 * credential, and every refusal is logged with its reason. An answer that would itself exceed the
 * limit is refused the same way rather than truncated.
 */

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <json-c/json.h>
#include <systemd/sd-event.h>

#include "broker/config.h"
#include "broker/credentials.h"
#include "broker/lease.h"
#include "broker/listen.h"
#include "broker/log.h"
#include "broker/manager.h"
#include "broker/policy.h"
#include "broker/unit-util.h"
#include "broker/unit-watch.h"
#include "common/list.h"
#include "common/memory-util.h"

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif

/* From accept to the last byte: covers a Vault read (its own timeout is 30 s by default). */
#define CREDENTIAL_DEADLINE_USEC (60 * USEC_PER_SEC)
/* Connections served at once; more wait in the listen backlog. */
#define CREDENTIAL_CONNS_MAX 256U
#define FILLER_SIZE (CREDENTIAL_SIZE_MAX + 1)

struct CredentialConn {
        Manager *manager;
        CredentialConn *prev, *next;

        int fd;
        pid_t pid;
        char *unit;
        char *cgroup;
        char *id;
        sd_event_source *io_source;
        sd_event_source *deadline;
        LeaseWaiter *waiter;

        char *out;              /* the answer (wiped on free), or NULL while refusing */
        size_t out_size;
        size_t written;
        size_t filler_left;     /* refusing: bytes of filler still to send */
};

static void conn_update_listen(Manager *m) {
        if (m->credentials_source)
                (void) sd_event_source_set_enabled(m->credentials_source,
                                                   m->n_credential_conns < CREDENTIAL_CONNS_MAX && !m->stopping
                                                   ? SD_EVENT_ON : SD_EVENT_OFF);
}

/**
 * credential_conn_free() - close one LoadCredential= connection, wiping what was not sent
 *
 * Return: NULL
 */
CredentialConn *credential_conn_free(CredentialConn *c) {
        Manager *m;

        if (!c)
                return NULL;
        m = c->manager;
        LIST_REMOVE(m->credential_conns, c);
        m->n_credential_conns--;

        lease_waiter_cancel(c->waiter);
        sd_event_source_disable_unref(c->io_source);
        sd_event_source_disable_unref(c->deadline);
        safe_close(c->fd);
        if (c->out)
                explicit_bzero_safe(c->out, c->out_size);
        free(c->out);
        free(c->unit);
        free(c->cgroup);
        free(c->id);
        free(c);

        conn_update_listen(m);
        manager_update_status(m);
        return NULL;
}

void credentials_free_all(Manager *m) {
        while (m->credential_conns)
                credential_conn_free(m->credential_conns);
}

/* Writes as much as the socket takes. Return: 1 done, 0 to be continued, negative errno: give up. */
static int conn_write(CredentialConn *c) {
        static const char filler[16384] = { [0 ... 16383] = '\n' };

        for (;;) {
                const void *p;
                size_t n;
                ssize_t k;

                if (c->out) {
                        if (c->written >= c->out_size)
                                return 1;
                        p = c->out + c->written;
                        n = c->out_size - c->written;
                } else {
                        if (c->filler_left == 0)
                                return 1;
                        p = filler;
                        n = MIN(c->filler_left, sizeof(filler));
                }
                k = send(c->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (k < 0) {
                        if (errno == EAGAIN || errno == EINTR)
                                return 0;
                        return -errno;
                }
                if (c->out)
                        c->written += (size_t) k;
                else
                        c->filler_left -= (size_t) k;
        }
}

static void conn_run(CredentialConn *c) {
        int r;

        r = conn_write(c);
        if (r == 0) {
                (void) sd_event_source_set_enabled(c->io_source, SD_EVENT_ON);
                return;
        }
        if (r < 0 && !c->out && (r == -EPIPE || r == -ECONNRESET))
                /* systemd stops reading past its limit and closes: the refusal worked */
                log_debug("Unit %s: systemd hung up on the refusal, as intended.", c->unit ?: "?");
        else if (r < 0)
                log_warning_errno(r, "Unit %s: failed to send credential '%s': %m", c->unit ?: "?", c->id ?: "?");
        else if (c->out)
                log_info("Unit %s: handed out credential '%s'.", c->unit, c->id);
        credential_conn_free(c);
}

static int on_conn_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        CredentialConn *c = userdata;

        (void) sd_event_source_set_enabled(s, SD_EVENT_OFF);
        conn_run(c);
        return 0;
}

/* Refuse: make systemd fail the unit instead of starting it with an empty credential. */
static void conn_refuse(CredentialConn *c) {
        if (c->out) {
                explicit_bzero_safe(c->out, c->out_size);
                free(c->out);
                c->out = NULL;
        }
        c->filler_left = FILLER_SIZE;
        conn_run(c);
}

static int on_conn_deadline(sd_event_source *s, uint64_t usec, void *userdata) {
        CredentialConn *c = userdata;

        if (c->waiter) {
                /* Vault did not answer in time: refuse (with a fresh deadline for sending the filler) */
                log_warning("Unit %s: no answer for credential '%s' in time: refusing.", c->unit, c->id);
                lease_waiter_cancel(TAKE_PTR(c->waiter));
                c->deadline = sd_event_source_disable_unref(c->deadline);
                (void) sd_event_add_time_relative(c->manager->event, &c->deadline, CLOCK_MONOTONIC,
                                                  10 * USEC_PER_SEC, 0, on_conn_deadline, c);
                conn_refuse(c);
                return 0;
        }
        log_warning("Unit %s: the peer stopped reading credential '%s': closing.", c->unit ?: "?", c->id ?: "?");
        credential_conn_free(c);
        return 0;
}

static void on_lease_done(const char *error, json_object *params, void *userdata) {
        CredentialConn *c = userdata;
        json_object *cred, *v;
        const char *text = NULL;
        size_t len = 0;

        c->waiter = NULL;
        if (error) {
                json_object *reason = NULL;

                if (params && !json_object_object_get_ex(params, "reason", &reason))
                        (void) json_object_object_get_ex(params, "message", &reason);
                log_warning("Unit %s: refusing credential '%s': %s%s%s.", c->unit, c->id, error,
                            reason ? ": " : "", reason ? json_object_get_string(reason) : "");
                conn_refuse(c);
                return;
        }

        if (json_object_object_get_ex(params, "credential", &cred)) {
                if (json_object_object_get_ex(cred, "formatted", &v) && json_object_is_type(v, json_type_string)) {
                        text = json_object_get_string(v);
                        len = (size_t) json_object_get_string_len(v);
                } else if (json_object_object_get_ex(cred, "data", &v)) {
                        text = json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN);
                        len = text ? strlen(text) : 0;
                }
        }
        if (!text) {
                log_error("Unit %s: no data for credential '%s': refusing.", c->unit, c->id);
                conn_refuse(c);
                return;
        }
        if (len > CREDENTIAL_SIZE_MAX) {
                log_warning("Unit %s: credential '%s' is %zu bytes, over systemd's limit of %zu: refusing "
                            "rather than sending it truncated.", c->unit, c->id, len, CREDENTIAL_SIZE_MAX);
                conn_refuse(c);
                return;
        }
        c->out = malloc(MAX(len, 1U));
        if (!c->out) {
                log_oom();
                conn_refuse(c);
                return;
        }
        memcpy(c->out, text, len);
        c->out_size = len;
        /* the JSON text json-c printed is ours to wipe (the caller wipes the tree's strings) */
        if (!json_object_object_get_ex(cred, "formatted", &v))
                explicit_bzero_safe((char *) text, len);

        if (unit_watch(c->manager, c->unit, c->cgroup) < 0)
                log_warning("Unit %s: its lease of '%s' cannot be bound to it; it lives until it expires.",
                            c->unit, c->id);
        conn_run(c);
}

/* The pid a pidfd refers to, from /proc/self/fdinfo; 0 when the process is gone. */
static int pidfd_get_pid(int pidfd, pid_t *ret) {
        char path[64], buf[2048], *p;
        _cleanup_close_ int fd = -1;
        ssize_t n;

        (void) snprintf(path, sizeof(path), "/proc/self/fdinfo/%i", pidfd);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        n = read(fd, buf, sizeof(buf) - 1);
        if (n < 0)
                return -errno;
        buf[n] = 0;
        p = strstr(buf, "\nPid:");
        if (!p)
                return -EOPNOTSUPP;
        *ret = (pid_t) strtol(p + 5, NULL, 10);
        if (*ret < 0)
                *ret = 0;
        return 0;
}

static int read_small_file(const char *path, char *buf, size_t size) {
        _cleanup_close_ int fd = -1;
        size_t done = 0;
        ssize_t n;

        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        while (done < size - 1) {
                n = read(fd, buf + done, size - 1 - done);
                if (n < 0)
                        return -errno;
                if (n == 0)
                        break;
                done += (size_t) n;
        }
        buf[done] = 0;
        return 0;
}

/**
 * peer_unit() - the unit of the process at the other end of @fd, race-free against pid reuse
 * @ret_unit:   unit name
 * @ret_cgroup: its cgroup2 path
 * @ret_why:    a static reason on failure
 */
static int peer_unit(int fd, pid_t pid, char **ret_unit, char **ret_cgroup, const char **ret_why) {
        _cleanup_close_ int pidfd = -1;
        char path[64], text[4096];
        socklen_t sl = sizeof(int);
        pid_t p1 = 0, p2 = 0;
        int r;

        if (getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &sl) < 0) {
                pidfd = -1;
                if (errno != ENOPROTOOPT && errno != EINVAL && errno != ESRCH) {
                        *ret_why = "SO_PEERPIDFD failed";
                        return -errno;
                }
                /* older kernels: weaker, the pid might be reused before pidfd_open() */
                pidfd = (int) syscall(SYS_pidfd_open, pid, 0);
                if (pidfd < 0) {
                        *ret_why = "the peer process is gone";
                        return -errno;
                }
        }
        r = pidfd_get_pid(pidfd, &p1);
        if (r < 0 || p1 <= 0 || p1 != pid) {
                *ret_why = "the peer process is gone";
                return -ESRCH;
        }
        (void) snprintf(path, sizeof(path), "/proc/%i/cgroup", (int) p1);
        r = read_small_file(path, text, sizeof(text));
        if (r < 0) {
                *ret_why = "cannot read the peer's cgroup";
                return r;
        }
        r = pidfd_get_pid(pidfd, &p2);
        if (r < 0 || p2 != p1) {
                *ret_why = "the peer process went away while its cgroup was read";
                return -ESRCH;
        }
        r = cgroup_unit_from_proc(text, ret_unit, ret_cgroup);
        if (r < 0) {
                *ret_why = "the peer process is in no unit's cgroup";
                return r;
        }
        return 0;
}

/* Decides whether to serve; on refusal logs why. Return: 1 serve, 0 refused. */
static int conn_check(CredentialConn *c, const CredentialConfig **ret) {
        Manager *m = c->manager;
        struct sockaddr_un sa = {};
        socklen_t salen = sizeof(sa);
        struct ucred uc = {};
        socklen_t uclen = sizeof(uc);
        _cleanup_free_ char *real_unit = NULL;
        const CredentialConfig *cred;
        const char *why = NULL;
        int r;

        if (getsockopt(c->fd, SOL_SOCKET, SO_PEERCRED, &uc, &uclen) < 0 || uclen != sizeof(uc)) {
                log_warning_errno(errno, "LoadCredential= connection without peer credentials, refusing: %m");
                return 0;
        }
        c->pid = uc.pid;

        if (getpeername(c->fd, (struct sockaddr *) &sa, &salen) < 0 || salen > sizeof(sa) ||
            salen <= offsetof(struct sockaddr_un, sun_path)) {
                log_warning("LoadCredential= peer uid=%u pid=%u has no address: refusing (not systemd?).",
                            (unsigned) uc.uid, (unsigned) uc.pid);
                return 0;
        }
        r = credential_peer_address_parse(sa.sun_path, salen - offsetof(struct sockaddr_un, sun_path), &c->unit,
                                          &c->id);
        if (r < 0) {
                log_warning("LoadCredential= peer uid=%u pid=%u: address is not \"\\0RANDOM/unit/UNIT/ID\": "
                            "refusing (not systemd?).", (unsigned) uc.uid, (unsigned) uc.pid);
                return 0;
        }
        if (uc.uid != 0) {
                log_warning("Unit %s: refusing credential '%s' to peer uid=%u pid=%u: not root, so not the "
                            "system manager.", c->unit, c->id, (unsigned) uc.uid, (unsigned) uc.pid);
                return 0;
        }
        r = peer_unit(c->fd, uc.pid, &real_unit, &c->cgroup, &why);
        if (r < 0) {
                log_warning_errno(r, "Unit %s: refusing credential '%s' to pid=%u: %s: %m", c->unit, c->id,
                                  (unsigned) uc.pid, why);
                return 0;
        }
        if (strcmp(real_unit, c->unit) != 0) {
                log_warning("Unit %s: refusing credential '%s' to pid=%u: that process belongs to %s, not to "
                            "the unit its address names.", c->unit, c->id, (unsigned) uc.pid, real_unit);
                return 0;
        }
        cred = config_find_credential(m->config, c->id);
        if (!cred) {
                log_warning("Unit %s: refusing credential '%s': no such credential is configured.", c->unit, c->id);
                return 0;
        }
        if (!policy_allows_unit(cred, c->unit)) {
                log_warning("Permission denied: unit %s may not get credential '%s' (not in its allow_units).",
                            c->unit, c->id);
                return 0;
        }
        *ret = cred;
        return 1;
}

/**
 * credentials_accept() - accept and serve (or refuse) one LoadCredential= connection
 * @m: the manager
 * @s: the listening socket's event source (paused when out of file descriptors)
 * @listen_fd: the listening socket
 *
 * Return: 0 (failures are logged; the listening socket keeps being served)
 */
int credentials_accept(Manager *m, sd_event_source *s, int listen_fd) {
        const CredentialConfig *cred = NULL;
        CredentialConn *c;
        int fd, r;

        fd = listen_accept(s, listen_fd, "LoadCredential=");
        if (fd < 0)
                return 0;
        c = calloc(1, sizeof(*c));
        if (!c) {
                safe_close(fd);
                return log_oom(), 0;
        }
        c->manager = m;
        c->fd = fd;
        LIST_PREPEND(m->credential_conns, c);
        m->n_credential_conns++;
        conn_update_listen(m);

        r = sd_event_add_io(m->event, &c->io_source, fd, EPOLLOUT, on_conn_io, c);
        if (r >= 0)
                r = sd_event_source_set_enabled(c->io_source, SD_EVENT_OFF);
        if (r >= 0)
                r = sd_event_add_time_relative(m->event, &c->deadline, CLOCK_MONOTONIC, CREDENTIAL_DEADLINE_USEC,
                                               0, on_conn_deadline, c);
        if (r < 0) {
                log_error_errno(r, "Failed to set up a LoadCredential= connection: %m");
                credential_conn_free(c);
                return 0;
        }
        (void) sd_event_source_set_description(c->io_source, "credential-conn");
        manager_update_status(m);

        if (conn_check(c, &cred) <= 0) {
                conn_refuse(c);
                return 0;
        }

        log_debug("Unit %s (pid %u) asks for credential '%s'.", c->unit, (unsigned) c->pid, c->id);
        r = lease_get_unit(m, c->unit, c->cgroup, cred, on_lease_done, c, &c->waiter);
        if (r < 0) {
                log_error_errno(r, "Unit %s: failed to start fetching '%s': %m", c->unit, c->id);
                conn_refuse(c);
        }
        return 0;
}
