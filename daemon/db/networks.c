/* daemon/db/networks.c: managed network records (`networks`, `networks_config`, both in
 * schema migration 1). Every network is stored in project "default". */
#include <stdlib.h>
#include <string.h>

#include "daemon/db/db.h"
#include "daemon/db/db_internal.h"
#include "daemon/db/db_tables.h"
#include "lib/json.h"
#include "lib/util.h"

static const char sql_config_load[] =
	"SELECT key, value FROM networks_config WHERE network_id = ?1 ORDER BY key";
static const char sql_config_insert[] =
	"INSERT INTO networks_config (network_id, key, value) VALUES (?1, ?2, ?3)";

/* {"name","type","description","config","status"} from (id, name, type, description,
 * status). */
static int network_from_row(struct db_conn *conn, struct db_stmt *stmt, json_t **ret,
			    struct berth_error *err)
{
	json_auto_t *net = json_object();
	json_t *config = NULL;
	int r;

	if (!net)
		return db_oom(err);
	r = db_json_set_str(net, "name", db_column_text(stmt, 1), err);
	if (r >= 0)
		r = db_json_set_str(net, "type", db_column_text(stmt, 2), err);
	if (r >= 0)
		r = db_json_set_str(net, "description", db_column_text(stmt, 3), err);
	if (r >= 0)
		r = db_kv_load(conn, sql_config_load, db_column_int64(stmt, 0), &config, err);
	if (r >= 0)
		r = db_json_set_new(net, "config", config, err);
	if (r >= 0)
		r = db_json_set_str(net, "status", db_column_text(stmt, 4), err);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(net);
	return 0;
}

int db_network_list(struct db *db, json_t **ret, struct berth_error *err)
{
	_cleanup_stmt_ struct db_stmt *stmt = NULL;
	struct db_conn *conn = NULL;
	int r;

	r = db_read_begin(db, &conn, err);
	if (r < 0)
		return r;
	r = db_prepare(conn, &stmt, err,
		       "SELECT n.id, n.name, n.type, n.description, n.status FROM networks n"
		       " JOIN projects p ON p.id = n.project_id WHERE p.name = 'default'"
		       " ORDER BY n.name",
		       NULL);
	if (r >= 0)
		r = db_collect(conn, stmt, network_from_row, ret, err);
	/* Before the connection goes back to the pool. */
	db_finalize(TAKE_PTR(stmt));
	return db_tx_end(db, conn, r, err);
}

/* The row of `name`: stepped, ready for network_from_row. */
static int network_row(struct db_conn *conn, const char *name, struct db_stmt **ret,
		       struct berth_error *err)
{
	_cleanup_stmt_ struct db_stmt *stmt = NULL;
	int r;

	r = db_prepare(conn, &stmt, err,
		       "SELECT n.id, n.name, n.type, n.description, n.status FROM networks n"
		       " JOIN projects p ON p.id = n.project_id"
		       " WHERE p.name = 'default' AND n.name = ?1",
		       "t", name);
	if (r < 0)
		return r;
	r = db_step(stmt, err);
	if (r < 0)
		return r;
	if (r == 0)
		return berth_error_set(err, -ENOENT, BERTH_ERR_NOT_FOUND,
				       "Network \"%s\" not found", name);
	*ret = TAKE_PTR(stmt);
	return 0;
}

static int network_id(struct db_conn *conn, const char *name, int64_t *ret, struct berth_error *err)
{
	_cleanup_stmt_ struct db_stmt *stmt = NULL;
	int r = network_row(conn, name, &stmt, err);

	if (r < 0)
		return r;
	*ret = db_column_int64(stmt, 0);
	return 0;
}

int db_network_get(struct db *db, const char *name, json_t **ret, struct berth_error *err)
{
	_cleanup_stmt_ struct db_stmt *stmt = NULL;
	struct db_conn *conn = NULL;
	int r;

	r = db_read_begin(db, &conn, err);
	if (r < 0)
		return r;
	r = network_row(conn, name, &stmt, err);
	if (r >= 0)
		r = network_from_row(conn, stmt, ret, err);
	/* Before the connection goes back to the pool. */
	db_finalize(TAKE_PTR(stmt));
	return db_tx_end(db, conn, r, err);
}

static int network_create(struct db_conn *conn, const json_t *net, db_hook_fn hook, void *data,
			  struct berth_error *err)
{
	const char *name = berth_json_string(net, "name");
	int64_t project_id, id;
	int r;

	r = db_project_id(conn, "default", &project_id, err);
	if (r < 0)
		return r;
	r = db_exec(
		conn, err,
		"INSERT INTO networks (project_id, name, type, description) VALUES (?1, ?2, ?3, ?4)",
		"ittt", project_id, name, berth_json_string(net, "type") ?: "bridge",
		berth_json_string(net, "description") ?: "");
	if (r == -EEXIST)
		return berth_error_set(err, r, BERTH_ERR_CONFLICT, "Network \"%s\" already exists",
				       name);
	if (r < 0)
		return r;
	id = db_last_insert_id(conn);
	r = db_kv_store(conn, sql_config_insert, id, json_object_get(net, "config"), "Config", err);
	if (r < 0)
		return r;
	return hook ? hook(data, err) : 0;
}

int db_network_create(struct db *db, const json_t *network, db_hook_fn hook, void *data,
		      struct berth_error *err)
{
	struct db_conn *conn = NULL;
	int r;

	if (!berth_json_string(network, "name"))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST, "No name provided");
	r = db_tx_begin(db, &conn, err);
	if (r < 0)
		return r;
	r = network_create(conn, network, hook, data, err);
	return db_tx_end(db, conn, r, err);
}

static int network_update(struct db_conn *conn, const char *name, const json_t *net,
			  db_hook_fn hook, void *data, struct berth_error *err)
{
	int64_t id;
	int r = network_id(conn, name, &id, err);

	if (r < 0)
		return r;
	r = db_exec(conn, err, "UPDATE networks SET description = ?2 WHERE id = ?1", "it", id,
		    berth_json_string(net, "description") ?: "");
	if (r >= 0)
		r = db_exec(conn, err, "DELETE FROM networks_config WHERE network_id = ?1", "i",
			    id);
	if (r >= 0)
		r = db_kv_store(conn, sql_config_insert, id, json_object_get(net, "config"),
				"Config", err);
	if (r < 0)
		return r;
	return hook ? hook(data, err) : 0;
}

int db_network_update(struct db *db, const char *name, const json_t *network, db_hook_fn hook,
		      void *data, struct berth_error *err)
{
	struct db_conn *conn = NULL;
	int r;

	r = db_tx_begin(db, &conn, err);
	if (r < 0)
		return r;
	r = network_update(conn, name, network, hook, data, err);
	return db_tx_end(db, conn, r, err);
}

/* URLs of the profiles and instances using network `name` through a nic device (an
 * instance also through its profiles, as LXD counts them). */
static int network_used_by(struct db_conn *conn, const char *name, json_t **ret,
			   struct berth_error *err)
{
	/* A nic device names its network with network=NAME, or (nictype=bridged) with
	 * parent=NAME. */
	static const char sql[] =
		"SELECT 'profiles', p.name, pr.name FROM profiles p"
		" JOIN projects pr ON pr.id = p.project_id"
		" JOIN profiles_devices d ON d.profile_id = p.id"
		" JOIN profiles_devices_config c ON c.device_id = d.id"
		" WHERE d.type = 'nic' AND c.value = ?1 AND (c.key = 'network' OR (c.key = 'parent'"
		"  AND EXISTS (SELECT 1 FROM profiles_devices_config c2 WHERE c2.device_id = d.id"
		"  AND c2.key = 'nictype' AND c2.value = 'bridged')))"
		" UNION SELECT 'instances', i.name, pr.name FROM instances i"
		" JOIN projects pr ON pr.id = i.project_id"
		" JOIN instances_devices d ON d.instance_id = i.id"
		" JOIN instances_devices_config c ON c.device_id = d.id"
		" WHERE d.type = 'nic' AND c.value = ?1 AND (c.key = 'network' OR (c.key = 'parent'"
		"  AND EXISTS (SELECT 1 FROM instances_devices_config c2 WHERE c2.device_id = d.id"
		"  AND c2.key = 'nictype' AND c2.value = 'bridged')))"
		/* Instances that get such a device from a profile and do not replace it with
		 * a device of their own under that name. */
		" UNION SELECT 'instances', i.name, pr.name FROM instances i"
		" JOIN projects pr ON pr.id = i.project_id"
		" JOIN instances_profiles ip ON ip.instance_id = i.id"
		" JOIN profiles_devices d ON d.profile_id = ip.profile_id"
		" JOIN profiles_devices_config c ON c.device_id = d.id"
		" WHERE d.type = 'nic' AND c.value = ?1 AND (c.key = 'network' OR (c.key = 'parent'"
		"  AND EXISTS (SELECT 1 FROM profiles_devices_config c2 WHERE c2.device_id = d.id"
		"  AND c2.key = 'nictype' AND c2.value = 'bridged')))"
		"  AND NOT EXISTS (SELECT 1 FROM instances_devices od"
		"  WHERE od.instance_id = i.id AND od.name = d.name)"
		" ORDER BY 1, 3, 2";
	_cleanup_stmt_ struct db_stmt *stmt = NULL;
	int r = db_prepare(conn, &stmt, err, sql, "t", name);

	if (r < 0)
		return r;
	return db_used_by_urls(stmt, NULL, ret, err);
}

int db_network_used_by(struct db *db, const char *name, json_t **ret, struct berth_error *err)
{
	struct db_conn *conn = NULL;
	int r;

	r = db_read_begin(db, &conn, err);
	if (r < 0)
		return r;
	r = network_used_by(conn, name, ret, err);
	return db_tx_end(db, conn, r, err);
}

/* The strings of `list` joined with ", ", or NULL without memory. */
static char *join_strings(const json_t *list)
{
	size_t len = 1, i;
	json_t *v;
	char *s;

	json_array_foreach(list, i, v)
		len += strlen(json_string_value(v) ?: "") + 2;
	s = malloc(len);
	if (!s)
		return NULL;
	s[0] = '\0';
	json_array_foreach(list, i, v) {
		if (i > 0)
			strcat(s, ", ");
		strcat(s, json_string_value(v) ?: "");
	}
	return s;
}

/* -EBUSY (400) naming the users when anything uses `name`. */
static int network_check_unused(struct db_conn *conn, const char *name, const char *what,
				struct berth_error *err)
{
	json_auto_t *used = NULL;
	_cleanup_free_ char *list = NULL;
	int r = network_used_by(conn, name, &used, err);

	if (r < 0)
		return r;
	if (json_array_size(used) == 0)
		return 0;
	list = join_strings(used);
	return berth_error_set(err, -EBUSY, BERTH_ERR_BAD_REQUEST,
			       "Cannot %s network \"%s\": it is in use by %s", what, name,
			       list ?: "instances or profiles");
}

static int network_rename(struct db_conn *conn, const char *name, const char *new_name,
			  db_hook_fn hook, void *data, struct berth_error *err)
{
	int64_t id;
	int r = network_id(conn, name, &id, err);

	if (r >= 0)
		r = network_check_unused(conn, name, "rename", err);
	if (r < 0)
		return r;
	r = db_exec(conn, err, "UPDATE networks SET name = ?2 WHERE id = ?1", "it", id, new_name);
	if (r == -EEXIST)
		return berth_error_set(err, r, BERTH_ERR_CONFLICT, "Network \"%s\" already exists",
				       new_name);
	if (r < 0)
		return r;
	return hook ? hook(data, err) : 0;
}

int db_network_rename(struct db *db, const char *name, const char *new_name, db_hook_fn hook,
		      void *data, struct berth_error *err)
{
	struct db_conn *conn = NULL;
	int r;

	r = db_tx_begin(db, &conn, err);
	if (r < 0)
		return r;
	r = network_rename(conn, name, new_name, hook, data, err);
	return db_tx_end(db, conn, r, err);
}

static int network_delete(struct db_conn *conn, const char *name, db_hook_fn hook, void *data,
			  struct berth_error *err)
{
	int64_t id;
	int r = network_id(conn, name, &id, err);

	if (r >= 0)
		r = network_check_unused(conn, name, "delete", err);
	if (r >= 0)
		r = db_exec(conn, err, "DELETE FROM networks WHERE id = ?1", "i", id);
	if (r < 0)
		return r;
	return hook ? hook(data, err) : 0;
}

int db_network_delete(struct db *db, const char *name, db_hook_fn hook, void *data,
		      struct berth_error *err)
{
	struct db_conn *conn = NULL;
	int r;

	r = db_tx_begin(db, &conn, err);
	if (r < 0)
		return r;
	r = network_delete(conn, name, hook, data, err);
	return db_tx_end(db, conn, r, err);
}
