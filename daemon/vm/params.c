/* daemon/vm/params.c: a VM's QEMU parameters from its expanded instance (see params.h). */
#include "daemon/vm/params.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/json.h"
#include "lib/sha256.h"
#include "lib/util.h"
#include "storage/driver.h"

#define VM_MIN_MEMORY (32ull << 20)

static int parse_cpus(const char *cpu, unsigned *ret, struct berth_error *err)
{
	char *end = NULL;
	unsigned long n;

	errno = 0;
	n = strtoul(cpu, &end, 10);
	if (errno || end == cpu || *end || *cpu == '-' || *cpu == '+' || n < 1 || n > 255)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "limits.cpu \"%s\": a virtual machine takes a number of "
				       "CPUs (1 to 255)",
				       cpu);
	*ret = (unsigned)n;
	return 0;
}

int vm_params_limits(const json_t *inst, unsigned *ret_cpus, uint64_t *ret_memory,
		     struct berth_error *err)
{
	const json_t *cfg = json_object_get(inst, "expanded_config");
	const char *cpu = berth_json_string(cfg, "limits.cpu");
	const char *mem = berth_json_string(cfg, "limits.memory");
	int r;

	*ret_cpus = VM_DEFAULT_CPUS;
	*ret_memory = VM_DEFAULT_MEMORY;
	if (cpu && *cpu) {
		r = parse_cpus(cpu, ret_cpus, err);
		if (r < 0)
			return r;
	}
	if (!mem || !*mem)
		return 0;
	if (strchr(mem, '%'))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "limits.memory \"%s\": a virtual machine takes a size, "
				       "not a percentage",
				       mem);
	r = storage_parse_size(mem, "limits.memory", ret_memory, err);
	if (r < 0)
		return r;
	*ret_memory &= ~((1ull << 20) - 1);
	if (*ret_memory < VM_MIN_MEMORY)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "limits.memory \"%s\": a virtual machine needs at least "
				       "32MiB",
				       mem);
	return 0;
}

int vm_params_root_size(const json_t *inst, uint64_t *ret, struct berth_error *err)
{
	const char *key;
	json_t *dev;

	*ret = VM_DEFAULT_ROOT_SIZE;
	json_object_foreach(json_object_get(inst, "expanded_devices"), key, dev) {
		const char *type = berth_json_string(dev, "type");
		const char *path = berth_json_string(dev, "path");
		const char *size = berth_json_string(dev, "size");

		if (type && streq(type, "disk") && path && streq(path, "/") && size && *size)
			return storage_parse_size(size, "Root disk size", ret, err);
	}
	return 0;
}

int vm_disk_grow(const char *path, uint64_t size, const char *name, struct berth_error *err)
{
	struct stat st;

	if (stat(path, &st) < 0)
		return berth_error_set(err, -errno, BERTH_ERR_BAD_REQUEST,
				       "Instance \"%s\" has no disk image (%s: %m): was it made "
				       "from a virtual-machine image?",
				       name, path);
	if ((uint64_t)st.st_size < size && truncate(path, (off_t)size) < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL,
				       "Cannot grow \"%s\" to %" PRIu64 " bytes: %m", path, size);
	return 0;
}

void vm_params_uuid(const char *project, const char *name, char buf[static 37])
{
	uint8_t h[BERTH_SHA256_LEN];
	struct berth_sha256 c;

	berth_sha256_init(&c);
	berth_sha256_update(&c, project,
			    strlen(project) + 1); /* the NUL keeps "a"+"bc" != "ab"+"c" */
	berth_sha256_update(&c, name, strlen(name));
	berth_sha256_final(&c, h);
	h[6] = (uint8_t)((h[6] & 0x0f) | 0x40);
	h[8] = (uint8_t)((h[8] & 0x3f) | 0x80);
	snprintf(buf, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7], h[8], h[9], h[10], h[11], h[12],
		 h[13], h[14], h[15]);
}
