/* daemon/instance/migrate_btrfs.h: LXD's BTRFS migration type (doc/migration.md, "btrfs
 * send/receive"): between two btrfs pools, each snapshot goes as a `btrfs send` stream
 * against the one before it, then the instance against the last snapshot, instead of
 * rsync's file by file.
 *
 * Negotiation, as LXD 5.0's: a source on a btrfs pool offers BTRFS (rsync's features
 * ride along as the fallback); a target takes BTRFS when its own pool is btrfs and the
 * transfer is not a refresh, RSYNC otherwise. With the "migration_header" feature the
 * fs channel first carries a JSON header ({"subvolumes": [{"path": "/", "snapshot":
 * NAME or "", "readonly": bool}]}, ended by a barrier), then one stream per subvolume,
 * each ended by a barrier. berth sends and takes root subvolumes only.
 *
 * The receiving side treats the peer as untrusted, as an optimized backup: each stream
 * is spooled, then checked command by command as it is received (backup_receive_stream,
 * btrfs_stream.h: one new subvolume, a snapshot only of the one received before, every
 * path inside it), chrooted into a private directory of the pool; the snapshots and the instance are placed once all arrived. A
 * failure (the peer gone mid-stream included) leaves no subvolume behind.
 *
 * Blocking: worker threads only. Errors: -errno with `err` set. */
#pragma once

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "daemon/instance/migrate_io.h"
#include "lib/error.h"
#include "storage/driver.h"

/* True for a pool whose volumes can go as btrfs streams. */
bool migrate_btrfs_pool(const struct storage_pool *pool);
/* Source: make offer header `hdr` (rsync's already) offer BTRFS first. */
int migrate_btrfs_offer(json_t *hdr);
/* Target: when `offer` offers BTRFS and BTRFS suits us (our `pool`, not `refresh`), make
 * `answer` (rsync's already) take it, with the features both use; true then. */
bool migrate_btrfs_answer(const json_t *offer, const struct storage_pool *pool, bool refresh,
			  json_t *answer);
/* True when header `h` (an answer) took BTRFS. */
bool migrate_btrfs_taken(const json_t *h);

/* Source: send the snapshots `names` of volume `vol` (oldest first), then the instance:
 * snapshot `snap` of it when not NULL, else the volume as it is now. `answer`: the
 * target's (its btrfsFeatures). */
int migrate_btrfs_send(struct migrate_chan *fs, struct storage_pool *pool,
		       const struct storage_vol *vol, const json_t *names, const char *snap,
		       const json_t *answer, const atomic_bool *cancel, struct berth_error *err);
/* Target: receive the snapshots `names` (oldest first), then the instance, into volume
 * `vol` of `pool` (which must not exist); with `keep_snapshots` false (instance_only)
 * the snapshots received are not kept. Streams are spooled in `spool_dir`. On failure
 * nothing of the volume is left. */
int migrate_btrfs_recv(struct migrate_chan *fs, struct storage_pool *pool,
		       const struct storage_vol *vol, const json_t *names, bool keep_snapshots,
		       const json_t *answer, const char *spool_dir, struct berth_error *err);
