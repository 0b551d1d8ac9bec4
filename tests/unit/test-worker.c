/* test-worker.c - the pool runs jobs off the loop and reports back on it. */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include <systemd/sd-event.h>

#include "test.h"
#include "util/worker.h"

struct job {
        pthread_t loop_thread;
        pthread_t ran_on;
        int ran;
        int done;
        int cancelled;
        int *n_done;
        sd_event *event;
        int exit_at;
        useconds_t sleep_us;
};

static void job_fn(void *userdata) {
        struct job *j = userdata;

        if (j->sleep_us)
                usleep(j->sleep_us);
        j->ran_on = pthread_self();
        j->ran = 1;
}

static void job_done(void *userdata, bool cancelled) {
        struct job *j = userdata;

        /* Completions must come back on the loop's thread. */
        CHECK(pthread_equal(pthread_self(), j->loop_thread));
        j->done++;
        j->cancelled = cancelled;
        (*j->n_done)++;
        if (j->event && *j->n_done == j->exit_at)
                sd_event_exit(j->event, 0);
}

static void test_runs_all_jobs(void) {
        sd_event *e = NULL;
        struct worker_pool *p = NULL;
        struct job jobs[100] = { 0 };
        int n_done = 0;

        CHECK_INT(sd_event_new(&e), 0);
        CHECK_INT(worker_pool_new(e, "test", 4, 1000, &p), 0);
        for (int i = 0; i < 100; i++) {
                jobs[i] = (struct job){ .loop_thread = pthread_self(), .n_done = &n_done,
                                        .event = e, .exit_at = 100 };
                CHECK_INT(worker_pool_submit(p, job_fn, job_done, &jobs[i]), 0);
        }
        CHECK_INT(sd_event_loop(e), 0);
        CHECK_INT(n_done, 100);
        for (int i = 0; i < 100; i++) {
                CHECK_INT(jobs[i].done, 1);
                CHECK_INT(jobs[i].cancelled, 0);
                CHECK(!pthread_equal(jobs[i].ran_on, pthread_self()));
        }
        CHECK_INT(worker_pool_pending(p), 0);
        worker_pool_free(p);
        sd_event_unref(e);
}

static void test_queue_limit(void) {
        sd_event *e = NULL;
        struct worker_pool *p = NULL;
        struct job slow = { .loop_thread = pthread_self(), .sleep_us = 200000 };
        struct job q[2] = { 0 };
        int n_done = 0;

        slow.n_done = &n_done;
        CHECK_INT(sd_event_new(&e), 0);
        CHECK_INT(worker_pool_new(e, "test", 1, 2, &p), 0);
        CHECK_INT(worker_pool_submit(p, job_fn, job_done, &slow), 0);
        usleep(50000); /* the thread picks up the slow job, the queue is empty again */
        for (int i = 0; i < 2; i++) {
                q[i] = (struct job){ .loop_thread = pthread_self(), .n_done = &n_done };
                CHECK_INT(worker_pool_submit(p, job_fn, job_done, &q[i]), 0);
        }
        CHECK_INT(worker_pool_submit(p, job_fn, job_done, &q[0]), -EBUSY);
        CHECK_INT(worker_pool_pending(p), 3);

        /* Freeing finishes the running job and cancels the queued ones. */
        worker_pool_free(p);
        CHECK_INT(slow.done, 1);
        CHECK_INT(slow.cancelled, 0);
        for (int i = 0; i < 2; i++) {
                CHECK_INT(q[i].done, 1);
                CHECK_INT(q[i].cancelled, 1);
                CHECK_INT(q[i].ran, 0);
        }
        CHECK_INT(n_done, 3);
        sd_event_unref(e);
}

static unsigned n_threads(void) {
        unsigned n = 0;
        DIR *d = opendir("/proc/self/task");
        struct dirent *de;

        while (d && (de = readdir(d)))
                n += de->d_name[0] != '.';
        if (d)
                closedir(d);
        return n;
}

/* Threads start when jobs need them: none for an unused pool, one for jobs
 * one after another, at most the pool's size for many at once. */
static void test_lazy_threads(void) {
        sd_event *e = NULL;
        struct worker_pool *p = NULL;
        struct job jobs[20] = { 0 };
        unsigned base = n_threads();
        int n_done = 0;

        CHECK_INT(sd_event_new(&e), 0);
        CHECK_INT(worker_pool_new(e, "lazy", 4, 100, &p), 0);
        CHECK_INT(n_threads(), base);
        for (int i = 0; i < 3; i++) {
                jobs[i] = (struct job){ .loop_thread = pthread_self(), .n_done = &n_done };
                CHECK_INT(worker_pool_submit(p, job_fn, job_done, &jobs[i]), 0);
                while (n_done < i + 1 && sd_event_run(e, 1000000) >= 0)
                        ;
                usleep(20000);      /* back to waiting for the next */
        }
        CHECK_INT(n_threads(), base + 1);
        for (int i = 3; i < 20; i++) {
                jobs[i] = (struct job){ .loop_thread = pthread_self(), .n_done = &n_done, .sleep_us = 20000 };
                CHECK_INT(worker_pool_submit(p, job_fn, job_done, &jobs[i]), 0);
        }
        CHECK(n_threads() > base + 1 && n_threads() <= base + 4);
        while (n_done < 20 && sd_event_run(e, 1000000) >= 0)
                ;
        CHECK_INT(n_done, 20);
        worker_pool_free(p);
        CHECK_INT(n_threads(), base);
        sd_event_unref(e);
}

static void test_bad_arguments(void) {
        sd_event *e = NULL;
        struct worker_pool *p = NULL;

        CHECK_INT(sd_event_new(&e), 0);
        CHECK_INT(worker_pool_new(e, "x", 0, 1, &p), -EINVAL);
        CHECK(p == NULL);
        CHECK_INT(worker_pool_submit(NULL, job_fn, NULL, NULL), -EINVAL);
        CHECK(worker_pool_free(NULL) == NULL);
        sd_event_unref(e);
}

int main(void) {
        RUN(test_runs_all_jobs);
        RUN(test_queue_limit);
        RUN(test_lazy_threads);
        RUN(test_bad_arguments);
        return test_done();
}
