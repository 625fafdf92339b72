/* daemon/vm/agent_client.h: berthd's end of the berth-agent protocol (doc/agent.md): it
 * authenticates to the agent of a VM over a stream (the QEMU chardev socket of the
 * virtio-serial port, or vsock) and runs commands, moves files and reads the guest's
 * state through it.
 *
 * Synchronous with a timeout on every wait, so that a VM driver calls it from a worker
 * thread; one thread at a time per client. Several execs run at once on one client:
 * their output arrives through callbacks, called from inside whichever call is waiting
 * (any call pumps the stream), and agent_client_pump() lets a caller wait for events
 * alone. Every failure sets `err` with what failed ("agent: ..."). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/proto.h"
#include "lib/error.h"

struct agent_client;

/* Authenticate to the agent on `fd` (borrowed: the caller closes it after
 * agent_client_free; it is made non-blocking) with the VM's key, within `timeout_ms`.
 * -EACCES when the peer does not prove the key (not the agent, or another VM's),
 * -ETIMEDOUT, -EPIPE when it hung up (an agent refuses a wrong key by hanging up). */
int agent_client_new(int fd, const uint8_t key[AGENT_KEY_LEN], int timeout_ms,
		     struct agent_client **ret, struct berth_error *err);
void agent_client_free(struct agent_client *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct agent_client *, agent_client_free);
/* The agent's version from its READY (borrowed). */
const char *agent_client_agent_version(const struct agent_client *c);
/* Whether the session failed (out of step, ended, refused): every later call fails, as
 * opposed to a call the agent answered with an error. */
bool agent_client_broken(const struct agent_client *c);
/* Whether a whole frame waits in the client's buffer, read from the stream already (by
 * an earlier call): an event loop must pump it without waiting for the fd to be
 * readable, which it may never become again. */
bool agent_client_has_frame(const struct agent_client *c);

/* ---- exec ---- */
struct agent_exec_req {
	const char *const *argv; /* NULL-terminated, at least one */
	const char *const *env;	 /* NULL-terminated "K=V", the whole environment; NULL: PATH */
	const char *cwd;	 /* NULL: the command's $HOME (from env), else "/" */
	uint32_t uid, gid;	 /* AGENT_ID_NONE: root's, as the agent runs */
	bool interactive;	 /* a pty: stdout carries both streams */
	uint16_t cols, rows;	 /* the pty's first size */
};

/* Called from inside the client (whichever call is waiting): they must not call the
 * client back; `p` is valid during the call only. */
struct agent_exec_cbs {
	/* `stream` 1 (stdout) or 2 (stderr); len 0: that stream ended. */
	void (*output)(void *data, uint32_t ch, int stream, const void *p, size_t len);
	/* The command exited: `status` is its exit code, 128 + signal when killed. */
	void (*exit)(void *data, uint32_t ch, int status);
};

/* Start a command; returns its channel in *ret_ch and its pid in the guest in *ret_pid
 * (either may be NULL) once the agent started it. `cbs` (or NULL: output dropped) and
 * `data` are borrowed until agent_client_exec_wait or _release. -ENOENT etc.: the agent's
 * exec failed. */
int agent_client_exec_start(struct agent_client *c, const struct agent_exec_req *req,
			    const struct agent_exec_cbs *cbs, void *data, uint32_t *ret_ch,
			    uint32_t *ret_pid, int timeout_ms, struct berth_error *err);
/* Bytes for the command's stdin; len 0 closes it (a pty's stdin closes with the command). */
int agent_client_exec_stdin(struct agent_client *c, uint32_t ch, const void *p, size_t len,
			    struct berth_error *err);
int agent_client_exec_resize(struct agent_client *c, uint32_t ch, uint16_t cols, uint16_t rows,
			     struct berth_error *err);
int agent_client_exec_signal(struct agent_client *c, uint32_t ch, int sig, struct berth_error *err);
/* Wait for the command to exit (its output delivered before), then forget the channel.
 * *ret_status as in cbs->exit. -ETIMEDOUT leaves the channel for another wait. */
int agent_client_exec_wait(struct agent_client *c, uint32_t ch, int timeout_ms, int *ret_status,
			   struct berth_error *err);
/* Forget a channel without waiting (its later frames are dropped). */
void agent_client_exec_release(struct agent_client *c, uint32_t ch);
/* Handle what arrives for up to `timeout_ms` (0: what is there already): callbacks run.
 * 0 on timeout or after one frame (agent_client_has_frame() says whether more wait),
 * -errno when the session failed. */
int agent_client_pump(struct agent_client *c, int timeout_ms, struct berth_error *err);

/* Run a command to its end: `in` (may be NULL) as stdin then end of input, stdout and
 * stderr gathered (up to 16 MiB each) into *ret_out / *ret_err (NUL-terminated, owned;
 * either may be NULL). For tests and short commands. */
int agent_client_exec_run(struct agent_client *c, const struct agent_exec_req *req, const char *in,
			  char **ret_out, char **ret_err, int *ret_status, int timeout_ms,
			  struct berth_error *err);

/* ---- files ---- */
struct agent_file_info {
	enum agent_file_type type;
	uint32_t mode;	   /* permission bits; AGENT_ID_NONE on push: kept, or 0644/0755 */
	uint32_t uid, gid; /* AGENT_ID_NONE on push: kept, or root */
	uint64_t size;
	int64_t mtime_s; /* modification time (pull) */
	uint32_t mtime_ns;
	char *target;	/* owned: a symlink's target ("" otherwise) */
	char **entries; /* owned, NULL-terminated: a directory's entries (NULL otherwise) */
	size_t n_entries;
};

void agent_file_info_release(struct agent_file_info *i);

/* Pull `path`: its info in *ret; a regular file's content written to `fd` (may be -1 for
 * info only... the content is then read and dropped). -ENOENT etc. from the guest. */
int agent_client_file_pull(struct agent_client *c, const char *path, int fd,
			   struct agent_file_info *ret, int timeout_ms, struct berth_error *err);
/* Push `path` of `info->type`, as LXD 5.0.2's POST .../files: a regular file's content
 * read from `fd` to its end, written beside the destination and renamed over it (after
 * the old content when `flags` has AGENT_PUT_APPEND), through a symlink in the last
 * component; a directory made if missing; a symlink to info->target made if the path is
 * free (the same link there is fine, else -EEXIST). info->mode, ->uid, ->gid
 * (AGENT_ID_NONE: 0644 or 0750, root) apply to what is created; an existing file or
 * directory keeps its own unless `flags` has AGENT_PUT_MODIFY_PERM. */
int agent_client_file_push(struct agent_client *c, const char *path,
			   const struct agent_file_info *info, int fd, unsigned flags,
			   int timeout_ms, struct berth_error *err);
int agent_client_file_delete(struct agent_client *c, const char *path, int timeout_ms,
			     struct berth_error *err);
int agent_client_mkdir(struct agent_client *c, const char *path, uint32_t mode, uint32_t uid,
		       uint32_t gid, bool parents, int timeout_ms, struct berth_error *err);

/* ---- state ---- */
struct agent_addr {
	char *family;  /* owned: "inet" or "inet6" */
	char *address; /* owned */
	char *netmask; /* owned: prefix length, "8" */
	char *scope;   /* owned: "local", "link" or "global" */
};

struct agent_iface {
	char *name, *hwaddr, *type, *state; /* owned; type: "loopback", "broadcast"... */
	uint32_t mtu;
	uint64_t rx_bytes, tx_bytes, rx_packets, tx_packets;
	uint64_t rx_errors, tx_errors, rx_dropped, tx_dropped;
	struct agent_addr *addrs; /* owned */
	size_t n_addrs;
};

struct agent_state {
	uint64_t mem_usage, mem_total, swap_usage, swap_total; /* bytes */
	uint64_t disk_usage, disk_total;		       /* bytes, of / */
	uint32_t processes;
	uint64_t cpu_ns;
	struct agent_iface *ifaces; /* owned */
	size_t n_ifaces;
};

void agent_state_release(struct agent_state *s);
/* Decode a STATE_REPLY payload. -EBADMSG when malformed, -ENOMEM. */
int agent_state_decode(const void *p, size_t len, struct agent_state *ret);
int agent_client_state(struct agent_client *c, struct agent_state *ret, int timeout_ms,
		       struct berth_error *err);
