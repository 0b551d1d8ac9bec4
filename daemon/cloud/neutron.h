/* neutron.h - Neutron networking API v2.0: network lookup by name. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "util/macro.h"
#include "cloud/oserror.h"

#define NEUTRON_NETWORKS_MAX 10000

struct neutron_network {
        char *id;
        char *name;            /* may be NULL */
        char *status;          /* "ACTIVE", ...; may be NULL */
};

struct neutron_network_list {
        struct neutron_network *networks;
        size_t n_networks;
        char *next_marker;     /* from networks_links rel=next, or NULL */
};

struct neutron_network_list *neutron_network_list_free(struct neutron_network_list *l);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct neutron_network_list *, neutron_network_list_free);

/* GET <network endpoint>/networks?name=X ({"networks":[...]}). */
int neutron_parse_network_list(const char *body, size_t len, struct neutron_network_list **ret,
                               struct os_error *err);

/* True if S is a canonical UUID (8-4-4-4-12 hex): what Nova's "networks"
 * takes as is; anything else in elasticd.yaml is a name to look up first. */
bool neutron_is_uuid(const char *s);

/* A networks entry Nova takes as it is: a uuid, "none" or "auto" (no
 * Neutron lookup needed). */
bool neutron_network_is_literal(const char *s);
