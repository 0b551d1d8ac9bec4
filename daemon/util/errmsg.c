/* errmsg.c - formatted error messages for library modules. */
#include "util/errmsg.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

int errmsg(char **ret_error, int r, const char *fmt, ...) {
        va_list ap;

        if (!ret_error)
                return r;
        va_start(ap, fmt);
        if (vasprintf(ret_error, fmt, ap) < 0) {
                *ret_error = NULL;
                r = -ENOMEM;
        }
        va_end(ap);
        return r;
}
