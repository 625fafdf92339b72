/* images/archive_load.h: what images/archive_load.c adds to libarchive's own functions. */
#pragma once

#include "lib/error.h"

/* Why archive_read_new() or archive_write_disk_new() returned NULL: "libarchive is not
 * available: <what dlopen said>" (-ELIBACC) when the library could not be loaded,
 * else -ENOMEM. */
int image_archive_fail(struct berth_error *err);

/* Every decompression filter libarchive has on reader `a`, gzip through igzip (ISA-L,
 * "igzip -d -c", a child process) when berth_program_find finds it: libarchive's own gzip
 * reader is zlib on one CPU, about five times slower, and a backup import reads its
 * tarball once per tree it holds. The price is the message for a damaged gzip stream
 * ("Child process exited with status 1", no longer zlib's "truncated"): image unpacks,
 * one pass each, keep libarchive's own reader and its words. */
struct archive;
void image_archive_read_filters(struct archive *a);
