/* daemon/vm/params.h: what a VM's QEMU takes from its expanded instance object
 * (expanded_config, expanded_devices): CPUs and memory, the root disk's size, a stable
 * SMBIOS UUID. Pure functions (doc/vm.md, "The VM driver"), and the growing of a disk
 * file to that size. */
#pragma once

#include <jansson.h>
#include <stdint.h>

#include "lib/error.h"

/* LXD's defaults for VMs. */
#define VM_DEFAULT_CPUS 1u
#define VM_DEFAULT_MEMORY (1024ull << 20)
#define VM_DEFAULT_ROOT_SIZE (10ull << 30)

/* limits.cpu (a count, 1 to 255; LXD's CPU pinning lists are refused) and limits.memory
 * (LXD's sizes, rounded down to whole MiB as QEMU counts, at least 32MiB). -EINVAL with
 * a 400 naming the key. */
int vm_params_limits(const json_t *inst, unsigned *ret_cpus, uint64_t *ret_memory,
		     struct berth_error *err);

/* The "size" of the root disk device (type disk, path /), or the default. */
int vm_params_root_size(const json_t *inst, uint64_t *ret, struct berth_error *err);

/* Grow the disk image `path` (sparse: no block written) to `size` bytes when it is
 * smaller; never shrink it. -ENOENT (the message says the instance `name` has no disk
 * image: made from a container image?) when it does not exist. */
int vm_disk_grow(const char *path, uint64_t size, const char *name, struct berth_error *err);

/* A UUID (version 4 layout) derived from `project` and `name`: the same VM keeps its
 * SMBIOS identity across starts, two VMs never share one. */
void vm_params_uuid(const char *project, const char *name, char buf[static 37]);

/* Direct kernel boot (doc/vm.md, "Direct kernel boot"): the image's boot.* properties,
 * copied into the instance's config as image.boot.kernel, .initrd, .cmdline and
 * .root_partition. All borrowed from `inst`. */
struct vm_direct_boot {
	const char *kernel;  /* a path in the guest's root file system */
	const char *initrd;  /* may be NULL */
	const char *cmdline; /* may be NULL */
	unsigned partition;  /* 1-based GPT partition holding the root file system */
};

/* 1 with *ret filled when the instance boots its image's kernel directly: the image
 * names a kernel and a root partition (1 to 128), and `boot.direct` is not false;
 * 0 when it boots through firmware. -EINVAL (a 400) for a bad root partition. */
int vm_params_direct_boot(const json_t *inst, struct vm_direct_boot *ret, struct berth_error *err);

/* The byte offset of GPT partition `partition` (1-based) of the raw disk `path`. -EINVAL
 * with `err` set when the disk has no GPT or no such partition. */
int vm_disk_partition_offset(const char *path, unsigned partition, uint64_t *ret,
			     struct berth_error *err);

/* Copy the regular file `guest_path` of the ext2/3/4 file system at byte `offset` of the
 * raw disk `disk` to `out` (replaced), with debugfs (e2fsprogs): the file system is read,
 * never mounted. Only ever an image's disk, never a guest's (libext2fs is not hardened
 * against a hostile file system). Its size is read first (debugfs `stat`): -EFBIG past
 * `max` bytes; -ENOENT (a 400 naming the path) when there is no such regular file.
 * `out` is removed on any failure. */
int vm_disk_extract(const char *disk, uint64_t offset, const char *guest_path, const char *out,
		    uint64_t max, struct berth_error *err);

/* The most a kernel or initrd copied out of an image may weigh. */
#define VM_BOOT_FILE_MAX (256ull << 20)

/* The kernel and initrd of a VM image, copied beside root.img in the image volume `dir`
 * when it is unpacked (instances cloned from it carry them). */
#define VM_BOOT_KERNEL "boot.kernel"
#define VM_BOOT_INITRD "boot.initrd"

/* Copy the kernel and initrd that the image's `properties` (metadata.yaml's: boot.kernel,
 * boot.initrd, boot.root_partition) name out of `dir`/root.img into `dir`/VM_BOOT_KERNEL
 * and VM_BOOT_INITRD. 0 when the properties name no kernel (nothing done); on failure
 * neither file is left. */
int vm_boot_files_extract(const char *dir, const json_t *properties, struct berth_error *err);
