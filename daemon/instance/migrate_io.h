/* daemon/instance/migrate_io.h: the wire of LXD's migration, seen from a worker thread
 * (doc/migration.md): message channels (one per websocket: control, fs), the protobuf
 * messages on the control channel, and rsync over the fs channel.
 *
 * A channel is either a websocket of lib/client (the target, which connects to the
 * source's operation: through TLS once lib/client speaks it, nothing changes here) or
 * a framed socket whose other end berthd's loop bridges to a websocket it serves (the
 * source: migrate_source.c). Frames on that socket: 1 byte (0 binary, 1 text), 4 bytes
 * big-endian length, the payload; the loop end turns each into one websocket message.
 *
 * rsync runs as LXD runs it, so that berth and LXD are peers: the receiver is
 * `rsync --server ...` with its stdio on the channel, the sender the rsync client with
 * `-e berth-netcat` (the shim relays the remote-shell pipes to a socket we hold). Each
 * transfer ends, in each direction, with an empty text message (LXD's "barrier"), so
 * that the next transfer reuses the same websocket.
 *
 * Everything here blocks: worker threads only. Errors: -errno with `err` set. */
#pragma once

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/client.h"
#include "lib/error.h"

struct operation;

/* The progress of the volume moving now, in the operation's metadata as LXD shows it:
 * "fs_progress": "NAME: 12.34MB (5.67MB/s)", what went over the fs channel (both ways)
 * since the transfer of NAME began, and its average speed. Updated at the first bytes of
 * each volume, then at most once a second. */
struct migrate_progress {
	struct operation *op; /* borrowed; NULL: no progress kept */
	const char *volume;   /* borrowed: the instance's or custom volume's name */
	const char *name;     /* borrowed: what moves now, the volume or a snapshot */
	uint64_t bytes, start_ns, shown_ns;
};

/* The transfer of snapshot `snap` (NULL: of the volume itself) begins: bytes and speed
 * count from zero (p NULL: nothing). */
void migrate_progress_begin(struct migrate_progress *p, const char *snap);

struct migrate_chan {
	struct berth_ws *ws; /* borrowed: a client websocket, or NULL */
	int fd;		     /* borrowed: a framed socket when ws is NULL */
	uint8_t *rbuf;	     /* owned: framed bytes read, not consumed yet */
	size_t rlen, rcap;
	/* borrowed, may be NULL: binary messages sent and received count here */
	struct migrate_progress *progress;
};

void migrate_chan_release(struct migrate_chan *c);

/* The peer's operation URL into `m`: "operation" ("/1.0/operations/ID"), and "socket" for
 * "unix://SOCKET/1.0/operations/ID" (a daemon on this host, SOCKET absolute), or for LXD's
 * "https://HOST[:PORT]/1.0/operations/ID": "url" (https://HOST[:PORT]), "certificate"
 * (the peer's PEM, pinned; empty or NULL: the system's CAs) and our own client
 * certificate, STATE_DIR/server.crt and server.key, as LXD shows its server's. 400 for
 * anything else. */
int migrate_parse_operation_url(const char *url, const char *certificate, const char *state_dir,
				json_t *m, struct berth_error *err);
/* Connect the "control" and "fs" websockets of the operation in `m` (as parsed above)
 * with `secrets` ({"control", "fs"}); the caller frees what was made, also on failure. */
int migrate_connect(const json_t *m, const json_t *secrets, struct berth_client **ret_client,
		    struct berth_ws **ret_ctl, struct berth_ws **ret_fs, struct berth_error *err);

/* One message. -EPIPE when the peer went away. */
int migrate_chan_send(struct migrate_chan *c, bool text, const void *data, size_t len,
		      struct berth_error *err);
/* One whole message into a new buffer (NUL-terminated). -EPIPE when the peer closed,
 * -ETIMEDOUT after `timeout_ms` (<0: no limit). */
int migrate_chan_recv(struct migrate_chan *c, int timeout_ms, uint8_t **ret, size_t *ret_len,
		      bool *ret_text, struct berth_error *err);

/* The protobuf messages (migrate_proto.h shapes) as binary messages. */
int migrate_send_header(struct migrate_chan *c, const json_t *header, struct berth_error *err);
int migrate_send_control(struct migrate_chan *c, int r, const struct berth_error *failure);
int migrate_recv_header(struct migrate_chan *c, int timeout_ms, json_t **ret,
			struct berth_error *err);
/* The peer's MigrationControl: 0 on success, -EIO with err = its message on failure. */
int migrate_recv_control(struct migrate_chan *c, int timeout_ms, struct berth_error *err);

/* rsync features both sides use: "xattrs", "delete", "compress" (LXD's names), taken
 * from a header's rsyncFeatures. */
struct migrate_rsync_opts {
	bool xattrs, delete, compress;
	const atomic_bool *cancel; /* borrowed, may be NULL: stops with -ECANCELED */
};

/* Send the content of directory `path` (a volume or snapshot) as one rsync transfer. */
int migrate_rsync_send(struct migrate_chan *c, const char *path, const struct migrate_rsync_opts *o,
		       struct berth_error *err);
/* Receive one transfer into the existing directory `path`. */
int migrate_rsync_recv(struct migrate_chan *c, const char *path, const struct migrate_rsync_opts *o,
		       struct berth_error *err);
