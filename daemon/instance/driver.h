/* daemon/instance/driver.h: the instance driver seam. What differs by instance type (how
 * an instance runs, stops, reports its state, takes a change of limits or devices while
 * it runs) is an ops table; the instance layer (instance.c) and the API reach a type's
 * runtime only through it.
 *
 * Drivers: "container" (container_driver.c over container.c, nic.c, disk.c, proxy.c) and
 * "virtual-machine" (vm_driver.c over daemon/vm/ and lib/qmp.c). */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <sys/types.h>

#include "daemon/daemon.h"
#include "lib/error.h"

/* What an instance's runtime says it is doing. */
enum instance_power {
	INSTANCE_STOPPED,
	INSTANCE_RUNNING,
	INSTANCE_FROZEN,
	INSTANCE_STOPPING,
	INSTANCE_UNRESPONSIVE, /* the driver's runtime did not answer in time: "Error" (112) */
	INSTANCE_POWER_MAX,
};

/* Every op is blocking (a worker thread) and takes the instance by project and name,
 * except where the expanded instance object (db row with expanded_config and
 * expanded_devices) is needed. Ops that fail return -errno with `err` set. */
struct instance_driver {
	const char *type; /* the instance's "type": "container" */

	/* What the runtime says, and PID 1's host pid when it runs (NULL: not wanted). */
	enum instance_power (*power)(const struct berth_daemon *d, const char *project,
				     const char *name, pid_t *ret_pid);
	/* The same, from what the driver last learnt when it can (no round trip). */
	enum instance_power (*power_quick)(const struct berth_daemon *d, const char *project,
					   const char *name);
	/* The error for INSTANCE_UNRESPONSIVE, naming the instance and the time waited. */
	int (*unresponsive_error)(const char *name, struct berth_error *err);
	/* The instance's run directory (new string, NULL when out of memory): its runtime
	 * files (console.log, lxc.log, lxc.conf) and the sockets the exec helper and the
	 * console stream connect to. */
	char *(*run_dir)(const struct berth_daemon *d, const char *project, const char *name);
	/* The program that runs a command in a running instance (new string in *ret; -ENOENT
	 * when there is none), called as `PROGRAM exec RUN_DIR OPTIONS... -- COMMAND...`
	 * (doc/runtime.md, "berth-monitor"). */
	int (*exec_helper)(char **ret);
	/* A stream of the running instance's console (new fd in *ret), LXD's `console`
	 * websocket's other end. The unresponsive error when the runtime does not answer. */
	int (*console_open)(struct berth_daemon *d, const char *project, const char *name, int *ret,
			    struct berth_error *err);
	/* Start from the expanded instance `inst`. -EALREADY when it runs. */
	int (*start)(struct berth_daemon *d, const char *project, json_t *inst,
		     struct berth_error *err);
	/* Stop cleanly within `timeout_s` (< 0: the driver's default), then kill; at once
	 * when `force`. */
	int (*stop)(struct berth_daemon *d, const char *project, const char *name, int timeout_s,
		    bool force, struct berth_error *err);
	int (*restart)(struct berth_daemon *d, const char *project, const char *name, int timeout_s,
		       bool force, struct berth_error *err);
	/* Freeze (`freeze` true) or thaw. */
	int (*freeze)(struct berth_daemon *d, const char *project, const char *name, bool freeze,
		      struct berth_error *err);
	/* The InstanceState object of a running (or frozen) instance. New reference. */
	json_t *(*state)(const struct berth_daemon *d, const char *project, const char *name);

	/* Live update of a running instance from expanded `before` to `after`: limits, then
	 * devices (each a no-op when it stopped meanwhile). `update_devices` undoes its own
	 * partial work when it fails; calling either with the arguments swapped undoes it. */
	int (*update_limits)(struct berth_daemon *d, const char *project, const json_t *before,
			     const json_t *after, struct berth_error *err);
	int (*update_devices)(struct berth_daemon *d, const char *project, const json_t *before,
			      const json_t *after, struct berth_error *err);
	/* The devices served from outside the instance (proxy helpers) follow its stored
	 * expanded devices; nothing when it does not run. */
	int (*update_outside)(struct berth_daemon *d, const char *project, const char *name,
			      struct berth_error *err);
	/* A message naming the changed keys the running instance only reads at its next
	 * start (new string), or NULL. */
	char *(*next_start_notice)(struct berth_daemon *d, const char *project,
				   const json_t *before, const json_t *after);
	/* After `after` replaced `before` (`after` NULL: the instance is deleted): the
	 * network leases held for devices `after` lacks are dropped (call it only when the
	 * instance does not run: a running one keeps them until it stops). */
	void (*devices_release)(struct berth_daemon *d, const char *project, const json_t *before,
				const json_t *after);
	/* The volatile keys of devices `after` lacks are removed from the stored instance. */
	int (*devices_forget)(struct db *db, const char *project, const json_t *before,
			      const json_t *after, struct berth_error *err);
};

/* The driver of instance type `type` (NULL or "": "container"). -EOPNOTSUPP when there is
 * none, or for "virtual-machine" when this host cannot run VMs: the 400 names instance
 * `name` and what is missing ("Cannot create instance ...: This host cannot run virtual
 * machines: ..."). */
int instance_driver_get(const char *type, const char *name, const struct instance_driver **ret,
			struct berth_error *err);

/* The driver of a stored instance object (its "type"). */
int instance_driver_of(const json_t *inst, const struct instance_driver **ret,
		       struct berth_error *err);

/* The container driver (container_driver.c). */
extern const struct instance_driver container_driver;
/* The virtual-machine driver (vm_driver.c): QEMU, doc/vm.md. */
extern const struct instance_driver vm_driver;
