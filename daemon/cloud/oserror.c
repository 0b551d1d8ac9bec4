/* oserror.c - an OpenStack API error: HTTP status, the cloud's message, request id. */
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "cloud/oserror.h"
#include "cloud/osjson.h"

void os_error_clear(struct os_error *e) {
        if (!e)
                return;
        free(e->message);
        free(e->request_id);
        *e = (struct os_error) {};
}

/* Messages end up in logs and in JSON replies: make them one line of valid
 * UTF-8 (invalid bytes become '?', control characters spaces). */
static void sanitize(char *s) {
        for (unsigned char *p = (unsigned char *) s; *p; ) {
                size_t n = osjson_utf8_char_len(p);
                if (n == 0) {
                        *p++ = '?';
                        continue;
                }
                if (n == 1 && (*p < 0x20 || *p == 0x7f))
                        *p = ' ';
                p += n;
        }
}

int os_error_set(struct os_error *e, int err, const char *fmt, ...) {
        va_list ap;
        char *m;

        if (!e)
                return err;
        va_start(ap, fmt);
        if (vasprintf(&m, fmt, ap) < 0)
                m = NULL;
        va_end(ap);
        if (m)
                sanitize(m);
        free(e->message);
        e->message = m;         /* NULL on ENOMEM: the errno still tells */
        return err;
}

int os_error_set_request_id(struct os_error *e, const char *request_id) {
        char *s = NULL;

        if (!e)
                return 0;
        if (request_id) {
                s = strdup(request_id);
                if (!s)
                        return -ENOMEM;
        }
        free(e->request_id);
        e->request_id = s;
        return 0;
}

/* Append text to a bounded one-line buffer: control characters become spaces,
 * runs of whitespace collapse, HTML tags are dropped when STRIP_TAGS. */
struct line {
        char buf[OS_ERROR_MESSAGE_MAX + 1];
        size_t len;
        bool space;     /* last written char was a space (or nothing yet) */
        bool full;
};

static void line_add(struct line *l, const char *s, size_t n, bool strip_tags) {
        bool in_tag = false;

        for (size_t i = 0; i < n && !l->full; i++) {
                unsigned char c = (unsigned char) s[i];

                if (strip_tags) {
                        if (c == '<') {
                                in_tag = true;
                                continue;
                        }
                        if (in_tag) {
                                if (c == '>') {
                                        in_tag = false;
                                        c = ' ';    /* "<br />" separates words */
                                } else
                                        continue;
                        }
                }
                if (c < 0x20 || c == 0x7f || c == ' ') {
                        if (l->space)
                                continue;
                        c = ' ';
                }
                if (l->len + 1 > OS_ERROR_MESSAGE_MAX - 3) {
                        memcpy(l->buf + l->len, "...", 3);
                        l->len += 3;
                        l->full = true;
                        break;
                }
                l->buf[l->len++] = (char) c;
                l->space = c == ' ';
        }
}

static const char *line_finish(struct line *l) {
        /* cut a UTF-8 sequence that the length limit split */
        if (l->full) {
                size_t end = l->len - 3;
                size_t i = end;
                while (i > 0 && ((unsigned char) l->buf[i - 1] & 0xC0) == 0x80)
                        i--;
                if (i > 0 && (unsigned char) l->buf[i - 1] >= 0xC0) {
                        unsigned char lead = (unsigned char) l->buf[i - 1];
                        size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;
                        if (end - (i - 1) < need) {
                                memcpy(l->buf + i - 1, "...", 3);
                                l->len = i - 1 + 3;
                        }
                }
        }
        while (l->len > 0 && l->buf[l->len - 1] == ' ')
                l->len--;
        l->buf[l->len] = 0;
        sanitize(l->buf);
        return l->buf[0] == ' ' ? l->buf + 1 : l->buf;
}

static bool looks_like_html(const char *body, size_t len) {
        for (size_t i = 0; i < len; i++) {
                if (isspace((unsigned char) body[i]))
                        continue;
                return body[i] == '<';
        }
        return false;
}

/* The message of a parsed error body, or NULL if it has no known shape. */
static const char *fault_message(json_t *root, const char **ret_title) {
        const char *key;
        json_t *v, *m;

        *ret_title = NULL;
        if (!json_is_object(root))
                return NULL;

        /* Glance: {"message": "...", "code": "404 Not Found", "title": "..."} */
        m = json_object_get(root, "message");
        if (json_is_string(m)) {
                v = json_object_get(root, "title");
                *ret_title = json_is_string(v) ? json_string_value(v) : NULL;
                return json_string_value(m);
        }

        /* Keystone {"error":{...}}, Nova {"itemNotFound":{...}}: one wrapper object */
        json_object_foreach(root, key, v) {
                if (!json_is_object(v))
                        continue;
                m = json_object_get(v, "message");
                if (!json_is_string(m))
                        continue;
                json_t *t = json_object_get(v, "title");
                *ret_title = json_is_string(t) ? json_string_value(t) : key;
                return json_string_value(m);
        }
        return NULL;
}

int os_error_from_body(struct os_error *e, const char *body, size_t len) {
        struct line l = { .space = true };
        json_t *root = NULL;
        const char *title = NULL, *msg = NULL;
        char *m;

        if (!e)
                return 0;
        if (!body || len == 0) {
                os_error_set(e, 0, "empty response body");
                return e->message ? 0 : -ENOMEM;
        }

        if (len <= OS_BODY_MAX) {
                root = json_loadb(body, len, 0, NULL);
                msg = fault_message(root, &title);
        }

        if (msg) {
                if (title && *title && strcmp(title, "error") != 0) {
                        line_add(&l, title, strlen(title), false);
                        line_add(&l, ": ", 2, false);
                }
                /* Glance puts "<br />" into its JSON messages */
                line_add(&l, msg, strlen(msg), true);
        } else if (root) {
                line_add(&l, "unrecognised JSON error body", 28, false);
        } else
                line_add(&l, body, len, looks_like_html(body, len));
        json_decref(root);

        const char *text = line_finish(&l);
        m = strdup(text[0] ? text : "error body without text");
        if (!m)
                return -ENOMEM;
        free(e->message);
        e->message = m;
        return 0;
}

char *os_error_to_string(const struct os_error *e) {
        char *s;
        int r;

        if (!e)
                return NULL;
        if (e->status > 0)
                r = asprintf(&s, "HTTP %ld: %s%s%s%s", e->status,
                             e->message ?: "no message",
                             e->request_id ? " (request " : "",
                             e->request_id ?: "",
                             e->request_id ? ")" : "");
        else
                r = asprintf(&s, "%s%s%s%s", e->message ?: "unknown error",
                             e->request_id ? " (request " : "",
                             e->request_id ?: "",
                             e->request_id ? ")" : "");
        return r < 0 ? NULL : s;
}

/* The failure table (doc/failures.md keeps the same rows). The first row
 * that matches wins: the cloud's words about capacity come before the
 * errno, since Nova says "No valid host" with a 500 and quota with 403 or 413. */
struct failure_rule {
        int error;              /* 0: any */
        const char *message;    /* a case-insensitive substring of the cloud's message; NULL: any */
        enum os_failure failure;
};

static const struct failure_rule failure_rules[] = {
        { 0, "No valid host was found", OS_FAILURE_CAPACITY },
        { 0, "Insufficient compute resources", OS_FAILURE_CAPACITY },
        { 0, "insufficient capacity", OS_FAILURE_CAPACITY },
        { 0, "Exceeded maximum number of retries", OS_FAILURE_CAPACITY },
        { 0, "Quota exceeded", OS_FAILURE_CAPACITY },
        { -EDQUOT, NULL, OS_FAILURE_CAPACITY },           /* 403/413 over quota */
        { -ETIMEDOUT, NULL, OS_FAILURE_TRANSIENT },       /* no answer in time */
        { -ECONNRESET, NULL, OS_FAILURE_TRANSIENT },      /* dropped, empty or cut reply */
        { -ECONNREFUSED, NULL, OS_FAILURE_TRANSIENT },    /* service (or Keystone) down */
        { -EHOSTUNREACH, NULL, OS_FAILURE_TRANSIENT },    /* DNS or route */
        { -EREMOTEIO, NULL, OS_FAILURE_TRANSIENT },       /* 5xx */
        { -EAGAIN, NULL, OS_FAILURE_TRANSIENT },          /* 429 */
        { -EBUSY, NULL, OS_FAILURE_TRANSIENT },           /* 409: locked or busy, for now */
        { -EIO, NULL, OS_FAILURE_TRANSIENT },             /* a create's fate still unknown */
        { -ENOKEY, NULL, OS_FAILURE_TRANSIENT },          /* no token yet */
        /* Everything else: 400 (-EINVAL), unknown flavor/image/network
         * (-ENOENT, -ENOTUNIQ), 403 (-EPERM), bad credentials (-EACCES: a 401
         * even with a fresh token), TLS (-EKEYREJECTED), unreadable answers
         * (-EBADMSG), an old Nova (-EPROTONOSUPPORT). */
};

static bool message_has(const char *message, const char *what) {
        return message && what && strcasestr(message, what) != NULL;
}

enum os_failure os_failure_classify(int error, const struct os_error *e) {
        const char *message = e ? e->message : NULL;

        for (size_t i = 0; i < sizeof(failure_rules) / sizeof(failure_rules[0]); i++) {
                const struct failure_rule *r = &failure_rules[i];

                if (r->error && r->error != error)
                        continue;
                if (r->message && !message_has(message, r->message))
                        continue;
                return r->failure;
        }
        /* 408 Request Timeout from a proxy: nothing was done */
        if (e && e->status == 408)
                return OS_FAILURE_TRANSIENT;
        return OS_FAILURE_PERMANENT;
}

bool os_failure_is_transient(int error, const struct os_error *e) {
        return os_failure_classify(error, e) == OS_FAILURE_TRANSIENT;
}

enum os_failure os_fault_classify(const char *message) {
        for (size_t i = 0; i < sizeof(failure_rules) / sizeof(failure_rules[0]); i++)
                if (failure_rules[i].error == 0 && message_has(message, failure_rules[i].message))
                        return failure_rules[i].failure;
        return OS_FAILURE_PERMANENT;
}

const char *os_failure_to_string(enum os_failure f) {
        switch (f) {
        case OS_FAILURE_TRANSIENT:
                return "transient";
        case OS_FAILURE_CAPACITY:
                return "capacity";
        case OS_FAILURE_PERMANENT:
                return "permanent";
        }
        return "?";
}
