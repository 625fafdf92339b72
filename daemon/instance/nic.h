/* daemon/instance/nic.h: `nic` devices of instances: their validation, the spec's `nic`
 * lines they turn into (with the MAC and host interface name kept in volatile config),
 * leases on managed networks (daemon/network/network.h), hot-plug into and unplug from
 * running containers, and the "network" map of the instance state. */
#pragma once

#include <jansson.h>
#include <sys/types.h>

#include "daemon/daemon.h"
#include "daemon/runtime/spec.h"
#include "lib/error.h"

/* Check the nic device `name` (an object of strings with "type": "nic"): nictype
 * bridged/macvlan/p2p or network=, the keys each takes, interface names, hwaddr, mtu,
 * limits, static addresses only with network=. -EINVAL with a 400 naming the key. */
int nic_check_device(const char *name, const json_t *dev, struct berth_error *err);

/* Parse a bit rate as LXD writes limits.ingress ("10Mbit", "1Gbit", "500kbit", "8000"):
 * bits per second into *ret. */
int nic_parse_rate(const char *s, uint64_t *ret);

/* The spec NICs of instance `inst` (name, expanded_config, expanded_devices): network=
 * resolved and its lease registered, volatile.<dev>.hwaddr and volatile.<dev>.host_name
 * generated and stored when missing. Worker thread. */
int nic_spec_build(struct berth_daemon *d, const char *project, const json_t *inst,
		   struct runtime_spec *spec, struct berth_error *err);

/* A running container's instance changed from `before` to `after` (both expanded): NICs
 * that went away are removed from its namespace, new or changed ones created there, the
 * spec on disk rewritten so that a reboot from inside keeps them. `pid` is its PID 1 as
 * the caller just read it (<= 0: stopped, nothing to do). Worker thread. */
int nic_hotplug(struct berth_daemon *d, const char *project, pid_t pid, const json_t *before,
		const json_t *after, struct berth_error *err);

/* Drop the leases of the NICs of `before` that `after` (NULL: the instance is deleted)
 * no longer has. */
void nic_release_leases(struct berth_daemon *d, const char *project, const json_t *before,
			const json_t *after);

/* Remove volatile.<dev>.* of the devices `before` had and `after` has not from the stored
 * instance `name` (LXD does the same: a device added again later is a new one). */
int nic_forget_volatile(struct db *db, const char *project, const json_t *before,
			const json_t *after, struct berth_error *err);

/* The "network" object of GET /1.0/instances/NAME/state for the container whose PID 1 is
 * `pid`, read from its namespace; host_name from the spec in `rundir`. New reference;
 * an empty object when the namespace cannot be read. */
json_t *nic_state(const char *rundir, pid_t pid);
