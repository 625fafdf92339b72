/* daemon/instance/expand.c: profile expansion and the cache of expanded instances (see
 * expand.h). */
#define LOG_CATEGORY "expand"
#include "daemon/instance/expand.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/db/db.h"
#include "lib/json.h"
#include "lib/macros.h"
#include "lib/util.h"

int instance_expand_profiles(struct db *db, const char *project, json_t **ret,
			     struct berth_error *err)
{
	_cleanup_free_ char *pp = NULL;
	json_auto_t *list = NULL;
	json_auto_t *map = NULL;
	json_t *p;
	size_t i;
	int r = db_project_feature_project(db, project, "features.profiles", &pp, err);

	if (r < 0)
		return r;
	r = db_profile_list(db, pp, &list, err);
	if (r < 0)
		return r;
	map = json_object();
	if (!map)
		return -ENOMEM;
	json_array_foreach(list, i, p)
		if (json_object_set(map, berth_json_string(p, "name"), p) < 0)
			return -ENOMEM;
	*ret = TAKE_PTR(map);
	return 0;
}

/* Merge object `src` (absent: nothing) into `dst`. */
static int merge(json_t *dst, const json_t *src)
{
	if (!json_is_object(src))
		return 0;
	return json_object_update(dst, (json_t *)src) < 0 ? -ENOMEM : 0;
}

int instance_expand(json_t *inst, const json_t *profiles)
{
	json_auto_t *config = json_object();
	json_auto_t *devices = json_object();
	json_auto_t *location = json_string("none");
	json_t *name;
	size_t i;

	if (!config || !devices || !location)
		return -ENOMEM;
	json_array_foreach(json_object_get(inst, "profiles"), i, name) {
		json_t *p = json_object_get(profiles, json_string_value(name));
		if (!p)
			continue;
		if (merge(config, json_object_get(p, "config")) < 0 ||
		    merge(devices, json_object_get(p, "devices")) < 0)
			return -ENOMEM;
	}
	if (merge(config, json_object_get(inst, "config")) < 0 ||
	    merge(devices, json_object_get(inst, "devices")) < 0)
		return -ENOMEM;
	/* The last set may fail after the first ones: undo them so `inst` stays whole. */
	if (json_object_set(inst, "expanded_config", config) < 0 ||
	    json_object_set(inst, "expanded_devices", devices) < 0 ||
	    json_object_set(inst, "location", location) < 0) {
		json_object_del(inst, "expanded_config");
		json_object_del(inst, "expanded_devices");
		return -ENOMEM;
	}
	return 0;
}

/* The instances expanded last, kept while their handle's generation stays the same: an
 * exec or a start then reads no row (three read transactions, about half a millisecond
 * here). Every committed write (a profile, a project's features.profiles, the instance)
 * moves the generation on, so nothing else invalidates an entry. An entry is keyed on its
 * handle too: two handles never share entries. Callers get a deep copy to change as they
 * like. */
#define EXPANDED_CACHE_SIZE 32

struct expanded_entry {
	char *project, *name; /* owned; NULL: empty slot */
	const struct db *db;  /* borrowed: only compared, never used */
	uint64_t generation;
	json_t *inst; /* owned */
};

static struct {
	pthread_mutex_t lock;
	struct expanded_entry e[EXPANDED_CACHE_SIZE];
	unsigned next; /* the slot to take when none is empty or stale */
} expanded_cache = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void expanded_entry_clear(struct expanded_entry *e)
{
	free(e->project);
	free(e->name);
	json_decref(e->inst);
	*e = (struct expanded_entry){0};
}

static json_t *expanded_cache_get(const struct db *db, const char *project, const char *name,
				  uint64_t gen)
{
	json_t *copy = NULL;

	pthread_mutex_lock(&expanded_cache.lock);
	for (size_t i = 0; i < EXPANDED_CACHE_SIZE; i++) {
		struct expanded_entry *e = &expanded_cache.e[i];
		if (e->name && e->db == db && e->generation == gen && streq(e->name, name) &&
		    streq(e->project, project)) {
			copy = json_deep_copy(e->inst);
			break;
		}
	}
	pthread_mutex_unlock(&expanded_cache.lock);
	return copy;
}

static void expanded_cache_put(const struct db *db, const char *project, const char *name,
			       uint64_t gen, const json_t *inst)
{
	struct expanded_entry fresh = {
		.project = strdup(project),
		.name = strdup(name),
		.db = db,
		.generation = gen,
		.inst = json_deep_copy(inst),
	};
	struct expanded_entry *slot = NULL;

	if (!fresh.project || !fresh.name || !fresh.inst) {
		expanded_entry_clear(&fresh);
		return;
	}
	pthread_mutex_lock(&expanded_cache.lock);
	for (size_t i = 0; i < EXPANDED_CACHE_SIZE && !slot; i++) {
		struct expanded_entry *e = &expanded_cache.e[i];
		if (!e->name || (e->db == db && e->generation != gen) ||
		    (e->db == db && streq(e->name, name) && streq(e->project, project)))
			slot = e;
	}
	if (!slot)
		slot = &expanded_cache.e[expanded_cache.next++ % EXPANDED_CACHE_SIZE];
	expanded_entry_clear(slot);
	*slot = fresh;
	pthread_mutex_unlock(&expanded_cache.lock);
}

void instance_expand_cache_release(void)
{
	pthread_mutex_lock(&expanded_cache.lock);
	for (size_t i = 0; i < EXPANDED_CACHE_SIZE; i++)
		expanded_entry_clear(&expanded_cache.e[i]);
	pthread_mutex_unlock(&expanded_cache.lock);
}

int instance_expand_load(struct db *db, const char *project, const char *name, json_t **ret,
			 struct berth_error *err)
{
	json_auto_t *profiles = NULL;
	uint64_t gen = db_generation(db); /* before the rows: see db_generation() */
	json_t *inst = expanded_cache_get(db, project, name, gen);
	int r;

	if (inst) {
		*ret = inst;
		return 0;
	}
	r = db_instance_get(db, project, name, &inst, err);
	if (r >= 0)
		r = instance_expand_profiles(db, project, &profiles, err);
	if (r >= 0)
		r = instance_expand(inst, profiles);
	if (r < 0) {
		json_decref(inst);
		return r;
	}
	expanded_cache_put(db, project, name, gen, inst);
	*ret = inst;
	return 0;
}
