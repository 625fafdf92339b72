/* daemon/vm/host.c: the VM host probe (see host.h). Every path goes through the `root`
 * prefix so that tests can point it at a fake tree. */
#include "daemon/vm/host.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <linux/kvm.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#include "lib/spawn.h"
#include "lib/util.h"

/* The KVM API every kernel since 2.6.22 speaks. */
#define KVM_API 12
#define QEMU_PROBE_TIMEOUT_MS 10000

/* OVMF code/vars pairs, best first: Debian 12's 4 MiB builds, then the 2 MiB ones. */
static const char *const ovmf_pairs[][2] = {
	{"OVMF_CODE_4M.fd", "OVMF_VARS_4M.fd"},
	{"OVMF_CODE.fd", "OVMF_VARS.fd"},
};
/* The same with Microsoft's keys enrolled in the variables: secure boot. */
static const char *const ovmf_sb_pairs[][2] = {
	{"OVMF_CODE_4M.ms.fd", "OVMF_VARS_4M.ms.fd"},
	{"OVMF_CODE.ms.fd", "OVMF_VARS.ms.fd"},
};
#define OVMF_DIR "/usr/share/OVMF"

/* virtiofsd outside the PATH: Debian 12's package, older QEMU packages. */
static const char *const virtiofsd_dirs[] = {"/usr/libexec", "/usr/lib/qemu"};

static const char *root_of(const struct vm_host_where *w)
{
	return w && w->root ? w->root : "";
}

static bool executable(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

/* `name` (or a path) under `root`, in BERTH_SPAWN_PATH's directories then `extra`. */
static int find_program(const char *root, const char *name, const char *const *extra,
			size_t n_extra, char **ret)
{
	_cleanup_free_ char *dirs = strdup(BERTH_SPAWN_PATH);
	char *save = NULL;

	if (!dirs)
		return -ENOMEM;
	if (strchr(name, '/')) {
		char *p = berth_strdup_printf("%s%s", root, name);

		if (!p)
			return -ENOMEM;
		if (executable(p)) {
			*ret = p;
			return 0;
		}
		free(p);
		return -ENOENT;
	}
	for (char *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
		_cleanup_free_ char *p = berth_strdup_printf("%s%s/%s", root, d, name);

		if (!p)
			return -ENOMEM;
		if (executable(p)) {
			*ret = TAKE_PTR(p);
			return 0;
		}
	}
	for (size_t i = 0; i < n_extra; i++) {
		_cleanup_free_ char *p = berth_strdup_printf("%s%s/%s", root, extra[i], name);

		if (!p)
			return -ENOMEM;
		if (executable(p)) {
			*ret = TAKE_PTR(p);
			return 0;
		}
	}
	return -ENOENT;
}

/* Record why `check` failed; -ENOMEM only. */
_printf_(3, 4) static int missing(struct vm_host *h, enum vm_host_check check, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = vasprintf(&h->missing[check], fmt, ap);
	va_end(ap);
	if (r < 0) {
		h->missing[check] = NULL;
		return -ENOMEM;
	}
	return 0;
}

/* Run QEMU with `arg` (and `arg2` when not NULL); its stdout in *ret, NULL when it could
 * not run or failed. */
static int qemu_output(const char *qemu, const char *arg, const char *arg2, char **ret)
{
	struct berth_spawn s = {
		.argv = (const char *const[]){qemu, arg, arg2, NULL},
		.timeout_ms = QEMU_PROBE_TIMEOUT_MS,
	};
	int r;

	r = berth_spawn_run(&s, NULL);
	*ret = r == 0 ? TAKE_PTR(s.out) : NULL;
	berth_spawn_release(&s);
	return r == -ENOMEM ? r : 0;
}

/* "QEMU emulator version 7.2.22 (Debian ...)" -> "7.2.22". */
static char *parse_version(const char *out)
{
	const char *p = out ? strstr(out, "version ") : NULL;

	if (!p)
		return NULL;
	p += strlen("version ");
	return strndup(p, strspn(p, "0123456789."));
}

static int probe_qemu(const struct vm_host_where *w, struct vm_host *h)
{
	const char *name = w && w->qemu ? w->qemu : "qemu-system-x86_64";
	_cleanup_free_ char *version = NULL, *devices = NULL;
	int r = find_program(root_of(w), name, NULL, 0, &h->qemu);

	if (r == -ENOENT)
		return missing(h, VM_HOST_QEMU, "%s not found: install Debian's qemu-system-x86",
			       name)
			       ?: missing(h, VM_HOST_9P, "No QEMU to provide 9p");
	if (r < 0)
		return r;
	r = qemu_output(h->qemu, "-version", NULL, &version);
	if (r == 0)
		r = qemu_output(h->qemu, "-device", "help", &devices);
	if (r < 0)
		return r;
	h->qemu_version = parse_version(version);
	if (!h->qemu_version)
		return missing(h, VM_HOST_QEMU, "%s does not run or tell its version", h->qemu)
			       ?: missing(h, VM_HOST_9P, "No QEMU to provide 9p");
	h->ninep = devices && strstr(devices, "\"virtio-9p-pci\"");
	if (!h->ninep)
		return missing(h, VM_HOST_9P,
			       "%s lacks virtio-9p-pci: config drives need Debian's "
			       "qemu-system-x86 (built with 9p) or virtiofsd",
			       h->qemu);
	return 0;
}

static int probe_kvm(const char *root, struct vm_host *h)
{
	_cleanup_free_ char *path = berth_strdup_printf("%s/dev/kvm", root);
	_cleanup_close_ int fd = -EBADF;
	int api;

	if (!path)
		return -ENOMEM;
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT)
		return missing(h, VM_HOST_KVM,
			       "%s missing: VMs run under TCG (emulated, many times slower); load "
			       "kvm_intel or kvm_amd on a CPU with virtualization enabled",
			       path);
	if (fd < 0)
		return missing(h, VM_HOST_KVM, "%s cannot be opened (%s): VMs run under TCG", path,
			       strerror(errno));
	api = ioctl(fd, KVM_GET_API_VERSION, 0);
	if (api != KVM_API)
		return missing(h, VM_HOST_KVM,
			       "%s does not answer as KVM (API %d, expected %d): VMs run under TCG",
			       path, api, KVM_API);
	h->kvm = true;
	return 0;
}

static int probe_vsock(const char *root, struct vm_host *h)
{
	_cleanup_free_ char *path = berth_strdup_printf("%s/dev/vhost-vsock", root);
	_cleanup_close_ int fd = -EBADF;

	if (!path)
		return -ENOMEM;
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return missing(h, VM_HOST_VSOCK,
			       "%s %s: berth-agent talks over a virtio-serial port instead "
			       "(modprobe vhost_vsock for vsock)",
			       path, errno == ENOENT ? "missing" : "cannot be opened");
	h->vhost_vsock = true;
	return 0;
}

/* The first pair of `pairs` whose both files exist. */
static int probe_pair(const char *root, const char *const (*pairs)[2], size_t n, char **ret_code,
		      char **ret_vars)
{
	for (size_t i = 0; i < n; i++) {
		_cleanup_free_ char *code = berth_strdup_printf("%s" OVMF_DIR "/%s", root,
								pairs[i][0]);
		_cleanup_free_ char *vars = berth_strdup_printf("%s" OVMF_DIR "/%s", root,
								pairs[i][1]);

		if (!code || !vars)
			return -ENOMEM;
		if (access(code, R_OK) == 0 && access(vars, R_OK) == 0) {
			*ret_code = TAKE_PTR(code);
			*ret_vars = TAKE_PTR(vars);
			return 0;
		}
	}
	return -ENOENT;
}

static int probe_ovmf(const char *root, struct vm_host *h)
{
	int r = probe_pair(root, ovmf_pairs, ARRAY_SIZE(ovmf_pairs), &h->ovmf_code, &h->ovmf_vars);

	if (r == -ENOENT)
		r = missing(h, VM_HOST_OVMF,
			    "%s" OVMF_DIR "/%s and %s missing: install Debian's ovmf (UEFI "
			    "firmware)",
			    root, ovmf_pairs[0][0], ovmf_pairs[0][1]);
	if (r < 0)
		return r;
	r = probe_pair(root, ovmf_sb_pairs, ARRAY_SIZE(ovmf_sb_pairs), &h->ovmf_sb_code,
		       &h->ovmf_sb_vars);
	if (r == -ENOENT)
		r = missing(h, VM_HOST_OVMF_SECUREBOOT,
			    "%s" OVMF_DIR "/%s and %s missing: no secure boot; install Debian's "
			    "ovmf",
			    root, ovmf_sb_pairs[0][0], ovmf_sb_pairs[0][1]);
	return r;
}

static int probe_tools(const char *root, struct vm_host *h)
{
	int r = find_program(root, "qemu-img", NULL, 0, &h->qemu_img);

	if (r == -ENOENT)
		r = missing(h, VM_HOST_QEMU_IMG, "qemu-img not found: install Debian's qemu-utils");
	if (r < 0)
		return r;
	r = find_program(root, "virtiofsd", virtiofsd_dirs, ARRAY_SIZE(virtiofsd_dirs),
			 &h->virtiofsd);
	if (r == -ENOENT)
		r = missing(h, VM_HOST_VIRTIOFSD,
			    "virtiofsd not found: shares use 9p; install Debian's virtiofsd");
	return r;
}

int vm_host_probe(const struct vm_host_where *where, struct vm_host *ret)
{
	const char *root = root_of(where);

	*ret = (struct vm_host){0};
	return probe_qemu(where, ret) ?: probe_kvm(root, ret) ?: probe_vsock(root, ret)
					?: probe_ovmf(root, ret) ?: probe_tools(root, ret);
}

static pthread_once_t this_host_once = PTHREAD_ONCE_INIT;
static struct vm_host this_host;
static bool this_host_ok;

static void this_host_probe(void)
{
	struct vm_host_where w = {.qemu = getenv("BERTH_QEMU")};

	this_host_ok = vm_host_probe(&w, &this_host) >= 0;
}

const struct vm_host *vm_host_get(void)
{
	pthread_once(&this_host_once, this_host_probe);
	return this_host_ok ? &this_host : NULL;
}

const char *vm_host_accelerator(const struct vm_host *h)
{
	return h->kvm ? "kvm" : "tcg";
}

bool vm_host_usable(const struct vm_host *h)
{
	return h->qemu && h->qemu_version && h->qemu_img && h->ovmf_code;
}

int vm_host_require(const struct vm_host *h, struct berth_error *err)
{
	static const enum vm_host_check needed[] = {VM_HOST_QEMU, VM_HOST_QEMU_IMG, VM_HOST_OVMF};
	char msg[1024] = "";
	size_t len = 0;

	if (!h)
		return -ENOMEM;
	if (vm_host_usable(h))
		return 0;
	for (size_t i = 0; i < sizeof(needed) / sizeof(needed[0]); i++) {
		const char *m = h->missing[needed[i]];

		if (m && len < sizeof(msg))
			len += (size_t)snprintf(msg + len, sizeof(msg) - len, "%s%s",
						len ? "; " : "", m);
	}
	return berth_error_set(err, -EOPNOTSUPP, BERTH_ERR_BAD_REQUEST,
			       "This host cannot run virtual machines: %s",
			       len ? msg : "QEMU is missing");
}

static json_t *string_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

static const char *const check_names[VM_HOST_CHECK_MAX] = {
	[VM_HOST_QEMU] = "qemu",
	[VM_HOST_QEMU_IMG] = "qemu_img",
	[VM_HOST_KVM] = "kvm",
	[VM_HOST_VSOCK] = "vhost_vsock",
	[VM_HOST_OVMF] = "ovmf",
	[VM_HOST_OVMF_SECUREBOOT] = "ovmf_secureboot",
	[VM_HOST_VIRTIOFSD] = "virtiofsd",
	[VM_HOST_9P] = "9p",
};

json_t *vm_host_to_json(const struct vm_host *h)
{
	json_auto_t *missing_list = json_object();
	json_t *o;

	if (!missing_list)
		return NULL;
	for (int i = 0; i < VM_HOST_CHECK_MAX; i++)
		if (h->missing[i] &&
		    json_object_set_new(missing_list, check_names[i], json_string(h->missing[i])))
			return NULL;
	o = json_pack("{s:b, s:o, s:o, s:o, s:s, s:b, s:b, s:s, s:{s:o, s:o}, s:{s:o, s:o}, "
		      "s:o, s:b, s:O}",
		      "usable", vm_host_usable(h), "qemu", string_or_null(h->qemu), "qemu_version",
		      string_or_null(h->qemu_version), "qemu_img", string_or_null(h->qemu_img),
		      "accelerator", vm_host_accelerator(h), "kvm", h->kvm, "vhost_vsock",
		      h->vhost_vsock, "agent_transport", h->vhost_vsock ? "vsock" : "virtio-serial",
		      "ovmf", "code", string_or_null(h->ovmf_code), "vars",
		      string_or_null(h->ovmf_vars), "ovmf_secureboot", "code",
		      string_or_null(h->ovmf_sb_code), "vars", string_or_null(h->ovmf_sb_vars),
		      "virtiofsd", string_or_null(h->virtiofsd), "9p", h->ninep, "missing",
		      missing_list);
	return o;
}

void vm_host_release(struct vm_host *h)
{
	if (!h)
		return;
	free(h->qemu);
	free(h->qemu_version);
	free(h->qemu_img);
	free(h->ovmf_code);
	free(h->ovmf_vars);
	free(h->ovmf_sb_code);
	free(h->ovmf_sb_vars);
	free(h->virtiofsd);
	for (int i = 0; i < VM_HOST_CHECK_MAX; i++)
		free(h->missing[i]);
	*h = (struct vm_host){0};
}
