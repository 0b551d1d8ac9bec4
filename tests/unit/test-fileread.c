/* test-fileread.c - fileread: regular files only, never blocking, capped before any read. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/fileread.h"
#include "test.h"

static char dir[64];

static char *at(const char *name) {
        static char p[2][128];
        static int i;
        i ^= 1;
        snprintf(p[i], sizeof(p[i]), "%s/%s", dir, name);
        return p[i];
}

static void put(const char *name, const char *text) {
        FILE *f = fopen(at(name), "we");
        CHECK(f != NULL);
        if (f) {
                fputs(text, f);
                fclose(f);
        }
}

static void test_regular(void) {
        _cleanup_free_ char *data = NULL;
        size_t len = 0;

        put("a", "hello\n");
        CHECK_INT(fileread_all(at("a"), 0, 6, &data, &len, NULL), 0);
        CHECK_STR(data, "hello\n");
        CHECK_INT(len, 6);
}

static void test_empty(void) {
        _cleanup_free_ char *data = NULL;
        size_t len = 1;

        put("e", "");
        CHECK_INT(fileread_all(at("e"), 0, 0, &data, &len, NULL), 0);
        CHECK_STR(data, "");
        CHECK_INT(len, 0);
}

/* Over the cap: refused from fstat's size, before reading. */
static void test_too_big(void) {
        _cleanup_free_ char *data = NULL, *err = NULL;
        size_t len = 0;

        put("big", "0123456789");
        CHECK_INT(fileread_all(at("big"), 0, 9, &data, &len, &err), -EFBIG);
        CHECK(data == NULL);
        CHECK(err && strstr(err, "is 10 bytes, more than the limit of 9"));
}

/* Opening a FIFO for reading blocks until a writer comes, unless O_NONBLOCK:
 * this returns at once (the test would hang otherwise). */
static void test_fifo(void) {
        _cleanup_free_ char *data = NULL, *err = NULL;
        size_t len = 0;

        CHECK(mkfifo(at("fifo"), 0600) == 0);
        CHECK_INT(fileread_all(at("fifo"), 0, 100, &data, &len, &err), -EINVAL);
        CHECK(err && strstr(err, "/fifo: is a FIFO, not a regular file"));
}

static void test_directory_and_device(void) {
        _cleanup_free_ char *e1 = NULL, *e2 = NULL, *e3 = NULL;

        CHECK_INT(fileread_open(dir, 0, 100, NULL, &e1), -EINVAL);
        CHECK(e1 && strstr(e1, "is a directory, not a regular file"));
        CHECK_INT(fileread_open("/dev/null", 0, 100, NULL, &e2), -EINVAL);
        CHECK(e2 && strstr(e2, "is a character device, not a regular file"));
        CHECK_INT(fileread_open(at("missing"), 0, 100, NULL, &e3), -ENOENT);
        CHECK(e3 && strstr(e3, "/missing: cannot open: No such file or directory"));
}

static void test_nofollow(void) {
        _cleanup_free_ char *err = NULL;
        int fd;

        put("target", "x");
        CHECK(symlink(at("target"), at("link")) == 0);
        fd = fileread_open(at("link"), 0, 100, NULL, NULL);
        CHECK(fd >= 0);
        if (fd >= 0) {
                CHECK((fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0);
                close(fd);
        }
        CHECK_INT(fileread_open(at("link"), FILEREAD_NOFOLLOW, 100, NULL, &err), -ELOOP);
        CHECK(err && strstr(err, "is a symbolic link"));
}

int main(void) {
        snprintf(dir, sizeof(dir), "/tmp/test-fileread-%d", (int) getpid());
        if (mkdir(dir, 0700) < 0) {
                perror("mkdir");
                return 1;
        }
        RUN(test_regular);
        RUN(test_empty);
        RUN(test_too_big);
        RUN(test_fifo);
        RUN(test_directory_and_device);
        RUN(test_nofollow);
        unlink(at("a"));
        unlink(at("e"));
        unlink(at("big"));
        unlink(at("fifo"));
        unlink(at("target"));
        unlink(at("link"));
        rmdir(dir);
        return test_done();
}
