/* test-log.c - the stderr log line carries the request context and no URL secret. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "util/log.h"
#include "test.h"

static void test_context_prefix(void) {
        char buf[4096] = "";
        FILE *f = tmpfile();
        int saved = dup(STDERR_FILENO);

        CHECK(f != NULL);
        dup2(fileno(f), STDERR_FILENO);
        log_setup("test", LOG_INFO);
        log_req(LOG_WARNING, "r-42", "hello %d", 7);
        log_debug("not shown");
        fflush(stderr);
        dup2(saved, STDERR_FILENO);
        close(saved);
        rewind(f);
        size_t n = fread(buf, 1, sizeof(buf) - 1, f);
        buf[n] = 0;
        fclose(f);
        CHECK(strstr(buf, "warning: request=r-42 hello 7") != NULL);
        CHECK(strstr(buf, "not shown") == NULL);
}

/* Whoever logs a URL, its password or token does not reach the line. */
static void test_url_redacted(void) {
        char buf[4096] = "";
        FILE *f = tmpfile();
        int saved = dup(STDERR_FILENO);

        CHECK(f != NULL);
        dup2(fileno(f), STDERR_FILENO);
        log_setup("test", LOG_INFO);
        log_warning("POST %s: %d", "http://demo:SECRETpw@keystone:5000/v3/auth/tokens?token=SECRETtok", 401);
        fflush(stderr);
        dup2(saved, STDERR_FILENO);
        close(saved);
        rewind(f);
        size_t n = fread(buf, 1, sizeof(buf) - 1, f);
        buf[n] = 0;
        fclose(f);
        CHECK(strstr(buf, "POST http://***@keystone:5000/v3/auth/tokens?token=***: 401") != NULL);
        CHECK(strstr(buf, "SECRET") == NULL);
}

int main(void) {
        RUN(test_context_prefix);
        RUN(test_url_redacted);
        return test_done();
}
