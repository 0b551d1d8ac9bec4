/* test-server.c - the socket server in-process: frames, limits, stale sockets, stop. */
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "proto/protocol.h"
#include "server/server.h"
#include "test.h"

static char dir[64];
static char path[128];
static unsigned n_requests, n_errors;
static struct server_client *held; /* a request answered later */

static void on_request(struct server_client *c, json_t *body, const struct protocol_error *err, void *userdata) {
        json_t *reply = NULL;
        const char *type = json_string_value(json_object_get(body, "type"));

        if (err) {
                n_errors++;
                protocol_reply_error("r-err", err->code, err->message, &reply);
        } else if (type && strcmp(type, "later") == 0) {
                held = server_client_ref(c);
                return;
        } else {
                n_requests++;
                protocol_reply_ok("r-1", json_object_get(body, "echo"), &reply);
        }
        CHECK_INT(server_client_reply(c, reply), 0);
        json_decref(reply);
}

static const struct server_limits limits = {
        .max_frame_bytes = 4096,
        .max_reply_frame_bytes = 8192,
        .max_clients = 2,
        .max_queued_requests = 8,
        .max_reply_bytes = 65536,
};

static void spin(sd_event *e) {
        for (int i = 0; i < 20; i++)
                sd_event_run(e, 10 * 1000);
}

static int client(void) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

        strcpy(sa.sun_path, path);
        if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
                close(fd);
                return -1;
        }
        return fd;
}

static void send_raw(int fd, const void *data, size_t n) {
        CHECK_INT(send(fd, data, n, MSG_NOSIGNAL), (ssize_t) n);
}

static void send_text(int fd, const char *text) {
        uint8_t hdr[4];
        size_t n = strlen(text);

        hdr[0] = (uint8_t) (n >> 24);
        hdr[1] = (uint8_t) (n >> 16);
        hdr[2] = (uint8_t) (n >> 8);
        hdr[3] = (uint8_t) n;
        send_raw(fd, hdr, 4);
        send_raw(fd, text, n);
}

/* Read one reply after letting the loop run; NULL if none. */
static json_t *recv_reply(sd_event *e, int fd) {
        json_t *reply = NULL;
        struct protocol_error err;

        spin(e);
        if (protocol_read_frame(fd, 1 << 20, 100, &reply, &err) < 0)
                return NULL;
        return reply;
}

static bool reply_is(json_t *reply, bool ok, const char *code) {
        bool r = reply && json_is_true(json_object_get(reply, "ok")) == ok &&
                 (!code || strcmp(json_string_value(json_object_get(json_object_get(reply, "error"), "code")) ?: "",
                                  code) == 0);
        json_decref(reply);
        return r;
}

static void test_requests_and_limits(void) {
        _cleanup_(server_freep) struct server *s = NULL;
        _cleanup_free_ char *error = NULL;
        sd_event *e = NULL;
        int a, b, c;
        uint8_t big[4] = { 0, 0, 0x20, 0 }; /* 8192 > max_frame 4096 */

        CHECK_INT(sd_event_new(&e), 0);
        CHECK_INT(server_new(e, &limits, on_request, NULL, &s), 0);
        CHECK_INT(server_listen_path(s, path, 0600, (gid_t) -1, &error), 0);
        CHECK_STR(server_path(s), path);
        CHECK(!server_activated(s));

        a = client();
        CHECK(a >= 0);
        send_text(a, "{\"type\":\"x\",\"echo\":{\"n\":1}}");
        CHECK(reply_is(recv_reply(e, a), true, NULL));
        CHECK_INT(n_requests, 1);

        /* Two frames in one write: both answered, in order. */
        send_text(a, "{\"type\":\"x\"}");
        send_text(a, "not json");
        CHECK(reply_is(recv_reply(e, a), true, NULL));
        CHECK(reply_is(recv_reply(e, a), false, "bad_frame"));
        CHECK_INT(n_errors, 1);

        /* A third client is one too many. */
        b = client();
        c = client();
        CHECK(b >= 0 && c >= 0);
        spin(e);
        CHECK_INT(server_n_clients(s), 2);
        CHECK(reply_is(recv_reply(e, c), false, "busy"));
        close(c);

        /* Oversize: bad_frame, then the connection closes; others go on. */
        send_raw(b, big, 4);
        CHECK(reply_is(recv_reply(e, b), false, "bad_frame"));
        spin(e);
        {
                char x;
                CHECK_INT(recv(b, &x, 1, MSG_DONTWAIT), 0);
        }
        close(b);
        send_text(a, "{\"type\":\"x\"}");
        CHECK(reply_is(recv_reply(e, a), true, NULL));
        close(a);
        spin(e);
        CHECK_INT(server_n_clients(s), 0);

        s = server_free(s);
        CHECK(access(path, F_OK) < 0); /* our socket is removed */
        sd_event_unref(e);
}

static void test_stale_and_live_socket(void) {
        _cleanup_(server_freep) struct server *s = NULL, *t = NULL;
        _cleanup_free_ char *error = NULL;
        sd_event *e = NULL;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        struct stat st;
        int fd;

        /* A stale socket (nobody listening) is replaced. */
        strcpy(sa.sun_path, path);
        fd = socket(AF_UNIX, SOCK_STREAM, 0);
        CHECK_INT(bind(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
        close(fd);
        CHECK_INT(sd_event_new(&e), 0);
        CHECK_INT(server_new(e, &limits, on_request, NULL, &s), 0);
        CHECK_INT(server_listen_path(s, path, 0640, (gid_t) -1, &error), 0);
        CHECK_INT(stat(path, &st), 0);
        CHECK_INT(st.st_mode & 07777, 0640);

        /* A live one is not. */
        CHECK_INT(server_new(e, &limits, on_request, NULL, &t), 0);
        CHECK_INT(server_listen_path(t, path, 0600, (gid_t) -1, &error), -EADDRINUSE);
        CHECK(error && strstr(error, "already listening"));
        t = server_free(t);
        CHECK_INT(access(path, F_OK), 0); /* the refused server left the live socket alone */

        /* Not a socket: not touched. */
        free(error);
        error = NULL;
        s = server_free(s);
        fd = open(path, O_CREAT | O_WRONLY, 0600);
        close(fd);
        CHECK_INT(server_new(e, &limits, on_request, NULL, &s), 0);
        CHECK_INT(server_listen_path(s, path, 0600, (gid_t) -1, &error), -EEXIST);
        CHECK_INT(access(path, F_OK), 0);
        unlink(path);
        CHECK_INT(server_listen_path(s, "relative.sock", 0600, (gid_t) -1, NULL), -EINVAL);
        sd_event_unref(e);
}

static void on_idle(struct server *s, void *userdata) {
        *(bool *) userdata = true;
}

static void test_stop_waits_for_replies(void) {
        _cleanup_(server_freep) struct server *s = NULL;
        sd_event *e = NULL;
        json_t *reply = NULL;
        bool idle = false;
        int a;

        CHECK_INT(sd_event_new(&e), 0);
        CHECK_INT(server_new(e, &limits, on_request, NULL, &s), 0);
        CHECK_INT(server_listen_path(s, path, 0600, (gid_t) -1, NULL), 0);
        a = client();
        send_text(a, "{\"type\":\"later\"}");
        spin(e);
        CHECK(held != NULL);

        server_stop(s, on_idle, &idle);
        CHECK(!idle);          /* a request is still unanswered */
        CHECK(client() < 0);   /* no new connections */
        protocol_reply_ok("r-late", NULL, &reply);
        CHECK_INT(server_client_reply(held, reply), 0);
        json_decref(reply);
        held = server_client_unref(held);
        CHECK(reply_is(recv_reply(e, a), true, NULL));
        spin(e);
        CHECK(idle);
        close(a);
        s = server_free(s);
        sd_event_unref(e);
}

int main(void) {
        snprintf(dir, sizeof(dir), "/tmp/test-server-%d", (int) getpid());
        snprintf(path, sizeof(path), "%s/sub/s.sock", dir);
        RUN(test_requests_and_limits);
        RUN(test_stale_and_live_socket);
        RUN(test_stop_waits_for_replies);
        unlink(path);
        snprintf(path, sizeof(path), "%s/sub", dir);
        rmdir(path);
        rmdir(dir);
        return test_done();
}
