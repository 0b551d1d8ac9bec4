/* osfixture.h - read captured OpenStack exchanges (tests/fixtures/openstack/) in unit tests. */
#pragma once

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "test.h"

#define FIXTURE_DIR SRCDIR "/tests/fixtures/openstack/"

/* The whole exchange, or NULL (and a test failure) if it cannot be read. */
static inline json_t *fixture_load(const char *name) {
        char path[512];
        json_error_t e;
        json_t *j;

        snprintf(path, sizeof(path), FIXTURE_DIR "%s.json", name);
        j = json_load_file(path, 0, &e);
        if (!j)
                TEST_FAIL("cannot load %s: %s", path, e.text);
        return j;
}

/* The response body re-serialised as the server would have sent it
 * (malloc'd, "" for a null body), plus its status. */
static inline char *fixture_body(const char *name, long *ret_status) {
        json_t *j = fixture_load(name), *resp, *body;
        char *s;

        if (!j)
                return strdup("");
        resp = json_object_get(j, "response");
        body = json_object_get(resp, "body");
        if (ret_status)
                *ret_status = (long) json_integer_value(json_object_get(resp, "status"));
        if (!body || json_is_null(body))
                s = strdup("");
        else if (json_is_string(body))
                s = strdup(json_string_value(body));
        else
                s = json_dumps(body, JSON_COMPACT);
        json_decref(j);
        return s;
}

/* A response header's value (case-insensitive name), malloc'd, or NULL. */
static inline char *fixture_header(const char *name, const char *header) {
        json_t *j = fixture_load(name), *h, *v;
        const char *k;
        char *s = NULL;

        if (!j)
                return NULL;
        h = json_object_get(json_object_get(j, "response"), "headers");
        json_object_foreach(h, k, v)
                if (strcasecmp(k, header) == 0 && json_is_string(v))
                        s = strdup(json_string_value(v));
        json_decref(j);
        return s;
}
