/* daemon/instance/migrate_proto.h: LXD's migration messages (lxd/migration/migrate.proto,
 * protobuf version 2) as JSON objects, encoded and decoded by a small table-driven codec.
 *
 * Why hand-written rather than protobuf-c: the protocol has three messages that berth
 * uses (MigrationHeader, MigrationControl and the Snapshot inside the header), all made
 * of varints, strings and nested messages; a schema table of ~40 rows does it, needs no
 * code generator at build time, and gives JSON that the rest of berthd already speaks.
 *
 * JSON shape, field names as in migrate.proto (LXD's field numbers in migrate_proto.c):
 *   header: {"fs": 0 (RSYNC) | 1 (BTRFS) ..., "criu": 2 (NONE) ..., "idmap": [{"isuid",
 *     "isgid", "hostid", "nsid", "maprange"}], "snapshotNames": ["s1"], "snapshots":
 *     [SNAPSHOT], "predump": bool, "rsyncFeatures": {"xattrs","delete","compress",
 *     "bidirectional"}, "refresh": bool, "volumeSize": int, "btrfsFeatures":
 *     {"migration_header","header_subvolumes","header_subvolume_uuids"},
 *     "indexHeaderVersion": int, "fsRefresh": int}
 *   SNAPSHOT: {"name", "localConfig": {k: v}, "profiles": [..], "ephemeral": bool,
 *     "localDevices": {name: {k: v}}, "architecture": int, "stateful": bool,
 *     "creation_date", "last_used_date", "expiry_date": unix seconds}
 *   control: {"success": bool, "message": "..."}
 * Absent optional fields are absent keys. Repeated Config messages are JSON objects. */
#pragma once

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/error.h"

enum migrate_fs_type {
	MIGRATE_FS_RSYNC = 0,
	MIGRATE_FS_BTRFS = 1,
	MIGRATE_FS_ZFS = 2,
	MIGRATE_FS_RBD = 3,
	MIGRATE_FS_BLOCK_AND_RSYNC = 4,
	MIGRATE_FS_MAX,
};

enum migrate_criu_type {
	MIGRATE_CRIU_RSYNC = 0,
	MIGRATE_CRIU_PHAUL = 1,
	MIGRATE_CRIU_NONE = 2,
	MIGRATE_CRIU_VM_QEMU = 3,
	MIGRATE_CRIU_MAX,
};

/* The largest message either side accepts (a header with many snapshots stays far below). */
#define MIGRATE_PROTO_MAX (16u << 20)

/* Encode `obj` (shape above) into a new buffer. -EINVAL with err naming the key when a
 * value has the wrong type or a required field is missing; -ENOMEM. */
int migrate_header_encode(const json_t *obj, uint8_t **ret, size_t *ret_len,
			  struct berth_error *err);
int migrate_control_encode(const json_t *obj, uint8_t **ret, size_t *ret_len,
			   struct berth_error *err);
/* Decode `len` bytes into a new object. Unknown fields are skipped, as protobuf wants.
 * -EBADMSG with err saying what is wrong (truncated, bad wire type, missing required
 * field); never reads past `len`. */
int migrate_header_decode(const uint8_t *buf, size_t len, json_t **ret, struct berth_error *err);
int migrate_control_decode(const uint8_t *buf, size_t len, json_t **ret, struct berth_error *err);
