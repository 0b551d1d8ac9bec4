/* test-state.c - state built from journal records: apply, supersede, ids, compaction round trip, 10,000 nodes by name. */
#include <jansson.h>
#include <string.h>

#include "journal/records.h"
#include "journal/state.h"
#include "test.h"

static json_t *rec(const char *text) {
        json_error_t e;
        json_t *j = json_loads(text, 0, &e);
        if (!j)
                printf("# bad test json: %s: %s\n", text, e.text);
        return j;
}

static int apply(struct state *s, const char *text) {
        _cleanup_free_ char *err = NULL;
        json_t *j = rec(text);
        int r = state_apply(s, j, &err);
        json_decref(j);
        return r;
}

static void test_names(void) {
        CHECK_STR(state_op_kind_to_string(STATE_OP_RESUME_FAIL), "resume_fail");
        CHECK_INT(state_op_kind_from_string("reboot"), STATE_OP_REBOOT);
        CHECK_INT(state_op_kind_from_string("nope"), -EINVAL);
        CHECK_INT(state_op_kind_from_string(NULL), -EINVAL);
        CHECK_STR(state_op_state_to_string(STATE_OP_CANCELLED), "cancelled");
        CHECK_INT(state_op_state_from_string("running"), STATE_OP_RUNNING);
        CHECK(state_op_state_is_active(STATE_OP_PENDING));
        CHECK(!state_op_state_is_active(STATE_OP_DONE));
        CHECK(state_op_kind_to_string(_STATE_OP_KIND_MAX) == NULL);
}

static void test_apply_and_ids(void) {
        _cleanup_(state_freep) struct state *s = NULL;
        _cleanup_free_ char *id = NULL;
        const struct state_node *n;

        CHECK_INT(state_new("abcd", &s), 0);
        CHECK_INT(state_new_id(s, 'r', &id), 0);
        CHECK_STR(id, "r-abcd-1");
        free(id);
        CHECK_INT(apply(s, "{\"kind\":\"request\",\"id\":\"r-0001-41\",\"type\":\"resume\",\"operations\":2}"), 0);
        CHECK_INT(apply(s, "{\"kind\":\"op\",\"id\":\"o-0001-42\",\"node\":\"cl10\",\"group\":\"g\","
                           "\"op\":\"resume\",\"state\":\"pending\",\"request\":\"r-0001-41\",\"time\":100}"), 0);
        CHECK_INT(apply(s, "{\"kind\":\"op\",\"id\":\"o-0001-43\",\"node\":\"cl2\",\"group\":\"g\","
                           "\"op\":\"resume\",\"state\":\"pending\",\"request\":\"r-0001-41\",\"time\":100}"), 0);
        CHECK_INT(state_n_nodes(s), 2);
        CHECK_INT(state_n_nodes_in(s, STATE_OP_PENDING), 2);
        CHECK_INT(state_n_requests(s), 1);
        n = state_node_find(s, "cl2");
        CHECK(n != NULL);
        if (n) {
                CHECK_STR(n->op.id, "o-0001-43");
                CHECK_STR(n->op.request_id, "r-0001-41");
                CHECK_STR(n->group, "g");
                CHECK_INT(n->op.kind, STATE_OP_RESUME);
                CHECK_INT(n->op.created, 100);
        }
        CHECK(state_node_find(s, "cl3") == NULL);
        /* The counter continues past every id seen, whatever its prefix. */
        CHECK_INT(state_new_id(s, 'o', &id), 0);
        CHECK_STR(id, "o-abcd-44");

        /* Cancelling, then a newer op on the same node. */
        CHECK_INT(apply(s, "{\"kind\":\"op_state\",\"id\":\"o-0001-43\",\"node\":\"cl2\",\"state\":\"cancelled\",\"time\":105}"), 0);
        CHECK_INT(state_n_nodes_in(s, STATE_OP_CANCELLED), 1);
        CHECK_INT(apply(s, "{\"kind\":\"op\",\"id\":\"o-0001-50\",\"node\":\"cl2\",\"group\":\"g\","
                           "\"op\":\"suspend\",\"state\":\"pending\",\"time\":105}"), 0);
        n = state_node_find(s, "cl2");
        CHECK(n && n->op.kind == STATE_OP_SUSPEND && n->op.state == STATE_OP_PENDING);
        /* A stale op_state about the replaced op changes nothing. */
        CHECK_INT(apply(s, "{\"kind\":\"op_state\",\"id\":\"o-0001-43\",\"node\":\"cl2\",\"state\":\"done\"}"), 0);
        CHECK(n && n->op.state == STATE_OP_PENDING);
}

static void test_bad_records(void) {
        _cleanup_(state_freep) struct state *s = NULL;
        _cleanup_free_ char *err = NULL;

        CHECK_INT(state_new("0000", &s), 0);
        CHECK_INT(state_apply(s, NULL, &err), -EBADMSG);
        CHECK(err != NULL);
        CHECK_INT(apply(s, "[]"), -EBADMSG);
        CHECK_INT(apply(s, "{}"), -EBADMSG);
        CHECK_INT(apply(s, "{\"kind\":\"op\",\"id\":\"o-1\"}"), -EBADMSG);
        CHECK_INT(apply(s, "{\"kind\":\"op\",\"id\":\"o-1\",\"node\":\"a\",\"group\":\"g\",\"op\":\"fly\",\"state\":\"pending\"}"),
                  -EBADMSG);
        CHECK_INT(apply(s, "{\"kind\":\"op\",\"id\":\"o-1\",\"node\":\"a\",\"group\":\"g\",\"op\":\"resume\",\"state\":\"x\"}"),
                  -EBADMSG);
        CHECK_INT(apply(s, "{\"kind\":\"request\",\"id\":\"r-1\"}"), -EBADMSG);
        CHECK_INT(apply(s, "{\"kind\":\"request\",\"id\":\"r-1\",\"type\":\"resize\"}"), -EBADMSG);
        CHECK_INT(apply(s, "{\"kind\":\"seq\",\"next\":\"x\"}"), -EBADMSG);
        /* Newer kinds are skipped, not errors. */
        CHECK_INT(apply(s, "{\"kind\":\"from_the_future\"}"), 0);
        CHECK_INT(state_n_nodes(s), 0);
}

static int collect(const struct state_node *n, void *userdata) {
        strcat(userdata, n->name);
        strcat(userdata, " ");
        return 0;
}

static void test_order_and_compaction(void) {
        _cleanup_(state_freep) struct state *s = NULL, *t = NULL;
        _cleanup_(json_decrefp) json_t *live = NULL, *live2 = NULL;
        char names[256] = "";
        unsigned min = 0;
        size_t i;
        json_t *r;

        CHECK_INT(state_new("0000", &s), 0);
        CHECK_INT(apply(s, "{\"kind\":\"request\",\"id\":\"r-0-1\",\"type\":\"resume\",\"operations\":3}"), 0);
        CHECK_INT(apply(s, "{\"kind\":\"request\",\"id\":\"r-0-2\",\"type\":\"suspend\",\"operations\":1}"), 0);
        CHECK_INT(apply(s, "{\"kind\":\"request\",\"id\":\"r-0-3\",\"type\":\"resume\",\"operations\":0}"), 0);
        CHECK_INT(apply(s, "{\"kind\":\"request\",\"id\":\"r-0-4\",\"type\":\"resize\",\"group\":\"g\",\"min\":2}"), 0);
        CHECK_INT(apply(s, "{\"kind\":\"request\",\"id\":\"r-0-9\",\"type\":\"resize\",\"group\":\"g\",\"min\":3}"), 0);
        const char *nodes[] = { "n10", "n9", "n1" };
        for (i = 0; i < 3; i++) {
                char buf[256];
                snprintf(buf, sizeof(buf), "{\"kind\":\"op\",\"id\":\"o-0-%zu\",\"node\":\"%s\",\"group\":\"g\","
                         "\"op\":\"resume\",\"state\":\"pending\",\"request\":\"r-0-1\",\"time\":7}", 10 + i, nodes[i]);
                CHECK_INT(apply(s, buf), 0);
        }
        /* n1 superseded by r-0-2's suspend, later done. */
        CHECK_INT(apply(s, "{\"kind\":\"op\",\"id\":\"o-0-20\",\"node\":\"n1\",\"group\":\"g\",\"op\":\"suspend\","
                           "\"state\":\"pending\",\"request\":\"r-0-2\",\"time\":8}"), 0);
        CHECK_INT(apply(s, "{\"kind\":\"op_state\",\"id\":\"o-0-20\",\"node\":\"n1\",\"state\":\"done\",\"time\":9}"), 0);

        state_foreach_node(s, collect, names);
        CHECK_STR(names, "n1 n9 n10 ");
        CHECK_INT(state_resize_min(s, "g", &min), 0);
        CHECK_INT(min, 3);
        CHECK_INT(state_resize_min(s, "h", &min), -ENOENT);

        CHECK_INT(state_live_records(s, &live), 0);
        /* seq, r-0-1, r-0-2 (r-0-3 created nothing), resize g, 3 ops */
        CHECK_INT(json_array_size(live), 7);

        /* Replaying the live records rebuilds the same state. */
        CHECK_INT(state_new("1111", &t), 0);
        json_array_foreach(live, i, r)
                CHECK_INT(state_apply(t, r, NULL), 0);
        CHECK_INT(state_n_nodes(t), 3);
        CHECK_INT(state_n_nodes_in(t, STATE_OP_DONE), 1);
        CHECK_INT(state_n_nodes_in(t, STATE_OP_PENDING), 2);
        CHECK_INT(state_resize_min(t, "g", &min), 0);
        CHECK_INT(min, 3);
        const struct state_node *n = state_node_find(t, "n1");
        CHECK(n && n->op.created == 8 && n->op.changed == 9 && strcmp(n->op.request_id, "r-0-2") == 0);
        CHECK_INT(state_live_records(t, &live2), 0);
        CHECK(json_equal(live, live2));
        {
                _cleanup_free_ char *id = NULL;
                CHECK_INT(state_new_id(t, 'r', &id), 0);
                CHECK_STR(id, "r-1111-21");
        }
}

static void test_node_records(void) {
        _cleanup_(state_freep) struct state *s = NULL;
        _cleanup_(state_freep) struct state *s2 = NULL;
        json_t *live = NULL, *v;
        const struct state_node *n;
        struct record_request q = {};
        size_t i;

        CHECK_INT(state_new("abcd", &s), 0);
        CHECK_INT(apply(s, "{\"kind\":\"request\",\"id\":\"r-x-1\",\"type\":\"resume\",\"operations\":1}"), 0);
        CHECK_INT(apply(s, "{\"kind\":\"op\",\"id\":\"o-x-2\",\"node\":\"cl1\",\"group\":\"g\","
                           "\"op\":\"resume\",\"state\":\"running\",\"request\":\"r-x-1\",\"time\":5}"), 0);
        /* the lifecycle's progress: step, instance, address */
        CHECK_INT(apply(s, "{\"kind\":\"node\",\"node\":\"cl1\",\"op\":\"o-x-2\",\"step\":\"building\","
                           "\"instance_id\":\"i-1\",\"address\":null,\"time\":7}"), 0);
        n = state_node_find(s, "cl1");
        CHECK(n && n->step && strcmp(n->step, "building") == 0);
        CHECK(n && n->instance_id && strcmp(n->instance_id, "i-1") == 0);
        CHECK(n && !n->address);
        CHECK_INT(n ? n->step_changed : 0, 7);
        CHECK_INT(state_request_get(s, "r-x-1", &q), 0);
        CHECK_STR(q.id, "r-x-1");
        CHECK_INT(state_request_get(s, "r-nope", &q), -ENOENT);
        CHECK_INT(state_request_get(s, NULL, &q), -ENOENT);

        /* wrong types are refused and change nothing */
        CHECK_INT(apply(s, "{\"kind\":\"node\",\"node\":\"cl1\",\"step\":7}"), -EBADMSG);
        CHECK_INT(apply(s, "{\"kind\":\"node\",\"instance_id\":\"i\"}"), -EBADMSG);
        CHECK(n && n->step && strcmp(n->step, "building") == 0);
        /* a node without an operation: ignored */
        CHECK_INT(apply(s, "{\"kind\":\"node\",\"node\":\"zz9\",\"step\":\"x\"}"), 0);
        CHECK(state_node_find(s, "zz9") == NULL);

        /* a record of a superseded operation keeps the instance, not the step */
        CHECK_INT(apply(s, "{\"kind\":\"op\",\"id\":\"o-x-3\",\"node\":\"cl1\",\"group\":\"g\","
                           "\"op\":\"suspend\",\"state\":\"pending\",\"time\":8}"), 0);
        n = state_node_find(s, "cl1");
        CHECK(n && !n->step);
        CHECK_INT(apply(s, "{\"kind\":\"node\",\"node\":\"cl1\",\"op\":\"o-x-2\",\"step\":\"addressing\","
                           "\"instance_id\":\"i-1\",\"address\":\"10.0.0.5\",\"time\":9}"), 0);
        CHECK(n && !n->step);
        CHECK(n && n->address && strcmp(n->address, "10.0.0.5") == 0);
        CHECK_INT(apply(s, "{\"kind\":\"op_state\",\"id\":\"o-x-3\",\"node\":\"cl1\",\"state\":\"failed\","
                           "\"note\":\"why\",\"time\":10}"), 0);
        CHECK(n && n->note && strcmp(n->note, "why") == 0);

        /* compaction keeps it all */
        CHECK_INT(state_live_records(s, &live), 0);
        CHECK_INT(state_new("abcd", &s2), 0);
        json_array_foreach(live, i, v)
                CHECK_INT(state_apply(s2, v, NULL), 0);
        json_decref(live);
        n = state_node_find(s2, "cl1");
        CHECK(n && n->instance_id && strcmp(n->instance_id, "i-1") == 0);
        CHECK(n && n->address && strcmp(n->address, "10.0.0.5") == 0);
        CHECK(n && n->note && strcmp(n->note, "why") == 0);
        CHECK(n && n->op.state == STATE_OP_FAILED);
}

/* 10,000 nodes: each found by name (the index grows past several
 * rehashes), unknown names not, counts by state kept without a walk. */
static void test_many_nodes(void) {
        _cleanup_(state_freep) struct state *s = NULL;
        size_t found = 0;

        CHECK_INT(state_new("abcd", &s), 0);
        CHECK(state_node_find(s, "g1n1") == NULL);
        for (unsigned i = 0; i < 10000; i++) {
                char text[256];

                snprintf(text, sizeof(text),
                         "{\"kind\":\"op\",\"id\":\"o-x-%u\",\"node\":\"g%un%u\",\"group\":\"g\","
                         "\"op\":\"resume\",\"state\":\"pending\",\"time\":1}",
                         i + 1, i % 10, i / 10 + 1);
                if (apply(s, text) != 0) {
                        TEST_FAIL("record %u refused", i);
                        return;
                }
        }
        for (unsigned i = 0; i < 10000; i++) {
                char name[32];
                const struct state_node *n;

                snprintf(name, sizeof(name), "g%un%u", i % 10, i / 10 + 1);
                n = state_node_find(s, name);
                if (n && strcmp(n->name, name) == 0)
                        found++;
        }
        CHECK_INT(found, 10000);
        CHECK(state_node_find(s, "g10n1") == NULL);
        CHECK(state_node_find(s, "g0n0") == NULL);
        CHECK(state_node_find(s, NULL) == NULL);
        CHECK_INT(state_n_nodes(s), 10000);
        CHECK_INT(state_n_nodes_in(s, STATE_OP_PENDING), 10000);
        CHECK_INT(apply(s, "{\"kind\":\"op_state\",\"id\":\"o-x-1\",\"node\":\"g0n1\",\"state\":\"running\",\"time\":2}"), 0);
        CHECK_INT(apply(s, "{\"kind\":\"op_state\",\"id\":\"o-x-2\",\"node\":\"g1n1\",\"state\":\"failed\",\"time\":2}"), 0);
        /* About a replaced operation: no change. */
        CHECK_INT(apply(s, "{\"kind\":\"op_state\",\"id\":\"o-x-9\",\"node\":\"g2n1\",\"state\":\"done\",\"time\":2}"), 0);
        /* A new operation on a known node moves it between counts. */
        CHECK_INT(apply(s, "{\"kind\":\"op\",\"id\":\"o-x-20001\",\"node\":\"g1n1\",\"group\":\"g\","
                           "\"op\":\"suspend\",\"state\":\"done\",\"time\":3}"), 0);
        CHECK_INT(state_n_nodes(s), 10000);
        CHECK_INT(state_n_nodes_in(s, STATE_OP_PENDING), 9998);
        CHECK_INT(state_n_nodes_in(s, STATE_OP_RUNNING), 1);
        CHECK_INT(state_n_nodes_in(s, STATE_OP_FAILED), 0);
        CHECK_INT(state_n_nodes_in(s, STATE_OP_DONE), 1);
        CHECK_INT(state_n_nodes_in(s, _STATE_OP_STATE_MAX), 0);
}

int main(void) {
        RUN(test_names);
        RUN(test_apply_and_ids);
        RUN(test_bad_records);
        RUN(test_order_and_compaction);
        RUN(test_node_records);
        RUN(test_many_nodes);
        return test_done();
}
