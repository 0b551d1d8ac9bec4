/* test-keystone.c - Keystone auth bodies, token and catalog parsing, endpoint selection. */
#include <errno.h>
#include <jansson.h>
#include <string.h>
#include <time.h>

#include "cloud/keystone.h"
#include "osfixture.h"
#include "cloud/osjson.h"
#include "test.h"

static json_t *request_body(const char *fixture) {
        json_t *x = fixture_load(fixture), *b;
        if (!x)
                return NULL;
        b = json_incref(json_object_get(json_object_get(x, "request"), "body"));
        json_decref(x);
        return b;
}

static void check_body_equals(const char *body, const char *fixture) {
        json_t *want = request_body(fixture), *got = json_loads(body, 0, NULL);
        if (!want || !got || !json_equal(want, got)) {
                char *w = want ? json_dumps(want, JSON_COMPACT) : NULL;
                TEST_FAIL("body %s != %s's request %s", body, fixture, w ?: "(null)");
                free(w);
        }
        json_decref(want);
        json_decref(got);
}

static void test_auth_bodies(void) {
        struct cloud_config pw = {
                .name = (char *) "demo", .auth_type = CLOUD_AUTH_PASSWORD, .auth_url = (char *) "http://127.0.0.1:5000/v3/",
                .username = (char *) "demo", .password = (char *) "demo", .user_domain_name = (char *) "Default",
                .project_name = (char *) "demo", .project_domain_name = (char *) "Default",
        };
        char *body = NULL;
        CHECK_INT(keystone_auth_body(&pw, &body, NULL), 0);
        if (body)
                check_body_equals(body, "keystone-auth-password");
        body = keystone_auth_body_free(body);
        CHECK(body == NULL);

        struct cloud_config ac = {
                .name = (char *) "ac", .auth_type = CLOUD_AUTH_APPLICATION_CREDENTIAL,
                .auth_url = (char *) "http://127.0.0.1:5000",
                .application_credential_id = (char *) "e37530918dac483b8cd182fe3057d972",
                .application_credential_secret = (char *) "s3cr3t-appcred",
        };
        CHECK_INT(keystone_auth_body(&ac, &body, NULL), 0);
        if (body)
                check_body_equals(body, "keystone-auth-appcred");
        body = keystone_auth_body_free(body);

        struct cloud_config an = {
                .name = (char *) "an", .auth_type = CLOUD_AUTH_APPLICATION_CREDENTIAL,
                .auth_url = (char *) "http://127.0.0.1:5000",
                .application_credential_name = (char *) "demo-appcred", .username = (char *) "demo",
                .user_domain_name = (char *) "Default", .application_credential_secret = (char *) "s3cr3t-appcred",
        };
        CHECK_INT(keystone_auth_body(&an, &body, NULL), 0);
        if (body)
                check_body_equals(body, "keystone-auth-appcred-by-name");
        body = keystone_auth_body_free(body);

        /* ids win over names; project by id needs no domain */
        struct cloud_config ids = {
                .name = (char *) "ids", .auth_url = (char *) "http://k", .user_id = (char *) "u1",
                .password = (char *) "p\"w", .project_id = (char *) "p1",
        };
        CHECK_INT(keystone_auth_body(&ids, &body, NULL), 0);
        CHECK_STR(body, "{\"auth\":{\"identity\":{\"methods\":[\"password\"],\"password\":{\"user\":"
                        "{\"id\":\"u1\",\"password\":\"p\\\"w\"}}},\"scope\":{\"project\":{\"id\":\"p1\"}}}}");
        body = keystone_auth_body_free(body);

        /* the hand-written JSON escapes what it must and round-trips */
        static const char *odd = "q\"b\\s\n\t\x01\x1f\x7f \xc3\xa9 \xf0\x9f\x94\x91 /";
        struct cloud_config esc = {
                .name = (char *) "e", .auth_type = CLOUD_AUTH_APPLICATION_CREDENTIAL,
                .application_credential_name = (char *) "n\"", .user_id = (char *) "u",
                .application_credential_secret = (char *) odd,
        };
        CHECK_INT(keystone_auth_body(&esc, &body, NULL), 0);
        json_t *j = body ? json_loads(body, 0, NULL) : NULL;
        CHECK(j != NULL);
        json_t *cred = json_object_get(json_object_get(json_object_get(j, "auth"), "identity"), "application_credential");
        CHECK_STR(json_string_value(json_object_get(cred, "secret")), odd);
        CHECK_STR(json_string_value(json_object_get(cred, "name")), "n\"");
        CHECK_STR(json_string_value(json_object_get(json_object_get(cred, "user"), "id")), "u");
        json_decref(j);
        body = keystone_auth_body_free(body);
}

static void test_auth_body_errors(void) {
        static const char *secret = "SECRET-never-shown";
        const struct {
                struct cloud_config c;
                const char *where;
        } t[] = {
                { { .name = (char *) "c", .username = (char *) "u", .user_domain_id = (char *) "d", .project_id = (char *) "p" }, "auth.password: missing" },
                { { .name = (char *) "c", .password = (char *) secret, .project_id = (char *) "p" }, "needs username or user_id" },
                { { .name = (char *) "c", .password = (char *) secret, .username = (char *) "u", .project_id = (char *) "p" }, "username needs user_domain_name" },
                { { .name = (char *) "c", .password = (char *) secret, .user_id = (char *) "u" }, "needs project_name or project_id" },
                { { .name = (char *) "c", .password = (char *) secret, .user_id = (char *) "u", .project_name = (char *) "p" }, "project_name needs project_domain" },
                { { .name = (char *) "c", .password = (char *) "\xff", .user_id = (char *) "u", .project_id = (char *) "p" }, "auth.password: not valid UTF-8" },
                { { .name = (char *) "c", .password = (char *) secret, .user_id = (char *) "u", .project_id = (char *) "\xc3" }, "auth.project_id: not valid UTF-8" },
                { { .name = (char *) "c", .auth_type = CLOUD_AUTH_APPLICATION_CREDENTIAL, .application_credential_id = (char *) "i" }, "application_credential_secret: missing" },
                { { .name = (char *) "c", .auth_type = CLOUD_AUTH_APPLICATION_CREDENTIAL, .application_credential_secret = (char *) secret }, "needs application_credential_id or application_credential_name" },
                { { .name = (char *) "c", .auth_type = CLOUD_AUTH_APPLICATION_CREDENTIAL, .application_credential_secret = (char *) secret,
                    .application_credential_name = (char *) "n" }, "needs username or user_id" },
        };
        for (size_t i = 0; i < ELEMENTSOF(t); i++) {
                char *body = NULL;
                struct os_error e = {};
                int r = keystone_auth_body(&t[i].c, &body, &e);
                if (r != -EINVAL || body || !e.message || !strstr(e.message, t[i].where) || strstr(e.message, secret))
                        TEST_FAIL("case %zu: r=%d message=\"%s\", expected \"%s\"", i, r, e.message ?: "(null)", t[i].where);
                keystone_auth_body_free(body);
                os_error_clear(&e);
        }
}

static void test_tokens_url(void) {
        static const struct {
                const char *auth_url, *want;
        } t[] = {
                { "http://127.0.0.1:5000/v3/", "http://127.0.0.1:5000/v3/auth/tokens" },
                { "http://127.0.0.1:5000/v3", "http://127.0.0.1:5000/v3/auth/tokens" },
                { "http://127.0.0.1:5000", "http://127.0.0.1:5000/v3/auth/tokens" },
                { "https://cloud.example.org/identity/", "https://cloud.example.org/identity/v3/auth/tokens" },
                { "https://cloud.example.org/identity/v3//", "https://cloud.example.org/identity/v3/auth/tokens" },
                { "http://k:5000/v2.0", NULL },
                { "ftp://k", NULL },
                { "http://", NULL },
                { "", NULL },
                { NULL, NULL },
        };
        for (size_t i = 0; i < ELEMENTSOF(t); i++) {
                struct cloud_config c = { .name = (char *) "c", .auth_url = (char *) t[i].auth_url };
                char *url = NULL;
                struct os_error e = {};
                int r = keystone_tokens_url(&c, &url, &e);
                if (t[i].want) {
                        CHECK_INT(r, 0);
                        CHECK_STR(url, t[i].want);
                } else {
                        CHECK_INT(r, -EINVAL);
                        CHECK(url == NULL);
                        CHECK(e.message && strstr(e.message, "auth.auth_url"));
                }
                free(url);
                os_error_clear(&e);
        }
}

static struct keystone_token *token_fixture(const char *name) {
        _cleanup_free_ char *body = fixture_body(name, NULL);
        _cleanup_free_ char *subject = fixture_header(name, "X-Subject-Token");
        struct keystone_token *t = NULL;
        struct os_error e = {};
        if (keystone_parse_token(subject, body, strlen(body), &t, &e) < 0)
                TEST_FAIL("%s: %s", name, e.message ?: "");
        else if (strcmp(t->token, subject) != 0)
                TEST_FAIL("%s: token differs", name);
        os_error_clear(&e);
        return t;
}

static void test_tokens(void) {
        static const struct {
                const char *fixture;
                time_t expires;
        } t[] = {
                { "keystone-auth-password", 1795539665 },        /* 2026-11-24T17:01:05Z */
                { "keystone-auth-appcred", 1795539666 },
                { "keystone-auth-appcred-by-name", 1795539667 },
                { "keystone-token-validate", 1795539665 },
        };
        for (size_t i = 0; i < ELEMENTSOF(t); i++) {
                _cleanup_(keystone_token_freep) struct keystone_token *k = token_fixture(t[i].fixture);
                if (!k)
                        continue;
                CHECK_INT(k->expires_at, t[i].expires);
                CHECK_STR(k->user_id, "6a7dacd4b27f4841be76492cc8107742");
                CHECK_STR(k->project_id, "e861fe9e79eb4a6b9192e9b891ae0e52");
                CHECK_INT(k->n_endpoints, 15);
                CHECK_STR(k->endpoints[0].service_type, "image");
                CHECK_STR(k->endpoints[0].region, "RegionOne");
        }
}

static void test_endpoints(void) {
        _cleanup_(keystone_token_freep) struct keystone_token *k = token_fixture("keystone-auth-password");
        if (!k)
                return;
        static const struct {
                const char *service, *region, *override;
                enum cloud_interface iface;
                const char *want;
        } t[] = {
                { "compute", NULL, NULL, CLOUD_INTERFACE_PUBLIC, "http://127.0.0.1:8774/v2.1" },
                { "compute", "RegionOne", NULL, CLOUD_INTERFACE_INTERNAL, "http://127.0.0.1:8774/v2.1" },
                { "image", NULL, NULL, CLOUD_INTERFACE_PUBLIC, "http://127.0.0.1:9292/v2" },
                { "image", NULL, NULL, CLOUD_INTERFACE_ADMIN, "http://127.0.0.1:9292/v2" },
                { "identity", NULL, NULL, CLOUD_INTERFACE_PUBLIC, "http://127.0.0.1:5000/v3" },
                { "network", NULL, NULL, CLOUD_INTERFACE_PUBLIC, "http://127.0.0.1:9696/v2.0" },
                { "compute", "RegionTwo", "https://nova.example.org/compute/v2.1/", CLOUD_INTERFACE_PUBLIC, "https://nova.example.org/compute/v2.1" },
                { "image", NULL, "https://glance.example.org", CLOUD_INTERFACE_PUBLIC, "https://glance.example.org/v2" },
        };
        for (size_t i = 0; i < ELEMENTSOF(t); i++) {
                struct cloud_config c = { .name = (char *) "c", .region_name = (char *) t[i].region, .interface = t[i].iface };
                if (t[i].override && strcmp(t[i].service, "compute") == 0)
                        c.compute_endpoint_override = (char *) t[i].override;
                if (t[i].override && strcmp(t[i].service, "image") == 0)
                        c.image_endpoint_override = (char *) t[i].override;
                _cleanup_free_ char *url = NULL;
                struct os_error e = {};
                CHECK_INT(keystone_endpoint_url(k, &c, t[i].service, &url, &e), 0);
                CHECK_STR(url, t[i].want);
                os_error_clear(&e);
        }

        struct cloud_config two = { .name = (char *) "c", .region_name = (char *) "RegionTwo" };
        char *url = NULL;
        struct os_error e = {};
        CHECK_INT(keystone_endpoint_url(k, &two, "compute", &url, &e), -ENOENT);
        CHECK(url == NULL);
        CHECK_STR(e.message, "no compute endpoint with interface public in region RegionTwo in the catalog; "
                             "it has public/RegionOne, admin/RegionOne, internal/RegionOne");
        os_error_clear(&e);
        struct cloud_config one = { .name = (char *) "c" };
        CHECK_INT(keystone_endpoint_url(k, &one, "volumev3", &url, &e), -ENOENT);
        CHECK_STR(e.message, "no volumev3 endpoint with interface public in the catalog; it has none");
        os_error_clear(&e);
        struct cloud_config bad = { .name = (char *) "c", .compute_endpoint_override = (char *) "nova:8774" };
        CHECK_INT(keystone_endpoint_url(k, &bad, "compute", &url, &e), -EINVAL);
        CHECK(e.message && strstr(e.message, "compute_endpoint_override"));
        os_error_clear(&e);
}

static void test_endpoint_order(void) {
        /* several regions and no region set: the first in catalog order wins */
        const char *body =
                "{\"token\":{\"expires_at\":\"2030-01-01T00:00:00Z\",\"catalog\":["
                "{\"type\":\"compute\",\"endpoints\":["
                "{\"interface\":\"public\",\"region_id\":\"B\",\"url\":\"http://b:8774/v2.1/\"},"
                "{\"interface\":\"public\",\"region\":\"A\",\"url\":\"http://a:8774/v2.1/p1\"}]}]}}";
        _cleanup_(keystone_token_freep) struct keystone_token *k = NULL;
        CHECK_INT(keystone_parse_token("tok", body, strlen(body), &k, NULL), 0);
        if (!k)
                return;
        CHECK(k->user_id == NULL && k->project_id == NULL);
        struct cloud_config c = { .name = (char *) "c" };
        _cleanup_free_ char *u1 = NULL, *u2 = NULL;
        CHECK_INT(keystone_endpoint_url(k, &c, "compute", &u1, NULL), 0);
        CHECK_STR(u1, "http://b:8774/v2.1");
        c.region_name = (char *) "A";
        CHECK_INT(keystone_endpoint_url(k, &c, "compute", &u2, NULL), 0);
        CHECK_STR(u2, "http://a:8774/v2.1/p1");
}

static void test_normalize(void) {
        static const struct {
                const char *type, *in, *out;
        } t[] = {
                { "compute", "http://h:8774/v2.1", "http://h:8774/v2.1" },
                { "compute", "http://h:8774/v2.1/", "http://h:8774/v2.1" },
                { "compute", "http://h:8774/v2.1/e861fe9e79eb4a6b9192e9b891ae0e52", "http://h:8774/v2.1/e861fe9e79eb4a6b9192e9b891ae0e52" },
                { "compute", "http://h:8774/v2/e861fe9e79eb4a6b9192e9b891ae0e52", "http://h:8774/v2.1/e861fe9e79eb4a6b9192e9b891ae0e52" },
                { "compute", "http://h:8774/v2", "http://h:8774/v2.1" },
                { "compute", "http://h:8774", "http://h:8774/v2.1" },
                { "compute", "https://h/compute/", "https://h/compute/v2.1" },
                { "image", "http://h:9292", "http://h:9292/v2" },
                { "image", "http://h:9292/", "http://h:9292/v2" },
                { "image", "http://h:9292/v2/", "http://h:9292/v2" },
                { "image", "https://h/image", "https://h/image/v2" },
                { "identity", "http://h:5000/v3/", "http://h:5000/v3" },
                { "identity", "http://h:5000", "http://h:5000/v3" },
                { "identity", "http://h/v2.0", NULL },
                { "network", "http://h:9696//", "http://h:9696/v2.0" },
                { "network", "http://h:9696/v2.0/", "http://h:9696/v2.0" },
                { "placement", "http://h:8778/", "http://h:8778" },
                { "compute", "h:8774", NULL },
                { "compute", "", NULL },
                { "compute", "http:///", NULL },
        };
        for (size_t i = 0; i < ELEMENTSOF(t); i++) {
                char *out = NULL;
                int r = keystone_normalize_url(t[i].type, t[i].in, &out);
                if (t[i].out) {
                        CHECK_INT(r, 0);
                        CHECK_STR(out, t[i].out);
                } else if (r >= 0)
                        TEST_FAIL("%s %s: accepted as %s", t[i].type, t[i].in, out);
                free(out);
        }
}

static void test_errors(void) {
        static const struct {
                const char *fixture, *message;
        } t[] = {
                { "keystone-auth-401-bad-password", "Unauthorized: The request you have made requires authentication." },
                { "keystone-auth-401-bad-appcred-secret", "Unauthorized: The request you have made requires authentication." },
                { "keystone-404-token-invalid", "Not Found: Could not recognize Fernet token" },
        };
        for (size_t i = 0; i < ELEMENTSOF(t); i++) {
                long status = 0;
                _cleanup_free_ char *body = fixture_body(t[i].fixture, &status);
                struct os_error e = { .status = status };
                CHECK_INT(keystone_parse_error(body, strlen(body), &e), 0);
                CHECK_STR(e.message, t[i].message);
                _cleanup_free_ char *s = os_error_to_string(&e);
                CHECK(s && strncmp(s, "HTTP 4", 6) == 0);
                os_error_clear(&e);
        }
}

static void test_malformed(void) {
        static const struct {
                const char *token, *body, *where;
        } t[] = {
                { NULL, "{}", "no X-Subject-Token" },
                { "", "{}", "no X-Subject-Token" },
                { "t", "", "empty response body" },
                { "t", "<html>oops</html>", "not valid JSON" },
                { "t", "{\"token\":{}}", "token.expires_at: missing" },
                { "t", "{\"token\":null}", "response.token: is null" },
                { "t", "{\"token\":{\"expires_at\":5}}", "token.expires_at: expected a time string" },
                { "t", "{\"token\":{\"expires_at\":\"2030-13-01T00:00:00Z\"}}", "token.expires_at: not an ISO 8601 time" },
                { "t", "{\"token\":{\"expires_at\":\"2030-01-01T00:00:00Z\",\"project\":{}}}", "token.project.id: missing" },
                { "t", "{\"token\":{\"expires_at\":\"2030-01-01T00:00:00Z\",\"user\":[]}}", "token.user: expected an object" },
                { "t", "{\"token\":{\"expires_at\":\"2030-01-01T00:00:00Z\",\"catalog\":{}}}", "token.catalog: expected an array" },
                { "t", "{\"token\":{\"expires_at\":\"2030-01-01T00:00:00Z\",\"catalog\":[1]}}", "token.catalog[0]: expected an object" },
                { "t", "{\"token\":{\"expires_at\":\"2030-01-01T00:00:00Z\",\"catalog\":[{\"type\":\"x\"}]}}", "token.catalog[0].endpoints: missing" },
                { "t", "{\"token\":{\"expires_at\":\"2030-01-01T00:00:00Z\",\"catalog\":[{\"endpoints\":[]}]}}", "token.catalog[0].type: missing" },
                { "t", "{\"token\":{\"expires_at\":\"2030-01-01T00:00:00Z\",\"catalog\":[{\"type\":\"x\",\"endpoints\":[null]}]}}", "token.catalog[0].endpoints[0]: expected an object" },
                { "t", "{\"token\":{\"expires_at\":\"2030-01-01T00:00:00Z\",\"catalog\":[{\"type\":\"x\",\"endpoints\":[{\"interface\":\"public\"}]}]}}", "token.catalog[0].endpoints[0].url: missing" },
                { "t", "{\"token\":{\"expires_at\":\"2030-01-01T00:00:00Z\",\"catalog\":[{\"type\":\"x\",\"endpoints\":[{\"url\":\"u\",\"interface\":1}]}]}}", "token.catalog[0].endpoints[0].interface: expected a string" },
        };
        for (size_t i = 0; i < ELEMENTSOF(t); i++) {
                struct keystone_token *k = NULL;
                struct os_error e = {};
                int r = keystone_parse_token(t[i].token, t[i].body, strlen(t[i].body), &k, &e);
                if (r != -EBADMSG || k || !e.message || !strstr(e.message, t[i].where))
                        TEST_FAIL("case %zu: r=%d message=\"%s\", expected \"%s\"", i, r, e.message ?: "(null)", t[i].where);
                os_error_clear(&e);
        }

        /* every truncation of a real token response */
        _cleanup_free_ char *body = fixture_body("keystone-auth-password", NULL);
        for (size_t n = 0; n < strlen(body); n++) {
                struct keystone_token *k = NULL;
                if (keystone_parse_token("t", body, n, &k, NULL) != -EBADMSG || k) {
                        TEST_FAIL("cut at %zu parsed", n);
                        break;
                }
        }
}

static void test_times(void) {
        static const struct {
                const char *s;
                long long t;
        } ok[] = {
                { "2026-11-24T17:01:05.000000Z", 1795539665 },
                { "2026-11-23T17:01:11Z", 1795453271 },
                { "2026-11-23T17:01:14.000000", 1795453274 },
                { "2026-11-23T18:01:11+01:00", 1795453271 },
                { "2026-11-23T16:31:11-0030", 1795453271 },
                { "1970-01-01T00:00:00Z", 0 },
                { "2024-02-29T00:00:00Z", 1709164800 },
        };
        for (size_t i = 0; i < ELEMENTSOF(ok); i++) {
                time_t t = 1;
                CHECK_INT(osjson_parse_time(ok[i].s, &t), 0);
                CHECK_INT(t, ok[i].t);
        }
        static const char *const bad[] = { "", "2026", "2026-11-24", "2026-11-24T17:01", "2026-11-24T17:01:05.Z",
                                           "2026-11-24T17:01:05ZZ", "2026-02-30T00:00:00Z", "2026-11-24T24:00:00Z",
                                           "2026-11-24T17:01:05+1", "x026-11-24T17:01:05Z", "2026-11-24T17:01:05 " };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                time_t t = 7;
                if (osjson_parse_time(bad[i], &t) != -EINVAL || t != 7)
                        TEST_FAIL("accepted \"%s\"", bad[i]);
        }
}

int main(void) {
        RUN(test_auth_bodies);
        RUN(test_auth_body_errors);
        RUN(test_tokens_url);
        RUN(test_tokens);
        RUN(test_endpoints);
        RUN(test_endpoint_order);
        RUN(test_normalize);
        RUN(test_errors);
        RUN(test_malformed);
        RUN(test_times);
        return test_done();
}
