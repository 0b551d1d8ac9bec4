/* errmsg.h - the error message a library module hands back with its errno. */
#pragma once

#include "util/macro.h"

/* Set *ret_error (if ret_error is not NULL) to a malloc'd message and return
 * R, a negative errno; -ENOMEM if the message cannot be made. */
int errmsg(char **ret_error, int r, const char *fmt, ...) _printf_(3, 4);
