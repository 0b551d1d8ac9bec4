/* slurmconf: the power-saving part of slurm.conf, and NodeName/PartitionName
 * lines for every group, generated from elasticd's configuration. */
#pragma once

#include "conf/config.h"

struct slurmconf_options {
        const char *bindir;          /* where the hooks are installed */
        unsigned suspend_time_s;     /* SuspendTime; 0 = 600 */
};

/* The text to Include from slurm.conf, malloc'ed. -EINVAL with *ret_error
 * (malloc'ed) naming the group when a group lacks cpus or ram, or its
 * memory_margin leaves no memory. */
int slurmconf_render(const struct config *c, const struct slurmconf_options *opts, char **ret_text,
                     char **ret_error);
