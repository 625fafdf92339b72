/* daemon/instance/publish.c: instances and snapshots published as images, images copied
 * between projects (see publish.h). */
#define LOG_CATEGORY "publish"
#include "daemon/instance/publish.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "daemon/db/db.h"
#include "daemon/events.h"
#include "daemon/instance/volume.h"
#include "daemon/instance/instance.h"
#include "daemon/instance/pack.h"
#include "images/metadata.h"
#include "images/store.h"
#include "lib/json.h"
#include "lib/log.h"
#include "lib/spawn.h"
#include "lib/util.h"
#include "lib/yaml.h"

void publish_job_free(void *p)
{
	struct publish_job *j = p;

	if (!j)
		return;
	free(j->project);
	free(j->src_project);
	free(j->event_project);
	free(j->instance);
	free(j->snapshot);
	free(j->image);
	free(j->compression);
	json_decref(j->properties);
	json_decref(j->aliases);
	free(j->expires_at);
	free(j);
}

/* ---- checks before the operation ---- */

static const char *const algorithms[] = {"gzip", "xz", "zstd", "none"};

static int compression_pick(struct publish_job *j, const json_t *body, struct berth_error *err)
{
	const char *algo = berth_json_string(body, "compression_algorithm");
	json_auto_t *server = NULL;

	if (!algo || !*algo) {
		int r = db_server_config_get(j->d->db, &server, err);
		if (r < 0)
			return r;
		algo = berth_json_string(server, "images.compression_algorithm");
	}
	if (!algo || !*algo)
		algo = "gzip";
	for (size_t i = 0; i < ARRAY_SIZE(algorithms); i++)
		if (streq(algo, algorithms[i])) {
			j->compression = strdup(algo);
			return j->compression ? 0 : -ENOMEM;
		}
	return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
			       "Unsupported compression algorithm \"%s\" (gzip, xz, zstd or none)",
			       algo);
}

static int aliases_pick(struct publish_job *j, const json_t *body, struct berth_error *err)
{
	const json_t *aliases = json_object_get(body, "aliases");
	const json_t *a;
	size_t i;

	if (!aliases || json_is_null(aliases))
		return 0;
	if (!json_is_array(aliases))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Field \"aliases\" must be a list");
	j->aliases = json_array();
	if (!j->aliases)
		return -ENOMEM;
	json_array_foreach(aliases, i, a) {
		const char *name = berth_json_string(a, "name");
		if (!name || !*name || strchr(name, '/'))
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "Invalid alias name \"%s\"", name ? name : "");
		if (json_array_append_new(j->aliases,
					  json_pack("{s:s, s:s}", "name", name, "description",
						    berth_json_string(a, "description") ?: "")))
			return -ENOMEM;
	}
	return 0;
}

/* The instance or snapshot `name` ("c1" or "c1/snap0") of j->src_project. */
static int source_instance(struct publish_job *j, const char *type, const char *name,
			   struct berth_error *err)
{
	const char *slash = strchr(name, '/');
	json_auto_t *obj = NULL;
	int r;

	if (streq(type, "snapshot") != !!slash)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Source name \"%s\" is not a%s", name,
				       slash ? "n instance" : " snapshot (INSTANCE/SNAPSHOT)");
	j->instance = slash ? strndup(name, (size_t)(slash - name)) : strdup(name);
	j->snapshot = slash ? strdup(slash + 1) : NULL;
	if (!j->instance || (slash && !j->snapshot))
		return -ENOMEM;
	r = db_instance_get(j->d->db, j->src_project, j->instance, &obj, err);
	if (r >= 0)
		j->vm = streq(berth_json_string(obj, "type") ?: "", "virtual-machine");
	if (r >= 0 && j->snapshot) {
		json_decref(obj);
		obj = NULL;
		r = db_snapshot_get(j->d->db, j->src_project, j->instance, j->snapshot, &obj, err);
	}
	return r;
}

/* Source type image: its fingerprint (or a prefix) or alias in j->src_project. */
static int source_image(struct publish_job *j, const json_t *source, struct berth_error *err)
{
	const char *fp = berth_json_string(source, "fingerprint");
	const char *alias = berth_json_string(source, "alias");
	json_auto_t *a = NULL;
	int r;

	if ((!fp || !*fp) && alias && *alias) {
		r = db_image_alias_get(j->d->db, j->src_project, alias, &a, err);
		if (r < 0)
			return r;
		fp = berth_json_string(a, "target");
	}
	if (!fp || !*fp)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Source image fingerprint or alias required");
	return db_image_resolve(j->d->db, j->src_project, fp, &j->image, err);
}

static int publish_options(struct publish_job *j, const json_t *body, struct berth_error *err)
{
	const json_t *props = json_object_get(body, "properties");
	const char *expires = berth_json_string(body, "expires_at");

	if (props && !json_is_null(props)) {
		if (!json_is_object(props))
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "Field \"properties\" must be an object");
		if (json_object_size(props) > 0)
			j->properties = json_deep_copy(props);
	}
	j->public_ = berth_json_bool(body, "public", false);
	/* Go's zero time means none */
	if (expires && *expires && !berth_startswith(expires, "0001-01-01"))
		j->expires_at = strdup(expires);
	return aliases_pick(j, body, err);
}

int publish_prepare(struct publish_job *j, const json_t *body, struct berth_error *err)
{
	const json_t *source = json_object_get(body, "source");
	const char *type = berth_json_string(source, "type") ?: "";
	const char *src_project = berth_json_string(source, "project");
	const char *name = berth_json_string(source, "name");
	int r;

	if (src_project && *src_project) {
		free(j->src_project);
		j->src_project = strdup(src_project);
	} else if (!j->src_project) {
		j->src_project = strdup(j->project);
	}
	if (!j->src_project)
		return -ENOMEM;
	r = publish_options(j, body, err);
	if (r < 0)
		return r;
	if (streq(type, "image") && berth_json_string(source, "server") &&
	    *berth_json_string(source, "server"))
		return berth_error_set(err, -EOPNOTSUPP, BERTH_ERR_BAD_REQUEST,
				       "Images from remote servers are not supported");
	if (streq(type, "image"))
		return source_image(j, source, err);
	if (!streq(type, "instance") && !streq(type, "snapshot") && !streq(type, "container") &&
	    !streq(type, "virtual-machine"))
		return berth_error_set(err, -EOPNOTSUPP, BERTH_ERR_BAD_REQUEST,
				       "Image source type \"%s\" not supported", type);
	if (!name || !*name)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Source instance name required");
	r = compression_pick(j, body, err);
	if (r >= 0)
		r = source_instance(j, streq(type, "snapshot") ? "snapshot" : "instance", name,
				    err);
	return r;
}

/* ---- the record: image row and aliases in one go ---- */

/* Record `image` (an Image object) in j->project with j's expiry and aliases; on a
 * failure nothing stays recorded. */
static int record(struct publish_job *j, const json_t *image, struct berth_error *err)
{
	json_auto_t *img = json_deep_copy(image);
	const char *fp = berth_json_string(image, "fingerprint");
	int r;

	if (!img || !fp)
		return -ENOMEM;
	if (j->expires_at)
		json_object_set_new(img, "expires_at", json_string(j->expires_at));
	r = db_image_create(j->d->db, j->project, img, err);
	if (r == -EEXIST) {
		berth_error_release(err);
		return berth_error_set(err, r, BERTH_ERR_CONFLICT,
				       "Image with same fingerprint already exists");
	}
	if (r < 0)
		return r;
	r = db_image_aliases_create(j->d->db, j->project, j->aliases, fp, err);
	if (r < 0) {
		struct berth_error ignore = {0};
		db_image_delete(j->d->db, j->project, fp, &ignore);
		berth_error_release(&ignore);
		return r;
	}
	snprintf(j->fp, sizeof(j->fp), "%s", fp);
	return 0;
}

static int record_commit(const json_t *image, void *data, struct berth_error *err)
{
	return record(data, image, err);
}

static void finished(struct operation *op, struct publish_job *j, json_int_t size)
{
	const char *project = j->event_project ?: j->project;
	_cleanup_free_ char *url = NULL;
	char sz[32];

	if (streq(project, "default"))
		url = berth_strdup_printf("/1.0/images/%s", j->fp);
	else
		url = berth_strdup_printf("/1.0/images/%s?project=%s", j->fp, project);

	snprintf(sz, sizeof(sz), "%" JSON_INTEGER_FORMAT, size);
	operation_set_metadata(op, json_pack("{s:s, s:s}", "fingerprint", j->fp, "size", sz));
	if (url)
		events_lifecycle(j->d->events, project, "image-created", url, NULL);
}

/* ---- packing ---- */

/* A private directory in the spool holding the new metadata.yaml (and the id maps of a
 * shifted volume), removed on return. */
struct spool_dir {
	char *path;
	char *file;    /* metadata.yaml */
	char *maps[2]; /* owner and group maps, or NULL */
};

static void spool_unlink(char *path)
{
	if (path) {
		unlink(path);
		free(path);
	}
}

static void spool_dir_release(struct spool_dir *s)
{
	spool_unlink(s->file);
	spool_unlink(s->maps[0]);
	spool_unlink(s->maps[1]);
	if (s->path) {
		rmdir(s->path);
		free(s->path);
	}
}

static const char *const direct_boot_keys[] = {"boot.kernel", "boot.initrd", "boot.cmdline",
					       "boot.root_partition"};

/* metadata.yaml for the image: the volume's own (the source image's, with its templates)
 * when it has one, with the instance's architecture, now as creation date, and the
 * requested properties instead of its own when some were given. A VM's own properties lose
 * the keys of direct kernel boot. */
static int metadata_make(struct publish_job *j, const char *voldir, const char *arch, char **ret,
			 struct berth_error *err)
{
	_cleanup_free_ char *path = berth_strdup_printf("%s/metadata.yaml", voldir);
	_cleanup_free_ char *text = NULL;
	json_auto_t *meta = NULL;
	size_t len = 0;
	int r;

	if (!path)
		return -ENOMEM;
	r = berth_read_file(path, IMAGE_METADATA_MAX, &text, &len);
	if (r >= 0)
		r = berth_yaml_parse(text, len, &meta, err);
	else if (r == -ENOENT)
		r = 0;
	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "Reading %s: %s", path,
				       err && err->msg ? err->msg : strerror(-r));
	if (!json_is_object(meta)) {
		json_decref(meta);
		meta = json_object();
	}
	if (!meta)
		return -ENOMEM;
	json_object_set_new(meta, "architecture", json_string(arch));
	json_object_set_new(meta, "creation_date", json_integer((json_int_t)time(NULL)));
	json_object_del(meta, "expiry_date");
	if (j->properties)
		json_object_set(meta, "properties", j->properties);
	else if (!json_is_object(json_object_get(meta, "properties")))
		json_object_set_new(meta, "properties", json_object());
	else if (j->vm)
		/* Direct kernel boot would have the host copy the kernel out of the guest's
		 * own file system when the image is unpacked (doc/vm.md: never a guest's
		 * disk); the published image boots through its firmware and bootloader. */
		for (size_t i = 0; i < ARRAY_SIZE(direct_boot_keys); i++)
			json_object_del(json_object_get(meta, "properties"), direct_boot_keys[i]);
	return berth_yaml_render(meta, ret, err);
}

static int spool_metadata(struct publish_job *j, const char *voldir, const char *arch,
			  struct spool_dir *s, struct berth_error *err)
{
	_cleanup_free_ char *yaml = NULL;
	int r = metadata_make(j, voldir, arch, &yaml, err);

	if (r < 0)
		return r;
	s->path = berth_strdup_printf("%s/publish-XXXXXX", j->d->spool_dir);
	if (!s->path)
		return -ENOMEM;
	if (!mkdtemp(s->path)) {
		r = -errno;
		free(s->path);
		s->path = NULL;
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "mkdtemp in %s: %m",
				       j->d->spool_dir);
	}
	s->file = berth_strdup_printf("%s/metadata.yaml", s->path);
	if (!s->file)
		return -ENOMEM;
	/* a scratch file, gone once packed: no fsync */
	r = berth_write_file_replace(s->file, yaml, strlen(yaml), 0644);
	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "Writing %s: %s", s->file,
				       strerror(-r));
	return 0;
}

/* Tar metadata.yaml (from `spool`), rootfs/ (a container's) and templates/ (from `voldir`)
 * into `out`. The ids are written as numbers, as they are on disk (the container's), or
 * through the owner and group `maps` (NULL: none) of a shifted volume. */
static int pack(struct operation *op, struct publish_job *j, const char *spool, char *const maps[2],
		const char *voldir, int out, struct berth_error *err)
{
	static const struct pack_labels labels = {
		.progress_key = "create_image_from_container_pack_progress",
		.progress_text = "Image pack",
		.cancelled = "Publish cancelled",
		.failed = "Packing the image failed",
	};
	_cleanup_free_ char *tmpl = berth_strdup_printf("%s/templates", voldir);
	_cleanup_free_ char *owner = maps[0] ? berth_strdup_printf("--owner-map=%s", maps[0])
					     : NULL;
	_cleanup_free_ char *group = maps[0] ? berth_strdup_printf("--group-map=%s", maps[1])
					     : NULL;
	const char *argv[24];
	struct stat st;
	size_t n = 0;

	if (!tmpl || (maps[0] && (!owner || !group)))
		return -ENOMEM;
	for (const char *const *a =
		     (const char *const[]){"tar", "--create", "--file=-", "--numeric-owner",
					   "--sparse", "--xattrs", "--xattrs-include=*", "--acls",
					   "--format=posix", NULL};
	     *a; a++)
		argv[n++] = *a;
	if (pack_compress_flag(j->compression))
		argv[n++] = pack_compress_flag(j->compression);
	if (maps[0]) {
		argv[n++] = owner;
		argv[n++] = group;
	}
	argv[n++] = "-C";
	argv[n++] = spool;
	argv[n++] = "metadata.yaml";
	bool templates = lstat(tmpl, &st) == 0 && S_ISDIR(st.st_mode);
	if (!j->vm || templates) {
		argv[n++] = "-C";
		argv[n++] = voldir;
	}
	if (!j->vm)
		argv[n++] = "rootfs";
	if (templates)
		argv[n++] = "templates";
	argv[n] = NULL;
	return pack_run(op, argv, out, &labels, err);
}

/* A VM's image is split as LXD's VM images are: the metadata tarball (pack() without
 * rootfs/), and the raw disk `voldir`/root.img converted to qcow2 as rootfs.img, its
 * clusters compressed unless the image is to be uncompressed. qemu-img writes it into an
 * unnamed file in the spool (`ret_fd`), which the image store names: nothing is left
 * behind. */
static int vm_disk_pack(struct operation *op, struct publish_job *j, const char *voldir,
			int *ret_fd, struct berth_error *err)
{
	_cleanup_free_ char *src = berth_strdup_printf("%s/root.img", voldir);
	_cleanup_close_ int fd = open(j->d->spool_dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	const char *argv[16] = {"qemu-img", "convert", "-f", "raw", "-O", "qcow2", "-S", "4k"};
	size_t n = 8;
	int r;

	if (!src)
		return -ENOMEM;
	if (fd < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "Spool file in %s: %m",
				       j->d->spool_dir);
	if (!streq(j->compression, "none"))
		argv[n++] = "-c";
	argv[n++] = "--";
	argv[n++] = src;
	argv[n++] = "/dev/fd/3"; /* `fd`, the child's 3 */
	_cleanup_(berth_spawn_release) struct berth_spawn s = {
		.argv = argv,
		.extra_fds = &fd,
		.n_extra_fds = 1,
		.timeout_ms = 60 * 60 * 1000,
		.cancel = operation_cancel_flag(op),
	};
	r = berth_spawn_run(&s, err);
	if (r == -ECANCELED)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "Publish cancelled");
	if (r < 0)
		return berth_error_wrap(err, r, "Converting the disk of VM \"%s\" to qcow2",
					j->instance);
	if (lseek(fd, 0, SEEK_SET) < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "lseek: %m");
	*ret_fd = TAKE_FD(fd);
	return 0;
}

/* The directory of the volume to publish (the instance's or its snapshot's). */
static int source_dir(struct publish_job *j, const struct instance_volume *v, char **ret,
		      struct berth_error *err)
{
	if (!v->pool)
		return berth_error_set(err, -ENOENT, BERTH_ERR_BAD_REQUEST,
				       "Instance \"%s\" has no root volume", j->instance);
	return storage_volume_path(v->pool, &v->vol, j->snapshot, ret);
}

/* The spool's id maps for a shifted volume `dir`: ids as the container sees them. */
static int shift_maps(const char *dir, struct spool_dir *spool, struct berth_error *err)
{
	struct pack_shift sh;
	int r = pack_shift_read(dir, &sh, err);

	if (r < 0 || !sh.on)
		return r;
	return pack_shift_maps_write(spool->path, &sh, spool->maps, err);
}

/* LXD refuses to publish a running container (the client stops it with --force). */
static int check_stopped(struct publish_job *j, json_t **ret_inst, struct berth_error *err)
{
	int r = db_instance_get(j->d->db, j->src_project, j->instance, ret_inst, err);

	if (r < 0)
		return r;
	if (!j->snapshot && instance_running(j->d, j->src_project, *ret_inst))
		return berth_error_set(err, -EBUSY, BERTH_ERR_BAD_REQUEST,
				       "Cannot export a running instance as an image");
	return 0;
}

int publish_run(struct operation *op, void *data, struct berth_error *err)
{
	struct publish_job *j = data;
	_cleanup_(instance_volume_release) struct instance_volume v = {0};
	_cleanup_(spool_dir_release) struct spool_dir spool = {0};
	_cleanup_close_ int out = -EBADF;
	_cleanup_close_ int disk = -EBADF;
	_cleanup_free_ char *dir = NULL, *images = NULL;
	json_auto_t *inst = NULL;
	struct image_upload up = {.content_type = "application/octet-stream",
				  .public_ = j->public_};
	struct stat st;
	json_int_t size;
	int r = check_stopped(j, &inst, err);

	if (r >= 0)
		r = instance_volume_open(j->d, j->src_project, j->instance, &v, err);
	if (r >= 0)
		r = source_dir(j, &v, &dir, err);
	if (r >= 0)
		r = spool_metadata(j, dir, berth_json_string(inst, "architecture") ?: "x86_64",
				   &spool, err);
	if (r >= 0)
		r = shift_maps(dir, &spool, err);
	if (r < 0)
		return r;
	out = open(j->d->spool_dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (out < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "Spool file in %s: %m",
				       j->d->spool_dir);
	r = pack(op, j, spool.path, spool.maps, dir, out, err);
	if (r >= 0 && j->vm)
		r = vm_disk_pack(op, j, dir, &disk, err);
	if (r < 0)
		return r;
	if (operation_cancelled(op))
		return berth_error_set(err, -ECANCELED, BERTH_ERR_INTERNAL, "Publish cancelled");
	images = berth_strdup_printf("%s/images", j->d->dir);
	if (!images)
		return -ENOMEM;
	if (lseek(out, 0, SEEK_SET) < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "lseek: %m");
	up.fd = out;
	up.two_files = up.vm = j->vm;
	up.rootfs_fd = disk;
	r = image_store_import(images, &up, record_commit, j, err);
	if (r < 0)
		return r;
	size = fstat(out, &st) == 0 ? (json_int_t)st.st_size : 0;
	if (disk >= 0 && fstat(disk, &st) == 0)
		size += (json_int_t)st.st_size;
	finished(op, j, size);
	return 0;
}

/* ---- source type image: the same files, one more project's record ---- */

int publish_copy_run(struct operation *op, void *data, struct berth_error *err)
{
	struct publish_job *j = data;
	json_auto_t *img = NULL;
	int r = db_image_get(j->d->db, j->src_project, j->image, &img, err);

	if (r < 0)
		return r;
	json_object_del(img, "aliases");
	json_object_del(img, "id");
	json_object_set_new(img, "public", json_boolean(j->public_));
	if (j->properties)
		json_object_set(img, "properties", j->properties);
	r = record(j, img, err);
	if (r < 0)
		return r;
	finished(op, j, json_integer_value(json_object_get(img, "size")));
	return 0;
}
