/* fuzz-frame.c - libFuzzer target: the frame decoder, request validation and replies.
 *
 * The input is a byte stream as a client would send it. The first byte picks
 * how it is cut into reads (1..16 bytes, or all at once), as a non-blocking
 * server would see it arrive. Every frame that decodes goes through request
 * validation; whatever validates must build again (protocol_request_to_json)
 * into an equal request, and every error must fit in a reply that decodes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "proto/protocol.h"

#define MAX_FRAME 4096

static bool str_eq(const char *a, const char *b) {
        return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static void check_same(const struct protocol_request *a, const struct protocol_request *b) {
        if (a->type != b->type || a->version != b->version || a->min != b->min || a->wait != b->wait ||
            !str_eq(a->nodes, b->nodes) || !str_eq(a->client, b->client) || !str_eq(a->job_id, b->job_id) ||
            !str_eq(a->reason, b->reason) || !str_eq(a->features, b->features) ||
            !str_eq(a->group, b->group) || !str_eq(a->resume_file_error, b->resume_file_error) ||
            !((!a->resume_file && !b->resume_file) || json_equal(a->resume_file, b->resume_file))) {
                fprintf(stderr, "request changed on a round trip\n");
                abort();
        }
}

/* A reply must encode within the frame limit and decode to what was built. */
static void check_reply(json_t *reply) {
        _cleanup_(protocol_decoder_freep) struct protocol_decoder *d = NULL;
        _cleanup_(protocol_reply_freep) struct protocol_reply *parsed = NULL;
        _cleanup_free_ void *buf = NULL;
        json_t *back = NULL;
        size_t size;

        if (protocol_frame_encode(reply, MAX_FRAME, &buf, &size) < 0 ||
            protocol_decoder_new(MAX_FRAME, &d) < 0 ||
            protocol_decoder_feed(d, buf, size) < 0 ||
            protocol_decoder_next(d, &back, NULL) != 1 ||
            !json_equal(back, reply) ||
            protocol_reply_parse(back, &parsed, NULL) < 0) {
                fprintf(stderr, "a reply does not survive encoding\n");
                abort();
        }
        json_decref(back);
}

static void handle(json_t *body) {
        _cleanup_(protocol_request_freep) struct protocol_request *r = NULL, *again = NULL;
        struct protocol_error err = {};
        _cleanup_(protocol_reply_freep) struct protocol_reply *as_reply = NULL;
        json_t *built = NULL, *reply = NULL;

        /* Replies too: a client parses what a daemon sends. */
        (void) protocol_reply_parse(body, &as_reply, NULL);

        if (protocol_request_parse(body, &r, &err) < 0) {
                if (err.message[0] == '\0')
                        abort();
                if (protocol_reply_error("r-fuzz-1", err.code, err.message, &reply) < 0)
                        abort();
                /* The message (built from client bytes) must survive as is. */
                if (strcmp(json_string_value(json_object_get(json_object_get(reply, "error"), "message")),
                           err.message) != 0) {
                        fprintf(stderr, "message lost: %s\n", err.message);
                        abort();
                }
                check_reply(reply);
                json_decref(reply);
                return;
        }

        if (protocol_request_to_json(r, &built, &err) < 0) {
                fprintf(stderr, "a valid request does not build: %s\n", err.message);
                abort();
        }
        if (protocol_request_parse(built, &again, &err) < 0)
                abort();
        check_same(r, again);
        json_decref(built);

        if (protocol_reply_ok("r-fuzz-2", body, &reply) < 0)
                abort();
        json_decref(reply);
        if (protocol_reply_ok("r-fuzz-2", NULL, &reply) < 0)
                abort();
        check_reply(reply);
        json_decref(reply);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_(protocol_decoder_freep) struct protocol_decoder *d = NULL;
        size_t chunk, off = 0;

        if (size < 1)
                return 0;
        chunk = data[0] % 17;
        data++;
        size--;
        if (chunk == 0)
                chunk = size ? size : 1;

        if (protocol_decoder_new(MAX_FRAME, &d) < 0)
                return 0;
        while (off < size) {
                size_t n = size - off < chunk ? size - off : chunk;

                if (protocol_decoder_feed(d, data + off, n) < 0)
                        break;
                off += n;
                for (;;) {
                        struct protocol_error err = {};
                        json_t *body = NULL;
                        int k = protocol_decoder_next(d, &body, &err);

                        if (k == 0 || k == -EPROTO)
                                break;
                        if (k == -EBADMSG) {
                                json_t *reply = NULL;
                                if (err.code != PROTOCOL_ERROR_BAD_FRAME ||
                                    protocol_reply_error("r-fuzz-0", err.code, err.message, &reply) < 0 ||
                                    strcmp(json_string_value(json_object_get(json_object_get(reply, "error"),
                                                                             "message")), err.message) != 0)
                                        abort();
                                check_reply(reply);
                                json_decref(reply);
                                continue;
                        }
                        if (k != 1 || !json_is_object(body))
                                abort();
                        handle(body);
                        json_decref(body);
                }
                if (protocol_decoder_buffered(d) > MAX_FRAME + PROTOCOL_HEADER_SIZE + chunk)
                        abort(); /* the decoder must not hoard more than one frame */
        }
        return 0;
}
