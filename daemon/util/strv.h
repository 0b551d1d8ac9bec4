/* strv.h - string vectors: NULL-terminated arrays of malloc'd strings. */
#pragma once

#include <stddef.h>

#include "util/macro.h"

/* Free every string and the array; accepts NULL, returns NULL. */
char **strv_free(char **l);
DEFINE_TRIVIAL_CLEANUP_FUNC(char **, strv_free);
#define _cleanup_strv_free_ _cleanup_(strv_freep)

size_t strv_length(char *const *l);
