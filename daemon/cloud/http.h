/* http.h - asynchronous HTTP requests: libcurl's multi interface driven by one sd-event loop, with limits, a rate and retries. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "util/macro.h"

struct http_engine;
struct http_request;

/* Engine options. A zeroed field means "the default" (given in brackets),
 * except rate, where 0 means unlimited. Strings are copied. */
struct http_options {
        unsigned max_in_flight;        /* transfers at once [16] */
        unsigned max_queued;           /* waiting behind them; beyond that start() says -EBUSY [1024] */
        double rate;                   /* attempts started per second, token bucket [0: unlimited] */
        unsigned burst;                /* bucket depth [max(1, rate)] */
        unsigned max_retries;          /* retries of an idempotent request [4] */
        uint64_t backoff_base_usec;    /* the first retry waits up to this (full jitter) [500 ms] */
        uint64_t backoff_max_usec;     /* ... doubling up to this [30 s] */
        uint64_t retry_after_max_usec; /* a longer Retry-After is clamped to this [120 s]; a 429 or
                                        * 503 with Retry-After also holds the queued requests of
                                        * the same service (http_request_set_service) until then */
        uint64_t timeout_usec;         /* per attempt, whole transfer [60 s] */
        uint64_t connect_timeout_usec; /* TCP + TLS handshake [10 s] */
        size_t max_body_bytes;         /* response body cap: the transfer is aborted beyond it [8 MiB] */
        const char *ca_pem;            /* PEM CA bundle's bytes (read when clouds.yaml was loaded:
                                        * libcurl never opens a file on the loop); NULL: the
                                        * system's trust store */
        size_t ca_pem_len;
        bool insecure;                 /* do not verify the server's certificate (clouds.yaml verify: false) */
        const char *proxy;             /* explicit proxy URL; NULL: none. The http_proxy/https_proxy/
                                        * no_proxy environment is always ignored, so a daemon started from
                                        * a shell behaves like one started by systemd. */
        const char *user_agent;        /* [elasticd/VERSION] */
};

/* The outcome of a request, valid only during its completion callback. */
struct http_response {
        int error;                 /* 0 when an HTTP status arrived; otherwise -ETIMEDOUT, -ECONNREFUSED,
                                    * -ECONNRESET (dropped, empty or truncated reply), -EHOSTUNREACH (DNS),
                                    * -EFBIG (body over the cap), -EKEYREJECTED (TLS handshake/verification),
                                    * -EINVAL (bad URL), -ENOMEM or -EIO */
        long status;               /* HTTP status, 0 when none arrived */
        const char *error_text;    /* libcurl's explanation when error != 0, else "" */
        const char *body;          /* NUL-terminated, never NULL */
        size_t body_size;
        const char *request_id;    /* x-openstack-request-id, else x-compute-request-id; NULL if absent */
        const char *subject_token; /* X-Subject-Token (a secret: never log it); NULL if absent */
        const char *location;      /* Location; NULL if absent */
        uint64_t retry_after_usec; /* Retry-After (seconds or HTTP date), clamped; 0 if absent */
        int64_t date;              /* Date: the server's clock, seconds since the epoch; 0 if absent */
        unsigned attempts;         /* 1 + the retries made */
        uint64_t elapsed_usec;     /* from start() to completion, queueing and backoff included */
};

/* Called once per started request, from the event loop, unless the request
 * was cancelled first. The request is pinned for the call: the callback may
 * unref or cancel any request, start new ones and free the engine. */
typedef void (*http_callback_t)(struct http_request *r, const struct http_response *resp, void *userdata);

struct http_stats {
        unsigned in_flight;          /* transfers running now */
        unsigned queued;             /* waiting for a slot, the rate or a pause */
        unsigned backing_off;        /* waiting to be retried */
        unsigned max_in_flight_seen; /* high-water mark of in_flight */
        uint64_t attempts;           /* transfers started, retries included */
        uint64_t retries;
        uint64_t completed;          /* callbacks made */
        uint64_t transport_errors;   /* attempts that ended without an HTTP status */
        uint64_t throttled;          /* 429 and 503 answers */
        uint64_t rejected;           /* start() refused with -EBUSY */
};

int http_engine_new(sd_event *event, const struct http_options *opts, struct http_engine **ret);
/* Cancel every request (no callback is made), then free the engine once no
 * callback runs. Requests the caller still holds stay valid but cannot start. */
struct http_engine *http_engine_free(struct http_engine *e);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct http_engine *, http_engine_free);

/* Cancel every request of the engine; no callback is made. */
void http_engine_cancel_all(struct http_engine *e);
void http_engine_get_stats(const struct http_engine *e, struct http_stats *ret);
/* A reload: take OPTS's max_in_flight, rate, burst and timeout_usec (zeroed:
 * the defaults, as in http_engine_new; the rest of OPTS is ignored). Running
 * transfers keep what they started with; queued and later ones get the new
 * limits. -EINVAL for a negative rate, -ESHUTDOWN once freed. */
int http_engine_set_limits(struct http_engine *e, const struct http_options *opts);


/* A request for METHOD (GET, POST, PUT, DELETE, HEAD, PATCH) on URL (http or
 * https). GET, HEAD, PUT and DELETE are idempotent and retried on 5xx, 429,
 * connection errors and timeouts; others are never retried unless
 * http_request_set_idempotent() says so. A non-idempotent request also always
 * gets a fresh connection (unless http_request_set_reuse() allows one):
 * libcurl silently re-sends a request whose reused connection turns out dead,
 * and a POST must not be sent twice. */
int http_request_new(struct http_engine *e, const char *method, const char *url, struct http_request **ret);
struct http_request *http_request_ref(struct http_request *r);
struct http_request *http_request_unref(struct http_request *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct http_request *, http_request_unref);

/* Called just before each attempt (the first and every retry) is sent, not
 * when the request is queued: the place to attach a credential that may have
 * been renewed meanwhile (http_request_set_header). It must not start or
 * cancel requests. A negative return ends the request with that error. */
typedef int (*http_prepare_t)(struct http_request *r, void *userdata);
void http_request_set_prepare(struct http_request *r, http_prepare_t prepare, void *userdata);
/* The service (an API: "compute", "identity") the request belongs to: a
 * Retry-After pauses only requests of the same service. Copied. */
int http_request_set_service(struct http_request *r, const char *service);
/* Queue the request ahead of the waiting ones (a token the others need). */
void http_request_set_urgent(struct http_request *r, bool urgent);
/* Replace every "NAME:" header (case-insensitive) with "NAME: VALUE". */
int http_request_set_header(struct http_request *r, const char *name, const char *value);

/* Add "NAME: VALUE"; an empty VALUE stops libcurl sending a header it would
 * add itself. Values of secret headers (X-Auth-Token, X-Subject-Token,
 * Authorization, Cookie, ...) never reach the debug log. */
int http_request_add_header(struct http_request *r, const char *name, const char *value);
/* The body is copied. A secret body (credentials) is never logged; others are
 * not logged either, only their size. */
int http_request_set_body(struct http_request *r, const void *data, size_t size, bool secret);
void http_request_set_timeout(struct http_request *r, uint64_t usec);
void http_request_set_max_body(struct http_request *r, size_t bytes);
void http_request_set_idempotent(struct http_request *r, bool idempotent);
/* A non-idempotent request may go on a kept-alive connection, saving a
 * connection set-up (a TLS handshake on https) per request. libcurl's own
 * re-send when that connection turns out dead is refused: the request ends
 * with -ECONNRESET as if the answer was lost, and the caller, which must be
 * able to find out whether it took effect (a create looks its server up),
 * decides. */
void http_request_set_reuse(struct http_request *r, bool reuse);
/* A label for the debug log (an operation id). Copied. */
int http_request_set_label(struct http_request *r, const char *label);

/* Queue the request. The engine holds a reference until the callback returned
 * or the request was cancelled, so the caller may drop its own right away.
 * -EBUSY: the queue is full (backpressure); -EALREADY: started before;
 * -ESHUTDOWN: the engine is gone. */
int http_request_start(struct http_request *r, http_callback_t cb, void *userdata);
/* Stop the request wherever it is; its callback will not be called. */
void http_request_cancel(struct http_request *r);
bool http_request_is_pending(const struct http_request *r);
const char *http_request_get_method(const struct http_request *r);
const char *http_request_get_url(const struct http_request *r);

/* Whether a header's value is a secret that must not be logged. */
bool http_header_is_secret(const char *name);
/* Parse a Retry-After value (delta seconds or an HTTP date) relative to NOW
 * (seconds since the epoch). 0 and the delay, or -EINVAL. */
int http_parse_retry_after(const char *value, int64_t now, uint64_t *ret_usec);
