/* strv.c - string vectors. */
#include "util/strv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

char **strv_free(char **l) {
        if (!l)
                return NULL;
        for (char **p = l; *p; p++)
                free(*p);
        free(l);
        return NULL;
}

size_t strv_length(char *const *l) {
        size_t n = 0;

        if (l)
                while (l[n])
                        n++;
        return n;
}

int strv_pack(char ***l, size_t n) {
        size_t bytes = (n + 1) * sizeof(char *);
        char **packed, *p;

        for (size_t i = 0; i < n; i++)
                bytes += strlen((*l)[i]) + 1;
        packed = malloc(bytes);
        if (!packed)
                return -ENOMEM;
        p = (char *) (packed + n + 1);
        for (size_t i = 0; i < n; i++) {
                size_t len = strlen((*l)[i]) + 1;

                packed[i] = memcpy(p, (*l)[i], len);
                p += len;
        }
        packed[n] = NULL;
        strv_free(*l);
        *l = packed;
        return 0;
}
