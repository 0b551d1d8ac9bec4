/* test-resize.c - resize --min (daemon/ops/resize.c) against a fake Slurm
 * port: the exclusion file, reconfigure, power up and down, status. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-event.h>

#include "conf/config.h"
#include "conf/nodemap.h"
#include "journal/records.h"
#include "journal/state.h"
#include "ops/ports.h"
#include "ops/resize.h"
#include "util/hostlist.h"
#include "util/log.h"
#include "util/macro.h"
#include "util/strv.h"

#include "test.h"

#define N_NODES 4

struct fnode {
        char name[8];
        struct ops_slurm_node n;
};

struct ops_slurm_nodes {
        struct fnode v[N_NODES];
};

struct reply {
        struct reply *next;
        sd_event_source *src;
        struct fake *f;
        int r;
        ops_slurm_done_fn done;
        ops_slurm_nodes_fn loaded;
        struct ops_slurm_nodes *nodes;
        void *ud;
};

struct fake {
        sd_event *e;
        struct fnode node[N_NODES];
        char updates[512];       /* "up cn[1-2]; down cn3 (reason)" */
        unsigned reconfigures, loads;
        int fail_load, fail_reconfigure;   /* the next one fails with this */
        struct reply *replies;
        int held;                          /* loads handed out and not freed */
        struct ops_slurm_nodes newest;     /* for newest(): a copy of the last load handed out */
        bool have_newest;
};

static struct fnode *fnode(struct fake *f, const char *name) {
        for (size_t i = 0; i < N_NODES; i++)
                if (strcmp(f->node[i].name, name) == 0)
                        return &f->node[i];
        return NULL;
}

static int on_reply(sd_event_source *s, void *userdata) {
        struct reply *p = userdata;

        for (struct reply **pp = &p->f->replies; *pp; pp = &(*pp)->next)
                if (*pp == p) {
                        *pp = p->next;
                        break;
                }
        if (p->loaded && p->r >= 0) {
                p->f->newest = *p->nodes;
                p->f->have_newest = true;
                p->f->held++;
        }
        if (p->loaded)
                p->loaded(p->r, p->r < 0 ? NULL : TAKE_PTR(p->nodes), p->r < 0 ? "fake load failed" : NULL, p->ud);
        else
                p->done(p->r, p->r < 0 ? "fake slurmctld said no" : NULL, p->ud);
        free(p->nodes);
        sd_event_source_disable_unref(p->src);
        free(p);
        return 0;
}

static void reply(struct fake *f, int r, ops_slurm_done_fn done, ops_slurm_nodes_fn loaded,
                  struct ops_slurm_nodes *nodes, void *ud) {
        struct reply *p = calloc(1, sizeof(*p));

        if (!p)
                abort();
        *p = (struct reply){ .f = f, .r = r, .done = done, .loaded = loaded, .nodes = nodes, .ud = ud,
                             .next = f->replies };
        if (sd_event_add_defer(f->e, &p->src, on_reply, p) < 0)
                abort();
        sd_event_source_set_enabled(p->src, SD_EVENT_ONESHOT);
        f->replies = p;
}

static int s_load(void *impl, ops_slurm_nodes_fn cb, void *ud) {
        struct fake *f = impl;
        struct ops_slurm_nodes *ns = NULL;
        int r = f->fail_load;

        f->fail_load = 0;
        f->loads++;
        if (r == 0) {
                ns = malloc(sizeof(*ns));
                if (!ns)
                        abort();
                memcpy(ns->v, f->node, sizeof(ns->v));
        }
        reply(f, r, NULL, cb, ns, ud);
        return 0;
}

static bool s_find(const struct ops_slurm_nodes *ns, const char *name, struct ops_slurm_node *ret) {
        for (size_t i = 0; ns && i < N_NODES; i++)
                if (strcmp(ns->v[i].name, name) == 0) {
                        *ret = ns->v[i].n;
                        return true;
                }
        return false;
}

static void s_free(struct ops_slurm_nodes *ns) {
        free(ns);
}

static int *held_count;

static void s_free_counted(struct ops_slurm_nodes *ns) {
        if (ns)
                (*held_count)--;
        free(ns);
}

static const struct ops_slurm_nodes *s_newest(void *impl) {
        struct fake *f = impl;

        return f->have_newest ? &f->newest : NULL;
}

static int s_update(void *impl, const struct ops_slurm_update *u, ops_slurm_done_fn cb, void *ud) {
        struct fake *f = impl;
        size_t len = strlen(f->updates), n = 0;
        bool up = u->state == OPS_SLURM_POWER_UP;
        char **v = NULL;

        if (u->state != OPS_SLURM_POWER_UP && u->state != OPS_SLURM_POWER_DOWN_ASAP)
                abort();
        snprintf(f->updates + len, sizeof(f->updates) - len, "%s%s %s%s%s%s", len ? "; " : "", up ? "up" : "down",
                 u->nodes, u->reason ? " (" : "", u->reason ? u->reason : "", u->reason ? ")" : "");
        /* What slurmctld does: flag them; the power change itself is the test's to make. */
        if (hostlist_expand(u->nodes, N_NODES, &v, &n, NULL) < 0)
                abort();
        for (size_t i = 0; i < n; i++) {
                struct fnode *x = fnode(f, v[i]);

                if (!x)
                        abort();
                if (up)
                        x->n.power_up = true;
                else
                        x->n.power_down = true;
        }
        strv_free(v);
        reply(f, 0, cb, NULL, NULL, ud);
        return 0;
}

static int s_reconfigure(void *impl, ops_slurm_done_fn cb, void *ud) {
        struct fake *f = impl;

        f->reconfigures++;
        reply(f, f->fail_reconfigure, cb, NULL, NULL, ud);
        f->fail_reconfigure = 0;
        return 0;
}

static const struct ops_slurm_port port_template = {
        .load_nodes = s_load,
        .node_find = s_find,
        .nodes_free = s_free,
        .update = s_update,
        .reconfigure = s_reconfigure,
};

struct world {
        sd_event *e;
        struct fake f;
        struct ops_slurm_port port;
        struct config *config;
        struct nodemap *map;
        struct state *state;
        struct resize *r;
        char dir[64];
        char file[128];
};

static void world_init(struct world *w, const char *file_text) {
        char text[512];
        char *err = NULL;

        *w = (struct world){ 0 };
        snprintf(w->dir, sizeof(w->dir), "/tmp/test-resize.XXXXXX");
        if (!mkdtemp(w->dir))
                abort();
        snprintf(w->file, sizeof(w->file), "%s/exc.conf", w->dir);
        if (file_text) {
                FILE *f = fopen(w->file, "we");
                if (!f)
                        abort();
                fputs(file_text, f);
                fclose(f);
        }
        snprintf(text, sizeof(text),
                 "cluster: t\ncloud: fake\nstate_dir: /tmp\nslurm:\n  suspend_exclude_file: %s\n"
                 "groups:\n  - name: cpu\n    nodes: cn[1-4]\n    flavor: f\n    image: i\n    networks: [none]\n",
                 w->file);
        if (sd_event_new(&w->e) < 0 || config_load_string("t", text, strlen(text), &w->config, &err) < 0 ||
            nodemap_new_from_config(w->config, &w->map, &err) < 0 || state_new("t", &w->state) < 0) {
                printf("# %s\n", err ? err : "set-up failed");
                abort();
        }
        w->f.e = w->e;
        for (size_t i = 0; i < N_NODES; i++) {
                snprintf(w->f.node[i].name, sizeof(w->f.node[i].name), "cn%zu", i + 1);
                w->f.node[i].n = (struct ops_slurm_node){ .state = "IDLE+CLOUD+POWERED_DOWN", .powered_down = true };
        }
        w->port = port_template;
        w->port.impl = &w->f;
        if (resize_new(w->e, &w->port, w->state, w->config, w->map, &w->r) < 0)
                abort();
}

static void world_done(struct world *w) {
        w->r = resize_free(w->r);
        while (w->f.replies) {
                struct reply *p = w->f.replies;

                w->f.replies = p->next;
                sd_event_source_disable_unref(p->src);
                free(p->nodes);
                free(p);
        }
        state_free(w->state);
        nodemap_free(w->map);
        config_free(w->config);
        sd_event_unref(w->e);
        unlink(w->file);
        rmdir(w->dir);
}

/* Ask for MIN nodes of group cpu kept, as the request handler journals it. */
static void resize_min(struct world *w, unsigned min) {
        static unsigned n;
        char id[16];
        json_t *rec = NULL;

        snprintf(id, sizeof(id), "r-t-%u", ++n);
        CHECK_INT(record_encode(&(struct record){ .kind = RECORD_REQUEST,
                                                  .request = { .id = id, .type = RECORD_REQUEST_RESIZE,
                                                               .time = time(NULL), .group = "cpu", .min = min } },
                                &rec, NULL),
                  0);
        CHECK_INT(state_apply(w->state, rec, NULL), 0);
        json_decref(rec);
        resize_kick(w->r);
}

/* Turn the loop until a pass is over: nothing due for a few turns. */
static void settle(struct world *w) {
        for (int quiet = 0, i = 0; quiet < 3 && i < 1000; i++) {
                int r = sd_event_run(w->e, 1000);

                quiet = r == 0 && !w->f.replies ? quiet + 1 : 0;
        }
}

static char *file_nodes(struct world *w) {
        char *nodes = NULL;

        if (resize_read_exclusion_file(w->file, &nodes) < 0)
                return NULL;
        return nodes;
}

static json_t *status(struct world *w) {
        json_t *o = json_object(), *g;

        CHECK_INT(resize_status(w->r, o), 0);
        g = json_incref(json_object_get(o, "cpu"));
        json_decref(o);
        return g;
}

#define CHECK_FIELD(obj, key, want) CHECK_INT(json_integer_value(json_object_get((obj), (key))), (want))

/* The slurmctld side of a power up: the node comes up. */
static void power_up_done(struct world *w, const char *node) {
        struct fnode *n = fnode(&w->f, node);

        n->n = (struct ops_slurm_node){ .state = "IDLE+CLOUD" };
}

static void test_grow(void) {
        struct world w;
        _cleanup_free_ char *nodes = NULL;
        json_t *st;

        world_init(&w, NULL);
        resize_min(&w, 2);
        st = status(&w);
        CHECK(json_is_false(json_object_get(st, "done")));   /* kicked: not done before a pass */
        json_decref(st);
        settle(&w);
        nodes = file_nodes(&w);
        CHECK_STR(nodes, "cn[1-2]");
        CHECK_INT(w.f.reconfigures, 1);
        CHECK_STR(w.f.updates, "up cn[1-2]");
        st = status(&w);
        CHECK_FIELD(st, "min", 2);
        CHECK_FIELD(st, "up", 0);
        CHECK(json_is_false(json_object_get(st, "done")));
        json_decref(st);

        /* Slurm brings them up; the next pass sees it and is done. */
        power_up_done(&w, "cn1");
        power_up_done(&w, "cn2");
        resize_kick(w.r);
        settle(&w);
        st = status(&w);
        CHECK_FIELD(st, "up", 2);
        CHECK(json_is_true(json_object_get(st, "done")));
        json_decref(st);
        CHECK_INT(w.f.reconfigures, 1);       /* the kept set did not change: no rewrite */
        CHECK_STR(w.f.updates, "up cn[1-2]"); /* and nothing powered up twice */
        world_done(&w);
}

static void test_shrink(void) {
        struct world w;
        _cleanup_free_ char *nodes = NULL;
        json_t *st;

        world_init(&w, NULL);
        resize_min(&w, 3);
        settle(&w);
        for (int i = 1; i <= 3; i++) {
                char name[8];

                snprintf(name, sizeof(name), "cn%d", i);
                power_up_done(&w, name);
        }
        w.f.updates[0] = 0;
        resize_min(&w, 1);
        settle(&w);
        nodes = file_nodes(&w);
        CHECK_STR(nodes, "cn1");
        CHECK_INT(w.f.reconfigures, 2);
        /* The highest-numbered leave, drained first. */
        CHECK_STR(w.f.updates, "down cn[2-3] (elasticd: resize --min)");
        st = status(&w);
        CHECK_FIELD(st, "min", 1);
        CHECK_FIELD(st, "powering_down", 2);
        CHECK(json_is_false(json_object_get(st, "done")));
        json_decref(st);
        world_done(&w);
}

/* Kept nodes that are DOWN, or already being powered up, are left alone. */
static void test_leaves_down_and_powering(void) {
        struct world w;

        world_init(&w, NULL);
        fnode(&w.f, "cn1")->n.down = true;
        fnode(&w.f, "cn2")->n = (struct ops_slurm_node){ .state = "IDLE+CLOUD+POWERING_UP", .powering_up = true };
        fnode(&w.f, "cn3")->n.power_up = true;
        resize_min(&w, 4);
        settle(&w);
        CHECK_STR(w.f.updates, "up cn4");
        world_done(&w);
}

/* A file from an earlier run with the same set: no rewrite, no reconfigure. */
static void test_file_from_earlier_run(void) {
        struct world w;
        _cleanup_free_ char *nodes = NULL;

        world_init(&w, "# old\nSuspendExcNodes=cn[1-2]\n");
        resize_min(&w, 2);
        settle(&w);
        CHECK_INT(w.f.reconfigures, 0);
        CHECK_STR(w.f.updates, "up cn[1-2]");
        nodes = file_nodes(&w);
        CHECK_STR(nodes, "cn[1-2]");
        world_done(&w);
}

/* Slurm refuses: a failed load ends the pass, the next kick does the work;
 * a failed reconfigure does not stop the power updates. */
static void test_slurm_errors(void) {
        struct world w;

        world_init(&w, NULL);
        w.f.fail_load = -EIO;
        resize_min(&w, 1);
        settle(&w);
        CHECK_STR(w.f.updates, "");
        resize_kick(w.r);
        settle(&w);
        CHECK_STR(w.f.updates, "up cn1");
        world_done(&w);

        world_init(&w, NULL);
        w.f.fail_reconfigure = -EPERM;
        resize_min(&w, 1);
        settle(&w);
        CHECK_INT(w.f.reconfigures, 1);
        CHECK_STR(w.f.updates, "up cn1");
        world_done(&w);
}

/* With the port's newest(), resize keeps no load between passes (at 10,000
 * nodes a second copy of ~1.4 MB) and its status reads the newest. */
static void test_newest(void) {
        struct world w;
        json_t *st;

        world_init(&w, NULL);
        w.port.newest = s_newest;
        w.port.nodes_free = s_free_counted;
        held_count = &w.f.held;
        resize_min(&w, 2);
        settle(&w);
        CHECK_STR(w.f.updates, "up cn[1-2]");
        CHECK(w.f.loads >= 1);
        CHECK_INT(w.f.held, 0);
        power_up_done(&w, "cn1");
        power_up_done(&w, "cn2");
        resize_kick(w.r);
        settle(&w);
        CHECK_INT(w.f.held, 0);
        st = status(&w);
        CHECK_FIELD(st, "up", 2);
        CHECK(json_is_true(json_object_get(st, "done")));
        json_decref(st);
        world_done(&w);
}

static void test_exclusion_file(void) {
        char dir[] = "/tmp/test-resize.XXXXXX", path[128], text[512] = "";
        _cleanup_free_ char *nodes = NULL, *none = NULL, *error = NULL;
        FILE *f;

        CHECK(mkdtemp(dir) != NULL);
        snprintf(path, sizeof(path), "%s/exc.conf", dir);
        CHECK_INT(resize_read_exclusion_file(path, &nodes), -ENOENT);
        CHECK_INT(resize_write_exclusion_file(path, "cn[1-3]", &error), 0);
        CHECK_INT(resize_read_exclusion_file(path, &nodes), 0);
        CHECK_STR(nodes, "cn[1-3]");
        f = fopen(path, "re");
        if (f) {
                CHECK(fread(text, 1, sizeof(text) - 1, f) > 0);
                fclose(f);
        }
        CHECK(strstr(text, "\nSuspendExcNodes=cn[1-3]\n") != NULL);
        CHECK(access(strcat(strcpy(text, path), ".tmp"), F_OK) < 0);
        /* No nodes: a file without the line, read back as "". */
        CHECK_INT(resize_write_exclusion_file(path, NULL, &error), 0);
        CHECK_INT(resize_read_exclusion_file(path, &none), 0);
        CHECK_STR(none, "");
        unlink(path);
        rmdir(dir);
}

int main(void) {
        log_set_max_level(getenv("TEST_RESIZE_LOG") ? LOG_DEBUG : LOG_CRIT);
        RUN(test_grow);
        RUN(test_shrink);
        RUN(test_leaves_down_and_powering);
        RUN(test_file_from_earlier_run);
        RUN(test_slurm_errors);
        RUN(test_exclusion_file);
        RUN(test_newest);
        return test_done();
}
