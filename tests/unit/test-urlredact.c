/* test-urlredact.c - userinfo and credential query values leave every URL in a text; the rest stays. */
#include <string.h>

#include "util/urlredact.h"
#include "test.h"

static void check_redact(const char *in, const char *want) {
        char out[512];

        urlredact(in, out, sizeof(out));
        CHECK_STR(out, want);
}

static void test_userinfo(void) {
        check_redact("GET http://user:PW@host:5000/v3/auth: 401", "GET http://***@host:5000/v3/auth: 401");
        check_redact("https://tok@h", "https://***@h");
        check_redact("a http://u:p@h/x and https://v:q@g/y?", "a http://***@h/x and https://***@g/y?");
        check_redact("'http://u:p@h'", "'http://***@h'");
}

static void test_query(void) {
        check_redact("http://h/v2.1/servers?name=cn1&token=abc&limit=5",
                     "http://h/v2.1/servers?name=cn1&token=***&limit=5");
        check_redact("http://h/x?X-Auth-Token=abc#f", "http://h/x?X-Auth-Token=***#f");
        check_redact("http://h/x?password=abc def", "http://h/x?password=*** def");
        check_redact("http://h/x?api_key=abc&sig=z", "http://h/x?api_key=***&sig=***");
}

static void test_untouched(void) {
        check_redact("no url here: a@b ?token=x", "no url here: a@b ?token=x");
        check_redact("http://h:5000/v3", "http://h:5000/v3");
        check_redact("http://h/v2.0/networks?name=private", "http://h/v2.0/networks?name=private");
        check_redact("mailto user@host", "mailto user@host");
        /* an @ after the authority (in the path) is not userinfo */
        check_redact("http://h/a@b", "http://h/a@b");
}

static void test_cut(void) {
        char out[12];

        CHECK_INT(urlredact("http://u:p@hostname/long", out, sizeof(out)), 11);
        CHECK_STR(out, "http://***@");
        CHECK(urlredact_has_secret("http://u:p@h/v3"));
        CHECK(urlredact_has_secret("http://h/v3?token=x"));
        CHECK(!urlredact_has_secret("http://h/v3"));
}

int main(void) {
        RUN(test_userinfo);
        RUN(test_query);
        RUN(test_untouched);
        RUN(test_cut);
        return test_done();
}
