/* daemon/api/storage.h: what the storage handlers share with each other and the
 * instance and profile handlers: opening a pool by name, checking disk devices. */
#pragma once

#include <stdbool.h>

#include "daemon/api/api.h"
#include "storage/driver.h"

/* The driver handle of pool `name` (from the database). -ENOENT 404 when unknown. */
int api_storage_pool_open(struct api_request *req, const char *name, struct storage_pool **ret,
			  struct berth_error *err);

/* Check the disk devices of `devices` (an instance's or profile's; may be NULL) against
 * the pools and volumes of `project`: a path must be absolute, a pool must exist, and a
 * non-root disk with a pool must name a custom volume of that pool as its source (LXD's
 * `lxc storage volume attach` device: {type: disk, pool, source: VOL, path}). -EINVAL
 * (400) naming the device otherwise. */
int api_disk_devices_check(struct db *db, const char *project, const json_t *devices,
			   struct berth_error *err);
