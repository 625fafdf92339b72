/* lib/qmp.c: the QMP client (see qmp.h): framing of QEMU's newline-separated JSON,
 * command ids, the event queue and deadlines. */
#include "lib/qmp.h"

#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

#include "lib/json.h"
#include "lib/util.h"

#define QMP_READ_CHUNK 4096
#define QMP_RETRY_NS (10 * 1000000ull)

struct qmp_event_node {
	struct qmp_event_node *next;
	struct berth_qmp_event *ev; /* owned */
};

struct berth_qmp {
	int fd;			     /* owned, non-blocking */
	bool dead;		     /* QEMU closed the socket or it failed */
	char *buf;		     /* owned: bytes read and not yet framed */
	size_t len, cap;	     /* bytes in `buf`, its size */
	struct qmp_event_node *head; /* owned queue, oldest first */
	struct qmp_event_node *tail; /* borrowed: last node of the queue */
	size_t n_events;
	uint64_t next_id;      /* id of the next command sent */
	char error_class[64];  /* class of the last command's error reply, "" when none */
	uint32_t qemu_version; /* from the greeting */
};

static uint64_t deadline_after(int timeout_ms)
{
	return berth_monotonic_ns() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0) * 1000000ull;
}

/* Milliseconds left until `deadline`, rounded up, 0 when passed. */
static int ms_left(uint64_t deadline)
{
	uint64_t now = berth_monotonic_ns();

	if (now >= deadline)
		return 0;
	return (int)((deadline - now + 999999ull) / 1000000ull);
}

void berth_qmp_event_free(struct berth_qmp_event *ev)
{
	if (!ev)
		return;
	free(ev->name);
	json_decref(ev->data);
	free(ev);
}

void berth_qmp_free(struct berth_qmp *q)
{
	if (!q)
		return;
	while (q->head) {
		struct qmp_event_node *n = q->head;

		q->head = n->next;
		berth_qmp_event_free(n->ev);
		free(n);
	}
	if (q->fd >= 0)
		close(q->fd);
	free(q->buf);
	free(q);
}

/* Queue the event `msg` (borrowed). */
static int queue_event(struct berth_qmp *q, const json_t *msg)
{
	_cleanup_(berth_qmp_event_freep) struct berth_qmp_event *ev = calloc(1, sizeof(*ev));
	json_t *data = json_object_get(msg, "data");
	json_t *stamp = json_object_get(msg, "timestamp");
	struct qmp_event_node *n;

	if (!ev)
		return -ENOMEM;
	ev->name = strdup(json_string_value(json_object_get(msg, "event")));
	ev->data = json_is_object(data) ? json_incref(data) : json_object();
	if (!ev->name || !ev->data)
		return -ENOMEM;
	ev->seconds = json_integer_value(json_object_get(stamp, "seconds"));
	ev->useconds = json_integer_value(json_object_get(stamp, "microseconds"));
	n = calloc(1, sizeof(*n));
	if (!n)
		return -ENOMEM;
	n->ev = TAKE_PTR(ev);
	if (q->tail)
		q->tail->next = n;
	else
		q->head = n;
	q->tail = n;
	q->n_events++;
	return 0;
}

/* Take one complete line out of `buf` and parse it; 0 and *ret = NULL when no complete
 * line is buffered yet. Blank lines are skipped. */
static int frame_message(struct berth_qmp *q, json_t **ret)
{
	char *nl;

	*ret = NULL;
	while ((nl = memchr(q->buf, '\n', q->len))) {
		size_t n = (size_t)(nl - q->buf) + 1;
		json_error_t jerr;
		json_t *msg = NULL;
		bool blank = strspn(q->buf, " \t\r\n") >= n - 1;

		if (!blank)
			msg = json_loadb(q->buf, n, 0, &jerr);
		/* with the terminator that fill() and read_message() keep after the data */
		memmove(q->buf, q->buf + n, q->len - n + 1);
		q->len -= n;
		if (blank)
			continue;
		if (!msg || !json_is_object(msg)) {
			json_decref(msg);
			return -EPROTO;
		}
		*ret = msg;
		return 0;
	}
	return q->len >= BERTH_QMP_MESSAGE_MAX ? -EPROTO : 0;
}

/* Read what the socket has into `buf`. -EAGAIN when nothing, -ECONNRESET on EOF. */
static int fill(struct berth_qmp *q)
{
	ssize_t n;

	if (q->cap - q->len < QMP_READ_CHUNK) {
		size_t cap = q->cap ? q->cap * 2 : 2 * QMP_READ_CHUNK;
		char *b = realloc(q->buf, cap);

		if (!b)
			return -ENOMEM;
		q->buf = b;
		q->cap = cap;
	}
	/* one byte kept for strspn's terminator in frame_message */
	n = read(q->fd, q->buf + q->len, q->cap - q->len - 1);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return -EAGAIN;
	if (n <= 0) {
		q->dead = true;
		return n == 0 || errno == ECONNRESET ? -ECONNRESET : -errno;
	}
	q->len += (size_t)n;
	q->buf[q->len] = '\0';
	return 0;
}

/* The next message, waiting until `deadline`: -ETIMEDOUT when none came. */
static int read_message(struct berth_qmp *q, uint64_t deadline, json_t **ret)
{
	for (;;) {
		struct pollfd p = {.fd = q->fd, .events = POLLIN};
		int r;

		if (q->buf) {
			q->buf[q->len] = '\0';
			r = frame_message(q, ret);
			if (r < 0)
				/* nothing after it can be trusted to be framed right */
				q->dead = true;
			if (r < 0 || *ret)
				return r;
		}
		if (q->dead)
			return -ENOTCONN;
		r = poll(&p, 1, ms_left(deadline));
		if (r < 0 && errno != EINTR)
			return -errno;
		if (r == 0)
			return -ETIMEDOUT;
		r = fill(q);
		if (r < 0 && r != -EAGAIN)
			return r;
	}
}

static int write_all(struct berth_qmp *q, const char *s, size_t len, uint64_t deadline)
{
	while (len > 0) {
		struct pollfd p = {.fd = q->fd, .events = POLLOUT};
		ssize_t n = send(q->fd, s, len, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n >= 0) {
			s += n;
			len -= (size_t)n;
			continue;
		}
		if (errno == EPIPE || errno == ECONNRESET) {
			q->dead = true;
			return -ECONNRESET;
		}
		if (errno != EAGAIN && errno != EINTR)
			return -errno;
		if (poll(&p, 1, ms_left(deadline)) == 0)
			return -ETIMEDOUT;
	}
	return 0;
}

/* Read until the reply carrying `id` comes; events are queued, other replies (late ones
 * to commands that timed out) dropped. */
static int wait_reply(struct berth_qmp *q, const char *id, uint64_t deadline, json_t **ret)
{
	for (;;) {
		json_t *msg = NULL;
		int r = read_message(q, deadline, &msg);

		if (r < 0)
			return r;
		if (json_is_string(json_object_get(msg, "event"))) {
			r = queue_event(q, msg);
			json_decref(msg);
			if (r < 0)
				return r;
			continue;
		}
		if (streq(berth_json_string(msg, "id") ?: "", id)) {
			*ret = msg;
			return 0;
		}
		json_decref(msg);
	}
}

static int command_failed(const char *command, int r, int timeout_ms, struct berth_error *err)
{
	switch (r) {
	case -ETIMEDOUT:
		return berth_error_set(err, r, BERTH_ERR_INTERNAL,
				       "QMP command \"%s\": no reply from QEMU within %d ms",
				       command, timeout_ms);
	case -ECONNRESET:
		return berth_error_set(err, r, BERTH_ERR_INTERNAL,
				       "QMP command \"%s\": QEMU closed the connection", command);
	case -ENOTCONN:
		return berth_error_set(err, r, BERTH_ERR_INTERNAL,
				       "QMP command \"%s\": no connection to QEMU any more",
				       command);
	case -EPROTO:
		return berth_error_set(err, r, BERTH_ERR_INTERNAL,
				       "QMP command \"%s\": QEMU sent a message that is not QMP",
				       command);
	default:
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "QMP command \"%s\": %s",
				       command, strerror(-r));
	}
}

/* The "return" of `reply` in *ret (new reference), or its error. */
static int take_return(struct berth_qmp *q, const char *command, json_t *reply, json_t **ret,
		       struct berth_error *err)
{
	json_t *error = json_object_get(reply, "error");
	json_t *value = json_object_get(reply, "return");

	if (json_is_object(error)) {
		const char *class = berth_json_string(error, "class") ?: "GenericError";

		snprintf(q->error_class, sizeof(q->error_class), "%s", class);
		return berth_error_set(err, -EREMOTEIO, BERTH_ERR_INTERNAL,
				       "QMP command \"%s\" failed: %s (%s)", command,
				       berth_json_string(error, "desc") ?: "no description",
				       q->error_class);
	}
	if (!value)
		return command_failed(command, -EPROTO, 0, err);
	if (ret)
		*ret = json_incref(value);
	return 0;
}

int berth_qmp_execute(struct berth_qmp *q, const char *command, const json_t *arguments,
		      int timeout_ms, json_t **ret_return, struct berth_error *err)
{
	uint64_t deadline = deadline_after(timeout_ms);
	json_auto_t *msg = NULL;
	json_auto_t *reply = NULL;
	_cleanup_free_ char *text = NULL;
	char id[32];
	int r;

	q->error_class[0] = '\0';
	if (q->dead)
		return command_failed(command, -ENOTCONN, timeout_ms, err);
	snprintf(id, sizeof(id), "berth-%" PRIu64, q->next_id++);
	msg = json_pack("{s:s, s:s}", "execute", command, "id", id);
	if (!msg || (arguments && json_object_set(msg, "arguments", (json_t *)arguments) < 0))
		return -ENOMEM;
	text = berth_json_dumps(msg);
	if (!text)
		return -ENOMEM;
	r = write_all(q, text, strlen(text), deadline);
	if (r == 0)
		r = write_all(q, "\n", 1, deadline);
	if (r == 0)
		r = wait_reply(q, id, deadline, &reply);
	if (r < 0)
		return command_failed(command, r, timeout_ms, err);
	return take_return(q, command, reply, ret_return, err);
}

/* Read the greeting and leave capabilities negotiation: QEMU accepts no other command
 * before it. */
static int handshake(struct berth_qmp *q, uint64_t deadline, struct berth_error *err)
{
	json_auto_t *greeting = NULL;
	json_t *v;
	int r = read_message(q, deadline, &greeting);

	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "No QMP greeting from QEMU: %s",
				       r == -ETIMEDOUT ? "timed out"
				       : r == -EPROTO  ? "not QMP"
						       : "connection closed");
	v = json_object_get(greeting, "QMP");
	if (!json_is_object(v))
		return berth_error_set(err, -EPROTO, BERTH_ERR_INTERNAL,
				       "QEMU's first message is not a QMP greeting");
	v = json_object_get(json_object_get(v, "version"), "qemu");
	q->qemu_version = (uint32_t)(json_integer_value(json_object_get(v, "major")) * 1000000 +
				     json_integer_value(json_object_get(v, "minor")) * 1000 +
				     json_integer_value(json_object_get(v, "micro")));
	return berth_qmp_execute(q, "qmp_capabilities", NULL, ms_left(deadline), NULL, err);
}

int berth_qmp_open_fd(int fd, int timeout_ms, struct berth_qmp **ret, struct berth_error *err)
{
	_cleanup_(berth_qmp_freep) struct berth_qmp *q = calloc(1, sizeof(*q));
	int flags, r;

	if (!q) {
		close(fd);
		return -ENOMEM;
	}
	q->fd = fd;
	flags = fcntl(fd, F_GETFL);
	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
		return -errno;
	r = handshake(q, deadline_after(timeout_ms), err);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(q);
	return 0;
}

/* One connection attempt: the fd, or -errno (-ENOENT, -ECONNREFUSED: not there yet). */
static int try_connect(const struct sockaddr_un *sa)
{
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) < 0)
		return -errno;
	return TAKE_FD(fd);
}

int berth_qmp_connect(const char *path, int timeout_ms, struct berth_qmp **ret,
		      struct berth_error *err)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	uint64_t deadline = deadline_after(timeout_ms);
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path))
		return berth_error_set(err, -ENAMETOOLONG, BERTH_ERR_INTERNAL,
				       "QMP socket path \"%s\" is too long", path);
	memcpy(sa.sun_path, path, strlen(path));
	for (;;) {
		struct timespec pause = {.tv_nsec = QMP_RETRY_NS};

		fd = try_connect(&sa);
		if (fd >= 0)
			break;
		if ((fd != -ENOENT && fd != -ECONNREFUSED && fd != -EAGAIN) ||
		    berth_monotonic_ns() + QMP_RETRY_NS > deadline)
			return berth_error_set(err, fd, BERTH_ERR_INTERNAL,
					       "Cannot connect to QMP socket \"%s\": %s", path,
					       strerror(-fd));
		nanosleep(&pause, NULL);
	}
	return berth_qmp_open_fd(fd, ms_left(deadline), ret, err);
}

const char *berth_qmp_error_class(const struct berth_qmp *q)
{
	return q->error_class[0] ? q->error_class : NULL;
}

int berth_qmp_event_next(struct berth_qmp *q, int timeout_ms, struct berth_qmp_event **ret)
{
	uint64_t deadline = deadline_after(timeout_ms);
	struct qmp_event_node *n;

	while (!q->head) {
		json_t *msg = NULL;
		int r = read_message(q, deadline, &msg);

		if (r == -ETIMEDOUT)
			return -EAGAIN;
		if (r < 0)
			return r;
		if (json_is_string(json_object_get(msg, "event")))
			r = queue_event(q, msg);
		json_decref(msg);
		if (r < 0)
			return r;
	}
	n = q->head;
	q->head = n->next;
	if (!q->head)
		q->tail = NULL;
	q->n_events--;
	*ret = n->ev;
	free(n);
	return 0;
}

size_t berth_qmp_events_pending(const struct berth_qmp *q)
{
	return q->n_events;
}

uint32_t berth_qmp_qemu_version(const struct berth_qmp *q)
{
	return q->qemu_version;
}

bool berth_qmp_connected(const struct berth_qmp *q)
{
	return !q->dead;
}

int berth_qmp_fd(const struct berth_qmp *q)
{
	return q->fd;
}
