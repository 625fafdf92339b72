/* images/metadata.h: what the image store reads inside an image's tarballs, in memory
 * and without extracting anything: metadata.yaml, templates/, and a check of every
 * entry's path (and link target) so that an image that would write outside its root
 * when unpacked is refused at import.
 *
 * Tarballs may be plain or compressed with gzip, xz, zstd (libarchive detects which).
 * A squashfs rootfs is recognised by its magic and not read further. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "lib/error.h"

#define IMAGE_METADATA_MAX (1u << 20) /* metadata.yaml and each template */
#define IMAGE_TEMPLATES_MAX (8u << 20)	/* all templates together */

enum image_file_kind {
	IMAGE_FILE_TAR,
	IMAGE_FILE_SQUASHFS,
	IMAGE_FILE_KIND_MAX,
};

/* What a metadata (or unified) tarball says about the image. */
struct image_metadata {
	json_t *metadata;  /* owned: metadata.yaml as parsed, an object */
	json_t *templates; /* owned: {"hostname.tpl": "contents", ...} */
	char *architecture; /* owned: normalised ("x86_64", "aarch64", ...) */
	int64_t creation_date; /* seconds since the epoch, 0 when absent */
	bool has_rootfs;      /* entries under rootfs/ were seen (a unified image) */
};
void image_metadata_release(struct image_metadata *m);

/* The kind of the file open at `fd` by its first bytes (reads at offset 0). */
int image_file_kind(int fd, enum image_file_kind *ret, struct berth_error *err);

/* The file's compression as an export file name suffix: ".tar.xz", ".tar.gz", ".tar.zst",
 * ".tar", ".squashfs", or "" when unknown. Reads at offset 0. */
const char *image_file_suffix(int fd);

/* Read the tarball at `fd` (from offset 0) to the end. Every entry is checked: a path
 * or a hardlink target that is absolute or has a ".." component, or a symlink whose
 * relative target climbs above the tarball's root, is -EINVAL (400) naming it.
 * `want_metadata`: metadata.yaml must be present and valid (architecture required),
 * templates/ are collected, and `*ret` is filled. Without it only the check runs
 * and `ret` may be NULL. */
int image_tar_inspect(int fd, bool want_metadata, struct image_metadata *ret,
		      struct berth_error *err);

/* Parse metadata.yaml text into `ret` (metadata, architecture, creation_date). */
int image_metadata_parse(const char *yaml, size_t len, struct image_metadata *ret,
			 struct berth_error *err);
