/* state.c - in-memory state built only from journal records. */
#include "journal/state.h"

#include <limits.h>
#include <search.h>
#include <stdint.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "util/hostlist.h"

static const char *const op_kind_names[_STATE_OP_KIND_MAX] = {
        [STATE_OP_RESUME] = "resume",
        [STATE_OP_SUSPEND] = "suspend",
        [STATE_OP_RESUME_FAIL] = "resume_fail",
        [STATE_OP_REBOOT] = "reboot",
};

static const char *const op_state_names[_STATE_OP_STATE_MAX] = {
        [STATE_OP_PENDING] = "pending",
        [STATE_OP_RUNNING] = "running",
        [STATE_OP_DONE] = "done",
        [STATE_OP_FAILED] = "failed",
        [STATE_OP_CANCELLED] = "cancelled",
};

const char *state_op_kind_to_string(enum state_op_kind k) {
        return (unsigned) k < _STATE_OP_KIND_MAX ? op_kind_names[k] : NULL;
}

int state_op_kind_from_string(const char *s) {
        for (unsigned i = 0; s && i < _STATE_OP_KIND_MAX; i++)
                if (strcmp(s, op_kind_names[i]) == 0)
                        return (int) i;
        return -EINVAL;
}

const char *state_op_state_to_string(enum state_op_state s) {
        return (unsigned) s < _STATE_OP_STATE_MAX ? op_state_names[s] : NULL;
}

int state_op_state_from_string(const char *s) {
        for (unsigned i = 0; s && i < _STATE_OP_STATE_MAX; i++)
                if (strcmp(s, op_state_names[i]) == 0)
                        return (int) i;
        return -EINVAL;
}

bool state_op_state_is_active(enum state_op_state s) {
        return s == STATE_OP_PENDING || s == STATE_OP_RUNNING;
}

/* An accepted request, kept while some node's latest operation refers to it. */
struct request_entry {
        char *id;
        json_t *record;
        size_t n_refs;
        unsigned long seq;  /* order of acceptance, for compaction output */
};

struct resize_entry {
        char *group;
        json_t *record;
};

struct state {
        char *id_prefix;
        unsigned long next_seq;   /* next id number */
        unsigned long apply_seq;  /* records applied */
        void *nodes;              /* tsearch tree of struct state_node *, in node order */
        size_t n_nodes;
        /* The same nodes by name: open addressing, load <= 1/2, a power of
         * two long (state_node_find is O(1); the tree keeps the order). */
        struct state_node **index;
        size_t index_size;
        size_t n_in[_STATE_OP_STATE_MAX]; /* nodes whose latest operation is in each state */
        void *requests;           /* tsearch tree of struct request_entry *, by id */
        size_t n_request_entries;
        size_t n_requests_applied;
        struct resize_entry *resizes;
        size_t n_resizes;
};

static int node_cmp(const void *a, const void *b) {
        const struct state_node *x = a, *y = b;
        return hostlist_name_compare(x->name, y->name);
}

static int request_cmp(const void *a, const void *b) {
        const struct request_entry *x = a, *y = b;
        return strcmp(x->id, y->id);
}

static void node_free(void *p) {
        struct state_node *n = p;

        free(n->name);
        free(n->group);
        free(n->op.id);
        free(n->op.request_id);
        free(n->step);
        free(n->instance_id);
        free(n->address);
        free(n->note);
        free(n);
}

static void request_entry_free(void *p) {
        struct request_entry *r = p;

        free(r->id);
        json_decref(r->record);
        free(r);
}

int state_new(const char *id_prefix, struct state **ret) {
        struct state *s;

        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->id_prefix = strdup(id_prefix);
        if (!s->id_prefix) {
                free(s);
                return -ENOMEM;
        }
        s->next_seq = 1;
        *ret = s;
        return 0;
}

struct state *state_free(struct state *s) {
        if (!s)
                return NULL;
        tdestroy(s->nodes, node_free);
        free(s->index);
        tdestroy(s->requests, request_entry_free);
        for (size_t i = 0; i < s->n_resizes; i++) {
                free(s->resizes[i].group);
                json_decref(s->resizes[i].record);
        }
        free(s->resizes);
        free(s->id_prefix);
        free(s);
        return NULL;
}

static int fail(char **ret_error, const char *fmt, ...) _printf_(2, 3);
static int fail(char **ret_error, const char *fmt, ...) {
        va_list ap;

        if (ret_error) {
                va_start(ap, fmt);
                if (vasprintf(ret_error, fmt, ap) < 0)
                        *ret_error = NULL;
                va_end(ap);
        }
        return -EBADMSG;
}

/* Keep the id counter ahead of every id seen: "x-prefix-N" -> N + 1. */
static void note_id(struct state *s, const char *id) {
        const char *dash = strrchr(id, '-');
        char *end;
        unsigned long n;

        if (!dash || !dash[1])
                return;
        errno = 0;
        n = strtoul(dash + 1, &end, 10);
        if (errno || *end || n == ULONG_MAX)
                return;
        if (n >= s->next_seq)
                s->next_seq = n + 1;
}

int state_new_id(struct state *s, char letter, char **ret) {
        char *id;

        if (asprintf(&id, "%c-%s-%lu", letter, s->id_prefix, s->next_seq) < 0)
                return -ENOMEM;
        s->next_seq++;
        *ret = id;
        return 0;
}

static size_t name_hash(const char *name) {
        uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a, then mixed so the low bits depend on all */

        for (; *name; name++)
                h = (h ^ (unsigned char) *name) * 0x100000001b3ULL;
        h ^= h >> 33;
        h *= 0xff51afd7ed558ccdULL;
        h ^= h >> 33;
        return (size_t) h;
}

/* The slot holding NAME, or the empty slot where it goes. */
static size_t index_slot(struct state_node *const *index, size_t size, const char *name) {
        size_t k = name_hash(name) & (size - 1);

        while (index[k] && strcmp(index[k]->name, name) != 0)
                k = (k + 1) & (size - 1);
        return k;
}

static int index_add(struct state *s, struct state_node *n) {
        if (2 * (s->n_nodes + 1) > s->index_size) {
                size_t size = s->index_size ? 2 * s->index_size : 64;
                struct state_node **index = calloc(size, sizeof(*index));

                if (!index)
                        return -ENOMEM;
                for (size_t i = 0; i < s->index_size; i++)
                        if (s->index[i])
                                index[index_slot(index, size, s->index[i]->name)] = s->index[i];
                free(s->index);
                s->index = index;
                s->index_size = size;
        }
        s->index[index_slot(s->index, s->index_size, n->name)] = n;
        return 0;
}

struct state_node *state_node_find(struct state *s, const char *name) {
        struct state_node *n;

        if (!name || s->index_size == 0)
                return NULL;
        n = s->index[index_slot(s->index, s->index_size, name)];
        return n;
}

static struct request_entry *request_find(struct state *s, const char *id) {
        struct request_entry key = { .id = (char *) id };
        void *p;

        if (!id)
                return NULL;
        p = tfind(&key, &s->requests, request_cmp);
        return p ? *(struct request_entry **) p : NULL;
}

static void request_unref(struct state *s, const char *id) {
        struct request_entry *r = request_find(s, id);

        if (!r || r->n_refs == 0)
                return;
        if (--r->n_refs == 0) {
                tdelete(r, &s->requests, request_cmp);
                s->n_request_entries--;
                request_entry_free(r);
        }
}

static const char *get_string(json_t *o, const char *key) {
        return json_string_value(json_object_get(o, key));
}

static int64_t get_time(json_t *o) {
        json_t *t = json_object_get(o, "time");
        return json_is_integer(t) ? (int64_t) json_integer_value(t) : 0;
}

static int apply_seq(struct state *s, json_t *rec, char **ret_error) {
        json_t *next = json_object_get(rec, "next");

        if (!json_is_integer(next) || json_integer_value(next) < 1)
                return fail(ret_error, "seq record without a positive \"next\"");
        if ((unsigned long) json_integer_value(next) > s->next_seq)
                s->next_seq = (unsigned long) json_integer_value(next);
        return 0;
}

static int apply_resize(struct state *s, json_t *rec, const char *id, char **ret_error) {
        const char *group = get_string(rec, "group");
        struct resize_entry *e = NULL;

        if (!group)
                return fail(ret_error, "resize request %s without a \"group\"", id);
        if (!json_is_integer(json_object_get(rec, "min")))
                return fail(ret_error, "resize request %s without an integer \"min\"", id);

        for (size_t i = 0; i < s->n_resizes; i++)
                if (strcmp(s->resizes[i].group, group) == 0)
                        e = &s->resizes[i];
        if (!e) {
                struct resize_entry *a = reallocarray(s->resizes, s->n_resizes + 1, sizeof(*a));
                char *g;

                if (!a)
                        return -ENOMEM;
                s->resizes = a;
                g = strdup(group);
                if (!g)
                        return -ENOMEM;
                e = &s->resizes[s->n_resizes++];
                *e = (struct resize_entry) { .group = g };
        }
        json_decref(e->record);
        e->record = json_incref(rec);
        return 0;
}

static int apply_request(struct state *s, json_t *rec, char **ret_error) {
        const char *id = get_string(rec, "id"), *type = get_string(rec, "type");
        struct request_entry *r;
        void *p;

        if (!id || !type)
                return fail(ret_error, "request record without \"id\" or \"type\"");
        note_id(s, id);
        s->n_requests_applied++;

        if (strcmp(type, "resize") == 0)
                return apply_resize(s, rec, id, ret_error);
        if (request_find(s, id))
                return 0; /* replayed twice: keep the first */
        /* A request that created no operation (all "already pending") is
         * only history: the journal has it, memory does not need it. */
        if (json_integer_value(json_object_get(rec, "operations")) <= 0)
                return 0;

        r = calloc(1, sizeof(*r));
        if (!r)
                return -ENOMEM;
        r->id = strdup(id);
        if (!r->id) {
                free(r);
                return -ENOMEM;
        }
        r->record = json_incref(rec);
        r->seq = s->apply_seq;
        p = tsearch(r, &s->requests, request_cmp);
        if (!p) {
                request_entry_free(r);
                return -ENOMEM;
        }
        s->n_request_entries++;
        return 0;
}

static int apply_op(struct state *s, json_t *rec, char **ret_error) {
        const char *id = get_string(rec, "id"), *node = get_string(rec, "node"),
                   *group = get_string(rec, "group"), *request = get_string(rec, "request");
        int kind, st;
        struct state_node *n;
        struct request_entry *r;
        char *new_id = NULL, *new_request = NULL, *new_group = NULL;

        if (!id || !node || !group)
                return fail(ret_error, "op record without \"id\", \"node\" or \"group\"");
        kind = state_op_kind_from_string(get_string(rec, "op"));
        if (kind < 0)
                return fail(ret_error, "op record %s with an unknown \"op\"", id);
        st = state_op_state_from_string(get_string(rec, "state"));
        if (st < 0)
                return fail(ret_error, "op record %s with an unknown \"state\"", id);
        note_id(s, id);

        new_id = strdup(id);
        new_group = strdup(group);
        new_request = request ? strdup(request) : NULL;
        if (!new_id || !new_group || (request && !new_request))
                goto oom;

        n = state_node_find(s, node);
        if (!n) {
                n = calloc(1, sizeof(*n));
                if (!n)
                        goto oom;
                n->name = strdup(node);
                if (!n->name || !tsearch(n, &s->nodes, node_cmp)) {
                        free(n->name);
                        free(n);
                        goto oom;
                }
                if (index_add(s, n) < 0) {
                        tdelete(n, &s->nodes, node_cmp);
                        free(n->name);
                        free(n);
                        goto oom;
                }
                s->n_nodes++;
        } else {
                s->n_in[n->op.state]--;
                request_unref(s, n->op.request_id);
                free(n->op.id);
                free(n->op.request_id);
                free(n->group);
        }

        n->group = new_group;
        n->step = mfree(n->step);
        n->note = mfree(n->note);
        n->op = (struct state_op) {
                .id = new_id,
                .kind = kind,
                .state = st,
                .request_id = new_request,
                .created = get_time(rec),
                .changed = json_is_integer(json_object_get(rec, "changed"))
                                   ? (int64_t) json_integer_value(json_object_get(rec, "changed"))
                                   : get_time(rec),
        };
        s->n_in[st]++;
        r = request_find(s, request);
        if (r)
                r->n_refs++;
        return 0;

oom:
        free(new_id);
        free(new_group);
        free(new_request);
        return -ENOMEM;
}

/* Replace *field with the record's KEY: a string sets it, null clears it,
 * absence keeps it. */
static int update_field(char **field, json_t *rec, const char *key, char **ret_error) {
        json_t *v = json_object_get(rec, key);
        char *copy;

        if (!v)
                return 0;
        if (json_is_null(v)) {
                *field = mfree(*field);
                return 0;
        }
        if (!json_is_string(v))
                return fail(ret_error, "node record with a non-string \"%s\"", key);
        copy = strdup(json_string_value(v));
        if (!copy)
                return -ENOMEM;
        free(*field);
        *field = copy;
        return 0;
}

static int apply_op_state(struct state *s, json_t *rec, char **ret_error) {
        const char *id = get_string(rec, "id"), *node = get_string(rec, "node");
        struct state_node *n;
        int st;

        if (!id || !node)
                return fail(ret_error, "op_state record without \"id\" or \"node\"");
        st = state_op_state_from_string(get_string(rec, "state"));
        if (st < 0)
                return fail(ret_error, "op_state record for %s with an unknown \"state\"", id);

        n = state_node_find(s, node);
        if (!n || strcmp(n->op.id, id) != 0)
                return 0; /* about an operation already replaced: nothing to change */
        s->n_in[n->op.state]--;
        s->n_in[st]++;
        n->op.state = st;
        n->op.changed = get_time(rec);
        return update_field(&n->note, rec, "note", ret_error);
}

static int apply_node(struct state *s, json_t *rec, char **ret_error) {
        const char *node = get_string(rec, "node"), *op = get_string(rec, "op");
        static const char *const keys[] = { "instance_id", "address", "step", "note" };
        struct state_node *n;
        char **fields[4];
        bool current;
        int r;

        if (!node)
                return fail(ret_error, "node record without \"node\"");
        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                json_t *v = json_object_get(rec, keys[i]);
                if (v && !json_is_string(v) && !json_is_null(v))
                        return fail(ret_error, "node record for %s with a non-string \"%s\"", node, keys[i]);
        }
        n = state_node_find(s, node);
        if (!n)
                return 0; /* a node with no operation: nothing to attach it to */
        /* The instance belongs to the node; the step and the note belong to
         * one operation and are dropped when that one was replaced. */
        current = !op || strcmp(op, n->op.id) == 0;
        fields[0] = &n->instance_id;
        fields[1] = &n->address;
        fields[2] = current ? &n->step : NULL;
        fields[3] = current ? &n->note : NULL;
        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                if (!fields[i])
                        continue;
                r = update_field(fields[i], rec, keys[i], ret_error);
                if (r < 0)
                        return r;
        }
        if (current && json_object_get(rec, "step"))
                n->step_changed = get_time(rec);
        return 0;
}

int state_apply(struct state *s, json_t *record, char **ret_error) {
        const char *kind;
        int r;

        if (!json_is_object(record))
                return fail(ret_error, "record is not a JSON object");
        kind = get_string(record, "kind");
        if (!kind)
                return fail(ret_error, "record without a \"kind\"");

        if (strcmp(kind, "seq") == 0)
                r = apply_seq(s, record, ret_error);
        else if (strcmp(kind, "request") == 0)
                r = apply_request(s, record, ret_error);
        else if (strcmp(kind, "op") == 0)
                r = apply_op(s, record, ret_error);
        else if (strcmp(kind, "op_state") == 0)
                r = apply_op_state(s, record, ret_error);
        else if (strcmp(kind, "node") == 0)
                r = apply_node(s, record, ret_error);
        else
                r = 0;
        if (r >= 0)
                s->apply_seq++;
        return r;
}

struct walk_ctx {
        state_node_fn fn;
        void *userdata;
        bool stop;
};

static void walk_node(const void *p, VISIT which, void *closure) {
        struct walk_ctx *w = closure;

        if (w->stop || (which != postorder && which != leaf))
                return;
        if (w->fn(*(struct state_node *const *) p, w->userdata) != 0)
                w->stop = true;
}

void state_foreach_node(struct state *s, state_node_fn fn, void *userdata) {
        struct walk_ctx w = { .fn = fn, .userdata = userdata };

        twalk_r(s->nodes, walk_node, &w);
}

size_t state_n_nodes(const struct state *s) {
        return s->n_nodes;
}

size_t state_n_nodes_in(const struct state *s, enum state_op_state st) {
        return (unsigned) st < _STATE_OP_STATE_MAX ? s->n_in[st] : 0;
}

size_t state_n_requests(const struct state *s) {
        return s->n_requests_applied;
}

int state_resize_min(const struct state *s, const char *group, unsigned *ret) {
        for (size_t i = 0; i < s->n_resizes; i++)
                if (strcmp(s->resizes[i].group, group) == 0) {
                        *ret = (unsigned) json_integer_value(json_object_get(s->resizes[i].record, "min"));
                        return 0;
                }
        return -ENOENT;
}

/* Requests in acceptance order, so compaction keeps the journal's order. */
struct collect_ctx {
        struct request_entry **v;
        size_t n;
};

static void collect_request(const void *p, VISIT which, void *closure) {
        struct collect_ctx *c = closure;

        if (which == postorder || which == leaf)
                c->v[c->n++] = *(struct request_entry *const *) p;
}

static int request_seq_cmp(const void *a, const void *b) {
        const struct request_entry *x = *(struct request_entry *const *) a,
                                   *y = *(struct request_entry *const *) b;
        return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int add_node_record(const struct state_node *n, void *userdata) {
        json_t *a = userdata, *o;

        o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I}",
                      "kind", "op",
                      "id", n->op.id,
                      "node", n->name,
                      "group", n->group,
                      "op", state_op_kind_to_string(n->op.kind),
                      "state", state_op_state_to_string(n->op.state),
                      "time", (json_int_t) n->op.created,
                      "changed", (json_int_t) n->op.changed);
        if (!o)
                return -ENOMEM;
        if (n->op.request_id && json_object_set_new(o, "request", json_string(n->op.request_id)) < 0) {
                json_decref(o);
                return -ENOMEM;
        }
        if (json_array_append_new(a, o) < 0)
                return -ENOMEM;
        if (!n->step && !n->instance_id && !n->address && !n->note)
                return 0;
        o = json_pack("{s:s, s:s, s:s, s:I}", "kind", "node", "node", n->name, "op", n->op.id,
                      "time", (json_int_t) n->step_changed);
        if (!o)
                return -ENOMEM;
        if ((n->step && json_object_set_new(o, "step", json_string(n->step)) < 0) ||
            (n->instance_id && json_object_set_new(o, "instance_id", json_string(n->instance_id)) < 0) ||
            (n->address && json_object_set_new(o, "address", json_string(n->address)) < 0) ||
            (n->note && json_object_set_new(o, "note", json_string(n->note)) < 0) ||
            json_array_append_new(a, o) < 0)
                return -ENOMEM;
        return 0;
}

struct node_records_ctx {
        json_t *array;
        int r;
};

static int add_node_record_cb(const struct state_node *n, void *userdata) {
        struct node_records_ctx *c = userdata;

        c->r = add_node_record(n, c->array);
        return c->r;
}

int state_live_records(struct state *s, json_t **ret_array) {
        _cleanup_free_ struct request_entry **v = NULL;
        struct collect_ctx c = {};
        struct node_records_ctx nc = {};
        json_t *a;

        a = json_array();
        if (!a)
                return -ENOMEM;
        if (json_array_append_new(a, json_pack("{s:s, s:I}", "kind", "seq",
                                                "next", (json_int_t) s->next_seq)) < 0)
                goto oom;

        v = calloc(s->n_request_entries ? s->n_request_entries : 1, sizeof(*v));
        if (!v)
                goto oom;
        c.v = v;
        twalk_r(s->requests, collect_request, &c);
        qsort(v, c.n, sizeof(*v), request_seq_cmp);
        for (size_t i = 0; i < c.n; i++)
                if (v[i]->n_refs > 0 && json_array_append(a, v[i]->record) < 0)
                        goto oom;
        for (size_t i = 0; i < s->n_resizes; i++)
                if (json_array_append(a, s->resizes[i].record) < 0)
                        goto oom;

        nc.array = a;
        state_foreach_node(s, add_node_record_cb, &nc);
        if (nc.r < 0)
                goto oom;

        *ret_array = a;
        return 0;
oom:
        json_decref(a);
        return -ENOMEM;
}

json_t *state_request_record(struct state *s, const char *id) {
        struct request_entry *r = request_find(s, id);

        return r ? r->record : NULL;
}
