/* daemon/instance/rootfs.h: an instance's root volume on its pool: made from an image
 * (unpacked once per pool into the image volume images/<fp>, then cloned: a btrfs
 * snapshot, a dir copy) with the image's templates applied; copied from another instance.
 *
 * Synchronous: call from a worker thread (an operation), never the loop. On failure
 * nothing these functions created is left on the pool. */
#pragma once

#include <stdint.h>

#include "images/unpack.h"
#include "lib/error.h"
#include "storage/driver.h"

struct db;

/* Make sure the image volume images/<fp> exists on `pool`, unpacking the image files
 * under `images_dir` (<fp> and maybe <fp>.rootfs) when it does not. Concurrent callers
 * each unpack into a private temporary volume; the first rename wins, the others drop
 * theirs. `progress` (may be NULL) sees the unpacking, which stops (the temporary volume
 * removed) with -ECANCELED when pool->cancel turns true. */
int rootfs_image_volume(struct storage_pool *pool, const char *images_dir, const char *fp,
			image_unpack_progress_fn progress, void *data, struct berth_error *err);

/* Volume `disk_name` (<project>_<name>, of `type`: container or virtual-machine) as a
 * clone of image volume `fp` (which must exist), with, for a container, the templates for
 * "create" rendered for instance `inst` (its object with expanded_config, as
 * rootfs_apply_templates takes it). A VM image volume holds metadata.yaml,
 * templates/ and root.img, the raw disk converted from the image's qcow2 rootfs.img
 * (refused when it names a backing or data file). -ECANCELED, with nothing left, when
 * pool->cancel is true before or after the copy. */
int rootfs_from_image(struct storage_pool *pool, const char *fp, enum storage_volume_type type,
		      const char *disk_name, const json_t *inst, struct berth_error *err);

/* Render the templates of the volume `disk_name` for `trigger` ("create", "copy") and
 * instance `inst`: the instance object with expanded_config and expanded_devices, whose
 * name, architecture, ephemeral and security.privileged fill LXD's template variables
 * (config_get reads the expanded config: cloud-init.user-data from a profile reaches an
 * image's cloud-init templates). A volume without metadata.yaml has none. */
int rootfs_apply_templates(struct storage_pool *pool, const char *disk_name, const json_t *inst,
			   const char *trigger, struct berth_error *err);

/* Whether `name` is a temporary image volume left by an interrupted unpack. */
bool rootfs_is_temporary_image(const char *name);

/* Remove the image volume images/<fp> from every pool that has one (the image is gone
 * from the store). Instances cloned from it keep their own volumes. Failures are logged
 * and ignored: the start-up reconciliation retries them. */
void rootfs_image_volumes_remove(struct db *db, const char *state_dir, const char *fp);
