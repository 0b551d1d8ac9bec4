/* test-ctld.c - the name index of a Slurm node load: every node found, unknown names not, linear fallback; references. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "slurm/ctld.h"
#include "test.h"

static struct ctld_nodes *make(size_t count) {
        struct ctld_nodes *n = calloc(1, sizeof(*n));

        n->nodes = calloc(count ? count : 1, sizeof(*n->nodes));
        for (size_t i = 0; i < count; i++) {
                char name[32];
                snprintf(name, sizeof(name), "g%zun%zu", i % 10, i / 10 + 1);
                n->nodes[n->n].name = strdup(name);
                n->nodes[n->n].state_str = strdup("IDLE");
                n->nodes[n->n++].state = (uint32_t) i;
        }
        return n;
}

static void test_index_finds_every_node(void) {
        _cleanup_(ctld_nodes_freep) struct ctld_nodes *n = make(10000);

        CHECK_INT(ctld_nodes_index(n), 0);
        CHECK(n->n_index >= 2 * n->n);
        for (size_t i = 0; i < n->n; i++) {
                const struct ctld_node *x = ctld_nodes_find(n, n->nodes[i].name);
                if (x != &n->nodes[i]) {
                        TEST_FAIL("%s not found at %zu", n->nodes[i].name, i);
                        break;
                }
        }
        CHECK(!ctld_nodes_find(n, "g0n0"));
        CHECK(!ctld_nodes_find(n, "g10n1"));
        CHECK(!ctld_nodes_find(n, ""));
        CHECK(!ctld_nodes_find(n, NULL));
        CHECK(!ctld_nodes_find(NULL, "g0n1"));
        CHECK_STR(ctld_nodes_find(n, "g9n1000")->name, "g9n1000");
}

static void test_without_index(void) {
        _cleanup_(ctld_nodes_freep) struct ctld_nodes *n = make(50);

        CHECK(!n->index);
        CHECK_STR(ctld_nodes_find(n, "g3n2")->name, "g3n2");
        CHECK(!ctld_nodes_find(n, "g3n9"));
}

static void test_empty_and_reindex(void) {
        _cleanup_(ctld_nodes_freep) struct ctld_nodes *n = make(0);

        CHECK_INT(ctld_nodes_index(n), 0);
        CHECK(!ctld_nodes_find(n, "g0n1"));
        ctld_nodes_free(n);
        n = make(3);
        CHECK_INT(ctld_nodes_index(n), 0);
        free(n->nodes[1].name);
        n->nodes[1].name = strdup("renamed");
        CHECK_INT(ctld_nodes_index(n), 0);
        CHECK_STR(ctld_nodes_find(n, "renamed")->name, "renamed");
        CHECK(!ctld_nodes_find(n, "g1n1"));
}

/* A load handed to several holders lives until the last lets go (ASan
 * and valgrind see a double free or a leak here). */
static void test_references(void) {
        struct ctld_nodes *n = make(3);

        CHECK_INT(ctld_nodes_index(n), 0);
        CHECK(ctld_nodes_ref(n) == n);
        CHECK(ctld_nodes_ref(n) == n);
        CHECK_INT((int) n->n_extra_refs, 2);
        CHECK(!ctld_nodes_free(n));
        CHECK(!ctld_nodes_free(n));
        CHECK_INT((int) n->n_extra_refs, 0);
        CHECK_STR(ctld_nodes_find(n, "g1n1")->name, "g1n1");
        CHECK(!ctld_nodes_free(n));
        CHECK(!ctld_nodes_ref(NULL));
        CHECK(!ctld_nodes_free(NULL));
}

int main(void) {
        RUN(test_index_finds_every_node);
        RUN(test_without_index);
        RUN(test_empty_and_reindex);
        RUN(test_references);
        return test_done();
}
