/* tests/unit/test_seccomp.c: the seccomp policy: the default list, name validation,
 * and filters really loaded in forked children (each child checks what the kernel
 * answers and reports through its exit code: 0 = all as expected, N = check N failed). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <errno.h>
#include <linux/seccomp.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon/runtime/security.h"

static bool has(const char *const *list, const char *name)
{
	for (size_t i = 0; list[i]; i++)
		if (strcmp(list[i], name) == 0)
			return true;
	return false;
}

static void test_default_list(void **state)
{
	const char *const *d = runtime_seccomp_default_deny();
	static const char *const want[] = {
		"kexec_load",  "kexec_file_load", "open_by_handle_at",
		"init_module", "finit_module",	  "delete_module",
	};
	size_t n = 0;

	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		if (!has(d, want[i]))
			fail_msg("default deny list lacks %s", want[i]);
	while (d[n])
		n++;
	assert_int_equal(n, sizeof(want) / sizeof(want[0]));
}

static void test_validate(void **state)
{
	char *good[] = {"getpid", "uname", "kexec_load", "socketcall", NULL};
	char *bad[] = {"getpid", "not_a_syscall", "uname", NULL};
	struct runtime_seccomp_policy p = {.deny_default = true, .deny = good};
	struct berth_error err = {0};

	assert_int_equal(runtime_seccomp_validate(&p, &err), 0);
	assert_null(err.msg);

	p.deny = bad;
	assert_int_equal(runtime_seccomp_validate(&p, &err), -EINVAL);
	assert_int_equal(err.code, BERTH_ERR_BAD_REQUEST);
	assert_non_null(strstr(err.msg, "\"not_a_syscall\""));
	berth_error_release(&err);

	p.deny = NULL;
	p.allow = bad;
	assert_int_equal(runtime_seccomp_validate(&p, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "\"not_a_syscall\""));
	berth_error_release(&err);

	/* allow and deny are exclusive */
	p.allow = good;
	p.deny = good;
	assert_int_equal(runtime_seccomp_validate(&p, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "cannot be combined"));
	berth_error_release(&err);
	/* ... and load refuses the same */
	assert_int_equal(runtime_seccomp_load(&p, &err), -EINVAL);
	berth_error_release(&err);
}

static void test_parse_list(void **state)
{
	char **l = NULL;

	assert_int_equal(runtime_seccomp_parse_list("getpid\nuname,  kexec_load\n", &l), 0);
	assert_non_null(l);
	assert_string_equal(l[0], "getpid");
	assert_string_equal(l[1], "uname");
	assert_string_equal(l[2], "kexec_load");
	assert_null(l[3]);
	runtime_seccomp_list_free(l);

	assert_int_equal(runtime_seccomp_parse_list("", &l), 0);
	assert_null(l[0]);
	runtime_seccomp_list_free(l);
	runtime_seccomp_list_free(NULL);
}

/* Run `fn` in a child that sets no_new_privs and loads `p` (with libseccomp, or when
 * `compiled` the program runtime_seccomp_compile made here, as berth-monitor does for
 * exec'd commands); return its exit status. */
static int in_child_as(const struct runtime_seccomp_policy *p, bool compiled, int (*fn)(void))
{
	struct runtime_seccomp_prog prog = {0};
	int status = 0;
	pid_t pid;

	if (compiled)
		assert_int_equal(runtime_seccomp_compile(p, &prog, NULL), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
			_exit(100);
		if ((compiled ? runtime_seccomp_install(&prog, NULL)
			      : runtime_seccomp_load(p, NULL)) < 0)
			_exit(101);
		/* exit_group directly: a sanitizer's exit hooks would make syscalls the
		 * filter refuses in allow-list mode */
		syscall(SYS_exit_group, fn());
	}
	runtime_seccomp_prog_release(&prog);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

static int in_child(const struct runtime_seccomp_policy *p, int (*fn)(void))
{
	return in_child_as(p, false, fn);
}

/* -1 and `err` from a raw syscall, else a distinct failure code. */
/* kexec_load with an invalid architecture in `flags`: where the kernel has kexec it
 * answers EPERM or EINVAL and never loads or unloads anything. */
#define KEXEC_BAD_FLAGS 0x7fff0000UL

#define EXPECT_ERRNO(call, err, code)                                                              \
	do {                                                                                       \
		errno = 0;                                                                         \
		if ((call) != -1 || errno != (err))                                                \
			return (code);                                                             \
	} while (0)

static int deny_checks(void)
{
	struct utsname u;

	/* denied by the extra list */
	EXPECT_ERRNO(syscall(SYS_getpid), ENOSYS, 1);
	EXPECT_ERRNO(syscall(SYS_uname, &u), ENOSYS, 2);
	/* the default list */
	EXPECT_ERRNO(syscall(SYS_kexec_load, 0, 0, NULL, KEXEC_BAD_FLAGS), ENOSYS, 3);
	EXPECT_ERRNO(syscall(SYS_init_module, NULL, 0, ""), ENOSYS, 4);
	EXPECT_ERRNO(syscall(SYS_open_by_handle_at, -1, NULL, 0), ENOSYS, 5);
	/* forced unmount refused; a plain one reaches the kernel */
	EXPECT_ERRNO(syscall(SYS_umount2, "/berth-test-not-a-mount", MNT_FORCE), EACCES, 6);
	EXPECT_ERRNO(syscall(SYS_umount2, "/berth-test-not-a-mount", 0), ENOENT, 7);
	/* a notify listener refused (EINVAL); without the flag the kernel sees the NULL
	 * program (EFAULT) */
	EXPECT_ERRNO(syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER,
			     NULL),
		     EINVAL, 8);
	EXPECT_ERRNO(syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, NULL), EFAULT, 9);
	/* untouched calls work */
	if (syscall(SYS_getppid) <= 0)
		return 10;
	if (syscall(SYS_gettid) <= 0)
		return 11;
	return 0;
}

static void test_deny_loaded(void **state)
{
	char *deny[] = {"getpid", "uname", NULL};
	struct runtime_seccomp_policy p = {.deny_default = true, .deny = deny};

	assert_int_equal(in_child(&p, deny_checks), 0);
}

static int no_default_checks(void)
{
	struct utsname u;

	/* deny_default=false: the default list's calls reach the kernel. This is the
	 * control for deny_checks: open_by_handle_at exists wherever the kernel has
	 * CONFIG_FHANDLE (EBADF here), kexec_load only where /sys/kernel/kexec_loaded
	 * exists (the test hosts have neither kexec nor modules, so for those two
	 * ENOSYS in deny_checks proves nothing there). */
	errno = 0;
	if (syscall(SYS_open_by_handle_at, -1, NULL, 0) != -1 || errno == ENOSYS)
		return 1;
	errno = 0;
	if (access("/sys/kernel/kexec_loaded", F_OK) == 0 &&
	    (syscall(SYS_kexec_load, 0, 0, NULL, KEXEC_BAD_FLAGS) != -1 || errno == ENOSYS))
		return 4;
	EXPECT_ERRNO(syscall(SYS_uname, &u), ENOSYS, 2);
	if (syscall(SYS_getpid) <= 0)
		return 3;
	return 0;
}

static void test_deny_without_default(void **state)
{
	char *deny[] = {"uname", NULL};
	struct runtime_seccomp_policy p = {.deny_default = false, .deny = deny};

	assert_int_equal(in_child(&p, no_default_checks), 0);
}

static int allow_checks(void)
{
	struct utsname u;

	if (syscall(SYS_getpid) <= 0)
		return 1;
	EXPECT_ERRNO(syscall(SYS_uname, &u), ENOSYS, 2);
	EXPECT_ERRNO(syscall(SYS_getppid), ENOSYS, 3);
	EXPECT_ERRNO(syscall(SYS_kexec_load, 0, 0, NULL, KEXEC_BAD_FLAGS), ENOSYS, 4);
	/* allowed umount2 keeps the forced-unmount refusal */
	EXPECT_ERRNO(syscall(SYS_umount2, "/berth-test-not-a-mount", MNT_FORCE), EACCES, 5);
	EXPECT_ERRNO(syscall(SYS_umount2, "/berth-test-not-a-mount", 0), ENOENT, 6);
	return 0; /* _exit -> exit_group, allowed by the runtime's own set */
}

static void test_allow_loaded(void **state)
{
	char *allow[] = {"getpid", "umount2", NULL};
	struct runtime_seccomp_policy p = {.allow = allow};

	assert_int_equal(in_child(&p, allow_checks), 0);
}

static int nothing_checks(void)
{
	struct utsname u;

	if (syscall(SYS_uname, &u) != 0)
		return 1;
	/* no filter installed at all */
	if (prctl(PR_GET_SECCOMP, 0, 0, 0, 0) != 0)
		return 2;
	return 0;
}

static void test_empty_policy_no_filter(void **state)
{
	struct runtime_seccomp_policy p = {.deny_default = false};

	assert_int_equal(in_child(&p, nothing_checks), 0);
}

/* The program compiled once and installed without libseccomp behaves the same. */
static void test_compiled(void **state)
{
	char *deny[] = {"getpid", "uname", NULL};
	char *allow[] = {"getpid", "umount2", NULL};
	struct runtime_seccomp_policy d = {.deny_default = true, .deny = deny};
	struct runtime_seccomp_policy a = {.allow = allow};
	struct runtime_seccomp_policy none = {.deny_default = false};
	struct runtime_seccomp_prog prog = {0};

	assert_int_equal(in_child_as(&d, true, deny_checks), 0);
	assert_int_equal(in_child_as(&a, true, allow_checks), 0);
	assert_int_equal(in_child_as(&none, true, nothing_checks), 0);
	assert_int_equal(runtime_seccomp_compile(&none, &prog, NULL), 0);
	assert_int_equal(prog.len, 0); /* nothing to filter: no program */
	assert_int_equal(runtime_seccomp_compile(&d, &prog, NULL), 0);
	assert_true(prog.len > 10);
	runtime_seccomp_prog_release(&prog);
	assert_null(prog.insns);
}

static void test_unknown_name_load(void **state)
{
	char *deny[] = {"not_a_syscall", NULL};
	struct runtime_seccomp_policy p = {.deny_default = true, .deny = deny};
	struct berth_error err = {0};
	int status = 0;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		int r = runtime_seccomp_load(&p, &err);

		/* refused before anything is loaded */
		_exit(r == -EINVAL && err.msg && strstr(err.msg, "not_a_syscall") &&
				      prctl(PR_GET_SECCOMP, 0, 0, 0, 0) == 0
			      ? 0
			      : 1);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_default_list),
		cmocka_unit_test(test_validate),
		cmocka_unit_test(test_parse_list),
		cmocka_unit_test(test_deny_loaded),
		cmocka_unit_test(test_deny_without_default),
		cmocka_unit_test(test_allow_loaded),
		cmocka_unit_test(test_empty_policy_no_filter),
		cmocka_unit_test(test_unknown_name_load),
		cmocka_unit_test(test_compiled),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
