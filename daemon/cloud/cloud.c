/* cloud.c - OpenStack calls as small state machines over the HTTP engine, one Keystone token shared by all. */
#include <curl/curl.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "cloud/cloud.h"
#include "cloud/glance.h"
#include "cloud/keystone.h"
#include "util/log.h"
#include "cloud/neutron.h"
#include "cloud/serverview.h"

#define USEC_PER_SEC UINT64_C(1000000)
#define USEC_PER_MSEC UINT64_C(1000)
#define LIST_PAGES_MAX 1000
/* Retries of a call after a transient failure, and of authentication:
 * full jitter up to BASE * 2^n, at most MAX. */
#define RETRY_BASE_USEC (500 * USEC_PER_MSEC)
#define RETRY_MAX_USEC (30 * USEC_PER_SEC)
#define AUTH_RETRY_MAX_USEC (10 * USEC_PER_SEC)

enum call_kind {
        CALL_CREATE,
        CALL_SHOW,
        CALL_LIST,
        CALL_DELETE,
        CALL_REBOOT,
        CALL_REBUILD,
        CALL_CONSOLE,
        CALL_FLAVOR,
        CALL_IMAGE,
        CALL_NETWORK,
};

enum call_step {
        STEP_MAIN,          /* the call's own request (create: the POST) */
        STEP_LOOKUP,        /* create: find the server of an unclear POST */
        STEP_LIST,          /* flavor/image/network resolve: search by name */
};

struct cache_entry {
        enum cloud_lookup_kind kind;
        char *key;
        char *id;
        uint64_t until;
        struct cache_entry *next;
};

struct cloud_call {
        struct cloud *cloud;
        struct cloud_call *prev, *next;
        uint64_t id;
        enum call_kind kind;
        enum call_step step;
        cloud_callback_t cb;
        void *userdata;
        char *label;

        struct http_request *req;
        const char *service;       /* of the request in flight: identity, compute, image, network */
        uint64_t token_gen;        /* the token the request carried when it was sent */
        bool waiting_token;
        bool token_stale;          /* ... and it had expired by then (the renewal was late) */
        bool reauthed;             /* a 401 renewed the token for this request already */
        uint64_t deadline;         /* monotonic: transient failures are retried until then */
        unsigned retries;          /* transient failures retried so far */
        sd_event_source *timer;    /* the next step after a delay, or a result to deliver */
        int pending_error;         /* what the timer delivers, when it delivers */
        bool timer_delivers;

        char *arg;                 /* server id, name filter, or name/id to resolve */
        char *body;                /* create, reboot, rebuild */

        /* create */
        char *node, *op;
        unsigned posts;
        int post_error;            /* the last POST's outcome, reported if nothing is found */
        uint64_t settle_until;     /* after a POST that may still be in Nova's hands: no
                                    * second POST before this (0: none pending) */

        /* show: waits for the next shared list (batched), and is answered by
         * the list now under way (in_list); list: feeds the batched shows */
        bool batched, in_list, feeds_batch;
        /* list: only the servers changed since SINCE (Nova's clock), deleted
         * ones too; the Date of its first answer */
        bool delta;
        time_t since;
        int64_t list_date;

        /* resolve: the same lookup in flight whose answer this one takes (it
         * sends nothing), and how many take this one's */
        struct cloud_call *leader;
        unsigned n_followers;

        /* list and resolve paging */
        char *marker;
        unsigned pages;
        char **found_ids;          /* resolve: ids whose name matched */
        size_t n_found;

        /* the result */
        struct nova_server **servers;
        size_t n_servers;
        struct nova_server *server;
        char *result_id;
        char *console;
        bool adopted;
        struct os_error err;
};

struct cloud {
        unsigned n_ref;
        bool shut_down;
        sd_event *event;
        struct cloud_config *config;
        struct cloud_options opts;
        char *cluster;
        char *tag;
        /* clouds.yaml's own compute, image and identity overrides, under elasticd.yaml's */
        char *own_override[3];
        struct http_engine *http;

        struct keystone_token *token;
        uint64_t token_until;      /* monotonic: renewed from then on */
        uint64_t token_expires;    /* monotonic: not sent after this (0: rejected) */
        uint64_t token_gen;
        char *compute_url;
        char *image_url;
        char *image_url_error;
        char *network_url;
        char *network_url_error;
        struct http_request *auth_req;
        struct http_request *version_req;
        bool version_ok;           /* the compute API speaks NOVA_MICROVERSION */
        sd_event_source *auth_fail;
        sd_event_source *auth_retry;    /* Keystone (or the version check) failed transiently */
        sd_event_source *renew;         /* a request found the token due for renewal */
        unsigned auth_failures;         /* transient failures in a row */
        int auth_error;
        struct os_error auth_err;

        struct cloud_call *calls;
        unsigned n_calls;
        uint64_t next_call_id;
        struct cache_entry *cache;
        cloud_lookup_fn lookup_hook;    /* told what the cache learns and forgets */
        void *lookup_userdata;
        char scope[17];                 /* cloud_lookup_scope() */
        /* Shows made while others wait are answered by one list of the
         * cluster's instances (the polls of building nodes). */
        sd_event_source *batch_defer;
        unsigned n_batched;
        bool batch_list_running;
        struct server_view view;
        sd_event_source *view_expire;
        struct cloud_stats stats;
        uint64_t rng;
};

static uint64_t now_mono(struct cloud *c) {
        uint64_t t = 0;

        if (sd_event_now(c->event, CLOCK_MONOTONIC, &t) < 0) {
                struct timespec ts;
                clock_gettime(CLOCK_MONOTONIC, &ts);
                t = (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / 1000;
        }
        return t;
}

/* Full jitter: uniform in [0, min(max, base * 2^n)], at least a millisecond. */
static uint64_t backoff_jitter(struct cloud *c, unsigned n, uint64_t max) {
        uint64_t cap = RETRY_BASE_USEC << (n < 16 ? n : 16);

        if (cap > max)
                cap = max;
        c->rng ^= c->rng << 13;
        c->rng ^= c->rng >> 7;
        c->rng ^= c->rng << 17;
        return USEC_PER_MSEC + c->rng % (cap + 1);
}

static void cloud_pin(struct cloud *c) {
        c->n_ref++;
}

/* REPORT: tell the hook each id is forgotten (the cloud changed under them). */
static void cache_clear(struct cloud *c, bool report) {
        while (c->cache) {
                struct cache_entry *n = c->cache->next;
                if (report && c->lookup_hook)
                        c->lookup_hook(c->cache->kind, c->cache->key, NULL, c->lookup_userdata);
                free(c->cache->key);
                free(c->cache->id);
                free(c->cache);
                c->cache = n;
        }
}

static void cloud_destroy(struct cloud *c) {
        c->http = http_engine_free(c->http);
        keystone_token_free(c->token);
        free(c->compute_url);
        free(c->image_url);
        free(c->image_url_error);
        free(c->network_url);
        free(c->network_url_error);
        os_error_clear(&c->auth_err);
        sd_event_source_disable_unref(c->auth_fail);
        sd_event_source_disable_unref(c->auth_retry);
        sd_event_source_disable_unref(c->renew);
        cache_clear(c, false);
        server_view_clear(&c->view);
        clouds_free(c->config);
        for (size_t i = 0; i < ELEMENTSOF(c->own_override); i++)
                free(c->own_override[i]);
        free(c->cluster);
        free(c->tag);
        sd_event_unref(c->event);
        free(c);
}

static void cloud_unpin(struct cloud *c) {
        if (--c->n_ref == 0)
                cloud_destroy(c);
}

const char *cloud_cluster_tag(const struct cloud *c) {
        return c ? c->tag : NULL;
}

/* The config's compute, image and identity override fields, in own_override's order. */
static char **override_field(struct cloud_config *cc, size_t i) {
        char **f[] = { &cc->compute_endpoint_override, &cc->image_endpoint_override,
                       &cc->identity_endpoint_override };
        return f[i];
}

/* Make the config's overrides elasticd.yaml's where set, clouds.yaml's
 * otherwise. *ret_changed: whether any of them changed. */
static int endpoints_apply(struct cloud *c, const struct cloud_endpoints *ep, bool *ret_changed) {
        const char *want[3] = { ep->compute, ep->image, ep->identity };
        bool changed = false;

        for (size_t i = 0; i < ELEMENTSOF(want); i++) {
                char **field = override_field(c->config, i);
                const char *v = want[i] ? want[i] : c->own_override[i];
                char *copy;

                if (v ? *field && strcmp(*field, v) == 0 : !*field)
                        continue;
                copy = v ? strdup(v) : NULL;
                if (v && !copy)
                        return -ENOMEM;
                free(*field);
                *field = copy;
                changed = true;
        }
        if (ret_changed)
                *ret_changed = changed;
        return 0;
}

/* Map an HTTP error status to the errno documented in cloud.h. */
static int status_to_errno(long status, const char *message) {
        if (status == 400)
                return -EINVAL;
        if (status == 401)
                return -EACCES;
        if (status == 403)
                return message && strcasestr(message, "quota") ? -EDQUOT : -EPERM;
        if (status == 404)
                return -ENOENT;
        if (status == 409)
                return -EBUSY;
        if (status == 413)
                return -EDQUOT;
        if (status == 429)
                return -EAGAIN;
        if (status >= 500)
                return -EREMOTEIO;
        return -EPROTO;
}

/* Percent-encode S for a URL path segment or query value. */
static char *url_escape(const char *s) {
        char *e = curl_easy_escape(NULL, s, 0);
        char *r;

        if (!e)
                return NULL;
        r = strdup(e);
        curl_free(e);
        return r;
}

/* A Nova name filter (a regular expression) that matches NAME exactly. */
static char *name_regex(const char *name) {
        size_t n = strlen(name);
        char *r = malloc(2 * n + 3), *p;

        if (!r)
                return NULL;
        p = r;
        *p++ = '^';
        for (const char *s = name; *s; s++) {
                if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
                      *s == '-' || *s == '_' || (unsigned char) *s >= 0x80))
                        *p++ = '\\';
                *p++ = *s;
        }
        *p++ = '$';
        *p = 0;
        return r;
}

/* ---- cache ---- */

static const char *cache_get(struct cloud *c, enum cloud_lookup_kind kind, const char *key) {
        uint64_t now = now_mono(c);

        for (struct cache_entry *e = c->cache; e; e = e->next)
                if (e->kind == kind && strcmp(e->key, key) == 0 && e->until > now)
                        return e->id;
        return NULL;
}

/* KEY -> ID until UNTIL (monotonic). */
static int cache_set(struct cloud *c, enum cloud_lookup_kind kind, const char *key, const char *id, uint64_t until) {
        struct cache_entry *e;

        for (e = c->cache; e; e = e->next)
                if (e->kind == kind && strcmp(e->key, key) == 0)
                        break;
        if (!e) {
                e = calloc(1, sizeof(*e));
                if (!e)
                        return -ENOMEM;
                e->kind = kind;
                e->key = strdup(key);
                if (!e->key) {
                        free(e);
                        return -ENOMEM;
                }
                e->next = c->cache;
                c->cache = e;
        }
        char *copy = strdup(id);
        if (!copy)
                return -ENOMEM;
        free(e->id);
        e->id = copy;
        e->until = until;
        return 0;
}

/* An id just learned from the cloud: cached for the TTL, and told. */
static void cache_put(struct cloud *c, enum cloud_lookup_kind kind, const char *key, const char *id) {
        if (cache_set(c, kind, key, id, now_mono(c) + c->opts.cache_ttl_usec) >= 0 && c->lookup_hook)
                c->lookup_hook(kind, key, id, c->lookup_userdata);
}

/* FNV-1a over the strings that say which cloud and project the ids are of. */
static void scope_compute(struct cloud *c) {
        const struct cloud_config *cc = c->config;
        const char *parts[] = {
                cc->name, cc->auth_url, cc->region_name, cc->project_id, cc->project_name,
                cc->project_domain_id, cc->project_domain_name, cc->compute_endpoint_override,
                cc->image_endpoint_override, cc->network_endpoint_override,
        };
        uint64_t h = 0xcbf29ce484222325ULL;

        for (size_t i = 0; i < ELEMENTSOF(parts); i++) {
                for (const char *p = parts[i] ? parts[i] : ""; *p; p++)
                        h = (h ^ (unsigned char) *p) * 0x100000001b3ULL;
                h = (h ^ 0x1f) * 0x100000001b3ULL;  /* a separator: "ab","c" is not "a","bc" */
        }
        snprintf(c->scope, sizeof(c->scope), "%016" PRIx64, h);
}

void cloud_set_lookup_hook(struct cloud *c, cloud_lookup_fn fn, void *userdata) {
        c->lookup_hook = fn;
        c->lookup_userdata = userdata;
}

const char *cloud_lookup_scope(const struct cloud *c) {
        return c->scope;
}

int cloud_lookup_seed(struct cloud *c, enum cloud_lookup_kind kind, const char *name, const char *id,
                      const char *scope, uint64_t age_usec) {
        if (!name || !id || (unsigned) kind > CLOUD_LOOKUP_NETWORK)
                return -EINVAL;
        if (!scope || strcmp(scope, c->scope) != 0 || age_usec >= c->opts.cache_ttl_usec)
                return 1;
        return cache_set(c, kind, name, id, now_mono(c) + c->opts.cache_ttl_usec - age_usec);
}

/* Whether MESSAGE has WORD, not as part of a longer name or id. */
static bool names(const char *message, const char *word) {
        size_t n = strlen(word);

        if (n == 0)
                return false;
        for (const char *p = message; (p = strstr(p, word)); p++) {
                bool before = p == message || !(isalnum((unsigned char) p[-1]) || strchr("-_.", p[-1]));
                bool after = !(isalnum((unsigned char) p[n]) || (p[n] && strchr("-_.", p[n])));

                /* "Flavor 42 could not be found." ends a sentence with a period. */
                if (p[n] == '.' && (p[n + 1] == 0 || p[n + 1] == ' '))
                        after = true;
                if (before && after)
                        return true;
        }
        return false;
}

/* Forget the cached ids that a 4xx message names (by id or by name): "Flavor
 * 42 could not be found.", "Network <uuid> could not be found.", ... */
static void cache_forget_named(struct cloud *c, const char *message) {
        for (struct cache_entry **p = &c->cache; *p;) {
                struct cache_entry *e = *p;

                if (message && ((e->id && names(message, e->id)) || names(message, e->key))) {
                        *p = e->next;
                        if (c->lookup_hook)
                                c->lookup_hook(e->kind, e->key, NULL, c->lookup_userdata);
                        free(e->key);
                        free(e->id);
                        free(e);
                        c->stats.lookups_forgotten++;
                } else
                        p = &e->next;
        }
}

/* ---- calls ---- */

/* Free a call already taken off its cloud's list. */
static struct cloud_call *call_free(struct cloud_call *k) {
        if (!k)
                return NULL;
        if (k->req) {
                http_request_cancel(k->req);
                k->req = http_request_unref(k->req);
        }
        sd_event_source_disable_unref(k->timer);
        free(k->label);
        free(k->arg);
        free(k->body);
        free(k->node);
        free(k->op);
        free(k->marker);
        for (size_t i = 0; i < k->n_found; i++)
                free(k->found_ids[i]);
        free(k->found_ids);
        for (size_t i = 0; i < k->n_servers; i++)
                nova_server_free(k->servers[i]);
        free(k->servers);
        nova_server_free(k->server);
        free(k->result_id);
        free(k->console);
        os_error_clear(&k->err);
        free(k);
        return NULL;
}

static void call_unlink(struct cloud_call *k) {
        struct cloud *c = k->cloud;

        if (k->prev)
                k->prev->next = k->next;
        else
                c->calls = k->next;
        if (k->next)
                k->next->prev = k->prev;
        k->prev = k->next = NULL;
        c->n_calls--;
}

static int call_later(struct cloud_call *k, uint64_t delay, bool deliver, int error);
static int call_run(struct cloud_call *k);
static void batch_deliver(struct cloud_call *lk, int error);

/* Hand leader K's outcome to the lookups that waited on it; each is
 * delivered from the loop, as a cache hit is. */
static void followers_deliver(struct cloud_call *k, int error) {
        for (struct cloud_call *f = k->cloud->calls; f && k->n_followers > 0; f = f->next) {
                int e = error;

                if (f->leader != k)
                        continue;
                f->leader = NULL;
                k->n_followers--;
                if (k->result_id && !(f->result_id = strdup(k->result_id)))
                        e = -ENOMEM;
                f->err.status = k->err.status;
                if (e < 0)
                        (void) os_error_set(&f->err, e, "%s", k->err.message && e == error ? k->err.message
                                                                                          : strerror(-e));
                (void) os_error_set_request_id(&f->err, k->err.request_id);
                if (call_later(f, 0, true, e) < 0 && call_run(f) < 0)
                        log_req(LOG_ERR, f->label, "cloud: call %" PRIu64 " cannot be delivered", f->id);
        }
}

/* Deliver the result and free the call. The call leaves the list first, so
 * the callback may cancel anything or free the cloud. */
static void call_finish(struct cloud_call *k, int error) {
        struct cloud *c = k->cloud;
        struct cloud_result res = {
                .error = error,
                .os = &k->err,
                .id = k->result_id,
                .adopted = k->adopted,
                .server = k->server,
                .servers = k->servers,
                .n_servers = k->n_servers,
                .console = k->console,
        };

        if (error < 0) {
                c->stats.calls_failed++;
                if (!k->err.message)
                        (void) os_error_set(&k->err, error, "%s", strerror(-error));
        }
        log_req(LOG_DEBUG, k->label, "cloud: call %" PRIu64 " done: %d %s", k->id, error,
                k->err.message ? k->err.message : "");
        /* The calls that carry resolved ids. */
        if (error < 0 && (k->kind == CALL_CREATE || k->kind == CALL_REBUILD) && k->err.status >= 400 &&
            k->err.status < 500 && k->err.status != 401 && k->err.status != 429)
                cache_forget_named(c, k->err.message);
        call_unlink(k);
        if (k->n_followers > 0)
                followers_deliver(k, error);
        if (k->feeds_batch)
                batch_deliver(k, error);
        if (k->req) {
                http_request_cancel(k->req);
                k->req = http_request_unref(k->req);
        }
        cloud_pin(c);
        if (k->cb)
                k->cb(c, &res, k->userdata);
        k->cloud = NULL;
        call_free(k);
        cloud_unpin(c);
}

static int call_new(struct cloud *c, enum call_kind kind, cloud_callback_t cb, void *userdata,
                    struct cloud_call **ret) {
        struct cloud_call *k;

        if (c->shut_down)
                return -ESHUTDOWN;
        if (c->n_calls >= c->opts.max_calls)
                return -EBUSY;
        k = calloc(1, sizeof(*k));
        if (!k)
                return -ENOMEM;
        k->cloud = c;
        k->id = ++c->next_call_id;
        k->deadline = now_mono(c) + c->opts.retry_deadline_usec;
        k->kind = kind;
        k->cb = cb;
        k->userdata = userdata;
        k->next = c->calls;
        if (c->calls)
                c->calls->prev = k;
        c->calls = k;
        c->n_calls++;
        *ret = k;
        return 0;
}

static int on_call_timer(sd_event_source *s, uint64_t usec, void *userdata);

/* Run the call's next step after DELAY, or (DELIVER) finish it with ERROR:
 * either way from the event loop, never from the caller's stack. */
static int call_later(struct cloud_call *k, uint64_t delay, bool deliver, int error) {
        struct cloud *c = k->cloud;
        int r;

        k->timer = sd_event_source_disable_unref(k->timer);
        /* Accuracy 1 us (0 is sd-event's default of 250 ms): a cached or merged
         * lookup is delivered at once, not up to 250 ms later. */
        r = sd_event_add_time(c->event, &k->timer, CLOCK_MONOTONIC, now_mono(c) + delay, 1, on_call_timer, k);
        if (r < 0)
                return r;
        k->timer_delivers = deliver;
        k->pending_error = error;
        return 0;
}

/* The token is fresh: not due for renewal yet. */
static bool token_usable(struct cloud *c) {
        return c->token && now_mono(c) < c->token_until;
}

/* The token can still be sent (due for renewal perhaps, not expired). */
static bool token_valid(struct cloud *c) {
        return c->token && now_mono(c) < c->token_expires;
}

/* A token, and a compute API known to be new enough. */
static bool cloud_ready(struct cloud *c) {
        return c->version_ok && token_valid(c);
}

/* K's request was not acted on (never sent, or refused with 401): send it
 * again; a create's POST that did nothing does not count as one sent. */
static void call_resend(struct cloud_call *k) {
        int r;

        if (k->kind == CALL_CREATE && k->step == STEP_MAIN)
                k->posts--;
        r = call_run(k);
        if (r < 0)
                call_finish(k, r);
}

static void call_http_done(struct http_request *req, const struct http_response *resp, void *userdata);

static int on_renew(sd_event_source *s, void *userdata);

/* Put the newest token on a request as it is sent (not when it was queued:
 * it may have waited for a slot, the rate or a Retry-After since). A token
 * due for renewal is still valid for its margin: use it and renew it in the
 * background. */
static int attach_token(struct cloud *c, struct http_request *r, uint64_t *ret_gen, bool *ret_stale) {
        if (!c->token)
                return -ENOKEY;
        if (!token_usable(c) && !c->auth_req)
                (void) sd_event_source_set_enabled(c->renew, SD_EVENT_ONESHOT);
        *ret_gen = c->token_gen;
        *ret_stale = !token_valid(c);
        /* Expired or refused: it would only fetch a 401. */
        if (*ret_stale)
                return -EKEYEXPIRED;
        return http_request_set_header(r, "X-Auth-Token", c->token->token);
}

static int call_prepare(struct http_request *r, void *userdata) {
        struct cloud_call *k = userdata;

        return attach_token(k->cloud, r, &k->token_gen, &k->token_stale);
}

/* Send one request for call K; the token is attached when it leaves. */
static int call_send(struct cloud_call *k, const char *method, const char *url, bool compute,
                     uint64_t timeout, bool idempotent) {
        struct cloud *c = k->cloud;
        _cleanup_(http_request_unrefp) struct http_request *r = NULL;
        int e;

        e = http_request_new(c->http, method, url, &r);
        if (e < 0)
                return os_error_set(&k->err, e, "%s %s: cannot make the request", method, url);
        if ((e = http_request_add_header(r, "Accept", "application/json")) < 0)
                return e;
        k->service = k->kind == CALL_IMAGE ? "image" : k->kind == CALL_NETWORK ? "network" : "compute";
        if ((e = http_request_set_service(r, k->service)) < 0)
                return e;
        http_request_set_prepare(r, call_prepare, k);
        if (compute && ((e = http_request_add_header(r, "OpenStack-API-Version", "compute " NOVA_MICROVERSION)) < 0 ||
                        (e = http_request_add_header(r, "X-OpenStack-Nova-API-Version", NOVA_MICROVERSION)) < 0))
                return e;
        if (k->body && strcmp(method, "POST") == 0) {
                if ((e = http_request_add_header(r, "Content-Type", "application/json")) < 0 ||
                    (e = http_request_set_body(r, k->body, strlen(k->body), false)) < 0)
                        return e;
        }
        http_request_set_timeout(r, timeout);
        http_request_set_idempotent(r, idempotent);
        /* A create whose answer is lost is looked up before any second POST
         * (create_done): it needs no connection of its own. */
        http_request_set_reuse(r, k->kind == CALL_CREATE);
        http_request_set_max_body(r, OS_BODY_MAX);
        if (k->label)
                (void) http_request_set_label(r, k->label);
        e = http_request_start(r, call_http_done, k);
        if (e < 0)
                return os_error_set(&k->err, e, "%s %s: cannot queue the request", method, url);
        k->req = TAKE_PTR(r);
        return 0;
}

static int step_send(struct cloud_call *k);
static int auth_start(struct cloud *c);
static int version_start(struct cloud *c);
static int on_auth_retry(sd_event_source *s, uint64_t usec, void *userdata);

/* Send the call's current step, first getting a token (and checking the
 * compute API version, once) if needed. */
static int call_run(struct cloud_call *k) {
        struct cloud *c = k->cloud;

        if (!cloud_ready(c)) {
                k->waiting_token = true;
                return token_valid(c) ? version_start(c) : auth_start(c);
        }
        return step_send(k);
}

static int on_call_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        struct cloud_call *k = userdata;
        int r;

        k->timer = sd_event_source_disable_unref(k->timer);
        if (k->timer_delivers) {
                call_finish(k, k->pending_error);
                return 0;
        }
        r = call_run(k);
        if (r < 0)
                call_finish(k, r);
        return 0;
}

/* ---- authentication ---- */

/* Fail waiting calls with the authentication error: all of them (ALL), or
 * those past their deadline. */
static void auth_fail_waiters_if(struct cloud *c, int error, bool all) {
        struct cloud_call *k;
        uint64_t now = now_mono(c);

        cloud_pin(c);
        for (;;) {
                for (k = c->calls; k && !(k->waiting_token && (all || now >= k->deadline)); k = k->next)
                        ;
                if (!k || c->shut_down)
                        break;
                k->waiting_token = false;
                os_error_clear(&k->err);
                k->err.status = c->auth_err.status;
                if (c->auth_err.message)
                        (void) os_error_set(&k->err, error, "authentication: %s", c->auth_err.message);
                (void) os_error_set_request_id(&k->err, c->auth_err.request_id);
                call_finish(k, error);
        }
        cloud_unpin(c);
}

static void auth_fail_waiters(struct cloud *c, int error) {
        auth_fail_waiters_if(c, error, true);
}

static void auth_resume_waiters(struct cloud *c) {
        struct cloud_call *k;

        cloud_pin(c);
        for (;;) {
                for (k = c->calls; k && !k->waiting_token; k = k->next)
                        ;
                if (!k || c->shut_down)
                        break;
                k->waiting_token = false;
                int r = step_send(k);
                if (r < 0)
                        call_finish(k, r);
        }
        cloud_unpin(c);
}

static bool any_waiter(struct cloud *c) {
        for (struct cloud_call *k = c->calls; k; k = k->next)
                if (k->waiting_token)
                        return true;
        return false;
}

static int on_auth_fail(sd_event_source *s, void *userdata) {
        struct cloud *c = userdata;

        auth_fail_waiters(c, c->auth_error);
        return 0;
}

/* Keystone or the compute API failed in passing (doc/failures.md): the
 * waiting calls stay, each until its deadline, and authentication is tried
 * again after a backoff. ERROR (with c->auth_err) is what they get at their
 * deadline. */
static void auth_failed(struct cloud *c, int error) {
        uint64_t delay;

        if (!os_failure_is_transient(error, &c->auth_err)) {
                c->auth_failures = 0;
                auth_fail_waiters(c, error);
                return;
        }
        c->auth_error = error;
        c->stats.auth_failures++;
        auth_fail_waiters_if(c, error, false);
        if (c->shut_down)
                return;
        delay = backoff_jitter(c, c->auth_failures++, AUTH_RETRY_MAX_USEC);
        if (c->auth_retry) {
                (void) sd_event_source_set_time(c->auth_retry, now_mono(c) + delay);
                (void) sd_event_source_set_enabled(c->auth_retry, SD_EVENT_ONESHOT);
        } else if (sd_event_add_time(c->event, &c->auth_retry, CLOCK_MONOTONIC, now_mono(c) + delay, 0,
                                     on_auth_retry, c) < 0)
                auth_fail_waiters(c, error);
}

static int on_auth_retry(sd_event_source *s, uint64_t usec, void *userdata) {
        struct cloud *c = userdata;
        int r;

        (void) sd_event_source_set_enabled(s, SD_EVENT_OFF);
        cloud_pin(c);
        auth_fail_waiters_if(c, c->auth_error, false);
        /* Nobody waits and the token still works: renew when next needed. */
        if (!c->shut_down && (any_waiter(c) || (c->token && !token_valid(c)))) {
                r = token_valid(c) && !c->version_ok ? version_start(c) : auth_start(c);
                if (r < 0)
                        auth_fail_waiters(c, r);
        }
        cloud_unpin(c);
        return 0;
}

static bool auth_retry_pending(struct cloud *c) {
        int enabled = SD_EVENT_OFF;

        return c->auth_retry && sd_event_source_get_enabled(c->auth_retry, &enabled) >= 0 &&
               enabled != SD_EVENT_OFF;
}

static int on_renew(sd_event_source *s, void *userdata) {
        struct cloud *c = userdata;

        if (!token_usable(c) && !c->auth_req && !auth_retry_pending(c) && auth_start(c) < 0)
                log_debug("cloud: cannot start renewing the token");
        return 0;
}

/* Start c->auth_err from RESP; on a transport failure handle it and return
 * true. */
static bool auth_response_failed(struct cloud *c, struct http_request *req, const struct http_response *resp,
                                 const char *method) {
        os_error_clear(&c->auth_err);
        c->auth_err.status = resp->status;
        (void) os_error_set_request_id(&c->auth_err, resp->request_id);
        if (resp->error >= 0)
                return false;
        (void) os_error_set(&c->auth_err, resp->error, "%s %s: %s", method, http_request_get_url(req),
                            resp->error_text);
        auth_failed(c, resp->error);
        return true;
}

/* An endpoint only some calls need (image, network): its URL, or why it is
 * missing in *ret_why for those calls to report. */
static void optional_endpoint(struct cloud *c, const struct keystone_token *t, const char *type, char **ret_url,
                              char **ret_why) {
        struct os_error e = {};

        *ret_why = mfree(*ret_why);
        if (keystone_endpoint_url(t, c->config, type, ret_url, &e) < 0 &&
            asprintf(ret_why, "%s", e.message ? e.message : "no such endpoint") < 0)
                *ret_why = NULL;
        os_error_clear(&e);
}

static void auth_done(struct http_request *req, const struct http_response *resp, void *userdata) {
        struct cloud *c = userdata;
        _cleanup_(keystone_token_freep) struct keystone_token *t = NULL;
        _cleanup_free_ char *compute = NULL, *image = NULL, *network = NULL;
        int r;

        c->auth_req = http_request_unref(c->auth_req);
        if (auth_response_failed(c, req, resp, "POST"))
                return;
        if (resp->status != 201) {
                (void) keystone_parse_error(resp->body, resp->body_size, &c->auth_err);
                if (!c->auth_err.message)
                        (void) os_error_from_body(&c->auth_err, resp->body, resp->body_size);
                auth_failed(c, status_to_errno(resp->status, c->auth_err.message));
                return;
        }
        r = keystone_parse_token(resp->subject_token, resp->body, resp->body_size, &t, &c->auth_err);
        if (r >= 0)
                r = keystone_endpoint_url(t, c->config, "compute", &compute, &c->auth_err);
        if (r < 0) {
                auth_fail_waiters(c, r);
                return;
        }
        /* Only image calls need Glance, only network names Neutron. */
        optional_endpoint(c, t, "image", &image, &c->image_url_error);
        optional_endpoint(c, t, "network", &network, &c->network_url_error);

        /* Renew before expiry: margin is at most half the token's lifetime.
         * Stop using it a second before it expires. */
        time_t now = time(NULL);
        uint64_t life = t->expires_at > now ? (uint64_t) (t->expires_at - now) * USEC_PER_SEC : 0;
        uint64_t margin = c->opts.token_margin_usec < life / 2 ? c->opts.token_margin_usec : life / 2;

        keystone_token_free(c->token);
        c->token = TAKE_PTR(t);
        c->token_until = now_mono(c) + life - margin;
        c->token_expires = now_mono(c) + (life > USEC_PER_SEC ? life - USEC_PER_SEC : life / 2);
        c->token_gen++;
        c->auth_failures = 0;
        free(c->compute_url);
        c->compute_url = TAKE_PTR(compute);
        free(c->image_url);
        c->image_url = TAKE_PTR(image);
        free(c->network_url);
        c->network_url = TAKE_PTR(network);
        c->stats.auths++;
        log_debug("cloud: new token, valid for %" PRIu64 " s, used for %" PRIu64 " s", life / USEC_PER_SEC,
                  (life - margin) / USEC_PER_SEC);
        if (!c->version_ok) {
                r = version_start(c);
                if (r < 0)
                        auth_fail_waiters(c, r);
                return;
        }
        auth_resume_waiters(c);
}

static void version_done(struct http_request *req, const struct http_response *resp, void *userdata) {
        struct cloud *c = userdata;
        unsigned minor = 0;
        int r;

        c->version_req = http_request_unref(c->version_req);
        if (resp->error == -EKEYEXPIRED || (resp->error == 0 && resp->status == 401)) {
                /* The token went stale on the way: a new one, then the check again. */
                c->token_until = c->token_expires = 0;
                r = auth_start(c);
                if (r < 0)
                        auth_fail_waiters(c, r);
                return;
        }
        if (auth_response_failed(c, req, resp, "GET"))
                return;
        if (resp->status != 200) {
                (void) os_error_from_body(&c->auth_err, resp->body, resp->body_size);
                auth_failed(c, status_to_errno(resp->status, c->auth_err.message));
                return;
        }
        r = nova_parse_version(resp->body, resp->body_size, &minor, &c->auth_err);
        if (r >= 0 && minor < NOVA_MICROVERSION_MINOR)
                r = os_error_set(&c->auth_err, -EPROTONOSUPPORT,
                                 "the compute API supports microversions up to 2.%u; elasticd needs %s "
                                 "(tags at create: OpenStack Pike or newer)",
                                 minor, NOVA_MICROVERSION);
        if (r < 0) {
                auth_fail_waiters(c, r);
                return;
        }
        log_debug("cloud: compute API up to microversion 2.%u", minor);
        c->version_ok = true;
        c->auth_failures = 0;
        os_error_clear(&c->auth_err);
        auth_resume_waiters(c);
}

static int version_prepare(struct http_request *r, void *userdata) {
        struct cloud *c = userdata;
        uint64_t gen;
        bool stale;

        return attach_token(c, r, &gen, &stale);
}

/* GET <compute endpoint>/ once per cloud: refuse a Nova without 2.52 with a
 * clear message instead of odd 400s later. */
static int version_start(struct cloud *c) {
        _cleanup_(http_request_unrefp) struct http_request *r = NULL;
        _cleanup_free_ char *url = NULL;
        int e;

        if (c->version_req || c->auth_req || auth_retry_pending(c))
                return 0;
        e = asprintf(&url, "%s/", c->compute_url) < 0 ? -ENOMEM : 0;
        if (e >= 0)
                e = http_request_new(c->http, "GET", url, &r);
        if (e >= 0 && (e = http_request_add_header(r, "Accept", "application/json")) >= 0)
                e = http_request_set_service(r, "compute");
        if (e >= 0) {
                http_request_set_prepare(r, version_prepare, c);
                http_request_set_urgent(r, true);
                http_request_set_timeout(r, c->opts.api_timeout_usec);
                (void) http_request_set_label(r, "version");
                e = http_request_start(r, version_done, c);
        }
        if (e < 0) {
                url = mfree(url);
                os_error_clear(&c->auth_err);
                (void) os_error_set(&c->auth_err, e, "cannot check the compute API version: %s", strerror(-e));
                c->auth_error = e;
                return sd_event_source_set_enabled(c->auth_fail, SD_EVENT_ONESHOT);
        }
        c->version_req = TAKE_PTR(r);
        return 0;
}

static int auth_start(struct cloud *c) {
        _cleanup_(http_request_unrefp) struct http_request *r = NULL;
        _cleanup_free_ char *url = NULL;
        char *body = NULL;
        int e;

        /* One at a time; after a failure, the retry timer decides when. */
        if (c->auth_req || auth_retry_pending(c))
                return 0;
        os_error_clear(&c->auth_err);
        e = keystone_tokens_url(c->config, &url, &c->auth_err);
        if (e >= 0)
                e = keystone_auth_body(c->config, &body, &c->auth_err);
        if (e >= 0)
                e = http_request_new(c->http, "POST", url, &r);
        if (e >= 0 && (e = http_request_add_header(r, "Content-Type", "application/json")) >= 0 &&
            (e = http_request_add_header(r, "Accept", "application/json")) >= 0 &&
            (e = http_request_set_service(r, "identity")) >= 0)
                e = http_request_set_body(r, body, strlen(body), true);
        body = keystone_auth_body_free(body);
        if (e >= 0) {
                /* A second token is harmless: auth may be retried like a GET. */
                http_request_set_idempotent(r, true);
                http_request_set_urgent(r, true);
                http_request_set_timeout(r, c->opts.api_timeout_usec);
                (void) http_request_set_label(r, "auth");
                e = http_request_start(r, auth_done, c);
        }
        if (e < 0) {
                /* Fail the waiters from the loop, with the message. */
                if (!c->auth_err.message)
                        (void) os_error_set(&c->auth_err, e, "cannot start authentication: %s", strerror(-e));
                c->auth_error = e;
                return sd_event_source_set_enabled(c->auth_fail, SD_EVENT_ONESHOT);
        }
        c->auth_req = TAKE_PTR(r);
        return 0;
}

/* ---- steps ---- */

static int step_send(struct cloud_call *k) {
        struct cloud *c = k->cloud;
        _cleanup_free_ char *url = NULL, *esc = NULL, *esc2 = NULL, *re = NULL, *mk = NULL;
        uint64_t t = c->opts.api_timeout_usec;
        int n = -1;

        if (k->kind != CALL_IMAGE && k->kind != CALL_NETWORK && !c->compute_url)
                return -ENOENT;
        if (k->kind == CALL_IMAGE && !c->image_url)
                return os_error_set(&k->err, -ENOENT, "no image endpoint: %s",
                                    c->image_url_error ? c->image_url_error : "unknown");
        if (k->kind == CALL_NETWORK && !c->network_url)
                return os_error_set(&k->err, -ENOENT, "no network endpoint: %s",
                                    c->network_url_error ? c->network_url_error : "unknown");
        if (k->arg && !(esc = url_escape(k->arg)))
                return -ENOMEM;
        if (k->marker && !(mk = url_escape(k->marker)))
                return -ENOMEM;

        switch (k->kind) {
        case CALL_CREATE:
                if (k->step == STEP_MAIN) {
                        c->stats.create_posts++;
                        k->posts++;
                        n = asprintf(&url, "%s/servers", c->compute_url);
                        if (n < 0)
                                return -ENOMEM;
                        return call_send(k, "POST", url, true, c->opts.create_timeout_usec, false);
                }
                /* STEP_LOOKUP: the name is unique enough for one page. */
                c->stats.create_lookups++;
                if (!(re = name_regex(k->arg)) || !(esc2 = url_escape(re)))
                        return -ENOMEM;
                n = asprintf(&url, "%s/servers/detail?name=%s&tags=%s&limit=%u", c->compute_url, esc2, c->tag,
                             c->opts.page_size);
                break;
        case CALL_SHOW:
                n = asprintf(&url, "%s/servers/%s", c->compute_url, esc);
                break;
        case CALL_LIST:
                if (k->delta) {
                        /* No tag filter: Nova removes a deleted server's
                         * tags, and its deletion is what a watch needs. */
                        char since[32];
                        struct tm tm;

                        if (!gmtime_r(&k->since, &tm) ||
                            strftime(since, sizeof(since), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
                                return -EINVAL;
                        n = asprintf(&url, "%s/servers/detail?changes-since=%s&limit=%u%s%s", c->compute_url, since,
                                     c->opts.page_size, mk ? "&marker=" : "", mk ? mk : "");
                        break;
                }
                if (k->arg && !(re = name_regex(k->arg)))
                        return -ENOMEM;
                if (re && !(esc2 = url_escape(re)))
                        return -ENOMEM;
                n = asprintf(&url, "%s/servers/detail?tags=%s&limit=%u%s%s%s%s", c->compute_url, c->tag,
                             c->opts.page_size, esc2 ? "&name=" : "", esc2 ? esc2 : "", mk ? "&marker=" : "",
                             mk ? mk : "");
                break;
        case CALL_DELETE:
                n = asprintf(&url, "%s/servers/%s", c->compute_url, esc);
                if (n < 0)
                        return -ENOMEM;
                return call_send(k, "DELETE", url, true, t, true);
        case CALL_REBOOT:
        case CALL_REBUILD:
                n = asprintf(&url, "%s/servers/%s/action", c->compute_url, esc);
                if (n < 0)
                        return -ENOMEM;
                return call_send(k, "POST", url, true, t, false);
        case CALL_CONSOLE:
                /* reads only: safe to repeat */
                n = asprintf(&url, "%s/servers/%s/action", c->compute_url, esc);
                if (n < 0)
                        return -ENOMEM;
                return call_send(k, "POST", url, true, t, true);
        case CALL_FLAVOR:
                if (k->step == STEP_MAIN)
                        n = asprintf(&url, "%s/flavors/%s", c->compute_url, esc);
                else
                        n = asprintf(&url, "%s/flavors/detail?limit=%u%s%s", c->compute_url, c->opts.page_size,
                                     mk ? "&marker=" : "", mk ? mk : "");
                break;
        case CALL_IMAGE:
                if (k->step == STEP_MAIN)
                        n = asprintf(&url, "%s/images/%s", c->image_url, esc);
                else
                        n = asprintf(&url, "%s/images?name=%s&limit=%u%s%s", c->image_url, esc, c->opts.page_size,
                                     mk ? "&marker=" : "", mk ? mk : "");
                break;
        case CALL_NETWORK:
                /* Neutron's name filter is exact; a marker appears only when it paginates. */
                n = asprintf(&url, "%s/networks?name=%s%s%s", c->network_url, esc, mk ? "&marker=" : "",
                             mk ? mk : "");
                break;
        }
        if (n < 0)
                return -ENOMEM;
        return call_send(k, "GET", url, k->kind != CALL_IMAGE && k->kind != CALL_NETWORK, t, true);
}

/* Fill K's error from a failed HTTP exchange and return the errno. */
static int call_http_error(struct cloud_call *k, struct http_request *req, const struct http_response *resp) {
        const char *url = http_request_get_url(req);
        const char *path = url;
        struct cloud *c = k->cloud;

        /* Messages name the path, not the whole endpoint URL. */
        if (c->compute_url && strncmp(url, c->compute_url, strlen(c->compute_url)) == 0)
                path = url + strlen(c->compute_url);
        else if (c->image_url && strncmp(url, c->image_url, strlen(c->image_url)) == 0)
                path = url + strlen(c->image_url);
        else if (c->network_url && strncmp(url, c->network_url, strlen(c->network_url)) == 0)
                path = url + strlen(c->network_url);

        os_error_clear(&k->err);
        k->err.status = resp->status;
        (void) os_error_set_request_id(&k->err, resp->request_id);
        if (resp->error < 0)
                return os_error_set(&k->err, resp->error, "%s %s: %s", http_request_get_method(req), path,
                                    resp->error_text);
        (void) os_error_from_body(&k->err, resp->body, resp->body_size);
        return status_to_errno(resp->status, k->err.message);
}

static uint64_t create_backoff(struct cloud_call *k, const struct http_response *resp) {
        if (resp->retry_after_usec > 0)
                return resp->retry_after_usec;
        return backoff_jitter(k->cloud, k->posts, RETRY_MAX_USEC);
}

/* The deadline leaves room for DELAY more. */
static bool call_has_time(struct cloud_call *k, uint64_t delay) {
        return now_mono(k->cloud) + delay < k->deadline;
}

static bool server_is_ours(struct cloud_call *k, const struct nova_server *s) {
        const char *cl = nova_server_metadata_get(s, CLOUD_META_CLUSTER);
        const char *node = nova_server_metadata_get(s, CLOUD_META_NODE);
        const char *op = nova_server_metadata_get(s, CLOUD_META_OP);

        if (!s->name || strcmp(s->name, k->arg) != 0)
                return false;
        if (!cl || strcmp(cl, k->cloud->cluster) != 0 || !node || strcmp(node, k->node) != 0)
                return false;
        return !k->op || (op && strcmp(op, k->op) == 0);
}

/* Look the server of an unclear POST up (again) later, if the deadline allows. */
static bool create_look_again(struct cloud_call *k) {
        struct cloud *c = k->cloud;
        unsigned n = k->retries < 3 ? k->retries : 3;
        uint64_t delay = c->opts.create_recheck_usec << n;

        if (delay > RETRY_MAX_USEC)
                delay = RETRY_MAX_USEC;
        if (!call_has_time(k, delay))
                return false;
        k->retries++;
        k->step = STEP_LOOKUP;
        return call_later(k, delay, false, 0) >= 0;
}

/* A POST is never sent twice unless the first one is known not to have
 * created a server: refused (nothing sent, 429, 401), or answered and then
 * not found by name and metadata. After a timeout (ours, or a proxy's 504)
 * Nova may still be working on it: look it up until create_settle_usec
 * passed, and only then POST again. */
static void create_done(struct cloud_call *k, struct http_request *req, const struct http_response *resp) {
        struct cloud *c = k->cloud;
        int r;

        if (k->step == STEP_LOOKUP) {
                _cleanup_(nova_server_page_freep) struct nova_server_page *p = NULL;

                if (resp->error == 0 && resp->status == 200)
                        r = nova_parse_server_page(resp->body, resp->body_size, &p, &k->err);
                else
                        r = call_http_error(k, req, resp);
                if (r < 0) {
                        /* Never POST again without knowing: look again, until the deadline. */
                        if (create_look_again(k))
                                return;
                        (void) os_error_set(&k->err, -EIO, "create of %s: outcome unknown, the lookup failed: %s",
                                            k->arg, k->err.message ? k->err.message : strerror(-r));
                        call_finish(k, -EIO);
                        return;
                }
                for (size_t i = 0; i < p->n_servers; i++)
                        if (server_is_ours(k, p->servers[i])) {
                                k->result_id = strdup(p->servers[i]->id);
                                if (!k->result_id) {
                                        call_finish(k, -ENOMEM);
                                        return;
                                }
                                k->adopted = true;
                                c->stats.create_adopted++;
                                os_error_clear(&k->err);
                                call_finish(k, 0);
                                return;
                        }
                if (now_mono(c) < k->settle_until) {
                        /* Not there yet, and Nova may still make it. */
                        if (create_look_again(k))
                                return;
                        (void) os_error_set(&k->err, -EIO, "create of %s: outcome unknown: the POST timed out "
                                            "and no server showed up by the deadline", k->arg);
                        call_finish(k, -EIO);
                        return;
                }
                /* Not created: POST again, if attempts and time remain. */
                if (k->posts >= c->opts.create_attempts || !call_has_time(k, 0)) {
                        (void) os_error_set(&k->err, k->post_error, "create of %s: not created after %u attempts, "
                                            "the last: %s", k->arg, k->posts,
                                            k->err.message ? k->err.message : strerror(-k->post_error));
                        call_finish(k, k->post_error);
                        return;
                }
                k->step = STEP_MAIN;
                r = call_run(k);
                if (r < 0)
                        call_finish(k, r);
                return;
        }

        if (resp->error == 0 && resp->status == 202) {
                r = nova_parse_server_created(resp->body, resp->body_size, &k->result_id, &k->err);
                if (r >= 0) {
                        os_error_clear(&k->err);
                        (void) os_error_set_request_id(&k->err, resp->request_id);
                        k->err.status = resp->status;
                        call_finish(k, 0);
                        return;
                }
                /* Created, but the answer is unreadable: find it. */
                k->post_error = r;
        } else
                k->post_error = call_http_error(k, req, resp);

        bool not_sent = resp->error == -ECONNREFUSED || resp->error == -EHOSTUNREACH;
        bool refused = resp->error == 0 && resp->status == 429;
        bool unclear = (resp->error < 0 && !not_sent && resp->error != -EKEYREJECTED && resp->error != -EINVAL &&
                        resp->error != -ENOMEM) ||
                       (resp->error == 0 && (resp->status >= 500 || resp->status == 202));

        if (not_sent || refused) {
                uint64_t delay = create_backoff(k, resp);

                if (k->posts < c->opts.create_attempts && call_has_time(k, delay) &&
                    call_later(k, delay, false, 0) >= 0)
                        return;
                call_finish(k, k->post_error);
                return;
        }
        if (unclear) {
                /* "Maybe created": look before POSTing again. */
                if (resp->error == -ETIMEDOUT || resp->status == 504)
                        k->settle_until = now_mono(c) + (c->opts.create_settle_usec ? c->opts.create_settle_usec
                                                                                     : 4 * c->opts.create_timeout_usec);
                k->retries = 0;
                if (create_look_again(k))
                        return;
                (void) os_error_set(&k->err, -EIO, "create of %s: outcome unknown at the deadline: %s", k->arg,
                                    k->err.message ? k->err.message : strerror(-k->post_error));
                call_finish(k, -EIO);
                return;
        }
        call_finish(k, k->post_error);
}

/* A transient failure (doc/failures.md) of a request that is safe to send
 * again, beyond the HTTP engine's own retries: again after a backoff, while
 * the call's deadline allows. A POST that changes something (reboot,
 * rebuild) only when nothing was done: not sent, or 429. */
static bool call_retry_transient(struct cloud_call *k, const struct http_response *resp) {
        struct cloud *c = k->cloud;
        struct os_error e = { .status = resp->status };
        uint64_t delay;
        int error;

        if (resp->error == 0 && resp->status < 400)
                return false;
        error = resp->error < 0 ? resp->error : status_to_errno(resp->status, NULL);
        /* 409: the caller polls the state itself */
        if (error == -EBUSY || !os_failure_is_transient(error, &e))
                return false;
        if ((k->kind == CALL_REBOOT || k->kind == CALL_REBUILD) &&
            !(resp->error == -ECONNREFUSED || resp->error == -EHOSTUNREACH || resp->status == 429))
                return false;
        delay = resp->retry_after_usec > 0 ? resp->retry_after_usec : backoff_jitter(c, k->retries, RETRY_MAX_USEC);
        if (!call_has_time(k, delay))
                return false;
        k->retries++;
        c->stats.call_retries++;
        log_req(LOG_DEBUG, k->label, "cloud: call %" PRIu64 ": %s %ld, again in %" PRIu64 " ms", k->id,
                resp->error < 0 ? resp->error_text : "HTTP", resp->status, delay / USEC_PER_MSEC);
        return call_later(k, delay, false, 0) >= 0;
}

/* A listed server the call keeps: this cluster's (and NAME's, if given);
 * in a changes-since list also any deleted one (Nova leaves it no metadata:
 * its id tells whose it was). */
static bool page_keeps(struct cloud_call *k, const struct nova_server *s) {
        const char *cl = nova_server_metadata_get(s, CLOUD_META_CLUSTER);

        if (k->delta && s->status && strcmp(s->status, "DELETED") == 0)
                return true;
        return cl && strcmp(cl, k->cloud->cluster) == 0 && (!k->arg || strcmp(s->name, k->arg) == 0);
}

static int page_append(struct cloud_call *k, struct nova_server_page *p) {
        size_t n = 0;

        for (size_t i = 0; i < p->n_servers; i++)
                n += page_keeps(k, p->servers[i]);
        if (n == 0)
                return 0;
        struct nova_server **a = realloc(k->servers, (k->n_servers + n) * sizeof(*a));
        if (!a)
                return -ENOMEM;
        k->servers = a;
        for (size_t i = 0; i < p->n_servers; i++)
                if (page_keeps(k, p->servers[i]))
                        k->servers[k->n_servers++] = TAKE_PTR(p->servers[i]);
        return 0;
}

static enum cloud_lookup_kind resolve_cache_kind(enum call_kind kind) {
        return kind == CALL_FLAVOR ? CLOUD_LOOKUP_FLAVOR : kind == CALL_IMAGE ? CLOUD_LOOKUP_IMAGE : CLOUD_LOOKUP_NETWORK;
}

static int found_add(struct cloud_call *k, const char *id) {
        char **a = realloc(k->found_ids, (k->n_found + 1) * sizeof(*a));
        if (!a)
                return -ENOMEM;
        k->found_ids = a;
        if (!(a[k->n_found] = strdup(id)))
                return -ENOMEM;
        k->n_found++;
        return 0;
}

/* After the last page of a name search: exactly one match resolves. */
static void resolve_finish(struct cloud_call *k, const char *what) {
        if (k->n_found == 0) {
                (void) os_error_set(&k->err, -ENOENT, "no %s named %s'%s'", what,
                                    k->kind == CALL_NETWORK ? "" : "or with id ", k->arg);
                call_finish(k, -ENOENT);
                return;
        }
        if (k->n_found > 1) {
                (void) os_error_set(&k->err, -ENOTUNIQ, "%zu %ss are named '%s' (%s, %s%s): use the id", k->n_found,
                                    what, k->arg, k->found_ids[0], k->found_ids[1], k->n_found > 2 ? ", ..." : "");
                call_finish(k, -ENOTUNIQ);
                return;
        }
        k->result_id = TAKE_PTR(k->found_ids[0]);
        k->n_found = 0;
        cache_put(k->cloud, resolve_cache_kind(k->kind), k->arg, k->result_id);
        os_error_clear(&k->err);
        call_finish(k, 0);
}

static void next_page(struct cloud_call *k, char **marker) {
        int r;

        free(k->marker);
        k->marker = TAKE_PTR(*marker);
        if (++k->pages >= LIST_PAGES_MAX) {
                (void) os_error_set(&k->err, -E2BIG, "more than %u pages", LIST_PAGES_MAX);
                call_finish(k, -E2BIG);
                return;
        }
        r = call_run(k);
        if (r < 0)
                call_finish(k, r);
}

static void flavor_done(struct cloud_call *k, struct http_request *req, const struct http_response *resp) {
        _cleanup_(nova_flavor_list_freep) struct nova_flavor_list *l = NULL;
        int r;

        if (resp->error == 0 && resp->status == 404 && k->step == STEP_MAIN) {
                /* Not an id: search by name. */
                k->step = STEP_LIST;
                r = call_run(k);
                if (r < 0)
                        call_finish(k, r);
                return;
        }
        if (resp->error < 0 || resp->status != 200) {
                call_finish(k, call_http_error(k, req, resp));
                return;
        }
        r = nova_parse_flavors(resp->body, resp->body_size, &l, &k->err);
        if (r < 0) {
                call_finish(k, r);
                return;
        }
        if (k->step == STEP_MAIN) {
                if (l->n_flavors != 1) {
                        call_finish(k, os_error_set(&k->err, -EBADMSG, "flavor %s: not one flavor", k->arg));
                        return;
                }
                if (found_add(k, l->flavors[0].id) < 0) {
                        call_finish(k, -ENOMEM);
                        return;
                }
                resolve_finish(k, "flavor");
                return;
        }
        for (size_t i = 0; i < l->n_flavors; i++)
                if (l->flavors[i].name && strcmp(l->flavors[i].name, k->arg) == 0 && found_add(k, l->flavors[i].id) < 0) {
                        call_finish(k, -ENOMEM);
                        return;
                }
        if (l->next_marker && l->n_flavors > 0) {
                next_page(k, &l->next_marker);
                return;
        }
        resolve_finish(k, "flavor");
}

static void image_done(struct cloud_call *k, struct http_request *req, const struct http_response *resp) {
        int r;

        if (k->step == STEP_MAIN) {
                _cleanup_(glance_image_freep) struct glance_image *i = NULL;

                if (resp->error == 0 && resp->status == 404) {
                        k->step = STEP_LIST;
                        r = call_run(k);
                        if (r < 0)
                                call_finish(k, r);
                        return;
                }
                if (resp->error < 0 || resp->status != 200) {
                        call_finish(k, call_http_error(k, req, resp));
                        return;
                }
                r = glance_parse_image(resp->body, resp->body_size, &i, &k->err);
                if (r >= 0)
                        r = found_add(k, i->id);
                if (r < 0) {
                        call_finish(k, r);
                        return;
                }
                resolve_finish(k, "image");
                return;
        }

        _cleanup_(glance_image_list_freep) struct glance_image_list *l = NULL;
        if (resp->error < 0 || resp->status != 200) {
                call_finish(k, call_http_error(k, req, resp));
                return;
        }
        r = glance_parse_image_list(resp->body, resp->body_size, &l, &k->err);
        if (r < 0) {
                call_finish(k, r);
                return;
        }
        for (size_t i = 0; i < l->n_images; i++)
                if (l->images[i].name && strcmp(l->images[i].name, k->arg) == 0 &&
                    (!l->images[i].status || strcmp(l->images[i].status, "active") == 0) &&
                    found_add(k, l->images[i].id) < 0) {
                        call_finish(k, -ENOMEM);
                        return;
                }
        if (l->next_marker && l->n_images > 0) {
                next_page(k, &l->next_marker);
                return;
        }
        resolve_finish(k, "image");
}

static void network_done(struct cloud_call *k, struct http_request *req, const struct http_response *resp) {
        _cleanup_(neutron_network_list_freep) struct neutron_network_list *l = NULL;
        int r;

        if (resp->error < 0 || resp->status != 200) {
                call_finish(k, call_http_error(k, req, resp));
                return;
        }
        r = neutron_parse_network_list(resp->body, resp->body_size, &l, &k->err);
        if (r < 0) {
                call_finish(k, r);
                return;
        }
        /* The filter is server-side; check the names anyway. */
        for (size_t i = 0; i < l->n_networks; i++)
                if (l->networks[i].name && strcmp(l->networks[i].name, k->arg) == 0 &&
                    found_add(k, l->networks[i].id) < 0) {
                        call_finish(k, -ENOMEM);
                        return;
                }
        if (l->next_marker && l->n_networks > 0) {
                next_page(k, &l->next_marker);
                return;
        }
        resolve_finish(k, "network");
}

static size_t method_index(const char *m) {
        static const char *const methods[] = { "GET", "POST", "PUT", "DELETE" };
        for (size_t i = 0; i < ELEMENTSOF(methods); i++)
                if (strcmp(m, methods[i]) == 0)
                        return i;
        return 4;
}

static void view_expire_arm(struct cloud *c);

static void call_http_done(struct http_request *req, const struct http_response *resp, void *userdata) {
        struct cloud_call *k = userdata;
        struct cloud *c = k->cloud;
        size_t cls = resp->error < 0 ? 4 : resp->status >= 200 && resp->status < 600 ? (size_t) (resp->status / 100 - 2) : 4;
        int r;

        c->stats.http[method_index(http_request_get_method(req))][cls]++;
        /* The engine pins REQ for this callback; drop the call's own reference. */
        k->req = http_request_unref(k->req);

        if (resp->error == -EKEYEXPIRED) {
                /* Not sent: the token ran out while the request was queued. */
                call_resend(k);
                return;
        }
        if (resp->error == 0 && resp->status == 401 &&
            (k->token_gen != c->token_gen || k->token_stale || !k->reauthed)) {
                /* The token expired or was revoked. A 401 means nothing was
                 * done, so sending again is safe for a POST, too: with the
                 * newer token if there is one by now, else after fetching
                 * one (once: a fresh token refused means bad credentials). */
                if (k->token_gen == c->token_gen) {
                        k->reauthed = !k->token_stale;
                        c->stats.reauths_on_401++;
                        c->token_until = c->token_expires = 0;
                }
                call_resend(k);
                return;
        }
        if (resp->error < 0 || resp->status != 401)
                k->reauthed = false;
        if (k->kind != CALL_CREATE && call_retry_transient(k, resp))
                return;

        switch (k->kind) {
        case CALL_CREATE:
                create_done(k, req, resp);
                return;
        case CALL_SHOW:
                if (resp->error == 0 && resp->status == 200) {
                        r = nova_parse_server(resp->body, resp->body_size, &k->server, &k->err);
                        if (r >= 0) {
                                os_error_clear(&k->err);
                                (void) os_error_set_request_id(&k->err, resp->request_id);
                                k->err.status = resp->status;
                        }
                        call_finish(k, r < 0 ? r : 0);
                } else {
                        /* Gone: no list answer from before may say otherwise. */
                        if (resp->error == 0 && resp->status == 404 &&
                            server_view_gone(&c->view, k->arg, now_mono(c)) >= 0)
                                view_expire_arm(c);
                        call_finish(k, call_http_error(k, req, resp));
                }
                return;
        case CALL_LIST: {
                _cleanup_(nova_server_page_freep) struct nova_server_page *p = NULL;

                if (resp->error < 0 || resp->status != 200) {
                        call_finish(k, call_http_error(k, req, resp));
                        return;
                }
                c->stats.list_pages++;
                c->stats.list_bytes += resp->body_size;
                if (k->pages == 0)
                        k->list_date = resp->date;
                r = nova_parse_server_page(resp->body, resp->body_size, &p, &k->err);
                if (r >= 0)
                        r = page_append(k, p);
                if (r < 0) {
                        call_finish(k, r);
                        return;
                }
                if (p->next_marker && p->n_servers > 0) {
                        next_page(k, &p->next_marker);
                        return;
                }
                os_error_clear(&k->err);
                (void) os_error_set_request_id(&k->err, resp->request_id);
                k->err.status = resp->status;
                call_finish(k, 0);
                return;
        }
        case CALL_DELETE:
        case CALL_REBOOT:
        case CALL_REBUILD:
                if (resp->error == 0 && k->kind == CALL_DELETE && resp->status == 404) {
                        if (server_view_gone(&c->view, k->arg, now_mono(c)) >= 0)
                                view_expire_arm(c);
                }
                else if (resp->error == 0 && k->kind == CALL_DELETE && resp->status < 300)
                        server_view_forget(&c->view, k->arg);
                if (resp->error == 0 && (resp->status == 202 || resp->status == 204 ||
                                         (k->kind == CALL_DELETE && resp->status == 404))) {
                        os_error_clear(&k->err);
                        (void) os_error_set_request_id(&k->err, resp->request_id);
                        k->err.status = resp->status;
                        call_finish(k, 0);
                } else
                        call_finish(k, call_http_error(k, req, resp));
                return;
        case CALL_CONSOLE:
                if (resp->error == 0 && resp->status == 200) {
                        int e = nova_parse_console(resp->body, resp->body_size, &k->console, &k->err);
                        if (e < 0) {
                                call_finish(k, e);
                                return;
                        }
                        os_error_clear(&k->err);
                        (void) os_error_set_request_id(&k->err, resp->request_id);
                        k->err.status = resp->status;
                        call_finish(k, 0);
                } else
                        call_finish(k, call_http_error(k, req, resp));
                return;
        case CALL_FLAVOR:
                flavor_done(k, req, resp);
                return;
        case CALL_IMAGE:
                image_done(k, req, resp);
                return;
        case CALL_NETWORK:
                network_done(k, req, resp);
                return;
        }
}

/* ---- public ---- */

int cloud_new(sd_event *event, struct cloud_config *config, const struct cloud_options *opts,
              struct cloud **ret, char **ret_error) {
        struct cloud *c;
        struct http_options h;
        struct os_error err = {};
        _cleanup_free_ char *url = NULL;
        char *body = NULL;
        int r;

        if (!event || !config || !opts || !ret)
                return -EINVAL;
        if (!opts->cluster || !*opts->cluster || strpbrk(opts->cluster, "/,") || strlen(opts->cluster) > 50) {
                if (ret_error)
                        *ret_error = strdup("cluster name must be 1-50 characters without '/' or ','");
                return -EINVAL;
        }
        /* Check the credentials are complete now rather than at the first call. */
        r = keystone_tokens_url(config, &url, &err);
        if (r >= 0)
                r = keystone_auth_body(config, &body, &err);
        body = keystone_auth_body_free(body);
        if (r < 0) {
                if (ret_error)
                        *ret_error = os_error_to_string(&err);
                os_error_clear(&err);
                return r;
        }

        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->n_ref = 1;
        c->event = sd_event_ref(event);
        c->opts = *opts;
        c->opts.cluster = NULL;
        if (!c->opts.api_timeout_usec)
                c->opts.api_timeout_usec = 60 * USEC_PER_SEC;
        if (!c->opts.create_timeout_usec)
                c->opts.create_timeout_usec = 120 * USEC_PER_SEC;
        if (!c->opts.create_recheck_usec)
                c->opts.create_recheck_usec = 5 * USEC_PER_SEC;
        if (!c->opts.create_attempts)
                c->opts.create_attempts = UINT_MAX;
        if (!c->opts.retry_deadline_usec)
                c->opts.retry_deadline_usec = 600 * USEC_PER_SEC;
        if (!c->opts.max_calls)
                c->opts.max_calls = 1024;
        if (!c->opts.token_margin_usec)
                c->opts.token_margin_usec = 300 * USEC_PER_SEC;
        if (!c->opts.cache_ttl_usec)
                c->opts.cache_ttl_usec = 600 * USEC_PER_SEC;
        if (!c->opts.page_size)
                c->opts.page_size = 1000;
        if (!c->opts.list_full_usec)
                c->opts.list_full_usec = 60 * USEC_PER_SEC;
        if (!c->opts.list_margin_usec)
                c->opts.list_margin_usec = 30 * USEC_PER_SEC;

        r = -ENOMEM;
        c->cluster = strdup(opts->cluster);
        if (!c->cluster || asprintf(&c->tag, "elasticd.%s", opts->cluster) < 0) {
                c->tag = NULL;
                goto fail;
        }
        r = sd_event_add_defer(event, &c->auth_fail, on_auth_fail, c);
        if (r < 0)
                goto fail;
        (void) sd_event_source_set_enabled(c->auth_fail, SD_EVENT_OFF);
        r = sd_event_add_defer(event, &c->renew, on_renew, c);
        if (r < 0)
                goto fail;
        (void) sd_event_source_set_enabled(c->renew, SD_EVENT_OFF);
        if (getrandom(&c->rng, sizeof(c->rng), GRND_NONBLOCK) != sizeof(c->rng))
                c->rng = (uint64_t) time(NULL) ^ ((uint64_t) getpid() << 32);
        c->rng |= 1;

        /* Each call has at most one request queued: room for all of them, plus auth. */
        h = opts->http;
        h.ca_pem = config->cacert_pem;
        h.ca_pem_len = config->cacert_pem_len;
        h.insecure = !config->verify;
        h.timeout_usec = c->opts.api_timeout_usec;
        if (h.max_queued < c->opts.max_calls + 1)
                h.max_queued = c->opts.max_calls + 1;
        r = http_engine_new(event, &h, &c->http);
        if (r < 0)
                goto fail;

        /* Ours from here: cloud_destroy frees it. */
        c->config = config;
        r = -ENOMEM;
        for (size_t i = 0; i < ELEMENTSOF(c->own_override); i++) {
                const char *v = *override_field(config, i);
                if (v && !(c->own_override[i] = strdup(v)))
                        goto fail_config;
        }
        r = endpoints_apply(c, &opts->endpoints, NULL);
        if (r < 0)
                goto fail_config;
        scope_compute(c);
        *ret = c;
        return 0;
fail_config:
        /* The caller keeps CONFIG on failure. */
        c->config = NULL;
fail:
        cloud_destroy(c);
        return r;
}

int cloud_apply_config(struct cloud *c, const struct cloud_options *opts, char **ret_error) {
        struct http_options h;
        bool changed = false;
        int r;

        if (!c || !opts)
                return -EINVAL;
        if (!opts->cluster || strcmp(opts->cluster, c->cluster) != 0) {
                if (ret_error && asprintf(ret_error, "the cluster is \"%s\" (the tag of its instances): "
                                          "a new name needs a restart", c->cluster) < 0)
                        *ret_error = NULL;
                return -EINVAL;
        }
        h = opts->http;
        h.timeout_usec = opts->api_timeout_usec ? opts->api_timeout_usec : 60 * USEC_PER_SEC;
        r = http_engine_set_limits(c->http, &h);
        if (r < 0)
                return r;
        c->opts.api_timeout_usec = h.timeout_usec;
        c->opts.create_timeout_usec = opts->create_timeout_usec ? opts->create_timeout_usec : 120 * USEC_PER_SEC;

        r = endpoints_apply(c, &opts->endpoints, &changed);
        if (r < 0)
                return r;
        if (changed) {
                /* The next call authenticates, finds its endpoints and checks the compute API again. */
                c->token_until = c->token_expires = 0;
                c->version_ok = false;
                cache_clear(c, true);
                scope_compute(c);
                server_view_clear(&c->view);
                log_debug("cloud: endpoint overrides changed; a new token will be fetched");
        }
        return 0;
}

struct cloud *cloud_free(struct cloud *c) {
        if (!c)
                return NULL;
        c->shut_down = true;
        c->batch_defer = sd_event_source_disable_unref(c->batch_defer);
        c->view_expire = sd_event_source_disable_unref(c->view_expire);
        while (c->calls) {
                struct cloud_call *k = c->calls;
                call_unlink(k);
                k->cloud = NULL;
                call_free(k);
        }
        if (c->auth_req) {
                http_request_cancel(c->auth_req);
                c->auth_req = http_request_unref(c->auth_req);
        }
        if (c->version_req) {
                http_request_cancel(c->version_req);
                c->version_req = http_request_unref(c->version_req);
        }
        (void) sd_event_source_set_enabled(c->auth_fail, SD_EVENT_OFF);
        (void) sd_event_source_set_enabled(c->auth_retry, SD_EVENT_OFF);
        (void) sd_event_source_set_enabled(c->renew, SD_EVENT_OFF);
        http_engine_cancel_all(c->http);
        cloud_unpin(c);
        return NULL;
}

void cloud_get_stats(const struct cloud *c, struct cloud_stats *ret) {
        if (!c || !ret)
                return;
        *ret = c->stats;
        ret->calls_active = c->n_calls;
        http_engine_get_stats(c->http, &ret->transport);
}

/* Start K, or free it and return why not. */
static int call_start(struct cloud_call *k, uint64_t *ret_call_id) {
        struct cloud *c = k->cloud;
        uint64_t id = k->id;
        int r;

        r = call_run(k);
        if (r < 0) {
                call_unlink(k);
                k->cloud = NULL;
                call_free(k);
                return r;
        }
        c->stats.calls_started++;
        if (ret_call_id)
                *ret_call_id = id;
        return 0;
}

/* K cannot be sent (bad input): report ERROR and K's message through the
 * callback, like every other failure. */
static int call_fail_later(struct cloud_call *k, int error, uint64_t *ret_call_id) {
        struct cloud *c = k->cloud;
        int r = call_later(k, 0, true, error);

        if (r < 0) {
                call_unlink(k);
                k->cloud = NULL;
                call_free(k);
                return r;
        }
        c->stats.calls_started++;
        if (ret_call_id)
                *ret_call_id = k->id;
        return 0;
}

static int call_set_label(struct cloud_call *k, const char *what, const char *arg) {
        if (asprintf(&k->label, "%s %s", what, arg ? arg : "") < 0) {
                k->label = NULL;
                return -ENOMEM;
        }
        return 0;
}

static int simple_call(struct cloud *c, enum call_kind kind, const char *what, const char *arg, cloud_callback_t cb,
                       void *userdata, uint64_t *ret_call_id, struct cloud_call **ret) {
        struct cloud_call *k = NULL;
        int r;

        if (!c || !cb || (arg && !*arg))
                return -EINVAL;
        r = call_new(c, kind, cb, userdata, &k);
        if (r < 0)
                return r;
        if ((arg && !(k->arg = strdup(arg))) || call_set_label(k, what, arg) < 0) {
                call_unlink(k);
                k->cloud = NULL;
                call_free(k);
                return -ENOMEM;
        }
        if (ret) {
                *ret = k;
                return 0;
        }
        return call_start(k, ret_call_id);
}

/* A batched show goes out on its own after all: send it, or fail it from the loop. */
static void batch_send_one(struct cloud_call *k) {
        int r;

        k->batched = k->in_list = false;
        k->cloud->n_batched--;
        r = call_run(k);
        if (r < 0 && call_later(k, 0, true, r) < 0)
                log_req(LOG_ERR, k->label, "cloud: call %" PRIu64 " cannot be delivered", k->id);
}

static bool server_lacks_fault(const struct nova_server *s) {
        return s->status && strcmp(s->status, "ERROR") == 0 && !(s->fault && s->fault->message);
}

/* How long the view keeps a server nobody asked about and that did not change. */
static uint64_t view_keep_usec(const struct cloud *c) {
        return 2 * c->opts.list_full_usec;
}

static int on_view_expire(sd_event_source *s, uint64_t usec, void *userdata) {
        struct cloud *c = userdata;
        uint64_t now = now_mono(c);

        server_view_expire(&c->view, now > view_keep_usec(c) ? now - view_keep_usec(c) : 0);
        if (c->view.n_entries > 0 && sd_event_source_set_time(s, now + view_keep_usec(c)) >= 0)
                (void) sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
        return 0;
}

/* Empty the view once idle, so what a wave watched does not stay in memory. */
static void view_expire_arm(struct cloud *c) {
        uint64_t when = now_mono(c) + view_keep_usec(c);

        if (c->view.n_entries == 0)
                return;
        if (!c->view_expire) {
                if (sd_event_add_time(c->event, &c->view_expire, CLOCK_MONOTONIC, when, USEC_PER_SEC, on_view_expire,
                                      c) < 0)
                        c->view_expire = NULL;
                return;
        }
        (void) sd_event_source_set_time(c->view_expire, when);
        (void) sd_event_source_set_enabled(c->view_expire, SD_EVENT_ONESHOT);
}

/* Answer show K from the view: its server, -ENOENT for a deleted one (as
 * a show of it is answered), or false when the view cannot (not known, or
 * an ERROR without its fault, which Nova's detail list leaves out). */
static bool view_answer(struct cloud_call *k, const char *request_id) {
        struct cloud *c = k->cloud;
        struct server_view_entry *e = server_view_find(&c->view, k->arg);
        struct nova_server *copy = NULL;
        int error = 0;

        if (!e || server_lacks_fault(e->server))
                return false;
        os_error_clear(&k->err);
        if (e->server->status && strcmp(e->server->status, "DELETED") == 0) {
                error = os_error_set(&k->err, -ENOENT, "Instance %s could not be found.", k->arg);
                k->err.status = 404;
        } else {
                if (nova_server_dup(e->server, &copy) < 0)
                        return false;
                k->err.status = 200;
        }
        (void) os_error_set_request_id(&k->err, request_id);
        if (call_later(k, 0, true, error) < 0) {
                nova_server_free(copy);
                return false;
        }
        nova_server_free(k->server);
        k->server = copy;
        k->batched = k->in_list = false;
        c->n_batched--;
        c->stats.shows_from_list++;
        return true;
}

/* The list LK ended (ERROR 0: it holds the cluster's instances now, or
 * those changed since the previous list): the view takes them, and each
 * show the list was for is answered from the view; one it does not know
 * (gone, not tagged), and all of them after a failed list, are sent on
 * their own. */
static void batch_deliver(struct cloud_call *lk, int error) {
        struct cloud *c = lk->cloud;
        _cleanup_free_ const char **asked = NULL;
        uint64_t now = now_mono(c), keep = view_keep_usec(c);
        size_t n = 0, i = 0;

        c->batch_list_running = false;
        for (struct cloud_call *k = c->calls; k; k = k->next)
                n += k->in_list;
        asked = calloc(n + 1, sizeof(*asked));
        if (!asked)
                error = -ENOMEM;
        if (error == 0) {
                for (struct cloud_call *k = c->calls; k; k = k->next) {
                        struct server_view_entry *e;

                        if (!k->in_list)
                                continue;
                        asked[i++] = k->arg;
                        if ((e = server_view_find(&c->view, k->arg)))
                                e->used = now;
                }
                if (server_view_merge(&c->view, lk->servers, lk->n_servers, !lk->delta, (time_t) lk->list_date,
                                      asked, i, now, now > keep ? now - keep : 0) < 0)
                        error = -ENOMEM;
                view_expire_arm(c);
        }
        for (struct cloud_call *k = c->calls, *next; k; k = next) {
                next = k->next;
                if (k->in_list && (error < 0 || !view_answer(k, lk->err.request_id)))
                        batch_send_one(k);
        }
        /* Those made while the list ran form the next batch. */
        if (c->n_batched > 0 && c->batch_defer)
                (void) sd_event_source_set_enabled(c->batch_defer, SD_EVENT_ONESHOT);
}

static void on_batch_list(struct cloud *c, const struct cloud_result *res, void *userdata) {
        /* batch_deliver() took what it needed before this. */
}

static int on_batch(sd_event_source *s, void *userdata) {
        struct cloud *c = userdata;
        unsigned per = c->opts.page_size ? c->opts.page_size : 1;
        bool delta = server_view_can_delta(&c->view, now_mono(c), c->opts.list_full_usec);
        size_t pages = (delta ? c->view.delta_servers : c->view.full_servers) / per + 1;
        struct cloud_call *lk = NULL;

        if (c->batch_list_running || c->n_batched == 0)
                return 0;
        /* A list costs a request per page: only for more shows than that. */
        if (c->n_batched > pages && simple_call(c, CALL_LIST, delta ? "list (polls, changes)" : "list (polls)", NULL,
                                                on_batch_list, c, NULL, &lk) >= 0) {
                lk->feeds_batch = true;
                lk->delta = delta;
                lk->since = c->view.time - (time_t) (c->opts.list_margin_usec / USEC_PER_SEC);
                for (struct cloud_call *k = c->calls; k; k = k->next)
                        if (k->batched)
                                k->in_list = true;
                if (call_run(lk) >= 0) {
                        c->batch_list_running = true;
                        c->stats.calls_started++;
                        c->stats.batch_lists++;
                        c->stats.batch_delta_lists += delta;
                        return 0;
                }
                for (struct cloud_call *k = c->calls; k; k = k->next)
                        k->in_list = false;
                call_unlink(lk);
                lk->cloud = NULL;
                call_free(lk);
        }
        for (struct cloud_call *k = c->calls, *next; k; k = next) {
                next = k->next;
                if (k->batched)
                        batch_send_one(k);
        }
        return 0;
}

int cloud_server_show(struct cloud *c, const char *id, cloud_callback_t cb, void *userdata, uint64_t *ret_call_id) {
        struct cloud_call *k = NULL;
        int r;

        if (!id)
                return -EINVAL;
        r = simple_call(c, CALL_SHOW, "show", id, cb, userdata, NULL, &k);
        if (r < 0)
                return r;
        /* Decided once the loop has nothing more urgent to do: every show
         * made meanwhile (the polls of a wave of building nodes) joins. */
        if (!c->batch_defer) {
                r = sd_event_add_defer(c->event, &c->batch_defer, on_batch, c);
                if (r >= 0)
                        r = sd_event_source_set_priority(c->batch_defer, SD_EVENT_PRIORITY_IDLE);
                if (r < 0) {
                        c->batch_defer = sd_event_source_disable_unref(c->batch_defer);
                        return call_start(k, ret_call_id);
                }
        }
        k->batched = true;
        c->n_batched++;
        if (!c->batch_list_running)
                (void) sd_event_source_set_enabled(c->batch_defer, SD_EVENT_ONESHOT);
        c->stats.calls_started++;
        if (ret_call_id)
                *ret_call_id = k->id;
        return 0;
}


int cloud_servers_list(struct cloud *c, const char *name, cloud_callback_t cb, void *userdata,
                       uint64_t *ret_call_id) {
        return simple_call(c, CALL_LIST, "list", name, cb, userdata, ret_call_id, NULL);
}

int cloud_server_delete(struct cloud *c, const char *id, cloud_callback_t cb, void *userdata, uint64_t *ret_call_id) {
        if (!id)
                return -EINVAL;
        return simple_call(c, CALL_DELETE, "delete", id, cb, userdata, ret_call_id, NULL);
}

int cloud_server_reboot(struct cloud *c, const char *id, bool hard, cloud_callback_t cb, void *userdata,
                        uint64_t *ret_call_id) {
        struct cloud_call *k = NULL;
        int r;

        if (!id)
                return -EINVAL;
        r = simple_call(c, CALL_REBOOT, hard ? "reboot-hard" : "reboot", id, cb, userdata, NULL, &k);
        if (r < 0)
                return r;
        r = nova_server_reboot_body(hard, &k->body);
        if (r < 0) {
                call_unlink(k);
                k->cloud = NULL;
                call_free(k);
                return r;
        }
        return call_start(k, ret_call_id);
}

int cloud_server_console(struct cloud *c, const char *id, unsigned lines, cloud_callback_t cb, void *userdata,
                         uint64_t *ret_call_id) {
        struct cloud_call *k = NULL;
        int r;

        if (!id)
                return -EINVAL;
        r = simple_call(c, CALL_CONSOLE, "console", id, cb, userdata, NULL, &k);
        if (r < 0)
                return r;
        r = nova_server_console_body(lines, &k->body);
        if (r < 0) {
                call_unlink(k);
                k->cloud = NULL;
                call_free(k);
                return r;
        }
        return call_start(k, ret_call_id);
}

int cloud_server_rebuild(struct cloud *c, const char *id, const char *image_id, cloud_callback_t cb, void *userdata,
                         uint64_t *ret_call_id) {
        struct cloud_call *k = NULL;
        int r;

        if (!id || !image_id)
                return -EINVAL;
        r = simple_call(c, CALL_REBUILD, "rebuild", id, cb, userdata, NULL, &k);
        if (r < 0)
                return r;
        r = nova_server_rebuild_body(image_id, &k->body, &k->err);
        if (r < 0)
                return call_fail_later(k, r, ret_call_id);
        return call_start(k, ret_call_id);
}

static int resolve(struct cloud *c, enum call_kind kind, const char *name_or_id, cloud_callback_t cb, void *userdata,
                   uint64_t *ret_call_id) {
        struct cloud_call *k = NULL;
        const char *cached;
        int r;

        if (!name_or_id)
                return -EINVAL;
        r = simple_call(c, kind, kind == CALL_FLAVOR ? "flavor" : kind == CALL_IMAGE ? "image" : "network",
                        name_or_id, cb, userdata, NULL, &k);
        if (r < 0)
                return r;
        /* Nova takes a network uuid, "none" and "auto" as they are. */
        if (kind == CALL_NETWORK && neutron_network_is_literal(name_or_id))
                cached = name_or_id;
        else
                cached = cache_get(c, resolve_cache_kind(kind), name_or_id);
        if (cached) {
                c->stats.lookups_cached++;
                k->result_id = strdup(cached);
                r = k->result_id ? call_later(k, 0, true, 0) : -ENOMEM;
                if (r < 0) {
                        call_unlink(k);
                        k->cloud = NULL;
                        call_free(k);
                        return r;
                }
                c->stats.calls_started++;
                if (ret_call_id)
                        *ret_call_id = k->id;
                return 0;
        }
        /* Glance answers 400 to a malformed id: search by name straight away. */
        if ((kind == CALL_IMAGE && !neutron_is_uuid(name_or_id)) || kind == CALL_NETWORK)
                k->step = STEP_LIST;
        /* The same lookup in flight: wait for its answer. */
        for (struct cloud_call *x = c->calls; x; x = x->next)
                if (x != k && x->kind == kind && !x->leader && !x->timer_delivers && x->arg &&
                    strcmp(x->arg, name_or_id) == 0) {
                        k->leader = x;
                        x->n_followers++;
                        c->stats.calls_started++;
                        c->stats.lookups_merged++;
                        if (ret_call_id)
                                *ret_call_id = k->id;
                        return 0;
                }
        return call_start(k, ret_call_id);
}

int cloud_flavor_resolve(struct cloud *c, const char *name_or_id, cloud_callback_t cb, void *userdata,
                         uint64_t *ret_call_id) {
        return resolve(c, CALL_FLAVOR, name_or_id, cb, userdata, ret_call_id);
}

int cloud_image_resolve(struct cloud *c, const char *name_or_id, cloud_callback_t cb, void *userdata,
                        uint64_t *ret_call_id) {
        return resolve(c, CALL_IMAGE, name_or_id, cb, userdata, ret_call_id);
}

int cloud_network_resolve(struct cloud *c, const char *name_or_id, cloud_callback_t cb, void *userdata,
                          uint64_t *ret_call_id) {
        return resolve(c, CALL_NETWORK, name_or_id, cb, userdata, ret_call_id);
}

static const char *create_meta(const struct nova_create *spec, const char *key) {
        for (size_t i = 0; i < spec->n_metadata; i++)
                if (spec->metadata[i].key && strcmp(spec->metadata[i].key, key) == 0)
                        return spec->metadata[i].value;
        return NULL;
}

int cloud_server_create(struct cloud *c, const struct nova_create *spec, cloud_callback_t cb, void *userdata,
                        uint64_t *ret_call_id) {
        struct cloud_call *k = NULL;
        struct nova_create s;
        const char *cl, *node, *op;
        const char **tags = NULL;
        size_t n_tags = 0;
        int r;

        if (!c || !spec || !cb || !spec->name || !*spec->name)
                return -EINVAL;
        cl = create_meta(spec, CLOUD_META_CLUSTER);
        node = create_meta(spec, CLOUD_META_NODE);
        op = create_meta(spec, CLOUD_META_OP);
        /* Without them a lost reply could never be matched to its server. */
        if (!cl || strcmp(cl, c->cluster) != 0 || !node || !*node)
                return -EINVAL;

        r = simple_call(c, CALL_CREATE, op ? op : "create", spec->name, cb, userdata, NULL, &k);
        if (r < 0)
                return r;
        if (!(k->node = strdup(node)) || (op && !(k->op = strdup(op)))) {
                r = -ENOMEM;
                goto fail;
        }

        /* The cluster tag is what the list filter finds. */
        s = *spec;
        for (; spec->tags && spec->tags[n_tags]; n_tags++)
                ;
        tags = calloc(n_tags + 2, sizeof(*tags));
        if (!tags) {
                r = -ENOMEM;
                goto fail;
        }
        bool tagged = false;
        for (size_t i = 0; i < n_tags; i++) {
                tags[i] = spec->tags[i];
                tagged = tagged || strcmp(spec->tags[i], c->tag) == 0;
        }
        tags[n_tags] = tagged ? NULL : c->tag;
        s.tags = tags;
        r = nova_server_create_body(&s, &k->body, &k->err);
        free(tags);
        if (r < 0)
                return call_fail_later(k, r, ret_call_id);
        return call_start(k, ret_call_id);
fail:
        call_unlink(k);
        k->cloud = NULL;
        call_free(k);
        return r;
}

int cloud_set_deadline(struct cloud *c, uint64_t call_id, uint64_t deadline_usec) {
        if (!c)
                return -EINVAL;
        for (struct cloud_call *k = c->calls; k; k = k->next)
                if (k->id == call_id) {
                        if (deadline_usec > 0)
                                k->deadline = deadline_usec;
                        return 0;
                }
        return -ENOENT;
}

int cloud_cancel(struct cloud *c, uint64_t call_id) {
        if (!c)
                return -EINVAL;
        for (struct cloud_call *k = c->calls; k; k = k->next)
                if (k->id == call_id) {
                        if (k->n_followers > 0) {
                                /* Others wait for this lookup: it goes on, unowned. */
                                k->cb = NULL;
                                k->userdata = NULL;
                                return 0;
                        }
                        if (k->leader)
                                k->leader->n_followers--;
                        if (k->batched)
                                c->n_batched--;
                        call_unlink(k);
                        k->cloud = NULL;
                        call_free(k);
                        return 0;
                }
        return -ENOENT;
}
