/* config.h - elasticd's configuration (elasticd.yaml): schema, parse, validate, print. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "util/macro.h"

/* One key/value pair of instance metadata. */
struct config_kv {
        char *key;
        char *value;
};

/* A file copied to a new node over SSH. */
struct config_ssh_file {
        char *src;                  /* absolute path on the controller; a readable regular file */
        char *dest;                 /* absolute path on the node */
        unsigned mode;              /* permission bits, default 0644 */
        char *owner;                /* user name or uid on the node, optional (default: the login user) */
        char *group;                /* group name or gid, optional */
};

/* How a group's new nodes are configured over SSH (daemon/push/push.h) once
 * ACTIVE and addressed, before slurmd registers. */
struct config_ssh {
        char *user;                 /* login user, default "root" */
        unsigned port;              /* default 22 */
        char *private_key;          /* absolute path, passphrase-less; required */
        char *private_key_data;     /* its bytes, read at load with config_read_secret_file
                                     * (never at push time); NUL-terminated */
        size_t private_key_len;
        unsigned connect_timeout_s; /* one connection attempt, default 10 */
        unsigned console_poll_s;    /* between reads of the console for the host keys, default 5 */
        struct config_ssh_file *files;
        size_t n_files;
        char **commands;            /* run in order by the node's shell; NULL-terminated, may be empty */
};

/* A node group: a set of Slurm nodes that share one instance shape. */
struct config_group {
        char *name;                 /* unique, [A-Za-z0-9_-]+ */
        char *nodes;                /* Slurm hostlist of member nodes, e.g. "cl[1-16]" */
        char *flavor;               /* Nova flavor name or id */
        char *image;                /* Glance image name or id */
        char **networks;            /* names/ids; or exactly one of "none", "auto"; NULL-terminated */
        char **security_groups;     /* NULL-terminated, may be empty */
        char *key_name;             /* Nova keypair, optional */
        struct config_kv *metadata; /* extra instance metadata */
        size_t n_metadata;
        char *user_data;            /* path to a user-data file, optional */
        char *user_data_content;    /* its bytes, read at load (never on the loop); NUL-terminated */
        size_t user_data_len;
        bool config_drive;          /* default false */
        unsigned min_nodes;         /* nodes kept powered (resize --min), default 0 */
        char *availability_zone;    /* optional */
        struct config_ssh *ssh;     /* NULL: nodes configure themselves (user data, image) */
        /* For `elasticctl slurm-conf`'s NodeName lines; 0/NULL = not set. */
        unsigned cpus;              /* the flavor's vCPUs */
        unsigned ram_mb;            /* the flavor's RAM, MiB */
        unsigned memory_margin_mb;  /* RealMemory = ram - this (OS, page cache); default 512 */
        char *gres;                 /* Slurm Gres= of each node, e.g. "gpu:a100:4" */
        char **features;            /* Slurm Features besides the group's name; NULL-terminated */
        size_t n_nodes;             /* number of nodes in `nodes` */
        char **node_names;          /* `nodes` expanded in node order (hostlist_name_compare:
                                     * "cn2" before "cn10"), as nodemap; n_nodes entries, NULL-terminated;
                                     * one block (strv_pack) */
};

/* A node of the configuration: its group and its place in the group's order. */
struct config_node {
        const char *name;           /* points into groups[group].node_names */
        uint32_t group;             /* 16 bytes a node, not 24: CONFIG_MAX_NODES fits */
        uint32_t index;
};

struct config_limits {
        size_t max_frame_bytes;          /* default 1 MiB */
        unsigned max_clients;            /* default 64 */
        unsigned reserved_clients;       /* of max_clients, only root and SlurmUser may take; default max_clients / 8 */
        unsigned max_clients_per_uid;    /* connections of one other uid; default 8 */
        unsigned frame_timeout_s;        /* a started frame must be whole within; default 5 */
        unsigned client_idle_timeout_s;  /* a client with nothing in progress is dropped after; default 10 */
        unsigned max_queued_requests;    /* default 1024 */
        unsigned max_hostlist_nodes;     /* default 65536 */
        unsigned api_concurrency;        /* in-flight cloud calls, default 16 */
        double api_rate;                 /* token bucket, calls per second, default 20 */
        unsigned api_burst;              /* token bucket depth, default 40 */
        unsigned api_timeout_s;          /* per cloud call, default 60 */
        unsigned create_timeout_s;       /* a create POST (can take 50 s under load), default 120 */
        unsigned active_timeout_s;       /* create -> ACTIVE, default 900 */
        unsigned resume_timeout_s;       /* create -> slurmd registered, default 1200 */
        unsigned reconcile_interval_s;   /* default 60 */
        unsigned orphan_grace_s;         /* unclaimed instance age before deletion, default 600 */
        unsigned capacity_cooldown_s;    /* a group short of capacity fails resumes over this long, default 600 */
};

/* Per service type endpoint overrides (take precedence over the catalog). */
struct config_endpoints {
        char *compute;
        char *image;
        char *identity;
};

struct config {
        /* References beyond the first (0: one owner; the loop thread only):
         * a running operation keeps the config it started under. */
        unsigned n_extra_refs;
        char *path;                  /* file it was read from */
        char *cluster;               /* cluster name: instance metadata and tag, required */
        char *cloud;                 /* clouds.yaml cloud name, required */
        char *clouds_file;           /* optional explicit clouds.yaml */
        char *state_dir;             /* default ELASTICD_STATE_DIR */

        char *socket_path;           /* default ELASTICD_SOCKET_PATH */
        char *socket_group;          /* optional: chgrp of the socket */
        unsigned socket_mode;        /* default 0660 */

        char *slurm_conf;            /* default /etc/slurm/slurm.conf */
        char *slurm_user;            /* SlurmUser: may send hook requests; default "slurm" */
        char *suspend_exc_file;      /* elasticd's own Include'd file, optional */
        char *metrics_listen;        /* "127.0.0.1:PORT": serve GET /metrics there; optional */
        char *admin_group;           /* may send admin requests (resize, reload), optional */

        char **reimage_words;        /* reboot reasons containing one of these rebuild; default {"reimage","rebuild"} */

        struct config_limits limits;
        struct config_endpoints endpoints;

        struct config_group *groups;
        size_t n_groups;

        struct config_node *nodes;   /* every node of every group, sorted by name (strcmp) */
        size_t n_nodes;
};

/* Drops one reference; the last frees. Accepts NULL; returns NULL. */
struct config *config_free(struct config *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct config *, config_free);
/* One more reference: C stays, unchanged, until each holder called config_free(). */
struct config *config_ref(const struct config *c);

/* Parse and validate PATH into a fresh struct. On failure returns a negative
 * errno and, in *ret_errors (malloc'd, caller frees; NULL on success), every
 * problem found (at most 50), each as "FILE:LINE:COL: message" plus the
 * offending line and a caret under the column. Errors: -EINVAL (the content:
 * YAML syntax, schema, cross checks), -EFBIG (over 1 MiB), -EPERM (writable
 * by others), -ENOMEM, or open/read's errno. */
int config_load(const char *path, struct config **ret, char **ret_errors);

/* Same, from a memory buffer; NAME is used in messages. */
int config_load_string(const char *name, const char *text, size_t len,
                       struct config **ret, char **ret_errors);

/* Print the normalised config (every key, defaults filled in) as YAML that
 * config_load accepts again. */
int config_print(const struct config *c, FILE *f);

/* A file holding secrets (clouds.yaml, secure.yaml, ssh keys) must be owned by
 * the effective uid or root and give group and others no access: 0 if so,
 * -EPERM with a message naming the file and its mode or owner in *ret_error
 * (malloc'd) if not, stat's -errno if it cannot be checked. */
int config_check_secret_file(const char *path, char **ret_error);

/* The same checks on the file that is then read (one open): its bytes in
 * *ret_data (malloc'd, NUL-terminated, *ret_len bytes without the NUL). */
int config_read_secret_file(const char *path, char **ret_data, size_t *ret_len, char **ret_error);

/* The node named NAME: 0 with its group's index and its position in the
 * group's node order (resize --min keeps the first min_nodes), or -ENOENT. */
int config_node_find(const struct config *c, const char *name, size_t *ret_group, size_t *ret_index);

/* Index of the group named NAME, or -ENOENT. */
int config_group_find(const struct config *c, const char *name);
