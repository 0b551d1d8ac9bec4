/* glance.h - Glance image API v2: image show and list parsers. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "util/macro.h"
#include "cloud/oserror.h"

#define GLANCE_IMAGES_MAX 10000

struct glance_image {
        char *id;
        char *name;            /* may be NULL (Glance allows unnamed images) */
        char *status;          /* "active", "queued", "saving", ... */
        uint64_t size;         /* bytes; 0 when null (not uploaded yet) */
        char *checksum;        /* md5 hex, or NULL */
};

struct glance_image_list {
        struct glance_image *images;
        size_t n_images;
        char *next_marker;     /* from "next", NULL on the last page */
};

struct glance_image *glance_image_free(struct glance_image *i);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct glance_image *, glance_image_free);
struct glance_image_list *glance_image_list_free(struct glance_image_list *l);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct glance_image_list *, glance_image_list_free);

/* GET /v2/images/{id}: the image object itself (no wrapper). */
int glance_parse_image(const char *body, size_t len, struct glance_image **ret, struct os_error *err);

/* GET /v2/images?name=X: {"images":[...], "next": "/v2/images?marker=..."}. */
int glance_parse_image_list(const char *body, size_t len, struct glance_image_list **ret,
                            struct os_error *err);

/* Any Glance error response. Send "Accept: application/json", or Glance
 * answers errors in HTML (handled too). */
int glance_parse_error(const char *body, size_t len, struct os_error *err);
