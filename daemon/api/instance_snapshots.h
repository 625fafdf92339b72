/* daemon/api/instance_snapshots.h: the API shape of an instance's snapshots, which the
 * instance handlers render too. */
#pragma once

#include <jansson.h>

/* The snapshot object of the API (InstanceSnapshot) from a db snapshot row and its
 * instance (for architecture, profiles, ephemeral). New reference. */
json_t *instance_snapshot_render(const json_t *snap, const json_t *inst);
