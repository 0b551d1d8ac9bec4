/* test-config.c - elasticd.yaml parsing: golden prints, golden errors, secret files.
 *
 * config/good/NAME.yaml must load; its normalised print must equal NAME.expected
 * and print the same again once re-parsed. config/bad/NAME.yaml must fail with
 * exactly the errors in NAME.expected. ELASTICD_UPDATE_GOLDEN=1 rewrites the
 * .expected files (review the diff before committing). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config-build.h"
#include "conf/config.h"
#include "test.h"

static int update_golden;

static char *read_file(const char *path) {
        FILE *f = fopen(path, "re");
        char *buf = NULL;
        size_t size = 0;
        FILE *m;
        int c;

        if (!f)
                return NULL;
        m = open_memstream(&buf, &size);
        while ((c = fgetc(f)) != EOF)
                fputc(c, m);
        fclose(m);
        fclose(f);
        return buf;
}

static void write_file(const char *path, const char *text) {
        FILE *f = fopen(path, "we");

        if (!f) {
                TEST_FAIL("cannot write %s", path);
                return;
        }
        fputs(text, f);
        fclose(f);
}

static char *print_config(const struct config *c) {
        char *buf = NULL;
        size_t size = 0;
        FILE *m = open_memstream(&buf, &size);

        CHECK_INT(config_print(c, m), 0);
        fclose(m);
        return buf;
}

/* Compare with a golden file, or rewrite it under ELASTICD_UPDATE_GOLDEN. */
static void check_golden(const char *expected_path, const char *got) {
        char *expected;

        if (update_golden) {
                write_file(expected_path, got);
                return;
        }
        expected = read_file(expected_path);
        if (!expected) {
                TEST_FAIL("missing %s", expected_path);
                return;
        }
        if (strcmp(expected, got) != 0) {
                TEST_FAIL("%s differs; got:\n%s", expected_path, got);
        }
        free(expected);
}

static void expected_path(char *buf, size_t size, const char *yaml) {
        snprintf(buf, size, "%.*s.expected", (int) (strlen(yaml) - strlen(".yaml")), yaml);
}

static void good_case(const char *path) {
        _cleanup_(config_freep) struct config *c = NULL, *again = NULL;
        _cleanup_free_ char *err = NULL, *err2 = NULL, *printed = NULL, *reprinted = NULL;
        char exp[4096];
        int r;

        r = config_load(path, &c, &err);
        if (r < 0) {
                TEST_FAIL("%s: config_load failed (%d):\n%s", path, r, err ? err : "");
                return;
        }
        CHECK(err == NULL);
        printed = print_config(c);
        expected_path(exp, sizeof(exp), path);
        check_golden(exp, printed);

        r = config_load_string("reprinted", printed, strlen(printed), &again, &err2);
        if (r < 0) {
                TEST_FAIL("%s: the print does not load again (%d):\n%s", path, r, err2 ? err2 : "");
                return;
        }
        reprinted = print_config(again);
        CHECK_STR(reprinted, printed);
}

static void bad_case(const char *path) {
        _cleanup_(config_freep) struct config *c = NULL;
        _cleanup_free_ char *err = NULL;
        char exp[4096];
        int r;

        r = config_load(path, &c, &err);
        if (r >= 0) {
                TEST_FAIL("%s: loaded, expected errors", path);
                return;
        }
        CHECK(c == NULL);
        if (!err) {
                TEST_FAIL("%s: failed (%d) without a message", path, r);
                return;
        }
        expected_path(exp, sizeof(exp), path);
        check_golden(exp, err);
}

static int name_cmp(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

/* One TAP line per *.yaml file in DIR, sorted by name. */
static size_t run_dir(const char *dir, void (*fn)(const char *)) {
        char *names[512];
        size_t n = 0;
        struct dirent *de;
        DIR *d = opendir(dir);

        if (!d) {
                printf("# cannot open %s\n", dir);
                return 0;
        }
        while ((de = readdir(d)) && n < ELEMENTSOF(names)) {
                size_t len = strlen(de->d_name);
                if (len > 5 && strcmp(de->d_name + len - 5, ".yaml") == 0)
                        names[n++] = strdup(de->d_name);
        }
        closedir(d);
        qsort(names, n, sizeof(char *), name_cmp);

        for (size_t i = 0; i < n; i++) {
                char path[1024];

                snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
                test_case_failed = 0;
                fn(path);
                test_count++;
                if (test_case_failed)
                        test_failed++;
                printf("%s %d - %s\n", test_case_failed ? "not ok" : "ok", test_count, path);
                free(names[i]);
        }
        return n;
}

static const char minimal[] =
        "cluster: c1\n"
        "cloud: os\n"
        "groups:\n"
        "  - {name: g, nodes: \"n[1-4]\", flavor: f, image: i}\n";

static void test_defaults(void) {
        _cleanup_(config_freep) struct config *c = NULL;
        _cleanup_free_ char *err = NULL;

        CHECK_INT(config_load_string("minimal", minimal, strlen(minimal), &c, &err), 0);
        if (!c)
                return;
        CHECK(err == NULL);
        CHECK_STR(c->path, "minimal");
        CHECK_STR(c->cluster, "c1");
        CHECK_STR(c->socket_path, ELASTICD_SOCKET_PATH);
        CHECK_INT(c->socket_mode, 0660);
        CHECK_STR(c->slurm_user, "slurm");
        CHECK(c->clouds_file == NULL);
        CHECK_STR(c->reimage_words[0], "reimage");
        CHECK_STR(c->reimage_words[1], "rebuild");
        CHECK(c->reimage_words[2] == NULL);
        CHECK_INT(c->limits.max_frame_bytes, 1024 * 1024);
        CHECK_INT(c->limits.api_concurrency, 16);
        CHECK(c->limits.api_rate == 20.0);
        CHECK_INT(c->limits.active_timeout_s, 900);
        CHECK_INT(c->limits.resume_timeout_s, 1200);
        CHECK_INT(c->n_groups, 1);
        CHECK_STR(c->groups[0].networks[0], "auto");
        CHECK(c->groups[0].networks[1] == NULL);
        CHECK(c->groups[0].security_groups && c->groups[0].security_groups[0] == NULL);
        CHECK_INT(c->groups[0].n_nodes, 4);
        CHECK_INT(c->groups[0].min_nodes, 0);
        CHECK(!c->groups[0].config_drive);
}

static void test_group_find(void) {
        static const char text[] =
                "cluster: c1\n"
                "cloud: os\n"
                "groups:\n"
                "  - {name: cpu, nodes: \"c[1-4]\", flavor: f, image: i}\n"
                "  - {name: gpu, nodes: \"g[1-2]\", flavor: f, image: i}\n";
        _cleanup_(config_freep) struct config *c = NULL;

        CHECK_INT(config_load_string("t", text, strlen(text), &c, NULL), 0);
        if (!c)
                return;
        CHECK_INT(config_group_find(c, "cpu"), 0);
        CHECK_INT(config_group_find(c, "gpu"), 1);
        CHECK_INT(config_group_find(c, "nope"), -ENOENT);
        CHECK_INT(c->groups[1].n_nodes, 2);

        size_t g = 99, i = 99;
        CHECK_INT(c->n_nodes, 6);
        CHECK_INT(config_node_find(c, "c3", &g, &i), 0);
        CHECK_INT(g, 0);
        CHECK_INT(i, 2);
        CHECK_INT(config_node_find(c, "g2", &g, &i), 0);
        CHECK_INT(g, 1);
        CHECK_INT(i, 1);
        CHECK_INT(config_node_find(c, "g3", &g, &i), -ENOENT);
        CHECK_INT(g, 1); /* untouched */
        CHECK_INT(config_node_find(c, "a", NULL, NULL), -ENOENT);
        CHECK_INT(config_node_find(c, "z", NULL, NULL), -ENOENT);
        CHECK_STR(c->groups[0].node_names[3], "c4");
        CHECK(c->groups[0].node_names[4] == NULL);
}

/* A node's place in its group is in node order: "n2" before "n10". */
static void test_node_order(void) {
        static const char text[] =
                "cluster: c1\n"
                "cloud: os\n"
                "groups:\n"
                "  - {name: a, nodes: \"n[10-11],n[1-2],m1\", flavor: f, image: i}\n";
        _cleanup_(config_freep) struct config *c = NULL;
        size_t g, i;

        CHECK_INT(config_load_string("t", text, strlen(text), &c, NULL), 0);
        if (!c)
                return;
        CHECK_INT(config_node_find(c, "m1", &g, &i), 0);
        CHECK_INT(i, 0);
        CHECK_INT(config_node_find(c, "n2", &g, &i), 0);
        CHECK_INT(i, 2);
        CHECK_INT(config_node_find(c, "n10", &g, &i), 0);
        CHECK_INT(i, 3);
        CHECK_STR(c->groups[0].node_names[4], "n11");
}

static void test_example(void) {
        _cleanup_(config_freep) struct config *c = NULL;
        _cleanup_free_ char *err = NULL;

        CHECK_INT(config_load(SRCDIR "/daemon/elasticd.yaml.example", &c, &err), 0);
        if (err)
                printf("# %s", err);
}

static void test_missing_file(void) {
        _cleanup_(config_freep) struct config *c = NULL;
        _cleanup_free_ char *err = NULL, *err2 = NULL;

        CHECK_INT(config_load("config/does-not-exist.yaml", &c, &err), -ENOENT);
        CHECK(c == NULL);
        CHECK_STR(err, "config/does-not-exist.yaml: cannot open: No such file or directory\n");
        CHECK_INT(config_load("config", &c, &err2), -EINVAL);
        CHECK_STR(err2, "config: is a directory, not a regular file\n");
}

/* A FIFO where a file is expected is refused at once, never read (which
 * would block until a writer came): the config itself and a group's
 * user_data. */
static void test_fifo(void) {
        char dir[] = "/tmp/test-config-fifo-XXXXXX";
        _cleanup_(config_freep) struct config *c = NULL, *c2 = NULL;
        _cleanup_free_ char *err = NULL, *err2 = NULL, *fifo = NULL, *text = NULL;

        CHECK(mkdtemp(dir) != NULL);
        CHECK(asprintf(&fifo, "%s/fifo", dir) > 0);
        CHECK(mkfifo(fifo, 0600) == 0);
        CHECK_INT(config_load(fifo, &c, &err), -EINVAL);
        CHECK(err && strstr(err, "is a FIFO, not a regular file"));
        CHECK(asprintf(&text,
                       "cluster: c1\ncloud: os\ngroups:\n"
                       "  - {name: g, nodes: n1, flavor: f, image: i, user_data: %s}\n", fifo) > 0);
        CHECK_INT(config_load_string("ud", text, strlen(text), &c2, &err2), -EINVAL);
        CHECK(err2 && strstr(err2, "user_data: ") && strstr(err2, "is a FIFO, not a regular file"));
        unlink(fifo);
        rmdir(dir);
}

static void test_world_writable(void) {
        char path[] = "/tmp/test-config-ww-XXXXXX";
        _cleanup_(config_freep) struct config *c = NULL;
        _cleanup_free_ char *err = NULL, *want = NULL;
        int fd = mkstemp(path);

        CHECK(fd >= 0);
        CHECK(write(fd, minimal, strlen(minimal)) == (ssize_t) strlen(minimal));
        close(fd);
        CHECK(chmod(path, 0666) == 0);
        CHECK_INT(config_load(path, &c, &err), -EPERM);
        CHECK(asprintf(&want, "%s: writable by every user (mode 0666): chmod o-w %s\n", path, path) > 0);
        CHECK_STR(err, want);
        CHECK(chmod(path, 0664) == 0);
        CHECK_INT(config_load(path, &c, NULL), 0);
        unlink(path);
}

/* Characters YAML reads as line breaks cannot round-trip: refused. */
static void test_unicode_breaks(void) {
        static const char text[] = "cluster: c1\ncloud: \"a\\u2028b\"\ngroups: [{name: g, nodes: n1, flavor: \"f\\x85\", image: i}]\n";
        _cleanup_(config_freep) struct config *c = NULL;
        _cleanup_free_ char *err = NULL;

        CHECK_INT(config_load_string("u", text, strlen(text), &c, &err), -EINVAL);
        CHECK(err && strstr(err, "u:2:8: cloud must not contain control characters"));
        CHECK(err && strstr(err, "groups[0].flavor must not contain control characters"));
}

static void test_too_big(void) {
        _cleanup_(config_freep) struct config *c = NULL;
        _cleanup_free_ char *err = NULL, *text = NULL;
        size_t len = 2 * 1024 * 1024;

        text = malloc(len);
        memset(text, '#', len);
        CHECK_INT(config_load_string("big", text, len, &c, &err), -EFBIG);
        CHECK(err && strstr(err, "larger than 1048576 bytes"));
}

/* Embedded NUL bytes and CRLF line ends keep positions right. */
static void test_nul_and_crlf(void) {
        static const char nul[] = "cluster: c1\ncloud: o\0s\n";
        static const char crlf[] = "cluster: c1\r\ncloud: os\r\nbogus: 1\r\n";
        _cleanup_(config_freep) struct config *c = NULL;
        _cleanup_free_ char *err = NULL, *err2 = NULL;

        CHECK_INT(config_load_string("nul", nul, sizeof(nul) - 1, &c, &err), -EINVAL);
        CHECK(err && strstr(err, "nul:2:9: invalid input: control characters are not allowed (byte 0x00)\n"));
        CHECK_INT(config_load_string("crlf", crlf, sizeof(crlf) - 1, &c, &err2), -EINVAL);
        CHECK(err2 && strstr(err2, "crlf:3:1: unknown key \"bogus\""));
        CHECK(err2 && strstr(err2, "\nbogus: 1\n^\n"));
}

static void test_user_data(void) {
        char path[] = "/tmp/test-config-userdata-XXXXXX";
        _cleanup_free_ char *text = NULL, *err = NULL, *err2 = NULL;
        _cleanup_(config_freep) struct config *c = NULL, *c2 = NULL;
        int fd = mkstemp(path);

        CHECK(fd >= 0);
        CHECK(write(fd, "#cloud-config\n", 14) == 14);
        CHECK(asprintf(&text,
                       "cluster: c1\ncloud: os\ngroups:\n"
                       "  - {name: g, nodes: n1, flavor: f, image: i, user_data: %s}\n", path) > 0);
        CHECK_INT(config_load_string("ud", text, strlen(text), &c, &err), 0);
        if (c) {
                CHECK_STR(c->groups[0].user_data, path);
                /* read at load: the create never opens the file */
                CHECK_STR(c->groups[0].user_data_content, "#cloud-config\n");
                CHECK_INT(c->groups[0].user_data_len, 14);
        }

        /* too big for Nova */
        CHECK(ftruncate(fd, 60000) == 0);
        CHECK_INT(config_load_string("ud", text, strlen(text), &c2, &err2), -EINVAL);
        CHECK(err2 && strstr(err2, "is 60000 bytes, more than the limit of 49149"));
        close(fd);
        unlink(path);
}

/* More groups than CONFIG_MAX_NODES nodes in all. */
static void test_too_many_nodes(void) {
        _cleanup_free_ char *text = NULL, *err = NULL;
        _cleanup_(config_freep) struct config *c = NULL;
        char *p;
        size_t size = 0;
        FILE *m = open_memstream(&text, &size);

        fputs("cluster: c1\ncloud: os\ngroups:\n", m);
        for (int i = 0; i < 5; i++)
                fprintf(m, "  - {name: g%d, nodes: \"g%d-[0-65535]\", flavor: f, image: i}\n", i, i);
        fclose(m);
        CHECK_INT(config_load_string("many", text, strlen(text), &c, &err), -EINVAL);
        CHECK(err && (p = strstr(err, "many:8:23: ")) && strstr(p, "the groups have more than 262144 nodes in all"));
}

static void test_error_cap(void) {
        _cleanup_free_ char *text = NULL, *err = NULL;
        _cleanup_(config_freep) struct config *c = NULL;
        size_t size = 0;
        FILE *m = open_memstream(&text, &size);

        fputs("cluster: c1\ncloud: os\n", m);
        for (int i = 0; i < 80; i++)
                fprintf(m, "bogus%d: 1\n", i);
        fclose(m);
        CHECK_INT(config_load_string("cap", text, strlen(text), &c, &err), -EINVAL);
        CHECK(err && strstr(err, "\ncap: 31 more errors not shown\n"));
}

static void test_secret_file(void) {
        char path[] = "/tmp/test-config-secret-XXXXXX";
        _cleanup_free_ char *e1 = NULL, *e2 = NULL, *e3 = NULL, *want = NULL;
        int fd = mkstemp(path);

        CHECK(fd >= 0);
        close(fd);

        CHECK(chmod(path, 0600) == 0);
        CHECK_INT(config_check_secret_file(path, &e1), 0);
        CHECK(e1 == NULL);

        CHECK(chmod(path, 0640) == 0);
        CHECK_INT(config_check_secret_file(path, &e2), -EPERM);
        CHECK(asprintf(&want, "%s has mode 0640: a file holding secrets must not be accessible by group or others (chmod 600 %s)",
                       path, path) > 0);
        CHECK_STR(e2, want);

        CHECK(chmod(path, 0644) == 0);
        CHECK_INT(config_check_secret_file(path, &e3), -EPERM);
        CHECK(e3 && strstr(e3, "has mode 0644"));

        /* owned by someone else: only root can set that up */
        if (geteuid() == 0) {
                _cleanup_free_ char *e4 = NULL;
                CHECK(chmod(path, 0600) == 0);
                CHECK(chown(path, 65534, 65534) == 0);
                CHECK_INT(config_check_secret_file(path, &e4), -EPERM);
                CHECK(e4 && strstr(e4, "is owned by uid 65534"));
        } else
                printf("# not root: ownership check not exercised\n");

        CHECK_INT(config_check_secret_file("/nonexistent/secret", NULL), -ENOENT);
        unlink(path);
}

/* ssh: a private key must be a secret file (mode 0644 refused); the block
 * prints and re-parses. */
static void test_ssh(void) {
        char key[] = "/tmp/test-config-sshkey-XXXXXX", src[] = "/tmp/test-config-src-XXXXXX";
        _cleanup_free_ char *text = NULL, *err = NULL, *err2 = NULL, *err3 = NULL, *printed = NULL, *printed2 = NULL;
        _cleanup_(config_freep) struct config *c = NULL, *c2 = NULL, *c3 = NULL;
        int kfd = mkstemp(key), sfd = mkstemp(src);
        size_t size = 0;
        FILE *f;

        CHECK(kfd >= 0 && sfd >= 0);
        CHECK(write(kfd, "KEYBYTES\n", 9) == 9);
        close(kfd);
        close(sfd);
        CHECK(chmod(key, 0600) == 0);
        CHECK(asprintf(&text,
                       "cluster: c1\ncloud: os\ngroups:\n"
                       "  - name: g\n    nodes: n[1-2]\n    flavor: f\n    image: i\n"
                       "    ssh:\n"
                       "      private_key: %s\n"
                       "      files:\n"
                       "        - {src: %s, dest: /etc/munge/munge.key, mode: \"0400\", owner: munge, group: munge}\n"
                       "        - {src: %s, dest: /etc/default/slurmd}\n"
                       "      commands: [\"systemctl restart munge\", \"systemctl start slurmd\"]\n",
                       key, src, src) > 0);
        CHECK_INT(config_load_string("ssh", text, strlen(text), &c, &err), 0);
        if (err)
                printf("# %s", err);
        if (!c)
                return;
        const struct config_ssh *ssh = c->groups[0].ssh;
        CHECK(ssh != NULL);
        if (!ssh)
                return;
        CHECK_STR(ssh->user, "root");
        CHECK_INT(ssh->port, 22);
        CHECK_STR(ssh->private_key, key);
        /* the key's bytes are read at load: a push never opens the file */
        CHECK_INT(ssh->private_key_len, 9);
        CHECK(ssh->private_key_data && memcmp(ssh->private_key_data, "KEYBYTES\n", 9) == 0);
        CHECK_INT(ssh->connect_timeout_s, 10);
        CHECK_INT(ssh->console_poll_s, 5);
        CHECK_INT(ssh->n_files, 2);
        CHECK_STR(ssh->files[0].dest, "/etc/munge/munge.key");
        CHECK_INT(ssh->files[0].mode, 0400);
        CHECK_STR(ssh->files[0].owner, "munge");
        CHECK_STR(ssh->files[0].group, "munge");
        CHECK_INT(ssh->files[1].mode, 0644);
        CHECK(ssh->files[1].owner == NULL);
        CHECK_STR(ssh->commands[1], "systemctl start slurmd");
        CHECK(ssh->commands[2] == NULL);

        /* printed, re-parsed, printed the same */
        f = open_memstream(&printed, &size);
        CHECK_INT(config_print(c, f), 0);
        fclose(f);
        CHECK(strstr(printed, "    ssh:\n      user: root\n      port: 22\n"));
        CHECK(strstr(printed, "          mode: \"0400\"\n          owner: munge\n"));
        CHECK_INT(config_load_string("ssh2", printed, strlen(printed), &c2, &err2), 0);
        if (c2) {
                f = open_memstream(&printed2, &size);
                config_print(c2, f);
                fclose(f);
                CHECK_STR(printed2, printed);
        }

        /* a FIFO in the key's place is refused at load, without blocking */
        {
                _cleanup_(config_freep) struct config *c4 = NULL;
                _cleanup_free_ char *err4 = NULL;
                CHECK(unlink(key) == 0 && mkfifo(key, 0600) == 0);
                CHECK_INT(config_load_string("ssh", text, strlen(text), &c4, &err4), -EINVAL);
                CHECK(err4 && strstr(err4, "is a FIFO, not a regular file"));
                CHECK(unlink(key) == 0);
                kfd = open(key, O_WRONLY | O_CREAT | O_EXCL, 0600);
                CHECK(kfd >= 0);
                close(kfd);
        }

        /* a private key others can read is refused at load */
        CHECK(chmod(key, 0644) == 0);
        CHECK_INT(config_load_string("ssh", text, strlen(text), &c3, &err3), -EINVAL);
        CHECK(err3 && strstr(err3, "groups[0].ssh.private_key: ") && strstr(err3, "has mode 0644: a file holding secrets"));
        unlink(key);
        unlink(src);
}

static void test_no_good_cases_found(void) {
        TEST_FAIL("no config/good/*.yaml");
}

static void test_no_bad_cases_found(void) {
        TEST_FAIL("no config/bad/*.yaml");
}

int main(void) {
        const char *u = getenv("ELASTICD_UPDATE_GOLDEN");

        update_golden = u && *u && strcmp(u, "0") != 0;
        if (chdir(SRCDIR "/tests/unit") < 0) {
                printf("Bail out! cannot chdir to the test directory\n");
                return 1;
        }

        if (run_dir("config/good", good_case) == 0)
                RUN(test_no_good_cases_found);
        if (run_dir("config/bad", bad_case) == 0)
                RUN(test_no_bad_cases_found);
        RUN(test_defaults);
        RUN(test_group_find);
        RUN(test_node_order);
        RUN(test_example);
        RUN(test_missing_file);
        RUN(test_fifo);
        RUN(test_world_writable);
        RUN(test_unicode_breaks);
        RUN(test_too_big);
        RUN(test_nul_and_crlf);
        RUN(test_user_data);
        RUN(test_too_many_nodes);
        RUN(test_error_cap);
        RUN(test_secret_file);
        RUN(test_ssh);
        return test_done();
}
