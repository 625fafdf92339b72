/* images/metadata.h: what the image store reads inside an image's tarballs at import, in
 * memory and without extracting anything: metadata.yaml, and whether rootfs/ is there.
 * Only the head of the tarball is read (an image builder puts metadata.yaml first), so
 * that importing a large image costs its hash, not its decompression. The entries
 * themselves (paths, links) are checked when the image is unpacked (images/unpack.h).
 *
 * Tarballs may be plain or compressed with gzip, xz, zstd (libarchive detects which).
 * A squashfs rootfs is recognised by its magic and not read further. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "lib/error.h"

#define IMAGE_METADATA_MAX (1u << 20) /* metadata.yaml (templates: images/template.c) */

enum image_file_kind {
	IMAGE_FILE_TAR,
	IMAGE_FILE_SQUASHFS,
	IMAGE_FILE_KIND_MAX,
};

/* What a metadata (or unified) tarball says about the image. */
struct image_metadata {
	json_t *metadata;      /* owned: metadata.yaml as parsed, an object */
	char *architecture;    /* owned: normalised ("x86_64", "aarch64", ...) */
	int64_t creation_date; /* seconds since the epoch, 0 when absent */
	bool has_rootfs;       /* entries under rootfs/ were seen (a unified image) */
};
void image_metadata_release(struct image_metadata *m);

/* The kind of the file open at `fd` by its first bytes (reads at offset 0). */
int image_file_kind(int fd, enum image_file_kind *ret, struct berth_error *err);

/* The file's compression as an export file name suffix: ".tar.xz", ".tar.gz", ".tar.zst",
 * ".tar", ".squashfs", or "" when unknown. Reads at offset 0. */
const char *image_file_suffix(int fd);

/* Read the tarball at `fd` (from offset 0) until metadata.yaml has been parsed and a
 * rootfs/ entry seen, or to its end. `want_metadata`: metadata.yaml must be present and
 * valid (architecture required), and `*ret` is filled (has_rootfs tells a unified image).
 * Without it (a split image's rootfs) only the first header is read, to tell a
 * tarball, and `ret` may be NULL. -EINVAL (400) for what is not a tarball. */
int image_tar_inspect(int fd, bool want_metadata, struct image_metadata *ret,
		      struct berth_error *err);

/* Parse metadata.yaml text into `ret` (metadata, architecture, creation_date). */
int image_metadata_parse(const char *yaml, size_t len, struct image_metadata *ret,
			 struct berth_error *err);
