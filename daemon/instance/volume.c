/* daemon/instance/volume.c: an instance's root volume: its pool (from the database) and
 * its name on disk. */
#include "daemon/instance/volume.h"

#include <stdlib.h>
#include <string.h>

#include "daemon/db/db.h"
#include "lib/json.h"
#include "lib/macros.h"
#include "lib/util.h"

enum storage_volume_type instance_volume_type(const json_t *inst)
{
	const char *type = berth_json_string(inst, "type");

	return type && streq(type, "virtual-machine") ? STORAGE_VOL_VM : STORAGE_VOL_CONTAINER;
}

void instance_volume_release(struct instance_volume *v)
{
	storage_pool_free(v->pool);
	free(v->disk_name);
	*v = (struct instance_volume){0};
}

int instance_volume_open_on(struct berth_daemon *d, const char *pool, const char *project,
			    const char *name, enum storage_volume_type type,
			    struct instance_volume *ret, struct berth_error *err)
{
	json_auto_t *p = NULL;
	int r = db_pool_get(d->db, pool, &p, err);

	*ret = (struct instance_volume){0};
	if (r >= 0)
		r = storage_pool_new(d->dir, p, &ret->pool, err);
	if (r < 0)
		return r;
	ret->disk_name = storage_vol_disk_name(project, name);
	if (!ret->disk_name) {
		instance_volume_release(ret);
		return -ENOMEM;
	}
	ret->vol = (struct storage_vol){type, ret->disk_name};
	return 0;
}

int instance_volume_open(struct berth_daemon *d, const char *project, const char *name,
			 struct instance_volume *ret, struct berth_error *err)
{
	_cleanup_free_ char *pool_name = NULL;
	json_auto_t *inst = NULL;
	int r = db_instance_pool(d->db, project, name, &pool_name, err);

	*ret = (struct instance_volume){0};
	if (r == -ENOENT) {
		berth_error_release(err);
		return 0;
	}
	if (r >= 0)
		r = instance_volume_open_on(d, pool_name, project, name, STORAGE_VOL_CONTAINER, ret,
					    err);
	if (r < 0)
		return r;
	if (db_instance_get(d->db, project, name, &inst, NULL) >= 0)
		ret->vol.type = instance_volume_type(inst);
	return 0;
}
