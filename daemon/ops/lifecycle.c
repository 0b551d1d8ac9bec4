/* lifecycle.c - one state machine per node operation, driven by cloud and
 * Slurm completions on the event loop. */
#include "ops/lifecycle.h"

#include <errno.h>
#include <fcntl.h>
#include <search.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <slurm/slurm.h>

#include "util/log.h"
#include "cloud/neutron.h"
#include "util/strv.h"

#define USEC_PER_SEC 1000000ULL
#define DEFAULT_POLL_USEC (2 * USEC_PER_SEC)
#define DEFAULT_RETRY_USEC (5 * USEC_PER_SEC)
/* Polls back off up to this. */
#define MAX_POLL_USEC (30 * USEC_PER_SEC)
/* Nova caps user_data at 65535 bytes once base64-encoded. */
#define USER_DATA_MAX 49152
/* Slurm updates that keep failing while marking a node down. */
#define MARK_ATTEMPTS 10

enum step {
        STEP_PENDING,            /* accepted; nothing done yet */
        STEP_PREPARING,          /* resume: resolving flavor/image, looking for an instance */
        STEP_CREATING,           /* resume: POST /servers sent (or about to be) */
        STEP_BUILDING,           /* waiting for ACTIVE */
        STEP_ADDRESSING,         /* telling Slurm the address */
        STEP_CONFIGURING,        /* groups with ssh: host keys from the console, then the push */
        STEP_REGISTERING,        /* waiting for slurmd to register */
        STEP_DELETING,           /* suspend, resume_fail: DELETE sent */
        STEP_CONFIRMING,         /* waiting for the instance to be gone */
        STEP_CLEARING,           /* suspend: NodeAddr back to the node name */
        STEP_REBOOT_PREPARING,   /* reboot: reading Slurm's reason, choosing reboot or rebuild */
        STEP_REBOOTING,
        STEP_REBUILDING,
        STEP_CLEANUP,            /* failed: deleting the instance */
        STEP_CLEANUP_CONFIRMING,
        STEP_MARKING,            /* node DOWN with the reason */
        _STEP_MAX,
};

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

static int step_from_string(const char *s) {
        for (unsigned i = 0; s && i < _STEP_MAX; i++)
                if (strcmp(s, step_names[i]) == 0)
                        return (int) i;
        return -EINVAL;
}

/* What an operation is waiting for: at most one thing at a time. */
enum wait {
        WAIT_NONE,
        WAIT_CLOUD,
        WAIT_CTLD,
        WAIT_TIMER,
        WAIT_SLURM_POLL,         /* the next shared load of Slurm's nodes */
        WAIT_JOURNAL,            /* its record is in the next group commit */
        WAIT_PUSH,               /* an SSH push (push.h) */
};

struct lc_op {
        struct lifecycle *l;
        char *id;
        char *node;
        char *group;
        enum state_op_kind kind;
        enum step step;
        enum wait wait;
        bool failing;            /* on the failure path; note says why */
        bool superseded;         /* a newer operation waits for this one to let go */
        bool rebuild;
        char *note;
        char *instance_id;
        char *address;
        char *flavor_id;
        char *image_id;
        char **network_ids;      /* Nova's "networks", from the group's names; NULL-terminated */
        size_t n_network_ids;
        bool networks_resolved;
        uint64_t call_id;
        sd_event_source *timer;
        uint64_t deadline_usec;  /* CLOCK_MONOTONIC; 0: none */
        time_t started;          /* wall clock, for Slurm's boot_time */
        uint64_t poll_usec;      /* current poll interval (backs off) */
        unsigned attempts;
        unsigned generation;     /* bumps on every wait, to drop stale completions */
        int pending_step;        /* a step whose record could not be journalled yet, or -1 */
        int pending_finish;      /* 1 done, 2 failed: the end could not be journalled yet */
        bool slurm_fresh;        /* reboot: Slurm's reason was loaded */
        uint64_t creating_usec;  /* resume: CLOCK_MONOTONIC when creating began (metrics); 0: not seen */
        uint64_t active_usec;    /* ... and when the instance was ACTIVE */
};

/* A pending cloud or Slurm call: which operation (by node and id) it is for. */
struct lc_call {
        struct lifecycle *l;
        struct lc_call *next, *prev;
        char *node;
        char *op_id;
        unsigned generation;
        uint64_t cloud_call_id;
        bool reconcile;          /* the reconcile's list */
};

struct lc_commit;

struct view {
        char *node;
        char *instance_status;
};

struct lifecycle {
        struct lifecycle_env env;
        struct lifecycle_options opts;
        const struct config *config;
        const struct nodemap *map;
        void *ops;               /* tsearch tree of struct lc_op *, by node */
        unsigned n_ops;
        struct lc_call *calls;   /* cloud calls in flight (to cancel on free) */
        sd_event_source *defer;  /* the scan after a kick */
        sd_event_source *flush;  /* the group commit */
        json_t *batch;           /* records waiting for it */
        struct lc_commit *commits;
        size_t n_commits, commits_cap;
        sd_event_source *reconcile_timer;
        sd_event_source *slurm_timer;
        bool reconcile_running;
        bool slurm_loading;
        bool slurm_wanted;
        bool started;
        struct ctld_nodes *slurm;        /* the last load of Slurm's nodes */
        void *views;                     /* tsearch tree of struct view *, by node */
        struct lifecycle_stats stats;
        uint64_t error_minutes[60];      /* cloud errors per minute, ring */
        uint64_t error_minute_stamp[60];
};

static void op_advance(struct lc_op *o);
static void op_fail(struct lc_op *o, const char *fmt, ...) _printf_(2, 3);
static void lifecycle_scan(struct lifecycle *l);
static void request_slurm_poll(struct lifecycle *l);

static uint64_t now_usec(void) {
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

static struct lc_op *op_find(struct lifecycle *l, const char *node) {
        struct lc_op key = { .node = (char *) node };
        void *p = tfind(&key, &l->ops, op_cmp);

        return p ? *(struct lc_op **) p : NULL;
}

static const struct log_ctx *op_ctx(const struct lc_op *o, struct log_ctx *buf) {
        *buf = (struct log_ctx){ .node = o->node, .op = o->id, .instance = o->instance_id };
        return buf;
}

#define op_log(o, level, ...)                                                  \
        do {                                                                   \
                struct log_ctx _c;                                             \
                log_ctx_msg((level), op_ctx((o), &_c), __VA_ARGS__);           \
        } while (0)

static void set_string(char **field, const char *value) {
        char *copy = value ? strdup(value) : NULL;

        free(*field);
        *field = copy;
}

static void view_set_status(struct lifecycle *l, const char *node, const char *status) {
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

static void note_cloud_error(struct lifecycle *l) {
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

/* A call for O (NULL: the lifecycle's own), SIZE bytes: a struct that
 * starts with a struct lc_call. */
static void *call_new_sized(struct lc_op *o, size_t size) {
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

static struct lc_call *call_new(struct lc_op *o) {
        return call_new_sized(o, sizeof(struct lc_call));
}

static void call_link(struct lifecycle *l, struct lc_call *c) {
        c->l = l;
        c->next = l->calls;
        if (l->calls)
                l->calls->prev = c;
        l->calls = c;
}

static void call_unlink(struct lc_call *c) {
        if (c->prev)
                c->prev->next = c->next;
        else if (c->l && c->l->calls == c)
                c->l->calls = c->next;
        if (c->next)
                c->next->prev = c->prev;
        c->next = c->prev = NULL;
}

static void call_free(struct lc_call *c) {
        if (!c)
                return;
        free(c->node);
        free(c->op_id);
        free(c);
}

/* The operation a completion is for, or NULL when it moved on. */
static struct lc_op *call_op(struct lc_call *c) {
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

static void op_wait_timer(struct lc_op *o, uint64_t usec);

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

static json_t *op_state_record(const struct lc_op *o, enum state_op_state st) {
        json_t *rec = json_pack("{s:s, s:s, s:s, s:s, s:I}", "kind", "op_state", "id", o->id,
                                "node", o->node, "state", state_op_state_to_string(st),
                                "time", (json_int_t) time(NULL));

        if (rec && o->note)
                json_object_set_new(rec, "note", json_string(o->note));
        return rec;
}

/* Record that O reached STEP (with its instance and address); it acts on
 * the step once the record is on disk. */
static void op_step(struct lc_op *o, enum step step) {
        json_t *rec;

        rec = json_pack("{s:s, s:s, s:s, s:s, s:I}", "kind", "node", "node", o->node, "op", o->id,
                        "step", step_names[step], "time", (json_int_t) time(NULL));
        if (rec) {
                json_object_set_new(rec, "instance_id",
                                    o->instance_id ? json_string(o->instance_id) : json_null());
                json_object_set_new(rec, "address", o->address ? json_string(o->address) : json_null());
                if (o->note)
                        json_object_set_new(rec, "note", json_string(o->note));
        }
        op_commit(o, rec, COMMIT_STEP, (int) step);
}

/* The operation ended: journal it; then count it and let a newer one start. */
static void op_finish(struct lc_op *o, bool ok) {
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

static void op_wait_timer(struct lc_op *o, uint64_t usec) {
        int r;

        o->wait = WAIT_TIMER;
        if (o->timer) {
                r = sd_event_source_set_time_relative(o->timer, usec);
                if (r >= 0)
                        r = sd_event_source_set_enabled(o->timer, SD_EVENT_ONESHOT);
        } else {
                r = sd_event_add_time_relative(o->l->env.event, &o->timer, CLOCK_MONOTONIC, usec,
                                               100 * 1000, on_op_timer, o);
        }
        if (r < 0)
                op_log(o, LOG_ERR, "Cannot arm a timer: %s", strerror(-r));
}

/* Poll again, a little later each time. */
static void op_poll_later(struct lc_op *o) {
        uint64_t d = o->poll_usec ? o->poll_usec : o->l->opts.poll_usec;

        op_wait_timer(o, d);
        o->poll_usec = d + d / 2 > MAX_POLL_USEC ? MAX_POLL_USEC : d + d / 2;
}

static bool op_past_deadline(const struct lc_op *o) {
        return o->deadline_usec && now_usec() > o->deadline_usec;
}

/* Take the failure path: delete the instance, mark the node DOWN. */
static void op_fail(struct lc_op *o, const char *fmt, ...) {
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

static const struct config_group *op_group(const struct lc_op *o) {
        int i = config_group_find(o->l->config, o->group);

        return i < 0 ? NULL : &o->l->config->groups[i];
}

/* --- cloud completions ---------------------------------------------------- */

typedef void (*op_cloud_fn)(struct lc_op *o, const struct cloud_result *res);

struct cloud_call_ctx {
        struct lc_call call;
        op_cloud_fn fn;
};

static void on_cloud_done(struct cloud *c, const struct cloud_result *res, void *userdata) {
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

typedef int (*cloud_start_fn)(struct lc_op *o, cloud_callback_t cb, void *userdata, uint64_t *ret_id);

/* Start a cloud call for O; on a refusal (busy, no memory) retry later. */
static void op_cloud(struct lc_op *o, cloud_start_fn start, op_cloud_fn fn) {
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
        return;
later:
        op_wait_timer(o, o->l->opts.retry_usec);
}

static const char *res_message(const struct cloud_result *res) {
        return res->os && res->os->message ? res->os->message : strerror(-res->error);
}

/* "HTTP 403: Quota exceeded ... (request req-...)" */
static char *res_describe(const struct cloud_result *res) {
        char *s = NULL;

        if (res->os && res->os->status)
                (void) asprintf(&s, "HTTP %ld: %s%s%s%s", res->os->status, res_message(res),
                                res->os->request_id ? " (request " : "",
                                res->os->request_id ? res->os->request_id : "",
                                res->os->request_id ? ")" : "");
        else
                (void) asprintf(&s, "%s", res_message(res));
        return s;
}

/* Errors worth another try: the cloud or the network, not our request. */
static bool error_transient(int e) {
        return e == -EAGAIN || e == -EREMOTEIO || e == -ETIMEDOUT || e == -ECONNRESET ||
               e == -ECONNREFUSED || e == -EHOSTUNREACH || e == -EBUSY || e == -EACCES;
}

/* --- Slurm completions ---------------------------------------------------- */

typedef void (*op_ctld_fn)(struct lc_op *o, int r, const char *error);

struct ctld_call_ctx {
        struct lc_call call;
        op_ctld_fn fn;
};

static void on_ctld_done(int r, const char *error, void *userdata) {
        struct ctld_call_ctx *cc = userdata;
        struct lc_op *o;

        /* Cancelled: elasticd is stopping and the lifecycle may be gone. */
        if (r != -ECANCELED && (o = call_op(&cc->call))) {
                o->wait = WAIT_NONE;
                cc->fn(o, r, error);
        }
        call_free(&cc->call);
}

static void op_ctld_update(struct lc_op *o, const struct ctld_update *u, op_ctld_fn fn) {
        struct ctld_call_ctx *cc = call_new_sized(o, sizeof(struct ctld_call_ctx));
        int r;

        if (!cc)
                goto later;
        cc->fn = fn;
        r = ctld_update(o->l->env.ctld, u, on_ctld_done, cc);
        if (r < 0) {
                call_free(&cc->call);
                goto later;
        }
        o->wait = WAIT_CTLD;
        return;
later:
        op_wait_timer(o, o->l->opts.retry_usec);
}

/* --- resume --------------------------------------------------------------- */

static int start_flavor(struct lc_op *o, cloud_callback_t cb, void *ud, uint64_t *id) {
        return cloud_flavor_resolve(o->l->env.cloud, op_group(o)->flavor, cb, ud, id);
}

static int start_image(struct lc_op *o, cloud_callback_t cb, void *ud, uint64_t *id) {
        return cloud_image_resolve(o->l->env.cloud, op_group(o)->image, cb, ud, id);
}

/* The group's network that is resolved next, or NULL once all are (or the
 * group went away). */
static const char *op_next_network(const struct lc_op *o) {
        const struct config_group *g = op_group(o);

        return g && o->n_network_ids < strv_length(g->networks) ? g->networks[o->n_network_ids] : NULL;
}

static int start_network(struct lc_op *o, cloud_callback_t cb, void *ud, uint64_t *id) {
        const char *name = op_next_network(o);

        return name ? cloud_network_resolve(o->l->env.cloud, name, cb, ud, id) : -ESTALE;
}

static int start_show(struct lc_op *o, cloud_callback_t cb, void *ud, uint64_t *id) {
        return cloud_server_show(o->l->env.cloud, o->instance_id, cb, ud, id);
}

static int start_list_by_name(struct lc_op *o, cloud_callback_t cb, void *ud, uint64_t *id) {
        return cloud_servers_list(o->l->env.cloud, o->node, cb, ud, id);
}

static int start_delete(struct lc_op *o, cloud_callback_t cb, void *ud, uint64_t *id) {
        return cloud_server_delete(o->l->env.cloud, o->instance_id, cb, ud, id);
}

/* The bytes config.c read at load: no file is opened on the event loop. */
static int read_user_data(const struct config_group *g, char **ret, size_t *ret_len, char **ret_error) {
        char *buf;

        if (!g->user_data_content) {
                (void) asprintf(ret_error, "user data %s was not loaded with the configuration", g->user_data);
                return -ENOENT;
        }
        buf = malloc(g->user_data_len + 1);
        if (!buf)
                return -ENOMEM;
        memcpy(buf, g->user_data_content, g->user_data_len + 1);
        *ret_len = g->user_data_len;
        *ret = buf;
        return 0;
}

static void on_created(struct lc_op *o, const struct cloud_result *res);

static int start_create(struct lc_op *o, cloud_callback_t cb, void *ud, uint64_t *id) {
        const struct config_group *g = op_group(o);
        struct lifecycle *l = o->l;
        _cleanup_free_ struct nova_kv *md = NULL;
        _cleanup_free_ char *user_data = NULL, *error = NULL;
        size_t user_data_len = 0, n = 0;
        int r;

        if (g->user_data) {
                r = read_user_data(g, &user_data, &user_data_len, &error);
                if (r < 0) {
                        op_log(o, LOG_ERR, "%s", error ? error : strerror(-r));
                        return r;
                }
        }
        md = calloc(g->n_metadata + 3, sizeof(*md));
        if (!md)
                return -ENOMEM;
        md[n++] = (struct nova_kv){ (char *) CLOUD_META_CLUSTER, l->config->cluster };
        md[n++] = (struct nova_kv){ (char *) CLOUD_META_NODE, o->node };
        md[n++] = (struct nova_kv){ (char *) CLOUD_META_OP, o->id };
        for (size_t i = 0; i < g->n_metadata; i++)
                md[n++] = (struct nova_kv){ g->metadata[i].key, g->metadata[i].value };

        struct nova_create spec = {
                .name = o->node,
                .flavor_ref = o->flavor_id,
                .image_ref = o->image_id,
                .networks = (const char *const *) o->network_ids,
                .security_groups = (const char *const *) g->security_groups,
                .key_name = g->key_name,
                .metadata = md,
                .n_metadata = n,
                .user_data = user_data,
                .user_data_len = user_data_len,
                .config_drive = g->config_drive,
                .availability_zone = g->availability_zone,
        };
        r = cloud_server_create(l->env.cloud, &spec, cb, ud, id);
        if (r >= 0)
                l->stats.instances_created++;
        return r;
}

static void on_resume_found(struct lc_op *o, const struct cloud_result *res) {
        /* Looking for this node's instance before creating one: adopt a
         * healthy one, clean up a broken one, create when there is none. */
        if (res->error == -ENOENT || (!res->error && res->n_servers == 0 && !res->server)) {
                set_string(&o->instance_id, NULL);
                op_step(o, STEP_CREATING);
                return;
        }
        if (res->error) {
                op_log(o, LOG_WARNING, "Cannot look up the node's instance: %s", res_message(res));
                op_wait_timer(o, o->l->opts.retry_usec);
                return;
        }

        const struct nova_server *s = res->server ? res->server : res->servers[0];
        view_set_status(o->l, o->node, s->status);
        set_string(&o->instance_id, s->id);
        if (s->status && (strcmp(s->status, "ERROR") == 0 || strcmp(s->status, "DELETED") == 0 ||
                          (s->task_state && strcmp(s->task_state, "deleting") == 0))) {
                op_log(o, LOG_NOTICE, "Instance %s is %s; deleting it before creating a new one", s->id,
                       s->status);
                /* Delete, confirm, then come back here with no instance. */
                op_step(o, STEP_CLEANUP);
                return;
        }
        op_log(o, LOG_INFO, "Adopting existing instance %s (%s)", s->id, s->status ? s->status : "?");
        op_step(o, STEP_BUILDING);
}

static int network_ids_add(struct lc_op *o, const char *id) {
        char **a = realloc(o->network_ids, (o->n_network_ids + 2) * sizeof(*a));

        if (!a)
                return -ENOMEM;
        o->network_ids = a;
        if (!(a[o->n_network_ids] = strdup(id)))
                return -ENOMEM;
        a[++o->n_network_ids] = NULL;
        return 0;
}

static void op_resolve_networks(struct lc_op *o);

static void on_network_resolved(struct lc_op *o, const struct cloud_result *res) {
        if (res->error) {
                if (error_transient(res->error) && !op_past_deadline(o)) {
                        op_wait_timer(o, o->l->opts.retry_usec);
                        return;
                }
                op_fail(o, "network %s: %s", op_next_network(o) ?: "?", res_message(res));
                return;
        }
        if (network_ids_add(o, res->id) < 0) {
                op_wait_timer(o, o->l->opts.retry_usec);
                return;
        }
        op_resolve_networks(o);
}

/* Flavor, image and networks are ids now. An instance elasticd already knows
 * for this node (an earlier resume, a crash during creating): look at it
 * before creating another. */
static void op_resolved(struct lc_op *o) {
        if (o->instance_id)
                op_cloud(o, start_show, on_resume_found);
        else if (o->step == STEP_CREATING)
                op_cloud(o, start_list_by_name, on_resume_found);
        else
                op_step(o, STEP_CREATING);
}

/* Nova takes only network ids: look up each name, one after the other.
 * Ids, "none" and "auto" need no call. */
static void op_resolve_networks(struct lc_op *o) {
        const char *next;

        while ((next = op_next_network(o)) && neutron_network_is_literal(next))
                if (network_ids_add(o, next) < 0) {
                        op_wait_timer(o, o->l->opts.retry_usec);
                        return;
                }
        if (next) {
                op_cloud(o, start_network, on_network_resolved);
                return;
        }
        o->networks_resolved = true;
        op_resolved(o);
}

static void on_image_resolved(struct lc_op *o, const struct cloud_result *res) {
        if (res->error) {
                if (error_transient(res->error) && !op_past_deadline(o)) {
                        op_wait_timer(o, o->l->opts.retry_usec);
                        return;
                }
                op_fail(o, "image %s: %s", op_group(o)->image, res_message(res));
                return;
        }
        set_string(&o->image_id, res->id);
        o->network_ids = strv_free(o->network_ids);
        o->n_network_ids = 0;
        o->networks_resolved = false;
        op_resolve_networks(o);
}

static void on_flavor_resolved(struct lc_op *o, const struct cloud_result *res) {
        if (res->error) {
                if (error_transient(res->error) && !op_past_deadline(o)) {
                        op_wait_timer(o, o->l->opts.retry_usec);
                        return;
                }
                op_fail(o, "flavor %s: %s", op_group(o)->flavor, res_message(res));
                return;
        }
        set_string(&o->flavor_id, res->id);
        op_cloud(o, start_image, on_image_resolved);
}

static void on_created(struct lc_op *o, const struct cloud_result *res) {
        if (res->error) {
                _cleanup_free_ char *why = res_describe(res);

                if (res->error == -EIO) {
                        /* Maybe created: the reconcile deletes it if it shows up. */
                        op_fail(o, "creating the instance: outcome unknown: %s", why ? why : "?");
                        return;
                }
                op_fail(o, "creating the instance: %s", why ? why : "?");
                return;
        }
        set_string(&o->instance_id, res->id);
        if (res->adopted)
                op_log(o, LOG_NOTICE, "Create reply was lost; found instance %s", res->id);
        else
                op_log(o, LOG_INFO, "Created instance %s", res->id);
        if (o->superseded) {
                /* Record the instance so the newer operation deletes it. */
                op_step(o, STEP_BUILDING);
                return;
        }
        op_step(o, STEP_BUILDING);
}

static void on_built(struct lc_op *o, const struct cloud_result *res) {
        const struct nova_server *s = res->server;

        if (res->error == -ENOENT) {
                set_string(&o->instance_id, NULL);
                op_fail(o, "instance disappeared while building");
                return;
        }
        if (res->error) {
                if (op_past_deadline(o))
                        op_fail(o, "instance not ACTIVE by the deadline (last error: %s)", res_message(res));
                else
                        op_poll_later(o);
                return;
        }
        view_set_status(o->l, o->node, s->status);
        if (strcmp(s->status, "ERROR") == 0) {
                if (s->fault && s->fault->message)
                        op_fail(o, "instance %s went to ERROR: %s", s->id, s->fault->message);
                else
                        op_fail(o, "instance %s went to ERROR", s->id);
                return;
        }
        if (strcmp(s->status, "ACTIVE") == 0 && !s->task_state) {
                if (o->kind == STATE_OP_REBOOT && o->rebuild && o->image_id && s->image_id &&
                    strcmp(s->image_id, o->image_id) != 0) {
                        if (op_past_deadline(o))
                                op_fail(o, "instance still has image %s after the rebuild", s->image_id);
                        else
                                op_poll_later(o);
                        return;
                }
                if (!s->ipv4) {
                        op_fail(o, "instance %s is ACTIVE without an IPv4 address", s->id);
                        return;
                }
                set_string(&o->address, s->ipv4);
                op_log(o, LOG_INFO, "Instance %s is ACTIVE at %s", s->id, s->ipv4);
                if (o->creating_usec && !o->active_usec) {
                        o->active_usec = now_usec();
                        histogram_observe(&o->l->stats.create_to_active,
                                                  (double) (o->active_usec - o->creating_usec) / USEC_PER_SEC);
                }
                if (o->kind == STATE_OP_REBOOT) {
                        /* a rebooted or rebuilt node is configured again (a rebuild wiped it) */
                        const struct config_group *g = op_group(o);
                        op_step(o, g && g->ssh ? STEP_CONFIGURING : STEP_REGISTERING);
                } else
                        op_step(o, STEP_ADDRESSING);
                return;
        }
        if (op_past_deadline(o)) {
                op_fail(o, "instance %s not ACTIVE by the deadline (status %s)", s->id, s->status);
                return;
        }
        op_poll_later(o);
}

static void on_addressed(struct lc_op *o, int r, const char *error) {
        if (r < 0) {
                op_log(o, LOG_WARNING, "Cannot set the node's address in Slurm: %s", error ? error : "?");
                if (op_past_deadline(o))
                        op_fail(o, "cannot set the node's address in Slurm: %s", error ? error : "?");
                else
                        op_wait_timer(o, o->l->opts.retry_usec);
                return;
        }
        /* the group may be gone after a reload: op_advance deals with that */
        op_step(o, op_group(o) && op_group(o)->ssh ? STEP_CONFIGURING : STEP_REGISTERING);
}

/* --- configuring over SSH -------------------------------------------------- */

/* How many console lines to read: enough for cloud-init's block on a long boot log. */
#define CONSOLE_LINES 5000

static int start_console(struct lc_op *o, cloud_callback_t cb, void *ud, uint64_t *id) {
        return cloud_server_console(o->l->env.cloud, o->instance_id, CONSOLE_LINES, cb, ud, id);
}

static void on_pushed(int r, const char *reason, const struct push_report *report, void *userdata) {
        struct lc_call *c = userdata;
        struct lc_op *o;

        /* Cancelled: elasticd is stopping and the lifecycle may be gone. */
        if (r != -ECANCELED && (o = call_op(c))) {
                o->wait = WAIT_NONE;
                for (char **s = report->steps; *s; s++)
                        op_log(o, LOG_DEBUG, "SSH step %s", *s);
                if (r == -EKEYREJECTED && o->kind == STATE_OP_REBOOT && !op_past_deadline(o)) {
                        /* After a rebuild the console may still end with the old
                         * image's keys until the new boot prints its own: read it
                         * again. Only keys on the console are ever accepted. */
                        const struct config_group *g = op_group(o);
                        op_log(o, LOG_WARNING, "%s; reading the console again", reason);
                        op_wait_timer(o, g && g->ssh ? (uint64_t) g->ssh->console_poll_s * USEC_PER_SEC
                                                     : o->l->opts.retry_usec);
                } else if (r < 0) {
                        op_fail(o, "configuring over SSH: %s", reason);
                } else {
                        op_log(o, LOG_INFO, "Configured over SSH in %.1f s", report->seconds);
                        op_step(o, STEP_REGISTERING);
                }
        }
        call_free(c);
}

static void op_push(struct lc_op *o, const struct config_ssh *ssh, const struct push_hostkeys *keys) {
        _cleanup_free_ struct push_file *files = calloc(ssh->n_files ? ssh->n_files : 1, sizeof(*files));
        struct lc_call *c;
        int r;

        if (!o->l->env.pusher) {
                op_fail(o, "configuring over SSH: elasticd has no SSH pusher");
                return;
        }
        c = call_new(o);
        if (!files || !c) {
                call_free(c);
                op_wait_timer(o, o->l->opts.retry_usec);
                return;
        }
        for (size_t i = 0; i < ssh->n_files; i++)
                files[i] = (struct push_file){ .src = ssh->files[i].src, .dest = ssh->files[i].dest,
                                               .mode = ssh->files[i].mode, .owner = ssh->files[i].owner,
                                               .group = ssh->files[i].group };
        r = push_start(o->l->env.pusher,
                       &(struct push_spec){ .address = o->address, .port = (uint16_t) ssh->port, .user = ssh->user,
                                            .private_key = ssh->private_key, .hostkeys = keys,
                                            .connect_timeout_usec = (uint64_t) ssh->connect_timeout_s * USEC_PER_SEC,
                                            .deadline_usec = o->deadline_usec ? o->deadline_usec
                                                                              : now_usec() + (uint64_t) o->l->config->limits.resume_timeout_s * USEC_PER_SEC,
                                            .files = files, .n_files = ssh->n_files, .commands = ssh->commands },
                       on_pushed, c);
        if (r < 0) {
                call_free(c);
                if (r == -EBUSY || r == -ENOMEM) {
                        op_log(o, LOG_WARNING, "SSH push refused (%s); retrying", strerror(-r));
                        op_wait_timer(o, o->l->opts.retry_usec);
                } else
                        op_fail(o, "configuring over SSH: %s", strerror(-r));
                return;
        }
        o->wait = WAIT_PUSH;
}

/* The console holds the host keys once cloud-init printed them. */
static void on_console(struct lc_op *o, const struct cloud_result *res) {
        const struct config_group *g = op_group(o);
        const struct config_ssh *ssh = g ? g->ssh : NULL;
        _cleanup_(push_hostkeys_freep) struct push_hostkeys *keys = NULL;
        _cleanup_free_ char *error = NULL;
        uint64_t poll;
        int r;

        if (!ssh) {
                /* reloaded meanwhile: op_advance sorts it out */
                op_advance(o);
                return;
        }
        poll = (uint64_t) ssh->console_poll_s * USEC_PER_SEC;
        if (res->error == -ENOENT) {
                set_string(&o->instance_id, NULL);
                op_fail(o, "instance disappeared while being configured");
                return;
        }
        if (res->error) {
                if (op_past_deadline(o))
                        op_fail(o, "configuring over SSH: cannot read the instance's console: %s", res_message(res));
                else
                        op_wait_timer(o, poll);
                return;
        }
        r = push_parse_console_hostkeys(res->console, &keys, &error);
        if (r == PUSH_CONSOLE_NO_KEYS) {
                if (op_past_deadline(o))
                        op_fail(o, "configuring over SSH: no SSH host keys on the instance's console by the deadline");
                else
                        op_wait_timer(o, poll);
                return;
        }
        if (r < 0) {
                op_fail(o, "configuring over SSH: %s", error ? error : strerror(-r));
                return;
        }
        op_log(o, LOG_DEBUG, "%zu host key%s on the console", keys->n, keys->n == 1 ? "" : "s");
        op_push(o, ssh, keys);
}

/* Registered: Slurm hears from slurmd again. */
static bool node_registered(const struct lc_op *o, const struct ctld_node *n) {
        uint32_t s = n->state;

        if (s & (NODE_STATE_NO_RESPOND | NODE_STATE_POWERING_UP | NODE_STATE_POWERED_DOWN))
                return false;
        if (o->kind == STATE_OP_REBOOT) {
                if (s & (NODE_STATE_REBOOT_ISSUED | NODE_STATE_REBOOT_REQUESTED))
                        return false;
                return n->boot_time >= o->started - 1;
        }
        return true;
}

static void op_check_registered(struct lc_op *o) {
        const struct ctld_node *n = ctld_nodes_find(o->l->slurm, o->node);

        if (n && node_registered(o, n)) {
                op_log(o, LOG_INFO, "slurmd registered (%s)", n->state_str);
                if (o->active_usec)
                        histogram_observe(&o->l->stats.active_to_registered,
                                                  (double) (now_usec() - o->active_usec) / USEC_PER_SEC);
                op_finish(o, true);
                return;
        }
        if (op_past_deadline(o)) {
                op_fail(o, "slurmd did not register by the deadline (Slurm state %s)",
                        n ? n->state_str : "unknown");
                return;
        }
        o->wait = WAIT_SLURM_POLL;
        request_slurm_poll(o->l);
}

/* --- suspend, resume_fail, cleanup ---------------------------------------- */

static void on_deleted(struct lc_op *o, const struct cloud_result *res);
static void on_gone_check(struct lc_op *o, const struct cloud_result *res);

static void on_found_for_delete(struct lc_op *o, const struct cloud_result *res) {
        if (res->error) {
                op_log(o, LOG_WARNING, "Cannot list the node's instances: %s", res_message(res));
                op_wait_timer(o, o->l->opts.retry_usec);
                return;
        }
        if (res->n_servers == 0) {
                /* Nothing to delete: as if confirmed gone. */
                o->step = o->step == STEP_CLEANUP ? STEP_CLEANUP_CONFIRMING : STEP_CONFIRMING;
                set_string(&o->instance_id, NULL);
                on_gone_check(o, &(struct cloud_result){ .error = -ENOENT });
                return;
        }
        /* Delete them one at a time: the first now, the rest on the next pass. */
        set_string(&o->instance_id, res->servers[0]->id);
        op_step(o, o->step);
}

static void on_deleted(struct lc_op *o, const struct cloud_result *res) {
        if (res->error) {
                _cleanup_free_ char *why = res_describe(res);

                op_log(o, LOG_WARNING, "Deleting instance %s failed: %s; retrying", o->instance_id,
                       why ? why : "?");
                op_wait_timer(o, o->l->opts.retry_usec);
                return;
        }
        o->l->stats.instances_deleted++;
        op_step(o, o->step == STEP_CLEANUP ? STEP_CLEANUP_CONFIRMING : STEP_CONFIRMING);
}

static void on_gone_check(struct lc_op *o, const struct cloud_result *res) {
        bool gone = res->error == -ENOENT ||
                    (!res->error && res->server && strcmp(res->server->status, "DELETED") == 0);

        if (!gone) {
                if (!res->error)
                        view_set_status(o->l, o->node, res->server->status);
                /* A delete Nova forgot (ERROR during delete): ask again now and then. */
                if (++o->attempts % 10 == 0) {
                        op_log(o, LOG_NOTICE, "Instance %s still exists; deleting it again", o->instance_id);
                        op_cloud(o, start_delete, on_deleted);
                        return;
                }
                op_poll_later(o);
                return;
        }
        view_set_status(o->l, o->node, NULL);
        if (o->instance_id)
                op_log(o, LOG_INFO, "Instance %s is gone", o->instance_id);
        set_string(&o->instance_id, NULL);
        set_string(&o->address, NULL);
        if (o->step == STEP_CLEANUP_CONFIRMING)
                /* A resume that found a broken instance starts over. */
                op_step(o, o->failing ? STEP_MARKING : STEP_PREPARING);
        else
                op_step(o, o->kind == STATE_OP_SUSPEND ? STEP_CLEARING : STEP_MARKING);
}

static void on_cleared(struct lc_op *o, int r, const char *error) {
        if (r < 0)
                /* Slurm resets the address itself at power-down (cloud_reg_addrs). */
                op_log(o, LOG_NOTICE, "Cannot reset the node's address in Slurm: %s", error ? error : "?");
        op_finish(o, true);
}

static void on_marked(struct lc_op *o, int r, const char *error) {
        if (r < 0 && ++o->attempts < MARK_ATTEMPTS) {
                op_log(o, LOG_WARNING, "Cannot mark the node down in Slurm: %s; retrying", error ? error : "?");
                op_wait_timer(o, o->l->opts.retry_usec);
                return;
        }
        if (r < 0)
                op_log(o, LOG_ERR, "Giving up marking the node down in Slurm: %s", error ? error : "?");
        op_finish(o, !o->failing);
}

/* --- reboot --------------------------------------------------------------- */

static bool reason_asks_reimage(const struct config *c, const char *reason) {
        if (!reason)
                return false;
        for (char **w = c->reimage_words; w && *w; w++)
                if (strcasestr(reason, *w))
                        return true;
        return false;
}

static void on_reboot_sent(struct lc_op *o, const struct cloud_result *res) {
        if (res->error) {
                _cleanup_free_ char *why = res_describe(res);

                if (error_transient(res->error) && res->error != -EBUSY && !op_past_deadline(o)) {
                        op_wait_timer(o, o->l->opts.retry_usec);
                        return;
                }
                op_fail(o, "%s: %s", o->rebuild ? "rebuilding" : "rebooting", why ? why : "?");
                return;
        }
        op_log(o, LOG_INFO, "%s instance %s", o->rebuild ? "Rebuilding" : "Rebooting", o->instance_id);
        op_step(o, STEP_BUILDING);
}

static int start_reboot(struct lc_op *o, cloud_callback_t cb, void *ud, uint64_t *id) {
        if (o->rebuild)
                return cloud_server_rebuild(o->l->env.cloud, o->instance_id, o->image_id, cb, ud, id);
        return cloud_server_reboot(o->l->env.cloud, o->instance_id, true, cb, ud, id);
}

static void on_reboot_instance(struct lc_op *o, const struct cloud_result *res) {
        const struct nova_server *s;

        if (res->error == -ENOENT || (!res->error && !res->server && res->n_servers == 0)) {
                set_string(&o->instance_id, NULL);
                free(o->note);
                o->note = strdup("no instance to reboot: the node is powered down");
                op_finish(o, true);
                return;
        }
        if (res->error) {
                op_wait_timer(o, o->l->opts.retry_usec);
                return;
        }
        s = res->server ? res->server : res->servers[0];
        set_string(&o->instance_id, s->id);
        if (!o->rebuild && o->image_id && s->image_id && s->image_id[0] &&
            strcmp(s->image_id, o->image_id) != 0) {
                op_log(o, LOG_INFO, "Instance image %s differs from the group's image %s: rebuilding",
                       s->image_id, o->image_id);
                o->rebuild = true;
        }
        op_step(o, o->rebuild ? STEP_REBUILDING : STEP_REBOOTING);
}

static void on_reboot_image(struct lc_op *o, const struct cloud_result *res) {
        if (res->error) {
                /* Without the group's image id only a plain reboot is possible. */
                op_log(o, LOG_WARNING, "Cannot resolve image %s: %s", op_group(o)->image, res_message(res));
                set_string(&o->image_id, NULL);
                if (o->rebuild) {
                        op_fail(o, "cannot rebuild: image %s: %s", op_group(o)->image, res_message(res));
                        return;
                }
        } else {
                set_string(&o->image_id, res->id);
        }
        op_cloud(o, o->instance_id ? start_show : start_list_by_name, on_reboot_instance);
}

/* --- the transition function ---------------------------------------------- */

/* Act on O's current step. Every path ends waiting for something. */
static void op_advance(struct lc_op *o) {
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
                set_string(&o->note, "the node's group is no longer configured");
                op_finish(o, false);
                return;
        }

        switch (o->step) {
        case STEP_PENDING:
                /* "running" goes into the same group commit as the first step. */
                batch_add(l, op_state_record(o, STATE_OP_RUNNING));
                l->stats.started[o->kind]++;
                switch (o->kind) {
                case STATE_OP_RESUME:
                        op_step(o, STEP_PREPARING);
                        return;
                case STATE_OP_SUSPEND:
                case STATE_OP_RESUME_FAIL:
                        op_step(o, STEP_DELETING);
                        return;
                case STATE_OP_REBOOT:
                        op_step(o, STEP_REBOOT_PREPARING);
                        return;
                default:
                        return;
                }

        case STEP_PREPARING:
                op_cloud(o, start_flavor, on_flavor_resolved);
                return;

        case STEP_CREATING:
                /* "creating" is on disk before the POST. Coming here with the
                 * ids unresolved means a restart: look before creating. */
                if (!o->flavor_id || !o->image_id || !o->networks_resolved) {
                        op_cloud(o, start_flavor, on_flavor_resolved);
                        return;
                }
                op_cloud(o, start_create, on_created);
                return;

        case STEP_BUILDING:
                if (!o->instance_id) {
                        op_fail(o, "no instance to wait for");
                        return;
                }
                op_cloud(o, start_show, on_built);
                return;

        case STEP_ADDRESSING:
                op_ctld_update(o, &(struct ctld_update){ .nodes = o->node, .addr = o->address,
                                                         .hostname = o->node },
                               on_addressed);
                return;

        case STEP_CONFIGURING:
                if (!o->instance_id || !o->address) {
                        op_fail(o, "no instance to configure");
                        return;
                }
                if (!op_group(o)->ssh) {
                        /* ssh was removed from the group by a reload */
                        op_step(o, STEP_REGISTERING);
                        return;
                }
                op_cloud(o, start_console, on_console);
                return;

        case STEP_REGISTERING:
                op_check_registered(o);
                return;

        case STEP_DELETING:
        case STEP_CLEANUP:
                if (o->instance_id)
                        op_cloud(o, start_delete, on_deleted);
                else
                        op_cloud(o, start_list_by_name, on_found_for_delete);
                return;

        case STEP_CONFIRMING:
        case STEP_CLEANUP_CONFIRMING:
                if (!o->instance_id) {
                        on_gone_check(o, &(struct cloud_result){ .error = -ENOENT });
                        return;
                }
                op_cloud(o, start_show, on_gone_check);
                return;

        case STEP_CLEARING:
                op_ctld_update(o, &(struct ctld_update){ .nodes = o->node, .addr = o->node,
                                                         .hostname = o->node },
                               on_cleared);
                return;

        case STEP_MARKING: {
                _cleanup_free_ char *reason = NULL;

                if (!o->failing && !o->note) {
                        /* resume_fail: Slurm already marked the node DOWN with its reason. */
                        op_finish(o, true);
                        return;
                }
                if (asprintf(&reason, "elasticd: %s", o->note ? o->note : "operation failed") < 0) {
                        op_wait_timer(o, l->opts.retry_usec);
                        return;
                }
                /* Slurm's reasons are short lines. */
                if (strlen(reason) > 200)
                        strcpy(reason + 197, "...");
                op_ctld_update(o, &(struct ctld_update){ .nodes = o->node, .state = NODE_STATE_DOWN,
                                                         .reason = reason },
                               on_marked);
                return;
        }

        case STEP_REBOOT_PREPARING: {
                const struct ctld_node *n;
                struct state_node *sn = state_node_find(l->env.state, o->node);
                json_t *req = sn ? state_request_record(l->env.state, sn->op.request_id) : NULL;

                /* Slurm keeps the reboot's reason ("reimage : reboot issued"). */
                if (!o->slurm_fresh) {
                        o->slurm_fresh = true;
                        o->wait = WAIT_SLURM_POLL;
                        request_slurm_poll(l);
                        return;
                }
                n = ctld_nodes_find(l->slurm, o->node);
                o->rebuild = reason_asks_reimage(l->config, json_string_value(json_object_get(req, "reason"))) ||
                             (n && reason_asks_reimage(l->config, n->reason));
                op_cloud(o, start_image, on_reboot_image);
                return;
        }

        case STEP_REBOOTING:
        case STEP_REBUILDING:
                o->rebuild = o->step == STEP_REBUILDING;
                if (o->rebuild && !o->image_id) {
                        op_cloud(o, start_image, on_reboot_image);
                        return;
                }
                op_cloud(o, start_reboot, on_reboot_sent);
                return;

        default:
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

static void on_slurm_nodes(int r, struct ctld_nodes *nodes, const char *error, void *userdata) {
        struct lifecycle *l = userdata;
        _cleanup_free_ struct lc_op **v = NULL;
        size_t n = 0;

        if (r == -ECANCELED) {
                ctld_nodes_free(nodes);
                return;
        }
        l->slurm_loading = false;
        if (r < 0) {
                log_warning("Cannot load node states from slurmctld: %s", error ? error : strerror(-r));
        } else {
                ctld_nodes_free(l->slurm);
                l->slurm = nodes;
        }

        v = ops_snapshot(l, &n);
        for (size_t i = 0; v && i < n; i++) {
                struct lc_op *o = v[i];
                /* Still there? A previous callback may have removed it. */
                if (op_find(l, o->node) != o || o->wait != WAIT_SLURM_POLL)
                        continue;
                o->wait = WAIT_NONE;
                if (r < 0 && !op_past_deadline(o)) {
                        o->wait = WAIT_SLURM_POLL;
                        continue;
                }
                op_advance(o);
        }
        if (l->slurm_wanted) {
                l->slurm_wanted = false;
                request_slurm_poll(l);
        }
}

static int on_slurm_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        struct lifecycle *l = userdata;
        int r;

        l->slurm_loading = true;
        r = ctld_load_nodes(l->env.ctld, on_slurm_nodes, l);
        if (r < 0) {
                l->slurm_loading = false;
                log_warning("Cannot queue a Slurm node load: %s", strerror(-r));
                request_slurm_poll(l);
        }
        return 0;
}

/* One load of every node serves all operations waiting on Slurm. */
static void request_slurm_poll(struct lifecycle *l) {
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
                                               l->opts.poll_usec, 100 * 1000, on_slurm_timer, l);
        }
        if (r < 0)
                log_error("Cannot arm the Slurm poll timer: %s", strerror(-r));
}

/* --- reconcile ------------------------------------------------------------ */

static int start_orphan_delete(struct lifecycle *l, const char *id, const char *node);

static bool instance_claimed(struct lifecycle *l, const struct nova_server *s, const char *node) {
        struct state_node *n = node ? state_node_find(l->env.state, node) : NULL;
        struct lc_op *o = node ? op_find(l, node) : NULL;

        if (n && n->instance_id && strcmp(n->instance_id, s->id) == 0)
                return true;
        /* A create in flight, or a lookup that will adopt it. */
        if (o && (o->step == STEP_PREPARING || o->step == STEP_CREATING || o->step == STEP_DELETING ||
                  o->step == STEP_CLEANUP))
                return true;
        if (o && o->instance_id && strcmp(o->instance_id, s->id) == 0)
                return true;
        return false;
}

static void on_reconcile_list(struct cloud *c, const struct cloud_result *res, void *userdata) {
        struct lc_call *call = userdata;
        struct lifecycle *l = call->l;
        time_t now = time(NULL);

        call_unlink(call);
        call_free(call);
        l->reconcile_running = false;
        l->stats.reconciles++;
        if (res->error) {
                note_cloud_error(l);
                log_warning("Reconcile: cannot list the cluster's instances: %s", res_message(res));
                return;
        }
        for (size_t i = 0; i < res->n_servers; i++) {
                const struct nova_server *s = res->servers[i];
                const char *node = nova_server_metadata_get(s, CLOUD_META_NODE);
                size_t group;

                if (node)
                        view_set_status(l, node, s->status);
                if (node && nodemap_lookup(l->map, node, &group) >= 0 && instance_claimed(l, s, node))
                        continue;
                if (s->created && now - s->created < (time_t) l->config->limits.orphan_grace_s)
                        continue;
                log_ctx_msg(LOG_WARNING, &(struct log_ctx){ .node = node, .instance = s->id },
                            "Reconcile: instance %s (%s) belongs to no node's operation; deleting the orphan",
                            s->id, s->name ? s->name : "?");
                if (start_orphan_delete(l, s->id, node) >= 0)
                        l->stats.orphans_deleted++;
        }
}

static void on_orphan_deleted(struct cloud *c, const struct cloud_result *res, void *userdata) {
        struct lc_call *call = userdata;

        call_unlink(call);
        if (res->error) {
                note_cloud_error(call->l);
                log_ctx_msg(LOG_WARNING, &(struct log_ctx){ .node = call->node, .instance = call->op_id },
                            "Cannot delete orphan instance: %s (next reconcile retries)", res_message(res));
        }
        call_free(call);
}

static int start_orphan_delete(struct lifecycle *l, const char *id, const char *node) {
        struct lc_call *call = call_new(NULL);
        int r;

        if (!call)
                return -ENOMEM;
        call->node = node ? strdup(node) : NULL;
        call->op_id = strdup(id); /* the instance, for the log */
        r = cloud_server_delete(l->env.cloud, id, on_orphan_deleted, call, &call->cloud_call_id);
        if (r < 0) {
                call_free(call);
                return r;
        }
        call_link(l, call);
        return 0;
}

static void reconcile_start(struct lifecycle *l) {
        struct lc_call *call;
        int r;

        if (l->reconcile_running)
                return;
        call = call_new(NULL);
        if (!call)
                return;
        call->reconcile = true;
        r = cloud_servers_list(l->env.cloud, NULL, on_reconcile_list, call, &call->cloud_call_id);
        if (r < 0) {
                log_warning("Reconcile: cannot list instances: %s", strerror(-r));
                call_free(call);
                return;
        }
        call_link(l, call);
        l->reconcile_running = true;
        /* Refresh Slurm's view for `elasticctl nodes` too. */
        request_slurm_poll(l);
}

static int on_reconcile_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        struct lifecycle *l = userdata;

        reconcile_start(l);
        sd_event_source_set_time_relative(s, (uint64_t) l->config->limits.reconcile_interval_s * USEC_PER_SEC);
        sd_event_source_set_enabled(s, SD_EVENT_ON);
        return 0;
}

/* --- scan: start what the state says must be done ------------------------- */

struct scan_ctx {
        struct lifecycle *l;
};

static struct lc_op *op_new(struct lifecycle *l, const struct state_node *n) {
        struct lc_op *o = calloc(1, sizeof(*o));
        int st;

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
        st = n->op.state == STATE_OP_PENDING ? STEP_PENDING : step_from_string(n->step);
        /* running without a step: crashed between the two records */
        o->step = st < 0 ? STEP_PENDING : (enum step) st;
        if (o->step == STEP_PENDING && n->op.state == STATE_OP_RUNNING)
                o->step = o->kind == STATE_OP_RESUME   ? STEP_PREPARING
                          : o->kind == STATE_OP_REBOOT ? STEP_REBOOT_PREPARING
                                                       : STEP_DELETING;
        /* On the failure path after a restart. */
        if (o->step == STEP_CLEANUP || o->step == STEP_CLEANUP_CONFIRMING ||
            (o->step == STEP_MARKING && o->kind != STATE_OP_RESUME_FAIL))
                o->failing = o->note != NULL;

        /* Deadlines run from the operation's creation, also across restarts. */
        if (o->kind == STATE_OP_RESUME || o->kind == STATE_OP_REBOOT) {
                time_t age = time(NULL) - o->started;
                uint64_t limit = (uint64_t) l->config->limits.resume_timeout_s * USEC_PER_SEC;
                uint64_t spent = age > 0 ? (uint64_t) age * USEC_PER_SEC : 0;

                o->deadline_usec = now_usec() + (spent < limit ? limit - spent : 0);
        }
        return o;
}

static int scan_node(const struct state_node *n, void *userdata) {
        struct scan_ctx *c = userdata;
        struct lifecycle *l = c->l;
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
        struct scan_ctx c = { .l = l };

        state_foreach_node(l->env.state, scan_node, &c);
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
                reconcile_start(l);
        }
        sd_event_source_set_enabled(l->defer, SD_EVENT_ONESHOT);
}

/* --- object --------------------------------------------------------------- */

int lifecycle_new(const struct lifecycle_env *env, const struct lifecycle_options *opts,
                  const struct config *config, const struct nodemap *map, struct lifecycle **ret) {
        _cleanup_(lifecycle_freep) struct lifecycle *l = NULL;
        int r;

        if (!env || !env->event || !env->state || !env->cloud || !env->ctld || !env->record || !config ||
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
        l->config = config;
        l->map = map;

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
                                       USEC_PER_SEC, on_reconcile_timer, l);
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
                cloud_cancel(l->env.cloud, c->cloud_call_id);
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
        ctld_nodes_free(l->slurm);
        free(l);
        return NULL;
}

void lifecycle_set_config(struct lifecycle *l, const struct config *config, const struct nodemap *map) {
        l->config = config;
        l->map = map;
}

void lifecycle_node_view(const struct lifecycle *l, const char *node, const char **ret_slurm_state,
                         const char **ret_instance_status) {
        const struct ctld_node *n = l ? ctld_nodes_find(l->slurm, node) : NULL;
        struct view key = { .node = (char *) node };
        void *p = l ? tfind(&key, &l->views, view_cmp) : NULL;

        if (ret_slurm_state)
                *ret_slurm_state = n ? n->state_str : NULL;
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
