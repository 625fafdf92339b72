/* cli/cmd_file.c: `berth file push|pull|delete|edit|mkdir` over the file API
 * (/1.0/instances/NAME/files?path=..., X-LXD-uid/gid/mode/type headers).
 *
 * Remote paths are written INSTANCE/PATH as lxc writes them. Uploads are streamed from the
 * local file; downloads are streamed into a temporary file next to the destination and
 * renamed over it once complete, so an interrupted pull leaves nothing half-written. As in
 * lxc: several sources, or a target ending in '/', put each source under the target by its
 * base name; -r walks directories (symlinks are copied as symlinks); -p creates the
 * missing parent directories first. */
#include <dirent.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "lib/json.h"
#include "lib/util.h"

enum { OPT_RECURSIVE, OPT_CREATE_DIRS, OPT_UID, OPT_GID, OPT_MODE };

static const struct cli_option push_options[] = {
	[OPT_RECURSIVE] = { "recursive", 'r', NULL, "Recursively transfer files" },
	[OPT_CREATE_DIRS] = { "create-dirs", 'p', NULL,
			      "Create any directories necessary (mode 0755)" },
	[OPT_UID] = { "uid", 0, "UID", "Set the file's uid on push (default: the local file's)" },
	[OPT_GID] = { "gid", 0, "GID", "Set the file's gid on push (default: the local file's)" },
	[OPT_MODE] = { "mode", 0, "MODE",
		       "Set the file's perms on push, octal (default: the local file's)" },
	{ 0 },
};
static const struct cli_option pull_options[] = {
	[OPT_RECURSIVE] = { "recursive", 'r', NULL, "Recursively transfer files" },
	[OPT_CREATE_DIRS] = { "create-dirs", 'p', NULL, "Create any directories necessary" },
	{ 0 },
};
/* mkdir's options: --parents, then uid, gid, mode in the same order as push's */
enum { OPT_PARENTS, OPT_MKDIR_UID };
static const struct cli_option mkdir_options[] = {
	[OPT_PARENTS] = { "parents", 'p', NULL, "Create the missing parents too" },
	[OPT_MKDIR_UID] = { "uid", 0, "UID", "Owner of the new directory (default 0)" },
	{ "gid", 0, "GID", "Group of the new directory (default 0)" },
	{ "mode", 0, "MODE", "Permissions of the new directory, octal (default 0755)" },
	{ 0 },
};

static const struct cli_command file_cmd = {
	.name = "file",
	.usage = "berth file [command]",
	.description = "Manage files in instances",
	.min_args = 0,
	.max_args = -1,
};
static const struct cli_command push_cmd = {
	.name = "file push",
	.usage = "berth file push <source path>... <instance>/<path> [flags]",
	.description =
		"Push files into instances\n\n"
		"  With several sources or a target ending in '/', each source goes into the\n"
		"  target directory under its own name; -r copies directories (and symlinks\n"
		"  as symlinks). A new file gets the local file's mode and owner unless\n"
		"  --mode, --uid or --gid say otherwise; an existing file keeps its own.\n\n"
		"  Example: berth file push /etc/hosts c1/etc/hosts",
	.options = push_options,
	.min_args = 2,
	.max_args = -1,
	.examples = "berth file push index.html web/var/www/html/\n"
		    "    Copy a local file into web's /var/www/html\n"
		    "\n"
		    "berth file push -r -p site web/srv/\n"
		    "    A directory, recursively, making the missing directories",
};
static const struct cli_command pull_cmd = {
	.name = "file pull",
	.usage = "berth file pull <instance>/<path>... <target path> [flags]",
	.description =
		"Pull files from instances\n\n"
		"  Into an existing directory (or with several sources) each file keeps its\n"
		"  name; a target of - writes the file to stdout. A file is downloaded to a\n"
		"  temporary name and renamed when complete. -r copies directories.\n\n"
		"  Example: berth file pull c1/etc/hosts .",
	.options = pull_options,
	.min_args = 2,
	.max_args = -1,
	.examples = "berth file pull web/etc/hostname .\n"
		    "    Copy web's /etc/hostname into the current directory",
};
static const struct cli_command delete_cmd = {
	.name = "file delete",
	.usage = "berth file delete <instance>/<path>...",
	.description = "Delete files in instances",
	.min_args = 1,
	.max_args = -1,
};
static const struct cli_command edit_cmd = {
	.name = "file edit",
	.usage = "berth file edit <instance>/<path>",
	.description = "Edit files in instances\n\n"
		       "  The file is pulled, opened in $VISUAL or $EDITOR (vi by default) and\n"
		       "  pushed back; when stdin is not a terminal its content replaces the file.",
	.min_args = 1,
	.max_args = 1,
};
static const struct cli_command mkdir_cmd = {
	.name = "file mkdir",
	.usage = "berth file mkdir <instance>/<path>... [flags]",
	.description = "Create directories in instances\n\n"
		       "  An existing directory is not an error. -p creates missing parents.",
	.options = mkdir_options,
	.min_args = 1,
	.max_args = -1,
};

/* Ownership and mode to send: -1 / NULL for "not given". */
struct perms {
	long long uid, gid;
	int mode; /* -1: none */
};

static int oom(struct berth_error *err)
{
	return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "Out of memory");
}

/* "c1/etc/hosts" -> "c1", "/etc/hosts". */
static int split_target(struct cli_ctx *ctx, const char *spec, char **ret_name, char **ret_path,
			struct berth_error *err)
{
	const char *slash;
	_cleanup_free_ char *name = NULL, *path = NULL;
	int r = cli_remote_arg(ctx, spec, &spec, err); /* "REMOTE:INSTANCE/PATH" */

	if (r < 0)
		return r;
	slash = strchr(spec, '/');
	if (!slash || slash == spec)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Invalid target \"%s\": expected <instance>/<path>", spec);
	name = strndup(spec, (size_t)(slash - spec));
	path = strdup(slash);
	if (!name || !path)
		return oom(err);
	*ret_name = TAKE_PTR(name);
	*ret_path = TAKE_PTR(path);
	return 0;
}

static char *files_url(const char *name, const char *path)
{
	_cleanup_free_ char *base = cli_path("/1.0/instances/%s/files?path=", name);
	_cleanup_free_ char *enc = berth_url_encode(path);

	return base && enc ? berth_strdup_printf("%s%s", base, enc) : NULL;
}

/* "a/b" + "c" -> "a/b/c" (one slash between). */
static char *join(const char *dir, const char *base)
{
	size_t n = strlen(dir);

	return berth_strdup_printf("%s%s%s", dir, n && dir[n - 1] == '/' ? "" : "/", base);
}

/* The last path component of `path` ("/a/b/" -> "b"). New string. */
static char *base_name(const char *path)
{
	_cleanup_free_ char *copy = strdup(path);

	return copy ? strdup(basename(copy)) : NULL;
}

static int parse_number(const char *flag, const char *v, int base, long long max, long long *ret,
			struct berth_error *err)
{
	char *end = NULL;
	long long n;

	errno = 0;
	n = strtoll(v, &end, base);
	if (!*v || *end || errno || n < 0 || n > max)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "invalid argument \"%s\" for \"--%s\" flag", v, flag);
	*ret = n;
	return 0;
}

/* --uid, --gid and --mode, the options at `first`, first + 1 and first + 2. */
static int parse_perms(const struct cli_args *a, int first, struct perms *p,
		       struct berth_error *err)
{
	const char *uid = a->values[first], *gid = a->values[first + 1];
	const char *mode = a->values[first + 2];
	long long v;
	int r;

	*p = (struct perms){ -1, -1, -1 };
	if (uid && (r = parse_number("uid", uid, 10, 0xfffffffe, &p->uid, err)) < 0)
		return r;
	if (gid && (r = parse_number("gid", gid, 10, 0xfffffffe, &p->gid, err)) < 0)
		return r;
	if (mode) {
		r = parse_number("mode", mode, 8, 07777, &v, err);
		if (r < 0)
			return r;
		p->mode = (int)v;
	}
	return 0;
}

/* X-LXD-* request headers for `type` with the perms that are set. New string. */
static char *lxd_headers(const char *type, const struct perms *p)
{
	char uid[48] = "", gid[48] = "", mode[32] = "";

	if (p && p->uid >= 0)
		snprintf(uid, sizeof(uid), "X-LXD-uid: %lld\r\n", p->uid);
	if (p && p->gid >= 0)
		snprintf(gid, sizeof(gid), "X-LXD-gid: %lld\r\n", p->gid);
	if (p && p->mode >= 0)
		snprintf(mode, sizeof(mode), "X-LXD-mode: %04o\r\n", (unsigned)p->mode);
	return berth_strdup_printf("X-LXD-type: %s\r\n%s%s%s", type, uid, gid, mode);
}

/* POST to the file API: body from `fd` (len bytes), from `data`, or none. */
static int post_file(struct cli_ctx *ctx, const char *name, const char *path, const char *type,
		     const struct perms *p, int fd, const char *data, uint64_t len,
		     struct berth_error *err)
{
	_cleanup_free_ char *url = files_url(name, path);
	_cleanup_free_ char *headers = lxd_headers(type, p);
	struct berth_upload_part part = { .data = data, .fd = fd, .len = len };
	struct berth_response resp = { 0 };
	struct berth_client *c = NULL;
	int r = cli_client(ctx, &c, err);

	if (r < 0)
		return r;
	if (!url || !headers)
		return oom(err);
	if (ctx->debug)
		fprintf(stderr, "DEBUG: POST %s (%s)\n", url, type);
	r = berth_client_request_upload(c, "POST", url, "application/octet-stream", headers, &part,
					len || data ? 1 : 0, NULL, NULL, &resp, err);
	if (r < 0)
		return r;
	r = berth_client_unwrap(c, &resp, NULL, NULL, err);
	berth_response_release(&resp);
	return r < 0 ? berth_error_wrap(err, r, "%s/%s", name, path[0] == '/' ? path + 1 : path)
		     : 0;
}

static int remote_mkdir(struct cli_ctx *ctx, const char *name, const char *path,
			const struct perms *p, struct berth_error *err)
{
	return post_file(ctx, name, path, "directory", p, -1, NULL, 0, err);
}

/* Every missing directory from the root down to `path` itself. */
static int remote_mkdir_p(struct cli_ctx *ctx, const char *name, const char *path,
			  const struct perms *p, struct berth_error *err)
{
	_cleanup_free_ char *copy = strdup(path);
	int r;

	if (!copy)
		return oom(err);
	for (char *s = strchr(copy + 1, '/'); s; s = strchr(s + 1, '/')) {
		*s = '\0';
		r = remote_mkdir(ctx, name, copy, p, err);
		*s = '/';
		if (r < 0)
			return r;
	}
	if (streq(copy, "/") || copy[strlen(copy) - 1] == '/')
		return 0;
	return remote_mkdir(ctx, name, copy, p, err);
}

/* ---- push ---- */

static int push_path(struct cli_ctx *ctx, const char *src, const char *name, const char *dest,
		     const struct perms *given, bool recursive, struct berth_error *err);

static int push_dir(struct cli_ctx *ctx, const char *src, const char *name, const char *dest,
		    const struct perms *p, const struct perms *given, struct berth_error *err)
{
	DIR *d;
	struct dirent *e;
	int r = remote_mkdir(ctx, name, dest, p, err);

	if (r < 0)
		return r;
	d = opendir(src);
	if (!d)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "%s: %s", src,
				       strerror(errno));
	while (r >= 0 && (e = readdir(d))) {
		_cleanup_free_ char *s = NULL, *t = NULL;

		if (streq(e->d_name, ".") || streq(e->d_name, ".."))
			continue;
		s = join(src, e->d_name);
		t = join(dest, e->d_name);
		r = s && t ? push_path(ctx, s, name, t, given, true, err) : oom(err);
	}
	closedir(d);
	return r;
}

/* Push local `src` to `dest` in instance `name`. */
static int push_path(struct cli_ctx *ctx, const char *src, const char *name, const char *dest,
		     const struct perms *given, bool recursive, struct berth_error *err)
{
	struct stat st;
	struct perms p;
	_cleanup_close_ int fd = -EBADF;

	if (lstat(src, &st) < 0)
		return berth_error_set(err, -errno, BERTH_ERR_BAD_REQUEST, "%s: %s", src,
				       strerror(errno));
	p = (struct perms){ given->uid >= 0 ? given->uid : st.st_uid,
			    given->gid >= 0 ? given->gid : st.st_gid,
			    given->mode >= 0 ? given->mode : (int)(st.st_mode & 07777) };
	if (S_ISLNK(st.st_mode) && recursive) {
		char target[4096];
		ssize_t n = readlink(src, target, sizeof(target) - 1);

		if (n < 0)
			return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "%s: %s", src,
					       strerror(errno));
		target[n] = '\0';
		p.mode = -1;
		return post_file(ctx, name, dest, "symlink", &p, -1, target, (uint64_t)n, err);
	}
	if (S_ISDIR(st.st_mode)) {
		if (!recursive)
			return berth_error_set(err, -EISDIR, BERTH_ERR_BAD_REQUEST,
					       "%s is a directory (use -r to push it)", src);
		return push_dir(ctx, src, name, dest, &p, given, err);
	}
	fd = open(src, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0)
		return berth_error_set(err, -errno, BERTH_ERR_BAD_REQUEST, "%s: %s", src,
				       strerror(errno));
	if (!S_ISREG(st.st_mode))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "%s is not a regular file", src);
	return post_file(ctx, name, dest, "file", &p, fd, NULL, (uint64_t)st.st_size, err);
}

static int do_push(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	static const struct perms default_dir = { -1, -1, 0755 };
	_cleanup_free_ char *name = NULL, *target = NULL;
	bool into_dir = a->n_pos > 2 || a->values[OPT_RECURSIVE];
	struct perms given;
	int r = parse_perms(a, OPT_UID, &given, err);

	if (r < 0)
		return r;
	r = split_target(ctx, a->pos[a->n_pos - 1], &name, &target, err);
	if (r < 0)
		return r;
	into_dir = into_dir || target[strlen(target) - 1] == '/';
	if (a->values[OPT_CREATE_DIRS]) {
		_cleanup_free_ char *copy = strdup(target);
		const char *dir = into_dir ? target : (copy ? dirname(copy) : NULL);

		if (!dir)
			return oom(err);
		r = remote_mkdir_p(ctx, name, dir, &default_dir, err);
		if (r < 0)
			return r;
	}
	for (int i = 0; i < a->n_pos - 1; i++) {
		_cleanup_free_ char *base = base_name(a->pos[i]);
		_cleanup_free_ char *dest = into_dir && base ? join(target, base) : strdup(target);

		if (!dest)
			return oom(err);
		r = push_path(ctx, a->pos[i], name, dest, &given, a->values[OPT_RECURSIVE] != NULL,
			      err);
		if (r < 0)
			return r;
	}
	return 0;
}

/* ---- pull ---- */

static int pull_path(struct cli_ctx *ctx, const char *name, const char *path, const char *dest,
		     bool recursive, struct berth_error *err);

static int header_mode(const struct berth_response *resp, mode_t fallback)
{
	const char *m = berth_response_header(resp, "X-LXD-mode");
	char *end = NULL;
	long v = m ? strtol(m, &end, 8) : -1;

	return m && *m && !*end && v >= 0 && v <= 07777 ? (int)v : (int)fallback;
}

static int pull_dir(struct cli_ctx *ctx, const char *name, const char *path, const char *dest,
		    const struct berth_response *resp, struct berth_error *err)
{
	json_t *list = json_object_get(resp->json, "metadata");
	json_t *entry;
	size_t i;

	if (mkdir(dest, (mode_t)header_mode(resp, 0755)) < 0 && errno != EEXIST)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "%s: %s", dest,
				       strerror(errno));
	json_array_foreach(list, i, entry) {
		_cleanup_free_ char *s = NULL, *t = NULL;
		int r;

		if (!json_is_string(entry))
			continue;
		s = join(path, json_string_value(entry));
		t = join(dest, json_string_value(entry));
		if (!s || !t)
			return oom(err);
		r = pull_path(ctx, name, s, t, true, err);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Put a finished download (in `tmp`) in place according to its X-LXD-type. */
static int pull_finish(struct cli_ctx *ctx, const char *name, const char *path, const char *tmp,
		       int fd, const char *dest, bool recursive, const struct berth_response *resp,
		       struct berth_error *err)
{
	const char *type = berth_response_header(resp, "X-LXD-type") ?: "file";

	if (streq(type, "directory")) {
		if (!recursive)
			return berth_error_set(err, -EISDIR, BERTH_ERR_BAD_REQUEST,
					       "%s/%s is a directory (use -r to pull it)", name,
					       path + 1);
		return pull_dir(ctx, name, path, dest, resp, err);
	}
	if (streq(type, "symlink")) {
		_cleanup_free_ char *target = NULL;
		size_t len = 0;
		int r = berth_read_file(tmp, 65536, &target, &len);

		if (r < 0)
			return berth_error_set(err, r, BERTH_ERR_INTERNAL, "%s: %s", tmp,
					       strerror(-r));
		(void)unlink(dest);
		if (symlink(target, dest) < 0)
			return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "%s: %s", dest,
					       strerror(errno));
		return 0;
	}
	if (fchmod(fd, (mode_t)header_mode(resp, 0644)) < 0 || fsync(fd) < 0 ||
	    rename(tmp, dest) < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "%s: %s", dest,
				       strerror(errno));
	return 0;
}

static int pull_path(struct cli_ctx *ctx, const char *name, const char *path, const char *dest,
		     bool recursive, struct berth_error *err)
{
	_cleanup_free_ char *url = files_url(name, path);
	_cleanup_free_ char *dir_copy = strdup(dest), *tmp = NULL;
	_cleanup_close_ int fd = -EBADF;
	struct berth_response resp = { 0 };
	struct berth_client *c = NULL;
	bool to_stdout = streq(dest, "-");
	int r = cli_client(ctx, &c, err);

	if (r < 0)
		return r;
	if (!url || !dir_copy)
		return oom(err);
	if (!to_stdout) {
		tmp = berth_strdup_printf("%s/.berth-pull-XXXXXX", dirname(dir_copy));
		if (!tmp)
			return oom(err);
		fd = mkostemp(tmp, O_CLOEXEC);
		if (fd < 0)
			return berth_error_set(err, -errno, BERTH_ERR_INTERNAL,
					       "creating a file in %s: %s", dir_copy,
					       strerror(errno));
	}
	if (ctx->debug)
		fprintf(stderr, "DEBUG: GET %s\n", url);
	r = berth_client_download(c, url, to_stdout ? STDOUT_FILENO : fd, NULL, NULL, &resp, err);
	if (r >= 0 && resp.status != 200) {
		r = berth_client_unwrap(c, &resp, NULL, NULL, err);
		r = berth_error_wrap(err, r < 0 ? r : -EPROTO, "%s/%s", name, path + 1);
	}
	if (r >= 0 && !to_stdout)
		r = pull_finish(ctx, name, path, tmp, fd, dest, recursive, &resp, err);
	if (tmp)
		(void)unlink(tmp); /* after a rename this is a no-op */
	berth_response_release(&resp);
	return r;
}

static bool is_local_dir(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int mkdir_p(const char *path, struct berth_error *err)
{
	_cleanup_free_ char *copy = strdup(path);

	if (!copy)
		return oom(err);
	for (char *s = strchr(copy + 1, '/');; s = strchr(s + 1, '/')) {
		if (s)
			*s = '\0';
		if (*copy && mkdir(copy, 0755) < 0 && errno != EEXIST)
			return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "%s: %s", copy,
					       strerror(errno));
		if (!s)
			return 0;
		*s = '/';
	}
}

static int do_pull(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	const char *target = a->pos[a->n_pos - 1];
	bool into_dir;
	int r;

	if (a->values[OPT_CREATE_DIRS] && !streq(target, "-")) {
		r = mkdir_p(target, err);
		if (r < 0)
			return r;
	}
	into_dir = !streq(target, "-") &&
		   (a->n_pos > 2 || is_local_dir(target) || target[strlen(target) - 1] == '/');
	if (a->n_pos > 2 && !into_dir && !streq(target, "-"))
		return berth_error_set(err, -ENOTDIR, BERTH_ERR_BAD_REQUEST,
				       "Target path %s must be a directory", target);
	for (int i = 0; i < a->n_pos - 1; i++) {
		_cleanup_free_ char *name = NULL, *path = NULL, *base = NULL, *dest = NULL;

		r = split_target(ctx, a->pos[i], &name, &path, err);
		if (r < 0)
			return r;
		base = base_name(path);
		dest = into_dir && base ? join(target, base) : strdup(target);
		if (!dest)
			return oom(err);
		r = pull_path(ctx, name, path, dest, a->values[OPT_RECURSIVE] != NULL, err);
		if (r < 0)
			return r;
	}
	return 0;
}

/* ---- delete, mkdir, edit ---- */

static int do_delete(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	for (int i = 0; i < a->n_pos; i++) {
		_cleanup_free_ char *name = NULL, *path = NULL, *url = NULL;
		int r = split_target(ctx, a->pos[i], &name, &path, err);

		if (r < 0)
			return r;
		url = files_url(name, path);
		if (!url)
			return oom(err);
		r = cli_query(ctx, "DELETE", url, NULL, NULL, NULL, err);
		if (r < 0)
			return berth_error_wrap(err, r, "%s", a->pos[i]);
	}
	return 0;
}

static int do_mkdir(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	struct perms p;
	int r = parse_perms(a, OPT_MKDIR_UID, &p, err);

	if (p.mode < 0)
		p.mode = 0755; /* stated, not left to the server (LXD would make it 0750) */
	for (int i = 0; r >= 0 && i < a->n_pos; i++) {
		_cleanup_free_ char *name = NULL, *path = NULL;

		r = split_target(ctx, a->pos[i], &name, &path, err);
		if (r < 0)
			break;
		if (a->values[OPT_PARENTS])
			r = remote_mkdir_p(ctx, name, path, &p, err);
		else
			r = remote_mkdir(ctx, name, path, &p, err);
	}
	return r;
}

/* stdin (not a terminal) into a temp file: its content replaces the remote file. */
static int stdin_to(int fd, struct berth_error *err)
{
	char buf[65536];
	ssize_t n;

	while ((n = read(STDIN_FILENO, buf, sizeof(buf))) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 || write(fd, buf, (size_t)n) != n)
			return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "reading stdin: %s",
					       strerror(errno));
	}
	return 0;
}

static int do_edit(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	_cleanup_free_ char *name = NULL, *path = NULL, *url = NULL;
	char tmp[] = "/tmp/berth_file_edit_XXXXXX";
	_cleanup_close_ int fd = -EBADF;
	struct berth_response resp = { 0 };
	struct berth_client *c = NULL;
	struct stat st;
	int r = split_target(ctx, a->pos[0], &name, &path, err);

	if (r < 0)
		return r;
	url = files_url(name, path);
	if (!url)
		return oom(err);
	r = cli_client(ctx, &c, err);
	if (r < 0)
		return r;
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "mkstemp: %s",
				       strerror(errno));
	if (!isatty(STDIN_FILENO)) {
		r = stdin_to(fd, err);
	} else {
		r = berth_client_download(c, url, fd, NULL, NULL, &resp, err);
		if (r >= 0 && resp.status != 200)
			r = berth_client_unwrap(c, &resp, NULL, NULL, err), r = r < 0 ? r : -EPROTO;
		else if (r >= 0 &&
			 !streq(berth_response_header(&resp, "X-LXD-type") ?: "file", "file"))
			r = berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					    "%s is not a regular file", a->pos[0]);
		berth_response_release(&resp);
		if (r >= 0)
			r = cli_run_editor(tmp, err);
	}
	/* the editor may have replaced the file: push what is at the path now */
	if (r >= 0) {
		_cleanup_close_ int in = open(tmp, O_RDONLY | O_CLOEXEC);

		if (in < 0 || fstat(in, &st) < 0)
			r = berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "%s: %s", tmp,
					    strerror(errno));
		else
			r = post_file(ctx, name, path, "file", NULL, in, NULL, (uint64_t)st.st_size,
				      err);
	}
	unlink(tmp);
	return r;
}

static const struct cli_subcommand file_subs[] = {
	{ &delete_cmd, do_delete }, { &edit_cmd, do_edit }, { &mkdir_cmd, do_mkdir },
	{ &pull_cmd, do_pull },	    { &push_cmd, do_push },
};

int cmd_file(struct cli_ctx *ctx, int argc, char **argv, struct berth_error *err)
{
	return cli_dispatch(ctx, &file_cmd, file_subs, ARRAY_SIZE(file_subs), argc, argv, err);
}
