/* images/archive_load.h: what images/archive_load.c adds to libarchive's own functions. */
#pragma once

#include "lib/error.h"

/* Why archive_read_new() or archive_write_disk_new() returned NULL: "libarchive is not
 * available: <what dlopen said>" (-ELIBACC) when the library could not be loaded,
 * else -ENOMEM. */
int image_archive_fail(struct berth_error *err);
