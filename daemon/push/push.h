/* push.h - configuring a new node over SSH: the host key checked against the instance's console, files copied, start commands run. */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

#include "util/macro.h"

/* A host key as the instance printed it: type name and the raw public key
 * blob (the SSH wire format, as sshd presents it). */
struct push_hostkey {
        char *type;            /* "ssh-ed25519", "ecdsa-sha2-nistp256", "ssh-rsa", ... */
        unsigned char *blob;
        size_t len;
};

struct push_hostkeys {
        struct push_hostkey *keys;
        size_t n;
};

struct push_hostkeys *push_hostkeys_free(struct push_hostkeys *k);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct push_hostkeys *, push_hostkeys_free);

/* At most this many keys are taken from one console block. */
#define PUSH_HOSTKEYS_MAX 16

/* No complete host key block on the console yet: poll it again. */
#define PUSH_CONSOLE_NO_KEYS 1

/* Parse the host keys cloud-init prints to the console, the lines between
 * "-----BEGIN SSH HOST KEY KEYS-----" and "-----END SSH HOST KEY KEYS-----",
 * each "<type> <base64> [comment]" (a prefix such as "ec2: " before the
 * markers or the type is allowed; CR LF line ends too). The last block wins
 * (the newest boot). Lines that do not parse, or whose blob does not name
 * its type, are skipped.
 * Returns 0 with *ret set, PUSH_CONSOLE_NO_KEYS when no complete block is
 * there yet (none, or the newest one is cut off), -EBADMSG when the newest
 * complete block holds no valid key (message in *ret_error), -ENOMEM. */
int push_parse_console_hostkeys(const char *console, struct push_hostkeys **ret, char **ret_error);

/* One file to copy: written to a temporary name beside DEST (mode 0600),
 * then chown/chmod and renamed over DEST, so DEST is never half-written. */
struct push_file {
        const char *src;       /* path on the controller */
        const char *dest;      /* absolute path on the node; its directory must exist */
        mode_t mode;           /* permission bits, e.g. 0400 */
        const char *owner;     /* user name or uid on the node; NULL: leave (the login user) */
        const char *group;     /* group name or gid; NULL: leave */
};

struct push_spec {
        const char *address;            /* node address (IPv4/IPv6 literal or name) */
        uint16_t port;                  /* 0: 22 */
        const char *user;               /* NULL: root */
        /* Private key to log in with, in OpenSSH or PEM format, without a
         * passphrase (none is supported): its bytes, read when the config
         * was loaded (a push never opens it), and a name for messages (the
         * file it came from). With Debian 12's libssh2 1.10 use an ed25519
         * or ECDSA key: it signs RSA keys with SHA-1 only, which OpenSSH >=
         * 8.8 refuses. */
        const char *private_key;
        const char *private_key_data;
        size_t private_key_len;
        const struct push_hostkeys *hostkeys;   /* the only keys accepted; at least one */
        uint64_t connect_timeout_usec;  /* one connection attempt; 0: 10 s */
        uint64_t deadline_usec;         /* CLOCK_MONOTONIC; the whole push, retries included */
        const struct push_file *files;
        size_t n_files;
        char *const *commands;          /* NULL-terminated (or NULL); run in order by the node's shell */
        const atomic_bool *cancel;      /* optional: true stops the push at the next step or retry */
};

/* Called on the pushing thread as each step starts: "connect", "hostkey",
 * "auth", "copy <dest>", "run <command>". */
typedef void (*push_progress_fn)(const char *step, void *userdata);

/* Run a push; it blocks (up to the deadline), so only a worker thread may
 * call it. Connection refused/timeouts/resets before the SSH handshake are
 * retried until the deadline (sshd not up yet). Every libssh2 call is bounded
 * by the deadline. Returns 0, or a negative errno with a one-line reason in
 * *ret_error (optional) that holds no secret:
 *   -ETIMEDOUT     sshd not reachable before the deadline, or a step ran past it
 *   -EKEYREJECTED  the host key sshd presented is none of spec->hostkeys
 *   -EACCES        sshd refused the private key
 *   -ENOENT, ...   a file to copy could not be read
 *   -EPROTO        a command or a file install exited non-zero
 *   -ECANCELED     *spec->cancel was set
 *   -EINVAL        a bad spec
 *   -EIO           another SSH failure */
int push_run(const struct push_spec *spec, push_progress_fn progress, void *userdata, char **ret_error);

/* Asynchronous pushes on a worker pool of their own. */
struct pusher;

/* max_running pushes at once (threads), at most max_queued waiting behind them. */
int pusher_new(sd_event *event, unsigned max_running, unsigned max_queued, struct pusher **ret);
/* Cancel what runs (at its next step), call every outstanding callback with
 * -ECANCELED, free. Accepts NULL; returns NULL. */
struct pusher *pusher_free(struct pusher *p);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct pusher *, pusher_free);

/* What a finished push did, valid during the callback: the steps started, in
 * order, each with the seconds it took ("copy /etc/munge/munge.key 0.02s"). */
struct push_report {
        char **steps;           /* NULL-terminated */
        double seconds;
};

/* On the event loop, exactly once: r as push_run, reason a one-line message
 * fit for a node's Slurm reason (NULL when r == 0). */
typedef void (*push_done_fn)(int r, const char *reason, const struct push_report *report, void *userdata);

/* Queue a push; SPEC is copied (its strings, files, keys and commands).
 * spec->cancel is ignored: pusher_free cancels. -EBUSY when max_queued pushes
 * already wait (try again later), -EINVAL for a bad spec. CB is never called
 * when this fails. */
int push_start(struct pusher *p, const struct push_spec *spec, push_done_fn cb, void *userdata);

/* Pushes queued or running. */
unsigned pusher_pending(const struct pusher *p);
