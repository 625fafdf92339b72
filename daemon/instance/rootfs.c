/* daemon/instance/rootfs.c: instance root volumes from images (see rootfs.h). */
#include <fcntl.h>
#include <inttypes.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOG_CATEGORY "rootfs"
#include "daemon/db/db.h"
#include "daemon/instance/rootfs.h"
#include "daemon/vm/params.h"
#include "images/metadata.h"
#include "images/template.h"
#include "images/unpack.h"
#include "lib/json.h"
#include "lib/log.h"
#include "lib/spawn.h"
#include "lib/util.h"

#define TMP_MARK ".unpack-"

bool rootfs_is_temporary_image(const char *name)
{
	return strstr(name, TMP_MARK) != NULL;
}

static int vol_path(struct storage_pool *pool, enum storage_volume_type type, const char *name,
		    const char *sub, char **ret)
{
	struct storage_vol v = {type, name};
	_cleanup_free_ char *p = NULL;

	if (storage_volume_path(pool, &v, NULL, &p) < 0)
		return -ENOMEM;
	*ret = sub ? berth_strdup_printf("%s/%s", p, sub) : TAKE_PTR(p);
	return *ret ? 0 : -ENOMEM;
}

static int open_image_file(const char *images_dir, const char *fp, const char *suffix, int *ret,
			   struct berth_error *err)
{
	_cleanup_free_ char *path = berth_strdup_printf("%s/%s%s", images_dir, fp, suffix);
	int fd;

	if (!path)
		return -ENOMEM;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT && *suffix
			       ? -ENOENT
			       : berth_error_set(err, -errno, BERTH_ERR_INTERNAL,
						 "Cannot open image file \"%s\": %m", path);
	*ret = fd;
	return 0;
}

/* The split image's rootfs directory `dir`, made or, when the metadata tarball held a
 * "rootfs" entry, checked with lstat: the squashfs or tarball is unpacked through this
 * path as root, so a "rootfs" symlink (say to "/") would have it written onto the host.
 * Nothing but berthd writes into the fresh volume between this check and the unpack. */
static int rootfs_dir_prepare(const char *fp, const char *dir, struct berth_error *err)
{
	struct stat st;

	if (mkdir(dir, 0755) == 0)
		return 0;
	if (errno != EEXIST)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "mkdir \"%s\": %m", dir);
	if (lstat(dir, &st) < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "lstat \"%s\": %m", dir);
	if (!S_ISDIR(st.st_mode))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Image \"%s\": the \"rootfs\" entry of its metadata tarball "
				       "is not a directory",
				       fp);
	return 0;
}

/* ---- VM images: rootfs.img (qcow2) becomes the raw root.img of the image volume ---- */

#define QEMU_IMG_TIMEOUT_MS (30 * 60 * 1000)

static bool is_qcow2(int fd)
{
	unsigned char buf[4];

	return pread(fd, buf, sizeof(buf), 0) == (ssize_t)sizeof(buf) &&
	       memcmp(buf, "QFI\xfb", 4) == 0;
}

/* What `qemu-img info` says of `file` must be a plain qcow2: a backing file or an
 * external data file would have the conversion read a path of the host's choosing (say
 * /etc/shadow) into the guest's disk. `info` itself never opens the backing chain. */
static int vm_disk_check(const char *fp, const char *file, struct berth_error *err)
{
	_cleanup_(berth_spawn_release) struct berth_spawn s = {
		.argv = (const char *const[]){"qemu-img", "info", "--output=json", "-f", "qcow2",
					      "--", file, NULL},
		.timeout_ms = 60000,
	};
	json_auto_t *info = NULL;
	const json_t *fs;
	const char *format;
	int r = berth_spawn_run(&s, err);

	if (r < 0)
		return r;
	info = json_loads(s.out ?: "", 0, NULL);
	format = berth_json_string(info, "format");
	fs = json_object_get(json_object_get(info, "format-specific"), "data");
	if (!format || !streq(format, "qcow2"))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Image \"%.12s\": its rootfs.img is not a qcow2 image", fp);
	if (json_object_get(info, "backing-filename") ||
	    json_object_get(info, "full-backing-filename") || json_object_get(fs, "data-file"))
		return berth_error_set(err, -EPERM, BERTH_ERR_BAD_REQUEST,
				       "Image \"%.12s\": its rootfs.img refers to another file "
				       "(backing or data file), refused",
				       fp);
	return 0;
}

/* Convert the checked qcow2 `file` to the raw, sparse `dst`/root.img. */
static int vm_disk_convert(const char *fp, const char *file, const char *dst,
			   const atomic_bool *cancel, struct berth_error *err)
{
	_cleanup_free_ char *out = berth_strdup_printf("%s/root.img", dst);
	int r;

	if (!out)
		return -ENOMEM;
	r = vm_disk_check(fp, file, err);
	if (r < 0)
		return r;
	_cleanup_(berth_spawn_release) struct berth_spawn s = {
		.argv = (const char *const[]){"qemu-img", "convert", "-f", "qcow2", "-O", "raw",
					      "-S", "4k", "--", file, out, NULL},
		.timeout_ms = QEMU_IMG_TIMEOUT_MS,
		.cancel = cancel,
	};
	return berth_spawn_run(&s, err);
}

/* Unpack image `fp` into the (existing, empty) volume directory `dst`. */
static int unpack_into(const char *images_dir, const char *fp, const char *dst,
		       image_unpack_progress_fn progress, void *data, const atomic_bool *cancel,
		       struct berth_error *err)
{
	_cleanup_close_ int meta = -EBADF;
	_cleanup_close_ int rootfs = -EBADF;
	_cleanup_free_ char *rootfs_dir = NULL;
	_cleanup_free_ char *rootfs_file = NULL;
	enum image_file_kind kind;
	int r;

	r = open_image_file(images_dir, fp, "", &meta, err);
	if (r < 0)
		return r;
	r = open_image_file(images_dir, fp, ".rootfs", &rootfs, err);
	if (r < 0 && r != -ENOENT)
		return r;
	/* Unified: metadata.yaml, templates/ and rootfs/ in one tarball. */
	r = image_unpack_tar(meta, dst, rootfs < 0 ? progress : NULL, data, cancel, err);
	if (r < 0 || rootfs < 0)
		return r;
	rootfs_dir = berth_strdup_printf("%s/rootfs", dst);
	rootfs_file = berth_strdup_printf("%s/%s.rootfs", images_dir, fp);
	if (!rootfs_dir || !rootfs_file)
		return -ENOMEM;
	if (is_qcow2(rootfs))
		return vm_disk_convert(fp, rootfs_file, dst, cancel, err);
	r = image_file_kind(rootfs, &kind, err);
	if (r < 0)
		return r;
	r = rootfs_dir_prepare(fp, rootfs_dir, err);
	if (r < 0)
		return r;
	if (kind == IMAGE_FILE_SQUASHFS) {
		const char *argv[] = {"unsquashfs", "-f",	 "-n", "-d",
				      rootfs_dir,   rootfs_file, NULL};
		return storage_run(argv, err);
	}
	return image_unpack_tar(rootfs, rootfs_dir, progress, data, cancel, err);
}

/* Refuse up front when the pool has less free space than the image could need: its files
 * times four (xz and squashfs images expand about that much). Only a fast answer for the
 * common case: an image that expands more still fails cleanly, because the unpack fails
 * on any failed write (images/unpack.c) and a syncfs on an fd opened before the unpack
 * reports what failed at writeback; metadata.yaml is read back as a last check. (Files
 * that came back zeroed on a full pool were libarchive's ENOSPC, reported as a mere
 * ARCHIVE_WARN, being ignored, and a syncfs fd opened after the writes.) */
#define EXPANSION_FACTOR 4

static int check_space(struct storage_pool *pool, const char *images_dir, const char *fp,
		       struct berth_error *err)
{
	uint64_t used = 0, total = 0, need = 0;
	struct stat st;
	int r;

	for (int i = 0; i < 2; i++) {
		_cleanup_free_ char *f = berth_strdup_printf("%s/%s%s", images_dir, fp,
							     i ? ".rootfs" : "");
		if (!f)
			return -ENOMEM;
		if (stat(f, &st) == 0)
			need += (uint64_t)st.st_size * EXPANSION_FACTOR;
	}
	r = pool->driver->pool_usage(pool, &used, &total, err);
	if (r < 0)
		return r;
	if (total > used && total - used >= need)
		return 0;
	return berth_error_set(err, -ENOSPC, BERTH_ERR_INTERNAL,
			       "Not enough space on pool \"%s\" to unpack the image (%" PRIu64
			       " bytes free, up to %" PRIu64 " needed)",
			       pool->name, total > used ? total - used : 0, need);
}

static int verify(const char *path, struct berth_error *err)
{
	_cleanup_free_ char *meta = berth_strdup_printf("%s/metadata.yaml", path);
	_cleanup_free_ char *yaml = NULL;
	struct image_metadata m = {0};
	size_t len = 0;
	int r;

	if (!meta)
		return -ENOMEM;
	r = berth_read_file(meta, IMAGE_METADATA_MAX, &yaml, &len);
	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "Reading back \"%s\": %s", meta,
				       strerror(-r));
	r = image_metadata_parse(yaml, len, &m, err);
	image_metadata_release(&m);
	return r < 0 ? berth_error_wrap(err, r, "The unpacked image is damaged (disk full?)") : 0;
}

/* A VM image's kernel and initrd, copied once out of its root.img (the image the admin
 * imported, never a guest's disk) beside it, for direct kernel boot. A failure leaves
 * neither file: instances of that image then boot only with boot.direct=false. */
static void vm_boot_files(const char *fp, const char *path)
{
	_cleanup_free_ char *meta = berth_strdup_printf("%s/metadata.yaml", path);
	_cleanup_free_ char *disk = berth_strdup_printf("%s/root.img", path);
	_cleanup_free_ char *yaml = NULL;
	struct berth_error e = {0};
	struct image_metadata m = {0};
	size_t len = 0;
	int r;

	if (!meta || !disk || access(disk, F_OK) < 0)
		return;
	r = berth_read_file(meta, IMAGE_METADATA_MAX, &yaml, &len);
	if (r >= 0)
		r = image_metadata_parse(yaml, len, &m, &e);
	if (r >= 0)
		r = vm_boot_files_extract(path, json_object_get(m.metadata, "properties"), &e);
	if (r < 0)
		log_warn("Image \"%.12s\": no kernel for direct boot: %s, ignoring", fp,
			 berth_error_msg(&e, r));
	image_metadata_release(&m);
	berth_error_release(&e);
}

int rootfs_image_volume(struct storage_pool *pool, const char *images_dir, const char *fp,
			image_unpack_progress_fn progress, void *data, struct berth_error *err)
{
	_cleanup_free_ char *final = NULL;
	_cleanup_free_ char *tmp_name = NULL;
	_cleanup_free_ char *tmp_path = NULL;
	_cleanup_close_ int wb = -EBADF;
	struct storage_vol tmp;
	unsigned int rnd = 0;
	int r;

	r = vol_path(pool, STORAGE_VOL_IMAGE, fp, NULL, &final);
	if (r < 0)
		return r;
	if (access(final, F_OK) == 0)
		return 0;
	r = check_space(pool, images_dir, fp, err);
	if (r < 0)
		return r;
	if (getrandom(&rnd, sizeof(rnd), 0) < 0)
		rnd = (unsigned int)getpid();
	tmp_name = berth_strdup_printf("%s" TMP_MARK "%08x", fp, rnd);
	if (!tmp_name)
		return -ENOMEM;
	tmp = (struct storage_vol){STORAGE_VOL_IMAGE, tmp_name};
	r = storage_writeback_watch(pool->path, &wb, err);
	if (r < 0)
		return r;
	r = pool->driver->volume_create(pool, &tmp, 0, err);
	if (r < 0)
		return r;
	r = vol_path(pool, STORAGE_VOL_IMAGE, tmp_name, NULL, &tmp_path);
	if (r >= 0)
		r = unpack_into(images_dir, fp, tmp_path, progress, data, pool->cancel, err);
	if (r >= 0)
		r = storage_writeback_check(wb, "the image volume", err);
	if (r >= 0)
		r = verify(tmp_path, err);
	if (r >= 0)
		vm_boot_files(fp, tmp_path);
	if (r >= 0)
		berth_test_pause("image-unpack-before-rename");
	if (r >= 0) {
		r = pool->driver->volume_rename(pool, &tmp, fp, err);
		if (r == -EEXIST) { /* someone else unpacked it meanwhile */
			berth_error_release(err);
			r = 1;
		}
	}
	if (r != 0)
		pool->driver->volume_delete(pool, &tmp, NULL);
	return r < 0 ? r : 0;
}

/* LXD's variables for an instance's templates. New reference, NULL on failure. */
static json_t *template_vars(const json_t *inst, const char *trigger)
{
	const json_t *config = json_object_get(inst, "expanded_config");
	const json_t *devices = json_object_get(inst, "expanded_devices");
	const char *priv = berth_json_string(config, "security.privileged");
	json_t *meta = json_pack("{s:s, s:s, s:b, s:b}", "name",
				 berth_json_string(inst, "name") ?: "", "architecture",
				 berth_json_string(inst, "architecture") ?: "x86_64", "privileged",
				 priv && (streq(priv, "true") || streq(priv, "1")), "ephemeral",
				 json_is_true(json_object_get(inst, "ephemeral")));

	if (!meta)
		return NULL;
	/* "o" takes the references given: meta's own (once), the others' made here */
	return json_pack("{s:s, s:O, s:o, s:o, s:o}", "trigger", trigger, "container", meta,
			 "instance", meta, "config",
			 json_is_object(config) ? json_incref((json_t *)config) : json_object(),
			 "devices",
			 json_is_object(devices) ? json_incref((json_t *)devices) : json_object());
}

int rootfs_apply_templates(struct storage_pool *pool, const char *disk_name, const json_t *inst,
			   const char *trigger, struct berth_error *err)
{
	struct image_metadata m = {0};
	_cleanup_free_ char *vol = NULL;
	_cleanup_free_ char *meta_path = NULL;
	_cleanup_free_ char *yaml = NULL;
	json_auto_t *vars = NULL;
	size_t len = 0;
	int r;

	r = vol_path(pool, STORAGE_VOL_CONTAINER, disk_name, NULL, &vol);
	if (r < 0)
		return r;
	meta_path = berth_strdup_printf("%s/metadata.yaml", vol);
	if (!meta_path)
		return -ENOMEM;
	r = berth_read_file(meta_path, IMAGE_METADATA_MAX, &yaml, &len);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "Reading \"%s\": %s", meta_path,
				       strerror(-r));
	r = image_metadata_parse(yaml, len, &m, err);
	if (r < 0)
		return r;
	vars = template_vars(inst, trigger);
	r = vars ? image_templates_apply(vol, m.metadata, trigger, vars, err) : -ENOMEM;
	image_metadata_release(&m);
	return r;
}

int rootfs_from_image(struct storage_pool *pool, const char *fp, enum storage_volume_type type,
		      const char *disk_name, const json_t *inst, struct berth_error *err)
{
	struct storage_vol src = {STORAGE_VOL_IMAGE, fp};
	struct storage_vol dst = {type, disk_name};
	_cleanup_close_ int wb = -EBADF;
	int r = storage_writeback_watch(pool->path, &wb, err);

	if (r < 0)
		return r;
	if (storage_cancelled(pool))
		return -ECANCELED;
	r = pool->driver->volume_copy(pool, &src, &dst, false, 0, err);
	if (r < 0)
		return r;
	/* A VM's templates are the guest's business (its agent applies them). */
	if (storage_cancelled(pool))
		r = -ECANCELED;
	else if (type == STORAGE_VOL_CONTAINER)
		r = rootfs_apply_templates(pool, disk_name, inst, "create", err);
	/* A "successful" create must never hold files that read back as zeros: hear about
	 * any write of the copy or the templates that failed at writeback. */
	if (r >= 0)
		r = storage_writeback_check(wb, "the root volume", err);
	if (r < 0)
		pool->driver->volume_delete(pool, &dst, NULL);
	return r;
}

void rootfs_image_volumes_remove(struct db *db, const char *state_dir, const char *fp)
{
	struct berth_error err = {0};
	json_auto_t *pools = NULL;
	json_t *p;
	size_t i;
	int r = db_pool_list(db, &pools, &err);

	if (r < 0) {
		log_warn("Cannot list pools to remove image volume \"%s\": %s, ignoring", fp,
			 berth_error_msg(&err, r));
		berth_error_release(&err);
		return;
	}
	json_array_foreach(pools, i, p) {
		_cleanup_(storage_pool_freep) struct storage_pool *pool = NULL;
		_cleanup_free_ char *path = NULL;
		struct storage_vol vol = {STORAGE_VOL_IMAGE, fp};

		if (storage_pool_new(state_dir, p, &pool, &err) < 0 ||
		    vol_path(pool, STORAGE_VOL_IMAGE, fp, NULL, &path) < 0 ||
		    access(path, F_OK) < 0) {
			berth_error_release(&err);
			continue;
		}
		r = pool->driver->volume_delete(pool, &vol, &err);
		if (r < 0)
			log_warn("Pool \"%s\": removing image volume \"%s\": %s, ignoring",
				 pool->name, fp, berth_error_msg(&err, r));
		berth_error_release(&err);
	}
}
