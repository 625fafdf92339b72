/* tests/unit/test_vm_params.c: daemon/vm/params: CPUs, memory and root disk size from an
 * expanded instance (LXD's defaults, sizes, refusals), the SMBIOS UUID (stable,
 * version 4 layout, distinct per project and name), growing a disk file (never
 * shrinking it), direct kernel boot's keys and the GPT partition a kernel is read from. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/vm/params.h"
#include "lib/json.h"

static json_t *inst_with(const char *cpu, const char *mem, const char *root_size)
{
	json_t *cfg = json_object(), *devs = json_object();

	if (cpu)
		json_object_set_new(cfg, "limits.cpu", json_string(cpu));
	if (mem)
		json_object_set_new(cfg, "limits.memory", json_string(mem));
	json_object_set_new(devs, "data",
			    json_pack("{s:s, s:s, s:s, s:s}", "type", "disk", "path", "/data",
				      "source", "/srv", "size", "1GiB"));
	if (root_size)
		json_object_set_new(devs, "root",
				    json_pack("{s:s, s:s, s:s, s:s}", "type", "disk", "path", "/",
					      "pool", "default", "size", root_size));
	return json_pack("{s:o, s:o}", "expanded_config", cfg, "expanded_devices", devs);
}

static void limits_ok(const char *cpu, const char *mem, unsigned want_cpus, uint64_t want_mem)
{
	json_auto_t *inst = inst_with(cpu, mem, NULL);
	unsigned cpus = 0;
	uint64_t memory = 0;

	assert_int_equal(vm_params_limits(inst, &cpus, &memory, NULL), 0);
	assert_int_equal(cpus, want_cpus);
	assert_int_equal(memory, want_mem);
}

static void limits_refused(const char *cpu, const char *mem, const char *msg)
{
	json_auto_t *inst = inst_with(cpu, mem, NULL);
	struct berth_error err = {0};
	unsigned cpus = 0;
	uint64_t memory = 0;

	assert_int_equal(vm_params_limits(inst, &cpus, &memory, &err), -EINVAL);
	assert_non_null(strstr(err.msg, msg));
	berth_error_release(&err);
}

static void test_limits(void **state)
{
	limits_ok(NULL, NULL, 1, 1024ull << 20); /* LXD's defaults for VMs */
	limits_ok("", "", 1, 1024ull << 20);
	limits_ok("2", "256MiB", 2, 256ull << 20);
	limits_ok("255", "4GiB", 255, 4ull << 30);
	limits_ok(NULL, "300MB", 1, 286ull << 20); /* 300,000,000 bytes: whole MiB */
	limits_refused("0", NULL, "limits.cpu \"0\"");
	limits_refused("256", NULL, "1 to 255");
	limits_refused("0-3", NULL, "number of CPUs");
	limits_refused("-1", NULL, "number of CPUs");
	limits_refused("two", NULL, "number of CPUs");
	limits_refused(NULL, "50%", "not a percentage");
	limits_refused(NULL, "16MiB", "at least 32MiB");
	limits_refused(NULL, "lots", "limits.memory");
}

static void test_root_size(void **state)
{
	json_auto_t *none = inst_with(NULL, NULL, NULL);
	json_auto_t *some = inst_with(NULL, NULL, "20GiB");
	json_auto_t *bad = inst_with(NULL, NULL, "big");
	struct berth_error err = {0};
	uint64_t size = 0;

	/* The /data disk's size is not the root's. */
	assert_int_equal(vm_params_root_size(none, &size, NULL), 0);
	assert_int_equal(size, 10ull << 30);
	assert_int_equal(vm_params_root_size(some, &size, NULL), 0);
	assert_int_equal(size, 20ull << 30);
	assert_true(vm_params_root_size(bad, &size, &err) < 0);
	assert_non_null(strstr(err.msg, "Root disk size"));
	berth_error_release(&err);
}

static void test_uuid(void **state)
{
	char a[37], b[37], c[37], d[37];

	vm_params_uuid("default", "v1", a);
	vm_params_uuid("default", "v1", b);
	vm_params_uuid("default", "v2", c);
	vm_params_uuid("defaultv", "1", d);
	assert_string_equal(a, b);
	assert_string_not_equal(a, c);
	assert_string_not_equal(a, d);
	assert_int_equal(strlen(a), 36);
	for (int i = 0; i < 36; i++)
		if (i == 8 || i == 13 || i == 18 || i == 23)
			assert_int_equal(a[i], '-');
		else
			assert_non_null(strchr("0123456789abcdef", a[i]));
	assert_int_equal(a[14], '4');		/* version 4 */
	assert_non_null(strchr("89ab", a[19])); /* RFC 4122 variant */
}

static void test_disk_grow(void **state)
{
	char path[] = "/tmp/berth-test-vmdisk-XXXXXX";
	struct berth_error err = {0};
	struct stat st;
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 1 << 20), 0);
	close(fd);
	assert_int_equal(vm_disk_grow(path, 4u << 20, "v1", NULL), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, 4 << 20);
	assert_int_equal(vm_disk_grow(path, 2u << 20, "v1", NULL), 0); /* never shrinks */
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, 4 << 20);
	unlink(path);
	assert_int_equal(vm_disk_grow(path, 4u << 20, "v1", &err), -ENOENT);
	assert_non_null(strstr(err.msg, "Instance \"v1\" has no disk image"));
	berth_error_release(&err);
}

static json_t *inst_boot(const char *kernel, const char *part, const char *direct)
{
	json_t *cfg = json_object();

	if (kernel)
		json_object_set_new(cfg, "image.boot.kernel", json_string(kernel));
	if (part)
		json_object_set_new(cfg, "image.boot.root_partition", json_string(part));
	if (direct)
		json_object_set_new(cfg, "boot.direct", json_string(direct));
	json_object_set_new(cfg, "image.boot.initrd", json_string("/boot/initrd.img"));
	json_object_set_new(cfg, "image.boot.cmdline", json_string("root=LABEL=rootfs"));
	return json_pack("{s:o}", "expanded_config", cfg);
}

static void test_direct_boot(void **state)
{
	struct vm_direct_boot b = {0};
	struct berth_error err = {0};
	json_t *i;

	i = inst_boot("/boot/vmlinuz", "2", NULL);
	assert_int_equal(vm_params_direct_boot(i, &b, NULL), 1);
	assert_string_equal(b.kernel, "/boot/vmlinuz");
	assert_string_equal(b.initrd, "/boot/initrd.img");
	assert_string_equal(b.cmdline, "root=LABEL=rootfs");
	assert_int_equal(b.partition, 2);
	json_decref(i);
	i = inst_boot("/boot/vmlinuz", "2", "false"); /* the opt-out */
	assert_int_equal(vm_params_direct_boot(i, &b, NULL), 0);
	json_decref(i);
	i = inst_boot("/boot/vmlinuz", "2", "true");
	assert_int_equal(vm_params_direct_boot(i, &b, NULL), 1);
	json_decref(i);
	i = inst_boot(NULL, "2", NULL); /* no kernel named: firmware */
	assert_int_equal(vm_params_direct_boot(i, &b, NULL), 0);
	json_decref(i);
	i = inst_boot("/boot/vmlinuz", NULL, NULL);
	assert_int_equal(vm_params_direct_boot(i, &b, NULL), 0);
	json_decref(i);
	for (const char *const *p = (const char *const[]){"0", "129", "-1", "2x", "+2", NULL}; *p;
	     p++) {
		i = inst_boot("/boot/vmlinuz", *p, NULL);
		assert_int_equal(vm_params_direct_boot(i, &b, &err), -EINVAL);
		assert_non_null(strstr(err.msg, "image.boot.root_partition"));
		berth_error_release(&err);
		json_decref(i);
	}
}

static void put_le(int fd, off_t off, uint64_t v, size_t n)
{
	uint8_t b[8];

	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	assert_int_equal(pwrite(fd, b, n, off), (ssize_t)n);
}

static void test_partition_offset(void **state)
{
	char path[] = "/tmp/test_vm_params_gpt.XXXXXX";
	struct berth_error err = {0};
	uint64_t off = 0;
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 1 << 20), 0);
	assert_int_equal(vm_disk_partition_offset(path, 1, &off, &err), -EINVAL); /* no GPT */
	assert_non_null(strstr(err.msg, "no GPT"));
	berth_error_release(&err);
	assert_int_equal(pwrite(fd, "EFI PART", 8, 512), 8);
	put_le(fd, 512 + 72, 2, 8);	      /* entries at LBA 2 */
	put_le(fd, 512 + 80, 128, 4);	      /* 128 of them */
	put_le(fd, 512 + 84, 128, 4);	      /* of 128 bytes */
	put_le(fd, 1024 + 128, 0xaf, 1);      /* partition 2: a type */
	put_le(fd, 1024 + 128 + 32, 4096, 8); /* first LBA */
	close(fd);
	assert_int_equal(vm_disk_partition_offset(path, 2, &off, NULL), 0);
	assert_int_equal(off, 4096ull * 512);
	assert_int_equal(vm_disk_partition_offset(path, 1, &off, &err), -EINVAL); /* unused */
	assert_non_null(strstr(err.msg, "no partition 1"));
	berth_error_release(&err);
	assert_int_equal(vm_disk_partition_offset(path, 129, &off, &err), -EINVAL);
	berth_error_release(&err);
	unlink(path);
}

/* A kernel read out of an ext4 file system (made by mkfs.ext4 -d, never mounted). */
static void test_extract(void **state)
{
	char dir[] = "/tmp/test_vm_params_fs.XXXXXX";
	char cmd[512], img[600], out[600], content[64] = "";
	struct berth_error err = {0};
	FILE *f;

	if (system("command -v mkfs.ext4 >/dev/null && command -v debugfs >/dev/null") != 0)
		skip();
	assert_non_null(mkdtemp(dir));
	snprintf(cmd, sizeof(cmd),
		 "mkdir -p %s/root/boot && echo kernel-bytes >%s/root/boot/vmlinuz && "
		 "ln -s vmlinuz %s/root/boot/link && truncate -s 3G %s/root/boot/big && "
		 "mkfs.ext4 -q -d %s/root %s/fs.img 8M >/dev/null",
		 dir, dir, dir, dir, dir, dir);
	assert_int_equal(system(cmd), 0);
	snprintf(img, sizeof(img), "%s/fs.img", dir);
	snprintf(out, sizeof(out), "%s/kernel", dir);
	assert_int_equal(vm_disk_extract(img, 0, "/boot/vmlinuz", out, 1024, NULL), 0);
	f = fopen(out, "r");
	assert_non_null(f);
	assert_non_null(fgets(content, sizeof(content), f));
	fclose(f);
	assert_string_equal(content, "kernel-bytes\n");
	assert_int_equal(vm_disk_extract(img, 0, "/boot/missing", out, 1024, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "no regular file \"/boot/missing\""));
	berth_error_release(&err);
	assert_int_equal(access(out, F_OK), -1); /* nothing half-made left */
	/* a sparse 3 GiB file is refused before anything is written; a link is no file */
	assert_int_equal(vm_disk_extract(img, 0, "/boot/big", out, 1024, &err), -EFBIG);
	berth_error_release(&err);
	assert_int_equal(access(out, F_OK), -1);
	assert_int_equal(vm_disk_extract(img, 0, "/boot/link", out, 1024, &err), -ENOENT);
	berth_error_release(&err);
	assert_int_equal(vm_disk_extract(img, 0, "/boot/vmlinuz", out, 4, &err), -EFBIG);
	berth_error_release(&err);
	assert_int_equal(access(out, F_OK), -1);
	assert_int_equal(vm_disk_extract(img, 0, "/boot/a b", out, 1024, &err), -EINVAL);
	berth_error_release(&err);
	assert_int_equal(vm_disk_extract(img, 0, "boot/vmlinuz", out, 1024, &err), -EINVAL);
	berth_error_release(&err);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

/* An image volume: root.img with a GPT whose partition 1 (at 1 MiB) is an ext4 holding
 * a kernel; the image's properties name it; a 3 GiB sparse "kernel" is refused. */
static void test_boot_files(void **state)
{
	char dir[] = "/tmp/test_vm_params_vol.XXXXXX";
	char cmd[768], img[600], kout[600], iout[600];
	struct berth_error err = {0};
	json_auto_t *props = NULL;
	int fd;

	if (system("command -v mkfs.ext4 >/dev/null && command -v debugfs >/dev/null") != 0)
		skip();
	assert_non_null(mkdtemp(dir));
	snprintf(cmd, sizeof(cmd),
		 "mkdir -p %s/root/boot && echo k >%s/root/boot/vmlinuz && echo i "
		 ">%s/root/boot/initrd.img && truncate -s 3G %s/root/boot/big && "
		 "mkfs.ext4 -q -d %s/root %s/fs.img 8M >/dev/null && truncate -s 1M %s/root.img && "
		 "cat %s/fs.img >>%s/root.img",
		 dir, dir, dir, dir, dir, dir, dir, dir, dir);
	assert_int_equal(system(cmd), 0);
	snprintf(img, sizeof(img), "%s/root.img", dir);
	snprintf(kout, sizeof(kout), "%s/" VM_BOOT_KERNEL, dir);
	snprintf(iout, sizeof(iout), "%s/" VM_BOOT_INITRD, dir);
	fd = open(img, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "EFI PART", 8, 512), 8);
	put_le(fd, 512 + 72, 2, 8), put_le(fd, 512 + 80, 128, 4), put_le(fd, 512 + 84, 128, 4);
	put_le(fd, 1024, 0xaf, 1), put_le(fd, 1024 + 32, 2048, 8);
	close(fd);
	props = json_pack("{s:s, s:s, s:s}", "boot.kernel", "/boot/vmlinuz", "boot.initrd",
			  "/boot/initrd.img", "boot.root_partition", "1");
	assert_int_equal(vm_boot_files_extract(dir, props, NULL), 0);
	assert_int_equal(access(kout, R_OK), 0);
	assert_int_equal(access(iout, R_OK), 0);
	json_object_set_new(props, "boot.initrd", json_string("/boot/big"));
	assert_int_equal(vm_boot_files_extract(dir, props, &err), -EFBIG);
	berth_error_release(&err);
	assert_int_equal(access(kout, F_OK), -1); /* neither file is left */
	assert_int_equal(access(iout, F_OK), -1);
	json_object_del(props, "boot.kernel");
	assert_int_equal(vm_boot_files_extract(dir, props, NULL), 0); /* firmware boot */
	assert_int_equal(access(kout, F_OK), -1);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_limits),	    cmocka_unit_test(test_root_size),
		cmocka_unit_test(test_uuid),	    cmocka_unit_test(test_disk_grow),
		cmocka_unit_test(test_direct_boot), cmocka_unit_test(test_partition_offset),
		cmocka_unit_test(test_extract),	    cmocka_unit_test(test_boot_files),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
