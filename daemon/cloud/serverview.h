/* serverview.h - what the cluster's server lists last said of each watched server, kept up to date by changes-since lists. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "cloud/nova.h"

/*
 * A changes-since list holds only the servers whose `updated` is at or after
 * its time, deleted ones too (status DELETED, without tags or metadata). A
 * server it lacks is unchanged, not gone: the view keeps what an earlier
 * list said. A full list (no changes-since) is the whole truth: a watched
 * server it lacks is forgotten, so the next question about it is asked of
 * Nova itself.
 */

struct server_view_entry {
        struct nova_server *server;    /* status DELETED: gone */
        uint64_t used;                 /* monotonic usec: last asked for, or last changed */
};

struct server_view {
        struct server_view_entry *entries;     /* sorted by server id */
        size_t n_entries;
        time_t time;           /* Nova's clock at the last list (its first answer's Date, else
                                * the newest `updated` it held): a changes-since list from a
                                * margin before it brings every change the view lacks; 0: none */
        uint64_t full_usec;    /* monotonic: the last full list */
        size_t full_servers;   /* servers in the last full list, and the last changes-since one */
        size_t delta_servers;
};

void server_view_clear(struct server_view *v);

/* The entry of server ID, or NULL. */
struct server_view_entry *server_view_find(struct server_view *v, const char *id);

/* A list ended. SERVERS (N of them; any order; sorted here) are taken over:
 * the ones kept are set to NULL in the array, the caller frees the rest.
 * FULL: every server of the cluster, without changes-since; then the view
 * keeps the servers it had and those in ASKED (N_ASKED ids, any order),
 * and forgets the others. Else only the changed ones: each replaces the
 * view's entry unless that one is newer (`updated`), and all are kept (they
 * change: soon watched). DATE is Nova's clock at the list's first answer
 * (0: unknown). Entries not used since EXPIRE_BEFORE (monotonic) are
 * forgotten. -ENOMEM leaves the view empty (the next list is a full one). */
int server_view_merge(struct server_view *v, struct nova_server **servers, size_t n, bool full, time_t date,
                      const char *const *asked, size_t n_asked, uint64_t now, uint64_t expire_before);

/* Nova answered 404 for server ID (a show, or a delete): a DELETED entry
 * that no list answered before it can replace. */
int server_view_gone(struct server_view *v, const char *id, uint64_t now);

/* Forget server ID: a delete was accepted, and the next lists say how it
 * goes (until then a question about it is asked of Nova). */
void server_view_forget(struct server_view *v, const char *id);

/* Forget the entries not used since BEFORE (monotonic). */
void server_view_expire(struct server_view *v, uint64_t before);

/* Whether a changes-since list can stand for a full one now: the view has
 * a time and its last full list is younger than FULL_INTERVAL. */
bool server_view_can_delta(const struct server_view *v, uint64_t now, uint64_t full_interval);
