/* tests/fuzz/fuzz_simplestreams.c: libFuzzer target for what an image server sends
 * berthd before any image byte: streams/v1/index.json and the products file (the JSON
 * parser, images/simplestreams.c's walk over products, versions and items, and the
 * fingerprint rules), then alias and fingerprint lookups over what was parsed. */
#include <stdint.h>

#include "images/simplestreams.h"
#include "lib/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const names[] = {"busybox", "busybox/amd64", "debian/12/arm64", "a",
					    "0"};
	struct ss_catalog cat = {0};
	struct berth_error err = {0};
	json_t *paths = NULL;

	if (ss_index_parse((const char *)data, size, &paths, &err) == 0)
		json_decref(paths);
	berth_error_release(&err);
	if (ss_products_parse((const char *)data, size, &cat, &err) == 0)
		for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
			ss_catalog_find(&cat, names[i], NULL, "x86_64");
			ss_catalog_find(&cat, names[i], "virtual-machine", "aarch64");
		}
	berth_error_release(&err);
	ss_catalog_release(&cat);
	return 0;
}
