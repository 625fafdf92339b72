/* daemon/runtime/security.h: what a container's processes may do: the seccomp filter,
 * the capability bounding set and the AppArmor profile. Used by berth-monitor for PID 1
 * and by `berth-monitor exec` for every exec'd command (see doc/runtime.md).
 *
 * These functions never log and never exit: they return 0 or -errno and, where a user
 * must see why, fill `err`. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "lib/error.h"

/* ---- seccomp (seccomp.c) ---- */

struct runtime_seccomp_policy {
	bool deny_default; /* the default deny list (security.syscalls.deny_default) */
	char **deny;	   /* NULL-terminated extra syscall names refused (ENOSYS), or NULL */
	char **allow;	   /* NULL-terminated: allow-list mode when non-NULL (exclusive
				 * with deny); everything else fails with ENOSYS */
};

/* The default deny list (NULL-terminated, static): module loading, kexec,
 * open_by_handle_at and the rest LXD refuses. */
const char *const *runtime_seccomp_default_deny(void);

/* Check every syscall name in `p` against libseccomp's tables for the native
 * architecture; fails with -EINVAL and names the first unknown one. berthd calls this
 * when the config is set, so that a bad name is refused before any start. */
int runtime_seccomp_validate(const struct runtime_seccomp_policy *p, struct berth_error *err);

/* Load the filter for the calling thread (native plus compat architectures: on x86_64,
 * x86 and x32). The caller needs CAP_SYS_ADMIN in its user namespace or no_new_privs.
 * Also refuses umount2(MNT_FORCE) and seccomp(SECCOMP_SET_MODE_FILTER) with the
 * NEW_LISTENER flag, as LXD does. */
int runtime_seccomp_load(const struct runtime_seccomp_policy *p, struct berth_error *err);

/* The same filter compiled once, to be installed many times without libseccomp (the
 * monitor keeps one for the commands it execs). len 0: no filter (an empty policy). */
struct runtime_seccomp_prog {
	void *insns; /* owned: struct sock_filter[len] */
	unsigned short len;
};
int runtime_seccomp_compile(const struct runtime_seccomp_policy *p,
			    struct runtime_seccomp_prog *ret, struct berth_error *err);
/* Install `prog` for the calling thread as runtime_seccomp_load() would. */
int runtime_seccomp_install(const struct runtime_seccomp_prog *prog, struct berth_error *err);
void runtime_seccomp_prog_release(struct runtime_seccomp_prog *prog);

/* Split a config value (security.syscalls.deny/allow: names separated by newlines,
 * spaces or commas) into a NULL-terminated list of names, owned by the caller (free it
 * with runtime_seccomp_list_free). An empty value gives an empty list. -ENOMEM. */
int runtime_seccomp_parse_list(const char *value, char ***ret);
void runtime_seccomp_list_free(char **list);

/* ---- capabilities (caps.c) ---- */

/* The default capabilities dropped from a container (NULL-terminated, static):
 * sys_module sys_time sys_rawio mac_admin mac_override. */
const char *const *runtime_caps_default_drop(void);

/* Capability number from a name with or without "cap_" (case-insensitive); -EINVAL if
 * unknown. */
int runtime_cap_from_name(const char *name);

/* Lower-case name without "cap_" ("sys_admin") of capability `cap`, or NULL when this
 * build does not know it. */
const char *runtime_cap_name(int cap);

/* The highest capability number of the running kernel (/proc/sys/kernel/cap_last_cap),
 * or of this build when that file cannot be read. */
int runtime_cap_last(void);

/* Drop the default set plus `extra` (NULL-terminated names, may be NULL) from the
 * bounding set, and from the effective, permitted and inheritable sets, and clear the
 * ambient set. */
int runtime_caps_drop(const char *const *extra, struct berth_error *err);

/* ---- AppArmor (apparmor.c) ---- */

/* True when the running kernel has AppArmor enabled
 * (/sys/module/apparmor/parameters/enabled says Y and securityfs shows it). */
bool runtime_apparmor_enabled(void);

/* The profile name for an instance: "berth-<project>_<name>". Newly allocated. */
char *runtime_apparmor_profile_name(const char *project, const char *name);

/* The text of a per-instance profile in the style of LXD's container profile:
 * deny writes to /proc/sys (except net), /sys, /proc/sysrq-trigger, mount only of
 * the filesystems a container needs, ptrace and signals within the profile, and
 * `raw` (raw.apparmor, may be NULL) appended. Newly allocated. */
char *runtime_apparmor_profile_text(const char *profile_name, const char *raw);

/* Load (replace) a profile's text into the kernel with apparmor_parser. Fails with
 * -EOPNOTSUPP when AppArmor is not enabled. */
int runtime_apparmor_load(const char *profile_text, struct berth_error *err);

/* Ask the kernel to apply `profile_name` at the next execve (aa_change_onexec).
 * -EOPNOTSUPP when AppArmor is not enabled. */
int runtime_apparmor_change_onexec(const char *profile_name, struct berth_error *err);
