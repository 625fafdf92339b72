/* daemon/instance/publish.h: an instance or one of its snapshots published as an image
 * (POST /1.0/images with source type "instance" or "snapshot"), and an image copied from
 * one project to another (source type "image").
 *
 * A publish packs the root volume's rootfs/ (and templates/ when there is one) with a
 * metadata.yaml of its own into one unified tarball in an unnamed file (O_TMPFILE) of the
 * spool directory, compressed as asked, then imports that file through the image store
 * (images/store.h) as an upload: the fingerprint is the SHA-256 of the tarball, and a
 * failure or a cancel at any point leaves no image file, row or temporary file. Ownership
 * is the container's view: an idmapped root volume holds the container's ids on disk;
 * a shifted one (berth-shift) has its host ids mapped back by tar. */
#pragma once

#include <jansson.h>
#include <stdbool.h>

#include "daemon/daemon.h"
#include "daemon/operation.h"
#include "lib/error.h"

struct publish_job {
	struct berth_daemon *d; /* borrowed */
	char *project;		/* the image's project */
	char *src_project;	/* the source's project (the instance's, or the image's); the
				 * caller may preset the request's own (an image request in a
				 * project without features.images is the default project's) */
	char *event_project;	/* the project the request named, for its event; NULL:
				 * `project` */
	char *instance;		/* source type instance/snapshot */
	char *snapshot;		/* NULL: the instance itself */
	char *image;		/* source type image: the source's fingerprint */
	char *compression;	/* "gzip", "xz", "zstd", "none" */
	json_t *properties;	/* object or NULL: replace metadata.yaml's */
	json_t *aliases;	/* [{"name","description"}] or NULL */
	char *expires_at;	/* RFC 3339 or NULL */
	bool public_;
	bool vm;     /* the source is a virtual machine: a split image with a qcow2 disk */
	char fp[65]; /* set once the image exists */
};
void publish_job_free(void *j);

/* Fill `j` from LXD's ImagesPost `body` (source type instance, snapshot or image) for
 * `project`, checking what can be checked before an operation: the source exists (404),
 * the compression algorithm (400; the server key images.compression_algorithm, else
 * gzip, when none is given). */
int publish_prepare(struct publish_job *j, const json_t *body, struct berth_error *err);

/* Operation bodies over a struct publish_job: the result's metadata holds "fingerprint"
 * and "size" as LXD's. */
int publish_run(struct operation *op, void *data, struct berth_error *err);
int publish_copy_run(struct operation *op, void *data, struct berth_error *err);
