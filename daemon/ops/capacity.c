/* capacity.c - groups the cloud has no room for: short of capacity until a deadline, or until enabled again. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ops/capacity.h"

struct mark {
        char *group;
        char *reason;
        time_t since, until;
        unsigned failovers;
        struct mark *next;
};

/* Few groups, fewer short at once: a list. */
struct capacity {
        struct mark *marks;     /* oldest first */
        capacity_change_fn hook;
        void *userdata;
};

static struct mark *mark_free(struct mark *m) {
        if (m) {
                free(m->group);
                free(m->reason);
                free(m);
        }
        return NULL;
}

int capacity_new(struct capacity **ret) {
        struct capacity *c = calloc(1, sizeof(*c));

        if (!c)
                return -ENOMEM;
        *ret = c;
        return 0;
}

struct capacity *capacity_free(struct capacity *c) {
        if (!c)
                return NULL;
        while (c->marks) {
                struct mark *m = c->marks;
                c->marks = m->next;
                mark_free(m);
        }
        free(c);
        return NULL;
}

static void describe(const struct mark *m, struct capacity_group *ret) {
        if (ret)
                *ret = (struct capacity_group) {
                        .group = m->group,
                        .since = m->since,
                        .until = m->until,
                        .failovers = m->failovers,
                        .reason = m->reason,
                };
}

static void report(struct capacity *c, const struct mark *m, enum capacity_change what) {
        struct capacity_group g;

        if (!c->hook)
                return;
        describe(m, &g);
        c->hook(&g, what, c->userdata);
}

void capacity_set_hook(struct capacity *c, capacity_change_fn fn, void *userdata) {
        c->hook = fn;
        c->userdata = userdata;
}

static struct mark **find(struct capacity *c, const char *group) {
        struct mark **p;

        for (p = &c->marks; *p; p = &(*p)->next)
                if (strcmp((*p)->group, group) == 0)
                        break;
        return p;
}

static void forget_expired(struct capacity *c, time_t now) {
        for (struct mark **p = &c->marks; *p;) {
                if ((*p)->until <= now) {
                        struct mark *m = *p;
                        *p = m->next;
                        report(c, m, CAPACITY_EXPIRED);
                        mark_free(m);
                } else
                        p = &(*p)->next;
        }
}

int capacity_mark(struct capacity *c, const char *group, time_t now, unsigned cooldown, const char *reason) {
        struct mark **p, *m;
        char *r = NULL;

        if (!c || !group)
                return -EINVAL;
        if (cooldown == 0)
                return 0;
        forget_expired(c, now);
        if (reason && !(r = strdup(reason)))
                return -ENOMEM;
        p = find(c, group);
        m = *p;
        if (!m) {
                m = calloc(1, sizeof(*m));
                if (!m || !(m->group = strdup(group))) {
                        free(m);
                        free(r);
                        return -ENOMEM;
                }
                m->since = now;
                *p = m;
        }
        if (now + (time_t) cooldown > m->until)
                m->until = now + (time_t) cooldown;
        m->failovers++;
        free(m->reason);
        m->reason = r;
        report(c, m, CAPACITY_MARKED);
        return 0;
}

int capacity_restore(struct capacity *c, const struct capacity_group *g) {
        struct mark **p, *m;

        if (!c || !g || !g->group)
                return -EINVAL;
        p = find(c, g->group);
        m = *p;
        if (!m) {
                m = calloc(1, sizeof(*m));
                if (!m || !(m->group = strdup(g->group))) {
                        free(m);
                        return -ENOMEM;
                }
                *p = m;
        }
        free(m->reason);
        m->reason = g->reason ? strdup(g->reason) : NULL;
        m->since = g->since;
        m->until = g->until;
        m->failovers = g->failovers;
        return 0;
}

bool capacity_short(struct capacity *c, const char *group, time_t now, struct capacity_group *ret) {
        struct mark *m;

        if (!c || !group)
                return false;
        forget_expired(c, now);
        m = *find(c, group);
        if (!m)
                return false;
        describe(m, ret);
        return true;
}

void capacity_count_failover(struct capacity *c, const char *group) {
        struct mark *m = c && group ? *find(c, group) : NULL;

        if (m) {
                m->failovers++;
                report(c, m, CAPACITY_MARKED);
        }
}

bool capacity_enable(struct capacity *c, const char *group) {
        struct mark **p, *m;

        if (!c || !group)
                return false;
        p = find(c, group);
        m = *p;
        if (!m)
                return false;
        *p = m->next;
        report(c, m, CAPACITY_ENABLED);
        mark_free(m);
        return true;
}

size_t capacity_list(struct capacity *c, time_t now, struct capacity_group *ret, size_t max) {
        size_t n = 0;

        if (!c)
                return 0;
        forget_expired(c, now);
        for (struct mark *m = c->marks; m; m = m->next, n++)
                if (ret && n < max)
                        describe(m, &ret[n]);
        return n;
}
