/* See httpmetrics.h. Everything is non-blocking on the event loop: a client
 * that sends too much, too slowly or never reads is dropped. */
#include "metrics/httpmetrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define REQUEST_MAX 2048               /* a scraper's GET is a few hundred bytes */
#define CONN_MAX 8                      /* scrapers at once */
#define CONN_TIMEOUT_USEC (5ULL * 1000000ULL)

struct conn {
        struct httpmetrics *h;
        int fd;
        sd_event_source *io, *timer;
        char in[REQUEST_MAX + 1];
        size_t n_in;
        char *out;
        size_t n_out, sent;
        struct conn *next;
};

struct httpmetrics {
        sd_event *event;
        int fd;
        sd_event_source *io;
        httpmetrics_render_t render;
        void *userdata;
        struct conn *conns;
        unsigned n_conns;
};

static void conn_free(struct conn *c) {
        struct conn **p;

        if (!c)
                return;
        for (p = &c->h->conns; *p; p = &(*p)->next)
                if (*p == c) {
                        *p = c->next;
                        break;
                }
        c->h->n_conns--;
        sd_event_source_disable_unref(c->io);
        sd_event_source_disable_unref(c->timer);
        if (c->fd >= 0)
                close(c->fd);
        free(c->out);
        free(c);
}

static int respond(struct conn *c, const char *status, const char *type, const char *body) {
        size_t len = strlen(body);
        int n;

        n = asprintf(&c->out, "HTTP/1.0 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
                     status, type, len, body);
        if (n < 0) {
                c->out = NULL;
                return -ENOMEM;
        }
        c->n_out = (size_t) n;
        return sd_event_source_set_io_events(c->io, EPOLLOUT);
}

/* The request line decides; headers are read (to the blank line) and ignored. */
static int handle_request(struct conn *c) {
        _cleanup_free_ char *text = NULL;
        int r;

        if (strncmp(c->in, "GET /metrics ", 13) != 0 && strncmp(c->in, "GET /metrics\r", 13) != 0) {
                if (strncmp(c->in, "GET ", 4) != 0 && strncmp(c->in, "HEAD ", 5) != 0)
                        return respond(c, "405 Method Not Allowed", "text/plain", "only GET /metrics\n");
                return respond(c, "404 Not Found", "text/plain", "only /metrics\n");
        }
        r = c->h->render(c->h->userdata, &text);
        if (r < 0)
                return respond(c, "500 Internal Server Error", "text/plain", "cannot render the metrics\n");
        return respond(c, "200 OK", "text/plain; version=0.0.4; charset=utf-8", text);
}

static int on_conn_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct conn *c = userdata;
        ssize_t n;

        if (c->out) {
                n = send(fd, c->out + c->sent, c->n_out - c->sent, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n < 0 && (errno == EAGAIN || errno == EINTR))
                        return 0;
                if (n > 0)
                        c->sent += (size_t) n;
                if (n <= 0 || c->sent == c->n_out)
                        conn_free(c);
                return 0;
        }
        n = recv(fd, c->in + c->n_in, REQUEST_MAX - c->n_in, MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return 0;
        if (n <= 0) {
                conn_free(c);
                return 0;
        }
        c->n_in += (size_t) n;
        c->in[c->n_in] = 0;
        if (strstr(c->in, "\r\n\r\n") || strstr(c->in, "\n\n")) {
                if (handle_request(c) < 0)
                        conn_free(c);
                return 0;
        }
        if (c->n_in == REQUEST_MAX && respond(c, "431 Request Header Fields Too Large", "text/plain",
                                              "request too large\n") < 0)
                conn_free(c);
        return 0;
}

static int on_conn_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        conn_free(userdata);
        return 0;
}

static int on_accept(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct httpmetrics *h = userdata;
        struct conn *c;
        uint64_t now;
        int cfd;

        cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0)
                return 0;
        if (h->n_conns >= CONN_MAX) {
                close(cfd);
                return 0;
        }
        c = calloc(1, sizeof(*c));
        if (!c) {
                close(cfd);
                return 0;
        }
        c->h = h;
        c->fd = cfd;
        c->next = h->conns;
        h->conns = c;
        h->n_conns++;
        if (sd_event_now(h->event, CLOCK_MONOTONIC, &now) < 0 ||
            sd_event_add_io(h->event, &c->io, cfd, EPOLLIN, on_conn_io, c) < 0 ||
            sd_event_add_time(h->event, &c->timer, CLOCK_MONOTONIC, now + CONN_TIMEOUT_USEC, 0, on_conn_timeout,
                              c) < 0)
                conn_free(c);
        return 0;
}

/* Fill *RET_ERROR (NULL if out of memory) and return R. */
static int set_error(char **ret_error, int r, const char *fmt, ...) _printf_(3, 4);
static int set_error(char **ret_error, int r, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        if (vasprintf(ret_error, fmt, ap) < 0)
                *ret_error = NULL;
        va_end(ap);
        return r;
}

int httpmetrics_new(sd_event *event, const char *address, httpmetrics_render_t render, void *userdata,
                    struct httpmetrics **ret, char **ret_error) {
        _cleanup_(httpmetrics_freep) struct httpmetrics *h = NULL;
        struct sockaddr_in sa = { .sin_family = AF_INET };
        char host[32];
        unsigned port;
        int one = 1, n = -1, r;

        if (sscanf(address, "%31[0-9.]:%5u%n", host, &port, &n) != 2 || n != (int) strlen(address) || port == 0 ||
            port > 65535 || inet_pton(AF_INET, host, &sa.sin_addr) != 1)
                return set_error(ret_error, -EINVAL, "metrics.listen \"%s\" is not an IPv4 address and port", address);
        sa.sin_port = htons((uint16_t) port);
        h = calloc(1, sizeof(*h));
        if (!h)
                return -ENOMEM;
        h->event = sd_event_ref(event);
        h->render = render;
        h->userdata = userdata;
        h->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (h->fd < 0 || setsockopt(h->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
            bind(h->fd, (struct sockaddr *) &sa, sizeof(sa)) < 0 || listen(h->fd, 16) < 0) {
                r = -errno;

                return set_error(ret_error, r, "cannot listen on %s for metrics: %s", address, strerror(-r));
        }
        r = sd_event_add_io(event, &h->io, h->fd, EPOLLIN, on_accept, h);
        if (r < 0)
                return set_error(ret_error, r, "cannot watch the metrics socket: %s", strerror(-r));
        *ret = TAKE_PTR(h);
        return 0;
}

struct httpmetrics *httpmetrics_free(struct httpmetrics *h) {
        if (!h)
                return NULL;
        while (h->conns)
                conn_free(h->conns);
        sd_event_source_disable_unref(h->io);
        if (h->fd >= 0)
                close(h->fd);
        sd_event_unref(h->event);
        free(h);
        return NULL;
}
