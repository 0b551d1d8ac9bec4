/* The Prometheus text exposition format, version 0.0.4. */
#include "metrics/metrics.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cloud/cloud.h"
#include "journal/journal.h"
#include "ops/lifecycle.h"
#include "util/macro.h"
#include "proto/protocol.h"
#include "journal/state.h"

static void render_histogram(FILE *f, const char *name, const char *help, const struct histogram *h) {
        uint64_t cumulative = 0;

        fprintf(f, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
        for (size_t i = 0; i < ELEMENTSOF(histogram_bounds); i++) {
                cumulative += h->buckets[i];
                fprintf(f, "%s_bucket{le=\"%g\"} %llu\n", name, histogram_bounds[i], (unsigned long long) cumulative);
        }
        fprintf(f, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long) h->count);
        fprintf(f, "%s_sum %.3f\n%s_count %llu\n", name, h->sum, name, (unsigned long long) h->count);
}

static void header(FILE *f, const char *name, const char *type, const char *help) {
        fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value: backslash, double quote and newline escaped. */
static void label_value(FILE *f, const char *s) {
        fputc('"', f);
        for (; *s; s++) {
                if (*s == '\\' || *s == '"')
                        fprintf(f, "\\%c", *s);
                else if (*s == '\n')
                        fputs("\\n", f);
                else
                        fputc(*s, f);
        }
        fputc('"', f);
}

struct group_count {
        char *group;
        uint64_t n[_STATE_OP_STATE_MAX];
};

struct node_walk {
        struct group_count *groups;
        size_t n_groups;
        int r;
};

static int count_node(const struct state_node *sn, void *userdata) {
        struct node_walk *w = userdata;
        const char *group = sn->group ? sn->group : "";
        size_t i;

        if (sn->op.state >= _STATE_OP_STATE_MAX)
                return 0;
        for (i = 0; i < w->n_groups; i++)
                if (strcmp(w->groups[i].group, group) == 0)
                        break;
        if (i == w->n_groups) {
                struct group_count *g = reallocarray(w->groups, w->n_groups + 1, sizeof(*g));

                if (!g) {
                        w->r = -ENOMEM;
                        return 1;
                }
                w->groups = g;
                g[i] = (struct group_count){ .group = strdup(group) };
                if (!g[i].group) {
                        w->r = -ENOMEM;
                        return 1;
                }
                w->n_groups++;
        }
        w->groups[i].n[sn->op.state]++;
        return 0;
}

static int render_nodes(FILE *f, struct state *state) {
        struct node_walk w = {};

        state_foreach_node(state, count_node, &w);
        if (w.r >= 0) {
                header(f, "elasticd_nodes", "gauge",
                       "Nodes elasticd has operated on, by group and state of their latest operation.");
                for (size_t i = 0; i < w.n_groups; i++)
                        for (int st = 0; st < _STATE_OP_STATE_MAX; st++) {
                                fputs("elasticd_nodes{group=", f);
                                label_value(f, w.groups[i].group);
                                fprintf(f, ",state=\"%s\"} %llu\n", state_op_state_to_string(st),
                                        (unsigned long long) w.groups[i].n[st]);
                        }
        }
        for (size_t i = 0; i < w.n_groups; i++)
                free(w.groups[i].group);
        free(w.groups);
        return w.r;
}

static void render_lifecycle(FILE *f, const struct lifecycle *l) {
        static const char *const outcomes[] = { "started", "succeeded", "failed" };
        struct lifecycle_stats ls;

        lifecycle_get_stats(l, &ls);
        const uint64_t *by_outcome[] = { ls.started, ls.succeeded, ls.failed };
        for (size_t o = 0; o < ELEMENTSOF(outcomes); o++) {
                char name[64];

                snprintf(name, sizeof(name), "elasticd_operations_%s_total", outcomes[o]);
                header(f, name, "counter", "Node operations since start-up, by kind.");
                for (int k = 0; k < _STATE_OP_KIND_MAX; k++)
                        fprintf(f, "%s{kind=\"%s\"} %llu\n", name, state_op_kind_to_string(k),
                                (unsigned long long) by_outcome[o][k]);
        }
        header(f, "elasticd_operations_in_flight", "gauge", "Node operations being carried out.");
        fprintf(f, "elasticd_operations_in_flight %u\n", ls.active);
        header(f, "elasticd_instances_created_total", "counter", "Instances created since start-up.");
        fprintf(f, "elasticd_instances_created_total %llu\n", (unsigned long long) ls.instances_created);
        header(f, "elasticd_instances_deleted_total", "counter", "Instances deleted since start-up.");
        fprintf(f, "elasticd_instances_deleted_total %llu\n", (unsigned long long) ls.instances_deleted);
        header(f, "elasticd_orphans_deleted_total", "counter",
               "Instances of this cluster that no node claimed, deleted by reconciliation.");
        fprintf(f, "elasticd_orphans_deleted_total %llu\n", (unsigned long long) ls.orphans_deleted);
        header(f, "elasticd_capacity_failovers_total", "counter",
               "Resumes failed over because the cloud had no room for their group.");
        fprintf(f, "elasticd_capacity_failovers_total %llu\n", (unsigned long long) ls.capacity_failovers);
        header(f, "elasticd_unhealthy_nodes_total", "counter",
               "Up nodes whose instance vanished, went ERROR or SHUTOFF, powered down by reconciliation.");
        fprintf(f, "elasticd_unhealthy_nodes_total %llu\n", (unsigned long long) ls.unhealthy);
        {
                struct capacity_group cg[32];
                size_t n = lifecycle_capacity(l, cg, ELEMENTSOF(cg));

                header(f, "elasticd_group_short_of_capacity_until_seconds", "gauge",
                       "When a group's capacity cooldown ends (Unix time); only groups in one.");
                for (size_t i = 0; i < n && i < ELEMENTSOF(cg); i++)
                        fprintf(f, "elasticd_group_short_of_capacity_until_seconds{group=\"%s\"} %lld\n",
                                cg[i].group, (long long) cg[i].until);
        }
        header(f, "elasticd_reconciles_total", "counter", "Reconciliation passes since start-up.");
        fprintf(f, "elasticd_reconciles_total %llu\n", (unsigned long long) ls.reconciles);
        render_histogram(f, "elasticd_create_to_active_seconds",
                         "From the create call until Nova reported the instance ACTIVE (resume).",
                         &ls.create_to_active);
        render_histogram(f, "elasticd_active_to_registered_seconds",
                         "From ACTIVE until slurmd registered (resume).", &ls.active_to_registered);
}

static void render_cloud(FILE *f, const struct cloud *c) {
        static const char *const methods[] = { "GET", "POST", "PUT", "DELETE", "other" };
        static const char *const classes[] = { "2xx", "3xx", "4xx", "5xx", "none" };
        struct cloud_stats cs;

        cloud_get_stats(c, &cs);
        header(f, "elasticd_cloud_http_responses_total", "counter",
               "OpenStack HTTP answers by method and status class (none: no answer).");
        for (size_t m = 0; m < ELEMENTSOF(methods); m++)
                for (size_t s = 0; s < ELEMENTSOF(classes); s++)
                        fprintf(f, "elasticd_cloud_http_responses_total{method=\"%s\",status=\"%s\"} %llu\n",
                                methods[m], classes[s], (unsigned long long) cs.http[m][s]);
        header(f, "elasticd_cloud_calls_started_total", "counter", "Cloud calls started.");
        fprintf(f, "elasticd_cloud_calls_started_total %llu\n", (unsigned long long) cs.calls_started);
        header(f, "elasticd_cloud_calls_failed_total", "counter", "Cloud calls that ended in an error.");
        fprintf(f, "elasticd_cloud_calls_failed_total %llu\n", (unsigned long long) cs.calls_failed);
        header(f, "elasticd_cloud_calls_active", "gauge", "Cloud calls in progress.");
        fprintf(f, "elasticd_cloud_calls_active %llu\n", (unsigned long long) cs.calls_active);
        header(f, "elasticd_cloud_auths_total", "counter", "Keystone tokens fetched.");
        fprintf(f, "elasticd_cloud_auths_total %llu\n", (unsigned long long) cs.auths);
}

int metrics_render(const struct metrics_source *src, char **ret_text) {
        _cleanup_free_ char *text = NULL;
        size_t size = 0;
        FILE *f;
        int r = 0;

        f = open_memstream(&text, &size);
        if (!f)
                return -ENOMEM;

        header(f, "elasticd_uptime_seconds", "gauge", "Seconds since elasticd started.");
        fprintf(f, "elasticd_uptime_seconds %llu\n", (unsigned long long) src->uptime_seconds);
        if (src->requests) {
                header(f, "elasticd_requests_total", "counter", "Requests answered since start-up, by type.");
                for (int t = 0; t < _PROTOCOL_REQUEST_MAX; t++)
                        fprintf(f, "elasticd_requests_total{type=\"%s\"} %llu\n",
                                protocol_request_type_to_string(t), (unsigned long long) src->requests[t]);
        }
        header(f, "elasticd_requests_refused_total", "counter",
               "Bad frames, bad requests and requests refused for permission.");
        fprintf(f, "elasticd_requests_refused_total %llu\n", (unsigned long long) src->requests_refused);
        if (src->journal) {
                struct journal_stats js;

                journal_get_stats(src->journal, &js);
                header(f, "elasticd_journal_bytes", "gauge", "Size of the journal file.");
                fprintf(f, "elasticd_journal_bytes %llu\n", (unsigned long long) js.bytes);
                header(f, "elasticd_journal_records", "gauge", "Records in the journal.");
                fprintf(f, "elasticd_journal_records %llu\n", (unsigned long long) js.records);
                header(f, "elasticd_journal_compactions_total", "counter", "Journal compactions since start-up.");
                fprintf(f, "elasticd_journal_compactions_total %llu\n", (unsigned long long) js.compactions);
        }
        if (src->state)
                r = render_nodes(f, src->state);
        if (r >= 0 && src->lifecycle)
                render_lifecycle(f, src->lifecycle);
        if (r >= 0 && src->cloud)
                render_cloud(f, src->cloud);

        if (fclose(f) != 0 && r >= 0)
                r = -ENOMEM;
        if (r < 0)
                return r;
        *ret_text = TAKE_PTR(text);
        return 0;
}
