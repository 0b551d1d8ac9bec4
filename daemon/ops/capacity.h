/* capacity.h - groups the cloud has no room for: short of capacity until a deadline, or until enabled again. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "util/macro.h"

/*
 * When a create meets a capacity failure (doc/failures.md: no valid host,
 * quota), its group is marked short of capacity for limits.capacity_cooldown.
 * Meanwhile the group's resumes fail over at once, without calling Nova:
 * the node is powered down so Slurm requeues its job elsewhere. Each change
 * is reported to a hook (the ops core journals it) and a restart restores
 * the marks with their original end (capacity_restore).
 */

struct capacity;

struct capacity_group {
        const char *group;
        time_t since;           /* first failure of this cooldown */
        time_t until;           /* the cooldown ends (realtime) */
        unsigned failovers;     /* resumes failed over in this cooldown, the first included */
        const char *reason;     /* the cloud's words, with the request id */
};

/* What happened to a group's mark. */
enum capacity_change {
        CAPACITY_MARKED,        /* new, or changed: later end, newer reason, one more failover */
        CAPACITY_EXPIRED,       /* its until passed */
        CAPACITY_ENABLED,       /* capacity_enable() */
};

/* Called with the mark as it is (MARKED) or was (the ends). */
typedef void (*capacity_change_fn)(const struct capacity_group *g, enum capacity_change what, void *userdata);

int capacity_new(struct capacity **ret);
struct capacity *capacity_free(struct capacity *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct capacity *, capacity_free);

/* Report every later change to FN (NULL: none). */
void capacity_set_hook(struct capacity *c, capacity_change_fn fn, void *userdata);
/* G as it was before a restart (not reported): G->until keeps its end;
 * one that has passed expires, reported, at the next call that looks. */
int capacity_restore(struct capacity *c, const struct capacity_group *g);

/* GROUP is short of capacity from NOW for COOLDOWN seconds (0: not marked,
 * nothing changes) because of REASON. A group already short keeps its
 * start, gets the later end and the newer reason. */
int capacity_mark(struct capacity *c, const char *group, time_t now, unsigned cooldown, const char *reason);
/* Whether GROUP is short of capacity at NOW; *ret (optional) describes it,
 * valid until the next call that changes C. An expired mark is forgotten. */
bool capacity_short(struct capacity *c, const char *group, time_t now, struct capacity_group *ret);
/* One more resume of GROUP failed over without calling the cloud. */
void capacity_count_failover(struct capacity *c, const char *group);
/* End GROUP's cooldown now: true if it was short of capacity. */
bool capacity_enable(struct capacity *c, const char *group);
/* The groups short of capacity at NOW, in the order they were marked;
 * expired marks are forgotten first. */
size_t capacity_list(struct capacity *c, time_t now, struct capacity_group *ret, size_t max);
