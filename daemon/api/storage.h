/* daemon/api/storage.h: what the storage handlers share with each other and berthd's
 * main: opening a pool by name, and mounting every pool at start (unmounting at stop). */
#pragma once

#include <stdbool.h>

#include "daemon/api/api.h"
#include "storage/driver.h"

/* The driver handle of pool `name` (from the database). -ENOENT 404 when unknown. */
int api_storage_pool_open(struct api_request *req, const char *name, struct storage_pool **ret,
			  struct berth_error *err);

/* Mount (or unmount) every pool in the database, logging each failure; returns the last
 * failure or 0. Mounting also reconciles each pool's custom volumes with the database
 * (removes what has no row). Main thread, after db_init() / after the loop stopped. */
int api_storage_pools_mount(const char *state_dir, bool mount);

/* Check the disk devices of `devices` (an instance's or profile's; may be NULL) against
 * the pools and volumes of `project`: a path must be absolute, a pool must exist, and a
 * non-root disk with a pool must name a custom volume of that pool as its source (LXD's
 * `lxc storage volume attach` device: {type: disk, pool, source: VOL, path}). -EINVAL
 * (400) naming the device otherwise. */
int api_disk_devices_check(const char *project, const json_t *devices, struct berth_error *err);
