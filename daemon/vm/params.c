/* daemon/vm/params.c: a VM's QEMU parameters from its expanded instance (see params.h). */
#include "daemon/vm/params.h"

#include <endian.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/json.h"
#include "lib/macros.h"
#include "lib/sha256.h"
#include "lib/spawn.h"
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

int vm_params_direct_boot(const json_t *inst, struct vm_direct_boot *ret, struct berth_error *err)
{
	const json_t *cfg = json_object_get(inst, "expanded_config");
	const char *kernel = berth_json_string(cfg, "image.boot.kernel");
	const char *part = berth_json_string(cfg, "image.boot.root_partition");
	const char *direct = berth_json_string(cfg, "boot.direct");
	char *end = NULL;
	unsigned long n;

	if (!kernel || !*kernel || !part || !*part ||
	    (direct && (streq(direct, "false") || streq(direct, "0"))))
		return 0;
	errno = 0;
	n = strtoul(part, &end, 10);
	if (errno || *end || !isdigit((unsigned char)*part) || n < 1 || n > 128)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "image.boot.root_partition \"%s\": a GPT partition number "
				       "(1 to 128)",
				       part);
	*ret = (struct vm_direct_boot){
		.kernel = kernel,
		.initrd = berth_json_string(cfg, "image.boot.initrd"),
		.cmdline = berth_json_string(cfg, "image.boot.cmdline"),
		.partition = (unsigned)n,
	};
	if (ret->initrd && !*ret->initrd)
		ret->initrd = NULL;
	return 1;
}

static int read_at(int fd, void *buf, size_t len, uint64_t off)
{
	ssize_t n = pread(fd, buf, len, (off_t)off);

	return n == (ssize_t)len ? 0 : n < 0 ? -errno : -EIO;
}

int vm_disk_partition_offset(const char *path, unsigned partition, uint64_t *ret,
			     struct berth_error *err)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	uint8_t hdr[92], entry[48];
	uint64_t table, first;
	uint32_t count, size;
	int r;

	if (fd < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "Opening \"%s\": %m", path);
	/* GPT header at LBA 1: the entries' LBA at 72, their count at 80, size at 84. */
	r = read_at(fd, hdr, sizeof(hdr), 512);
	if (r < 0 || memcmp(hdr, "EFI PART", 8) != 0)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "The disk of the instance has no GPT partition table: "
				       "direct kernel boot needs one (set boot.direct=false)");
	memcpy(&table, hdr + 72, 8);
	memcpy(&count, hdr + 80, 4);
	memcpy(&size, hdr + 84, 4);
	table = le64toh(table);
	count = le32toh(count);
	size = le32toh(size);
	if (partition > count || size < 128 || size > 4096 || table > (UINT64_MAX >> 10))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "The disk of the instance has no partition %u", partition);
	/* An entry: type GUID (16), unique GUID (16), first LBA (8), last LBA (8). */
	r = read_at(fd, entry, sizeof(entry), table * 512 + (uint64_t)(partition - 1) * size);
	memcpy(&first, entry + 32, 8);
	first = le64toh(first);
	if (r < 0 || first == 0 || first > (UINT64_MAX >> 10) ||
	    !memcmp(entry, (const uint8_t[16]){0}, 16))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "The disk of the instance has no partition %u", partition);
	*ret = first * 512;
	return 0;
}

/* debugfs's `stat` of `req` on `dev`: the file's size, -ENOENT when it is no regular file. */
static int extract_size(const char *dev, const char *guest_path, uint64_t *ret,
			struct berth_error *err)
{
	_cleanup_free_ char *req = berth_strdup_printf("stat %s", guest_path);
	const char *type, *size;
	int r;

	if (!req)
		return -ENOMEM;
	const char *argv[] = {"debugfs", "-R", req, dev, NULL};
	_cleanup_(berth_spawn_release) struct berth_spawn s = {
		.argv = argv,
		.timeout_ms = 60000,
		.io = {BERTH_SPAWN_NULL, BERTH_SPAWN_DEFAULT, BERTH_SPAWN_DEFAULT},
	};

	r = berth_spawn_run(&s, err);
	if (r < 0)
		return r;
	/* "Inode: 12   Type: regular    Mode: ..." then "...   Size: 1234" */
	type = s.out ? strstr(s.out, "Type: ") : NULL;
	size = s.out ? strstr(s.out, "Size: ") : NULL;
	if (!type || strncmp(type + 6, "regular ", 8) != 0 || !size ||
	    !isdigit((unsigned char)size[6]))
		return -ENOENT;
	errno = 0;
	*ret = strtoull(size + 6, NULL, 10);
	return errno ? -ERANGE : 0;
}

static int dump_file(const char *dev, const char *guest_path, const char *out,
		     struct berth_error *err)
{
	_cleanup_free_ char *req = berth_strdup_printf("dump %s %s", guest_path, out);

	if (!req)
		return -ENOMEM;
	const char *argv[] = {"debugfs", "-R", req, dev, NULL};
	_cleanup_(berth_spawn_release) struct berth_spawn s = {
		.argv = argv,
		.timeout_ms = 60000,
		.io = {BERTH_SPAWN_NULL, BERTH_SPAWN_DEFAULT, BERTH_SPAWN_DEFAULT},
	};

	return berth_spawn_run(&s, err);
}

static int extract_checked(const char *dev, const char *guest_path, const char *out, uint64_t max,
			   struct berth_error *err)
{
	struct stat st;
	uint64_t size = 0;
	int r = extract_size(dev, guest_path, &size, err);

	if (r == -ENOENT)
		return berth_error_set(err, -ENOENT, BERTH_ERR_BAD_REQUEST,
				       "Direct kernel boot: the image has no regular file \"%s\" "
				       "(set boot.direct=false to boot through firmware)",
				       guest_path);
	if (r < 0)
		return r;
	if (size == 0 || size > max)
		return berth_error_set(err, -EFBIG, BERTH_ERR_BAD_REQUEST,
				       "Direct kernel boot: \"%s\" is %" PRIu64
				       " bytes (1 to %" PRIu64 " accepted)",
				       guest_path, size, max);
	r = dump_file(dev, guest_path, out, err);
	if (r < 0)
		return r;
	if (stat(out, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size != size)
		return berth_error_set(err, -EIO, BERTH_ERR_INTERNAL,
				       "Direct kernel boot: copying \"%s\" out of the image failed",
				       guest_path);
	return 0;
}

int vm_disk_extract(const char *disk, uint64_t offset, const char *guest_path, const char *out,
		    uint64_t max, struct berth_error *err)
{
	_cleanup_free_ char *dev = NULL;
	int r;

	/* debugfs reads its request as words: a path with blanks or quotes is refused. */
	if (guest_path[0] != '/' || strpbrk(guest_path, " \t\n\"'\\") || strpbrk(out, " \t\n\"'\\"))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Direct kernel boot: unusable path \"%s\"", guest_path);
	dev = berth_strdup_printf("%s?offset=%" PRIu64, disk, offset);
	if (!dev)
		return -ENOMEM;
	unlink(out);
	r = extract_checked(dev, guest_path, out, max, err);
	if (r < 0)
		unlink(out);
	return r;
}

int vm_boot_files_extract(const char *dir, const json_t *properties, struct berth_error *err)
{
	const char *kernel = berth_json_string(properties, "boot.kernel");
	const char *initrd = berth_json_string(properties, "boot.initrd");
	const char *part = berth_json_string(properties, "boot.root_partition");
	_cleanup_free_ char *disk = berth_strdup_printf("%s/root.img", dir);
	_cleanup_free_ char *kout = berth_strdup_printf("%s/" VM_BOOT_KERNEL, dir);
	_cleanup_free_ char *iout = berth_strdup_printf("%s/" VM_BOOT_INITRD, dir);
	json_auto_t *cfg = NULL, *inst = NULL;
	struct vm_direct_boot boot;
	uint64_t offset = 0;
	int r;

	if (!disk || !kout || !iout)
		return -ENOMEM;
	if (!kernel || !*kernel || !part || !*part)
		return 0;
	cfg = json_pack("{s:s, s:s}", "image.boot.kernel", kernel, "image.boot.root_partition",
			part);
	if (cfg && initrd && *initrd)
		json_object_set_new(cfg, "image.boot.initrd", json_string(initrd));
	inst = cfg ? json_pack("{s:O}", "expanded_config", cfg) : NULL;
	if (!inst)
		return -ENOMEM;
	r = vm_params_direct_boot(inst, &boot, err);
	if (r <= 0)
		return r;
	r = vm_disk_partition_offset(disk, boot.partition, &offset, err);
	if (r >= 0)
		r = vm_disk_extract(disk, offset, boot.kernel, kout, VM_BOOT_FILE_MAX, err);
	if (r >= 0 && boot.initrd)
		r = vm_disk_extract(disk, offset, boot.initrd, iout, VM_BOOT_FILE_MAX, err);
	if (r < 0) {
		unlink(kout);
		unlink(iout);
	}
	return r;
}
