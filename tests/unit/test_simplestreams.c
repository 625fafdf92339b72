/* tests/unit/test_simplestreams.c: images/simplestreams.c's parsing and resolution (index
 * paths, LXD's fingerprint rules per rootfs kind, versions and items skipped, aliases
 * bare for the host's architecture and qualified for any, newest first) and the
 * progress line of images/download.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "images/download.h"
#include "images/simplestreams.h"
#include "lib/json.h"

#define H32(c) c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c
#define H(c) H32(c) H32(c) /* 64 characters */

static const char products[] =
	"{\"products\": {"
	" \"bb:1:amd64\": {\"aliases\": \"bb,bb/1\", \"arch\": \"amd64\", \"os\": \"Busybox\","
	"  \"release\": \"1\", \"release_title\": \"One\", \"versions\": {"
	"   \"20260101_0000\": {\"items\": {"
	"     \"m\": {\"ftype\": \"lxd.tar.xz\", \"path\": \"i/1/lxd.tar.xz\", \"sha256\": \"" H("a") "\", \"size\": 10, \"combined_rootxz_sha256\": \"" H("1") "\", \"combined_squashfs_sha256\": \"" H(
		"2") "\"},"
		     "     \"r\": {\"ftype\": \"root.tar.xz\", \"path\": \"i/1/root.tar.xz\", \"sha256\": \"" H(
			     "b") "\", \"size\": 20},"
				  "     \"s\": {\"ftype\": \"squashfs\", \"path\": \"i/1/root.squashfs\", \"sha256\": \"" H(
					  "c") "\", \"size\": 30}}},"
					       "   \"20260202_0000\": {\"items\": {"
					       "     \"c\": {\"ftype\": \"lxd_combined.tar.gz\", \"path\": \"i/2/c.tar.gz\", \"sha256\": "
					       "\"" H("3") "\", \"size\": 40}}},"
							   "   \"bad\": {\"items\": {}},"
							   "   \"20260303_0000\": {\"items\": {"
							   "     \"m\": {\"ftype\": \"lxd.tar.xz\", \"path\": \"x\", \"sha256\": \"short\"}}}}},"
							   " \"bb:1:arm64\": {\"aliases\": \"bb\", \"arch\": \"arm64\", \"versions\": {"
							   "   \"20270101_0000\": {\"items\": {"
							   "     \"c\": {\"ftype\": \"lxd_combined.tar.gz\", \"path\": \"a.tar.gz\", \"sha256\": \"" H(
								   "4") "\", \"size\": 1}}}}},"
									" \"vm:1:amd64\": {\"aliases\": \"bb\", \"arch\": \"amd64\", \"versions\": {"
									"   \"20260101_0000\": {\"items\": {"
									"     \"m\": {\"ftype\": \"lxd.tar.xz\", \"path\": \"v/lxd.tar.xz\", \"sha256\": \"" H("d") "\", \"size\": 1, \"combined_disk-kvm-img_sha256\": \"" H(
										"5") "\"},"
										     "     \"d\": {\"ftype\": \"disk-kvm.img\", \"path\": \"v/disk.img\", \"sha256\": \"" H(
											     "e") "\", \"size\": 2}}}}},"
												  " \"odd:1:mips\": {\"aliases\": \"odd\", \"arch\": \"mips\", \"versions\": {}}"
												  "}}";

static void test_index(void **state)
{
	const char doc[] = "{\"index\": {\"a\": {\"datatype\": \"image-downloads\", \"path\": "
			   "\"streams/v1/images.json\", \"products\": [\"x\"]},"
			   " \"b\": {\"datatype\": \"image-ids\", \"path\": \"ids.json\","
			   " \"products\": [\"y\"]},"
			   " \"c\": {\"datatype\": \"image-downloads\", \"path\": \"empty.json\","
			   " \"products\": []}}}";
	struct berth_error err = {0};
	json_t *paths = NULL;

	(void)state;
	assert_int_equal(ss_index_parse(doc, strlen(doc), &paths, &err), 0);
	assert_int_equal(json_array_size(paths), 1);
	assert_string_equal(json_string_value(json_array_get(paths, 0)), "streams/v1/images.json");
	json_decref(paths);
	assert_int_equal(ss_index_parse("[1]", 3, &paths, &err), -EINVAL);
	berth_error_release(&err);
	assert_int_equal(ss_index_parse("{", 1, &paths, &err), -EINVAL);
	berth_error_release(&err);
}

static void test_products(void **state)
{
	struct ss_catalog cat = {0};
	struct berth_error err = {0};
	const struct ss_image *img;

	(void)state;
	assert_int_equal(ss_products_parse(products, strlen(products), &cat, &err), 0);
	/* amd64 v1: root.tar.xz and squashfs; amd64 v2: combined; arm64: combined; vm: 1.
	 * The version named "bad" and the one with a short hash are skipped, as is mips. */
	assert_int_equal(cat.n_images, 5);

	/* The bare alias: the newest amd64 container (the combined v2). */
	img = ss_catalog_find(&cat, "bb", "container", "x86_64");
	assert_non_null(img);
	assert_string_equal(img->fingerprint, H("3"));
	assert_null(img->rootfs.path);
	assert_string_equal(img->architecture, "x86_64");
	assert_string_equal(json_string_value(json_object_get(img->properties, "os")), "Busybox");
	assert_string_equal(json_string_value(json_object_get(img->properties, "serial")),
			    "20260202_0000");

	/* Qualified by another architecture; bare on that host. */
	img = ss_catalog_find(&cat, "bb/arm64", NULL, "x86_64");
	assert_non_null(img);
	assert_string_equal(img->fingerprint, H("4"));
	img = ss_catalog_find(&cat, "bb", "container", "aarch64");
	assert_string_equal(img->fingerprint, H("4"));

	/* A VM of the same alias only when asked for. */
	img = ss_catalog_find(&cat, "bb", "virtual-machine", "x86_64");
	assert_non_null(img);
	assert_string_equal(img->type, "virtual-machine");
	assert_string_equal(img->fingerprint, H("5"));
	assert_string_equal(img->rootfs.path, "v/disk.img");

	/* Fingerprints by rootfs kind; prefixes, ambiguous prefixes. */
	img = ss_catalog_find(&cat, "bb/1/amd64", NULL, "x86_64");
	assert_non_null(img);
	assert_string_equal(img->fingerprint, H("3"));
	img = ss_catalog_find(&cat, "2222", NULL, "x86_64");
	assert_non_null(img);
	assert_string_equal(img->ftype, "squashfs");
	assert_string_equal(img->rootfs.path, "i/1/root.squashfs");
	assert_int_equal(img->size, 40);
	img = ss_catalog_find(&cat, "1111", NULL, "x86_64");
	assert_non_null(img);
	assert_string_equal(img->ftype, "root.tar.xz");
	assert_string_equal(img->meta.sha256, H("a"));
	assert_string_equal(img->rootfs.sha256, H("b"));
	assert_null(ss_catalog_find(&cat, "", NULL, "x86_64"));
	assert_null(ss_catalog_find(&cat, "nosuch", NULL, "x86_64"));
	assert_null(ss_catalog_find(&cat, "odd", NULL, "x86_64"));
	ss_catalog_release(&cat);

	assert_int_equal(ss_products_parse("{}", 2, &cat, &err), -EINVAL);
	berth_error_release(&err);
	assert_int_equal(cat.n_images, 0);
}

static void test_arch(void **state)
{
	(void)state;
	assert_string_equal(ss_arch_to_lxd("amd64"), "x86_64");
	assert_string_equal(ss_arch_to_lxd("arm64"), "aarch64");
	assert_null(ss_arch_to_lxd("mips"));
	assert_null(ss_arch_to_lxd(NULL));
}

static void test_progress_text(void **state)
{
	char buf[64];

	(void)state;
	image_download_progress_text("rootfs", 45, 100, 12345678, buf, sizeof(buf));
	assert_string_equal(buf, "rootfs: 45% (12.35MB/s)");
	image_download_progress_text("metadata", 10, 10, 999, buf, sizeof(buf));
	assert_string_equal(buf, "metadata: 100% (999B/s)");
	image_download_progress_text("rootfs", 1200000, 0, 1000, buf, sizeof(buf));
	assert_string_equal(buf, "rootfs: 1.20MB (1.00kB/s)");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_index),
		cmocka_unit_test(test_products),
		cmocka_unit_test(test_arch),
		cmocka_unit_test(test_progress_text),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
