/* test-clouds.c - clouds.yaml/secure.yaml: search path, merge, auth types, errors, secrets. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cloud/clouds.h"
#include "test.h"

#define PW "SECRETpw-4711"
#define AC "SECRETac-0815"

static char dir[256];

static void write_file(const char *rel, mode_t mode, const char *text) {
        char p[512];
        int fd;

        snprintf(p, sizeof(p), "%s/%s", dir, rel);
        unlink(p);
        fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
        if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t) strlen(text))
                TEST_FAIL("cannot write %s", p);
        if (fd >= 0) {
                fchmod(fd, mode);
                close(fd);
        }
}

static char *path(const char *rel) {
        static char p[4][512];
        static int i;
        i = (i + 1) % 4;
        snprintf(p[i], sizeof(p[i]), "%s/%s", dir, rel);
        return p[i];
}

static void check_no_secret(const char *s) {
        if (s && (strstr(s, PW) || strstr(s, AC) || strstr(s, "SECRET")))
                TEST_FAIL("secret in error: %s", s);
}

/* Load NAME from a single clouds file with TEXT; returns r, sets *ret_error. */
static int load_text(const char *text, mode_t mode, const char *name, struct cloud_config **ret, char **ret_error) {
        write_file("one.yaml", mode, text);
        int r = clouds_load_files(path("one.yaml"), NULL, name, ret, ret_error);
        check_no_secret(*ret_error);
        return r;
}

static const char *password_cloud =
        "clouds:\n"
        "  other: {auth: {auth_url: 'http://x'}}\n"
        "  prod:\n"
        "    auth_type: password\n"
        "    auth:\n"
        "      auth_url: https://keystone.example.org:5000/v3\n"
        "      username: demo\n"
        "      password: " PW "\n"
        "      user_domain_name: Default\n"
        "      project_name: hpc\n"
        "      project_domain_id: default\n"
        "    region_name: RegionTwo\n"
        "    interface: internal\n"
        "    cacert: /etc/passwd\n"
        "    verify: yes\n"
        "    identity_api_version: 3\n"
        "    compute_endpoint_override: http://nova.example.org:8774/v2.1/\n"
        "    image_api_version: 2\n";

static void test_password(void) {
        struct cloud_config *c = NULL;
        _cleanup_free_ char *err = NULL;
        CHECK_INT(load_text(password_cloud, 0600, "prod", &c, &err), 0);
        if (!c) {
                TEST_FAIL("%s", err);
                return;
        }
        CHECK_STR(c->name, "prod");
        CHECK_STR(c->clouds_file, path("one.yaml"));
        CHECK(c->secure_file == NULL);
        CHECK_INT(c->auth_type, CLOUD_AUTH_PASSWORD);
        CHECK_STR(c->auth_url, "https://keystone.example.org:5000/v3");
        CHECK_STR(c->username, "demo");
        CHECK_STR(c->password, PW);
        CHECK_STR(c->user_domain_name, "Default");
        CHECK_STR(c->project_name, "hpc");
        CHECK_STR(c->project_domain_id, "default");
        CHECK_STR(c->region_name, "RegionTwo");
        CHECK_INT(c->interface, CLOUD_INTERFACE_INTERNAL);
        CHECK_STR(c->cacert, "/etc/passwd");
        CHECK(c->verify);
        CHECK_STR(c->compute_endpoint_override, "http://nova.example.org:8774/v2.1/");
        CHECK(c->image_endpoint_override == NULL);
        CHECK_STR(clouds_interface_to_string(c->interface), "internal");
        CHECK_STR(clouds_auth_type_to_string(c->auth_type), "password");

        char *printed = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&printed, &size);
        CHECK_INT(clouds_print(c, f), 0);
        fclose(f);
        check_no_secret(printed);
        CHECK(printed && strstr(printed, "\npassword: <hidden>\n"));
        CHECK(printed && strstr(printed, "\nregion_name: RegionTwo\ninterface: internal\n"));
        CHECK(printed && !strstr(printed, "application_credential"));
        free(printed);
        clouds_free(c);
}

static void test_appcred(void) {
        struct cloud_config *c = NULL;
        char *err = NULL;
        const char *by_id =
                "clouds:\n"
                "  ac:\n"
                "    auth_type: v3applicationcredential\n"
                "    auth:\n"
                "      auth_url: http://127.0.0.1:5000\n"
                "      application_credential_id: 0123abcd\n"
                "      application_credential_secret: " AC "\n"
                "    verify: false\n";
        CHECK_INT(load_text(by_id, 0600, "ac", &c, &err), 0);
        if (c) {
                CHECK_INT(c->auth_type, CLOUD_AUTH_APPLICATION_CREDENTIAL);
                CHECK_STR(c->application_credential_id, "0123abcd");
                CHECK_STR(c->application_credential_secret, AC);
                CHECK(!c->verify);
                CHECK_INT(c->interface, CLOUD_INTERFACE_PUBLIC);
                CHECK(c->region_name == NULL);
        }
        c = clouds_free(c);
        free(err);
        err = NULL;

        const char *by_name =
                "clouds:\n"
                "  ac:\n"
                "    auth:\n"                       /* no auth_type: inferred from the lone secret */
                "      auth_url: http://127.0.0.1:5000/v3/\n"
                "      application_credential_name: demo-appcred\n"
                "      application_credential_secret: " AC "\n"
                "      username: demo\n"
                "      domain_name: Default\n"
                "    regions: [{name: RegionOne}, RegionTwo]\n"
                "    endpoint_type: adminURL\n";
        CHECK_INT(load_text(by_name, 0400, "ac", &c, &err), 0);
        if (c) {
                CHECK_INT(c->auth_type, CLOUD_AUTH_APPLICATION_CREDENTIAL);
                CHECK_STR(c->application_credential_name, "demo-appcred");
                CHECK_STR(c->username, "demo");
                CHECK_STR(c->user_domain_name, "Default");
                CHECK_STR(c->project_domain_name, "Default");
                CHECK_STR(c->region_name, "RegionOne");
                CHECK_INT(c->interface, CLOUD_INTERFACE_ADMIN);
        } else
                TEST_FAIL("%s", err);
        clouds_free(c);
        free(err);
}

/* The clouds.yaml that the OpenStack harness (up.sh) writes. */
static void test_harness_file(void) {
        const char *t =
                "clouds:\n"
                "  harness-admin:\n"
                "    auth: {auth_url: http://127.0.0.1:5000/v3, username: admin, password: admin,\n"
                "           project_name: admin, user_domain_name: Default, project_domain_name: Default}\n"
                "    region_name: RegionOne\n"
                "    identity_api_version: 3\n"
                "  harness-demo:\n"
                "    auth: {auth_url: http://127.0.0.1:5000/v3, username: demo, password: demo,\n"
                "           project_name: demo, user_domain_name: Default, project_domain_name: Default}\n"
                "    region_name: RegionOne\n"
                "    identity_api_version: 3\n"
                "  harness-appcred:\n"
                "    auth_type: v3applicationcredential\n"
                "    auth: {auth_url: http://127.0.0.1:5000/v3,\n"
                "           application_credential_id: e37530918dac483b8cd182fe3057d972,\n"
                "           application_credential_secret: s3cr3t-appcred}\n"
                "    region_name: RegionOne\n"
                "    identity_api_version: 3\n";
        struct cloud_config *c = NULL;
        char *err = NULL;
        write_file("harness.yaml", 0600, t);
        CHECK_INT(clouds_load_files(path("harness.yaml"), NULL, "harness-demo", &c, &err), 0);
        if (c) {
                CHECK_STR(c->username, "demo");
                CHECK_STR(c->password, "demo");
                CHECK_STR(c->project_domain_name, "Default");
                CHECK_STR(c->region_name, "RegionOne");
        } else
                TEST_FAIL("%s", err);
        c = clouds_free(c);
        free(err);
        err = NULL;
        CHECK_INT(clouds_load_files(path("harness.yaml"), NULL, "harness-appcred", &c, &err), 0);
        if (c) {
                CHECK_INT(c->auth_type, CLOUD_AUTH_APPLICATION_CREDENTIAL);
                CHECK_STR(c->application_credential_id, "e37530918dac483b8cd182fe3057d972");
                CHECK_STR(c->application_credential_secret, "s3cr3t-appcred");
        } else
                TEST_FAIL("%s", err);
        clouds_free(c);
        free(err);
}

static void test_aliases(void) {
        struct cloud_config *c = NULL;
        _cleanup_free_ char *err = NULL;
        const char *t =
                "clouds:\n"
                "  old:\n"
                "    auth:\n"
                "      auth_url: http://k:5000/v3\n"
                "      user_id: 6a7dacd4\n"
                "      password: \"" PW "\"\n"
                "      tenant_name: demo\n"
                "      domain_id: default\n"
                "      project_id: ~\n"
                "      project_domain_name: null\n"
                "    region_name:\n"
                "    regions: [RegionThree]\n";
        CHECK_INT(load_text(t, 0600, "old", &c, &err), 0);
        if (c) {
                CHECK_STR(c->user_id, "6a7dacd4");
                CHECK_STR(c->project_name, "demo");
                CHECK_STR(c->project_domain_id, "default");
                CHECK(c->project_id == NULL && c->project_domain_name == NULL);
                CHECK_STR(c->user_domain_id, "default");
                CHECK_STR(c->region_name, "RegionThree");
                CHECK_STR(c->password, PW);
        }
        clouds_free(c);
}

static void test_unknown_cloud(void) {
        struct cloud_config *c = NULL;
        _cleanup_free_ char *err = NULL;
        CHECK_INT(load_text(password_cloud, 0600, "staging", &c, &err), -ENOENT);
        CHECK(c == NULL);
        CHECK(err && strstr(err, "no cloud 'staging'; it has: other, prod"));
        CHECK(err && strstr(err, path("one.yaml")));

        char *e2 = NULL;
        CHECK_INT(load_text("clouds: {}\n", 0600, "x", &c, &e2), -ENOENT);
        CHECK(e2 && strstr(e2, "it has none"));
        free(e2);
        e2 = NULL;
        CHECK_INT(load_text("", 0600, "x", &c, &e2), -ENOENT);
        CHECK(e2 && strstr(e2, "empty file"));
        free(e2);
        e2 = NULL;
        CHECK_INT(load_text("foo: 1\n", 0600, "x", &c, &e2), -ENOENT);
        CHECK(e2 && strstr(e2, "no \"clouds\" key"));
        free(e2);
        e2 = NULL;
        CHECK_INT(clouds_load_files(path("does-not-exist.yaml"), NULL, "x", &c, &e2), -ENOENT);
        CHECK(e2 && strstr(e2, "cannot open"));
        free(e2);
}

/* Each config is broken in one way: the error names file:line:col and the key. */
static void test_errors(void) {
        static const struct {
                const char *text, *where;
        } t[] = {
                { "clouds: [a]\n", "one.yaml:1:9: clouds: expected a mapping" },
                { "- a\n", "one.yaml:1:1: expected a mapping" },
                { "clouds:\n  c: 5\n", "one.yaml:2:6: cloud 'c': c: expected a mapping" },
                { "clouds:\n  c:\n    auth: []\n", "one.yaml:3:11: cloud 'c': auth: expected a mapping" },
                { "clouds:\n  c:\n    auth:\n      password: " PW "\n      auth_url: [x]\n", "one.yaml:5:17: cloud 'c': auth.auth_url: expected a string" },
                { "clouds:\n  c:\n    auth:\n      password: " PW "\n", "one.yaml:4:7: cloud 'c': auth.auth_url: missing" },
                { "clouds:\n  c:\n    auth:\n      auth_url: http://k\n", "one.yaml:4:7: cloud 'c': auth.password: missing" },
                { "clouds:\n  c:\n    auth: {auth_url: http://k, password: " PW "}\n", "cloud 'c': auth.username: missing" },
                { "clouds:\n  c:\n    auth: {auth_url: http://k, password: " PW ", username: u}\n", "cloud 'c': auth.user_domain_name: missing" },
                { "clouds:\n  c:\n    auth: {auth_url: http://k, password: " PW ", username: u, user_domain_id: d}\n", "cloud 'c': auth.project_name: missing" },
                { "clouds:\n  c:\n    auth: {auth_url: http://k, password: " PW ", user_id: u, project_name: p}\n", "cloud 'c': auth.project_domain_name: missing" },
                { "clouds:\n  c:\n    auth: {auth_url: http://k, password: " PW ", user_id: u, project_id: p, application_credential_secret: " AC "}\n", "auth.application_credential_secret: given with password auth" },
                { "clouds:\n  c:\n    auth_type: v3applicationcredential\n    auth: {auth_url: http://k, application_credential_id: i}\n", "auth.application_credential_secret: missing" },
                { "clouds:\n  c:\n    auth_type: v3applicationcredential\n    auth: {auth_url: http://k, application_credential_secret: " AC "}\n", "auth.application_credential_id: missing" },
                { "clouds:\n  c:\n    auth_type: v3applicationcredential\n    auth: {auth_url: http://k, application_credential_name: n, application_credential_secret: " AC "}\n", "auth.username: missing" },
                { "clouds:\n  c:\n    auth_type: v3applicationcredential\n    auth: {auth_url: http://k, application_credential_name: n, username: u, application_credential_secret: " AC "}\n", "auth.user_domain_name: missing" },
                { "clouds:\n  c:\n    auth_type: v3applicationcredential\n    auth: {auth_url: http://k, application_credential_id: n, password: " PW ", application_credential_secret: " AC "}\n", "auth.password: given with application credential auth" },
                { "clouds:\n  c:\n    auth_type: token\n    auth: {auth_url: http://k}\n", "one.yaml:3:16: cloud 'c': auth_type: 'token' is not supported" },
                { "clouds:\n  c:\n    auth: {auth_url: http://k, token: " PW "}\n", "one.yaml:3:32: cloud 'c': auth.token: unknown or unsupported key" },
                { "clouds:\n  c:\n    interface: outside\n    auth: {auth_url: http://k}\n", "one.yaml:3:16: cloud 'c': interface: must be public, internal or admin" },
                { "clouds:\n  c:\n    verify: maybe\n    auth: {auth_url: http://k}\n", "one.yaml:3:13: cloud 'c': verify: expected true or false" },
                { "clouds:\n  c:\n    identity_api_version: 2\n    auth: {auth_url: http://k}\n", "one.yaml:3:27: cloud 'c': identity_api_version: only Identity v3" },
                { "clouds:\n  c:\n    regions: RegionOne\n    auth: {auth_url: http://k}\n", "one.yaml:3:14: cloud 'c': regions: expected a list" },
                { "clouds:\n  c:\n    cacert: /nonexistent/ca.pem\n    auth: {auth_url: http://k}\n", "one.yaml:3:13: cloud 'c': cacert: the CA bundle /nonexistent/ca.pem: cannot open: No such file or directory" },
                { "clouds:\n  c:\n    cacert: /dev/null\n    auth: {auth_url: http://k}\n", "one.yaml:3:13: cloud 'c': cacert: the CA bundle /dev/null: is a character device, not a regular file" },
                { "clouds:\n  c:\n    auth: {auth_url: 'http://demo:" PW "@k/v3', username: u, password: p}\n", "one.yaml:3:22: cloud 'c': auth.auth_url: the URL carries credentials (user:password@ or a token in the query); give a plain URL and put the credentials in auth.username/auth.password" },
                { "clouds:\n  c:\n    compute_endpoint_override: 'http://n/v2.1?token=" PW "'\n    auth: {auth_url: http://k}\n", "one.yaml:3:32: cloud 'c': compute_endpoint_override: the URL carries credentials" },
                { "clouds:\n  c:\n    auth: {auth_url: http://k}\n    region_name: A\n    region_name: B\n", "one.yaml:5:5: duplicate key (first at line 4, column 5)" },
                { "clouds:\n  c:\n    auth: {auth_url: http://k, password: " PW ", password: x}\n", "one.yaml:3:57: duplicate key (first at line 3, column 32)" },
                { "clouds:\n  c:\n    {a: b}: c\n", "one.yaml:3:5: a key must be a plain name, not a mapping" },
                { "clouds:\n  c:\n    regions: [{}]\n    auth: {auth_url: http://k}\n", "cloud 'c': regions: the first entry has no name" },
                { "clouds:\n  c:\n    auth:\n      password: " PW "\n     bad: [\n", "one.yaml:5:" },
                { "clouds:\n  c:\n    auth: {password: '" PW "\n", "one.yaml:" },
                { "clouds:\n  c:\n    auth: {password: \"" PW "\\q\"}\n", "one.yaml:3:" },
                { "clouds: {c: {auth: {password: &a " PW ", username: *b}}}\n", "one.yaml:" },
        };
        for (size_t i = 0; i < ELEMENTSOF(t); i++) {
                struct cloud_config *c = NULL;
                char *err = NULL;
                int r = load_text(t[i].text, 0600, "c", &c, &err);
                if (r >= 0 || c || !err || !strstr(err, t[i].where))
                        TEST_FAIL("case %zu: r=%d error=\"%s\", expected \"%s\"", i, r, err ?: "(null)", t[i].where);
                clouds_free(c);
                free(err);
        }
}

static void test_permissions(void) {
        struct cloud_config *c = NULL;
        char *err = NULL;

        CHECK_INT(load_text(password_cloud, 0644, "prod", &c, &err), -EPERM);
        CHECK(c == NULL);
        CHECK(err && strstr(err, "holds auth.password of cloud 'prod'"));
        CHECK(err && strstr(err, "mode 0644"));
        free(err);
        err = NULL;
        CHECK_INT(load_text(password_cloud, 0620, "prod", &c, &err), -EPERM);
        free(err);
        err = NULL;
        CHECK_INT(load_text(password_cloud, 0640, "prod", &c, &err), -EPERM);
        free(err);
        err = NULL;

        /* a world-readable clouds.yaml without secrets is fine when secure.yaml is private */
        const char *pub =
                "clouds:\n  prod:\n    auth:\n      auth_url: http://k/v3\n      username: demo\n"
                "      user_domain_name: Default\n      project_name: demo\n      project_domain_name: Default\n"
                "    region_name: RegionOne\n";
        const char *sec = "clouds:\n  prod:\n    auth:\n      password: " PW "\n    region_name: RegionTwo\n";
        write_file("pub.yaml", 0644, pub);
        write_file("sec.yaml", 0600, sec);
        CHECK_INT(clouds_load_files(path("pub.yaml"), path("sec.yaml"), "prod", &c, &err), 0);
        if (c) {
                CHECK_STR(c->password, PW);
                CHECK_STR(c->region_name, "RegionTwo");      /* secure wins */
                CHECK_STR(c->username, "demo");              /* deep merge keeps clouds' auth keys */
                CHECK_STR(c->secure_file, path("sec.yaml"));
        } else
                TEST_FAIL("%s", err);
        c = clouds_free(c);
        free(err);
        err = NULL;

        write_file("sec.yaml", 0604, sec);
        CHECK_INT(clouds_load_files(path("pub.yaml"), path("sec.yaml"), "prod", &c, &err), -EPERM);
        CHECK(err && strstr(err, "sec.yaml: holds auth.password"));
        check_no_secret(err);
        free(err);
        err = NULL;

        /* secure.yaml without this cloud is ignored; then the password is missing */
        write_file("sec.yaml", 0600, "clouds:\n  other:\n    auth: {password: x}\n");
        CHECK_INT(clouds_load_files(path("pub.yaml"), path("sec.yaml"), "prod", &c, &err), -EINVAL);
        CHECK(err && strstr(err, "auth.password: missing"));
        free(err);
}

static void test_search(void) {
        char **v = NULL;
        char xdg[300], home[300];
        snprintf(xdg, sizeof(xdg), "%s/xdg", dir);
        snprintf(home, sizeof(home), "%s/home", dir);

        setenv("XDG_CONFIG_HOME", xdg, 1);
        CHECK_INT(clouds_search_path("clouds.yaml", &v), 0);
        if (v) {
                CHECK_STR(v[0], "./clouds.yaml");
                CHECK(strstr(v[1], "/xdg/openstack/clouds.yaml"));
                CHECK_STR(v[2], "/etc/openstack/clouds.yaml");
                CHECK(v[3] == NULL);
                for (char **p = v; *p; p++)
                        free(*p);
                free(v);
        }
        unsetenv("XDG_CONFIG_HOME");
        setenv("HOME", home, 1);
        CHECK_INT(clouds_search_path("secure.yaml", &v), 0);
        if (v) {
                CHECK(strstr(v[1], "/home/.config/openstack/secure.yaml"));
                for (char **p = v; *p; p++)
                        free(*p);
                free(v);
        }

        /* ./ wins over XDG; XDG over /etc; the env var and an explicit path over all */
        setenv("XDG_CONFIG_HOME", xdg, 1);
        unsetenv("OS_CLIENT_CONFIG_FILE");
        unsetenv("OS_CLIENT_SECURE_FILE");
        mkdir(path("xdg"), 0700);
        mkdir(path("xdg/openstack"), 0700);
        mkdir(path("cwd"), 0700);
#define TMPL "clouds:\n  c:\n    region_name: %s\n    auth:\n      auth_url: http://k\n" \
             "      user_id: u\n      project_id: p\n"
        char text[256];
        snprintf(text, sizeof(text), TMPL, "FromXdg");
        write_file("xdg/openstack/clouds.yaml", 0644, text);
        write_file("xdg/openstack/secure.yaml", 0600, "clouds: {c: {auth: {password: " PW "}}}\n");
        snprintf(text, sizeof(text), TMPL, "FromCwd");
        write_file("cwd/clouds.yaml", 0644, text);
        snprintf(text, sizeof(text), TMPL, "FromEnv");
        write_file("env.yaml", 0644, text);
        snprintf(text, sizeof(text), TMPL, "FromExplicit");
        write_file("explicit.yaml", 0644, text);

        char old[512];
        if (!getcwd(old, sizeof(old)) || chdir(path("cwd")) < 0) {
                TEST_FAIL("chdir");
                return;
        }
        struct cloud_config *c = NULL;
        char *err = NULL;
        CHECK_INT(clouds_load(NULL, "c", &c, &err), 0);
        CHECK(c && strcmp(c->region_name, "FromCwd") == 0);
        CHECK(c && strcmp(c->clouds_file, "./clouds.yaml") == 0);
        /* no secure.yaml beside it: the XDG one is merged */
        CHECK(c && c->secure_file && strstr(c->secure_file, "xdg/openstack/secure.yaml"));
        c = clouds_free(c);
        free(err);
        err = NULL;

        unlink("clouds.yaml");
        CHECK_INT(clouds_load(NULL, "c", &c, &err), 0);
        CHECK(c && strcmp(c->region_name, "FromXdg") == 0);
        c = clouds_free(c);
        free(err);
        err = NULL;

        setenv("OS_CLIENT_CONFIG_FILE", path("env.yaml"), 1);
        CHECK_INT(clouds_load(NULL, "c", &c, &err), 0);
        CHECK(c && strcmp(c->region_name, "FromEnv") == 0);
        c = clouds_free(c);
        free(err);
        err = NULL;

        /* an explicit file takes secure.yaml only from beside it */
        CHECK_INT(clouds_load(path("explicit.yaml"), "c", &c, &err), -EINVAL);
        CHECK(err && strstr(err, "auth.password: missing"));
        free(err);
        err = NULL;
        write_file("secure.yaml", 0600, "clouds: {c: {auth: {password: " PW "}}}\n");
        CHECK_INT(clouds_load(path("explicit.yaml"), "c", &c, &err), 0);
        CHECK(c && strcmp(c->region_name, "FromExplicit") == 0);
        CHECK(c && c->secure_file && strcmp(c->secure_file, path("secure.yaml")) == 0);
        c = clouds_free(c);
        free(err);
        err = NULL;

        /* OS_CLIENT_SECURE_FILE wins */
        write_file("sec2.yaml", 0600, "clouds: {c: {region_name: FromSecureEnv, auth: {password: " PW "}}}\n");
        setenv("OS_CLIENT_SECURE_FILE", path("sec2.yaml"), 1);
        CHECK_INT(clouds_load(path("explicit.yaml"), "c", &c, &err), 0);
        CHECK(c && strcmp(c->region_name, "FromSecureEnv") == 0);
        c = clouds_free(c);
        free(err);
        err = NULL;
        unsetenv("OS_CLIENT_SECURE_FILE");
        unsetenv("OS_CLIENT_CONFIG_FILE");

        /* nothing anywhere (unless this machine has /etc/openstack/clouds.yaml) */
        unlink(path("xdg/openstack/clouds.yaml"));
        if (access("/etc/openstack/clouds.yaml", F_OK) < 0) {
                CHECK_INT(clouds_load(NULL, "c", &c, &err), -ENOENT);
                CHECK(err && strstr(err, "no clouds.yaml found"));
                free(err);
                err = NULL;
        }
        CHECK_INT(clouds_load(NULL, "", &c, &err), -EINVAL);
        free(err);
        if (chdir(old) < 0)
                TEST_FAIL("chdir back");
}

static void cleanup(void) {
        char cmd[600];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        if (system(cmd) != 0)
                fprintf(stderr, "# cannot remove %s\n", dir);
}

/* 200,000 levels of nesting: refused at level 17 with its place, at once
 * (libyaml's loader took 552 s); a duplicate key in secure.yaml too. */
static void test_nesting_and_secure_dups(void) {
        struct cloud_config *c = NULL;
        char *err = NULL, *deep;
        size_t n = 200000;

        deep = malloc(2 * n + 64);
        CHECK(deep != NULL);
        if (!deep)
                return;
        strcpy(deep, "clouds: ");
        memset(deep + 8, '[', n);
        deep[8 + n] = '\0';
        write_file("one.yaml", 0600, deep);
        free(deep);
        CHECK_INT(clouds_load_files(path("one.yaml"), NULL, "c", &c, &err), -EINVAL);
        CHECK(err && strstr(err, "one.yaml:1:24: nested deeper than 16 levels"));
        free(err);
        err = NULL;

        write_file("one.yaml", 0600, "clouds:\n  c: {auth: {auth_url: 'http://k', username: u}}\n");
        write_file("secure.yaml", 0600, "clouds:\n  c:\n    auth:\n      password: " PW "\n      password: " PW "\n");
        CHECK_INT(clouds_load_files(path("one.yaml"), path("secure.yaml"), "c", &c, &err), -EINVAL);
        CHECK(err && strstr(err, "secure.yaml:5:7: duplicate key (first at line 4, column 7)"));
        check_no_secret(err);
        free(err);
}

/* A FIFO as clouds.yaml or secure.yaml is refused at once, never read
 * (start-up would hang with SIGTERM blocked). */
static void test_fifo(void) {
        struct cloud_config *c = NULL;
        char *err = NULL;

        unlink(path("fifo.yaml"));
        CHECK(mkfifo(path("fifo.yaml"), 0600) == 0);
        CHECK_INT(clouds_load_files(path("fifo.yaml"), NULL, "c", &c, &err), -EINVAL);
        CHECK(err && strstr(err, "fifo.yaml: is a FIFO, not a regular file"));
        free(err);
        err = NULL;
        write_file("one.yaml", 0600, "clouds:\n  c: {auth: {auth_url: 'http://k'}}\n");
        CHECK_INT(clouds_load_files(path("one.yaml"), path("fifo.yaml"), "c", &c, &err), -EINVAL);
        CHECK(err && strstr(err, "fifo.yaml: is a FIFO, not a regular file"));
        free(err);
        unlink(path("fifo.yaml"));
}

int main(void) {
        snprintf(dir, sizeof(dir), "/tmp/test-clouds-%d", (int) getpid());
        if (mkdir(dir, 0700) < 0) {
                perror("mkdir");
                return 1;
        }
        umask(022);
        RUN(test_password);
        RUN(test_appcred);
        RUN(test_harness_file);
        RUN(test_aliases);
        RUN(test_unknown_cloud);
        RUN(test_errors);
        RUN(test_permissions);
        RUN(test_search);
        RUN(test_fifo);
        RUN(test_nesting_and_secure_dups);
        cleanup();
        return test_done();
}
