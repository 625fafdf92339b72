/* daemon/db/db.h: berthd's state in a database. This module owns every SQL statement.
 *
 * Objects cross this interface as jansson values in the shape of LXD's API
 * objects (the fields named below), so the API layer can validate a request
 * body, hand it down and render what comes back without a translation layer.
 * Every mutation runs in one transaction: it either happens completely or not
 * at all.
 *
 * Everything goes through an explicit handle, `struct db`, from db_open(): its first
 * parameter. Functions are safe to call from any thread: a transaction runs on one
 * connection borrowed from the handle's pool for its duration (WAL, foreign keys on,
 * busy timeout), so readers run beside the single writer. Handles are independent: two
 * of them on two files share nothing. The handle sits on a backend interface
 * (daemon/db/backend.h) at the statement level, which plain SQLite implements
 * (backend_sqlite.c: no other file of daemon/db/ names an SQLite type or calls an
 * SQLite function) and a dqlite backend will implement for clustering.
 *
 * Returns: 0 on success, -errno on failure with `err` set:
 *   -ENOENT  the named object (or its project, or a profile it names) does not exist
 *   -EEXIST  an object with that name exists
 *   -EBUSY   the object is in use (a profile used by instances, a non-empty project)
 *   -EPERM   the "default" profile cannot be renamed or deleted, the "default" project
 *            cannot be renamed (err->code BERTH_ERR_FORBIDDEN, as LXD answers 403)
 *   -EINVAL  a value of the wrong type slipped past the API layer (a non-string config
 *            value, a profile listed twice)
 *   -EAGAIN  the database stayed locked (busy) too long
 *   -EIO     the database failed (the message carries the backend's reason)
 * Out-parameters (`ret`) are written only on success and are owned by the caller. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "lib/error.h"
#include "lib/macros.h"

/* One open database (opaque), whichever backend holds it. One per berthd. */
struct db;

/* The schema version this binary writes (the number of migrations it knows). */
int db_schema_version(void);

/* Open (creating if needed) the database at `path`, apply pending migrations in one
 * transaction, and create the defaults on a new database: project "default",
 * profile "default" in it (description "Default LXD profile", a root disk device
 * {"type":"disk","path":"/","pool":"default"}), storage pool "default" of driver
 * "dir" with config {"source": `default_pool_source`}. A database whose schema is
 * newer than db_schema_version() is refused with -EPROTO and a message naming both
 * versions. On success *ret is the open handle, closed with db_close(). */
int db_open(const char *path, const char *default_pool_source, struct db **ret,
	    struct berth_error *err);
struct db_backend;
/* A new database at `path` on `backend` (backend.h; `data` as db_open_backend takes it),
 * with the current schema and every row of `from`, and nothing else (no defaults),
 * written in one transaction: on failure nothing of it is left committed and `from` is
 * untouched. The new database must be empty (-EEXIST otherwise). *ret_rows (optional)
 * counts the rows copied. copy.c. */
int db_open_copy(const struct db_backend *backend, void *data, const char *path, struct db *from,
		 uint64_t *ret_rows, struct db **ret, struct berth_error *err);
/* Stop lending `db`'s connections and wait until every borrowed one is back: from then
 * until db_thaw(), db_conn_get() (every transaction) waits. The caller must hold none.
 * -ETIMEDOUT (and `db` as it was) when that takes over `timeout_ms`. */
int db_freeze(struct db *db, int timeout_ms);
/* End db_freeze(). With `next` (owned by the call), `db` takes over `next`'s backend,
 * database and idle connections first, closing its own: every user of the `db` pointer
 * goes on with the new database (its generation moves, so caches drop what they had). */
void db_thaw(struct db *db, struct db *next);
/* Close the database (NULL is fine): every connection of its pool. At exit, after
 * everything that uses it stopped (no transaction may still be running). */
void db_close(struct db *db);
static inline void db_closep(struct db **p)
{
	db_close(*p);
}
#define _cleanup_db_ _cleanup_(db_closep)
/* A number that changes whenever a write transaction of this handle has ended (berthd is
 * the database's only writer; a backend with other writers adds theirs: backend.h). What
 * was read while it kept one value is still what the database holds: read it before
 * reading rows, and keep what they gave only under it. No two handles of a process ever
 * show the same number, so it also tells handles apart. */
uint64_t db_generation(struct db *db);
/* Close the handle's idle connections beyond `keep`, giving back their caches: when the
 * daemon has been quiet a while. Any thread. */
void db_trim(struct db *db, unsigned keep);

/* Disk work that must happen with a row change, or not at all: see the storage pools
 * section below. */
typedef int (*db_hook_fn)(void *data, struct berth_error *err);

/* ---- server config: a flat object of string -> string ---- */
int db_server_config_get(struct db *db, json_t **ret, struct berth_error *err);
/* Replace the whole server config with `config` (object of string values). */
int db_server_config_replace(struct db *db, const json_t *config, struct berth_error *err);

/* ---- projects: {"name","description","config":{str:str}} ---- */
int db_project_list(struct db *db, json_t **ret,
		    struct berth_error *err); /* array, sorted by name */
int db_project_get(struct db *db, const char *name, json_t **ret, struct berth_error *err);
/* With features.profiles on, also creates the project's own empty "default" profile, as
 * LXD does. */
int db_project_create(struct db *db, const json_t *project, struct berth_error *err);
/* Replace description and config of `name` from `project` (its "name" is ignored). */
int db_project_update(struct db *db, const char *name, const json_t *project,
		      struct berth_error *err);
/* -EPERM for "default". */
int db_project_rename(struct db *db, const char *name, const char *new_name,
		      struct berth_error *err);
/* -EBUSY for "default" and for a project that still has instances or profiles other
 * than its own "default" profile. */
int db_project_delete(struct db *db, const char *name, struct berth_error *err);
/* URLs of what the project holds: "/1.0/instances/x?project=p", "/1.0/profiles/y?project=p"
 * (the "?project=p" suffix is omitted for project "default"). Array of strings. */
int db_project_used_by(struct db *db, const char *name, json_t **ret, struct berth_error *err);
/* The project whose objects `project` uses for `feature` ("features.images",
 * "features.profiles", "features.storage.volumes"): itself when the feature is on (and
 * always for "default"), else "default". -ENOENT when the project does not exist. */
int db_project_feature_project(struct db *db, const char *project, const char *feature, char **ret,
			       struct berth_error *err);

/* ---- profiles (per project): {"name","description","config":{str:str},
 *      "devices":{devname:{str:str}}} ---- */
int db_profile_list(struct db *db, const char *project, json_t **ret, struct berth_error *err);
int db_profile_get(struct db *db, const char *project, const char *name, json_t **ret,
		   struct berth_error *err);
int db_profile_create(struct db *db, const char *project, const json_t *profile,
		      struct berth_error *err);
/* Replace description, config and devices. */
int db_profile_update(struct db *db, const char *project, const char *name, const json_t *profile,
		      struct berth_error *err);
int db_profile_rename(struct db *db, const char *project, const char *name, const char *new_name,
		      struct berth_error *err);
/* -EBUSY when instances use it; -EPERM for "default". */
int db_profile_delete(struct db *db, const char *project, const char *name,
		      struct berth_error *err);
/* URLs of the instances that list this profile, "/1.0/instances/x" plus "?project=p"
 * outside "default", sorted by project then name. Instances of other projects appear
 * too: a project without features.profiles uses the "default" project's profiles. */
int db_profile_used_by(struct db *db, const char *project, const char *name, json_t **ret,
		       struct berth_error *err);

/* ---- instances (per project) ----
 * {"name","type":"container"|"virtual-machine","architecture","description",
 *  "config":{str:str},"devices":{devname:{str:str}},"profiles":[str...] (ordered),
 *  "ephemeral":bool,"stateful":bool,"created_at":RFC3339,"last_used_at":RFC3339,
 *  "status":"Stopped"|..., "status_code":int, "project":str}
 * created_at is set by db_instance_create; last_used_at starts at
 * "1970-01-01T00:00:00Z"; status/status_code default to "Stopped"/102. */
/* All instances of `project` (all projects when NULL), sorted by project then name.
 * Must stay fast for thousands of rows: a fixed number of queries, not one per instance. */
int db_instance_list(struct db *db, const char *project, json_t **ret, struct berth_error *err);
/* Just the names, sorted. Array of strings. */
int db_instance_names(struct db *db, const char *project, json_t **ret, struct berth_error *err);
int db_instance_get(struct db *db, const char *project, const char *name, json_t **ret,
		    struct berth_error *err);
/* -ENOENT (message names it) when a listed profile does not exist in the project. */
int db_instance_create(struct db *db, const char *project, const json_t *instance,
		       struct berth_error *err);
/* Replace architecture, description, config, devices, profiles, ephemeral. */
int db_instance_update(struct db *db, const char *project, const char *name, const json_t *instance,
		       struct berth_error *err);
/* Also renames the root volume rows (type "container") and their snapshots'; `hook` (may
 * be NULL) renames them on disk. */
int db_instance_rename(struct db *db, const char *project, const char *name, const char *new_name,
		       db_hook_fn hook, void *data, struct berth_error *err);
/* Also deletes its snapshots and its volume rows (root volume and snapshots). */
int db_instance_delete(struct db *db, const char *project, const char *name,
		       struct berth_error *err);
/* Entering status_code 103 (Running) from another status also sets last_used_at to now. */
int db_instance_set_status(struct db *db, const char *project, const char *name, const char *status,
			   int status_code, struct berth_error *err);

/* ---- instance root volumes and snapshots (daemon/db/snapshots.c) ----
 * An instance with a root filesystem has a volume row of type "container" with its name on
 * the pool that holds it, and one "<name>/<snap>" row per snapshot, as LXD lists them.
 * Snapshot: {"name","description","stateful":bool,"created_at","expires_at",
 *  "config":{str:str},"devices":{...}} (config and devices as the instance had them). */

/* Create the instance, its root volume row on `pool` (NULL: no volume), and the
 * snapshots in `snapshots` (array of snapshot objects, or NULL), in one transaction. */
int db_instance_create_with_volume(struct db *db, const char *project, const json_t *instance,
				   const char *pool, const json_t *snapshots,
				   struct berth_error *err);
/* The pool holding the instance's root volume. -ENOENT when it has none. */
int db_instance_pool(struct db *db, const char *project, const char *name, char **ret,
		     struct berth_error *err);
/* Snapshots of the instance, oldest first. */
int db_snapshot_list(struct db *db, const char *project, const char *instance, json_t **ret,
		     struct berth_error *err);
int db_snapshot_get(struct db *db, const char *project, const char *instance, const char *name,
		    json_t **ret, struct berth_error *err);
/* Record snapshot `snap` ({"name","description","expires_at"}) with the instance's current
 * config and devices, and its volume row on `pool` (NULL: none). -EEXIST (409). */
int db_snapshot_create(struct db *db, const char *project, const char *instance, const json_t *snap,
		       const char *pool, struct berth_error *err);
int db_snapshot_rename(struct db *db, const char *project, const char *instance, const char *name,
		       const char *new_name, db_hook_fn hook, void *data, struct berth_error *err);
int db_snapshot_delete(struct db *db, const char *project, const char *instance, const char *name,
		       db_hook_fn hook, void *data, struct berth_error *err);
/* Set its expires_at (normalized RFC 3339; NULL or "": never). -ENOENT (404). */
int db_snapshot_set_expiry(struct db *db, const char *project, const char *instance,
			   const char *name, const char *expires_at, struct berth_error *err);

/* ---- storage pools: {"name","driver","description","config":{str:str},"status":"Created"} ----
 *
 * On-disk work that must happen with a row change, or not at all, runs as a hook inside
 * the mutation's transaction: after the rows are checked and written, before COMMIT. A
 * hook failure rolls the rows back (the hook undoes its own partial disk work). When
 * COMMIT itself fails after a successful hook, the function fails too: the caller, who
 * knows the hook ran, undoes the disk work. */

int db_pool_list(struct db *db, json_t **ret, struct berth_error *err);
int db_pool_get(struct db *db, const char *name, json_t **ret, struct berth_error *err);
/* Insert {"name","driver","description","config"}. `hook` (may be NULL) runs after the
 * name is known free and may change pool["config"] (e.g. set "source"): the config is
 * stored after it. -EEXIST for a taken name. */
int db_pool_create(struct db *db, json_t *pool, db_hook_fn hook, void *data,
		   struct berth_error *err);
/* Replace description and config. */
int db_pool_update(struct db *db, const char *name, const json_t *pool, struct berth_error *err);
/* URLs of the profiles and instances whose disk devices name the pool and of its
 * volumes ("/1.0/storage-pools/P/volumes/custom/V"), "?project=p" outside "default". */
int db_pool_used_by(struct db *db, const char *name, json_t **ret, struct berth_error *err);
/* -EBUSY (BERTH_ERR_BAD_REQUEST, "The storage pool is currently in use") while anything
 * in db_pool_used_by uses it; `hook` (may be NULL) removes it from disk. */
int db_pool_delete(struct db *db, const char *name, db_hook_fn hook, void *data,
		   struct berth_error *err);

/* ---- storage volumes (per pool and project): {"name","type","description",
 *      "config":{str:str},"content_type","created_at","project"} ----
 * `type` is the API name: "custom", "container", "image", "virtual-machine".
 * A snapshot is the volume "<volume>/<snapshot>" for get/create/update/rename/delete;
 * creating one needs its volume; renaming or deleting a volume carries its snapshots. */
/* Volumes of `pool` and their snapshots (named "<volume>/<snapshot>", as LXD lists
 * them); `project`, `type`: NULL for all. Sorted by project, type, name. */
int db_volume_list(struct db *db, const char *pool, const char *project, const char *type,
		   json_t **ret, struct berth_error *err);
/* Snapshots of a volume, oldest first, "name" being the snapshot's own name. */
int db_volume_snapshot_list(struct db *db, const char *pool, const char *project, const char *type,
			    const char *volume, json_t **ret, struct berth_error *err);
int db_volume_get(struct db *db, const char *pool, const char *project, const char *type,
		  const char *name, json_t **ret, struct berth_error *err);
/* created_at is set here. `hook` (may be NULL) creates it on disk. */
int db_volume_create(struct db *db, const char *pool, const char *project, const json_t *vol,
		     db_hook_fn hook, void *data, struct berth_error *err);
/* `vol` and then each object of `snapshots` (array, may be NULL: volume objects named
 * "<vol>/<snap>") in one transaction: a copied volume and its copied snapshots. */
int db_volume_create_with_snapshots(struct db *db, const char *pool, const char *project,
				    const json_t *vol, const json_t *snapshots,
				    struct berth_error *err);
/* A volume moved to another pool: volume `name` of `src_pool` and its snapshots' rows
 * deleted (refused while in use, as db_volume_delete), `vol` and `snapshots` created on
 * `dst_pool` as db_volume_create_with_snapshots does, then `hook` (may be NULL), in one
 * transaction. */
int db_volume_move(struct db *db, const char *src_pool, const char *project, const char *name,
		   const char *dst_pool, const json_t *vol, const json_t *snapshots,
		   db_hook_fn hook, void *data, struct berth_error *err);
/* Replace description and config; `hook` (may be NULL) applies them on disk. */
int db_volume_update(struct db *db, const char *pool, const char *project, const char *type,
		     const char *name, const json_t *vol, db_hook_fn hook, void *data,
		     struct berth_error *err);
int db_volume_rename(struct db *db, const char *pool, const char *project, const char *type,
		     const char *name, const char *new_name, db_hook_fn hook, void *data,
		     struct berth_error *err);
/* -EBUSY (BERTH_ERR_BAD_REQUEST, "The storage volume is still in use") while an instance
 * or profile has a disk device with this pool and volume as its source. */
int db_volume_delete(struct db *db, const char *pool, const char *project, const char *type,
		     const char *name, db_hook_fn hook, void *data, struct berth_error *err);
/* URLs of the instances and profiles of `project` with a disk device {pool, source: name}. */
int db_volume_used_by(struct db *db, const char *pool, const char *project, const char *name,
		      json_t **ret, struct berth_error *err);

/* ==== images ==== (daemon/db/images.c)
 * Image: {"fingerprint","filename","size":int,"public":bool,"auto_update":bool,
 *  "cached":bool,"architecture","type","created_at","uploaded_at","expires_at",
 *  "last_used_at","properties":{str:str},"aliases":[{"name","description"}]}
 * Records only: the files are images/store.c's. An image belongs to one project; the
 * same fingerprint may be recorded in several projects. */
int db_image_list(struct db *db, const char *project, json_t **ret,
		  struct berth_error *err); /* by fp */
/* Exact fingerprint. -ENOENT "Image not found". */
int db_image_get(struct db *db, const char *project, const char *fingerprint, json_t **ret,
		 struct berth_error *err);
/* The full fingerprint for a unique prefix (LXD's lookup): -ENOENT when none matches
 * (or the prefix is not lower-case hex), -EINVAL (400) when several do. */
int db_image_resolve(struct db *db, const char *project, const char *prefix, char **ret,
		     struct berth_error *err);
/* uploaded_at = now; created_at defaults to now, expires_at to the zero time.
 * -EEXIST (409) when the project already has this fingerprint. */
int db_image_create(struct db *db, const char *project, const json_t *image,
		    struct berth_error *err);
/* Replace public, auto_update, properties, and expires_at when present. */
int db_image_update(struct db *db, const char *project, const char *fingerprint,
		    const json_t *image, struct berth_error *err);
/* Also deletes its aliases. */
int db_image_delete(struct db *db, const char *project, const char *fingerprint,
		    struct berth_error *err);
/* Whether any project still records `fingerprint` (may its files go?). */
int db_image_fingerprint_used(struct db *db, const char *fingerprint, bool *ret,
			      struct berth_error *err);

/* Alias: {"name","description","target":fingerprint,"type"}; type is the image's. */
int db_image_alias_list(struct db *db, const char *project, json_t **ret, struct berth_error *err);
int db_image_alias_get(struct db *db, const char *project, const char *name, json_t **ret,
		       struct berth_error *err);
/* `target` must be a full fingerprint of the project (-ENOENT); -EEXIST (409). */
int db_image_alias_create(struct db *db, const char *project, const json_t *alias,
			  struct berth_error *err);
/* Each of `aliases` ([{"name","description"}]; entries without a name are passed over)
 * pointing at `target`, in one transaction: all or none. -EEXIST (409) names the alias. */
int db_image_aliases_create(struct db *db, const char *project, const json_t *aliases,
			    const char *target, struct berth_error *err);
/* Replace target and description. */
int db_image_alias_update(struct db *db, const char *project, const char *name, const json_t *alias,
			  struct berth_error *err);
int db_image_alias_rename(struct db *db, const char *project, const char *name,
			  const char *new_name, struct berth_error *err);
int db_image_alias_delete(struct db *db, const char *project, const char *name,
			  struct berth_error *err);
/* Pulled images (an image whose record carries "update_source" {server, protocol,
 * certificate, alias} is recorded with it by db_image_create):
 * the newest image of `project` pulled from source {server, protocol, alias} with
 * auto_update on, of `type` and architecture `arch`: -ENOENT (err untouched) when none. */
int db_image_cached_find(struct db *db, const char *project, const json_t *source, const char *type,
			 const char *arch, char **ret, struct berth_error *err);
/* last_used_at = now. */
int db_image_touch(struct db *db, const char *project, const char *fingerprint,
		   struct berth_error *err);
/* Every alias of image `from` now points at image `to` (both of `project`). */
int db_image_aliases_move(struct db *db, const char *project, const char *from, const char *to,
			  struct berth_error *err);
/* [{"project","fingerprint","auto_update","cached","last_used_at","uploaded_at",
 * "protocol"}] of every image that has a source, in every project. */
int db_image_pulled_list(struct db *db, json_t **ret, struct berth_error *err);
/* ==== end of images ==== */

/* ==== networks ==== (daemon/db/networks.c)
 * Managed networks: {"name","type","description","config":{str:str},"status"}. They all
 * live in project "default" (berth has no per-project networks). Records only: bridges,
 * dnsmasq and NAT are daemon/network/'s. */
int db_network_list(struct db *db, json_t **ret, struct berth_error *err); /* sorted by name */
/* -ENOENT (404 'Network "x" not found'). */
int db_network_get(struct db *db, const char *name, json_t **ret, struct berth_error *err);
/* -EEXIST (409) for a taken name. `hook` (may be NULL) runs after the row is written,
 * before COMMIT (it brings the network up). */
int db_network_create(struct db *db, const json_t *network, db_hook_fn hook, void *data,
		      struct berth_error *err);
/* Replace description and config; `hook` as above (it applies the new config). */
int db_network_update(struct db *db, const char *name, const json_t *network, db_hook_fn hook,
		      void *data, struct berth_error *err);
/* -EBUSY (400, naming the users) while db_network_used_by is not empty. */
int db_network_rename(struct db *db, const char *name, const char *new_name, db_hook_fn hook,
		      void *data, struct berth_error *err);
int db_network_delete(struct db *db, const char *name, db_hook_fn hook, void *data,
		      struct berth_error *err);
/* URLs of the profiles and instances (every project) with a nic device whose "network"
 * (or, for nictype=bridged, "parent") is `name`, an instance also when the device comes
 * from one of its profiles, sorted. Array of strings. */
int db_network_used_by(struct db *db, const char *name, json_t **ret, struct berth_error *err);
/* ==== end of networks ==== */

/* ==== warnings ==== (daemon/db/warnings.c)
 * Warning: {"uuid","location":"none","project","type","count":int,"first_seen_at",
 *  "last_seen_at","last_message","severity":"low"|"moderate"|"high",
 *  "status":"new"|"acknowledged"|"resolved","entity_url"}, as LXD's API shows it. One per
 * (type, project, entity_url); project "" and entity_url "" for the host's own. */
struct db_warning {
	const char *project;	/* NULL or "": the host's */
	const char *type;	/* LXD's type name where LXD has one */
	const char *entity_url; /* NULL or "": none */
	const char *severity;
	const char *message;
};
/* Warnings of `project` (every one when NULL), oldest first. */
int db_warning_list(struct db *db, const char *project, json_t **ret, struct berth_error *err);
/* -ENOENT (404 "Warning not found"). */
int db_warning_get(struct db *db, const char *uuid, json_t **ret, struct berth_error *err);
/* Record `w`: a new row (status "new", count 1; returns 1), or the existing one's count,
 * last_seen_at, last_message and severity moved, a resolved one back to "new" (returns 0). */
int db_warning_raise(struct db *db, const struct db_warning *w, struct berth_error *err);
/* Mark the warning resolved: 1 when one was not yet, 0 when nothing changed. */
int db_warning_resolve(struct db *db, const char *project, const char *type, const char *entity_url,
		       struct berth_error *err);
/* Set the status of warning `uuid` (the caller checks the value). -ENOENT. */
int db_warning_set_status(struct db *db, const char *uuid, const char *status,
			  struct berth_error *err);
/* -ENOENT (404). */
int db_warning_delete(struct db *db, const char *uuid, struct berth_error *err);
/* Delete the warnings resolved before `before` (RFC3339 as berth_time_rfc3339 writes it).
 * Returns how many; takes no write lock when there are none. */
int db_warning_prune(struct db *db, const char *before, struct berth_error *err);
/* ==== end of warnings ==== */

/* ==== certificates ==== (daemon/db/certificates.c)
 * The trust store: LXD's Certificate objects {"fingerprint", "type" ("client" or
 * "metrics"), "name", "certificate" (PEM), "restricted", "projects"}. */
int db_certificate_list(struct db *db, json_t **ret, struct berth_error *err);
/* The one certificate whose fingerprint starts with `prefix`: -ENOENT (404) when none,
 * -EINVAL (400) when several. */
int db_certificate_get(struct db *db, const char *prefix, json_t **ret, struct berth_error *err);
/* Add `cert` (the fields above). -EEXIST (409) when its fingerprint is already trusted. */
int db_certificate_add(struct db *db, const json_t *cert, struct berth_error *err);
/* Replace name, type, restricted and projects of certificate `fingerprint` (exact). */
int db_certificate_update(struct db *db, const char *fingerprint, const json_t *cert,
			  struct berth_error *err);
int db_certificate_delete(struct db *db, const char *fingerprint, struct berth_error *err);
