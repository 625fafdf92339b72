/* tests/unit/test_config_keys.c: known keys, value checks, scopes, devices. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <string.h>

#include "daemon/config_keys.h"
#include "daemon/instance/nic.h"
#include "lib/json.h"

static void ok(enum config_scope s, const char *k, const char *v)
{
	struct berth_error err = {0};
	int r = config_check(s, k, v, &err);

	if (r != 0)
		fail_msg("%s=%s refused: %s", k, v, err.msg);
}

static void refused(enum config_scope s, const char *k, const char *v, const char *needle)
{
	struct berth_error err = {0};
	int r = config_check(s, k, v, &err);

	if (r != -EINVAL && r != -EOPNOTSUPP)
		fail_msg("%s=%s accepted", k, v);
	assert_int_equal(err.code, BERTH_ERR_BAD_REQUEST);
	if (!strstr(err.msg, needle))
		fail_msg("\"%s\" lacks \"%s\"", err.msg, needle);
	berth_error_release(&err);
}

static void test_instance_keys(void **state)
{
	ok(CONFIG_INSTANCE, "limits.cpu", "2");
	ok(CONFIG_INSTANCE, "limits.cpu", "0-3,6");
	ok(CONFIG_INSTANCE, "limits.memory", "512MiB");
	ok(CONFIG_INSTANCE, "limits.memory", "50%");
	ok(CONFIG_INSTANCE, "limits.cpu.allowance", "25ms/100ms");
	ok(CONFIG_INSTANCE, "limits.cpu.priority", "0");
	ok(CONFIG_INSTANCE, "limits.cpu.priority", "10");
	ok(CONFIG_INSTANCE, "security.privileged", "true");
	ok(CONFIG_INSTANCE, "user.anything.goes", "x y z");
	ok(CONFIG_INSTANCE, "environment.FOO", "bar");
	ok(CONFIG_INSTANCE, "volatile.eth0.hwaddr", "00:16:3e:00:00:01");
	ok(CONFIG_INSTANCE, "limits.cpu", ""); /* empty unsets */
	refused(CONFIG_INSTANCE, "limits.cpu", "two", "limits.cpu");
	refused(CONFIG_INSTANCE, "limits.cpu", "3-1", "CPU");
	refused(CONFIG_INSTANCE, "limits.memory", "lots", "size");
	refused(CONFIG_INSTANCE, "limits.memory", "101%", "size");
	refused(CONFIG_INSTANCE, "security.privileged", "maybe", "true or false");
	refused(CONFIG_INSTANCE, "limits.processes", "-1", "integer");
	refused(CONFIG_INSTANCE, "limits.cpu.priority", "11", "from 0 to 10");
	refused(CONFIG_INSTANCE, "limits.memory.enforce", "medium", "one of");
	refused(CONFIG_INSTANCE, "foo", "bar", "Unknown configuration key: foo");
	refused(CONFIG_INSTANCE, "user.", "x", "Unknown configuration key");
}

static void test_scopes(void **state)
{
	refused(CONFIG_PROFILE, "volatile.x", "1", "Unknown configuration key");
	refused(CONFIG_PROFILE, "image.os", "debian", "Unknown configuration key");
	refused(CONFIG_SERVER, "limits.cpu", "1", "Unknown configuration key");
	refused(CONFIG_INSTANCE, "core.https_address", ":8443", "Unknown configuration key");
	ok(CONFIG_SERVER, "core.https_address", "[::]:8443"); /* daemon/https.c binds it */
	ok(CONFIG_SERVER, "core.https_address", "");	      /* unsetting is fine */
	ok(CONFIG_SERVER, "images.auto_update_interval", "6");
	refused(CONFIG_SERVER, "images.compression_algorithm", "rar", "one of");
	ok(CONFIG_PROJECT, "features.profiles", "false");
	refused(CONFIG_PROJECT, "features.magic", "true", "Unknown");
}

static void test_devices(void **state)
{
	json_auto_t *good = json_pack("{s:{s:s, s:s, s:s}, s:{s:s, s:s}}", "root", "type", "disk",
				      "path", "/", "pool", "default", "eth0", "type", "nic",
				      "network", "berthbr0");
	json_auto_t *bad_type = json_pack("{s:{s:s}}", "x", "type", "floppy");
	json_auto_t *bad_disk = json_pack("{s:{s:s, s:s}}", "x", "type", "disk", "pool", "p");
	json_auto_t *bad_name = json_pack("{s:{s:s}}", "a/b", "type", "none");
	struct berth_error err = {0};

	assert_int_equal(config_check_devices(good, &err), 0);
	assert_int_equal(config_check_devices(bad_type, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "unknown device type \"floppy\""));
	assert_int_equal(config_check_devices(bad_disk, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "\"path\""));
	assert_int_equal(config_check_devices(bad_name, &err), -EINVAL);
	berth_error_release(&err);
}

/* One nic device {k1: v1, ...} (NULL-terminated pairs after "type": "nic"). */
static int check_nic(struct berth_error *err, ...)
{
	json_auto_t *devs = json_object();
	json_t *dev = json_pack("{s:s}", "type", "nic");
	va_list ap;
	const char *k;

	va_start(ap, err);
	while ((k = va_arg(ap, const char *)))
		json_object_set_new(dev, k, json_string(va_arg(ap, const char *)));
	va_end(ap);
	json_object_set_new(devs, "eth0", dev);
	berth_error_release(err);
	return config_check_devices(devs, err);
}

static void test_nic_devices(void **state)
{
	struct berth_error err = {0};
	uint64_t rate = 0;

	assert_int_equal(check_nic(&err, "nictype", "bridged", "parent", "br0", "hwaddr",
				   "00:16:3e:01:02:03", "mtu", "1400", "limits.ingress", "10Mbit",
				   "limits.egress", "1Gbit", "host_name", "vethx", NULL),
			 0);
	assert_int_equal(check_nic(&err, "nictype", "p2p", "name", "eth1", NULL), 0);
	assert_int_equal(check_nic(&err, "nictype", "macvlan", "parent", "dummy0", "mode", "bridge",
				   NULL),
			 0);
	assert_int_equal(check_nic(&err, "network", "berthbr0", "ipv4.address", "10.1.2.3",
				   "ipv6.address", "fd00::5", NULL),
			 0);
	assert_int_equal(check_nic(&err, "nictype", "tunnel", "parent", "x", NULL), -EINVAL);
	assert_non_null(strstr(err.msg, "unsupported nictype \"tunnel\""));
	assert_int_equal(check_nic(&err, "nictype", "bridged", NULL), -EINVAL);
	assert_non_null(strstr(err.msg, "needs a \"parent\""));
	assert_int_equal(check_nic(&err, NULL), -EINVAL);
	assert_non_null(strstr(err.msg, "\"nictype\" or a \"network\""));
	assert_int_equal(check_nic(&err, "nictype", "p2p", "hwaddr", "00:16:3e:01:02", NULL),
			 -EINVAL);
	assert_non_null(strstr(err.msg, "invalid MAC address"));
	assert_int_equal(check_nic(&err, "nictype", "p2p", "hwaddr", "01:16:3e:01:02:03", NULL),
			 -EINVAL);
	assert_int_equal(check_nic(&err, "nictype", "bridged", "parent", "br0", "ipv4.address",
				   "10.0.0.2", NULL),
			 -EINVAL);
	assert_non_null(strstr(err.msg, "static addresses need \"network\""));
	assert_int_equal(check_nic(&err, "network", "n", "ipv4.address", "10.0.0.300", NULL),
			 -EINVAL);
	assert_int_equal(check_nic(&err, "nictype", "p2p", "mtu", "60", NULL), -EINVAL);
	assert_int_equal(check_nic(&err, "nictype", "p2p", "limits.ingress", "fast", NULL),
			 -EINVAL);
	assert_int_equal(check_nic(&err, "nictype", "macvlan", "parent", "d", "limits.egress",
				   "1Mbit", NULL),
			 -EINVAL);
	assert_int_equal(check_nic(&err, "nictype", "p2p", "name", "a/b", NULL), -EINVAL);
	assert_int_equal(check_nic(&err, "nictype", "p2p", "vlan", "5", NULL), -EINVAL);
	assert_non_null(strstr(err.msg, "unknown nic option \"vlan\""));
	assert_int_equal(check_nic(&err, "nictype", "bridged", "network", "n", NULL), -EINVAL);
	berth_error_release(&err);
	assert_int_equal(nic_parse_rate("10Mbit", &rate), 0);
	assert_int_equal(rate, 10000000);
	assert_int_equal(nic_parse_rate("500kbit", &rate), 0);
	assert_int_equal(rate, 500000);
	assert_int_equal(nic_parse_rate("8000", &rate), 0);
	assert_int_equal(rate, 8000);
	assert_int_equal(nic_parse_rate("10MB", &rate), -EINVAL);
	assert_int_equal(nic_parse_rate("0Mbit", &rate), -EINVAL);
}

static void test_syscall_lists(void **state)
{
	struct berth_error err = {0};
	json_auto_t *both = json_pack("{s:s, s:s}", "security.syscalls.allow", "getpid",
				      "security.syscalls.deny", "uname");

	ok(CONFIG_INSTANCE, "security.syscalls.deny", "kexec_load\nuname");
	ok(CONFIG_PROFILE, "security.syscalls.deny", "getpid, mount");
	ok(CONFIG_INSTANCE, "security.syscalls.allow", "read\nwrite\nexit_group");
	ok(CONFIG_INSTANCE, "security.syscalls.deny", "");
	ok(CONFIG_INSTANCE, "security.syscalls.deny_default", "false");
	refused(CONFIG_INSTANCE, "security.syscalls.deny", "getpid\nnot_a_syscall",
		"Invalid value for configuration key \"security.syscalls.deny\": unknown "
		"system call \"not_a_syscall\"");
	refused(CONFIG_PROFILE, "security.syscalls.allow", "read,bogus_call", "\"bogus_call\"");
	refused(CONFIG_INSTANCE, "security.syscalls.deny_compat", "true", "not implemented");
	refused(CONFIG_INSTANCE, "security.syscalls.deny_default", "maybe", "true or false");

	assert_int_equal(config_check_all(CONFIG_INSTANCE, both, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "mutually exclusive"));
	berth_error_release(&err);
}

static void test_check_all(void **state)
{
	json_auto_t *c = json_pack("{s:s, s:i}", "limits.cpu", "1", "limits.memory", 5);
	struct berth_error err = {0};

	assert_int_equal(config_check_all(CONFIG_INSTANCE, c, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "must be a string"));
	berth_error_release(&err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_instance_keys), cmocka_unit_test(test_scopes),
		cmocka_unit_test(test_devices),	      cmocka_unit_test(test_nic_devices),
		cmocka_unit_test(test_syscall_lists), cmocka_unit_test(test_check_all),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
