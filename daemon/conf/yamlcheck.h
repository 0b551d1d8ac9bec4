/* yamlcheck.h - the structural rules every YAML file elasticd reads must keep (nesting, duplicate keys), checked on libyaml's events before anything is built. */
#pragma once

#include <stddef.h>

/* Deeper than this is refused: the schemas need at most 5 levels. */
#define YAMLCHECK_MAX_DEPTH 16

/*
 * Scan TEXT (LEN bytes) named NAME: returns 0, or -EINVAL with *ret_error
 * (malloc'd) "NAME:LINE:COL: ..." for the first of: a syntax error, nesting
 * deeper than MAX_DEPTH (scanning stops there, so a hostile depth costs
 * nothing), a key repeated in one mapping (openstacksdk would take the last,
 * libyaml's loader the first). Never quotes a value: the files hold secrets.
 */
int yamlcheck_scan(const char *name, const char *text, size_t len, unsigned max_depth, char **ret_error);
