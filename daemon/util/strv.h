/* strv.h - string vectors: NULL-terminated arrays of malloc'd strings. */
#pragma once

#include <stddef.h>

#include "util/macro.h"

/* Free every string and the array; accepts NULL, returns NULL. */
char **strv_free(char **l);
DEFINE_TRIVIAL_CLEANUP_FUNC(char **, strv_free);
#define _cleanup_strv_free_ _cleanup_(strv_freep)

size_t strv_length(char *const *l);

/* Move the N strings of *L (a strv, N = strv_length) into one block that
 * holds the array and the strings after it, freeing the old: one allocation
 * instead of N + 1 (at 10,000 node names, a third of the bytes). The result
 * is freed with free(), never strv_free(). 0 or -ENOMEM (*L then untouched). */
int strv_pack(char ***l, size_t n);
