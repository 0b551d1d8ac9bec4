/* test-capacity.c - groups short of capacity: marked, extended, expired, enabled again. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "ops/capacity.h"
#include "test.h"

static void test_mark_and_expire(void) {
        _cleanup_(capacity_freep) struct capacity *c = NULL;
        struct capacity_group g;

        CHECK_INT(capacity_new(&c), 0);
        CHECK(!capacity_short(c, "gpu", 1000, &g));
        CHECK_INT(capacity_mark(c, "gpu", 1000, 600, "HTTP 403: Quota exceeded for cores (request req-1)"), 0);
        CHECK(capacity_short(c, "gpu", 1000, &g));
        CHECK_STR(g.group, "gpu");
        CHECK_INT(g.since, 1000);
        CHECK_INT(g.until, 1600);
        CHECK_INT(g.failovers, 1);
        CHECK(g.reason && strstr(g.reason, "req-1"));
        CHECK(!capacity_short(c, "cpu", 1000, NULL));
        /* another failure later: the end moves, the start stays */
        CHECK_INT(capacity_mark(c, "gpu", 1100, 600, "No valid host was found."), 0);
        capacity_count_failover(c, "gpu");
        CHECK(capacity_short(c, "gpu", 1599, &g));
        CHECK_INT(g.since, 1000);
        CHECK_INT(g.until, 1700);
        CHECK_INT(g.failovers, 3);
        CHECK(g.reason && strstr(g.reason, "No valid host"));
        /* over */
        CHECK(!capacity_short(c, "gpu", 1700, &g));
        CHECK_INT(capacity_list(c, 1700, NULL, 0), 0);
        /* a cooldown of 0 marks nothing */
        CHECK_INT(capacity_mark(c, "gpu", 2000, 0, "x"), 0);
        CHECK(!capacity_short(c, "gpu", 2000, NULL));
}

static void test_enable_and_list(void) {
        _cleanup_(capacity_freep) struct capacity *c = NULL;
        struct capacity_group l[4];

        CHECK_INT(capacity_new(&c), 0);
        CHECK_INT(capacity_mark(c, "a", 10, 100, NULL), 0);
        CHECK_INT(capacity_mark(c, "b", 20, 100, "why"), 0);
        CHECK_INT(capacity_mark(c, "c", 30, 5, "soon over"), 0);
        CHECK_INT(capacity_list(c, 40, l, 4), 2);
        CHECK_STR(l[0].group, "a");
        CHECK_STR(l[1].group, "b");
        CHECK(capacity_enable(c, "a"));
        CHECK(!capacity_enable(c, "a"));
        CHECK(!capacity_short(c, "a", 40, NULL));
        CHECK(capacity_short(c, "b", 40, NULL));
        CHECK_INT(capacity_list(c, 40, l, 1), 1);
        CHECK_STR(l[0].group, "b");
}

struct seen {
        char log[256];
};

static void on_change(const struct capacity_group *g, enum capacity_change what, void *userdata) {
        struct seen *s = userdata;
        size_t len = strlen(s->log);
        static const char *const names[] = { "marked", "expired", "enabled" };

        snprintf(s->log + len, sizeof(s->log) - len, "%s%s %s %lld-%lld %u", len ? "; " : "", names[what], g->group,
                 (long long) g->since, (long long) g->until, g->failovers);
}

/* Every change reaches the hook (the core journals it); a restored mark
 * keeps its start, end and count, is not reported, and expires reported. */
static void test_hook_and_restore(void) {
        _cleanup_(capacity_freep) struct capacity *c = NULL;
        struct seen seen = {};
        struct capacity_group g;

        CHECK_INT(capacity_new(&c), 0);
        capacity_set_hook(c, on_change, &seen);
        CHECK_INT(capacity_mark(c, "a", 10, 100, "why"), 0);
        capacity_count_failover(c, "a");
        CHECK(capacity_enable(c, "a"));
        CHECK_INT(capacity_restore(c, &(struct capacity_group) { .group = "b", .since = 5, .until = 50,
                                                                 .failovers = 4, .reason = "quota" }), 0);
        CHECK(capacity_short(c, "b", 49, &g));
        CHECK_INT(g.since, 5);
        CHECK_INT(g.until, 50);
        CHECK_INT(g.failovers, 4);
        CHECK_STR(g.reason, "quota");
        CHECK(!capacity_short(c, "b", 50, NULL));
        CHECK_STR(seen.log, "marked a 10-110 1; marked a 10-110 2; enabled a 10-110 2; expired b 5-50 4");
        CHECK_INT(capacity_restore(c, &(struct capacity_group) { .since = 1 }), -EINVAL);
}

int main(void) {
        RUN(test_mark_and_expire);
        RUN(test_enable_and_list);
        RUN(test_hook_and_restore);
        return test_done();
}
