/* server.c - non-blocking Unix socket server driven by sd-event. */
#include "server/server.h"

#include <fcntl.h>
#include <limits.h>
#include <sys/epoll.h>
#include <stdarg.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>

#include "util/log.h"

#define READ_CHUNK 65536
/* Accepts per wake-up, so a connection storm cannot starve the rest of the loop. */
#define ACCEPT_BURST 32
/* Deadlines are checked this often: they hold to within a second. */
#define SWEEP_INTERVAL_USEC (1000000ULL)
/* Refusals are logged at most this often (a flood would fill the log). */
#define REFUSE_LOG_USEC (10 * 1000000ULL)
#define ACCEPT_PAUSE_USEC (1000000ULL)

struct server_client {
        unsigned n_ref;
        struct server *server;          /* NULL once disconnected */
        struct server_client *prev, *next;
        int fd;
        sd_event_source *io;
        struct server_peer peer;
        struct protocol_decoder *decoder;
        uint8_t *out;                   /* queued reply bytes [out_start, out_size) */
        size_t out_start, out_size;
        bool in_flight;                 /* a request awaits its reply */
        bool closing;                   /* no more reading: close once flushed */
        uint64_t last_activity;         /* CLOCK_MONOTONIC usec */
        uint64_t frame_start;           /* first byte of an unfinished frame; 0: none */
        bool privileged;                /* root or privileged_uid */
};

struct server {
        sd_event *event;
        struct server_limits limits;
        server_request_fn on_request;
        void *userdata;

        int listen_fd;
        sd_event_source *listen_source;
        sd_event_source *accept_pause;  /* re-enables accepting after EMFILE */
        sd_event_source *sweep;
        char *path;                     /* bound by us: unlink on free */
        dev_t path_dev;
        ino_t path_ino;
        bool activated;

        struct server_client *clients;
        unsigned n_clients;
        unsigned n_in_flight;
        uint64_t refused_logged[3];     /* per reason: when a refusal was last logged */
        unsigned n_refused[3];          /* per reason: refusals not logged since */

        bool stopping;
        void (*on_idle)(struct server *s, void *userdata);
        void *idle_userdata;
};

static int set_error(char **ret_error, const char *fmt, ...) _printf_(2, 3);
static int set_error(char **ret_error, const char *fmt, ...) {
        va_list ap;

        if (ret_error) {
                va_start(ap, fmt);
                if (vasprintf(ret_error, fmt, ap) < 0)
                        *ret_error = NULL;
                va_end(ap);
        }
        return 0;
}

static uint64_t now_usec(const struct server *s) {
        uint64_t t = 0;

        sd_event_now(s->event, CLOCK_MONOTONIC, &t);
        return t;
}

static void client_disconnect(struct server_client *c);
static int client_update_events(struct server_client *c);

static void server_check_idle(struct server *s) {
        if (s->stopping && s->n_clients == 0 && s->on_idle) {
                void (*fn)(struct server *, void *) = s->on_idle;
                s->on_idle = NULL;
                fn(s, s->idle_userdata);
        }
}

struct server_client *server_client_ref(struct server_client *c) {
        if (c)
                c->n_ref++;
        return c;
}

static void client_free(struct server_client *c) {
        protocol_decoder_free(c->decoder);
        free(c->out);
        free(c);
}

struct server_client *server_client_unref(struct server_client *c) {
        if (!c)
                return NULL;
        if (--c->n_ref > 0)
                return NULL;
        client_disconnect(c);
        client_free(c);
        return NULL;
}

const struct server_peer *server_client_peer(const struct server_client *c) {
        return &c->peer;
}

/* Close the connection; the struct lives on while references remain. */
static void client_disconnect(struct server_client *c) {
        struct server *s = c->server;

        if (!s)
                return;
        c->io = sd_event_source_disable_unref(c->io);
        if (c->fd >= 0)
                close(c->fd);
        c->fd = -1;
        if (c->in_flight)
                s->n_in_flight--;
        c->in_flight = false;
        if (c->prev)
                c->prev->next = c->next;
        else
                s->clients = c->next;
        if (c->next)
                c->next->prev = c->prev;
        c->prev = c->next = NULL;
        if (--s->n_clients == 0)
                (void) sd_event_source_set_enabled(s->sweep, SD_EVENT_OFF);
        c->server = NULL;
        /* The server's own reference. */
        server_client_unref(c);
        server_check_idle(s);
}

/* Write what is queued; 0 when done or blocked, <0 when the peer is gone. */
static int client_flush(struct server_client *c) {
        while (c->out_start < c->out_size) {
                ssize_t n = send(c->fd, c->out + c->out_start, c->out_size - c->out_start,
                                 MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                return 0;
                        return negative_errno();
                }
                c->out_start += (size_t) n;
                c->last_activity = now_usec(c->server);
        }
        c->out_start = c->out_size = 0;
        return 0;
}

static int queue_bytes(struct server_client *c, const void *data, size_t size) {
        uint8_t *p;

        if (c->out_start > 0) {
                memmove(c->out, c->out + c->out_start, c->out_size - c->out_start);
                c->out_size -= c->out_start;
                c->out_start = 0;
        }
        p = realloc(c->out, c->out_size + size);
        if (!p)
                return -ENOMEM;
        memcpy(p + c->out_size, data, size);
        c->out = p;
        c->out_size += size;
        return 0;
}

/* Encode and queue OBJ; does not close the client. */
static int client_queue(struct server_client *c, json_t *obj) {
        _cleanup_free_ void *frame = NULL;
        size_t size;
        int r;

        r = protocol_frame_encode(obj, c->server->limits.max_reply_frame_bytes, &frame, &size);
        if (r < 0)
                return r;
        return queue_bytes(c, frame, size);
}

/* Send an error reply that needs no request handling, e.g. busy. */
static void client_queue_error(struct server_client *c, enum protocol_error_code code, const char *msg) {
        _cleanup_(json_decrefp) json_t *reply = NULL;

        if (protocol_reply_error(NULL, code, msg, &reply) >= 0)
                (void) client_queue(c, reply);
}

static void client_process(struct server_client *c);

int server_client_reply(struct server_client *c, json_t *reply) {
        struct server *s = c->server;
        int r;

        if (!s)
                return -ENOTCONN;
        r = client_queue(c, reply);
        if (r < 0)
                return r;
        if (c->in_flight) {
                c->in_flight = false;
                s->n_in_flight--;
        }
        if (c->out_size - c->out_start > s->limits.max_reply_bytes) {
                log_warning("Dropping client pid %d uid %u: %zu reply bytes unread (limit %zu)",
                            (int) c->peer.pid, (unsigned) c->peer.uid,
                            c->out_size - c->out_start, s->limits.max_reply_bytes);
                c->closing = true;
                c->out_start = c->out_size = 0;
        }
        /* Most replies fit the socket buffer: send now, the loop does the rest. */
        if (client_flush(c) < 0) {
                log_debug("Client pid %d went away before its reply was sent", (int) c->peer.pid);
                c->closing = true;
                c->out_start = c->out_size = 0;
        }
        (void) client_update_events(c);
        return 0;
}

static int client_update_events(struct server_client *c) {
        uint32_t ev = 0;

        if (!c->io)
                return 0;
        /* Read the next request only once the last reply is out: a client
         * that does not read its replies stops being read (and the idle
         * sweep drops it), so its queued bytes stay bounded. */
        if (!c->closing && !c->in_flight && c->out_size == c->out_start)
                ev |= EPOLLIN;
        if (c->out_size > c->out_start)
                ev |= EPOLLOUT;
        if (ev == 0 && c->closing && !c->in_flight) {
                /* Nothing left to send: fire once more to close from the loop. */
                ev = EPOLLOUT;
        }
        return sd_event_source_set_io_events(c->io, ev);
}

/* Hand complete frames to the request callback, one at a time. */
static void client_process(struct server_client *c) {
        struct server *s = c->server;

        server_client_ref(c);
        while (c->server && !c->in_flight && !c->closing && c->out_size == c->out_start) {
                _cleanup_(json_decrefp) json_t *body = NULL;
                struct protocol_error err = {};
                int r;

                r = protocol_decoder_next(c->decoder, &body, &err);
                if (r == 0)
                        break;
                if (r == -EPROTO)
                        c->closing = true;
                else if (r < 0 && r != -EBADMSG) {
                        protocol_error_set(&err, PROTOCOL_ERROR_INTERNAL, "cannot decode request: %s",
                                           strerror(-r));
                        c->closing = true;
                }

                if (r > 0 && s->n_in_flight >= s->limits.max_queued_requests) {
                        client_queue_error(c, PROTOCOL_ERROR_BUSY,
                                           "elasticd is busy: too many requests in progress, retry later");
                        continue;
                }
                c->in_flight = true;
                s->n_in_flight++;
                s->on_request(c, r > 0 ? body : NULL, r > 0 ? NULL : &err, s->userdata);
        }
        if (c->server) {
                /* The frame deadline runs from the first byte of a frame
                 * until the frame is whole. */
                if (protocol_decoder_idle(c->decoder))
                        c->frame_start = 0;
                else if (c->frame_start == 0)
                        c->frame_start = now_usec(s);
                (void) client_update_events(c);
        }
        server_client_unref(c);
}

static void client_read(struct server_client *c) {
        uint8_t buf[READ_CHUNK];
        ssize_t n;
        int r;

        n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n < 0) {
                if (errno == EAGAIN || errno == EINTR)
                        return;
                log_debug("Client pid %d: read failed: %m", (int) c->peer.pid);
                client_disconnect(c);
                return;
        }
        c->last_activity = now_usec(c->server);
        if (n == 0) {
                /* EOF: answer what was asked, then close. */
                if (!protocol_decoder_idle(c->decoder))
                        log_debug("Client pid %d closed in the middle of a frame", (int) c->peer.pid);
                c->closing = true;
                return;
        }
        r = protocol_decoder_feed(c->decoder, buf, (size_t) n);
        if (r < 0 && r != -EPROTO) {
                log_warning("Client pid %d: %s", (int) c->peer.pid, strerror(-r));
                client_disconnect(c);
                return;
        }
        client_process(c);
}

static int client_io(sd_event_source *src, int fd, uint32_t revents, void *userdata) {
        struct server_client *c = userdata;

        server_client_ref(c);
        if (revents & EPOLLIN)
                client_read(c);
        if (c->server && (revents & (EPOLLOUT | EPOLLHUP | EPOLLERR))) {
                if (client_flush(c) < 0) {
                        log_debug("Client pid %d went away before its reply was sent", (int) c->peer.pid);
                        client_disconnect(c);
                } else if (c->out_size == c->out_start)
                        client_process(c); /* frames that arrived with the last one */
        }
        /* After EOF the peer may still be reading: close once everything is sent. */
        if (c->server && c->closing && !c->in_flight && c->out_size == c->out_start)
                client_disconnect(c);
        else if (c->server && !(revents & EPOLLIN) && (revents & EPOLLHUP) && !c->in_flight)
                client_disconnect(c);
        else if (c->server)
                (void) client_update_events(c);
        server_client_unref(c);
        return 0;
}

static void reject_busy(struct server *s, int fd, const char *why) {
        _cleanup_(json_decrefp) json_t *reply = NULL;
        _cleanup_free_ void *frame = NULL;
        char msg[200];
        size_t size;

        snprintf(msg, sizeof(msg), "elasticd is busy: %u clients connected (limit %s), retry later",
                 s->n_clients, why);
        if (protocol_reply_error(NULL, PROTOCOL_ERROR_BUSY, msg, &reply) < 0 ||
            protocol_frame_encode(reply, s->limits.max_frame_bytes, &frame, &size) < 0)
                return;
        /* Best effort: a fresh socket's buffer takes a small frame at once. */
        (void) send(fd, frame, size, MSG_NOSIGNAL | MSG_DONTWAIT);
}

static int accept_resume(sd_event_source *src, uint64_t usec, void *userdata) {
        struct server *s = userdata;

        s->accept_pause = sd_event_source_unref(s->accept_pause);
        if (s->listen_source && !s->stopping)
                sd_event_source_set_enabled(s->listen_source, SD_EVENT_ON);
        return 0;
}

static void server_add_client(struct server *s, int fd) {
        struct server_client *c;
        struct ucred cred;
        socklen_t len = sizeof(cred);
        static const char *const reasons[3] = {
                "max_clients",
                "the rest are reserved for root and SlurmUser (reserved_clients)",
                "max_clients_per_uid",
        };
        const char *why = NULL;
        unsigned k = 0;
        bool privileged;
        int r;

        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
                log_warning("Cannot read the peer credentials of a new client: %m");
                close(fd);
                return;
        }
        privileged = cred.uid == 0 || cred.uid == s->limits.privileged_uid;
        if (s->n_clients >= s->limits.max_clients)
                why = reasons[k = 0];
        else if (!privileged && s->n_clients + s->limits.reserved_clients >= s->limits.max_clients)
                why = reasons[k = 1];
        else if (!privileged && s->limits.max_clients_per_uid > 0) {
                unsigned same = 0;
                for (struct server_client *o = s->clients; o; o = o->next)
                        if (o->peer.uid == cred.uid)
                                same++;
                if (same >= s->limits.max_clients_per_uid)
                        why = reasons[k = 2];
        }
        if (why) {
                uint64_t t = now_usec(s);
                if (s->refused_logged[k] == 0 || t - s->refused_logged[k] >= REFUSE_LOG_USEC) {
                        log_warning("Refusing client pid %d uid %u: %u clients connected (%s); %u more refused for this since the last such message",
                                    (int) cred.pid, (unsigned) cred.uid, s->n_clients, why, s->n_refused[k]);
                        s->refused_logged[k] = t;
                        s->n_refused[k] = 0;
                } else
                        s->n_refused[k]++;
                reject_busy(s, fd, why);
                close(fd);
                return;
        }

        c = calloc(1, sizeof(*c));
        if (!c) {
                close(fd);
                return;
        }
        c->n_ref = 1;
        c->fd = fd;
        c->peer = (struct server_peer) { .uid = cred.uid, .gid = cred.gid, .pid = cred.pid };
        c->privileged = privileged;
        c->last_activity = now_usec(s);
        r = protocol_decoder_new(s->limits.max_frame_bytes, &c->decoder);
        if (r >= 0)
                r = sd_event_add_io(s->event, &c->io, fd, EPOLLIN, client_io, c);
        if (r < 0) {
                log_warning("Cannot set up client pid %d: %s", (int) cred.pid, strerror(-r));
                close(fd);
                client_free(c);
                return;
        }
        c->server = s;
        c->next = s->clients;
        if (s->clients)
                s->clients->prev = c;
        s->clients = c;
        if (s->n_clients++ == 0) {
                /* The sweep runs only while there is someone to sweep. */
                (void) sd_event_source_set_time_relative(s->sweep, SWEEP_INTERVAL_USEC);
                (void) sd_event_source_set_enabled(s->sweep, SD_EVENT_ON);
        }
        log_debug("Client connected: pid %d uid %u gid %u", (int) cred.pid, (unsigned) cred.uid,
                  (unsigned) cred.gid);
}

static int listen_io(sd_event_source *src, int fd, uint32_t revents, void *userdata) {
        struct server *s = userdata;

        for (unsigned i = 0; i < ACCEPT_BURST; i++) {
                int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (cfd < 0) {
                        if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED)
                                return 0;
                        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                                /* The connection stays queued; pausing avoids a busy loop. */
                                log_warning("Cannot accept a client: %m; pausing for a second");
                                sd_event_source_set_enabled(s->listen_source, SD_EVENT_OFF);
                                if (!s->accept_pause)
                                        sd_event_add_time_relative(s->event, &s->accept_pause, CLOCK_MONOTONIC,
                                                                   ACCEPT_PAUSE_USEC, 0, accept_resume, s);
                                return 0;
                        }
                        log_warning("accept() failed: %m");
                        return 0;
                }
                server_add_client(s, cfd);
        }
        return 0;
}

static int sweep(sd_event_source *src, uint64_t usec, void *userdata) {
        struct server *s = userdata;
        uint64_t now = now_usec(s);

        for (struct server_client *c = s->clients, *next; c; c = next) {
                next = c->next;
                if (s->limits.frame_timeout_usec && c->frame_start && !c->in_flight && !c->closing &&
                    c->out_size == c->out_start && now - c->frame_start > s->limits.frame_timeout_usec) {
                        log_info("Dropping client pid %d uid %u: a frame begun %llu s ago is still not whole (frame_timeout)",
                                 (int) c->peer.pid, (unsigned) c->peer.uid,
                                 (unsigned long long) ((now - c->frame_start) / 1000000));
                        client_disconnect(c);
                        continue;
                }
                if (s->limits.idle_timeout_usec && !c->in_flight &&
                    now - c->last_activity > s->limits.idle_timeout_usec) {
                        log_info("Dropping client pid %d uid %u: idle for %llu s", (int) c->peer.pid,
                                 (unsigned) c->peer.uid,
                                 (unsigned long long) ((now - c->last_activity) / 1000000));
                        client_disconnect(c);
                }
        }
        sd_event_source_set_time(src, now + SWEEP_INTERVAL_USEC);
        return 0;
}

int server_new(sd_event *event, const struct server_limits *limits,
               server_request_fn on_request, void *userdata, struct server **ret) {
        struct server *s;
        int r;

        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->event = sd_event_ref(event);
        s->on_request = on_request;
        s->userdata = userdata;
        s->listen_fd = -1;
        server_set_limits(s, limits);
        r = sd_event_add_time_relative(event, &s->sweep, CLOCK_MONOTONIC, SWEEP_INTERVAL_USEC,
                                       SWEEP_INTERVAL_USEC / 5, sweep, s);
        if (r < 0) {
                server_free(s);
                return r;
        }
        /* Off until a client connects. */
        sd_event_source_set_enabled(s->sweep, SD_EVENT_OFF);
        *ret = s;
        return 0;
}

void server_set_limits(struct server *s, const struct server_limits *limits) {
        s->limits = *limits;
        if (s->limits.max_clients == 0)
                s->limits.max_clients = 1;
        if (s->limits.reserved_clients >= s->limits.max_clients)
                s->limits.reserved_clients = s->limits.max_clients - 1;
        if (s->limits.max_queued_requests == 0)
                s->limits.max_queued_requests = 1;
        if (s->limits.max_frame_bytes < PROTOCOL_MAX_FRAME_MIN)
                s->limits.max_frame_bytes = PROTOCOL_MAX_FRAME_MIN;
        if (s->limits.max_reply_frame_bytes < s->limits.max_frame_bytes)
                s->limits.max_reply_frame_bytes = s->limits.max_frame_bytes;
        if (s->limits.max_reply_bytes < s->limits.max_reply_frame_bytes + PROTOCOL_HEADER_SIZE)
                s->limits.max_reply_bytes = s->limits.max_reply_frame_bytes + PROTOCOL_HEADER_SIZE;
}

static void server_close_listener(struct server *s) {
        struct stat st;

        s->listen_source = sd_event_source_disable_unref(s->listen_source);
        s->accept_pause = sd_event_source_disable_unref(s->accept_pause);
        if (s->listen_fd >= 0)
                close(s->listen_fd);
        s->listen_fd = -1;
        /* Remove the socket file only if it is still the one we made. */
        if (s->path && !s->activated && lstat(s->path, &st) >= 0 && S_ISSOCK(st.st_mode) &&
            st.st_dev == s->path_dev && st.st_ino == s->path_ino)
                (void) unlink(s->path);
}

struct server *server_free(struct server *s) {
        if (!s)
                return NULL;
        s->on_idle = NULL;
        while (s->clients)
                client_disconnect(s->clients);
        server_close_listener(s);
        sd_event_source_disable_unref(s->sweep);
        sd_event_unref(s->event);
        free(s->path);
        free(s);
        return NULL;
}

static int server_start_listening(struct server *s, int fd) {
        int r;

        r = sd_event_add_io(s->event, &s->listen_source, fd, EPOLLIN, listen_io, s);
        if (r < 0)
                return r;
        s->listen_fd = fd;
        return 0;
}

int server_listen_activated(struct server *s, const char *name, char **ret_error) {
        char **names = NULL;
        int n, fd = -1, r;

        n = sd_listen_fds_with_names(true, &names);
        if (n < 0)
                return set_error(ret_error, "cannot read the sockets systemd passed: %s", strerror(-n)), n;
        if (n == 0) {
                free(names);
                return 0;
        }
        for (int i = 0; i < n; i++)
                if (names && names[i] && name && strcmp(names[i], name) == 0)
                        fd = SD_LISTEN_FDS_START + i;
        if (fd < 0 && n == 1)
                fd = SD_LISTEN_FDS_START;
        for (int i = 0; i < n; i++) {
                if (SD_LISTEN_FDS_START + i != fd)
                        close(SD_LISTEN_FDS_START + i);
                if (names)
                        free(names[i]);
        }
        free(names);
        if (fd < 0)
                return set_error(ret_error, "systemd passed %d sockets, none named \"%s\"", n, name), -EBADF;

        r = sd_is_socket_unix(fd, SOCK_STREAM, 1, NULL, 0);
        if (r <= 0) {
                close(fd);
                return set_error(ret_error, "the socket systemd passed is not a listening Unix stream socket"),
                       r < 0 ? r : -ENOTSOCK;
        }
        if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0 ||
            fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
                r = negative_errno();
                close(fd);
                return set_error(ret_error, "cannot configure the passed socket: %s", strerror(-r)), r;
        }
        {
                struct sockaddr_un sa = {};
                socklen_t len = sizeof(sa);

                if (getsockname(fd, (struct sockaddr *) &sa, &len) >= 0 && len > sizeof(sa_family_t) &&
                    sa.sun_path[0])
                        s->path = strndup(sa.sun_path, sizeof(sa.sun_path));
        }
        s->activated = true;
        r = server_start_listening(s, fd);
        if (r < 0) {
                close(fd);
                return set_error(ret_error, "cannot watch the passed socket: %s", strerror(-r)), r;
        }
        return 1;
}

static int mkdir_parents(const char *path, char **ret_error) {
        _cleanup_free_ char *p = strdup(path);

        if (!p)
                return -ENOMEM;
        for (char *slash = strchr(p + 1, '/'); slash; slash = strchr(slash + 1, '/')) {
                *slash = 0;
                if (mkdir(p, 0755) < 0 && errno != EEXIST) {
                        int r = negative_errno();
                        return set_error(ret_error, "cannot create directory %s: %s", p, strerror(-r)), r;
                }
                *slash = '/';
        }
        return 0;
}

/* 1 when something accepts connections at SA, 0 when nothing does. */
static int socket_is_live(const struct sockaddr_un *sa) {
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

        if (fd < 0)
                return negative_errno();
        if (connect(fd, (const struct sockaddr *) sa, sizeof(*sa)) >= 0)
                return 1;
        /* A full backlog (EAGAIN) still means a live listener. */
        if (errno == EAGAIN || errno == EINPROGRESS)
                return 1;
        if (errno == ECONNREFUSED || errno == ENOENT)
                return 0;
        return negative_errno();
}

int server_listen_path(struct server *s, const char *path, mode_t mode, gid_t gid, char **ret_error) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_close_ int fd = -1;
        struct stat st;
        int r;

        if (!path || path[0] != '/')
                return set_error(ret_error, "socket path \"%s\" is not absolute", path ? path : ""), -EINVAL;
        if (strlen(path) >= sizeof(sa.sun_path))
                return set_error(ret_error, "socket path %s is longer than %zu bytes", path,
                                 sizeof(sa.sun_path) - 1), -ENAMETOOLONG;
        strcpy(sa.sun_path, path);

        r = mkdir_parents(path, ret_error);
        if (r < 0)
                return r;

        if (lstat(path, &st) >= 0) {
                if (!S_ISSOCK(st.st_mode))
                        return set_error(ret_error, "%s exists and is not a socket: not touching it", path),
                               -EEXIST;
                r = socket_is_live(&sa);
                if (r > 0)
                        return set_error(ret_error,
                                         "another elasticd is already listening on %s: stop it first "
                                         "(or use another socket path)", path), -EADDRINUSE;
                if (r < 0)
                        return set_error(ret_error, "cannot check whether %s is in use: %s", path,
                                         strerror(-r)), r;
                log_info("Removing stale socket %s (nothing listens on it)", path);
                if (unlink(path) < 0 && errno != ENOENT) {
                        r = negative_errno();
                        return set_error(ret_error, "cannot remove stale socket %s: %s", path, strerror(-r)), r;
                }
        }

        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
                r = negative_errno();
                return set_error(ret_error, "cannot create a socket: %s", strerror(-r)), r;
        }
        if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
                r = negative_errno();
                return set_error(ret_error, "cannot bind %s: %s", path, strerror(-r)), r;
        }
        if (lstat(path, &st) < 0) {
                r = negative_errno();
                return set_error(ret_error, "cannot stat %s: %s", path, strerror(-r)), r;
        }
        s->path_dev = st.st_dev;
        s->path_ino = st.st_ino;
        free(s->path);
        s->path = strdup(path);
        if (!s->path)
                return -ENOMEM;
        /* Mode and group before listen(): nobody can connect before they are right. */
        if (chmod(path, mode) < 0) {
                r = negative_errno();
                set_error(ret_error, "cannot chmod %s to %04o: %s", path, (unsigned) mode, strerror(-r));
                goto fail;
        }
        if (gid != (gid_t) -1 && chown(path, (uid_t) -1, gid) < 0) {
                r = negative_errno();
                set_error(ret_error, "cannot set the group of %s to gid %u: %s", path, (unsigned) gid,
                          strerror(-r));
                goto fail;
        }
        if (listen(fd, SOMAXCONN) < 0) {
                r = negative_errno();
                set_error(ret_error, "cannot listen on %s: %s", path, strerror(-r));
                goto fail;
        }
        r = server_start_listening(s, fd);
        if (r < 0) {
                set_error(ret_error, "cannot watch %s: %s", path, strerror(-r));
                goto fail;
        }
        TAKE_FD(fd);
        return 0;
fail:
        (void) unlink(path);
        s->path = mfree(s->path);
        return r;
}

const char *server_path(const struct server *s) {
        return s->path ? s->path : "";
}

bool server_activated(const struct server *s) {
        return s->activated;
}

unsigned server_n_clients(const struct server *s) {
        return s->n_clients;
}

void server_stop(struct server *s, void (*on_idle)(struct server *s, void *userdata), void *userdata) {
        s->stopping = true;
        s->on_idle = on_idle;
        s->idle_userdata = userdata;
        server_close_listener(s);
        for (struct server_client *c = s->clients, *next; c; c = next) {
                next = c->next;
                c->closing = true;
                if (!c->in_flight && c->out_size == c->out_start)
                        client_disconnect(c);
                else
                        (void) client_update_events(c);
        }
        server_check_idle(s);
}
