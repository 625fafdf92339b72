/* daemon/runtime/monitor_internal.h: what the files of berth-monitor's `start` side
 * share (monitor.c has the overview and the state diagram): the monitor, its clients
 * and exec'd commands, and the functions each file gives the others. Nothing outside
 * daemon/runtime/monitor*.c includes it. */
#pragma once

#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "daemon/runtime/cgroup.h"
#include "daemon/runtime/console.h"
#include "daemon/runtime/exec.h"
#include "daemon/runtime/security.h"
#include "daemon/runtime/spec.h"
#include "lib/error.h"
#include "lib/macros.h"
#include "lib/util.h"

/* How often a booting PID 1 is checked for readiness. */
#define READY_POLL_NS 1000000ULL

enum monitor_state { ST_BOOTING, ST_RUNNING, ST_STOPPING, ST_DONE };
enum stop_kind { STOP_NONE, STOP_STOP, STOP_RESTART };
enum client_kind { CL_NEW, CL_WAIT, CL_CONSOLE, CL_STOP, CL_RESTART, CL_EXEC };

/* The longest request: an exec's options, command and environment, %-encoded. */
#define REQUEST_MAX (256u << 10)
/* The stack of an exec request's child while it shares our memory. */
#define EXEC_CHILD_STACK (256u << 10)
/* How many clients and exec'd commands one poll() watches (the rest wait a turn). */
#define POLL_CLIENTS 64
#define POLL_EXECS 256

struct exec_child;

struct client {
	struct client *next;
	int fd; /* owned */
	enum client_kind kind;
	char *buf; /* owned: the request (or, for CL_EXEC, lines) being read */
	size_t len, cap;
	int fds[3]; /* owned or -EBADF: an exec's stdin, stdout, stderr */
	size_t nfds;
	struct exec_child *exec; /* CL_EXEC: its command, NULL once reaped */
};

/* A command run by an `exec` request, our child until reaped. */
struct exec_child {
	struct exec_child *next;
	pid_t pid;
	int pidfd;	       /* owned */
	int fail_fd;	       /* owned, -EBADF once read: EOF when it exec'd, else a
				 * struct runtime_exec_failure */
	struct client *client; /* borrowed, NULL once the client left */
};

struct monitor {
	char *rundir;			 /* owned */
	struct runtime_spec *spec;	 /* owned */
	struct runtime_cgroup *cg;	 /* owned */
	struct runtime_console *console; /* owned */
	int listen_fd;
	int signal_fd;
	int report_fd; /* pipe to `start`, -EBADF once told */
	int init_pidfd;
	pid_t init_pid;
	int pidns_fd;		/* our own pid namespace, to come back to after an exec */
	bool exec_forks_logged; /* exec_clone() said once why it forks */
	bool frozen;		/* by a `freeze` request, until `unfreeze` or a stop */
	struct runtime_exec_cgroups exec_cgroups; /* PID 1's, for exec'd commands */
	void *exec_stack; /* EXEC_CHILD_STACK bytes, mapped at the first exec */
	cpu_set_t cpus;	  /* our affinity at start, for exec'd commands */
	bool have_cpus;
	int stop_signal;
	enum monitor_state state;
	enum stop_kind stop_kind;
	bool killed;		  /* SIGKILL was how it ended */
	uint64_t deadline_ns;	  /* next readiness check (BOOTING) or stop timeout
					 * (STOPPING); 0: none */
	uint64_t exec_ns;	  /* when PID 1 was exec'd */
	char *reason;		  /* owned: how the container ended */
	struct client *clients;	  /* owned list */
	struct exec_child *execs; /* owned list */
	/* The seccomp filter of PID 1 and exec'd commands, compiled by the first boot's
	 * child (child_seccomp); without it each command's child builds its own. */
	struct runtime_seccomp_prog seccomp;
	bool seccomp_ready;
};

static inline uint64_t now_ns(void)
{
	return berth_monotonic_ns();
}

/* RUNDIR/name (new string, NULL on ENOMEM). */
static inline char *rpath(const struct monitor *m, const char *name)
{
	return berth_strdup_printf("%s/%s", m->rundir, name);
}

/* ---- monitor.c ---- */

/* One timestamped line on stderr (monitor.log). */
void log_msg(const char *fmt, ...) _printf_(1, 2);

/* ---- monitor_boot.c ---- */

/* The signal that asks the spec's init to power off. */
int detect_stop_signal(const struct runtime_spec *spec);
/* RUNDIR/name holds `pid`. */
int write_pid_file(struct monitor *m, const char *name, pid_t pid);
/* Create the cgroups, clone PID 1 and release it once its mounts and NICs are ready;
 * m->init_pid and m->init_pidfd are set once it exec'd init. */
int boot(struct monitor *m, struct berth_error *err);

/* ---- monitor_request.c ---- */

/* One reply line to `c` (best effort: a client that left is dropped on its next poll). */
void client_send(struct client *c, const char *fmt, ...) _printf_(2, 3);
/* Unlink `c` from m->clients and free it (its exec, if any, runs on unheard). */
void client_drop(struct monitor *m, struct client *c);
/* `c` stays after its request, as `kind`. */
void client_keep(struct client *c, enum client_kind kind);
/* Read from `c` and handle a complete request; may drop `c`. */
void client_readable(struct monitor *m, struct client *c);
/* Whether `c` is still in m->clients. */
bool client_alive(const struct monitor *m, const struct client *c);
void accept_client(struct monitor *m);
/* Copy what the console wrote to the log and to console clients. */
void console_output(struct monitor *m);

/* ---- monitor_exec.c ---- */

void exec_free(struct monitor *m, struct exec_child *e);
void exec_fail_readable(struct exec_child *e);
void exec_exited(struct monitor *m, struct exec_child *e);
/* The "exec WORD..." request of `c` (which goes on as CL_EXEC or is dropped). */
void handle_exec(struct monitor *m, struct client *c, char *words);

/* ---- monitor_limits.c ---- */

/* The "limits ..." request: answers `c` (which the caller drops). */
void handle_limits(struct monitor *m, struct client *c, const char *args);
/* Take the NICs and mounts of the spec berthd rewrote (hot-plug) for the next boot. */
void reload_nics(struct monitor *m);

/* ---- monitor_stop.c ---- */

void begin_stop(struct monitor *m, enum stop_kind kind, long timeout_s, int sig);
/* SIGKILL PID 1 and everything in its cgroups. */
void kill_init(struct monitor *m);
/* Reap PID 1 (killing it if needed), empty the cgroups and remove them. */
void teardown(struct monitor *m, siginfo_t *ret);
/* The one line `start` waits for ("ok", "error ..."), once. */
void report(struct monitor *m, const char *fmt, ...) _printf_(2, 3);
/* A failed (re)boot: clean up and end. */
void boot_failed(struct monitor *m, struct berth_error *err, int r);
bool in_grace(const struct monitor *m);
bool init_ready(const struct monitor *m);
/* PID 1's pidfd is readable. */
void init_exited(struct monitor *m);
