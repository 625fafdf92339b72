/* daemon/api/instance_volume.h: what instances.c and instance_snapshots.c share: finding
 * an instance's root volume, and the API shape of its snapshots. */
#pragma once

#include <jansson.h>
#include <time.h>

#include "daemon/daemon.h"
#include "lib/error.h"
#include "storage/driver.h"

/* An instance's root volume as the drivers need it. */
struct instance_volume {
	struct storage_pool *pool; /* owned; NULL: the instance has no root volume */
	char *disk_name;	   /* owned: <project>_<name> */
	struct storage_vol vol;	   /* borrows disk_name */
};
void instance_volume_release(struct instance_volume *v);

/* Open the root volume of `project`/`name` on its pool (pool NULL when it has none). */
int instance_volume_open(struct berth_daemon *d, const char *project, const char *name,
			 struct instance_volume *ret, struct berth_error *err);

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
