/* daemon/db/images.c: image records of a project (`images`, `images_properties`) and
 * their aliases (`images_aliases`). The files themselves belong to images/store.c; this
 * file only knows fingerprints. */
#include <string.h>

#include "daemon/db/db.h"
#include "daemon/db/db_internal.h"
#include "daemon/db/db_tables.h"
#include "lib/json.h"
#include "lib/util.h"

static const char sql_props_load[] =
	"SELECT key, value FROM images_properties WHERE image_id = ?1 ORDER BY key";
static const char sql_props_insert[] =
	"INSERT INTO images_properties (image_id, key, value) VALUES (?1, ?2, ?3)";

#define IMAGE_COLUMNS                                                                              \
	"id, fingerprint, filename, size, public, auto_update, cached, architecture, type,"        \
	" created_at, uploaded_at, expires_at, last_used_at"

static int image_id(struct db_conn *conn, int64_t project_id, const char *fingerprint, int64_t *ret,
		    struct berth_error *err)
{
	_cleanup_stmt_ struct db_stmt *stmt = NULL;
	int r;

	r = db_prepare(conn, &stmt, err,
		       "SELECT id FROM images WHERE project_id = ?1 AND fingerprint = ?2", "it",
		       project_id, fingerprint);
	if (r < 0)
		return r;
	r = db_step(stmt, err);
	if (r < 0)
		return r;
	if (r == 0)
		return berth_error_set(err, -ENOENT, BERTH_ERR_NOT_FOUND, "Image \"%s\" not found",
				       fingerprint);
	*ret = db_column_int64(stmt, 0);
	return 0;
}

/* [{"name","description"}] of the aliases pointing at image `id`, sorted by name. */
static int image_aliases_load(struct db_conn *conn, int64_t id, json_t **ret,
			      struct berth_error *err)
{
	_cleanup_stmt_ struct db_stmt *stmt = NULL;
	json_auto_t *list = json_array();
	int r;

	if (!list)
		return db_oom(err);
	r = db_prepare(conn, &stmt, err,
		       "SELECT name, description FROM images_aliases WHERE image_id = ?1"
		       " ORDER BY name",
		       "i", id);
	if (r < 0)
		return r;
	while ((r = db_step(stmt, err)) > 0) {
		json_t *a = json_pack("{s:s, s:s}", "name", db_column_text(stmt, 0), "description",
				      db_column_text(stmt, 1));
		if (!a || json_array_append_new(list, a) < 0)
			return db_oom(err);
	}
	if (r < 0)
		return r;
	*ret = TAKE_PTR(list);
	return 0;
}

/* "update_source" {alias, certificate, protocol, server, image_type} of image `id` into
 * `img`, when it was pulled from a server. */
static int image_source_load(struct db_conn *conn, int64_t id, json_t *img, struct berth_error *err)
{
	_cleanup_stmt_ struct db_stmt *stmt = NULL;
	json_t *src;
	int r;

	r = db_prepare(conn, &stmt, err,
		       "SELECT s.alias, s.certificate, s.protocol, s.server, i.type"
		       " FROM images_source s JOIN images i ON i.id = s.image_id"
		       " WHERE s.image_id = ?1",
		       "i", id);
	if (r < 0)
		return r;
	r = db_step(stmt, err);
	if (r <= 0)
		return r;
	src = json_pack("{s:s, s:s, s:s, s:s, s:s}", "alias", db_column_text(stmt, 0),
			"certificate", db_column_text(stmt, 1), "protocol", db_column_text(stmt, 2),
			"server", db_column_text(stmt, 3), "image_type", db_column_text(stmt, 4));
	return db_json_set_new(img, "update_source", src, err);
}

/* The Image object from a row of IMAGE_COLUMNS. */
static int image_from_row(struct db_conn *conn, struct db_stmt *stmt, json_t **ret,
			  struct berth_error *err)
{
	int64_t id = db_column_int64(stmt, 0);
	json_t *props = NULL, *aliases = NULL;
	json_auto_t *img = NULL;
	int r;

	img = json_pack("{s:s, s:s, s:I, s:b, s:b, s:b, s:s, s:s, s:s, s:s, s:s, s:s}",
			"fingerprint", db_column_text(stmt, 1), "filename", db_column_text(stmt, 2),
			"size", (json_int_t)db_column_int64(stmt, 3), "public",
			db_column_int(stmt, 4), "auto_update", db_column_int(stmt, 5), "cached",
			db_column_int(stmt, 6), "architecture", db_column_text(stmt, 7), "type",
			db_column_text(stmt, 8), "created_at", db_column_text(stmt, 9),
			"uploaded_at", db_column_text(stmt, 10), "expires_at",
			db_column_text(stmt, 11), "last_used_at", db_column_text(stmt, 12));
	if (!img)
		return db_oom(err);
	r = db_kv_load(conn, sql_props_load, id, &props, err);
	if (r >= 0)
		r = db_json_set_new(img, "properties", props, err);
	if (r >= 0)
		r = image_aliases_load(conn, id, &aliases, err);
	if (r >= 0)
		r = db_json_set_new(img, "aliases", aliases, err);
	if (r >= 0)
		r = image_source_load(conn, id, img, err);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(img);
	return 0;
}

static int image_list(struct db_conn *conn, const char *project, json_t **ret,
		      struct berth_error *err)
{
	_cleanup_stmt_ struct db_stmt *stmt = NULL;
	int64_t project_id = 0;
	int r;

	r = db_project_id(conn, project, &project_id, err);
	if (r < 0)
		return r;
	r = db_prepare(conn, &stmt, err,
		       "SELECT " IMAGE_COLUMNS " FROM images WHERE project_id = ?1"
		       " ORDER BY fingerprint",
		       "i", project_id);
	if (r < 0)
		return r;
	return db_collect(conn, stmt, image_from_row, ret, err);
}

int db_image_list(struct db *db, const char *project, json_t **ret, struct berth_error *err)
{
	struct db_conn *conn = NULL;
	int r;

	r = db_read_begin(db, &conn, err);
	if (r < 0)
		return r;
	r = image_list(conn, project, ret, err);
	return db_tx_end(db, conn, r, err);
}

static int image_get(struct db_conn *conn, const char *project, const char *fingerprint,
		     json_t **ret, struct berth_error *err)
{
	_cleanup_stmt_ struct db_stmt *stmt = NULL;
	int64_t project_id = 0;
	int r;

	r = db_project_id(conn, project, &project_id, err);
	if (r < 0)
		return r;
	r = db_prepare(conn, &stmt, err,
		       "SELECT " IMAGE_COLUMNS " FROM images WHERE project_id = ?1"
		       " AND fingerprint = ?2",
		       "it", project_id, fingerprint);
	if (r < 0)
		return r;
	r = db_step(stmt, err);
	if (r < 0)
		return r;
	if (r == 0)
		return berth_error_set(err, -ENOENT, BERTH_ERR_NOT_FOUND, "Image \"%s\" not found",
				       fingerprint);
	return image_from_row(conn, stmt, ret, err);
}

int db_image_get(struct db *db, const char *project, const char *fingerprint, json_t **ret,
		 struct berth_error *err)
{
	struct db_conn *conn = NULL;
	int r;

	r = db_read_begin(db, &conn, err);
	if (r < 0)
		return r;
	r = image_get(conn, project, fingerprint, ret, err);
	return db_tx_end(db, conn, r, err);
}

static bool is_hex(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
			return false;
	return true;
}

static int image_resolve(struct db_conn *conn, const char *project, const char *prefix, char **ret,
			 struct berth_error *err)
{
	_cleanup_stmt_ struct db_stmt *stmt = NULL;
	_cleanup_free_ char *found = NULL;
	int64_t project_id = 0;
	int r;

	r = db_project_id(conn, project, &project_id, err);
	if (r < 0)
		return r;
	/* Only lower-case hex reaches the LIKE, so no wildcard needs escaping. */
	if (!is_hex(prefix) || strlen(prefix) > 64)
		return berth_error_set(err, -ENOENT, BERTH_ERR_NOT_FOUND, "Image \"%s\" not found",
				       prefix);
	r = db_prepare(conn, &stmt, err,
		       "SELECT fingerprint FROM images WHERE project_id = ?1"
		       " AND fingerprint LIKE ?2 || '%' LIMIT 2",
		       "it", project_id, prefix);
	if (r < 0)
		return r;
	while ((r = db_step(stmt, err)) > 0) {
		if (found)
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "More than one image matches");
		found = strdup(db_column_text(stmt, 0));
		if (!found)
			return db_oom(err);
	}
	if (r < 0)
		return r;
	if (!found)
		return berth_error_set(err, -ENOENT, BERTH_ERR_NOT_FOUND, "Image \"%s\" not found",
				       prefix);
	*ret = TAKE_PTR(found);
	return 0;
}

int db_image_resolve(struct db *db, const char *project, const char *prefix, char **ret,
		     struct berth_error *err)
{
	struct db_conn *conn = NULL;
	int r;

	r = db_read_begin(db, &conn, err);
	if (r < 0)
		return r;
	r = image_resolve(conn, project, prefix, ret, err);
	return db_tx_end(db, conn, r, err);
}

static int image_create(struct db_conn *conn, const char *project, const json_t *image,
			struct berth_error *err)
{
	const char *fp = berth_json_string(image, "fingerprint");
	const char *created = berth_json_string(image, "created_at");
	const char *expires = berth_json_string(image, "expires_at");
	const char *type = berth_json_string(image, "type");
	char now[BERTH_RFC3339_MAX];
	int64_t project_id = 0, id;
	json_t *src;
	int r;

	if (!fp || !is_hex(fp))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Image fingerprint is missing or invalid");
	r = db_project_id(conn, project, &project_id, err);
	if (r < 0)
		return r;
	berth_now_rfc3339(now);
	r = db_exec(conn, err,
		    "INSERT INTO images (project_id, fingerprint, filename, size, public,"
		    " auto_update, cached, architecture, type, created_at, uploaded_at, expires_at)"
		    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
		    "ittibbbttttt", project_id, fp, berth_json_string(image, "filename") ?: "",
		    (int64_t)json_integer_value(json_object_get(image, "size")),
		    berth_json_bool(image, "public", false),
		    berth_json_bool(image, "auto_update", false),
		    berth_json_bool(image, "cached", false),
		    berth_json_string(image, "architecture") ?: "", type ? type : "container",
		    created ? created : now, now, expires ? expires : "0001-01-01T00:00:00Z");
	if (r == -EEXIST)
		return berth_error_set(err, r, BERTH_ERR_CONFLICT,
				       "Image with same fingerprint already exists");
	if (r < 0)
		return r;
	id = db_last_insert_id(conn);
	src = json_object_get(image, "update_source");
	if (json_is_object(src))
		r = db_exec(conn, err,
			    "INSERT INTO images_source (image_id, server, protocol, certificate,"
			    " alias) VALUES (?1, ?2, ?3, ?4, ?5)",
			    "itttt", id, berth_json_string(src, "server") ?: "",
			    berth_json_string(src, "protocol") ?: "",
			    berth_json_string(src, "certificate") ?: "",
			    berth_json_string(src, "alias") ?: "");
	if (r < 0)
		return r;
	return db_kv_store(conn, sql_props_insert, id, json_object_get(image, "properties"),
			   "Properties", err);
}

int db_image_create(struct db *db, const char *project, const json_t *image,
		    struct berth_error *err)
{
	struct db_conn *conn = NULL;
	int r;

	r = db_tx_begin(db, &conn, err);
	if (r < 0)
		return r;
	r = image_create(conn, project, image, err);
	return db_tx_end(db, conn, r, err);
}

static int image_update(struct db_conn *conn, const char *project, const char *fingerprint,
			const json_t *image, struct berth_error *err)
{
	const char *expires = berth_json_string(image, "expires_at");
	int64_t project_id = 0, id = 0;
	int r;

	r = db_project_id(conn, project, &project_id, err);
	if (r >= 0)
		r = image_id(conn, project_id, fingerprint, &id, err);
	if (r >= 0)
		r = db_exec(conn, err,
			    "UPDATE images SET public = ?2, auto_update = ?3,"
			    " expires_at = coalesce(?4, expires_at) WHERE id = ?1",
			    "ibbt", id, berth_json_bool(image, "public", false),
			    berth_json_bool(image, "auto_update", false), expires);
	if (r >= 0)
		r = db_exec(conn, err, "DELETE FROM images_properties WHERE image_id = ?1", "i",
			    id);
	if (r < 0)
		return r;
	return db_kv_store(conn, sql_props_insert, id, json_object_get(image, "properties"),
			   "Properties", err);
}

int db_image_update(struct db *db, const char *project, const char *fingerprint,
		    const json_t *image, struct berth_error *err)
{
	struct db_conn *conn = NULL;
	int r;

	r = db_tx_begin(db, &conn, err);
	if (r < 0)
		return r;
	r = image_update(conn, project, fingerprint, image, err);
	return db_tx_end(db, conn, r, err);
}

static int image_delete(struct db_conn *conn, const char *project, const char *fingerprint,
			struct berth_error *err)
{
	int64_t project_id = 0, id = 0;
	int r;

	r = db_project_id(conn, project, &project_id, err);
	if (r >= 0)
		r = image_id(conn, project_id, fingerprint, &id, err);
	if (r >= 0)
		r = db_exec(conn, err, "DELETE FROM images WHERE id = ?1", "i", id);
	return r < 0 ? r : 0;
}

int db_image_delete(struct db *db, const char *project, const char *fingerprint,
		    struct berth_error *err)
{
	struct db_conn *conn = NULL;
	int r;

	r = db_tx_begin(db, &conn, err);
	if (r < 0)
		return r;
	r = image_delete(conn, project, fingerprint, err);
	return db_tx_end(db, conn, r, err);
}

int db_image_fingerprint_used(struct db *db, const char *fingerprint, bool *ret,
			      struct berth_error *err)
{
	_cleanup_conn_ struct db_conn *conn = NULL;
	_cleanup_stmt_ struct db_stmt *stmt = NULL;
	int r;

	r = db_conn_get(db, &conn, err);
	if (r < 0)
		return r;
	r = db_prepare(conn, &stmt, err, "SELECT 1 FROM images WHERE fingerprint = ?1 LIMIT 1", "t",
		       fingerprint);
	if (r < 0)
		return r;
	r = db_step(stmt, err);
	if (r < 0)
		return r;
	*ret = r > 0;
	return 0;
}

/* ---- aliases ---- */

#define ALIAS_SELECT                                                                               \
	"SELECT a.name, a.description, i.fingerprint, i.type FROM images_aliases a"                \
	" JOIN images i ON i.id = a.image_id WHERE a.project_id = ?1"

static int alias_from_row(struct db_conn *conn, struct db_stmt *stmt, json_t **ret,
			  struct berth_error *err)
{
	json_t *a = json_pack("{s:s, s:s, s:s, s:s}", "name", db_column_text(stmt, 0),
			      "description", db_column_text(stmt, 1), "target",
			      db_column_text(stmt, 2), "type", db_column_text(stmt, 3));

	if (!a)
		return db_oom(err);
	*ret = a;
	return 0;
}

static int alias_list(struct db_conn *conn, const char *project, json_t **ret,
		      struct berth_error *err)
{
	_cleanup_stmt_ struct db_stmt *stmt = NULL;
	int64_t project_id = 0;
	int r;

	r = db_project_id(conn, project, &project_id, err);
	if (r >= 0)
		r = db_prepare(conn, &stmt, err, ALIAS_SELECT " ORDER BY a.name", "i", project_id);
	if (r < 0)
		return r;
	return db_collect(conn, stmt, alias_from_row, ret, err);
}

int db_image_alias_list(struct db *db, const char *project, json_t **ret, struct berth_error *err)
{
	struct db_conn *conn = NULL;
	int r;

	r = db_read_begin(db, &conn, err);
	if (r < 0)
		return r;
	r = alias_list(conn, project, ret, err);
	return db_tx_end(db, conn, r, err);
}

static int alias_get(struct db_conn *conn, const char *project, const char *name, json_t **ret,
		     struct berth_error *err)
{
	_cleanup_stmt_ struct db_stmt *stmt = NULL;
	int64_t project_id = 0;
	int r;

	r = db_project_id(conn, project, &project_id, err);
	if (r >= 0)
		r = db_prepare(conn, &stmt, err, ALIAS_SELECT " AND a.name = ?2", "it", project_id,
			       name);
	if (r >= 0)
		r = db_step(stmt, err);
	if (r < 0)
		return r;
	if (r == 0)
		return berth_error_set(err, -ENOENT, BERTH_ERR_NOT_FOUND,
				       "Image alias \"%s\" not found", name);
	return alias_from_row(conn, stmt, ret, err);
}

int db_image_alias_get(struct db *db, const char *project, const char *name, json_t **ret,
		       struct berth_error *err)
{
	struct db_conn *conn = NULL;
	int r;

	r = db_read_begin(db, &conn, err);
	if (r < 0)
		return r;
	r = alias_get(conn, project, name, ret, err);
	return db_tx_end(db, conn, r, err);
}

static int alias_create(struct db_conn *conn, const char *project, const json_t *alias,
			struct berth_error *err)
{
	const char *name = berth_json_string(alias, "name");
	const char *target = berth_json_string(alias, "target");
	int64_t project_id = 0, id = 0;
	int r;

	if (!name || !target)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Alias name or target is missing");
	r = db_project_id(conn, project, &project_id, err);
	if (r >= 0)
		r = image_id(conn, project_id, target, &id, err);
	if (r < 0)
		return r;
	r = db_exec(conn, err,
		    "INSERT INTO images_aliases (project_id, name, image_id, description)"
		    " VALUES (?1, ?2, ?3, ?4)",
		    "itit", project_id, name, id, berth_json_string(alias, "description") ?: "");
	if (r == -EEXIST)
		return berth_error_set(err, r, BERTH_ERR_CONFLICT, "Alias \"%s\" already exists",
				       name);
	return r < 0 ? r : 0;
}

int db_image_alias_create(struct db *db, const char *project, const json_t *alias,
			  struct berth_error *err)
{
	struct db_conn *conn = NULL;
	int r;

	r = db_tx_begin(db, &conn, err);
	if (r < 0)
		return r;
	r = alias_create(conn, project, alias, err);
	return db_tx_end(db, conn, r, err);
}

int db_image_aliases_create(struct db *db, const char *project, const json_t *aliases,
			    const char *target, struct berth_error *err)
{
	struct db_conn *conn = NULL;
	const json_t *a;
	size_t i;
	int r = db_tx_begin(db, &conn, err);

	if (r < 0)
		return r;
	json_array_foreach(aliases, i, a) {
		const char *name = berth_json_string(a, "name");
		json_auto_t *row = NULL;

		if (!name || !*name)
			continue;
		row = json_pack("{s:s, s:s, s:s}", "name", name, "description",
				berth_json_string(a, "description") ?: "", "target", target);
		r = row ? alias_create(conn, project, row, err) : db_oom(err);
		if (r < 0)
			break;
	}
	return db_tx_end(db, conn, r, err);
}

static int alias_update(struct db_conn *conn, const char *project, const char *name,
			const json_t *alias, struct berth_error *err)
{
	const char *target = berth_json_string(alias, "target");
	int64_t project_id = 0, id = 0;
	int r;

	if (!target)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Alias target is missing");
	r = db_project_id(conn, project, &project_id, err);
	if (r >= 0)
		r = image_id(conn, project_id, target, &id, err);
	if (r >= 0)
		r = db_exec(conn, err,
			    "UPDATE images_aliases SET image_id = ?3, description = ?4"
			    " WHERE project_id = ?1 AND name = ?2",
			    "itit", project_id, name, id,
			    berth_json_string(alias, "description") ?: "");
	if (r < 0)
		return r;
	if (r == 0)
		return berth_error_set(err, -ENOENT, BERTH_ERR_NOT_FOUND,
				       "Image alias \"%s\" not found", name);
	return 0;
}

int db_image_alias_update(struct db *db, const char *project, const char *name, const json_t *alias,
			  struct berth_error *err)
{
	struct db_conn *conn = NULL;
	int r;

	r = db_tx_begin(db, &conn, err);
	if (r < 0)
		return r;
	r = alias_update(conn, project, name, alias, err);
	return db_tx_end(db, conn, r, err);
}

static int alias_rename(struct db_conn *conn, const char *project, const char *name,
			const char *new_name, struct berth_error *err)
{
	int64_t project_id = 0;
	int r;

	r = db_project_id(conn, project, &project_id, err);
	if (r >= 0)
		r = db_exec(conn, err,
			    "UPDATE images_aliases SET name = ?3"
			    " WHERE project_id = ?1 AND name = ?2",
			    "itt", project_id, name, new_name);
	if (r == -EEXIST)
		return berth_error_set(err, r, BERTH_ERR_CONFLICT, "Alias \"%s\" already exists",
				       new_name);
	if (r < 0)
		return r;
	if (r == 0)
		return berth_error_set(err, -ENOENT, BERTH_ERR_NOT_FOUND,
				       "Image alias \"%s\" not found", name);
	return 0;
}

int db_image_alias_rename(struct db *db, const char *project, const char *name,
			  const char *new_name, struct berth_error *err)
{
	struct db_conn *conn = NULL;
	int r;

	r = db_tx_begin(db, &conn, err);
	if (r < 0)
		return r;
	r = alias_rename(conn, project, name, new_name, err);
	return db_tx_end(db, conn, r, err);
}

static int alias_delete(struct db_conn *conn, const char *project, const char *name,
			struct berth_error *err)
{
	int64_t project_id = 0;
	int r;

	r = db_project_id(conn, project, &project_id, err);
	if (r >= 0)
		r = db_exec(conn, err,
			    "DELETE FROM images_aliases WHERE project_id = ?1 AND name = ?2", "it",
			    project_id, name);
	if (r < 0)
		return r;
	if (r == 0)
		return berth_error_set(err, -ENOENT, BERTH_ERR_NOT_FOUND,
				       "Image alias \"%s\" not found", name);
	return 0;
}

int db_image_alias_delete(struct db *db, const char *project, const char *name,
			  struct berth_error *err)
{
	struct db_conn *conn = NULL;
	int r;

	r = db_tx_begin(db, &conn, err);
	if (r < 0)
		return r;
	r = alias_delete(conn, project, name, err);
	return db_tx_end(db, conn, r, err);
}

/* ---- pulled images: the cache and its refresh ---- */

static int cached_find(struct db_conn *conn, const char *project, const json_t *source,
		       const char *type, const char *arch, char **ret, struct berth_error *err)
{
	_cleanup_stmt_ struct db_stmt *stmt = NULL;
	int64_t project_id = 0;
	int r;

	r = db_project_id(conn, project, &project_id, err);
	if (r < 0)
		return r;
	r = db_prepare(conn, &stmt, err,
		       "SELECT i.fingerprint FROM images i JOIN images_source s ON s.image_id = i.id"
		       " WHERE i.project_id = ?1 AND s.server = ?2 AND s.protocol = ?3"
		       " AND s.alias = ?4 AND i.type = ?5 AND i.architecture = ?6"
		       " AND i.auto_update = 1 ORDER BY i.created_at DESC, i.id DESC LIMIT 1",
		       "ittttt", project_id, berth_json_string(source, "server") ?: "",
		       berth_json_string(source, "protocol") ?: "",
		       berth_json_string(source, "alias") ?: "", type, arch);
	if (r < 0)
		return r;
	r = db_step(stmt, err);
	if (r < 0)
		return r;
	if (r == 0)
		return -ENOENT;
	*ret = strdup(db_column_text(stmt, 0));
	return *ret ? 0 : db_oom(err);
}

int db_image_cached_find(struct db *db, const char *project, const json_t *source, const char *type,
			 const char *arch, char **ret, struct berth_error *err)
{
	struct db_conn *conn = NULL;
	int r;

	r = db_read_begin(db, &conn, err);
	if (r < 0)
		return r;
	r = cached_find(conn, project, source, type, arch, ret, err);
	if (r == -ENOENT) {
		db_tx_end(db, conn, 0, err);
		return -ENOENT;
	}
	return db_tx_end(db, conn, r, err);
}

int db_image_touch(struct db *db, const char *project, const char *fingerprint,
		   struct berth_error *err)
{
	struct db_conn *conn = NULL;
	char now[BERTH_RFC3339_MAX];
	int64_t project_id = 0, id = 0;
	int r;

	berth_now_rfc3339(now);
	r = db_tx_begin(db, &conn, err);
	if (r < 0)
		return r;
	r = db_project_id(conn, project, &project_id, err);
	if (r >= 0)
		r = image_id(conn, project_id, fingerprint, &id, err);
	if (r >= 0)
		r = db_exec(conn, err, "UPDATE images SET last_used_at = ?2 WHERE id = ?1", "it",
			    id, now);
	return db_tx_end(db, conn, r < 0 ? r : 0, err);
}

static int aliases_move(struct db_conn *conn, const char *project, const char *from, const char *to,
			struct berth_error *err)
{
	int64_t project_id = 0, from_id = 0, to_id = 0;
	int r;

	r = db_project_id(conn, project, &project_id, err);
	if (r >= 0)
		r = image_id(conn, project_id, from, &from_id, err);
	if (r >= 0)
		r = image_id(conn, project_id, to, &to_id, err);
	if (r >= 0)
		r = db_exec(conn, err,
			    "UPDATE images_aliases SET image_id = ?2 WHERE image_id = ?1", "ii",
			    from_id, to_id);
	return r < 0 ? r : 0;
}

int db_image_aliases_move(struct db *db, const char *project, const char *from, const char *to,
			  struct berth_error *err)
{
	struct db_conn *conn = NULL;
	int r;

	r = db_tx_begin(db, &conn, err);
	if (r < 0)
		return r;
	r = aliases_move(conn, project, from, to, err);
	return db_tx_end(db, conn, r, err);
}

static int pulled_from_row(struct db_conn *conn, struct db_stmt *stmt, json_t **ret,
			   struct berth_error *err)
{
	json_t *o = json_pack("{s:s, s:s, s:b, s:b, s:s, s:s, s:s}", "project",
			      db_column_text(stmt, 0), "fingerprint", db_column_text(stmt, 1),
			      "auto_update", db_column_int(stmt, 2), "cached",
			      db_column_int(stmt, 3), "last_used_at", db_column_text(stmt, 4),
			      "uploaded_at", db_column_text(stmt, 5), "protocol",
			      db_column_text(stmt, 6));

	(void)conn;
	if (!o)
		return db_oom(err);
	*ret = o;
	return 0;
}

int db_image_pulled_list(struct db *db, json_t **ret, struct berth_error *err)
{
	_cleanup_stmt_ struct db_stmt *stmt = NULL;
	struct db_conn *conn = NULL;
	int r;

	r = db_read_begin(db, &conn, err);
	if (r < 0)
		return r;
	r = db_prepare(
		conn, &stmt, err,
		"SELECT p.name, i.fingerprint, i.auto_update, i.cached, i.last_used_at,"
		" i.uploaded_at, s.protocol FROM images i JOIN projects p ON p.id = i.project_id"
		" JOIN images_source s ON s.image_id = i.id ORDER BY p.name, i.fingerprint",
		NULL);
	if (r >= 0)
		r = db_collect(conn, stmt, pulled_from_row, ret, err);
	db_finalize(TAKE_PTR(stmt));
	return db_tx_end(db, conn, r, err);
}
