/* daemon/api/instance_snapshots.h: the API shape of an instance's snapshots, which the
 * instance handlers render too. */
#pragma once

#include <jansson.h>
#include <time.h>

#include "daemon/daemon.h"

/* The snapshot object of the API (InstanceSnapshot) from a db snapshot row and its
 * instance (for architecture, profiles, ephemeral). New reference. */
json_t *instance_snapshot_render(const json_t *snap, const json_t *inst);

/* Remove every snapshot whose expires_at has passed (rows, then disk). Synchronous: the
 * main thread before the loop runs, or a worker. Returns how many went. */
int api_snapshots_prune(struct berth_daemon *d);
/* Take the snapshots whose snapshots.schedule fires in the minute of `minute` (local
 * time). Synchronous. Returns how many were taken. */
int api_snapshots_schedule(struct berth_daemon *d, time_t minute);
/* Loop thread, once a minute: api_snapshots_schedule, then api_snapshots_prune, on the
 * thread pool. */
void api_snapshots_tick(struct berth_daemon *d, time_t minute);
