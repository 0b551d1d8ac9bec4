/* metrics: the daemon's counters and gauges in the Prometheus text format. */
#pragma once

#include <stdint.h>

struct cloud;
struct journal;
struct lifecycle;
struct state;

/* A histogram of durations in seconds, with fixed buckets suited to
 * instance boots (5 s to 30 min). */
#define METRICS_HISTOGRAM_BUCKETS 11
struct metrics_histogram {
        uint64_t buckets[METRICS_HISTOGRAM_BUCKETS]; /* not cumulative; last = above every bound */
        uint64_t count;
        double sum;
};

void metrics_histogram_observe(struct metrics_histogram *h, double seconds);

/* What the exposition is built from. Pointers may be NULL where the daemon
 * runs without that part (no cloud in tests): its metrics are left out. */
struct metrics_source {
        struct state *state;            /* walked, not changed */
        const struct journal *journal;
        const struct lifecycle *lifecycle;
        const struct cloud *cloud;
        const uint64_t *requests;       /* _PROTOCOL_REQUEST_MAX counters, by type (protocol.h) */
        uint64_t requests_refused;      /* bad frames, bad requests, permission denied */
        uint64_t uptime_seconds;
};

/* The exposition (text/plain; version=0.0.4) in a malloc'ed string. */
int metrics_render(const struct metrics_source *src, char **ret_text);
