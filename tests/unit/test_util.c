/* tests/unit/test_util.c: naming rules, URL coding, time stamps, UUIDs, files,
 * query strings and header helpers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lib/http_util.h"
#include "lib/sha1.h"
#include "lib/sha256.h"
#include "lib/util.h"

static void test_instance_names(void **state)
{
	char max63[64], long64[65];
	const char *good[] = {"c1", "web-01", "A", max63};
	const char *bad[] = {"", "1abc", "-a", "a-", "a_b", "a.b", "a b", "a/b", long64};

	memset(max63, 'a', 63);
	max63[63] = '\0';
	memset(long64, 'a', 64);
	long64[64] = '\0';

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		assert_int_equal(berth_name_check_instance(good[i], NULL), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct berth_error err = {0};
		assert_int_equal(berth_name_check_instance(bad[i], &err), -EINVAL);
		assert_int_equal(err.code, BERTH_ERR_BAD_REQUEST);
		assert_non_null(strstr(err.msg, "Invalid instance name"));
		berth_error_release(&err);
	}
}

static void test_entity_names(void **state)
{
	const char *bad[] = {"",    ".",    "..",  "a/b", "a b", "a\tb",
			     "x'y", "x\"y", "x?y", "x*y", "x\\y"};

	assert_int_equal(berth_name_check_entity("profile name", "web_servers-2.0", NULL), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct berth_error err = {0};
		assert_int_equal(berth_name_check_entity("profile name", bad[i], &err), -EINVAL);
		assert_non_null(strstr(err.msg, "profile name"));
		berth_error_release(&err);
	}
}

static void test_url_coding(void **state)
{
	char *s = NULL;

	assert_int_equal(berth_url_decode("a%20b%2Fc", 9, &s), 0);
	assert_string_equal(s, "a b/c");
	free(s);
	assert_int_equal(berth_url_decode("%zz", 3, &s), -EINVAL);
	assert_int_equal(berth_url_decode("%2", 2, &s), -EINVAL);
	assert_int_equal(berth_url_decode("a%00", 4, &s), -EINVAL);
	s = berth_url_encode("a b/c~");
	assert_string_equal(s, "a%20b%2Fc~");
	free(s);
}

static void test_time_and_uuid(void **state)
{
	struct timespec ts = {.tv_sec = 0, .tv_nsec = 5};
	char buf[BERTH_RFC3339_MAX], id[BERTH_UUID_STR_LEN], id2[BERTH_UUID_STR_LEN];

	berth_time_rfc3339(&ts, buf);
	assert_string_equal(buf, "1970-01-01T00:00:00.000000005Z");
	assert_int_equal(berth_uuid_new(id), 0);
	assert_int_equal(berth_uuid_new(id2), 0);
	assert_int_equal(strlen(id), 36);
	assert_int_equal(id[14], '4');
	assert_int_equal(id[8], '-');
	assert_string_not_equal(id, id2);
}

static void test_files(void **state)
{
	char dir[] = "/tmp/berth-test-util-XXXXXX";
	char path[128], *data = NULL;
	size_t len = 0;
	struct stat st;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/a/b/c", dir);
	assert_int_equal(berth_mkdir_p(path, 0755), 0);
	assert_int_equal(berth_mkdir_p(path, 0755), 0); /* idempotent */
	snprintf(path, sizeof(path), "%s/a/file", dir);
	assert_int_equal(berth_write_file_atomic(path, "hello", 5, 0640), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0640);
	assert_int_equal(berth_read_file(path, 1024, &data, &len), 0);
	assert_int_equal(len, 5);
	assert_string_equal(data, "hello");
	free(data);
	assert_int_equal(berth_read_file(path, 2, &data, &len), -EFBIG);
	assert_int_equal(berth_read_file("/nonexistent/x", 2, &data, &len), -ENOENT);
	snprintf(path, sizeof(path), "rm -rf %s", dir);
	assert_int_equal(system(path), 0);
}

static void test_query(void **state)
{
	char *v = NULL;

	assert_int_equal(berth_http_query_get("recursion=1&project=p%201&flag", "project", &v), 0);
	assert_string_equal(v, "p 1");
	free(v);
	assert_int_equal(berth_http_query_get("recursion=1&flag", "flag", &v), 0);
	assert_string_equal(v, "");
	free(v);
	assert_int_equal(berth_http_query_get("a=b+c", "a", &v), 0);
	assert_string_equal(v, "b c");
	free(v);
	assert_int_equal(berth_http_query_get("recursion=1", "rec", &v), -ENOENT);
	assert_int_equal(berth_http_query_get("", "x", &v), -ENOENT);
	assert_int_equal(berth_http_query_get("x=%g0", "x", &v), -EINVAL);
}

static void test_headers(void **state)
{
	struct berth_http_header h[] = {{"Content-Type", "a"}, {"upgrade", "WebSocket"}};
	char key[32];

	assert_string_equal(berth_http_header_get(h, 2, "UPGRADE"), "WebSocket");
	assert_null(berth_http_header_get(h, 2, "Host"));
	assert_true(berth_http_header_has_token("keep-alive, Upgrade", "upgrade"));
	assert_false(berth_http_header_has_token("keep-alive", "upgrade"));
	/* The example from RFC 6455 section 1.3. */
	assert_int_equal(berth_ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", key), 0);
	assert_string_equal(key, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
	assert_string_equal(berth_http_reason(431), "Request Header Fields Too Large");
}

static void hex(const uint8_t *d, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", d[i]);
}

/* FIPS 180 examples (one block, two blocks, a million bytes) and RFC 4648 section 10. */
static void test_sha1_base64(void **state)
{
	static const char *const b64[][2] = {{"", ""},
					     {"f", "Zg=="},
					     {"fo", "Zm8="},
					     {"foo", "Zm9v"},
					     {"foob", "Zm9vYg=="},
					     {"fooba", "Zm9vYmE="},
					     {"foobar", "Zm9vYmFy"}};
	uint8_t md[BERTH_SHA1_LEN];
	char h[2 * BERTH_SHA1_LEN + 1], out[16];
	char *big = malloc(1000000);

	berth_sha1("abc", 3, md);
	hex(md, sizeof(md), h);
	assert_string_equal(h, "a9993e364706816aba3e25717850c26c9cd0d89d");
	berth_sha1("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56, md);
	hex(md, sizeof(md), h);
	assert_string_equal(h, "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
	berth_sha1("", 0, md);
	hex(md, sizeof(md), h);
	assert_string_equal(h, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
	assert_non_null(big);
	memset(big, 'a', 1000000);
	berth_sha1(big, 1000000, md);
	free(big);
	hex(md, sizeof(md), h);
	assert_string_equal(h, "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
	for (size_t i = 0; i < sizeof(b64) / sizeof(b64[0]); i++) {
		assert_int_equal(berth_base64_encode(b64[i][0], strlen(b64[i][0]), out),
				 strlen(b64[i][1]));
		assert_string_equal(out, b64[i][1]);
	}
}

/* FIPS 180 examples, with the CPU's SHA extensions (where it has them) and without,
 * and both ways against each other: lengths around the block and padding edges, fed
 * whole and in uneven pieces. */
static void test_sha256(void **state)
{
	static const char *const v[][2] = {
		{"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
		{"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
		{"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
		 "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
		{"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmno"
		 "ijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
		 "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"},
	};
	uint8_t md[BERTH_SHA256_LEN], md2[BERTH_SHA256_LEN];
	char h[2 * BERTH_SHA256_LEN + 1];
	uint8_t *big = malloc(1000000);

	assert_non_null(big);
	for (int cpu = 0; cpu < 2; cpu++) {
		berth_sha256_use_cpu(cpu);
		for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
			berth_sha256(v[i][0], strlen(v[i][0]), md);
			hex(md, sizeof(md), h);
			assert_string_equal(h, v[i][1]);
		}
		memset(big, 'a', 1000000);
		berth_sha256(big, 1000000, md);
		hex(md, sizeof(md), h);
		assert_string_equal(h, "cdc76e5c9914fb9281a1c7e284d73e67"
				       "f1809a48a497200e046d39ccc7112cd0");
	}
	for (size_t i = 0; i < 1000000; i++)
		big[i] = (uint8_t)(i * 2654435761u >> 13);
	for (size_t len = 0; len < 1000000; len = len < 300 ? len + 1 : len * 3 + 7) {
		struct berth_sha256 c;

		berth_sha256_use_cpu(true);
		berth_sha256(big, len, md);
		berth_sha256_use_cpu(false);
		berth_sha256_init(&c);
		for (size_t off = 0, n = 1; off < len; off += n, n = n * 5 % 97 + 1)
			berth_sha256_update(&c, big + off, n < len - off ? n : len - off);
		berth_sha256_final(&c, md2);
		assert_memory_equal(md, md2, sizeof(md));
	}
	berth_sha256_use_cpu(true);
	free(big);
}

static void test_error_wrap(void **state)
{
	struct berth_error err = {0};

	assert_int_equal(berth_error_set(&err, -ENOENT, BERTH_ERR_NOT_FOUND, "no %s", "x"),
			 -ENOENT);
	assert_int_equal(berth_error_wrap(&err, -ENOENT, "loading \"%s\"", "p"), -ENOENT);
	assert_string_equal(err.msg, "loading \"p\": no x");
	assert_int_equal(berth_error_code_for(&err, -ENOENT), 404);
	berth_error_release(&err);
	assert_int_equal(berth_error_code_for(NULL, -EEXIST), 409);
	assert_int_equal(berth_error_code_for(NULL, -EIO), 500);
	assert_string_equal(berth_error_msg(NULL, -ENOENT), "No such file or directory");
}

static void test_time_normalize(void **state)
{
	static const char *const cases[][2] = {
		{"2030-01-01T00:00:00Z", "2030-01-01T00:00:00Z"},
		{"2030-01-01T02:00:00+02:00", "2030-01-01T00:00:00Z"},
		{"2029-12-31T23:30:00-00:30", "2030-01-01T00:00:00Z"},
		{"2030-01-01T00:00:00.500Z", "2030-01-01T00:00:00.5Z"},
		{"2030-01-01T00:00:00.000000001Z", "2030-01-01T00:00:00.000000001Z"},
		{"2030-01-01T00:00:00.000Z", "2030-01-01T00:00:00Z"},
		{"0001-01-01T00:00:00Z", BERTH_TIME_ZERO},
	};
	char buf[BERTH_RFC3339_MAX];

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		assert_int_equal(berth_time_normalize(cases[i][0], buf), 0);
		assert_string_equal(buf, cases[i][1]);
	}
	assert_int_equal(berth_time_normalize("soon", buf), -EINVAL);
	assert_int_equal(berth_time_normalize("2030-01-01T00:00:00", buf), -EINVAL);
	assert_int_equal(berth_time_normalize("2030-01-01T00:00:00+2", buf), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_instance_names), cmocka_unit_test(test_entity_names),
		cmocka_unit_test(test_url_coding),     cmocka_unit_test(test_time_and_uuid),
		cmocka_unit_test(test_time_normalize), cmocka_unit_test(test_files),
		cmocka_unit_test(test_query),	       cmocka_unit_test(test_headers),
		cmocka_unit_test(test_error_wrap),     cmocka_unit_test(test_sha256),
		cmocka_unit_test(test_sha1_base64),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
