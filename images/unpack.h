/* images/unpack.h: extracting an image tarball onto disk (an image volume in a pool).
 *
 * This is where an image's entries are checked (an import reads only its head): each
 * entry is checked before it is written: absolute paths, ".." components, hardlinks whose
 * target does either and symlinks whose relative target climbs above the image's root
 * (or its rootfs/) are refused (-EINVAL), and libarchive is told not to follow symlinks
 * met on the way (a symlink "etc -> /etc" followed by "etc/passwd" is refused). Other
 * symlinks are created as they are: an absolute target ("/bin/busybox") is normal in a
 * rootfs and is only resolved inside the container. Owners, modes, timestamps, xattrs
 * and ACLs are kept as in the tarball.
 *
 * File names are bytes: they are written exactly as the tarball holds them (UTF-8, Latin-1
 * or anything else, in gnu, ustar or pax headers, whatever the locale). */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "lib/error.h"

/* Progress: bytes of the (compressed) file read so far, out of `total`. */
/* Whether relative symlink `target` at `path` (relative to a root, no leading "/")
 * climbs above that root: ".." may undo only the components of path's directory.
 * Absolute targets resolve inside the instance's root at run time and are fine. Image
 * unpacking and backup imports both refuse such links. */
bool image_symlink_escapes(const char *path, const char *target);

typedef void (*image_unpack_progress_fn)(uint64_t done, uint64_t total, void *data);

/* Extract the tarball open at `fd` (read from offset 0; gzip, xz, zstd or plain) below the
 * existing directory `dest`. On failure what was written stays: the caller removes
 * `dest`. `cancel` (may be NULL) is looked at after each entry: -ECANCELED once it is
 * true. -EINVAL (400) names an entry that would escape, -ENOSPC/-EIO come from the
 * disk; other failures name the entry and say what libarchive said. */
int image_unpack_tar(int fd, const char *dest, image_unpack_progress_fn progress, void *data,
		     const atomic_bool *cancel, struct berth_error *err);
