/* daemon/runtime/apparmor.c: the per-instance AppArmor profile (see security.h): one
 * detection of AppArmor for the whole program, the profile's name and text, loading
 * it with apparmor_parser and applying it at the next execve with libapparmor.
 *
 * The profile follows what LXD gives a container: everything allowed except writes to
 * the kernel's knobs in /proc/sys and /sys (the network ones and the container's own
 * cgroup tree stay writable), a few /proc files, mounts limited to the filesystem
 * types and bind/propagation changes a system container's init performs, and ptrace
 * and signals only between processes of the same profile. AppArmor globs have no
 * "all but", so "deny writes under DIR except A and B" is spelled out as a tree of
 * negated character classes (deny_except below). */
#include "daemon/runtime/security.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/apparmor.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/macros.h"
#include "lib/spawn.h"

#define PARSER_OUTPUT_MAX 4096

static bool file_starts_with_y(const char *path)
{
	char c = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return false;
	if (read(fd, &c, 1) != 1)
		c = 0;
	close(fd);
	return c == 'Y';
}

bool runtime_apparmor_enabled(void)
{
	if (access("/sys/kernel/security/apparmor", F_OK) < 0)
		return false;
	return file_starts_with_y("/sys/module/apparmor/parameters/enabled");
}

char *runtime_apparmor_profile_name(const char *project, const char *name)
{
	char *s = NULL;

	if (asprintf(&s, "berth-%s_%s", project, name) < 0)
		return NULL;
	return s;
}

/* Emit "deny <path><rest> <perms>," rules so that everything under `dir` (which ends
 * with '/') is denied `perms` except the entries `keep` names. A kept entry is a
 * relative path ("net", "kernel/hostname"): it and everything below it stay allowed;
 * one ending in '*' ("kernel/msg*") keeps the files of that name prefix but not what
 * is below them. The rules walk the kept names as a character tree: at each node,
 * deny every next character that leads to no kept entry. `keep` entries are the
 * suffixes still to match after `dir`. */
static void deny_except(FILE *out, const char *dir, const char *const *keep, size_t n,
			const char *perms)
{
	char next[64];
	size_t nnext = 0;
	bool ends_here = false;

	for (size_t i = 0; i < n; i++) {
		if (streq(keep[i], "*")) {
			fprintf(out, "  deny %s*/** %s,\n", dir, perms);
			return;
		}
		if (keep[i][0] == '\0') {
			ends_here = true;
			continue;
		}
		if (!memchr(next, keep[i][0], nnext) && nnext < sizeof(next))
			next[nnext++] = keep[i][0];
	}

	if (ends_here) {
		/* `dir` itself is a kept name: deny only longer names beside it. */
		fprintf(out, "  deny %s?*{,/**} %s,\n", dir, perms);
		return;
	}
	if (nnext == 1 && next[0] == '/')
		fprintf(out, "  deny %s?*{,/**} %s,\n", dir, perms);
	else {
		fprintf(out, "  deny %s[^", dir);
		for (size_t j = 0; j < nnext; j++)
			if (next[j] != '/')
				fputc(next[j], out);
		fprintf(out, "]*{,/**} %s,\n", perms);
	}

	for (size_t j = 0; j < nnext; j++) {
		const char *sub[16];
		size_t nsub = 0;
		_cleanup_free_ char *child = NULL;

		for (size_t i = 0; i < n && nsub < ARRAY_SIZE(sub); i++)
			if (keep[i][0] == next[j])
				sub[nsub++] = keep[i] + 1;
		if (asprintf(&child, "%s%c", dir, next[j]) < 0)
			continue; /* the caller sees the stream's error */
		deny_except(out, child, sub, nsub, perms);
	}
}

/* Kept writable under /proc/sys: the network namespace's settings and the sysctls
 * that belong to the container's UTS and IPC namespaces. */
static const char *const proc_sys_keep[] = {
	"net", "kernel/hostname", "kernel/domainname", "kernel/msg*", "kernel/sem*", "kernel/shm*",
};

/* Kept writable under /sys: the container's network devices and its cgroup tree. */
static const char *const sys_keep[] = {
	"class/net",
	"devices/virtual/net",
	"fs/cgroup",
};

/* Filesystems a container's init and services mount themselves, and where (NULL:
 * anywhere). The kernel interfaces go only to their usual place, and the deny rules
 * below keep them unwritable. */
static const struct {
	const char *fstype;
	const char *target;
} mounts[] = {
	{"proc", "/proc/"},
	{"sysfs", "/sys/"},
	{"cgroup", "/sys/fs/cgroup/{,**}"},
	{"cgroup2", "/sys/fs/cgroup/{,**}"},
	{"tmpfs", NULL},
	{"devpts", NULL},
	{"mqueue", NULL},
	{"hugetlbfs", NULL},
	{"fuse", NULL},
	{"fuse.*", NULL},
	{"fusectl", "/sys/fs/fuse/connections/"},
	{"binfmt_misc", "/proc/sys/fs/binfmt_misc/"},
	{"securityfs", "/sys/kernel/security/"},
	{"configfs", "/sys/kernel/config/"},
	{"debugfs", "/sys/kernel/debug/"},
	{"tracefs", "/sys/kernel/tracing/"},
	{"efivarfs", "/sys/firmware/efi/efivars/"},
};

/* Kernel interfaces that may be mounted (systemd does) but never written. */
static const char *const deny_all[] = {
	"/proc/sysrq-trigger",
	"/proc/kcore",
	"/proc/acpi/**",
	"/proc/sys/fs/binfmt_misc/{,**}",
	"/sys/kernel/config/{,**}",
	"/sys/kernel/debug/{,**}",
	"/sys/kernel/tracing/{,**}",
	"/sys/firmware/efi/efivars/{,**}",
};

static const char *const propagation[] = {
	"slave", "rslave", "shared", "rshared", "private", "rprivate", "unbindable", "runbindable",
};

static void write_profile(FILE *out, const char *profile_name, const char *raw)
{
	fprintf(out, "#include <tunables/global>\n");
	fprintf(out, "profile \"%s\" flags=(attach_disconnected,mediate_deleted) {\n",
		profile_name);
	fputs("  # Everything not denied below.\n"
	      "  capability,\n  dbus,\n  file,\n  network,\n  umount,\n  pivot_root,\n\n"
	      "  # Signals and ptrace only within the container.\n"
	      "  signal (receive),\n  signal peer=@{profile_name},\n"
	      "  ptrace (readby),\n  ptrace (tracedby),\n  ptrace peer=@{profile_name},\n\n",
	      out);

	fputs("  # Kernel interfaces a container must not touch.\n", out);
	for (size_t i = 0; i < ARRAY_SIZE(deny_all); i++)
		fprintf(out, "  deny %s rwklx,\n", deny_all[i]);
	fputs("  deny /proc/bus/** wklx,\n", out);
	fputs("\n  # /proc/sys: read-only but for the namespaced sysctls.\n", out);
	deny_except(out, "/proc/sys/", proc_sys_keep, ARRAY_SIZE(proc_sys_keep), "wklx");
	fputs("\n  # /sys: read-only but for network devices and the cgroup tree.\n", out);
	deny_except(out, "/sys/", sys_keep, ARRAY_SIZE(sys_keep), "wklx");

	fputs("\n  # Mounts a system container performs.\n", out);
	for (size_t i = 0; i < ARRAY_SIZE(mounts); i++)
		fprintf(out, "  mount fstype=%s%s%s,\n", mounts[i].fstype,
			mounts[i].target ? " -> " : "", mounts[i].target ? mounts[i].target : "");
	for (size_t i = 0; i < ARRAY_SIZE(propagation); i++)
		fprintf(out, "  mount options=(rw,%s) -> **,\n", propagation[i]);
	fputs("  mount options=(rw,bind) / -> /**,\n"
	      "  mount options=(rw,bind) /** -> /**,\n"
	      "  mount options=(rw,rbind) / -> /**,\n"
	      "  mount options=(rw,rbind) /** -> /**,\n"
	      "  mount options=(rw,move) /** -> /**,\n"
	      "  mount options=(ro,remount) /**,\n"
	      "  mount options=(ro,remount,bind) /**,\n"
	      "  mount options=(ro,remount,bind,nosuid,nodev,noexec) /**,\n"
	      "  mount options=(ro,nosuid,nodev,noexec,remount,strictatime) -> /sys/fs/cgroup/,\n"
	      "  mount options=(rw,nosuid,nodev,noexec,remount) -> /sys/,\n"
	      "  # Hide the denial of the read-only remount of / some inits try.\n"
	      "  deny mount options=(ro,remount) -> /,\n",
	      out);

	if (raw && raw[0]) {
		fputs("\n  ### raw.apparmor\n", out);
		fputs(raw, out);
		if (raw[strlen(raw) - 1] != '\n')
			fputc('\n', out);
	}
	fputs("}\n", out);
}

char *runtime_apparmor_profile_text(const char *profile_name, const char *raw)
{
	char *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);

	if (!out)
		return NULL;
	write_profile(out, profile_name, raw);
	if (ferror(out)) {
		fclose(out);
		free(text);
		return NULL;
	}
	if (fclose(out) != 0) {
		free(text);
		return NULL;
	}
	return text;
}

static int not_enabled(struct berth_error *err, const char *what)
{
	return berth_error_set(err, -EOPNOTSUPP, BERTH_ERR_UNAVAILABLE,
			       "%s: AppArmor is not enabled in the running kernel", what);
}

#define PARSER_TIMEOUT_MS 120000

/* Run `parser -r` with the profile text on stdin (a memfd, so nothing reaches the disk
 * and no pipe can fill up) through lib/spawn. Blocks until it exits: berthd calls this
 * from its thread pool. */
static int run_parser(const char *parser, const char *text, struct berth_error *err)
{
	_cleanup_(berth_spawn_release) struct berth_spawn s = {
		.argv = (const char *const[]){parser, "-r", NULL},
		.input = text,
		.input_len = strlen(text),
		.io = {BERTH_SPAWN_DEFAULT, BERTH_SPAWN_DEFAULT, BERTH_SPAWN_TO_STDOUT},
		.capture_max = PARSER_OUTPUT_MAX,
		.timeout_ms = PARSER_TIMEOUT_MS,
		.flags = BERTH_SPAWN_NO_CHECK,
	};
	char output[PARSER_OUTPUT_MAX];
	int r = berth_spawn_run(&s, err);

	if (r < 0)
		return r;
	if (s.exit_code == 0)
		return 0;
	berth_spawn_tail(&s, output, sizeof(output));
	return berth_error_set(err, -EINVAL, BERTH_ERR_INTERNAL,
			       "apparmor_parser refused the profile (%s %d)%s%s",
			       s.term_signal ? "signal" : "exit",
			       s.term_signal ? s.term_signal : s.exit_code, output[0] ? ": " : "",
			       output);
}

int runtime_apparmor_load(const char *profile_text, struct berth_error *err)
{
	_cleanup_free_ char *parser = NULL;

	if (!runtime_apparmor_enabled())
		return not_enabled(err, "loading the AppArmor profile");
	if (berth_program_find("apparmor_parser", &parser) < 0)
		return berth_error_set(err, -ENOENT, BERTH_ERR_UNAVAILABLE,
				       "loading the AppArmor profile: apparmor_parser not found "
				       "(apt-get install apparmor)");
	return run_parser(parser, profile_text, err);
}

int runtime_apparmor_change_onexec(const char *profile_name, struct berth_error *err)
{
	if (!runtime_apparmor_enabled())
		return not_enabled(err, "applying the AppArmor profile");
	if (aa_change_onexec(profile_name) < 0) {
		int r = -errno;

		return berth_error_set(err, r, BERTH_ERR_INTERNAL,
				       "applying the AppArmor profile \"%s\": %s", profile_name,
				       strerror(-r));
	}
	return 0;
}
