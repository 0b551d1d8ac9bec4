/* test-metrics.c - histograms and the exposition text without a daemon. */
#include <stdlib.h>
#include <string.h>

#include "metrics/metrics.h"
#include "proto/protocol.h"
#include "test.h"

static void test_histogram_buckets(void) {
        struct histogram h = {};

        histogram_observe(&h, 0.5);   /* le 5 */
        histogram_observe(&h, 5);     /* le 5: bounds are inclusive */
        histogram_observe(&h, 45);    /* le 60 */
        histogram_observe(&h, 5000);  /* +Inf */
        CHECK(h.count == 4);
        CHECK(h.buckets[0] == 2);
        CHECK(h.buckets[4] == 1);
        CHECK(h.buckets[HISTOGRAM_BUCKETS - 1] == 1);
        CHECK(h.sum > 5050.4 && h.sum < 5050.6);
}

static void test_render_requests(void) {
        uint64_t requests[_PROTOCOL_REQUEST_MAX] = {};
        struct metrics_source src = { .requests = requests, .requests_refused = 3, .uptime_seconds = 9 };
        char *text = NULL;

        requests[PROTOCOL_REQUEST_RESUME] = 7;
        CHECK(metrics_render(&src, &text) == 0);
        CHECK(text && strstr(text, "elasticd_requests_total{type=\"resume\"} 7\n"));
        CHECK(text && strstr(text, "# TYPE elasticd_requests_total counter\n"));
        CHECK(text && strstr(text, "elasticd_requests_refused_total 3\n"));
        CHECK(text && strstr(text, "elasticd_uptime_seconds 9\n"));
        /* no lifecycle or cloud: their families are left out */
        CHECK(text && !strstr(text, "elasticd_cloud_"));
        free(text);
}

int main(void) {
        RUN(test_histogram_buckets);
        RUN(test_render_requests);
        return test_done();
}
