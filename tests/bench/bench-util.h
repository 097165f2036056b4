/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What the bench programs share: a clock and a sort for their samples. */

#include <stdlib.h>
#include <time.h>

static inline double now_us(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec * 1e6 + (double) ts.tv_nsec / 1e3;
}

static inline int cmp_double(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;

        return (x > y) - (x < y);
}

static inline void sort_doubles(double *v, size_t n) {
        qsort(v, n, sizeof(double), cmp_double);
}
