/* records.c - journal records: struct <-> JSON, with the field at fault named. */
#include "journal/records.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/macro.h"

static const char *const kind_names[_RECORD_KIND_MAX] = {
        [RECORD_SEQ] = "seq",
        [RECORD_REQUEST] = "request",
        [RECORD_OP] = "op",
        [RECORD_OP_STATE] = "op_state",
        [RECORD_NODE] = "node",
        [RECORD_JOURNAL] = "journal",
        [RECORD_LOOKUP] = "lookup",
        [RECORD_CAPACITY] = "capacity",
        [RECORD_DOWNMARK] = "downmark",
};

static const char *const capacity_end_names[_RECORD_CAPACITY_END_MAX] = {
        [RECORD_CAPACITY_SHORT] = "",
        [RECORD_CAPACITY_EXPIRED] = "expired",
        [RECORD_CAPACITY_ENABLED] = "enabled",
};

static const char *const request_type_names[_RECORD_REQUEST_TYPE_MAX] = {
        [RECORD_REQUEST_RESUME] = "resume",
        [RECORD_REQUEST_SUSPEND] = "suspend",
        [RECORD_REQUEST_RESUME_FAIL] = "resume_fail",
        [RECORD_REQUEST_REBOOT] = "reboot",
        [RECORD_REQUEST_RESIZE] = "resize",
};

static int name_lookup(const char *const *names, size_t n, const char *s) {
        for (size_t i = 0; s && i < n; i++)
                if (strcmp(s, names[i]) == 0)
                        return (int) i;
        return -EINVAL;
}

const char *record_kind_to_string(enum record_kind k) {
        return (unsigned) k < _RECORD_KIND_MAX ? kind_names[k] : NULL;
}

int record_kind_from_string(const char *s) {
        return name_lookup(kind_names, _RECORD_KIND_MAX, s);
}

const char *record_request_type_to_string(enum record_request_type t) {
        return (unsigned) t < _RECORD_REQUEST_TYPE_MAX ? request_type_names[t] : NULL;
}

const char *record_capacity_end_to_string(enum record_capacity_end e) {
        return (unsigned) e < _RECORD_CAPACITY_END_MAX ? capacity_end_names[e] : NULL;
}

int record_request_type_from_string(const char *s) {
        return name_lookup(request_type_names, _RECORD_REQUEST_TYPE_MAX, s);
}

/* ---- errors -------------------------------------------------------------- */

/* What a message says the record is: "op record o-x-3", "node record for cl1". */
struct where {
        const char *kind;
        const char *id;
        bool for_node;
        char **ret_error;
};

static int bad(const struct where *w, int error, const char *field, const char *fmt, ...) _printf_(4, 5);
static int bad(const struct where *w, int error, const char *field, const char *fmt, ...) {
        _cleanup_free_ char *what = NULL;
        va_list ap;

        if (!w->ret_error)
                return error;
        va_start(ap, fmt);
        if (vasprintf(&what, fmt, ap) < 0)
                what = NULL;
        va_end(ap);
        if (asprintf(w->ret_error, "%s record%s%s: \"%s\" %s", w->kind, w->id ? (w->for_node ? " for " : " ") : "",
                     w->id ? w->id : "", field, what ? what : "is wrong") < 0)
                *w->ret_error = NULL;
        return error;
}

/* An enum's names: NAME(i) for i below MAX. */
typedef const char *(*name_fn)(int i);

static const char *op_kind_name(int i) {
        return state_op_kind_to_string((enum state_op_kind) i);
}

static const char *op_state_name(int i) {
        return state_op_state_to_string((enum state_op_state) i);
}

static const char *lookup_what_name(int i) {
        return state_lookup_what_to_string((enum state_lookup_what) i);
}

/* The ends a record may name ("" is the absence of "ended"). */
static const char *capacity_end_name(int i) {
        return record_capacity_end_to_string((enum record_capacity_end) (i + 1));
}

static const char *request_type_name(int i) {
        return record_request_type_to_string((enum record_request_type) i);
}

/* "a, b, c": every name of an enum. */
static char *names_list(name_fn name, int max) {
        char *s = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&s, &size);

        if (!f)
                return NULL;
        for (int i = 0; i < max; i++)
                fprintf(f, "%s%s", i ? ", " : "", name(i));
        if (fclose(f) != 0)
                return mfree(s);
        return s;
}

/* ---- decoding ------------------------------------------------------------ */

struct decoder {
        json_t *json;
        struct where w;
};

static const char *json_type_name(json_t *v) {
        switch (json_typeof(v)) {
        case JSON_OBJECT: return "an object";
        case JSON_ARRAY: return "an array";
        case JSON_STRING: return "a string";
        case JSON_INTEGER: return "an integer";
        case JSON_REAL: return "a number with a fraction";
        case JSON_TRUE:
        case JSON_FALSE: return "a boolean";
        case JSON_NULL: return "null";
        }
        return "something else";
}

/* A string field: required or optional (*ret stays NULL when absent). */
static int dec_string(struct decoder *d, const char *key, bool required, const char **ret) {
        json_t *v = json_object_get(d->json, key);

        if (!v) {
                if (required)
                        return bad(&d->w, -EBADMSG, key, "is missing");
                *ret = NULL;
                return 0;
        }
        if (!json_is_string(v))
                return bad(&d->w, -EBADMSG, key, "must be a string, not %s", json_type_name(v));
        *ret = json_string_value(v);
        return 0;
}

/* A string that may also be null (clears) or absent (keeps). */
static int dec_text(struct decoder *d, const char *key, struct record_text *ret) {
        json_t *v = json_object_get(d->json, key);

        if (!v) {
                *ret = (struct record_text) {};
                return 0;
        }
        if (json_is_null(v)) {
                *ret = RECORD_TEXT(NULL);
                return 0;
        }
        if (!json_is_string(v))
                return bad(&d->w, -EBADMSG, key, "must be a string or null, not %s", json_type_name(v));
        *ret = RECORD_TEXT(json_string_value(v));
        return 0;
}

/* An integer of at least MIN; when absent, required fails and optional keeps *ret. */
static int dec_int(struct decoder *d, const char *key, bool required, int64_t min, int64_t *ret) {
        json_t *v = json_object_get(d->json, key);

        if (!v)
                return required ? bad(&d->w, -EBADMSG, key, "is missing") : 0;
        if (!json_is_integer(v))
                return bad(&d->w, -EBADMSG, key, "must be an integer, not %s", json_type_name(v));
        if (json_integer_value(v) < min)
                return bad(&d->w, -EBADMSG, key, "is %" JSON_INTEGER_FORMAT ", less than %" PRId64,
                           json_integer_value(v), min);
        *ret = (int64_t) json_integer_value(v);
        return 0;
}

static int dec_enum(struct decoder *d, const char *key, name_fn name, int max, int *ret) {
        const char *s;
        int r;

        r = dec_string(d, key, true, &s);
        if (r < 0)
                return r;
        for (int i = 0; i < max; i++)
                if (strcmp(s, name(i)) == 0) {
                        *ret = i;
                        return 0;
                }
        _cleanup_free_ char *list = names_list(name, max);
        return bad(&d->w, -EBADMSG, key, "is \"%s\", not one of %s", s, list ? list : "the known names");
}

static int decode_seq(struct decoder *d, struct record_seq *ret) {
        int64_t next = 0;
        int r;

        r = dec_int(d, "next", true, 1, &next);
        if (r < 0)
                return r;
        *ret = (struct record_seq) { .next = (uint64_t) next };
        return 0;
}

static int decode_request(struct decoder *d, struct record_request *ret) {
        struct record_request q = { .uid = -1, .pid = -1 };
        int64_t min = 0;
        json_t *v;
        int type, r;

        r = dec_string(d, "id", true, &q.id);
        if (r < 0)
                return r;
        d->w.id = q.id;
        if ((r = dec_enum(d, "type", request_type_name, _RECORD_REQUEST_TYPE_MAX, &type)) < 0 ||
            (r = dec_int(d, "uid", false, 0, &q.uid)) < 0 ||
            (r = dec_int(d, "pid", false, 0, &q.pid)) < 0 ||
            (r = dec_int(d, "time", false, 0, &q.time)) < 0 ||
            (r = dec_string(d, "client", false, &q.client)) < 0 ||
            (r = dec_string(d, "job_id", false, &q.job_id)) < 0 ||
            (r = dec_string(d, "reason", false, &q.reason)) < 0 ||
            (r = dec_string(d, "features", false, &q.features)) < 0 ||
            (r = dec_string(d, "resume_file_error", false, &q.resume_file_error)) < 0 ||
            (r = dec_string(d, "nodes", false, &q.nodes)) < 0 ||
            (r = dec_int(d, "operations", false, 0, &q.operations)) < 0)
                return r;
        q.type = type;
        v = json_object_get(d->json, "resume_file");
        if (v && !json_is_object(v))
                return bad(&d->w, -EBADMSG, "resume_file", "must be an object, not %s", json_type_name(v));
        q.resume_file = v;
        if (q.type == RECORD_REQUEST_RESIZE) {
                if ((r = dec_string(d, "group", true, &q.group)) < 0 ||
                    (r = dec_int(d, "min", true, 0, &min)) < 0)
                        return r;
                if (min > UINT32_MAX)
                        return bad(&d->w, -EBADMSG, "min", "is %" PRId64 ", too large", min);
                q.min = (unsigned) min;
                v = json_object_get(d->json, "wait");
                if (v && !json_is_boolean(v))
                        return bad(&d->w, -EBADMSG, "wait", "must be a boolean, not %s", json_type_name(v));
                q.wait = json_is_true(v);
        }
        *ret = q;
        return 0;
}

static int decode_op(struct decoder *d, struct record_op *ret) {
        struct record_op o = {};
        int kind, st, r;

        r = dec_string(d, "id", true, &o.id);
        if (r < 0)
                return r;
        d->w.id = o.id;
        if ((r = dec_string(d, "node", true, &o.node)) < 0 ||
            (r = dec_string(d, "group", true, &o.group)) < 0 ||
            (r = dec_enum(d, "op", op_kind_name, _STATE_OP_KIND_MAX, &kind)) < 0 ||
            (r = dec_enum(d, "state", op_state_name, _STATE_OP_STATE_MAX, &st)) < 0 ||
            (r = dec_string(d, "request", false, &o.request)) < 0 ||
            (r = dec_int(d, "time", false, 0, &o.time)) < 0 ||
            (r = dec_int(d, "changed", false, 0, &o.changed)) < 0)
                return r;
        o.op = kind;
        o.state = st;
        *ret = o;
        return 0;
}

static int decode_op_state(struct decoder *d, struct record_op_state *ret) {
        struct record_op_state o = {};
        int st, r;

        r = dec_string(d, "id", true, &o.id);
        if (r < 0)
                return r;
        d->w.id = o.id;
        if ((r = dec_string(d, "node", true, &o.node)) < 0 ||
            (r = dec_enum(d, "state", op_state_name, _STATE_OP_STATE_MAX, &st)) < 0 ||
            (r = dec_int(d, "time", false, 0, &o.time)) < 0 ||
            (r = dec_text(d, "note", &o.note)) < 0 ||
            (r = dec_string(d, "by_request", false, &o.by_request)) < 0)
                return r;
        o.state = st;
        *ret = o;
        return 0;
}

static int decode_node(struct decoder *d, struct record_node *ret) {
        struct record_node n = {};
        int r;

        r = dec_string(d, "node", true, &n.node);
        if (r < 0)
                return r;
        d->w.id = n.node;
        d->w.for_node = true;
        if ((r = dec_string(d, "op", false, &n.op)) < 0 ||
            (r = dec_int(d, "time", false, 0, &n.time)) < 0 ||
            (r = dec_text(d, "step", &n.step)) < 0 ||
            (r = dec_text(d, "instance_id", &n.instance_id)) < 0 ||
            (r = dec_text(d, "address", &n.address)) < 0 ||
            (r = dec_text(d, "note", &n.note)) < 0)
                return r;
        *ret = n;
        return 0;
}

static int decode_lookup(struct decoder *d, struct record_lookup *ret) {
        struct record_lookup l = {};
        struct record_text id;
        int what, r;

        r = dec_string(d, "name", true, &l.name);
        if (r < 0)
                return r;
        d->w.id = l.name;
        if ((r = dec_enum(d, "what", lookup_what_name, _STATE_LOOKUP_WHAT_MAX, &what)) < 0 ||
            (r = dec_text(d, "id", &id)) < 0 ||
            (r = dec_string(d, "scope", false, &l.scope)) < 0 ||
            (r = dec_int(d, "time", false, 0, &l.time)) < 0)
                return r;
        if (!id.present)
                return bad(&d->w, -EBADMSG, "id", "is missing");
        l.what = what;
        l.id = id.value;
        *ret = l;
        return 0;
}

static int decode_capacity(struct decoder *d, struct record_capacity *ret) {
        struct record_capacity c = {};
        int end, r;

        r = dec_string(d, "group", true, &c.group);
        if (r < 0)
                return r;
        d->w.id = c.group;
        if ((r = dec_int(d, "time", false, 0, &c.time)) < 0)
                return r;
        if (json_object_get(d->json, "ended")) {
                r = dec_enum(d, "ended", capacity_end_name, _RECORD_CAPACITY_END_MAX - 1, &end);
                if (r < 0)
                        return r;
                c.ended = (enum record_capacity_end) (end + 1);
                *ret = c;
                return 0;
        }
        if ((r = dec_int(d, "since", true, 0, &c.since)) < 0 ||
            (r = dec_int(d, "until", true, 0, &c.until)) < 0 ||
            (r = dec_int(d, "failovers", false, 0, &c.failovers)) < 0 ||
            (r = dec_string(d, "reason", false, &c.reason)) < 0)
                return r;
        if (c.until < c.since)
                return bad(&d->w, -EBADMSG, "until", "is before since");
        *ret = c;
        return 0;
}

static int decode_downmark(struct decoder *d, struct record_downmark *ret) {
        struct record_downmark m = {};
        struct record_text reason;
        int r;

        r = dec_string(d, "node", true, &m.node);
        if (r < 0)
                return r;
        d->w.id = m.node;
        d->w.for_node = true;
        if ((r = dec_text(d, "reason", &reason)) < 0 ||
            (r = dec_string(d, "group", false, &m.group)) < 0 ||
            (r = dec_int(d, "time", false, 0, &m.time)) < 0)
                return r;
        if (!reason.present)
                return bad(&d->w, -EBADMSG, "reason", "is missing");
        m.reason = reason.value;
        *ret = m;
        return 0;
}

static int decode_journal(struct decoder *d, struct record_journal *ret) {
        struct record_journal m = {};
        int64_t bytes = 0, records = 0;
        int r;

        if ((r = dec_string(d, "event", true, &m.event)) < 0 ||
            (r = dec_int(d, "previous_bytes", false, 0, &bytes)) < 0 ||
            (r = dec_int(d, "previous_records", false, 0, &records)) < 0)
                return r;
        m.previous_bytes = (uint64_t) bytes;
        m.previous_records = (uint64_t) records;
        *ret = m;
        return 0;
}

int record_decode(json_t *json, struct record *ret, char **ret_error) {
        struct decoder d = { .json = json, .w = { .kind = "journal", .ret_error = ret_error } };
        struct record rec = {};
        const char *kind;
        int k, r;

        if (!json_is_object(json)) {
                if (ret_error)
                        *ret_error = strdup(json ? "a journal record must be a JSON object" : "no journal record");
                return -EBADMSG;
        }
        r = dec_string(&d, "kind", true, &kind);
        if (r < 0)
                return r;
        k = record_kind_from_string(kind);
        if (k < 0)
                return 1;
        d.w.kind = kind;
        rec.kind = k;
        switch (rec.kind) {
        case RECORD_SEQ: r = decode_seq(&d, &rec.seq); break;
        case RECORD_REQUEST: r = decode_request(&d, &rec.request); break;
        case RECORD_OP: r = decode_op(&d, &rec.op); break;
        case RECORD_OP_STATE: r = decode_op_state(&d, &rec.op_state); break;
        case RECORD_NODE: r = decode_node(&d, &rec.node); break;
        case RECORD_JOURNAL: r = decode_journal(&d, &rec.journal); break;
        case RECORD_LOOKUP: r = decode_lookup(&d, &rec.lookup); break;
        case RECORD_CAPACITY: r = decode_capacity(&d, &rec.capacity); break;
        case RECORD_DOWNMARK: r = decode_downmark(&d, &rec.downmark); break;
        default: return 1;
        }
        if (r < 0)
                return r;
        *ret = rec;
        return 0;
}

/* ---- encoding ------------------------------------------------------------ */

struct encoder {
        json_t *json;
        struct where w;
        int error;   /* the first failure; later sets are skipped */
};

static void enc_put(struct encoder *e, const char *key, json_t *v) {
        if (e->error < 0) {
                json_decref(v);
                return;
        }
        if (!v || json_object_set_new(e->json, key, v) < 0)
                e->error = -ENOMEM;
}

/* A required string: missing is the caller's bug, said like a decode error. */
static void enc_string(struct encoder *e, const char *key, const char *value) {
        if (e->error < 0)
                return;
        if (!value) {
                e->error = bad(&e->w, -EINVAL, key, "is missing");
                return;
        }
        enc_put(e, key, json_string(value));
}

static void enc_optional(struct encoder *e, const char *key, const char *value) {
        if (value)
                enc_put(e, key, json_string(value));
}

static void enc_text(struct encoder *e, const char *key, struct record_text t) {
        if (t.present)
                enc_put(e, key, t.value ? json_string(t.value) : json_null());
}

static void enc_int(struct encoder *e, const char *key, int64_t v) {
        enc_put(e, key, json_integer((json_int_t) v));
}

static void enc_enum(struct encoder *e, const char *key, const char *name, int value) {
        if (e->error < 0)
                return;
        if (!name) {
                e->error = bad(&e->w, -EINVAL, key, "has no name for value %d", value);
                return;
        }
        enc_put(e, key, json_string(name));
}

static void encode_request(struct encoder *e, const struct record_request *q) {
        enc_string(e, "id", q->id);
        enc_enum(e, "type", record_request_type_to_string(q->type), (int) q->type);
        if (q->uid >= 0)
                enc_int(e, "uid", q->uid);
        if (q->pid >= 0)
                enc_int(e, "pid", q->pid);
        enc_int(e, "time", q->time);
        enc_optional(e, "client", q->client);
        enc_optional(e, "job_id", q->job_id);
        enc_optional(e, "reason", q->reason);
        enc_optional(e, "features", q->features);
        enc_optional(e, "resume_file_error", q->resume_file_error);
        if (q->resume_file) {
                if (!json_is_object(q->resume_file) && e->error >= 0)
                        e->error = bad(&e->w, -EINVAL, "resume_file", "must be an object");
                enc_put(e, "resume_file", json_incref(q->resume_file));
        }
        enc_optional(e, "nodes", q->nodes);
        if (q->operations < 0 && e->error >= 0)
                e->error = bad(&e->w, -EINVAL, "operations", "is negative");
        enc_int(e, "operations", q->operations);
        if (q->type == RECORD_REQUEST_RESIZE) {
                enc_string(e, "group", q->group);
                enc_int(e, "min", q->min);
                enc_put(e, "wait", json_boolean(q->wait));
        }
}

int record_encode(const struct record *r, json_t **ret, char **ret_error) {
        struct encoder e = { .w = { .ret_error = ret_error } };

        if (!r || !ret)
                return -EINVAL;
        e.w.kind = record_kind_to_string(r->kind);
        if (!e.w.kind) {
                if (ret_error && asprintf(ret_error, "no journal record kind %d", (int) r->kind) < 0)
                        *ret_error = NULL;
                return -EINVAL;
        }
        e.json = json_object();
        if (!e.json)
                return -ENOMEM;
        enc_put(&e, "kind", json_string(e.w.kind));

        switch (r->kind) {
        case RECORD_SEQ:
                if (r->seq.next < 1 || r->seq.next > INT64_MAX)
                        e.error = bad(&e.w, -EINVAL, "next", "must be at least 1");
                enc_int(&e, "next", (int64_t) r->seq.next);
                break;
        case RECORD_REQUEST:
                e.w.id = r->request.id;
                encode_request(&e, &r->request);
                break;
        case RECORD_OP:
                e.w.id = r->op.id;
                enc_string(&e, "id", r->op.id);
                enc_string(&e, "node", r->op.node);
                enc_string(&e, "group", r->op.group);
                enc_enum(&e, "op", state_op_kind_to_string(r->op.op), (int) r->op.op);
                enc_enum(&e, "state", state_op_state_to_string(r->op.state), (int) r->op.state);
                enc_optional(&e, "request", r->op.request);
                enc_int(&e, "time", r->op.time);
                if (r->op.changed)
                        enc_int(&e, "changed", r->op.changed);
                break;
        case RECORD_OP_STATE:
                e.w.id = r->op_state.id;
                enc_string(&e, "id", r->op_state.id);
                enc_string(&e, "node", r->op_state.node);
                enc_enum(&e, "state", state_op_state_to_string(r->op_state.state), (int) r->op_state.state);
                enc_int(&e, "time", r->op_state.time);
                enc_text(&e, "note", r->op_state.note);
                enc_optional(&e, "by_request", r->op_state.by_request);
                break;
        case RECORD_NODE:
                e.w.id = r->node.node;
                e.w.for_node = true;
                enc_string(&e, "node", r->node.node);
                enc_optional(&e, "op", r->node.op);
                enc_int(&e, "time", r->node.time);
                enc_text(&e, "step", r->node.step);
                enc_text(&e, "instance_id", r->node.instance_id);
                enc_text(&e, "address", r->node.address);
                enc_text(&e, "note", r->node.note);
                break;
        case RECORD_LOOKUP:
                e.w.id = r->lookup.name;
                enc_enum(&e, "what", state_lookup_what_to_string(r->lookup.what), (int) r->lookup.what);
                enc_string(&e, "name", r->lookup.name);
                enc_text(&e, "id", RECORD_TEXT(r->lookup.id));
                enc_optional(&e, "scope", r->lookup.scope);
                enc_int(&e, "time", r->lookup.time);
                break;
        case RECORD_CAPACITY:
                e.w.id = r->capacity.group;
                enc_string(&e, "group", r->capacity.group);
                if (r->capacity.ended != RECORD_CAPACITY_SHORT) {
                        enc_enum(&e, "ended", record_capacity_end_to_string(r->capacity.ended),
                                 (int) r->capacity.ended);
                        enc_int(&e, "time", r->capacity.time);
                        break;
                }
                if ((r->capacity.since < 0 || r->capacity.until < r->capacity.since) && e.error >= 0)
                        e.error = bad(&e.w, -EINVAL, "until", "is before since");
                if (r->capacity.failovers < 0 && e.error >= 0)
                        e.error = bad(&e.w, -EINVAL, "failovers", "is negative");
                enc_int(&e, "since", r->capacity.since);
                enc_int(&e, "until", r->capacity.until);
                enc_int(&e, "failovers", r->capacity.failovers);
                enc_optional(&e, "reason", r->capacity.reason);
                enc_int(&e, "time", r->capacity.time);
                break;
        case RECORD_DOWNMARK:
                e.w.id = r->downmark.node;
                e.w.for_node = true;
                enc_string(&e, "node", r->downmark.node);
                enc_text(&e, "reason", RECORD_TEXT(r->downmark.reason));
                enc_optional(&e, "group", r->downmark.group);
                enc_int(&e, "time", r->downmark.time);
                break;
        case RECORD_JOURNAL:
                enc_string(&e, "event", r->journal.event);
                enc_int(&e, "previous_bytes", (int64_t) r->journal.previous_bytes);
                enc_int(&e, "previous_records", (int64_t) r->journal.previous_records);
                break;
        default:
                break;
        }
        if (e.error < 0) {
                json_decref(e.json);
                return e.error;
        }
        *ret = e.json;
        return 0;
}
