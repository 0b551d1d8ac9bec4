/* histogram.h - a histogram of durations with fixed buckets (instance boots). */
#pragma once

#include <stdint.h>

/* Buckets suited to instance boots: 5 s to 30 min, then +Inf. */
#define HISTOGRAM_BUCKETS 11
extern const double histogram_bounds[HISTOGRAM_BUCKETS - 1];

struct histogram {
        uint64_t buckets[HISTOGRAM_BUCKETS]; /* not cumulative; last = above every bound */
        uint64_t count;
        double sum;
};

void histogram_observe(struct histogram *h, double seconds);
