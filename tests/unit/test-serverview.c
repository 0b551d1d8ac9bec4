/* test-serverview.c - the watched servers' view: full and changes-since lists merged, retention, expiry, its time. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cloud/serverview.h"
#include "util/macro.h"
#include "test.h"

static struct nova_server *server(const char *id, const char *status, time_t updated) {
        struct nova_server *s = calloc(1, sizeof(*s));

        if (!s)
                abort();
        s->id = strdup(id);
        s->name = strdup(id);
        s->status = strdup(status);
        s->tags = calloc(1, sizeof(*s->tags));
        s->power_state = -1;
        s->updated = updated;
        if (!s->id || !s->name || !s->status || !s->tags)
                abort();
        return s;
}

/* Merge the N servers of L (freeing those the view did not take). */
static int merge(struct server_view *v, struct nova_server **l, size_t n, bool full, time_t date,
                 const char *const *asked, size_t n_asked, uint64_t now, uint64_t expire_before) {
        int r = server_view_merge(v, l, n, full, date, asked, n_asked, now, expire_before);

        for (size_t i = 0; i < n; i++)
                nova_server_free(l[i]);
        return r;
}

static const char *status_of(struct server_view *v, const char *id) {
        struct server_view_entry *e = server_view_find(v, id);

        return e ? e->server->status : NULL;
}

/* A full list keeps the asked servers (and those it had); a changes-since
 * list replaces what changed and keeps the rest; a full list lacking a
 * server forgets it. */
static void test_merge(void) {
        struct server_view v = {};
        const char *asked[] = { "c", "a" };
        struct nova_server *full[] = { server("d", "ACTIVE", 100), server("a", "BUILD", 100),
                                       server("c", "BUILD", 100), server("b", "ACTIVE", 90) };
        struct nova_server *delta[] = { server("c", "ACTIVE", 110), server("e", "BUILD", 111),
                                        server("x", "DELETED", 112) };
        struct nova_server *full2[] = { server("a", "ACTIVE", 120), server("e", "ACTIVE", 120) };

        CHECK(!server_view_can_delta(&v, 1000, 60));
        CHECK_INT(merge(&v, full, 4, true, 200, asked, 2, 1000, 0), 0);
        CHECK_INT(v.n_entries, 2);
        CHECK_STR(status_of(&v, "a"), "BUILD");
        CHECK_STR(status_of(&v, "c"), "BUILD");
        CHECK(!status_of(&v, "b") && !status_of(&v, "d"));
        CHECK_INT(v.time, 200);
        CHECK_INT(v.full_usec, 1000);
        CHECK_INT(v.full_servers, 4);
        CHECK(server_view_can_delta(&v, 1059, 60));
        CHECK(!server_view_can_delta(&v, 1060, 60));

        /* changes-since: c changed, e is new, x was deleted; a is unchanged */
        CHECK_INT(merge(&v, delta, 3, false, 0, NULL, 0, 1010, 0), 0);
        CHECK_INT(v.n_entries, 4);
        CHECK_STR(status_of(&v, "a"), "BUILD");
        CHECK_STR(status_of(&v, "c"), "ACTIVE");
        CHECK_STR(status_of(&v, "e"), "BUILD");
        CHECK_STR(status_of(&v, "x"), "DELETED");
        CHECK_INT(v.delta_servers, 3);
        CHECK_INT(v.full_servers, 4);
        /* no Date, and the newest `updated` it held is older: the time stays */
        CHECK_INT(v.time, 200);
        for (size_t i = 1; i < v.n_entries; i++)
                CHECK(strcmp(v.entries[i - 1].server->id, v.entries[i].server->id) < 0);

        /* a full list without c and x: both forgotten */
        CHECK_INT(merge(&v, full2, 2, true, 300, NULL, 0, 1020, 0), 0);
        CHECK_INT(v.n_entries, 2);
        CHECK_STR(status_of(&v, "a"), "ACTIVE");
        CHECK_STR(status_of(&v, "e"), "ACTIVE");
        CHECK(!status_of(&v, "c") && !status_of(&v, "x"));
        CHECK_INT(v.time, 300);
        server_view_clear(&v);
        CHECK_INT(v.n_entries, 0);
        CHECK_INT(v.time, 0);
}

/* An older answer never replaces a newer one; a server listed twice is
 * taken once; without a Date the time is the newest `updated`, never
 * earlier than it was. */
static void test_order(void) {
        struct server_view v = {};
        const char *asked[] = { "a" };
        struct nova_server *full[] = { server("a", "ACTIVE", 100) };
        struct nova_server *old[] = { server("a", "BUILD", 90), server("b", "BUILD", 95), server("b", "ACTIVE", 96) };
        struct nova_server *none[1];

        CHECK_INT(merge(&v, full, 1, true, 0, asked, 1, 1, 0), 0);
        CHECK_INT(v.time, 100);
        CHECK_INT(merge(&v, old, 3, false, 0, NULL, 0, 2, 0), 0);
        CHECK_STR(status_of(&v, "a"), "ACTIVE");
        CHECK_INT(v.n_entries, 2);
        CHECK(status_of(&v, "b") != NULL);
        CHECK_INT(v.time, 100);
        CHECK_INT(merge(&v, none, 0, false, 0, NULL, 0, 3, 0), 0);
        CHECK_INT(v.time, 100);
        CHECK_INT(v.n_entries, 2);
        server_view_clear(&v);
}

/* What nobody asked about and did not change is forgotten; asking keeps it. */
static void test_expire(void) {
        struct server_view v = {};
        const char *asked[] = { "a", "b" };
        struct nova_server *full[] = { server("a", "BUILD", 100), server("b", "BUILD", 100) };
        struct nova_server *delta[] = { server("b", "ACTIVE", 101) };
        struct nova_server *none[1];
        struct server_view_entry *e;

        CHECK_INT(merge(&v, full, 2, true, 200, asked, 2, 1000, 0), 0);
        CHECK_INT(merge(&v, delta, 1, false, 210, NULL, 0, 5000, 0), 0);
        /* a was last used at 1000, b at 5000 */
        CHECK_INT(merge(&v, none, 0, false, 220, NULL, 0, 6000, 2000), 0);
        CHECK(!status_of(&v, "a"));
        CHECK_STR(status_of(&v, "b"), "ACTIVE");
        e = server_view_find(&v, "b");
        if (e)
                e->used = 9000;
        server_view_expire(&v, 8000);
        CHECK_INT(v.n_entries, 1);
        server_view_expire(&v, 9001);
        CHECK_INT(v.n_entries, 0);
        CHECK(!server_view_find(&v, "b"));
        server_view_clear(&v);
}

/* A 404 leaves a DELETED entry no list answered before it replaces; a
 * delete accepted forgets the server until a list says how it goes. */
static void test_gone_forget(void) {
        struct server_view v = {};
        const char *asked[] = { "a", "b", "c" };
        struct nova_server *full[] = { server("a", "ACTIVE", 100), server("b", "ACTIVE", 100),
                                       server("c", "ACTIVE", 100) };
        struct nova_server *stale[] = { server("b", "ACTIVE", 150), server("z", "ACTIVE", 150) };

        CHECK_INT(merge(&v, full, 3, true, 200, asked, 3, 1, 0), 0);
        CHECK_INT(server_view_gone(&v, "b", 2), 0);
        CHECK_INT(server_view_gone(&v, "0", 2), 0);
        CHECK_INT(server_view_gone(&v, "m", 2), 0);
        CHECK_INT(v.n_entries, 5);
        for (size_t i = 1; i < v.n_entries; i++)
                CHECK(strcmp(v.entries[i - 1].server->id, v.entries[i].server->id) < 0);
        CHECK_INT(merge(&v, stale, 2, false, 210, NULL, 0, 3, 0), 0);
        CHECK_STR(status_of(&v, "b"), "DELETED");
        CHECK_STR(status_of(&v, "m"), "DELETED");
        CHECK_STR(status_of(&v, "z"), "ACTIVE");
        server_view_forget(&v, "c");
        server_view_forget(&v, "nothing");
        CHECK(!status_of(&v, "c"));
        CHECK_STR(status_of(&v, "a"), "ACTIVE");
        CHECK_INT(v.n_entries, 5);
        for (size_t i = 1; i < v.n_entries; i++)
                CHECK(strcmp(v.entries[i - 1].server->id, v.entries[i].server->id) < 0);
        server_view_clear(&v);
}

int main(void) {
        RUN(test_merge);
        RUN(test_order);
        RUN(test_expire);
        RUN(test_gone_forget);
        return test_done();
}
