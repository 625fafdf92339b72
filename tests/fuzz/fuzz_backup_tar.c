/* tests/fuzz/fuzz_backup_tar.c: libFuzzer target for backup tarballs: the input, written
 * to a memfd, is read as berthd reads an upload (daemon/instance/backup_archive.c):
 * libarchive over every compression, each member's header through the member checker
 * (backup_check.c), the index and backup.yaml parsed, the limits and the index checked
 * against the content. Then the first bytes, split at NULs, are fed to the member checker
 * directly as a path, a symlink target and a hard link target under each file type.
 * The input is also read as an optimized backup's `btrfs send` stream (btrfs_stream.c),
 * whole and cut in two at an offset its last byte picks, as the receive feeds it.
 * Nothing is extracted (that writes to disk; t_backup_import.sh drives it). */
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/instance/backup_archive.h"
#include "daemon/instance/btrfs_stream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void members(const uint8_t *data, size_t size)
{
	static const mode_t types[] = {S_IFREG, S_IFDIR, S_IFLNK, S_IFCHR,
				       S_IFBLK, S_IFIFO, S_IFSOCK};
	char buf[768];
	const char *parts[3] = {"", "", ""};
	size_t n = size < sizeof(buf) - 1 ? size : sizeof(buf) - 1, k = 0;

	memcpy(buf, data, n);
	buf[n] = '\0';
	parts[0] = buf;
	for (size_t i = 0; i < n && k < 2; i++)
		if (buf[i] == '\0')
			parts[++k] = buf + i + 1;
	for (size_t t = 0; t < sizeof(types) / sizeof(types[0]); t++) {
		struct backup_entry e = {
			.path = parts[0],
			.type = types[t],
			.symlink = *parts[1] ? parts[1] : NULL,
			.hardlink = *parts[2] ? parts[2] : NULL,
			.devmajor = n > 1 ? data[0] % 8 : 1,
			.devminor = n > 1 ? data[1] % 12 : 3,
		};
		struct backup_member m;
		struct berth_error err = {0};

		if (backup_member_check(&e, &m, &err) == 0)
			backup_member_release(&m);
		berth_error_release(&err);
	}
}

/* The input as a send stream: at once, then in two pieces. */
static void stream(const uint8_t *data, size_t size)
{
	size_t cut = size ? (size_t)data[size - 1] * size / 256 : 0;

	for (int pass = 0; pass < 2; pass++) {
		struct btrfs_stream_check c = {.has_prev = size > 40};
		struct berth_error err = {0};
		size_t pos = 0, avail = pass ? cut : size;
		ssize_t k = btrfs_stream_check(&c, data, avail, &err);

		if (k >= 0) {
			pos = (size_t)k;
			avail = size - pos;
			k = btrfs_stream_check(&c, data + pos, avail, &err);
		}
		if (k >= 0)
			(void)btrfs_stream_check_end(&c, avail - (size_t)k, &err);
		berth_error_release(&err);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct backup_limits lim = {.max_bytes = 64u << 20, .max_members = 4096};
	int fd = memfd_create("fuzz", MFD_CLOEXEC);

	if (fd >= 0 && write(fd, data, size) == (ssize_t)size) {
		struct backup_scan *s = NULL;
		struct backup_index *ix = NULL;
		struct berth_error err = {0};

		if (backup_scan(fd, &lim, &s, &err) == 0)
			backup_scan_free(s);
		berth_error_release(&err);
		if (backup_read_index(fd, &ix, &err) == 0)
			backup_index_free(ix);
		berth_error_release(&err);
	}
	if (fd >= 0)
		close(fd);
	members(data, size);
	stream(data, size);
	return 0;
}
