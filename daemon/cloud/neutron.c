/* neutron.c - Neutron networking API v2.0: network lookup by name. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cloud/neutron.h"
#include "cloud/osjson.h"

struct neutron_network_list *neutron_network_list_free(struct neutron_network_list *l) {
        if (!l)
                return NULL;
        for (size_t i = 0; i < l->n_networks; i++) {
                free(l->networks[i].id);
                free(l->networks[i].name);
                free(l->networks[i].status);
        }
        free(l->networks);
        free(l->next_marker);
        free(l);
        return NULL;
}

int neutron_parse_network_list(const char *body, size_t len, struct neutron_network_list **ret,
                               struct os_error *err) {
        _cleanup_json_ json_t *root = NULL;
        _cleanup_(neutron_network_list_freep) struct neutron_network_list *l = NULL;
        json_t *a, *o, *links;
        size_t i;
        int r;

        r = osjson_load(body, len, "network list", &root, err);
        if (r < 0)
                return r;
        r = osjson_get_array(root, "response", "networks", 0, NEUTRON_NETWORKS_MAX, &a, err);
        if (r < 0)
                return r;
        l = calloc(1, sizeof(*l));
        if (!l)
                return -ENOMEM;
        l->networks = calloc(json_array_size(a) ?: 1, sizeof(*l->networks));
        if (!l->networks)
                return -ENOMEM;
        json_array_foreach(a, i, o) {
                struct neutron_network *n = &l->networks[i];
                char p[32];

                snprintf(p, sizeof(p), "networks[%zu]", i);
                if (!json_is_object(o))
                        return os_error_set(err, -EBADMSG, "%s: expected an object, got %s", p, osjson_type_name(o));
                l->n_networks++;
                if ((r = osjson_get_string(o, p, "id", 0, &n->id, err)) < 0 ||
                    (r = osjson_get_string(o, p, "name", OSJSON_MAYBE, &n->name, err)) < 0 ||
                    (r = osjson_get_string(o, p, "status", OSJSON_MAYBE, &n->status, err)) < 0)
                        return r;
                if (!*n->id)
                        return os_error_set(err, -EBADMSG, "%s.id: empty", p);
        }

        r = osjson_get_array(root, "response", "networks_links", OSJSON_MAYBE, 64, &links, err);
        if (r < 0)
                return r;
        if (r == 0)
                json_array_foreach(links, i, o) {
                        _cleanup_free_ char *rel = NULL, *href = NULL;
                        char p[40];

                        snprintf(p, sizeof(p), "networks_links[%zu]", i);
                        if (!json_is_object(o))
                                return os_error_set(err, -EBADMSG, "%s: expected an object, got %s",
                                                    p, osjson_type_name(o));
                        if ((r = osjson_get_string(o, p, "rel", 0, &rel, err)) < 0 ||
                            (r = osjson_get_string(o, p, "href", 0, &href, err)) < 0)
                                return r;
                        if (strcmp(rel, "next") != 0)
                                continue;
                        r = osjson_url_query_param(href, "marker", &l->next_marker);
                        if (r == -ENOMEM)
                                return r;
                        if (r != 0)
                                return os_error_set(err, -EBADMSG, "%s.href: no usable marker", p);
                        break;
                }
        *ret = TAKE_PTR(l);
        return 0;
}

bool neutron_network_is_literal(const char *s) {
        return s && (neutron_is_uuid(s) || strcmp(s, "none") == 0 || strcmp(s, "auto") == 0);
}

bool neutron_is_uuid(const char *s) {
        static const int groups[] = { 8, 4, 4, 4, 12 };

        if (!s)
                return false;
        for (size_t g = 0; g < ELEMENTSOF(groups); g++) {
                for (int i = 0; i < groups[g]; i++, s++)
                        if (!isxdigit((unsigned char) *s))
                                return false;
                if (g + 1 < ELEMENTSOF(groups) && *s++ != '-')
                        return false;
        }
        return *s == 0;
}
