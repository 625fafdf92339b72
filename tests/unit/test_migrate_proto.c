/* tests/unit/test_migrate_proto.c: LXD's migration messages (daemon/instance/migrate_proto.c).
 *
 * The reference bytes are the protobuf encoding of what an LXD 5.0 source on a dir pool
 * offers for a stopped container with one snapshot (rsync features xattrs, delete,
 * compress, bidirectional; Go's zero time as the expiry: a negative int64, ten bytes),
 * written out field by field from migrate.proto in field-number order, the order Go's
 * marshaller writes. Decoding them gives the JSON we expect, encoding that JSON gives the
 * same bytes back; malformed input (truncations at every length, bad wire types,
 * missing required fields, overlong varints) is refused without reading past the end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "daemon/instance/migrate_proto.h"
#include "lib/json.h"

static const char header_hex[] =
	"08002205736e6170302a4d0a05736e617030120f0a0a6c696d6974732e6370751201311a07646566"
	"61756c7420002a110a04726f6f7412090a047061746812012f300238004080e2cfaa064800508092"
	"b8c398feffffff01380042080801100118012001";

static size_t unhex(const char *hex, uint8_t *out)
{
	size_t n = strlen(hex) / 2;

	for (size_t i = 0; i < n; i++) {
		unsigned v;

		assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
		out[i] = (uint8_t)v;
	}
	return n;
}

static json_t *expected_header(void)
{
	return json_pack("{s:i, s:[s], s:[{s:s, s:{s:s}, s:[s], s:b, s:{s:{s:s}}, s:i, s:b, s:I, "
			 "s:I, s:I}], s:b, s:{s:b, s:b, s:b, s:b}}",
			 "fs", 0, "snapshotNames", "snap0", "snapshots", "name", "snap0",
			 "localConfig", "limits.cpu", "1", "profiles", "default", "ephemeral", 0,
			 "localDevices", "root", "path", "/", "architecture", 2, "stateful", 0,
			 "creation_date", (json_int_t)1700000000, "last_used_date", (json_int_t)0,
			 "expiry_date", (json_int_t)-62135596800LL, "predump", 0, "rsyncFeatures",
			 "xattrs", 1, "delete", 1, "compress", 1, "bidirectional", 1);
}

static void test_header_decode(void **state)
{
	uint8_t buf[256];
	size_t n = unhex(header_hex, buf);
	struct berth_error err = {0};
	json_auto_t *got = NULL;
	json_auto_t *want = expected_header();

	(void)state;
	assert_int_equal(migrate_header_decode(buf, n, &got, &err), 0);
	assert_true(json_equal(got, want));
}

static void test_header_encode(void **state)
{
	uint8_t buf[256];
	size_t n = unhex(header_hex, buf);
	struct berth_error err = {0};
	json_auto_t *want = expected_header();
	uint8_t *out = NULL;
	size_t len = 0;

	(void)state;
	assert_int_equal(migrate_header_encode(want, &out, &len, &err), 0);
	assert_int_equal(len, n);
	assert_memory_equal(out, buf, n);
	free(out);
}

/* A header naming a snapshot as a path ("../x", "a/b") is refused: the target would
 * create it there. */
static void test_hostile_names(void **state)
{
	static const char *const bad[] = {"../x", "a/b", "..", ""};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		for (int where = 0; where < 2; where++) {
			json_auto_t *h = expected_header();
			json_auto_t *got = NULL;
			struct berth_error err = {0};
			uint8_t *out = NULL;
			size_t len = 0;

			if (where == 0)
				json_array_set_new(json_object_get(h, "snapshotNames"), 0,
						   json_string(bad[i]));
			else
				json_object_set_new(json_array_get(json_object_get(h, "snapshots"),
								   0),
						    "name", json_string(bad[i]));
			assert_int_equal(migrate_header_encode(h, &out, &len, &err), 0);
			assert_true(migrate_header_decode(out, len, &got, &err) < 0);
			assert_null(got);
			assert_non_null(strstr(err.msg, "snapshot name from the migration peer"));
			free(out);
			berth_error_release(&err);
		}
}

static void test_control(void **state)
{
	static const uint8_t fail[] = {0x08, 0x00, 0x12, 0x04, 'b', 'o', 'o', 'm'};
	struct berth_error err = {0};
	json_auto_t *got = NULL;
	json_auto_t *ok = json_pack("{s:b}", "success", 1);
	uint8_t *out = NULL;
	size_t len = 0;

	(void)state;
	assert_int_equal(migrate_control_decode(fail, sizeof(fail), &got, &err), 0);
	assert_false(json_is_true(json_object_get(got, "success")));
	assert_string_equal(berth_json_string(got, "message"), "boom");
	assert_int_equal(migrate_control_encode(got, &out, &len, &err), 0);
	assert_int_equal(len, sizeof(fail));
	assert_memory_equal(out, fail, len);
	free(out);
	assert_int_equal(migrate_control_encode(ok, &out, &len, &err), 0);
	assert_int_equal(len, 2);
	assert_int_equal(out[0], 0x08);
	assert_int_equal(out[1], 0x01);
	free(out);
}

/* Every proper prefix of a valid header is refused or decodes to fewer fields: never a
 * read past the end (run under ASan in the sanitizer stage). Cuts inside a field fail. */
static void test_truncated(void **state)
{
	uint8_t buf[256];
	size_t n = unhex(header_hex, buf);

	(void)state;
	for (size_t cut = 0; cut < n; cut++) {
		uint8_t *copy = malloc(cut ? cut : 1);
		struct berth_error err = {0};
		json_t *got = NULL;
		int r;

		memcpy(copy, buf, cut);
		r = migrate_header_decode(copy, cut, &got, &err);
		/* Field boundaries: 2 (fs), 9 (snapshotNames), 88 (snapshots), 90 (predump). */
		if (cut == 2 || cut == 9 || cut == 88 || cut == 90) {
			assert_int_equal(r, 0);
			json_decref(got);
		} else {
			assert_int_equal(r, -EBADMSG);
			assert_non_null(err.msg);
		}
		berth_error_release(&err);
		free(copy);
	}
}

static void test_malformed(void **state)
{
	static const struct {
		const char *what;
		uint8_t bytes[12];
		size_t len;
	} cases[] = {
		{"missing fs", {0x38, 0x01}, 2},
		{"bad wire type for fs", {0x0a, 0x00}, 2},
		{"wire type 7", {0x0f}, 1},
		{"field 0", {0x00, 0x00}, 2},
		{"overlong varint",
		 {0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02},
		 11},
		{"length past the end", {0x08, 0x00, 0x22, 0x05, 'a'}, 5},
		{"snapshot without name", {0x08, 0x00, 0x2a, 0x02, 0x20, 0x00}, 6},
		{"string not UTF-8", {0x08, 0x00, 0x22, 0x01, 0xff}, 5},
	};
	struct berth_error err = {0};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *got = NULL;

		print_message("%s\n", cases[i].what);
		assert_int_equal(migrate_header_decode(cases[i].bytes, cases[i].len, &got, &err),
				 -EBADMSG);
		assert_null(got);
		berth_error_release(&err);
	}
}

/* Unknown fields of every wire type are skipped; known ones still land. */
static void test_unknown_fields(void **state)
{
	static const uint8_t buf[] = {
		0x08, 0x01,				   /* fs = BTRFS */
		0x98, 0x06, 0x05,			   /* field 99, varint */
		0xa1, 0x06, 1,	  2,   3,   4, 5, 6, 7, 8, /* field 100, fixed64 */
		0xad, 0x06, 1,	  2,   3,   4,		   /* field 101, fixed32 */
		0xb2, 0x06, 0x02, 'h', 'i',		   /* field 102, bytes */
		0x48, 0x01,				   /* refresh = true */
	};
	struct berth_error err = {0};
	json_auto_t *got = NULL;

	(void)state;
	assert_int_equal(migrate_header_decode(buf, sizeof(buf), &got, &err), 0);
	assert_int_equal(json_integer_value(json_object_get(got, "fs")), 1);
	assert_true(json_is_true(json_object_get(got, "refresh")));
	assert_int_equal(json_object_size(got), 2);
}

static void test_encode_errors(void **state)
{
	json_auto_t *no_fs = json_pack("{s:b}", "refresh", 1);
	json_auto_t *bad = json_pack("{s:i, s:[i]}", "fs", 0, "snapshotNames", 3);
	struct berth_error err = {0};
	uint8_t *out = NULL;
	size_t len = 0;

	(void)state;
	assert_int_equal(migrate_header_encode(no_fs, &out, &len, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "\"fs\""));
	berth_error_release(&err);
	assert_int_equal(migrate_header_encode(bad, &out, &len, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "snapshotNames"));
	berth_error_release(&err);
	assert_null(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_header_decode), cmocka_unit_test(test_header_encode),
		cmocka_unit_test(test_control),	      cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_malformed),     cmocka_unit_test(test_unknown_fields),
		cmocka_unit_test(test_encode_errors), cmocka_unit_test(test_hostile_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
