/* daemon/vm/vmmon_client.c: berthd's end of berth-vmmon's requests (vmmon_client.h; the
 * words are in vmmon_request.c's top comment). One connection per call: vmmon answers
 * and closes it, so a reply is everything read until EOF. */
#include "daemon/vm/vmmon_client.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>

#include "daemon/runtime/exec_words.h"
#include "daemon/runtime/launch.h"
#include "daemon/vm/vmmon_internal.h"
#include "lib/util.h"

const char vmmon_agent_not_running_msg[] = VMMON_AGENT_OFFLINE;

#define STATUS_TIMEOUT_MS 10000
/* a reply: a state, or a directory's listing (the agent client's bound, escaped) */
#define REPLY_MAX (64u << 20)

static int64_t deadline_after(int timeout_ms)
{
	return (int64_t)(berth_monotonic_ns() / 1000000) + (timeout_ms > 0 ? timeout_ms : 0);
}

static int left_ms(int64_t deadline)
{
	int64_t left = deadline - (int64_t)(berth_monotonic_ns() / 1000000);

	return left < 0 ? 0 : left > INT32_MAX ? INT32_MAX : (int)left;
}

/* Connect to RUNDIR/monitor.sock and send `line` with `fd` (when >= 0). */
static int send_request(const char *rundir, const char *line, int fd, int timeout_ms, int *ret,
			struct berth_error *err)
{
	struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int))];
	} u = {0};
	struct iovec iov = {.iov_base = (void *)line, .iov_len = strlen(line)};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	_cleanup_close_ int s = -EBADF;

	if ((size_t)snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/monitor.sock", rundir) >=
	    sizeof(sa.sun_path))
		return berth_error_set(err, -ENAMETOOLONG, BERTH_ERR_INTERNAL,
				       "The run directory's path is too long");
	s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	/* a vmmon busy with a long call lets connections queue: the wait is bounded too */
	if (s < 0 || setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "socket: %m");
	if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return errno == EAGAIN || errno == EINPROGRESS
			       ? berth_error_set(err, -ETIMEDOUT, BERTH_ERR_UNAVAILABLE,
						 "berth-vmmon did not answer in time")
			       : berth_error_set(err, -errno, BERTH_ERR_BAD_REQUEST,
						 "The instance isn't running (no berth-vmmon: %m)");
	if (fd >= 0) {
		struct cmsghdr *c;

		mh.msg_control = u.buf;
		mh.msg_controllen = sizeof(u.buf);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	/* a request line is short: the socket's buffer takes it whole */
	if (sendmsg(s, &mh, MSG_NOSIGNAL) != (ssize_t)iov.iov_len)
		return berth_error_set(err, -EIO, BERTH_ERR_INTERNAL,
				       "Cannot talk to berth-vmmon: %m");
	*ret = TAKE_FD(s);
	return 0;
}

/* Everything vmmon answers, until it closes (NUL-terminated, owned). */
static int read_reply(int s, int timeout_ms, char **ret, size_t *ret_len, struct berth_error *err)
{
	int64_t deadline = deadline_after(timeout_ms);
	_cleanup_free_ char *buf = NULL;
	size_t len = 0, cap = 0;

	for (;;) {
		struct pollfd pfd = {.fd = s, .events = POLLIN};
		ssize_t n;

		if (cap - len < 4096) {
			char *nb = cap >= REPLY_MAX ? NULL : realloc(buf, cap ? cap * 2 : 8192);
			if (!nb)
				return berth_error_set(err, -E2BIG, BERTH_ERR_INTERNAL,
						       "berth-vmmon's answer is too large");
			buf = nb;
			cap = cap ? cap * 2 : 8192;
		}
		if (poll(&pfd, 1, left_ms(deadline)) == 0)
			return berth_error_set(err, -ETIMEDOUT, BERTH_ERR_UNAVAILABLE,
					       "berth-vmmon did not answer in time");
		n = read(s, buf + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return berth_error_set(err, -errno, BERTH_ERR_INTERNAL,
					       "No answer from berth-vmmon: %m");
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	*ret = TAKE_PTR(buf);
	*ret_len = len;
	return 0;
}

/* "error CODE ERRNO MESSAGE" as the error it was (-EAGAIN: LXD's agent-offline). */
static int reply_error(const char *line, struct berth_error *err)
{
	int code = 0, e = 0, n = 0;

	if (!berth_startswith(line, "error "))
		return berth_error_set(err, -EIO, BERTH_ERR_INTERNAL,
				       "berth-vmmon closed the connection without an answer");
	if (sscanf(line + 6, "%d %d %n", &code, &e, &n) < 2 || !n || e <= 0 || code < 400 ||
	    code > 599)
		return berth_error_set(err, -EIO, BERTH_ERR_INTERNAL, "%s", line + 6);
	if (streq(line + 6 + n, vmmon_agent_not_running_msg))
		e = EAGAIN;
	return berth_error_set(err, -e, code, "%s", line + 6 + n);
}

/* One request: its reply's first line (after "ok", maybe "") in *ret_line and what
 * follows in *ret_rest, both pointing into *ret_buf. */
static int call(const char *rundir, const char *line, int fd, int timeout_ms, char **ret_buf,
		char **ret_line, char **ret_rest, struct berth_error *err)
{
	_cleanup_close_ int s = -EBADF;
	_cleanup_free_ char *buf = NULL;
	size_t len = 0;
	char *nl;
	int r = send_request(rundir, line, fd, timeout_ms > 0 ? timeout_ms : 1, &s, err);

	if (r >= 0)
		r = read_reply(s, timeout_ms, &buf, &len, err);
	if (r < 0)
		return r;
	nl = strchr(buf, '\n');
	if (!nl)
		return reply_error(buf, err);
	*nl = '\0';
	if (!streq(buf, "ok") && !berth_startswith(buf, "ok "))
		return reply_error(buf, err);
	*ret_line = buf[2] ? buf + 3 : buf + 2;
	*ret_rest = nl + 1;
	*ret_buf = TAKE_PTR(buf);
	return 0;
}

/* A request line from escaped words (NULL-terminated list), "\n" ended. */
static char *request_line(const char *const *w)
{
	size_t size = 2;
	char *line, *p;

	for (size_t i = 0; w[i]; i++)
		size += runtime_word_room(w[i]) + 1;
	p = line = malloc(size);
	if (!line)
		return NULL;
	for (size_t i = 0; w[i]; i++) {
		if (i)
			*p++ = ' ';
		p = runtime_word_escape(p, w[i]);
	}
	*p++ = '\n';
	*p = '\0';
	return line;
}

/* A request of words without fd, whose answer is a bare "ok". */
static int simple(const char *rundir, const char *const *w, int timeout_ms, struct berth_error *err)
{
	_cleanup_free_ char *line = request_line(w), *buf = NULL;
	char *first, *rest;

	if (!line)
		return -ENOMEM;
	return call(rundir, line, -1, timeout_ms, &buf, &first, &rest, err);
}

int vmmon_status(const char *rundir, bool *ret_ready, char **ret_version, struct berth_error *err)
{
	_cleanup_free_ char *buf = NULL;
	char *first, *rest, *v;
	int r = call(rundir, "status\n", -1, STATUS_TIMEOUT_MS, &buf, &first, &rest, err);

	if (r < 0)
		return r;
	if (streq(first, "agent-connecting")) {
		*ret_ready = false;
		if (ret_version)
			*ret_version = NULL;
		return 0;
	}
	if (!berth_startswith(first, "agent-ready ") || runtime_word_unescape(first + 12) < 0)
		return berth_error_set(err, -EIO, BERTH_ERR_INTERNAL,
				       "berth-vmmon's status is not understood: %s", first);
	v = strdup(first + 12);
	if (!v)
		return -ENOMEM;
	*ret_ready = true;
	if (ret_version)
		*ret_version = v;
	else
		free(v);
	return 0;
}

int vmmon_state(const char *rundir, json_t **ret, int timeout_ms, struct berth_error *err)
{
	_cleanup_free_ char *buf = NULL;
	char *first, *rest;
	json_t *j;
	int r = call(rundir, "state\n", -1, timeout_ms, &buf, &first, &rest, err);

	if (r < 0)
		return r;
	j = json_loads(first, 0, NULL);
	if (!json_is_object(j)) {
		json_decref(j);
		return berth_error_set(err, -EIO, BERTH_ERR_INTERNAL,
				       "berth-vmmon's state is not JSON");
	}
	*ret = j;
	return 0;
}

static int parse_u64(const char *s, uint64_t max, uint64_t *ret)
{
	char *end = NULL;
	unsigned long long v;

	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v > max)
		return -EINVAL;
	*ret = v;
	return 0;
}

/* "TYPE MODE UID GID SIZE MTIME NSEC [TARGET]" and a listing's lines into `i`. */
static int parse_info(char *first, char *rest, struct agent_file_info *i)
{
	_cleanup_free_ char **w = NULL;
	uint64_t v[6];
	size_t n = 0;

	if (runtime_words_split(first, &w, &n) < 0 || n < 7 || n > 8)
		return -EBADMSG;
	i->type = streq(w[0], "file")	     ? AGENT_FILE_REGULAR
		  : streq(w[0], "directory") ? AGENT_FILE_DIRECTORY
		  : streq(w[0], "symlink")   ? AGENT_FILE_SYMLINK
					     : AGENT_FILE_TYPE_MAX;
	for (size_t k = 0; k < 6; k++)
		if (parse_u64(w[k + 1], k == 3 || k == 4 ? INT64_MAX : UINT32_MAX, &v[k]) < 0)
			return -EBADMSG;
	if (i->type == AGENT_FILE_TYPE_MAX || (i->type == AGENT_FILE_SYMLINK) != (n == 8))
		return -EBADMSG;
	i->mode = (uint32_t)v[0];
	i->uid = (uint32_t)v[1];
	i->gid = (uint32_t)v[2];
	i->size = v[3];
	i->mtime_s = (int64_t)v[4];
	i->mtime_ns = (uint32_t)v[5];
	i->target = strdup(n == 8 ? w[7] : "");
	if (!i->target)
		return -ENOMEM;
	if (i->type != AGENT_FILE_DIRECTORY)
		return 0;
	for (char *nl; (nl = strchr(rest, '\n')); rest = nl + 1) {
		char **nv = realloc(i->entries, (i->n_entries + 2) * sizeof(char *));
		if (!nv)
			return -ENOMEM;
		i->entries = nv;
		*nl = '\0';
		if (runtime_word_unescape(rest) < 0 || !(nv[i->n_entries] = strdup(rest)))
			return -EBADMSG;
		nv[++i->n_entries] = NULL;
	}
	if (!i->entries && !(i->entries = calloc(1, sizeof(char *))))
		return -ENOMEM;
	return 0;
}

int vmmon_file_pull(const char *rundir, const char *path, int fd, struct agent_file_info *ret,
		    int timeout_ms, struct berth_error *err)
{
	_cleanup_free_ char *line = request_line((const char *const[]){"file-pull", path, NULL});
	_cleanup_free_ char *buf = NULL;
	struct agent_file_info i = {0};
	char *first, *rest;
	int r;

	if (!line)
		return -ENOMEM;
	r = call(rundir, line, fd, timeout_ms, &buf, &first, &rest, err);
	if (r < 0)
		return r;
	r = parse_info(first, rest, &i);
	if (r < 0) {
		agent_file_info_release(&i);
		return berth_error_set(err, r, BERTH_ERR_INTERNAL,
				       "berth-vmmon's file info is not understood");
	}
	*ret = i;
	return 0;
}

int vmmon_file_push(const char *rundir, const char *path, const struct agent_file_info *info,
		    int fd, unsigned flags, int timeout_ms, struct berth_error *err)
{
	char mode[16], uid[16], gid[16], fl[16];
	const char *type = info->type == AGENT_FILE_DIRECTORY ? "directory"
			   : info->type == AGENT_FILE_SYMLINK ? "symlink"
							      : "file";
	bool link = info->type == AGENT_FILE_SYMLINK;
	_cleanup_free_ char *line = NULL, *buf = NULL;
	char *first, *rest;

	if (link && (!info->target || !*info->target))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "A symlink needs a target");
	if (info->type == AGENT_FILE_REGULAR && fd < 0)
		return -EBADF;
	snprintf(mode, sizeof(mode), "%u", info->mode);
	snprintf(uid, sizeof(uid), "%u", info->uid);
	snprintf(gid, sizeof(gid), "%u", info->gid);
	snprintf(fl, sizeof(fl), "%u", flags);
	line = request_line((const char *const[]){"file-push", path, type, mode, uid, gid, fl,
						  link ? info->target : NULL, NULL});
	if (!line)
		return -ENOMEM;
	return call(rundir, line, info->type == AGENT_FILE_REGULAR ? fd : -1, timeout_ms, &buf,
		    &first, &rest, err);
}

int vmmon_file_delete(const char *rundir, const char *path, int timeout_ms, struct berth_error *err)
{
	return simple(rundir, (const char *const[]){"file-delete", path, NULL}, timeout_ms, err);
}

int vmmon_mkdir(const char *rundir, const char *path, uint32_t mode, uint32_t uid, uint32_t gid,
		bool parents, int timeout_ms, struct berth_error *err)
{
	char m[16], u[16], g[16];

	snprintf(m, sizeof(m), "%u", mode);
	snprintf(u, sizeof(u), "%u", uid);
	snprintf(g, sizeof(g), "%u", gid);
	return simple(rundir,
		      (const char *const[]){"mkdir", path, m, u, g, parents ? "1" : "0", NULL},
		      timeout_ms, err);
}

int vmmon_start(const char *rundir, struct berth_error *err)
{
	return runtime_vmmon_launch(rundir, err);
}
