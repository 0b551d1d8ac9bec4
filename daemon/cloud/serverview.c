/* serverview.c - the watched servers as the cluster's lists last described them, merged list by list. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cloud/serverview.h"
#include "util/macro.h"

void server_view_clear(struct server_view *v) {
        for (size_t i = 0; i < v->n_entries; i++)
                nova_server_free(v->entries[i].server);
        free(v->entries);
        *v = (struct server_view) {};
}

static int entry_id_cmp(const void *key, const void *elem) {
        const struct server_view_entry *e = elem;

        return strcmp(key, e->server->id);
}

struct server_view_entry *server_view_find(struct server_view *v, const char *id) {
        if (!v->n_entries || !id)
                return NULL;
        return bsearch(id, v->entries, v->n_entries, sizeof(*v->entries), entry_id_cmp);
}

static int server_cmp(const void *a, const void *b) {
        const struct nova_server *const *x = a, *const *y = b;

        return strcmp((*x)->id, (*y)->id);
}

static int str_cmp(const void *a, const void *b) {
        return strcmp(*(const char *const *) a, *(const char *const *) b);
}

int server_view_merge(struct server_view *v, struct nova_server **servers, size_t n, bool full, time_t date,
                      const char *const *asked, size_t n_asked, uint64_t now, uint64_t expire_before) {
        _cleanup_free_ struct server_view_entry *out = NULL;
        _cleanup_free_ const char **ask = NULL;
        size_t i = 0, j = 0, n_out = 0;
        time_t newest = 0;

        out = calloc(v->n_entries + n + 1, sizeof(*out));
        if (n_asked > 0 && full)
                ask = malloc(n_asked * sizeof(*ask));
        if (!out || (n_asked > 0 && full && !ask)) {
                server_view_clear(v);
                return -ENOMEM;
        }
        if (n > 1)
                qsort(servers, n, sizeof(*servers), server_cmp);
        if (ask) {
                memcpy(ask, asked, n_asked * sizeof(*ask));
                qsort(ask, n_asked, sizeof(*ask), str_cmp);
        }
        while (i < v->n_entries || j < n) {
                struct server_view_entry *old = i < v->n_entries ? &v->entries[i] : NULL;
                struct nova_server *s = j < n ? servers[j] : NULL;
                int c;

                /* The same server twice in one list (paging while it
                 * changed): the first one taken stands. */
                if (s && n_out > 0 && strcmp(out[n_out - 1].server->id, s->id) == 0) {
                        j++;
                        continue;
                }
                if (s && s->updated > newest)
                        newest = s->updated;
                c = !old ? 1 : !s ? -1 : strcmp(old->server->id, s->id);
                if (c < 0) {
                        /* Not in a full list: gone, or no longer ours. Not in
                         * a changes-since list: unchanged. */
                        if (full)
                                nova_server_free(old->server);
                        else
                                out[n_out++] = *old;
                        i++;
                } else if (c > 0) {
                        if (!full || (ask && bsearch(&s->id, ask, n_asked, sizeof(*ask), str_cmp))) {
                                out[n_out++] = (struct server_view_entry) { .server = s, .used = now };
                                servers[j] = NULL;
                        }
                        j++;
                } else {
                        if (s->updated >= old->server->updated) {
                                out[n_out++] = (struct server_view_entry) { .server = s,
                                                                            .used = full ? old->used : now };
                                servers[j] = NULL;
                                nova_server_free(old->server);
                        } else
                                out[n_out++] = *old;
                        i++;
                        j++;
                }
        }
        free(v->entries);
        v->entries = TAKE_PTR(out);
        v->n_entries = n_out;
        server_view_expire(v, expire_before);
        if (date > 0)
                v->time = date;
        else if (newest > v->time)
                v->time = newest;
        if (full) {
                v->full_usec = now;
                v->full_servers = n;
        } else
                v->delta_servers = n;
        return 0;
}

int server_view_gone(struct server_view *v, const char *id, uint64_t now) {
        struct server_view_entry *e = server_view_find(v, id), *a;
        struct nova_server *t;
        size_t at = 0;

        t = calloc(1, sizeof(*t));
        if (!t || !(t->id = strdup(id)) || !(t->name = strdup("")) || !(t->status = strdup("DELETED")) ||
            !(t->tags = calloc(1, sizeof(*t->tags)))) {
                nova_server_free(t);
                return -ENOMEM;
        }
        t->power_state = -1;
        /* newer than any answer a list in flight may still bring */
        t->updated = (time_t) INT64_MAX;
        if (e) {
                nova_server_free(e->server);
                e->server = t;
                e->used = now;
                return 0;
        }
        a = realloc(v->entries, (v->n_entries + 1) * sizeof(*a));
        if (!a) {
                nova_server_free(t);
                return -ENOMEM;
        }
        v->entries = a;
        while (at < v->n_entries && strcmp(v->entries[at].server->id, id) < 0)
                at++;
        memmove(&v->entries[at + 1], &v->entries[at], (v->n_entries - at) * sizeof(*a));
        v->entries[at] = (struct server_view_entry) { .server = t, .used = now };
        v->n_entries++;
        return 0;
}

void server_view_forget(struct server_view *v, const char *id) {
        struct server_view_entry *e = server_view_find(v, id);
        size_t at;

        if (!e)
                return;
        at = (size_t) (e - v->entries);
        nova_server_free(e->server);
        memmove(e, e + 1, (v->n_entries - at - 1) * sizeof(*e));
        v->n_entries--;
        if (v->n_entries == 0)
                v->entries = mfree(v->entries);
}

void server_view_expire(struct server_view *v, uint64_t before) {
        size_t j = 0;

        for (size_t i = 0; i < v->n_entries; i++) {
                if (v->entries[i].used < before) {
                        nova_server_free(v->entries[i].server);
                        continue;
                }
                v->entries[j++] = v->entries[i];
        }
        v->n_entries = j;
        if (j == 0)
                v->entries = mfree(v->entries);
}

bool server_view_can_delta(const struct server_view *v, uint64_t now, uint64_t full_interval) {
        return v->time > 0 && v->full_usec > 0 && now < v->full_usec + full_interval;
}
