/* state.h - what elasticd knows: accepted requests and each node's latest operation, rebuilt from the journal. */
#pragma once

/*
 * Every change is a journal record (a JSON object with a "kind"), and the
 * in-memory state is only ever changed by state_apply() of such a record:
 * the same function replays the journal at start-up and applies a request's
 * records after they are on disk, so a restart rebuilds exactly what was
 * accepted. The records (journal/records.h builds and parses them):
 *
 *   seq        id counter floor (compaction)
 *   request    an accepted request
 *   op         a node operation, created
 *   op_state   a node operation changed state (with a note)
 *   node       the lifecycle's progress on a node: the step its operation
 *              reached, the instance it knows (null: none), why it failed
 *   lookup     a flavor, image or network name resolved to an id by the
 *              cloud (null: forgotten), so a restart need not ask again
 *   capacity   a group short of capacity until a time (doc/failures.md), or
 *              the end of that (expired, or `elasticctl group enable`)
 *   downmark   a failed node to set DOWN once Slurm powered it down (with
 *              a group: DOWN for its cooldown, resumed at its end), or done
 *
 * Rule when a hook names a node that already has an active operation:
 * the same kind again is a no-op ("already pending"); another kind
 * supersedes it: the old operation becomes "cancelled" (op_state record
 * with a note naming the new one) and the new one is created. slurmctld's
 * latest decision about a node is the one that counts (a suspend after a
 * resume means it gave up on the node, a resume after a suspend means it
 * wants the node back).
 */

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/macro.h"

enum state_op_kind {
        STATE_OP_RESUME,
        STATE_OP_SUSPEND,
        STATE_OP_RESUME_FAIL,
        STATE_OP_REBOOT,
        _STATE_OP_KIND_MAX,
};

enum state_op_state {
        STATE_OP_PENDING,   /* accepted, nothing done yet */
        STATE_OP_RUNNING,   /* the lifecycle work is acting on it */
        STATE_OP_DONE,
        STATE_OP_FAILED,
        STATE_OP_CANCELLED, /* superseded by a later request */
        _STATE_OP_STATE_MAX,
};

/* What a group names that the cloud resolves to an id. */
enum state_lookup_what {
        STATE_LOOKUP_FLAVOR,
        STATE_LOOKUP_IMAGE,
        STATE_LOOKUP_NETWORK,
        _STATE_LOOKUP_WHAT_MAX,
};

/* "flavor", "image", "network". */
const char *state_lookup_what_to_string(enum state_lookup_what w);

/* "resume", "suspend", "resume_fail", "reboot" (the request type names). */
const char *state_op_kind_to_string(enum state_op_kind k);
int state_op_kind_from_string(const char *s);
/* "pending", "running", "done", "failed", "cancelled". */
const char *state_op_state_to_string(enum state_op_state s);
int state_op_state_from_string(const char *s);
/* Pending or running: the node still has work to do. */
bool state_op_state_is_active(enum state_op_state s);

struct state_op {
        char *id;
        enum state_op_kind kind;
        enum state_op_state state;
        char *request_id;
        int64_t created;   /* unix seconds */
        int64_t changed;   /* unix seconds of the last state change */
};

struct state_node {
        char *name;
        char *group;
        struct state_op op; /* the latest operation (every node here has one) */
        /* From "node" records (the lifecycle); NULL until set. */
        char *step;         /* the step the latest operation reached */
        char *instance_id;  /* the node's instance, as far as elasticd knows */
        char *address;      /* the instance's address given to Slurm */
        char *note;         /* why the operation failed, or what it did */
        int64_t step_changed;
};

/* A name the cloud resolved, as last journalled ("lookup" records). */
struct state_lookup {
        enum state_lookup_what what;
        char *name;
        char *id;
        char *scope;        /* the cloud it is an id of; NULL if not said */
        int64_t time;       /* unix seconds it was learned */
};

/* A group short of capacity, as last journalled ("capacity" records). */
struct state_capacity {
        char *group;
        int64_t since, until;   /* unix seconds */
        unsigned failovers;
        char *reason;           /* NULL if not said */
};

/* A failed node's DOWN mark ("downmark" records). */
struct state_downmark {
        char *node;
        char *reason;
        char *group;            /* NULL: not held for a cooldown */
        int64_t time;
};

struct state;

/* ID_PREFIX: distinguishes this daemon run in ids, e.g. "3fa2". */
int state_new(const char *id_prefix, struct state **ret);
struct state *state_free(struct state *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct state *, state_free);

/* Apply one journal record. -EBADMSG with *ret_error (malloc'd) naming the
 * record and the field at fault (record_decode) when it is malformed; the
 * state is then unchanged. Records of an unknown kind are ignored (returns
 * 0) so newer journals replay. */
int state_apply(struct state *s, json_t *record, char **ret_error);

/* A fresh id "<letter>-<prefix>-<n>" (letter 'r' request, 'o' operation).
 * Ids never repeat: the counter continues past every id applied. */
int state_new_id(struct state *s, char letter, char **ret);

struct state_node *state_node_find(struct state *s, const char *name);

/* Call FN for every node, in node order (hostlist_name_compare: cl2 before cl10). FN returning
 * non-zero stops the walk. */
typedef int (*state_node_fn)(const struct state_node *n, void *userdata);
void state_foreach_node(struct state *s, state_node_fn fn, void *userdata);

size_t state_n_nodes(const struct state *s);
/* Nodes whose latest operation is in state ST. */
size_t state_n_nodes_in(const struct state *s, enum state_op_state st);
size_t state_n_requests(const struct state *s);

/* Every name resolved and not forgotten since, in the order first learned.
 * FN returning non-zero stops the walk. */
typedef int (*state_lookup_fn)(const struct state_lookup *l, void *userdata);
void state_foreach_lookup(struct state *s, state_lookup_fn fn, void *userdata);
size_t state_n_lookups(const struct state *s);
/* WHAT NAME's entry, or NULL. */
const struct state_lookup *state_lookup_find(const struct state *s, enum state_lookup_what what, const char *name);

/* The groups short of capacity (ended cooldowns are dropped when their end
 * is applied; a cooldown whose until passed unrecorded is still listed), in
 * the order they were first marked, and the DOWN marks not done, in the
 * order made. FN returning non-zero stops the walk. */
typedef int (*state_capacity_fn)(const struct state_capacity *c, void *userdata);
void state_foreach_capacity(struct state *s, state_capacity_fn fn, void *userdata);
size_t state_n_capacity(const struct state *s);
typedef int (*state_downmark_fn)(const struct state_downmark *m, void *userdata);
void state_foreach_downmark(struct state *s, state_downmark_fn fn, void *userdata);
size_t state_n_downmarks(const struct state *s);

/* The minimum node count last asked for GROUP by resize, or -ENOENT. */
int state_resize_min(const struct state *s, const char *group, unsigned *ret);

/* The records that rebuild this state (for journal compaction): the id
 * counter, requests that a node's latest operation still refers to, the
 * latest resize of each group, each node's latest operation, each
 * resolved name, each cooldown whose until has not passed yet (one that
 * ended needs no record: its DOWN marks hold its group's name) and each DOWN
 * mark not done. */
int state_live_records(struct state *s, json_t **ret_array);
/* At least as many as state_live_records() would give, in O(1). */
size_t state_live_records_max(const struct state *s);

/* Accepted request ID while an operation refers to it, parsed
 * (journal/records.h): 0, or -ENOENT. Its strings are the state's: valid
 * until the next state_apply(). */
struct record_request;
int state_request_get(struct state *s, const char *id, struct record_request *ret);
