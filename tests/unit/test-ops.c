/* test-ops.c - the node-operation core (daemon/ops) against fake ports: every
 * call of every operation kind with each outcome (error, timeout, lost reply,
 * a kill followed by a replay of the journal into a fresh core), conflicts
 * between operations, reloads under running operations, and the reboot or
 * rebuild choice. Runs on a real sd-event loop with millisecond timers. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-event.h>

#include "conf/config.h"
#include "conf/nodemap.h"
#include "journal/records.h"
#include "journal/state.h"
#include "ops/lifecycle.h"
#include "ops/ports.h"
#include "ops/resize.h"
#include "util/log.h"
#include "util/macro.h"

#include "test.h"

#define MAX_SERVERS 32
#define MAX_NODES 8
#define USEC 1000ULL

enum outcome {
        OUT_OK,
        OUT_ERROR,        /* refused for good (403, permission denied, a failing command) */
        OUT_TIMEOUT,      /* no answer in time; nothing was done */
        OUT_LOST,         /* done, but the reply was lost */
        OUT_KILL,         /* done, then elasticd is killed before the reply */
        _OUT_MAX,
};

static const char *const outcome_names[_OUT_MAX] = { "ok", "error", "timeout", "lost reply", "kill+replay" };

/* --- the fake cloud, Slurm and pusher --------------------------------------- */

struct srv {
        bool used;
        char id[16], name[16], status[16], image[32], ipv4[16];
        time_t created;
};

struct fnode {
        char name[16], addr[24], reason[96];
        time_t boot_time;
        bool down, configured, powering_up;
        bool forced_off;        /* POWER_DOWN_FORCE: a failed resume's node, DOWN once powered down */
        int powering_down;      /* loads that still show it powering down (slurmctld ignores DOWN meanwhile) */
        int shown_powering_down; /* ... and the loads after that which still do (changes-since loads miss its end) */
};

struct ops_slurm_nodes {
        size_t n;
        struct nview {
                char name[16], state[48], reason[96];
                struct ops_slurm_node n;
        } v[MAX_NODES];
};

enum ptype { P_CLOUD, P_SLURM, P_NODES, P_PUSH };

struct pending {
        struct pending *next;
        struct fake *f;
        sd_event_source *src;
        const char *call;
        enum ptype type;
        bool held;
        bool dead;                      /* killed: never answered */
        ops_cloud_done_fn ccb;
        ops_slurm_done_fn scb;
        ops_slurm_nodes_fn ncb;
        ops_push_done_fn pcb;
        void *ud;
        int error;
        char id[32];
        bool adopted;
        bool has_server;
        struct srv server;
        struct srv *servers;
        size_t n_servers;
        char *console;
        struct ops_slurm_nodes *nodes;
};

struct fake {
        sd_event *e;
        struct srv srv[MAX_SERVERS];
        unsigned next_srv;
        struct fnode node[MAX_NODES];
        size_t n_nodes;
        char log[16384];                /* every call, space-separated */
        char power[512];                /* resize's power updates */
        struct {
                const char *call;       /* inject into the NTH call of this name */
                unsigned nth;
                enum outcome how;
                unsigned seen;
                bool fired;
                const char *prefail;    /* this call fails for good once first; counting starts after */
                bool prefailed;
        } inj;
        const char *hold;               /* replies of this call wait for fake_release() */
        bool never_register;
        bool no_capacity;               /* creates fail with a quota 403 (a capacity failure) */
        int power_down_loads;   /* a forced power down lasts this many loads ... */
        int power_down_view_lag; /* ... and this many more show it */
        bool kill;                      /* a kill outcome fired: drop the core */
        unsigned creates;
        struct pending *pending;
        /* The port's optional newest(): a copy of the last load delivered
         * (as ctld keeps its newest), or no newest() at all. */
        bool with_newest;
        struct ops_slurm_nodes *newest;
};

/* The test cases run as they are, then some again with newest(). */
static bool fake_with_newest;

static void logf_call(struct fake *f, const char *call) {
        size_t len = strlen(f->log);

        snprintf(f->log + len, sizeof(f->log) - len, "%s%s", len ? " " : "", call);
}

static struct srv *srv_find(struct fake *f, const char *id) {
        for (size_t i = 0; i < MAX_SERVERS; i++)
                if (f->srv[i].used && id && strcmp(f->srv[i].id, id) == 0)
                        return &f->srv[i];
        return NULL;
}

static struct fnode *fnode_find(struct fake *f, const char *name) {
        for (size_t i = 0; i < f->n_nodes; i++)
                if (strcmp(f->node[i].name, name) == 0)
                        return &f->node[i];
        return NULL;
}

static size_t instances_of(struct fake *f, const char *node) {
        size_t n = 0;

        for (size_t i = 0; i < MAX_SERVERS; i++)
                n += f->srv[i].used && strcmp(f->srv[i].name, node) == 0;
        return n;
}

static struct srv *instance_of(struct fake *f, const char *node) {
        for (size_t i = 0; i < MAX_SERVERS; i++)
                if (f->srv[i].used && strcmp(f->srv[i].name, node) == 0)
                        return &f->srv[i];
        return NULL;
}

static void pending_free(struct pending *p) {
        sd_event_source_disable_unref(p->src);
        free(p->servers);
        free(p->console);
        free(p->nodes);
        free(p);
}

static void pending_unlink(struct pending *p) {
        for (struct pending **pp = &p->f->pending; *pp; pp = &(*pp)->next)
                if (*pp == p) {
                        *pp = p->next;
                        return;
                }
}

static void server_view(const struct srv *s, struct ops_server *v) {
        *v = (struct ops_server){ .id = s->id, .name = s->name, .status = s->status, .image_id = s->image,
                                  .ipv4 = s->ipv4[0] ? s->ipv4 : NULL, .node = s->name, .created = s->created };
}

static int on_deliver(sd_event_source *s, void *userdata) {
        struct pending *p = userdata;
        struct ops_server one, *many = NULL;
        struct ops_cloud_result res = { .error = p->error };

        pending_unlink(p);
        switch (p->type) {
        case P_CLOUD:
                if (p->error == -EDQUOT) {
                        res.http_status = 403;
                        res.message = "Quota exceeded for instances (fake)";
                        res.request_id = "req-quota";
                } else if (p->error) {
                        res.http_status = p->error == -EPERM ? 403 : p->error == -ENOENT ? 404 : 0;
                        res.message = p->error == -EPERM ? "Forbidden (fake)" : NULL;
                        res.request_id = p->error == -EPERM ? "req-fake" : NULL;
                }
                res.id = p->id[0] ? p->id : NULL;
                res.adopted = p->adopted;
                if (p->has_server) {
                        server_view(&p->server, &one);
                        res.server = &one;
                }
                if (p->n_servers) {
                        many = calloc(p->n_servers, sizeof(*many));
                        for (size_t i = 0; many && i < p->n_servers; i++)
                                server_view(&p->servers[i], &many[i]);
                        res.servers = many;
                        res.n_servers = many ? p->n_servers : 0;
                }
                res.console = p->console;
                p->ccb(&res, p->ud);
                free(many);
                break;
        case P_SLURM:
                p->scb(p->error, p->error ? "fake slurmctld said no" : NULL, p->ud);
                break;
        case P_NODES:
                if (!p->error && p->f->with_newest) {
                        free(p->f->newest);
                        p->f->newest = malloc(sizeof(*p->nodes));
                        if (!p->f->newest)
                                abort();
                        memcpy(p->f->newest, p->nodes, sizeof(*p->nodes));
                }
                p->ncb(p->error, p->error ? NULL : TAKE_PTR(p->nodes), p->error ? "fake load failed" : NULL, p->ud);
                break;
        case P_PUSH: {
                char *steps[] = { (char *) "connect", NULL };

                p->pcb(p->error, p->error ? "fake push failed" : NULL, steps, 0.01, p->ud);
                break;
        }
        }
        pending_free(p);
        return 0;
}

/* The outcome of this call: injected or OK. */
static enum outcome fake_outcome(struct fake *f, const char *call) {
        logf_call(f, call);
        if (f->inj.prefail && !f->inj.prefailed) {
                if (strcmp(call, f->inj.prefail) == 0) {
                        f->inj.prefailed = true;
                        return OUT_ERROR;
                }
                return OUT_OK;
        }
        if (f->inj.call && !f->inj.fired && strcmp(call, f->inj.call) == 0 && ++f->inj.seen == f->inj.nth) {
                f->inj.fired = true;
                return f->inj.how;
        }
        return OUT_OK;
}

/* Queue the reply of a call made with outcome HOW (the action, if any, is done). */
static struct pending *fake_reply(struct fake *f, const char *call, enum ptype type, enum outcome how,
                                  void *cb, void *ud, int lost_error) {
        struct pending *p = calloc(1, sizeof(*p));

        if (!p)
                abort();
        p->f = f;
        p->call = call;
        p->type = type;
        p->ud = ud;
        switch (type) {
        case P_CLOUD:
                p->ccb = (ops_cloud_done_fn) cb;
                break;
        case P_SLURM:
                p->scb = (ops_slurm_done_fn) cb;
                break;
        case P_NODES:
                p->ncb = (ops_slurm_nodes_fn) cb;
                break;
        case P_PUSH:
                p->pcb = (ops_push_done_fn) cb;
                break;
        }
        p->error = how == OUT_ERROR     ? (type == P_PUSH ? -EPROTO : type == P_NODES ? -EIO : -EPERM)
                   : how == OUT_TIMEOUT ? -ETIMEDOUT
                   : how == OUT_LOST    ? lost_error
                                        : 0;
        p->dead = how == OUT_KILL;
        p->held = f->hold && strcmp(f->hold, call) == 0;
        if (sd_event_add_defer(f->e, &p->src, on_deliver, p) < 0)
                abort();
        sd_event_source_set_enabled(p->src, p->dead || p->held ? SD_EVENT_OFF : SD_EVENT_ONESHOT);
        if (p->dead)
                f->kill = true;
        p->next = f->pending;
        f->pending = p;
        return p;
}

static void fake_release(struct fake *f) {
        f->hold = NULL;
        for (struct pending *p = f->pending; p; p = p->next)
                if (p->held && !p->dead) {
                        p->held = false;
                        sd_event_source_set_enabled(p->src, SD_EVENT_ONESHOT);
                }
}

static bool fake_holding(struct fake *f, const char *call) {
        for (struct pending *p = f->pending; p; p = p->next)
                if (p->held && strcmp(p->call, call) == 0)
                        return true;
        return false;
}

/* How elasticd's stop treats what is out: ctld and the pushers call back
 * with -ECANCELED (before the lifecycle goes); cloud calls are cancelled by
 * lifecycle_free. */
static void fake_cancel_slurm_and_push(struct fake *f) {
        struct pending *p, *next;

        for (p = f->pending; p; p = next) {
                next = p->next;
                if (p->type == P_CLOUD)
                        continue;
                pending_unlink(p);
                if (p->type == P_SLURM)
                        p->scb(-ECANCELED, "cancelled", p->ud);
                else if (p->type == P_NODES)
                        p->ncb(-ECANCELED, TAKE_PTR(p->nodes), "cancelled", p->ud);
                else {
                        char *steps[] = { NULL };
                        p->pcb(-ECANCELED, "cancelled", steps, 0, p->ud);
                }
                pending_free(p);
        }
}

static size_t fake_n_pending(struct fake *f) {
        size_t n = 0;

        for (struct pending *p = f->pending; p; p = p->next)
                n++;
        return n;
}

/* cloud port */

static int c_resolve(struct fake *f, const char *call, const char *prefix, const char *name, ops_cloud_done_fn cb,
                     void *ud, uint64_t *ret_id) {
        enum outcome how = fake_outcome(f, call);
        struct pending *p = fake_reply(f, call, P_CLOUD, how, cb, ud, -ECONNRESET);

        if (!p->error)
                snprintf(p->id, sizeof(p->id), "%s-%s", prefix, name);
        *ret_id = (uint64_t) (uintptr_t) p;
        return 0;
}

static int c_flavor(void *impl, const char *name, ops_cloud_done_fn cb, void *ud, uint64_t *id) {
        return c_resolve(impl, "flavor", "flv", name, cb, ud, id);
}

static int c_image(void *impl, const char *name, ops_cloud_done_fn cb, void *ud, uint64_t *id) {
        return c_resolve(impl, "image", "img", name, cb, ud, id);
}

static int c_network(void *impl, const char *name, ops_cloud_done_fn cb, void *ud, uint64_t *id) {
        return c_resolve(impl, "network", "net", name, cb, ud, id);
}

static bool c_literal(const char *name) {
        return strcmp(name, "none") == 0 || strcmp(name, "auto") == 0;
}

static int c_create(void *impl, const struct ops_create *spec, ops_cloud_done_fn cb, void *ud, uint64_t *id) {
        struct fake *f = impl;
        enum outcome how = fake_outcome(f, "create");
        struct pending *p = fake_reply(f, "create", P_CLOUD, how, cb, ud, -EIO);
        struct srv *s = NULL;

        if (!spec->cluster || strcmp(spec->cluster, "t") != 0 || !spec->op_id || !spec->flavor_id ||
            !spec->image_id)
                abort();
        if (f->no_capacity) {
                p->error = -EDQUOT;
                p->dead = false;
                *id = (uint64_t) (uintptr_t) p;
                return 0;
        }
        if (how != OUT_ERROR && how != OUT_TIMEOUT) {
                for (size_t i = 0; i < MAX_SERVERS && !s; i++)
                        if (!f->srv[i].used)
                                s = &f->srv[i];
                if (!s)
                        abort();
                f->next_srv++;
                *s = (struct srv){ .used = true, .created = time(NULL) };
                snprintf(s->id, sizeof(s->id), "i-%u", f->next_srv);
                snprintf(s->name, sizeof(s->name), "%s", spec->name);
                snprintf(s->status, sizeof(s->status), "BUILD");
                snprintf(s->image, sizeof(s->image), "%s", spec->image_id);
                snprintf(s->ipv4, sizeof(s->ipv4), "10.0.0.%u", f->next_srv);
                f->creates++;
                if (!p->error)
                        snprintf(p->id, sizeof(p->id), "%s", s->id);
        }
        *id = (uint64_t) (uintptr_t) p;
        return 0;
}

static int c_show(void *impl, const char *sid, ops_cloud_done_fn cb, void *ud, uint64_t *id) {
        struct fake *f = impl;
        enum outcome how = fake_outcome(f, "show");
        struct pending *p = fake_reply(f, "show", P_CLOUD, how, cb, ud, -ECONNRESET);
        struct srv *s = srv_find(f, sid);

        if (how != OUT_ERROR && how != OUT_TIMEOUT && s) {
                p->server = *s;
                /* A build, reboot or rebuild is over by the next look. */
                if (strcmp(s->status, "ACTIVE") != 0)
                        snprintf(s->status, sizeof(s->status), "ACTIVE");
        }
        if (!p->error) {
                if (s)
                        p->has_server = true;
                else
                        p->error = -ENOENT;
        }
        *id = (uint64_t) (uintptr_t) p;
        return 0;
}

static int c_list_as(struct fake *f, const char *call, const char *name, ops_cloud_done_fn cb, void *ud,
                     uint64_t *id) {
        enum outcome how = fake_outcome(f, call);
        struct pending *p = fake_reply(f, call, P_CLOUD, how, cb, ud, -ECONNRESET);

        if (!p->error) {
                p->servers = calloc(MAX_SERVERS, sizeof(*p->servers));
                for (size_t i = 0; p->servers && i < MAX_SERVERS; i++)
                        if (f->srv[i].used && (!name || strcmp(f->srv[i].name, name) == 0))
                                p->servers[p->n_servers++] = f->srv[i];
        }
        *id = (uint64_t) (uintptr_t) p;
        return 0;
}

static int c_list(void *impl, const char *name, ops_cloud_done_fn cb, void *ud, uint64_t *id) {
        /* The reconcile's list of everything is not an operation's step. */
        return c_list_as(impl, name ? "list" : "reconcile", name, cb, ud, id);
}

static int c_delete(void *impl, const char *sid, ops_cloud_done_fn cb, void *ud, uint64_t *id) {
        struct fake *f = impl;
        enum outcome how = fake_outcome(f, "delete");
        struct pending *p = fake_reply(f, "delete", P_CLOUD, how, cb, ud, -ECONNRESET);
        struct srv *s = srv_find(f, sid);

        /* Gone already counts as deleted (cloud.h). */
        if (how != OUT_ERROR && how != OUT_TIMEOUT && s)
                s->used = false;
        *id = (uint64_t) (uintptr_t) p;
        return 0;
}

static int c_action(struct fake *f, const char *call, const char *sid, const char *image, ops_cloud_done_fn cb,
                    void *ud, uint64_t *id) {
        enum outcome how = fake_outcome(f, call);
        struct pending *p = fake_reply(f, call, P_CLOUD, how, cb, ud, -ECONNRESET);
        struct srv *s = srv_find(f, sid);

        if (how != OUT_ERROR && how != OUT_TIMEOUT && s) {
                struct fnode *n = fnode_find(f, s->name);

                snprintf(s->status, sizeof(s->status), "%s", image ? "REBUILD" : "REBOOT");
                if (image)
                        snprintf(s->image, sizeof(s->image), "%s", image);
                if (n)
                        n->boot_time = time(NULL);
        }
        if (!p->error && !s)
                p->error = -ENOENT;
        *id = (uint64_t) (uintptr_t) p;
        return 0;
}

static int c_reboot(void *impl, const char *sid, bool hard, ops_cloud_done_fn cb, void *ud, uint64_t *id) {
        return c_action(impl, "reboot", sid, NULL, cb, ud, id);
}

static int c_rebuild(void *impl, const char *sid, const char *image, ops_cloud_done_fn cb, void *ud, uint64_t *id) {
        return c_action(impl, "rebuild", sid, image, cb, ud, id);
}

static int c_console(void *impl, const char *sid, unsigned lines, ops_cloud_done_fn cb, void *ud, uint64_t *id) {
        struct fake *f = impl;
        enum outcome how = fake_outcome(f, "console");
        struct pending *p = fake_reply(f, "console", P_CLOUD, how, cb, ud, -ECONNRESET);

        if (!p->error) {
                if (srv_find(f, sid))
                        p->console = strdup("boot\n-----BEGIN SSH HOST KEY KEYS-----\nssh-ed25519 AAAA\n"
                                            "-----END SSH HOST KEY KEYS-----\n");
                else
                        p->error = -ENOENT;
        }
        *id = (uint64_t) (uintptr_t) p;
        return 0;
}

/* As cloud/oserror.c classes the fake's errors (doc/failures.md). */
static enum ops_failure c_classify(int error, long http_status, const char *message) {
        if (error == -EDQUOT || (message && strstr(message, "No valid host")))
                return OPS_FAILURE_CAPACITY;
        if (error == -ETIMEDOUT || error == -ECONNRESET)
                return OPS_FAILURE_TRANSIENT;
        return OPS_FAILURE_PERMANENT;
}

static void c_cancel(void *impl, uint64_t id) {
        struct fake *f = impl;
        struct pending *p = (struct pending *) (uintptr_t) id;

        for (struct pending *q = f->pending; q; q = q->next)
                if (q == p) {
                        pending_unlink(p);
                        pending_free(p);
                        return;
                }
        abort(); /* a cancel of a call that is not out: the adapter would free twice */
}

/* Slurm port */

static bool node_registered(struct fake *f, const struct fnode *n) {
        const struct srv *s = instance_of(f, n->name);

        return !f->never_register && s && strcmp(s->status, "ACTIVE") == 0 && strcmp(n->addr, s->ipv4) == 0 &&
               (n->name[0] != 's' || n->configured);
}

static int s_load(void *impl, ops_slurm_nodes_fn cb, void *ud) {
        struct fake *f = impl;
        enum outcome how = fake_outcome(f, "load");
        struct pending *p = fake_reply(f, "load", P_NODES, how, cb, ud, -ETIMEDOUT);
        struct ops_slurm_nodes *ns = calloc(1, sizeof(*ns));

        if (!ns)
                abort();
        /* What slurmctld holds when the load is made. */
        for (size_t i = 0; i < f->n_nodes; i++) {
                struct fnode *n = &f->node[i];
                struct nview *v = &ns->v[ns->n++];
                const struct srv *s = instance_of(f, n->name);
                bool reg = node_registered(f, n);

                snprintf(v->name, sizeof(v->name), "%s", n->name);
                snprintf(v->reason, sizeof(v->reason), "%s", n->reason);
                snprintf(v->state, sizeof(v->state), "%s%s", n->down ? "DOWN" : "IDLE",
                         reg ? "+CLOUD" : n->powering_up ? "+CLOUD+POWERING_UP" :
                         n->powering_down || n->shown_powering_down ? "+CLOUD+POWERING_DOWN" : "+CLOUD+POWERED_DOWN");
                v->n = (struct ops_slurm_node){
                        .down = n->down,
                        .powered_down = !reg && !n->powering_up && !n->powering_down && !n->shown_powering_down,
                        .powering_down = !reg && (n->powering_down > 0 || n->shown_powering_down > 0),
                        .powering_up = !reg && n->powering_up,
                        .boot_time = n->boot_time,
                        .reboot_pending = s && (strcmp(s->status, "REBOOT") == 0 || strcmp(s->status, "REBUILD") == 0),
                };
        }
        p->nodes = ns;
        for (size_t i = 0; i < f->n_nodes; i++)
                if (f->node[i].powering_down > 0)
                        f->node[i].powering_down--;
                else if (f->node[i].shown_powering_down > 0)
                        f->node[i].shown_powering_down--;
        return 0;
}

static bool s_find(const struct ops_slurm_nodes *ns, const char *name, struct ops_slurm_node *ret) {
        for (size_t i = 0; ns && i < ns->n; i++)
                if (strcmp(ns->v[i].name, name) == 0) {
                        *ret = ns->v[i].n;
                        ret->state = ns->v[i].state;
                        ret->reason = ns->v[i].reason[0] ? ns->v[i].reason : NULL;
                        return true;
                }
        return false;
}

static void s_free(struct ops_slurm_nodes *ns) {
        free(ns);
}

static const struct ops_slurm_nodes *s_newest(void *impl) {
        struct fake *f = impl;

        return f->newest;
}

static int s_update(void *impl, const struct ops_slurm_update *u, ops_slurm_done_fn cb, void *ud) {
        struct fake *f = impl;
        enum outcome how = fake_outcome(f, "update");
        struct fnode *n = fnode_find(f, u->nodes);

        fake_reply(f, "update", P_SLURM, how, cb, ud, -ETIMEDOUT);
        if (how == OUT_ERROR || how == OUT_TIMEOUT)
                return 0;
        if (u->state == OPS_SLURM_POWER_UP || u->state == OPS_SLURM_POWER_DOWN_ASAP) {
                size_t len = strlen(f->power);

                snprintf(f->power + len, sizeof(f->power) - len, "%s%s %s", len ? "; " : "",
                         u->state == OPS_SLURM_POWER_UP ? "up" : "down", u->nodes);
                /* slurmctld marks it and runs ResumeProgram (not modelled). */
                if (n && u->state == OPS_SLURM_POWER_UP)
                        n->powering_up = true;
                return 0;
        }
        if (!n)
                abort();
        if (u->addr)
                snprintf(n->addr, sizeof(n->addr), "%s", u->addr);
        if (u->state == OPS_SLURM_DOWN && n->powering_down == 0) {
                n->down = true;
                snprintf(n->reason, sizeof(n->reason), "%s", u->reason ? u->reason : "");
        }
        if (u->state == OPS_SLURM_POWER_DOWN_FORCE) {
                /* slurmctld requeues its job and powers it down (SuspendProgram not modelled). */
                n->forced_off = true;
                n->powering_up = false;
                n->down = false;
                n->powering_down = f->power_down_loads;
                n->shown_powering_down = f->power_down_view_lag;
                snprintf(n->reason, sizeof(n->reason), "%s", u->reason ? u->reason : "");
        }
        if (u->state == OPS_SLURM_RESUME)
                n->down = false;
        return 0;
}

static int s_reconfigure(void *impl, ops_slurm_done_fn cb, void *ud) {
        struct fake *f = impl;

        fake_reply(f, "reconfigure", P_SLURM, fake_outcome(f, "reconfigure"), cb, ud, -ETIMEDOUT);
        return 0;
}

/* push port */

static int p_start(void *impl, const struct ops_push_spec *spec, ops_push_done_fn cb, void *ud, char **ret_error) {
        struct fake *f = impl;
        struct srv *s;
        enum outcome how;

        /* The key's bytes come with the spec (read at config load). */
        if (!spec->private_key_data || strcmp(spec->private_key_data, "key\n") != 0) {
                *ret_error = strdup("no private key");
                return -EINVAL;
        }
        if (!spec->console || !strstr(spec->console, "BEGIN SSH HOST KEY KEYS"))
                return OPS_PUSH_NO_KEYS;
        how = fake_outcome(f, "push");
        fake_reply(f, "push", P_PUSH, how, cb, ud, -ETIMEDOUT);
        for (size_t i = 0; i < MAX_SERVERS; i++) {
                s = &f->srv[i];
                if (s->used && strcmp(s->ipv4, spec->address) == 0 && how != OUT_ERROR && how != OUT_TIMEOUT) {
                        struct fnode *n = fnode_find(f, s->name);
                        if (n)
                                n->configured = true;
                }
        }
        return 0;
}

/* --- a world: config, journal, state, core ------------------------------------ */

static char key_path[] = "/tmp/test-ops-key.XXXXXX";

static const char cpu_fmt[] =
        "  - name: cpu\n"
        "    nodes: cn[1-4]\n"
        "    flavor: small\n"
        "    image: %s\n"
        "    networks: [net0]\n";
static const char ssh_fmt[] =
        "  - name: ssh\n"
        "    nodes: sn[1-2]\n"
        "    flavor: small\n"
        "    image: base\n"
        "    networks: [none]\n"
        "    ssh:\n"
        "      private_key: %s\n"
        "      commands: [\"true\"]\n";

struct world {
        sd_event *e;
        struct fake f;
        struct ops_ports ports;
        struct config *config;
        struct nodemap *map;
        struct state *state;
        json_t *journal;                /* every record, in order: what a restart replays */
        struct lifecycle *l;
        struct resize *resize;
        struct lifecycle_options opts;
        unsigned kills;
};

/* The cpu group (with IMAGE) unless IMAGE is NULL, and the ssh group. */
static struct config *load_config(const char *image) {
        char text[2048];
        struct config *c = NULL;
        char *err = NULL;
        int n;

        n = snprintf(text, sizeof(text), "cluster: t\ncloud: fake\nstate_dir: /tmp\ngroups:\n");
        if (image)
                n += snprintf(text + n, sizeof(text) - (size_t) n, cpu_fmt, image);
        snprintf(text + n, sizeof(text) - (size_t) n, ssh_fmt, key_path);
        if (config_load_string("test", text, strlen(text), &c, &err) < 0) {
                printf("# config: %s\n", err ? err : "?");
                free(err);
                abort();
        }
        return c;
}

static int record(void *userdata, json_t *records, char **ret_error) {
        struct world *w = userdata;
        size_t i;
        json_t *rec;

        json_array_foreach(records, i, rec) {
                char *err = NULL;

                json_array_append(w->journal, rec);
                if (state_apply(w->state, rec, &err) < 0) {
                        TEST_FAIL("the core's own record does not apply: %s", err ? err : "?");
                        free(err);
                }
        }
        return 0;
}

static void core_start(struct world *w) {
        struct lifecycle_env env = {
                .event = w->e,
                .ports = w->ports,
                .record = record,
                .userdata = w,
        };
        size_t i;
        json_t *rec;

        if (state_new("t", &w->state) < 0)
                abort();
        json_array_foreach(w->journal, i, rec)
                if (state_apply(w->state, rec, NULL) < 0)
                        abort();
        env.state = w->state;
        if (lifecycle_new(&env, &w->opts, w->config, w->map, &w->l) < 0)
                abort();
        lifecycle_kick(w->l);
}

/* kill -9: what is in memory goes; the journal and the cloud stay. */
static void core_drop(struct world *w) {
        fake_cancel_slurm_and_push(&w->f);
        w->resize = resize_free(w->resize);
        w->l = lifecycle_free(w->l);
        w->state = state_free(w->state);
        /* Dead replies are not cancelled by anyone once the core is gone. */
        while (w->f.pending) {
                struct pending *p = w->f.pending;

                if (!p->dead)
                        TEST_FAIL("a %s call was left out after the core went", p->call);
                pending_unlink(p);
                pending_free(p);
        }
}

static void world_init(struct world *w, const struct lifecycle_options *opts) {
        static const char *const nodes[] = { "cn1", "cn2", "cn3", "cn4", "sn1", "sn2" };
        char *err = NULL;

        *w = (struct world){ 0 };
        if (sd_event_new(&w->e) < 0)
                abort();
        w->f.e = w->e;
        w->f.with_newest = fake_with_newest;
        for (size_t i = 0; i < ELEMENTSOF(nodes); i++) {
                struct fnode *n = &w->f.node[w->f.n_nodes++];

                snprintf(n->name, sizeof(n->name), "%s", nodes[i]);
                snprintf(n->addr, sizeof(n->addr), "%s", nodes[i]);
        }
        w->ports = (struct ops_ports){
                .cloud = { .impl = &w->f, .flavor_resolve = c_flavor, .image_resolve = c_image,
                           .network_resolve = c_network, .network_is_literal = c_literal,
                           .server_create = c_create, .server_show = c_show, .servers_list = c_list,
                           .server_delete = c_delete, .server_reboot = c_reboot, .server_rebuild = c_rebuild,
                           .server_console = c_console, .cancel = c_cancel },
                .slurm = { .impl = &w->f, .load_nodes = s_load, .node_find = s_find, .nodes_free = s_free,
                           .update = s_update, .reconfigure = s_reconfigure,
                           .newest = w->f.with_newest ? s_newest : NULL },
                .push = { .impl = &w->f, .start = p_start },
        };
        w->config = load_config("base");
        if (nodemap_new_from_config(w->config, &w->map, &err) < 0)
                abort();
        w->journal = json_array();
        w->opts = (struct lifecycle_options){ .poll_usec = 1 * USEC, .retry_usec = 1 * USEC, .accuracy_usec = 1,
                                              .console_poll_usec = 1 * USEC };
        if (opts)
                w->opts = *opts;
        core_start(w);
}

static void world_done(struct world *w) {
        core_drop(w);
        w->f.newest = mfree(w->f.newest);
        w->config = config_free(w->config);
        w->map = nodemap_free(w->map);
        json_decref(w->journal);
        w->e = sd_event_unref(w->e);
}

/* Journal and apply RECORDS as the request handler does, then kick. */
static void commit(struct world *w, json_t *records) {
        record(w, records, NULL);
        json_decref(records);
        lifecycle_kick(w->l);
        if (w->resize)
                resize_kick(w->resize);
}

/* A hook request for NODE, with request.c's rules: the same kind again is
 * "already pending"; another kind supersedes. */
static void submit(struct world *w, enum state_op_kind kind, const char *node, const char *reason) {
        static const enum record_request_type types[_STATE_OP_KIND_MAX] = {
                [STATE_OP_RESUME] = RECORD_REQUEST_RESUME,
                [STATE_OP_SUSPEND] = RECORD_REQUEST_SUSPEND,
                [STATE_OP_RESUME_FAIL] = RECORD_REQUEST_RESUME_FAIL,
                [STATE_OP_REBOOT] = RECORD_REQUEST_REBOOT,
        };
        const struct state_node *sn = state_node_find(w->state, node);
        bool active = sn && state_op_state_is_active(sn->op.state);
        bool pending = active && sn->op.kind == kind &&
                       !(kind == STATE_OP_REBOOT && sn->step && strcmp(sn->step, "registering") == 0);
        struct record recs[3];
        json_t *records = json_array();
        char *rid = NULL, *oid = NULL;
        size_t g, i, n = 0;

        if (state_new_id(w->state, 'r', &rid) < 0 || config_node_find(w->config, node, &g, &i) < 0 ||
            (!pending && state_new_id(w->state, 'o', &oid) < 0))
                abort();
        recs[n++] = (struct record){ .kind = RECORD_REQUEST,
                                     .request = { .id = rid, .type = types[kind], .time = time(NULL), .nodes = node,
                                                  .reason = reason, .operations = !pending } };
        if (active && !pending)
                recs[n++] = (struct record){ .kind = RECORD_OP_STATE,
                                             .op_state = { .id = sn->op.id, .node = node, .state = STATE_OP_CANCELLED,
                                                           .time = time(NULL), .note = RECORD_TEXT("superseded"),
                                                           .by_request = rid } };
        if (!pending)
                recs[n++] = (struct record){ .kind = RECORD_OP,
                                             .op = { .id = oid, .node = node, .group = w->config->groups[g].name,
                                                     .op = kind, .state = STATE_OP_PENDING, .request = rid,
                                                     .time = time(NULL) } };
        for (size_t k = 0; k < n; k++) {
                json_t *rec = NULL;
                char *err = NULL;

                if (record_encode(&recs[k], &rec, &err) < 0) {
                        printf("# %s\n", err ? err : "?");
                        abort();
                }
                json_array_append_new(records, rec);
        }
        if (kind == STATE_OP_RESUME && !pending)
                /* slurmctld runs ResumeProgram for nodes it is powering up */
                fnode_find(&w->f, node)->powering_up = true;
        commit(w, records);
        free(rid);
        free(oid);
}

static uint64_t mono_usec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000ULL + (uint64_t) ts.tv_nsec / 1000;
}

static size_t active_ops(struct world *w) {
        struct lifecycle_stats st;

        lifecycle_get_stats(w->l, &st);
        return st.active + state_n_nodes_in(w->state, STATE_OP_PENDING) + state_n_nodes_in(w->state, STATE_OP_RUNNING);
}

/* Run the loop until STOP says so (NULL: until no operation is left and no
 * reply is due); a kill drops the core and replays the journal. False after
 * 2 s. */
static bool run(struct world *w, bool (*stop)(struct world *w)) {
        uint64_t until = mono_usec() + 2000000ULL;

        for (;;) {
                if (w->f.kill) {
                        w->f.kill = false;
                        w->kills++;
                        core_drop(w);
                        core_start(w);
                }
                if (stop ? stop(w) : active_ops(w) == 0 && fake_n_pending(&w->f) == 0)
                        return true;
                if (mono_usec() > until)
                        return false;
                (void) sd_event_run(w->e, 2000);
        }
}

/* --- checks ---------------------------------------------------------------------- */

static enum state_op_state op_state_of(struct world *w, const char *node) {
        const struct state_node *sn = state_node_find(w->state, node);

        return sn ? sn->op.state : (enum state_op_state) -1;
}

static const char *note_of(struct world *w, const char *node) {
        const struct state_node *sn = state_node_find(w->state, node);

        return sn && sn->note ? sn->note : "";
}

/* A resumed node: one ACTIVE instance, Slurm has its address. */
static void check_up(struct world *w, const char *node) {
        struct srv *s = instance_of(&w->f, node);
        struct fnode *n = fnode_find(&w->f, node);

        CHECK_INT(instances_of(&w->f, node), 1);
        if (!s || !n)
                return;
        CHECK_STR(s->status, "ACTIVE");
        CHECK_STR(n->addr, s->ipv4);
        CHECK(!n->down);
}

/* A failed operation: no instance left, the node DOWN with elasticd's reason
 * (a failed resume: powered down with it, DOWN once Slurm has it off). */
static void check_failed_down(struct world *w, const char *node) {
        struct fnode *n = fnode_find(&w->f, node);

        CHECK_INT(op_state_of(w, node), STATE_OP_FAILED);
        CHECK_INT(instances_of(&w->f, node), 0);
        CHECK(n->down || n->forced_off);
        if (strncmp(n->reason, "elasticd: ", 10) != 0)
                TEST_FAIL("reason \"%s\"", n->reason);
}

static void resume_up(struct world *w, const char *node) {
        submit(w, STATE_OP_RESUME, node, NULL);
        if (!run(w, NULL))
                TEST_FAIL("the set-up resume of %s did not end", node);
        CHECK_INT(op_state_of(w, node), STATE_OP_DONE);
        fnode_find(&w->f, node)->powering_up = false;
}

/* --- every call of every kind, with each outcome --------------------------------- */

struct row {
        enum state_op_kind kind;
        const char *node;
        const char *reason;      /* reboot: the request's reason */
        const char *prefail;     /* fail this call first, to walk the failure path */
        const char *call;
        unsigned nth;
        unsigned fails;          /* outcomes (1 << OUT_x) that end the operation failed */
        const char *step;        /* the step the call belongs to, for the TAP line */
};

#define F(x) (1u << OUT_##x)

static const struct row rows[] = {
        /* resume: preparing -> creating -> building -> addressing -> registering */
        { STATE_OP_RESUME, "cn1", NULL, NULL, "flavor", 1, F(ERROR), "preparing" },
        { STATE_OP_RESUME, "cn1", NULL, NULL, "image", 1, F(ERROR), "preparing" },
        { STATE_OP_RESUME, "cn1", NULL, NULL, "network", 1, F(ERROR), "preparing" },
        { STATE_OP_RESUME, "cn1", NULL, NULL, "create", 1, F(ERROR) | F(TIMEOUT) | F(LOST), "creating" },
        { STATE_OP_RESUME, "cn1", NULL, NULL, "show", 1, 0, "building" },
        { STATE_OP_RESUME, "cn1", NULL, NULL, "show", 2, 0, "building (ACTIVE)" },
        { STATE_OP_RESUME, "cn1", NULL, NULL, "update", 1, 0, "addressing" },
        { STATE_OP_RESUME, "cn1", NULL, NULL, "load", 2, 0, "registering" },
        /* resume of a group with ssh: configuring */
        { STATE_OP_RESUME, "sn1", NULL, NULL, "console", 1, 0, "configuring (console)" },
        { STATE_OP_RESUME, "sn1", NULL, NULL, "push", 1, F(ERROR) | F(TIMEOUT) | F(LOST), "configuring (push)" },
        /* the failure path: cleanup -> cleanup_confirming -> marking */
        { STATE_OP_RESUME, "cn1", NULL, "create", "list", 1, ~0u, "cleanup (lookup)" },
        { STATE_OP_RESUME, "cn1", NULL, "create", "update", 1, ~0u, "marking" },
        { STATE_OP_RESUME, "sn1", NULL, "push", "delete", 1, ~0u, "cleanup" },
        { STATE_OP_RESUME, "sn1", NULL, "push", "show", 1, ~0u, "cleanup_confirming" },
        { STATE_OP_RESUME, "sn1", NULL, "push", "update", 1, ~0u, "marking (after cleanup)" },
        /* suspend: deleting -> confirming -> clearing */
        { STATE_OP_SUSPEND, "cn1", NULL, NULL, "delete", 1, 0, "deleting" },
        { STATE_OP_SUSPEND, "cn1", NULL, NULL, "show", 1, 0, "confirming" },
        { STATE_OP_SUSPEND, "cn1", NULL, NULL, "update", 1, 0, "clearing" },
        /* resume_fail: deleting -> confirming -> marking (Slurm marked it) */
        { STATE_OP_RESUME_FAIL, "cn1", NULL, NULL, "delete", 1, 0, "deleting" },
        { STATE_OP_RESUME_FAIL, "cn1", NULL, NULL, "show", 1, 0, "confirming" },
        /* reboot: reboot_preparing -> rebooting -> building -> registering */
        { STATE_OP_REBOOT, "cn1", NULL, NULL, "load", 1, 0, "reboot_preparing (Slurm's reason)" },
        { STATE_OP_REBOOT, "cn1", NULL, NULL, "image", 1, 0, "reboot_preparing (image)" },
        { STATE_OP_REBOOT, "cn1", NULL, NULL, "show", 1, 0, "reboot_preparing (instance)" },
        { STATE_OP_REBOOT, "cn1", NULL, NULL, "reboot", 1, F(ERROR), "rebooting" },
        { STATE_OP_REBOOT, "cn1", NULL, NULL, "show", 2, 0, "building" },
        { STATE_OP_REBOOT, "cn1", NULL, NULL, "load", 2, 0, "registering" },
        /* rebuild: the reason asks for it */
        { STATE_OP_REBOOT, "cn1", "reimage", NULL, "image", 1, F(ERROR), "reboot_preparing (image for rebuild)" },
        { STATE_OP_REBOOT, "cn1", "reimage", NULL, "show", 2, 0, "building (rebuilt)" },
        { STATE_OP_REBOOT, "cn1", "reimage", NULL, "rebuild", 1, F(ERROR), "rebuilding" },
        /* reboot of a group with ssh: configured again */
        { STATE_OP_REBOOT, "sn1", NULL, NULL, "console", 1, 0, "configuring (console)" },
        { STATE_OP_REBOOT, "sn1", NULL, NULL, "push", 1, F(ERROR) | F(TIMEOUT) | F(LOST), "configuring (push)" },
};

static void check_end(struct world *w, const struct row *row, enum outcome how) {
        bool fails = row->prefail || (row->fails & (1u << how));
        struct srv *s;

        if (fails) {
                check_failed_down(w, row->node);
                return;
        }
        CHECK_INT(op_state_of(w, row->node), STATE_OP_DONE);
        switch (row->kind) {
        case STATE_OP_RESUME:
                check_up(w, row->node);
                break;
        case STATE_OP_SUSPEND:
                CHECK_INT(instances_of(&w->f, row->node), 0);
                /* A refused clearing is left to Slurm (it resets the address at power-down). */
                if (strcmp(row->call, "update") != 0 || (how != OUT_ERROR && how != OUT_TIMEOUT))
                        CHECK_STR(fnode_find(&w->f, row->node)->addr, row->node);
                break;
        case STATE_OP_RESUME_FAIL:
                CHECK_INT(instances_of(&w->f, row->node), 0);
                break;
        case STATE_OP_REBOOT:
                check_up(w, row->node);
                s = instance_of(&w->f, row->node);
                if (s && row->reason)
                        CHECK_STR(s->image, "img-base");
                if (!strstr(w->f.log, row->reason ? "rebuild" : "reboot"))
                        TEST_FAIL("no %s call: %s", row->reason ? "rebuild" : "reboot", w->f.log);
                break;
        default:
                break;
        }
}

static void run_row(const struct row *row, enum outcome how) {
        struct world w;

        world_init(&w, NULL);
        if (row->kind != STATE_OP_RESUME)
                resume_up(&w, row->node);
        if (row->kind == STATE_OP_REBOOT && row->reason)
                /* The instance runs the image the group names: only the reason rebuilds. */
                CHECK_STR(instance_of(&w.f, row->node)->image, "img-base");
        w.f.log[0] = 0;
        w.f.inj.call = row->call;
        w.f.inj.nth = row->nth;
        w.f.inj.how = how;
        w.f.inj.prefail = row->prefail;
        submit(&w, row->kind, row->node, row->reason);
        if (!run(&w, NULL))
                TEST_FAIL("no end within 2 s: %s", w.f.log);
        else if (how != OUT_OK && !w.f.inj.fired)
                TEST_FAIL("%s call %u was never made: %s", row->call, row->nth, w.f.log);
        else
                check_end(&w, row, how);
        if (how == OUT_KILL)
                CHECK_INT(w.kills, 1);
        if (test_case_failed)
                printf("# calls: %s\n# note: %s\n", w.f.log, note_of(&w, row->node));
        world_done(&w);
}

static void test_rows(void) {
        for (size_t i = 0; i < ELEMENTSOF(rows); i++)
                for (enum outcome how = OUT_ERROR; how < _OUT_MAX; how++) {
                        const struct row *row = &rows[i];

                        test_case_failed = 0;
                        run_row(row, how);
                        test_count++;
                        if (test_case_failed)
                                test_failed++;
                        printf("%s %d - %s %s, %s: %s #%u %s%s%s\n", test_case_failed ? "not ok" : "ok", test_count,
                               state_op_kind_to_string(row->kind), row->node, row->step, row->call, row->nth,
                               outcome_names[how], row->prefail ? " after a failed " : "",
                               row->prefail ? row->prefail : "");
                }
}

/* LOG without the calls named A and B. */
static const char *without(const char *log, const char *a, const char *b) {
        static char out[sizeof(((struct fake *) 0)->log)];
        char copy[sizeof(out)], *save = NULL;

        snprintf(copy, sizeof(copy), "%s", log);
        out[0] = 0;
        for (char *t = strtok_r(copy, " ", &save); t; t = strtok_r(NULL, " ", &save))
                if (strcmp(t, a) != 0 && strcmp(t, b) != 0)
                        snprintf(out + strlen(out), sizeof(out) - strlen(out), "%s%s", out[0] ? " " : "", t);
        return out;
}

/* Each kind from start to end with nothing going wrong: the calls in order. */
static void test_happy_paths(void) {
        struct world w;

        world_init(&w, NULL);
        submit(&w, STATE_OP_RESUME, "cn1", NULL);
        CHECK(run(&w, NULL));
        CHECK_INT(op_state_of(&w, "cn1"), STATE_OP_DONE);
        check_up(&w, "cn1");
        /* The start-up reconcile and its load of Slurm's nodes run beside it. */
        CHECK_STR(without(w.f.log, "reconcile", "load"), "flavor image network create show show update");
        CHECK(strcmp(w.f.log + strlen(w.f.log) - 11, "update load") == 0);
        CHECK_STR(instance_of(&w.f, "cn1")->image, "img-base");

        w.f.log[0] = 0;
        submit(&w, STATE_OP_REBOOT, "cn1", NULL);
        CHECK(run(&w, NULL));
        CHECK_INT(op_state_of(&w, "cn1"), STATE_OP_DONE);
        CHECK_STR(w.f.log, "load image show reboot show show load");

        w.f.log[0] = 0;
        submit(&w, STATE_OP_SUSPEND, "cn1", NULL);
        CHECK(run(&w, NULL));
        CHECK_INT(op_state_of(&w, "cn1"), STATE_OP_DONE);
        CHECK_INT(instances_of(&w.f, "cn1"), 0);
        CHECK_STR(w.f.log, "delete show update");

        w.f.log[0] = 0;
        resume_up(&w, "sn1");
        CHECK_STR(w.f.log, "flavor image create show show update console push load");
        w.f.log[0] = 0;
        submit(&w, STATE_OP_RESUME_FAIL, "sn1", NULL);
        CHECK(run(&w, NULL));
        CHECK_INT(op_state_of(&w, "sn1"), STATE_OP_DONE);
        CHECK_INT(instances_of(&w.f, "sn1"), 0);
        CHECK_STR(w.f.log, "delete show");
        world_done(&w);
}

/* slurmd never registers: the deadline fails the resume and cleans up. */
static void test_deadline(void) {
        struct world w;
        struct lifecycle_options o = { .poll_usec = USEC, .retry_usec = USEC, .accuracy_usec = 1,
                                       .console_poll_usec = USEC, .resume_timeout_usec = 50 * USEC };

        world_init(&w, &o);
        w.f.never_register = true;
        submit(&w, STATE_OP_RESUME, "cn1", NULL);
        CHECK(run(&w, NULL));
        check_failed_down(&w, "cn1");
        if (!strstr(fnode_find(&w.f, "cn1")->reason, "did not register by the deadline"))
                TEST_FAIL("reason: %s", fnode_find(&w.f, "cn1")->reason);
        world_done(&w);
}

static bool node_down(struct world *w) {
        return fnode_find(&w->f, "cn1")->down;
}

/* slurmctld acknowledges a DOWN sent while it powers the failed node down,
 * and ignores it: elasticd sends it again until a load shows it taken (the
 * loads come faster than the retries, as slurmctld's end of a power down
 * comes between two of them). */
static void test_down_while_powering_down(void) {
        struct world w;
        struct lifecycle_options o = { .poll_usec = USEC, .retry_usec = 30 * USEC, .accuracy_usec = 1,
                                       .console_poll_usec = USEC, .resume_timeout_usec = 50 * USEC };

        world_init(&w, &o);
        w.f.never_register = true;
        w.f.power_down_loads = 4;
        submit(&w, STATE_OP_RESUME, "cn1", NULL);
        CHECK(run(&w, NULL));
        CHECK(run(&w, node_down));
        check_failed_down(&w, "cn1");
        world_done(&w);
}

static void spin(struct world *w, uint64_t usec) {
        uint64_t until = mono_usec() + usec;

        while (mono_usec() < until)
                (void) sd_event_run(w->e, 1000);
}

/* Loads that still show the power down after its end: DOWN waits for one
 * showing the node off, so that it is taken when sent; once taken, an
 * admin's state=resume is left alone. */
static void test_down_then_admin_resume(void) {
        struct world w;
        struct lifecycle_options o = { .poll_usec = USEC, .retry_usec = 30 * USEC, .accuracy_usec = 1,
                                       .console_poll_usec = USEC, .resume_timeout_usec = 50 * USEC };
        struct fnode *n;

        world_init(&w, &o);
        w.f.never_register = true;
        w.f.power_down_loads = 1;
        w.f.power_down_view_lag = 5;
        submit(&w, STATE_OP_RESUME, "cn1", NULL);
        CHECK(run(&w, NULL));
        CHECK(run(&w, node_down));
        check_failed_down(&w, "cn1");
        /* scontrol update nodename=cn1 state=resume */
        n = fnode_find(&w.f, "cn1");
        n->down = false;
        n->reason[0] = '\0';
        spin(&w, 200 * USEC);
        CHECK(!n->down);
        world_done(&w);
}

/* --- capacity cooldowns across restarts ----------------------------------------- */

/* A world whose cloud classes a quota 403 as capacity (the default classes
 * every error of the fake as transient or permanent). */
static void world_init_capacity(struct world *w) {
        world_init(w, NULL);
        core_drop(w);
        w->ports.cloud.classify = c_classify;
        core_start(w);
}

/* kill -9 and a restart: a fresh core from the journal. */
static void core_restart(struct world *w) {
        core_drop(w);
        core_start(w);
}

static size_t capacity_of(struct world *w, const char *group, struct capacity_group *ret) {
        struct capacity_group g[4];
        size_t n = lifecycle_capacity(w->l, g, ELEMENTSOF(g));

        for (size_t i = 0; i < n && i < ELEMENTSOF(g); i++)
                if (strcmp(g[i].group, group) == 0) {
                        if (ret)
                                *ret = g[i];
                        return n;
                }
        return 0;
}

static bool node_is_down(struct world *w, const char *node) {
        return fnode_find(&w->f, node)->down;
}

static bool cn1_cn2_down(struct world *w) {
        return node_is_down(w, "cn1") && node_is_down(w, "cn2");
}

static bool cn3_down(struct world *w) {
        return node_is_down(w, "cn3");
}

static bool all_cn_back(struct world *w) {
        return !node_is_down(w, "cn1") && !node_is_down(w, "cn2") && !node_is_down(w, "cn3") &&
               state_n_downmarks(w->state) == 0 && fake_n_pending(&w->f) == 0;
}

static unsigned count_calls(struct world *w, const char *call) {
        unsigned n = 0;
        size_t len = strlen(call);

        for (const char *p = w->f.log; (p = strstr(p, call)); p += len)
                n += (p == w->f.log || p[-1] == ' ') && (p[len] == ' ' || p[len] == '\0');
        return n;
}

/* A quota 403 makes group cpu short of capacity; its failed nodes are DOWN
 * for the cooldown. A kill and a restart keep the cooldown (same start, same
 * end, same failovers): a resume still fails over without a create, and the
 * nodes held DOWN come back when `group enable` ends it. A node still
 * powering down when elasticd was killed is set DOWN after the restart. */
static void test_capacity_cooldown_restart(void) {
        struct world w;
        struct capacity_group before = {}, after = {};
        char reason[128] = "";

        world_init_capacity(&w);
        w.f.no_capacity = true;
        w.f.power_down_loads = 2;
        submit(&w, STATE_OP_RESUME, "cn1", NULL);
        CHECK(run(&w, NULL));
        CHECK(run(&w, node_down));
        CHECK_INT(op_state_of(&w, "cn1"), STATE_OP_FAILED);
        CHECK_INT(count_calls(&w, "create"), 1);
        CHECK(capacity_of(&w, "cpu", &before) == 1);
        CHECK(before.until >= time(NULL) + 590 && before.failovers == 1);
        CHECK(before.reason && strstr(before.reason, "Quota exceeded"));
        snprintf(reason, sizeof(reason), "%s", fnode_find(&w.f, "cn1")->reason);
        CHECK(strncmp(reason, "elasticd: no capacity for group cpu", 35) == 0);

        /* cn2 fails over without calling the cloud; killed while Slurm still
         * powers it down (the DOWN not sent yet). */
        submit(&w, STATE_OP_RESUME, "cn2", NULL);
        CHECK(run(&w, NULL));
        CHECK_INT(count_calls(&w, "create"), 1);
        CHECK(!node_is_down(&w, "cn2") && fnode_find(&w.f, "cn2")->forced_off);
        CHECK_INT(state_n_downmarks(w.state), 2);
        core_restart(&w);

        CHECK(capacity_of(&w, "cpu", &after) == 1);
        CHECK_INT(after.since, before.since);
        CHECK_INT(after.until, before.until);
        CHECK_INT(after.failovers, 2);
        CHECK(after.reason && strstr(after.reason, "Quota exceeded"));
        CHECK(run(&w, cn1_cn2_down));
        CHECK(node_is_down(&w, "cn2") && strncmp(fnode_find(&w.f, "cn2")->reason, "elasticd: ", 10) == 0);

        /* Still short after the restart: no create. */
        submit(&w, STATE_OP_RESUME, "cn3", NULL);
        CHECK(run(&w, NULL));
        CHECK(run(&w, cn3_down));
        CHECK_INT(count_calls(&w, "create"), 1);
        CHECK(capacity_of(&w, "cpu", &after) == 1 && after.failovers == 3);

        /* Killed again, then `group enable`: every node held DOWN comes back. */
        core_restart(&w);
        CHECK(run(&w, NULL));
        CHECK(lifecycle_group_enable(w.l, "cpu"));
        CHECK(run(&w, all_cn_back));
        CHECK_INT(capacity_of(&w, "cpu", NULL), 0);
        CHECK_INT(state_n_capacity(w.state), 0);
        CHECK_INT(state_n_downmarks(w.state), 0);
        /* ... and stays ended across the next restart; resumes create again. */
        core_restart(&w);
        CHECK_INT(capacity_of(&w, "cpu", NULL), 0);
        w.f.no_capacity = false;
        submit(&w, STATE_OP_RESUME, "cn1", NULL);
        CHECK(run(&w, NULL));
        CHECK_INT(op_state_of(&w, "cn1"), STATE_OP_DONE);
        CHECK_INT(count_calls(&w, "create"), 2);
        world_done(&w);
}

/* The cooldown ended while elasticd was away: at the restart it ends
 * (journalled as expired) and the node held DOWN is resumed. */
static void test_capacity_cooldown_ended_while_away(void) {
        struct world w;
        size_t i;
        json_t *rec;
        bool expired = false;

        world_init_capacity(&w);
        w.f.no_capacity = true;
        submit(&w, STATE_OP_RESUME, "cn1", NULL);
        CHECK(run(&w, NULL));
        CHECK(run(&w, node_down));
        core_drop(&w);
        /* Ten minutes later. */
        json_array_foreach(w.journal, i, rec)
                if (strcmp(json_string_value(json_object_get(rec, "kind")), "capacity") == 0) {
                        json_object_set_new(rec, "since", json_integer(time(NULL) - 700));
                        json_object_set_new(rec, "until", json_integer(time(NULL) - 100));
                }
        core_start(&w);
        CHECK_INT(capacity_of(&w, "cpu", NULL), 0);
        CHECK(run(&w, all_cn_back));
        CHECK_INT(state_n_capacity(w.state), 0);
        json_array_foreach(w.journal, i, rec)
                if (strcmp(json_string_value(json_object_get(rec, "kind")), "capacity") == 0 &&
                    json_object_get(rec, "ended"))
                        expired = strcmp(json_string_value(json_object_get(rec, "ended")), "expired") == 0;
        CHECK(expired);
        world_done(&w);
}

/* A cooldown's end while running: the node held DOWN is resumed at once
 * (a timer at its end), not at the next reconcile. */
static bool cn1_failed_and_back(struct world *w) {
        return op_state_of(w, "cn1") == STATE_OP_FAILED && !node_is_down(w, "cn1") &&
               state_n_downmarks(w->state) == 0 && capacity_of(w, "cpu", NULL) == 0;
}

static void test_capacity_cooldown_ends(void) {
        struct world w;

        world_init_capacity(&w);
        w.config->limits.capacity_cooldown_s = 1;
        w.f.no_capacity = true;
        submit(&w, STATE_OP_RESUME, "cn1", NULL);
        CHECK(run(&w, cn1_failed_and_back));
        CHECK(fnode_find(&w.f, "cn1")->forced_off);
        CHECK_INT(state_n_capacity(w.state), 0);
        world_done(&w);
}

static bool no_downmarks(struct world *w) {
        return state_n_downmarks(w->state) == 0;
}

/* A failed node (not for capacity) whose DOWN was still waiting for Slurm
 * to power it down when elasticd was killed: set DOWN after the restart. */
static void test_downmark_survives_restart(void) {
        struct world w;

        world_init(&w, NULL);
        w.f.power_down_loads = 3;
        w.f.inj.prefail = "create";
        submit(&w, STATE_OP_RESUME, "cn1", NULL);
        CHECK(run(&w, NULL));
        CHECK(!node_is_down(&w, "cn1"));
        CHECK_INT(state_n_downmarks(w.state), 1);
        core_restart(&w);
        CHECK(run(&w, node_down));
        check_failed_down(&w, "cn1");
        CHECK(run(&w, no_downmarks));
        world_done(&w);
}

/* --- conflicts ---------------------------------------------------------------- */

static bool create_held(struct world *w) {
        return fake_holding(&w->f, "create");
}

static bool flavor_held(struct world *w) {
        return fake_holding(&w->f, "flavor");
}

static bool load_held(struct world *w) {
        return fake_holding(&w->f, "load");
}

/* Slurm gives up on a node while its instance is being created: the suspend
 * waits for the create's reply and deletes what it made. */
static void test_suspend_during_resume(void) {
        struct world w;

        world_init(&w, NULL);
        w.f.hold = "create";
        submit(&w, STATE_OP_RESUME, "cn1", NULL);
        CHECK(run(&w, create_held));
        submit(&w, STATE_OP_SUSPEND, "cn1", NULL);
        /* A few turns of the loop: the resume must not let go while its create is out. */
        for (int i = 0; i < 20; i++)
                (void) sd_event_run(w.e, 1000);
        fake_release(&w.f);
        CHECK(run(&w, NULL));
        CHECK_INT(op_state_of(&w, "cn1"), STATE_OP_DONE);
        CHECK_INT(state_node_find(w.state, "cn1")->op.kind, STATE_OP_SUSPEND);
        CHECK_INT(w.f.creates, 1);
        CHECK_INT(instances_of(&w.f, "cn1"), 0);
        world_done(&w);
}

/* scontrol reboot of a powered-down node: nothing to reboot, nothing created. */
static void test_reboot_powered_down(void) {
        struct world w;

        world_init(&w, NULL);
        submit(&w, STATE_OP_REBOOT, "cn2", NULL);
        CHECK(run(&w, NULL));
        CHECK_INT(op_state_of(&w, "cn2"), STATE_OP_DONE);
        CHECK_STR(note_of(&w, "cn2"), "no instance to reboot: the node is powered down");
        CHECK_INT(w.f.creates, 0);
        CHECK_INT(instances_of(&w.f, "cn2"), 0);
        world_done(&w);
}

/* ResumeProgram twice for one node: one operation, one instance. */
static void test_same_hook_twice(void) {
        struct world w;
        char *first;

        world_init(&w, NULL);
        submit(&w, STATE_OP_RESUME, "cn1", NULL);
        first = strdup(state_node_find(w.state, "cn1")->op.id);
        for (int i = 0; i < 5; i++)
                (void) sd_event_run(w.e, 1000);
        submit(&w, STATE_OP_RESUME, "cn1", NULL);
        CHECK_STR(state_node_find(w.state, "cn1")->op.id, first);
        CHECK(run(&w, NULL));
        CHECK_INT(op_state_of(&w, "cn1"), STATE_OP_DONE);
        CHECK_INT(w.f.creates, 1);
        check_up(&w, "cn1");
        free(first);
        world_done(&w);
}

/* resize --min 4 while three of the group's nodes are being resumed: only
 * the fourth is powered up through Slurm; the resumes end normally. */
static void test_resize_during_resumes(void) {
        struct world w;
        char *rid = NULL;
        json_t *records, *rec = NULL;

        world_init(&w, NULL);
        if (resize_new(w.e, &w.ports.slurm, w.state, w.config, w.map, &w.resize) < 0)
                abort();
        w.f.hold = "create";
        submit(&w, STATE_OP_RESUME, "cn1", NULL);
        submit(&w, STATE_OP_RESUME, "cn2", NULL);
        submit(&w, STATE_OP_RESUME, "cn3", NULL);
        CHECK(run(&w, create_held));
        if (state_new_id(w.state, 'r', &rid) < 0)
                abort();
        CHECK_INT(record_encode(&(struct record){ .kind = RECORD_REQUEST,
                                                  .request = { .id = rid, .type = RECORD_REQUEST_RESIZE,
                                                               .time = time(NULL), .group = "cpu", .min = 4 } },
                                &rec, NULL),
                  0);
        records = json_array();
        json_array_append_new(records, rec);
        commit(&w, records);
        for (int i = 0; i < 50 && !w.f.power[0]; i++)
                (void) sd_event_run(w.e, 1000);
        CHECK_STR(w.f.power, "up cn4");
        fake_release(&w.f);
        CHECK(run(&w, NULL));
        for (int i = 1; i <= 3; i++) {
                char node[8];

                snprintf(node, sizeof(node), "cn%d", i);
                CHECK_INT(op_state_of(&w, node), STATE_OP_DONE);
                check_up(&w, node);
        }
        CHECK_INT(w.f.creates, 3);
        if (test_case_failed)
                printf("# calls: %s\n# power: %s\n", w.f.log, w.f.power);
        free(rid);
        world_done(&w);
}

/* Reload swaps the config while a resume waits for its flavor. */
static void reload(struct world *w, struct config *c) {
        struct nodemap *m = NULL;
        char *err = NULL;

        if (nodemap_new_from_config(c, &m, &err) < 0)
                abort();
        lifecycle_set_config(w->l, c, m);
        if (w->resize)
                resize_set_config(w->resize, c, m);
        /* The old config goes at once, as elasticd's reload does (ASan sees any use). */
        config_free(w->config);
        nodemap_free(w->map);
        w->config = c;
        w->map = m;
        lifecycle_kick(w->l);
}

/* A reload removes the group of a resume that waits on a flavor lookup
 * (elasticd crashed in on_flavor_resolved): the resume ends on the config it started under. */
static void test_reload_removes_group(void) {
        struct world w;

        world_init(&w, NULL);
        w.f.hold = "flavor";
        submit(&w, STATE_OP_RESUME, "cn1", NULL);
        CHECK(run(&w, flavor_held));
        reload(&w, load_config(NULL));
        CHECK(config_group_find(w.config, "cpu") < 0);
        fake_release(&w.f);
        CHECK(run(&w, NULL));
        CHECK_INT(op_state_of(&w, "cn1"), STATE_OP_DONE);
        check_up(&w, "cn1");
        world_done(&w);
}

/* A reload changes the image while a resume waits on its flavor: that
 * resume keeps the image it started with, the next resume gets the new one. */
static void test_reload_changes_image(void) {
        struct world w;

        world_init(&w, NULL);
        w.f.hold = "flavor";
        submit(&w, STATE_OP_RESUME, "cn1", NULL);
        CHECK(run(&w, flavor_held));
        reload(&w, load_config("newer"));
        fake_release(&w.f);
        CHECK(run(&w, NULL));
        CHECK_INT(op_state_of(&w, "cn1"), STATE_OP_DONE);
        CHECK_STR(instance_of(&w.f, "cn1")->image, "img-base");
        resume_up(&w, "cn2");
        CHECK_STR(instance_of(&w.f, "cn2")->image, "img-newer");
        world_done(&w);
}

/* --- reboot or rebuild ---------------------------------------------------------- */

/* `scontrol reboot reason=reimage cl1` while a load of Slurm's nodes that
 * started before it (for resumes at registering) is still out: the choice
 * waits for a load that sees the reason, and rebuilds. */
static void test_reboot_reason_from_fresh_load(void) {
        struct world w;

        world_init(&w, NULL);
        resume_up(&w, "cn1");
        w.f.hold = "load";
        submit(&w, STATE_OP_RESUME, "cn2", NULL);
        CHECK(run(&w, load_held));
        /* slurmctld sets the reason, then runs RebootProgram (no reason in argv). */
        snprintf(fnode_find(&w.f, "cn1")->reason, sizeof(fnode_find(&w.f, "cn1")->reason),
                 "reimage : reboot issued");
        w.f.log[0] = 0;
        submit(&w, STATE_OP_REBOOT, "cn1", NULL);
        for (int i = 0; i < 20; i++)
                (void) sd_event_run(w.e, 1000);
        fake_release(&w.f);
        CHECK(run(&w, NULL));
        CHECK_INT(op_state_of(&w, "cn1"), STATE_OP_DONE);
        if (!strstr(w.f.log, "rebuild") || strstr(w.f.log, "reboot"))
                TEST_FAIL("want a rebuild and no reboot: %s", w.f.log);
        check_up(&w, "cn2");
        world_done(&w);
}

/* The same without a reason: a plain reboot; and the request's own reason
 * (elasticctl reboot --reason) rebuilds too. */
static void test_reboot_reason_sources(void) {
        struct world w;

        world_init(&w, NULL);
        resume_up(&w, "cn1");
        w.f.log[0] = 0;
        submit(&w, STATE_OP_REBOOT, "cn1", NULL);
        CHECK(run(&w, NULL));
        CHECK(strstr(w.f.log, "reboot") && !strstr(w.f.log, "rebuild"));
        w.f.log[0] = 0;
        submit(&w, STATE_OP_REBOOT, "cn1", "please REBUILD it");
        CHECK(run(&w, NULL));
        CHECK(strstr(w.f.log, "rebuild") != NULL);
        CHECK_INT(op_state_of(&w, "cn1"), STATE_OP_DONE);
        world_done(&w);
}

int main(void) {
        uint64_t t0 = mono_usec();
        int fd;

        log_set_max_level(getenv("TEST_OPS_LOG") ? LOG_DEBUG : LOG_CRIT);
        fd = mkstemp(key_path);
        if (fd < 0 || write(fd, "key\n", 4) != 4 || fchmod(fd, 0600) < 0)
                abort();
        close(fd);

        RUN(test_happy_paths);
        test_rows();
        RUN(test_deadline);
        RUN(test_down_while_powering_down);
        RUN(test_down_then_admin_resume);
        RUN(test_capacity_cooldown_restart);
        RUN(test_capacity_cooldown_ended_while_away);
        RUN(test_capacity_cooldown_ends);
        RUN(test_downmark_survives_restart);
        RUN(test_suspend_during_resume);
        RUN(test_reboot_powered_down);
        RUN(test_same_hook_twice);
        RUN(test_resize_during_resumes);
        RUN(test_reload_removes_group);
        RUN(test_reload_changes_image);
        RUN(test_reboot_reason_from_fresh_load);
        RUN(test_reboot_reason_sources);
        /* Again with the port's newest(): the core then holds a load only
         * while its callback runs and looks nodes up in the newest. */
        fake_with_newest = true;
        RUN(test_happy_paths);
        RUN(test_resize_during_resumes);
        RUN(test_reboot_reason_from_fresh_load);
        RUN(test_reboot_reason_sources);
        RUN(test_down_while_powering_down);
        RUN(test_down_then_admin_resume);
        RUN(test_capacity_cooldown_restart);

        unlink(key_path);
        printf("# %d cases in %.2f s\n", test_count, (double) (mono_usec() - t0) / 1e6);
        return test_done();
}
