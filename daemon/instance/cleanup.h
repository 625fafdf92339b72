/* daemon/instance/cleanup.h: what an instance owns on the host outside its volume and its
 * database rows: its run directory ($BERTH_DIR/run/<project>_<name>: the monitor's socket
 * and log, console.log, the spec, the proxy helpers' files), its log directory
 * ($BERTH_DIR/logs/<project>_<name>: exec record-output) and its cgroup (doc/runtime.md).
 * They go with the instance when it is deleted, before its row (so a crash leaves at worst
 * a stopped instance without them), and what older berthds or hand-made leftovers left
 * goes at berthd's next start. */
#pragma once

#include "daemon/daemon.h"

/* $BERTH_DIR/logs/<project>_<name> (new string, NULL on ENOMEM). */
char *cleanup_logs_dir(const struct berth_daemon *d, const char *project, const char *name);

/* The instance is stopped and about to lose its row (the name is still taken, so no new
 * instance of that name can be using them): remove its run directory, its log directory
 * and its cgroup (killing what is left in it). Blocking (a worker thread). Best effort:
 * what fails is logged and left for the next start's cleanup_reconcile(); the count of
 * failures is returned as a negative errno of the last one, 0 when all went. */
int cleanup_instance(const struct berth_daemon *d, const char *project, const char *name);

/* The instance was renamed: its log directory follows it (one an older instance of the
 * new name left goes first). Blocking; failures are logged and ignored (the rename
 * already happened). */
void cleanup_logs_rename(const struct berth_daemon *d, const char *project, const char *from,
			 const char *to);

/* At start, after container_reconcile() and before serving: remove the run directories,
 * log directories and cgroups of this daemon that belong to no instance of the database
 * (a monitor still answering in such a run directory is told to kill its container
 * first). Blocking (the main thread before the loop runs). Returns how many instances'
 * leftovers were removed, or a negative errno when the database cannot be read. */
int cleanup_reconcile(const struct berth_daemon *d);
