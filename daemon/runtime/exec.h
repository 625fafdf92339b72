/* daemon/runtime/exec.h: `berth-monitor exec` (doc/runtime.md, "berth-monitor exec"): run
 * one command inside a running container. */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

struct runtime_exec_opts {
	const char *rundir; /* borrowed, like every pointer here */
	uid_t uid;
	gid_t gid;
	const char *cwd; /* NULL: /root, then / */
	char **env;	 /* NULL-terminated KEY=VALUE overrides, or NULL */
	bool pty;	 /* stdin is a pty slave to make the controlling terminal */
	int status_fd;	 /* -1: none */
	char **argv;	 /* the command */
};

/* Returns the exit status for main(): the command's, 128+signal, 126/127 when it could
 * not run, 255 when the container could not be joined. */
int runtime_exec(const struct runtime_exec_opts *o);

/* Parse the options that follow RUNDIR (`--uid N ... -- CMD...`, argv[0] being the first
 * of them) into `o`, whose rundir and status_fd the caller sets. o->env gets a new
 * NULL-terminated array (free it; its strings are argv's), o->argv points into argv.
 * Returns 0 or -EINVAL. */
int runtime_exec_parse(int argc, char **argv, struct runtime_exec_opts *o);

/* What a child that could not exec the command tells its parent over a close-on-exec
 * pipe (EOF with nothing: the exec happened). */
struct runtime_exec_failure {
	int err;   /* errno */
	int stage; /* 0: execvp, 1: setup */
	char msg[200];
};

/* Exit status of a child that could not exec: 127/126 (not found, not runnable) or 255
 * (setup). */
int runtime_exec_failure_status(const struct runtime_exec_failure *f);

/* Report a failure on `pipe_fd` and _exit with runtime_exec_failure_status(). */
_Noreturn void runtime_exec_fail(int pipe_fd, int stage, int err, const char *msg);

/* Move the calling process into every cgroup `pid` is in (host paths from
 * /proc/PID/cgroup: call it while still in the host's cgroup namespace). */
int runtime_exec_join_cgroups(pid_t pid);

/* The same in steps, for a monitor that runs many commands: the cgroup.procs files of
 * PID 1, opened once and kept while /proc/PID/cgroup says the same (systemd moves itself
 * into init.scope early at boot), then the move, a write of "0" to each, which allocates
 * nothing (a child that shares its parent's memory may do it). */
struct runtime_exec_cgroups {
	char *text; /* owned: /proc/PID/cgroup when the files were opened */
	pid_t pid;
	int *fds; /* owned, close-on-exec */
	size_t n;
};
int runtime_exec_cgroups_update(struct runtime_exec_cgroups *c, pid_t pid);
int runtime_exec_cgroups_enter(const struct runtime_exec_cgroups *c);
void runtime_exec_cgroups_release(struct runtime_exec_cgroups *c);

/* The command's environment: o->env, then PATH, LANG, HOME and USER defaults for what it
 * does not set. NULL when out of memory. */
char **runtime_exec_env(const struct runtime_exec_opts *o);
void runtime_exec_env_free(char **env);

/* True when `pid` is in the caller's user namespace (a privileged container). */
bool runtime_exec_same_userns(pid_t pid);

#include "daemon/runtime/spec.h"

struct runtime_seccomp_prog;

#ifdef BERTH_HAVE_SECURITY
#include "daemon/runtime/security.h"

/* The seccomp policy `spec` asks for (borrowing its lists). */
static inline struct runtime_seccomp_policy runtime_spec_seccomp(const struct runtime_spec *spec)
{
	return (struct runtime_seccomp_policy){
		.deny_default = spec->seccomp_default,
		.deny = spec->seccomp_deny,
		.allow = spec->seccomp_allow,
	};
}
#endif

/* Capabilities, seccomp and AppArmor from `spec` for the calling process, in that order
 * (PID 1 before execve of init, and each exec'd command). The seccomp filter is `prog`
 * when given (compiled from the same spec), else built from the spec. */
int runtime_exec_apply_security(const struct runtime_spec *spec,
				const struct runtime_seccomp_prog *prog, struct berth_error *err);

/* In a child that has joined the container (cgroups, every namespace): every fd but 0-2
 * close-on-exec, make stdin the controlling terminal (o->pty), apply `spec`'s security,
 * drop to o->uid/o->gid, change directory and exec o->argv with `env` (from
 * runtime_exec_env(), searched in its PATH). Allocates nothing on the way to the exec,
 * so that a child sharing its parent's memory may call it. Never returns: on a failure
 * it writes a struct runtime_exec_failure to `pipe_fd` and exits with
 * runtime_exec_failure_status(). */
_Noreturn void runtime_exec_child(const struct runtime_exec_opts *o,
				  const struct runtime_spec *spec,
				  const struct runtime_seccomp_prog *prog, char *const env[],
				  int pipe_fd);
