/* daemon/vm/host.h: what this host offers for virtual machines (doc/vm.md, "Host
 * detection"): QEMU and its version, KVM or TCG, vhost-vsock, OVMF (with and without
 * secure boot keys), virtiofsd, 9p in QEMU, qemu-img. Each missing piece comes with a
 * message naming it and the Debian package that brings it.
 *
 * Probing reads files, opens /dev/kvm and /dev/vhost-vsock, and runs QEMU twice (-version,
 * -device help; 0.1 to 0.2 s together on the test machines): do it once at start-up, off
 * the event loop, and keep the result. */
#pragma once

#include <jansson.h>
#include <stdbool.h>

#include "lib/error.h"

/* Where to look; every field may be NULL for the real host. */
struct vm_host_where {
	const char *root; /* prefix of every path looked at (tests: a fake root) */
	const char *qemu; /* QEMU binary's name or path, default "qemu-system-x86_64" */
};

enum vm_host_check {
	VM_HOST_QEMU,
	VM_HOST_QEMU_IMG,
	VM_HOST_KVM,
	VM_HOST_VSOCK,
	VM_HOST_OVMF,
	VM_HOST_OVMF_SECUREBOOT,
	VM_HOST_VIRTIOFSD,
	VM_HOST_9P,
	VM_HOST_CHECK_MAX,
};

struct vm_host {
	char *qemu;	    /* owned: the binary's path, NULL when missing */
	char *qemu_version; /* owned: "7.2.22", NULL when unknown */
	char *qemu_img;	    /* owned: path or NULL */
	bool kvm;	    /* /dev/kvm opens and speaks KVM API 12 */
	bool vhost_vsock;   /* /dev/vhost-vsock opens */
	char *ovmf_code;    /* owned: paths of a matching code/vars pair, or NULL */
	char *ovmf_vars;
	char *ovmf_sb_code; /* owned: the same with Microsoft's keys enrolled (secure boot) */
	char *ovmf_sb_vars;
	char *virtiofsd; /* owned: path or NULL */
	bool ninep;	 /* QEMU has virtio-9p-pci */
	/* owned: why each check failed ("... missing: install Debian's qemu-utils"), NULL
	 * where it passed */
	char *missing[VM_HOST_CHECK_MAX];
};

/* Probe into *ret (released by the caller with vm_host_release, also on failure).
 * Absent pieces are not errors: they are recorded with their message. -ENOMEM only. */
int vm_host_probe(const struct vm_host_where *where, struct vm_host *ret);

/* This host's probe, made once for the process (thread-safe), with $BERTH_QEMU as QEMU's
 * binary when set (tests point it at a missing one). NULL when out of memory. */
const struct vm_host *vm_host_get(void);

/* "kvm" or "tcg". */
const char *vm_host_accelerator(const struct vm_host *h);
/* Whether berth can run VMs here: QEMU, qemu-img (disk images) and OVMF (UEFI images)
 * are all present. KVM is not required: without it VMs run under TCG. */
bool vm_host_usable(const struct vm_host *h);

/* 0 when `h` is usable; else -EOPNOTSUPP, the message naming every missing piece ("This
 * host cannot run virtual machines: ..."); -ENOMEM when `h` is NULL. */
int vm_host_require(const struct vm_host *h, struct berth_error *err);

/* The probe as a JSON object (new reference; NULL on allocation failure), for GET /1.0's
 * environment: paths, version, accelerator, agent transport, and "missing", the list of
 * messages. */
json_t *vm_host_to_json(const struct vm_host *h);

void vm_host_release(struct vm_host *h);
