/* images/unpack.h: extracting an image tarball onto disk (an image volume in a pool).
 *
 * Every entry path is checked before anything is written: absolute paths, ".."
 * components and hardlinks whose target does either are refused (-EINVAL), and libarchive
 * is told not to follow symlinks met on the way (a symlink "etc -> /etc" followed by
 * "etc/passwd" is refused). Symlinks themselves are created as they are: an absolute
 * target ("/bin/busybox") is normal in a rootfs and is only resolved inside the
 * container. Owners, modes, timestamps, xattrs and ACLs are kept as in the tarball. */
#pragma once

#include <stdint.h>

#include "lib/error.h"

/* Progress: bytes of the (compressed) file read so far, out of `total`. */
typedef void (*image_unpack_progress_fn)(uint64_t done, uint64_t total, void *data);

/* Extract the tarball open at `fd` (read from offset 0; gzip, xz, zstd or plain) below the
 * existing directory `dest`. On failure what was written stays: the caller removes
 * `dest`. -EINVAL (400) names an entry that would escape, -ENOSPC/-EIO come from the
 * disk. */
int image_unpack_tar(int fd, const char *dest, image_unpack_progress_fn progress, void *data,
		     struct berth_error *err);
