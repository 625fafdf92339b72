/* daemon/instance/common.h: what the container driver (container.c) and the device code
 * (nic.c, disk.c, proxy.c) share, so that none of them includes another's header: where a
 * container's runtime files live, the device diff hot-plug works from, and the URL
 * lifecycle events name an instance by. */
#pragma once

#include <jansson.h>
#include <stdbool.h>

#include "daemon/daemon.h"

/* $BERTH_DIR/run/<project>_<name> (new string). */
char *container_rundir(const struct berth_daemon *d, const char *project, const char *name);
/* The spec file in that run directory (new string). */
char *container_spec_path(const struct berth_daemon *d, const char *project, const char *name);
/* The devices of expanded instance `a` for which `keep` is true and that `b` lacks or has
 * differently: a new object devname -> device (shared references); NULL when out of memory. */
json_t *container_devices_diff(const json_t *a, const json_t *b, bool (*keep)(const json_t *dev));
/* "/1.0/instances/<name>", plus "?project=<project>" outside "default" (new string, NULL
 * when out of memory): the source of an instance's lifecycle events. */
char *instance_url(const char *project, const char *name);
