/* tests/unit/test_network.c: daemon/network/'s parts that need no bridge: config
 * checks and completion, and the NIC seam (static address checks, host entries,
 * leases listing, resolving) against a real database in a temp dir. No dnsmasq runs:
 * the host entries are checked as files. Reads the host's links and routes (for
 * "auto" and overlaps) but changes nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "daemon/db/db.h"
#include "daemon/network/internal.h"
#include "daemon/network/managed.h"
#include "daemon/network/network.h"
#include "lib/json.h"
#include "lib/util.h"

struct fixture {
	char dir[64];
	struct berth_daemon d;
};

static int setup(void **state)
{
	struct berth_error err = {0};
	struct fixture *f = calloc(1, sizeof(*f));
	_cleanup_free_ char *db = NULL;
	json_auto_t *net = NULL;

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/berth-test-net-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	f->d.dir = f->dir;
	db = berth_strdup_printf("%s/berth.db", f->dir);
	if (db_open(db, "/nonexistent", &f->d.db, &err) < 0)
		return -1;
	net = json_pack("{s:s, s:s, s:{s:s, s:s, s:s}}", "name", "tnet0", "type", "bridge",
			"config", "ipv4.address", "10.55.0.1/24", "ipv6.address", "fd42:1::1/64",
			"bridge.mtu", "1400");
	if (db_network_create(f->d.db, net, NULL, NULL, &err) < 0)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	_cleanup_free_ char *cmd = berth_strdup_printf("rm -rf '%s'", f->dir);

	db_close(f->d.db);
	if (cmd && system(cmd) != 0)
		return -1;
	free(f);
	return 0;
}

static char *entry(struct fixture *f, const char *file)
{
	_cleanup_free_ char *path = berth_strdup_printf("%s/networks/tnet0/dnsmasq.hosts/%s",
							f->dir, file);
	char *text = NULL;
	size_t len = 0;

	if (berth_read_file(path, 4096, &text, &len) < 0)
		return NULL;
	return text;
}

static void test_static_leases(void **state)
{
	struct fixture *f = *state;
	struct berth_error err = {0};
	_cleanup_free_ char *e = NULL;
	json_auto_t *leases = NULL;

	/* A dynamic NIC still gets an entry, so its name resolves. */
	assert_int_equal(network_nic_lease_add(&f->d, "default", "tnet0", "c1", "eth0",
					       "00:16:3e:00:00:01", NULL, NULL, &err),
			 0);
	e = entry(f, "default_c1.eth0");
	assert_string_equal(e, "00:16:3e:00:00:01,c1\n");
	free(e);
	/* Static: replaced in place. */
	assert_int_equal(network_nic_lease_add(&f->d, "default", "tnet0", "c1", "eth0",
					       "00:16:3e:00:00:01", "10.55.0.10", "fd42:1::20",
					       &err),
			 0);
	e = entry(f, "default_c1.eth0");
	assert_string_equal(e, "00:16:3e:00:00:01,10.55.0.10,[fd42:1::20],c1\n");
	/* Taken by c1. */
	assert_int_equal(network_nic_lease_add(&f->d, "default", "tnet0", "c2", "eth0",
					       "00:16:3e:00:00:02", "10.55.0.10", NULL, &err),
			 -EADDRINUSE);
	assert_int_equal(err.code, BERTH_ERR_BAD_REQUEST);
	assert_non_null(strstr(err.msg, "10.55.0.10"));
	berth_error_release(&err);
	assert_null(entry(f, "default_c2.eth0"));
	/* Outside the subnet, the bridge's, the subnet's, the broadcast, garbage. */
	static const char *const bad[] = {"10.56.0.10",	 "10.55.0.1", "10.55.0.0",
					  "10.55.0.255", "10.55.0",   "fd42:1::20"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(network_nic_lease_add(&f->d, "default", "tnet0", "c2", "eth0",
						       "00:16:3e:00:00:02", bad[i], NULL, &err),
				 -EINVAL);
		assert_int_equal(err.code, BERTH_ERR_BAD_REQUEST);
		berth_error_release(&err);
	}
	assert_int_equal(network_nic_lease_add(&f->d, "default", "tnet0", "c2", "eth0",
					       "00:16:3e:00:00:02", NULL, "fd43::5", &err),
			 -EINVAL);
	berth_error_release(&err);
	/* Listed as static leases. */
	assert_int_equal(network_leases(&f->d, "tnet0", &leases, &err), 0);
	assert_int_equal(json_array_size(leases), 2);
	assert_string_equal(berth_json_string(json_array_get(leases, 0), "type"), "static");
	assert_string_equal(berth_json_string(json_array_get(leases, 0), "hostname"), "c1");
	/* Removed: the address is free again. */
	assert_int_equal(network_nic_lease_remove(&f->d, "default", "tnet0", "c1", "eth0",
						  "00:16:3e:00:00:01"),
			 0);
	assert_null(entry(f, "default_c1.eth0"));
	assert_int_equal(network_nic_lease_remove(&f->d, "default", "tnet0", "c1", "eth0",
						  "00:16:3e:00:00:01"),
			 0);
	assert_int_equal(network_nic_lease_add(&f->d, "default", "tnet0", "c2", "eth0",
					       "00:16:3e:00:00:02", "10.55.0.10", NULL, &err),
			 0);
}

static void test_resolve(void **state)
{
	struct fixture *f = *state;
	struct berth_error err = {0};
	struct network_nic_target t;

	assert_int_equal(network_nic_resolve(&f->d, "default", "tnet0", &t, &err), 0);
	assert_string_equal(t.bridge, "tnet0");
	assert_int_equal(t.mtu, 1400);
	assert_int_equal(network_nic_resolve(&f->d, "default", "nosuchnet9", &t, &err), -ENOENT);
	assert_int_equal(err.code, BERTH_ERR_BAD_REQUEST);
	berth_error_release(&err);
	/* Not managed: static addresses are refused, dynamic ones are a no-op. */
	assert_int_equal(network_nic_lease_add(&f->d, "default", "nosuchnet9", "c1", "eth0",
					       "00:16:3e:00:00:01", "10.0.0.5", NULL, &err),
			 -EOPNOTSUPP);
	berth_error_release(&err);
	assert_int_equal(network_nic_lease_add(&f->d, "default", "nosuchnet9", "c1", "eth0",
					       "00:16:3e:00:00:01", NULL, NULL, &err),
			 0);
}

static void test_config(void **state)
{
	struct fixture *f = *state;
	struct berth_error err = {0};
	json_auto_t *c = NULL;
	struct network_conf conf;

	c = json_pack("{s:s}", "bogus", "1");
	assert_int_equal(network_config_check(f->d.db, "n1", c, true, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "bogus"));
	berth_error_release(&err);
	json_decref(c);
	c = json_pack("{s:s, s:s}", "ipv4.address", "none", "ipv4.nat", "perhaps");
	assert_int_equal(network_config_check(f->d.db, "n1", c, true, &err), -EINVAL);
	berth_error_release(&err);
	json_decref(c);
	/* Another network's subnet. */
	c = json_pack("{s:s, s:s}", "ipv4.address", "10.55.0.200/16", "ipv6.address", "none");
	assert_int_equal(network_config_check(f->d.db, "n1", c, true, &err), -EADDRINUSE);
	assert_non_null(strstr(err.msg, "overlaps with network \"tnet0\""));
	berth_error_release(&err);
	json_decref(c);
	/* Defaults on create: auto, NAT on; auto is resolved to a /24 of 10/8. */
	c = json_pack("{s:s}", "ipv6.address", "none");
	assert_int_equal(network_config_check(f->d.db, "n1", c, true, &err), 0);
	assert_string_equal(berth_json_string(c, "ipv4.nat"), "true");
	assert_null(json_object_get(c, "ipv6.nat"));
	assert_int_equal(network_conf_parse("n1", c, &conf, &err), 0);
	assert_true(conf.has4 && !conf.has6 && conf.nat4 && conf.dhcp4);
	assert_int_equal(conf.prefix4, 24);
	assert_int_equal(((unsigned char *)&conf.addr4)[0], 10);
	assert_int_equal(((unsigned char *)&conf.addr4)[3], 1);
	assert_string_equal(conf.domain, "berth");
	assert_int_equal(network_name_check("way-too-long-name", &err), -EINVAL);
	berth_error_release(&err);
	assert_int_equal(network_name_check("a/b", &err), -EINVAL);
	berth_error_release(&err);
	assert_int_equal(network_name_check("br-0.1_x", &err), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_static_leases, setup, teardown),
		cmocka_unit_test_setup_teardown(test_resolve, setup, teardown),
		cmocka_unit_test_setup_teardown(test_config, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
