/* lib/json.c: JSON parsing and table-driven checks (see json.h). */
#include "lib/json.h"

#include <string.h>

static const char *const kind_names[BERTH_JSON_KIND_MAX] = {
	[BERTH_JSON_ANY] = "any value",
	[BERTH_JSON_STRING] = "a string",
	[BERTH_JSON_BOOL] = "a boolean",
	[BERTH_JSON_INT] = "an integer",
	[BERTH_JSON_OBJECT] = "an object",
	[BERTH_JSON_ARRAY] = "an array",
	[BERTH_JSON_STRING_MAP] = "an object of strings",
	[BERTH_JSON_STRING_ARRAY] = "an array of strings",
	[BERTH_JSON_DEVICE_MAP] = "an object of devices",
};

int berth_json_parse(const char *buf, size_t len, json_t **ret, struct berth_error *err)
{
	json_error_t jerr;
	json_t *v = json_loadb(buf, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);

	if (!v)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Invalid JSON at line %d column %d: %s", jerr.line,
				       jerr.column, jerr.text);
	*ret = v;
	return 0;
}

static int check_device_map(const json_t *value, const char *key, struct berth_error *err)
{
	const char *dev;
	json_t *d;

	if (!json_is_object(value))
		return -EINVAL;
	json_object_foreach((json_t *)value, dev, d) {
		const char *k;
		json_t *v;

		if (!json_is_object(d))
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "Invalid device \"%s\" in \"%s\": must be an object",
					       dev, key);
		json_object_foreach(d, k, v)
			if (!json_is_string(v))
				return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
						       "Invalid device \"%s\": value of \"%s\" "
						       "must be a string",
						       dev, k);
		if (!json_is_string(json_object_get(d, "type")))
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "Invalid device \"%s\": missing device type", dev);
	}
	return 0;
}

int berth_json_check_kind(const json_t *value, enum berth_json_kind kind, const char *key,
			  struct berth_error *err)
{
	bool ok = true;
	size_t i;
	const char *k;
	json_t *v;

	switch (kind) {
	case BERTH_JSON_ANY:
		break;
	case BERTH_JSON_STRING:
		ok = json_is_string(value);
		break;
	case BERTH_JSON_BOOL:
		ok = json_is_boolean(value);
		break;
	case BERTH_JSON_INT:
		ok = json_is_integer(value);
		break;
	case BERTH_JSON_OBJECT:
		ok = json_is_object(value);
		break;
	case BERTH_JSON_ARRAY:
		ok = json_is_array(value);
		break;
	case BERTH_JSON_STRING_MAP:
		ok = json_is_object(value);
		if (ok)
			json_object_foreach((json_t *)value, k, v)
				if (!json_is_string(v))
					return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
							       "Invalid value for \"%s\" in \"%s\": "
							       "must be a string",
							       k, key);
		break;
	case BERTH_JSON_STRING_ARRAY:
		ok = json_is_array(value);
		if (ok)
			json_array_foreach(value, i, v)
				if (!json_is_string(v))
					return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
							       "Invalid \"%s\": element %zu must be "
							       "a string",
							       key, i);
		break;
	case BERTH_JSON_DEVICE_MAP:
		if (!json_is_object(value)) {
			ok = false;
			break;
		}
		return check_device_map(value, key, err);
	default:
		return -EINVAL;
	}
	if (!ok)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Invalid \"%s\": must be %s", key, kind_names[kind]);
	return 0;
}

int berth_json_check(const json_t *obj, const struct berth_json_field *fields, size_t n_fields,
		     const char *what, struct berth_error *err)
{
	if (!json_is_object(obj))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Invalid %s: request body must be a JSON object", what);
	for (size_t i = 0; i < n_fields; i++) {
		const struct berth_json_field *f = &fields[i];
		json_t *v = json_object_get(obj, f->key);
		int r;

		if (!v || (json_is_null(v) && f->nullable)) {
			if (f->required)
				return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
						       "Invalid %s: missing \"%s\"", what, f->key);
			continue;
		}
		r = berth_json_check_kind(v, f->kind, f->key, err);
		if (r < 0)
			return r;
	}
	return 0;
}

char *berth_json_dumps(const json_t *value)
{
	return json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);
}

const char *berth_json_string(const json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}

bool berth_json_bool(const json_t *obj, const char *key, bool def)
{
	json_t *v = json_object_get(obj, key);

	return json_is_boolean(v) ? json_is_true(v) : def;
}

json_t *berth_json_object_or_empty(const json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	if (v && !json_is_null(v))
		return json_incref(v);
	return json_object();
}
