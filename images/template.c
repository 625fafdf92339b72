/* images/template.c: rendering an image's templates (LXD's pongo2 subset) and writing them
 * into an instance's rootfs on the triggers metadata.yaml names. */
#include <fcntl.h>
#include <linux/openat2.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "images/template.h"
#include "lib/json.h"
#include "lib/util.h"

/* Append `len` bytes to the growing buffer. */
static int buf_add(char **buf, size_t *len, size_t *cap, const char *s, size_t n)
{
	if (*len + n + 1 > *cap) {
		size_t ncap = (*cap ? *cap * 2 : 256);
		char *nb;

		while (ncap < *len + n + 1)
			ncap *= 2;
		nb = realloc(*buf, ncap);
		if (!nb)
			return -ENOMEM;
		*buf = nb;
		*cap = ncap;
	}
	memcpy(*buf + *len, s, n);
	*len += n;
	(*buf)[*len] = '\0';
	return 0;
}

/* The value of the expression between "{{" and "}}": a variable name, maybe followed by
 * pongo filters ("| default:..."), which are ignored. */
static const char *lookup(const json_t *vars, const char *expr, size_t n)
{
	char name[128];
	size_t i = 0, j;

	while (i < n && (expr[i] == ' ' || expr[i] == '\t'))
		i++;
	for (j = i; j < n && expr[j] != ' ' && expr[j] != '\t' && expr[j] != '|'; j++)
		;
	if (j - i == 0 || j - i >= sizeof(name))
		return "";
	memcpy(name, expr + i, j - i);
	name[j - i] = '\0';
	return berth_json_string(vars, name) ?: "";
}

int image_template_render(const char *tpl, size_t len, const json_t *vars, char **ret,
			  size_t *ret_len)
{
	_cleanup_free_ char *out = NULL;
	size_t olen = 0, cap = 0, i = 0;
	int r = buf_add(&out, &olen, &cap, "", 0);

	while (r >= 0 && i < len) {
		const char *open = NULL, *close;
		size_t k;

		for (k = i; k + 1 < len; k++)
			if (tpl[k] == '{' &&
			    (tpl[k + 1] == '{' || tpl[k + 1] == '%' || tpl[k + 1] == '#')) {
				open = tpl + k;
				break;
			}
		if (!open) {
			r = buf_add(&out, &olen, &cap, tpl + i, len - i);
			break;
		}
		r = buf_add(&out, &olen, &cap, tpl + i, (size_t)(open - (tpl + i)));
		if (r < 0)
			break;
		{
			char want = open[1] == '{' ? '}' : open[1];
			const char *end = tpl + len;

			close = NULL;
			for (const char *p = open + 2; p + 1 < end; p++)
				if (p[0] == want && p[1] == '}') {
					close = p;
					break;
				}
		}
		if (!close) { /* unterminated: the rest is text */
			r = buf_add(&out, &olen, &cap, open, len - (size_t)(open - tpl));
			break;
		}
		if (open[1] == '{') {
			const char *v = lookup(vars, open + 2, (size_t)(close - open - 2));
			r = buf_add(&out, &olen, &cap, v, strlen(v));
		}
		/* {% tags %} and {# comments #} render as nothing: no image we build uses
		 * control flow, and LXD's own images only in templates we do not ship. */
		i = (size_t)(close + 2 - tpl);
	}
	if (r < 0)
		return r;
	*ret = TAKE_PTR(out);
	if (ret_len)
		*ret_len = olen;
	return 0;
}

/* Whether metadata.yaml's template entry fires on `trigger`. */
static bool fires(const json_t *entry, const char *trigger)
{
	json_t *w;
	size_t i;

	json_array_foreach(json_object_get(entry, "when"), i, w)
		if (json_is_string(w) && streq(json_string_value(w), trigger))
			return true;
	return false;
}

static int read_file(int dirfd, const char *name, char **ret, size_t *ret_len,
		     struct berth_error *err)
{
	_cleanup_close_ int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	_cleanup_free_ char *buf = NULL;
	struct stat st;
	size_t got = 0;

	if (fd < 0 || fstat(fd, &st) < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL,
				       "Cannot read template \"%s\": %m", name);
	if (!S_ISREG(st.st_mode) || st.st_size > (1 << 20))
		return berth_error_set(err, -EINVAL, BERTH_ERR_INTERNAL,
				       "Template \"%s\" is not a regular file under 1 MiB", name);
	buf = malloc((size_t)st.st_size + 1);
	if (!buf)
		return -ENOMEM;
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	buf[got] = '\0';
	*ret = TAKE_PTR(buf);
	*ret_len = got;
	return 0;
}

/* Open (create, truncate) `path` below the rootfs at `rootfd`, resolving every component
 * inside it: symlinks in the image cannot make us write on the host. */
static int open_in_root(int rootfd, const char *path, int mode)
{
	struct open_how how = {
		.flags = O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
		.mode = (uint64_t)mode,
		.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
	};
	long fd;

	while (*path == '/')
		path++;
	fd = syscall(SYS_openat2, rootfd, path, &how, sizeof(how));
	return fd < 0 ? -errno : (int)fd;
}

static int write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static int apply_one(int tpldir, int rootfd, const char *path, const json_t *entry,
		     const json_t *vars, struct berth_error *err)
{
	_cleanup_free_ char *src = NULL;
	_cleanup_free_ char *out = NULL;
	_cleanup_close_ int fd = -EBADF;
	const char *name = berth_json_string(entry, "template");
	size_t len = 0, olen = 0;
	int r;

	if (!name || strchr(name, '/'))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Template for \"%s\" has no valid file name", path);
	r = read_file(tpldir, name, &src, &len, err);
	if (r < 0)
		return r;
	r = image_template_render(src, len, vars, &out, &olen);
	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "Out of memory");
	fd = open_in_root(rootfd, path, 0644);
	if (fd < 0)
		return berth_error_set(err, fd, BERTH_ERR_INTERNAL,
				       "Cannot write template target \"%s\": %s", path,
				       strerror(-fd));
	r = write_all(fd, out, olen);
	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "Writing \"%s\": %s", path,
				       strerror(-r));
	return 0;
}

int image_templates_apply(const char *volume, const json_t *metadata, const char *trigger,
			  const json_t *vars, struct berth_error *err)
{
	_cleanup_free_ char *tpl_path = berth_strdup_printf("%s/templates", volume);
	_cleanup_free_ char *root_path = berth_strdup_printf("%s/rootfs", volume);
	_cleanup_close_ int tpldir = -EBADF;
	_cleanup_close_ int rootfd = -EBADF;
	const char *path;
	json_t *entry;
	int r;

	if (!tpl_path || !root_path)
		return -ENOMEM;
	if (!json_object_size(json_object_get(metadata, "templates")))
		return 0;
	tpldir = open(tpl_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	rootfd = open(root_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (tpldir < 0 || rootfd < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL,
				       "Cannot open the templates or rootfs of \"%s\": %m", volume);
	json_object_foreach((json_t *)json_object_get(metadata, "templates"), path, entry) {
		if (!fires(entry, trigger))
			continue;
		r = apply_one(tpldir, rootfd, path, entry, vars, err);
		if (r < 0)
			return r;
	}
	return 0;
}
