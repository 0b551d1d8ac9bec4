/* log.c - journald or stderr logging with per-request context. */
#include "util/log.h"
#include "util/urlredact.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <systemd/sd-journal.h>

static const char *log_ident = "elasticd";
static int log_max_level = LOG_INFO;
static bool log_to_journal;
static bool log_to_syslog;

static const char *const level_names[] = {
        [LOG_EMERG] = "emerg", [LOG_ALERT] = "alert", [LOG_CRIT] = "crit",
        [LOG_ERR] = "error",   [LOG_WARNING] = "warning", [LOG_NOTICE] = "notice",
        [LOG_INFO] = "info",   [LOG_DEBUG] = "debug",
};

/* $JOURNAL_STREAM is "dev:ino" of the stream journald gave us; trust it only
 * when it still names our stderr. */
static bool stderr_is_journal(void) {
        const char *e = getenv("JOURNAL_STREAM");
        unsigned long long dev, ino;
        struct stat st;

        if (!e || sscanf(e, "%llu:%llu", &dev, &ino) != 2)
                return false;
        if (fstat(STDERR_FILENO, &st) < 0)
                return false;
        return st.st_dev == dev && st.st_ino == ino;
}

void log_setup(const char *ident, int max_level) {
        log_ident = ident;
        log_max_level = max_level;
        log_to_journal = stderr_is_journal();
}

void log_set_max_level(int max_level) {
        log_max_level = max_level;
}

int log_get_max_level(void) {
        return log_max_level;
}

void log_also_syslog(int on) {
        log_to_syslog = on;
        if (on)
                openlog(log_ident, LOG_PID, LOG_DAEMON);
}

void log_ctx_msgv(int level, const struct log_ctx *ctx, const char *fmt, va_list ap) {
        char msg[2048];
        char prefix[512] = "";
        int saved = errno;

        if (level > log_max_level)
                return;

        vsnprintf(msg, sizeof(msg), fmt, ap);
        /* No URL's password or token reaches a log line, whoever logs it. */
        if (strstr(msg, "://")) {
                char clean[sizeof(msg)];
                urlredact(msg, clean, sizeof(clean));
                memcpy(msg, clean, sizeof(msg));
        }

        if (ctx) {
                size_t n = 0;
                if (ctx->request)
                        n += snprintf(prefix + n, sizeof(prefix) - n, "request=%s ", ctx->request);
                if (ctx->op && n < sizeof(prefix))
                        n += snprintf(prefix + n, sizeof(prefix) - n, "op=%s ", ctx->op);
                if (ctx->node && n < sizeof(prefix))
                        n += snprintf(prefix + n, sizeof(prefix) - n, "node=%s ", ctx->node);
                if (ctx->instance && n < sizeof(prefix))
                        snprintf(prefix + n, sizeof(prefix) - n, "instance=%s ", ctx->instance);
        }

        if (log_to_journal) {
                sd_journal_send("MESSAGE=%s%s", prefix, msg,
                                "PRIORITY=%d", level,
                                "SYSLOG_IDENTIFIER=%s", log_ident,
                                "REQUEST=%s", ctx && ctx->request ? ctx->request : "",
                                "NODE=%s", ctx && ctx->node ? ctx->node : "",
                                "OP=%s", ctx && ctx->op ? ctx->op : "",
                                "INSTANCE=%s", ctx && ctx->instance ? ctx->instance : "",
                                NULL);
        } else {
                fprintf(stderr, "%s[%d]: %s: %s%s\n", log_ident, (int) getpid(),
                        level_names[level & 7], prefix, msg);
        }
        if (log_to_syslog)
                syslog(level, "%s%s", prefix, msg);
        errno = saved;
}

void log_ctx_msg(int level, const struct log_ctx *ctx, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        log_ctx_msgv(level, ctx, fmt, ap);
        va_end(ap);
}
