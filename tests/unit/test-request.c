/* test-request.c - request handling (daemon/server/request.c) in-process:
 * hook requests journalled before the reply, already pending, superseding,
 * unknown nodes, resize, bad requests, a peer without the right, and the
 * journal replaying into the same state. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <systemd/sd-event.h>

#include "conf/config.h"
#include "journal/journal.h"
#include "journal/records.h"
#include "journal/state.h"
#include "proto/protocol.h"
#include "server/auth.h"
#include "server/request.h"
#include "server/server.h"
#include "util/log.h"

#include "test.h"

struct world {
        sd_event *e;
        char dir[64];
        char sock[128];
        struct config *config;
        struct auth *auth;
        struct state *state;
        struct journal *journal;
        struct server *server;
        struct request_context ctx;
        unsigned changed;
};

static void on_changed(void *userdata) {
        struct world *w = userdata;

        w->changed++;
}

static const struct server_limits limits = {
        .max_frame_bytes = 65536,
        .max_reply_frame_bytes = 1 << 20,
        .max_clients = 8,
        .max_queued_requests = 8,
        .max_reply_bytes = 1 << 20,
        .privileged_uid = (uid_t) -1,
};

static void world_init(struct world *w) {
        static const char text[] =
                "cluster: t\ncloud: fake\nstate_dir: /tmp\n"
                "groups:\n"
                "  - name: cpu\n    nodes: cn[1-4]\n    flavor: f\n    image: i\n    networks: [none]\n"
                "  - name: gpu\n    nodes: gn[1-2]\n    flavor: f\n    image: i\n    networks: [none]\n";
        char *err = NULL;

        *w = (struct world){ 0 };
        snprintf(w->dir, sizeof(w->dir), "/tmp/test-request.XXXXXX");
        if (!mkdtemp(w->dir))
                abort();
        snprintf(w->sock, sizeof(w->sock), "%s/sock", w->dir);
        if (sd_event_new(&w->e) < 0 || config_load_string("t", text, sizeof(text) - 1, &w->config, &err) < 0 ||
            auth_new("root", NULL, &w->auth, NULL) < 0 || state_new("t", &w->state) < 0 ||
            journal_open(w->dir, &w->journal, &err) < 0) {
                printf("# set-up: %s\n", err ? err : "?");
                abort();
        }
        w->ctx = (struct request_context){
                .config = w->config,
                .auth = w->auth,
                .state = w->state,
                .journal = w->journal,
                .state_dir = w->dir,
                .state_changed = on_changed,
                .userdata = w,
        };
        if (server_new(w->e, &limits, request_handle, &w->ctx, &w->server) < 0 ||
            server_listen_path(w->server, w->sock, 0666, (gid_t) -1, &err) < 0) {
                printf("# server: %s\n", err ? err : "?");
                abort();
        }
        w->ctx.server = w->server;
}

static void world_done(struct world *w) {
        char cmd[128];

        server_free(w->server);
        journal_free(w->journal);
        state_free(w->state);
        auth_free(w->auth);
        config_free(w->config);
        sd_event_unref(w->e);
        snprintf(cmd, sizeof(cmd), "rm -rf %s", w->dir);
        if (system(cmd) != 0)
                printf("# could not remove %s\n", w->dir);
}

static int connect_to(const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
        if (fd < 0 || connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
                if (fd >= 0)
                        close(fd);
                return -1;
        }
        return fd;
}

static int send_frame(int fd, const char *text) {
        size_t n = strlen(text);
        uint8_t hdr[4] = { (uint8_t) (n >> 24), (uint8_t) (n >> 16), (uint8_t) (n >> 8), (uint8_t) n };

        if (send(fd, hdr, 4, MSG_NOSIGNAL) != 4 || send(fd, text, n, MSG_NOSIGNAL) != (ssize_t) n)
                return -EIO;
        return 0;
}

/* Send TEXT, run the loop until the reply is there, return it. */
static json_t *ask(struct world *w, const char *text) {
        struct protocol_error err;
        json_t *reply = NULL;
        int fd = connect_to(w->sock);

        if (fd < 0 || send_frame(fd, text) < 0) {
                TEST_FAIL("cannot send %s", text);
                if (fd >= 0)
                        close(fd);
                return NULL;
        }
        for (int i = 0; i < 200; i++) {
                struct pollfd p = { .fd = fd, .events = POLLIN };

                (void) sd_event_run(w->e, 1000);
                if (poll(&p, 1, 0) == 1)
                        break;
        }
        if (protocol_read_frame(fd, 1 << 20, 1000, &reply, &err) < 0)
                TEST_FAIL("no reply to %s", text);
        close(fd);
        return reply;
}

static json_t *result_of(json_t *reply) {
        if (!json_is_true(json_object_get(reply, "ok")))
                TEST_FAIL("not ok: %s", json_string_value(json_object_get(json_object_get(reply, "error"), "message")));
        return json_object_get(reply, "result");
}

static const char *error_code(json_t *reply) {
        return json_string_value(json_object_get(json_object_get(reply, "error"), "code"));
}

#define HOOK(type, nodes) "{\"version\":1,\"type\":\"" type "\",\"nodes\":\"" nodes "\",\"client\":\"test\"}"

static off_t journal_size(struct world *w) {
        char path[160];
        struct stat st;

        snprintf(path, sizeof(path), "%s/%s", w->dir, JOURNAL_FILE);
        return stat(path, &st) < 0 ? -1 : st.st_size;
}

static enum state_op_kind kind_of(struct world *w, const char *node) {
        const struct state_node *n = state_node_find(w->state, node);

        return n ? n->op.kind : _STATE_OP_KIND_MAX;
}

static void test_hooks(void) {
        struct world w;
        json_t *reply, *res;
        char *first = NULL;
        off_t size;

        world_init(&w);

        /* Accepted means journalled: the state has the operations. */
        reply = ask(&w, HOOK("resume", "cn[1-2]"));
        res = result_of(reply);
        CHECK_INT(json_integer_value(json_object_get(res, "accepted")), 2);
        CHECK_INT(json_integer_value(json_object_get(res, "operations_created")), 2);
        CHECK_INT(json_array_size(json_object_get(res, "operations")), 2);
        json_decref(reply);
        CHECK_INT(kind_of(&w, "cn1"), STATE_OP_RESUME);
        CHECK_INT(state_node_find(w.state, "cn2")->op.state, STATE_OP_PENDING);
        CHECK(w.changed > 0);
        first = strdup(state_node_find(w.state, "cn1")->op.id);
        size = journal_size(&w);
        CHECK(size > 0);

        /* The same hook again: already pending, no new operation. */
        reply = ask(&w, HOOK("resume", "cn[1-2]"));
        res = result_of(reply);
        CHECK_INT(json_integer_value(json_object_get(res, "operations_created")), 0);
        CHECK_STR(json_string_value(json_object_get(res, "already_pending")), "cn[1-2]");
        json_decref(reply);
        CHECK_STR(state_node_find(w.state, "cn1")->op.id, first);

        /* Another kind supersedes: slurmctld's latest word counts. */
        reply = ask(&w, HOOK("suspend", "cn2"));
        res = result_of(reply);
        CHECK_INT(json_integer_value(json_object_get(res, "superseded")), 1);
        CHECK_INT(json_integer_value(json_object_get(res, "operations_created")), 1);
        json_decref(reply);
        CHECK_INT(kind_of(&w, "cn2"), STATE_OP_SUSPEND);
        CHECK_INT(kind_of(&w, "cn1"), STATE_OP_RESUME);

        /* A node in no group: refused, nothing journalled. */
        size = journal_size(&w);
        reply = ask(&w, HOOK("resume", "cn4,xx[1-3]"));
        CHECK_STR(error_code(reply), "unknown_node");
        CHECK(strstr(json_string_value(json_object_get(json_object_get(reply, "error"), "message")) ?: "", "3 nodes") !=
              NULL);
        json_decref(reply);
        CHECK_INT(journal_size(&w), size);
        CHECK_INT(kind_of(&w, "cn4"), _STATE_OP_KIND_MAX);

        /* reboot keeps its reason with the request, where the lifecycle reads it. */
        reply = ask(&w, "{\"version\":1,\"type\":\"reboot\",\"nodes\":\"gn1,gn2\",\"reason\":\"reimage please\"}");
        json_decref(reply);
        {
                const struct state_node *n = state_node_find(w.state, "gn2");
                struct record_request req = {};

                CHECK_INT(kind_of(&w, "gn2"), STATE_OP_REBOOT);
                CHECK_INT(n ? state_request_get(w.state, n->op.request_id, &req) : -ENOENT, 0);
                CHECK_STR(req.reason, "reimage please");
        }
        free(first);
        world_done(&w);
}

/* What was answered ok is what a restart replays. */
static int replay_one(json_t *record, void *userdata) {
        return state_apply(userdata, record, NULL);
}

static void test_replay(void) {
        struct world w;
        struct state *again = NULL;
        const char *nodes[] = { "cn1", "cn2", "cn3", "gn1" };

        world_init(&w);
        json_decref(ask(&w, HOOK("resume", "cn[1-3]")));
        json_decref(ask(&w, HOOK("resume_fail", "cn3")));
        json_decref(ask(&w, HOOK("reboot", "gn1")));
        CHECK_INT(state_new("t2", &again), 0);
        CHECK_INT(journal_replay(w.journal, replay_one, again, NULL), 0);
        for (size_t i = 0; i < ELEMENTSOF(nodes); i++) {
                const struct state_node *a = state_node_find(w.state, nodes[i]), *b = state_node_find(again, nodes[i]);

                CHECK(a && b);
                if (!a || !b)
                        continue;
                CHECK_STR(a->op.id, b->op.id);
                CHECK_INT(a->op.kind, b->op.kind);
                CHECK_INT(a->op.state, b->op.state);
        }
        state_free(again);
        world_done(&w);
}

static void test_resize(void) {
        struct world w;
        json_t *reply;
        unsigned min = 0;

        world_init(&w);
        reply = ask(&w, "{\"version\":1,\"type\":\"resize\",\"group\":\"cpu\",\"min\":2}");
        CHECK_INT(json_integer_value(json_object_get(result_of(reply), "min")), 2);
        json_decref(reply);
        CHECK_INT(state_resize_min(w.state, "cpu", &min), 0);
        CHECK_INT(min, 2);

        reply = ask(&w, "{\"version\":1,\"type\":\"resize\",\"group\":\"cpu\",\"min\":5}");
        CHECK_STR(error_code(reply), "bad_request");
        json_decref(reply);
        reply = ask(&w, "{\"version\":1,\"type\":\"resize\",\"group\":\"nope\",\"min\":1}");
        CHECK_STR(error_code(reply), "not_found");
        json_decref(reply);
        /* Two groups: say which. */
        reply = ask(&w, "{\"version\":1,\"type\":\"resize\",\"min\":1}");
        CHECK_STR(error_code(reply), "bad_request");
        json_decref(reply);
        CHECK_INT(state_resize_min(w.state, "cpu", &min), 0);
        CHECK_INT(min, 2);
        world_done(&w);
}

static void test_bad_requests(void) {
        struct world w;
        json_t *reply;
        off_t size;

        world_init(&w);
        size = journal_size(&w);
        reply = ask(&w, "{\"version\":1,\"type\":\"resume\",\"nodes\":\"cn1\",\"nodez\":\"x\"}");
        CHECK_STR(error_code(reply), "bad_request");
        json_decref(reply);
        reply = ask(&w, "{\"version\":1,\"type\":\"resume\"}");
        CHECK_STR(error_code(reply), "bad_request");
        json_decref(reply);
        reply = ask(&w, "[1]");
        CHECK_STR(error_code(reply), "bad_frame");
        json_decref(reply);
        CHECK_INT(journal_size(&w), size);
        CHECK_INT(state_n_nodes(w.state), 0);
        CHECK(w.ctx.n_refused >= 3);

        /* status and nodes answer anyone, with what the state holds. */
        json_decref(ask(&w, HOOK("resume", "cn1")));
        reply = ask(&w, "{\"version\":1,\"type\":\"status\"}");
        CHECK(json_is_object(result_of(reply)));
        json_decref(reply);
        reply = ask(&w, "{\"version\":1,\"type\":\"nodes\"}");
        {
                json_t *nodes = json_object_get(result_of(reply), "nodes"), *n;
                size_t i, with_op = 0;

                CHECK_INT(json_array_size(nodes), 6);    /* every configured node */
                json_array_foreach(nodes, i, n)
                        with_op += json_is_string(json_object_get(n, "operation_id"));
                CHECK_INT(with_op, 1);
                /* The table form holds the same values, a line per node. */
                json_t *treply = ask(&w, "{\"version\":1,\"type\":\"nodes\",\"table\":true}");
                json_t *columns = json_object_get(result_of(treply), "columns");
                const char *text = json_string_value(json_object_get(result_of(treply), "table"));
                size_t lines = 0;

                CHECK(json_array_size(columns) >= 13 && text);
                for (const char *line = text; text && *line; lines++) {
                        const char *eol = strchr(line, '\n');
                        json_t *obj = json_array_get(nodes, lines);

                        CHECK(eol != NULL);
                        if (!eol || !obj)
                                break;
                        for (size_t k = 0; k < json_array_size(columns); k++) {
                                json_t *v = json_object_get(obj, json_string_value(json_array_get(columns, k)));
                                const char *tab = memchr(line, '\t', (size_t) (eol - line));
                                const char *stop = tab ? tab : eol;
                                char want[64] = "";

                                if (json_is_string(v))
                                        snprintf(want, sizeof(want), "%s", json_string_value(v));
                                else if (json_is_integer(v))
                                        snprintf(want, sizeof(want), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
                                if (strlen(want) != (size_t) (stop - line) || strncmp(want, line, (size_t) (stop - line)) != 0)
                                        TEST_FAIL("line %zu column %zu: \"%.*s\", expected \"%s\"", lines, k,
                                                  (int) (stop - line), line, want);
                                line = tab ? tab + 1 : eol;
                        }
                        line = eol + 1;
                }
                CHECK_INT(lines, 6);
                json_decref(treply);
        }
        json_decref(reply);
        world_done(&w);
}

/* Someone who is neither root nor SlurmUser: the hook is refused, status is not. */
static void test_permission(void) {
        struct world w;
        pid_t pid;
        int status = 0;

        if (getuid() != 0) {
                printf("# skipping: needs root to send as another user\n");
                return;
        }
        world_init(&w);
        CHECK_INT(chmod(w.dir, 0755), 0);   /* the socket's directory, for nobody */
        pid = fork();
        if (pid == 0) {
                struct protocol_error err;
                json_t *reply = NULL;
                int fd, code = 0;

                if (setgid(65534) < 0 || setuid(65534) < 0)
                        _exit(10);
                fd = connect_to(w.sock);
                if (fd < 0 || send_frame(fd, HOOK("resume", "cn1")) < 0 ||
                    protocol_read_frame(fd, 1 << 20, 5000, &reply, &err) < 0)
                        _exit(11);
                if (strcmp(error_code(reply) ?: "", "permission_denied") != 0)
                        code |= 1;
                close(fd);
                json_decref(reply);
                fd = connect_to(w.sock);
                if (fd < 0 || send_frame(fd, "{\"version\":1,\"type\":\"ping\"}") < 0 ||
                    protocol_read_frame(fd, 1 << 20, 5000, &reply, &err) < 0)
                        _exit(12);
                if (!json_is_true(json_object_get(reply, "ok")))
                        code |= 2;
                _exit(code);
        }
        for (int i = 0; i < 5000 && waitpid(pid, &status, WNOHANG) == 0; i++)
                (void) sd_event_run(w.e, 1000);
        CHECK(WIFEXITED(status));
        CHECK_INT(WEXITSTATUS(status), 0);
        CHECK_INT(state_n_nodes(w.state), 0);
        world_done(&w);
}

int main(void) {
        log_set_max_level(getenv("TEST_REQUEST_LOG") ? LOG_DEBUG : LOG_CRIT);
        RUN(test_hooks);
        RUN(test_replay);
        RUN(test_resize);
        RUN(test_bad_requests);
        RUN(test_permission);
        return test_done();
}
