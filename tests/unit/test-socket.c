/* SPDX-License-Identifier: LGPL-2.1-or-later */
#undef NDEBUG

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "common/memory-util.h"
#include "common/peercred.h"
#include "common/socket-util.h"
#include "common/time-util.h"

static void test_peercred(void **state) {
        struct ucred u;
        gid_t *g = NULL;
        size_t n = 0;
        int p[2];

        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, p), 0);
        assert_int_equal(getpeercred(p[0], &u), 0);
        assert_int_equal(u.uid, getuid());
        assert_int_equal(u.gid, getgid());
        assert_int_equal(u.pid, getpid());
        assert_int_equal(getpeergroups(p[0], &g, &n), 0);
        assert_int_equal(n, (size_t) getgroups(0, NULL));
        free(g);

        assert_int_equal(socket_peer_is_broker(p[0], getuid()), 1);
        assert_int_equal(socket_peer_is_broker(p[0], (uid_t) -1), getuid() == 0);
        close(p[0]);
        close(p[1]);

        assert_int_equal(getpeercred(-1, &u), -EBADF);
}

/* A one-shot broker in a child: reads one message, then behaves per @mode. */
static pid_t serve(const char *path, int mode) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int l, pipefd[2];
        pid_t pid;
        char c;

        strncpy(sa.sun_path, path, sizeof(sa.sun_path) - 1);
        (void) unlink(path);
        l = socket(AF_UNIX, SOCK_STREAM, 0);
        assert_true(l >= 0);
        assert_int_equal(bind(l, (struct sockaddr *) &sa, sizeof(sa)), 0);
        assert_int_equal(listen(l, 1), 0);
        assert_int_equal(pipe(pipefd), 0);

        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                static const char reply[] = "{\"parameters\":{\"credential\":{\"name\":\"db\"}}}";
                char buf[4096];
                size_t n = 0;
                int fd;

                close(pipefd[0]);
                (void) write(pipefd[1], "x", 1);
                fd = accept(l, NULL, NULL);
                if (fd < 0)
                        _exit(1);
                while (n < sizeof(buf)) {
                        ssize_t k = read(fd, buf + n, sizeof(buf) - n);

                        if (k <= 0)
                                _exit(2);
                        n += (size_t) k;
                        if (memchr(buf, 0, n))
                                break;
                }
                switch (mode) {
                case 0: /* answer in three pieces, plus trailing bytes */
                        (void) write(fd, reply, 10);
                        usleep(20000);
                        (void) write(fd, reply + 10, sizeof(reply) - 11);
                        usleep(20000);
                        (void) write(fd, "\0{\"parameters\"", 15);
                        break;
                case 1: /* never answer */
                        sleep(5);
                        break;
                case 2: /* close without answering */
                        break;
                case 3: /* malformed */
                        (void) write(fd, "{\"parameters\":[]}", 18);
                        break;
                }
                close(fd);
                _exit(0);
        }
        close(pipefd[1]);
        assert_int_equal(read(pipefd[0], &c, 1), 1);
        close(pipefd[0]);
        close(l);
        return pid;
}

static void test_call(void **state) {
        char dir[] = "/tmp/test-socket-XXXXXX", *path = NULL, *msg = NULL;
        VarlinkReply rep = {};
        const char *s;
        json_object *cred;
        size_t len;
        pid_t pid;
        int fd, status;

        assert_non_null(mkdtemp(dir));
        assert_true(asprintf(&path, "%s/sock", dir) > 0);
        assert_int_equal(varlink_build_call("io.vlease.Broker.Get", NULL, false, &msg, &len), 0);

        assert_int_equal(connect_unix(path, USEC_PER_SEC), -ENOENT);
        assert_int_equal(connect_unix("", USEC_PER_SEC), -EINVAL);
        {
                char longpath[200];

                memset(longpath, 'a', sizeof(longpath) - 1);
                longpath[sizeof(longpath) - 1] = 0;
                assert_int_equal(connect_unix(longpath, USEC_PER_SEC), -ENAMETOOLONG);
        }

        /* a reply in pieces */
        pid = serve(path, 0);
        fd = connect_unix(path, USEC_PER_SEC);
        assert_true(fd >= 0);
        assert_int_equal(socket_peer_is_broker(fd, getuid()), 1);
        assert_int_equal(varlink_call_sync(fd, msg, len, usec_add(now(CLOCK_MONOTONIC), 5 * USEC_PER_SEC), &rep), 0);
        assert_null(rep.error);
        assert_int_equal(varlink_param_object(rep.parameters, "credential", true, &cred), 1);
        assert_int_equal(varlink_param_string(cred, "name", true, &s), 1);
        assert_string_equal(s, "db");
        varlink_reply_done(&rep);
        close(fd);
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_int_equal(status, 0);

        /* no answer: the deadline holds */
        pid = serve(path, 1);
        fd = connect_unix(path, USEC_PER_SEC);
        assert_true(fd >= 0);
        {
                usec_t t0 = now(CLOCK_MONOTONIC);

                assert_int_equal(varlink_call_sync(fd, msg, len, t0 + 200 * USEC_PER_MSEC, &rep), -ETIMEDOUT);
                assert_true(now(CLOCK_MONOTONIC) - t0 < 2 * USEC_PER_SEC);
        }
        close(fd);
        kill(pid, SIGKILL);
        assert_int_equal(waitpid(pid, &status, 0), pid);

        /* closed without answer */
        pid = serve(path, 2);
        fd = connect_unix(path, USEC_PER_SEC);
        assert_true(fd >= 0);
        assert_int_equal(varlink_call_sync(fd, msg, len, usec_add(now(CLOCK_MONOTONIC), 5 * USEC_PER_SEC), &rep),
                         -ECONNRESET);
        close(fd);
        assert_int_equal(waitpid(pid, &status, 0), pid);

        /* malformed */
        pid = serve(path, 3);
        fd = connect_unix(path, USEC_PER_SEC);
        assert_true(fd >= 0);
        assert_int_equal(varlink_call_sync(fd, msg, len, usec_add(now(CLOCK_MONOTONIC), 5 * USEC_PER_SEC), &rep),
                         -EBADMSG);
        close(fd);
        assert_int_equal(waitpid(pid, &status, 0), pid);

        /* sending to a closed peer: EPIPE, no SIGPIPE */
        {
                int p[2];

                assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, p), 0);
                close(p[1]);
                assert_int_equal(send_all(p[0], "x", 1, USEC_INFINITY), -EPIPE);
                close(p[0]);
        }

        unlink(path);
        rmdir(dir);
        free(path);
        free(msg);
}

static void test_time(void **state) {
        char buf[FORMAT_TIMESTAMP_MAX];

        assert_string_equal(format_timestamp(buf, sizeof(buf), 1700000000ULL * USEC_PER_SEC), "2023-11-14 22:13:20 UTC");
        assert_null(format_timestamp(buf, sizeof(buf), 0));
        assert_null(format_timestamp(buf, sizeof(buf), USEC_INFINITY));
        assert_null(format_timestamp(buf, 5, 1700000000ULL * USEC_PER_SEC));

        assert_string_equal(format_timespan(buf, sizeof(buf), 3723 * USEC_PER_SEC), "1h 2min 3s");
        assert_string_equal(format_timespan(buf, sizeof(buf), 500 * USEC_PER_MSEC), "500ms");
        assert_string_equal(format_timespan(buf, sizeof(buf), USEC_INFINITY), "infinity");

        /* boottime 100 s ~ realtime 1000 s */
        assert_true(usec_realtime_from_boottime(150 * USEC_PER_SEC, 100 * USEC_PER_SEC, 1000 * USEC_PER_SEC) ==
                    1050 * USEC_PER_SEC);
        assert_true(usec_realtime_from_boottime(40 * USEC_PER_SEC, 100 * USEC_PER_SEC, 1000 * USEC_PER_SEC) ==
                    940 * USEC_PER_SEC);
        assert_true(usec_realtime_from_boottime(USEC_INFINITY, 1, 2) == USEC_INFINITY);
        assert_true(usec_boottime_from_realtime(1050 * USEC_PER_SEC, 100 * USEC_PER_SEC, 1000 * USEC_PER_SEC) ==
                    150 * USEC_PER_SEC);
        assert_true(usec_boottime_from_realtime(10 * USEC_PER_SEC, 100 * USEC_PER_SEC, 1000 * USEC_PER_SEC) == 0);
        assert_true(usec_add(USEC_INFINITY - 1, 5) == USEC_INFINITY);
        assert_true(usec_sub_unsigned(3, 5) == 0);

        {
                /* The two clocks are read at slightly different instants and may be slewed apart by
                 * NTP: only require the conversion to land within a second of the wall clock. */
                usec_t b = now(CLOCK_BOOTTIME), r = now(CLOCK_REALTIME), x = boottime_to_realtime(b);

                assert_true(x > r ? x - r < USEC_PER_SEC : r - x < USEC_PER_SEC);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_peercred),
                cmocka_unit_test(test_call),
                cmocka_unit_test(test_time),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
