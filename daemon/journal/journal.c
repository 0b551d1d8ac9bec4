/* journal.c - append-only JSON-lines journal with fdatasync'd appends, torn-tail recovery and atomic compaction. */
#include "journal/journal.h"
#include "util/errmsg.h"
#include "journal/records.h"
#include "util/urlredact.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/param.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct journal {
        char *dir;
        char *path; /* DIR/JOURNAL_FILE, for messages */
        int dir_fd;
        int lock_fd;
        int fd; /* O_APPEND */

        uint64_t seq;
        uint64_t bytes;
        uint64_t records;
        uint64_t compacted_bytes;
        uint64_t compactions;
        uint64_t torn_bytes;

        bool broken;     /* a write may have reached the disk only in part */
        bool compacting; /* appends would go to the file being replaced */
        struct journal_compaction *running; /* journal_compact_begin's, until finished or freed */

        void (*step_hook)(enum journal_step step, void *userdata);
        void *step_userdata;
};

struct journal_compaction {
        struct journal *j;
        int fd;          /* the temp file */
        char *buf;
        size_t len, size;
        uint64_t seq;    /* the last seq given in the new file */
        uint64_t seq_limit; /* the last seq it may give (journal_compact_begin set aside up to it) */
        uint64_t records;
        uint64_t bytes;
        int error;

        /* The snapshot: the journal's first from_bytes bytes, then holding
         * from_records records (journal_compact_begin; for journal_compact
         * the whole file, and nothing is appended meanwhile). */
        int src_fd;      /* a duplicate of the journal's, for the thread */
        uint64_t from_bytes, from_records;
        bool written;    /* journal_compaction_write() succeeded */
};


static void step(struct journal *j, enum journal_step s) {
        if (j->step_hook)
                j->step_hook(s, j->step_userdata);
}

/* write() all of BUF: retries on EINTR and continues after short writes. */
static int write_all(int fd, const char *buf, size_t len) {
        while (len > 0) {
                ssize_t n = write(fd, buf, len);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (n == 0)
                        return -EIO;
                buf += n;
                len -= (size_t) n;
        }
        return 0;
}

static int fdatasync_retry(int fd) {
        while (fdatasync(fd) < 0)
                if (errno != EINTR)
                        return negative_errno();
        return 0;
}

static int fsync_retry(int fd) {
        while (fsync(fd) < 0)
                if (errno != EINTR)
                        return negative_errno();
        return 0;
}

static int ftruncate_retry(int fd, off_t len) {
        while (ftruncate(fd, len) < 0)
                if (errno != EINTR)
                        return negative_errno();
        return 0;
}

/* "2026-11-23T18:04:05.123Z" */
static void format_now(char buf[32]) {
        struct timespec ts;
        struct tm tm;

        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        strftime(buf, 32, "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(buf + strlen(buf), 32 - strlen(buf), ".%03ldZ", ts.tv_nsec / 1000000);
}

static bool is_own(json_t *record) {
        return record_kind_from_string(json_string_value(json_object_get(record, "kind"))) == RECORD_JOURNAL;
}

struct dump {
        char *buf;
        size_t len, size;
        bool too_long;
};

/* json_dump_callback sink; gives up past the record limit. */
static int dump_put(const char *buffer, size_t size, void *data) {
        struct dump *d = data;

        if (d->len + size > JOURNAL_RECORD_MAX) {
                d->too_long = true;
                return -1;
        }
        if (d->len + size + 2 > d->size) {
                size_t n = MAX(d->size * 2, d->len + size + 256);
                char *b = realloc(d->buf, n);

                if (!b)
                        return -1;
                d->buf = b;
                d->size = n;
        }
        memcpy(d->buf + d->len, buffer, size);
        d->len += size;
        return 0;
}

/* RECORD with seq and ts in front, as one line ending in '\n'. OWN: the
 * journal's own record, allowed to use kind "journal". */
static int format_record(json_t *record, uint64_t seq, bool own, bool more,
                         char **ret, size_t *ret_len, char **ret_error) {
        struct dump d = {};
        char head[96], ts[32];
        int k;

        if (!json_is_object(record))
                return errmsg(ret_error, -EINVAL, "journal record is not a JSON object");
        if (json_object_get(record, "seq") || json_object_get(record, "ts") || json_object_get(record, "more"))
                return errmsg(ret_error, -EINVAL, "journal record has its own \"seq\", \"ts\" or \"more\"");
        if (!own && is_own(record))
                return errmsg(ret_error, -EINVAL, "journal record kind \"%s\" is reserved", JOURNAL_KIND_OWN);

        /* "{"seq":N,"ts":"..."" then the record's own members: the record
         * is not copied or modified. */
        format_now(ts);
        k = snprintf(head, sizeof(head), "{\"seq\":%" PRIu64 ",\"ts\":\"%s\"%s", seq, ts,
                     more ? ",\"more\":true" : "");
        if (dump_put(head, (size_t) k, &d) < 0)
                return -ENOMEM; /* too_long cannot happen here */
        if (json_object_size(record) > 0) {
                size_t at = d.len;

                if (json_dump_callback(record, dump_put, &d, JSON_COMPACT | JSON_PRESERVE_ORDER) < 0) {
                        free(d.buf);
                        if (d.too_long)
                                return errmsg(ret_error, -E2BIG, "journal record is longer than %u bytes (the limit)",
                                            JOURNAL_RECORD_MAX);
                        return -ENOMEM;
                }
                d.buf[at] = ','; /* the record's '{' */
        } else if (dump_put("}", 1, &d) < 0) {
                free(d.buf);
                return -ENOMEM;
        }
        d.buf[d.len] = '\0'; /* dump_put keeps room */
        if (strstr(d.buf, "://")) {
                /* No URL's password or token is written to disk. Each
                 * redaction grows the text by at most 2 bytes per 2 bytes. */
                size_t size = 2 * d.len + 2;
                char *clean = malloc(size);
                if (!clean) {
                        free(d.buf);
                        return -ENOMEM;
                }
                d.len = urlredact(d.buf, clean, size);
                free(d.buf);
                d.buf = clean;
        }
        d.buf[d.len++] = '\n';
        *ret = d.buf;
        *ret_len = d.len;
        return 0;
}

/* Seqs stay exact integers for any JSON reader (2^53), and appends can never
 * run past what a reopen accepts. */
#define SEQ_MAX ((uint64_t) 1 << 53)

struct scan_result {
        uint64_t good_len;   /* bytes up to the end of the last complete line */
        uint64_t records;
        uint64_t last_seq;
        uint64_t torn_bytes; /* after the last '\n' */
};

static int check_line(const char *path, uint64_t line_no, const char *line, size_t len,
                      uint64_t *last_seq, json_t **ret, bool *ret_more, char **ret_error) {
        json_error_t e;
        json_t *v, *seq;

        v = json_loadb(line, len, JSON_REJECT_DUPLICATES, &e);
        if (!v)
                return errmsg(ret_error, -EBADMSG, "%s line %" PRIu64 ": corrupt record (%s at column %d)",
                            path, line_no, e.text, e.column);
        seq = json_object_get(v, "seq");
        if (!json_is_object(v) || !json_is_integer(seq) || json_integer_value(seq) <= 0) {
                json_decref(v);
                return errmsg(ret_error, -EBADMSG, "%s line %" PRIu64 ": not a journal record (an object with a \"seq\")",
                            path, line_no);
        }
        if ((uint64_t) json_integer_value(seq) >= SEQ_MAX) {
                json_decref(v);
                return errmsg(ret_error, -EBADMSG, "%s line %" PRIu64 ": seq out of range", path, line_no);
        }
        if ((uint64_t) json_integer_value(seq) <= *last_seq) {
                uint64_t s = (uint64_t) json_integer_value(seq);
                json_decref(v);
                return errmsg(ret_error, -EBADMSG, "%s line %" PRIu64 ": seq %" PRIu64 " after seq %" PRIu64,
                            path, line_no, s, *last_seq);
        }
        *last_seq = (uint64_t) json_integer_value(seq);
        /* The batch marker is the journal's business, not the reader's. */
        *ret_more = json_is_true(json_object_get(v, "more"));
        json_object_del(v, "more");
        *ret = v;
        return 0;
}

/* Read FD's first LIMIT bytes line by line, check every complete line, call
 * CB (if any) for each record that is not the journal's own. */
static int scan_fd(int fd, uint64_t limit, const char *path, journal_replay_fn cb, void *userdata,
                   struct scan_result *ret, char **ret_error) {
        _cleanup_free_ char *buf = NULL;
        size_t size = 1 << 16, start = 0, end = 0;
        uint64_t off = 0, line_no = 0;
        struct scan_result res = {}, before_batch = {};
        _cleanup_(json_decrefp) json_t *batch = NULL; /* records of a batch not yet whole */
        bool in_batch = false;
        int r;

        buf = malloc(size);
        if (!buf)
                return -ENOMEM;
        if (cb && !(batch = json_array()))
                return -ENOMEM;
        for (;;) {
                char *nl = memchr(buf + start, '\n', end - start);

                if (nl) {
                        size_t len = (size_t) (nl - (buf + start));
                        struct scan_result prev = res;
                        json_t *v = NULL;
                        bool more = false;

                        r = 0;
                        line_no++;
                        r = check_line(path, line_no, buf + start, len, &res.last_seq, &v, &more, ret_error);
                        if (r < 0)
                                return r;
                        if (more && !in_batch)
                                before_batch = prev;
                        in_batch = more;
                        if (!is_own(v)) {
                                res.records++;
                                /* A batch reaches CB only once it is whole: the
                                 * file may end inside it (journal_load). */
                                if (cb && json_array_append(batch, v) < 0)
                                        r = -ENOMEM;
                        }
                        json_decref(v);
                        if (r < 0)
                                return r;
                        if (cb && !more) {
                                size_t i;
                                json_t *b;

                                json_array_foreach(batch, i, b)
                                        if ((r = cb(b, userdata)) < 0)
                                                return r;
                                json_array_clear(batch);
                        }
                        res.good_len += len + 1;
                        start += len + 1;
                        continue;
                }

                if (end - start > JOURNAL_RECORD_MAX)
                        return errmsg(ret_error, -EBADMSG, "%s line %" PRIu64 ": longer than %u bytes",
                                    path, line_no + 1, JOURNAL_RECORD_MAX);
                if (start > 0) {
                        memmove(buf, buf + start, end - start);
                        end -= start;
                        start = 0;
                }
                if (end == size) {
                        char *b = realloc(buf, size * 2);
                        if (!b)
                                return -ENOMEM;
                        buf = b;
                        size *= 2;
                }
                if (off >= limit)
                        break;

                ssize_t n = pread(fd, buf + end, (size_t) MIN((uint64_t) (size - end), limit - off), (off_t) off);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        r = negative_errno();
                        return errmsg(ret_error, r, "%s: read: %s", path, strerror(-r));
                }
                if (n == 0)
                        break;
                off += (uint64_t) n;
                end += (size_t) n;
        }
        res.torn_bytes = end - start;
        if (in_batch) {
                /* The file ends inside a batch (journal_append_many): it was
                 * never acknowledged, none of it counts. */
                before_batch.torn_bytes = res.good_len - before_batch.good_len + res.torn_bytes;
                res = before_batch;
        }
        *ret = res;
        return 0;
}

struct journal *journal_free(struct journal *j) {
        if (!j)
                return NULL;
        if (j->fd >= 0)
                close(j->fd);
        if (j->lock_fd >= 0)
                close(j->lock_fd); /* releases the flock */
        if (j->dir_fd >= 0)
                close(j->dir_fd);
        free(j->dir);
        free(j->path);
        free(j);
        return NULL;
}

static int take_lock(struct journal *j, char **ret_error) {
        char pid[32] = "";
        ssize_t n;
        int r;

        j->lock_fd = openat(j->dir_fd, JOURNAL_LOCK_FILE, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (j->lock_fd < 0) {
                r = negative_errno();
                return errmsg(ret_error, r, "%s/%s: %s", j->dir, JOURNAL_LOCK_FILE, strerror(-r));
        }
        while (flock(j->lock_fd, LOCK_EX | LOCK_NB) < 0) {
                if (errno == EINTR)
                        continue;
                if (errno != EWOULDBLOCK) {
                        r = negative_errno();
                        return errmsg(ret_error, r, "%s/%s: flock: %s", j->dir, JOURNAL_LOCK_FILE, strerror(-r));
                }
                n = pread(j->lock_fd, pid, sizeof(pid) - 1, 0);
                pid[n > 0 ? n : 0] = 0;
                pid[strcspn(pid, "\n")] = 0;
                return errmsg(ret_error, -EBUSY, "state directory %s is in use by another elasticd (pid %s)",
                            j->dir, pid[0] ? pid : "unknown");
        }
        /* Who holds it, for the message above. */
        n = snprintf(pid, sizeof(pid), "%d\n", (int) getpid());
        if (ftruncate_retry(j->lock_fd, 0) < 0 || pwrite(j->lock_fd, pid, (size_t) n, 0) != n) {
                r = negative_errno();
                return errmsg(ret_error, r, "%s/%s: write: %s", j->dir, JOURNAL_LOCK_FILE, strerror(-r));
        }
        return 0;
}

int journal_lock(const char *dir, struct journal **ret, char **ret_error) {
        _cleanup_(journal_freep) struct journal *j = NULL;
        bool created = false;
        int r;

        if (!dir || !*dir)
                return errmsg(ret_error, -EINVAL, "no state directory");
        j = calloc(1, sizeof(*j));
        if (!j)
                return -ENOMEM;
        j->dir_fd = j->lock_fd = j->fd = -1;
        j->dir = strdup(dir);
        if (!j->dir || asprintf(&j->path, "%s/%s", dir, JOURNAL_FILE) < 0) {
                j->path = NULL;
                return -ENOMEM;
        }

        if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
                r = negative_errno();
                return errmsg(ret_error, r, "cannot create state directory %s: %s", dir, strerror(-r));
        }
        j->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (j->dir_fd < 0) {
                r = negative_errno();
                return errmsg(ret_error, r, "state directory %s: %s", dir, strerror(-r));
        }
        r = take_lock(j, ret_error);
        if (r < 0)
                return r;

        /* A compaction that did not reach its rename: the journal is intact. */
        if (unlinkat(j->dir_fd, JOURNAL_TMP_FILE, 0) < 0 && errno != ENOENT) {
                r = negative_errno();
                return errmsg(ret_error, r, "%s/%s: %s", dir, JOURNAL_TMP_FILE, strerror(-r));
        }

        j->fd = openat(j->dir_fd, JOURNAL_FILE, O_RDWR | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (j->fd >= 0)
                created = true;
        else if (errno == EEXIST)
                j->fd = openat(j->dir_fd, JOURNAL_FILE, O_RDWR | O_APPEND | O_CLOEXEC | O_NOFOLLOW);
        if (j->fd < 0) {
                r = negative_errno();
                return errmsg(ret_error, r, "%s: %s", j->path, strerror(-r));
        }
        if (created && (r = fsync_retry(j->dir_fd)) < 0)
                return errmsg(ret_error, r, "%s: fsync: %s", dir, strerror(-r));
        *ret = TAKE_PTR(j);
        return 0;
}

int journal_load(struct journal *j, journal_replay_fn cb, void *userdata, char **ret_error) {
        struct scan_result res;
        int r;

        r = scan_fd(j->fd, UINT64_MAX, j->path, cb, userdata, &res, ret_error);
        if (r < 0)
                return r;
        if (res.torn_bytes > 0) {
                /* A crash during an append: that record was never acknowledged. */
                r = ftruncate_retry(j->fd, (off_t) res.good_len);
                if (r >= 0)
                        r = fdatasync_retry(j->fd);
                if (r < 0)
                        return errmsg(ret_error, r, "%s: cutting off a torn last line: %s", j->path, strerror(-r));
        }
        j->seq = res.last_seq;
        j->bytes = j->compacted_bytes = res.good_len;
        j->records = res.records;
        j->torn_bytes = res.torn_bytes;
        return 0;
}

int journal_open(const char *dir, struct journal **ret, char **ret_error) {
        _cleanup_(journal_freep) struct journal *j = NULL;
        int r;

        r = journal_lock(dir, &j, ret_error);
        if (r < 0)
                return r;
        r = journal_load(j, NULL, NULL, ret_error);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(j);
        return 0;
}

uint64_t journal_next_seq(const struct journal *j) {
        return j->seq + 1;
}

int journal_append(struct journal *j, json_t *record, char **ret_error) {
        _cleanup_free_ char *line = NULL;
        size_t len;
        int r;

        if (j->broken)
                return errmsg(ret_error, -EIO, "%s: an earlier write failed, appends are refused until restart", j->path);
        if (j->compacting)
                return errmsg(ret_error, -EBUSY, "%s: append during compaction", j->path);
        if (j->seq + 1 >= SEQ_MAX)
                return errmsg(ret_error, -EOVERFLOW, "%s: seq exhausted", j->path);
        r = format_record(record, j->seq + 1, false, false, &line, &len, ret_error);
        if (r < 0)
                return r;

        r = write_all(j->fd, line, len);
        if (r < 0) {
                /* Leave no partial line for later appends to follow. */
                if (ftruncate_retry(j->fd, (off_t) j->bytes) < 0)
                        j->broken = true;
                return errmsg(ret_error, r, "%s: write: %s", j->path, strerror(-r));
        }
        r = fdatasync_retry(j->fd);
        if (r < 0) {
                /* The kernel may have dropped the dirty pages: nothing written
                 * since the last good sync can be trusted to be on disk. */
                j->broken = true;
                (void) ftruncate_retry(j->fd, (off_t) j->bytes);
                return errmsg(ret_error, r, "%s: fdatasync: %s", j->path, strerror(-r));
        }

        j->seq++;
        j->bytes += len;
        j->records++;
        return 0;
}

int journal_append_many(struct journal *j, json_t *records, char **ret_error) {
        _cleanup_free_ char *buf = NULL;
        size_t len = 0, size = 0, i;
        json_t *record;
        int r;

        if (!json_is_array(records))
                return errmsg(ret_error, -EINVAL, "journal records are not a JSON array");
        if (json_array_size(records) == 0)
                return 0;
        if (j->broken)
                return errmsg(ret_error, -EIO, "%s: an earlier write failed, appends are refused until restart", j->path);
        if (j->compacting)
                return errmsg(ret_error, -EBUSY, "%s: append during compaction", j->path);

        if (j->seq + json_array_size(records) >= SEQ_MAX)
                return errmsg(ret_error, -EOVERFLOW, "%s: seq exhausted", j->path);
        json_array_foreach(records, i, record) {
                _cleanup_free_ char *line = NULL;
                size_t n;

                /* All but the last say "more": a batch is whole or not at all. */
                r = format_record(record, j->seq + 1 + i, false, i + 1 < json_array_size(records),
                                  &line, &n, ret_error);
                if (r < 0)
                        return r;
                if (len + n > size) {
                        size_t want = MAX(size * 2, len + n);
                        char *b = realloc(buf, want);

                        if (!b)
                                return -ENOMEM;
                        buf = b;
                        size = want;
                }
                memcpy(buf + len, line, n);
                len += n;
        }

        /* One write and one fdatasync for all: a request and its operations. */
        r = write_all(j->fd, buf, len);
        if (r < 0) {
                if (ftruncate_retry(j->fd, (off_t) j->bytes) < 0)
                        j->broken = true;
                return errmsg(ret_error, r, "%s: write: %s", j->path, strerror(-r));
        }
        r = fdatasync_retry(j->fd);
        if (r < 0) {
                j->broken = true;
                (void) ftruncate_retry(j->fd, (off_t) j->bytes);
                return errmsg(ret_error, r, "%s: fdatasync: %s", j->path, strerror(-r));
        }

        j->seq += json_array_size(records);
        j->bytes += len;
        j->records += json_array_size(records);
        return 0;
}

int journal_replay(struct journal *j, journal_replay_fn cb, void *userdata, char **ret_error) {
        struct scan_result res;

        return scan_fd(j->fd, j->bytes, j->path, cb, userdata, &res, ret_error);
}

static int compaction_flush(struct journal_compaction *c) {
        int r = write_all(c->fd, c->buf, c->len);

        if (r < 0)
                return r;
        c->len = 0;
        return 0;
}

static int compaction_put(struct journal_compaction *c, json_t *record, bool own, char **ret_error) {
        _cleanup_free_ char *line = NULL;
        size_t len;
        int r;

        if (c->error < 0)
                return c->error;
        if (c->seq + 1 > c->seq_limit)
                return c->error = -EOVERFLOW;
        r = format_record(record, c->seq + 1, own, false, &line, &len, ret_error);
        if (r < 0)
                return r;
        if (c->len + len > c->size) {
                size_t size = MAX(c->size * 2, c->len + len);
                char *b;

                if (c->len > 0 && (r = compaction_flush(c)) < 0)
                        return c->error = r;
                if (len > c->size) {
                        b = realloc(c->buf, size);
                        if (!b)
                                return c->error = -ENOMEM;
                        c->buf = b;
                        c->size = size;
                }
        }
        memcpy(c->buf + c->len, line, len);
        c->len += len;
        c->seq++;
        c->bytes += len;
        if (!own)
                c->records++;
        return 0;
}

int journal_compact_add(struct journal_compaction *c, json_t *record) {
        int r = compaction_put(c, record, false, NULL);

        /* A record the callback could not add fails the whole compaction:
         * the new file must hold all of the live state. */
        if (r < 0)
                return c->error = r;
        if (c->records == 1) {
                r = compaction_flush(c);
                if (r < 0)
                        return c->error = r;
                step(c->j, JOURNAL_STEP_TMP_PARTIAL);
        }
        return 0;
}

struct journal_compaction *journal_compaction_free(struct journal_compaction *c) {
        if (!c)
                return NULL;
        if (c->fd >= 0) {
                /* Not renamed: the journal stays as it is. */
                close(c->fd);
                (void) unlinkat(c->j->dir_fd, JOURNAL_TMP_FILE, 0);
        }
        if (c->src_fd >= 0)
                close(c->src_fd);
        if (c->j->running == c)
                c->j->running = NULL;
        free(c->buf);
        free(c);
        return NULL;
}

/* The temp file, created afresh and holding the marker: how both kinds of
 * compaction start. SEQ_LIMIT: the last seq the new file may give. */
static int compaction_new(struct journal *j, uint64_t seq_limit, struct journal_compaction **ret, char **ret_error) {
        _cleanup_(journal_compaction_freep) struct journal_compaction *c = NULL;
        _cleanup_(json_decrefp) json_t *marker = NULL;
        int r;

        if (j->broken)
                return errmsg(ret_error, -EIO, "%s: an earlier write failed, compaction refused until restart", j->path);
        if (j->compacting || j->running)
                return errmsg(ret_error, -EBUSY, "%s: compaction already running", j->path);

        if (unlinkat(j->dir_fd, JOURNAL_TMP_FILE, 0) < 0 && errno != ENOENT) {
                r = negative_errno();
                return errmsg(ret_error, r, "%s/%s: %s", j->dir, JOURNAL_TMP_FILE, strerror(-r));
        }
        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        *c = (struct journal_compaction) {
                .j = j,
                .fd = -1,
                .src_fd = -1,
                .size = 1 << 20,
                .seq = j->seq,
                .seq_limit = seq_limit,
                .from_bytes = j->bytes,
                .from_records = j->records,
        };
        c->buf = malloc(c->size);
        if (!c->buf)
                return -ENOMEM;
        c->fd = openat(j->dir_fd, JOURNAL_TMP_FILE, O_RDWR | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (c->fd < 0) {
                r = negative_errno();
                return errmsg(ret_error, r, "%s/%s: %s", j->dir, JOURNAL_TMP_FILE, strerror(-r));
        }
        step(j, JOURNAL_STEP_TMP_CREATED);

        /* The marker carries the sequence on even when no record is live. */
        r = record_encode(&(struct record) {
                        .kind = RECORD_JOURNAL,
                        .journal = { .event = "compacted", .previous_bytes = j->bytes, .previous_records = j->records },
                }, &marker, ret_error);
        if (r >= 0)
                r = compaction_put(c, marker, true, ret_error);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(c);
        return 0;
}

/* Everything added, on disk. */
static int compaction_write(struct journal_compaction *c, char **ret_error) {
        struct journal *j = c->j;
        int r;

        if (c->error < 0)
                return errmsg(ret_error, c->error, "%s: compaction: %s", j->path, strerror(-c->error));
        r = compaction_flush(c);
        if (r < 0)
                return errmsg(ret_error, r, "%s/%s: write: %s", j->dir, JOURNAL_TMP_FILE, strerror(-r));
        step(j, JOURNAL_STEP_TMP_WRITTEN);
        r = fsync_retry(c->fd);
        if (r < 0)
                return errmsg(ret_error, r, "%s/%s: fsync: %s", j->dir, JOURNAL_TMP_FILE, strerror(-r));
        step(j, JOURNAL_STEP_TMP_SYNCED);
        c->written = true;
        return 0;
}

/* The records appended since the snapshot, copied byte for byte after the
 * live state and synced; then the rename, and the directory synced. Until
 * the rename the old journal holds every acknowledged record; from it the
 * new one does. */
static int compaction_commit(struct journal_compaction *c, char **ret_error) {
        struct journal *j = c->j;
        uint64_t off = c->from_bytes, tail;
        char buf[1 << 16];
        int r;

        if (!c->written)
                return errmsg(ret_error, -EINVAL, "%s: compaction not written", j->path);
        if (j->broken)
                return errmsg(ret_error, -EIO, "%s: an earlier write failed, compaction abandoned", j->path);
        tail = j->bytes - c->from_bytes;
        while (off < j->bytes) {
                ssize_t n = pread(j->fd, buf, (size_t) MIN((uint64_t) sizeof(buf), j->bytes - off), (off_t) off);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0) {
                        r = n < 0 ? negative_errno() : -EIO;
                        return errmsg(ret_error, r, "%s: read: %s", j->path, strerror(-r));
                }
                r = write_all(c->fd, buf, (size_t) n);
                if (r < 0)
                        return errmsg(ret_error, r, "%s/%s: write: %s", j->dir, JOURNAL_TMP_FILE, strerror(-r));
                off += (uint64_t) n;
        }
        if (tail > 0 && (r = fdatasync_retry(c->fd)) < 0)
                return errmsg(ret_error, r, "%s/%s: fdatasync: %s", j->dir, JOURNAL_TMP_FILE, strerror(-r));
        step(j, JOURNAL_STEP_TAIL_COPIED);
        if (renameat(j->dir_fd, JOURNAL_TMP_FILE, j->dir_fd, JOURNAL_FILE) < 0) {
                r = negative_errno();
                return errmsg(ret_error, r, "%s: rename: %s", j->path, strerror(-r));
        }
        step(j, JOURNAL_STEP_RENAMED);

        /* From here the new file is the journal. */
        close(j->fd);
        j->fd = TAKE_FD(c->fd);
        j->seq = MAX(j->seq, c->seq);
        j->records = c->records + (j->records - c->from_records);
        j->bytes = j->compacted_bytes = c->bytes + tail;
        j->compactions++;

        r = fsync_retry(j->dir_fd);
        if (r < 0) {
                /* The rename may not survive a crash; later appends would
                 * land in a file that could vanish. */
                j->broken = true;
                return errmsg(ret_error, r, "%s: fsync: %s", j->dir, strerror(-r));
        }
        step(j, JOURNAL_STEP_DIR_SYNCED);
        return 0;
}

int journal_compact(struct journal *j, journal_compact_fn cb, void *userdata, char **ret_error) {
        _cleanup_(journal_compaction_freep) struct journal_compaction *c = NULL;
        int r;

        r = compaction_new(j, SEQ_MAX - 1, &c, ret_error);
        if (r < 0)
                return r;
        j->compacting = true;
        r = cb(c, userdata);
        j->compacting = false;
        if (r >= 0 && c->error < 0)
                r = c->error;
        if (r < 0)
                return errmsg(ret_error, r, "%s: compaction: %s", j->path, strerror(-r));
        r = compaction_write(c, ret_error);
        if (r < 0)
                return r;
        return compaction_commit(c, ret_error);
}

int journal_compact_begin(struct journal *j, struct journal_compaction **ret, char **ret_error) {
        _cleanup_(journal_compaction_freep) struct journal_compaction *c = NULL;
        /* Every live record comes from at least one record before the
         * snapshot, but the id counter's; and the marker. */
        uint64_t reserve = j->records + 2;
        int r;

        if (j->seq + reserve >= SEQ_MAX)
                return errmsg(ret_error, -EOVERFLOW, "%s: seq exhausted", j->path);
        r = compaction_new(j, j->seq + reserve, &c, ret_error);
        if (r < 0)
                return r;
        c->src_fd = fcntl(j->fd, F_DUPFD_CLOEXEC, 3);
        if (c->src_fd < 0) {
                r = negative_errno();
                return errmsg(ret_error, r, "%s: %s", j->path, strerror(-r));
        }
        /* Appends meanwhile take seqs after the new file's: they are copied
         * after it as they are. */
        j->seq += reserve;
        j->running = c;
        *ret = TAKE_PTR(c);
        return 0;
}

int journal_compaction_replay(struct journal_compaction *c, journal_replay_fn cb, void *userdata, char **ret_error) {
        struct scan_result res;

        return scan_fd(c->src_fd, c->from_bytes, c->j->path, cb, userdata, &res, ret_error);
}

int journal_compaction_write(struct journal_compaction *c, char **ret_error) {
        return compaction_write(c, ret_error);
}

int journal_compact_finish(struct journal_compaction *c, char **ret_error) {
        if (c->j->running != c)
                return errmsg(ret_error, -EINVAL, "%s: not the running compaction", c->j->path);
        return compaction_commit(c, ret_error);
}

void journal_get_stats(const struct journal *j, struct journal_stats *ret) {
        *ret = (struct journal_stats) {
                .bytes = j->bytes,
                .records = j->records,
                .last_seq = j->seq,
                .compacted_bytes = j->compacted_bytes,
                .compactions = j->compactions,
                .torn_bytes = j->torn_bytes,
        };
}

void journal_set_step_hook(struct journal *j, void (*hook)(enum journal_step step, void *userdata), void *userdata) {
        j->step_hook = hook;
        j->step_userdata = userdata;
}
