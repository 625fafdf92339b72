/* tests/unit/test_apparmor.c: the profile name and text, detection, and the clean
 * failure of loading and applying where the kernel has no AppArmor. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon/runtime/security.h"

static void test_profile_name(void **state)
{
	char *n = runtime_apparmor_profile_name("default", "web1");

	assert_string_equal(n, "berth-default_web1");
	free(n);
	n = runtime_apparmor_profile_name("p-2", "c");
	assert_string_equal(n, "berth-p-2_c");
	free(n);
}

static void contains(const char *text, const char *needle)
{
	if (!strstr(text, needle))
		fail_msg("profile lacks \"%s\":\n%s", needle, text);
}

static void lacks(const char *text, const char *needle)
{
	if (strstr(text, needle))
		fail_msg("profile has \"%s\"", needle);
}

static void test_profile_text(void **state)
{
	char *t = runtime_apparmor_profile_text("berth-default_web1",
						"  # raw rule\n  deny /srv/secret rw,");

	assert_non_null(t);
	contains(t, "profile \"berth-default_web1\" flags=(attach_disconnected,mediate_deleted) {");
	contains(t, "#include <tunables/global>");
	/* proc: the dangerous files */
	contains(t, "deny /proc/sysrq-trigger rwklx,");
	contains(t, "deny /proc/kcore rwklx,");
	/* /proc/sys read-only except net and the namespaced kernel knobs */
	contains(t, "deny /proc/sys/[^nk]*{,/**} wklx,");
	contains(t, "deny /proc/sys/net?*{,/**} wklx,");
	contains(t, "deny /proc/sys/kernel?*{,/**} wklx,");
	contains(t, "deny /proc/sys/kernel/hostname?*{,/**} wklx,");
	contains(t, "deny /proc/sys/kernel/msg*/** wklx,");
	lacks(t, "deny /proc/sys/n[^e]*{,/**} wklx,\n  deny /proc/sys/net/");
	/* /sys read-only except net devices and cgroups */
	contains(t, "deny /sys/[^cdf]*{,/**} wklx,");
	contains(t, "deny /sys/class/net?*{,/**} wklx,");
	contains(t, "deny /sys/fs/cgroup?*{,/**} wklx,");
	/* ptrace and signals within the profile */
	contains(t, "ptrace peer=@{profile_name},");
	contains(t, "signal peer=@{profile_name},");
	/* mounts of what a container needs */
	contains(t, "mount fstype=proc -> /proc/,");
	contains(t, "mount fstype=cgroup2 -> /sys/fs/cgroup/{,**},");
	contains(t, "mount fstype=tmpfs,");
	/* raw appended, inside the profile, newline added */
	contains(t, "  # raw rule\n  deny /srv/secret rw,\n}\n");
	assert_true(strstr(t, "deny /srv/secret") > strstr(t, "deny /proc/kcore"));
	free(t);

	t = runtime_apparmor_profile_text("berth-p_c", NULL);
	assert_non_null(t);
	lacks(t, "raw.apparmor");
	assert_int_equal(t[strlen(t) - 2], '}');
	free(t);
}

/* apparmor_parser, where installed, must accept the text (-Q: no kernel needed). */
static void test_profile_parses(void **state)
{
	const char *parser = access("/sbin/apparmor_parser", X_OK) == 0 ? "/sbin/apparmor_parser"
			     : access("/usr/sbin/apparmor_parser", X_OK) == 0
				     ? "/usr/sbin/apparmor_parser"
				     : NULL;
	char *t, cmd[256];
	FILE *p;
	int status;

	if (!parser || access("/etc/apparmor.d/tunables/global", R_OK) < 0)
		skip();
	t = runtime_apparmor_profile_text("berth-default_web1", "  capability sys_admin,\n");
	snprintf(cmd, sizeof(cmd), "%s -Q -K >/dev/null 2>&1", parser);
	p = popen(cmd, "w");
	assert_non_null(p);
	fputs(t, p);
	status = pclose(p);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	free(t);

	/* and the check can fail: a broken raw rule is refused */
	t = runtime_apparmor_profile_text("berth-default_web1", "  not a rule at all\n");
	p = popen(cmd, "w");
	assert_non_null(p);
	fputs(t, p);
	status = pclose(p);
	assert_true(WIFEXITED(status));
	assert_int_not_equal(WEXITSTATUS(status), 0);
	free(t);
}

static bool sysfs_says_enabled(void)
{
	FILE *f = fopen("/sys/module/apparmor/parameters/enabled", "r");
	int c;

	if (!f)
		return false;
	c = fgetc(f);
	fclose(f);
	return c == 'Y' && access("/sys/kernel/security/apparmor", F_OK) == 0;
}

static void test_enabled(void **state)
{
	assert_int_equal(runtime_apparmor_enabled(), sysfs_says_enabled());
}

static void test_without_apparmor(void **state)
{
	struct berth_error err = {0};
	char *t;

	if (runtime_apparmor_enabled())
		skip(); /* the failure path only exists without AppArmor */
	t = runtime_apparmor_profile_text("berth-default_web1", NULL);
	assert_int_equal(runtime_apparmor_load(t, &err), -EOPNOTSUPP);
	assert_non_null(strstr(err.msg, "AppArmor is not enabled"));
	berth_error_release(&err);
	free(t);

	assert_int_equal(runtime_apparmor_change_onexec("berth-default_web1", &err), -EOPNOTSUPP);
	assert_non_null(strstr(err.msg, "AppArmor is not enabled"));
	berth_error_release(&err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_profile_name),	 cmocka_unit_test(test_profile_text),
		cmocka_unit_test(test_profile_parses),	 cmocka_unit_test(test_enabled),
		cmocka_unit_test(test_without_apparmor),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
