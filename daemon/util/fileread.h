/* fileread.h - opening and reading a file elasticd or elasticctl is given: never blocks, regular files only, size-capped before any read. */
#pragma once

#include <stddef.h>
#include <sys/stat.h>

#include "util/macro.h"

/* Do not follow a symlink in the last component (keys, secrets). */
#define FILEREAD_NOFOLLOW (1 << 0)

/*
 * Open PATH for reading with O_NONBLOCK|O_NOCTTY|O_CLOEXEC (so a FIFO or a
 * terminal cannot hang or take over the caller), fstat it and refuse it
 * unless it is a regular file of at most MAX_BYTES. Returns the fd (>= 0) and
 * fills *ret_st (may be NULL); on failure a negative errno and *ret_error
 * (may be NULL, malloc'd) saying what is wrong with PATH: -EINVAL not a
 * regular file, -EFBIG too large, else open/fstat's errno.
 */
int fileread_open(const char *path, int flags, size_t max_bytes, struct stat *ret_st, char **ret_error);

/*
 * fileread_open, then read the whole file into *ret_data (malloc'd, NUL
 * terminated, *ret_len bytes without the NUL). A file that grew past
 * MAX_BYTES while read is refused (-EFBIG) too.
 */
int fileread_all(const char *path, int flags, size_t max_bytes, char **ret_data, size_t *ret_len,
                 char **ret_error);

/*
 * The rest of the file FD (opened by fileread_open, ST its fstat) into
 * *ret_data as fileread_all does; PATH only names it in messages. Buffers
 * that held part of the file are cleared before they are freed (keys).
 */
int fileread_fd_all(int fd, const struct stat *st, const char *path, size_t max_bytes, char **ret_data,
                    size_t *ret_len, char **ret_error);

/* What kind of file ST is, for messages ("a FIFO", "a directory", ...). */
const char *fileread_kind(const struct stat *st);
