/* tests/unit/test_tls.c: LXD's trust password format (lib/tls.c: salted scrypt, checked
 * against a vector made with Python's hashlib.scrypt and LXD's parameters), certificate
 * generation and fingerprints, the trust token codec (lib/trust_token.c), and
 * core.https_address parsing (daemon/https.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/https.h"
#include "lib/tls.h"
#include "lib/trust_token.h"
#include "lib/util.h"

/* hex(salt = 00..1f || scrypt("s3cret", salt, N=16384, r=8, p=1, 64 bytes)) */
static const char vector[] =
	"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f18f04182fa2160412646"
	"946a7bd32b4d4a187bd0bf33c29f188114da446aaf4737304a8c08ac2f87ae980b0e9b097ed6822302a8"
	"e738010cdd9e81e8f02e9ad6";

static void test_password(void **state)
{
	char *a = NULL, *b = NULL;

	assert_int_equal(berth_tls_password_check(vector, "s3cret"), 0);
	assert_int_equal(berth_tls_password_check(vector, "s3cret!"), -EACCES);
	assert_int_equal(berth_tls_password_check("abc", "s3cret"), -EINVAL);
	assert_int_equal(berth_tls_password_hash("pw", &a), 0);
	assert_int_equal(berth_tls_password_hash("pw", &b), 0);
	assert_int_equal(strlen(a), 192);
	assert_string_not_equal(a, b); /* salted */
	assert_int_equal(berth_tls_password_check(a, "pw"), 0);
	assert_int_equal(berth_tls_password_check(b, "other"), -EACCES);
	free(a);
	free(b);
}

static void test_certificate(void **state)
{
	char dir[] = "/tmp/berth-test-tls.XXXXXX";
	const char *names[] = {"host.example", "127.0.0.1", "::1", NULL};
	_cleanup_free_ char *crt = NULL, *key = NULL, *pem = NULL, *cn = NULL;
	struct berth_tls_ctx *ctx = NULL;
	char fp[BERTH_TLS_FINGERPRINT_LEN + 1];
	size_t len = 0;

	assert_non_null(mkdtemp(dir));
	crt = berth_strdup_printf("%s/server.crt", dir);
	key = berth_strdup_printf("%s/server.key", dir);
	assert_int_equal(berth_tls_cert_generate(crt, key, "host.example", names, 3650, NULL), 0);
	assert_int_equal(berth_read_file(crt, 1 << 20, &pem, &len), 0);
	assert_int_equal(berth_tls_cert_pem_fingerprint(pem, fp), 0);
	assert_int_equal(strlen(fp), 64);
	assert_int_equal(berth_tls_cert_common_name(pem, &cn), 0);
	assert_string_equal(cn, "host.example");
	assert_int_equal(berth_tls_server_ctx_new(crt, key, &ctx, NULL), 0);
	berth_tls_ctx_free(ctx);
	assert_int_equal(berth_tls_cert_pem_fingerprint("not a certificate", fp), -EINVAL);
	assert_int_equal(berth_tls_cert_der_to_pem("junk", 4, &cn, fp), -EINVAL);
	unlink(crt);
	unlink(key);
	rmdir(dir);
}

static void test_token(void **state)
{
	char *addrs[] = {"127.0.0.1:8443", "[::1]:8443", NULL};
	struct berth_trust_token t = {.client_name = "c",
				      .fingerprint = "ab",
				      .addresses = addrs,
				      .secret = "s"};
	struct berth_trust_token back = {0};
	_cleanup_free_ char *s = NULL;

	assert_int_equal(berth_trust_token_encode(&t, &s), 0);
	assert_int_equal(berth_trust_token_decode(s, strlen(s), &back), 0);
	assert_string_equal(back.client_name, "c");
	assert_string_equal(back.addresses[1], "[::1]:8443");
	assert_null(back.addresses[2]);
	assert_string_equal(back.expires_at, "0001-01-01T00:00:00Z");
	berth_trust_token_release(&back);
	/* base64 of {"secret":""}: an empty secret is no token */
	assert_int_equal(berth_trust_token_decode("eyJzZWNyZXQiOiIifQ==", 20, &back), -EINVAL);
	assert_int_equal(berth_trust_token_decode("abc", 3, &back), -EINVAL);
	assert_int_equal(berth_trust_token_decode("a=bc", 4, &back), -EINVAL);
}

static void parses(const char *addr, int family, unsigned port, bool wildcard)
{
	struct sockaddr_storage ss;
	socklen_t len = 0;
	bool wc = !wildcard;

	if (https_address_parse(addr, &ss, &len, &wc) != 0)
		fail_msg("\"%s\" refused", addr);
	assert_int_equal(ss.ss_family, family);
	assert_int_equal(ntohs(family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
						 : ((struct sockaddr_in6 *)&ss)->sin6_port),
			 port);
	assert_int_equal(wc, wildcard);
}

static void test_address(void **state)
{
	const char *bad[] = {"",	 "127.0.0.1:", "127.0.0.1:0",	    "127.0.0.1:65536",
			     "[::1",	 "[::1]x",     "host.example:8443", "1.2.3.4:80x",
			     "300.1.1.1"};
	struct sockaddr_storage ss;
	socklen_t len;
	bool wc;

	parses("127.0.0.1:8443", AF_INET, 8443, false);
	parses("127.0.0.1", AF_INET, 8443, false);
	parses("0.0.0.0:9000", AF_INET, 9000, true);
	parses(":8443", AF_INET6, 8443, true);
	parses("[::]:8443", AF_INET6, 8443, true);
	parses("[::1]:1", AF_INET6, 1, false);
	parses("::1", AF_INET6, 8443, false);
	for (size_t i = 1; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (https_address_parse(bad[i], &ss, &len, &wc) == 0)
			fail_msg("\"%s\" accepted", bad[i]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_password),
		cmocka_unit_test(test_certificate),
		cmocka_unit_test(test_token),
		cmocka_unit_test(test_address),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
