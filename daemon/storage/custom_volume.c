/* daemon/storage/custom_volume.c: custom volumes and their snapshots, rows and disk
 * together (see the header). */
#define LOG_CATEGORY "volumes"
#include "daemon/storage/custom_volume.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "daemon/db/db.h"
#include "lib/json.h"
#include "lib/log.h"
#include "lib/util.h"

void custom_volume_free(void *data)
{
	struct custom_volume *c = data;

	if (!c)
		return;
	storage_pool_free(c->pool);
	free(c->project);
	free(c->name);
	free(c->disk_name);
	free(c->snap);
	free(c->new_name);
	free(c);
}

int custom_volume_open(struct db *db, const char *state_dir, const char *pool, const char *project,
		       const char *name, const char *snap, struct custom_volume **ret,
		       struct berth_error *err)
{
	_cleanup_(custom_volume_freep) struct custom_volume *c = calloc(1, sizeof(*c));
	json_auto_t *p = NULL;
	int r;

	if (!c)
		return -ENOMEM;
	r = db_pool_get(db, pool, &p, err);
	if (r >= 0)
		r = storage_pool_new(state_dir, p, &c->pool, err);
	if (r < 0)
		return r;
	c->db = db;
	c->project = strdup(project);
	c->name = strdup(name);
	c->disk_name = storage_vol_disk_name(project, name);
	c->snap = snap ? strdup(snap) : NULL;
	if (!c->project || !c->name || !c->disk_name || (snap && !c->snap))
		return -ENOMEM;
	c->vol = (struct storage_vol){.type = STORAGE_VOL_CUSTOM, .name = c->disk_name};
	*ret = TAKE_PTR(c);
	return 0;
}

/* A block volume (content type "block", for VMs) is its directory holding one sparse raw
 * file, root.img, as a VM's root volume. */
static int block_file_create(struct custom_volume *c, struct berth_error *err)
{
	_cleanup_free_ char *dir = NULL, *file = NULL;
	_cleanup_close_ int fd = -EBADF;

	if (storage_volume_path(c->pool, &c->vol, NULL, &dir) < 0 ||
	    !(file = berth_strdup_printf("%s/root.img", dir)))
		return -ENOMEM;
	fd = open(file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 || ftruncate(fd, (off_t)c->block_size) < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "Cannot make \"%s\": %m",
				       file);
	return 0;
}

static int create_hook(void *data, struct berth_error *err)
{
	struct custom_volume *c = data;
	int r = c->pool->driver->volume_create(c->pool, &c->vol, c->size, err);

	c->done = r >= 0;
	if (r >= 0 && c->block_size)
		r = block_file_create(c, err);
	return r;
}

int custom_volume_create(struct custom_volume *c, const json_t *obj, struct berth_error *err)
{
	int r = db_volume_create(c->db, c->pool->name, c->project, obj, create_hook, c, err);

	if (r < 0 && c->done)
		c->pool->driver->volume_delete(c->pool, &c->vol, NULL);
	return r;
}

static int quota_hook(void *data, struct berth_error *err)
{
	struct custom_volume *c = data;
	int r = c->pool->driver->volume_set_quota(c->pool, &c->vol, c->size, err);

	c->done = r >= 0;
	return r;
}

int custom_volume_update(struct custom_volume *c, const json_t *next, uint64_t old_size,
			 struct berth_error *err)
{
	int r = db_volume_update(c->db, c->pool->name, c->project, "custom", c->name, next,
				 c->size != old_size ? quota_hook : NULL, c, err);

	if (r < 0 && c->done)
		c->pool->driver->volume_set_quota(c->pool, &c->vol, old_size, NULL);
	return r;
}

int custom_volume_restore(struct custom_volume *c, struct berth_error *err)
{
	/* No row changes, so no transaction: a dir restore copies the whole tree and must
	 * not hold the database's write lock meanwhile. */
	return c->pool->driver->volume_restore(c->pool, &c->vol, c->snap, c->size, err);
}

static int rename_hook(void *data, struct berth_error *err)
{
	struct custom_volume *c = data;
	int r = c->pool->driver->volume_rename(c->pool, &c->vol, c->new_name, err);

	c->done = r >= 0;
	return r;
}

int custom_volume_rename(struct custom_volume *c, const char *name, struct berth_error *err)
{
	int r;

	free(c->new_name);
	c->new_name = storage_vol_disk_name(c->project, name);
	if (!c->new_name)
		return -ENOMEM;
	r = db_volume_rename(c->db, c->pool->name, c->project, "custom", c->name, name, rename_hook,
			     c, err);
	if (r < 0 && c->done) {
		struct storage_vol nv = {STORAGE_VOL_CUSTOM, c->new_name};
		c->pool->driver->volume_rename(c->pool, &nv, c->disk_name, NULL);
	}
	return r;
}

/* Deleting moves the volume aside ("<disk>.deleting", a rename: instant on both drivers)
 * inside the row's transaction, and removes it after the commit, so a long removal (a
 * big dir volume) never holds the database's write lock. A berthd killed in between
 * leaves "<disk>.deleting" without a row: the reconciliation at start removes it. */
static int delete_hook(void *data, struct berth_error *err)
{
	struct custom_volume *c = data;
	int r = c->pool->driver->volume_rename(c->pool, &c->vol, c->new_name, err);

	c->done = r >= 0;
	return r;
}

int custom_volume_delete(struct custom_volume *c, struct berth_error *err)
{
	struct berth_error derr = {0};
	struct storage_vol trash;
	int r;

	free(c->new_name);
	c->new_name = berth_strdup_printf("%s.deleting", c->disk_name);
	if (!c->new_name)
		return -ENOMEM;
	trash = (struct storage_vol){STORAGE_VOL_CUSTOM, c->new_name};
	c->pool->driver->volume_delete(c->pool, &trash, NULL); /* an older leftover */
	r = db_volume_delete(c->db, c->pool->name, c->project, "custom", c->name, delete_hook, c,
			     err);
	if (r < 0) {
		if (c->done)
			c->pool->driver->volume_rename(c->pool, &trash, c->disk_name, NULL);
		return r;
	}
	r = c->pool->driver->volume_delete(c->pool, &trash, &derr);
	if (r < 0) /* the row is gone: the next start removes what is left */
		log_warn("Cannot remove deleted volume \"%s\": %s", c->new_name,
			 berth_error_msg(&derr, r));
	berth_error_release(&derr);
	return 0;
}

/* ---- snapshots ---- */

/* The copy first (a dir snapshot copies the whole tree: no database lock held
 * meanwhile), then the row; no row, no snapshot: it is removed again. A berthd killed in
 * between leaves a snapshot without a row, which the reconciliation at start removes. */
int custom_volume_snapshot_create(struct custom_volume *c, struct berth_error *err)
{
	_cleanup_free_ char *full = berth_strdup_printf("%s/%s", c->name, c->snap);
	json_auto_t *obj = NULL;
	int r;

	if (!full)
		return -ENOMEM;
	obj = json_pack("{s:s, s:s, s:s, s:{}, s:s}", "name", full, "type", "custom", "description",
			"", "config", "content_type", "filesystem");
	if (!obj)
		return -ENOMEM;
	r = db_volume_get(c->db, c->pool->name, c->project, "custom", full, NULL, NULL);
	if (r >= 0)
		return berth_error_set(err, -EEXIST, BERTH_ERR_CONFLICT,
				       "Storage volume snapshot \"%s\" already exists", full);
	r = c->pool->driver->volume_snapshot(c->pool, &c->vol, c->snap, err);
	if (r < 0)
		return r;
	berth_test_pause("volume-snapshot-after-disk");
	r = db_volume_create(c->db, c->pool->name, c->project, obj, NULL, NULL, err);
	if (r < 0)
		c->pool->driver->volume_snapshot_delete(c->pool, &c->vol, c->snap, NULL);
	return r;
}

/* As for volumes: moved aside ("<snap>.deleting") inside the transaction, removed after. */
static int snapshot_delete_hook(void *data, struct berth_error *err)
{
	struct custom_volume *c = data;
	int r = c->pool->driver->volume_snapshot_rename(c->pool, &c->vol, c->snap, c->new_name,
							err);

	c->done = r >= 0;
	return r;
}

int custom_volume_snapshot_delete(struct custom_volume *c, struct berth_error *err)
{
	_cleanup_free_ char *full = berth_strdup_printf("%s/%s", c->name, c->snap);
	struct berth_error derr = {0};
	int r;

	free(c->new_name);
	c->new_name = berth_strdup_printf("%s.deleting", c->snap);
	if (!full || !c->new_name)
		return -ENOMEM;
	c->pool->driver->volume_snapshot_delete(c->pool, &c->vol, c->new_name, NULL);
	r = db_volume_delete(c->db, c->pool->name, c->project, "custom", full, snapshot_delete_hook,
			     c, err);
	if (r < 0) {
		if (c->done)
			c->pool->driver->volume_snapshot_rename(c->pool, &c->vol, c->new_name,
								c->snap, NULL);
		return r;
	}
	r = c->pool->driver->volume_snapshot_delete(c->pool, &c->vol, c->new_name, &derr);
	if (r < 0) /* the row is gone: the next start removes what is left */
		log_warn("Cannot remove deleted snapshot \"%s\": %s", full,
			 berth_error_msg(&derr, r));
	berth_error_release(&derr);
	return 0;
}

static int snapshot_rename_hook(void *data, struct berth_error *err)
{
	struct custom_volume *c = data;
	int r = c->pool->driver->volume_snapshot_rename(c->pool, &c->vol, c->snap, c->new_name,
							err);

	c->done = r >= 0;
	return r;
}

int custom_volume_snapshot_rename(struct custom_volume *c, struct berth_error *err)
{
	_cleanup_free_ char *full = berth_strdup_printf("%s/%s", c->name, c->snap);
	_cleanup_free_ char *new_full = berth_strdup_printf("%s/%s", c->name, c->new_name);
	int r;

	if (!full || !new_full)
		return -ENOMEM;
	r = db_volume_rename(c->db, c->pool->name, c->project, "custom", full, new_full,
			     snapshot_rename_hook, c, err);
	if (r < 0 && c->done)
		c->pool->driver->volume_snapshot_rename(c->pool, &c->vol, c->new_name, c->snap,
							NULL);
	return r;
}

/* ---- copies and moves ---- */

void custom_volume_copy_free(struct custom_volume_copy *j)
{
	if (!j)
		return;
	custom_volume_free(j->dst);
	storage_pool_free(j->src_pool);
	free(j->src_disk);
	free(j->src_snap);
	json_decref(j->obj);
	json_decref(j->snaps);
	free(j->src_name);
	free(j->trash);
	free(j);
}

static int copy_disk(struct custom_volume_copy *j, struct berth_error *err)
{
	struct storage_pool *dp = j->dst->pool;
	struct storage_vol src = {STORAGE_VOL_CUSTOM, j->src_disk};
	size_t n = json_array_size(j->snaps);
	_cleanup_free_ const char **names = calloc(n + 1, sizeof(*names));
	json_t *s;
	size_t i;
	int r;

	if (!names)
		return -ENOMEM;
	if (!streq(j->src_pool->name, dp->name)) {
		json_array_foreach(j->snaps, i, s)
			names[i] = strchr(berth_json_string(s, "name"), '/') + 1;
		return storage_volume_transfer(j->src_pool, &src, j->src_snap, dp, &j->dst->vol,
					       names, j->dst->size, err);
	}
	if (!j->src_snap)
		return dp->driver->volume_copy(dp, &src, &j->dst->vol, n > 0, j->dst->size, err);
	r = dp->driver->volume_copy_snapshot(dp, &src, j->src_snap, &j->dst->vol, err);
	if (r >= 0 && j->dst->size > 0) {
		r = dp->driver->volume_set_quota(dp, &j->dst->vol, j->dst->size, err);
		if (r < 0)
			dp->driver->volume_delete(dp, &j->dst->vol, NULL);
	}
	return r;
}

/* Inside a move's transaction: the source is set aside ("<disk>.deleting", a rename) and
 * removed after the commit, as custom_volume_delete does. */
static int move_hook(void *data, struct berth_error *err)
{
	struct custom_volume_copy *j = data;
	struct storage_vol src = {STORAGE_VOL_CUSTOM, j->src_disk};
	int r = j->src_pool->driver->volume_rename(j->src_pool, &src, j->trash, err);

	j->trashed = r >= 0;
	return r;
}

int custom_volume_copy_run(struct custom_volume_copy *j, struct berth_error *err)
{
	struct custom_volume *c = j->dst;
	_cleanup_close_ int wb = -EBADF;
	int r;

	if (db_volume_get(c->db, c->pool->name, c->project, "custom", c->name, NULL, NULL) >= 0)
		return berth_error_set(err, -EEXIST, BERTH_ERR_CONFLICT,
				       "Storage volume \"%s\" already exists", c->name);
	r = storage_writeback_watch(c->pool->path, &wb, err);
	if (r >= 0)
		r = copy_disk(j, err);
	if (r < 0)
		return berth_error_wrap(err, r, "Copying the volume");
	r = storage_writeback_check(wb, "the copied volume", err);
	berth_test_pause(j->move ? "volume-move-after-disk" : "volume-copy-after-disk");
	if (r >= 0 && j->move)
		r = db_volume_move(c->db, j->src_pool->name, c->project, j->src_name, c->pool->name,
				   j->obj, j->snaps, move_hook, j, err);
	else if (r >= 0)
		r = db_volume_create_with_snapshots(c->db, c->pool->name, c->project, j->obj,
						    j->snaps, err);
	if (r < 0) {
		struct storage_vol trash = {STORAGE_VOL_CUSTOM, j->trash};

		if (j->trashed)
			j->src_pool->driver->volume_rename(j->src_pool, &trash, j->src_disk, NULL);
		c->pool->driver->volume_delete(c->pool, &c->vol, NULL);
		return r;
	}
	if (j->move) {
		struct storage_vol trash = {STORAGE_VOL_CUSTOM, j->trash};
		struct berth_error derr = {0};

		r = j->src_pool->driver->volume_delete(j->src_pool, &trash, &derr);
		if (r < 0) /* the row is gone: the next start removes what is left */
			log_warn("Cannot remove moved volume \"%s\": %s", j->trash,
				 berth_error_msg(&derr, r));
		berth_error_release(&derr);
	}
	return 0;
}
