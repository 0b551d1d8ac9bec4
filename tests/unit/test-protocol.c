/* test-protocol.c - frames, the incremental decoder, request validation, replies. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proto/protocol.h"
#include "test.h"

/* A frame with BODY (not NUL-terminated in the frame) and LEN as the header. */
static size_t make_frame(uint8_t *out, uint32_t len, const char *body, size_t body_len) {
        out[0] = (uint8_t) (len >> 24);
        out[1] = (uint8_t) (len >> 16);
        out[2] = (uint8_t) (len >> 8);
        out[3] = (uint8_t) len;
        memcpy(out + 4, body, body_len);
        return 4 + body_len;
}

static json_t *load(const char *text) {
        json_error_t e;
        json_t *o = json_loads(text, 0, &e);
        if (!o)
                printf("# bad test JSON: %s: %s\n", text, e.text);
        return o;
}

static void test_names(void) {
        for (int t = 0; t < _PROTOCOL_REQUEST_MAX; t++) {
                const char *s = protocol_request_type_to_string(t);
                CHECK(s != NULL);
                CHECK_INT(protocol_request_type_from_string(s), t);
        }
        for (int c = 0; c < _PROTOCOL_ERROR_MAX; c++) {
                const char *s = protocol_error_code_to_string(c);
                CHECK(s != NULL);
                CHECK_INT(protocol_error_code_from_string(s), c);
        }
        CHECK_STR(protocol_request_type_to_string(PROTOCOL_REQUEST_RESUME_FAIL), "resume_fail");
        CHECK_STR(protocol_error_code_to_string(PROTOCOL_ERROR_TOO_MANY_NODES), "too_many_nodes");
        CHECK_INT(protocol_request_type_from_string("Resume"), -EINVAL);
        CHECK_INT(protocol_request_type_from_string(NULL), -EINVAL);
        CHECK(protocol_request_type_to_string(_PROTOCOL_REQUEST_MAX) == NULL);
        CHECK(protocol_error_code_to_string(-1) == NULL);
        CHECK_INT(protocol_request_type_access(PROTOCOL_REQUEST_RESUME), PROTOCOL_ACCESS_HOOK);
        CHECK_INT(protocol_request_type_access(PROTOCOL_REQUEST_REBOOT), PROTOCOL_ACCESS_HOOK);
        CHECK_INT(protocol_request_type_access(PROTOCOL_REQUEST_RESIZE), PROTOCOL_ACCESS_ADMIN);
        CHECK_INT(protocol_request_type_access(PROTOCOL_REQUEST_RELOAD), PROTOCOL_ACCESS_ADMIN);
        CHECK_INT(protocol_request_type_access(PROTOCOL_REQUEST_STATUS), PROTOCOL_ACCESS_ANYONE);
        CHECK_INT(protocol_request_type_access(PROTOCOL_REQUEST_NODES), PROTOCOL_ACCESS_ANYONE);
        CHECK_STR(protocol_access_to_string(PROTOCOL_ACCESS_HOOK), "hook");
}

static void test_encode_decode_round_trip(void) {
        _cleanup_(protocol_decoder_freep) struct protocol_decoder *d = NULL;
        _cleanup_free_ void *buf = NULL;
        json_t *in = load("{\"version\":1,\"type\":\"resume\",\"nodes\":\"cn-[1-4]\",\"x\":\"caf\\u00e9\"}");
        json_t *out = NULL;
        size_t size;

        CHECK_INT(protocol_frame_encode(in, PROTOCOL_MAX_FRAME_DEFAULT, &buf, &size), 0);
        CHECK(size > 4);
        CHECK_INT(((uint8_t *) buf)[0], 0);
        CHECK_INT(((uint8_t *) buf)[3] + 256 * ((uint8_t *) buf)[2], size - 4);

        CHECK_INT(protocol_decoder_new(PROTOCOL_MAX_FRAME_DEFAULT, &d), 0);
        CHECK(protocol_decoder_idle(d));
        CHECK_INT(protocol_decoder_feed(d, buf, size), 0);
        CHECK_INT(protocol_decoder_next(d, &out, NULL), 1);
        CHECK(out && json_equal(in, out));
        CHECK_INT(protocol_decoder_next(d, &out, NULL), 0);
        CHECK(protocol_decoder_idle(d));
        json_decref(out);
        json_decref(in);
}

static void test_encode_limits(void) {
        _cleanup_free_ void *buf = NULL;
        json_t *arr = json_array(), *big = json_object();
        size_t size = 0;

        CHECK_INT(protocol_frame_encode(arr, 4096, &buf, &size), -EINVAL);
        char *s = malloc(5000);
        memset(s, 'a', 4999);
        s[4999] = 0;
        json_object_set_new(big, "s", json_string(s));
        free(s);
        CHECK_INT(protocol_frame_encode(big, 4096, &buf, &size), -EMSGSIZE);
        CHECK(buf == NULL);
        CHECK_INT(protocol_frame_encode(big, 8192, &buf, &size), 0);
        CHECK(size > 5000);
        /* A body of exactly the limit fits; one byte less does not. */
        CHECK_INT((int) size, 4 + 5007); /* {"s":"a...a"} */
        free(buf);
        buf = NULL;
        CHECK_INT(protocol_frame_encode(big, 5007, &buf, &size), 0);
        free(buf);
        buf = NULL;
        CHECK_INT(protocol_frame_encode(big, 5006, &buf, &size), -EMSGSIZE);
        CHECK(buf == NULL);
        json_decref(arr);
        json_decref(big);
}

static void test_decoder_byte_by_byte(void) {
        _cleanup_(protocol_decoder_freep) struct protocol_decoder *d = NULL;
        const char *body = "{\"version\":1,\"type\":\"status\"}";
        uint8_t frame[128];
        size_t n = make_frame(frame, (uint32_t) strlen(body), body, strlen(body));
        json_t *out = NULL;

        CHECK_INT(protocol_decoder_new(0, &d), 0);
        for (size_t i = 0; i < n; i++) {
                CHECK_INT(protocol_decoder_next(d, &out, NULL), 0);
                CHECK(i == 0 || !protocol_decoder_idle(d));
                CHECK_INT(protocol_decoder_feed(d, frame + i, 1), 0);
                CHECK_INT(protocol_decoder_buffered(d), i + 1);
        }
        CHECK_INT(protocol_decoder_next(d, &out, NULL), 1);
        CHECK_STR(json_string_value(json_object_get(out, "type")), "status");
        CHECK(protocol_decoder_idle(d));
        json_decref(out);
}

static void test_decoder_two_frames(void) {
        _cleanup_(protocol_decoder_freep) struct protocol_decoder *d = NULL;
        const char *a = "{\"n\":1}", *b = "{\"n\":2}";
        uint8_t buf[64];
        size_t n = make_frame(buf, 7, a, 7);
        json_t *out = NULL;

        n += make_frame(buf + n, 7, b, 7);
        CHECK_INT(protocol_decoder_new(0, &d), 0);
        /* Both frames plus the first three bytes of a third header. */
        CHECK_INT(protocol_decoder_feed(d, buf, n), 0);
        CHECK_INT(protocol_decoder_feed(d, buf, 3), 0);
        CHECK_INT(protocol_decoder_next(d, &out, NULL), 1);
        CHECK_INT(json_integer_value(json_object_get(out, "n")), 1);
        json_decref(out);
        CHECK_INT(protocol_decoder_next(d, &out, NULL), 1);
        CHECK_INT(json_integer_value(json_object_get(out, "n")), 2);
        json_decref(out);
        CHECK_INT(protocol_decoder_next(d, &out, NULL), 0);
        CHECK_INT(protocol_decoder_buffered(d), 3);
        CHECK(!protocol_decoder_idle(d));
        /* Finish the third frame. */
        CHECK_INT(protocol_decoder_feed(d, buf + 3, 8), 0);
        CHECK_INT(protocol_decoder_next(d, &out, NULL), 1);
        CHECK_INT(json_integer_value(json_object_get(out, "n")), 1);
        json_decref(out);
        CHECK(protocol_decoder_idle(d));
}

static void test_decoder_zero_length(void) {
        _cleanup_(protocol_decoder_freep) struct protocol_decoder *d = NULL;
        struct protocol_error err = {};
        uint8_t z[4] = { 0, 0, 0, 0 };
        json_t *out = NULL;

        CHECK_INT(protocol_decoder_new(0, &d), 0);
        CHECK_INT(protocol_decoder_feed(d, z, 4), 0);
        CHECK_INT(protocol_decoder_next(d, &out, &err), -EPROTO);
        CHECK_INT(err.code, PROTOCOL_ERROR_BAD_FRAME);
        CHECK(strstr(err.message, "length 0") != NULL);
        CHECK(protocol_decoder_failed(d));
        /* Failure is sticky. */
        memset(&err, 0, sizeof(err));
        CHECK_INT(protocol_decoder_feed(d, "x", 1), -EPROTO);
        CHECK_INT(protocol_decoder_next(d, &out, &err), -EPROTO);
        CHECK(strstr(err.message, "length 0") != NULL);
        CHECK(out == NULL);
}

static void test_decoder_oversize(void) {
        _cleanup_(protocol_decoder_freep) struct protocol_decoder *d = NULL;
        struct protocol_error err = {};
        uint8_t h[4] = { 0x00, 0x00, 0x10, 0x01 }; /* 4097 */
        uint8_t huge[4] = { 0xff, 0xff, 0xff, 0xff };
        json_t *out = NULL;

        CHECK_INT(protocol_decoder_new(4096, &d), 0);
        CHECK_INT(protocol_decoder_feed(d, h, 4), 0);
        /* Refused on the header alone: no need to buffer the body first. */
        CHECK_INT(protocol_decoder_next(d, &out, &err), -EPROTO);
        CHECK(strstr(err.message, "4097 bytes") != NULL);
        CHECK(strstr(err.message, "limit is 4096") != NULL);
        CHECK_INT(protocol_decoder_buffered(d), 0);
        d = protocol_decoder_free(d);

        /* Exactly at the limit is fine. */
        {
                static uint8_t frame[4 + 4096];
                char body[4096];
                memset(body, 'a', sizeof(body));
                memcpy(body, "{\"s\":\"", 6);
                memcpy(body + 4094, "\"}", 2);
                make_frame(frame, 4096, body, 4096);
                CHECK_INT(protocol_decoder_new(4096, &d), 0);
                CHECK_INT(protocol_decoder_feed(d, frame, sizeof(frame)), 0);
                CHECK_INT(protocol_decoder_next(d, &out, &err), 1);
                CHECK_INT(strlen(json_string_value(json_object_get(out, "s"))), 4088);
                json_decref(out);
                d = protocol_decoder_free(d);
        }

        CHECK_INT(protocol_decoder_new(PROTOCOL_MAX_FRAME_DEFAULT, &d), 0);
        CHECK_INT(protocol_decoder_feed(d, huge, 4), 0);
        CHECK_INT(protocol_decoder_next(d, &out, &err), -EPROTO);
        CHECK(strstr(err.message, "4294967295 bytes") != NULL);
}

static void test_decoder_bad_bodies(void) {
        static const struct {
                const char *body;
                size_t len;
                const char *message;
        } cases[] = {
                { "{", 1, "not valid" },
                { "not json", 8, "not valid" },
                { "[1,2]", 5, "an array" },
                { "\"str\"", 5, "not valid" }, /* a bare scalar is refused by the parser */
                { "{\"a\":1}{\"b\":2}", 14, "not valid" },
                { "{\"a\":\"\xff\xfe\"}", 10, "not valid" },    /* invalid UTF-8 */
                { "{\"a\":\"\xc3\"}", 9, "not valid" },         /* truncated UTF-8 sequence */
                { "{\"a\":\"\xed\xa0\x80\"}", 11, "not valid" }, /* a surrogate encoded in UTF-8 */
                { "{\"a\":\"\\u0000\"}", 14, "not valid" },      /* NUL in a string */
                { "{\"a\":1,\"a\":2}", 13, "not valid" },        /* duplicate key */
                { "{\"a\":1}\0", 8, "not valid" },
                { "", 0, NULL },
        };
        _cleanup_(protocol_decoder_freep) struct protocol_decoder *d = NULL;

        CHECK_INT(protocol_decoder_new(0, &d), 0);
        for (size_t i = 0; cases[i].message; i++) {
                struct protocol_error err = {};
                uint8_t buf[64];
                size_t n = make_frame(buf, (uint32_t) cases[i].len, cases[i].body, cases[i].len);
                json_t *out = NULL;

                /* Followed by a good frame: the stream stays in step. */
                n += make_frame(buf + n, 2, "{}", 2);
                CHECK_INT(protocol_decoder_feed(d, buf, n), 0);
                CHECK_INT(protocol_decoder_next(d, &out, &err), -EBADMSG);
                CHECK_INT(err.code, PROTOCOL_ERROR_BAD_FRAME);
                if (!strstr(err.message, cases[i].message))
                        TEST_FAIL("case %zu: message \"%s\" lacks \"%s\"", i, err.message, cases[i].message);
                CHECK(!protocol_decoder_failed(d));
                CHECK_INT(protocol_decoder_next(d, &out, &err), 1);
                CHECK(json_is_object(out) && json_object_size(out) == 0);
                json_decref(out);
        }
        CHECK(protocol_decoder_idle(d));
}

static void test_decoder_truncated(void) {
        _cleanup_(protocol_decoder_freep) struct protocol_decoder *d = NULL;
        uint8_t buf[64];
        size_t n = make_frame(buf, 20, "{\"a\":1}", 7); /* promises 20, has 7 */
        json_t *out = NULL;

        CHECK_INT(protocol_decoder_new(0, &d), 0);
        CHECK_INT(protocol_decoder_feed(d, buf, n), 0);
        CHECK_INT(protocol_decoder_next(d, &out, NULL), 0);
        CHECK(!protocol_decoder_idle(d)); /* EOF now would be a truncated frame */
        CHECK(!protocol_decoder_failed(d));
}

/* ---- Requests ---- */

static void expect_request_error(const char *text, enum protocol_error_code code, const char *message) {
        _cleanup_(protocol_request_freep) struct protocol_request *r = NULL;
        struct protocol_error err = {};
        json_t *o = load(text);

        if (!o) {
                TEST_FAIL("bad JSON in test: %s", text);
                return;
        }
        CHECK_INT(protocol_request_parse(o, &r, &err), -EINVAL);
        CHECK(r == NULL);
        CHECK_INT(err.code, code);
        if (!strstr(err.message, message))
                TEST_FAIL("%s: message \"%s\" lacks \"%s\"", text, err.message, message);
        json_decref(o);
}

static struct protocol_request *expect_request(const char *text) {
        struct protocol_request *r = NULL;
        struct protocol_error err = {};
        json_t *o = load(text);
        int k;

        if (!o) {
                TEST_FAIL("bad JSON in test: %s", text);
                return NULL;
        }
        k = protocol_request_parse(o, &r, &err);
        if (k < 0)
                TEST_FAIL("%s: refused: %s", text, err.message);
        json_decref(o);
        return r;
}

static void test_request_valid(void) {
        struct protocol_request *r;

        r = expect_request("{\"version\":1,\"type\":\"resume\",\"nodes\":\"cn-[3-4,8]\",\"job_id\":\"42\","
                           "\"client\":\"elastic-resume\","
                           "\"resume_file\":{\"all_nodes\":\"cn-[3-4]\",\"jobs\":[{\"job_id\":42,\"nodes\":\"cn-[3-4]\"}]}}");
        if (r) {
                CHECK_INT(r->type, PROTOCOL_REQUEST_RESUME);
                CHECK_INT(r->version, 1);
                CHECK_STR(r->nodes, "cn-[3-4,8]");
                CHECK_STR(r->job_id, "42");
                CHECK_STR(r->client, "elastic-resume");
                CHECK(json_is_object(r->resume_file));
                CHECK_STR(json_string_value(json_object_get(r->resume_file, "all_nodes")), "cn-[3-4]");
                CHECK(r->resume_file_error == NULL);
                protocol_request_free(r);
        }
        r = expect_request("{\"version\":1,\"type\":\"resume\",\"nodes\":\"cn-1\","
                           "\"resume_file_error\":\"cannot open /proc/1/fd/5: No such file\"}");
        if (r) {
                CHECK_STR(r->resume_file_error, "cannot open /proc/1/fd/5: No such file");
                protocol_request_free(r);
        }
        r = expect_request("{\"version\":1,\"type\":\"suspend\",\"nodes\":\"cn-[1-100]\"}");
        if (r) {
                CHECK_INT(r->type, PROTOCOL_REQUEST_SUSPEND);
                CHECK(r->job_id == NULL && r->resume_file == NULL);
                protocol_request_free(r);
        }
        r = expect_request("{\"type\":\"resume_fail\",\"version\":1,\"nodes\":\"cn-2\"}");
        if (r) {
                CHECK_INT(r->type, PROTOCOL_REQUEST_RESUME_FAIL);
                protocol_request_free(r);
        }
        r = expect_request("{\"version\":1,\"type\":\"reboot\",\"nodes\":\"cn-1,cn-2,cn-3\","
                           "\"features\":\"\",\"reason\":\"reimage\\tplease\"}");
        if (r) {
                CHECK_INT(r->type, PROTOCOL_REQUEST_REBOOT);
                CHECK_STR(r->nodes, "cn-1,cn-2,cn-3");
                CHECK_STR(r->features, "");
                CHECK_STR(r->reason, "reimage\tplease");
                protocol_request_free(r);
        }
        r = expect_request("{\"version\":1,\"type\":\"resize\",\"min\":4,\"group\":\"gpu\",\"wait\":true}");
        if (r) {
                CHECK_INT(r->type, PROTOCOL_REQUEST_RESIZE);
                CHECK_INT(r->min, 4);
                CHECK_STR(r->group, "gpu");
                CHECK(r->wait);
                protocol_request_free(r);
        }
        r = expect_request("{\"version\":1,\"type\":\"resize\",\"min\":0}");
        if (r) {
                CHECK_INT(r->min, 0);
                CHECK(r->group == NULL && !r->wait);
                protocol_request_free(r);
        }
        r = expect_request("{\"version\":1,\"type\":\"resize\",\"min\":4294967295}");
        if (r) {
                CHECK_INT(r->min, 4294967295u);
                protocol_request_free(r);
        }
        r = expect_request("{\"version\":1,\"type\":\"nodes\",\"rows\":true}");
        if (r) {
                CHECK(r->rows);
                protocol_request_free(r);
        }
        r = expect_request("{\"version\":1,\"type\":\"nodes\",\"table\":true}");
        if (r) {
                CHECK(r->table && !r->rows);
                protocol_request_free(r);
        }
        static const char *const simple[] = { "status", "nodes", "reload", "ping", "metrics" };
        for (size_t i = 0; i < ELEMENTSOF(simple); i++) {
                char text[128];
                snprintf(text, sizeof(text), "{\"version\":1,\"type\":\"%s\",\"client\":\"elasticctl\"}", simple[i]);
                r = expect_request(text);
                if (r) {
                        CHECK_STR(protocol_request_type_to_string(r->type), simple[i]);
                        protocol_request_free(r);
                }
        }
}

static void test_request_invalid(void) {
        const enum protocol_error_code B = PROTOCOL_ERROR_BAD_REQUEST;

        /* Version. */
        expect_request_error("{\"type\":\"status\"}", B, "missing field \"version\"");
        expect_request_error("{\"version\":\"1\",\"type\":\"status\"}", B, "\"version\" is a string");
        expect_request_error("{\"version\":1.0,\"type\":\"status\"}", B, "must be an integer");
        expect_request_error("{\"version\":2,\"type\":\"status\"}", PROTOCOL_ERROR_UNSUPPORTED_VERSION,
                             "version 2 is not supported; supported versions: 1");
        /* A future version is refused before its unknown fields are looked at. */
        expect_request_error("{\"version\":7,\"type\":\"teleport\",\"warp\":9}",
                             PROTOCOL_ERROR_UNSUPPORTED_VERSION, "version 7");
        expect_request_error("{\"version\":0,\"type\":\"status\"}", PROTOCOL_ERROR_UNSUPPORTED_VERSION,
                             "version 0 is not supported");
        expect_request_error("{\"version\":-1,\"type\":\"status\"}", PROTOCOL_ERROR_UNSUPPORTED_VERSION,
                             "supported versions: 1");

        /* Type. */
        expect_request_error("{\"version\":1}", B, "missing field \"type\"");
        expect_request_error("{\"version\":1,\"type\":3}", B, "\"type\" is an integer");
        expect_request_error("{\"version\":1,\"type\":\"teleport\"}", B,
                             "unknown request type \"teleport\"; known types: resume, suspend");
        expect_request_error("{\"version\":1,\"type\":\"RESUME\",\"nodes\":\"a\"}", B, "unknown request type");
        expect_request_error("{\"version\":1,\"type\":null}", B, "\"type\" is null");

        /* Missing required fields. */
        expect_request_error("{\"version\":1,\"type\":\"resume\"}", B,
                             "missing field \"nodes\", a string (a Slurm hostlist), required in a \"resume\" request");
        expect_request_error("{\"version\":1,\"type\":\"suspend\"}", B, "missing field \"nodes\"");
        expect_request_error("{\"version\":1,\"type\":\"resume_fail\",\"job_id\":\"1\"}", B, "missing field \"nodes\"");
        expect_request_error("{\"version\":1,\"type\":\"reboot\",\"reason\":\"x\"}", B, "missing field \"nodes\"");
        expect_request_error("{\"version\":1,\"type\":\"resize\",\"group\":\"g\"}", B,
                             "missing field \"min\", a non-negative integer");

        /* Extra fields. */
        expect_request_error("{\"version\":1,\"type\":\"status\",\"nodes\":\"cn-1\"}", B,
                             "field \"nodes\" is not allowed in a \"status\" request");
        expect_request_error("{\"version\":1,\"type\":\"resume\",\"nodes\":\"a\",\"min\":1}", B,
                             "field \"min\" is not allowed in a \"resume\" request");
        expect_request_error("{\"version\":1,\"type\":\"suspend\",\"nodes\":\"a\",\"reason\":\"x\"}", B,
                             "\"reason\" is not allowed in a \"suspend\"");
        expect_request_error("{\"version\":1,\"type\":\"ping\",\"colour\":\"red\"}", B,
                             "unknown field \"colour\" in a \"ping\" request");
        expect_request_error("{\"version\":1,\"type\":\"resize\",\"min\":1,\"nodes\":\"a\"}", B,
                             "\"nodes\" is not allowed in a \"resize\"");

        /* Mistyped fields. */
        expect_request_error("{\"version\":1,\"type\":\"resume\",\"nodes\":[\"a\"]}", B,
                             "field \"nodes\" is an array; it must be a string (a Slurm hostlist)");
        expect_request_error("{\"version\":1,\"type\":\"resume\",\"nodes\":\"\"}", B, "\"nodes\" is empty");
        expect_request_error("{\"version\":1,\"type\":\"resume\",\"nodes\":\"cn-1\\ncn-2\"}", B,
                             "control character at byte 4");
        expect_request_error("{\"version\":1,\"type\":\"resume\",\"nodes\":\"a\",\"job_id\":42}", B,
                             "\"job_id\" is an integer; it must be a string (SLURM_JOB_ID)");
        expect_request_error("{\"version\":1,\"type\":\"resume\",\"nodes\":\"a\",\"job_id\":\"4 2\"}", B,
                             "space at byte 1");
        expect_request_error("{\"version\":1,\"type\":\"resume\",\"nodes\":\"a\",\"resume_file\":\"{}\"}", B,
                             "\"resume_file\" is a string; it must be an object");
        expect_request_error("{\"version\":1,\"type\":\"resume\",\"nodes\":\"a\",\"resume_file\":[]}", B,
                             "\"resume_file\" is an array");
        expect_request_error("{\"version\":1,\"type\":\"reboot\",\"nodes\":\"a\",\"reason\":false}", B,
                             "\"reason\" is a boolean");
        expect_request_error("{\"version\":1,\"type\":\"resize\",\"min\":-1}", B,
                             "\"min\" is -1; it must be between 0 and 4294967295");
        expect_request_error("{\"version\":1,\"type\":\"resize\",\"min\":4294967296}", B, "between 0 and");
        expect_request_error("{\"version\":1,\"type\":\"resize\",\"min\":2.5}", B,
                             "\"min\" is a number; it must be a non-negative integer");
        expect_request_error("{\"version\":1,\"type\":\"resize\",\"min\":\"4\"}", B, "\"min\" is a string");
        expect_request_error("{\"version\":1,\"type\":\"resize\",\"min\":1,\"wait\":1}", B,
                             "\"wait\" is an integer; it must be true or false");
        expect_request_error("{\"version\":1,\"type\":\"nodes\",\"rows\":\"yes\"}", B,
                             "\"rows\" is a string; it must be true or false");
        expect_request_error("{\"version\":1,\"type\":\"status\",\"rows\":true}", B,
                             "field \"rows\" is not allowed in a \"status\" request");
        expect_request_error("{\"version\":1,\"type\":\"resize\",\"min\":1,\"group\":\"\"}", B, "\"group\" is empty");
        expect_request_error("{\"version\":1,\"type\":\"status\",\"client\":null}", B, "\"client\" is null");

        /* Client text quoted in a message is cut on a UTF-8 boundary: the
         * message must still fit in a reply. */
        {
                struct protocol_request *r = NULL;
                struct protocol_error err = {};
                char type[128] = "";
                json_t *o, *reply = NULL;

                for (int i = 0; i < 40; i++)
                        strcat(type, "\xc3\xa9"); /* é */
                o = json_pack("{s:i,s:s}", "version", 1, "type", type);
                CHECK_INT(protocol_request_parse(o, &r, &err), -EINVAL);
                CHECK(strstr(err.message, "\xc3\xa9...\"") != NULL);
                json_t *m = json_string(err.message);
                CHECK(m != NULL); /* valid UTF-8 */
                json_decref(m);
                CHECK_INT(protocol_reply_error("r", err.code, err.message, &reply), 0);
                CHECK_STR(json_string_value(json_object_get(json_object_get(reply, "error"), "message")),
                          err.message);
                json_decref(reply);
                json_decref(o);
                o = json_pack("{s:i,s:s,s:i}", "version", 1, "type", "ping", "a\x01" "b", 1);
                CHECK_INT(protocol_request_parse(o, &r, &err), -EINVAL);
                if (!strstr(err.message, "unknown field \"a?b\""))
                        TEST_FAIL("message: %s", err.message);
                json_decref(o);
        }

        /* Not an object at all. */
        {
                struct protocol_request *r = NULL;
                struct protocol_error err = {};
                json_t *a = json_array();
                CHECK_INT(protocol_request_parse(a, &r, &err), -EINVAL);
                CHECK_INT(err.code, B);
                CHECK_INT(protocol_request_parse(NULL, &r, NULL), -EINVAL);
                CHECK(r == NULL);
                json_decref(a);
        }
}

static void test_request_to_json(void) {
        struct protocol_request req = {
                .type = PROTOCOL_REQUEST_RESUME,
                .nodes = (char *) "cn-[1-2]",
                .job_id = (char *) "7",
                .client = (char *) "elastic-resume",
        };
        _cleanup_(protocol_request_freep) struct protocol_request *back = NULL;
        json_t *o = NULL;

        req.resume_file = load("{\"all_nodes\":\"cn-[1-2]\",\"jobs\":[]}");
        CHECK_INT(protocol_request_to_json(&req, &o, NULL), 0);
        CHECK_INT(json_integer_value(json_object_get(o, "version")), 1);
        CHECK_STR(json_string_value(json_object_get(o, "type")), "resume");
        CHECK_INT(protocol_request_parse(o, &back, NULL), 0);
        if (back) {
                CHECK_STR(back->nodes, "cn-[1-2]");
                CHECK_STR(back->job_id, "7");
                CHECK(json_equal(back->resume_file, req.resume_file));
        }
        json_decref(o);
        json_decref(req.resume_file);

        /* Every type round-trips. */
        for (int t = 0; t < _PROTOCOL_REQUEST_MAX; t++) {
                _cleanup_(protocol_request_freep) struct protocol_request *b = NULL;
                struct protocol_request r = { .type = t };
                bool hook = protocol_request_type_access(t) == PROTOCOL_ACCESS_HOOK;

                if (hook)
                        r.nodes = (char *) "cn-1";
                if (t == PROTOCOL_REQUEST_RESIZE) {
                        r.min = 3;
                        r.wait = true;
                        r.group = (char *) "g";
                }
                if (t == PROTOCOL_REQUEST_REBOOT)
                        r.reason = (char *) "rebuild";
                if (t == PROTOCOL_REQUEST_GROUP_ENABLE)
                        r.group = (char *) "gpu";
                if (t == PROTOCOL_REQUEST_NODES)
                        r.rows = r.table = true;
                o = NULL;
                CHECK_INT(protocol_request_to_json(&r, &o, NULL), 0);
                CHECK_INT(protocol_request_parse(o, &b, NULL), 0);
                if (b) {
                        CHECK_INT(b->type, t);
                        CHECK_INT(b->min, r.min);
                        CHECK_INT(b->wait, r.wait);
                        CHECK_INT(b->rows, r.rows);
                        CHECK_INT(b->table, r.table);
                }
                json_decref(o);
        }

        /* group_enable names its group; min and wait are resize's. */
        struct protocol_request ge = { .type = PROTOCOL_REQUEST_GROUP_ENABLE };
        o = NULL;
        CHECK_INT(protocol_request_to_json(&ge, &o, NULL), -EINVAL);
        ge.group = (char *) "gpu";
        ge.min = 2;
        CHECK_INT(protocol_request_to_json(&ge, &o, NULL), -EINVAL);
        CHECK(o == NULL);

        /* Refuses to build what the daemon would refuse. */
        struct protocol_request bad = { .type = PROTOCOL_REQUEST_STATUS, .nodes = (char *) "cn-1" };
        o = NULL;
        CHECK_INT(protocol_request_to_json(&bad, &o, NULL), -EINVAL);
        CHECK(o == NULL);
        struct protocol_request bad2 = { .type = PROTOCOL_REQUEST_RESUME };
        struct protocol_error err = {};
        CHECK_INT(protocol_request_to_json(&bad2, &o, &err), -EINVAL);
        CHECK(strstr(err.message, "missing field \"nodes\"") != NULL);
        struct protocol_request bad5 = { .type = PROTOCOL_REQUEST_REBOOT, .nodes = (char *) "a",
                                         .reason = (char *) "caf\xe9" };
        CHECK_INT(protocol_request_to_json(&bad5, &o, &err), -EINVAL);
        CHECK_STR(err.message, "field \"reason\" is not valid UTF-8");
        struct protocol_request bad3 = { .type = PROTOCOL_REQUEST_STATUS, .min = 3 };
        CHECK_INT(protocol_request_to_json(&bad3, &o, NULL), -EINVAL);
        struct protocol_request bad6 = { .type = PROTOCOL_REQUEST_STATUS, .rows = true };
        CHECK_INT(protocol_request_to_json(&bad6, &o, &err), -EINVAL);
        CHECK_STR(err.message, "rows belongs to a \"nodes\" request only");
        struct protocol_request bad7 = { .type = PROTOCOL_REQUEST_PING, .table = true };
        CHECK_INT(protocol_request_to_json(&bad7, &o, &err), -EINVAL);
        CHECK_STR(err.message, "table belongs to a \"nodes\" request only");
        struct protocol_request bad4 = { .type = _PROTOCOL_REQUEST_MAX };
        CHECK_INT(protocol_request_to_json(&bad4, &o, NULL), -EINVAL);
        CHECK(o == NULL);
}

/* ---- Replies ---- */

static void test_reply_ok(void) {
        _cleanup_(protocol_reply_freep) struct protocol_reply *r = NULL;
        json_t *result = load("{\"accepted\":3}");
        json_t *o = NULL;
        char *s;

        CHECK_INT(protocol_reply_ok("r-1a2b-42", result, &o), 0);
        s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
        CHECK_STR(s, "{\"id\":\"r-1a2b-42\",\"ok\":true,\"result\":{\"accepted\":3},\"version\":1}");
        free(s);
        CHECK_INT(protocol_reply_parse(o, &r, NULL), 0);
        if (r) {
                CHECK(r->ok);
                CHECK_STR(r->id, "r-1a2b-42");
                CHECK(json_equal(r->result, result));
                CHECK(r->error_code == NULL);
        }
        json_decref(o);
        json_decref(result); /* borrowed: still ours */

        CHECK_INT(protocol_reply_ok(NULL, NULL, &o), 0);
        s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
        CHECK_STR(s, "{\"id\":null,\"ok\":true,\"result\":{},\"version\":1}");
        free(s);
        json_decref(o);

        json_t *arr = json_array();
        o = NULL;
        CHECK_INT(protocol_reply_ok("r-1", arr, &o), -EINVAL);
        CHECK(o == NULL);
        json_decref(arr);
}

static void test_reply_error(void) {
        _cleanup_(protocol_reply_freep) struct protocol_reply *r = NULL;
        json_t *o = NULL;
        char *s;

        CHECK_INT(protocol_reply_error("r-7", PROTOCOL_ERROR_BUSY, "the request queue is full (1024)", &o), 0);
        s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
        CHECK_STR(s, "{\"error\":{\"code\":\"busy\",\"message\":\"the request queue is full (1024)\"},"
                     "\"id\":\"r-7\",\"ok\":false,\"version\":1}");
        free(s);
        CHECK_INT(protocol_reply_parse(o, &r, NULL), 0);
        if (r) {
                CHECK(!r->ok);
                CHECK_STR(r->error_code, "busy");
                CHECK_STR(r->error_message, "the request queue is full (1024)");
                CHECK(r->result == NULL);
        }
        json_decref(o);

        /* Invalid UTF-8 in a message must not lose the reply. */
        CHECK_INT(protocol_reply_error("r-8", PROTOCOL_ERROR_BAD_REQUEST, "bad \xff byte", &o), 0);
        CHECK_STR(json_string_value(json_object_get(json_object_get(o, "error"), "message")), "bad_request");
        json_decref(o);
        o = NULL;
        CHECK_INT(protocol_reply_error("r-9", _PROTOCOL_ERROR_MAX, "x", &o), -EINVAL);
        CHECK(o == NULL);
        for (int c = 0; c < _PROTOCOL_ERROR_MAX; c++) {
                CHECK_INT(protocol_reply_error("r", c, NULL, &o), 0);
                CHECK_STR(json_string_value(json_object_get(json_object_get(o, "error"), "code")),
                          protocol_error_code_to_string(c));
                json_decref(o);
        }
}

static void test_reply_parse_invalid(void) {
        static const struct {
                const char *text;
                enum protocol_error_code code;
        } cases[] = {
                { "{}", PROTOCOL_ERROR_BAD_FRAME },
                { "{\"version\":2,\"id\":\"r\",\"ok\":true,\"result\":{}}", PROTOCOL_ERROR_UNSUPPORTED_VERSION },
                { "{\"version\":1,\"id\":3,\"ok\":true,\"result\":{}}", PROTOCOL_ERROR_BAD_FRAME },
                { "{\"version\":1,\"id\":\"r\",\"ok\":1,\"result\":{}}", PROTOCOL_ERROR_BAD_FRAME },
                { "{\"version\":1,\"id\":\"r\",\"ok\":true}", PROTOCOL_ERROR_BAD_FRAME },
                { "{\"version\":1,\"id\":\"r\",\"ok\":true,\"result\":[]}", PROTOCOL_ERROR_BAD_FRAME },
                { "{\"version\":1,\"id\":\"r\",\"ok\":false}", PROTOCOL_ERROR_BAD_FRAME },
                { "{\"version\":1,\"id\":\"r\",\"ok\":false,\"error\":{\"code\":\"busy\"}}", PROTOCOL_ERROR_BAD_FRAME },
                { "{\"version\":1,\"id\":\"r\",\"ok\":false,\"error\":\"busy\"}", PROTOCOL_ERROR_BAD_FRAME },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                struct protocol_reply *r = NULL;
                struct protocol_error err = {};
                json_t *o = load(cases[i].text);

                CHECK_INT(protocol_reply_parse(o, &r, &err), -EBADMSG);
                CHECK(r == NULL);
                CHECK_INT(err.code, cases[i].code);
                CHECK(err.message[0] != '\0');
                json_decref(o);
        }

        /* Unknown error codes and extra fields from a newer daemon are kept / ignored. */
        _cleanup_(protocol_reply_freep) struct protocol_reply *r = NULL;
        json_t *o = load("{\"version\":1,\"id\":\"r\",\"ok\":false,\"later\":1,"
                         "\"error\":{\"code\":\"quota_exceeded\",\"message\":\"m\",\"hint\":\"h\"}}");
        CHECK_INT(protocol_reply_parse(o, &r, NULL), 0);
        if (r)
                CHECK_STR(r->error_code, "quota_exceeded");
        json_decref(o);
}

/* ---- Blocking helpers over a socketpair ---- */

static void test_blocking_round_trip(void) {
        int sv[2];
        json_t *in = load("{\"version\":1,\"type\":\"ping\"}"), *out = NULL;

        CHECK_INT(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        CHECK_INT(protocol_write_frame(sv[0], in, PROTOCOL_MAX_FRAME_DEFAULT, 1000), 0);
        CHECK_INT(protocol_read_frame(sv[1], PROTOCOL_MAX_FRAME_DEFAULT, 1000, &out, NULL), 0);
        CHECK(out && json_equal(in, out));
        json_decref(out);
        out = NULL;

        /* Nothing to read: a timeout, not a hang. */
        CHECK_INT(protocol_read_frame(sv[1], PROTOCOL_MAX_FRAME_DEFAULT, 50, &out, NULL), -ETIMEDOUT);

        /* Truncated: the peer closes halfway through a body. */
        uint8_t buf[16];
        size_t n = make_frame(buf, 10, "{\"a\":", 5);
        CHECK_INT(write(sv[0], buf, n), (ssize_t) n);
        close(sv[0]);
        CHECK_INT(protocol_read_frame(sv[1], PROTOCOL_MAX_FRAME_DEFAULT, 1000, &out, NULL), -ECONNRESET);
        CHECK(out == NULL);

        /* Writing to a closed peer: an error, not SIGPIPE. */
        CHECK(protocol_write_frame(sv[1], in, PROTOCOL_MAX_FRAME_DEFAULT, 1000) < 0);
        close(sv[1]);
        json_decref(in);
}

static void test_blocking_bad_frames(void) {
        struct protocol_error err = {};
        json_t *out = NULL;
        uint8_t buf[16];
        int sv[2];

        CHECK_INT(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        size_t n = make_frame(buf, 0, "", 0);
        CHECK_INT(write(sv[0], buf, n), (ssize_t) n);
        CHECK_INT(protocol_read_frame(sv[1], 4096, 1000, &out, &err), -EPROTO);
        CHECK(strstr(err.message, "length 0") != NULL);

        n = make_frame(buf, 5000, "", 0);
        CHECK_INT(write(sv[0], buf, n), (ssize_t) n);
        CHECK_INT(protocol_read_frame(sv[1], 4096, 1000, &out, &err), -EPROTO);
        CHECK(strstr(err.message, "5000 bytes") != NULL);

        n = make_frame(buf, 3, "[1]", 3);
        CHECK_INT(write(sv[0], buf, n), (ssize_t) n);
        CHECK_INT(protocol_read_frame(sv[1], 4096, 1000, &out, &err), -EBADMSG);
        CHECK_INT(err.code, PROTOCOL_ERROR_BAD_FRAME);
        CHECK(out == NULL);
        close(sv[0]);
        close(sv[1]);
}

int main(void) {
        signal(SIGPIPE, SIG_DFL); /* prove MSG_NOSIGNAL, not an inherited SIG_IGN */
        RUN(test_names);
        RUN(test_encode_decode_round_trip);
        RUN(test_encode_limits);
        RUN(test_decoder_byte_by_byte);
        RUN(test_decoder_two_frames);
        RUN(test_decoder_zero_length);
        RUN(test_decoder_oversize);
        RUN(test_decoder_bad_bodies);
        RUN(test_decoder_truncated);
        RUN(test_request_valid);
        RUN(test_request_invalid);
        RUN(test_request_to_json);
        RUN(test_reply_ok);
        RUN(test_reply_error);
        RUN(test_reply_parse_invalid);
        RUN(test_blocking_round_trip);
        RUN(test_blocking_bad_frames);
        return test_done();
}
