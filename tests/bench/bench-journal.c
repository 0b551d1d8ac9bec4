/* bench-journal.c - durable appends per second, and open/replay/compaction time for 100k records.
 * Usage: bench-journal [DIR]   (DIR: a state directory on the disk to measure; default a
 * fresh directory under /tmp; it is removed afterwards). */
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "journal/journal.h"

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

        if (argc <= 1)
                nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
        return r < 0 ? 1 : 0;
}
