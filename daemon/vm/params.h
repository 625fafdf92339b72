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
