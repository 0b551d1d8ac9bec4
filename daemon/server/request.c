/* request.c - one handler per request type; hook requests are journalled before they are answered. */
#include "server/request.h"

#include <inttypes.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "config-build.h"
#include "util/hostlist.h"
#include "util/log.h"
#include "journal/records.h"
#include "metrics/metrics.h"
#include "util/strv.h"
#include "util/urlredact.h"

/* A journal append slower than this is worth a warning: the hook waits for it. */
#define JOURNAL_SLOW_USEC (100 * 1000ULL)

typedef int (*request_handler)(struct request_context *ctx, const char *id, const struct protocol_request *req,
                               const struct server_peer *peer, json_t **ret_result, struct protocol_error *err);

static uint64_t now_monotonic(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000ULL + (uint64_t) ts.tv_nsec / 1000;
}

size_t request_ops_active(const struct request_context *ctx) {
        return state_n_nodes_in(ctx->state, STATE_OP_PENDING) + state_n_nodes_in(ctx->state, STATE_OP_RUNNING);
}

/* Make RECORDS (an array) durable, then apply them to the state. On failure
 * nothing is applied. */
static int commit_records(struct request_context *ctx, const char *id, json_t *records,
                          uint64_t *ret_usec, struct protocol_error *err) {
        _cleanup_free_ char *jerr = NULL;
        uint64_t t0, dt;
        size_t i;
        json_t *rec;
        int r;

        t0 = now_monotonic();
        r = journal_append_many(ctx->journal, records, &jerr);
        dt = now_monotonic() - t0;
        if (r < 0) {
                log_req(LOG_ERR, id, "Cannot journal the request: %s", jerr ? jerr : strerror(-r));
                protocol_error_set(err, PROTOCOL_ERROR_JOURNAL_FAILED,
                                   "the request could not be made durable (%s); nothing was accepted",
                                   jerr ? jerr : strerror(-r));
                return r;
        }
        if (ret_usec)
                *ret_usec = dt;
        ctx->n_journal_writes++;
        ctx->journal_usec_total += dt;
        if (dt > ctx->journal_usec_max)
                ctx->journal_usec_max = dt;
        if (dt > JOURNAL_SLOW_USEC)
                log_req(LOG_WARNING, id, "Journal append with fdatasync took %.1f ms", (double) dt / 1000.0);
        else
                log_req(LOG_DEBUG, id, "Journal append with fdatasync took %.3f ms", (double) dt / 1000.0);

        json_array_foreach(records, i, rec) {
                _cleanup_free_ char *serr = NULL;

                r = state_apply(ctx->state, rec, &serr);
                if (r < 0)
                        /* Our own record: a bug. It is on disk, so a restart tells the same story. */
                        log_req(LOG_ERR, id, "Cannot apply journal record %zu: %s", i, serr ? serr : strerror(-r));
        }
        ctx->n_accepted++;
        if (ctx->state_changed)
                ctx->state_changed(ctx->userdata);
        return 0;
}

/* The journal record of accepted request ID, as far as REQ and the peer tell. */
static struct record request_record(const char *id, const struct protocol_request *req,
                                    const struct server_peer *peer, time_t now) {
        enum record_request_type type = _RECORD_REQUEST_TYPE_MAX;

        switch (req->type) {
        case PROTOCOL_REQUEST_RESUME:      type = RECORD_REQUEST_RESUME; break;
        case PROTOCOL_REQUEST_SUSPEND:     type = RECORD_REQUEST_SUSPEND; break;
        case PROTOCOL_REQUEST_RESUME_FAIL: type = RECORD_REQUEST_RESUME_FAIL; break;
        case PROTOCOL_REQUEST_REBOOT:      type = RECORD_REQUEST_REBOOT; break;
        case PROTOCOL_REQUEST_RESIZE:      type = RECORD_REQUEST_RESIZE; break;
        default: break;   /* not journalled: record_encode refuses it */
        }
        return (struct record) {
                .kind = RECORD_REQUEST,
                .request = {
                        .id = id,
                        .type = type,
                        .uid = (int64_t) peer->uid,
                        .pid = (int64_t) peer->pid,
                        .time = (int64_t) now,
                        .client = req->client,
                        .job_id = req->job_id,
                        .reason = req->reason,
                        .features = req->features,
                        .resume_file_error = req->resume_file_error,
                        .resume_file = req->resume_file,
                },
        };
}

/* REC's JSON, put at INDEX of RECORDS (-1: appended). Our own record
 * refused is a bug: logged. */
static int put_record(const char *id, json_t *records, ssize_t index, const struct record *rec) {
        _cleanup_free_ char *error = NULL;
        json_t *o;
        int r;

        r = record_encode(rec, &o, &error);
        if (r < 0) {
                if (r != -ENOMEM)
                        log_req(LOG_ERR, id, "Cannot build a journal record: %s", error ? error : strerror(-r));
                return r;
        }
        r = index < 0 ? json_array_append_new(records, o) : json_array_insert_new(records, (size_t) index, o);
        return r < 0 ? -ENOMEM : 0;
}

/* Compress names into a hostlist for messages; "?" if that fails. */
static char *compress_or_placeholder(char **names, size_t n) {
        char *s = NULL;

        if (hostlist_compress(names, n, &s, NULL) < 0 || !s)
                return strdup("?");
        return s;
}

/* A hook repeated while its operation runs is the same request, except a
 * reboot whose instance already rebooted (waiting for slurmd): Slurm asking
 * again then means another reboot. */
static bool same_op_pending(const struct state_node *sn, enum state_op_kind kind) {
        if (sn->op.kind != kind)
                return false;
        return !(kind == STATE_OP_REBOOT && sn->step && strcmp(sn->step, "registering") == 0);
}

static int handle_hook(struct request_context *ctx, const char *id, const struct protocol_request *req,
                       const struct server_peer *peer, json_t **ret_result, struct protocol_error *err) {
        _cleanup_(strv_freep) char **nodes = NULL;
        _cleanup_free_ char **pending = NULL;
        _cleanup_free_ size_t *groups = NULL;
        _cleanup_free_ char **unknown = NULL;
        _cleanup_free_ char *msg = NULL, *compressed = NULL, *pending_list = NULL, *accepted = NULL;
        _cleanup_(json_decrefp) json_t *records = NULL, *ops = NULL, *result = NULL;
        struct record rec;
        size_t n = 0, n_unknown = 0, n_pending = 0, n_new = 0, n_superseded = 0;
        enum state_op_kind kind;
        time_t now = time(NULL);
        uint64_t t0 = now_monotonic(), journal_usec = 0;
        char superseded_count[32];
        int r;

        switch (req->type) {
        case PROTOCOL_REQUEST_RESUME:      kind = STATE_OP_RESUME; break;
        case PROTOCOL_REQUEST_SUSPEND:     kind = STATE_OP_SUSPEND; break;
        case PROTOCOL_REQUEST_RESUME_FAIL: kind = STATE_OP_RESUME_FAIL; break;
        case PROTOCOL_REQUEST_REBOOT:      kind = STATE_OP_REBOOT; break;
        default:
                protocol_error_set(err, PROTOCOL_ERROR_INTERNAL, "not a hook request");
                return -EINVAL;
        }

        r = hostlist_expand(req->nodes, ctx->config->limits.max_hostlist_nodes, &nodes, &n, &msg);
        if (r == -E2BIG) {
                protocol_error_set(err, PROTOCOL_ERROR_TOO_MANY_NODES, "%s (limits.max_hostlist_nodes is %u)",
                                   msg ? msg : "too many nodes", ctx->config->limits.max_hostlist_nodes);
                return r;
        }
        if (r < 0) {
                protocol_error_set(err, r == -EINVAL ? PROTOCOL_ERROR_BAD_HOSTLIST : PROTOCOL_ERROR_INTERNAL,
                                   "%s", msg ? msg : strerror(-r));
                return r;
        }
        if (n == 0) {
                protocol_error_set(err, PROTOCOL_ERROR_BAD_HOSTLIST, "the hostlist \"%s\" names no node", req->nodes);
                return -EINVAL;
        }

        pending = calloc(n, sizeof(*pending));
        if (!pending)
                return -ENOMEM;
        groups = calloc(n, sizeof(*groups));
        unknown = calloc(n, sizeof(*unknown));
        if (!groups || !unknown)
                return -ENOMEM;
        /* The configuration refuses a node in two groups: one lookup each. */
        for (size_t i = 0; i < n; i++)
                if (config_node_find(ctx->config, nodes[i], &groups[i], NULL) < 0)
                        unknown[n_unknown++] = nodes[i];
        if (n_unknown > 0) {
                /* What is wrong first, then the nodes, cut between nodes to
                 * fit the reply's message. */
                _cleanup_free_ char *text = NULL;

                if (hostlist_message(&text, PROTOCOL_MESSAGE_MAX - 1, unknown, n_unknown,
                                     "%zu node%s in no node group of %s", HOSTLIST_NODES(n_unknown),
                                     ctx->config->path) < 0)
                        return -ENOMEM;
                protocol_error_set(err, PROTOCOL_ERROR_UNKNOWN_NODE, "%s", text);
                return -ENOENT;
        }

        records = json_array();
        ops = json_array();
        compressed = compress_or_placeholder(nodes, n);
        if (!records || !ops || !compressed)
                return -ENOMEM;

        for (size_t i = 0; i < n; i++) {
                const struct state_node *sn = state_node_find(ctx->state, nodes[i]);
                _cleanup_free_ char *op_id = NULL;

                if (sn && state_op_state_is_active(sn->op.state)) {
                        if (same_op_pending(sn, kind)) {
                                pending[n_pending++] = nodes[i];
                                continue;
                        }
                        /* Superseded: slurmctld's latest decision wins (state.h). */
                        r = put_record(id, records, -1, &(struct record) {
                                .kind = RECORD_OP_STATE,
                                .op_state = {
                                        .id = sn->op.id,
                                        .node = sn->name,
                                        .state = STATE_OP_CANCELLED,
                                        .time = (int64_t) now,
                                        .note = RECORD_TEXT("superseded"),
                                        .by_request = id,
                                },
                        });
                        if (r < 0)
                                return r;
                        /* Per node at debug: the request's own line counts them. */
                        log_ctx_msg(LOG_DEBUG, &(struct log_ctx) { .request = id, .node = sn->name, .op = sn->op.id },
                                    "Pending %s superseded by %s", state_op_kind_to_string(sn->op.kind),
                                    state_op_kind_to_string(kind));
                        n_superseded++;
                }

                r = state_new_id(ctx->state, 'o', &op_id);
                if (r < 0)
                        return r;
                r = put_record(id, records, -1, &(struct record) {
                        .kind = RECORD_OP,
                        .op = {
                                .id = op_id,
                                .node = nodes[i],
                                .group = ctx->config->groups[groups[i]].name,
                                .op = kind,
                                .state = STATE_OP_PENDING,
                                .request = id,
                                .time = (int64_t) now,
                        },
                });
                if (r < 0)
                        return r;
                if (json_array_append_new(ops, json_string(op_id)) < 0)
                        return -ENOMEM;
                n_new++;
        }
        /* The request first: replay meets it before its operations. */
        rec = request_record(id, req, peer, now);
        rec.request.nodes = compressed;
        rec.request.operations = (int64_t) n_new;
        r = put_record(id, records, 0, &rec);
        if (r < 0)
                return r;

        r = commit_records(ctx, id, records, &journal_usec, err);
        if (r < 0)
                return r;

        result = json_pack("{s:I, s:s, s:I}", "accepted", (json_int_t) n, "nodes", compressed,
                           "operations_created", (json_int_t) n_new);
        if (!result)
                return -ENOMEM;
        if (n_new <= REQUEST_REPLY_OPS_MAX)
                r = json_object_set(result, "operations", ops);
        else
                r = json_object_set_new(result, "operations", json_integer((json_int_t) n_new));
        if (r < 0)
                return -ENOMEM;
        if (n_pending > 0) {
                _cleanup_free_ char *all = compress_or_placeholder(pending, n_pending);

                if (json_object_set_new(result, "already_pending", json_string(all ? all : "?")) < 0)
                        return -ENOMEM;
                /* For the log line: a share of it, cut between nodes. */
                if (hostlist_message(&pending_list, HOSTLIST_MESSAGE_MAX / 4, pending, n_pending,
                                     ", %zu node%s already pending", HOSTLIST_NODES(n_pending)) < 0)
                        return -ENOMEM;
        }
        if (hostlist_message(&accepted, HOSTLIST_MESSAGE_MAX / 2, nodes, n, "%zu node%s", HOSTLIST_NODES(n)) < 0)
                return -ENOMEM;
        if (n_superseded > 0 && json_object_set_new(result, "superseded", json_integer((json_int_t) n_superseded)) < 0)
                return -ENOMEM;

        snprintf(superseded_count, sizeof(superseded_count), "%zu", n_superseded);
        log_req(LOG_INFO, id,
                "%s of %s from uid %u pid %d%s%s: accepted, %zu new operation%s%s%s%s "
                "(%.1f ms, journal %.1f ms)",
                protocol_request_type_to_string(req->type), accepted,
                (unsigned) peer->uid, (int) peer->pid, req->job_id ? " job " : "", req->job_id ? req->job_id : "",
                n_new, n_new == 1 ? "" : "s",
                n_superseded ? ", superseding other operations: " : "", n_superseded ? superseded_count : "",
                n_pending ? pending_list : "",
                (double) (now_monotonic() - t0) / 1000.0, (double) journal_usec / 1000.0);
        *ret_result = TAKE_PTR(result);
        return 0;
}

static int handle_resize(struct request_context *ctx, const char *id, const struct protocol_request *req,
                         const struct server_peer *peer, json_t **ret_result, struct protocol_error *err) {
        const struct config *cfg = ctx->config;
        _cleanup_(json_decrefp) json_t *records = NULL;
        struct record rec;
        const struct config_group *g;
        size_t n_nodes = 0;
        int idx, r;

        if (req->group) {
                idx = config_group_find(cfg, req->group);
                if (idx < 0) {
                        protocol_error_set(err, PROTOCOL_ERROR_NOT_FOUND, "no node group \"%s\" in %s",
                                           req->group, cfg->path);
                        return -ENOENT;
                }
        } else if (cfg->n_groups == 1) {
                idx = 0;
        } else {
                protocol_error_set(err, PROTOCOL_ERROR_BAD_REQUEST,
                                   "%zu node groups are configured: name one with \"group\"", cfg->n_groups);
                return -EINVAL;
        }
        g = &cfg->groups[idx];
        n_nodes = g->n_nodes;
        if (req->min > n_nodes) {
                protocol_error_set(err, PROTOCOL_ERROR_BAD_REQUEST, "group \"%s\" has %zu nodes, cannot keep %u up",
                                   g->name, n_nodes, req->min);
                return -EINVAL;
        }

        records = json_array();
        if (!records)
                return -ENOMEM;
        rec = request_record(id, req, peer, time(NULL));
        rec.request.group = g->name;
        rec.request.min = req->min;
        rec.request.wait = req->wait;
        r = put_record(id, records, -1, &rec);
        if (r < 0)
                return r;
        r = commit_records(ctx, id, records, NULL, err);
        if (r < 0)
                return r;

        log_req(LOG_INFO, id, "resize group %s to min %u from uid %u pid %d: accepted", g->name, req->min,
                (unsigned) peer->uid, (int) peer->pid);
        resize_kick(ctx->resize);
        /* "wait" is done by the client: elasticctl resize --wait polls status's "resize". */
        *ret_result = json_pack("{s:s, s:I, s:b}", "group", g->name, "min", (json_int_t) req->min,
                                "accepted", 1);
        return *ret_result ? 0 : -ENOMEM;
}

static int handle_reload(struct request_context *ctx, const char *id, const struct protocol_request *req,
                         const struct server_peer *peer, json_t **ret_result, struct protocol_error *err) {
        _cleanup_free_ char *error = NULL, *changed = NULL;
        _cleanup_(json_decrefp) json_t *result = NULL;
        int r;

        log_req(LOG_INFO, id, "Reload asked by uid %u pid %d", (unsigned) peer->uid, (int) peer->pid);
        r = ctx->reload(ctx->userdata, &changed, &error);
        if (r < 0) {
                protocol_error_set(err, r == -EBUSY ? PROTOCOL_ERROR_BUSY :
                                        r == -ENOMEM ? PROTOCOL_ERROR_INTERNAL : PROTOCOL_ERROR_CONFIG_REFUSED,
                                   "reload failed, the running configuration stays: %s",
                                   error ? error : strerror(-r));
                return r;
        }
        result = json_pack("{s:b}", "reloaded", 1);
        if (!result || (changed && json_object_set_new(result, "changed", json_string(changed)) < 0))
                return -ENOMEM;
        *ret_result = TAKE_PTR(result);
        return 0;
}

static int handle_group_enable(struct request_context *ctx, const char *id, const struct protocol_request *req,
                               const struct server_peer *peer, json_t **ret_result, struct protocol_error *err) {
        bool was;

        if (config_group_find(ctx->config, req->group) < 0) {
                protocol_error_set(err, PROTOCOL_ERROR_NOT_FOUND, "no node group \"%s\" in %s", req->group,
                                   ctx->config->path);
                return -ENOENT;
        }
        was = ctx->lifecycle && lifecycle_group_enable(ctx->lifecycle, req->group);
        *ret_result = json_pack("{s:s, s:b}", "group", req->group, "was_short", was);
        return *ret_result ? 0 : -ENOMEM;
}

static int handle_ping(struct request_context *ctx, const char *id, const struct protocol_request *req,
                       const struct server_peer *peer, json_t **ret_result, struct protocol_error *err) {
        *ret_result = json_pack("{s:s}", "version", ELASTICD_VERSION);
        return *ret_result ? 0 : -ENOMEM;
}

static int handle_status(struct request_context *ctx, const char *id, const struct protocol_request *req,
                         const struct server_peer *peer, json_t **ret_result, struct protocol_error *err) {
        _cleanup_(json_decrefp) json_t *result = NULL, *by_state = NULL, *journal = NULL;
        uint64_t uptime = (now_monotonic() - ctx->start_usec) / 1000000;
        struct journal_stats js;

        by_state = json_object();
        if (!by_state)
                return -ENOMEM;
        for (int st = 0; st < _STATE_OP_STATE_MAX; st++)
                if (json_object_set_new(by_state, state_op_state_to_string(st),
                                        json_integer((json_int_t) state_n_nodes_in(ctx->state, st))) < 0)
                        return -ENOMEM;
        journal_get_stats(ctx->journal, &js);
        journal = json_pack("{s:s, s:I, s:I, s:I, s:I, s:f, s:f}",
                            "dir", ctx->state_dir,
                            "bytes", (json_int_t) js.bytes,
                            "records", (json_int_t) js.records,
                            "compactions", (json_int_t) js.compactions,
                            "appends_since_start", (json_int_t) ctx->n_journal_writes,
                            "append_ms_avg", ctx->n_journal_writes ?
                                    (double) ctx->journal_usec_total / (double) ctx->n_journal_writes / 1000.0 : 0.0,
                            "append_ms_max", (double) ctx->journal_usec_max / 1000.0);
        result = json_pack("{s:s, s:I, s:s, s:s, s:b, s:I, s:I, s:O, s:I, s:I, s:I, s:O}",
                           "version", ELASTICD_VERSION,
                           "uptime_seconds", (json_int_t) uptime,
                           "config", ctx->config->path ? ctx->config->path : "",
                           "socket", server_path(ctx->server),
                           "socket_activated", server_activated(ctx->server),
                           "groups", (json_int_t) ctx->config->n_groups,
                           "nodes_known", (json_int_t) state_n_nodes(ctx->state),
                           "nodes_by_operation_state", by_state,
                           "operations_pending", (json_int_t) request_ops_active(ctx),
                           "requests_accepted", (json_int_t) ctx->n_accepted,
                           "clients", (json_int_t) server_n_clients(ctx->server),
                           "journal", journal);
        if (!result)
                return -ENOMEM;
        if (ctx->lifecycle) {
                struct lifecycle_stats ls;
                json_t *ops = json_object(), *o;

                lifecycle_get_stats(ctx->lifecycle, &ls);
                for (int k = 0; ops && k < _STATE_OP_KIND_MAX; k++) {
                        o = json_pack("{s:I, s:I, s:I}", "started", (json_int_t) ls.started[k], "succeeded",
                                      (json_int_t) ls.succeeded[k], "failed", (json_int_t) ls.failed[k]);
                        if (!o || json_object_set_new(ops, state_op_kind_to_string(k), o) < 0)
                                return json_decref(ops), -ENOMEM;
                }
                if (!ops || json_object_set_new(result, "operations", ops) < 0 ||
                    json_object_set_new(result, "operations_in_flight", json_integer(ls.active)) < 0 ||
                    json_object_set_new(result, "instances_created", json_integer((json_int_t) ls.instances_created)) < 0 ||
                    json_object_set_new(result, "instances_deleted", json_integer((json_int_t) ls.instances_deleted)) < 0 ||
                    json_object_set_new(result, "orphans_deleted", json_integer((json_int_t) ls.orphans_deleted)) < 0 ||
                    json_object_set_new(result, "cloud_errors_last_hour", json_integer(ls.cloud_errors_last_hour)) < 0 ||
                    json_object_set_new(result, "capacity_failovers", json_integer((json_int_t) ls.capacity_failovers)) < 0 ||
                    json_object_set_new(result, "unhealthy_nodes", json_integer((json_int_t) ls.unhealthy)) < 0)
                        return -ENOMEM;

                /* Groups the cloud has no room for, and until when. */
                struct capacity_group cg[32];
                size_t n = lifecycle_capacity(ctx->lifecycle, cg, ELEMENTSOF(cg));
                json_t *short_of = json_object();

                if (!short_of || json_object_set_new(result, "short_of_capacity", short_of) < 0)
                        return -ENOMEM;
                for (size_t i = 0; i < n && i < ELEMENTSOF(cg); i++) {
                        char until[32] = "", since[32] = "";
                        struct tm tm;

                        if (gmtime_r(&cg[i].until, &tm))
                                strftime(until, sizeof(until), "%Y-%m-%dT%H:%M:%SZ", &tm);
                        if (gmtime_r(&cg[i].since, &tm))
                                strftime(since, sizeof(since), "%Y-%m-%dT%H:%M:%SZ", &tm);
                        json_t *g = json_pack("{s:s, s:s, s:I, s:I, s:s?}", "since", since, "until", until,
                                              "seconds_left", (json_int_t) (cg[i].until - time(NULL)),
                                              "failovers", (json_int_t) cg[i].failovers, "reason", cg[i].reason);
                        if (!g || json_object_set_new(short_of, cg[i].group, g) < 0)
                                return -ENOMEM;
                }
        }
        if (ctx->resize) {
                json_t *groups = json_object();

                if (!groups || resize_status(ctx->resize, groups) < 0) {
                        json_decref(groups);
                        return -ENOMEM;
                }
                if (json_object_set_new(result, "resize", groups) < 0)
                        return -ENOMEM;
        }
        *ret_result = TAKE_PTR(result);
        return 0;
}

int request_metrics_text(struct request_context *ctx, char **ret_text) {
        struct metrics_source src = {
                .state = ctx->state,
                .journal = ctx->journal,
                .lifecycle = ctx->lifecycle,
                .cloud = ctx->cloud,
                .requests = ctx->n_requests,
                .requests_refused = ctx->n_refused,
                .uptime_seconds = (now_monotonic() - ctx->start_usec) / 1000000,
        };

        return metrics_render(&src, ret_text);
}

static int handle_metrics(struct request_context *ctx, const char *id, const struct protocol_request *req,
                          const struct server_peer *peer, json_t **ret_result, struct protocol_error *err) {
        _cleanup_free_ char *text = NULL;
        int r;

        r = request_metrics_text(ctx, &text);
        if (r < 0)
                return r;
        *ret_result = json_pack("{s:s}", "text", text);
        return *ret_result ? 0 : -ENOMEM;
}

/* A note often quotes a cloud's error: no URL's password or token in a
 * reply (the journal and the log redact their own copies). */
static json_t *json_string_redacted(const char *s) {
        _cleanup_free_ char *clean = NULL;
        size_t size;

        if (!strstr(s, "://"))
                return json_string(s);
        size = 2 * strlen(s) + 2;
        clean = malloc(size);
        if (!clean)
                return NULL;
        urlredact(s, clean, size);
        return json_string(clean);
}

static json_t *node_json(const struct request_context *ctx, const char *name, const char *group,
                         const struct state_node *sn, time_t now) {
        const char *slurm_state = NULL, *instance_status = NULL;
        json_t *o;

        /* What the lifecycle last saw of Slurm and Nova; null = not seen yet. */
        lifecycle_node_view(ctx->lifecycle, name, &slurm_state, &instance_status);
        o = json_pack("{s:s, s:o, s:s, s:n, s:o, s:n}",
                      "name", name,
                      "slurm_state", slurm_state ? json_string(slurm_state) : json_null(),
                      "group", group ? group : (sn ? sn->group : "-"),
                      "instance_id",
                      "instance_status", instance_status ? json_string(instance_status) : json_null(),
                      "address");
        if (!o)
                return NULL;
        if (sn) {
                int64_t age = now - sn->op.created;
                if (json_object_set_new(o, "operation", json_string(state_op_kind_to_string(sn->op.kind))) < 0 ||
                    json_object_set_new(o, "operation_state",
                                        json_string(state_op_state_to_string(sn->op.state))) < 0 ||
                    json_object_set_new(o, "operation_id", json_string(sn->op.id)) < 0 ||
                    json_object_set_new(o, "operation_age_seconds", json_integer(age > 0 ? age : 0)) < 0 ||
                    json_object_set_new(o, "request", sn->op.request_id ? json_string(sn->op.request_id)
                                                                        : json_null()) < 0 ||
                    (sn->instance_id && json_object_set_new(o, "instance_id", json_string(sn->instance_id)) < 0) ||
                    (sn->address && json_object_set_new(o, "address", json_string(sn->address)) < 0) ||
                    (sn->step && json_object_set_new(o, "step", json_string(sn->step)) < 0) ||
                    (sn->note && json_object_set_new(o, "note", json_string_redacted(sn->note)) < 0))
                        return json_decref(o), NULL;
        } else if (json_object_set_new(o, "operation", json_null()) < 0 ||
                   json_object_set_new(o, "operation_age_seconds", json_null()) < 0)
                return json_decref(o), NULL;
        return o;
}

/* The row form ("rows": true): the same values as node_json()'s keys, in
 * this order, null for none. Arrays cost a client's JSON parser a fraction
 * of what one object per node does (elasticctl nodes at 10,000 nodes). */
static const char *const node_columns[] = {
        "name", "slurm_state", "group", "instance_id", "instance_status", "address", "operation",
        "operation_state", "operation_id", "operation_age_seconds", "request", "step", "note",
};

static json_t *string_or_null(const char *s) {
        return s ? json_string(s) : json_null();
}

static json_t *node_row(const struct request_context *ctx, const char *name, const char *group,
                        const struct state_node *sn, time_t now) {
        const char *slurm_state = NULL, *instance_status = NULL;
        json_t *v[ELEMENTSOF(node_columns)], *row;
        size_t i = 0;
        bool ok;

        lifecycle_node_view(ctx->lifecycle, name, &slurm_state, &instance_status);
        v[i++] = json_string(name);
        v[i++] = string_or_null(slurm_state);
        v[i++] = json_string(group ? group : (sn ? sn->group : "-"));
        v[i++] = string_or_null(sn ? sn->instance_id : NULL);
        v[i++] = string_or_null(instance_status);
        v[i++] = string_or_null(sn ? sn->address : NULL);
        v[i++] = string_or_null(sn ? state_op_kind_to_string(sn->op.kind) : NULL);
        v[i++] = string_or_null(sn ? state_op_state_to_string(sn->op.state) : NULL);
        v[i++] = string_or_null(sn ? sn->op.id : NULL);
        v[i++] = sn ? json_integer(now - sn->op.created > 0 ? now - sn->op.created : 0) : json_null();
        v[i++] = string_or_null(sn ? sn->op.request_id : NULL);
        v[i++] = string_or_null(sn ? sn->step : NULL);
        v[i++] = sn && sn->note ? json_string_redacted(sn->note) : json_null();
        row = json_array();
        ok = row != NULL;
        for (size_t k = 0; k < i; k++) {
                if (ok && v[k])
                        ok = json_array_append_new(row, v[k]) == 0; /* takes v[k] even when it fails */
                else {
                        ok = false;
                        json_decref(v[k]);
                }
        }
        if (!ok) {
                json_decref(row);
                return NULL;
        }
        return row;
}

/* The table form ("table": true): one line per node, the values of
 * node_columns separated by tabs, none as empty, the empty values at the end
 * of a line left out; control characters in a value become spaces. One
 * string is what a client's JSON parser reads fastest: at 10,000 nodes
 * about a third of the rows' cost, with the ~80,000 values never allocated
 * on either side. */
struct table_line {
        FILE *f;
        size_t pending_tabs;   /* empty values not written yet */
        bool first;
};

static void table_put(struct table_line *t, const char *s) {
        if (!t->first)
                t->pending_tabs++;
        t->first = false;
        if (!s || !*s)
                return;
        for (; t->pending_tabs > 0; t->pending_tabs--)
                fputc_unlocked('\t', t->f);
        for (; *s; s++)
                fputc_unlocked((unsigned char) *s < 0x20 || *s == 0x7f ? ' ' : *s, t->f);
}

static void node_line(FILE *f, const struct request_context *ctx, const char *name, const char *group,
                      const struct state_node *sn, time_t now) {
        const char *slurm_state = NULL, *instance_status = NULL;
        struct table_line t = { .f = f, .first = true };
        _cleanup_free_ char *note = NULL;
        char age[24] = "";

        lifecycle_node_view(ctx->lifecycle, name, &slurm_state, &instance_status);
        if (sn)
                snprintf(age, sizeof(age), "%" PRIi64, (int64_t) (now - sn->op.created > 0 ? now - sn->op.created : 0));
        if (sn && sn->note && strstr(sn->note, "://")) {
                size_t size = 2 * strlen(sn->note) + 2;

                note = malloc(size);
                if (note)
                        urlredact(sn->note, note, size);
        }
        table_put(&t, name);
        table_put(&t, slurm_state);
        table_put(&t, group ? group : (sn ? sn->group : "-"));
        table_put(&t, sn ? sn->instance_id : NULL);
        table_put(&t, instance_status);
        table_put(&t, sn ? sn->address : NULL);
        table_put(&t, sn ? state_op_kind_to_string(sn->op.kind) : NULL);
        table_put(&t, sn ? state_op_state_to_string(sn->op.state) : NULL);
        table_put(&t, sn ? sn->op.id : NULL);
        table_put(&t, age);
        table_put(&t, sn ? sn->op.request_id : NULL);
        table_put(&t, sn ? sn->step : NULL);
        /* A note that cannot be redacted (no memory) is left out, never sent as it is. */
        table_put(&t, note ? note : sn && sn->note && !strstr(sn->note, "://") ? sn->note : NULL);
        fputc_unlocked('\n', f);
}

struct nodes_walk {
        struct request_context *ctx;
        json_t *array;
        FILE *table;
        time_t now;
        bool rows;
        int r;
};

/* Nodes the journal knows that no configured group has (any more). */
static int add_unconfigured_node(const struct state_node *sn, void *userdata) {
        struct nodes_walk *w = userdata;

        if (config_node_find(w->ctx->config, sn->name, NULL, NULL) >= 0)
                return 0;
        if (w->table) {
                node_line(w->table, w->ctx, sn->name, NULL, sn, w->now);
                return 0;
        }
        if (json_array_append_new(w->array, w->rows ? node_row(w->ctx, sn->name, NULL, sn, w->now)
                                                    : node_json(w->ctx, sn->name, NULL, sn, w->now)) < 0) {
                w->r = -ENOMEM;
                return 1;
        }
        return 0;
}

static json_t *columns_json(void) {
        json_t *columns = json_array();

        for (size_t i = 0; columns && i < ELEMENTSOF(node_columns); i++)
                if (json_array_append_new(columns, json_string(node_columns[i])) < 0) {
                        json_decref(columns);
                        columns = NULL;
                }
        return columns;
}

static int nodes_table(struct request_context *ctx, struct nodes_walk *w, json_t **ret_result) {
        _cleanup_free_ char *text = NULL;
        size_t size = 0;
        json_t *columns;
        FILE *f;

        f = open_memstream(&text, &size);
        if (!f)
                return -ENOMEM;
        for (size_t g = 0; g < ctx->config->n_groups; g++) {
                const struct config_group *group = &ctx->config->groups[g];

                for (size_t i = 0; i < group->n_nodes; i++)
                        node_line(f, ctx, group->node_names[i], group->name,
                                  state_node_find(ctx->state, group->node_names[i]), w->now);
        }
        w->table = f;
        state_foreach_node(ctx->state, add_unconfigured_node, w);
        if (ferror(f) | fclose(f))
                return -ENOMEM;
        columns = columns_json();
        *ret_result = columns ? json_pack("{s:o, s:s%}", "columns", columns, "table", text ? text : "", size) : NULL;
        return *ret_result ? 0 : -ENOMEM;
}

static int handle_nodes(struct request_context *ctx, const char *id, const struct protocol_request *req,
                        const struct server_peer *peer, json_t **ret_result, struct protocol_error *err) {
        _cleanup_(json_decrefp) json_t *array = NULL;
        struct nodes_walk w = { .ctx = ctx, .now = time(NULL), .rows = req->rows };

        if (req->table)
                return nodes_table(ctx, &w, ret_result);
        array = json_array();
        if (!array)
                return -ENOMEM;
        /* Every configured node, group by group, then what only the journal knows. */
        for (size_t g = 0; g < ctx->config->n_groups; g++) {
                const struct config_group *group = &ctx->config->groups[g];

                for (size_t i = 0; i < group->n_nodes; i++) {
                        const char *name = group->node_names[i];
                        const struct state_node *sn = state_node_find(ctx->state, name);

                        if (json_array_append_new(array, w.rows ? node_row(ctx, name, group->name, sn, w.now)
                                                                : node_json(ctx, name, group->name, sn, w.now)) < 0)
                                return -ENOMEM;
                }
        }
        w.array = array;
        state_foreach_node(ctx->state, add_unconfigured_node, &w);
        if (w.r < 0)
                return w.r;
        if (w.rows) {
                json_t *columns = columns_json();

                *ret_result = columns ? json_pack("{s:o, s:O}", "columns", columns, "rows", array) : NULL;
        } else
                *ret_result = json_pack("{s:O}", "nodes", array);
        return *ret_result ? 0 : -ENOMEM;
}

static const request_handler handlers[_PROTOCOL_REQUEST_MAX] = {
        [PROTOCOL_REQUEST_RESUME] = handle_hook,
        [PROTOCOL_REQUEST_SUSPEND] = handle_hook,
        [PROTOCOL_REQUEST_RESUME_FAIL] = handle_hook,
        [PROTOCOL_REQUEST_REBOOT] = handle_hook,
        [PROTOCOL_REQUEST_RESIZE] = handle_resize,
        [PROTOCOL_REQUEST_STATUS] = handle_status,
        [PROTOCOL_REQUEST_NODES] = handle_nodes,
        [PROTOCOL_REQUEST_RELOAD] = handle_reload,
        [PROTOCOL_REQUEST_GROUP_ENABLE] = handle_group_enable,
        [PROTOCOL_REQUEST_PING] = handle_ping,
        [PROTOCOL_REQUEST_METRICS] = handle_metrics,
};

static void send_reply(struct server_client *c, const char *id, json_t *result, const struct protocol_error *err) {
        _cleanup_(json_decrefp) json_t *reply = NULL;
        int r;

        if (err)
                r = protocol_reply_error(id, err->code, err->message, &reply);
        else
                r = protocol_reply_ok(id, result, &reply);
        if (r >= 0)
                r = server_client_reply(c, reply);
        if (r == -EMSGSIZE) {
                log_req(LOG_WARNING, id, "Reply too large for one frame");
                json_decref(reply);
                reply = NULL;
                r = protocol_reply_error(id, PROTOCOL_ERROR_INTERNAL,
                                         "the reply is larger than the largest frame elasticd sends", &reply);
                if (r >= 0)
                        r = server_client_reply(c, reply);
        }
        if (r < 0 && r != -ENOTCONN) {
                /* Last resort: a reply without a body cannot fail for size. */
                log_req(LOG_ERR, id, "Cannot send the reply: %s", strerror(-r));
                json_decref(reply);
                reply = NULL;
                if (protocol_reply_error(id, PROTOCOL_ERROR_INTERNAL, "out of memory", &reply) >= 0)
                        (void) server_client_reply(c, reply);
        }
}

static int on_trim(sd_event_source *s, uint64_t usec, void *userdata) {
        malloc_trim(0);
        return 0;
}

/* A nodes reply at 10,000 nodes is tens of thousands of small objects, freed
 * in the middle of the heap: give the pages back once requests pause (a
 * trim costs tens of ms, and the next reply would fault them in again). */
static void trim_later(struct request_context *ctx) {
        int r;

        if (!ctx->event)
                return;
        if (ctx->trim_timer)
                r = sd_event_source_set_time_relative(ctx->trim_timer, 2 * 1000000ULL);
        else
                r = sd_event_add_time_relative(ctx->event, &ctx->trim_timer, CLOCK_MONOTONIC, 2 * 1000000ULL,
                                               1000000ULL, on_trim, NULL);
        if (r >= 0)
                (void) sd_event_source_set_enabled(ctx->trim_timer, SD_EVENT_ONESHOT);
}

void request_handle(struct server_client *c, json_t *body, const struct protocol_error *frame_err, void *userdata) {
        struct request_context *ctx = userdata;
        const struct server_peer *peer = server_client_peer(c);
        _cleanup_(protocol_request_freep) struct protocol_request *req = NULL;
        _cleanup_(json_decrefp) json_t *result = NULL;
        _cleanup_free_ char *id = NULL, *denied = NULL;
        struct protocol_error err = {};
        const char *type;
        int r;

        if (ctx->loading) {
                /* Nothing is recorded: the hooks retry busy until their deadline. */
                protocol_error_set(&err, PROTOCOL_ERROR_BUSY, "elasticd is still reading its journal; try again");
                send_reply(c, NULL, NULL, &err);
                return;
        }
        if (state_new_id(ctx->state, 'r', &id) < 0)
                id = NULL; /* the reply carries null: still answer */

        if (frame_err) {
                ctx->n_refused++;
                log_req(LOG_WARNING, id, "Bad frame from uid %u pid %d: %s", (unsigned) peer->uid, (int) peer->pid,
                        frame_err->message);
                send_reply(c, id, NULL, frame_err);
                return;
        }

        r = protocol_request_parse(body, &req, &err);
        if (r < 0) {
                if (r == -ENOMEM)
                        protocol_error_set(&err, PROTOCOL_ERROR_INTERNAL, "out of memory");
                ctx->n_refused++;
                log_req(LOG_WARNING, id, "Bad request from uid %u pid %d: %s", (unsigned) peer->uid, (int) peer->pid,
                        err.message);
                send_reply(c, id, NULL, &err);
                return;
        }
        type = protocol_request_type_to_string(req->type);

        r = auth_check(ctx->auth, protocol_request_type_access(req->type), type, peer->uid, peer->gid, &denied);
        if (r < 0) {
                protocol_error_set(&err, PROTOCOL_ERROR_PERMISSION_DENIED, "%s",
                                   denied ? denied : "permission denied");
                ctx->n_refused++;
                log_req(LOG_WARNING, id, "Refused %s from uid %u pid %d: %s", type, (unsigned) peer->uid,
                        (int) peer->pid, err.message);
                send_reply(c, id, NULL, &err);
                return;
        }

        ctx->n_requests[req->type]++;
        log_req(LOG_DEBUG, id, "%s from uid %u pid %d", type, (unsigned) peer->uid, (int) peer->pid);
        r = handlers[req->type](ctx, id, req, peer, &result, &err);
        if (r < 0) {
                if (err.message[0] == 0)
                        protocol_error_set(&err, PROTOCOL_ERROR_INTERNAL, "%s failed: %s", type, strerror(-r));
                log_req(err.code == PROTOCOL_ERROR_INTERNAL || err.code == PROTOCOL_ERROR_JOURNAL_FAILED
                                ? LOG_ERR : LOG_WARNING,
                        id, "%s%s%s from uid %u pid %d failed: %s: %s", type, req->nodes ? " " : "",
                        req->nodes ? req->nodes : "", (unsigned) peer->uid, (int) peer->pid,
                        protocol_error_code_to_string(err.code), err.message);
                send_reply(c, id, NULL, &err);
                return;
        }
        send_reply(c, id, result, NULL);
        if (req->type == PROTOCOL_REQUEST_NODES)
                trim_later(ctx);
}

void request_context_done(struct request_context *ctx) {
        ctx->trim_timer = sd_event_source_disable_unref(ctx->trim_timer);
}
