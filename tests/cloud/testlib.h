/* testlib.h - helpers for the cloud suite: start a python server on a free port, run the loop, fetch synchronously. */
#pragma once

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <systemd/sd-event.h>
#include <time.h>
#include <unistd.h>

#include "http.h"
#include "../unit/test.h"

/* A child process that printed its port on its first stdout line. */
struct test_server {
        pid_t pid;
        int port;
};

/* Run ARGV (NULL-terminated) and read the port it prints. 0 or -1. */
static inline int test_server_start(struct test_server *s, const char *const argv[]) {
        int fds[2];
        char line[64] = "";
        size_t n = 0;

        if (pipe(fds) < 0)
                return -1;
        s->pid = fork();
        if (s->pid < 0)
                return -1;
        if (s->pid == 0) {
                dup2(fds[1], STDOUT_FILENO);
                close(fds[0]);
                close(fds[1]);
                execvp(argv[0], (char *const *) argv);
                _exit(127);
        }
        close(fds[1]);
        /* One short line: read byte by byte so nothing past it is swallowed. */
        while (n < sizeof(line) - 1) {
                ssize_t k = read(fds[0], line + n, 1);
                if (k <= 0 || line[n] == '\n')
                        break;
                n++;
        }
        line[n] = 0;
        close(fds[0]);
        s->port = atoi(line);
        if (s->port <= 0) {
                kill(s->pid, SIGKILL);
                waitpid(s->pid, NULL, 0);
                s->pid = 0;
                return -1;
        }
        return 0;
}

static inline void test_server_stop(struct test_server *s) {
        if (s->pid > 0) {
                kill(s->pid, SIGTERM);
                waitpid(s->pid, NULL, 0);
                s->pid = 0;
        }
}

static inline uint64_t test_now_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}

/* Run the loop until *done is non-zero or SECONDS passed; 0 or -ETIMEDOUT. */
static inline int test_run_until(sd_event *ev, const int *done, unsigned seconds) {
        uint64_t deadline = test_now_usec() + (uint64_t) seconds * 1000000;

        while (!*done) {
                if (test_now_usec() > deadline)
                        return -ETIMEDOUT;
                if (sd_event_run(ev, 100000) < 0)
                        return -EIO;
        }
        return 0;
}

/* A copy of an http_response that outlives the callback. */
struct test_response {
        int done;
        int error;
        long status;
        char *body;
        char *request_id;
        char *subject_token;
        uint64_t retry_after_usec;
        unsigned attempts;
        uint64_t elapsed_usec;
};

static inline void test_response_clear(struct test_response *t) {
        free(t->body);
        free(t->request_id);
        free(t->subject_token);
        memset(t, 0, sizeof(*t));
}

static inline void test_response_cb(struct http_request *r, const struct http_response *resp, void *userdata) {
        struct test_response *t = userdata;

        t->done = 1;
        t->error = resp->error;
        t->status = resp->status;
        t->body = strdup(resp->body);
        t->request_id = resp->request_id ? strdup(resp->request_id) : NULL;
        t->subject_token = resp->subject_token ? strdup(resp->subject_token) : NULL;
        t->retry_after_usec = resp->retry_after_usec;
        t->attempts = resp->attempts;
        t->elapsed_usec = resp->elapsed_usec;
}

/* Start METHOD URL (with BODY if not NULL) and run the loop until it is done. */
static inline int test_fetch(sd_event *ev, struct http_engine *e, const char *method, const char *url,
                             const char *body, uint64_t timeout_usec, struct test_response *t) {
        struct http_request *r = NULL;
        int k;

        memset(t, 0, sizeof(*t));
        k = http_request_new(e, method, url, &r);
        if (k < 0)
                return k;
        if (body)
                http_request_set_body(r, body, strlen(body), false);
        if (timeout_usec)
                http_request_set_timeout(r, timeout_usec);
        k = http_request_start(r, test_response_cb, t);
        http_request_unref(r);
        if (k < 0)
                return k;
        return test_run_until(ev, &t->done, 120);
}

/* Integer value of "KEY": N in a flat JSON text (good enough for stats). */
static inline long test_json_int(const char *json, const char *key) {
        char pat[128];
        const char *p;

        snprintf(pat, sizeof(pat), "\"%s\":", key);
        p = json ? strstr(json, pat) : NULL;
        if (!p)
                return -1;
        return strtol(p + strlen(pat), NULL, 10);
}
