/* test-cloud-real.c - the OpenStack client against a real cloud (e.g. the harness's Zed): skipped unless one is named. */
#include "cloud/cloud.h"
#include "cloudtest.h"
#include "util/log.h"
#include "testlib.h"
#include "../unit/test.h"

/*
 * ELASTICD_REAL_CLOUD      cloud name in clouds.yaml (required, else skipped)
 * OS_CLIENT_CONFIG_FILE    clouds.yaml (else the usual search path)
 * ELASTICD_REAL_FLAVOR     flavor name or id [small]
 * ELASTICD_REAL_IMAGE      image name or id [tiny]
 * ELASTICD_REAL_IMAGE2     image to rebuild with [the same]
 * ELASTICD_REAL_NETWORK    network uuid, "none" or "auto" [none]
 *
 * It creates one server named elasticd-test-<pid>, reboots, rebuilds and
 * deletes it, and deletes it at the end whatever happened.
 */

static struct cloud *c;
static char name[64], op[64];
static char *flavor_id, *image_id, *image2_id, *server_id;

static const char *env_or(const char *name_, const char *def) {
        const char *v = getenv(name_);
        return v && *v ? v : def;
}

static void test_resolve(void) {
        struct result r = {};

        CHECK(wait_result(&r, cloud_flavor_resolve(c, env_or("ELASTICD_REAL_FLAVOR", "small"), result_cb, &r, NULL)) == 0);
        CHECK_INT(r.error, 0);
        flavor_id = TAKE_PTR(r.id);
        result_clear(&r);
        CHECK(wait_result(&r, cloud_image_resolve(c, env_or("ELASTICD_REAL_IMAGE", "tiny"), result_cb, &r, NULL)) == 0);
        CHECK_INT(r.error, 0);
        image_id = TAKE_PTR(r.id);
        result_clear(&r);
        CHECK(wait_result(&r, cloud_image_resolve(c, env_or("ELASTICD_REAL_IMAGE2", env_or("ELASTICD_REAL_IMAGE", "tiny")),
                                                  result_cb, &r, NULL)) == 0);
        CHECK_INT(r.error, 0);
        image2_id = TAKE_PTR(r.id);
        result_clear(&r);
        CHECK(wait_result(&r, cloud_flavor_resolve(c, "elasticd-no-such-flavor", result_cb, &r, NULL)) == 0);
        CHECK_INT(r.error, -ENOENT);
        result_clear(&r);
}

static void test_create(void) {
        struct nova_kv meta[] = {
                { (char *) CLOUD_META_CLUSTER, (char *) "elasticd-test" },
                { (char *) CLOUD_META_NODE, name },
                { (char *) CLOUD_META_OP, op },
        };
        const char *nets[] = { env_or("ELASTICD_REAL_NETWORK", "none"), NULL };
        struct nova_create s = { .name = name, .flavor_ref = flavor_id, .image_ref = image_id,
                                 .networks = nets, .metadata = meta, .n_metadata = 3 };
        struct result r = {};

        if (!flavor_id || !image_id) {
                TEST_FAIL("no flavor or image");
                return;
        }
        CHECK(wait_result(&r, cloud_server_create(c, &s, result_cb, &r, NULL)) == 0);
        CHECK_INT(r.error, 0);
        CHECK(r.request_id != NULL);
        server_id = TAKE_PTR(r.id);
        result_clear(&r);
        if (!server_id)
                return;
        wait_built_for(c, server_id, &r, 300);
        CHECK_STR(r.server_status, "ACTIVE");
        result_clear(&r);

        CHECK(wait_result(&r, cloud_servers_list(c, name, result_cb, &r, NULL)) == 0);
        CHECK_INT(r.error, 0);
        CHECK_INT(r.n_servers, 1);
        CHECK_STR(r.names[0], name);
        result_clear(&r);
}

/* Shows of ID made at once, N of them (a wave of polls); R takes the answers. */
static void show_round(const char *id, struct result *r, unsigned n) {
        for (unsigned i = 0; i < n; i++) {
                result_clear(&r[i]);
                memset(&r[i], 0, sizeof(r[i]));
                CHECK_INT(cloud_server_show(c, id, result_cb, &r[i], NULL), 0);
        }
        for (unsigned i = 0; i < n; i++)
                CHECK(test_run_until(ev, &r[i].done, 120) == 0);
}

/* Polls made together are answered by one list: a full one first, then
 * one of what changed since (Nova's changes-since, no tag filter), the
 * unchanged server answered with what the full list said. */
static void test_polls(void) {
        struct result r[3] = {};
        struct cloud_stats st0, st1;

        if (!server_id) {
                TEST_FAIL("no server");
                return;
        }
        cloud_get_stats(c, &st0);
        show_round(server_id, r, 3);
        show_round(server_id, r, 3);
        cloud_get_stats(c, &st1);
        for (unsigned i = 0; i < 3; i++)
                CHECK_STR(r[i].server_status, "ACTIVE");
        CHECK_INT(st1.batch_lists - st0.batch_lists, 2);
        CHECK_INT(st1.batch_delta_lists - st0.batch_delta_lists, 1);
        CHECK_INT(st1.shows_from_list - st0.shows_from_list, 6);
        for (unsigned i = 0; i < 3; i++)
                result_clear(&r[i]);
}

static void test_reboot_rebuild(void) {
        struct result r = {};

        if (!server_id) {
                TEST_FAIL("no server");
                return;
        }
        CHECK(wait_result(&r, cloud_server_reboot(c, server_id, false, result_cb, &r, NULL)) == 0);
        CHECK_INT(r.error, 0);
        result_clear(&r);
        wait_built_for(c, server_id, &r, 300);
        CHECK_STR(r.server_status, "ACTIVE");
        result_clear(&r);
        CHECK(wait_result(&r, cloud_server_rebuild(c, server_id, image2_id, result_cb, &r, NULL)) == 0);
        CHECK_INT(r.error, 0);
        result_clear(&r);
        wait_built_for(c, server_id, &r, 300);
        CHECK_STR(r.server_status, "ACTIVE");
        CHECK_STR(r.image_id, image2_id);
        result_clear(&r);
}

static void delete_server(void) {
        struct result r = {};

        if (!server_id)
                return;
        CHECK(wait_result(&r, cloud_server_delete(c, server_id, result_cb, &r, NULL)) == 0);
        CHECK_INT(r.error, 0);
        result_clear(&r);
        for (int i = 0; i < 600; i++) {
                CHECK(wait_result(&r, cloud_server_show(c, server_id, result_cb, &r, NULL)) == 0);
                if (r.error < 0)
                        break;
                result_clear(&r);
                run_for(200000);
        }
        CHECK_INT(r.error, -ENOENT);
        result_clear(&r);
        server_id = mfree(server_id);
}

/* A deleted server comes as DELETED in a changes-since list (Nova removed
 * its tags: only a list without the tag filter shows it), and the polls of
 * it end with -ENOENT as a show's would, without a show of their own. */
static void test_delete(void) {
        struct result r[2] = {}, x = {};
        struct cloud_stats st0, st1;

        if (!server_id) {
                TEST_FAIL("no server");
                return;
        }
        show_round(server_id, r, 2);
        cloud_get_stats(c, &st0);
        CHECK(wait_result(&x, cloud_server_delete(c, server_id, result_cb, &x, NULL)) == 0);
        CHECK_INT(x.error, 0);
        result_clear(&x);
        for (int i = 0; i < 300 && r[0].error == 0; i++) {
                run_for(500000);
                show_round(server_id, r, 2);
        }
        cloud_get_stats(c, &st1);
        CHECK_INT(r[0].error, -ENOENT);
        CHECK_INT(r[1].error, -ENOENT);
        CHECK_INT(r[0].status, 404);
        CHECK(st1.batch_delta_lists > st0.batch_delta_lists);
        /* GET answers 4xx: none, so no show of its own was needed */
        CHECK_INT(st1.http[0][2], st0.http[0][2]);
        for (unsigned i = 0; i < 2; i++)
                result_clear(&r[i]);
        delete_server();
}

int main(void) {
        const char *cloud = getenv("ELASTICD_REAL_CLOUD");
        struct cloud_options o = { .cluster = "elasticd-test" };
        struct cloud_config *cc = NULL;
        _cleanup_free_ char *err = NULL;

        setvbuf(stdout, NULL, _IOLBF, 0);
        if (!cloud || !*cloud) {
                printf("1..0 # SKIP set ELASTICD_REAL_CLOUD (and OS_CLIENT_CONFIG_FILE) to run against a real cloud\n");
                return 0;
        }
        log_setup("test-cloud-real", getenv("ELASTICD_TEST_DEBUG") ? LOG_DEBUG : LOG_INFO);
        if (clouds_load(NULL, cloud, &cc, &err) < 0 || sd_event_new(&ev) < 0 ||
            cloud_new(ev, cc, &o, &c, &err) < 0) {
                printf("Bail out! %s\n", err ? err : "cannot set up");
                if (!c)
                        clouds_free(cc);
                return 1;
        }
        snprintf(name, sizeof(name), "elasticd-test-%d", (int) getpid());
        snprintf(op, sizeof(op), "test-%d", (int) getpid());

        RUN(test_resolve);
        RUN(test_create);
        RUN(test_polls);
        RUN(test_reboot_rebuild);
        RUN(test_delete);

        delete_server(); /* after a failure: leave nothing behind */
        free(flavor_id);
        free(image_id);
        free(image2_id);
        cloud_free(c);
        sd_event_unref(ev);
        return test_done();
}
