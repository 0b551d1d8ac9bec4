/* compactor.h - journal compaction while elasticd runs: the live state rebuilt and written on a thread, the loop only renames. */
#pragma once

/*
 * The loop keeps answering and appending while the journal is compacted:
 * compactor_start() marks the journal's end as the snapshot
 * (journal_compact_begin), a worker thread replays the snapshot into a
 * state of its own, writes that state's live records (state_live_records)
 * to the temp file and fsyncs it; back on the loop, what was appended
 * meanwhile is copied after them and the file renamed over the journal
 * (journal_compact_finish: one append's cost). The thread shares nothing
 * with the loop: not the daemon's state, not a JSON object. The new journal
 * replays to what the old one replays to, by construction: its live part
 * is the old one's replay, its tail the old one's bytes.
 */

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "journal/journal.h"
#include "util/macro.h"

struct compactor;

struct compactor_result {
        uint64_t bytes_before;  /* the journal at the snapshot */
        uint64_t bytes_after;   /* the new journal, tail included */
        uint64_t live_records;  /* written for the snapshot */
        uint64_t skipped;       /* records of the snapshot state_apply refused (as start-up skips them) */
        uint64_t tail_bytes;    /* appended during the compaction, copied after */
        uint64_t wall_usec;     /* start to renamed */
        uint64_t thread_usec;   /* the thread's part (replay, write, fsync) */
        uint64_t loop_usec;     /* the loop's part: begin plus finish */
};

/* R: 0 when the new journal is in place, else negative with ERROR (NULL if
 * none); the old journal then goes on. RESULT is valid for the call. */
typedef void (*compactor_done_fn)(int r, const char *error, const struct compactor_result *result, void *userdata);

/* J must outlive the compactor. */
int compactor_new(sd_event *event, struct journal *j, struct compactor **ret);
/* Stops a compaction's thread (at its next record) and abandons the
 * compaction (the old journal stays, DONE is not called). Accepts NULL,
 * returns NULL. */
struct compactor *compactor_free(struct compactor *k);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct compactor *, compactor_free);

/* Start a compaction; DONE is called on the loop when it ended. -EBUSY
 * while one runs; other errors (with *ret_error) from journal_compact_begin. */
int compactor_start(struct compactor *k, compactor_done_fn done, void *userdata, char **ret_error);
bool compactor_running(const struct compactor *k);
