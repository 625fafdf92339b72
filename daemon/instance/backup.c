/* daemon/instance/backup.c: the store of instance backups, their names, renames, deletes
 * and expiry; the create operation around backup_write() (see backup.h). */
#define LOG_CATEGORY "backup"
#include "daemon/instance/backup.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "daemon/db/db.h"
#include "daemon/events.h"
#include "daemon/instance/pack.h"
#include "lib/json.h"
#include "lib/log.h"
#include "lib/util.h"

#define BACKUP_META_MAX (16u << 10)
#define BACKUP_NAME_MAX 200 /* room for ".NAME.json.tmp.XXXXXX" in NAME_MAX */

struct backup_job *backup_job_new(struct berth_daemon *d, const char *project, const char *instance,
				  const char *name)
{
	struct backup_job *j = calloc(1, sizeof(*j));

	if (!j)
		return NULL;
	j->d = d;
	j->project = strdup(project);
	j->instance = strdup(instance);
	j->name = name ? strdup(name) : NULL;
	if (!j->project || !j->instance || (name && !j->name)) {
		backup_job_free(j);
		return NULL;
	}
	return j;
}

void backup_job_free(void *p)
{
	struct backup_job *j = p;

	if (!j)
		return;
	free(j->project);
	free(j->instance);
	free(j->name);
	free(j->new_name);
	free(j->expires_at);
	free(j->compression);
	free(j);
}

char *backup_url(const char *project, const char *instance, const char *name)
{
	_cleanup_free_ char *i = berth_url_encode(instance);
	_cleanup_free_ char *n = berth_url_encode(name);
	_cleanup_free_ char *p = berth_url_encode(project);

	if (!i || !n || !p)
		return NULL;
	if (streq(project, "default"))
		return berth_strdup_printf("/1.0/instances/%s/backups/%s", i, n);
	return berth_strdup_printf("/1.0/instances/%s/backups/%s?project=%s", i, n, p);
}

static void lifecycle(struct berth_daemon *d, const char *project, const char *instance,
		      const char *action, const char *name, json_t *context)
{
	_cleanup_free_ char *url = backup_url(project, instance, name);

	if (url)
		events_lifecycle(d->events, project, action, url, context);
	else
		json_decref(context);
}

/* ---- the store ---- */

static char *instances_dir(struct berth_daemon *d)
{
	return berth_strdup_printf("%s/backups/instances", d->dir);
}

/* LXD's on-disk name of an instance: the name in "default", "<project>_<name>" else. */
static char *store_dir(struct berth_daemon *d, const char *project, const char *instance)
{
	if (streq(project, "default"))
		return berth_strdup_printf("%s/backups/instances/%s", d->dir, instance);
	return berth_strdup_printf("%s/backups/instances/%s_%s", d->dir, project, instance);
}

static char *meta_name(const char *name)
{
	return berth_strdup_printf(".%s.json", name);
}

static json_t *render(const json_t *meta)
{
	bool only = berth_json_bool(meta, "instance_only", false);

	return json_pack("{s:s, s:s, s:s, s:b, s:b, s:b}", "name",
			 berth_json_string(meta, "name") ?: "", "created_at",
			 berth_json_string(meta, "created_at") ?: BACKUP_NEVER, "expires_at",
			 berth_json_string(meta, "expires_at") ?: BACKUP_NEVER, "instance_only",
			 only, "container_only", only, "optimized_storage",
			 berth_json_bool(meta, "optimized_storage", false));
}

/* The record of backup `name` in the open store directory `dfd`: -ENOENT unless both the
 * record and the tarball exist. */
static int meta_read(int dfd, const char *name, json_t **ret, struct berth_error *err)
{
	_cleanup_free_ char *mname = meta_name(name);
	_cleanup_close_ int fd = -EBADF;
	char buf[BACKUP_META_MAX];
	struct stat st;
	ssize_t n;

	if (!mname)
		return -ENOMEM;
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
		return -ENOENT;
	fd = openat(dfd, mname, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -ENOENT;
	n = read(fd, buf, sizeof(buf));
	if (n < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "Reading %s: %m", mname);
	return berth_json_parse(buf, (size_t)n, ret, err);
}

static int not_found(struct berth_error *err)
{
	return berth_error_set(err, -ENOENT, BERTH_ERR_NOT_FOUND, "Backup not found");
}

static int open_store(struct berth_daemon *d, const char *project, const char *instance, int *ret)
{
	_cleanup_free_ char *dir = store_dir(d, project, instance);

	if (!dir)
		return -ENOMEM;
	*ret = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return *ret < 0 ? -errno : 0;
}

static int by_created(const void *a, const void *b)
{
	const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;

	return strcmp(berth_json_string(x, "created_at") ?: "",
		      berth_json_string(y, "created_at") ?: "");
}

/* Every backup in the open store directory `dfd`, as records (not rendered), in
 * creation order. */
static int list_records(int dfd, json_t **ret, struct berth_error *err)
{
	DIR *dir = fdopendir(dup(dfd));
	json_t **items = NULL, *out;
	size_t n = 0, cap = 0;
	struct dirent *e;
	int r = 0;

	if (!dir)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "Backup store: %m");
	rewinddir(dir); /* the dup shares dfd's offset, which an earlier listing moved */
	while (r >= 0 && (e = readdir(dir))) {
		size_t len = strlen(e->d_name);
		_cleanup_free_ char *name = NULL;
		json_t *meta = NULL;

		if (e->d_name[0] != '.' || len < 7 || !berth_endswith(e->d_name, ".json"))
			continue;
		name = strndup(e->d_name + 1, len - 6);
		if (!name || meta_read(dfd, name, &meta, NULL) < 0)
			continue;
		if (n == cap) {
			json_t **more = reallocarray(items, cap ? cap * 2 : 16, sizeof(*items));
			if (!more) {
				json_decref(meta);
				r = -ENOMEM;
				break;
			}
			items = more;
			cap = cap ? cap * 2 : 16;
		}
		items[n++] = meta;
	}
	closedir(dir);
	if (n > 0)
		qsort(items, n, sizeof(items[0]), by_created);
	out = r >= 0 ? json_array() : NULL;
	for (size_t i = 0; i < n; i++)
		if (!out || json_array_append_new(out, items[i]) < 0)
			json_decref(items[i]);
	free(items);
	if (!out)
		return -ENOMEM;
	*ret = out;
	return 0;
}

int backup_list(struct berth_daemon *d, const char *project, const char *instance, json_t **ret,
		struct berth_error *err)
{
	_cleanup_close_ int dfd = -EBADF;
	json_auto_t *records = NULL;
	json_t *out, *m;
	size_t i;
	int r = open_store(d, project, instance, &dfd);

	if (r == -ENOENT) {
		*ret = json_array();
		return *ret ? 0 : -ENOMEM;
	}
	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "Backup store: %s",
				       strerror(-r));
	r = list_records(dfd, &records, err);
	if (r < 0)
		return r;
	out = json_array();
	if (!out)
		return -ENOMEM;
	json_array_foreach(records, i, m)
		json_array_append_new(out, render(m));
	*ret = out;
	return 0;
}

int backup_get(struct berth_daemon *d, const char *project, const char *instance, const char *name,
	       json_t **ret, struct berth_error *err)
{
	_cleanup_close_ int dfd = -EBADF;
	json_auto_t *meta = NULL;
	int r;

	if (backup_name_check(name, NULL) < 0 || open_store(d, project, instance, &dfd) < 0)
		return not_found(err);
	r = meta_read(dfd, name, &meta, err);
	if (r == -ENOENT)
		return not_found(err);
	if (r < 0)
		return r;
	*ret = render(meta);
	return *ret ? 0 : -ENOMEM;
}

int backup_open(struct berth_daemon *d, const char *project, const char *instance, const char *name,
		int *ret_fd, uint64_t *ret_size, struct berth_error *err)
{
	_cleanup_close_ int dfd = -EBADF, fd = -EBADF;
	json_auto_t *meta = NULL;
	struct stat st;

	if (backup_name_check(name, NULL) < 0 || open_store(d, project, instance, &dfd) < 0 ||
	    meta_read(dfd, name, &meta, NULL) < 0)
		return not_found(err);
	fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 || fstat(fd, &st) < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "Opening backup \"%s\": %m",
				       name);
	*ret_size = (uint64_t)st.st_size;
	*ret_fd = TAKE_FD(fd);
	return 0;
}

/* ---- names and options ---- */

int backup_name_check(const char *name, struct berth_error *err)
{
	if (!name || !*name)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Backup name may not be empty");
	if (strchr(name, '/'))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Backup names may not contain slashes");
	if (name[0] == '.' || strlen(name) > BACKUP_NAME_MAX)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Invalid backup name \"%s\": it may not start with '.' nor "
				       "be longer than %d bytes",
				       name, BACKUP_NAME_MAX);
	return 0;
}

char *backup_next_name(const json_t *list)
{
	const json_t *b;
	size_t i;
	int max = 0;

	json_array_foreach(list, i, b) {
		const char *name = berth_json_string(b, "name") ?: "";
		int num;

		if (berth_startswith(name, "backup") && sscanf(name + 6, "%d", &num) == 1 &&
		    num >= max)
			max = num + 1;
	}
	return berth_strdup_printf("backup%d", max);
}

static const char *const algorithms[] = {"gzip", "xz", "zstd", "bzip2", "lzma", "none"};

static int compression_pick(struct backup_job *j, const json_t *body, struct berth_error *err)
{
	const char *algo = berth_json_string(body, "compression_algorithm");
	json_auto_t *server = NULL, *project = NULL;
	int r;

	if (!algo || !*algo) {
		r = db_project_get(j->d->db, j->project, &project, err);
		if (r < 0)
			return r;
		algo = berth_json_string(json_object_get(project, "config"),
					 "backups.compression_algorithm");
	}
	if (!algo || !*algo) {
		r = db_server_config_get(j->d->db, &server, err);
		if (r < 0)
			return r;
		algo = berth_json_string(server, "backups.compression_algorithm");
	}
	if (!algo || !*algo)
		algo = "gzip";
	for (size_t i = 0; i < ARRAY_SIZE(algorithms); i++)
		if (streq(algo, algorithms[i])) {
			j->compression = strdup(algo);
			return j->compression ? 0 : -ENOMEM;
		}
	return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
			       "Unsupported compression algorithm \"%s\" (gzip, xz, zstd, bzip2, "
			       "lzma or none)",
			       algo);
}

int backup_prepare(struct backup_job *j, const json_t *body, struct berth_error *err)
{
	const json_t *exp = json_object_get(body, "expires_at");
	char buf[BERTH_RFC3339_MAX];

	if (exp && !json_is_null(exp) && !json_is_string(exp))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Field \"expires_at\" must be a string");
	if (json_is_string(exp) && *json_string_value(exp)) {
		if (berth_time_normalize(json_string_value(exp), buf) < 0)
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "Invalid expires_at \"%s\" (RFC 3339)",
					       json_string_value(exp));
		if (!streq(buf, BACKUP_NEVER)) {
			j->expires_at = strdup(buf);
			if (!j->expires_at)
				return -ENOMEM;
		}
	}
	j->instance_only = berth_json_bool(body, "instance_only", false) ||
			   berth_json_bool(body, "container_only", false);
	j->optimized_asked = j->optimized = berth_json_bool(body, "optimized_storage", false);
	return compression_pick(j, body, err);
}

/* ---- create ---- */

static int meta_write(const char *dir, const json_t *meta, const char *name,
		      struct berth_error *err)
{
	_cleanup_free_ char *text = berth_json_dumps(meta);
	_cleanup_free_ char *mname = meta_name(name);
	_cleanup_free_ char *path = mname ? berth_strdup_printf("%s/%s", dir, mname) : NULL;
	int r;

	if (!text || !path)
		return -ENOMEM;
	r = berth_write_file_atomic(path, text, strlen(text), 0600);
	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "Writing %s: %s", path,
				       strerror(-r));
	return 0;
}

static int exists_error(const char *name, struct berth_error *err)
{
	return berth_error_set(err, -EEXIST, BERTH_ERR_CONFLICT, "Backup \"%s\" already exists",
			       name);
}

/* Give the finished unnamed file `out` its name in the store, then its record. */
static int publish_file(struct backup_job *j, const char *dir, int dfd, int out,
			struct berth_error *err)
{
	char proc[64], now[BERTH_RFC3339_MAX];
	json_auto_t *meta = NULL;
	int r;

	if (fsync(out) < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "fsync: %m");
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", out);
	if (linkat(AT_FDCWD, proc, dfd, j->name, AT_SYMLINK_FOLLOW) < 0)
		return errno == EEXIST ? exists_error(j->name, err)
				       : berth_error_set(err, -errno, BERTH_ERR_INTERNAL,
							 "Naming backup \"%s\": %m", j->name);
	berth_now_rfc3339(now);
	meta = json_pack("{s:s, s:s, s:s, s:b, s:b, s:s}", "name", j->name, "created_at", now,
			 "expires_at", j->expires_at ?: BACKUP_NEVER, "instance_only",
			 j->instance_only, "optimized_storage", j->optimized,
			 "compression_algorithm", j->compression);
	r = meta ? meta_write(dir, meta, j->name, err) : -ENOMEM;
	if (r < 0)
		unlinkat(dfd, j->name, 0);
	return r;
}

int backup_create_run(struct operation *op, void *data, struct berth_error *err)
{
	struct backup_job *j = data;
	_cleanup_free_ char *dir = store_dir(j->d, j->project, j->instance);
	_cleanup_close_ int dfd = -EBADF, out = -EBADF;
	json_auto_t *meta = NULL;
	int r;

	if (!dir)
		return -ENOMEM;
	r = berth_mkdir_p(dir, 0700);
	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "Creating %s: %s", dir,
				       strerror(-r));
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "Opening %s: %m", dir);
	if (meta_read(dfd, j->name, &meta, NULL) >= 0)
		return exists_error(j->name, err);
	out = openat(dfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (out < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "Backup file in %s: %m",
				       dir);
	r = backup_write(op, j, out, err);
	if (r >= 0 && operation_cancelled(op))
		r = berth_error_set(err, -ECANCELED, BERTH_ERR_INTERNAL, "Backup cancelled");
	if (r >= 0)
		r = publish_file(j, dir, dfd, out, err);
	if (r < 0)
		return r;
	lifecycle(j->d, j->project, j->instance, "instance-backup-created", j->name, NULL);
	return 0;
}

/* ---- rename and delete ---- */

int backup_rename_run(struct operation *op, void *data, struct berth_error *err)
{
	struct backup_job *j = data;
	_cleanup_free_ char *dir = store_dir(j->d, j->project, j->instance);
	_cleanup_free_ char *old_meta = meta_name(j->name);
	_cleanup_close_ int dfd = -EBADF;
	json_auto_t *meta = NULL, *other = NULL;
	int r;

	if (!dir || !old_meta)
		return -ENOMEM;
	if (open_store(j->d, j->project, j->instance, &dfd) < 0 ||
	    meta_read(dfd, j->name, &meta, NULL) < 0)
		return not_found(err);
	if (meta_read(dfd, j->new_name, &other, NULL) >= 0)
		return exists_error(j->new_name, err);
	if (renameat2(dfd, j->name, dfd, j->new_name, RENAME_NOREPLACE) < 0)
		return errno == EEXIST ? exists_error(j->new_name, err)
				       : berth_error_set(err, -errno, BERTH_ERR_INTERNAL,
							 "Renaming backup \"%s\": %m", j->name);
	json_object_set_new(meta, "name", json_string(j->new_name));
	r = meta_write(dir, meta, j->new_name, err);
	if (r < 0) {
		renameat(dfd, j->new_name, dfd, j->name);
		return r;
	}
	unlinkat(dfd, old_meta, 0);
	lifecycle(j->d, j->project, j->instance, "instance-backup-renamed", j->new_name,
		  json_pack("{s:s}", "old_name", j->name));
	return 0;
}

/* Remove backup `name` from the open store `dfd`: its record first (it is no longer
 * listed), then its tarball. */
static int remove_backup(int dfd, const char *name, struct berth_error *err)
{
	_cleanup_free_ char *mname = meta_name(name);

	if (!mname)
		return -ENOMEM;
	if (unlinkat(dfd, mname, 0) < 0 && errno != ENOENT)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL,
				       "Removing backup \"%s\": %m", name);
	if (unlinkat(dfd, name, 0) < 0 && errno != ENOENT)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL,
				       "Removing backup \"%s\": %m", name);
	return 0;
}

int backup_delete_run(struct operation *op, void *data, struct berth_error *err)
{
	struct backup_job *j = data;
	_cleanup_close_ int dfd = -EBADF;
	json_auto_t *meta = NULL;
	int r;

	if (open_store(j->d, j->project, j->instance, &dfd) < 0 ||
	    meta_read(dfd, j->name, &meta, NULL) < 0)
		return not_found(err);
	r = remove_backup(dfd, j->name, err);
	if (r < 0)
		return r;
	lifecycle(j->d, j->project, j->instance, "instance-backup-deleted", j->name, NULL);
	return 0;
}

/* Remove every file of store directory `dir`, then the directory. */
static int remove_store(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int r = 0;

	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while ((e = readdir(d)))
		if (!streq(e->d_name, ".") && !streq(e->d_name, "..") &&
		    unlinkat(dirfd(d), e->d_name, 0) < 0 && r == 0)
			r = -errno;
	closedir(d);
	if (rmdir(dir) < 0 && r == 0)
		r = -errno;
	return r;
}

void backup_instance_deleted(struct berth_daemon *d, const char *project, const char *instance)
{
	_cleanup_free_ char *dir = store_dir(d, project, instance);
	int r = dir ? remove_store(dir) : -ENOMEM;

	if (r < 0)
		log_warn("Removing the backups of instance \"%s\": %s, ignoring", instance,
			 strerror(-r));
}

int backup_instance_renamed(struct berth_daemon *d, const char *project, const char *instance,
			    const char *new_name, struct berth_error *err)
{
	_cleanup_free_ char *from = store_dir(d, project, instance);
	_cleanup_free_ char *to = store_dir(d, project, new_name);

	if (!from || !to)
		return -ENOMEM;
	if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) < 0 && errno != ENOENT)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL,
				       "Moving the backups of \"%s\" to \"%s\": %m", instance, to);
	return 0;
}

/* ---- expiry ---- */

/* Whether `ts` (UTC RFC 3339 with nanoseconds, as stored) is set and before `now`. */
static bool expired(const char *ts, const char *now)
{
	return ts && *ts && !berth_startswith(ts, "0001-") && strcmp(ts, now) < 0;
}

/* Project and instance of store directory `entry` ("c1", "p1_c1": instance names have no
 * '_'). */
static void split_entry(const char *entry, char *project, char *instance, size_t size)
{
	const char *u = strrchr(entry, '_');

	if (!u) {
		snprintf(project, size, "default");
		snprintf(instance, size, "%s", entry);
		return;
	}
	snprintf(project, size, "%.*s", (int)(u - entry), entry);
	snprintf(instance, size, "%s", u + 1);
}

/* Tarballs without a record: what a crash between the link and the record left. */
static void remove_orphans(int dfd)
{
	DIR *dir = fdopendir(dup(dfd));
	struct dirent *e;
	json_t *meta;

	if (!dir)
		return;
	rewinddir(dir); /* the dup shares dfd's offset: list_records() read it to the end */
	while ((e = readdir(dir))) {
		if (e->d_name[0] == '.')
			continue;
		meta = NULL;
		if (meta_read(dfd, e->d_name, &meta, NULL) < 0 && unlinkat(dfd, e->d_name, 0) == 0)
			log_info("Removed \"%s\", a backup without its record", e->d_name);
		json_decref(meta);
	}
	closedir(dir);
}

static int prune_store(struct berth_daemon *d, int parent, const char *entry, const char *now,
		       bool at_start)
{
	_cleanup_close_ int dfd = openat(parent, entry, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	char project[256], instance[256];
	json_auto_t *records = NULL;
	json_t *m;
	size_t i;
	int n = 0;

	if (dfd < 0 || list_records(dfd, &records, NULL) < 0)
		return 0;
	split_entry(entry, project, instance, sizeof(project));
	json_array_foreach(records, i, m) {
		const char *name = berth_json_string(m, "name") ?: "";
		struct berth_error err = {0};

		if (!expired(berth_json_string(m, "expires_at"), now))
			continue;
		if (remove_backup(dfd, name, &err) < 0) {
			log_warn("Removing expired backup \"%s/%s\": %s, ignoring", instance, name,
				 berth_error_msg(&err, -EIO));
			berth_error_release(&err);
			continue;
		}
		lifecycle(d, project, instance, "instance-backup-deleted", name, NULL);
		n++;
	}
	/* An empty store stays: a backup may be on its way into it. */
	if (at_start)
		remove_orphans(dfd);
	return n;
}

int backups_prune(struct berth_daemon *d, bool at_start)
{
	_cleanup_free_ char *top = instances_dir(d);
	char now[BERTH_RFC3339_MAX];
	struct dirent *e;
	DIR *dir;
	int n = 0;

	if (!top)
		return -ENOMEM;
	dir = opendir(top);
	if (!dir)
		return errno == ENOENT ? 0 : -errno;
	berth_now_rfc3339(now);
	while ((e = readdir(dir)))
		if (e->d_name[0] != '.')
			n += prune_store(d, dirfd(dir), e->d_name, now, at_start);
	closedir(dir);
	if (n > 0)
		log_info("Removed %d expired backup%s", n, n == 1 ? "" : "s");
	return n;
}

struct tick {
	uv_work_t work;
	struct berth_daemon *d;
};

static void tick_work(uv_work_t *w)
{
	struct tick *t = container_of(w, struct tick, work);

	backups_prune(t->d, false);
}

static void tick_done(uv_work_t *w, int status)
{
	free(container_of(w, struct tick, work));
}

void backups_tick(struct berth_daemon *d)
{
	struct tick *t = calloc(1, sizeof(*t));

	if (!t)
		return;
	t->d = d;
	if (uv_queue_work(d->loop, &t->work, tick_work, tick_done) < 0)
		free(t);
}
