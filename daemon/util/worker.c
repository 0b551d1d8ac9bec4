/* worker.c - thread pool whose completions come back through an eventfd
 * watched by sd-event, so callers never block the loop. Threads start when
 * jobs need them, up to the pool's size: a pool that is never used (SSH
 * pushes while nothing boots) costs no thread. */
#include "util/worker.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "util/macro.h"

struct worker_job {
        struct worker_job *next;
        worker_fn fn;
        worker_done_fn done;
        void *userdata;
};

/* A FIFO of jobs. */
struct job_queue {
        struct worker_job *head, *tail;
        unsigned n;
};

struct worker_pool {
        char *name;
        sd_event_source *source;
        int efd;
        pthread_mutex_t lock;
        pthread_cond_t wake;
        struct job_queue queued;   /* waiting for a thread */
        struct job_queue finished; /* fn ran, done not yet called */
        unsigned running;
        unsigned max_queued;
        bool stopping;
        pthread_t *threads;
        unsigned n_threads;        /* started */
        unsigned max_threads;
        unsigned idle;             /* started threads waiting for a job */
};

static void queue_push(struct job_queue *q, struct worker_job *j) {
        j->next = NULL;
        if (q->tail)
                q->tail->next = j;
        else
                q->head = j;
        q->tail = j;
        q->n++;
}

static struct worker_job *queue_pop(struct job_queue *q) {
        struct worker_job *j = q->head;

        if (!j)
                return NULL;
        q->head = j->next;
        if (!q->head)
                q->tail = NULL;
        q->n--;
        return j;
}

static void *worker_main(void *arg) {
        struct worker_pool *p = arg;
        uint64_t one = 1;

        pthread_mutex_lock(&p->lock);
        for (;;) {
                struct worker_job *j;

                while (!p->stopping && !p->queued.head) {
                        p->idle++;
                        pthread_cond_wait(&p->wake, &p->lock);
                        p->idle--;
                }
                if (p->stopping)
                        break;
                j = queue_pop(&p->queued);
                p->running++;
                pthread_mutex_unlock(&p->lock);

                j->fn(j->userdata);

                pthread_mutex_lock(&p->lock);
                p->running--;
                queue_push(&p->finished, j);
                /* An eventfd write cannot block while the counter is far from its max. */
                if (write(p->efd, &one, sizeof(one)) < 0) {
                        /* Nothing sane to do: the loop still drains on the next wakeup. */
                }
        }
        pthread_mutex_unlock(&p->lock);
        return NULL;
}

/* Call the done callbacks of every finished job, on the loop. */
static void pool_dispatch(struct worker_pool *p) {
        for (;;) {
                struct worker_job *j;

                pthread_mutex_lock(&p->lock);
                j = queue_pop(&p->finished);
                pthread_mutex_unlock(&p->lock);
                if (!j)
                        return;
                if (j->done)
                        j->done(j->userdata, false);
                free(j);
        }
}

static int on_eventfd(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct worker_pool *p = userdata;
        uint64_t n;

        if (read(fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
                return negative_errno();
        pool_dispatch(p);
        return 0;
}

int worker_pool_new(sd_event *event, const char *name, unsigned n_threads, unsigned max_queued,
                    struct worker_pool **ret) {
        struct worker_pool *p;
        int r;

        if (!event || n_threads == 0 || !ret)
                return -EINVAL;

        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        p->efd = -1;
        pthread_mutex_init(&p->lock, NULL);
        pthread_cond_init(&p->wake, NULL);
        p->max_queued = max_queued;
        p->max_threads = n_threads;
        p->name = strdup(name ? name : "worker");
        p->threads = calloc(n_threads, sizeof(pthread_t));
        if (!p->name || !p->threads) {
                r = -ENOMEM;
                goto fail;
        }

        p->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (p->efd < 0) {
                r = negative_errno();
                goto fail;
        }
        r = sd_event_add_io(event, &p->source, p->efd, EPOLLIN, on_eventfd, p);
        if (r < 0)
                goto fail;
        (void) sd_event_source_set_description(p->source, p->name);

        *ret = p;
        return 0;
fail:
        worker_pool_free(p);
        return r;
}

int worker_pool_submit(struct worker_pool *p, worker_fn fn, worker_done_fn done, void *userdata) {
        struct worker_job *j;

        if (!p || !fn)
                return -EINVAL;

        pthread_mutex_lock(&p->lock);
        if (p->stopping) {
                pthread_mutex_unlock(&p->lock);
                return -ESHUTDOWN;
        }
        if (p->queued.n >= p->max_queued) {
                pthread_mutex_unlock(&p->lock);
                return -EBUSY;
        }
        j = calloc(1, sizeof(*j));
        if (!j) {
                pthread_mutex_unlock(&p->lock);
                return -ENOMEM;
        }
        j->fn = fn;
        j->done = done;
        j->userdata = userdata;
        queue_push(&p->queued, j);
        /* More jobs waiting than threads waiting for them: one more thread,
         * while the pool has room. A thread that cannot start leaves the job
         * to the others, or refuses it when there are none. */
        if (p->queued.n > p->idle && p->n_threads < p->max_threads) {
                int r = -pthread_create(&p->threads[p->n_threads], NULL, worker_main, p);

                if (r == 0)
                        p->n_threads++;
                else if (p->n_threads == 0) {
                        /* The job just queued is the only one: nobody took it. */
                        free(queue_pop(&p->queued));
                        pthread_mutex_unlock(&p->lock);
                        return r;
                }
        }
        pthread_cond_signal(&p->wake);
        pthread_mutex_unlock(&p->lock);
        return 0;
}

unsigned worker_pool_pending(const struct worker_pool *p) {
        struct worker_pool *mp = (struct worker_pool *) p;
        unsigned n;

        if (!p)
                return 0;
        pthread_mutex_lock(&mp->lock);
        n = p->queued.n + p->running + p->finished.n;
        pthread_mutex_unlock(&mp->lock);
        return n;
}

struct worker_pool *worker_pool_free(struct worker_pool *p) {
        struct worker_job *j;

        if (!p)
                return NULL;

        pthread_mutex_lock(&p->lock);
        p->stopping = true;
        pthread_cond_broadcast(&p->wake);
        pthread_mutex_unlock(&p->lock);
        /* Running jobs finish; threads then see stopping and exit. */
        for (unsigned i = 0; i < p->n_threads; i++)
                pthread_join(p->threads[i], NULL);

        pool_dispatch(p);
        while ((j = queue_pop(&p->queued))) {
                if (j->done)
                        j->done(j->userdata, true);
                free(j);
        }

        sd_event_source_disable_unref(p->source);
        if (p->efd >= 0)
                close(p->efd);
        pthread_cond_destroy(&p->wake);
        pthread_mutex_destroy(&p->lock);
        free(p->threads);
        free(p->name);
        free(p);
        return NULL;
}
