/* keystone.c - Keystone v3 tokens: the auth request body, the token and its service catalog. */
#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "cloud/keystone.h"
#include "cloud/osjson.h"

#define KEYSTONE_CATALOG_MAX 256
#define KEYSTONE_ENDPOINTS_MAX 256

static bool str_empty(const char *s) {
        return !s || !*s;
}

static bool endswith(const char *s, const char *suffix) {
        size_t l = strlen(s), n = strlen(suffix);
        return l >= n && strcmp(s + l - n, suffix) == 0;
}

static char *strip_slashes(const char *url) {
        size_t l = strlen(url);
        char *s;

        while (l > 0 && url[l - 1] == '/')
                l--;
        s = strndup(url, l);
        return s;
}

/* The path component's last segment ("/v3" -> "v3"). */
static const char *last_segment(const char *url) {
        const char *p = strstr(url, "://");
        const char *s;

        p = p ? p + 3 : url;
        s = strrchr(p, '/');
        return s ? s + 1 : "";
}

static bool has_path(const char *url) {
        const char *p = strstr(url, "://");
        p = p ? p + 3 : url;
        return strchr(p, '/') != NULL;
}

int keystone_normalize_url(const char *service_type, const char *url, char **ret_url) {
        _cleanup_free_ char *u = NULL;
        char *out;
        const char *seg;

        if (str_empty(url))
                return -EINVAL;
        if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
                return -EINVAL;
        u = strip_slashes(url);
        if (!u)
                return -ENOMEM;
        if (strlen(u) <= strlen("https://"))
                return -EINVAL;
        seg = last_segment(u);

        if (strcmp(service_type, "compute") == 0) {
                const char *v2 = strstr(u, "/v2/");
                if (strstr(u, "/v2.1/") || endswith(u, "/v2.1"))
                        out = strdup(u);
                else if (v2) {
                        /* legacy ".../v2/<project>": the v2.1 API takes the same path */
                        if (asprintf(&out, "%.*s/v2.1/%s", (int) (v2 - u), u, v2 + 4) < 0)
                                out = NULL;
                } else if (endswith(u, "/v2")) {
                        if (asprintf(&out, "%s.1", u) < 0)
                                out = NULL;
                } else if (asprintf(&out, "%s/v2.1", u) < 0)
                        out = NULL;
        } else if (strcmp(service_type, "image") == 0) {
                if (strcmp(seg, "v2") == 0)
                        out = strdup(u);
                else if (asprintf(&out, "%s/v2", u) < 0)
                        out = NULL;
        } else if (strcmp(service_type, "identity") == 0) {
                if (strcmp(seg, "v3") == 0)
                        out = strdup(u);
                else if (has_path(u) && seg[0] == 'v' && seg[1] >= '0' && seg[1] <= '9')
                        return -EPROTONOSUPPORT;        /* v2.0 etc. */
                else if (asprintf(&out, "%s/v3", u) < 0)
                        out = NULL;
        } else if (strcmp(service_type, "network") == 0) {
                if (strcmp(seg, "v2.0") == 0)
                        out = strdup(u);
                else if (asprintf(&out, "%s/v2.0", u) < 0)
                        out = NULL;
        } else
                out = strdup(u);

        if (!out)
                return -ENOMEM;
        *ret_url = out;
        return 0;
}

int keystone_tokens_url(const struct cloud_config *c, char **ret_url, struct os_error *err) {
        _cleanup_free_ char *base = NULL;
        char *u;
        int r;

        if (str_empty(c->auth_url))
                return os_error_set(err, -EINVAL, "cloud '%s': auth.auth_url: missing", c->name ?: "");
        r = keystone_normalize_url("identity", c->auth_url, &base);
        if (r == -EPROTONOSUPPORT)
                return os_error_set(err, -EINVAL, "cloud '%s': auth.auth_url: only Identity v3 is supported",
                                    c->name ?: "");
        if (r < 0)
                return os_error_set(err, r == -ENOMEM ? r : -EINVAL,
                                    "cloud '%s': auth.auth_url: not an http(s) URL", c->name ?: "");
        if (asprintf(&u, "%s/auth/tokens", base) < 0)
                return -ENOMEM;
        *ret_url = u;
        return 0;
}

/* The auth body is written by hand into a buffer sized up front: it holds the
 * secret, and jansson's string copies or a growing buffer would leave
 * unwiped copies of it on the heap. Pass 1 (buf == NULL) only counts. */
struct writer {
        char *buf;
        size_t len;
};

static void put(struct writer *w, const char *s) {
        size_t n = strlen(s);
        if (w->buf)
                memcpy(w->buf + w->len, s, n);
        w->len += n;
}

static void put_string(struct writer *w, const char *s) {
        put(w, "\"");
        for (const unsigned char *p = (const unsigned char *) s; *p; p++) {
                char esc[8];
                if (*p == '"' || *p == '\\') {
                        esc[0] = '\\';
                        esc[1] = (char) *p;
                        esc[2] = 0;
                } else if (*p < 0x20)
                        snprintf(esc, sizeof(esc), "\\u%04x", *p);
                else {
                        esc[0] = (char) *p;
                        esc[1] = 0;
                }
                put(w, esc);
        }
        put(w, "\"");
}

/* "KEY":"VALUE" with a leading comma unless FIRST */
static void put_member(struct writer *w, bool first, const char *key, const char *value) {
        if (!first)
                put(w, ",");
        put_string(w, key);
        put(w, ":");
        put_string(w, value);
}

/* {"id":X} or {"name":X,"domain":{"id"|"name":Y}}, left open for more members */
static void put_ref(struct writer *w, const char *id, const char *name, const char *domain_id,
                    const char *domain_name) {
        put(w, "{");
        if (!str_empty(id)) {
                put_member(w, true, "id", id);
                return;
        }
        put_member(w, true, "name", name);
        put(w, ",\"domain\":{");
        if (!str_empty(domain_id))
                put_member(w, true, "id", domain_id);
        else
                put_member(w, true, "name", domain_name);
        put(w, "}");
}

static void write_body(struct writer *w, const struct cloud_config *c) {
        if (c->auth_type == CLOUD_AUTH_PASSWORD) {
                put(w, "{\"auth\":{\"identity\":{\"methods\":[\"password\"],\"password\":{\"user\":");
                put_ref(w, c->user_id, c->username, c->user_domain_id, c->user_domain_name);
                put_member(w, false, "password", c->password);
                put(w, "}}},\"scope\":{\"project\":");
                put_ref(w, c->project_id, c->project_name, c->project_domain_id, c->project_domain_name);
                put(w, "}}}}");
        } else {
                put(w, "{\"auth\":{\"identity\":{\"methods\":[\"application_credential\"],"
                       "\"application_credential\":");
                if (!str_empty(c->application_credential_id))
                        put_ref(w, c->application_credential_id, NULL, NULL, NULL);
                else {
                        put(w, "{");
                        put_member(w, true, "name", c->application_credential_name);
                        put(w, ",\"user\":");
                        put_ref(w, c->user_id, c->username, c->user_domain_id, c->user_domain_name);
                        put(w, "}");
                }
                put_member(w, false, "secret", c->application_credential_secret);
                put(w, "}}}}");
        }
}

static int check_user(const struct cloud_config *c, const char *what, struct os_error *err) {
        if (str_empty(c->user_id) && str_empty(c->username))
                return os_error_set(err, -EINVAL, "cloud '%s': auth: %s needs username or user_id",
                                    c->name ?: "", what);
        if (str_empty(c->user_id) && str_empty(c->user_domain_id) && str_empty(c->user_domain_name))
                return os_error_set(err, -EINVAL,
                                    "cloud '%s': auth: username needs user_domain_name or user_domain_id",
                                    c->name ?: "");
        return 0;
}

int keystone_auth_body(const struct cloud_config *c, char **ret_body, struct os_error *err) {
        struct writer w = {};
        int r;

        if (c->auth_type == CLOUD_AUTH_PASSWORD) {
                if (str_empty(c->password))
                        return os_error_set(err, -EINVAL, "cloud '%s': auth.password: missing", c->name ?: "");
                if (str_empty(c->project_id) && str_empty(c->project_name))
                        return os_error_set(err, -EINVAL, "cloud '%s': auth: needs project_name or project_id",
                                            c->name ?: "");
                if (str_empty(c->project_id) && str_empty(c->project_domain_id) &&
                    str_empty(c->project_domain_name))
                        return os_error_set(err, -EINVAL,
                                            "cloud '%s': auth: project_name needs project_domain_name or project_domain_id",
                                            c->name ?: "");
                if ((r = check_user(c, "password auth", err)) < 0)
                        return r;
        } else {
                if (str_empty(c->application_credential_secret))
                        return os_error_set(err, -EINVAL, "cloud '%s': auth.application_credential_secret: missing",
                                            c->name ?: "");
                if (str_empty(c->application_credential_id)) {
                        if (str_empty(c->application_credential_name))
                                return os_error_set(err, -EINVAL,
                                                    "cloud '%s': auth: needs application_credential_id or application_credential_name",
                                                    c->name ?: "");
                        if ((r = check_user(c, "application_credential_name", err)) < 0)
                                return r;
                }
        }

        /* Keystone takes UTF-8 only; say which key, never the value */
        const struct {
                const char *key, *value;
        } fields[] = {
                { "password", c->password }, { "application_credential_secret", c->application_credential_secret },
                { "username", c->username }, { "user_id", c->user_id },
                { "user_domain_name", c->user_domain_name }, { "user_domain_id", c->user_domain_id },
                { "project_name", c->project_name }, { "project_id", c->project_id },
                { "project_domain_name", c->project_domain_name }, { "project_domain_id", c->project_domain_id },
                { "application_credential_id", c->application_credential_id },
                { "application_credential_name", c->application_credential_name },
        };
        for (size_t i = 0; i < ELEMENTSOF(fields); i++)
                if (fields[i].value && !osjson_utf8_valid(fields[i].value))
                        return os_error_set(err, -EINVAL, "cloud '%s': auth.%s: not valid UTF-8",
                                            c->name ?: "", fields[i].key);

        write_body(&w, c);
        w.buf = malloc(w.len + 1);
        if (!w.buf)
                return -ENOMEM;
        w.len = 0;
        write_body(&w, c);
        w.buf[w.len] = 0;
        *ret_body = w.buf;
        return 0;
}

char *keystone_auth_body_free(char *body) {
        if (body) {
                explicit_bzero(body, strlen(body));
                free(body);
        }
        return NULL;
}

struct keystone_token *keystone_token_free(struct keystone_token *t) {
        if (!t)
                return NULL;
        if (t->token) {
                explicit_bzero(t->token, strlen(t->token));
                free(t->token);
        }
        free(t->user_id);
        free(t->project_id);
        for (size_t i = 0; i < t->n_endpoints; i++) {
                free(t->endpoints[i].service_type);
                free(t->endpoints[i].interface);
                free(t->endpoints[i].region);
                free(t->endpoints[i].url);
        }
        free(t->endpoints);
        free(t);
        return NULL;
}

static int parse_catalog(json_t *tok, struct keystone_token *t, struct os_error *err) {
        json_t *cat, *svc, *eps, *ep;
        size_t i, j, total = 0;
        int r;

        r = osjson_get_array(tok, "token", "catalog", OSJSON_MAYBE, KEYSTONE_CATALOG_MAX, &cat, err);
        if (r != 0)
                return r < 0 ? r : 0;
        json_array_foreach(cat, i, svc) {
                char p[48];
                snprintf(p, sizeof(p), "token.catalog[%zu]", i);
                if (!json_is_object(svc))
                        return os_error_set(err, -EBADMSG, "%s: expected an object, got %s",
                                            p, osjson_type_name(svc));
                _cleanup_free_ char *type = NULL;
                if ((r = osjson_get_string(svc, p, "type", 0, &type, err)) < 0 ||
                    (r = osjson_get_array(svc, p, "endpoints", 0, KEYSTONE_ENDPOINTS_MAX, &eps, err)) < 0)
                        return r;
                total += json_array_size(eps);
        }
        if (total == 0)
                return 0;
        t->endpoints = calloc(total, sizeof(*t->endpoints));
        if (!t->endpoints)
                return -ENOMEM;

        json_array_foreach(cat, i, svc) {
                char p[48];
                _cleanup_free_ char *type = NULL;

                snprintf(p, sizeof(p), "token.catalog[%zu]", i);
                r = osjson_get_string(svc, p, "type", 0, &type, err);
                if (r < 0)
                        return r;
                eps = json_object_get(svc, "endpoints");
                json_array_foreach(eps, j, ep) {
                        struct keystone_endpoint *e = &t->endpoints[t->n_endpoints];
                        char q[80];

                        snprintf(q, sizeof(q), "%s.endpoints[%zu]", p, j);
                        if (!json_is_object(ep))
                                return os_error_set(err, -EBADMSG, "%s: expected an object, got %s",
                                                    q, osjson_type_name(ep));
                        t->n_endpoints++;
                        e->service_type = strdup(type);
                        if (!e->service_type)
                                return -ENOMEM;
                        if ((r = osjson_get_string(ep, q, "interface", 0, &e->interface, err)) < 0 ||
                            (r = osjson_get_string(ep, q, "url", 0, &e->url, err)) < 0 ||
                            (r = osjson_get_string(ep, q, "region_id", OSJSON_MAYBE, &e->region, err)) < 0)
                                return r;
                        if (!e->region &&
                            (r = osjson_get_string(ep, q, "region", OSJSON_MAYBE, &e->region, err)) < 0)
                                return r;
                }
        }
        return 0;
}

int keystone_parse_token(const char *subject_token, const char *body, size_t len,
                         struct keystone_token **ret, struct os_error *err) {
        _cleanup_json_ json_t *root = NULL;
        _cleanup_(keystone_token_freep) struct keystone_token *t = NULL;
        json_t *tok, *o;
        int r;

        if (str_empty(subject_token))
                return os_error_set(err, -EBADMSG, "token: no X-Subject-Token header in the response");
        r = osjson_load(body, len, "token", &root, err);
        if (r < 0)
                return r;
        r = osjson_get_object(root, "response", "token", 0, &tok, err);
        if (r < 0)
                return r;
        t = calloc(1, sizeof(*t));
        if (!t)
                return -ENOMEM;
        t->token = strdup(subject_token);
        if (!t->token)
                return -ENOMEM;
        if ((r = osjson_get_time(tok, "token", "expires_at", 0, &t->expires_at, err)) < 0)
                return r;
        r = osjson_get_object(tok, "token", "user", OSJSON_MAYBE, &o, err);
        if (r < 0)
                return r;
        if (r == 0 && (r = osjson_get_string(o, "token.user", "id", OSJSON_MAYBE, &t->user_id, err)) < 0)
                return r;
        r = osjson_get_object(tok, "token", "project", OSJSON_MAYBE, &o, err);
        if (r < 0)
                return r;
        if (r == 0 && (r = osjson_get_string(o, "token.project", "id", 0, &t->project_id, err)) < 0)
                return r;
        r = parse_catalog(tok, t, err);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(t);
        return 0;
}

static const char *override_for(const struct cloud_config *c, const char *service_type) {
        if (strcmp(service_type, "compute") == 0)
                return c->compute_endpoint_override;
        if (strcmp(service_type, "image") == 0)
                return c->image_endpoint_override;
        if (strcmp(service_type, "identity") == 0)
                return c->identity_endpoint_override;
        if (strcmp(service_type, "network") == 0)
                return c->network_endpoint_override;
        return NULL;
}

int keystone_endpoint_url(const struct keystone_token *t, const struct cloud_config *c,
                          const char *service_type, char **ret_url, struct os_error *err) {
        const char *iface = clouds_interface_to_string(c->interface);
        const char *ov = override_for(c, service_type);
        const struct keystone_endpoint *found = NULL;
        int r;

        if (!str_empty(ov)) {
                r = keystone_normalize_url(service_type, ov, ret_url);
                if (r == -ENOMEM)
                        return r;
                if (r < 0)
                        return os_error_set(err, -EINVAL, "cloud '%s': %s_endpoint_override: not a usable http(s) URL",
                                            c->name ?: "", service_type);
                return 0;
        }

        for (size_t i = 0; i < t->n_endpoints && !found; i++) {
                const struct keystone_endpoint *e = &t->endpoints[i];
                if (strcmp(e->service_type, service_type) != 0 || strcmp(e->interface, iface) != 0)
                        continue;
                if (!str_empty(c->region_name) && (!e->region || strcmp(e->region, c->region_name) != 0))
                        continue;
                found = e;
        }
        if (!found) {
                /* say what there is, so a wrong region or interface is obvious */
                _cleanup_free_ char *have = NULL;
                size_t size = 0, count = 0;
                FILE *f = open_memstream(&have, &size);
                if (!f)
                        return -ENOMEM;
                for (size_t i = 0; i < t->n_endpoints; i++)
                        if (strcmp(t->endpoints[i].service_type, service_type) == 0)
                                fprintf(f, "%s%s/%s", count++ ? ", " : "", t->endpoints[i].interface,
                                        t->endpoints[i].region ?: "(no region)");
                if (fclose(f) != 0)
                        return -ENOMEM;
                return os_error_set(err, -ENOENT, "no %s endpoint with interface %s%s%s in the catalog; %s%s",
                                    service_type, iface, c->region_name ? " in region " : "",
                                    c->region_name ?: "", count ? "it has " : "it has none",
                                    count ? have : "");
        }
        r = keystone_normalize_url(service_type, found->url, ret_url);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return os_error_set(err, -EBADMSG, "catalog: the %s endpoint's URL is not usable", service_type);
        return 0;
}

int keystone_parse_version(const char *body, size_t len, char **ret_id, struct os_error *err) {
        _cleanup_json_ json_t *root = NULL;
        _cleanup_free_ char *id = NULL;
        json_t *v;
        int r;

        r = osjson_load(body, len, "identity version", &root, err);
        if (r < 0)
                return r;
        if ((r = osjson_get_object(root, "response", "version", 0, &v, err)) < 0 ||
            (r = osjson_get_string(v, "version", "id", 0, &id, err)) < 0)
                return r;
        if (strcmp(id, "v3") != 0 && strncmp(id, "v3.", 3) != 0)
                return os_error_set(err, -EPROTONOSUPPORT, "identity API %.16s: only v3 is supported", id);
        *ret_id = TAKE_PTR(id);
        return 0;
}

int keystone_parse_error(const char *body, size_t len, struct os_error *err) {
        return os_error_from_body(err, body, len);
}
