/* http.c - libcurl multi driven by sd-event: queue, concurrency cap, token bucket, retries. */
#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include "config-build.h"
#include "cloud/http.h"
#include "util/log.h"

#define USEC_PER_SEC UINT64_C(1000000)
#define USEC_PER_MSEC UINT64_C(1000)

enum request_state {
        REQUEST_NEW,
        REQUEST_QUEUED,     /* in e->queue */
        REQUEST_RUNNING,    /* in e->running, easy handle in the multi */
        REQUEST_FINISHING,  /* in e->finishing, waiting for its callback */
        REQUEST_BACKOFF,    /* in e->backoff, retry timer armed */
        REQUEST_DONE,       /* callback made or cancelled */
};

struct request_list {
        struct http_request *head, *tail;
        unsigned n;
};

/* A service that answered 429/503 with Retry-After: its requests wait until then. */
struct http_pause {
        char *service;
        uint64_t until;
        struct http_pause *next;
};

/* One socket libcurl asked us to watch. */
struct http_watch {
        struct http_engine *engine;
        sd_event_source *source;
        struct http_watch *prev, *next;
};

struct http_engine {
        unsigned n_ref;              /* the owner's, plus pins while callbacks run */
        bool shut_down;
        sd_event *event;
        CURLM *multi;
        sd_event_source *curl_timer;
        sd_event_source *curl_now;       /* libcurl's timeout of 0: "at once", without a timerfd */
        sd_event_source *dispatch_timer; /* wakes the queue when the rate or a pause allows */
        sd_event_source *finish_defer;   /* delivers completions outside the caller's stack */

        struct http_options opts;
        char *ca_pem, *proxy, *user_agent;
        size_t ca_pem_len;

        struct request_list queue, running, finishing, backoff;
        struct http_request *all;        /* every request object, to detach them on free */
        struct http_watch *watches;

        double tokens;
        uint64_t tokens_at;
        struct http_pause *pauses;       /* after a 429/503 with Retry-After, per service */
        uint64_t rng;

        struct http_stats stats;
};

struct http_request {
        unsigned n_ref;
        struct http_engine *engine;
        struct http_request *all_prev, *all_next;
        struct http_request *prev, *next; /* in the list of its state */
        enum request_state state;

        char *method, *url, *label;
        char *service;             /* what a Retry-After pauses ("" by default) */
        http_prepare_t prepare;
        void *prepare_userdata;
        bool urgent;               /* queued ahead of the others */
        struct curl_slist *headers;
        char *body;
        size_t body_size;
        bool body_secret;
        uint64_t timeout_usec;
        size_t max_body;
        bool idempotent;
        bool reuse;                /* non-idempotent, yet on a kept-alive connection */

        http_callback_t callback;
        void *userdata;

        /* the current attempt */
        CURL *easy;
        char errbuf[CURL_ERROR_SIZE];
        CURLcode result;
        int error;                 /* set when the attempt could not even start */
        char *resp_body;
        size_t resp_size, resp_alloc;
        bool too_big;
        char *request_id, *subject_token, *location;
        uint64_t retry_after_usec;
        bool has_retry_after;
        unsigned n_sends;          /* libcurl about to send this attempt: 1, more when it re-sends */
        bool resend_refused;
        int64_t date;              /* the Date header, seconds since the epoch; 0 if absent */

        unsigned attempts;
        uint64_t started_usec;
        sd_event_source *retry_timer;
};

static void list_append(struct request_list *l, struct http_request *r) {
        r->prev = l->tail;
        r->next = NULL;
        if (l->tail)
                l->tail->next = r;
        else
                l->head = r;
        l->tail = r;
        l->n++;
}

static void list_prepend(struct request_list *l, struct http_request *r) {
        r->prev = NULL;
        r->next = l->head;
        if (l->head)
                l->head->prev = r;
        else
                l->tail = r;
        l->head = r;
        l->n++;
}

static void list_remove(struct request_list *l, struct http_request *r) {
        if (r->prev)
                r->prev->next = r->next;
        else
                l->head = r->next;
        if (r->next)
                r->next->prev = r->prev;
        else
                l->tail = r->prev;
        r->prev = r->next = NULL;
        l->n--;
}

static uint64_t now_usec(struct http_engine *e) {
        uint64_t t = 0;

        if (sd_event_now(e->event, CLOCK_MONOTONIC, &t) < 0) {
                struct timespec ts;
                clock_gettime(CLOCK_MONOTONIC, &ts);
                t = (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / 1000;
        }
        return t;
}

/* xorshift64*: only for backoff jitter, no security role. */
static uint64_t engine_random(struct http_engine *e) {
        e->rng ^= e->rng >> 12;
        e->rng ^= e->rng << 25;
        e->rng ^= e->rng >> 27;
        return e->rng * UINT64_C(2685821657736338717);
}

static void engine_pin(struct http_engine *e) {
        e->n_ref++;
}

static void engine_destroy(struct http_engine *e) {
        /* libcurl may report sockets it no longer needs while cleaning up. */
        if (e->multi)
                curl_multi_cleanup(e->multi);
        while (e->watches) {
                struct http_watch *w = e->watches;
                e->watches = w->next;
                sd_event_source_disable_unref(w->source);
                free(w);
        }
        sd_event_source_disable_unref(e->curl_timer);
        sd_event_source_disable_unref(e->curl_now);
        sd_event_source_disable_unref(e->dispatch_timer);
        sd_event_source_disable_unref(e->finish_defer);
        sd_event_unref(e->event);
        free(e->ca_pem);
        free(e->proxy);
        free(e->user_agent);
        while (e->pauses) {
                struct http_pause *p = e->pauses;
                e->pauses = p->next;
                free(p->service);
                free(p);
        }
        free(e);
        curl_global_cleanup();
}

static void engine_unpin(struct http_engine *e) {
        if (--e->n_ref == 0)
                engine_destroy(e);
}

bool http_header_is_secret(const char *name) {
        static const char *const secret[] = {
                "x-auth-token", "x-subject-token", "authorization", "proxy-authorization",
                "cookie", "set-cookie", "x-auth-key", "x-service-token",
        };

        if (!name)
                return false;
        for (size_t i = 0; i < ELEMENTSOF(secret); i++)
                if (strcasecmp(name, secret[i]) == 0)
                        return true;
        return false;
}

int http_parse_retry_after(const char *value, int64_t now, uint64_t *ret_usec) {
        const char *p;

        if (!value)
                return -EINVAL;
        while (*value == ' ' || *value == '\t')
                value++;
        if (*value == 0)
                return -EINVAL;

        for (p = value; *p >= '0' && *p <= '9'; p++)
                ;
        if (p != value) {
                while (*p == ' ' || *p == '\t')
                        p++;
                if (*p != 0)
                        return -EINVAL;
                errno = 0;
                unsigned long long s = strtoull(value, NULL, 10);
                if (errno == ERANGE || s > UINT64_MAX / USEC_PER_SEC)
                        s = UINT64_MAX / USEC_PER_SEC;
                *ret_usec = (uint64_t) s * USEC_PER_SEC;
                return 0;
        }

        time_t t = curl_getdate(value, NULL);
        if (t == (time_t) -1)
                return -EINVAL;
        *ret_usec = t > now ? (uint64_t) (t - now) * USEC_PER_SEC : 0;
        return 0;
}

static int engine_arm_finish(struct http_engine *e) {
        return sd_event_source_set_enabled(e->finish_defer, SD_EVENT_ONESHOT);
}

static void request_reset_attempt(struct http_request *r) {
        if (r->easy) {
                curl_easy_cleanup(r->easy);
                r->easy = NULL;
        }
        r->errbuf[0] = 0;
        r->result = CURLE_OK;
        r->error = 0;
        r->resp_body = mfree(r->resp_body);
        r->resp_size = r->resp_alloc = 0;
        r->too_big = false;
        r->request_id = mfree(r->request_id);
        r->subject_token = mfree(r->subject_token);
        r->location = mfree(r->location);
        r->retry_after_usec = 0;
        r->has_retry_after = false;
        r->n_sends = 0;
        r->resend_refused = false;
        r->date = 0;
}

/* libcurl has a connection and sends the request next. A second call in one
 * attempt is its silent re-send after a reused connection died without an
 * answer; a request that must not be sent twice unasked stops there. */
static int on_prereq(void *userdata, char *primary_ip, char *local_ip, int primary_port, int local_port) {
        struct http_request *r = userdata;

        if (r->n_sends++ > 0 && !r->idempotent) {
                r->resend_refused = true;
                return CURL_PREREQFUNC_ABORT;
        }
        return CURL_PREREQFUNC_OK;
}

static size_t on_write(char *data, size_t size, size_t nmemb, void *userdata) {
        struct http_request *r = userdata;
        size_t n = size * nmemb;

        if (n > r->max_body || r->resp_size > r->max_body - n) {
                r->too_big = true;
                return 0; /* abort the transfer: nothing beyond the cap is buffered */
        }
        if (r->resp_size + n + 1 > r->resp_alloc) {
                size_t a = r->resp_alloc ? r->resp_alloc : 4096;
                while (a < r->resp_size + n + 1)
                        a *= 2;
                char *b = realloc(r->resp_body, a);
                if (!b)
                        return 0;
                r->resp_body = b;
                r->resp_alloc = a;
        }
        memcpy(r->resp_body + r->resp_size, data, n);
        r->resp_size += n;
        r->resp_body[r->resp_size] = 0;
        return n;
}

static int replace_str(char **dst, const char *s, size_t n) {
        char *c = strndup(s, n);
        if (!c)
                return -ENOMEM;
        free(*dst);
        *dst = c;
        return 0;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *userdata) {
        struct http_request *r = userdata;
        size_t n = size * nmemb;
        const char *colon, *v, *end;
        size_t name_len;

        /* A new status line (after "100 Continue" or similar) starts a new header set. */
        if (n >= 5 && strncmp(data, "HTTP/", 5) == 0) {
                r->request_id = mfree(r->request_id);
                r->subject_token = mfree(r->subject_token);
                r->location = mfree(r->location);
                r->has_retry_after = false;
                r->retry_after_usec = 0;
                r->date = 0;
                return n;
        }

        colon = memchr(data, ':', n);
        if (!colon)
                return n;
        name_len = (size_t) (colon - data);
        v = colon + 1;
        end = data + n;
        while (v < end && (*v == ' ' || *v == '\t'))
                v++;
        while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
                end--;

#define IS(h) (name_len == strlen(h) && strncasecmp(data, (h), name_len) == 0)
        if (IS("x-openstack-request-id")) {
                if (replace_str(&r->request_id, v, (size_t) (end - v)) < 0)
                        return 0;
        } else if (IS("x-compute-request-id")) {
                if (!r->request_id && replace_str(&r->request_id, v, (size_t) (end - v)) < 0)
                        return 0;
        } else if (IS("x-subject-token")) {
                if (replace_str(&r->subject_token, v, (size_t) (end - v)) < 0)
                        return 0;
        } else if (IS("location")) {
                if (replace_str(&r->location, v, (size_t) (end - v)) < 0)
                        return 0;
        } else if (IS("date")) {
                _cleanup_free_ char *s = strndup(v, (size_t) (end - v));
                time_t t;

                if (!s)
                        return 0;
                t = curl_getdate(s, NULL);
                r->date = t > 0 ? (int64_t) t : 0;
        } else if (IS("retry-after")) {
                _cleanup_free_ char *s = strndup(v, (size_t) (end - v));
                uint64_t usec;

                if (!s)
                        return 0;
                if (http_parse_retry_after(s, (int64_t) time(NULL), &usec) >= 0) {
                        uint64_t max = r->engine ? r->engine->opts.retry_after_max_usec : usec;
                        r->retry_after_usec = usec < max ? usec : max;
                        r->has_retry_after = true;
                }
        }
#undef IS
        return n;
}

static int curl_result_to_errno(CURLcode c, bool too_big) {
        switch (c) {
        case CURLE_OK:
                return 0;
        case CURLE_OPERATION_TIMEDOUT:
                return -ETIMEDOUT;
        case CURLE_COULDNT_CONNECT:
                return -ECONNREFUSED;
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_RESOLVE_PROXY:
                return -EHOSTUNREACH;
        case CURLE_GOT_NOTHING:
        case CURLE_RECV_ERROR:
        case CURLE_SEND_ERROR:
        case CURLE_PARTIAL_FILE:
        case CURLE_HTTP2:
        case CURLE_HTTP2_STREAM:
                return -ECONNRESET;
        case CURLE_FILESIZE_EXCEEDED:
                return -EFBIG;
        case CURLE_WRITE_ERROR:
                return too_big ? -EFBIG : -ENOMEM;
        case CURLE_PEER_FAILED_VERIFICATION:
        case CURLE_SSL_CONNECT_ERROR:
        case CURLE_SSL_CERTPROBLEM:
        case CURLE_SSL_CIPHER:
        case CURLE_SSL_CACERT_BADFILE:
        case CURLE_SSL_ENGINE_NOTFOUND:
        case CURLE_SSL_ENGINE_SETFAILED:
        case CURLE_SSL_ISSUER_ERROR:
        case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
        case CURLE_SSL_INVALIDCERTSTATUS:
        case CURLE_SSL_CRL_BADFILE:
                return -EKEYREJECTED;
        case CURLE_OUT_OF_MEMORY:
                return -ENOMEM;
        case CURLE_UNSUPPORTED_PROTOCOL:
        case CURLE_URL_MALFORMAT:
                return -EINVAL;
        default:
                return -EIO;
        }
}

static bool status_is_retryable(long status) {
        return status == 429 || status == 500 || status == 502 || status == 503 || status == 504;
}

static bool error_is_retryable(int error) {
        return error == -ETIMEDOUT || error == -ECONNREFUSED || error == -ECONNRESET ||
               error == -EHOSTUNREACH;
}

static const char *request_service(const struct http_request *r) {
        return r->service ? r->service : "";
}

/* Until when R's service is paused; 0 if it is not. */
static uint64_t engine_paused_until(struct http_engine *e, const struct http_request *r, uint64_t now) {
        for (struct http_pause *p = e->pauses; p; p = p->next)
                if (strcmp(p->service, request_service(r)) == 0)
                        return p->until > now ? p->until : 0;
        return 0;
}

static void engine_pause(struct http_engine *e, const struct http_request *r, uint64_t until) {
        struct http_pause *p;

        for (p = e->pauses; p; p = p->next)
                if (strcmp(p->service, request_service(r)) == 0)
                        break;
        if (!p) {
                p = calloc(1, sizeof(*p));
                if (!p)
                        return;
                p->service = strdup(request_service(r));
                if (!p->service) {
                        free(p);
                        return;
                }
                p->next = e->pauses;
                e->pauses = p;
        }
        if (until > p->until)
                p->until = until;
}

/* Build the easy handle for one attempt and hand it to the multi. */
static int request_launch(struct http_request *r) {
        struct http_engine *e = r->engine;
        CURL *c;
        CURLMcode mc;
        int pr;

        request_reset_attempt(r);
        /* The caller's last word on the headers (a token that is fresh now). */
        if (r->prepare && (pr = r->prepare(r, r->prepare_userdata)) < 0)
                return pr;
        c = curl_easy_init();
        if (!c)
                return -ENOMEM;
        r->easy = c;

#define SET(opt, val)                                                \
        do {                                                         \
                if (curl_easy_setopt(c, (opt), (val)) != CURLE_OK)  \
                        return -EIO;                                 \
        } while (0)

        SET(CURLOPT_PRIVATE, r);
        SET(CURLOPT_URL, r->url);
        SET(CURLOPT_PROTOCOLS_STR, "http,https");
        SET(CURLOPT_NOSIGNAL, 1L);
        SET(CURLOPT_ERRORBUFFER, r->errbuf);
        SET(CURLOPT_WRITEFUNCTION, on_write);
        SET(CURLOPT_WRITEDATA, r);
        SET(CURLOPT_HEADERFUNCTION, on_header);
        SET(CURLOPT_HEADERDATA, r);
        SET(CURLOPT_HTTPHEADER, r->headers);
        SET(CURLOPT_FOLLOWLOCATION, 0L);
        SET(CURLOPT_TIMEOUT_MS, (long) (r->timeout_usec / USEC_PER_MSEC));
        SET(CURLOPT_CONNECTTIMEOUT_MS, (long) (e->opts.connect_timeout_usec / USEC_PER_MSEC));
        SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t) r->max_body);
        SET(CURLOPT_USERAGENT, e->user_agent);
        SET(CURLOPT_PROXY, e->proxy ? e->proxy : "");
        SET(CURLOPT_SSL_VERIFYPEER, e->opts.insecure ? 0L : 1L);
        SET(CURLOPT_SSL_VERIFYHOST, e->opts.insecure ? 0L : 2L);
        if (e->ca_pem) {
                struct curl_blob ca = { .data = e->ca_pem, .len = e->ca_pem_len, .flags = CURL_BLOB_NOCOPY };
                SET(CURLOPT_CAINFO_BLOB, &ca);
        }
        if (!r->idempotent && !r->reuse)
                SET(CURLOPT_FRESH_CONNECT, 1L);
        SET(CURLOPT_PREREQFUNCTION, on_prereq);
        SET(CURLOPT_PREREQDATA, r);

        if (strcmp(r->method, "GET") == 0)
                SET(CURLOPT_HTTPGET, 1L);
        else if (strcmp(r->method, "HEAD") == 0)
                SET(CURLOPT_NOBODY, 1L);
        else {
                SET(CURLOPT_CUSTOMREQUEST, r->method);
                if (r->body || strcmp(r->method, "POST") == 0 || strcmp(r->method, "PUT") == 0 ||
                    strcmp(r->method, "PATCH") == 0) {
                        SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) r->body_size);
                        SET(CURLOPT_POSTFIELDS, r->body ? r->body : "");
                }
        }
#undef SET

        mc = curl_multi_add_handle(e->multi, c);
        if (mc != CURLM_OK)
                return mc == CURLM_OUT_OF_MEMORY ? -ENOMEM : -EIO;

        r->attempts++;
        e->stats.attempts++;
        if (log_get_max_level() >= LOG_DEBUG) {
                char hdrs[1024] = "";
                size_t off = 0;

                for (struct curl_slist *h = r->headers; h && off < sizeof(hdrs) - 1; h = h->next) {
                        const char *colon = strchr(h->data, ':');
                        _cleanup_free_ char *name = colon ? strndup(h->data, (size_t) (colon - h->data)) : NULL;
                        int k;

                        if (name && http_header_is_secret(name))
                                k = snprintf(hdrs + off, sizeof(hdrs) - off, " [%s: <redacted>]", name);
                        else
                                k = snprintf(hdrs + off, sizeof(hdrs) - off, " [%s]", h->data);
                        if (k < 0)
                                break;
                        off += (size_t) k;
                }
                log_req(LOG_DEBUG, r->label, "http: > %s %s attempt %u%s body %zu bytes%s", r->method,
                        r->url, r->attempts, hdrs, r->body_size, r->body_secret ? " (secret)" : "");
        }
        return 0;
}

static void engine_dispatch(struct http_engine *e);

static int on_dispatch_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        struct http_engine *e = userdata;

        engine_pin(e);
        engine_dispatch(e);
        engine_unpin(e);
        return 0;
}

static bool bucket_take(struct http_engine *e, uint64_t now, uint64_t *ret_wake) {
        if (e->opts.rate <= 0)
                return true;
        if (now > e->tokens_at) {
                e->tokens += (double) (now - e->tokens_at) * e->opts.rate / (double) USEC_PER_SEC;
                if (e->tokens > (double) e->opts.burst)
                        e->tokens = (double) e->opts.burst;
                e->tokens_at = now;
        }
        if (e->tokens >= 1.0) {
                e->tokens -= 1.0;
                return true;
        }
        *ret_wake = now + (uint64_t) ((1.0 - e->tokens) * (double) USEC_PER_SEC / e->opts.rate) + 1;
        return false;
}

/* Start queued requests while a slot, a token and no pause of their service
 * allow it; a paused service's requests keep their place. Never calls a
 * completion callback: failures go to the finishing list. */
static void engine_dispatch(struct http_engine *e) {
        uint64_t wake = 0;
        struct http_request *next;

        for (struct http_request *r = e->queue.head; r && !e->shut_down && e->running.n < e->opts.max_in_flight;
             r = next) {
                uint64_t now = now_usec(e), until;
                int k;

                next = r->next;
                if (e->pauses && (until = engine_paused_until(e, r, now)) > 0) {
                        if (wake == 0 || until < wake)
                                wake = until;
                        continue;
                }
                if (!bucket_take(e, now, &wake))
                        break;

                list_remove(&e->queue, r);
                k = request_launch(r);
                if (k < 0) {
                        r->error = k;
                        r->state = REQUEST_FINISHING;
                        list_append(&e->finishing, r);
                        (void) engine_arm_finish(e);
                        continue;
                }
                r->state = REQUEST_RUNNING;
                list_append(&e->running, r);
                if (e->running.n > e->stats.max_in_flight_seen)
                        e->stats.max_in_flight_seen = e->running.n;
        }

        if (wake > 0 && !e->shut_down) {
                (void) sd_event_source_set_time(e->dispatch_timer, wake);
                (void) sd_event_source_set_enabled(e->dispatch_timer, SD_EVENT_ONESHOT);
        } else
                (void) sd_event_source_set_enabled(e->dispatch_timer, SD_EVENT_OFF);
}

static int on_retry_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        struct http_request *r = userdata;
        struct http_engine *e = r->engine;

        r->retry_timer = sd_event_source_disable_unref(r->retry_timer);
        list_remove(&e->backoff, r);
        /* It already waited its turn once: retry ahead of new work. */
        r->state = REQUEST_QUEUED;
        list_prepend(&e->queue, r);
        engine_pin(e);
        engine_dispatch(e);
        engine_unpin(e);
        return 0;
}

/* Schedule another attempt; false if this one is final. */
static bool request_maybe_retry(struct http_request *r, int error, long status) {
        struct http_engine *e = r->engine;
        uint64_t delay, cap;
        unsigned shift;

        if (!r->idempotent || e->shut_down || r->attempts > e->opts.max_retries)
                return false;
        if (error != 0 ? !error_is_retryable(error) : !status_is_retryable(status))
                return false;

        if (error == 0 && (status == 429 || status == 503) && r->has_retry_after)
                delay = r->retry_after_usec;
        else {
                /* Exponential backoff with full jitter: uniform in [0, min(max, base * 2^n)]. */
                shift = r->attempts - 1 < 20 ? r->attempts - 1 : 20;
                cap = e->opts.backoff_base_usec << shift;
                if (cap > e->opts.backoff_max_usec)
                        cap = e->opts.backoff_max_usec;
                delay = engine_random(e) % (cap + 1);
        }

        if (sd_event_add_time(e->event, &r->retry_timer, CLOCK_MONOTONIC, now_usec(e) + delay, 0,
                              on_retry_timer, r) < 0)
                return false;
        log_req(LOG_DEBUG, r->label, "http: %s %s: retry %u in %" PRIu64 " ms", r->method, r->url,
                r->attempts, delay / USEC_PER_MSEC);
        request_reset_attempt(r);
        r->state = REQUEST_BACKOFF;
        list_append(&e->backoff, r);
        e->stats.retries++;
        return true;
}

/* Finish one attempt of a request taken off the finishing list: retry it or
 * call back. Drops the engine's reference afterwards. */
static void request_finish(struct http_request *r) {
        struct http_engine *e = r->engine;
        long status = 0;
        int error = r->error;

        if (error == 0 && r->resend_refused) {
                error = -ECONNRESET;
                snprintf(r->errbuf, sizeof(r->errbuf), "connection closed without an answer (kept-alive connection; "
                         "not sent again)");
        } else if (error == 0) {
                error = curl_result_to_errno(r->result, r->too_big);
                if (error == 0 && r->easy)
                        (void) curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
        }
        if (error != 0)
                e->stats.transport_errors++;
        if (error == 0 && (status == 429 || status == 503)) {
                e->stats.throttled++;
                /* The service asked to slow down: hold its queued requests. */
                if (r->has_retry_after)
                        engine_pause(e, r, now_usec(e) + r->retry_after_usec);
        }

        log_req(LOG_DEBUG, r->label, "http: < %s %s: %ld%s%s request-id %s, %zu bytes, attempt %u",
                r->method, r->url, status, error ? " " : "", error ? r->errbuf : "",
                r->request_id ? r->request_id : "-", r->resp_size, r->attempts);

        if (request_maybe_retry(r, error, status))
                return;

        struct http_response resp = {
                .error = error,
                .status = status,
                .error_text = error == 0 ? "" : r->errbuf[0] ? r->errbuf : "request failed",
                .body = r->resp_body ? r->resp_body : "",
                .body_size = r->resp_size,
                .request_id = r->request_id,
                .subject_token = r->subject_token,
                .location = r->location,
                .retry_after_usec = r->retry_after_usec,
                .date = r->date,
                .attempts = r->attempts,
                .elapsed_usec = now_usec(e) - r->started_usec,
        };
        if (error == -EFBIG)
                resp.error_text = "response body larger than the limit";

        r->state = REQUEST_DONE;
        e->stats.completed++;
        /* The engine's reference pins the request for the callback. */
        if (r->callback)
                r->callback(r, &resp, r->userdata);
        if (r->easy) {
                curl_easy_cleanup(r->easy);
                r->easy = NULL;
        }
        http_request_unref(r);
}

static void engine_process_finishing(struct http_engine *e) {
        struct http_request *r;

        while (!e->shut_down && (r = e->finishing.head)) {
                list_remove(&e->finishing, r);
                request_finish(r);
        }
}

/* Move transfers libcurl reports done to the finishing list, then finish them.
 * Collecting first keeps callbacks out of the curl_multi_info_read loop. */
static void engine_check_done(struct http_engine *e) {
        CURLMsg *msg;
        int left;

        while ((msg = curl_multi_info_read(e->multi, &left))) {
                struct http_request *r = NULL;

                if (msg->msg != CURLMSG_DONE)
                        continue;
                CURL *c = msg->easy_handle;
                CURLcode result = msg->data.result;
                (void) curl_easy_getinfo(c, CURLINFO_PRIVATE, (char **) &r);
                (void) curl_multi_remove_handle(e->multi, c);
                if (!r || r->state != REQUEST_RUNNING)
                        continue;
                r->result = result;
                list_remove(&e->running, r);
                r->state = REQUEST_FINISHING;
                list_append(&e->finishing, r);
        }

        engine_process_finishing(e);
        engine_dispatch(e);
}

static int on_finish_defer(sd_event_source *s, void *userdata) {
        struct http_engine *e = userdata;

        engine_pin(e);
        engine_process_finishing(e);
        engine_dispatch(e);
        engine_unpin(e);
        return 0;
}

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct http_watch *w = userdata;
        struct http_engine *e = w->engine;
        int action = 0, running;

        if (revents & EPOLLIN)
                action |= CURL_CSELECT_IN;
        if (revents & EPOLLOUT)
                action |= CURL_CSELECT_OUT;
        if (revents & (EPOLLERR | EPOLLHUP))
                action |= CURL_CSELECT_ERR;

        engine_pin(e);
        (void) curl_multi_socket_action(e->multi, fd, action, &running);
        engine_check_done(e);
        engine_unpin(e);
        return 0;
}

static int on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp) {
        struct http_engine *e = userp;
        struct http_watch *w = socketp;
        uint32_t events = 0;

        if (what == CURL_POLL_REMOVE) {
                if (w) {
                        if (w->prev)
                                w->prev->next = w->next;
                        else
                                e->watches = w->next;
                        if (w->next)
                                w->next->prev = w->prev;
                        sd_event_source_disable_unref(w->source);
                        free(w);
                        (void) curl_multi_assign(e->multi, fd, NULL);
                }
                return 0;
        }

        if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
                events |= EPOLLIN;
        if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
                events |= EPOLLOUT;

        if (w)
                return sd_event_source_set_io_events(w->source, events) < 0 ? -1 : 0;

        w = calloc(1, sizeof(*w));
        if (!w)
                return -1;
        w->engine = e;
        if (sd_event_add_io(e->event, &w->source, fd, events, on_io, w) < 0) {
                free(w);
                return -1;
        }
        (void) sd_event_source_set_description(w->source, "http-io");
        if (curl_multi_assign(e->multi, fd, w) != CURLM_OK) {
                sd_event_source_disable_unref(w->source);
                free(w);
                return -1;
        }
        w->next = e->watches;
        if (e->watches)
                e->watches->prev = w;
        e->watches = w;
        return 0;
}

static void engine_curl_timeout(struct http_engine *e) {
        int running;

        engine_pin(e);
        (void) curl_multi_socket_action(e->multi, CURL_SOCKET_TIMEOUT, 0, &running);
        engine_check_done(e);
        engine_unpin(e);
}

static int on_curl_timer_elapsed(sd_event_source *s, uint64_t usec, void *userdata) {
        engine_curl_timeout(userdata);
        return 0;
}

static int on_curl_now(sd_event_source *s, void *userdata) {
        engine_curl_timeout(userdata);
        return 0;
}

/* libcurl asks for "at once" (0) around every transfer it starts or ends:
 * that is a defer source, which costs no system call. Other timeouts are
 * request and connect deadlines, far off and moved at every transfer: they
 * may fire a sixteenth late (at most 50 ms), which lets sd-event keep the
 * timerfd as it is instead of setting it again each time (a system call,
 * and an expensive one in a VM). */
static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp) {
        struct http_engine *e = userp;
        uint64_t usec, slack;

        if (timeout_ms < 0) {
                (void) sd_event_source_set_enabled(e->curl_now, SD_EVENT_OFF);
                return sd_event_source_set_enabled(e->curl_timer, SD_EVENT_OFF) < 0 ? -1 : 0;
        }
        if (timeout_ms == 0) {
                (void) sd_event_source_set_enabled(e->curl_timer, SD_EVENT_OFF);
                return sd_event_source_set_enabled(e->curl_now, SD_EVENT_ONESHOT) < 0 ? -1 : 0;
        }
        (void) sd_event_source_set_enabled(e->curl_now, SD_EVENT_OFF);
        usec = (uint64_t) timeout_ms * USEC_PER_MSEC;
        slack = usec / 16;
        if (slack > 50 * USEC_PER_MSEC)
                slack = 50 * USEC_PER_MSEC;
        if (sd_event_source_set_time_accuracy(e->curl_timer, slack > 0 ? slack : 1) < 0 ||
            sd_event_source_set_time(e->curl_timer, now_usec(e) + usec) < 0)
                return -1;
        return sd_event_source_set_enabled(e->curl_timer, SD_EVENT_ONESHOT) < 0 ? -1 : 0;
}

int http_engine_new(sd_event *event, const struct http_options *opts, struct http_engine **ret) {
        static const struct http_options zero = {};
        struct http_engine *e;
        int k;

        if (!event || !ret)
                return -EINVAL;
        if (!opts)
                opts = &zero;
        if (opts->rate < 0)
                return -EINVAL;

        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
                return -EIO;
        e = calloc(1, sizeof(*e));
        if (!e) {
                curl_global_cleanup();
                return -ENOMEM;
        }
        e->n_ref = 1;
        e->event = sd_event_ref(event);

        e->opts = *opts;
        e->opts.ca_pem = e->opts.proxy = e->opts.user_agent = NULL;
        if (e->opts.max_in_flight == 0)
                e->opts.max_in_flight = 16;
        if (e->opts.max_queued == 0)
                e->opts.max_queued = 1024;
        if (e->opts.burst == 0)
                e->opts.burst = opts->rate >= 1 ? (unsigned) opts->rate : 1;
        if (e->opts.max_retries == 0)
                e->opts.max_retries = 4;
        if (e->opts.backoff_base_usec == 0)
                e->opts.backoff_base_usec = 500 * USEC_PER_MSEC;
        if (e->opts.backoff_max_usec == 0)
                e->opts.backoff_max_usec = 30 * USEC_PER_SEC;
        if (e->opts.retry_after_max_usec == 0)
                e->opts.retry_after_max_usec = 120 * USEC_PER_SEC;
        if (e->opts.timeout_usec == 0)
                e->opts.timeout_usec = 60 * USEC_PER_SEC;
        if (e->opts.connect_timeout_usec == 0)
                e->opts.connect_timeout_usec = 10 * USEC_PER_SEC;
        if (e->opts.max_body_bytes == 0)
                e->opts.max_body_bytes = 8 << 20;
        e->tokens = (double) e->opts.burst;

        k = -ENOMEM;
        if (opts->ca_pem) {
                e->ca_pem = malloc(opts->ca_pem_len ? opts->ca_pem_len : 1);
                if (!e->ca_pem)
                        goto fail;
                memcpy(e->ca_pem, opts->ca_pem, opts->ca_pem_len);
                e->ca_pem_len = opts->ca_pem_len;
        }
        if (opts->proxy && !(e->proxy = strdup(opts->proxy)))
                goto fail;
        e->user_agent = strdup(opts->user_agent ? opts->user_agent : "elasticd/" ELASTICD_VERSION);
        if (!e->user_agent)
                goto fail;

        if (getrandom(&e->rng, sizeof(e->rng), GRND_NONBLOCK) != sizeof(e->rng))
                e->rng = (uint64_t) time(NULL) ^ ((uint64_t) getpid() << 32);
        e->rng |= 1;

        /* Accuracy 1 us: 0 would mean sd-event's default, 250 ms of slack on
         * every timeout libcurl asks for (set per timeout in on_curl_timer),
         * and on each queued request below. */
        k = sd_event_add_time(event, &e->curl_timer, CLOCK_MONOTONIC, 0, 1, on_curl_timer_elapsed, e);
        if (k < 0)
                goto fail;
        (void) sd_event_source_set_enabled(e->curl_timer, SD_EVENT_OFF);
        (void) sd_event_source_set_description(e->curl_timer, "http-curl-timer");
        k = sd_event_add_defer(event, &e->curl_now, on_curl_now, e);
        if (k < 0)
                goto fail;
        (void) sd_event_source_set_enabled(e->curl_now, SD_EVENT_OFF);
        (void) sd_event_source_set_description(e->curl_now, "http-curl-now");
        k = sd_event_add_time(event, &e->dispatch_timer, CLOCK_MONOTONIC, 0, 1, on_dispatch_timer, e);
        if (k < 0)
                goto fail;
        (void) sd_event_source_set_enabled(e->dispatch_timer, SD_EVENT_OFF);
        (void) sd_event_source_set_description(e->dispatch_timer, "http-dispatch");
        k = sd_event_add_defer(event, &e->finish_defer, on_finish_defer, e);
        if (k < 0)
                goto fail;
        (void) sd_event_source_set_enabled(e->finish_defer, SD_EVENT_OFF);
        (void) sd_event_source_set_description(e->finish_defer, "http-finish");

        k = -ENOMEM;
        e->multi = curl_multi_init();
        if (!e->multi)
                goto fail;
        k = -EIO;
        if (curl_multi_setopt(e->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket) != CURLM_OK ||
            curl_multi_setopt(e->multi, CURLMOPT_SOCKETDATA, e) != CURLM_OK ||
            curl_multi_setopt(e->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer) != CURLM_OK ||
            curl_multi_setopt(e->multi, CURLMOPT_TIMERDATA, e) != CURLM_OK ||
            curl_multi_setopt(e->multi, CURLMOPT_MAXCONNECTS, (long) e->opts.max_in_flight) != CURLM_OK)
                goto fail;

        *ret = e;
        return 0;
fail:
        engine_destroy(e);
        return k;
}

static void request_cancel_internal(struct http_request *r) {
        struct http_engine *e = r->engine;

        switch (r->state) {
        case REQUEST_QUEUED:
                list_remove(&e->queue, r);
                break;
        case REQUEST_RUNNING:
                list_remove(&e->running, r);
                (void) curl_multi_remove_handle(e->multi, r->easy);
                break;
        case REQUEST_FINISHING:
                list_remove(&e->finishing, r);
                break;
        case REQUEST_BACKOFF:
                list_remove(&e->backoff, r);
                r->retry_timer = sd_event_source_disable_unref(r->retry_timer);
                break;
        case REQUEST_NEW:
        case REQUEST_DONE:
                return;
        }
        log_req(LOG_DEBUG, r->label, "http: %s %s: cancelled", r->method, r->url);
        request_reset_attempt(r);
        r->state = REQUEST_DONE;
        http_request_unref(r); /* the engine's reference */
}

void http_engine_cancel_all(struct http_engine *e) {
        struct request_list *lists[4];

        if (!e)
                return;
        lists[0] = &e->queue;
        lists[1] = &e->running;
        lists[2] = &e->finishing;
        lists[3] = &e->backoff;
        for (size_t i = 0; i < ELEMENTSOF(lists); i++)
                while (lists[i]->head)
                        request_cancel_internal(lists[i]->head);
        (void) sd_event_source_set_enabled(e->dispatch_timer, SD_EVENT_OFF);
}

struct http_engine *http_engine_free(struct http_engine *e) {
        if (!e)
                return NULL;
        e->shut_down = true;
        http_engine_cancel_all(e);
        /* Requests the caller still holds outlive the engine, detached. */
        while (e->all) {
                struct http_request *r = e->all;
                e->all = r->all_next;
                r->all_prev = r->all_next = NULL;
                r->engine = NULL;
        }
        engine_unpin(e);
        return NULL;
}

int http_engine_set_limits(struct http_engine *e, const struct http_options *opts) {
        if (!e || !opts || opts->rate < 0)
                return -EINVAL;
        if (e->shut_down)
                return -ESHUTDOWN;
        e->opts.max_in_flight = opts->max_in_flight ? opts->max_in_flight : 16;
        e->opts.rate = opts->rate;
        e->opts.burst = opts->burst ? opts->burst : opts->rate >= 1 ? (unsigned) opts->rate : 1;
        e->opts.timeout_usec = opts->timeout_usec ? opts->timeout_usec : 60 * USEC_PER_SEC;
        if (e->tokens > (double) e->opts.burst)
                e->tokens = (double) e->opts.burst;
        if (curl_multi_setopt(e->multi, CURLMOPT_MAXCONNECTS, (long) e->opts.max_in_flight) != CURLM_OK)
                return -EIO;
        /* More slots or a faster rate may let queued requests start now. */
        engine_pin(e);
        engine_dispatch(e);
        engine_unpin(e);
        return 0;
}

void http_engine_get_stats(const struct http_engine *e, struct http_stats *ret) {
        if (!e || !ret)
                return;
        *ret = e->stats;
        ret->in_flight = e->running.n;
        ret->queued = e->queue.n + e->finishing.n;
        ret->backing_off = e->backoff.n;
}

int http_request_new(struct http_engine *e, const char *method, const char *url, struct http_request **ret) {
        static const char *const methods[] = { "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH" };
        static const char *const idempotent[] = { "GET", "HEAD", "PUT", "DELETE" };
        struct http_request *r;
        bool known = false;

        if (!e || !method || !url || !ret)
                return -EINVAL;
        if (e->shut_down)
                return -ESHUTDOWN;
        for (size_t i = 0; i < ELEMENTSOF(methods); i++)
                known = known || strcmp(method, methods[i]) == 0;
        if (!known)
                return -EINVAL;
        if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
                return -EINVAL;

        r = calloc(1, sizeof(*r));
        if (!r)
                return -ENOMEM;
        r->n_ref = 1;
        r->method = strdup(method);
        r->url = strdup(url);
        if (!r->method || !r->url) {
                free(r->method);
                free(r->url);
                free(r);
                return -ENOMEM;
        }
        r->timeout_usec = e->opts.timeout_usec;
        r->max_body = e->opts.max_body_bytes;
        for (size_t i = 0; i < ELEMENTSOF(idempotent); i++)
                r->idempotent = r->idempotent || strcmp(method, idempotent[i]) == 0;

        r->engine = e;
        r->all_next = e->all;
        if (e->all)
                e->all->all_prev = r;
        e->all = r;

        /* Never wait for "100 Continue": a bodied request would stall a second. */
        if (http_request_add_header(r, "Expect", "") < 0) {
                http_request_unref(r);
                return -ENOMEM;
        }
        *ret = r;
        return 0;
}

struct http_request *http_request_ref(struct http_request *r) {
        if (r)
                r->n_ref++;
        return r;
}

struct http_request *http_request_unref(struct http_request *r) {
        if (!r || --r->n_ref > 0)
                return NULL;

        if (r->engine) {
                if (r->all_prev)
                        r->all_prev->all_next = r->all_next;
                else
                        r->engine->all = r->all_next;
                if (r->all_next)
                        r->all_next->all_prev = r->all_prev;
        }
        request_reset_attempt(r);
        sd_event_source_disable_unref(r->retry_timer);
        curl_slist_free_all(r->headers);
        if (r->body && r->body_secret)
                explicit_bzero(r->body, r->body_size);
        free(r->body);
        free(r->method);
        free(r->url);
        free(r->label);
        free(r->service);
        free(r);
        return NULL;
}

int http_request_add_header(struct http_request *r, const char *name, const char *value) {
        _cleanup_free_ char *line = NULL;
        struct curl_slist *l;

        if (!r || !name || !value || !*name || strpbrk(name, ":\r\n") || strpbrk(value, "\r\n"))
                return -EINVAL;
        /* An empty value gives "Name:", which tells libcurl not to send a header it would add. */
        if (asprintf(&line, *value ? "%s: %s" : "%s:", name, value) < 0)
                return -ENOMEM;
        l = curl_slist_append(r->headers, line);
        if (http_header_is_secret(name))
                explicit_bzero(line, strlen(line));
        if (!l)
                return -ENOMEM;
        r->headers = l;
        return 0;
}

int http_request_set_header(struct http_request *r, const char *name, const char *value) {
        size_t n;

        if (!r || !name)
                return -EINVAL;
        n = strlen(name);
        for (struct curl_slist **h = &r->headers; *h; h = &(*h)->next)
                if (strncasecmp((*h)->data, name, n) == 0 && (*h)->data[n] == ':') {
                        struct curl_slist *gone = *h;
                        *h = gone->next;
                        gone->next = NULL;
                        if (http_header_is_secret(name))
                                explicit_bzero(gone->data, strlen(gone->data));
                        curl_slist_free_all(gone);
                        break;
                }
        return http_request_add_header(r, name, value);
}

int http_request_set_body(struct http_request *r, const void *data, size_t size, bool secret) {
        char *b;

        if (!r || (!data && size > 0))
                return -EINVAL;
        b = malloc(size + 1);
        if (!b)
                return -ENOMEM;
        if (size > 0)
                memcpy(b, data, size);
        b[size] = 0;
        if (r->body && r->body_secret)
                explicit_bzero(r->body, r->body_size);
        free(r->body);
        r->body = b;
        r->body_size = size;
        r->body_secret = secret;
        return 0;
}

void http_request_set_timeout(struct http_request *r, uint64_t usec) {
        if (r && usec > 0)
                r->timeout_usec = usec < USEC_PER_MSEC ? USEC_PER_MSEC : usec;
}

void http_request_set_max_body(struct http_request *r, size_t bytes) {
        if (r && bytes > 0)
                r->max_body = bytes;
}

void http_request_set_idempotent(struct http_request *r, bool idempotent) {
        if (r)
                r->idempotent = idempotent;
}

void http_request_set_reuse(struct http_request *r, bool reuse) {
        if (r)
                r->reuse = reuse;
}

int http_request_set_service(struct http_request *r, const char *service) {
        if (!r)
                return -EINVAL;
        return replace_str(&r->service, service ? service : "", service ? strlen(service) : 0);
}

void http_request_set_urgent(struct http_request *r, bool urgent) {
        if (r)
                r->urgent = urgent;
}

void http_request_set_prepare(struct http_request *r, http_prepare_t prepare, void *userdata) {
        if (!r)
                return;
        r->prepare = prepare;
        r->prepare_userdata = userdata;
}

int http_request_set_label(struct http_request *r, const char *label) {
        if (!r)
                return -EINVAL;
        return replace_str(&r->label, label ? label : "", label ? strlen(label) : 0);
}

int http_request_start(struct http_request *r, http_callback_t cb, void *userdata) {
        struct http_engine *e;

        if (!r)
                return -EINVAL;
        e = r->engine;
        if (!e || e->shut_down)
                return -ESHUTDOWN;
        if (r->state != REQUEST_NEW)
                return -EALREADY;
        if (e->queue.n >= e->opts.max_queued) {
                e->stats.rejected++;
                return -EBUSY;
        }

        r->callback = cb;
        r->userdata = userdata;
        r->started_usec = now_usec(e);
        r->state = REQUEST_QUEUED;
        if (r->urgent)
                list_prepend(&e->queue, http_request_ref(r));
        else
                list_append(&e->queue, http_request_ref(r));
        engine_pin(e);
        engine_dispatch(e);
        engine_unpin(e);
        return 0;
}

void http_request_cancel(struct http_request *r) {
        if (r && r->engine)
                request_cancel_internal(r);
}

bool http_request_is_pending(const struct http_request *r) {
        return r && r->state != REQUEST_NEW && r->state != REQUEST_DONE;
}

const char *http_request_get_method(const struct http_request *r) {
        return r ? r->method : NULL;
}

const char *http_request_get_url(const struct http_request *r) {
        return r ? r->url : NULL;
}
