/* hostlist.h - Slurm hostlists ("cn-[001-004,7],gpu1"): validate, count, expand, compress. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "util/macro.h"

/* Syntax accepted (a subset of libslurm's, so that libslurm never sees input
 * it would misparse, print about or crash on; names come out as libslurm
 * would expand them, see test-hostlist's test_matches_libslurm):
 *   hostlist := element { separator element }   separator: ',' and/or blanks
 *   element  := { literal | '[' range { ',' range } ']' }, not ending in a
 *               literal after a ']' (libslurm 22.05 rejects "cn[1-2]-ib")
 *   literal  := [A-Za-z0-9._-]+     range := NUM | NUM '-' NUM, lo <= hi
 * NUM has at most HOSTLIST_DIGITS_MAX digits (libslurm mangles longer ones); a
 * range spans at most HOSTLIST_RANGE_MAX numbers (libslurm's limit); a node
 * name is at most HOSTLIST_NAME_MAX characters; the text at most
 * HOSTLIST_TEXT_MAX bytes. An empty or blank hostlist has no nodes. */
#define HOSTLIST_TEXT_MAX (8u << 20)
#define HOSTLIST_NAME_MAX 255
#define HOSTLIST_DIGITS_MAX 9
#define HOSTLIST_RANGE_MAX 65536

/* Errors of every function here: -EINVAL (bad syntax or name), -E2BIG (more
 * nodes than allowed), -ENOMEM. On -EINVAL/-E2BIG, *ret_error (if ret_error is
 * not NULL) gets a malloc'd message naming the offending part; the caller
 * frees it. */

/* Check the syntax and count the nodes without expanding anything; duplicates
 * count each time they appear. -E2BIG if the count exceeds max_nodes. */
int hostlist_count(const char *hostlist, size_t max_nodes, size_t *ret_count, char **ret_error);

/* Expand into a sorted (hostlist_name_compare), duplicate-free, NULL-terminated
 * vector of node names (free with strv_free). The count (duplicates included)
 * is checked against max_nodes before anything is expanded. */
int hostlist_expand(const char *hostlist, size_t max_nodes,
                    char ***ret_nodes, size_t *ret_n, char **ret_error);

/* Compress N node names (any order, duplicates allowed) into a ranged
 * hostlist that hostlist_expand accepts again, e.g. "cn-[001-003,010],gpu1".
 * Zero names give "". */
int hostlist_compress(char *const *nodes, size_t n, char **ret_hostlist, char **ret_error);

/* For messages: N node names (any order, duplicates allowed) as a compressed
 * hostlist of at most max_len bytes, cut only between nodes: "cn[1-40]" or
 * "cn[1-30] and 10 more". At least one node is named even if that alone is
 * longer than max_len. ret_count (may be NULL) gets the number of distinct
 * nodes. */
int hostlist_compress_bounded(char *const *nodes, size_t n, size_t max_len,
                              char **ret_text, size_t *ret_count);

/* What a log line gives a message that names nodes. */
#define HOSTLIST_MESSAGE_MAX 1024

/* A message that names nodes: HEAD (a printf format saying what is wrong and
 * how many nodes, e.g. "3 nodes in no node group") then ": " and the N nodes
 * as hostlist_compress_bounded gives them, cut between nodes ("and 10 more")
 * so that the whole fits max_len bytes; a HEAD too long for that still gets
 * one node. N == 0 gives HEAD alone. 0 or -ENOMEM. */
int hostlist_message(char **ret, size_t max_len, char *const *nodes, size_t n, const char *fmt, ...)
        _printf_(5, 6);

/* "1 node", "12 nodes": for the count in a HEAD. */
#define HOSTLIST_NODES(n) (n), (n) == 1 ? "" : "s"

/* Whether NAME is one valid node name (what an element expands to). */
bool hostlist_name_is_valid(const char *name);

/* Node order: digit runs compare by value ("cn2" < "cn10"), equal values with
 * less zero padding first, everything else bytewise. A total order: 0 only
 * for equal strings. */
int hostlist_name_compare(const char *a, const char *b);
