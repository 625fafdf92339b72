/* images/store.h: the image files under $BERTH_DIR/images: <fingerprint> (a unified
 * tarball, or the metadata tarball of a split image) and <fingerprint>.rootfs (the
 * split image's rootfs: a tarball or a squashfs).
 *
 * An import streams the upload once: it copies it into unnamed files (O_TMPFILE) in the
 * images directory while computing the SHA-256 fingerprint (LXD's rule: over the
 * metadata bytes, then the rootfs bytes), checks the tarballs (images/metadata.h), and
 * only then gives the files their names. Any failure before that leaves nothing behind,
 * nor does a crash: unnamed files vanish with the process. Nothing is extracted. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "lib/error.h"

#define IMAGE_FINGERPRINT_LEN 64

/* An upload as it reached the API. */
struct image_upload {
	int fd;			  /* borrowed: the body, read from its current offset to EOF */
	const char *content_type; /* application/octet-stream or multipart/form-data; boundary= */
	const char *fingerprint;  /* X-LXD-fingerprint or NULL: must match when given */
	const char *filename;	  /* X-LXD-filename or NULL */
	bool public_;		  /* X-LXD-public */
	const json_t *properties; /* X-LXD-properties decoded, override metadata.yaml's; or NULL */
	/* A split image given as two files (a download) rather than a multipart body: fd
	 * is the metadata tarball and rootfs_fd (borrowed, read from its current offset) the
	 * rootfs; vm says it is a VM disk (rootfs.img). */
	bool two_files;
	int rootfs_fd;
	bool vm;
};

/* Called once the files have their names; `image` is the new Image object (without
 * "aliases"). Returning < 0 makes the import remove the files it named. */
typedef int (*image_commit_fn)(const json_t *image, void *data, struct berth_error *err);

/* Import `up` into `dir` (created when missing). Errors: -EINVAL (400) for a bad
 * upload (fingerprint mismatch, bad multipart, invalid or escaping tarball, no
 * metadata.yaml), -EIO/-ENOSPC for the disk, or what `commit` returned. Files that
 * already exist under the fingerprint (the same bytes, by their hash) are kept as
 * they are and never removed by a failed import. */
int image_store_import(const char *dir, const struct image_upload *up, image_commit_fn commit,
		       void *data, struct berth_error *err);

/* Remove the files of `fingerprint` (missing ones are fine). */
int image_store_remove(const char *dir, const char *fingerprint, struct berth_error *err);

/* Whether `fingerprint` is recorded (in any project). -errno when that cannot be told. */
typedef int (*image_known_fn)(const char *fingerprint, bool *ret, void *data);

/* At start, before serving: remove the files in `dir` whose fingerprint `known` says is
 * not recorded (an import killed between naming its files and recording them). Files
 * that are not named like images, and fingerprints `known` fails on, are left alone.
 * Returns how many files were removed. A missing `dir` is fine. */
int image_store_reconcile(const char *dir, image_known_fn known, void *data,
			  struct berth_error *err);

/* Open the files of `fingerprint` for export: *ret_meta always, *ret_rootfs = -EBADF
 * for a unified image. */
int image_store_open(const char *dir, const char *fingerprint, int *ret_meta, int *ret_rootfs,
		     struct berth_error *err);

/* Fingerprint of a byte stream, as hex (buf holds IMAGE_FINGERPRINT_LEN + 1). */
void image_fingerprint_hex(const unsigned char digest[32], char *buf);

/* "key=value&k2=v2" as Go's url.Values.Encode() writes it -> {"key":"value",...}. */
int image_properties_decode(const char *query, json_t **ret, struct berth_error *err);
