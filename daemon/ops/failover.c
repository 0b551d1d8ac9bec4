/* failover.c - what a failure does to a node (doc/failures.md): capacity
 * failover for a group the cloud has no room for, and a failed node powered
 * down through Slurm, then DOWN with elasticd's reason. */
#include "ops/op.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "journal/records.h"

/* A failed node is set DOWN once Slurm powered it down: DOWN on a node that
 * is powering up is overwritten by ResumeTimeout later (its reason too), and
 * a power down clears DOWN. Each mark and its end is journalled ("downmark"
 * records), and so is each capacity cooldown ("capacity"): a restart
 * restores both (failover_restore), so a node held DOWN for a cooldown is
 * resumed at the cooldown's original end, and one still powering down is
 * set DOWN once it is off. */
struct downmark {
        char *node;
        char *reason;
        char *group;             /* set: DOWN for its group's capacity cooldown, resumed at its end */
        bool resume;             /* the cooldown is over: RESUME instead of DOWN */
        uint64_t until;          /* CLOCK_MONOTONIC: give up then */
        bool sent;               /* the DOWN update is on its way */
        bool seen_off;           /* a load showed it powering or powered down */
        uint64_t next_try;       /* CLOCK_MONOTONIC: DOWN again from then on */
        bool downed;             /* Slurm took a DOWN ... */
        uint64_t downed_load;    /* ... after this many loads of Slurm's nodes (one in flight may predate it) */
        struct downmark *next;
};

#define DOWNMARK_USEC (15 * 60 * USEC_PER_SEC)

enum ops_failure op_classify(const struct lifecycle *l, int error, long http_status, const char *message) {
        const struct ops_cloud_port *p = &l->env.ports.cloud;

        if (p->classify)
                return p->classify(error, http_status, message);
        return error && error_transient(error) ? OPS_FAILURE_TRANSIENT : OPS_FAILURE_PERMANENT;
}

static void format_until(time_t t, char *buf, size_t size) {
        struct tm tm;

        if (!gmtime_r(&t, &tm) || strftime(buf, size, "%H:%M:%S UTC", &tm) == 0)
                snprintf(buf, size, "%lld", (long long) t);
}

void op_fail_capacity(struct lc_op *o, const char *why) {
        struct lifecycle *l = o->l;
        struct capacity_group g = {};
        char until[32] = "?";
        time_t now = time(NULL);

        if (capacity_mark(l->capacity, o->group, now, l->config->limits.capacity_cooldown_s, why) >= 0 &&
            capacity_short(l->capacity, o->group, now, &g))
                format_until(g.until, until, sizeof(until));
        l->stats.capacity_failovers++;
        o->capacity = true;
        if (g.group)
                op_fail(o, "no capacity for group %s (%s); its resumes fail over until %s", o->group,
                        why ? why : "?", until);
        else
                op_fail(o, "no capacity for group %s (%s)", o->group, why ? why : "?");
}

bool op_fail_over_if_short(struct lc_op *o) {
        struct lifecycle *l = o->l;
        struct capacity_group g;
        char until[32];

        if (o->kind != STATE_OP_RESUME || !o->group || !capacity_short(l->capacity, o->group, time(NULL), &g))
                return false;
        format_until(g.until, until, sizeof(until));
        capacity_count_failover(l->capacity, o->group);
        l->stats.capacity_failovers++;
        free(o->note);
        if (asprintf(&o->note, "group %s short of capacity until %s (%s): failed over", o->group, until,
                     g.reason ? g.reason : "?") < 0)
                o->note = NULL;
        o->failing = true;
        o->capacity = true;
        o->deadline_usec = 0;
        op_log(o, LOG_NOTICE, "resume failing over: %s", o->note ? o->note : "short of capacity");
        /* No cloud call: an instance only if an earlier attempt left one. */
        op_step(o, o->instance_id ? STEP_CLEANUP : STEP_MARKING);
        return true;
}

/* M as it stands, or (M NULL) NODE's mark done. */
static void downmark_journal(struct lifecycle *l, const struct downmark *m, const char *node) {
        lifecycle_journal(l, &(struct record) {
                .kind = RECORD_DOWNMARK,
                .downmark = {
                        .node = m ? m->node : node,
                        .reason = m ? m->reason : NULL,
                        .group = m ? m->group : NULL,
                        .time = (int64_t) time(NULL),
                },
        });
}

static struct downmark *downmark_find(const struct lifecycle *l, const char *node) {
        for (struct downmark *m = l->downmarks; m; m = m->next)
                if (strcmp(m->node, node) == 0)
                        return m;
        return NULL;
}

bool downmark_pending(const struct lifecycle *l, const char *node) {
        return downmark_find(l, node) != NULL;
}

static struct downmark *downmark_add(struct lifecycle *l, const char *node, const char *reason) {
        struct downmark *m = downmark_find(l, node);

        if (!m) {
                m = calloc(1, sizeof(*m));
                if (!m || !(m->node = strdup(node))) {
                        free(m);
                        return NULL;
                }
                m->next = l->downmarks;
                l->downmarks = m;
        }
        free(m->reason);
        m->reason = strdup(reason);
        m->until = now_usec() + DOWNMARK_USEC;
        m->sent = false;
        m->seen_off = false;
        m->resume = false;
        m->group = mfree(m->group);
        return m;
}

static struct downmark *downmark_free(struct downmark *m) {
        if (m) {
                free(m->node);
                free(m->reason);
                free(m->group);
                free(m);
        }
        return NULL;
}

static void downmark_remove(struct lifecycle *l, struct downmark *gone) {
        for (struct downmark **p = &l->downmarks; *p; p = &(*p)->next)
                if (*p == gone) {
                        *p = gone->next;
                        downmark_journal(l, NULL, gone->node);
                        downmark_free(gone);
                        return;
                }
}

void downmarks_free(struct lifecycle *l) {
        while (l->downmarks) {
                struct downmark *m = l->downmarks;
                l->downmarks = m->next;
                downmark_free(m);
        }
}

struct downmark_call {
        struct lifecycle *l;
        char *node;
};

static void on_downmarked(int r, const char *error, void *userdata) {
        struct downmark_call *c = userdata;

        if (r != -ECANCELED) {
                for (struct downmark *m = c->l->downmarks; m; m = m->next)
                        if (strcmp(m->node, c->node) == 0) {
                                if (r < 0)
                                        log_ctx_msg(LOG_WARNING, &(struct log_ctx){ .node = c->node },
                                                    "Cannot set the failed node DOWN: %s", error ? error : "?");
                                else if (!m->resume) {
                                        m->downed = true;
                                        m->downed_load = c->l->slurm_loads_done;
                                }
                                m->sent = false;
                                break;
                        }
                if (c->l->downmarks)
                        request_slurm_poll(c->l);
        }
        free(c->node);
        free(c);
}

static int on_cooldown_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        request_slurm_poll(userdata);
        return 0;
}

/* A load right after the first cooldown that nodes are held DOWN for ends
 * (UNTIL, unix seconds; 0: none), not at the next reconcile's. */
static void arm_cooldown_timer(struct lifecycle *l, time_t until) {
        uint64_t at = (uint64_t) until * USEC_PER_SEC;
        int r;

        if (until <= 0) {
                if (l->cooldown_timer)
                        (void) sd_event_source_set_enabled(l->cooldown_timer, SD_EVENT_OFF);
                return;
        }
        if (l->cooldown_timer) {
                r = sd_event_source_set_time(l->cooldown_timer, at);
                if (r >= 0)
                        r = sd_event_source_set_enabled(l->cooldown_timer, SD_EVENT_ONESHOT);
        } else
                r = sd_event_add_time(l->env.event, &l->cooldown_timer, CLOCK_REALTIME, at, l->opts.accuracy_usec,
                                      on_cooldown_timer, l);
        if (r < 0)
                log_error("Cannot arm the capacity cooldown timer: %s", strerror(-r));
}

/* Slurm ignores DOWN while a node powers down: DOWN is sent once a load
 * shows the node powered down, and again every few seconds until a load
 * shows it DOWN and powered down. */
#define DOWNMARK_RETRY_USEC (3 * USEC_PER_SEC)

void downmarks_check(struct lifecycle *l) {
        const struct ops_slurm_port *p = &l->env.ports.slurm;
        uint64_t now = now_usec();
        struct downmark *next;
        bool busy = false;       /* a mark needs the next load (not just a cooldown's end) */
        time_t first_end = 0;    /* of the cooldowns marks wait for */

        for (struct downmark *m = l->downmarks; m; m = next) {
                struct ops_slurm_node n;
                struct downmark_call *c;

                next = m->next;
                if (now > m->until && !m->group) {
                        log_ctx_msg(LOG_NOTICE, &(struct log_ctx){ .node = m->node },
                                    "Slurm did not power the failed node down in time; not setting it DOWN");
                        downmark_remove(l, m);
                        continue;
                }
                if (!lifecycle_slurm_node(l, m->node, &n)) {
                        busy = true;
                        continue;
                }
                if (m->group && !m->resume) {
                        struct capacity_group g;

                        if (!capacity_short(l->capacity, m->group, time(NULL), &g)) {
                                /* The cooldown is over (or ended by group enable). */
                                m->resume = true;
                                m->next_try = 0;
                        } else if (first_end == 0 || g.until < first_end)
                                first_end = g.until;
                }
                if (m->resume) {
                        if (!n.down) {
                                log_ctx_msg(LOG_INFO, &(struct log_ctx){ .node = m->node },
                                            "Group %s's capacity cooldown is over: node resumed", m->group);
                                downmark_remove(l, m);
                                continue;
                        }
                } else if (n.down && n.powered_down && !n.powering_down) {
                        if (!m->group) {
                                log_ctx_msg(LOG_INFO, &(struct log_ctx){ .node = m->node },
                                            "Powered down and DOWN with reason: %s", m->reason);
                                downmark_remove(l, m);
                        }
                        /* A cooldown's node waits for its end (arm_cooldown_timer). */
                        continue;
                } else if (m->downed && l->slurm_loads_done > m->downed_load + 1 && n.powered_down && !n.powering_down) {
                        /* DOWN was taken, and now it is not: resumed (scontrol
                         * update state=resume); leave it alone. */
                        log_ctx_msg(LOG_INFO, &(struct log_ctx){ .node = m->node },
                                    "DOWN was taken and has been cleared since (state=resume?): leaving the node as it is");
                        downmark_remove(l, m);
                        continue;
                }
                busy = true;
                /* A load from before the power down still shows it up. */
                if (!m->seen_off && !n.powered_down && !n.powering_down)
                        continue;
                /* Resumed after it was off (scontrol, a job): no longer ours to mark. */
                if (m->seen_off && (n.powering_up || n.power_up)) {
                        downmark_remove(l, m);
                        continue;
                }
                m->seen_off = true;
                /* slurmctld acknowledges a DOWN while it powers the node down,
                 * and ignores it: DOWN only once a load shows it off (a full
                 * load comes at least every 20 s, changes-since ones may not). */
                if (m->sent || now < m->next_try || (!m->resume && (!n.powered_down || n.powering_down)))
                        continue;
                c = calloc(1, sizeof(*c));
                if (!c || !(c->node = strdup(m->node))) {
                        free(c);
                        continue;
                }
                c->l = l;
                if (p->update(p->impl, &(struct ops_slurm_update){ .nodes = m->node,
                                                                  .state = m->resume ? OPS_SLURM_RESUME : OPS_SLURM_DOWN,
                                                                  .reason = m->resume ? NULL : m->reason },
                              on_downmarked, c) < 0) {
                        free(c->node);
                        free(c);
                        continue;
                }
                m->sent = true;
                m->next_try = now + (l->opts.retry_usec < DOWNMARK_RETRY_USEC ? l->opts.retry_usec : DOWNMARK_RETRY_USEC);
        }
        arm_cooldown_timer(l, first_end);
        if (busy)
                request_slurm_poll(l);
}

static void on_power_down_done(int r, const char *error, void *userdata) {
        struct downmark_call *c = userdata;

        if (r < 0 && r != -ECANCELED)
                log_ctx_msg(LOG_WARNING, &(struct log_ctx){ .node = c->node },
                            "Cannot power the failed node down in Slurm: %s", error ? error : "?");
        free(c->node);
        free(c);
}

void node_fail_power_down(struct lifecycle *l, struct lc_op *o, const char *node, const char *reason, bool capacity,
                          op_slurm_fn fn) {
        /* The address is left alone here: slurmctld would look the node's
         * name up to end its job. The power down resets it (cloud_reg_addrs)
         * and so does the suspend that Slurm asks of elasticd next. */
        struct ops_slurm_update u = { .nodes = node, .state = OPS_SLURM_POWER_DOWN_FORCE, .reason = reason };

        struct downmark *m = downmark_add(l, node, reason);

        /* Short of capacity: DOWN while the cooldown lasts, so that Slurm
         * places the requeued job on other groups, then usable again. */
        if (m && capacity && o && o->group)
                m->group = strdup(o->group);
        if (m && m->reason)
                downmark_journal(l, m, NULL);
        if (o)
                op_slurm_update(o, &u, fn);
        else {
                const struct ops_slurm_port *p = &l->env.ports.slurm;
                struct downmark_call *c = calloc(1, sizeof(*c));

                if (!c || !(c->node = strdup(node))) {
                        free(c);
                        return;
                }
                c->l = l;
                if (p->update(p->impl, &u, on_power_down_done, c) < 0) {
                        free(c->node);
                        free(c);
                }
        }
        request_slurm_poll(l);
}

size_t lifecycle_capacity(const struct lifecycle *l, struct capacity_group *ret, size_t max) {
        return l ? capacity_list(l->capacity, time(NULL), ret, max) : 0;
}

bool lifecycle_group_enable(struct lifecycle *l, const char *group) {
        bool was = l && capacity_enable(l->capacity, group);

        if (was) {
                log_info("Group %s: capacity cooldown ended by request; its resumes go to the cloud again", group);
                /* Its DOWN nodes usable again. */
                request_slurm_poll(l);
        }
        return was;
}

/* Each change of a cooldown, journalled: a restart restores it with its end. */
static void on_capacity_change(const struct capacity_group *g, enum capacity_change what, void *userdata) {
        struct lifecycle *l = userdata;

        if (what == CAPACITY_EXPIRED)
                log_info("Group %s: capacity cooldown over (%u resume%s failed over); its resumes go to the cloud again",
                         g->group, g->failovers, g->failovers == 1 ? "" : "s");
        lifecycle_journal(l, &(struct record) {
                .kind = RECORD_CAPACITY,
                .capacity = {
                        .group = g->group,
                        .ended = what == CAPACITY_EXPIRED ? RECORD_CAPACITY_EXPIRED
                                 : what == CAPACITY_ENABLED ? RECORD_CAPACITY_ENABLED
                                                            : RECORD_CAPACITY_SHORT,
                        .since = (int64_t) g->since,
                        .until = (int64_t) g->until,
                        .failovers = g->failovers,
                        .reason = g->reason,
                        .time = (int64_t) time(NULL),
                },
        });
        if (what != CAPACITY_MARKED && l->downmarks)
                /* Its DOWN nodes usable again. */
                request_slurm_poll(l);
}

void failover_init(struct lifecycle *l) {
        capacity_set_hook(l->capacity, on_capacity_change, l);
}

static int restore_capacity(const struct state_capacity *c, void *userdata) {
        struct lifecycle *l = userdata;
        int r;

        r = capacity_restore(l->capacity, &(struct capacity_group) {
                .group = c->group,
                .since = (time_t) c->since,
                .until = (time_t) c->until,
                .failovers = c->failovers,
                .reason = c->reason,
        });
        if (r < 0)
                log_error("Cannot restore group %s's capacity cooldown: %s", c->group, strerror(-r));
        return 0;
}

static int restore_downmark(const struct state_downmark *d, void *userdata) {
        struct lifecycle *l = userdata;
        struct downmark *m = downmark_add(l, d->node, d->reason);

        if (m && d->group)
                m->group = strdup(d->group);
        if (!m || !m->reason || (d->group && !m->group))
                log_error("Cannot restore the DOWN mark of node %s: %s", d->node, strerror(ENOMEM));
        return 0;
}

void failover_restore(struct lifecycle *l) {
        struct capacity_group g[32];
        size_t n_short, n_marks = state_n_downmarks(l->env.state);

        state_foreach_capacity(l->env.state, restore_capacity, l);
        state_foreach_downmark(l->env.state, restore_downmark, l);
        /* Those whose end passed while elasticd was away end now (journalled). */
        n_short = capacity_list(l->capacity, time(NULL), g, ELEMENTSOF(g));
        for (size_t i = 0; i < n_short && i < ELEMENTSOF(g); i++) {
                char until[32];

                format_until(g[i].until, until, sizeof(until));
                log_notice("Group %s short of capacity until %s (restored from the journal; %u failover%s): %s",
                           g[i].group, until, g[i].failovers, g[i].failovers == 1 ? "" : "s",
                           g[i].reason ? g[i].reason : "?");
        }
        if (n_marks > 0) {
                log_info("%zu failed node%s to hold DOWN restored from the journal", n_marks,
                         n_marks == 1 ? "" : "s");
                request_slurm_poll(l);
        }
}
