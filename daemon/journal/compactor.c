/* compactor.c - journal compaction off the event loop: replay of the snapshot and the live records on a worker thread. */
#include "journal/compactor.h"

#include <errno.h>
#include <malloc.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "journal/state.h"
#include "util/worker.h"

struct compactor {
        struct journal *journal;
        struct worker_pool *pool;
        struct journal_compaction *c;   /* the one running, or NULL */
        compactor_done_fn done;
        void *userdata;
        atomic_bool stopping;  /* compactor_free: the thread gives up at its next record */

        /* Written by the thread, read by the loop after it (the pool orders them). */
        int r;
        char *error;
        struct compactor_result res;
        uint64_t t_start;
};

static uint64_t now_usec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000ULL + (uint64_t) ts.tv_nsec / 1000;
}

int compactor_new(sd_event *event, struct journal *j, struct compactor **ret) {
        struct compactor *k;
        int r;

        k = calloc(1, sizeof(*k));
        if (!k)
                return -ENOMEM;
        k->journal = j;
        r = worker_pool_new(event, "compact", 1, 1, &k->pool);
        if (r < 0) {
                free(k);
                return r;
        }
        *ret = k;
        return 0;
}

struct compactor *compactor_free(struct compactor *k) {
        if (!k)
                return NULL;
        atomic_store(&k->stopping, true);
        /* Waits for the thread (which gives up soon); its done callback then
         * abandons the compaction. */
        worker_pool_free(k->pool);
        k->c = journal_compaction_free(k->c);
        free(k->error);
        free(k);
        return NULL;
}

bool compactor_running(const struct compactor *k) {
        return k->c != NULL;
}

struct replay {
        struct compactor *k;
        struct state *state;
        uint64_t skipped;
};

/* As elasticd's start-up: a record state_apply refuses is skipped. */
static int replay_one(json_t *record, void *userdata) {
        struct replay *p = userdata;
        int r;

        if (atomic_load_explicit(&p->k->stopping, memory_order_relaxed))
                return -ECANCELED;
        r = state_apply(p->state, record, NULL);

        if (r == -ENOMEM)
                return r;
        if (r < 0)
                p->skipped++;
        return 0;
}

static int write_live(struct compactor *k, struct state *s) {
        _cleanup_(json_decrefp) json_t *live = NULL;
        json_t *rec;
        size_t i;
        int r;

        r = state_live_records(s, &live);
        if (r < 0)
                return r;
        json_array_foreach(live, i, rec) {
                /* Replayed records carry the journal's own keys: it sets fresh ones. */
                _cleanup_(json_decrefp) json_t *copy = NULL;

                if (json_object_get(rec, "seq") || json_object_get(rec, "ts")) {
                        copy = json_copy(rec);
                        if (!copy)
                                return -ENOMEM;
                        json_object_del(copy, "seq");
                        json_object_del(copy, "ts");
                        rec = copy;
                }
                r = journal_compact_add(k->c, rec);
                if (r < 0)
                        return r;
                if (atomic_load_explicit(&k->stopping, memory_order_relaxed))
                        return -ECANCELED;
        }
        k->res.live_records = json_array_size(live);
        return 0;
}

/* On the worker thread: touches K's compaction and result only. */
static void compact_run(void *userdata) {
        struct compactor *k = userdata;
        struct replay p = { .k = k };
        uint64_t t0 = now_usec();
        int r;

        r = state_new("compact", &p.state);
        if (r >= 0)
                r = journal_compaction_replay(k->c, replay_one, &p, &k->error);
        if (r >= 0) {
                r = write_live(k, p.state);
                if (r < 0 && !k->error && asprintf(&k->error, "writing the live records: %s", strerror(-r)) < 0)
                        k->error = NULL;
        }
        if (r >= 0)
                r = journal_compaction_write(k->c, &k->error);
        state_free(p.state);
        /* The replayed state was big and is gone: give its pages back. */
        (void) malloc_trim(0);
        k->res.skipped = p.skipped;
        k->res.thread_usec = now_usec() - t0;
        k->r = r;
}

static void compact_done(void *userdata, bool cancelled) {
        struct compactor *k = userdata;
        struct journal_stats st;
        uint64_t t0 = now_usec();
        int r = cancelled ? -ECANCELED : k->r;

        if (atomic_load(&k->stopping)) {
                k->c = journal_compaction_free(k->c);
                return;
        }
        if (r >= 0) {
                journal_get_stats(k->journal, &st);
                k->res.tail_bytes = st.bytes - k->res.bytes_before;
                r = journal_compact_finish(k->c, &k->error);
        }
        k->c = journal_compaction_free(k->c);
        if (r >= 0) {
                journal_get_stats(k->journal, &st);
                k->res.bytes_after = st.bytes;
        }
        k->res.loop_usec += now_usec() - t0;
        k->res.wall_usec = now_usec() - k->t_start;
        if (k->done)
                k->done(r, k->error, &k->res, k->userdata);
        k->error = mfree(k->error);
}

int compactor_start(struct compactor *k, compactor_done_fn done, void *userdata, char **ret_error) {
        struct journal_stats st;
        uint64_t t0 = now_usec();
        int r;

        if (k->c)
                return -EBUSY;
        journal_get_stats(k->journal, &st);
        r = journal_compact_begin(k->journal, &k->c, ret_error);
        if (r < 0)
                return r;
        k->done = done;
        k->userdata = userdata;
        k->r = 0;
        k->error = mfree(k->error);
        k->res = (struct compactor_result) { .bytes_before = st.bytes };
        k->t_start = t0;
        r = worker_pool_submit(k->pool, compact_run, compact_done, k);
        if (r < 0) {
                k->c = journal_compaction_free(k->c);
                return r;
        }
        k->res.loop_usec = now_usec() - t0;
        return 0;
}
