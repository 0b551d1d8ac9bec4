/* cloud.h - the asynchronous OpenStack client: a Keystone token, Nova servers, Glance images and Neutron networks over http.h. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "cloud/clouds.h"
#include "cloud/http.h"
#include "util/macro.h"
#include "cloud/nova.h"
#include "cloud/oserror.h"

/* Instance metadata keys elasticd puts on every server it creates. */
#define CLOUD_META_CLUSTER "elasticd_cluster"
#define CLOUD_META_NODE "elasticd_node"
#define CLOUD_META_OP "elasticd_op"

struct cloud;

/* elasticd.yaml's endpoint overrides: each one set wins over clouds.yaml's
 * <service>_endpoint_override and the catalog. */
struct cloud_endpoints {
        const char *compute;
        const char *image;
        const char *identity;
};

/* A zeroed field means the default in brackets. */
struct cloud_options {
        const char *cluster;            /* required: the cluster's name (tag and metadata) */
        struct cloud_endpoints endpoints; /* [clouds.yaml's and the catalog's] */
        struct http_options http;       /* concurrency, rate, retries; TLS comes from the cloud config */
        uint64_t api_timeout_usec;      /* one HTTP attempt [60 s] */
        uint64_t create_timeout_usec;   /* one POST /servers: Nova took 52 s under 50 creates [120 s] */
        uint64_t create_recheck_usec;   /* after an unclear create, wait before looking it up [5 s] */
        uint64_t create_settle_usec;    /* after a POST that timed out (Nova may still be working on
                                         * it), no second POST before this long [4 x create_timeout] */
        unsigned create_attempts;       /* POSTs per create at most [no limit but the deadline] */
        uint64_t retry_deadline_usec;   /* a call retries transient failures this long unless
                                         * cloud_set_deadline() says otherwise [10 min] */
        unsigned max_calls;             /* calls in progress; more: -EBUSY [1024] */
        uint64_t token_margin_usec;     /* renew a token this long before it expires, at most
                                         * half its lifetime [5 min] */
        uint64_t cache_ttl_usec;        /* flavor, image and network name -> id cache [10 min] */
        unsigned page_size;             /* servers per list page [1000, Nova's default max] */
        uint64_t list_full_usec;        /* the lists that answer shows: one of every server of the
                                         * cluster at least this often, only those changed since
                                         * the previous list (changes-since) between them [60 s] */
        uint64_t list_margin_usec;      /* a changes-since list reaches this far before the previous
                                         * list's Date (clock skew, commits in flight) [30 s] */
};

/* The outcome of a call, valid during the callback only. Transient failures
 * (doc/failures.md) are retried until the call's deadline; only then do
 * they come back.
 * error: 0, or
 *   -ENOENT       404 (show; a flavor/image/network that does not exist, or
 *                 no image/network endpoint)
 *   -ENOTUNIQ     a flavor/image/network name that matches more than one
 *   -EINVAL       400, or a request elasticd refused to send
 *   -EACCES       401 even after a fresh token (bad credentials)
 *   -EPERM        403
 *   -EDQUOT       over quota (403/413 saying so)
 *   -EBUSY        409 (locked, wrong state)
 *   -EAGAIN       429 (after the call's deadline)
 *   -EREMOTEIO    5xx
 *   -EBADMSG      a response the parsers refused
 *   -ETIMEDOUT, -ECONNRESET, -ECONNREFUSED, -EHOSTUNREACH, -EKEYREJECTED, -EFBIG: from http.h
 *   -EIO          a create whose outcome could not be established: the server may exist
 * os: the HTTP status, the cloud's message (or elasticd's) and the request id. */
struct cloud_result {
        int error;
        const struct os_error *os;               /* never NULL */
        const char *id;                          /* create: server id; resolve: flavor/image/network id */
        bool adopted;                            /* create: found the server of an unclear POST */
        const struct nova_server *server;        /* show */
        struct nova_server *const *servers;      /* list */
        size_t n_servers;
        const char *console;                     /* console: the output text */
};

typedef void (*cloud_callback_t)(struct cloud *c, const struct cloud_result *res, void *userdata);

struct cloud_stats {
        /* HTTP answers by method (GET, POST, PUT, DELETE, other) and class (2xx..5xx, none) */
        uint64_t http[5][5];
        uint64_t calls_started;
        uint64_t calls_failed;     /* callbacks with error != 0 */
        uint64_t calls_active;
        uint64_t auths;            /* tokens fetched */
        uint64_t auth_failures;    /* transient Keystone (or version check) failures, retried */
        uint64_t reauths_on_401;
        uint64_t call_retries;     /* transient failures retried by the client (beyond http.h's) */
        uint64_t create_posts;
        uint64_t create_lookups;   /* unclear creates looked up */
        uint64_t create_adopted;   /* ... and found */
        uint64_t lookups_cached;   /* flavor/image/network lookups answered by the cache */
        uint64_t lookups_merged;   /* ... by the same lookup already in flight */
        uint64_t lookups_forgotten; /* cache entries dropped on a 4xx naming them */
        uint64_t batch_lists;      /* lists made to answer several shows at once */
        uint64_t batch_delta_lists; /* ... of them, changes-since lists */
        uint64_t shows_from_list;  /* shows answered by such a list (or what earlier ones said) */
        uint64_t list_pages;       /* pages of server lists (every list) */
        uint64_t list_bytes;       /* ... and their bodies' bytes */
        struct http_stats transport;
};

/* CONFIG is taken over on success (freed with the cloud). */
int cloud_new(sd_event *event, struct cloud_config *config, const struct cloud_options *opts,
              struct cloud **ret, char **ret_error);
/* Cancel every call (no callback is made) and free; safe from a callback. */
struct cloud *cloud_free(struct cloud *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct cloud *, cloud_free);

/* A reload: OPTS's endpoints, http limits (max_in_flight, rate, burst,
 * timeout_usec), api_timeout_usec and create_timeout_usec apply to the calls
 * started from now on (zeroed: the defaults); calls in progress finish as they
 * started. The other options stay as cloud_new set them. A changed endpoint
 * drops the token and the name -> id cache, so the next call authenticates
 * again and finds its endpoints afresh. The cluster cannot change (its tag
 * marks every instance): -EINVAL, with a message in *ret_error (malloc'd). */
int cloud_apply_config(struct cloud *c, const struct cloud_options *opts, char **ret_error);

/* The Nova tag on every server of this cluster ("elasticd.<cluster>"). */
const char *cloud_cluster_tag(const struct cloud *c);
void cloud_get_stats(const struct cloud *c, struct cloud_stats *ret);

/* Every call returns 0 and calls CB exactly once later from the event loop
 * (never from inside the call), unless cancelled; or returns a negative errno
 * and never calls CB (-EBUSY: max_calls reached). *ret_call_id (optional)
 * names the call for cloud_cancel(). */

/* Create a server. SPEC's metadata must hold elasticd_cluster (this cluster)
 * and elasticd_node, and should hold elasticd_op; the cluster tag is added.
 * A POST is never blindly repeated: after a timeout, reset, 5xx or lost reply
 * the server is looked up by name and metadata (after create_recheck_usec),
 * adopted if found, and POSTed again only if not - after a timeout only once
 * create_settle_usec passed without it showing up. 429 and refused
 * connections are repeated (nothing was created). */
int cloud_server_create(struct cloud *c, const struct nova_create *spec, cloud_callback_t cb,
                        void *userdata, uint64_t *ret_call_id);
/* Shows made while others wait (the polls of many building nodes) are
 * answered by one list, when that costs fewer requests (a page per 1,000
 * instances): of every tagged instance of the cluster at least every
 * list_full_usec, and between those of the servers changed since the
 * previous list (changes-since; deleted ones come as DELETED and answer as
 * a show of a deleted server does, -ENOENT). A server a changes-since list
 * lacks is answered with what the earlier lists said; one no list holds is
 * shown on its own, so the answer is the same as a show's. */
int cloud_server_show(struct cloud *c, const char *id, cloud_callback_t cb, void *userdata,
                      uint64_t *ret_call_id);
/* This cluster's servers (tag filter on the server, metadata checked here),
 * every page. NAME, if not NULL, keeps only servers with exactly that name. */
int cloud_servers_list(struct cloud *c, const char *name, cloud_callback_t cb, void *userdata,
                       uint64_t *ret_call_id);
/* Done when Nova accepted the delete or the server is already gone (404). */
int cloud_server_delete(struct cloud *c, const char *id, cloud_callback_t cb, void *userdata,
                        uint64_t *ret_call_id);
/* Not retried on an unclear outcome: poll the server and decide. */
int cloud_server_reboot(struct cloud *c, const char *id, bool hard, cloud_callback_t cb, void *userdata,
                        uint64_t *ret_call_id);
int cloud_server_rebuild(struct cloud *c, const char *id, const char *image_id, cloud_callback_t cb,
                         void *userdata, uint64_t *ret_call_id);
/* The server's console log, the last LINES lines (0: all), in res->console.
 * -ENOENT when the server is gone, -EBUSY (409) while it has no host yet. */
int cloud_server_console(struct cloud *c, const char *id, unsigned lines, cloud_callback_t cb, void *userdata,
                         uint64_t *ret_call_id);
/* Name or id -> id, cached for cache_ttl_usec. A lookup made while the same
 * one is in flight sends nothing and gets that one's answer (a 1,000-node
 * resume resolves each group's flavor, image and networks once). A cached
 * id is forgotten when a 4xx answer of any call names it or its name. */
int cloud_flavor_resolve(struct cloud *c, const char *name_or_id, cloud_callback_t cb, void *userdata,
                         uint64_t *ret_call_id);
int cloud_image_resolve(struct cloud *c, const char *name_or_id, cloud_callback_t cb, void *userdata,
                        uint64_t *ret_call_id);
/* A Neutron network name -> its uuid (GET <network endpoint>/networks?name=).
 * A uuid, "none" and "auto" are Nova's own and come back as they are, with
 * no request. */
int cloud_network_resolve(struct cloud *c, const char *name_or_id, cloud_callback_t cb, void *userdata,
                          uint64_t *ret_call_id);

/* The name -> id cache, seen from outside: elasticd journals what it learns
 * and forgets, so that a restart within the TTL does not look the same
 * names up again. */
enum cloud_lookup_kind {
        CLOUD_LOOKUP_FLAVOR,
        CLOUD_LOOKUP_IMAGE,
        CLOUD_LOOKUP_NETWORK,
};
/* The cache learned ID for NAME from the cloud (cached for the TTL from
 * now), or forgot NAME (ID NULL: a 4xx named it or its id, or the
 * endpoints changed). Called from within the call that learned or failed,
 * on the loop. */
typedef void (*cloud_lookup_fn)(enum cloud_lookup_kind kind, const char *name, const char *id, void *userdata);
void cloud_set_lookup_hook(struct cloud *c, cloud_lookup_fn fn, void *userdata);
/* Which cloud the cached ids are of: 16 hex digits hashed from the cloud's
 * name, auth_url, region, project and endpoint overrides. */
const char *cloud_lookup_scope(const struct cloud *c);
/* Cache NAME -> ID as learned AGE_USEC ago under SCOPE: until the TTL from
 * then. 0: cached; 1: not (as old as the TTL, or another scope's); -EINVAL,
 * -ENOMEM. The hook is not told. */
int cloud_lookup_seed(struct cloud *c, enum cloud_lookup_kind kind, const char *name, const char *id,
                      const char *scope, uint64_t age_usec);

/* Retry the call's transient failures (doc/failures.md) until DEADLINE
 * (CLOCK_MONOTONIC, usec) instead of retry_deadline_usec after its start;
 * then it reports the last one. -ENOENT if it is not running. */
int cloud_set_deadline(struct cloud *c, uint64_t call_id, uint64_t deadline_usec);

/* Stop a call; its callback will not be called. -ENOENT if it is not running. */
int cloud_cancel(struct cloud *c, uint64_t call_id);
