/* nova.c - Nova compute API: request bodies and response parsers. */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "cloud/nova.h"
#include "cloud/osjson.h"

/* ---- request bodies ---- */

static char *base64_encode(const void *data, size_t len) {
        static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        const unsigned char *in = data;
        char *out, *o;

        if (len > (SIZE_MAX - 1) / 4 * 3 - 3)
                return NULL;
        out = malloc((len + 2) / 3 * 4 + 1);
        if (!out)
                return NULL;
        o = out;
        for (size_t i = 0; i < len; i += 3) {
                unsigned v = (unsigned) in[i] << 16;
                if (i + 1 < len)
                        v |= (unsigned) in[i + 1] << 8;
                if (i + 2 < len)
                        v |= in[i + 2];
                *o++ = tbl[(v >> 18) & 63];
                *o++ = tbl[(v >> 12) & 63];
                *o++ = i + 1 < len ? tbl[(v >> 6) & 63] : '=';
                *o++ = i + 2 < len ? tbl[v & 63] : '=';
        }
        *o = 0;
        return out;
}

static bool str_empty(const char *s) {
        return !s || !*s;
}

/* jansson takes ownership of V even on failure */
static int set_new(json_t *obj, const char *key, json_t *v) {
        if (!v || json_object_set_new(obj, key, v) < 0)
                return -ENOMEM;
        return 0;
}

static int set_string(json_t *obj, const char *key, const char *s, const char *field,
                      struct os_error *err) {
        json_t *v = json_string(s);
        if (!v)
                /* json_string() also refuses invalid UTF-8 */
                return os_error_set(err, -EINVAL, "%s: not valid UTF-8 (or out of memory)", field);
        return set_new(obj, key, v);
}

static int dump(json_t *root, char **ret_body) {
        char *s = json_dumps(root, JSON_COMPACT);
        if (!s)
                return -ENOMEM;
        *ret_body = s;
        return 0;
}

static size_t strv_length(const char *const *v) {
        size_t n = 0;
        if (v)
                while (v[n])
                        n++;
        return n;
}

static int networks_json(const char *const *networks, json_t **ret, struct os_error *err) {
        size_t n = strv_length(networks);
        json_t *a;

        for (size_t i = 0; i < n; i++)
                if (str_empty(networks[i]))
                        return os_error_set(err, -EINVAL, "networks[%zu]: empty", i);
                else if ((strcmp(networks[i], "none") == 0 || strcmp(networks[i], "auto") == 0) && n > 1)
                        return os_error_set(err, -EINVAL,
                                            "networks: \"%s\" must be the only entry", networks[i]);

        if (n == 1 && (strcmp(networks[0], "none") == 0 || strcmp(networks[0], "auto") == 0)) {
                *ret = json_string(networks[0]);
                return *ret ? 0 : -ENOMEM;
        }

        a = json_array();
        if (!a)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                json_t *o = json_pack("{s:s}", "uuid", networks[i]);
                if (!o || json_array_append_new(a, o) < 0) {
                        json_decref(a);
                        return os_error_set(err, -EINVAL, "networks[%zu]: not valid UTF-8 (or out of memory)", i);
                }
        }
        *ret = a;
        return 0;
}

static int check_tag(const char *t, size_t i, struct os_error *err) {
        size_t l = strlen(t);

        if (l == 0 || l > NOVA_TAG_MAX)
                return os_error_set(err, -EINVAL, "tags[%zu]: must be 1..%d characters", i, NOVA_TAG_MAX);
        if (strpbrk(t, "/,"))
                return os_error_set(err, -EINVAL, "tags[%zu]: must not contain '/' or ','", i);
        return 0;
}

int nova_server_create_body(const struct nova_create *c, char **ret_body, struct os_error *err) {
        _cleanup_json_ json_t *root = NULL;
        json_t *server, *v = NULL;
        int r;

        if (str_empty(c->name) || strlen(c->name) > 255)
                return os_error_set(err, -EINVAL, "server name: must be 1..255 characters");
        if (str_empty(c->flavor_ref))
                return os_error_set(err, -EINVAL, "flavorRef: missing");
        if (str_empty(c->image_ref))
                return os_error_set(err, -EINVAL, "imageRef: missing");

        server = json_object();
        root = json_object();
        if (!server || !root || json_object_set_new(root, "server", server) < 0) {
                if (!root)
                        json_decref(server);
                return -ENOMEM;
        }

        if ((r = set_string(server, "name", c->name, "server name", err)) < 0 ||
            (r = set_string(server, "flavorRef", c->flavor_ref, "flavorRef", err)) < 0 ||
            (r = set_string(server, "imageRef", c->image_ref, "imageRef", err)) < 0)
                return r;

        if (strv_length(c->networks) > 0) {
                r = networks_json(c->networks, &v, err);
                if (r < 0)
                        return r;
                if ((r = set_new(server, "networks", v)) < 0)
                        return r;
        }

        if (strv_length(c->security_groups) > 0) {
                json_t *a = json_array();
                if ((r = set_new(server, "security_groups", a)) < 0)
                        return r;
                for (size_t i = 0; c->security_groups[i]; i++) {
                        if (str_empty(c->security_groups[i]))
                                return os_error_set(err, -EINVAL, "security_groups[%zu]: empty", i);
                        json_t *o = json_pack("{s:s}", "name", c->security_groups[i]);
                        if (!o || json_array_append_new(a, o) < 0)
                                return os_error_set(err, -EINVAL,
                                                    "security_groups[%zu]: not valid UTF-8 (or out of memory)", i);
                }
        }

        if (!str_empty(c->key_name) &&
            (r = set_string(server, "key_name", c->key_name, "key_name", err)) < 0)
                return r;

        if (c->n_metadata > 0) {
                json_t *m;
                if (c->n_metadata > NOVA_METADATA_MAX)
                        return os_error_set(err, -EINVAL, "metadata: %zu items, Nova allows %d",
                                            c->n_metadata, NOVA_METADATA_MAX);
                m = json_object();
                if ((r = set_new(server, "metadata", m)) < 0)
                        return r;
                for (size_t i = 0; i < c->n_metadata; i++) {
                        const struct nova_kv *kv = &c->metadata[i];
                        if (str_empty(kv->key) || strlen(kv->key) > NOVA_METADATA_KEY_MAX)
                                return os_error_set(err, -EINVAL, "metadata[%zu]: key must be 1..%d characters",
                                                    i, NOVA_METADATA_KEY_MAX);
                        if (!kv->value || strlen(kv->value) > NOVA_METADATA_VALUE_MAX)
                                return os_error_set(err, -EINVAL, "metadata '%s': value must be 0..%d characters",
                                                    kv->key, NOVA_METADATA_VALUE_MAX);
                        if (json_object_get(m, kv->key))
                                return os_error_set(err, -EINVAL, "metadata '%s': duplicate key", kv->key);
                        v = json_string(kv->value);
                        if (!v || json_object_set_new(m, kv->key, v) < 0)
                                return os_error_set(err, -EINVAL,
                                                    "metadata[%zu]: not valid UTF-8 (or out of memory)", i);
                }
        }

        if (c->user_data) {
                _cleanup_free_ char *b64 = NULL;
                if (c->user_data_len > NOVA_USER_DATA_MAX / 4 * 3)
                        return os_error_set(err, -EINVAL,
                                            "user_data: %zu bytes, more than Nova's %d after base64",
                                            c->user_data_len, NOVA_USER_DATA_MAX);
                b64 = base64_encode(c->user_data, c->user_data_len);
                if (!b64)
                        return -ENOMEM;
                if ((r = set_new(server, "user_data", json_string(b64))) < 0)
                        return r;
        }

        if (c->config_drive && (r = set_new(server, "config_drive", json_true())) < 0)
                return r;

        if (!str_empty(c->availability_zone) &&
            (r = set_string(server, "availability_zone", c->availability_zone, "availability_zone", err)) < 0)
                return r;

        if (strv_length(c->tags) > 0) {
                json_t *a;
                if (strv_length(c->tags) > NOVA_TAGS_MAX)
                        return os_error_set(err, -EINVAL, "tags: %zu, Nova allows %d",
                                            strv_length(c->tags), NOVA_TAGS_MAX);
                a = json_array();
                if ((r = set_new(server, "tags", a)) < 0)
                        return r;
                for (size_t i = 0; c->tags[i]; i++) {
                        if ((r = check_tag(c->tags[i], i, err)) < 0)
                                return r;
                        v = json_string(c->tags[i]);
                        if (!v || json_array_append_new(a, v) < 0)
                                return os_error_set(err, -EINVAL, "tags[%zu]: not valid UTF-8 (or out of memory)", i);
                }
        }

        return dump(root, ret_body);
}

int nova_server_reboot_body(bool hard, char **ret_body) {
        _cleanup_json_ json_t *root = json_pack("{s:{s:s}}", "reboot", "type", hard ? "HARD" : "SOFT");
        if (!root)
                return -ENOMEM;
        return dump(root, ret_body);
}

int nova_server_console_body(unsigned lines, char **ret_body) {
        _cleanup_json_ json_t *root = lines > 0 ? json_pack("{s:{s:I}}", "os-getConsoleOutput", "length", (json_int_t) lines)
                                                : json_pack("{s:{}}", "os-getConsoleOutput");
        if (!root)
                return -ENOMEM;
        return dump(root, ret_body);
}

int nova_parse_console(const char *body, size_t len, char **ret_output, struct os_error *err) {
        _cleanup_json_ json_t *root = NULL;
        _cleanup_free_ char *output = NULL;
        int r;

        r = osjson_load(body, len, "console output", &root, err);
        if (r < 0)
                return r;
        r = osjson_get_string(root, "response", "output", 0, &output, err);
        if (r < 0)
                return r;
        *ret_output = TAKE_PTR(output);
        return 0;
}

int nova_server_rebuild_body(const char *image_ref, char **ret_body, struct os_error *err) {
        _cleanup_json_ json_t *root = NULL;

        if (str_empty(image_ref))
                return os_error_set(err, -EINVAL, "imageRef: missing");
        root = json_pack("{s:{s:s}}", "rebuild", "imageRef", image_ref);
        if (!root)
                return os_error_set(err, -EINVAL, "imageRef: not valid UTF-8 (or out of memory)");
        return dump(root, ret_body);
}

/* ---- parsers ---- */

void nova_kv_free_array(struct nova_kv *kv, size_t n) {
        for (size_t i = 0; i < n; i++) {
                free(kv[i].key);
                free(kv[i].value);
        }
        free(kv);
}

struct nova_server *nova_server_free(struct nova_server *s) {
        if (!s)
                return NULL;
        free(s->id);
        free(s->name);
        free(s->status);
        free(s->task_state);
        free(s->vm_state);
        free(s->image_id);
        free(s->flavor_id);
        free(s->flavor_name);
        nova_kv_free_array(s->metadata, s->n_metadata);
        osjson_strv_free(s->tags);
        for (size_t i = 0; i < s->n_addresses; i++) {
                free(s->addresses[i].network);
                free(s->addresses[i].addr);
                free(s->addresses[i].type);
                free(s->addresses[i].mac);
        }
        free(s->addresses);
        if (s->fault) {
                free(s->fault->message);
                free(s->fault->details);
                free(s->fault);
        }
        free(s);
        return NULL;
}

/* strdup that keeps NULL; false when out of memory. */
static bool dup_str(char **dst, const char *src) {
        *dst = src ? strdup(src) : NULL;
        return !src || *dst;
}

int nova_server_dup(const struct nova_server *s, struct nova_server **ret) {
        _cleanup_(nova_server_freep) struct nova_server *d = NULL;
        size_t n_tags = 0;

        if (!s || !ret)
                return -EINVAL;
        d = calloc(1, sizeof(*d));
        if (!d)
                return -ENOMEM;
        d->power_state = s->power_state;
        d->created = s->created;
        d->updated = s->updated;
        d->locked = s->locked;
        if (!dup_str(&d->id, s->id) || !dup_str(&d->name, s->name) || !dup_str(&d->status, s->status) ||
            !dup_str(&d->task_state, s->task_state) || !dup_str(&d->vm_state, s->vm_state) ||
            !dup_str(&d->image_id, s->image_id) || !dup_str(&d->flavor_id, s->flavor_id) ||
            !dup_str(&d->flavor_name, s->flavor_name))
                return -ENOMEM;
        if (s->n_metadata > 0) {
                d->metadata = calloc(s->n_metadata, sizeof(*d->metadata));
                if (!d->metadata)
                        return -ENOMEM;
                for (; d->n_metadata < s->n_metadata; d->n_metadata++)
                        if (!dup_str(&d->metadata[d->n_metadata].key, s->metadata[d->n_metadata].key) ||
                            !dup_str(&d->metadata[d->n_metadata].value, s->metadata[d->n_metadata].value)) {
                                d->n_metadata++;
                                return -ENOMEM;
                        }
        }
        while (s->tags && s->tags[n_tags])
                n_tags++;
        d->tags = calloc(n_tags + 1, sizeof(*d->tags));
        if (!d->tags)
                return -ENOMEM;
        for (size_t i = 0; i < n_tags; i++)
                if (!(d->tags[i] = strdup(s->tags[i])))
                        return -ENOMEM;
        if (s->n_addresses > 0) {
                d->addresses = calloc(s->n_addresses, sizeof(*d->addresses));
                if (!d->addresses)
                        return -ENOMEM;
                for (; d->n_addresses < s->n_addresses; d->n_addresses++) {
                        const struct nova_address *a = &s->addresses[d->n_addresses];
                        struct nova_address *b = &d->addresses[d->n_addresses];

                        b->version = a->version;
                        if (!dup_str(&b->network, a->network) || !dup_str(&b->addr, a->addr) ||
                            !dup_str(&b->type, a->type) || !dup_str(&b->mac, a->mac)) {
                                d->n_addresses++;
                                return -ENOMEM;
                        }
                        if (s->ipv4 == a->addr)
                                d->ipv4 = b->addr;
                }
        }
        if (s->fault) {
                d->fault = calloc(1, sizeof(*d->fault));
                if (!d->fault)
                        return -ENOMEM;
                d->fault->code = s->fault->code;
                if (!dup_str(&d->fault->message, s->fault->message) ||
                    !dup_str(&d->fault->details, s->fault->details))
                        return -ENOMEM;
        }
        *ret = TAKE_PTR(d);
        return 0;
}

const char *nova_server_metadata_get(const struct nova_server *s, const char *key) {
        for (size_t i = 0; i < s->n_metadata; i++)
                if (strcmp(s->metadata[i].key, key) == 0)
                        return s->metadata[i].value;
        return NULL;
}

/* A flat string->string object (metadata, extra_specs). */
static int parse_kv(json_t *obj, const char *path, const char *key, size_t max,
                    struct nova_kv **ret, size_t *ret_n, struct os_error *err) {
        json_t *o, *v;
        const char *k;
        struct nova_kv *kv;
        size_t n = 0;
        int r;

        r = osjson_get_object(obj, path, key, OSJSON_MAYBE, &o, err);
        if (r != 0)
                return r < 0 ? r : 0;
        if (json_object_size(o) > max)
                return os_error_set(err, -EBADMSG, "%s.%s: %zu entries, more than the limit of %zu",
                                    path, key, json_object_size(o), max);
        if (json_object_size(o) == 0)
                return 0;
        kv = calloc(json_object_size(o), sizeof(*kv));
        if (!kv)
                return -ENOMEM;
        json_object_foreach(o, k, v) {
                if (!json_is_string(v)) {
                        nova_kv_free_array(kv, n);
                        /* the key is the cloud's, bounded by Nova to 255 */
                        return os_error_set(err, -EBADMSG, "%s.%s.%.64s: expected a string, got %s",
                                            path, key, k, osjson_type_name(v));
                }
                kv[n].key = strdup(k);
                kv[n].value = strdup(json_string_value(v));
                n++;
                if (!kv[n - 1].key || !kv[n - 1].value) {
                        nova_kv_free_array(kv, n);
                        return -ENOMEM;
                }
        }
        *ret = kv;
        *ret_n = n;
        return 0;
}

static int parse_tags(json_t *obj, const char *path, char ***ret, struct os_error *err) {
        json_t *a, *v;
        size_t i;
        char **tags;
        int r;

        r = osjson_get_array(obj, path, "tags", OSJSON_MAYBE, 1024, &a, err);
        if (r < 0)
                return r;
        tags = calloc((r == 0 ? json_array_size(a) : 0) + 1, sizeof(char *));
        if (!tags)
                return -ENOMEM;
        if (r == 0)
                json_array_foreach(a, i, v) {
                        if (!json_is_string(v)) {
                                osjson_strv_free(tags);
                                return os_error_set(err, -EBADMSG, "%s.tags[%zu]: expected a string, got %s",
                                                    path, i, osjson_type_name(v));
                        }
                        tags[i] = strdup(json_string_value(v));
                        if (!tags[i]) {
                                osjson_strv_free(tags);
                                return -ENOMEM;
                        }
                }
        *ret = tags;
        return 0;
}

/* "addresses": {"net": [{"version":4,"addr":"10.0.0.5","OS-EXT-IPS:type":"fixed",
 * "OS-EXT-IPS-MAC:mac_addr":"fa:16:..."}], ...} */
static int parse_addresses(json_t *obj, const char *path, struct nova_server *s,
                           struct os_error *err) {
        json_t *o, *list, *a;
        const char *net;
        size_t total = 0, i;
        char p[256];
        int r;

        r = osjson_get_object(obj, path, "addresses", OSJSON_MAYBE, &o, err);
        if (r != 0)
                return r < 0 ? r : 0;

        json_object_foreach(o, net, list) {
                if (!json_is_array(list))
                        return os_error_set(err, -EBADMSG, "%s.addresses.%.64s: expected an array, got %s",
                                            path, net, osjson_type_name(list));
                total += json_array_size(list);
                if (total > NOVA_SERVER_ADDRESSES_MAX)
                        return os_error_set(err, -EBADMSG, "%s.addresses: more than %d addresses",
                                            path, NOVA_SERVER_ADDRESSES_MAX);
        }
        if (total == 0)
                return 0;
        s->addresses = calloc(total, sizeof(*s->addresses));
        if (!s->addresses)
                return -ENOMEM;

        json_object_foreach(o, net, list)
                json_array_foreach(list, i, a) {
                        struct nova_address *ad = &s->addresses[s->n_addresses];
                        long long version = 0;

                        snprintf(p, sizeof(p), "%s.addresses.%.64s[%zu]", path, net, i);
                        if (!json_is_object(a))
                                return os_error_set(err, -EBADMSG, "%s: expected an object, got %s",
                                                    p, osjson_type_name(a));
                        s->n_addresses++;
                        ad->network = strdup(net);
                        if (!ad->network)
                                return -ENOMEM;
                        if ((r = osjson_get_string(a, p, "addr", 0, &ad->addr, err)) < 0 ||
                            (r = osjson_get_int(a, p, "version", 0, 4, 6, &version, err)) < 0 ||
                            (r = osjson_get_string(a, p, "OS-EXT-IPS:type", OSJSON_MAYBE, &ad->type, err)) < 0 ||
                            (r = osjson_get_string(a, p, "OS-EXT-IPS-MAC:mac_addr", OSJSON_MAYBE, &ad->mac, err)) < 0)
                                return r;
                        if (version != 4 && version != 6)
                                return os_error_set(err, -EBADMSG, "%s.version: must be 4 or 6", p);
                        ad->version = (int) version;
                        if (!s->ipv4 && version == 4 && (!ad->type || strcmp(ad->type, "fixed") == 0))
                                s->ipv4 = ad->addr;
                }
        return 0;
}

/* "image": {"id": ..., "links": [...]} or "" for a volume-booted server. */
static int parse_image(json_t *obj, const char *path, struct nova_server *s, struct os_error *err) {
        json_t *v = json_object_get(obj, "image");

        if (!v || json_is_null(v))
                return 0;
        if (json_is_string(v)) {
                if (json_string_length(v) != 0)
                        return os_error_set(err, -EBADMSG, "%s.image: expected an object or \"\"", path);
                s->image_id = strdup("");
                return s->image_id ? 0 : -ENOMEM;
        }
        if (!json_is_object(v))
                return os_error_set(err, -EBADMSG, "%s.image: expected an object, got %s",
                                    path, osjson_type_name(v));
        char p[128];
        snprintf(p, sizeof(p), "%s.image", path);
        return osjson_get_string(v, p, "id", 0, &s->image_id, err);
}

/* "flavor": {"id", "links"} before 2.47, {"original_name", "vcpus", ...} from 2.47. */
static int parse_server_flavor(json_t *obj, const char *path, struct nova_server *s,
                               struct os_error *err) {
        json_t *f;
        char p[128];
        int r;

        r = osjson_get_object(obj, path, "flavor", OSJSON_MAYBE, &f, err);
        if (r != 0)
                return r < 0 ? r : 0;
        snprintf(p, sizeof(p), "%s.flavor", path);
        if ((r = osjson_get_string(f, p, "id", OSJSON_MAYBE, &s->flavor_id, err)) < 0 ||
            (r = osjson_get_string(f, p, "original_name", OSJSON_MAYBE, &s->flavor_name, err)) < 0)
                return r;
        if (!s->flavor_id && !s->flavor_name)
                return os_error_set(err, -EBADMSG, "%s: has neither id nor original_name", p);
        return 0;
}

static int parse_fault(json_t *obj, const char *path, struct nova_server *s, struct os_error *err) {
        json_t *f;
        long long code = 0;
        char p[128];
        int r;

        r = osjson_get_object(obj, path, "fault", OSJSON_MAYBE, &f, err);
        if (r != 0)
                return r < 0 ? r : 0;
        s->fault = calloc(1, sizeof(*s->fault));
        if (!s->fault)
                return -ENOMEM;
        snprintf(p, sizeof(p), "%s.fault", path);
        if ((r = osjson_get_int(f, p, "code", OSJSON_MAYBE, 0, 999, &code, err)) < 0 ||
            (r = osjson_get_string(f, p, "message", OSJSON_MAYBE, &s->fault->message, err)) < 0 ||
            (r = osjson_get_string(f, p, "details", OSJSON_MAYBE, &s->fault->details, err)) < 0)
                return r;
        s->fault->code = (int) code;
        return 0;
}

/* One server object. DETAIL: status is required (show, detail list). */
static int parse_server_object(json_t *o, const char *path, bool detail,
                               struct nova_server **ret, struct os_error *err) {
        _cleanup_(nova_server_freep) struct nova_server *s = NULL;
        long long power = -1;
        int r;

        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->power_state = -1;

        if ((r = osjson_get_string(o, path, "id", 0, &s->id, err)) < 0)
                return r;
        if (!*s->id)
                return os_error_set(err, -EBADMSG, "%s.id: empty", path);
        if ((r = osjson_get_string(o, path, "name", OSJSON_MAYBE, &s->name, err)) < 0 ||
            (r = osjson_get_string(o, path, "status", detail ? 0 : OSJSON_MAYBE, &s->status, err)) < 0 ||
            (r = osjson_get_string(o, path, "OS-EXT-STS:task_state", OSJSON_MAYBE, &s->task_state, err)) < 0 ||
            (r = osjson_get_string(o, path, "OS-EXT-STS:vm_state", OSJSON_MAYBE, &s->vm_state, err)) < 0 ||
            (r = osjson_get_int(o, path, "OS-EXT-STS:power_state", OSJSON_MAYBE, 0, 255, &power, err)) < 0 ||
            (r = parse_image(o, path, s, err)) < 0 ||
            (r = parse_server_flavor(o, path, s, err)) < 0 ||
            (r = parse_kv(o, path, "metadata", 1024, &s->metadata, &s->n_metadata, err)) < 0 ||
            (r = parse_tags(o, path, &s->tags, err)) < 0 ||
            (r = parse_addresses(o, path, s, err)) < 0 ||
            (r = parse_fault(o, path, s, err)) < 0 ||
            (r = osjson_get_time(o, path, "created", OSJSON_MAYBE, &s->created, err)) < 0 ||
            (r = osjson_get_time(o, path, "updated", OSJSON_MAYBE, &s->updated, err)) < 0 ||
            (r = osjson_get_bool(o, path, "locked", OSJSON_MAYBE, &s->locked, err)) < 0)
                return r;
        s->power_state = (int) power;
        *ret = TAKE_PTR(s);
        return 0;
}

int nova_parse_server(const char *body, size_t len, struct nova_server **ret, struct os_error *err) {
        _cleanup_json_ json_t *root = NULL;
        json_t *o;
        int r;

        r = osjson_load(body, len, "server", &root, err);
        if (r < 0)
                return r;
        r = osjson_get_object(root, "response", "server", 0, &o, err);
        if (r < 0)
                return r;
        return parse_server_object(o, "server", true, ret, err);
}

int nova_parse_server_created(const char *body, size_t len, char **ret_id, struct os_error *err) {
        _cleanup_json_ json_t *root = NULL;
        _cleanup_free_ char *id = NULL;
        json_t *o;
        int r;

        r = osjson_load(body, len, "server create", &root, err);
        if (r < 0)
                return r;
        if ((r = osjson_get_object(root, "response", "server", 0, &o, err)) < 0 ||
            (r = osjson_get_string(o, "server", "id", 0, &id, err)) < 0)
                return r;
        if (!*id)
                return os_error_set(err, -EBADMSG, "server.id: empty");
        *ret_id = TAKE_PTR(id);
        return 0;
}

struct nova_server_page *nova_server_page_free(struct nova_server_page *p) {
        if (!p)
                return NULL;
        for (size_t i = 0; i < p->n_servers; i++)
                nova_server_free(p->servers[i]);
        free(p->servers);
        free(p->next_marker);
        free(p);
        return NULL;
}

/* "xxx_links": [{"rel": "next", "href": "...?limit=1000&marker=<id>"}] -> marker */
static int parse_next_marker(json_t *root, const char *key, char **ret, struct os_error *err) {
        json_t *links, *l;
        size_t i;
        int r;

        r = osjson_get_array(root, "response", key, OSJSON_MAYBE, 64, &links, err);
        if (r != 0)
                return r < 0 ? r : 0;
        json_array_foreach(links, i, l) {
                char p[64];
                _cleanup_free_ char *rel = NULL, *href = NULL;

                snprintf(p, sizeof(p), "%.32s[%zu]", key, i);
                if (!json_is_object(l))
                        return os_error_set(err, -EBADMSG, "%s: expected an object, got %s",
                                            p, osjson_type_name(l));
                if ((r = osjson_get_string(l, p, "rel", 0, &rel, err)) < 0 ||
                    (r = osjson_get_string(l, p, "href", 0, &href, err)) < 0)
                        return r;
                if (strcmp(rel, "next") != 0)
                        continue;
                r = osjson_url_query_param(href, "marker", ret);
                if (r < 0 && r != -ENOMEM)
                        return os_error_set(err, -EBADMSG, "%s.href: bad marker", p);
                if (r > 0)
                        return os_error_set(err, -EBADMSG, "%s.href: next link without a marker", p);
                return r;
        }
        return 0;
}

int nova_parse_server_page(const char *body, size_t len, struct nova_server_page **ret,
                           struct os_error *err) {
        _cleanup_json_ json_t *root = NULL;
        _cleanup_(nova_server_page_freep) struct nova_server_page *p = NULL;
        json_t *a, *o;
        size_t i;
        int r;

        r = osjson_load(body, len, "server list", &root, err);
        if (r < 0)
                return r;
        r = osjson_get_array(root, "response", "servers", 0, NOVA_PAGE_SERVERS_MAX, &a, err);
        if (r < 0)
                return r;
        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        p->servers = calloc(json_array_size(a) ?: 1, sizeof(*p->servers));
        if (!p->servers)
                return -ENOMEM;
        json_array_foreach(a, i, o) {
                char path[32];
                snprintf(path, sizeof(path), "servers[%zu]", i);
                if (!json_is_object(o))
                        return os_error_set(err, -EBADMSG, "%s: expected an object, got %s",
                                            path, osjson_type_name(o));
                r = parse_server_object(o, path, false, &p->servers[i], err);
                if (r < 0)
                        return r;
                p->n_servers++;
        }
        r = parse_next_marker(root, "servers_links", &p->next_marker, err);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(p);
        return 0;
}

struct nova_flavor_list *nova_flavor_list_free(struct nova_flavor_list *l) {
        if (!l)
                return NULL;
        for (size_t i = 0; i < l->n_flavors; i++) {
                free(l->flavors[i].id);
                free(l->flavors[i].name);
                nova_kv_free_array(l->flavors[i].extra_specs, l->flavors[i].n_extra_specs);
        }
        free(l->flavors);
        free(l->next_marker);
        free(l);
        return NULL;
}

static int parse_flavor(json_t *o, const char *path, struct nova_flavor *f, struct os_error *err) {
        long long vcpus = 0, ram = 0, disk = 0;
        int r;

        if (!json_is_object(o))
                return os_error_set(err, -EBADMSG, "%s: expected an object, got %s", path, osjson_type_name(o));
        if ((r = osjson_get_string(o, path, "id", 0, &f->id, err)) < 0 ||
            (r = osjson_get_string(o, path, "name", 0, &f->name, err)) < 0 ||
            (r = osjson_get_int(o, path, "vcpus", 0, 0, UINT_MAX, &vcpus, err)) < 0 ||
            (r = osjson_get_int(o, path, "ram", 0, 0, LONG_MAX, &ram, err)) < 0 ||
            (r = osjson_get_int(o, path, "disk", 0, 0, LONG_MAX, &disk, err)) < 0 ||
            (r = parse_kv(o, path, "extra_specs", 1024, &f->extra_specs, &f->n_extra_specs, err)) < 0)
                return r;
        f->vcpus = (unsigned) vcpus;
        f->ram_mb = (unsigned long) ram;
        f->disk_gb = (unsigned long) disk;
        return 0;
}

int nova_parse_flavors(const char *body, size_t len, struct nova_flavor_list **ret,
                       struct os_error *err) {
        _cleanup_json_ json_t *root = NULL;
        _cleanup_(nova_flavor_list_freep) struct nova_flavor_list *l = NULL;
        json_t *a = NULL, *o;
        size_t i;
        int r;

        r = osjson_load(body, len, "flavors", &root, err);
        if (r < 0)
                return r;
        l = calloc(1, sizeof(*l));
        if (!l)
                return -ENOMEM;

        if (json_object_get(root, "flavor")) {
                if ((r = osjson_get_object(root, "response", "flavor", 0, &o, err)) < 0)
                        return r;
                l->flavors = calloc(1, sizeof(*l->flavors));
                if (!l->flavors)
                        return -ENOMEM;
                l->n_flavors = 1;
                r = parse_flavor(o, "flavor", &l->flavors[0], err);
                if (r < 0)
                        return r;
                *ret = TAKE_PTR(l);
                return 0;
        }

        r = osjson_get_array(root, "response", "flavors", 0, NOVA_FLAVORS_MAX, &a, err);
        if (r < 0)
                return r;
        l->flavors = calloc(json_array_size(a) ?: 1, sizeof(*l->flavors));
        if (!l->flavors)
                return -ENOMEM;
        json_array_foreach(a, i, o) {
                char path[32];
                snprintf(path, sizeof(path), "flavors[%zu]", i);
                l->n_flavors++;         /* so a half-parsed entry is freed */
                r = parse_flavor(o, path, &l->flavors[i], err);
                if (r < 0)
                        return r;
        }
        r = parse_next_marker(root, "flavors_links", &l->next_marker, err);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(l);
        return 0;
}

static int parse_version_object(json_t *v, const char *path, unsigned *ret, struct os_error *err) {
        _cleanup_free_ char *version = NULL;
        unsigned major, minor;
        int n = 0, r;

        r = osjson_get_string(v, path, "version", OSJSON_MAYBE, &version, err);
        if (r < 0)
                return r;
        if (!version || !*version) {
                *ret = 0;
                return 0;
        }
        if (sscanf(version, "%u.%u%n", &major, &minor, &n) != 2 || version[n] != 0 || major != 2)
                return os_error_set(err, -EBADMSG, "%s.version: not a 2.x microversion", path);
        *ret = minor;
        return 0;
}

int nova_parse_version(const char *body, size_t len, unsigned *ret_max_minor, struct os_error *err) {
        _cleanup_json_ json_t *root = NULL;
        json_t *v, *a;
        size_t i;
        int r;

        r = osjson_load(body, len, "compute version", &root, err);
        if (r < 0)
                return r;
        if (json_object_get(root, "version")) {
                if ((r = osjson_get_object(root, "response", "version", 0, &v, err)) < 0)
                        return r;
                return parse_version_object(v, "version", ret_max_minor, err);
        }
        r = osjson_get_array(root, "response", "versions", 0, 64, &a, err);
        if (r < 0)
                return r;
        json_array_foreach(a, i, v) {
                char p[32];
                _cleanup_free_ char *id = NULL;
                snprintf(p, sizeof(p), "versions[%zu]", i);
                if (!json_is_object(v))
                        return os_error_set(err, -EBADMSG, "%s: expected an object, got %s", p, osjson_type_name(v));
                if ((r = osjson_get_string(v, p, "id", 0, &id, err)) < 0)
                        return r;
                if (strcmp(id, "v2.1") == 0)
                        return parse_version_object(v, p, ret_max_minor, err);
        }
        return os_error_set(err, -EBADMSG, "versions: no v2.1 entry");
}

int nova_parse_metadata(const char *body, size_t len, struct nova_kv **ret, size_t *ret_n,
                        struct os_error *err) {
        _cleanup_json_ json_t *root = NULL;
        const char *key = "metadata";
        struct nova_kv *kv = NULL;
        size_t n = 0;
        int r;

        r = osjson_load(body, len, "metadata", &root, err);
        if (r < 0)
                return r;
        if (!json_object_get(root, "metadata") && json_object_get(root, "meta"))
                key = "meta";
        if (!json_object_get(root, key))
                return os_error_set(err, -EBADMSG, "response.metadata: missing");
        if (json_is_null(json_object_get(root, key)))
                return os_error_set(err, -EBADMSG, "response.%s: is null", key);
        r = parse_kv(root, "response", key, 1024, &kv, &n, err);
        if (r < 0)
                return r;
        *ret = kv;
        *ret_n = n;
        return 0;
}

int nova_parse_fault(const char *body, size_t len, struct os_error *err) {
        return os_error_from_body(err, body, len);
}
