/* daemon/runtime/caps.c: the capabilities a container's processes keep (see
 * security.h).
 *
 * A capability is taken away for good by dropping it from the bounding set (no later
 * execve can give it back) and from the effective, permitted and inheritable sets of
 * the calling thread; the ambient set is cleared so that nothing is carried over
 * execve implicitly. Plain prctl(2) and capget/capset(2): libcap would only wrap the
 * same calls. */
#include "daemon/runtime/security.h"

#include <errno.h>
#include <linux/capability.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "lib/macros.h"

/* Indexed by capability number (the kernel ABI); numbers, not the CAP_ macros, so the
 * table does not depend on how new the build host's kernel headers are. */
static const char *const cap_names[] = {
	[0] = "chown",
	[1] = "dac_override",
	[2] = "dac_read_search",
	[3] = "fowner",
	[4] = "fsetid",
	[5] = "kill",
	[6] = "setgid",
	[7] = "setuid",
	[8] = "setpcap",
	[9] = "linux_immutable",
	[10] = "net_bind_service",
	[11] = "net_broadcast",
	[12] = "net_admin",
	[13] = "net_raw",
	[14] = "ipc_lock",
	[15] = "ipc_owner",
	[16] = "sys_module",
	[17] = "sys_rawio",
	[18] = "sys_chroot",
	[19] = "sys_ptrace",
	[20] = "sys_pacct",
	[21] = "sys_admin",
	[22] = "sys_boot",
	[23] = "sys_nice",
	[24] = "sys_resource",
	[25] = "sys_time",
	[26] = "sys_tty_config",
	[27] = "mknod",
	[28] = "lease",
	[29] = "audit_write",
	[30] = "audit_control",
	[31] = "setfcap",
	[32] = "mac_override",
	[33] = "mac_admin",
	[34] = "syslog",
	[35] = "wake_alarm",
	[36] = "block_suspend",
	[37] = "audit_read",
	[38] = "perfmon",
	[39] = "bpf",
	[40] = "checkpoint_restore",
};

static const char *const default_drop[] = {
	"sys_module", "sys_time", "sys_rawio", "mac_admin", "mac_override", NULL,
};

const char *const *runtime_caps_default_drop(void)
{
	return default_drop;
}

const char *runtime_cap_name(int cap)
{
	if (cap < 0 || (size_t)cap >= ARRAY_SIZE(cap_names))
		return NULL;
	return cap_names[cap];
}

int runtime_cap_from_name(const char *name)
{
	if (strncasecmp(name, "cap_", 4) == 0)
		name += 4;
	for (size_t i = 0; i < ARRAY_SIZE(cap_names); i++)
		if (cap_names[i] && strcasecmp(name, cap_names[i]) == 0)
			return (int)i;
	return -EINVAL;
}

int runtime_cap_last(void)
{
	static int cached = -1; /* the kernel's value does not change while we run */
	int last = (int)ARRAY_SIZE(cap_names) - 1;
	FILE *f;

	if (cached >= 0)
		return cached;
	f = fopen("/proc/sys/kernel/cap_last_cap", "re");
	if (f) {
		int v;

		if (fscanf(f, "%d", &v) == 1 && v >= 0 && v < 64)
			last = v;
		fclose(f);
		cached = last;
	}
	return last;
}

/* A failed system call as an error: "<what>: <strerror(errno)>". */
static int sys_fail(struct berth_error *err, const char *what)
{
	int r = -errno;

	return berth_error_set(err, r, BERTH_ERR_INTERNAL, "%s: %s", what, strerror(-r));
}

/* Add `name` to the 64-bit mask of capabilities to drop. */
static int mask_add(uint64_t *mask, const char *name, struct berth_error *err)
{
	int cap = runtime_cap_from_name(name);

	if (cap < 0)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "unknown capability \"%s\"", name);
	*mask |= UINT64_C(1) << cap;
	return 0;
}

static int drop_from_sets(uint64_t mask, struct berth_error *err)
{
	struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct data[2] = {0};

	if (syscall(SYS_capget, &hdr, data) < 0)
		return sys_fail(err, "reading the capability sets");
	for (int i = 0; i < 2; i++) {
		uint32_t keep = ~(uint32_t)(mask >> (32 * i));

		data[i].effective &= keep;
		data[i].permitted &= keep;
		data[i].inheritable &= keep;
	}
	if (syscall(SYS_capset, &hdr, data) < 0)
		return sys_fail(err, "setting the capability sets");
	return 0;
}

int runtime_caps_drop(const char *const *extra, struct berth_error *err)
{
	uint64_t mask = 0;
	int last = runtime_cap_last();
	int r;

	for (size_t i = 0; default_drop[i]; i++) {
		r = mask_add(&mask, default_drop[i], err);
		if (r < 0)
			return r;
	}
	for (size_t i = 0; extra && extra[i]; i++) {
		r = mask_add(&mask, extra[i], err);
		if (r < 0)
			return r;
	}
	/* A capability the running kernel does not have cannot be held: nothing to drop. */
	if (last < 63)
		mask &= (UINT64_C(1) << (last + 1)) - 1;

	/* The bounding set first: dropping from it needs CAP_SETPCAP, which the loop
	 * below may take away from the effective set. */
	for (int cap = 0; cap <= last; cap++) {
		if (!(mask & (UINT64_C(1) << cap)))
			continue;
		if (prctl(PR_CAPBSET_DROP, (unsigned long)cap, 0, 0, 0) < 0) {
			int r2 = -errno;

			return berth_error_set(
				err, r2, BERTH_ERR_INTERNAL,
				"dropping capability \"%s\" from the bounding set: %s",
				cap_names[cap] ? cap_names[cap] : "?", strerror(-r2));
		}
	}
	r = drop_from_sets(mask, err);
	if (r < 0)
		return r;
	/* Kernels without ambient capabilities (before 4.3) have nothing to clear. */
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		return sys_fail(err, "clearing the ambient capabilities");
	return 0;
}
