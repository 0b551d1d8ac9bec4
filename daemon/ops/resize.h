/* resize.h - keeps the first N nodes of each group powered (resize --min N):
 * elasticd's suspend-exclusion file, slurmctld reconfigure, power up/down. */
#pragma once

/*
 * Slurm 22.05 cannot change SuspendExcNodes at run time, so elasticd owns a
 * file that slurm.conf includes ("Include /etc/slurm/elasticd-suspend-exc.conf"),
 * rewrites it atomically and asks slurmctld to reconfigure. Then:
 *  - growing: the kept nodes that are powered down are powered up through
 *    Slurm (POWER_UP), so Slurm runs ResumeProgram and its view stays true;
 *  - shrinking: nodes that leave the kept set (always the highest-numbered,
 *    since the kept set is the first N) get POWER_DOWN_ASAP: Slurm drains
 *    them, waits for their jobs, then runs SuspendProgram.
 * The kept set is re-enforced periodically: a kept node that went down is
 * powered up again.
 */

#include <jansson.h>
#include <systemd/sd-event.h>

#include "conf/config.h"
#include "util/macro.h"
#include "conf/nodemap.h"
#include "journal/state.h"
#include "ops/ports.h"

struct resize;

/* SLURM (ports.h) must outlive the resize; free what is behind it first
 * (its finished calls report here). */
int resize_new(sd_event *event, const struct ops_slurm_port *slurm, struct state *state,
               const struct config *config, const struct nodemap *map, struct resize **ret);
/* Accepts NULL. */
struct resize *resize_free(struct resize *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct resize *, resize_free);

void resize_set_config(struct resize *r, const struct config *config, const struct nodemap *map);

/* A resize was accepted (or replayed at start-up): apply it soon. */
void resize_kick(struct resize *r);

/* Per group: {"min": N, "kept": "cl[1-3]", "up": U, "powering_up": P,
 * "powering_down": D, "done": bool} into OBJ (keyed by group name). */
int resize_status(const struct resize *r, json_t *obj);

/* Write the suspend-exclusion file for NODES (a hostlist, or NULL/"" for
 * none) atomically: temp file, fsync, rename, fsync of the directory. */
int resize_write_exclusion_file(const char *path, const char *nodes, char **ret_error);

/* The hostlist in an exclusion file elasticd wrote, "" if none; -ENOENT if
 * there is no file. */
int resize_read_exclusion_file(const char *path, char **ret_nodes);
