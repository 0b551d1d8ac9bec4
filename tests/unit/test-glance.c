/* test-glance.c - Glance image parsers against captured and malformed responses. */
#include <errno.h>
#include <string.h>

#include "cloud/glance.h"
#include "osfixture.h"
#include "test.h"

#define IMAGE_ID "012ff1c6-dc8d-4e82-8f73-8a2a63093040"

static void test_show(void) {
        _cleanup_free_ char *body = fixture_body("glance-image-show", NULL);
        _cleanup_(glance_image_freep) struct glance_image *i = NULL;
        struct os_error e = {};
        CHECK_INT(glance_parse_image(body, strlen(body), &i, &e), 0);
        if (!i) {
                TEST_FAIL("%s", e.message);
                os_error_clear(&e);
                return;
        }
        CHECK_STR(i->id, IMAGE_ID);
        CHECK_STR(i->name, "tiny");
        CHECK_STR(i->status, "active");
        CHECK_INT(i->size, 1024);
        CHECK_STR(i->checksum, "0f343b0931126a20f133d67c2b018a3b");
}

static void test_list(void) {
        _cleanup_free_ char *body = fixture_body("glance-images-by-name", NULL);
        _cleanup_(glance_image_list_freep) struct glance_image_list *l = NULL;
        CHECK_INT(glance_parse_image_list(body, strlen(body), &l, NULL), 0);
        if (!l)
                return;
        CHECK_INT(l->n_images, 1);
        CHECK_STR(l->images[0].id, IMAGE_ID);
        CHECK_STR(l->images[0].name, "tiny");
        CHECK(l->next_marker == NULL);

        const char *paged = "{\"images\":[{\"id\":\"a\",\"status\":\"queued\",\"name\":null,\"size\":null,\"checksum\":null},"
                            "{\"id\":\"b\",\"status\":\"active\",\"size\":21474836480}],"
                            "\"next\":\"/v2/images?marker=b&name=x\"}";
        _cleanup_(glance_image_list_freep) struct glance_image_list *p = NULL;
        CHECK_INT(glance_parse_image_list(paged, strlen(paged), &p, NULL), 0);
        if (!p)
                return;
        CHECK_INT(p->n_images, 2);
        CHECK(p->images[0].name == NULL && p->images[0].checksum == NULL && p->images[0].size == 0);
        CHECK_INT(p->images[1].size, 21474836480LL);
        CHECK_STR(p->next_marker, "b");
}

static void test_errors(void) {
        static const struct {
                const char *fixture, *message;
        } t[] = {
                { "glance-image-404", "Not Found: No image found with ID abf6ab3b-b32c-4472-ade5-588c9633aa0b" },
                { "glance-401-no-token", "Unauthorized: This server could not verify that you are authorized to access "
                                         "the document you requested. Either you supplied the wrong credentials (e.g., "
                                         "bad password), or your browser does not understand how to supply the "
                                         "credentials required." },
        };
        for (size_t i = 0; i < ELEMENTSOF(t); i++) {
                long status = 0;
                _cleanup_free_ char *body = fixture_body(t[i].fixture, &status);
                struct os_error e = { .status = status };
                CHECK_INT(glance_parse_error(body, strlen(body), &e), 0);
                CHECK_STR(e.message, t[i].message);
                os_error_clear(&e);
        }

        /* what Glance sends without "Accept: application/json" */
        const char *html = "<html>\n <head>\n  <title>404 Not Found</title>\n </head>\n <body>\n  <h1>404 Not Found</h1>\n"
                           "  No image found with ID abf6<br /><br />\n\n\n\n </body>\n</html>";
        struct os_error e = {};
        CHECK_INT(glance_parse_error(html, strlen(html), &e), 0);
        CHECK_STR(e.message, "404 Not Found 404 Not Found No image found with ID abf6");
        os_error_clear(&e);
}

static void test_malformed(void) {
        static const struct {
                const char *body, *where;
        } t[] = {
                { "", "empty response body" },
                { "[]", "expected a JSON object" },
                { "{\"id\":\"x\"", "not valid JSON" },
                { "{}", "image.id: missing" },
                { "{\"id\":\"\",\"status\":\"active\"}", "image.id: empty" },
                { "{\"id\":\"x\"}", "image.status: missing" },
                { "{\"id\":\"x\",\"status\":1}", "image.status: expected a string" },
                { "{\"id\":\"x\",\"status\":\"active\",\"size\":\"1\"}", "image.size: expected an integer" },
                { "{\"id\":\"x\",\"status\":\"active\",\"size\":-1}", "image.size: -1 is out of range" },
                { "{\"id\":\"x\",\"status\":\"active\",\"checksum\":{}}", "image.checksum: expected a string" },
                { "{\"id\":\"x\",\"status\":\"active\",\"name\":[]}", "image.name: expected a string" },
        };
        for (size_t i = 0; i < ELEMENTSOF(t); i++) {
                struct glance_image *img = NULL;
                struct os_error e = {};
                int r = glance_parse_image(t[i].body, strlen(t[i].body), &img, &e);
                if (r != -EBADMSG || img || !e.message || !strstr(e.message, t[i].where))
                        TEST_FAIL("case %zu: r=%d message=\"%s\", expected \"%s\"", i, r, e.message ?: "(null)", t[i].where);
                os_error_clear(&e);
        }

        static const struct {
                const char *body, *where;
        } l[] = {
                { "{}", "response.images: missing" },
                { "{\"images\":{}}", "response.images: expected an array" },
                { "{\"images\":[null]}", "images[0]: expected an object, got null" },
                { "{\"images\":[{\"id\":\"a\",\"status\":\"active\"},{\"id\":\"b\"}]}", "images[1].status: missing" },
                { "{\"images\":[],\"next\":5}", "response.next: expected a string" },
                { "{\"images\":[],\"next\":\"/v2/images?limit=1\"}", "response.next: no usable marker" },
        };
        for (size_t i = 0; i < ELEMENTSOF(l); i++) {
                struct glance_image_list *p = NULL;
                struct os_error e = {};
                int r = glance_parse_image_list(l[i].body, strlen(l[i].body), &p, &e);
                if (r != -EBADMSG || p || !e.message || !strstr(e.message, l[i].where))
                        TEST_FAIL("list case %zu: r=%d message=\"%s\", expected \"%s\"", i, r, e.message ?: "(null)", l[i].where);
                os_error_clear(&e);
        }

        _cleanup_free_ char *body = fixture_body("glance-images-by-name", NULL);
        for (size_t n = 0; n < strlen(body); n++) {
                struct glance_image_list *p = NULL;
                if (glance_parse_image_list(body, n, &p, NULL) != -EBADMSG || p) {
                        TEST_FAIL("cut at %zu parsed", n);
                        break;
                }
        }
}

int main(void) {
        RUN(test_show);
        RUN(test_list);
        RUN(test_errors);
        RUN(test_malformed);
        return test_done();
}
