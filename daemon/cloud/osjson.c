/* osjson.c - typed, bounded reads of OpenStack JSON responses; errors name the field. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "cloud/osjson.h"

const char *osjson_type_name(const json_t *j) {
        if (!j)
                return "missing";
        switch (json_typeof(j)) {
        case JSON_OBJECT:  return "an object";
        case JSON_ARRAY:   return "an array";
        case JSON_STRING:  return "a string";
        case JSON_INTEGER: return "an integer";
        case JSON_REAL:    return "a number";
        case JSON_TRUE:
        case JSON_FALSE:   return "a boolean";
        case JSON_NULL:    return "null";
        }
        return "unknown";
}

int osjson_load(const char *body, size_t len, const char *what, json_t **ret, struct os_error *err) {
        json_error_t jerr;
        json_t *root;

        if (!body || len == 0)
                return os_error_set(err, -EBADMSG, "%s: empty response body", what);
        if (len > OS_BODY_MAX)
                return os_error_set(err, -EBADMSG, "%s: response body too large (%zu bytes, limit %u)",
                                    what, len, OS_BODY_MAX);

        /* jansson caps nesting depth (2048) itself; duplicates would be ambiguous */
        root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!root)
                /* jerr.text never quotes the input beyond a token; still keep it short */
                return os_error_set(err, -EBADMSG, "%s: response is not valid JSON (line %d, column %d): %.80s",
                                    what, jerr.line, jerr.column, jerr.text);
        if (!json_is_object(root)) {
                os_error_set(err, -EBADMSG, "%s: response is %s, expected a JSON object",
                             what, osjson_type_name(root));
                json_decref(root);
                return -EBADMSG;
        }
        *ret = root;
        return 0;
}

/* Look up KEY; 1 when missing/null is allowed and happened, <0 on error. */
static int get(json_t *obj, const char *path, const char *key, unsigned flags,
               json_t **ret, struct os_error *err) {
        json_t *v = json_object_get(obj, key);

        if (!v) {
                if (flags & OSJSON_OPTIONAL)
                        return 1;
                return os_error_set(err, -EBADMSG, "%s.%s: missing", path, key);
        }
        if (json_is_null(v)) {
                if (flags & OSJSON_NULLABLE)
                        return 1;
                return os_error_set(err, -EBADMSG, "%s.%s: is null", path, key);
        }
        *ret = v;
        return 0;
}

static int wrong_type(const char *path, const char *key, const char *want, json_t *v,
                      struct os_error *err) {
        return os_error_set(err, -EBADMSG, "%s.%s: expected %s, got %s",
                            path, key, want, osjson_type_name(v));
}

int osjson_get_string(json_t *obj, const char *path, const char *key, unsigned flags,
                      char **ret, struct os_error *err) {
        json_t *v = NULL;
        char *s;
        int r;

        r = get(obj, path, key, flags, &v, err);
        if (r != 0)
                return r;
        if (!json_is_string(v))
                return wrong_type(path, key, "a string", v, err);
        if (memchr(json_string_value(v), 0, json_string_length(v)))
                return os_error_set(err, -EBADMSG, "%s.%s: contains a NUL byte", path, key);
        s = strdup(json_string_value(v));
        if (!s)
                return -ENOMEM;
        free(*ret);
        *ret = s;
        return 0;
}

int osjson_get_object(json_t *obj, const char *path, const char *key, unsigned flags,
                      json_t **ret, struct os_error *err) {
        json_t *v = NULL;
        int r;

        r = get(obj, path, key, flags, &v, err);
        if (r != 0)
                return r;
        if (!json_is_object(v))
                return wrong_type(path, key, "an object", v, err);
        *ret = v;
        return 0;
}

int osjson_get_array(json_t *obj, const char *path, const char *key, unsigned flags,
                     size_t max, json_t **ret, struct os_error *err) {
        json_t *v = NULL;
        int r;

        r = get(obj, path, key, flags, &v, err);
        if (r != 0)
                return r;
        if (!json_is_array(v))
                return wrong_type(path, key, "an array", v, err);
        if (json_array_size(v) > max)
                return os_error_set(err, -EBADMSG, "%s.%s: %zu entries, more than the limit of %zu",
                                    path, key, json_array_size(v), max);
        *ret = v;
        return 0;
}

int osjson_get_int(json_t *obj, const char *path, const char *key, unsigned flags,
                   long long min, long long max, long long *ret, struct os_error *err) {
        json_t *v = NULL;
        json_int_t i;
        int r;

        r = get(obj, path, key, flags, &v, err);
        if (r != 0)
                return r;
        if (!json_is_integer(v))
                return wrong_type(path, key, "an integer", v, err);
        i = json_integer_value(v);
        if (i < min || i > max)
                return os_error_set(err, -EBADMSG, "%s.%s: %lld is out of range [%lld, %lld]",
                                    path, key, (long long) i, min, max);
        *ret = i;
        return 0;
}

int osjson_get_bool(json_t *obj, const char *path, const char *key, unsigned flags,
                    bool *ret, struct os_error *err) {
        json_t *v = NULL;
        int r;

        r = get(obj, path, key, flags, &v, err);
        if (r != 0)
                return r;
        if (!json_is_boolean(v))
                return wrong_type(path, key, "a boolean", v, err);
        *ret = json_is_true(v);
        return 0;
}

int osjson_get_time(json_t *obj, const char *path, const char *key, unsigned flags,
                    time_t *ret, struct os_error *err) {
        json_t *v = NULL;
        int r;

        r = get(obj, path, key, flags, &v, err);
        if (r != 0)
                return r;
        if (!json_is_string(v))
                return wrong_type(path, key, "a time string", v, err);
        if (osjson_parse_time(json_string_value(v), ret) < 0)
                return os_error_set(err, -EBADMSG, "%s.%s: not an ISO 8601 time", path, key);
        return 0;
}

static int digits(const char **p, int n, int *ret) {
        int v = 0;

        for (int i = 0; i < n; i++) {
                if (!isdigit((unsigned char) **p))
                        return -EINVAL;
                v = v * 10 + (**p - '0');
                (*p)++;
        }
        *ret = v;
        return 0;
}

int osjson_parse_time(const char *s, time_t *ret) {
        static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
        struct tm tm = {};
        int y, mo, d, h, mi, sec, oh = 0, om = 0, sign = 0;
        const char *p = s;
        time_t t;

        if (!s)
                return -EINVAL;
        if (digits(&p, 4, &y) < 0 || *p++ != '-' || digits(&p, 2, &mo) < 0 || *p++ != '-' ||
            digits(&p, 2, &d) < 0 || (*p != 'T' && *p != 't' && *p != ' '))
                return -EINVAL;
        p++;
        if (digits(&p, 2, &h) < 0 || *p++ != ':' || digits(&p, 2, &mi) < 0 || *p++ != ':' ||
            digits(&p, 2, &sec) < 0)
                return -EINVAL;
        if (*p == '.') {
                p++;
                if (!isdigit((unsigned char) *p))
                        return -EINVAL;
                while (isdigit((unsigned char) *p))
                        p++;
        }
        if (*p == 'Z' || *p == 'z')
                p++;
        else if (*p == '+' || *p == '-') {
                sign = *p++ == '-' ? -1 : 1;
                if (digits(&p, 2, &oh) < 0)
                        return -EINVAL;
                if (*p == ':')
                        p++;
                if (digits(&p, 2, &om) < 0 || oh > 23 || om > 59)
                        return -EINVAL;
        }
        if (*p != 0)
                return -EINVAL;
        if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 || mi > 59 || sec > 60)
                return -EINVAL;

        tm.tm_year = y - 1900;
        tm.tm_mon = mo - 1;
        tm.tm_mday = d;
        tm.tm_hour = h;
        tm.tm_min = mi;
        tm.tm_sec = sec;
        t = timegm(&tm);
        if (t == (time_t) -1)
                return -EINVAL;
        *ret = t - sign * (oh * 3600 + om * 60);
        return 0;
}

static int unhex(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

int osjson_url_query_param(const char *url, const char *name, char **ret) {
        const char *q;
        size_t nl = strlen(name);

        if (!url)
                return 1;
        q = strchr(url, '?');
        if (!q)
                return 1;
        for (q++; *q; ) {
                const char *end = strchrnul(q, '&');
                if ((size_t) (end - q) > nl && strncmp(q, name, nl) == 0 && q[nl] == '=') {
                        const char *v = q + nl + 1;
                        char *out = malloc(end - v + 1), *o = out;
                        if (!out)
                                return -ENOMEM;
                        while (v < end) {
                                int hi, lo;
                                if (*v == '%' && end - v >= 3 && (hi = unhex(v[1])) >= 0 &&
                                    (lo = unhex(v[2])) >= 0) {
                                        *o++ = (char) (hi * 16 + lo);
                                        v += 3;
                                } else if (*v == '+') {
                                        *o++ = ' ';
                                        v++;
                                } else
                                        *o++ = *v++;
                        }
                        *o = 0;
                        if (strlen(out) != (size_t) (o - out)) {   /* %00 */
                                free(out);
                                return -EINVAL;
                        }
                        *ret = out;
                        return 0;
                }
                q = *end ? end + 1 : end;
        }
        return 1;
}

size_t osjson_utf8_char_len(const unsigned char *s) {
        size_t n;
        unsigned c = s[0];

        if (c < 0x80)
                return 1;
        if (c >= 0xC2 && c <= 0xDF)
                n = 2;
        else if (c >= 0xE0 && c <= 0xEF)
                n = 3;
        else if (c >= 0xF0 && c <= 0xF4)
                n = 4;
        else
                return 0;
        for (size_t i = 1; i < n; i++)
                if ((s[i] & 0xC0) != 0x80)
                        return 0;
        /* overlong 3/4-byte forms, surrogates, > U+10FFFF */
        if ((c == 0xE0 && s[1] < 0xA0) || (c == 0xED && s[1] > 0x9F) ||
            (c == 0xF0 && s[1] < 0x90) || (c == 0xF4 && s[1] > 0x8F))
                return 0;
        return n;
}

bool osjson_utf8_valid(const char *s) {
        for (const unsigned char *p = (const unsigned char *) s; *p; ) {
                size_t n = osjson_utf8_char_len(p);
                if (n == 0)
                        return false;
                p += n;
        }
        return true;
}

char **osjson_strv_free(char **v) {
        if (!v)
                return NULL;
        for (char **p = v; *p; p++)
                free(*p);
        free(v);
        return NULL;
}
