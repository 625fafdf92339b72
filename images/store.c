/* images/store.c: image files on disk: streaming import (copy + SHA-256 + checks, then
 * named atomically), removal, and opening for export. */
#include "images/store.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "images/metadata.h"
#include "lib/json.h"
#include "lib/sha256.h"
#include "lib/util.h"

#define COPY_CHUNK (1u << 16)
#define MP_BUF (1u << 17)

static void md_freep(struct berth_sha256 **c)
{
	free(*c);
	*c = NULL;
}

void image_fingerprint_hex(const unsigned char digest[32], char *buf)
{
	for (size_t i = 0; i < 32; i++)
		sprintf(buf + 2 * i, "%02x", digest[i]);
}

int image_properties_decode(const char *query, json_t **ret, struct berth_error *err)
{
	json_auto_t *props = json_object();
	_cleanup_free_ char *copy = strdup(query);
	char *save = NULL;

	if (!props || !copy)
		return -ENOMEM;
	/* url.Values.Encode() writes spaces as '+'; a literal '+' arrives as %2B. */
	for (char *p = copy; *p; p++)
		if (*p == '+')
			*p = ' ';
	for (char *pair = strtok_r(copy, "&", &save); pair; pair = strtok_r(NULL, "&", &save)) {
		char *eq = strchr(pair, '=');
		_cleanup_free_ char *k = NULL, *v = NULL;
		int r = berth_url_decode(pair, eq ? (size_t)(eq - pair) : strlen(pair), &k);

		if (r >= 0)
			r = berth_url_decode(eq ? eq + 1 : "", eq ? strlen(eq + 1) : 0, &v);
		if (r < 0 || !*k)
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "Invalid X-LXD-properties header");
		json_object_set_new(props, k, json_string(v));
	}
	*ret = TAKE_PTR(props);
	return 0;
}

static int write_all(int fd, const void *buf, size_t len, struct berth_error *err)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return berth_error_set(err, -errno, BERTH_ERR_INTERNAL,
					       "Failed to write the image: %m");
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Where the bytes of one file go: the unnamed file and the running hash. */
struct sink {
	int fd;
	struct berth_sha256 *md;
	uint64_t size;
};

static int sink_write(struct sink *s, const void *buf, size_t len, struct berth_error *err)
{
	if (len == 0)
		return 0;
	berth_sha256_update(s->md, buf, len);
	s->size += len;
	return write_all(s->fd, buf, len, err);
}

static int copy_all(int in, struct sink *s, struct berth_error *err)
{
	_cleanup_free_ char *buf = malloc(COPY_CHUNK);

	if (!buf)
		return -ENOMEM;
	for (;;) {
		ssize_t n = read(in, buf, COPY_CHUNK);
		int r;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return berth_error_set(err, -errno, BERTH_ERR_INTERNAL,
					       "Failed to read the upload: %m");
		if (n == 0)
			return 0;
		r = sink_write(s, buf, (size_t)n, err);
		if (r < 0)
			return r;
	}
}

/* ---- multipart/form-data, streamed ---- */

struct mp {
	int fd;
	char *buf; /* MP_BUF bytes */
	size_t start, end;
	bool eof;
	char delim[80]; /* "\r\n--" boundary */
	size_t delim_len;
};

static int mp_fill(struct mp *m, struct berth_error *err)
{
	ssize_t n;

	if (m->start > 0) {
		memmove(m->buf, m->buf + m->start, m->end - m->start);
		m->end -= m->start;
		m->start = 0;
	}
	if (m->eof || m->end == MP_BUF)
		return 0;
	do
		n = read(m->fd, m->buf + m->end, MP_BUF - m->end);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL,
				       "Failed to read the upload: %m");
	if (n == 0)
		m->eof = true;
	m->end += (size_t)n;
	return (int)(n > 0);
}

static int mp_bad(struct berth_error *err, const char *why)
{
	return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST, "Invalid multipart image: %s",
			       why);
}

/* Find `needle` in the buffered bytes, reading more as needed, without passing more than
 * `limit` bytes. Returns its offset from m->start, or -ENOENT. */
static int mp_find(struct mp *m, const char *needle, size_t len, size_t limit, size_t *ret,
		   struct berth_error *err)
{
	for (;;) {
		char *hit = memmem(m->buf + m->start, m->end - m->start, needle, len);
		int r;

		if (hit) {
			*ret = (size_t)(hit - (m->buf + m->start));
			return 0;
		}
		if (m->end - m->start > limit)
			return -ENOENT;
		r = mp_fill(m, err);
		if (r < 0)
			return r;
		if (r == 0)
			return -ENOENT;
	}
}

/* Stream the current part's data into `s` up to the next delimiter, and consume it. */
static int mp_part_data(struct mp *m, struct sink *s, struct berth_error *err)
{
	for (;;) {
		size_t avail = m->end - m->start;
		char *hit = memmem(m->buf + m->start, avail, m->delim, m->delim_len);
		size_t n;
		int r;

		if (hit) {
			n = (size_t)(hit - (m->buf + m->start));
			r = s ? sink_write(s, m->buf + m->start, n, err) : 0;
			m->start += n + m->delim_len;
			return r;
		}
		/* Keep a tail that could be the start of the delimiter. */
		n = avail >= m->delim_len ? avail - (m->delim_len - 1) : 0;
		r = s ? sink_write(s, m->buf + m->start, n, err) : 0;
		if (r < 0)
			return r;
		m->start += n;
		r = mp_fill(m, err);
		if (r < 0)
			return r;
		if (r == 0 && m->eof)
			return mp_bad(err, "the upload ended inside a part");
	}
}

/* The value of name="..." in a Content-Disposition header block. */
static int mp_part_name(const char *headers, size_t len, char *name, size_t name_size)
{
	const char *p = headers, *end = headers + len;

	while (p < end) {
		const char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);
		const char *q;

		if (!eol)
			eol = end;
		if ((size_t)(eol - p) > 20 && strncasecmp(p, "Content-Disposition:", 20) == 0) {
			for (q = p; q + 6 <= eol; q++)
				if (strncmp(q, "name=\"", 6) == 0 &&
				    (q == p || q[-1] == ' ' || q[-1] == ';')) {
					const char *v = q + 6;
					const char *close = memchr(v, '"', (size_t)(eol - v));
					if (!close || (size_t)(close - v) >= name_size)
						return -EINVAL;
					memcpy(name, v, (size_t)(close - v));
					name[close - v] = '\0';
					return 0;
				}
		}
		p = eol + 2;
	}
	return -EINVAL;
}

static int mp_boundary(const char *content_type, struct mp *m, struct berth_error *err)
{
	const char *b = strstr(content_type, "boundary=");
	size_t len;

	if (!b)
		return mp_bad(err, "no boundary");
	b += strlen("boundary=");
	if (*b == '"')
		b++;
	len = strcspn(b, "\";");
	if (len == 0 || len > 70)
		return mp_bad(err, "bad boundary");
	m->delim_len = (size_t)snprintf(m->delim, sizeof(m->delim), "\r\n--%.*s", (int)len, b);
	return 0;
}

/* Parts "metadata" then "rootfs" (or "rootfs.img"), each into its sink. */
static int mp_split(int fd, const char *content_type, struct sink *meta, struct sink *rootfs,
		    bool *ret_vm, struct berth_error *err)
{
	_cleanup_free_ char *buf = malloc(MP_BUF);
	struct mp m = {.fd = fd};
	int n_parts = 0;
	size_t off = 0;
	int r;

	if (!buf)
		return -ENOMEM;
	m.buf = buf;
	r = mp_boundary(content_type, &m, err);
	if (r < 0)
		return r;
	/* The first delimiter has no leading CRLF; skip any preamble. */
	r = mp_find(&m, m.delim + 2, m.delim_len - 2, 4096, &off, err);
	if (r < 0)
		return r == -ENOENT ? mp_bad(err, "no first boundary") : r;
	m.start += off + m.delim_len - 2;
	for (;;) {
		char name[64];
		struct sink *s;

		while (m.end - m.start < 2 && !m.eof)
			if ((r = mp_fill(&m, err)) < 0)
				return r;
		if (m.end - m.start >= 2 && strneq(m.buf + m.start, "--", 2))
			break;
		if (m.end - m.start < 2 || !strneq(m.buf + m.start, "\r\n", 2))
			return mp_bad(err, "truncated");
		m.start += 2;
		r = mp_find(&m, "\r\n\r\n", 4, 16384, &off, err);
		if (r < 0)
			return r == -ENOENT ? mp_bad(err, "bad part headers") : r;
		if (mp_part_name(m.buf + m.start, off + 2, name, sizeof(name)) < 0)
			return mp_bad(err, "a part has no name");
		m.start += off + 4;
		if (n_parts == 0 && streq(name, "metadata"))
			s = meta;
		else if (n_parts == 1 && (streq(name, "rootfs") || streq(name, "rootfs.img")))
			s = rootfs, *ret_vm = streq(name, "rootfs.img");
		else
			return mp_bad(err, "expected the parts \"metadata\" then \"rootfs\"");
		r = mp_part_data(&m, s, err);
		if (r < 0)
			return r;
		n_parts++;
	}
	return n_parts == 2 ? 0 : mp_bad(err, "a part is missing");
}

/* ---- import ---- */

struct import {
	const char *dir;
	struct sink meta, rootfs;
	bool split;
	bool vm; /* the rootfs part was "rootfs.img": a virtual-machine image */
	char fp[IMAGE_FINGERPRINT_LEN + 1];
	struct image_metadata md;
	enum image_file_kind rootfs_kind;
	bool named_meta, named_rootfs; /* this import created the names */
};

static void import_release(struct import *im)
{
	berth_closep(&im->meta.fd);
	berth_closep(&im->rootfs.fd);
	md_freep(&im->meta.md);
	image_metadata_release(&im->md);
}

static int tmpfile_open(const char *dir, int *ret, struct berth_error *err)
{
	int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);

	if (fd < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL,
				       "Failed to create a file in %s: %m", dir);
	*ret = fd;
	return 0;
}

/* Give unnamed file `fd` the name dir/name. *ret_named: false when the name existed
 * (then the existing file, with the same content, stays). */
static int name_file(int fd, const char *dir, const char *name, bool *ret_named,
		     struct berth_error *err)
{
	char proc[64];
	_cleanup_free_ char *path = berth_strdup_printf("%s/%s", dir, name);

	if (!path)
		return -ENOMEM;
	if (fsync(fd) < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "fsync: %m");
	if (fchmod(fd, 0600) < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "fchmod: %m");
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	if (linkat(AT_FDCWD, proc, AT_FDCWD, path, AT_SYMLINK_FOLLOW) < 0) {
		if (errno == EEXIST) {
			*ret_named = false;
			return 0;
		}
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL,
				       "Failed to store the image as %s: %m", path);
	}
	*ret_named = true;
	return 0;
}

/* name_file(), and when the file cannot be linked there (an upload spooled elsewhere),
 * a copy of it that can. */
static int name_or_copy(int *fd, const char *dir, const char *name, bool *ret_named,
			struct berth_error *err)
{
	_cleanup_free_ char *buf = NULL;
	_cleanup_close_ int copy = -EBADF;
	off_t off = 0;
	int r = name_file(*fd, dir, name, ret_named, err);

	if (r != -EXDEV && r != -ENOENT && r != -EPERM && r != -EINVAL)
		return r;
	buf = malloc(COPY_CHUNK);
	if (!buf)
		return -ENOMEM;
	r = tmpfile_open(dir, &copy, err);
	if (r < 0)
		return r;
	for (;;) {
		ssize_t n = pread(*fd, buf, COPY_CHUNK, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "read: %m");
		if (n == 0)
			break;
		r = write_all(copy, buf, (size_t)n, err);
		if (r < 0)
			return r;
		off += n;
	}
	berth_closep(fd);
	*fd = TAKE_FD(copy);
	return name_file(*fd, dir, name, ret_named, err);
}

static void unname_files(struct import *im)
{
	char path[4096];

	if (im->named_meta) {
		snprintf(path, sizeof(path), "%s/%s", im->dir, im->fp);
		unlink(path);
	}
	if (im->named_rootfs) {
		snprintf(path, sizeof(path), "%s/%s.rootfs", im->dir, im->fp);
		unlink(path);
	}
}

/* A file that is already one of our own on this filesystem (the spooled upload, a
 * download into the images directory) is only hashed and later named as it is; anything
 * else (a memfd, another filesystem) is copied into the sink's unnamed file here. */
static int receive_file(struct import *im, int in, struct sink *s, struct berth_error *err)
{
	_cleanup_free_ char *buf = malloc(COPY_CHUNK);
	struct stat in_st, dir_st;

	if (!buf)
		return -ENOMEM;
	if (fstat(in, &in_st) < 0 || stat(im->dir, &dir_st) < 0 || !S_ISREG(in_st.st_mode) ||
	    in_st.st_dev != dir_st.st_dev || in_st.st_nlink != 0)
		return copy_all(in, s, err);
	for (;;) {
		ssize_t n = read(in, buf, COPY_CHUNK);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return berth_error_set(err, -errno, BERTH_ERR_INTERNAL,
					       "Failed to read the upload: %m");
		if (n == 0)
			break;
		berth_sha256_update(s->md, buf, (size_t)n);
		s->size += (uint64_t)n;
	}
	berth_closep(&s->fd);
	s->fd = fcntl(in, F_DUPFD_CLOEXEC, 3);
	if (s->fd < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "dup: %m");
	return 0;
}

static int import_receive(struct import *im, const struct image_upload *up, struct berth_error *err)
{
	unsigned char digest[BERTH_SHA256_LEN];
	int r;

	im->meta.md = malloc(sizeof(*im->meta.md));
	if (!im->meta.md)
		return -ENOMEM;
	berth_sha256_init(im->meta.md);
	r = tmpfile_open(im->dir, &im->meta.fd, err);
	if (r < 0)
		return r;
	im->split = up->content_type && berth_startswith(up->content_type, "multipart/");
	if (up->two_files) {
		/* Two files, hashed in order: metadata, then rootfs. */
		im->split = true;
		im->vm = up->vm;
		im->rootfs.md = im->meta.md;
		r = tmpfile_open(im->dir, &im->rootfs.fd, err);
		if (r >= 0)
			r = receive_file(im, up->fd, &im->meta, err);
		if (r >= 0)
			r = receive_file(im, up->rootfs_fd, &im->rootfs, err);
	} else if (im->split) {
		/* One hash over both parts, in order. */
		im->rootfs.md = im->meta.md;
		r = tmpfile_open(im->dir, &im->rootfs.fd, err);
		if (r >= 0)
			r = mp_split(up->fd, up->content_type, &im->meta, &im->rootfs, &im->vm,
				     err);
	} else {
		r = receive_file(im, up->fd, &im->meta, err);
	}
	if (r < 0)
		return r;
	berth_sha256_final(im->meta.md, digest);
	image_fingerprint_hex(digest, im->fp);
	if (up->fingerprint && *up->fingerprint && !streq(up->fingerprint, im->fp))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Fingerprint mismatch: the upload is %s, expected %s",
				       im->fp, up->fingerprint);
	return 0;
}

static int import_check(struct import *im, struct berth_error *err)
{
	int r = image_tar_inspect(im->meta.fd, true, &im->md, err);

	if (r < 0)
		return r;
	if (!im->split) {
		if (!im->md.has_rootfs)
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "The image tarball has no rootfs/");
		return 0;
	}
	r = image_file_kind(im->rootfs.fd, &im->rootfs_kind, err);
	if (r < 0 || im->rootfs_kind == IMAGE_FILE_SQUASHFS || im->vm)
		return r;
	return image_tar_inspect(im->rootfs.fd, false, NULL, err);
}

static int import_object(struct import *im, const struct image_upload *up, json_t **ret)
{
	char created[BERTH_RFC3339_MAX];
	json_auto_t *img = NULL;
	json_t *props;
	const char *key;
	json_t *v;

	if (im->md.creation_date > 0) {
		struct timespec ts = {.tv_sec = (time_t)im->md.creation_date};
		berth_time_rfc3339(&ts, created);
	} else {
		berth_now_rfc3339(created);
	}
	props = berth_json_object_or_empty(im->md.metadata, "properties");
	img = json_pack("{s:s, s:s, s:I, s:b, s:b, s:b, s:s, s:s, s:s, s:o}", "fingerprint", im->fp,
			"filename", up->filename ? up->filename : "", "size",
			(json_int_t)(im->meta.size + im->rootfs.size), "public", up->public_,
			"auto_update", 0, "cached", 0, "architecture", im->md.architecture, "type",
			im->vm ? "virtual-machine" : "container", "created_at", created,
			"properties", props);
	if (!img)
		return -ENOMEM;
	json_object_foreach((json_t *)up->properties, key, v)
		json_object_set(props, key, v);
	*ret = TAKE_PTR(img);
	return 0;
}

int image_store_import(const char *dir, const struct image_upload *up, image_commit_fn commit,
		       void *data, struct berth_error *err)
{
	struct import im = {.dir = dir, .meta.fd = -EBADF, .rootfs.fd = -EBADF};
	json_auto_t *img = NULL;
	_cleanup_free_ char *rootfs_name = NULL;
	int r;

	r = berth_mkdir_p(dir, 0700);
	if (r < 0) {
		import_release(&im);
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "Failed to create %s", dir);
	}
	r = import_receive(&im, up, err);
	if (r >= 0)
		r = import_check(&im, err);
	if (r >= 0)
		r = import_object(&im, up, &img);
	if (r >= 0 && im.split) {
		rootfs_name = berth_strdup_printf("%s.rootfs", im.fp);
		r = rootfs_name ? name_file(im.rootfs.fd, dir, rootfs_name, &im.named_rootfs, err)
				: -ENOMEM;
	}
	if (r >= 0)
		r = name_or_copy(&im.meta.fd, dir, im.fp, &im.named_meta, err);
	if (r >= 0)
		berth_test_pause("image-import-after-file");
	if (r >= 0)
		r = commit(img, data, err);
	if (r < 0)
		unname_files(&im);
	import_release(&im);
	return r;
}

int image_store_remove(const char *dir, const char *fingerprint, struct berth_error *err)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s/%s.rootfs", dir, fingerprint);
	if (unlink(path) < 0 && errno != ENOENT)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "Failed to remove %s: %m",
				       path);
	snprintf(path, sizeof(path), "%s/%s", dir, fingerprint);
	if (unlink(path) < 0 && errno != ENOENT)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "Failed to remove %s: %m",
				       path);
	return 0;
}

static bool is_fingerprint(const char *s, size_t len)
{
	if (len != IMAGE_FINGERPRINT_LEN)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

static void closedirp(DIR **d)
{
	if (*d)
		closedir(*d);
}

int image_store_reconcile(const char *dir, image_known_fn known, void *data,
			  struct berth_error *err)
{
	_cleanup_(closedirp) DIR *d = opendir(dir);
	struct dirent *e;
	int removed = 0;

	if (!d)
		return errno == ENOENT ? 0
				       : berth_error_set(err, -errno, BERTH_ERR_INTERNAL,
							 "Cannot open %s: %m", dir);
	while ((e = readdir(d))) {
		size_t len = strcspn(e->d_name, ".");
		char fp[IMAGE_FINGERPRINT_LEN + 1];
		bool is_known = true;

		if (!is_fingerprint(e->d_name, len) ||
		    !(e->d_name[len] == '\0' || streq(e->d_name + len, ".rootfs")))
			continue;
		memcpy(fp, e->d_name, len);
		fp[len] = '\0';
		if (known(fp, &is_known, data) < 0 || is_known)
			continue;
		if (unlinkat(dirfd(d), e->d_name, 0) == 0)
			removed++;
	}
	return removed;
}

int image_store_open(const char *dir, const char *fingerprint, int *ret_meta, int *ret_rootfs,
		     struct berth_error *err)
{
	_cleanup_close_ int meta = -EBADF;
	char path[4096];
	int rootfs;

	snprintf(path, sizeof(path), "%s/%s", dir, fingerprint);
	meta = open(path, O_RDONLY | O_CLOEXEC);
	if (meta < 0)
		return berth_error_set(err, -errno,
				       errno == ENOENT ? BERTH_ERR_NOT_FOUND : BERTH_ERR_INTERNAL,
				       "Failed to open the image file: %m");
	snprintf(path, sizeof(path), "%s/%s.rootfs", dir, fingerprint);
	rootfs = open(path, O_RDONLY | O_CLOEXEC);
	if (rootfs < 0 && errno != ENOENT)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL,
				       "Failed to open the image rootfs: %m");
	*ret_meta = TAKE_FD(meta);
	*ret_rootfs = rootfs < 0 ? -EBADF : rootfs;
	return 0;
}
