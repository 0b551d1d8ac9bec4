/* test-nodemap.c - node -> group lookups, request resolution, group order. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/config.h"
#include "util/hostlist.h"
#include "conf/nodemap.h"
#include "util/strv.h"
#include "test.h"

static const struct nodemap_group_def cluster[] = {
        { "cpu", "cn-[001-010]" },
        { "gpu", "gpu[1-3],gpu10" },
        { "big", "bigmem1" },
};

static struct nodemap *make(const struct nodemap_group_def *defs, size_t n) {
        struct nodemap *m = NULL;
        _cleanup_free_ char *err = NULL;
        int r = nodemap_new(defs, n, &m, &err);

        if (r < 0)
                TEST_FAIL("nodemap_new: %d %s", r, err ? err : "");
        return m;
}

static void test_lookup(void) {
        _cleanup_(nodemap_freep) struct nodemap *m = make(cluster, ELEMENTSOF(cluster));
        size_t g = 99;

        if (!m)
                return;
        CHECK_INT(nodemap_group_count(m), 3);
        CHECK_INT(nodemap_node_count(m), 15);
        CHECK_INT(nodemap_lookup(m, "cn-001", &g), 0);
        CHECK_INT(g, 0);
        CHECK_INT(nodemap_lookup(m, "cn-010", &g), 0);
        CHECK_INT(g, 0);
        CHECK_INT(nodemap_lookup(m, "gpu10", &g), 0);
        CHECK_INT(g, 1);
        CHECK_INT(nodemap_lookup(m, "bigmem1", &g), 0);
        CHECK_INT(g, 2);
        g = 99;
        CHECK_INT(nodemap_lookup(m, "cn-1", &g), -ENOENT);
        CHECK_INT(nodemap_lookup(m, "cn-011", &g), -ENOENT);
        CHECK_INT(nodemap_lookup(m, "", &g), -ENOENT);
        CHECK_INT(nodemap_lookup(m, "gpu4", &g), -ENOENT);
        CHECK_INT(g, 99);
        CHECK_STR(nodemap_group_name(m, 1), "gpu");
        CHECK(nodemap_group_name(m, 3) == NULL);
        CHECK_INT(nodemap_group_find(m, "big"), 2);
        CHECK_INT(nodemap_group_find(m, "nope"), -ENOENT);
}

static void test_resolve(void) {
        _cleanup_(nodemap_freep) struct nodemap *m = make(cluster, ELEMENTSOF(cluster));
        _cleanup_strv_free_ char **nodes = NULL;
        _cleanup_free_ size_t *groups = NULL;
        _cleanup_free_ char *err = NULL;
        size_t n;

        if (!m)
                return;
        CHECK_INT(hostlist_expand("cn-[003-004],gpu10,bigmem1", 100, &nodes, &n, NULL), 0);
        CHECK_INT(nodemap_resolve(m, nodes, n, &groups, NULL, NULL, &err), 0);
        CHECK(err == NULL);
        /* Expanded order: bigmem1 cn-003 cn-004 gpu10 */
        CHECK_INT(groups[0], 2);
        CHECK_INT(groups[1], 0);
        CHECK_INT(groups[2], 0);
        CHECK_INT(groups[3], 1);
}

static void test_resolve_empty(void) {
        _cleanup_(nodemap_freep) struct nodemap *m = make(cluster, ELEMENTSOF(cluster));
        size_t *groups = (size_t *) 0x1;

        if (!m)
                return;
        CHECK_INT(nodemap_resolve(m, NULL, 0, &groups, NULL, NULL, NULL), 0);
        CHECK(groups == NULL);
}

static void test_unknown_reported_compressed(void) {
        _cleanup_(nodemap_freep) struct nodemap *m = make(cluster, ELEMENTSOF(cluster));
        _cleanup_strv_free_ char **nodes = NULL;
        _cleanup_free_ char *err = NULL, *unknown = NULL, *ambiguous = NULL;
        size_t *groups = (size_t *) 0x1;
        size_t n;

        if (!m)
                return;
        CHECK_INT(hostlist_expand("cn-[009-015],gpu[3-5],x", 100, &nodes, &n, NULL), 0);
        CHECK_INT(nodemap_resolve(m, nodes, n, &groups, &unknown, &ambiguous, &err), -ENOENT);
        CHECK(groups == (size_t *) 0x1);
        CHECK_STR(unknown, "cn-[011-015],gpu[4-5],x");
        CHECK(ambiguous == NULL);
        CHECK_STR(err, "8 nodes in no group: cn-[011-015],gpu[4-5],x");
}

/* Thousands of scattered unknown nodes: what is wrong and the count first,
 * then a list cut between nodes ("and N more"), never mid-name. */
static void test_unknown_cut_between_nodes(void) {
        _cleanup_(nodemap_freep) struct nodemap *m = make(cluster, ELEMENTSOF(cluster));
        _cleanup_strv_free_ char **nodes = NULL, **back = NULL;
        _cleanup_free_ char *err = NULL, *list = NULL;
        size_t *groups = NULL, n = 0, nb = 0;
        FILE *f;
        size_t len = 0;

        if (!m)
                return;
        f = open_memstream(&list, &len);
        CHECK(f != NULL);
        if (!f)
                return;
        for (unsigned i = 1; i < 6000; i += 2)
                fprintf(f, "%szz%u", i == 1 ? "" : ",", i);
        fclose(f);
        CHECK_INT(hostlist_expand(list, 10000, &nodes, &n, NULL), 0);
        CHECK_INT(nodemap_resolve(m, nodes, n, &groups, NULL, NULL, &err), -ENOENT);
        CHECK(err && strncmp(err, "3000 nodes in no group: zz[1,3,5,", 33) == 0);
        CHECK(err && strlen(err) <= HOSTLIST_MESSAGE_MAX / 2);
        if (!err)
                return;
        char *more = strstr(err, "] and ");
        CHECK(more != NULL && strcmp(more + strlen(more) - 5, " more") == 0);
        if (more) {
                unsigned long rest = strtoul(more + 6, NULL, 10);
                more[1] = '\0';
                CHECK_INT(hostlist_expand(err + strlen("3000 nodes in no group: "), 10000, &back, &nb, NULL), 0);
                CHECK_INT(nb + rest, 3000);
                CHECK_STR(back[nb - 1], nodes[nb - 1]);
        }
}

static const struct nodemap_group_def overlapping[] = {
        { "a", "cn[1-10]" },
        { "b", "cn[8-12]" },
        { "c", "cn[10],gpu1" },
};

static void test_overlapping_reported(void) {
        _cleanup_(nodemap_freep) struct nodemap *m = make(overlapping, ELEMENTSOF(overlapping));
        _cleanup_strv_free_ char **nodes = NULL, **nodes2 = NULL;
        _cleanup_free_ char *err = NULL, *err2 = NULL, *unknown = NULL, *ambiguous = NULL, *amb2 = NULL;
        size_t *groups = NULL;
        size_t n, g = 99;

        if (!m)
                return;
        CHECK_INT(nodemap_node_count(m), 13);
        CHECK_INT(nodemap_lookup(m, "cn8", &g), -ENOTUNIQ);
        CHECK_INT(nodemap_lookup(m, "cn10", &g), -ENOTUNIQ);
        CHECK_INT(g, 99);
        CHECK_INT(nodemap_lookup(m, "cn11", &g), 0);
        CHECK_INT(g, 1);
        CHECK_INT(nodemap_lookup_position(m, "cn9", NULL, NULL), -ENOTUNIQ);

        /* Ambiguous only. */
        CHECK_INT(hostlist_expand("cn[6-9],gpu1", 100, &nodes, &n, NULL), 0);
        CHECK_INT(nodemap_resolve(m, nodes, n, &groups, &unknown, &ambiguous, &err), -ENOTUNIQ);
        CHECK(groups == NULL);
        CHECK(unknown == NULL);
        CHECK_STR(ambiguous, "cn[8-9]");
        CHECK_STR(err, "2 nodes in more than one group: cn[8-9]");

        /* Both kinds, reported separately. */
        CHECK_INT(hostlist_expand("cn[9-14],z1", 100, &nodes2, &n, NULL), 0);
        CHECK_INT(nodemap_resolve(m, nodes2, n, &groups, NULL, &amb2, &err2), -ENOENT);
        CHECK_STR(amb2, "cn[9-10]");
        CHECK_STR(err2, "3 nodes in no group: cn[13-14],z1; 2 nodes in more than one group: cn[9-10]");
}

static void test_group_order(void) {
        static const struct nodemap_group_def defs[] = {
                { "cpu", "cn[10-12],cn[1-3],cn[2],cn9" },
                { "empty", "" },
        };
        _cleanup_(nodemap_freep) struct nodemap *m = make(defs, ELEMENTSOF(defs));
        static const char *const want[] = { "cn1", "cn2", "cn3", "cn9", "cn10", "cn11", "cn12" };
        char *const *nodes;
        size_t n = 0;

        if (!m)
                return;
        nodes = nodemap_group_nodes(m, 0, &n);
        CHECK_INT(n, ELEMENTSOF(want));
        for (size_t i = 0; i < n && i < ELEMENTSOF(want); i++)
                CHECK_STR(nodes[i], want[i]);
        CHECK(nodes[n] == NULL);
        /* Highest-numbered first is the same array backwards. */
        CHECK_STR(nodes[n - 1], "cn12");
        for (size_t i = 0; i < ELEMENTSOF(want); i++) {
                size_t g = 99, idx = 99;
                CHECK_INT(nodemap_lookup_position(m, want[i], &g, &idx), 0);
                CHECK_INT(g, 0);
                CHECK_INT(idx, i);
        }
        CHECK_INT(nodemap_lookup_position(m, "cn4", NULL, NULL), -ENOENT);
        nodes = nodemap_group_nodes(m, 1, &n);
        CHECK_INT(n, 0);
        CHECK(nodes && nodes[0] == NULL);
        CHECK(nodemap_group_nodes(m, 2, &n) == NULL);
        CHECK_INT(n, 0);
}

static void test_bad_groups(void) {
        static const struct nodemap_group_def bad[] = {
                { "ok", "cn[1-2]" },
                { "broken", "cn[5-3]" },
        };
        static const struct nodemap_group_def noname[] = { { NULL, "cn1" } };
        struct nodemap *m = (struct nodemap *) 0x1;
        _cleanup_free_ char *err = NULL, *err2 = NULL;

        CHECK_INT(nodemap_new(bad, ELEMENTSOF(bad), &m, &err), -EINVAL);
        CHECK(m == (struct nodemap *) 0x1);
        CHECK(err && strstr(err, "group \"broken\": hostlist element \"cn[5-3]\""));
        CHECK_INT(nodemap_new(noname, 1, &m, &err2), -EINVAL);
        CHECK_STR(err2, "group 1 has no name");
        CHECK_INT(nodemap_new(NULL, 0, &m, NULL), 0);
        CHECK(m != (struct nodemap *) 0x1);
        CHECK_INT(nodemap_node_count(m), 0);
        CHECK_INT(nodemap_lookup(m, "cn1", NULL), -ENOENT);
        nodemap_free(m);
        CHECK(nodemap_free(NULL) == NULL);
}

static void test_from_config(void) {
        struct config_group groups[2] = {
                { .name = (char *) "a", .nodes = (char *) "n[1-4]" },
                { .name = (char *) "b", .nodes = (char *) "m[1-2]" },
        };
        struct config c = { .groups = groups, .n_groups = 2 };
        _cleanup_(nodemap_freep) struct nodemap *m = NULL;
        size_t g;

        CHECK_INT(nodemap_new_from_config(&c, &m, NULL), 0);
        CHECK_INT(nodemap_node_count(m), 6);
        CHECK_INT(nodemap_lookup(m, "m2", &g), 0);
        CHECK_INT(g, 1);
}

static void test_100k(void) {
        static const struct nodemap_group_def defs[] = {
                { "cpu", "cn[1-65536],cn[65537-90000]" },
                { "gpu", "gpu[00001-10000]" },
        };
        _cleanup_(nodemap_freep) struct nodemap *m = make(defs, ELEMENTSOF(defs));
        _cleanup_strv_free_ char **nodes = NULL;
        _cleanup_free_ size_t *groups = NULL;
        _cleanup_free_ char *err = NULL, *unknown = NULL;
        size_t n, g, bad = 0;
        char name[32];

        if (!m)
                return;
        CHECK_INT(nodemap_node_count(m), 100000);
        for (unsigned i = 1; i <= 90000; i++) {
                snprintf(name, sizeof(name), "cn%u", i);
                if (nodemap_lookup(m, name, &g) != 0 || g != 0)
                        bad++;
        }
        for (unsigned i = 1; i <= 10000; i++) {
                snprintf(name, sizeof(name), "gpu%05u", i);
                if (nodemap_lookup(m, name, &g) != 0 || g != 1)
                        bad++;
        }
        for (unsigned i = 90001; i <= 100000; i++) {
                snprintf(name, sizeof(name), "cn%u", i);
                if (nodemap_lookup(m, name, &g) != -ENOENT)
                        bad++;
        }
        CHECK_INT(bad, 0);

        CHECK_INT(hostlist_expand("cn[60001-65536],cn[65537-90010],gpu[09990-10000]", 100000,
                                  &nodes, &n, NULL), 0);
        CHECK_INT(nodemap_resolve(m, nodes, n, &groups, &unknown, NULL, &err), -ENOENT);
        CHECK_STR(unknown, "cn[90001-90010]");
        CHECK(groups == NULL);
}

int main(void) {
        RUN(test_lookup);
        RUN(test_resolve);
        RUN(test_resolve_empty);
        RUN(test_unknown_reported_compressed);
        RUN(test_unknown_cut_between_nodes);
        RUN(test_overlapping_reported);
        RUN(test_group_order);
        RUN(test_bad_groups);
        RUN(test_from_config);
        RUN(test_100k);
        return test_done();
}
