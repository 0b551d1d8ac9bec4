/* test-cloud.c - the OpenStack client against the emulator: every call, token renewal, every fault knob, a storm. */
#include <jansson.h>

#include "cloud/cloud.h"
#include "cloudtest.h"
#include "util/log.h"
#include "util/fileread.h"
#include "testlib.h"
#include "../unit/test.h"

#define TINY "012ff1c6-dc8d-4e82-8f73-8a2a63093040"
#define TINY_V2 "7c1f2f0e-3a4b-4d2c-9e8f-5a6b7c8d9e0f"
#define CLUSTER "tc"
#define NETWORK "4b6b1e2c-2f7e-4c5a-9d3b-8e1f0a2b3c4d"

static struct test_emulator emu;

static int create(struct cloud *c, const char *cluster, const char *name, const char *op, const char *flavor,
                  struct result *r) {
        return create_image(c, cluster, name, op, flavor ? flavor : "1", TINY, r);
}

static struct cloud_config *emu_config(const char *password, const char *cacert) {
        struct cloud_config *cc = calloc(1, sizeof(*cc));
        char url[192];

        snprintf(url, sizeof(url), "%s/v3", emu.base);
        cc->name = strdup("emu");
        cc->auth_type = CLOUD_AUTH_PASSWORD;
        cc->auth_url = strdup(url);
        cc->username = strdup("demo");
        cc->password = strdup(password);
        cc->user_domain_name = strdup("Default");
        cc->project_name = strdup("demo");
        cc->project_domain_name = strdup("Default");
        cc->interface = CLOUD_INTERFACE_PUBLIC;
        cc->verify = true;
        cc->cacert = dup_or_null(cacert);
        /* as clouds.yaml's loader does: the bytes, read once */
        if (cacert && fileread_all(cacert, 0, 1 << 20, &cc->cacert_pem, &cc->cacert_pem_len, NULL) < 0)
                cc->cacert_pem = NULL;
        return cc;
}

static struct cloud *new_cloud(const char *cluster, struct cloud_options *o, const char *password) {
        struct cloud_options def = {};
        struct cloud_config *cc = emu_config(password ? password : "demo", NULL);
        struct cloud *c = NULL;
        _cleanup_free_ char *err = NULL;

        if (!o)
                o = &def;
        o->cluster = cluster;
        if (!o->create_recheck_usec)
                o->create_recheck_usec = 100000;
        if (!o->http.backoff_base_usec)
                o->http.backoff_base_usec = 20000;
        if (!o->http.backoff_max_usec)
                o->http.backoff_max_usec = 200000;
        if (cloud_new(ev, cc, o, &c, &err) < 0) {
                printf("# cloud_new: %s\n", err ? err : "?");
                clouds_free(cc);
                return NULL;
        }
        return c;
}

/* The emulator's own view: live servers (all, or named NAME). */
static long emu_live(const char *name, long *ret_active, bool *ret_unique_names) {
        _cleanup_free_ char *body = NULL;
        json_t *root, *a, *s;
        long n = 0, active = 0;
        size_t i;
        bool unique = true;

        if (test_emulator_call(&emu, "GET", "/_emulator/servers", NULL, &body) != 200)
                return -1;
        root = json_loads(body, 0, NULL);
        if (!root)
                return -1;
        a = json_object_get(root, "servers");
        json_array_foreach(a, i, s) {
                const char *vm = json_string_value(json_object_get(s, "vm_state"));
                const char *nm = json_string_value(json_object_get(s, "name"));
                if (vm && strcmp(vm, "deleted") == 0)
                        continue;
                if (name && (!nm || strcmp(nm, name) != 0))
                        continue;
                n++;
                const char *st = json_string_value(json_object_get(s, "status"));
                if (st && strcmp(st, "ACTIVE") == 0)
                        active++;
                for (size_t j = i + 1; j < json_array_size(a); j++) {
                        json_t *o = json_array_get(a, j);
                        const char *vm2 = json_string_value(json_object_get(o, "vm_state"));
                        const char *nm2 = json_string_value(json_object_get(o, "name"));
                        if (nm && nm2 && strcmp(nm, nm2) == 0 && !(vm2 && strcmp(vm2, "deleted") == 0))
                                unique = false;
                }
        }
        json_decref(root);
        if (ret_active)
                *ret_active = active;
        if (ret_unique_names)
                *ret_unique_names = unique;
        return n;
}

static long emu_stat(const char *key) {
        _cleanup_free_ char *body = NULL;
        json_t *root;
        long v = -1;

        if (test_emulator_call(&emu, "GET", "/_emulator/stats", NULL, &body) != 200)
                return -1;
        root = json_loads(body, 0, NULL);
        if (root && json_is_integer(json_object_get(root, key)))
                v = (long) json_integer_value(json_object_get(root, key));
        json_decref(root);
        return v;
}

static void emu_reset(void) {
        CHECK(test_emulator_call(&emu, "POST", "/_emulator/reset", "{}", NULL) == 200);
        CHECK(test_emulator_config(&emu, "{\"build_delay\": 0.05, \"delete_delay\": 0.02, "
                                         "\"reboot_delay\": 0.05, \"rebuild_delay\": 0.05}") == 0);
}

/* ---- the calls ---- */

static void test_lifecycle(void) {
        _cleanup_(cloud_freep) struct cloud *c = new_cloud(CLUSTER, NULL, NULL);
        _cleanup_(cloud_freep) struct cloud *other = new_cloud("other", NULL, NULL);
        _cleanup_free_ char *id = NULL;
        struct cloud_stats st;
        struct result r = {};

        emu_reset();
        CHECK(c && other);
        CHECK_STR(cloud_cluster_tag(c), "elasticd.tc");

        CHECK(wait_result(&r, create(c, CLUSTER, "cn-1", "op-1", NULL, &r)) == 0);
        CHECK_INT(r.error, 0);
        CHECK_INT(r.status, 202);
        CHECK(r.id != NULL);
        CHECK(!r.adopted);
        CHECK(r.request_id && strncmp(r.request_id, "req-", 4) == 0);
        id = TAKE_PTR(r.id);
        result_clear(&r);

        /* Another cluster's server must not show up in our list. */
        CHECK(wait_result(&r, create(other, "other", "cn-1", "op-x", NULL, &r)) == 0);
        CHECK_INT(r.error, 0);
        result_clear(&r);

        wait_built(c, id, &r);
        CHECK_INT(r.error, 0);
        CHECK_STR(r.server_status, "ACTIVE");
        CHECK_STR(r.image_id, TINY);
        result_clear(&r);

        CHECK(wait_result(&r, cloud_servers_list(c, NULL, result_cb, &r, NULL)) == 0);
        CHECK_INT(r.error, 0);
        CHECK_INT(r.n_servers, 1);
        CHECK_STR(r.names[0], "cn-1");
        result_clear(&r);
        CHECK(wait_result(&r, cloud_servers_list(c, "cn-2", result_cb, &r, NULL)) == 0);
        CHECK_INT(r.error, 0);
        CHECK_INT(r.n_servers, 0);
        result_clear(&r);

        /* the console: the emulator's last line names the server and its address */
        CHECK(wait_result(&r, cloud_server_console(c, id, 0, result_cb, &r, NULL)) == 0);
        CHECK_INT(r.error, 0);
        CHECK_INT(r.status, 200);
        CHECK(r.console && strstr(r.console, "cn-1 login: emulator ready at "));
        result_clear(&r);
        CHECK(wait_result(&r, cloud_server_console(c, id, 1, result_cb, &r, NULL)) == 0);
        CHECK_INT(r.error, 0);
        CHECK(r.console && strncmp(r.console, "cn-1 login: emulator ready at ", 30) == 0);
        result_clear(&r);
        CHECK(wait_result(&r, cloud_server_console(c, "00000000-0000-0000-0000-000000000000", 10, result_cb, &r, NULL)) == 0);
        CHECK_INT(r.error, -ENOENT);
        CHECK_INT(r.status, 404);
        result_clear(&r);

        CHECK(wait_result(&r, cloud_server_reboot(c, id, false, result_cb, &r, NULL)) == 0);
        CHECK_INT(r.error, 0);
        CHECK_INT(r.status, 202);
        result_clear(&r);
        wait_built(c, id, &r);
        CHECK_STR(r.server_status, "ACTIVE");
        result_clear(&r);
        CHECK(wait_result(&r, cloud_server_reboot(c, id, true, result_cb, &r, NULL)) == 0);
        CHECK_INT(r.error, 0);
        result_clear(&r);
        wait_built(c, id, &r);
        result_clear(&r);

        CHECK(wait_result(&r, cloud_server_rebuild(c, id, TINY_V2, result_cb, &r, NULL)) == 0);
        CHECK_INT(r.error, 0);
        CHECK_INT(r.status, 202);
        result_clear(&r);
        wait_built(c, id, &r);
        CHECK_STR(r.server_status, "ACTIVE");
        CHECK_STR(r.image_id, TINY_V2);
        result_clear(&r);

        CHECK(wait_result(&r, cloud_server_delete(c, id, result_cb, &r, NULL)) == 0);
        CHECK_INT(r.error, 0);
        CHECK_INT(r.status, 204);
        result_clear(&r);
        for (int i = 0; i < 100; i++) {
                CHECK(wait_result(&r, cloud_server_show(c, id, result_cb, &r, NULL)) == 0);
                if (r.error < 0)
                        break;
                result_clear(&r);
                run_for(50000);
        }
        CHECK_INT(r.error, -ENOENT);
        CHECK_INT(r.status, 404);
        CHECK(r.message && strstr(r.message, "could not be found") != NULL);
        CHECK(r.request_id != NULL);
        result_clear(&r);
        /* Deleting what is gone is done, not an error. */
        CHECK(wait_result(&r, cloud_server_delete(c, id, result_cb, &r, NULL)) == 0);
        CHECK_INT(r.error, 0);
        CHECK_INT(r.status, 404);
        result_clear(&r);

        cloud_get_stats(c, &st);
        CHECK_INT(st.auths, 1);
        CHECK(st.http[1][0] >= 4);  /* POST 2xx */
        CHECK_INT(st.calls_active, 0);
        CHECK_INT(st.create_lookups, 0);
}

static void test_errors(void) {
        _cleanup_(cloud_freep) struct cloud *c = new_cloud(CLUSTER, NULL, NULL);
        _cleanup_free_ char *id = NULL;
        struct cloud_stats st;
        struct result r = {};

        emu_reset();
        /* 400: bad flavor, never repeated */
        CHECK(wait_result(&r, create(c, CLUSTER, "cn-bad", "op-2", "424242", &r)) == 0);
        CHECK_INT(r.error, -EINVAL);
        CHECK_INT(r.status, 400);
        CHECK(r.message && strstr(r.message, "Flavor 424242 could not be found") != NULL);
        result_clear(&r);
        cloud_get_stats(c, &st);
        CHECK_INT(st.create_posts, 1);

        /* Bad input is refused before sending, through the callback with a message. */
        {
                struct nova_kv meta[] = { { (char *) CLOUD_META_CLUSTER, (char *) CLUSTER },
                                          { (char *) CLOUD_META_NODE, (char *) "cn-x" } };
                const char *nets[] = { "none", "11111111-2222-3333-4444-555555555555", NULL };
                struct nova_create s = { .name = "cn-x", .flavor_ref = "1", .image_ref = TINY,
                                         .networks = nets, .metadata = meta, .n_metadata = 2 };
                memset(&r, 0, sizeof(r));
                CHECK(wait_result(&r, cloud_server_create(c, &s, result_cb, &r, NULL)) == 0);
                CHECK_INT(r.error, -EINVAL);
                CHECK(r.message != NULL);
                result_clear(&r);
                /* Metadata of another cluster, or none: refused at once. */
                meta[0].value = (char *) "other";
                CHECK_INT(cloud_server_create(c, &s, result_cb, &r, NULL), -EINVAL);
                s.n_metadata = 0;
                CHECK_INT(cloud_server_create(c, &s, result_cb, &r, NULL), -EINVAL);
        }

        /* Quota */
        CHECK(test_emulator_config(&emu, "{\"quota_instances\": 0}") == 0);
        CHECK(wait_result(&r, create(c, CLUSTER, "cn-q", "op-3", NULL, &r)) == 0);
        CHECK_INT(r.error, -EDQUOT);
        CHECK_INT(r.status, 403);
        CHECK(r.message && strstr(r.message, "Quota exceeded") != NULL);
        result_clear(&r);
        CHECK(test_emulator_config(&emu, "{\"quota_instances\": 0, \"quota_status\": 413}") == 0);
        CHECK(wait_result(&r, create(c, CLUSTER, "cn-q", "op-3", NULL, &r)) == 0);
        CHECK_INT(r.error, -EDQUOT);
        CHECK_INT(r.status, 413);
        result_clear(&r);
        CHECK(test_emulator_config(&emu, "{\"quota_instances\": null, \"quota_status\": 403}") == 0);

        /* A build that ends in ERROR: the create succeeded, show has the fault. */
        CHECK(test_emulator_config(&emu, "{\"build_error_next\": 1}") == 0);
        CHECK(wait_result(&r, create(c, CLUSTER, "cn-e", "op-4", NULL, &r)) == 0);
        CHECK_INT(r.error, 0);
        id = TAKE_PTR(r.id);
        result_clear(&r);
        wait_built(c, id, &r);
        CHECK_STR(r.server_status, "ERROR");
        CHECK(r.fault && strstr(r.fault, "No valid host") != NULL);
        result_clear(&r);
        /* A soft reboot of an ERROR server: 409 */
        CHECK(wait_result(&r, cloud_server_reboot(c, id, false, result_cb, &r, NULL)) == 0);
        CHECK_INT(r.error, -EBUSY);
        CHECK_INT(r.status, 409);
        CHECK(r.message && strstr(r.message, "vm_state error") != NULL);
        result_clear(&r);
        CHECK(wait_result(&r, cloud_server_delete(c, id, result_cb, &r, NULL)) == 0);
        CHECK_INT(r.error, 0);
        result_clear(&r);

        /* 404 for show */
        CHECK(wait_result(&r, cloud_server_show(c, "00000000-0000-0000-0000-000000000000", result_cb, &r, NULL)) == 0);
        CHECK_INT(r.error, -ENOENT);
        result_clear(&r);
}

static void test_resolve(void) {
        _cleanup_(cloud_freep) struct cloud *c = new_cloud(CLUSTER, NULL, NULL);
        struct result r = {};
        long before;

        emu_reset();
        CHECK(wait_result(&r, cloud_flavor_resolve(c, "small", result_cb, &r, NULL)) == 0);
        CHECK_INT(r.error, 0);
        CHECK_STR(r.id, "1");
        result_clear(&r);
        CHECK(wait_result(&r, cloud_flavor_resolve(c, "99", result_cb, &r, NULL)) == 0);
        CHECK_INT(r.error, 0);
        CHECK_STR(r.id, "99");
        result_clear(&r);
        CHECK(wait_result(&r, cloud_flavor_resolve(c, "medium", result_cb, &r, NULL)) == 0);
        CHECK_INT(r.error, -ENOENT);
        CHECK(r.message && strstr(r.message, "medium") != NULL);
        result_clear(&r);

        CHECK(wait_result(&r, cloud_image_resolve(c, "tiny", result_cb, &r, NULL)) == 0);
        CHECK_INT(r.error, 0);
        CHECK_STR(r.id, TINY);
        result_clear(&r);
        CHECK(wait_result(&r, cloud_image_resolve(c, TINY_V2, result_cb, &r, NULL)) == 0);
        CHECK_INT(r.error, 0);
        CHECK_STR(r.id, TINY_V2);
        result_clear(&r);
        CHECK(wait_result(&r, cloud_image_resolve(c, "nope", result_cb, &r, NULL)) == 0);
        CHECK_INT(r.error, -ENOENT);
        result_clear(&r);

        /* Cached: no API call at all. */
        before = emu_stat("total");
        CHECK(wait_result(&r, cloud_flavor_resolve(c, "small", result_cb, &r, NULL)) == 0);
        CHECK_STR(r.id, "1");
        result_clear(&r);
        CHECK(wait_result(&r, cloud_image_resolve(c, "tiny", result_cb, &r, NULL)) == 0);
        CHECK_STR(r.id, TINY);
        result_clear(&r);
        CHECK_INT(emu_stat("total"), before);
}

/* A wave of identical lookups costs what one does: the first goes out, the
 * rest wait for its answer (an error too); cancelling the one that went out
 * does not strand the others. A create refused with a 4xx naming a cached
 * flavor makes the next lookup ask again. */
static void test_resolve_merged(void) {
        _cleanup_(cloud_freep) struct cloud *one = new_cloud(CLUSTER, NULL, NULL);
        _cleanup_(cloud_freep) struct cloud *c = NULL;
        struct cloud_options o = { .max_calls = 256 };
        struct cloud_stats st;
        static struct result r[50];
        uint64_t ids[50] = {};
        struct result x = {};
        long before, single;
        unsigned ok = 0, enoent = 0;

        emu_reset();
        CHECK(test_emulator_config(&emu, "{\"latency\": 0.2}") == 0);
        /* What one lookup of each costs (flavor by name: a 404 on the id, then the list). */
        CHECK(wait_result(&x, cloud_servers_list(one, NULL, result_cb, &x, NULL)) == 0);
        result_clear(&x);
        before = emu_stat("total");
        CHECK(wait_result(&x, cloud_flavor_resolve(one, "small", result_cb, &x, NULL)) == 0);
        result_clear(&x);
        CHECK(wait_result(&x, cloud_image_resolve(one, "nope", result_cb, &x, NULL)) == 0);
        result_clear(&x);
        single = emu_stat("total") - before;
        CHECK_INT(single, 3);

        c = new_cloud(CLUSTER, &o, NULL);
        CHECK(c != NULL);
        if (!c)
                return;
        /* Authenticate first, so the count below is lookups only. */
        CHECK(wait_result(&x, cloud_servers_list(c, NULL, result_cb, &x, NULL)) == 0);
        result_clear(&x);
        before = emu_stat("total");
        for (unsigned i = 0; i < 50; i++) {
                memset(&r[i], 0, sizeof(r[i]));
                CHECK_INT(i < 40 ? cloud_flavor_resolve(c, "small", result_cb, &r[i], &ids[i])
                                 : cloud_image_resolve(c, "nope", result_cb, &r[i], &ids[i]), 0);
        }
        CHECK_INT(cloud_cancel(c, ids[0]), 0);   /* the flavor lookup that went out */
        CHECK_INT(cloud_cancel(c, ids[7]), 0);   /* one that waits */
        for (unsigned i = 0; i < 50; i++)
                if (i != 0 && i != 7)
                        CHECK(test_run_until(ev, &r[i].done, 30) == 0);
        run_for(300000);
        for (unsigned i = 0; i < 50; i++) {
                if (i < 40 && r[i].done && r[i].error == 0 && r[i].id && strcmp(r[i].id, "1") == 0)
                        ok++;
                if (i >= 40 && r[i].done && r[i].error == -ENOENT && r[i].message && strstr(r[i].message, "nope"))
                        enoent++;
        }
        CHECK(!r[0].done && !r[7].done);
        CHECK_INT(ok, 38);
        CHECK_INT(enoent, 10);
        CHECK_INT(emu_stat("total") - before, single);
        cloud_get_stats(c, &st);
        CHECK_INT(st.lookups_merged, 48);
        for (unsigned i = 0; i < 50; i++)
                result_clear(&r[i]);

        /* Cached now; then flavor 1 disappears: the create's 400 names it. */
        before = emu_stat("total");
        CHECK(wait_result(&x, cloud_flavor_resolve(c, "small", result_cb, &x, NULL)) == 0);
        CHECK_STR(x.id, "1");
        result_clear(&x);
        CHECK_INT(emu_stat("total"), before);
        CHECK(test_emulator_config(&emu, "{\"latency\": 0, \"hidden_flavors\": [\"1\"]}") == 0);
        CHECK(wait_result(&x, create(c, CLUSTER, "merged-1", "o-1", "1", &x)) == 0);
        CHECK_INT(x.error, -EINVAL);
        result_clear(&x);
        cloud_get_stats(c, &st);
        CHECK_INT(st.lookups_forgotten, 1);
        CHECK(wait_result(&x, cloud_flavor_resolve(c, "small", result_cb, &x, NULL)) == 0);
        CHECK_INT(x.error, -ENOENT);
        result_clear(&x);
        CHECK(test_emulator_config(&emu, "{\"hidden_flavors\": []}") == 0);
}

/* What the name -> id cache tells its hook (elasticd journals it). */
struct lookup_events {
        unsigned n;
        enum cloud_lookup_kind kind[8];
        char *name[8], *id[8];
};

static void lookup_hook(enum cloud_lookup_kind kind, const char *name, const char *id, void *userdata) {
        struct lookup_events *e = userdata;

        if (e->n >= 8)
                return;
        e->kind[e->n] = kind;
        e->name[e->n] = strdup(name);
        e->id[e->n] = id ? strdup(id) : NULL;
        e->n++;
}

static void lookup_events_clear(struct lookup_events *e) {
        for (unsigned i = 0; i < e->n; i++) {
                free(e->name[i]);
                free(e->id[i]);
        }
        *e = (struct lookup_events) {};
}

/* Ids learned are told to the hook; a second client (elasticd after a
 * restart) seeded with them asks nothing within the TTL, unless the ids
 * are of another cloud or as old as the TTL; a create refused with a 4xx
 * naming a seeded id makes it forgotten (told too) and asked for again. */
static void test_resolve_seeded(void) {
        _cleanup_(cloud_freep) struct cloud *one = new_cloud(CLUSTER, NULL, NULL);
        _cleanup_(cloud_freep) struct cloud *two = NULL;
        struct cloud_options o = { .cache_ttl_usec = 60 * 1000000ULL }, oo = { .cluster = CLUSTER };
        struct cloud_config *other = NULL;
        _cleanup_(cloud_freep) struct cloud *elsewhere = NULL;
        struct lookup_events ev1 = {}, ev2 = {};
        struct result x = {};
        char scope[17];
        long before;

        emu_reset();
        CHECK(one != NULL);
        if (!one)
                return;
        cloud_set_lookup_hook(one, lookup_hook, &ev1);
        CHECK(wait_result(&x, cloud_flavor_resolve(one, "small", result_cb, &x, NULL)) == 0);
        result_clear(&x);
        CHECK(wait_result(&x, cloud_image_resolve(one, "tiny", result_cb, &x, NULL)) == 0);
        result_clear(&x);
        CHECK(wait_result(&x, cloud_network_resolve(one, "private", result_cb, &x, NULL)) == 0);
        result_clear(&x);
        /* Cached: nothing new learned. */
        CHECK(wait_result(&x, cloud_flavor_resolve(one, "small", result_cb, &x, NULL)) == 0);
        result_clear(&x);
        CHECK_INT(ev1.n, 3);
        CHECK(ev1.kind[0] == CLOUD_LOOKUP_FLAVOR && strcmp(ev1.name[0], "small") == 0 && ev1.id[0] &&
              strcmp(ev1.id[0], "1") == 0);
        CHECK(ev1.kind[1] == CLOUD_LOOKUP_IMAGE && strcmp(ev1.name[1], "tiny") == 0 && ev1.id[1] &&
              strcmp(ev1.id[1], TINY) == 0);
        CHECK(ev1.kind[2] == CLOUD_LOOKUP_NETWORK && strcmp(ev1.name[2], "private") == 0 && ev1.id[2] &&
              strcmp(ev1.id[2], NETWORK) == 0);
        snprintf(scope, sizeof(scope), "%s", cloud_lookup_scope(one));
        CHECK_INT(strlen(scope), 16);

        /* Another project is another scope. */
        other = emu_config("demo", NULL);
        free(other->project_name);
        other->project_name = strdup("other");
        CHECK_INT(cloud_new(ev, other, &oo, &elsewhere, NULL), 0);
        if (!elsewhere)
                clouds_free(other);
        CHECK(elsewhere && strcmp(cloud_lookup_scope(elsewhere), scope) != 0);

        two = new_cloud(CLUSTER, &o, NULL);
        CHECK(two != NULL);
        if (!two)
                goto out;
        CHECK_STR(cloud_lookup_scope(two), scope);
        cloud_set_lookup_hook(two, lookup_hook, &ev2);
        CHECK_INT(cloud_lookup_seed(two, CLOUD_LOOKUP_FLAVOR, "small", "1", scope, 5 * 1000000ULL), 0);
        CHECK_INT(cloud_lookup_seed(two, CLOUD_LOOKUP_IMAGE, "tiny", TINY, scope, 0), 0);
        CHECK_INT(cloud_lookup_seed(two, CLOUD_LOOKUP_NETWORK, "private", NETWORK, scope, 0), 0);
        CHECK_INT(cloud_lookup_seed(two, CLOUD_LOOKUP_FLAVOR, "large", "2", "0000000000000000", 0), 1);
        CHECK_INT(cloud_lookup_seed(two, CLOUD_LOOKUP_IMAGE, "old", "i", scope, 60 * 1000000ULL), 1);
        CHECK_INT(cloud_lookup_seed(two, CLOUD_LOOKUP_IMAGE, NULL, "i", scope, 0), -EINVAL);
        /* Authenticate first, so the count below is lookups only. */
        CHECK(wait_result(&x, cloud_servers_list(two, NULL, result_cb, &x, NULL)) == 0);
        result_clear(&x);
        before = emu_stat("total");
        CHECK(wait_result(&x, cloud_flavor_resolve(two, "small", result_cb, &x, NULL)) == 0);
        CHECK_STR(x.id, "1");
        result_clear(&x);
        CHECK(wait_result(&x, cloud_image_resolve(two, "tiny", result_cb, &x, NULL)) == 0);
        CHECK_STR(x.id, TINY);
        result_clear(&x);
        CHECK(wait_result(&x, cloud_network_resolve(two, "private", result_cb, &x, NULL)) == 0);
        CHECK_STR(x.id, NETWORK);
        result_clear(&x);
        CHECK_INT(emu_stat("total"), before);
        CHECK_INT(ev2.n, 0);
        /* Not seeded (another scope): asked for. */
        CHECK(wait_result(&x, cloud_image_resolve(two, "old", result_cb, &x, NULL)) == 0);
        CHECK_INT(x.error, -ENOENT);
        result_clear(&x);
        CHECK(emu_stat("total") > before);

        /* Flavor 1 disappears: the create's 400 names it, the seeded id is forgotten. */
        CHECK(test_emulator_config(&emu, "{\"hidden_flavors\": [\"1\"]}") == 0);
        CHECK(wait_result(&x, create(two, CLUSTER, "seeded-1", "o-1", "1", &x)) == 0);
        CHECK_INT(x.error, -EINVAL);
        result_clear(&x);
        CHECK_INT(ev2.n, 1);
        CHECK(ev2.n == 1 && ev2.kind[0] == CLOUD_LOOKUP_FLAVOR && strcmp(ev2.name[0], "small") == 0 && !ev2.id[0]);
        before = emu_stat("total");
        CHECK(wait_result(&x, cloud_flavor_resolve(two, "small", result_cb, &x, NULL)) == 0);
        CHECK_INT(x.error, -ENOENT);
        result_clear(&x);
        CHECK(emu_stat("total") > before);
        CHECK(test_emulator_config(&emu, "{\"hidden_flavors\": []}") == 0);
out:
        lookup_events_clear(&ev1);
        lookup_events_clear(&ev2);
}

/* Polls of many instances at once cost one list: six shows made together
 * (one cancelled, one for an instance that does not exist) take a list and
 * one show; a show alone is a show. */
static void test_show_batched(void) {
        _cleanup_(cloud_freep) struct cloud *c = new_cloud(CLUSTER, NULL, NULL);
        struct result made[5] = {}, r[7] = {}, x = {};
        uint64_t ids[7] = {};
        struct cloud_stats st;
        long before;
        unsigned active = 0;

        emu_reset();
        for (unsigned i = 0; i < 5; i++) {
                char name[16];

                snprintf(name, sizeof(name), "batch-%u", i);
                CHECK(wait_result(&made[i], create(c, CLUSTER, name, "o-b", NULL, &made[i])) == 0);
                CHECK_INT(made[i].error, 0);
        }
        run_for(300000);
        before = emu_stat("total");
        for (unsigned i = 0; i < 7; i++)
                CHECK_INT(cloud_server_show(c, i < 5 ? made[i].id : i == 5 ? "00000000-0000-0000-0000-00000000dead"
                                                                          : made[0].id,
                                            result_cb, &r[i], &ids[i]), 0);
        CHECK_INT(cloud_cancel(c, ids[6]), 0);
        for (unsigned i = 0; i < 6; i++)
                CHECK(test_run_until(ev, &r[i].done, 30) == 0);
        run_for(100000);
        for (unsigned i = 0; i < 5; i++)
                if (r[i].error == 0 && r[i].server_status && strcmp(r[i].server_status, "ACTIVE") == 0)
                        active++;
        CHECK_INT(active, 5);
        CHECK_INT(r[5].error, -ENOENT);
        CHECK(!r[6].done);
        CHECK_INT(emu_stat("total") - before, 2);
        cloud_get_stats(c, &st);
        CHECK_INT(st.batch_lists, 1);
        CHECK_INT(st.shows_from_list, 5);

        before = emu_stat("total");
        CHECK(wait_result(&x, cloud_server_show(c, made[1].id, result_cb, &x, NULL)) == 0);
        CHECK_INT(x.error, 0);
        CHECK_INT(emu_stat("total") - before, 1);
        result_clear(&x);
        for (unsigned i = 0; i < 7; i++)
                result_clear(&r[i]);
        for (unsigned i = 0; i < 5; i++)
                result_clear(&made[i]);
}

/* Show the N servers of IDS at once (a wave of polls); R takes the answers. */
static void show_round(struct cloud *c, char *const *ids, struct result *r, unsigned n) {
        for (unsigned i = 0; i < n; i++) {
                result_clear(&r[i]);
                memset(&r[i], 0, sizeof(r[i]));
                CHECK_INT(cloud_server_show(c, ids[i], result_cb, &r[i], NULL), 0);
        }
        for (unsigned i = 0; i < n; i++)
                CHECK(test_run_until(ev, &r[i].done, 30) == 0);
}

/* The emulator's list requests whose path holds WHAT. */
static long emu_requests(const char *what, bool *ret_tagged) {
        _cleanup_free_ char *body = NULL, *path = NULL;
        json_t *root, *e;
        size_t i;
        long n = 0;

        *ret_tagged = false;
        if (asprintf(&path, "/_emulator/requests?path=%s", what) < 0 ||
            test_emulator_call(&emu, "GET", path, NULL, &body) != 200)
                return -1;
        root = json_loads(body, 0, NULL);
        json_array_foreach(json_object_get(root, "requests"), i, e) {
                n++;
                if (strstr(json_string_value(json_object_get(e, "path")) ?: "", "tags="))
                        *ret_tagged = true;
        }
        json_decref(root);
        return n;
}

/* Polls answered by changes-since lists: the first list is a full one, the
 * next ones ask only for what changed since (no tag filter: a deleted
 * server comes as DELETED, and a show of it is -ENOENT without a request
 * of its own); a server they lack is answered with what an earlier list
 * said; a server going to ERROR is seen with its fault; a deletion whose
 * trace Nova dropped before a changes-since list saw it shows at the next
 * full list (list_full_usec). */
static void test_show_changes(void) {
        struct cloud_options o = { .list_full_usec = 3000000, .list_margin_usec = 1000000 };
        _cleanup_(cloud_freep) struct cloud *c = new_cloud(CLUSTER, &o, NULL);
        _cleanup_(cloud_freep) struct cloud *other = new_cloud(CLUSTER, NULL, NULL);
        struct result made[5] = {}, r[5] = {}, x = {};
        char *ids[5];
        struct cloud_stats st;
        long before, fulls_before;
        uint64_t t0;
        bool tagged;

        emu_reset();
        CHECK(test_emulator_config(&emu, "{\"build_error_regex\": \"^chg-err$\", \"build_error_kind\": \"spawn\", "
                                         "\"build_delay\": 1.0}") == 0);
        for (unsigned i = 0; i < 4; i++) {
                char name[16];

                snprintf(name, sizeof(name), "chg-%u", i);
                CHECK(wait_result(&made[i], create(c, CLUSTER, name, "o-c", NULL, &made[i])) == 0);
                CHECK_INT(made[i].error, 0);
                ids[i] = made[i].id;
        }
        run_for(1500000);
        before = emu_stat("total");
        show_round(c, ids, r, 4);
        for (unsigned i = 0; i < 4; i++)
                CHECK_STR(r[i].server_status, "ACTIVE");
        cloud_get_stats(c, &st);
        CHECK_INT(st.batch_lists, 1);
        CHECK_INT(st.batch_delta_lists, 0);
        CHECK_INT(emu_stat("total") - before, 1);

        /* Nothing changed: a changes-since list, empty, and the view answers. */
        CHECK(test_emulator_call(&emu, "DELETE", "/_emulator/stats", NULL, NULL) == 200);
        before = emu_stat("total");
        show_round(c, ids, r, 4);
        for (unsigned i = 0; i < 4; i++)
                CHECK_STR(r[i].server_status, "ACTIVE");
        cloud_get_stats(c, &st);
        CHECK_INT(st.batch_delta_lists, 1);
        CHECK_INT(st.shows_from_list, 8);
        CHECK_INT(emu_stat("total") - before, 1);
        CHECK_INT(emu_requests("changes-since", &tagged), 1);
        CHECK(!tagged);

        /* A new server that goes to ERROR, and a deleted one. */
        CHECK(wait_result(&made[4], create(c, CLUSTER, "chg-err", "o-c", NULL, &made[4])) == 0);
        ids[4] = made[4].id;
        CHECK(wait_result(&x, cloud_server_delete(c, ids[1], result_cb, &x, NULL)) == 0);
        CHECK_INT(x.error, 0);
        result_clear(&x);
        run_for(300000);
        before = emu_stat("total");
        show_round(c, ids, r, 5);
        CHECK_INT(r[1].error, -ENOENT);
        CHECK_INT(r[1].status, 404);
        CHECK_STR(r[4].server_status, "BUILD");
        CHECK_STR(r[0].server_status, "ACTIVE");
        CHECK_INT(emu_stat("total") - before, 1);
        run_for(1500000);
        show_round(c, ids, r, 5);
        CHECK_INT(r[1].error, -ENOENT);
        CHECK_STR(r[4].server_status, "ERROR");
        CHECK(r[4].fault && strstr(r[4].fault, "injected") != NULL);

        /* Deleted by someone else, and Nova's trace of it archived before a
         * list saw it: the next full list (3 s at most) finds it gone. */
        CHECK(test_emulator_config(&emu, "{\"deleted_keep\": 0}") == 0);
        CHECK(wait_result(&x, cloud_server_delete(other, ids[2], result_cb, &x, NULL)) == 0);
        result_clear(&x);
        cloud_get_stats(c, &st);
        fulls_before = (long) (st.batch_lists - st.batch_delta_lists);
        t0 = test_now_usec();
        do {
                run_for(300000);
                show_round(c, ids, r, 4);
        } while (r[2].error != -ENOENT && test_now_usec() - t0 < 10000000);
        CHECK_INT(r[2].error, -ENOENT);
        CHECK(test_now_usec() - t0 < 5000000);
        cloud_get_stats(c, &st);
        CHECK((long) (st.batch_lists - st.batch_delta_lists) > fulls_before);
        CHECK_STR(r[3].server_status, "ACTIVE");

        /* Gone with its machine (the emulator forgets it: no list will say
         * so until the next full one): the delete's 404 is believed at once. */
        {
                _cleanup_free_ char *path = NULL;

                CHECK(asprintf(&path, "/_emulator/servers/%s", ids[3]) > 0);
                CHECK(path && test_emulator_call(&emu, "DELETE", path, NULL, NULL) == 200);
        }
        show_round(c, ids, r, 4);
        CHECK_STR(r[3].server_status, "ACTIVE");
        CHECK(wait_result(&x, cloud_server_delete(c, ids[3], result_cb, &x, NULL)) == 0);
        CHECK_INT(x.error, 0);
        CHECK_INT(x.status, 404);
        result_clear(&x);
        show_round(c, ids, r, 4);
        CHECK_INT(r[3].error, -ENOENT);
        CHECK(test_emulator_config(&emu, "{\"deleted_keep\": null, \"build_error_regex\": null, "
                                         "\"build_error_kind\": \"novalidhost\"}") == 0);
        for (unsigned i = 0; i < 5; i++) {
                result_clear(&r[i]);
                result_clear(&made[i]);
        }
}


static void test_network_resolve(void) {
        _cleanup_(cloud_freep) struct cloud *c = new_cloud(CLUSTER, NULL, NULL);
        struct result r = {};
        long before;

        emu_reset();
        CHECK(wait_result(&r, cloud_network_resolve(c, "private", result_cb, &r, NULL)) == 0);
        CHECK_INT(r.error, 0);
        CHECK_STR(r.id, NETWORK);
        result_clear(&r);
        CHECK(wait_result(&r, cloud_network_resolve(c, "public", result_cb, &r, NULL)) == 0);
        CHECK_INT(r.error, -ENOENT);
        CHECK(r.message && strstr(r.message, "no network named 'public'") != NULL);
        result_clear(&r);

        /* Cached, and what Nova takes as is: no API call at all. */
        before = emu_stat("total");
        CHECK(wait_result(&r, cloud_network_resolve(c, "private", result_cb, &r, NULL)) == 0);
        CHECK_STR(r.id, NETWORK);
        result_clear(&r);
        CHECK(wait_result(&r, cloud_network_resolve(c, "0b6b1e2c-2f7e-4c5a-9d3b-8e1f0a2b3c4d", result_cb, &r,
                                                    NULL)) == 0);
        CHECK_INT(r.error, 0);
        CHECK_STR(r.id, "0b6b1e2c-2f7e-4c5a-9d3b-8e1f0a2b3c4d");
        result_clear(&r);
        CHECK(wait_result(&r, cloud_network_resolve(c, "none", result_cb, &r, NULL)) == 0);
        CHECK_STR(r.id, "none");
        result_clear(&r);
        CHECK(wait_result(&r, cloud_network_resolve(c, "auto", result_cb, &r, NULL)) == 0);
        CHECK_STR(r.id, "auto");
        result_clear(&r);
        CHECK_INT(emu_stat("total"), before);
        CHECK(cloud_network_resolve(c, NULL, result_cb, &r, NULL) == -EINVAL);

        /* A name needing escapes reaches Neutron as that name. */
        CHECK(wait_result(&r, cloud_network_resolve(c, "priv ate&name=private", result_cb, &r, NULL)) == 0);
        CHECK_INT(r.error, -ENOENT);
        result_clear(&r);
}

/* network_endpoint_override wins over the catalog. */
static void test_network_override(void) {
        struct cloud_options o = { .cluster = CLUSTER };
        struct cloud_config *cc = emu_config("demo", NULL);
        _cleanup_(cloud_freep) struct cloud *c = NULL;
        _cleanup_free_ char *err = NULL;
        struct result r = {};
        char url[192];

        snprintf(url, sizeof(url), "%s/elsewhere", emu.base);
        cc->network_endpoint_override = strdup(url);
        if (cloud_new(ev, cc, &o, &c, &err) < 0) {
                clouds_free(cc);
                CHECK(false);
                return;
        }
        CHECK(wait_result(&r, cloud_network_resolve(c, "private", result_cb, &r, NULL)) == 0);
        CHECK(r.error < 0);
        CHECK_INT(r.status, 404);
        CHECK(!r.message || !strstr(r.message, "no network named"));
        result_clear(&r);
}

static void test_token_expiry(void) {
        _cleanup_(cloud_freep) struct cloud *c = new_cloud(CLUSTER, NULL, NULL);
        struct cloud_stats st;
        struct result r = {};

        emu_reset();
        CHECK(wait_result(&r, cloud_servers_list(c, NULL, result_cb, &r, NULL)) == 0);
        CHECK_INT(r.error, 0);
        result_clear(&r);
        /* Revoked behind our back: one 401, one new token, the call repeated. */
        CHECK(test_emulator_call(&emu, "POST", "/_emulator/tokens/expire", "{}", NULL) == 200);
        CHECK(wait_result(&r, cloud_servers_list(c, NULL, result_cb, &r, NULL)) == 0);
        CHECK_INT(r.error, 0);
        result_clear(&r);
        cloud_get_stats(c, &st);
        CHECK_INT(st.auths, 2);
        CHECK_INT(st.reauths_on_401, 1);

        /* A create meeting an expired token is repeated too (nothing was created). */
        CHECK(test_emulator_call(&emu, "POST", "/_emulator/tokens/expire", "{}", NULL) == 200);
        CHECK(wait_result(&r, create(c, CLUSTER, "cn-t", "op-t", NULL, &r)) == 0);
        CHECK_INT(r.error, 0);
        result_clear(&r);
        CHECK_INT(emu_live("cn-t", NULL, NULL), 1);
        cloud_get_stats(c, &st);
        CHECK_INT(st.auths, 3);
        CHECK_INT(st.reauths_on_401, 2);
}

static void test_token_renewal(void) {
        _cleanup_(cloud_freep) struct cloud *c = NULL;
        struct cloud_stats st;
        struct result r = {};

        emu_reset();
        /* A 2 s token is used for at most half its life, then renewed without a 401. */
        CHECK(test_emulator_config(&emu, "{\"token_ttl\": 2}") == 0);
        c = new_cloud(CLUSTER, NULL, NULL);
        CHECK(wait_result(&r, cloud_servers_list(c, NULL, result_cb, &r, NULL)) == 0);
        CHECK_INT(r.error, 0);
        result_clear(&r);
        run_for(1200000);
        CHECK(wait_result(&r, cloud_servers_list(c, NULL, result_cb, &r, NULL)) == 0);
        CHECK_INT(r.error, 0);
        result_clear(&r);
        cloud_get_stats(c, &st);
        CHECK_INT(st.auths, 2);
        CHECK_INT(st.reauths_on_401, 0);
}

/* Keystone answers 503 for a while: calls made meanwhile wait and go
 * through once it is back; nothing fails, nothing is POSTed twice. */
static void test_keystone_outage(void) {
        _cleanup_(cloud_freep) struct cloud *c = NULL;
        struct result r[3] = {};
        struct cloud_stats st;

        emu_reset();
        CHECK(test_emulator_config(&emu, "{\"token_ttl\": 4, \"outage_path\": \"^/v3\", \"outage_seconds\": 4}") == 0);
        c = new_cloud(CLUSTER, NULL, NULL);
        CHECK(create(c, CLUSTER, "cn-ko1", "op-ko1", NULL, &r[0]) == 0);
        CHECK(cloud_servers_list(c, NULL, result_cb, &r[1], NULL) == 0);
        CHECK(test_run_until(ev, &r[0].done, 60) == 0);
        CHECK(test_run_until(ev, &r[1].done, 60) == 0);
        CHECK_INT(r[0].error, 0);
        CHECK_INT(r[1].error, 0);
        result_clear(&r[0]);
        result_clear(&r[1]);
        cloud_get_stats(c, &st);
        CHECK(st.auth_failures >= 1);
        CHECK_INT(st.create_posts, 1);
        /* A second outage outlasting the 4 s token: the token runs out, the
         * call waits for Keystone and is sent with the new token. */
        CHECK(test_emulator_config(&emu, "{\"outage_seconds\": 6}") == 0);
        run_for(4500000);
        CHECK(wait_result(&r[2], cloud_servers_list(c, NULL, result_cb, &r[2], NULL)) == 0);
        CHECK_INT(r[2].error, 0);
        result_clear(&r[2]);
        CHECK_INT(emu_live("cn-ko1", NULL, NULL), 1);
        /* Past its deadline a waiting call gets Keystone's error. */
        CHECK(test_emulator_call(&emu, "POST", "/_emulator/tokens/expire", "{}", NULL) == 200);
        CHECK(test_emulator_config(&emu, "{\"outage_seconds\": 30}") == 0);
        uint64_t id = 0;
        CHECK(cloud_servers_list(c, NULL, result_cb, &r[2], &id) == 0);
        CHECK(cloud_set_deadline(c, id, test_now_usec() + 2000000) == 0);
        CHECK(test_run_until(ev, &r[2].done, 30) == 0);
        CHECK_INT(r[2].error, -EREMOTEIO);
        CHECK(r[2].message && strstr(r[2].message, "authentication") != NULL);
        result_clear(&r[2]);
        CHECK(test_emulator_config(&emu, "{\"outage_seconds\": 0, \"token_ttl\": 86400}") == 0);
}

/* A 429 from Nova holds Nova's calls only: an image lookup goes at once. */
static void test_429_per_service(void) {
        _cleanup_(cloud_freep) struct cloud *c = new_cloud(CLUSTER, NULL, NULL);
        struct result a = {}, b = {};

        emu_reset();
        CHECK(wait_result(&a, cloud_servers_list(c, NULL, result_cb, &a, NULL)) == 0);
        result_clear(&a);
        CHECK(test_emulator_config(&emu, "{\"ratelimit_next\": 1, \"retry_after\": 3, \"fault_path\": \"^/compute\"}") == 0);
        uint64_t t0 = test_now_usec();
        CHECK(cloud_servers_list(c, NULL, result_cb, &a, NULL) == 0);
        run_for(300000);
        CHECK(wait_result(&b, cloud_image_resolve(c, "tiny-v2", result_cb, &b, NULL)) == 0);
        CHECK_INT(b.error, 0);
        CHECK(test_now_usec() - t0 < 2000000);
        CHECK(!a.done);
        CHECK(test_run_until(ev, &a.done, 30) == 0);
        CHECK_INT(a.error, 0);
        CHECK(test_now_usec() - t0 >= 2500000);
        result_clear(&a);
        result_clear(&b);
        CHECK(test_emulator_config(&emu, "{\"fault_path\": null}") == 0);
}

/* Short tokens: each request carries the token current when it is sent. */
static void test_short_tokens(void) {
        _cleanup_(cloud_freep) struct cloud *c = NULL;
        struct cloud_stats st;
        static struct result r[40];

        emu_reset();
        CHECK(test_emulator_config(&emu, "{\"token_ttl\": 2, \"latency\": 0.1, \"workers\": 2}") == 0);
        struct cloud_options o = { .http = { .max_in_flight = 2 } };
        c = new_cloud(CLUSTER, &o, NULL);
        for (int i = 0; i < 40; i++)
                CHECK(cloud_servers_list(c, NULL, result_cb, &r[i], NULL) == 0);
        for (int i = 0; i < 40; i++) {
                CHECK(test_run_until(ev, &r[i].done, 60) == 0);
                CHECK_INT(r[i].error, 0);
                result_clear(&r[i]);
        }
        cloud_get_stats(c, &st);
        /* 40 calls of 0.1 s two at a time: 2 s, a token renewed every 1 s */
        printf("# short tokens: %" PRIu64 " auths, %" PRIu64 " 401s\n", st.auths, st.reauths_on_401);
        CHECK(st.auths >= 2);
        CHECK(st.reauths_on_401 <= 2);
        CHECK(test_emulator_config(&emu, "{\"token_ttl\": 86400, \"latency\": 0, \"workers\": 0}") == 0);
}

static void test_bad_credentials(void) {
        _cleanup_(cloud_freep) struct cloud *c = new_cloud(CLUSTER, NULL, "wrong");
        struct result r1, r2;

        emu_reset();
        /* Both calls wait for the same authentication and both fail with its error. */
        memset(&r1, 0, sizeof(r1));
        memset(&r2, 0, sizeof(r2));
        CHECK(cloud_servers_list(c, NULL, result_cb, &r1, NULL) == 0);
        CHECK(cloud_server_show(c, "x", result_cb, &r2, NULL) == 0);
        CHECK(test_run_until(ev, &r1.done, 30) == 0);
        CHECK(test_run_until(ev, &r2.done, 30) == 0);
        CHECK_INT(r1.error, -EACCES);
        CHECK_INT(r1.status, 401);
        CHECK(r1.message && strstr(r1.message, "requires authentication") != NULL);
        CHECK(r1.message && strstr(r1.message, "wrong") == NULL);
        CHECK_INT(r2.error, -EACCES);
        result_clear(&r1);
        result_clear(&r2);
}

/* ---- faults on create ---- */

static void test_create_5xx_not_processed(void) {
        _cleanup_(cloud_freep) struct cloud *c = new_cloud(CLUSTER, NULL, NULL);
        struct cloud_stats st;
        struct result r = {};

        emu_reset();
        CHECK(test_emulator_config(&emu, "{\"error_next\": 1, \"error_codes\": [502], \"fault_method\": \"POST\", "
                                         "\"fault_path\": \"/servers$\"}") == 0);
        CHECK(wait_result(&r, create(c, CLUSTER, "cn-5", "op-5", NULL, &r)) == 0);
        CHECK_INT(r.error, 0);
        CHECK(!r.adopted);
        result_clear(&r);
        cloud_get_stats(c, &st);
        CHECK_INT(st.create_posts, 2);
        CHECK_INT(st.create_lookups, 1);
        CHECK_INT(emu_live("cn-5", NULL, NULL), 1);
}

static void test_create_reply_lost(void) {
        _cleanup_(cloud_freep) struct cloud *c = new_cloud(CLUSTER, NULL, NULL);
        struct cloud_stats st;
        struct result r = {};

        emu_reset();
        /* Created, then the connection drops: found by the lookup, not created
         * twice. (A POST on a reused connection would be re-sent by libcurl
         * itself here and make a second server: http.c never reuses one for
         * a POST.) */
        CHECK(test_emulator_config(&emu, "{\"drop_next\": 1, \"drop_after\": true, \"fault_method\": \"POST\", "
                                         "\"fault_path\": \"/servers$\"}") == 0);
        CHECK(wait_result(&r, create(c, CLUSTER, "cn-6", "op-6", NULL, &r)) == 0);
        CHECK_INT(r.error, 0);
        CHECK(r.adopted);
        CHECK(r.id != NULL);
        result_clear(&r);
        cloud_get_stats(c, &st);
        CHECK_INT(st.create_posts, 1);
        CHECK_INT(st.create_adopted, 1);
        CHECK_INT(emu_live("cn-6", NULL, NULL), 1);

        /* Dropped before processing (with a RST): looked up, then POSTed again. */
        CHECK(test_emulator_config(&emu, "{\"drop_next\": 1, \"drop_after\": false, \"drop_reset\": true, "
                                         "\"fault_method\": \"POST\", \"fault_path\": \"/servers$\"}") == 0);
        CHECK(wait_result(&r, create(c, CLUSTER, "cn-7", "op-7", NULL, &r)) == 0);
        CHECK_INT(r.error, 0);
        CHECK(!r.adopted);
        result_clear(&r);
        cloud_get_stats(c, &st);
        CHECK_INT(st.create_posts, 3);
        CHECK_INT(emu_live("cn-7", NULL, NULL), 1);
}

static void test_create_timeout(void) {
        struct cloud_options o = { .create_timeout_usec = 500000, .create_recheck_usec = 2000000 };
        _cleanup_(cloud_freep) struct cloud *c = new_cloud(CLUSTER, &o, NULL);
        struct cloud_stats st;
        struct result r = {};

        emu_reset();
        /* The POST answers after 1.5 s; we give up after 0.5 s: "maybe created". */
        CHECK(test_emulator_config(&emu, "{\"latency_by_method\": {\"POST\": 1.5}}") == 0);
        /* Authenticate first: Keystone's POST is slow too (and retried). */
        CHECK(wait_result(&r, cloud_servers_list(c, NULL, result_cb, &r, NULL)) == 0);
        result_clear(&r);
        CHECK(wait_result(&r, create(c, CLUSTER, "cn-8", "op-8", NULL, &r)) == 0);
        CHECK_INT(r.error, 0);
        CHECK(r.adopted);
        result_clear(&r);
        cloud_get_stats(c, &st);
        CHECK_INT(st.create_posts, 1);
        CHECK_INT(emu_live("cn-8", NULL, NULL), 1);
}

/* POSTs three times slower than create_timeout: looked up until they show
 * up, never POSTed twice. */
static void test_create_slow_posts(void) {
        struct cloud_options o = { .create_timeout_usec = 500000, .create_recheck_usec = 200000 };
        _cleanup_(cloud_freep) struct cloud *c = new_cloud(CLUSTER, &o, NULL);
        struct result r[4] = {};
        struct cloud_stats st;
        char name[16];

        emu_reset();
        CHECK(wait_result(&r[0], cloud_servers_list(c, NULL, result_cb, &r[0], NULL)) == 0);
        result_clear(&r[0]);
        CHECK(test_emulator_config(&emu, "{\"latency_by_path\": {\"^POST /compute/v2.1/servers$\": 1.5}}") == 0);
        for (int i = 0; i < 4; i++) {
                snprintf(name, sizeof(name), "cn-sl%d", i);
                CHECK(create(c, CLUSTER, name, name, NULL, &r[i]) == 0);
        }
        for (int i = 0; i < 4; i++) {
                CHECK(test_run_until(ev, &r[i].done, 60) == 0);
                CHECK_INT(r[i].error, 0);
                CHECK(r[i].adopted);
                result_clear(&r[i]);
        }
        cloud_get_stats(c, &st);
        CHECK_INT(st.create_posts, 4);
        CHECK_INT(emu_live(NULL, NULL, NULL), 4);
        CHECK(test_emulator_config(&emu, "{\"latency_by_path\": {}}") == 0);
}

static void test_create_429(void) {
        _cleanup_(cloud_freep) struct cloud *c = new_cloud(CLUSTER, NULL, NULL);
        struct cloud_stats st;
        struct result r = {};
        uint64_t t0;

        emu_reset();
        CHECK(test_emulator_config(&emu, "{\"ratelimit_next\": 2, \"retry_after\": 1, \"fault_method\": \"POST\", "
                                         "\"fault_path\": \"/servers$\"}") == 0);
        CHECK(wait_result(&r, cloud_servers_list(c, NULL, result_cb, &r, NULL)) == 0);
        result_clear(&r);
        t0 = test_now_usec();
        CHECK(wait_result(&r, create(c, CLUSTER, "cn-9", "op-9", NULL, &r)) == 0);
        CHECK_INT(r.error, 0);
        result_clear(&r);
        /* Two Retry-After: 1 honoured. */
        CHECK(test_now_usec() - t0 >= 2000000);
        cloud_get_stats(c, &st);
        CHECK_INT(st.create_posts, 3);
        CHECK_INT(st.create_lookups, 0);
        CHECK_INT(emu_live("cn-9", NULL, NULL), 1);
}

static void test_get_faults(void) {
        struct cloud_options o = { .http = { .max_retries = 4 } };
        _cleanup_(cloud_freep) struct cloud *c = new_cloud(CLUSTER, &o, NULL);
        struct cloud_stats st;
        struct result r = {};

        emu_reset();
        CHECK(wait_result(&r, cloud_servers_list(c, NULL, result_cb, &r, NULL)) == 0);
        result_clear(&r);
        CHECK(test_emulator_config(&emu, "{\"error_next\": 2, \"error_codes\": [500, 503], \"fault_method\": \"GET\"}") == 0);
        CHECK(wait_result(&r, cloud_servers_list(c, NULL, result_cb, &r, NULL)) == 0);
        CHECK_INT(r.error, 0);
        result_clear(&r);
        CHECK(test_emulator_config(&emu, "{\"drop_next\": 2, \"fault_method\": \"GET\"}") == 0);
        CHECK(wait_result(&r, cloud_servers_list(c, NULL, result_cb, &r, NULL)) == 0);
        CHECK_INT(r.error, 0);
        result_clear(&r);
        cloud_get_stats(c, &st);
        /* 4 failed attempts; libcurl itself may redo a GET whose reused connection died. */
        CHECK(st.transport.retries >= 3 && st.transport.retries <= 4);

        /* Beyond the engine's retries the client retries until the call's
         * deadline; past it the 5xx and the cloud's message come back. */
        CHECK(test_emulator_config(&emu, "{\"error_next\": 7, \"error_codes\": [500], \"fault_method\": \"GET\"}") == 0);
        CHECK(wait_result(&r, cloud_servers_list(c, NULL, result_cb, &r, NULL)) == 0);
        CHECK_INT(r.error, 0);
        result_clear(&r);
        cloud_get_stats(c, &st);
        CHECK(st.call_retries >= 1);
        CHECK(test_emulator_config(&emu, "{\"error_rate\": 1.0, \"error_codes\": [500], \"fault_method\": \"GET\"}") == 0);
        uint64_t id = 0;
        CHECK(cloud_servers_list(c, NULL, result_cb, &r, &id) == 0);
        CHECK(cloud_set_deadline(c, id, test_now_usec() + 1500000) == 0);
        CHECK(test_run_until(ev, &r.done, 30) == 0);
        CHECK_INT(r.error, -EREMOTEIO);
        CHECK_INT(r.status, 500);
        CHECK(r.message != NULL);
        result_clear(&r);
        CHECK(test_emulator_config(&emu, "{\"error_next\": 0, \"error_rate\": 0}") == 0);

        /* Latency: slower, still right. */
        CHECK(test_emulator_config(&emu, "{\"latency\": 0.3}") == 0);
        uint64_t t0 = test_now_usec();
        CHECK(wait_result(&r, cloud_servers_list(c, NULL, result_cb, &r, NULL)) == 0);
        CHECK_INT(r.error, 0);
        CHECK(test_now_usec() - t0 >= 300000);
        result_clear(&r);
}

static void test_more_faults(void) {
        _cleanup_(cloud_freep) struct cloud *c = new_cloud(CLUSTER, NULL, NULL);
        _cleanup_free_ char *id = NULL;
        struct cloud_stats st;
        struct result r = {}, rs[4] = {};

        emu_reset();
        /* Half an answer (status line, headers, half the body), then FIN:
         * a create that happened, found by the lookup. */
        CHECK(test_emulator_config(&emu, "{\"drop_next\": 1, \"drop_after\": true, \"drop_mode\": \"partial\", "
                                         "\"fault_method\": \"POST\", \"fault_path\": \"/servers$\"}") == 0);
        CHECK(wait_result(&r, create(c, CLUSTER, "cn-h", "op-h", NULL, &r)) == 0);
        CHECK_INT(r.error, 0);
        CHECK(r.adopted);
        id = TAKE_PTR(r.id);
        result_clear(&r);
        CHECK_INT(emu_live("cn-h", NULL, NULL), 1);

        /* The same on a GET: repeated, the truncated body never parsed. */
        CHECK(test_emulator_config(&emu, "{\"drop_next\": 1, \"drop_after\": false, \"drop_mode\": \"partial\", "
                                         "\"fault_method\": \"GET\", \"fault_path\": null}") == 0);
        CHECK(wait_result(&r, cloud_server_show(c, id, result_cb, &r, NULL)) == 0);
        CHECK_INT(r.error, 0);
        CHECK(r.server_status != NULL);
        result_clear(&r);
        cloud_get_stats(c, &st);
        CHECK(st.transport.retries >= 1);

        /* One API worker (nova-api with one eventlet worker): calls queue, all answered. */
        CHECK(test_emulator_config(&emu, "{\"workers\": 1, \"latency\": 0.1, \"drop_next\": 0}") == 0);
        for (int i = 0; i < 4; i++)
                CHECK(cloud_server_show(c, id, result_cb, &rs[i], NULL) == 0);
        for (int i = 0; i < 4; i++) {
                CHECK(test_run_until(ev, &rs[i].done, 30) == 0);
                CHECK_INT(rs[i].error, 0);
                result_clear(&rs[i]);
        }
        CHECK(test_emulator_config(&emu, "{\"workers\": 0, \"latency\": 0}") == 0);

        /* A delete Nova accepts but that fails later: the call succeeded, the
         * server shows ERROR; a second delete removes it. */
        wait_built(c, id, &r);
        result_clear(&r);
        CHECK(test_emulator_config(&emu, "{\"delete_error_next\": 1}") == 0);
        CHECK(wait_result(&r, cloud_server_delete(c, id, result_cb, &r, NULL)) == 0);
        CHECK_INT(r.error, 0);
        result_clear(&r);
        for (int i = 0; i < 100; i++) {
                CHECK(wait_result(&r, cloud_server_show(c, id, result_cb, &r, NULL)) == 0);
                if (r.error < 0 || (r.server_status && strcmp(r.server_status, "ERROR") == 0))
                        break;
                result_clear(&r);
                run_for(50000);
        }
        CHECK_STR(r.server_status, "ERROR");
        CHECK(r.fault && strstr(r.fault, "delete failure") != NULL);
        result_clear(&r);
        CHECK(wait_result(&r, cloud_server_delete(c, id, result_cb, &r, NULL)) == 0);
        CHECK_INT(r.error, 0);
        result_clear(&r);
        for (int i = 0; i < 100 && emu_live("cn-h", NULL, NULL) != 0; i++)
                run_for(50000);
        CHECK_INT(emu_live("cn-h", NULL, NULL), 0);
}

static void test_tags(void) {
        _cleanup_(cloud_freep) struct cloud *c = new_cloud(CLUSTER, NULL, NULL);
        _cleanup_free_ char *body = NULL;
        struct nova_kv meta[] = { { (char *) CLOUD_META_CLUSTER, (char *) CLUSTER },
                                  { (char *) CLOUD_META_NODE, (char *) "cn-tag" } };
        const char *nets[] = { "none", NULL };
        const char *tags[] = { "rack-1", "elasticd.tc", NULL };
        struct nova_create s = { .name = "cn-tag", .flavor_ref = "1", .image_ref = TINY, .networks = nets,
                                 .metadata = meta, .n_metadata = 2, .tags = tags };
        struct result r = {};
        json_t *root, *t;

        emu_reset();
        /* The caller's tags are kept; the cluster tag is added once. */
        CHECK(wait_result(&r, cloud_server_create(c, &s, result_cb, &r, NULL)) == 0);
        CHECK_INT(r.error, 0);
        result_clear(&r);
        CHECK(test_emulator_call(&emu, "GET", "/_emulator/servers", NULL, &body) == 200);
        root = json_loads(body, 0, NULL);
        t = json_object_get(json_array_get(json_object_get(root, "servers"), 0), "tags");
        CHECK_INT(json_array_size(t), 2);
        CHECK_STR(json_string_value(json_array_get(t, 0)), "rack-1");
        CHECK_STR(json_string_value(json_array_get(t, 1)), "elasticd.tc");
        json_decref(root);
}

static void test_paging(void) {
        struct cloud_options o = { .page_size = 2 };
        _cleanup_(cloud_freep) struct cloud *c = new_cloud(CLUSTER, &o, NULL);
        struct result r[5];
        char name[16];

        emu_reset();
        for (int i = 0; i < 5; i++) {
                snprintf(name, sizeof(name), "cn-p%d", i);
                CHECK(create(c, CLUSTER, name, "op-p", NULL, &r[i]) == 0);
        }
        for (int i = 0; i < 5; i++) {
                CHECK(test_run_until(ev, &r[i].done, 30) == 0);
                CHECK_INT(r[i].error, 0);
                result_clear(&r[i]);
        }
        CHECK(wait_result(&r[0], cloud_servers_list(c, NULL, result_cb, &r[0], NULL)) == 0);
        CHECK_INT(r[0].error, 0);
        CHECK_INT(r[0].n_servers, 5);
        result_clear(&r[0]);
}

static void test_cancel_and_free(void) {
        struct cloud *c = new_cloud(CLUSTER, NULL, NULL);
        struct result r1 = {}, r2 = {}, r3 = {};
        uint64_t id1 = 0, id2 = 0;

        emu_reset();
        CHECK(test_emulator_config(&emu, "{\"latency\": 0.3}") == 0);
        CHECK(cloud_servers_list(c, NULL, result_cb, &r1, &id1) == 0);
        CHECK(cloud_server_show(c, "x", result_cb, &r2, &id2) == 0);
        CHECK(cloud_flavor_resolve(c, "small", result_cb, &r3, NULL) == 0);
        CHECK_INT(cloud_cancel(c, id1), 0);
        CHECK_INT(cloud_cancel(c, id1), -ENOENT);
        run_for(100000);
        CHECK_INT(cloud_cancel(c, id2), 0);
        /* Freed with a call in flight: no callback, no leak. */
        c = cloud_free(c);
        run_for(500000);
        CHECK(!r1.done && !r2.done && !r3.done);
}

static void test_backpressure(void) {
        struct cloud_options o = { .max_calls = 3 };
        _cleanup_(cloud_freep) struct cloud *c = new_cloud(CLUSTER, &o, NULL);
        struct result r[4] = {};

        emu_reset();
        for (int i = 0; i < 3; i++)
                CHECK(cloud_servers_list(c, NULL, result_cb, &r[i], NULL) == 0);
        CHECK_INT(cloud_servers_list(c, NULL, result_cb, &r[3], NULL), -EBUSY);
        for (int i = 0; i < 3; i++) {
                CHECK(test_run_until(ev, &r[i].done, 30) == 0);
                CHECK_INT(r[i].error, 0);
                result_clear(&r[i]);
        }
        CHECK(!r[3].done);
}

/* ---- the storm ---- */

#define STORM_N 200
#define STORM_LIMIT 16

static void test_storm(void) {
        struct cloud_options o = {
                .http = { .max_in_flight = STORM_LIMIT, .max_retries = 6 },
                .create_attempts = 12,
        };
        _cleanup_(cloud_freep) struct cloud *c = new_cloud(CLUSTER, &o, NULL);
        static struct result r[STORM_N];
        struct cloud_stats st;
        long active = 0, live;
        bool unique = false;
        char name[16], op[16];
        int failed = 0;

        emu_reset();
        CHECK(test_emulator_call(&emu, "DELETE", "/_emulator/stats", NULL, NULL) == 200);
        CHECK(test_emulator_config(&emu, "{\"error_rate\": 0.2, \"drop_rate\": 0.05, \"drop_after\": true, "
                                         "\"ratelimit_next\": 5, \"ratelimit_rate\": 0.02, \"retry_after\": 1, "
                                         "\"latency\": 0.01, \"build_delay\": 0.1, \"seed\": 7}") == 0);
        for (int i = 0; i < STORM_N; i++) {
                snprintf(name, sizeof(name), "st-%03d", i);
                snprintf(op, sizeof(op), "op-%03d", i);
                CHECK(create(c, CLUSTER, name, op, NULL, &r[i]) == 0);
        }
        for (int i = 0; i < STORM_N; i++) {
                CHECK(test_run_until(ev, &r[i].done, 600) == 0);
                if (r[i].error < 0) {
                        failed++;
                        printf("# %d: %d %s\n", i, r[i].error, r[i].message ? r[i].message : "");
                }
                result_clear(&r[i]);
        }
        CHECK_INT(failed, 0);
        cloud_get_stats(c, &st);
        printf("# storm: %" PRIu64 " POSTs, %" PRIu64 " lookups, %" PRIu64 " adopted, %" PRIu64
               " retries, %" PRIu64 " throttled, max in flight %u\n",
               st.create_posts, st.create_lookups, st.create_adopted, st.transport.retries, st.transport.throttled,
               st.transport.max_in_flight_seen);
        CHECK(st.transport.max_in_flight_seen <= STORM_LIMIT);
        printf("# emulator: max in flight %ld\n", emu_stat("max_in_flight"));
        CHECK(emu_stat("max_in_flight") <= STORM_LIMIT);
        CHECK(emu_stat("max_in_flight") >= 1);
        CHECK(st.create_lookups > 0);

        /* Faults off; wait for the builds. */
        CHECK(test_emulator_config(&emu, "{\"error_rate\": 0, \"drop_rate\": 0, \"ratelimit_rate\": 0, "
                                         "\"ratelimit_next\": 0, \"latency\": 0}") == 0);
        for (int i = 0; i < 300; i++) {
                live = emu_live(NULL, &active, &unique);
                if (active == STORM_N || live != STORM_N)
                        break;
                run_for(100000);
        }
        live = emu_live(NULL, &active, &unique);
        CHECK_INT(live, STORM_N);
        CHECK_INT(active, STORM_N);
        CHECK(unique);
}

static void test_tls(void) {
        struct test_emulator tls = {};
        char dir[64], cmd[256], ca[128], other[128], url[192];
        struct result r = {};

        snprintf(dir, sizeof(dir), "/tmp/elasticd-tls-%d", (int) getpid());
        snprintf(cmd, sizeof(cmd), "sh '%s/../mkcert.sh' '%s'", SRCDIR "/tests/emulator", dir);
        {
                /* mkcert.sh sits beside the emulator. */
                const char *p = test_emulator_path();
                const char *slash = strrchr(p, '/');
                snprintf(cmd, sizeof(cmd), "sh '%.*s/mkcert.sh' '%s'", (int) (slash - p), p, dir);
        }
        CHECK(system(cmd) == 0);
        snprintf(ca, sizeof(ca), "%s/ca.pem", dir);
        snprintf(other, sizeof(other), "%s/other-ca.pem", dir);
        CHECK(test_emulator_start(&tls, ev, NULL, dir) == 0);
        snprintf(url, sizeof(url), "%s/v3", tls.base);

        for (int i = 0; i < 2; i++) {
                struct cloud_options o = { .cluster = CLUSTER };
                struct cloud_config *cc = emu_config("demo", i == 0 ? ca : other);
                struct cloud *c = NULL;

                free(cc->auth_url);
                cc->auth_url = strdup(url);
                CHECK(cloud_new(ev, cc, &o, &c, NULL) == 0);
                CHECK(wait_result(&r, cloud_servers_list(c, NULL, result_cb, &r, NULL)) == 0);
                if (i == 0) {
                        CHECK_INT(r.error, 0);
                } else {
                        CHECK_INT(r.error, -EKEYREJECTED);
                        CHECK(r.message && strstr(r.message, "authentication") != NULL);
                }
                result_clear(&r);
                cloud_free(c);
        }
        test_emulator_stop(&tls);
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        (void) system(cmd);
}

static void test_old_nova(void) {
        const char *argv[] = { "python3", SRCDIR "/tests/cloud/stub-http.py", NULL };
        struct test_server stub = {};
        struct cloud_options o = { .cluster = CLUSTER };
        struct cloud_config *cc = emu_config("demo", NULL);
        struct cloud *c = NULL;
        struct result r = {};
        char url[128];

        /* Keystone from the emulator, a compute endpoint that is too old. */
        CHECK(test_server_start(&stub, argv) == 0);
        snprintf(url, sizeof(url), "http://127.0.0.1:%d/old-nova/v2.1", stub.port);
        cc->compute_endpoint_override = strdup(url);
        CHECK(cloud_new(ev, cc, &o, &c, NULL) == 0);
        CHECK(wait_result(&r, cloud_servers_list(c, NULL, result_cb, &r, NULL)) == 0);
        CHECK_INT(r.error, -EPROTONOSUPPORT);
        CHECK(r.message && strstr(r.message, "up to 2.42") != NULL);
        result_clear(&r);
        cloud_free(c);
        test_server_stop(&stub);
}

/* Four server lists one after the other: how long they take. */
static uint64_t four_lists(struct cloud *c) {
        uint64_t t0 = test_now_usec();
        struct result r = {};

        for (int i = 0; i < 4; i++) {
                CHECK(wait_result(&r, cloud_servers_list(c, NULL, result_cb, &r, NULL)) == 0);
                CHECK_INT(r.error, 0);
                result_clear(&r);
        }
        return test_now_usec() - t0;
}

/* A reload: new limits and endpoint overrides reach the calls started
 * after it; the cluster cannot change. */
static void test_apply_config(void) {
        const char *argv[] = { "python3", SRCDIR "/tests/cloud/stub-http.py", NULL };
        struct test_server stub = {};
        struct cloud_options o = { .cluster = CLUSTER };
        struct cloud_config *cc = emu_config("demo", NULL);
        struct cloud *c = NULL;
        struct cloud_stats st;
        struct result r = {};
        char old_nova[128], compute[224];
        char *err = NULL;
        uint64_t t;

        emu_reset();
        CHECK(test_server_start(&stub, argv) == 0);
        /* clouds.yaml names a compute API that is too old; elasticd.yaml's override wins. */
        snprintf(old_nova, sizeof(old_nova), "http://127.0.0.1:%d/old-nova/v2.1", stub.port);
        snprintf(compute, sizeof(compute), "%s/compute/v2.1", emu.base);
        cc->compute_endpoint_override = strdup(old_nova);
        o.endpoints.compute = compute;
        CHECK(cloud_new(ev, cc, &o, &c, NULL) == 0);
        if (!c) {
                clouds_free(cc);
                test_server_stop(&stub);
                return;
        }
        CHECK(four_lists(c) < 2000000);

        /* Another cluster: refused, with a message; nothing else changes. */
        o.cluster = "other";
        o.http.rate = 1;
        CHECK_INT(cloud_apply_config(c, &o, &err), -EINVAL);
        CHECK(err && strstr(err, "\"" CLUSTER "\"") && strstr(err, "restart"));
        err = mfree(err);
        CHECK(four_lists(c) < 2000000);

        /* A rate of 5/s with a burst of 1: four calls take at least 0.6 s. */
        o.cluster = CLUSTER;
        o.http.rate = 5;
        o.http.burst = 1;
        CHECK_INT(cloud_apply_config(c, &o, &err), 0);
        t = four_lists(c);
        CHECK(t >= 550000);
        printf("# four lists at 5/s: %.2f s\n", (double) t / 1e6);
        /* Unlimited again: fast. */
        o.http.rate = 0;
        CHECK_INT(cloud_apply_config(c, &o, &err), 0);
        t = four_lists(c);
        CHECK(t < 500000);
        cloud_get_stats(c, &st);
        CHECK_INT(st.auths, 1);

        /* elasticd.yaml's override gone: clouds.yaml's own comes back, after a new token. */
        o.endpoints.compute = NULL;
        CHECK_INT(cloud_apply_config(c, &o, &err), 0);
        CHECK(wait_result(&r, cloud_servers_list(c, NULL, result_cb, &r, NULL)) == 0);
        CHECK_INT(r.error, -EPROTONOSUPPORT);
        result_clear(&r);
        cloud_get_stats(c, &st);
        CHECK_INT(st.auths, 2);
        /* And back to the emulator's compute API. */
        o.endpoints.compute = compute;
        CHECK_INT(cloud_apply_config(c, &o, &err), 0);
        CHECK(wait_result(&r, cloud_servers_list(c, NULL, result_cb, &r, NULL)) == 0);
        CHECK_INT(r.error, 0);
        result_clear(&r);
        cloud_get_stats(c, &st);
        CHECK_INT(st.auths, 3);
        CHECK(!err);
        cloud_free(c);
        test_server_stop(&stub);
}

int main(void) {
        setvbuf(stdout, NULL, _IOLBF, 0);
        signal(SIGPIPE, SIG_IGN);
        log_setup("test-cloud", getenv("ELASTICD_TEST_DEBUG") ? LOG_DEBUG : LOG_INFO);
        if (access(test_emulator_path(), R_OK) < 0) {
                printf("1..0 # SKIP no emulator at %s\n", test_emulator_path());
                return 0;
        }
        if (sd_event_new(&ev) < 0 || test_emulator_start(&emu, ev, NULL, NULL) < 0) {
                printf("Bail out! cannot start the emulator (%s)\n", test_emulator_path());
                return 1;
        }

        RUN(test_lifecycle);
        RUN(test_errors);
        RUN(test_resolve);
        RUN(test_resolve_merged);
        RUN(test_resolve_seeded);
        RUN(test_show_batched);
        RUN(test_show_changes);
        RUN(test_network_resolve);
        RUN(test_network_override);
        RUN(test_token_expiry);
        RUN(test_token_renewal);
        RUN(test_bad_credentials);
        RUN(test_create_5xx_not_processed);
        RUN(test_create_reply_lost);
        RUN(test_create_timeout);
        RUN(test_create_429);
        RUN(test_create_slow_posts);
        RUN(test_keystone_outage);
        RUN(test_429_per_service);
        RUN(test_short_tokens);
        RUN(test_get_faults);
        RUN(test_more_faults);
        RUN(test_tags);
        RUN(test_paging);
        RUN(test_cancel_and_free);
        RUN(test_backpressure);
        RUN(test_storm);
        RUN(test_tls);
        RUN(test_old_nova);
        RUN(test_apply_config);

        test_emulator_stop(&emu);
        sd_event_unref(ev);
        return test_done();
}
