/* test-journal.c - durable appends, replay, torn tails, corruption, locking, crash-safe compaction. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "journal/journal.h"
#include "test.h"

/* ---- helpers ------------------------------------------------------------ */

/* A crash as kill -9 makes it: no exit handlers, no flushing, no cleanup
 * (and no leak report from valgrind for what the dead process held). */
__attribute__((noreturn)) static void die(void) {
        kill(getpid(), SIGKILL);
        _exit(99);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        return remove(path);
}

static void rm_rf(const char *dir) {
        nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* A fresh private directory per test case and run. */
static char *make_dir(void) {
        char *d = strdup("/tmp/test-journal-XXXXXX");

        if (!d || !mkdtemp(d)) {
                free(d);
                return NULL;
        }
        return d;
}

static void cleanup_dir(char **d) {
        if (*d) {
                rm_rf(*d);
                free(*d);
        }
}
#define _cleanup_dir_ _cleanup_(cleanup_dir)

static char *file_in(const char *dir, const char *name) {
        char *p = NULL;
        return asprintf(&p, "%s/%s", dir, name) < 0 ? NULL : p;
}

static char *read_file(const char *path, size_t *ret_len) {
        FILE *f = fopen(path, "re");
        char *buf = NULL;
        size_t len = 0;
        struct stat st;

        if (!f)
                return NULL;
        if (fstat(fileno(f), &st) == 0) {
                buf = malloc((size_t) st.st_size + 1);
                if (buf) {
                        len = fread(buf, 1, (size_t) st.st_size, f);
                        buf[len] = 0;
                }
        }
        fclose(f);
        if (ret_len)
                *ret_len = len;
        return buf;
}

static int write_file(const char *path, const char *data, size_t len) {
        FILE *f = fopen(path, "we");

        if (!f)
                return -errno;
        if (fwrite(data, 1, len, f) != len) {
                fclose(f);
                return -EIO;
        }
        return fclose(f) == 0 ? 0 : -errno;
}

static off_t file_size(const char *path) {
        struct stat st;
        return stat(path, &st) == 0 ? st.st_size : -1;
}

static int append_op(struct journal *j, const char *node, int state) {
        json_t *rec = json_pack("{s:s, s:s, s:i}", "kind", "op", "node", node, "state", state);
        _cleanup_free_ char *err = NULL;
        int r = journal_append(j, rec, &err);

        if (r < 0)
                TEST_FAIL("append: %d %s", r, err ? err : "");
        json_decref(rec);
        return r;
}

/* Collects replayed records. */
struct collect {
        json_t *records; /* array */
        int stop_after;  /* > 0: fail the replay after that many */
};

static int collect_cb(json_t *record, void *userdata) {
        struct collect *c = userdata;

        json_array_append(c->records, record);
        if (c->stop_after > 0 && (int) json_array_size(c->records) >= c->stop_after)
                return -ECANCELED;
        return 0;
}

static json_t *replay_all(struct journal *j) {
        struct collect c = { .records = json_array() };
        _cleanup_free_ char *err = NULL;
        int r = journal_replay(j, collect_cb, &c, &err);

        if (r < 0) {
                TEST_FAIL("replay: %d %s", r, err ? err : "");
                json_decref(c.records);
                return NULL;
        }
        return c.records;
}

static struct journal *open_ok(const char *dir) {
        struct journal *j = NULL;
        _cleanup_free_ char *err = NULL;
        int r = journal_open(dir, &j, &err);

        if (r < 0)
                TEST_FAIL("open %s: %d %s", dir, r, err ? err : "");
        return j;
}

static json_int_t seq_of(json_t *rec) {
        return json_integer_value(json_object_get(rec, "seq"));
}

/* ---- cases -------------------------------------------------------------- */

static void test_append_replay(void) {
        _cleanup_dir_ char *dir = make_dir();
        _cleanup_free_ char *path = file_in(dir, JOURNAL_FILE), *text = NULL;
        _cleanup_(journal_freep) struct journal *j = NULL;
        struct journal_stats st;
        json_t *all;

        CHECK(dir != NULL);
        j = open_ok(dir);
        if (!j)
                return;
        CHECK_INT(journal_next_seq(j), 1);
        CHECK_INT(append_op(j, "cn1", 1), 0);
        CHECK_INT(append_op(j, "cn2", 2), 0);
        CHECK_INT(append_op(j, "cn1", 3), 0);
        CHECK_INT(journal_next_seq(j), 4);

        all = replay_all(j);
        CHECK(all && json_array_size(all) == 3);
        for (size_t i = 0; all && i < json_array_size(all); i++) {
                json_t *rec = json_array_get(all, i);
                CHECK_INT(seq_of(rec), i + 1);
                CHECK(json_string_value(json_object_get(rec, "ts")) != NULL);
                CHECK_STR(json_string_value(json_object_get(rec, "kind")), "op");
        }
        CHECK_INT(json_integer_value(json_object_get(json_array_get(all, 2), "state")), 3);
        json_decref(all);

        /* One line per record, seq and ts first. */
        text = read_file(path, NULL);
        CHECK(text && strncmp(text, "{\"seq\":1,\"ts\":\"", 15) == 0);
        CHECK(text && strstr(text, ",\"kind\":\"op\",\"node\":\"cn1\",\"state\":1}\n{\"seq\":2,"));

        journal_get_stats(j, &st);
        CHECK_INT(st.records, 3);
        CHECK_INT(st.last_seq, 3);
        CHECK_INT(st.bytes, file_size(path));
        CHECK_INT(st.torn_bytes, 0);
}

/* A URL's password or token never reaches the file; the line stays JSON. */
static void test_url_redacted(void) {
        _cleanup_dir_ char *dir = make_dir();
        _cleanup_free_ char *path = file_in(dir, JOURNAL_FILE), *text = NULL, *err = NULL;
        _cleanup_(journal_freep) struct journal *j = NULL;
        json_t *rec, *all;

        CHECK(dir != NULL);
        j = open_ok(dir);
        if (!j)
                return;
        rec = json_pack("{s:s, s:s}", "kind", "op_state",
                        "note", "POST http://u:SECRETpw@k/v3?token=SECRETtok\\\"x: refused");
        CHECK_INT(journal_append(j, rec, &err), 0);
        json_decref(rec);
        text = read_file(path, NULL);
        CHECK(text && !strstr(text, "SECRET"));
        CHECK(text && strstr(text, "http://***@k/v3?token=***"));
        all = replay_all(j);
        CHECK(all && json_array_size(all) == 1);
        if (all && json_array_size(all) == 1)
                CHECK_STR(json_string_value(json_object_get(json_array_get(all, 0), "note")),
                          "POST http://***@k/v3?token=***\\\"x: refused");
        json_decref(all);
}

static void test_append_many(void) {
        _cleanup_dir_ char *dir = make_dir();
        _cleanup_free_ char *path = file_in(dir, JOURNAL_FILE), *e1 = NULL, *e2 = NULL;
        _cleanup_(journal_freep) struct journal *j = NULL;
        struct journal_stats st;
        json_t *batch, *bad, *empty, *all;

        CHECK(dir != NULL);
        j = open_ok(dir);
        if (!j)
                return;
        CHECK_INT(append_op(j, "cn0", 0), 0);
        batch = json_pack("[{s:s, s:s}, {s:s, s:s}, {s:s, s:s}]", "kind", "request", "id", "r-1",
                          "kind", "op", "node", "cn1", "kind", "op", "node", "cn2");
        CHECK_INT(journal_append_many(j, batch, NULL), 0);
        CHECK_INT(journal_next_seq(j), 5);
        /* One bad record refuses the whole batch: nothing written, no seq used. */
        bad = json_pack("[{s:s}, {s:i}]", "kind", "op", "seq", 3);
        CHECK_INT(journal_append_many(j, bad, &e1), -EINVAL);
        CHECK(e1 != NULL);
        CHECK_INT(journal_append_many(j, NULL, &e2), -EINVAL);
        empty = json_array();
        CHECK_INT(journal_append_many(j, empty, NULL), 0);
        CHECK_INT(journal_next_seq(j), 5);
        journal_get_stats(j, &st);
        CHECK_INT(st.records, 4);
        CHECK_INT(st.bytes, file_size(path));

        all = replay_all(j);
        CHECK(all && json_array_size(all) == 4);
        for (size_t i = 0; all && i < json_array_size(all); i++)
                CHECK_INT(seq_of(json_array_get(all, i)), i + 1);
        CHECK(all && strcmp(json_string_value(json_object_get(json_array_get(all, 3), "node")), "cn2") == 0);
        json_decref(all);
        json_decref(batch);
        json_decref(bad);
        json_decref(empty);
}

static void test_creates_dir(void) {
        _cleanup_dir_ char *base = make_dir();
        _cleanup_free_ char *dir = base ? file_in(base, "state") : NULL;
        _cleanup_free_ char *lock = dir ? file_in(dir, JOURNAL_LOCK_FILE) : NULL;
        _cleanup_free_ char *jf = dir ? file_in(dir, JOURNAL_FILE) : NULL;
        _cleanup_free_ char *err = NULL, *err2 = NULL, *missing = base ? file_in(base, "no/such") : NULL;
        struct journal *j = NULL;
        struct stat st;

        j = open_ok(dir);
        if (!j)
                return;
        CHECK_INT(stat(dir, &st), 0);
        CHECK_INT(st.st_mode & 07777, 0700);
        CHECK_INT(stat(jf, &st), 0);
        CHECK_INT(st.st_mode & 0077, 0);
        CHECK_INT(stat(lock, &st), 0);
        journal_free(j);

        CHECK_INT(journal_open(missing, &j, &err), -ENOENT);
        CHECK(err && strstr(err, "cannot create state directory") && strstr(err, "no/such"));
        CHECK_INT(journal_open("", &j, &err2), -EINVAL);
        CHECK(journal_free(NULL) == NULL);
}

static void test_visible_after_close(void) {
        _cleanup_dir_ char *dir = make_dir();
        _cleanup_free_ char *path = file_in(dir, JOURNAL_FILE), *text = NULL;
        struct journal *j = open_ok(dir);
        size_t lines = 0;
        json_t *all;

        if (!j)
                return;
        for (int i = 0; i < 5; i++)
                append_op(j, "cn1", i);
        journal_free(j);

        text = read_file(path, NULL);
        for (char *p = text; p && *p; p++)
                lines += *p == '\n';
        CHECK_INT(lines, 5);

        j = open_ok(dir);
        if (!j)
                return;
        all = replay_all(j);
        CHECK(all && json_array_size(all) == 5);
        json_decref(all);
        journal_free(j);
}

static void test_seq_continues_after_reopen(void) {
        _cleanup_dir_ char *dir = make_dir();
        struct journal *j = open_ok(dir);
        json_t *all;

        if (!j)
                return;
        for (int i = 0; i < 5; i++)
                append_op(j, "cn1", i);
        journal_free(j);
        j = open_ok(dir);
        if (!j)
                return;
        CHECK_INT(journal_next_seq(j), 6);
        append_op(j, "cn1", 5);
        all = replay_all(j);
        CHECK(all && json_array_size(all) == 6 && seq_of(json_array_get(all, 5)) == 6);
        json_decref(all);
        journal_free(j);
}

/* Every prefix of the last line, as a crash during its write leaves it. */
static void test_torn_tail_every_length(void) {
        _cleanup_dir_ char *dir = make_dir();
        _cleanup_free_ char *path = file_in(dir, JOURNAL_FILE), *full = NULL;
        struct journal *j = open_ok(dir);
        size_t len = 0, last_start, bad = 0, tried = 0;

        if (!j)
                return;
        for (int i = 0; i < 3; i++)
                append_op(j, "cn1", i);
        journal_free(j);
        full = read_file(path, &len);
        if (!full)
                return;
        for (last_start = len - 1; last_start > 0 && full[last_start - 1] != '\n'; last_start--)
                ;

        /* k bytes of the last line, newline excluded: k = 1 .. line length. */
        for (size_t k = 1; last_start + k < len; k++) {
                struct journal_stats st;
                json_t *all;

                tried++;
                if (write_file(path, full, last_start + k) < 0) {
                        bad++;
                        continue;
                }
                j = open_ok(dir);
                if (!j) {
                        bad++;
                        continue;
                }
                journal_get_stats(j, &st);
                all = replay_all(j);
                if (st.torn_bytes != k || st.records != 2 || st.bytes != last_start ||
                    file_size(path) != (off_t) last_start || !all || json_array_size(all) != 2 ||
                    journal_next_seq(j) != 3)
                        bad++;
                /* Appends follow cleanly. */
                append_op(j, "cn2", 9);
                json_decref(all);
                journal_free(j);
                j = open_ok(dir);
                if (!j || (journal_get_stats(j, &st), st.records != 3 || st.torn_bytes != 0))
                        bad++;
                journal_free(j);
        }
        CHECK(tried > 40);
        CHECK_INT(bad, 0);
}

/* A crash during journal_append_many, at every byte of its write: the
 * whole batch goes, what came before stays. */
static void test_batch_torn_every_length(void) {
        _cleanup_dir_ char *dir = make_dir();
        _cleanup_free_ char *path = file_in(dir, JOURNAL_FILE), *full = NULL;
        struct journal *j = open_ok(dir);
        size_t len = 0, before, bad = 0;
        json_t *batch, *all;

        if (!j)
                return;
        append_op(j, "cn0", 0);
        before = (size_t) file_size(path);
        batch = json_pack("[{s:s, s:s}, {s:s, s:s}, {s:s, s:s}]", "kind", "request", "id", "r-1",
                          "kind", "op", "node", "cn1", "kind", "op", "node", "cn2");
        CHECK_INT(journal_append_many(j, batch, NULL), 0);
        json_decref(batch);
        /* Replay does not show the batch marker. */
        all = replay_all(j);
        CHECK(all && json_array_size(all) == 4);
        for (size_t i = 0; all && i < json_array_size(all); i++)
                CHECK(json_object_get(json_array_get(all, i), "more") == NULL);
        json_decref(all);
        journal_free(j);
        full = read_file(path, &len);
        if (!full)
                return;
        CHECK(strstr(full, "\"more\":true") != NULL);

        for (size_t k = before + 1; k <= len; k++) {
                struct journal_stats st;
                bool whole = k == len;

                if (write_file(path, full, k) < 0) {
                        bad++;
                        continue;
                }
                j = open_ok(dir);
                if (!j) {
                        bad++;
                        continue;
                }
                journal_get_stats(j, &st);
                if (st.records != (whole ? 4 : 1) || st.torn_bytes != (whole ? 0 : k - before) ||
                    (size_t) file_size(path) != (whole ? len : before) ||
                    journal_next_seq(j) != (whole ? 5 : 2)) {
                        TEST_FAIL("cut at %zu of %zu: %" PRIu64 " records, %" PRIu64 " torn bytes",
                                  k, len, st.records, st.torn_bytes);
                        bad++;
                }
                journal_free(j);

                /* Open and replay in one pass: the cut batch never reaches the callback. */
                if (write_file(path, full, k) < 0) {
                        bad++;
                        continue;
                }
                {
                        struct collect c = { .records = json_array() };
                        _cleanup_free_ char *err = NULL;

                        j = NULL;
                        if (journal_lock(dir, &j, &err) < 0 || journal_load(j, collect_cb, &c, &err) < 0) {
                                TEST_FAIL("lock+load cut at %zu: %s", k, err ? err : "");
                                bad++;
                        } else if (json_array_size(c.records) != (whole ? 4 : 1) ||
                                   (journal_get_stats(j, &st), st.records != (whole ? 4 : 1)) ||
                                   (size_t) file_size(path) != (whole ? len : before) ||
                                   journal_next_seq(j) != (whole ? 5 : 2)) {
                                TEST_FAIL("load cut at %zu of %zu: %zu records seen", k, len,
                                          json_array_size(c.records));
                                bad++;
                        }
                        json_decref(c.records);
                        journal_free(j);
                }
                if (bad > 3)
                        break;
        }
        CHECK_INT(bad, 0);
}

/* A crash can leave zeros after the last line when the size reached the
 * disk before the data. */
static void test_torn_tail_zeros(void) {
        _cleanup_dir_ char *dir = make_dir();
        _cleanup_free_ char *path = file_in(dir, JOURNAL_FILE), *text = NULL;
        struct journal *j = open_ok(dir);
        struct journal_stats st;
        size_t len;
        int fd;

        if (!j)
                return;
        append_op(j, "cn1", 1);
        journal_free(j);
        fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
        CHECK(fd >= 0);
        CHECK_INT(write(fd, "\0\0\0\0\0\0\0\0", 8), 8);
        close(fd);

        j = open_ok(dir);
        if (!j)
                return;
        journal_get_stats(j, &st);
        CHECK_INT(st.torn_bytes, 8);
        CHECK_INT(st.records, 1);
        journal_free(j);
        text = read_file(path, &len);
        CHECK_INT(len, st.bytes);
}

static void check_refused_n(const char *content, size_t len, const char *needle) {
        _cleanup_dir_ char *dir = make_dir();
        _cleanup_free_ char *path = file_in(dir, JOURNAL_FILE), *err = NULL, *after = NULL;
        struct journal *j = NULL;
        size_t n = 0;
        int r;

        if (!dir || write_file(path, content, len) < 0) {
                TEST_FAIL("setup");
                return;
        }
        r = journal_open(dir, &j, &err);
        if (r != -EBADMSG) {
                TEST_FAIL("open of \"%s\": %d, expected -EBADMSG", content, r);
                journal_free(j);
                return;
        }
        if (!err || !strstr(err, needle))
                TEST_FAIL("error \"%s\" lacks \"%s\"", err ? err : "(null)", needle);
        /* Nothing was cut off. */
        after = read_file(path, &n);
        CHECK(after && n == len && memcmp(after, content, len) == 0);
}

static void check_refused(const char *content, const char *needle) {
        check_refused_n(content, strlen(content), needle);
}

static void test_corrupt_middle_refused(void) {
        check_refused("{\"seq\":1,\"kind\":\"op\"}\n{\"seq\":2,\"ki\n{\"seq\":3,\"kind\":\"op\"}\n",
                      "journal.jsonl line 2: corrupt record");
        check_refused("{\"seq\":1}\n[1,2]\n{\"seq\":3}\n", "line 2: not a journal record");
        check_refused("{\"seq\":1}\n{\"kind\":\"op\"}\n{\"seq\":3}\n", "line 2: not a journal record");
        check_refused("{\"seq\":1}\n{\"seq\":\"2\"}\n", "line 2: not a journal record");
        check_refused("{\"seq\":1}\n\n{\"seq\":3}\n", "line 2: corrupt record");
        check_refused("{\"seq\":5}\n{\"seq\":4}\n", "line 2: seq 4 after seq 5");
        check_refused("{\"seq\":1}\n{\"seq\":1}\n", "line 2: seq 1 after seq 1");
        check_refused("{\"seq\":9007199254740992}\n", "line 1: seq out of range");
        check_refused("{\"seq\":99999999999999999999}\n", "line 1: corrupt record");
        check_refused("{\"seq\":1,\"a\":1,\"a\":2}\n", "line 1: corrupt record");
        check_refused_n("{\"seq\":1}\n{\"seq\":2}\0\n{\"seq\":3}\n", 31, "line 2: corrupt record");
        /* A complete but bad last line is not a torn write: refused too. */
        check_refused("{\"seq\":1}\n{\"seq\":2\n", "line 2: corrupt record");
}

static void test_invalid_records(void) {
        _cleanup_dir_ char *dir = make_dir();
        _cleanup_free_ char *path = file_in(dir, JOURNAL_FILE);
        _cleanup_free_ char *e1 = NULL, *e2 = NULL, *e3 = NULL, *e4 = NULL, *text = NULL;
        _cleanup_(journal_freep) struct journal *j = open_ok(dir);
        json_t *arr = json_array(), *withseq = json_pack("{s:i}", "seq", 7),
               *withts = json_pack("{s:s}", "ts", "x"), *own = json_pack("{s:s}", "kind", JOURNAL_KIND_OWN),
               *empty = json_object(), *withmore = json_pack("{s:b}", "more", 1);

        if (!j)
                goto out;
        CHECK_INT(journal_append(j, arr, &e1), -EINVAL);
        CHECK_STR(e1, "journal record is not a JSON object");
        CHECK_INT(journal_append(j, withseq, &e2), -EINVAL);
        CHECK_INT(journal_append(j, withts, &e3), -EINVAL);
        CHECK_INT(journal_append(j, withmore, NULL), -EINVAL);
        CHECK_INT(journal_append(j, own, &e4), -EINVAL);
        CHECK(e4 && strstr(e4, "reserved"));
        CHECK_INT(journal_append(j, NULL, NULL), -EINVAL);
        CHECK_INT(file_size(path), 0);
        CHECK_INT(journal_next_seq(j), 1);
        /* The caller's object is not modified. */
        CHECK_INT(json_object_size(withseq), 1);
        /* An empty object is a record too. */
        CHECK_INT(journal_append(j, empty, NULL), 0);
        text = read_file(path, NULL);
        CHECK(text && strncmp(text, "{\"seq\":1,\"ts\":\"", 15) == 0 && strcmp(text + strlen(text) - 4, "Z\"}\n") == 0);
out:
        json_decref(arr);
        json_decref(withseq);
        json_decref(withts);
        json_decref(own);
        json_decref(empty);
        json_decref(withmore);
}

static void test_large_records(void) {
        _cleanup_dir_ char *dir = make_dir();
        _cleanup_free_ char *path = file_in(dir, JOURNAL_FILE), *big = malloc(4u << 20), *huge = malloc(JOURNAL_RECORD_MAX);
        _cleanup_free_ char *err = NULL;
        struct journal *j = open_ok(dir);
        json_t *rec, *all;
        off_t size;

        if (!j || !big || !huge) {
                journal_free(j);
                return;
        }
        memset(big, 'x', (4u << 20) - 1);
        big[(4u << 20) - 1] = 0;
        rec = json_pack("{s:s, s:s}", "kind", "request", "blob", big);
        CHECK_INT(journal_append(j, rec, NULL), 0);
        json_decref(rec);
        append_op(j, "cn1", 1);

        memset(huge, 'y', JOURNAL_RECORD_MAX - 1);
        huge[JOURNAL_RECORD_MAX - 1] = 0;
        size = file_size(path);
        rec = json_pack("{s:s}", "blob", huge);
        CHECK_INT(journal_append(j, rec, &err), -E2BIG);
        CHECK(err && strstr(err, "longer than 16777216 bytes"));
        json_decref(rec);
        CHECK_INT(file_size(path), size);
        journal_free(j);

        j = open_ok(dir);
        if (!j)
                return;
        all = replay_all(j);
        CHECK(all && json_array_size(all) == 2);
        CHECK(all && strcmp(json_string_value(json_object_get(json_array_get(all, 0), "blob")), big) == 0);
        json_decref(all);
        journal_free(j);
}

static void test_lock_contention(void) {
        _cleanup_dir_ char *dir = make_dir();
        _cleanup_free_ char *err = NULL, *want = NULL;
        struct journal *j1 = open_ok(dir), *j2 = NULL;
        pid_t pid;
        int status;

        if (!j1)
                return;
        CHECK_INT(journal_open(dir, &j2, &err), -EBUSY);
        CHECK(j2 == NULL);
        CHECK(asprintf(&want, "state directory %s is in use by another elasticd (pid %d)", dir, (int) getpid()) > 0);
        CHECK_STR(err, want);

        /* Another process is refused too. */
        fflush(stdout);
        pid = fork();
        if (pid == 0) {
                struct journal *j = NULL;
                if (journal_open(dir, &j, NULL) != -EBUSY)
                        _exit(1);
                die();
        }
        CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
        CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

        journal_free(j1);
        j2 = open_ok(dir);
        journal_free(j2);
}

/* A failing write (here: the file size limit, part-way through a record)
 * leaves no partial line behind; the next append works. */
static void test_failed_write_rolled_back(void) {
        _cleanup_dir_ char *dir = make_dir();
        _cleanup_free_ char *path = file_in(dir, JOURNAL_FILE), *err = NULL, *blob = calloc(1, 2000);
        struct journal *j = open_ok(dir);
        struct rlimit old, lim;
        void (*old_handler)(int);
        json_t *rec, *all;
        off_t size;

        if (!j || !blob) {
                journal_free(j);
                return;
        }
        append_op(j, "cn1", 1);
        size = file_size(path);
        memset(blob, 'z', 1999);
        rec = json_pack("{s:s}", "blob", blob);

        old_handler = signal(SIGXFSZ, SIG_IGN);
        CHECK_INT(getrlimit(RLIMIT_FSIZE, &old), 0);
        lim = old;
        lim.rlim_cur = (rlim_t) size + 100;
        CHECK_INT(setrlimit(RLIMIT_FSIZE, &lim), 0);
        CHECK_INT(journal_append(j, rec, &err), -EFBIG);
        CHECK_INT(setrlimit(RLIMIT_FSIZE, &old), 0);
        signal(SIGXFSZ, old_handler);
        CHECK(err && strstr(err, "write"));
        CHECK_INT(file_size(path), size);
        CHECK_INT(journal_next_seq(j), 2);

        CHECK_INT(journal_append(j, rec, NULL), 0);
        json_decref(rec);
        journal_free(j);
        j = open_ok(dir);
        if (!j)
                return;
        all = replay_all(j);
        CHECK(all && json_array_size(all) == 2 && seq_of(json_array_get(all, 1)) == 2);
        json_decref(all);
        journal_free(j);
}

static void test_replay_stops(void) {
        _cleanup_dir_ char *dir = make_dir();
        _cleanup_(journal_freep) struct journal *j = open_ok(dir);
        struct collect c = { .records = json_array(), .stop_after = 2 };

        if (!j)
                goto out;
        for (int i = 0; i < 5; i++)
                append_op(j, "cn1", i);
        CHECK_INT(journal_replay(j, collect_cb, &c, NULL), -ECANCELED);
        CHECK_INT(json_array_size(c.records), 2);
out:
        json_decref(c.records);
}

/* ---- compaction --------------------------------------------------------- */

#define NODES 10
#define UPDATES 100

/* Live state: the last state of each node, as replayed. */
static int state_cb(json_t *record, void *userdata) {
        int *state = userdata;
        const char *node = json_string_value(json_object_get(record, "node"));
        int n;

        if (!node || sscanf(node, "cn%d", &n) != 1 || n < 0 || n >= NODES)
                return -EBADMSG;
        state[n] = (int) json_integer_value(json_object_get(record, "state"));
        return 0;
}

struct compact_state {
        const int *state;
        int crash_after; /* > 0: die() after adding that many */
        bool fail;
};

static int write_state_cb(struct journal_compaction *c, void *userdata) {
        struct compact_state *cs = userdata;

        if (cs->fail)
                return -EIO;
        for (int n = 0; n < NODES; n++) {
                char node[16];
                json_t *rec;
                int r;

                snprintf(node, sizeof(node), "cn%d", n);
                rec = json_pack("{s:s, s:s, s:i}", "kind", "op", "node", node, "state", cs->state[n]);
                r = journal_compact_add(c, rec);
                json_decref(rec);
                if (r < 0)
                        return r;
                if (cs->crash_after > 0 && n + 1 == cs->crash_after)
                        die();
        }
        return 0;
}

/* Fill DIR with UPDATES updates over NODES nodes; return the expected state. */
static void fill(const char *dir, int *expect) {
        struct journal *j = open_ok(dir);

        if (!j)
                return;
        for (int i = 0; i < UPDATES; i++) {
                char node[16];

                snprintf(node, sizeof(node), "cn%d", i % NODES);
                append_op(j, node, i);
                expect[i % NODES] = i;
        }
        journal_free(j);
}

static void check_state(const char *dir, const int *expect, uint64_t min_next_seq) {
        int state[NODES];
        _cleanup_free_ char *tmp = file_in(dir, JOURNAL_TMP_FILE), *err = NULL;
        struct journal *j = open_ok(dir);
        int r;

        if (!j)
                return;
        memset(state, 0xff, sizeof(state));
        r = journal_replay(j, state_cb, state, &err);
        CHECK_INT(r, 0);
        CHECK(memcmp(state, expect, sizeof(state)) == 0);
        CHECK(journal_next_seq(j) >= min_next_seq);
        CHECK(access(tmp, F_OK) < 0);
        journal_free(j);
}

static void test_compact(void) {
        _cleanup_dir_ char *dir = make_dir();
        _cleanup_free_ char *path = file_in(dir, JOURNAL_FILE), *err = NULL;
        int expect[NODES];
        struct compact_state cs = { .state = expect };
        struct journal_stats st;
        struct journal *j;
        json_t *all;

        fill(dir, expect);
        j = open_ok(dir);
        if (!j)
                return;
        CHECK_INT(journal_compact(j, write_state_cb, &cs, &err), 0);
        journal_get_stats(j, &st);
        CHECK_INT(st.records, NODES);
        CHECK_INT(st.compactions, 1);
        CHECK_INT(st.bytes, file_size(path));
        CHECK_INT(st.compacted_bytes, st.bytes);
        /* The marker takes seq 101, the records 102..111. */
        CHECK_INT(journal_next_seq(j), UPDATES + 1 + NODES + 1);
        all = replay_all(j);
        CHECK(all && json_array_size(all) == NODES && seq_of(json_array_get(all, 0)) == UPDATES + 2);
        json_decref(all);
        /* Appends go to the new file. */
        append_op(j, "cn3", 1000);
        expect[3] = 1000;
        journal_free(j);
        check_state(dir, expect, UPDATES + NODES + 3);
}

static int no_state_cb(struct journal_compaction *c, void *userdata) {
        return 0;
}

static int append_inside_cb(struct journal_compaction *c, void *userdata) {
        struct journal *j = userdata;
        json_t *rec = json_pack("{s:s}", "kind", "op");
        int r = journal_append(j, rec, NULL);

        json_decref(rec);
        return r == -EBUSY ? 0 : -EPROTO;
}

static int bad_record_cb(struct journal_compaction *c, void *userdata) {
        json_t *rec = json_string("not an object");

        (void) journal_compact_add(c, rec); /* ignoring the error must not help */
        json_decref(rec);
        return 0;
}

/* With no live state the marker alone carries the sequence on. */
static void test_compact_no_records(void) {
        _cleanup_dir_ char *dir = make_dir();
        struct journal *j;
        struct journal_stats st;

        fill(dir, (int[NODES]){});
        j = open_ok(dir);
        if (!j)
                return;
        CHECK_INT(journal_compact(j, no_state_cb, NULL, NULL), 0);
        journal_get_stats(j, &st);
        CHECK_INT(st.records, 0);
        journal_free(j);
        j = open_ok(dir);
        if (!j)
                return;
        journal_get_stats(j, &st);
        CHECK_INT(st.records, 0);
        CHECK_INT(journal_next_seq(j), UPDATES + 2);
        CHECK_INT(journal_compact(j, append_inside_cb, j, NULL), 0);
        journal_free(j);
}

/* A failing callback leaves the old journal as it was. */
static void test_compact_failure_keeps_old(void) {
        _cleanup_dir_ char *dir = make_dir();
        _cleanup_free_ char *path = file_in(dir, JOURNAL_FILE), *before = NULL, *after = NULL, *err = NULL, *err2 = NULL;
        int expect[NODES];
        struct compact_state cs = { .state = expect, .fail = true };
        struct journal *j;

        fill(dir, expect);
        before = read_file(path, NULL);
        j = open_ok(dir);
        if (!j)
                return;
        CHECK_INT(journal_compact(j, write_state_cb, &cs, &err), -EIO);
        CHECK(err && strstr(err, "compaction"));
        CHECK_INT(journal_compact(j, bad_record_cb, NULL, &err2), -EINVAL);
        append_op(j, "cn0", 500);
        expect[0] = 500;
        journal_free(j);
        after = read_file(path, NULL);
        CHECK(before && after && strncmp(before, after, strlen(before)) == 0);
        check_state(dir, expect, UPDATES + 2);
}

static enum journal_step crash_step;

static void crash_hook(enum journal_step s, void *userdata) {
        if (s == crash_step)
                die();
}

/* Kill a compaction at each step (a child process that dies there by
 * SIGKILL): every record's effect survives and seq never goes back. */
static void test_compact_crash_each_step(void) {
        for (int s = 0; s <= _JOURNAL_STEP_MAX; s++) {
                _cleanup_dir_ char *dir = make_dir();
                _cleanup_free_ char *tmp = file_in(dir, JOURNAL_TMP_FILE);
                int expect[NODES], status = -1;
                struct compact_state cs = { .state = expect };
                bool tmp_left;
                pid_t pid;

                /* s == _JOURNAL_STEP_MAX: crash in the callback, mid-state. */
                if (s == _JOURNAL_STEP_MAX)
                        cs.crash_after = NODES / 2;
                fill(dir, expect);
                fflush(stdout);
                pid = fork();
                if (pid == 0) {
                        struct journal *j = NULL;

                        if (journal_open(dir, &j, NULL) < 0)
                                _exit(2);
                        crash_step = (enum journal_step) s;
                        journal_set_step_hook(j, crash_hook, NULL);
                        journal_compact(j, write_state_cb, &cs, NULL);
                        _exit(3); /* did not crash */
                }
                CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
                if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL) {
                        TEST_FAIL("step %d: child status %d", s, status);
                        continue;
                }
                tmp_left = access(tmp, F_OK) == 0;
                if (s < JOURNAL_STEP_RENAMED || s == _JOURNAL_STEP_MAX)
                        CHECK(tmp_left);
                else
                        CHECK(!tmp_left);
                check_state(dir, expect, UPDATES + 1);

                /* And the journal goes on: append, compact, reopen. */
                struct journal *j = open_ok(dir);
                if (!j)
                        continue;
                uint64_t seq = journal_next_seq(j);
                append_op(j, "cn1", 7777);
                expect[1] = 7777;
                CHECK_INT(journal_compact(j, write_state_cb, &(struct compact_state){ .state = expect }, NULL), 0);
                CHECK(journal_next_seq(j) > seq);
                journal_free(j);
                check_state(dir, expect, seq + 1);
        }
}

/* ---- compaction while appends go on (journal_compact_begin/finish) ------ */

/* What journal/compactor.c does on its thread: the snapshot's state, replayed
 * and written as NODES records. */
struct async_part {
        struct journal_compaction *c;
        int r;
        int snap[NODES];
};

static void *async_part_run(void *userdata) {
        struct async_part *a = userdata;

        memset(a->snap, 0xff, sizeof(a->snap));
        a->r = journal_compaction_replay(a->c, state_cb, a->snap, NULL);
        for (int n = 0; a->r >= 0 && n < NODES; n++) {
                char node[16];
                json_t *rec;

                if (a->snap[n] < 0)
                        continue;
                snprintf(node, sizeof(node), "cn%d", n);
                rec = json_pack("{s:s, s:s, s:i}", "kind", "op", "node", node, "state", a->snap[n]);
                a->r = journal_compact_add(a->c, rec);
                json_decref(rec);
        }
        if (a->r >= 0)
                a->r = journal_compaction_write(a->c, NULL);
        return NULL;
}

/* Append COUNT updates from FIRST on, cycling over the nodes. */
static void append_updates(struct journal *j, int *expect, int first, int count) {
        for (int i = first; i < first + count; i++) {
                char node[16];

                snprintf(node, sizeof(node), "cn%d", i % NODES);
                if (append_op(j, node, i) < 0)
                        return;
                expect[i % NODES] = i;
        }
}

static void append_updates_expect(int *expect, int first, int count) {
        for (int i = first; i < first + count; i++)
                expect[i % NODES] = i;
}

/* Appends before, during (from another thread) and after the thread's part:
 * every one of them is in the new journal, after the snapshot's state, in
 * order; the snapshot's state is the state when the compaction began. */
static void test_compact_async_racing_appends(void) {
        _cleanup_dir_ char *dir = make_dir();
        _cleanup_free_ char *path = file_in(dir, JOURNAL_FILE), *tmp = file_in(dir, JOURNAL_TMP_FILE), *err = NULL;
        int expect[NODES], at_begin[NODES];
        struct async_part a = {};
        struct journal_stats st;
        struct journal *j;
        pthread_t t;
        json_t *all;
        uint64_t seq;

        fill(dir, expect);
        memcpy(at_begin, expect, sizeof(expect));
        j = open_ok(dir);
        if (!j)
                return;
        seq = journal_next_seq(j);
        CHECK_INT(journal_compact_begin(j, &a.c, &err), 0);
        if (!a.c) {
                journal_free(j);
                return;
        }
        /* Seqs for the marker and one record per record so far, set aside. */
        CHECK_INT(journal_next_seq(j), seq + UPDATES + 2);
        CHECK(access(tmp, F_OK) == 0);
        /* One compaction at a time. */
        struct journal_compaction *second = NULL;
        CHECK_INT(journal_compact_begin(j, &second, NULL), -EBUSY);
        CHECK_INT(journal_compact(j, write_state_cb, &(struct compact_state){ .state = expect }, NULL), -EBUSY);

        append_updates(j, expect, 1000, 5);
        CHECK_INT(pthread_create(&t, NULL, async_part_run, &a), 0);
        append_updates(j, expect, 2000, 50);
        CHECK_INT(pthread_join(t, NULL), 0);
        CHECK_INT(a.r, 0);
        CHECK(memcmp(a.snap, at_begin, sizeof(at_begin)) == 0);
        append_updates(j, expect, 3000, 5);

        CHECK_INT(journal_compact_finish(a.c, &err), 0);
        a.c = journal_compaction_free(a.c);
        CHECK(access(tmp, F_OK) < 0);
        journal_get_stats(j, &st);
        CHECK_INT(st.records, NODES + 60);
        CHECK_INT(st.bytes, file_size(path));
        CHECK_INT(st.compacted_bytes, st.bytes);
        CHECK_INT(st.compactions, 1);
        all = replay_all(j);
        CHECK(all && json_array_size(all) == NODES + 60);
        for (size_t i = 0; all && i < json_array_size(all); i++) {
                json_t *r = json_array_get(all, i);
                int v = (int) json_integer_value(json_object_get(r, "state"));

                if (i < NODES)
                        CHECK_INT(v, at_begin[i]);
                else
                        CHECK_INT(v, i < NODES + 5 ? 1000 + (int) (i - NODES) :
                                     i < NODES + 55 ? 2000 + (int) (i - NODES - 5) : 3000 + (int) (i - NODES - 55));
        }
        json_decref(all);
        /* Appends go to the new file, and go on after a reopen. */
        append_updates(j, expect, 4000, 3);
        seq = journal_next_seq(j);
        journal_free(j);
        check_state(dir, expect, seq);
}

static int fail_cb(json_t *record, void *userdata) {
        return -EIO;
}

/* A compaction abandoned, failed or unfinished leaves the old journal as
 * it was plus every append; the next one works. */
static void test_compact_async_abandoned(void) {
        _cleanup_dir_ char *dir = make_dir();
        _cleanup_free_ char *tmp = file_in(dir, JOURNAL_TMP_FILE), *err = NULL;
        int expect[NODES];
        struct async_part a = {};
        struct journal *j;
        uint64_t seq;

        fill(dir, expect);
        j = open_ok(dir);
        if (!j)
                return;

        /* Abandoned after the thread's part. */
        CHECK_INT(journal_compact_begin(j, &a.c, NULL), 0);
        append_updates(j, expect, 1000, 3);
        async_part_run(&a);
        CHECK_INT(a.r, 0);
        a.c = journal_compaction_free(a.c);
        CHECK(access(tmp, F_OK) < 0);
        append_updates(j, expect, 1100, 3);

        /* The thread's replay failed: finish refuses an unwritten compaction. */
        CHECK_INT(journal_compact_begin(j, &a.c, NULL), 0);
        CHECK_INT(journal_compaction_replay(a.c, fail_cb, NULL, NULL), -EIO);
        CHECK_INT(journal_compact_finish(a.c, &err), -EINVAL);
        a.c = journal_compaction_free(a.c);
        append_updates(j, expect, 1200, 3);

        seq = journal_next_seq(j);
        journal_free(j);
        check_state(dir, expect, seq);

        /* Then one that finishes. */
        j = open_ok(dir);
        if (!j)
                return;
        CHECK_INT(journal_compact_begin(j, &a.c, NULL), 0);
        async_part_run(&a);
        CHECK_INT(journal_compact_finish(a.c, NULL), 0);
        a.c = journal_compaction_free(a.c);
        journal_free(j);
        check_state(dir, expect, seq);
}

/* Kill the process at each step of a compaction with appends before the
 * thread's part and before the finish: what was acknowledged before the
 * crash replays, the temp file a crash leaves is removed at the next open,
 * and the journal goes on. */
static void test_compact_async_crash_each_step(void) {
        for (int s = 0; s < _JOURNAL_STEP_MAX; s++) {
                _cleanup_dir_ char *dir = make_dir();
                _cleanup_free_ char *tmp = file_in(dir, JOURNAL_TMP_FILE);
                int expect[NODES], status = -1;
                bool tmp_left;
                pid_t pid;

                fill(dir, expect);
                fflush(stdout);
                pid = fork();
                if (pid == 0) {
                        struct async_part a = {};
                        struct journal *j = NULL;
                        int scratch[NODES];

                        if (journal_open(dir, &j, NULL) < 0)
                                _exit(2);
                        crash_step = (enum journal_step) s;
                        journal_set_step_hook(j, crash_hook, NULL);
                        if (journal_compact_begin(j, &a.c, NULL) < 0)
                                _exit(4);
                        append_updates(j, scratch, 1000, 4);
                        async_part_run(&a);
                        append_updates(j, scratch, 2000, 4);
                        journal_compact_finish(a.c, NULL);
                        _exit(3); /* did not crash */
                }
                CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
                if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL) {
                        TEST_FAIL("step %d: child status %d", s, status);
                        continue;
                }
                /* What the child had appended when it died. */
                if (s > JOURNAL_STEP_TMP_CREATED)
                        append_updates_expect(expect, 1000, 4);
                if (s > JOURNAL_STEP_TMP_SYNCED)
                        append_updates_expect(expect, 2000, 4);
                tmp_left = access(tmp, F_OK) == 0;
                CHECK(tmp_left == (s < JOURNAL_STEP_RENAMED));
                check_state(dir, expect, UPDATES + 1);

                struct journal *j = open_ok(dir);
                struct async_part a = {};
                if (!j)
                        continue;
                uint64_t seq = journal_next_seq(j);
                append_updates(j, expect, 5000, 2);
                CHECK_INT(journal_compact_begin(j, &a.c, NULL), 0);
                async_part_run(&a);
                append_updates(j, expect, 6000, 2);
                CHECK_INT(journal_compact_finish(a.c, NULL), 0);
                a.c = journal_compaction_free(a.c);
                CHECK(journal_next_seq(j) > seq);
                journal_free(j);
                check_state(dir, expect, seq + 1);
        }
}

int main(void) {
        RUN(test_append_replay);
        RUN(test_url_redacted);
        RUN(test_append_many);
        RUN(test_creates_dir);
        RUN(test_visible_after_close);
        RUN(test_seq_continues_after_reopen);
        RUN(test_torn_tail_every_length);
        RUN(test_torn_tail_zeros);
        RUN(test_batch_torn_every_length);
        RUN(test_corrupt_middle_refused);
        RUN(test_invalid_records);
        RUN(test_large_records);
        RUN(test_lock_contention);
        RUN(test_failed_write_rolled_back);
        RUN(test_replay_stops);
        RUN(test_compact);
        RUN(test_compact_no_records);
        RUN(test_compact_failure_keeps_old);
        RUN(test_compact_crash_each_step);
        RUN(test_compact_async_racing_appends);
        RUN(test_compact_async_abandoned);
        RUN(test_compact_async_crash_each_step);
        return test_done();
}
