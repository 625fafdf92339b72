/* daemon/instance/disk.h: `disk` devices of containers (other than the root disk): the
 * spec's `mount` lines they turn into, and their hot-plug into and unplug from running
 * containers (doc/runtime.md, "Disk devices").
 *
 * Custom volumes are stored with the ids the container sees (unshifted) and mounted
 * idmapped to the container's user namespace, so that its root owns the volume's root
 * and several containers with different maps can share one volume (LXD's
 * security.shifted behaviour). Where the idmapped mount is refused (or
 * BERTH_MONITOR_NO_IDMAP is set), a custom volume is shifted on disk once to the
 * container's map instead and the map recorded on it as volatile.idmap.last/next, as LXD
 * does. Host paths are mounted as they are, unless shift=true: then idmapped too, host
 * uid 0 showing as 0 inside. */
#pragma once

#include <jansson.h>

#include "daemon/daemon.h"
#include "daemon/runtime/spec.h"
#include "lib/error.h"

/* Append to spec->mounts one entry per disk device of `devices` (expanded_devices) that
 * is not the root disk; spec->privileged must be set already. A missing source is a 400
 * naming the device. Worker thread. */
int disk_spec_build(struct runtime_spec *spec, struct berth_daemon *d, const char *project,
		    const json_t *devices, struct berth_error *err);

/* A running container's instance changed from `before` to `after` (both expanded): disk
 * devices that went away (or changed) are unmounted inside it, new or changed ones
 * mounted there, and the spec on disk rewritten to what is mounted now, so that a restart
 * keeps them. Calling it again with the arguments swapped undoes a failed call. `pid` is
 * its PID 1 as the caller just read it (<= 0: stopped, nothing to do). Worker thread. */
int disk_hotplug(struct berth_daemon *d, const char *project, pid_t pid, const json_t *before,
		 const json_t *after, struct berth_error *err);
