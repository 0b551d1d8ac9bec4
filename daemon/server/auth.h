/* auth.h - who may send which request: a peer's SO_PEERCRED ids against root, SlurmUser and the admin group. */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

#include "util/macro.h"
#include "proto/protocol.h"

/* The configured names, resolved to ids once (at start-up and on reload) so
 * that a hook request costs no user database lookup. */
struct auth {
        char *slurm_user;      /* may send hook requests; NULL: root only */
        uid_t slurm_uid;
        bool slurm_uid_valid;  /* false when slurm_user does not exist */
        char *admin_group;     /* may send admin requests; NULL: root only */
        gid_t admin_gid;
        bool admin_gid_valid;
};

/* Resolve SLURM_USER and ADMIN_GROUP (either may be NULL). A name that does
 * not resolve is not an error: nobody but root then has that right, and
 * *ret_warning (malloc'd, else NULL) says so. */
int auth_new(const char *slurm_user, const char *admin_group, struct auth **ret, char **ret_warning);
struct auth *auth_free(struct auth *a);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct auth *, auth_free);

/* 0 when the peer (UID, GID) may send requests of class ACCESS; -EPERM with
 * *ret_message (malloc'd) naming the uid and what is required otherwise.
 * Admin checks look up the peer's supplementary groups (getgrouplist). */
int auth_check(const struct auth *a, enum protocol_access access, const char *type,
               uid_t uid, gid_t gid, char **ret_message);
