/* agent/agent.h: what the parts of berth-agent share: the connection to the host (one
 * authenticated stream, doc/agent.md) and the channels multiplexed on it. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "agent/proto.h"

/* Per-channel stdin waiting for a slow reader beyond this is refused. */
#define AGENT_STDIN_QUEUE_MAX (16u << 20)

enum agent_chan_kind {
	AGENT_CHAN_FREE,
	AGENT_CHAN_EXEC,
	AGENT_CHAN_PUT,
	AGENT_CHAN_KIND_MAX,
};

struct agent_chan {
	uint32_t id;
	enum agent_chan_kind kind;
	/* exec */
	pid_t pid;
	bool interactive;
	int in_fd;  /* owned: child's stdin (the pty master, dup'ed, when interactive) */
	int out_fd; /* owned: child's stdout (the pty master when interactive) */
	int err_fd; /* owned: child's stderr; -EBADF when interactive */
	struct agent_buf stdin_q; /* host's bytes not yet written to in_fd */
	size_t stdin_off;	  /* written from stdin_q */
	bool stdin_eof;		  /* close in_fd once stdin_q is written */
	/* file push */
	int put_fd;	  /* owned: the temporary file */
	char *put_path;	  /* owned: destination */
	char *put_tmp;	  /* owned: temporary name, renamed over put_path at the end */
	char *put_target; /* owned: symlink target */
	uint8_t put_type;
	uint8_t put_flags; /* enum agent_put_flags */
	uint32_t put_mode, put_uid, put_gid;
	int put_err; /* first failure, reported at FILE_END */
};

struct agent_conn {
	int fd; /* borrowed: the transport */
	struct agent_session s;
	struct agent_inbuf in;
	struct agent_chan chans[AGENT_MAX_CHANNELS];
	/* CLOCK_MONOTONIC ms by which the handshake must be done, from the first byte the
	 * peer sent (0: none sent yet, or authenticated). */
	int64_t hs_deadline_ms;
	bool debug;
};

/* Frame and write one message (blocking until written). 0 or -errno. */
int agent_send(struct agent_conn *c, uint8_t type, uint32_t ch, const void *p, size_t len);
/* Send ERROR(-ret, message) on `ch`; returns 0 when sent (the failure is the host's to
 * report), -errno when the transport failed. */
int agent_send_error(struct agent_conn *c, uint32_t ch, int ret, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* stderr, the journal of the agent's unit. */
void agent_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

struct agent_chan *agent_chan_find(struct agent_conn *c, uint32_t id);
/* A free slot for `id`, or NULL when `id` is in use (-EBUSY) or none is free (-EMFILE). */
struct agent_chan *agent_chan_new(struct agent_conn *c, uint32_t id, int *ret);
void agent_chan_release(struct agent_chan *ch);

/* exec.c */
int agent_exec_start(struct agent_conn *c, uint32_t id, const uint8_t *p, size_t len);
int agent_exec_stdin(struct agent_conn *c, struct agent_chan *ch, const uint8_t *p, size_t len);
int agent_exec_resize(struct agent_conn *c, struct agent_chan *ch, const uint8_t *p, size_t len);
int agent_exec_signal(struct agent_conn *c, struct agent_chan *ch, const uint8_t *p, size_t len);
/* Output ready on `fd` of `ch`: read a chunk and forward it. */
int agent_exec_output(struct agent_conn *c, struct agent_chan *ch, int fd);
/* Write queued stdin. */
int agent_exec_flush_stdin(struct agent_conn *c, struct agent_chan *ch);
/* Reap exited children and finish their channels. */
int agent_exec_reap(struct agent_conn *c);
/* The session ended: kill what runs, reap it. */
void agent_exec_kill_all(struct agent_conn *c);

/* files.c */
int agent_file_get(struct agent_conn *c, uint32_t id, const uint8_t *p, size_t len);
int agent_file_put(struct agent_conn *c, uint32_t id, const uint8_t *p, size_t len);
int agent_file_data(struct agent_conn *c, struct agent_chan *ch, const uint8_t *p, size_t len);
int agent_file_end(struct agent_conn *c, struct agent_chan *ch);
int agent_file_delete(struct agent_conn *c, uint32_t id, const uint8_t *p, size_t len);
int agent_file_mkdir(struct agent_conn *c, uint32_t id, const uint8_t *p, size_t len);

/* state.c */
int agent_state(struct agent_conn *c, uint32_t id);
