/* tests/unit/test_remote_config.c: config.yml as the stock lxc client writes it (parsed,
 * defaults filled in, written back and read again), malformed files named, REMOTE:NAME
 * split as lxc splits it, certificate add tokens told from addresses and passwords, and
 * the client certificate made on first use. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/json.h"
#include "lib/remote_config.h"
#include "lib/util.h"

/* What lxc 5.0.2 writes after `lxc remote add b https://10.0.0.1:8443` and a switch. */
static const char lxc_yml[] = "default-remote: b\n"
			      "remotes:\n"
			      "  b:\n"
			      "    addr: https://10.0.0.1:8443\n"
			      "    auth_type: tls\n"
			      "    project: p1\n"
			      "    protocol: lxd\n"
			      "    public: false\n"
			      "  images:\n"
			      "    addr: https://images.example.org\n"
			      "    protocol: simplestreams\n"
			      "    public: true\n"
			      "aliases:\n"
			      "  ls: list -c n\n";

static void test_parse_lxc_format(void **state)
{
	json_auto_t *yml = NULL;
	json_t *b;

	(void)state;
	assert_int_equal(berth_remote_config_parse(lxc_yml, strlen(lxc_yml), "c.yml", &yml, NULL),
			 0);
	assert_string_equal(berth_json_string(yml, "default-remote"), "b");
	b = json_object_get(json_object_get(yml, "remotes"), "b");
	assert_string_equal(berth_json_string(b, "addr"), "https://10.0.0.1:8443");
	assert_string_equal(berth_json_string(b, "auth_type"), "tls");
	assert_string_equal(berth_json_string(b, "project"), "p1");
	assert_true(json_is_false(json_object_get(b, "public")));
	/* local is always there; the aliases kept */
	assert_string_equal(berth_json_string(json_object_get(json_object_get(yml, "remotes"),
							      "local"),
					      "addr"),
			    "unix://");
	assert_string_equal(berth_json_string(json_object_get(yml, "aliases"), "ls"), "list -c n");
}

static void test_parse_defaults(void **state)
{
	json_auto_t *yml = NULL;

	(void)state;
	assert_int_equal(berth_remote_config_parse("", 0, "c.yml", &yml, NULL), 0);
	assert_string_equal(berth_json_string(yml, "default-remote"), "local");
	assert_non_null(json_object_get(json_object_get(yml, "remotes"), "local"));
}

static void assert_malformed(const char *text, const char *msg)
{
	struct berth_error err = {0};
	json_t *yml = NULL;

	assert_int_equal(berth_remote_config_parse(text, strlen(text), "/x/config.yml", &yml, &err),
			 -EINVAL);
	assert_null(yml);
	assert_non_null(strstr(err.msg, msg));
	berth_error_release(&err);
}

static void test_parse_malformed(void **state)
{
	(void)state;
	assert_malformed("remotes: [a]\n", "/x/config.yml: remotes is not a map");
	assert_malformed("remotes:\n  b:\n    protocol: lxd\n", "remote \"b\" has no addr");
	assert_malformed("remotes:\n  b:\n    addr: https://x\n    protocol: ftp\n",
			 "unknown protocol \"ftp\"");
	assert_malformed("default-remote: [1]\n", "default-remote is not a string");
	assert_malformed("- 1\n", "/x/config.yml: not a map");
	assert_malformed("remotes: {\n", "/x/config.yml");
}

static void test_split(void **state)
{
	struct berth_remote_config c = {0};
	struct berth_error err = {0};
	const char *remote = NULL, *name = NULL;

	(void)state;
	assert_int_equal(berth_remote_config_parse(lxc_yml, strlen(lxc_yml), "c", &c.yml, NULL), 0);
	assert_int_equal(berth_remote_config_split(&c, "b:c1", &remote, &name, NULL), 0);
	assert_string_equal(remote, "b");
	assert_string_equal(name, "c1");
	assert_int_equal(berth_remote_config_split(&c, "c1", &remote, &name, NULL), 0);
	assert_string_equal(remote, "b"); /* the default */
	assert_string_equal(name, "c1");
	assert_int_equal(berth_remote_config_split(&c, "local:", &remote, &name, NULL), 0);
	assert_string_equal(remote, "local");
	assert_string_equal(name, "");
	/* a snapshot with a colon in its name stays on the default remote */
	assert_int_equal(berth_remote_config_split(&c, "c1/snap:1", &remote, &name, NULL), 0);
	assert_string_equal(name, "c1/snap:1");
	assert_int_equal(berth_remote_config_split(&c, "nope:c1", &remote, &name, &err), -ENOENT);
	assert_string_equal(err.msg, "The remote \"nope\" doesn't exist");
	berth_error_release(&err);
	json_decref(c.yml);
}

static void test_token(void **state)
{
	/* base64 of {"client_name":"t","fingerprint":"ab","addresses":["10.0.0.1:8443"],
	 * "secret":"s3","expires_at":"0001-01-01T00:00:00Z"} */
	static const char tok[] =
		"eyJjbGllbnRfbmFtZSI6InQiLCJmaW5nZXJwcmludCI6ImFiIiwiYWRkcmVzc2VzIjpbIjEwLjAuMC4x"
		"Ojg0NDMiXSwic2VjcmV0IjoiczMiLCJleHBpcmVzX2F0IjoiMDAwMS0wMS0wMVQwMDowMDowMFoifQ==";
	json_auto_t *j = NULL;
	json_t *bad = NULL;

	(void)state;
	assert_int_equal(berth_remote_token_decode(tok, &j), 0);
	assert_string_equal(berth_json_string(j, "fingerprint"), "ab");
	assert_string_equal(berth_json_string(j, "secret"), "s3");
	assert_string_equal(json_string_value(json_array_get(json_object_get(j, "addresses"), 0)),
			    "10.0.0.1:8443");
	/* addresses and passwords are not tokens */
	assert_int_equal(berth_remote_token_decode("10.0.0.1", &bad), -EINVAL);
	assert_int_equal(berth_remote_token_decode("https://host:8443", &bad), -EINVAL);
	assert_int_equal(berth_remote_token_decode("s3cret", &bad), -EINVAL);
	assert_int_equal(berth_remote_token_decode("", &bad), -EINVAL);
	/* base64 of JSON without a secret: {"fingerprint":"ab","addresses":[]} */
	assert_int_equal(
		berth_remote_token_decode("eyJmaW5nZXJwcmludCI6ImFiIiwiYWRkcmVzc2VzIjpbXX0=", &bad),
		-EINVAL);
	assert_null(bad);
}

static void test_save_load_cert(void **state)
{
	char dir[] = "/tmp/test_remote_config.XXXXXX";
	struct berth_remote_config c = {0}, again = {0};
	_cleanup_free_ char *crt = NULL;
	char fp[65];
	size_t len = 0;

	(void)state;
	if (getenv("BERTH_BUILDDIR")) { /* make check: the helper of this build */
		_cleanup_free_ char *h = berth_strdup_printf("%s/berth-tls",
							     getenv("BERTH_BUILDDIR"));

		setenv("BERTH_TLS_HELPER", h, 1);
	}
	assert_non_null(mkdtemp(dir));
	assert_int_equal(berth_remote_config_load(dir, &c, NULL), 0);
	assert_string_equal(berth_remote_config_default(&c), "local");
	json_object_set_new(json_object_get(c.yml, "remotes"), "x",
			    json_pack("{s:s, s:s, s:b}", "addr", "https://h:1", "protocol", "lxd",
				      "public", 0));
	assert_int_equal(berth_remote_config_save(&c, NULL), 0);
	assert_int_equal(berth_remote_config_load(dir, &again, NULL), 0);
	assert_string_equal(berth_json_string(berth_remote_config_get(&again, "x"), "addr"),
			    "https://h:1");
	/* the client certificate: made once, then kept */
	assert_int_equal(berth_remote_config_ensure_client_cert(&c, NULL), 1);
	assert_int_equal(berth_remote_config_ensure_client_cert(&c, NULL), 0);
	crt = berth_remote_config_path(&c, "client.crt");
	{
		_cleanup_free_ char *pem = NULL;

		assert_int_equal(berth_read_file(crt, 65536, &pem, &len), 0);
		assert_int_equal(berth_remote_cert_fingerprint(pem, fp), 0);
		assert_int_equal(strlen(fp), 64);
	}
	berth_remote_config_release(&c);
	berth_remote_config_release(&again);
	for (size_t i = 0; i < 3; i++) {
		static const char *const files[] = {"config.yml", "client.crt", "client.key"};
		_cleanup_free_ char *f = berth_strdup_printf("%s/%s", dir, files[i]);

		assert_int_equal(unlink(f), 0);
	}
	assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_lxc_format),
		cmocka_unit_test(test_parse_defaults),
		cmocka_unit_test(test_parse_malformed),
		cmocka_unit_test(test_split),
		cmocka_unit_test(test_token),
		cmocka_unit_test(test_save_load_cert),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
