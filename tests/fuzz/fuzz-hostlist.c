/* fuzz-hostlist.c - libFuzzer target: hostlist validation, expansion and compression.
 *
 * The input is a hostlist as a client could send it. Whatever the validator
 * accepts must expand to valid, sorted, unique names, compress and expand
 * back to the same names, and (when small) give exactly what libslurm's own
 * parser gives: the validator's promise is that libslurm never sees input it
 * would misparse, print about or crash on. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <slurm/slurm.h>

#include "fuzz.h"
#include "util/hostlist.h"
#include "util/strv.h"

#define MAX_INPUT 4096
#define MAX_NODES 5000
#define MAX_LIBSLURM 2000

static void fail(const char *what, const char *input) {
        fprintf(stderr, "%s for \"%s\"\n", what, input);
        abort();
}

static int compare_namep(const void *a, const void *b) {
        return hostlist_name_compare(*(char *const *) a, *(char *const *) b);
}

static void check_libslurm(const char *s, char **v, size_t n) {
        hostlist_t hl = slurm_hostlist_create(s);
        size_t m = 0, k = 0;
        char **w, *h;

        if (!hl)
                fail("libslurm rejects accepted input", s);
        w = calloc((size_t) slurm_hostlist_count(hl) + 1, sizeof(char *));
        if (!w)
                abort();
        while ((h = slurm_hostlist_shift(hl)))
                w[m++] = h;
        slurm_hostlist_destroy(hl);
        qsort(w, m, sizeof(char *), compare_namep);
        for (size_t i = 0; i < m; i++)
                if (k == 0 || strcmp(w[i], w[k - 1]) != 0)
                        w[k++] = w[i];
                else
                        free(w[i]);
        w[k] = NULL;
        if (k != n)
                fail("libslurm expands to a different count", s);
        for (size_t i = 0; i < n; i++)
                if (strcmp(v[i], w[i]) != 0)
                        fail("libslurm expands to different names", s);
        strv_free(w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_free_ char *s = NULL, *err = NULL, *err2 = NULL, *compressed = NULL;
        _cleanup_strv_free_ char **v = NULL, **again = NULL;
        size_t count = 0, n = 0, m = 0;
        int r, r2;

        if (size > MAX_INPUT)
                return 0;
        s = strndup((const char *) data, size);
        if (!s)
                return 0;

        r = hostlist_count(s, MAX_NODES, &count, &err);
        r2 = hostlist_expand(s, MAX_NODES, &v, &n, &err2);
        if (r != r2)
                fail("count and expand disagree", s);
        if (r < 0) {
                if ((r == -EINVAL || r == -E2BIG) && (!err || !err2 || strcmp(err, err2) != 0))
                        fail("error without the same message", s);
                return 0;
        }
        if (n > count || (count > 0) != (n > 0))
                fail("expanded more than counted", s);
        for (size_t i = 0; i < n; i++) {
                if (!hostlist_name_is_valid(v[i]))
                        fail("invalid name out of expand", s);
                if (i > 0 && hostlist_name_compare(v[i - 1], v[i]) >= 0)
                        fail("names not sorted and unique", s);
        }
        if (v[n])
                fail("vector not NULL-terminated", s);

        if (hostlist_compress(v, n, &compressed, NULL) < 0)
                fail("compress fails on expanded names", s);
        if (hostlist_expand(compressed, MAX_NODES, &again, &m, NULL) < 0 || m != n)
                fail("compressed hostlist does not expand back", s);
        for (size_t i = 0; i < n; i++)
                if (strcmp(v[i], again[i]) != 0)
                        fail("compressed hostlist expands to other names", s);

        if (count <= MAX_LIBSLURM)
                check_libslurm(s, v, n);
        return 0;
}
