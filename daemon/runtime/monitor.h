/* daemon/runtime/monitor.h: `berth-monitor start RUNDIR` (doc/runtime.md, "berth-monitor"):
 * detach, create the container, stay its parent, serve RUNDIR/monitor.sock until it
 * stops for good. */
#pragma once

/* Runs in the calling process until the start is decided: returns 0 once PID 1 has
 * lived start_grace_ms (the monitor then goes on in a detached child), or 1 after
 * printing one line on stderr saying why the start failed. */
int runtime_monitor_start(const char *rundir);
