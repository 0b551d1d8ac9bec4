/* glance.c - Glance image API v2: image show and list parsers. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cloud/glance.h"
#include "cloud/osjson.h"

static void image_clear(struct glance_image *i) {
        free(i->id);
        free(i->name);
        free(i->status);
        free(i->checksum);
}

struct glance_image *glance_image_free(struct glance_image *i) {
        if (!i)
                return NULL;
        image_clear(i);
        free(i);
        return NULL;
}

struct glance_image_list *glance_image_list_free(struct glance_image_list *l) {
        if (!l)
                return NULL;
        for (size_t i = 0; i < l->n_images; i++)
                image_clear(&l->images[i]);
        free(l->images);
        free(l->next_marker);
        free(l);
        return NULL;
}

static int parse_image(json_t *o, const char *path, struct glance_image *img, struct os_error *err) {
        long long size = 0;
        int r;

        if (!json_is_object(o))
                return os_error_set(err, -EBADMSG, "%s: expected an object, got %s", path, osjson_type_name(o));
        if ((r = osjson_get_string(o, path, "id", 0, &img->id, err)) < 0 ||
            (r = osjson_get_string(o, path, "name", OSJSON_MAYBE, &img->name, err)) < 0 ||
            (r = osjson_get_string(o, path, "status", 0, &img->status, err)) < 0 ||
            (r = osjson_get_int(o, path, "size", OSJSON_MAYBE, 0, INT64_MAX, &size, err)) < 0 ||
            (r = osjson_get_string(o, path, "checksum", OSJSON_MAYBE, &img->checksum, err)) < 0)
                return r;
        if (!*img->id)
                return os_error_set(err, -EBADMSG, "%s.id: empty", path);
        img->size = (uint64_t) size;
        return 0;
}

int glance_parse_image(const char *body, size_t len, struct glance_image **ret, struct os_error *err) {
        _cleanup_json_ json_t *root = NULL;
        _cleanup_(glance_image_freep) struct glance_image *img = NULL;
        int r;

        r = osjson_load(body, len, "image", &root, err);
        if (r < 0)
                return r;
        img = calloc(1, sizeof(*img));
        if (!img)
                return -ENOMEM;
        r = parse_image(root, "image", img, err);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(img);
        return 0;
}

int glance_parse_image_list(const char *body, size_t len, struct glance_image_list **ret,
                            struct os_error *err) {
        _cleanup_json_ json_t *root = NULL;
        _cleanup_(glance_image_list_freep) struct glance_image_list *l = NULL;
        _cleanup_free_ char *next = NULL;
        json_t *a, *o;
        size_t i;
        int r;

        r = osjson_load(body, len, "image list", &root, err);
        if (r < 0)
                return r;
        r = osjson_get_array(root, "response", "images", 0, GLANCE_IMAGES_MAX, &a, err);
        if (r < 0)
                return r;
        l = calloc(1, sizeof(*l));
        if (!l)
                return -ENOMEM;
        l->images = calloc(json_array_size(a) ?: 1, sizeof(*l->images));
        if (!l->images)
                return -ENOMEM;
        json_array_foreach(a, i, o) {
                char path[32];
                snprintf(path, sizeof(path), "images[%zu]", i);
                l->n_images++;
                r = parse_image(o, path, &l->images[i], err);
                if (r < 0)
                        return r;
        }
        /* "next": "/v2/images?marker=<id>&name=..." only when there is more */
        r = osjson_get_string(root, "response", "next", OSJSON_MAYBE, &next, err);
        if (r < 0)
                return r;
        if (next) {
                r = osjson_url_query_param(next, "marker", &l->next_marker);
                if (r == -ENOMEM)
                        return r;
                if (r != 0)
                        return os_error_set(err, -EBADMSG, "response.next: no usable marker");
        }
        *ret = TAKE_PTR(l);
        return 0;
}

int glance_parse_error(const char *body, size_t len, struct os_error *err) {
        return os_error_from_body(err, body, len);
}
