/* journal.h - the durable journal: an append-only file of JSON records in the state directory. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "util/macro.h"

/* Files in the state directory. */
#define JOURNAL_FILE "journal.jsonl"
#define JOURNAL_TMP_FILE "journal.jsonl.tmp" /* a compaction in progress */
#define JOURNAL_LOCK_FILE "lock"

/* Largest record, as one line of JSON. */
#define JOURNAL_RECORD_MAX (16u << 20)

/* Records of kind "journal" are the journal's own (compaction markers): they
 * are not passed to replay callbacks and not counted as records. */
#define JOURNAL_KIND_OWN "journal"

struct journal;

/* A record, borrowed for the call; a negative return stops and is returned. */
typedef int (*journal_replay_fn)(json_t *record, void *userdata);

struct journal_stats {
        uint64_t bytes;           /* size of the journal file */
        uint64_t records;         /* records in it (the journal's own excluded) */
        uint64_t last_seq;        /* seq of the last record written, 0 if none ever */
        uint64_t compacted_bytes; /* size right after the last compaction (or open) */
        uint64_t compactions;     /* since open */
        uint64_t torn_bytes;      /* unfinished last write cut off at open (a crash mid-append) */
};

/* Open (creating DIR 0700 and the journal as needed) and lock DIR's journal.
 * Takes an exclusive flock on DIR/lock: -EBUSY if another process holds it.
 * Removes what an interrupted compaction left behind, cuts off a torn last
 * line or an unfinished journal_append_many batch (counted in torn_bytes),
 * and checks every record: a bad complete line, anywhere, fails with
 * -EBADMSG naming file and line, and the file is left as it was. Errors come with a message in
 * *ret_error (malloc'd, caller frees) when ret_error is not NULL. */
int journal_open(const char *dir, struct journal **ret, char **ret_error);

/* journal_open in two halves, so that the slow one may run on a thread
 * while the daemon already listens: journal_lock() creates DIR, takes the
 * lock (-EBUSY as above) and removes what an interrupted compaction left;
 * journal_load() reads and checks every record as journal_open does and
 * calls CB (if not NULL) for each, a journal_append_many batch only once it
 * is whole: open and replay in one pass. Until journal_load() returned 0,
 * call nothing else but journal_free(). */
int journal_lock(const char *dir, struct journal **ret, char **ret_error);
int journal_load(struct journal *j, journal_replay_fn cb, void *userdata, char **ret_error);

/* Close and unlock; accepts NULL, returns NULL. */
struct journal *journal_free(struct journal *j);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct journal *, journal_free);

/* Append RECORD (a JSON object; not modified) as one line, with "seq" (one
 * more than the last) and "ts" (UTC time, ISO 8601) in front of its keys, and
 * fdatasync() it: when this returns 0 the record survives a crash. On error
 * nothing of the record remains in the file and seq is not used up; after a
 * failed fdatasync() the journal refuses further appends (-EIO): durability
 * can no longer be promised. -EINVAL: not an object or uses "seq"/"ts"/"more"
 * (the journal's keys) or kind "journal"; -E2BIG: longer than JOURNAL_RECORD_MAX. */
int journal_append(struct journal *j, json_t *record, char **ret_error);

/* Append every record of RECORDS (a JSON array of objects) like
 * journal_append, as consecutive lines with one write() and one fdatasync():
 * a request and its per-node operations cost one disk sync. All or nothing:
 * on error none of them remains in the file, and after a crash during the
 * write journal_open cuts off every line of the unfinished batch (all but
 * the last line carry "more":true; replay strips it). */
int journal_append_many(struct journal *j, json_t *records, char **ret_error);

/* The seq journal_append will give the next record. */
uint64_t journal_next_seq(const struct journal *j);

/* Call CB for every record in order. CB borrows RECORD; a negative return
 * stops the replay and is returned. */
int journal_replay(struct journal *j, journal_replay_fn cb, void *userdata, char **ret_error);

/* Rewrite the journal as the live state only. CB writes that state with
 * journal_compact_add(); the records get fresh seqs, continuing the sequence.
 * The new file is written beside the old one, fsync'd, renamed over it and
 * the directory fsync'd: a crash at any point leaves either the old journal
 * or the new one, complete. If CB fails (negative), or a record it adds is
 * refused (even if CB ignores that), the old journal stays. Synchronous:
 * about 0.5-1.5 s for 100k records on the test VM; appends meanwhile (from
 * CB) get -EBUSY. For start-up, before anything else uses the journal. */
struct journal_compaction;
typedef int (*journal_compact_fn)(struct journal_compaction *c, void *userdata);
int journal_compact(struct journal *j, journal_compact_fn cb, void *userdata, char **ret_error);
int journal_compact_add(struct journal_compaction *c, json_t *record);

/* Compaction while appends go on (journal/compactor.c drives it):
 *
 * journal_compact_begin(), where appends are made: the journal as it ends
 * now is the snapshot. Creates the temp file and sets seqs aside for the
 * records that will replace the snapshot (one per record in it, plus two),
 * so that appends from now on take seqs after them.
 *
 * On any one thread: journal_compaction_replay() calls CB for each record
 * of the snapshot (as journal_replay; the snapshot's bytes never change),
 * journal_compact_add() writes the live state they leave,
 * journal_compaction_write() writes and fsyncs the temp file. The thread
 * touches nothing but C; the journal goes on taking appends meanwhile.
 *
 * journal_compact_finish(), where appends are made again: copies what was
 * appended since the snapshot, byte for byte, after the live state,
 * fdatasyncs it, renames the temp file over the journal and fsyncs the
 * directory. Its cost is one append's (the bulk was on the thread).
 *
 * A crash at any point leaves the old journal (the temp file is removed by
 * the next open) or the new one, each holding every acknowledged record.
 * On error, or when abandoned (journal_compaction_free before finishing),
 * the old journal stays and goes on; seqs set aside stay unused. One
 * compaction at a time (-EBUSY); free it before the journal. */
int journal_compact_begin(struct journal *j, struct journal_compaction **ret, char **ret_error);
int journal_compaction_replay(struct journal_compaction *c, journal_replay_fn cb, void *userdata, char **ret_error);
int journal_compaction_write(struct journal_compaction *c, char **ret_error);
int journal_compact_finish(struct journal_compaction *c, char **ret_error);
/* Accepts NULL, returns NULL. After journal_compact_finish() succeeded it
 * only frees; before, it abandons the compaction. */
struct journal_compaction *journal_compaction_free(struct journal_compaction *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct journal_compaction *, journal_compaction_free);

void journal_get_stats(const struct journal *j, struct journal_stats *ret);

/* For tests: called at each step of a compaction so a test can simulate a
 * crash there (SIGKILL in a forked child). */
enum journal_step {
        JOURNAL_STEP_TMP_CREATED,
        JOURNAL_STEP_TMP_PARTIAL,  /* the marker and part of the records written */
        JOURNAL_STEP_TMP_WRITTEN,
        JOURNAL_STEP_TMP_SYNCED,
        JOURNAL_STEP_TAIL_COPIED,  /* what was appended since the snapshot, copied and synced */
        JOURNAL_STEP_RENAMED,
        JOURNAL_STEP_DIR_SYNCED,
        _JOURNAL_STEP_MAX,
};
void journal_set_step_hook(struct journal *j, void (*hook)(enum journal_step step, void *userdata), void *userdata);
