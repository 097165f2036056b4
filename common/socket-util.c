/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Client side of the broker socket, for the vlease client and the PAM module: blocking calls bounded by
 * poll() deadlines, MSG_NOSIGNAL because the host process (sshd, login) may not ignore SIGPIPE, and
 * the mutual check: the peer must be root or the broker's own user, so that nobody who managed to
 * bind the socket path can collect passwords or hand out fake credentials.
 */

#include <errno.h>
#include <poll.h>
#include <pwd.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>

#include "common/memory-util.h"
#include "common/peercred.h"
#include "common/socket-util.h"

static int wait_fd(int fd, short events, usec_t deadline) {
        for (;;) {
                struct pollfd p = { .fd = fd, .events = events };
                usec_t n = now(CLOCK_MONOTONIC);
                int timeout, r;

                if (deadline == USEC_INFINITY)
                        timeout = -1;
                else if (n >= deadline)
                        return -ETIMEDOUT;
                else
                        timeout = (int) MIN((deadline - n + USEC_PER_MSEC - 1) / USEC_PER_MSEC, (usec_t) INT32_MAX);

                r = poll(&p, 1, timeout);
                if (r < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (r == 0)
                        continue;       /* loop re-checks the deadline */
                if (p.revents & POLLNVAL)
                        return -EBADF;
                return 0;
        }
}

/**
 * connect_unix() - connect a stream socket to an AF_UNIX path
 * @path: socket path (absolute or relative)
 * @timeout_usec: how long to wait if the listen backlog is full, USEC_INFINITY for ever
 *
 * Return: a blocking, close-on-exec fd, or a negative errno (-ENAMETOOLONG, -ENOENT, -ECONNREFUSED,
 * -ETIMEDOUT, ...)
 */
int connect_unix(const char *path, usec_t timeout_usec) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_close_ int fd = -1;
        size_t l;

        l = strlen(path);
        if (l == 0)
                return -EINVAL;
        if (l >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        memcpy(sa.sun_path, path, l);

        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return negative_errno();

        /* AF_UNIX connect() blocks while the listen backlog is full, for at most SO_SNDTIMEO. */
        if (timeout_usec != USEC_INFINITY) {
                struct timeval tv = {
                        .tv_sec = (time_t) MIN(timeout_usec / USEC_PER_SEC, (usec_t) INT32_MAX),
                        .tv_usec = (suseconds_t) (timeout_usec % USEC_PER_SEC),
                };

                if (tv.tv_sec == 0 && tv.tv_usec == 0)
                        tv.tv_usec = 1;
                if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0)
                        return negative_errno();
        }

        for (;;) {
                if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) >= 0)
                        break;
                if (errno == EINTR)
                        continue;
                if (errno == EAGAIN || errno == EINPROGRESS)
                        return -ETIMEDOUT;
                return negative_errno();
        }

        if (timeout_usec != USEC_INFINITY) {
                struct timeval tv = {};

                if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0)
                        return negative_errno();
        }

        return TAKE_FD(fd);
}

/**
 * send_all() - send a whole buffer, without SIGPIPE, before a deadline
 * @fd: connected socket
 * @buf: bytes
 * @len: their number
 * @deadline: CLOCK_MONOTONIC instant, USEC_INFINITY for none
 *
 * Return: 0, -ETIMEDOUT, -EPIPE or another negative errno
 */
int send_all(int fd, const void *buf, size_t len, usec_t deadline) {
        const char *p = buf;
        int r;

        while (len > 0) {
                ssize_t n;

                r = wait_fd(fd, POLLOUT, deadline);
                if (r < 0)
                        return r;

                n = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n < 0) {
                        if (errno == EINTR || errno == EAGAIN)
                                continue;
                        return negative_errno();
                }
                p += n;
                len -= (size_t) n;
        }
        return 0;
}

/**
 * varlink_call_sync() - send one call and wait for its reply
 * @fd: connected socket
 * @msg: the call's wire bytes
 * @len: their number, the NUL included
 * @deadline: CLOCK_MONOTONIC instant for the whole exchange, USEC_INFINITY for none
 * @ret: the reply (it may be an error reply); release with varlink_reply_done()
 *
 * Bytes that follow the reply are ignored; a reply with "continues" is returned as is. The receive
 * buffer is wiped, since replies carry secrets.
 *
 * Return: 0, -ETIMEDOUT, -ECONNRESET when the broker closed without a reply, -E2BIG for a reply above
 * VARLINK_REPLY_MAX, -EBADMSG for a malformed reply, or another negative errno
 */
int varlink_call_sync(int fd, const char *msg, size_t len, usec_t deadline, VarlinkReply *ret) {
        VarlinkReader reader;
        int r;

        r = send_all(fd, msg, len, deadline);
        if (r < 0)
                return r;

        varlink_reader_init(&reader, VARLINK_REPLY_MAX);
        for (;;) {
                const char *m;
                size_t ml;
                ssize_t n;

                r = varlink_reader_next(&reader, &m, &ml);
                if (r < 0)
                        break;
                if (r > 0) {
                        r = varlink_parse_reply(m, ml, ret);
                        break;
                }

                r = wait_fd(fd, POLLIN, deadline);
                if (r < 0)
                        break;

                n = varlink_reader_read(&reader, fd);
                if (n == -EAGAIN)
                        continue;
                if (n < 0) {
                        r = (int) n;
                        break;
                }
                if (n == 0) {
                        r = -ECONNRESET;
                        break;
                }
        }

        varlink_reader_done(&reader);
        return r;
}

/**
 * lookup_broker_uid() - uid of the system user VLEASE_BROKER_USER
 * @ret: the uid
 *
 * Return: 0, -ESRCH when there is no such user, or another negative errno
 */
int lookup_broker_uid(uid_t *ret) {
        struct passwd pw, *res = NULL;
        char buf[4096];
        int r;

        r = getpwnam_r(VLEASE_BROKER_USER, &pw, buf, sizeof(buf), &res);
        if (r != 0)
                return -r;
        if (!res)
                return -ESRCH;
        *ret = res->pw_uid;
        return 0;
}

/**
 * socket_peer_is_broker() - the mutual check: is the peer root or the broker's user?
 * @fd: connected socket
 * @broker_uid: the broker user's uid, (uid_t) -1 to accept root only
 *
 * Return: 1 if the peer is uid 0 or @broker_uid, 0 if it is someone else, or a negative errno
 */
int socket_peer_is_broker(int fd, uid_t broker_uid) {
        struct ucred u;
        int r;

        r = getpeercred(fd, &u);
        if (r < 0)
                return r;
        if (u.uid == 0)
                return 1;
        return broker_uid != (uid_t) -1 && u.uid == broker_uid;
}
