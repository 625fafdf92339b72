/* images/template.c: rendering an image's templates (LXD's pongo2 subset) and writing them
 * into an instance's rootfs on the triggers metadata.yaml names. */
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
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

/* ---- the pongo2 subset ----
 *
 * Tags: {{ EXPR }}, {% if EXPR %} / {% elif EXPR %} / {% else %} / {% endif %} (nested),
 * {# comments #}; a "-" just inside a delimiter ("{%-", "-%}") trims the whitespace on
 * that side. Any other tag renders as nothing.
 *
 * EXPR: or/and/not over comparisons (==, !=) of primaries: "string" or 'string', a number,
 * true/false/none, a variable (dotted: container.name, properties.default: looked up as
 * that flat key first, then through nested objects), config_get(KEY, DEFAULT), or a
 * parenthesised EXPR; each optionally followed by filters ("| default:X" applies, the
 * others are ignored). Values are strings; true renders "True", an unknown variable "". */

struct val {
	char *s; /* owned, never NULL once evaluated: what renders ("True"/"False" for a bool) */
	bool defined;
	bool is_bool;
};

struct expr {
	const char *p, *end;
	const json_t *vars;
	bool failed; /* out of memory */
};

static void val_set(struct expr *e, struct val *v, const char *s, size_t n, bool defined)
{
	free(v->s);
	v->s = strndup(s, n);
	v->defined = defined;
	v->is_bool = false;
	if (!v->s)
		e->failed = true;
}

static void val_bool(struct expr *e, struct val *v, bool b)
{
	val_set(e, v, b ? "True" : "False", b ? 4 : 5, true);
	v->is_bool = true;
}

/* pongo2's truth: a bool's value, a non-empty string. */
static bool truthy(const struct val *v)
{
	return v->s && (v->is_bool ? v->s[0] == 'T' : v->s[0] != '\0');
}

static void skip_ws(struct expr *e)
{
	while (e->p < e->end && (*e->p == ' ' || *e->p == '\t' || *e->p == '\n' || *e->p == '\r'))
		e->p++;
}

static bool is_ident(char c, bool first)
{
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (!first && c >= '0' && c <= '9');
}

/* The word at e->p if it is `w` (not a prefix of a longer identifier): consumed. */
static bool eat_word(struct expr *e, const char *w)
{
	size_t n = strlen(w);

	skip_ws(e);
	if ((size_t)(e->end - e->p) < n || memcmp(e->p, w, n) ||
	    (e->p + n < e->end && is_ident(e->p[n], false)))
		return false;
	e->p += n;
	return true;
}

static bool eat(struct expr *e, const char *tok)
{
	size_t n = strlen(tok);

	skip_ws(e);
	if ((size_t)(e->end - e->p) < n || memcmp(e->p, tok, n))
		return false;
	e->p += n;
	return true;
}

/* A JSON value as the template shows it. */
static void val_from_json(struct expr *e, struct val *v, const json_t *j)
{
	char num[32];

	if (json_is_string(j))
		val_set(e, v, json_string_value(j), json_string_length(j), true);
	else if (json_is_boolean(j))
		val_bool(e, v, json_is_true(j));
	else if (json_is_integer(j)) {
		snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(j));
		val_set(e, v, num, strlen(num), true);
	} else
		val_set(e, v, "", 0, j != NULL && !json_is_null(j));
}

static const json_t *var_lookup(const json_t *vars, const char *name)
{
	_cleanup_free_ char *copy = NULL;
	const json_t *cur = json_object_get(vars, name);
	char *save = NULL;

	if (cur || !strchr(name, '.'))
		return cur;
	copy = strdup(name);
	cur = vars;
	for (char *t = copy ? strtok_r(copy, ".", &save) : NULL; t && cur;
	     t = strtok_r(NULL, ".", &save))
		cur = json_object_get(cur, t);
	return copy ? cur : NULL;
}

static void parse_or(struct expr *e, struct val *v);

static void parse_string(struct expr *e, struct val *v)
{
	char q = *e->p++;
	const char *s = e->p;

	while (e->p < e->end && *e->p != q)
		e->p++;
	val_set(e, v, s, (size_t)(e->p - s), true);
	if (e->p < e->end)
		e->p++;
	if (!v->s)
		return;
	/* "\n" is a newline, as in pongo2's string literals */
	char *w = v->s;

	for (const char *r = v->s; *r; r++) {
		if (r[0] == '\\' && r[1] == 'n') {
			*w++ = '\n';
			r++;
		} else
			*w++ = *r;
	}
	*w = '\0';
}

/* config_get(KEY, DEFAULT): the instance's expanded config key (trailing newlines
 * trimmed, as LXD), else DEFAULT. */
static void call_config_get(struct expr *e, struct val *v)
{
	struct val key = {0}, def = {0};
	const json_t *c;

	parse_or(e, &key);
	if (eat(e, ","))
		parse_or(e, &def);
	else
		val_set(e, &def, "", 0, false);
	eat(e, ")");
	c = key.s ? json_object_get(json_object_get(e->vars, "config"), key.s) : NULL;
	if (json_is_string(c)) {
		size_t n = json_string_length(c);
		const char *s = json_string_value(c);

		while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r'))
			n--;
		val_set(e, v, s, n, true);
	} else {
		free(v->s);
		*v = def;
		def.s = NULL;
	}
	free(key.s);
	free(def.s);
}

static void parse_name(struct expr *e, struct val *v)
{
	const char *s = e->p;
	char name[256];
	size_t n;

	while (e->p < e->end && (is_ident(*e->p, false) || *e->p == '.'))
		e->p++;
	n = (size_t)(e->p - s);
	if (n == 10 && !memcmp(s, "config_get", 10) && eat(e, "(")) {
		call_config_get(e, v);
		return;
	}
	if (n == 4 && (!memcmp(s, "true", 4) || !memcmp(s, "True", 4)))
		val_bool(e, v, true);
	else if (n == 5 && (!memcmp(s, "false", 5) || !memcmp(s, "False", 5)))
		val_bool(e, v, false);
	else if (n == 0 || n >= sizeof(name) ||
		 (n == 4 && (!memcmp(s, "none", 4) || !memcmp(s, "None", 4))))
		val_set(e, v, "", 0, false);
	else {
		memcpy(name, s, n);
		name[n] = '\0';
		val_from_json(e, v, var_lookup(e->vars, name));
	}
}

static void parse_primary(struct expr *e, struct val *v)
{
	skip_ws(e);
	if (e->p >= e->end) {
		val_set(e, v, "", 0, false);
		return;
	}
	if (*e->p == '"' || *e->p == '\'')
		parse_string(e, v);
	else if (*e->p == '(') {
		e->p++;
		parse_or(e, v);
		eat(e, ")");
	} else if ((*e->p >= '0' && *e->p <= '9') || *e->p == '-') {
		const char *s = e->p++;

		while (e->p < e->end && ((*e->p >= '0' && *e->p <= '9') || *e->p == '.'))
			e->p++;
		val_set(e, v, s, (size_t)(e->p - s), true);
	} else if (is_ident(*e->p, true))
		parse_name(e, v);
	else {
		e->p = e->end; /* not understood: the rest of the tag is ignored */
		val_set(e, v, "", 0, false);
	}
	while (!e->failed && eat(e, "|")) { /* filters */
		struct val arg = {0};
		bool dflt = eat_word(e, "default");

		if (!dflt)
			while (e->p < e->end && is_ident(*e->p, false))
				e->p++;
		if (eat(e, ":"))
			parse_primary(e, &arg);
		if (dflt && arg.s && !truthy(v)) {
			free(v->s);
			*v = arg;
			arg.s = NULL;
		}
		free(arg.s);
	}
}

static void parse_cmp(struct expr *e, struct val *v)
{
	struct val rhs = {0};
	bool eq;

	parse_primary(e, v);
	if (eat(e, "=="))
		eq = true;
	else if (eat(e, "!="))
		eq = false;
	else
		return;
	parse_primary(e, &rhs);
	if (v->s && rhs.s)
		val_bool(e, v, (strcmp(v->s, rhs.s) == 0) == eq);
	free(rhs.s);
}

static void parse_not(struct expr *e, struct val *v)
{
	if (!eat_word(e, "not")) {
		parse_cmp(e, v);
		return;
	}
	parse_not(e, v);
	if (v->s)
		val_bool(e, v, !truthy(v));
}

static void parse_and(struct expr *e, struct val *v)
{
	parse_not(e, v);
	while (!e->failed && eat_word(e, "and")) {
		struct val rhs = {0};

		parse_not(e, &rhs);
		if (truthy(v)) {
			free(v->s);
			*v = rhs;
		} else
			free(rhs.s);
	}
}

static void parse_or(struct expr *e, struct val *v)
{
	parse_and(e, v);
	while (!e->failed && eat_word(e, "or")) {
		struct val rhs = {0};

		parse_and(e, &rhs);
		if (v->s && !truthy(v)) {
			free(v->s);
			*v = rhs;
		} else
			free(rhs.s);
	}
}

/* Evaluate `n` bytes of `src` into *ret (its string owned). -ENOMEM only. */
static int eval(const json_t *vars, const char *src, size_t n, struct val *ret)
{
	struct expr e = {.p = src, .end = src + n, .vars = vars};
	struct val v = {0};

	parse_or(&e, &v);
	if (e.failed || !v.s) {
		free(v.s);
		return -ENOMEM;
	}
	*ret = v;
	return 0;
}

/* The state of the {% if %} blocks around the current position. */
#define IF_DEPTH_MAX 32
struct cond {
	int depth;		      /* open ifs */
	int dead_from;		      /* the depth whose branch is off (0: all on) */
	bool taken[IF_DEPTH_MAX + 1]; /* a branch of that if was taken */
};

static bool cond_on(const struct cond *c)
{
	return c->dead_from == 0;
}

/* One {% ... %} tag: the if/elif/else/endif ones move `c`. */
static int control_tag(struct cond *c, const json_t *vars, const char *s, size_t n)
{
	struct expr e = {.p = s, .end = s + n, .vars = vars};
	struct val v = {0};
	bool want;
	int r;

	if (eat_word(&e, "if")) {
		c->depth++;
		if (c->depth > IF_DEPTH_MAX)
			return -EINVAL;
		if (!cond_on(c)) {
			c->taken[c->depth] = true; /* no branch of it may turn on */
			return 0;
		}
		r = eval(vars, e.p, (size_t)(e.end - e.p), &v);
		if (r < 0)
			return r;
		c->taken[c->depth] = truthy(&v);
		if (!truthy(&v))
			c->dead_from = c->depth;
		free(v.s);
		return 0;
	}
	if (c->depth == 0)
		return 0; /* else/elif/endif with no if, or another tag: nothing */
	if (eat_word(&e, "endif")) {
		if (c->dead_from == c->depth)
			c->dead_from = 0;
		c->depth--;
		return 0;
	}
	want = false;
	if (eat_word(&e, "elif")) {
		if (!c->taken[c->depth] && (c->dead_from == 0 || c->dead_from == c->depth)) {
			r = eval(vars, e.p, (size_t)(e.end - e.p), &v);
			if (r < 0)
				return r;
			want = truthy(&v);
			free(v.s);
		}
	} else if (eat_word(&e, "else"))
		want = !c->taken[c->depth] && (c->dead_from == 0 || c->dead_from == c->depth);
	else
		return 0;
	if (c->dead_from != 0 && c->dead_from < c->depth)
		return 0; /* an outer if is off */
	c->taken[c->depth] |= want;
	c->dead_from = want ? 0 : c->depth;
	return 0;
}

/* The end of the tag opened at `open` ("{{", "{%", "{#"), or NULL. */
static const char *tag_end(const char *open, const char *end)
{
	char want = open[1] == '{' ? '}' : open[1];

	for (const char *p = open + 2; p + 1 < end; p++)
		if (p[0] == want && p[1] == '}')
			return p;
	return NULL;
}

static const char *next_tag(const char *p, const char *end)
{
	for (; p + 1 < end; p++)
		if (p[0] == '{' && (p[1] == '{' || p[1] == '%' || p[1] == '#'))
			return p;
	return NULL;
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

int image_template_render(const char *tpl, size_t len, const json_t *vars, char **ret,
			  size_t *ret_len)
{
	_cleanup_free_ char *out = NULL;
	const char *p = tpl, *end = tpl + len;
	struct cond c = {0};
	size_t olen = 0, cap = 0;
	bool trim_next = false;
	int r = buf_add(&out, &olen, &cap, "", 0);

	while (r >= 0 && p < end) {
		const char *open = next_tag(p, end), *close = open ? tag_end(open, end) : NULL;
		const char *body, *body_end, *text_end = close ? open : end;

		if (trim_next)
			while (p < text_end && is_space(*p))
				p++;
		trim_next = false;
		body = close ? open + 2 : NULL;
		body_end = close;
		if (body && *body == '-') /* "{%-": trim the text before */
			for (body++; text_end > p && is_space(text_end[-1]);)
				text_end--;
		if (cond_on(&c))
			r = buf_add(&out, &olen, &cap, p, (size_t)(text_end - p));
		if (r < 0 || !close)
			break;
		if (body_end > body && body_end[-1] == '-') {
			body_end--;
			trim_next = true;
		}
		if (open[1] == '%')
			r = control_tag(&c, vars, body, (size_t)(body_end - body));
		else if (open[1] == '{' && cond_on(&c)) {
			struct val v = {0};

			r = eval(vars, body, (size_t)(body_end - body), &v);
			if (r >= 0)
				r = buf_add(&out, &olen, &cap, v.s, strlen(v.s));
			free(v.s);
		}
		p = close + 2;
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

/* Open the file at O_PATH descriptor `pfd` with `flags` (and O_NONBLOCK) when it is a
 * regular file, else -EMEDIUMTYPE: a FIFO or a device node never gets opened, so it can
 * neither block us nor take what we write. Reopening through /proc/self/fd reaches the
 * same inode that was checked. */
static int reopen_regular(int pfd, int flags)
{
	char proc[64];
	struct stat st;
	int fd;

	if (fstat(pfd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EMEDIUMTYPE;
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", pfd);
	fd = open(proc, flags | O_NONBLOCK | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

static int read_file(int dirfd, const char *name, char **ret, size_t *ret_len,
		     struct berth_error *err)
{
	_cleanup_close_ int pfd = openat(dirfd, name, O_PATH | O_CLOEXEC | O_NOFOLLOW);
	_cleanup_close_ int fd = -EBADF;
	_cleanup_free_ char *buf = NULL;
	struct stat st;
	size_t got = 0;

	fd = pfd < 0 ? -errno : reopen_regular(pfd, O_RDONLY);
	if (fd == -EMEDIUMTYPE)
		return berth_error_set(err, -EINVAL, BERTH_ERR_INTERNAL,
				       "Template \"%s\" is not a regular file", name);
	if (fd < 0 || fstat(fd, &st) < 0)
		return berth_error_set(err, fd < 0 ? fd : -errno, BERTH_ERR_INTERNAL,
				       "Cannot read template \"%s\": %s", name,
				       strerror(fd < 0 ? -fd : errno));
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

/* The owner new files and directories get: the container's root. An unshifted volume
 * (mounted idmapped) stores it as 0; one shifted on disk (<volume>/berth-shift
 * "UIDBASE GIDBASE COUNT") as the bases. */
struct owner {
	uid_t uid;
	gid_t gid;
};

static struct owner volume_owner(const char *volume)
{
	_cleanup_free_ char *marker = berth_strdup_printf("%s/berth-shift", volume);
	_cleanup_free_ char *text = NULL;
	unsigned long u, g, n;
	size_t len = 0;

	if (marker && berth_read_file(marker, 256, &text, &len) >= 0 &&
	    sscanf(text, "%lu %lu %lu", &u, &g, &n) == 3)
		return (struct owner){(uid_t)u, (gid_t)g};
	return (struct owner){0, 0};
}

static long openat2_in(int rootfd, const char *path, uint64_t flags, uint64_t mode)
{
	struct open_how how = {
		.flags = flags | O_CLOEXEC,
		.mode = mode,
		.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
	};

	while (*path == '/')
		path++;
	return syscall(SYS_openat2, rootfd, *path ? path : ".", &how, sizeof(how));
}

/* The directories leading to `path` below the rootfs, made 0755 for `o` where missing
 * (as LXD does for a template's target), each resolved inside the rootfs. */
static int parents_in_root(int rootfd, const char *path, struct owner o)
{
	_cleanup_free_ char *dir = strdup(path);
	char *p = dir ? strrchr(dir, '/') : NULL;

	if (!dir)
		return -ENOMEM;
	if (!p)
		return 0;
	*p = '\0'; /* the parent's path */
	for (p = dir; *p == '/'; p++)
		;
	while (*p) {
		_cleanup_close_ int parent = -EBADF;
		char *next = strchr(p, '/');
		char first = *p;

		if (next)
			*next = '\0';
		*p = '\0'; /* dir: the path up to this component */
		parent = (int)openat2_in(rootfd, dir, O_PATH | O_DIRECTORY, 0);
		*p = first;
		if (parent < 0)
			return -errno;
		if (mkdirat(parent, p, 0755) == 0)
			(void)!fchownat(parent, p, o.uid, o.gid, AT_SYMLINK_NOFOLLOW);
		else if (errno != EEXIST)
			return -errno;
		if (!next)
			break;
		*next = '/';
		for (p = next + 1; *p == '/'; p++)
			;
	}
	return 0;
}

/* Open (create, truncate) `path` below the rootfs at `rootfd`, resolving every component
 * inside it: symlinks in the image cannot make us write on the host. A file made here
 * is 0644 and belongs to `o`; an existing one that is not a regular file (a FIFO, a
 * device node) is refused: -EMEDIUMTYPE. */
static int open_in_root(int rootfd, const char *path, struct owner o)
{
	long fd = openat2_in(rootfd, path, O_PATH | O_NOFOLLOW, 0);

	if (fd >= 0) {
		int pfd = (int)fd;

		fd = reopen_regular(pfd, O_WRONLY | O_TRUNC);
		close(pfd);
		return (int)fd;
	}
	if (errno == ENOENT) {
		int r = parents_in_root(rootfd, path, o);

		if (r < 0)
			return r;
		fd = openat2_in(rootfd, path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0644);
		if (fd >= 0 && fchown((int)fd, o.uid, o.gid) < 0) {
			r = -errno;
			close((int)fd);
			return r;
		}
	}
	return fd < 0 ? -errno : (int)fd;
}

static bool exists_in_root(int rootfd, const char *path)
{
	long fd = openat2_in(rootfd, path, O_PATH | O_NOFOLLOW, 0);

	if (fd < 0)
		return false;
	close((int)fd);
	return true;
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

/* LXD's variables of one template: the shared ones, its `properties` and `path`. */
static json_t *template_vars(const json_t *vars, const char *path, const json_t *entry)
{
	json_t *v = json_copy((json_t *)vars);
	const json_t *props = json_object_get(entry, "properties");

	if (v && (json_object_set_new(v, "path", json_string(path)) < 0 ||
		  json_object_set_new(v, "properties",
				      json_is_object(props) ? json_copy((json_t *)props)
							    : json_object()) < 0)) {
		json_decref(v);
		return NULL;
	}
	return v;
}

static int apply_one(int tpldir, int rootfd, const char *path, const json_t *entry,
		     const json_t *vars, struct owner o, struct berth_error *err)
{
	_cleanup_free_ char *src = NULL;
	_cleanup_free_ char *out = NULL;
	_cleanup_close_ int fd = -EBADF;
	json_auto_t *tv = NULL;
	const char *name = berth_json_string(entry, "template");
	size_t len = 0, olen = 0;
	int r;

	if (!name || strchr(name, '/'))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Template for \"%s\" has no valid file name", path);
	if (json_is_true(json_object_get(entry, "create_only")) && exists_in_root(rootfd, path))
		return 0;
	r = read_file(tpldir, name, &src, &len, err);
	if (r < 0)
		return r;
	tv = template_vars(vars, path, entry);
	r = tv ? image_template_render(src, len, tv, &out, &olen) : -ENOMEM;
	if (r == -EINVAL)
		return berth_error_set(err, r, BERTH_ERR_BAD_REQUEST,
				       "Template \"%s\": if blocks nested too deep", name);
	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "Out of memory");
	fd = open_in_root(rootfd, path, o);
	if (fd == -EMEDIUMTYPE)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Template target \"%s\" is not a regular file", path);
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
	struct owner owner;
	int r;

	if (!tpl_path || !root_path)
		return -ENOMEM;
	if (!json_object_size(json_object_get(metadata, "templates")))
		return 0;
	owner = volume_owner(volume);
	tpldir = open(tpl_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	rootfd = open(root_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (tpldir < 0 || rootfd < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL,
				       "Cannot open the templates or rootfs of \"%s\": %m", volume);
	json_object_foreach((json_t *)json_object_get(metadata, "templates"), path, entry) {
		if (!fires(entry, trigger))
			continue;
		r = apply_one(tpldir, rootfd, path, entry, vars, owner, err);
		if (r < 0)
			return r;
	}
	return 0;
}
