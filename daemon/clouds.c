/* clouds.c - OpenStack credentials from the standard clouds.yaml (+ secure.yaml). */
#include <errno.h>
#include <string.h>

#include "clouds.h"

static char *free_secret(char *s) {
        if (s) {
                explicit_bzero(s, strlen(s));
                free(s);
        }
        return NULL;
}

struct cloud_config *clouds_free(struct cloud_config *c) {
        if (!c)
                return NULL;
        free(c->name);
        free(c->clouds_file);
        free(c->secure_file);
        free(c->auth_url);
        free(c->username);
        free(c->user_id);
        free_secret(c->password);
        free(c->user_domain_name);
        free(c->user_domain_id);
        free(c->project_name);
        free(c->project_id);
        free(c->project_domain_name);
        free(c->project_domain_id);
        free(c->application_credential_id);
        free(c->application_credential_name);
        free_secret(c->application_credential_secret);
        free(c->region_name);
        free(c->cacert);
        free(c->compute_endpoint_override);
        free(c->image_endpoint_override);
        free(c->identity_endpoint_override);
        free(c->network_endpoint_override);
        free(c);
        return NULL;
}

const char *clouds_interface_to_string(enum cloud_interface i) {
        switch (i) {
        case CLOUD_INTERFACE_INTERNAL: return "internal";
        case CLOUD_INTERFACE_ADMIN:    return "admin";
        case CLOUD_INTERFACE_PUBLIC:
        default:                       return "public";
        }
}

const char *clouds_auth_type_to_string(enum cloud_auth_type t) {
        return t == CLOUD_AUTH_APPLICATION_CREDENTIAL ? "v3applicationcredential" : "password";
}
