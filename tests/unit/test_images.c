/* tests/unit/test_images.c: the image store without a daemon: metadata.yaml parsing, the
 * path checks on tarball entries, fingerprints of unified and split (multipart) uploads,
 * nothing left behind by a refused import, and the image/alias records in SQLite. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>
#include <cmocka.h>
#include <dirent.h>
#include <openssl/evp.h>
#include <sys/mman.h>

#include "daemon/db/db.h"
#include "images/metadata.h"
#include "images/store.h"
#include "lib/json.h"
#include "lib/util.h"

static const char meta_yaml[] = "architecture: amd64\n"
				"creation_date: 1700000000\n"
				"properties:\n"
				"  os: busybox\n"
				"  release: 1\n"
				"templates:\n"
				"  /etc/hostname:\n"
				"    when: [create, copy]\n"
				"    template: hostname.tpl\n";

struct entry {
	const char *path;
	const char *data;    /* regular file contents, or NULL */
	const char *symlink; /* symlink target, or NULL */
};

/* A tar (gzip when `gz`) of `entries` in a memfd, at offset 0. */
static int make_tar(const struct entry *entries, size_t n, bool gz)
{
	struct archive *a = archive_write_new();
	int fd = memfd_create("t", 0);

	assert_true(fd >= 0);
	archive_write_set_format_pax_restricted(a);
	if (gz)
		archive_write_add_filter_gzip(a);
	assert_int_equal(archive_write_open_fd(a, fd), ARCHIVE_OK);
	for (size_t i = 0; i < n; i++) {
		struct archive_entry *e = archive_entry_new();
		size_t len = entries[i].data ? strlen(entries[i].data) : 0;

		archive_entry_set_pathname(e, entries[i].path);
		archive_entry_set_perm(e, 0644);
		if (entries[i].symlink) {
			archive_entry_set_filetype(e, AE_IFLNK);
			archive_entry_set_symlink(e, entries[i].symlink);
		} else if (entries[i].data) {
			archive_entry_set_filetype(e, AE_IFREG);
			archive_entry_set_size(e, (la_int64_t)len);
		} else {
			archive_entry_set_filetype(e, AE_IFDIR);
		}
		assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
		if (len)
			assert_int_equal(archive_write_data(a, entries[i].data, len),
					 (la_ssize_t)len);
		archive_entry_free(e);
	}
	archive_write_close(a);
	archive_write_free(a);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	return fd;
}

static void test_metadata_parse(void **state)
{
	struct image_metadata m = {0};
	struct berth_error err = {0};

	assert_int_equal(image_metadata_parse(meta_yaml, strlen(meta_yaml), &m, &err), 0);
	assert_string_equal(m.architecture, "x86_64");
	assert_int_equal(m.creation_date, 1700000000);
	/* A YAML integer property becomes the string LXD would read. */
	assert_string_equal(berth_json_string(json_object_get(m.metadata, "properties"),
					      "release"),
			    "1");
	image_metadata_release(&m);

	assert_int_equal(image_metadata_parse("creation_date: 1\n", 17, &m, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "architecture"));
	assert_int_equal(image_metadata_parse("architecture: pdp11\n", 20, &m, &err), -EINVAL);
	assert_int_equal(image_metadata_parse("- a\n", 4, &m, &err), -EINVAL);
	berth_error_release(&err);
}

static void test_tar_inspect(void **state)
{
	const struct entry good[] = {
		{"./metadata.yaml", meta_yaml, NULL},
		{"./templates/hostname.tpl", "{{ container.name }}\n", NULL},
		{"./rootfs/", NULL, NULL},
		{"./rootfs/bin/busybox", "elf", NULL},
		{"./rootfs/bin/sh", NULL, "busybox"},
		{"./rootfs/usr/bin/env", NULL, "../../bin/busybox"},
		{"./rootfs/etc/mtab", NULL, "/proc/self/mounts"},
	};
	struct image_metadata m = {0};
	struct berth_error err = {0};
	int fd = make_tar(good, ARRAY_SIZE(good), true);

	assert_int_equal(image_tar_inspect(fd, true, &m, &err), 0);
	assert_true(m.has_rootfs);
	assert_string_equal(berth_json_string(m.templates, "hostname.tpl"),
			    "{{ container.name }}\n");
	image_metadata_release(&m);
	close(fd);
}

static void expect_refused(const struct entry *entries, size_t n, const char *msg)
{
	struct image_metadata m = {0};
	struct berth_error err = {0};
	int fd = make_tar(entries, n, false);

	assert_int_equal(image_tar_inspect(fd, true, &m, &err), -EINVAL);
	assert_non_null(strstr(err.msg, msg));
	assert_int_equal(err.code, BERTH_ERR_BAD_REQUEST);
	berth_error_release(&err);
	close(fd);
}

static void test_tar_escapes(void **state)
{
	const struct entry dotdot[] = {{"metadata.yaml", meta_yaml, NULL},
				       {"rootfs/../../etc/passwd", "x", NULL}};
	const struct entry absolute[] = {{"metadata.yaml", meta_yaml, NULL},
					 {"/etc/passwd", "x", NULL}};
	const struct entry link[] = {{"metadata.yaml", meta_yaml, NULL},
				     {"rootfs/etc", NULL, "../../etc"}};
	const struct entry none[] = {{"rootfs/x", "x", NULL}};

	expect_refused(dotdot, ARRAY_SIZE(dotdot), "escapes");
	expect_refused(absolute, ARRAY_SIZE(absolute), "escapes");
	expect_refused(link, ARRAY_SIZE(link), "points outside");
	expect_refused(none, ARRAY_SIZE(none), "no metadata.yaml");
}

struct store_fixture {
	char dir[64];
	char images[96];
};

static int store_setup(void **state)
{
	struct store_fixture *f = calloc(1, sizeof(*f));
	struct berth_error err = {0};
	char db[128];

	snprintf(f->dir, sizeof(f->dir), "/tmp/berth-test-images-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->images, sizeof(f->images), "%s/images", f->dir);
	snprintf(db, sizeof(db), "%s/berth.db", f->dir);
	assert_int_equal(db_init(db, "/nonexistent", &err), 0);
	*state = f;
	return 0;
}

static int store_teardown(void **state)
{
	struct store_fixture *f = *state;
	char cmd[128];

	db_shutdown();
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static int count_files(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	if (!d)
		return 0;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static int commit_db(const json_t *image, void *data, struct berth_error *err)
{
	return db_image_create("default", image, err);
}

static void sha256_hex_fds(int a, int b, char *out)
{
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	unsigned char d[32], buf[4096];
	unsigned int len = 0;
	ssize_t n;

	EVP_DigestInit_ex(c, EVP_sha256(), NULL);
	lseek(a, 0, SEEK_SET);
	while ((n = read(a, buf, sizeof(buf))) > 0)
		EVP_DigestUpdate(c, buf, (size_t)n);
	if (b >= 0) {
		lseek(b, 0, SEEK_SET);
		while ((n = read(b, buf, sizeof(buf))) > 0)
			EVP_DigestUpdate(c, buf, (size_t)n);
	}
	EVP_DigestFinal_ex(c, d, &len);
	EVP_MD_CTX_free(c);
	image_fingerprint_hex(d, out);
}

static const struct entry unified[] = {
	{"metadata.yaml", meta_yaml, NULL},
	{"rootfs/bin/busybox", "elf", NULL},
};

static void test_import_unified(void **state)
{
	struct store_fixture *f = *state;
	struct berth_error err = {0};
	json_auto_t *props = NULL, *img = NULL;
	char fp[65];
	int fd = make_tar(unified, ARRAY_SIZE(unified), true);
	struct image_upload up = {.fd = fd, .content_type = "application/octet-stream",
				  .filename = "u.tar.gz"};

	sha256_hex_fds(fd, -1, fp);
	lseek(fd, 0, SEEK_SET);
	/* A wrong fingerprint: refused, nothing kept. */
	up.fingerprint = "0123";
	assert_int_equal(image_store_import(f->images, &up, commit_db, NULL, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "Fingerprint mismatch"));
	berth_error_release(&err);
	assert_int_equal(count_files(f->images), 0);
	assert_int_equal(db_image_get("default", fp, &img, &err), -ENOENT);
	berth_error_release(&err);

	lseek(fd, 0, SEEK_SET);
	up.fingerprint = fp;
	assert_int_equal(image_properties_decode("os=bb&description=a+b%2Bc", &props, &err), 0);
	up.properties = props;
	assert_int_equal(image_store_import(f->images, &up, commit_db, NULL, &err), 0);
	assert_int_equal(count_files(f->images), 1);
	assert_int_equal(db_image_get("default", fp, &img, &err), 0);
	assert_string_equal(berth_json_string(img, "architecture"), "x86_64");
	assert_string_equal(berth_json_string(img, "filename"), "u.tar.gz");
	assert_string_equal(berth_json_string(img, "created_at"), "2023-11-14T22:13:20.000000000Z");
	assert_string_equal(berth_json_string(json_object_get(img, "properties"), "os"), "bb");
	assert_string_equal(berth_json_string(json_object_get(img, "properties"), "description"),
			    "a b+c");

	/* The same bytes again: a conflict that keeps the existing file. */
	lseek(fd, 0, SEEK_SET);
	assert_int_equal(image_store_import(f->images, &up, commit_db, NULL, &err), -EEXIST);
	berth_error_release(&err);
	assert_int_equal(count_files(f->images), 1);
	close(fd);
}

static void test_import_split(void **state)
{
	const struct entry meta[] = {{"metadata.yaml", meta_yaml, NULL}};
	const struct entry rootfs[] = {{"bin/busybox", "elf", NULL}, {"bin/sh", NULL, "busybox"}};
	struct store_fixture *f = *state;
	struct berth_error err = {0};
	json_auto_t *img = NULL;
	int mfd = make_tar(meta, 1, false), rfd = make_tar(rootfs, 2, true);
	int body = memfd_create("body", 0);
	char fp[65], buf[8192];
	FILE *out = fdopen(dup(body), "w");
	ssize_t n;
	struct image_upload up = {.fd = body,
				  .content_type = "multipart/form-data; boundary=XyZ"};

	sha256_hex_fds(mfd, rfd, fp);
	fprintf(out, "--XyZ\r\nContent-Disposition: form-data; name=\"metadata\"; "
		     "filename=\"meta.tar\"\r\nContent-Type: application/octet-stream\r\n\r\n");
	lseek(mfd, 0, SEEK_SET);
	while ((n = read(mfd, buf, sizeof(buf))) > 0)
		fwrite(buf, 1, (size_t)n, out);
	fprintf(out, "\r\n--XyZ\r\nContent-Disposition: form-data; name=\"rootfs\"; "
		     "filename=\"rootfs.tar.gz\"\r\n\r\n");
	lseek(rfd, 0, SEEK_SET);
	while ((n = read(rfd, buf, sizeof(buf))) > 0)
		fwrite(buf, 1, (size_t)n, out);
	fprintf(out, "\r\n--XyZ--\r\n");
	fclose(out);
	lseek(body, 0, SEEK_SET);
	assert_int_equal(image_store_import(f->images, &up, commit_db, NULL, &err), 0);
	assert_int_equal(db_image_get("default", fp, &img, &err), 0);
	assert_int_equal(count_files(f->images), 2);

	/* Cut short inside the rootfs part: refused, nothing more kept. */
	assert_int_equal(ftruncate(body, lseek(body, 0, SEEK_END) - 20), 0);
	lseek(body, 0, SEEK_SET);
	assert_int_equal(db_image_delete("default", fp, &err), 0);
	assert_int_equal(image_store_remove(f->images, fp, &err), 0);
	assert_int_equal(image_store_import(f->images, &up, commit_db, NULL, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "multipart"));
	berth_error_release(&err);
	assert_int_equal(count_files(f->images), 0);
	close(body);
	close(mfd);
	close(rfd);
}

static int known_cb(const char *fp, bool *ret, void *data)
{
	*ret = streq(fp, data);
	return 0;
}

static void touch(const char *dir, const char *name)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fclose(f);
}

static void test_reconcile(void **state)
{
	struct store_fixture *f = *state;
	struct berth_error err = {0};
	char a[65], b[65], name[80];

	memset(a, 'a', 64), a[64] = '\0';
	memset(b, 'b', 64), b[64] = '\0';
	assert_int_equal(image_store_reconcile(f->images, known_cb, a, &err), 0);
	assert_int_equal(berth_mkdir_p(f->images, 0700), 0);
	touch(f->images, a);
	snprintf(name, sizeof(name), "%s.rootfs", a);
	touch(f->images, name);
	touch(f->images, b);
	snprintf(name, sizeof(name), "%s.rootfs", b);
	touch(f->images, name);
	touch(f->images, "README");
	/* b is not recorded: both its files go; a and the unknown file stay. */
	assert_int_equal(image_store_reconcile(f->images, known_cb, a, &err), 2);
	assert_int_equal(count_files(f->images), 3);
}

static void test_db_images(void **state)
{
	static const char fp1[] = "aaaa1111";
	static const char fp2[] = "aaaa2222";
	struct berth_error err = {0};
	json_auto_t *img = NULL, *list = NULL, *a = NULL, *upd = NULL;
	_cleanup_free_ char *full = NULL;
	bool used = false;

	img = json_pack("{s:s, s:s, s:I, s:s, s:{s:s}}", "fingerprint", fp1, "architecture",
			"x86_64", "size", (json_int_t)10, "filename", "f", "properties", "os", "x");
	assert_int_equal(db_image_create("default", img, &err), 0);
	json_object_set_new(img, "fingerprint", json_string(fp2));
	assert_int_equal(db_image_create("default", img, &err), 0);
	assert_int_equal(db_image_create("default", img, &err), -EEXIST);
	assert_int_equal(err.code, BERTH_ERR_CONFLICT);
	berth_error_release(&err);
	assert_int_equal(db_image_create("nope", img, &err), -ENOENT);
	berth_error_release(&err);

	/* Prefix lookup: unique, ambiguous, unknown, not hex. */
	assert_int_equal(db_image_resolve("default", "aaaa1", &full, &err), 0);
	assert_string_equal(full, fp1);
	assert_int_equal(db_image_resolve("default", "aaaa", &full, &err), -EINVAL);
	assert_int_equal(err.code, BERTH_ERR_BAD_REQUEST);
	berth_error_release(&err);
	assert_int_equal(db_image_resolve("default", "b", &full, &err), -ENOENT);
	berth_error_release(&err);
	assert_int_equal(db_image_resolve("default", "a%", &full, &err), -ENOENT);
	berth_error_release(&err);

	assert_int_equal(db_image_list("default", &list, &err), 0);
	assert_int_equal(json_array_size(list), 2);

	a = json_pack("{s:s, s:s, s:s}", "name", "debian/12", "description", "d", "target", fp1);
	assert_int_equal(db_image_alias_create("default", a, &err), 0);
	assert_int_equal(db_image_alias_create("default", a, &err), -EEXIST);
	berth_error_release(&err);
	json_decref(img);
	img = NULL;
	assert_int_equal(db_image_get("default", fp1, &img, &err), 0);
	assert_string_equal(berth_json_string(json_array_get(json_object_get(img, "aliases"), 0),
					      "name"),
			    "debian/12");
	json_object_set_new(a, "target", json_string(fp2));
	assert_int_equal(db_image_alias_update("default", "debian/12", a, &err), 0);
	assert_int_equal(db_image_alias_rename("default", "debian/12", "bookworm", &err), 0);
	json_decref(a);
	a = NULL;
	assert_int_equal(db_image_alias_get("default", "bookworm", &a, &err), 0);
	assert_string_equal(berth_json_string(a, "target"), fp2);
	assert_string_equal(berth_json_string(a, "type"), "container");

	upd = json_pack("{s:b, s:{s:s}}", "public", 1, "properties", "k", "v");
	assert_int_equal(db_image_update("default", fp2, upd, &err), 0);
	json_decref(img);
	img = NULL;
	assert_int_equal(db_image_get("default", fp2, &img, &err), 0);
	assert_true(json_is_true(json_object_get(img, "public")));
	assert_int_equal(json_object_size(json_object_get(img, "properties")), 1);

	/* Deleting an image takes its aliases along. */
	assert_int_equal(db_image_delete("default", fp2, &err), 0);
	assert_int_equal(db_image_alias_get("default", "bookworm", &a, &err), -ENOENT);
	berth_error_release(&err);
	assert_int_equal(db_image_fingerprint_used(fp2, &used, &err), 0);
	assert_false(used);
	assert_int_equal(db_image_fingerprint_used(fp1, &used, &err), 0);
	assert_true(used);
	assert_int_equal(db_image_alias_delete("default", "bookworm", &err), -ENOENT);
	berth_error_release(&err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_metadata_parse),
		cmocka_unit_test(test_tar_inspect),
		cmocka_unit_test(test_tar_escapes),
		cmocka_unit_test_setup_teardown(test_import_unified, store_setup, store_teardown),
		cmocka_unit_test_setup_teardown(test_import_split, store_setup, store_teardown),
		cmocka_unit_test_setup_teardown(test_reconcile, store_setup, store_teardown),
		cmocka_unit_test_setup_teardown(test_db_images, store_setup, store_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
