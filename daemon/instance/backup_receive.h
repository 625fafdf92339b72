/* daemon/instance/backup_receive.h: the volumes of an optimized btrfs backup (LXD's
 * backup/snapshots/SNAP.bin and backup/container.bin, `btrfs send` streams, each snapshot
 * sent against the one before) received onto a btrfs pool with `btrfs receive`.
 *
 * One pass over the tarball (backup_restore): each stream, as it comes, is checked here
 * command by command (btrfs_stream.h) and what was checked goes to `btrfs receive`
 * chrooted (-C) into a private directory of the pool (containers/.berth-import-XXXXXX), in
 * a mount namespace of its own. The check refuses a stream unless it makes one new
 * subvolume (a snapshot only of the one received before) and all its paths stay inside
 * it; a failed check kills the receive. The streams must come in the order LXD and berth write them:
 * the snapshots', oldest first, then the instance's. Once all are in: a received
 * snapshot gets a read-only snapshot at containers-snapshots/<volume>/SNAP (as berth's
 * snapshots are), the instance's a writable one at containers/<volume>; the received
 * subvolumes are then deleted. Only root subvolumes are restored (LXD's
 * optimized_header.yaml may list nested ones, whose streams the member checks refuse).
 * On failure the volume, its snapshots and the private directory (with whatever a
 * receive made there) are removed. Blocking: a worker. */
#pragma once

#include <jansson.h>

#include "daemon/instance/backup_archive.h"
#include "lib/error.h"
#include "storage/driver.h"

/* Receive the streams of the tarball at `fd`, checked as backup_restore checks it
 * against `index` (the one read first) and `lim`, into volume `vol` (which must not
 * exist) of btrfs pool `pool`: the snapshots `index` names, then the instance. *ret:
 * what the pass found. `progress` (may be NULL) gets the bytes read so far. */
int backup_receive_btrfs(int fd, struct storage_pool *pool, const struct storage_vol *vol,
			 const struct backup_index *index, const struct backup_limits *lim,
			 backup_progress_fn progress, void *data, struct backup_scan **ret,
			 struct berth_error *err);
/* Delete everything in the private receive directory `dir` (subvolumes or not), then
 * `dir`. Failures are logged. */
void backup_receive_dir_remove(const char *dir);

/* One `btrfs send` stream already in the seekable file `stream` (a migration's, spooled),
 * with the same checks as a backup's (btrfs_stream.h): refused unless it makes one new
 * subvolume (not in `known`, added to it) and, when it is a snapshot, one of the
 * subvolume whose uuid is `prev_uuid` (in: hex digits, "" for none; out: this stream's,
 * at least 33 bytes), with every path inside it; received chrooted into the private
 * directory `dir`, each command checked before the receive gets it. *ret: the received
 * subvolume's path. */
int backup_receive_stream(int stream, const char *dir, json_t *known, char *prev_uuid,
			  const atomic_bool *cancel, char **ret, struct berth_error *err);
