/* fuzz-keystone.c - libFuzzer target: token/catalog parsing, endpoint selection, Glance and Neutron parsers. */
#include <stdint.h>
#include <stdlib.h>

#include "fuzz.h"
#include "glance.h"
#include "keystone.h"
#include "neutron.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static const char *const services[] = { "compute", "image", "identity", "network" };
        const char *body = (const char *) data;
        struct os_error e = {};
        struct keystone_token *t = NULL;

        if (keystone_parse_token("token", body, size, &t, &e) == 0) {
                for (size_t i = 0; i < 4; i++)
                        for (int iface = CLOUD_INTERFACE_PUBLIC; iface <= CLOUD_INTERFACE_ADMIN; iface++) {
                                struct cloud_config c = { .name = (char *) "fuzz", .interface = iface };
                                char *url = NULL;
                                os_error_clear(&e);
                                (void) keystone_endpoint_url(t, &c, services[i], &url, &e);
                                free(url);
                                c.region_name = (char *) "RegionOne";
                                url = NULL;
                                os_error_clear(&e);
                                (void) keystone_endpoint_url(t, &c, services[i], &url, &e);
                                free(url);
                        }
        }
        keystone_token_free(t);
        os_error_clear(&e);

        char *id = NULL;
        (void) keystone_parse_version(body, size, &id, &e);
        free(id);
        os_error_clear(&e);

        struct glance_image *img = NULL;
        (void) glance_parse_image(body, size, &img, &e);
        glance_image_free(img);
        os_error_clear(&e);

        struct glance_image_list *l = NULL;
        (void) glance_parse_image_list(body, size, &l, &e);
        glance_image_list_free(l);
        os_error_clear(&e);

        struct neutron_network_list *nl = NULL;
        (void) neutron_parse_network_list(body, size, &nl, &e);
        neutron_network_list_free(nl);
        os_error_clear(&e);
        return 0;
}
