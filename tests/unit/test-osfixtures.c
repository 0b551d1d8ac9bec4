/* test-osfixtures.c - every captured OpenStack exchange goes through the parser its URL calls for. */
#include <dirent.h>
#include <errno.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>

#include "cloud/glance.h"
#include "cloud/keystone.h"
#include "cloud/nova.h"
#include "osfixture.h"

static int match(const char *re, const char *s) {
        regex_t rx;
        int m;
        if (regcomp(&rx, re, REG_EXTENDED | REG_NOSUB) != 0)
                return 0;
        m = regexec(&rx, s, 0, NULL, 0) == 0;
        regfree(&rx);
        return m;
}

/* Parse one fixture; returns 0 ok, <0 failure, 1 no parser for its shape. */
static int check_fixture(const char *name) {
        json_t *x = fixture_load(name), *req;
        const char *method, *url;
        long status = 0;
        struct os_error e = {};
        int r = 1;

        if (!x)
                return -EIO;
        req = json_object_get(x, "request");
        method = json_string_value(json_object_get(req, "method"));
        url = json_string_value(json_object_get(req, "url"));
        _cleanup_free_ char *body = fixture_body(name, &status);
        size_t len = strlen(body);
        if (!method || !url) {
                json_decref(x);
                return -EBADMSG;
        }
        const char *path = strstr(url, "://");
        path = path ? strchrnul(path + 3, '/') : url;

#define MATCH(re) match(re, path)
        if (status >= 400) {
                r = os_error_from_body(&e, body, len);
                if (r == 0 && (!e.message || !*e.message || strstr(e.message, "unrecognised") ||
                               strstr(e.message, "empty response body")))
                        r = -EBADMSG;
        } else if (len == 0)
                r = (status == 202 || status == 204) ? 0 : -EBADMSG;
        else if (MATCH("^/v3/auth/tokens$")) {
                _cleanup_free_ char *tok = fixture_header(name, "X-Subject-Token");
                struct keystone_token *t = NULL;
                r = keystone_parse_token(tok, body, len, &t, &e);
                keystone_token_free(t);
        } else if (MATCH("^/v3/?$")) {
                char *id = NULL;
                r = keystone_parse_version(body, len, &id, &e);
                free(id);
        } else if (MATCH("^/v2[.]1/servers(/detail)?([?].*)?$") && strcmp(method, "GET") == 0) {
                struct nova_server_page *p = NULL;
                r = nova_parse_server_page(body, len, &p, &e);
                nova_server_page_free(p);
        } else if (MATCH("^/v2[.]1/servers$") && strcmp(method, "POST") == 0) {
                char *id = NULL;
                r = nova_parse_server_created(body, len, &id, &e);
                free(id);
        } else if (MATCH("^/v2[.]1/servers/[^/]+(/action)?$")) {
                struct nova_server *s = NULL;
                r = nova_parse_server(body, len, &s, &e);
                nova_server_free(s);
        } else if (MATCH("^/v2[.]1/servers/[^/]+/metadata(/.*)?$")) {
                struct nova_kv *kv = NULL;
                size_t n = 0;
                r = nova_parse_metadata(body, len, &kv, &n, &e);
                nova_kv_free_array(kv, n);
        } else if (MATCH("^/v2[.]1/flavors")) {
                struct nova_flavor_list *l = NULL;
                r = nova_parse_flavors(body, len, &l, &e);
                nova_flavor_list_free(l);
        } else if (strstr(url, ":8774/") && MATCH("^/(v2[.]1/?)?$")) {
                unsigned max = 0;
                r = nova_parse_version(body, len, &max, &e);
        } else if (MATCH("^/v2/images/[^/?]+$")) {
                struct glance_image *i = NULL;
                r = glance_parse_image(body, len, &i, &e);
                glance_image_free(i);
        } else if (MATCH("^/v2/images([?].*)?$")) {
                struct glance_image_list *l = NULL;
                r = glance_parse_image_list(body, len, &l, &e);
                glance_image_list_free(l);
        }
#undef MATCH
        if (r < 0)
                TEST_FAIL("%s (%s %s, %ld): %d %s", name, method, url, status, r, e.message ?: "");
        os_error_clear(&e);
        json_decref(x);
        return r;
}

static int cmp(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

int main(void) {
        DIR *d = opendir(FIXTURE_DIR);
        char *names[1024];
        size_t n = 0, parsed = 0;
        struct dirent *de;

        if (!d) {
                printf("not ok 1 - cannot open " FIXTURE_DIR "\n1..1\n");
                return 1;
        }
        while ((de = readdir(d)) && n < ELEMENTSOF(names)) {
                size_t l = strlen(de->d_name);
                if (l > 5 && strcmp(de->d_name + l - 5, ".json") == 0)
                        names[n++] = strndup(de->d_name, l - 5);
        }
        closedir(d);
        qsort(names, n, sizeof(char *), cmp);

        /* one TAP line per fixture; a shape no parser is meant for is a skip, not a failure */
        for (size_t i = 0; i < n; i++) {
                test_case_failed = 0;
                int r = check_fixture(names[i]);
                test_count++;
                if (test_case_failed || r < 0) {
                        test_failed++;
                        printf("not ok %d - %s\n", test_count, names[i]);
                } else if (r > 0)
                        printf("ok %d - %s # SKIP no parser for this exchange\n", test_count, names[i]);
                else {
                        parsed++;
                        printf("ok %d - %s\n", test_count, names[i]);
                }
                free(names[i]);
        }
        printf("# %zu of %zu fixtures parsed\n", parsed, n);
        if (n == 0) {
                printf("not ok 1 - no fixtures\n");
                test_count++;
                test_failed++;
        }
        return test_done();
}
