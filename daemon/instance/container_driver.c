/* daemon/instance/container_driver.c: the "container" instance driver (driver.h): the
 * table over container.c (monitor, cgroups, spec) and the device code that acts on a
 * running container (nic.c, disk.c, proxy.c). What the ops add to those functions is
 * only what the seam needs: the power enum, and each hot-plug asking for PID 1 first. */
#include <assert.h>

#include "daemon/instance/container.h"
#include "daemon/instance/disk.h"
#include "daemon/instance/driver.h"
#include "daemon/instance/nic.h"
#include "daemon/instance/proxy.h"
#include "lib/json.h"

static_assert((int)INSTANCE_STOPPED == (int)CONTAINER_STOPPED &&
		      (int)INSTANCE_RUNNING == (int)CONTAINER_RUNNING &&
		      (int)INSTANCE_FROZEN == (int)CONTAINER_FROZEN &&
		      (int)INSTANCE_STOPPING == (int)CONTAINER_STOPPING &&
		      (int)INSTANCE_UNRESPONSIVE == (int)CONTAINER_UNRESPONSIVE &&
		      (int)INSTANCE_POWER_MAX == (int)CONTAINER_POWER_MAX,
	      "container_power and instance_power differ");

static enum instance_power ct_power(const struct berth_daemon *d, const char *project,
				    const char *name, pid_t *ret_pid)
{
	return (enum instance_power)container_power(d, project, name, ret_pid);
}

static enum instance_power ct_power_quick(const struct berth_daemon *d, const char *project,
					  const char *name)
{
	return (enum instance_power)container_power_quick(d, project, name);
}

static int ct_unresponsive_error(const char *name, struct berth_error *err)
{
	return container_timeout_error(name, CONTAINER_STATUS_TIMEOUT_S, err);
}

/* PID 1 of the container as it is now; 0 when it stopped (the hot-plug is then a no-op:
 * the next start builds the devices). */
static pid_t ct_pid(const struct berth_daemon *d, const char *project, const char *name)
{
	pid_t pid = 0;

	if (container_power(d, project, name, &pid) == CONTAINER_STOPPED)
		return 0;
	return pid;
}

/* NICs, then disks; when the disks fail, both go back. */
static int ct_update_devices(struct berth_daemon *d, const char *project, const json_t *before,
			     const json_t *after, struct berth_error *err)
{
	const char *name = berth_json_string(after, "name");
	int r = nic_hotplug(d, project, ct_pid(d, project, name), before, after, err);

	if (r < 0)
		return r;
	r = disk_hotplug(d, project, ct_pid(d, project, name), before, after, err);
	if (r < 0) {
		disk_hotplug(d, project, ct_pid(d, project, name), after, before, NULL);
		nic_hotplug(d, project, ct_pid(d, project, name), after, before, NULL);
	}
	return r;
}

static int ct_update_outside(struct berth_daemon *d, const char *project, const char *name,
			     struct berth_error *err)
{
	if (container_power(d, project, name, NULL) == CONTAINER_STOPPED)
		return 0;
	return proxy_instance_updated(d, project, name, err);
}

const struct instance_driver container_driver = {
	.type = "container",
	.power = ct_power,
	.power_quick = ct_power_quick,
	.unresponsive_error = ct_unresponsive_error,
	.run_dir = container_rundir,
	.exec_helper = container_monitor_binary,
	.console_open = container_console_open,
	.start = container_start,
	.stop = container_stop,
	.restart = container_restart,
	.freeze = container_freeze,
	.state = container_state,
	.update_limits = container_update_limits,
	.update_devices = ct_update_devices,
	.update_outside = ct_update_outside,
	.next_start_notice = container_next_start_notice,
	.devices_release = nic_release_leases,
	.devices_forget = nic_forget_volatile,
};
