/* daemon/vm/vmmon_client.h: berthd's end of berth-vmmon (doc/vm.md, "berth-vmmon"), the
 * per-VM process that holds the berth-agent session and serves RUNDIR/monitor.sock with
 * the container monitor's line protocol. Each call opens its own connection to
 * monitor.sock, so any number of threads may call at once. Execs go through
 * exec_session's monitor path (the `exec` request), not through here.
 *
 * Errors carry the agent's message and an HTTP-shaped code as agent_client does (404 for
 * a missing path, 403 for EACCES/EPERM, 503 when the agent does not answer). */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "daemon/vm/agent_client.h"
#include "lib/error.h"

/* How long vmmon gives the agent for a file moved to or from the guest, whole; berthd
 * waits VMMON_FILE_TIMEOUT_MS + VMMON_FILE_MARGIN_MS for vmmon's answer, so that vmmon's
 * own time-out (its loop free again) is what berthd reports, never a call given up while
 * vmmon still waits. */
#define VMMON_FILE_TIMEOUT_MS 120000
#define VMMON_FILE_MARGIN_MS 5000

/* LXD 5.0.2's message for a request to a VM whose agent is not running (doc/vm.md). */
extern const char vmmon_agent_not_running_msg[];

/* 0 with *ret_ready false (and *ret_version NULL) while the agent is not up, true with
 * the agent's version (owned by the caller; ret_version may be NULL) once it is;
 * -ENOENT/-ECONNREFUSED when no vmmon runs (VM stopped). */
int vmmon_status(const char *rundir, bool *ret_ready, char **ret_version, struct berth_error *err);
/* The guest's state in LXD's InstanceState shape for what the agent knows: network,
 * memory, disk, processes (and cpu). */
int vmmon_state(const char *rundir, json_t **ret, int timeout_ms, struct berth_error *err);
/* As agent_client_file_pull: a regular file's content written to `fd` (-1: info only),
 * a directory's entries in ret->entries. */
int vmmon_file_pull(const char *rundir, const char *path, int fd, struct agent_file_info *ret,
		    int timeout_ms, struct berth_error *err);
/* As agent_client_file_push: a regular file's content read from `fd` to its end. */
int vmmon_file_push(const char *rundir, const char *path, const struct agent_file_info *info,
		    int fd, unsigned flags, int timeout_ms, struct berth_error *err);
int vmmon_file_delete(const char *rundir, const char *path, int timeout_ms,
		      struct berth_error *err);
int vmmon_mkdir(const char *rundir, const char *path, uint32_t mode, uint32_t uid, uint32_t gid,
		bool parents, int timeout_ms, struct berth_error *err);
/* Start berth-vmmon for RUNDIR (program from $BERTH_VMMON or next to berthd like
 * berth-monitor is found); returns once monitor.sock listens. */
int vmmon_start(const char *rundir, struct berth_error *err);
