/* resume.c - a node's instance created and brought into Slurm: preparing ->
 * creating -> building -> addressing [-> configuring] -> registering. */
#include "ops/op.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/strv.h"

/* How many console lines to read: enough for cloud-init's block on a long boot log. */
#define CONSOLE_LINES 5000

static int start_flavor(struct lc_op *o, ops_cloud_done_fn cb, void *ud, uint64_t *id) {
        const struct ops_cloud_port *p = &o->l->env.ports.cloud;

        return p->flavor_resolve(p->impl, op_group(o)->flavor, cb, ud, id);
}

/* The group's network that is resolved next, or NULL once all are (or the
 * group went away). */
static const char *op_next_network(const struct lc_op *o) {
        const struct config_group *g = op_group(o);

        return g && o->n_network_ids < strv_length(g->networks) ? g->networks[o->n_network_ids] : NULL;
}

static int start_network(struct lc_op *o, ops_cloud_done_fn cb, void *ud, uint64_t *id) {
        const struct ops_cloud_port *p = &o->l->env.ports.cloud;
        const char *name = op_next_network(o);

        return name ? p->network_resolve(p->impl, name, cb, ud, id) : -ESTALE;
}

static int start_create(struct lc_op *o, ops_cloud_done_fn cb, void *ud, uint64_t *id) {
        const struct ops_cloud_port *p = &o->l->env.ports.cloud;
        const struct config_group *g = op_group(o);
        struct lifecycle *l = o->l;
        int r;

        /* The bytes config.c read at load: no file is opened on the event loop. */
        if (g->user_data && !g->user_data_content) {
                op_log(o, LOG_ERR, "user data %s was not loaded with the configuration", g->user_data);
                return -ENOENT;
        }
        r = p->server_create(p->impl,
                             &(struct ops_create){
                                     .cluster = o->config->cluster,
                                     .name = o->node,
                                     .op_id = o->id,
                                     .flavor_id = o->flavor_id,
                                     .image_id = o->image_id,
                                     .networks = (const char *const *) o->network_ids,
                                     .security_groups = (const char *const *) g->security_groups,
                                     .key_name = g->key_name,
                                     .metadata = g->metadata,
                                     .n_metadata = g->n_metadata,
                                     .user_data = g->user_data ? g->user_data_content : NULL,
                                     .user_data_len = g->user_data ? g->user_data_len : 0,
                                     .config_drive = g->config_drive,
                                     .availability_zone = g->availability_zone,
                             },
                             cb, ud, id);
        if (r >= 0)
                l->stats.instances_created++;
        return r;
}

static void on_resume_found(struct lc_op *o, const struct ops_cloud_result *res) {
        /* Looking for this node's instance before creating one: adopt a
         * healthy one, clean up a broken one, create when there is none. */
        if (res->error == -ENOENT || (!res->error && res->n_servers == 0 && !res->server)) {
                set_string(&o->instance_id, NULL);
                op_step(o, STEP_CREATING);
                return;
        }
        if (res->error) {
                op_log(o, LOG_WARNING, "Cannot look up the node's instance: %s", res_message(res));
                op_wait_timer(o, o->l->opts.retry_usec);
                return;
        }

        const struct ops_server *s = res->server ? res->server : &res->servers[0];
        view_set_status(o->l, o->node, s->status);
        set_string(&o->instance_id, s->id);
        if (s->status && (strcmp(s->status, "ERROR") == 0 || strcmp(s->status, "DELETED") == 0 ||
                          (s->task_state && strcmp(s->task_state, "deleting") == 0))) {
                op_log(o, LOG_NOTICE, "Instance %s is %s; deleting it before creating a new one", s->id,
                       s->status);
                /* Delete, confirm, then come back here with no instance. */
                op_step(o, STEP_CLEANUP);
                return;
        }
        op_log(o, LOG_INFO, "Adopting existing instance %s (%s)", s->id, s->status ? s->status : "?");
        op_step(o, STEP_BUILDING);
}

static int network_ids_add(struct lc_op *o, const char *id) {
        char **a = realloc(o->network_ids, (o->n_network_ids + 2) * sizeof(*a));

        if (!a)
                return -ENOMEM;
        o->network_ids = a;
        if (!(a[o->n_network_ids] = strdup(id)))
                return -ENOMEM;
        a[++o->n_network_ids] = NULL;
        return 0;
}

static void op_resolve_networks(struct lc_op *o);

static void on_network_resolved(struct lc_op *o, const struct ops_cloud_result *res) {
        if (res->error) {
                if (error_transient(res->error) && !op_past_deadline(o)) {
                        op_wait_timer(o, o->l->opts.retry_usec);
                        return;
                }
                op_fail(o, "network %s: %s", op_next_network(o) ?: "?", res_message(res));
                return;
        }
        if (network_ids_add(o, res->id) < 0) {
                op_wait_timer(o, o->l->opts.retry_usec);
                return;
        }
        op_resolve_networks(o);
}

/* Flavor, image and networks are ids now. An instance elasticd already knows
 * for this node (an earlier resume, a crash during creating): look at it
 * before creating another. */
static void op_resolved(struct lc_op *o) {
        if (o->instance_id)
                op_cloud(o, op_start_show, on_resume_found);
        else if (o->step == STEP_CREATING)
                op_cloud(o, op_start_list_by_name, on_resume_found);
        else
                op_step(o, STEP_CREATING);
}

/* Nova takes only network ids: look up each name, one after the other.
 * Ids, "none" and "auto" need no call. */
static void op_resolve_networks(struct lc_op *o) {
        const struct ops_cloud_port *p = &o->l->env.ports.cloud;
        const char *next;

        while ((next = op_next_network(o)) && p->network_is_literal(next))
                if (network_ids_add(o, next) < 0) {
                        op_wait_timer(o, o->l->opts.retry_usec);
                        return;
                }
        if (next) {
                op_cloud(o, start_network, on_network_resolved);
                return;
        }
        o->networks_resolved = true;
        op_resolved(o);
}

static void on_image_resolved(struct lc_op *o, const struct ops_cloud_result *res) {
        if (res->error) {
                if (error_transient(res->error) && !op_past_deadline(o)) {
                        op_wait_timer(o, o->l->opts.retry_usec);
                        return;
                }
                op_fail(o, "image %s: %s", op_group(o)->image, res_message(res));
                return;
        }
        set_string(&o->image_id, res->id);
        o->network_ids = strv_free(o->network_ids);
        o->n_network_ids = 0;
        o->networks_resolved = false;
        op_resolve_networks(o);
}

static void on_flavor_resolved(struct lc_op *o, const struct ops_cloud_result *res) {
        if (res->error) {
                if (error_transient(res->error) && !op_past_deadline(o)) {
                        op_wait_timer(o, o->l->opts.retry_usec);
                        return;
                }
                op_fail(o, "flavor %s: %s", op_group(o)->flavor, res_message(res));
                return;
        }
        set_string(&o->flavor_id, res->id);
        op_cloud(o, op_start_image, on_image_resolved);
}

/* Does a refusal's MESSAGE name the flavor, image or a network the
 * operation resolved (maybe from the cache, maybe from the journal)? */
static bool names_resolved_id(const struct lc_op *o, const char *message) {
        if (!message)
                return false;
        if ((o->flavor_id && strstr(message, o->flavor_id)) || (o->image_id && strstr(message, o->image_id)))
                return true;
        for (size_t i = 0; i < o->n_network_ids; i++)
                if (o->network_ids[i] && strstr(message, o->network_ids[i]))
                        return true;
        return false;
}

static void on_created(struct lc_op *o, const struct ops_cloud_result *res) {
        if (res->error) {
                _cleanup_free_ char *why = res_describe(res);

                /* A 4xx naming an id looked up before: the id is stale, or the
                 * cloud could not check it just then (Nova answers "Not
                 * authorized for image" while Keystone is down behind
                 * Glance). The cloud client forgot it: look the names up
                 * again, once, and look before creating. */
                if (o->kind == STATE_OP_RESUME && !o->relooked && res->http_status >= 400 &&
                    res->http_status < 500 && names_resolved_id(o, res->message)) {
                        op_log(o, LOG_NOTICE, "Create refused naming an id looked up before (%s); "
                               "looking the group's flavor, image and networks up again", why ? why : "?");
                        o->relooked = true;
                        set_string(&o->flavor_id, NULL);
                        set_string(&o->image_id, NULL);
                        o->network_ids = strv_free(o->network_ids);
                        o->n_network_ids = 0;
                        o->networks_resolved = false;
                        op_wait_timer(o, o->l->opts.retry_usec);
                        return;
                }

                if (res->error == -EIO) {
                        /* Maybe created: the reconcile deletes it if it shows up. */
                        op_fail(o, "creating the instance: outcome unknown: %s", why ? why : "?");
                        return;
                }
                if (o->kind == STATE_OP_RESUME &&
                    op_classify(o->l, res->error, res->http_status, res->message) == OPS_FAILURE_CAPACITY) {
                        op_fail_capacity(o, why);
                        return;
                }
                op_fail(o, "creating the instance: %s", why ? why : "?");
                return;
        }
        set_string(&o->instance_id, res->id);
        if (res->adopted)
                op_log(o, LOG_NOTICE, "Create reply was lost; found instance %s", res->id);
        else
                op_log(o, LOG_INFO, "Created instance %s", res->id);
        /* Also when superseded: record the instance so the newer operation deletes it. */
        op_step(o, STEP_BUILDING);
}

static void on_built(struct lc_op *o, const struct ops_cloud_result *res) {
        const struct ops_server *s = res->server;

        if (res->error == -ENOENT) {
                set_string(&o->instance_id, NULL);
                op_fail(o, "instance disappeared while building");
                return;
        }
        if (res->error) {
                if (op_past_deadline(o))
                        op_fail(o, "instance not ACTIVE by the deadline (last error: %s)", res_message(res));
                else
                        op_poll_later(o);
                return;
        }
        view_set_status(o->l, o->node, s->status);
        if (strcmp(s->status, "ERROR") == 0) {
                if (o->kind == STATE_OP_RESUME && s->fault &&
                    op_classify(o->l, 0, 0, s->fault) == OPS_FAILURE_CAPACITY) {
                        _cleanup_free_ char *why = NULL;

                        if (asprintf(&why, "instance %s went to ERROR: %s", s->id, s->fault) < 0)
                                why = NULL;
                        op_fail_capacity(o, why ? why : s->fault);
                        return;
                }
                if (s->fault)
                        op_fail(o, "instance %s went to ERROR: %s", s->id, s->fault);
                else
                        op_fail(o, "instance %s went to ERROR", s->id);
                return;
        }
        if (strcmp(s->status, "ACTIVE") == 0 && !s->task_state) {
                if (o->kind == STATE_OP_REBOOT && o->rebuild && o->image_id && s->image_id &&
                    strcmp(s->image_id, o->image_id) != 0) {
                        if (op_past_deadline(o))
                                op_fail(o, "instance still has image %s after the rebuild", s->image_id);
                        else
                                op_poll_later(o);
                        return;
                }
                if (!s->ipv4) {
                        op_fail(o, "instance %s is ACTIVE without an IPv4 address", s->id);
                        return;
                }
                set_string(&o->address, s->ipv4);
                op_log(o, LOG_INFO, "Instance %s is ACTIVE at %s", s->id, s->ipv4);
                if (o->creating_usec && !o->active_usec) {
                        o->active_usec = now_usec();
                        histogram_observe(&o->l->stats.create_to_active,
                                          (double) (o->active_usec - o->creating_usec) / USEC_PER_SEC);
                }
                if (o->kind == STATE_OP_REBOOT) {
                        /* a rebooted or rebuilt node is configured again (a rebuild wiped it) */
                        const struct config_group *g = op_group(o);
                        op_step(o, g && g->ssh ? STEP_CONFIGURING : STEP_REGISTERING);
                } else
                        op_step(o, STEP_ADDRESSING);
                return;
        }
        if (op_past_deadline(o)) {
                op_fail(o, "instance %s not ACTIVE by the deadline (status %s)", s->id, s->status);
                return;
        }
        op_poll_later(o);
}

void op_wait_active(struct lc_op *o) {
        if (!o->instance_id) {
                op_fail(o, "no instance to wait for");
                return;
        }
        op_cloud(o, op_start_show, on_built);
}

static void on_addressed(struct lc_op *o, int r, const char *error) {
        if (r < 0) {
                op_log(o, LOG_WARNING, "Cannot set the node's address in Slurm: %s", error ? error : "?");
                if (op_past_deadline(o))
                        op_fail(o, "cannot set the node's address in Slurm: %s", error ? error : "?");
                else
                        op_wait_timer(o, o->l->opts.retry_usec);
                return;
        }
        /* the group may be gone after a reload: op_advance deals with that */
        op_step(o, op_group(o) && op_group(o)->ssh ? STEP_CONFIGURING : STEP_REGISTERING);
}

/* --- configuring over SSH -------------------------------------------------- */

static int start_console(struct lc_op *o, ops_cloud_done_fn cb, void *ud, uint64_t *id) {
        const struct ops_cloud_port *p = &o->l->env.ports.cloud;

        return p->server_console(p->impl, o->instance_id, CONSOLE_LINES, cb, ud, id);
}

static uint64_t console_poll_usec(const struct lc_op *o, const struct config_ssh *ssh) {
        if (o->l->opts.console_poll_usec)
                return o->l->opts.console_poll_usec;
        return ssh ? (uint64_t) ssh->console_poll_s * USEC_PER_SEC : o->l->opts.retry_usec;
}

static void on_pushed(int r, const char *reason, char *const *steps, double seconds, void *userdata) {
        struct lc_call *c = userdata;
        struct lc_op *o;

        /* Cancelled: elasticd is stopping and the lifecycle may be gone. */
        if (r != -ECANCELED && (o = call_op(c))) {
                o->wait = WAIT_NONE;
                for (char *const *s = steps; s && *s; s++)
                        op_log(o, LOG_DEBUG, "SSH step %s", *s);
                if (r == -EKEYREJECTED && o->kind == STATE_OP_REBOOT && !op_past_deadline(o)) {
                        /* After a rebuild the console may still end with the old
                         * image's keys until the new boot prints its own: read it
                         * again. Only keys on the console are ever accepted. */
                        const struct config_group *g = op_group(o);
                        op_log(o, LOG_WARNING, "%s; reading the console again", reason);
                        op_wait_timer(o, console_poll_usec(o, g ? g->ssh : NULL));
                } else if (r < 0) {
                        op_fail(o, "configuring over SSH: %s", reason);
                } else {
                        op_log(o, LOG_INFO, "Configured over SSH in %.1f s", seconds);
                        op_step(o, STEP_REGISTERING);
                }
        }
        call_free(c);
}

/* The console holds the host keys once cloud-init printed them; the push
 * accepts only those. */
static void on_console(struct lc_op *o, const struct ops_cloud_result *res) {
        const struct ops_push_port *p = &o->l->env.ports.push;
        const struct config_group *g = op_group(o);
        const struct config_ssh *ssh = g ? g->ssh : NULL;
        _cleanup_free_ char *error = NULL;
        struct lc_call *c;
        uint64_t poll;
        int r;

        if (!ssh) {
                /* reloaded meanwhile: op_advance sorts it out */
                op_advance(o);
                return;
        }
        poll = console_poll_usec(o, ssh);
        if (res->error == -ENOENT) {
                set_string(&o->instance_id, NULL);
                op_fail(o, "instance disappeared while being configured");
                return;
        }
        if (res->error) {
                if (op_past_deadline(o))
                        op_fail(o, "configuring over SSH: cannot read the instance's console: %s", res_message(res));
                else
                        op_wait_timer(o, poll);
                return;
        }
        if (!p->start) {
                op_fail(o, "configuring over SSH: elasticd has no SSH pusher");
                return;
        }
        c = call_new(o);
        if (!c) {
                op_wait_timer(o, o->l->opts.retry_usec);
                return;
        }
        r = p->start(p->impl,
                     &(struct ops_push_spec){
                             .address = o->address,
                             .port = (uint16_t) ssh->port,
                             .user = ssh->user,
                             .private_key = ssh->private_key,
                             .private_key_data = ssh->private_key_data,
                             .private_key_len = ssh->private_key_len,
                             .console = res->console,
                             .connect_timeout_usec = (uint64_t) ssh->connect_timeout_s * USEC_PER_SEC,
                             .deadline_usec = o->deadline_usec ? o->deadline_usec
                                                               : now_usec() + (uint64_t) o->config->limits.resume_timeout_s * USEC_PER_SEC,
                             .files = ssh->files,
                             .n_files = ssh->n_files,
                             .commands = ssh->commands,
                     },
                     on_pushed, c, &error);
        if (r == OPS_PUSH_NO_KEYS) {
                call_free(c);
                if (op_past_deadline(o))
                        op_fail(o, "configuring over SSH: no SSH host keys on the instance's console by the deadline");
                else
                        op_wait_timer(o, poll);
                return;
        }
        if (r < 0) {
                call_free(c);
                if (r == -EBUSY || r == -ENOMEM) {
                        op_log(o, LOG_WARNING, "SSH push refused (%s); retrying", strerror(-r));
                        op_wait_timer(o, o->l->opts.retry_usec);
                } else
                        op_fail(o, "configuring over SSH: %s", error ? error : strerror(-r));
                return;
        }
        o->wait = WAIT_PUSH;
}

void op_configure(struct lc_op *o) {
        if (!o->instance_id || !o->address) {
                op_fail(o, "no instance to configure");
                return;
        }
        if (!op_group(o)->ssh) {
                /* ssh was removed from the group by a reload */
                op_step(o, STEP_REGISTERING);
                return;
        }
        op_cloud(o, start_console, on_console);
}

/* --- registering ------------------------------------------------------------- */

/* Registered: Slurm hears from slurmd again. */
static bool node_registered(const struct lc_op *o, const struct ops_slurm_node *n) {
        if (n->not_responding || n->powering_up || n->powered_down)
                return false;
        if (o->kind == STATE_OP_REBOOT) {
                if (n->reboot_pending)
                        return false;
                return n->boot_time >= o->started - 1;
        }
        return true;
}

void op_check_registered(struct lc_op *o) {
        struct ops_slurm_node n;
        bool known = lifecycle_slurm_node(o->l, o->node, &n);

        if (known && node_registered(o, &n)) {
                op_log(o, LOG_INFO, "slurmd registered (%s)", n.state);
                if (o->active_usec)
                        histogram_observe(&o->l->stats.active_to_registered,
                                          (double) (now_usec() - o->active_usec) / USEC_PER_SEC);
                op_finish(o, true);
                return;
        }
        if (op_past_deadline(o)) {
                op_fail(o, "slurmd did not register by the deadline (Slurm state %s)", known ? n.state : "unknown");
                return;
        }
        op_wait_slurm(o);
}

/* --- the transition function ------------------------------------------------- */

void resume_advance(struct lc_op *o) {
        switch (o->step) {
        case STEP_PREPARING:
                if (op_fail_over_if_short(o))
                        return;
                op_cloud(o, start_flavor, on_flavor_resolved);
                return;

        case STEP_CREATING:
                /* "creating" is on disk before the POST. Coming here with the
                 * ids unresolved means a restart: look before creating. */
                if (!o->flavor_id || !o->image_id || !o->networks_resolved) {
                        op_cloud(o, start_flavor, on_flavor_resolved);
                        return;
                }
                if (!o->instance_id && op_fail_over_if_short(o))
                        return;
                op_cloud(o, start_create, on_created);
                return;

        case STEP_BUILDING:
                op_wait_active(o);
                return;

        case STEP_ADDRESSING:
                op_slurm_update(o, &(struct ops_slurm_update){ .nodes = o->node, .addr = o->address,
                                                               .hostname = o->node },
                                on_addressed);
                return;

        case STEP_CONFIGURING:
                op_configure(o);
                return;

        case STEP_REGISTERING:
                op_check_registered(o);
                return;

        default:
                op_fail(o, "step %s is not a step of a resume", step_to_string(o->step));
                return;
        }
}
