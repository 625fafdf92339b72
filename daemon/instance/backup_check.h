/* daemon/instance/backup_check.h: what an instance backup tarball (LXD 5.0's layout) may
 * hold, checked before anything of it is written: its backup/index.yaml, and each member's
 * name, type and link target.
 *
 * The layout (backup/ prefix, "./" tolerated in front):
 *	backup/index.yaml			name, backend, pool, type, optimized, snapshots,
 *						config (the instance, its snapshots, profiles)
 *	backup/container/			rootfs/, metadata.yaml, templates/, backup.yaml
 *	backup/snapshots/SNAP/			the same, per snapshot
 *	backup/container.bin			optimized (btrfs send stream)
 *	backup/snapshots/SNAP.bin
 *	backup/optimized_header.yaml		btrfs' subvolume list (root subvolumes only)
 * or, of a virtual machine (plain only):
 *	backup/virtual-machine/			its config directory: backup.yaml,
 *						metadata.yaml, templates/ (LXD's other files,
 *						agent certificates, qemu.nvram..., skipped)
 *	backup/virtual-machine.img		the raw root disk
 *	backup/virtual-machine-snapshots/SNAP/	the same, per snapshot
 *	backup/virtual-machine-snapshots/SNAP.img
 *
 * Pure functions on memory (no disk, no daemon): the fuzz targets call them directly. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "lib/error.h"
#include "lib/macros.h"

/* Largest index.yaml or backup.yaml read into memory. */
#define BACKUP_CONFIG_MAX (1u << 20)

/* ---- index.yaml ---- */

struct backup_index {
	char *name;	   /* owned: the instance's name in the backup */
	char *backend;	   /* owned: the exporting pool's driver ("dir", "btrfs", ...) */
	char *pool;	   /* owned, may be "": the exporting pool's name */
	char *type;	   /* owned: "container" (default) or "virtual-machine" */
	bool optimized;	   /* the volumes are the driver's own streams (.bin files) */
	json_t *snapshots; /* owned: array of snapshot names, oldest first (maybe empty) */
	json_t *config;	   /* owned or NULL: the embedded backup config ("container",
			    * "snapshots", "pool", "profiles", "volume") */
};

/* Parse index.yaml (`len` bytes at `buf`, any bytes) into *ret and check it: a valid
 * instance name, known type, unique valid snapshot names, config of the right shape.
 * -EINVAL (400) with a message saying what is wrong. */
int backup_index_parse(const char *buf, size_t len, struct backup_index **ret,
		       struct berth_error *err);
void backup_index_free(struct backup_index *ix);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct backup_index *, backup_index_free)

/* Check a backup config (the "config" of index.yaml or a backup.yaml, parsed): its
 * "container" an object whose config is a string map, devices a map of string maps and
 * profiles an array of names; "snapshots" objects with a name. -EINVAL (400). */
int backup_config_check(const json_t *config, struct berth_error *err);

/* The snapshot config of `name` in backup config `config` (borrowed), or NULL. */
const json_t *backup_config_snapshot(const json_t *config, const char *name);

/* ---- members ---- */

enum backup_member_kind {
	BACKUP_MEMBER_LAYOUT,	/* backup/, backup/snapshots, backup/optimized_header.yaml */
	BACKUP_MEMBER_INDEX,	/* backup/index.yaml */
	BACKUP_MEMBER_CONFIG,	/* backup/container/backup.yaml */
	BACKUP_MEMBER_TREE,	/* a file of the instance's or a snapshot's directory */
	BACKUP_MEMBER_BIN,	/* backup/container.bin, backup/snapshots/SNAP.bin */
	BACKUP_MEMBER_SKIP,	/* a file of a VM's config directory berth does not keep */
	BACKUP_MEMBER_KIND_MAX, /* sentinel */
};

/* A tarball member as the archive describes it (borrowed strings). */
struct backup_entry {
	const char *path;     /* as in the archive */
	mode_t type;	      /* S_IFREG, S_IFDIR, S_IFLNK, S_IFCHR, S_IFBLK, S_IFIFO, ... */
	const char *symlink;  /* target of a symlink, or NULL */
	const char *hardlink; /* for a hard link: the member it links to, else NULL */
	unsigned devmajor, devminor;
};

/* Where a member goes. */
struct backup_member {
	enum backup_member_kind kind;
	char *snap;	/* owned: the snapshot (TREE, BIN), NULL: the instance */
	char *rel;	/* owned: TREE: path below the instance's or snapshot's directory
			  * ("rootfs/etc/hosts", "" for the directory itself) */
	char *link_rel; /* owned: TREE hard link: its target, a path in the same tree */
	bool is_rootfs; /* TREE: below rootfs/ */
	bool vm;	/* of a virtual machine's layout (backup/virtual-machine...) */
	bool is_disk;	/* TREE: a VM's raw disk (rel "root.img"), written sparse */
};
void backup_member_release(struct backup_member *m);

/* Check member `e` and say where it goes. Refused (-EINVAL, 400, naming the member):
 * absolute names and "..", anything outside the layout above, a VM's disk that is not a
 * regular file, a symlink or node in a VM's config directory, a hard link to another
 * tree or outside rootfs/, a relative symlink that climbs above rootfs/, block devices,
 * sockets, and character devices other than the harmless ones of a root file system's
 * /dev (null, zero, full, random, urandom, tty, console, ptmx, and overlayfs' 0:0
 * whiteouts); outside rootfs/ only regular files and directories. */
int backup_member_check(const struct backup_entry *e, struct backup_member *ret,
			struct berth_error *err);

/* A character device a root file system's /dev may hold (null, zero, full, random,
 * urandom, tty, console, ptmx), or an overlayfs whiteout (0:0). */
bool backup_chardev_harmless(unsigned maj, unsigned min);
