/* auth.c - request authorisation by peer credentials. */
#include "server/auth.h"

#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GROUPS_MAX 65536

static int lookup_uid(const char *name, uid_t *ret) {
        struct passwd pw, *res = NULL;
        char buf[16384];

        if (getpwnam_r(name, &pw, buf, sizeof(buf), &res) != 0 || !res)
                return -ENOENT;
        *ret = res->pw_uid;
        return 0;
}

static int lookup_gid(const char *name, gid_t *ret) {
        struct group gr, *res = NULL;
        _cleanup_free_ char *buf = NULL;
        size_t size = 16384;

        /* Groups with many members need a large buffer. */
        for (;;) {
                int r;

                free(buf);
                buf = malloc(size);
                if (!buf)
                        return -ENOMEM;
                r = getgrnam_r(name, &gr, buf, size, &res);
                if (r == ERANGE && size < (16u << 20)) {
                        size *= 4;
                        continue;
                }
                if (r != 0 || !res)
                        return -ENOENT;
                *ret = res->gr_gid;
                return 0;
        }
}

struct auth *auth_free(struct auth *a) {
        if (!a)
                return NULL;
        free(a->slurm_user);
        free(a->admin_group);
        free(a);
        return NULL;
}

static void append_warning(char **w, const char *fmt, ...) _printf_(2, 3);
static void append_warning(char **w, const char *fmt, ...) {
        _cleanup_free_ char *msg = NULL;
        char *joined;
        va_list ap;

        va_start(ap, fmt);
        if (vasprintf(&msg, fmt, ap) < 0)
                msg = NULL;
        va_end(ap);
        if (!msg)
                return;
        if (asprintf(&joined, "%s%s%s", *w ? *w : "", *w ? "; " : "", msg) < 0)
                return;
        free(*w);
        *w = joined;
}

int auth_new(const char *slurm_user, const char *admin_group, struct auth **ret, char **ret_warning) {
        _cleanup_(auth_freep) struct auth *a = NULL;
        _cleanup_free_ char *warning = NULL;

        a = calloc(1, sizeof(*a));
        if (!a)
                return -ENOMEM;
        if (slurm_user) {
                a->slurm_user = strdup(slurm_user);
                if (!a->slurm_user)
                        return -ENOMEM;
                a->slurm_uid_valid = lookup_uid(slurm_user, &a->slurm_uid) >= 0;
                if (!a->slurm_uid_valid)
                        append_warning(&warning, "slurm_user \"%s\" does not exist: only root may send hook requests",
                                       slurm_user);
        }
        if (admin_group) {
                a->admin_group = strdup(admin_group);
                if (!a->admin_group)
                        return -ENOMEM;
                a->admin_gid_valid = lookup_gid(admin_group, &a->admin_gid) >= 0;
                if (!a->admin_gid_valid)
                        append_warning(&warning, "admin_group \"%s\" does not exist: only root may send admin requests",
                                       admin_group);
        }
        *ret = TAKE_PTR(a);
        if (ret_warning)
                *ret_warning = TAKE_PTR(warning);
        return 0;
}

/* Whether UID (primary group GID) is a member of TARGET, supplementary groups included. */
static bool uid_in_group(uid_t uid, gid_t gid, gid_t target) {
        struct passwd pw, *res = NULL;
        char buf[16384];
        _cleanup_free_ gid_t *groups = NULL;
        int n = 64;

        if (gid == target)
                return true;
        if (getpwuid_r(uid, &pw, buf, sizeof(buf), &res) != 0 || !res)
                return false;
        if (res->pw_gid == target)
                return true;
        for (;;) {
                int want = n;
                gid_t *g = reallocarray(groups, (size_t) n, sizeof(gid_t));

                if (!g)
                        return false;
                groups = g;
                if (getgrouplist(res->pw_name, res->pw_gid, groups, &n) >= 0)
                        break;
                if (n <= want) /* no growth asked: give up rather than loop */
                        n = want * 2;
                if (n > GROUPS_MAX)
                        return false;
        }
        for (int i = 0; i < n; i++)
                if (groups[i] == target)
                        return true;
        return false;
}

static int deny(char **ret_message, const char *fmt, ...) _printf_(2, 3);
static int deny(char **ret_message, const char *fmt, ...) {
        va_list ap;

        if (ret_message) {
                va_start(ap, fmt);
                if (vasprintf(ret_message, fmt, ap) < 0)
                        *ret_message = NULL;
                va_end(ap);
        }
        return -EPERM;
}

int auth_check(const struct auth *a, enum protocol_access access, const char *type,
               uid_t uid, gid_t gid, char **ret_message) {
        if (access == PROTOCOL_ACCESS_ANYONE || uid == 0)
                return 0;

        if (access == PROTOCOL_ACCESS_HOOK) {
                if (a->slurm_uid_valid && uid == a->slurm_uid)
                        return 0;
                if (!a->slurm_user)
                        return deny(ret_message, "uid %u may not send \"%s\": hook requests are accepted only from root "
                                    "(no slurm_user configured)", (unsigned) uid, type);
                if (!a->slurm_uid_valid)
                        return deny(ret_message, "uid %u may not send \"%s\": hook requests are accepted only from root "
                                    "or slurm_user \"%s\", which does not exist on this host",
                                    (unsigned) uid, type, a->slurm_user);
                return deny(ret_message, "uid %u may not send \"%s\": hook requests are accepted only from root "
                            "or slurm_user \"%s\" (uid %u)", (unsigned) uid, type, a->slurm_user,
                            (unsigned) a->slurm_uid);
        }

        if (a->admin_gid_valid && uid_in_group(uid, gid, a->admin_gid))
                return 0;
        if (!a->admin_group)
                return deny(ret_message, "uid %u may not send \"%s\": admin requests are accepted only from root "
                            "(no admin_group configured)", (unsigned) uid, type);
        if (!a->admin_gid_valid)
                return deny(ret_message, "uid %u may not send \"%s\": admin requests are accepted only from root "
                            "or members of admin_group \"%s\", which does not exist on this host",
                            (unsigned) uid, type, a->admin_group);
        return deny(ret_message, "uid %u may not send \"%s\": admin requests are accepted only from root "
                    "or members of admin_group \"%s\" (gid %u)", (unsigned) uid, type, a->admin_group,
                    (unsigned) a->admin_gid);
}
