/* tests/fuzz/fuzz_backup_index.c: libFuzzer target for a backup's index.yaml (and the
 * backup.yaml config it embeds): the YAML parser, the index's fields and checks, and the
 * lookup of each listed snapshot's config, as daemon/instance/backup_import.c uses them. */
#include <stdint.h>

#include "daemon/instance/backup_check.h"
#include "lib/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct berth_error err = {0};
	struct backup_index *ix = NULL;
	json_t *n;
	size_t i;

	if (backup_index_parse((const char *)data, size, &ix, &err) == 0) {
		json_array_foreach(ix->snapshots, i, n)
			backup_config_snapshot(ix->config, json_string_value(n));
		backup_index_free(ix);
	}
	berth_error_release(&err);
	return 0;
}
