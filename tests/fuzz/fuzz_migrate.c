/* tests/fuzz/fuzz_migrate.c: libFuzzer target for LXD's migration messages
 * (daemon/instance/migrate_proto.c): the first byte picks the header or the control
 * decoder, the rest is the message, as the peer of a migration sends it. What decodes is
 * encoded again, which must succeed: a decoded message always has its required fields. */
#include <stdint.h>
#include <stdlib.h>

#include "daemon/instance/migrate_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct berth_error err = {0};
	json_t *msg = NULL;
	uint8_t *out = NULL;
	size_t len = 0;
	int r;

	if (size < 1)
		return 0;
	if (data[0] & 1)
		r = migrate_control_decode(data + 1, size - 1, &msg, &err);
	else
		r = migrate_header_decode(data + 1, size - 1, &msg, &err);
	if (r == 0) {
		r = (data[0] & 1) ? migrate_control_encode(msg, &out, &len, &err)
				  : migrate_header_encode(msg, &out, &len, &err);
		if (r < 0)
			abort();
		free(out);
	}
	json_decref(msg);
	berth_error_release(&err);
	return 0;
}
