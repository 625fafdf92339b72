/* tests/unit/test_spec.c: the runtime spec file (daemon/runtime/spec.c): round trips,
 * defaults, lists, and refusal of unknown keys and bad values. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "daemon/runtime/spec.h"

static const char full[] = "name=c1\n"
			   "project=default\n"
			   "rootfs=/var/lib/berth/x/rootfs\n"
			   "volume=/var/lib/berth/x\n"
			   "hostname=c1\n"
			   "cgroup=berth/default_c1\n"
			   "privileged=0\n"
			   "uid_map=0 100000 65536\n"
			   "uid_map=65536 1000 1\n"
			   "gid_map=0 100000 65536\n"
			   "init=/sbin/init\n"
			   "init=--log-level=debug\n"
			   "env=A=b=c\n"
			   "env=EMPTY=\n"
			   "stop_signal=10\n"
			   "start_grace_ms=50\n"
			   "limits_memory=268435456\n"
			   "limits_memory_swap=0\n"
			   "limits_cpus=0-1\n"
			   "limits_cpu_quota_us=50000\n"
			   "limits_cpu_period_us=100000\n"
			   "limits_cpu_share_pct=40\n"
			   "limits_cpu_priority_drop=3\n"
			   "limits_processes=100\n"
			   "seccomp_deny=kexec_load\n"
			   "seccomp_deny=bpf\n"
			   "seccomp_default=0\n"
			   "caps_drop=net_admin\n"
			   "mount=/srv/data|/mnt/data|ro,create=dir,idmap\n"
			   "mount=/etc/resolv.conf|/etc/resolv.conf|rw,create=file\n"
			   "console_log_size=4096\n"
			   "apparmor_profile=berth-default_c1\n"
			   "net=none\n"
			   "nic=type=veth,name=eth0,host=veth1a2b3c4d,link=br0,"
			   "hwaddr=00:16:3e:0a:0b:0c,mtu=1400,ingress=10000000,egress=2000000\n"
			   "nic=type=veth,name=p2p0,host=vethp2p\n"
			   "nic=type=macvlan,name=mv0,parent=dummy0,mode=vepa\n";

static void test_parse_full(void **state)
{
	struct runtime_spec *s = NULL;
	struct berth_error err = {0};
	uint32_t host;

	assert_int_equal(runtime_spec_parse(full, strlen(full), &s, &err), 0);
	assert_string_equal(s->name, "c1");
	assert_string_equal(s->cgroup, "berth/default_c1");
	assert_false(s->privileged);
	assert_int_equal(s->n_uid_map, 2);
	assert_int_equal(s->uid_map[1].container, 65536);
	assert_int_equal(s->uid_map[1].host, 1000);
	assert_int_equal(s->n_gid_map, 1);
	assert_int_equal(runtime_strv_len(s->init), 2);
	assert_string_equal(s->init[1], "--log-level=debug");
	assert_string_equal(s->env[0], "A=b=c");
	assert_string_equal(s->env[1], "EMPTY=");
	assert_int_equal(s->stop_signal, SIGUSR1);
	assert_int_equal(s->start_grace_ms, 50);
	assert_int_equal(s->limits_memory, 268435456);
	assert_false(s->limits_memory_swap);
	assert_string_equal(s->limits_cpus, "0-1");
	assert_int_equal(s->limits_cpu_share_pct, 40);
	assert_int_equal(s->limits_cpu_priority_drop, 3);
	assert_int_equal(s->limits_processes, 100);
	assert_int_equal(runtime_strv_len(s->seccomp_deny), 2);
	assert_false(s->seccomp_default);
	assert_int_equal(s->n_mounts, 2);
	assert_true(s->mounts[0].ro && s->mounts[0].create_dir && s->mounts[0].idmap);
	assert_false(s->mounts[1].ro || s->mounts[1].create_dir || s->mounts[1].idmap);
	assert_true(s->mounts[1].create_file);
	assert_int_equal(s->console_log_size, 4096);
	assert_int_equal(runtime_idmap_to_host(s->uid_map, s->n_uid_map, 0, &host), 0);
	assert_int_equal(host, 100000);
	assert_int_equal(runtime_idmap_to_host(s->uid_map, s->n_uid_map, 65536, &host), 0);
	assert_int_equal(host, 1000);
	assert_int_equal(runtime_idmap_to_host(s->uid_map, s->n_uid_map, 70000, &host), -ERANGE);
	assert_int_equal(s->n_nics, 3);
	assert_int_equal(s->nics[0].type, RUNTIME_NIC_VETH);
	assert_string_equal(s->nics[0].name, "eth0");
	assert_string_equal(s->nics[0].host, "veth1a2b3c4d");
	assert_string_equal(s->nics[0].link, "br0");
	assert_true(s->nics[0].has_hwaddr);
	assert_int_equal(s->nics[0].hwaddr[0], 0x00);
	assert_int_equal(s->nics[0].hwaddr[2], 0x3e);
	assert_int_equal(s->nics[0].hwaddr[5], 0x0c);
	assert_int_equal(s->nics[0].mtu, 1400);
	assert_int_equal(s->nics[0].ingress, 10000000);
	assert_int_equal(s->nics[0].egress, 2000000);
	assert_null(s->nics[1].link);
	assert_false(s->nics[1].has_hwaddr);
	assert_int_equal(s->nics[2].type, RUNTIME_NIC_MACVLAN);
	assert_string_equal(s->nics[2].parent, "dummy0");
	assert_string_equal(s->nics[2].mode, "vepa");
	assert_null(s->nics[2].host);
	runtime_spec_free(s);
}

static void test_round_trip(void **state)
{
	struct runtime_spec *a = NULL, *b = NULL;
	char *t1 = NULL, *t2 = NULL;

	assert_int_equal(runtime_spec_parse(full, strlen(full), &a, NULL), 0);
	assert_int_equal(runtime_spec_render(a, &t1), 0);
	assert_int_equal(runtime_spec_parse(t1, strlen(t1), &b, NULL), 0);
	assert_int_equal(runtime_spec_render(b, &t2), 0);
	assert_string_equal(t1, t2);
	assert_string_equal(b->mounts[0].source, "/srv/data");
	assert_string_equal(b->env[0], "A=b=c");
	assert_int_equal(b->uid_map[1].count, 1);
	assert_int_equal(b->n_nics, 3);
	assert_non_null(strstr(t2, "nic=type=veth,name=eth0,host=veth1a2b3c4d,link=br0,"
				   "hwaddr=00:16:3e:0a:0b:0c,mtu=1400,ingress=10000000,"
				   "egress=2000000\n"));
	assert_non_null(strstr(t2, "nic=type=macvlan,name=mv0,parent=dummy0,mode=vepa\n"));
	free(t1);
	free(t2);
	runtime_spec_free(a);
	runtime_spec_free(b);
}

static void test_defaults_and_write(void **state)
{
	const char *min = "rootfs=/r\ncgroup=x/y\n";
	char path[] = "/tmp/test_spec.XXXXXX";
	struct runtime_spec *s = NULL, *back = NULL;
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(runtime_spec_parse(min, strlen(min), &s, NULL), 0);
	assert_int_equal(s->start_grace_ms, 20);
	assert_true(s->limits_memory_swap);
	assert_true(s->seccomp_default);
	assert_int_equal(s->console_log_size, 1048576);
	assert_int_equal(runtime_strv_len(s->init), 1);
	assert_string_equal(s->init[0], "/sbin/init");
	assert_null(s->uid_map);
	assert_int_equal(s->stop_signal, 0);
	assert_int_equal(runtime_spec_write(path, s), 0);
	assert_int_equal(runtime_spec_load(path, &back, NULL), 0);
	assert_string_equal(back->rootfs, "/r");
	assert_int_equal(back->start_grace_ms, 20);
	unlink(path);
	runtime_spec_free(s);
	runtime_spec_free(back);
}

static void expect_refused(const char *extra, const char *needle)
{
	char text[512];
	struct runtime_spec *s = NULL;
	struct berth_error err = {0};

	snprintf(text, sizeof(text), "rootfs=/r\ncgroup=x\n%s", extra);
	assert_int_equal(runtime_spec_parse(text, strlen(text), &s, &err), -EINVAL);
	assert_null(s);
	assert_non_null(err.msg);
	if (!strstr(err.msg, needle))
		fail_msg("\"%s\": message \"%s\" lacks \"%s\"", extra, err.msg, needle);
	berth_error_release(&err);
}

static void test_refused(void **state)
{
	expect_refused("colour=blue\n", "unknown key \"colour\"");
	expect_refused("no equals sign\n", "no \"=\"");
	expect_refused("privileged=yes\n", "privileged");
	expect_refused("privileged=1\nprivileged=1\n", "given twice");
	expect_refused("name=a\nname=b\n", "given twice");
	expect_refused("limits_memory=12k\n", "limits_memory");
	expect_refused("limits_memory=-1\n", "limits_memory");
	expect_refused("limits_processes=\n", "limits_processes");
	expect_refused("limits_cpu_share_pct=101\n", "limits_cpu_share_pct");
	expect_refused("limits_cpu_priority_drop=11\n", "limits_cpu_priority_drop");
	expect_refused("stop_signal=9\n", "stop_signal");
	expect_refused("stop_signal=99\n", "stop_signal");
	expect_refused("uid_map=0 100000\n", "uid_map");
	expect_refused("uid_map=0 100000 0\n", "uid_map");
	expect_refused("gid_map=0 4294967295 2\n", "gid_map");
	expect_refused("mount=/a|/b\n", "mount");
	expect_refused("mount=relative|/b|ro\n", "mount");
	expect_refused("mount=/a|/b|rx\n", "mount");
	expect_refused("mount=/a|/b|create=dir,create=file\n", "mount");
	expect_refused("seccomp_deny=bpf\nseccomp_allow=read\n", "exclude");
	expect_refused("net=bridged\n", "net");
	expect_refused("volume=rel\n", "volume");
	expect_refused("nic=type=tap,name=eth0,host=v0\n", "nic");
	expect_refused("nic=type=veth,name=eth0\n", "nic");
	expect_refused("nic=type=veth,host=v0\n", "nic");
	expect_refused("nic=type=veth,name=eth0,host=v0,parent=x\n", "nic");
	expect_refused("nic=type=macvlan,name=eth0\n", "nic");
	expect_refused("nic=type=macvlan,name=eth0,parent=d0,ingress=100\n", "nic");
	expect_refused("nic=type=macvlan,name=eth0,parent=d0,mode=bogus\n", "nic");
	expect_refused("nic=type=veth,name=eth0,host=v0,hwaddr=00:16:3e:0a:0b\n", "nic");
	expect_refused("nic=type=veth,name=eth0,host=v0,mtu=10\n", "nic");
	expect_refused("nic=type=veth,name=eth0,host=v0,colour=red\n", "nic");
	expect_refused("nic=type=veth,name=a/b,host=v0\n", "nic");
	expect_refused("nic=type=veth,name=0123456789abcdef,host=v0\n", "nic");
	expect_refused("nic=type=veth,name=eth0,host=v0\nnic=type=veth,name=eth0,host=v1\n", "nic");
	expect_refused("nic=type=veth,name=eth0,host=v0\nnic=type=veth,name=eth1,host=v0\n", "nic");
	{
		struct runtime_spec *s = NULL;
		struct berth_error err = {0};
		assert_int_equal(runtime_spec_parse("cgroup=x\n", 9, &s, &err), -EINVAL);
		assert_non_null(strstr(err.msg, "rootfs"));
		berth_error_release(&err);
		assert_int_equal(runtime_spec_parse("rootfs=/r\ncgroup=../x\n", 21, &s, &err),
				 -EINVAL);
		assert_non_null(strstr(err.msg, "cgroup"));
		berth_error_release(&err);
	}
}

static void test_render_refuses_newlines(void **state)
{
	struct runtime_spec *s = NULL;
	char *t = NULL;

	assert_int_equal(runtime_spec_parse("rootfs=/r\ncgroup=x\n", 19, &s, NULL), 0);
	s->hostname = strdup("a\nuid_map=0 0 1");
	assert_int_equal(runtime_spec_render(s, &t), -EINVAL);
	assert_null(t);
	free(s->hostname);
	s->hostname = NULL;
	assert_int_equal(runtime_strv_push(&s->env, strdup("X=1\ninit=/bin/sh")), 0);
	assert_int_equal(runtime_spec_render(s, &t), -EINVAL);
	runtime_spec_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_full),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_defaults_and_write),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_render_refuses_newlines),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
