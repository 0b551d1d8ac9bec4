/* test-confdiff.c - what a reload changes, and which changes need a restart. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf/confdiff.h"
#include "conf/config.h"
#include "test.h"

#define BASE "cluster: c1\ncloud: os\n"
#define GROUPS                                                                       \
        "groups:\n"                                                                  \
        "  - {name: a, nodes: \"a[1-4]\", flavor: f1, image: i1}\n"                  \
        "  - {name: b, nodes: \"b[1-4]\", flavor: f2, image: i2}\n"

static struct config *load(const char *text) {
        struct config *c = NULL;
        char *err = NULL;

        if (config_load_string("t", text, strlen(text), &c, &err) < 0)
                TEST_FAIL("config does not load: %s", err ? err : "?");
        free(err);
        return c;
}

/* The changes between two texts, described: "restart | live". */
static char *diff(const char *a, const char *b, bool activated) {
        struct config *x = load(a), *y = load(b);
        struct config_change *v = NULL;
        char *restart = NULL, *live = NULL, *out = NULL;
        size_t n = 0;

        if (!x || !y) {
                config_free(x);
                config_free(y);
                return strdup("(load failed)");
        }
        CHECK_INT(config_diff(x, y, activated, &v, &n), 0);
        CHECK(config_changes_describe(v, n, true, &restart) >= 0);
        CHECK(config_changes_describe(v, n, false, &live) >= 0);
        if (asprintf(&out, "%s | %s", restart ? restart : "-", live ? live : "-") < 0)
                out = NULL;
        config_changes_free(v, n);
        config_free(x);
        config_free(y);
        free(restart);
        free(live);
        return out;
}

#define CHECK_DIFF(a, b, activated, expected)                                  \
        do {                                                                   \
                char *_d = diff(a, b, activated);                              \
                CHECK_STR(_d, expected);                                       \
                free(_d);                                                      \
        } while (0)

static void test_same(void) {
        CHECK_DIFF(BASE GROUPS, BASE GROUPS, false, "- | -");
        /* Another spelling of the same values is no change. */
        CHECK_DIFF(BASE "limits: {api_timeout: 60}\n" GROUPS, BASE "limits: {api_timeout: 1m}\n" GROUPS, false,
                   "- | -");
}

static void test_restart_keys(void) {
        CHECK_DIFF(BASE GROUPS, "cluster: c2\ncloud: os\n" GROUPS, false, "cluster (c1 -> c2) | -");
        CHECK_DIFF(BASE GROUPS, "cluster: c1\ncloud: other\nclouds_file: /etc/x.yaml\n" GROUPS, false,
                   "cloud (os -> other), clouds_file (null -> /etc/x.yaml) | -");
        CHECK_DIFF(BASE GROUPS, BASE "state_dir: /var/lib/x\n" GROUPS, false,
                   "state_dir (/var/lib/elasticd -> /var/lib/x) | -");
        CHECK_DIFF(BASE GROUPS, BASE "metrics: {listen: \"127.0.0.1:9100\"}\n" GROUPS, false,
                   "metrics.listen (null -> \"127.0.0.1:9100\") | -");
        CHECK_DIFF(BASE GROUPS, BASE "slurm: {conf: /etc/slurm/other.conf}\n" GROUPS, false,
                   "slurm.conf (/etc/slurm/slurm.conf -> /etc/slurm/other.conf) | -");
        /* Restart and live keys together: both named, the reload refuses all. */
        CHECK_DIFF(BASE GROUPS, "cluster: c2\ncloud: os\nlimits: {api_rate: 5}\n" GROUPS, false,
                   "cluster (c1 -> c2) | limits.api_rate (20 -> 5)");
}

static void test_socket(void) {
        const char *moved = BASE "socket: {path: /run/x.sock, mode: \"0600\"}\n" GROUPS;
        char *d = diff(BASE GROUPS, moved, false);

        /* Our own socket: moving it needs a restart. */
        CHECK(d && strstr(d, "socket.path (") && strstr(d, "socket.mode (\"0660\" -> \"0600\")") &&
              strstr(d, " | -"));
        free(d);
        /* systemd's socket: socket.* are not used, a change is harmless. */
        d = diff(BASE GROUPS, moved, true);
        CHECK(d && strncmp(d, "- | socket.path (", 17) == 0);
        free(d);
}

static void test_live_keys(void) {
        CHECK_DIFF(BASE GROUPS,
                   BASE "limits: {api_concurrency: 4, api_rate: 0.5, api_burst: 2, api_timeout: 30s}\n"
                        "endpoints: {compute: \"http://127.0.0.1:1/compute\"}\n" GROUPS,
                   false,
                   "- | limits.api_concurrency (16 -> 4), limits.api_rate (20 -> 0.5), limits.api_burst (40 -> 2), "
                   "limits.api_timeout (1m -> 30s), endpoints.compute (null -> \"http://127.0.0.1:1/compute\")");
        CHECK_DIFF(BASE GROUPS, BASE "admin_group: wheel\nslurm: {user: root}\n" GROUPS, false,
                   "- | slurm.user (slurm -> root), admin_group (null -> wheel)");
}

static void test_groups(void) {
        CHECK_DIFF(BASE GROUPS,
                   BASE "groups:\n"
                        "  - {name: b, nodes: \"b[1-4]\", flavor: f2, image: i3}\n"
                        "  - {name: c, nodes: \"c[1-4]\", flavor: f2, image: i2}\n",
                   false, "- | groups.a (removed), groups.b (changed), groups.c (added)");
        /* Order alone is no change. */
        CHECK_DIFF(BASE GROUPS,
                   BASE "groups:\n"
                        "  - {name: b, nodes: \"b[1-4]\", flavor: f2, image: i2}\n"
                        "  - {name: a, nodes: \"a[1-4]\", flavor: f1, image: i1}\n",
                   false, "- | -");
}

/* The same user_data path with other bytes in the file: the group changed. */
static void test_file_contents(void) {
        char path[] = "/tmp/test-confdiff-XXXXXX", text[512];
        struct config *x, *y;
        struct config_change *v = NULL;
        char *live = NULL;
        size_t n = 0;
        int fd = mkstemp(path);

        CHECK(fd >= 0);
        if (fd < 0)
                return;
        CHECK(write(fd, "#cloud-config\n", 14) == 14);
        snprintf(text, sizeof(text), BASE "groups:\n  - {name: a, nodes: a1, flavor: f, image: i, user_data: %s}\n",
                 path);
        x = load(text);
        CHECK(write(fd, "runcmd: [true]\n", 15) == 15);
        close(fd);
        y = load(text);
        if (x && y) {
                CHECK_INT(config_diff(x, y, false, &v, &n), 0);
                CHECK_INT(config_changes_describe(v, n, false, &live), 1);
                CHECK_STR(live, "groups.a (changed)");
                config_changes_free(v, n);
                free(live);
                live = NULL;
                /* Unchanged bytes: no change. */
                CHECK_INT(config_diff(y, y, false, &v, &n), 0);
                CHECK_INT(n, 0);
                config_changes_free(v, n);
        }
        config_free(x);
        config_free(y);
        unlink(path);
}

/* Every key config_print writes (outside the groups) has a class: a key added
 * to the config without saying how a reload takes it over fails here. */
static void test_every_key_classified(void) {
        struct config *c = load(BASE "metrics: {listen: \"127.0.0.1:9100\"}\nadmin_group: wheel\n"
                                     "endpoints: {compute: \"http://x/\", image: \"http://y/\", "
                                     "identity: \"http://z/\"}\n" GROUPS);
        char *text = NULL, *save = NULL, section[64] = "";
        size_t size = 0, keys = 0;
        FILE *f = open_memstream(&text, &size);

        CHECK(c);
        if (!c)
                return;
        CHECK_INT(config_print(c, f), 0);
        fclose(f);
        for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                char key[128];
                size_t len = strcspn(line, ":");

                if (strncmp(line, "groups:", 7) == 0)
                        break;
                if (line[0] != ' ') {
                        if (line[len] == ':' && line[len + 1] == '\0') {
                                snprintf(section, sizeof(section), "%.*s", (int) len, line);
                                continue;
                        }
                        snprintf(key, sizeof(key), "%.*s", (int) len, line);
                } else
                        snprintf(key, sizeof(key), "%s.%.*s", section, (int) (len - 2), line + 2);
                keys++;
                if (config_key_class(key) < 0)
                        TEST_FAIL("config_print writes \"%s\", which confdiff.c does not classify", key);
        }
        CHECK(keys >= 30);
        CHECK_INT(config_key_class("groups.anything"), CONFIG_KEY_LIVE);
        CHECK_INT(config_key_class("cluster"), CONFIG_KEY_RESTART);
        CHECK_INT(config_key_class("socket.path"), CONFIG_KEY_SOCKET);
        CHECK_INT(config_key_class("no.such"), -ENOENT);
        free(text);
        config_free(c);
}

int main(void) {
        RUN(test_same);
        RUN(test_restart_keys);
        RUN(test_socket);
        RUN(test_live_keys);
        RUN(test_groups);
        RUN(test_file_contents);
        RUN(test_every_key_classified);
        return test_done();
}
