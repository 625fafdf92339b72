/* images/simplestreams.h: the client side of simplestreams image servers (the format of
 * images.linuxcontainers.org and cloud-images.ubuntu.com, which LXD's `images:` and
 * `ubuntu:` remotes read).
 *
 * A server publishes streams/v1/index.json, which names products files (datatype
 * "image-downloads"); each product (an OS release for one architecture) has versions
 * named by date ("20240101_12:00"), and each version items: the metadata tarball
 * (ftype "lxd.tar.xz") with a rootfs ("squashfs", "root.tar.xz"; "disk-kvm.img" for a
 * virtual machine) or a unified tarball ("lxd_combined.tar.gz"). An image's
 * fingerprint is, as LXD computes it, the SHA-256 of the metadata then the rootfs bytes
 * (announced on the metadata item as combined_squashfs_sha256, combined_rootxz_sha256 or
 * combined_sha256, combined_disk-kvm-img_sha256), or of the unified tarball itself.
 *
 * Aliases follow LXD: a product's "aliases" ("debian/12,debian/bookworm") name its newest
 * version, unqualified for the host's architecture and with "/<arch>" appended
 * ("debian/12/amd64") for any. */
#pragma once

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "images/download.h"
#include "lib/error.h"

struct ss_file {
	char *path; /* owned: relative to the server's URL */
	char sha256[65];
	uint64_t size;
};

struct ss_image {
	char fingerprint[65];
	char *architecture; /* owned: LXD's name ("x86_64") */
	char *product_arch; /* owned: the server's name ("amd64") */
	char *type;	    /* owned: "container" or "virtual-machine" */
	char *serial;	    /* owned: the version's name */
	char *ftype;	    /* owned: the rootfs's ftype, "lxd_combined.tar.gz" for a unified one */
	json_t *aliases;    /* owned: array of the product's alias names */
	json_t *properties; /* owned: os, release, variant, serial, description... */
	struct ss_file meta;
	struct ss_file rootfs; /* path NULL: a unified image */
	uint64_t size;
	char *filename; /* owned: the metadata file's base name */
};

struct ss_catalog {
	struct ss_image *images; /* owned */
	size_t n_images;
};

void ss_catalog_release(struct ss_catalog *cat);

/* The paths of the "image-downloads" products files listed in index.json. *ret is a new
 * array of strings. -EINVAL (400) for a malformed index. */
int ss_index_parse(const char *buf, size_t len, json_t **ret, struct berth_error *err);

/* Add the images of a products file to `cat`. Versions without a usable item, of an
 * architecture berth does not know, or with malformed fields are skipped as LXD skips
 * them; only a document that is not a products file is an error (-EINVAL, 400). */
int ss_products_parse(const char *buf, size_t len, struct ss_catalog *cat, struct berth_error *err);

/* The image `name` names: an alias ("debian/12", "debian/12/amd64") or a unique
 * fingerprint prefix. `type` "container", "virtual-machine" or NULL (either, containers
 * first). `host_arch` is LXD's name of this host's architecture. NULL when none. */
const struct ss_image *ss_catalog_find(const struct ss_catalog *cat, const char *name,
				       const char *type, const char *host_arch);

/* Fetch index.json and its products files from `server` (http or https URL). */
int ss_catalog_load(const char *server, const atomic_bool *cancel, struct ss_catalog *cat,
		    struct berth_error *err);

/* Download the files of `img` from `server` into the unnamed files *meta_fd (always) and
 * *rootfs_fd (-EBADF for a unified image), made in directory `dir`, each checked against
 * its sha256. Progress is reported as "metadata" and "rootfs". On failure nothing stays
 * (the files were never named). */
int ss_image_fetch(const char *server, const struct ss_image *img, const char *dir,
		   image_download_progress_fn progress, void *data, const atomic_bool *cancel,
		   int *meta_fd, int *rootfs_fd, struct berth_error *err);

/* LXD's architecture name of `product_arch` ("amd64" -> "x86_64"), or NULL. */
const char *ss_arch_to_lxd(const char *product_arch);
