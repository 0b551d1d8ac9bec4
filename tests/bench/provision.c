/* provision.c - benchmark: create N servers through the cloud client against a stand-in server (or the emulator) and wait until all are ACTIVE. */
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <sys/resource.h>

#include "cloud/cloud.h"
#include "util/log.h"
#include "../cloud/testlib.h"

#define TINY "012ff1c6-dc8d-4e82-8f73-8a2a63093040"
#define CLUSTER "bench"

static sd_event *ev;
static struct test_emulator emu;
static unsigned n_servers = 1000, concurrency = 64;
static double latency = 0.1, build_delay = 0;
static unsigned poll_ms = 200;
static bool use_emulator;

/* The C stand-in (standin.c): TEST_EMULATOR's fields filled as
 * test_emulator_start() does, so test_emulator_stop() ends it. */
static int standin_start(struct test_emulator *m, sd_event *e) {
        char port_file[128], lat[32];
        int port = 0;

        memset(m, 0, sizeof(*m));
        snprintf(m->dir, sizeof(m->dir), "/tmp/elasticd-standin-%d-XXXXXX", (int) getpid());
        if (!mkdtemp(m->dir))
                return -1;
        snprintf(port_file, sizeof(port_file), "%s/port", m->dir);
        snprintf(lat, sizeof(lat), "%g", latency);
        m->pid = fork();
        if (m->pid < 0)
                return -1;
        if (m->pid == 0) {
                prctl(PR_SET_PDEATHSIG, SIGTERM);
                execl(STANDIN, STANDIN, "--port-file", port_file, "--latency", lat, (char *) NULL);
                _exit(127);
        }
        for (int i = 0; i < 500 && port <= 0; i++) {
                FILE *f = fopen(port_file, "re");
                if (f) {
                        if (fscanf(f, "%d", &port) != 1)
                                port = 0;
                        fclose(f);
                }
                if (port <= 0) {
                        if (waitpid(m->pid, NULL, WNOHANG) == m->pid) {
                                m->pid = 0;
                                return -1;
                        }
                        usleep(10000);
                }
        }
        if (port <= 0)
                return -1;
        snprintf(m->base, sizeof(m->base), "http://127.0.0.1:%d", port);
        m->ev = e;
        struct http_options o = { .max_in_flight = 2, .max_retries = 1 };
        return http_engine_new(e, &o, &m->ctl);
}

struct bench_server {
        char *id;
        bool active;
        bool show_in_flight;
};

static struct bench_server *servers;
static unsigned created, failed, active;
static unsigned lists_in_flight;
static bool all_answered;
static int done;
static uint64_t t_last_create, t_last_active;

static void mark_active(unsigned i) {
        if (!servers[i].active) {
                servers[i].active = true;
                active++;
        }
        if (active == created && created + failed == n_servers)
                t_last_active = test_now_usec();
        if (active + failed >= n_servers)
                done = 1;
}

static void on_show(struct cloud *c, const struct cloud_result *res, void *userdata) {
        unsigned i = (unsigned) (uintptr_t) userdata;

        servers[i].show_in_flight = false;
        if (res->error == 0 && res->server->status && strcmp(res->server->status, "ACTIVE") == 0)
                mark_active(i);
}

static void on_list(struct cloud *c, const struct cloud_result *res, void *userdata) {
        lists_in_flight--;
        if (res->error < 0) {
                fprintf(stderr, "list failed: %s\n", res->os->message ? res->os->message : strerror(-res->error));
                return;
        }
        for (size_t i = 0; i < res->n_servers; i++) {
                unsigned k;
                if (res->servers[i]->status && strcmp(res->servers[i]->status, "ACTIVE") == 0 &&
                    sscanf(res->servers[i]->name, "bn-%u", &k) == 1 && k < n_servers)
                        mark_active(k);
        }
}

/* While creates are under way: one list at a time. Once all are answered:
 * a list while many are unseen, then a show for each of the few left. */
static void look(struct cloud *c) {
        unsigned left = created - active;

        if (done || left == 0)
                return;
        if (!all_answered || left > concurrency) {
                if (lists_in_flight == 0 && cloud_servers_list(c, NULL, on_list, NULL, NULL) >= 0)
                        lists_in_flight++;
                return;
        }
        for (unsigned i = 0; i < n_servers; i++)
                if (servers[i].id && !servers[i].active && !servers[i].show_in_flight &&
                    cloud_server_show(c, servers[i].id, on_show, (void *) (uintptr_t) i, NULL) >= 0)
                        servers[i].show_in_flight = true;
}

static void on_create(struct cloud *c, const struct cloud_result *res, void *userdata) {
        unsigned i = (unsigned) (uintptr_t) userdata;

        if (res->error < 0) {
                failed++;
                fprintf(stderr, "create bn-%04u failed: %s\n", i,
                        res->os->message ? res->os->message : strerror(-res->error));
        } else {
                created++;
                servers[i].id = strdup(res->id);
        }
        if (created + failed == n_servers) {
                t_last_create = test_now_usec();
                all_answered = true;
                /* Do not wait for the poll tick: look now. */
                look(c);
        }
}

static int on_poll(sd_event_source *s, uint64_t usec, void *userdata) {
        look(userdata);
        if (failed == n_servers)
                done = 1;
        /* From now, not from USEC: the first tick was armed at 0. */
        sd_event_source_set_time_relative(s, poll_ms * 1000);
        sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
        return 0;
}

/* The server's counters (-1: it does not keep that one; the emulator keeps
 * only total and connections). Times are CLOCK_MONOTONIC, as test_now_usec(). */
struct server_stats {
        long long now_ns, total, connections, first_post_ns, last_post_ns, waiting_integral_ns,
                waiting_integral_last_post_ns, max_waiting, cpu_user_us, cpu_sys_us, last_list_ns, last_list_build_ns,
                turnaround_ns, turnarounds;
};

static int server_stats_get(struct server_stats *ret) {
        static const struct {
                const char *key;
                size_t offset;
        } fields[] = {
#define F(x) { #x, offsetof(struct server_stats, x) }
                F(now_ns), F(total), F(connections), F(first_post_ns), F(last_post_ns), F(waiting_integral_ns),
                F(waiting_integral_last_post_ns), F(max_waiting), F(cpu_user_us), F(cpu_sys_us), F(last_list_ns), F(last_list_build_ns),
                F(turnaround_ns), F(turnarounds),
#undef F
        };
        _cleanup_free_ char *body = NULL;
        json_t *root;

        if (test_emulator_call(&emu, "GET", "/_emulator/stats", NULL, &body) != 200)
                return -EIO;
        root = json_loads(body, 0, NULL);
        if (!root)
                return -EBADMSG;
        for (size_t i = 0; i < ELEMENTSOF(fields); i++) {
                json_t *v = json_object_get(root, fields[i].key);
                *(long long *) ((char *) ret + fields[i].offset) = json_is_integer(v) ? json_integer_value(v) : -1;
        }
        json_decref(root);
        return 0;
}

static double tv_sec(struct timeval tv) {
        return (double) tv.tv_sec + (double) tv.tv_usec / 1e6;
}

static void usage(void) {
        printf("usage: provision [--servers N] [--concurrency C] [--latency S] [--poll-ms MS]\n"
               "                 [--emulator [--build-delay S]]\n"
               "Creates N servers (default 1000) with C API calls in flight (64) against the C stand-in\n"
               "server (tests/bench/standin.c; --emulator: tests/emulator/emulator.py or $ELASTICD_EMULATOR)\n"
               "answering every call after S s (0.1), waits until all are ACTIVE and prints the wall time\n"
               "against the bound N/C x S, API calls per server, and the client's and the server's CPU.\n");
}

int main(int argc, char **argv) {
        static const struct option opts[] = {
                { "servers", required_argument, NULL, 'n' },
                { "concurrency", required_argument, NULL, 'c' },
                { "latency", required_argument, NULL, 'l' },
                { "build-delay", required_argument, NULL, 'b' },
                { "poll-ms", required_argument, NULL, 'p' },
                { "emulator", no_argument, NULL, 'e' },
                { "help", no_argument, NULL, 'h' },
                {}
        };
        struct cloud_options o = {};
        struct cloud_config *cc;
        struct cloud *c = NULL;
        struct cloud_stats st;
        sd_event_source *poll = NULL;
        struct rusage ru, ru0;
        struct server_stats s0, s1;
        char url[192], knobs[256];
        _cleanup_free_ char *err = NULL;
        uint64_t t0, t1, t_queued;
        double load[3] = {};
        int opt;

        while ((opt = getopt_long(argc, argv, "n:c:l:b:p:eh", opts, NULL)) >= 0) {
                switch (opt) {
                case 'n': n_servers = (unsigned) atoi(optarg); break;
                case 'c': concurrency = (unsigned) atoi(optarg); break;
                case 'l': latency = atof(optarg); break;
                case 'b': build_delay = atof(optarg); break;
                case 'p': poll_ms = (unsigned) atoi(optarg); break;
                case 'e': use_emulator = true; break;
                case 'h': usage(); return 0;
                default: usage(); return 2;
                }
        }
        if (n_servers == 0 || concurrency == 0 || poll_ms == 0 || (build_delay > 0 && !use_emulator)) {
                usage();
                return 2;
        }

        signal(SIGPIPE, SIG_IGN);
        log_setup("provision", getenv("BENCH_DEBUG") ? LOG_DEBUG : LOG_WARNING);
        if (sd_event_new(&ev) < 0)
                return 1;
        if (!use_emulator) {
                if (standin_start(&emu, ev) < 0) {
                        fprintf(stderr, "cannot start the stand-in server (%s)\n", STANDIN);
                        return 1;
                }
        } else if (test_emulator_start(&emu, ev, NULL, NULL) < 0) {
                fprintf(stderr, "cannot start the emulator (%s)\n", test_emulator_path());
                return 1;
        }
        if (use_emulator)
                snprintf(knobs, sizeof(knobs), "{\"latency\": %g, \"build_delay\": %g, \"quota_instances\": null}", latency,
                 build_delay);
        if (use_emulator && test_emulator_config(&emu, knobs) < 0) {
                fprintf(stderr, "emulator refused %s\n", knobs);
                return 1;
        }

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
        o.http.max_in_flight = concurrency;
        o.max_calls = n_servers + 16;
        if (cloud_new(ev, cc, &o, &c, &err) < 0) {
                fprintf(stderr, "cloud_new: %s\n", err ? err : "failed");
                return 1;
        }

        servers = calloc(n_servers, sizeof(*servers));
        if (!servers)
                return 1;
        /* Authenticate (and warm up) outside the measurement. */
        if (cloud_servers_list(c, NULL, on_list, NULL, NULL) < 0)
                return 1;
        lists_in_flight = 1;
        while (lists_in_flight > 0)
                sd_event_run(ev, UINT64_MAX);
        done = 0;
        active = 0;
        if (server_stats_get(&s0) < 0) {
                fprintf(stderr, "cannot read the server's counters\n");
                return 1;
        }
        getrusage(RUSAGE_SELF, &ru0);

        t0 = test_now_usec();
        for (unsigned i = 0; i < n_servers; i++) {
                char name[32];
                snprintf(name, sizeof(name), "bn-%04u", i);
                struct nova_kv meta[] = {
                        { (char *) CLOUD_META_CLUSTER, (char *) CLUSTER },
                        { (char *) CLOUD_META_NODE, name },
                        { (char *) CLOUD_META_OP, (char *) "bench" },
                };
                const char *nets[] = { "none", NULL };
                struct nova_create s = { .name = name, .flavor_ref = "1", .image_ref = TINY, .networks = nets,
                                         .metadata = meta, .n_metadata = 3 };
                if (cloud_server_create(c, &s, on_create, (void *) (uintptr_t) i, NULL) < 0) {
                        fprintf(stderr, "cannot queue create %u\n", i);
                        return 1;
                }
        }
        t_queued = test_now_usec();
        /* Accuracy 1 us: 0 would mean sd-event's default, 250 ms of slack. */
        sd_event_add_time(ev, &poll, CLOCK_MONOTONIC, 0, 1, on_poll, c);
        while (!done)
                sd_event_run(ev, UINT64_MAX);
        t1 = test_now_usec();
        getrusage(RUSAGE_SELF, &ru);
        if (server_stats_get(&s1) < 0) {
                fprintf(stderr, "cannot read the server's counters\n");
                return 1;
        }
        cloud_get_stats(c, &st);
        (void) getloadavg(load, 3);

        double wall = (double) (t1 - t0) / 1e6;
        double bound = (double) n_servers / concurrency * latency;
        long long calls = s1.total - s0.total;
        printf("servers:            %u created, %u ACTIVE, %u failed\n", created, active, failed);
        printf("concurrency:        %u (max in flight seen %u)\n", concurrency, st.transport.max_in_flight_seen);
        printf("latency per call:   %.3f s, build delay %.3f s\n", latency, build_delay);
        printf("load average:       %.2f %.2f %.2f (at the end)\n", load[0], load[1], load[2]);
        printf("wall time:          %.3f s (last create answered after %.3f s)\n", wall,
               (double) (t_last_create - t0) / 1e6);
        printf("bound N/C x lat:    %.3f s\n", bound);
        printf("ratio:              %.3f (target <= 1.2)\n", bound > 0 ? wall / bound : 0);
        printf("API calls/server:   %.3f (%lld calls)\n", (double) calls / n_servers, calls);
        if (s0.connections >= 0)
                printf("connections opened: %lld\n", s1.connections - s0.connections);
        /* Where the wall time goes, on the one clock both processes read. */
        if (s1.first_post_ns > 0 && s1.last_post_ns > 0) {
                double first = (double) s1.first_post_ns / 1e9 - (double) t0 / 1e6,
                       last = (double) s1.last_post_ns / 1e9 - (double) t0 / 1e6;
                double span = (double) (s1.last_post_ns - s1.first_post_ns) / 1e9,
                       span_all = (double) (s1.now_ns - s1.first_post_ns) / 1e9;

                printf("breakdown:          creates queued in %.3f s; first POST at the server after %.3f s;\n",
                       (double) (t_queued - t0) / 1e6, first);
                printf("                    last POST after %.3f s\n", last);
                printf("                    (ideal: %.3f s, the waves before the last one); ACTIVE seen by the\n",
                       (double) ((n_servers - 1) / concurrency) * latency);
                printf("                    client %.3f s after the last POST came (ideal: one latency, %.3f s)\n",
                       (double) t_last_active / 1e6 - (double) s1.last_post_ns / 1e9, latency);
                if (s1.last_list_ns > 0)
                        printf("                    the last list came %.3f s after the last POST, took %.3f s to\n"
                               "                    build, was read %.3f s after it was due\n",
                               (double) (s1.last_list_ns - s1.last_post_ns) / 1e9, (double) s1.last_list_build_ns / 1e9,
                               (double) t_last_active / 1e6 -
                                       (double) (s1.last_list_ns + s1.last_list_build_ns) / 1e9 - latency);
                if (span > 0)
                        printf("in flight:          %.1f on average while POSTs came, %.1f over the whole run, peak %lld\n",
                               (double) s1.waiting_integral_last_post_ns / 1e9 / span,
                               (double) s1.waiting_integral_ns / 1e9 / span_all, s1.max_waiting);
        }
        if (s1.turnarounds > s0.turnarounds)
                printf("turn-around:        %.2f ms from an answer to the next POST on its connection (%lld POSTs)\n",
                       (double) (s1.turnaround_ns - s0.turnaround_ns) / 1e6 / (double) (s1.turnarounds - s0.turnarounds),
                       s1.turnarounds - s0.turnarounds);
        printf("peak RSS:           %ld KiB\n", ru.ru_maxrss);
        printf("client CPU:         %.3f s user + %.3f s system (the measured part)\n",
               tv_sec(ru.ru_utime) - tv_sec(ru0.ru_utime), tv_sec(ru.ru_stime) - tv_sec(ru0.ru_stime));
        if (s1.cpu_user_us >= 0)
                printf("server CPU:         %.3f s user + %.3f s system (stand-in, the measured part)\n",
                       (double) (s1.cpu_user_us - s0.cpu_user_us) / 1e6,
                       (double) (s1.cpu_sys_us - s0.cpu_sys_us) / 1e6);

        sd_event_source_disable_unref(poll);
        for (unsigned i = 0; i < n_servers; i++)
                free(servers[i].id);
        free(servers);
        cloud_free(c);
        test_emulator_stop(&emu);
        getrusage(RUSAGE_CHILDREN, &ru);
        printf("server CPU:         %.3f s user + %.3f s system (%s, whole run)\n",
               ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6, ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6, use_emulator ? "emulator" : "stand-in");
        sd_event_unref(ev);
        return failed == 0 && active == n_servers ? 0 : 1;
}
