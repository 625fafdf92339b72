/* daemon/db/config.c: the server configuration (`config` table), a flat map of string
 * keys to string values as in LXD's GET/PUT /1.0 "config". */
#include "daemon/db/db.h"
#include "daemon/db/db_internal.h"

int db_server_config_get(struct db *db, json_t **ret, struct berth_error *err)
{
	_cleanup_conn_ struct db_conn *conn = NULL;
	_cleanup_stmt_ struct db_stmt *stmt = NULL;
	json_auto_t *config = json_object();
	int r;

	if (!config)
		return db_oom(err);
	r = db_conn_get(db, &conn, err);
	if (r < 0)
		return r;
	r = db_prepare(conn, &stmt, err, "SELECT key, value FROM config ORDER BY key", NULL);
	if (r < 0)
		return r;
	while ((r = db_step(stmt, err)) > 0) {
		r = db_json_set_str(config, db_column_text(stmt, 0), db_column_text(stmt, 1), err);
		if (r < 0)
			return r;
	}
	if (r < 0)
		return r;
	*ret = TAKE_PTR(config);
	return 0;
}

static int config_replace(struct db_conn *conn, const json_t *config, struct berth_error *err)
{
	int r;

	r = db_exec(conn, err, "DELETE FROM config", NULL);
	if (r < 0)
		return r;
	/* db_kv_store binds ?1 as a parent id; the flat table has none, so ignore it. */
	return db_kv_store(conn, "INSERT INTO config (key, value) SELECT ?2, ?3 WHERE ?1 = 0", 0,
			   config, "Config", err);
}

int db_server_config_replace(struct db *db, const json_t *config, struct berth_error *err)
{
	struct db_conn *conn = NULL;
	int r;

	r = db_tx_begin(db, &conn, err);
	if (r < 0)
		return r;
	r = config_replace(conn, config, err);
	return db_tx_end(db, conn, r, err);
}
