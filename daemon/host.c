/* daemon/host.c: host capability probing (see host.h). */
#include "daemon/host.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "daemon/runtime/security.h"
#include "daemon/vm/host.h"
#include "lib/util.h"

static bool path_exists(const char *p)
{
	return access(p, F_OK) == 0;
}

static bool seccomp_filter_available(void)
{
	_cleanup_free_ char *actions = NULL;

	/* The filter mode exists when the kernel lists its actions. */
	if (berth_read_file("/proc/sys/kernel/seccomp/actions_avail", 4096, &actions, NULL) < 0)
		return false;
	return strstr(actions, "errno") != NULL;
}

static bool seccomp_listener_available(void)
{
	_cleanup_free_ char *actions = NULL;

	if (berth_read_file("/proc/sys/kernel/seccomp/actions_avail", 4096, &actions, NULL) < 0)
		return false;
	return strstr(actions, "user_notif") != NULL;
}

/* "unified" (pure v2), "hybrid" (v1 controllers + cgroup2 at unified/), "legacy" (v1). */
static const char *cgroup_layout(bool *v1, bool *v2)
{
	struct statfs fs;

	*v1 = *v2 = false;
	if (statfs("/sys/fs/cgroup", &fs) < 0)
		return "none";
	if (fs.f_type == CGROUP2_SUPER_MAGIC) {
		*v2 = true;
		return "unified";
	}
	*v1 = path_exists("/sys/fs/cgroup/memory") || path_exists("/sys/fs/cgroup/cpu");
	if (statfs("/sys/fs/cgroup/unified", &fs) == 0 && fs.f_type == CGROUP2_SUPER_MAGIC) {
		*v2 = true;
		return "hybrid";
	}
	return *v1 ? "legacy" : "none";
}

static bool idmapped_mounts_available(void)
{
#ifdef SYS_mount_setattr
	/* An invalid call: ENOSYS means no mount_setattr, anything else means it exists. */
	long r = syscall(SYS_mount_setattr, -1, "", 0, NULL, 0);
	return r < 0 && errno != ENOSYS;
#else
	return false;
#endif
}

static bool kvm_available(void)
{
	_cleanup_close_ int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);

	return fd >= 0;
}

/* btrfs pools need the filesystem in the kernel (built in or loaded). */
static bool kernel_has_btrfs(void)
{
	_cleanup_free_ char *buf = NULL;

	return berth_read_file("/proc/filesystems", 65536, &buf, NULL) == 0 &&
	       strstr(buf, "\tbtrfs\n") != NULL;
}

static const char *firewall_driver(void)
{
	if (path_exists("/sys/module/nf_tables") || path_exists("/usr/sbin/nft"))
		return "nftables";
	return "xtables";
}

static void os_release(json_t *env)
{
	_cleanup_free_ char *buf = NULL;
	char *save = NULL;

	json_object_set_new(env, "os_name", json_string(""));
	json_object_set_new(env, "os_version", json_string(""));
	if (berth_read_file("/etc/os-release", 65536, &buf, NULL) < 0)
		return;
	for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		const char *key = NULL;
		char *v;
		size_t len;

		if (berth_startswith(line, "NAME="))
			key = "os_name";
		else if (berth_startswith(line, "VERSION_ID="))
			key = "os_version";
		if (!key)
			continue;
		v = strchr(line, '=') + 1;
		len = strlen(v);
		if (len >= 2 && v[0] == '"' && v[len - 1] == '"') {
			v[len - 1] = '\0';
			v++;
		}
		json_object_set_new(env, key, json_string(v));
	}
}

static json_t *architectures(const char *machine)
{
	json_t *a = json_array();

	json_array_append_new(a, json_string(machine));
	if (streq(machine, "x86_64"))
		json_array_append_new(a, json_string("i686"));
	else if (streq(machine, "aarch64"))
		json_array_append_new(a, json_string("armv7l"));
	return a;
}

static json_t *tf(bool b)
{
	return json_string(b ? "true" : "false");
}

json_t *host_environment_probe(void)
{
	struct utsname u;
	bool v1, v2;
	const char *layout;
	json_t *env = json_object(), *features, *drivers;
	char hostname[256] = "";

	if (!env)
		return NULL;
	uname(&u);
	gethostname(hostname, sizeof(hostname) - 1);
	layout = cgroup_layout(&v1, &v2);
	features = json_pack("{s:o, s:o, s:o, s:o, s:o, s:s, s:o, s:o}", "apparmor",
			     tf(runtime_apparmor_enabled()), "seccomp",
			     tf(seccomp_filter_available()), "seccomp_listener",
			     tf(seccomp_listener_available()), "cgroup_v1", tf(v1), "cgroup_v2",
			     tf(v2), "cgroup_layout", layout, "idmapped_mounts",
			     tf(idmapped_mounts_available()), "kvm", tf(kvm_available()));
	json_object_set_new(env, "addresses", json_array());
	json_object_set_new(env, "architectures", architectures(u.machine));
	json_object_set_new(env, "certificate", json_string(""));
	json_object_set_new(env, "certificate_fingerprint", json_string(""));
	json_object_set_new(env, "driver", json_string("berth"));
	json_object_set_new(env, "driver_version", json_string(BERTH_VERSION));
	json_object_set_new(env, "firewall", json_string(firewall_driver()));
	json_object_set_new(env, "kernel", json_string(u.sysname));
	json_object_set_new(env, "kernel_architecture", json_string(u.machine));
	json_object_set_new(env, "kernel_features", features);
	json_object_set_new(env, "kernel_version", json_string(u.release));
	json_object_set_new(env, "lxc_features", json_object());
	os_release(env);
	json_object_set_new(env, "project", json_string("default"));
	json_object_set_new(env, "server", json_string("berth"));
	json_object_set_new(env, "server_clustered", json_false());
	/* What VMs run on: "tcg" means no KVM, emulated and slow (LXD would refuse). */
	json_object_set_new(env, "vm",
			    vm_host_get() ? vm_host_to_json(vm_host_get()) : json_null());
	json_object_set_new(env, "server_event_mode", json_string("full-mesh"));
	json_object_set_new(env, "server_name", json_string(hostname));
	json_object_set_new(env, "server_pid", json_integer(getpid()));
	json_object_set_new(env, "server_version", json_string(BERTH_VERSION));
	json_object_set_new(env, "storage", json_string("dir"));
	json_object_set_new(env, "storage_version", json_string("1"));
	drivers = json_pack("[{s:s, s:s, s:b}]", "name", "dir", "version", "1", "remote", 0);
	if (kernel_has_btrfs())
		json_array_append_new(drivers, json_pack("{s:s, s:s, s:b}", "name", "btrfs",
							 "version", "1", "remote", 0));
	json_object_set_new(env, "storage_supported_drivers", drivers);
	return env;
}
