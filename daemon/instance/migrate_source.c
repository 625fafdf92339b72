/* daemon/instance/migrate_source.c: the source of a migration (see migrate_source.h).
 *
 * Two halves meet through socket pairs. On the loop, a bridge per websocket:
 *
 *   websocket message --frame--> socket (loop end)  ... worker end: migrate_chan
 *   socket frames ---message--> websocket
 *
 * with flow control both ways (the websocket is paused while the socket has more than
 * BRIDGE_HIGH bytes queued; the socket is not read while the websocket has, a timer
 * looks again). A bridge ends when either side does: the websocket closing shuts the
 * socket (the worker reads EOF: "the migration peer went away"), the worker closing its
 * end closes the websocket. It frees itself once its handles are closed.
 *
 * On the worker (migrate_source_run): wait for both websockets (MIGRATE_CONNECT_S), then
 * LXD's exchange: offer header, answer, rsync of each snapshot then of the instance
 * (twice for a running instance: LXD's stateless final sync), the target's control. */
#define LOG_CATEGORY "migrate-source"
#include "daemon/instance/migrate_source.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/random.h>
#include <sys/socket.h>

#include "daemon/db/db.h"
#include "daemon/instance/instance.h"
#include "daemon/instance/migrate_btrfs.h"
#include "daemon/instance/migrate_io.h"
#include "daemon/instance/migrate_proto.h"
#include "daemon/instance/migrate_volume.h"
#include "daemon/instance/volume.h"
#include "lib/json.h"
#include "lib/log.h"
#include "lib/util.h"
#include "storage/driver.h"

#define MIGRATE_CONNECT_S 30
#define MIGRATE_ANSWER_MS (60 * 1000)
#define BRIDGE_HIGH (4u << 20)
#define BRIDGE_LOW (1u << 20)
#define BRIDGE_POLL_MS 20
#define SECRET_LEN 64

enum { SOCK_CONTROL, SOCK_FS, SOCK_MAX };
static const char *const sock_names[SOCK_MAX] = {"control", "fs"};

struct migrate_source {
	struct berth_daemon *d; /* borrowed */
	char *project, *name;	/* owned */
	bool instance_only;
	char secret[SOCK_MAX][SECRET_LEN + 1];
	pthread_mutex_t lock; /* guards fds and connected */
	pthread_cond_t cond;
	int fds[SOCK_MAX]; /* worker ends of the bridges, -EBADF until connected */
	bool connected[SOCK_MAX];
	json_t *target; /* owned, push mode: {"socket","operation"} and "websockets" */
	char *snap;	/* owned: the snapshot sent as the instance, or NULL */
	char *pool;	/* owned: a custom volume's pool (migrate_volume.h), or NULL */
};

/* ---- the loop's bridges ---- */

struct bridge {
	struct berth_ws_conn *ws; /* borrowed until on_close; NULL after */
	uv_pipe_t pipe;
	uv_timer_t timer; /* resumes reading the pipe once the websocket drained */
	uv_shutdown_t shut;
	uint8_t *rbuf; /* owned: frames read from the pipe, not complete yet */
	size_t rlen, rcap;
	bool ws_paused, pipe_paused, pipe_done;
	int open_handles;
};

struct bridge_write {
	uv_write_t req;
	struct bridge *b;
	uint8_t data[];
};

/* The bridge goes once its handles are closed and its websocket is gone: a websocket
 * that we closed still reports on_close after the peer's answer. */
static void bridge_maybe_free(struct bridge *b)
{
	if (b->open_handles > 0 || b->ws)
		return;
	free(b->rbuf);
	free(b);
}

static void bridge_handle_closed(uv_handle_t *h)
{
	struct bridge *b = h->data;

	b->open_handles--;
	bridge_maybe_free(b);
}

static void bridge_shutdown_cb(uv_shutdown_t *req, int status)
{
	struct bridge *b = req->handle->data;

	(void)status;
	uv_close((uv_handle_t *)&b->pipe, bridge_handle_closed);
}

/* Idempotent: the pipe (after its queued writes: uv_shutdown) and the timer go. */
static void bridge_close_pipe(struct bridge *b)
{
	if (b->pipe_done)
		return;
	b->pipe_done = true;
	uv_read_stop((uv_stream_t *)&b->pipe);
	uv_close((uv_handle_t *)&b->timer, bridge_handle_closed);
	if (uv_shutdown(&b->shut, (uv_stream_t *)&b->pipe, bridge_shutdown_cb) < 0)
		uv_close((uv_handle_t *)&b->pipe, bridge_handle_closed);
}

static void bridge_write_cb(uv_write_t *req, int status)
{
	struct bridge_write *w = container_of(req, struct bridge_write, req);
	struct bridge *b = w->b;

	free(w);
	if (status < 0)
		return;
	if (b->ws_paused && b->ws &&
	    uv_stream_get_write_queue_size((uv_stream_t *)&b->pipe) < BRIDGE_LOW) {
		b->ws_paused = false;
		berth_ws_conn_pause(b->ws, false);
	}
}

static void bridge_on_message(struct berth_ws_conn *ws, bool text, const uint8_t *data, size_t len,
			      void *ptr)
{
	struct bridge *b = ptr;
	struct bridge_write *w;
	uv_buf_t buf;

	if (b->pipe_done)
		return;
	w = malloc(sizeof(*w) + 5 + len);
	if (!w) {
		berth_ws_conn_close(ws, 1011, "out of memory");
		return;
	}
	w->b = b;
	w->data[0] = text ? 1 : 0;
	w->data[1] = (uint8_t)(len >> 24);
	w->data[2] = (uint8_t)(len >> 16);
	w->data[3] = (uint8_t)(len >> 8);
	w->data[4] = (uint8_t)len;
	if (len) /* rsync's barrier is an empty message: data may be NULL then */
		memcpy(w->data + 5, data, len);
	buf = uv_buf_init((char *)w->data, (unsigned)(5 + len));
	if (uv_write(&w->req, (uv_stream_t *)&b->pipe, &buf, 1, bridge_write_cb) < 0) {
		free(w);
		berth_ws_conn_close(ws, 1011, "migration ended");
		return;
	}
	if (!b->ws_paused &&
	    uv_stream_get_write_queue_size((uv_stream_t *)&b->pipe) > BRIDGE_HIGH) {
		b->ws_paused = true;
		berth_ws_conn_pause(ws, true);
	}
}

static void bridge_on_close(struct berth_ws_conn *ws, void *ptr)
{
	struct bridge *b = ptr;

	(void)ws;
	b->ws = NULL;
	bridge_close_pipe(b);
	bridge_maybe_free(b);
}

static const struct berth_ws_callbacks bridge_ws_callbacks = {
	.on_message = bridge_on_message,
	.on_close = bridge_on_close,
};

static void bridge_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	struct bridge *b = h->data;

	(void)hint;
	if (b->rcap - b->rlen < 65536) {
		uint8_t *p = realloc(b->rbuf, b->rcap + 65536);

		if (!p) {
			*buf = uv_buf_init(NULL, 0);
			return;
		}
		b->rbuf = p;
		b->rcap += 65536;
	}
	*buf = uv_buf_init((char *)b->rbuf + b->rlen, (unsigned)(b->rcap - b->rlen));
}

/* Send the complete frames of rbuf as websocket messages. */
static void bridge_forward(struct bridge *b)
{
	size_t off = 0;

	while (b->rlen - off >= 5) {
		const uint8_t *f = b->rbuf + off;
		size_t len = (size_t)f[1] << 24 | (size_t)f[2] << 16 | (size_t)f[3] << 8 | f[4];

		if (b->rlen - off < 5 + len)
			break;
		if (b->ws)
			berth_ws_conn_send(b->ws, f[0] == 1, f + 5, len);
		off += 5 + len;
	}
	memmove(b->rbuf, b->rbuf + off, b->rlen - off);
	b->rlen -= off;
}

static void bridge_read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct bridge *b = s->data;

	(void)buf;
	if (n < 0) { /* the worker is done with this websocket */
		if (b->ws)
			berth_ws_conn_close(b->ws, 1000, "");
		bridge_close_pipe(b);
		return;
	}
	b->rlen += (size_t)n;
	bridge_forward(b);
	if (b->ws && berth_ws_conn_queued(b->ws) > BRIDGE_HIGH) {
		b->pipe_paused = true;
		uv_read_stop(s);
	}
}

static void bridge_timer_cb(uv_timer_t *t)
{
	struct bridge *b = t->data;

	if (!b->pipe_paused || b->pipe_done)
		return;
	if (!b->ws || berth_ws_conn_queued(b->ws) < BRIDGE_LOW) {
		b->pipe_paused = false;
		uv_read_start((uv_stream_t *)&b->pipe, bridge_alloc, bridge_read_cb);
	}
}

/* A bridge for websocket `conn` (upgraded here); *ret_fd is the worker's end. */
static int bridge_new(uv_loop_t *loop, struct berth_http_conn *conn, int *ret_fd)
{
	struct bridge *b = calloc(1, sizeof(*b));
	int sv[2], r;

	if (!b)
		return -ENOMEM;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		free(b);
		return -errno;
	}
	r = uv_pipe_init(loop, &b->pipe, 0);
	if (r >= 0)
		r = uv_pipe_open(&b->pipe, sv[0]);
	if (r < 0) {
		close(sv[0]);
		close(sv[1]);
		free(b);
		return r;
	}
	uv_timer_init(loop, &b->timer);
	b->pipe.data = b->timer.data = b;
	b->open_handles = 2;
	r = berth_http_upgrade_ws(conn, &bridge_ws_callbacks, b, &b->ws);
	if (r < 0) {
		b->ws = NULL;
		close(sv[1]);
		bridge_close_pipe(b);
		return r;
	}
	uv_timer_start(&b->timer, bridge_timer_cb, BRIDGE_POLL_MS, BRIDGE_POLL_MS);
	uv_read_start((uv_stream_t *)&b->pipe, bridge_alloc, bridge_read_cb);
	*ret_fd = sv[1];
	return 0;
}

/* ---- the operation ---- */

static int draw_secret(char *out)
{
	unsigned char b[SECRET_LEN / 2];

	if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b))
		return -EIO;
	for (size_t i = 0; i < sizeof(b); i++)
		sprintf(out + 2 * i, "%02x", b[i]);
	return 0;
}

void migrate_source_free(void *p)
{
	struct migrate_source *s = p;

	if (!s)
		return;
	for (int i = 0; i < SOCK_MAX; i++)
		if (s->fds[i] >= 0)
			close(s->fds[i]);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->cond);
	json_decref(s->target);
	free(s->snap);
	free(s->pool);
	free(s->project);
	free(s->name);
	free(s);
}

/* Push mode: the target's operation URL and its websockets' secrets, as LXD's
 * InstancePostTarget ({"operation", "secrets": {"control", "fs"}, "certificate"}; the
 * Go field is Websockets, and "websockets" is taken too). */
static int parse_target(const json_t *target, const char *state_dir, json_t **ret,
			struct berth_error *err)
{
	const json_t *ws = json_object_get(target, "secrets")
				   ?: json_object_get(target, "websockets");
	json_auto_t *m = json_object();
	int r;

	if (!m)
		return -ENOMEM;
	if (!berth_json_string(ws, "control") || !berth_json_string(ws, "fs"))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Migration target needs the \"control\" and \"fs\" "
				       "websocket secrets");
	if (json_object_get(ws, "criu"))
		return berth_error_set(err, -EOPNOTSUPP, BERTH_ERR_BAD_REQUEST,
				       "Live migration is not supported: CRIU isn't used by berth");
	r = migrate_parse_operation_url(berth_json_string(target, "operation"),
					berth_json_string(target, "certificate"), state_dir, m,
					err);
	if (r < 0)
		return r;
	if (json_object_set(m, "websockets", (json_t *)ws) < 0)
		return -ENOMEM;
	*ret = TAKE_PTR(m);
	return 0;
}

/* A source of `name` with its secrets drawn; takes `push` (NULL for a listener). */
static int source_alloc(struct berth_daemon *d, const char *project, const char *name,
			bool instance_only, json_t *push, struct migrate_source **ret)
{
	struct migrate_source *s = calloc(1, sizeof(*s));
	int r;

	if (!s) {
		json_decref(push);
		return -ENOMEM;
	}
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	s->fds[0] = s->fds[1] = -EBADF;
	s->d = d;
	s->instance_only = instance_only;
	s->target = push;
	s->project = strdup(project);
	s->name = strdup(name);
	r = s->project && s->name ? 0 : -ENOMEM;
	for (int i = 0; r >= 0 && i < SOCK_MAX; i++)
		r = draw_secret(s->secret[i]);
	if (r < 0) {
		migrate_source_free(s);
		return r;
	}
	*ret = s;
	return 0;
}

int migrate_source_new(struct berth_daemon *d, const char *project, const char *name, bool live,
		       bool instance_only, const json_t *target, struct migrate_source **ret,
		       struct berth_error *err)
{
	json_auto_t *inst = NULL;
	json_auto_t *push = NULL;
	int r = db_instance_get(d->db, project, name, &inst, err);

	if (r >= 0 && target && !json_is_null(target))
		r = parse_target(target, d->dir, &push, err);
	if (r < 0)
		return r;
	if (streq(berth_json_string(inst, "type") ?: "", "virtual-machine"))
		return berth_error_set(err, -EOPNOTSUPP, BERTH_ERR_BAD_REQUEST,
				       "Migrating virtual machines is not supported yet");
	if (live && instance_running(d, project, inst))
		return berth_error_set(err, -EOPNOTSUPP, BERTH_ERR_BAD_REQUEST,
				       "Unable to perform container live migration. CRIU isn't "
				       "installed on the source server");
	return source_alloc(d, project, name, instance_only, TAKE_PTR(push), ret);
}

int migrate_source_new_volume(struct berth_daemon *d, const char *project, const char *pool,
			      const char *name, bool volume_only, const json_t *target,
			      struct migrate_source **ret, struct berth_error *err)
{
	json_auto_t *push = NULL;
	int r = migrate_volume_source_check(d, project, pool, name, err);

	if (r >= 0 && target && !json_is_null(target))
		r = parse_target(target, d->dir, &push, err);
	if (r >= 0)
		r = source_alloc(d, project, name, volume_only, TAKE_PTR(push), ret);
	if (r >= 0 && !((*ret)->pool = strdup(pool))) {
		migrate_source_free(*ret);
		return -ENOMEM;
	}
	return r;
}

int migrate_source_set_snapshot(struct migrate_source *s, const char *snap, struct berth_error *err)
{
	json_auto_t *row = NULL;
	int r = db_snapshot_get(s->d->db, s->project, s->name, snap, &row, err);

	if (r < 0)
		return r;
	s->snap = strdup(snap);
	s->instance_only = true;
	return s->snap ? 0 : -ENOMEM;
}

bool migrate_source_pushes(const struct migrate_source *s)
{
	return s->target != NULL;
}

json_t *migrate_source_metadata(const struct migrate_source *s)
{
	if (s->target)
		return json_object();
	return json_pack("{s:s, s:s}", "control", s->secret[SOCK_CONTROL], "fs",
			 s->secret[SOCK_FS]);
}

static void respond_error(struct berth_http_conn *conn, int status, const char *msg)
{
	json_auto_t *body = json_pack("{s:s, s:s, s:i, s:n}", "type", "error", "error", msg,
				      "error_code", status, "metadata");
	_cleanup_free_ char *text = body ? berth_json_dumps(body) : NULL;

	berth_http_respond(conn, status, "application/json", NULL, 0, text,
			   text ? strlen(text) : 0);
}

/* Constant time in the secret's content: both are compared in full. */
static int find_socket(const struct migrate_source *s, const char *secret)
{
	int found = -1;

	if (strlen(secret) != SECRET_LEN)
		return -1;
	for (int i = 0; i < SOCK_MAX; i++) {
		unsigned char diff = 0;

		for (size_t k = 0; k < SECRET_LEN; k++)
			diff |= (unsigned char)(s->secret[i][k] ^ secret[k]);
		if (!diff)
			found = i;
	}
	return found;
}

void migrate_source_connect(struct operation *op, void *data, const char *secret,
			    struct berth_http_conn *conn)
{
	struct migrate_source *s = data;
	int i = find_socket(s, secret), fd = -EBADF;
	bool taken;

	(void)op;
	if (i < 0) {
		respond_error(conn, 403, "Forbidden");
		return;
	}
	pthread_mutex_lock(&s->lock);
	taken = s->connected[i];
	s->connected[i] = true;
	pthread_mutex_unlock(&s->lock);
	if (taken) {
		respond_error(conn, 400, "This websocket is already connected");
		return;
	}
	if (bridge_new(s->d->loop, conn, &fd) < 0) {
		log_warn("Migration of \"%s\": websocket \"%s\" could not be bridged", s->name,
			 sock_names[i]);
		return;
	}
	pthread_mutex_lock(&s->lock);
	s->fds[i] = fd;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

void migrate_source_cancel(void *data)
{
	struct migrate_source *s = data;

	pthread_mutex_lock(&s->lock);
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

/* Worker: wait until both websockets are bridged, the deadline, or a cancel. */
static int wait_connected(struct migrate_source *s, const atomic_bool *cancel,
			  struct berth_error *err)
{
	uint64_t deadline = berth_monotonic_ns() + MIGRATE_CONNECT_S * 1000000000ULL;
	int r = 0;

	pthread_mutex_lock(&s->lock);
	while (s->fds[SOCK_CONTROL] < 0 || s->fds[SOCK_FS] < 0) {
		struct timespec ts;

		if (cancel && atomic_load(cancel)) {
			r = berth_error_set(err, -ECANCELED, BERTH_ERR_INTERNAL,
					    "Migration cancelled");
			break;
		}
		if (berth_monotonic_ns() >= deadline) {
			r = berth_error_set(err, -ETIMEDOUT, BERTH_ERR_INTERNAL,
					    "Timed out waiting for connections");
			break;
		}
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 200 * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&s->cond, &s->lock, &ts);
	}
	pthread_mutex_unlock(&s->lock);
	return r;
}

/* LXD's architecture numbers (shared/osarch), as its Snapshot messages carry them. */
static const char *const arch_names[] = {NULL,	   "i686",    "x86_64",	 "armv7l", "aarch64",
					 "ppc",	   "ppc64",   "ppc64le", "s390x",  "mips",
					 "mips64", "riscv32", "riscv64"};

int migrate_arch_id(const char *name)
{
	for (size_t i = 1; name && i < sizeof(arch_names) / sizeof(arch_names[0]); i++)
		if (streq(arch_names[i], name))
			return (int)i;
	return 0;
}

const char *migrate_arch_name(int id)
{
	return id > 0 && (size_t)id < sizeof(arch_names) / sizeof(arch_names[0]) ? arch_names[id]
										 : NULL;
}

/* Seconds since the epoch of an RFC 3339 time (Go's zero time for "0001-01-01..."). */
static json_int_t unix_of(const char *rfc)
{
	struct tm tm = {0};

	if (!rfc || !strptime(rfc, "%Y-%m-%dT%H:%M:%S", &tm))
		return 0;
	return (json_int_t)timegm(&tm);
}

/* A snapshot row as LXD's Snapshot message (localConfig, localDevices, ...). */
static json_t *snapshot_message(const json_t *snap, const json_t *inst)
{
	json_t *config = json_object_get(snap, "config");
	json_t *devices = json_object_get(snap, "devices");
	json_t *profiles = json_object_get(inst, "profiles");

	return json_pack("{s:s, s:o, s:o, s:b, s:o, s:i, s:b, s:I, s:I, s:I}", "name",
			 berth_json_string(snap, "name") ?: "", "localConfig",
			 config ? json_incref(config) : json_object(), "profiles",
			 profiles ? json_incref(profiles) : json_array(), "ephemeral", 0,
			 "localDevices", devices ? json_incref(devices) : json_object(),
			 "architecture", migrate_arch_id(berth_json_string(inst, "architecture")),
			 "stateful", berth_json_bool(snap, "stateful", false), "creation_date",
			 unix_of(berth_json_string(snap, "created_at")), "last_used_date",
			 (json_int_t)0, "expiry_date",
			 unix_of(berth_json_string(snap, "expires_at")));
}

/* The offer: rsync (with LXD's features) as the one type berth sends, the snapshots
 * oldest first unless instance_only, criu NONE when the instance runs (a stateless
 * transfer: the target expects a final sync). */
static int offer_header(struct migrate_source *s, const json_t *inst, bool running, json_t **ret,
			struct berth_error *err)
{
	json_auto_t *snaps = NULL;
	json_auto_t *hdr = json_pack("{s:i, s:[], s:[], s:b, s:{s:b, s:b, s:b, s:b}}", "fs",
				     MIGRATE_FS_RSYNC, "snapshotNames", "snapshots", "predump", 0,
				     "rsyncFeatures", "xattrs", 1, "delete", 1, "compress", 1,
				     "bidirectional", 1);
	size_t i;
	json_t *snap;
	int r;

	if (!hdr)
		return -ENOMEM;
	if (running && json_object_set_new(hdr, "criu", json_integer(MIGRATE_CRIU_NONE)) < 0)
		return -ENOMEM;
	if (!s->instance_only) {
		r = s->pool ? migrate_volume_snapshots(s->d, s->project, s->pool, s->name, &snaps,
						       err)
			    : db_snapshot_list(s->d->db, s->project, s->name, &snaps, err);
		if (r < 0)
			return r;
		json_array_foreach(snaps, i, snap) {
			if (json_array_append_new(json_object_get(hdr, "snapshots"),
						  s->pool ? json_incref(snap)
							  : snapshot_message(snap, inst)) < 0 ||
			    json_array_append(json_object_get(hdr, "snapshotNames"),
					      json_object_get(snap, "name")) < 0)
				return -ENOMEM;
		}
	}
	*ret = TAKE_PTR(hdr);
	return 0;
}

/* The rsync options the target's answer asks for (an answer without "bidirectional" is
 * an LXD 3.7-era peer: xattrs, delete and compress, as LXD assumes). */
static void answer_rsync_opts(const json_t *answer, struct migrate_rsync_opts *o)
{
	const json_t *f = json_object_get(answer, "rsyncFeatures");

	if (!berth_json_bool(f, "bidirectional", false)) {
		o->xattrs = o->delete = o->compress = true;
		return;
	}
	o->xattrs = berth_json_bool(f, "xattrs", false);
	o->delete = berth_json_bool(f, "delete", false);
	o->compress = berth_json_bool(f, "compress", false);
}

/* Send every snapshot named in `names`, then the instance (twice when it runs). */
static int send_volumes(struct migrate_source *s, struct migrate_chan *fs, const json_t *names,
			bool running, const struct migrate_rsync_opts *o, struct berth_error *err)
{
	_cleanup_(instance_volume_release) struct instance_volume v = {0};
	size_t i;
	json_t *name;
	int r = s->pool ? instance_volume_open_on(s->d, s->pool, s->project, s->name,
						  STORAGE_VOL_CUSTOM, &v, err)
			: instance_volume_open(s->d, s->project, s->name, &v, err);

	if (r >= 0 && !v.pool)
		r = berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				    "Instance \"%s\" has no root volume to migrate", s->name);
	json_array_foreach(names, i, name) {
		_cleanup_free_ char *path = NULL;

		if (r < 0)
			return r;
		r = storage_volume_path(v.pool, &v.vol, json_string_value(name), &path);
		migrate_progress_begin(fs->progress, json_string_value(name));
		if (r >= 0)
			r = migrate_rsync_send(fs, path, o, err);
	}
	for (int pass = 0; r >= 0 && pass < (running ? 2 : 1); pass++) {
		_cleanup_free_ char *path = NULL;

		r = storage_volume_path(v.pool, &v.vol, s->snap, &path);
		migrate_progress_begin(fs->progress, NULL);
		if (r >= 0)
			r = migrate_rsync_send(fs, path, o, err);
	}
	return r;
}

/* A volume on a btrfs pool offers BTRFS first (the rsync features stay: the fallback). */
static int offer_btrfs(struct migrate_source *s, json_t *offer, struct berth_error *err)
{
	_cleanup_(instance_volume_release) struct instance_volume v = {0};
	int r = instance_volume_open(s->d, s->project, s->name, &v, err);

	if (r < 0 || !migrate_btrfs_pool(v.pool))
		return r;
	return migrate_btrfs_offer(offer);
}

/* The BTRFS type: the snapshots in `names`, then the instance, as btrfs streams; once
 * for a running instance too (LXD sends no final sync with btrfs). */
static int send_volumes_btrfs(struct migrate_source *s, struct migrate_chan *fs,
			      const json_t *names, const json_t *answer, const atomic_bool *cancel,
			      struct berth_error *err)
{
	_cleanup_(instance_volume_release) struct instance_volume v = {0};
	int r = instance_volume_open(s->d, s->project, s->name, &v, err);

	if (r < 0)
		return r;
	if (!migrate_btrfs_pool(v.pool))
		return berth_error_set(
			err, -EPROTO, BERTH_ERR_INTERNAL,
			"The target asked for btrfs streams of a volume not on btrfs");
	log_info("Migration of \"%s\": btrfs send/receive", s->name);
	return migrate_btrfs_send(fs, v.pool, &v.vol, names, s->snap, answer, cancel, err);
}

static int exchange(struct migrate_source *s, struct migrate_chan *ctl, struct migrate_chan *fs,
		    const atomic_bool *cancel, struct berth_error *err)
{
	json_auto_t *inst = NULL;
	json_auto_t *offer = NULL;
	json_auto_t *answer = NULL;
	struct migrate_rsync_opts o = {.cancel = cancel};
	const json_t *names;
	bool running;
	int r = s->pool ? 0 : db_instance_get(s->d->db, s->project, s->name, &inst, err);

	if (r < 0)
		return r;
	running = !s->snap && !s->pool && instance_running(s->d, s->project, inst);
	r = offer_header(s, inst, running, &offer, err);
	if (r >= 0)
		r = offer_btrfs(s, offer, err);
	if (r >= 0)
		r = migrate_send_header(ctl, offer, err);
	if (r >= 0)
		r = migrate_recv_header(ctl, MIGRATE_ANSWER_MS, &answer, err);
	if (r < 0)
		return r;
	log_debug("Migration phase of \"%s\": header exchanged", s->name);
	/* A refresh sends only the snapshots the target asks for. */
	names = berth_json_bool(answer, "refresh", false) ? json_object_get(answer, "snapshotNames")
							  : json_object_get(offer, "snapshotNames");
	if (migrate_btrfs_taken(answer)) {
		r = send_volumes_btrfs(s, fs, names, answer, cancel, err);
		return r < 0 ? r : migrate_recv_control(ctl, -1, err);
	}
	if (json_integer_value(json_object_get(answer, "fs")) != MIGRATE_FS_RSYNC)
		return berth_error_set(err, -EPROTO, BERTH_ERR_INTERNAL,
				       "The target asked for migration type %d, berth sends rsync",
				       (int)json_integer_value(json_object_get(answer, "fs")));
	answer_rsync_opts(answer, &o);
	r = send_volumes(s, fs, names, running, &o, err);
	if (r < 0)
		return r;
	r = migrate_recv_control(ctl, -1, err);
	log_debug("Migration phase of \"%s\": the target's control message came", s->name);
	return r;
}

/* Push mode: we connect to the target's websockets, then the same exchange. */
static int push(struct migrate_source *s, const atomic_bool *cancel,
		struct migrate_progress *progress, struct berth_error *err)
{
	_cleanup_(berth_client_freep) struct berth_client *c = NULL;
	_cleanup_(berth_ws_closep) struct berth_ws *wctl = NULL;
	_cleanup_(berth_ws_closep) struct berth_ws *wfs = NULL;
	struct migrate_chan ctl = {.fd = -EBADF}, fs = {.fd = -EBADF};
	int r = migrate_connect(s->target, json_object_get(s->target, "websockets"), &c, &wctl,
				&wfs, err);

	if (r < 0)
		return berth_error_wrap(err, r, "Connecting to the migration target");
	ctl.ws = wctl;
	fs.ws = wfs;
	fs.progress = progress;
	r = exchange(s, &ctl, &fs, cancel, err);
	if (r < 0 && r != -EPIPE)
		migrate_send_control(&ctl, r, err);
	migrate_chan_release(&ctl);
	migrate_chan_release(&fs);
	return r;
}

int migrate_source_run(struct operation *op, void *data, struct berth_error *err)
{
	struct migrate_source *s = data;
	const atomic_bool *cancel = operation_cancel_flag(op);
	struct migrate_progress progress = {.op = op, .volume = s->name};
	struct migrate_chan ctl = {.fd = -EBADF}, fs = {.fd = -EBADF, .progress = &progress};
	int r = s->target ? push(s, cancel, &progress, err) : wait_connected(s, cancel, err);

	if (r >= 0 && !s->target) {
		pthread_mutex_lock(&s->lock);
		ctl.fd = s->fds[SOCK_CONTROL];
		fs.fd = s->fds[SOCK_FS];
		pthread_mutex_unlock(&s->lock);
		log_debug("Migration phase of \"%s\": websockets connected", s->name);
		r = exchange(s, &ctl, &fs, cancel, err);
		if (r < 0 && r != -EPIPE)
			migrate_send_control(&ctl, r, err);
	}
	migrate_chan_release(&ctl);
	migrate_chan_release(&fs);
	/* Closing our ends closes the websockets (the bridges see EOF). */
	pthread_mutex_lock(&s->lock);
	for (int i = 0; i < SOCK_MAX; i++) {
		if (s->fds[i] >= 0)
			close(s->fds[i]);
		s->fds[i] = -EBADF;
	}
	pthread_mutex_unlock(&s->lock);
	if (r < 0)
		return berth_error_wrap(err, r, "Migration of %s \"%s\"",
					s->pool ? "storage volume" : "instance", s->name);
	log_info("%s \"%s\" sent to its migration target", s->pool ? "Volume" : "Instance",
		 s->name);
	return 0;
}

/* ---- a listener: the accepting half alone, for a target in push mode ---- */

int migrate_listener_new(struct berth_daemon *d, const char *project, const char *name,
			 struct migrate_source **ret)
{
	return source_alloc(d, project, name, false, NULL, ret);
}

int migrate_listener_wait(struct migrate_source *s, const atomic_bool *cancel, int *ret_ctl,
			  int *ret_fs, struct berth_error *err)
{
	int r = wait_connected(s, cancel, err);

	if (r < 0)
		return r;
	pthread_mutex_lock(&s->lock);
	*ret_ctl = s->fds[SOCK_CONTROL];
	*ret_fs = s->fds[SOCK_FS];
	pthread_mutex_unlock(&s->lock);
	return 0;
}

void migrate_listener_close(struct migrate_source *s)
{
	pthread_mutex_lock(&s->lock);
	for (int i = 0; i < SOCK_MAX; i++) {
		if (s->fds[i] >= 0)
			close(s->fds[i]);
		s->fds[i] = -EBADF;
	}
	pthread_mutex_unlock(&s->lock);
}
