/* daemon/instance/backup_archive.h: reading an instance backup tarball (LXD 5.0's layout,
 * gzip, xz, zstd, bzip2 or plain) with libarchive, in-process: its index, a scan of every
 * member (each checked by backup_check.h before anything is written), and the extraction
 * of one tree (the instance's or one snapshot's) or one .bin stream.
 *
 * Extraction never follows a link: each member's parent directory is opened with
 * openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV) from the destination,
 * the member itself is created with O_EXCL/O_NOFOLLOW (an existing non-directory of that
 * name is unlinked first), and a hard link must name a regular file already extracted.
 * Owners, modes, times and the xattrs user.*, security.capability and POSIX ACLs are kept
 * as in the tarball (unshifted: an unprivileged container is idmapped at start, as one
 * made from an image); other xattrs (trusted.*, security.selinux...) are dropped.
 *
 * Synchronous, blocking: a worker thread. */
#pragma once

#include <stdatomic.h>
#include <stdint.h>

#include "daemon/instance/backup_check.h"
#include "lib/error.h"

struct backup_limits {
	uint64_t max_bytes;   /* sum of the members' sizes (sparse files at their full size) */
	uint64_t max_members; /* members in all */
};

/* What a whole scan found. */
struct backup_scan {
	struct backup_index *index; /* owned */
	json_t *config;		    /* owned or NULL: backup/container/backup.yaml, parsed */
	json_t *trees;		    /* owned: {"SNAP": true} for each snapshot tree present */
	json_t *bins;		    /* owned: {"SNAP": true}, "" for backup/container.bin */
	bool container_tree;	    /* backup/container/ present */
	uint64_t bytes;		    /* sum of the members' sizes */
	uint64_t members;
};
void backup_scan_free(struct backup_scan *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct backup_scan *, backup_scan_free)

/* Read the tarball at `fd` (from offset 0) up to its backup/index.yaml and parse it.
 * -EINVAL (400): not a tarball, no index, an invalid one. */
int backup_read_index(int fd, struct backup_index **ret, struct berth_error *err);

/* Read every member's header (data skipped): each checked (backup_member_check), the
 * totals held to `lim`, the decompressed stream held to a ratio of 1000:1 past 1 GiB, the
 * archive read to its end (a truncated one fails), and the index checked against what is
 * there: each listed snapshot present and none unlisted, .bin streams exactly when
 * optimized. -EINVAL (400) with the reason; -EFBIG (400) past a limit. */
int backup_scan(int fd, const struct backup_limits *lim, struct backup_scan **ret,
		struct berth_error *err);

/* Progress of an extraction: bytes of the tarball file read so far. */
typedef void (*backup_progress_fn)(uint64_t done, void *data);

/* Extract the tree of snapshot `snap` (NULL: the instance's backup/container/) below the
 * directory `destfd`: rootfs/, metadata.yaml, templates/ (backup.yaml is not kept).
 * `cancel` (may be NULL) is looked at after each member: -ECANCELED. On failure what was
 * written stays: the caller removes the volume. */
int backup_extract_tree(int fd, const char *snap, int destfd, backup_progress_fn progress,
			void *data, const atomic_bool *cancel, struct berth_error *err);

/* Copy the .bin stream of `snap` (NULL: backup/container.bin) to `outfd` (a pipe to
 * `btrfs receive`). -ENOENT when the tarball has none. */
int backup_extract_bin(int fd, const char *snap, int outfd, struct berth_error *err);
