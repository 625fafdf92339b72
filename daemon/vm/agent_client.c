/* daemon/vm/agent_client.c: the host's end of the berth-agent protocol; see
 * agent_client.h and doc/agent.md.
 *
 * Reading and writing share one rule: while a frame waits to be written, whatever the
 * agent sends is read into the input buffer (not handled), so that neither side can
 * block the other with full socket buffers. Frames are handled only in pump(), and so
 * callbacks never run inside a send. */
#include "daemon/vm/agent_client.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/util.h"

#define INBUF_MAX (4u << 20) /* bytes read ahead while a send waits */
/* a directory pulled: what a guest may make berthd hold (-E2BIG past it) */
#define PULL_MAX_ENTRIES (1u << 18)
#define PULL_MAX_NAMES (16u << 20) /* bytes of names */
#define MAX_CHANNELS 1024
#define RUN_OUTPUT_MAX (16u << 20)
#define SEND_TIMEOUT_MS 30000 /* for stdin, resize and signal, which wait for nothing else */

enum chan_kind {
	CHAN_EXEC,
	CHAN_REQUEST, /* file and state requests: one reply, or INFO + DATA... + END */
	CHAN_KIND_MAX,
};

struct chan {
	uint32_t id;
	enum chan_kind kind;
	bool done; /* EXIT, END, OK, STATE_REPLY or ERROR came */
	int ret;   /* the agent's ERROR as -errno, 0 otherwise */
	char *msg; /* owned: the agent's ERROR message */
	/* exec */
	bool started;
	uint32_t pid;
	int status;
	const struct agent_exec_cbs *cbs; /* borrowed */
	void *data;			  /* borrowed */
	/* request */
	uint8_t reply;		       /* the message type that ends it */
	int out_fd;		       /* borrowed: where a pulled file's content goes */
	int out_ret;		       /* first failure writing it */
	int64_t deadline;	       /* the request's: writes to out_fd end by it too */
	size_t entries_cap, names_len; /* a directory's listing so far */
	uint64_t got;		       /* a regular file's bytes so far */
	struct agent_file_info *info;  /* borrowed: the caller's */
	struct agent_state *state;     /* borrowed: the caller's */
};

struct agent_client {
	int fd; /* borrowed */
	struct agent_session s;
	struct agent_inbuf in;
	struct chan **chans; /* owned array of owned */
	size_t n_chans;
	uint32_t next_id;
	char *agent_version; /* owned */
	bool broken;	     /* the stream is out of step: every call fails */
	bool is_socket;	     /* writes use send(MSG_NOSIGNAL) */
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int remaining(int64_t deadline)
{
	int64_t left = deadline - now_ms();

	return left < 0 ? 0 : left > INT32_MAX ? INT32_MAX : (int)left;
}

static int fail(struct agent_client *c, struct berth_error *err, int ret, const char *what)
{
	c->broken = true;
	return berth_error_set(err, ret,
			       ret == -EACCES ? BERTH_ERR_FORBIDDEN : BERTH_ERR_UNAVAILABLE,
			       "agent: %s: %s", what,
			       ret == -EACCES  ? "not authenticated (wrong key, or not the agent)"
			       : ret == -EPIPE ? "connection closed"
			       : ret == -EMSGSIZE ? "frame too large"
			       : ret == -EBADMSG  ? "malformed frame"
						  : strerror(-ret));
}

/* Read once into the input buffer. 0, or -errno (-EPIPE at end of stream). */
static int read_some(struct agent_client *c)
{
	int r;

	if (c->in.len > INBUF_MAX)
		return -ENOBUFS;
	r = agent_inbuf_fill(&c->in, c->fd);
	if (r == -EAGAIN)
		return 0;
	return r == 0 ? -EPIPE : r < 0 ? r : 0;
}

/* Write `len` bytes, reading ahead meanwhile (see the top comment). */
static int write_frames(struct agent_client *c, const uint8_t *p, size_t len, int64_t deadline)
{
	while (len > 0) {
		struct pollfd pfd = {.fd = c->fd, .events = POLLIN | POLLOUT};
		/* no SIGPIPE when the agent is gone (on a socket; a pty or pipe raises none
		 * that the daemon does not ignore anyway) */
		ssize_t n = c->is_socket ? send(c->fd, p, len, MSG_NOSIGNAL) : write(c->fd, p, len);
		int r;

		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			return -errno;
		r = poll(&pfd, 1, remaining(deadline));
		if (r == 0)
			return -ETIMEDOUT;
		if (r < 0 && errno != EINTR)
			return -errno;
		if (r > 0 && (pfd.revents & POLLIN)) {
			r = read_some(c);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

static int send_frame(struct agent_client *c, uint8_t type, uint32_t ch, const void *p, size_t len,
		      int64_t deadline, struct berth_error *err)
{
	struct agent_buf out = {0};
	char nb[8];
	int r;

	if (c->broken)
		return berth_error_set(err, -EPIPE, BERTH_ERR_UNAVAILABLE,
				       "agent: the session failed before");
	r = agent_frame_encode(&c->s, &out, type, ch, p, len);
	if (r >= 0)
		r = write_frames(c, out.data, out.len, deadline);
	agent_buf_release(&out);
	if (r < 0) {
		char what[32];

		snprintf(what, sizeof(what), "sending %s", agent_msg_name(type, nb));
		return fail(c, err, r, what);
	}
	return 0;
}

static int send_buf(struct agent_client *c, uint8_t type, uint32_t ch, struct agent_buf *p,
		    int64_t deadline, struct berth_error *err)
{
	int r = p->failed ? berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory")
			  : send_frame(c, type, ch, p->data, p->len, deadline, err);

	agent_buf_release(p);
	return r;
}

/* ---- channels ---- */

static struct chan *chan_find(struct agent_client *c, uint32_t id)
{
	for (size_t i = 0; i < c->n_chans; i++)
		if (c->chans[i]->id == id)
			return c->chans[i];
	return NULL;
}

static struct chan *chan_new(struct agent_client *c, enum chan_kind kind, struct berth_error *err)
{
	struct chan **v, *ch;

	if (c->n_chans >= MAX_CHANNELS) {
		berth_error_set(err, -EMFILE, BERTH_ERR_UNAVAILABLE, "agent: %d channels in use",
				MAX_CHANNELS);
		return NULL;
	}
	v = realloc(c->chans, (c->n_chans + 1) * sizeof(*v));
	ch = calloc(1, sizeof(*ch));
	if (v)
		c->chans = v;
	if (!v || !ch) {
		free(ch);
		berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
		return NULL;
	}
	do /* 0 is the session's; ids in use are skipped after wrapping */
		ch->id = ++c->next_id;
	while (ch->id == 0 || chan_find(c, ch->id));
	ch->kind = kind;
	ch->out_fd = -EBADF;
	c->chans[c->n_chans++] = ch;
	return ch;
}

static void chan_free(struct agent_client *c, struct chan *ch)
{
	for (size_t i = 0; i < c->n_chans; i++) {
		if (c->chans[i] != ch)
			continue;
		c->chans[i] = c->chans[--c->n_chans];
		free(ch->msg);
		free(ch);
		return;
	}
}

/* ---- what arrives ---- */

static void on_error(struct chan *ch, const struct agent_frame *f)
{
	struct agent_rd rd;
	uint32_t e;
	const char *msg;

	agent_rd_init(&rd, f->payload, f->len);
	e = agent_rd_u32(&rd);
	msg = agent_rd_str(&rd);
	if (agent_rd_done(&rd) < 0 || e == 0 || e > 4095) {
		e = EIO;
		msg = "malformed ERROR from the agent";
	}
	ch->ret = -(int)e;
	free(ch->msg);
	ch->msg = strdup(msg);
	if (ch->kind == CHAN_REQUEST || !ch->started)
		ch->done = true;
}

static void on_info(struct chan *ch, const struct agent_frame *f)
{
	struct agent_file_info *i = ch->info;
	struct agent_rd rd;

	agent_rd_init(&rd, f->payload, f->len);
	i->type = agent_rd_u8(&rd);
	i->mode = agent_rd_u32(&rd);
	i->uid = agent_rd_u32(&rd);
	i->gid = agent_rd_u32(&rd);
	i->size = agent_rd_u64(&rd);
	i->mtime_s = (int64_t)agent_rd_u64(&rd);
	i->mtime_ns = agent_rd_u32(&rd);
	free(i->target);
	i->target = strdup(agent_rd_str(&rd));
	if (agent_rd_done(&rd) < 0 || !i->target || i->type == 0 || i->type >= AGENT_FILE_TYPE_MAX)
		ch->out_ret = -EBADMSG;
}

static void on_data(struct chan *ch, const struct agent_frame *f)
{
	struct agent_file_info *i = ch->info;
	struct agent_rd rd;

	if (ch->out_ret < 0)
		return;
	if (i->type == AGENT_FILE_REGULAR) {
		/* The size FILE_INFO announced, no more: a file that grows meanwhile (or a
		 * guest that sends without end) cannot make the host store more. */
		size_t n = i->size - ch->got < f->len ? (size_t)(i->size - ch->got) : f->len;

		ch->got += n;
		if (ch->out_fd >= 0 && n > 0)
			ch->out_ret = agent_write_all(ch->out_fd, f->payload, n,
						      remaining(ch->deadline));
		return;
	}
	agent_rd_init(&rd, f->payload, f->len);
	while (rd.off < rd.len && !rd.bad) {
		const char *name = agent_rd_str(&rd);
		char **v = i->entries;

		ch->names_len += strlen(name) + 1;
		if (i->n_entries >= PULL_MAX_ENTRIES || ch->names_len > PULL_MAX_NAMES) {
			ch->out_ret = -E2BIG;
			ch->done = true; /* not waiting for the rest: dropped when it comes */
			return;
		}
		if (i->n_entries + 2 > ch->entries_cap) {
			size_t cap = ch->entries_cap ? ch->entries_cap * 2 : 64;

			v = realloc(i->entries, cap * sizeof(*v));
			if (!v) {
				ch->out_ret = -ENOMEM;
				return;
			}
			i->entries = v;
			ch->entries_cap = cap;
		}
		v[i->n_entries] = strdup(name);
		if (!v[i->n_entries]) {
			ch->out_ret = -ENOMEM;
			return;
		}
		v[++i->n_entries] = NULL;
	}
	if (rd.bad)
		ch->out_ret = -EBADMSG;
}

static uint32_t payload_u32(const struct agent_frame *f, bool *ok)
{
	struct agent_rd rd;
	uint32_t v;

	agent_rd_init(&rd, f->payload, f->len);
	v = agent_rd_u32(&rd);
	*ok = agent_rd_done(&rd) == 0;
	return v;
}

/* One frame from the agent. -EPROTO when it breaks the protocol. */
static int on_frame(struct agent_client *c, const struct agent_frame *f)
{
	struct chan *ch = chan_find(c, f->channel);
	bool ok = true;

	if (!ch || ch->done)
		return 0; /* a released or finished channel's late frames: a second EXIT too */
	switch (f->type) {
	case AGENT_T_ERROR:
		on_error(ch, f);
		break;
	case AGENT_T_STARTED:
		ch->pid = payload_u32(f, &ok);
		ch->started = true;
		break;
	case AGENT_T_STDOUT:
	case AGENT_T_STDERR:
		if (ch->cbs && ch->cbs->output)
			ch->cbs->output(ch->data, ch->id, f->type == AGENT_T_STDOUT ? 1 : 2,
					f->payload, f->len);
		break;
	case AGENT_T_EXIT:
		ch->status = (int)payload_u32(f, &ok);
		ch->done = true;
		if (ok && ch->cbs && ch->cbs->exit)
			ch->cbs->exit(ch->data, ch->id, ch->status);
		break;
	case AGENT_T_FILE_INFO:
		if (ch->kind != CHAN_REQUEST || !ch->info)
			return -EPROTO;
		on_info(ch, f);
		break;
	case AGENT_T_FILE_DATA:
		if (ch->kind != CHAN_REQUEST || !ch->info)
			return -EPROTO;
		on_data(ch, f);
		break;
	case AGENT_T_STATE_REPLY:
		if (ch->kind != CHAN_REQUEST || !ch->state)
			return -EPROTO;
		ch->out_ret = agent_state_decode(f->payload, f->len, ch->state);
		ch->done = true;
		break;
	case AGENT_T_FILE_END:
	case AGENT_T_OK:
		ch->done = true;
		break;
	default:
		return -EPROTO;
	}
	return ok ? 0 : -EPROTO;
}

/* The next frame, read as needed until `deadline`. -ETIMEDOUT, or the session failed. */
static int next_frame(struct agent_client *c, int64_t deadline, struct agent_frame *f, size_t *used)
{
	for (;;) {
		struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
		int r = agent_frame_decode(&c->s, agent_inbuf_head(&c->in), c->in.len, f, used);

		if (r != -EAGAIN)
			return r;
		r = poll(&pfd, 1, remaining(deadline));
		if (r == 0)
			return -ETIMEDOUT;
		if (r < 0 && errno != EINTR)
			return -errno;
		if (r > 0) {
			r = read_some(c);
			if (r < 0)
				return r;
		}
	}
}

/* Handle one frame (waiting up to `deadline` for it). */
static int pump_one(struct agent_client *c, int64_t deadline, struct berth_error *err)
{
	struct agent_frame f;
	size_t used;
	int r;

	if (c->broken)
		return berth_error_set(err, -EPIPE, BERTH_ERR_UNAVAILABLE,
				       "agent: the session failed before");
	r = next_frame(c, deadline, &f, &used);
	if (r == -ETIMEDOUT)
		return r;
	if (r >= 0)
		r = on_frame(c, &f);
	if (r < 0)
		return fail(c, err, r, r == -EPROTO ? "unexpected message" : "receiving");
	agent_inbuf_consume(&c->in, used);
	return 0;
}

int agent_client_pump(struct agent_client *c, int timeout_ms, struct berth_error *err)
{
	int r = pump_one(c, now_ms() + (timeout_ms < 0 ? 0 : timeout_ms), err);

	return r == -ETIMEDOUT ? 0 : r;
}

/* Pump until `ch` is done. */
static int wait_done(struct agent_client *c, struct chan *ch, int64_t deadline, const char *what,
		     struct berth_error *err)
{
	while (!ch->done) {
		/* checked even while frames keep coming: a flood must not outlast it */
		int r = now_ms() > deadline ? -ETIMEDOUT : pump_one(c, deadline, err);

		if (r == -ETIMEDOUT)
			return berth_error_set(err, r, BERTH_ERR_UNAVAILABLE,
					       "agent: %s: no answer in time", what);
		if (r < 0)
			return berth_error_wrap(err, r, "%s", what);
	}
	if (ch->ret < 0 && (ch->kind == CHAN_REQUEST || !ch->started)) {
		int code = ch->ret == -ENOENT			     ? BERTH_ERR_NOT_FOUND
			   : ch->ret == -EACCES || ch->ret == -EPERM ? BERTH_ERR_FORBIDDEN
			   : ch->ret == -EINVAL || ch->ret == -EEXIST || ch->ret == -ENOTEMPTY
				   ? BERTH_ERR_BAD_REQUEST
				   : BERTH_ERR_INTERNAL;

		return berth_error_set(err, ch->ret, code, "%s", ch->msg ? ch->msg : what);
	}
	return 0;
}

/* ---- session ---- */

static int handshake(struct agent_client *c, int64_t deadline, struct berth_error *err)
{
	struct agent_buf out = {0};
	struct agent_frame f;
	size_t used;
	int r;

	r = agent_hs_hello(&c->s, &out);
	if (r >= 0)
		r = write_frames(c, out.data, out.len, deadline);
	agent_buf_release(&out);
	if (r < 0)
		return fail(c, err, r, "sending HELLO");
	/* answers to earlier attempts' HELLOs, still queued in a port, are skipped */
	do {
		r = next_frame(c, deadline, &f, &used);
		if (r < 0)
			return fail(c, err, r, "waiting for the agent's CHALLENGE");
		r = agent_hs_check_challenge(&c->s, f.payload, f.len, &out);
		if (r == -ESTALE)
			agent_inbuf_consume(&c->in, used);
	} while (r == -ESTALE);
	if (r < 0) {
		agent_buf_release(&out);
		return fail(c, err, r, "checking the agent's proof"); /* -EPROTO: version */
	}
	agent_inbuf_consume(&c->in, used);
	r = write_frames(c, out.data, out.len, deadline);
	agent_buf_release(&out);
	if (r < 0)
		return fail(c, err, r, "sending PROOF");
	/* READY is the agent's first tagged frame: it holds the session key too */
	r = next_frame(c, deadline, &f, &used);
	if (r >= 0 && (f.type != AGENT_T_READY || f.channel != 0))
		r = -EPROTO;
	if (r < 0)
		return fail(c, err, r == -EPIPE ? -EACCES : r, "waiting for READY");
	c->agent_version = strndup((const char *)f.payload, f.len);
	agent_inbuf_consume(&c->in, used);
	if (!c->agent_version)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
	return 0;
}

int agent_client_new(int fd, const uint8_t key[AGENT_KEY_LEN], int timeout_ms,
		     struct agent_client **ret, struct berth_error *err)
{
	_cleanup_(agent_client_freep) struct agent_client *c = NULL;
	struct stat st;
	int fl, r;

	c = calloc(1, sizeof(*c));
	if (!c)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
	c->fd = fd;
	c->is_socket = fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
	agent_session_init(&c->s, AGENT_ROLE_HOST, key);
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "agent: fd %d: %m", fd);
	r = handshake(c, now_ms() + timeout_ms, err);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(c);
	return 0;
}

void agent_client_free(struct agent_client *c)
{
	if (!c)
		return;
	while (c->n_chans > 0)
		chan_free(c, c->chans[0]);
	free(c->chans);
	free(c->agent_version);
	agent_inbuf_release(&c->in);
	agent_session_release(&c->s);
	free(c);
}

const char *agent_client_agent_version(const struct agent_client *c)
{
	return c->agent_version;
}

bool agent_client_broken(const struct agent_client *c)
{
	return c->broken;
}

bool agent_client_has_frame(const struct agent_client *c)
{
	const uint8_t *p = agent_inbuf_head(&c->in);
	uint32_t len;

	if (c->in.len < 4)
		return false;
	len = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
	return c->in.len - 4 >= len;
}

/* ---- exec ---- */

static void put_strv(struct agent_buf *b, const char *const *v)
{
	uint32_t n = 0;

	while (v && v[n])
		n++;
	agent_buf_u32(b, n);
	for (uint32_t i = 0; i < n; i++)
		agent_buf_str(b, v[i]);
}

int agent_client_exec_start(struct agent_client *c, const struct agent_exec_req *req,
			    const struct agent_exec_cbs *cbs, void *data, uint32_t *ret_ch,
			    uint32_t *ret_pid, int timeout_ms, struct berth_error *err)
{
	int64_t deadline = now_ms() + timeout_ms;
	struct agent_buf p = {0};
	struct chan *ch;
	int r;

	if (!req->argv || !req->argv[0])
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST, "agent: no command");
	ch = chan_new(c, CHAN_EXEC, err);
	if (!ch)
		return -ENOMEM;
	ch->cbs = cbs;
	ch->data = data;
	agent_buf_u8(&p, req->interactive ? AGENT_EXEC_INTERACTIVE : 0);
	agent_buf_u32(&p, req->uid);
	agent_buf_u32(&p, req->gid);
	agent_buf_u16(&p, req->cols);
	agent_buf_u16(&p, req->rows);
	agent_buf_str(&p, req->cwd);
	put_strv(&p, req->argv);
	put_strv(&p, req->env);
	r = send_buf(c, AGENT_T_EXEC, ch->id, &p, deadline, err);
	while (r >= 0 && !ch->started && !ch->done)
		r = now_ms() > deadline ? -ETIMEDOUT : pump_one(c, deadline, err);
	if (r == -ETIMEDOUT)
		berth_error_set(err, r, BERTH_ERR_UNAVAILABLE,
				"agent: exec \"%s\": not started in time", req->argv[0]);
	else if (r >= 0 && ch->ret < 0)
		r = berth_error_set(err, ch->ret,
				    ch->ret == -ENOENT ? BERTH_ERR_NOT_FOUND
						       : BERTH_ERR_BAD_REQUEST,
				    "agent: %s", ch->msg ? ch->msg : "exec failed");
	if (r < 0) {
		chan_free(c, ch);
		return r;
	}
	if (ret_ch)
		*ret_ch = ch->id;
	if (ret_pid)
		*ret_pid = ch->pid;
	return 0;
}

static struct chan *exec_chan(struct agent_client *c, uint32_t id, struct berth_error *err)
{
	struct chan *ch = chan_find(c, id);

	if (!ch || ch->kind != CHAN_EXEC)
		berth_error_set(err, -ENOENT, BERTH_ERR_NOT_FOUND, "agent: no exec on channel %u",
				id);
	return ch && ch->kind == CHAN_EXEC ? ch : NULL;
}

int agent_client_exec_stdin(struct agent_client *c, uint32_t ch, const void *p, size_t len,
			    struct berth_error *err)
{
	struct chan *x = exec_chan(c, ch, err);
	const uint8_t *b = p;
	int r = 0;

	if (!x)
		return -ENOENT;
	if (x->ret < 0) /* the agent refused stdin of this running command (ENOBUFS) */
		return berth_error_set(err, x->ret,
				       x->ret == -ENOBUFS ? BERTH_ERR_TOO_LARGE
							  : BERTH_ERR_INTERNAL,
				       "agent: %s", x->msg ? x->msg : strerror(-x->ret));
	if (len == 0)
		return send_frame(c, AGENT_T_STDIN, ch, NULL, 0, now_ms() + SEND_TIMEOUT_MS, err);
	for (size_t off = 0; r >= 0 && off < len; off += AGENT_CHUNK) {
		size_t n = len - off < AGENT_CHUNK ? len - off : AGENT_CHUNK;

		r = send_frame(c, AGENT_T_STDIN, ch, b + off, n, now_ms() + SEND_TIMEOUT_MS, err);
	}
	return r;
}

int agent_client_exec_resize(struct agent_client *c, uint32_t ch, uint16_t cols, uint16_t rows,
			     struct berth_error *err)
{
	struct agent_buf p = {0};

	if (!exec_chan(c, ch, err))
		return -ENOENT;
	agent_buf_u16(&p, cols);
	agent_buf_u16(&p, rows);
	return send_buf(c, AGENT_T_RESIZE, ch, &p, now_ms() + SEND_TIMEOUT_MS, err);
}

int agent_client_exec_signal(struct agent_client *c, uint32_t ch, int sig, struct berth_error *err)
{
	struct agent_buf p = {0};

	if (!exec_chan(c, ch, err))
		return -ENOENT;
	agent_buf_u32(&p, (uint32_t)sig);
	return send_buf(c, AGENT_T_SIGNAL, ch, &p, now_ms() + SEND_TIMEOUT_MS, err);
}

int agent_client_exec_wait(struct agent_client *c, uint32_t id, int timeout_ms, int *ret_status,
			   struct berth_error *err)
{
	struct chan *ch = exec_chan(c, id, err);
	int r;

	if (!ch)
		return -ENOENT;
	r = wait_done(c, ch, now_ms() + timeout_ms, "exec", err);
	if (r == -ETIMEDOUT)
		return r;
	if (r >= 0 && ret_status)
		*ret_status = ch->status;
	chan_free(c, ch);
	return r;
}

void agent_client_exec_release(struct agent_client *c, uint32_t id)
{
	struct chan *ch = chan_find(c, id);

	if (ch)
		chan_free(c, ch);
}

/* ---- exec to the end, output gathered ---- */

struct run_output {
	struct agent_buf out, err;
};

static void run_output_cb(void *data, uint32_t ch, int stream, const void *p, size_t len)
{
	struct run_output *o = data;
	struct agent_buf *b = stream == 1 ? &o->out : &o->err;

	if (b->len + len > RUN_OUTPUT_MAX)
		b->failed = true;
	agent_buf_put(b, p, len);
}

static int run_take(struct agent_buf *b, char **ret)
{
	agent_buf_u8(b, 0);
	if (b->failed)
		return -ENOBUFS;
	if (ret)
		*ret = (char *)TAKE_PTR(b->data);
	return 0;
}

int agent_client_exec_run(struct agent_client *c, const struct agent_exec_req *req, const char *in,
			  char **ret_out, char **ret_err, int *ret_status, int timeout_ms,
			  struct berth_error *err)
{
	static const struct agent_exec_cbs cbs = {.output = run_output_cb};
	int64_t deadline = now_ms() + timeout_ms;
	struct run_output o = {0};
	uint32_t ch;
	int r, status = 0;

	r = agent_client_exec_start(c, req, &cbs, &o, &ch, NULL, timeout_ms, err);
	if (r < 0)
		return r;
	if (in && *in)
		r = agent_client_exec_stdin(c, ch, in, strlen(in), err);
	if (r >= 0 && !req->interactive)
		r = agent_client_exec_stdin(c, ch, NULL, 0, err);
	if (r >= 0)
		r = agent_client_exec_wait(c, ch, remaining(deadline), &status, err);
	if (r < 0)
		agent_client_exec_release(c, ch);
	if (r >= 0 && (run_take(&o.out, ret_out) < 0 || run_take(&o.err, ret_err) < 0))
		r = berth_error_set(err, -ENOBUFS, BERTH_ERR_TOO_LARGE,
				    "agent: output over %u bytes", RUN_OUTPUT_MAX);
	agent_buf_release(&o.out);
	agent_buf_release(&o.err);
	if (r >= 0 && ret_status)
		*ret_status = status;
	return r;
}

/* ---- files ---- */

void agent_file_info_release(struct agent_file_info *i)
{
	for (size_t k = 0; k < i->n_entries; k++)
		free(i->entries[k]);
	free(i->entries);
	free(i->target);
	*i = (struct agent_file_info){0};
}

/* Send a one-path request and wait for its end. */
static int request(struct agent_client *c, uint8_t type, struct agent_buf *p, struct chan *ch,
		   int timeout_ms, const char *what, struct berth_error *err)
{
	int64_t deadline = now_ms() + timeout_ms;
	int r;

	ch->deadline = deadline;
	r = send_buf(c, type, ch->id, p, deadline, err);
	if (r >= 0)
		r = wait_done(c, ch, deadline, what, err);
	if (r >= 0 && ch->out_ret == -E2BIG)
		r = berth_error_set(err, -E2BIG, BERTH_ERR_BAD_REQUEST,
				    "agent: %s: the listing is too large (over %u entries or "
				    "%u MiB of names)",
				    what, PULL_MAX_ENTRIES, PULL_MAX_NAMES >> 20);
	else if (r >= 0 && ch->out_ret < 0)
		r = berth_error_set(err, ch->out_ret, BERTH_ERR_INTERNAL, "agent: %s: %s", what,
				    strerror(-ch->out_ret));
	return r;
}

int agent_client_file_pull(struct agent_client *c, const char *path, int fd,
			   struct agent_file_info *ret, int timeout_ms, struct berth_error *err)
{
	struct agent_file_info info = {0};
	struct agent_buf p = {0};
	struct chan *ch = chan_new(c, CHAN_REQUEST, err);
	int r;

	if (!ch)
		return -ENOMEM;
	ch->info = &info;
	ch->out_fd = fd;
	agent_buf_str(&p, path);
	r = request(c, AGENT_T_FILE_GET, &p, ch, timeout_ms, "pulling a file", err);
	if (r == -ETIMEDOUT) /* the rest of it will be dropped */
		ch->info = NULL;
	chan_free(c, ch);
	if (r < 0) {
		agent_file_info_release(&info);
		return r;
	}
	if (!info.target) {
		agent_file_info_release(&info);
		return berth_error_set(err, -EBADMSG, BERTH_ERR_INTERNAL,
				       "agent: pulling a file: no FILE_INFO");
	}
	*ret = info;
	return 0;
}

int agent_client_file_push(struct agent_client *c, const char *path,
			   const struct agent_file_info *info, int fd, unsigned flags,
			   int timeout_ms, struct berth_error *err)
{
	int64_t deadline = now_ms() + timeout_ms;
	uint8_t buf[AGENT_CHUNK];
	struct agent_buf p = {0};
	struct chan *ch = chan_new(c, CHAN_REQUEST, err);
	int r;

	if (!ch)
		return -ENOMEM;
	agent_buf_u8(&p, (uint8_t)info->type);
	agent_buf_u8(&p, (uint8_t)flags);
	agent_buf_u32(&p, info->mode);
	agent_buf_u32(&p, info->uid);
	agent_buf_u32(&p, info->gid);
	agent_buf_str(&p, path);
	agent_buf_str(&p, info->target);
	r = send_buf(c, AGENT_T_FILE_PUT, ch->id, &p, deadline, err);
	while (r >= 0 && info->type == AGENT_FILE_REGULAR) {
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			r = berth_error_set(err, -errno, BERTH_ERR_INTERNAL,
					    "agent: pushing \"%s\": reading the content: %m", path);
		if (n <= 0)
			break;
		r = send_frame(c, AGENT_T_FILE_DATA, ch->id, buf, (size_t)n, deadline, err);
	}
	/* END even after a local read error: the agent then drops its temporary file */
	if (!c->broken) {
		int e = send_frame(c, AGENT_T_FILE_END, ch->id, NULL, 0, deadline,
				   r < 0 ? NULL : err);

		if (r >= 0)
			r = e;
	}
	if (r >= 0)
		r = wait_done(c, ch, deadline, "pushing a file", err);
	chan_free(c, ch);
	return r;
}

int agent_client_file_delete(struct agent_client *c, const char *path, int timeout_ms,
			     struct berth_error *err)
{
	struct agent_buf p = {0};
	struct chan *ch = chan_new(c, CHAN_REQUEST, err);
	int r;

	if (!ch)
		return -ENOMEM;
	agent_buf_str(&p, path);
	r = request(c, AGENT_T_FILE_DELETE, &p, ch, timeout_ms, "deleting a file", err);
	chan_free(c, ch);
	return r;
}

int agent_client_mkdir(struct agent_client *c, const char *path, uint32_t mode, uint32_t uid,
		       uint32_t gid, bool parents, int timeout_ms, struct berth_error *err)
{
	struct agent_buf p = {0};
	struct chan *ch = chan_new(c, CHAN_REQUEST, err);
	int r;

	if (!ch)
		return -ENOMEM;
	agent_buf_u8(&p, parents);
	agent_buf_u32(&p, mode);
	agent_buf_u32(&p, uid);
	agent_buf_u32(&p, gid);
	agent_buf_str(&p, path);
	r = request(c, AGENT_T_MKDIR, &p, ch, timeout_ms, "making a directory", err);
	chan_free(c, ch);
	return r;
}

/* ---- state ---- */

void agent_state_release(struct agent_state *s)
{
	for (size_t i = 0; i < s->n_ifaces; i++) {
		struct agent_iface *f = &s->ifaces[i];

		for (size_t k = 0; k < f->n_addrs; k++) {
			free(f->addrs[k].family);
			free(f->addrs[k].address);
			free(f->addrs[k].netmask);
			free(f->addrs[k].scope);
		}
		free(f->addrs);
		free(f->name);
		free(f->hwaddr);
		free(f->type);
		free(f->state);
	}
	free(s->ifaces);
	*s = (struct agent_state){0};
}

/* A str from the reader, copied; NULL (and the reader bad) on failure. */
static char *rd_strdup(struct agent_rd *rd)
{
	char *s = strdup(agent_rd_str(rd));

	if (!s)
		rd->bad = true;
	return s;
}

static void decode_iface(struct agent_rd *rd, struct agent_iface *f)
{
	uint64_t *counters[] = {&f->rx_bytes,  &f->tx_bytes,  &f->rx_packets, &f->tx_packets,
				&f->rx_errors, &f->tx_errors, &f->rx_dropped, &f->tx_dropped};
	uint32_t n;

	f->name = rd_strdup(rd);
	f->hwaddr = rd_strdup(rd);
	f->type = rd_strdup(rd);
	f->state = rd_strdup(rd);
	f->mtu = agent_rd_u32(rd);
	for (size_t i = 0; i < ARRAY_SIZE(counters); i++)
		*counters[i] = agent_rd_u64(rd);
	n = agent_rd_u32(rd);
	/* each address takes at least 4 * 5 bytes: a bad count cannot allocate much */
	if (rd->bad || n > (rd->len - rd->off) / 20) {
		rd->bad = true;
		return;
	}
	f->addrs = calloc(n ? n : 1, sizeof(*f->addrs));
	if (!f->addrs) {
		rd->bad = true;
		return;
	}
	for (; f->n_addrs < n && !rd->bad; f->n_addrs++) {
		struct agent_addr *a = &f->addrs[f->n_addrs];

		a->family = rd_strdup(rd);
		a->address = rd_strdup(rd);
		a->netmask = rd_strdup(rd);
		a->scope = rd_strdup(rd);
	}
}

int agent_state_decode(const void *p, size_t len, struct agent_state *ret)
{
	struct agent_state s = {0};
	struct agent_rd rd;
	uint32_t n;

	agent_rd_init(&rd, p, len);
	s.mem_usage = agent_rd_u64(&rd);
	s.mem_total = agent_rd_u64(&rd);
	s.swap_usage = agent_rd_u64(&rd);
	s.swap_total = agent_rd_u64(&rd);
	s.disk_usage = agent_rd_u64(&rd);
	s.disk_total = agent_rd_u64(&rd);
	s.processes = agent_rd_u32(&rd);
	s.cpu_ns = agent_rd_u64(&rd);
	n = agent_rd_u32(&rd);
	/* an interface takes at least 4 * 5 + 4 + 64 + 4 bytes */
	if (rd.bad || n > (rd.len - rd.off) / 92)
		return -EBADMSG;
	s.ifaces = calloc(n ? n : 1, sizeof(*s.ifaces));
	if (!s.ifaces)
		return -ENOMEM;
	for (; s.n_ifaces < n && !rd.bad; s.n_ifaces++)
		decode_iface(&rd, &s.ifaces[s.n_ifaces]);
	if (agent_rd_done(&rd) < 0) {
		agent_state_release(&s);
		return -EBADMSG;
	}
	*ret = s;
	return 0;
}

int agent_client_state(struct agent_client *c, struct agent_state *ret, int timeout_ms,
		       struct berth_error *err)
{
	struct agent_state s = {0};
	struct agent_buf p = {0};
	struct chan *ch = chan_new(c, CHAN_REQUEST, err);
	int r;

	if (!ch)
		return -ENOMEM;
	ch->state = &s;
	r = request(c, AGENT_T_STATE, &p, ch, timeout_ms, "reading the state", err);
	chan_free(c, ch);
	if (r < 0) {
		agent_state_release(&s);
		return r;
	}
	*ret = s;
	return 0;
}
