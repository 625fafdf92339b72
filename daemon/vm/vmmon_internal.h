/* daemon/vm/vmmon_internal.h: what the files of berth-vmmon share (vmmon.c has the
 * overview): the monitor, its clients and the execs it runs through the agent. Nothing
 * outside daemon/vm/vmmon*.c (but the client's constants) includes it. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/proto.h"
#include "daemon/vm/agent_client.h"
#include "daemon/vm/vmmon_client.h"
#include "lib/macros.h"

/* The longest request line: an exec's options, command and environment, %-encoded. */
#define VMMON_REQUEST_MAX (256u << 10)
/* One handshake attempt, then the pause before the next one. */
#define VMMON_HANDSHAKE_MS 1000
#define VMMON_RETRY_MS 500
/* An idle session is probed (a state request) this often, the probe answered within
 * VMMON_PROBE_TIMEOUT_MS or the session re-made: a virtio-serial port gives no end of
 * stream when the agent restarts in the guest. */
#define VMMON_PROBE_MS 10000
#define VMMON_PROBE_TIMEOUT_MS 5000
/* An agent call that waits for one answer (exec start, state, delete, mkdir). */
#define VMMON_CALL_MS 10000
/* A file moved to or from the guest, whole (berthd's wait is set from the same value). */
#define VMMON_FILE_MS VMMON_FILE_TIMEOUT_MS
/* Output of a command buffered for a reader that does not keep up, per stream: past it the
 * agent's stream is not pumped (the guest waits) ... */
#define VMMON_OUT_HIGH (1u << 20)
/* ... unless that reader has been stuck this long: its output is then dropped. */
#define VMMON_STALL_MS 10000
/* Output that arrives while vmmon sits in a blocking agent call (a probe, a state, a file
 * transfer) is buffered whatever the pumping says: past this, per stream, it is dropped. */
#define VMMON_OUT_MAX (2u * VMMON_OUT_HIGH)
/* How many clients and execs one poll() watches (the rest wait a turn): each exec keeps
 * its client, and the agent runs AGENT_MAX_CHANNELS at once, so clients have room for
 * that many execs and as many new requests. */
#define VMMON_POLL_CLIENTS (2 * AGENT_MAX_CHANNELS)
#define VMMON_POLL_EXECS AGENT_MAX_CHANNELS

struct vmmon_exec;

enum vmmon_client_kind {
	VC_NEW,	 /* its request is being read */
	VC_EXEC, /* runs a command: "signal N" and "resize C R" lines */
};

struct vmmon_client {
	struct vmmon_client *next;
	int fd; /* owned */
	enum vmmon_client_kind kind;
	char *buf; /* owned: the request, or the control lines of an exec */
	size_t len, cap;
	int fds[3]; /* owned or -EBADF: what came with the request */
	size_t nfds;
	struct vmmon_exec *exec; /* VC_EXEC: its command, NULL once it ended */
};

/* Output waiting for a slow reader. */
struct vmmon_obuf {
	char *data; /* owned */
	size_t off, len, cap;
	bool eof;	   /* the stream ended: the fd closes once the rest is written */
	bool closed;	   /* the fd was closed */
	bool dropped;	   /* its reader was stuck too long: what comes is dropped */
	uint64_t stuck_ns; /* since when it is over VMMON_OUT_HIGH, 0: it is not */
};

/* A command run in the guest for an `exec` request. */
struct vmmon_exec {
	struct vmmon_exec *next;
	uint32_t ch;		     /* the agent's channel */
	struct vmmon_client *client; /* borrowed, NULL once the client left */
	int in_fd;		     /* owned: stdin (-EBADF once it ended) */
	int out_fd[2];		     /* owned: stdout, stderr (a pty: both the slave) */
	struct vmmon_obuf out[2];
	bool pty;
	bool exited;
	int status;
};

struct vmmon {
	char *rundir; /* owned */
	int listen_fd;
	int qemu_pidfd;
	uint8_t key[AGENT_KEY_LEN];
	int agent_fd;		    /* the connection to QEMU's chardev, -EBADF: none */
	struct agent_client *agent; /* owned: the authenticated session, NULL: none yet */
	uint64_t next_try_ns;	    /* the next handshake attempt */
	uint64_t next_probe_ns;	    /* the next probe of the session */
	char *last_fail;	    /* owned: the last attempt's failure, logged once */
	unsigned fails;		    /* attempts that failed the same way since logged */
	uint64_t fail_logged_ns;
	struct vmmon_client *clients; /* owned list */
	struct vmmon_exec *execs;     /* owned list */
	bool done;
};

/* LXD 5.0.2's message (lxd/instance/drivers/driver_qemu.go, errQemuAgentOffline). */
#define VMMON_AGENT_OFFLINE "LXD VM agent isn't currently running"

/* ---- vmmon.c ---- */
void vmmon_log(const char *fmt, ...) _printf_(1, 2);
/* The session failed (`why`): every exec ends, the next handshake is scheduled. */
void vmmon_session_lost(struct vmmon *m, const char *why);

/* ---- vmmon_request.c ---- */
/* One line to `c`, best effort (a client that left is dropped on its next poll). */
void vmmon_client_send(struct vmmon_client *c, const char *fmt, ...) _printf_(2, 3);
void vmmon_client_drop(struct vmmon *m, struct vmmon_client *c);
void vmmon_accept(struct vmmon *m);
/* `c` is readable: read and handle its request (or its exec's control lines). */
void vmmon_client_readable(struct vmmon *m, struct vmmon_client *c);

/* ---- vmmon_exec.c ---- */
/* The "exec WORD..." request of `c` (which goes on as VC_EXEC or is dropped). */
void vmmon_exec_request(struct vmmon *m, struct vmmon_client *c, char *words);
/* A control line ("signal N", "resize C R") of an exec client. */
void vmmon_exec_control(struct vmmon *m, struct vmmon_exec *e, const char *line);
/* Write what waits for the exec's readers; finish it once it exited and all is out. */
void vmmon_exec_flush(struct vmmon *m, struct vmmon_exec *e);
/* stdin is readable: pass it to the command. */
void vmmon_exec_input(struct vmmon *m, struct vmmon_exec *e);
/* Whether the agent's stream may be pumped (no exec's reader holds it back). */
bool vmmon_exec_may_pump(struct vmmon *m, int *ret_timeout_ms);
/* End `e` without an exit line (the session failed): its client is dropped. */
void vmmon_exec_abort(struct vmmon *m, struct vmmon_exec *e);
