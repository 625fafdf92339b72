/* agent/agent.c: berth-agent's main: options, the key, the transport, the handshake, the
 * poll loop and the dispatch of the host's messages to exec.c, files.c and state.c.
 *
 * Started the way LXD images start lxd-agent (doc/agent.md): no arguments, the working
 * directory /run/lxd_agent holding a copy of the config drive, the transport the
 * virtio-serial port below. Options exist for tests and for other loaders. */
#include "agent/agent.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/vfs.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_DEVICE "/dev/virtio-ports/org.linuxcontainers.lxd"
#define DEFAULT_KEY "berth-agent.key" /* relative to the working directory */
#define HANDSHAKE_TIMEOUT_MS 10000    /* default of --handshake-timeout */
#define REOPEN_DELAY_US 500000
#define DEFAULT_SEED_DIR "/var/lib/cloud/seed/nocloud-net"

static int handshake_timeout_ms = HANDSHAKE_TIMEOUT_MS;

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct options {
	const char *device;
	const char *key;
	const char *seed_dir; /* where cloud-init/ goes; NULL: nowhere (--fd without it) */
	int fd;
	bool debug;
};

static bool debug_on;

void agent_log(const char *fmt, ...)
{
	va_list ap;

	fputs("berth-agent: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int agent_send(struct agent_conn *c, uint8_t type, uint32_t ch, const void *p, size_t len)
{
	struct agent_buf out = {0};
	int r = agent_frame_encode(&c->s, &out, type, ch, p, len);

	if (r >= 0)
		r = agent_write_all(c->fd, out.data, out.len, -1);
	agent_buf_release(&out);
	return r;
}

int agent_send_error(struct agent_conn *c, uint32_t ch, int ret, const char *fmt, ...)
{
	struct agent_buf p = {0};
	char msg[512];
	va_list ap;
	int r;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (debug_on)
		agent_log("channel %u: %s", ch, msg);
	agent_buf_u32(&p, (uint32_t)(ret < 0 ? -ret : ret));
	agent_buf_str(&p, msg);
	r = p.failed ? -ENOMEM : agent_send(c, AGENT_T_ERROR, ch, p.data, p.len);
	agent_buf_release(&p);
	return r;
}

static const struct agent_chan free_chan = {.kind = AGENT_CHAN_FREE,
					    .in_fd = -EBADF,
					    .out_fd = -EBADF,
					    .err_fd = -EBADF,
					    .put_fd = -EBADF};

struct agent_chan *agent_chan_find(struct agent_conn *c, uint32_t id)
{
	for (size_t i = 0; i < AGENT_MAX_CHANNELS; i++)
		if (c->chans[i].kind != AGENT_CHAN_FREE && c->chans[i].id == id)
			return &c->chans[i];
	return NULL;
}

struct agent_chan *agent_chan_new(struct agent_conn *c, uint32_t id, int *ret)
{
	if (agent_chan_find(c, id)) {
		*ret = -EBUSY;
		return NULL;
	}
	for (size_t i = 0; i < AGENT_MAX_CHANNELS; i++) {
		struct agent_chan *ch = &c->chans[i];

		if (ch->kind != AGENT_CHAN_FREE)
			continue;
		*ch = free_chan;
		ch->id = id;
		return ch;
	}
	*ret = -EMFILE;
	return NULL;
}

void agent_chan_release(struct agent_chan *ch)
{
	int *fds[] = {&ch->in_fd, &ch->out_fd, &ch->err_fd, &ch->put_fd};

	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
		if (*fds[i] >= 0)
			close(*fds[i]);
	if (ch->put_tmp)
		unlink(ch->put_tmp);
	agent_buf_release(&ch->stdin_q);
	free(ch->put_path);
	free(ch->put_tmp);
	free(ch->put_target);
	*ch = free_chan;
}

/* ---- the key: 64 hex digits (and an optional newline), readable by root only ---- */

static int hexval(int ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

static int load_key(const char *path, uint8_t key[AGENT_KEY_LEN])
{
	char text[2 * AGENT_KEY_LEN + 2];
	struct stat st;
	ssize_t n;
	int fd, r = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || (st.st_mode & 077) || !S_ISREG(st.st_mode) ||
	    st.st_uid != geteuid()) {
		close(fd);
		return -EPERM; /* a key others can read, or another user wrote, is no secret */
	}
	n = read(fd, text, sizeof(text));
	close(fd);
	if (n < 2 * AGENT_KEY_LEN || (n == sizeof(text) && text[n - 1] != '\n'))
		return -EINVAL;
	for (int i = 0; i < AGENT_KEY_LEN; i++) {
		int hi = hexval(text[2 * i]), lo = hexval(text[2 * i + 1]);

		if (hi < 0 || lo < 0)
			r = -EINVAL;
		key[i] = (uint8_t)(hi << 4 | (lo & 0xf));
	}
	explicit_bzero(text, sizeof(text));
	return r;
}

/* ---- systemd readiness: one datagram to $NOTIFY_SOCKET, no libsystemd ---- */

static void notify_ready(void)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	static const char msg[] = "READY=1";
	size_t n;
	int fd;

	if (!path || !*path || (path[0] != '/' && path[0] != '@'))
		return;
	n = strlen(path);
	if (n >= sizeof(sa.sun_path))
		return;
	memcpy(sa.sun_path, path, n);
	if (path[0] == '@')
		sa.sun_path[0] = 0; /* abstract namespace */
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	if (sendto(fd, msg, sizeof(msg) - 1, MSG_NOSIGNAL, (struct sockaddr *)&sa,
		   (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n)) < 0)
		agent_log("notifying readiness: %s, ignoring", strerror(errno));
	close(fd);
	/* Once: children must not inherit it, a later session must not repeat it. */
	unsetenv("NOTIFY_SOCKET");
}

/* ---- the session ---- */

/* A handshake frame: answer it. 0, or -errno ending the session. */
static int handshake_frame(struct agent_conn *c, const struct agent_frame *f)
{
	struct agent_buf out = {0};
	int r;

	if (f->type == AGENT_T_HELLO) {
		r = agent_hs_challenge(&c->s, f->payload, f->len, &out);
		if (r == -EPROTO || r == -EBADMSG)
			agent_log("refusing the peer: %s",
				  r == -EPROTO ? "not berth's protocol v1" : "malformed HELLO");
		if (r >= 0)
			r = agent_write_all(c->fd, out.data, out.len, -1);
		agent_buf_release(&out);
		return r == -EPROTO ? -EACCES : r;
	}
	r = agent_hs_check_proof(&c->s, f->payload, f->len);
	if (r < 0) {
		agent_log("refusing the peer: its proof is wrong (not the host, or a wrong key)");
		return -EACCES;
	}
	r = agent_send(c, AGENT_T_READY, 0, BERTH_VERSION, sizeof(BERTH_VERSION) - 1);
	if (r >= 0)
		notify_ready();
	return r;
}

/* A message on a channel that must exist and be of `kind`. */
static struct agent_chan *chan_of(struct agent_conn *c, const struct agent_frame *f,
				  enum agent_chan_kind kind, int *ret)
{
	struct agent_chan *ch = agent_chan_find(c, f->channel);
	char nb[8];

	if (ch && ch->kind == kind)
		return ch;
	*ret = agent_send_error(c, f->channel, -ENOENT, "%s on channel %u: no such %s",
				agent_msg_name(f->type, nb), f->channel,
				kind == AGENT_CHAN_EXEC ? "exec" : "transfer");
	return NULL;
}

static int dispatch(struct agent_conn *c, const struct agent_frame *f)
{
	struct agent_chan *ch;
	char nb[8];
	int r = 0;

	if (c->s.state != AGENT_HS_DONE)
		return handshake_frame(c, f);
	if (f->channel == 0)
		return agent_send_error(c, 0, -EPROTO, "%s on channel 0",
					agent_msg_name(f->type, nb));
	switch (f->type) {
	case AGENT_T_EXEC:
		return agent_exec_start(c, f->channel, f->payload, f->len);
	case AGENT_T_STDIN:
		ch = chan_of(c, f, AGENT_CHAN_EXEC, &r);
		return ch ? agent_exec_stdin(c, ch, f->payload, f->len) : r;
	case AGENT_T_RESIZE:
		ch = chan_of(c, f, AGENT_CHAN_EXEC, &r);
		return ch ? agent_exec_resize(c, ch, f->payload, f->len) : r;
	case AGENT_T_SIGNAL:
		ch = chan_of(c, f, AGENT_CHAN_EXEC, &r);
		return ch ? agent_exec_signal(c, ch, f->payload, f->len) : r;
	case AGENT_T_FILE_GET:
		return agent_file_get(c, f->channel, f->payload, f->len);
	case AGENT_T_FILE_PUT:
		return agent_file_put(c, f->channel, f->payload, f->len);
	case AGENT_T_FILE_DATA:
	case AGENT_T_FILE_END:
		/* the rest of a push whose FILE_PUT was refused (and answered) is dropped */
		ch = agent_chan_find(c, f->channel);
		if (!ch || ch->kind != AGENT_CHAN_PUT)
			return 0;
		return f->type == AGENT_T_FILE_END ? agent_file_end(c, ch)
						   : agent_file_data(c, ch, f->payload, f->len);
	case AGENT_T_FILE_DELETE:
		return agent_file_delete(c, f->channel, f->payload, f->len);
	case AGENT_T_MKDIR:
		return agent_file_mkdir(c, f->channel, f->payload, f->len);
	case AGENT_T_STATE:
		return agent_state(c, f->channel);
	default:
		/* a newer host: say so on the channel, keep the session */
		return agent_send_error(c, f->channel, -EOPNOTSUPP, "unknown message %s",
					agent_msg_name(f->type, nb));
	}
}

/* Read from the transport and handle every whole frame. 0, or -errno ending the
 * session (0 is returned as -EPIPE at end of stream). */
static int on_transport(struct agent_conn *c)
{
	struct agent_frame f;
	size_t used;
	int r = agent_inbuf_fill(&c->in, c->fd);

	if (r == -EAGAIN)
		return 0;
	if (r == 0 || r == -ECONNRESET) /* the host hung up (with bytes unread: reset) */
		return c->s.state == AGENT_HS_DONE ? -EPIPE : -ECONNABORTED;
	if (r < 0)
		return r;
	/* One deadline for the whole handshake, however the peer paces its bytes. */
	if (c->s.state != AGENT_HS_DONE && !c->hs_deadline_ms)
		c->hs_deadline_ms = now_ms() + handshake_timeout_ms;
	for (;;) {
		r = agent_frame_decode(&c->s, agent_inbuf_head(&c->in), c->in.len, &f, &used);
		if (r == -EAGAIN)
			return 0;
		if (r < 0) {
			agent_log("refusing the peer: %s", r == -EACCES	    ? "not authenticated"
							   : r == -EMSGSIZE ? "frame too large"
									    : "malformed frame");
			return r;
		}
		r = dispatch(c, &f);
		agent_inbuf_consume(&c->in, used);
		if (r < 0)
			return r;
	}
}

/* pollfds: the transport, the signalfd, then each exec's fds. */
static size_t build_poll(struct agent_conn *c, int sfd, struct pollfd *pfd,
			 struct agent_chan **owner)
{
	size_t n = 0;

	pfd[n++] = (struct pollfd){.fd = c->fd, .events = POLLIN};
	pfd[n++] = (struct pollfd){.fd = sfd, .events = POLLIN};
	for (size_t i = 0; i < AGENT_MAX_CHANNELS; i++) {
		struct agent_chan *ch = &c->chans[i];

		if (ch->kind != AGENT_CHAN_EXEC)
			continue;
		if (ch->out_fd >= 0) {
			owner[n] = ch;
			pfd[n++] = (struct pollfd){.fd = ch->out_fd, .events = POLLIN};
		}
		if (ch->err_fd >= 0) {
			owner[n] = ch;
			pfd[n++] = (struct pollfd){.fd = ch->err_fd, .events = POLLIN};
		}
		if (ch->in_fd >= 0 && ch->stdin_q.len > ch->stdin_off) {
			owner[n] = ch;
			pfd[n++] = (struct pollfd){.fd = ch->in_fd, .events = POLLOUT};
		}
	}
	return n;
}

static int session_step(struct agent_conn *c, int sfd)
{
	struct pollfd pfd[2 + 3 * AGENT_MAX_CHANNELS];
	struct agent_chan *owner[2 + 3 * AGENT_MAX_CHANNELS] = {0};
	size_t n = build_poll(c, sfd, pfd, owner);
	int timeout = -1, r;

	if (c->s.state == AGENT_HS_DONE)
		c->hs_deadline_ms = 0;
	else if (c->hs_deadline_ms) {
		int64_t left = c->hs_deadline_ms - now_ms();

		if (left <= 0)
			return -ETIMEDOUT;
		timeout = (int)left;
	}
	r = poll(pfd, n, timeout);
	if (r == 0)
		return -ETIMEDOUT;
	if (r < 0)
		return errno == EINTR ? 0 : -errno;
	if (pfd[1].revents & POLLIN) {
		struct signalfd_siginfo si;

		while (read(sfd, &si, sizeof(si)) > 0)
			;
		r = agent_exec_reap(c);
		if (r < 0)
			return r;
	}
	for (size_t i = 2; i < n; i++) {
		/* an earlier step may have finished the channel and closed its fds */
		if (!pfd[i].revents || owner[i]->kind != AGENT_CHAN_EXEC)
			continue;
		if (pfd[i].events & POLLOUT)
			r = agent_exec_flush_stdin(c, owner[i]);
		else if (pfd[i].fd == owner[i]->out_fd || pfd[i].fd == owner[i]->err_fd)
			r = agent_exec_output(c, owner[i], pfd[i].fd);
		if (r < 0)
			return r;
	}
	if (pfd[0].revents)
		return on_transport(c);
	return 0;
}

/* One session on `fd`, from the handshake until the transport ends or fails. */
static int run_session(int fd, const uint8_t key[AGENT_KEY_LEN], int sfd)
{
	static struct agent_conn c; /* large (channels), one at a time */
	int r;

	c = (struct agent_conn){.fd = fd, .debug = debug_on};
	for (size_t i = 0; i < AGENT_MAX_CHANNELS; i++)
		c.chans[i] = free_chan; /* not released: zeroed fds would close fd 0 */
	agent_session_init(&c.s, AGENT_ROLE_AGENT, key);
	do
		r = session_step(&c, sfd);
	while (r >= 0);
	if (r == -ETIMEDOUT)
		agent_log("refusing the peer: no handshake within %d ms", handshake_timeout_ms);
	else if (r == -ECONNABORTED && c.s.state != AGENT_HS_START)
		agent_log("the peer hung up before authenticating");
	else if (r != -EPIPE && r != -EACCES && r != -EMSGSIZE && r != -EBADMSG)
		agent_log("session ended: %s", strerror(-r));
	agent_exec_kill_all(&c);
	for (size_t i = 0; i < AGENT_MAX_CHANNELS; i++)
		agent_chan_release(&c.chans[i]);
	agent_inbuf_release(&c.in);
	agent_session_release(&c.s);
	return r;
}

/* ---- cloud-init: the drive's NoCloud seed, where cloud-init's NoCloud source reads it ----
 */

static int copy_seed_file(const char *name, const char *seed_dir)
{
	char src[64], dst[4096], tmp[4100], buf[16384];
	ssize_t n;
	int in, out, r = 0;

	snprintf(src, sizeof(src), "cloud-init/%s", name);
	in = open(src, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (in < 0)
		return errno == ENOENT ? 0 : -errno;
	snprintf(dst, sizeof(dst), "%s/%s", seed_dir, name);
	snprintf(tmp, sizeof(tmp), "%s.tmp", dst);
	out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (out < 0) {
		r = -errno;
		close(in);
		return r;
	}
	while (r >= 0 && (n = read(in, buf, sizeof(buf))) != 0)
		r = n < 0 ? (errno == EINTR ? 0 : -errno)
			  : agent_write_all(out, buf, (size_t)n, -1);
	close(in);
	if (close(out) < 0 && r >= 0)
		r = -errno;
	if (r >= 0 && rename(tmp, dst) < 0)
		r = -errno;
	if (r < 0)
		unlink(tmp);
	return r;
}

/* Copy cloud-init/{meta-data,user-data,vendor-data,network-config} of the working
 * directory (the drive's copy) to `seed_dir`. Failures are logged, not fatal: the agent
 * is still wanted without cloud-init. */
/* ---- the disk devices shared with the guest (doc/agent.md, "Shares") ---- */

#define MOUNTS_FILE "berth-mounts" /* relative to the working directory, as the key */
#define V9FS_MAGIC_NUMBER 0x01021997

/* mkdir -p of an absolute path, 0755. */
static void mkdir_parents(char *path)
{
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		mkdir(path, 0755);
		*p = '/';
	}
	mkdir(path, 0755);
}

/* Mount each share the host lists, one a line: TAG, a tab, "ro" or "rw", a tab, the
 * absolute path (the rest of the line). One already mounted there (the agent started
 * again) is left be; a failure is logged and the others are still mounted. */
static void apply_mounts(void)
{
	FILE *f = fopen(MOUNTS_FILE, "re");
	char line[4200];

	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		char *tag = line, *mode, *path, *nl = strchr(line, '\n');
		struct statfs st;
		struct stat lst;

		if (nl)
			*nl = '\0';
		mode = strchr(tag, '\t');
		path = mode ? strchr(mode + 1, '\t') : NULL;
		if (!path)
			continue;
		*mode++ = '\0';
		*path++ = '\0';
		if (*path != '/')
			continue;
		mkdir_parents(path);
		/* the mount point itself a symlink: not followed (where would it mount?) */
		if (lstat(path, &lst) == 0 && !S_ISDIR(lst.st_mode)) {
			agent_log("the share %s: %s is not a directory, not mounted", tag, path);
			continue;
		}
		if (statfs(path, &st) == 0 && st.f_type == V9FS_MAGIC_NUMBER)
			continue;
		/* nosuid, nodev: what the host directory holds is never a setuid program or
		 * a device node to the guest */
		if (mount(tag, path, "9p",
			  MS_NOSUID | MS_NODEV | (strcmp(mode, "ro") == 0 ? MS_RDONLY : 0),
			  "trans=virtio,version=9p2000.L,msize=1048576") < 0)
			agent_log("mounting the share %s at %s: %s", tag, path, strerror(errno));
		else
			agent_log("share %s mounted at %s", tag, path);
	}
	fclose(f);
}

static void apply_seed(const char *seed_dir)
{
	static const char *names[] = {"meta-data", "user-data", "vendor-data", "network-config"};
	struct stat st;
	char dir[4096];

	if (stat("cloud-init", &st) < 0 || !S_ISDIR(st.st_mode))
		return;
	/* mkdir -p, 0700 for what is made: user-data may hold secrets */
	snprintf(dir, sizeof(dir), "%s", seed_dir);
	for (char *p = dir + 1; (p = strchr(p, '/')); p++) {
		*p = 0;
		mkdir(dir, 0755);
		*p = '/';
	}
	mkdir(dir, 0700);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		int r = copy_seed_file(names[i], seed_dir);

		if (r < 0)
			agent_log("cloud-init seed \"%s\": %s, ignoring", names[i], strerror(-r));
	}
}

/* ---- main ---- */

static void usage(FILE *to)
{
	fputs("Usage: berth-agent [--fd N | --device PATH] [--key PATH] [--seed-dir DIR] "
	      "[--handshake-timeout MS] [--debug]\n"
	      "The agent of berth inside a virtual machine (doc/agent.md). With no option it\n"
	      "serves " DEFAULT_DEVICE "\nwith the key " DEFAULT_KEY
	      " of its working directory, as LXD's loader starts it.\n",
	      to);
}

static int parse_options(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{"fd", required_argument, NULL, 'f'},
		{"device", required_argument, NULL, 'D'},
		{"key", required_argument, NULL, 'k'},
		{"debug", no_argument, NULL, 'd'},
		{"seed-dir", required_argument, NULL, 's'},
		{"handshake-timeout", required_argument, NULL, 't'},
		{"verbose", no_argument, NULL, 'v'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	char *end;
	int opt;

	*o = (struct options){.device = DEFAULT_DEVICE, .key = DEFAULT_KEY, .fd = -1};
	while ((opt = getopt_long(argc, argv, "dvh", longopts, NULL)) != -1) {
		switch (opt) {
		case 'f':
			errno = 0;
			o->fd = (int)strtol(optarg, &end, 10);
			if (errno || *end || o->fd < 0)
				return -EINVAL;
			break;
		case 'D':
			o->device = optarg;
			break;
		case 'k':
			o->key = optarg;
			break;
		case 's':
			o->seed_dir = optarg;
			break;
		case 't':
			errno = 0;
			handshake_timeout_ms = (int)strtol(optarg, &end, 10);
			if (errno || *end || handshake_timeout_ms <= 0)
				return -EINVAL;
			break;
		case 'd':
		case 'v': /* lxd-agent's flags, accepted from loaders that pass them */
			o->debug = true;
			break;
		case 'h':
			usage(stdout);
			return 1;
		default:
			return -EINVAL;
		}
	}
	if (o->fd < 0 && !o->seed_dir)
		o->seed_dir = DEFAULT_SEED_DIR; /* started from a config drive in a guest */
	return optind == argc ? 0 : -EINVAL;
}

static int signals_setup(void)
{
	sigset_t set;

	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -errno;
	return signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
}

/* A terminal standing for the port (a serial line, a pty in tests) must pass bytes as
 * they are: no echo, no line editing, no CR/LF translation. A virtio port is no tty. */
static int raw_if_tty(int fd)
{
	struct termios t;

	if (!isatty(fd))
		return 0;
	if (tcgetattr(fd, &t) < 0)
		return -errno;
	cfmakeraw(&t);
	return tcsetattr(fd, TCSANOW, &t) < 0 ? -errno : 0;
}

/* Serve the device for ever: a session per connection of the host. */
static int serve_device(const char *device, const uint8_t key[AGENT_KEY_LEN], int sfd)
{
	for (;;) {
		int fd = open(device, O_RDWR | O_NOCTTY | O_CLOEXEC);

		if (fd < 0) {
			agent_log("opening \"%s\": %s", device, strerror(errno));
			return -errno;
		}
		if (raw_if_tty(fd) < 0) {
			agent_log("raw mode on \"%s\": %s", device, strerror(errno));
			close(fd);
			return -errno;
		}
		run_session(fd, key, sfd);
		close(fd);
		/* The host went away (or failed to authenticate): wait for it to come back. */
		usleep(REOPEN_DELAY_US);
	}
}

/* Mark every fd inherited past 2 (the port given by --fd among them) close-on-exec: no
 * command run by an exec gets one. */
static void fds_cloexec(void)
{
#ifdef SYS_close_range
	if (syscall(SYS_close_range, 3u, ~0u, 4u /* CLOSE_RANGE_CLOEXEC */) == 0)
		return;
#endif
	for (int fd = 3; fd < 4096; fd++) {
		int fl = fcntl(fd, F_GETFD);

		if (fl >= 0 && !(fl & FD_CLOEXEC))
			fcntl(fd, F_SETFD, fl | FD_CLOEXEC);
	}
}

int main(int argc, char **argv)
{
	uint8_t key[AGENT_KEY_LEN];
	struct options o;
	int r, sfd;

	r = parse_options(argc, argv, &o);
	if (r != 0) {
		if (r < 0)
			usage(stderr);
		return r < 0 ? 2 : 0;
	}
	debug_on = o.debug;
	fds_cloexec();
	/* 0, 1 and 2 open, so that no pipe of a command's gets one of their numbers */
	while ((sfd = open("/dev/null", O_RDWR)) >= 0 && sfd <= 2)
		;
	if (sfd > 2)
		close(sfd);
	r = load_key(o.key, key);
	if (r < 0) {
		agent_log("loading the key \"%s\": %s", o.key,
			  r == -EPERM ? "not a regular file of the agent's user readable by it only"
				      : strerror(-r));
		return 1;
	}
	if (o.seed_dir)
		apply_seed(o.seed_dir);
	apply_mounts();
	sfd = signals_setup();
	if (sfd < 0) {
		agent_log("setting up signals: %s", strerror(-sfd));
		return 1;
	}
	if (o.fd >= 0) {
		if (fcntl(o.fd, F_SETFD, FD_CLOEXEC) < 0) {
			agent_log("--fd %d: %s", o.fd, strerror(errno));
			return 1;
		}
		r = run_session(o.fd, key, sfd);
	} else {
		r = serve_device(o.device, key, sfd);
	}
	explicit_bzero(key, sizeof(key));
	return r == -EPIPE ? 0 : 1;
}
