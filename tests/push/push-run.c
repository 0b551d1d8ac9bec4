/* push-run.c - push_run from the command line, for the push suite:
 *   push-run --address A [--port P] [--user U] --key F --console F
 *            [--deadline-ms N] [--connect-timeout-ms N]
 *            [--file SRC:DEST:MODE[:OWNER[:GROUP]]]... [--cmd CMD]...
 * Prints "step NAME" per step, then "result 0" or "result -ERRNO REASON";
 * exits 0 when the push succeeded, 1 when it failed, 2 on bad usage. */
#include <errno.h>
#include <getopt.h>
#include <libssh2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "push/push.h"
#include "util/fileread.h"

#define MAX_ITEMS 32

static void progress(const char *step, void *userdata) {
        printf("step %s\n", step);
        fflush(stdout);
}

static char *read_file(const char *path) {
        FILE *f = fopen(path, "re");
        char *buf;
        size_t n;

        if (!f)
                return NULL;
        buf = calloc(1, 1 << 20);
        if (buf) {
                n = fread(buf, 1, (1 << 20) - 1, f);
                buf[n] = '\0';
        }
        fclose(f);
        return buf;
}

int main(int argc, char **argv) {
        static const struct option opts[] = {
                { "address", required_argument, NULL, 'a' },
                { "port", required_argument, NULL, 'p' },
                { "user", required_argument, NULL, 'u' },
                { "key", required_argument, NULL, 'k' },
                { "console", required_argument, NULL, 'c' },
                { "deadline-ms", required_argument, NULL, 'd' },
                { "connect-timeout-ms", required_argument, NULL, 't' },
                { "file", required_argument, NULL, 'f' },
                { "cmd", required_argument, NULL, 'x' },
                {},
        };
        struct push_spec spec = { .connect_timeout_usec = 2000000 };
        struct push_file files[MAX_ITEMS] = {};
        char *cmds[MAX_ITEMS + 1] = {};
        size_t n_cmds = 0;
        struct push_hostkeys *keys = NULL;
        char *console = NULL, *error = NULL;
        unsigned long deadline_ms = 10000;
        struct timespec ts;
        int c, r;

        while ((c = getopt_long(argc, argv, "", opts, NULL)) >= 0) {
                switch (c) {
                case 'a': spec.address = optarg; break;
                case 'p': spec.port = (uint16_t) atoi(optarg); break;
                case 'u': spec.user = optarg; break;
                case 'k': {
                        /* read once, as elasticd does at config load */
                        char *data = NULL, *why = NULL;
                        size_t len = 0;
                        if (fileread_all(optarg, 0, 1 << 20, &data, &len, &why) < 0) {
                                printf("result -2 private key %s\n", why ? why : optarg);
                                return 1;
                        }
                        spec.private_key = optarg;
                        spec.private_key_data = data;
                        spec.private_key_len = len;
                        break;
                }
                case 'c':
                        console = read_file(optarg);
                        if (!console) {
                                fprintf(stderr, "cannot read %s\n", optarg);
                                return 2;
                        }
                        break;
                case 'd': deadline_ms = strtoul(optarg, NULL, 10); break;
                case 't': spec.connect_timeout_usec = strtoull(optarg, NULL, 10) * 1000; break;
                case 'f': {
                        struct push_file *f = &files[spec.n_files];
                        char *s = optarg;
                        if (spec.n_files >= MAX_ITEMS)
                                return 2;
                        f->src = strsep(&s, ":");
                        f->dest = strsep(&s, ":");
                        f->mode = (mode_t) strtoul(s ? strsep(&s, ":") : "0644", NULL, 8);
                        f->owner = s ? strsep(&s, ":") : NULL;
                        f->group = s ? strsep(&s, ":") : NULL;
                        spec.n_files++;
                        break;
                }
                case 'x':
                        if (n_cmds >= MAX_ITEMS)
                                return 2;
                        cmds[n_cmds++] = optarg;
                        break;
                default:
                        return 2;
                }
        }
        r = push_parse_console_hostkeys(console, &keys, &error);
        free(console);
        if (r != 0) {
                printf("result %d console: %s\n", r > 0 ? -EAGAIN : r, error ? error : "no host key block");
                free(error);
                return 1;
        }
        clock_gettime(CLOCK_MONOTONIC, &ts);
        spec.deadline_usec = (uint64_t) ts.tv_sec * 1000000ULL + (uint64_t) ts.tv_nsec / 1000 + deadline_ms * 1000;
        spec.hostkeys = keys;
        spec.files = files;
        spec.commands = cmds;
        r = push_run(&spec, progress, NULL, &error);
        if (r == 0)
                printf("result 0\n");
        else
                printf("result %d %s\n", r, error);
        free(error);
        push_hostkeys_free(keys);
        free((char *) spec.private_key_data);
        /* libssh2's global state (OpenSSL) released: valgrind sees no leak */
        libssh2_exit();
        return r == 0 ? 0 : 1;
}
