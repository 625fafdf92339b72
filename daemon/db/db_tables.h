/* daemon/db/db_tables.h: what the daemon/db/ table files (projects.c, profiles.c,
 * pools.c, instances.c, volumes.c, schema.c) give each other and init.c, inside a
 * transaction the caller holds. They all build on db.c (db_internal.h), which uses none
 * of this. Same conventions as db_internal.h. */
#pragma once

#include <jansson.h>
#include <stdint.h>

#include "daemon/db/backend.h"
#include "lib/error.h"

/* ---- schema.c ---- */

/* Bring the schema on `conn` up to db_schema_version(). The caller holds a write
 * transaction; every pending migration runs inside it. `*ret_old_version` receives the
 * version found (0 for a new database). -EPROTO when the database is newer. */
int db_schema_update(struct db_conn *conn, int *ret_old_version, struct berth_error *err);

/* ---- lookups: -ENOENT with 'Project "x" not found' and the like ---- */

int db_project_id(struct db_conn *conn, const char *name, int64_t *ret, struct berth_error *err);
int db_profile_id(struct db_conn *conn, int64_t project_id, const char *name, int64_t *ret,
		  struct berth_error *err);
int db_pool_id(struct db_conn *conn, const char *name, int64_t *ret, struct berth_error *err);
/* Id of the project whose objects project `project_id` uses for `feature` (itself when
 * the feature is on, else "default"'s), as db_project_feature_project. */
int db_project_feature_id(struct db_conn *conn, int64_t project_id, const char *feature,
			  int64_t *ret, struct berth_error *err);
/* Inside the transaction that inserts an instance of `type` ("container",
 * "virtual-machine") into project `project_id` (named `project`): -EDQUOT (400, LXD's
 * message) when limits.instances or the type's limit has no room left. The API checks
 * first; this makes concurrent creations unable to pass a limit together. */
int db_project_instance_room(struct db_conn *conn, int64_t project_id, const char *project,
			     const char *type, struct berth_error *err);

/* ---- inserts used by db_open() for the defaults (caller holds the transaction) ---- */

/* Insert project `name` (no profile: db_project_create adds its "default"). */
int db_project_insert(struct db_conn *conn, const char *name, const char *description,
		      const json_t *config, int64_t *ret_id, struct berth_error *err);
int db_profile_insert(struct db_conn *conn, int64_t project_id, const json_t *profile,
		      struct berth_error *err);
int db_pool_insert(struct db_conn *conn, const char *name, const char *driver,
		   const char *description, const json_t *config, struct berth_error *err);

/* ---- instances.c and volumes.c, for snapshots.c (caller holds the transaction) ---- */

int db_instance_lookup(struct db_conn *conn, const char *project, const char *name,
		       int64_t *ret_project_id, int64_t *ret_id, struct berth_error *err);
int db_instance_load(struct db_conn *conn, const char *project, const char *name, json_t **ret,
		     struct berth_error *err);
/* Insert `instance` (as db_instance_create) and return its id. */
int db_instance_insert(struct db_conn *conn, const char *project, const json_t *instance,
		       int64_t *ret_id, struct berth_error *err);
/* A bare volume row (no config). -EEXIST (409) when taken. */
int db_volume_insert(struct db_conn *conn, int64_t pool_id, int64_t project_id, const char *name,
		     const char *type, struct berth_error *err);
