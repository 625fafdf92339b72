/* images/unpack.c: extracting image tarballs below a directory, refusing entries that
 * would land outside it (see unpack.h). */
#include <archive.h>
#include <archive_entry.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOG_CATEGORY "unpack"
#include "images/unpack.h"
#include "images/archive_load.h"
#include "lib/log.h"
#include "lib/utf8.h"
#include "lib/util.h"

static void archive_readp(struct archive **a)
{
	if (*a)
		archive_read_free(*a);
}

static void archive_writep(struct archive **a)
{
	if (*a)
		archive_write_free(*a);
}

/* "./a/b" -> "a/b"; "./" and "." -> "". */
static const char *path_strip(const char *p)
{
	while (p[0] == '.' && p[1] == '/')
		for (p += 2; *p == '/'; p++)
			;
	return streq(p, ".") ? "" : p;
}

/* A path escapes whatever root it is joined to when it is absolute or has a ".."
 * component. */
static bool path_escapes(const char *p)
{
	if (p[0] == '/')
		return true;
	while (*p) {
		const char *end = strchrnul(p, '/');

		if (end - p == 2 && p[0] == '.' && p[1] == '.')
			return true;
		p = *end ? end + 1 : end;
	}
	return false;
}

bool image_symlink_escapes(const char *path, const char *target)
{
	long depth = 0;

	if (target[0] == '/')
		return false;
	for (const char *s = strchr(path, '/'); s; s = strchr(s + 1, '/'))
		depth++;
	while (*target) {
		const char *end = strchrnul(target, '/');
		size_t n = (size_t)(end - target);

		if (n == 2 && target[0] == '.' && target[1] == '.') {
			if (--depth < 0)
				return true;
		} else if (n > 0 && !(n == 1 && target[0] == '.')) {
			depth++;
		}
		target = *end ? end + 1 : end;
	}
	return false;
}

/* Refuse `e` (named `name`, "./" stripped) if it would write outside the root, or leave a
 * link that points outside it. The message quotes the names (any bytes) printably. */
static int entry_refuse(const char *what, const char *name, const char *target,
			struct berth_error *err)
{
	_cleanup_free_ char *qn = berth_utf8_quote(name);
	_cleanup_free_ char *qt = target ? berth_utf8_quote(target) : NULL;

	if (!qn || (target && !qt))
		return -ENOMEM;
	if (!target)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Image tarball entry \"%s\" escapes the image root", qn);
	return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
			       "Image tarball %s \"%s\" points outside (\"%s\")", what, qn, qt);
}

static int entry_check(struct archive_entry *e, const char *name, struct berth_error *err)
{
	const char *hard = archive_entry_hardlink(e);
	const char *rel = berth_startswith(name, "rootfs/") ? name + strlen("rootfs/") : name;

	if (path_escapes(name))
		return entry_refuse(NULL, name, NULL, err);
	if (hard && path_escapes(path_strip(hard)))
		return entry_refuse("hardlink", name, hard, err);
	if (archive_entry_filetype(e) == AE_IFLNK) {
		const char *target = archive_entry_symlink(e);

		if (target && image_symlink_escapes(rel, target))
			return entry_refuse("symlink", name, target, err);
	}
	return 0;
}

/* libarchive's error as ours, naming the entry: ENOSPC and friends stay what they are. */
static int archive_fail(struct archive *a, const char *name, struct berth_error *err)
{
	_cleanup_free_ char *q = name ? berth_utf8_quote(name) : NULL;
	int e = archive_errno(a);

	return berth_error_set(err, e > 0 ? -e : -EIO, BERTH_ERR_INTERNAL, "Unpacking %s%s%s: %s",
			       q ? "\"" : "", q ?: "the image", q ? "\"" : "",
			       archive_error_string(a) ?: "failed");
}

/* Errors that leave a file's data incomplete (finishing an entry also writes: the tail
 * of a sparse file), as opposed to warnings about times, xattrs or ACLs. */
static bool write_failed(int e)
{
	return e == ENOSPC || e == EDQUOT || e == EIO || e == EFBIG;
}

static int entry_data(struct archive *in, struct archive *out, const char *name,
		      struct berth_error *err)
{
	const void *buf;
	size_t size;
	la_int64_t off;
	int r;

	/* libarchive reports a failed or short write(2) (ENOSPC, EDQUOT, EIO) as a mere
	 * ARCHIVE_WARN: anything but ARCHIVE_OK here means the file is not whole. */
	while ((r = archive_read_data_block(in, &buf, &size, &off)) == ARCHIVE_OK)
		if (archive_write_data_block(out, buf, size, off) != ARCHIVE_OK)
			return archive_fail(out, name, err);
	if (r != ARCHIVE_EOF)
		return archive_fail(in, name, err);
	r = archive_write_finish_entry(out);
	if (r < ARCHIVE_WARN || (r == ARCHIVE_WARN && write_failed(archive_errno(out))))
		return archive_fail(out, name, err);
	return 0;
}

static int extract_entry(struct archive *in, struct archive *out, struct archive_entry *e,
			 const char *dest, struct berth_error *err)
{
	_cleanup_free_ char *path = NULL;
	_cleanup_free_ char *link = NULL;
	/* A copy: archive_entry_set_pathname() below frees the entry's own string. */
	_cleanup_free_ char *name = archive_entry_pathname(e)
					    ? strdup(path_strip(archive_entry_pathname(e)))
					    : NULL;
	const char *hard = archive_entry_hardlink(e);
	int r;

	if (!archive_entry_pathname(e))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Image tarball entry without a name");
	if (!name)
		return -ENOMEM;
	r = entry_check(e, name, err);
	if (r < 0)
		return r;
	path = berth_strdup_printf("%s/%s", dest, name);
	if (hard)
		link = berth_strdup_printf("%s/%s", dest, path_strip(hard));
	if (!path || (hard && !link))
		return -ENOMEM;
	/* The names are set (and written) as the tarball's bytes: libarchive's conversion
	 * of pax UTF-8 names to the locale is not involved. */
	archive_entry_set_pathname(e, path);
	if (hard)
		archive_entry_set_hardlink(e, link);
	r = archive_write_header(out, e);
	if (r < ARCHIVE_WARN)
		return archive_fail(out, name, err);
	return entry_data(in, out, name, err);
}

/* The next header. A warning is about the header's text (a pax name that is not valid
 * UTF-8, or not convertible to the locale: libarchive then keeps the bytes as they are,
 * which is what a file name is) or an attribute libarchive skipped: the entry is
 * still whole and is extracted. */
static int next_header(struct archive *in, struct archive_entry **e)
{
	int r = archive_read_next_header(in, e);

	if (r == ARCHIVE_WARN) {
		_cleanup_free_ char *q = berth_utf8_quote(archive_entry_pathname(*e));
		log_debug("Image entry \"%s\": %s, extracting it as it is", q ?: "?",
			  archive_error_string(in) ?: "warning");
		r = ARCHIVE_OK;
	}
	return r;
}

static void unpack_open(struct archive *in, struct archive *out)
{
	archive_read_support_filter_all(in);
	archive_read_support_format_tar(in);
	archive_read_support_format_gnutar(in);
	/* Ownership stays as in the image (ARCHIVE_EXTRACT_OWNER, we run as root): an
	 * unprivileged container gets its ids shifted by an idmapped mount at start (the
	 * runtime's job), so nothing is chowned here and one image volume serves every
	 * instance whatever its id map. */
	archive_write_disk_set_options(out, ARCHIVE_EXTRACT_OWNER | ARCHIVE_EXTRACT_PERM |
						    ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_XATTR |
						    ARCHIVE_EXTRACT_ACL |
						    ARCHIVE_EXTRACT_SECURE_SYMLINKS |
						    ARCHIVE_EXTRACT_SECURE_NODOTDOT |
						    ARCHIVE_EXTRACT_UNLINK |
						    ARCHIVE_EXTRACT_SPARSE);
	archive_write_disk_set_standard_lookup(out);
}

int image_unpack_tar(int fd, const char *dest, image_unpack_progress_fn progress, void *data,
		     const atomic_bool *cancel, struct berth_error *err)
{
	_cleanup_(archive_readp) struct archive *in = archive_read_new();
	_cleanup_(archive_writep) struct archive *out = archive_write_disk_new();
	struct archive_entry *e;
	struct stat st;
	uint64_t total;
	int r;

	if (!in || !out)
		return image_archive_fail(err);
	if (fstat(fd, &st) < 0 || lseek(fd, 0, SEEK_SET) < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "Image file: %m");
	total = (uint64_t)st.st_size;
	unpack_open(in, out);
	if (archive_read_open_fd(in, fd, 1 << 16) != ARCHIVE_OK)
		return archive_fail(in, NULL, err);
	while ((r = next_header(in, &e)) == ARCHIVE_OK) {
		r = extract_entry(in, out, e, dest, err);
		if (r < 0)
			return r;
		if (progress)
			progress((uint64_t)archive_filter_bytes(in, -1), total, data);
		if (cancel && atomic_load(cancel))
			return berth_error_set(err, -ECANCELED, BERTH_ERR_INTERNAL,
					       "Unpack cancelled");
	}
	if (r != ARCHIVE_EOF)
		return archive_fail(in, NULL, err);
	if (archive_write_close(out) != ARCHIVE_OK)
		return archive_fail(out, NULL, err);
	return 0;
}
