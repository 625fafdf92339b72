/* daemon/instance/vm_driver.h: what the API needs of the VM driver beyond the driver
 * seam (driver.h): the per-VM berth-vmmon that holds the berth-agent session, for files,
 * exec and the guest's state (doc/vm.md, "berth-agent in a VM"). */
#pragma once

#include <jansson.h>

#include "daemon/daemon.h"
#include "lib/error.h"

/* The refusals of a VM's devices that need no database, in LXD's words where LXD refuses
 * the same (doc/vm.md, "Devices"): a proxy without nat=true, a disk with shift or
 * raw.mount.options, a disk that would share a directory. -EINVAL with a 400. */
int vm_devices_check(const json_t *devices, struct berth_error *err);

/* The run directory of the running VM `name` (new string in *ret_rundir) with its
 * berth-vmmon answering on monitor.sock: one is started when none answers (killed, or
 * lost with the host's processes) while QEMU runs. -ESRCH ("Instance is not running")
 * when QEMU does not run; the vmmon start's error otherwise. The agent may still be
 * down: vmmon_* calls then fail with LXD's agent-not-running message. */
int vm_monitor_ensure(const struct berth_daemon *d, const char *project, const char *name,
		      char **ret_rundir, struct berth_error *err);

/* The macvtaps of the VM whose run directory is `rundir` deleted (those its start made and
 * a stop did not delete: the guest powered itself off), before the run directory goes
 * (cleanup.c). Nothing when there are none. */
void vm_rundir_release(const char *rundir);
