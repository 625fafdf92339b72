/* daemon/instance/snapshot.h: an instance's snapshots: taking, renaming and deleting one
 * (disk and rows together), their names and expiry, and the once-a-minute schedule and
 * pruning.
 *
 * Disk and rows, as for custom volumes: a snapshot is taken, then recorded (a failed
 * insert removes it); a deletion removes the rows, then the snapshot; a rename renames on
 * disk inside the row's transaction (a failed commit renames it back). A berthd killed
 * between the steps leaves a snapshot without a row, which the start-up reconciliation
 * of the pools removes. snapshot_open, _create, _rename, _delete, snapshots_prune and
 * snapshots_schedule block (database and disk): call them from a worker. */
#pragma once

#include <jansson.h>
#include <time.h>

#include "daemon/daemon.h"
#include "daemon/instance/volume.h"
#include "lib/error.h"
#include "lib/macros.h"

/* One snapshot of an instance, with what its disk work needs. */
struct snapshot {
	struct berth_daemon *d;	  /* borrowed */
	char *project;		  /* owned */
	char *instance;		  /* owned */
	char *name;		  /* owned: the snapshot's name (the new one after a rename) */
	struct instance_volume v; /* owned: the instance's root volume (pool NULL: none) */
};

/* Open snapshot `name` of `project`/`instance` (it need not exist yet): looks up the
 * instance's root volume, so that an unknown pool fails before any work starts. */
int snapshot_open(struct berth_daemon *d, const char *project, const char *instance,
		  const char *name, struct snapshot **ret, struct berth_error *err);
void snapshot_free(struct snapshot *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct snapshot *, snapshot_free)

/* Take the snapshot on disk, then record its row with `expires_at` (RFC 3339, NULL:
 * never). On failure neither is left. Emits instance-snapshot-created. */
int snapshot_create(struct snapshot *s, const char *expires_at, struct berth_error *err);
/* Rename it to `new_name` (checked by the caller), on disk inside the row's transaction.
 * On failure disk and rows are as before. Emits instance-snapshot-renamed. */
int snapshot_rename(struct snapshot *s, const char *new_name, struct berth_error *err);
/* Remove its rows, then its disk (a disk failure is logged and left to the start-up
 * reconciliation). Emits instance-snapshot-deleted. */
int snapshot_delete(struct snapshot *s, struct berth_error *err);
/* Set its expiry to `expires_at` (from snapshot_expiry_parse; NULL: never). Emits
 * instance-snapshot-updated. */
int snapshot_set_expiry(struct snapshot *s, const char *expires_at, struct berth_error *err);

/* The first name of `pattern` ("snap%d" when NULL or empty) that no snapshot of
 * `existing` (an array of rows) has. NULL when none is free or on allocation failure. */
char *snapshot_next_name(const char *pattern, const json_t *existing);
/* expires_at for a new snapshot: `body`'s "expires_at" when a string, else now +
 * `inst`'s snapshots.expiry ("1d", "2w 3d", LXD's units M H d w m y), else NULL (never).
 * -EINVAL (400) for a malformed snapshots.expiry or expires_at. */
int snapshot_expiry(const json_t *body, const json_t *inst, char **ret, struct berth_error *err);
/* `v` (a request's "expires_at": RFC 3339 with any offset, Go's zero time, "" or null) as
 * *ret: UTC, NULL for never. -EINVAL (400, naming the value) for anything else. */
int snapshot_expiry_parse(const json_t *v, char **ret, struct berth_error *err);
/* "/1.0/instances/INST/snapshots/SNAP[?project=P]", names encoded. */
char *snapshot_url(const char *inst, const char *snap, const char *project);

/* Remove every snapshot whose expires_at has passed (rows, then disk). Synchronous: the
 * main thread before the loop runs, or a worker. Returns how many went. */
int snapshots_prune(struct berth_daemon *d);
/* Take the snapshots whose snapshots.schedule fires in the minute of `minute` (local
 * time): running instances, stopped ones only with snapshots.schedule.stopped=true, as in
 * LXD; named by snapshots.pattern. Synchronous. Returns how many were taken. */
int snapshots_schedule(struct berth_daemon *d, time_t minute);
/* Loop thread, once a minute: snapshots_schedule, then snapshots_prune, on the thread
 * pool. */
void snapshots_tick(struct berth_daemon *d, time_t minute);
