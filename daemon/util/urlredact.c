/* urlredact.c - redact userinfo and credential query values in URLs inside any text. */
#include "util/urlredact.h"

#include <string.h>
#include <strings.h>

static bool url_end(char c) {
        return c == '\0' || c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '"' || c == '\'' ||
               c == '<' || c == '>' || c == '`' || c == '\\';
}

/* Where a URL inside prose stops: also at "URL: more" and "URL, more". */
static bool url_stop(const char *s) {
        return url_end(*s) || ((*s == ':' || *s == ',' || *s == ')') && url_end(s[1]));
}

static bool name_is_secret(const char *name, size_t len) {
        static const char *const words[] = {
                "token", "password", "passwd", "pass", "pwd", "secret", "key", "sig", "signature",
                "credential", "auth", "session",
        };

        for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
                size_t w = strlen(words[i]);
                for (size_t j = 0; j + w <= len; j++)
                        if (strncasecmp(name + j, words[i], w) == 0)
                                return true;
        }
        return false;
}

struct out {
        char *p;
        size_t size, len;
};

static void put(struct out *o, const char *s, size_t n) {
        for (size_t i = 0; i < n && o->len + 1 < o->size; i++)
                o->p[o->len++] = s[i];
}

size_t urlredact(const char *in, char *out, size_t size) {
        struct out o = { out, size, 0 };
        const char *s = in;

        if (size == 0)
                return 0;
        while (*s) {
                const char *scheme = strstr(s, "://");
                const char *auth, *end, *at = NULL;

                if (!scheme) {
                        put(&o, s, strlen(s));
                        break;
                }
                auth = scheme + 3;
                put(&o, s, (size_t) (auth - s));
                /* The authority: up to the path, query, fragment or the URL's end. */
                for (end = auth; !url_stop(end) && *end != '/' && *end != '?' && *end != '#'; end++)
                        if (*end == '@')
                                at = end;
                if (at) {
                        put(&o, URLREDACT_MARK, strlen(URLREDACT_MARK));
                        auth = at;
                }
                put(&o, auth, (size_t) (end - auth));
                s = end;
                /* Path, then query parameters (name=value) up to the URL's end. */
                while (!url_stop(s)) {
                        if ((*s == '?' || *s == '&' || *s == ';') && !url_stop(s + 1)) {
                                const char *name = s + 1, *eq = name;
                                while (!url_stop(eq) && *eq != '=' && *eq != '&' && *eq != '#')
                                        eq++;
                                put(&o, s, (size_t) (eq - s));
                                s = eq;
                                if (*eq == '=' && name_is_secret(name, (size_t) (eq - name))) {
                                        put(&o, "=" URLREDACT_MARK, strlen("=" URLREDACT_MARK));
                                        s = eq + 1;
                                        while (!url_stop(s) && *s != '&' && *s != '#' && *s != ';')
                                                s++;
                                }
                                continue;
                        }
                        put(&o, s, 1);
                        s++;
                }
        }
        o.p[o.len] = '\0';
        return o.len;
}

bool urlredact_has_secret(const char *url) {
        char buf[4096];

        if (strlen(url) >= sizeof(buf))
                return true;  /* too long to tell: treat as suspicious */
        urlredact(url, buf, sizeof(buf));
        return strcmp(buf, url) != 0;
}
