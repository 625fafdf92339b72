/* daemon/db/warnings.c: warning records (`warnings`, schema migration 3): what berthd
 * wants an admin to see, one row per (type, project, entity), as LXD's /1.0/warnings
 * lists them. Raising a recorded warning again moves its count and last_seen_at;
 * resolving it only changes its status, so its history stays until someone deletes it. */
#include <string.h>

#include "daemon/db/db.h"
#include "daemon/db/db_internal.h"
#include "lib/util.h"

#define WARNING_COLUMNS                                                                            \
	"uuid, project, type, count, first_seen_at, last_seen_at, last_message, severity, "        \
	"status, entity_url"

/* A warning object from a row of WARNING_COLUMNS. */
static int warning_from_row(struct db_conn *conn, struct db_stmt *stmt, json_t **ret,
			    struct berth_error *err)
{
	json_auto_t *w = NULL;

	(void)conn;
	w = json_pack("{s:s, s:s, s:s, s:s, s:I, s:s, s:s, s:s, s:s, s:s, s:s}", "uuid",
		      db_column_text(stmt, 0), "location", "none", "project",
		      db_column_text(stmt, 1), "type", db_column_text(stmt, 2), "count",
		      (json_int_t)db_column_int64(stmt, 3), "first_seen_at",
		      db_column_text(stmt, 4), "last_seen_at", db_column_text(stmt, 5),
		      "last_message", db_column_text(stmt, 6), "severity", db_column_text(stmt, 7),
		      "status", db_column_text(stmt, 8), "entity_url", db_column_text(stmt, 9));
	if (!w)
		return db_oom(err);
	*ret = TAKE_PTR(w);
	return 0;
}

int db_warning_list(struct db *db, const char *project, json_t **ret, struct berth_error *err)
{
	_cleanup_conn_ struct db_conn *conn = NULL;
	_cleanup_stmt_ struct db_stmt *stmt = NULL;
	int r;

	r = db_conn_get(db, &conn, err);
	if (r < 0)
		return r;
	r = db_prepare(conn, &stmt, err,
		       "SELECT " WARNING_COLUMNS " FROM warnings"
		       " WHERE ?1 IS NULL OR project = ?1 ORDER BY first_seen_at, id",
		       "t", project);
	if (r < 0)
		return r;
	return db_collect(conn, stmt, warning_from_row, ret, err);
}

int db_warning_get(struct db *db, const char *uuid, json_t **ret, struct berth_error *err)
{
	_cleanup_conn_ struct db_conn *conn = NULL;
	_cleanup_stmt_ struct db_stmt *stmt = NULL;
	int r;

	r = db_conn_get(db, &conn, err);
	if (r < 0)
		return r;
	r = db_prepare(conn, &stmt, err, "SELECT " WARNING_COLUMNS " FROM warnings WHERE uuid = ?1",
		       "t", uuid);
	if (r < 0)
		return r;
	r = db_step(stmt, err);
	if (r < 0)
		return r;
	if (r == 0)
		return berth_error_set(err, -ENOENT, BERTH_ERR_NOT_FOUND, "Warning not found");
	return warning_from_row(conn, stmt, ret, err);
}

static int warning_raise(struct db_conn *conn, const struct db_warning *w, const char *now,
			 struct berth_error *err)
{
	char uuid[BERTH_UUID_STR_LEN];
	int r;

	/* A warning that comes back after it was resolved is current again; one an admin
	 * acknowledged stays acknowledged. */
	r = db_exec(conn, err,
		    "UPDATE warnings SET count = count + 1, last_seen_at = ?1, updated_at = ?1,"
		    " last_message = ?2, severity = ?3,"
		    " status = CASE status WHEN 'resolved' THEN 'new' ELSE status END"
		    " WHERE type = ?4 AND project = ?5 AND entity_url = ?6",
		    "tttttt", now, w->message, w->severity, w->type, w->project ?: "",
		    w->entity_url ?: "");
	if (r != 0)
		return r < 0 ? r : 0;
	r = berth_uuid_new(uuid);
	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "Cannot make a warning UUID");
	r = db_exec(conn, err,
		    "INSERT INTO warnings (uuid, project, type, entity_url, severity, status,"
		    " count, last_message, first_seen_at, last_seen_at, updated_at)"
		    " VALUES (?1, ?2, ?3, ?4, ?5, 'new', 1, ?6, ?7, ?7, ?7)",
		    "ttttttt", uuid, w->project ?: "", w->type, w->entity_url ?: "", w->severity,
		    w->message, now);
	return r < 0 ? r : 1;
}

int db_warning_raise(struct db *db, const struct db_warning *w, struct berth_error *err)
{
	char now[BERTH_RFC3339_MAX];
	struct db_conn *conn = NULL;
	int r;

	berth_now_rfc3339(now);
	r = db_tx_begin(db, &conn, err);
	if (r < 0)
		return r;
	r = warning_raise(conn, w, now, err);
	return db_tx_end(db, conn, r, err);
}

static int warning_resolve(struct db_conn *conn, const char *project, const char *type,
			   const char *entity_url, const char *now, struct berth_error *err)
{
	return db_exec(conn, err,
		       "UPDATE warnings SET status = 'resolved', updated_at = ?1"
		       " WHERE type = ?2 AND project = ?3 AND entity_url = ?4"
		       " AND status != 'resolved'",
		       "tttt", now, type, project ?: "", entity_url ?: "");
}

/* Whether a warning that is not resolved exists: checked before taking the write lock, as
 * the checks that resolve warnings run often and usually find nothing to do. */
static int warning_open(struct db *db, const char *project, const char *type,
			const char *entity_url, struct berth_error *err)
{
	_cleanup_conn_ struct db_conn *conn = NULL;
	_cleanup_stmt_ struct db_stmt *stmt = NULL;
	int r;

	r = db_conn_get(db, &conn, err);
	if (r < 0)
		return r;
	r = db_prepare(conn, &stmt, err,
		       "SELECT 1 FROM warnings WHERE type = ?1 AND project = ?2"
		       " AND entity_url = ?3 AND status != 'resolved'",
		       "ttt", type, project ?: "", entity_url ?: "");
	if (r < 0)
		return r;
	return db_step(stmt, err);
}

int db_warning_resolve(struct db *db, const char *project, const char *type, const char *entity_url,
		       struct berth_error *err)
{
	char now[BERTH_RFC3339_MAX];
	struct db_conn *conn = NULL;
	int r;

	r = warning_open(db, project, type, entity_url, err);
	if (r <= 0)
		return r;
	berth_now_rfc3339(now);
	r = db_tx_begin(db, &conn, err);
	if (r < 0)
		return r;
	r = warning_resolve(conn, project, type, entity_url, now, err);
	r = db_tx_end(db, conn, r, err);
	return r < 0 ? r : (r > 0);
}

static int warning_set_status(struct db_conn *conn, const char *uuid, const char *status,
			      struct berth_error *err)
{
	char now[BERTH_RFC3339_MAX];
	int r;

	berth_now_rfc3339(now);
	r = db_exec(conn, err, "UPDATE warnings SET status = ?1, updated_at = ?2 WHERE uuid = ?3",
		    "ttt", status, now, uuid);
	if (r == 0)
		return berth_error_set(err, -ENOENT, BERTH_ERR_NOT_FOUND, "Warning not found");
	return r < 0 ? r : 0;
}

int db_warning_set_status(struct db *db, const char *uuid, const char *status,
			  struct berth_error *err)
{
	struct db_conn *conn = NULL;
	int r;

	r = db_tx_begin(db, &conn, err);
	if (r < 0)
		return r;
	r = warning_set_status(conn, uuid, status, err);
	return db_tx_end(db, conn, r, err);
}

static int warning_delete(struct db_conn *conn, const char *uuid, struct berth_error *err)
{
	int r = db_exec(conn, err, "DELETE FROM warnings WHERE uuid = ?1", "t", uuid);

	if (r == 0)
		return berth_error_set(err, -ENOENT, BERTH_ERR_NOT_FOUND, "Warning not found");
	return r < 0 ? r : 0;
}

int db_warning_delete(struct db *db, const char *uuid, struct berth_error *err)
{
	struct db_conn *conn = NULL;
	int r;

	r = db_tx_begin(db, &conn, err);
	if (r < 0)
		return r;
	r = warning_delete(conn, uuid, err);
	return db_tx_end(db, conn, r, err);
}

static int warning_prunable(struct db *db, const char *before, struct berth_error *err)
{
	_cleanup_conn_ struct db_conn *conn = NULL;
	_cleanup_stmt_ struct db_stmt *stmt = NULL;
	int r;

	r = db_conn_get(db, &conn, err);
	if (r < 0)
		return r;
	r = db_prepare(conn, &stmt, err,
		       "SELECT 1 FROM warnings WHERE status = 'resolved' AND updated_at < ?1", "t",
		       before);
	if (r < 0)
		return r;
	return db_step(stmt, err);
}

int db_warning_prune(struct db *db, const char *before, struct berth_error *err)
{
	struct db_conn *conn = NULL;
	int r;

	r = warning_prunable(db, before, err);
	if (r <= 0)
		return r;
	r = db_tx_begin(db, &conn, err);
	if (r < 0)
		return r;
	r = db_exec(conn, err, "DELETE FROM warnings WHERE status = 'resolved' AND updated_at < ?1",
		    "t", before);
	return db_tx_end(db, conn, r, err);
}
