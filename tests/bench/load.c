/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * bench-load: the load generator of tools/bench. Talks varlink (NUL-framed JSON) to a broker or to
 * bench-baseline over AF_UNIX and measures every call from its intended send time to the NUL of its
 * reply (log-linear histogram, 1.6% resolution).
 *
 *   bench-load -s SOCKET [options]
 *     -c N       connections (per worker when -u is given, else in total)          default 1
 *     -u LIST    uid:gid[,uid:gid...]: one worker process per user, which takes its uid, gid and groups
 *     -N NAME    credential name; a "%d" in it is replaced by 0..K-1 (see -K)       default db
 *     -K K       number of names for "%d"                                          default 1
 *     -m MODE    loop: closed loop for -d seconds (after -w warm-up seconds)        default loop
 *                once: every connection connects, all wait for one start signal, send one Get each
 *                each: every worker gets each of the K names once, over its connections
 *     -d SEC     duration of loop mode (float)                                      default 5
 *     -w SEC     warm-up of loop mode, not measured (float)                         default 0.5
 *     -n         a new connection for every request (loop mode)
 *     -r RATE    paced: each connection sends RATE requests per second (latency from the send; use
 *                many slow connections so that a stalled server is seen by every one due meanwhile)
 *     -T FILE    timeline: append (intended start ns, latency ns) pairs, CLOCK_MONOTONIC, per worker FILE.W
 *     -M METHOD  method (default io.vlease.Broker.Get)
 *
 * Prints one JSON object: requests, errors, seconds, throughput, mean/p50/p90/p99/p99.9/max in
 * microseconds, a CDF for plotting, start/end CLOCK_MONOTONIC ns, and the first error reply seen.
 */

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <sched.h>
#include <sys/prctl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define HIST_SIZE 4096
#define MAX_WORKERS 1024
#define MAX_CONNS 4096
#define REQ_MAX 512
#define IN_MAX 65536

typedef struct Result {
        uint64_t hist[HIST_SIZE];
        uint64_t requests, errors;
        uint64_t t_start, t_end, t_last_answer;
        int failed;
        char first_error[256];
} Result;

typedef struct Conn {
        int fd;
        int name;
        bool waiting;
        uint64_t intended;
        uint64_t next_at;
        size_t in_len;
        char in[IN_MAX];
} Conn;

static const char *arg_socket;
static int arg_conns = 1;
static const char *arg_name = "db";
static int arg_k = 1;
static const char *arg_mode = "loop";
static double arg_duration = 5, arg_warmup = 0.5, arg_rate = 0;
static bool arg_new_conn;
static const char *arg_timeline;
static const char *arg_method = "io.vlease.Broker.Get";
static uid_t uids[MAX_WORKERS];
static gid_t gids[MAX_WORKERS];
static int n_users;

static uint64_t now_ns(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000000ULL + (uint64_t) ts.tv_nsec;
}

static unsigned hist_index(uint64_t v) {
        unsigned shift;

        if (v < 128)
                return (unsigned) v;
        shift = 63U - (unsigned) __builtin_clzll(v) - 6U;
        if (shift > 62)
                return HIST_SIZE - 1;
        { unsigned idx = shift * 64U + (unsigned) (v >> shift); return idx < HIST_SIZE ? idx : HIST_SIZE - 1; }
}

static double hist_value(unsigned idx) {
        unsigned shift;

        if (idx < 128)
                return idx;
        shift = idx / 64U - 1U;
        return (double) ((uint64_t) (idx - shift * 64U) << shift) + (double) (1ULL << shift) / 2.0;
}

static int make_request(int name, char *buf) {
        char n[128];

        const char *pct = strstr(arg_name, "%d");

        if (pct)
                snprintf(n, sizeof(n), "%.*s%d%s", (int) (pct - arg_name), arg_name, name, pct + 2);
        else
                snprintf(n, sizeof(n), "%s", arg_name);
        if (strcmp(arg_method, "io.vlease.Broker.Get") == 0 || strcmp(arg_method, "io.vlease.Broker.Release") == 0)
                return snprintf(buf, REQ_MAX, "{\"method\":\"%s\",\"parameters\":{\"name\":\"%s\"}}", arg_method, n) + 1;
        return snprintf(buf, REQ_MAX, "{\"method\":\"%s\"}", arg_method) + 1;
}

static int conn_open(void) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd;

        strncpy(sa.sun_path, arg_socket, sizeof(sa.sun_path) - 1);
        for (int tries = 0; tries < 100000; tries++) {
                fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
                if (fd < 0)
                        return -1;
                if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) == 0)
                        return fd;
                close(fd);
                if (errno != EAGAIN && errno != EINTR)
                        return -1;
                /* backlog full: let the server run */
                sched_yield();
        }
        return -1;
}

/* The timeline is kept in memory and written at the end: a write() per answer put file-system work
 * (page cache allocation, journal) on the measuring client's CPU in the middle of the measurement. */
static uint64_t *timeline;
static size_t timeline_n, timeline_allocated;

static void timeline_add(uint64_t intended, uint64_t lat) {
        if (timeline_n + 2 > timeline_allocated) {
                size_t a = timeline_allocated ? timeline_allocated * 2 : 65536;
                uint64_t *t = realloc(timeline, a * sizeof(uint64_t));

                if (!t)
                        return;         /* a shorter timeline; the histogram still counts it */
                timeline = t;
                timeline_allocated = a;
        }
        timeline[timeline_n++] = intended;
        timeline[timeline_n++] = lat;
}

static void timeline_write(int fd) {
        size_t done = 0, len = timeline_n * sizeof(uint64_t);

        while (done < len) {
                ssize_t k = write(fd, (const char *) timeline + done, len - done);

                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        break;
                done += (size_t) k;
        }
}

static void record(Result *res, Conn *c, uint64_t t, uint64_t measure_from, int tl_fd) {
        uint64_t lat = t - c->intended;

        if (c->intended >= measure_from) {
                res->hist[hist_index(lat)]++;
                res->requests++;
                if (tl_fd >= 0)
                        timeline_add(c->intended, lat);
        }
        if (t > res->t_last_answer)
                res->t_last_answer = t;
}

static void note_error(Result *res, const char *msg, size_t len) {
        res->errors++;
        if (!res->first_error[0])
                snprintf(res->first_error, sizeof(res->first_error), "%.*s", (int) (len < 200 ? len : 200), msg);
}

static int send_request(Conn *c, uint64_t intended) {
        char req[REQ_MAX];
        int len = make_request(c->name, req);

        c->intended = intended;
        c->waiting = true;
        c->in_len = 0;
        if (send(c->fd, req, (size_t) len, MSG_NOSIGNAL) != len)
                return -1;
        return 0;
}

/* Reads what is there; 1 when a complete reply arrived, 0 when not yet, -1 on EOF or error. */
static int conn_read(Conn *c) {
        for (;;) {
                ssize_t k;

                if (c->in_len >= IN_MAX)
                        return -1;
                k = recv(c->fd, c->in + c->in_len, IN_MAX - c->in_len, MSG_DONTWAIT);
                if (k < 0)
                        return errno == EAGAIN || errno == EINTR ? 0 : -1;
                if (k == 0)
                        return -1;
                c->in_len += (size_t) k;
                if (memchr(c->in + c->in_len - k, 0, (size_t) k))
                        return 1;
        }
}

static int worker(int w, Result *res, int ready_fd, int go_fd) {
        static Conn conns[MAX_CONNS];
        struct epoll_event ev, events[256];
        int nconns = n_users > 0 ? arg_conns : arg_conns, ep, tl_fd = -1, next_name = 0, outstanding = 0;
        uint64_t t0, measure_from, end = UINT64_MAX, period = 0;
        bool loop = strcmp(arg_mode, "loop") == 0, once = strcmp(arg_mode, "once") == 0;

        if (arg_timeline) {
                char p[4096];

                snprintf(p, sizeof(p), "%s.%d", arg_timeline, w);
                tl_fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
                if (tl_fd < 0)
                        return 1;
        }
        if (n_users > 0) {
                struct passwd *pw = getpwuid(uids[w]);

                if (!pw || initgroups(pw->pw_name, gids[w]) < 0 || setgid(gids[w]) < 0 || setuid(uids[w]) < 0) {
                        perror("setuid");
                        return 1;
                }
        }
        if (nconns > MAX_CONNS)
                nconns = MAX_CONNS;
        if (!loop && !once && nconns > arg_k)
                nconns = arg_k;

        (void) prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
        ep = epoll_create1(EPOLL_CLOEXEC);
        for (int i = 0; i < nconns; i++) {
                conns[i].fd = conn_open();
                if (conns[i].fd < 0) {
                        perror("connect");
                        res->failed = 1;
                        return 1;
                }
                conns[i].name = loop || once ? i % arg_k : -1;
                ev = (struct epoll_event) { .events = EPOLLIN, .data.u32 = (uint32_t) i };
                epoll_ctl(ep, EPOLL_CTL_ADD, conns[i].fd, &ev);
        }

        /* everybody connected: tell the parent, wait for the start signal */
        (void) !write(ready_fd, "r", 1);
        {
                char b;
                (void) !read(go_fd, &b, 1);
        }

        t0 = now_ns();
        res->t_start = t0;
        measure_from = loop ? t0 + (uint64_t) (arg_warmup * 1e9) : 0;
        if (loop)
                end = t0 + (uint64_t) ((arg_warmup + arg_duration) * 1e9);
        if (arg_rate > 0)
                period = (uint64_t) (1e9 / arg_rate);

        for (int i = 0; i < nconns; i++) {
                if (!loop && !once) {
                        if (next_name >= arg_k)
                                break;
                        conns[i].name = next_name++;
                }
                /* paced connections start spread over one period */
                uint64_t at = period ? t0 + period * (uint64_t) i / (uint64_t) nconns : t0;
                if (period) {
                        conns[i].next_at = at;
                        continue;
                }
                if (send_request(&conns[i], t0) < 0) {
                        res->failed = 1;
                        return 1;
                }
                outstanding++;
        }

        for (;;) {
                uint64_t t = now_ns();
                int64_t timeout = -1;
                int n;

                if (t >= end) {
                        res->t_end = t;
                        break;
                }
                if (!loop && outstanding == 0 && (once || next_name >= arg_k))
                        break;

                if (period) {
                        uint64_t first = UINT64_MAX;

                        for (int i = 0; i < nconns; i++) {
                                if (conns[i].waiting)
                                        continue;
                                if (conns[i].next_at <= t) {
                                        if (send_request(&conns[i], now_ns()) < 0) {
                                                res->failed = 1;
                                                return 1;
                                        }
                                        outstanding++;
                                } else if (conns[i].next_at < first)
                                        first = conns[i].next_at;
                        }
                        if (first != UINT64_MAX)
                                timeout = (int64_t) (first - t);
                }
                if (loop && end != UINT64_MAX) {
                        int64_t left = (int64_t) (end - t);
                        if (timeout < 0 || left < timeout)
                                timeout = left;
                }

                struct timespec ts_timeout = { .tv_sec = timeout / 1000000000, .tv_nsec = timeout % 1000000000 };
                n = epoll_pwait2(ep, events, 256, timeout < 0 ? NULL : &ts_timeout, NULL);
                if (n < 0 && errno != EINTR) {
                        res->failed = 1;
                        return 1;
                }
                for (int j = 0; j < n; j++) {
                        Conn *c = &conns[events[j].data.u32];
                        int r = conn_read(c);
                        uint64_t ta;

                        if (r == 0)
                                continue;
                        ta = now_ns();
                        if (r < 0) {
                                /* closed by the server (a limit?): count, reconnect in loop mode */
                                note_error(res, c->in_len ? c->in : "connection closed", c->in_len ? c->in_len : 17);
                                epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                                close(c->fd);
                                c->waiting = false;
                                outstanding--;
                                if (!loop) {
                                        c->fd = -1;
                                        if (!once && next_name < arg_k) {
                                                /* the name is lost; carry on with the next one */
                                        }
                                        continue;
                                }
                                c->fd = conn_open();
                                if (c->fd < 0) {
                                        res->failed = 1;
                                        return 1;
                                }
                                ev = (struct epoll_event) { .events = EPOLLIN, .data.u32 = events[j].data.u32 };
                                epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
                        } else {
                                c->waiting = false;
                                outstanding--;
                                if (strncmp(c->in, "{\"error\"", 8) == 0)
                                        note_error(res, c->in, c->in_len);
                                record(res, c, ta, measure_from, tl_fd);
                        }

                        if (once)
                                continue;
                        if (!loop) {
                                if (next_name >= arg_k || c->fd < 0)
                                        continue;
                                c->name = next_name++;
                        }
                        if (arg_new_conn && c->fd >= 0 && r > 0) {
                                epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                                close(c->fd);
                                c->fd = -1;
                        }
                        if (period) {
                                c->next_at += period;
                                /* behind schedule: do not queue a backlog, the latency already shows it */
                                if (c->next_at + period < ta)
                                        c->next_at = ta;
                                if (c->fd < 0) {
                                        c->fd = conn_open();
                                        if (c->fd < 0) {
                                                res->failed = 1;
                                                return 1;
                                        }
                                        ev = (struct epoll_event) { .events = EPOLLIN, .data.u32 = events[j].data.u32 };
                                        epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
                                }
                                continue;
                        }
                        uint64_t ts = now_ns();
                        if (ts >= end)
                                continue;
                        if (c->fd < 0) {
                                c->fd = conn_open();
                                if (c->fd < 0) {
                                        res->failed = 1;
                                        return 1;
                                }
                                ev = (struct epoll_event) { .events = EPOLLIN, .data.u32 = events[j].data.u32 };
                                epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
                        }
                        if (send_request(c, ts) < 0) {
                                note_error(res, "send failed", 11);
                                continue;
                        }
                        outstanding++;
                }
        }
        if (!res->t_end)
                res->t_end = now_ns();
        if (tl_fd >= 0) {
                timeline_write(tl_fd);
                close(tl_fd);
        }
        return 0;
}

static int parse_users(const char *s) {
        char *copy = strdup(s), *save = NULL;

        for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                unsigned u, g;

                if (n_users >= MAX_WORKERS || sscanf(t, "%u:%u", &u, &g) != 2)
                        return -1;
                uids[n_users] = u;
                gids[n_users] = g;
                n_users++;
        }
        free(copy);
        return 0;
}

int main(int argc, char *argv[]) {
        int opt, nworkers, ready[2], go[2];
        Result *res;
        pid_t pids[MAX_WORKERS];
        uint64_t total[HIST_SIZE] = {}, requests = 0, errors = 0, t_start = UINT64_MAX, t_end = 0, t_last = 0;
        const char *first_error = "";
        int failed = 0;

        while ((opt = getopt(argc, argv, "s:c:u:N:K:m:d:w:nr:T:M:")) != -1) {
                switch (opt) {
                case 's': arg_socket = optarg; break;
                case 'c': arg_conns = atoi(optarg); break;
                case 'u': if (parse_users(optarg) < 0) { fprintf(stderr, "bad -u\n"); return 2; } break;
                case 'N': arg_name = optarg; break;
                case 'K': arg_k = atoi(optarg); break;
                case 'm': arg_mode = optarg; break;
                case 'd': arg_duration = atof(optarg); break;
                case 'w': arg_warmup = atof(optarg); break;
                case 'n': arg_new_conn = true; break;
                case 'r': arg_rate = atof(optarg); break;
                case 'T': arg_timeline = optarg; break;
                case 'M': arg_method = optarg; break;
                default: return 2;
                }
        }
        if (!arg_socket || arg_conns < 1 || arg_k < 1) {
                fprintf(stderr, "usage: see the comment at the top of tests/bench/load.c\n");
                return 2;
        }
        nworkers = n_users > 0 ? n_users : 1;
        res = mmap(NULL, sizeof(Result) * (size_t) nworkers, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (res == MAP_FAILED || pipe2(ready, O_CLOEXEC) < 0 || pipe2(go, O_CLOEXEC) < 0) {
                perror("setup");
                return 1;
        }
        memset(res, 0, sizeof(Result) * (size_t) nworkers);

        for (int w = 0; w < nworkers; w++) {
                pids[w] = fork();
                if (pids[w] < 0) {
                        perror("fork");
                        return 1;
                }
                if (pids[w] == 0) {
                        close(go[1]);
                        close(ready[0]);
                        _exit(worker(w, &res[w], ready[1], go[0]));
                }
        }
        close(go[0]);
        close(ready[1]);
        for (int w = 0; w < nworkers; w++) {
                char b;
                if (read(ready[0], &b, 1) != 1) {
                        failed = 1;     /* a worker died before it was ready */
                        break;
                }
        }
        close(go[1]);   /* EOF: every worker starts now */

        for (int w = 0; w < nworkers; w++) {
                int st;

                waitpid(pids[w], &st, 0);
                if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || res[w].failed)
                        failed = 1;
                for (int i = 0; i < HIST_SIZE; i++)
                        total[i] += res[w].hist[i];
                requests += res[w].requests;
                errors += res[w].errors;
                if (res[w].t_start && res[w].t_start < t_start)
                        t_start = res[w].t_start;
                if (res[w].t_end > t_end)
                        t_end = res[w].t_end;
                if (res[w].t_last_answer > t_last)
                        t_last = res[w].t_last_answer;
                if (!first_error[0] && res[w].first_error[0])
                        first_error = res[w].first_error;
        }

        double seconds = strcmp(arg_mode, "loop") == 0 ? arg_duration : (double) (t_last - t_start) / 1e9;
        double pcts[] = { 50, 90, 99, 99.9 }, vals[4] = {}, mean = 0, maxv = 0;
        uint64_t seen = 0;
        int k = 0;

        for (int i = 0; i < HIST_SIZE; i++) {
                if (!total[i])
                        continue;
                mean += hist_value((unsigned) i) * (double) total[i];
                maxv = hist_value((unsigned) i);
                seen += total[i];
                while (k < 4 && (double) seen >= pcts[k] / 100.0 * (double) requests)
                        vals[k++] = hist_value((unsigned) i);
        }
        if (requests)
                mean /= (double) requests;

        printf("{\"requests\":%" PRIu64 ",\"errors\":%" PRIu64 ",\"failed\":%s,\"seconds\":%.6f,\"throughput\":%.1f,"
               "\"mean_us\":%.2f,\"p50_us\":%.2f,\"p90_us\":%.2f,\"p99_us\":%.2f,\"p999_us\":%.2f,\"max_us\":%.2f,"
               "\"t_start_ns\":%" PRIu64 ",\"t_end_ns\":%" PRIu64 ",\"t_last_answer_ns\":%" PRIu64 ",\"cdf\":[",
               requests, errors, failed ? "true" : "false", seconds, seconds > 0 ? (double) requests / seconds : 0.0,
               mean / 1e3, vals[0] / 1e3, vals[1] / 1e3, vals[2] / 1e3, vals[3] / 1e3, maxv / 1e3,
               t_start == UINT64_MAX ? 0 : t_start, t_end, t_last);
        seen = 0;
        bool first = true;
        for (int i = 0; i < HIST_SIZE; i++) {
                if (!total[i])
                        continue;
                seen += total[i];
                printf("%s[%.6f,%.3f]", first ? "" : ",", 100.0 * (double) seen / (double) requests, hist_value((unsigned) i) / 1e3);
                first = false;
        }
        printf("],\"first_error\":\"");
        for (const char *p = first_error; *p; p++)
                if (*p != '"' && *p != '\\' && (unsigned char) *p >= 0x20)
                        putchar(*p);
        printf("\"}\n");
        return failed ? 1 : 0;
}
