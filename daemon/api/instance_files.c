/* daemon/api/instance_files.c: /1.0/instances/{name}/files?path=: GET (a file's bytes, a
 * directory's entry names, a symlink's target), HEAD, POST (create or write a file, a
 * directory, a symlink; overwrite or append) and DELETE, with LXD 5.0.2's X-LXD-* headers.
 *
 * Everything happens from the host, on running and stopped containers alike (see
 * doc/runtime.md, "Files"). The instance's root directory is opened once and every path
 * below it is resolved by the kernel with openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS):
 * "..", absolute symlinks and symlinks that climb out all stay inside the rootfs, so the
 * host is never read or written whatever the container put on its disk. Only the last
 * component is handled here (lstat'd, opened with O_NOFOLLOW, or followed by hand, again
 * through openat2).
 *
 * Ids: on an idmapped or privileged rootfs the ids on disk are the container's; on a
 * shifted one (<volume>/berth-shift "UIDBASE GIDBASE COUNT") the host ids are the
 * container's plus the base. Ids outside the map show as 65534 (nobody), as inside.
 *
 * Writes never leave a half-written file under the target's name: the content goes to an
 * unnamed (O_TMPFILE) or hidden temp file in the same directory, which is renamed over the
 * target once complete. An append clones (or copies) the old content into the temp file
 * first. As in 5.0.2, uid, gid and mode apply only to what the request creates: an
 * overwritten or appended file keeps its owner and mode. */
#define LOG_CATEGORY "files"
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>

#include "daemon/api/api.h"
#include "daemon/instance/vm_driver.h"
#include "daemon/instance/volume.h"
#include "daemon/db/db.h"
#include "daemon/vm/vmmon_client.h"
#include "lib/json.h"
#include "lib/log.h"
#include "lib/utf8.h"
#include "lib/util.h"

#define FILES_MAX_SYMLINKS 40
#define FILES_NOBODY 65534
#define FILES_COPY_CHUNK (256 * 1024)
#define FILES_VM_TIMEOUT_MS (VMMON_FILE_TIMEOUT_MS + VMMON_FILE_MARGIN_MS)

/* Where an instance's files are and how its ids map. */
struct files_root {
	int fd;		  /* owned: O_PATH of the rootfs */
	bool shifted;	  /* berth-shift present */
	uint64_t uidbase; /* valid when shifted */
	uint64_t gidbase;
	uint64_t count;
};

static void files_root_release(struct files_root *root)
{
	if (root->fd >= 0)
		close(root->fd);
	root->fd = -EBADF;
}

/* Parse <volume>/berth-shift: "UIDBASE GIDBASE COUNT". Absent: not shifted. */
static int read_shift(const char *volume, struct files_root *root)
{
	_cleanup_free_ char *path = berth_strdup_printf("%s/berth-shift", volume);
	_cleanup_free_ char *buf = NULL;
	unsigned long long u, g, c;
	size_t len;
	int r;

	if (!path)
		return -ENOMEM;
	r = berth_read_file(path, 256, &buf, &len);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	if (sscanf(buf, "%llu %llu %llu", &u, &g, &c) != 3 || c == 0)
		return -EINVAL;
	root->shifted = true;
	root->uidbase = u;
	root->gidbase = g;
	root->count = c;
	return 0;
}

static int files_root_open(struct berth_daemon *d, const char *project, const char *name,
			   struct files_root *ret, struct berth_error *err)
{
	_cleanup_(instance_volume_release) struct instance_volume v = {0};
	_cleanup_free_ char *vpath = NULL, *rootfs = NULL;
	json_auto_t *inst = NULL;
	struct files_root root = {.fd = -EBADF};
	int r;

	r = db_instance_get(d->db, project, name, &inst, err);
	if (r < 0)
		return r;
	r = instance_volume_open(d, project, name, &v, err);
	if (r < 0)
		return r;
	if (!v.pool)
		return berth_error_set(err, -ENOENT, BERTH_ERR_BAD_REQUEST,
				       "Instance \"%s\" has no root filesystem", name);
	r = storage_volume_path(v.pool, &v.vol, NULL, &vpath);
	if (r < 0)
		return r;
	rootfs = berth_strdup_printf("%s/rootfs", vpath);
	if (!rootfs)
		return -ENOMEM;
	root.fd = open(rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (root.fd < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL,
				       "Cannot open the root filesystem of \"%s\": %m", name);
	r = read_shift(vpath, &root);
	if (r < 0) {
		files_root_release(&root);
		return berth_error_set(err, r, BERTH_ERR_INTERNAL,
				       "Bad berth-shift marker in the volume of \"%s\"", name);
	}
	*ret = root;
	return 0;
}

static uint64_t id_to_container(const struct files_root *root, uint64_t id, bool gid)
{
	uint64_t base = gid ? root->gidbase : root->uidbase;

	if (!root->shifted)
		return id;
	if (id < base || id - base >= root->count)
		return FILES_NOBODY;
	return id - base;
}

/* -1 (leave as is) stays -1; other ids must be inside the map. */
static int id_to_host(const struct files_root *root, int64_t id, bool gid, int64_t *ret)
{
	uint64_t base = gid ? root->gidbase : root->uidbase;

	if (id < 0 || !root->shifted) {
		*ret = id;
		return 0;
	}
	if ((uint64_t)id >= root->count)
		return -ERANGE;
	*ret = (int64_t)(base + (uint64_t)id);
	return 0;
}

/* ---- paths ---- */

/* The lexically cleaned absolute form of `in`: no empty, "." or ".." components (".."
 * at the top stays at the top, as in the container). A new string. */
static char *clean_path(const char *in)
{
	size_t n = strlen(in);
	char *out = malloc(n + 2);
	size_t o = 0;
	const char *p = in;

	if (!out)
		return NULL;
	while (*p) {
		const char *e;
		size_t len;

		while (*p == '/')
			p++;
		if (!*p)
			break;
		e = strchrnul(p, '/');
		len = (size_t)(e - p);
		if (len == 1 && p[0] == '.') {
			/* nothing */
		} else if (len == 2 && p[0] == '.' && p[1] == '.') {
			while (o > 0 && out[o - 1] != '/')
				o--;
			if (o > 0)
				o--;
		} else {
			out[o++] = '/';
			memcpy(out + o, p, len);
			o += len;
		}
		p = e;
	}
	if (o == 0)
		out[o++] = '/';
	out[o] = '\0';
	return out;
}

static int openat2_in_root(int rootfd, const char *path, int flags)
{
	struct open_how how = {
		.flags = (uint64_t)(flags | O_CLOEXEC),
		.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
	};
	int fd;

	/* Relative to the root: "" would be refused, "." is the root itself. */
	while (*path == '/')
		path++;
	fd = (int)syscall(SYS_openat2, rootfd, *path ? path : ".", &how, sizeof(how));
	return fd < 0 ? -errno : fd;
}

/* A resolved location: the directory holding the last component (O_PATH) and that
 * component's name; name is NULL for the root itself (parent is then the root). */
struct files_loc {
	int parent; /* owned */
	char *name; /* owned or NULL */
	char *path; /* owned: cleaned container path of the location */
};

static void files_loc_release(struct files_loc *loc)
{
	if (loc->parent >= 0)
		close(loc->parent);
	free(loc->name);
	free(loc->path);
	*loc = (struct files_loc){.parent = -EBADF};
}

/* Resolve everything but the last component of `path` (cleaned) under the root. */
static int loc_open(int rootfd, const char *path, struct files_loc *ret)
{
	_cleanup_free_ char *clean = clean_path(path);
	_cleanup_free_ char *dir = NULL;
	const char *slash;
	int fd;

	if (!clean)
		return -ENOMEM;
	*ret = (struct files_loc){.parent = -EBADF};
	if (streq(clean, "/")) {
		fd = openat2_in_root(rootfd, "/", O_PATH | O_DIRECTORY);
		if (fd < 0)
			return fd;
		*ret = (struct files_loc){.parent = fd, .name = NULL, .path = TAKE_PTR(clean)};
		return 0;
	}
	slash = strrchr(clean, '/');
	dir = strndup(clean, (size_t)(slash - clean));
	if (!dir)
		return -ENOMEM;
	fd = openat2_in_root(rootfd, dir, O_PATH | O_DIRECTORY);
	if (fd < 0)
		return fd;
	ret->parent = fd;
	ret->name = strdup(slash + 1);
	ret->path = TAKE_PTR(clean);
	if (!ret->name) {
		files_loc_release(ret);
		return -ENOMEM;
	}
	return 0;
}

static int loc_lstat(const struct files_loc *loc, struct stat *st)
{
	int r = loc->name ? fstatat(loc->parent, loc->name, st, AT_SYMLINK_NOFOLLOW)
			  : fstat(loc->parent, st);
	return r < 0 ? -errno : 0;
}

/* The container path a symlink at `loc` points to, lexically (as 5.0.2's sftp RealPath:
 * a relative target is joined to the link's directory, then cleaned). */
static int loc_link_target(const struct files_loc *loc, char **ret_raw, char **ret_abs)
{
	char buf[PATH_MAX];
	ssize_t n = readlinkat(loc->parent, loc->name, buf, sizeof(buf) - 1);
	_cleanup_free_ char *joined = NULL, *raw = NULL;
	const char *slash;

	if (n < 0)
		return -errno;
	buf[n] = '\0';
	raw = strdup(buf);
	if (!raw)
		return -ENOMEM;
	if (buf[0] == '/') {
		joined = strdup(buf);
	} else {
		slash = strrchr(loc->path, '/');
		joined = berth_strdup_printf("%.*s/%s", (int)(slash - loc->path), loc->path, buf);
	}
	if (!joined)
		return -ENOMEM;
	*ret_abs = clean_path(joined);
	if (!*ret_abs)
		return -ENOMEM;
	if (ret_raw)
		*ret_raw = TAKE_PTR(raw);
	return 0;
}

/* Resolve `path` like loc_open, then follow symlinks in the last component (each hop
 * resolved in the root again) until it names something that is not a symlink, or
 * nothing. *ret_exists says which; *st is filled when it exists. */
static int loc_open_follow(int rootfd, const char *path, struct files_loc *ret, bool *ret_exists,
			   struct stat *st)
{
	_cleanup_free_ char *cur = strdup(path);
	int r;

	if (!cur)
		return -ENOMEM;
	for (int hops = 0;; hops++) {
		struct files_loc loc;
		char *next = NULL;

		r = loc_open(rootfd, cur, &loc);
		if (r < 0)
			return r;
		r = loc_lstat(&loc, st);
		if (r == -ENOENT || (r == 0 && !S_ISLNK(st->st_mode))) {
			*ret_exists = r == 0;
			*ret = loc;
			return 0;
		}
		if (r == 0 && hops >= FILES_MAX_SYMLINKS)
			r = -ELOOP;
		if (r == 0)
			r = loc_link_target(&loc, NULL, &next);
		files_loc_release(&loc);
		if (r < 0)
			return r;
		free(cur);
		cur = next;
	}
}

/* ---- errors ---- */

static int files_error(struct berth_error *err, int r, const char *what, const char *path)
{
	_cleanup_free_ char *quoted = NULL;
	int code;

	switch (r) {
	case -ENOENT:
		code = BERTH_ERR_NOT_FOUND;
		break;
	case -EACCES:
	case -EPERM:
	case -EROFS:
		code = BERTH_ERR_FORBIDDEN;
		break;
	case -EEXIST:
		code = BERTH_ERR_CONFLICT;
		break;
	case -ENOMEM:
	case -EIO:
		code = BERTH_ERR_INTERNAL;
		break;
	default:
		code = BERTH_ERR_BAD_REQUEST;
		break;
	}
	/* The path is any bytes, the message goes out as JSON: quoted (\xNN). */
	quoted = berth_utf8_quote(path);
	if (!quoted)
		return -ENOMEM;
	/* LXD says "Not Found" for a missing path; clients (and admins' scripts) look for it. */
	if (r == -ENOENT)
		return berth_error_set(err, r, code, "%s \"%s\": not found", what, quoted);
	return berth_error_set(err, r, code, "%s \"%s\": %s", what, quoted, strerror(-r));
}

/* ---- request parsing ---- */

struct files_request {
	struct files_root root;
	char *path; /* owned: ?path=, as given */
};

static void files_request_release(struct files_request *fr)
{
	files_root_release(&fr->root);
	free(fr->path);
}

/* The request's ?path= (new string in *ret). */
static int files_path_arg(struct api_request *req, char **ret, struct berth_error *err)
{
	_cleanup_free_ char *path = NULL;
	int r = berth_http_query_get(req->http->query, "path", &path);

	if (r == -ENOENT || (r == 0 && !*path))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Missing path argument");
	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_BAD_REQUEST, "Invalid query string");
	if (strlen(path) >= PATH_MAX)
		return berth_error_set(err, -ENAMETOOLONG, BERTH_ERR_BAD_REQUEST, "Path too long");
	*ret = TAKE_PTR(path);
	return 0;
}

static int files_request_open(struct api_request *req, struct files_request *ret,
			      struct berth_error *err)
{
	_cleanup_free_ char *path = NULL;
	int r;

	*ret = (struct files_request){.root = {.fd = -EBADF}};
	r = files_path_arg(req, &path, err);
	if (r < 0)
		return r;
	r = files_root_open(req->d, req->project, req->params[0], &ret->root, err);
	if (r < 0)
		return r;
	ret->path = TAKE_PTR(path);
	return 0;
}

static void file_event(struct api_request *req, const char *action, const char *path)
{
	_cleanup_free_ char *url = api_url("instances", req->params[0], req->project);
	/* JSON wants UTF-8: a path that is not goes out as LXD's would (U+FFFD). */
	_cleanup_free_ char *lossy = berth_utf8_valid(path) ? NULL : berth_utf8_lossy(path);

	events_lifecycle(req->d->events, req->project, action, url,
			 json_pack("{s:s}", "path", lossy ?: path));
}

/* ---- GET / HEAD ---- */

/* LXD's headers of a file's owner, mode, type and modification time (containers and VMs). */
static int stat_headers(struct api_response *resp, uint64_t uid, uint64_t gid, unsigned mode,
			struct timespec mtime, const char *type)
{
	char buf[64];
	int r;

	snprintf(buf, sizeof(buf), "%" PRIu64, uid);
	r = api_add_header(resp, "X-LXD-uid", buf);
	snprintf(buf, sizeof(buf), "%" PRIu64, gid);
	if (r >= 0)
		r = api_add_header(resp, "X-LXD-gid", buf);
	snprintf(buf, sizeof(buf), "%04o", mode & 07777);
	if (r >= 0)
		r = api_add_header(resp, "X-LXD-mode", buf);
	if (r >= 0)
		r = api_add_header(resp, "X-LXD-type", type);
	berth_time_rfc3339(&mtime, buf);
	if (r >= 0)
		r = api_add_header(resp, "X-LXD-modified", buf);
	return r;
}

static int add_stat_headers(struct api_response *resp, const struct files_root *root,
			    const struct stat *st, const char *type)
{
	return stat_headers(resp, id_to_container(root, st->st_uid, false),
			    id_to_container(root, st->st_gid, true), (unsigned)st->st_mode,
			    st->st_mtim, type);
}

static int get_directory(struct files_loc *loc, struct api_response *resp)
{
	json_t *list = json_array();
	DIR *dir;
	struct dirent *de;
	int fd = loc->name ? openat(loc->parent, loc->name,
				    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
			   : openat(loc->parent, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (!list) {
		if (fd >= 0)
			close(fd);
		return -ENOMEM;
	}
	if (fd < 0) {
		json_decref(list);
		return -errno;
	}
	dir = fdopendir(fd);
	if (!dir) {
		close(fd);
		json_decref(list);
		return -errno;
	}
	while ((de = readdir(dir))) {
		_cleanup_free_ char *lossy = NULL;

		if (streq(de->d_name, ".") || streq(de->d_name, ".."))
			continue;
		/* A name that is not UTF-8 is listed as LXD (Go's JSON) lists it, with
		 * U+FFFD for each bad byte, rather than left out. */
		if (!berth_utf8_valid(de->d_name))
			lossy = berth_utf8_lossy(de->d_name);
		json_array_append_new(list, json_string(lossy ?: de->d_name));
	}
	closedir(dir);
	return api_sync(resp, list);
}

static int get_file(struct api_request *req, struct api_response *resp, struct berth_error *err)
{
	_cleanup_(files_request_release) struct files_request fr = {.root = {.fd = -EBADF}};
	_cleanup_(files_loc_release) struct files_loc loc = {.parent = -EBADF};
	struct stat st;
	const char *type;
	int r = files_request_open(req, &fr, err);

	if (r < 0)
		return r;
	r = loc_open(fr.root.fd, fr.path, &loc);
	if (r >= 0)
		r = loc_lstat(&loc, &st);
	if (r < 0)
		return files_error(err, r, "Cannot read", fr.path);
	type = S_ISDIR(st.st_mode) ? "directory" : S_ISLNK(st.st_mode) ? "symlink" : "file";
	if (!S_ISDIR(st.st_mode) && !S_ISLNK(st.st_mode) && !S_ISREG(st.st_mode))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Cannot read \"%s\": not a regular file, directory or "
				       "symlink",
				       fr.path);
	r = add_stat_headers(resp, &fr.root, &st, type);
	if (r < 0)
		return r;
	if (S_ISDIR(st.st_mode)) {
		r = get_directory(&loc, resp);
		if (r < 0)
			return files_error(err, r, "Cannot list", fr.path);
	} else if (S_ISLNK(st.st_mode)) {
		char *target = NULL;

		r = loc_link_target(&loc, NULL, &target);
		if (r < 0)
			return files_error(err, r, "Cannot read the symlink", fr.path);
		resp->type = API_RAW;
		resp->content_type = "application/octet-stream";
		resp->raw_len = strlen(target);
		resp->raw = target;
	} else {
		int fd = openat(loc.parent, loc.name,
				O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
		struct stat st2;

		if (fd < 0)
			return files_error(err, -errno, "Cannot open", fr.path);
		/* It may have changed since the lstat: send what was opened. */
		if (fstat(fd, &st2) < 0 || !S_ISREG(st2.st_mode)) {
			close(fd);
			return files_error(err, -EINVAL, "Cannot open", fr.path);
		}
		resp->type = API_RAW;
		resp->content_type = "application/octet-stream";
		resp->disposition = berth_strdup_printf("inline;filename=%s",
							loc.name ? loc.name : "/");
		if (!resp->disposition) {
			close(fd);
			return -ENOMEM;
		}
		/* A file name is any bytes; a header line is not: CR and LF become spaces
		 * (as Go's net/http writes LXD's header), or a name would end the header. */
		for (char *c = resp->disposition; *c; c++)
			if (*c == '\r' || *c == '\n')
				*c = ' ';
		if (st2.st_size == 0) {
			close(fd); /* nothing to stream: an empty body */
		} else {
			r = api_add_part_fd(resp, fd, (uint64_t)st2.st_size);
			if (r < 0)
				return r;
		}
	}
	if (!streq(req->method, "HEAD"))
		file_event(req, "instance-file-retrieved", loc.path);
	return 0;
}

/* ---- POST ---- */

struct file_headers {
	int64_t uid, gid, mode;
	const char *type;  /* borrowed */
	const char *write; /* borrowed */
};

static int64_t parse_int_header(const char *v, int base)
{
	char *end;
	long long n;

	if (!v || !*v)
		return -1;
	errno = 0;
	n = strtoll(v, &end, base);
	if (errno || *end || n < 0 || n > UINT32_MAX)
		return -1;
	return n;
}

static void parse_file_headers(const struct berth_http_request *http, struct file_headers *h)
{
	const char *t, *w;

	h->uid = parse_int_header(berth_http_header_get(http->headers, http->n_headers,
							"X-LXD-uid"),
				  10);
	h->gid = parse_int_header(berth_http_header_get(http->headers, http->n_headers,
							"X-LXD-gid"),
				  10);
	/* "0644" is octal, "420" decimal (Go's ParseInt with base 0). */
	h->mode = parse_int_header(berth_http_header_get(http->headers, http->n_headers,
							 "X-LXD-mode"),
				   0);
	if (h->mode >= 0)
		h->mode &= 0777;
	t = berth_http_header_get(http->headers, http->n_headers, "X-LXD-type");
	w = berth_http_header_get(http->headers, http->n_headers, "X-LXD-write");
	h->type = t && *t ? t : "file";
	h->write = w && *w ? w : "overwrite";
}

static int random_suffix(char *buf, size_t n)
{
	static const char chars[] = "abcdefghijklmnopqrstuvwxyz0123456789";
	unsigned char rnd[16];

	if (n > sizeof(rnd) + 1)
		n = sizeof(rnd) + 1;
	if (getrandom(rnd, sizeof(rnd), 0) < (ssize_t)sizeof(rnd))
		return -EIO;
	for (size_t i = 0; i + 1 < n; i++)
		buf[i] = chars[rnd[i] % (sizeof(chars) - 1)];
	buf[n - 1] = '\0';
	return 0;
}

/* Copy `len` bytes of `in` (from its offset 0) to the end of `out`. */
static int copy_fd(int in, int out, uint64_t len)
{
	off_t off = 0;
	_cleanup_free_ char *buf = NULL;

	while ((uint64_t)off < len) {
		size_t want = len - (uint64_t)off > FILES_COPY_CHUNK
				      ? FILES_COPY_CHUNK
				      : (size_t)(len - (uint64_t)off);
		ssize_t n = sendfile(out, in, &off, want);

		if (n > 0)
			continue;
		if (n == 0)
			return -EIO; /* the source shrank */
		if (errno == EINTR)
			continue;
		if (errno != EINVAL && errno != ENOSYS)
			return -errno;
		/* No sendfile between these two: plain reads and writes. */
		buf = malloc(FILES_COPY_CHUNK);
		if (!buf)
			return -ENOMEM;
		while ((uint64_t)off < len) {
			ssize_t rd = pread(in, buf, FILES_COPY_CHUNK, off);
			if (rd < 0 && errno == EINTR)
				continue;
			if (rd <= 0)
				return rd < 0 ? -errno : -EIO;
			for (ssize_t done = 0; done < rd;) {
				ssize_t wr = write(out, buf + done, (size_t)(rd - done));
				if (wr < 0 && errno == EINTR)
					continue;
				if (wr < 0)
					return -errno;
				done += wr;
			}
			off += rd;
		}
	}
	return 0;
}

static int write_body(const struct berth_http_request *http, int out)
{
	if (http->body_fd >= 0)
		return copy_fd(http->body_fd, out, http->body_len);
	for (size_t done = 0; done < http->body_len;) {
		ssize_t wr = write(out, http->body + done, http->body_len - done);
		if (wr < 0 && errno == EINTR)
			continue;
		if (wr < 0)
			return -errno;
		done += (size_t)wr;
	}
	return 0;
}

/* Put the finished temp file `fd` in place as `loc`: an O_TMPFILE gets a hidden name
 * first (linkat), then renameat replaces the target in one step. */
static int install_temp(int fd, const char *tmpname, const struct files_loc *loc)
{
	char name[64];
	char sfx[12];
	int r;

	if (!tmpname) {
		r = random_suffix(sfx, sizeof(sfx));
		if (r < 0)
			return r;
		snprintf(name, sizeof(name), ".berth-file-%s", sfx);
		if (linkat(fd, "", loc->parent, name, AT_EMPTY_PATH) < 0)
			return -errno;
		tmpname = name;
	}
	if (renameat(loc->parent, tmpname, loc->parent, loc->name) < 0) {
		r = -errno;
		unlinkat(loc->parent, tmpname, 0);
		return r;
	}
	return 0;
}

static int post_regular(struct api_request *req, const struct files_root *root,
			struct files_loc *loc, bool exists, const struct stat *st,
			const struct file_headers *h)
{
	_cleanup_close_ int fd = -EBADF, dirfd = -EBADF;
	char tmpname[64] = "";
	bool named = false;
	int64_t uid, gid;
	int r;

	if (exists && S_ISDIR(st->st_mode))
		return -EISDIR;
	if (exists && !S_ISREG(st->st_mode))
		return -EINVAL;
	if (!loc->name)
		return -EISDIR;
	/* O_TMPFILE needs a real directory fd, not O_PATH. */
	dirfd = openat(loc->parent, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0)
		return -errno;
	fd = openat(dirfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
		char sfx[12];

		r = random_suffix(sfx, sizeof(sfx));
		if (r < 0)
			return r;
		snprintf(tmpname, sizeof(tmpname), ".berth-file-%s", sfx);
		fd = openat(dirfd, tmpname, O_CREAT | O_EXCL | O_RDWR | O_NOFOLLOW | O_CLOEXEC,
			    0600);
		named = fd >= 0;
	}
	if (fd < 0)
		return -errno;
	if (exists && streq(h->write, "append")) {
		_cleanup_close_ int old = openat(loc->parent, loc->name,
						 O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		struct stat ost;

		r = old < 0 ? -errno : fstat(old, &ost) < 0 ? -errno : 0;
		if (r >= 0 && ioctl(fd, FICLONE, old) < 0)
			r = copy_fd(old, fd, (uint64_t)ost.st_size);
		if (r >= 0 && lseek(fd, 0, SEEK_END) < 0)
			r = -errno;
		if (r < 0)
			goto fail;
	}
	r = write_body(req->http, fd);
	if (r < 0)
		goto fail;
	if (exists) {
		uid = st->st_uid;
		gid = st->st_gid;
	} else {
		r = id_to_host(root, h->uid >= 0 ? h->uid : 0, false, &uid);
		if (r >= 0)
			r = id_to_host(root, h->gid >= 0 ? h->gid : 0, true, &gid);
		if (r < 0)
			goto fail;
	}
	if (fchown(fd, (uid_t)uid, (gid_t)gid) < 0 || fchmod(fd, exists ? st->st_mode & 07777
								 : h->mode >= 0 ? (mode_t)h->mode
										: 0644) < 0) {
		r = -errno;
		goto fail;
	}
	r = install_temp(fd, named ? tmpname : NULL, loc);
	if (r < 0)
		return r;
	return 0;
fail:
	if (named)
		unlinkat(dirfd, tmpname, 0);
	return r;
}

static int read_small_body(const struct berth_http_request *http, char **ret)
{
	char *buf;

	if (http->body_len >= PATH_MAX)
		return -ENAMETOOLONG;
	buf = calloc(1, http->body_len + 1);
	if (!buf)
		return -ENOMEM;
	if (http->body_fd >= 0) {
		ssize_t n = pread(http->body_fd, buf, http->body_len, 0);
		if (n != (ssize_t)http->body_len) {
			free(buf);
			return n < 0 ? -errno : -EIO;
		}
	} else {
		memcpy(buf, http->body, http->body_len);
	}
	*ret = buf;
	return 0;
}

static int post_symlink(struct api_request *req, const struct files_root *root,
			struct files_loc *loc)
{
	_cleanup_free_ char *target = NULL, *cur = NULL, *abs = NULL;
	int64_t uid, gid;
	int r = read_small_body(req->http, &target);

	if (r < 0)
		return r;
	if (!*target || strlen(target) != req->http->body_len)
		return -EINVAL;
	if (!loc->name)
		return -EEXIST;
	/* Already there: nothing to do (5.0.2). */
	if (loc_link_target(loc, &cur, &abs) == 0 && streq(cur, target))
		return 0;
	if (symlinkat(target, loc->parent, loc->name) < 0)
		return -errno;
	r = id_to_host(root, 0, false, &uid);
	if (r >= 0)
		r = id_to_host(root, 0, true, &gid);
	if (r >= 0 && root->shifted &&
	    fchownat(loc->parent, loc->name, (uid_t)uid, (gid_t)gid, AT_SYMLINK_NOFOLLOW) < 0)
		r = -errno;
	if (r < 0)
		unlinkat(loc->parent, loc->name, 0);
	return r;
}

static int post_directory(const struct files_root *root, struct files_loc *loc, bool exists,
			  const struct file_headers *h)
{
	_cleanup_close_ int fd = -EBADF;
	int64_t uid, gid;
	int r;

	if (exists)
		return 0;
	r = id_to_host(root, h->uid >= 0 ? h->uid : 0, false, &uid);
	if (r >= 0)
		r = id_to_host(root, h->gid >= 0 ? h->gid : 0, true, &gid);
	if (r < 0)
		return r;
	if (mkdirat(loc->parent, loc->name, 0700) < 0)
		return -errno;
	fd = openat(loc->parent, loc->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || fchown(fd, (uid_t)uid, (gid_t)gid) < 0 ||
	    fchmod(fd, h->mode >= 0 ? (mode_t)h->mode : 0750) < 0) {
		r = -errno;
		unlinkat(loc->parent, loc->name, AT_REMOVEDIR);
		return r;
	}
	return 0;
}

static int post_file(struct api_request *req, struct api_response *resp, struct berth_error *err)
{
	_cleanup_(files_request_release) struct files_request fr = {.root = {.fd = -EBADF}};
	_cleanup_(files_loc_release) struct files_loc loc = {.parent = -EBADF};
	struct file_headers h;
	struct stat st;
	bool exists = false;
	int r;

	parse_file_headers(req->http, &h);
	if (!streq(h.write, "overwrite") && !streq(h.write, "append"))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Bad file write mode: %s", h.write);
	if (!streq(h.type, "file") && !streq(h.type, "directory") && !streq(h.type, "symlink"))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST, "Bad file type: %s",
				       h.type);
	r = files_request_open(req, &fr, err);
	if (r < 0)
		return r;
	if (streq(h.type, "file")) {
		/* Writing through a symlink writes its target, as the sftp server does. */
		r = loc_open_follow(fr.root.fd, fr.path, &loc, &exists, &st);
		if (r >= 0)
			r = post_regular(req, &fr.root, &loc, exists, &st, &h);
	} else {
		r = loc_open(fr.root.fd, fr.path, &loc);
		if (r >= 0) {
			r = loc_lstat(&loc, &st);
			exists = r == 0;
			if (r == -ENOENT)
				r = 0;
		}
		if (r >= 0 && !loc.name && streq(h.type, "directory"))
			exists = true;
		if (r >= 0 && streq(h.type, "directory"))
			r = post_directory(&fr.root, &loc, exists, &h);
		else if (r >= 0)
			r = post_symlink(req, &fr.root, &loc);
	}
	if (r == -ERANGE)
		return berth_error_set(err, r, BERTH_ERR_BAD_REQUEST,
				       "Cannot write \"%s\": uid or gid outside the instance's "
				       "id map",
				       fr.path);
	if (r < 0)
		return files_error(err, r, "Cannot write", fr.path);
	file_event(req, "instance-file-pushed", loc.path ? loc.path : fr.path);
	return api_sync(resp, NULL);
}

/* ---- DELETE ---- */

static int delete_file(struct api_request *req, struct api_response *resp, struct berth_error *err)
{
	_cleanup_(files_request_release) struct files_request fr = {.root = {.fd = -EBADF}};
	_cleanup_(files_loc_release) struct files_loc loc = {.parent = -EBADF};
	struct stat st;
	int r = files_request_open(req, &fr, err);

	if (r < 0)
		return r;
	r = loc_open(fr.root.fd, fr.path, &loc);
	if (r >= 0 && !loc.name)
		return berth_error_set(err, -EBUSY, BERTH_ERR_BAD_REQUEST,
				       "Cannot delete the root directory");
	if (r >= 0)
		r = loc_lstat(&loc, &st);
	if (r >= 0 && unlinkat(loc.parent, loc.name, S_ISDIR(st.st_mode) ? AT_REMOVEDIR : 0) < 0)
		r = -errno;
	if (r < 0)
		return files_error(err, r, "Cannot delete", fr.path);
	file_event(req, "instance-file-deleted", loc.path);
	return api_sync(resp, NULL);
}

/* ---- virtual machines: through berth-vmmon and the guest's berth-agent ---- */

/* The run directory of the instance when it is a VM (running, its vmmon answering),
 * else NULL in *ret_rundir: a container's files are handled above. */
static int vm_rundir(struct api_request *req, char **ret_rundir, struct berth_error *err)
{
	json_auto_t *inst = NULL;
	const char *type;
	int r = db_instance_get(req->d->db, req->project, req->params[0], &inst, err);

	*ret_rundir = NULL;
	if (r < 0)
		return r;
	type = berth_json_string(inst, "type");
	if (!type || !streq(type, "virtual-machine"))
		return 0;
	return vm_monitor_ensure(req->d, req->project, req->params[0], ret_rundir, err);
}

/* The guest's errno as a container's would be reported (same code and words); the
 * agent's own failures (not up, no answer) keep vmmon's message. */
static int vm_files_error(struct berth_error *err, int r, const char *what, const char *path)
{
	static const int mapped[] = {-ENOENT, -EACCES,	-EPERM, -EROFS,	    -EEXIST,
				     -EISDIR, -ENOTDIR, -ELOOP, -ENOTEMPTY, -EINVAL};

	for (size_t i = 0; i < ARRAY_SIZE(mapped); i++)
		if (r == mapped[i]) {
			berth_error_release(err);
			return files_error(err, r, what, path);
		}
	return r;
}

static int vm_stat_headers(struct api_response *resp, const struct agent_file_info *info,
			   const char *type)
{
	return stat_headers(resp, info->uid, info->gid, info->mode,
			    (struct timespec){.tv_sec = info->mtime_s, .tv_nsec = info->mtime_ns},
			    type);
}

static int vm_get_listing(struct api_response *resp, const struct agent_file_info *info)
{
	json_t *list = json_array();

	for (size_t i = 0; list && i < info->n_entries; i++) {
		const char *e = info->entries[i];
		_cleanup_free_ char *lossy = berth_utf8_valid(e) ? NULL : berth_utf8_lossy(e);

		json_array_append_new(list, json_string(lossy ?: e));
	}
	return list ? api_sync(resp, list) : -ENOMEM;
}

/* A symlink's target as the container path it names (as loc_link_target). */
static int vm_get_symlink(struct api_response *resp, const char *clean, const char *target)
{
	const char *slash = strrchr(clean, '/');
	_cleanup_free_ char *joined = target[0] == '/'
					      ? strdup(target)
					      : berth_strdup_printf("%.*s/%s", (int)(slash - clean),
								    clean, target);

	resp->raw = joined ? clean_path(joined) : NULL;
	if (!resp->raw)
		return -ENOMEM;
	resp->type = API_RAW;
	resp->content_type = "application/octet-stream";
	resp->raw_len = strlen(resp->raw);
	return 0;
}

static int vm_get_regular(struct api_response *resp, const char *clean, int *fd)
{
	const char *name = strrchr(clean, '/') + 1;
	off_t size = lseek(*fd, 0, SEEK_END);

	if (size < 0 || lseek(*fd, 0, SEEK_SET) < 0)
		return -errno;
	resp->type = API_RAW;
	resp->content_type = "application/octet-stream";
	resp->disposition = berth_strdup_printf("inline;filename=%s", *name ? name : "/");
	if (!resp->disposition)
		return -ENOMEM;
	for (char *c = resp->disposition; *c; c++)
		if (*c == '\r' || *c == '\n')
			*c = ' ';
	return size == 0 ? 0 : api_add_part_fd(resp, TAKE_FD(*fd), (uint64_t)size);
}

static int vm_get_file(struct api_request *req, struct api_response *resp, const char *rundir,
		       struct berth_error *err)
{
	_cleanup_(agent_file_info_release) struct agent_file_info info = {0};
	_cleanup_free_ char *path = NULL, *clean = NULL;
	/* on disk (the spool), not in memory: a guest's file can be large */
	_cleanup_close_ int fd = open(req->d->spool_dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	int r = files_path_arg(req, &path, err);

	if (r < 0)
		return r;
	clean = clean_path(path);
	if (!clean || fd < 0)
		return clean ? -errno : -ENOMEM;
	r = vmmon_file_pull(rundir, clean, fd, &info, FILES_VM_TIMEOUT_MS, err);
	if (r < 0)
		return vm_files_error(err, r, "Cannot read", path);
	switch (info.type) {
	case AGENT_FILE_DIRECTORY:
		r = vm_stat_headers(resp, &info, "directory");
		if (r >= 0)
			r = vm_get_listing(resp, &info);
		break;
	case AGENT_FILE_SYMLINK:
		r = vm_stat_headers(resp, &info, "symlink");
		if (r >= 0)
			r = vm_get_symlink(resp, clean, info.target ?: "");
		break;
	default:
		r = vm_stat_headers(resp, &info, "file");
		if (r >= 0)
			r = vm_get_regular(resp, clean, &fd);
		break;
	}
	if (r >= 0 && !streq(req->method, "HEAD"))
		file_event(req, "instance-file-retrieved", clean);
	return r;
}

/* The request's body as an fd read from its start: the spooled body reopened (its own
 * offset), or the in-memory one in a memfd. */
static int vm_body_fd(const struct berth_http_request *http)
{
	char proc[64];
	int fd, r;

	if (http->body_fd >= 0) {
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", http->body_fd);
		fd = open(proc, O_RDONLY | O_CLOEXEC);
		return fd < 0 ? -errno : fd;
	}
	fd = memfd_create("berth-push", MFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	r = write_body(http, fd);
	if (r >= 0 && lseek(fd, 0, SEEK_SET) < 0)
		r = -errno;
	if (r < 0)
		close(fd);
	return r < 0 ? r : fd;
}

static int vm_post_file(struct api_request *req, struct api_response *resp, const char *rundir,
			const struct file_headers *h, struct berth_error *err)
{
	_cleanup_free_ char *path = NULL, *clean = NULL, *target = NULL;
	_cleanup_close_ int fd = -EBADF;
	struct agent_file_info info = {
		.type = AGENT_FILE_REGULAR,
		.mode = h->mode >= 0 ? (uint32_t)h->mode : AGENT_ID_NONE,
		.uid = h->uid >= 0 ? (uint32_t)h->uid : AGENT_ID_NONE,
		.gid = h->gid >= 0 ? (uint32_t)h->gid : AGENT_ID_NONE,
	};
	int r = files_path_arg(req, &path, err);

	if (r < 0)
		return r;
	clean = clean_path(path);
	if (!clean)
		return -ENOMEM;
	if (streq(h->type, "file")) {
		fd = vm_body_fd(req->http);
		r = fd < 0 ? fd : 0;
	} else if (streq(h->type, "directory")) {
		info.type = AGENT_FILE_DIRECTORY;
	} else {
		info.type = AGENT_FILE_SYMLINK;
		r = read_small_body(req->http, &target);
		if (r >= 0 && (!*target || strlen(target) != req->http->body_len))
			r = -EINVAL;
		info.target = target;
	}
	if (r >= 0)
		r = vmmon_file_push(rundir, clean, &info, fd,
				    streq(h->write, "append") ? AGENT_PUT_APPEND : 0,
				    FILES_VM_TIMEOUT_MS, err);
	if (r < 0)
		return vm_files_error(err, r, "Cannot write", path);
	file_event(req, "instance-file-pushed", clean);
	return api_sync(resp, NULL);
}

static int vm_delete_file(struct api_request *req, struct api_response *resp, const char *rundir,
			  struct berth_error *err)
{
	_cleanup_free_ char *path = NULL, *clean = NULL;
	int r = files_path_arg(req, &path, err);

	if (r < 0)
		return r;
	clean = clean_path(path);
	if (!clean)
		return -ENOMEM;
	if (streq(clean, "/"))
		return berth_error_set(err, -EBUSY, BERTH_ERR_BAD_REQUEST,
				       "Cannot delete the root directory");
	r = vmmon_file_delete(rundir, clean, FILES_VM_TIMEOUT_MS, err);
	if (r < 0)
		return vm_files_error(err, r, "Cannot delete", path);
	file_event(req, "instance-file-deleted", clean);
	return api_sync(resp, NULL);
}

/* ---- routes: a VM's requests go to its agent, a container's are served here ---- */

static int files_get(struct api_request *req, struct api_response *resp, struct berth_error *err)
{
	_cleanup_free_ char *rundir = NULL;
	int r = vm_rundir(req, &rundir, err);

	if (r < 0)
		return r;
	return rundir ? vm_get_file(req, resp, rundir, err) : get_file(req, resp, err);
}

static int files_post(struct api_request *req, struct api_response *resp, struct berth_error *err)
{
	_cleanup_free_ char *rundir = NULL;
	struct file_headers h;
	int r = vm_rundir(req, &rundir, err);

	if (r < 0 || !rundir)
		return r < 0 ? r : post_file(req, resp, err);
	parse_file_headers(req->http, &h);
	if (!streq(h.write, "overwrite") && !streq(h.write, "append"))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Bad file write mode: %s", h.write);
	if (!streq(h.type, "file") && !streq(h.type, "directory") && !streq(h.type, "symlink"))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST, "Bad file type: %s",
				       h.type);
	return vm_post_file(req, resp, rundir, &h, err);
}

static int files_delete(struct api_request *req, struct api_response *resp, struct berth_error *err)
{
	_cleanup_free_ char *rundir = NULL;
	int r = vm_rundir(req, &rundir, err);

	if (r < 0)
		return r;
	return rundir ? vm_delete_file(req, resp, rundir, err) : delete_file(req, resp, err);
}

const struct api_route api_instance_file_routes[] = {
	{"GET", "/1.0/instances/{}/files", files_get, NULL},
	{"POST", "/1.0/instances/{}/files", files_post, NULL},
	{"DELETE", "/1.0/instances/{}/files", files_delete, NULL},
	{0},
};
