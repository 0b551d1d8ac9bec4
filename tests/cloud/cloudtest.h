/* cloudtest.h - helpers for the cloud client's tests: a copy of each result, waiting, creating, polling. */
#pragma once

#include "cloud/cloud.h"
#include "testlib.h"

static sd_event *ev;

/* A copy of a cloud_result that outlives the callback. */
struct result {
        int done;
        int error;
        long status;
        char *message;
        char *request_id;
        char *id;
        bool adopted;
        char *server_status;
        char *fault;
        char *image_id;
        char *console;
        size_t n_servers;
        char *names[512];
};

static inline void result_clear(struct result *r) {
        free(r->message);
        free(r->request_id);
        free(r->id);
        free(r->server_status);
        free(r->fault);
        free(r->image_id);
        free(r->console);
        for (size_t i = 0; i < r->n_servers && i < ELEMENTSOF(r->names); i++)
                free(r->names[i]);
        memset(r, 0, sizeof(*r));
}

static inline char *dup_or_null(const char *s) {
        return s ? strdup(s) : NULL;
}

static inline void result_cb(struct cloud *c, const struct cloud_result *res, void *userdata) {
        struct result *r = userdata;

        r->done = 1;
        r->error = res->error;
        r->status = res->os->status;
        r->message = dup_or_null(res->os->message);
        r->request_id = dup_or_null(res->os->request_id);
        r->id = dup_or_null(res->id);
        r->adopted = res->adopted;
        if (res->server) {
                r->server_status = dup_or_null(res->server->status);
                r->fault = dup_or_null(res->server->fault ? res->server->fault->message : NULL);
                r->image_id = dup_or_null(res->server->image_id);
        }
        r->console = dup_or_null(res->console);
        r->n_servers = res->n_servers;
        for (size_t i = 0; i < res->n_servers && i < ELEMENTSOF(r->names); i++)
                r->names[i] = strdup(res->servers[i]->name);
}

static inline int wait_result(struct result *r, int k) {
        if (k < 0)
                return k;
        return test_run_until(ev, &r->done, 120);
}

static inline void run_for(uint64_t usec) {
        uint64_t end = test_now_usec() + usec;

        while (test_now_usec() < end)
                sd_event_run(ev, end - test_now_usec());
}

static inline int create_image(struct cloud *c, const char *cluster, const char *name, const char *op, const char *flavor,
                        const char *image, struct result *r) {
        struct nova_kv meta[] = {
                { (char *) CLOUD_META_CLUSTER, (char *) cluster },
                { (char *) CLOUD_META_NODE, (char *) name },
                { (char *) CLOUD_META_OP, (char *) op },
        };
        const char *nets[] = { "none", NULL };
        struct nova_create s = {
                .name = name,
                .flavor_ref = flavor,
                .image_ref = image,
                .networks = nets,
                .metadata = meta,
                .n_metadata = 3,
        };

        memset(r, 0, sizeof(*r));
        return cloud_server_create(c, &s, result_cb, r, NULL);
}

/* Show the server until its status is not BUILD (or SECONDS passed). */
static inline void wait_built_for(struct cloud *c, const char *id, struct result *r, unsigned seconds) {
        for (unsigned i = 0; i < seconds * 10; i++) {
                memset(r, 0, sizeof(*r));
                if (wait_result(r, cloud_server_show(c, id, result_cb, r, NULL)) < 0 || r->error < 0)
                        return;
                if (!r->server_status || (strcmp(r->server_status, "BUILD") != 0 &&
                                          strcmp(r->server_status, "REBOOT") != 0 &&
                                          strcmp(r->server_status, "HARD_REBOOT") != 0 &&
                                          strcmp(r->server_status, "REBUILD") != 0))
                        return;
                result_clear(r);
                run_for(100000);
        }
}

static inline void wait_built(struct cloud *c, const char *id, struct result *r) {
        wait_built_for(c, id, r, 30);
}

