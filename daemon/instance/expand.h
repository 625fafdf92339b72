/* daemon/instance/expand.h: profile expansion. An instance's expanded_config and
 * expanded_devices are its profiles' config and devices, in the order the instance lists
 * them, under its own. The expanded objects loaded last are cached here, per database
 * handle, while the handle's db_generation() keeps its value: any committed write (a
 * profile, a project's features.profiles) makes the next load read the rows again. */
#pragma once

#include <jansson.h>

#include "lib/error.h"

struct db;

/* name -> profile object of the profiles instances of `project` use (the project's own
 * with features.profiles, else the "default" project's): a new object in *ret. -ENOENT
 * when the project does not exist. Blocking. */
int instance_expand_profiles(struct db *db, const char *project, json_t **ret,
			     struct berth_error *err);

/* Add expanded_config, expanded_devices and location to the instance object `inst` (a db
 * row) from `profiles` (as instance_expand_profiles gives them). Profiles it names that
 * `profiles` lacks are skipped. -ENOMEM leaves `inst` as it was. */
int instance_expand(json_t *inst, const json_t *profiles);

/* The instance object (db row) with expanded_config and expanded_devices, the caller's
 * to change. Blocking, except when it was loaded since the database last changed. */
int instance_expand_load(struct db *db, const char *project, const char *name, json_t **ret,
			 struct berth_error *err);

/* Free the cache. At exit. (Entries of a closed handle are never found again: no
 * handle shows a generation another one had, whatever its address.) */
void instance_expand_cache_release(void);
