/* daemon/instance/driver.c: the instance drivers by type (see driver.h). */
#include "daemon/instance/driver.h"

#include <errno.h>
#include <string.h>

#include "daemon/vm/host.h"
#include "lib/json.h"
#include "lib/macros.h"
#include "lib/util.h"

static const struct instance_driver *const drivers[] = {
	&container_driver,
	&vm_driver,
};

int instance_driver_get(const char *type, const char *name, const struct instance_driver **ret,
			struct berth_error *err)
{
	if (!type || !*type)
		type = "container";
	/* A VM this host could never start is refused before anything is written. */
	if (streq(type, "virtual-machine") && vm_host_require(vm_host_get(), err) < 0)
		return berth_error_wrap(err, -EOPNOTSUPP, "Cannot create instance \"%s\"", name);
	for (size_t i = 0; i < ARRAY_SIZE(drivers); i++)
		if (streq(drivers[i]->type, type)) {
			*ret = drivers[i];
			return 0;
		}
	return berth_error_set(err, -EOPNOTSUPP, BERTH_ERR_BAD_REQUEST,
			       "Invalid instance type \"%s\" (container or virtual-machine)", type);
}

int instance_driver_of(const json_t *inst, const struct instance_driver **ret,
		       struct berth_error *err)
{
	const char *type = berth_json_string(inst, "type");

	/* A stored VM has its driver whatever the host: starting it says what is missing. */
	if (type && streq(type, "virtual-machine")) {
		*ret = &vm_driver;
		return 0;
	}
	return instance_driver_get(type, berth_json_string(inst, "name") ?: "", ret, err);
}
