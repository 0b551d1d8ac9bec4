/* request.c - one handler per request type; hook requests are journalled before they are answered. */
#include "request.h"

#include <stdarg.h>
#include <string.h>
#include <time.h>

#include "config-build.h"
#include "log.h"

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

static int handle_reload(struct request_context *ctx, const char *id, const struct protocol_request *req,
                         const struct server_peer *peer, json_t **ret_result, struct protocol_error *err) {
        _cleanup_free_ char *error = NULL;
        int r;

        log_req(LOG_INFO, id, "Reload asked by uid %u pid %d", (unsigned) peer->uid, (int) peer->pid);
        r = ctx->reload(ctx->userdata, &error);
        if (r < 0) {
                protocol_error_set(err, PROTOCOL_ERROR_INTERNAL,
                                   "reload failed, the running configuration stays: %s",
                                   error ? error : strerror(-r));
                return r;
        }
        *ret_result = json_pack("{s:b}", "reloaded", 1);
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

        by_state = json_object();
        if (!by_state)
                return -ENOMEM;
        for (int st = 0; st < _STATE_OP_STATE_MAX; st++)
                if (json_object_set_new(by_state, state_op_state_to_string(st),
                                        json_integer((json_int_t) state_n_nodes_in(ctx->state, st))) < 0)
                        return -ENOMEM;
        journal = json_pack("{s:s, s:I, s:f, s:f}",
                            "dir", ctx->config->state_dir,
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
        *ret_result = TAKE_PTR(result);
        return 0;
}

static json_t *node_json(const char *name, const char *group, const struct state_node *sn, time_t now) {
        json_t *o;

        /* Slurm and Nova facts are filled in by the lifecycle work; null = none yet. */
        o = json_pack("{s:s, s:n, s:s, s:n, s:n, s:n}",
                      "name", name,
                      "slurm_state",
                      "group", group ? group : (sn ? sn->group : "-"),
                      "instance_id", "instance_status", "address");
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
                                                                        : json_null()) < 0)
                        return json_decref(o), NULL;
        } else if (json_object_set_new(o, "operation", json_null()) < 0 ||
                   json_object_set_new(o, "operation_age_seconds", json_null()) < 0)
                return json_decref(o), NULL;
        return o;
}

struct nodes_walk {
        struct request_context *ctx;
        json_t *array;
        time_t now;
        int r;
};

/* Nodes the journal knows that no configured group has (any more). */
static int add_unconfigured_node(const struct state_node *sn, void *userdata) {
        struct nodes_walk *w = userdata;

        if (config_node_find(w->ctx->config, sn->name, NULL, NULL) >= 0)
                return 0;
        if (json_array_append_new(w->array, node_json(sn->name, NULL, sn, w->now)) < 0) {
                w->r = -ENOMEM;
                return 1;
        }
        return 0;
}

static int handle_nodes(struct request_context *ctx, const char *id, const struct protocol_request *req,
                        const struct server_peer *peer, json_t **ret_result, struct protocol_error *err) {
        _cleanup_(json_decrefp) json_t *array = NULL;
        struct nodes_walk w = { .ctx = ctx, .now = time(NULL) };

        array = json_array();
        if (!array)
                return -ENOMEM;
        /* Every configured node, group by group, then what only the journal knows. */
        for (size_t g = 0; g < ctx->config->n_groups; g++) {
                const struct config_group *group = &ctx->config->groups[g];

                for (size_t i = 0; i < group->n_nodes; i++)
                        if (json_array_append_new(array, node_json(group->node_names[i], group->name,
                                                                   state_node_find(ctx->state, group->node_names[i]),
                                                                   w.now)) < 0)
                                return -ENOMEM;
        }
        w.array = array;
        state_foreach_node(ctx->state, add_unconfigured_node, &w);
        if (w.r < 0)
                return w.r;
        *ret_result = json_pack("{s:O}", "nodes", array);
        return *ret_result ? 0 : -ENOMEM;
}

static const request_handler handlers[_PROTOCOL_REQUEST_MAX] = {
        /* Hook requests and resize arrive with the journal. */
        [PROTOCOL_REQUEST_STATUS] = handle_status,
        [PROTOCOL_REQUEST_NODES] = handle_nodes,
        [PROTOCOL_REQUEST_RELOAD] = handle_reload,
        [PROTOCOL_REQUEST_PING] = handle_ping,
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

void request_handle(struct server_client *c, json_t *body, const struct protocol_error *frame_err, void *userdata) {
        struct request_context *ctx = userdata;
        const struct server_peer *peer = server_client_peer(c);
        _cleanup_(protocol_request_freep) struct protocol_request *req = NULL;
        _cleanup_(json_decrefp) json_t *result = NULL;
        _cleanup_free_ char *id = NULL, *denied = NULL;
        struct protocol_error err = {};
        const char *type;
        int r;

        if (state_new_id(ctx->state, 'r', &id) < 0)
                id = NULL; /* the reply carries null: still answer */

        if (frame_err) {
                log_req(LOG_WARNING, id, "Bad frame from uid %u pid %d: %s", (unsigned) peer->uid, (int) peer->pid,
                        frame_err->message);
                send_reply(c, id, NULL, frame_err);
                return;
        }

        r = protocol_request_parse(body, &req, &err);
        if (r < 0) {
                if (r == -ENOMEM)
                        protocol_error_set(&err, PROTOCOL_ERROR_INTERNAL, "out of memory");
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
                log_req(LOG_WARNING, id, "Refused %s from uid %u pid %d: %s", type, (unsigned) peer->uid,
                        (int) peer->pid, err.message);
                send_reply(c, id, NULL, &err);
                return;
        }

        log_req(LOG_DEBUG, id, "%s from uid %u pid %d", type, (unsigned) peer->uid, (int) peer->pid);
        if (!handlers[req->type]) {
                protocol_error_set(&err, PROTOCOL_ERROR_INTERNAL, "\"%s\" is not implemented by this elasticd yet", type);
                log_req(LOG_WARNING, id, "%s", err.message);
                send_reply(c, id, NULL, &err);
                return;
        }
        r = handlers[req->type](ctx, id, req, peer, &result, &err);
        if (r < 0) {
                if (err.message[0] == 0)
                        protocol_error_set(&err, PROTOCOL_ERROR_INTERNAL, "%s failed: %s", type, strerror(-r));
                log_req(err.code == PROTOCOL_ERROR_INTERNAL || err.code == PROTOCOL_ERROR_JOURNAL_FAILED
                                ? LOG_ERR : LOG_WARNING,
                        id, "%s from uid %u pid %d failed: %s: %s", type, (unsigned) peer->uid, (int) peer->pid,
                        protocol_error_code_to_string(err.code), err.message);
                send_reply(c, id, NULL, &err);
                return;
        }
        send_reply(c, id, result, NULL);
}
