/* reconcile.c - the cluster's instances against the operations: an instance
 * no node claims is deleted once older than limits.orphan_grace; a node that
 * is up on an instance that vanished, went ERROR or SHUTOFF is powered down
 * and set DOWN, so that its next job gets a fresh instance. */
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

static int server_cmp(const void *a, const void *b) {
        return strcmp((*(const struct ops_server *const *) a)->id, (*(const struct ops_server *const *) b)->id);
}

struct health_walk {
        struct lifecycle *l;
        const struct ops_server **by_id;  /* the listed instances, sorted by id */
        size_t n;
};

static const struct ops_server *listed(const struct health_walk *w, const char *id) {
        const struct ops_server key = { .id = id }, *k = &key;
        const struct ops_server **p = bsearch(&k, w->by_id, w->n, sizeof(*w->by_id), server_cmp);

        return p ? *p : NULL;
}

/* A node whose resume is done, with no operation now, that Slurm has up:
 * is its instance still there and running? */
static int check_health(const struct state_node *n, void *userdata) {
        struct health_walk *w = userdata;
        struct lifecycle *l = w->l;
        const struct ops_server *s;
        struct ops_slurm_node sn;
        _cleanup_free_ char *reason = NULL;

        /* One already failed (a DOWN mark waits for Slurm's power down): a
         * load from before it may still show the node up. */
        if (n->op.kind != STATE_OP_RESUME || n->op.state != STATE_OP_DONE || !n->instance_id ||
            op_find(l, n->name) || downmark_pending(l, n->name))
                return 0;
        /* Up since the list was asked for: the list may predate its instance. */
        if (n->op.changed >= (int64_t) l->reconcile_started || n->step_changed >= (int64_t) l->reconcile_started)
                return 0;
        if (!lifecycle_slurm_node(l, n->name, &sn) || sn.powered_down || sn.powering_down || sn.power_down ||
            sn.powering_up)
                return 0;
        s = listed(w, n->instance_id);
        if (s && s->status && strcmp(s->status, "ERROR") != 0 && strcmp(s->status, "SHUTOFF") != 0)
                return 0;
        if (!s) {
                view_set_status(l, n->name, "DELETED");
                if (asprintf(&reason, "elasticd: instance %s vanished (deleted outside elasticd)", n->instance_id) < 0)
                        return 0;
        } else if (asprintf(&reason, "elasticd: instance %s is %s%s%s", n->instance_id, s->status,
                            s->fault ? ": " : "", s->fault ? s->fault : "") < 0)
                return 0;
        if (strlen(reason) > 200)
                strcpy(reason + 197, "...");
        log_ctx_msg(LOG_WARNING, &(struct log_ctx){ .node = n->name, .instance = n->instance_id },
                    "Reconcile: %s; powering the node down (its job requeued) and setting it DOWN",
                    reason + strlen("elasticd: "));
        l->stats.unhealthy++;
        node_fail_power_down(l, NULL, n->name, reason, false, NULL);
        return 0;
}

static void reconcile_health(struct lifecycle *l, const struct ops_cloud_result *res) {
        struct health_walk w = { .l = l };

        /* Nothing known of Slurm yet: nothing to judge by. */
        if (!lifecycle_slurm_nodes(l))
                return;
        w.by_id = calloc(res->n_servers + 1, sizeof(*w.by_id));
        if (!w.by_id)
                return;
        for (size_t i = 0; i < res->n_servers; i++)
                if (res->servers[i].id)
                        w.by_id[w.n++] = &res->servers[i];
        qsort(w.by_id, w.n, sizeof(*w.by_id), server_cmp);
        state_foreach_node(l->env.state, check_health, &w);
        free(w.by_id);
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
        reconcile_health(l, res);
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
        l->reconcile_started = time(NULL);
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
