/* tests/fuzz/fuzz_image.c: libFuzzer target for image uploads: the input is written to a
 * memfd and imported both as a unified tarball and as a multipart body (boundary "B"),
 * which drives the multipart parser, libarchive over every compression and the reading
 * of a tarball's head with metadata.yaml parsing (the entry checks run at unpack,
 * images/unpack.c, which this target does not reach). The commit always fails, so
 * nothing is kept. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "images/store.h"
#include "lib/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int refuse(const json_t *image, void *data, struct berth_error *err)
{
	return berth_error_set(err, -ECANCELED, BERTH_ERR_INTERNAL, "fuzzing");
}

static const char *dir(void)
{
	static char path[64];

	if (!path[0]) {
		snprintf(path, sizeof(path), "/tmp/berth-fuzz-image-%d", (int)getpid());
		berth_mkdir_p(path, 0700);
	}
	return path;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const types[] = {"application/octet-stream",
					    "multipart/form-data; boundary=B"};
	int fd = memfd_create("fuzz", MFD_CLOEXEC);

	if (fd < 0)
		return 0;
	if (write(fd, data, size) == (ssize_t)size) {
		for (size_t i = 0; i < 2; i++) {
			struct image_upload up = {.fd = fd, .content_type = types[i]};
			struct berth_error err = {0};

			lseek(fd, 0, SEEK_SET);
			image_store_import(dir(), &up, refuse, NULL, &err);
			berth_error_release(&err);
		}
	}
	close(fd);
	return 0;
}
