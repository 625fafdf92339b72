/* daemon/instance/migrate_volume.h: custom storage volumes over LXD's migration protocol
 * (lxd/migrate_storage_volumes.go), between two hosts.
 *
 * The source is migrate_source.c's, which serves a volume as it serves an instance
 * (migrate_source_new_volume, its content opened with instance_volume_open_on): the
 * functions below check the source and tell what a volume offers. The offer lists the
 * volume's snapshots, oldest first, each as a Snapshot message that carries its config
 * (as LXD's volumeSnapshotToProtobuf does).
 *
 * The target: POST /1.0/storage-pools/POOL/volumes/custom with {"name", "description",
 * "config", "source": {"type": "migration", "mode": "pull", "operation": URL,
 * "certificate", "secrets": {"control", "fs"}, "volume_only"}}. It connects to the
 * source's operation, answers rsync, receives each snapshot into the new volume and
 * snapshots it there, then the volume; the rows (volume and snapshots) are written last,
 * in one transaction. Any failure before that (a source that goes away included)
 * deletes the volume with its snapshots: no volume, no row. doc/migration.md. */
#pragma once

#include <jansson.h>
#include <stdbool.h>

#include "daemon/daemon.h"
#include "daemon/operation.h"
#include "lib/error.h"

/* The source's checks: custom volume `name` of `pool` exists (404) and holds a
 * filesystem (400 for a block volume). Blocking (database). */
int migrate_volume_source_check(struct berth_daemon *d, const char *project, const char *pool,
				const char *name, struct berth_error *err);
/* The Snapshot messages (migrate_proto.h) of its snapshots, oldest first. */
int migrate_volume_snapshots(struct berth_daemon *d, const char *project, const char *pool,
			     const char *name, json_t **ret, struct berth_error *err);

struct migrate_volume_job;

/* Check the target's request: new volume row `obj` ({"name", "description", "config"})
 * on `pool` of `project`, from the migration `source`. 404 for an unknown pool, 409 when
 * the name is taken, 400 for what is refused (push mode, refresh, block volumes, a
 * malformed operation URL, config keys the pool's driver does not take). `url` and
 * `event_project` name the new volume in its lifecycle event. */
int migrate_volume_prepare(struct berth_daemon *d, const char *project, const char *pool,
			   const json_t *obj, const json_t *source, const char *url,
			   const char *event_project, struct migrate_volume_job **ret,
			   struct berth_error *err);
void migrate_volume_job_free(void *j);
/* The operation body (operation_run_fn): `data` is the job. */
int migrate_volume_run(struct operation *op, void *data, struct berth_error *err);
