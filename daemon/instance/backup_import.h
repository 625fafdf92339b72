/* daemon/instance/backup_import.h: restoring an instance from a backup tarball in LXD
 * 5.0's format (POST /1.0/instances with an application/octet-stream body, `lxc import`).
 *
 * Two steps, as the API needs them. backup_import_prepare runs in the request: it reads
 * the tarball up to its index.yaml and checks what can be checked at once (the index, the
 * name and the pool, a name already taken, missing profiles, an optimized backup of
 * another driver), so that these fail with their status before an operation exists.
 * backup_import_run is the operation: a scan of every member (backup_archive.h: hostile
 * members, limits, the index against the content), the root volume made and filled on
 * the pool (each snapshot in order, extracted then snapshotted; then the instance; or the
 * btrfs send streams received), then the rows of the instance and its snapshots in one
 * transaction. Whatever fails leaves nothing: no row, no volume, no temporary file (the
 * upload is an unlinked file, see lib/http_server.h). */
#pragma once

#include <jansson.h>

#include "daemon/daemon.h"
#include "daemon/instance/backup_check.h"
#include "daemon/operation.h"
#include "lib/error.h"

struct backup_import;

/* Check the upload open at `fd` (taken over, also on failure) for project `project`:
 * `pool` and `name` (may be NULL) are the X-LXD-pool and X-LXD-name overrides. On
 * success *ret is the job for backup_import_run. 400 for a bad backup, 404 for an
 * unknown pool named by `pool`, 409 for a name in use. */
int backup_import_prepare(struct berth_daemon *d, const char *project, int fd, const char *pool,
			  const char *name, struct backup_import **ret, struct berth_error *err);
/* The instance's name (borrowed from the job). */
const char *backup_import_name(const struct backup_import *imp);
/* operation_run_fn: restore it. Emits instance-created. */
int backup_import_run(struct operation *op, void *data, struct berth_error *err);
/* For operation_spec's free_data. */
void backup_import_free(void *imp);
