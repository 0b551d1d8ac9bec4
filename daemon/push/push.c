/* push.c - an SSH session (libssh2, non-blocking, every wait bounded by the
 * push's deadline) that checks the node's host key against the keys its
 * console printed, logs in with a key, copies files over SCP and runs
 * commands; plus the worker pool that runs pushes off the event loop. */
#include "push/push.h"

#include <errno.h>
#include <fcntl.h>
#include <libssh2.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util/fileread.h"
#include "util/strv.h"
#include "util/worker.h"

#define CONSOLE_BEGIN "-----BEGIN SSH HOST KEY KEYS-----"
#define CONSOLE_END "-----END SSH HOST KEY KEYS-----"

#define DEFAULT_CONNECT_TIMEOUT_USEC (10 * 1000000ULL)
/* Longest wait between polls of the socket, so a cancel is seen soon. */
#define WAIT_SLICE_MSEC 200
/* Pause between connection attempts while sshd is not up yet. */
#define RETRY_MIN_USEC (200 * 1000ULL)
#define RETRY_MAX_USEC (2 * 1000000ULL)
/* How much of a failing command's stderr goes into the reason. */
#define STDERR_TAIL 160
/* A file copied to a node (config.c checks the same at load). */
#define PUSH_FILE_MAX (64 * 1024 * 1024)

static uint64_t now_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000ULL + (uint64_t) ts.tv_nsec / 1000;
}

/* ---- base64 ------------------------------------------------------------ */

static int b64_value(char c) {
        if (c >= 'A' && c <= 'Z')
                return c - 'A';
        if (c >= 'a' && c <= 'z')
                return c - 'a' + 26;
        if (c >= '0' && c <= '9')
                return c - '0' + 52;
        if (c == '+')
                return 62;
        if (c == '/')
                return 63;
        return -1;
}

/* Strict: only the alphabet, '=' padding at the end, length a multiple of 4. */
static int b64_decode(const char *s, size_t len, unsigned char **ret, size_t *ret_len) {
        unsigned char *out;
        size_t n = 0, pad = 0;

        if (len == 0 || len % 4 != 0)
                return -EINVAL;
        while (pad < 2 && s[len - 1 - pad] == '=')
                pad++;
        out = malloc(len / 4 * 3);
        if (!out)
                return -ENOMEM;
        for (size_t i = 0; i < len; i += 4) {
                uint32_t v = 0;
                for (size_t j = 0; j < 4; j++) {
                        int d;
                        if (i + j >= len - pad) {
                                d = 0;
                        } else {
                                d = b64_value(s[i + j]);
                                if (d < 0) {
                                        free(out);
                                        return -EINVAL;
                                }
                        }
                        v = v << 6 | (uint32_t) d;
                }
                out[n++] = v >> 16 & 0xff;
                out[n++] = v >> 8 & 0xff;
                out[n++] = v & 0xff;
        }
        *ret_len = n - pad;
        *ret = out;
        return 0;
}

/* Unpadded, as OpenSSH prints SHA256 fingerprints. */
static void b64_encode(const unsigned char *in, size_t len, char *out) {
        static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        size_t o = 0;

        for (size_t i = 0; i < len; i += 3) {
                uint32_t v = (uint32_t) in[i] << 16;
                size_t k = len - i;
                if (k > 1)
                        v |= (uint32_t) in[i + 1] << 8;
                if (k > 2)
                        v |= in[i + 2];
                out[o++] = alphabet[v >> 18 & 63];
                out[o++] = alphabet[v >> 12 & 63];
                if (k > 1)
                        out[o++] = alphabet[v >> 6 & 63];
                if (k > 2)
                        out[o++] = alphabet[v & 63];
        }
        out[o] = '\0';
}

/* ---- host keys from the console ---------------------------------------- */

static const char *const hostkey_types[] = {
        "ssh-ed25519",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "ssh-rsa",
        "ssh-dss",
        "ssh-ed448",
        "sk-ssh-ed25519@openssh.com",
        "sk-ecdsa-sha2-nistp256@openssh.com",
};

static void hostkey_done(struct push_hostkey *k) {
        free(k->type);
        free(k->blob);
}

struct push_hostkeys *push_hostkeys_free(struct push_hostkeys *k) {
        if (!k)
                return NULL;
        for (size_t i = 0; i < k->n; i++)
                hostkey_done(&k->keys[i]);
        free(k->keys);
        free(k);
        return NULL;
}

/* The key type a wire-format blob names (its first string), or NULL. */
static bool blob_names_type(const unsigned char *blob, size_t len, const char *type) {
        size_t tl = strlen(type);
        uint32_t n;

        if (len < 4)
                return false;
        n = (uint32_t) blob[0] << 24 | (uint32_t) blob[1] << 16 | (uint32_t) blob[2] << 8 | blob[3];
        return n == tl && len > 4 + tl && memcmp(blob + 4, type, tl) == 0;
}

static bool is_space(char c) {
        return c == ' ' || c == '\t';
}

/* One line inside the block; 0 and *k filled, or -EINVAL for garbage. */
static int parse_key_line(const char *line, size_t len, struct push_hostkey *k) {
        const char *type = NULL, *b64, *end = line + len;
        size_t tl = 0, bl;
        unsigned char *blob;
        size_t blob_len;
        int r;

        /* The type is the first word that is a key type (a logger prefix may come first). */
        for (const char *p = line; p < end && !type; p++) {
                if (p != line && !is_space(p[-1]))
                        continue;
                for (size_t i = 0; i < ELEMENTSOF(hostkey_types); i++) {
                        size_t n = strlen(hostkey_types[i]);
                        if ((size_t) (end - p) > n && memcmp(p, hostkey_types[i], n) == 0 && is_space(p[n])) {
                                type = p;
                                tl = n;
                                break;
                        }
                }
        }
        if (!type)
                return -EINVAL;
        b64 = type + tl;
        while (b64 < end && is_space(*b64))
                b64++;
        bl = 0;
        while (b64 + bl < end && !is_space(b64[bl]))
                bl++;
        r = b64_decode(b64, bl, &blob, &blob_len);
        if (r < 0)
                return r;
        k->type = strndup(type, tl);
        if (!k->type) {
                free(blob);
                return -ENOMEM;
        }
        if (!blob_names_type(blob, blob_len, k->type)) {
                free(k->type);
                free(blob);
                k->type = NULL;
                return -EINVAL;
        }
        k->blob = blob;
        k->len = blob_len;
        return 0;
}

static bool line_has(const char *line, size_t len, const char *marker) {
        size_t m = strlen(marker);
        for (size_t i = 0; i + m <= len; i++)
                if (memcmp(line + i, marker, m) == 0)
                        return true;
        return false;
}

int push_parse_console_hostkeys(const char *console, struct push_hostkeys **ret, char **ret_error) {
        _cleanup_(push_hostkeys_freep) struct push_hostkeys *done = NULL, *cur = NULL;
        size_t skipped = 0, done_skipped = 0;
        const char *p = console;

        if (!console)
                return PUSH_CONSOLE_NO_KEYS;

        while (*p) {
                const char *nl = strchr(p, '\n');
                size_t len = nl ? (size_t) (nl - p) : strlen(p);
                bool last = !nl;

                while (len > 0 && p[len - 1] == '\r')
                        len--;
                if (line_has(p, len, CONSOLE_BEGIN)) {
                        /* a new block (a newer boot, or a restart after a cut) */
                        push_hostkeys_free(cur);
                        cur = calloc(1, sizeof(*cur));
                        if (!cur)
                                return -ENOMEM;
                        skipped = 0;
                } else if (cur && line_has(p, len, CONSOLE_END)) {
                        push_hostkeys_free(done);
                        done = TAKE_PTR(cur);
                        done_skipped = skipped;
                } else if (cur && !last) {
                        /* the last line without '\n' may be cut short: not trusted */
                        struct push_hostkey k = {};
                        int r = cur->n < PUSH_HOSTKEYS_MAX ? parse_key_line(p, len, &k) : -E2BIG;
                        if (r == -ENOMEM)
                                return r;
                        if (r < 0) {
                                skipped++;
                        } else {
                                struct push_hostkey *a = reallocarray(cur->keys, cur->n + 1, sizeof(*a));
                                if (!a) {
                                        hostkey_done(&k);
                                        return -ENOMEM;
                                }
                                cur->keys = a;
                                cur->keys[cur->n++] = k;
                        }
                }
                if (last)
                        break;
                p = nl + 1;
        }

        /* The newest block is still being printed (or cut): wait for it. */
        if (cur || !done)
                return PUSH_CONSOLE_NO_KEYS;
        if (done->n == 0) {
                if (ret_error && asprintf(ret_error, "the host key block on the console holds no valid key (%zu line%s not understood)",
                                          done_skipped, done_skipped == 1 ? "" : "s") < 0)
                        return -ENOMEM;
                return -EBADMSG;
        }
        *ret = TAKE_PTR(done);
        return 0;
}

/* ---- the session --------------------------------------------------------- */

static pthread_mutex_t libssh2_lock = PTHREAD_MUTEX_INITIALIZER;

/* libssh2_init/exit count references but are not thread-safe. */
static int library_ref(void) {
        int r;
        pthread_mutex_lock(&libssh2_lock);
        r = libssh2_init(0);
        pthread_mutex_unlock(&libssh2_lock);
        return r == 0 ? 0 : -EIO;
}

static void library_unref(void) {
        pthread_mutex_lock(&libssh2_lock);
        libssh2_exit();
        pthread_mutex_unlock(&libssh2_lock);
}

struct push_ctx {
        const struct push_spec *spec;
        push_progress_fn progress;
        void *userdata;
        char where[300];          /* "sshd at ADDR:PORT" */
        uint64_t deadline;        /* the push's */
        uint64_t wait_deadline;   /* the current wait's (<= deadline) */
        int fd;
        LIBSSH2_SESSION *session;
        int abort;                /* -ETIMEDOUT or -ECANCELED when a wait gave up */
        char *error;
};

_printf_(3, 4) static int fail(struct push_ctx *x, int r, const char *fmt, ...) {
        va_list ap;

        if (x->error)
                return r;
        va_start(ap, fmt);
        if (vasprintf(&x->error, fmt, ap) < 0)
                x->error = NULL;
        va_end(ap);
        return r;
}

static bool cancelled(const struct push_ctx *x) {
        return x->spec->cancel && atomic_load(x->spec->cancel);
}

/* Wait until the socket is ready in the directions libssh2 is blocked on.
 * 0 to try again, or sets x->abort and returns it. */
static int wait_socket(struct push_ctx *x, int fd, short events) {
        struct pollfd pfd = { .fd = fd, .events = events };
        uint64_t now = now_usec();
        int ms;

        if (cancelled(x))
                return x->abort = -ECANCELED;
        if (now >= x->wait_deadline)
                return x->abort = -ETIMEDOUT;
        ms = (int) ((x->wait_deadline - now + 999) / 1000);
        if (ms > WAIT_SLICE_MSEC)
                ms = WAIT_SLICE_MSEC;
        if (poll(&pfd, 1, ms) < 0 && errno != EINTR)
                return x->abort = negative_errno();
        return 0;
}

static int wait_session(struct push_ctx *x) {
        int dir = libssh2_session_block_directions(x->session);
        short events = 0;

        if (dir & LIBSSH2_SESSION_BLOCK_INBOUND)
                events |= POLLIN;
        if (dir & LIBSSH2_SESSION_BLOCK_OUTBOUND)
                events |= POLLOUT;
        return wait_socket(x, x->fd, events ? events : POLLIN);
}

/* Repeat a libssh2 call returning an int while it would block. A wait that
 * gives up makes it LIBSSH2_ERROR_TIMEOUT with x->abort set. */
#define SSH_INT(x, expr)                                                        \
        ({                                                                      \
                int _r;                                                         \
                while ((_r = (expr)) == LIBSSH2_ERROR_EAGAIN)                   \
                        if (wait_session(x) < 0) {                              \
                                _r = LIBSSH2_ERROR_TIMEOUT;                     \
                                break;                                          \
                        }                                                       \
                _r;                                                             \
        })

/* The same for calls returning a pointer. */
#define SSH_PTR(x, expr)                                                               \
        ({                                                                             \
                __typeof__(expr) _p;                                                   \
                while (!(_p = (expr)) &&                                               \
                       libssh2_session_last_errno((x)->session) == LIBSSH2_ERROR_EAGAIN) \
                        if (wait_session(x) < 0)                                       \
                                break;                                                 \
                _p;                                                                    \
        })

static const char *ssh_message(struct push_ctx *x) {
        char *msg = NULL;

        if (x->abort == -ETIMEDOUT)
                return "timed out";
        if (x->abort == -ECANCELED)
                return "cancelled";
        libssh2_session_last_error(x->session, &msg, NULL, 0);
        return msg && *msg ? msg : "unknown libssh2 error";
}

/* Fail with "WHAT: <libssh2's or the wait's reason>". */
static int ssh_fail(struct push_ctx *x, const char *what) {
        int r = x->abort ? x->abort : -EIO;
        return fail(x, r, "%s: %s", what, ssh_message(x));
}

/* Report step NAME, "NAME ARG" when ARG is given. */
static void step(struct push_ctx *x, const char *name, const char *arg) {
        char buf[512];

        if (!x->progress)
                return;
        snprintf(buf, sizeof(buf), "%s%s%s", name, arg ? " " : "", arg ? arg : "");
        x->progress(buf, x->userdata);
}

/* ---- connecting ---------------------------------------------------------- */

static bool errno_retriable(int e) {
        return e == ECONNREFUSED || e == ETIMEDOUT || e == EHOSTUNREACH || e == ENETUNREACH ||
               e == EHOSTDOWN || e == ECONNRESET || e == ECONNABORTED || e == EPIPE;
}

/* A TCP connection, or a negative errno (the last address's). */
static int tcp_connect(struct push_ctx *x, uint64_t until) {
        struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV };
        struct addrinfo *ai = NULL;
        char port[8];
        int r, last = -EHOSTUNREACH;

        snprintf(port, sizeof(port), "%u", x->spec->port ? x->spec->port : 22);
        r = getaddrinfo(x->spec->address, port, &hints, &ai);
        if (r != 0)
                return r == EAI_AGAIN ? -EAGAIN : r == EAI_SYSTEM ? negative_errno() : -EADDRNOTAVAIL;

        for (struct addrinfo *a = ai; a; a = a->ai_next) {
                _cleanup_close_ int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
                                                a->ai_protocol);
                int err = 0;
                socklen_t el = sizeof(err);

                if (fd < 0) {
                        last = negative_errno();
                        continue;
                }
                if (connect(fd, a->ai_addr, a->ai_addrlen) < 0) {
                        if (errno != EINPROGRESS) {
                                last = negative_errno();
                                continue;
                        }
                        x->wait_deadline = until;
                        for (;;) {
                                struct pollfd pfd = { .fd = fd, .events = POLLOUT };
                                if (wait_socket(x, fd, POLLOUT) < 0) {
                                        if (x->abort == -ETIMEDOUT && now_usec() < x->deadline)
                                                x->abort = 0;   /* this attempt only */
                                        err = ETIMEDOUT;
                                        break;
                                }
                                if (poll(&pfd, 1, 0) > 0)
                                        break;
                        }
                        if (x->abort)
                                break;
                        if (err == 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0)
                                err = errno;
                        if (err != 0) {
                                last = -err;
                                continue;
                        }
                }
                freeaddrinfo(ai);
                return TAKE_FD(fd);
        }
        freeaddrinfo(ai);
        return x->abort ? x->abort : last;
}

static void session_close(struct push_ctx *x) {
        if (x->session) {
                /* best effort, bounded: the session may already be broken */
                uint64_t saved = x->wait_deadline;
                int abort = x->abort;
                x->wait_deadline = now_usec() + 500 * 1000;
                if (x->wait_deadline > x->deadline)
                        x->wait_deadline = x->deadline;
                (void) SSH_INT(x, libssh2_session_disconnect(x->session, "elasticd: done"));
                (void) SSH_INT(x, libssh2_session_free(x->session));
                x->session = NULL;
                x->wait_deadline = saved;
                x->abort = abort;
        }
        if (x->fd >= 0) {
                close(x->fd);
                x->fd = -1;
        }
}

/* Host key algorithms to offer: the types the console listed. */
static int hostkey_prefs(const struct push_hostkeys *k, char **ret) {
        char buf[1024] = "";

        for (size_t i = 0; i < k->n; i++) {
                const char *add = strcmp(k->keys[i].type, "ssh-rsa") == 0 ? "rsa-sha2-512,rsa-sha2-256,ssh-rsa" : k->keys[i].type;
                if (strstr(buf, add))
                        continue;
                if (strlen(buf) + strlen(add) + 2 > sizeof(buf))
                        break;
                if (*buf)
                        strcat(buf, ",");
                strcat(buf, add);
        }
        *ret = strdup(buf);
        return *ret ? 0 : -ENOMEM;
}

/* TCP + SSH handshake, retried while sshd is not up, until the deadline. */
static int connect_session(struct push_ctx *x) {
        uint64_t pause = RETRY_MIN_USEC, timeout = x->spec->connect_timeout_usec;
        _cleanup_free_ char *prefs = NULL;
        const char *last = "no attempt";
        char lastbuf[256];
        unsigned attempts = 0;
        int r;

        if (timeout == 0)
                timeout = DEFAULT_CONNECT_TIMEOUT_USEC;
        r = hostkey_prefs(x->spec->hostkeys, &prefs);
        if (r < 0)
                return fail(x, r, "out of memory");

        for (;;) {
                uint64_t now = now_usec(), until = now + timeout;

                if (cancelled(x))
                        return fail(x, -ECANCELED, "cancelled");
                if (now >= x->deadline)
                        return fail(x, -ETIMEDOUT, "%s not reachable before the deadline (%u attempt%s, last: %s)",
                                    x->where, attempts, attempts == 1 ? "" : "s", last);
                if (until > x->deadline)
                        until = x->deadline;
                attempts++;

                r = tcp_connect(x, until);
                if (r == -ECANCELED)
                        return fail(x, r, "cancelled");
                if (r < 0 && !errno_retriable(-r) && r != -EAGAIN)
                        return fail(x, r, "connecting to %s: %s", x->where, strerror(-r));
                if (r >= 0) {
                        x->fd = r;
                        x->session = libssh2_session_init();
                        if (!x->session)
                                return fail(x, -ENOMEM, "libssh2: cannot create a session");
                        libssh2_session_set_blocking(x->session, 0);
                        /* a backstop: our own waits already bound every call */
                        libssh2_session_set_timeout(x->session, (long) ((x->deadline - now) / 1000 + 1));
                        if (libssh2_session_method_pref(x->session, LIBSSH2_METHOD_HOSTKEY, prefs) != 0)
                                return fail(x, -EKEYREJECTED, "none of the host key types on the console (%s) is supported by libssh2", prefs);
                        x->wait_deadline = until;
                        r = SSH_INT(x, libssh2_session_handshake(x->session, x->fd));
                        if (r == 0)
                                return 0;
                        if (x->abort == -ECANCELED)
                                return fail(x, -ECANCELED, "cancelled");
                        if (r == LIBSSH2_ERROR_KEX_FAILURE)
                                return ssh_fail(x, "SSH key exchange with the node failed");
                        /* sshd starting up or overloaded (MaxStartups): try again */
                        snprintf(lastbuf, sizeof(lastbuf), "SSH handshake: %s", ssh_message(x));
                        last = lastbuf;
                        x->abort = 0;
                        session_close(x);
                } else {
                        snprintf(lastbuf, sizeof(lastbuf), "%s", strerror(-r));
                        last = lastbuf;
                }

                /* pause, unless the attempt itself took that long */
                now = now_usec();
                if (now < x->deadline) {
                        uint64_t until_next = now + pause;
                        if (until_next > x->deadline)
                                until_next = x->deadline;
                        while (!cancelled(x) && now_usec() < until_next) {
                                uint64_t left = until_next - now_usec();
                                struct timespec ts = { .tv_nsec = (long) ((left > 100000 ? 100000 : left) * 1000) };
                                nanosleep(&ts, NULL);
                        }
                }
                pause = pause * 2 > RETRY_MAX_USEC ? RETRY_MAX_USEC : pause * 2;
        }
}

/* ---- host key, login ------------------------------------------------------ */

static int check_hostkey(struct push_ctx *x) {
        const struct push_hostkeys *k = x->spec->hostkeys;
        const unsigned char *blob;
        const char *hash;
        char fp[64] = "?", type[64] = "unknown type";
        size_t len = 0;
        int t;

        blob = (const unsigned char *) libssh2_session_hostkey(x->session, &len, &t);
        if (!blob || len == 0)
                return ssh_fail(x, "no host key from the node");
        for (size_t i = 0; i < k->n; i++)
                if (k->keys[i].len == len && memcmp(k->keys[i].blob, blob, len) == 0)
                        return 0;

        hash = libssh2_hostkey_hash(x->session, LIBSSH2_HOSTKEY_HASH_SHA256);
        if (hash)
                b64_encode((const unsigned char *) hash, 32, fp);
        if (len > 4) {
                uint32_t n = (uint32_t) blob[0] << 24 | (uint32_t) blob[1] << 16 | (uint32_t) blob[2] << 8 | blob[3];
                if (n < sizeof(type) && n <= len - 4) {
                        memcpy(type, blob + 4, n);
                        type[n] = '\0';
                        for (char *c = type; *c; c++)
                                if (*c < 0x21 || *c > 0x7e)
                                        *c = '?';
                }
        }
        return fail(x, -EKEYREJECTED,
                    "host key mismatch: %s presented %s SHA256:%s, which is not among the %zu key%s the instance printed on its console",
                    x->where, type, fp, k->n, k->n == 1 ? "" : "s");
}

static int authenticate(struct push_ctx *x) {
        const char *user = x->spec->user ? x->spec->user : "root";
        int r;

        x->wait_deadline = x->deadline;
        r = SSH_INT(x, libssh2_userauth_publickey_frommemory(x->session, user, strlen(user), NULL, 0,
                                                             x->spec->private_key_data, x->spec->private_key_len,
                                                             NULL));
        if (r == 0)
                return 0;
        if (x->abort)
                return ssh_fail(x, "logging in");
        if (r == LIBSSH2_ERROR_AUTHENTICATION_FAILED || r == LIBSSH2_ERROR_PUBLICKEY_UNVERIFIED)
                return fail(x, -EACCES, "%s refused the key %s for user %s (is its public key in the node's authorized_keys?)",
                            x->where, x->spec->private_key, user);
        if (r == LIBSSH2_ERROR_FILE)
                return fail(x, -EINVAL, "private key %s cannot be used (a passphrase-less OpenSSH or PEM key is needed): %s",
                            x->spec->private_key, ssh_message(x));
        return ssh_fail(x, "logging in");
}

/* ---- commands ------------------------------------------------------------- */

/* 'S' for the node's POSIX shell. */
static char *shell_quote(const char *s) {
        size_t n = 3;
        char *q, *o;

        for (const char *p = s; *p; p++)
                n += *p == '\'' ? 4 : 1;
        q = o = malloc(n);
        if (!q)
                return NULL;
        *o++ = '\'';
        for (const char *p = s; *p; p++) {
                if (*p == '\'') {
                        memcpy(o, "'\\''", 4);
                        o += 4;
                } else {
                        *o++ = *p;
                }
        }
        *o++ = '\'';
        *o = '\0';
        return q;
}

/* The end of a command's stderr, on one printable line. */
struct tail {
        char buf[STDERR_TAIL];
        size_t n;
};

static void tail_add(struct tail *t, const char *data, size_t len) {
        if (len >= sizeof(t->buf)) {
                data += len - sizeof(t->buf);
                len = sizeof(t->buf);
        }
        if (t->n + len > sizeof(t->buf)) {
                size_t drop = t->n + len - sizeof(t->buf);
                memmove(t->buf, t->buf + drop, t->n - drop);
                t->n -= drop;
        }
        memcpy(t->buf + t->n, data, len);
        t->n += len;
}

static void tail_text(const struct tail *t, char *out, size_t size) {
        size_t o = 0;
        bool space = true;

        for (size_t i = 0; i < t->n && o + 1 < size; i++) {
                unsigned char c = (unsigned char) t->buf[i];
                if (c < 0x20 || c == 0x7f) {
                        if (!space)
                                out[o++] = c == '\n' ? ';' : ' ';
                        if (c == '\n' && o + 1 < size)
                                out[o++] = ' ';
                        space = true;
                        continue;
                }
                out[o++] = (char) c;
                space = c == ' ';
        }
        while (o > 0 && (out[o - 1] == ' ' || out[o - 1] == ';'))
                o--;
        out[o] = '\0';
}

/* Run CMD, draining its output; 0 with its exit status (128+signal when
 * killed by one) and the tail of its stderr. */
static int exec_command(struct push_ctx *x, const char *cmd, const char *what, int *ret_status, struct tail *err) {
        LIBSSH2_CHANNEL *ch;
        char buf[16384];
        char *signal = NULL;
        int r;

        x->wait_deadline = x->deadline;
        ch = SSH_PTR(x, libssh2_channel_open_session(x->session));
        if (!ch)
                return ssh_fail(x, what);
        r = SSH_INT(x, libssh2_channel_exec(ch, cmd));
        if (r == 0)
                r = SSH_INT(x, libssh2_channel_send_eof(ch));
        while (r == 0) {
                ssize_t o = libssh2_channel_read(ch, buf, sizeof(buf));
                ssize_t e = libssh2_channel_read_stderr(ch, buf, sizeof(buf));
                if (e > 0)
                        tail_add(err, buf, (size_t) e);
                if (o > 0 || e > 0)
                        continue;
                if ((o < 0 && o != LIBSSH2_ERROR_EAGAIN) || (e < 0 && e != LIBSSH2_ERROR_EAGAIN)) {
                        r = (int) (o < 0 && o != LIBSSH2_ERROR_EAGAIN ? o : e);
                        break;
                }
                if (libssh2_channel_eof(ch))
                        break;
                if (wait_session(x) < 0)
                        r = LIBSSH2_ERROR_TIMEOUT;
        }
        if (r == 0)
                r = SSH_INT(x, libssh2_channel_close(ch));
        if (r == 0)
                r = SSH_INT(x, libssh2_channel_wait_closed(ch));
        if (r != 0) {
                r = ssh_fail(x, what);
                (void) libssh2_channel_free(ch);
                return r;
        }
        *ret_status = libssh2_channel_get_exit_status(ch);
        if (libssh2_channel_get_exit_signal(ch, &signal, NULL, NULL, NULL, NULL, NULL) == 0 && signal) {
                /* the channel has no number for it: report "killed" */
                if (*ret_status == 0)
                        *ret_status = 128;
                libssh2_free(x->session, signal);
        }
        (void) SSH_INT(x, libssh2_channel_free(ch));
        return 0;
}

static int run_command(struct push_ctx *x, const char *cmd) {
        struct tail err = {};
        char text[STDERR_TAIL + 32];
        int status = 0, r;

        r = exec_command(x, cmd, "running a command", &status, &err);
        if (r < 0)
                return r;
        if (status == 0)
                return 0;
        tail_text(&err, text, sizeof(text));
        return fail(x, -EPROTO, "command '%.100s' exited with status %d%s%s", cmd, status, *text ? ": " : "", text);
}

/* ---- files ------------------------------------------------------------------ */

static int copy_file(struct push_ctx *x, const struct push_file *f) {
        _cleanup_free_ char *tmp = NULL, *qtmp = NULL, *qdest = NULL, *owner = NULL, *cmd = NULL, *problem = NULL;
        _cleanup_close_ int fd = -1;
        LIBSSH2_CHANNEL *ch;
        struct stat st;
        uint64_t rnd = 0;
        struct tail err = {};
        char text[STDERR_TAIL + 32];
        int status = 0, r;

        fd = fileread_open(f->src, 0, PUSH_FILE_MAX, &st, &problem);
        if (fd < 0)
                return problem ? fail(x, fd, "copy %s: %s", f->dest, problem)
                               : fail(x, fd, "copy %s: %s: %s", f->dest, f->src, strerror(-fd));

        if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
                rnd = now_usec() ^ (uint64_t) getpid();
        if (asprintf(&tmp, "%s.elasticd-%016llx", f->dest, (unsigned long long) rnd) < 0)
                return fail(x, -ENOMEM, "out of memory");

        /* 0600 until chown/chmod: a secret is never readable by others on the way */
        x->wait_deadline = x->deadline;
        ch = SSH_PTR(x, libssh2_scp_send64(x->session, tmp, 0600, (libssh2_int64_t) st.st_size, 0, 0));
        if (!ch) {
                if (x->abort)
                        return ssh_fail(x, "copy");
                return fail(x, -EIO, "copy %s: the node refused %s (does the directory exist?): %s", f->dest, tmp,
                            ssh_message(x));
        }
        r = 0;
        for (off_t done = 0; done < st.st_size && r == 0;) {
                char buf[32768];
                ssize_t n = read(fd, buf, sizeof(buf));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0) {
                        r = n < 0 ? negative_errno() : -EIO;
                        fail(x, r, "copy %s: reading %s: %s", f->dest, f->src,
                             n < 0 ? strerror(-r) : "file shrank while being copied");
                        break;
                }
                for (ssize_t w = 0; w < n;) {
                        ssize_t k = libssh2_channel_write(ch, buf + w, (size_t) (n - w));
                        if (k == LIBSSH2_ERROR_EAGAIN) {
                                if (wait_session(x) < 0) {
                                        r = ssh_fail(x, "copy");
                                        break;
                                }
                                continue;
                        }
                        if (k < 0) {
                                r = ssh_fail(x, "copy");
                                break;
                        }
                        w += k;
                }
                done += n;
        }
        /* the scp protocol's closing acknowledgement; without it scp -t exits 1 */
        while (r == 0) {
                ssize_t k = libssh2_channel_write(ch, "", 1);
                if (k == 1)
                        break;
                if (k != LIBSSH2_ERROR_EAGAIN || wait_session(x) < 0)
                        r = ssh_fail(x, "copy");
        }
        if (r == 0 && (SSH_INT(x, libssh2_channel_send_eof(ch)) != 0 || SSH_INT(x, libssh2_channel_wait_eof(ch)) != 0 ||
                       SSH_INT(x, libssh2_channel_wait_closed(ch)) != 0))
                r = ssh_fail(x, "copy");
        if (r == 0 && libssh2_channel_get_exit_status(ch) != 0)
                r = fail(x, -EPROTO, "copy %s: scp on the node exited with status %d", f->dest,
                         libssh2_channel_get_exit_status(ch));
        (void) libssh2_channel_free(ch);

        qtmp = shell_quote(tmp);
        qdest = shell_quote(f->dest);
        if (f->owner || f->group) {
                _cleanup_free_ char *o = NULL;
                if (asprintf(&o, "%s%s%s", f->owner ? f->owner : "", f->group ? ":" : "", f->group ? f->group : "") < 0)
                        o = NULL;
                owner = o ? shell_quote(o) : NULL;
                if (!owner)
                        return fail(x, -ENOMEM, "out of memory");
        }
        if (!qtmp || !qdest)
                return fail(x, -ENOMEM, "out of memory");
        if (r < 0) {
                /* leave nothing behind; the first error is the one reported */
                if (asprintf(&cmd, "rm -f -- %s", qtmp) >= 0 && !x->abort)
                        (void) exec_command(x, cmd, "removing a partial copy", &status, &err);
                return r;
        }

        if (owner)
                r = asprintf(&cmd, "{ chown -- %s %s && chmod %04o %s && mv -f -- %s %s; } || { rc=$?; rm -f -- %s; exit $rc; }",
                             owner, qtmp, (unsigned) (f->mode & 07777), qtmp, qtmp, qdest, qtmp);
        else
                r = asprintf(&cmd, "{ chmod %04o %s && mv -f -- %s %s; } || { rc=$?; rm -f -- %s; exit $rc; }",
                             (unsigned) (f->mode & 07777), qtmp, qtmp, qdest, qtmp);
        if (r < 0) {
                cmd = NULL;
                return fail(x, -ENOMEM, "out of memory");
        }
        r = exec_command(x, cmd, "installing a copied file", &status, &err);
        if (r < 0)
                return r;
        if (status != 0) {
                tail_text(&err, text, sizeof(text));
                return fail(x, -EPROTO, "copy %s: setting owner/mode and renaming it into place failed with status %d%s%s",
                            f->dest, status, *text ? ": " : "", text);
        }
        return 0;
}

/* ---- push_run ---------------------------------------------------------------- */

static int check_spec(const struct push_spec *s, char **ret_error) {
        const char *bad = NULL;

        if (!s->address || !*s->address)
                bad = "no address";
        else if (!s->private_key || !*s->private_key || !s->private_key_data || s->private_key_len == 0)
                bad = "no private key";
        else if (!s->hostkeys || s->hostkeys->n == 0)
                bad = "no accepted host key";
        else if (s->deadline_usec == 0)
                bad = "no deadline";
        for (size_t i = 0; !bad && i < s->n_files; i++)
                if (!s->files[i].src || !s->files[i].dest || s->files[i].dest[0] != '/')
                        bad = "a file without a source or an absolute destination";
        if (!bad)
                return 0;
        if (ret_error)
                *ret_error = strdup(bad);
        return -EINVAL;
}

int push_run(const struct push_spec *spec, push_progress_fn progress, void *userdata, char **ret_error) {
        struct push_ctx x = { .spec = spec, .progress = progress, .userdata = userdata, .fd = -1 };
        int r;

        r = check_spec(spec, ret_error);
        if (r < 0)
                return r;
        x.deadline = spec->deadline_usec;
        if (strchr(spec->address, ':'))
                snprintf(x.where, sizeof(x.where), "sshd at [%s]:%u", spec->address, spec->port ? spec->port : 22);
        else
                snprintf(x.where, sizeof(x.where), "sshd at %s:%u", spec->address, spec->port ? spec->port : 22);

        r = library_ref();
        if (r < 0) {
                if (ret_error)
                        *ret_error = strdup("libssh2 failed to initialise");
                return r;
        }

        step(&x, "connect", NULL);
        r = connect_session(&x);
        if (r >= 0) {
                step(&x, "hostkey", NULL);
                r = check_hostkey(&x);
        }
        if (r >= 0) {
                step(&x, "auth", NULL);
                r = authenticate(&x);
        }
        for (size_t i = 0; r >= 0 && i < spec->n_files; i++) {
                if (cancelled(&x)) {
                        r = fail(&x, -ECANCELED, "cancelled");
                        break;
                }
                step(&x, "copy", spec->files[i].dest);
                r = copy_file(&x, &spec->files[i]);
        }
        for (char *const *c = spec->commands; r >= 0 && c && *c; c++) {
                if (cancelled(&x)) {
                        r = fail(&x, -ECANCELED, "cancelled");
                        break;
                }
                step(&x, "run", *c);
                r = run_command(&x, *c);
        }

        session_close(&x);
        library_unref();
        if (r < 0 && ret_error)
                *ret_error = TAKE_PTR(x.error);
        free(x.error);
        return r < 0 ? r : 0;
}

/* ---- pushes on a worker pool -------------------------------------------------- */

struct pusher {
        struct worker_pool *pool;
        atomic_bool cancel;
};

/* One push with its own copy of the spec. */
struct push_job {
        struct push_spec spec;
        char *address, *user, *private_key, *private_key_data;
        struct push_hostkeys *hostkeys;
        struct push_file *files;
        char **commands;
        push_done_fn cb;
        void *userdata;
        /* filled on the worker */
        int r;
        char *error;
        char **steps;
        size_t n_steps;
        uint64_t start, step_start;
};

static struct push_job *job_free(struct push_job *j) {
        if (!j)
                return NULL;
        free(j->address);
        free(j->user);
        free(j->private_key);
        secret_free(j->private_key_data, j->spec.private_key_len);
        push_hostkeys_free(j->hostkeys);
        for (size_t i = 0; j->files && i < j->spec.n_files; i++) {
                free((char *) j->files[i].src);
                free((char *) j->files[i].dest);
                free((char *) j->files[i].owner);
                free((char *) j->files[i].group);
        }
        free(j->files);
        strv_free(j->commands);
        free(j->error);
        strv_free(j->steps);
        free(j);
        return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(struct push_job *, job_free);

static int dup_or_null(const char *s, char **ret) {
        *ret = NULL;
        if (!s)
                return 0;
        *ret = strdup(s);
        return *ret ? 0 : -ENOMEM;
}

static int job_copy_spec(struct push_job *j, const struct push_spec *s) {
        size_t n_cmds = strv_length(s->commands);

        if (dup_or_null(s->address, &j->address) < 0 || dup_or_null(s->user, &j->user) < 0 ||
            dup_or_null(s->private_key, &j->private_key) < 0)
                return -ENOMEM;
        j->private_key_data = malloc(s->private_key_len);
        if (!j->private_key_data)
                return -ENOMEM;
        memcpy(j->private_key_data, s->private_key_data, s->private_key_len);
        j->spec.private_key_len = s->private_key_len;

        j->hostkeys = calloc(1, sizeof(*j->hostkeys));
        if (!j->hostkeys)
                return -ENOMEM;
        j->hostkeys->keys = calloc(s->hostkeys->n, sizeof(struct push_hostkey));
        if (!j->hostkeys->keys)
                return -ENOMEM;
        for (size_t i = 0; i < s->hostkeys->n; i++) {
                const struct push_hostkey *k = &s->hostkeys->keys[i];
                struct push_hostkey *c = &j->hostkeys->keys[i];
                j->hostkeys->n++;
                c->type = strdup(k->type);
                c->blob = malloc(k->len);
                if (!c->type || !c->blob)
                        return -ENOMEM;
                memcpy(c->blob, k->blob, k->len);
                c->len = k->len;
        }

        j->files = calloc(s->n_files ? s->n_files : 1, sizeof(*j->files));
        if (!j->files)
                return -ENOMEM;
        j->spec.n_files = s->n_files;
        for (size_t i = 0; i < s->n_files; i++) {
                const struct push_file *f = &s->files[i];
                struct push_file *c = &j->files[i];
                char *src, *dest, *owner, *group;
                if (dup_or_null(f->src, &src) < 0)
                        return -ENOMEM;
                c->src = src;
                if (dup_or_null(f->dest, &dest) < 0)
                        return -ENOMEM;
                c->dest = dest;
                if (dup_or_null(f->owner, &owner) < 0)
                        return -ENOMEM;
                c->owner = owner;
                if (dup_or_null(f->group, &group) < 0)
                        return -ENOMEM;
                c->group = group;
                c->mode = f->mode;
        }

        j->commands = calloc(n_cmds + 1, sizeof(char *));
        if (!j->commands)
                return -ENOMEM;
        for (size_t i = 0; i < n_cmds; i++) {
                j->commands[i] = strdup(s->commands[i]);
                if (!j->commands[i])
                        return -ENOMEM;
        }

        j->spec.address = j->address;
        j->spec.port = s->port;
        j->spec.user = j->user;
        j->spec.private_key = j->private_key;
        j->spec.private_key_data = j->private_key_data;
        j->spec.hostkeys = j->hostkeys;
        j->spec.connect_timeout_usec = s->connect_timeout_usec;
        j->spec.deadline_usec = s->deadline_usec;
        j->spec.files = j->files;
        j->spec.commands = j->commands;
        return 0;
}

/* Close the running step with its duration. */
static void job_step_end(struct push_job *j, uint64_t now) {
        char *s;

        if (j->n_steps == 0)
                return;
        if (asprintf(&s, "%s %.2fs", j->steps[j->n_steps - 1], (double) (now - j->step_start) / 1e6) < 0)
                return;
        free(j->steps[j->n_steps - 1]);
        j->steps[j->n_steps - 1] = s;
}

static void job_progress(const char *name, void *userdata) {
        struct push_job *j = userdata;
        uint64_t now = now_usec();
        char **a;

        job_step_end(j, now);
        a = reallocarray(j->steps, j->n_steps + 2, sizeof(char *));
        if (!a)
                return;
        j->steps = a;
        j->steps[j->n_steps] = strdup(name);
        if (j->steps[j->n_steps])
                j->n_steps++;
        j->steps[j->n_steps] = NULL;
        j->step_start = now;
}

static void job_run(void *userdata) {
        struct push_job *j = userdata;

        j->start = now_usec();
        j->r = push_run(&j->spec, job_progress, j, &j->error);
        job_step_end(j, now_usec());
}

static void job_done(void *userdata, bool was_cancelled) {
        struct push_job *j = userdata;
        struct push_report report = { .steps = j->steps };
        char *empty[] = { NULL };

        if (was_cancelled) {
                j->r = -ECANCELED;
                free(j->error);
                j->error = strdup("cancelled: elasticd is stopping");
        } else {
                report.seconds = (double) (now_usec() - j->start) / 1e6;
        }
        if (!report.steps)
                report.steps = empty;
        j->cb(j->r, j->r < 0 ? (j->error ? j->error : "out of memory") : NULL, &report, j->userdata);
        job_free(j);
}

int pusher_new(sd_event *event, unsigned max_running, unsigned max_queued, struct pusher **ret) {
        struct pusher *p;
        int r;

        if (max_running == 0)
                return -EINVAL;
        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        atomic_init(&p->cancel, false);
        r = worker_pool_new(event, "push", max_running, max_queued, &p->pool);
        if (r < 0) {
                free(p);
                return r;
        }
        *ret = p;
        return 0;
}

struct pusher *pusher_free(struct pusher *p) {
        if (!p)
                return NULL;
        atomic_store(&p->cancel, true);
        worker_pool_free(p->pool);
        free(p);
        return NULL;
}

unsigned pusher_pending(const struct pusher *p) {
        return p ? worker_pool_pending(p->pool) : 0;
}

int push_start(struct pusher *p, const struct push_spec *spec, push_done_fn cb, void *userdata) {
        _cleanup_(job_freep) struct push_job *j = NULL;
        int r;

        if (!p || !spec || !cb)
                return -EINVAL;
        r = check_spec(spec, NULL);
        if (r < 0)
                return r;
        j = calloc(1, sizeof(*j));
        if (!j)
                return -ENOMEM;
        r = job_copy_spec(j, spec);
        if (r < 0)
                return r;
        j->spec.cancel = &p->cancel;
        j->cb = cb;
        j->userdata = userdata;
        r = worker_pool_submit(p->pool, job_run, job_done, j);
        if (r < 0)
                return r;
        TAKE_PTR(j);
        return 0;
}
