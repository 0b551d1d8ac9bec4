/* ports.h - what ops asks of the cloud, of Slurm and of the SSH pusher: three
 * tables of functions, implemented over cloud/, slurm/ and push/ by
 * ops/adapters.c and faked by tests/unit/test-ops.c. */
#pragma once

/*
 * Every asynchronous call returns 0 and calls its callback exactly once,
 * later, from the event loop (never from inside the call); or returns a
 * negative errno and never calls it (-EBUSY, -ENOMEM: try again later).
 * What a callback is given is valid during the callback only.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "conf/config.h"

/* --- cloud ----------------------------------------------------------------- */

/* An instance as ops needs to see it. */
struct ops_server {
        const char *id;
        const char *name;
        const char *status;          /* "BUILD", "ACTIVE", "ERROR", "DELETED", ...; NULL unknown */
        const char *task_state;      /* NULL when none */
        const char *image_id;        /* "" for a volume-booted instance, NULL if unknown */
        const char *ipv4;            /* first fixed IPv4, or NULL */
        const char *fault;           /* the fault's message in ERROR, else NULL */
        const char *node;            /* its elasticd_node metadata, or NULL */
        time_t created;              /* 0 if unknown */
};

/* error: 0 or a negative errno as cloud.h's struct cloud_result documents
 * (-ENOENT not found, -EIO a create whose outcome is unknown, ...). */
struct ops_cloud_result {
        int error;
        long http_status;            /* 0: no HTTP answer */
        const char *message;         /* the cloud's (or the client's) one-line message, or NULL */
        const char *request_id;      /* or NULL */
        const char *id;              /* create: instance id; resolve: flavor/image/network id */
        bool adopted;                /* create: the instance of an unclear POST was found */
        const struct ops_server *server;   /* show */
        const struct ops_server *servers;  /* list */
        size_t n_servers;
        const char *console;         /* console: its text */
};

typedef void (*ops_cloud_done_fn)(const struct ops_cloud_result *res, void *userdata);

/* What a failure means (doc/failures.md). */
enum ops_failure {
        OPS_FAILURE_TRANSIENT,       /* passing weather: the call retried it until its deadline */
        OPS_FAILURE_CAPACITY,        /* no room in the cloud: fail over */
        OPS_FAILURE_PERMANENT,       /* the request or the configuration is wrong */
};

/* An instance to create. The adapter adds the cluster's tag and the
 * elasticd_cluster, elasticd_node (= name) and elasticd_op metadata. */
struct ops_create {
        const char *cluster;
        const char *name;            /* the node */
        const char *op_id;
        const char *flavor_id;
        const char *image_id;
        const char *const *networks; /* ids, or one of "none", "auto"; NULL-terminated */
        const char *const *security_groups;
        const char *key_name;
        const struct config_kv *metadata;  /* the group's own */
        size_t n_metadata;
        const void *user_data;
        size_t user_data_len;
        bool config_drive;
        const char *availability_zone;
};

struct ops_cloud_port {
        void *impl;
        int (*flavor_resolve)(void *impl, const char *name_or_id, ops_cloud_done_fn cb, void *userdata,
                              uint64_t *ret_call_id);
        int (*image_resolve)(void *impl, const char *name_or_id, ops_cloud_done_fn cb, void *userdata,
                             uint64_t *ret_call_id);
        int (*network_resolve)(void *impl, const char *name_or_id, ops_cloud_done_fn cb, void *userdata,
                               uint64_t *ret_call_id);
        /* A network entry Nova takes as it is (a uuid, "none", "auto"): no lookup. */
        bool (*network_is_literal)(const char *name_or_id);
        int (*server_create)(void *impl, const struct ops_create *spec, ops_cloud_done_fn cb, void *userdata,
                             uint64_t *ret_call_id);
        int (*server_show)(void *impl, const char *id, ops_cloud_done_fn cb, void *userdata,
                           uint64_t *ret_call_id);
        /* This cluster's instances; NAME (if not NULL) keeps those with exactly that name. */
        int (*servers_list)(void *impl, const char *name, ops_cloud_done_fn cb, void *userdata,
                            uint64_t *ret_call_id);
        int (*server_delete)(void *impl, const char *id, ops_cloud_done_fn cb, void *userdata,
                             uint64_t *ret_call_id);
        int (*server_reboot)(void *impl, const char *id, bool hard, ops_cloud_done_fn cb, void *userdata,
                             uint64_t *ret_call_id);
        int (*server_rebuild)(void *impl, const char *id, const char *image_id, ops_cloud_done_fn cb,
                              void *userdata, uint64_t *ret_call_id);
        /* The last LINES lines of the console in res->console. */
        int (*server_console)(void *impl, const char *id, unsigned lines, ops_cloud_done_fn cb, void *userdata,
                              uint64_t *ret_call_id);
        /* Stop a call whose callback has not run yet: it will not be called. */
        void (*cancel)(void *impl, uint64_t call_id);
        /* Optional. Retry the call's transient failures until DEADLINE
         * (CLOCK_MONOTONIC usec), the operation's, instead of the client's default. */
        void (*set_deadline)(void *impl, uint64_t call_id, uint64_t deadline_usec);
        /* Optional (NULL: error_transient() decides, nothing is capacity).
         * The class of a call's failure; ERROR 0 with MESSAGE: a server's
         * build fault. */
        enum ops_failure (*classify)(int error, long http_status, const char *message);
};

/* --- Slurm ----------------------------------------------------------------- */

/* A node as slurmctld last reported it. */
struct ops_slurm_node {
        const char *state;           /* e.g. "IDLE+CLOUD+POWERED_DOWN" */
        const char *reason;          /* NULL when none */
        time_t boot_time;
        bool down;                   /* base state DOWN */
        bool not_responding;
        bool powered_down;
        bool powering_up;
        bool powering_down;
        bool power_up;               /* POWER_UP requested */
        bool power_down;             /* POWER_DOWN requested */
        bool reboot_pending;         /* REBOOT_REQUESTED or REBOOT_ISSUED */
};

/* One load of every node, owned by whoever the load callback gave it to. */
struct ops_slurm_nodes;

enum ops_slurm_set {
        OPS_SLURM_KEEP,              /* leave the state alone */
        OPS_SLURM_DOWN,
        OPS_SLURM_POWER_UP,
        OPS_SLURM_POWER_DOWN_ASAP,   /* drain, then power down */
        OPS_SLURM_POWER_DOWN_FORCE,  /* requeue its jobs and power down now (a failed node) */
        OPS_SLURM_RESUME,            /* DOWN or DRAIN back to usable */
};

struct ops_slurm_update {
        const char *nodes;           /* hostlist */
        const char *addr;            /* NULL: leave */
        const char *hostname;        /* NULL: leave */
        enum ops_slurm_set state;
        const char *reason;          /* NULL: none */
};

/* r < 0 on failure with ERROR set; -ECANCELED: elasticd is stopping and the
 * caller may be gone. A load callback owns NODES (NULL on failure). */
typedef void (*ops_slurm_nodes_fn)(int r, struct ops_slurm_nodes *nodes, const char *error, void *userdata);
typedef void (*ops_slurm_done_fn)(int r, const char *error, void *userdata);

struct ops_slurm_port {
        void *impl;
        int (*load_nodes)(void *impl, ops_slurm_nodes_fn cb, void *userdata);
        /* NAME in NODES (NULL: none loaded): true with *ret filled, valid while NODES is. */
        bool (*node_find)(const struct ops_slurm_nodes *nodes, const char *name, struct ops_slurm_node *ret);
        void (*nodes_free)(struct ops_slurm_nodes *nodes);
        /* Optional: the newest load any caller got (NULL: none yet), valid
         * until the next load completes. With it, callers look nodes up there
         * between their loads instead of each holding a load of its own. */
        const struct ops_slurm_nodes *(*newest)(void *impl);
        /* U is copied. */
        int (*update)(void *impl, const struct ops_slurm_update *u, ops_slurm_done_fn cb, void *userdata);
        /* slurmctld re-reads slurm.conf. */
        int (*reconfigure)(void *impl, ops_slurm_done_fn cb, void *userdata);
};

/* --- SSH push -------------------------------------------------------------- */

/* start()'s answer when the console holds no complete host key block yet:
 * read it again later (CB is not called). */
#define OPS_PUSH_NO_KEYS 1

struct ops_push_spec {
        const char *address;
        uint16_t port;
        const char *user;
        const char *private_key;        /* the key file's name, for messages */
        const char *private_key_data;   /* its bytes, read at config load */
        size_t private_key_len;
        /* The instance's console: only the host keys it printed are accepted. */
        const char *console;
        uint64_t connect_timeout_usec;
        uint64_t deadline_usec;      /* CLOCK_MONOTONIC */
        const struct config_ssh_file *files;
        size_t n_files;
        char *const *commands;
};

/* r: 0, or a negative errno as push.h's push_run (-EKEYREJECTED: the host
 * key is not one of the console's); REASON a one-line message when r < 0;
 * STEPS the steps started (NULL-terminated), SECONDS the time taken. */
typedef void (*ops_push_done_fn)(int r, const char *reason, char *const *steps, double seconds,
                                 void *userdata);

struct ops_push_port {
        void *impl;
        /* 0 with CB called later; OPS_PUSH_NO_KEYS; or a negative errno (CB
         * not called) with a message in *ret_error for a bad console. */
        int (*start)(void *impl, const struct ops_push_spec *spec, ops_push_done_fn cb, void *userdata,
                     char **ret_error);
};

struct ops_ports {
        struct ops_cloud_port cloud;
        struct ops_slurm_port slurm;
        struct ops_push_port push;   /* start NULL: no pusher; groups with `ssh` fail at "configuring" */
};
