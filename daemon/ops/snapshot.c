/* snapshot.c - what an operation uses of its group and of the config,
 * copied when the operation starts and kept to its end, so that a reload
 * changes what new operations get and never what a running one uses. */
#include "ops/op.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/strv.h"

static int strdup_opt(const char *s, char **ret) {
        if (!s) {
                *ret = NULL;
                return 0;
        }
        *ret = strdup(s);
        return *ret ? 0 : -ENOMEM;
}

static int strv_copy(char *const *l, char ***ret) {
        size_t n = strv_length(l);
        char **v;

        if (!l) {
                *ret = NULL;
                return 0;
        }
        v = calloc(n + 1, sizeof(*v));
        if (!v)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                if (!(v[i] = strdup(l[i]))) {
                        strv_free(v);
                        return -ENOMEM;
                }
        *ret = v;
        return 0;
}

static void ssh_free(struct config_ssh *s) {
        if (!s)
                return;
        free(s->user);
        free(s->private_key);
        secret_free(s->private_key_data, s->private_key_len);
        for (size_t i = 0; i < s->n_files; i++) {
                free(s->files[i].src);
                free(s->files[i].dest);
                free(s->files[i].owner);
                free(s->files[i].group);
        }
        free(s->files);
        strv_free(s->commands);
        free(s);
}

static int ssh_copy(const struct config_ssh *from, struct config_ssh **ret) {
        struct config_ssh *s;
        int r = 0;

        if (!from) {
                *ret = NULL;
                return 0;
        }
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->port = from->port;
        s->connect_timeout_s = from->connect_timeout_s;
        s->console_poll_s = from->console_poll_s;
        r = strdup_opt(from->user, &s->user);
        if (r >= 0)
                r = strdup_opt(from->private_key, &s->private_key);
        if (r >= 0 && from->private_key_data) {
                s->private_key_data = malloc(from->private_key_len + 1);
                if (s->private_key_data) {
                        memcpy(s->private_key_data, from->private_key_data, from->private_key_len + 1);
                        s->private_key_len = from->private_key_len;
                } else
                        r = -ENOMEM;
        }
        if (r >= 0)
                r = strv_copy(from->commands, &s->commands);
        if (r >= 0 && from->n_files > 0) {
                s->files = calloc(from->n_files, sizeof(*s->files));
                if (!s->files)
                        r = -ENOMEM;
                for (size_t i = 0; r >= 0 && i < from->n_files; i++) {
                        const struct config_ssh_file *f = &from->files[i];

                        s->n_files++;
                        s->files[i].mode = f->mode;
                        r = strdup_opt(f->src, &s->files[i].src);
                        if (r >= 0)
                                r = strdup_opt(f->dest, &s->files[i].dest);
                        if (r >= 0)
                                r = strdup_opt(f->owner, &s->files[i].owner);
                        if (r >= 0)
                                r = strdup_opt(f->group, &s->files[i].group);
                }
        }
        if (r < 0) {
                ssh_free(s);
                return r;
        }
        *ret = s;
        return 0;
}

static void snapshot_free(struct op_group *s) {
        struct config_group *g = &s->group;

        free(s->cluster);
        strv_free(s->reimage_words);
        free(g->name);
        free(g->flavor);
        free(g->image);
        strv_free(g->networks);
        strv_free(g->security_groups);
        free(g->key_name);
        for (size_t i = 0; i < g->n_metadata; i++) {
                free(g->metadata[i].key);
                free(g->metadata[i].value);
        }
        free(g->metadata);
        free(g->user_data);
        free(g->user_data_content);
        free(g->availability_zone);
        ssh_free(g->ssh);
        free(s);
}

int op_group_new(const struct config *c, const struct config_group *from, struct op_group **ret) {
        struct op_group *s = calloc(1, sizeof(*s));
        struct config_group *g;
        int r;

        if (!s)
                return -ENOMEM;
        s->n_ref = 1;
        s->resume_timeout_s = c->limits.resume_timeout_s;
        g = &s->group;
        g->n_metadata = from->n_metadata;
        g->config_drive = from->config_drive;
        g->min_nodes = from->min_nodes;
        g->user_data_len = from->user_data_len;
        r = strdup_opt(c->cluster, &s->cluster);
        if (r >= 0)
                r = strv_copy(c->reimage_words, &s->reimage_words);
        if (r >= 0)
                r = strdup_opt(from->name, &g->name);
        if (r >= 0)
                r = strdup_opt(from->flavor, &g->flavor);
        if (r >= 0)
                r = strdup_opt(from->image, &g->image);
        if (r >= 0)
                r = strv_copy(from->networks, &g->networks);
        if (r >= 0)
                r = strv_copy(from->security_groups, &g->security_groups);
        if (r >= 0)
                r = strdup_opt(from->key_name, &g->key_name);
        if (r >= 0)
                r = strdup_opt(from->user_data, &g->user_data);
        if (r >= 0)
                r = strdup_opt(from->availability_zone, &g->availability_zone);
        if (r >= 0)
                r = ssh_copy(from->ssh, &g->ssh);
        if (r >= 0 && from->user_data_content) {
                g->user_data_content = malloc(from->user_data_len + 1);
                if (g->user_data_content)
                        memcpy(g->user_data_content, from->user_data_content, from->user_data_len + 1);
                else
                        r = -ENOMEM;
        }
        if (r >= 0 && from->n_metadata > 0) {
                g->metadata = calloc(from->n_metadata, sizeof(*g->metadata));
                if (!g->metadata)
                        r = -ENOMEM;
                for (size_t i = 0; r >= 0 && i < from->n_metadata; i++) {
                        r = strdup_opt(from->metadata[i].key, &g->metadata[i].key);
                        if (r >= 0)
                                r = strdup_opt(from->metadata[i].value, &g->metadata[i].value);
                }
        }
        if (r < 0) {
                if (!g->metadata)
                        g->n_metadata = 0;
                snapshot_free(s);
                return r;
        }
        *ret = s;
        return 0;
}

struct op_group *op_group_ref(struct op_group *s) {
        if (s)
                s->n_ref++;
        return s;
}

struct op_group *op_group_unref(struct op_group *s) {
        if (s && --s->n_ref == 0)
                snapshot_free(s);
        return NULL;
}
