/* daemon/instance/driver.c: the instance drivers by type (see driver.h). */
#include "daemon/instance/driver.h"

#include <errno.h>
#include <string.h>

#include "lib/json.h"
#include "lib/macros.h"
#include "lib/util.h"

static const struct instance_driver *const drivers[] = {
	&container_driver,
	/* &vm_driver, once virtual machines have a runtime */
};

/* Virtual machines need a driver berthd does not have yet: a record made for one could
 * never start, so it is refused up front. */
static int refuse_vm(const char *name, struct berth_error *err)
{
	return berth_error_set(err, -EOPNOTSUPP, BERTH_ERR_BAD_REQUEST,
			       "Cannot create instance \"%s\": virtual machines (type "
			       "\"virtual-machine\") are not supported by this server yet, only "
			       "containers",
			       name);
}

int instance_driver_get(const char *type, const char *name, const struct instance_driver **ret,
			struct berth_error *err)
{
	if (!type || !*type)
		type = "container";
	for (size_t i = 0; i < ARRAY_SIZE(drivers); i++)
		if (streq(drivers[i]->type, type)) {
			*ret = drivers[i];
			return 0;
		}
	if (streq(type, "virtual-machine"))
		return refuse_vm(name, err);
	return berth_error_set(err, -EOPNOTSUPP, BERTH_ERR_BAD_REQUEST,
			       "Invalid instance type \"%s\" (container or virtual-machine)", type);
}

int instance_driver_of(const json_t *inst, const struct instance_driver **ret,
		       struct berth_error *err)
{
	const char *type = berth_json_string(inst, "type");
	const char *name = berth_json_string(inst, "name") ?: "";

	/* A stored record is not being created: say what it is, not "Cannot create". */
	if (type && streq(type, "virtual-machine") &&
	    instance_driver_get(type, name, ret, NULL) < 0)
		return berth_error_set(err, -EOPNOTSUPP, BERTH_ERR_BAD_REQUEST,
				       "Instance \"%s\" is a virtual machine, which this server "
				       "cannot run yet",
				       name);
	return instance_driver_get(type, name, ret, err);
}
