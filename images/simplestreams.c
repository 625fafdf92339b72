/* images/simplestreams.c: index.json and products parsing into a flat list of images,
 * alias and fingerprint resolution over it, and the download of one image's files. */
#include "images/simplestreams.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/json.h"
#include "lib/macros.h"
#include "lib/util.h"

/* Products files and the index are JSON documents of a few MiB at most (the public
 * servers' largest is ~10 MiB). */
#define SS_INDEX_MAX (64u << 20)

static const char *const arch_map[][2] = {
	{"amd64", "x86_64"},	{"i386", "i686"},	{"arm64", "aarch64"},
	{"armhf", "armv7l"},	{"armel", "armv6l"},	{"ppc64el", "ppc64le"},
	{"s390x", "s390x"},	{"riscv64", "riscv64"}, {"x86_64", "x86_64"},
	{"aarch64", "aarch64"}, {"ppc64le", "ppc64le"},
};

/* Rootfs kinds an item may pair with the metadata tarball, in LXD's order of
 * preference; the unified tarball comes last. */
static const char *const root_ftypes[] = {"squashfs", "root.tar.xz", "disk-kvm.img", "uefi1.img",
					  "disk1.img"};
#define FTYPE_COMBINED "lxd_combined.tar.gz"

const char *ss_arch_to_lxd(const char *product_arch)
{
	for (size_t i = 0; product_arch && i < ARRAY_SIZE(arch_map); i++)
		if (streq(arch_map[i][0], product_arch))
			return arch_map[i][1];
	return NULL;
}

static void image_release(struct ss_image *img)
{
	free(img->architecture);
	free(img->product_arch);
	free(img->type);
	free(img->serial);
	free(img->ftype);
	free(img->filename);
	json_decref(img->aliases);
	json_decref(img->properties);
	free(img->meta.path);
	free(img->rootfs.path);
}

void ss_catalog_release(struct ss_catalog *cat)
{
	for (size_t i = 0; i < cat->n_images; i++)
		image_release(&cat->images[i]);
	free(cat->images);
	cat->images = NULL;
	cat->n_images = 0;
}

static bool is_sha256(const char *s)
{
	if (!s || strlen(s) != 64)
		return false;
	for (; *s; s++)
		if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
			return false;
	return true;
}

int ss_index_parse(const char *buf, size_t len, json_t **ret, struct berth_error *err)
{
	json_auto_t *doc = NULL;
	json_auto_t *paths = json_array();
	json_t *index, *entry;
	const char *key;
	int r = berth_json_parse(buf, len, &doc, err);

	if (r < 0)
		return berth_error_wrap(err, r, "Invalid simplestreams index");
	if (!paths)
		return -ENOMEM;
	index = json_object_get(doc, "index");
	if (!json_is_object(index))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Invalid simplestreams index: no \"index\" object");
	json_object_foreach(index, key, entry) {
		const char *path = berth_json_string(entry, "path");
		json_t *products = json_object_get(entry, "products");

		if (!streq(berth_json_string(entry, "datatype") ?: "", "image-downloads") ||
		    !path || !*path || !json_is_array(products) || json_array_size(products) == 0)
			continue;
		if (json_array_append_new(paths, json_string(path)) < 0)
			return -ENOMEM;
	}
	*ret = TAKE_PTR(paths);
	return 0;
}

static int file_from_item(const json_t *item, struct ss_file *f)
{
	const char *path = berth_json_string(item, "path");
	const char *sha = berth_json_string(item, "sha256");
	json_t *size = json_object_get(item, "size");

	if (!path || !*path || !is_sha256(sha) || (size && !json_is_integer(size)) ||
	    json_integer_value(size) < 0)
		return -EINVAL;
	f->path = strdup(path);
	if (!f->path)
		return -ENOMEM;
	memcpy(f->sha256, sha, 65);
	f->size = (uint64_t)json_integer_value(size);
	return 0;
}

/* The fingerprint the metadata item announces for a rootfs of kind `ftype`. */
static const char *combined_hash(const json_t *meta, const char *ftype)
{
	if (!ftype)
		return berth_json_string(meta, "sha256");
	if (streq(ftype, "root.tar.xz"))
		return berth_json_string(meta, "combined_rootxz_sha256")
			       ?: berth_json_string(meta, "combined_sha256");
	if (streq(ftype, "squashfs"))
		return berth_json_string(meta, "combined_squashfs_sha256");
	if (streq(ftype, "disk-kvm.img"))
		return berth_json_string(meta, "combined_disk-kvm-img_sha256");
	if (streq(ftype, "disk1.img"))
		return berth_json_string(meta, "combined_disk1-img_sha256");
	if (streq(ftype, "uefi1.img"))
		return berth_json_string(meta, "combined_uefi1-img_sha256");
	return NULL;
}

static void prop_set(json_t *props, const char *key, const char *value)
{
	if (value && *value)
		json_object_set_new(props, key, json_string(value));
}

static int image_properties(const json_t *product, const char *serial, const char *label,
			    const char *ftype, json_t **ret)
{
	const char *os = berth_json_string(product, "os") ?: "";
	const char *arch = berth_json_string(product, "arch") ?: "";
	_cleanup_free_ char *desc = NULL;
	json_t *props = json_object();

	if (!props)
		return -ENOMEM;
	if (label && *label)
		desc = berth_strdup_printf("%s %s %s (%s) (%s)", os,
					   berth_json_string(product, "release_title") ?: "", arch,
					   label, serial);
	else
		desc = berth_strdup_printf("%s %s %s (%s)", os,
					   berth_json_string(product, "release_title") ?: "", arch,
					   serial);
	prop_set(props, "os", os);
	prop_set(props, "release", berth_json_string(product, "release"));
	prop_set(props, "version", berth_json_string(product, "version"));
	prop_set(props, "architecture", arch);
	prop_set(props, "label", label);
	prop_set(props, "serial", serial);
	prop_set(props, "description", desc);
	prop_set(props, "variant", berth_json_string(product, "variant"));
	prop_set(props, "type", ftype ? ftype : "tar.gz");
	*ret = props;
	return 0;
}

static int aliases_split(const json_t *product, json_t **ret)
{
	const char *list = berth_json_string(product, "aliases") ?: "";
	_cleanup_free_ char *copy = strdup(list);
	json_t *out = json_array();
	char *save = NULL;

	if (!copy || !out) {
		json_decref(out);
		return -ENOMEM;
	}
	for (char *a = strtok_r(copy, ",", &save); a; a = strtok_r(NULL, ",", &save)) {
		while (*a == ' ')
			a++;
		if (*a)
			json_array_append_new(out, json_string(a));
	}
	*ret = out;
	return 0;
}

struct version_ctx {
	const json_t *product;
	const char *arch; /* LXD's name */
	const char *serial;
	const char *label;
};

/* One image of a version: metadata item `meta` with rootfs item `root` (NULL: unified). */
static int image_add(struct ss_catalog *cat, const struct version_ctx *v, const json_t *meta,
		     const json_t *root)
{
	const char *ftype = root ? berth_json_string(root, "ftype") : NULL;
	const char *fp = combined_hash(meta, ftype);
	struct ss_image img = {0};
	const char *slash;
	void *grown;
	int r;

	if (!is_sha256(fp))
		return -EINVAL;
	memcpy(img.fingerprint, fp, 65);
	r = file_from_item(meta, &img.meta);
	if (r >= 0 && root)
		r = file_from_item(root, &img.rootfs);
	if (r >= 0)
		r = image_properties(v->product, v->serial, v->label, ftype, &img.properties);
	if (r >= 0)
		r = aliases_split(v->product, &img.aliases);
	if (r < 0) {
		image_release(&img);
		return r;
	}
	slash = strrchr(img.meta.path, '/');
	img.filename = strdup(slash ? slash + 1 : img.meta.path);
	img.architecture = strdup(v->arch);
	img.product_arch = strdup(berth_json_string(v->product, "arch"));
	img.serial = strdup(v->serial);
	img.ftype = strdup(ftype ? ftype : FTYPE_COMBINED);
	img.type = strdup(ftype && strstr(ftype, ".img") ? "virtual-machine" : "container");
	img.size = img.meta.size + img.rootfs.size;
	grown = realloc(cat->images, (cat->n_images + 1) * sizeof(*cat->images));
	if (!img.filename || !img.architecture || !img.product_arch || !img.serial || !img.ftype ||
	    !img.type || !grown) {
		if (grown)
			cat->images = grown;
		image_release(&img);
		return -ENOMEM;
	}
	cat->images = grown;
	cat->images[cat->n_images++] = img;
	return 0;
}

static bool is_root_ftype(const char *ftype)
{
	for (size_t i = 0; ftype && i < ARRAY_SIZE(root_ftypes); i++)
		if (streq(ftype, root_ftypes[i]))
			return true;
	return false;
}

static int version_add(struct ss_catalog *cat, const struct version_ctx *v, const json_t *items)
{
	const char *k1, *k2;
	json_t *item, *sub;

	json_object_foreach((json_t *)items, k1, item) {
		const char *ftype = berth_json_string(item, "ftype") ?: "";
		int r = 0;

		if (streq(ftype, FTYPE_COMBINED))
			r = image_add(cat, v, item, NULL);
		if (r == -ENOMEM)
			return r;
		if (!streq(ftype, "lxd.tar.xz"))
			continue;
		json_object_foreach((json_t *)items, k2, sub)
			if (is_root_ftype(berth_json_string(sub, "ftype")) &&
			    image_add(cat, v, item, sub) == -ENOMEM)
				return -ENOMEM;
	}
	return 0;
}

static bool serial_ok(const char *s)
{
	if (strlen(s) < 8)
		return false;
	for (int i = 0; i < 8; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

int ss_products_parse(const char *buf, size_t len, struct ss_catalog *cat, struct berth_error *err)
{
	json_auto_t *doc = NULL;
	json_t *products, *product, *version;
	const char *pkey, *vkey;
	int r = berth_json_parse(buf, len, &doc, err);

	if (r < 0)
		return berth_error_wrap(err, r, "Invalid simplestreams products");
	products = json_object_get(doc, "products");
	if (!json_is_object(products))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Invalid simplestreams products: no \"products\" object");
	json_object_foreach(products, pkey, product) {
		struct version_ctx v = {.product = product};

		v.arch = ss_arch_to_lxd(berth_json_string(product, "arch"));
		if (!v.arch || !json_is_object(json_object_get(product, "versions")))
			continue;
		json_object_foreach(json_object_get(product, "versions"), vkey, version) {
			json_t *items = json_object_get(version, "items");

			if (!serial_ok(vkey) || !json_is_object(items))
				continue;
			v.serial = vkey;
			v.label = berth_json_string(version, "label");
			if (version_add(cat, &v, items) < 0)
				return -ENOMEM;
		}
	}
	return 0;
}

static int ftype_rank(const char *ftype)
{
	for (size_t i = 0; i < ARRAY_SIZE(root_ftypes); i++)
		if (streq(ftype, root_ftypes[i]))
			return (int)i;
	return (int)ARRAY_SIZE(root_ftypes);
}

/* Whether `a` is preferred over `b` for the same name: newer, then a container when
 * either type was asked for, then the better rootfs kind. */
static bool preferred(const struct ss_image *a, const struct ss_image *b)
{
	int c = strcmp(a->serial, b->serial);

	if (c != 0)
		return c > 0;
	if (!streq(a->type, b->type))
		return streq(a->type, "container");
	return ftype_rank(a->ftype) < ftype_rank(b->ftype);
}

static bool alias_matches(const struct ss_image *img, const char *name, const char *host_arch)
{
	size_t i;
	json_t *a;

	json_array_foreach(img->aliases, i, a) {
		const char *s = json_string_value(a);
		size_t n = strlen(s);

		if (streq(s, name) && host_arch && streq(img->architecture, host_arch))
			return true;
		if (strncmp(name, s, n) == 0 && name[n] == '/' &&
		    streq(name + n + 1, img->product_arch))
			return true;
	}
	return false;
}

const struct ss_image *ss_catalog_find(const struct ss_catalog *cat, const char *name,
				       const char *type, const char *host_arch)
{
	const struct ss_image *best = NULL, *prefix = NULL;
	size_t len = strlen(name);
	bool ambiguous = false;

	for (size_t i = 0; i < cat->n_images; i++) {
		const struct ss_image *img = &cat->images[i];

		if (type && !streq(type, img->type))
			continue;
		if (alias_matches(img, name, host_arch) && (!best || preferred(img, best)))
			best = img;
		if (len > 0 && strncmp(img->fingerprint, name, len) == 0) {
			if (prefix && !streq(prefix->fingerprint, img->fingerprint))
				ambiguous = true;
			if (!prefix || preferred(img, prefix))
				prefix = img;
		}
	}
	if (best)
		return best;
	return ambiguous ? NULL : prefix;
}

static char *url_join(const char *server, const char *path)
{
	size_t n = strlen(server);

	while (n > 0 && server[n - 1] == '/')
		n--;
	while (*path == '/')
		path++;
	return berth_strdup_printf("%.*s/%s", (int)n, server, path);
}

/* A path from the server's documents must stay below its URL. */
static bool path_ok(const char *path)
{
	return path && *path && !strstr(path, "..") && !strchr(path, '?') && !strchr(path, '#') &&
	       !strstr(path, "://");
}

int ss_catalog_load(const char *server, const atomic_bool *cancel, struct ss_catalog *cat,
		    struct berth_error *err)
{
	_cleanup_free_ char *url = url_join(server, "streams/v1/index.json");
	_cleanup_free_ char *buf = NULL;
	json_auto_t *paths = NULL;
	size_t len = 0, i;
	json_t *p;
	int r;

	if (!url)
		return -ENOMEM;
	r = image_download_buf(url, SS_INDEX_MAX, cancel, &buf, &len, err);
	if (r >= 0)
		r = ss_index_parse(buf, len, &paths, err);
	if (r < 0)
		return r;
	json_array_foreach(paths, i, p) {
		_cleanup_free_ char *purl = NULL, *pbuf = NULL;
		size_t plen = 0;

		if (!path_ok(json_string_value(p)))
			continue;
		purl = url_join(server, json_string_value(p));
		if (!purl)
			return -ENOMEM;
		r = image_download_buf(purl, SS_INDEX_MAX, cancel, &pbuf, &plen, err);
		if (r >= 0)
			r = ss_products_parse(pbuf, plen, cat, err);
		if (r < 0)
			return r;
	}
	return 0;
}

static int fetch_one(const char *server, const struct ss_file *f, const char *dir, const char *what,
		     image_download_progress_fn progress, void *data, const atomic_bool *cancel,
		     int *ret, struct berth_error *err)
{
	_cleanup_free_ char *url = NULL;
	_cleanup_close_ int fd = -EBADF;
	struct image_download dl = {
		.sha256 = f->sha256,
		.max_size = f->size,
		.what = what,
		.progress = progress,
		.data = data,
		.cancel = cancel,
	};
	int r;

	if (!path_ok(f->path))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Invalid path \"%s\" in the simplestreams products",
				       f->path);
	url = url_join(server, f->path);
	if (!url)
		return -ENOMEM;
	fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL,
				       "Failed to create a file in %s: %m", dir);
	dl.url = url;
	dl.fd = fd;
	r = image_download_fd(&dl, err);
	if (r < 0)
		return r;
	if (lseek(fd, 0, SEEK_SET) < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "lseek: %m");
	*ret = TAKE_FD(fd);
	return 0;
}

int ss_image_fetch(const char *server, const struct ss_image *img, const char *dir,
		   image_download_progress_fn progress, void *data, const atomic_bool *cancel,
		   int *meta_fd, int *rootfs_fd, struct berth_error *err)
{
	_cleanup_close_ int meta = -EBADF, rootfs = -EBADF;
	int r = berth_mkdir_p(dir, 0700);

	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "Failed to create %s", dir);
	r = fetch_one(server, &img->meta, dir, "metadata", progress, data, cancel, &meta, err);
	if (r >= 0 && img->rootfs.path)
		r = fetch_one(server, &img->rootfs, dir, "rootfs", progress, data, cancel, &rootfs,
			      err);
	if (r < 0)
		return r;
	*meta_fd = TAKE_FD(meta);
	*rootfs_fd = img->rootfs.path ? TAKE_FD(rootfs) : -EBADF;
	return 0;
}
