/* keystone.h - Keystone v3 tokens: the auth request body, the token and its service catalog. */
#pragma once

#include <stddef.h>
#include <time.h>

#include "cloud/clouds.h"
#include "util/macro.h"
#include "cloud/oserror.h"

/* One endpoint of the service catalog. */
struct keystone_endpoint {
        char *service_type;     /* "compute", "image", "identity", ... */
        char *interface;        /* "public", "internal", "admin" */
        char *region;           /* region_id (or region), may be NULL */
        char *url;              /* as published */
};

struct keystone_token {
        char *token;            /* X-Subject-Token: secret, wiped on free */
        time_t expires_at;
        char *user_id;
        char *project_id;       /* NULL for an unscoped token */
        struct keystone_endpoint *endpoints;
        size_t n_endpoints;
};

struct keystone_token *keystone_token_free(struct keystone_token *t);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct keystone_token *, keystone_token_free);

/* "<auth_url>/auth/tokens", with "/v3" added when auth_url has no version
 * (".../v3", ".../v3/" and "..." all work). -EINVAL if auth_url is unset or
 * names another identity version (".../v2.0"). */
int keystone_tokens_url(const struct cloud_config *c, char **ret_url, struct os_error *err);

/* The JSON body of POST /v3/auth/tokens for C's auth type: password auth is
 * scoped to the project (by id, or name + domain); an application credential
 * carries its own scope. The body holds the secret: free it with
 * keystone_auth_body_free(), which wipes it. -EINVAL when C lacks what the
 * auth type needs (message names the key). */
int keystone_auth_body(const struct cloud_config *c, char **ret_body, struct os_error *err);
char *keystone_auth_body_free(char *body);

/* Parse a 201 response of POST /v3/auth/tokens. SUBJECT_TOKEN is the
 * X-Subject-Token header's value (copied). -EBADMSG with a message naming
 * the field on a malformed body, or a missing/empty token or expires_at. */
int keystone_parse_token(const char *subject_token, const char *body, size_t len,
                         struct keystone_token **ret, struct os_error *err);

/* The base URL for SERVICE_TYPE ("compute", "image", "identity", "network"):
 * C's <service>_endpoint_override if set, else the catalog's endpoint of that
 * type with C's interface and, if C has a region, that region. Without a
 * region the first matching endpoint in catalog order wins. The URL is
 * normalised to what the modules append paths to:
 *   compute:  ends in "/v2.1" (or "/v2.1/<project_id>"); a bare host gets
 *             "/v2.1", a legacy ".../v2/<project>" becomes ".../v2.1/<project>"
 *   image:    ends in "/v2"
 *   identity: ends in "/v3"
 *   network:  ends in "/v2.0"
 *   others:   trailing slashes stripped
 * -ENOENT with a message listing what the catalog has if nothing matches. */
int keystone_endpoint_url(const struct keystone_token *t, const struct cloud_config *c,
                          const char *service_type, char **ret_url, struct os_error *err);

/* Normalise URL for SERVICE_TYPE as above (exposed for tests and overrides). */
int keystone_normalize_url(const char *service_type, const char *url, char **ret_url);

/* GET <auth_url> ({"version":{"id":"v3.14",...}}): the version id, which
 * must be a v3 one ("v3", "v3.x"); -EPROTONOSUPPORT for another. */
int keystone_parse_version(const char *body, size_t len, char **ret_id, struct os_error *err);

/* A Keystone error body ({"error":{"code","title","message"}}) into err->message. */
int keystone_parse_error(const char *body, size_t len, struct os_error *err);
