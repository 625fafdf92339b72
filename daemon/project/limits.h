/* daemon/project/limits.h: a project's limits.* keys, enforced as LXD 5.0 does.
 *
 * Counts: limits.instances, limits.containers, limits.virtual-machines refuse a new
 * instance past them. Aggregates: limits.memory, limits.processes, limits.cpu (summed
 * over the instances' expanded config) and limits.disk (root disk "size" of every
 * instance plus "size" of every custom volume of the project) refuse a creation or an
 * update that would pass them; while one is set, every instance must carry the key
 * (directly or through a profile), as in LXD. A limit set below what the project uses
 * now is refused. Errors are 400 with LXD's wording and name the project. Every check
 * reads the database only: nothing is written, so a refusal leaves nothing behind. */
#pragma once

#include <jansson.h>
#include <stdbool.h>

#include "lib/error.h"

struct db;

/* Before creating (`creating`) or updating instance `inst` ({"name","type","config",
 * "devices","profiles"}, not expanded) in `project`. */
int project_limits_check_instance(struct db *db, const char *project, const json_t *inst,
				  bool creating, struct berth_error *err);
/* Before replacing profile `profile` ({"name","config","devices"}) that the instances of
 * `project` may use. */
int project_limits_check_profile(struct db *db, const char *project, const json_t *profile,
				 struct berth_error *err);
/* Before creating or updating custom volume `volume` ({"name","config"}) of `project`. */
int project_limits_check_volume(struct db *db, const char *project, const json_t *volume,
				struct berth_error *err);
/* Before the project's config becomes `next`: values must parse, and no limit changed
 * in it may be below the current use. */
int project_limits_check_config(struct db *db, const char *project, const json_t *cur,
				const json_t *next, struct berth_error *err);
/* GET /1.0/projects/{name}/state: {"resources": {"instances", "containers",
 * "virtual-machines", "cpu", "disk", "memory", "processes": {"limit", "usage"}}}, limit
 * -1 when unset; usage adds up what instances and volumes set (unset counts 0). */
int project_limits_state(struct db *db, const char *project, json_t **ret, struct berth_error *err);
