/* daemon/instance/migrate_io.c: channels, protobuf messages and rsync transfers of a
 * migration (see migrate_io.h). */
#define LOG_CATEGORY "migrate-io"
#include "daemon/instance/migrate_io.h"

#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "daemon/instance/migrate_proto.h"
#include "daemon/operation.h"
#include "images/download.h"
#include "lib/client_tls.h"
#include "lib/log.h"
#include "lib/macros.h"
#include "lib/json.h"
#include "lib/spawn.h"
#include "lib/util.h"

#define FRAME_HDR 5
#define CHUNK (256u << 10)
#define POLL_MS 200

void migrate_chan_release(struct migrate_chan *c)
{
	free(c->rbuf);
	c->rbuf = NULL;
	c->rlen = c->rcap = 0;
}

#define PROGRESS_EVERY_NS 1000000000ull

void migrate_progress_begin(struct migrate_progress *p, const char *snap)
{
	if (!p)
		return;
	p->name = snap ?: p->volume;
	p->bytes = 0;
	p->start_ns = berth_monotonic_ns();
	p->shown_ns = 0;
}

static void progress_add(struct migrate_progress *p, size_t n)
{
	uint64_t now, secs_x1000;
	char text[160];

	if (!p || !p->op || !p->name || !n)
		return;
	p->bytes += n;
	now = berth_monotonic_ns();
	if (p->shown_ns && now - p->shown_ns < PROGRESS_EVERY_NS)
		return;
	p->shown_ns = now;
	secs_x1000 = (now - p->start_ns) / 1000000;
	/* the same words as an image download's: "NAME: 12.34MB (5.67MB/s)" */
	image_download_progress_text(p->name, p->bytes, 0,
				     secs_x1000 ? p->bytes * 1000 / secs_x1000 : p->bytes, text,
				     sizeof(text));
	operation_set_metadata_key(p->op, "fs_progress", json_string(text));
}

static int chan_send(struct migrate_chan *c, bool text, const void *data, size_t len,
		     struct berth_error *err)
{
	uint8_t hdr[FRAME_HDR] = {text ? 1 : 0, (uint8_t)(len >> 24), (uint8_t)(len >> 16),
				  (uint8_t)(len >> 8), (uint8_t)len};
	int r;

	if (c->ws) {
		r = berth_ws_send(c->ws, text, data, len, err);
		if (r == -EPIPE) {
			berth_error_release(err);
			return berth_error_set(err, -EPIPE, BERTH_ERR_UNAVAILABLE,
					       "The migration peer went away");
		}
		return r;
	}
	r = berth_send_all(c->fd, hdr, sizeof(hdr));
	if (r >= 0 && len)
		r = berth_send_all(c->fd, data, len);
	if (r < 0)
		return berth_error_set(err, -EPIPE, BERTH_ERR_UNAVAILABLE,
				       "The migration peer went away");
	return 0;
}

int migrate_chan_send(struct migrate_chan *c, bool text, const void *data, size_t len,
		      struct berth_error *err)
{
	int r = chan_send(c, text, data, len, err);

	if (r >= 0 && !text)
		progress_add(c->progress, len);
	return r;
}

static size_t frame_len(const struct migrate_chan *c)
{
	return (size_t)c->rbuf[1] << 24 | (size_t)c->rbuf[2] << 16 | (size_t)c->rbuf[3] << 8 |
	       c->rbuf[4];
}

static bool frame_ready(const struct migrate_chan *c)
{
	return c->rlen >= FRAME_HDR && c->rlen >= FRAME_HDR + frame_len(c);
}

/* Read what the socket has into rbuf: >0 bytes, -EPIPE at EOF. */
static int frame_fill(struct migrate_chan *c)
{
	ssize_t n;

	if (c->rcap - c->rlen < CHUNK) {
		uint8_t *b = realloc(c->rbuf, c->rcap + CHUNK);

		if (!b)
			return -ENOMEM;
		c->rbuf = b;
		c->rcap += CHUNK;
	}
	do
		n = read(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == ECONNRESET ? -EPIPE : -errno;
	if (n == 0)
		return -EPIPE;
	c->rlen += (size_t)n;
	return (int)n;
}

static int frame_pop(struct migrate_chan *c, uint8_t **ret, size_t *ret_len, bool *ret_text)
{
	size_t len = frame_len(c);
	uint8_t *p = malloc(len + 1);

	if (!p)
		return -ENOMEM;
	memcpy(p, c->rbuf + FRAME_HDR, len);
	p[len] = 0;
	*ret_text = c->rbuf[0] == 1;
	memmove(c->rbuf, c->rbuf + FRAME_HDR + len, c->rlen - FRAME_HDR - len);
	c->rlen -= FRAME_HDR + len;
	*ret = p;
	*ret_len = len;
	return 0;
}

static int chan_recv(struct migrate_chan *c, int timeout_ms, uint8_t **ret, size_t *ret_len,
		     bool *ret_text, struct berth_error *err)
{
	int r;

	if (c->ws) {
		r = berth_ws_recv(c->ws, timeout_ms, (char **)ret, ret_len, ret_text, err);
		if (r == -EPIPE) {
			berth_error_release(err);
			return berth_error_set(err, -EPIPE, BERTH_ERR_UNAVAILABLE,
					       "The migration peer went away");
		}
		return r;
	}
	while (!frame_ready(c)) {
		struct pollfd pfd = {.fd = c->fd, .events = POLLIN};

		if (c->rlen >= FRAME_HDR && frame_len(c) > MIGRATE_PROTO_MAX + CHUNK)
			return berth_error_set(err, -EBADMSG, BERTH_ERR_INTERNAL,
					       "Migration message too large");
		r = poll(&pfd, 1, timeout_ms);
		if (r < 0 && errno == EINTR)
			continue;
		if (r == 0)
			return berth_error_set(err, -ETIMEDOUT, BERTH_ERR_UNAVAILABLE,
					       "Timed out waiting for the migration peer");
		r = frame_fill(c);
		if (r < 0)
			return berth_error_set(err, r == -EPIPE ? -EPIPE : r, BERTH_ERR_UNAVAILABLE,
					       "The migration peer went away");
	}
	return frame_pop(c, ret, ret_len, ret_text);
}

int migrate_chan_recv(struct migrate_chan *c, int timeout_ms, uint8_t **ret, size_t *ret_len,
		      bool *ret_text, struct berth_error *err)
{
	int r = chan_recv(c, timeout_ms, ret, ret_len, ret_text, err);

	if (r >= 0 && !*ret_text)
		progress_add(c->progress, *ret_len);
	return r;
}

static int chan_fd(const struct migrate_chan *c)
{
	return c->ws ? berth_ws_fd(c->ws) : c->fd;
}

static bool chan_buffered(const struct migrate_chan *c)
{
	return c->ws ? berth_ws_has_buffered(c->ws) : frame_ready(c);
}

/* ---- reaching the peer's operation ---- */

/* https://HOST[:PORT]/1.0/operations/ID: the base URL and the operation's path into `m`,
 * with what pins the peer and shows us to it. */
static int parse_https(const char *url, const char *certificate, const char *state_dir, json_t *m,
		       struct berth_error *err)
{
	const char *host = url + strlen("https://");
	const char *op = strchr(host, '/');
	_cleanup_free_ char *base = NULL, *crt = NULL, *key = NULL;

	if (!op || op == host || !berth_startswith(op, "/1.0/operations/") ||
	    !op[strlen("/1.0/operations/")] || strchr(op + strlen("/1.0/operations/"), '/'))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Invalid migration operation URL \"%s\"", url);
	base = strndup(url, (size_t)(op - url));
	crt = berth_strdup_printf("%s/server.crt", state_dir);
	key = berth_strdup_printf("%s/server.key", state_dir);
	if (!base || !crt || !key || json_object_set_new(m, "url", json_string(base)) < 0 ||
	    json_object_set_new(m, "operation", json_string(op)) < 0 ||
	    json_object_set_new(m, "client_cert", json_string(crt)) < 0 ||
	    json_object_set_new(m, "client_key", json_string(key)) < 0)
		return -ENOMEM;
	if (certificate && *certificate &&
	    json_object_set_new(m, "certificate", json_string(certificate)) < 0)
		return -ENOMEM;
	return 0;
}

int migrate_parse_operation_url(const char *url, const char *certificate, const char *state_dir,
				json_t *m, struct berth_error *err)
{
	const char *rest, *op;
	_cleanup_free_ char *sock = NULL;

	if (!url || !*url)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Migration source needs an \"operation\" URL");
	if (berth_startswith(url, "https://"))
		return parse_https(url, certificate, state_dir, m, err);
	if (!berth_startswith(url, "unix://"))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Invalid migration operation URL \"%s\"", url);
	rest = url + strlen("unix://");
	op = strstr(rest, "/1.0/operations/");
	if (!op || rest[0] != '/' || op == rest || !op[strlen("/1.0/operations/")] ||
	    strchr(op + strlen("/1.0/operations/"), '/'))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Invalid migration operation URL \"%s\"", url);
	sock = strndup(rest, (size_t)(op - rest));
	if (!sock || json_object_set_new(m, "socket", json_string(sock)) < 0 ||
	    json_object_set_new(m, "operation", json_string(op)) < 0)
		return -ENOMEM;
	return 0;
}

static int connect_one(struct berth_client *c, const char *op, const json_t *secrets,
		       const char *which, struct berth_ws **ret, struct berth_error *err)
{
	_cleanup_free_ char *path = NULL;
	_cleanup_free_ char *enc = berth_url_encode(berth_json_string(secrets, which) ?: "");

	if (!enc)
		return -ENOMEM;
	path = berth_strdup_printf("%s/websocket?secret=%s", op, enc);
	if (!path)
		return -ENOMEM;
	return berth_client_websocket(c, path, ret, err);
}

/* The fs websocket, on a client of its own, while the control one connects. */
struct fs_connect {
	struct berth_client *c; /* owned */
	const char *op;
	const json_t *secrets;
	struct berth_ws *ws;
	struct berth_error err;
	int r;
};

static void *fs_connect_thread(void *p)
{
	struct fs_connect *f = p;

	f->r = connect_one(f->c, f->op, f->secrets, "fs", &f->ws, &f->err);
	return NULL;
}

/* Over HTTPS each websocket is a TLS connection with a berth-tls helper of its own,
 * started and handshaking for some tens of ms: both are made at once. The websockets
 * keep their connections; the second client goes. */
static int connect_https(struct berth_client *c, const char *url,
			 const struct berth_tls_options *tls, const char *op, const json_t *secrets,
			 struct berth_ws **ret_ctl, struct berth_ws **ret_fs,
			 struct berth_error *err)
{
	struct fs_connect f = {.op = op, .secrets = secrets};
	pthread_t th;
	int r = berth_client_new_url(url, tls, &f.c, err);

	if (r >= 0)
		r = berth_client_set_name(f.c, url);
	if (r >= 0 && pthread_create(&th, NULL, fs_connect_thread, &f) != 0) {
		r = connect_one(c, op, secrets, "control", ret_ctl, err);
		if (r >= 0)
			r = connect_one(f.c, op, secrets, "fs", ret_fs, err);
		berth_client_free(f.c);
		return r;
	}
	if (r < 0) {
		berth_client_free(f.c);
		return r;
	}
	r = connect_one(c, op, secrets, "control", ret_ctl, err);
	pthread_join(th, NULL);
	berth_client_free(f.c);
	*ret_fs = f.ws; /* the caller closes it, whatever happened */
	if (r >= 0 && f.r < 0) {
		r = f.r;
		if (err) {
			berth_error_release(err);
			*err = f.err;
			return r;
		}
	}
	berth_error_release(&f.err);
	return r;
}

int migrate_connect(const json_t *m, const json_t *secrets, struct berth_client **ret_client,
		    struct berth_ws **ret_ctl, struct berth_ws **ret_fs, struct berth_error *err)
{
	const char *op = berth_json_string(m, "operation");
	const char *url = berth_json_string(m, "url");
	struct berth_tls_options tls = {
		.cert_file = berth_json_string(m, "client_cert"),
		.key_file = berth_json_string(m, "client_key"),
		.server_cert_pem = berth_json_string(m, "certificate"),
	};
	int r = url ? berth_client_new_url(url, &tls, ret_client, err)
		    : berth_client_new(berth_json_string(m, "socket"), ret_client, err);

	if (r >= 0 && url)
		r = berth_client_set_name(*ret_client, url);
	if (r >= 0 && url)
		return connect_https(*ret_client, url, &tls, op, secrets, ret_ctl, ret_fs, err);
	if (r >= 0)
		r = connect_one(*ret_client, op, secrets, "control", ret_ctl, err);
	if (r >= 0)
		r = connect_one(*ret_client, op, secrets, "fs", ret_fs, err);
	return r;
}

/* ---- protobuf messages ---- */

int migrate_send_header(struct migrate_chan *c, const json_t *header, struct berth_error *err)
{
	_cleanup_free_ uint8_t *buf = NULL;
	size_t len = 0;
	int r = migrate_header_encode(header, &buf, &len, err);

	return r < 0 ? r : migrate_chan_send(c, false, buf, len, err);
}

int migrate_send_control(struct migrate_chan *c, int r, const struct berth_error *failure)
{
	json_auto_t *msg = json_pack("{s:b, s:s}", "success", r >= 0, "message",
				     r >= 0 ? "" : berth_error_msg(failure, r));
	_cleanup_free_ uint8_t *buf = NULL;
	struct berth_error err = {0};
	size_t len = 0;

	if (!msg)
		return -ENOMEM;
	r = migrate_control_encode(msg, &buf, &len, &err);
	if (r >= 0)
		r = migrate_chan_send(c, false, buf, len, &err);
	berth_error_release(&err);
	return r;
}

static int recv_binary(struct migrate_chan *c, int timeout_ms, uint8_t **ret, size_t *ret_len,
		       struct berth_error *err)
{
	bool text = false;
	int r = migrate_chan_recv(c, timeout_ms, ret, ret_len, &text, err);

	if (r >= 0 && text) {
		free(*ret);
		*ret = NULL;
		return berth_error_set(err, -EBADMSG, BERTH_ERR_BAD_REQUEST,
				       "Only binary messages allowed on the migration control");
	}
	return r;
}

int migrate_recv_header(struct migrate_chan *c, int timeout_ms, json_t **ret,
			struct berth_error *err)
{
	_cleanup_free_ uint8_t *buf = NULL;
	size_t len = 0;
	int r = recv_binary(c, timeout_ms, &buf, &len, err);

	return r < 0 ? r : migrate_header_decode(buf, len, ret, err);
}

int migrate_recv_control(struct migrate_chan *c, int timeout_ms, struct berth_error *err)
{
	_cleanup_free_ uint8_t *buf = NULL;
	json_auto_t *msg = NULL;
	size_t len = 0;
	int r = recv_binary(c, timeout_ms, &buf, &len, err);

	if (r >= 0)
		r = migrate_control_decode(buf, len, &msg, err);
	if (r < 0)
		return r;
	if (!json_is_true(json_object_get(msg, "success")))
		return berth_error_set(err, -EIO, BERTH_ERR_INTERNAL, "%s",
				       berth_json_string(msg, "message") ?: "Migration failed");
	return 0;
}

/* ---- rsync over a channel ---- */

/* One transfer between the channel and `local`, our end of a socket pair whose other
 * end is rsync's (its stdio, or the netcat shim's fd 3). Each direction ends on its own:
 * rsync's side at EOF on `local` (we send the barrier), the peer's at its barrier (we
 * shut `local` for writing, so rsync sees EOF). Peer data waits in `pending` while rsync
 * is slow to read it, and the channel is not read meanwhile: neither side blocks the
 * other's direction. */
struct pump {
	struct migrate_chan *c;
	int local;
	bool local_eof, peer_eof;
	uint8_t *pending; /* owned */
	size_t plen, poff;
	uint64_t bytes; /* received from the peer */
};

static int pump_local(struct pump *p, uint8_t *buf, struct berth_error *err)
{
	ssize_t n = read(p->local, buf, CHUNK);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n < 0 && errno != ECONNRESET)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "Reading from rsync: %m");
	if (n <= 0) {
		p->local_eof = true;
		return migrate_chan_send(p->c, true, "", 0, err);
	}
	return migrate_chan_send(p->c, false, buf, (size_t)n, err);
}

static int pump_flush(struct pump *p, struct berth_error *err)
{
	while (p->poff < p->plen) {
		ssize_t n = send(p->local, p->pending + p->poff, p->plen - p->poff, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return 0;
		if (n < 0)
			return berth_error_set(err, -errno, BERTH_ERR_INTERNAL,
					       "Writing to rsync: %m");
		p->poff += (size_t)n;
	}
	free(p->pending);
	p->pending = NULL;
	p->plen = p->poff = 0;
	return 0;
}

static int pump_peer(struct pump *p, struct berth_error *err)
{
	bool text = false;
	int r = migrate_chan_recv(p->c, 0, &p->pending, &p->plen, &text, err);

	if (r == -ETIMEDOUT) {
		berth_error_release(err);
		return 0;
	}
	if (r < 0)
		return r;
	p->poff = 0;
	if (text) { /* the barrier: the peer's rsync is done talking */
		free(p->pending);
		p->pending = NULL;
		p->plen = 0;
		p->peer_eof = true;
		shutdown(p->local, SHUT_WR);
		return 0;
	}
	p->bytes += p->plen;
	return pump_flush(p, err);
}

static int pump_run(struct pump *p, const atomic_bool *cancel, struct berth_error *err)
{
	_cleanup_free_ uint8_t *buf = malloc(CHUNK);
	int r = 0;

	if (!buf)
		return -ENOMEM;
	while (r >= 0 && !(p->local_eof && p->peer_eof)) {
		struct pollfd pfd[2] = {
			{.fd = p->local_eof ? -1 : p->local, .events = POLLIN},
			{.fd = p->peer_eof || p->pending ? -1 : chan_fd(p->c), .events = POLLIN},
		};

		if (p->pending)
			pfd[0].fd = p->local, pfd[0].events |= POLLOUT;
		if (cancel && atomic_load(cancel))
			return berth_error_set(err, -ECANCELED, BERTH_ERR_INTERNAL,
					       "Migration cancelled");
		if (!p->peer_eof && !p->pending && chan_buffered(p->c)) {
			r = pump_peer(p, err);
			continue;
		}
		if (poll(pfd, 2, POLL_MS) < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (p->pending && (pfd[0].revents & (POLLOUT | POLLERR | POLLHUP)))
			r = pump_flush(p, err);
		if (r >= 0 && !p->local_eof && (pfd[0].revents & (POLLIN | POLLHUP | POLLERR)))
			r = pump_local(p, buf, err);
		if (r >= 0 && pfd[1].fd >= 0 && (pfd[1].revents & (POLLIN | POLLHUP | POLLERR)))
			r = pump_peer(p, err);
	}
	return r;
}

static void rsync_feature_args(const struct migrate_rsync_opts *o, const char **argv, size_t *n)
{
	if (o->xattrs) {
		argv[(*n)++] = "--xattrs";
		argv[(*n)++] = "--filter=-x security.selinux";
	}
	if (o->delete)
		argv[(*n)++] = "--delete";
	if (o->compress) {
		argv[(*n)++] = "--compress";
		argv[(*n)++] = "--compress-level=2";
	}
}

/* Start rsync with `argv`, `peer_end` as its stdio (receiver) or as its fd 3 (sender,
 * for the shim); stderr into `errfd`. */
static int rsync_start(const char *const *argv, int peer_end, bool as_stdio, int errfd,
		       pid_t *ret_pid, int *ret_pidfd, struct berth_error *err)
{
	struct berth_spawn s = {
		.argv = argv,
		.io = {as_stdio ? BERTH_SPAWN_FD : BERTH_SPAWN_NULL,
		       as_stdio ? BERTH_SPAWN_FD : BERTH_SPAWN_NULL, BERTH_SPAWN_FD},
		.fds = {peer_end, peer_end, errfd},
		.extra_fds = as_stdio ? NULL : &peer_end,
		.n_extra_fds = as_stdio ? 0 : 1,
		/* A session of its own: rsync forks, and a failed transfer kills them all. */
		.flags = BERTH_SPAWN_DIE_WITH_PARENT | BERTH_SPAWN_SETSID,
	};

	return berth_spawn_start(&s, ret_pid, ret_pidfd, err);
}

/* Wait for rsync (killed first when the transfer failed); its failure names `what`. */
static int rsync_wait(pid_t pid, int errfd, bool kill_it, const char *what, struct berth_error *err)
{
	char tail[512] = "";
	int status = 0;
	ssize_t n;
	off_t end;

	if (kill_it)
		kill(-pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	/* rsync's own children (generator, receiver) must be gone before the caller removes
	 * what they write: wait for the process group to empty (10 s at most). */
	for (int i = 0; kill_it && i < 1000 && kill(-pid, 0) == 0; i++) {
		kill(-pid, SIGKILL);
		usleep(10000);
	}
	if (kill_it || (WIFEXITED(status) && WEXITSTATUS(status) == 0))
		return 0;
	end = lseek(errfd, 0, SEEK_END);
	n = pread(errfd, tail, sizeof(tail) - 1,
		  end > (off_t)sizeof(tail) - 1 ? end - (off_t)sizeof(tail) + 1 : 0);
	tail[n > 0 ? n : 0] = 0;
	while (n > 0 && (tail[n - 1] == '\n' || tail[n - 1] == ' '))
		tail[--n] = 0;
	return berth_error_set(err, -EIO, BERTH_ERR_INTERNAL, "Rsync %s failed (status %d): %s",
			       what,
			       WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status),
			       tail);
}

static int rsync_transfer(struct migrate_chan *c, const char *const *argv, bool as_stdio,
			  const char *what, const atomic_bool *cancel, struct berth_error *err)
{
	_cleanup_close_ int errfd = memfd_create("berth-rsync-stderr", MFD_CLOEXEC);
	_cleanup_close_ int pidfd = -EBADF;
	int sv[2];
	struct pump p = {.c = c};
	pid_t pid = -1;
	int r;

	if (errfd < 0)
		return -errno;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "socketpair: %m");
	r = rsync_start(argv, sv[1], as_stdio, errfd, &pid, &pidfd, err);
	close(sv[1]);
	if (r < 0) {
		close(sv[0]);
		return r;
	}
	p.local = sv[0];
	fcntl(p.local, F_SETFL, O_NONBLOCK);
	log_debug("rsync %s started", what);
	r = pump_run(&p, cancel, err);
	free(p.pending);
	close(p.local);
	if (r < 0) {
		rsync_wait(pid, errfd, true, what, NULL);
		return r;
	}
	r = rsync_wait(pid, errfd, false, what, err);
	log_debug("rsync %s ended: %" PRIu64 " bytes from the peer", what, p.bytes);
	return r;
}

int migrate_rsync_send(struct migrate_chan *c, const char *path, const struct migrate_rsync_opts *o,
		       struct berth_error *err)
{
	_cleanup_free_ char *netcat = NULL;
	_cleanup_free_ char *src = berth_strdup_printf("%s/", path);
	const char *argv[24] = {"rsync",	 "-ar",	      "--devices",
				"--numeric-ids", "--partial", "--sparse"};
	size_t n = 6;
	int r = berth_program_find("berth-netcat", &netcat);

	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL,
				       "berth-netcat, rsync's transport, is missing");
	if (!src)
		return -ENOMEM;
	rsync_feature_args(o, argv, &n);
	argv[n++] = src;
	argv[n++] = "localhost:/tmp/foo"; /* the receiver's --server path wins */
	argv[n++] = "-e";
	argv[n++] = netcat;
	argv[n] = NULL;
	return rsync_transfer(c, argv, false, "send", o->cancel, err);
}

int migrate_rsync_recv(struct migrate_chan *c, const char *path, const struct migrate_rsync_opts *o,
		       struct berth_error *err)
{
	const char *argv[24] = {"rsync",     "--server",  "-vlogDtpre.iLsfx", "--numeric-ids",
				"--devices", "--partial", "--sparse",	      "--modify-window=-1"};
	size_t n = 8;

	rsync_feature_args(o, argv, &n);
	argv[n++] = ".";
	argv[n++] = path;
	argv[n] = NULL;
	return rsync_transfer(c, argv, true, "receive", o->cancel, err);
}
