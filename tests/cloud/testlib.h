/* testlib.h - helpers for the cloud suite: start a python server on a free port, run the loop, fetch synchronously. */
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <systemd/sd-event.h>
#include <time.h>
#include <unistd.h>

#include "cloud/http.h"
#include "util/fileread.h"

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
                prctl(PR_SET_PDEATHSIG, SIGTERM);
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
        int64_t date;
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
        t->date = resp->date;
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

/* The OpenStack emulator (tests/emulator/emulator.py; $ELASTICD_EMULATOR
 * overrides the path), on a free port, with a private temp dir. */
struct test_emulator {
        pid_t pid;
        char dir[64];
        char base[128];
        sd_event *ev;
        struct http_engine *ctl;   /* for /_emulator/ calls */
};

static inline const char *test_emulator_path(void) {
        const char *p = getenv("ELASTICD_EMULATOR");
        return p && *p ? p : SRCDIR "/tests/emulator/emulator.py";
}

/* EXTRA: more emulator arguments, NULL-terminated, or NULL. TLS: a directory
 * made by mkcert.sh to serve HTTPS from, or NULL. */
static inline int test_emulator_start(struct test_emulator *m, sd_event *ev, const char *const *extra,
                                      const char *tls) {
        char port_file[128], log_file[128], cert[192], key[192];
        const char *argv[64];
        size_t n = 0;
        int port = 0;

        memset(m, 0, sizeof(*m));
        snprintf(m->dir, sizeof(m->dir), "/tmp/elasticd-emu-%d-XXXXXX", (int) getpid());
        if (!mkdtemp(m->dir))
                return -1;
        snprintf(port_file, sizeof(port_file), "%s/port", m->dir);
        snprintf(log_file, sizeof(log_file), "%s/emulator.log", m->dir);
        argv[n++] = "python3";
        argv[n++] = test_emulator_path();
        argv[n++] = "--port";
        argv[n++] = "0";
        argv[n++] = "--port-file";
        argv[n++] = port_file;
        if (tls) {
                snprintf(cert, sizeof(cert), "%s/server.pem", tls);
                snprintf(key, sizeof(key), "%s/server.key", tls);
                argv[n++] = "--tls-cert";
                argv[n++] = cert;
                argv[n++] = "--tls-key";
                argv[n++] = key;
        }
        for (size_t i = 0; extra && extra[i] && n < ELEMENTSOF(argv) - 1; i++)
                argv[n++] = extra[i];
        argv[n] = NULL;

        m->pid = fork();
        if (m->pid < 0)
                return -1;
        if (m->pid == 0) {
                /* Dies with the test, even when the test crashes. */
                prctl(PR_SET_PDEATHSIG, SIGTERM);
                int fd = open(log_file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
                if (fd >= 0) {
                        dup2(fd, STDOUT_FILENO);
                        dup2(fd, STDERR_FILENO);
                }
                execvp(argv[0], (char *const *) argv);
                _exit(127);
        }
        /* The emulator writes the port file (atomically) once it accepts. */
        for (int i = 0; i < 1000 && port <= 0; i++) {
                FILE *f = fopen(port_file, "re");
                if (f) {
                        if (fscanf(f, "%d", &port) != 1)
                                port = 0;
                        fclose(f);
                }
                if (port <= 0) {
                        if (waitpid(m->pid, NULL, WNOHANG) == m->pid) {
                                m->pid = 0;
                                return -1;
                        }
                        usleep(20000);
                }
        }
        if (port <= 0)
                return -1;
        snprintf(m->base, sizeof(m->base), "%s://127.0.0.1:%d", tls ? "https" : "http", port);
        m->ev = ev;
        {
                struct http_options o = { .max_in_flight = 2, .max_retries = 1 };
                char ca[192], *pem = NULL;
                int k;
                if (tls) {
                        snprintf(ca, sizeof(ca), "%s/ca.pem", tls);
                        if (fileread_all(ca, 0, 1 << 20, &pem, &o.ca_pem_len, NULL) < 0)
                                return -1;
                        o.ca_pem = pem;
                }
                k = http_engine_new(ev, &o, &m->ctl);
                free(pem);
                if (k < 0)
                        return -1;
        }
        return 0;
}

static inline void test_emulator_stop(struct test_emulator *m) {
        char cmd[160];

        m->ctl = http_engine_free(m->ctl);
        if (m->pid > 0) {
                kill(m->pid, SIGTERM);
                waitpid(m->pid, NULL, 0);
                m->pid = 0;
        }
        if (m->dir[0]) {
                if (getenv("ELASTICD_TEST_KEEP"))
                        fprintf(stderr, "# emulator dir kept: %s\n", m->dir);
                else {
                        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", m->dir);
                        (void) system(cmd);
                }
                m->dir[0] = 0;
        }
}

/* METHOD PATH on the emulator (JSON BODY or NULL); the answer body into
 * *ret_body (malloc'd) if not NULL. Returns the HTTP status or a negative errno. */
static inline long test_emulator_call(struct test_emulator *m, const char *method, const char *path,
                                      const char *body, char **ret_body) {
        struct test_response t;
        char url[512];
        long status;
        int k;

        snprintf(url, sizeof(url), "%s%s", m->base, path);
        k = test_fetch(m->ev, m->ctl, method, url, body, 0, &t);
        if (k < 0 || t.error < 0) {
                test_response_clear(&t);
                return k < 0 ? k : t.error;
        }
        status = t.status;
        if (ret_body)
                *ret_body = TAKE_PTR(t.body);
        test_response_clear(&t);
        return status;
}

/* POST /_emulator/config with JSON; 0 when the emulator took it. */
static inline int test_emulator_config(struct test_emulator *m, const char *json) {
        return test_emulator_call(m, "POST", "/_emulator/config", json, NULL) == 200 ? 0 : -1;
}
