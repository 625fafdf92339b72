/* daemon/db/init.c: db_open(): the database handle, its schema brought up to date
 * (schema.c) and, in a new database, LXD's defaults: the "default" project with every
 * feature on, its "default" profile and the "default" dir pool. Above the table files
 * (projects.c, profiles.c, pools.c) whose inserts it uses, so that db.c, which they all
 * build on, depends on none of them. */
#include "daemon/db/db.h"

#include <jansson.h>

#include "daemon/db/db_internal.h"
#include "daemon/db/db_tables.h"
#include "lib/json.h"

static int db_create_defaults(struct db_conn *conn, const char *pool_source,
			      struct berth_error *err)
{
	json_auto_t *project_config = NULL, *profile = NULL, *pool_config = NULL;
	int64_t project_id = 0;
	int r;

	/* LXD's default project enables every per-project feature. */
	project_config = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "features.images", "true",
				   "features.networks", "true", "features.networks.zones", "true",
				   "features.profiles", "true", "features.storage.buckets", "true",
				   "features.storage.volumes", "true");
	profile = json_pack("{s:s, s:s, s:{}, s:{s:{s:s, s:s, s:s}}}", "name", "default",
			    "description", "Default LXD profile", "config", "devices", "root",
			    "type", "disk", "path", "/", "pool", "default");
	pool_config = json_pack("{s:s}", "source", pool_source ? pool_source : "");
	if (!project_config || !profile || !pool_config)
		return db_oom(err);

	r = db_project_insert(conn, "default", "Default LXD project", project_config, &project_id,
			      err);
	if (r < 0)
		return r;
	r = db_profile_insert(conn, project_id, profile, err);
	if (r < 0)
		return r;
	return db_pool_insert(conn, "default", "dir", "", pool_config, err);
}

static int db_setup(struct db *db, const char *pool_source, struct berth_error *err)
{
	struct db_conn *conn = NULL;
	int old_version = 0;
	int r;

	r = db_tx_begin(db, &conn, err);
	if (r < 0)
		return r;
	r = db_schema_update(conn, &old_version, err);
	if (r >= 0 && old_version == 0)
		r = db_create_defaults(conn, pool_source, err);
	return db_tx_end(db, conn, r, err);
}

int db_open_backend(const struct db_backend *backend, void *data, const char *path,
		    const char *default_pool_source, struct db **ret, struct berth_error *err)
{
	_cleanup_db_ struct db *db = NULL;
	int r;

	r = db_handle_new(backend, data, path, &db, err);
	if (r < 0)
		return r;
	r = db_setup(db, default_pool_source, err);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(db);
	return 0;
}

int db_open(const char *path, const char *default_pool_source, struct db **ret,
	    struct berth_error *err)
{
	return db_open_backend(&db_backend_sqlite, NULL, path, default_pool_source, ret, err);
}
