/* config.c - elasticd.yaml: YAML -> tree -> struct config, validation, printing. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <yaml.h>

#include "config-build.h"
#include "conf/config.h"
#include "util/fileread.h"
#include "util/hostlist.h"
#include "util/strv.h"

#define CONFIG_MAX_FILE_BYTES (1024 * 1024)
/* A private key, a clouds.yaml or secure.yaml: far below this. */
#define CONFIG_SECRET_FILE_MAX (1024 * 1024)
/* A file copied to nodes. */
#define CONFIG_SOURCE_FILE_MAX (64 * 1024 * 1024)
#define CONFIG_MAX_ERRORS 50
#define CONFIG_MAX_DEPTH 16          /* the schema needs 4 levels */
#define CONFIG_MAX_GROUPS 1024
#define CONFIG_MAX_LIST 1024          /* entries of any list */
#define CONFIG_MAX_NODES 262144       /* nodes over all groups */
#define CONFIG_MAX_DURATION (30u * 24 * 3600)
#define CONFIG_CLUSTER_MAX 60         /* the cluster name is also a Nova tag (60 chars) */
#define CONFIG_NAME_MAX 63
#define NOVA_STRING_MAX 255           /* names, metadata keys and values */
#define NOVA_METADATA_MAX 128         /* Nova's default metadata_items quota */
#define NOVA_USER_DATA_MAX 49149      /* 65535 bytes once base64-encoded */
#define SHOWN_LINE_MAX 160            /* source line excerpt in a message */

/* Metadata keys elasticd sets on every instance; users may not. */
#define RESERVED_METADATA_PREFIX "elasticd_"
#define N_RESERVED_METADATA 3         /* elasticd_cluster, elasticd_node, elasticd_op */

/* ---- diagnostics ------------------------------------------------------ */

struct diag {
        size_t line, column; /* 0-based, as libyaml marks */
        unsigned seq;
        char *msg;
};

struct group_seen;

struct parse {
        const char *name;
        const char *text;
        size_t len;
        struct diag *diags;
        size_t n_diags;
        size_t n_dropped;
        bool oom;
        bool reported_alias, reported_anchor;
        struct group_seen *group_seen; /* per group: where each key was, for cross checks */
};

_printf_(4, 0) static void diag_addv(struct parse *p, size_t line, size_t column, const char *fmt, va_list ap) {
        struct diag *d;
        char *msg;

        if (p->n_diags >= CONFIG_MAX_ERRORS) {
                p->n_dropped++;
                return;
        }
        if (vasprintf(&msg, fmt, ap) < 0) {
                p->oom = true;
                return;
        }
        d = realloc(p->diags, (p->n_diags + 1) * sizeof(*d));
        if (!d) {
                free(msg);
                p->oom = true;
                return;
        }
        p->diags = d;
        d[p->n_diags] = (struct diag){ .line = line, .column = column, .seq = (unsigned) p->n_diags, .msg = msg };
        p->n_diags++;
}

_printf_(3, 4) static void diag(struct parse *p, const yaml_mark_t *m, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        diag_addv(p, m ? m->line : 0, m ? m->column : 0, fmt, ap);
        va_end(ap);
}

static bool utf8_is_continuation(unsigned char c) {
        return (c & 0xC0) == 0x80;
}

/* Length of the line break at S, 0 if none. Like libyaml: CR LF, CR, LF,
 * and the Unicode breaks NEL, LS and PS. */
static size_t line_break_at(const char *s, const char *end) {
        const unsigned char *u = (const unsigned char *) s;
        size_t left = (size_t) (end - s);

        if (left == 0)
                return 0;
        if (u[0] == '\r')
                return left > 1 && u[1] == '\n' ? 2 : 1;
        if (u[0] == '\n')
                return 1;
        if (u[0] == 0xc2 && left > 1 && u[1] == 0x85)
                return 2;
        if (u[0] == 0xe2 && left > 2 && u[1] == 0x80 && (u[2] == 0xa8 || u[2] == 0xa9))
                return 3;
        return 0;
}

/* Locate 0-based LINE in the text: its start and length (without the break). */
static bool source_line(const struct parse *p, size_t line, const char **ret_start, size_t *ret_len) {
        const char *s = p->text, *end = p->text + p->len;

        for (size_t l = 0; l < line; l++) {
                size_t b;
                while (s < end && (b = line_break_at(s, end)) == 0)
                        s++;
                if (s >= end)
                        return false;
                s += b;
        }
        const char *e = s;
        while (e < end && line_break_at(e, end) == 0)
                e++;
        *ret_start = s;
        *ret_len = (size_t) (e - s);
        return true;
}

/* Byte offset of character COLUMN in a line (the line's length if past its end). */
static size_t column_offset(const char *s, size_t len, size_t column) {
        size_t i = 0;

        for (size_t c = 0; c < column && i < len; c++) {
                i++;
                while (i < len && utf8_is_continuation((unsigned char) s[i]))
                        i++;
        }
        return i;
}

/* "FILE:LINE:COL: message", then the line and a caret under the column
 * (tabs copied so the caret lines up). Long lines show a window around it. */
static void diag_render(const struct parse *p, const struct diag *d, FILE *f) {
        const char *s;
        size_t len;

        fprintf(f, "%s:%zu:%zu: %s\n", p->name, d->line + 1, d->column + 1, d->msg);
        if (p->len == 0 || !source_line(p, d->line, &s, &len))
                return;
        if (d->line == 0 && len >= 3 && memcmp(s, "\xef\xbb\xbf", 3) == 0) {
                /* libyaml does not count a byte order mark as a column */
                s += 3;
                len -= 3;
        }

        size_t at = column_offset(s, len, d->column), from = 0, to = len;
        if (at > SHOWN_LINE_MAX / 2)
                from = column_offset(s, len, d->column - SHOWN_LINE_MAX / 2);
        if (to - from > SHOWN_LINE_MAX)
                to = from + column_offset(s + from, len - from, SHOWN_LINE_MAX);

        /* the line as it is, but no control characters on the terminal */
        fputs(from > 0 ? "..." : "", f);
        for (size_t i = from; i < to; i++) {
                unsigned char c = (unsigned char) s[i];
                fputc((c < 0x20 && c != '\t') || c == 0x7f ? '?' : c, f);
        }
        fputs(to < len ? "...\n" : "\n", f);
        if (from > 0)
                fputs("   ", f);
        for (size_t i = from; i < at; i++) {
                if (utf8_is_continuation((unsigned char) s[i]))
                        continue;
                fputc(s[i] == '\t' ? '\t' : ' ', f);
        }
        fputs("^\n", f);
}

static int diag_cmp(const void *a, const void *b) {
        const struct diag *x = a, *y = b;

        if (x->line != y->line)
                return x->line < y->line ? -1 : 1;
        if (x->column != y->column)
                return x->column < y->column ? -1 : 1;
        return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int diag_format(struct parse *p, char **ret) {
        _cleanup_free_ char *buf = NULL;
        size_t size = 0;
        FILE *f;

        qsort(p->diags, p->n_diags, sizeof(*p->diags), diag_cmp);
        f = open_memstream(&buf, &size);
        if (!f)
                return -ENOMEM;
        for (size_t i = 0; i < p->n_diags; i++)
                diag_render(p, &p->diags[i], f);
        if (p->n_dropped > 0)
                fprintf(f, "%s: %zu more errors not shown\n", p->name, p->n_dropped);
        if (fclose(f) != 0)
                return -ENOMEM;
        *ret = TAKE_PTR(buf);
        return 0;
}

static void parse_done(struct parse *p) {
        for (size_t i = 0; i < p->n_diags; i++)
                free(p->diags[i].msg);
        free(p->diags);
        p->diags = NULL;
        p->n_diags = 0;
        p->group_seen = mfree(p->group_seen);
}

/* A value quoted for a message: escaped, cut after 60 bytes. */
#define QUOTE_MAX (60 * 4 + 16)
static const char *quote(char buf[static QUOTE_MAX], const char *s, size_t len) {
        size_t o = 0, i;

        buf[o++] = '"';
        /* at most 60 bytes, without cutting a UTF-8 sequence in half */
        for (i = 0; i < len && (i < 60 || utf8_is_continuation((unsigned char) s[i])); i++) {
                unsigned char c = (unsigned char) s[i];
                if (c == '"' || c == '\\') {
                        buf[o++] = '\\';
                        buf[o++] = (char) c;
                } else if (c < 0x20 || c == 0x7f) {
                        o += (size_t) snprintf(buf + o, 5, "\\x%02x", c);
                } else if (c == 0xc2 && i + 1 < len && (unsigned char) s[i + 1] <= 0x9f &&
                           (unsigned char) s[i + 1] >= 0x80) {
                        o += (size_t) snprintf(buf + o, 7, "\\u%04x", (unsigned char) s[++i]);
                } else
                        buf[o++] = (char) c;
        }
        buf[o++] = '"';
        if (i < len) {
                memcpy(buf + o, "...", 3);
                o += 3;
        }
        buf[o] = 0;
        return buf;
}

/* ---- YAML tree -------------------------------------------------------- */

enum ynode_type {
        YNODE_SCALAR,
        YNODE_SEQUENCE,
        YNODE_MAPPING,
};

struct ynode {
        enum ynode_type type;
        yaml_mark_t mark;
        char *value;            /* scalars */
        size_t len;
        bool plain;
        bool invalid;           /* already reported (alias, NUL byte): skip quietly */
        struct ynode **items;   /* sequence items; mapping keys and values alternating */
        size_t n_items;
};

static struct ynode *ynode_free(struct ynode *n) {
        if (!n)
                return NULL;
        for (size_t i = 0; i < n->n_items; i++)
                ynode_free(n->items[i]);
        free(n->items);
        free(n->value);
        return mfree(n);
}
DEFINE_TRIVIAL_CLEANUP_FUNC(struct ynode *, ynode_free);

static void yaml_parser_deletep(yaml_parser_t *yp) {
        yaml_parser_delete(yp);
}

/* A plain empty, "~" or "null" scalar: the key is there without a value. */
static bool ynode_is_null(const struct ynode *n) {
        if (n->type != YNODE_SCALAR || !n->plain)
                return false;
        return n->len == 0 || strcmp(n->value, "~") == 0 || strcmp(n->value, "null") == 0 ||
               strcmp(n->value, "Null") == 0 || strcmp(n->value, "NULL") == 0;
}

static const char *ynode_kind(const struct ynode *n, char buf[static QUOTE_MAX + 16]) {
        char q[QUOTE_MAX];

        switch (n->type) {
        case YNODE_SEQUENCE:
                return "a sequence";
        case YNODE_MAPPING:
                return "a mapping";
        case YNODE_SCALAR:
                if (ynode_is_null(n))
                        return "nothing";
                snprintf(buf, QUOTE_MAX + 16, "%s", quote(q, n->value, n->len));
                return buf;
        }
        return "?";
}

static int syntax_error(struct parse *p, const yaml_parser_t *yp) {
        if (yp->error == YAML_MEMORY_ERROR)
                return -ENOMEM;

        if (yp->error == YAML_READER_ERROR) {
                /* the reader reports a byte offset, not a mark */
                yaml_mark_t m = {};
                const char *s = p->text, *end = p->text + (yp->problem_offset < p->len ? yp->problem_offset : p->len);
                while (s < end) {
                        size_t b = line_break_at(s, end);
                        if (b > 0) {
                                m.line++;
                                m.column = 0;
                                s += b;
                                continue;
                        }
                        m.column += !utf8_is_continuation((unsigned char) *s);
                        s++;
                }
                if (yp->problem_value >= 0)
                        diag(p, &m, "invalid input: %s (byte 0x%02X)%s", yp->problem, (unsigned) yp->problem_value,
                             strstr(yp->problem, "UTF-8") ? "; the file must be UTF-8 text" : "");
                else
                        diag(p, &m, "invalid input: %s", yp->problem);
                return -EINVAL;
        }

        const yaml_mark_t *m = &yp->problem_mark;
        const char *s;
        size_t len;
        if (source_line(p, m->line, &s, &len)) {
                size_t at = column_offset(s, len, m->column);
                if (at < len && s[at] == '\t') {
                        diag(p, m, "tab character: YAML must be indented with spaces");
                        return -EINVAL;
                }
        }
        if (yp->context)
                diag(p, m, "invalid YAML: %s (%s that starts at line %zu, column %zu)", yp->problem,
                     yp->context, yp->context_mark.line + 1, yp->context_mark.column + 1);
        else
                diag(p, m, "invalid YAML: %s", yp->problem ? yp->problem : "unknown error");
        return -EINVAL;
}

static int tree_next(struct parse *p, yaml_parser_t *yp, yaml_event_t *ev) {
        if (!yaml_parser_parse(yp, ev))
                return syntax_error(p, yp);
        return 0;
}

static int ynode_push(struct ynode *parent, struct ynode *child) {
        if ((parent->n_items & (parent->n_items - 1)) == 0) {
                size_t n = parent->n_items ? parent->n_items * 2 : 4;
                struct ynode **v = realloc(parent->items, n * sizeof(*v));
                if (!v)
                        return -ENOMEM;
                parent->items = v;
        }
        parent->items[parent->n_items++] = child;
        return 0;
}

/* Build a node from EV (consumed) and, for collections, the events up to its end. */
static int tree_node(struct parse *p, yaml_parser_t *yp, yaml_event_t *ev, unsigned depth, struct ynode **ret) {
        _cleanup_(ynode_freep) struct ynode *n = NULL;
        const unsigned char *anchor = NULL;
        yaml_event_type_t end_type = YAML_NO_EVENT;
        int r;

        n = calloc(1, sizeof(*n));
        if (!n) {
                yaml_event_delete(ev);
                return -ENOMEM;
        }
        n->mark = ev->start_mark;

        switch (ev->type) {
        case YAML_ALIAS_EVENT:
                if (!p->reported_alias)
                        diag(p, &n->mark, "aliases (*%s) are not supported: write the value out", ev->data.alias.anchor);
                p->reported_alias = true;
                n->type = YNODE_SCALAR;
                n->invalid = true;
                n->value = strdup(""); /* scalars always have a value */
                if (!n->value) {
                        yaml_event_delete(ev);
                        return -ENOMEM;
                }
                break;
        case YAML_SCALAR_EVENT:
                anchor = ev->data.scalar.anchor;
                n->type = YNODE_SCALAR;
                n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
                n->len = ev->data.scalar.length;
                if (memchr(ev->data.scalar.value, 0, n->len)) {
                        diag(p, &n->mark, "a value must not contain a NUL character");
                        n->invalid = true;
                        n->len = 0;
                }
                n->value = strndup((const char *) ev->data.scalar.value, n->len);
                if (!n->value) {
                        yaml_event_delete(ev);
                        return -ENOMEM;
                }
                break;
        case YAML_SEQUENCE_START_EVENT:
                anchor = ev->data.sequence_start.anchor;
                n->type = YNODE_SEQUENCE;
                end_type = YAML_SEQUENCE_END_EVENT;
                break;
        case YAML_MAPPING_START_EVENT:
                anchor = ev->data.mapping_start.anchor;
                n->type = YNODE_MAPPING;
                end_type = YAML_MAPPING_END_EVENT;
                break;
        default:
                diag(p, &n->mark, "invalid YAML: unexpected event");
                yaml_event_delete(ev);
                return -EINVAL;
        }
        if (anchor && !p->reported_anchor) {
                diag(p, &n->mark, "anchors (&%s) are not supported: write the value out", anchor);
                p->reported_anchor = true;
        }
        yaml_event_delete(ev);

        if (end_type != YAML_NO_EVENT) {
                if (depth >= CONFIG_MAX_DEPTH) {
                        diag(p, &n->mark, "nested deeper than %d levels", CONFIG_MAX_DEPTH);
                        return -EINVAL;
                }
                for (;;) {
                        yaml_event_t child_ev;
                        struct ynode *child;

                        r = tree_next(p, yp, &child_ev);
                        if (r < 0)
                                return r;
                        if (child_ev.type == end_type) {
                                yaml_event_delete(&child_ev);
                                break;
                        }
                        r = tree_node(p, yp, &child_ev, depth + 1, &child);
                        if (r < 0)
                                return r;
                        r = ynode_push(n, child);
                        if (r < 0) {
                                ynode_free(child);
                                return r;
                        }
                }
        }

        *ret = TAKE_PTR(n);
        return 0;
}

static int tree_load(struct parse *p, struct ynode **ret) {
        _cleanup_(yaml_parser_deletep) yaml_parser_t yp;
        _cleanup_(ynode_freep) struct ynode *root = NULL;
        yaml_event_t ev;
        int r;

        if (!yaml_parser_initialize(&yp))
                return -ENOMEM;
        yaml_parser_set_input_string(&yp, (const unsigned char *) p->text, p->len);

        r = tree_next(p, &yp, &ev); /* stream start */
        if (r < 0)
                return r;
        yaml_event_delete(&ev);

        r = tree_next(p, &yp, &ev);
        if (r < 0)
                return r;
        if (ev.type != YAML_DOCUMENT_START_EVENT) {
                diag(p, NULL, "empty configuration: expected a mapping with at least cluster, cloud and groups");
                yaml_event_delete(&ev);
                return -EINVAL;
        }
        yaml_event_delete(&ev);

        r = tree_next(p, &yp, &ev);
        if (r < 0)
                return r;
        r = tree_node(p, &yp, &ev, 0, &root);
        if (r < 0)
                return r;

        r = tree_next(p, &yp, &ev); /* document end */
        if (r < 0)
                return r;
        yaml_event_delete(&ev);

        r = tree_next(p, &yp, &ev);
        if (r < 0)
                return r;
        if (ev.type != YAML_STREAM_END_EVENT) {
                diag(p, &ev.start_mark, "a second YAML document: the configuration is one document");
                yaml_event_delete(&ev);
                return -EINVAL;
        }
        yaml_event_delete(&ev);

        *ret = TAKE_PTR(root);
        return 0;
}

/* ---- free ------------------------------------------------------------- */

static void group_done(struct config_group *g) {
        free(g->name);
        free(g->nodes);
        free(g->flavor);
        free(g->image);
        strv_free(g->networks);
        strv_free(g->security_groups);
        free(g->key_name);
        for (size_t i = 0; i < g->n_metadata; i++) {
                free(g->metadata[i].key);
                free(g->metadata[i].value);
        }
        free(g->metadata);
        free(g->user_data);
        free(g->user_data_content);
        free(g->availability_zone);
        free(g->gres);
        strv_free(g->features);
        if (g->ssh) {
                free(g->ssh->user);
                free(g->ssh->private_key);
                secret_free(g->ssh->private_key_data, g->ssh->private_key_len);
                for (size_t i = 0; i < g->ssh->n_files; i++) {
                        free(g->ssh->files[i].src);
                        free(g->ssh->files[i].dest);
                        free(g->ssh->files[i].owner);
                        free(g->ssh->files[i].group);
                }
                free(g->ssh->files);
                strv_free(g->ssh->commands);
                free(g->ssh);
        }
        free(g->node_names);           /* strv_pack'ed */
}

struct config *config_ref(const struct config *c) {
        /* A loaded config is never changed, only shared: the count is the one
         * thing that moves. */
        struct config *m = (struct config *) c;

        if (m)
                m->n_extra_refs++;
        return m;
}

struct config *config_free(struct config *c) {
        if (!c)
                return NULL;
        if (c->n_extra_refs > 0) {
                c->n_extra_refs--;
                return NULL;
        }
        free(c->path);
        free(c->cluster);
        free(c->cloud);
        free(c->clouds_file);
        free(c->state_dir);
        free(c->socket_path);
        free(c->socket_group);
        free(c->slurm_conf);
        free(c->slurm_user);
        free(c->suspend_exc_file);
        free(c->admin_group);
        free(c->metrics_listen);
        strv_free(c->reimage_words);
        free(c->endpoints.compute);
        free(c->endpoints.image);
        free(c->endpoints.identity);
        for (size_t i = 0; i < c->n_groups; i++)
                group_done(&c->groups[i]);
        free(c->groups);
        free(c->nodes);
        return mfree(c);
}

/* ---- defaults --------------------------------------------------------- */

/* A vector holding copies of N strings. */
static char **strv_from(const char *const *items, size_t n) {
        char **v = calloc(n + 1, sizeof(char *));

        if (!v)
                return NULL;
        for (size_t i = 0; i < n; i++) {
                v[i] = strdup(items[i]);
                if (!v[i])
                        return strv_free(v);
        }
        return v;
}

static struct config *config_new(const char *path) {
        _cleanup_(config_freep) struct config *c = calloc(1, sizeof(*c));
        static const char *const reimage[] = { "reimage", "rebuild" };

        if (!c)
                return NULL;
        c->path = strdup(path);
        c->state_dir = strdup(ELASTICD_STATE_DIR);
        c->socket_path = strdup(ELASTICD_SOCKET_PATH);
        c->socket_mode = 0660;
        c->slurm_conf = strdup("/etc/slurm/slurm.conf");
        c->slurm_user = strdup("slurm");
        c->reimage_words = strv_from(reimage, ELEMENTSOF(reimage));
        if (!c->path || !c->state_dir || !c->socket_path || !c->slurm_conf || !c->slurm_user || !c->reimage_words)
                return NULL;

        c->limits = (struct config_limits){
                .max_frame_bytes = 1024 * 1024,
                .max_clients = 64,
                .reserved_clients = UINT_MAX, /* unset: max_clients / 8, see check_limits */
                .max_clients_per_uid = 8,
                .frame_timeout_s = 5,
                .client_idle_timeout_s = 10,
                .max_queued_requests = 1024,
                .max_hostlist_nodes = 65536,
                .api_concurrency = 16,
                .api_rate = 20,
                .api_burst = 40,
                .api_timeout_s = 60,
                .create_timeout_s = 120,
                .active_timeout_s = 900,
                .resume_timeout_s = 1200,
                .reconcile_interval_s = 60,
                .orphan_grace_s = 600,
                .capacity_cooldown_s = 600,
        };
        return TAKE_PTR(c);
}

static int group_init(struct config_group *g) {
        static const char *const autonet[] = { "auto" };

        *g = (struct config_group){};
        g->networks = strv_from(autonet, 1);
        g->security_groups = strv_from(NULL, 0);
        g->features = strv_from(NULL, 0);
        g->memory_margin_mb = 512;
        if (!g->networks || !g->security_groups || !g->features)
                return -ENOMEM;
        return 0;
}

/* ---- schema ----------------------------------------------------------- */

struct field;
typedef void (*field_parse_t)(struct parse *p, const struct field *f, const struct ynode *v,
                              const char *path, void *dst);

struct field {
        const char *key;
        field_parse_t parse;
        size_t offset;
        bool required;
        unsigned long long min, max;   /* numbers; max length for strings */
        const struct field *sub;       /* nested mapping */
        size_t n_sub;
};

/* What parsing one mapping saw: key and value node of each field. */
struct seen {
        const struct ynode *key;
        const struct ynode *value;
};

static bool expect_scalar(struct parse *p, const struct ynode *v, const char *path, const char *what) {
        char k[QUOTE_MAX + 16];

        if (v->invalid)
                return false;
        if (v->type == YNODE_SCALAR)
                return true;
        diag(p, &v->mark, "expected %s for %s, got %s", what, path, ynode_kind(v, k));
        return false;
}

static size_t utf8_length(const char *s, size_t len) {
        size_t n = 0;

        for (size_t i = 0; i < len; i++)
                n += !utf8_is_continuation((unsigned char) s[i]);
        return n;
}

/* C0 and C1 controls, and U+2028/U+2029: YAML 1.1 reads the latter and NEL
 * (U+0085) as line breaks, so they would not survive a print and re-parse. */
static bool has_control(const char *s, size_t len) {
        const unsigned char *u = (const unsigned char *) s;

        for (size_t i = 0; i < len; i++) {
                if (u[i] < 0x20 || u[i] == 0x7f)
                        return true;
                if (u[i] == 0xc2 && i + 1 < len && u[i + 1] >= 0x80 && u[i + 1] <= 0x9f)
                        return true;
                if (u[i] == 0xe2 && i + 2 < len && u[i + 1] == 0x80 && (u[i + 2] == 0xa8 || u[i + 2] == 0xa9))
                        return true;
        }
        return false;
}

/* A non-empty single-line string of at most MAX characters. */
static bool check_text(struct parse *p, const struct ynode *v, const char *path, size_t max) {
        char q[QUOTE_MAX];

        if (v->len == 0) {
                diag(p, &v->mark, "%s must not be empty", path);
                return false;
        }
        if (has_control(v->value, v->len)) {
                diag(p, &v->mark, "%s must not contain control characters (newline, tab, ...), got %s", path,
                     quote(q, v->value, v->len));
                return false;
        }
        if (utf8_length(v->value, v->len) > max) {
                diag(p, &v->mark, "%s is longer than %zu characters", path, max);
                return false;
        }
        return true;
}

static bool check_charset(struct parse *p, const struct ynode *v, const char *path, const char *extra, const char *what) {
        char q[QUOTE_MAX];

        for (size_t i = 0; i < v->len; i++) {
                char c = v->value[i];
                if (!(isascii(c) && isalnum(c)) && !strchr(extra, c)) {
                        diag(p, &v->mark, "%s may contain only %s, got %s", path, what, quote(q, v->value, v->len));
                        return false;
                }
        }
        return true;
}

static void set_string(struct parse *p, char **dst, const struct ynode *v) {
        char *s = strdup(v->value);

        if (!s) {
                p->oom = true;
                return;
        }
        free(*dst);
        *dst = s;
}

static void parse_string(struct parse *p, const struct field *f, const struct ynode *v, const char *path, void *dst) {
        if (expect_scalar(p, v, path, "a string") && check_text(p, v, path, f->max ? f->max : NOVA_STRING_MAX))
                set_string(p, dst, v);
}

static void parse_cluster(struct parse *p, const struct field *f, const struct ynode *v, const char *path, void *dst) {
        if (expect_scalar(p, v, path, "a name") && check_text(p, v, path, CONFIG_CLUSTER_MAX) &&
            check_charset(p, v, path, "_.-", "letters, digits, '_', '.' and '-'"))
                set_string(p, dst, v);
}

static void parse_group_name(struct parse *p, const struct field *f, const struct ynode *v, const char *path, void *dst) {
        if (expect_scalar(p, v, path, "a name") && check_text(p, v, path, CONFIG_NAME_MAX) &&
            check_charset(p, v, path, "_-", "letters, digits, '_' and '-'"))
                set_string(p, dst, v);
}

/* A user or group name (or a numeric id). */
static void parse_account(struct parse *p, const struct field *f, const struct ynode *v, const char *path, void *dst) {
        if (expect_scalar(p, v, path, "a user or group name") && check_text(p, v, path, 32) &&
            check_charset(p, v, path, "_.-", "letters, digits, '_', '.' and '-'"))
                set_string(p, dst, v);
}

static void parse_path(struct parse *p, const struct field *f, const struct ynode *v, const char *path, void *dst) {
        char q[QUOTE_MAX];

        if (!expect_scalar(p, v, path, "an absolute path") || !check_text(p, v, path, PATH_MAX - 1))
                return;
        if (v->value[0] != '/') {
                diag(p, &v->mark, "expected an absolute path for %s, got %s", path, quote(q, v->value, v->len));
                return;
        }
        set_string(p, dst, v);
}

static void parse_url(struct parse *p, const struct field *f, const struct ynode *v, const char *path, void *dst) {
        char q[QUOTE_MAX];

        if (!expect_scalar(p, v, path, "a URL") || !check_text(p, v, path, 1024))
                return;
        if ((strncmp(v->value, "https://", 8) != 0 && strncmp(v->value, "http://", 7) != 0) ||
            strpbrk(v->value, " \"<>\\^`{|}")) {
                diag(p, &v->mark, "expected an http:// or https:// URL for %s, got %s", path, quote(q, v->value, v->len));
                return;
        }
        set_string(p, dst, v);
}

/* "127.0.0.1:9464": a loopback IPv4 address and a port (metrics are not
 * authenticated, so only this host may read them). */
static void parse_loopback_listen(struct parse *p, const struct field *f, const struct ynode *v, const char *path,
                                  void *dst) {
        char q[QUOTE_MAX];
        unsigned a, b, c, d, port;
        int n = -1;

        if (!expect_scalar(p, v, path, "an address:port") || !check_text(p, v, path, 32))
                return;
        if (sscanf(v->value, "%3u.%3u.%3u.%3u:%5u%n", &a, &b, &c, &d, &port, &n) != 5 || n != (int) v->len ||
            a != 127 || b > 255 || c > 255 || d > 255 || port == 0 || port > 65535 || strchr(v->value, '+') ||
            strchr(v->value, ' ')) {
                diag(p, &v->mark, "expected a loopback address and port such as \"127.0.0.1:9464\" for %s, got %s",
                     path, quote(q, v->value, v->len));
                return;
        }
        set_string(p, dst, v);
}

static void parse_bool(struct parse *p, const struct field *f, const struct ynode *v, const char *path, void *dst) {
        char q[QUOTE_MAX];

        if (!expect_scalar(p, v, path, "true or false"))
                return;
        if (strcmp(v->value, "true") == 0 || strcmp(v->value, "True") == 0 || strcmp(v->value, "TRUE") == 0)
                *(bool *) dst = true;
        else if (strcmp(v->value, "false") == 0 || strcmp(v->value, "False") == 0 || strcmp(v->value, "FALSE") == 0)
                *(bool *) dst = false;
        else
                diag(p, &v->mark, "expected true or false for %s, got %s", path, quote(q, v->value, v->len));
}

/* Decimal digits only; -ERANGE past ULLONG_MAX. */
static int parse_digits(const char *s, size_t len, unsigned long long *ret) {
        unsigned long long n = 0;

        if (len == 0)
                return -EINVAL;
        for (size_t i = 0; i < len; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return -EINVAL;
                if (n > (ULLONG_MAX - (unsigned) (s[i] - '0')) / 10)
                        return -ERANGE;
                n = n * 10 + (unsigned) (s[i] - '0');
        }
        *ret = n;
        return 0;
}

/* An integer within [f->min, f->max], or -1 after reporting. */
static bool parse_integer(struct parse *p, const struct field *f, const struct ynode *v, const char *path,
                          unsigned long long *ret) {
        const char *what = f->min > 0 ? "a positive integer" : "a non-negative integer";
        unsigned long long n = 0;
        char q[QUOTE_MAX];
        int r;

        if (!expect_scalar(p, v, path, what))
                return false;
        r = parse_digits(v->value, v->len, &n);
        if (r == -EINVAL) {
                diag(p, &v->mark, "expected %s for %s, got %s", what, path, quote(q, v->value, v->len));
                return false;
        }
        if (r == -ERANGE || n < f->min || n > f->max) {
                diag(p, &v->mark, "%s must be between %llu and %llu, got %s", path, f->min, f->max,
                     quote(q, v->value, v->len));
                return false;
        }
        *ret = n;
        return true;
}

static void parse_unsigned(struct parse *p, const struct field *f, const struct ynode *v, const char *path, void *dst) {
        unsigned long long n;

        if (parse_integer(p, f, v, path, &n))
                *(unsigned *) dst = (unsigned) n;
}

static void parse_size(struct parse *p, const struct field *f, const struct ynode *v, const char *path, void *dst) {
        unsigned long long n;

        if (parse_integer(p, f, v, path, &n))
                *(size_t *) dst = (size_t) n;
}

static void format_duration(char buf[static 32], unsigned long long s) {
        if (s > 0 && s % 3600 == 0)
                snprintf(buf, 32, "%lluh", s / 3600);
        else if (s > 0 && s % 60 == 0)
                snprintf(buf, 32, "%llum", s / 60);
        else
                snprintf(buf, 32, "%llus", s);
}

/* Seconds, or a number with a unit: "90", "90s", "15m", "2h". */
static void parse_duration(struct parse *p, const struct field *f, const struct ynode *v, const char *path, void *dst) {
        unsigned long long n = 0, unit = 1;
        char q[QUOTE_MAX], lo[32], hi[32];
        size_t len;
        int r;

        if (!expect_scalar(p, v, path, "a duration"))
                return;
        len = v->len;
        if (len > 0) {
                switch (v->value[len - 1]) {
                case 'h':
                        unit = 3600;
                        len--;
                        break;
                case 'm':
                        unit = 60;
                        len--;
                        break;
                case 's':
                        len--;
                        break;
                }
        }
        r = parse_digits(v->value, len, &n);
        if (r == -EINVAL) {
                diag(p, &v->mark, "expected a duration for %s (seconds, or a number with s, m or h such as \"90s\" or \"15m\"), got %s",
                     path, quote(q, v->value, v->len));
                return;
        }
        if (r == -ERANGE || n > ULLONG_MAX / unit || n * unit < f->min || n * unit > f->max) {
                format_duration(lo, f->min);
                format_duration(hi, f->max);
                diag(p, &v->mark, "%s must be between %s and %s, got %s", path, lo, hi, quote(q, v->value, v->len));
                return;
        }
        *(unsigned *) dst = (unsigned) (n * unit);
}

/* Calls per second: a positive decimal number, "20" or "0.5". */
static void parse_rate(struct parse *p, const struct field *f, const struct ynode *v, const char *path, void *dst) {
        char q[QUOTE_MAX];
        size_t dots = 0, digits = 0;
        double d;

        if (!expect_scalar(p, v, path, "a positive number"))
                return;
        for (size_t i = 0; i < v->len; i++) {
                if (v->value[i] == '.')
                        dots++;
                else if (v->value[i] >= '0' && v->value[i] <= '9')
                        digits++;
                else
                        digits = SIZE_MAX;
        }
        if (digits == 0 || digits == SIZE_MAX || dots > 1 || v->len > 20) {
                diag(p, &v->mark, "expected a positive number for %s, got %s", path, quote(q, v->value, v->len));
                return;
        }
        d = strtod(v->value, NULL);
        if (!(d >= 0.001 && d <= (double) f->max)) {
                diag(p, &v->mark, "%s must be between 0.001 and %llu, got %s", path, f->max, quote(q, v->value, v->len));
                return;
        }
        *(double *) dst = d;
}

/* Octal permission bits for the socket, "0660" (or 660, 0o660). */
static void parse_mode(struct parse *p, const struct field *f, const struct ynode *v, const char *path, void *dst) {
        const char *s;
        char q[QUOTE_MAX];
        unsigned mode = 0;
        size_t len;

        if (!expect_scalar(p, v, path, "an octal file mode"))
                return;
        s = v->value;
        len = v->len;
        if (len > 2 && s[0] == '0' && s[1] == 'o') {
                s += 2;
                len -= 2;
        }
        bool ok = len > 0 && len <= 5;
        for (size_t i = 0; ok && i < len; i++) {
                if (s[i] < '0' || s[i] > '7')
                        ok = false;
                else
                        mode = mode * 8 + (unsigned) (s[i] - '0');
        }
        if (!ok) {
                diag(p, &v->mark, "expected an octal file mode such as \"0660\" for %s, got %s", path, quote(q, v->value, v->len));
                return;
        }
        if (mode & ~0777u) {
                diag(p, &v->mark, "%s %04o has setuid, setgid or sticky bits: use permission bits only, such as \"0660\"", path, mode);
                return;
        }
        if (mode & 0007) {
                diag(p, &v->mark, "%s %04o gives every local user access to elasticd: remove the bits for others, such as \"0660\"", path, mode);
                return;
        }
        if ((mode & 0600) != 0600) {
                diag(p, &v->mark, "%s %04o must give the owner read and write access, such as \"0660\"", path, mode);
                return;
        }
        *(unsigned *) dst = mode;
}

/* A sequence of non-empty strings into a NULL-terminated array. */
static char **parse_string_list(struct parse *p, const struct ynode *v, const char *path) {
        char item[256];
        bool ok = true;
        char **list;

        if (v->n_items > CONFIG_MAX_LIST) {
                diag(p, &v->mark, "%s has more than %d entries", path, CONFIG_MAX_LIST);
                return NULL;
        }
        list = calloc(v->n_items + 1, sizeof(char *));
        if (!list) {
                p->oom = true;
                return NULL;
        }
        for (size_t i = 0; i < v->n_items; i++) {
                const struct ynode *it = v->items[i];

                snprintf(item, sizeof(item), "%s[%zu]", path, i);
                if (!expect_scalar(p, it, item, "a string") || !check_text(p, it, item, NOVA_STRING_MAX)) {
                        ok = false;
                        continue;
                }
                list[i] = strdup(it->value);
                if (!list[i]) {
                        p->oom = true;
                        ok = false;
                        break;
                }
        }
        if (!ok) {
                for (size_t i = 0; i < v->n_items; i++)
                        free(list[i]);
                return mfree(list);
        }
        return list;
}

static void set_list(char ***dst, char **list) {
        strv_free(*dst);
        *dst = list;
}

/* A sequence of strings into the strv at DST; WHAT names it in the error. */
static void parse_list(struct parse *p, const struct ynode *v, const char *path, void *dst, const char *what) {
        char k[QUOTE_MAX + 16];
        char **list;

        if (v->invalid)
                return;
        if (v->type != YNODE_SEQUENCE) {
                diag(p, &v->mark, "expected %s for %s, got %s", what, path, ynode_kind(v, k));
                return;
        }
        list = parse_string_list(p, v, path);
        if (list)
                set_list(dst, list);
}

static void parse_words(struct parse *p, const struct field *f, const struct ynode *v, const char *path, void *dst) {
        parse_list(p, v, path, dst, "a sequence of strings");
}

/* A list of networks, or "none" or "auto" alone. */
static void parse_networks(struct parse *p, const struct field *f, const struct ynode *v, const char *path, void *dst) {
        char k[QUOTE_MAX + 16], q[QUOTE_MAX];
        char **list;
        size_t n;

        if (v->invalid)
                return;
        if (v->type == YNODE_SCALAR) {
                if (strcmp(v->value, "none") != 0 && strcmp(v->value, "auto") != 0) {
                        diag(p, &v->mark, "expected a sequence of networks, \"none\" or \"auto\" for %s, got %s; write a single network as [%s]",
                             path, quote(q, v->value, v->len), v->value);
                        return;
                }
                const char *one[] = { v->value };
                list = strv_from(one, 1);
                if (!list)
                        p->oom = true;
                else
                        set_list(dst, list);
                return;
        }
        if (v->type != YNODE_SEQUENCE) {
                diag(p, &v->mark, "expected a sequence of networks, \"none\" or \"auto\" for %s, got %s", path, ynode_kind(v, k));
                return;
        }
        list = parse_string_list(p, v, path);
        if (!list)
                return;
        n = strv_length(list);
        if (n == 0) {
                diag(p, &v->mark, "%s is empty: list networks, or write \"none\" or \"auto\"", path);
                strv_free(list);
                return;
        }
        for (size_t i = 0; n > 1 && i < n; i++)
                if (strcmp(list[i], "none") == 0 || strcmp(list[i], "auto") == 0) {
                        diag(p, &v->items[i]->mark, "\"%s\" must be the only entry of %s", list[i], path);
                        strv_free(list);
                        return;
                }
        set_list(dst, list);
}

/* Nova's pattern for a metadata key: ^[a-zA-Z0-9-_:. ]{1,255}$ */
static void parse_metadata(struct parse *p, const struct field *f, const struct ynode *v, const char *path, void *dst) {
        struct config_group *g = dst;
        char k[QUOTE_MAX + 16], q[QUOTE_MAX], item[320];
        size_t n = v->n_items / 2;
        struct config_kv *kv;
        bool ok = true;

        if (v->invalid)
                return;
        if (v->type != YNODE_MAPPING) {
                diag(p, &v->mark, "expected a mapping of key: value for %s, got %s", path, ynode_kind(v, k));
                return;
        }
        if (n > NOVA_METADATA_MAX - N_RESERVED_METADATA) {
                diag(p, &v->mark, "%s has %zu keys; Nova allows %d per instance and elasticd sets %d itself",
                     path, n, NOVA_METADATA_MAX, N_RESERVED_METADATA);
                return;
        }
        kv = calloc(n ? n : 1, sizeof(*kv));
        if (!kv) {
                p->oom = true;
                return;
        }
        for (size_t i = 0; i < n; i++) {
                const struct ynode *key = v->items[2 * i], *val = v->items[2 * i + 1];
                bool dup = false;

                if (!expect_scalar(p, key, path, "a metadata key") || !check_text(p, key, path, NOVA_STRING_MAX)) {
                        ok = false;
                        continue;
                }
                if (strspn(key->value, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_:. ") != key->len) {
                        diag(p, &key->mark, "metadata key %s in %s may contain only letters, digits, '-', '_', ':', '.' and spaces",
                             quote(q, key->value, key->len), path);
                        ok = false;
                        continue;
                }
                if (strncmp(key->value, RESERVED_METADATA_PREFIX, strlen(RESERVED_METADATA_PREFIX)) == 0) {
                        diag(p, &key->mark, "metadata key %s is reserved: elasticd sets the keys starting with \"%s\" itself",
                             quote(q, key->value, key->len), RESERVED_METADATA_PREFIX);
                        ok = false;
                        continue;
                }
                for (size_t j = 0; j < i && !dup; j++)
                        if (v->items[2 * j]->type == YNODE_SCALAR && !v->items[2 * j]->invalid &&
                            strcmp(v->items[2 * j]->value, key->value) == 0) {
                                diag(p, &key->mark, "duplicate metadata key %s (first at line %zu)",
                                     quote(q, key->value, key->len), v->items[2 * j]->mark.line + 1);
                                dup = true;
                        }
                if (dup) {
                        ok = false;
                        continue;
                }
                snprintf(item, sizeof(item), "%s.%s", path, key->value);
                if (!expect_scalar(p, val, item, "a string")) {
                        ok = false;
                        continue;
                }
                if (!ynode_is_null(val) && val->len > 0 &&
                    (has_control(val->value, val->len) || utf8_length(val->value, val->len) > NOVA_STRING_MAX)) {
                        diag(p, &val->mark, "%s must be one line of at most %d characters", item, NOVA_STRING_MAX);
                        ok = false;
                        continue;
                }
                if (!ok)
                        continue; /* an earlier key failed: only report from here on */
                kv[i].key = strdup(key->value);
                kv[i].value = strdup(ynode_is_null(val) ? "" : val->value);
                if (!kv[i].key || !kv[i].value) {
                        p->oom = true;
                        ok = false;
                }
        }
        if (!ok) {
                for (size_t i = 0; i < n; i++) {
                        free(kv[i].key);
                        free(kv[i].value);
                }
                free(kv);
                return;
        }
        g->metadata = kv;
        g->n_metadata = n;
}

/* Read now, at load: the create on the event loop then only uses the bytes
 * (a FIFO or a replaced file cannot block it). */
static void parse_user_data(struct parse *p, const struct field *f, const struct ynode *v, const char *path, void *dst) {
        /* dst is &group->user_data (the only field parsed this way) */
        struct config_group *g = (struct config_group *) ((char *) dst - offsetof(struct config_group, user_data));
        _cleanup_free_ char *problem = NULL, *data = NULL;
        size_t len = 0;
        int r;

        parse_path(p, f, v, path, dst);
        if (!*(char **) dst)
                return;
        r = fileread_all(v->value, 0, NOVA_USER_DATA_MAX, &data, &len, &problem);
        if (r == -ENOMEM || (r < 0 && !problem)) {
                p->oom = true;
                return;
        }
        if (r == -EFBIG)
                diag(p, &v->mark, "%s: %s (Nova takes 65535 bytes of user data once base64-encoded)",
                     path, problem);
        else if (r < 0)
                diag(p, &v->mark, "%s: %s", path, problem);
        else {
                free(g->user_data_content);
                g->user_data_content = TAKE_PTR(data);
                g->user_data_len = len;
        }
}

static void parse_mapping(struct parse *p, const struct ynode *map, const char *where, const struct field *fields,
                          size_t n_fields, void *base, struct seen *seen);

/* ---- ssh ---------------------------------------------------------------- */

/* The key elasticd logs in to new nodes with: a secret file, read now (a
 * push then only uses the bytes, never opens a file on a worker). */
static void parse_private_key(struct parse *p, const struct field *f, const struct ynode *v, const char *path, void *dst) {
        /* dst is &ssh->private_key (the only field parsed this way) */
        struct config_ssh *ssh = (struct config_ssh *) ((char *) dst - offsetof(struct config_ssh, private_key));
        _cleanup_free_ char *problem = NULL;
        char *data = NULL;
        size_t len = 0;
        int r;

        parse_path(p, f, v, path, dst);
        if (!*(char **) dst)
                return;
        r = config_read_secret_file(v->value, &data, &len, &problem);
        if (r < 0) {
                if (!problem)
                        p->oom = true;
                else
                        diag(p, &v->mark, "%s: %s", path, problem);
                return;
        }
        secret_free(ssh->private_key_data, ssh->private_key_len);
        ssh->private_key_data = data;
        ssh->private_key_len = len;
}

/* A file to copy: a readable regular file (checked now, read at each push). */
static void parse_source_file(struct parse *p, const struct field *f, const struct ynode *v, const char *path, void *dst) {
        _cleanup_free_ char *problem = NULL;
        int fd;

        parse_path(p, f, v, path, dst);
        if (!*(char **) dst)
                return;
        fd = fileread_open(v->value, 0, CONFIG_SOURCE_FILE_MAX, NULL, &problem);
        if (fd >= 0)
                close(fd);
        else if (!problem)
                p->oom = true;
        else
                diag(p, &v->mark, "%s: %s", path, problem);
}

/* Permission bits of a file put on a node, "0400" (or 400, 0o400). */
static void parse_file_mode(struct parse *p, const struct field *f, const struct ynode *v, const char *path, void *dst) {
        char q[QUOTE_MAX];
        const char *s;
        unsigned mode = 0;
        size_t len;
        bool ok;

        if (!expect_scalar(p, v, path, "an octal file mode"))
                return;
        s = v->value;
        len = v->len;
        if (len > 2 && s[0] == '0' && s[1] == 'o') {
                s += 2;
                len -= 2;
        }
        ok = len > 0 && len <= 5;
        for (size_t i = 0; ok && i < len; i++) {
                if (s[i] < '0' || s[i] > '7')
                        ok = false;
                else
                        mode = mode * 8 + (unsigned) (s[i] - '0');
        }
        if (!ok || mode > 07777) {
                diag(p, &v->mark, "expected an octal file mode such as \"0644\" for %s, got %s", path, quote(q, v->value, v->len));
                return;
        }
        *(unsigned *) dst = mode;
}

static void parse_commands(struct parse *p, const struct field *f, const struct ynode *v, const char *path, void *dst) {
        parse_list(p, v, path, dst, "a list of commands");
}

#define SSTR(k, fn, member, req) { k, fn, offsetof(struct config_ssh, member), req, 0, 0, NULL, 0 }
#define FSTR(k, fn, member, req) { k, fn, offsetof(struct config_ssh_file, member), req, 0, 0, NULL, 0 }

static const struct field ssh_file_fields[] = {
        FSTR("src", parse_source_file, src, true),
        FSTR("dest", parse_path, dest, true),
        FSTR("mode", parse_file_mode, mode, false),
        FSTR("owner", parse_account, owner, false),
        FSTR("group", parse_account, group, false),
};

static void parse_ssh_files(struct parse *p, const struct field *f, const struct ynode *v, const char *path, void *dst) {
        struct config_ssh *ssh = (struct config_ssh *) ((char *) dst - offsetof(struct config_ssh, files));
        char k[QUOTE_MAX + 16], item[300];

        if (v->invalid)
                return;
        if (v->type != YNODE_SEQUENCE) {
                diag(p, &v->mark, "expected a list of files for %s, got %s", path, ynode_kind(v, k));
                return;
        }
        if (v->n_items > CONFIG_MAX_LIST) {
                diag(p, &v->mark, "%s has more than %d entries", path, CONFIG_MAX_LIST);
                return;
        }
        ssh->files = calloc(v->n_items ? v->n_items : 1, sizeof(*ssh->files));
        if (!ssh->files) {
                p->oom = true;
                return;
        }
        for (size_t i = 0; i < v->n_items; i++) {
                const struct ynode *it = v->items[i];
                struct seen seen[ELEMENTSOF(ssh_file_fields)] = {};

                ssh->files[i].mode = 0644;
                ssh->n_files = i + 1;
                snprintf(item, sizeof(item), "%s[%zu]", path, i);
                if (it->invalid)
                        continue;
                if (it->type != YNODE_MAPPING) {
                        diag(p, &it->mark, "expected a mapping (src, dest, mode, owner, group) for %s, got %s", item,
                             ynode_kind(it, k));
                        continue;
                }
                parse_mapping(p, it, item, ssh_file_fields, ELEMENTSOF(ssh_file_fields), &ssh->files[i], seen);
        }
}

static const struct field ssh_fields[] = {
        SSTR("user", parse_account, user, false),
        { "port", parse_unsigned, offsetof(struct config_ssh, port), false, 1, 65535, NULL, 0 },
        SSTR("private_key", parse_private_key, private_key, true),
        { "connect_timeout", parse_duration, offsetof(struct config_ssh, connect_timeout_s), false, 1, 3600, NULL, 0 },
        { "console_poll", parse_duration, offsetof(struct config_ssh, console_poll_s), false, 1, 3600, NULL, 0 },
        SSTR("files", parse_ssh_files, files, false),
        SSTR("commands", parse_commands, commands, false),
};

static void parse_ssh(struct parse *p, const struct field *f, const struct ynode *v, const char *path, void *dst) {
        struct config_ssh **ret = dst, *ssh;
        char k[QUOTE_MAX + 16];
        struct seen seen[ELEMENTSOF(ssh_fields)] = {};

        if (v->invalid)
                return;
        if (v->type != YNODE_MAPPING) {
                diag(p, &v->mark, "expected a mapping for %s, got %s", path, ynode_kind(v, k));
                return;
        }
        ssh = calloc(1, sizeof(*ssh));
        if (!ssh) {
                p->oom = true;
                return;
        }
        *ret = ssh;
        ssh->user = strdup("root");
        ssh->commands = strv_from(NULL, 0);
        if (!ssh->user || !ssh->commands) {
                p->oom = true;
                return;
        }
        ssh->port = 22;
        ssh->connect_timeout_s = 10;
        ssh->console_poll_s = 5;
        parse_mapping(p, v, path, ssh_fields, ELEMENTSOF(ssh_fields), ssh, seen);
}

/* A nested mapping whose fields live in the same struct as the parent's. */
static void parse_section(struct parse *p, const struct field *f, const struct ynode *v, const char *path, void *dst) {
        char k[QUOTE_MAX + 16];
        struct seen seen[32] = {};

        if (v->invalid)
                return;
        if (v->type != YNODE_MAPPING) {
                diag(p, &v->mark, "expected a mapping for %s, got %s", path, ynode_kind(v, k));
                return;
        }
        parse_mapping(p, v, path, f->sub, f->n_sub, dst, seen);
}

static void parse_hostlist(struct parse *p, const struct field *f, const struct ynode *v, const char *path, void *dst);
static void parse_groups(struct parse *p, const struct field *f, const struct ynode *v, const char *path, void *dst);

#define STR(k, fn, member, req, max) { k, fn, offsetof(struct config, member), req, 0, max, NULL, 0 }
#define NUM(k, fn, member, lo, hi) { k, fn, offsetof(struct config, member), false, lo, hi, NULL, 0 }
#define SECTION(k, tbl) { k, parse_section, 0, false, 0, 0, tbl, ELEMENTSOF(tbl) }

static const struct field socket_fields[] = {
        STR("path", parse_path, socket_path, false, 0),
        STR("group", parse_account, socket_group, false, 0),
        NUM("mode", parse_mode, socket_mode, 0, 0),
};

static const struct field slurm_fields[] = {
        STR("conf", parse_path, slurm_conf, false, 0),
        STR("user", parse_account, slurm_user, false, 0),
        STR("suspend_exclude_file", parse_path, suspend_exc_file, false, 0),
};

static const struct field limits_fields[] = {
        NUM("max_frame_bytes", parse_size, limits.max_frame_bytes, 4096, 64 * 1024 * 1024),
        NUM("max_clients", parse_unsigned, limits.max_clients, 1, 65536),
        NUM("reserved_clients", parse_unsigned, limits.reserved_clients, 0, 65535),
        NUM("max_clients_per_uid", parse_unsigned, limits.max_clients_per_uid, 1, 65536),
        NUM("frame_timeout", parse_duration, limits.frame_timeout_s, 1, 3600),
        NUM("client_idle_timeout", parse_duration, limits.client_idle_timeout_s, 1, 86400),
        NUM("max_queued_requests", parse_unsigned, limits.max_queued_requests, 1, 1048576),
        NUM("max_hostlist_nodes", parse_unsigned, limits.max_hostlist_nodes, 1, 1048576),
        NUM("api_concurrency", parse_unsigned, limits.api_concurrency, 1, 1024),
        NUM("api_rate", parse_rate, limits.api_rate, 0, 100000),
        NUM("api_burst", parse_unsigned, limits.api_burst, 1, 100000),
        NUM("api_timeout", parse_duration, limits.api_timeout_s, 1, CONFIG_MAX_DURATION),
        NUM("create_timeout", parse_duration, limits.create_timeout_s, 1, CONFIG_MAX_DURATION),
        NUM("active_timeout", parse_duration, limits.active_timeout_s, 1, CONFIG_MAX_DURATION),
        NUM("resume_timeout", parse_duration, limits.resume_timeout_s, 1, CONFIG_MAX_DURATION),
        NUM("reconcile_interval", parse_duration, limits.reconcile_interval_s, 1, CONFIG_MAX_DURATION),
        NUM("orphan_grace", parse_duration, limits.orphan_grace_s, 0, CONFIG_MAX_DURATION),
        NUM("capacity_cooldown", parse_duration, limits.capacity_cooldown_s, 0, CONFIG_MAX_DURATION),
};

static const struct field endpoint_fields[] = {
        STR("compute", parse_url, endpoints.compute, false, 0),
        STR("image", parse_url, endpoints.image, false, 0),
        STR("identity", parse_url, endpoints.identity, false, 0),
};

enum {
        TOP_CLUSTER,
        TOP_CLOUD,
        TOP_CLOUDS_FILE,
        TOP_STATE_DIR,
        TOP_SOCKET,
        TOP_SLURM,
        TOP_ADMIN_GROUP,
        TOP_REIMAGE_WORDS,
        TOP_LIMITS,
        TOP_ENDPOINTS,
        TOP_GROUPS,
        TOP_METRICS,
        _TOP_MAX,
};

static const struct field metrics_fields[] = {
        STR("listen", parse_loopback_listen, metrics_listen, false, 0),
};

static const struct field top_fields[_TOP_MAX] = {
        [TOP_CLUSTER] = STR("cluster", parse_cluster, cluster, true, 0),
        [TOP_CLOUD] = STR("cloud", parse_string, cloud, true, 0),
        [TOP_CLOUDS_FILE] = STR("clouds_file", parse_path, clouds_file, false, 0),
        [TOP_STATE_DIR] = STR("state_dir", parse_path, state_dir, false, 0),
        [TOP_SOCKET] = SECTION("socket", socket_fields),
        [TOP_SLURM] = SECTION("slurm", slurm_fields),
        [TOP_ADMIN_GROUP] = STR("admin_group", parse_account, admin_group, false, 0),
        [TOP_REIMAGE_WORDS] = STR("reimage_words", parse_words, reimage_words, false, 0),
        [TOP_LIMITS] = SECTION("limits", limits_fields),
        [TOP_ENDPOINTS] = SECTION("endpoints", endpoint_fields),
        [TOP_GROUPS] = { "groups", parse_groups, 0, true, 0, 0, NULL, 0 },
        [TOP_METRICS] = SECTION("metrics", metrics_fields),
};

#define GSTR(k, fn, member, req) { k, fn, offsetof(struct config_group, member), req, 0, 0, NULL, 0 }

enum {
        GROUP_NAME,
        GROUP_NODES,
        GROUP_FLAVOR,
        GROUP_IMAGE,
        GROUP_NETWORKS,
        GROUP_SECURITY_GROUPS,
        GROUP_KEY_NAME,
        GROUP_METADATA,
        GROUP_USER_DATA,
        GROUP_CONFIG_DRIVE,
        GROUP_MIN_NODES,
        GROUP_AVAILABILITY_ZONE,
        GROUP_SSH,
        GROUP_CPUS,
        GROUP_RAM,
        GROUP_MEMORY_MARGIN,
        GROUP_GRES,
        GROUP_FEATURES,
        _GROUP_MAX,
};

static const struct field group_fields[_GROUP_MAX] = {
        [GROUP_NAME] = GSTR("name", parse_group_name, name, true),
        [GROUP_NODES] = GSTR("nodes", parse_hostlist, nodes, true),
        [GROUP_FLAVOR] = GSTR("flavor", parse_string, flavor, true),
        [GROUP_IMAGE] = GSTR("image", parse_string, image, true),
        [GROUP_NETWORKS] = GSTR("networks", parse_networks, networks, false),
        [GROUP_SECURITY_GROUPS] = GSTR("security_groups", parse_words, security_groups, false),
        [GROUP_KEY_NAME] = GSTR("key_name", parse_string, key_name, false),
        [GROUP_METADATA] = { "metadata", parse_metadata, 0, false, 0, 0, NULL, 0 },
        [GROUP_USER_DATA] = GSTR("user_data", parse_user_data, user_data, false),
        [GROUP_CONFIG_DRIVE] = GSTR("config_drive", parse_bool, config_drive, false),
        [GROUP_MIN_NODES] = { "min_nodes", parse_unsigned, offsetof(struct config_group, min_nodes), false, 0, CONFIG_MAX_NODES, NULL, 0 },
        [GROUP_AVAILABILITY_ZONE] = GSTR("availability_zone", parse_string, availability_zone, false),
        [GROUP_SSH] = GSTR("ssh", parse_ssh, ssh, false),
        [GROUP_CPUS] = { "cpus", parse_unsigned, offsetof(struct config_group, cpus), false, 1, 1000000, NULL, 0 },
        [GROUP_RAM] = { "ram", parse_unsigned, offsetof(struct config_group, ram_mb), false, 1, 1U << 30, NULL, 0 },
        [GROUP_MEMORY_MARGIN] = { "memory_margin", parse_unsigned, offsetof(struct config_group, memory_margin_mb),
                                  false, 0, 1U << 30, NULL, 0 },
        [GROUP_GRES] = GSTR("gres", parse_string, gres, false),
        [GROUP_FEATURES] = GSTR("features", parse_words, features, false),
};

static void parse_mapping(struct parse *p, const struct ynode *map, const char *where, const struct field *fields,
                          size_t n_fields, void *base, struct seen *seen) {
        char q[QUOTE_MAX], k[QUOTE_MAX + 16], path[256];

        for (size_t i = 0; i + 1 < map->n_items; i += 2) {
                const struct ynode *key = map->items[i], *value = map->items[i + 1];
                const struct field *f = NULL;

                if (key->invalid)
                        continue;
                if (key->type != YNODE_SCALAR) {
                        diag(p, &key->mark, "expected a key name in %s, got %s", where ? where : "the top level", ynode_kind(key, k));
                        continue;
                }
                for (size_t j = 0; j < n_fields; j++)
                        if (strcmp(fields[j].key, key->value) == 0)
                                f = &fields[j];
                if (!f) {
                        _cleanup_free_ char *valid = NULL;
                        size_t size = 0;
                        FILE *m = open_memstream(&valid, &size);
                        if (!m) {
                                p->oom = true;
                                return;
                        }
                        for (size_t j = 0; j < n_fields; j++)
                                fprintf(m, "%s%s", j ? ", " : "", fields[j].key);
                        if (fclose(m) != 0) {
                                p->oom = true;
                                return;
                        }
                        if (where)
                                diag(p, &key->mark, "unknown key %s in %s; valid keys: %s", quote(q, key->value, key->len), where, valid);
                        else
                                diag(p, &key->mark, "unknown key %s; valid top-level keys: %s", quote(q, key->value, key->len), valid);
                        continue;
                }

                struct seen *s = &seen[f - fields];
                if (s->key) {
                        diag(p, &key->mark, "duplicate key %s (first at line %zu)", quote(q, key->value, key->len), s->key->mark.line + 1);
                        continue;
                }
                s->key = key;
                s->value = value;

                if (where)
                        snprintf(path, sizeof(path), "%s.%s", where, f->key);
                else
                        snprintf(path, sizeof(path), "%s", f->key);
                if (ynode_is_null(value)) {
                        if (f->required)
                                diag(p, &value->mark, "expected a value for %s", path);
                        continue;
                }
                f->parse(p, f, value, path, (char *) base + f->offset);
        }

        /* all missing keys of one mapping in one message */
        const char *missing[8];
        size_t n_missing = 0;
        for (size_t j = 0; j < n_fields; j++)
                if (fields[j].required && !seen[j].key && n_missing < ELEMENTSOF(missing))
                        missing[n_missing++] = fields[j].key;
        if (n_missing > 0) {
                char list[256] = "";
                size_t o = 0;
                for (size_t j = 0; j < n_missing; j++)
                        o += (size_t) snprintf(list + o, sizeof(list) - o, "%s\"%s\"",
                                               j == 0 ? "" : j + 1 == n_missing ? " and " : ", ", missing[j]);
                diag(p, &map->mark, "missing required key%s %s%s%s", n_missing > 1 ? "s" : "", list,
                     where ? " in " : "", where ? where : "");
        }
}

/* ---- hostlists -------------------------------------------------------- */

static void parse_hostlist(struct parse *p, const struct field *f, const struct ynode *v, const char *path, void *dst) {
        _cleanup_free_ char *problem = NULL;
        size_t count = 0;
        int r;

        if (!expect_scalar(p, v, path, "a Slurm hostlist") || !check_text(p, v, path, 65536))
                return;
        r = hostlist_count(v->value, SIZE_MAX, &count, &problem);
        if (r == -ENOMEM) {
                p->oom = true;
                return;
        }
        if (r < 0) {
                diag(p, &v->mark, "expected a Slurm hostlist such as \"cl[1-16]\" for %s: %s", path,
                     problem ? problem : "invalid");
                return;
        }
        if (count == 0) {
                diag(p, &v->mark, "%s names no nodes", path);
                return;
        }
        set_string(p, dst, v);
}

static int config_node_cmp(const void *a, const void *b) {
        const struct config_node *x = a, *y = b;
        int r = strcmp(x->name, y->name);

        if (r != 0)
                return r;
        if (x->group != y->group)
                return x->group < y->group ? -1 : 1;
        return x->index < y->index ? -1 : x->index > y->index;
}

/* A node in two groups. */
struct overlap {
        size_t first, second;
        size_t index;           /* in the second group */
        const char *name;
};

static int overlap_cmp(const void *a, const void *b) {
        const struct overlap *x = a, *y = b;

        if (x->second != y->second)
                return x->second < y->second ? -1 : 1;
        if (x->first != y->first)
                return x->first < y->first ? -1 : 1;
        return x->index < y->index ? -1 : x->index > y->index;
}

struct group_seen {
        struct seen seen[_GROUP_MAX];
};

static int strcmp_ptr(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

/* The message for a valid hostlist of COUNT names that lists nodes more than
 * once, naming them (only within one bracket, as "n[1,1]": they cannot be
 * told apart). hostlist_expand drops duplicates, so this expands element by
 * element. */
static int hostlist_duplicates(const char *hostlist, size_t count, size_t group, char **ret) {
        _cleanup_free_ char *copy = strdup(hostlist);
        _cleanup_strv_free_ char **all = NULL;
        _cleanup_free_ char **twice = NULL;
        size_t n_all = 0, n_twice = 0;
        int depth = 0, r;
        char *start;

        if (!copy)
                return -ENOMEM;
        all = calloc(count + 1, sizeof(char *));
        twice = calloc(count + 1, sizeof(char *));
        if (!all || !twice)
                return -ENOMEM;

        /* split at ',' and blanks outside brackets */
        start = copy;
        for (char *c = copy;; c++) {
                if (*c == '[')
                        depth++;
                else if (*c == ']')
                        depth--;
                if (*c && (depth > 0 || (*c != ',' && *c != ' ')))
                        continue;
                bool end = *c == 0;
                *c = 0;
                if (*start) {
                        _cleanup_free_ char **names = NULL; /* the strings move to all */
                        size_t n = 0;
                        r = hostlist_expand(start, count - n_all, &names, &n, NULL);
                        if (r < 0)
                                return r;
                        memcpy(all + n_all, names, n * sizeof(char *));
                        n_all += n;
                }
                if (end)
                        break;
                start = c + 1;
        }

        qsort(all, n_all, sizeof(char *), strcmp_ptr);
        for (size_t k = 1; k < n_all; k++)
                if (strcmp(all[k], all[k - 1]) == 0 && (n_twice == 0 || strcmp(twice[n_twice - 1], all[k]) != 0))
                        twice[n_twice++] = all[k];
        if (n_twice == 0)
                return asprintf(ret, "groups[%zu].nodes lists nodes more than once in one bracket", group) < 0
                               ? -ENOMEM : 0;
        return hostlist_message(ret, HOSTLIST_MESSAGE_MAX, twice, n_twice, "groups[%zu].nodes lists %zu node%s more than once",
                                group, HOSTLIST_NODES(n_twice));
}

/* Expand one group's hostlist into g->node_names, in node order. */
static int group_expand(struct parse *p, struct config_group *g, size_t i, const yaml_mark_t *mark, size_t *budget) {
        _cleanup_free_ char *problem = NULL;
        size_t count = 0;
        int r;

        r = hostlist_count(g->nodes, SIZE_MAX, &count, NULL);
        if (r < 0)
                return r; /* parse_hostlist checked it */
        if (count > *budget) {
                diag(p, mark, "the groups have more than %d nodes in all", CONFIG_MAX_NODES);
                return -E2BIG;
        }
        *budget -= count;

        r = hostlist_expand(g->nodes, count, &g->node_names, &g->n_nodes, &problem);
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                diag(p, mark, "groups[%zu].nodes: %s", i, problem ? problem : "invalid hostlist");
                return r;
        }
        r = strv_pack(&g->node_names, g->n_nodes);
        if (r < 0) {
                g->node_names = strv_free(g->node_names);
                g->n_nodes = 0;
                return r;
        }
        if (g->n_nodes < count) {
                _cleanup_free_ char *msg = NULL;
                r = hostlist_duplicates(g->nodes, count, i, &msg);
                if (r < 0)
                        return r;
                diag(p, mark, "%s", msg);
                return -EINVAL;
        }
        return 0;
}

/* Expand every group's nodes, find nodes in two groups, and index them all by name. */
static void check_nodes(struct parse *p, struct config *c, const struct group_seen *gs) {
        struct config_node *nodes = NULL;
        struct overlap *dups = NULL;
        size_t n_nodes = 0, n_dups = 0, budget = CONFIG_MAX_NODES;
        bool ok = true;

        for (size_t i = 0; i < c->n_groups; i++) {
                struct config_group *g = &c->groups[i];
                int r;

                if (!g->nodes) {
                        ok = false;
                        continue;
                }
                r = group_expand(p, g, i, &gs[i].seen[GROUP_NODES].value->mark, &budget);
                if (r == -ENOMEM)
                        p->oom = true;
                if (r == -ENOMEM || r == -E2BIG)
                        goto out;
                if (r < 0) {
                        ok = false;
                        continue;
                }
        }

        nodes = calloc(CONFIG_MAX_NODES - budget + 1, sizeof(*nodes));
        if (!nodes) {
                p->oom = true;
                goto out;
        }
        for (size_t i = 0; i < c->n_groups; i++)
                for (size_t j = 0; j < c->groups[i].n_nodes; j++)
                        nodes[n_nodes++] = (struct config_node){ .name = c->groups[i].node_names[j], .group = (uint32_t) i, .index = (uint32_t) j };
        if (n_nodes == 0)
                goto out;
        qsort(nodes, n_nodes, sizeof(*nodes), config_node_cmp);

        dups = calloc(n_nodes, sizeof(*dups));
        if (!dups) {
                p->oom = true;
                goto out;
        }
        for (size_t i = 1, owner = 0; i < n_nodes; i++) {
                /* the first of a run of equal names owns the node */
                if (strcmp(nodes[i].name, nodes[owner].name) != 0) {
                        owner = i;
                        continue;
                }
                dups[n_dups++] = (struct overlap){
                        .first = nodes[owner].group, .second = nodes[i].group, .index = nodes[i].index, .name = nodes[i].name,
                };
        }

        /* one message per pair of groups, the nodes compressed */
        if (n_dups > 0)
                qsort(dups, n_dups, sizeof(*dups), overlap_cmp);
        for (size_t i = 0; i < n_dups;) {
                _cleanup_free_ char *compressed = NULL;
                _cleanup_free_ char **names = NULL;
                size_t j, n = 0;

                for (j = i; j < n_dups && dups[j].first == dups[i].first && dups[j].second == dups[i].second; j++)
                        ;
                names = calloc(j - i, sizeof(char *));
                if (!names) {
                        p->oom = true;
                        goto out;
                }
                for (size_t k = i; k < j; k++)
                        names[n++] = (char *) dups[k].name;
                const struct config_group *a = &c->groups[dups[i].first], *b = &c->groups[dups[i].second];
                if (hostlist_message(&compressed, HOSTLIST_MESSAGE_MAX, names, n,
                                     "a node belongs to one group only, but %zu node%s %s in groups %s and %s",
                                     HOSTLIST_NODES(n), n == 1 ? "is" : "are",
                                     a->name ? a->name : "?", b->name ? b->name : "?") < 0) {
                        p->oom = true;
                        goto out;
                }
                diag(p, &gs[dups[i].second].seen[GROUP_NODES].value->mark, "%s", compressed);
                i = j;
        }
        if (ok && n_dups == 0) {
                c->nodes = TAKE_PTR(nodes);
                c->n_nodes = n_nodes;
        }

out:
        free(nodes);
        free(dups);
}

/* ---- groups ----------------------------------------------------------- */

static void parse_groups(struct parse *p, const struct field *f, const struct ynode *v, const char *path, void *dst) {
        struct config *c = dst;
        char k[QUOTE_MAX + 16], item[64];

        if (v->invalid)
                return;
        if (v->type != YNODE_SEQUENCE) {
                diag(p, &v->mark, "expected a sequence of groups for groups, got %s", ynode_kind(v, k));
                return;
        }
        if (v->n_items == 0) {
                diag(p, &v->mark, "groups is empty: define at least one group of nodes");
                return;
        }
        if (v->n_items > CONFIG_MAX_GROUPS) {
                diag(p, &v->mark, "more than %d groups", CONFIG_MAX_GROUPS);
                return;
        }
        c->groups = calloc(v->n_items, sizeof(*c->groups));
        p->group_seen = calloc(v->n_items, sizeof(*p->group_seen));
        if (!c->groups || !p->group_seen) {
                p->oom = true;
                return;
        }
        for (size_t i = 0; i < v->n_items; i++) {
                const struct ynode *g = v->items[i];

                if (group_init(&c->groups[i]) < 0) {
                        p->oom = true;
                        c->n_groups = i + 1;
                        return;
                }
                c->n_groups = i + 1;
                snprintf(item, sizeof(item), "groups[%zu]", i);
                if (g->invalid)
                        continue;
                if (g->type != YNODE_MAPPING) {
                        diag(p, &g->mark, "expected a mapping for %s, got %s", item, ynode_kind(g, k));
                        continue;
                }
                parse_mapping(p, g, item, group_fields, _GROUP_MAX, &c->groups[i], p->group_seen[i].seen);
        }
}

static void check_groups(struct parse *p, struct config *c, const struct group_seen *gs) {
        char q[QUOTE_MAX];

        for (size_t i = 0; i < c->n_groups; i++) {
                const struct config_group *g = &c->groups[i];

                if (!g->name)
                        continue;
                for (size_t j = 0; j < i; j++)
                        if (c->groups[j].name && strcmp(c->groups[j].name, g->name) == 0) {
                                diag(p, &gs[i].seen[GROUP_NAME].value->mark,
                                     "duplicate group name \"%s\" (first at line %zu)", g->name,
                                     gs[j].seen[GROUP_NAME].value->mark.line + 1);
                                break;
                        }
        }

        check_nodes(p, c, gs);

        for (size_t i = 0; i < c->n_groups; i++) {
                const struct config_group *g = &c->groups[i];
                const struct ynode *min = gs[i].seen[GROUP_MIN_NODES].value;

                if (g->nodes && g->n_nodes > 0 && g->min_nodes > g->n_nodes && min)
                        diag(p, &min->mark, "groups[%zu].min_nodes is %u but group %s has only %zu nodes (%s)",
                             i, g->min_nodes, g->name ? g->name : "?", g->n_nodes, quote(q, g->nodes, strlen(g->nodes)));
        }
}

static void check_limits(struct parse *p, struct config *c, const struct seen *top) {
        const struct config_limits *l = &c->limits;
        char a[32], b[32];

        if (l->reserved_clients == UINT_MAX)
                c->limits.reserved_clients = l->max_clients / 8;

        if (l->reserved_clients >= l->max_clients) {
                const struct ynode *n = top[TOP_LIMITS].value;
                diag(p, n ? &n->mark : NULL,
                     "limits.reserved_clients (%u) must be less than limits.max_clients (%u): other users of the socket need a slot too",
                     l->reserved_clients, l->max_clients);
        }

        if (l->active_timeout_s > l->resume_timeout_s) {
                const struct ynode *n = top[TOP_LIMITS].value;
                format_duration(a, l->active_timeout_s);
                format_duration(b, l->resume_timeout_s);
                diag(p, n ? &n->mark : NULL,
                     "limits.active_timeout (%s) is longer than limits.resume_timeout (%s): a node must be ACTIVE before slurmd can register",
                     a, b);
        }
}

/* ---- load ------------------------------------------------------------- */

/* Fill C from the tree; every problem becomes a diagnostic. */
static void config_build(struct parse *p, struct config *c, const struct ynode *root) {
        struct seen top[_TOP_MAX] = {};
        char k[QUOTE_MAX + 16];

        if (root->invalid)
                return;
        if (root->type != YNODE_MAPPING) {
                diag(p, &root->mark, "expected a mapping of settings (cluster, cloud, groups, ...) at the top level, got %s",
                     ynode_kind(root, k));
                return;
        }
        parse_mapping(p, root, NULL, top_fields, _TOP_MAX, c, top);
        check_limits(p, c, top);
        if (p->group_seen)
                check_groups(p, c, p->group_seen);
}

int config_load_string(const char *name, const char *text, size_t len, struct config **ret, char **ret_errors) {
        _cleanup_(config_freep) struct config *c = NULL;
        _cleanup_(ynode_freep) struct ynode *root = NULL;
        struct parse p = { .name = name, .text = text, .len = len };
        int r;

        if (ret_errors)
                *ret_errors = NULL;

        c = config_new(name);
        if (!c)
                return -ENOMEM;

        if (len > CONFIG_MAX_FILE_BYTES) {
                diag(&p, NULL, "the file is larger than %d bytes", CONFIG_MAX_FILE_BYTES);
                r = -EFBIG;
        } else {
                r = tree_load(&p, &root);
                if (r == 0)
                        config_build(&p, c, root);
                if (p.oom)
                        r = -ENOMEM;
                else if (r == 0 && p.n_diags > 0)
                        r = -EINVAL;
        }

        if (r == 0)
                *ret = TAKE_PTR(c);
        else if (ret_errors && r != -ENOMEM) {
                if (p.n_diags == 0)
                        diag(&p, NULL, "cannot parse: %s", strerror(-r));
                int q = diag_format(&p, ret_errors);
                if (q < 0)
                        r = q;
        }
        parse_done(&p);
        return r;
}

int config_load(const char *path, struct config **ret, char **ret_errors) {
        _cleanup_close_ int fd = -1;
        _cleanup_free_ char *buf = NULL, *problem = NULL;
        size_t len = 0;
        struct stat st;

        if (ret_errors)
                *ret_errors = NULL;

        fd = fileread_open(path, 0, CONFIG_MAX_FILE_BYTES, &st, &problem);
        if (fd < 0) {
                if (ret_errors && asprintf(ret_errors, "%s%s\n", problem ? problem : path,
                                           problem ? "" : ": cannot open") < 0)
                        *ret_errors = NULL;
                return fd;
        }
        if (S_ISREG(st.st_mode) && (st.st_mode & S_IWOTH)) {
                /* anyone could point elasticd at their own endpoints and collect its credentials */
                if (ret_errors && asprintf(ret_errors, "%s: writable by every user (mode %04o): chmod o-w %s\n", path,
                                           (unsigned) (st.st_mode & 07777), path) < 0)
                        *ret_errors = NULL;
                return -EPERM;
        }
        if (!S_ISREG(st.st_mode) || st.st_size > CONFIG_MAX_FILE_BYTES) {
                int r = S_ISREG(st.st_mode) ? -EFBIG : -EINVAL;
                if (ret_errors && asprintf(ret_errors, "%s: %s\n", path,
                                           r == -EFBIG ? "larger than 1 MiB: not a configuration file" : "not a regular file") < 0)
                        *ret_errors = NULL;
                return r;
        }

        buf = malloc(CONFIG_MAX_FILE_BYTES + 1);
        if (!buf)
                return -ENOMEM;
        for (;;) {
                ssize_t n = read(fd, buf + len, CONFIG_MAX_FILE_BYTES + 1 - len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        int r = negative_errno();
                        if (ret_errors && asprintf(ret_errors, "%s: cannot read: %s\n", path, strerror(-r)) < 0)
                                *ret_errors = NULL;
                        return r;
                }
                if (n == 0)
                        break;
                len += (size_t) n;
                if (len > CONFIG_MAX_FILE_BYTES)
                        break;
        }
        return config_load_string(path, buf, len, ret, ret_errors);
}

/* ---- print ------------------------------------------------------------ */

static bool yaml_needs_quotes(const char *s) {
        static const char *const words[] = { "null", "true", "false", "yes", "no", "on", "off", "y", "n", "~" };

        if (!*s)
                return true;
        if (!(isascii(s[0]) && isalnum(s[0])) && s[0] != '/' && s[0] != '_' && s[0] != '.')
                return true;
        for (const char *c = s; *c; c++)
                if (!(isascii(*c) && isalnum(*c)) && !strchr("_./+=@-", *c))
                        return true;
        for (size_t i = 0; i < ELEMENTSOF(words); i++)
                if (strcasecmp(s, words[i]) == 0)
                        return true;
        return false;
}

static void print_string(FILE *f, const char *s) {
        if (!s) {
                fputs("null", f);
                return;
        }
        if (!yaml_needs_quotes(s)) {
                fputs(s, f);
                return;
        }
        fputc('"', f);
        for (const char *c = s; *c; c++) {
                unsigned char u = (unsigned char) *c;
                if (u == '"' || u == '\\')
                        fprintf(f, "\\%c", u);
                else if (u < 0x20 || u == 0x7f)
                        fprintf(f, "\\x%02x", u);
                else
                        fputc(u, f);
        }
        fputc('"', f);
}

static void print_key_string(FILE *f, const char *indent, const char *key, const char *value) {
        fprintf(f, "%s%s: ", indent, key);
        print_string(f, value);
        fputc('\n', f);
}

static void print_list(FILE *f, char *const *v) {
        fputc('[', f);
        for (size_t i = 0; v && v[i]; i++) {
                if (i)
                        fputs(", ", f);
                print_string(f, v[i]);
        }
        fputc(']', f);
}

static void print_key_list(FILE *f, const char *indent, const char *key, char *const *v) {
        fprintf(f, "%s%s: ", indent, key);
        print_list(f, v);
        fputc('\n', f);
}

static void print_key_duration(FILE *f, const char *key, unsigned s) {
        char buf[32];

        format_duration(buf, s);
        fprintf(f, "  %s: %s\n", key, buf);
}

/* A group's optional number: null when unset (0). */
static void print_key_unsigned(FILE *f, const char *key, unsigned n) {
        if (n)
                fprintf(f, "    %s: %u\n", key, n);
        else
                fprintf(f, "    %s: null\n", key);
}

static void print_ssh(FILE *f, const struct config_ssh *ssh) {
        char buf[32];

        if (!ssh) {
                fputs("    ssh: null\n", f);
                return;
        }
        fputs("    ssh:\n", f);
        print_key_string(f, "      ", "user", ssh->user);
        fprintf(f, "      port: %u\n", ssh->port);
        print_key_string(f, "      ", "private_key", ssh->private_key);
        format_duration(buf, ssh->connect_timeout_s);
        fprintf(f, "      connect_timeout: %s\n", buf);
        format_duration(buf, ssh->console_poll_s);
        fprintf(f, "      console_poll: %s\n", buf);
        if (ssh->n_files == 0)
                fputs("      files: []\n", f);
        else
                fputs("      files:\n", f);
        for (size_t i = 0; i < ssh->n_files; i++) {
                const struct config_ssh_file *x = &ssh->files[i];
                print_key_string(f, "        - ", "src", x->src);
                print_key_string(f, "          ", "dest", x->dest);
                fprintf(f, "          mode: \"%04o\"\n", x->mode);
                print_key_string(f, "          ", "owner", x->owner);
                print_key_string(f, "          ", "group", x->group);
        }
        print_key_list(f, "      ", "commands", ssh->commands);
}

int config_print(const struct config *c, FILE *f) {
        const struct config_limits *l = &c->limits;

        print_key_string(f, "", "cluster", c->cluster);
        print_key_string(f, "", "cloud", c->cloud);
        print_key_string(f, "", "clouds_file", c->clouds_file);
        print_key_string(f, "", "state_dir", c->state_dir);
        fputs("socket:\n", f);
        print_key_string(f, "  ", "path", c->socket_path);
        print_key_string(f, "  ", "group", c->socket_group);
        fprintf(f, "  mode: \"%04o\"\n", c->socket_mode);
        fputs("slurm:\n", f);
        print_key_string(f, "  ", "conf", c->slurm_conf);
        print_key_string(f, "  ", "user", c->slurm_user);
        print_key_string(f, "  ", "suspend_exclude_file", c->suspend_exc_file);
        print_key_string(f, "", "admin_group", c->admin_group);
        print_key_list(f, "", "reimage_words", c->reimage_words);

        fputs("limits:\n", f);
        fprintf(f, "  max_frame_bytes: %zu\n", l->max_frame_bytes);
        fprintf(f, "  max_clients: %u\n", l->max_clients);
        fprintf(f, "  reserved_clients: %u\n", l->reserved_clients);
        fprintf(f, "  max_clients_per_uid: %u\n", l->max_clients_per_uid);
        print_key_duration(f, "frame_timeout", l->frame_timeout_s);
        print_key_duration(f, "client_idle_timeout", l->client_idle_timeout_s);
        fprintf(f, "  max_queued_requests: %u\n", l->max_queued_requests);
        fprintf(f, "  max_hostlist_nodes: %u\n", l->max_hostlist_nodes);
        fprintf(f, "  api_concurrency: %u\n", l->api_concurrency);
        fprintf(f, "  api_rate: %.6g\n", l->api_rate);
        fprintf(f, "  api_burst: %u\n", l->api_burst);
        print_key_duration(f, "api_timeout", l->api_timeout_s);
        print_key_duration(f, "create_timeout", l->create_timeout_s);
        print_key_duration(f, "active_timeout", l->active_timeout_s);
        print_key_duration(f, "resume_timeout", l->resume_timeout_s);
        print_key_duration(f, "reconcile_interval", l->reconcile_interval_s);
        print_key_duration(f, "orphan_grace", l->orphan_grace_s);
        print_key_duration(f, "capacity_cooldown", l->capacity_cooldown_s);

        fputs("endpoints:\n", f);
        print_key_string(f, "  ", "compute", c->endpoints.compute);
        print_key_string(f, "  ", "image", c->endpoints.image);
        print_key_string(f, "  ", "identity", c->endpoints.identity);

        fputs("metrics:\n", f);
        print_key_string(f, "  ", "listen", c->metrics_listen);

        fputs("groups:\n", f);
        for (size_t i = 0; i < c->n_groups; i++) {
                const struct config_group *g = &c->groups[i];

                print_key_string(f, "  - ", "name", g->name);
                print_key_string(f, "    ", "nodes", g->nodes);
                print_key_string(f, "    ", "flavor", g->flavor);
                print_key_string(f, "    ", "image", g->image);
                if (strv_length(g->networks) == 1 &&
                    (strcmp(g->networks[0], "none") == 0 || strcmp(g->networks[0], "auto") == 0))
                        print_key_string(f, "    ", "networks", g->networks[0]);
                else
                        print_key_list(f, "    ", "networks", g->networks);
                print_key_list(f, "    ", "security_groups", g->security_groups);
                print_key_string(f, "    ", "key_name", g->key_name);
                if (g->n_metadata == 0)
                        fputs("    metadata: {}\n", f);
                else {
                        fputs("    metadata:\n", f);
                        for (size_t j = 0; j < g->n_metadata; j++) {
                                fputs("      ", f);
                                print_string(f, g->metadata[j].key);
                                fputs(": ", f);
                                print_string(f, g->metadata[j].value);
                                fputc('\n', f);
                        }
                }
                print_key_string(f, "    ", "user_data", g->user_data);
                fprintf(f, "    config_drive: %s\n", g->config_drive ? "true" : "false");
                fprintf(f, "    min_nodes: %u\n", g->min_nodes);
                print_key_string(f, "    ", "availability_zone", g->availability_zone);
                print_ssh(f, g->ssh);
                print_key_unsigned(f, "cpus", g->cpus);
                print_key_unsigned(f, "ram", g->ram_mb);
                fprintf(f, "    memory_margin: %u\n", g->memory_margin_mb);
                print_key_string(f, "    ", "gres", g->gres);
                print_key_list(f, "    ", "features", g->features);
        }

        return ferror(f) ? -EIO : 0;
}

/* ---- misc ------------------------------------------------------------- */

/* Opened, and checked as config_check_secret_file says. */
static int secret_file_open(const char *path, struct stat *ret_st, char **ret_error) {
        _cleanup_close_ int fd = -1;
        struct stat st;

        fd = fileread_open(path, 0, CONFIG_SECRET_FILE_MAX, &st, ret_error);
        if (fd < 0)
                return fd;
        if (st.st_uid != geteuid() && st.st_uid != 0) {
                if (ret_error && asprintf(ret_error, "%s is owned by uid %u: a file holding secrets must be owned by uid %u or root",
                                          path, (unsigned) st.st_uid, (unsigned) geteuid()) < 0)
                        return -ENOMEM;
                return -EPERM;
        }
        if (st.st_mode & 0077) {
                if (ret_error && asprintf(ret_error, "%s has mode %04o: a file holding secrets must not be accessible by group or others (chmod 600 %s)",
                                          path, (unsigned) (st.st_mode & 07777), path) < 0)
                        return -ENOMEM;
                return -EPERM;
        }
        if (ret_st)
                *ret_st = st;
        return TAKE_FD(fd);
}

int config_check_secret_file(const char *path, char **ret_error) {
        int fd = secret_file_open(path, NULL, ret_error);

        if (fd < 0)
                return fd;
        close(fd);
        return 0;
}

int config_read_secret_file(const char *path, char **ret_data, size_t *ret_len, char **ret_error) {
        _cleanup_close_ int fd = -1;
        struct stat st;

        fd = secret_file_open(path, &st, ret_error);
        if (fd < 0)
                return fd;
        return fileread_fd_all(fd, &st, path, CONFIG_SECRET_FILE_MAX, ret_data, ret_len, ret_error);
}

int config_node_find(const struct config *c, const char *name, size_t *ret_group, size_t *ret_index) {
        const struct config_node *n;
        size_t lo = 0, hi = c->n_nodes;

        /* lower bound by name alone: the index holds each name once */
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (strcmp(c->nodes[mid].name, name) < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        if (lo >= c->n_nodes || strcmp(c->nodes[lo].name, name) != 0)
                return -ENOENT;
        n = &c->nodes[lo];
        if (ret_group)
                *ret_group = n->group;
        if (ret_index)
                *ret_index = n->index;
        return 0;
}

int config_group_find(const struct config *c, const char *name) {
        for (size_t i = 0; i < c->n_groups; i++)
                if (c->groups[i].name && strcmp(c->groups[i].name, name) == 0)
                        return (int) i;
        return -ENOENT;
}
