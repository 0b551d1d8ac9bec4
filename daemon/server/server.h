/* server.h - the daemon's Unix socket: listening, client connections, request frames in, reply frames out. */
#pragma once

/*
 * All socket I/O is non-blocking and driven by sd-event. A client sends
 * request frames and reads one reply frame per request. The server bounds
 * what a client controls: connections (extra ones get a busy reply and are
 * closed), frame size (bad_frame, then close), requests waiting for a reply
 * (busy), queued reply bytes (a client that does not read is dropped),
 * idleness (dropped after idle_timeout_usec with nothing in progress) and
 * slowness (a frame begun must be whole within frame_timeout_usec). The last
 * reserved_clients slots are only for root and the privileged uid (SlurmUser),
 * so that other users of the socket's group cannot lock the hooks out; each
 * other uid has at most max_clients_per_uid connections.
 */

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

#include "util/macro.h"
#include "proto/protocol.h"

struct server_limits {
        size_t max_frame_bytes;         /* a request body */
        size_t max_reply_frame_bytes;   /* a reply body (nodes on a big cluster is large) */
        unsigned max_clients;
        unsigned max_queued_requests;   /* dispatched, not yet answered, all clients */
        size_t max_reply_bytes;         /* reply bytes queued for one client */
        uint64_t idle_timeout_usec;     /* 0: never */
        uint64_t frame_timeout_usec;    /* a started frame must be whole within; 0: never */
        unsigned reserved_clients;      /* of max_clients, only for root and privileged_uid */
        unsigned max_clients_per_uid;   /* per other uid; 0: no cap */
        uid_t privileged_uid;           /* besides root; (uid_t) -1: none */
};

/* Who is on the other end (SO_PEERCRED, read at accept). */
struct server_peer {
        uid_t uid;
        gid_t gid;
        pid_t pid;
};

struct server;
struct server_client;

/*
 * Called for every complete frame: BODY is the decoded object (borrowed), or
 * NULL when the frame was bad and ERR says why. The callee must answer with
 * server_client_reply() exactly once, now or later (take a reference with
 * server_client_ref() to answer later). After a bad frame that broke the
 * framing the connection closes once that reply is sent.
 */
typedef void (*server_request_fn)(struct server_client *c, json_t *body,
                                  const struct protocol_error *err, void *userdata);

int server_new(sd_event *event, const struct server_limits *limits,
               server_request_fn on_request, void *userdata, struct server **ret);
/* Closes every connection and the listening socket (removing the socket
 * file only if this server created it and it is still the same file). */
struct server *server_free(struct server *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct server *, server_free);

void server_set_limits(struct server *s, const struct server_limits *limits);

/* Take the listening socket systemd passed (socket activation): the fd
 * named NAME, or the only one passed. Returns 1 when taken, 0 when none was
 * passed, <0 with *ret_error (malloc'd) when what was passed is unusable. */
int server_listen_activated(struct server *s, const char *name, char **ret_error);

/* Bind and listen at PATH: creates the parent directory, removes a stale
 * socket only when nothing answers on it (-EADDRINUSE when something does),
 * sets MODE and, if GID is not (gid_t) -1, the group. */
int server_listen_path(struct server *s, const char *path, mode_t mode, gid_t gid, char **ret_error);

/* The socket's path ("" for an unnamed one) and whether systemd passed it. */
const char *server_path(const struct server *s);
bool server_activated(const struct server *s);

/* Stop accepting and reading; replies in progress are still sent. ON_IDLE
 * is called (once) when no connection is left. */
void server_stop(struct server *s, void (*on_idle)(struct server *s, void *userdata), void *userdata);

unsigned server_n_clients(const struct server *s);

struct server_client *server_client_ref(struct server_client *c);
struct server_client *server_client_unref(struct server_client *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct server_client *, server_client_unref);

const struct server_peer *server_client_peer(const struct server_client *c);

/* Queue REPLY (borrowed) for C. -EMSGSIZE when its frame would exceed
 * max_reply_frame_bytes (nothing is sent: answer with a smaller error instead);
 * -ENOTCONN when the client has gone. A client whose queued reply bytes
 * pass max_reply_bytes is dropped. */
int server_client_reply(struct server_client *c, json_t *reply);
