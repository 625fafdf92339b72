/* daemon/instance/exec_session.h: the loop side of exec and console (LXD-API.md §5, §6):
 * a websocket-class operation whose sockets are bridged, on the loop, to the pipes or
 * the pty of a `berth-monitor exec` helper, or to a `console` connection to a
 * container's monitor.
 *
 * The API layer (daemon/api/instance_exec.c) checks the request, builds an exec_spec
 * and creates the operation with the exec_session_* callbacks; everything after that
 * happens here, on the loop thread:
 *
 *   WAITING --required sockets connected--> RUNNING --helper exited, output drained-->
 *   DONE (metadata.return, Success) --last handle and websocket closed--> freed
 *
 * WAITING is skipped for detached exec (no wait-for-websocket), which spawns at once.
 * The spec is owned by the operation; the session holds a reference to the operation,
 * so the spec outlives it. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <uv.h>

#include "daemon/operation.h"

enum exec_kind {
	EXEC_PIPES,    /* non-interactive: sockets 0, 1, 2 (and control) over pipes */
	EXEC_PTY,      /* interactive: socket 0 over one pty (and control) */
	EXEC_DETACHED, /* no websockets: stdin /dev/null, output to files or /dev/null */
	EXEC_CONSOLE,  /* socket 0 to the monitor's console stream (and control) */
	EXEC_KIND_MAX,
};

#define EXEC_NSOCKETS 4 /* "0", "1", "2", "control" */
#define EXEC_SOCKET_CONTROL 3
#define EXEC_SECRET_LEN 64 /* hex of 32 random bytes */

struct exec_spec {
	uv_loop_t *loop; /* borrowed: berthd's loop */
	enum exec_kind kind;
	char **argv;  /* owned, NULL-terminated: the helper's argv (not for the console) */
	int stdio[3]; /* owned or -EBADF: EXEC_DETACHED's stdin, stdout, stderr */
	int pty_master, pty_slave; /* owned or -EBADF: EXEC_PTY's terminal (exec_spec_open_pty) */
	int console_fd;		   /* owned or -EBADF: EXEC_CONSOLE's stream to the monitor */
	char *rundir;		   /* owned: for console-resize */
	int width, height;
	/* Secrets of the sockets this kind uses; "" for the others. */
	char secret[EXEC_NSOCKETS][EXEC_SECRET_LEN + 1];
	json_t *metadata; /* owned: the operation's metadata without "return" */
	json_t *output;	  /* owned or NULL: record-output's {"1": URL, "2": URL} */
	/* Set when preparing failed after the operation was created (record-output's
	 * files): the operation fails with this at its start. */
	int setup_error;
	char *setup_msg;	      /* owned */
	struct exec_session *session; /* loop thread; read by cancel under the registry lock */
};

/* New spec with secrets drawn for `kind`'s sockets and no fds. */
int exec_spec_new(enum exec_kind kind, uv_loop_t *loop, struct exec_spec **ret);
void exec_spec_free(void *spec);
static inline void exec_spec_freep(struct exec_spec **p)
{
	exec_spec_free(*p);
}

/* EXEC_PTY: open the command's terminal in the devpts instance of the container whose
 * PID 1 is `init_pid` (host view), so that the command can reopen it by name inside
 * (`tty`, `</dev/pts/N`), the slave owned by the container's root as devpts gives it
 * there; a host pty, chowned the same way, when that devpts cannot be reached. Blocking
 * (a worker thread). */
int exec_spec_open_pty(struct exec_spec *spec, pid_t init_pid);

/* The operation_spec callbacks (data: the exec_spec). */
int exec_session_start(struct operation *op, void *data);
void exec_session_connect(struct operation *op, void *data, const char *secret,
			  struct berth_http_conn *conn);
/* Berth's own stdio.socket (doc/api.md): a non-interactive exec's client hands over its
 * stdin, stdout and stderr with the secret of websocket "0", instead of connecting
 * websockets 0-2; the command gets them as they are and starts at once. */
int exec_session_attach_fds(struct operation *op, void *data, const char *secret, int fds[3],
			    const char **why);
void exec_session_cancel(void *data);
