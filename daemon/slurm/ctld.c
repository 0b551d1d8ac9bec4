/* ctld.c - libslurm node calls, made on one worker thread (libslurm RPCs
 * block, and one thread keeps calls to slurmctld ordered). */
#include "slurm/ctld.h"

#include <assert.h>
#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <slurm/slurm.h>
#include <slurm/slurm_errno.h>

#include "util/hostlist.h"
#include "util/strv.h"
#include "util/urlredact.h"
#include "util/worker.h"

/* Exported by libslurm 22.05 but not declared in its headers. The string is
 * xmalloc'd: release it with slurm_xfree, never free(). */
extern char *slurm_node_state_string_complete(uint32_t inx);
extern void slurm_xfree(void **item);

/* Nodes an update's error message expands (to name them cut to a log line). */
#define CTLD_MESSAGE_NODES_MAX (1u << 22)

/* How many calls may wait for the worker before callers get -EBUSY. */
#define CTLD_MAX_QUEUED 4096

/* slurmctld does not bump its node update time for every change: power
 * saving moves a node from POWERING_DOWN to POWERED_DOWN without it, so a
 * changes-since load would answer "no change" for ever. A load is a full one
 * when the last full load is older than this while the newest load shows a
 * node powering up or down, and older than the second otherwise (a full load
 * of 10,000 nodes costs 65-80 ms of CPU: every 20 s was 0.2 s a minute idle). */
#define CTLD_FULL_LOAD_EVERY_USEC (20 * 1000000ULL)
#define CTLD_FULL_LOAD_IDLE_USEC (300 * 1000000ULL)

#define CTLD_STATE_IN_POWER_TRANSITION \
        (NODE_STATE_POWER_DOWN | NODE_STATE_POWERING_DOWN | NODE_STATE_POWER_UP | NODE_STATE_POWERING_UP)

struct ctld {
        struct worker_pool *pool;
        struct ctld_nodes *last;   /* the newest load, for changes-since */
        bool last_in_transition;   /* ... shows a node powering up or down */
        uint64_t last_full_usec;   /* CLOCK_MONOTONIC when the newest full load was asked for */
};

static bool nodes_in_power_transition(const struct ctld_nodes *ns) {
        for (size_t i = 0; ns && i < ns->n; i++)
                if (ns->nodes[i].state & CTLD_STATE_IN_POWER_TRANSITION)
                        return true;
        return false;
}

static uint64_t monotonic_usec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000ULL + (uint64_t) ts.tv_nsec / 1000;
}

static char *strdup_or_null(const char *s) {
        return s ? strdup(s) : NULL;
}

static int slurm_error(const char *what, char **ret_error) {
        int e = slurm_get_errno();
        char *msg = NULL;

        if (asprintf(&msg, "%s: %s", what, slurm_strerror(e)) < 0)
                msg = NULL;
        if (ret_error)
                *ret_error = msg;
        else
                free(msg);
        /* Slurm's own codes are not errnos; keep a plain errno when it is one. */
        return e > 0 && e < 1000 ? -e : -EIO;
}

struct ctld_nodes *ctld_nodes_ref(struct ctld_nodes *n) {
        if (n)
                n->n_extra_refs++;
        return n;
}

struct ctld_nodes *ctld_nodes_free(struct ctld_nodes *n) {
        if (!n)
                return NULL;
        if (n->n_extra_refs > 0) {
                n->n_extra_refs--;
                return NULL;
        }
        for (size_t i = 0; !n->strings && i < n->n; i++) {
                struct ctld_node *x = &n->nodes[i];
                free(x->name);
                free(x->state_str);
                free(x->reason);
        }
        free(n->strings);
        free(n->nodes);
        free(n->index);
        free(n);
        return NULL;
}

static size_t name_hash(const char *s) {
        uint64_t h = 1469598103934665603ULL;   /* FNV-1a */

        for (; *s; s++)
                h = (h ^ (unsigned char) *s) * 1099511628211ULL;
        return (size_t) h;
}

int ctld_nodes_index(struct ctld_nodes *n) {
        size_t size = 16;
        uint32_t *index;

        if (n->n >= UINT32_MAX / 2)
                return -E2BIG;
        while (size < n->n * 2)
                size *= 2;
        index = calloc(size, sizeof(*index));
        if (!index)
                return -ENOMEM;
        for (size_t i = 0; i < n->n; i++) {
                size_t k = name_hash(n->nodes[i].name) & (size - 1);

                while (index[k] != 0)
                        k = (k + 1) & (size - 1);
                index[k] = (uint32_t) i + 1;
        }
        free(n->index);
        n->index = index;
        n->n_index = size;
        return 0;
}

const struct ctld_node *ctld_nodes_find(const struct ctld_nodes *n, const char *name) {
        if (!n || !name)
                return NULL;
        if (n->index) {
                for (size_t k = name_hash(name) & (n->n_index - 1); n->index[k] != 0; k = (k + 1) & (n->n_index - 1))
                        if (strcmp(n->nodes[n->index[k] - 1].name, name) == 0)
                                return &n->nodes[n->index[k] - 1];
                return NULL;
        }
        for (size_t i = 0; i < n->n; i++)
                if (strcmp(n->nodes[i].name, name) == 0)
                        return &n->nodes[i];
        return NULL;
}

const char *ctld_state_base_name(uint32_t state) {
        switch (state & NODE_STATE_BASE) {
        case NODE_STATE_DOWN:
                return "DOWN";
        case NODE_STATE_IDLE:
                return "IDLE";
        case NODE_STATE_ALLOCATED:
                return "ALLOCATED";
        case NODE_STATE_MIXED:
                return "MIXED";
        case NODE_STATE_FUTURE:
                return "FUTURE";
        default:
                return "UNKNOWN";
        }
}

/* Copy S to *P and move past it. */
static char *put(char **p, const char *s) {
        char *r = *p;
        size_t len = strlen(s) + 1;

        memcpy(r, s, len);
        *p += len;
        return r;
}

int ctld_load_nodes_since_sync(time_t since, struct ctld_nodes **ret, char **ret_error) {
        node_info_msg_t *msg = NULL;
        struct ctld_nodes *n = NULL;
        char **states = NULL, *p, *prev_state = NULL;
        size_t total = 0;

        /* SHOW_ALL: nodes of hidden partitions too; cloud nodes need PrivateData=cloud. */
        if (slurm_load_node(since, &msg, SHOW_ALL) != SLURM_SUCCESS) {
                if (since > 0 && slurm_get_errno() == SLURM_NO_CHANGE_IN_DATA)
                        return 1;
                return slurm_error("loading nodes from slurmctld", ret_error);
        }

        n = calloc(1, sizeof(*n));
        if (!n)
                goto oom;
        n->update_time = msg->last_update;
        n->nodes = calloc(msg->record_count ? msg->record_count : 1, sizeof(*n->nodes));
        states = calloc(msg->record_count ? msg->record_count : 1, sizeof(*states));
        if (!n->nodes || !states)
                goto oom;

        /* Every string of the load in one block, a state string shared with
         * the node before when equal: at 10,000 nodes, a sixth of the
         * allocations. */
        for (uint32_t i = 0; i < msg->record_count; i++) {
                node_info_t *ni = &msg->node_array[i];
                const char *st;

                if (!ni->name)
                        continue;
                states[i] = slurm_node_state_string_complete(ni->node_state);
                st = states[i] ? states[i] : "UNKNOWN";
                total += strlen(ni->name) + 1 + (ni->reason && ni->reason[0] ? strlen(ni->reason) + 1 : 0);
                if (!prev_state || strcmp(prev_state, st) != 0)
                        total += strlen(st) + 1;
                prev_state = (char *) st;
        }
        prev_state = NULL;
        n->strings = p = malloc(total ? total : 1);
        if (!p)
                goto oom;
        for (uint32_t i = 0; i < msg->record_count; i++) {
                node_info_t *ni = &msg->node_array[i];
                const char *st = states[i] ? states[i] : "UNKNOWN";
                struct ctld_node *x;

                if (!ni->name)
                        continue;
                x = &n->nodes[n->n++];
                x->name = put(&p, ni->name);
                x->state = ni->node_state;
                x->state_str = prev_state && strcmp(prev_state, st) == 0 ? prev_state : (prev_state = put(&p, st));
                x->reason = ni->reason && ni->reason[0] ? put(&p, ni->reason) : NULL;
                x->boot_time = ni->boot_time;
        }
        assert((size_t) (p - n->strings) <= total);
        for (uint32_t i = 0; i < msg->record_count; i++)
                slurm_xfree((void **) &states[i]);
        states = mfree(states);
        slurm_free_node_info_msg(msg);
        /* libslurm's copy of every node is freed: give its pages back (at
         * 10,000 nodes several MB stay in this thread's arena otherwise). */
        malloc_trim(0);
        /* Built here, on the worker: lookups on the loop are O(1). */
        if (ctld_nodes_index(n) < 0) {
                ctld_nodes_free(n);
                return -ENOMEM;
        }
        *ret = n;
        return 0;
oom:
        for (uint32_t i = 0; states && i < msg->record_count; i++)
                slurm_xfree((void **) &states[i]);
        free(states);
        slurm_free_node_info_msg(msg);
        ctld_nodes_free(n);
        return -ENOMEM;
}

int ctld_load_nodes_sync(struct ctld_nodes **ret, char **ret_error) {
        return ctld_load_nodes_since_sync(0, ret, ret_error);
}

int ctld_update_sync(const struct ctld_update *u, char **ret_error) {
        update_node_msg_t m;
        _cleanup_free_ char *reason = NULL, *msg = NULL;
        _cleanup_(strv_freep) char **names = NULL;
        size_t n = 0;
        int e;

        if (!u || !u->nodes)
                return -EINVAL;

        /* A reason often quotes a cloud's error: no URL's password or token
         * reaches Slurm (scontrol show node, sinfo -R, slurmctld's log). */
        if (u->reason && strstr(u->reason, "://")) {
                size_t size = 2 * strlen(u->reason) + 2;
                reason = malloc(size);
                if (!reason)
                        return -ENOMEM;
                urlredact(u->reason, reason, size);
        }
        slurm_init_update_node_msg(&m);
        /* libslurm's field types are not const; it does not modify them. */
        m.node_names = (char *) u->nodes;
        m.node_addr = (char *) u->addr;
        m.node_hostname = (char *) u->hostname;
        m.reason = reason ? reason : (char *) u->reason;
        if (u->state)
                m.node_state = u->state;
        if (slurm_update_node(&m) == SLURM_SUCCESS)
                return 0;
        e = slurm_get_errno();
        /* What went wrong first, then the nodes, cut between nodes. */
        if (hostlist_expand(u->nodes, CTLD_MESSAGE_NODES_MAX, &names, &n, NULL) < 0 ||
            hostlist_message(&msg, HOSTLIST_MESSAGE_MAX, names, n, "%s, updating %zu node%s", slurm_strerror(e),
                             HOSTLIST_NODES(n)) < 0)
                msg = NULL;
        if (ret_error) {
                if (!msg && asprintf(&msg, "%s, updating nodes %s", slurm_strerror(e), u->nodes) < 0)
                        msg = NULL;
                *ret_error = TAKE_PTR(msg);
        }
        return e > 0 && e < 1000 ? -e : -EIO;
}

int ctld_reconfigure_sync(char **ret_error) {
        if (slurm_reconfigure() == SLURM_SUCCESS)
                return 0;
        return slurm_error("asking slurmctld to reconfigure", ret_error);
}

/* One asynchronous call: what to do on the worker, and its outcome. */
enum ctld_call_kind {
        CALL_LOAD_NODES,
        CALL_UPDATE,
        CALL_RECONFIGURE,
};

struct ctld_call {
        struct ctld *ctld;
        enum ctld_call_kind kind;
        time_t since;
        char *nodes, *addr, *hostname, *reason;
        uint32_t state;
        int r;
        char *error;
        struct ctld_nodes *result;
        ctld_nodes_cb nodes_cb;
        ctld_done_cb done_cb;
        void *userdata;
};

static struct ctld_call *call_free(struct ctld_call *c) {
        if (!c)
                return NULL;
        free(c->nodes);
        free(c->addr);
        free(c->hostname);
        free(c->reason);
        free(c->error);
        ctld_nodes_free(c->result);
        free(c);
        return NULL;
}

static void call_run(void *userdata) {
        struct ctld_call *c = userdata;

        switch (c->kind) {
        case CALL_LOAD_NODES:
                c->r = ctld_load_nodes_since_sync(c->since, &c->result, &c->error);
                break;
        case CALL_UPDATE:
                c->r = ctld_update_sync(&(struct ctld_update){ .nodes = c->nodes, .addr = c->addr,
                                                               .hostname = c->hostname,
                                                               .state = c->state, .reason = c->reason },
                                        &c->error);
                break;
        case CALL_RECONFIGURE:
                c->r = ctld_reconfigure_sync(&c->error);
                break;
        }
}

static void call_done(void *userdata, bool cancelled) {
        struct ctld_call *c = userdata;

        if (cancelled) {
                c->r = -ECANCELED;
                free(c->error);
                c->error = strdup("cancelled: elasticd is stopping");
        }
        if (c->kind == CALL_LOAD_NODES) {
                struct ctld_nodes *n;
                bool replaced = false;

                /* Calls run in order on one thread: the newest load done is c->ctld->last. */
                if (c->r == 1 && c->ctld->last && c->ctld->last->update_time == c->since)
                        c->result = ctld_nodes_ref(c->ctld->last);
                else if (c->r == 1) {
                        c->r = -ESTALE;
                        free(c->error);
                        c->error = strdup("slurmctld's nodes unchanged since a load elasticd no longer holds");
                }
                if (c->r == 0 || c->r == 1) {
                        c->r = 0;
                        if (c->ctld->last != c->result) {
                                ctld_nodes_free(c->ctld->last);
                                c->ctld->last = ctld_nodes_ref(c->result);
                                c->ctld->last_in_transition = nodes_in_power_transition(c->result);
                                replaced = true;
                        }
                }
                n = TAKE_PTR(c->result);
                c->nodes_cb(c->r, n, c->r < 0 ? c->error : NULL, c->userdata);
                /* The callback let go of the load before: its pages, freed
                 * after the worker's trim, go back now (about 1 ms at 10,000
                 * nodes); else they stay resident until the next full load
                 * and the worker's arena swings by ~6 MB from load to load. */
                if (replaced)
                        malloc_trim(0);
        } else if (c->done_cb) {
                c->done_cb(c->r, c->r < 0 ? c->error : NULL, c->userdata);
        }
        call_free(c);
}

static int call_submit(struct ctld *ctl, struct ctld_call *c) {
        int r = worker_pool_submit(ctl->pool, call_run, call_done, c);
        if (r < 0)
                call_free(c);
        return r;
}

int ctld_new(sd_event *event, const char *slurm_conf, struct ctld **ret) {
        static bool initialised;
        struct ctld *c;
        int r;

        if (!initialised) {
                /* libslurm retries a missing slurm.conf for a minute, then exits. */
                const char *path = slurm_conf ? slurm_conf : getenv("SLURM_CONF");
                if (path && access(path, R_OK) < 0)
                        return negative_errno();
                slurm_init(slurm_conf);
                initialised = true;
        }
        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        r = worker_pool_new(event, "slurmctld", 1, CTLD_MAX_QUEUED, &c->pool);
        if (r < 0) {
                free(c);
                return r;
        }
        *ret = c;
        return 0;
}

struct ctld *ctld_free(struct ctld *c) {
        if (!c)
                return NULL;
        worker_pool_free(c->pool);
        ctld_nodes_free(c->last);
        free(c);
        return NULL;
}

const struct ctld_nodes *ctld_nodes_newest(const struct ctld *c) {
        return c ? c->last : NULL;
}

unsigned ctld_pending(const struct ctld *c) {
        return c ? worker_pool_pending(c->pool) : 0;
}

int ctld_load_nodes(struct ctld *ctl, ctld_nodes_cb cb, void *userdata) {
        struct ctld_call *c;
        uint64_t now;

        if (!ctl || !cb)
                return -EINVAL;
        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->kind = CALL_LOAD_NODES;
        c->ctld = ctl;
        /* Changes-since: slurmctld answers "no change" in a few bytes
         * instead of packing every node again (but see CTLD_FULL_LOAD_EVERY_USEC). */
        now = monotonic_usec();
        if (ctl->last && now - ctl->last_full_usec <
                                 (ctl->last_in_transition ? CTLD_FULL_LOAD_EVERY_USEC : CTLD_FULL_LOAD_IDLE_USEC))
                c->since = ctl->last->update_time;
        else {
                c->since = 0;
                ctl->last_full_usec = now;
        }
        c->nodes_cb = cb;
        c->userdata = userdata;
        return call_submit(ctl, c);
}

int ctld_update(struct ctld *ctl, const struct ctld_update *u, ctld_done_cb cb, void *userdata) {
        struct ctld_call *c;

        if (!ctl || !u || !u->nodes)
                return -EINVAL;
        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->kind = CALL_UPDATE;
        c->nodes = strdup(u->nodes);
        c->addr = strdup_or_null(u->addr);
        c->hostname = strdup_or_null(u->hostname);
        c->reason = strdup_or_null(u->reason);
        c->state = u->state;
        c->done_cb = cb;
        c->userdata = userdata;
        if (!c->nodes || (u->addr && !c->addr) || (u->hostname && !c->hostname) ||
            (u->reason && !c->reason)) {
                call_free(c);
                return -ENOMEM;
        }
        return call_submit(ctl, c);
}

int ctld_reconfigure(struct ctld *ctl, ctld_done_cb cb, void *userdata) {
        struct ctld_call *c;

        if (!ctl)
                return -EINVAL;
        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->kind = CALL_RECONFIGURE;
        c->done_cb = cb;
        c->userdata = userdata;
        return call_submit(ctl, c);
}
