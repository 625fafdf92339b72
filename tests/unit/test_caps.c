/* tests/unit/test_caps.c: capability names and a real drop in a forked child. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <ctype.h>
#include <errno.h>
#include <linux/capability.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon/runtime/security.h"

static int kernel_last_cap(void)
{
	FILE *f = fopen("/proc/sys/kernel/cap_last_cap", "r");
	int v = -1;

	assert_non_null(f);
	assert_int_equal(fscanf(f, "%d", &v), 1);
	fclose(f);
	return v;
}

static void test_names_round_trip(void **state)
{
	int last = kernel_last_cap();

	assert_int_equal(runtime_cap_last(), last);
	for (int cap = 0; cap <= last; cap++) {
		const char *name = runtime_cap_name(cap);
		char buf[64], upper[64];

		if (!name)
			fail_msg("capability %d of the running kernel has no name", cap);
		assert_int_equal(runtime_cap_from_name(name), cap);
		snprintf(buf, sizeof(buf), "cap_%s", name);
		assert_int_equal(runtime_cap_from_name(buf), cap);
		for (size_t i = 0; i <= strlen(buf); i++)
			upper[i] = (char)toupper((unsigned char)buf[i]);
		assert_int_equal(runtime_cap_from_name(upper), cap);
		assert_int_equal(runtime_cap_from_name(upper + 4), cap);
	}
	assert_int_equal(runtime_cap_from_name("sys_admin"), CAP_SYS_ADMIN);
	assert_int_equal(runtime_cap_from_name("CAP_CHECKPOINT_RESTORE"), 40);
	assert_int_equal(runtime_cap_from_name("not_a_cap"), -EINVAL);
	assert_int_equal(runtime_cap_from_name("cap_"), -EINVAL);
	assert_int_equal(runtime_cap_from_name(""), -EINVAL);
	assert_null(runtime_cap_name(-1));
	assert_null(runtime_cap_name(1000));
}

static void test_default_drop(void **state)
{
	const char *const *d = runtime_caps_default_drop();
	static const char *const want[] = {"sys_module", "sys_time", "sys_rawio", "mac_admin",
					   "mac_override"};
	size_t n = 0;

	while (d[n]) {
		assert_true(runtime_cap_from_name(d[n]) >= 0);
		n++;
	}
	assert_int_equal(n, 5);
	for (size_t i = 0; i < 5; i++) {
		bool found = false;

		for (size_t j = 0; d[j]; j++)
			found = found || strcmp(d[j], want[i]) == 0;
		if (!found)
			fail_msg("default drop lacks %s", want[i]);
	}
}

static bool effective(const struct __user_cap_data_struct *data, int cap)
{
	return data[cap / 32].effective & (1U << (cap % 32));
}

/* In the child: 0 when every check held, else the number of the failed one. */
static int drop_checks(void)
{
	static const char *const extra[] = {"net_raw", "CAP_SYS_BOOT", NULL};
	struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct data[2] = {0};
	static const int gone[] = {CAP_SYS_MODULE,   CAP_SYS_TIME, CAP_SYS_RAWIO, CAP_MAC_ADMIN,
				   CAP_MAC_OVERRIDE, CAP_NET_RAW,  CAP_SYS_BOOT};
	static const int kept[] = {CAP_CHOWN, CAP_SYS_ADMIN, CAP_NET_ADMIN, CAP_SETPCAP};

	/* something in the ambient set to clear: it needs the cap inheritable first */
	if (syscall(SYS_capget, &hdr, data) < 0)
		return 3;
	data[0].inheritable |= 1U << CAP_CHOWN;
	if (syscall(SYS_capset, &hdr, data) < 0)
		return 4;
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_CHOWN, 0, 0) < 0 ||
	    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, CAP_CHOWN, 0, 0) != 1)
		return 5;
	if (runtime_caps_drop(extra, NULL) < 0)
		return 1;
	if (syscall(SYS_capget, &hdr, data) < 0)
		return 2;
	for (size_t i = 0; i < sizeof(gone) / sizeof(gone[0]); i++) {
		if (prctl(PR_CAPBSET_READ, gone[i], 0, 0, 0) != 0)
			return 10 + (int)i;
		if (effective(data, gone[i]))
			return 20 + (int)i;
	}
	for (size_t i = 0; i < sizeof(kept) / sizeof(kept[0]); i++) {
		if (prctl(PR_CAPBSET_READ, kept[i], 0, 0, 0) != 1)
			return 30 + (int)i;
		if (!effective(data, kept[i]))
			return 40 + (int)i;
	}
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, CAP_CHOWN, 0, 0) != 0)
		return 50;
	/* dropping again (nothing left to drop) still works */
	if (runtime_caps_drop(extra, NULL) < 0)
		return 51;
	return 0;
}

static void test_drop(void **state)
{
	int status = 0;
	pid_t pid;

	if (geteuid() != 0)
		skip();
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(drop_checks());
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	/* the parent is untouched */
	assert_int_equal(prctl(PR_CAPBSET_READ, CAP_SYS_MODULE, 0, 0, 0), 1);
}

static void test_drop_unknown(void **state)
{
	static const char *const extra[] = {"not_a_cap", NULL};
	struct berth_error err = {0};

	/* refused before anything changes, so safe in the test process */
	assert_int_equal(runtime_caps_drop(extra, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "\"not_a_cap\""));
	berth_error_release(&err);
	if (geteuid() == 0)
		assert_int_equal(prctl(PR_CAPBSET_READ, CAP_SYS_MODULE, 0, 0, 0), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names_round_trip),
		cmocka_unit_test(test_default_drop),
		cmocka_unit_test(test_drop),
		cmocka_unit_test(test_drop_unknown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
