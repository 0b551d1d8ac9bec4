/* metrics: the daemon's counters and gauges in the Prometheus text format. */
#pragma once

#include <stdint.h>

#include "util/histogram.h"

struct cloud;
struct journal;
struct lifecycle;
struct state;

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
