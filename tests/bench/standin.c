/* standin.c - a single-threaded epoll stand-in for Keystone and Nova that answers every call after a fixed latency, for the provisioning benchmark. */
/*
 * Canned answers shaped like /work/shared/fixtures/openstack (token with a
 * catalog, compute version document, server create/show/list paged by
 * limit/marker). HTTP/1.1 keep-alive, one request at a time per connection.
 * Each answer waits LATENCY seconds on a FIFO of deadlines behind one timerfd
 * (the latency is the same for every call, so deadlines come in order).
 * GET /_emulator/stats answers {"total": N, "connections": C} (calls other than
 * /_emulator/, and connections accepted), the first and last POST's arrival
 * (CLOCK_MONOTONIC ns: the client's clock too), calls waiting for their answer
 * integrated over time (ns, from the first POST to now and to the last POST;
 * divided by the time it covers: the calls in flight on average) and its peak,
 * the last server list's arrival and the time its answer took to build (every
 * answer is built when its call comes, then waits for the latency), the time
 * from an answer written to the next POST on that connection (summed, and
 * how many: the client's turn-around per call), and the stand-in's own CPU (us).
 *
 * usage: standin --port-file FILE [--latency S]
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define SERVERS_MAX 200000
#define IN_MAX (1u << 20)

struct conn {
        int fd;
        char *in;
        size_t n_in, cap_in;
        char *out;              /* answer waiting for its deadline, then being written */
        size_t n_out, off_out;
        bool waiting;           /* in the deadline FIFO */
        bool writing;
        bool dead;
        struct conn *next;      /* FIFO link */
        uint64_t deadline;
        uint64_t answered_ns;   /* when its last answer was written out */
};

static int ep, tfd;
static uint64_t latency_ns = 100000000;
static char base[64];
static char **texts;            /* server i as a show or list gives it (JSON, made when created) */
static unsigned n_servers;
static unsigned long total_calls;
static struct conn *fifo_head, *fifo_tail;
static unsigned n_conns;
static unsigned long total_accepted; /* connections, to see the client's reuse */
static uint64_t first_post_ns, last_post_ns;
static unsigned n_waiting, max_waiting;  /* calls read, answer not yet written */
static uint64_t waiting_since_ns, waiting_integral; /* n_waiting x time since the first POST */
static uint64_t waiting_integral_last_post;         /* ... until the last POST came */
static uint64_t last_list_ns, last_list_build_ns;   /* the last list's arrival, the time to build its answer */
static uint64_t turnaround_ns, n_turnarounds;       /* a POST's arrival less its connection's last answer */

static uint64_t now_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

/* Account the calls waiting until now, then change their number by D. */
static void waiting_add(int d) {
        uint64_t t = now_ns();

        if (first_post_ns > 0)
                waiting_integral += (uint64_t) n_waiting * (t - waiting_since_ns);
        waiting_since_ns = t;
        n_waiting = (unsigned) ((int) n_waiting + d);
        if (n_waiting > max_waiting)
                max_waiting = n_waiting;
}

static void arm(void) {
        struct itimerspec it = {};
        if (fifo_head) {
                it.it_value.tv_sec = (time_t) (fifo_head->deadline / 1000000000u);
                it.it_value.tv_nsec = (long) (fifo_head->deadline % 1000000000u);
                if (it.it_value.tv_sec == 0 && it.it_value.tv_nsec == 0)
                        it.it_value.tv_nsec = 1;
        }
        timerfd_settime(tfd, TFD_TIMER_ABSTIME, &it, NULL);
}

static void conn_close(struct conn *c) {
        epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1;
        n_conns--;
        if (c->waiting) {
                c->dead = true;         /* freed when it leaves the FIFO */
                return;
        }
        free(c->in);
        free(c->out);
        free(c);
}

static void server_id(unsigned i, char *buf, size_t n) {
        snprintf(buf, n, "5e7a0000-0000-4000-8000-%012x", i);
}

static bool server_index(const char *id, unsigned *ret) {
        unsigned i;
        if (strncmp(id, "5e7a0000-0000-4000-8000-", 24) != 0 || sscanf(id + 24, "%x", &i) != 1 || i >= n_servers)
                return false;
        *ret = i;
        return true;
}

/* Server I's JSON text, from what its create asked for; it never changes. */
static char *server_text(unsigned i, const char *name, json_t *meta, json_t *tags) {
        char id[48], *text;
        json_t *j;

        server_id(i, id, sizeof(id));
        j = json_pack("{s:s, s:s, s:s, s:n, s:s, s:i, s:s, s:s, s:{s:s}, s:{s:s}, s:O, s:{}, s:O, s:b}",
                         "id", id, "name", name, "status", "ACTIVE", "OS-EXT-STS:task_state",
                         "OS-EXT-STS:vm_state", "active", "OS-EXT-STS:power_state", 1,
                         "created", "2026-11-23T17:01:05Z", "updated", "2026-11-23T17:01:06Z",
                         "image", "id", "012ff1c6-dc8d-4e82-8f73-8a2a63093040",
                         "flavor", "original_name", "m1.tiny", "metadata", meta, "addresses", "tags", tags,
                         "locked", 0);
        text = j ? json_dumps(j, JSON_COMPACT) : NULL;
        json_decref(j);
        return text;
}

/* Append N bytes of S to the growing buffer *B (*LEN used, *CAP allocated). */
static void buf_add(char **b, size_t *len, size_t *cap, const char *s, size_t n) {
        if (*len + n + 1 > *cap) {
                *cap = (*len + n + 1) * 2;
                *b = realloc(*b, *cap);
                if (!*b)
                        abort();
        }
        memcpy(*b + *len, s, n);
        *len += n;
        (*b)[*len] = 0;
}

static json_t *token_json(void) {
        char compute[96], identity[96], image[96], network[96];
        snprintf(compute, sizeof(compute), "%s/compute/v2.1", base);
        snprintf(identity, sizeof(identity), "%s/v3", base);
        snprintf(image, sizeof(image), "%s/image", base);
        snprintf(network, sizeof(network), "%s/network", base);
#define EP(type, name, url) \
        "type", type, "name", name, "id", name, "endpoints", "interface", "public", "region", "RegionOne", \
                "region_id", "RegionOne", "url", url, "id", name
        return json_pack(
                "{s:{s:[s], s:{s:{s:s,s:s}, s:s, s:s}, s:s, s:s, s:{s:{s:s,s:s}, s:s, s:s}, s:[{s:s}],"
                " s:[{s:s,s:s,s:s,s:[{s:s,s:s,s:s,s:s,s:s}]}, {s:s,s:s,s:s,s:[{s:s,s:s,s:s,s:s,s:s}]},"
                " {s:s,s:s,s:s,s:[{s:s,s:s,s:s,s:s,s:s}]}, {s:s,s:s,s:s,s:[{s:s,s:s,s:s,s:s,s:s}]}]}}",
                "token", "methods", "password", "user", "domain", "id", "default", "name", "Default", "id",
                "6a7dacd4b27f4841be76492cc8107742", "name", "demo", "expires_at", "2099-11-24T17:01:05.000000Z",
                "issued_at", "2026-11-23T17:01:05.000000Z", "project", "domain", "id", "default", "name", "Default",
                "id", "e861fe9e79eb4a6b9192e9b891ae0e52", "name", "demo", "roles", "name", "member", "catalog",
                EP("compute", "nova", compute), EP("identity", "keystone", identity), EP("image", "glance", image),
                EP("network", "neutron", network));
#undef EP
}

/* Builds the whole answer into c->out. */
static void answer(struct conn *c, const char *method, const char *path, const char *body, size_t n_body) {
        json_t *j = NULL;
        char *text = NULL;      /* or made here, without j */
        size_t text_len = 0;
        int status = 200;
        const char *extra = "";
        char q[256] = "";
        const char *qs = strchr(path, '?');
        size_t plen = qs ? (size_t) (qs - path) : strlen(path);

        if (qs)
                snprintf(q, sizeof(q), "%s", qs + 1);
        if (strncmp(path, "/_emulator/", 11) != 0)
                total_calls++;

#define IS(m, p) (strcmp(method, m) == 0 && plen == strlen(p) && strncmp(path, p, plen) == 0)
        if (IS("GET", "/_emulator/stats")) {
                struct rusage ru;
                getrusage(RUSAGE_SELF, &ru);
                waiting_add(0);
                j = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "now_ns",
                              (json_int_t) now_ns(), "turnaround_ns", (json_int_t) turnaround_ns, "turnarounds",
                              (json_int_t) n_turnarounds,
                              "last_list_ns", (json_int_t) last_list_ns, "last_list_build_ns", (json_int_t) last_list_build_ns,
                              "waiting_integral_last_post_ns", (json_int_t) waiting_integral_last_post, "total", (json_int_t) total_calls,
                              "connections", (json_int_t) total_accepted, "first_post_ns", (json_int_t) first_post_ns,
                              "last_post_ns", (json_int_t) last_post_ns, "waiting_integral_ns",
                              (json_int_t) waiting_integral, "max_waiting", (json_int_t) max_waiting, "cpu_user_us",
                              (json_int_t) (ru.ru_utime.tv_sec * 1000000 + ru.ru_utime.tv_usec), "cpu_sys_us",
                              (json_int_t) (ru.ru_stime.tv_sec * 1000000 + ru.ru_stime.tv_usec));
        } else if (IS("POST", "/v3/auth/tokens")) {
                status = 201;
                extra = "X-Subject-Token: gAAAAABstandin0123456789\r\n";
                j = token_json();
        } else if (IS("GET", "/v3") || IS("GET", "/v3/")) {
                j = json_pack("{s:{s:s,s:s,s:[]}}", "version", "id", "v3.14", "status", "stable", "links");
        } else if (IS("GET", "/compute") || IS("GET", "/compute/") || IS("GET", "/compute/v2.1") ||
                   IS("GET", "/compute/v2.1/")) {
                json_t *v = json_pack("{s:s,s:s,s:s,s:s,s:[]}", "id", "v2.1", "status", "CURRENT", "version",
                                      "2.96", "min_version", "2.1", "links");
                j = plen > 9 ? json_pack("{s:o}", "version", v) : json_pack("{s:[o]}", "versions", v);
        } else if (IS("POST", "/compute/v2.1/servers")) {
                json_t *req = json_loadb(body, n_body, 0, NULL);
                const char *name = json_string_value(json_object_get(json_object_get(req, "server"), "name"));
                if (!name || n_servers >= SERVERS_MAX) {
                        status = 400;
                        j = json_pack("{s:{s:s,s:i}}", "badRequest", "message", "no server name", "code", 400);
                } else {
                        char id[48];
                        last_post_ns = now_ns();
                        if (first_post_ns == 0) {
                                first_post_ns = last_post_ns;
                                waiting_since_ns = last_post_ns;
                                max_waiting = n_waiting;
                        }
                        waiting_add(0);
                        waiting_integral_last_post = waiting_integral;
                        json_t *sv = json_object_get(req, "server"), *m = json_object_get(sv, "metadata"),
                               *t = json_object_get(sv, "tags");
                        json_t *meta = json_is_object(m) ? json_incref(m) : json_object(),
                               *tags = json_is_array(t) ? json_incref(t) : json_array();
                        texts[n_servers] = server_text(n_servers, name, meta, tags);
                        json_decref(meta);
                        json_decref(tags);
                        if (!texts[n_servers])
                                abort();
                        server_id(n_servers++, id, sizeof(id));
                        status = 202;
                        j = json_pack("{s:{s:s,s:s,s:[]}}", "server", "id", id, "adminPass", "x", "links");
                }
                json_decref(req);
        } else if (IS("GET", "/compute/v2.1/servers/detail")) {
                unsigned limit = 1000, from = 0, i;
                last_list_ns = now_ns();
                char *m = strstr(q, "limit="), *k = strstr(q, "marker=");
                if (m)
                        limit = (unsigned) atoi(m + 6);
                if (k && server_index(k + 7, &i))
                        from = i + 1;
                /* Pasted from the texts made at create time: the server's work
                 * must stay small beside the client's. */
                size_t cap = 0;
                text_len = 0;
                buf_add(&text, &text_len, &cap, "{\"servers\":[", 12);
                for (i = from; i < n_servers && i - from < limit; i++) {
                        if (i > from)
                                buf_add(&text, &text_len, &cap, ",", 1);
                        buf_add(&text, &text_len, &cap, texts[i], strlen(texts[i]));
                }
                buf_add(&text, &text_len, &cap, "]", 1);
                if (i < n_servers) {
                        char links[256], id[48];
                        server_id(i - 1, id, sizeof(id));
                        int n = snprintf(links, sizeof(links),
                                         ",\"servers_links\":[{\"rel\":\"next\",\"href\":\"%s/compute/v2.1/"
                                         "servers/detail?limit=%u&marker=%s\"}]", base, limit, id);
                        buf_add(&text, &text_len, &cap, links, (size_t) n);
                }
                buf_add(&text, &text_len, &cap, "}", 1);
        } else if (strcmp(method, "GET") == 0 && strncmp(path, "/compute/v2.1/servers/", 22) == 0) {
                char id[64];
                unsigned i;
                snprintf(id, sizeof(id), "%.*s", (int) (plen - 22), path + 22);
                if (server_index(id, &i)) {
                        if (asprintf(&text, "{\"server\":%s}", texts[i]) < 0)
                                abort();
                        text_len = strlen(text);
                } else {
                        status = 404;
                        j = json_pack("{s:{s:s,s:i}}", "itemNotFound", "message", "not found", "code", 404);
                }
        } else {
                fprintf(stderr, "standin: no route for %s %s\n", method, path);
                status = 404;
                j = json_pack("{s:{s:s,s:i}}", "itemNotFound", "message", "no such route", "code", 404);
        }
        if (!text) {
                text = j ? json_dumps(j, JSON_COMPACT) : strdup("");
                text_len = text ? strlen(text) : 0;
        }
        size_t n = text_len;
        json_decref(j);
        free(c->out);
        c->out = NULL;
        int len = asprintf(&c->out,
                           "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                           "x-openstack-request-id: req-standin\r\n%s\r\n%s",
                           status, status < 300 ? "OK" : "Error", n, extra, text);
        free(text);
        c->n_out = len < 0 ? 0 : (size_t) len;
        if (IS("GET", "/compute/v2.1/servers/detail"))
                last_list_build_ns = now_ns() - last_list_ns;
#undef IS
        c->off_out = 0;
}

/* 0, or -1 when the connection is gone. */
static int conn_write(struct conn *c) {
        while (c->off_out < c->n_out) {
                ssize_t w = send(c->fd, c->out + c->off_out, c->n_out - c->off_out, MSG_NOSIGNAL);
                if (w < 0) {
                        if (errno == EAGAIN) {
                                struct epoll_event e = { .events = EPOLLIN | EPOLLOUT, .data.ptr = c };
                                epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e);
                                c->writing = true;
                                return 0;
                        }
                        conn_close(c);
                        return -1;
                }
                c->off_out += (size_t) w;
        }
        if (c->writing) {
                struct epoll_event e = { .events = EPOLLIN, .data.ptr = c };
                epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e);
                c->writing = false;
        }
        c->n_out = c->off_out = 0;
        c->answered_ns = now_ns();
        return 0;
}

/* One complete request at the head of c->in: answer it after the latency. */
static void conn_parse(struct conn *c) {
        char *end, method[16], path[1024];
        size_t head, clen = 0;

        if (c->waiting || c->n_out > 0 || c->n_in == 0)
                return;
        c->in[c->n_in] = '\0';
        end = strstr(c->in, "\r\n\r\n");
        if (!end)
                return;
        head = (size_t) (end - c->in) + 4;
        for (char *h = strstr(c->in, "\r\n"); h && h < end; h = strstr(h + 2, "\r\n"))
                if (strncasecmp(h + 2, "Content-Length:", 15) == 0)
                        clen = strtoul(h + 17, NULL, 10);
        if (c->n_in < head + clen)
                return;
        if (sscanf(c->in, "%15s %1023s", method, path) != 2) {
                conn_close(c);
                return;
        }
        if (c->answered_ns > 0 && strcmp(method, "POST") == 0 && strncmp(path, "/compute/v2.1/servers", 21) == 0 &&
            path[21] == 0) {
                turnaround_ns += now_ns() - c->answered_ns;
                n_turnarounds++;
        }
        answer(c, method, path, c->in + head, clen);
        waiting_add(1);
        memmove(c->in, c->in + head + clen, c->n_in - head - clen);
        c->n_in -= head + clen;
        c->waiting = true;
        c->deadline = now_ns() + latency_ns;
        c->next = NULL;
        if (fifo_tail)
                fifo_tail->next = c;
        else {
                fifo_head = c;
                arm();
        }
        fifo_tail = c;
}

static void conn_read(struct conn *c) {
        for (;;) {
                if (c->cap_in - c->n_in < 4096) {
                        if (c->cap_in >= IN_MAX) {
                                conn_close(c);
                                return;
                        }
                        c->cap_in = c->cap_in ? c->cap_in * 2 : 16384;
                        c->in = realloc(c->in, c->cap_in + 1);
                }
                ssize_t r = recv(c->fd, c->in + c->n_in, c->cap_in - c->n_in, 0);
                if (r == 0 || (r < 0 && errno != EAGAIN)) {
                        conn_close(c);
                        return;
                }
                if (r < 0)
                        break;
                c->n_in += (size_t) r;
        }
        conn_parse(c);
}

static void on_timer(void) {
        uint64_t exp, t = now_ns();
        if (read(tfd, &exp, sizeof(exp)) < 0 && errno != EAGAIN)
                return;
        while (fifo_head && fifo_head->deadline <= t) {
                struct conn *c = fifo_head;
                fifo_head = c->next;
                if (!fifo_head)
                        fifo_tail = NULL;
                c->waiting = false;
                waiting_add(-1);
                if (c->dead) {
                        free(c->in);
                        free(c->out);
                        free(c);
                        continue;
                }
                if (conn_write(c) == 0 && c->n_out == 0)
                        conn_parse(c);  /* a request that came while this one waited */
        }
        arm();
}

int main(int argc, char **argv) {
        static const struct option opts[] = {
                { "port-file", required_argument, NULL, 'p' },
                { "latency", required_argument, NULL, 'l' },
                {}
        };
        const char *port_file = NULL;
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t alen = sizeof(a);
        int opt, lfd, one = 1;

        while ((opt = getopt_long(argc, argv, "p:l:", opts, NULL)) >= 0) {
                if (opt == 'p')
                        port_file = optarg;
                else if (opt == 'l')
                        latency_ns = (uint64_t) (atof(optarg) * 1e9);
                else
                        return 2;
        }
        if (!port_file) {
                fprintf(stderr, "usage: standin --port-file FILE [--latency S]\n");
                return 2;
        }
        signal(SIGPIPE, SIG_IGN);
        texts = calloc(SERVERS_MAX, sizeof(*texts));
        lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (!texts || lfd < 0 || bind(lfd, (struct sockaddr *) &a, sizeof(a)) < 0 || listen(lfd, 4096) < 0 ||
            getsockname(lfd, (struct sockaddr *) &a, &alen) < 0) {
                perror("standin: listen");
                return 1;
        }
        snprintf(base, sizeof(base), "http://127.0.0.1:%d", ntohs(a.sin_port));
        ep = epoll_create1(EPOLL_CLOEXEC);
        tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        struct epoll_event le = { .events = EPOLLIN, .data.ptr = &lfd }, te = { .events = EPOLLIN, .data.ptr = &tfd };
        epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &le);
        epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &te);
        {
                char tmp[512];
                snprintf(tmp, sizeof(tmp), "%s.tmp", port_file);
                FILE *f = fopen(tmp, "we");
                if (!f || fprintf(f, "%d\n", ntohs(a.sin_port)) < 0 || fclose(f) != 0 || rename(tmp, port_file) < 0) {
                        perror("standin: port file");
                        return 1;
                }
        }
        for (;;) {
                struct epoll_event evs[256];
                int n = epoll_wait(ep, evs, 256, -1);
                if (n < 0 && errno != EINTR)
                        return 1;
                for (int i = 0; i < n; i++) {
                        if (evs[i].data.ptr == &lfd) {
                                int fd;
                                while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
                                        struct conn *c = calloc(1, sizeof(*c));
                                        struct epoll_event e = { .events = EPOLLIN, .data.ptr = c };
                                        c->fd = fd;
                                        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                                        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
                                        n_conns++;
                                        total_accepted++;
                                }
                        } else if (evs[i].data.ptr == &tfd) {
                                on_timer();
                        } else {
                                struct conn *c = evs[i].data.ptr;
                                if (evs[i].events & EPOLLOUT) {
                                        if (conn_write(c) < 0)
                                                continue;
                                        if (c->n_out == 0)
                                                conn_parse(c);
                                }
                                if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
                                        conn_read(c);
                        }
                }
        }
}
