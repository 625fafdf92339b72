/* daemon/instance/backup_archive.h: reading an instance backup tarball (LXD 5.0's layout,
 * gzip, xz, zstd, bzip2 or plain) with libarchive, in-process: its index, a scan of every
 * member (each checked by backup_check.h before anything of it is written), and the
 * restore: the same pass writing every tree, and handing on every .bin stream, as it
 * comes.
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
#include <sys/types.h>

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
	json_t *disks;		    /* owned: {"SNAP": true}, "" for a VM's disk */
	bool container_tree;	    /* backup/container/ (or virtual-machine/) present */
	bool vm_layout, ct_layout;  /* members of a VM's layout, of a container's seen */
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
 * optimized, the layout of the index's type (a VM's: a disk for the instance and each
 * snapshot, written sparse: zero blocks left as holes). -EINVAL (400) with the reason; -EFBIG (400) past a limit. */
int backup_scan(int fd, const struct backup_limits *lim, struct backup_scan **ret,
		struct berth_error *err);

/* Progress of a restore: bytes of the tarball file read so far. */
typedef void (*backup_progress_fn)(uint64_t done, void *data);

/* A .bin stream being read (backup_restore's `bin` callback). */
struct backup_stream;
/* Up to `size` bytes of the stream's data: their count, 0 at its end, -EINVAL with `err`
 * set when the tarball is truncated or corrupt. */
ssize_t backup_stream_read(struct backup_stream *st, void *buf, size_t size,
			   struct berth_error *err);
/* Bytes of the tarball file read so far (for progress). */
uint64_t backup_stream_done(const struct backup_stream *st);

/* Where one pass over the tarball writes what it reads. The trees go to their own
 * directories (snap_fds, container_fd); or, in a chain (tree_done set), all below
 * container_fd one after the other in the index's order (the snapshots oldest first,
 * then the instance's): tree_done is called as each is complete, before the next is
 * written; a member of a tree already complete fails the pass with -ESPIPE (the caller
 * may then read the tarball once per tree, with `only`). */
struct backup_dest {
	const struct backup_index *index; /* the one read first: routes the snapshots */
	int container_fd;		  /* backup/container/'s tree goes below it (-1: not
					   * written) */
	const int *snap_fds;		  /* one per index->snapshots, in its order (NULL:
					   * none written) */
	int (*tree_done)(const char *snap, void *data, struct berth_error *err);
	size_t only; /* > 0: only the tree at place only - 1 in that order, below
		      * container_fd */
	/* NULL, or the directory (-1: none yet) of a tree that a regular file written
	 * may share with: one whose data is that of the same file there shares its extents
	 * (a reflink where the file system makes them) rather than being written. */
	const int *share_fd;
	/* Each .bin stream as it comes (`snap` NULL: the instance's), read to its end or
	 * not; NULL: a .bin member is skipped. */
	int (*bin)(const char *snap, struct backup_stream *st, void *data, struct berth_error *err);
	backup_progress_fn progress; /* may be NULL; after each member */
	void *data;		     /* for tree_done, bin and progress */
	const atomic_bool *cancel;   /* may be NULL: looked at after each member */
};

/* backup_scan and the restore in the same single pass: each tree member, once checked,
 * written below its tree's directory in `dest` (rootfs/, metadata.yaml, templates/;
 * backup.yaml is not kept), each .bin stream handed to dest->bin. A tree member of a
 * snapshot `dest->index` does not list is refused when it comes. Cancelled:
 * -ECANCELED. On failure what was written stays: the caller removes it. */
int backup_restore(int fd, const struct backup_limits *lim, const struct backup_dest *dest,
		   struct backup_scan **ret, struct berth_error *err);
