/* daemon/db/certificates.c: the trust store (`certificates`, and
 * `certificates_projects` for a restricted certificate's projects, schema 1), the client
 * and metrics certificates LXD's /1.0/certificates lists. */
#include <string.h>

#include "daemon/db/db.h"
#include "daemon/db/db_internal.h"
#include "lib/json.h"
#include "lib/util.h"

#define CERT_COLUMNS                                                                               \
	"c.fingerprint, c.type, c.name, c.certificate, c.restricted,"                              \
	" (SELECT json_group_array(p.name) FROM certificates_projects cp"                          \
	"  JOIN projects p ON p.id = cp.project_id WHERE cp.certificate_id = c.id)"

static int cert_from_row(struct db_conn *conn, struct db_stmt *stmt, json_t **ret,
			 struct berth_error *err)
{
	const char *projects_text = db_column_text(stmt, 5);
	json_t *projects = json_loads(projects_text, 0, NULL);
	json_t *c;

	(void)conn;
	if (!json_is_array(projects)) {
		json_decref(projects);
		projects = json_array();
	}
	c = json_pack("{s:s, s:s, s:s, s:s, s:b, s:o}", "fingerprint", db_column_text(stmt, 0),
		      "type", db_column_text(stmt, 1), "name", db_column_text(stmt, 2),
		      "certificate", db_column_text(stmt, 3), "restricted",
		      db_column_int(stmt, 4) != 0, "projects", projects);
	if (!c)
		return db_oom(err);
	*ret = c;
	return 0;
}

int db_certificate_list(struct db *db, json_t **ret, struct berth_error *err)
{
	_cleanup_conn_ struct db_conn *conn = NULL;
	_cleanup_stmt_ struct db_stmt *stmt = NULL;
	int r;

	r = db_conn_get(db, &conn, err);
	if (r < 0)
		return r;
	r = db_prepare(conn, &stmt, err,
		       "SELECT " CERT_COLUMNS " FROM certificates c ORDER BY c.name, c.fingerprint",
		       NULL);
	if (r < 0)
		return r;
	return db_collect(conn, stmt, cert_from_row, ret, err);
}

int db_certificate_get(struct db *db, const char *prefix, json_t **ret, struct berth_error *err)
{
	_cleanup_conn_ struct db_conn *conn = NULL;
	_cleanup_stmt_ struct db_stmt *stmt = NULL;
	json_auto_t *found = NULL;
	int r;

	r = db_conn_get(db, &conn, err);
	if (r < 0)
		return r;
	/* A prefix, as LXD matches it: substr() rather than LIKE, whose % and _ are live. */
	r = db_prepare(conn, &stmt, err,
		       "SELECT " CERT_COLUMNS " FROM certificates c"
		       " WHERE substr(c.fingerprint, 1, length(?1)) = ?1 LIMIT 2",
		       "t", prefix);
	if (r < 0)
		return r;
	r = db_collect(conn, stmt, cert_from_row, &found, err);
	if (r < 0)
		return r;
	if (json_array_size(found) == 0 || !*prefix)
		return berth_error_set(err, -ENOENT, BERTH_ERR_NOT_FOUND, "Certificate not found");
	if (json_array_size(found) > 1)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "More than one certificate matches");
	*ret = json_incref(json_array_get(found, 0));
	return 0;
}

/* The projects of certificate `fingerprint` become `cert`'s "projects". */
static int projects_store(struct db_conn *conn, const char *fingerprint, const json_t *cert,
			  struct berth_error *err)
{
	json_t *projects = json_object_get(cert, "projects");
	json_t *p;
	size_t i;
	int r;

	r = db_exec(conn, err,
		    "DELETE FROM certificates_projects WHERE certificate_id ="
		    " (SELECT id FROM certificates WHERE fingerprint = ?1)",
		    "t", fingerprint);
	if (r < 0)
		return r;
	json_array_foreach(projects, i, p) {
		r = db_exec(
			conn, err,
			"INSERT OR IGNORE INTO certificates_projects (certificate_id, project_id)"
			" SELECT c.id, p.id FROM certificates c, projects p"
			" WHERE c.fingerprint = ?1 AND p.name = ?2",
			"tt", fingerprint, json_string_value(p));
		if (r < 0)
			return r;
		if (r == 0) { /* listed twice, or no such project */
			_cleanup_stmt_ struct db_stmt *stmt = NULL;

			r = db_prepare(conn, &stmt, err, "SELECT 1 FROM projects WHERE name = ?1",
				       "t", json_string_value(p));
			if (r >= 0)
				r = db_step(stmt, err);
			if (r < 0)
				return r;
			if (r == 0)
				return berth_error_set(err, -ENOENT, BERTH_ERR_NOT_FOUND,
						       "Project \"%s\" not found",
						       json_string_value(p));
		}
	}
	return 0;
}

static int cert_insert(struct db_conn *conn, const json_t *cert, struct berth_error *err)
{
	const char *fp = berth_json_string(cert, "fingerprint");
	int r;

	r = db_exec(conn, err,
		    "INSERT INTO certificates (fingerprint, type, name, certificate, restricted)"
		    " VALUES (?1, ?2, ?3, ?4, ?5)",
		    "ttttb", fp, berth_json_string(cert, "type"), berth_json_string(cert, "name"),
		    berth_json_string(cert, "certificate"),
		    json_is_true(json_object_get(cert, "restricted")));
	if (r == -EEXIST)
		return berth_error_set(err, -EEXIST, BERTH_ERR_CONFLICT,
				       "Certificate already in trust store");
	if (r < 0)
		return r;
	return projects_store(conn, fp, cert, err);
}

int db_certificate_add(struct db *db, const json_t *cert, struct berth_error *err)
{
	struct db_conn *conn = NULL;
	int r;

	r = db_tx_begin(db, &conn, err);
	if (r < 0)
		return r;
	r = cert_insert(conn, cert, err);
	return db_tx_end(db, conn, r, err);
}

static int cert_update(struct db_conn *conn, const char *fingerprint, const json_t *cert,
		       struct berth_error *err)
{
	int r = db_exec(conn, err,
			"UPDATE certificates SET name = ?2, type = ?3, restricted = ?4"
			" WHERE fingerprint = ?1",
			"tttb", fingerprint, berth_json_string(cert, "name"),
			berth_json_string(cert, "type"),
			json_is_true(json_object_get(cert, "restricted")));

	if (r < 0)
		return r;
	if (r == 0)
		return berth_error_set(err, -ENOENT, BERTH_ERR_NOT_FOUND, "Certificate not found");
	return projects_store(conn, fingerprint, cert, err);
}

int db_certificate_update(struct db *db, const char *fingerprint, const json_t *cert,
			  struct berth_error *err)
{
	struct db_conn *conn = NULL;
	int r;

	r = db_tx_begin(db, &conn, err);
	if (r < 0)
		return r;
	r = cert_update(conn, fingerprint, cert, err);
	return db_tx_end(db, conn, r, err);
}

int db_certificate_delete(struct db *db, const char *fingerprint, struct berth_error *err)
{
	struct db_conn *conn = NULL;
	int r;

	r = db_tx_begin(db, &conn, err);
	if (r < 0)
		return r;
	r = db_exec(conn, err, "DELETE FROM certificates WHERE fingerprint = ?1", "t", fingerprint);
	if (r == 0)
		r = berth_error_set(err, -ENOENT, BERTH_ERR_NOT_FOUND, "Certificate not found");
	return db_tx_end(db, conn, r < 0 ? r : 0, err);
}
