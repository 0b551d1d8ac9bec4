/* yamlcheck.c - nesting and duplicate-key rules on libyaml's event stream. */
#include "conf/yamlcheck.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/param.h>
#include <yaml.h>

#include "util/errmsg.h"
#include "util/macro.h"

struct key {
        char *text;
        size_t len, line, column;
};

/* One open collection: a mapping collects its scalar keys. */
struct level {
        bool mapping;
        bool want_key;          /* in a mapping: the next node is a key */
        struct key *keys;
        size_t n_keys, cap;
};

static int key_text_compare(const struct key *x, const struct key *y) {
        int c = memcmp(x->text, y->text, MIN(x->len, y->len));

        if (c != 0)
                return c;
        return x->len == y->len ? 0 : x->len < y->len ? -1 : 1;
}

static int key_compare(const void *a, const void *b) {
        const struct key *x = a, *y = b;
        int c = key_text_compare(x, y);

        if (c != 0)
                return c;
        /* equal keys: in file order, so the later one is reported */
        return x->line != y->line ? (x->line < y->line ? -1 : 1) : (x->column < y->column ? -1 : 1);
}

static void level_clear(struct level *l) {
        for (size_t i = 0; i < l->n_keys; i++)
                free(l->keys[i].text);
        free(l->keys);
        *l = (struct level) {};
}

/* At a mapping's end: a duplicate is reported at its second place. */
static int level_check(const char *name, struct level *l, char **ret_error) {
        const struct key *dup = NULL, *first = NULL;

        if (l->n_keys < 2)
                return 0;
        qsort(l->keys, l->n_keys, sizeof(*l->keys), key_compare);
        for (size_t i = 1; i < l->n_keys; i++)
                if (key_text_compare(&l->keys[i - 1], &l->keys[i]) == 0 &&
                    (!dup || l->keys[i].line < dup->line)) {
                        dup = &l->keys[i];
                        first = &l->keys[i - 1];
                }
        if (!dup)
                return 0;
        /* Keys are names, not secrets, but they are not quoted either: a
         * pasted secret could sit where a key was meant. */
        return errmsg(ret_error, -EINVAL, "%s:%zu:%zu: duplicate key (first at line %zu, column %zu)", name,
                      dup->line, dup->column, first->line, first->column);
}

int yamlcheck_scan(const char *name, const char *text, size_t len, unsigned max_depth, char **ret_error) {
        _cleanup_free_ struct level *stack = NULL;
        yaml_parser_t parser;
        unsigned depth = 0;
        bool done = false;
        int r = 0;

        stack = calloc((size_t) max_depth + 1, sizeof(*stack));
        if (!stack)
                return -ENOMEM;
        if (!yaml_parser_initialize(&parser))
                return -ENOMEM;
        yaml_parser_set_input_string(&parser, (const unsigned char *) text, len);

        while (!done && r == 0) {
                yaml_event_t ev;
                struct level *top = depth > 0 ? &stack[depth - 1] : NULL;
                bool is_key = top && top->mapping && top->want_key;

                if (!yaml_parser_parse(&parser, &ev)) {
                        r = errmsg(ret_error, -EINVAL, "%s:%zu:%zu: YAML: %s%s%s", name,
                                   parser.problem_mark.line + 1, parser.problem_mark.column + 1,
                                   parser.problem ? parser.problem : "syntax error",
                                   parser.context ? " " : "", parser.context ? parser.context : "");
                        break;
                }
                switch (ev.type) {
                case YAML_STREAM_END_EVENT:
                        done = true;
                        break;
                case YAML_MAPPING_START_EVENT:
                case YAML_SEQUENCE_START_EVENT:
                        if (top && top->mapping)
                                top->want_key = !top->want_key;
                        if (is_key) {
                                r = errmsg(ret_error, -EINVAL, "%s:%zu:%zu: a key must be a plain name, not a %s",
                                           name, ev.start_mark.line + 1, ev.start_mark.column + 1,
                                           ev.type == YAML_MAPPING_START_EVENT ? "mapping" : "list");
                                break;
                        }
                        if (depth >= max_depth) {
                                r = errmsg(ret_error, -EINVAL, "%s:%zu:%zu: nested deeper than %u levels", name,
                                           ev.start_mark.line + 1, ev.start_mark.column + 1, max_depth);
                                break;
                        }
                        stack[depth++] = (struct level) { .mapping = ev.type == YAML_MAPPING_START_EVENT,
                                                          .want_key = true };
                        break;
                case YAML_MAPPING_END_EVENT:
                case YAML_SEQUENCE_END_EVENT:
                        if (depth > 0) {
                                r = level_check(name, &stack[depth - 1], ret_error);
                                level_clear(&stack[--depth]);
                        }
                        break;
                case YAML_SCALAR_EVENT:
                case YAML_ALIAS_EVENT:
                        if (top && top->mapping)
                                top->want_key = !top->want_key;
                        if (is_key && ev.type == YAML_SCALAR_EVENT) {
                                if (top->n_keys == top->cap) {
                                        size_t cap = top->cap ? top->cap * 2 : 8;
                                        struct key *k = realloc(top->keys, cap * sizeof(*k));
                                        if (!k) {
                                                r = -ENOMEM;
                                                break;
                                        }
                                        top->keys = k;
                                        top->cap = cap;
                                }
                                top->keys[top->n_keys] = (struct key) {
                                        .text = malloc(ev.data.scalar.length + 1),
                                        .len = ev.data.scalar.length,
                                        .line = ev.start_mark.line + 1,
                                        .column = ev.start_mark.column + 1,
                                };
                                if (!top->keys[top->n_keys].text) {
                                        r = -ENOMEM;
                                        break;
                                }
                                memcpy(top->keys[top->n_keys].text, ev.data.scalar.value, ev.data.scalar.length);
                                top->n_keys++;
                        }
                        break;
                default:
                        break;
                }
                yaml_event_delete(&ev);
        }
        while (depth > 0)
                level_clear(&stack[--depth]);
        yaml_parser_delete(&parser);
        return r;
}
