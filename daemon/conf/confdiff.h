/* confdiff.h - what a reload changes: the keys two configurations differ in, and which of them a running elasticd cannot take over. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "conf/config.h"

/* How a running elasticd takes over a key's new value. */
enum config_key_class {
        CONFIG_KEY_LIVE,     /* applied by the reload */
        CONFIG_KEY_RESTART,  /* only a restart applies it: the reload is refused */
        CONFIG_KEY_SOCKET,   /* a restart, unless systemd passed the socket (then unused) */
};

/* The class of KEY as config_diff names it ("cluster", "limits.api_rate",
 * "groups"), or -ENOENT for a key this table does not know. */
int config_key_class(const char *key);

struct config_change {
        char *key;        /* "cluster", "limits.api_rate", "groups.NAME" */
        char *old_value;  /* as config_print writes it; NULL: not there (a group added) */
        char *new_value;  /* NULL: not there any more (a group removed) */
        bool needs_restart;
};

/* Every key whose value differs between OLD and NEW (as config_print writes
 * them), in config_print's order; a group counts as one key, "groups.NAME".
 * A group also changes when a file it reads at load (user data, SSH key)
 * holds other bytes under the same path.
 * SOCKET_ACTIVATED: the listening socket came from systemd, so socket.* are
 * not used. A key config_key_class does not know needs a restart: never a
 * value silently not applied. */
int config_diff(const struct config *old, const struct config *new, bool socket_activated,
                struct config_change **ret, size_t *ret_n);
struct config_change *config_changes_free(struct config_change *v, size_t n);

/* "cluster (a -> b), groups.g (changed)" of the changes that need a restart
 * (RESTART true) or of those that do not; NULL (and 0) when there is none. */
int config_changes_describe(const struct config_change *v, size_t n, bool restart, char **ret);
