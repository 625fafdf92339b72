/* images/metadata.c: reading image tarballs in memory (libarchive): metadata.yaml,
 * and the file kind by magic. */
#include "images/metadata.h"

#include <archive.h>
#include <archive_entry.h>
#include <string.h>
#include <unistd.h>

#include "images/archive_load.h"
#include "lib/json.h"
#include "lib/util.h"
#include "lib/yaml.h"

static void archive_freep(struct archive **a)
{
	if (*a)
		archive_read_free(*a);
}
#define _cleanup_archive_ _cleanup_(archive_freep)

void image_metadata_release(struct image_metadata *m)
{
	if (!m)
		return;
	json_decref(m->metadata);
	free(m->architecture);
	*m = (struct image_metadata){0};
}

int image_file_kind(int fd, enum image_file_kind *ret, struct berth_error *err)
{
	unsigned char magic[4];
	ssize_t n = pread(fd, magic, sizeof(magic), 0);

	if (n < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL,
				       "Failed to read the image: %m");
	*ret = n == 4 && memcmp(magic, "hsqs", 4) == 0 ? IMAGE_FILE_SQUASHFS : IMAGE_FILE_TAR;
	return 0;
}

const char *image_file_suffix(int fd)
{
	static const struct {
		const char *magic;
		size_t len;
		const char *suffix;
	} table[] = {
		{"\x1f\x8b", 2, ".tar.gz"},
		{"\xfd"
		 "7zXZ",
		 5, ".tar.xz"},
		{"\x28\xb5\x2f\xfd", 4, ".tar.zst"},
		{"BZh", 3, ".tar.bz2"},
		{"hsqs", 4, ".squashfs"},
	};
	unsigned char buf[512];
	ssize_t n = pread(fd, buf, sizeof(buf), 0);

	if (n <= 0)
		return "";
	for (size_t i = 0; i < ARRAY_SIZE(table); i++)
		if ((size_t)n >= table[i].len && memcmp(buf, table[i].magic, table[i].len) == 0)
			return table[i].suffix;
	if (n >= 262 && memcmp(buf + 257, "ustar", 5) == 0)
		return ".tar";
	return "";
}

/* LXD's architecture names, with the Debian aliases image builders use. */
static const char *arch_normalise(const char *a)
{
	static const char *const table[][2] = {
		{"x86_64", "x86_64"},	{"amd64", "x86_64"}, {"aarch64", "aarch64"},
		{"arm64", "aarch64"},	{"i686", "i686"},    {"i386", "i686"},
		{"armv7l", "armv7l"},	{"armhf", "armv7l"}, {"ppc64le", "ppc64le"},
		{"ppc64el", "ppc64le"}, {"s390x", "s390x"},  {"riscv64", "riscv64"},
	};

	for (size_t i = 0; i < ARRAY_SIZE(table); i++)
		if (streq(a, table[i][0]))
			return table[i][1];
	return NULL;
}

/* YAML scalars that parsed as numbers or booleans become strings, as LXD's map[string]string
 * would read them. -EINVAL for nested values. */
static int properties_stringify(json_t *props, struct berth_error *err)
{
	const char *key;
	json_t *v;

	json_object_foreach(props, key, v) {
		char buf[64];

		if (json_is_string(v))
			continue;
		if (json_is_integer(v))
			snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		else if (json_is_boolean(v))
			snprintf(buf, sizeof(buf), "%s", json_is_true(v) ? "true" : "false");
		else if (json_is_null(v))
			buf[0] = '\0';
		else
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "metadata.yaml: property \"%s\" is not a string",
					       key);
		json_object_set_new(props, key, json_string(buf));
	}
	return 0;
}

int image_metadata_parse(const char *yaml, size_t len, struct image_metadata *ret,
			 struct berth_error *err)
{
	json_auto_t *meta = NULL;
	json_t *date, *props;
	const char *arch, *norm;
	int r = berth_yaml_parse(yaml, len, &meta, err);

	if (r < 0)
		return berth_error_wrap(err, r, "metadata.yaml");
	if (!json_is_object(meta))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "metadata.yaml is not a mapping");
	arch = berth_json_string(meta, "architecture");
	if (!arch || !*arch)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "metadata.yaml has no architecture");
	norm = arch_normalise(arch);
	if (!norm)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "metadata.yaml: unknown architecture \"%s\"", arch);
	date = json_object_get(meta, "creation_date");
	if (date && !json_is_integer(date))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "metadata.yaml: creation_date is not an integer");
	props = json_object_get(meta, "properties");
	if (props && !json_is_null(props)) {
		if (!json_is_object(props))
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "metadata.yaml: properties is not a mapping");
		r = properties_stringify(props, err);
		if (r < 0)
			return r;
	}
	ret->architecture = strdup(norm);
	if (!ret->architecture)
		return -ENOMEM;
	ret->creation_date = date ? json_integer_value(date) : 0;
	json_decref(ret->metadata);
	ret->metadata = TAKE_PTR(meta);
	return 0;
}

/* "./a/b" -> "a/b"; "./" and "." -> "". */
static const char *path_strip(const char *p)
{
	while (p[0] == '.' && p[1] == '/')
		for (p += 2; *p == '/'; p++)
			;
	return streq(p, ".") ? "" : p;
}

/* Read the current entry's data (at most `max` bytes) into a new NUL-terminated buffer. */
static int entry_read(struct archive *a, struct archive_entry *e, const char *what, size_t max,
		      char **ret, size_t *ret_len, struct berth_error *err)
{
	int64_t size = archive_entry_size(e);
	_cleanup_free_ char *buf = NULL;
	size_t len = 0;

	if (size < 0 || (uint64_t)size > max)
		return berth_error_set(err, -EFBIG, BERTH_ERR_BAD_REQUEST, "%s is too large", what);
	buf = malloc((size_t)size + 1);
	if (!buf)
		return -ENOMEM;
	while (len < (size_t)size) {
		la_ssize_t n = archive_read_data(a, buf + len, (size_t)size - len);
		if (n < 0)
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "Failed to read %s: %s", what,
					       archive_error_string(a));
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	*ret = TAKE_PTR(buf);
	*ret_len = len;
	return 0;
}

static int collect_entry(struct archive *a, struct archive_entry *e, const char *path,
			 struct image_metadata *m, struct berth_error *err)
{
	_cleanup_free_ char *buf = NULL;
	size_t len = 0;
	int r;

	if (berth_startswith(path, "rootfs/") || streq(path, "rootfs"))
		m->has_rootfs = true;
	if (archive_entry_filetype(e) != AE_IFREG || !streq(path, "metadata.yaml") || m->metadata)
		return 0;
	r = entry_read(a, e, "metadata.yaml", IMAGE_METADATA_MAX, &buf, &len, err);
	return r < 0 ? r : image_metadata_parse(buf, len, m, err);
}

/* The next header; a warning (a pax name libarchive could not convert to the locale: it
 * keeps the bytes) is no reason to stop. */
static int next_header(struct archive *a, struct archive_entry **e, struct berth_error *err)
{
	int r = archive_read_next_header(a, e);

	if (r == ARCHIVE_OK || r == ARCHIVE_WARN || r == ARCHIVE_EOF)
		return r == ARCHIVE_EOF ? 0 : 1;
	return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST, "Invalid image tarball: %s",
			       archive_error_string(a) ?: "unreadable");
}

/* Read headers until metadata.yaml is parsed and rootfs/ seen (a unified image's usual
 * order: both come first), or to the end. The rest of the tarball is not decompressed:
 * the entries are checked as they are unpacked (images/unpack.c). */
static int inspect(struct archive *a, struct image_metadata *m, struct berth_error *err)
{
	struct archive_entry *e;
	int r;

	while (!(m->metadata && m->has_rootfs)) {
		const char *name;

		r = next_header(a, &e, err);
		if (r <= 0)
			return r;
		name = archive_entry_pathname(e);
		r = collect_entry(a, e, name ? path_strip(name) : "", m, err);
		if (r < 0)
			return r;
	}
	return 0;
}

int image_tar_inspect(int fd, bool want_metadata, struct image_metadata *ret,
		      struct berth_error *err)
{
	_cleanup_archive_ struct archive *a = archive_read_new();
	struct image_metadata m = {0};
	struct archive_entry *e;
	int r;

	if (!a)
		return image_archive_fail(err);
	if (lseek(fd, 0, SEEK_SET) < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "lseek: %m");
	archive_read_support_filter_gzip(a);
	archive_read_support_filter_xz(a);
	archive_read_support_filter_zstd(a);
	archive_read_support_filter_bzip2(a);
	archive_read_support_format_tar(a);
	if (archive_read_open_fd(a, fd, 1 << 16) != ARCHIVE_OK)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Invalid image tarball: %s",
				       archive_error_string(a) ?: "unreadable");
	if (!want_metadata) /* a split image's rootfs: a tarball, by its first header */
		return next_header(a, &e, err) < 0 ? -EINVAL : 0;
	r = inspect(a, &m, err);
	if (r >= 0 && !m.metadata)
		r = berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				    "The image tarball has no metadata.yaml");
	if (r < 0) {
		image_metadata_release(&m);
		return r;
	}
	*ret = m;
	return 0;
}
