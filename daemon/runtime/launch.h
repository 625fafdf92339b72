/* daemon/runtime/launch.h: how berthd starts its own helpers, berth-monitor and
 * berth-proxy, through lib/spawn (doc/runtime.md, "berth-monitor"; doc/proxy.md).
 *
 * Both detach themselves: `start` forks the long-lived process into a session of its
 * own and the starting process exits 0 once it is ready, or 1 with one line on stderr
 * saying why not. So a launch runs the starting process to its end, with a deadline,
 * and the line becomes the error. */
#pragma once

#include "lib/error.h"

/* `berth-monitor start RUNDIR` (the binary from berth_program_find("berth-monitor"):
 * $BERTH_MONITOR, or next to berthd). 0 once the container's PID 1 is ready. Else -errno
 * with `err` naming the program and ending with the monitor's own line ("\"PATH\" failed
 * (exit status 1): LINE"); -ENOENT when no berth-monitor is found; -ETIMEDOUT when the
 * start took longer than RUNTIME_MONITOR_START_TIMEOUT_MS (the starter is killed). */
int runtime_monitor_launch(const char *rundir, struct berth_error *err);

/* `berth-proxy start RUNDIR DEVICE`, the same way ($BERTH_PROXY, or next to berthd). */
int runtime_proxy_launch(const char *rundir, const char *device, struct berth_error *err);

/* `berth-vmmon start RUNDIR` ($BERTH_VMMON, or next to berthd): 0 once it listens on
 * RUNDIR/monitor.sock (doc/vm.md, "berth-vmmon"). */
int runtime_vmmon_launch(const char *rundir, struct berth_error *err);

#define RUNTIME_MONITOR_START_TIMEOUT_MS (5 * 60 * 1000)
#define RUNTIME_PROXY_START_TIMEOUT_MS (60 * 1000)
#define RUNTIME_VMMON_START_TIMEOUT_MS (30 * 1000)
