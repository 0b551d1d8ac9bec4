/* replay.c - feed saved fuzz inputs to a target without libFuzzer (any compiler).
 *
 * Usage: replay-NAME FILE|DIR...  One TAP line per argument: every file in it
 * went through the target. A crash or a sanitizer report fails the run; the
 * file being replayed is named on stderr first. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"
#include "util/macro.h"

static int count;
static size_t n_inputs;

static int read_all(const char *path, uint8_t **ret, size_t *ret_size) {
        _cleanup_fclose_ FILE *f = fopen(path, "re");
        _cleanup_free_ uint8_t *buf = NULL;
        size_t size = 0, alloc = 0;

        if (!f)
                return -errno;
        for (;;) {
                if (size == alloc) {
                        uint8_t *b = realloc(buf, alloc ? alloc * 2 : 4096);
                        if (!b)
                                return -ENOMEM;
                        buf = b;
                        alloc = alloc ? alloc * 2 : 4096;
                }
                size_t n = fread(buf + size, 1, alloc - size, f);
                if (n == 0)
                        break;
                size += n;
        }
        if (ferror(f))
                return -EIO;
        *ret = TAKE_PTR(buf);
        *ret_size = size;
        return 0;
}

static int replay_file(const char *path) {
        _cleanup_free_ uint8_t *data = NULL;
        size_t size = 0;
        int r = read_all(path, &data, &size);

        if (r < 0) {
                printf("# %s: %s\n", path, strerror(-r));
                return 1;
        }
        fprintf(stderr, "replaying %s\n", path);
        LLVMFuzzerTestOneInput(data, size);
        n_inputs++;
        return 0;
}

static int name_cmp(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

static int replay_dir(const char *dir) {
        char **names = NULL;
        size_t n = 0;
        struct dirent *de;
        int failed = 0;
        DIR *d = opendir(dir);

        if (!d) {
                printf("# %s: %s\n", dir, strerror(errno));
                return 1;
        }
        while ((de = readdir(d))) {
                if (de->d_name[0] == '.')
                        continue;
                char **v = realloc(names, (n + 1) * sizeof(char *));
                if (!v)
                        break;
                names = v;
                if (asprintf(&names[n], "%s/%s", dir, de->d_name) < 0)
                        break;
                n++;
        }
        closedir(d);
        qsort(names, n, sizeof(char *), name_cmp);
        for (size_t i = 0; i < n; i++) {
                struct stat st;
                if (stat(names[i], &st) == 0 && S_ISREG(st.st_mode))
                        failed |= replay_file(names[i]);
                free(names[i]);
        }
        free(names);
        return failed;
}

int main(int argc, char **argv) {
        int failed = 0;

        for (int i = 1; i < argc; i++) {
                struct stat st;
                int f;

                n_inputs = 0;
                if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode))
                        f = replay_dir(argv[i]);
                else
                        f = replay_file(argv[i]);
                f |= n_inputs == 0;
                printf("%s %d - %s: %zu inputs\n", f ? "not ok" : "ok", ++count, argv[i], n_inputs);
                failed |= f;
        }
        if (count == 0) {
                printf("not ok 1 - no inputs given\n");
                count = 1;
                failed = 1;
        }
        printf("1..%d\n", count);
        return failed;
}
