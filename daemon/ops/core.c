/* core.c - the table of node operations: starting them from the state,
 * the common advance, journalling each step (group commit), calls through
 * the ports, timers and the shared load of Slurm's nodes. */
#include "ops/op.h"

#include <errno.h>
#include <search.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "journal/records.h"
#include "util/strv.h"

#define DEFAULT_POLL_USEC (2 * USEC_PER_SEC)
#define DEFAULT_RETRY_USEC (5 * USEC_PER_SEC)
#define DEFAULT_ACCURACY_USEC (100 * 1000)
/* Polls back off up to this. */
#define MAX_POLL_USEC (30 * USEC_PER_SEC)

static const char *const step_names[_STEP_MAX] = {
        [STEP_PENDING] = "pending",
        [STEP_PREPARING] = "preparing",
        [STEP_CREATING] = "creating",
        [STEP_BUILDING] = "building",
        [STEP_ADDRESSING] = "addressing",
        [STEP_CONFIGURING] = "configuring",
        [STEP_REGISTERING] = "registering",
        [STEP_DELETING] = "deleting",
        [STEP_CONFIRMING] = "confirming",
        [STEP_CLEARING] = "clearing",
        [STEP_REBOOT_PREPARING] = "reboot_preparing",
        [STEP_REBOOTING] = "rebooting",
        [STEP_REBUILDING] = "rebuilding",
        [STEP_CLEANUP] = "cleanup",
        [STEP_CLEANUP_CONFIRMING] = "cleanup_confirming",
        [STEP_MARKING] = "marking",
};

const char *step_to_string(enum step s) {
        return (unsigned) s < _STEP_MAX ? step_names[s] : "?";
}

int step_from_string(const char *s) {
        for (unsigned i = 0; s && i < _STEP_MAX; i++)
                if (strcmp(s, step_names[i]) == 0)
                        return (int) i;
        return -EINVAL;
}

/* Each kind: its first step and its transition function. The failure path
 * (cleanup, cleanup_confirming, marking) is teardown's for every kind. */
static const struct op_kind {
        enum step first;         /* also where "running" without a step resumes */
        void (*advance)(struct lc_op *o);
} kinds[_STATE_OP_KIND_MAX] = {
        [STATE_OP_RESUME] = { STEP_PREPARING, resume_advance },
        [STATE_OP_SUSPEND] = { STEP_DELETING, teardown_advance },
        [STATE_OP_RESUME_FAIL] = { STEP_DELETING, teardown_advance },
        [STATE_OP_REBOOT] = { STEP_REBOOT_PREPARING, reboot_advance },
};

struct view {
        char *node;
        char *instance_status;
};

static void lifecycle_scan(struct lifecycle *l);

uint64_t now_usec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / 1000;
}

static int op_cmp(const void *a, const void *b) {
        return strcmp(((const struct lc_op *) a)->node, ((const struct lc_op *) b)->node);
}

static int view_cmp(const void *a, const void *b) {
        return strcmp(((const struct view *) a)->node, ((const struct view *) b)->node);
}

struct lc_op *op_find(struct lifecycle *l, const char *node) {
        struct lc_op key = { .node = (char *) node };
        void *p = tfind(&key, &l->ops, op_cmp);

        return p ? *(struct lc_op **) p : NULL;
}

const struct log_ctx *op_ctx(const struct lc_op *o, struct log_ctx *buf) {
        *buf = (struct log_ctx){ .node = o->node, .op = o->id, .instance = o->instance_id };
        return buf;
}

void set_string(char **field, const char *value) {
        char *copy = value ? strdup(value) : NULL;

        free(*field);
        *field = copy;
}

void view_set_status(struct lifecycle *l, const char *node, const char *status) {
        struct view key = { .node = (char *) node }, *v;
        void *p = tfind(&key, &l->views, view_cmp);

        if (p) {
                v = *(struct view **) p;
        } else {
                v = calloc(1, sizeof(*v));
                if (!v)
                        return;
                v->node = strdup(node);
                if (!v->node || !tsearch(v, &l->views, view_cmp)) {
                        free(v->node);
                        free(v);
                        return;
                }
        }
        set_string(&v->instance_status, status);
}

static void view_free(void *p) {
        struct view *v = p;

        free(v->node);
        free(v->instance_status);
        free(v);
}

void note_cloud_error(struct lifecycle *l) {
        uint64_t minute = now_usec() / (60 * USEC_PER_SEC);
        unsigned slot = minute % 60;

        l->stats.cloud_errors++;
        if (l->error_minute_stamp[slot] != minute) {
                l->error_minute_stamp[slot] = minute;
                l->error_minutes[slot] = 0;
        }
        l->error_minutes[slot]++;
}

static void changed(struct lifecycle *l) {
        if (l->env.changed)
                l->env.changed(l->env.userdata);
}

/* --- calls and their bookkeeping ----------------------------------------- */

void *call_new_sized(struct lc_op *o, size_t size) {
        struct lc_call *c = calloc(1, size);

        if (!c)
                return NULL;
        c->l = o ? o->l : NULL;
        if (o) {
                c->node = strdup(o->node);
                c->op_id = strdup(o->id);
                c->generation = ++o->generation;
                if (!c->node || !c->op_id) {
                        free(c->node);
                        free(c->op_id);
                        free(c);
                        return NULL;
                }
        }
        return c;
}

struct lc_call *call_new(struct lc_op *o) {
        return call_new_sized(o, sizeof(struct lc_call));
}

void call_link(struct lifecycle *l, struct lc_call *c) {
        c->l = l;
        c->next = l->calls;
        if (l->calls)
                l->calls->prev = c;
        l->calls = c;
}

void call_unlink(struct lc_call *c) {
        if (c->prev)
                c->prev->next = c->next;
        else if (c->l && c->l->calls == c)
                c->l->calls = c->next;
        if (c->next)
                c->next->prev = c->prev;
        c->next = c->prev = NULL;
}

void call_free(struct lc_call *c) {
        if (!c)
                return;
        free(c->node);
        free(c->op_id);
        free(c);
}

struct lc_op *call_op(struct lc_call *c) {
        struct lc_op *o = op_find(c->l, c->node);

        if (!o || strcmp(o->id, c->op_id) != 0 || o->generation != c->generation)
                return NULL;
        return o;
}

/* --- the runtime operation ------------------------------------------------ */

static void op_free(struct lc_op *o) {
        if (!o)
                return;
        sd_event_source_disable_unref(o->timer);
        config_free(o->config);
        free(o->id);
        free(o->node);
        free(o->group);
        free(o->note);
        free(o->instance_id);
        free(o->address);
        free(o->flavor_id);
        free(o->image_id);
        strv_free(o->network_ids);
        free(o);
}

static void op_remove(struct lc_op *o) {
        struct lifecycle *l = o->l;

        tdelete(o, &l->ops, op_cmp);
        l->n_ops--;
        op_free(o);
}

/*
 * Group commit: records of every operation that moved on during one loop
 * iteration are journalled together (one write, one fdatasync), and each
 * operation acts only once its record is durable. A resume of 1,000 nodes
 * thus costs a handful of fdatasyncs per step, not one per node.
 */
enum commit_kind {
        COMMIT_STEP,
        COMMIT_FINISH,
};

struct lc_commit {
        char *node;
        char *op_id;
        enum commit_kind kind;
        int value;                 /* the step, or 1 done / 0 failed */
};

static void batch_add(struct lifecycle *l, json_t *rec) {
        if (!rec)
                return;
        if (!l->batch)
                l->batch = json_array();
        if (l->batch)
                json_array_append(l->batch, rec);
        json_decref(rec);
        sd_event_source_set_enabled(l->flush, SD_EVENT_ONESHOT);
}

static void op_commit(struct lc_op *o, json_t *rec, enum commit_kind kind, int value) {
        struct lifecycle *l = o->l;
        struct lc_commit *c;

        if (!rec)
                goto later;
        if (l->n_commits == l->commits_cap) {
                size_t cap = l->commits_cap ? 2 * l->commits_cap : 64;
                struct lc_commit *a = reallocarray(l->commits, cap, sizeof(*a));

                if (!a)
                        goto later;
                l->commits = a;
                l->commits_cap = cap;
        }
        c = &l->commits[l->n_commits];
        *c = (struct lc_commit){ .node = strdup(o->node), .op_id = strdup(o->id), .kind = kind, .value = value };
        if (!c->node || !c->op_id) {
                free(c->node);
                free(c->op_id);
                goto later;
        }
        l->n_commits++;
        batch_add(l, rec);
        o->wait = WAIT_JOURNAL;
        return;
later:
        json_decref(rec);
        if (kind == COMMIT_STEP)
                o->pending_step = value;
        else
                o->pending_finish = value ? 1 : 2;
        op_wait_timer(o, l->opts.retry_usec);
}

void lifecycle_journal(struct lifecycle *l, const struct record *r) {
        _cleanup_free_ char *error = NULL;
        json_t *rec = NULL;
        int k;

        k = record_encode(r, &rec, &error);
        if (k < 0) {
                log_error("Cannot build a %s journal record: %s", record_kind_to_string(r->kind),
                          error ? error : strerror(-k));
                return;
        }
        batch_add(l, rec);
}

/* The JSON of R (journal/records.h); NULL, logged unless memory ran out,
 * when it cannot be built: op_commit then tries again later. */
static json_t *op_record(const struct lc_op *o, const struct record *r) {
        _cleanup_free_ char *error = NULL;
        json_t *rec = NULL;
        int k;

        k = record_encode(r, &rec, &error);
        if (k < 0 && k != -ENOMEM)
                op_log(o, LOG_ERR, "Cannot build a journal record: %s", error ? error : strerror(-k));
        return rec;
}

static json_t *op_state_record(const struct lc_op *o, enum state_op_state st) {
        return op_record(o, &(struct record) {
                .kind = RECORD_OP_STATE,
                .op_state = {
                        .id = o->id,
                        .node = o->node,
                        .state = st,
                        .time = (int64_t) time(NULL),
                        .note = RECORD_TEXT_IF(o->note),
                },
        });
}

void op_step(struct lc_op *o, enum step step) {
        json_t *rec = op_record(o, &(struct record) {
                .kind = RECORD_NODE,
                .node = {
                        .node = o->node,
                        .op = o->id,
                        .time = (int64_t) time(NULL),
                        .step = RECORD_TEXT(step_names[step]),
                        .instance_id = RECORD_TEXT(o->instance_id),
                        .address = RECORD_TEXT(o->address),
                        .note = RECORD_TEXT_IF(o->note),
                },
        });

        op_commit(o, rec, COMMIT_STEP, (int) step);
}

void op_finish(struct lc_op *o, bool ok) {
        op_commit(o, op_state_record(o, ok ? STATE_OP_DONE : STATE_OP_FAILED), COMMIT_FINISH, ok);
}

static void op_committed(struct lc_op *o, const struct lc_commit *c) {
        struct lifecycle *l = o->l;

        o->wait = WAIT_NONE;
        if (c->kind == COMMIT_STEP) {
                o->step = (enum step) c->value;
                if (o->step == STEP_CREATING && !o->creating_usec)
                        o->creating_usec = now_usec();
                o->attempts = 0;
                o->poll_usec = l->opts.poll_usec;
                op_log(o, LOG_DEBUG, "Step %s", step_names[o->step]);
                op_advance(o);
                return;
        }
        if (c->value) {
                l->stats.succeeded[o->kind]++;
                op_log(o, LOG_INFO, "%s done%s%s", state_op_kind_to_string(o->kind),
                       o->note ? ": " : "", o->note ? o->note : "");
        } else {
                l->stats.failed[o->kind]++;
                op_log(o, LOG_WARNING, "%s failed: %s", state_op_kind_to_string(o->kind),
                       o->note ? o->note : "unknown reason");
        }
        op_remove(o);
        lifecycle_kick(l);
}

static int on_flush(sd_event_source *src, void *userdata) {
        struct lifecycle *l = userdata;
        _cleanup_(json_decrefp) json_t *batch = TAKE_PTR(l->batch);
        _cleanup_free_ struct lc_commit *commits = TAKE_PTR(l->commits);
        _cleanup_free_ char *error = NULL;
        size_t n = l->n_commits;
        int r = 0;

        sd_event_source_set_enabled(src, SD_EVENT_OFF);
        l->n_commits = l->commits_cap = 0;
        if (batch && json_array_size(batch) > 0) {
                r = l->env.record(l->env.userdata, batch, &error);
                if (r < 0)
                        log_error("Cannot journal the progress of %zu operation%s: %s; retrying", n,
                                  n == 1 ? "" : "s", error ? error : strerror(-r));
        }
        for (size_t i = 0; i < n; i++) {
                struct lc_commit *c = &commits[i];
                struct lc_op *o = op_find(l, c->node);

                if (o && strcmp(o->id, c->op_id) == 0 && o->wait == WAIT_JOURNAL) {
                        if (r < 0) {
                                /* Not durable, so not acted on: journal the same step
                                 * again later (never redo the one before: that could
                                 * create twice). */
                                o->wait = WAIT_NONE;
                                if (c->kind == COMMIT_STEP)
                                        o->pending_step = c->value;
                                else
                                        o->pending_finish = c->value ? 1 : 2;
                                op_wait_timer(o, l->opts.retry_usec);
                        } else {
                                op_committed(o, c);
                        }
                }
                free(c->node);
                free(c->op_id);
        }
        if (n)
                changed(l);
        return 0;
}

static int on_op_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        struct lc_op *o = userdata;

        o->wait = WAIT_NONE;
        op_advance(o);
        return 0;
}

void op_wait_timer(struct lc_op *o, uint64_t usec) {
        int r;

        o->wait = WAIT_TIMER;
        if (o->timer) {
                r = sd_event_source_set_time_relative(o->timer, usec);
                if (r >= 0)
                        r = sd_event_source_set_enabled(o->timer, SD_EVENT_ONESHOT);
        } else {
                r = sd_event_add_time_relative(o->l->env.event, &o->timer, CLOCK_MONOTONIC, usec,
                                               o->l->opts.accuracy_usec, on_op_timer, o);
        }
        if (r < 0)
                op_log(o, LOG_ERR, "Cannot arm a timer: %s", strerror(-r));
}

void op_poll_later(struct lc_op *o) {
        uint64_t d = o->poll_usec ? o->poll_usec : o->l->opts.poll_usec;

        op_wait_timer(o, d);
        o->poll_usec = d + d / 2 > MAX_POLL_USEC ? MAX_POLL_USEC : d + d / 2;
}

bool op_past_deadline(const struct lc_op *o) {
        return o->deadline_usec && now_usec() > o->deadline_usec;
}

void op_fail(struct lc_op *o, const char *fmt, ...) {
        va_list ap;
        char *note = NULL;

        va_start(ap, fmt);
        if (vasprintf(&note, fmt, ap) < 0)
                note = NULL;
        va_end(ap);
        free(o->note);
        o->note = note;
        o->failing = true;
        o->deadline_usec = 0;
        op_log(o, LOG_WARNING, "%s failing: %s", state_op_kind_to_string(o->kind), note ? note : "?");
        /* Without a known instance, cleanup looks one up by name: a create
         * whose reply was lost must not leave one behind. */
        op_step(o, STEP_CLEANUP);
}

const struct config_group *op_group(const struct lc_op *o) {
        return o->grp;
}


/* --- cloud calls ------------------------------------------------------------ */

struct cloud_call_ctx {
        struct lc_call call;
        op_cloud_fn fn;
};

static void on_cloud_done(const struct ops_cloud_result *res, void *userdata) {
        struct cloud_call_ctx *cc = userdata;
        struct lc_op *o;

        call_unlink(&cc->call);
        o = call_op(&cc->call);
        if (res->error && res->error != -ENOENT)
                note_cloud_error(cc->call.l);
        if (o) {
                o->wait = WAIT_NONE;
                cc->fn(o, res);
        }
        call_free(&cc->call);
}

void op_cloud(struct lc_op *o, op_cloud_start_fn start, op_cloud_fn fn) {
        struct cloud_call_ctx *cc = call_new_sized(o, sizeof(struct cloud_call_ctx));
        int r;

        if (!cc)
                goto later;
        cc->fn = fn;
        r = start(o, on_cloud_done, cc, &cc->call.cloud_call_id);
        if (r < 0) {
                call_free(&cc->call);
                if (r != -EBUSY && r != -ENOMEM && !o->failing) {
                        op_fail(o, "cannot make the cloud call: %s", strerror(-r));
                        return;
                }
                op_log(o, LOG_WARNING, "Cloud call refused (%s); retrying", strerror(-r));
                goto later;
        }
        call_link(o->l, &cc->call);
        o->wait = WAIT_CLOUD;
        /* Passing weather is retried by the client until the operation's deadline. */
        if (o->deadline_usec && o->l->env.ports.cloud.set_deadline)
                o->l->env.ports.cloud.set_deadline(o->l->env.ports.cloud.impl, cc->call.cloud_call_id,
                                                   o->deadline_usec);
        return;
later:
        op_wait_timer(o, o->l->opts.retry_usec);
}

const char *res_message(const struct ops_cloud_result *res) {
        return res->message ? res->message : strerror(-res->error);
}

char *res_describe(const struct ops_cloud_result *res) {
        char *s = NULL;

        if (res->http_status)
                (void) asprintf(&s, "HTTP %ld: %s%s%s%s", res->http_status, res_message(res),
                                res->request_id ? " (request " : "", res->request_id ? res->request_id : "",
                                res->request_id ? ")" : "");
        else
                (void) asprintf(&s, "%s", res_message(res));
        return s;
}

bool error_transient(int e) {
        return e == -EAGAIN || e == -EREMOTEIO || e == -ETIMEDOUT || e == -ECONNRESET ||
               e == -ECONNREFUSED || e == -EHOSTUNREACH || e == -EBUSY || e == -EACCES;
}

int op_start_show(struct lc_op *o, ops_cloud_done_fn cb, void *ud, uint64_t *id) {
        const struct ops_cloud_port *p = &o->l->env.ports.cloud;

        return p->server_show(p->impl, o->instance_id, cb, ud, id);
}

int op_start_list_by_name(struct lc_op *o, ops_cloud_done_fn cb, void *ud, uint64_t *id) {
        const struct ops_cloud_port *p = &o->l->env.ports.cloud;

        return p->servers_list(p->impl, o->node, cb, ud, id);
}

int op_start_delete(struct lc_op *o, ops_cloud_done_fn cb, void *ud, uint64_t *id) {
        const struct ops_cloud_port *p = &o->l->env.ports.cloud;

        return p->server_delete(p->impl, o->instance_id, cb, ud, id);
}

int op_start_image(struct lc_op *o, ops_cloud_done_fn cb, void *ud, uint64_t *id) {
        const struct ops_cloud_port *p = &o->l->env.ports.cloud;

        return p->image_resolve(p->impl, op_group(o)->image, cb, ud, id);
}

/* --- Slurm calls ------------------------------------------------------------ */

struct slurm_call_ctx {
        struct lc_call call;
        op_slurm_fn fn;
};

static void on_slurm_done(int r, const char *error, void *userdata) {
        struct slurm_call_ctx *cc = userdata;
        struct lc_op *o;

        /* Cancelled: elasticd is stopping and the lifecycle may be gone. */
        if (r != -ECANCELED && (o = call_op(&cc->call))) {
                o->wait = WAIT_NONE;
                cc->fn(o, r, error);
        }
        call_free(&cc->call);
}

void op_slurm_update(struct lc_op *o, const struct ops_slurm_update *u, op_slurm_fn fn) {
        const struct ops_slurm_port *p = &o->l->env.ports.slurm;
        struct slurm_call_ctx *cc = call_new_sized(o, sizeof(struct slurm_call_ctx));
        int r;

        if (!cc)
                goto later;
        cc->fn = fn;
        r = p->update(p->impl, u, on_slurm_done, cc);
        if (r < 0) {
                call_free(&cc->call);
                goto later;
        }
        o->wait = WAIT_CTLD;
        return;
later:
        op_wait_timer(o, o->l->opts.retry_usec);
}

const struct ops_slurm_nodes *lifecycle_slurm_nodes(const struct lifecycle *l) {
        const struct ops_slurm_port *p = &l->env.ports.slurm;

        return l->slurm ? l->slurm : p->newest ? p->newest(p->impl) : NULL;
}

bool lifecycle_slurm_node(const struct lifecycle *l, const char *node, struct ops_slurm_node *ret) {
        const struct ops_slurm_nodes *n = lifecycle_slurm_nodes(l);

        return n && l->env.ports.slurm.node_find(n, node, ret);
}

void op_wait_slurm(struct lc_op *o) {
        o->wait = WAIT_SLURM_POLL;
        o->slurm_after = o->l->slurm_loads;
        request_slurm_poll(o->l);
}

/* --- the transition function ---------------------------------------------- */

void op_advance(struct lc_op *o) {
        struct lifecycle *l = o->l;

        if (o->wait != WAIT_NONE)
                return;
        if (o->pending_step >= 0) {
                enum step step = (enum step) o->pending_step;

                o->pending_step = -1;
                op_step(o, step);
                return;
        }
        if (o->pending_finish) {
                bool ok = o->pending_finish == 1;

                o->pending_finish = 0;
                op_finish(o, ok);
                return;
        }
        if (o->superseded) {
                /* The newer operation takes over from here. */
                op_log(o, LOG_INFO, "Superseded at step %s", step_names[o->step]);
                op_remove(o);
                lifecycle_kick(l);
                return;
        }
        if (!op_group(o)) {
                /* Replayed after a reload (and restart) that removed it. */
                set_string(&o->note, "the node's group is no longer configured");
                op_finish(o, false);
                return;
        }

        switch (o->step) {
        case STEP_PENDING:
                /* "running" goes into the same group commit as the first step. */
                batch_add(l, op_state_record(o, STATE_OP_RUNNING));
                l->stats.started[o->kind]++;
                op_step(o, kinds[o->kind].first);
                return;
        case STEP_CLEANUP:
        case STEP_CLEANUP_CONFIRMING:
        case STEP_MARKING:
                teardown_advance(o);
                return;
        default:
                kinds[o->kind].advance(o);
                return;
        }
}

/* --- Slurm polls ---------------------------------------------------------- */

struct slurm_walk {
        struct lc_op **v;
        size_t n;
};

static void collect_op(const void *p, VISIT which, void *closure) {
        struct slurm_walk *w = closure;

        if (which == postorder || which == leaf)
                w->v[w->n++] = *(struct lc_op *const *) p;
}

/* All runtime operations, copied so callbacks may remove them. */
static struct lc_op **ops_snapshot(struct lifecycle *l, size_t *ret_n) {
        struct slurm_walk w = { .v = calloc(l->n_ops + 1, sizeof(struct lc_op *)) };

        if (!w.v)
                return NULL;
        twalk_r(l->ops, collect_op, &w);
        *ret_n = w.n;
        return w.v;
}

static void on_slurm_nodes(int r, struct ops_slurm_nodes *nodes, const char *error, void *userdata) {
        struct lifecycle *l = userdata;
        _cleanup_free_ struct lc_op **v = NULL;
        size_t n = 0;

        if (r == -ECANCELED) {
                if (nodes)
                        l->env.ports.slurm.nodes_free(nodes);
                return;
        }
        l->slurm_loading = false;
        if (r < 0) {
                log_warning("Cannot load node states from slurmctld: %s", error ? error : strerror(-r));
        } else {
                if (l->slurm)
                        l->env.ports.slurm.nodes_free(l->slurm);
                l->slurm = nodes;
        }

        v = ops_snapshot(l, &n);
        for (size_t i = 0; v && i < n; i++) {
                struct lc_op *o = v[i];
                /* Still there? A previous callback may have removed it. */
                if (op_find(l, o->node) != o || o->wait != WAIT_SLURM_POLL)
                        continue;
                if (o->slurm_after >= l->slurm_loads) {
                        /* This load started before the operation asked: the next one. */
                        l->slurm_wanted = true;
                        continue;
                }
                o->wait = WAIT_NONE;
                if (r < 0 && !op_past_deadline(o)) {
                        /* Try again at the next poll, not at the next reconcile. */
                        o->wait = WAIT_SLURM_POLL;
                        l->slurm_wanted = true;
                        continue;
                }
                op_advance(o);
        }
        if (r >= 0) {
                l->slurm_loads_done++;
                downmarks_check(l);
        }
        /* Between loads the port's newest serves (resize's loads too). */
        if (l->slurm && l->env.ports.slurm.newest) {
                l->env.ports.slurm.nodes_free(l->slurm);
                l->slurm = NULL;
        }
        if (l->slurm_wanted) {
                l->slurm_wanted = false;
                request_slurm_poll(l);
        }
}

static int on_slurm_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        struct lifecycle *l = userdata;
        const struct ops_slurm_port *p = &l->env.ports.slurm;
        int r;

        l->slurm_loading = true;
        l->slurm_loads++;
        r = p->load_nodes(p->impl, on_slurm_nodes, l);
        if (r < 0) {
                l->slurm_loading = false;
                l->slurm_loads--;
                log_warning("Cannot queue a Slurm node load: %s", strerror(-r));
                request_slurm_poll(l);
        }
        return 0;
}

/* One load of every node serves all operations waiting on Slurm. */
void request_slurm_poll(struct lifecycle *l) {
        int enabled = SD_EVENT_OFF;
        int r;

        if (l->slurm_loading) {
                l->slurm_wanted = true;
                return;
        }
        if (l->slurm_timer && sd_event_source_get_enabled(l->slurm_timer, &enabled) >= 0 &&
            enabled != SD_EVENT_OFF)
                return;
        if (l->slurm_timer) {
                r = sd_event_source_set_time_relative(l->slurm_timer, l->opts.poll_usec);
                if (r >= 0)
                        r = sd_event_source_set_enabled(l->slurm_timer, SD_EVENT_ONESHOT);
        } else {
                r = sd_event_add_time_relative(l->env.event, &l->slurm_timer, CLOCK_MONOTONIC,
                                               l->opts.poll_usec, l->opts.accuracy_usec, on_slurm_timer, l);
        }
        if (r < 0)
                log_error("Cannot arm the Slurm poll timer: %s", strerror(-r));
}

/* --- scan: start what the state says must be done ------------------------- */

static struct lc_op *op_new(struct lifecycle *l, const struct state_node *n) {
        struct lc_op *o = calloc(1, sizeof(*o));
        int st, g;

        if (!o)
                return NULL;
        o->l = l;
        o->id = strdup(n->op.id);
        o->node = strdup(n->name);
        o->group = strdup(n->group);
        o->kind = n->op.kind;
        o->instance_id = n->instance_id ? strdup(n->instance_id) : NULL;
        o->address = n->address ? strdup(n->address) : NULL;
        o->note = n->note ? strdup(n->note) : NULL;
        o->started = n->op.created ? (time_t) n->op.created : time(NULL);
        o->poll_usec = l->opts.poll_usec;
        o->pending_step = -1;
        if (!o->id || !o->node || !o->group) {
                op_free(o);
                return NULL;
        }
        g = config_group_find(l->config, o->group);
        if (g >= 0) {
                o->config = config_ref(l->config);
                o->grp = &o->config->groups[g];
        }
        st = n->op.state == STATE_OP_PENDING ? STEP_PENDING : step_from_string(n->step);
        /* running without a step: crashed between the two records */
        o->step = st < 0 ? STEP_PENDING : (enum step) st;
        if (o->step == STEP_PENDING && n->op.state == STATE_OP_RUNNING)
                o->step = kinds[o->kind].first;
        /* On the failure path after a restart. */
        if (o->step == STEP_CLEANUP || o->step == STEP_CLEANUP_CONFIRMING ||
            (o->step == STEP_MARKING && o->kind != STATE_OP_RESUME_FAIL))
                o->failing = o->note != NULL;
        /* Failing over for lack of capacity (the cooldown is journalled):
         * DOWN for the cooldown, not for good. */
        if (o->failing && o->kind == STATE_OP_RESUME && capacity_short(l->capacity, o->group, time(NULL), NULL))
                o->capacity = true;

        /* Deadlines run from the operation's creation, also across restarts. */
        if (o->kind == STATE_OP_RESUME || o->kind == STATE_OP_REBOOT) {
                time_t age = time(NULL) - o->started;
                uint64_t limit = l->opts.resume_timeout_usec
                                         ? l->opts.resume_timeout_usec
                                         : (uint64_t) l->config->limits.resume_timeout_s * USEC_PER_SEC;
                uint64_t spent = age > 0 ? (uint64_t) age * USEC_PER_SEC : 0;

                o->deadline_usec = now_usec() + (spent < limit ? limit - spent : 0);
        }
        return o;
}

static int scan_node(const struct state_node *n, void *userdata) {
        struct lifecycle *l = userdata;
        struct lc_op *o = op_find(l, n->name);

        if (o) {
                if (strcmp(o->id, n->op.id) == 0)
                        return 0;
                /* A newer request superseded O. Let go at a safe point: never
                 * while a call is out (a create's reply carries the id). */
                if (!o->superseded)
                        op_log(o, LOG_INFO, "Superseded by operation %s", n->op.id);
                o->superseded = true;
                if (o->wait == WAIT_CLOUD || o->wait == WAIT_CTLD || o->wait == WAIT_JOURNAL)
                        return 0;
                op_remove(o);
        }
        if (!state_op_state_is_active(n->op.state))
                return 0;

        o = op_new(l, n);
        if (!o || !tsearch(o, &l->ops, op_cmp)) {
                log_error("Out of memory starting operation %s", n->op.id);
                op_free(o);
                return 0;
        }
        l->n_ops++;
        if (o->step != STEP_PENDING)
                op_log(o, LOG_INFO, "Resuming %s at step %s", state_op_kind_to_string(o->kind),
                       step_names[o->step]);
        /* Start from the loop, not from inside the walk. */
        op_wait_timer(o, 0);
        return 0;
}

static void lifecycle_scan(struct lifecycle *l) {
        state_foreach_node(l->env.state, scan_node, l);
        l->stats.active = l->n_ops;
}

static int on_defer(sd_event_source *s, void *userdata) {
        struct lifecycle *l = userdata;

        sd_event_source_set_enabled(s, SD_EVENT_OFF);
        lifecycle_scan(l);
        return 0;
}

void lifecycle_kick(struct lifecycle *l) {
        if (!l)
                return;
        if (!l->started) {
                l->started = true;
                failover_restore(l);
                reconcile_start(l);
        }
        sd_event_source_set_enabled(l->defer, SD_EVENT_ONESHOT);
}

/* --- object --------------------------------------------------------------- */

static bool ports_complete(const struct ops_ports *p) {
        const struct ops_cloud_port *c = &p->cloud;
        const struct ops_slurm_port *s = &p->slurm;

        return c->flavor_resolve && c->image_resolve && c->network_resolve && c->network_is_literal &&
               c->server_create && c->server_show && c->servers_list && c->server_delete &&
               c->server_reboot && c->server_rebuild && c->server_console && c->cancel && s->load_nodes &&
               s->node_find && s->nodes_free && s->update;
}

int lifecycle_new(const struct lifecycle_env *env, const struct lifecycle_options *opts,
                  const struct config *config, const struct nodemap *map, struct lifecycle **ret) {
        _cleanup_(lifecycle_freep) struct lifecycle *l = NULL;
        int r;

        if (!env || !env->event || !env->state || !ports_complete(&env->ports) || !env->record || !config ||
            !map || !ret)
                return -EINVAL;
        l = calloc(1, sizeof(*l));
        if (!l)
                return -ENOMEM;
        l->env = *env;
        if (opts)
                l->opts = *opts;
        if (!l->opts.poll_usec)
                l->opts.poll_usec = DEFAULT_POLL_USEC;
        if (!l->opts.retry_usec)
                l->opts.retry_usec = DEFAULT_RETRY_USEC;
        if (!l->opts.accuracy_usec)
                l->opts.accuracy_usec = DEFAULT_ACCURACY_USEC;
        l->config = config;
        l->map = map;
        r = capacity_new(&l->capacity);
        if (r < 0)
                return r;
        failover_init(l);

        r = sd_event_add_defer(env->event, &l->defer, on_defer, l);
        if (r < 0)
                return r;
        sd_event_source_set_enabled(l->defer, SD_EVENT_OFF);
        r = sd_event_add_defer(env->event, &l->flush, on_flush, l);
        if (r < 0)
                return r;
        sd_event_source_set_enabled(l->flush, SD_EVENT_OFF);
        /* Commit after the other work of an iteration has queued its records. */
        (void) sd_event_source_set_priority(l->flush, SD_EVENT_PRIORITY_IDLE);
        r = sd_event_add_time_relative(env->event, &l->reconcile_timer, CLOCK_MONOTONIC,
                                       (uint64_t) config->limits.reconcile_interval_s * USEC_PER_SEC,
                                       USEC_PER_SEC, reconcile_on_timer, l);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(l);
        return 0;
}

static void op_free_node(void *p) {
        op_free(p);
}

struct lifecycle *lifecycle_free(struct lifecycle *l) {
        if (!l)
                return NULL;
        /* Cloud calls still out will not call back. */
        while (l->calls) {
                struct lc_call *c = l->calls;

                call_unlink(c);
                l->env.ports.cloud.cancel(l->env.ports.cloud.impl, c->cloud_call_id);
                /* A cloud_call_ctx starts with its lc_call: one free covers both. */
                call_free(c);
        }
        for (size_t i = 0; i < l->n_commits; i++) {
                free(l->commits[i].node);
                free(l->commits[i].op_id);
        }
        free(l->commits);
        json_decref(l->batch);
        sd_event_source_disable_unref(l->flush);
        tdestroy(l->ops, op_free_node);
        tdestroy(l->views, view_free);
        sd_event_source_disable_unref(l->defer);
        sd_event_source_disable_unref(l->reconcile_timer);
        sd_event_source_disable_unref(l->slurm_timer);
        sd_event_source_disable_unref(l->cooldown_timer);
        if (l->slurm)
                l->env.ports.slurm.nodes_free(l->slurm);
        capacity_free(l->capacity);
        downmarks_free(l);
        free(l);
        return NULL;
}

void lifecycle_set_config(struct lifecycle *l, const struct config *config, const struct nodemap *map) {
        /* Running operations keep the config they started under. */
        l->config = config;
        l->map = map;
}

void lifecycle_node_view(const struct lifecycle *l, const char *node, const char **ret_slurm_state,
                         const char **ret_instance_status) {
        struct ops_slurm_node n;
        bool known = l && lifecycle_slurm_node(l, node, &n);
        struct view key = { .node = (char *) node };
        void *p = l ? tfind(&key, &l->views, view_cmp) : NULL;

        if (ret_slurm_state)
                *ret_slurm_state = known ? n.state : NULL;
        if (ret_instance_status)
                *ret_instance_status = p ? (*(struct view **) p)->instance_status : NULL;
}

void lifecycle_get_stats(const struct lifecycle *l, struct lifecycle_stats *ret) {
        uint64_t minute = now_usec() / (60 * USEC_PER_SEC);

        *ret = l->stats;
        ret->active = l->n_ops;
        ret->cloud_errors_last_hour = 0;
        for (unsigned i = 0; i < 60; i++)
                if (minute - l->error_minute_stamp[i] < 60)
                        ret->cloud_errors_last_hour += (unsigned) l->error_minutes[i];
}
