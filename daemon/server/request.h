/* request.h - handling one client request: id, authorisation, one handler per request type, reply. */
#pragma once

#include <jansson.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "server/auth.h"
#include "conf/config.h"
#include "journal/journal.h"
#include "ops/lifecycle.h"
#include "proto/protocol.h"
#include "ops/resize.h"
#include "server/server.h"
#include "journal/state.h"

struct cloud;

/* Above this many operations a hook reply gives their count instead of their ids. */
#define REQUEST_REPLY_OPS_MAX 64

/* What the handlers read and change; owned by the daemon (elasticd.c). */
struct request_context {
        const struct config *config;
        const struct auth *auth;
        struct state *state;
        struct journal *journal;
        const char *state_dir;          /* the journal's directory (a reload does not move it) */
        struct server *server;
        struct lifecycle *lifecycle;    /* carries operations out; NULL in tests without a cloud */
        struct resize *resize;
        const struct cloud *cloud;      /* NULL without a cloud: no cloud metrics */
        uint64_t start_usec;            /* CLOCK_MONOTONIC at start-up */
        sd_event *event;                /* for the trim after big replies; NULL: trim at once */
        sd_event_source *trim_timer;    /* freed by request_context_done() */
        bool loading;                   /* the journal is still being read (on a thread): every
                                         * request is answered busy, and nothing here is touched */

        /* Counters for status. */
        unsigned long n_accepted;       /* requests journalled since start-up */
        unsigned long n_journal_writes;
        uint64_t journal_usec_total;    /* time spent in journal appends (fdatasync) */
        uint64_t journal_usec_max;
        uint64_t n_requests[_PROTOCOL_REQUEST_MAX]; /* valid and permitted, by type (metrics) */
        uint64_t n_refused;             /* bad frames and requests, permission denied */

        /* Re-read the configuration (reload request; SIGHUP does the same).
         * *ret_changed: what changed, for the reply (NULL: nothing). Errors:
         * -EBUSY not now (the journal is still loading), -ENOMEM, any
         * other: the file is refused (*ret_error says why). */
        int (*reload)(void *userdata, char **ret_changed, char **ret_error);
        /* The state changed (operations pending, ...): update STATUS=. */
        void (*state_changed)(void *userdata);
        void *userdata;
};

/* Release what the context holds (its timer). */
void request_context_done(struct request_context *ctx);

/* The server's request callback (server_request_fn); USERDATA is the
 * struct request_context. */
void request_handle(struct server_client *c, json_t *body, const struct protocol_error *err, void *userdata);

/* The Prometheus text of `elasticctl metrics` and GET /metrics (malloc'ed). */
int request_metrics_text(struct request_context *ctx, char **ret_text);

/* Operations pending or running. */
size_t request_ops_active(const struct request_context *ctx);
