/* lifecycle.h - carries every node operation to its end: Nova calls, Slurm
 * updates and deadlines, each step journalled before it acts. */
#pragma once

/*
 * One state machine per node operation. The steps, as journalled in "node"
 * records (state.h) and shown by `elasticctl nodes`:
 *
 *   resume:      creating -> building -> addressing [-> configuring] -> registering -> (done)
 *                (configuring: groups with `ssh`: host keys from the console,
 *                then push.h copies files and runs commands over SSH)
 *   suspend:     deleting -> confirming -> clearing -> (done)
 *   resume_fail: deleting -> confirming -> marking -> (done)
 *   reboot:      rebooting | rebuilding -> building [-> configuring] -> registering -> (done)
 *   on failure:  cleanup -> cleanup_confirming -> marking -> (failed)
 *
 * A step is journalled (and fdatasync'ed) before the call it makes is sent:
 * "creating" is on disk before POST /servers, so after kill -9 the restarted
 * daemon looks the instance up by name and metadata instead of creating a
 * second one. Every instance carries elasticd_cluster, elasticd_node and
 * elasticd_op metadata and the cluster tag.
 *
 * An operation keeps the config it started under (a reference, config_ref)
 * to its end, and with it its group (flavor, image, networks, user data,
 * ssh, key, metadata, ...): a reload changes what new operations get,
 * never what a running one uses.
 *
 * Reconcile (at start-up and every limits.reconcile_interval) lists the
 * cluster's instances: an instance no node claims is deleted once it is
 * older than limits.orphan_grace; instances without this cluster's tag and
 * metadata are never touched.
 */

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "conf/config.h"
#include "conf/nodemap.h"
#include "journal/state.h"
#include "ops/capacity.h"
#include "ops/ports.h"
#include "util/histogram.h"
#include "util/macro.h"

struct lifecycle;

struct lifecycle_env {
        sd_event *event;
        struct state *state;
        /* The cloud, Slurm and the SSH pushes (ops/adapters.h; tests fake
         * them). Free what is behind the Slurm and push ports before the
         * lifecycle: their finished calls report here. */
        struct ops_ports ports;
        /* Journal RECORDS (a JSON array; one fdatasync) and apply them to the
         * state. 0 once durable. */
        int (*record)(void *userdata, json_t *records, char **ret_error);
        /* Something visible changed (for STATUS=); optional. */
        void (*changed)(void *userdata);
        void *userdata;
};

/* Tunables that tests shorten; zero means the default in brackets. */
struct lifecycle_options {
        uint64_t poll_usec;          /* instance status / Slurm registration polls [2 s] */
        uint64_t retry_usec;         /* after a failed cloud or Slurm call [5 s] */
        uint64_t accuracy_usec;      /* how late a timer may fire [100 ms] */
        uint64_t resume_timeout_usec;  /* a resume's or reboot's deadline [limits.resume_timeout] */
        uint64_t console_poll_usec;  /* between reads of the console [the group's ssh.console_poll] */
};

struct lifecycle_stats {
        uint64_t started[_STATE_OP_KIND_MAX];
        uint64_t succeeded[_STATE_OP_KIND_MAX];
        uint64_t failed[_STATE_OP_KIND_MAX];
        uint64_t instances_created;
        uint64_t instances_deleted;
        uint64_t orphans_deleted;
        uint64_t capacity_failovers;        /* resumes failed over for lack of capacity */
        uint64_t unhealthy;                 /* up nodes whose instance vanished, went ERROR or SHUTOFF */
        uint64_t reconciles;
        uint64_t cloud_errors;              /* since start-up */
        unsigned cloud_errors_last_hour;
        unsigned active;                    /* operations being carried out */
        struct histogram create_to_active;      /* resumes since start-up */
        struct histogram active_to_registered;
};

/* CONFIG and MAP stay owned by the caller and must outlive the lifecycle or
 * be replaced with lifecycle_set_config() first (running operations hold
 * their own reference to the config they started under: the caller may
 * config_free() the old one right after). */
int lifecycle_new(const struct lifecycle_env *env, const struct lifecycle_options *opts,
                  const struct config *config, const struct nodemap *map, struct lifecycle **ret);
/* Free what is behind the Slurm and push ports first. Accepts NULL. */
struct lifecycle *lifecycle_free(struct lifecycle *l);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct lifecycle *, lifecycle_free);

void lifecycle_set_config(struct lifecycle *l, const struct config *config, const struct nodemap *map);

/* Operations were accepted (or replayed): start carrying them out, soon,
 * from the loop. Also starts a reconcile at the first call. */
void lifecycle_kick(struct lifecycle *l);

/* What the lifecycle last saw of NODE: Slurm's state string and the
 * instance's Nova status; each NULL when unknown. */
void lifecycle_node_view(const struct lifecycle *l, const char *node, const char **ret_slurm_state,
                         const char **ret_instance_status);

void lifecycle_get_stats(const struct lifecycle *l, struct lifecycle_stats *ret);

/* Groups short of capacity now (ops/capacity.h), at most MAX in RET; the
 * number there are. Valid until the lifecycle changes. */
size_t lifecycle_capacity(const struct lifecycle *l, struct capacity_group *ret, size_t max);
/* End GROUP's capacity cooldown: true if it had one. */
bool lifecycle_group_enable(struct lifecycle *l, const char *group);
