/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * bench-spawn: a command as a whole process, timed, for tools/bench: fork, (setuid), exec, wait,
 * N times in a row, stdout to /dev/null. Prints JSON: runs, failures, runs per second and
 * mean/p50/p99/max wall time in microseconds.
 *
 *   bench-spawn [-u UID:GID] [-d SECONDS] [-n MAX-RUNS] -- COMMAND [ARGS...]
 */

#include <fcntl.h>
#include <stdbool.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench-util.h"

#define MAX_RUNS 1000000

int main(int argc, char *argv[]) {
        static double lat[MAX_RUNS];
        unsigned uid = 0, gid = 0;
        bool have_user = false;
        double duration = 3, t0, sum = 0;
        long max_runs = MAX_RUNS;
        int opt, runs = 0, failures = 0, devnull;

        while ((opt = getopt(argc, argv, "+u:d:n:")) != -1) {
                switch (opt) {
                case 'u':
                        if (sscanf(optarg, "%u:%u", &uid, &gid) != 2)
                                return 2;
                        have_user = true;
                        break;
                case 'd': duration = atof(optarg); break;
                case 'n': max_runs = atol(optarg); break;
                default: return 2;
                }
        }
        if (optind >= argc || max_runs < 1 || max_runs > MAX_RUNS)
                return 2;
        devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
        struct passwd *pw = have_user ? getpwuid(uid) : NULL;

        if (have_user && (!pw || initgroups(pw->pw_name, gid) < 0 || setgid(gid) < 0 || setuid(uid) < 0)) {
                perror("setuid");
                return 1;
        }

        t0 = now_us();
        while (runs < max_runs && now_us() - t0 < duration * 1e6) {
                double s = now_us();
                int st;
                pid_t pid = fork();

                if (pid < 0)
                        return 1;
                if (pid == 0) {
                        dup2(devnull, 1);
                        execv(argv[optind], argv + optind);
                        _exit(127);
                }
                if (waitpid(pid, &st, 0) < 0)
                        return 1;
                lat[runs] = now_us() - s;
                sum += lat[runs];
                runs++;
                if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
                        failures++;
        }
        double elapsed = (now_us() - t0) / 1e6;
        sort_doubles(lat, (size_t) runs);
        printf("{\"runs\":%d,\"failures\":%d,\"seconds\":%.3f,\"throughput\":%.1f,\"mean_us\":%.1f,"
               "\"p50_us\":%.1f,\"p99_us\":%.1f,\"max_us\":%.1f}\n",
               runs, failures, elapsed, runs / elapsed, runs ? sum / runs : 0.0,
               runs ? lat[runs / 2] : 0.0, runs ? lat[(size_t) ((runs - 1) * 0.99)] : 0.0,
               runs ? lat[runs - 1] : 0.0);
        return 0;
}
