/* resize.c - the kept set of each group: the exclusion file, reconfigure,
 * then power nodes up or down through Slurm. */
#include "ops/resize.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/fileread.h"
#include "util/hostlist.h"
#include "util/log.h"
#include "util/strv.h"

#define USEC_PER_SEC 1000000ULL
/* How often a kept node that went down is looked at again. */
#define ENFORCE_USEC (30 * USEC_PER_SEC)
#define EXCLUSION_MAX (1024 * 1024)
#define EXCLUSION_FILE_MAX (16 * 1024 * 1024)

/* What a pass does, in order; each waits for its Slurm call. */
enum pass_step {
        PASS_IDLE,
        PASS_RECONFIGURE,   /* the file changed: slurmctld must re-read it */
        PASS_LOAD,          /* read node states */
        PASS_UPDATE,        /* power up / power down what needs it */
};

struct resize {
        sd_event *event;
        const struct ops_slurm_port *slurm;
        struct state *state;
        const struct config *config;
        const struct nodemap *map;
        sd_event_source *timer;
        enum pass_step step;
        bool again;                /* kicked during a pass */
        char *kept;                /* hostlist in the file now, NULL if unknown */
        char *released;            /* nodes that left the kept set and still need POWER_DOWN_ASAP */
        struct ops_slurm_nodes *nodes;  /* the last load */
        unsigned updates_out;
        /* Status is "done" only from a load after the last kick and after the
         * updates it led to: a stale load would say done at once. */
        unsigned kicks, pass_kicks, loaded_kicks;
};

static void pass_next(struct resize *r);

int resize_write_exclusion_file(const char *path, const char *nodes, char **ret_error) {
        _cleanup_free_ char *tmp = NULL, *dir_copy = NULL, *text = NULL;
        _cleanup_close_ int fd = -1, dfd = -1;
        size_t len, off = 0;

        if (asprintf(&tmp, "%s.tmp", path) < 0 ||
            asprintf(&text,
                     "# Written by elasticd: the nodes `elasticctl resize --min N` keeps powered up.\n"
                     "# slurm.conf includes this file; elasticd rewrites it, do not edit.\n"
                     "%s%s%s",
                     nodes && *nodes ? "SuspendExcNodes=" : "", nodes && *nodes ? nodes : "",
                     nodes && *nodes ? "\n" : "") < 0)
                return -ENOMEM;
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (fd < 0) {
                (void) asprintf(ret_error, "cannot create %s: %m", tmp);
                return negative_errno();
        }
        len = strlen(text);
        while (off < len) {
                ssize_t n = write(fd, text + off, len - off);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        (void) asprintf(ret_error, "cannot write %s: %m", tmp);
                        unlink(tmp);
                        return negative_errno();
                }
                off += (size_t) n;
        }
        if (fsync(fd) < 0 || rename(tmp, path) < 0) {
                (void) asprintf(ret_error, "cannot replace %s: %m", path);
                unlink(tmp);
                return negative_errno();
        }
        dir_copy = strdup(path);
        if (!dir_copy)
                return -ENOMEM;
        dfd = open(dirname(dir_copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0)
                (void) fsync(dfd);
        return 0;
}

int resize_read_exclusion_file(const char *path, char **ret_nodes) {
        _cleanup_fclose_ FILE *f = NULL;
        int fd;
        _cleanup_free_ char *line = NULL;
        size_t cap = 0;
        ssize_t n;

        /* Regular files only: a FIFO here would block the loop. */
        fd = fileread_open(path, 0, EXCLUSION_FILE_MAX, NULL, NULL);
        if (fd < 0)
                return fd;
        f = fdopen(fd, "re");
        if (!f) {
                int r = negative_errno();
                close(fd);
                return r;
        }
        while ((n = getline(&line, &cap, f)) > 0) {
                if (n > EXCLUSION_MAX)
                        return -EFBIG;
                line[strcspn(line, "\r\n")] = 0;
                if (strncmp(line, "SuspendExcNodes=", 16) == 0) {
                        char *v = strdup(line + 16);
                        if (!v)
                                return -ENOMEM;
                        *ret_nodes = v;
                        return 0;
                }
        }
        *ret_nodes = strdup("");
        return *ret_nodes ? 0 : -ENOMEM;
}

/* The first min nodes of every group, as one hostlist. */
static int kept_set(const struct resize *r, char **ret) {
        _cleanup_free_ char **v = NULL;
        size_t n = 0, total = nodemap_node_count(r->map);
        _cleanup_free_ char *error = NULL;
        int k;

        v = calloc(total + 1, sizeof(char *));
        if (!v)
                return -ENOMEM;
        for (size_t g = 0; g < nodemap_group_count(r->map); g++) {
                const char *name = nodemap_group_name(r->map, g);
                char *const *nodes;
                size_t count;
                unsigned min = 0;

                if (state_resize_min(r->state, name, &min) < 0) {
                        k = config_group_find(r->config, name);
                        min = k >= 0 ? r->config->groups[k].min_nodes : 0;
                }
                nodes = nodemap_group_nodes(r->map, g, &count);
                for (size_t i = 0; i < min && i < count; i++)
                        v[n++] = nodes[i];
        }
        return hostlist_compress(v, n, ret, &error);
}

static bool in_list(char *const *v, const char *name) {
        for (; v && *v; v++)
                if (strcmp(*v, name) == 0)
                        return true;
        return false;
}

static bool node_find(const struct resize *r, const char *name, struct ops_slurm_node *ret) {
        const struct ops_slurm_nodes *n = r->nodes ? r->nodes : r->slurm->newest ? r->slurm->newest(r->slurm->impl)
                                                                                 : NULL;

        return n && r->slurm->node_find(n, name, ret);
}

static void on_update_done(int rc, const char *error, void *userdata) {
        struct resize *r = userdata;

        if (rc == -ECANCELED)
                return;
        if (rc < 0)
                log_warning("resize: %s", error ? error : strerror(-rc));
        if (--r->updates_out == 0)
                pass_next(r);
}

/* "resize: WHAT N nodes: LIST" for the log, LIST a hostlist, cut between
 * nodes to fit a log line. */
static void log_nodes(int level, const struct resize *r, const char *hostlist, const char *what) {
        _cleanup_(strv_freep) char **v = NULL;
        _cleanup_free_ char *msg = NULL;
        size_t n = 0;

        if (hostlist_expand(hostlist, nodemap_node_count(r->map) + 1, &v, &n, NULL) < 0 ||
            hostlist_message(&msg, HOSTLIST_MESSAGE_MAX, v, n, "resize: %s %zu node%s", what, HOSTLIST_NODES(n)) < 0)
                log_ctx_msg(level, NULL, "resize: %s %s", what, hostlist);
        else
                log_ctx_msg(level, NULL, "%s", msg);
}

static void update(struct resize *r, char **nodes, size_t n, enum ops_slurm_set state, const char *what) {
        _cleanup_free_ char *list = NULL, *error = NULL, *msg = NULL;
        int rc;

        if (n == 0 || hostlist_compress(nodes, n, &list, &error) < 0)
                return;
        if (hostlist_message(&msg, HOSTLIST_MESSAGE_MAX, nodes, n, "resize: %s %zu node%s", what, HOSTLIST_NODES(n)) < 0)
                return;
        log_info("%s", msg);
        rc = r->slurm->update(r->slurm->impl,
                              &(struct ops_slurm_update){ .nodes = list, .state = state,
                                                          .reason = state == OPS_SLURM_POWER_DOWN_ASAP
                                                                            ? "elasticd: resize --min"
                                                                            : NULL },
                              on_update_done, r);
        if (rc < 0)
                log_warning("resize: cannot ask Slurm (%s) for this: %s", strerror(-rc), msg + strlen("resize: "));
        else
                r->updates_out++;
}

/* With fresh node states: power up kept nodes that are down, and power
 * down (after their jobs) the nodes that left the kept set. */
static void act(struct resize *r) {
        _cleanup_(strv_freep) char **kept = NULL, **released = NULL;
        _cleanup_free_ char **up = NULL, **down = NULL;
        size_t n_kept = 0, n_released = 0, n_up = 0, n_down = 0;

        if (r->kept && *r->kept)
                (void) hostlist_expand(r->kept, nodemap_node_count(r->map) + 1, &kept, &n_kept, NULL);
        if (r->released && *r->released)
                (void) hostlist_expand(r->released, nodemap_node_count(r->map) + 1, &released,
                                       &n_released, NULL);
        up = calloc(n_kept + 1, sizeof(char *));
        down = calloc(n_released + 1, sizeof(char *));
        if (!up || !down)
                return;

        for (size_t i = 0; i < n_kept; i++) {
                struct ops_slurm_node x;

                if (node_find(r, kept[i], &x) && x.powered_down && !x.power_up && !x.powering_up && !x.down)
                        up[n_up++] = kept[i];
        }
        for (size_t i = 0; i < n_released; i++) {
                struct ops_slurm_node x;

                if (in_list(kept, released[i]))
                        continue;
                if (node_find(r, released[i], &x) && !x.powered_down && !x.powering_down && !x.power_down)
                        down[n_down++] = released[i];
        }
        r->released = mfree(r->released);
        /* Load again once Slurm took the updates, so status shows them. */
        if (n_up > 0 || n_down > 0)
                r->again = true;
        else
                r->loaded_kicks = r->pass_kicks;

        r->updates_out = 1; /* held until both are queued */
        update(r, up, n_up, OPS_SLURM_POWER_UP, "powering up");
        update(r, down, n_down, OPS_SLURM_POWER_DOWN_ASAP, "draining, then powering down");
        if (--r->updates_out == 0)
                pass_next(r);
}

static void on_nodes(int rc, struct ops_slurm_nodes *nodes, const char *error, void *userdata) {
        struct resize *r = userdata;

        if (rc == -ECANCELED) {
                if (nodes)
                        r->slurm->nodes_free(nodes);
                return;
        }
        if (rc < 0) {
                log_warning("resize: cannot load node states: %s", error ? error : strerror(-rc));
                r->step = PASS_IDLE;
                return;
        }
        if (r->nodes)
                r->slurm->nodes_free(r->nodes);
        r->nodes = nodes;
        r->step = PASS_UPDATE;
        act(r);
}

static void on_reconfigured(int rc, const char *error, void *userdata) {
        struct resize *r = userdata;

        if (rc == -ECANCELED)
                return;
        if (rc < 0)
                log_warning("resize: slurmctld did not reconfigure: %s", error ? error : strerror(-rc));
        pass_next(r);
}

/* Start a pass: rewrite the file when the kept set changed, then act. */
static void pass_start(struct resize *r) {
        _cleanup_free_ char *want = NULL, *error = NULL;
        const char *path = r->config->suspend_exc_file;
        int rc;

        r->step = PASS_LOAD;
        r->pass_kicks = r->kicks;
        rc = kept_set(r, &want);
        if (rc < 0) {
                log_error("resize: cannot compute the kept nodes: %s", strerror(-rc));
                r->step = PASS_IDLE;
                return;
        }
        if (!r->kept || strcmp(r->kept, want) != 0) {
                if (!path) {
                        if (*want)
                                log_nodes(LOG_ERR, r, want,
                                          "slurm.suspend_exclude_file is not configured, so Slurm may power down");
                } else {
                        rc = resize_write_exclusion_file(path, want, &error);
                        if (rc < 0) {
                                log_error("resize: %s", error ? error : strerror(-rc));
                                r->step = PASS_IDLE;
                                return;
                        }
                        if (*want)
                                log_nodes(LOG_INFO, r, want, "keeping powered up");
                        else
                                log_info("resize: no node kept powered up");
                        r->step = PASS_RECONFIGURE;
                }
                /* Nodes that were kept and are not any more are powered down. */
                if (r->kept && *r->kept) {
                        _cleanup_free_ char *joined = NULL;

                        if (asprintf(&joined, "%s%s%s", r->released ? r->released : "",
                                     r->released ? "," : "", r->kept) >= 0) {
                                free(r->released);
                                r->released = TAKE_PTR(joined);
                        }
                }
                free(r->kept);
                r->kept = TAKE_PTR(want);
        }
        if (r->step == PASS_RECONFIGURE) {
                rc = r->slurm->reconfigure(r->slurm->impl, on_reconfigured, r);
                if (rc >= 0)
                        return;
                r->step = PASS_LOAD;
        }
        pass_next(r);
}

static void pass_next(struct resize *r) {
        int rc;

        switch (r->step) {
        case PASS_RECONFIGURE:
                r->step = PASS_LOAD;
                _fallthrough_;
        case PASS_LOAD:
                rc = r->slurm->load_nodes(r->slurm->impl, on_nodes, r);
                if (rc < 0) {
                        log_warning("resize: cannot load node states: %s", strerror(-rc));
                        r->step = PASS_IDLE;
                }
                return;
        case PASS_UPDATE:
        case PASS_IDLE:
                r->step = PASS_IDLE;
                /* Between passes the port's newest load serves (status). */
                if (r->nodes && r->slurm->newest) {
                        r->slurm->nodes_free(r->nodes);
                        r->nodes = NULL;
                }
                if (r->again) {
                        r->again = false;
                        pass_start(r);
                }
                return;
        }
}

/* Whether every group has its kept nodes up and nothing left to drain. */
static bool all_done(const struct resize *r) {
        _cleanup_(json_decrefp) json_t *o = json_object();
        const char *key;
        json_t *v;

        if (!o || resize_status(r, o) < 0)
                return false;
        json_object_foreach(o, key, v)
                if (!json_is_true(json_object_get(v, "done")))
                        return false;
        return true;
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        struct resize *r = userdata;
        /* From the last pass's load, before this pass starts (a pass under
         * way is never done): look often only while a resize is under way
         * (resize --wait polls status), else at the interval. */
        bool done = r->step == PASS_IDLE && all_done(r);

        if (r->step == PASS_IDLE)
                pass_start(r);
        else
                r->again = true;
        sd_event_source_set_time_relative(s, done ? ENFORCE_USEC : ENFORCE_USEC / 6);
        sd_event_source_set_enabled(s, SD_EVENT_ON);
        return 0;
}

void resize_kick(struct resize *r) {
        if (!r)
                return;
        r->kicks++;
        /* Soon, from the loop: the request's reply goes out first. */
        sd_event_source_set_time_relative(r->timer, 0);
        sd_event_source_set_enabled(r->timer, SD_EVENT_ON);
}

int resize_new(sd_event *event, const struct ops_slurm_port *slurm, struct state *state,
               const struct config *config, const struct nodemap *map, struct resize **ret) {
        struct resize *r;
        int rc;

        if (!slurm || !slurm->load_nodes || !slurm->node_find || !slurm->nodes_free || !slurm->update ||
            !slurm->reconfigure)
                return -EINVAL;
        r = calloc(1, sizeof(*r));
        if (!r)
                return -ENOMEM;
        r->event = event;
        r->slurm = slurm;
        r->state = state;
        r->config = config;
        r->map = map;
        if (config->suspend_exc_file) {
                rc = resize_read_exclusion_file(config->suspend_exc_file, &r->kept);
                if (rc < 0 && rc != -ENOENT)
                        log_warning("resize: cannot read %s: %s", config->suspend_exc_file, strerror(-rc));
        }
        rc = sd_event_add_time_relative(event, &r->timer, CLOCK_MONOTONIC, ENFORCE_USEC, USEC_PER_SEC,
                                        on_timer, r);
        if (rc < 0) {
                free(r->kept);
                free(r);
                return rc;
        }
        *ret = r;
        return 0;
}

struct resize *resize_free(struct resize *r) {
        if (!r)
                return NULL;
        sd_event_source_disable_unref(r->timer);
        if (r->nodes)
                r->slurm->nodes_free(r->nodes);
        free(r->kept);
        free(r->released);
        free(r);
        return NULL;
}

void resize_set_config(struct resize *r, const struct config *config, const struct nodemap *map) {
        r->config = config;
        r->map = map;
}

int resize_status(const struct resize *r, json_t *obj) {
        for (size_t g = 0; g < nodemap_group_count(r->map); g++) {
                const char *name = nodemap_group_name(r->map, g);
                char *const *nodes;
                size_t count;
                unsigned min = 0, up = 0, powering_up = 0, powering_down = 0;
                int k;
                json_t *o;

                if (state_resize_min(r->state, name, &min) < 0) {
                        k = config_group_find(r->config, name);
                        min = k >= 0 ? r->config->groups[k].min_nodes : 0;
                }
                nodes = nodemap_group_nodes(r->map, g, &count);
                for (size_t i = 0; i < count; i++) {
                        struct ops_slurm_node x;

                        if (!node_find(r, nodes[i], &x))
                                continue;
                        if (x.powering_up)
                                powering_up++;
                        else if (x.powering_down || x.power_down)
                                powering_down++;
                        else if (!x.powered_down && !x.not_responding)
                                up++;
                }
                o = json_pack("{s:I, s:I, s:I, s:I, s:I, s:b}", "min", (json_int_t) min, "nodes",
                              (json_int_t) count, "up", (json_int_t) up, "powering_up",
                              (json_int_t) powering_up, "powering_down", (json_int_t) powering_down,
                              "done", r->step == PASS_IDLE && r->loaded_kicks == r->kicks && up >= min &&
                                              powering_down == 0);
                if (!o || json_object_set_new(obj, name, o) < 0)
                        return -ENOMEM;
        }
        return 0;
}
