/* reconcile.c - the cluster's instances against the operations: an instance
 * no node claims is deleted once older than limits.orphan_grace. */
#include "ops/op.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static int start_orphan_delete(struct lifecycle *l, const char *id, const char *node);

static bool instance_claimed(struct lifecycle *l, const struct ops_server *s, const char *node) {
        struct state_node *n = node ? state_node_find(l->env.state, node) : NULL;
        struct lc_op *o = node ? op_find(l, node) : NULL;

        if (n && n->instance_id && strcmp(n->instance_id, s->id) == 0)
                return true;
        /* A create in flight, or a lookup that will adopt it. */
        if (o && (o->step == STEP_PREPARING || o->step == STEP_CREATING || o->step == STEP_DELETING ||
                  o->step == STEP_CLEANUP))
                return true;
        if (o && o->instance_id && strcmp(o->instance_id, s->id) == 0)
                return true;
        return false;
}

static void on_reconcile_list(const struct ops_cloud_result *res, void *userdata) {
        struct lc_call *call = userdata;
        struct lifecycle *l = call->l;
        time_t now = time(NULL);

        call_unlink(call);
        call_free(call);
        l->reconcile_running = false;
        l->stats.reconciles++;
        if (res->error) {
                note_cloud_error(l);
                log_warning("Reconcile: cannot list the cluster's instances: %s", res_message(res));
                return;
        }
        for (size_t i = 0; i < res->n_servers; i++) {
                const struct ops_server *s = &res->servers[i];
                const char *node = s->node;
                size_t group;

                if (node)
                        view_set_status(l, node, s->status);
                /* A running operation keeps its instance also after a reload
                 * removed the node's group. */
                if (node && (op_find(l, node) || nodemap_lookup(l->map, node, &group) >= 0) &&
                    instance_claimed(l, s, node))
                        continue;
                if (s->created && now - s->created < (time_t) l->config->limits.orphan_grace_s)
                        continue;
                log_ctx_msg(LOG_WARNING, &(struct log_ctx){ .node = node, .instance = s->id },
                            "Reconcile: instance %s (%s) belongs to no node's operation; deleting the orphan",
                            s->id, s->name ? s->name : "?");
                if (start_orphan_delete(l, s->id, node) >= 0)
                        l->stats.orphans_deleted++;
        }
}

static void on_orphan_deleted(const struct ops_cloud_result *res, void *userdata) {
        struct lc_call *call = userdata;

        call_unlink(call);
        if (res->error) {
                note_cloud_error(call->l);
                log_ctx_msg(LOG_WARNING, &(struct log_ctx){ .node = call->node, .instance = call->op_id },
                            "Cannot delete orphan instance: %s (next reconcile retries)", res_message(res));
        }
        call_free(call);
}

static int start_orphan_delete(struct lifecycle *l, const char *id, const char *node) {
        const struct ops_cloud_port *p = &l->env.ports.cloud;
        struct lc_call *call = call_new(NULL);
        int r;

        if (!call)
                return -ENOMEM;
        call->node = node ? strdup(node) : NULL;
        call->op_id = strdup(id); /* the instance, for the log */
        r = p->server_delete(p->impl, id, on_orphan_deleted, call, &call->cloud_call_id);
        if (r < 0) {
                call_free(call);
                return r;
        }
        call_link(l, call);
        return 0;
}

void reconcile_start(struct lifecycle *l) {
        const struct ops_cloud_port *p = &l->env.ports.cloud;
        struct lc_call *call;
        int r;

        if (l->reconcile_running)
                return;
        call = call_new(NULL);
        if (!call)
                return;
        call->reconcile = true;
        r = p->servers_list(p->impl, NULL, on_reconcile_list, call, &call->cloud_call_id);
        if (r < 0) {
                log_warning("Reconcile: cannot list instances: %s", strerror(-r));
                call_free(call);
                return;
        }
        call_link(l, call);
        l->reconcile_running = true;
        /* Refresh Slurm's view for `elasticctl nodes` too. */
        request_slurm_poll(l);
}

int reconcile_on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        struct lifecycle *l = userdata;

        reconcile_start(l);
        sd_event_source_set_time_relative(s, (uint64_t) l->config->limits.reconcile_interval_s * USEC_PER_SEC);
        sd_event_source_set_enabled(s, SD_EVENT_ON);
        return 0;
}
