/* clouds.c - OpenStack credentials from the standard clouds.yaml (+ secure.yaml). */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "cloud/clouds.h"
#include "conf/config.h"
#include "conf/yamlcheck.h"
#include "util/fileread.h"
#include "util/urlredact.h"

#define CLOUDS_FILE_MAX (1024U * 1024U)
/* A CA bundle (the system one is about 200 KiB). */
#define CLOUDS_CACERT_MAX (16U * 1024U * 1024U)

static char *free_secret(char *s) {
        if (s) {
                explicit_bzero(s, strlen(s));
                free(s);
        }
        return NULL;
}

struct cloud_config *clouds_free(struct cloud_config *c) {
        if (!c)
                return NULL;
        free(c->name);
        free(c->clouds_file);
        free(c->secure_file);
        free(c->auth_url);
        free(c->username);
        free(c->user_id);
        free_secret(c->password);
        free(c->user_domain_name);
        free(c->user_domain_id);
        free(c->project_name);
        free(c->project_id);
        free(c->project_domain_name);
        free(c->project_domain_id);
        free(c->application_credential_id);
        free(c->application_credential_name);
        free_secret(c->application_credential_secret);
        free(c->region_name);
        free(c->cacert);
        free(c->cacert_pem);
        free(c->compute_endpoint_override);
        free(c->image_endpoint_override);
        free(c->identity_endpoint_override);
        free(c->network_endpoint_override);
        free(c);
        return NULL;
}

const char *clouds_interface_to_string(enum cloud_interface i) {
        switch (i) {
        case CLOUD_INTERFACE_INTERNAL: return "internal";
        case CLOUD_INTERFACE_ADMIN:    return "admin";
        case CLOUD_INTERFACE_PUBLIC:
        default:                       return "public";
        }
}

const char *clouds_auth_type_to_string(enum cloud_auth_type t) {
        return t == CLOUD_AUTH_APPLICATION_CREDENTIAL ? "v3applicationcredential" : "password";
}

int clouds_print(const struct cloud_config *c, FILE *f) {
        const struct {
                const char *key, *value;
        } lines[] = {
                { "cloud", c->name },
                { "clouds_file", c->clouds_file },
                { "secure_file", c->secure_file },
                { "auth_type", clouds_auth_type_to_string(c->auth_type) },
                { "auth_url", c->auth_url },
                { "username", c->username },
                { "user_id", c->user_id },
                { "password", c->password ? "<hidden>" : NULL },
                { "user_domain_name", c->user_domain_name },
                { "user_domain_id", c->user_domain_id },
                { "project_name", c->project_name },
                { "project_id", c->project_id },
                { "project_domain_name", c->project_domain_name },
                { "project_domain_id", c->project_domain_id },
                { "application_credential_id", c->application_credential_id },
                { "application_credential_name", c->application_credential_name },
                { "application_credential_secret", c->application_credential_secret ? "<hidden>" : NULL },
                { "region_name", c->region_name },
                { "interface", clouds_interface_to_string(c->interface) },
                { "cacert", c->cacert },
                { "verify", c->verify ? "true" : "false" },
                { "compute_endpoint_override", c->compute_endpoint_override },
                { "image_endpoint_override", c->image_endpoint_override },
                { "identity_endpoint_override", c->identity_endpoint_override },
                { "network_endpoint_override", c->network_endpoint_override },
        };
        for (size_t i = 0; i < ELEMENTSOF(lines); i++)
                if (lines[i].value)
                        fprintf(f, "%s: %s\n", lines[i].key, lines[i].value);
        return ferror(f) ? -EIO : 0;
}

/* ---- search path ---- */

int clouds_search_path(const char *basename, char ***ret_paths) {
        char **v = calloc(4, sizeof(char *));
        const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
        size_t n = 0;
        int r;

        if (!v)
                return -ENOMEM;
        r = asprintf(&v[n], "./%s", basename);
        if (r < 0)
                goto oom;
        n++;
        /* relative XDG_CONFIG_HOME is invalid per the spec: fall back to HOME */
        if (xdg && *xdg == '/') {
                if (asprintf(&v[n], "%s/openstack/%s", xdg, basename) < 0)
                        goto oom;
                n++;
        } else if (home && *home == '/') {
                if (asprintf(&v[n], "%s/.config/openstack/%s", home, basename) < 0)
                        goto oom;
                n++;
        }
        r = asprintf(&v[n], "/etc/openstack/%s", basename);
        if (r < 0)
                goto oom;
        *ret_paths = v;
        return 0;
oom:
        for (size_t i = 0; i < n; i++)
                free(v[i]);
        free(v);
        return -ENOMEM;
}

static void strv_free(char **v) {
        if (v)
                for (char **p = v; *p; p++)
                        free(*p);
        free(v);
}

/* ---- files ---- */

struct yfile {
        const char *path;
        yaml_document_t doc;
        bool loaded;
        yaml_node_t *cloud;     /* clouds.NAME, or NULL */
};

static void yfile_done(struct yfile *f) {
        if (f->loaded)
                yaml_document_delete(&f->doc);
        f->loaded = false;
}

/* Errors: one line, kept in a struct so every helper can set it. */
struct ctx {
        const char *name;       /* cloud */
        char *error;
};

static int fail(struct ctx *x, int err, const char *fmt, ...) _printf_(3, 4);
static int fail(struct ctx *x, int err, const char *fmt, ...) {
        va_list ap;

        if (x->error)
                return err;
        va_start(ap, fmt);
        if (vasprintf(&x->error, fmt, ap) < 0)
                x->error = NULL;
        va_end(ap);
        return err;
}

static int fail_at(struct ctx *x, const struct yfile *f, const yaml_node_t *n, const char *key,
                   const char *what) {
        return fail(x, -EINVAL, "%s:%zu:%zu: cloud '%s': %s: %s", f->path,
                    n ? n->start_mark.line + 1 : 0, n ? n->start_mark.column + 1 : 0, x->name, key, what);
}

static int yfile_load(struct ctx *x, struct yfile *f) {
        _cleanup_free_ char *buf = NULL, *problem = NULL;
        yaml_parser_t parser;
        size_t len = 0;
        int r;

        r = fileread_all(f->path, 0, CLOUDS_FILE_MAX, &buf, &len, &problem);
        if (r < 0)
                return problem ? fail(x, r, "%s", problem) : r;

        /* elasticd.yaml's rules (nesting, duplicate keys) before anything is
         * built: a hostile depth stops the scan at once. */
        problem = mfree(problem);
        r = yamlcheck_scan(f->path, buf, len, YAMLCHECK_MAX_DEPTH, &problem);
        if (r < 0) {
                explicit_bzero(buf, len);
                return problem ? fail(x, r, "%s", problem) : r;
        }
        if (!yaml_parser_initialize(&parser))
                return -ENOMEM;
        yaml_parser_set_input_string(&parser, (const unsigned char *) buf, len);
        if (!yaml_parser_load(&parser, &f->doc)) {
                /* libyaml's problem texts describe syntax, they never quote the input */
                r = fail(x, -EINVAL, "%s:%zu:%zu: YAML: %s%s%s", f->path, parser.problem_mark.line + 1,
                         parser.problem_mark.column + 1, parser.problem ?: "syntax error",
                         parser.context ? " " : "", parser.context ?: "");
                yaml_parser_delete(&parser);
                explicit_bzero(buf, len);
                return r;
        }
        yaml_parser_delete(&parser);
        explicit_bzero(buf, len);
        f->loaded = true;
        return 0;
}

static yaml_node_t *map_get(yaml_document_t *d, yaml_node_t *map, const char *key) {
        if (!map || map->type != YAML_MAPPING_NODE)
                return NULL;
        for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
                yaml_node_t *k = yaml_document_get_node(d, p->key);
                if (k && k->type == YAML_SCALAR_NODE && strcmp((const char *) k->data.scalar.value, key) == 0)
                        return yaml_document_get_node(d, p->value);
        }
        return NULL;
}

static const char *scalar(const yaml_node_t *n) {
        return n && n->type == YAML_SCALAR_NODE ? (const char *) n->data.scalar.value : NULL;
}

/* clouds.NAME of F; a file without "clouds:" or without NAME has none. */
static int find_cloud(struct ctx *x, struct yfile *f, bool required) {
        yaml_node_t *root = yaml_document_get_root_node(&f->doc), *clouds;

        if (!root) {
                if (required)
                        return fail(x, -ENOENT, "%s: empty file, no cloud '%s'", f->path, x->name);
                return 0;
        }
        if (root->type != YAML_MAPPING_NODE)
                return fail(x, -EINVAL, "%s:%zu:%zu: expected a mapping with a \"clouds\" key", f->path,
                            root->start_mark.line + 1, root->start_mark.column + 1);
        clouds = map_get(&f->doc, root, "clouds");
        if (!clouds) {
                if (required)
                        return fail(x, -ENOENT, "%s: no \"clouds\" key, so no cloud '%s'", f->path, x->name);
                return 0;
        }
        if (clouds->type != YAML_MAPPING_NODE)
                return fail(x, -EINVAL, "%s:%zu:%zu: clouds: expected a mapping of cloud names", f->path,
                            clouds->start_mark.line + 1, clouds->start_mark.column + 1);
        f->cloud = map_get(&f->doc, clouds, x->name);
        if (!f->cloud && required) {
                _cleanup_free_ char *names = NULL;
                size_t size = 0, count = 0;
                FILE *m = open_memstream(&names, &size);
                if (!m)
                        return -ENOMEM;
                for (yaml_node_pair_t *p = clouds->data.mapping.pairs.start; p < clouds->data.mapping.pairs.top; p++) {
                        const char *k = scalar(yaml_document_get_node(&f->doc, p->key));
                        if (k)
                                fprintf(m, "%s%s", count++ ? ", " : "", k);
                }
                if (fclose(m) != 0)
                        return -ENOMEM;
                return fail(x, -ENOENT, "%s: no cloud '%s'; %s%s", f->path, x->name,
                            count ? "it has: " : "it has none", count ? names : "");
        }
        if (f->cloud && f->cloud->type != YAML_MAPPING_NODE)
                return fail_at(x, f, f->cloud, x->name, "expected a mapping");
        return 0;
}

/* ---- the merged view: secure.yaml's value wins, key by key ---- */

struct view {
        struct yfile *files[2];         /* [0] secure (may be unloaded), [1] clouds */
};

/* SECTION: NULL for the cloud's own keys, "auth" for its auth dict. */
static yaml_node_t *lookup(struct ctx *x, struct view *v, const char *section, const char *key,
                           struct yfile **ret_file, int *ret_err) {
        *ret_err = 0;
        for (size_t i = 0; i < 2; i++) {
                struct yfile *f = v->files[i];
                yaml_node_t *m, *n;

                if (!f || !f->loaded || !f->cloud)
                        continue;
                m = f->cloud;
                if (section) {
                        m = map_get(&f->doc, f->cloud, section);
                        if (!m)
                                continue;
                        if (m->type != YAML_MAPPING_NODE) {
                                *ret_err = fail_at(x, f, m, section, "expected a mapping");
                                return NULL;
                        }
                }
                n = map_get(&f->doc, m, key);
                if (n) {
                        *ret_file = f;
                        return n;
                }
        }
        return NULL;
}

/* Copy the scalar at SECTION.KEY into *RET (if set). Values are never quoted in errors. */
static int get_string(struct ctx *x, struct view *v, const char *section, const char *key,
                      char **ret, struct yfile **ret_file) {
        struct yfile *f = NULL;
        char full[96];
        yaml_node_t *n;
        int r;

        n = lookup(x, v, section, key, &f, &r);
        if (r < 0)
                return r;
        if (!n)
                return 0;
        snprintf(full, sizeof(full), "%s%s%s", section ?: "", section ? "." : "", key);
        if (n->type != YAML_SCALAR_NODE)
                return fail_at(x, f, n, full, "expected a string");
        /* "key:", "key: ~" and "key: null" are YAML nulls: treat as unset */
        if (n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
            (n->data.scalar.length == 0 || strcmp(scalar(n), "~") == 0 || strcmp(scalar(n), "null") == 0 ||
             strcmp(scalar(n), "Null") == 0 || strcmp(scalar(n), "NULL") == 0))
                return 0;
        if (strlen(scalar(n)) != n->data.scalar.length)
                return fail_at(x, f, n, full, "contains a NUL byte");
        free(*ret);
        *ret = strdup(scalar(n));
        if (!*ret)
                return -ENOMEM;
        if (ret_file)
                *ret_file = f;
        return 0;
}

static int parse_bool(const char *s, bool *ret) {
        static const char *const yes[] = { "true", "yes", "on", "1" }, *const no[] = { "false", "no", "off", "0" };
        for (size_t i = 0; i < ELEMENTSOF(yes); i++)
                if (strcasecmp(s, yes[i]) == 0) {
                        *ret = true;
                        return 0;
                }
        for (size_t i = 0; i < ELEMENTSOF(no); i++)
                if (strcasecmp(s, no[i]) == 0) {
                        *ret = false;
                        return 0;
                }
        return -EINVAL;
}

/* A file that hands us a secret must be private to its owner (config.h's rule
 * for every secret file: owner us or root, no group/other access). */
static int check_secret_file(struct ctx *x, const struct yfile *f, const char *key) {
        _cleanup_free_ char *why = NULL;
        int r;

        r = config_check_secret_file(f->path, &why);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return fail(x, r == -EPERM ? -EPERM : r, "%s: holds %s of cloud '%s': %s%s", f->path, key, x->name,
                            why ?: "not usable", r == -EPERM ? "; or move the secret to secure.yaml" : "");
        return 0;
}

static const char *const auth_keys[] = {
        "auth_url", "username", "user_id", "password", "user_domain_name", "user_domain_id",
        "project_name", "project_id", "project_domain_name", "project_domain_id",
        "tenant_name", "tenant_id", "domain_name", "domain_id",
        "application_credential_id", "application_credential_name", "application_credential_secret",
        NULL,
};

static bool strv_contains(const char *const *v, const char *s) {
        for (; *v; v++)
                if (strcmp(*v, s) == 0)
                        return true;
        return false;
}

/* Unknown auth keys are errors: they mean a scope or method we would silently ignore. */
static int check_auth_keys(struct ctx *x, struct view *v) {
        for (size_t i = 0; i < 2; i++) {
                struct yfile *f = v->files[i];
                yaml_node_t *auth;

                if (!f || !f->loaded || !f->cloud)
                        continue;
                auth = map_get(&f->doc, f->cloud, "auth");
                if (!auth)
                        continue;
                if (auth->type != YAML_MAPPING_NODE)
                        return fail_at(x, f, auth, "auth", "expected a mapping");
                for (yaml_node_pair_t *p = auth->data.mapping.pairs.start; p < auth->data.mapping.pairs.top; p++) {
                        yaml_node_t *k = yaml_document_get_node(&f->doc, p->key);
                        const char *ks = scalar(k);
                        if (!ks)
                                return fail_at(x, f, k, "auth", "keys must be strings");
                        if (!strv_contains(auth_keys, ks)) {
                                char what[160];
                                snprintf(what, sizeof(what), "auth.%.64s", ks);
                                return fail_at(x, f, k, what, "unknown or unsupported key");
                        }
                }
        }
        return 0;
}

static int load_cloud(struct ctx *x, struct view *v, struct cloud_config *c) {
        struct yfile *cloud_file = v->files[1], *f = NULL;
        _cleanup_free_ char *auth_type = NULL, *interface = NULL, *verify = NULL, *idv = NULL;
        _cleanup_free_ char *tenant_name = NULL, *tenant_id = NULL, *domain_name = NULL, *domain_id = NULL;
        yaml_node_t *n;
        int r;

        r = check_auth_keys(x, v);
        if (r < 0)
                return r;

        struct {
                const char *section, *key;
                char **ret;
        } strings[] = {
                { "auth", "auth_url", &c->auth_url },
                { "auth", "username", &c->username },
                { "auth", "user_id", &c->user_id },
                { "auth", "user_domain_name", &c->user_domain_name },
                { "auth", "user_domain_id", &c->user_domain_id },
                { "auth", "project_name", &c->project_name },
                { "auth", "project_id", &c->project_id },
                { "auth", "project_domain_name", &c->project_domain_name },
                { "auth", "project_domain_id", &c->project_domain_id },
                { "auth", "tenant_name", &tenant_name },
                { "auth", "tenant_id", &tenant_id },
                { "auth", "domain_name", &domain_name },
                { "auth", "domain_id", &domain_id },
                { "auth", "application_credential_id", &c->application_credential_id },
                { "auth", "application_credential_name", &c->application_credential_name },
                { NULL, "auth_type", &auth_type },
                { NULL, "region_name", &c->region_name },
                { NULL, "interface", &interface },
                { NULL, "cacert", &c->cacert },
                { NULL, "verify", &verify },
                { NULL, "identity_api_version", &idv },
                { NULL, "compute_endpoint_override", &c->compute_endpoint_override },
                { NULL, "image_endpoint_override", &c->image_endpoint_override },
                { NULL, "identity_endpoint_override", &c->identity_endpoint_override },
                { NULL, "network_endpoint_override", &c->network_endpoint_override },
        };
        for (size_t i = 0; i < ELEMENTSOF(strings); i++) {
                r = get_string(x, v, strings[i].section, strings[i].key, strings[i].ret, NULL);
                if (r < 0)
                        return r;
        }
        if (!interface) {
                r = get_string(x, v, NULL, "endpoint_type", &interface, NULL);
                if (r < 0)
                        return r;
        }

        /* secrets: remember which file they came from */
        f = NULL;
        r = get_string(x, v, "auth", "password", &c->password, &f);
        if (r < 0)
                return r;
        if (c->password && (r = check_secret_file(x, f, "auth.password")) < 0)
                return r;
        f = NULL;
        r = get_string(x, v, "auth", "application_credential_secret", &c->application_credential_secret, &f);
        if (r < 0)
                return r;
        if (c->application_credential_secret &&
            (r = check_secret_file(x, f, "auth.application_credential_secret")) < 0)
                return r;

        /* legacy and shorthand spellings, as openstacksdk reads them */
        if (!c->project_name && tenant_name)
                c->project_name = TAKE_PTR(tenant_name);
        if (!c->project_id && tenant_id)
                c->project_id = TAKE_PTR(tenant_id);
        if (domain_name) {
                if (!c->user_domain_name && !c->user_domain_id && !(c->user_domain_name = strdup(domain_name)))
                        return -ENOMEM;
                if (!c->project_domain_name && !c->project_domain_id && !(c->project_domain_name = strdup(domain_name)))
                        return -ENOMEM;
        }
        if (domain_id) {
                if (!c->user_domain_name && !c->user_domain_id && !(c->user_domain_id = strdup(domain_id)))
                        return -ENOMEM;
                if (!c->project_domain_name && !c->project_domain_id && !(c->project_domain_id = strdup(domain_id)))
                        return -ENOMEM;
        }

        /* region: region_name, else the first of "regions" */
        if (!c->region_name) {
                yaml_node_t *regions = lookup(x, v, NULL, "regions", &f, &r);
                if (r < 0)
                        return r;
                if (regions) {
                        yaml_node_t *first;
                        if (regions->type != YAML_SEQUENCE_NODE)
                                return fail_at(x, f, regions, "regions", "expected a list");
                        if (regions->data.sequence.items.top > regions->data.sequence.items.start) {
                                first = yaml_document_get_node(&f->doc, *regions->data.sequence.items.start);
                                if (first && first->type == YAML_MAPPING_NODE)
                                        first = map_get(&f->doc, first, "name");
                                if (!scalar(first) || !*scalar(first))
                                        return fail_at(x, f, regions, "regions", "the first entry has no name");
                                c->region_name = strdup(scalar(first));
                                if (!c->region_name)
                                        return -ENOMEM;
                        }
                }
        }

        n = map_get(&cloud_file->doc, cloud_file->cloud, "auth");
        if (!auth_type)
                /* openstacksdk defaults to password; a lone secret says otherwise */
                c->auth_type = c->application_credential_secret && !c->password ?
                        CLOUD_AUTH_APPLICATION_CREDENTIAL : CLOUD_AUTH_PASSWORD;
        else if (strcmp(auth_type, "password") == 0 || strcmp(auth_type, "v3password") == 0)
                c->auth_type = CLOUD_AUTH_PASSWORD;
        else if (strcmp(auth_type, "v3applicationcredential") == 0 ||
                 strcmp(auth_type, "applicationcredential") == 0)
                c->auth_type = CLOUD_AUTH_APPLICATION_CREDENTIAL;
        else {
                yaml_node_t *at = lookup(x, v, NULL, "auth_type", &f, &r);
                char what[128];
                snprintf(what, sizeof(what), "'%.40s' is not supported (password, v3applicationcredential)", auth_type);
                return fail_at(x, f, at, "auth_type", what);
        }

        if (!interface || strcmp(interface, "public") == 0 || strcmp(interface, "publicURL") == 0)
                c->interface = CLOUD_INTERFACE_PUBLIC;
        else if (strcmp(interface, "internal") == 0 || strcmp(interface, "internalURL") == 0)
                c->interface = CLOUD_INTERFACE_INTERNAL;
        else if (strcmp(interface, "admin") == 0 || strcmp(interface, "adminURL") == 0)
                c->interface = CLOUD_INTERFACE_ADMIN;
        else {
                yaml_node_t *in = lookup(x, v, NULL, "interface", &f, &r);
                if (!in)
                        in = lookup(x, v, NULL, "endpoint_type", &f, &r);
                return fail_at(x, f, in, "interface", "must be public, internal or admin");
        }

        c->verify = true;
        if (verify && parse_bool(verify, &c->verify) < 0) {
                yaml_node_t *vn = lookup(x, v, NULL, "verify", &f, &r);
                return fail_at(x, f, vn, "verify", "expected true or false");
        }

        if (idv && strcmp(idv, "3") != 0 && strncmp(idv, "3.", 2) != 0) {
                yaml_node_t *in = lookup(x, v, NULL, "identity_api_version", &f, &r);
                return fail_at(x, f, in, "identity_api_version", "only Identity v3 is supported");
        }

        if (c->cacert) {
                _cleanup_free_ char *why = NULL;
                int k = fileread_all(c->cacert, 0, CLOUDS_CACERT_MAX, &c->cacert_pem, &c->cacert_pem_len, &why);
                if (k == -ENOMEM)
                        return k;
                if (k < 0) {
                        yaml_node_t *cn = lookup(x, v, NULL, "cacert", &f, &r);
                        _cleanup_free_ char *what = NULL;
                        if (!why || asprintf(&what, "the CA bundle %s", why) < 0)
                                return -ENOMEM;
                        return fail_at(x, f, cn, "cacert", what);
                }
        }

        /* what the auth type needs; the position is the cloud's auth (or the cloud) */
        f = cloud_file;
        if (!n)
                n = cloud_file->cloud;
        if (!c->auth_url)
                return fail_at(x, f, n, "auth.auth_url", "missing");
        {
                /* A URL's secrets would end up in logs and errors: refuse them
                 * (and never quote the URL here). */
                const struct { const char *key; const char *value; } urls[] = {
                        { "auth.auth_url", c->auth_url },
                        { "compute_endpoint_override", c->compute_endpoint_override },
                        { "image_endpoint_override", c->image_endpoint_override },
                        { "identity_endpoint_override", c->identity_endpoint_override },
                        { "network_endpoint_override", c->network_endpoint_override },
                };
                for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++)
                        if (urls[i].value && urlredact_has_secret(urls[i].value)) {
                                struct yfile *uf = f;
                                const char *leaf = strchr(urls[i].key, '.') ? strchr(urls[i].key, '.') + 1 : urls[i].key;
                                yaml_node_t *un = lookup(x, v, strchr(urls[i].key, '.') ? "auth" : NULL, leaf, &uf, &r);
                                return fail_at(x, uf, un ? un : n, urls[i].key,
                                               "the URL carries credentials (user:password@ or a token in the query); "
                                               "give a plain URL and put the credentials in auth.username/auth.password "
                                               "(or an application credential), preferably in secure.yaml");
                        }
        }
        if (c->auth_type == CLOUD_AUTH_PASSWORD) {
                if (!c->password)
                        return fail_at(x, f, n, "auth.password", "missing (password auth)");
                if (!c->username && !c->user_id)
                        return fail_at(x, f, n, "auth.username", "missing (or user_id)");
                if (!c->user_id && !c->user_domain_name && !c->user_domain_id)
                        return fail_at(x, f, n, "auth.user_domain_name", "missing (or user_domain_id), needed with username");
                if (!c->project_name && !c->project_id)
                        return fail_at(x, f, n, "auth.project_name", "missing (or project_id): elasticd needs a project-scoped token");
                if (!c->project_id && !c->project_domain_name && !c->project_domain_id)
                        return fail_at(x, f, n, "auth.project_domain_name", "missing (or project_domain_id), needed with project_name");
                if (c->application_credential_secret)
                        return fail_at(x, f, n, "auth.application_credential_secret",
                                       "given with password auth; set auth_type: v3applicationcredential");
        } else {
                if (!c->application_credential_secret)
                        return fail_at(x, f, n, "auth.application_credential_secret", "missing");
                if (!c->application_credential_id) {
                        if (!c->application_credential_name)
                                return fail_at(x, f, n, "auth.application_credential_id", "missing (or application_credential_name)");
                        if (!c->username && !c->user_id)
                                return fail_at(x, f, n, "auth.username",
                                               "missing (or user_id), needed with application_credential_name");
                        if (!c->user_id && !c->user_domain_name && !c->user_domain_id)
                                return fail_at(x, f, n, "auth.user_domain_name", "missing (or user_domain_id), needed with username");
                }
                if (c->password)
                        return fail_at(x, f, n, "auth.password", "given with application credential auth");
        }
        return 0;
}

static int load(struct ctx *x, const char *clouds_path, const char *secure_path, struct cloud_config **ret) {
        _cleanup_(clouds_freep) struct cloud_config *c = NULL;
        struct yfile cf = { .path = clouds_path }, sf = { .path = secure_path };
        struct view v = { .files = { &sf, &cf } };
        int r;

        r = yfile_load(x, &cf);
        if (r < 0)
                goto finish;
        r = find_cloud(x, &cf, true);
        if (r < 0)
                goto finish;
        if (secure_path) {
                r = yfile_load(x, &sf);
                if (r < 0)
                        goto finish;
                r = find_cloud(x, &sf, false);
                if (r < 0)
                        goto finish;
        }

        c = calloc(1, sizeof(*c));
        if (!c) {
                r = -ENOMEM;
                goto finish;
        }
        r = load_cloud(x, &v, c);
        if (r < 0)
                goto finish;
        c->name = strdup(x->name);
        c->clouds_file = strdup(clouds_path);
        c->secure_file = sf.cloud ? strdup(secure_path) : NULL;
        if (!c->name || !c->clouds_file || (sf.cloud && !c->secure_file)) {
                r = -ENOMEM;
                goto finish;
        }
        *ret = TAKE_PTR(c);
finish:
        yfile_done(&cf);
        yfile_done(&sf);
        return r;
}

static int finish_error(struct ctx *x, int r, char **ret_error) {
        if (r < 0 && ret_error) {
                if (!x->error && r == -ENOMEM)
                        x->error = strdup("out of memory");
                *ret_error = TAKE_PTR(x->error);
        }
        free(x->error);
        return r;
}

int clouds_load_files(const char *clouds_path, const char *secure_path, const char *name,
                      struct cloud_config **ret, char **ret_error) {
        struct ctx x = { .name = name };
        int r;

        if (!name || !*name)
                r = fail(&x, -EINVAL, "no cloud name given");
        else
                r = load(&x, clouds_path, secure_path, ret);
        return finish_error(&x, r, ret_error);
}

static bool exists(const char *p) {
        return access(p, F_OK) == 0;
}

int clouds_load(const char *explicit_path, const char *name, struct cloud_config **ret, char **ret_error) {
        struct ctx x = { .name = name };
        char **clouds = NULL, **secure = NULL;
        _cleanup_free_ char *beside = NULL;
        const char *cpath = NULL, *spath = NULL;
        int r;

        if (!name || !*name) {
                r = fail(&x, -EINVAL, "no cloud name given");
                goto finish;
        }
        if ((r = clouds_search_path("clouds.yaml", &clouds)) < 0 ||
            (r = clouds_search_path("secure.yaml", &secure)) < 0)
                goto finish;

        if (explicit_path)
                cpath = explicit_path;
        else if (getenv("OS_CLIENT_CONFIG_FILE") && *getenv("OS_CLIENT_CONFIG_FILE"))
                cpath = getenv("OS_CLIENT_CONFIG_FILE");
        else
                for (char **p = clouds; *p && !cpath; p++)
                        if (exists(*p))
                                cpath = *p;
        if (!cpath) {
                r = fail(&x, -ENOENT, "no clouds.yaml found (looked in %s, %s%s%s; set OS_CLIENT_CONFIG_FILE "
                         "or clouds_file)", clouds[0], clouds[1], clouds[2] ? ", " : "", clouds[2] ?: "");
                goto finish;
        }

        /* secure.yaml: $OS_CLIENT_SECURE_FILE, beside the clouds file, then the search path
         * (not for an explicit clouds file: a stray ~/.config one must not change it) */
        if (getenv("OS_CLIENT_SECURE_FILE") && *getenv("OS_CLIENT_SECURE_FILE"))
                spath = getenv("OS_CLIENT_SECURE_FILE");
        else {
                const char *slash = strrchr(cpath, '/');
                if (asprintf(&beside, "%.*ssecure.yaml", slash ? (int) (slash - cpath + 1) : 0, cpath) < 0) {
                        r = -ENOMEM;
                        goto finish;
                }
                if (exists(beside))
                        spath = beside;
                else if (!explicit_path)
                        for (char **p = secure; *p && !spath; p++)
                                if (exists(*p))
                                        spath = *p;
        }
        r = load(&x, cpath, spath, ret);
finish:
        strv_free(clouds);
        strv_free(secure);
        return finish_error(&x, r, ret_error);
}
