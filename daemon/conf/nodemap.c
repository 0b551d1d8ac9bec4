/* nodemap.c - node name -> group, an open-addressing hash table over the groups' expanded hostlists. */
#include "conf/nodemap.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/config.h"
#include "util/hostlist.h"
#include "util/strv.h"
#include "util/errmsg.h"

struct nodemap_group {
        char *name;
        char **nodes; /* sorted, unique; one block (strv_pack) */
        size_t n_nodes;
};

/* One distinct node. NAME points into the first group's nodes. */
struct nodemap_entry {
        const char *name;
        uint32_t index;    /* position in that group's nodes */
        uint16_t group;    /* first group holding it */
        uint16_t n_groups; /* > 1: ambiguous (counts to its cap only) */
};

struct nodemap {
        struct nodemap_group *groups;
        size_t n_groups;
        struct nodemap_entry *entries;
        size_t n_entries;
        /* Slots hold entry index + 1; 0 is empty. Load factor <= 1/2. */
        uint32_t *slots;
        size_t mask;
};


/* FNV-1a with a final mix so that the low bits (the slot) depend on all. */
static uint64_t hash_name(const char *s) {
        uint64_t h = 0xcbf29ce484222325ULL;

        for (; *s; s++) {
                h ^= (unsigned char) *s;
                h *= 0x100000001b3ULL;
        }
        h ^= h >> 33;
        h *= 0xff51afd7ed558ccdULL;
        h ^= h >> 33;
        return h;
}

/* The slot holding NAME, or the empty slot where it would go. */
static size_t find_slot(const struct nodemap *m, const char *name) {
        size_t i = (size_t) hash_name(name) & m->mask;

        while (m->slots[i] != 0 && strcmp(m->entries[m->slots[i] - 1].name, name) != 0)
                i = (i + 1) & m->mask;
        return i;
}

struct nodemap *nodemap_free(struct nodemap *m) {
        if (!m)
                return NULL;
        for (size_t g = 0; g < m->n_groups; g++) {
                free(m->groups[g].name);
                free(m->groups[g].nodes);   /* strv_pack'ed */
        }
        free(m->groups);
        free(m->entries);
        free(m->slots);
        free(m);
        return NULL;
}

int nodemap_new(const struct nodemap_group_def *groups, size_t n_groups,
                struct nodemap **ret, char **ret_error) {
        _cleanup_(nodemap_freep) struct nodemap *m = NULL;
        size_t total = 0, capacity = 16;

        m = calloc(1, sizeof(*m));
        if (!m)
                return -ENOMEM;
        if (n_groups > UINT16_MAX)
                return errmsg(ret_error, -E2BIG, "more than %u groups", UINT16_MAX);
        m->groups = calloc(n_groups ? n_groups : 1, sizeof(*m->groups));
        if (!m->groups)
                return -ENOMEM;

        for (size_t g = 0; g < n_groups; g++) {
                struct nodemap_group *mg = &m->groups[g];
                _cleanup_free_ char *err = NULL;
                int r;

                if (!groups[g].name || !groups[g].nodes)
                        return errmsg(ret_error, -EINVAL, "group %zu has no %s",
                                    g + 1, groups[g].name ? "nodes" : "name");
                mg->name = strdup(groups[g].name);
                if (!mg->name)
                        return -ENOMEM;
                m->n_groups++;
                r = hostlist_expand(groups[g].nodes, NODEMAP_NODES_MAX - total,
                                    &mg->nodes, &mg->n_nodes, &err);
                if (r >= 0 && strv_pack(&mg->nodes, mg->n_nodes) < 0) {
                        mg->nodes = strv_free(mg->nodes);
                        return -ENOMEM;
                }
                if (r == -E2BIG)
                        return errmsg(ret_error, r, "group \"%s\": more than %u nodes in all groups",
                                    mg->name, NODEMAP_NODES_MAX);
                if (r < 0)
                        return err ? errmsg(ret_error, r, "group \"%s\": %s", mg->name, err) : r;
                total += mg->n_nodes;
        }

        while (capacity < 2 * total)
                capacity *= 2;
        m->slots = calloc(capacity, sizeof(*m->slots));
        m->entries = calloc(total ? total : 1, sizeof(*m->entries));
        if (!m->slots || !m->entries)
                return -ENOMEM;
        m->mask = capacity - 1;

        for (size_t g = 0; g < m->n_groups; g++)
                for (size_t i = 0; i < m->groups[g].n_nodes; i++) {
                        const char *name = m->groups[g].nodes[i];
                        size_t s = find_slot(m, name);

                        if (m->slots[s] != 0) {
                                /* Nodes are unique within a group: another group has it. */
                                if (m->entries[m->slots[s] - 1].n_groups < UINT16_MAX)
                                        m->entries[m->slots[s] - 1].n_groups++;
                                continue;
                        }
                        m->entries[m->n_entries] = (struct nodemap_entry) {
                                .name = name, .group = (uint16_t) g, .index = (uint32_t) i, .n_groups = 1,
                        };
                        m->slots[s] = (uint32_t) ++m->n_entries;
                }

        *ret = TAKE_PTR(m);
        return 0;
}

int nodemap_new_from_config(const struct config *c, struct nodemap **ret, char **ret_error) {
        _cleanup_free_ struct nodemap_group_def *defs = NULL;

        defs = calloc(c->n_groups ? c->n_groups : 1, sizeof(*defs));
        if (!defs)
                return -ENOMEM;
        for (size_t g = 0; g < c->n_groups; g++)
                defs[g] = (struct nodemap_group_def) {
                        .name = c->groups[g].name, .nodes = c->groups[g].nodes,
                };
        return nodemap_new(defs, c->n_groups, ret, ret_error);
}

size_t nodemap_node_count(const struct nodemap *m) {
        return m->n_entries;
}

size_t nodemap_group_count(const struct nodemap *m) {
        return m->n_groups;
}

const char *nodemap_group_name(const struct nodemap *m, size_t group) {
        return group < m->n_groups ? m->groups[group].name : NULL;
}

int nodemap_group_find(const struct nodemap *m, const char *name) {
        for (size_t g = 0; g < m->n_groups; g++)
                if (strcmp(m->groups[g].name, name) == 0)
                        return (int) g;
        return -ENOENT;
}

char *const *nodemap_group_nodes(const struct nodemap *m, size_t group, size_t *ret_n) {
        if (group >= m->n_groups) {
                if (ret_n)
                        *ret_n = 0;
                return NULL;
        }
        if (ret_n)
                *ret_n = m->groups[group].n_nodes;
        return m->groups[group].nodes;
}

static const struct nodemap_entry *lookup(const struct nodemap *m, const char *node) {
        size_t s = find_slot(m, node);

        return m->slots[s] ? &m->entries[m->slots[s] - 1] : NULL;
}

int nodemap_lookup(const struct nodemap *m, const char *node, size_t *ret_group) {
        const struct nodemap_entry *e = lookup(m, node);

        if (!e)
                return -ENOENT;
        if (e->n_groups > 1)
                return -ENOTUNIQ;
        if (ret_group)
                *ret_group = e->group;
        return 0;
}

int nodemap_lookup_position(const struct nodemap *m, const char *node, size_t *ret_group, size_t *ret_index) {
        const struct nodemap_entry *e = lookup(m, node);

        if (!e)
                return -ENOENT;
        if (e->n_groups > 1)
                return -ENOTUNIQ;
        if (ret_group)
                *ret_group = e->group;
        if (ret_index)
                *ret_index = e->index;
        return 0;
}

int nodemap_resolve(const struct nodemap *m, char *const *nodes, size_t n,
                    size_t **ret_groups, char **ret_unknown, char **ret_ambiguous,
                    char **ret_error) {
        _cleanup_free_ size_t *groups = NULL;
        _cleanup_free_ char **unknown = NULL, **ambiguous = NULL;
        _cleanup_free_ char *unknown_s = NULL, *ambiguous_s = NULL, *unknown_m = NULL, *ambiguous_m = NULL;
        size_t n_unknown = 0, n_ambiguous = 0;
        int r;

        groups = calloc(n ? n : 1, sizeof(*groups));
        if (!groups)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                const struct nodemap_entry *e = lookup(m, nodes[i]);

                if (!e || e->n_groups > 1) {
                        char ***list = e ? &ambiguous : &unknown;
                        /* Only the failure path pays for these lists. */
                        if (!*list) {
                                *list = calloc(n, sizeof(char *));
                                if (!*list)
                                        return -ENOMEM;
                        }
                        (*list)[e ? n_ambiguous++ : n_unknown++] = nodes[i];
                } else
                        groups[i] = e->group;
        }

        if (n_unknown == 0 && n_ambiguous == 0) {
                *ret_groups = n ? TAKE_PTR(groups) : NULL;
                return 0;
        }

        if (n_unknown > 0) {
                r = hostlist_compress(unknown, n_unknown, &unknown_s, ret_error);
                if (r < 0)
                        return r;
                r = hostlist_message(&unknown_m, HOSTLIST_MESSAGE_MAX / 2, unknown, n_unknown,
                                     "%zu node%s in no group", HOSTLIST_NODES(n_unknown));
                if (r < 0)
                        return r;
        }
        if (n_ambiguous > 0) {
                r = hostlist_compress(ambiguous, n_ambiguous, &ambiguous_s, ret_error);
                if (r < 0)
                        return r;
                r = hostlist_message(&ambiguous_m, HOSTLIST_MESSAGE_MAX / 2, ambiguous, n_ambiguous,
                                     "%zu node%s in more than one group", HOSTLIST_NODES(n_ambiguous));
                if (r < 0)
                        return r;
        }
        r = errmsg(ret_error, n_unknown > 0 ? -ENOENT : -ENOTUNIQ, "%s%s%s", unknown_m ?: "",
                   unknown_m && ambiguous_m ? "; " : "", ambiguous_m ?: "");
        if (ret_unknown)
                *ret_unknown = TAKE_PTR(unknown_s);
        if (ret_ambiguous)
                *ret_ambiguous = TAKE_PTR(ambiguous_s);
        return r;
}
