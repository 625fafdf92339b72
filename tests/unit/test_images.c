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
#include <fcntl.h>
#include <locale.h>
#include <openssl/evp.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "daemon/db/db.h"
#include "images/metadata.h"
#include "images/store.h"
#include "images/template.h"
#include "images/unpack.h"
#include "lib/json.h"
#include "lib/utf8.h"
#include "lib/util.h"
#include "storage/driver.h"

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
		/* A warning: a name the writer cannot convert, written as bytes. */
		assert_true(archive_write_header(a, e) >= ARCHIVE_WARN);
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
	assert_string_equal(berth_json_string(json_object_get(m.metadata, "properties"), "release"),
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
	assert_string_equal(berth_json_string(m.metadata, "architecture"), "amd64");
	image_metadata_release(&m);
	close(fd);
}

/* An import reads only the head of the tarball: what follows metadata.yaml and the first
 * rootfs/ entry is not even decompressed (here: it is garbage). */
static void test_tar_inspect_head(void **state)
{
	const struct entry head[] = {
		{"metadata.yaml", meta_yaml, NULL},
		{"rootfs/", NULL, NULL},
	};
	struct image_metadata m = {0};
	struct berth_error err = {0};
	int fd = make_tar(head, ARRAY_SIZE(head), false);
	off_t end = lseek(fd, 0, SEEK_END);
	char junk[8192];

	/* The two end-of-archive blocks become garbage, and more follows. */
	memset(junk, 0x5a, sizeof(junk));
	assert_int_equal(pwrite(fd, junk, sizeof(junk), end - 1024), (ssize_t)sizeof(junk));
	assert_int_equal(image_tar_inspect(fd, true, &m, &err), 0);
	assert_true(m.has_rootfs);
	image_metadata_release(&m);
	/* The same garbage before rootfs/ is seen: refused, by what libarchive says. */
	assert_int_equal(ftruncate(fd, 0), 0);
	close(fd);
	fd = make_tar(head, 1, false);
	end = lseek(fd, 0, SEEK_END);
	assert_int_equal(pwrite(fd, junk, sizeof(junk), end - 1024), (ssize_t)sizeof(junk));
	assert_int_equal(image_tar_inspect(fd, true, &m, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "Invalid image tarball"));
	berth_error_release(&err);
	close(fd);
}

static void unpack_dirs(char *dir, char *root, char *outside);
static bool dir_empty(const char *path);
static void rm_rf(const char *dir);

/* The import reads only the head; the unpack refuses the entry, naming it, and nothing
 * lands outside the target. */
static void expect_refused(const struct entry *entries, size_t n, const char *msg)
{
	char dir[64], root[96], outside[96];
	struct image_metadata m = {0};
	struct berth_error err = {0};
	int fd = make_tar(entries, n, false);

	unpack_dirs(dir, root, outside);
	assert_int_equal(image_unpack_tar(fd, root, NULL, NULL, NULL, &err), -EINVAL);
	assert_non_null(strstr(err.msg, msg));
	assert_int_equal(err.code, BERTH_ERR_BAD_REQUEST);
	berth_error_release(&err);
	assert_true(dir_empty(outside));
	rm_rf(dir);
	assert_int_equal(image_tar_inspect(fd, true, &m, &err), 0);
	image_metadata_release(&m);
	close(fd);
}

static void test_tar_escapes(void **state)
{
	const struct entry dotdot[] = {{"metadata.yaml", meta_yaml, NULL},
				       {"rootfs/../../etc/passwd", "x", NULL}};
	const struct entry absolute[] = {{"metadata.yaml", meta_yaml, NULL},
					 {"rootfs/", NULL, NULL},
					 {"/etc/passwd", "x", NULL}};
	const struct entry link[] = {{"metadata.yaml", meta_yaml, NULL},
				     {"rootfs/etc", NULL, "../../etc"}};
	const struct entry toplink[] = {{"metadata.yaml", meta_yaml, NULL},
					{"rootfs/", NULL, NULL},
					{"etc", NULL, "../outside"}};
	const struct entry none[] = {{"rootfs/x", "x", NULL}};
	struct image_metadata m = {0};
	struct berth_error err = {0};
	int fd;

	expect_refused(dotdot, ARRAY_SIZE(dotdot), "\"rootfs/../../etc/passwd\" escapes");
	expect_refused(absolute, ARRAY_SIZE(absolute), "\"/etc/passwd\" escapes");
	expect_refused(link, ARRAY_SIZE(link), "symlink \"rootfs/etc\" points outside");
	expect_refused(toplink, ARRAY_SIZE(toplink), "symlink \"etc\" points outside");
	fd = make_tar(none, ARRAY_SIZE(none), false);
	assert_int_equal(image_tar_inspect(fd, true, &m, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "no metadata.yaml"));
	berth_error_release(&err);
	close(fd);
}

static void render_is(const char *tpl, const char *want)
{
	json_auto_t *vars = json_pack("{s:s, s:s}", "container.name", "c1", "instance.name", "c1");
	char *out = NULL;
	size_t len = 0;

	assert_int_equal(image_template_render(tpl, strlen(tpl), vars, &out, &len), 0);
	assert_string_equal(out, want);
	assert_int_equal(len, strlen(want));
	free(out);
}

static void test_template_render(void **state)
{
	render_is("{{ container.name }}\n", "c1\n");
	render_is("127.0.1.1\t{{instance.name}}.local", "127.0.1.1\tc1.local");
	render_is("{{ container.name | upper }}", "c1");
	render_is("[{{ nope }}]", "[]");
	render_is("{% if true %}x{% endif %}{# note #}", "x");
	render_is("a { b } {{ unterminated", "a { b } {{ unterminated");
	render_is("", "");
}

static void render_vars_is(const json_t *vars, const char *tpl, const char *want)
{
	char *out = NULL;

	assert_int_equal(image_template_render(tpl, strlen(tpl), vars, &out, NULL), 0);
	assert_string_equal(out, want);
	free(out);
}

/* What LXD's images use: config_get, nested ifs, comparisons, properties. */
static void test_template_language(void **state)
{
	json_auto_t *v = json_pack("{s:{s:s, s:b}, s:{s:s, s:s, s:s}, s:{s:s}}", "container",
				   "name", "c1", "privileged", 0, "config", "cloud-init.user-data",
				   "#cloud-config\nx: 1\n\n", "user.network_mode", "link-local",
				   "empty", "", "properties", "default", "#cloud-config\n{}");
	const char *net =
		"{% if config_get(\"cloud-init.network-config\", \"\") == \"\" %}"
		"type: {% if config_get(\"user.network_mode\", \"\") == \"link-local\" %}"
		"manual{% else %}dhcp{% endif %}"
		"{% else %}{{ config_get(\"cloud-init.network-config\", \"\") }}{% endif %}";
	char *out = NULL;
	size_t len;

	render_vars_is(v, "{{ container.name }}/{{ container.privileged }}/{{ true }}",
		       "c1/False/True");
	render_vars_is(v, "{% if container.privileged %}p{% else %}u{% endif %}", "u");
	render_vars_is(v, "{{ config_get(\"cloud-init.user-data\", properties.default) }}",
		       "#cloud-config\nx: 1");
	render_vars_is(v, "{{ config_get(\"cloud-init.vendor-data\", properties.default) }}",
		       "#cloud-config\n{}");
	render_vars_is(v, "{{ config_get('nope', \"a\\nb\") }}", "a\nb");
	render_vars_is(v, net, "type: manual");
	render_vars_is(v, "{% if not config.empty %}e{% elif 1 == 2 %}no{% else %}x{% endif %}",
		       "e");
	render_vars_is(v,
		       "{% if 0 != 0 %}a{% elif container.name == 'c1' %}b{% else %}c{% endif %}",
		       "b");
	render_vars_is(v, "{% if '' %}a{% if 'x' %}b{% else %}c{% endif %}d{% else %}e{% endif %}",
		       "e");
	render_vars_is(v, "{% if 'x' and '' %}a{% elif '' or 'y' %}b{% endif %}", "b");
	render_vars_is(v, "{{ nope | default:\"dflt\" }} {{ container.name|default:'z' }}",
		       "dflt c1");
	render_vars_is(v, "a  {%- if 'x' -%}  \n b {%- endif %}", "ab");
	render_vars_is(v, "{% endif %}{% else %}x{% for i in y %}", "x");
	/* ifs nested past 32 are refused, not mis-rendered */
	{
		char deep[33 * 10 + 1] = "";

		for (int i = 0; i < 33; i++)
			strcat(deep, "{% if 1 %}");
		assert_int_equal(image_template_render(deep, strlen(deep), v, &out, &len), -EINVAL);
	}
}

/* A fresh directory: dir/root (the unpack target) and dir/outside (must stay empty). */
static void unpack_dirs(char *dir, char *root, char *outside)
{
	strcpy(dir, "/tmp/berth-unpack.XXXXXX");
	assert_non_null(mkdtemp(dir));
	sprintf(root, "%s/root", dir);
	sprintf(outside, "%s/outside", dir);
	assert_int_equal(mkdir(root, 0755), 0);
	assert_int_equal(mkdir(outside, 0755), 0);
}

static bool dir_empty(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)))
		n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
	closedir(d);
	return n == 0;
}

static void rm_rf(const char *dir)
{
	const char *argv[] = {"rm", "-rf", dir, NULL};

	assert_int_equal(storage_run(argv, NULL), 0);
}

/* File names as bytes: UTF-8 (ca-certificates' NetLock file), Latin-1, a space, a
 * newline, a backslash, and names too long for a ustar header (a pax path record or a
 * GNU long name). */
static const char *const odd_names[] = {
	"NetLock_Arany_=Class_Gold=_F\xc5\x91tan\xc3\xbas\xc3\xadtv\xc3\xa1ny.pem",
	"lat\xe9n-1",
	"with space",
	"new\nline",
	"back\\slash",
	"\xc3\xa9t\xc3\xa9-long-------------------------------------------------------------"
	"-------------------------------------------------------------------------------",
	"\xe9t\xe9-long-latin-1-------------------------------------------------------------"
	"------------------------------------------------------------------------------",
};

/* A tarball in `format` (ARCHIVE_FORMAT_TAR_*) holding rootfs/NAME for each odd name
 * (contents: the name), a symlink and a hardlink to the Latin-1 one, written while the
 * process runs in the current locale. */
static int make_names_tar(int format)
{
	struct archive *a = archive_write_new();
	int fd = memfd_create("t", 0);
	char path[512], target[512];

	assert_true(fd >= 0);
	assert_int_equal(archive_write_set_format(a, format), ARCHIVE_OK);
	assert_int_equal(archive_write_open_fd(a, fd), ARCHIVE_OK);
	for (size_t i = 0; i < ARRAY_SIZE(odd_names) + 2; i++) {
		struct archive_entry *e = archive_entry_new();
		const char *name = i < ARRAY_SIZE(odd_names) ? odd_names[i] : NULL;
		size_t len = name ? strlen(name) : 0;

		snprintf(target, sizeof(target), "rootfs/%s", odd_names[1]);
		snprintf(path, sizeof(path), "rootfs/%s",
			 name
				 ?: i == ARRAY_SIZE(odd_names) ? "sym\xe9"
							       : "hard\xe9");
		archive_entry_set_pathname(e, path);
		archive_entry_set_perm(e, 0644);
		archive_entry_set_filetype(e,
					   name || i > ARRAY_SIZE(odd_names) ? AE_IFREG : AE_IFLNK);
		if (!name && i == ARRAY_SIZE(odd_names))
			archive_entry_set_symlink(e, odd_names[1]);
		else if (!name)
			archive_entry_set_hardlink(e, target);
		archive_entry_set_size(e, (la_int64_t)len);
		/* Warnings only: a name the writer cannot convert is written as bytes. */
		assert_true(archive_write_header(a, e) >= ARCHIVE_WARN);
		if (len)
			assert_int_equal(archive_write_data(a, name, len), (la_ssize_t)len);
		archive_entry_free(e);
	}
	assert_int_equal(archive_write_close(a), ARCHIVE_OK);
	archive_write_free(a);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	return fd;
}

static void names_check(const char *root)
{
	char path[640], buf[512], link[64];
	struct stat a, b;
	ssize_t n;

	for (size_t i = 0; i < ARRAY_SIZE(odd_names); i++) {
		int fd;

		snprintf(path, sizeof(path), "%s/rootfs/%s", root, odd_names[i]);
		fd = open(path, O_RDONLY);
		assert_true(fd >= 0);
		n = read(fd, buf, sizeof(buf));
		close(fd);
		assert_int_equal(n, (ssize_t)strlen(odd_names[i]));
		assert_memory_equal(buf, odd_names[i], (size_t)n);
	}
	snprintf(path, sizeof(path), "%s/rootfs/sym\xe9", root);
	n = readlink(path, link, sizeof(link) - 1);
	assert_true(n > 0);
	link[n] = '\0';
	assert_string_equal(link, odd_names[1]);
	snprintf(path, sizeof(path), "%s/rootfs/hard\xe9", root);
	assert_int_equal(stat(path, &a), 0);
	snprintf(path, sizeof(path), "%s/rootfs/%s", root, odd_names[1]);
	assert_int_equal(stat(path, &b), 0);
	assert_true(a.st_ino == b.st_ino);
}

/* Odd names come out byte for byte from pax (as libarchive and GNU tar --format=posix
 * write them), ustar-with-pax-when-needed and GNU tarballs, whatever the locale the
 * tarball was written and is unpacked in. */
static void test_unpack_names(void **state)
{
	static const int formats[] = {ARCHIVE_FORMAT_TAR_PAX_INTERCHANGE,
				      ARCHIVE_FORMAT_TAR_PAX_RESTRICTED, ARCHIVE_FORMAT_TAR_GNUTAR};
	static const char *const locales[] = {"C", "C.UTF-8"};
	char dir[64], root[96], outside[96];

	for (size_t w = 0; w < ARRAY_SIZE(locales); w++)
		for (size_t f = 0; f < ARRAY_SIZE(formats); f++)
			for (size_t u = 0; u < ARRAY_SIZE(locales); u++) {
				struct berth_error err = {0};
				int fd;

				if (!setlocale(LC_CTYPE, locales[w]))
					continue; /* no C.UTF-8 here: C covers it */
				fd = make_names_tar(formats[f]);
				if (!setlocale(LC_CTYPE, locales[u]))
					continue;
				unpack_dirs(dir, root, outside);
				assert_int_equal(image_unpack_tar(fd, root, NULL, NULL, NULL, &err),
						 0);
				names_check(root);
				close(fd);
				rm_rf(dir);
			}
	setlocale(LC_CTYPE, "C");
}

/* A refusal names the entry printably, whatever its bytes. */
static void test_unpack_refusal_names(void **state)
{
	const struct entry bad[] = {{"rootfs/\xe9/../../x\ny", "x", NULL}};
	char dir[64], root[96], outside[96];
	struct berth_error err = {0};
	int fd = make_tar(bad, ARRAY_SIZE(bad), false);

	unpack_dirs(dir, root, outside);
	assert_int_equal(image_unpack_tar(fd, root, NULL, NULL, NULL, &err), -EINVAL);
	assert_string_equal(err.msg, "Image tarball entry \"rootfs/\\xe9/../../x\\ny\""
				     " escapes the image root");
	berth_error_release(&err);
	close(fd);
	rm_rf(dir);
}

/* Names in JSON and messages (lib/utf8): quoted for people, lossy as Go's JSON. */
static void test_utf8_names(void **state)
{
	char *q = berth_utf8_quote("caf\xe9 \xc3\xa9\n\\\x7f\xed\xa0\x80\xf4\x90\x80\x80");
	char *l = berth_utf8_lossy("caf\xe9\xc3\xa9\xc3");

	assert_string_equal(q, "caf\\xe9 \xc3\xa9\\n\\\\\\x7f\\xed\\xa0\\x80\\xf4\\x90\\x80\\x80");
	assert_string_equal(l, "caf\xef\xbf\xbd\xc3\xa9\xef\xbf\xbd");
	assert_true(berth_utf8_valid("F\xc5\x91t\xc3\xa1n\xf0\x9f\x90\xb3"));
	assert_false(berth_utf8_valid("\xc0\xaf")); /* overlong "/" */
	assert_false(berth_utf8_valid("lat\xe9n"));
	free(q);
	free(l);
}

static void test_unpack(void **state)
{
	const struct entry good[] = {{"metadata.yaml", meta_yaml, NULL},
				     {"rootfs", NULL, NULL},
				     {"rootfs/bin", NULL, NULL},
				     {"rootfs/bin/busybox", "elf", NULL},
				     {"rootfs/bin/sh", NULL, "/bin/busybox"}};
	const struct entry dotdot[] = {{"rootfs/../../outside/x", "x", NULL}};
	const struct entry through[] = {{"etc", NULL, "../outside"}, {"etc/passwd", "x", NULL}};
	char dir[64], root[96], outside[96], path[160], link[64];
	struct berth_error err = {0};
	ssize_t n;
	int fd = make_tar(good, ARRAY_SIZE(good), true);

	unpack_dirs(dir, root, outside);
	assert_int_equal(image_unpack_tar(fd, root, NULL, NULL, NULL, &err), 0);
	close(fd);
	sprintf(path, "%s/rootfs/bin/busybox", root);
	assert_int_equal(access(path, F_OK), 0);
	sprintf(path, "%s/rootfs/bin/sh", root);
	n = readlink(path, link, sizeof(link) - 1);
	assert_true(n > 0);
	link[n] = '\0';
	assert_string_equal(link, "/bin/busybox"); /* kept as it is, resolved in the container */

	fd = make_tar(dotdot, ARRAY_SIZE(dotdot), false);
	assert_int_equal(image_unpack_tar(fd, root, NULL, NULL, NULL, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "escapes"));
	berth_error_release(&err);
	close(fd);
	/* A symlink met on the way is never followed: libarchive refuses the entry or (with
	 * ARCHIVE_EXTRACT_UNLINK) replaces the link by a directory. Either way nothing lands
	 * outside. */
	fd = make_tar(through, ARRAY_SIZE(through), false);
	image_unpack_tar(fd, root, NULL, NULL, NULL, &err);
	berth_error_release(&err);
	close(fd);
	assert_true(dir_empty(outside));
	{
		const char *argv[] = {"rm", "-rf", dir, NULL};
		assert_int_equal(storage_run(argv, NULL), 0);
	}
}

/* Templates land inside the rootfs even through a symlink pointing out of it. */
static void test_templates_apply(void **state)
{
	char dir[64], root[96], outside[96], path[400];
	json_auto_t *meta = json_pack("{s:{s:{s:[s], s:s}, s:{s:[s], s:s}}}", "templates",
				      "/etc/hostname", "when", "create", "template", "hostname.tpl",
				      "/etc/hosts", "when", "copy", "template", "hostname.tpl");
	json_auto_t *vars = json_pack("{s:s}", "container.name", "c7");
	struct berth_error err = {0};
	char *text = NULL;
	size_t len = 0;

	unpack_dirs(dir, root, outside);
	sprintf(path, "%s/templates", root);
	assert_int_equal(mkdir(path, 0755), 0);
	sprintf(path, "%s/templates/hostname.tpl", root);
	assert_int_equal(berth_write_file_atomic(path, "{{ container.name }}\n", 21, 0644), 0);
	sprintf(path, "%s/rootfs", root);
	assert_int_equal(mkdir(path, 0755), 0);
	sprintf(path, "%s/rootfs/etc", root);
	assert_int_equal(symlink(outside, path), 0); /* absolute: resolved in the rootfs */
	sprintf(path, "%s/rootfs%s", root, outside);
	assert_int_equal(berth_mkdir_p(path, 0755), 0);

	assert_int_equal(image_templates_apply(root, meta, "create", vars, &err), 0);
	assert_true(dir_empty(outside));
	sprintf(path, "%s/rootfs%s/hostname", root, outside);
	assert_int_equal(berth_read_file(path, 100, &text, &len), 0);
	assert_string_equal(text, "c7\n");
	free(text);
	sprintf(path, "%s/rootfs%s/hosts", root, outside);
	assert_int_equal(access(path, F_OK), -1); /* "copy" only */

	/* LXD's cloud-init seed: directories made, the entry's properties, create_only */
	{
		json_auto_t *m2 = json_pack("{s:{s:{s:[s], s:s, s:{s:s}}, s:{s:[s], s:s, s:b}}}",
					    "templates",
					    "/var/lib/cloud/seed/nocloud-net/user-data", "when",
					    "create", "template", "user.tpl", "properties",
					    "default", "#cloud-config\n{}", "/keep", "when",
					    "create", "template", "user.tpl", "create_only", 1);
		json_auto_t *v2 = json_pack("{s:{}}", "config");
		struct stat st;

		sprintf(path, "%s/templates/user.tpl", root);
		assert_int_equal(
			berth_write_file_atomic(
				path,
				"{{ config_get(\"cloud-init.user-data\", properties.default) }}",
				60, 0644),
			0);
		sprintf(path, "%s/rootfs/keep", root);
		assert_int_equal(berth_write_file_atomic(path, "mine", 4, 0600), 0);
		assert_int_equal(image_templates_apply(root, m2, "create", v2, &err), 0);
		sprintf(path, "%s/rootfs/var/lib/cloud/seed/nocloud-net/user-data", root);
		assert_int_equal(berth_read_file(path, 100, &text, &len), 0);
		assert_string_equal(text, "#cloud-config\n{}");
		free(text);
		assert_int_equal(stat(path, &st), 0);
		assert_int_equal(st.st_mode & 07777, 0644);
		sprintf(path, "%s/rootfs/var/lib/cloud", root);
		assert_int_equal(stat(path, &st), 0);
		assert_true(S_ISDIR(st.st_mode) && (st.st_mode & 07777) == 0755);
		sprintf(path, "%s/rootfs/keep", root);
		assert_int_equal(berth_read_file(path, 100, &text, &len), 0);
		assert_string_equal(text, "mine");
		free(text);
	}
	{
		const char *argv[] = {"rm", "-rf", dir, NULL};
		assert_int_equal(storage_run(argv, NULL), 0);
	}
}

/* A FIFO as a template's target or as the template itself: an error naming it, no hang
 * (alarm: a blocking open would end the test with SIGALRM). */
static void test_templates_special_files(void **state)
{
	char dir[64], root[96], outside[96], path[400];
	json_auto_t *meta = json_pack("{s:{s:{s:[s], s:s}}}", "templates", "/etc/hostname", "when",
				      "create", "template", "hostname.tpl");
	json_auto_t *vars = json_pack("{s:s}", "container.name", "c7");
	struct berth_error err = {0};

	(void)state;
	unpack_dirs(dir, root, outside);
	sprintf(path, "%s/templates", root);
	assert_int_equal(mkdir(path, 0755), 0);
	sprintf(path, "%s/templates/hostname.tpl", root);
	assert_int_equal(berth_write_file_atomic(path, "{{ container.name }}\n", 21, 0644), 0);
	sprintf(path, "%s/rootfs/etc", root);
	assert_int_equal(berth_mkdir_p(path, 0755), 0);
	sprintf(path, "%s/rootfs/etc/hostname", root);
	assert_int_equal(mkfifo(path, 0644), 0);
	alarm(10);
	assert_int_equal(image_templates_apply(root, meta, "create", vars, &err), -EINVAL);
	assert_non_null(
		strstr(berth_error_msg(&err, 0), "\"/etc/hostname\" is not a regular file"));
	berth_error_release(&err);

	assert_int_equal(unlink(path), 0);
	sprintf(path, "%s/templates/hostname.tpl", root);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(mkfifo(path, 0644), 0);
	assert_int_equal(image_templates_apply(root, meta, "create", vars, &err), -EINVAL);
	assert_non_null(strstr(berth_error_msg(&err, 0), "\"hostname.tpl\" is not a regular file"));
	berth_error_release(&err);
	alarm(0);
	sprintf(path, "%s/rootfs/etc/hostname", root);
	assert_int_equal(access(path, F_OK), -1); /* nothing made in its place */
	{
		const char *argv[] = {"rm", "-rf", dir, NULL};
		assert_int_equal(storage_run(argv, NULL), 0);
	}
}

struct store_fixture {
	char dir[64];
	char images[96];
	struct db *db;
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
	assert_int_equal(db_open(db, "/nonexistent", &f->db, &err), 0);
	*state = f;
	return 0;
}

static int store_teardown(void **state)
{
	struct store_fixture *f = *state;
	char cmd[128];

	db_close(f->db);
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
	struct db *db = data;

	return db_image_create(db, "default", image, err);
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
	struct image_upload up = {.fd = fd,
				  .content_type = "application/octet-stream",
				  .filename = "u.tar.gz"};

	sha256_hex_fds(fd, -1, fp);
	lseek(fd, 0, SEEK_SET);
	/* A wrong fingerprint: refused, nothing kept. */
	up.fingerprint = "0123";
	assert_int_equal(image_store_import(f->images, &up, commit_db, f->db, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "Fingerprint mismatch"));
	berth_error_release(&err);
	assert_int_equal(count_files(f->images), 0);
	assert_int_equal(db_image_get(f->db, "default", fp, &img, &err), -ENOENT);
	berth_error_release(&err);

	lseek(fd, 0, SEEK_SET);
	up.fingerprint = fp;
	assert_int_equal(image_properties_decode("os=bb&description=a+b%2Bc", &props, &err), 0);
	up.properties = props;
	assert_int_equal(image_store_import(f->images, &up, commit_db, f->db, &err), 0);
	assert_int_equal(count_files(f->images), 1);
	assert_int_equal(db_image_get(f->db, "default", fp, &img, &err), 0);
	assert_string_equal(berth_json_string(img, "architecture"), "x86_64");
	assert_string_equal(berth_json_string(img, "filename"), "u.tar.gz");
	assert_string_equal(berth_json_string(img, "created_at"), "2023-11-14T22:13:20.000000000Z");
	assert_string_equal(berth_json_string(json_object_get(img, "properties"), "os"), "bb");
	assert_string_equal(berth_json_string(json_object_get(img, "properties"), "description"),
			    "a b+c");

	/* The same bytes again: a conflict that keeps the existing file. */
	lseek(fd, 0, SEEK_SET);
	assert_int_equal(image_store_import(f->images, &up, commit_db, f->db, &err), -EEXIST);
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
	struct image_upload up = {.fd = body, .content_type = "multipart/form-data; boundary=XyZ"};

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
	assert_int_equal(image_store_import(f->images, &up, commit_db, f->db, &err), 0);
	assert_int_equal(db_image_get(f->db, "default", fp, &img, &err), 0);
	assert_int_equal(count_files(f->images), 2);

	/* Cut short inside the rootfs part: refused, nothing more kept. */
	assert_int_equal(ftruncate(body, lseek(body, 0, SEEK_END) - 20), 0);
	lseek(body, 0, SEEK_SET);
	assert_int_equal(db_image_delete(f->db, "default", fp, &err), 0);
	assert_int_equal(image_store_remove(f->images, fp, &err), 0);
	assert_int_equal(image_store_import(f->images, &up, commit_db, f->db, &err), -EINVAL);
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
	struct store_fixture *f = *state;
	static const char fp1[] = "aaaa1111";
	static const char fp2[] = "aaaa2222";
	struct berth_error err = {0};
	json_auto_t *img = NULL, *list = NULL, *a = NULL, *upd = NULL;
	_cleanup_free_ char *full = NULL;
	bool used = false;

	img = json_pack("{s:s, s:s, s:I, s:s, s:{s:s}}", "fingerprint", fp1, "architecture",
			"x86_64", "size", (json_int_t)10, "filename", "f", "properties", "os", "x");
	assert_int_equal(db_image_create(f->db, "default", img, &err), 0);
	json_object_set_new(img, "fingerprint", json_string(fp2));
	assert_int_equal(db_image_create(f->db, "default", img, &err), 0);
	assert_int_equal(db_image_create(f->db, "default", img, &err), -EEXIST);
	assert_int_equal(err.code, BERTH_ERR_CONFLICT);
	berth_error_release(&err);
	assert_int_equal(db_image_create(f->db, "nope", img, &err), -ENOENT);
	berth_error_release(&err);

	/* Prefix lookup: unique, ambiguous, unknown, not hex. */
	assert_int_equal(db_image_resolve(f->db, "default", "aaaa1", &full, &err), 0);
	assert_string_equal(full, fp1);
	assert_int_equal(db_image_resolve(f->db, "default", "aaaa", &full, &err), -EINVAL);
	assert_int_equal(err.code, BERTH_ERR_BAD_REQUEST);
	berth_error_release(&err);
	assert_int_equal(db_image_resolve(f->db, "default", "b", &full, &err), -ENOENT);
	berth_error_release(&err);
	assert_int_equal(db_image_resolve(f->db, "default", "a%", &full, &err), -ENOENT);
	berth_error_release(&err);

	assert_int_equal(db_image_list(f->db, "default", &list, &err), 0);
	assert_int_equal(json_array_size(list), 2);

	a = json_pack("{s:s, s:s, s:s}", "name", "debian/12", "description", "d", "target", fp1);
	assert_int_equal(db_image_alias_create(f->db, "default", a, &err), 0);
	assert_int_equal(db_image_alias_create(f->db, "default", a, &err), -EEXIST);
	berth_error_release(&err);
	json_decref(img);
	img = NULL;
	assert_int_equal(db_image_get(f->db, "default", fp1, &img, &err), 0);
	assert_string_equal(berth_json_string(json_array_get(json_object_get(img, "aliases"), 0),
					      "name"),
			    "debian/12");
	json_object_set_new(a, "target", json_string(fp2));
	assert_int_equal(db_image_alias_update(f->db, "default", "debian/12", a, &err), 0);
	assert_int_equal(db_image_alias_rename(f->db, "default", "debian/12", "bookworm", &err), 0);
	json_decref(a);
	a = NULL;
	assert_int_equal(db_image_alias_get(f->db, "default", "bookworm", &a, &err), 0);
	assert_string_equal(berth_json_string(a, "target"), fp2);
	assert_string_equal(berth_json_string(a, "type"), "container");

	upd = json_pack("{s:b, s:{s:s}}", "public", 1, "properties", "k", "v");
	assert_int_equal(db_image_update(f->db, "default", fp2, upd, &err), 0);
	json_decref(img);
	img = NULL;
	assert_int_equal(db_image_get(f->db, "default", fp2, &img, &err), 0);
	assert_true(json_is_true(json_object_get(img, "public")));
	assert_int_equal(json_object_size(json_object_get(img, "properties")), 1);

	/* Deleting an image takes its aliases along. */
	assert_int_equal(db_image_delete(f->db, "default", fp2, &err), 0);
	assert_int_equal(db_image_alias_get(f->db, "default", "bookworm", &a, &err), -ENOENT);
	berth_error_release(&err);
	assert_int_equal(db_image_fingerprint_used(f->db, fp2, &used, &err), 0);
	assert_false(used);
	assert_int_equal(db_image_fingerprint_used(f->db, fp1, &used, &err), 0);
	assert_true(used);
	assert_int_equal(db_image_alias_delete(f->db, "default", "bookworm", &err), -ENOENT);
	berth_error_release(&err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_metadata_parse),
		cmocka_unit_test(test_tar_inspect),
		cmocka_unit_test(test_tar_inspect_head),
		cmocka_unit_test(test_tar_escapes),
		cmocka_unit_test(test_template_render),
		cmocka_unit_test(test_template_language),
		cmocka_unit_test(test_unpack),
		cmocka_unit_test(test_unpack_names),
		cmocka_unit_test(test_utf8_names),
		cmocka_unit_test(test_unpack_refusal_names),
		cmocka_unit_test(test_templates_apply),
		cmocka_unit_test(test_templates_special_files),
		cmocka_unit_test_setup_teardown(test_import_unified, store_setup, store_teardown),
		cmocka_unit_test_setup_teardown(test_import_split, store_setup, store_teardown),
		cmocka_unit_test_setup_teardown(test_reconcile, store_setup, store_teardown),
		cmocka_unit_test_setup_teardown(test_db_images, store_setup, store_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
