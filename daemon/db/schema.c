/* daemon/db/schema.c: the schema and its history. Migration N (1-based) takes the
 * database from version N-1 to N; the version lives in PRAGMA user_version (0 on a new
 * file). Migrations are append-only: never edit one that has shipped, add another.
 *
 * Conventions in the SQL: every table has an INTEGER PRIMARY KEY `id`; a child table
 * names its parent `<parent>_id` and deletes with it (ON DELETE CASCADE), except
 * instances_profiles -> profiles, which is RESTRICT so a profile in use cannot vanish.
 * Timestamps are RFC3339 text as the API returns them. */
#include <stdio.h>

#include "daemon/db/db.h"
#include "daemon/db/db_internal.h"
#include "daemon/db/db_tables.h"

static const char *const migrations[] = {
	/* 1: everything berthd 0.1 stores. */
	"CREATE TABLE config ("
	"  key TEXT PRIMARY KEY,"
	"  value TEXT NOT NULL"
	");"

	"CREATE TABLE projects ("
	"  id INTEGER PRIMARY KEY,"
	"  name TEXT NOT NULL UNIQUE,"
	"  description TEXT NOT NULL DEFAULT ''"
	");"
	"CREATE TABLE projects_config ("
	"  id INTEGER PRIMARY KEY,"
	"  project_id INTEGER NOT NULL REFERENCES projects (id) ON DELETE CASCADE,"
	"  key TEXT NOT NULL,"
	"  value TEXT NOT NULL,"
	"  UNIQUE (project_id, key)"
	");"

	"CREATE TABLE profiles ("
	"  id INTEGER PRIMARY KEY,"
	"  project_id INTEGER NOT NULL REFERENCES projects (id) ON DELETE CASCADE,"
	"  name TEXT NOT NULL,"
	"  description TEXT NOT NULL DEFAULT '',"
	"  UNIQUE (project_id, name)"
	");"
	"CREATE TABLE profiles_config ("
	"  id INTEGER PRIMARY KEY,"
	"  profile_id INTEGER NOT NULL REFERENCES profiles (id) ON DELETE CASCADE,"
	"  key TEXT NOT NULL,"
	"  value TEXT NOT NULL,"
	"  UNIQUE (profile_id, key)"
	");"
	"CREATE TABLE profiles_devices ("
	"  id INTEGER PRIMARY KEY,"
	"  profile_id INTEGER NOT NULL REFERENCES profiles (id) ON DELETE CASCADE,"
	"  name TEXT NOT NULL,"
	"  type TEXT NOT NULL DEFAULT '',"
	"  UNIQUE (profile_id, name)"
	");"
	"CREATE TABLE profiles_devices_config ("
	"  id INTEGER PRIMARY KEY,"
	"  device_id INTEGER NOT NULL REFERENCES profiles_devices (id) ON DELETE CASCADE,"
	"  key TEXT NOT NULL,"
	"  value TEXT NOT NULL,"
	"  UNIQUE (device_id, key)"
	");"

	"CREATE TABLE instances ("
	"  id INTEGER PRIMARY KEY,"
	"  project_id INTEGER NOT NULL REFERENCES projects (id) ON DELETE CASCADE,"
	"  name TEXT NOT NULL,"
	"  type TEXT NOT NULL DEFAULT 'container',"
	"  architecture TEXT NOT NULL DEFAULT '',"
	"  description TEXT NOT NULL DEFAULT '',"
	"  ephemeral INTEGER NOT NULL DEFAULT 0,"
	"  stateful INTEGER NOT NULL DEFAULT 0,"
	"  created_at TEXT NOT NULL,"
	"  last_used_at TEXT NOT NULL DEFAULT '1970-01-01T00:00:00Z',"
	"  status TEXT NOT NULL DEFAULT 'Stopped',"
	"  status_code INTEGER NOT NULL DEFAULT 102,"
	"  UNIQUE (project_id, name)"
	");"
	"CREATE TABLE instances_config ("
	"  id INTEGER PRIMARY KEY,"
	"  instance_id INTEGER NOT NULL REFERENCES instances (id) ON DELETE CASCADE,"
	"  key TEXT NOT NULL,"
	"  value TEXT NOT NULL,"
	"  UNIQUE (instance_id, key)"
	");"
	"CREATE TABLE instances_devices ("
	"  id INTEGER PRIMARY KEY,"
	"  instance_id INTEGER NOT NULL REFERENCES instances (id) ON DELETE CASCADE,"
	"  name TEXT NOT NULL,"
	"  type TEXT NOT NULL DEFAULT '',"
	"  UNIQUE (instance_id, name)"
	");"
	"CREATE TABLE instances_devices_config ("
	"  id INTEGER PRIMARY KEY,"
	"  device_id INTEGER NOT NULL REFERENCES instances_devices (id) ON DELETE CASCADE,"
	"  key TEXT NOT NULL,"
	"  value TEXT NOT NULL,"
	"  UNIQUE (device_id, key)"
	");"
	"CREATE TABLE instances_profiles ("
	"  id INTEGER PRIMARY KEY,"
	"  instance_id INTEGER NOT NULL REFERENCES instances (id) ON DELETE CASCADE,"
	"  profile_id INTEGER NOT NULL REFERENCES profiles (id) ON DELETE RESTRICT,"
	"  apply_order INTEGER NOT NULL,"
	"  UNIQUE (instance_id, profile_id)"
	");"
	/* The RESTRICT check and db_profile_used_by() search by profile. */
	"CREATE INDEX instances_profiles_profile_id ON instances_profiles (profile_id);"

	"CREATE TABLE instances_snapshots ("
	"  id INTEGER PRIMARY KEY,"
	"  instance_id INTEGER NOT NULL REFERENCES instances (id) ON DELETE CASCADE,"
	"  name TEXT NOT NULL,"
	"  description TEXT NOT NULL DEFAULT '',"
	"  stateful INTEGER NOT NULL DEFAULT 0,"
	"  created_at TEXT NOT NULL,"
	"  expires_at TEXT NOT NULL DEFAULT '0001-01-01T00:00:00Z',"
	"  UNIQUE (instance_id, name)"
	");"
	"CREATE TABLE instances_snapshots_config ("
	"  id INTEGER PRIMARY KEY,"
	"  snapshot_id INTEGER NOT NULL REFERENCES instances_snapshots (id) ON DELETE CASCADE,"
	"  key TEXT NOT NULL,"
	"  value TEXT NOT NULL,"
	"  UNIQUE (snapshot_id, key)"
	");"
	"CREATE TABLE instances_snapshots_devices ("
	"  id INTEGER PRIMARY KEY,"
	"  snapshot_id INTEGER NOT NULL REFERENCES instances_snapshots (id) ON DELETE CASCADE,"
	"  name TEXT NOT NULL,"
	"  type TEXT NOT NULL DEFAULT '',"
	"  UNIQUE (snapshot_id, name)"
	");"
	"CREATE TABLE instances_snapshots_devices_config ("
	"  id INTEGER PRIMARY KEY,"
	"  device_id INTEGER NOT NULL"
	"    REFERENCES instances_snapshots_devices (id) ON DELETE CASCADE,"
	"  key TEXT NOT NULL,"
	"  value TEXT NOT NULL,"
	"  UNIQUE (device_id, key)"
	");"

	"CREATE TABLE images ("
	"  id INTEGER PRIMARY KEY,"
	"  project_id INTEGER NOT NULL REFERENCES projects (id) ON DELETE CASCADE,"
	"  fingerprint TEXT NOT NULL,"
	"  filename TEXT NOT NULL DEFAULT '',"
	"  size INTEGER NOT NULL DEFAULT 0,"
	"  public INTEGER NOT NULL DEFAULT 0,"
	"  auto_update INTEGER NOT NULL DEFAULT 0,"
	"  cached INTEGER NOT NULL DEFAULT 0,"
	"  architecture TEXT NOT NULL DEFAULT '',"
	"  type TEXT NOT NULL DEFAULT 'container',"
	"  created_at TEXT NOT NULL,"
	"  uploaded_at TEXT NOT NULL,"
	"  expires_at TEXT NOT NULL DEFAULT '0001-01-01T00:00:00Z',"
	"  last_used_at TEXT NOT NULL DEFAULT '0001-01-01T00:00:00Z',"
	"  UNIQUE (project_id, fingerprint)"
	");"
	"CREATE TABLE images_properties ("
	"  id INTEGER PRIMARY KEY,"
	"  image_id INTEGER NOT NULL REFERENCES images (id) ON DELETE CASCADE,"
	"  key TEXT NOT NULL,"
	"  value TEXT NOT NULL,"
	"  UNIQUE (image_id, key)"
	");"
	"CREATE TABLE images_aliases ("
	"  id INTEGER PRIMARY KEY,"
	"  project_id INTEGER NOT NULL REFERENCES projects (id) ON DELETE CASCADE,"
	"  name TEXT NOT NULL,"
	"  image_id INTEGER NOT NULL REFERENCES images (id) ON DELETE CASCADE,"
	"  description TEXT NOT NULL DEFAULT '',"
	"  UNIQUE (project_id, name)"
	");"
	"CREATE INDEX images_aliases_image_id ON images_aliases (image_id);"

	"CREATE TABLE storage_pools ("
	"  id INTEGER PRIMARY KEY,"
	"  name TEXT NOT NULL UNIQUE,"
	"  driver TEXT NOT NULL,"
	"  description TEXT NOT NULL DEFAULT '',"
	"  status TEXT NOT NULL DEFAULT 'Created'"
	");"
	"CREATE TABLE storage_pools_config ("
	"  id INTEGER PRIMARY KEY,"
	"  pool_id INTEGER NOT NULL REFERENCES storage_pools (id) ON DELETE CASCADE,"
	"  key TEXT NOT NULL,"
	"  value TEXT NOT NULL,"
	"  UNIQUE (pool_id, key)"
	");"
	"CREATE TABLE storage_volumes ("
	"  id INTEGER PRIMARY KEY,"
	"  pool_id INTEGER NOT NULL REFERENCES storage_pools (id) ON DELETE CASCADE,"
	"  project_id INTEGER NOT NULL REFERENCES projects (id) ON DELETE CASCADE,"
	"  name TEXT NOT NULL,"
	"  type TEXT NOT NULL,"
	"  description TEXT NOT NULL DEFAULT '',"
	"  content_type TEXT NOT NULL DEFAULT 'filesystem',"
	"  created_at TEXT NOT NULL,"
	"  UNIQUE (pool_id, project_id, name, type)"
	");"
	"CREATE INDEX storage_volumes_project_id ON storage_volumes (project_id);"
	"CREATE TABLE storage_volumes_config ("
	"  id INTEGER PRIMARY KEY,"
	"  volume_id INTEGER NOT NULL REFERENCES storage_volumes (id) ON DELETE CASCADE,"
	"  key TEXT NOT NULL,"
	"  value TEXT NOT NULL,"
	"  UNIQUE (volume_id, key)"
	");"

	"CREATE TABLE networks ("
	"  id INTEGER PRIMARY KEY,"
	"  project_id INTEGER NOT NULL REFERENCES projects (id) ON DELETE CASCADE,"
	"  name TEXT NOT NULL,"
	"  type TEXT NOT NULL DEFAULT 'bridge',"
	"  description TEXT NOT NULL DEFAULT '',"
	"  status TEXT NOT NULL DEFAULT 'Created',"
	"  UNIQUE (project_id, name)"
	");"
	"CREATE TABLE networks_config ("
	"  id INTEGER PRIMARY KEY,"
	"  network_id INTEGER NOT NULL REFERENCES networks (id) ON DELETE CASCADE,"
	"  key TEXT NOT NULL,"
	"  value TEXT NOT NULL,"
	"  UNIQUE (network_id, key)"
	");"

	"CREATE TABLE certificates ("
	"  id INTEGER PRIMARY KEY,"
	"  fingerprint TEXT NOT NULL UNIQUE,"
	"  type TEXT NOT NULL DEFAULT 'client',"
	"  name TEXT NOT NULL,"
	"  certificate TEXT NOT NULL,"
	"  restricted INTEGER NOT NULL DEFAULT 0"
	");"
	"CREATE TABLE certificates_projects ("
	"  id INTEGER PRIMARY KEY,"
	"  certificate_id INTEGER NOT NULL REFERENCES certificates (id) ON DELETE CASCADE,"
	"  project_id INTEGER NOT NULL REFERENCES projects (id) ON DELETE CASCADE,"
	"  UNIQUE (certificate_id, project_id)"
	");",

	/* 2: projects made before berth knew LXD's feature defaults kept their own images
	 * and custom volumes: say so, or they would now see the default project's. */
	"INSERT OR IGNORE INTO projects_config (project_id, key, value)"
	"  SELECT id, 'features.images', 'true' FROM projects WHERE name != 'default';"
	"INSERT OR IGNORE INTO projects_config (project_id, key, value)"
	"  SELECT id, 'features.storage.volumes', 'true' FROM projects WHERE name != 'default';",

	/* 3: warnings (LXD's /1.0/warnings). One row per (type, project, entity): raising it
	 * again moves count and last_seen_at. The project is a name ('' for the host's own
	 * warnings) rather than a reference, so a warning about a project outlives nothing
	 * it cannot be shown without. */
	"CREATE TABLE warnings ("
	"  id INTEGER PRIMARY KEY,"
	"  uuid TEXT NOT NULL UNIQUE,"
	"  project TEXT NOT NULL DEFAULT '',"
	"  type TEXT NOT NULL,"
	"  entity_url TEXT NOT NULL DEFAULT '',"
	"  severity TEXT NOT NULL,"
	"  status TEXT NOT NULL DEFAULT 'new',"
	"  count INTEGER NOT NULL DEFAULT 1,"
	"  last_message TEXT NOT NULL DEFAULT '',"
	"  first_seen_at TEXT NOT NULL,"
	"  last_seen_at TEXT NOT NULL,"
	"  updated_at TEXT NOT NULL,"
	"  UNIQUE (type, project, entity_url)"
	");",

	/* 4: where a pulled image came from (LXD's images_source), for auto-update and the
	 * cache: one row per image that has a remote source. The protocol is a name
	 * ("simplestreams", "lxd") rather than LXD's number. */
	"CREATE TABLE images_source ("
	"  id INTEGER PRIMARY KEY,"
	"  image_id INTEGER NOT NULL UNIQUE REFERENCES images (id) ON DELETE CASCADE,"
	"  server TEXT NOT NULL,"
	"  protocol TEXT NOT NULL,"
	"  certificate TEXT NOT NULL DEFAULT '',"
	"  alias TEXT NOT NULL DEFAULT ''"
	");",
};

int db_schema_version(void)
{
	return (int)ARRAY_SIZE(migrations);
}

static int schema_get_version(struct db_conn *conn, int *ret, struct berth_error *err)
{
	_cleanup_stmt_ struct db_stmt *stmt = NULL;
	int r;

	r = db_prepare(conn, &stmt, err, "PRAGMA user_version", NULL);
	if (r < 0)
		return r;
	r = db_step(stmt, err);
	if (r < 0)
		return r;
	*ret = r > 0 ? db_column_int(stmt, 0) : 0;
	return 0;
}

int db_schema_update(struct db_conn *conn, int *ret_old_version, struct berth_error *err)
{
	char set_version[64];
	int version = 0;
	int r;

	r = schema_get_version(conn, &version, err);
	if (r < 0)
		return r;
	if (version > db_schema_version())
		return berth_error_set(err, -EPROTO, BERTH_ERR_INTERNAL,
				       "Database schema version %d is newer than this berthd "
				       "supports (version %d): refusing to use it",
				       version, db_schema_version());
	if (version < 0)
		return berth_error_set(err, -EPROTO, BERTH_ERR_INTERNAL,
				       "Database schema version %d is invalid", version);

	for (int i = version; i < db_schema_version(); i++) {
		r = db_exec_script(conn, migrations[i], err);
		if (r < 0)
			return berth_error_wrap(err, r, "Failed to apply schema migration %d",
						i + 1);
	}
	if (version < db_schema_version()) {
		/* PRAGMA takes no bound parameters; the number is ours, not input. */
		snprintf(set_version, sizeof(set_version), "PRAGMA user_version = %d",
			 db_schema_version());
		r = db_exec_script(conn, set_version, err);
		if (r < 0)
			return r;
	}
	*ret_old_version = version;
	return 0;
}
