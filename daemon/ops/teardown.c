/* teardown.c - a node's instance deleted: suspend (deleting -> confirming ->
 * clearing), resume_fail (deleting -> confirming -> marking), and every
 * kind's failure path (cleanup -> cleanup_confirming -> marking). */
#include "ops/op.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Slurm updates that keep failing while marking a node down. */
#define MARK_ATTEMPTS 10

static void on_deleted(struct lc_op *o, const struct ops_cloud_result *res);
static void on_gone_check(struct lc_op *o, const struct ops_cloud_result *res);

static void on_found_for_delete(struct lc_op *o, const struct ops_cloud_result *res) {
        if (res->error) {
                op_log(o, LOG_WARNING, "Cannot list the node's instances: %s", res_message(res));
                op_wait_timer(o, o->l->opts.retry_usec);
                return;
        }
        if (res->n_servers == 0) {
                /* Nothing to delete: as if confirmed gone. */
                o->step = o->step == STEP_CLEANUP ? STEP_CLEANUP_CONFIRMING : STEP_CONFIRMING;
                set_string(&o->instance_id, NULL);
                on_gone_check(o, &(struct ops_cloud_result){ .error = -ENOENT });
                return;
        }
        /* Delete them one at a time: the first now, the rest on the next pass. */
        set_string(&o->instance_id, res->servers[0].id);
        op_step(o, o->step);
}

static void on_deleted(struct lc_op *o, const struct ops_cloud_result *res) {
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

static void on_gone_check(struct lc_op *o, const struct ops_cloud_result *res) {
        bool gone = res->error == -ENOENT ||
                    (!res->error && res->server && strcmp(res->server->status, "DELETED") == 0);

        if (!gone) {
                if (!res->error)
                        view_set_status(o->l, o->node, res->server->status);
                /* A delete Nova forgot (ERROR during delete): ask again now and then. */
                if (++o->attempts % 10 == 0) {
                        op_log(o, LOG_NOTICE, "Instance %s still exists; deleting it again", o->instance_id);
                        op_cloud(o, op_start_delete, on_deleted);
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

static void op_mark_down(struct lc_op *o) {
        _cleanup_free_ char *reason = NULL;

        if (!o->failing && !o->note) {
                /* resume_fail: Slurm already marked the node DOWN with its reason. */
                op_finish(o, true);
                return;
        }
        if (asprintf(&reason, "elasticd: %s", o->note ? o->note : "operation failed") < 0) {
                op_wait_timer(o, o->l->opts.retry_usec);
                return;
        }
        /* Slurm's reasons are short lines. */
        if (strlen(reason) > 200)
                strcpy(reason + 197, "...");
        if (o->kind == STATE_OP_RESUME && o->failing) {
                /* Powered down at once (its job requeued, no ResumeTimeout to
                 * overwrite the reason later), then DOWN unless it only lacked
                 * capacity: `scontrol update state=resume` gives a fresh instance. */
                node_fail_power_down(o->l, o, o->node, reason, o->capacity, on_marked);
                return;
        }
        op_slurm_update(o, &(struct ops_slurm_update){ .nodes = o->node, .state = OPS_SLURM_DOWN, .reason = reason },
                        on_marked);
}

void teardown_advance(struct lc_op *o) {
        switch (o->step) {
        case STEP_DELETING:
        case STEP_CLEANUP:
                if (o->instance_id)
                        op_cloud(o, op_start_delete, on_deleted);
                else
                        op_cloud(o, op_start_list_by_name, on_found_for_delete);
                return;

        case STEP_CONFIRMING:
        case STEP_CLEANUP_CONFIRMING:
                if (!o->instance_id) {
                        on_gone_check(o, &(struct ops_cloud_result){ .error = -ENOENT });
                        return;
                }
                op_cloud(o, op_start_show, on_gone_check);
                return;

        case STEP_CLEARING:
                op_slurm_update(o, &(struct ops_slurm_update){ .nodes = o->node, .addr = o->node,
                                                               .hostname = o->node },
                                on_cleared);
                return;

        case STEP_MARKING:
                op_mark_down(o);
                return;

        default:
                op_fail(o, "step %s is not a step of a %s", step_to_string(o->step),
                        state_op_kind_to_string(o->kind));
                return;
        }
}
