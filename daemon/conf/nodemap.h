/* nodemap.h - which node group each Slurm node belongs to, built from the groups' hostlists. */
#pragma once

#include <stddef.h>

#include "util/macro.h"

struct config;

/* Total nodes a map holds (all groups, duplicates included). */
#define NODEMAP_NODES_MAX (1u << 22)

/* A group as the map needs it: a name and a hostlist of its nodes. */
struct nodemap_group_def {
        const char *name;
        const char *nodes;
};

struct nodemap;

/* Build a map from N groups. Bad hostlists fail with -EINVAL/-E2BIG and a
 * message naming the group in *ret_error (caller frees). A node listed in
 * more than one group is kept and reported as ambiguous by the lookups (the
 * config rejects that, the map does not need to). */
int nodemap_new(const struct nodemap_group_def *groups, size_t n_groups,
                struct nodemap **ret, char **ret_error);
/* The same from config->groups (only name and nodes are read). */
int nodemap_new_from_config(const struct config *c, struct nodemap **ret, char **ret_error);

struct nodemap *nodemap_free(struct nodemap *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct nodemap *, nodemap_free);

/* Distinct nodes in the map. */
size_t nodemap_node_count(const struct nodemap *m);
size_t nodemap_group_count(const struct nodemap *m);
const char *nodemap_group_name(const struct nodemap *m, size_t group);
/* Index of the group named NAME, or -ENOENT. */
int nodemap_group_find(const struct nodemap *m, const char *name);

/* The nodes of GROUP in node order (hostlist_name_compare: "cn2" before
 * "cn10"), NULL-terminated, owned by the map. The first N are "the first N
 * nodes" of the group; walk it backwards for highest-numbered first. */
char *const *nodemap_group_nodes(const struct nodemap *m, size_t group, size_t *ret_n);

/* The group of NODE: 0 and *ret_group, -ENOENT if it is in no group,
 * -ENOTUNIQ if in more than one (*ret_group then unset). */
int nodemap_lookup(const struct nodemap *m, const char *node, size_t *ret_group);

/* Like nodemap_lookup, also giving NODE's position in its group's order
 * (0 = first): "is it among the group's first N nodes". */
int nodemap_lookup_position(const struct nodemap *m, const char *node, size_t *ret_group, size_t *ret_index);

/* Resolve a request's N nodes (an expanded hostlist) to their groups.
 * On success *ret_groups (malloc'd, N entries; may be NULL for N = 0) holds
 * each node's group index. Otherwise nothing is returned in *ret_groups and:
 *   -ENOENT   some nodes are in no group,
 *   -ENOTUNIQ none is unknown but some are in more than one group,
 * with *ret_error "2 nodes in no group: cn[9-10]; 2 nodes in more than one
 * group: x[1-2]" (each list cut between nodes to fit a log line) and, if not NULL, *ret_unknown / *ret_ambiguous the compressed
 * hostlists of each kind (NULL when none). All strings are malloc'd. */
int nodemap_resolve(const struct nodemap *m, char *const *nodes, size_t n,
                    size_t **ret_groups, char **ret_unknown, char **ret_ambiguous,
                    char **ret_error);
