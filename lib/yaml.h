/* lib/yaml.h: YAML rendering of JSON values and parsing of YAML back to JSON
 * (the CLI's show/edit and yaml output; libyaml underneath).
 *
 * Rendering follows what `lxc ... show` prints: block style, keys in the
 * object's order, strings quoted only when YAML would misread them ("true",
 * "123", "", leading/trailing spaces, ": ", "#", ...), empty objects as {},
 * empty arrays as [], null as null. Parsing maps YAML to JSON: mappings to
 * objects, sequences to arrays, scalars: plain null/~ -> null, true/false ->
 * booleans, plain integers -> integers, everything else (and every quoted
 * scalar) -> strings. Object keys are always strings. */
#pragma once

#include <jansson.h>
#include <stddef.h>

#include "lib/error.h"

/* Render `value` as a YAML document (no "---" header). Returns a new string. */
int berth_yaml_render(const json_t *value, char **ret, struct berth_error *err);
/* Variants of rendering for output that must match Go's yaml.v2 on a generic map
 * (what `lxc monitor` prints): keys sorted at every level, and strings that look like
 * timestamps ("2026-11-23T16:11:33Z", "2026-11-23") double-quoted. */
enum {
	BERTH_YAML_SORT_KEYS = 1 << 0,
	BERTH_YAML_QUOTE_TIMESTAMPS = 1 << 1,
};
int berth_yaml_render_flags(const json_t *value, unsigned flags, char **ret,
			    struct berth_error *err);
/* Parse one YAML document. -EINVAL with a message naming line and column. */
int berth_yaml_parse(const char *buf, size_t len, json_t **ret, struct berth_error *err);
