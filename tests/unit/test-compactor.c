/* test-compactor.c - journal compaction off the loop: appends during it kept, the replayed state unchanged, abandoned at free. */
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "journal/compactor.h"
#include "journal/journal.h"
#include "journal/records.h"
#include "journal/state.h"
#include "test.h"

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        return remove(path);
}

static void cleanup_dir(char **d) {
        if (*d) {
                nftw(*d, rm_one, 16, FTW_DEPTH | FTW_PHYS);
                free(*d);
        }
}
#define _cleanup_dir_ _cleanup_(cleanup_dir)

static char *make_dir(void) {
        char *d = strdup("/tmp/test-compactor-XXXXXX");

        if (!d || !mkdtemp(d)) {
                free(d);
                return NULL;
        }
        return d;
}

/* The daemon's side: a journal and the state its appends built. */
struct daemon {
        sd_event *event;
        struct journal *journal;
        struct state *state;
        struct compactor *compactor;
        unsigned next_id;
        /* The compaction's outcome. */
        bool done;
        int r;
        struct compactor_result res;
        unsigned appended_during;
};

static void add(json_t *batch, const struct record *r) {
        json_t *o = NULL;

        if (record_encode(r, &o, NULL) < 0 || json_array_append_new(batch, o) < 0)
                TEST_FAIL("record_encode");
}

/* A resume of NODE, as a request and its operation, then its progress:
 * journalled, then applied (record_and_apply). */
static int resume_node(struct daemon *d, unsigned node, bool finish) {
        _cleanup_(json_decrefp) json_t *batch = json_array(), *more = json_array();
        char rid[32], oid[32], name[32], inst[48];
        size_t i;
        json_t *rec;
        int r;

        snprintf(rid, sizeof(rid), "r-t-%u", ++d->next_id);
        snprintf(oid, sizeof(oid), "o-t-%u", ++d->next_id);
        snprintf(name, sizeof(name), "cn%u", node);
        snprintf(inst, sizeof(inst), "inst-%u-%u", node, d->next_id);
        add(batch, &(struct record) { .kind = RECORD_REQUEST, .request = {
                .id = rid, .type = RECORD_REQUEST_RESUME, .uid = 0, .pid = 1, .time = 100, .nodes = name,
                .operations = 1 } });
        add(batch, &(struct record) { .kind = RECORD_OP, .op = {
                .id = oid, .node = name, .group = "g", .op = STATE_OP_RESUME, .state = STATE_OP_PENDING,
                .request = rid, .time = 100 } });
        add(more, &(struct record) { .kind = RECORD_NODE, .node = {
                .node = name, .op = oid, .time = 101, .step = RECORD_TEXT("creating"),
                .instance_id = RECORD_TEXT(inst) } });
        if (finish)
                add(more, &(struct record) { .kind = RECORD_OP_STATE, .op_state = {
                        .id = oid, .node = name, .state = STATE_OP_DONE, .time = 102,
                        .note = RECORD_TEXT("up") } });
        json_array_extend(batch, more);
        r = journal_append_many(d->journal, batch, NULL);
        if (r < 0)
                return r;
        json_array_foreach(batch, i, rec)
                if ((r = state_apply(d->state, rec, NULL)) < 0)
                        return r;
        return 0;
}

/* The live records without the journal's keys: what two states are compared by. */
static json_t *live_of(struct state *s) {
        json_t *live = NULL, *rec;
        size_t i;

        if (state_live_records(s, &live) < 0)
                return NULL;
        json_array_foreach(live, i, rec) {
                json_t *copy = json_copy(rec);

                json_object_del(copy, "seq");
                json_object_del(copy, "ts");
                json_array_set_new(live, i, copy);
        }
        return live;
}

static int replay_cb(json_t *record, void *userdata) {
        return state_apply(userdata, record, NULL) == -ENOMEM ? -ENOMEM : 0;
}

/* DIR's journal, replayed into a fresh state, gives D's state (D's journal closed). */
static void check_replays_to(const char *dir, struct daemon *d) {
        _cleanup_(state_freep) struct state *s = NULL;
        struct journal *j = NULL;
        _cleanup_free_ char *err = NULL;
        json_t *a, *b;

        CHECK_INT(state_new("x", &s), 0);
        CHECK_INT(journal_lock(dir, &j, &err), 0);
        if (j)
                CHECK_INT(journal_load(j, replay_cb, s, &err), 0);
        journal_free(j);
        a = live_of(d->state);
        b = live_of(s);
        CHECK(a && b && json_equal(a, b));
        if (a && b && !json_equal(a, b)) {
                char *x = json_dumps(a, JSON_COMPACT), *y = json_dumps(b, JSON_COMPACT);
                printf("# daemon:   %.300s\n# replayed: %.300s\n", x, y);
                free(x);
                free(y);
        }
        json_decref(a);
        json_decref(b);
}

static void on_done(int r, const char *error, const struct compactor_result *res, void *userdata) {
        struct daemon *d = userdata;

        d->done = true;
        d->r = r;
        d->res = *res;
        if (r < 0)
                printf("# compaction: %s\n", error ? error : strerror(-r));
        sd_event_exit(d->event, 0);
}

/* A request every millisecond while the compaction runs. */
static int on_tick(sd_event_source *src, uint64_t usec, void *userdata) {
        struct daemon *d = userdata;

        if (d->done)
                return 0;
        if (resume_node(d, 5000 + d->appended_during, d->appended_during % 2) < 0)
                TEST_FAIL("append during compaction");
        d->appended_during++;
        sd_event_source_set_time(src, usec + 1000);
        sd_event_source_set_enabled(src, SD_EVENT_ONESHOT);
        return 0;
}

static int daemon_open(struct daemon *d, const char *dir) {
        int r;

        *d = (struct daemon) {};
        if ((r = sd_event_new(&d->event)) < 0 || (r = state_new("t", &d->state)) < 0 ||
            (r = journal_open(dir, &d->journal, NULL)) < 0 || (r = compactor_new(d->event, d->journal, &d->compactor)) < 0)
                return r;
        return 0;
}

static void daemon_stop(struct daemon *d) {
        d->compactor = compactor_free(d->compactor);
        d->journal = journal_free(d->journal);
}

static void daemon_close(struct daemon *d) {
        daemon_stop(d);
        d->state = state_free(d->state);
        d->event = sd_event_unref(d->event);
}

/* 500 nodes resumed twice each (the first of each superseded), then a
 * compaction while requests keep coming: the new journal replays to the
 * daemon's state, every request made during it included. */
static void test_compaction_with_appends(void) {
        _cleanup_dir_ char *dir = make_dir();
        sd_event_source *tick = NULL;
        struct journal_stats before, after;
        struct daemon d;

        CHECK_INT(daemon_open(&d, dir), 0);
        for (unsigned round = 0; round < 2; round++)
                for (unsigned n = 0; n < 500; n++)
                        if (resume_node(&d, n, n % 3 == 0) < 0) {
                                TEST_FAIL("append");
                                goto out;
                        }
        journal_get_stats(d.journal, &before);
        CHECK_INT(compactor_start(d.compactor, on_done, &d, NULL), 0);
        CHECK(compactor_running(d.compactor));
        CHECK_INT(compactor_start(d.compactor, on_done, &d, NULL), -EBUSY);
        /* One for sure before the thread is done, more from the loop. */
        CHECK_INT(resume_node(&d, 4999, false), 0);
        CHECK_INT(sd_event_add_time_relative(d.event, &tick, CLOCK_MONOTONIC, 0, 1, on_tick, &d), 0);
        CHECK_INT(sd_event_loop(d.event), 0);
        tick = sd_event_source_disable_unref(tick);
        CHECK(d.done);
        CHECK_INT(d.r, 0);
        CHECK(!compactor_running(d.compactor));
        printf("# %u requests during the compaction; %llu bytes copied after it; loop %.1f ms of %.1f ms\n",
               d.appended_during, (unsigned long long) d.res.tail_bytes, d.res.loop_usec / 1000.0,
               d.res.wall_usec / 1000.0);
        journal_get_stats(d.journal, &after);
        CHECK_INT(d.res.bytes_before, before.bytes);
        CHECK_INT(d.res.bytes_after, after.bytes);
        CHECK(after.bytes < before.bytes);
        CHECK_INT(after.compactions, 1);
        CHECK_INT(d.res.skipped, 0);
        /* The id counter; each node's request, op and node record. */
        CHECK_INT(d.res.live_records, 1 + 3 * 500);
        CHECK(d.res.tail_bytes > 0);
        /* And on after it. */
        CHECK_INT(resume_node(&d, 1, true), 0);
        daemon_stop(&d);
        check_replays_to(dir, &d);
out:
        daemon_close(&d);
}

/* Freed mid-compaction (elasticd stopping): the old journal stays whole,
 * no temp file is left, and the next start compacts. */
static void test_free_abandons(void) {
        _cleanup_dir_ char *dir = make_dir();
        _cleanup_free_ char *tmp = NULL;
        struct daemon d;

        CHECK(asprintf(&tmp, "%s/%s", dir, JOURNAL_TMP_FILE) > 0);
        CHECK_INT(daemon_open(&d, dir), 0);
        for (unsigned n = 0; n < 1000; n++)
                if (resume_node(&d, n % 300, true) < 0) {
                        TEST_FAIL("append");
                        break;
                }
        CHECK_INT(compactor_start(d.compactor, on_done, &d, NULL), 0);
        CHECK_INT(resume_node(&d, 7, false), 0);
        d.compactor = compactor_free(d.compactor);
        CHECK(!d.done);
        CHECK(access(tmp, F_OK) < 0);
        CHECK_INT(resume_node(&d, 8, false), 0);
        daemon_stop(&d);
        check_replays_to(dir, &d);
        daemon_close(&d);
}

int main(void) {
        RUN(test_compaction_with_appends);
        RUN(test_free_abandons);
        return test_done();
}
