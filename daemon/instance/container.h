/* daemon/instance/container.h: berthd's side of the container runtime (doc/runtime.md):
 * the spec an instance's expanded config and devices turn into, the run directory and
 * cgroup of a container, `berth-monitor start`, requests on the monitor's socket
 * (status, stop, restart, freeze), the state read from the cgroups, and a `wait`
 * connection per running container on the loop so that berthd learns of stops it did
 * not ask for. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <sys/types.h>

#include "daemon/daemon.h"
#include "daemon/instance/common.h"
#include "lib/error.h"

enum container_power {
	CONTAINER_STOPPED,
	CONTAINER_RUNNING,
	CONTAINER_FROZEN,
	CONTAINER_STOPPING,
	CONTAINER_UNRESPONSIVE, /* the monitor did not answer in time: "Error" (112) */
	CONTAINER_POWER_MAX,
};

/* The cgroup path of doc/runtime.md (new string). */
char *container_cgroup(const struct berth_daemon *d, const char *project, const char *name);
/* The berth-monitor binary: $BERTH_MONITOR, <exe dir>/../libexec/berth/berth-monitor,
 * <exe dir>/berth-monitor (the build tree). -ENOENT when none is executable. */
int container_monitor_binary(char **ret);

/* How long a status request waits for the monitor, and how long past its own timeout a
 * stop (or a kill) waits for the monitor's answer. */
#define CONTAINER_STATUS_TIMEOUT_S 5
#define CONTAINER_KILL_TIMEOUT_S 30

/* Send one request line to the container's monitor and read its reply line (new string,
 * without "ok "/newline; an "error MSG" reply is -EIO with err set to MSG). -ENOENT or
 * -ECONNREFUSED when no monitor runs. Blocking: a worker thread. A monitor that does not
 * answer within `timeout_s` (> 0; -EINVAL otherwise) is -ETIMEDOUT with err set by
 * container_timeout_error(). */
int container_request(const char *rundir, const char *request, int timeout_s, char **ret,
		      struct berth_error *err);
/* -ETIMEDOUT with "Monitor of instance NAME did not answer within Ns". */
int container_timeout_error(const char *name, int timeout_s, struct berth_error *err);
/* A connection to the monitor's socket whose connect, sends and reads give up after
 * `timeout_s` (-ETIMEDOUT when connect() did). Blocking. */
int container_monitor_connect(const char *rundir, int timeout_s);

/* What the monitor says (STOPPED when none answers, UNRESPONSIVE when it does not answer
 * within CONTAINER_STATUS_TIMEOUT_S), and PID 1's host pid. Blocking. Once a request
 * timed out, only one caller at a time waits on the monitor until it answers again;
 * the others get UNRESPONSIVE at once. */
enum container_power container_power(const struct berth_daemon *d, const char *project,
				     const char *name, pid_t *ret_pid);
/* The same, without asking the monitor again when it said "running" since berthd last
 * started, stopped, restarted or froze the container and its `wait` connection is still
 * open. A container that stops on its own is seen stopped once the monitor has answered
 * that `wait`: in between, a caller may still hear RUNNING and meet a monitor that
 * refuses. Blocking. */
enum container_power container_power_quick(const struct berth_daemon *d, const char *project,
					   const char *name);
/* A request to the monitor timed out (outside container_power()): the next
 * container_power_quick() asks it, and while it stays stuck container_power() lets one
 * request at a time wait on it, the others hearing UNRESPONSIVE at once. */
void container_power_forget(struct berth_daemon *d, const char *project, const char *name);
/* A stream of the running container's console (new fd in *ret): the monitor said "ok" to
 * its `console` request. The monitor's timeout error when it does not answer. Blocking. */
int container_console_open(struct berth_daemon *d, const char *project, const char *name, int *ret,
			   struct berth_error *err);
const char *container_power_status(enum container_power p); /* "Running", ... */
int container_power_code(enum container_power p);	    /* 103, ... */

/* Worker thread. `inst` is the instance object with expanded_config and expanded_devices.
 * Builds and writes the spec, starts the monitor, records status Running and watches it.
 * -EALREADY (400 "The instance is already running") when it runs. */
int container_start(struct berth_daemon *d, const char *project, json_t *inst,
		    struct berth_error *err);
/* Stop cleanly within `timeout_s` (then kill), or at once when `force`. Emits
 * instance-shutdown (clean) or instance-stopped (forced). */
int container_stop(struct berth_daemon *d, const char *project, const char *name, int timeout_s,
		   bool force, struct berth_error *err);
int container_restart(struct berth_daemon *d, const char *project, const char *name, int timeout_s,
		      bool force, struct berth_error *err);
int container_freeze(struct berth_daemon *d, const char *project, const char *name, bool freeze,
		     struct berth_error *err);

/* Worker thread. `before` and `after` are the instance object before and after an update
 * (with expanded_config). When the limits.* keys berth applies live differ and the
 * container runs, its monitor sets its cgroups to the limits of `after` at once (a limit
 * `after` lacks is lifted). BAD_REQUEST when a value does not fit this host (a CPU it
 * lacks); the kernel's refusal (memory below what is in use) names the cgroup file. */
int container_update_limits(struct berth_daemon *d, const char *project, const json_t *before,
			    const json_t *after, struct berth_error *err);

/* When `after` changes keys that the running container only reads at its start
 * (security.*, raw.*, environment.*, linux.kernel_modules), a message saying so (new
 * string); NULL when none changed, it is stopped or out of memory. Blocking. */
char *container_next_start_notice(struct berth_daemon *d, const char *project, const json_t *before,
				  const json_t *after);

/* The InstanceState object (status, pid, processes, memory, cpu...) from the monitor and
 * the cgroups. Blocking. */
json_t *container_state(const struct berth_daemon *d, const char *project, const char *name);

/* ---- the loop side ---- */
struct container_watcher;
/* Loop thread, at start. */
int container_watcher_new(struct berth_daemon *d, struct container_watcher **ret);
/* Any thread: have the loop keep a `wait` connection to this container's monitor. */
void container_watch(struct berth_daemon *d, const char *project, const char *name);
/* Loop thread, at shutdown: drop the connections (the containers keep running). */
void container_watcher_close(struct container_watcher *w);
void container_watcher_free(struct container_watcher *w);
/* At start, before serving: every instance recorded Running or with a run directory is
 * re-attached when its monitor answers, else marked Stopped with its leftover cgroups and
 * run directory removed. Blocking (the main thread before the loop runs). */
int container_reconcile(struct berth_daemon *d);
/* Remove the now empty parent of this daemon's container cgroups (berthd's exit). */
void container_cleanup_cgroups(const struct berth_daemon *d);
