/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * bench-client: the trivial client of the baseline, the counterpart of `vlease get NAME` in
 * tools/bench: connect, send one Get, read the reply up to its NUL, write it to stdout, exit 0 (1 on
 * an error reply or a failure). No JSON parsing, no formatting.
 *
 *   bench-client SOCKET NAME
 */

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int main(int argc, char *argv[]) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        char req[512], buf[65536];
        size_t len = 0;
        int fd, n;

        if (argc != 3 || strlen(argv[1]) >= sizeof(sa.sun_path))
                return 2;
        strcpy(sa.sun_path, argv[1]);
        n = snprintf(req, sizeof(req), "{\"method\":\"io.vlease.Broker.Get\",\"parameters\":{\"name\":\"%s\"}}", argv[2]);
        if (n < 0 || (size_t) n >= sizeof(req))
                return 2;
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0 ||
            send(fd, req, (size_t) n + 1, MSG_NOSIGNAL) != n + 1)
                return 1;
        while (len < sizeof(buf)) {
                ssize_t k = recv(fd, buf + len, sizeof(buf) - len, 0);

                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        return 1;
                len += (size_t) k;
                if (memchr(buf + len - k, 0, (size_t) k))
                        break;
        }
        if (fwrite(buf, 1, strlen(buf), stdout) != strlen(buf))
                return 1;
        putchar('\n');
        return strncmp(buf, "{\"error\"", 8) == 0;
}
