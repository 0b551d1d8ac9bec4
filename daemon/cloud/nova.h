/* nova.h - Nova compute API: request bodies and response parsers. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "util/macro.h"
#include "cloud/oserror.h"

/* The compute microversion every request sends (doc/openstack.md says why):
 * 2.52 is the lowest that takes "tags" in a server create; it includes 2.37
 * (networks "none"/"auto"), 2.26 (tags in server bodies, ?tags= filter) and
 * 2.47 (the server's flavor is embedded: original_name, no id). */
#define NOVA_MICROVERSION "2.52"
#define NOVA_MICROVERSION_HEADER "OpenStack-API-Version: compute " NOVA_MICROVERSION

/* Nova's own limits, checked before sending. */
#define NOVA_METADATA_MAX 128          /* items (default quota) */
#define NOVA_METADATA_KEY_MAX 255
#define NOVA_METADATA_VALUE_MAX 255
#define NOVA_TAGS_MAX 50
#define NOVA_TAG_MAX 60
#define NOVA_USER_DATA_MAX 65535       /* bytes after base64 */

/* Limits on what a response may hold (beyond them: -EBADMSG). */
#define NOVA_PAGE_SERVERS_MAX 10000
#define NOVA_SERVER_ADDRESSES_MAX 1024
#define NOVA_FLAVORS_MAX 10000

struct nova_kv {
        char *key;
        char *value;
};

/* What a server create needs. Strings are borrowed. */
struct nova_create {
        const char *name;
        const char *flavor_ref;        /* flavor id */
        const char *image_ref;         /* image id */
        /* NULL-terminated network uuids, or exactly one of "none", "auto";
         * NULL or empty: the key is left out (Nova then requires it if the
         * project has more than one network). */
        const char *const *networks;
        const char *const *security_groups;    /* NULL-terminated names, optional */
        const char *key_name;                   /* optional */
        const struct nova_kv *metadata;         /* optional */
        size_t n_metadata;
        const void *user_data;                  /* raw bytes, base64-encoded here; optional */
        size_t user_data_len;
        bool config_drive;
        const char *availability_zone;          /* optional */
        const char *const *tags;                /* NULL-terminated, optional */
};

/* POST /servers body. -EINVAL with a message naming the field when a value
 * breaks Nova's limits (lengths, counts, tag characters, "none" mixed with uuids). */
int nova_server_create_body(const struct nova_create *c, char **ret_body, struct os_error *err);

/* POST /servers/{id}/action bodies. */
int nova_server_reboot_body(bool hard, char **ret_body);
int nova_server_rebuild_body(const char *image_ref, char **ret_body, struct os_error *err);
/* os-getConsoleOutput: the last LINES lines, 0 for all. */
int nova_server_console_body(unsigned lines, char **ret_body);

/* 200 of os-getConsoleOutput: {"output": "..."} -> the text (may be ""). */
int nova_parse_console(const char *body, size_t len, char **ret_output, struct os_error *err);

struct nova_address {
        char *network;                 /* the key in "addresses" */
        char *addr;
        int version;                   /* 4 or 6 */
        char *type;                    /* "fixed", "floating", or NULL if absent */
        char *mac;                     /* or NULL */
};

struct nova_fault {
        int code;                      /* 0 if absent */
        char *message;
        char *details;                 /* may be NULL; can be a long traceback */
};

struct nova_server {
        char *id;
        char *name;
        char *status;                  /* "BUILD", "ACTIVE", "ERROR", ...; NULL in a non-detail list */
        char *task_state;              /* OS-EXT-STS:task_state, NULL when none */
        char *vm_state;                /* OS-EXT-STS:vm_state, or NULL */
        int power_state;               /* OS-EXT-STS:power_state, -1 if absent */
        char *image_id;                /* "" for a volume-booted server, NULL if absent */
        char *flavor_id;               /* < 2.47, else NULL */
        char *flavor_name;             /* >= 2.47 (flavor.original_name), else NULL */
        struct nova_kv *metadata;
        size_t n_metadata;
        char **tags;                   /* NULL-terminated, never NULL */
        struct nova_address *addresses;
        size_t n_addresses;
        const char *ipv4;              /* first fixed IPv4 (points into addresses), or NULL */
        struct nova_fault *fault;      /* only in ERROR, else NULL */
        time_t created;                /* 0 if absent */
        time_t updated;
        bool locked;
};

struct nova_server *nova_server_free(struct nova_server *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct nova_server *, nova_server_free);

/* A deep copy (ipv4 points into the copy's addresses). */
int nova_server_dup(const struct nova_server *s, struct nova_server **ret);

/* Value of metadata KEY, or NULL. */
const char *nova_server_metadata_get(const struct nova_server *s, const char *key);

/* {"server":{...}} of GET /servers/{id} and of a rebuild's 202. id and status
 * are required; other fields are optional but must have the right type.
 * -EBADMSG with a message naming the field ("server.addresses.net0[1].addr:
 * expected a string") on anything malformed. */
int nova_parse_server(const char *body, size_t len, struct nova_server **ret, struct os_error *err);

/* The 202 body of POST /servers: the new server's id (adminPass is ignored). */
int nova_parse_server_created(const char *body, size_t len, char **ret_id, struct os_error *err);

/* One page of GET /servers/detail (or /servers: then status etc. are NULL). */
struct nova_server_page {
        struct nova_server **servers;
        size_t n_servers;
        char *next_marker;             /* from servers_links rel=next; NULL on the last page */
};

struct nova_server_page *nova_server_page_free(struct nova_server_page *p);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct nova_server_page *, nova_server_page_free);

int nova_parse_server_page(const char *body, size_t len, struct nova_server_page **ret,
                           struct os_error *err);

struct nova_flavor {
        char *id;
        char *name;
        unsigned vcpus;
        unsigned long ram_mb;
        unsigned long disk_gb;
        struct nova_kv *extra_specs;   /* only with microversion >= 2.61 */
        size_t n_extra_specs;
};

struct nova_flavor_list {
        struct nova_flavor *flavors;
        size_t n_flavors;
        char *next_marker;
};

struct nova_flavor_list *nova_flavor_list_free(struct nova_flavor_list *l);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct nova_flavor_list *, nova_flavor_list_free);

/* GET /flavors/detail ({"flavors":[...]}) or GET /flavors/{id} ({"flavor":{...}}: one entry). */
int nova_parse_flavors(const char *body, size_t len, struct nova_flavor_list **ret,
                       struct os_error *err);

/* GET/PUT /servers/{id}/metadata ({"metadata":{...}}) or a metadata item
 * (PUT /servers/{id}/metadata/{key}: {"meta":{k:v}}). *ret is NULL when empty. */
int nova_parse_metadata(const char *body, size_t len, struct nova_kv **ret, size_t *ret_n,
                        struct os_error *err);
void nova_kv_free_array(struct nova_kv *kv, size_t n);

/* GET <compute endpoint>/ ({"version":{...}}) or GET / ({"versions":[...]},
 * the "v2.1" entry): the highest microversion the cloud supports, as its minor
 * number (2.93 -> 93); 0 when it has none. Check >= NOVA_MICROVERSION_MINOR. */
#define NOVA_MICROVERSION_MINOR 52
int nova_parse_version(const char *body, size_t len, unsigned *ret_max_minor, struct os_error *err);

/* Any Nova error response (see os_error_from_body; kept for symmetry). */
int nova_parse_fault(const char *body, size_t len, struct os_error *err);
