/* daemon/instance/common.c: the names and the device diff of common.h. */
#include "daemon/instance/common.h"

#include <string.h>

#include "lib/macros.h"
#include "lib/util.h"

char *container_rundir(const struct berth_daemon *d, const char *project, const char *name)
{
	return berth_strdup_printf("%s/run/%s_%s", d->dir, project, name);
}

char *container_spec_path(const struct berth_daemon *d, const char *project, const char *name)
{
	return berth_strdup_printf("%s/run/%s_%s/spec", d->dir, project, name);
}

json_t *container_devices_diff(const json_t *a, const json_t *b, bool (*keep)(const json_t *dev))
{
	const json_t *bdevs = json_object_get(b, "expanded_devices");
	json_t *out = json_object();
	const char *devname;
	json_t *dev;

	json_object_foreach(json_object_get(a, "expanded_devices"), devname, dev)
		if (out && keep(dev) && !json_equal(dev, json_object_get(bdevs, devname)))
			json_object_set(out, devname, dev);
	return out;
}

char *instance_url(const char *project, const char *name)
{
	_cleanup_free_ char *enc = berth_url_encode(name);

	if (!enc)
		return NULL;
	if (project && !streq(project, "default"))
		return berth_strdup_printf("/1.0/instances/%s?project=%s", enc, project);
	return berth_strdup_printf("/1.0/instances/%s", enc);
}
