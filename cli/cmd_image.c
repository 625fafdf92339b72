/* cli/cmd_image.c: `berth image ...`: import (streamed, with a progress bar on a
 * terminal), copy between servers, list, info, show, edit, export, delete, and
 * `berth image alias ...`.
 * An image argument is an alias or a fingerprint prefix, as with lxc. */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/output.h"
#include "lib/json.h"
#include "lib/util.h"
#include "lib/yaml.h"

#define IMAGE_CMD(id, sub, args, desc, mn, mx, opts)                                               \
	static const struct cli_command id = {                                                     \
		.name = "image " sub,                                                              \
		.usage = "berth image " sub " " args,                                              \
		.description = desc,                                                               \
		.options = opts,                                                                   \
		.min_args = mn,                                                                    \
		.max_args = mx,                                                                    \
	}

static const struct cli_option format_option[] = {
	{ "format", 'f', "FORMAT", "Format (csv|json|table|yaml|compact) (default \"table\")" },
	{ 0 },
};
static const struct cli_option import_options[] = {
	{ "alias", 0, "ALIAS", "New aliases to add to the image (repeatable)" },
	{ "public", 0, NULL, "Make the image public" },
	{ 0 },
};
static const struct cli_option copy_options[] = {
	{ "alias", 0, "ALIAS", "New aliases to add to the image (repeatable)" },
	{ "copy-aliases", 0, NULL, "Copy the source's aliases" },
	{ "public", 0, NULL, "Make the image public" },
	{ "auto-update", 0, NULL, "Keep the image up to date after the initial copy" },
	{ "vm", 0, NULL, "Copy the virtual machine image (when one name has both)" },
	{ 0 },
};
enum { COPY_ALIAS, COPY_COPY_ALIASES, COPY_PUBLIC, COPY_AUTO_UPDATE, COPY_VM };
static const struct cli_option alias_create_options[] = {
	{ "description", 0, "TEXT", "Alias description" },
	{ 0 },
};

static const struct cli_command image_cmd = {
	.name = "image",
	.usage = "berth image [command]",
	.description = "Manage images",
	.min_args = 0,
	.max_args = -1,
};
IMAGE_CMD(import_cmd, "import", "<tarball> [<rootfs>] [key=value...] [flags]",
	  "Import images into the image store\n\n"
	  "  A unified tarball, or a metadata tarball and its rootfs (tarball or squashfs,\n"
	  "  or a virtual machine's qcow2 disk: rootfs.img).\n"
	  "  key=value arguments set image properties.",
	  1, -1, import_options);
IMAGE_CMD(copy_cmd, "copy", "[<remote>:]<image> <remote>: [flags]",
	  "Copy images between servers\n\n"
	  "  The target server pulls the image from the source remote (an LXD-protocol\n"
	  "  server: berthd or LXD, or a simplestreams one); a private image is fetched\n"
	  "  with a secret the source hands out.",
	  2, 2, copy_options);
IMAGE_CMD(list_cmd, "list", "[<remote>:] [flags]", "List images", 0, 1, format_option);
IMAGE_CMD(info_cmd, "info", "<image>", "Show useful information about images", 1, 1, NULL);
IMAGE_CMD(show_cmd, "show", "<image>", "Show image properties", 1, 1, NULL);
IMAGE_CMD(edit_cmd, "edit", "<image>",
	  "Edit image properties as YAML\n\n  With stdin not a terminal, the YAML is read from it.",
	  1, 1, NULL);
IMAGE_CMD(export_cmd, "export", "<image> [<target>]",
	  "Export and download images\n\n"
	  "  <target> is a directory (files named by the server) or a file name (a split\n"
	  "  image's rootfs then goes to <target>.root). Default: the current directory.",
	  1, 2, NULL);
IMAGE_CMD(delete_cmd, "delete", "<image>...", "Delete images", 1, -1, NULL);
IMAGE_CMD(alias_create_cmd, "alias create", "<alias> <image>",
	  "Create aliases for images\n\n  <image> is a fingerprint (prefix) or another alias.", 2,
	  2, alias_create_options);
IMAGE_CMD(alias_delete_cmd, "alias delete", "<alias>", "Delete image aliases", 1, 1, NULL);
IMAGE_CMD(alias_rename_cmd, "alias rename", "<alias> <new-name>", "Rename aliases", 2, 2, NULL);
IMAGE_CMD(alias_list_cmd, "alias list", "[flags]", "List image aliases", 0, 0, format_option);

static int oom(struct berth_error *err)
{
	return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
}

/* The full fingerprint for an alias or a fingerprint prefix. */
static int image_resolve(struct cli_ctx *ctx, const char *name, char **ret, struct berth_error *err)
{
	_cleanup_free_ char *apath = cli_path("/1.0/images/aliases/%s", name);
	_cleanup_free_ char *ipath = cli_path("/1.0/images/%s", name);
	struct berth_error ignored = { 0 };
	json_auto_t *m = NULL;
	int r;

	if (!apath || !ipath)
		return oom(err);
	r = cli_query(ctx, "GET", apath, NULL, &m, NULL, &ignored);
	berth_error_release(&ignored);
	if (r >= 0 && berth_json_string(m, "target")) {
		*ret = strdup(berth_json_string(m, "target"));
		return *ret ? 0 : oom(err);
	}
	json_decref(m);
	m = NULL;
	r = cli_query(ctx, "GET", ipath, NULL, &m, NULL, err);
	if (r < 0)
		return r;
	*ret = strdup(berth_json_string(m, "fingerprint") ?: name);
	return *ret ? 0 : oom(err);
}

/* ---- import ---- */

/* "X-LXD-filename: ...\r\n" and friends; properties URL-encoded as Go's url.Values. */
static char *import_headers(const char *filename, bool public_, char **props, int n_props)
{
	_cleanup_free_ char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (!f)
		return NULL;
	fprintf(f, "X-LXD-filename: %s\r\n", filename);
	if (public_)
		fprintf(f, "X-LXD-public: true\r\n");
	for (int i = 0; i < n_props; i++) {
		char *eq = strchr(props[i], '=');
		_cleanup_free_ char *k = NULL, *v = NULL;

		*eq = '\0';
		k = berth_url_encode(props[i]);
		v = berth_url_encode(eq + 1);
		*eq = '=';
		fprintf(f, "%s%s=%s", i == 0 ? "X-LXD-properties: " : "&", k ?: "", v ?: "");
	}
	if (n_props > 0)
		fprintf(f, "\r\n");
	if (fclose(f) != 0)
		return NULL;
	return TAKE_PTR(buf);
}

/* Whether `fd` (read at offset 0, -EBADF: no) holds a qcow2 image: a VM's disk. */
static bool is_qcow2(int fd)
{
	unsigned char magic[4];

	return fd >= 0 && pread(fd, magic, sizeof(magic), 0) == (ssize_t)sizeof(magic) &&
	       memcmp(magic, "QFI\xfb", 4) == 0;
}

static int import_send(struct cli_ctx *ctx, int meta_fd, uint64_t meta_size, int rootfs_fd,
		       uint64_t rootfs_size, const char *headers, json_t **ret_op,
		       struct berth_error *err)
{
	static const char boundary[] = "berth-image-upload-6a1f0c53e27d4b8e";
	static const char h1[] = "--berth-image-upload-6a1f0c53e27d4b8e\r\n"
				 "Content-Disposition: form-data; name=\"metadata\"; "
				 "filename=\"metadata\"\r\n"
				 "Content-Type: application/octet-stream\r\n\r\n";
	static const char h2[] = "\r\n--berth-image-upload-6a1f0c53e27d4b8e\r\n"
				 "Content-Disposition: form-data; name=\"rootfs\"; "
				 "filename=\"rootfs\"\r\n"
				 "Content-Type: application/octet-stream\r\n\r\n";
	/* A VM image's disk goes as LXD's client sends it: the part "rootfs.img". */
	static const char h2_vm[] = "\r\n--berth-image-upload-6a1f0c53e27d4b8e\r\n"
				    "Content-Disposition: form-data; name=\"rootfs.img\"; "
				    "filename=\"rootfs.img\"\r\n"
				    "Content-Type: application/octet-stream\r\n\r\n";
	const char *h2p = is_qcow2(rootfs_fd) ? h2_vm : h2;
	static const char tail[] = "\r\n--berth-image-upload-6a1f0c53e27d4b8e--\r\n";
	struct berth_upload_part parts[5];
	struct cli_upload_progress p = { .label = "Transferring image",
					 .start_ns = berth_monotonic_ns(),
					 .last_pct = -1 };
	struct berth_response resp = { 0 };
	_cleanup_free_ char *ctype = NULL;
	struct berth_client *c = NULL;
	bool bar = isatty(STDOUT_FILENO) && !ctx->quiet;
	size_t n = 0;
	int r = cli_client(ctx, &c, err);

	if (r < 0)
		return r;
	if (rootfs_fd < 0) {
		parts[n++] = (struct berth_upload_part){ .fd = meta_fd, .len = meta_size };
		ctype = strdup("application/octet-stream");
	} else {
		parts[n++] = (struct berth_upload_part){ .data = h1, .len = strlen(h1) };
		parts[n++] = (struct berth_upload_part){ .fd = meta_fd, .len = meta_size };
		parts[n++] = (struct berth_upload_part){ .data = h2p, .len = strlen(h2p) };
		parts[n++] = (struct berth_upload_part){ .fd = rootfs_fd, .len = rootfs_size };
		parts[n++] = (struct berth_upload_part){ .data = tail, .len = strlen(tail) };
		ctype = berth_strdup_printf("multipart/form-data; boundary=%s", boundary);
	}
	if (!ctype)
		return oom(err);
	r = berth_client_request_upload(c, "POST", "/1.0/images", ctype, headers, parts, n,
					bar ? cli_upload_progress_cb : NULL, &p, &resp, err);
	if (bar)
		printf("\r%-60s\r", "");
	if (r >= 0)
		r = berth_client_unwrap(c, &resp, ret_op, NULL, err);
	berth_response_release(&resp);
	return r;
}

static int add_aliases(struct cli_ctx *ctx, const char *fp, const char *aliases,
		       struct berth_error *err)
{
	_cleanup_free_ char *copy = aliases ? strdup(aliases) : NULL;
	char *save = NULL;

	if (aliases && !copy)
		return oom(err);
	for (char *a = copy ? strtok_r(copy, ",", &save) : NULL; a;
	     a = strtok_r(NULL, ",", &save)) {
		json_auto_t *body = json_pack("{s:s, s:s, s:s}", "name", a, "description", "",
					      "target", fp);
		int r = body ? cli_query(ctx, "POST", "/1.0/images/aliases", body, NULL, NULL, err)
			     : oom(err);
		if (r < 0)
			return r;
	}
	return 0;
}

static int image_import(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	_cleanup_close_ int meta = -EBADF, rootfs = -EBADF;
	_cleanup_free_ char *headers = NULL;
	json_auto_t *op = NULL;
	uint64_t meta_size = 0, rootfs_size = 0;
	int n_files = 0, r;
	const char *fp;

	while (n_files < a->n_pos && n_files < 2 && !strchr(a->pos[n_files], '='))
		n_files++;
	if (n_files == 0)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "no image file given (see 'berth image import --help')");
	for (int i = n_files; i < a->n_pos; i++)
		if (!strchr(a->pos[i], '=') || a->pos[i][0] == '=')
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "bad property \"%s\": expected key=value",
					       a->pos[i]);
	r = cli_open_regular(a->pos[0], &meta, &meta_size, err);
	if (r >= 0 && n_files == 2)
		r = cli_open_regular(a->pos[1], &rootfs, &rootfs_size, err);
	if (r < 0)
		return r;
	headers = import_headers(n_files == 2 ? a->pos[1] : a->pos[0], a->values[1] != NULL,
				 a->pos + n_files, a->n_pos - n_files);
	if (!headers)
		return oom(err);
	r = import_send(ctx, meta, meta_size, rootfs, rootfs_size, headers, &op, err);
	if (r < 0)
		return r;
	fp = berth_json_string(json_object_get(op, "metadata"), "fingerprint");
	if (!fp)
		return berth_error_set(err, -EPROTO, BERTH_ERR_INTERNAL,
				       "the server did not return the image's fingerprint");
	r = add_aliases(ctx, fp, a->values[0], err);
	if (r < 0)
		return r;
	printf("Image imported with fingerprint: %s\n", fp);
	return 0;
}

/* ---- list, info, show, edit ---- */

static char *size_mb(const json_t *img)
{
	return berth_strdup_printf("%.2fMB",
				   (double)json_integer_value(json_object_get(img, "size")) /
					   1048576.0);
}

/* "Nov 23, 2026 at 5:04pm (UTC)", as lxc prints RFC 3339 times in tables. */
static char *date_cell(const char *rfc3339)
{
	struct tm tm = { 0 };
	char buf[64];
	int hour;

	if (!rfc3339 || !strptime(rfc3339, "%Y-%m-%dT%H:%M:%S", &tm))
		return strdup(rfc3339 ? rfc3339 : "");
	hour = tm.tm_hour % 12 ? tm.tm_hour % 12 : 12;
	strftime(buf, sizeof(buf), "%b", &tm);
	return berth_strdup_printf("%s %d, %d at %d:%02d%s (UTC)", buf, tm.tm_mday,
				   tm.tm_year + 1900, hour, tm.tm_min,
				   tm.tm_hour < 12 ? "am" : "pm");
}

static char *aliases_cell(const json_t *img)
{
	_cleanup_free_ char *buf = NULL;
	size_t len = 0, i;
	FILE *f = open_memstream(&buf, &len);
	json_t *al;

	if (!f)
		return NULL;
	json_array_foreach(json_object_get(img, "aliases"), i, al)
		fprintf(f, "%s%s", i ? "\n" : "", berth_json_string(al, "name") ?: "");
	if (fclose(f) != 0)
		return NULL;
	return TAKE_PTR(buf);
}

static int image_list(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	static const char *headers[] = { "ALIAS",	 "FINGERPRINT", "PUBLIC", "DESCRIPTION",
					 "ARCHITECTURE", "TYPE",	"SIZE",	  "UPLOAD DATE" };
	json_auto_t *list = NULL;
	struct cli_table t;
	enum cli_format fmt;
	json_t *img;
	size_t i;
	int r = cli_format_parse(a->values[0], &fmt, err);

	if (r >= 0)
		r = cli_remote_args(ctx, a->pos, a->n_pos, err);
	if (r >= 0 && a->n_pos > 0 && *a->pos[0])
		r = berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				    "image filters are not supported: %s", a->pos[0]);
	if (r >= 0)
		r = cli_query(ctx, "GET", "/1.0/images?recursion=1", NULL, &list, NULL, err);
	if (r < 0)
		return r;
	if (fmt == CLI_FORMAT_JSON || fmt == CLI_FORMAT_YAML)
		return cli_print_value(list, fmt, stdout, err);
	cli_table_init(&t, ARRAY_SIZE(headers), headers);
	json_array_foreach(list, i, img) {
		const char *fp = berth_json_string(img, "fingerprint") ?: "";
		const char *type = berth_json_string(img, "type") ?: "";
		char *cells[8] = {
			aliases_cell(img),
			strndup(fp, 12),
			strdup(json_is_true(json_object_get(img, "public")) ? "yes" : "no"),
			strdup(berth_json_string(json_object_get(img, "properties"), "description")
				       ?: ""),
			strdup(berth_json_string(img, "architecture") ?: ""),
			strdup(streq(type, "virtual-machine") ? "VIRTUAL-MACHINE" : "CONTAINER"),
			size_mb(img),
			date_cell(berth_json_string(img, "uploaded_at")),
		};

		if ((r = cli_table_add_row(&t, cells)) < 0)
			break;
	}
	if (r >= 0) {
		cli_table_sort(&t);
		r = cli_table_print(&t, fmt, stdout);
	}
	cli_table_release(&t);
	return r;
}

static int image_get(struct cli_ctx *ctx, const char *name, char **ret_path, json_t **ret,
		     char **ret_etag, struct berth_error *err)
{
	_cleanup_free_ char *fp = NULL, *path = NULL;
	int r = image_resolve(ctx, name, &fp, err);

	if (r < 0)
		return r;
	path = cli_path("/1.0/images/%s", fp);
	if (!path)
		return oom(err);
	r = cli_query(ctx, "GET", path, NULL, ret, ret_etag, err);
	if (r >= 0 && ret_path)
		*ret_path = TAKE_PTR(path);
	return r;
}

static void print_time(const char *label, const json_t *img, const char *key, const char *zero)
{
	const char *v = berth_json_string(img, key) ?: "";

	if (berth_startswith(v, "0001-01-01") || !*v)
		printf("    %s: %s\n", label, zero);
	else
		printf("    %s: %.10s %.5s UTC\n", label, v, v + 11);
}

static int image_info(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	json_auto_t *img = NULL;
	const char *key;
	json_t *v;
	size_t i;
	int r = image_get(ctx, a->pos[0], NULL, &img, NULL, err);

	if (r < 0)
		return r;
	printf("Fingerprint: %s\n", berth_json_string(img, "fingerprint"));
	printf("Size: %.2fMB\n",
	       (double)json_integer_value(json_object_get(img, "size")) / 1048576.0);
	printf("Architecture: %s\n", berth_json_string(img, "architecture"));
	printf("Type: %s\n", berth_json_string(img, "type"));
	printf("Public: %s\n", json_is_true(json_object_get(img, "public")) ? "yes" : "no");
	printf("Timestamps:\n");
	print_time("Created", img, "created_at", "never");
	print_time("Uploaded", img, "uploaded_at", "never");
	print_time("Expires", img, "expires_at", "never");
	print_time("Last used", img, "last_used_at", "never");
	printf("Properties:\n");
	json_object_foreach(json_object_get(img, "properties"), key, v)
		printf("    %s: %s\n", key, json_string_value(v));
	printf("Aliases:\n");
	json_array_foreach(json_object_get(img, "aliases"), i, v)
		printf("    - %s\n", berth_json_string(v, "name"));
	printf("Cached: %s\n", json_is_true(json_object_get(img, "cached")) ? "yes" : "no");
	printf("Auto update: %s\n",
	       json_is_true(json_object_get(img, "auto_update")) ? "enabled" : "disabled");
	printf("Profiles:\n");
	json_array_foreach(json_object_get(img, "profiles"), i, v)
		printf("    - %s\n", json_string_value(v));
	return 0;
}

static int image_show(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	json_auto_t *img = NULL;
	int r = image_get(ctx, a->pos[0], NULL, &img, NULL, err);

	return r < 0 ? r : cli_print_yaml(img, err);
}

struct edit_target {
	char *path;
	char *etag;
};

static int edit_apply(struct cli_ctx *ctx, json_t *edited, void *data, struct berth_error *err)
{
	struct edit_target *t = data;

	if (!json_is_object(edited))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "the edited YAML must be a mapping (key: value lines)");
	return cli_query_if_match(ctx, "PUT", t->path, edited, t->etag, NULL, err);
}

static const char edit_header[] = "### This is a YAML representation of the image properties.\n"
				  "### Any line starting with a '# will be ignored.\n"
				  "###\n"
				  "### Each property is represented by a single line:\n"
				  "### An example would be:\n"
				  "###  description: My custom image\n";

static int image_edit(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	static const char *const keys[] = { "auto_update", "properties", "public",
					    "expires_at",  "profiles",	 NULL };
	struct edit_target t = { 0 };
	json_auto_t *img = NULL, *w = NULL;
	int r = image_get(ctx, a->pos[0], &t.path, &img, &t.etag, err);

	if (r >= 0) {
		w = cli_writable(img, keys);
		r = w ? cli_edit(ctx, w, edit_header, edit_apply, &t, err) : oom(err);
	}
	free(t.path);
	free(t.etag);
	return r;
}

/* ---- export ---- */

static int write_file(const char *path, const void *data, size_t len, struct berth_error *err)
{
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	const char *p = data;

	if (fd < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "open %s: %s", path,
				       strerror(errno));
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0)
			return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "write %s: %s",
					       path, strerror(errno));
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static const char *suffix_of(const char *data, size_t len)
{
	if (len >= 2 && memcmp(data, "\x1f\x8b", 2) == 0)
		return ".tar.gz";
	if (len >= 5 && memcmp(data,
			       "\xfd"
			       "7zXZ",
			       5) == 0)
		return ".tar.xz";
	if (len >= 4 && memcmp(data, "\x28\xb5\x2f\xfd", 4) == 0)
		return ".tar.zst";
	if (len >= 4 && memcmp(data, "hsqs", 4) == 0)
		return ".squashfs";
	return ".tar";
}

/* Where a downloaded file goes: into directory `target` under `name`, or `target` itself
 * (plus `alt_suffix` for a split image's rootfs). */
static char *target_path(const char *target, const char *name, const char *alt_suffix)
{
	struct stat st;

	if (stat(target, &st) == 0 && S_ISDIR(st.st_mode))
		return berth_strdup_printf("%s/%s", target, name);
	return berth_strdup_printf("%s%s", target, alt_suffix);
}

/* The bytes of part `idx` of a multipart body, found by the boundary. */
static int part_find(const char *body, size_t len, const char *boundary, int idx, const char **ret,
		     size_t *ret_len)
{
	_cleanup_free_ char *delim = berth_strdup_printf("--%s", boundary);
	const char *p = body, *end = body + len;
	size_t dl;

	if (!delim)
		return -ENOMEM;
	dl = strlen(delim);
	for (int i = 0; i <= idx; i++) {
		p = memmem(p, (size_t)(end - p), delim, dl);
		if (!p)
			return -EPROTO;
		p += dl;
	}
	p = memmem(p, (size_t)(end - p), "\r\n\r\n", 4);
	if (!p)
		return -EPROTO;
	p += 4;
	{
		_cleanup_free_ char *next = berth_strdup_printf("\r\n--%s", boundary);
		const char *q = next ? memmem(p, (size_t)(end - p), next, strlen(next)) : NULL;
		if (!q)
			return -EPROTO;
		*ret = p;
		*ret_len = (size_t)(q - p);
	}
	return 0;
}

static int image_export(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	_cleanup_free_ char *fp = NULL, *path = NULL, *out1 = NULL, *out2 = NULL, *n1 = NULL,
			    *n2 = NULL;
	struct berth_response resp = { 0 };
	const char *target = a->n_pos > 1 ? a->pos[1] : ".";
	struct berth_client *c = NULL;
	const char *boundary;
	int r = image_resolve(ctx, a->pos[0], &fp, err);

	if (r >= 0)
		r = cli_client(ctx, &c, err);
	if (r < 0)
		return r;
	path = cli_path("/1.0/images/%s/export", fp);
	if (!path)
		return oom(err);
	r = berth_client_request(c, "GET", path, NULL, NULL, &resp, err);
	if (r >= 0 && resp.status != 200)
		r = berth_client_unwrap(c, &resp, NULL, NULL, err);
	if (r >= 0 && resp.content_type && berth_startswith(resp.content_type, "multipart/") &&
	    (boundary = strstr(resp.content_type, "boundary="))) {
		const char *m, *rf;
		size_t ml, rl;

		boundary += strlen("boundary=");
		if (part_find(resp.body, resp.body_len, boundary, 0, &m, &ml) < 0 ||
		    part_find(resp.body, resp.body_len, boundary, 1, &rf, &rl) < 0) {
			r = berth_error_set(err, -EPROTO, BERTH_ERR_INTERNAL,
					    "bad multipart image from the server");
		} else {
			n1 = berth_strdup_printf("meta-%s%s", fp, suffix_of(m, ml));
			n2 = berth_strdup_printf("%s%s", fp, suffix_of(rf, rl));
			out1 = n1 ? target_path(target, n1, "") : NULL;
			out2 = n2 ? target_path(target, n2, ".root") : NULL;
			r = out1 && out2 ? write_file(out1, m, ml, err) : oom(err);
			if (r >= 0)
				r = write_file(out2, rf, rl, err);
		}
	} else if (r >= 0) {
		n1 = berth_strdup_printf("%s%s", fp, suffix_of(resp.body, resp.body_len));
		out1 = n1 ? target_path(target, n1, "") : NULL;
		r = out1 ? write_file(out1, resp.body, resp.body_len, err) : oom(err);
	}
	berth_response_release(&resp);
	if (r >= 0 && !ctx->quiet)
		printf("Image exported successfully!\n");
	return r;
}

static int image_delete(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	for (int i = 0; i < a->n_pos; i++) {
		_cleanup_free_ char *fp = NULL, *path = NULL;
		int r = image_resolve(ctx, a->pos[i], &fp, err);

		if (r < 0)
			return r;
		path = cli_path("/1.0/images/%s", fp);
		if (!path)
			return oom(err);
		r = cli_query(ctx, "DELETE", path, NULL, NULL, NULL, err);
		if (r < 0)
			return r;
	}
	return 0;
}

/* ---- aliases ---- */

static int alias_create(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	_cleanup_free_ char *fp = NULL;
	json_auto_t *body = NULL;
	int r = image_resolve(ctx, a->pos[1], &fp, err);

	if (r < 0)
		return r;
	body = json_pack("{s:s, s:s, s:s}", "name", a->pos[0], "description",
			 a->values[0] ? a->values[0] : "", "target", fp);
	if (!body)
		return oom(err);
	return cli_query(ctx, "POST", "/1.0/images/aliases", body, NULL, NULL, err);
}

static int alias_delete(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	_cleanup_free_ char *path = cli_path("/1.0/images/aliases/%s", a->pos[0]);

	if (!path)
		return oom(err);
	return cli_query(ctx, "DELETE", path, NULL, NULL, NULL, err);
}

static int alias_rename(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	_cleanup_free_ char *path = cli_path("/1.0/images/aliases/%s", a->pos[0]);
	json_auto_t *body = json_pack("{s:s}", "name", a->pos[1]);

	if (!path || !body)
		return oom(err);
	return cli_query(ctx, "POST", path, body, NULL, NULL, err);
}

static int alias_list(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	static const char *headers[] = { "ALIAS", "FINGERPRINT", "TYPE", "DESCRIPTION" };
	json_auto_t *list = NULL;
	struct cli_table t;
	enum cli_format fmt;
	json_t *al;
	size_t i;
	int r = cli_format_parse(a->values[0], &fmt, err);

	if (r >= 0)
		r = cli_query(ctx, "GET", "/1.0/images/aliases?recursion=1", NULL, &list, NULL,
			      err);
	if (r < 0)
		return r;
	if (fmt == CLI_FORMAT_JSON || fmt == CLI_FORMAT_YAML)
		return cli_print_value(list, fmt, stdout, err);
	cli_table_init(&t, ARRAY_SIZE(headers), headers);
	json_array_foreach(list, i, al) {
		const char *type = berth_json_string(al, "type") ?: "container";
		char *cells[4] = {
			strdup(berth_json_string(al, "name") ?: ""),
			strndup(berth_json_string(al, "target") ?: "", 12),
			strdup(streq(type, "virtual-machine") ? "VIRTUAL-MACHINE" : "CONTAINER"),
			strdup(berth_json_string(al, "description") ?: ""),
		};

		if ((r = cli_table_add_row(&t, cells)) < 0)
			break;
	}
	if (r >= 0) {
		cli_table_sort(&t);
		r = cli_table_print(&t, fmt, stdout);
	}
	cli_table_release(&t);
	return r;
}

/* The aliases the copy gets: --alias names, and with --copy-aliases those the image has
 * on the source (an LXD-protocol one; a simplestreams image keeps the name asked for). */
static int copy_aliases(const struct berth_remote_config *conf, const char *sremote,
			const char *image, const json_t *src, const struct cli_args *a,
			json_t **ret, struct berth_error *err)
{
	_cleanup_(berth_client_freep) struct berth_client *c = NULL;
	_cleanup_free_ char *names = a->values[COPY_ALIAS] ? strdup(a->values[COPY_ALIAS]) : NULL;
	_cleanup_free_ char *path = NULL;
	json_auto_t *list = json_array(), *info = NULL;
	char *save = NULL;
	json_t *al;
	size_t i;
	int r;

	if (!list || (a->values[COPY_ALIAS] && !names))
		return oom(err);
	for (char *n = names ? strtok_r(names, ",", &save) : NULL; n;
	     n = strtok_r(NULL, ",", &save))
		json_array_append_new(list, json_pack("{s:s}", "name", n));
	if (a->values[COPY_COPY_ALIASES] && berth_json_string(src, "fingerprint")) {
		path = cli_path("/1.0/images/%s", berth_json_string(src, "fingerprint"));
		if (!path)
			return oom(err);
		r = berth_remote_config_client(conf, sremote, &c, err);
		if (r >= 0)
			r = berth_client_query(c, "GET", path, NULL, &info, NULL, err);
		if (r < 0)
			return berth_error_wrap(err, r, "the aliases of \"%s\" on %s", image,
						sremote);
		json_array_foreach(json_object_get(info, "aliases"), i, al)
			json_array_append_new(list, json_pack("{s:s, s:s}", "name",
							      berth_json_string(al, "name") ?: "",
							      "description",
							      berth_json_string(al, "description")
								      ?: ""));
	} else if (a->values[COPY_COPY_ALIASES]) {
		json_array_append_new(list, json_pack("{s:s}", "name", image));
	}
	*ret = TAKE_PTR(list);
	return 0;
}

/* berth image copy SRC:IMAGE DST: the target pulls, as lxc image copy has it do. */
static int image_copy(struct cli_ctx *ctx, struct cli_args *a, struct berth_error *err)
{
	struct berth_remote_config *conf = NULL;
	struct berth_client *c = NULL;
	struct berth_response resp = { 0 };
	const char *sremote = NULL, *image = NULL, *dremote = NULL, *rest = NULL, *url;
	json_auto_t *src = NULL, *body = NULL, *aliases = NULL, *op = NULL;
	int r = cli_remote_config(ctx, &conf, err);

	if (r >= 0)
		r = berth_remote_config_split(conf, a->pos[0], &sremote, &image, err);
	if (r >= 0)
		r = berth_remote_config_split(conf, a->pos[1], &dremote, &rest, err);
	if (r < 0)
		return r;
	if (*rest || !strchr(a->pos[1], ':'))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "The target must be a remote (\"REMOTE:\"), not \"%s\"",
				       a->pos[1]);
	if (streq(sremote, dremote))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "The source and target remote are the same (%s)", sremote);
	r = cli_remote_image_source(conf, sremote, image, &src, err);
	if (r >= 0 && a->values[COPY_VM])
		r = json_object_set_new(src, "image_type", json_string("virtual-machine"));
	if (r >= 0)
		r = copy_aliases(conf, sremote, image, src, a, &aliases, err);
	if (r < 0)
		return r;
	body = json_pack("{s:O, s:b, s:b, s:O}", "source", src, "public",
			 a->values[COPY_PUBLIC] != NULL, "auto_update",
			 a->values[COPY_AUTO_UPDATE] != NULL, "aliases", aliases);
	if (!body)
		return oom(err);
	r = cli_use_remote(ctx, dremote, err);
	if (r >= 0)
		r = cli_client(ctx, &c, err);
	if (r >= 0)
		r = berth_client_request(c, "POST", "/1.0/images", body, NULL, &resp, err);
	if (r >= 0)
		r = cli_operation_started(c, &resp, &url, err);
	if (r >= 0)
		r = cli_wait_progress(ctx, url, "download_progress", "Copying the image",
				      !ctx->quiet && isatty(STDOUT_FILENO), NULL, &op, err);
	berth_response_release(&resp);
	if (r >= 0 && !ctx->quiet)
		printf("Image copied successfully!\n");
	return r;
}

int cmd_image(struct cli_ctx *ctx, int argc, char **argv, struct berth_error *err)
{
	static const struct cli_subcommand subs[] = {
		{ &alias_create_cmd, alias_create }, { &alias_delete_cmd, alias_delete },
		{ &alias_list_cmd, alias_list },     { &alias_rename_cmd, alias_rename },
		{ &copy_cmd, image_copy },	     { &delete_cmd, image_delete },
		{ &edit_cmd, image_edit },	     { &export_cmd, image_export },
		{ &import_cmd, image_import },	     { &info_cmd, image_info },
		{ &list_cmd, image_list },	     { &show_cmd, image_show },
	};

	return cli_dispatch(ctx, &image_cmd, subs, ARRAY_SIZE(subs), argc, argv, err);
}
