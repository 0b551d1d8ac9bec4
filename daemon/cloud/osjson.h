/* osjson.h - typed, bounded reads of OpenStack JSON responses; errors name the field. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "util/macro.h"
#include "cloud/oserror.h"

/* Flags for the getters: a missing key, or a JSON null, is accepted (the
 * output is then left as initialised by the caller / set to NULL). */
#define OSJSON_OPTIONAL 1U
#define OSJSON_NULLABLE 2U
#define OSJSON_MAYBE (OSJSON_OPTIONAL | OSJSON_NULLABLE)

/* jansson (>= 2.11) provides json_decrefp() */
#define _cleanup_json_ _cleanup_(json_decrefp)

/* Parse BODY (at most OS_BODY_MAX bytes) as a JSON object. WHAT names the
 * response in messages ("server", "token"). -EBADMSG on anything else. */
int osjson_load(const char *body, size_t len, const char *what, json_t **ret, struct os_error *err);

/* Each getter reads OBJ[KEY]; PATH names OBJ in messages ("server",
 * "servers[3]"). Returns 0 when the value was read into *ret, 1 when an
 * OPTIONAL key is missing or a NULLABLE value is null (*ret untouched), or
 * -EBADMSG (wrong type, out of range, missing) with a message in ERR. */
int osjson_get_string(json_t *obj, const char *path, const char *key, unsigned flags,
                      char **ret, struct os_error *err);
int osjson_get_object(json_t *obj, const char *path, const char *key, unsigned flags,
                      json_t **ret, struct os_error *err);
int osjson_get_array(json_t *obj, const char *path, const char *key, unsigned flags,
                     size_t max, json_t **ret, struct os_error *err);
int osjson_get_int(json_t *obj, const char *path, const char *key, unsigned flags,
                   long long min, long long max, long long *ret, struct os_error *err);
int osjson_get_bool(json_t *obj, const char *path, const char *key, unsigned flags,
                    bool *ret, struct os_error *err);
/* An ISO 8601 time string (see osjson_parse_time). */
int osjson_get_time(json_t *obj, const char *path, const char *key, unsigned flags,
                    time_t *ret, struct os_error *err);

/* "2026-11-24T17:01:05.000000Z", "2026-11-23T17:01:11Z", "2026-11-23T17:01:14.000000"
 * (no zone: UTC), "2026-11-23T18:01:11+01:00" -> time_t. -EINVAL otherwise. */
int osjson_parse_time(const char *s, time_t *ret);

/* A JSON type's name for messages: "a string", "null", ... */
const char *osjson_type_name(const json_t *j);

/* The value of query parameter NAME in URL ("marker"), percent-decoded; 1 if absent. */
int osjson_url_query_param(const char *url, const char *name, char **ret);

/* Length of the valid UTF-8 sequence at S (1..4; 1 for ASCII including
 * NUL), or 0 if the bytes there are not valid UTF-8. */
size_t osjson_utf8_char_len(const unsigned char *s);
bool osjson_utf8_valid(const char *s);

/* Free a NULL-terminated string array. */
char **osjson_strv_free(char **v);
