/* ctld.h - slurmctld as elasticd sees it: node state and node updates
 * through libslurm, run on a worker thread and reported on the event loop. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <systemd/sd-event.h>

#include "util/macro.h"

/* One node as slurmctld reports it: what elasticd reads of it (40 bytes;
 * a load holds every node of the cluster). */
struct ctld_node {
        char *name;
        char *state_str;      /* e.g. "IDLE+CLOUD+POWERED_DOWN" */
        char *reason;         /* NULL when none */
        time_t boot_time;
        uint32_t state;       /* libslurm node_state: base state | flags */
};

struct ctld_nodes {
        struct ctld_node *nodes;
        size_t n;
        /* References beyond the first (0: one owner); loop thread only. A
         * load that finds nothing changed hands out the previous load again. */
        unsigned n_extra_refs;
        time_t update_time;   /* slurmctld's time of the load (changes-since) */
        /* A load's strings, all in one block (nodes' strings point into it
         * and may be shared); NULL: each node's strings are its own. */
        char *strings;
        /* Hash of the names (open addressing, slot = index + 1, 0 empty;
         * n_index a power of two), so that a lookup by name is O(1). NULL:
         * not built, ctld_nodes_find() searches linearly. */
        uint32_t *index;
        size_t n_index;
};

/* Drops one reference; the last frees. */
struct ctld_nodes *ctld_nodes_free(struct ctld_nodes *n);
struct ctld_nodes *ctld_nodes_ref(struct ctld_nodes *n);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct ctld_nodes *, ctld_nodes_free);
/* Builds (again) the name index of N after its nodes changed. */
int ctld_nodes_index(struct ctld_nodes *n);
/* The node named NAME, or NULL. */
const struct ctld_node *ctld_nodes_find(const struct ctld_nodes *n, const char *name);

/* A node update; NULL/0 fields are left alone. state is a libslurm value
 * (NODE_RESUME, NODE_STATE_DOWN, NODE_STATE_POWER_UP, ...). */
struct ctld_update {
        const char *nodes;    /* hostlist */
        const char *addr;     /* comma list as long as nodes, or one value */
        const char *hostname;
        uint32_t state;
        const char *reason;
};

/* Synchronous calls: they block, so only a worker thread may make them.
 * Errors come back as -errno-like codes with slurm's message in *ret_error. */
int ctld_load_nodes_sync(struct ctld_nodes **ret, char **ret_error);
/* Only when a node or partition changed since SINCE (an update_time of an
 * earlier load; 0: always): 1 and *ret untouched when nothing did. */
int ctld_load_nodes_since_sync(time_t since, struct ctld_nodes **ret, char **ret_error);
int ctld_update_sync(const struct ctld_update *u, char **ret_error);
int ctld_reconfigure_sync(char **ret_error);

struct ctld;

/* slurm_conf: path to slurm.conf (NULL: libslurm's default / $SLURM_CONF).
 * Calls slurm_init() once per process. */
int ctld_new(sd_event *event, const char *slurm_conf, struct ctld **ret);
struct ctld *ctld_free(struct ctld *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct ctld *, ctld_free);

/* Callbacks run on the loop. r < 0 on failure with error set (else NULL).
 * A nodes callback takes ownership of a reference to *nodes (NULL on
 * failure); nodes are read-only, as the same load may be handed to several
 * callers: a load asks only for what changed since the previous one, and
 * when nothing did, gets that one again. */
typedef void (*ctld_nodes_cb)(int r, struct ctld_nodes *nodes, const char *error, void *userdata);
typedef void (*ctld_done_cb)(int r, const char *error, void *userdata);

int ctld_load_nodes(struct ctld *c, ctld_nodes_cb cb, void *userdata);
/* The newest load any caller got (NULL: none yet), held by C until a newer
 * one replaces it: valid until the next load completes (on the loop). A
 * caller that looks nodes up here need not hold a load of its own, so that
 * at 10,000 nodes one copy (~1.4 MB) lives, not one per caller. */
const struct ctld_nodes *ctld_nodes_newest(const struct ctld *c);
/* The update is copied; u may be freed after the call. */
int ctld_update(struct ctld *c, const struct ctld_update *u, ctld_done_cb cb, void *userdata);
int ctld_reconfigure(struct ctld *c, ctld_done_cb cb, void *userdata);

/* Calls queued or running. */
unsigned ctld_pending(const struct ctld *c);

/* State helpers. */
static inline bool ctld_state_powered_down(uint32_t s) {
        return s & (1u << 12);
}
const char *ctld_state_base_name(uint32_t state);
