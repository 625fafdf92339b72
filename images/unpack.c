/* images/unpack.c: extracting image tarballs below a directory, refusing entries that
 * would land outside it (see unpack.h). */
#include <archive.h>
#include <archive_entry.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "images/unpack.h"
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

/* A path is safe when it is relative and has no ".." component. "./" prefixes are fine. */
static bool path_safe(const char *p)
{
	const char *s = p;

	if (!p || *p == '/')
		return false;
	while (*s) {
		const char *e = strchrnul(s, '/');
		if (e - s == 2 && s[0] == '.' && s[1] == '.')
			return false;
		s = *e ? e + 1 : e;
	}
	return true;
}

static int prefix_path(const char *dest, const char *p, char **ret)
{
	while (p[0] == '.' && p[1] == '/')
		p += 2;
	*ret = berth_strdup_printf("%s/%s", dest, p);
	return *ret ? 0 : -ENOMEM;
}

/* libarchive's error as ours: ENOSPC and friends stay what they are. */
static int archive_fail(struct archive *a, const char *what, struct berth_error *err)
{
	int e = archive_errno(a);

	return berth_error_set(err, e > 0 ? -e : -EIO,
			       BERTH_ERR_INTERNAL,
			       "Unpacking %s: %s", what, archive_error_string(a) ?: "failed");
}

/* Errors that leave a file's data incomplete (finishing an entry also writes: the tail
 * of a sparse file), as opposed to warnings about times, xattrs or ACLs. */
static bool write_failed(int e)
{
	return e == ENOSPC || e == EDQUOT || e == EIO || e == EFBIG;
}

static int extract_entry(struct archive *in, struct archive *out, struct archive_entry *e,
			 const char *dest, struct berth_error *err)
{
	_cleanup_free_ char *path = NULL;
	_cleanup_free_ char *link = NULL;
	/* A copy: archive_entry_set_pathname() below frees the entry's own string. */
	_cleanup_free_ char *name_copy = archive_entry_pathname(e) ?
		strdup(archive_entry_pathname(e)) : NULL;
	const char *name = name_copy;
	const char *hard = archive_entry_hardlink(e);
	const void *buf;
	size_t size;
	la_int64_t off;
	int r;

	if (archive_entry_pathname(e) && !name)
		return -ENOMEM;
	if (!path_safe(name))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Image entry \"%s\" escapes the image root", name ?: "");
	if (hard && !path_safe(hard))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Image hardlink \"%s\" -> \"%s\" escapes the image root",
				       name, hard);
	if (prefix_path(dest, name, &path) < 0 || (hard && prefix_path(dest, hard, &link) < 0))
		return -ENOMEM;
	archive_entry_set_pathname(e, path);
	if (hard)
		archive_entry_set_hardlink(e, link);
	r = archive_write_header(out, e);
	if (r < ARCHIVE_WARN)
		return archive_fail(out, name, err);
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

int image_unpack_tar(int fd, const char *dest, image_unpack_progress_fn progress, void *data,
		     struct berth_error *err)
{
	_cleanup_(archive_readp) struct archive *in = archive_read_new();
	_cleanup_(archive_writep) struct archive *out = archive_write_disk_new();
	struct archive_entry *e;
	struct stat st;
	uint64_t total;
	int r;

	if (!in || !out)
		return -ENOMEM;
	if (fstat(fd, &st) < 0 || lseek(fd, 0, SEEK_SET) < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "Image file: %m");
	total = (uint64_t)st.st_size;
	archive_read_support_filter_all(in);
	archive_read_support_format_tar(in);
	archive_read_support_format_gnutar(in);
	/* Ownership stays as in the image (ARCHIVE_EXTRACT_OWNER, we run as root): an
	 * unprivileged container gets its ids shifted by an idmapped mount at start (the
	 * runtime's job), so nothing is chowned here and one image volume serves every
	 * instance whatever its id map. */
	archive_write_disk_set_options(
		out, ARCHIVE_EXTRACT_OWNER | ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_TIME |
			     ARCHIVE_EXTRACT_XATTR | ARCHIVE_EXTRACT_ACL |
			     ARCHIVE_EXTRACT_SECURE_SYMLINKS | ARCHIVE_EXTRACT_SECURE_NODOTDOT |
			     ARCHIVE_EXTRACT_UNLINK | ARCHIVE_EXTRACT_SPARSE);
	archive_write_disk_set_standard_lookup(out);
	if (archive_read_open_fd(in, fd, 1 << 16) != ARCHIVE_OK)
		return archive_fail(in, "the image", err);
	while ((r = archive_read_next_header(in, &e)) == ARCHIVE_OK) {
		r = extract_entry(in, out, e, dest, err);
		if (r < 0)
			return r;
		if (progress)
			progress((uint64_t)archive_filter_bytes(in, -1), total, data);
	}
	if (r != ARCHIVE_EOF)
		return archive_fail(in, "the image", err);
	if (archive_write_close(out) != ARCHIVE_OK)
		return archive_fail(out, "the image", err);
	return 0;
}
