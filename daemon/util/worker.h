/* worker.h - a small thread pool for blocking calls (libslurm RPCs, SSH
 * sessions) that reports completions back on the sd-event loop. */
#pragma once

#include <stdbool.h>
#include <systemd/sd-event.h>

struct worker_pool;

/* Runs on a worker thread. Must not touch loop-owned state. */
typedef void (*worker_fn)(void *userdata);
/* Runs on the event loop after fn returned, or with cancelled=true if the
 * pool was freed before fn could start. Called exactly once per job. */
typedef void (*worker_done_fn)(void *userdata, bool cancelled);

/* n_threads >= 1: at most that many threads, each started when a job finds
 * no idle one (none before the first job); max_queued bounds jobs waiting
 * for a thread. */
int worker_pool_new(sd_event *event, const char *name, unsigned n_threads, unsigned max_queued,
                    struct worker_pool **ret);

/* Queue a job. -EBUSY when max_queued jobs already wait, -ESHUTDOWN after
 * worker_pool_shutdown(). */
int worker_pool_submit(struct worker_pool *p, worker_fn fn, worker_done_fn done, void *userdata);

/* Jobs queued or running, and jobs finished whose done callback has not run yet. */
unsigned worker_pool_pending(const struct worker_pool *p);

/* Stop taking jobs, wait for running ones, call every outstanding done
 * callback (cancelled=true for jobs that never started), join the threads
 * and free. Accepts NULL; returns NULL. */
struct worker_pool *worker_pool_free(struct worker_pool *p);
