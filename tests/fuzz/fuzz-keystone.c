/* fuzz-keystone.c - libFuzzer target: token/catalog parsing, endpoint selection, Glance and Neutron parsers. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "fuzz.h"
#include "cloud/glance.h"
#include "cloud/keystone.h"
#include "cloud/neutron.h"
#include "cloud/osjson.h"

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

        /* the hand-written auth body round-trips any UTF-8 secret */
        char *secret = strndup(body, size);
        if (secret && strlen(secret) == size && osjson_utf8_valid(secret)) {
                struct cloud_config c = { .name = (char *) "fuzz", .auth_type = CLOUD_AUTH_APPLICATION_CREDENTIAL,
                                          .application_credential_id = secret,
                                          .application_credential_secret = secret };
                char *auth = NULL;
                if (size > 0) {
                        if (keystone_auth_body(&c, &auth, &e) < 0)
                                abort();
                        json_t *j = json_loads(auth, 0, NULL);
                        json_t *ac = json_object_get(json_object_get(json_object_get(j, "auth"), "identity"),
                                                     "application_credential");
                        if (!json_is_string(json_object_get(ac, "secret")) ||
                            strcmp(json_string_value(json_object_get(ac, "secret")), secret) != 0)
                                abort();
                        json_decref(j);
                }
                keystone_auth_body_free(auth);
                os_error_clear(&e);
        }
        free(secret);

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
