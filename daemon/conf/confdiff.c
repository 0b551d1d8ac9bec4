/* confdiff.c - the keys two configurations differ in, compared as config_print writes them. */
#include "conf/confdiff.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every key config_print writes outside the groups, and how a reload takes
 * it over. tests/unit/test-confdiff.c fails when config_print writes a key
 * that is not here. */
static const struct {
        const char *key;
        enum config_key_class class;
} key_classes[] = {
        { "cluster", CONFIG_KEY_RESTART },              /* the cloud client's tag and metadata */
        { "cloud", CONFIG_KEY_RESTART },                /* the cloud client's credentials */
        { "clouds_file", CONFIG_KEY_RESTART },
        { "state_dir", CONFIG_KEY_RESTART },            /* the journal open and locked */
        { "socket.path", CONFIG_KEY_SOCKET },           /* the socket listened on */
        { "socket.group", CONFIG_KEY_SOCKET },
        { "socket.mode", CONFIG_KEY_SOCKET },
        { "slurm.conf", CONFIG_KEY_RESTART },           /* libslurm's, read once */
        { "slurm.user", CONFIG_KEY_LIVE },              /* a new auth */
        { "slurm.suspend_exclude_file", CONFIG_KEY_RESTART }, /* resize's kept set is read from it at start */
        { "admin_group", CONFIG_KEY_LIVE },             /* a new auth */
        { "reimage_words", CONFIG_KEY_LIVE },           /* the lifecycle reads its config */
        { "limits.max_frame_bytes", CONFIG_KEY_LIVE },  /* server_set_limits */
        { "limits.max_clients", CONFIG_KEY_LIVE },
        { "limits.reserved_clients", CONFIG_KEY_LIVE },
        { "limits.max_clients_per_uid", CONFIG_KEY_LIVE },
        { "limits.frame_timeout", CONFIG_KEY_LIVE },
        { "limits.client_idle_timeout", CONFIG_KEY_LIVE },
        { "limits.max_queued_requests", CONFIG_KEY_LIVE },
        { "limits.max_hostlist_nodes", CONFIG_KEY_LIVE }, /* requests read the config */
        { "limits.api_concurrency", CONFIG_KEY_LIVE },  /* cloud_apply_config */
        { "limits.api_rate", CONFIG_KEY_LIVE },
        { "limits.api_burst", CONFIG_KEY_LIVE },
        { "limits.api_timeout", CONFIG_KEY_LIVE },
        { "limits.create_timeout", CONFIG_KEY_LIVE },
        { "limits.active_timeout", CONFIG_KEY_LIVE },   /* read by no operation (resume_timeout bounds a resume) */
        { "limits.resume_timeout", CONFIG_KEY_LIVE },   /* the lifecycle reads its config */
        { "limits.reconcile_interval", CONFIG_KEY_LIVE },
        { "limits.orphan_grace", CONFIG_KEY_LIVE },
        { "limits.capacity_cooldown", CONFIG_KEY_LIVE },
        { "endpoints.compute", CONFIG_KEY_LIVE },       /* cloud_apply_config */
        { "endpoints.image", CONFIG_KEY_LIVE },
        { "endpoints.identity", CONFIG_KEY_LIVE },
        { "metrics.listen", CONFIG_KEY_RESTART },       /* the listener bound at start */
        { "groups", CONFIG_KEY_LIVE },                  /* lifecycle_set_config, resize_set_config */
};

int config_key_class(const char *key) {
        size_t len = strcspn(key, ".");

        /* "groups.NAME" is one group: the class of "groups". */
        if (strncmp(key, "groups", len) == 0 && len == strlen("groups"))
                key = "groups";
        for (size_t i = 0; i < ELEMENTSOF(key_classes); i++)
                if (strcmp(key_classes[i].key, key) == 0)
                        return (int) key_classes[i].class;
        return -ENOENT;
}

struct entry {
        char *key;
        char *value;
};

static void entries_free(struct entry *v, size_t n) {
        for (size_t i = 0; i < n; i++) {
                free(v[i].key);
                free(v[i].value);
        }
        free(v);
}

static int entry_add(struct entry **v, size_t *n, char *key, char *value) {
        struct entry *a;

        if (!key || !value) {
                free(key);
                free(value);
                return -ENOMEM;
        }
        a = reallocarray(*v, *n + 1, sizeof(*a));
        if (!a) {
                free(key);
                free(value);
                return -ENOMEM;
        }
        *v = a;
        a[(*n)++] = (struct entry) { .key = key, .value = value };
        return 0;
}

/* Append LINE to the value of the last entry (a group's block). */
static int entry_extend(struct entry *e, const char *line) {
        char *s;

        if (asprintf(&s, "%s\n%s", e->value, line) < 0)
                return -ENOMEM;
        free(e->value);
        e->value = s;
        return 0;
}

/* C's keys as config_print writes them: "key: value" at the top,
 * "section:" then "  key: value", and "groups:" with one "  - name: N"
 * block per group. */
static int entries_of(const struct config *c, struct entry **ret, size_t *ret_n) {
        _cleanup_free_ char *text = NULL, *section = NULL;
        struct entry *v = NULL;
        size_t n = 0, size = 0;
        bool groups = false;
        char *save = NULL;
        FILE *f;
        int r;

        f = open_memstream(&text, &size);
        if (!f)
                return -ENOMEM;
        r = config_print(c, f);
        if (fclose(f) != 0 && r >= 0)
                r = -ENOMEM;
        if (r < 0)
                return r;

        for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                char *colon = strstr(line, ": ");

                if (groups) {
                        if (strncmp(line, "  - name: ", 10) == 0) {
                                char *key;

                                r = asprintf(&key, "groups.%s", line + 10) < 0 ? -ENOMEM : 0;
                                if (r >= 0)
                                        r = entry_add(&v, &n, key, strdup(line));
                        } else if (n > 0 && strncmp(v[n - 1].key, "groups.", 7) == 0)
                                r = entry_extend(&v[n - 1], line);
                        else
                                r = -EBADMSG;
                } else if (line[0] != ' ') {
                        section = mfree(section);
                        if (strcmp(line, "groups:") == 0 || strcmp(line, "groups: []") == 0)
                                groups = true;
                        else if (!colon) {
                                size_t len = strlen(line);

                                if (len < 2 || line[len - 1] != ':')
                                        r = -EBADMSG;
                                else if (!(section = strndup(line, len - 1)))
                                        r = -ENOMEM;
                        } else
                                r = entry_add(&v, &n, strndup(line, (size_t) (colon - line)), strdup(colon + 2));
                } else if (section && colon && strncmp(line, "  ", 2) == 0 && line[2] != ' ') {
                        char *key;

                        r = asprintf(&key, "%s.%.*s", section, (int) (colon - line - 2), line + 2) < 0 ? -ENOMEM : 0;
                        if (r >= 0)
                                r = entry_add(&v, &n, key, strdup(colon + 2));
                } else
                        r = -EBADMSG;
                if (r < 0) {
                        entries_free(v, n);
                        return r;
                }
        }
        *ret = v;
        *ret_n = n;
        return 0;
}

static const struct entry *entry_find(const struct entry *v, size_t n, const char *key) {
        for (size_t i = 0; i < n; i++)
                if (strcmp(v[i].key, key) == 0)
                        return &v[i];
        return NULL;
}

static uint64_t fnv1a(const char *p, size_t len) {
        uint64_t h = 0xcbf29ce484222325ULL;

        for (size_t i = 0; i < len; i++)
                h = (h ^ (unsigned char) p[i]) * 0x100000001b3ULL;
        return h;
}

/* What a group takes from files at load (user data, the SSH key) is part of
 * it too: a new file under the same path changes the group. Only a hash is
 * kept, never the bytes (the key is a secret). */
static int entries_add_file_contents(const struct config *c, struct entry *v, size_t n) {
        for (size_t i = 0; i < c->n_groups; i++) {
                const struct config_group *g = &c->groups[i];
                _cleanup_free_ char *key = NULL, *line = NULL;
                struct entry *e = NULL;

                if (asprintf(&key, "groups.%s", g->name) < 0)
                        return -ENOMEM;
                for (size_t j = 0; j < n && !e; j++)
                        if (strcmp(v[j].key, key) == 0)
                                e = &v[j];
                if (!e)
                        continue;
                if (asprintf(&line, "    (contents: user_data %016" PRIx64 ", ssh key %016" PRIx64 ")",
                             g->user_data_content ? fnv1a(g->user_data_content, g->user_data_len) : 0,
                             g->ssh && g->ssh->private_key_data ?
                                     fnv1a(g->ssh->private_key_data, g->ssh->private_key_len) : 0) < 0) {
                        line = NULL;
                        return -ENOMEM;
                }
                if (entry_extend(e, line) < 0)
                        return -ENOMEM;
        }
        return 0;
}

struct config_change *config_changes_free(struct config_change *v, size_t n) {
        for (size_t i = 0; v && i < n; i++) {
                free(v[i].key);
                free(v[i].old_value);
                free(v[i].new_value);
        }
        free(v);
        return NULL;
}

static int change_add(struct config_change **v, size_t *n, const char *key, const char *old_value,
                      const char *new_value, bool socket_activated) {
        struct config_change *a, *ch;
        int class = config_key_class(key);

        a = reallocarray(*v, *n + 1, sizeof(*a));
        if (!a)
                return -ENOMEM;
        *v = a;
        ch = &a[*n];
        *ch = (struct config_change) {
                .key = strdup(key),
                .old_value = old_value ? strdup(old_value) : NULL,
                .new_value = new_value ? strdup(new_value) : NULL,
                /* Unknown: fail closed. */
                .needs_restart = class < 0 || class == CONFIG_KEY_RESTART ||
                                 (class == CONFIG_KEY_SOCKET && !socket_activated),
        };
        (*n)++;
        if (!ch->key || (old_value && !ch->old_value) || (new_value && !ch->new_value))
                return -ENOMEM;
        return 0;
}

int config_diff(const struct config *old, const struct config *new, bool socket_activated,
                struct config_change **ret, size_t *ret_n) {
        struct entry *a = NULL, *b = NULL;
        struct config_change *v = NULL;
        size_t na = 0, nb = 0, n = 0;
        int r;

        if (!old || !new || !ret || !ret_n)
                return -EINVAL;
        r = entries_of(old, &a, &na);
        if (r >= 0)
                r = entries_of(new, &b, &nb);
        if (r >= 0)
                r = entries_add_file_contents(old, a, na);
        if (r >= 0)
                r = entries_add_file_contents(new, b, nb);
        for (size_t i = 0; r >= 0 && i < na; i++) {
                const struct entry *e = entry_find(b, nb, a[i].key);

                if (!e || strcmp(e->value, a[i].value) != 0)
                        r = change_add(&v, &n, a[i].key, a[i].value, e ? e->value : NULL, socket_activated);
        }
        for (size_t i = 0; r >= 0 && i < nb; i++)
                if (!entry_find(a, na, b[i].key))
                        r = change_add(&v, &n, b[i].key, NULL, b[i].value, socket_activated);
        entries_free(a, na);
        entries_free(b, nb);
        if (r < 0) {
                config_changes_free(v, n);
                return r;
        }
        *ret = v;
        *ret_n = n;
        return 0;
}

int config_changes_describe(const struct config_change *v, size_t n, bool restart, char **ret) {
        _cleanup_free_ char *text = NULL;
        size_t size = 0, count = 0;
        FILE *f;

        f = open_memstream(&text, &size);
        if (!f)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                const struct config_change *ch = &v[i];

                if (ch->needs_restart != restart)
                        continue;
                fprintf(f, "%s%s ", count++ ? ", " : "", ch->key);
                if (!ch->old_value)
                        fputs("(added)", f);
                else if (!ch->new_value)
                        fputs("(removed)", f);
                else if (strchr(ch->old_value, '\n') || strchr(ch->new_value, '\n'))
                        fputs("(changed)", f);
                else
                        fprintf(f, "(%s -> %s)", ch->old_value, ch->new_value);
        }
        if (fclose(f) != 0)
                return -ENOMEM;
        *ret = count ? TAKE_PTR(text) : NULL;
        return (int) count;
}
