/* reboot.c - a node's instance rebooted or rebuilt (reimaged):
 * reboot_preparing -> rebooting | rebuilding -> building [-> configuring]
 * -> registering. */
#include "ops/op.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "journal/records.h"

static bool reason_asks_reimage(const struct config *c, const char *reason) {
        if (!reason)
                return false;
        for (char **w = c->reimage_words; w && *w; w++)
                if (strcasestr(reason, *w))
                        return true;
        return false;
}

static void on_reboot_sent(struct lc_op *o, const struct ops_cloud_result *res) {
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

static int start_reboot(struct lc_op *o, ops_cloud_done_fn cb, void *ud, uint64_t *id) {
        const struct ops_cloud_port *p = &o->l->env.ports.cloud;

        if (o->rebuild)
                return p->server_rebuild(p->impl, o->instance_id, o->image_id, cb, ud, id);
        return p->server_reboot(p->impl, o->instance_id, true, cb, ud, id);
}

static void on_reboot_instance(struct lc_op *o, const struct ops_cloud_result *res) {
        const struct ops_server *s;

        if (res->error == -ENOENT || (!res->error && !res->server && res->n_servers == 0)) {
                set_string(&o->instance_id, NULL);
                set_string(&o->note, "no instance to reboot: the node is powered down");
                op_finish(o, true);
                return;
        }
        if (res->error) {
                op_wait_timer(o, o->l->opts.retry_usec);
                return;
        }
        s = res->server ? res->server : &res->servers[0];
        set_string(&o->instance_id, s->id);
        if (!o->rebuild && o->image_id && s->image_id && s->image_id[0] &&
            strcmp(s->image_id, o->image_id) != 0) {
                op_log(o, LOG_INFO, "Instance image %s differs from the group's image %s: rebuilding",
                       s->image_id, o->image_id);
                o->rebuild = true;
        }
        op_step(o, o->rebuild ? STEP_REBUILDING : STEP_REBOOTING);
}

static void on_reboot_image(struct lc_op *o, const struct ops_cloud_result *res) {
        if (res->error && o->rebuild && error_transient(res->error) && !op_past_deadline(o)) {
                /* A rebuild needs the id: a passing fault must not fail it (and
                 * delete the instance). */
                op_wait_timer(o, o->l->opts.retry_usec);
                return;
        }
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
        op_cloud(o, o->instance_id ? op_start_show : op_start_list_by_name, on_reboot_instance);
}

/* Reboot or rebuild: the request's reason, or the one Slurm keeps
 * ("reimage : reboot issued"). */
static void reboot_prepare(struct lc_op *o) {
        struct lifecycle *l = o->l;
        struct state_node *sn = state_node_find(l->env.state, o->node);
        struct record_request req = {};
        struct ops_slurm_node n;

        if (!o->slurm_fresh) {
                o->slurm_fresh = true;
                op_wait_slurm(o);
                return;
        }
        if (!sn || !sn->op.request_id || state_request_get(l->env.state, sn->op.request_id, &req) < 0)
                req = (struct record_request){};
        o->rebuild = reason_asks_reimage(o->config, req.reason) ||
                     (lifecycle_slurm_node(l, o->node, &n) && reason_asks_reimage(o->config, n.reason));
        op_cloud(o, op_start_image, on_reboot_image);
}

void reboot_advance(struct lc_op *o) {
        switch (o->step) {
        case STEP_REBOOT_PREPARING:
                reboot_prepare(o);
                return;

        case STEP_REBOOTING:
        case STEP_REBUILDING:
                o->rebuild = o->step == STEP_REBUILDING;
                if (o->rebuild && !o->image_id) {
                        op_cloud(o, op_start_image, on_reboot_image);
                        return;
                }
                op_cloud(o, start_reboot, on_reboot_sent);
                return;

        case STEP_BUILDING:
                op_wait_active(o);
                return;

        case STEP_CONFIGURING:
                op_configure(o);
                return;

        case STEP_REGISTERING:
                op_check_registered(o);
                return;

        default:
                op_fail(o, "step %s is not a step of a reboot", step_to_string(o->step));
                return;
        }
}
