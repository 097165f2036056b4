/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * bench-baseline: the limit of this kind of IPC on this machine, for tools/bench.
 *
 * A minimal varlink-framed AF_UNIX server: single-threaded, non-blocking, one epoll set, NUL
 * framing, reading as much as is available per wakeup, and answering every complete message with
 * the same reply bytes vleased sends for a cached Get (read once from a file, kept in memory). No
 * parsing, no authorisation, no allocation per request: nothing a real server could skip.
 *
 *   bench-baseline REPLY-FILE SOCKET-PATH     bind SOCKET-PATH itself
 *   bench-baseline REPLY-FILE                 use the socket passed as fd 3 (LISTEN_FDS, socket activation)
 *
 * The reply file holds one message including its terminating NUL. SIGTERM or SIGINT exits 0.
 */

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_EVENTS 256
#define IN_SIZE 65536

typedef struct Conn {
        int fd;
        char *out;          /* pending reply bytes (only when the socket would block) */
        size_t out_len, out_cap;
        bool want_out;
} Conn;

static char *reply;
static size_t reply_len;

static int conn_queue(Conn *c, size_t n_replies) {
        /* Fast path: send replies straight from the static buffer while the socket takes them. */
        while (n_replies > 0 && c->out_len == 0) {
                ssize_t k = send(c->fd, reply, reply_len, MSG_NOSIGNAL | MSG_DONTWAIT);

                if (k < 0 && errno != EAGAIN && errno != EINTR)
                        return -1;
                if (k == (ssize_t) reply_len) {
                        n_replies--;
                        continue;
                }
                if (k < 0)
                        k = 0;
                /* partial: keep the rest */
                size_t rest = reply_len - (size_t) k;
                if (c->out_cap < rest) {
                        c->out = realloc(c->out, rest);
                        if (!c->out)
                                return -1;
                        c->out_cap = rest;
                }
                memcpy(c->out, reply + k, rest);
                c->out_len = rest;
                n_replies--;
        }
        while (n_replies > 0) {
                if (c->out_cap < c->out_len + reply_len) {
                        size_t n = (c->out_len + reply_len) * 2;
                        c->out = realloc(c->out, n);
                        if (!c->out)
                                return -1;
                        c->out_cap = n;
                }
                memcpy(c->out + c->out_len, reply, reply_len);
                c->out_len += reply_len;
                n_replies--;
        }
        return 0;
}

static int conn_flush(Conn *c) {
        size_t done = 0;

        while (done < c->out_len) {
                ssize_t k = send(c->fd, c->out + done, c->out_len - done, MSG_NOSIGNAL | MSG_DONTWAIT);

                if (k < 0) {
                        if (errno == EAGAIN || errno == EINTR)
                                break;
                        return -1;
                }
                done += (size_t) k;
        }
        memmove(c->out, c->out + done, c->out_len - done);
        c->out_len -= done;
        return 0;
}

static void conn_close(int ep, Conn *c) {
        (void) epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        free(c->out);
        free(c);
}

static int read_reply(const char *path) {
        struct stat st;
        int fd = open(path, O_RDONLY | O_CLOEXEC);

        if (fd < 0 || fstat(fd, &st) < 0 || st.st_size <= 0) {
                perror(path);
                return -1;
        }
        reply_len = (size_t) st.st_size;
        reply = malloc(reply_len);
        if (!reply || read(fd, reply, reply_len) != (ssize_t) reply_len) {
                perror("read");
                return -1;
        }
        close(fd);
        if (reply[reply_len - 1] != '\0') {
                fprintf(stderr, "%s: the reply must end with its NUL terminator\n", path);
                return -1;
        }
        return 0;
}

int main(int argc, char *argv[]) {
        static char in[IN_SIZE];
        struct epoll_event ev, events[MAX_EVENTS];
        int lfd, ep, sfd;
        sigset_t ss;

        if (argc < 2 || argc > 3) {
                fprintf(stderr, "usage: %s REPLY-FILE [SOCKET-PATH]\n", argv[0]);
                return 2;
        }
        if (read_reply(argv[1]) < 0)
                return 1;

        if (argc == 3) {
                struct sockaddr_un sa = { .sun_family = AF_UNIX };

                if (strlen(argv[2]) >= sizeof(sa.sun_path)) {
                        fprintf(stderr, "socket path too long\n");
                        return 1;
                }
                strcpy(sa.sun_path, argv[2]);
                (void) unlink(argv[2]);
                lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
                if (lfd < 0 || bind(lfd, (struct sockaddr *) &sa, sizeof(sa)) < 0 || listen(lfd, SOMAXCONN) < 0) {
                        perror("bind");
                        return 1;
                }
                (void) chmod(argv[2], 0666);
        } else {
                const char *e = getenv("LISTEN_FDS");

                if (!e || atoi(e) < 1) {
                        fprintf(stderr, "no SOCKET-PATH and no LISTEN_FDS\n");
                        return 1;
                }
                lfd = 3;
                (void) fcntl(lfd, F_SETFL, fcntl(lfd, F_GETFL) | O_NONBLOCK);
        }

        sigemptyset(&ss);
        sigaddset(&ss, SIGTERM);
        sigaddset(&ss, SIGINT);
        sigprocmask(SIG_BLOCK, &ss, NULL);
        sfd = signalfd(-1, &ss, SFD_NONBLOCK | SFD_CLOEXEC);

        ep = epoll_create1(EPOLL_CLOEXEC);
        if (ep < 0 || sfd < 0) {
                perror("epoll");
                return 1;
        }
        ev = (struct epoll_event) { .events = EPOLLIN, .data.ptr = NULL };
        epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
        ev = (struct epoll_event) { .events = EPOLLIN, .data.ptr = &sfd };
        epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &ev);

        for (;;) {
                int n = epoll_wait(ep, events, MAX_EVENTS, -1);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        perror("epoll_wait");
                        return 1;
                }
                for (int i = 0; i < n; i++) {
                        Conn *c = events[i].data.ptr;

                        if (!c) {
                                /* accept everything that is waiting */
                                for (;;) {
                                        int cfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

                                        if (cfd < 0)
                                                break;
                                        c = calloc(1, sizeof(*c));
                                        if (!c) {
                                                close(cfd);
                                                continue;
                                        }
                                        c->fd = cfd;
                                        ev = (struct epoll_event) { .events = EPOLLIN, .data.ptr = c };
                                        epoll_ctl(ep, EPOLL_CTL_ADD, cfd, &ev);
                                }
                                continue;
                        }
                        if ((void *) c == (void *) &sfd)
                                return 0;

                        if (events[i].events & EPOLLOUT) {
                                if (conn_flush(c) < 0) {
                                        conn_close(ep, c);
                                        continue;
                                }
                        }
                        if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                                bool eof = false;
                                size_t replies = 0;

                                /* as much as is available: loop until EAGAIN */
                                for (;;) {
                                        ssize_t k = recv(c->fd, in, sizeof(in), MSG_DONTWAIT);

                                        if (k > 0) {
                                                for (const char *p = in; (p = memchr(p, 0, (size_t) (in + k - p))); p++)
                                                        replies++;
                                                if ((size_t) k < sizeof(in))
                                                        break;
                                                continue;
                                        }
                                        if (k == 0 || (errno != EAGAIN && errno != EINTR))
                                                eof = true;
                                        break;
                                }
                                if (replies > 0 && conn_queue(c, replies) < 0) {
                                        conn_close(ep, c);
                                        continue;
                                }
                                if (eof) {
                                        (void) conn_flush(c);
                                        conn_close(ep, c);
                                        continue;
                                }
                        }
                        bool want = c->out_len > 0;
                        if (want != c->want_out) {
                                ev = (struct epoll_event) { .events = EPOLLIN | (want ? EPOLLOUT : 0), .data.ptr = c };
                                epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                                c->want_out = want;
                        }
                }
        }
}
