/* clouds.h - OpenStack credentials from the standard clouds.yaml (+ secure.yaml). */
#pragma once

#include <stdbool.h>
#include <stdio.h>

#include "util/macro.h"

enum cloud_auth_type {
        CLOUD_AUTH_PASSWORD,                  /* "password", "v3password" */
        CLOUD_AUTH_APPLICATION_CREDENTIAL,    /* "v3applicationcredential" */
};

enum cloud_interface {
        CLOUD_INTERFACE_PUBLIC,               /* default */
        CLOUD_INTERFACE_INTERNAL,
        CLOUD_INTERFACE_ADMIN,
};

/* One cloud of clouds.yaml, secure.yaml merged over it. Unset strings are NULL.
 * password and application_credential_secret are secrets: never print them;
 * clouds_free() wipes them. */
struct cloud_config {
        char *name;                           /* the cloud's key under "clouds:" */
        char *clouds_file;                    /* file it came from */
        char *secure_file;                    /* secure.yaml merged in, or NULL */

        enum cloud_auth_type auth_type;
        char *auth_url;                       /* as written; see keystone_tokens_url() */

        /* password: username or user_id (+ user domain for username); project scope */
        char *username;
        char *user_id;
        char *password;                       /* secret */
        char *user_domain_name;
        char *user_domain_id;
        char *project_name;
        char *project_id;
        char *project_domain_name;
        char *project_domain_id;

        /* v3applicationcredential: id, or name + username/user_id (+ user domain) */
        char *application_credential_id;
        char *application_credential_name;
        char *application_credential_secret;  /* secret */

        char *region_name;                    /* NULL: first endpoint of any region */
        enum cloud_interface interface;
        char *cacert;                         /* CA bundle path, or NULL for the system's */
        char *cacert_pem;                     /* its bytes, read at load (NUL-terminated) */
        size_t cacert_pem_len;
        bool verify;                          /* TLS verification, default true */

        /* <service>_endpoint_override; take precedence over the catalog */
        char *compute_endpoint_override;
        char *image_endpoint_override;
        char *identity_endpoint_override;
        char *network_endpoint_override;
};

struct cloud_config *clouds_free(struct cloud_config *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct cloud_config *, clouds_free);

/* Load cloud NAME. The clouds file is EXPLICIT_PATH if not NULL, else
 * $OS_CLIENT_CONFIG_FILE, else the first that exists of ./clouds.yaml,
 * $XDG_CONFIG_HOME/openstack/clouds.yaml (default ~/.config/openstack),
 * /etc/openstack/clouds.yaml. The secure file is $OS_CLIENT_SECURE_FILE, else
 * secure.yaml beside the clouds file, else the first secure.yaml in the same
 * search dirs; its clouds.NAME dict is deep-merged over clouds.NAME.
 * A file that provides a secret must not be readable/writable by group or
 * others. On failure returns a negative errno and a one-line message in
 * *ret_error ("FILE:LINE:COL: cloud 'x': key: problem"; never a secret).
 * -ENOENT: no clouds file, or no such cloud (the message lists the names). */
int clouds_load(const char *explicit_path, const char *name,
                struct cloud_config **ret, char **ret_error);

/* Same with the files given (SECURE_PATH may be NULL); no search, no env. */
int clouds_load_files(const char *clouds_path, const char *secure_path, const char *name,
                      struct cloud_config **ret, char **ret_error);

/* The candidate paths for BASENAME ("clouds.yaml" or "secure.yaml") in search
 * order, NULL-terminated, malloc'd (free each and the array). Env overrides
 * are not included. */
int clouds_search_path(const char *basename, char ***ret_paths);

/* Print C for "elasticd --check": one "key: value" line per set field, the
 * secrets shown only as "<hidden>". */
int clouds_print(const struct cloud_config *c, FILE *f);

const char *clouds_interface_to_string(enum cloud_interface i);
const char *clouds_auth_type_to_string(enum cloud_auth_type t);
