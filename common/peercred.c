/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Kernel peer credentials. SO_PEERCRED is snapshotted by the kernel at connect(), so it names who
 * connected, not who writes now; only uid and gid authorise, the pid is for logs.
 */

#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>

#include "common/macro.h"
#include "common/peercred.h"

/**
 * getpeercred() - the peer's SO_PEERCRED
 * @fd: connected AF_UNIX socket
 * @ret: the credentials
 *
 * Return: 0, -EIO if the kernel returned a short structure, or another negative errno
 */
int getpeercred(int fd, struct ucred *ret) {
        struct ucred u = {};
        socklen_t n = sizeof(u);

        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &u, &n) < 0)
                return negative_errno();
        if (n != sizeof(u))
                return -EIO;
        /* The kernel reports overflow ids when the peer is in another user namespace. */
        if (u.uid == (uid_t) -1 || u.gid == (gid_t) -1)
                return -ENODATA;

        *ret = u;
        return 0;
}

/**
 * getpeergroups() - the peer's supplementary groups (SO_PEERGROUPS)
 * @fd: connected AF_UNIX socket
 * @ret: newly allocated array, free() it; NULL when there are none
 * @ret_n: number of groups
 *
 * Return: 0 or a negative errno (-EOPNOTSUPP on kernels without SO_PEERGROUPS)
 */
int getpeergroups(int fd, gid_t **ret, size_t *ret_n) {
        socklen_t n = sizeof(gid_t) * 64;

        for (;;) {
                _cleanup_free_ gid_t *d = NULL;
                socklen_t m = n;

                d = malloc(n);
                if (!d)
                        return -ENOMEM;

                if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, d, &m) >= 0) {
                        if (m % sizeof(gid_t) != 0)
                                return -EIO;
                        *ret_n = m / sizeof(gid_t);
                        *ret = m > 0 ? TAKE_PTR(d) : NULL;
                        return 0;
                }
                if (errno != ERANGE)
                        return negative_errno();
                /* The kernel tells us the size it needs in m; never shrink, cap to something sane. */
                if (m <= n)
                        m = n * 2;
                if (m > sizeof(gid_t) * 65536)
                        return -E2BIG;
                n = m;
        }
}
