/* test-auth.c - who may send which request. */
#include <string.h>

#include "server/auth.h"
#include "test.h"

static void test_anyone_and_root(void) {
        _cleanup_(auth_freep) struct auth *a = NULL;
        _cleanup_free_ char *w = NULL, *msg = NULL;

        CHECK_INT(auth_new(NULL, NULL, &a, &w), 0);
        CHECK(w == NULL);
        CHECK_INT(auth_check(a, PROTOCOL_ACCESS_ANYONE, "status", 12345, 12345, &msg), 0);
        CHECK_INT(auth_check(a, PROTOCOL_ACCESS_HOOK, "resume", 0, 0, &msg), 0);
        CHECK_INT(auth_check(a, PROTOCOL_ACCESS_ADMIN, "resize", 0, 0, &msg), 0);
        CHECK_INT(auth_check(a, PROTOCOL_ACCESS_HOOK, "resume", 12345, 12345, &msg), -EPERM);
        CHECK(msg && strstr(msg, "uid 12345") && strstr(msg, "\"resume\"") && strstr(msg, "root"));
}

static void test_slurm_user(void) {
        _cleanup_(auth_freep) struct auth *a = NULL;
        _cleanup_free_ char *w = NULL, *msg = NULL;

        /* "nobody" exists on every Debian system (uid 65534). */
        CHECK_INT(auth_new("nobody", NULL, &a, &w), 0);
        CHECK(w == NULL);
        CHECK(a->slurm_uid_valid);
        CHECK_INT(auth_check(a, PROTOCOL_ACCESS_HOOK, "suspend", a->slurm_uid, 1, &msg), 0);
        CHECK_INT(auth_check(a, PROTOCOL_ACCESS_HOOK, "suspend", 4242, 4242, &msg), -EPERM);
        CHECK(msg && strstr(msg, "uid 4242") && strstr(msg, "slurm_user \"nobody\""));
        free(msg);
        msg = NULL;
        /* The slurm user is not an admin. */
        CHECK_INT(auth_check(a, PROTOCOL_ACCESS_ADMIN, "resize", a->slurm_uid, 1, &msg), -EPERM);
        CHECK(msg && strstr(msg, "admin"));
}

static void test_missing_names(void) {
        _cleanup_(auth_freep) struct auth *a = NULL;
        _cleanup_free_ char *w = NULL, *msg = NULL;

        CHECK_INT(auth_new("no-such-user-xyz", "no-such-group-xyz", &a, &w), 0);
        CHECK(w && strstr(w, "no-such-user-xyz") && strstr(w, "no-such-group-xyz"));
        CHECK_INT(auth_check(a, PROTOCOL_ACCESS_HOOK, "resume", 1, 1, &msg), -EPERM);
        CHECK(msg && strstr(msg, "does not exist"));
}

static void test_admin_group(void) {
        _cleanup_(auth_freep) struct auth *a = NULL;
        _cleanup_free_ char *w = NULL, *msg = NULL;

        /* Group "root" (gid 0): a peer whose primary gid is 0 is a member. */
        CHECK_INT(auth_new(NULL, "root", &a, &w), 0);
        CHECK(a->admin_gid_valid);
        CHECK_INT(auth_check(a, PROTOCOL_ACCESS_ADMIN, "reload", 4242, 0, &msg), 0);
        /* Unknown uid, other gid: not a member. */
        CHECK_INT(auth_check(a, PROTOCOL_ACCESS_ADMIN, "reload", 4242, 4242, &msg), -EPERM);
        CHECK(msg && strstr(msg, "admin_group \"root\" (gid 0)"));
}

int main(void) {
        RUN(test_anyone_and_root);
        RUN(test_slurm_user);
        RUN(test_missing_names);
        RUN(test_admin_group);
        return test_done();
}
