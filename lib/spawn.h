/* lib/spawn.h: the one way berthd and berth-monitor start programs (doc/internals.md,
 * "Subprocesses").
 *
 * A program gets an argv (never a shell), an explicit environment (nothing inherited
 * unless asked), stdin from /dev/null, a given fd or a memfd holding `input`, and its
 * stdout/stderr captured into capped buffers, sent to /dev/null or to a given fd. Every
 * other descriptor is closed at the exec. The child is started sharing our memory
 * (CLONE_VM | CLONE_VFORK: no page tables copied, no copy-on-write faults in berthd's
 * threads afterwards; fork() in AddressSanitizer builds) and watched through a pidfd.
 *
 * Two ways to use it:
 *   1. berth_spawn_run(): start, feed, collect, wait. With `timeout_ms`, the child gets
 *      SIGTERM at the deadline and SIGKILL `kill_after_ms` later. Blocks: call it from a
 *      worker thread (or a process without an event loop), never from berthd's loop.
 *   2. berth_spawn_start(): detached. Returns once the program runs (or failed to
 *      start), with its pid and a pidfd; the caller waits for it.
 *
 * Typical use:
 *
 *	_cleanup_(berth_spawn_release) struct berth_spawn s = {
 *		.argv = (const char *const[]){"nft", "-f", "-", NULL},
 *		.input = ruleset, .input_len = strlen(ruleset), .timeout_ms = 60000,
 *	};
 *	r = berth_spawn_run(&s, err);
 *
 * Errors name the program: not found, could not start, timed out, or exited non-zero
 * (with the tail of what it wrote on stderr, or on stdout when stderr goes there). */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "lib/error.h"

/* The one list of directories where programs are looked for, also the PATH that a
 * program gets by default. */
#define BERTH_SPAWN_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* Per captured stream, when `capture_max` is 0. */
#define BERTH_SPAWN_CAPTURE_MAX (64u << 10)

/* What becomes of the child's fd 0, 1 or 2 (`io[i]`). */
enum berth_spawn_io {
	BERTH_SPAWN_DEFAULT = 0, /* stdin: `input` when set, else /dev/null; stdout and
				  * stderr: captured into `out` / `err_out` */
	BERTH_SPAWN_NULL,	 /* /dev/null */
	BERTH_SPAWN_FD,		 /* `fds[i]` (borrowed; the child gets a copy) */
	BERTH_SPAWN_TO_STDOUT,	 /* stderr only: wherever stdout goes (one buffer when
				  * captured, in the order written) */
	BERTH_SPAWN_IO_MAX,
};

enum {
	BERTH_SPAWN_INHERIT_ENV = 1 << 0,     /* our environment instead of `env` */
	BERTH_SPAWN_DIE_WITH_PARENT = 1 << 1, /* SIGKILL when the calling thread exits */
	BERTH_SPAWN_SETSID = 1 << 2,	      /* a session of its own */
	BERTH_SPAWN_NO_CHECK = 1 << 3,	      /* berth_spawn_run: any exit is success; the
					       * caller reads `exit_code`/`term_signal` */
};

struct berth_spawn {
	/* ---- set by the caller ---- */
	const char *const *argv; /* argv[0]: a path, or a name for berth_program_find() */
	const char *const *env;	 /* the whole environment; NULL: berth_spawn_env_default */
	const char *input;	 /* stdin's content (io[0] DEFAULT), passed in a memfd */
	size_t input_len;
	enum berth_spawn_io io[3];
	int fds[3];	      /* for io[i] == BERTH_SPAWN_FD */
	const int *extra_fds; /* borrowed, become the child's 3, 4, ... */
	size_t n_extra_fds;   /* at most 8 */
	size_t capture_max;   /* bytes kept per captured stream; 0: BERTH_SPAWN_CAPTURE_MAX */
	int timeout_ms;	      /* berth_spawn_run: 0 = none */
	int kill_after_ms;    /* from SIGTERM to SIGKILL; 0: 2000 */
	unsigned flags;	      /* BERTH_SPAWN_* */
	/* berth_spawn_run, borrowed, may be NULL: looked at every 50 ms
	 * while the program runs; once true, the program gets SIGTERM (SIGKILL
	 * `kill_after_ms` later) and the run ends with -ECANCELED. */
	const atomic_bool *cancel;

	/* ---- results of berth_spawn_run ---- */
	char *out; /* owned: captured stdout (and stderr when TO_STDOUT), NUL-ended */
	size_t out_len;
	char *err_out; /* owned: captured stderr, NUL-ended */
	size_t err_len;
	bool truncated;	 /* a stream went past capture_max: a marker replaces its middle */
	bool timed_out;	 /* killed at the deadline */
	bool cancelled;	 /* killed because `cancel` became true */
	int exit_code;	 /* -1 when killed by a signal */
	int term_signal; /* 0 when it exited */
};

/* PATH=BERTH_SPAWN_PATH and LC_ALL=C. */
extern const char *const berth_spawn_env_default[];

/* Where program `name` is. A name with a '/' is taken as it is. A name starting with
 * "berth-" is one of berth's own helpers: $BERTH_<REST> (berth-monitor: $BERTH_MONITOR)
 * when set, else <our exe's dir>/../libexec/berth/NAME, else <our exe's dir>/NAME (see
 * berth_helper_binary). Any other name is looked for in BERTH_SPAWN_PATH's directories,
 * in order. New string in *ret; -ENOENT when none is executable, -ENOMEM. */
int berth_program_find(const char *name, char **ret);

/* Run `s` to its end (see the top of this file). 0 when the program exited with status
 * 0 (any exit with BERTH_SPAWN_NO_CHECK); else -errno with `err` naming the program:
 * -ENOENT not found, -EACCES and friends could not start, -ETIMEDOUT killed at the
 * deadline, -ECANCELED killed because `cancel` became true ("\"PROG\" cancelled"),
 * -EIO exited non-zero or killed (message: "\"PROG\" failed (exit status N):
 * TAIL" or "\"PROG\" killed by signal N"). The captured output is in `s` either way;
 * berth_spawn_release() frees it. */
int berth_spawn_run(struct berth_spawn *s, struct berth_error *err);

/* Start `s` detached: its io must not be captured (DEFAULT stdout/stderr mean /dev/null
 * here) and `timeout_ms` does not apply. On success *ret_pid and *ret_pidfd (owned by
 * the caller, close-on-exec) are set; the caller reaps the child (waitpid, or
 * waitid(P_PIDFD)). Errors as berth_spawn_run's start failures. */
int berth_spawn_start(struct berth_spawn *s, pid_t *ret_pid, int *ret_pidfd,
		      struct berth_error *err);

/* The failure message berth_spawn_run would give for the finished `s`, as an error
 * (-EIO; 0 when it exited with status 0). For callers that used BERTH_SPAWN_NO_CHECK
 * and decide afterwards; `what` replaces the program's name when not NULL. */
int berth_spawn_check(const struct berth_spawn *s, const char *what, struct berth_error *err);

/* The last `max` bytes of what the program wrote on stderr (or on stdout when stderr
 * was sent there or not captured), trailing blanks removed, into `buf` (NUL-ended).
 * Returns its length. */
size_t berth_spawn_tail(const struct berth_spawn *s, char *buf, size_t max);

/* Free the results; the caller's inputs are left alone. Takes NULL. */
void berth_spawn_release(struct berth_spawn *s);
