/* polls.c - benchmark: the polls of B building servers among N, as elasticd makes them (a show each, all at once): list pages, API calls and bytes per poll round, with changes-since lists and with a full list every poll. */
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <sys/resource.h>

#include "cloud/cloud.h"
#include "util/log.h"
#include "../cloud/testlib.h"

#define TINY "012ff1c6-dc8d-4e82-8f73-8a2a63093040"
#define CLUSTER "bench"
#define LIST_ROUTE "GET /compute/v2.1/servers/detail"
#define SHOW_ROUTE "GET /compute/v2.1/servers/{sid}"

static sd_event *ev;
static struct test_emulator emu;
static unsigned n_servers = 10000, n_building = 1000, rounds = 10, poll_ms = 2000;
static double build_s = 120;
static bool full_every_poll;

static char **building;
static size_t n_ids;
static unsigned answered, shows_failed;
static int listed;

static void run_for(uint64_t usec) {
        uint64_t end = test_now_usec() + usec;

        while (test_now_usec() < end)
                sd_event_run(ev, end - test_now_usec());
}

static double cpu_now(void) {
        struct rusage ru;

        getrusage(RUSAGE_SELF, &ru);
        return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* METHOD PATH on the emulator's API with TOKEN; the answer in *T. */
static int api(const char *method, const char *path, const char *body, const char *token, struct test_response *t) {
        struct http_request *r = NULL;
        char url[512];
        int k;

        memset(t, 0, sizeof(*t));
        snprintf(url, sizeof(url), "%s%s", emu.base, path);
        k = http_request_new(emu.ctl, method, url, &r);
        if (k < 0)
                return k;
        if (body)
                http_request_set_body(r, body, strlen(body), false);
        if (token && ((k = http_request_add_header(r, "X-Auth-Token", token)) < 0 ||
                      (k = http_request_add_header(r, "OpenStack-API-Version", "compute " NOVA_MICROVERSION)) < 0 ||
                      (k = http_request_add_header(r, "Content-Type", "application/json")) < 0)) {
                http_request_unref(r);
                return k;
        }
        http_request_set_timeout(r, 600 * UINT64_C(1000000));
        k = http_request_start(r, test_response_cb, t);
        http_request_unref(r);
        if (k < 0)
                return k;
        return test_run_until(ev, &t->done, 900);
}

/* COUNT servers of the cluster in one multi-create (Nova's max_count). */
static int create_many(const char *token, const char *prefix, unsigned count) {
        struct test_response t;
        char body[768];
        int k;

        snprintf(body, sizeof(body),
                 "{\"server\": {\"name\": \"%s\", \"imageRef\": \"" TINY "\", \"flavorRef\": \"1\", "
                 "\"networks\": \"none\", \"min_count\": %u, \"max_count\": %u, \"tags\": [\"elasticd." CLUSTER "\"], "
                 "\"metadata\": {\"" CLOUD_META_CLUSTER "\": \"" CLUSTER "\", \"" CLOUD_META_NODE "\": \"%s\", "
                 "\"" CLOUD_META_OP "\": \"bench\"}}}",
                 prefix, count, count, prefix);
        k = api("POST", "/compute/v2.1/servers", body, token, &t);
        if (k >= 0 && t.status != 202) {
                fprintf(stderr, "multi-create %s: HTTP %ld %s\n", prefix, t.status, t.body ? t.body : "");
                k = -EIO;
        }
        test_response_clear(&t);
        return k;
}

/* The emulator's count and bytes of ROUTE since the stats were cleared. */
static void route_stats(const char *route, long *ret_calls, long *ret_bytes) {
        _cleanup_free_ char *body = NULL;
        json_t *root;

        *ret_calls = *ret_bytes = 0;
        if (test_emulator_call(&emu, "GET", "/_emulator/stats", NULL, &body) != 200)
                return;
        root = json_loads(body, 0, NULL);
        *ret_calls = (long) json_integer_value(json_object_get(json_object_get(root, "by_route"), route));
        *ret_bytes = (long) json_integer_value(json_object_get(json_object_get(root, "bytes_by_route"), route));
        json_decref(root);
}

static void on_list(struct cloud *c, const struct cloud_result *res, void *userdata) {
        listed = 1;
        if (res->error < 0) {
                fprintf(stderr, "list failed: %s\n", res->os->message ? res->os->message : strerror(-res->error));
                return;
        }
        building = calloc(res->n_servers + 1, sizeof(*building));
        for (size_t i = 0; building && i < res->n_servers; i++)
                if (res->servers[i]->status && strcmp(res->servers[i]->status, "BUILD") == 0)
                        building[n_ids++] = strdup(res->servers[i]->id);
}

static void on_show(struct cloud *c, const struct cloud_result *res, void *userdata) {
        answered++;
        if (res->error < 0)
                shows_failed++;
}

static void usage(void) {
        printf("usage: polls [--servers N] [--building B] [--rounds R] [--poll-ms MS] [--build-s S]\n"
               "             [--full-every-poll]\n"
               "B of N servers build for S seconds (in 4 steps, as Nova's task states); each poll\n"
               "round shows every building one at once, as elasticd's operations do.\n");
}

int main(int argc, char **argv) {
        static const struct option opts[] = {
                { "servers", required_argument, NULL, 'n' },
                { "building", required_argument, NULL, 'b' },
                { "rounds", required_argument, NULL, 'r' },
                { "poll-ms", required_argument, NULL, 'p' },
                { "build-s", required_argument, NULL, 's' },
                { "full-every-poll", no_argument, NULL, 'f' },
                { "help", no_argument, NULL, 'h' },
                {}
        };
        struct cloud_options o = {};
        struct cloud_config *cc;
        struct cloud *c = NULL;
        struct cloud_stats st;
        struct test_response t;
        _cleanup_free_ char *err = NULL, *token = NULL;
        char url[192], knobs[128], prefix[32];
        long pages = 0, bytes = 0, shows = 0, total_calls0, total_calls1;
        double cpu = 0, load[3] = {};
        int opt;

        while ((opt = getopt_long(argc, argv, "n:b:r:p:s:fh", opts, NULL)) >= 0) {
                switch (opt) {
                case 'n': n_servers = (unsigned) atoi(optarg); break;
                case 'b': n_building = (unsigned) atoi(optarg); break;
                case 'r': rounds = (unsigned) atoi(optarg); break;
                case 'p': poll_ms = (unsigned) atoi(optarg); break;
                case 's': build_s = atof(optarg); break;
                case 'f': full_every_poll = true; break;
                case 'h': usage(); return 0;
                default: usage(); return 2;
                }
        }
        if (n_building == 0 || n_building > n_servers || rounds == 0) {
                usage();
                return 2;
        }
        signal(SIGPIPE, SIG_IGN);
        log_setup("polls", getenv("BENCH_DEBUG") ? LOG_DEBUG : LOG_WARNING);
        if (sd_event_new(&ev) < 0)
                return 1;
        if (test_emulator_start(&emu, ev, NULL, NULL) < 0) {
                fprintf(stderr, "cannot start the emulator (%s)\n", test_emulator_path());
                return 1;
        }
        if (test_emulator_config(&emu, "{\"build_delay\": 0, \"quota_instances\": null, \"quota_cores\": null, "
                                       "\"quota_ram\": null}") < 0)
                return 1;
        if (api("POST", "/v3/auth/tokens",
                "{\"auth\": {\"identity\": {\"methods\": [\"password\"], \"password\": {\"user\": {\"name\": \"demo\", "
                "\"domain\": {\"name\": \"Default\"}, \"password\": \"demo\"}}}, \"scope\": {\"project\": {\"name\": "
                "\"demo\", \"domain\": {\"name\": \"Default\"}}}}}",
                NULL, &t) < 0 || !t.subject_token) {
                fprintf(stderr, "no token\n");
                return 1;
        }
        token = TAKE_PTR(t.subject_token);
        test_response_clear(&t);
        for (unsigned made = 0, k = 0; made < n_servers - n_building; k++) {
                unsigned n = n_servers - n_building - made < 1000 ? n_servers - n_building - made : 1000;

                snprintf(prefix, sizeof(prefix), "idle%u", k);
                if (create_many(token, prefix, n) < 0)
                        return 1;
                made += n;
        }
        /* The idle servers changed longer ago than a changes-since list
         * reaches back (its margin, 30 s), as a cluster's idle ones did. */
        run_for(35 * UINT64_C(1000000));
        snprintf(knobs, sizeof(knobs), "{\"build_delay\": %g}", build_s);
        if (test_emulator_config(&emu, knobs) < 0 || create_many(token, "bld", n_building) < 0)
                return 1;

        cc = calloc(1, sizeof(*cc));
        snprintf(url, sizeof(url), "%s/v3", emu.base);
        cc->name = strdup("emu");
        cc->auth_url = strdup(url);
        cc->username = strdup("demo");
        cc->password = strdup("demo");
        cc->user_domain_name = strdup("Default");
        cc->project_name = strdup("demo");
        cc->project_domain_name = strdup("Default");
        cc->verify = true;
        o.cluster = CLUSTER;
        o.max_calls = n_building + 64;
        /* --full-every-poll: every list a full one, as before changes-since */
        o.list_full_usec = full_every_poll ? 1 : 0;
        if (cloud_new(ev, cc, &o, &c, &err) < 0) {
                fprintf(stderr, "cloud_new: %s\n", err ? err : "failed");
                return 1;
        }
        if (cloud_servers_list(c, NULL, on_list, NULL, NULL) < 0)
                return 1;
        while (!listed)
                sd_event_run(ev, UINT64_MAX);
        if (n_ids != n_building) {
                fprintf(stderr, "%zu servers building, expected %u\n", n_ids, n_building);
                return 1;
        }
        total_calls0 = 0;
        printf("servers:     %u, %u of them building for %g s (%u polls of each, %u ms apart)\n", n_servers,
               n_building, build_s, rounds, poll_ms);
        printf("lists:       %s\n", full_every_poll ? "a full one every poll" :
                                                      "changes-since, a full one at least every 60 s");
        printf("round  list pages  list KiB  single shows  client CPU s\n");
        for (unsigned r = 0; r < rounds; r++) {
                long p, b, s, x;
                double c0 = cpu_now(), dc;

                if (test_emulator_call(&emu, "DELETE", "/_emulator/stats", NULL, NULL) != 200)
                        return 1;
                answered = 0;
                for (size_t i = 0; i < n_ids; i++)
                        if (cloud_server_show(c, building[i], on_show, NULL, NULL) < 0)
                                return 1;
                while (answered < n_ids)
                        sd_event_run(ev, UINT64_MAX);
                dc = cpu_now() - c0;
                route_stats(LIST_ROUTE, &p, &b);
                route_stats(SHOW_ROUTE, &s, &x);
                printf("%5u  %10ld  %8.0f  %12ld  %12.3f\n", r + 1, p, b / 1024.0, s, dc);
                pages += p;
                bytes += b;
                shows += s;
                cpu += dc;
                run_for((uint64_t) poll_ms * 1000);
        }
        total_calls1 = pages + shows;
        cloud_get_stats(c, &st);
        (void) getloadavg(load, 3);
        printf("per poll:    %.2f list pages (%.2f calls with single shows), %.0f KiB, %.3f s client CPU\n",
               (double) pages / rounds, (double) (total_calls1 - total_calls0) / rounds, bytes / 1024.0 / rounds,
               cpu / rounds);
        printf("client:      %" PRIu64 " lists for polls (%" PRIu64 " changes-since), %" PRIu64
               " shows answered by them, %u failed\n",
               st.batch_lists, st.batch_delta_lists, st.shows_from_list, shows_failed);
        printf("load:        %.2f %.2f %.2f\n", load[0], load[1], load[2]);
        for (size_t i = 0; i < n_ids; i++)
                free(building[i]);
        free(building);
        cloud_free(c);
        test_emulator_stop(&emu);
        sd_event_unref(ev);
        return shows_failed == 0 ? 0 : 1;
}
