/* daemon/project/limits.c: enforcing a project's limits.* keys (see the header).
 *
 * Each check loads what the project holds (its config, the profiles its instances use,
 * its instances, its custom volumes), puts the object being created or changed in place
 * of the stored one, and adds up. Projects without any limits.* key cost one read. */
#include "daemon/project/limits.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/db/db.h"
#include "lib/json.h"
#include "lib/macros.h"
#include "lib/util.h"
#include "storage/driver.h"

static const char *const aggregate_keys[] = {
	"limits.memory",
	"limits.processes",
	"limits.cpu",
	"limits.disk",
};

struct usage {
	struct db *db;	     /* borrowed */
	const char *project; /* borrowed */
	json_t *config;	     /* owned: the project's config */
	json_t *profiles;    /* owned: name -> profile, from the project its instances use */
	json_t *instances;   /* owned: array, as stored (not expanded) */
	json_t *volumes;     /* owned: array of the project's custom volumes */
};

static void usage_release(struct usage *u)
{
	json_decref(u->config);
	json_decref(u->profiles);
	json_decref(u->instances);
	json_decref(u->volumes);
}

static bool has_limits(const json_t *config)
{
	const char *key;
	json_t *v;

	json_object_foreach((json_t *)config, key, v)
		if (berth_startswith(key, "limits.") && *(json_string_value(v) ?: ""))
			return true;
	return false;
}

static int load_profiles(struct usage *u, struct berth_error *err)
{
	_cleanup_free_ char *pp = NULL;
	json_auto_t *list = NULL;
	json_t *p;
	size_t i;
	int r;

	r = db_project_feature_project(u->db, u->project, "features.profiles", &pp, err);
	if (r >= 0)
		r = db_profile_list(u->db, pp, &list, err);
	if (r < 0)
		return r;
	u->profiles = json_object();
	if (!u->profiles)
		return -ENOMEM;
	json_array_foreach(list, i, p)
		json_object_set(u->profiles, berth_json_string(p, "name") ?: "", p);
	return 0;
}

/* Custom volumes of the project on every pool (snapshots, "vol/snap", left out). */
static int load_volumes(struct usage *u, struct berth_error *err)
{
	json_auto_t *pools = NULL;
	json_t *pool;
	size_t i;
	int r;

	u->volumes = json_array();
	if (!u->volumes)
		return -ENOMEM;
	r = db_pool_list(u->db, &pools, err);
	if (r < 0)
		return r;
	json_array_foreach(pools, i, pool) {
		json_auto_t *vols = NULL;
		json_t *v;
		size_t k;

		r = db_volume_list(u->db, berth_json_string(pool, "name"), u->project, "custom",
				   &vols, err);
		if (r < 0)
			return r;
		json_array_foreach(vols, k, v)
			if (!strchr(berth_json_string(v, "name") ?: "", '/'))
				json_array_append(u->volumes, v);
	}
	return 0;
}

/* Fill `u` for `project`. *ret_limited is false (and nothing else is loaded) when the
 * project sets no limit and `always` is false. */
static int usage_load(struct db *db, const char *project, bool always, struct usage *u,
		      bool *ret_limited, struct berth_error *err)
{
	json_auto_t *p = NULL;
	int r;

	*u = (struct usage){.db = db, .project = project};
	r = db_project_get(db, project, &p, err);
	if (r < 0)
		return r;
	u->config = json_incref(json_object_get(p, "config"));
	*ret_limited = has_limits(u->config);
	if (!*ret_limited && !always)
		return 0;
	r = load_profiles(u, err);
	if (r >= 0)
		r = db_instance_list(db, project, &u->instances, err);
	if (r >= 0)
		r = load_volumes(u, err);
	return r;
}

/* Put `obj` in place of the element of `list` with the same name, or append it. */
static void list_put(json_t *list, const json_t *obj)
{
	const char *name = berth_json_string(obj, "name") ?: "";
	json_t *v;
	size_t i;

	json_array_foreach(list, i, v)
		if (streq(berth_json_string(v, "name") ?: "", name)) {
			json_array_set(list, i, (json_t *)obj);
			return;
		}
	json_array_append(list, (json_t *)obj);
}

/* {"config","devices"} of `inst` with its profiles applied in order, then its own. */
static json_t *expand(const struct usage *u, const json_t *inst)
{
	json_t *config = json_object(), *devices = json_object();
	json_t *name;
	size_t i;

	if (!config || !devices) {
		json_decref(config);
		json_decref(devices);
		return NULL;
	}
	json_array_foreach(json_object_get(inst, "profiles"), i, name) {
		json_t *p = json_object_get(u->profiles, json_string_value(name) ?: "");

		json_object_update(config, json_object_get(p, "config"));
		json_object_update(devices, json_object_get(p, "devices"));
	}
	json_object_update(config, json_object_get(inst, "config"));
	json_object_update(devices, json_object_get(inst, "devices"));
	return json_pack("{s:o, s:o}", "config", config, "devices", devices);
}

static bool parse_count(const char *v, int64_t *ret)
{
	char *end;
	long long n;

	if (!v || !isdigit((unsigned char)*v))
		return false;
	errno = 0;
	n = strtoll(v, &end, 10);
	if (errno || *end)
		return false;
	*ret = n;
	return true;
}

/* A limit's value (or an instance's value for it) as a number: bytes for memory and
 * disk, a count for processes and CPUs (pinned CPU sets cannot be added up). */
static int parse_value(const char *key, const char *value, int64_t *ret, struct berth_error *err)
{
	uint64_t bytes = 0;

	if (streq(key, "limits.memory") || streq(key, "limits.disk")) {
		if (strchr(value, '%'))
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "Value can't be a percentage");
		if (storage_parse_size(value, key, &bytes, NULL) < 0 || bytes > INT64_MAX)
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "Invalid size \"%s\"", value);
		*ret = (int64_t)bytes;
		return 0;
	}
	if (streq(key, "limits.cpu") && (strchr(value, ',') || strchr(value, '-')))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "CPUs can't be pinned if project limits are used");
	if (!parse_count(value, ret))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST, "Invalid value \"%s\"",
				       value);
	return 0;
}

/* The root disk's "size" of expanded devices, or NULL. */
static const char *root_size(const json_t *devices)
{
	const char *name;
	json_t *d;

	json_object_foreach((json_t *)devices, name, d)
		if (streq(berth_json_string(d, "type") ?: "", "disk") &&
		    streq(berth_json_string(d, "path") ?: "", "/"))
			return berth_json_string(d, "size");
	return NULL;
}

/* The instance's value for `key`; with `skip_unset`, 0 for a missing or unusable one
 * (what the state endpoint shows) instead of LXD's errors. */
static int instance_value(const struct usage *u, const json_t *inst, const char *key,
			  bool skip_unset, int64_t *ret, struct berth_error *err)
{
	const char *name = berth_json_string(inst, "name") ?: "";
	json_auto_t *x = expand(u, inst);
	const char *v;

	if (!x)
		return -ENOMEM;
	*ret = 0;
	if (streq(key, "limits.disk")) {
		v = root_size(json_object_get(x, "devices"));
		if ((!v || !*v) && skip_unset)
			return 0;
		if (!v || !*v)
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "Instance \"%s\" in project \"%s\" has no \"size\" "
					       "config set on the root device either directly or "
					       "via a profile",
					       name, u->project);
	} else {
		v = berth_json_string(json_object_get(x, "config"), key);
		if ((!v || !*v) && skip_unset)
			return 0;
		if (!v || !*v)
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "Instance \"%s\" in project \"%s\" has no \"%s\" "
					       "config, either directly or via a profile",
					       name, u->project, key);
	}
	if (parse_value(key, v, ret, NULL) < 0 && !skip_unset)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Failed parsing \"%s\" for instance \"%s\" in project "
				       "\"%s\"",
				       key, name, u->project);
	return 0;
}

/* Sum of `key` over the instances (and, for limits.disk, the custom volumes). */
static int usage_total(const struct usage *u, const char *key, bool skip_unset, int64_t *ret,
		       struct berth_error *err)
{
	int64_t total = 0, v = 0;
	json_t *x;
	size_t i;
	int r;

	json_array_foreach(u->instances, i, x) {
		r = instance_value(u, x, key, skip_unset, &v, err);
		if (r < 0)
			return r;
		total += v;
	}
	if (streq(key, "limits.disk"))
		json_array_foreach(u->volumes, i, x) {
			const char *name = berth_json_string(x, "name") ?: "";
			const char *size = berth_json_string(json_object_get(x, "config"), "size");

			if ((!size || !*size) && skip_unset)
				continue;
			if (!size || !*size)
				return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
						       "Custom volume \"%s\" in project \"%s\" has "
						       "no \"size\" config set",
						       name, u->project);
			r = parse_value(key, size, &v, skip_unset ? NULL : err);
			if (r < 0 && skip_unset)
				continue;
			if (r < 0)
				return r;
			total += v;
		}
	*ret = total;
	return 0;
}

/* Every aggregate limit the project sets, against the totals of `u` as it is now. */
static int check_aggregates(const struct usage *u, struct berth_error *err)
{
	for (size_t i = 0; i < ARRAY_SIZE(aggregate_keys); i++) {
		const char *key = aggregate_keys[i];
		const char *value = berth_json_string(u->config, key);
		int64_t limit = 0, total = 0;
		int r;

		if (!value || !*value)
			continue;
		r = parse_value(key, value, &limit, err);
		if (r >= 0)
			r = usage_total(u, key, false, &total, err);
		if (r < 0)
			return r;
		if (total > limit)
			return berth_error_set(err, -EDQUOT, BERTH_ERR_BAD_REQUEST,
					       "Reached maximum aggregate value \"%s\" for \"%s\" "
					       "in project \"%s\"",
					       value, key, u->project);
	}
	return 0;
}

static int64_t count_type(const json_t *instances, const char *type)
{
	int64_t n = 0;
	json_t *x;
	size_t i;

	json_array_foreach(instances, i, x)
		if (!type || streq(berth_json_string(x, "type") ?: "container", type))
			n++;
	return n;
}

/* limits.instances and limits.containers / limits.virtual-machines for one more. */
static int check_counts(const struct usage *u, const char *type, struct berth_error *err)
{
	const char *key = streq(type, "virtual-machine") ? "limits.virtual-machines"
							 : "limits.containers";
	const char *v = berth_json_string(u->config, key);
	int64_t limit;

	if (v && *v && parse_count(v, &limit) && count_type(u->instances, type) >= limit)
		return berth_error_set(err, -EDQUOT, BERTH_ERR_BAD_REQUEST,
				       "Reached maximum number of instances of type \"%s\" in "
				       "project \"%s\"",
				       type, u->project);
	v = berth_json_string(u->config, "limits.instances");
	if (v && *v && parse_count(v, &limit) && count_type(u->instances, NULL) >= limit)
		return berth_error_set(err, -EDQUOT, BERTH_ERR_BAD_REQUEST,
				       "Reached maximum number of instances in project \"%s\"",
				       u->project);
	return 0;
}

int project_limits_check_instance(struct db *db, const char *project, const json_t *inst,
				  bool creating, struct berth_error *err)
{
	_cleanup_(usage_release) struct usage u = {0};
	const char *type = berth_json_string(inst, "type");
	bool limited = false;
	int r;

	r = usage_load(db, project, false, &u, &limited, err);
	if (r < 0 || !limited)
		return r;
	if (creating) {
		r = check_counts(&u, type && *type ? type : "container", err);
		if (r < 0)
			return r;
	}
	list_put(u.instances, inst);
	r = check_aggregates(&u, err);
	if (r < 0)
		return berth_error_wrap(err, r, "Failed checking if instance %s allowed",
					creating ? "creation" : "update");
	return 0;
}

int project_limits_check_profile(struct db *db, const char *project, const json_t *profile,
				 struct berth_error *err)
{
	_cleanup_(usage_release) struct usage u = {0};
	bool limited = false;
	int r;

	r = usage_load(db, project, false, &u, &limited, err);
	if (r < 0 || !limited)
		return r;
	json_object_set(u.profiles, berth_json_string(profile, "name") ?: "", (json_t *)profile);
	r = check_aggregates(&u, err);
	if (r < 0)
		return berth_error_wrap(err, r, "Failed checking if profile update allowed");
	return 0;
}

int project_limits_check_volume(struct db *db, const char *project, const json_t *volume,
				struct berth_error *err)
{
	_cleanup_(usage_release) struct usage u = {0};
	bool limited = false;
	int r;

	r = usage_load(db, project, false, &u, &limited, err);
	if (r < 0 || !limited || !*(berth_json_string(u.config, "limits.disk") ?: ""))
		return r;
	list_put(u.volumes, volume);
	r = check_aggregates(&u, err);
	if (r < 0)
		return berth_error_wrap(err, r, "Failed checking if volume creation allowed");
	return 0;
}

/* "1GiB", "1.50GiB", "512MiB", "100B": how LXD shows a byte total in its errors. */
static void format_bytes(int64_t n, char *buf, size_t len)
{
	static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
	double v = (double)n;
	size_t u = 0;

	while (v >= 1024 && u + 1 < ARRAY_SIZE(units)) {
		v /= 1024;
		u++;
	}
	if (v == (double)(int64_t)v)
		snprintf(buf, len, "%" PRId64 "%s", (int64_t)v, units[u]);
	else
		snprintf(buf, len, "%.2f%s", v, units[u]);
}

/* One changed limit against the current use of `u`. */
static int check_lowered(const struct usage *u, const char *key, const char *value,
			 struct berth_error *err)
{
	int64_t limit = 0, total = 0;
	char shown[32];
	int r;

	if (streq(key, "limits.instances") || streq(key, "limits.containers") ||
	    streq(key, "limits.virtual-machines")) {
		const char *type = streq(key, "limits.containers")	   ? "container"
				   : streq(key, "limits.virtual-machines") ? "virtual-machine"
									   : NULL;

		if (!parse_count(value, &limit))
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "Invalid value \"%s\" for limit \"%s\"", value, key);
		total = count_type(u->instances, type);
		if (limit >= total)
			return 0;
		if (!type)
			return berth_error_set(err, -EBUSY, BERTH_ERR_BAD_REQUEST,
					       "Can't change limits.instances in project \"%s\": "
					       "\"limits.instances\" is too low: there currently "
					       "are %" PRId64 " total instances in project \"%s\"",
					       u->project, total, u->project);
		return berth_error_set(err, -EBUSY, BERTH_ERR_BAD_REQUEST,
				       "Can't change \"%s\" in project \"%s\": \"%s\" is too low: "
				       "there currently are %" PRId64 " instances of type %s in "
				       "project \"%s\"",
				       key, u->project, key, total, type, u->project);
	}
	r = parse_value(key, value, &limit, err);
	if (r < 0)
		return berth_error_wrap(err, r, "Invalid value \"%s\" for limit \"%s\"", value,
					key);
	r = usage_total(u, key, false, &total, err);
	if (r < 0 || limit >= total)
		return r;
	if (streq(key, "limits.memory") || streq(key, "limits.disk"))
		format_bytes(total, shown, sizeof(shown));
	else
		snprintf(shown, sizeof(shown), "%" PRId64, total);
	return berth_error_set(err, -EBUSY, BERTH_ERR_BAD_REQUEST,
			       "\"%s\" is too low: current total is \"%s\"", key, shown);
}

int project_limits_check_config(struct db *db, const char *project, const json_t *cur,
				const json_t *next, struct berth_error *err)
{
	_cleanup_(usage_release) struct usage u = {0};
	bool limited = false;
	const char *key;
	json_t *v;
	int r;

	if (!has_limits(next))
		return 0;
	r = usage_load(db, project, true, &u, &limited, err);
	if (r < 0)
		return r;
	json_object_foreach((json_t *)next, key, v) {
		const char *value = json_string_value(v) ?: "";

		if (!berth_startswith(key, "limits.") || !*value ||
		    streq(value, berth_json_string(cur, key) ?: ""))
			continue;
		r = check_lowered(&u, key, value, err);
		if (r < 0)
			return r;
	}
	return 0;
}

/* One {"limit", "usage"} entry: limit -1 when the project sets none. */
static int state_add(json_t *resources, const char *name, const char *limit_value, const char *key,
		     int64_t usage, struct berth_error *err)
{
	int64_t limit = -1;
	int r;

	if (limit_value && *limit_value) {
		r = key ? parse_value(key, limit_value, &limit, err)
			: (parse_count(limit_value, &limit) ? 0 : -EINVAL);
		if (r < 0)
			return berth_error_set(err, r, BERTH_ERR_INTERNAL,
					       "Invalid value \"%s\" for \"limits.%s\"",
					       limit_value, name);
	}
	return json_object_set_new(resources, name,
				   json_pack("{s:I, s:I}", "limit", (json_int_t)limit, "usage",
					     (json_int_t)usage)) < 0
		       ? -ENOMEM
		       : 0;
}

int project_limits_state(struct db *db, const char *project, json_t **ret, struct berth_error *err)
{
	static const struct {
		const char *name, *key;
	} aggregates[] = {
		{"cpu", "limits.cpu"},
		{"disk", "limits.disk"},
		{"memory", "limits.memory"},
		{"processes", "limits.processes"},
	};
	_cleanup_(usage_release) struct usage u = {0};
	json_auto_t *resources = json_object();
	bool limited = false;
	int r;

	if (!resources)
		return -ENOMEM;
	r = usage_load(db, project, true, &u, &limited, err);
	if (r >= 0)
		r = state_add(resources, "instances",
			      berth_json_string(u.config, "limits.instances"), NULL,
			      count_type(u.instances, NULL), err);
	if (r >= 0)
		r = state_add(resources, "containers",
			      berth_json_string(u.config, "limits.containers"), NULL,
			      count_type(u.instances, "container"), err);
	if (r >= 0)
		r = state_add(resources, "virtual-machines",
			      berth_json_string(u.config, "limits.virtual-machines"), NULL,
			      count_type(u.instances, "virtual-machine"), err);
	for (size_t i = 0; r >= 0 && i < ARRAY_SIZE(aggregates); i++) {
		int64_t total = 0;

		r = usage_total(&u, aggregates[i].key, true, &total, err);
		if (r >= 0)
			r = state_add(resources, aggregates[i].name,
				      berth_json_string(u.config, aggregates[i].key),
				      aggregates[i].key, total, err);
	}
	if (r < 0)
		return r;
	*ret = json_pack("{s:O}", "resources", resources);
	return *ret ? 0 : -ENOMEM;
}
