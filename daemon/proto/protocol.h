/* protocol.h - elasticd's wire protocol: length-prefixed JSON frames, requests and replies. */
#pragma once

/*
 * A frame is a 4-byte big-endian body length followed by that many bytes of
 * UTF-8 JSON holding one object. A client sends one request frame and reads
 * one reply frame. doc/protocol.md is the reference for every field.
 */

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/macro.h"

#define PROTOCOL_VERSION 1u
#define PROTOCOL_HEADER_SIZE 4u
#define PROTOCOL_MAX_FRAME_DEFAULT ((size_t) 1024 * 1024)
/* The smallest max_frame a caller may ask for; keeps error replies sendable. */
#define PROTOCOL_MAX_FRAME_MIN ((size_t) 4096)
/* Largest accepted SLURM_RESUME_FILE (hook side) and message text. */
#define PROTOCOL_RESUME_FILE_MAX ((size_t) 512 * 1024)
#define PROTOCOL_MESSAGE_MAX 512

enum protocol_request_type {
        PROTOCOL_REQUEST_RESUME,
        PROTOCOL_REQUEST_SUSPEND,
        PROTOCOL_REQUEST_RESUME_FAIL,
        PROTOCOL_REQUEST_REBOOT,
        PROTOCOL_REQUEST_RESIZE,
        PROTOCOL_REQUEST_STATUS,
        PROTOCOL_REQUEST_NODES,
        PROTOCOL_REQUEST_RELOAD,
        PROTOCOL_REQUEST_PING,
        PROTOCOL_REQUEST_METRICS,
        PROTOCOL_REQUEST_GROUP_ENABLE,
        _PROTOCOL_REQUEST_MAX,
};

/* Who may send a request type (checked by the daemon with SO_PEERCRED). */
enum protocol_access {
        PROTOCOL_ACCESS_ANYONE, /* anyone allowed to connect to the socket */
        PROTOCOL_ACCESS_HOOK,   /* root or the configured SlurmUser */
        PROTOCOL_ACCESS_ADMIN,  /* root or the configured admin group */
};

enum protocol_error_code {
        PROTOCOL_ERROR_BAD_FRAME,
        PROTOCOL_ERROR_BAD_REQUEST,
        PROTOCOL_ERROR_UNSUPPORTED_VERSION,
        PROTOCOL_ERROR_PERMISSION_DENIED,
        PROTOCOL_ERROR_UNKNOWN_NODE,
        PROTOCOL_ERROR_BAD_HOSTLIST,
        PROTOCOL_ERROR_TOO_MANY_NODES,
        PROTOCOL_ERROR_BUSY,
        PROTOCOL_ERROR_JOURNAL_FAILED,
        PROTOCOL_ERROR_NOT_FOUND,
        PROTOCOL_ERROR_CONFIG_REFUSED,
        PROTOCOL_ERROR_INTERNAL,
        _PROTOCOL_ERROR_MAX,
};

/* What went wrong, for a reply or a message to a person. Functions taking a
 * `struct protocol_error *err` fill it on failure when it is not NULL. */
struct protocol_error {
        enum protocol_error_code code;
        char message[PROTOCOL_MESSAGE_MAX];
};

/* "resume", "resume_fail", ...; NULL if out of range. */
const char *protocol_request_type_to_string(enum protocol_request_type t);
/* The type named S, or -EINVAL. */
int protocol_request_type_from_string(const char *s);
enum protocol_access protocol_request_type_access(enum protocol_request_type t);
/* "hook", "admin", "anyone". */
const char *protocol_access_to_string(enum protocol_access a);

/* "bad_frame", "busy", ...; NULL if out of range. */
const char *protocol_error_code_to_string(enum protocol_error_code c);
/* The code named S, or -EINVAL. */
int protocol_error_code_from_string(const char *s);

/* Fill ERR (may be NULL) with CODE and a formatted message. */
void protocol_error_set(struct protocol_error *err, enum protocol_error_code code,
                        const char *fmt, ...) _printf_(3, 4);

/* ---- Requests ------------------------------------------------------------ */

/* A validated request. Which fields are set depends on the type: see
 * doc/protocol.md. Unset strings are NULL, unset json is NULL. */
struct protocol_request {
        enum protocol_request_type type;
        unsigned version;
        char *client;            /* any: argv[0] basename, informational */

        /* resume, suspend, resume_fail, reboot */
        char *nodes;             /* Slurm hostlist (reboot: unranged comma list), required */
        char *job_id;            /* SLURM_JOB_ID, optional */
        json_t *resume_file;     /* object read from SLURM_RESUME_FILE, optional */
        char *resume_file_error; /* why SLURM_RESUME_FILE could not be read, optional */

        /* reboot */
        char *reason;            /* optional */
        char *features;          /* RebootProgram argv[2], optional */

        /* resize, group_enable */
        unsigned min;            /* resize: required */
        char *group;             /* resize: optional (absent = the only group); group_enable: required */
        bool wait;               /* reply only when the resize is done */

        /* nodes */
        bool rows;               /* the reply as "columns" and "rows" (arrays) instead of one object per node */
        bool table;              /* the reply as "columns" and "table" (one line of text per node) */
};

struct protocol_request *protocol_request_free(struct protocol_request *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct protocol_request *, protocol_request_free);

/* Validate a decoded request object. On failure returns -EINVAL (or -ENOMEM)
 * and fills ERR with bad_request or unsupported_version and a message naming
 * the field at fault. */
int protocol_request_parse(json_t *body, struct protocol_request **ret, struct protocol_error *err);

/* Build the JSON object for R (the client side). Fields R's type does not use
 * must be unset. -EINVAL, with ERR saying why, if R would not pass
 * protocol_request_parse. */
int protocol_request_to_json(const struct protocol_request *r, json_t **ret, struct protocol_error *err);

/* ---- Replies ------------------------------------------------------------- */

/* {"version":1,"id":ID,"ok":true,"result":RESULT}. RESULT is borrowed (a
 * reference is taken); NULL means {}. ID NULL is sent as JSON null. */
int protocol_reply_ok(const char *request_id, json_t *result, json_t **ret);
/* {"version":1,"id":ID,"ok":false,"error":{"code":...,"message":...}}. */
int protocol_reply_error(const char *request_id, enum protocol_error_code code,
                         const char *message, json_t **ret);

/* A reply as the client sees it. */
struct protocol_reply {
        char *id;                /* NULL when the daemon sent null */
        bool ok;
        json_t *result;          /* ok: the result object */
        char *error_code;        /* !ok: the code's string (may be one this client does not know) */
        char *error_message;     /* !ok */
};

struct protocol_reply *protocol_reply_free(struct protocol_reply *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct protocol_reply *, protocol_reply_free);

/* Validate a decoded reply object; -EBADMSG with ERR (bad_frame) if it is
 * not a reply, or unsupported_version if its version is not 1. */
int protocol_reply_parse(json_t *body, struct protocol_reply **ret, struct protocol_error *err);

/* ---- Frames -------------------------------------------------------------- */

/* The bytes of one frame carrying OBJ (an object): *ret (malloc'd) of
 * *ret_size bytes. -EMSGSIZE if the body would exceed MAX_FRAME. */
int protocol_frame_encode(json_t *obj, size_t max_frame, void **ret, size_t *ret_size);

/* Parse one frame body into an object: -EBADMSG and ERR (bad_frame) when it
 * is not valid UTF-8 JSON holding exactly one object. */
int protocol_frame_body_parse(const void *body, size_t size, json_t **ret, struct protocol_error *err);

/* Incremental decoder for a non-blocking reader: feed bytes as they arrive,
 * take complete frames out. */
struct protocol_decoder;

/* MAX_FRAME: largest body accepted (config limits.max_frame_bytes); values
 * below PROTOCOL_MAX_FRAME_MIN are raised to it. */
int protocol_decoder_new(size_t max_frame, struct protocol_decoder **ret);
struct protocol_decoder *protocol_decoder_free(struct protocol_decoder *d);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct protocol_decoder *, protocol_decoder_free);

/* Append SIZE bytes. Returns 0, -ENOMEM, or -EPROTO if the decoder has
 * already failed. Bytes are only buffered here; errors surface in _next(). */
int protocol_decoder_feed(struct protocol_decoder *d, const void *data, size_t size);

/* Take the next complete frame:
 *   1      *ret is its body, an object (caller unrefs);
 *   0      more bytes are needed;
 *   -EBADMSG  a complete frame whose body is not one JSON object: the frame
 *          is dropped, ERR says why, the stream is still in step (call again);
 *   -EPROTO   the framing is broken (zero length, or longer than max_frame):
 *          ERR says why; the decoder stays failed, close the connection. */
int protocol_decoder_next(struct protocol_decoder *d, json_t **ret, struct protocol_error *err);

/* Bytes fed but not yet taken out as frames (for backpressure). */
size_t protocol_decoder_buffered(const struct protocol_decoder *d);
/* True once the framing is broken. */
bool protocol_decoder_failed(const struct protocol_decoder *d);
/* True when no partial frame is pending (a clean place for EOF). */
bool protocol_decoder_idle(const struct protocol_decoder *d);

/* ---- Blocking helpers for clients ---------------------------------------- */

/* Write the whole frame carrying OBJ to FD, waiting at most TIMEOUT_MS in
 * total (< 0: forever). -ETIMEDOUT, -EMSGSIZE, -EPIPE, ... on failure.
 * Never raises SIGPIPE on a socket. */
int protocol_write_frame(int fd, json_t *obj, size_t max_frame, int timeout_ms);

/* Read one frame from FD within TIMEOUT_MS (< 0: forever) and parse its
 * body. -ETIMEDOUT, -ECONNRESET (EOF before a whole frame), -EPROTO/-EBADMSG
 * (with ERR), or another -errno. */
int protocol_read_frame(int fd, size_t max_frame, int timeout_ms, json_t **ret,
                        struct protocol_error *err);
