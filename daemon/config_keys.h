/* daemon/config_keys.h: which configuration keys exist and what values they take,
 * for the server, projects, and instances/profiles. Unknown keys are refused:
 * LXD does the same, and a typo must not be stored silently. */
#pragma once

#include <jansson.h>
#include <stdbool.h>

#include "lib/error.h"

enum config_scope {
	CONFIG_SERVER,
	CONFIG_PROJECT,
	CONFIG_INSTANCE,
	CONFIG_PROFILE, /* like instances, minus volatile.* and image.* */
	CONFIG_SCOPE_MAX,
};

/* Check one key and value. An empty value is always accepted (it unsets the key).
 * -EINVAL with BAD_REQUEST: "Unknown configuration key: foo" or
 * "Invalid value for configuration key \"limits.cpu\": ...". */
int config_check(enum config_scope scope, const char *key, const char *value,
		 struct berth_error *err);
/* Check every key of an object of strings. */
int config_check_all(enum config_scope scope, const json_t *config, struct berth_error *err);
/* Check a device map (name -> {type, ...}): known type, required keys. */
int config_check_devices(const json_t *devices, struct berth_error *err);
