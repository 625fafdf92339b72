/* tests/fuzz/fuzz_json.c: libFuzzer target for the JSON request paths: parsing,
 * the table-driven field checks, configuration keys, device maps, and the
 * ?filter= expression parser (fed the raw input as text). */
#include <stdint.h>
#include <string.h>

#include "daemon/api/filter.h"
#include "daemon/config_keys.h"
#include "lib/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct berth_json_field fields[] = {
	{"name", BERTH_JSON_STRING, true, false},
	{"config", BERTH_JSON_STRING_MAP, false, true},
	{"devices", BERTH_JSON_DEVICE_MAP, false, true},
	{"profiles", BERTH_JSON_STRING_ARRAY, false, true},
	{"ephemeral", BERTH_JSON_BOOL, false, true},
	{"source", BERTH_JSON_OBJECT, false, true},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct berth_error err = {0};
	json_t *v = NULL;
	char *text = malloc(size + 1);
	struct api_filter *f = NULL;

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	if (berth_json_parse((const char *)data, size, &v, &err) == 0) {
		for (int s = 0; s < CONFIG_SCOPE_MAX; s++)
			config_check_all(s, json_object_get(v, "config"), &err);
		if (berth_json_check(v, fields, sizeof(fields) / sizeof(fields[0]), "x", &err) == 0)
			config_check_devices(json_object_get(v, "devices"), &err);
		if (api_filter_parse(berth_json_string(v, "filter") ?: "", &f, &err) == 0) {
			api_filter_match(f, v);
			api_filter_free(f);
			f = NULL;
		}
		json_decref(v);
	}
	if (api_filter_parse(text, &f, &err) == 0 && f) {
		json_t *o = json_pack("{s:s, s:{s:s}}", "name", "c1", "config", "a.b", "c");
		api_filter_match(f, o);
		json_decref(o);
		api_filter_free(f);
	}
	berth_error_release(&err);
	free(text);
	return 0;
}
