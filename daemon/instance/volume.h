/* daemon/instance/volume.h: finding an instance's root volume (its pool and its name on
 * disk), for the instance, snapshot, file and exec code. */
#pragma once

#include <jansson.h>

#include "daemon/daemon.h"
#include "lib/error.h"
#include "storage/driver.h"

/* An instance's root volume as the drivers need it. */
struct instance_volume {
	struct storage_pool *pool; /* owned; NULL: the instance has no root volume */
	char *disk_name;	   /* owned: <project>_<name> */
	struct storage_vol vol;	   /* borrows disk_name */
};
void instance_volume_release(struct instance_volume *v);

/* The type of the root volume of instance object `inst`: STORAGE_VOL_VM for a
 * "virtual-machine", else STORAGE_VOL_CONTAINER. */
enum storage_volume_type instance_volume_type(const json_t *inst);

/* Open the root volume of `project`/`name` on its pool (pool NULL when it has none). */
int instance_volume_open(struct berth_daemon *d, const char *project, const char *name,
			 struct instance_volume *ret, struct berth_error *err);
/* Open volume `name` of `project` and `type` on pool `pool` (a custom volume being
 * migrated: daemon/instance/migrate_volume.h). */
int instance_volume_open_on(struct berth_daemon *d, const char *pool, const char *project,
			    const char *name, enum storage_volume_type type,
			    struct instance_volume *ret, struct berth_error *err);
