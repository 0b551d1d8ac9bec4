/* A histogram of durations in seconds. */
#include "util/histogram.h"

#include "util/macro.h"

const double histogram_bounds[HISTOGRAM_BUCKETS - 1] = {
        5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800,
};

void histogram_observe(struct histogram *h, double seconds) {
        size_t i = 0;

        while (i < ELEMENTSOF(histogram_bounds) && seconds > histogram_bounds[i])
                i++;
        h->buckets[i]++;
        h->count++;
        h->sum += seconds;
}
