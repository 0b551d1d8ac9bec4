/* test-push.c - host keys from a console log, spec checks, retries until the
 * deadline and the asynchronous pusher (no sshd needed: see tests/push). */
#include <errno.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-event.h>

#include "push/push.h"
#include "test.h"

#define KEY_ED25519 "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAJ/iFCjWJ5qjNvAVRakeujOzUEf+4RLzmv+Hs394j6B"
#define KEY_ECDSA                                                                                  \
        "ecdsa-sha2-nistp256 "                                                                     \
        "AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBEYDvK6d1n8p9NXGlnDA+N7OjTikrV3v/" \
        "jqdgu6s1/fFovWfzp7ck4ReWpUAjD/1G2XATI+Z2PdjkQSc6KXwF80="
#define KEY_RSA                                                                                    \
        "ssh-rsa "                                                                                 \
        "AAAAB3NzaC1yc2EAAAADAQABAAAAgQCSs+9Ei39dwewX6BL0S6UJcqYX0oArjLLxw2HVxA7MrVig/"             \
        "lY8HVvN07cY158lnTnE+q5piMdrZNxlTa0imo/F3N+/L5QvpXUULqTGAntS68oweCNr4NPlzGkUgus1rJgTPrqkDxn5fcAKStszqthR3s+" \
        "6C+U8cGzC0TKU3MR0JQ=="
#define KEY_OTHER "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILamMwuNlD+OrcEVKL3ee9XaSvxQDO+c8OdpJjfuAGZv"

#define BEGIN "-----BEGIN SSH HOST KEY KEYS-----"
#define END "-----END SSH HOST KEY KEYS-----"

/* What cloud-init 22.4's final stage prints on a Debian 12 serial console:
 * the fingerprints through logger (prefixed), the keys plain; CR LF. */
static const char cloud_init_console[] =
        "[    5.612345] cloud-init[612]: Cloud-init v. 22.4.2 running 'modules:final' at Mon, 23 Nov 2026 19:00:01 +0000. Up 5.50 seconds.\r\n"
        "ci-info: no authorized SSH keys fingerprints found for user debian.\r\n"
        "<14>Nov 23 19:00:02 cloud-init: #############################################################\r\n"
        "<14>Nov 23 19:00:02 cloud-init: -----BEGIN SSH HOST KEY FINGERPRINTS-----\r\n"
        "<14>Nov 23 19:00:02 cloud-init: 256 SHA256:abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG root@cn-1 (ECDSA)\r\n"
        "<14>Nov 23 19:00:02 cloud-init: 256 SHA256:bcdefghijklmnopqrstuvwxyz0123456789ABCDEFGH root@cn-1 (ED25519)\r\n"
        "<14>Nov 23 19:00:02 cloud-init: 1024 SHA256:cdefghijklmnopqrstuvwxyz0123456789ABCDEFGHI root@cn-1 (RSA)\r\n"
        "<14>Nov 23 19:00:02 cloud-init: -----END SSH HOST KEY FINGERPRINTS-----\r\n"
        "<14>Nov 23 19:00:02 cloud-init: #############################################################\r\n"
        BEGIN "\r\n"
        KEY_ECDSA " root@cn-1\r\n"
        KEY_ED25519 " root@cn-1\r\n"
        KEY_RSA " root@cn-1\r\n"
        END "\r\n"
        "[    5.701234] cloud-init[612]: Cloud-init v. 22.4.2 finished at Mon, 23 Nov 2026 19:00:02 +0000. Datasource DataSourceOpenStackLocal [net,ver=2].  Up 5.69 seconds\r\n"
        "\r\n"
        "Debian GNU/Linux 12 cn-1 ttyS0\r\n"
        "\r\n"
        "cn-1 login: ";

static void test_cloud_init_format(void) {
        struct push_hostkeys *k = NULL;
        char *error = NULL;

        CHECK_INT(push_parse_console_hostkeys(cloud_init_console, &k, &error), 0);
        CHECK(!error);
        if (!k)
                return;
        CHECK_INT(k->n, 3);
        CHECK_STR(k->keys[0].type, "ecdsa-sha2-nistp256");
        CHECK_STR(k->keys[1].type, "ssh-ed25519");
        CHECK_STR(k->keys[2].type, "ssh-rsa");
        CHECK_INT(k->keys[1].len, 51);   /* 4+11 name, 4+32 key */
        CHECK_INT(k->keys[0].len, 104);  /* 4+19, 4+8, 4+65 */
        CHECK(memcmp(k->keys[1].blob, "\0\0\0\x0bssh-ed25519\0\0\0\x20", 19) == 0);
        push_hostkeys_free(k);
}

static void test_no_block(void) {
        struct push_hostkeys *k = NULL;

        CHECK_INT(push_parse_console_hostkeys(NULL, &k, NULL), PUSH_CONSOLE_NO_KEYS);
        CHECK_INT(push_parse_console_hostkeys("", &k, NULL), PUSH_CONSOLE_NO_KEYS);
        CHECK_INT(push_parse_console_hostkeys("cn-1 login: emulator ready at 10.80.0.2\n", &k, NULL),
                  PUSH_CONSOLE_NO_KEYS);
        /* only the fingerprints: not keys */
        CHECK_INT(push_parse_console_hostkeys("-----BEGIN SSH HOST KEY FINGERPRINTS-----\n256 SHA256:x root@a (ED25519)\n"
                                              "-----END SSH HOST KEY FINGERPRINTS-----\n", &k, NULL),
                  PUSH_CONSOLE_NO_KEYS);
        CHECK(!k);
}

static void test_truncated(void) {
        struct push_hostkeys *k = NULL;

        /* still being printed */
        CHECK_INT(push_parse_console_hostkeys(BEGIN "\n" KEY_ED25519 " root@cn-1\n", &k, NULL), PUSH_CONSOLE_NO_KEYS);
        /* the last line cut in the middle of a key */
        CHECK_INT(push_parse_console_hostkeys(BEGIN "\n" KEY_ED25519 " root@cn-1\nssh-rsa AAAAB3Nza", &k, NULL),
                  PUSH_CONSOLE_NO_KEYS);
        /* the start cut off by "length": an END without its BEGIN */
        CHECK_INT(push_parse_console_hostkeys(KEY_ED25519 " root@cn-1\n" END "\n", &k, NULL), PUSH_CONSOLE_NO_KEYS);
        /* END with no newline after it yet still closes the block */
        CHECK_INT(push_parse_console_hostkeys(BEGIN "\n" KEY_ED25519 "\n" END, &k, NULL), 0);
        CHECK(k && k->n == 1);
        k = push_hostkeys_free(k);
        /* a complete block from an earlier boot, then a newer one cut short: wait */
        CHECK_INT(push_parse_console_hostkeys(BEGIN "\n" KEY_OTHER "\n" END "\nreboot\n" BEGIN "\n" KEY_ED25519 "\n",
                                              &k, NULL),
                  PUSH_CONSOLE_NO_KEYS);
        CHECK(!k);
}

static void test_several_blocks(void) {
        struct push_hostkeys *k = NULL;

        /* a rebuilt instance prints new keys: the newest block wins */
        CHECK_INT(push_parse_console_hostkeys(BEGIN "\n" KEY_OTHER " root@old\n" END "\n... rebuild ...\n" BEGIN "\n" KEY_ED25519
                                              " root@cn-1\n" KEY_RSA "\n" END "\nlogin:\n",
                                              &k, NULL),
                  0);
        if (!k)
                return;
        CHECK_INT(k->n, 2);
        CHECK_STR(k->keys[0].type, "ssh-ed25519");
        CHECK(memcmp(k->keys[0].blob + 19, "\x02\x7f\x88\x50", 4) == 0); /* not KEY_OTHER's */
        push_hostkeys_free(k);

        /* a BEGIN inside a block (output restarted) starts over */
        CHECK_INT(push_parse_console_hostkeys(BEGIN "\n" KEY_OTHER "\n" BEGIN "\n" KEY_ED25519 "\n" END "\n", &k, NULL), 0);
        CHECK(k && k->n == 1 && k->keys[0].blob[19] == 0x02);
        push_hostkeys_free(k);
}

static void test_prefixes(void) {
        struct push_hostkeys *k = NULL;

        CHECK_INT(push_parse_console_hostkeys("ec2: " BEGIN "\nec2: " KEY_ED25519 " root@cn-1\n"
                                              "[   12.5] cloud-init[1]: " KEY_ECDSA "\nec2: " END "\n",
                                              &k, NULL),
                  0);
        CHECK(k && k->n == 2);
        push_hostkeys_free(k);
}

static void test_garbage(void) {
        struct push_hostkeys *k = NULL;
        char *error = NULL;

        /* garbage around one good key */
        CHECK_INT(push_parse_console_hostkeys(BEGIN "\n"
                                              "random noise\n"
                                              "ssh-ed25519\n"                              /* no blob */
                                              "ssh-ed25519 !!!notbase64!!!\n"
                                              "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAJ/iFCjWJ5\n" /* bad length */
                                              "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIAJ/iFCjWJ5qjNvAVRakeujOzUEf+4RLzmv+Hs394j6B\n" /* blob names ed25519 */
                                              "ssh-foo AAAAB3NzaC1yc2EAAAADAQAB\n"
                                              "\x01\x02\xff\xfe\n"
                                              KEY_ED25519 "\n"
                                              "notssh-ed25519 AAAA\n"
                                              END "\n",
                                              &k, &error),
                  0);
        CHECK(!error);
        CHECK(k && k->n == 1);
        push_hostkeys_free(k);
        k = NULL;

        /* only garbage: an error saying so */
        CHECK_INT(push_parse_console_hostkeys(BEGIN "\nhello\nssh-rsa AAAA\n" END "\n", &k, &error), -EBADMSG);
        CHECK(!k);
        CHECK_STR(error, "the host key block on the console holds no valid key (2 lines not understood)");
        free(error);
        error = NULL;
        CHECK_INT(push_parse_console_hostkeys(BEGIN "\n" END "\n", &k, &error), -EBADMSG);
        free(error);
}

static void test_key_limit(void) {
        char console[8192] = BEGIN "\n";
        struct push_hostkeys *k = NULL;

        for (int i = 0; i < 40; i++)
                strcat(console, KEY_ED25519 "\n");
        strcat(console, END "\n");
        CHECK_INT(push_parse_console_hostkeys(console, &k, NULL), 0);
        CHECK(k && k->n == PUSH_HOSTKEYS_MAX);
        push_hostkeys_free(k);
}

static uint64_t mono_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000ULL + (uint64_t) ts.tv_nsec / 1000;
}

/* A loopback port that refuses connections: bound, never listening. */
static int refusing_port(int *ret_fd) {
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t l = sizeof(a);
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

        if (fd < 0 || bind(fd, (struct sockaddr *) &a, l) < 0 || getsockname(fd, (struct sockaddr *) &a, &l) < 0)
                return -1;
        *ret_fd = fd;
        return ntohs(a.sin_port);
}

/* The key's bytes (never parsed: these tests stop before the login). */
#define KEY_BYTES .private_key_data = "k", .private_key_len = 1

static struct push_hostkeys *one_key(void) {
        struct push_hostkeys *k = NULL;
        push_parse_console_hostkeys(BEGIN "\n" KEY_ED25519 "\n" END "\n", &k, NULL);
        return k;
}

static void test_spec_checks(void) {
        struct push_hostkeys *k = one_key(), none = {};
        struct push_file bad_file = { .src = "/etc/hostname", .dest = "relative/path", .mode = 0644 };
        char *error = NULL;

        CHECK_INT(push_run(&(struct push_spec){ .private_key = "/k", KEY_BYTES, .hostkeys = k, .deadline_usec = 1 }, NULL, NULL, &error),
                  -EINVAL);
        CHECK_STR(error, "no address");
        free(error);
        CHECK_INT(push_run(&(struct push_spec){ .address = "127.0.0.1", .private_key = "/k", KEY_BYTES, .hostkeys = &none,
                                                .deadline_usec = 1 },
                           NULL, NULL, &error),
                  -EINVAL);
        CHECK_STR(error, "no accepted host key");
        free(error);
        CHECK_INT(push_run(&(struct push_spec){ .address = "127.0.0.1", .private_key = "/k", KEY_BYTES, .hostkeys = k,
                                                .deadline_usec = 1, .files = &bad_file, .n_files = 1 },
                           NULL, NULL, &error),
                  -EINVAL);
        CHECK_STR(error, "a file without a source or an absolute destination");
        free(error);
        /* a key file's name without its bytes: a push never reads the file */
        CHECK_INT(push_run(&(struct push_spec){ .address = "127.0.0.1", .private_key = "/k", .hostkeys = k,
                                                .deadline_usec = 1 },
                           NULL, NULL, &error),
                  -EINVAL);
        CHECK_STR(error, "no private key");
        free(error);
        push_hostkeys_free(k);
}

struct progress {
        char steps[256];
};

static void record_step(const char *step, void *userdata) {
        struct progress *p = userdata;
        strncat(p->steps, step, sizeof(p->steps) - strlen(p->steps) - 2);
        strcat(p->steps, ",");
}

/* sshd not up: retried until the deadline, then a reason naming the address. */
static void test_unreachable_until_deadline(void) {
        struct push_hostkeys *k = one_key();
        struct progress p = {};
        int fd = -1, port = refusing_port(&fd);
        uint64_t start = mono_usec();
        char *error = NULL, expect[128];

        CHECK(port > 0);
        CHECK_INT(push_run(&(struct push_spec){ .address = "127.0.0.1", .port = (uint16_t) port, .private_key = "/k", KEY_BYTES,
                                                .hostkeys = k, .deadline_usec = start + 900 * 1000 },
                           record_step, &p, &error),
                  -ETIMEDOUT);
        CHECK(mono_usec() - start >= 900 * 1000);
        snprintf(expect, sizeof(expect), "sshd at 127.0.0.1:%d not reachable before the deadline (", port);
        CHECK(error && strncmp(error, expect, strlen(expect)) == 0);
        CHECK(error && strstr(error, "last: Connection refused)"));
        CHECK(error && !strstr(error, "(1 attempt,"));   /* retried */
        CHECK_STR(p.steps, "connect,");
        free(error);
        close(fd);
        push_hostkeys_free(k);
}

static void test_cancel(void) {
        struct push_hostkeys *k = one_key();
        atomic_bool cancel = true;
        int fd = -1, port = refusing_port(&fd);
        char *error = NULL;

        CHECK_INT(push_run(&(struct push_spec){ .address = "127.0.0.1", .port = (uint16_t) port, .private_key = "/k", KEY_BYTES,
                                                .hostkeys = k, .deadline_usec = mono_usec() + 60 * 1000000ULL,
                                                .cancel = &cancel },
                           NULL, NULL, &error),
                  -ECANCELED);
        CHECK_STR(error, "cancelled");
        free(error);
        close(fd);
        push_hostkeys_free(k);
}

struct async {
        int n_done;
        int r[4];
        char reason[4][256];
        char steps[4][128];
        sd_event *event;
        int expect;
};

static void async_done(int r, const char *reason, const struct push_report *report, void *userdata) {
        struct async *a = userdata;
        int i = a->n_done++;

        a->r[i] = r;
        snprintf(a->reason[i], sizeof(a->reason[i]), "%s", reason ? reason : "(null)");
        for (char **s = report->steps; *s; s++) {
                strncat(a->steps[i], *s, sizeof(a->steps[i]) - strlen(a->steps[i]) - 2);
                strcat(a->steps[i], ";");
        }
        if (a->n_done == a->expect && a->event)
                sd_event_exit(a->event, 0);
}

static void test_async(void) {
        struct push_hostkeys *k = one_key();
        struct pusher *p = NULL;
        struct async a = {};
        sd_event *e = NULL;
        int fd = -1, port = refusing_port(&fd);
        struct push_spec spec = { .address = "127.0.0.1", .port = (uint16_t) port, .private_key = "/k", KEY_BYTES, .hostkeys = k,
                                  .deadline_usec = mono_usec() + 300 * 1000 };

        CHECK_INT(sd_event_new(&e), 0);
        a.event = e;
        CHECK_INT(pusher_new(e, 1, 1, &p), 0);
        /* one thread and one place in the queue: of 3 pushes at least one is
         * refused (backpressure), depending on whether the first started yet */
        a.expect = 0;
        for (int i = 0; i < 3; i++) {
                int r = push_start(p, &spec, async_done, &a);
                CHECK(r == 0 || r == -EBUSY);
                if (r == 0)
                        a.expect++;
        }
        CHECK(a.expect >= 1 && a.expect <= 2);
        CHECK_INT(push_start(p, &(struct push_spec){ .address = "x" }, async_done, &a), -EINVAL);
        CHECK_INT(pusher_pending(p), a.expect);
        /* the spec is copied: freeing ours changes nothing */
        k = push_hostkeys_free(k);
        CHECK_INT(sd_event_loop(e), 0);
        CHECK_INT(a.n_done, a.expect);
        CHECK_INT(a.r[0], -ETIMEDOUT);
        CHECK(strstr(a.reason[0], "not reachable before the deadline"));
        CHECK(strncmp(a.steps[0], "connect ", 8) == 0);
        CHECK_INT(pusher_pending(p), 0);
        pusher_free(p);
        sd_event_unref(e);
        close(fd);
}

/* Freeing the pusher stops a long push soon and cancels queued ones. */
static void test_async_free_cancels(void) {
        struct push_hostkeys *k = one_key();
        struct pusher *p = NULL;
        struct async a = { .expect = 99 };
        sd_event *e = NULL;
        int fd = -1, port = refusing_port(&fd);
        struct push_spec spec = { .address = "127.0.0.1", .port = (uint16_t) port, .private_key = "/k", KEY_BYTES, .hostkeys = k,
                                  .deadline_usec = mono_usec() + 600 * 1000000ULL };
        uint64_t start;

        CHECK_INT(sd_event_new(&e), 0);
        CHECK_INT(pusher_new(e, 1, 4, &p), 0);
        CHECK_INT(push_start(p, &spec, async_done, &a), 0);
        CHECK_INT(push_start(p, &spec, async_done, &a), 0);
        usleep(100 * 1000);
        start = mono_usec();
        pusher_free(p);
        CHECK(mono_usec() - start < 2 * 1000000ULL);
        CHECK_INT(a.n_done, 2);
        CHECK_INT(a.r[0], -ECANCELED);
        CHECK_INT(a.r[1], -ECANCELED);
        CHECK_STR(a.reason[1], "cancelled: elasticd is stopping");
        sd_event_unref(e);
        close(fd);
        push_hostkeys_free(k);
}

int main(void) {
        RUN(test_cloud_init_format);
        RUN(test_no_block);
        RUN(test_truncated);
        RUN(test_several_blocks);
        RUN(test_prefixes);
        RUN(test_garbage);
        RUN(test_key_limit);
        RUN(test_spec_checks);
        RUN(test_unreachable_until_deadline);
        RUN(test_cancel);
        RUN(test_async);
        RUN(test_async_free_cancels);
        return test_done();
}
