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
