/* tests/unit/test_proxy.c: proxy device addresses (parse, pairing, socket addresses), the
 * device checks, and the nftables script of nat=true devices. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/config_keys.h"
#include "daemon/instance/proxy.h"
#include "daemon/proxy/addr.h"
#include "daemon/proxy/nft.h"
#include "lib/json.h"

static void parse_ok(const char *s, struct proxy_addr *a)
{
	char why[256] = "";

	if (proxy_addr_parse(s, a, why, sizeof(why)) != 0)
		fail_msg("\"%s\" refused: %s", s, why);
}

static void parse_bad(const char *s, const char *needle)
{
	struct proxy_addr a = {0};
	char why[256] = "";

	if (proxy_addr_parse(s, &a, why, sizeof(why)) != -EINVAL)
		fail_msg("\"%s\" accepted", s);
	if (!strstr(why, needle))
		fail_msg("\"%s\": \"%s\" lacks \"%s\"", s, why, needle);
}

static void test_parse(void **state)
{
	struct proxy_addr a = {0};
	struct sockaddr_storage ss;
	char ip[INET6_ADDRSTRLEN];

	parse_ok("tcp:127.0.0.1:80", &a);
	assert_int_equal(a.proto, PROXY_TCP);
	assert_int_equal(a.family, AF_INET);
	assert_int_equal(a.n_ports, 1);
	assert_int_equal(a.ports[0], 80);
	assert_string_equal(proxy_addr_ip_string(&a, ip), "127.0.0.1");
	proxy_addr_sockaddr(&a, 0, &ss);
	assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), 80);
	proxy_addr_release(&a);

	parse_ok("udp:[fd42::1]:53,60-62,1000", &a);
	assert_int_equal(a.proto, PROXY_UDP);
	assert_int_equal(a.family, AF_INET6);
	assert_int_equal(a.n_ports, 5);
	assert_int_equal(a.ports[1], 60);
	assert_int_equal(a.ports[3], 62);
	assert_int_equal(a.ports[4], 1000);
	assert_string_equal(proxy_addr_ip_string(&a, ip), "fd42::1");
	proxy_addr_release(&a);

	parse_ok("tcp::8080", &a);
	assert_true(proxy_addr_is_wildcard(&a));
	proxy_addr_release(&a);

	parse_ok("unix:/run/x.sock", &a);
	assert_int_equal(a.family, AF_UNIX);
	assert_false(a.abstract);
	assert_string_equal(a.path, "/run/x.sock");
	parse_ok("unix:@name", &a);
	assert_true(a.abstract);
	assert_int_equal(proxy_addr_sockaddr(&a, 0, &ss),
			 offsetof(struct sockaddr_un, sun_path) + 5);
	assert_int_equal(((struct sockaddr_un *)&ss)->sun_path[0], '\0');

	parse_bad("tcp:127.0.0.1", "missing port");
	parse_bad("sctp:1.2.3.4:5", "Unknown protocol type \"sctp\"");
	parse_bad("tcp", "Unknown protocol type");
	parse_bad("tcp:", "Missing address");
	parse_bad("tcp:1.2.3:80", "Invalid IP address");
	parse_bad("tcp:::1:80", "brackets");
	parse_bad("tcp:[::1:80", "expected [IPV6]:PORT");
	parse_bad("tcp:1.2.3.4:65536", "Invalid port");
	parse_bad("tcp:1.2.3.4:0", "Invalid port");
	parse_bad("tcp:1.2.3.4:80,", "Invalid port");
	parse_bad("tcp:1.2.3.4:9-3", "Invalid port range");
	parse_bad("tcp:1.2.3.4:1-2000", "Too many ports");
	parse_bad("unix:rel/x.sock", "must be absolute");
	parse_bad("unix:@", "Missing unix socket name");
}

static int pair(const char *l, const char *c, bool nat, char *why)
{
	struct proxy_addr la = {0}, ca = {0};
	int r;

	parse_ok(l, &la);
	parse_ok(c, &ca);
	r = proxy_addr_check_pair(&la, &ca, nat, why, 256);
	proxy_addr_release(&la);
	proxy_addr_release(&ca);
	return r;
}

static void test_pairs(void **state)
{
	char why[256];
	struct proxy_addr c = {0};

	assert_int_equal(pair("tcp:1.2.3.4:80-82", "tcp:10.0.0.1:90", false, why), 0);
	assert_int_equal(pair("tcp:1.2.3.4:80-82", "tcp:10.0.0.1:90-92", false, why), 0);
	assert_int_equal(pair("tcp:1.2.3.4:80-82", "tcp:10.0.0.1:90-91", false, why), -EINVAL);
	assert_non_null(strstr(why, "Mismatch"));
	assert_int_equal(pair("unix:/x", "tcp:10.0.0.1:90", false, why), 0);
	assert_int_equal(pair("tcp:1.2.3.4:80", "unix:/y", false, why), 0);
	assert_int_equal(pair("udp:1.2.3.4:53", "tcp:10.0.0.1:53", false, why), -EINVAL);
	assert_int_equal(pair("tcp:1.2.3.4:53", "udp:10.0.0.1:53", false, why), -EINVAL);
	assert_int_equal(pair("tcp:1.2.3.4:80", "tcp:10.0.0.1:80", true, why), 0);
	assert_int_equal(pair("tcp:0.0.0.0:80", "tcp:10.0.0.1:80", true, why), -EINVAL);
	assert_non_null(strstr(why, "wildcard"));
	assert_int_equal(pair("tcp:1.2.3.4:80", "tcp:[fd00::1]:80", true, why), -EINVAL);
	assert_int_equal(pair("tcp:1.2.3.4:80", "udp:10.0.0.1:80", true, why), -EINVAL);

	parse_ok("tcp:1.1.1.1:90-92", &c);
	assert_int_equal(proxy_addr_connect_port(&c, 0), 90);
	assert_int_equal(proxy_addr_connect_port(&c, 2), 92);
	proxy_addr_release(&c);
	parse_ok("tcp:1.1.1.1:90", &c);
	assert_int_equal(proxy_addr_connect_port(&c, 2), 90);
	proxy_addr_release(&c);
}

static void dev_ok(const char *json)
{
	json_auto_t *devs = json_loads(json, 0, NULL);
	struct berth_error err = {0};

	assert_non_null(devs);
	if (config_check_devices(devs, &err) != 0)
		fail_msg("%s refused: %s", json, err.msg);
}

static void dev_bad(const char *json, const char *needle)
{
	json_auto_t *devs = json_loads(json, 0, NULL);
	struct berth_error err = {0};

	assert_non_null(devs);
	if (config_check_devices(devs, &err) >= 0)
		fail_msg("%s accepted", json);
	assert_int_equal(err.code, BERTH_ERR_BAD_REQUEST);
	if (!strstr(err.msg, needle))
		fail_msg("\"%s\" lacks \"%s\"", err.msg, needle);
	berth_error_release(&err);
}

static void test_device_check(void **state)
{
	dev_ok("{\"p\":{\"type\":\"proxy\",\"listen\":\"tcp:0.0.0.0:80\",\"connect\":\"tcp:127.0.0.1:80\"}}");
	dev_ok("{\"p\":{\"type\":\"proxy\",\"listen\":\"unix:/run/a.sock\",\"connect\":\"unix:/run/b\","
	       "\"uid\":\"1000\",\"gid\":\"1000\",\"mode\":\"0660\",\"bind\":\"host\"}}");
	dev_ok("{\"p\":{\"type\":\"proxy\",\"listen\":\"tcp:10.0.0.1:80\",\"connect\":\"tcp:10.1.0.5:80\","
	       "\"nat\":\"true\",\"security.uid\":\"0\",\"proxy_protocol\":\"false\"}}");
	dev_bad("{\"web\":{\"type\":\"proxy\",\"listen\":\"tcp:1.2.3.4\",\"connect\":\"tcp:1.2.3.4:1\"}}",
		"Invalid device \"web\": listen: ");
	dev_bad("{\"web\":{\"type\":\"proxy\",\"listen\":\"tcp:1.2.3.4:1\",\"connect\":\"bad\"}}",
		"connect: Unknown protocol");
	dev_bad("{\"p\":{\"type\":\"proxy\",\"listen\":\"tcp:1.2.3.4:1\",\"connect\":\"tcp:1.2.3.4:1\","
		"\"mode\":\"0660\"}}",
		"non-abstract unix");
	dev_bad("{\"p\":{\"type\":\"proxy\",\"listen\":\"unix:@a\",\"connect\":\"tcp:1.2.3.4:1\","
		"\"uid\":\"5\"}}",
		"non-abstract unix");
	dev_bad("{\"p\":{\"type\":\"proxy\",\"listen\":\"tcp:1.2.3.4:1\",\"connect\":\"tcp:1.2.3.4:1\","
		"\"security.uid\":\"1000\"}}",
		"not supported yet");
	dev_bad("{\"p\":{\"type\":\"proxy\",\"listen\":\"tcp:1.2.3.4:1\",\"connect\":\"tcp:1.2.3.4:1\","
		"\"proxy_protocol\":\"true\"}}",
		"not supported yet");
	dev_bad("{\"p\":{\"type\":\"proxy\",\"listen\":\"tcp:1.2.3.4:1\",\"connect\":\"tcp:1.2.3.4:1\","
		"\"uid\":\"x\"}}",
		"user or group id");
	dev_bad("{\"p\":{\"type\":\"proxy\",\"connect\":\"tcp:1.2.3.4:1\"}}", "need \"listen\"");
}

static void test_nft(void **state)
{
	struct proxy_addr l1 = {0}, c1 = {0}, l2 = {0}, c2 = {0};
	struct proxy_nat_rule rules[2] = {{"web", &l1, &c1}, {"dns", &l2, &c2}};
	_cleanup_free_ char *t1 = proxy_nft_table("/var/lib/berth", "default", "c1");
	_cleanup_free_ char *t2 = proxy_nft_table("/var/lib/berth", "default", "c2");
	_cleanup_free_ char *t3 = proxy_nft_table("/tmp/other", "default", "c1");
	_cleanup_free_ char *script = NULL, *del = NULL;
	const char *want =
		"table inet T {}\n"
		"delete table inet T\n"
		"table inet T {\n"
		"\tcomment \"berth proxy devices of default/c1\"\n"
		"\tchain prerouting {\n"
		"\t\ttype nat hook prerouting priority dstnat; policy accept;\n"
		"\t\tip daddr 192.0.2.1 tcp dport 80 dnat ip to 10.0.3.5:8080 comment \"web\"\n"
		"\t\tip6 daddr fd00::1 udp dport 53 dnat ip6 to [fd42::5]:5353 comment \"dns\"\n"
		"\t\tip6 daddr fd00::1 udp dport 54 dnat ip6 to [fd42::5]:5354 comment \"dns\"\n"
		"\t}\n"
		"\tchain output {\n"
		"\t\ttype nat hook output priority -100; policy accept;\n"
		"\t\tip daddr 192.0.2.1 tcp dport 80 dnat ip to 10.0.3.5:8080 comment \"web\"\n"
		"\t\tip6 daddr fd00::1 udp dport 53 dnat ip6 to [fd42::5]:5353 comment \"dns\"\n"
		"\t\tip6 daddr fd00::1 udp dport 54 dnat ip6 to [fd42::5]:5354 comment \"dns\"\n"
		"\t}\n"
		"\tchain postrouting {\n"
		"\t\ttype nat hook postrouting priority srcnat; policy accept;\n"
		"\t\tip saddr 10.0.3.5 ip daddr 10.0.3.5 tcp dport 8080 masquerade comment \"web\"\n"
		"\t\tip6 saddr fd42::5 ip6 daddr fd42::5 udp dport 5353 masquerade comment \"dns\"\n"
		"\t\tip6 saddr fd42::5 ip6 daddr fd42::5 udp dport 5354 masquerade comment \"dns\"\n"
		"\t}\n"
		"}\n";

	assert_non_null(t1);
	assert_int_equal(strlen(t1), strlen("berth_proxy_") + 16);
	assert_true(strncmp(t1, "berth_proxy_", 12) == 0);
	assert_string_not_equal(t1, t2);
	assert_string_not_equal(t1, t3);
	parse_ok("tcp:192.0.2.1:80", &l1);
	parse_ok("tcp:10.0.3.5:8080", &c1);
	parse_ok("udp:[fd00::1]:53-54", &l2);
	parse_ok("udp:[fd42::5]:5353-5354", &c2);
	script = proxy_nft_script("T", "default", "c1", rules, 2);
	assert_string_equal(script, want);
	del = proxy_nft_script("T", "default", "c1", NULL, 0);
	assert_string_equal(del, "table inet T {}\ndelete table inet T\n");
	proxy_addr_release(&l1);
	proxy_addr_release(&c1);
	proxy_addr_release(&l2);
	proxy_addr_release(&c2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_pairs),
		cmocka_unit_test(test_device_check),
		cmocka_unit_test(test_nft),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
