/* daemon/vm/vmmon_request.c: berth-vmmon's requests on RUNDIR/monitor.sock (doc/vm.md,
 * "berth-vmmon"): one line each, words %XX-escaped as a container monitor's `exec`
 * request (daemon/runtime/exec_words.h), with up to three fds by SCM_RIGHTS:
 *
 *   status                          -> ok agent-ready VERSION | ok agent-connecting
 *   exec WORD...  (3 fds)           -> as berth-monitor's (vmmon_exec.c)
 *   state                           -> ok JSON
 *   file-pull PATH  (1 fd)          -> ok TYPE MODE UID GID SIZE MTIME NSEC [TARGET],
 *                                      then a directory's entries, one a line; EOF ends
 *   file-push PATH TYPE MODE UID GID FLAGS [TARGET]  (1 fd for a file) -> ok
 *   file-delete PATH                -> ok
 *   mkdir PATH MODE UID GID PARENTS -> ok
 *
 * Numbers are decimal (4294967295: AGENT_ID_NONE), TYPE is file, directory or symlink.
 * Failures of the last five: `error CODE ERRNO MESSAGE` (an HTTP-shaped code, the errno,
 * the agent's message); before the agent is up, CODE 500, EAGAIN and LXD's message. */
#include "daemon/vm/vmmon_internal.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#include <jansson.h>

#include "daemon/runtime/exec_words.h"
#include "lib/util.h"

/* ---- clients ---- */

void vmmon_client_send(struct vmmon_client *c, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	if (send(c->fd, line, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
		/* the client went away; it is dropped on its next poll */
	}
}

/* A long reply (state, a listing): written whole, waiting up to 5 s at a time for a
 * client that reads slowly. */
static int send_all(struct vmmon_client *c, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		struct pollfd pfd = {.fd = c->fd, .events = POLLOUT};

		if (n > 0) {
			p += n;
			len -= (size_t)n;
		} else if (n < 0 && errno != EAGAIN && errno != EINTR) {
			return -errno;
		} else if (poll(&pfd, 1, 5000) == 0) {
			return -ETIMEDOUT;
		}
	}
	return 0;
}

void vmmon_client_drop(struct vmmon *m, struct vmmon_client *c)
{
	for (struct vmmon_client **p = &m->clients; *p; p = &(*p)->next)
		if (*p == c) {
			*p = c->next;
			break;
		}
	if (c->exec)
		c->exec->client = NULL; /* it runs on; nobody hears of its end */
	for (size_t i = 0; i < c->nfds; i++)
		close(c->fds[i]);
	close(c->fd);
	free(c->buf);
	free(c);
}

void vmmon_accept(struct vmmon *m)
{
	int fd = accept4(m->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	struct vmmon_client *c;

	struct ucred cred = {.uid = (uid_t)-1};
	socklen_t len = sizeof(cred);

	if (fd < 0)
		return;
	/* Only our own user (berthd's): the socket's mode says so too, this does not rely on it */
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || cred.uid != geteuid()) {
		vmmon_log("refused a client of uid %d", (int)cred.uid);
		close(fd);
		return;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		return;
	}
	c->fd = fd;
	c->fds[0] = c->fds[1] = c->fds[2] = -EBADF;
	/* at the tail: the loop polls the first VMMON_POLL_CLIENTS, oldest first, so that a
	 * flood of new connections cannot keep the older ones out of every poll */
	struct vmmon_client **tail = &m->clients;
	while (*tail)
		tail = &(*tail)->next;
	*tail = c;
}

/* ---- replies ---- */

static void send_error(struct vmmon_client *c, int code, int r, const char *msg)
{
	vmmon_client_send(c, "error %d %d %s", code, -r, msg);
}

static void send_berr(struct vmmon_client *c, const struct berth_error *err, int r)
{
	const char *msg = berth_error_msg(err, r);
	_cleanup_free_ char *flat = strdup(msg);

	for (char *q = flat; q && *q; q++)
		if (*q == '\n')
			*q = ' ';
	send_error(c, berth_error_code_for(err, r), r, flat ? flat : msg);
}

/* The agent is up, else the client is told (LXD's message) and false returned. */
static bool need_agent(struct vmmon *m, struct vmmon_client *c)
{
	if (m->agent)
		return true;
	send_error(c, 500, -EAGAIN, VMMON_AGENT_OFFLINE);
	return false;
}

/* An agent call failed: a call that got no answer means the agent is gone (restarted in
 * the guest, the port silent): the session is dropped and re-made. */
static void call_failed(struct vmmon *m, struct vmmon_client *c, struct berth_error *err, int r)
{
	send_berr(c, err, r);
	if (m->agent && (r == -ETIMEDOUT || agent_client_broken(m->agent)))
		vmmon_session_lost(m, berth_error_msg(err, r));
	berth_error_release(err);
}

static const char *type_word(enum agent_file_type t)
{
	return t == AGENT_FILE_DIRECTORY ? "directory"
	       : t == AGENT_FILE_SYMLINK ? "symlink"
					 : "file";
}

static int parse_u32(const char *s, uint32_t *ret)
{
	char *end = NULL;
	unsigned long long v;

	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v > UINT32_MAX)
		return -EINVAL;
	*ret = (uint32_t)v;
	return 0;
}

/* ---- state ---- */

static json_t *iface_json(const struct agent_iface *f)
{
	json_t *addrs = json_array();

	for (size_t i = 0; addrs && i < f->n_addrs; i++)
		json_array_append_new(addrs,
				      json_pack("{s:s, s:s, s:s, s:s}", "family",
						f->addrs[i].family, "address", f->addrs[i].address,
						"netmask", f->addrs[i].netmask, "scope",
						f->addrs[i].scope));
	return json_pack("{s:o*, s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}, s:s, s:s, s:i, s:s, "
			 "s:s}",
			 "addresses", addrs, "counters", "bytes_received", (json_int_t)f->rx_bytes,
			 "bytes_sent", (json_int_t)f->tx_bytes, "packets_received",
			 (json_int_t)f->rx_packets, "packets_sent", (json_int_t)f->tx_packets,
			 "errors_received", (json_int_t)f->rx_errors, "errors_sent",
			 (json_int_t)f->tx_errors, "packets_dropped_outbound",
			 (json_int_t)f->tx_dropped, "packets_dropped_inbound",
			 (json_int_t)f->rx_dropped, "hwaddr", f->hwaddr, "host_name", "", "mtu",
			 (int)f->mtu, "state", f->state, "type", f->type);
}

/* LXD's InstanceState for what the agent knows (lxd/instance/drivers/driver_qemu.go's
 * agent state: memory, disk.root, network, processes, cpu). */
static json_t *state_json(const struct agent_state *s)
{
	json_t *net = json_object();

	for (size_t i = 0; net && i < s->n_ifaces; i++) {
		json_t *f = iface_json(&s->ifaces[i]);
		if (!f || json_object_set_new(net, s->ifaces[i].name, f) < 0) {
			json_decref(net);
			return NULL;
		}
	}
	return json_pack("{s:{s:I, s:I, s:I, s:I, s:I}, s:{s:{s:I}}, s:o*, s:I, s:{s:I}}", "memory",
			 "usage", (json_int_t)s->mem_usage, "usage_peak", (json_int_t)0, "total",
			 (json_int_t)s->mem_total, "swap_usage", (json_int_t)s->swap_usage,
			 "swap_usage_peak", (json_int_t)0, "disk", "root", "usage",
			 (json_int_t)s->disk_usage, "network", net, "processes",
			 (json_int_t)s->processes, "cpu", "usage", (json_int_t)s->cpu_ns);
}

static void req_state(struct vmmon *m, struct vmmon_client *c)
{
	struct berth_error err = {0};
	struct agent_state st = {0};
	_cleanup_free_ char *text = NULL, *line = NULL;
	json_t *j;
	int r;

	if (!need_agent(m, c))
		return;
	r = agent_client_state(m->agent, &st, VMMON_CALL_MS, &err);
	if (r < 0) {
		call_failed(m, c, &err, r);
		return;
	}
	j = state_json(&st);
	agent_state_release(&st);
	text = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	line = text ? berth_strdup_printf("ok %s\n", text) : NULL;
	if (!line)
		send_error(c, 500, -ENOMEM, "out of memory");
	else
		send_all(c, line, strlen(line));
}

/* ---- files ---- */

/* A reply line of escaped words: "ok" and `n` of them. */
static void send_words(struct vmmon_client *c, const char *const *w, size_t n)
{
	size_t size = 4;
	_cleanup_free_ char *line = NULL;
	char *p;

	for (size_t i = 0; i < n; i++)
		size += runtime_word_room(w[i]) + 1;
	p = line = malloc(size);
	if (!line) {
		send_error(c, 500, -ENOMEM, "out of memory");
		return;
	}
	p = stpcpy(p, "ok");
	for (size_t i = 0; i < n; i++) {
		*p++ = ' ';
		p = runtime_word_escape(p, w[i]);
	}
	*p++ = '\n';
	send_all(c, line, (size_t)(p - line));
}

static void req_file_pull(struct vmmon *m, struct vmmon_client *c, char **w, size_t n)
{
	struct berth_error err = {0};
	struct agent_file_info info = {0};
	char mode[16], uid[16], gid[16], size[24], mt[24], ns[16];
	const char *words[8] = {NULL, mode, uid, gid, size, mt, ns, NULL};
	int r;

	if (n != 2 || c->nfds > 1 || w[1][0] != '/') {
		send_error(c, 400, -EINVAL, "bad request");
		return;
	}
	if (!need_agent(m, c))
		return;
	r = agent_client_file_pull(m->agent, w[1], c->nfds ? c->fds[0] : -1, &info, VMMON_FILE_MS,
				   &err);
	if (r < 0) {
		call_failed(m, c, &err, r);
		return;
	}
	words[0] = type_word(info.type);
	snprintf(mode, sizeof(mode), "%u", info.mode);
	snprintf(uid, sizeof(uid), "%u", info.uid);
	snprintf(gid, sizeof(gid), "%u", info.gid);
	snprintf(size, sizeof(size), "%llu", (unsigned long long)info.size);
	snprintf(mt, sizeof(mt), "%lld", (long long)info.mtime_s);
	snprintf(ns, sizeof(ns), "%u", info.mtime_ns);
	words[7] = info.type == AGENT_FILE_SYMLINK ? info.target : NULL;
	send_words(c, words, words[7] ? 8 : 7);
	for (size_t i = 0; i < info.n_entries; i++) {
		_cleanup_free_ char *e = malloc(runtime_word_room(info.entries[i]) + 2);
		char *p = e ? runtime_word_escape(e, info.entries[i]) : NULL;

		if (!p || (*p++ = '\n', send_all(c, e, (size_t)(p - e)) < 0))
			break;
	}
	agent_file_info_release(&info);
}

static int parse_type(const char *s, enum agent_file_type *ret)
{
	*ret = streq(s, "file")	       ? AGENT_FILE_REGULAR
	       : streq(s, "directory") ? AGENT_FILE_DIRECTORY
	       : streq(s, "symlink")   ? AGENT_FILE_SYMLINK
				       : AGENT_FILE_TYPE_MAX;
	return *ret == AGENT_FILE_TYPE_MAX ? -EINVAL : 0;
}

static void req_file_push(struct vmmon *m, struct vmmon_client *c, char **w, size_t n)
{
	struct berth_error err = {0};
	struct agent_file_info info = {0};
	uint32_t flags = 0;
	int r;

	if ((n != 7 && n != 8) || w[1][0] != '/' || parse_type(w[2], &info.type) < 0 ||
	    parse_u32(w[3], &info.mode) < 0 || parse_u32(w[4], &info.uid) < 0 ||
	    parse_u32(w[5], &info.gid) < 0 || parse_u32(w[6], &flags) < 0 ||
	    (info.type == AGENT_FILE_SYMLINK) != (n == 8) ||
	    (info.type == AGENT_FILE_REGULAR) != (c->nfds == 1) || c->nfds > 1) {
		send_error(c, 400, -EINVAL, "bad request");
		return;
	}
	if (!need_agent(m, c))
		return;
	info.target = n == 8 ? w[7] : NULL;
	r = agent_client_file_push(m->agent, w[1], &info, c->nfds ? c->fds[0] : -1, flags,
				   VMMON_FILE_MS, &err);
	if (r < 0)
		call_failed(m, c, &err, r);
	else
		vmmon_client_send(c, "ok");
}

static void req_file_delete(struct vmmon *m, struct vmmon_client *c, char **w, size_t n)
{
	struct berth_error err = {0};
	int r;

	if (n != 2 || w[1][0] != '/') {
		send_error(c, 400, -EINVAL, "bad request");
		return;
	}
	if (!need_agent(m, c))
		return;
	r = agent_client_file_delete(m->agent, w[1], VMMON_CALL_MS, &err);
	if (r < 0)
		call_failed(m, c, &err, r);
	else
		vmmon_client_send(c, "ok");
}

static void req_mkdir(struct vmmon *m, struct vmmon_client *c, char **w, size_t n)
{
	struct berth_error err = {0};
	uint32_t mode, uid, gid, parents;
	int r;

	if (n != 6 || w[1][0] != '/' || parse_u32(w[2], &mode) < 0 || parse_u32(w[3], &uid) < 0 ||
	    parse_u32(w[4], &gid) < 0 || parse_u32(w[5], &parents) < 0 || parents > 1) {
		send_error(c, 400, -EINVAL, "bad request");
		return;
	}
	if (!need_agent(m, c))
		return;
	r = agent_client_mkdir(m->agent, w[1], mode, uid, gid, parents, VMMON_CALL_MS, &err);
	if (r < 0)
		call_failed(m, c, &err, r);
	else
		vmmon_client_send(c, "ok");
}

/* ---- requests ---- */

static void req_status(struct vmmon *m, struct vmmon_client *c)
{
	const char *v = m->agent ? agent_client_agent_version(m->agent) : NULL;
	_cleanup_free_ char *esc = v ? malloc(runtime_word_room(v) + 1) : NULL;

	if (!m->agent) {
		vmmon_client_send(c, "ok agent-connecting");
		return;
	}
	if (!esc) {
		send_error(c, 500, -ENOMEM, "out of memory");
		return;
	}
	*runtime_word_escape(esc, v) = '\0';
	vmmon_client_send(c, "ok agent-ready %s", *esc ? esc : "-");
}

static void handle_request(struct vmmon *m, struct vmmon_client *c, char *line)
{
	_cleanup_free_ char **w = NULL;
	size_t n = 0;

	if (berth_startswith(line, "exec ")) {
		vmmon_exec_request(m, c, line + 5);
		return; /* it keeps or drops `c` */
	}
	if (runtime_words_split(line, &w, &n) < 0 || n == 0)
		vmmon_client_send(c, "error unknown request");
	else if (streq(w[0], "status") && n == 1)
		req_status(m, c);
	else if (streq(w[0], "state") && n == 1)
		req_state(m, c);
	else if (streq(w[0], "file-pull"))
		req_file_pull(m, c, w, n);
	else if (streq(w[0], "file-push"))
		req_file_push(m, c, w, n);
	else if (streq(w[0], "file-delete"))
		req_file_delete(m, c, w, n);
	else if (streq(w[0], "mkdir"))
		req_mkdir(m, c, w, n);
	else
		vmmon_client_send(c, "error unknown request");
	vmmon_client_drop(m, c);
}

/* recvmsg() into the request buffer, fds into c->fds (extras closed). */
static int recv_part(struct vmmon_client *c)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * 8)];
	} u;
	struct iovec iov = {.iov_base = c->buf + c->len, .iov_len = c->cap - c->len - 1};
	struct msghdr mh = {.msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = u.buf,
			    .msg_controllen = sizeof(u.buf)};
	ssize_t n;

	do
		n = recvmsg(c->fd, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n <= 0)
		return n == 0 ? -ECONNRESET : -errno;
	for (struct cmsghdr *h = CMSG_FIRSTHDR(&mh); h; h = CMSG_NXTHDR(&mh, h)) {
		size_t cnt = (h->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		int fds[8];

		if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS)
			continue;
		memcpy(fds, CMSG_DATA(h), cnt * sizeof(int));
		for (size_t i = 0; i < cnt; i++) {
			if (c->nfds < ARRAY_SIZE(c->fds))
				c->fds[c->nfds++] = fds[i];
			else
				close(fds[i]);
		}
	}
	c->len += (size_t)n;
	c->buf[c->len] = '\0';
	return 0;
}

/* The control lines of an exec's client; EOF: the client left, the command runs on. */
static void exec_client_readable(struct vmmon *m, struct vmmon_client *c)
{
	char buf[512];
	ssize_t n = read(c->fd, buf, sizeof(buf) - 1);
	char *nl;

	if (n <= 0) {
		if (n == 0 || errno != EAGAIN)
			vmmon_client_drop(m, c);
		return;
	}
	if (c->len + (size_t)n >= c->cap) { /* lines are short: a client that floods is gone */
		vmmon_client_drop(m, c);
		return;
	}
	memcpy(c->buf + c->len, buf, (size_t)n);
	c->len += (size_t)n;
	c->buf[c->len] = '\0';
	while ((nl = strchr(c->buf, '\n'))) {
		*nl = '\0';
		if (c->exec)
			vmmon_exec_control(m, c->exec, c->buf);
		c->len -= (size_t)(nl + 1 - c->buf);
		memmove(c->buf, nl + 1, c->len + 1);
	}
}

void vmmon_client_readable(struct vmmon *m, struct vmmon_client *c)
{
	char *nl;
	int r;

	if (c->kind == VC_EXEC) {
		exec_client_readable(m, c);
		return;
	}
	if (c->cap - c->len < 128 && c->cap < VMMON_REQUEST_MAX) {
		size_t cap = c->cap ? c->cap * 4 : 256;
		char *nb = realloc(c->buf, cap);
		if (!nb) {
			vmmon_client_drop(m, c);
			return;
		}
		c->buf = nb;
		c->cap = cap;
	}
	if (c->cap - c->len < 2) {
		vmmon_client_send(c, "error request too long");
		vmmon_client_drop(m, c);
		return;
	}
	r = recv_part(c);
	if (r == -EAGAIN)
		return;
	if (r < 0) {
		vmmon_client_drop(m, c);
		return;
	}
	nl = memchr(c->buf, '\n', c->len);
	if (!nl)
		return;
	*nl = '\0';
	handle_request(m, c, c->buf);
}
