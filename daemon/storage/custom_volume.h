/* daemon/storage/custom_volume.h: custom volumes and their snapshots, rows and disk
 * changed together.
 *
 * Without holding the database's write lock during slow disk work (a dir snapshot or
 * restore copies a whole tree):
 *   - fast work (create, rename, quota) runs inside the row's transaction as its hook
 *     (db.h's db_hook_fn): a driver failure leaves no row, a failed commit is undone;
 *   - snapshots and copies are made first, then recorded; a failed insert removes them;
 *   - deletions move the volume or snapshot aside inside the transaction (a rename)
 *     and remove it after the commit;
 *   - a restore changes no row and takes no transaction.
 * What a killed berthd leaves between two steps has no row and is removed at the next
 * start (daemon/storage/pools.c). All but the _free functions block (database and
 * disk): call them from a worker. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "lib/error.h"
#include "lib/macros.h"
#include "storage/driver.h"

struct db;

/* A volume being worked on: the pool, the volume's on-disk identity and names. */
struct custom_volume {
	struct db *db;		   /* borrowed: the handle it was opened with */
	struct storage_pool *pool; /* owned */
	char *project;		   /* owned */
	char *name;		   /* owned: API name */
	char *disk_name;	   /* owned: <project>_<name> */
	char *snap;		   /* owned or NULL */
	char *new_name;		   /* owned or NULL: rename target */
	struct storage_vol vol;	   /* borrows disk_name */
	uint64_t size;		   /* its quota (config "size"), 0: none */
	uint64_t block_size;	   /* content type "block": the size of its root.img, else 0 */
	bool done;		   /* the hook's disk work happened */
};

/* Custom volume `name` (and snapshot `snap`, may be NULL) of `project` on pool `pool`
 * (-ENOENT 404 when the pool is unknown), its rows in `db`. The volume need not exist yet. */
int custom_volume_open(struct db *db, const char *state_dir, const char *pool, const char *project,
		       const char *name, const char *snap, struct custom_volume **ret,
		       struct berth_error *err);
void custom_volume_free(void *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct custom_volume *, custom_volume_free)

/* Create its row `obj` and the volume (quota c->size). */
int custom_volume_create(struct custom_volume *c, const json_t *obj, struct berth_error *err);
/* Replace its row by `next`; a c->size other than `old_size` changes the quota. */
int custom_volume_update(struct custom_volume *c, const json_t *next, uint64_t old_size,
			 struct berth_error *err);
/* Replace its content by snapshot c->snap's (quota c->size); no row changes. */
int custom_volume_restore(struct custom_volume *c, struct berth_error *err);
/* Rename it to `name` (rows and disk, snapshots with it). */
int custom_volume_rename(struct custom_volume *c, const char *name, struct berth_error *err);
/* Delete it and its snapshots (rows, then disk). */
int custom_volume_delete(struct custom_volume *c, struct berth_error *err);

/* Take snapshot c->snap: disk, then row. */
int custom_volume_snapshot_create(struct custom_volume *c, struct berth_error *err);
/* Delete snapshot c->snap (row, then disk). */
int custom_volume_snapshot_delete(struct custom_volume *c, struct berth_error *err);
/* Rename snapshot c->snap to c->new_name. */
int custom_volume_snapshot_rename(struct custom_volume *c, struct berth_error *err);

/* A copy (or a move, to another pool) of a custom volume, with its snapshots. */
struct custom_volume_copy {
	struct custom_volume *dst;     /* owned: the new volume */
	struct storage_pool *src_pool; /* owned */
	char *src_disk;		       /* owned: <project>_<volume> of the source */
	char *src_snap;		       /* owned or NULL: copy that snapshot only */
	json_t *obj;		       /* owned: the new volume's row */
	json_t *snaps;		       /* owned: snapshot rows for the copy, oldest first */
	char *src_name;		       /* owned: API name of the source (a move deletes it) */
	char *trash;		       /* owned: a move's source, set aside before removal */
	bool move;
	bool trashed; /* the move's hook set the source aside */
};
void custom_volume_copy_free(struct custom_volume_copy *j);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct custom_volume_copy *, custom_volume_copy_free)
/* Copy the disk, then record the rows (a move replaces the source's rows and removes
 * its disk after the commit). On failure neither is left. */
int custom_volume_copy_run(struct custom_volume_copy *j, struct berth_error *err);
