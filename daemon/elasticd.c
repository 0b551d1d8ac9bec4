/* elasticd.c - the daemon: configuration, journal replay, socket, event loop, signals, systemd notification. */
#include <getopt.h>
#include <inttypes.h>
#include <malloc.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>
#include <time.h>

#include "server/auth.h"
#include "cloud/cloud.h"
#include "metrics/httpmetrics.h"
#include "cloud/clouds.h"
#include "config-build.h"
#include "conf/config.h"
#include "conf/confdiff.h"
#include "slurm/ctld.h"
#include "journal/compactor.h"
#include "journal/journal.h"
#include "journal/records.h"
#include "ops/adapters.h"
#include "ops/lifecycle.h"
#include "util/log.h"
#include "util/macro.h"
#include "util/worker.h"
#include "conf/nodemap.h"
#include "push/push.h"
#include "server/request.h"
#include "ops/resize.h"
#include "server/server.h"
#include "journal/state.h"

/* Name of the socket systemd passes (elasticd.socket's FileDescriptorName default). */
#define SOCKET_FD_NAME "elasticd.socket"
/* Replies may be larger than requests: `nodes` on a big cluster (elasticctl accepts 16 MiB). */
#define REPLY_FRAME_MAX ((size_t) 16 << 20)
/* After SIGTERM, replies in progress get this long to be read. */
#define SHUTDOWN_GRACE_USEC (5 * 1000000ULL)
/* SSH pushes at once (each a thread and a session), and waiting behind them. */
#define PUSH_RUNNING_MAX 8
#define PUSH_QUEUED_MAX 4096

struct elasticd {
        sd_event *event;
        struct config *config;
        struct auth *auth;
        struct state *state;
        struct journal *journal;
        struct server *server;
        struct request_context ctx;
        sd_event_source *shutdown_timer;
        struct nodemap *nodemap;
        struct cloud *cloud;
        struct ctld *ctld;
        struct pusher *pusher;
        struct ops_ports ports;        /* ops's view of cloud, ctld and pusher */
        struct lifecycle *lifecycle;
        struct resize *resize;
        struct httpmetrics *metrics;   /* GET /metrics on metrics.listen; NULL if not configured */
        struct worker_pool *loader;    /* reads the journal at start-up while the socket answers */
        struct compactor *compactor;   /* compacts the journal off the loop once running */
        int load_error;
        char *load_message;

        /* Command line overrides, re-applied on reload. */
        const char *config_path;
        const char *socket_override;
        const char *state_dir_override;
        char *socket_path;         /* what we listen on: a change needs a restart */
        char *state_dir;           /* what we journal in: a change needs a restart */
        bool stopping;
        uint64_t compact_next_check;  /* journal bytes before compaction is considered again */
};

static uint64_t now(clockid_t clock) {
        struct timespec ts;

        clock_gettime(clock, &ts);
        return (uint64_t) ts.tv_sec * 1000000ULL + (uint64_t) ts.tv_nsec / 1000;
}

static void help(void) {
        printf("Usage: elasticd [OPTIONS]\n"
               "Grow and shrink a Slurm cluster on OpenStack: the daemon behind elasticctl and the\n"
               "power-saving hooks (elastic-resume, elastic-suspend, ...).\n\n"
               "  -c, --config FILE     configuration file (default %s)\n"
               "      --socket PATH     listen on PATH instead of the configured socket_path\n"
               "      --state-dir DIR   keep the journal in DIR instead of the configured state_dir\n"
               "      --check           check the configuration, print it normalised, exit\n"
               "  -d, --debug           log debug messages\n"
               "      --version         print the version\n"
               "  -h, --help            this help\n",
               ELASTICD_CONFIG_PATH);
}

static int replace_string(char **field, const char *value) {
        char *s = strdup(value);

        if (!s)
                return -ENOMEM;
        free(*field);
        *field = s;
        return 0;
}

static void log_multiline(int level, const char *text) {
        _cleanup_free_ char *copy = strdup(text ? text : "");
        char *save = NULL;

        if (!copy)
                return;
        for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
                log_ctx_msg(level, NULL, "%s", line);
}

/* Load the configuration named on the command line, with the overrides applied. */
static int load_config(struct elasticd *d, struct config **ret, char **ret_errors) {
        _cleanup_(config_freep) struct config *c = NULL;
        int r;

        r = config_load(d->config_path, &c, ret_errors);
        if (r < 0)
                return r;
        if (d->socket_override && replace_string(&c->socket_path, d->socket_override) < 0)
                return -ENOMEM;
        if (d->state_dir_override && replace_string(&c->state_dir, d->state_dir_override) < 0)
                return -ENOMEM;
        *ret = TAKE_PTR(c);
        return 0;
}

static struct server_limits server_limits_from(const struct config *c, const struct auth *a) {
        return (struct server_limits) {
                .max_frame_bytes = c->limits.max_frame_bytes,
                .max_reply_frame_bytes = REPLY_FRAME_MAX,
                .max_clients = c->limits.max_clients,
                .max_queued_requests = c->limits.max_queued_requests,
                .max_reply_bytes = 2 * REPLY_FRAME_MAX,
                .idle_timeout_usec = (uint64_t) c->limits.client_idle_timeout_s * 1000000ULL,
                .frame_timeout_usec = (uint64_t) c->limits.frame_timeout_s * 1000000ULL,
                .reserved_clients = c->limits.reserved_clients,
                .max_clients_per_uid = c->limits.max_clients_per_uid,
                .privileged_uid = a && a->slurm_uid_valid ? a->slurm_uid : (uid_t) -1,
        };
}

/* What the cloud client takes from elasticd.yaml, at start and on reload. */
static struct cloud_options cloud_options_from(const struct config *c) {
        return (struct cloud_options) {
                .cluster = c->cluster,
                .endpoints = {
                        .compute = c->endpoints.compute,
                        .image = c->endpoints.image,
                        .identity = c->endpoints.identity,
                },
                .http = {
                        .max_in_flight = c->limits.api_concurrency,
                        .rate = c->limits.api_rate,
                        .burst = c->limits.api_burst,
                        .timeout_usec = (uint64_t) c->limits.api_timeout_s * 1000000ULL,
                },
                .api_timeout_usec = (uint64_t) c->limits.api_timeout_s * 1000000ULL,
                .create_timeout_usec = (uint64_t) c->limits.create_timeout_s * 1000000ULL,
        };
}

static void notify_status(struct elasticd *d) {
        size_t pending = request_ops_active(&d->ctx);

        sd_notifyf(0, "STATUS=accepting requests; %zu operation%s pending", pending, pending == 1 ? "" : "s");
}

static void compact_journal(struct elasticd *d, bool startup);

static void on_state_changed(void *userdata) {
        struct elasticd *d = userdata;

        compact_journal(d, false);
        notify_status(d);
        /* Accepted operations are carried out from the loop, after the reply. */
        lifecycle_kick(d->lifecycle);
}

/* The lifecycle's records: durable first, then applied to the state. */
static int record_and_apply(void *userdata, json_t *records, char **ret_error) {
        struct elasticd *d = userdata;
        json_t *rec;
        size_t i;
        int r;

        r = journal_append_many(d->journal, records, ret_error);
        if (r < 0)
                return r;
        json_array_foreach(records, i, rec) {
                _cleanup_free_ char *error = NULL;

                r = state_apply(d->state, rec, &error);
                if (r < 0)
                        /* Our own record: a bug. It is on disk, so a restart tells the same story. */
                        log_error("Cannot apply the lifecycle's own record: %s", error ? error : strerror(-r));
        }
        compact_journal(d, false);
        return 0;
}

static void on_lifecycle_changed(void *userdata) {
        notify_status(userdata);
}

/* Refuse a reload: log why, and say it to the requester. */
static int reload_refuse(struct elasticd *d, int r, char *errors, char **ret_error) {
        log_error("Reload of %s refused; the running configuration stays:", d->config_path);
        log_multiline(LOG_ERR, errors ? errors : strerror(-r));
        if (ret_error)
                *ret_error = errors ? errors : strdup(strerror(-r));
        else
                free(errors);
        sd_notify(0, "READY=1");
        notify_status(d);
        return r;
}

/* Swap in a freshly loaded configuration, all of it, or keep the old one:
 * a key that only a restart can apply refuses the whole file. */
static int reload(void *userdata, char **ret_changed, char **ret_error) {
        struct elasticd *d = userdata;
        _cleanup_(config_freep) struct config *c = NULL;
        _cleanup_(auth_freep) struct auth *a = NULL;
        _cleanup_(nodemap_freep) struct nodemap *m = NULL;
        _cleanup_free_ char *errors = NULL, *warning = NULL, *restart = NULL, *live = NULL;
        struct config_change *changes = NULL;
        struct cloud_options opts;
        struct server_limits limits;
        size_t n_changes = 0;
        int r;

        if (d->ctx.loading) {
                log_warning("Not reloading %s: still reading the journal", d->config_path);
                if (ret_error)
                        *ret_error = strdup("elasticd is still reading its journal; reload later");
                return -EBUSY;
        }
        sd_notifyf(0, "RELOADING=1\nSTATUS=reloading %s\nMONOTONIC_USEC=%llu", d->config_path,
                   (unsigned long long) now(CLOCK_MONOTONIC));
        log_info("Reloading %s", d->config_path);

        r = load_config(d, &c, &errors);
        if (r >= 0)
                r = auth_new(c->slurm_user, c->admin_group, &a, &warning);
        if (r >= 0) {
                r = nodemap_new_from_config(c, &m, &errors);
                if (r < 0 && !errors)
                        errors = strdup("cannot map the nodes to their groups");
        }
        if (r >= 0)
                r = config_diff(d->config, c, server_activated(d->server), &changes, &n_changes);
        if (r >= 0) {
                r = config_changes_describe(changes, n_changes, true, &restart);
                if (r >= 0)
                        r = config_changes_describe(changes, n_changes, false, &live);
                changes = config_changes_free(changes, n_changes);
                if (r >= 0 && restart) {
                        errors = mfree(errors);
                        if (asprintf(&errors, "%s: only a restart of elasticd applies %s; change %s back, or "
                                     "restart elasticd", d->config_path, restart,
                                     strchr(restart, ',') ? "them" : "it") < 0)
                                errors = NULL;
                        r = -EINVAL;
                }
        }
        if (r >= 0) {
                /* The cloud client first: it is the one part that can still say no. */
                opts = cloud_options_from(c);
                errors = mfree(errors);
                r = cloud_apply_config(d->cloud, &opts, &errors);
        }
        if (r < 0)
                return reload_refuse(d, r, TAKE_PTR(errors), ret_error);
        if (warning)
                log_warning("%s", warning);

        limits = server_limits_from(c, a);
        server_set_limits(d->server, &limits);
        /* Swap: the old config and map go only after everyone points at the new ones. */
        lifecycle_set_config(d->lifecycle, c, m);
        resize_set_config(d->resize, c, m);
        config_free(d->config);
        d->config = TAKE_PTR(c);
        nodemap_free(d->nodemap);
        d->nodemap = TAKE_PTR(m);
        auth_free(d->auth);
        d->auth = TAKE_PTR(a);
        d->ctx.config = d->config;
        d->ctx.auth = d->auth;
        resize_kick(d->resize);
        lifecycle_kick(d->lifecycle);

        log_info("Configuration %s reloaded: %zu node group%s; %s%s", d->config->path, d->config->n_groups,
                 d->config->n_groups == 1 ? "" : "s", live ? "changed: " : "nothing changed", live ? live : "");
        if (ret_changed)
                *ret_changed = TAKE_PTR(live);
        sd_notify(0, "READY=1");
        notify_status(d);
        return 0;
}

static void on_server_idle(struct server *s, void *userdata) {
        struct elasticd *d = userdata;

        sd_event_exit(d->event, 0);
}

static int on_shutdown_timeout(sd_event_source *src, uint64_t usec, void *userdata) {
        struct elasticd *d = userdata;

        log_warning("Replies still unsent after %llu s; exiting anyway",
                    (unsigned long long) (SHUTDOWN_GRACE_USEC / 1000000));
        return sd_event_exit(d->event, 0);
}

static int on_signal(sd_event_source *src, const struct signalfd_siginfo *si, void *userdata) {
        struct elasticd *d = userdata;

        if (si->ssi_signo == SIGHUP) {
                (void) reload(d, NULL, NULL);
                return 0;
        }
        if (d->stopping)
                return 0;
        d->stopping = true;
        log_info("Received %s: no new requests; finishing the replies in progress", strsignal((int) si->ssi_signo));
        sd_notify(0, "STOPPING=1\nSTATUS=stopping");
        (void) sd_event_add_time_relative(d->event, &d->shutdown_timer, CLOCK_MONOTONIC, SHUTDOWN_GRACE_USEC, 0,
                                          on_shutdown_timeout, d);
        server_stop(d->server, on_server_idle, d);
        return 0;
}

/* Compact a journal past this size holding more than twice the live records.
 * While running, only once it has also doubled since the last compaction (or
 * start-up), so a large live state is not rewritten after every request. */
#define COMPACT_MIN_BYTES ((uint64_t) 4 << 20)

static int add_live_records(struct journal_compaction *c, void *userdata) {
        json_t *live = userdata, *rec;
        size_t i;
        int r;

        json_array_foreach(live, i, rec) {
                /* Replayed records carry the journal's own keys: it sets fresh ones. */
                _cleanup_(json_decrefp) json_t *copy = json_copy(rec);

                if (!copy)
                        return -ENOMEM;
                json_object_del(copy, "seq");
                json_object_del(copy, "ts");
                r = journal_compact_add(c, copy);
                if (r < 0)
                        return r;
        }
        return 0;
}

static void on_compacted(int r, const char *error, const struct compactor_result *res, void *userdata) {
        if (r < 0) {
                /* The old journal is intact: carry on with it. */
                log_warning("Cannot compact the journal: %s", error ? error : strerror(-r));
                return;
        }
        if (res->skipped > 0)
                log_warning("Journal compaction skipped %" PRIu64 " records that do not apply (as start-up does)",
                            res->skipped);
        log_info("Journal compacted from %" PRIu64 " to %" PRIu64 " bytes (%" PRIu64 " live records, %" PRIu64
                 " bytes appended meanwhile) in %.1f ms, %.1f ms of it on the loop",
                 res->bytes_before, res->bytes_after, res->live_records, res->tail_bytes,
                 (double) res->wall_usec / 1000.0, (double) res->loop_usec / 1000.0);
}

/* Rewrite the journal with only the live records once it has grown enough:
 * at start-up here (on the loader thread, nothing else runs), later on the
 * compactor's thread while the loop goes on. */
static void compact_journal(struct elasticd *d, bool startup) {
        _cleanup_(json_decrefp) json_t *live = NULL;
        _cleanup_free_ char *error = NULL;
        struct journal_stats before, after;
        uint64_t t0 = now(CLOCK_MONOTONIC);
        int r;

        journal_get_stats(d->journal, &before);
        if (before.bytes < COMPACT_MIN_BYTES || (!startup && before.bytes < 2 * before.compacted_bytes))
                return;
        if (!startup && (before.bytes < d->compact_next_check || !d->compactor || compactor_running(d->compactor)))
                return;
        if (before.records <= 2 * state_live_records_max(d->state)) {
                /* Mostly live: look again after another quarter of growth. */
                d->compact_next_check = before.bytes + before.bytes / 4;
                return;
        }
        if (!startup) {
                r = compactor_start(d->compactor, on_compacted, d, &error);
                if (r < 0)
                        log_warning("Cannot compact the journal: %s", error ? error : strerror(-r));
                return;
        }
        r = state_live_records(d->state, &live);
        if (r >= 0)
                r = journal_compact(d->journal, add_live_records, live, &error);
        if (r < 0) {
                log_warning("Cannot compact the journal: %s", error ? error : strerror(-r));
                return;
        }
        journal_get_stats(d->journal, &after);
        log_info("Journal compacted from %" PRIu64 " to %" PRIu64 " bytes (%zu live records) in %.1f ms",
                 before.bytes, after.bytes, json_array_size(live), (double) (now(CLOCK_MONOTONIC) - t0) / 1000.0);
}

static int replay_record(json_t *record, void *userdata) {
        struct elasticd *d = userdata;
        _cleanup_free_ char *error = NULL;
        int r;

        r = state_apply(d->state, record, &error);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                /* One bad record must not cost every accepted request after it. */
                log_warning("Skipping a journal record: %s", error ? error : strerror(-r));
        return 0;
}

/* The fast half of opening the journal, before the socket: the lock (a
 * second elasticd must not take over the socket). */
static int lock_journal(struct elasticd *d) {
        _cleanup_free_ char *error = NULL;
        int r;

        r = journal_lock(d->state_dir, &d->journal, &error);
        if (r < 0) {
                if (r == -EBUSY)
                        log_error("Another elasticd is already using the state directory %s: stop it first",
                                  d->state_dir);
                else
                        log_error("Cannot open the journal in %s: %s", d->state_dir, error ? error : strerror(-r));
        }
        return r;
}

/* The slow half, on the loader thread: read, check and replay every record
 * in one pass (100,000 records take a second or more), then compact. The
 * loop meanwhile answers requests busy and touches neither the journal nor
 * the state. */
static void load_journal(void *userdata) {
        struct elasticd *d = userdata;
        uint64_t t0 = now(CLOCK_MONOTONIC);
        struct journal_stats st;

        d->load_error = journal_load(d->journal, replay_record, d, &d->load_message);
        if (d->load_error < 0)
                return;
        journal_get_stats(d->journal, &st);
        if (st.torn_bytes > 0)
                log_warning("Journal %s/%s ended in a partial record (a crash during a write): %" PRIu64
                            " bytes cut off; that request was never answered", d->state_dir, JOURNAL_FILE,
                            st.torn_bytes);
        log_info("Journal replayed in %.1f ms: %" PRIu64 " records, %zu nodes known, %zu operations pending",
                 (double) (now(CLOCK_MONOTONIC) - t0) / 1000.0, st.records, state_n_nodes(d->state),
                 request_ops_active(&d->ctx));
        compact_journal(d, true);
}

static int finish_start(struct elasticd *d);

static void on_journal_loaded(void *userdata, bool cancelled) {
        struct elasticd *d = userdata;
        int r;

        if (cancelled)
                return;
        if (d->load_error < 0) {
                log_error("Cannot replay the journal in %s: %s", d->state_dir,
                          d->load_message ? d->load_message : strerror(-d->load_error));
                (void) sd_event_exit(d->event, d->load_error);
                return;
        }
        d->ctx.loading = false;
        r = finish_start(d);
        if (r < 0)
                (void) sd_event_exit(d->event, r);
}

static int open_socket(struct elasticd *d) {
        _cleanup_free_ char *error = NULL;
        gid_t gid = (gid_t) -1;
        int r;

        r = server_listen_activated(d->server, SOCKET_FD_NAME, &error);
        if (r < 0) {
                log_error("%s", error ? error : strerror(-r));
                return r;
        }
        if (r > 0) {
                log_info("Listening on %s (socket activation)", server_path(d->server));
                if (replace_string(&d->socket_path, server_path(d->server)) < 0)
                        return -ENOMEM;
                return 0;
        }

        if (d->config->socket_group) {
                struct group gr, *res = NULL;
                char buf[16384];

                if (getgrnam_r(d->config->socket_group, &gr, buf, sizeof(buf), &res) != 0 || !res) {
                        log_error("socket_group \"%s\" does not exist", d->config->socket_group);
                        return -ENOENT;
                }
                gid = res->gr_gid;
        }
        r = server_listen_path(d->server, d->config->socket_path, d->config->socket_mode, gid, &error);
        if (r < 0) {
                log_error("%s", error ? error : strerror(-r));
                return r;
        }
        log_info("Listening on %s (mode %04o%s%s)", d->config->socket_path, d->config->socket_mode,
                 d->config->socket_group ? ", group " : "", d->config->socket_group ? d->config->socket_group : "");
        return 0;
}

/* --check: what start-up checks that needs no network, each problem on
 * stderr. Returns the number of problems. */
static int check_startup(const struct config *c) {
        _cleanup_(auth_freep) struct auth *a = NULL;
        _cleanup_(nodemap_freep) struct nodemap *m = NULL;
        _cleanup_free_ char *warning = NULL, *error = NULL;
        struct cloud_config *cc = NULL;
        struct sockaddr_un sa;
        int problems = 0, r;

        if (strlen(c->socket_path) >= sizeof(sa.sun_path)) {
                fprintf(stderr, "elasticd: socket_path %s is %zu bytes; a Unix socket path has at most %zu\n",
                        c->socket_path, strlen(c->socket_path), sizeof(sa.sun_path) - 1);
                problems++;
        }
        if (c->socket_group) {
                struct group gr, *res = NULL;
                char buf[16384];

                if (getgrnam_r(c->socket_group, &gr, buf, sizeof(buf), &res) != 0 || !res) {
                        fprintf(stderr, "elasticd: socket_group \"%s\" does not exist\n", c->socket_group);
                        problems++;
                }
        }
        r = auth_new(c->slurm_user, c->admin_group, &a, &warning);
        if (r < 0) {
                fprintf(stderr, "elasticd: cannot resolve slurm_user and admin_group: %s\n", strerror(-r));
                problems++;
        } else if (warning)
                fprintf(stderr, "elasticd: warning: %s\n", warning);
        r = nodemap_new_from_config(c, &m, &error);
        if (r < 0) {
                fprintf(stderr, "elasticd: cannot map the nodes to their groups: %s\n", error ? error : strerror(-r));
                problems++;
        }
        error = mfree(error);
        r = clouds_load(c->clouds_file, c->cloud, &cc, &error);
        if (r < 0) {
                fprintf(stderr, "elasticd: cannot load cloud \"%s\": %s\n", c->cloud, error ? error : strerror(-r));
                problems++;
        } else
                clouds_free(cc);
        return problems;
}

static enum state_lookup_what lookup_what(enum cloud_lookup_kind k) {
        return k == CLOUD_LOOKUP_FLAVOR ? STATE_LOOKUP_FLAVOR : k == CLOUD_LOOKUP_IMAGE ? STATE_LOOKUP_IMAGE
                                                                                      : STATE_LOOKUP_NETWORK;
}

static enum cloud_lookup_kind lookup_kind(enum state_lookup_what w) {
        return w == STATE_LOOKUP_FLAVOR ? CLOUD_LOOKUP_FLAVOR : w == STATE_LOOKUP_IMAGE ? CLOUD_LOOKUP_IMAGE
                                                                                       : CLOUD_LOOKUP_NETWORK;
}

/* What the cloud client's name -> id cache learned or forgot, journalled: a
 * restart within the cache's TTL takes the ids from the journal instead of
 * asking the cloud again, and a forgotten one is asked for again. */
static void on_lookup(enum cloud_lookup_kind kind, const char *name, const char *id, void *userdata) {
        struct elasticd *d = userdata;
        _cleanup_(json_decrefp) json_t *records = NULL;
        _cleanup_free_ char *error = NULL;
        enum state_lookup_what what = lookup_what(kind);
        json_t *rec = NULL;
        int r;

        if (!id && !state_lookup_find(d->state, what, name))
                return;   /* never journalled: nothing to forget */
        r = record_encode(&(struct record) {
                        .kind = RECORD_LOOKUP,
                        .lookup = {
                                .what = what,
                                .name = name,
                                .id = id,
                                .scope = cloud_lookup_scope(d->cloud),
                                .time = (int64_t) time(NULL),
                        },
                }, &rec, &error);
        if (r >= 0 && (!(records = json_array()) || json_array_append_new(records, TAKE_PTR(rec)) < 0))
                r = -ENOMEM;
        json_decref(rec);
        if (r >= 0)
                r = record_and_apply(d, records, &error);
        if (r < 0)
                log_warning("Cannot journal that %s %s %s%s: %s", state_lookup_what_to_string(what), name,
                            id ? "is " : "was forgotten", id ? id : "", error ? error : strerror(-r));
}

struct seed {
        struct cloud *cloud;
        size_t seeded, skipped;
};

static int seed_lookup(const struct state_lookup *l, void *userdata) {
        struct seed *x = userdata;
        int64_t now_s = (int64_t) time(NULL);
        uint64_t age = l->time < now_s ? (uint64_t) (now_s - l->time) * 1000000ULL : 0;

        if (cloud_lookup_seed(x->cloud, lookup_kind(l->what), l->name, l->id, l->scope, age) == 0)
                x->seeded++;
        else
                x->skipped++;
        return 0;
}

/* The cloud client, the Slurm adapter, and what drives them. */
static int open_cloud_and_slurm(struct elasticd *d) {
        _cleanup_free_ char *error = NULL;
        struct cloud_config *cc = NULL;
        int r;

        r = nodemap_new_from_config(d->config, &d->nodemap, &error);
        if (r < 0) {
                log_error("Cannot map the nodes to their groups: %s", error ? error : strerror(-r));
                return r;
        }
        r = clouds_load(d->config->clouds_file, d->config->cloud, &cc, &error);
        if (r < 0) {
                log_error("Cannot load cloud \"%s\": %s", d->config->cloud, error ? error : strerror(-r));
                return r;
        }
        struct cloud_options opts = cloud_options_from(d->config);
        error = mfree(error);
        r = cloud_new(d->event, cc, &opts, &d->cloud, &error);
        if (r < 0) {
                clouds_free(cc);
                log_error("Cannot set up the cloud client: %s", error ? error : strerror(-r));
                return r;
        }
        log_info("Cloud \"%s\" from %s; instances tagged %s", d->config->cloud,
                 d->config->clouds_file ? d->config->clouds_file : "the clouds.yaml search path",
                 cloud_cluster_tag(d->cloud));
        struct seed seed = { .cloud = d->cloud };
        state_foreach_lookup(d->state, seed_lookup, &seed);
        if (seed.seeded + seed.skipped > 0)
                log_info("%zu resolved flavor, image and network id%s taken from the journal (%zu too old or of "
                         "another cloud)", seed.seeded, seed.seeded == 1 ? "" : "s", seed.skipped);
        cloud_set_lookup_hook(d->cloud, on_lookup, d);

        r = ctld_new(d->event, d->config->slurm_conf, &d->ctld);
        if (r < 0) {
                log_error("Cannot use slurm.conf %s: %s", d->config->slurm_conf ? d->config->slurm_conf : "(default)",
                          strerror(-r));
                return r;
        }

        r = pusher_new(d->event, PUSH_RUNNING_MAX, PUSH_QUEUED_MAX, &d->pusher);
        if (r < 0) {
                log_error("Cannot start the SSH pushers: %s", strerror(-r));
                return r;
        }

        ops_adapters(d->cloud, d->ctld, d->pusher, &d->ports);
        struct lifecycle_env env = {
                .event = d->event,
                .state = d->state,
                .ports = d->ports,
                .record = record_and_apply,
                .changed = on_lifecycle_changed,
                .userdata = d,
        };
        r = lifecycle_new(&env, NULL, d->config, d->nodemap, &d->lifecycle);
        if (r < 0)
                return r;
        r = resize_new(d->event, &d->ports.slurm, d->state, d->config, d->nodemap, &d->resize);
        if (r < 0)
                return r;
        d->ctx.lifecycle = d->lifecycle;
        d->ctx.resize = d->resize;
        d->ctx.cloud = d->cloud;
        return 0;
}

static int render_metrics(void *userdata, char **ret_text) {
        return request_metrics_text(userdata, ret_text);
}

static void elasticd_done(struct elasticd *d) {
        d->loader = worker_pool_free(d->loader);     /* waits for a journal load under way */
        d->compactor = compactor_free(d->compactor); /* abandons a compaction under way */
        free(d->load_message);
        d->metrics = httpmetrics_free(d->metrics);   /* renders from everything below */
        /* ctld and the pushers first: their finished calls report to the lifecycle and resize. */
        d->ctld = ctld_free(d->ctld);
        d->pusher = pusher_free(d->pusher);
        d->lifecycle = lifecycle_free(d->lifecycle);
        d->resize = resize_free(d->resize);
        d->cloud = cloud_free(d->cloud);
        d->nodemap = nodemap_free(d->nodemap);
        d->server = server_free(d->server);
        request_context_done(&d->ctx);
        d->journal = journal_free(d->journal);
        d->state = state_free(d->state);
        d->auth = auth_free(d->auth);
        d->config = config_free(d->config);
        d->shutdown_timer = sd_event_source_disable_unref(d->shutdown_timer);
        d->event = sd_event_unref(d->event);
        free(d->socket_path);
        free(d->state_dir);
}

static int run(struct elasticd *d) {
        _cleanup_free_ char *warning = NULL;
        char prefix[16];
        struct server_limits limits;
        sigset_t mask;
        int r;

        r = auth_new(d->config->slurm_user, d->config->admin_group, &d->auth, &warning);
        if (r < 0)
                return r;
        if (warning)
                log_warning("%s", warning);

        /* Ids carry the start time so that runs are told apart in the logs. */
        snprintf(prefix, sizeof(prefix), "%04x", (unsigned) (time(NULL) & 0xffff));
        r = state_new(prefix, &d->state);
        if (r < 0)
                return r;
        if (!(d->socket_path = strdup(d->config->socket_path)) || !(d->state_dir = strdup(d->config->state_dir)))
                return -ENOMEM;

        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return negative_errno();
        r = sd_event_default(&d->event);
        if (r < 0)
                return r;
        if ((r = sd_event_add_signal(d->event, NULL, SIGTERM, on_signal, d)) < 0 ||
            (r = sd_event_add_signal(d->event, NULL, SIGINT, on_signal, d)) < 0 ||
            (r = sd_event_add_signal(d->event, NULL, SIGHUP, on_signal, d)) < 0)
                return r;
        r = sd_event_set_watchdog(d->event, true);
        if (r < 0)
                log_warning("Cannot set up the systemd watchdog: %s", strerror(-r));

        d->ctx = (struct request_context) {
                .event = d->event,
                .config = d->config,
                .auth = d->auth,
                .state = d->state,
                .start_usec = now(CLOCK_MONOTONIC),
                .reload = reload,
                .state_changed = on_state_changed,
                .userdata = d,
        };

        /* Accepted work first: no request is served before the journal is
         * replayed; until then the socket answers busy. */
        r = lock_journal(d);
        if (r < 0)
                return r;
        d->ctx.journal = d->journal;
        d->ctx.state_dir = d->state_dir;
        d->ctx.loading = true;

        limits = server_limits_from(d->config, d->auth);
        r = server_new(d->event, &limits, request_handle, &d->ctx, &d->server);
        if (r < 0)
                return r;
        d->ctx.server = d->server;
        r = open_socket(d);
        if (r < 0)
                return r;

        r = worker_pool_new(d->event, "journal", 1, 1, &d->loader);
        if (r >= 0)
                r = worker_pool_submit(d->loader, load_journal, on_journal_loaded, d);
        if (r < 0)
                return r;

        r = sd_event_loop(d->event);
        if (r < 0)
                log_error("Event loop failed: %s", strerror(-r));
        log_info("Stopped");
        return r;
}

/* Once the journal is replayed: the cloud, Slurm, metrics, then ready. */
static int finish_start(struct elasticd *d) {
        int r;

        /* The loader stays (idle) until elasticd_done: this runs from its callback. */
        r = compactor_new(d->event, d->journal, &d->compactor);
        if (r < 0)
                return r;
        r = open_cloud_and_slurm(d);
        if (r < 0)
                return r;
        if (d->config->metrics_listen) {
                _cleanup_free_ char *error = NULL;

                /* A reload does not move it: like the socket, a change needs a restart. */
                r = httpmetrics_new(d->event, d->config->metrics_listen, render_metrics, &d->ctx, &d->metrics, &error);
                if (r < 0) {
                        log_error("%s", error ? error : strerror(-r));
                        return r;
                }
                log_info("Serving metrics at http://%s/metrics", d->config->metrics_listen);
        }

        log_info("elasticd %s ready: %zu node group%s, %zu operations pending", ELASTICD_VERSION,
                 d->config->n_groups, d->config->n_groups == 1 ? "" : "s", request_ops_active(&d->ctx));
        sd_notify(0, "READY=1");
        notify_status(d);
        /* Operations the journal holds carry on; the first reconcile starts. */
        lifecycle_kick(d->lifecycle);
        resize_kick(d->resize);
        return 0;
}

int main(int argc, char *argv[]) {
        enum { ARG_SOCKET = 0x100, ARG_STATE_DIR, ARG_CHECK, ARG_VERSION };
        static const struct option options[] = {
                { "config", required_argument, NULL, 'c' },
                { "socket", required_argument, NULL, ARG_SOCKET },
                { "state-dir", required_argument, NULL, ARG_STATE_DIR },
                { "check", no_argument, NULL, ARG_CHECK },
                { "debug", no_argument, NULL, 'd' },
                { "version", no_argument, NULL, ARG_VERSION },
                { "help", no_argument, NULL, 'h' },
                {}
        };
        struct elasticd d = { .config_path = ELASTICD_CONFIG_PATH };
        _cleanup_free_ char *errors = NULL;
        bool check = false, debug = false;
        int c, r;

        while ((c = getopt_long(argc, argv, "c:dh", options, NULL)) >= 0)
                switch (c) {
                case 'c': d.config_path = optarg; break;
                case ARG_SOCKET: d.socket_override = optarg; break;
                case ARG_STATE_DIR: d.state_dir_override = optarg; break;
                case ARG_CHECK: check = true; break;
                case 'd': debug = true; break;
                case ARG_VERSION: printf("elasticd %s\n", ELASTICD_VERSION); return 0;
                case 'h': help(); return 0;
                default: return 2;
                }
        if (optind < argc) {
                fprintf(stderr, "elasticd: unexpected argument \"%s\" (see --help)\n", argv[optind]);
                return 2;
        }

        log_setup("elasticd", debug ? LOG_DEBUG : LOG_INFO);

        /* A Slurm node load at 10,000 nodes allocates and frees ~6 MB on the
         * Slurm thread. glibc then raises its mmap threshold to the largest
         * block freed (libslurm's reply buffer), after which each load's big
         * blocks land among small ones and keep pages resident: a fixed
         * threshold keeps blocks of 128 KiB and more in their own mappings.
         * Small blocks freed into fast bins are merged only by malloc_trim(),
         * which gives back the top of the main arena but never a thread
         * arena's: without fast bins a free merges at once and the arena
         * shrinks itself. Measured: the Slurm thread's arena swung between 1.6
         * and 6.3 MB resident from load to load, now 1.6 MB. */
        (void) mallopt(M_MMAP_THRESHOLD, 128 * 1024);
        (void) mallopt(M_MXFAST, 0);

        r = load_config(&d, &d.config, &errors);
        if (r < 0) {
                fprintf(stderr, "elasticd: %s is not a valid configuration:\n%s%s", d.config_path,
                        errors ? errors : strerror(-r), errors && errors[strlen(errors) - 1] == '\n' ? "" : "\n");
                return 1;
        }
        if (check) {
                int problems = check_startup(d.config);
                r = config_print(d.config, stdout);
                config_free(d.config);
                return r < 0 || problems > 0 ? 1 : 0;
        }

        r = run(&d);
        elasticd_done(&d);
        return r < 0 ? 1 : 0;
}
