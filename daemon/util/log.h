/* log.h - the daemon's log: journald with structured fields, or stderr. */
#pragma once

#include <stdarg.h>
#include <syslog.h>

#include "util/macro.h"

/* What a log line is about. Every field is optional; set ones become journal
 * fields (REQUEST=, NODE=, OP=, INSTANCE=) and "key=value" prefixes on stderr. */
struct log_ctx {
        const char *request;
        const char *node;
        const char *op;
        const char *instance;
};

/* ident: program name; max_level: LOG_DEBUG..LOG_ERR. Chooses journald when
 * stderr is connected to it ($JOURNAL_STREAM), else plain stderr. */
void log_setup(const char *ident, int max_level);
void log_set_max_level(int max_level);
int log_get_max_level(void);
/* Also send every line to syslog (used by hooks, whose stderr slurmctld discards). */
void log_also_syslog(int on);

void log_ctx_msg(int level, const struct log_ctx *ctx, const char *fmt, ...) _printf_(3, 4);
void log_ctx_msgv(int level, const struct log_ctx *ctx, const char *fmt, va_list ap) _printf_(3, 0);

#define log_debug(...) log_ctx_msg(LOG_DEBUG, NULL, __VA_ARGS__)
#define log_info(...) log_ctx_msg(LOG_INFO, NULL, __VA_ARGS__)
#define log_notice(...) log_ctx_msg(LOG_NOTICE, NULL, __VA_ARGS__)
#define log_warning(...) log_ctx_msg(LOG_WARNING, NULL, __VA_ARGS__)
#define log_error(...) log_ctx_msg(LOG_ERR, NULL, __VA_ARGS__)

/* Log about a request / a node operation. */
#define log_req(level, req_id, ...) \
        log_ctx_msg((level), &(struct log_ctx){ .request = (req_id) }, __VA_ARGS__)
