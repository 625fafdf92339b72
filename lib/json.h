/* lib/json.h: the only way berth code parses and checks JSON (jansson underneath).
 *
 * Request bodies are checked against a table of fields (key, type, required),
 * in the manner of a schema: a wrong type or a missing required key is an
 * error that names the key. Unknown keys are ignored, as LXD's Go decoder does. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "lib/error.h"

/* jansson provides json_decrefp() and `json_auto_t` (json_t with a cleanup). */
#define _cleanup_json_ _cleanup_(json_decrefp)

enum berth_json_kind {
	BERTH_JSON_ANY,
	BERTH_JSON_STRING,
	BERTH_JSON_BOOL,
	BERTH_JSON_INT,
	BERTH_JSON_OBJECT,
	BERTH_JSON_ARRAY,
	BERTH_JSON_STRING_MAP,	 /* object whose values are all strings */
	BERTH_JSON_STRING_ARRAY, /* array of strings */
	BERTH_JSON_DEVICE_MAP,	 /* object of objects of strings, each with a "type" */
	BERTH_JSON_KIND_MAX,
};

struct berth_json_field {
	const char *key;
	enum berth_json_kind kind;
	bool required;
	bool nullable; /* JSON null accepted and treated as absent */
};

/* Parse `len` bytes. -EINVAL with a BAD_REQUEST error naming line and column. */
int berth_json_parse(const char *buf, size_t len, json_t **ret, struct berth_error *err);

/* Check `obj` (must be an object) against `fields`; `what` names the object in
 * messages ("profile"). -EINVAL with BAD_REQUEST on the first mismatch. */
int berth_json_check(const json_t *obj, const struct berth_json_field *fields, size_t n_fields,
		     const char *what, struct berth_error *err);

/* Check one value against a kind; `key` is used in the message. */
int berth_json_check_kind(const json_t *value, enum berth_json_kind kind, const char *key,
			  struct berth_error *err);

/* Compact rendering (insertion order kept). NULL on allocation failure. Caller frees. */
char *berth_json_dumps(const json_t *value);

/* String value of obj[key], or NULL when absent or not a string. Borrowed. */
const char *berth_json_string(const json_t *obj, const char *key);
/* Boolean value of obj[key], or `def` when absent. */
bool berth_json_bool(const json_t *obj, const char *key, bool def);

/* A new reference to obj[key] when present and non-null, else a new empty object. */
json_t *berth_json_object_or_empty(const json_t *obj, const char *key);
