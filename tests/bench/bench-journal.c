/* bench-journal.c - durable appends per second, open/replay/compaction time for 100k records, and the
 * event loop's longest block while elasticd's state of 100k live records is compacted.
 * Usage: bench-journal [DIR]   (DIR: a state directory on the disk to measure; default a
 * fresh directory under /tmp; it is removed afterwards). */
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <systemd/sd-event.h>
#include <time.h>
#include <unistd.h>

#include "journal/compactor.h"
#include "journal/journal.h"
#include "journal/records.h"
#include "journal/state.h"

#define RECORDS 100000

static double now(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static json_t *make_record(unsigned i) {
        char op[32], node[32];

        snprintf(op, sizeof(op), "op-%08u", i);
        snprintf(node, sizeof(node), "cn-%06u", i % 100000);
        return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "kind", "op", "op", op, "node", node,
                         "group", "cpu", "step", "creating",
                         "instance", "3f1c2a9e-8b1d-4c55-9a7e-2d6f0b1e4c77");
}

static int add_records(struct journal_compaction *c, void *userdata) {
        for (unsigned i = 0; i < RECORDS; i++) {
                json_t *rec = make_record(i);
                int r = journal_compact_add(c, rec);

                json_decref(rec);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int count_cb(json_t *record, void *userdata) {
        (*(unsigned *) userdata)++;
        return 0;
}

static double cpu(int who) {
        struct rusage ru;

        getrusage(who, &ru);
        return (double) ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
               ru.ru_stime.tv_usec / 1e6;
}

/* ---- elasticd's running compaction, against its event loop --------------- */

#define STATE_NODES 50000   /* an op and a node record each: 100,000 live records */
#define PROBE_USEC 1000     /* the loop's responsiveness is sampled this often */
#define REQUEST_USEC 5000   /* a request journalled this often during the compaction */

struct loop_bench {
        sd_event *event;
        struct journal *journal;
        struct state *state;
        unsigned requests;
        uint64_t max_late, max_append;
        bool done;
        int r;
        struct compactor_result res;
};

static uint64_t usec_now(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000ULL + (uint64_t) ts.tv_nsec / 1000;
}

static json_t *state_record(const struct record *r) {
        json_t *o = NULL;

        return record_encode(r, &o, NULL) < 0 ? NULL : o;
}

/* Node I's operation (ROUND 0: created with its instance; 1: done), as elasticd journals it. */
static int append_node_round(json_t *batch, unsigned i, unsigned round) {
        char node[32], op[32], inst[48];

        snprintf(node, sizeof(node), "cn%06u", i);
        snprintf(op, sizeof(op), "o-bnch-%u", i + 1);
        snprintf(inst, sizeof(inst), "3f1c2a9e-8b1d-4c55-9a7e-%012u", i);
        if (round == 0) {
                json_array_append_new(batch, state_record(&(struct record) { .kind = RECORD_OP, .op = {
                        .id = op, .node = node, .group = "cpu", .op = STATE_OP_RESUME, .state = STATE_OP_PENDING,
                        .time = 1700000000 } }));
                json_array_append_new(batch, state_record(&(struct record) { .kind = RECORD_NODE, .node = {
                        .node = node, .op = op, .time = 1700000001, .step = RECORD_TEXT("creating"),
                        .instance_id = RECORD_TEXT(inst) } }));
        } else
                json_array_append_new(batch, state_record(&(struct record) { .kind = RECORD_OP_STATE, .op_state = {
                        .id = op, .node = node, .state = STATE_OP_DONE, .time = 1700000100,
                        .note = RECORD_TEXT("up") } }));
        return json_array_size(batch) > 0 ? 0 : -ENOMEM;
}

static int journal_and_apply(struct loop_bench *b, json_t *batch) {
        json_t *rec;
        size_t i;
        int r = journal_append_many(b->journal, batch, NULL);

        if (r < 0)
                return r;
        json_array_foreach(batch, i, rec)
                (void) state_apply(b->state, rec, NULL);
        return 0;
}

static int on_probe(sd_event_source *src, uint64_t usec, void *userdata) {
        struct loop_bench *b = userdata;
        uint64_t t = usec_now();

        if (t - usec > b->max_late)
                b->max_late = t - usec;
        sd_event_source_set_time(src, t + PROBE_USEC);
        return sd_event_source_set_enabled(src, SD_EVENT_ONESHOT);
}

/* A request during the compaction: an operation's state change, journalled and applied. */
static int on_request(sd_event_source *src, uint64_t usec, void *userdata) {
        struct loop_bench *b = userdata;
        _cleanup_(json_decrefp) json_t *batch = json_array();
        uint64_t t0 = usec_now();

        if (b->done)
                return 0;
        if (append_node_round(batch, b->requests % STATE_NODES, 1) < 0 || journal_and_apply(b, batch) < 0)
                return sd_event_exit(b->event, -EIO);
        b->requests++;
        if (usec_now() - t0 > b->max_append)
                b->max_append = usec_now() - t0;
        sd_event_source_set_time(src, usec_now() + REQUEST_USEC);
        return sd_event_source_set_enabled(src, SD_EVENT_ONESHOT);
}

static void on_compacted(int r, const char *error, const struct compactor_result *res, void *userdata) {
        struct loop_bench *b = userdata;

        b->done = true;
        b->r = r;
        b->res = *res;
        if (r < 0)
                fprintf(stderr, "compaction: %s\n", error ? error : strerror(-r));
        sd_event_exit(b->event, 0);
}

static int add_live(struct journal_compaction *c, void *userdata) {
        json_t *live = userdata, *rec;
        size_t i;
        int r;

        json_array_foreach(live, i, rec)
                if ((r = journal_compact_add(c, rec)) < 0)
                        return r;
        return 0;
}

/* elasticd's state of STATE_NODES nodes (100,000 live records) with its
 * history (50,000 more), compacted while the loop answers: the longest time
 * the loop could not answer, next to the compaction's time; then the same
 * compaction done on the loop, as elasticd did before. */
static int bench_running_compaction(const char *parent) {
        struct loop_bench b = {};
        struct compactor *k = NULL;
        sd_event_source *probe = NULL, *request = NULL;
        _cleanup_free_ char *dir = NULL, *err = NULL;
        _cleanup_(json_decrefp) json_t *live = NULL;
        double t0, c0, l0, t, c, l, load[3] = {};
        struct journal_stats st;
        int r;

        if (asprintf(&dir, "%s/running", parent) < 0)
                return -ENOMEM;
        if ((r = sd_event_new(&b.event)) < 0 || (r = state_new("bnch", &b.state)) < 0 ||
            (r = journal_open(dir, &b.journal, &err)) < 0)
                goto out;
        for (unsigned round = 0; round < 2; round++)
                for (unsigned i = 0; i < STATE_NODES; i += 1000) {
                        _cleanup_(json_decrefp) json_t *batch = json_array();

                        for (unsigned n = i; n < i + 1000; n++)
                                if ((r = append_node_round(batch, n, round)) < 0)
                                        goto out;
                        if ((r = journal_and_apply(&b, batch)) < 0)
                                goto out;
                }
        journal_get_stats(b.journal, &st);
        getloadavg(load, 3);
        printf("running compaction: journal of %llu records (%.1f MB), %zu live records; load average %.2f %.2f %.2f\n",
               (unsigned long long) st.records, st.bytes / 1e6, state_live_records_max(b.state) - 1,
               load[0], load[1], load[2]);

        if ((r = compactor_new(b.event, b.journal, &k)) < 0 ||
            (r = sd_event_add_time_relative(b.event, &probe, CLOCK_MONOTONIC, PROBE_USEC, 1, on_probe, &b)) < 0 ||
            (r = sd_event_add_time_relative(b.event, &request, CLOCK_MONOTONIC, REQUEST_USEC, 1, on_request, &b)) < 0)
                goto out;
        t0 = now();
        c0 = cpu(RUSAGE_SELF);
        l0 = cpu(RUSAGE_THREAD);
        r = compactor_start(k, on_compacted, &b, &err);
        if (r >= 0)
                r = sd_event_loop(b.event);
        t = now() - t0;
        c = cpu(RUSAGE_SELF) - c0;
        l = cpu(RUSAGE_THREAD) - l0;
        if (r >= 0)
                r = b.r;
        if (r < 0)
                goto out;
        printf("running compaction (off the loop): %.3f s wall, %.2f s CPU (%.2f s of it the loop's); "
               "longest loop block %.1f ms (sampled every %d ms), the compaction's own part of the loop %.1f ms; "
               "%u requests journalled meanwhile (slowest %.1f ms), %.1f MB -> %.1f MB\n",
               t, c, l, b.max_late / 1000.0, PROBE_USEC / 1000, b.res.loop_usec / 1000.0, b.requests,
               b.max_append / 1000.0, b.res.bytes_before / 1e6, b.res.bytes_after / 1e6);
        k = compactor_free(k);

        /* As elasticd compacted before: the live records and the rewrite on the loop. */
        t0 = now();
        c0 = cpu(RUSAGE_SELF);
        r = state_live_records(b.state, &live);
        if (r >= 0)
                r = journal_compact(b.journal, add_live, live, &err);
        t = now() - t0;
        c = cpu(RUSAGE_SELF) - c0;
        if (r < 0)
                goto out;
        printf("compaction on the loop (elasticd's running path before): the loop blocked %.3f s (%.2f s CPU) "
               "for %zu live records\n", t, c, json_array_size(live));
out:
        if (r < 0)
                fprintf(stderr, "running compaction: %s\n", err ? err : strerror(-r));
        compactor_free(k);
        sd_event_source_disable_unref(probe);
        sd_event_source_disable_unref(request);
        journal_free(b.journal);
        state_free(b.state);
        sd_event_unref(b.event);
        return r;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        return remove(path);
}

int main(int argc, char **argv) {
        char tmpl[] = "/tmp/bench-journal-XXXXXX";
        const char *dir = argc > 1 ? argv[1] : mkdtemp(tmpl);
        struct journal *j = NULL;
        struct journal_stats st;
        char *err = NULL;
        unsigned n = 0, seen = 0;
        double t0, t;
        int r;

        if (!dir) {
                perror("mkdtemp");
                return 1;
        }
        r = journal_open(dir, &j, &err);
        if (r < 0) {
                fprintf(stderr, "%s\n", err ? err : strerror(-r));
                return 1;
        }

        /* Durable appends: each one fdatasync'd, for about two seconds. */
        t0 = now();
        do {
                json_t *rec = make_record(n);
                r = journal_append(j, rec, NULL);
                json_decref(rec);
                if (r < 0) {
                        fprintf(stderr, "append: %s\n", strerror(-r));
                        return 1;
                }
                n++;
        } while ((t = now() - t0) < 2.0 && n < 100000);
        printf("append+fdatasync: %u records in %.2f s = %.0f appends/s (%.3f ms each)\n",
               n, t, n / t, t * 1000 / n);

        t0 = now();
        r = journal_compact(j, add_records, NULL, &err);
        t = now() - t0;
        if (r < 0) {
                fprintf(stderr, "%s\n", err ? err : strerror(-r));
                return 1;
        }
        journal_get_stats(j, &st);
        printf("compaction to %u records: %.3f s, %.1f MB\n", RECORDS, t, st.bytes / 1e6);
        journal_free(j);

        t0 = now();
        r = journal_open(dir, &j, &err);
        t = now() - t0;
        if (r < 0) {
                fprintf(stderr, "%s\n", err ? err : strerror(-r));
                return 1;
        }
        printf("open (checks every record): %.3f s\n", t);
        t0 = now();
        r = journal_replay(j, count_cb, &seen, &err);
        t = now() - t0;
        printf("replay of %u records: %.3f s (%.2f us/record)\n", seen, t, t * 1e6 / (seen ? seen : 1));
        journal_free(j);
        j = NULL;

        /* What elasticd does at start-up, on a thread while its socket answers busy. */
        seen = 0;
        t0 = now();
        r = journal_lock(dir, &j, &err);
        if (r >= 0)
                r = journal_load(j, count_cb, &seen, &err);
        t = now() - t0;
        printf("lock+load, replaying in the same pass (elasticd's start-up, off the loop): %.3f s for %u records\n",
               t, seen);
        journal_free(j);
        free(err);
        if (r >= 0)
                r = bench_running_compaction(dir);

        if (argc <= 1)
                nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
        return r < 0 ? 1 : 0;
}
