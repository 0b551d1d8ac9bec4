/* op.h - the node operation as the files of ops/ share it: its steps, the
 * lifecycle that holds every operation, and the helpers each kind's
 * transition function (resume.c, teardown.c, reboot.c) is built from. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "ops/lifecycle.h"
#include "ops/ports.h"
#include "util/log.h"

#define USEC_PER_SEC 1000000ULL

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

const char *step_to_string(enum step s);
int step_from_string(const char *s);

/* What an operation is waiting for: at most one thing at a time. */
enum wait {
        WAIT_NONE,
        WAIT_CLOUD,
        WAIT_CTLD,
        WAIT_TIMER,
        WAIT_SLURM_POLL,         /* the next shared load of Slurm's nodes */
        WAIT_JOURNAL,            /* its record is in the next group commit */
        WAIT_PUSH,               /* an SSH push */
};

struct lc_op {
        struct lifecycle *l;
        /* The config it started under (a reference: a reload never changes
         * or removes what a running operation uses) and its group there;
         * NULL: the group was not configured when it started. */
        struct config *config;
        const struct config_group *grp;
        char *id;
        char *node;
        char *group;
        enum state_op_kind kind;
        enum step step;
        enum wait wait;
        bool failing;            /* on the failure path; note says why */
        bool capacity;           /* ... because the cloud has no room: failover, not DOWN */
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
        bool relooked;           /* resume: a create refused naming an id had them looked up again */
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
        uint64_t slurm_after;    /* WAIT_SLURM_POLL: only a load started after load number this will do */
        uint64_t creating_usec;  /* resume: CLOCK_MONOTONIC when creating began (metrics); 0: not seen */
        uint64_t active_usec;    /* ... and when the instance was ACTIVE */
};

/* A pending cloud, Slurm or push call: which operation (by node and id) it is for. */
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
        time_t reconcile_started;        /* wall clock: when the running (or last) list was asked for */
        bool slurm_loading;
        bool slurm_wanted;
        uint64_t slurm_loads;            /* loads of Slurm's nodes started; the one in flight is the last */
        bool started;
        struct ops_slurm_nodes *slurm;   /* the last load of Slurm's nodes; with the port's
                                          * newest, only while its callback runs */
        void *views;                     /* tsearch tree of struct view *, by node */
        struct lifecycle_stats stats;
        struct capacity *capacity;       /* groups short of capacity (failover.c) */
        struct downmark *downmarks;      /* failed nodes to set DOWN once Slurm powered them down */
        sd_event_source *cooldown_timer; /* CLOCK_REALTIME: the first end of a cooldown nodes wait for */
        uint64_t slurm_loads_done;       /* loads of Slurm's nodes that came back */
        uint64_t error_minutes[60];      /* cloud errors per minute, ring */
        uint64_t error_minute_stamp[60];
};

/* --- core.c ---------------------------------------------------------------- */

uint64_t now_usec(void);
void set_string(char **field, const char *value);
struct lc_op *op_find(struct lifecycle *l, const char *node);
const struct log_ctx *op_ctx(const struct lc_op *o, struct log_ctx *buf);

#define op_log(o, level, ...)                                                  \
        do {                                                                   \
                struct log_ctx _c;                                             \
                log_ctx_msg((level), op_ctx((o), &_c), __VA_ARGS__);           \
        } while (0)

/* The last Nova status seen of NODE's instance (NULL: none), for `nodes`. */
void view_set_status(struct lifecycle *l, const char *node, const char *status);
void note_cloud_error(struct lifecycle *l);

/* Calls: a struct that starts with a struct lc_call, for O (NULL: the
 * lifecycle's own). */
void *call_new_sized(struct lc_op *o, size_t size);
struct lc_call *call_new(struct lc_op *o);
void call_link(struct lifecycle *l, struct lc_call *c);
void call_unlink(struct lc_call *c);
void call_free(struct lc_call *c);
/* The operation a completion is for, or NULL when it moved on. */
struct lc_op *call_op(struct lc_call *c);

/* Journal R with the next group commit (not tied to an operation: a
 * failure to write it is logged, not retried). */
struct record;
void lifecycle_journal(struct lifecycle *l, const struct record *r);
/* Record that O reached STEP; it acts on the step once that is on disk. */
void op_step(struct lc_op *o, enum step step);
/* The operation ended: journal it; then count it and let a newer one start. */
void op_finish(struct lc_op *o, bool ok);
void op_wait_timer(struct lc_op *o, uint64_t usec);
/* Poll again, a little later each time. */
void op_poll_later(struct lc_op *o);
bool op_past_deadline(const struct lc_op *o);
/* Take the failure path: delete the instance, mark the node DOWN. */
void op_fail(struct lc_op *o, const char *fmt, ...) _printf_(2, 3);
/* O's group as it was when O started, or NULL when it was not configured then. */
const struct config_group *op_group(const struct lc_op *o);

/* Start a cloud call for O; on a refusal (busy, no memory) retry later. */
typedef int (*op_cloud_start_fn)(struct lc_op *o, ops_cloud_done_fn cb, void *userdata, uint64_t *ret_id);
typedef void (*op_cloud_fn)(struct lc_op *o, const struct ops_cloud_result *res);
void op_cloud(struct lc_op *o, op_cloud_start_fn start, op_cloud_fn fn);
const char *res_message(const struct ops_cloud_result *res);
/* "HTTP 403: Quota exceeded ... (request req-...)" */
char *res_describe(const struct ops_cloud_result *res);
/* Errors worth another try: the cloud or the network, not our request. */
bool error_transient(int e);

typedef void (*op_slurm_fn)(struct lc_op *o, int r, const char *error);
void op_slurm_update(struct lc_op *o, const struct ops_slurm_update *u, op_slurm_fn fn);
/* Wait for a load of Slurm's nodes that starts after now (a load already
 * in flight may predate what O must see, e.g. a reboot's reason), then
 * advance. */
void op_wait_slurm(struct lc_op *o);
/* NODE in the last load; false when unknown. */
/* The load lookups use: the one being handed out, else the port's newest;
 * NULL before the first. */
const struct ops_slurm_nodes *lifecycle_slurm_nodes(const struct lifecycle *l);
bool lifecycle_slurm_node(const struct lifecycle *l, const char *node, struct ops_slurm_node *ret);
void request_slurm_poll(struct lifecycle *l);

/* Act on O's current step. Every path ends waiting for something. */
void op_advance(struct lc_op *o);

/* Shared cloud starts. */
int op_start_show(struct lc_op *o, ops_cloud_done_fn cb, void *ud, uint64_t *id);
int op_start_list_by_name(struct lc_op *o, ops_cloud_done_fn cb, void *ud, uint64_t *id);
int op_start_delete(struct lc_op *o, ops_cloud_done_fn cb, void *ud, uint64_t *id);
int op_start_image(struct lc_op *o, ops_cloud_done_fn cb, void *ud, uint64_t *id);

/* --- each kind's transition function ---------------------------------------- */

/* resume.c: preparing ... registering. The steps after the instance is up
 * (building, configuring, registering) serve reboot too. */
void resume_advance(struct lc_op *o);
void op_wait_active(struct lc_op *o);
void op_configure(struct lc_op *o);
void op_check_registered(struct lc_op *o);

/* teardown.c: suspend and resume_fail (deleting, confirming, clearing,
 * marking), and every kind's failure path (cleanup, cleanup_confirming,
 * marking). */
void teardown_advance(struct lc_op *o);

/* reboot.c: reboot_preparing, rebooting | rebuilding, then as resume. */
void reboot_advance(struct lc_op *o);

/* reconcile.c */
void reconcile_start(struct lifecycle *l);
int reconcile_on_timer(sd_event_source *s, uint64_t usec, void *userdata);

/* --- failover.c ------------------------------------------------------------- */

/* The class of a cloud failure (doc/failures.md), or of a build fault (error 0). */
enum ops_failure op_classify(const struct lifecycle *l, int error, long http_status, const char *message);
/* The cloud has no room for O's group: mark the group short of capacity and
 * fail O over (its node powered down, its job requeued), not DOWN. */
void op_fail_capacity(struct lc_op *o, const char *why);
/* O's group is short of capacity: fail O over at once, without calling the
 * cloud, and return true. */
bool op_fail_over_if_short(struct lc_op *o);
/* A failed node: POWER_DOWN_FORCE (its job requeued) with REASON, then DOWN
 * with REASON once Slurm powered it down, so that `scontrol update
 * state=resume` brings it back on a fresh instance; with CAPACITY, DOWN only
 * until its group's cooldown ends. The mark is journalled ("downmark").
 * FN (may be NULL) is called with the first update's result. */
void node_fail_power_down(struct lifecycle *l, struct lc_op *o, const char *node, const char *reason, bool capacity,
                          op_slurm_fn fn);
/* Journal the cooldowns' changes (lifecycle_new). */
void failover_init(struct lifecycle *l);
/* The cooldowns and DOWN marks the journal holds, back in memory (at the
 * first kick, before the operations are scanned). */
void failover_restore(struct lifecycle *l);
/* After each load of Slurm's nodes: the DOWN marks that are due. */
void downmarks_check(struct lifecycle *l);
void downmarks_free(struct lifecycle *l);
/* A failed node waiting to be powered down and set DOWN. */
bool downmark_pending(const struct lifecycle *l, const char *node);
