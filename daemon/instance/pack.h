/* daemon/instance/pack.h: tar as publish (publish.c) and backups (backup_create.c) run it:
 * one `tar --create` into a file, compressed as asked, its progress reported in the
 * operation's metadata, killed when the operation is cancelled; and the id maps that give
 * a volume shifted on disk (berth-shift) the container's view of its owners. */
#pragma once

#include <stdbool.h>

#include "daemon/operation.h"
#include "lib/error.h"

/* A volume shifted on disk (berth-shift: "UIDBASE GIDBASE COUNT"): host ids base + n
 * are the container's n. */
struct pack_shift {
	bool on;
	unsigned long base[2]; /* uid, gid */
	unsigned long count;
};

/* Read `dir`/berth-shift into *ret (ret->on false when there is none). */
int pack_shift_read(const char *dir, struct pack_shift *ret, struct berth_error *err);

/* Write tar's owner and group maps for `sh` (on) into directory `dir` as "owner-map" and
 * "group-map"; ret[0], ret[1] get their paths (new strings, set even on a failure after
 * the file exists, so that the caller removes them). */
int pack_shift_maps_write(const char *dir, const struct pack_shift *sh, char *ret[2],
			  struct berth_error *err);

/* tar's flag for compression `algo` ("gzip", "xz", "zstd", "bzip2", "lzma"), NULL for
 * "none" (or an unknown name: callers check names first). gzip goes through igzip or pigz
 * when one is installed (berth_program_find): the same format, made faster on every CPU. */
const char *pack_compress_flag(const char *algo);

/* What a pack reports and says when it fails. */
struct pack_labels {
	const char *progress_key;  /* operation metadata key */
	const char *progress_text; /* "Image pack": "<text>: 1.23MB (4.56MB/s)" */
	const char *cancelled;	   /* message of a cancel ("Publish cancelled") */
	const char *failed;	   /* "Packing the image failed": followed by tar's reason */
	bool changed_ok;	   /* tar's exit status 1 (a file changed as it was read: a
				    * running instance's) is a success */
};

/* Run `argv` (a tar --create writing to stdout) with its stdout on `out`, reporting the
 * size of `out` twice a second in `op`'s metadata and killing tar when `op` is cancelled
 * (-ECANCELED). A tar that fails is -EIO with its last meaningful stderr line. */
int pack_run(struct operation *op, const char *const *argv, int out,
	     const struct pack_labels *labels, struct berth_error *err);
