/* protocol.c - frames, request validation and reply building for elasticd's socket. */
#include "proto/protocol.h"
#include "util/urlredact.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>

static const char *const request_type_names[_PROTOCOL_REQUEST_MAX] = {
        [PROTOCOL_REQUEST_RESUME] = "resume",
        [PROTOCOL_REQUEST_SUSPEND] = "suspend",
        [PROTOCOL_REQUEST_RESUME_FAIL] = "resume_fail",
        [PROTOCOL_REQUEST_REBOOT] = "reboot",
        [PROTOCOL_REQUEST_RESIZE] = "resize",
        [PROTOCOL_REQUEST_STATUS] = "status",
        [PROTOCOL_REQUEST_NODES] = "nodes",
        [PROTOCOL_REQUEST_RELOAD] = "reload",
        [PROTOCOL_REQUEST_PING] = "ping",
        [PROTOCOL_REQUEST_METRICS] = "metrics",
        [PROTOCOL_REQUEST_GROUP_ENABLE] = "group_enable",
};

static const enum protocol_access request_type_access[_PROTOCOL_REQUEST_MAX] = {
        [PROTOCOL_REQUEST_RESUME] = PROTOCOL_ACCESS_HOOK,
        [PROTOCOL_REQUEST_SUSPEND] = PROTOCOL_ACCESS_HOOK,
        [PROTOCOL_REQUEST_RESUME_FAIL] = PROTOCOL_ACCESS_HOOK,
        [PROTOCOL_REQUEST_REBOOT] = PROTOCOL_ACCESS_HOOK,
        [PROTOCOL_REQUEST_RESIZE] = PROTOCOL_ACCESS_ADMIN,
        [PROTOCOL_REQUEST_STATUS] = PROTOCOL_ACCESS_ANYONE,
        [PROTOCOL_REQUEST_NODES] = PROTOCOL_ACCESS_ANYONE,
        [PROTOCOL_REQUEST_RELOAD] = PROTOCOL_ACCESS_ADMIN,
        [PROTOCOL_REQUEST_PING] = PROTOCOL_ACCESS_ANYONE,
        [PROTOCOL_REQUEST_METRICS] = PROTOCOL_ACCESS_ANYONE,
        [PROTOCOL_REQUEST_GROUP_ENABLE] = PROTOCOL_ACCESS_ADMIN,
};

static const char *const error_code_names[_PROTOCOL_ERROR_MAX] = {
        [PROTOCOL_ERROR_BAD_FRAME] = "bad_frame",
        [PROTOCOL_ERROR_BAD_REQUEST] = "bad_request",
        [PROTOCOL_ERROR_UNSUPPORTED_VERSION] = "unsupported_version",
        [PROTOCOL_ERROR_PERMISSION_DENIED] = "permission_denied",
        [PROTOCOL_ERROR_UNKNOWN_NODE] = "unknown_node",
        [PROTOCOL_ERROR_BAD_HOSTLIST] = "bad_hostlist",
        [PROTOCOL_ERROR_TOO_MANY_NODES] = "too_many_nodes",
        [PROTOCOL_ERROR_BUSY] = "busy",
        [PROTOCOL_ERROR_JOURNAL_FAILED] = "journal_failed",
        [PROTOCOL_ERROR_NOT_FOUND] = "not_found",
        [PROTOCOL_ERROR_CONFIG_REFUSED] = "config_refused",
        [PROTOCOL_ERROR_INTERNAL] = "internal",
};

const char *protocol_request_type_to_string(enum protocol_request_type t) {
        if ((unsigned) t >= _PROTOCOL_REQUEST_MAX)
                return NULL;
        return request_type_names[t];
}

int protocol_request_type_from_string(const char *s) {
        if (!s)
                return -EINVAL;
        for (size_t i = 0; i < _PROTOCOL_REQUEST_MAX; i++)
                if (strcmp(request_type_names[i], s) == 0)
                        return (int) i;
        return -EINVAL;
}

enum protocol_access protocol_request_type_access(enum protocol_request_type t) {
        if ((unsigned) t >= _PROTOCOL_REQUEST_MAX)
                return PROTOCOL_ACCESS_ADMIN; /* unknown: the strictest */
        return request_type_access[t];
}

const char *protocol_access_to_string(enum protocol_access a) {
        switch (a) {
        case PROTOCOL_ACCESS_ANYONE:
                return "anyone";
        case PROTOCOL_ACCESS_HOOK:
                return "hook";
        case PROTOCOL_ACCESS_ADMIN:
                return "admin";
        }
        return NULL;
}

const char *protocol_error_code_to_string(enum protocol_error_code c) {
        if ((unsigned) c >= _PROTOCOL_ERROR_MAX)
                return NULL;
        return error_code_names[c];
}

int protocol_error_code_from_string(const char *s) {
        if (!s)
                return -EINVAL;
        for (size_t i = 0; i < _PROTOCOL_ERROR_MAX; i++)
                if (strcmp(error_code_names[i], s) == 0)
                        return (int) i;
        return -EINVAL;
}

void protocol_error_set(struct protocol_error *err, enum protocol_error_code code, const char *fmt, ...) {
        va_list ap;

        if (!err)
                return;
        err->code = code;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof(err->message), fmt, ap);
        va_end(ap);
        /* Replies never carry a URL's password or token. */
        if (strstr(err->message, "://")) {
                char clean[sizeof(err->message)];
                urlredact(err->message, clean, sizeof(clean));
                memcpy(err->message, clean, sizeof(clean));
        }
}

/* ---- Requests ------------------------------------------------------------ */

#define BIT(t) (1u << (t))
#define HOOK_TYPES (BIT(PROTOCOL_REQUEST_RESUME) | BIT(PROTOCOL_REQUEST_SUSPEND) | \
                    BIT(PROTOCOL_REQUEST_RESUME_FAIL) | BIT(PROTOCOL_REQUEST_REBOOT))
#define ALL_TYPES (BIT(_PROTOCOL_REQUEST_MAX) - 1)

enum field_kind {
        FIELD_NAME,     /* non-empty, no control characters or spaces */
        FIELD_HOSTLIST, /* non-empty, no control characters */
        FIELD_TEXT,     /* any text without control characters but tab, may be empty */
        FIELD_OBJECT,
        FIELD_UINT,
        FIELD_BOOL,
};

struct field_spec {
        const char *name;
        enum field_kind kind;
        size_t offset;      /* in struct protocol_request */
        unsigned allowed;   /* bit per request type */
        unsigned required;  /* bit per request type */
        const char *what;   /* for messages */
};

#define F(field) offsetof(struct protocol_request, field)

static const struct field_spec fields[] = {
        { "client", FIELD_NAME, F(client), ALL_TYPES, 0, "a string (the client program's name)" },
        { "nodes", FIELD_HOSTLIST, F(nodes), HOOK_TYPES, HOOK_TYPES, "a string (a Slurm hostlist)" },
        { "job_id", FIELD_NAME, F(job_id), HOOK_TYPES, 0, "a string (SLURM_JOB_ID)" },
        { "resume_file", FIELD_OBJECT, F(resume_file), HOOK_TYPES, 0,
          "an object (the JSON of SLURM_RESUME_FILE)" },
        { "resume_file_error", FIELD_TEXT, F(resume_file_error), HOOK_TYPES, 0, "a string (a message)" },
        { "reason", FIELD_TEXT, F(reason), BIT(PROTOCOL_REQUEST_REBOOT), 0, "a string (the reboot reason)" },
        { "features", FIELD_TEXT, F(features), BIT(PROTOCOL_REQUEST_REBOOT), 0,
          "a string (RebootProgram's features argument)" },
        { "min", FIELD_UINT, F(min), BIT(PROTOCOL_REQUEST_RESIZE), BIT(PROTOCOL_REQUEST_RESIZE),
          "a non-negative integer (a node count)" },
        { "group", FIELD_NAME, F(group), BIT(PROTOCOL_REQUEST_RESIZE) | BIT(PROTOCOL_REQUEST_GROUP_ENABLE),
          BIT(PROTOCOL_REQUEST_GROUP_ENABLE), "a string (a group name)" },
        { "wait", FIELD_BOOL, F(wait), BIT(PROTOCOL_REQUEST_RESIZE), 0, "true or false" },
        { "rows", FIELD_BOOL, F(rows), BIT(PROTOCOL_REQUEST_NODES), 0, "true or false" },
        { "table", FIELD_BOOL, F(table), BIT(PROTOCOL_REQUEST_NODES), 0, "true or false" },
};

#undef F

static const char *json_kind_name(const json_t *v) {
        switch (json_typeof(v)) {
        case JSON_OBJECT:
                return "an object";
        case JSON_ARRAY:
                return "an array";
        case JSON_STRING:
                return "a string";
        case JSON_INTEGER:
                return "an integer";
        case JSON_REAL:
                return "a number";
        case JSON_TRUE:
        case JSON_FALSE:
                return "a boolean";
        case JSON_NULL:
                return "null";
        }
        return "something else";
}

/* Copy client text S for quoting in a message: at most 64 bytes, cut on a
 * UTF-8 character boundary (so the message stays valid UTF-8 for the reply),
 * control characters replaced by '?'. */
static const char *quote(const char *s, char buf[static 72]) {
        size_t n = strlen(s), cut = n > 64 ? 64 : n;

        /* Back off from a continuation byte to before its lead byte. */
        if (cut < n)
                while (cut > 0 && ((unsigned char) s[cut] & 0xc0) == 0x80)
                        cut--;
        for (size_t i = 0; i < cut; i++)
                buf[i] = (unsigned char) s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
        strcpy(buf + cut, cut < n ? "..." : "");
        return buf;
}

static const struct field_spec *field_find(const char *name) {
        for (size_t i = 0; i < ELEMENTSOF(fields); i++)
                if (strcmp(fields[i].name, name) == 0)
                        return &fields[i];
        return NULL;
}

/* Returns the offending byte's index, or -1 if S is acceptable for KIND. */
static ssize_t string_check(const char *s, enum field_kind kind) {
        for (size_t i = 0; s[i]; i++) {
                unsigned char c = (unsigned char) s[i];
                if (c == 0x7f || c < 0x20) {
                        if (kind == FIELD_TEXT && c == '\t')
                                continue;
                        return (ssize_t) i;
                }
                if (kind == FIELD_NAME && c == ' ')
                        return (ssize_t) i;
        }
        return -1;
}

static int field_store(struct protocol_request *r, const struct field_spec *f, json_t *v,
                       struct protocol_error *err) {
        void *dst = (char *) r + f->offset;
        const char *s;
        ssize_t bad;

        switch (f->kind) {
        case FIELD_NAME:
        case FIELD_HOSTLIST:
        case FIELD_TEXT:
                if (!json_is_string(v))
                        goto wrong_type;
                s = json_string_value(v);
                if (f->kind != FIELD_TEXT && s[0] == '\0') {
                        protocol_error_set(err, PROTOCOL_ERROR_BAD_REQUEST,
                                           "field \"%s\" is empty; it must be %s", f->name, f->what);
                        return -EINVAL;
                }
                bad = string_check(s, f->kind);
                if (bad >= 0) {
                        protocol_error_set(err, PROTOCOL_ERROR_BAD_REQUEST,
                                           "field \"%s\" has a %s at byte %zd; it must be %s",
                                           f->name, s[bad] == ' ' ? "space" : "control character",
                                           bad, f->what);
                        return -EINVAL;
                }
                if (!(*(char **) dst = strdup(s)))
                        return -ENOMEM;
                return 0;
        case FIELD_OBJECT:
                if (!json_is_object(v))
                        goto wrong_type;
                *(json_t **) dst = json_incref(v);
                return 0;
        case FIELD_UINT:
                if (!json_is_integer(v))
                        goto wrong_type;
                if (json_integer_value(v) < 0 || json_integer_value(v) > UINT_MAX) {
                        protocol_error_set(err, PROTOCOL_ERROR_BAD_REQUEST,
                                           "field \"%s\" is %" JSON_INTEGER_FORMAT "; it must be between 0 and %u",
                                           f->name, json_integer_value(v), UINT_MAX);
                        return -EINVAL;
                }
                *(unsigned *) dst = (unsigned) json_integer_value(v);
                return 0;
        case FIELD_BOOL:
                if (!json_is_boolean(v))
                        goto wrong_type;
                *(bool *) dst = json_is_true(v);
                return 0;
        }

wrong_type:
        protocol_error_set(err, PROTOCOL_ERROR_BAD_REQUEST, "field \"%s\" is %s; it must be %s",
                           f->name, json_kind_name(v), f->what);
        return -EINVAL;
}

struct protocol_request *protocol_request_free(struct protocol_request *r) {
        if (!r)
                return NULL;
        free(r->client);
        free(r->nodes);
        free(r->job_id);
        json_decref(r->resume_file);
        free(r->resume_file_error);
        free(r->reason);
        free(r->features);
        free(r->group);
        free(r);
        return NULL;
}

/* Reads "version" first: a newer client's request must get
 * unsupported_version, not a complaint about fields this side does not know. */
static int version_check(json_t *body, unsigned *ret, struct protocol_error *err) {
        json_t *v = json_object_get(body, "version");

        if (!v) {
                protocol_error_set(err, PROTOCOL_ERROR_BAD_REQUEST,
                                   "missing field \"version\"; this elasticd speaks protocol version %u",
                                   PROTOCOL_VERSION);
                return -EINVAL;
        }
        if (!json_is_integer(v)) {
                protocol_error_set(err, PROTOCOL_ERROR_BAD_REQUEST,
                                   "field \"version\" is %s; it must be an integer (%u)",
                                   json_kind_name(v), PROTOCOL_VERSION);
                return -EINVAL;
        }
        if (json_integer_value(v) != PROTOCOL_VERSION) {
                protocol_error_set(err, PROTOCOL_ERROR_UNSUPPORTED_VERSION,
                                   "protocol version %" JSON_INTEGER_FORMAT " is not supported; "
                                   "supported versions: %u (is elasticctl %s than elasticd?)",
                                   json_integer_value(v), PROTOCOL_VERSION,
                                   json_integer_value(v) > PROTOCOL_VERSION ? "newer" : "older");
                return -EINVAL;
        }
        *ret = PROTOCOL_VERSION;
        return 0;
}

static int type_check(json_t *body, enum protocol_request_type *ret, struct protocol_error *err) {
        json_t *v = json_object_get(body, "type");
        int t;

        if (!v) {
                protocol_error_set(err, PROTOCOL_ERROR_BAD_REQUEST, "missing field \"type\"");
                return -EINVAL;
        }
        if (!json_is_string(v)) {
                protocol_error_set(err, PROTOCOL_ERROR_BAD_REQUEST,
                                   "field \"type\" is %s; it must be a string", json_kind_name(v));
                return -EINVAL;
        }
        t = protocol_request_type_from_string(json_string_value(v));
        if (t < 0) {
                char known[256] = "";
                size_t n = 0;

                for (size_t i = 0; i < _PROTOCOL_REQUEST_MAX && n < sizeof(known); i++)
                        n += snprintf(known + n, sizeof(known) - n, "%s%s", i ? ", " : "",
                                      request_type_names[i]);
                protocol_error_set(err, PROTOCOL_ERROR_BAD_REQUEST,
                                   "unknown request type \"%s\"; known types: %s",
                                   quote(json_string_value(v), (char[72]) {}), known);
                return -EINVAL;
        }
        *ret = (enum protocol_request_type) t;
        return 0;
}

int protocol_request_parse(json_t *body, struct protocol_request **ret, struct protocol_error *err) {
        _cleanup_(protocol_request_freep) struct protocol_request *r = NULL;
        enum protocol_request_type type;
        unsigned version;
        const char *key;
        json_t *v;
        int k;

        if (!json_is_object(body)) {
                protocol_error_set(err, PROTOCOL_ERROR_BAD_REQUEST, "a request must be a JSON object");
                return -EINVAL;
        }
        k = version_check(body, &version, err);
        if (k < 0)
                return k;
        k = type_check(body, &type, err);
        if (k < 0)
                return k;

        r = calloc(1, sizeof(*r));
        if (!r)
                return -ENOMEM;
        r->type = type;
        r->version = version;

        json_object_foreach(body, key, v) {
                const struct field_spec *f;

                if (strcmp(key, "version") == 0 || strcmp(key, "type") == 0)
                        continue;
                f = field_find(key);
                if (!f) {
                        protocol_error_set(err, PROTOCOL_ERROR_BAD_REQUEST,
                                           "unknown field \"%s\" in a \"%s\" request",
                                           quote(key, (char[72]) {}), request_type_names[type]);
                        return -EINVAL;
                }
                if (!(f->allowed & BIT(type))) {
                        protocol_error_set(err, PROTOCOL_ERROR_BAD_REQUEST,
                                           "field \"%s\" is not allowed in a \"%s\" request",
                                           key, request_type_names[type]);
                        return -EINVAL;
                }
                k = field_store(r, f, v, err);
                if (k < 0)
                        return k;
        }

        for (size_t i = 0; i < ELEMENTSOF(fields); i++)
                if ((fields[i].required & BIT(type)) && !json_object_get(body, fields[i].name)) {
                        protocol_error_set(err, PROTOCOL_ERROR_BAD_REQUEST,
                                           "missing field \"%s\", %s, required in a \"%s\" request",
                                           fields[i].name, fields[i].what, request_type_names[type]);
                        return -EINVAL;
                }

        *ret = TAKE_PTR(r);
        return 0;
}

static int set_string(json_t *o, const char *key, const char *value, struct protocol_error *err) {
        json_t *v;

        if (!value)
                return 0;
        v = json_string(value);
        if (!v) {
                /* json_string() refuses invalid UTF-8. */
                protocol_error_set(err, PROTOCOL_ERROR_BAD_REQUEST, "field \"%s\" is not valid UTF-8", key);
                return -EINVAL;
        }
        return json_object_set_new(o, key, v) < 0 ? -ENOMEM : 0;
}

int protocol_request_to_json(const struct protocol_request *r, json_t **ret, struct protocol_error *err) {
        _cleanup_(protocol_request_freep) struct protocol_request *check = NULL;
        json_t *o;
        int k = 0;

        if (!r || !protocol_request_type_to_string(r->type)) {
                protocol_error_set(err, PROTOCOL_ERROR_BAD_REQUEST, "no valid request type");
                return -EINVAL;
        }
        o = json_object();
        if (!o)
                return -ENOMEM;

        if (json_object_set_new(o, "version", json_integer(r->version ? r->version : PROTOCOL_VERSION)) < 0 ||
            json_object_set_new(o, "type", json_string(request_type_names[r->type])) < 0)
                k = -ENOMEM;
        if (k >= 0)
                k = set_string(o, "client", r->client, err);
        if (k >= 0)
                k = set_string(o, "nodes", r->nodes, err);
        if (k >= 0)
                k = set_string(o, "job_id", r->job_id, err);
        if (k >= 0 && r->resume_file)
                k = json_object_set(o, "resume_file", r->resume_file) < 0 ? -ENOMEM : 0;
        if (k >= 0)
                k = set_string(o, "resume_file_error", r->resume_file_error, err);
        if (k >= 0)
                k = set_string(o, "reason", r->reason, err);
        if (k >= 0)
                k = set_string(o, "features", r->features, err);
        if (k >= 0 && r->type == PROTOCOL_REQUEST_RESIZE) {
                k = set_string(o, "group", r->group, err);
                if (k >= 0 && (json_object_set_new(o, "min", json_integer(r->min)) < 0 ||
                               json_object_set_new(o, "wait", json_boolean(r->wait)) < 0))
                        k = -ENOMEM;
        } else if (k >= 0 && r->type == PROTOCOL_REQUEST_GROUP_ENABLE && !r->min && !r->wait) {
                k = set_string(o, "group", r->group, err);
        } else if (k >= 0 && (r->group || r->min || r->wait)) {
                protocol_error_set(err, PROTOCOL_ERROR_BAD_REQUEST,
                                   "group, min and wait belong to a \"resize\" request only");
                k = -EINVAL;
        }

        for (size_t i = 0; i < 2 && k >= 0; i++) {
                const char *name = i == 0 ? "rows" : "table";

                if (!(i == 0 ? r->rows : r->table))
                        continue;
                if (r->type != PROTOCOL_REQUEST_NODES) {
                        protocol_error_set(err, PROTOCOL_ERROR_BAD_REQUEST, "%s belongs to a \"nodes\" request only",
                                           name);
                        k = -EINVAL;
                } else if (json_object_set_new(o, name, json_true()) < 0)
                        k = -ENOMEM;
        }

        /* Never send what the daemon would refuse. */
        if (k >= 0)
                k = protocol_request_parse(o, &check, err);
        if (k < 0) {
                json_decref(o);
                return k;
        }
        *ret = o;
        return 0;
}

/* ---- Replies ------------------------------------------------------------- */

int protocol_reply_ok(const char *request_id, json_t *result, json_t **ret) {
        json_t *o;

        if (result && !json_is_object(result))
                return -EINVAL;
        if (result)
                o = json_pack("{s:I, s:s?, s:b, s:O}", "version", (json_int_t) PROTOCOL_VERSION,
                              "id", request_id, "ok", 1, "result", result);
        else
                o = json_pack("{s:I, s:s?, s:b, s:{}}", "version", (json_int_t) PROTOCOL_VERSION,
                              "id", request_id, "ok", 1, "result");
        if (!o)
                return -ENOMEM;
        *ret = o;
        return 0;
}

int protocol_reply_error(const char *request_id, enum protocol_error_code code, const char *message,
                         json_t **ret) {
        const char *name = protocol_error_code_to_string(code);
        json_t *o;

        if (!name)
                return -EINVAL;
        /* json_pack refuses invalid UTF-8: a message quoting client bytes must not lose the reply. */
        o = json_pack("{s:I, s:s?, s:b, s:{s:s, s:s}}", "version", (json_int_t) PROTOCOL_VERSION,
                      "id", request_id, "ok", 0, "error", "code", name, "message", message ? message : name);
        if (!o)
                o = json_pack("{s:I, s:s?, s:b, s:{s:s, s:s}}", "version", (json_int_t) PROTOCOL_VERSION,
                              "id", request_id, "ok", 0, "error", "code", name, "message", name);
        if (!o)
                return -ENOMEM;
        *ret = o;
        return 0;
}

struct protocol_reply *protocol_reply_free(struct protocol_reply *r) {
        if (!r)
                return NULL;
        free(r->id);
        json_decref(r->result);
        free(r->error_code);
        free(r->error_message);
        free(r);
        return NULL;
}

int protocol_reply_parse(json_t *body, struct protocol_reply **ret, struct protocol_error *err) {
        _cleanup_(protocol_reply_freep) struct protocol_reply *r = NULL;
        json_t *version, *id, *ok, *result, *error, *code, *message;

        if (!json_is_object(body)) {
                protocol_error_set(err, PROTOCOL_ERROR_BAD_FRAME, "the reply is not a JSON object");
                return -EBADMSG;
        }
        version = json_object_get(body, "version");
        if (!json_is_integer(version)) {
                protocol_error_set(err, PROTOCOL_ERROR_BAD_FRAME, "the reply has no integer \"version\"");
                return -EBADMSG;
        }
        if (json_integer_value(version) != PROTOCOL_VERSION) {
                protocol_error_set(err, PROTOCOL_ERROR_UNSUPPORTED_VERSION,
                                   "the reply uses protocol version %" JSON_INTEGER_FORMAT
                                   "; this client supports version %u",
                                   json_integer_value(version), PROTOCOL_VERSION);
                return -EBADMSG;
        }
        id = json_object_get(body, "id");
        if (id && !json_is_string(id) && !json_is_null(id)) {
                protocol_error_set(err, PROTOCOL_ERROR_BAD_FRAME, "the reply's \"id\" is not a string");
                return -EBADMSG;
        }
        ok = json_object_get(body, "ok");
        if (!json_is_boolean(ok)) {
                protocol_error_set(err, PROTOCOL_ERROR_BAD_FRAME, "the reply has no boolean \"ok\"");
                return -EBADMSG;
        }

        r = calloc(1, sizeof(*r));
        if (!r)
                return -ENOMEM;
        r->ok = json_is_true(ok);
        if (json_is_string(id) && !(r->id = strdup(json_string_value(id))))
                return -ENOMEM;

        if (r->ok) {
                result = json_object_get(body, "result");
                if (!json_is_object(result)) {
                        protocol_error_set(err, PROTOCOL_ERROR_BAD_FRAME,
                                           "the reply has \"ok\": true but no \"result\" object");
                        return -EBADMSG;
                }
                r->result = json_incref(result);
        } else {
                error = json_object_get(body, "error");
                code = json_object_get(error, "code");
                message = json_object_get(error, "message");
                if (!json_is_object(error) || !json_is_string(code) || !json_is_string(message)) {
                        protocol_error_set(err, PROTOCOL_ERROR_BAD_FRAME,
                                           "the reply has \"ok\": false but no \"error\" object "
                                           "with string \"code\" and \"message\"");
                        return -EBADMSG;
                }
                r->error_code = strdup(json_string_value(code));
                r->error_message = strdup(json_string_value(message));
                if (!r->error_code || !r->error_message)
                        return -ENOMEM;
        }

        *ret = TAKE_PTR(r);
        return 0;
}

/* ---- Frames -------------------------------------------------------------- */

/* The frame being dumped: the header's 4 bytes, then the body. */
struct frame_buf {
        uint8_t *buf;
        size_t size, alloc, max;
        bool too_big;
};

static int frame_buf_add(const char *data, size_t n, void *userdata) {
        struct frame_buf *f = userdata;

        if (n > f->max - (f->size - PROTOCOL_HEADER_SIZE)) {
                f->too_big = true;
                return -1;
        }
        if (f->size + n > f->alloc) {
                size_t a = f->alloc * 2 > f->size + n ? f->alloc * 2 : f->size + n;
                uint8_t *b = realloc(f->buf, a);

                if (!b)
                        return -1;
                f->buf = b;
                f->alloc = a;
        }
        memcpy(f->buf + f->size, data, n);
        f->size += n;
        return 0;
}

int protocol_frame_encode(json_t *obj, size_t max_frame, void **ret, size_t *ret_size) {
        struct frame_buf f = { .size = PROTOCOL_HEADER_SIZE, .alloc = 4096,
                               .max = max_frame < UINT32_MAX ? max_frame : UINT32_MAX };
        size_t n;

        if (!json_is_object(obj))
                return -EINVAL;
        /* One pass (json_dumpb would need two: one to size the buffer). */
        f.buf = malloc(f.alloc);
        if (!f.buf)
                return -ENOMEM;
        if (json_dump_callback(obj, frame_buf_add, &f, JSON_COMPACT) < 0) {
                free(f.buf);
                return f.too_big ? -EMSGSIZE : -ENOMEM;
        }
        n = f.size - PROTOCOL_HEADER_SIZE;
        if (n == 0) {
                free(f.buf);
                return -EINVAL;
        }
        f.buf[0] = (uint8_t) (n >> 24);
        f.buf[1] = (uint8_t) (n >> 16);
        f.buf[2] = (uint8_t) (n >> 8);
        f.buf[3] = (uint8_t) n;
        *ret = f.buf;
        *ret_size = f.size;
        return 0;
}

int protocol_frame_body_parse(const void *body, size_t size, json_t **ret, struct protocol_error *err) {
        json_error_t jerr;
        json_t *o;

        o = json_loadb(body, size, JSON_REJECT_DUPLICATES, &jerr);
        if (!o) {
                /* jansson quotes the offending bytes: keep the message valid text. */
                for (char *c = jerr.text; *c; c++)
                        if ((unsigned char) *c < 0x20 || (unsigned char) *c >= 0x7f)
                                *c = '?';
                protocol_error_set(err, PROTOCOL_ERROR_BAD_FRAME,
                                   "the frame body is not valid UTF-8 JSON: %s (line %d, column %d)",
                                   jerr.text, jerr.line, jerr.column);
                return -EBADMSG;
        }
        if (!json_is_object(o)) {
                protocol_error_set(err, PROTOCOL_ERROR_BAD_FRAME,
                                   "the frame body is %s; it must be a JSON object", json_kind_name(o));
                json_decref(o);
                return -EBADMSG;
        }
        *ret = o;
        return 0;
}

static uint32_t be32_read(const uint8_t *p) {
        return (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16 | (uint32_t) p[2] << 8 | p[3];
}

struct protocol_decoder {
        size_t max_frame;
        uint8_t *buf;
        size_t start;   /* first byte not yet taken */
        size_t end;     /* one past the last byte fed */
        size_t alloc;
        bool failed;
        struct protocol_error failure;
};

int protocol_decoder_new(size_t max_frame, struct protocol_decoder **ret) {
        struct protocol_decoder *d = calloc(1, sizeof(*d));

        if (!d)
                return -ENOMEM;
        d->max_frame = max_frame < PROTOCOL_MAX_FRAME_MIN ? PROTOCOL_MAX_FRAME_MIN : max_frame;
        if (d->max_frame > UINT32_MAX)
                d->max_frame = UINT32_MAX;
        *ret = d;
        return 0;
}

struct protocol_decoder *protocol_decoder_free(struct protocol_decoder *d) {
        if (!d)
                return NULL;
        free(d->buf);
        free(d);
        return NULL;
}

int protocol_decoder_feed(struct protocol_decoder *d, const void *data, size_t size) {
        if (d->failed)
                return -EPROTO;
        if (size == 0)
                return 0;
        if (d->start > 0) {
                memmove(d->buf, d->buf + d->start, d->end - d->start);
                d->end -= d->start;
                d->start = 0;
        }
        if (size > SIZE_MAX - d->end)
                return -ENOMEM;
        if (d->end + size > d->alloc) {
                size_t n = d->alloc ? d->alloc : 4096;
                uint8_t *b;

                while (n < d->end + size)
                        n = n > SIZE_MAX / 2 ? d->end + size : n * 2;
                b = realloc(d->buf, n);
                if (!b)
                        return -ENOMEM;
                d->buf = b;
                d->alloc = n;
        }
        memcpy(d->buf + d->end, data, size);
        d->end += size;
        return 0;
}

static int decoder_fail(struct protocol_decoder *d, struct protocol_error *err) {
        d->failed = true;
        /* The rest of the stream cannot be framed; drop it. */
        d->start = d->end = 0;
        if (err)
                *err = d->failure;
        return -EPROTO;
}

int protocol_decoder_next(struct protocol_decoder *d, json_t **ret, struct protocol_error *err) {
        size_t avail = d->end - d->start;
        uint32_t len;
        json_t *o;
        int k;

        if (d->failed) {
                if (err)
                        *err = d->failure;
                return -EPROTO;
        }
        if (avail < PROTOCOL_HEADER_SIZE)
                return 0;
        len = be32_read(d->buf + d->start);
        if (len == 0) {
                protocol_error_set(&d->failure, PROTOCOL_ERROR_BAD_FRAME,
                                   "a frame with length 0; a frame carries one JSON object");
                return decoder_fail(d, err);
        }
        if (len > d->max_frame) {
                protocol_error_set(&d->failure, PROTOCOL_ERROR_BAD_FRAME,
                                   "a frame of %" PRIu32 " bytes; the limit is %zu bytes",
                                   len, d->max_frame);
                return decoder_fail(d, err);
        }
        if (avail - PROTOCOL_HEADER_SIZE < len)
                return 0;

        k = protocol_frame_body_parse(d->buf + d->start + PROTOCOL_HEADER_SIZE, len, &o, err);
        d->start += PROTOCOL_HEADER_SIZE + len;
        if (d->start == d->end)
                d->start = d->end = 0;
        if (k < 0)
                return k;
        *ret = o;
        return 1;
}

size_t protocol_decoder_buffered(const struct protocol_decoder *d) {
        return d->end - d->start;
}

bool protocol_decoder_failed(const struct protocol_decoder *d) {
        return d->failed;
}

bool protocol_decoder_idle(const struct protocol_decoder *d) {
        return !d->failed && d->end == d->start;
}

/* ---- Blocking helpers ---------------------------------------------------- */

static int64_t now_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait until FD is ready for EVENTS or DEADLINE (ms, < 0: none) passes. */
static int fd_wait(int fd, short events, int64_t deadline) {
        for (;;) {
                struct pollfd p = { .fd = fd, .events = events };
                int timeout = -1, k;

                if (deadline >= 0) {
                        int64_t left = deadline - now_ms();
                        if (left <= 0)
                                return -ETIMEDOUT;
                        timeout = left > INT_MAX ? INT_MAX : (int) left;
                }
                k = poll(&p, 1, timeout);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (k == 0)
                        continue; /* the deadline check above ends it */
                if (p.revents & POLLNVAL)
                        return -EBADF;
                return 0; /* readable, writable, or an error the next call reports */
        }
}

int protocol_write_frame(int fd, json_t *obj, size_t max_frame, int timeout_ms) {
        _cleanup_free_ void *buf = NULL;
        int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
        size_t size, done = 0;
        bool is_socket = true;
        int k;

        k = protocol_frame_encode(obj, max_frame, &buf, &size);
        if (k < 0)
                return k;

        while (done < size) {
                ssize_t n;

                k = fd_wait(fd, POLLOUT, deadline);
                if (k < 0)
                        return k;
                if (is_socket) {
                        n = send(fd, (char *) buf + done, size - done, MSG_NOSIGNAL | MSG_DONTWAIT);
                        if (n < 0 && errno == ENOTSOCK) {
                                is_socket = false;
                                continue;
                        }
                } else
                        n = write(fd, (char *) buf + done, size - done);
                if (n < 0) {
                        if (errno == EINTR || errno == EAGAIN)
                                continue;
                        return negative_errno();
                }
                done += (size_t) n;
        }
        return 0;
}

/* Read exactly SIZE bytes. -ECONNRESET on EOF. */
static int read_full(int fd, void *buf, size_t size, int64_t deadline) {
        size_t done = 0;

        while (done < size) {
                ssize_t n;
                int k = fd_wait(fd, POLLIN, deadline);

                if (k < 0)
                        return k;
                n = read(fd, (char *) buf + done, size - done);
                if (n < 0) {
                        if (errno == EINTR || errno == EAGAIN)
                                continue;
                        return negative_errno();
                }
                if (n == 0)
                        return -ECONNRESET;
                done += (size_t) n;
        }
        return 0;
}

int protocol_read_frame(int fd, size_t max_frame, int timeout_ms, json_t **ret, struct protocol_error *err) {
        int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
        _cleanup_free_ uint8_t *body = NULL;
        uint8_t header[PROTOCOL_HEADER_SIZE];
        uint32_t len;
        int k;

        k = read_full(fd, header, sizeof(header), deadline);
        if (k < 0)
                return k;
        len = be32_read(header);
        if (len == 0) {
                protocol_error_set(err, PROTOCOL_ERROR_BAD_FRAME, "a frame with length 0");
                return -EPROTO;
        }
        if (len > max_frame) {
                protocol_error_set(err, PROTOCOL_ERROR_BAD_FRAME,
                                   "a frame of %" PRIu32 " bytes; the limit is %zu bytes", len, max_frame);
                return -EPROTO;
        }
        body = malloc(len);
        if (!body)
                return -ENOMEM;
        k = read_full(fd, body, len, deadline);
        if (k < 0)
                return k;
        return protocol_frame_body_parse(body, len, ret, err);
}
