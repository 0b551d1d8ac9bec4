/* hostlist.c - Slurm hostlists: a strict validator, a linear expander and a
 * compressor, both with libslurm's rules but without libslurm (the hooks and
 * elasticctl link no libslurm). */
#include "util/hostlist.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/param.h>

#include "util/macro.h"
#include "util/strv.h"
#include "util/errmsg.h"


/* A printable, bounded copy of s[0..len) for error messages. */
static const char *snippet(const char *s, size_t len, char *buf, size_t size) {
        size_t o = 0;

        for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char) s[i];

                if (o + 8 >= size) {
                        strcpy(buf + o, "...");
                        return buf;
                }
                if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
                        buf[o++] = (char) c;
                else
                        o += (size_t) snprintf(buf + o, size - o, "\\x%02x", c);
        }
        buf[o] = 0;
        return buf;
}

#define SNIPPET_MAX 96

static bool is_name_char(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
               (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
}

static bool is_digit(char c) {
        return c >= '0' && c <= '9';
}

/* libslurm 22.05 separates with blanks too, but not with newlines. */
static bool is_blank(char c) {
        return c == ' ' || c == '\t';
}

static uint64_t add_sat(uint64_t a, uint64_t b) {
        uint64_t r;
        return __builtin_add_overflow(a, b, &r) ? UINT64_MAX : r;
}

static uint64_t mul_sat(uint64_t a, uint64_t b) {
        uint64_t r;
        return __builtin_mul_overflow(a, b, &r) ? UINT64_MAX : r;
}

/* Parse a bracket number at s[*i], advancing *i. */
static int parse_number(const char *s, size_t end, size_t *i, uint64_t *ret, size_t *ret_digits) {
        uint64_t v = 0;
        size_t n = 0;

        while (*i < end && is_digit(s[*i])) {
                if (++n > HOSTLIST_DIGITS_MAX)
                        return -E2BIG;
                v = v * 10 + (uint64_t) (s[*i] - '0');
                (*i)++;
        }
        if (n == 0)
                return -EINVAL;
        *ret = v;
        *ret_digits = n;
        return 0;
}

/* One element s[start..end): check it and count the names it expands to. */
static int scan_element(const char *s, size_t start, size_t end, uint64_t *ret_count, char **ret_error) {
        char el[SNIPPET_MAX];
        uint64_t count = 1;
        size_t name_len = 0, digit_run = 0, i = start;
        bool after_bracket = false, literal_after_bracket = false;

#define ELEMENT snippet(s + start, end - start, el, sizeof(el))
        while (i < end) {
                char c = s[i];

                if (is_name_char(c)) {
                        digit_run = is_digit(c) ? digit_run + 1 : 0;
                        if (digit_run > HOSTLIST_DIGITS_MAX)
                                return errmsg(ret_error, -EINVAL,
                                            "hostlist element \"%s\": number with more than %d digits",
                                            ELEMENT, HOSTLIST_DIGITS_MAX);
                        name_len++;
                        literal_after_bracket = after_bracket;
                        i++;
                } else if (c == '[') {
                        uint64_t n = 0;
                        size_t width = 0;

                        i++;
                        for (;;) {
                                uint64_t lo, hi;
                                size_t range_start = i, dlo, dhi;
                                char rs[SNIPPET_MAX];
                                int r;

                                r = parse_number(s, end, &i, &lo, &dlo);
                                if (r == -EINVAL)
                                        return errmsg(ret_error, -EINVAL,
                                                    "hostlist element \"%s\": expected a number at \"%s\"",
                                                    ELEMENT, snippet(s + i, end - i, rs, sizeof(rs)));
                                hi = lo;
                                dhi = dlo;
                                if (r == 0 && i < end && s[i] == '-') {
                                        i++;
                                        r = parse_number(s, end, &i, &hi, &dhi);
                                        if (r == -EINVAL)
                                                return errmsg(ret_error, -EINVAL,
                                                            "hostlist element \"%s\": expected a number after '-' in \"%s\"",
                                                            ELEMENT, snippet(s + range_start, i - range_start, rs, sizeof(rs)));
                                }
                                if (r == -E2BIG)
                                        return errmsg(ret_error, -EINVAL,
                                                    "hostlist element \"%s\": number with more than %d digits",
                                                    ELEMENT, HOSTLIST_DIGITS_MAX);
                                snippet(s + range_start, i - range_start, rs, sizeof(rs));
                                if (hi < lo)
                                        return errmsg(ret_error, -EINVAL,
                                                    "hostlist element \"%s\": range \"%s\" goes backwards",
                                                    ELEMENT, rs);
                                if (hi - lo + 1 > HOSTLIST_RANGE_MAX)
                                        return errmsg(ret_error, -EINVAL,
                                                    "hostlist element \"%s\": range \"%s\" spans %" PRIu64
                                                    " numbers, at most %d in one range (split it: \"a-b,c-d\")",
                                                    ELEMENT, rs, hi - lo + 1, HOSTLIST_RANGE_MAX);
                                n += hi - lo + 1;
                                width = MAX(width, MAX(dlo, dhi));
                                if (i < end && s[i] == ',') {
                                        i++;
                                        continue;
                                }
                                if (i < end && s[i] == ']') {
                                        i++;
                                        break;
                                }
                                if (i >= end)
                                        return errmsg(ret_error, -EINVAL,
                                                    "hostlist element \"%s\": '[' without ']'", ELEMENT);
                                return errmsg(ret_error, -EINVAL,
                                            "hostlist element \"%s\": unexpected \"%s\" inside brackets",
                                            ELEMENT, snippet(s + i, 1, rs, sizeof(rs)));
                        }
                        digit_run += width;
                        if (digit_run > HOSTLIST_DIGITS_MAX)
                                return errmsg(ret_error, -EINVAL,
                                            "hostlist element \"%s\": number with more than %d digits",
                                            ELEMENT, HOSTLIST_DIGITS_MAX);
                        name_len += width;
                        count = mul_sat(count, n);
                        after_bracket = true;
                        literal_after_bracket = false;
                } else if (c == ']') {
                        return errmsg(ret_error, -EINVAL, "hostlist element \"%s\": ']' without '['", ELEMENT);
                } else {
                        char cs[16];
                        return errmsg(ret_error, -EINVAL,
                                    "hostlist element \"%s\": illegal character \"%s\" (node names use A-Z a-z 0-9 . _ -)",
                                    ELEMENT, snippet(s + i, 1, cs, sizeof(cs)));
                }
        }
        if (literal_after_bracket)
                return errmsg(ret_error, -EINVAL,
                            "hostlist element \"%s\": text after the last ']' is not supported by Slurm",
                            ELEMENT);
        if (name_len > HOSTLIST_NAME_MAX)
                return errmsg(ret_error, -EINVAL,
                            "hostlist element \"%s\": node names longer than %d characters",
                            ELEMENT, HOSTLIST_NAME_MAX);
#undef ELEMENT
        *ret_count = count;
        return 0;
}

/* Where the element starting at s[i] ends: at a separator outside brackets. */
static size_t element_end(const char *s, size_t len, size_t i) {
        bool in_bracket = false;

        for (; i < len; i++) {
                if (s[i] == '[')
                        in_bracket = true;
                else if (s[i] == ']')
                        in_bracket = false;
                else if (!in_bracket && (s[i] == ',' || is_blank(s[i])))
                        break;
        }
        return i;
}

/* Check S and count its nodes; call ELEMENT (if any) for each element. */
static int scan(const char *s, int (*element)(const char *e, size_t len, void *userdata), void *userdata,
                uint64_t *ret_count, char **ret_error) {
        size_t len = strnlen(s, HOSTLIST_TEXT_MAX + 1), i = 0;
        uint64_t total = 0;
        char sn[SNIPPET_MAX];

        if (len > HOSTLIST_TEXT_MAX)
                return errmsg(ret_error, -E2BIG, "hostlist is longer than %u bytes", HOSTLIST_TEXT_MAX);

        while (i < len && is_blank(s[i]))
                i++;
        while (i < len) {
                uint64_t n = 0;
                size_t end;
                int r;

                if (s[i] == ',')
                        return errmsg(ret_error, -EINVAL, "hostlist \"%s\": empty element at offset %zu",
                                    snippet(s, len, sn, sizeof(sn)), i);
                end = element_end(s, len, i);
                r = scan_element(s, i, end, &n, ret_error);
                if (r < 0)
                        return r;
                total = add_sat(total, n);
                if (element && (r = element(s + i, end - i, userdata)) < 0)
                        return r;

                i = end;
                while (i < len && is_blank(s[i]))
                        i++;
                if (i < len && s[i] == ',') {
                        i++;
                        while (i < len && is_blank(s[i]))
                                i++;
                        if (i == len)
                                return errmsg(ret_error, -EINVAL, "hostlist \"%s\": ends with ','",
                                            snippet(s, len, sn, sizeof(sn)));
                }
        }
        *ret_count = total;
        return 0;
}

static int check_count(uint64_t n, size_t max_nodes, char **ret_error) {
        if (n <= max_nodes)
                return 0;
        if (n == UINT64_MAX)
                return errmsg(ret_error, -E2BIG, "hostlist has more than %" PRIu64 " nodes, limit is %zu",
                            UINT64_MAX - 1, max_nodes);
        return errmsg(ret_error, -E2BIG, "hostlist has %" PRIu64 " nodes, limit is %zu", n, max_nodes);
}

int hostlist_count(const char *hostlist, size_t max_nodes, size_t *ret_count, char **ret_error) {
        uint64_t n;
        int r;

        if (!hostlist)
                return errmsg(ret_error, -EINVAL, "no hostlist");
        r = scan(hostlist, NULL, NULL, &n, ret_error);
        if (r < 0)
                return r;
        r = check_count(n, max_nodes, ret_error);
        if (r < 0)
                return r;
        *ret_count = (size_t) n;
        return 0;
}

static int compare_namep(const void *a, const void *b) {
        return hostlist_name_compare(*(char *const *) a, *(char *const *) b);
}

/* Sort and drop duplicates in place; returns the new length. */
static size_t sort_uniq(char **v, size_t n) {
        size_t k = 0;

        if (n == 0)
                return 0;
        qsort(v, n, sizeof(char *), compare_namep);
        for (size_t i = 1; i < n; i++) {
                if (strcmp(v[i], v[k]) == 0)
                        free(v[i]);
                else
                        v[++k] = v[i];
        }
        v[k + 1] = NULL;
        return k + 1;
}

struct expansion {
        char **v;
        size_t n, max;
        char name[HOSTLIST_NAME_MAX + 1];
};

/* Expand the validated element E[i..end) after NAME[0..len): literals are
 * copied, each bracket number is printed with the width of its range's low
 * end, as libslurm does ("cn[09-11]" -> cn09 cn10 cn11, "cn[9-011]" -> cn9
 * cn10 cn11). Depth is bounded by the name length (each bracket adds a digit). */
static int expand_element(struct expansion *x, const char *e, size_t i, size_t end, size_t len) {
        while (i < end && e[i] != '[')
                x->name[len++] = e[i++];
        if (i == end) {
                if (x->n >= x->max)
                        return -E2BIG; /* the count said otherwise: a bug */
                x->v[x->n] = strndup(x->name, len);
                if (!x->v[x->n])
                        return -ENOMEM;
                x->n++;
                return 0;
        }

        size_t close = i;
        while (e[close] != ']')
                close++;
        for (size_t k = i + 1; k < close;) {
                uint64_t lo = 0, hi;
                int width = 0;

                for (; is_digit(e[k]); k++, width++)
                        lo = lo * 10 + (uint64_t) (e[k] - '0');
                hi = lo;
                if (e[k] == '-')
                        for (hi = 0, k++; is_digit(e[k]); k++)
                                hi = hi * 10 + (uint64_t) (e[k] - '0');
                if (e[k] == ',')
                        k++;
                for (uint64_t num = lo; num <= hi; num++) {
                        int w = snprintf(x->name + len, sizeof(x->name) - len, "%0*" PRIu64, width, num);
                        int r;

                        if (w < 0 || (size_t) w >= sizeof(x->name) - len)
                                return -EINVAL; /* validated: cannot happen */
                        r = expand_element(x, e, close + 1, end, len + (size_t) w);
                        if (r < 0)
                                return r;
                }
        }
        return 0;
}

static int expand_cb(const char *e, size_t len, void *userdata) {
        return expand_element(userdata, e, 0, len, 0);
}

int hostlist_expand(const char *hostlist, size_t max_nodes,
                    char ***ret_nodes, size_t *ret_n, char **ret_error) {
        struct expansion x = {};
        uint64_t count;
        size_t n;
        int r;

        if (!hostlist)
                return errmsg(ret_error, -EINVAL, "no hostlist");
        /* Count first: nothing is expanded for a hostlist over the cap. */
        r = scan(hostlist, NULL, NULL, &count, ret_error);
        if (r < 0)
                return r;
        r = check_count(count, max_nodes, ret_error);
        if (r < 0)
                return r;

        /* Expanded here rather than by libslurm, whose hostlists are
         * quadratic in the number of ranges (create, uniq and shift each
         * move the rest of the list): 0.5 s for 65536 scattered nodes. */
        x.max = (size_t) count;
        x.v = calloc(x.max + 1, sizeof(char *));
        if (!x.v)
                return -ENOMEM;
        r = scan(hostlist, expand_cb, &x, &count, ret_error);
        if (r < 0) {
                strv_free(x.v);
                return r;
        }
        n = sort_uniq(x.v, x.n);

        *ret_nodes = x.v;
        if (ret_n)
                *ret_n = n;
        return 0;
}

bool hostlist_name_is_valid(const char *name) {
        size_t len, digit_run = 0;

        if (!name)
                return false;
        len = strnlen(name, HOSTLIST_NAME_MAX + 1);
        if (len == 0 || len > HOSTLIST_NAME_MAX)
                return false;
        for (size_t i = 0; i < len; i++) {
                if (!is_name_char(name[i]))
                        return false;
                digit_run = is_digit(name[i]) ? digit_run + 1 : 0;
                if (digit_run > HOSTLIST_DIGITS_MAX)
                        return false;
        }
        return true;
}

struct buf {
        char *data;
        size_t len, size;
};

static int buf_put(struct buf *b, const char *s, size_t n) {
        if (b->len + n + 1 > b->size) {
                size_t size = MAX(b->size * 2, b->len + n + 64);
                char *d = realloc(b->data, size);

                if (!d)
                        return -ENOMEM;
                b->data = d;
                b->size = size;
        }
        memcpy(b->data + b->len, s, n);
        b->len += n;
        b->data[b->len] = 0;
        return 0;
}

/* A node name split for compression: PREFIX[0..plen) then, when dlen > 0,
 * a trailing number of dlen digits with value v. */
struct cname {
        const char *name;
        size_t plen, dlen;
        uint64_t v;
};

static void cname_split(const char *name, struct cname *ret) {
        size_t len = strlen(name), i = len;

        while (i > 0 && is_digit(name[i - 1]))
                i--;
        *ret = (struct cname) { .name = name, .plen = i, .dlen = len - i };
        /* All digits: no prefix to hang a bracket on; kept as a literal. */
        if (i == 0)
                ret->dlen = 0, ret->plen = len;
        for (size_t k = ret->plen; k < len; k++)
                ret->v = ret->v * 10 + (uint64_t) (name[k] - '0');
}

static int cname_compare(const void *pa, const void *pb) {
        const struct cname *a = pa, *b = pb;
        int c = memcmp(a->name, b->name, MIN(a->plen, b->plen));

        if (c != 0)
                return c;
        if (a->plen != b->plen)
                return a->plen < b->plen ? -1 : 1;
        if ((a->dlen > 0) != (b->dlen > 0))
                return a->dlen > 0 ? 1 : -1;
        if (a->v != b->v)
                return a->v < b->v ? -1 : 1;
        if (a->dlen != b->dlen)
                return a->dlen < b->dlen ? -1 : 1;
        return 0;
}

static bool same_prefix(const struct cname *a, const struct cname *b) {
        return a->plen == b->plen && (a->dlen > 0) == (b->dlen > 0) &&
               memcmp(a->name, b->name, a->plen) == 0;
}

/* Whether N prints as its own digits in a range of WIDTH (the expander
 * pads every number to the width of its range's low end). */
static bool fits_width(const struct cname *n, size_t width) {
        char d[32];

        snprintf(d, sizeof(d), "%0*" PRIu64, (int) width, n->v);
        return strlen(d) == n->dlen && memcmp(d, n->name + n->plen, n->dlen) == 0;
}

static int put_number(struct buf *b, uint64_t v, size_t width) {
        char d[32];
        int k = snprintf(d, sizeof(d), "%0*" PRIu64, (int) width, v);

        return buf_put(b, d, (size_t) k);
}

/* Append the names v[0..n) (sorted, unique, one prefix) as "prefix[lo-hi,..]"
 * or, for a single name, the name itself. */
static int put_group(struct buf *b, const struct cname *v, size_t n) {
        int r;

        if (n == 1 || v[0].dlen == 0)
                return buf_put(b, v[0].name, strlen(v[0].name));
        r = buf_put(b, v[0].name, v[0].plen);
        if (r >= 0)
                r = buf_put(b, "[", 1);
        for (size_t i = 0; i < n && r >= 0;) {
                size_t width = v[i].dlen, j = i + 1;

                while (j < n && v[j].v == v[j - 1].v + 1 && v[j].v - v[i].v < HOSTLIST_RANGE_MAX &&
                       fits_width(&v[j], width))
                        j++;
                if (i > 0)
                        r = buf_put(b, ",", 1);
                if (r >= 0)
                        r = put_number(b, v[i].v, width);
                if (r >= 0 && j - i > 1) {
                        r = buf_put(b, "-", 1);
                        if (r >= 0)
                                r = put_number(b, v[j - 1].v, width);
                }
                i = j;
        }
        if (r >= 0)
                r = buf_put(b, "]", 1);
        return r;
}

int hostlist_compress(char *const *nodes, size_t n, char **ret_hostlist, char **ret_error) {
        _cleanup_free_ struct cname *v = NULL;
        _cleanup_free_ char *out = NULL;
        struct buf b = {};
        size_t m = 0;
        int r = 0;

        for (size_t i = 0; i < n; i++)
                if (!hostlist_name_is_valid(nodes[i])) {
                        char sn[SNIPPET_MAX];
                        const char *name = nodes[i] ? nodes[i] : "";
                        return errmsg(ret_error, -EINVAL, "invalid node name \"%s\"",
                                    snippet(name, strnlen(name, SNIPPET_MAX), sn, sizeof(sn)));
                }

        v = malloc(MAX(n, (size_t) 1) * sizeof(*v));
        if (!v)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                cname_split(nodes[i], &v[i]);
        qsort(v, n, sizeof(*v), cname_compare);
        /* Equal under cname_compare means the same string. */
        for (size_t i = 0; i < n; i++)
                if (m == 0 || cname_compare(&v[m - 1], &v[i]) != 0)
                        v[m++] = v[i];

        for (size_t i = 0; i < m && r >= 0;) {
                size_t j = i + 1;

                while (j < m && v[i].dlen > 0 && same_prefix(&v[i], &v[j]))
                        j++;
                if (i > 0)
                        r = buf_put(&b, ",", 1);
                if (r >= 0)
                        r = put_group(&b, v + i, j - i);
                i = j;
        }
        out = b.data;
        if (r < 0)
                return r;
        if (!out) {
                out = strdup("");
                if (!out)
                        return -ENOMEM;
        }
        *ret_hostlist = TAKE_PTR(out);
        return 0;
}

int hostlist_compress_bounded(char *const *nodes, size_t n, size_t max_len,
                              char **ret_text, size_t *ret_count) {
        _cleanup_free_ char **sorted = NULL;
        _cleanup_free_ char *best = NULL;
        size_t m = 0, lo, hi;
        int r;

        sorted = malloc(MAX(n, (size_t) 1) * sizeof(char *));
        if (!sorted)
                return -ENOMEM;
        if (n > 0) {
                memcpy(sorted, nodes, n * sizeof(char *));
                qsort(sorted, n, sizeof(char *), compare_namep);
                m = 1;
                for (size_t i = 1; i < n; i++)
                        if (strcmp(sorted[i], sorted[m - 1]) != 0)
                                sorted[m++] = sorted[i];
        }

        r = hostlist_compress(sorted, m, &best, NULL);
        if (r < 0)
                return r;
        if (strlen(best) > max_len && m > 1) {
                /* The longest prefix (in node order) whose text fits: the
                 * text grows with the prefix, so bisect on its length. */
                best = mfree(best);
                lo = 1;
                hi = m - 1;
                while (lo <= hi) {
                        size_t k = lo + (hi - lo) / 2;
                        _cleanup_free_ char *s = NULL, *t = NULL;

                        r = hostlist_compress(sorted, k, &s, NULL);
                        if (r < 0)
                                return r;
                        if (asprintf(&t, "%s and %zu more", s, m - k) < 0)
                                return -ENOMEM;
                        if (strlen(t) <= max_len || k == 1) {
                                free(best);
                                best = TAKE_PTR(t);
                                if (strlen(best) > max_len)
                                        break;
                                lo = k + 1;
                        } else
                                hi = k - 1;
                }
        }
        *ret_text = TAKE_PTR(best);
        if (ret_count)
                *ret_count = m;
        return 0;
}

int hostlist_message(char **ret, size_t max_len, char *const *nodes, size_t n, const char *fmt, ...) {
        _cleanup_free_ char *head = NULL, *list = NULL;
        char *msg;
        size_t len;
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = vasprintf(&head, fmt, ap);
        va_end(ap);
        if (r < 0)
                return -ENOMEM;
        if (n == 0) {
                *ret = TAKE_PTR(head);
                return 0;
        }
        len = strlen(head) + 2;
        r = hostlist_compress_bounded(nodes, n, max_len > len ? max_len - len : 0, &list, NULL);
        if (r < 0)
                return r;
        if (asprintf(&msg, "%s: %s", head, list) < 0)
                return -ENOMEM;
        *ret = msg;
        return 0;
}

int hostlist_name_compare(const char *a, const char *b) {
        while (*a && *b) {
                if (is_digit(*a) && is_digit(*b)) {
                        const char *sa = a, *sb = b, *ea, *eb;

                        while (*sa == '0')
                                sa++;
                        while (*sb == '0')
                                sb++;
                        for (ea = sa; is_digit(*ea); ea++)
                                ;
                        for (eb = sb; is_digit(*eb); eb++)
                                ;
                        /* Value first: more significant digits is bigger. */
                        if (ea - sa != eb - sb)
                                return ea - sa < eb - sb ? -1 : 1;
                        int c = memcmp(sa, sb, (size_t) (ea - sa));
                        if (c != 0)
                                return c < 0 ? -1 : 1;
                        /* Same value: less padding first. */
                        if (ea - a != eb - b)
                                return ea - a < eb - b ? -1 : 1;
                        a = ea;
                        b = eb;
                        continue;
                }
                if (*a != *b)
                        return (unsigned char) *a < (unsigned char) *b ? -1 : 1;
                a++;
                b++;
        }
        return *a ? 1 : *b ? -1 : 0;
}
