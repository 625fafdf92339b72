/* daemon/runtime/seccomp.c: the syscall filter of a container's processes, built with
 * libseccomp (see security.h).
 *
 * Two modes, as LXD's security.syscalls.* keys:
 * - deny list (default action: allow): the default list refused with ENOSYS, plus
 *   umount2(MNT_FORCE) refused with EACCES and seccomp(SET_MODE_FILTER) with the
 *   NEW_LISTENER flag refused with EINVAL (both only with deny_default), plus the
 *   caller's extra names refused with ENOSYS;
 * - allow list (default action: ENOSYS): only the caller's names and the few calls
 *   the runtime itself makes between loading the filter and execve. umount2 and
 *   seccomp, when allowed, keep the two refinements above.
 *
 * The filter covers the native architecture and its compat ones (x86_64: x86 and
 * x32), so that a 32-bit binary cannot get around it. libseccomp translates each
 * rule per architecture and leaves out a syscall an architecture does not have. */
#include "daemon/runtime/security.h"

#include <errno.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <linux/filter.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "lib/macros.h"

#ifndef SECCOMP_FILTER_FLAG_NEW_LISTENER
#define SECCOMP_FILTER_FLAG_NEW_LISTENER (1UL << 3)
#endif

static const char *const default_deny[] = {
	"kexec_load",  "kexec_file_load", "open_by_handle_at",
	"init_module", "finit_module",	  "delete_module",
	NULL,
};

/* What berth-monitor does after the filter is in place and before the container's
 * program runs (AppArmor's change_onexec writes /proc/self/attr, then execve; exec
 * reports a failed execve on its status fd and exits). Allowed in allow-list mode so
 * that a list naming only what the program needs still starts it. */
static const char *const allow_always[] = {
	"execve", "execveat", "exit", "exit_group", "write", "close", "openat", "gettid", NULL,
};

const char *const *runtime_seccomp_default_deny(void)
{
	return default_deny;
}

DEFINE_TRIVIAL_CLEANUP_FUNC(scmp_filter_ctx, seccomp_release);

static int check_names(char *const *names, struct berth_error *err)
{
	for (size_t i = 0; names && names[i]; i++)
		if (seccomp_syscall_resolve_name(names[i]) == __NR_SCMP_ERROR)
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "unknown system call \"%s\"", names[i]);
	return 0;
}

int runtime_seccomp_validate(const struct runtime_seccomp_policy *p, struct berth_error *err)
{
	int r;

	if (p->allow && p->deny && p->deny[0])
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "a syscall allow list and a deny list cannot be combined");
	r = check_names(p->deny, err);
	if (r < 0)
		return r;
	return check_names(p->allow, err);
}

int runtime_seccomp_parse_list(const char *value, char ***ret)
{
	char **list = NULL;
	size_t n = 0;
	const char *s = value ? value : "";

	list = calloc(1, sizeof(*list));
	if (!list)
		return -ENOMEM;
	for (;;) {
		size_t len;
		char **grown;

		s += strspn(s, " \t\r\n,");
		len = strcspn(s, " \t\r\n,");
		if (len == 0)
			break;
		grown = realloc(list, (n + 2) * sizeof(*list));
		if (!grown)
			goto oom;
		list = grown;
		list[n] = strndup(s, len);
		if (!list[n])
			goto oom;
		list[++n] = NULL;
		s += len;
	}
	*ret = list;
	return 0;
oom:
	runtime_seccomp_list_free(list);
	return -ENOMEM;
}

void runtime_seccomp_list_free(char **list)
{
	for (size_t i = 0; list && list[i]; i++)
		free(list[i]);
	free(list);
}

/* The compat architectures of the native one that the kernel may run: their syscalls
 * enter through other tables and must be filtered too. */
static int add_compat_arches(scmp_filter_ctx ctx)
{
	static const uint32_t x86_64_compat[] = {SCMP_ARCH_X86, SCMP_ARCH_X32, 0};
	static const uint32_t aarch64_compat[] = {SCMP_ARCH_ARM, 0};
	static const uint32_t s390x_compat[] = {SCMP_ARCH_S390, 0};
	static const uint32_t ppc64le_compat[] = {0};
	const uint32_t *compat = ppc64le_compat;

	switch (seccomp_arch_native()) {
	case SCMP_ARCH_X86_64:
		compat = x86_64_compat;
		break;
	case SCMP_ARCH_AARCH64:
		compat = aarch64_compat;
		break;
	case SCMP_ARCH_S390X:
		compat = s390x_compat;
		break;
	default:
		break;
	}
	for (size_t i = 0; compat[i]; i++) {
		int r = seccomp_arch_add(ctx, compat[i]);

		if (r < 0 && r != -EEXIST)
			return r;
	}
	return 0;
}

static int add_rule(scmp_filter_ctx ctx, uint32_t action, const char *name, unsigned n,
		    const struct scmp_arg_cmp *cmp, struct berth_error *err)
{
	int nr = seccomp_syscall_resolve_name(name);
	int r;

	if (nr == __NR_SCMP_ERROR)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "unknown system call \"%s\"", name);
	r = seccomp_rule_add_array(ctx, action, nr, n, cmp);
	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL,
				       "adding a seccomp rule for \"%s\": %s", name, strerror(-r));
	return 0;
}

/* umount2(MNT_FORCE) is refused: a forced unmount in a container could pull a
 * filesystem from under the host. */
static int refuse_force_umount(scmp_filter_ctx ctx, struct berth_error *err)
{
	const struct scmp_arg_cmp force = SCMP_A1(SCMP_CMP_MASKED_EQ, MNT_FORCE, MNT_FORCE);

	return add_rule(ctx, SCMP_ACT_ERRNO(EACCES), "umount2", 1, &force, err);
}

/* A seccomp user-notification listener installed by the container would let it
 * answer its own syscalls; LXD refuses the flag, so do we. */
static int refuse_new_listener(scmp_filter_ctx ctx, struct berth_error *err)
{
	const struct scmp_arg_cmp cmp[] = {
		SCMP_A0(SCMP_CMP_EQ, SECCOMP_SET_MODE_FILTER, 0),
		SCMP_A1(SCMP_CMP_MASKED_EQ, SECCOMP_FILTER_FLAG_NEW_LISTENER,
			SECCOMP_FILTER_FLAG_NEW_LISTENER),
	};

	return add_rule(ctx, SCMP_ACT_ERRNO(EINVAL), "seccomp", ARRAY_SIZE(cmp), cmp, err);
}

static int deny_names(scmp_filter_ctx ctx, const char *const *names, struct berth_error *err)
{
	for (size_t i = 0; names && names[i]; i++) {
		int r = add_rule(ctx, SCMP_ACT_ERRNO(ENOSYS), names[i], 0, NULL, err);

		if (r < 0)
			return r;
	}
	return 0;
}

/* Allow `name`, keeping the refusals of forced unmounts and notify listeners that
 * deny mode has: the allow rules for those two carry conditions. */
static int allow_name(scmp_filter_ctx ctx, const char *name, struct berth_error *err)
{
	int r;

	if (streq(name, "umount2")) {
		const struct scmp_arg_cmp plain = SCMP_A1(SCMP_CMP_MASKED_EQ, MNT_FORCE, 0);

		r = add_rule(ctx, SCMP_ACT_ALLOW, name, 1, &plain, err);
		return r < 0 ? r : refuse_force_umount(ctx, err);
	}
	if (streq(name, "seccomp")) {
		const struct scmp_arg_cmp other_op = SCMP_A0(SCMP_CMP_NE, SECCOMP_SET_MODE_FILTER,
							     0);
		const struct scmp_arg_cmp no_listener =
			SCMP_A1(SCMP_CMP_MASKED_EQ, SECCOMP_FILTER_FLAG_NEW_LISTENER, 0);

		r = add_rule(ctx, SCMP_ACT_ALLOW, name, 1, &other_op, err);
		if (r >= 0)
			r = add_rule(ctx, SCMP_ACT_ALLOW, name, 1, &no_listener, err);
		return r < 0 ? r : refuse_new_listener(ctx, err);
	}
	return add_rule(ctx, SCMP_ACT_ALLOW, name, 0, NULL, err);
}

static int build_allow(scmp_filter_ctx ctx, const struct runtime_seccomp_policy *p,
		       struct berth_error *err)
{
	int r;

	for (size_t i = 0; p->allow[i]; i++) {
		r = allow_name(ctx, p->allow[i], err);
		if (r < 0)
			return r;
	}
	for (size_t i = 0; allow_always[i]; i++) {
		r = add_rule(ctx, SCMP_ACT_ALLOW, allow_always[i], 0, NULL, err);
		if (r < 0)
			return r;
	}
	return 0;
}

static int build_deny(scmp_filter_ctx ctx, const struct runtime_seccomp_policy *p,
		      struct berth_error *err)
{
	int r;

	if (p->deny_default) {
		r = deny_names(ctx, default_deny, err);
		if (r >= 0)
			r = refuse_force_umount(ctx, err);
		if (r >= 0)
			r = refuse_new_listener(ctx, err);
		if (r < 0)
			return r;
	}
	return deny_names(ctx, (const char *const *)p->deny, err);
}

/* The libseccomp context for `p` into *ret, or NULL when there is nothing to filter. */
static int build_ctx(const struct runtime_seccomp_policy *p, scmp_filter_ctx *ret,
		     struct berth_error *err)
{
	_cleanup_(seccomp_releasep) scmp_filter_ctx ctx = NULL;
	bool allow_mode = p->allow != NULL;
	int r;

	*ret = NULL;
	r = runtime_seccomp_validate(p, err);
	if (r < 0)
		return r;
	if (!allow_mode && !p->deny_default && !(p->deny && p->deny[0]))
		return 0; /* nothing to filter: no filter at all, as LXD */

	ctx = seccomp_init(allow_mode ? SCMP_ACT_ERRNO(ENOSYS) : SCMP_ACT_ALLOW);
	if (!ctx)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL,
				       "creating the seccomp filter failed");
	/* Containers keep setuid programs working: the caller has CAP_SYS_ADMIN in its
	 * namespace or has set no_new_privs itself; libseccomp must not set it. */
	r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL,
				       "configuring the seccomp filter: %s", strerror(-r));
	r = add_compat_arches(ctx);
	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL,
				       "adding compat architectures to the seccomp filter: %s",
				       strerror(-r));

	r = allow_mode ? build_allow(ctx, p, err) : build_deny(ctx, p, err);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(ctx);
	return 0;
}

int runtime_seccomp_load(const struct runtime_seccomp_policy *p, struct berth_error *err)
{
	_cleanup_(seccomp_releasep) scmp_filter_ctx ctx = NULL;
	int r = build_ctx(p, &ctx, err);

	if (r < 0 || !ctx)
		return r;
	r = seccomp_load(ctx);
	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "loading the seccomp filter: %s",
				       strerror(-r));
	return 0;
}

int runtime_seccomp_compile(const struct runtime_seccomp_policy *p,
			    struct runtime_seccomp_prog *ret, struct berth_error *err)
{
	_cleanup_(seccomp_releasep) scmp_filter_ctx ctx = NULL;
	_cleanup_close_ int fd = -EBADF;
	struct stat st;
	void *insns;
	int r = build_ctx(p, &ctx, err);

	*ret = (struct runtime_seccomp_prog){0};
	if (r < 0 || !ctx)
		return r;
	/* libseccomp 2.5 exports the program to an fd only */
	fd = memfd_create("berth-seccomp", MFD_CLOEXEC);
	if (fd < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "memfd_create: %m");
	r = seccomp_export_bpf(ctx, fd);
	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL,
				       "compiling the seccomp filter: %s", strerror(-r));
	if (fstat(fd, &st) < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "fstat: %m");
	if (st.st_size <= 0 || st.st_size % (off_t)sizeof(struct sock_filter) != 0 ||
	    st.st_size / (off_t)sizeof(struct sock_filter) > BPF_MAXINSNS)
		return berth_error_set(err, -EINVAL, BERTH_ERR_INTERNAL,
				       "the seccomp filter has %lld bytes", (long long)st.st_size);
	insns = malloc((size_t)st.st_size);
	if (!insns)
		return -ENOMEM;
	if (pread(fd, insns, (size_t)st.st_size, 0) != st.st_size) {
		free(insns);
		return berth_error_set(err, -EIO, BERTH_ERR_INTERNAL,
				       "reading the seccomp filter back");
	}
	ret->insns = insns;
	ret->len = (unsigned short)(st.st_size / (off_t)sizeof(struct sock_filter));
	return 0;
}

int runtime_seccomp_install(const struct runtime_seccomp_prog *prog, struct berth_error *err)
{
	struct sock_fprog fp = {.len = prog->len, .filter = prog->insns};

	if (!prog->len)
		return 0;
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &fp) < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL,
				       "loading the seccomp filter: %m");
	return 0;
}

void runtime_seccomp_prog_release(struct runtime_seccomp_prog *prog)
{
	free(prog->insns);
	*prog = (struct runtime_seccomp_prog){0};
}
