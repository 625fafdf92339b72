/* daemon/runtime/exec.h: `berth-monitor exec` (doc/runtime.md, "berth-monitor exec"): run
 * one command inside a running container. */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

struct runtime_exec_opts {
	const char *rundir; /* borrowed, like every pointer here */
	uid_t uid;
	gid_t gid;
	const char *cwd;   /* NULL: /root, then / */
	char **env;	   /* NULL-terminated KEY=VALUE overrides, or NULL */
	bool pty;	   /* stdin is a pty slave to make the controlling terminal */
	int status_fd;	   /* -1: none */
	char **argv;	   /* the command */
};

/* Returns the exit status for main(): the command's, 128+signal, 126/127 when it could
 * not run, 255 when the container could not be joined. */
int runtime_exec(const struct runtime_exec_opts *o);

#include "daemon/runtime/spec.h"

/* Capabilities, seccomp and AppArmor from `spec` for the calling process, in that order
 * (PID 1 before execve of init, and each exec'd command). */
int runtime_exec_apply_security(const struct runtime_spec *spec, struct berth_error *err);
