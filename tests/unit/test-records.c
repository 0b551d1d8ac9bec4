/* test-records.c - journal records: every kind round-trips, journals as earlier versions wrote them parse, bad records are refused naming the field. */
#include <errno.h>
#include <jansson.h>
#include <string.h>
#include <time.h>

#include "journal/records.h"
#include "journal/state.h"
#include "test.h"

static json_t *parse(const char *text) {
        json_error_t e;
        json_t *j = json_loads(text, 0, &e);

        if (!j)
                TEST_FAIL("bad test json: %s: %s", text, e.text);
        return j;
}

/* Encode R, decode it again into *ret (borrowing from the returned JSON,
 * which the caller frees), and check the JSON survives a second encode. */
static json_t *round_trip(const struct record *r, struct record *ret) {
        json_t *j = NULL, *again = NULL;
        char *err = NULL;

        CHECK_INT(record_encode(r, &j, &err), 0);
        if (!j) {
                TEST_FAIL("encode: %s", err ? err : "?");
                free(err);
                return NULL;
        }
        CHECK_INT(record_decode(j, ret, &err), 0);
        if (err)
                TEST_FAIL("decode: %s", err);
        free(err);
        err = NULL;
        CHECK_INT(record_encode(ret, &again, &err), 0);
        CHECK(again && json_equal(j, again));
        json_decref(again);
        free(err);
        return j;
}

static void test_names(void) {
        CHECK_STR(record_kind_to_string(RECORD_OP_STATE), "op_state");
        CHECK_INT(record_kind_from_string("journal"), RECORD_JOURNAL);
        CHECK_INT(record_kind_from_string("nope"), -EINVAL);
        CHECK(record_kind_to_string(_RECORD_KIND_MAX) == NULL);
        CHECK_STR(record_request_type_to_string(RECORD_REQUEST_RESUME_FAIL), "resume_fail");
        CHECK_INT(record_request_type_from_string("resize"), RECORD_REQUEST_RESIZE);
        CHECK_INT(record_request_type_from_string(NULL), -EINVAL);
        /* A hook request's type is its operation kind's name. */
        CHECK_STR(record_request_type_to_string(RECORD_REQUEST_REBOOT), state_op_kind_to_string(STATE_OP_REBOOT));
}

static void test_round_trip_seq_and_journal(void) {
        struct record out = {};
        json_t *j;

        j = round_trip(&(struct record) { .kind = RECORD_SEQ, .seq.next = 4242 }, &out);
        CHECK_INT(out.kind, RECORD_SEQ);
        CHECK_INT(out.seq.next, 4242);
        json_decref(j);

        j = round_trip(&(struct record) { .kind = RECORD_JOURNAL,
                                          .journal = { .event = "compacted", .previous_bytes = 1 << 20,
                                                       .previous_records = 77 } }, &out);
        CHECK_INT(out.kind, RECORD_JOURNAL);
        CHECK_STR(out.journal.event, "compacted");
        CHECK_INT(out.journal.previous_bytes, 1 << 20);
        CHECK_INT(out.journal.previous_records, 77);
        json_decref(j);
}

static void test_round_trip_lookup(void) {
        struct record out = {};
        json_t *j;

        j = round_trip(&(struct record) { .kind = RECORD_LOOKUP,
                                          .lookup = { .what = STATE_LOOKUP_NETWORK, .name = "private",
                                                      .id = "5f0c", .scope = "0123456789abcdef",
                                                      .time = 1764000000 } }, &out);
        CHECK_INT(out.kind, RECORD_LOOKUP);
        CHECK_INT(out.lookup.what, STATE_LOOKUP_NETWORK);
        CHECK_STR(out.lookup.name, "private");
        CHECK_STR(out.lookup.id, "5f0c");
        CHECK_STR(out.lookup.scope, "0123456789abcdef");
        CHECK_INT(out.lookup.time, 1764000000);
        json_decref(j);

        /* Forgotten: the id is null, and no scope is needed. */
        j = round_trip(&(struct record) { .kind = RECORD_LOOKUP,
                                          .lookup = { .what = STATE_LOOKUP_FLAVOR, .name = "small", .time = 7 } },
                       &out);
        CHECK(j && json_is_null(json_object_get(j, "id")));
        CHECK(out.lookup.id == NULL && out.lookup.scope == NULL);
        json_decref(j);
}

static void apply_text(struct state *s, const char *text) {
        json_t *j = parse(text);
        char *err = NULL;

        CHECK_INT(state_apply(s, j, &err), 0);
        if (err)
                TEST_FAIL("%s: %s", text, err);
        free(err);
        json_decref(j);
}

/* The state keeps the latest id of each name, drops a forgotten one, and
 * compaction carries the rest over. */
static void test_lookup_state(void) {
        _cleanup_(state_freep) struct state *s = NULL, *t = NULL;
        const struct state_lookup *l;
        json_t *live = NULL, *rec;
        size_t i, n = 0;

        CHECK_INT(state_new("beef", &s), 0);
        CHECK_INT(state_new("beef", &t), 0);
        apply_text(s, "{\"kind\":\"lookup\",\"what\":\"flavor\",\"name\":\"small\",\"id\":\"1\",\"scope\":\"a\",\"time\":10}");
        apply_text(s, "{\"kind\":\"lookup\",\"what\":\"image\",\"name\":\"small\",\"id\":\"img\",\"scope\":\"a\",\"time\":11}");
        apply_text(s, "{\"kind\":\"lookup\",\"what\":\"network\",\"name\":\"net\",\"id\":\"n1\",\"scope\":\"a\",\"time\":12}");
        apply_text(s, "{\"kind\":\"lookup\",\"what\":\"flavor\",\"name\":\"small\",\"id\":\"2\",\"scope\":\"a\",\"time\":20}");
        apply_text(s, "{\"kind\":\"lookup\",\"what\":\"network\",\"name\":\"net\",\"id\":null,\"time\":21}");
        /* Forgetting what is not there changes nothing. */
        apply_text(s, "{\"kind\":\"lookup\",\"what\":\"network\",\"name\":\"other\",\"id\":null,\"time\":22}");
        CHECK_INT(state_n_lookups(s), 2);
        l = state_lookup_find(s, STATE_LOOKUP_FLAVOR, "small");
        CHECK(l && strcmp(l->id, "2") == 0 && l->time == 20 && l->scope && strcmp(l->scope, "a") == 0);
        l = state_lookup_find(s, STATE_LOOKUP_IMAGE, "small");
        CHECK(l && strcmp(l->id, "img") == 0);
        CHECK(!state_lookup_find(s, STATE_LOOKUP_NETWORK, "net"));

        CHECK_INT(state_live_records(s, &live), 0);
        CHECK(json_array_size(live) <= state_live_records_max(s));
        json_array_foreach(live, i, rec) {
                if (strcmp(json_string_value(json_object_get(rec, "kind")), "lookup") == 0)
                        n++;
                CHECK_INT(state_apply(t, rec, NULL), 0);
        }
        CHECK_INT(n, 2);
        json_decref(live);
        l = state_lookup_find(t, STATE_LOOKUP_FLAVOR, "small");
        CHECK(l && strcmp(l->id, "2") == 0 && l->time == 20 && l->scope && strcmp(l->scope, "a") == 0);
        CHECK_INT(state_n_lookups(t), 2);
}

static void test_round_trip_request(void) {
        json_t *rf = parse("{\"jobs\":[{\"job_id\":7,\"nodes\":\"cl[1-2]\"}]}");
        struct record out = {};
        json_t *j;

        j = round_trip(&(struct record) {
                .kind = RECORD_REQUEST,
                .request = { .id = "r-ab12-1", .type = RECORD_REQUEST_RESUME, .uid = 64030, .pid = 99,
                             .time = 1700000000, .client = "elastic-resume", .job_id = "7", .reason = "r",
                             .features = "gpu", .resume_file = rf, .nodes = "cl[1-2]", .operations = 2 },
        }, &out);
        CHECK_INT(out.kind, RECORD_REQUEST);
        CHECK_STR(out.request.id, "r-ab12-1");
        CHECK_INT(out.request.type, RECORD_REQUEST_RESUME);
        CHECK_INT(out.request.uid, 64030);
        CHECK_INT(out.request.pid, 99);
        CHECK_INT(out.request.time, 1700000000);
        CHECK_STR(out.request.client, "elastic-resume");
        CHECK_STR(out.request.job_id, "7");
        CHECK_STR(out.request.reason, "r");
        CHECK_STR(out.request.features, "gpu");
        CHECK(out.request.resume_file && json_equal(out.request.resume_file, rf));
        CHECK(out.request.resume_file_error == NULL);
        CHECK_STR(out.request.nodes, "cl[1-2]");
        CHECK_INT(out.request.operations, 2);
        CHECK(out.request.group == NULL);
        json_decref(j);

        j = round_trip(&(struct record) {
                .kind = RECORD_REQUEST,
                .request = { .id = "r-ab12-2", .type = RECORD_REQUEST_RESIZE, .uid = 0, .pid = 1, .time = 5,
                             .resume_file_error = "x", .group = "gpu", .min = 3, .wait = true },
        }, &out);
        CHECK_INT(out.request.type, RECORD_REQUEST_RESIZE);
        CHECK_STR(out.request.group, "gpu");
        CHECK_INT(out.request.min, 3);
        CHECK(out.request.wait);
        CHECK_STR(out.request.resume_file_error, "x");
        CHECK_INT(out.request.operations, 0);
        json_decref(j);
        json_decref(rf);
}

static void test_round_trip_op(void) {
        struct record out = {};
        json_t *j;

        for (int k = 0; k < _STATE_OP_KIND_MAX; k++)
                for (int st = 0; st < _STATE_OP_STATE_MAX; st++) {
                        j = round_trip(&(struct record) {
                                .kind = RECORD_OP,
                                .op = { .id = "o-1-2", .node = "cl10", .group = "g", .op = k, .state = st,
                                        .request = st ? "r-1-1" : NULL, .time = 100, .changed = st * 10 },
                        }, &out);
                        CHECK_INT(out.kind, RECORD_OP);
                        CHECK_INT(out.op.op, k);
                        CHECK_INT(out.op.state, st);
                        CHECK_STR(out.op.node, "cl10");
                        CHECK_STR(out.op.group, "g");
                        CHECK(st ? out.op.request && strcmp(out.op.request, "r-1-1") == 0 : !out.op.request);
                        CHECK_INT(out.op.time, 100);
                        CHECK_INT(out.op.changed, st * 10);
                        json_decref(j);
                }
}

static void test_round_trip_op_state_and_node(void) {
        struct record out = {};
        json_t *j;

        j = round_trip(&(struct record) {
                .kind = RECORD_OP_STATE,
                .op_state = { .id = "o-1-2", .node = "cl1", .state = STATE_OP_CANCELLED, .time = 7,
                              .note = RECORD_TEXT("superseded"), .by_request = "r-1-9" },
        }, &out);
        CHECK_INT(out.op_state.state, STATE_OP_CANCELLED);
        CHECK(out.op_state.note.present);
        CHECK_STR(out.op_state.note.value, "superseded");
        CHECK_STR(out.op_state.by_request, "r-1-9");
        json_decref(j);

        /* A note left out stays out. */
        j = round_trip(&(struct record) {
                .kind = RECORD_OP_STATE,
                .op_state = { .id = "o-1-2", .node = "cl1", .state = STATE_OP_DONE, .time = 8 },
        }, &out);
        CHECK(!out.op_state.note.present && !out.op_state.by_request);
        CHECK(!json_object_get(j, "note"));
        json_decref(j);

        /* Set, cleared (null) and absent: all three survive. */
        j = round_trip(&(struct record) {
                .kind = RECORD_NODE,
                .node = { .node = "cl1", .op = "o-1-2", .time = 9, .step = RECORD_TEXT("building"),
                          .instance_id = RECORD_TEXT("a3c0"), .address = RECORD_TEXT(NULL) },
        }, &out);
        CHECK_STR(out.node.node, "cl1");
        CHECK_STR(out.node.op, "o-1-2");
        CHECK_INT(out.node.time, 9);
        CHECK(out.node.step.present && out.node.step.value && strcmp(out.node.step.value, "building") == 0);
        CHECK(out.node.instance_id.present && strcmp(out.node.instance_id.value, "a3c0") == 0);
        CHECK(out.node.address.present && out.node.address.value == NULL);
        CHECK(json_is_null(json_object_get(j, "address")));
        CHECK(!out.node.note.present && !json_object_get(j, "note"));
        json_decref(j);
}

/* Lines as elasticd wrote them before this module (json_pack key order,
 * the journal's seq/ts/more in front): they parse to the same values. */
static void test_earlier_format(void) {
        static const char *const lines[] = {
                "{\"seq\":1,\"ts\":\"2026-11-23T18:04:05.123Z\",\"kind\":\"journal\",\"event\":\"compacted\","
                "\"previous_bytes\":5000000,\"previous_records\":12000}",
                "{\"seq\":2,\"ts\":\"2026-11-23T18:04:05.123Z\",\"kind\":\"seq\",\"next\":130}",
                "{\"seq\":3,\"ts\":\"2026-11-23T18:04:06.000Z\",\"more\":true,\"kind\":\"request\","
                "\"id\":\"r-3fa2-130\",\"type\":\"resume\",\"uid\":64030,\"pid\":4242,\"time\":1764000000,"
                "\"client\":\"elastic-resume\",\"job_id\":\"17\",\"nodes\":\"cl[1-2]\",\"operations\":2}",
                "{\"seq\":4,\"ts\":\"2026-11-23T18:04:06.000Z\",\"more\":true,\"kind\":\"op_state\","
                "\"id\":\"o-3fa2-120\",\"node\":\"cl1\",\"state\":\"cancelled\",\"time\":1764000000,"
                "\"note\":\"superseded\",\"by_request\":\"r-3fa2-130\"}",
                "{\"seq\":5,\"ts\":\"2026-11-23T18:04:06.000Z\",\"kind\":\"op\",\"id\":\"o-3fa2-131\","
                "\"node\":\"cl1\",\"group\":\"cloud\",\"op\":\"resume\",\"state\":\"pending\","
                "\"request\":\"r-3fa2-130\",\"time\":1764000000}",
                "{\"seq\":6,\"ts\":\"2026-11-23T18:04:07.000Z\",\"kind\":\"node\",\"node\":\"cl1\","
                "\"op\":\"o-3fa2-131\",\"step\":\"building\",\"time\":1764000001,"
                "\"instance_id\":\"6f1c\",\"address\":null}",
                "{\"seq\":7,\"ts\":\"2026-11-23T18:04:08.000Z\",\"kind\":\"op_state\",\"id\":\"o-3fa2-131\","
                "\"node\":\"cl1\",\"state\":\"done\",\"time\":1764000002}",
                "{\"seq\":8,\"ts\":\"2026-11-23T18:04:09.000Z\",\"kind\":\"request\",\"id\":\"r-3fa2-132\","
                "\"type\":\"resize\",\"uid\":0,\"pid\":77,\"time\":1764000003,\"group\":\"cloud\",\"min\":2,"
                "\"wait\":false,\"operations\":0}",
                /* compaction wrote "changed" */
                "{\"seq\":9,\"ts\":\"2026-11-23T18:04:10.000Z\",\"kind\":\"op\",\"id\":\"o-3fa2-133\","
                "\"node\":\"cl2\",\"group\":\"cloud\",\"op\":\"suspend\",\"state\":\"failed\","
                "\"time\":1764000000,\"changed\":1764000009}",
        };
        static const enum record_kind kinds[] = { RECORD_JOURNAL, RECORD_SEQ, RECORD_REQUEST, RECORD_OP_STATE,
                                                  RECORD_OP, RECORD_NODE, RECORD_OP_STATE, RECORD_REQUEST,
                                                  RECORD_OP };
        _cleanup_(state_freep) struct state *s = NULL;
        const struct state_node *n;
        unsigned min = 0;

        CHECK_INT(state_new("beef", &s), 0);
        for (size_t i = 0; i < ELEMENTSOF(lines); i++) {
                json_t *j = parse(lines[i]);
                struct record r = {};
                char *err = NULL;

                CHECK_INT(record_decode(j, &r, &err), 0);
                if (err)
                        TEST_FAIL("line %zu: %s", i + 1, err);
                CHECK_INT(r.kind, kinds[i]);
                free(err);
                err = NULL;
                CHECK_INT(state_apply(s, j, &err), 0);
                free(err);
                json_decref(j);
        }
        n = state_node_find(s, "cl1");
        CHECK(n && n->op.state == STATE_OP_DONE && n->instance_id && strcmp(n->instance_id, "6f1c") == 0 &&
              !n->address && n->step && strcmp(n->step, "building") == 0);
        n = state_node_find(s, "cl2");
        CHECK(n && n->op.kind == STATE_OP_SUSPEND && n->op.changed == 1764000009 && n->op.created == 1764000000);
        CHECK_INT(state_resize_min(s, "cloud", &min), 0);
        CHECK_INT(min, 2);
        /* Journals from before cooldowns were journalled hold none. */
        CHECK_INT(state_n_capacity(s), 0);
        CHECK_INT(state_n_downmarks(s), 0);
}

/* A kept request, parsed back for the lifecycle (the reboot's reason). */
static void test_state_request_get(void) {
        _cleanup_(state_freep) struct state *s = NULL;
        struct record_request q = {};
        json_t *j;

        CHECK_INT(state_new("beef", &s), 0);
        j = parse("{\"kind\":\"request\",\"id\":\"r-1-1\",\"type\":\"reboot\",\"reason\":\"reimage now\","
                  "\"features\":\"v2\",\"nodes\":\"cl1\",\"operations\":1}");
        CHECK_INT(state_apply(s, j, NULL), 0);
        json_decref(j);
        j = parse("{\"kind\":\"op\",\"id\":\"o-1-2\",\"node\":\"cl1\",\"group\":\"g\",\"op\":\"reboot\","
                  "\"state\":\"pending\",\"request\":\"r-1-1\",\"time\":1}");
        CHECK_INT(state_apply(s, j, NULL), 0);
        json_decref(j);
        CHECK_INT(state_request_get(s, "r-1-1", &q), 0);
        CHECK_INT(q.type, RECORD_REQUEST_REBOOT);
        CHECK_STR(q.reason, "reimage now");
        CHECK_STR(q.features, "v2");
        CHECK_INT(state_request_get(s, "r-1-9", &q), -ENOENT);
        /* Once no operation refers to it, it is gone. */
        j = parse("{\"kind\":\"op\",\"id\":\"o-1-3\",\"node\":\"cl1\",\"group\":\"g\",\"op\":\"resume\","
                  "\"state\":\"pending\",\"time\":2}");
        CHECK_INT(state_apply(s, j, NULL), 0);
        json_decref(j);
        CHECK_INT(state_request_get(s, "r-1-1", &q), -ENOENT);
}

/* Each bad record: refused, and the message names the field. */
static void test_round_trip_capacity_and_downmark(void) {
        struct record out = {};
        json_t *j;

        j = round_trip(&(struct record) { .kind = RECORD_CAPACITY,
                                          .capacity = { .group = "gpu", .since = 1000, .until = 1600, .failovers = 3,
                                                        .reason = "No valid host was found. (request req-1)",
                                                        .time = 1100 } }, &out);
        CHECK_INT(out.kind, RECORD_CAPACITY);
        CHECK_STR(out.capacity.group, "gpu");
        CHECK_INT(out.capacity.ended, RECORD_CAPACITY_SHORT);
        CHECK_INT(out.capacity.since, 1000);
        CHECK_INT(out.capacity.until, 1600);
        CHECK_INT(out.capacity.failovers, 3);
        CHECK_STR(out.capacity.reason, "No valid host was found. (request req-1)");
        CHECK_INT(out.capacity.time, 1100);
        CHECK(j && !json_object_get(j, "ended"));
        json_decref(j);

        /* The end names how; nothing else is needed. */
        j = round_trip(&(struct record) { .kind = RECORD_CAPACITY,
                                          .capacity = { .group = "gpu", .ended = RECORD_CAPACITY_ENABLED, .time = 1200 } },
                       &out);
        CHECK_INT(out.capacity.ended, RECORD_CAPACITY_ENABLED);
        CHECK_STR(json_string_value(json_object_get(j, "ended")), "enabled");
        CHECK(!json_object_get(j, "until"));
        json_decref(j);

        j = round_trip(&(struct record) { .kind = RECORD_DOWNMARK,
                                          .downmark = { .node = "gn1", .reason = "elasticd: no capacity",
                                                        .group = "gpu", .time = 1100 } }, &out);
        CHECK_INT(out.kind, RECORD_DOWNMARK);
        CHECK_STR(out.downmark.node, "gn1");
        CHECK_STR(out.downmark.reason, "elasticd: no capacity");
        CHECK_STR(out.downmark.group, "gpu");
        json_decref(j);

        /* Done: the reason is null. */
        j = round_trip(&(struct record) { .kind = RECORD_DOWNMARK, .downmark = { .node = "gn1", .time = 1300 } }, &out);
        CHECK(j && json_is_null(json_object_get(j, "reason")));
        CHECK(out.downmark.reason == NULL && out.downmark.group == NULL);
        json_decref(j);
}

static size_t count_kind(json_t *live, const char *kind) {
        size_t i, n = 0;
        json_t *rec;

        json_array_foreach(live, i, rec)
                n += strcmp(json_string_value(json_object_get(rec, "kind")), kind) == 0;
        return n;
}

static int first_capacity(const struct state_capacity *c, void *userdata) {
        *(const struct state_capacity **) userdata = c;
        return 1;
}

static int first_downmark(const struct state_downmark *m, void *userdata) {
        *(const struct state_downmark **) userdata = m;
        return 1;
}

/* The state keeps each running cooldown as last said and drops an ended one;
 * DOWN marks likewise; compaction keeps what runs and drops what ended (and
 * a cooldown whose until passed), marks included. */
static void test_capacity_state(void) {
        _cleanup_(state_freep) struct state *s = NULL, *t = NULL;
        const struct state_capacity *c = NULL;
        const struct state_downmark *m = NULL;
        json_t *live = NULL, *rec;
        char text[512];
        long long now = (long long) time(NULL);
        size_t i;

        CHECK_INT(state_new("beef", &s), 0);
        CHECK_INT(state_new("beef", &t), 0);
        snprintf(text, sizeof(text),
                 "{\"kind\":\"capacity\",\"group\":\"gpu\",\"since\":%lld,\"until\":%lld,\"failovers\":1,"
                 "\"reason\":\"No valid host\",\"time\":%lld}", now, now + 600, now);
        apply_text(s, text);
        snprintf(text, sizeof(text),
                 "{\"kind\":\"capacity\",\"group\":\"gpu\",\"since\":%lld,\"until\":%lld,\"failovers\":2,"
                 "\"reason\":\"Quota exceeded\",\"time\":%lld}", now, now + 700, now);
        apply_text(s, text);
        /* Ended: enable, and one that only expired (its until passed, no end record). */
        apply_text(s, "{\"kind\":\"capacity\",\"group\":\"cpu\",\"since\":1,\"until\":99999999999,\"time\":1}");
        apply_text(s, "{\"kind\":\"capacity\",\"group\":\"cpu\",\"ended\":\"enabled\",\"time\":2}");
        apply_text(s, "{\"kind\":\"capacity\",\"group\":\"old\",\"since\":1,\"until\":2,\"time\":1}");
        /* An end of what is not there changes nothing. */
        apply_text(s, "{\"kind\":\"capacity\",\"group\":\"none\",\"ended\":\"expired\",\"time\":3}");
        CHECK_INT(state_n_capacity(s), 2);
        state_foreach_capacity(s, first_capacity, &c);
        CHECK(c && strcmp(c->group, "gpu") == 0 && c->since == now && c->until == now + 700 && c->failovers == 2 &&
              c->reason && strcmp(c->reason, "Quota exceeded") == 0);

        apply_text(s, "{\"kind\":\"downmark\",\"node\":\"gn1\",\"reason\":\"elasticd: x\",\"group\":\"gpu\",\"time\":5}");
        apply_text(s, "{\"kind\":\"downmark\",\"node\":\"cn1\",\"reason\":\"elasticd: y\",\"time\":5}");
        apply_text(s, "{\"kind\":\"downmark\",\"node\":\"cn2\",\"reason\":\"elasticd: z\",\"time\":5}");
        apply_text(s, "{\"kind\":\"downmark\",\"node\":\"cn1\",\"reason\":null,\"time\":6}");
        apply_text(s, "{\"kind\":\"downmark\",\"node\":\"xx\",\"reason\":null,\"time\":6}");
        CHECK_INT(state_n_downmarks(s), 2);
        state_foreach_downmark(s, first_downmark, &m);
        CHECK(m && strcmp(m->node, "gn1") == 0 && m->group && strcmp(m->group, "gpu") == 0 &&
              strcmp(m->reason, "elasticd: x") == 0);

        CHECK_INT(state_live_records(s, &live), 0);
        CHECK(json_array_size(live) <= state_live_records_max(s));
        CHECK_INT(count_kind(live, "capacity"), 1);
        CHECK_INT(count_kind(live, "downmark"), 2);
        json_array_foreach(live, i, rec)
                CHECK_INT(state_apply(t, rec, NULL), 0);
        json_decref(live);
        CHECK_INT(state_n_capacity(t), 1);
        c = NULL;
        state_foreach_capacity(t, first_capacity, &c);
        CHECK(c && strcmp(c->group, "gpu") == 0 && c->since == now && c->until == now + 700 && c->failovers == 2);
        CHECK_INT(state_n_downmarks(t), 2);
        m = NULL;
        state_foreach_downmark(t, first_downmark, &m);
        CHECK(m && strcmp(m->node, "gn1") == 0 && m->group && strcmp(m->group, "gpu") == 0);

        /* The cooldown ends: gone from the state and from the next compaction. */
        apply_text(t, "{\"kind\":\"capacity\",\"group\":\"gpu\",\"ended\":\"expired\",\"time\":9}");
        CHECK_INT(state_n_capacity(t), 0);
        CHECK_INT(state_live_records(t, &live), 0);
        CHECK_INT(count_kind(live, "capacity"), 0);
        json_decref(live);
}

static void test_refused(void) {
        static const struct {
                const char *json;
                const char *message;
        } cases[] = {
                { "{}", "journal record: \"kind\" is missing" },
                { "{\"kind\":7}", "journal record: \"kind\" must be a string, not an integer" },
                { "{\"kind\":\"seq\"}", "seq record: \"next\" is missing" },
                { "{\"kind\":\"seq\",\"next\":\"x\"}", "seq record: \"next\" must be an integer, not a string" },
                { "{\"kind\":\"seq\",\"next\":0}", "seq record: \"next\" is 0, less than 1" },
                { "{\"kind\":\"request\",\"type\":\"resume\"}", "request record: \"id\" is missing" },
                { "{\"kind\":\"request\",\"id\":\"r-1\"}", "request record r-1: \"type\" is missing" },
                { "{\"kind\":\"request\",\"id\":\"r-1\",\"type\":\"ping\"}",
                  "request record r-1: \"type\" is \"ping\", not one of resume, suspend, resume_fail, reboot, resize" },
                { "{\"kind\":\"request\",\"id\":\"r-1\",\"type\":\"resize\"}",
                  "request record r-1: \"group\" is missing" },
                { "{\"kind\":\"request\",\"id\":\"r-1\",\"type\":\"resize\",\"group\":\"g\",\"min\":-1}",
                  "request record r-1: \"min\" is -1, less than 0" },
                { "{\"kind\":\"request\",\"id\":\"r-1\",\"type\":\"resize\",\"group\":\"g\",\"min\":1,\"wait\":1}",
                  "request record r-1: \"wait\" must be a boolean, not an integer" },
                { "{\"kind\":\"request\",\"id\":\"r-1\",\"type\":\"resume\",\"resume_file\":[]}",
                  "request record r-1: \"resume_file\" must be an object, not an array" },
                { "{\"kind\":\"request\",\"id\":\"r-1\",\"type\":\"resume\",\"operations\":1.5}",
                  "request record r-1: \"operations\" must be an integer, not a number with a fraction" },
                { "{\"kind\":\"request\",\"id\":\"r-1\",\"type\":\"resume\",\"client\":null}",
                  "request record r-1: \"client\" must be a string, not null" },
                { "{\"kind\":\"op\",\"id\":\"o-1\"}", "op record o-1: \"node\" is missing" },
                { "{\"kind\":\"op\",\"id\":\"o-1\",\"node\":\"n\",\"group\":\"g\",\"op\":\"resume\",\"state\":\"x\"}",
                  "op record o-1: \"state\" is \"x\", not one of pending, running, done, failed, cancelled" },
                { "{\"kind\":\"op\",\"id\":\"o-1\",\"node\":\"n\",\"group\":\"g\",\"op\":\"boot\",\"state\":\"done\"}",
                  "op record o-1: \"op\" is \"boot\", not one of resume, suspend, resume_fail, reboot" },
                { "{\"kind\":\"op\",\"id\":\"o-1\",\"node\":\"n\",\"group\":\"g\",\"op\":\"resume\",\"state\":\"done\","
                  "\"time\":\"now\"}",
                  "op record o-1: \"time\" must be an integer, not a string" },
                { "{\"kind\":\"op_state\",\"id\":\"o-1\",\"node\":\"n\",\"state\":\"done\",\"note\":5}",
                  "op_state record o-1: \"note\" must be a string or null, not an integer" },
                { "{\"kind\":\"node\",\"instance_id\":\"i\"}", "node record: \"node\" is missing" },
                { "{\"kind\":\"node\",\"node\":\"cl1\",\"step\":7}",
                  "node record for cl1: \"step\" must be a string or null, not an integer" },
                { "{\"kind\":\"node\",\"node\":\"cl1\",\"op\":null}",
                  "node record for cl1: \"op\" must be a string, not null" },
                { "{\"kind\":\"journal\"}", "journal record: \"event\" is missing" },
                { "{\"kind\":\"lookup\",\"what\":\"flavor\",\"id\":\"1\"}", "lookup record: \"name\" is missing" },
                { "{\"kind\":\"lookup\",\"what\":\"volume\",\"name\":\"v\",\"id\":\"1\"}",
                  "lookup record v: \"what\" is \"volume\", not one of flavor, image, network" },
                { "{\"kind\":\"lookup\",\"what\":\"image\",\"name\":\"debian\"}",
                  "lookup record debian: \"id\" is missing" },
                { "{\"kind\":\"lookup\",\"what\":\"image\",\"name\":\"debian\",\"id\":\"x\",\"scope\":1}",
                  "lookup record debian: \"scope\" must be a string, not an integer" },
                { "{\"kind\":\"capacity\",\"since\":1,\"until\":2}", "capacity record: \"group\" is missing" },
                { "{\"kind\":\"capacity\",\"group\":\"g\",\"since\":1}", "capacity record g: \"until\" is missing" },
                { "{\"kind\":\"capacity\",\"group\":\"g\",\"since\":9,\"until\":2}",
                  "capacity record g: \"until\" is before since" },
                { "{\"kind\":\"capacity\",\"group\":\"g\",\"since\":1,\"until\":2,\"failovers\":-1}",
                  "capacity record g: \"failovers\" is -1, less than 0" },
                { "{\"kind\":\"capacity\",\"group\":\"g\",\"ended\":\"later\"}",
                  "capacity record g: \"ended\" is \"later\", not one of expired, enabled" },
                { "{\"kind\":\"downmark\",\"reason\":\"x\"}", "downmark record: \"node\" is missing" },
                { "{\"kind\":\"downmark\",\"node\":\"cl1\"}", "downmark record for cl1: \"reason\" is missing" },
                { "{\"kind\":\"downmark\",\"node\":\"cl1\",\"reason\":\"x\",\"group\":null}",
                  "downmark record for cl1: \"group\" must be a string, not null" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                json_t *j = parse(cases[i].json);
                struct record r = { .kind = _RECORD_KIND_MAX };
                char *err = NULL;

                CHECK_INT(record_decode(j, &r, &err), -EBADMSG);
                CHECK_STR(err, cases[i].message);
                CHECK_INT(r.kind, _RECORD_KIND_MAX);   /* untouched */
                free(err);
                json_decref(j);
        }
}

static void test_unknown_and_not_objects(void) {
        json_t *j = parse("{\"kind\":\"from_the_future\",\"x\":1}");
        struct record r = { .kind = _RECORD_KIND_MAX };
        char *err = NULL;

        /* A newer kind is skipped, not refused. */
        CHECK_INT(record_decode(j, &r, &err), 1);
        CHECK(!err);
        CHECK_INT(r.kind, _RECORD_KIND_MAX);
        json_decref(j);
        j = parse("[1]");
        CHECK_INT(record_decode(j, &r, &err), -EBADMSG);
        CHECK_STR(err, "a journal record must be a JSON object");
        free(err);
        err = NULL;
        json_decref(j);
        CHECK_INT(record_decode(NULL, &r, &err), -EBADMSG);
        CHECK_STR(err, "no journal record");
        free(err);
}

/* Encoding refuses what decoding would refuse, naming the field. */
static void test_encode_refuses(void) {
        json_t *j = NULL;
        char *err = NULL;

        CHECK_INT(record_encode(&(struct record) { .kind = RECORD_OP,
                                                   .op = { .id = "o-1", .group = "g" } }, &j, &err), -EINVAL);
        CHECK_STR(err, "op record o-1: \"node\" is missing");
        CHECK(!j);
        free(err);
        err = NULL;
        CHECK_INT(record_encode(&(struct record) { .kind = RECORD_OP_STATE,
                                                   .op_state = { .id = "o-1", .node = "n",
                                                                 .state = _STATE_OP_STATE_MAX } }, &j, &err),
                  -EINVAL);
        CHECK_STR(err, "op_state record o-1: \"state\" has no name for value 5");
        free(err);
        err = NULL;
        CHECK_INT(record_encode(&(struct record) { .kind = RECORD_REQUEST,
                                                   .request = { .id = "r-1", .type = _RECORD_REQUEST_TYPE_MAX } },
                                &j, &err), -EINVAL);
        CHECK_STR(err, "request record r-1: \"type\" has no name for value 5");
        free(err);
        err = NULL;
        CHECK_INT(record_encode(&(struct record) { .kind = RECORD_REQUEST,
                                                   .request = { .id = "r-1", .type = RECORD_REQUEST_RESIZE } },
                                &j, &err), -EINVAL);
        CHECK_STR(err, "request record r-1: \"group\" is missing");
        free(err);
        err = NULL;
        CHECK_INT(record_encode(&(struct record) { .kind = RECORD_SEQ }, &j, &err), -EINVAL);
        CHECK_STR(err, "seq record: \"next\" must be at least 1");
        free(err);
        err = NULL;
        CHECK_INT(record_encode(&(struct record) { .kind = RECORD_CAPACITY,
                                                   .capacity = { .group = "g", .since = 10, .until = 5 } },
                                &j, &err), -EINVAL);
        CHECK_STR(err, "capacity record g: \"until\" is before since");
        free(err);
        err = NULL;
        CHECK_INT(record_encode(&(struct record) { .kind = RECORD_CAPACITY,
                                                   .capacity = { .group = "g", .ended = _RECORD_CAPACITY_END_MAX } },
                                &j, &err), -EINVAL);
        CHECK_STR(err, "capacity record g: \"ended\" has no name for value 3");
        free(err);
        err = NULL;
        CHECK_INT(record_encode(&(struct record) { .kind = RECORD_DOWNMARK, .downmark = { .reason = "x" } }, &j, &err),
                  -EINVAL);
        CHECK_STR(err, "downmark record: \"node\" is missing");
        free(err);
        err = NULL;
        CHECK_INT(record_encode(&(struct record) { .kind = _RECORD_KIND_MAX }, &j, &err), -EINVAL);
        CHECK_STR(err, "no journal record kind 9");
        free(err);
        CHECK(!j);
}

int main(void) {
        RUN(test_names);
        RUN(test_round_trip_seq_and_journal);
        RUN(test_round_trip_lookup);
        RUN(test_lookup_state);
        RUN(test_round_trip_capacity_and_downmark);
        RUN(test_capacity_state);
        RUN(test_round_trip_request);
        RUN(test_round_trip_op);
        RUN(test_round_trip_op_state_and_node);
        RUN(test_earlier_format);
        RUN(test_state_request_get);
        RUN(test_refused);
        RUN(test_unknown_and_not_objects);
        RUN(test_encode_refuses);
        return test_done();
}
