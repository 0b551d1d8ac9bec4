/* fuzz-journal.c - libFuzzer target: journal_open and replay on any file content.
 *
 * The input is a journal file as a crash, a full disk or an editor could leave
 * it. Open either refuses it with a message or accepts it; then the file holds
 * exactly the bytes it accounts for, replay sees as many records as it counts
 * (and none of the journal's own keys but seq and ts), each record either
 * is refused with a message or round-trips through records.h, and an append
 * followed by a reopen finds one more record with the next seq. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"
#include "journal/journal.h"
#include "journal/records.h"

static char dir[64];
static char path[128];

static void fail(const char *what) {
        fprintf(stderr, "%s\n", what);
        abort();
}

/* What record_decode accepts, record_encode accepts back, and that JSON
 * decodes to the same again; a refusal names something. */
static void check_record(json_t *record) {
        struct record r, r2;
        json_t *again = NULL, *third = NULL;
        char *err = NULL;
        int k;

        k = record_decode(record, &r, &err);
        if (k < 0) {
                if (!err)
                        fail("record refused without a message");
                free(err);
                return;
        }
        if (k > 0)
                return;
        if (record_encode(&r, &again, NULL) < 0)
                fail("a decoded record does not encode");
        if (record_decode(again, &r2, NULL) != 0 || record_encode(&r2, &third, NULL) < 0 ||
            !json_equal(again, third))
                fail("a record does not round-trip");
        json_decref(again);
        json_decref(third);
}

static int count_cb(json_t *record, void *userdata) {
        if (!json_is_object(record) || json_object_get(record, "more"))
                fail("replay passes a non-object or the batch marker");
        check_record(record);
        (*(uint64_t *) userdata)++;
        return 0;
}

static void cleanup(void) {
        char p[160];

        unlink(path);
        snprintf(p, sizeof(p), "%s/%s", dir, JOURNAL_LOCK_FILE);
        unlink(p);
        snprintf(p, sizeof(p), "%s/%s", dir, JOURNAL_TMP_FILE);
        unlink(p);
        rmdir(dir);
}

static void run(const uint8_t *data, size_t size);

/* Nothing is left behind, whichever way a run ends short of a crash. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        run(data, size);
        cleanup();
        return 0;
}

static void run(const uint8_t *data, size_t size) {
        struct journal *j = NULL;
        struct journal_stats st, st2;
        char *err = NULL;
        uint64_t seen = 0;
        struct stat sb;
        json_t *rec;
        int fd, r;

        if (!dir[0]) {
                /* Private per process; tmpfs when there is one (fast fsync). */
                const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
                snprintf(dir, sizeof(dir), "%s/fuzz-journal-%d", base, (int) getpid());
                snprintf(path, sizeof(path), "%s/%s", dir, JOURNAL_FILE);
        }
        if (mkdir(dir, 0700) < 0 && errno != EEXIST)
                return;
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0)
                return;
        if (write(fd, data, size) != (ssize_t) size) {
                close(fd);
                return;
        }
        close(fd);

        r = journal_open(dir, &j, &err);
        if (r < 0) {
                if (r == -EBADMSG && !err)
                        fail("refused without a message");
                free(err);
                return;
        }
        journal_get_stats(j, &st);
        if (stat(path, &sb) < 0 || (uint64_t) sb.st_size != st.bytes || st.bytes + st.torn_bytes != size)
                fail("file size and accounting disagree");
        if (journal_replay(j, count_cb, &seen, NULL) < 0 || seen != st.records)
                fail("replay and accounting disagree");

        rec = json_pack("{s:s}", "kind", "fuzz");
        if (!rec)
                abort();
        r = journal_append(j, rec, NULL);
        json_decref(rec);
        journal_free(j);
        if (r == -EOVERFLOW && st.last_seq + 1 >= ((uint64_t) 1 << 53))
                return; /* seq exhausted: refused, not wrapped */
        if (r < 0)
                fail("append after open fails");

        j = NULL;
        if (journal_open(dir, &j, NULL) < 0)
                fail("reopen after append fails");
        journal_get_stats(j, &st2);
        if (st2.records != st.records + 1 || st2.last_seq != st.last_seq + 1 || st2.torn_bytes != 0)
                fail("append not found after reopen");
        journal_free(j);
}
