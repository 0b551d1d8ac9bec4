/* test-neutron.c - Neutron network list parsing and uuid detection. */
#include <errno.h>
#include <string.h>

#include "cloud/neutron.h"
#include "test.h"

static void test_list(void) {
        /* shape of GET /v2.0/networks?name=cluster (Zed) */
        const char *body =
                "{\"networks\":[{\"id\":\"8a7f1ff5-6e74-4a4a-9b18-4d3f1bba5e6a\",\"name\":\"cluster\","
                "\"tenant_id\":\"e861fe9e79eb4a6b9192e9b891ae0e52\",\"admin_state_up\":true,\"mtu\":1500,"
                "\"status\":\"ACTIVE\",\"subnets\":[],\"shared\":false,\"router:external\":false,"
                "\"provider:network_type\":\"flat\",\"tags\":[],\"revision_number\":1}],"
                "\"networks_links\":[{\"rel\":\"next\",\"href\":\"http://h:9696/v2.0/networks?limit=1&marker=8a7f\"},"
                "{\"rel\":\"previous\",\"href\":\"http://h:9696/v2.0/networks?limit=1&marker=0&page_reverse=True\"}]}";
        _cleanup_(neutron_network_list_freep) struct neutron_network_list *l = NULL;
        CHECK_INT(neutron_parse_network_list(body, strlen(body), &l, NULL), 0);
        if (!l)
                return;
        CHECK_INT(l->n_networks, 1);
        CHECK_STR(l->networks[0].id, "8a7f1ff5-6e74-4a4a-9b18-4d3f1bba5e6a");
        CHECK_STR(l->networks[0].name, "cluster");
        CHECK_STR(l->networks[0].status, "ACTIVE");
        CHECK_STR(l->next_marker, "8a7f");

        const char *empty = "{\"networks\":[]}";
        _cleanup_(neutron_network_list_freep) struct neutron_network_list *e = NULL;
        CHECK_INT(neutron_parse_network_list(empty, strlen(empty), &e, NULL), 0);
        CHECK(e && e->n_networks == 0 && e->next_marker == NULL);
}

static void test_malformed(void) {
        static const struct {
                const char *body, *where;
        } t[] = {
                { "", "empty response body" },
                { "{\"networks\":[", "not valid JSON" },
                { "{}", "response.networks: missing" },
                { "{\"networks\":{}}", "response.networks: expected an array" },
                { "{\"networks\":[1]}", "networks[0]: expected an object" },
                { "{\"networks\":[{\"name\":\"x\"}]}", "networks[0].id: missing" },
                { "{\"networks\":[{\"id\":\"\"}]}", "networks[0].id: empty" },
                { "{\"networks\":[{\"id\":\"a\",\"name\":3}]}", "networks[0].name: expected a string" },
                { "{\"networks\":[],\"networks_links\":[{\"rel\":\"next\",\"href\":\"x\"}]}", "networks_links[0].href: no usable marker" },
                { "{\"networks\":[],\"networks_links\":[7]}", "networks_links[0]: expected an object" },
                { "<html>503</html>", "not valid JSON" },
        };
        for (size_t i = 0; i < ELEMENTSOF(t); i++) {
                struct neutron_network_list *l = NULL;
                struct os_error e = {};
                int r = neutron_parse_network_list(t[i].body, strlen(t[i].body), &l, &e);
                if (r != -EBADMSG || l || !e.message || !strstr(e.message, t[i].where))
                        TEST_FAIL("case %zu: r=%d message=\"%s\", expected \"%s\"", i, r, e.message ?: "(null)", t[i].where);
                os_error_clear(&e);
        }
}

static void test_uuid(void) {
        CHECK(neutron_is_uuid("8a7f1ff5-6e74-4a4a-9b18-4d3f1bba5e6a"));
        CHECK(neutron_is_uuid("8A7F1FF5-6E74-4A4A-9B18-4D3F1BBA5E6A"));
        CHECK(!neutron_is_uuid("8a7f1ff56e744a4a9b184d3f1bba5e6a"));
        CHECK(!neutron_is_uuid("8a7f1ff5-6e74-4a4a-9b18-4d3f1bba5e6"));
        CHECK(!neutron_is_uuid("8a7f1ff5-6e74-4a4a-9b18-4d3f1bba5e6aa"));
        CHECK(!neutron_is_uuid("8a7f1ff5-6e74-4a4a-9b18_4d3f1bba5e6a"));
        CHECK(!neutron_is_uuid("cluster"));
        CHECK(!neutron_is_uuid(""));
        CHECK(!neutron_is_uuid(NULL));
}

int main(void) {
        RUN(test_list);
        RUN(test_malformed);
        RUN(test_uuid);
        return test_done();
}
