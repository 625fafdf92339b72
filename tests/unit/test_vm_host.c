/* tests/unit/test_vm_host.c: daemon/vm/host: the VM host probe on fake roots (nothing
 * there; everything there, with a fake QEMU script; partial and broken pieces: the 2 MiB
 * OVMF pair, a QEMU without 9p, one that fails, a qemu-img that is not executable, a
 * /dev/kvm that is not KVM) and on this host, with its JSON rendering. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/kvm.h>

#include "daemon/vm/host.h"
#include "lib/json.h"
#include "lib/spawn.h"
#include "lib/util.h"

static char root[64];

static int setup(void **state)
{
	strcpy(root, "/tmp/berth-test-vmhost-XXXXXX");
	return mkdtemp(root) ? 0 : -1;
}

static int teardown(void **state)
{
	struct berth_spawn s = {.argv = (const char *const[]){"rm", "-rf", root, NULL}};
	int r = berth_spawn_run(&s, NULL);

	berth_spawn_release(&s);
	return r;
}

/* root/REL with `content` and `mode`, directories made. */
static void put(const char *rel, const char *content, int mode)
{
	_cleanup_free_ char *path = berth_strdup_printf("%s/%s", root, rel);
	_cleanup_free_ char *dir = strdup(path);

	*strrchr(dir, '/') = '\0';
	assert_int_equal(berth_mkdir_p(dir, 0755), 0);
	assert_int_equal(berth_write_file_replace(path, content, strlen(content), mode), 0);
	assert_int_equal(chmod(path, (mode_t)mode), 0);
}

static void gone(const char *rel)
{
	_cleanup_free_ char *path = berth_strdup_printf("%s/%s", root, rel);

	assert_int_equal(unlink(path), 0);
}

static char *under_root(const char *rel)
{
	return berth_strdup_printf("%s%s", root, rel);
}

#define FAKE_QEMU                                                                                  \
	"#!/bin/sh\n"                                                                              \
	"case \"$1\" in\n"                                                                         \
	"-version) echo 'QEMU emulator version 8.1.3 (fake)'; echo 'Copyright';;\n"                \
	"-device) echo 'Storage devices:'; echo 'name \"virtio-9p-pci\", bus PCI';;\n"             \
	"*) exit 1;;\n"                                                                            \
	"esac\n"

static void assert_missing(const struct vm_host *h, enum vm_host_check c, const char *needle)
{
	if (!h->missing[c])
		fail_msg("check %d passed, expected \"%s\"", c, needle);
	if (!strstr(h->missing[c], needle))
		fail_msg("\"%s\" lacks \"%s\"", h->missing[c], needle);
}

static void test_empty_root(void **state)
{
	struct vm_host h;
	struct vm_host_where w = {.root = root};
	_cleanup_free_ char *kvm = under_root("/dev/kvm missing: VMs run under TCG");
	json_t *j;

	assert_int_equal(vm_host_probe(&w, &h), 0);
	assert_null(h.qemu);
	assert_null(h.qemu_version);
	assert_null(h.qemu_img);
	assert_false(h.kvm);
	assert_false(h.vhost_vsock);
	assert_null(h.ovmf_code);
	assert_null(h.ovmf_sb_code);
	assert_null(h.virtiofsd);
	assert_false(h.ninep);
	assert_false(vm_host_usable(&h));
	assert_string_equal(vm_host_accelerator(&h), "tcg");
	assert_string_equal(h.missing[VM_HOST_QEMU],
			    "qemu-system-x86_64 not found: install Debian's qemu-system-x86");
	assert_string_equal(h.missing[VM_HOST_QEMU_IMG],
			    "qemu-img not found: install Debian's qemu-utils");
	assert_missing(&h, VM_HOST_KVM, kvm);
	assert_missing(&h, VM_HOST_VSOCK,
		       "/dev/vhost-vsock missing: berth-agent talks over a "
		       "virtio-serial port");
	assert_missing(&h, VM_HOST_OVMF,
		       "/usr/share/OVMF/OVMF_CODE_4M.fd and OVMF_VARS_4M.fd "
		       "missing: install Debian's ovmf");
	assert_missing(&h, VM_HOST_OVMF_SECUREBOOT,
		       "OVMF_CODE_4M.ms.fd and OVMF_VARS_4M.ms.fd "
		       "missing: no secure boot");
	assert_string_equal(h.missing[VM_HOST_VIRTIOFSD],
			    "virtiofsd not found: shares use 9p; install Debian's virtiofsd");
	assert_missing(&h, VM_HOST_9P, "No QEMU");

	j = vm_host_to_json(&h);
	assert_non_null(j);
	assert_false(berth_json_bool(j, "usable", true));
	assert_true(json_is_null(json_object_get(j, "qemu")));
	assert_string_equal(berth_json_string(j, "accelerator"), "tcg");
	assert_string_equal(berth_json_string(j, "agent_transport"), "virtio-serial");
	assert_int_equal(json_object_size(json_object_get(j, "missing")), VM_HOST_CHECK_MAX);
	assert_string_equal(berth_json_string(json_object_get(j, "missing"), "qemu_img"),
			    h.missing[VM_HOST_QEMU_IMG]);
	json_decref(j);
	vm_host_release(&h);
}

static void full_root(void)
{
	put("usr/bin/qemu-system-x86_64", FAKE_QEMU, 0755);
	put("usr/bin/qemu-img", "#!/bin/sh\n", 0755);
	put("usr/libexec/virtiofsd", "#!/bin/sh\n", 0755);
	put("usr/share/OVMF/OVMF_CODE_4M.fd", "c", 0644);
	put("usr/share/OVMF/OVMF_VARS_4M.fd", "v", 0644);
	put("usr/share/OVMF/OVMF_CODE_4M.ms.fd", "c", 0644);
	put("usr/share/OVMF/OVMF_VARS_4M.ms.fd", "v", 0644);
	put("dev/vhost-vsock", "", 0600);
	put("dev/kvm", "", 0600); /* a plain file: opens, but is not KVM */
}

static void assert_path(const char *got, const char *rel)
{
	_cleanup_free_ char *want = under_root(rel);

	assert_non_null(got);
	assert_string_equal(got, want);
}

static void test_full_root(void **state)
{
	struct vm_host h;
	struct vm_host_where w = {.root = root};
	json_t *j;

	full_root();
	assert_int_equal(vm_host_probe(&w, &h), 0);
	assert_path(h.qemu, "/usr/bin/qemu-system-x86_64");
	assert_string_equal(h.qemu_version, "8.1.3");
	assert_true(h.ninep);
	assert_path(h.qemu_img, "/usr/bin/qemu-img");
	assert_path(h.virtiofsd, "/usr/libexec/virtiofsd");
	assert_path(h.ovmf_code, "/usr/share/OVMF/OVMF_CODE_4M.fd");
	assert_path(h.ovmf_vars, "/usr/share/OVMF/OVMF_VARS_4M.fd");
	assert_path(h.ovmf_sb_code, "/usr/share/OVMF/OVMF_CODE_4M.ms.fd");
	assert_path(h.ovmf_sb_vars, "/usr/share/OVMF/OVMF_VARS_4M.ms.fd");
	assert_true(h.vhost_vsock);
	assert_false(h.kvm);
	assert_missing(&h, VM_HOST_KVM, "/dev/kvm does not answer as KVM (API -1, expected 12)");
	for (int c = 0; c < VM_HOST_CHECK_MAX; c++)
		if (c != VM_HOST_KVM && h.missing[c])
			fail_msg("unexpected: %s", h.missing[c]);
	assert_true(vm_host_usable(&h));

	j = vm_host_to_json(&h);
	assert_true(berth_json_bool(j, "usable", false));
	assert_string_equal(berth_json_string(j, "qemu_version"), "8.1.3");
	assert_string_equal(berth_json_string(j, "agent_transport"), "vsock");
	assert_true(berth_json_bool(j, "9p", false));
	assert_true(berth_json_bool(j, "vhost_vsock", false));
	assert_false(berth_json_bool(j, "kvm", true));
	assert_string_equal(berth_json_string(json_object_get(j, "ovmf_secureboot"), "vars"),
			    h.ovmf_sb_vars);
	assert_int_equal(json_object_size(json_object_get(j, "missing")), 1);
	json_decref(j);
	vm_host_release(&h);
}

static void test_partial_root(void **state)
{
	struct vm_host h;
	struct vm_host_where w = {.root = root, .qemu = "qemu-custom"};

	/* no 4 MiB vars: the 2 MiB pair; no 9p in this QEMU; virtiofsd of older QEMUs; a
	 * qemu-img that cannot run */
	full_root();
	gone("usr/share/OVMF/OVMF_VARS_4M.fd");
	gone("usr/share/OVMF/OVMF_VARS_4M.ms.fd");
	gone("usr/libexec/virtiofsd");
	gone("dev/vhost-vsock");
	put("usr/share/OVMF/OVMF_CODE.fd", "c", 0644);
	put("usr/share/OVMF/OVMF_VARS.fd", "v", 0644);
	put("usr/lib/qemu/virtiofsd", "#!/bin/sh\n", 0755);
	put("usr/bin/qemu-img", "#!/bin/sh\n", 0644);
	put("usr/local/bin/qemu-custom", "#!/bin/sh\necho 'QEMU emulator version 6.2.0'\n", 0755);

	assert_int_equal(vm_host_probe(&w, &h), 0);
	assert_path(h.qemu, "/usr/local/bin/qemu-custom");
	assert_string_equal(h.qemu_version, "6.2.0");
	assert_false(h.ninep);
	assert_missing(&h, VM_HOST_9P, "qemu-custom lacks virtio-9p-pci");
	assert_path(h.ovmf_code, "/usr/share/OVMF/OVMF_CODE.fd");
	assert_path(h.ovmf_vars, "/usr/share/OVMF/OVMF_VARS.fd");
	assert_null(h.ovmf_sb_code);
	assert_missing(&h, VM_HOST_OVMF_SECUREBOOT, "no secure boot");
	assert_path(h.virtiofsd, "/usr/lib/qemu/virtiofsd");
	assert_null(h.qemu_img);
	assert_missing(&h, VM_HOST_QEMU_IMG, "qemu-utils");
	assert_false(h.vhost_vsock);
	assert_false(vm_host_usable(&h));
	vm_host_release(&h);

	/* a /dev/kvm that cannot be opened */
	gone("dev/kvm");
	{
		_cleanup_free_ char *kvm = under_root("/dev/kvm");

		assert_int_equal(mkdir(kvm, 0700), 0);
		assert_int_equal(vm_host_probe(&w, &h), 0);
		rmdir(kvm);
	}
	assert_missing(&h, VM_HOST_KVM,
		       "/dev/kvm cannot be opened (Is a directory): VMs run "
		       "under TCG");
	vm_host_release(&h);

	/* a QEMU that fails to run; one named by path */
	put("usr/local/bin/qemu-custom", "#!/bin/sh\nexit 3\n", 0755);
	assert_int_equal(vm_host_probe(&w, &h), 0);
	assert_null(h.qemu_version);
	assert_missing(&h, VM_HOST_QEMU, "qemu-custom does not run or tell its version");
	vm_host_release(&h);
	w.qemu = "/usr/bin/qemu-system-x86_64";
	assert_int_equal(vm_host_probe(&w, &h), 0);
	assert_string_equal(h.qemu_version, "8.1.3");
	vm_host_release(&h);
	w.qemu = "/opt/none/qemu";
	assert_int_equal(vm_host_probe(&w, &h), 0);
	assert_missing(&h, VM_HOST_QEMU, "/opt/none/qemu not found");
	vm_host_release(&h);
}

/* This host: what the test machines have (Debian 12 with scripts/deps.sh's packages). */
static void test_this_host(void **state)
{
	struct vm_host h;
	_cleanup_free_ char *text = NULL;
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	bool kvm = fd >= 0 && ioctl(fd, KVM_GET_API_VERSION, 0) == 12;
	json_t *j;

	if (fd >= 0)
		close(fd);
	assert_int_equal(vm_host_probe(NULL, &h), 0);
	assert_non_null(h.qemu);
	assert_true(berth_endswith(h.qemu, "/qemu-system-x86_64"));
	assert_non_null(h.qemu_version);
	assert_true(h.ninep);
	assert_non_null(h.qemu_img);
	assert_string_equal(h.ovmf_code, "/usr/share/OVMF/OVMF_CODE_4M.fd");
	assert_string_equal(h.ovmf_vars, "/usr/share/OVMF/OVMF_VARS_4M.fd");
	assert_string_equal(h.ovmf_sb_code, "/usr/share/OVMF/OVMF_CODE_4M.ms.fd");
	assert_string_equal(h.ovmf_sb_vars, "/usr/share/OVMF/OVMF_VARS_4M.ms.fd");
	assert_int_equal(h.kvm, kvm);
	assert_string_equal(vm_host_accelerator(&h), kvm ? "kvm" : "tcg");
	assert_int_equal(h.vhost_vsock, access("/dev/vhost-vsock", F_OK) == 0);
	assert_true(vm_host_usable(&h));
	j = vm_host_to_json(&h);
	text = berth_json_dumps(j);
	print_message("# %s\n", text);
	json_decref(j);
	vm_host_release(&h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_empty_root, setup, teardown),
		cmocka_unit_test_setup_teardown(test_full_root, setup, teardown),
		cmocka_unit_test_setup_teardown(test_partial_root, setup, teardown),
		cmocka_unit_test(test_this_host),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
