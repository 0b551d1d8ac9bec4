/* adapters.h - ops's ports (ports.h) over the real cloud client, slurmctld
 * adapter and SSH pusher. */
#pragma once

#include "ops/ports.h"

struct cloud;
struct ctld;
struct pusher;

/* The ports over CLOUD, CTLD and PUSHER (NULL: no push port), which stay the
 * caller's and must outlive every user of the ports. */
void ops_adapters(struct cloud *cloud, struct ctld *ctld, struct pusher *pusher, struct ops_ports *ret);
