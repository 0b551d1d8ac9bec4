/* adapters.c - the only file of ops that knows cloud/, slurm/ and push/:
 * thin translations between their types and ports.h's. */
#include "ops/adapters.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <slurm/slurm.h>

#include "cloud/cloud.h"
#include "cloud/neutron.h"
#include "push/push.h"
#include "slurm/ctld.h"
#include "util/macro.h"

/* --- cloud ----------------------------------------------------------------- */

/* Between a cloud call and its callback; its address is the call id ops
 * gets, so that a cancel frees it too. */
struct cloud_thunk {
        ops_cloud_done_fn cb;
        void *userdata;
        uint64_t call_id;
};

static void server_view(const struct nova_server *s, struct ops_server *ret) {
        *ret = (struct ops_server){
                .id = s->id,
                .name = s->name,
                .status = s->status,
                .task_state = s->task_state,
                .image_id = s->image_id,
                .ipv4 = s->ipv4,
                .fault = s->fault ? s->fault->message : NULL,
                .node = nova_server_metadata_get(s, CLOUD_META_NODE),
                .created = s->created,
        };
}

static void on_cloud(struct cloud *c, const struct cloud_result *res, void *userdata) {
        struct cloud_thunk *t = userdata;
        _cleanup_free_ struct ops_server *servers = NULL;
        struct ops_server server;
        struct ops_cloud_result r = {
                .error = res->error,
                .http_status = res->os ? res->os->status : 0,
                .message = res->os ? res->os->message : NULL,
                .request_id = res->os ? res->os->request_id : NULL,
                .id = res->id,
                .adopted = res->adopted,
                .console = res->console,
        };

        if (res->server) {
                server_view(res->server, &server);
                r.server = &server;
        }
        if (res->n_servers > 0) {
                servers = calloc(res->n_servers, sizeof(*servers));
                if (servers) {
                        for (size_t i = 0; i < res->n_servers; i++)
                                server_view(res->servers[i], &servers[i]);
                        r.servers = servers;
                        r.n_servers = res->n_servers;
                } else {
                        r = (struct ops_cloud_result){ .error = -ENOMEM, .message = "out of memory" };
                }
        }
        t->cb(&r, t->userdata);
        free(t);
}

static struct cloud_thunk *thunk(ops_cloud_done_fn cb, void *userdata) {
        struct cloud_thunk *t = malloc(sizeof(*t));

        if (t)
                *t = (struct cloud_thunk){ .cb = cb, .userdata = userdata };
        return t;
}

/* Start a cloud call through a thunk; the thunk goes with a refusal. */
#define CLOUD_CALL(call, ...)                                                  \
        ({                                                                     \
                struct cloud_thunk *_t = thunk(cb, userdata);                  \
                int _r = _t ? call(impl, __VA_ARGS__, on_cloud, _t, &_t->call_id) : -ENOMEM; \
                if (_r < 0)                                                    \
                        free(_t);                                              \
                else if (ret_call_id)                                          \
                        *ret_call_id = (uint64_t) (uintptr_t) _t;              \
                _r;                                                            \
        })

static int a_flavor_resolve(void *impl, const char *name, ops_cloud_done_fn cb, void *userdata,
                            uint64_t *ret_call_id) {
        return CLOUD_CALL(cloud_flavor_resolve, name);
}

static int a_image_resolve(void *impl, const char *name, ops_cloud_done_fn cb, void *userdata,
                           uint64_t *ret_call_id) {
        return CLOUD_CALL(cloud_image_resolve, name);
}

static int a_network_resolve(void *impl, const char *name, ops_cloud_done_fn cb, void *userdata,
                             uint64_t *ret_call_id) {
        return CLOUD_CALL(cloud_network_resolve, name);
}

static int a_server_create(void *impl, const struct ops_create *c, ops_cloud_done_fn cb, void *userdata,
                           uint64_t *ret_call_id) {
        _cleanup_free_ struct nova_kv *md = calloc(c->n_metadata + 3, sizeof(*md));
        size_t n = 0;

        if (!md)
                return -ENOMEM;
        md[n++] = (struct nova_kv){ (char *) CLOUD_META_CLUSTER, (char *) c->cluster };
        md[n++] = (struct nova_kv){ (char *) CLOUD_META_NODE, (char *) c->name };
        md[n++] = (struct nova_kv){ (char *) CLOUD_META_OP, (char *) c->op_id };
        for (size_t i = 0; i < c->n_metadata; i++)
                md[n++] = (struct nova_kv){ c->metadata[i].key, c->metadata[i].value };

        struct nova_create spec = {
                .name = c->name,
                .flavor_ref = c->flavor_id,
                .image_ref = c->image_id,
                .networks = c->networks,
                .security_groups = c->security_groups,
                .key_name = c->key_name,
                .metadata = md,
                .n_metadata = n,
                .user_data = c->user_data,
                .user_data_len = c->user_data_len,
                .config_drive = c->config_drive,
                .availability_zone = c->availability_zone,
        };
        return CLOUD_CALL(cloud_server_create, &spec);
}

static int a_server_show(void *impl, const char *id, ops_cloud_done_fn cb, void *userdata, uint64_t *ret_call_id) {
        return CLOUD_CALL(cloud_server_show, id);
}

static int a_servers_list(void *impl, const char *name, ops_cloud_done_fn cb, void *userdata,
                          uint64_t *ret_call_id) {
        return CLOUD_CALL(cloud_servers_list, name);
}

static int a_server_delete(void *impl, const char *id, ops_cloud_done_fn cb, void *userdata,
                           uint64_t *ret_call_id) {
        return CLOUD_CALL(cloud_server_delete, id);
}

static int a_server_reboot(void *impl, const char *id, bool hard, ops_cloud_done_fn cb, void *userdata,
                           uint64_t *ret_call_id) {
        return CLOUD_CALL(cloud_server_reboot, id, hard);
}

static int a_server_rebuild(void *impl, const char *id, const char *image_id, ops_cloud_done_fn cb,
                            void *userdata, uint64_t *ret_call_id) {
        return CLOUD_CALL(cloud_server_rebuild, id, image_id);
}

static int a_server_console(void *impl, const char *id, unsigned lines, ops_cloud_done_fn cb, void *userdata,
                            uint64_t *ret_call_id) {
        return CLOUD_CALL(cloud_server_console, id, lines);
}

/* Only a call whose callback has not run yet. */
static void a_cancel(void *impl, uint64_t call_id) {
        struct cloud_thunk *t = (struct cloud_thunk *) (uintptr_t) call_id;

        if (!t)
                return;
        (void) cloud_cancel(impl, t->call_id);
        free(t);
}

static void a_set_deadline(void *impl, uint64_t call_id, uint64_t deadline_usec) {
        struct cloud_thunk *t = (struct cloud_thunk *) (uintptr_t) call_id;

        if (t)
                (void) cloud_set_deadline(impl, t->call_id, deadline_usec);
}

static enum ops_failure a_classify(int error, long http_status, const char *message) {
        struct os_error e = { .status = http_status, .message = (char *) message };
        enum os_failure f = error == 0 ? os_fault_classify(message) : os_failure_classify(error, &e);

        return f == OS_FAILURE_TRANSIENT ? OPS_FAILURE_TRANSIENT :
               f == OS_FAILURE_CAPACITY ? OPS_FAILURE_CAPACITY : OPS_FAILURE_PERMANENT;
}

/* --- Slurm ----------------------------------------------------------------- */

struct slurm_thunk {
        ops_slurm_nodes_fn nodes_cb;
        ops_slurm_done_fn done_cb;
        void *userdata;
};

static void on_nodes(int r, struct ctld_nodes *nodes, const char *error, void *userdata) {
        struct slurm_thunk *t = userdata;

        t->nodes_cb(r, (struct ops_slurm_nodes *) nodes, error, t->userdata);
        free(t);
}

static void on_done(int r, const char *error, void *userdata) {
        struct slurm_thunk *t = userdata;

        t->done_cb(r, error, t->userdata);
        free(t);
}

static int a_load_nodes(void *impl, ops_slurm_nodes_fn cb, void *userdata) {
        struct slurm_thunk *t = calloc(1, sizeof(*t));
        int r;

        if (!t)
                return -ENOMEM;
        *t = (struct slurm_thunk){ .nodes_cb = cb, .userdata = userdata };
        r = ctld_load_nodes(impl, on_nodes, t);
        if (r < 0)
                free(t);
        return r;
}

static bool a_node_find(const struct ops_slurm_nodes *nodes, const char *name, struct ops_slurm_node *ret) {
        const struct ctld_node *n = nodes ? ctld_nodes_find((const struct ctld_nodes *) nodes, name) : NULL;
        uint32_t s;

        if (!n)
                return false;
        s = n->state;
        *ret = (struct ops_slurm_node){
                .state = n->state_str,
                .reason = n->reason,
                .boot_time = n->boot_time,
                .down = (s & NODE_STATE_BASE) == NODE_STATE_DOWN,
                .not_responding = s & NODE_STATE_NO_RESPOND,
                .powered_down = s & NODE_STATE_POWERED_DOWN,
                .powering_up = s & NODE_STATE_POWERING_UP,
                .powering_down = s & NODE_STATE_POWERING_DOWN,
                .power_up = s & NODE_STATE_POWER_UP,
                .power_down = s & NODE_STATE_POWER_DOWN,
                .reboot_pending = s & (NODE_STATE_REBOOT_ISSUED | NODE_STATE_REBOOT_REQUESTED),
        };
        return true;
}

static void a_nodes_free(struct ops_slurm_nodes *nodes) {
        ctld_nodes_free((struct ctld_nodes *) nodes);
}

static const struct ops_slurm_nodes *a_newest(void *impl) {
        return (const struct ops_slurm_nodes *) ctld_nodes_newest(impl);
}

static int a_update(void *impl, const struct ops_slurm_update *u, ops_slurm_done_fn cb, void *userdata) {
        static const uint32_t states[] = {
                [OPS_SLURM_KEEP] = 0,
                [OPS_SLURM_DOWN] = NODE_STATE_DOWN,
                [OPS_SLURM_POWER_UP] = NODE_STATE_POWER_UP,
                [OPS_SLURM_POWER_DOWN_ASAP] = NODE_STATE_POWER_DOWN | NODE_STATE_POWER_DRAIN,
                /* scontrol's POWER_DOWN_FORCE */
                [OPS_SLURM_POWER_DOWN_FORCE] = NODE_STATE_POWER_DOWN | NODE_STATE_POWERED_DOWN,
                [OPS_SLURM_RESUME] = NODE_RESUME,
        };
        struct slurm_thunk *t;
        int r;

        if ((size_t) u->state >= ELEMENTSOF(states))
                return -EINVAL;
        t = calloc(1, sizeof(*t));
        if (!t)
                return -ENOMEM;
        *t = (struct slurm_thunk){ .done_cb = cb, .userdata = userdata };
        r = ctld_update(impl,
                        &(struct ctld_update){ .nodes = u->nodes, .addr = u->addr, .hostname = u->hostname,
                                               .state = states[u->state], .reason = u->reason },
                        on_done, t);
        if (r < 0)
                free(t);
        return r;
}

static int a_reconfigure(void *impl, ops_slurm_done_fn cb, void *userdata) {
        struct slurm_thunk *t = calloc(1, sizeof(*t));
        int r;

        if (!t)
                return -ENOMEM;
        *t = (struct slurm_thunk){ .done_cb = cb, .userdata = userdata };
        r = ctld_reconfigure(impl, on_done, t);
        if (r < 0)
                free(t);
        return r;
}

/* --- SSH push -------------------------------------------------------------- */

struct push_thunk {
        ops_push_done_fn cb;
        void *userdata;
};

static void on_pushed(int r, const char *reason, const struct push_report *report, void *userdata) {
        struct push_thunk *t = userdata;

        t->cb(r, reason, report->steps, report->seconds, t->userdata);
        free(t);
}

static int a_push_start(void *impl, const struct ops_push_spec *s, ops_push_done_fn cb, void *userdata,
                        char **ret_error) {
        _cleanup_(push_hostkeys_freep) struct push_hostkeys *keys = NULL;
        _cleanup_free_ struct push_file *files = calloc(s->n_files ? s->n_files : 1, sizeof(*files));
        struct push_thunk *t;
        int r;

        if (!files)
                return -ENOMEM;
        r = push_parse_console_hostkeys(s->console, &keys, ret_error);
        if (r == PUSH_CONSOLE_NO_KEYS)
                return OPS_PUSH_NO_KEYS;
        if (r < 0)
                return r;
        for (size_t i = 0; i < s->n_files; i++)
                files[i] = (struct push_file){ .src = s->files[i].src, .dest = s->files[i].dest,
                                               .mode = s->files[i].mode, .owner = s->files[i].owner,
                                               .group = s->files[i].group };
        t = malloc(sizeof(*t));
        if (!t)
                return -ENOMEM;
        *t = (struct push_thunk){ cb, userdata };
        r = push_start(impl,
                       &(struct push_spec){ .address = s->address, .port = s->port, .user = s->user,
                                            .private_key = s->private_key, .private_key_data = s->private_key_data,
                                            .private_key_len = s->private_key_len, .hostkeys = keys,
                                            .connect_timeout_usec = s->connect_timeout_usec,
                                            .deadline_usec = s->deadline_usec, .files = files,
                                            .n_files = s->n_files, .commands = s->commands },
                       on_pushed, t);
        if (r < 0)
                free(t);
        return r;
}

void ops_adapters(struct cloud *cloud, struct ctld *ctld, struct pusher *pusher, struct ops_ports *ret) {
        *ret = (struct ops_ports){
                .cloud = {
                        .impl = cloud,
                        .flavor_resolve = a_flavor_resolve,
                        .image_resolve = a_image_resolve,
                        .network_resolve = a_network_resolve,
                        .network_is_literal = neutron_network_is_literal,
                        .server_create = a_server_create,
                        .server_show = a_server_show,
                        .servers_list = a_servers_list,
                        .server_delete = a_server_delete,
                        .server_reboot = a_server_reboot,
                        .server_rebuild = a_server_rebuild,
                        .server_console = a_server_console,
                        .cancel = a_cancel,
                        .set_deadline = a_set_deadline,
                        .classify = a_classify,
                },
                .slurm = {
                        .impl = ctld,
                        .load_nodes = a_load_nodes,
                        .node_find = a_node_find,
                        .nodes_free = a_nodes_free,
                        .newest = a_newest,
                        .update = a_update,
                        .reconfigure = a_reconfigure,
                },
                .push = {
                        .impl = pusher,
                        .start = pusher ? a_push_start : NULL,
                },
        };
}
