/* images/archive_load.c: libarchive, loaded on the first call that needs it.
 *
 * libarchive brings libxml2, ICU, libstdc++, nettle and five compression libraries.
 * Mapped and relocated at start-up they cost a fresh, idle berthd 2.9 MiB of RSS, a
 * third of it, for work it does only when it reads or unpacks an image. So berthd is
 * not linked with libarchive: each libarchive function that images/ calls is defined
 * here with the prototype archive.h gives it (the compiler checks them) and forwards
 * to the library, which the first of these calls opens with dlopen(). It stays loaded.
 *
 * When the library or a function cannot be loaded (logged once per function),
 * archive_read_new() and archive_write_disk_new() return NULL, and their callers ask
 * image_archive_fail() for the error to give; the others return a failure value. A libarchive
 * function that images/ starts to call needs a line here: until then the link fails
 * with an undefined reference to it. */
#define LOG_CATEGORY "archive"
#include <archive.h>
#include <archive_entry.h>
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>

#include "images/archive_load.h"
#include "lib/log.h"
#include "lib/spawn.h"
#include "lib/util.h"

/* libarchive 3's soname, the same since 3.0 */
#if ARCHIVE_VERSION_NUMBER < 3000000 || ARCHIVE_VERSION_NUMBER >= 4000000
#error "images/archive_load.c knows the soname of libarchive 3 only"
#endif
#define ARCHIVE_SONAME "libarchive.so.13"

static void *lib;
static pthread_once_t lib_once = PTHREAD_ONCE_INIT;

static char lib_why[256]; /* dlerror() when dlopen() failed */

static void lib_open(void)
{
	lib = dlopen(ARCHIVE_SONAME, RTLD_NOW | RTLD_LOCAL);
	if (!lib) {
		const char *why = dlerror();

		snprintf(lib_why, sizeof(lib_why), "%s", why ? why : ARCHIVE_SONAME);
		log_error("Cannot load %s, images cannot be read: %s", ARCHIVE_SONAME, lib_why);
	}
}

int image_archive_fail(struct berth_error *err)
{
	pthread_once(&lib_once, lib_open);
	if (lib)
		return -ENOMEM;
	return berth_error_set(err, -ELIBACC, BERTH_ERR_INTERNAL, "libarchive is not available: %s",
			       lib_why);
}

/* The function `name` of libarchive, remembered in *slot; NULL when it cannot be had. */
static void *lib_sym(void **slot, const char *name)
{
	void *f = __atomic_load_n(slot, __ATOMIC_ACQUIRE);

	if (f)
		return f;
	pthread_once(&lib_once, lib_open);
	if (!lib)
		return NULL;
	f = dlsym(lib, name);
	if (!f) {
		log_error("Cannot find %s in %s: %s", name, ARCHIVE_SONAME, dlerror());
		return NULL;
	}
	__atomic_store_n(slot, f, __ATOMIC_RELEASE);
	return f;
}

/* `ret name params`, forwarded with `args`; `fail` when libarchive cannot be had. */
#define FORWARD(ret, fail, name, params, args)                                                     \
	ret name params                                                                            \
	{                                                                                          \
		static void *slot;                                                                 \
		ret(*f) params = (ret(*) params)lib_sym(&slot, #name);                             \
                                                                                                   \
		return f ? f args : (fail);                                                        \
	}
#define FORWARD_VOID(name, params, args)                                                           \
	void name params                                                                           \
	{                                                                                          \
		static void *slot;                                                                 \
		void(*f) params = (void(*) params)lib_sym(&slot, #name);                           \
                                                                                                   \
		if (f)                                                                             \
			f args;                                                                    \
	}

#define A struct archive *a
#define E struct archive_entry *e

/* objects */
FORWARD(struct archive *, NULL, archive_read_new, (void), ())
FORWARD(struct archive *, NULL, archive_write_disk_new, (void), ())
FORWARD(int, ARCHIVE_FATAL, archive_read_free, (A), (a))
FORWARD(int, ARCHIVE_FATAL, archive_write_free, (A), (a))
FORWARD(int, ENOSYS, archive_errno, (A), (a))
FORWARD(const char *, "libarchive cannot be loaded", archive_error_string, (A), (a))

/* reading */
FORWARD(int, ARCHIVE_FATAL, archive_read_support_filter_all, (A), (a))
FORWARD(int, ARCHIVE_FATAL, archive_read_support_filter_bzip2, (A), (a))
FORWARD(int, ARCHIVE_FATAL, archive_read_support_filter_compress, (A), (a))
FORWARD(int, ARCHIVE_FATAL, archive_read_support_filter_gzip, (A), (a))
FORWARD(int, ARCHIVE_FATAL, archive_read_support_filter_lz4, (A), (a))
FORWARD(int, ARCHIVE_FATAL, archive_read_support_filter_lzip, (A), (a))
FORWARD(int, ARCHIVE_FATAL, archive_read_support_filter_lzma, (A), (a))
FORWARD(int, ARCHIVE_FATAL, archive_read_support_filter_xz, (A), (a))
FORWARD(int, ARCHIVE_FATAL, archive_read_support_filter_zstd, (A), (a))
FORWARD(int, ARCHIVE_FATAL, archive_read_support_filter_program_signature,
	(A, const char *cmd, const void *sig, size_t sig_len), (a, cmd, sig, sig_len))
FORWARD(int, ARCHIVE_FATAL, archive_read_support_format_gnutar, (A), (a))
FORWARD(int, ARCHIVE_FATAL, archive_read_support_format_tar, (A), (a))
FORWARD(int, ARCHIVE_FATAL, archive_read_open_fd, (A, int fd, size_t block_size),
	(a, fd, block_size))
FORWARD(int, ARCHIVE_FATAL, archive_read_next_header, (A, struct archive_entry **e), (a, e))
FORWARD(la_ssize_t, ARCHIVE_FATAL, archive_read_data, (A, void *buf, size_t len), (a, buf, len))
FORWARD(int, ARCHIVE_FATAL, archive_read_data_block,
	(A, const void **buf, size_t *len, la_int64_t *offset), (a, buf, len, offset))
FORWARD(la_int64_t, -1, archive_filter_bytes, (A, int n), (a, n))

/* writing to disk */
FORWARD(int, ARCHIVE_FATAL, archive_write_disk_set_options, (A, int flags), (a, flags))
FORWARD(int, ARCHIVE_FATAL, archive_write_disk_set_standard_lookup, (A), (a))
FORWARD(int, ARCHIVE_FATAL, archive_write_header, (A, E), (a, e))
FORWARD(la_ssize_t, ARCHIVE_FATAL, archive_write_data_block,
	(A, const void *buf, size_t len, la_int64_t offset), (a, buf, len, offset))
FORWARD(int, ARCHIVE_FATAL, archive_write_finish_entry, (A), (a))
FORWARD(int, ARCHIVE_FATAL, archive_write_close, (A), (a))

/* entries */
FORWARD(const char *, NULL, archive_entry_pathname, (E), (e))
FORWARD(const char *, NULL, archive_entry_hardlink, (E), (e))
FORWARD(const char *, NULL, archive_entry_symlink, (E), (e))
FORWARD(__LA_MODE_T, 0, archive_entry_filetype, (E), (e))
FORWARD(la_int64_t, 0, archive_entry_size, (E), (e))
FORWARD_VOID(archive_entry_set_pathname, (E, const char *name), (e, name))
/* backup restores (daemon/instance/backup_archive.c) write entries themselves */
FORWARD(time_t, 0, archive_entry_atime, (E), (e))
FORWARD(long, 0, archive_entry_atime_nsec, (E), (e))
FORWARD(time_t, 0, archive_entry_mtime, (E), (e))
FORWARD(long, 0, archive_entry_mtime_nsec, (E), (e))
FORWARD(int, 0, archive_entry_mtime_is_set, (E), (e))
FORWARD(la_int64_t, 0, archive_entry_uid, (E), (e))
FORWARD(la_int64_t, 0, archive_entry_gid, (E), (e))
FORWARD(__LA_MODE_T, 0, archive_entry_perm, (E), (e))
FORWARD(dev_t, 0, archive_entry_rdev, (E), (e))
FORWARD(dev_t, 0, archive_entry_rdevmajor, (E), (e))
FORWARD(dev_t, 0, archive_entry_rdevminor, (E), (e))
FORWARD(int, ARCHIVE_FATAL, archive_entry_xattr_reset, (E), (e))
FORWARD(int, ARCHIVE_WARN, archive_entry_xattr_next,
	(E, const char **name, const void **value, size_t *size), (e, name, value, size))
FORWARD_VOID(archive_entry_set_hardlink, (E, const char *name), (e, name))

/* igzip (ISA-L) where berth finds programs, as "PATH -d -c"; NULL without it. */
static pthread_once_t igzip_once = PTHREAD_ONCE_INIT;
static char *igzip_cmd;

static void igzip_look(void)
{
	_cleanup_free_ char *path = NULL;

	if (berth_program_find("igzip", &path) == 0)
		igzip_cmd = berth_strdup_printf("%s -d -c", path);
}

void image_archive_read_filters(struct archive *a)
{
	pthread_once(&igzip_once, igzip_look);
	if (!igzip_cmd) {
		archive_read_support_filter_all(a);
		return;
	}
	archive_read_support_filter_program_signature(a, igzip_cmd, "\x1f\x8b", 2);
	archive_read_support_filter_bzip2(a);
	archive_read_support_filter_compress(a);
	archive_read_support_filter_lz4(a);
	archive_read_support_filter_lzip(a);
	archive_read_support_filter_lzma(a);
	archive_read_support_filter_xz(a);
	archive_read_support_filter_zstd(a);
}
