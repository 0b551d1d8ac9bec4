/* state.c - in-memory state built only from journal records. */
#include "journal/state.h"

#include <limits.h>
#include <search.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "journal/records.h"
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

static const char *const lookup_what_names[_STATE_LOOKUP_WHAT_MAX] = {
        [STATE_LOOKUP_FLAVOR] = "flavor",
        [STATE_LOOKUP_IMAGE] = "image",
        [STATE_LOOKUP_NETWORK] = "network",
};

const char *state_lookup_what_to_string(enum state_lookup_what w) {
        return (unsigned) w < _STATE_LOOKUP_WHAT_MAX ? lookup_what_names[w] : NULL;
}

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
        unsigned min;
        json_t *record;    /* as accepted, for compaction */
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
        struct state_lookup *lookups;   /* a handful: one per name the groups use */
        size_t n_lookups;
        struct state_capacity *capacity; /* a handful: groups short now */
        size_t n_capacity;
        struct state_downmark *downmarks; /* failed nodes waiting for DOWN or their cooldown's end */
        size_t n_downmarks;
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
        for (size_t i = 0; i < s->n_lookups; i++) {
                free(s->lookups[i].name);
                free(s->lookups[i].id);
                free(s->lookups[i].scope);
        }
        free(s->lookups);
        for (size_t i = 0; i < s->n_capacity; i++) {
                free(s->capacity[i].group);
                free(s->capacity[i].reason);
        }
        free(s->capacity);
        for (size_t i = 0; i < s->n_downmarks; i++) {
                free(s->downmarks[i].node);
                free(s->downmarks[i].reason);
                free(s->downmarks[i].group);
        }
        free(s->downmarks);
        free(s->id_prefix);
        free(s);
        return NULL;
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

static int apply_seq(struct state *s, const struct record_seq *q) {
        if (q->next > s->next_seq)
                s->next_seq = (unsigned long) q->next;
        return 0;
}

static int apply_resize(struct state *s, json_t *json, const struct record_request *q) {
        struct resize_entry *e = NULL;

        for (size_t i = 0; i < s->n_resizes; i++)
                if (strcmp(s->resizes[i].group, q->group) == 0)
                        e = &s->resizes[i];
        if (!e) {
                struct resize_entry *a = reallocarray(s->resizes, s->n_resizes + 1, sizeof(*a));
                char *g;

                if (!a)
                        return -ENOMEM;
                s->resizes = a;
                g = strdup(q->group);
                if (!g)
                        return -ENOMEM;
                e = &s->resizes[s->n_resizes++];
                *e = (struct resize_entry) { .group = g };
        }
        json_decref(e->record);
        e->record = json_incref(json);
        e->min = q->min;
        return 0;
}

static int apply_request(struct state *s, json_t *json, const struct record_request *q) {
        struct request_entry *r;
        void *p;

        note_id(s, q->id);
        s->n_requests_applied++;

        if (q->type == RECORD_REQUEST_RESIZE)
                return apply_resize(s, json, q);
        if (request_find(s, q->id))
                return 0; /* replayed twice: keep the first */
        /* A request that created no operation (all "already pending") is
         * only history: the journal has it, memory does not need it. */
        if (q->operations <= 0)
                return 0;

        r = calloc(1, sizeof(*r));
        if (!r)
                return -ENOMEM;
        r->id = strdup(q->id);
        if (!r->id) {
                free(r);
                return -ENOMEM;
        }
        r->record = json_incref(json);
        r->seq = s->apply_seq;
        p = tsearch(r, &s->requests, request_cmp);
        if (!p) {
                request_entry_free(r);
                return -ENOMEM;
        }
        s->n_request_entries++;
        return 0;
}

static int apply_op(struct state *s, const struct record_op *q) {
        struct state_node *n;
        struct request_entry *r;
        char *new_id = NULL, *new_request = NULL, *new_group = NULL;

        note_id(s, q->id);
        new_id = strdup(q->id);
        new_group = strdup(q->group);
        new_request = q->request ? strdup(q->request) : NULL;
        if (!new_id || !new_group || (q->request && !new_request))
                goto oom;

        n = state_node_find(s, q->node);
        if (!n) {
                n = calloc(1, sizeof(*n));
                if (!n)
                        goto oom;
                n->name = strdup(q->node);
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
                .kind = q->op,
                .state = q->state,
                .request_id = new_request,
                .created = q->time,
                .changed = q->changed ? q->changed : q->time,
        };
        s->n_in[q->state]++;
        r = request_find(s, q->request);
        if (r)
                r->n_refs++;
        return 0;

oom:
        free(new_id);
        free(new_group);
        free(new_request);
        return -ENOMEM;
}

/* Replace *field as T says: a string sets it, null clears it, absence keeps it. */
static int update_field(char **field, struct record_text t) {
        char *copy;

        if (!t.present)
                return 0;
        if (!t.value) {
                *field = mfree(*field);
                return 0;
        }
        copy = strdup(t.value);
        if (!copy)
                return -ENOMEM;
        free(*field);
        *field = copy;
        return 0;
}

static int apply_op_state(struct state *s, const struct record_op_state *q) {
        struct state_node *n;

        n = state_node_find(s, q->node);
        if (!n || strcmp(n->op.id, q->id) != 0)
                return 0; /* about an operation already replaced: nothing to change */
        s->n_in[n->op.state]--;
        s->n_in[q->state]++;
        n->op.state = q->state;
        n->op.changed = q->time;
        return update_field(&n->note, q->note);
}

static int apply_node(struct state *s, const struct record_node *q) {
        struct state_node *n;
        bool current;
        int r;

        n = state_node_find(s, q->node);
        if (!n)
                return 0; /* a node with no operation: nothing to attach it to */
        /* The instance belongs to the node; the step and the note belong to
         * one operation and are dropped when that one was replaced. */
        current = !q->op || strcmp(q->op, n->op.id) == 0;
        r = update_field(&n->instance_id, q->instance_id);
        if (r >= 0)
                r = update_field(&n->address, q->address);
        if (r >= 0 && current)
                r = update_field(&n->step, q->step);
        if (r >= 0 && current)
                r = update_field(&n->note, q->note);
        if (r < 0)
                return r;
        if (current && q->step.present)
                n->step_changed = q->time;
        return 0;
}

static int apply_lookup(struct state *s, const struct record_lookup *q) {
        struct state_lookup *e = NULL;
        char *id = NULL, *scope = NULL;

        e = (struct state_lookup *) state_lookup_find(s, q->what, q->name);
        if (!q->id) {
                /* Forgotten: the next resume asks the cloud again. */
                if (e) {
                        free(e->name);
                        free(e->id);
                        free(e->scope);
                        memmove(e, e + 1, (size_t) (s->lookups + s->n_lookups - (e + 1)) * sizeof(*e));
                        s->n_lookups--;
                }
                return 0;
        }
        id = strdup(q->id);
        scope = q->scope ? strdup(q->scope) : NULL;
        if (!id || (q->scope && !scope))
                goto oom;
        if (!e) {
                struct state_lookup *a = reallocarray(s->lookups, s->n_lookups + 1, sizeof(*a));
                char *name;

                if (!a)
                        goto oom;
                s->lookups = a;
                name = strdup(q->name);
                if (!name)
                        goto oom;
                e = &s->lookups[s->n_lookups++];
                *e = (struct state_lookup) { .what = q->what, .name = name };
        }
        free(e->id);
        free(e->scope);
        e->id = id;
        e->scope = scope;
        e->time = q->time;
        return 0;
oom:
        free(id);
        free(scope);
        return -ENOMEM;
}

static struct state_capacity *capacity_find(struct state *s, const char *group) {
        for (size_t i = 0; i < s->n_capacity; i++)
                if (strcmp(s->capacity[i].group, group) == 0)
                        return &s->capacity[i];
        return NULL;
}

static int apply_capacity(struct state *s, const struct record_capacity *q) {
        struct state_capacity *e = capacity_find(s, q->group);
        char *reason = NULL;

        if (q->ended != RECORD_CAPACITY_SHORT) {
                if (e) {
                        free(e->group);
                        free(e->reason);
                        memmove(e, e + 1, (size_t) (s->capacity + s->n_capacity - (e + 1)) * sizeof(*e));
                        s->n_capacity--;
                }
                return 0;
        }
        if (q->reason && !(reason = strdup(q->reason)))
                return -ENOMEM;
        if (!e) {
                struct state_capacity *a = reallocarray(s->capacity, s->n_capacity + 1, sizeof(*a));
                char *group;

                if (a)
                        s->capacity = a;
                group = a ? strdup(q->group) : NULL;
                if (!group) {
                        free(reason);
                        return -ENOMEM;
                }
                e = &s->capacity[s->n_capacity++];
                *e = (struct state_capacity) { .group = group };
        }
        free(e->reason);
        e->reason = reason;
        e->since = q->since;
        e->until = q->until;
        e->failovers = q->failovers > UINT32_MAX ? UINT32_MAX : (unsigned) q->failovers;
        return 0;
}

static struct state_downmark *downmark_find(struct state *s, const char *node) {
        for (size_t i = 0; i < s->n_downmarks; i++)
                if (strcmp(s->downmarks[i].node, node) == 0)
                        return &s->downmarks[i];
        return NULL;
}

static int apply_downmark(struct state *s, const struct record_downmark *q) {
        struct state_downmark *e = downmark_find(s, q->node);
        char *reason = NULL, *group = NULL;

        if (!q->reason) {
                if (e) {
                        free(e->node);
                        free(e->reason);
                        free(e->group);
                        memmove(e, e + 1, (size_t) (s->downmarks + s->n_downmarks - (e + 1)) * sizeof(*e));
                        s->n_downmarks--;
                }
                return 0;
        }
        reason = strdup(q->reason);
        group = q->group ? strdup(q->group) : NULL;
        if (!reason || (q->group && !group))
                goto oom;
        if (!e) {
                struct state_downmark *a = reallocarray(s->downmarks, s->n_downmarks + 1, sizeof(*a));
                char *node;

                if (!a)
                        goto oom;
                s->downmarks = a;
                node = strdup(q->node);
                if (!node)
                        goto oom;
                e = &s->downmarks[s->n_downmarks++];
                *e = (struct state_downmark) { .node = node };
        }
        free(e->reason);
        free(e->group);
        e->reason = reason;
        e->group = group;
        e->time = q->time;
        return 0;
oom:
        free(reason);
        free(group);
        return -ENOMEM;
}

int state_apply(struct state *s, json_t *json, char **ret_error) {
        struct record rec;
        int r;

        r = record_decode(json, &rec, ret_error);
        if (r < 0)
                return r;
        if (r > 0)
                /* A kind a newer elasticd wrote: skip it. */
                return 0;
        switch (rec.kind) {
        case RECORD_SEQ: r = apply_seq(s, &rec.seq); break;
        case RECORD_REQUEST: r = apply_request(s, json, &rec.request); break;
        case RECORD_OP: r = apply_op(s, &rec.op); break;
        case RECORD_OP_STATE: r = apply_op_state(s, &rec.op_state); break;
        case RECORD_NODE: r = apply_node(s, &rec.node); break;
        case RECORD_LOOKUP: r = apply_lookup(s, &rec.lookup); break;
        case RECORD_CAPACITY: r = apply_capacity(s, &rec.capacity); break;
        case RECORD_DOWNMARK: r = apply_downmark(s, &rec.downmark); break;
        default: r = 0; break;   /* the journal's own */
        }
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

void state_foreach_lookup(struct state *s, state_lookup_fn fn, void *userdata) {
        for (size_t i = 0; i < s->n_lookups; i++)
                if (fn(&s->lookups[i], userdata) != 0)
                        return;
}

const struct state_lookup *state_lookup_find(const struct state *s, enum state_lookup_what what, const char *name) {
        for (size_t i = 0; name && i < s->n_lookups; i++)
                if (s->lookups[i].what == what && strcmp(s->lookups[i].name, name) == 0)
                        return &s->lookups[i];
        return NULL;
}

void state_foreach_capacity(struct state *s, state_capacity_fn fn, void *userdata) {
        for (size_t i = 0; i < s->n_capacity; i++)
                if (fn(&s->capacity[i], userdata) != 0)
                        return;
}

size_t state_n_capacity(const struct state *s) {
        return s->n_capacity;
}

void state_foreach_downmark(struct state *s, state_downmark_fn fn, void *userdata) {
        for (size_t i = 0; i < s->n_downmarks; i++)
                if (fn(&s->downmarks[i], userdata) != 0)
                        return;
}

size_t state_n_downmarks(const struct state *s) {
        return s->n_downmarks;
}

size_t state_n_lookups(const struct state *s) {
        return s->n_lookups;
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
                        *ret = s->resizes[i].min;
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

/* Append the record of R to the array A. */
static int append_record(json_t *a, const struct record *r) {
        json_t *o;
        int k;

        k = record_encode(r, &o, NULL);
        if (k < 0)
                return k;
        return json_array_append_new(a, o) < 0 ? -ENOMEM : 0;
}

static int add_node_record(const struct state_node *n, void *userdata) {
        json_t *a = userdata;
        int r;

        r = append_record(a, &(struct record) {
                .kind = RECORD_OP,
                .op = {
                        .id = n->op.id,
                        .node = n->name,
                        .group = n->group,
                        .op = n->op.kind,
                        .state = n->op.state,
                        .request = n->op.request_id,
                        .time = n->op.created,
                        .changed = n->op.changed,
                },
        });
        if (r < 0 || (!n->step && !n->instance_id && !n->address && !n->note))
                return r;
        return append_record(a, &(struct record) {
                .kind = RECORD_NODE,
                .node = {
                        .node = n->name,
                        .op = n->op.id,
                        .time = n->step_changed,
                        .step = RECORD_TEXT_IF(n->step),
                        .instance_id = RECORD_TEXT_IF(n->instance_id),
                        .address = RECORD_TEXT_IF(n->address),
                        .note = RECORD_TEXT_IF(n->note),
                },
        });
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
        int64_t now = (int64_t) time(NULL);
        json_t *a;

        a = json_array();
        if (!a)
                return -ENOMEM;
        if (append_record(a, &(struct record) { .kind = RECORD_SEQ, .seq.next = s->next_seq }) < 0)
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
        for (size_t i = 0; i < s->n_lookups; i++)
                if (append_record(a, &(struct record) {
                                .kind = RECORD_LOOKUP,
                                .lookup = {
                                        .what = s->lookups[i].what,
                                        .name = s->lookups[i].name,
                                        .id = s->lookups[i].id,
                                        .scope = s->lookups[i].scope,
                                        .time = s->lookups[i].time,
                                },
                        }) < 0)
                        goto oom;
        for (size_t i = 0; i < s->n_capacity; i++)
                if (s->capacity[i].until > now &&
                    append_record(a, &(struct record) {
                                .kind = RECORD_CAPACITY,
                                .capacity = {
                                        .group = s->capacity[i].group,
                                        .since = s->capacity[i].since,
                                        .until = s->capacity[i].until,
                                        .failovers = s->capacity[i].failovers,
                                        .reason = s->capacity[i].reason,
                                        .time = s->capacity[i].since,
                                },
                        }) < 0)
                        goto oom;
        for (size_t i = 0; i < s->n_downmarks; i++)
                if (append_record(a, &(struct record) {
                                .kind = RECORD_DOWNMARK,
                                .downmark = {
                                        .node = s->downmarks[i].node,
                                        .reason = s->downmarks[i].reason,
                                        .group = s->downmarks[i].group,
                                        .time = s->downmarks[i].time,
                                },
                        }) < 0)
                        goto oom;

        *ret_array = a;
        return 0;
oom:
        json_decref(a);
        return -ENOMEM;
}

size_t state_live_records_max(const struct state *s) {
        /* The id counter, the requests, the resizes, an op and a node record per node, the lookups,
         * the cooldowns, the DOWN marks. */
        return 1 + s->n_request_entries + s->n_resizes + 2 * s->n_nodes + s->n_lookups + s->n_capacity +
               s->n_downmarks;
}

int state_request_get(struct state *s, const char *id, struct record_request *ret) {
        struct request_entry *r = request_find(s, id);
        struct record rec;

        /* Kept only after record_decode accepted it. */
        if (!r || record_decode(r->record, &rec, NULL) != 0 || rec.kind != RECORD_REQUEST)
                return -ENOENT;
        *ret = rec.request;
        return 0;
}
