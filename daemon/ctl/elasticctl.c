/* elasticctl.c - the command line for elasticd, and the Slurm hooks (dispatched on argv[0]).
 *
 * Three parts, as in OpenBSD's bgpctl: an argument parser that turns the
 * command line into a protocol_request, a client that sends it and reads the
 * reply, and a table of output functions (text or --json) that show it. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdarg.h>
#include <string.h>
#include <syslog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "config-build.h"
#include "util/macro.h"
#include "proto/protocol.h"
#include "conf/config.h"
#include "util/fileread.h"
#include "conf/slurmconf.h"
#include "util/hostlist.h"
#include "util/strv.h"

enum {
        EXIT_REFUSED = 1,     /* the daemon answered with an error, or check found it unhealthy */
        EXIT_UNREACHABLE = 2, /* no daemon, no reply in time, or a garbled reply */
        EXIT_USAGE = 64,      /* sysexits.h EX_USAGE */
};

#define HOOK_TIMEOUT_MS 30000
#define CLI_TIMEOUT_MS 30000
/* resize --wait: how often it asks for status. */
#define RESIZE_POLL_MS 2000
/* A hook's message names at most this many bytes of nodes (syslog lines are
 * short), expanding at most this many. */
#define HOOK_MESSAGE_MAX 512
#define HOOK_MESSAGE_NODES_MAX (1u << 22)
/* Replies can be larger than requests: `nodes` on a big cluster. */
#define REPLY_MAX_FRAME ((size_t) 16 * 1024 * 1024)

struct options {
        const char *prog;        /* argv[0] basename: "elasticctl", "elastic-resume", ... */
        const char *socket_path;
        bool json;
        int timeout_ms;          /* connect + reply; < 0: no limit */
        bool timeout_set;
        bool hook;
};

/* A failure, on stderr as "PROG: message"; a hook also sends it to syslog,
 * since slurmctld discards the hooks' stderr. */
static void report(const struct options *o, const char *fmt, ...) _printf_(2, 3);
static void report(const struct options *o, const char *fmt, ...) {
        char msg[PATH_MAX + 1024];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        fprintf(stderr, "%s: %s\n", o->prog, msg);
        if (o->hook)
                syslog(LOG_ERR, "%s", msg);
}

/* asprintf() that returns NULL on failure. */
static char *strf(const char *fmt, ...) _printf_(1, 2);
static char *strf(const char *fmt, ...) {
        char *s;
        va_list ap;
        int k;

        va_start(ap, fmt);
        k = vasprintf(&s, fmt, ap);
        va_end(ap);
        return k < 0 ? NULL : s;
}

/* ---- Output --------------------------------------------------------------- */

enum output_kind {
        OUTPUT_DONE,   /* an action: resume, suspend, reboot, resize, reload, ping, group enable */
        OUTPUT_STATUS,
        OUTPUT_NODES,
        OUTPUT_CHECK,
        OUTPUT_METRICS, /* the Prometheus text as it is */
};

/* Each shows an ok reply and returns the exit status. */
struct output {
        int (*done)(const struct options *o, const struct protocol_reply *r);
        int (*status)(const struct options *o, const struct protocol_reply *r);
        int (*nodes)(const struct options *o, const struct protocol_reply *r);
        int (*check)(const struct options *o, const struct protocol_reply *r);
        int (*metrics)(const struct options *o, const struct protocol_reply *r);
};

/* A scalar as text; NULL for objects and arrays. */
static char *scalar_text(json_t *v) {
        if (!v)
                return NULL;
        switch (json_typeof(v)) {
        case JSON_STRING:
                return strdup(json_string_value(v)[0] ? json_string_value(v) : "-");
        case JSON_INTEGER:
                        return strf("%" JSON_INTEGER_FORMAT, json_integer_value(v));
        case JSON_REAL:
                return strf("%g", json_real_value(v));
        case JSON_TRUE:
                return strdup("true");
        case JSON_FALSE:
                return strdup("false");
        case JSON_NULL:
                return strdup("-");
        default:
                return NULL;
        }
}

static void print_value(FILE *f, const char *key, json_t *v, int depth);

static void print_object(FILE *f, json_t *obj, int depth) {
        const char *key;
        json_t *v;

        json_object_foreach(obj, key, v)
                print_value(f, key, v, depth);
}

/* "key: value", nested objects indented two spaces per level; arrays of
 * scalars on one line, arrays of objects as "- " items. */
static void print_value(FILE *f, const char *key, json_t *v, int depth) {
        _cleanup_free_ char *s = scalar_text(v);
        size_t i;
        json_t *e;
        bool scalars = true;

        if (s) {
                fprintf(f, "%*s%s: %s\n", depth * 2, "", key, s);
                return;
        }
        if (json_is_object(v)) {
                fprintf(f, "%*s%s:%s\n", depth * 2, "", key, json_object_size(v) ? "" : " -");
                print_object(f, v, depth + 1);
                return;
        }
        json_array_foreach(v, i, e)
                if (json_is_object(e) || json_is_array(e))
                        scalars = false;
        if (scalars) {
                fprintf(f, "%*s%s: ", depth * 2, "", key);
                json_array_foreach(v, i, e) {
                        _cleanup_free_ char *t = scalar_text(e);
                        fprintf(f, "%s%s", i ? ", " : "", t ? t : "?");
                }
                fprintf(f, "%s\n", json_array_size(v) ? "" : "-");
                return;
        }
        fprintf(f, "%*s%s:\n", depth * 2, "", key);
        json_array_foreach(v, i, e) {
                fprintf(f, "%*s- %s\n", (depth + 1) * 2, "", json_is_object(e) ? "" : "(array)");
                if (json_is_object(e))
                        print_object(f, e, depth + 2);
        }
}

static int text_done(const struct options *o, const struct protocol_reply *r) {
        printf("ok (request %s)\n", r->id ? r->id : "-");
        print_object(stdout, r->result, 0);
        return 0;
}

static int text_status(const struct options *o, const struct protocol_reply *r) {
        print_object(stdout, r->result, 0);
        return 0;
}

/* 45s, 12m, 3h, 2d: how long an operation has been running, in BUF. */
static const char *age_text_secs(double secs, char buf[static 32]) {
        static const struct {
                double limit, unit;
                char suffix;
        } units[] = { { 120, 1, 's' }, { 120 * 60, 60, 'm' }, { 48 * 3600, 3600, 'h' }, { INFINITY, 86400, 'd' } };

        if (secs < 0)
                secs = 0;
        for (size_t i = 0; i < ELEMENTSOF(units); i++)
                if (secs < units[i].limit) {
                        snprintf(buf, 32, "%.0f%c", floor(secs / units[i].unit), units[i].suffix);
                        break;
                }
        return buf;
}

static const char *age_text(json_t *v, char buf[static 32]) {
        return json_is_number(v) ? age_text_secs(json_number_value(v), buf) : NULL;
}

static const struct {
        const char *title;
        const char *key;
} node_columns[] = {
        { "NODE", "name" },
        { "STATE", "slurm_state" },
        { "GROUP", "group" },
        { "INSTANCE", "instance_id" },
        { "STATUS", "instance_status" },
        { "ADDRESS", "address" },
        { "OPERATION", "operation" },
        { "AGE", "operation_age_seconds" },
};
#define N_NODE_COLUMNS ELEMENTSOF(node_columns)

/* A cell's text: borrowed from the reply, or formatted in BUF. Strings are
 * not copied: at 10,000 nodes, 80,000 copies cost more than the table. */
static const char *cell_text(json_t *v, size_t column, char buf[static 32]) {
        const char *s = NULL;

        if (column == N_NODE_COLUMNS - 1 && json_is_number(v))
                s = age_text(v, buf);
        else if (json_is_string(v))
                s = json_string_value(v);
        else if (json_is_integer(v))
                snprintf(buf, 32, "%" JSON_INTEGER_FORMAT, json_integer_value(v)), s = buf;
        else if (json_is_real(v))
                snprintf(buf, 32, "%g", json_real_value(v)), s = buf;
        else if (json_is_boolean(v))
                s = json_is_true(v) ? "true" : "false";
        return s && *s ? s : "-";
}

/* The reply is "columns" and "rows" (elasticctl asks for them) or, from
 * an elasticd that predates them, "nodes": one object per node. */
struct node_table {
        json_t *rows, *objects;
        size_t at[N_NODE_COLUMNS]; /* index of each column in a row; SIZE_MAX: absent */
};

static json_t *node_value(const struct node_table *t, size_t i, size_t column) {
        if (t->objects)
                return json_object_get(json_array_get(t->objects, i), node_columns[column].key);
        return t->at[column] == SIZE_MAX ? NULL : json_array_get(json_array_get(t->rows, i), t->at[column]);
}

static void put_cell(const char *s, size_t width, bool last) {
        size_t n = strlen(s);

        fwrite(s, 1, n, stdout);
        if (last)
                putchar('\n');
        else
                for (n = n < width ? width - n + 2 : 2; n > 0; n--)
                        putchar(' ');
}

/* One line of the "table" form: each column's value (not NUL-terminated),
 * "" when none. Returns where the next line starts. */
static const char *table_line_split(const char *line, const char *end, const size_t at[static N_NODE_COLUMNS],
                                    const char *value[static N_NODE_COLUMNS], size_t len[static N_NODE_COLUMNS]) {
        const char *eol = memchr(line, '\n', (size_t) (end - line));
        size_t k = 0;

        if (!eol)
                eol = end;
        for (size_t c = 0; c < N_NODE_COLUMNS; c++)
                value[c] = "", len[c] = 0;
        for (const char *p = line; p < eol; k++) {
                const char *tab = memchr(p, '\t', (size_t) (eol - p));
                const char *stop = tab ? tab : eol;

                for (size_t c = 0; c < N_NODE_COLUMNS; c++)
                        if (at[c] == k)
                                value[c] = p, len[c] = (size_t) (stop - p);
                if (!tab)
                        break;
                p = tab + 1;
        }
        return eol < end ? eol + 1 : end;
}

/* A "table" value as a cell: "-" for none, the age column as age_text. */
static const char *table_cell(const char *v, size_t len, size_t column, char buf[static 32], size_t *ret_len) {
        if (len == 0) {
                *ret_len = 1;
                return "-";
        }
        if (column == N_NODE_COLUMNS - 1 && len < 24) {
                char num[24];
                char *end;
                double secs;

                memcpy(num, v, len);
                num[len] = 0;
                secs = strtod(num, &end);
                if (*end == 0 && end != num) {
                        age_text_secs(secs, buf);
                        *ret_len = strlen(buf);
                        return buf;
                }
        }
        *ret_len = len;
        return v;
}

/* The "table" form: widths in one pass over the text, the lines in a second. */
static int text_nodes_table(const char *text, size_t size, json_t *columns) {
        const char *end = text + size, *value[N_NODE_COLUMNS];
        size_t at[N_NODE_COLUMNS], width[N_NODE_COLUMNS], len[N_NODE_COLUMNS], n, line_size = 0;
        _cleanup_free_ char *line = NULL;
        char buf[32];

        /* About 100 bytes a node: fewer, larger writes (nothing is written yet). */
        (void) setvbuf(stdout, NULL, _IOFBF, 64 * 1024);
        for (size_t c = 0; c < N_NODE_COLUMNS; c++) {
                at[c] = SIZE_MAX;
                for (size_t k = 0; k < json_array_size(columns); k++)
                        if (json_is_string(json_array_get(columns, k)) &&
                            strcmp(json_string_value(json_array_get(columns, k)), node_columns[c].key) == 0)
                                at[c] = k;
                width[c] = strlen(node_columns[c].title);
        }
        for (const char *p = text; p < end;) {
                p = table_line_split(p, end, at, value, len);
                for (size_t c = 0; c < N_NODE_COLUMNS; c++) {
                        table_cell(value[c], len[c], c, buf, &n);
                        if (n > width[c])
                                width[c] = n;
                }
        }
        for (size_t c = 0; c < N_NODE_COLUMNS; c++) {
                put_cell(node_columns[c].title, width[c], c + 1 == N_NODE_COLUMNS);
                line_size += width[c] + 2;
        }
        /* A line at a time (one write of 10,000 cells' worth costs a tenth of
         * two writes per cell): no cell is wider than its column. */
        line = malloc(line_size + 1);
        if (!line)
                return EXIT_REFUSED;
        for (const char *p = text; p < end;) {
                size_t k = 0;

                p = table_line_split(p, end, at, value, len);
                for (size_t c = 0; c < N_NODE_COLUMNS; c++) {
                        const char *cell = table_cell(value[c], len[c], c, buf, &n);

                        memcpy(line + k, cell, n);
                        k += n;
                        if (c + 1 < N_NODE_COLUMNS) {
                                memset(line + k, ' ', width[c] - n + 2);
                                k += width[c] - n + 2;
                        }
                }
                line[k++] = '\n';
                fwrite_unlocked(line, 1, k, stdout);
        }
        return 0;
}

static int text_nodes(const struct options *o, const struct protocol_reply *r) {
        struct node_table t = { .rows = json_object_get(r->result, "rows") };
        json_t *columns = json_object_get(r->result, "columns");
        json_t *table = json_object_get(r->result, "table");
        size_t width[N_NODE_COLUMNS], n;
        char buf[32];

        if (json_is_string(table) && json_is_array(columns))
                return text_nodes_table(json_string_value(table), json_string_length(table), columns);
        if (!json_is_array(t.rows) || !json_is_array(columns)) {
                t.rows = NULL;
                t.objects = json_object_get(r->result, "nodes");
                if (!json_is_array(t.objects)) {
                        report(o, "the reply (request %s) has no \"rows\" or \"nodes\" list", r->id ? r->id : "-");
                        return EXIT_UNREACHABLE;
                }
        }
        for (size_t c = 0; c < N_NODE_COLUMNS; c++) {
                t.at[c] = SIZE_MAX;
                for (size_t k = 0; t.rows && k < json_array_size(columns); k++)
                        if (json_is_string(json_array_get(columns, k)) &&
                            strcmp(json_string_value(json_array_get(columns, k)), node_columns[c].key) == 0)
                                t.at[c] = k;
                width[c] = strlen(node_columns[c].title);
        }
        n = json_array_size(t.rows ? t.rows : t.objects);
        for (size_t i = 0; i < n; i++)
                for (size_t c = 0; c < N_NODE_COLUMNS; c++) {
                        size_t len = strlen(cell_text(node_value(&t, i, c), c, buf));
                        if (len > width[c])
                                width[c] = len;
                }

        for (size_t c = 0; c < N_NODE_COLUMNS; c++)
                put_cell(node_columns[c].title, width[c], c + 1 == N_NODE_COLUMNS);
        for (size_t i = 0; i < n; i++)
                for (size_t c = 0; c < N_NODE_COLUMNS; c++)
                        put_cell(cell_text(node_value(&t, i, c), c, buf), width[c], c + 1 == N_NODE_COLUMNS);
        return 0;
}

/* The daemon may report {"healthy": false, "problems": [...]} in status. */
static bool result_healthy(json_t *result) {
        json_t *h = json_object_get(result, "healthy");
        return !json_is_false(h);
}

static int text_check(const struct options *o, const struct protocol_reply *r) {
        json_t *version = json_object_get(r->result, "version");
        json_t *problems = json_object_get(r->result, "problems");

        if (!result_healthy(r->result)) {
                printf("elasticd at %s is running but unhealthy (request %s)\n", o->socket_path,
                       r->id ? r->id : "-");
                if (problems)
                        print_value(stdout, "problems", problems, 1);
                return EXIT_REFUSED;
        }
        printf("elasticd at %s is healthy", o->socket_path);
        if (json_is_string(version))
                printf(" (version %s)", json_string_value(version));
        printf("\n");
        return 0;
}

static int text_metrics(const struct options *o, const struct protocol_reply *r) {
        json_t *text = json_object_get(r->result, "text");

        if (!json_is_string(text)) {
                fprintf(stderr, "%s: the daemon's metrics reply has no text (request %s)\n", o->prog,
                        r->id ? r->id : "-");
                return EXIT_UNREACHABLE;
        }
        fputs(json_string_value(text), stdout);
        return 0;
}

static int json_result(const struct options *o, const struct protocol_reply *r) {
        json_dumpf(r->result, stdout, JSON_INDENT(2));
        printf("\n");
        return 0;
}

static int json_check(const struct options *o, const struct protocol_reply *r) {
        json_result(o, r);
        return result_healthy(r->result) ? 0 : EXIT_REFUSED;
}

static const struct output text_output = {
        .done = text_done,
        .status = text_status,
        .nodes = text_nodes,
        .check = text_check,
        .metrics = text_metrics,
};

static const struct output json_output = {
        .done = json_result,
        .status = json_result,
        .nodes = json_result,
        .check = json_check,
        .metrics = json_result,
};

static int output_show(const struct output *out, enum output_kind kind, const struct options *o,
                       const struct protocol_reply *r) {
        switch (kind) {
        case OUTPUT_DONE:
                return out->done(o, r);
        case OUTPUT_STATUS:
                return out->status(o, r);
        case OUTPUT_NODES:
                return out->nodes(o, r);
        case OUTPUT_CHECK:
                return out->check(o, r);
        case OUTPUT_METRICS:
                return out->metrics(o, r);
        }
        return EXIT_REFUSED;
}

/* ---- Client --------------------------------------------------------------- */

static int64_t now_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int ms_left(int64_t deadline) {
        int64_t left;

        if (deadline < 0)
                return -1;
        left = deadline - now_ms();
        return left <= 0 ? 0 : left > INT_MAX ? INT_MAX : (int) left;
}

static void sleep_ms(int ms) {
        struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long) (ms % 1000) * 1000000 };

        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

/* Connect to PATH by DEADLINE. A Unix socket's connect() blocks while the
 * listen backlog is full; SO_SNDTIMEO bounds that wait. */
static int client_connect(const char *path, int64_t deadline, int *ret_fd) {
        _cleanup_close_ int fd = -1;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        size_t len = strlen(path);

        if (len == 0 || len >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        memcpy(sa.sun_path, path, len);

        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return negative_errno();
        if (deadline >= 0) {
                int left = ms_left(deadline);
                struct timeval tv = { .tv_sec = left / 1000, .tv_usec = (left % 1000) * 1000 };

                if (left == 0)
                        return -ETIMEDOUT;
                if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0)
                        return negative_errno();
        }
        while (connect(fd, (struct sockaddr *) &sa, offsetof(struct sockaddr_un, sun_path) + len + 1) < 0) {
                if (errno == EINTR)
                        continue;
                return errno == EAGAIN || errno == EINPROGRESS ? -ETIMEDOUT : negative_errno();
        }
        *ret_fd = TAKE_FD(fd);
        return 0;
}

/* Send REQUEST and read the reply, all by DEADLINE (ms, < 0: none). On
 * failure returns a negative errno and puts what failed into WHY. */
static int client_exchange(const struct options *o, int64_t deadline, json_t *request,
                           struct protocol_reply **ret, char *why, size_t why_size) {
        struct protocol_error perr = {};
        _cleanup_close_ int fd = -1;
        json_t *body = NULL;
        int k, kw;

        for (int backoff_ms = 100;; backoff_ms = backoff_ms >= 1000 ? 2000 : backoff_ms * 2) {
                k = client_connect(o->socket_path, deadline, &fd);
                /* A hook rides out a daemon restart: slurmctld would not run it again. */
                if (!o->hook || (k != -ENOENT && k != -ECONNREFUSED) ||
                    (deadline >= 0 && ms_left(deadline) <= backoff_ms))
                        break;
                sleep_ms(backoff_ms);
        }
        if (k == -ETIMEDOUT) {
                snprintf(why, why_size, "cannot connect to elasticd at %s: no answer within %g s",
                         o->socket_path, o->timeout_ms / 1000.0);
                return k;
        }
        if (k < 0) {
                snprintf(why, why_size, "cannot connect to elasticd at %s: %s%s", o->socket_path, strerror(-k),
                         o->hook && (k == -ENOENT || k == -ECONNREFUSED) ? " (kept trying until the timeout)" : "");
                return k;
        }

        /* A daemon refusing the frame may reply and close before taking it
         * all: read its reply even if writing failed. */
        kw = protocol_write_frame(fd, request, REPLY_MAX_FRAME, ms_left(deadline));
        if (kw == -ETIMEDOUT || kw == -EMSGSIZE) {
                snprintf(why, why_size, "cannot send the request to elasticd at %s: %s", o->socket_path,
                         kw == -ETIMEDOUT ? "timed out" : "request too large");
                return kw;
        }
        k = protocol_read_frame(fd, REPLY_MAX_FRAME, ms_left(deadline), &body, &perr);
        if (k < 0) {
                if (kw < 0)
                        snprintf(why, why_size, "cannot send the request to elasticd at %s: %s",
                                 o->socket_path, strerror(-kw));
                else if (k == -ETIMEDOUT)
                        snprintf(why, why_size, "no reply from elasticd at %s within %g s", o->socket_path,
                                 o->timeout_ms / 1000.0);
                else if (k == -ECONNRESET)
                        snprintf(why, why_size, "elasticd at %s closed the connection without replying",
                                 o->socket_path);
                else if (k == -EPROTO || k == -EBADMSG)
                        snprintf(why, why_size, "bad reply from elasticd at %s: %s", o->socket_path,
                                 perr.message);
                else
                        snprintf(why, why_size, "cannot read the reply from elasticd at %s: %s",
                                 o->socket_path, strerror(-k));
                return k;
        }
        k = protocol_reply_parse(body, ret, &perr);
        json_decref(body);
        if (k < 0) {
                snprintf(why, why_size, "bad reply from elasticd at %s: %s", o->socket_path, perr.message);
                return k;
        }
        return 0;
}

/* ---- Hooks ---------------------------------------------------------------- */

/* slurmctld closes every fd before exec: make sure 0-2 are open so no
 * socket or file opened later lands on stdout/stderr by accident. */
static void fds_ensure_std(void) {
        for (int fd = 0; fd < 3; fd++)
                if (fcntl(fd, F_GETFD) < 0 && errno == EBADF) {
                        int n = open("/dev/null", O_RDWR | O_NOCTTY);
                        if (n >= 0 && n != fd) {
                                /* open() returns the lowest free fd, so this only
                                 * happens if fd got taken meanwhile; be safe. */
                                dup2(n, fd);
                                close(n);
                        }
                }
}

/* Keep only printable ASCII, so a message about bad input is always valid text. */
static void text_sanitize(char *s) {
        for (; *s; s++)
                if ((unsigned char) *s < 0x20 || (unsigned char) *s >= 0x7f)
                        *s = '?';
}

/* Read SLURM_RESUME_FILE into *ret_obj, or explain in *ret_error why not. */
static void resume_file_read(const char *path, json_t **ret_obj, char **ret_error) {
        _cleanup_free_ char *buf = NULL, *problem = NULL;
        int r;
        json_error_t jerr;
        size_t size = 0;
        char *e = NULL;
        json_t *o;

        /* Never hang slurmctld on a FIFO: regular files only, capped. */
        r = fileread_all(path, 0, PROTOCOL_RESUME_FILE_MAX, &buf, &size, &problem);
        if (r < 0) {
                e = problem ? strf("SLURM_RESUME_FILE %s", problem)
                            : strf("cannot read SLURM_RESUME_FILE %s: %s", path, strerror(-r));
                goto fail;
        }
        o = json_loadb(buf, size, JSON_REJECT_DUPLICATES, &jerr);
        if (!o) {
                e = strf("SLURM_RESUME_FILE %s is not valid JSON: %s (line %d, column %d)", path,
                                jerr.text, jerr.line, jerr.column);
                goto fail;
        }
        if (!json_is_object(o)) {
                json_decref(o);
                e = strf("SLURM_RESUME_FILE %s does not hold a JSON object", path);
                goto fail;
        }
        *ret_obj = o;
        return;
fail:
        if (e)
                text_sanitize(e);
        *ret_error = e;
}

static bool name_ok(const char *s) {
        if (!s || !*s)
                return false;
        for (; *s; s++)
                if ((unsigned char) *s <= ' ' || (unsigned char) *s == 0x7f)
                        return false;
        return true;
}

/* Fill the fields every hook request carries from slurmctld's environment. */
static void hook_environment(struct protocol_request *r) {
        const char *job = getenv("SLURM_JOB_ID"), *file = getenv("SLURM_RESUME_FILE");

        /* The daemon refuses odd bytes in job_id: drop it rather than the request. */
        if (name_ok(job))
                r->job_id = strdup(job);
        if (file && *file)
                resume_file_read(file, &r->resume_file, &r->resume_file_error);
}

static const struct {
        const char *prog;
        enum protocol_request_type type;
} hooks[] = {
        { "elastic-resume", PROTOCOL_REQUEST_RESUME },
        { "elastic-suspend", PROTOCOL_REQUEST_SUSPEND },
        { "elastic-resume-fail", PROTOCOL_REQUEST_RESUME_FAIL },
        { "elastic-reboot", PROTOCOL_REQUEST_REBOOT },
};

/* ---- Commands ------------------------------------------------------------- */

struct command {
        const char *name;
        enum protocol_request_type type;
        enum output_kind output;
        const char *args;
        const char *help;
        /* Fill R from the command's own arguments (argv[0] is the command). */
        int (*parse)(int argc, char **argv, struct protocol_request *r, struct options *o);
};

static int usage_error(const struct options *o, const char *fmt, ...) _printf_(2, 3);
static int usage_error(const struct options *o, const char *fmt, ...) {
        va_list ap;

        fprintf(stderr, "%s: ", o->prog);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fprintf(stderr, "\nTry '%s --help'.\n", o->prog);
        return -EINVAL;
}

static int parse_none(int argc, char **argv, struct protocol_request *r, struct options *o) {
        if (argc > 1)
                return usage_error(o, "%s takes no arguments (got \"%s\")", argv[0], argv[1]);
        return 0;
}

/* The table needs one line of text per node, not objects (at 10,000 nodes
 * a JSON parser reads the one string in a third of the time arrays take);
 * --json prints the objects. */
static int parse_nodes(int argc, char **argv, struct protocol_request *r, struct options *o) {
        r->table = !o->json;
        return parse_none(argc, argv, r, o);
}

static int parse_hostlist(int argc, char **argv, struct protocol_request *r, struct options *o) {
        if (argc != 2)
                return usage_error(o, "%s needs exactly one argument, a hostlist like cn-[1-4]", argv[0]);
        r->nodes = strdup(argv[1]);
        return r->nodes ? 0 : -ENOMEM;
}

static int parse_reboot(int argc, char **argv, struct protocol_request *r, struct options *o) {
        static const struct option longopts[] = {
                { "reason", required_argument, NULL, 'r' },
                { "features", required_argument, NULL, 'f' },
                {}
        };
        int c;

        optind = 0;
        while ((c = getopt_long(argc, argv, "+r:f:", longopts, NULL)) >= 0)
                switch (c) {
                case 'r':
                        free(r->reason);
                        r->reason = strdup(optarg);
                        break;
                case 'f':
                        free(r->features);
                        r->features = strdup(optarg);
                        break;
                default:
                        return usage_error(o, "reboot: bad option");
                }
        if (argc - optind != 1)
                return usage_error(o, "reboot needs exactly one argument, the nodes (cn-[1-4] or cn-1,cn-2)");
        r->nodes = strdup(argv[optind]);
        return r->nodes ? 0 : -ENOMEM;
}

/* group enable NAME */
static int parse_group(int argc, char **argv, struct protocol_request *r, struct options *o) {
        if (argc != 3 || strcmp(argv[1], "enable") != 0)
                return usage_error(o, "group takes \"enable NAME\" (end a group's capacity cooldown)");
        r->group = strdup(argv[2]);
        return r->group ? 0 : -ENOMEM;
}

static int parse_resize(int argc, char **argv, struct protocol_request *r, struct options *o) {
        static const struct option longopts[] = {
                { "min", required_argument, NULL, 'm' },
                { "group", required_argument, NULL, 'g' },
                { "wait", no_argument, NULL, 'w' },
                {}
        };
        bool have_min = false;
        char *end;
        int c;

        optind = 0;
        while ((c = getopt_long(argc, argv, "+m:g:w", longopts, NULL)) >= 0)
                switch (c) {
                case 'm': {
                        unsigned long v;

                        errno = 0;
                        v = strtoul(optarg, &end, 10);
                        if (errno || end == optarg || *end || optarg[0] == '-' || v > UINT_MAX)
                                return usage_error(o, "resize: --min needs a node count, not \"%s\"", optarg);
                        r->min = (unsigned) v;
                        have_min = true;
                        break;
                }
                case 'g':
                        free(r->group);
                        r->group = strdup(optarg);
                        break;
                case 'w':
                        r->wait = true;
                        break;
                default:
                        return usage_error(o, "resize: bad option");
                }
        if (optind < argc)
                return usage_error(o, "resize takes no arguments besides its options (got \"%s\")", argv[optind]);
        if (!have_min)
                return usage_error(o, "resize needs --min N");
        /* Waiting for nodes to boot or drain takes as long as it takes. */
        if (r->wait && !o->timeout_set)
                o->timeout_ms = -1;
        return 0;
}

static const struct command commands[] = {
        { "status", PROTOCOL_REQUEST_STATUS, OUTPUT_STATUS, "", "show the daemon's state", parse_none },
        { "nodes", PROTOCOL_REQUEST_NODES, OUTPUT_NODES, "", "list nodes, their instances and operations", parse_nodes },
        { "check", PROTOCOL_REQUEST_STATUS, OUTPUT_CHECK, "",
          "exit 0 if elasticd answers and reports itself healthy, 1 otherwise", parse_none },
        /* slurm-conf is handled before this table: it reads elasticd.yaml itself. */
        { "metrics", PROTOCOL_REQUEST_METRICS, OUTPUT_METRICS, "",
          "print the daemon's metrics in the Prometheus text format", parse_none },
        { "ping", PROTOCOL_REQUEST_PING, OUTPUT_DONE, "", "check that elasticd answers", parse_none },
        { "reload", PROTOCOL_REQUEST_RELOAD, OUTPUT_DONE, "", "re-read the configuration", parse_none },
        { "resume", PROTOCOL_REQUEST_RESUME, OUTPUT_DONE, "HOSTLIST", "power nodes up", parse_hostlist },
        { "suspend", PROTOCOL_REQUEST_SUSPEND, OUTPUT_DONE, "HOSTLIST", "power nodes down", parse_hostlist },
        { "resume-fail", PROTOCOL_REQUEST_RESUME_FAIL, OUTPUT_DONE, "HOSTLIST",
          "give up on nodes that did not come up", parse_hostlist },
        { "reboot", PROTOCOL_REQUEST_REBOOT, OUTPUT_DONE, "[--reason R] [--features F] NODES",
          "reboot or reimage nodes", parse_reboot },
        { "resize", PROTOCOL_REQUEST_RESIZE, OUTPUT_DONE, "--min N [--group G] [--wait]",
          "keep the first N nodes of a group powered up", parse_resize },
        { "group", PROTOCOL_REQUEST_GROUP_ENABLE, OUTPUT_DONE, "enable NAME",
          "end a group's capacity cooldown: resume its nodes on the cloud again", parse_group },
};

static void help(const struct options *o) {
        printf("Usage: %s [-s PATH] [--json] [-t SECONDS] COMMAND [ARGS]\n\n", o->prog);
        printf("Talk to elasticd, which powers Slurm cloud nodes up and down on OpenStack.\n\n");
        printf("Options:\n"
               "  -s, --socket PATH     elasticd's socket (default $ELASTICD_SOCKET, else %s)\n"
               "  -j, --json            print the daemon's result as JSON\n"
               "  -t, --timeout SECONDS give up after this long, 0 = never (default $ELASTICD_TIMEOUT,\n"
               "                        else %d; resize --wait: never)\n"
               "  -h, --help            show this help\n"
               "  -V, --version         show the version\n\n"
               "Commands:\n",
               ELASTICD_SOCKET_PATH, CLI_TIMEOUT_MS / 1000);
        for (size_t i = 0; i < ELEMENTSOF(commands); i++) {
                char left[64];
                snprintf(left, sizeof(left), "%s %s", commands[i].name, commands[i].args);
                printf("  %-38s %s\n", left, commands[i].help);
        }
        printf("  %-38s %s\n", "slurm-conf [-c FILE] [--bindir DIR]", "print slurm.conf's power-saving part and");
        printf("  %-38s %s\n", "           [--suspend-time S]", "the groups' nodes, from elasticd.yaml");
        printf("\nAs elastic-resume, elastic-suspend, elastic-resume-fail or elastic-reboot it is the\n"
               "Slurm hook of that name: HOSTLIST [FEATURES] as slurmctld passes them.\n\n"
               "Exit status: 0 ok, 1 refused by elasticd (or unhealthy), 2 elasticd unreachable\n"
               "or no reply in time, 64 bad usage.\n");
}

static const struct command *command_find(const char *name) {
        for (size_t i = 0; i < ELEMENTSOF(commands); i++)
                if (strcmp(commands[i].name, name) == 0)
                        return &commands[i];
        return NULL;
}

/* Seconds (fractions allowed) to milliseconds; 0 = no limit (-1). */
static int timeout_parse(const char *s, int *ret_ms) {
        char *end;
        double v;

        errno = 0;
        v = strtod(s, &end);
        if (errno || end == s || *end || !(v >= 0) || v > INT_MAX / 1000)
                return -EINVAL;
        *ret_ms = v == 0 ? -1 : (int) (v * 1000);
        return 0;
}

/* Global options; leaves optind at the command. */
static int parse_global(int argc, char **argv, struct options *o) {
        static const struct option longopts[] = {
                { "socket", required_argument, NULL, 's' },
                { "json", no_argument, NULL, 'j' },
                { "timeout", required_argument, NULL, 't' },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, 'V' },
                {}
        };
        int c;

        while ((c = getopt_long(argc, argv, "+s:jt:hV", longopts, NULL)) >= 0)
                switch (c) {
                case 's':
                        o->socket_path = optarg;
                        break;
                case 'j':
                        o->json = true;
                        break;
                case 't':
                        if (timeout_parse(optarg, &o->timeout_ms) < 0)
                                return usage_error(o, "-t needs a number of seconds, not \"%s\"", optarg);
                        o->timeout_set = true;
                        break;
                case 'h':
                        help(o);
                        return 1;
                case 'V':
                        printf("elasticctl %s (protocol version %u)\n", ELASTICD_VERSION, PROTOCOL_VERSION);
                        return 1;
                default:
                        return usage_error(o, "bad option");
                }
        return 0;
}

/* ---- Main ----------------------------------------------------------------- */

/* What the request was, for the end of a hook's messages (after what went
 * wrong): "resume of 4 nodes: cn-[1-4]", the list cut between nodes. */
static char *request_what(const struct protocol_request *r) {
        _cleanup_(strv_freep) char **names = NULL;
        const char *type = protocol_request_type_to_string(r->type);
        char *s = NULL;
        size_t n = 0;

        if (r->nodes && hostlist_expand(r->nodes, HOOK_MESSAGE_NODES_MAX, &names, &n, NULL) >= 0 && n > 0) {
                if (hostlist_message(&s, HOOK_MESSAGE_MAX, names, n, "%s of %zu node%s", type, HOSTLIST_NODES(n)) < 0)
                        s = NULL;
        } else if (asprintf(&s, "%s of \"%.200s%s\"", type, r->nodes ? r->nodes : "",
                            r->nodes && strlen(r->nodes) > 200 ? "..." : "") < 0)
                s = NULL;
        return s;
}

/* One request and its reply, without output: 0, or the exit status. */
static int exchange_once(const struct options *o, int64_t deadline, const struct protocol_request *r,
                         struct protocol_reply **ret_reply) {
        struct protocol_error perr = {};
        char why[PATH_MAX + 512];
        json_t *request = NULL;
        int k;

        k = protocol_request_to_json(r, &request, &perr);
        if (k < 0) {
                report(o, "%s", k == -EINVAL ? perr.message : strerror(-k));
                return EXIT_USAGE;
        }
        k = client_exchange(o, deadline, request, ret_reply, why, sizeof(why));
        json_decref(request);
        if (k < 0) {
                report(o, "%s", why);
                return EXIT_UNREACHABLE;
        }
        if (!(*ret_reply)->ok) {
                report(o, "%s: %s (request %s)", (*ret_reply)->error_code, (*ret_reply)->error_message,
                       (*ret_reply)->id ? (*ret_reply)->id : "-");
                return EXIT_REFUSED;
        }
        return 0;
}

/* resize --wait: poll status's "resize" for GROUP, printing a line each time
 * the counts change, until the daemon says the group is done. */
static int resize_wait(const struct options *o, const char *group) {
        int64_t deadline = o->timeout_ms < 0 ? -1 : now_ms() + o->timeout_ms;
        struct protocol_request status = { .version = PROTOCOL_VERSION, .type = PROTOCOL_REQUEST_STATUS };
        _cleanup_free_ char *last = NULL;

        for (;;) {
                _cleanup_(protocol_reply_freep) struct protocol_reply *reply = NULL;
                _cleanup_free_ char *line = NULL;
                json_t *g;
                int k;

                /* Each status call is bounded even when the wait is not. */
                k = exchange_once(o, deadline >= 0 && deadline < now_ms() + CLI_TIMEOUT_MS
                                             ? deadline : now_ms() + CLI_TIMEOUT_MS,
                                  &status, &reply);
                if (k != 0)
                        return k;
                g = json_object_get(json_object_get(reply->result, "resize"), group);
                if (!json_is_object(g)) {
                        report(o, "elasticd's status has no resize state for group %s", group);
                        return EXIT_REFUSED;
                }
                line = strf("group %s: min %" JSON_INTEGER_FORMAT ", up %" JSON_INTEGER_FORMAT
                            ", powering up %" JSON_INTEGER_FORMAT ", powering down %" JSON_INTEGER_FORMAT "%s",
                            group, json_integer_value(json_object_get(g, "min")),
                            json_integer_value(json_object_get(g, "up")),
                            json_integer_value(json_object_get(g, "powering_up")),
                            json_integer_value(json_object_get(g, "powering_down")),
                            json_is_true(json_object_get(g, "done")) ? ": done" : "");
                if (!line)
                        return EXIT_REFUSED;
                if (!last || strcmp(last, line) != 0) {
                        /* Progress goes to stderr with --json: stdout stays one JSON document. */
                        fprintf(o->json ? stderr : stdout, "%s\n", line);
                        fflush(o->json ? stderr : stdout);
                        free(last);
                        last = TAKE_PTR(line);
                }
                if (json_is_true(json_object_get(g, "done")))
                        return 0;
                if (deadline >= 0 && ms_left(deadline) < RESIZE_POLL_MS) {
                        report(o, "resize: not done by the timeout (%s)", last);
                        return EXIT_UNREACHABLE;
                }
                sleep_ms(RESIZE_POLL_MS);
        }
}

/* `slurm-conf [-c FILE] [--suspend-time S] [--bindir DIR]`: read elasticd.yaml here (no
 * daemon needed) and print the slurm.conf part for it. */
static int slurm_conf_command(int argc, char **argv, struct options *o) {
        static const struct option longopts[] = {
                { "config", required_argument, NULL, 'c' },
                { "suspend-time", required_argument, NULL, 'S' },
                { "bindir", required_argument, NULL, 'b' },
                {}
        };
        struct slurmconf_options so = { .bindir = ELASTICD_BINDIR };
        const char *path = ELASTICD_CONFIG_PATH;
        _cleanup_(config_freep) struct config *c = NULL;
        _cleanup_free_ char *text = NULL, *error = NULL;
        char *end;
        int k;

        optind = 0;
        while ((k = getopt_long(argc, argv, "+c:S:b:", longopts, NULL)) >= 0)
                switch (k) {
                case 'b':
                        if (optarg[0] != '/' || strpbrk(optarg, " \t\n#"))
                                return usage_error(o, "slurm-conf: --bindir needs an absolute path without blanks or '#'"),
                                       EXIT_USAGE;
                        so.bindir = optarg;
                        break;
                case 'c':
                        path = optarg;
                        break;
                case 'S': {
                        unsigned long v;

                        errno = 0;
                        v = strtoul(optarg, &end, 10);
                        if (errno || end == optarg || *end || v == 0 || v > 31 * 24 * 3600)
                                return usage_error(o, "slurm-conf: --suspend-time needs seconds (1 to 2678400), not \"%s\"",
                                                   optarg), EXIT_USAGE;
                        so.suspend_time_s = (unsigned) v;
                        break;
                }
                default:
                        return usage_error(o, "slurm-conf: bad option"), EXIT_USAGE;
                }
        if (optind < argc)
                return usage_error(o, "slurm-conf takes no arguments besides its options (got \"%s\")", argv[optind]),
                       EXIT_USAGE;
        k = config_load(path, &c, &error);
        if (k < 0) {
                fprintf(stderr, "%s: %s", o->prog, error ? error : strerror(-k));
                if (!error || !*error || error[strlen(error) - 1] != '\n')
                        fputc('\n', stderr);
                return EXIT_REFUSED;
        }
        k = slurmconf_render(c, &so, &text, &error);
        if (k < 0) {
                report(o, "slurm-conf: %s", error ? error : strerror(-k));
                return EXIT_REFUSED;
        }
        fputs(text, stdout);
        return fflush(stdout) == 0 ? 0 : EXIT_REFUSED;
}

/* Send R and show the reply; returns the exit status. A hook retries `busy`
 * (nothing was recorded) until its deadline: slurmctld does not retry a
 * failed ResumeProgram, the nodes would just time out. */
static int run(const struct options *o, enum output_kind kind, struct protocol_request *r) {
        const struct output *out = o->json ? &json_output : &text_output;
        int64_t deadline = o->timeout_ms < 0 ? -1 : now_ms() + o->timeout_ms;
        int backoff_ms = 100;

        for (;;) {
                _cleanup_(protocol_reply_freep) struct protocol_reply *reply = NULL;
                struct protocol_error perr = {};
                char why[PATH_MAX + 512];
                json_t *request = NULL;
                int k;

                k = protocol_request_to_json(r, &request, &perr);
                if (k < 0) {
                        /* Only our arguments can make the request invalid. */
                        _cleanup_free_ char *what = o->hook ? request_what(r) : NULL;
                        report(o, "%s%s%s", k == -EINVAL ? perr.message : strerror(-k), what ? "; " : "",
                               what ? what : "");
                        return EXIT_USAGE;
                }
                k = client_exchange(o, deadline, request, &reply, why, sizeof(why));
                json_decref(request);
                if (k < 0) {
                        _cleanup_free_ char *what = o->hook ? request_what(r) : NULL;
                        report(o, "%s%s%s", why, what ? "; " : "", what ? what : "");
                        return kind == OUTPUT_CHECK ? EXIT_REFUSED : EXIT_UNREACHABLE;
                }
                if (reply->ok && r->type == PROTOCOL_REQUEST_RESIZE && r->wait) {
                        const char *group = json_string_value(json_object_get(reply->result, "group"));

                        k = output_show(out, kind, o, reply);
                        return k != 0 || !group ? k : resize_wait(o, group);
                }
                if (reply->ok)
                        return output_show(out, kind, o, reply);

                if (o->hook && strcmp(reply->error_code, "busy") == 0 &&
                    (deadline < 0 || ms_left(deadline) > backoff_ms)) {
                        sleep_ms(backoff_ms);
                        backoff_ms = backoff_ms >= 1000 ? 2000 : backoff_ms * 2;
                        continue;
                }
                /* Too big for the daemon's frame limit: the resume file is only
                 * a placement hint, so send the nodes without it. */
                if (o->hook && strcmp(reply->error_code, "bad_frame") == 0 && r->resume_file) {
                        json_decref(r->resume_file);
                        r->resume_file = NULL;
                        free(r->resume_file_error);
                        r->resume_file_error = strdup("SLURM_RESUME_FILE dropped: elasticd refused the request as too large");
                        continue;
                }
                if (o->hook) {
                        _cleanup_free_ char *what = request_what(r);
                        report(o, "elasticd at %s refused it: %s: %s (request %s)%s%s", o->socket_path,
                               reply->error_code, reply->error_message, reply->id ? reply->id : "-",
                               what ? "; " : "", what ? what : "");
                } else
                        report(o, "%s: %s (request %s)", reply->error_code, reply->error_message,
                               reply->id ? reply->id : "-");
                return EXIT_REFUSED;
        }
}

int main(int argc, char **argv) {
        _cleanup_(protocol_request_freep) struct protocol_request *r = NULL;
        struct options o = {
                .prog = "elasticctl",
                .socket_path = ELASTICD_SOCKET_PATH,
                .timeout_ms = CLI_TIMEOUT_MS,
        };
        const struct command *cmd = NULL;
        const char *env;
        int k;

        fds_ensure_std();
        signal(SIGPIPE, SIG_IGN);
        if (argc > 0 && argv[0] && *argv[0]) {
                const char *slash = strrchr(argv[0], '/');
                o.prog = slash ? slash + 1 : argv[0];
        }
        env = getenv("ELASTICD_SOCKET");
        if (env && *env)
                o.socket_path = env;

        r = calloc(1, sizeof(*r));
        if (!r)
                return EXIT_REFUSED;
        r->version = PROTOCOL_VERSION;

        for (size_t i = 0; i < ELEMENTSOF(hooks); i++)
                if (strcmp(o.prog, hooks[i].prog) == 0) {
                        o.hook = true;
                        r->type = hooks[i].type;
                }

        if (o.hook) {
                unsigned max_args = r->type == PROTOCOL_REQUEST_REBOOT ? 3 : 2;

                openlog(o.prog, LOG_PID, LOG_DAEMON);
                o.timeout_ms = HOOK_TIMEOUT_MS;
                env = getenv("ELASTICD_TIMEOUT");
                if (env && *env && timeout_parse(env, &o.timeout_ms) < 0)
                        report(&o, "ignoring ELASTICD_TIMEOUT=\"%s\": not a number of seconds", env);
                if (argc < 2 || !*argv[1]) {
                        report(&o, "no hostlist argument: slurmctld runs this as %s HOSTLIST%s",
                               o.prog, r->type == PROTOCOL_REQUEST_REBOOT ? " [FEATURES]" : "");
                        return EXIT_USAGE;
                }
                if ((unsigned) argc > max_args)
                        report(&o, "ignoring %d extra arguments", argc - (int) max_args);
                r->nodes = strdup(argv[1]);
                if (r->type == PROTOCOL_REQUEST_REBOOT && argc > 2)
                        r->features = strdup(argv[2]);
                hook_environment(r);
                if (!r->nodes)
                        return EXIT_REFUSED;
        } else {
                env = getenv("ELASTICD_TIMEOUT");
                if (env && *env) {
                        if (timeout_parse(env, &o.timeout_ms) < 0) {
                                usage_error(&o, "ELASTICD_TIMEOUT needs a number of seconds, not \"%s\"", env);
                                return EXIT_USAGE;
                        }
                        o.timeout_set = true;
                }
                k = parse_global(argc, argv, &o);
                if (k != 0)
                        return k > 0 ? 0 : EXIT_USAGE;
                if (optind >= argc) {
                        usage_error(&o, "no command given");
                        return EXIT_USAGE;
                }
                if (strcmp(argv[optind], "slurm-conf") == 0)
                        return slurm_conf_command(argc - optind, argv + optind, &o);
                cmd = command_find(argv[optind]);
                if (!cmd) {
                        usage_error(&o, "unknown command \"%s\"", argv[optind]);
                        return EXIT_USAGE;
                }
                r->type = cmd->type;
                k = cmd->parse(argc - optind, argv + optind, r, &o);
                if (k < 0)
                        return EXIT_USAGE;
        }
        r->client = name_ok(o.prog) ? strdup(o.prog) : NULL;

        return run(&o, cmd ? cmd->output : OUTPUT_DONE, r);
}
