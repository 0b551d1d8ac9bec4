/* fileread.c - non-blocking, regular-only, size-capped file reading. */
#include "util/fileread.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/errmsg.h"

const char *fileread_kind(const struct stat *st) {
        switch (st->st_mode & S_IFMT) {
        case S_IFREG:  return "a regular file";
        case S_IFDIR:  return "a directory";
        case S_IFIFO:  return "a FIFO";
        case S_IFSOCK: return "a socket";
        case S_IFCHR:  return "a character device";
        case S_IFBLK:  return "a block device";
        case S_IFLNK:  return "a symbolic link";
        default:       return "not a regular file";
        }
}

int fileread_open(const char *path, int flags, size_t max_bytes, struct stat *ret_st, char **ret_error) {
        struct stat st;
        int fd, r;

        fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC |
                        ((flags & FILEREAD_NOFOLLOW) ? O_NOFOLLOW : 0));
        if (fd < 0) {
                r = negative_errno();
                if (r == -ELOOP && (flags & FILEREAD_NOFOLLOW))
                        return errmsg(ret_error, r, "%s: is a symbolic link; give the file itself", path);
                return errmsg(ret_error, r, "%s: cannot open: %s", path, strerror(-r));
        }
        if (fstat(fd, &st) < 0) {
                r = negative_errno();
                close(fd);
                return errmsg(ret_error, r, "%s: cannot stat: %s", path, strerror(-r));
        }
        if (!S_ISREG(st.st_mode)) {
                close(fd);
                return errmsg(ret_error, -EINVAL, "%s: is %s, not a regular file", path, fileread_kind(&st));
        }
        if ((size_t) st.st_size > max_bytes) {
                close(fd);
                return errmsg(ret_error, -EFBIG, "%s: is %lld bytes, more than the limit of %zu", path,
                              (long long) st.st_size, max_bytes);
        }
        if (ret_st)
                *ret_st = st;
        return fd;
}

int fileread_fd_all(int fd, const struct stat *st, const char *path, size_t max_bytes, char **ret_data,
                    size_t *ret_len, char **ret_error) {
        _cleanup_free_ char *buf = NULL;
        size_t len = 0, cap;

        /* One byte more than allowed tells a file that grew past the cap. */
        cap = (size_t) st->st_size < max_bytes ? (size_t) st->st_size + 1 : max_bytes + 1;
        buf = malloc(cap + 1);
        if (!buf)
                return -ENOMEM;
        for (;;) {
                ssize_t n;

                if (len == cap) {
                        char *p;
                        if (cap > max_bytes)
                                break;
                        cap = cap * 2 > max_bytes + 1 ? max_bytes + 1 : cap * 2;
                        p = realloc(buf, cap + 1);
                        if (!p) {
                                explicit_bzero(buf, len);
                                return -ENOMEM;
                        }
                        buf = p;
                }
                n = read(fd, buf + len, cap - len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        int r = negative_errno();
                        explicit_bzero(buf, len);
                        return errmsg(ret_error, r, "%s: cannot read: %s", path, strerror(-r));
                }
                if (n == 0)
                        break;
                len += (size_t) n;
        }
        if (len > max_bytes) {
                explicit_bzero(buf, len);
                return errmsg(ret_error, -EFBIG, "%s: grew past the limit of %zu bytes while read", path, max_bytes);
        }
        buf[len] = '\0';
        *ret_data = TAKE_PTR(buf);
        *ret_len = len;
        return 0;
}

int fileread_all(const char *path, int flags, size_t max_bytes, char **ret_data, size_t *ret_len,
                 char **ret_error) {
        _cleanup_close_ int fd = -1;
        struct stat st;

        fd = fileread_open(path, flags, max_bytes, &st, ret_error);
        if (fd < 0)
                return fd;
        return fileread_fd_all(fd, &st, path, max_bytes, ret_data, ret_len, ret_error);
}
