/* test-http.c - the HTTP engine against a local python server: limits, retries, Retry-After, caps, TLS, cancel. */
#include <fcntl.h>
#include <sys/stat.h>

#include "util/fileread.h"
#include "util/log.h"
#include "testlib.h"
#include "../unit/test.h"

static sd_event *ev;
static struct test_server srv;
static char base[64];
static char tmpdir[] = "/tmp/elasticd-test-http-XXXXXX";

static void url(char *buf, size_t size, const char *path) {
        snprintf(buf, size, "%s%s", base, path);
}

static struct http_engine *engine(unsigned max_in_flight, unsigned max_retries) {
        struct http_options o = {
                .max_in_flight = max_in_flight,
                .max_retries = max_retries,
                .backoff_base_usec = 20000,
                .backoff_max_usec = 100000,
        };
        struct http_engine *e = NULL;

        if (http_engine_new(ev, &o, &e) < 0)
                return NULL;
        return e;
}

static void stub_stats(char **ret) {
        _cleanup_(http_engine_freep) struct http_engine *e = engine(1, 1);
        struct test_response t;
        char u[256];

        url(u, sizeof(u), "/stats");
        *ret = NULL;
        if (e && test_fetch(ev, e, "GET", u, NULL, 0, &t) >= 0)
                *ret = TAKE_PTR(t.body);
        test_response_clear(&t);
}

static void test_get_ok(void) {
        _cleanup_(http_engine_freep) struct http_engine *e = engine(4, 1);
        struct test_response t;
        char u[256];

        url(u, sizeof(u), "/ok");
        CHECK(test_fetch(ev, e, "GET", u, NULL, 0, &t) == 0);
        CHECK_INT(t.error, 0);
        CHECK_INT(t.status, 200);
        CHECK_STR(t.body, "ok");
        CHECK(t.request_id && strncmp(t.request_id, "req-stub-", 9) == 0);
        CHECK_INT(t.attempts, 1);
        /* the server's clock (Python's Date header), to the second */
        CHECK(t.date > 0 && t.date > (int64_t) time(NULL) - 60 && t.date < (int64_t) time(NULL) + 60);
        test_response_clear(&t);

        url(u, sizeof(u), "/echo");
        CHECK(test_fetch(ev, e, "PUT", u, "{\"a\":1}", 0, &t) == 0);
        CHECK_INT(t.status, 200);
        CHECK(strstr(t.body, "\"method\": \"PUT\"") != NULL);
        CHECK(strstr(t.body, "\"body\": \"{\\\"a\\\":1}\"") != NULL);
        CHECK(strstr(t.body, "expect") == NULL);
        test_response_clear(&t);

        url(u, sizeof(u), "/token");
        CHECK(test_fetch(ev, e, "POST", u, "{}", 0, &t) == 0);
        CHECK_INT(t.status, 201);
        CHECK_STR(t.subject_token, "stub-subject-token");
        test_response_clear(&t);
}

static int n_done;
static void count_cb(struct http_request *r, const struct http_response *resp, void *userdata) {
        int *ok = userdata;

        if (resp->error == 0 && resp->status == 200)
                (*ok)++;
        n_done++;
}

static void test_concurrency_cap(void) {
        _cleanup_(http_engine_freep) struct http_engine *e = engine(4, 1);
        _cleanup_free_ char *before = NULL, *after = NULL;
        struct http_stats st;
        int ok = 0, all = 0;
        char u[256];

        url(u, sizeof(u), "/sleep?ms=150");
        n_done = 0;
        for (int i = 0; i < 20; i++) {
                struct http_request *r = NULL;
                CHECK(http_request_new(e, "GET", u, &r) == 0);
                CHECK(http_request_start(r, count_cb, &ok) == 0);
                http_request_unref(r);
        }
        http_engine_get_stats(e, &st);
        CHECK_INT(st.in_flight, 4);
        CHECK_INT(st.queued, 16);
        all = 0;
        while (n_done < 20 && all++ < 300)
                sd_event_run(ev, 100000);
        CHECK_INT(ok, 20);
        http_engine_get_stats(e, &st);
        CHECK_INT(st.max_in_flight_seen, 4);
        CHECK_INT(st.in_flight, 0);
        CHECK_INT(st.completed, 20);
        stub_stats(&after);
        /* The server's own count: never more than 4 at once. */
        CHECK(test_json_int(after, "max_in_flight") >= 1);
        CHECK(test_json_int(after, "max_in_flight") <= 4);
}

static void test_queue_cap(void) {
        struct http_options o = { .max_in_flight = 1, .max_queued = 2 };
        _cleanup_(http_engine_freep) struct http_engine *e = NULL;
        struct http_request *r[4] = {};
        struct http_stats st;
        int ok = 0;
        char u[256];

        CHECK(http_engine_new(ev, &o, &e) == 0);
        url(u, sizeof(u), "/sleep?ms=50");
        for (int i = 0; i < 4; i++)
                CHECK(http_request_new(e, "GET", u, &r[i]) == 0);
        n_done = 0;
        CHECK_INT(http_request_start(r[0], count_cb, &ok), 0);
        CHECK_INT(http_request_start(r[1], count_cb, &ok), 0);
        CHECK_INT(http_request_start(r[2], count_cb, &ok), 0);
        CHECK_INT(http_request_start(r[3], count_cb, &ok), -EBUSY);
        CHECK_INT(http_request_start(r[0], count_cb, &ok), -EALREADY);
        http_engine_get_stats(e, &st);
        CHECK_INT(st.rejected, 1);
        for (int i = 0; i < 200 && n_done < 3; i++)
                sd_event_run(ev, 100000);
        CHECK_INT(ok, 3);
        for (int i = 0; i < 4; i++)
                http_request_unref(r[i]);
}

static void test_retry_get_5xx(void) {
        _cleanup_(http_engine_freep) struct http_engine *e = engine(4, 4);
        _cleanup_free_ char *stats = NULL;
        struct test_response t;
        char u[256];

        url(u, sizeof(u), "/flaky?key=get5xx&fail=3&code=503");
        CHECK(test_fetch(ev, e, "GET", u, NULL, 0, &t) == 0);
        CHECK_INT(t.status, 200);
        CHECK_INT(t.attempts, 4);
        test_response_clear(&t);

        /* Out of retries: the last answer is reported. */
        url(u, sizeof(u), "/flaky?key=get5xx-many&fail=100&code=500");
        CHECK(test_fetch(ev, e, "GET", u, NULL, 0, &t) == 0);
        CHECK_INT(t.status, 500);
        CHECK_INT(t.attempts, 5);
        test_response_clear(&t);

        /* 4xx other than 429 is an answer, not a failure. */
        url(u, sizeof(u), "/flaky?key=get404&fail=1&code=404");
        CHECK(test_fetch(ev, e, "GET", u, NULL, 0, &t) == 0);
        CHECK_INT(t.status, 404);
        CHECK_INT(t.attempts, 1);
        test_response_clear(&t);

        stub_stats(&stats);
        CHECK(strstr(stats, "\"get5xx\": 4") != NULL);
        CHECK(strstr(stats, "\"get5xx-many\": 5") != NULL);
}

static void test_no_retry_post(void) {
        _cleanup_(http_engine_freep) struct http_engine *e = engine(4, 4);
        _cleanup_free_ char *stats = NULL;
        struct test_response t;
        char u[256];

        url(u, sizeof(u), "/flaky?key=post5xx&fail=1&code=500");
        CHECK(test_fetch(ev, e, "POST", u, "{}", 0, &t) == 0);
        CHECK_INT(t.status, 500);
        CHECK_INT(t.attempts, 1);
        test_response_clear(&t);

        url(u, sizeof(u), "/flaky?key=postdrop&fail=1&code=drop");
        CHECK(test_fetch(ev, e, "POST", u, "{}", 0, &t) == 0);
        CHECK_INT(t.error, -ECONNRESET);
        CHECK_INT(t.status, 0);
        CHECK_INT(t.attempts, 1);
        test_response_clear(&t);

        url(u, sizeof(u), "/flaky?key=post429&fail=1&code=429&retry_after=1");
        CHECK(test_fetch(ev, e, "POST", u, "{}", 0, &t) == 0);
        CHECK_INT(t.status, 429);
        CHECK_INT(t.attempts, 1);
        CHECK_INT(t.retry_after_usec, 1000000);
        test_response_clear(&t);

        /* The 429 paused the engine: the next request waits out the Retry-After. */
        url(u, sizeof(u), "/ok");
        CHECK(test_fetch(ev, e, "GET", u, NULL, 0, &t) == 0);
        CHECK_INT(t.status, 200);
        CHECK(t.elapsed_usec >= 800000);
        test_response_clear(&t);

        stub_stats(&stats);
        CHECK(strstr(stats, "\"post5xx\": 1") != NULL);
        CHECK(strstr(stats, "\"postdrop\": 1") != NULL);
        CHECK(strstr(stats, "\"post429\": 1") != NULL);
}

static int fetch_post(struct http_engine *e, const char *path, bool reuse, struct test_response *t) {
        _cleanup_(http_request_unrefp) struct http_request *r = NULL;
        char u[256];
        int k;

        memset(t, 0, sizeof(*t));
        url(u, sizeof(u), path);
        if ((k = http_request_new(e, "POST", u, &r)) < 0 || (k = http_request_set_body(r, "{}", 2, false)) < 0)
                return k;
        http_request_set_reuse(r, reuse);
        if ((k = http_request_start(r, test_response_cb, t)) < 0)
                return k;
        return test_run_until(ev, &t->done, 120);
}

/* A POST allowed on a kept-alive connection takes one; when that connection
 * dies without an answer, libcurl's own re-send is refused (the stub sees it
 * once, the caller gets -ECONNRESET). Without the allowance: a fresh one. */
static void test_post_reuse(void) {
        _cleanup_(http_engine_freep) struct http_engine *e = engine(1, 4);
        _cleanup_free_ char *stats = NULL;
        struct test_response t;
        long port;
        char u[256];

        url(u, sizeof(u), "/echo");
        CHECK(test_fetch(ev, e, "GET", u, NULL, 0, &t) == 0);
        CHECK_INT(t.status, 200);
        port = test_json_int(t.body, "port");
        CHECK(port > 0);
        test_response_clear(&t);

        CHECK(fetch_post(e, "/echo", true, &t) == 0);
        CHECK_INT(t.status, 200);
        CHECK_INT(test_json_int(t.body, "port"), port);
        test_response_clear(&t);

        CHECK(fetch_post(e, "/echo", false, &t) == 0);
        CHECK_INT(t.status, 200);
        CHECK(test_json_int(t.body, "port") != port);
        port = test_json_int(t.body, "port");
        test_response_clear(&t);

        /* On the connection just used: read, then closed without a word. */
        CHECK(fetch_post(e, "/flaky?key=postreuse&fail=1&code=drop", true, &t) == 0);
        CHECK_INT(t.error, -ECONNRESET);
        CHECK_INT(t.status, 0);
        CHECK_INT(t.attempts, 1);
        test_response_clear(&t);
        stub_stats(&stats);
        CHECK(strstr(stats, "\"postreuse\": 1") != NULL);
}

static int prepare_token(struct http_request *r, void *userdata) {
        unsigned *gen = userdata;
        char v[32];

        (*gen)++;
        snprintf(v, sizeof(v), "tok-%u", *gen);
        return http_request_set_header(r, "X-Auth-Token", v);
}

static void on_service_done(struct http_request *r, const struct http_response *resp, void *userdata) {
        test_response_cb(r, resp, userdata);
}

/* A 429 pauses its own service only; the token goes on at each attempt. */
static void test_service_pause_and_prepare(void) {
        _cleanup_(http_engine_freep) struct http_engine *e = engine(4, 4);
        struct http_request *r = NULL;
        struct test_response a = {}, b = {};
        unsigned gen = 0;
        char u[256];

        url(u, sizeof(u), "/flaky?key=svc429&fail=1&code=429&retry_after=2");
        CHECK(http_request_new(e, "GET", u, &r) == 0);
        CHECK(http_request_set_service(r, "compute") == 0);
        CHECK(http_request_add_header(r, "X-Auth-Token", "stale") == 0);
        http_request_set_prepare(r, prepare_token, &gen);
        CHECK(http_request_start(r, on_service_done, &a) == 0);
        r = http_request_unref(r);
        /* After the 429 arrived: another service goes at once. */
        for (uint64_t end = test_now_usec() + 500000; test_now_usec() < end;)
                CHECK(sd_event_run(ev, 50000) >= 0);
        CHECK(!a.done);
        url(u, sizeof(u), "/echo");
        CHECK(http_request_new(e, "GET", u, &r) == 0);
        CHECK(http_request_set_service(r, "image") == 0);
        CHECK(http_request_start(r, on_service_done, &b) == 0);
        r = http_request_unref(r);
        CHECK(test_run_until(ev, &b.done, 10) == 0);
        CHECK_INT(b.status, 200);
        CHECK(!a.done);
        CHECK(b.elapsed_usec < 1000000);
        CHECK(test_run_until(ev, &a.done, 10) == 0);
        CHECK_INT(a.status, 200);
        CHECK_INT(a.attempts, 2);
        CHECK(a.elapsed_usec >= 1800000);
        CHECK_INT(gen, 2);
        test_response_clear(&a);
        test_response_clear(&b);

        /* The header is replaced, not added twice. */
        gen = 0;
        CHECK(http_request_new(e, "GET", u, &r) == 0);
        CHECK(http_request_add_header(r, "X-Auth-Token", "stale") == 0);
        http_request_set_prepare(r, prepare_token, &gen);
        CHECK(http_request_start(r, on_service_done, &a) == 0);
        r = http_request_unref(r);
        CHECK(test_run_until(ev, &a.done, 10) == 0);
        CHECK(a.body && strstr(a.body, "\"x-auth-token\": \"tok-1\"") != NULL);
        CHECK(a.body && strstr(a.body, "stale") == NULL);
        test_response_clear(&a);
}

static void test_retry_drop_get(void) {
        _cleanup_(http_engine_freep) struct http_engine *e = engine(4, 4);
        struct test_response t;
        char u[256];

        url(u, sizeof(u), "/flaky?key=getdrop&fail=2&code=drop");
        CHECK(test_fetch(ev, e, "GET", u, NULL, 0, &t) == 0);
        CHECK_INT(t.error, 0);
        CHECK_INT(t.status, 200);
        CHECK_INT(t.attempts, 3);
        test_response_clear(&t);
}

static void test_retry_after(void) {
        _cleanup_(http_engine_freep) struct http_engine *e = engine(4, 4);
        struct test_response t;
        char u[256], date[64];
        time_t now;
        struct tm tm;

        url(u, sizeof(u), "/flaky?key=ra-seconds&fail=1&code=429&retry_after=1");
        CHECK(test_fetch(ev, e, "GET", u, NULL, 0, &t) == 0);
        CHECK_INT(t.status, 200);
        CHECK_INT(t.attempts, 2);
        CHECK(t.elapsed_usec >= 1000000);
        test_response_clear(&t);

        /* An HTTP date three seconds ahead, taken just before the request
         * (whole seconds: at least two remain). A lower bound: the retry
         * cannot come sooner unless Retry-After was ignored. */
        now = time(NULL) + 3;
        gmtime_r(&now, &tm);
        strftime(date, sizeof(date), "%a,%%20%d%%20%b%%20%Y%%20%H:%M:%S%%20GMT", &tm);
        snprintf(u, sizeof(u), "%s/flaky?key=ra-date&fail=1&code=503&retry_after=%s", base, date);
        CHECK(test_fetch(ev, e, "GET", u, NULL, 0, &t) == 0);
        CHECK_INT(t.status, 200);
        CHECK_INT(t.attempts, 2);
        CHECK(t.elapsed_usec >= 1500000);
        test_response_clear(&t);
}

static void test_parse_retry_after(void) {
        uint64_t u = 0;

        CHECK_INT(http_parse_retry_after("5", 0, &u), 0);
        CHECK_INT(u, 5000000);
        CHECK_INT(http_parse_retry_after(" 0 ", 0, &u), 0);
        CHECK_INT(u, 0);
        /* Sun, 06 Nov 1994 08:49:37 GMT = 784111777 */
        CHECK_INT(http_parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784111770, &u), 0);
        CHECK_INT(u, 7000000);
        CHECK_INT(http_parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784111800, &u), 0);
        CHECK_INT(u, 0);
        CHECK_INT(http_parse_retry_after("soon", 0, &u), -EINVAL);
        CHECK_INT(http_parse_retry_after("5s", 0, &u), -EINVAL);
        CHECK_INT(http_parse_retry_after("", 0, &u), -EINVAL);
        CHECK_INT(http_parse_retry_after(NULL, 0, &u), -EINVAL);
}

static void test_body_cap(void) {
        _cleanup_(http_engine_freep) struct http_engine *e = engine(4, 1);
        struct http_request *r = NULL;
        struct test_response t = {};
        char u[256];

        /* 50 MB announced by Content-Length: refused before buffering. */
        url(u, sizeof(u), "/big?bytes=52428800");
        CHECK(http_request_new(e, "GET", u, &r) == 0);
        http_request_set_max_body(r, 1 << 20);
        CHECK(http_request_start(r, test_response_cb, &t) == 0);
        r = http_request_unref(r);
        CHECK(test_run_until(ev, &t.done, 60) == 0);
        CHECK_INT(t.error, -EFBIG);
        CHECK_INT(t.attempts, 1);
        test_response_clear(&t);

        /* 50 MB chunked, no length: aborted once past the cap. */
        url(u, sizeof(u), "/big?bytes=52428800&chunked=1");
        CHECK(http_request_new(e, "GET", u, &r) == 0);
        http_request_set_max_body(r, 1 << 20);
        CHECK(http_request_start(r, test_response_cb, &t) == 0);
        r = http_request_unref(r);
        CHECK(test_run_until(ev, &t.done, 60) == 0);
        CHECK_INT(t.error, -EFBIG);
        CHECK_INT(t.attempts, 1);
        test_response_clear(&t);

        /* Exactly at the cap is fine. */
        url(u, sizeof(u), "/big?bytes=1048576");
        CHECK(http_request_new(e, "GET", u, &r) == 0);
        http_request_set_max_body(r, 1 << 20);
        CHECK(http_request_start(r, test_response_cb, &t) == 0);
        r = http_request_unref(r);
        CHECK(test_run_until(ev, &t.done, 60) == 0);
        CHECK_INT(t.error, 0);
        CHECK_INT(t.status, 200);
        CHECK_INT(strlen(t.body), 1 << 20);
        test_response_clear(&t);
}

static void test_timeout(void) {
        _cleanup_(http_engine_freep) struct http_engine *e = engine(4, 2);
        _cleanup_free_ char *stats = NULL;
        struct test_response t;
        char u[256];

        url(u, sizeof(u), "/sleep?ms=2000");
        CHECK(test_fetch(ev, e, "POST", u, "{}", 200000, &t) == 0);
        CHECK_INT(t.error, -ETIMEDOUT);
        CHECK_INT(t.attempts, 1);
        CHECK(strlen(t.body) == 0);
        test_response_clear(&t);

        /* An idempotent request is retried after a timeout, then gives up. */
        CHECK(test_fetch(ev, e, "GET", u, NULL, 200000, &t) == 0);
        CHECK_INT(t.error, -ETIMEDOUT);
        CHECK_INT(t.attempts, 3);
        test_response_clear(&t);
}

static void test_connection_refused(void) {
        _cleanup_(http_engine_freep) struct http_engine *e = engine(4, 1);
        struct test_response t;

        /* Port 1 on loopback: nothing listens there. */
        CHECK(test_fetch(ev, e, "GET", "http://127.0.0.1:1/", NULL, 0, &t) == 0);
        CHECK_INT(t.error, -ECONNREFUSED);
        CHECK_INT(t.attempts, 2);
        test_response_clear(&t);
}

static void test_rate_limit(void) {
        struct http_options o = { .max_in_flight = 8, .rate = 10, .burst = 1 };
        _cleanup_(http_engine_freep) struct http_engine *e = NULL;
        uint64_t t0 = test_now_usec();
        int ok = 0;
        char u[256];

        CHECK(http_engine_new(ev, &o, &e) == 0);
        url(u, sizeof(u), "/ok");
        n_done = 0;
        for (int i = 0; i < 6; i++) {
                struct http_request *r = NULL;
                CHECK(http_request_new(e, "GET", u, &r) == 0);
                CHECK(http_request_start(r, count_cb, &ok) == 0);
                http_request_unref(r);
        }
        for (int i = 0; i < 300 && n_done < 6; i++)
                sd_event_run(ev, 100000);
        CHECK_INT(ok, 6);
        /* One at once, then one per 100 ms. */
        CHECK(test_now_usec() - t0 >= 450000);
}

static int n_called;
static void never_cb(struct http_request *r, const struct http_response *resp, void *userdata) {
        n_called++;
}

static void test_cancel(void) {
        struct http_engine *e = engine(1, 1);
        struct http_request *a = NULL, *b = NULL, *c = NULL;
        char u[256];

        url(u, sizeof(u), "/sleep?ms=300");
        n_called = 0;
        CHECK(http_request_new(e, "GET", u, &a) == 0);
        CHECK(http_request_new(e, "GET", u, &b) == 0);
        CHECK(http_request_new(e, "GET", u, &c) == 0);
        CHECK(http_request_start(a, never_cb, NULL) == 0);
        CHECK(http_request_start(b, never_cb, NULL) == 0);
        CHECK(http_request_start(c, never_cb, NULL) == 0);
        CHECK(http_request_is_pending(a));
        http_request_cancel(a); /* running */
        http_request_cancel(b); /* queued */
        CHECK(!http_request_is_pending(a));
        for (int i = 0; i < 2; i++)
                sd_event_run(ev, 10000);
        /* Engine freed with c in flight: no callback, c stays valid. */
        e = http_engine_free(e);
        CHECK(http_request_start(c, never_cb, NULL) != 0);
        CHECK_STR(http_request_get_method(c), "GET");
        for (int i = 0; i < 5; i++)
                sd_event_run(ev, 100000);
        CHECK_INT(n_called, 0);
        http_request_unref(a);
        http_request_unref(b);
        http_request_unref(c);
}

static struct http_engine *free_me;
static void free_engine_cb(struct http_request *r, const struct http_response *resp, void *userdata) {
        n_called++;
        /* Freeing the engine from a callback cancels the rest and is safe. */
        free_me = http_engine_free(free_me);
        http_request_unref(r); /* the caller's reference, dropped inside */
}

static void test_free_in_callback(void) {
        char u[256], slow[256];
        struct http_request *r = NULL;

        free_me = engine(4, 1);
        url(u, sizeof(u), "/ok");
        url(slow, sizeof(slow), "/sleep?ms=500");
        n_called = 0;
        for (int i = 0; i < 3; i++) {
                CHECK(http_request_new(free_me, "GET", slow, &r) == 0);
                CHECK(http_request_start(r, never_cb, NULL) == 0);
                http_request_unref(r);
        }
        CHECK(http_request_new(free_me, "GET", u, &r) == 0);
        CHECK(http_request_start(r, free_engine_cb, NULL) == 0);
        for (int i = 0; i < 100 && free_me; i++)
                sd_event_run(ev, 100000);
        CHECK(free_me == NULL);
        CHECK_INT(n_called, 1);
}

static void test_redaction(void) {
        _cleanup_(http_engine_freep) struct http_engine *e = engine(1, 1);
        struct test_response t = {};
        struct http_request *r = NULL;
        char buf[16384] = "", u[256];
        FILE *f = tmpfile();
        int saved = dup(STDERR_FILENO);
        size_t n;

        CHECK(http_header_is_secret("X-Auth-Token"));
        CHECK(http_header_is_secret("x-subject-token"));
        CHECK(!http_header_is_secret("Content-Type"));

        dup2(fileno(f), STDERR_FILENO);
        log_setup("test-http", LOG_DEBUG);
        url(u, sizeof(u), "/token");
        CHECK(http_request_new(e, "POST", u, &r) == 0);
        CHECK(http_request_add_header(r, "X-Auth-Token", "tok-SECRET-1") == 0);
        CHECK(http_request_add_header(r, "Content-Type", "application/json") == 0);
        CHECK(http_request_set_body(r, "{\"password\":\"pw-SECRET-2\"}", 26, true) == 0);
        CHECK(http_request_start(r, test_response_cb, &t) == 0);
        http_request_unref(r);
        CHECK(test_run_until(ev, &t.done, 30) == 0);
        fflush(stderr);
        dup2(saved, STDERR_FILENO);
        close(saved);
        log_setup("test-http", LOG_INFO);
        rewind(f);
        n = fread(buf, 1, sizeof(buf) - 1, f);
        buf[n] = 0;
        fclose(f);
        CHECK(strstr(buf, "http: > POST") != NULL);
        CHECK(strstr(buf, "X-Auth-Token: <redacted>") != NULL);
        CHECK(strstr(buf, "Content-Type: application/json") != NULL);
        CHECK(strstr(buf, "SECRET") == NULL);
        CHECK(strstr(buf, "stub-subject-token") == NULL);
        CHECK_STR(t.subject_token, "stub-subject-token");
        test_response_clear(&t);

        CHECK_INT(http_request_new(e, "GET", "ftp://x/", &r), -EINVAL);
        CHECK_INT(http_request_new(e, "BREW", u, &r), -EINVAL);
        CHECK(http_request_new(e, "GET", u, &r) == 0);
        CHECK_INT(http_request_add_header(r, "X-Evil", "a\r\nInjected: 1"), -EINVAL);
        CHECK_INT(http_request_add_header(r, "Bad:Name", "v"), -EINVAL);
        http_request_unref(r);
}

/* TLS: certificates made with the openssl CLI in a private temp dir. */
static int make_certs(void) {
        char cmd[4096];

        snprintf(cmd, sizeof(cmd),
                 "cd %s && "
                 "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 "
                 "-subj /CN=elasticd-test-ca >/dev/null 2>&1 && "
                 "openssl req -x509 -newkey rsa:2048 -nodes -keyout other.key -out other.pem -days 2 "
                 "-subj /CN=elasticd-other-ca >/dev/null 2>&1 && "
                 "openssl req -newkey rsa:2048 -nodes -keyout srv.key -out srv.csr "
                 "-subj /CN=127.0.0.1 >/dev/null 2>&1 && "
                 "printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > ext.cnf && "
                 "openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
                 "-out srv.pem -days 2 -extfile ext.cnf >/dev/null 2>&1",
                 tmpdir);
        return system(cmd) == 0 ? 0 : -1;
}

static void test_tls(void) {
        struct test_server tls = {};
        char cert[256], key[256], ca[256], other[256], u[256];
        struct test_response t;

        snprintf(cert, sizeof(cert), "%s/srv.pem", tmpdir);
        snprintf(key, sizeof(key), "%s/srv.key", tmpdir);
        snprintf(ca, sizeof(ca), "%s/ca.pem", tmpdir);
        snprintf(other, sizeof(other), "%s/other.pem", tmpdir);
        const char *argv[] = { "python3", SRCDIR "/tests/cloud/stub-http.py", "--cert", cert, "--key", key, NULL };

        CHECK(make_certs() == 0);
        CHECK(test_server_start(&tls, argv) == 0);
        snprintf(u, sizeof(u), "https://127.0.0.1:%d/ok", tls.port);

        {
                _cleanup_free_ char *pem = NULL;
                size_t len = 0;
                CHECK(fileread_all(ca, 0, 1 << 20, &pem, &len, NULL) == 0);
                struct http_options o = { .ca_pem = pem, .ca_pem_len = len };
                _cleanup_(http_engine_freep) struct http_engine *e = NULL;
                CHECK(http_engine_new(ev, &o, &e) == 0);
                /* the engine keeps its own copy of the bundle */
                explicit_bzero(pem, len);
                pem = mfree(pem);
                CHECK(test_fetch(ev, e, "GET", u, NULL, 0, &t) == 0);
                CHECK_INT(t.error, 0);
                CHECK_INT(t.status, 200);
                test_response_clear(&t);
        }
        {
                _cleanup_free_ char *pem = NULL;
                size_t len = 0;
                CHECK(fileread_all(other, 0, 1 << 20, &pem, &len, NULL) == 0);
                struct http_options o = { .ca_pem = pem, .ca_pem_len = len };
                _cleanup_(http_engine_freep) struct http_engine *e = NULL;
                CHECK(http_engine_new(ev, &o, &e) == 0);
                CHECK(test_fetch(ev, e, "GET", u, NULL, 0, &t) == 0);
                CHECK_INT(t.error, -EKEYREJECTED);
                CHECK_INT(t.status, 0);
                CHECK_INT(t.attempts, 1); /* a bad certificate is not retried */
                test_response_clear(&t);
        }
        {
                /* The system trust store does not know the test CA either. */
                _cleanup_(http_engine_freep) struct http_engine *e = NULL;
                CHECK(http_engine_new(ev, NULL, &e) == 0);
                CHECK(test_fetch(ev, e, "GET", u, NULL, 0, &t) == 0);
                CHECK_INT(t.error, -EKEYREJECTED);
                test_response_clear(&t);
        }
        test_server_stop(&tls);
}

int main(void) {
        const char *argv[] = { "python3", SRCDIR "/tests/cloud/stub-http.py", NULL };
        char cmd[256];

        setvbuf(stdout, NULL, _IOLBF, 0);
        signal(SIGPIPE, SIG_IGN);
        log_setup("test-http", LOG_INFO);
        if (!mkdtemp(tmpdir) || sd_event_new(&ev) < 0 || test_server_start(&srv, argv) < 0) {
                printf("Bail out! cannot start the stub server\n");
                return 1;
        }
        snprintf(base, sizeof(base), "http://127.0.0.1:%d", srv.port);

        RUN(test_parse_retry_after);
        RUN(test_get_ok);
        RUN(test_concurrency_cap);
        RUN(test_queue_cap);
        RUN(test_retry_get_5xx);
        RUN(test_no_retry_post);
        RUN(test_post_reuse);
        RUN(test_retry_drop_get);
        RUN(test_service_pause_and_prepare);
        RUN(test_retry_after);
        RUN(test_body_cap);
        RUN(test_timeout);
        RUN(test_connection_refused);
        RUN(test_rate_limit);
        RUN(test_cancel);
        RUN(test_free_in_callback);
        RUN(test_redaction);
        RUN(test_tls);

        test_server_stop(&srv);
        snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
        (void) system(cmd);
        sd_event_unref(ev);
        return test_done();
}
