/* daemon/proxy/helper.c: berth-proxy, the userspace forwarder of one proxy device of one
 * running container (doc/proxy.md). Linked with libc only, like berth-monitor, so that a
 * forwarded port costs little memory.
 *
 *   berth-proxy start RUNDIR DEVICE
 *
 * reads RUNDIR/proxy.DEVICE.spec, detaches (new session, output appended to
 * RUNDIR/proxy.DEVICE.log), holds an exclusive lock on RUNDIR/proxy.DEVICE.pid, opens its
 * listening sockets in its own (berthd's) network namespace, and returns in the parent:
 * 0 once it listens, 1 with one line on stderr otherwise.
 *
 * One process, one epoll loop. For each accepted connection (or, for udp, each new client
 * address) the connecting socket is made inside the container's network namespace: setns
 * into it, socket(), setns back (a socket stays in the namespace it was created in). Unix
 * paths to connect to are resolved inside the container's root with
 * openat2(RESOLVE_IN_ROOT) and reached through /proc/self/fd, so that a symlink in the
 * container cannot point the helper at a host socket. Bytes move with splice() through
 * one pipe per direction; half-closes are passed on.
 *
 * The helper follows the container: a pidfd on the monitor ends it when the container
 * stops (or the monitor dies); a pidfd on PID 1 tells it of a reboot from inside, after
 * which it looks up the new PID 1 (RUNDIR/init.pid) and its namespace. SIGTERM ends it.
 * On the way out it removes its unix socket file and its pid file. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/openat2.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/fsuid.h>
#include <sys/file.h>
#include <sys/pidfd.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "daemon/proxy/addr.h"
#include "lib/macros.h"

#define SPLICE_CHUNK (1 << 16)
#define UDP_IDLE_S 120
#define UDP_FLOWS_MAX 4096
#define DGRAM_MAX 65536

enum ev_kind {
	EV_LISTENER,
	EV_CLIENT, /* the accepted end of a connection */
	EV_SERVER, /* the end in the container */
	EV_FLOW,
	EV_MONITOR,
	EV_INIT,
	EV_SIGNAL,
	EV_KIND_MAX,
};

/* What an epoll event points at: the first member of every watched object. */
struct ev {
	enum ev_kind kind;
	int fd;
};

struct listener {
	struct ev ev;
	size_t index; /* which listening port */
};

/* One direction of a stream connection: src -> pipe -> dst. */
struct dir {
	int pipe[2];
	size_t queued; /* bytes in the pipe */
	bool eof;      /* src said EOF */
	bool shut;     /* dst got SHUT_WR */
};

struct conn {
	struct ev client;  /* accepted socket */
	struct ev server;  /* socket in the container */
	struct dir dir[2]; /* 0: client -> server, 1: server -> client */
	bool connecting;
	bool dead; /* closed; freed after the current batch of events */
	struct conn *prev, *next;
};

struct flow {
	struct ev ev; /* connected udp socket in the container */
	struct listener *l;
	struct sockaddr_storage client;
	socklen_t client_len;
	time_t last;
	bool dead; /* closed; freed after the current batch of events */
	struct flow *prev, *next;
};

struct proxy {
	const char *rundir;
	const char *device;
	struct proxy_addr listen, connect;
	uid_t uid;
	gid_t gid;
	mode_t mode;
	bool set_uid, set_gid;
	bool bind_instance; /* listen in the container, connect on the host */
	int listen_dir;	    /* unix path listener: O_PATH of its directory, else -1 */
	int epfd;
	int host_netns;
	struct ev monitor; /* pidfd */
	struct ev init;	   /* pidfd, fd -1 while the container (re)boots */
	struct ev signals; /* signalfd */
	pid_t init_pid;
	uid_t ct_root_uid; /* host ids of the container's root (uid_map, gid_map) */
	gid_t ct_root_gid;
	int ct_netns; /* -1 while unknown */
	int ct_root;  /* O_PATH of PID 1's root, -1 while unknown */
	struct listener *listeners;
	size_t n_listeners;
	struct conn *conns;
	size_t n_conns;
	struct flow *flows; /* most recently used first */
	size_t n_flows;
	struct conn *dead_conns; /* closed in this batch, linked by next */
	struct flow *dead_flows;
	bool unix_bound; /* we created listen.path */
	bool done;
	char buf[DGRAM_MAX];
};

static void logmsg(const char *fmt, ...) _printf_(1, 2);
static void logmsg(const char *fmt, ...)
{
	char ts[32];
	time_t now = time(NULL);
	struct tm tm;
	va_list ap;

	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
	fprintf(stderr, "%s ", ts);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fflush(stderr);
}

/* ---- the spec ---- */

static int parse_id(const char *v, unsigned long max, unsigned long *ret)
{
	char *end;

	if (!*v || *v < '0' || *v > '9')
		return -EINVAL;
	errno = 0;
	*ret = strtoul(v, &end, 0);
	return errno || *end || *ret > max ? -EINVAL : 0;
}

/* RUNDIR/proxy.DEVICE.spec: key=value lines written by berthd (doc/proxy.md). */
static int read_spec(struct proxy *p, char *why, size_t why_len)
{
	char path[4096], line[512];
	bool have_listen = false, have_connect = false;
	FILE *f;
	int r = 0;

	snprintf(path, sizeof(path), "%s/proxy.%s.spec", p->rundir, p->device);
	f = fopen(path, "re");
	if (!f) {
		snprintf(why, why_len, "cannot open %.300s: %s", path, strerror(errno));
		return -errno;
	}
	p->mode = 0644;
	while (r == 0 && fgets(line, sizeof(line), f)) {
		char *eq = strchr(line, '='), *v;
		unsigned long n;

		line[strcspn(line, "\n")] = '\0';
		if (!line[0])
			continue;
		if (!eq) {
			snprintf(why, why_len, "bad spec line \"%.100s\"", line);
			r = -EINVAL;
			break;
		}
		*eq = '\0';
		v = eq + 1;
		if (streq(line, "listen")) {
			r = proxy_addr_parse(v, &p->listen, why, why_len);
			have_listen = r == 0;
		} else if (streq(line, "connect")) {
			r = proxy_addr_parse(v, &p->connect, why, why_len);
			have_connect = r == 0;
		} else if (streq(line, "bind") && (streq(v, "host") || streq(v, "instance"))) {
			p->bind_instance = streq(v, "instance");
		} else if (streq(line, "uid") || streq(line, "gid") || streq(line, "mode")) {
			r = parse_id(v, streq(line, "mode") ? 07777 : 0xfffffffeUL, &n);
			if (r < 0)
				snprintf(why, why_len, "bad %.8s \"%.100s\"", line, v);
			else if (line[0] == 'u')
				p->uid = (uid_t)n, p->set_uid = true;
			else if (line[0] == 'g')
				p->gid = (gid_t)n, p->set_gid = true;
			else
				p->mode = (mode_t)n;
		} else {
			snprintf(why, why_len, "unknown spec key \"%.100s\"", line);
			r = -EINVAL;
		}
	}
	fclose(f);
	if (r == 0 && (!have_listen || !have_connect)) {
		snprintf(why, why_len, "the spec needs listen= and connect=");
		r = -EINVAL;
	}
	if (r == 0)
		r = proxy_addr_check_pair(&p->listen, &p->connect, false, why, why_len);
	return r;
}

/* ---- epoll ---- */

static int watch(struct proxy *p, struct ev *ev, uint32_t events)
{
	struct epoll_event e = {.events = events, .data.ptr = ev};

	return epoll_ctl(p->epfd, EPOLL_CTL_ADD, ev->fd, &e) < 0 ? -errno : 0;
}

static void close_ev(struct proxy *p, struct ev *ev)
{
	if (ev->fd < 0)
		return;
	epoll_ctl(p->epfd, EPOLL_CTL_DEL, ev->fd, NULL);
	close(ev->fd);
	ev->fd = -1;
}

/* ---- the container's side ---- */

static int read_pid_file(const char *rundir, const char *name, pid_t *ret)
{
	char path[4096], buf[32] = "";
	ssize_t n;
	long v;
	_cleanup_close_ int fd = -EBADF;

	snprintf(path, sizeof(path), "%s/%s", rundir, name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	if (n <= 0)
		return -EINVAL;
	v = strtol(buf, NULL, 10);
	if (v <= 0)
		return -EINVAL;
	*ret = (pid_t)v;
	return 0;
}

static void forget_init(struct proxy *p)
{
	close_ev(p, &p->init);
	if (p->ct_netns >= 0)
		close(p->ct_netns);
	if (p->ct_root >= 0)
		close(p->ct_root);
	p->ct_netns = p->ct_root = -1;
}

/* The host id that container id 0 maps to in /proc/PID/{uid,gid}_map (0 without one). */
static unsigned long root_map(pid_t pid, const char *which)
{
	char path[64];
	unsigned long inside, outside, count;
	FILE *f;
	int n;

	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, which);
	f = fopen(path, "re");
	if (!f)
		return 0;
	n = fscanf(f, "%lu %lu %lu", &inside, &outside, &count);
	fclose(f);
	return n == 3 && inside == 0 ? outside : 0;
}

/* Find the container's PID 1 (RUNDIR/init.pid) and open its network namespace and root.
 * -ESRCH while there is none (a reboot in progress). */
static int attach_init(struct proxy *p)
{
	char path[64];
	pid_t pid;
	int pidfd, netns, root, r = read_pid_file(p->rundir, "init.pid", &pid);

	if (r < 0)
		return -ESRCH;
	pidfd = pidfd_open(pid, 0);
	if (pidfd < 0)
		return -ESRCH;
	snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)pid);
	netns = open(path, O_RDONLY | O_CLOEXEC);
	snprintf(path, sizeof(path), "/proc/%d/root", (int)pid);
	root = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	/* Opened through the pid: still the same process once the pidfd says it lives. */
	if (netns < 0 || root < 0 || pidfd_send_signal(pidfd, 0, NULL, 0) < 0) {
		if (netns >= 0)
			close(netns);
		if (root >= 0)
			close(root);
		close(pidfd);
		return -ESRCH;
	}
	forget_init(p);
	p->init.fd = pidfd;
	p->ct_netns = netns;
	p->ct_root = root;
	p->ct_root_uid = (uid_t)root_map(pid, "uid_map");
	p->ct_root_gid = (gid_t)root_map(pid, "gid_map");
	if (pid != p->init_pid && p->init_pid)
		logmsg("the container's PID 1 is now %d", (int)pid);
	p->init_pid = pid;
	return watch(p, &p->init, EPOLLIN);
}

/* A socket in the container's network namespace. */
static int ct_socket(struct proxy *p, int family, int type)
{
	int fd, saved;

	if (p->ct_netns < 0)
		return -ESRCH;
	if (setns(p->ct_netns, CLONE_NEWNET) < 0)
		return -errno;
	fd = socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	saved = errno;
	if (setns(p->host_netns, CLONE_NEWNET) < 0) {
		/* Every later listen or connect would be in the wrong place: stop. */
		logmsg("cannot return to the host's network namespace: %m");
		p->done = true;
		if (fd >= 0)
			close(fd);
		return -EIO;
	}
	return fd < 0 ? -saved : fd;
}

/* A socket on the connecting side: in the container (bind=host) or on the host. */
static int connect_socket(struct proxy *p, int type)
{
	int fd;

	if (!p->bind_instance)
		return ct_socket(p, p->connect.family, type);
	fd = socket(p->connect.family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	return fd < 0 ? -errno : fd;
}

/* Connect `fd` to the connect address for listening port `i`. 0 or -EINPROGRESS. */
static int ct_connect(struct proxy *p, int fd, size_t i)
{
	struct sockaddr_storage ss;
	socklen_t len = proxy_addr_sockaddr(&p->connect, 0, &ss);
	_cleanup_close_ int target = -EBADF;

	if (p->connect.family != AF_UNIX) {
		uint16_t port = proxy_addr_connect_port(&p->connect, i);

		if (ss.ss_family == AF_INET6)
			((struct sockaddr_in6 *)&ss)->sin6_port = htons(port);
		else
			((struct sockaddr_in *)&ss)->sin_port = htons(port);
	} else if (!p->connect.abstract && !p->bind_instance) {
		struct open_how how = {
			.flags = O_PATH | O_CLOEXEC,
			.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
		};
		struct sockaddr_un *un = (struct sockaddr_un *)&ss;

		target = (int)syscall(SYS_openat2, p->ct_root, p->connect.path, &how, sizeof(how));
		if (target < 0)
			return -errno;
		snprintf(un->sun_path, sizeof(un->sun_path), "/proc/self/fd/%d", target);
		len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(un->sun_path) +
				  1);
	}
	if (connect(fd, (struct sockaddr *)&ss, len) == 0)
		return 0;
	return errno == EINPROGRESS ? -EINPROGRESS : -errno;
}

/* ---- listening ---- */

/* The directory that will hold a unix listening socket, as an O_PATH fd: on the host, or
 * (bind=instance) resolved inside the container's root. */
static int unix_dir(struct proxy *p, const char *path)
{
	_cleanup_free_ char *dir = strndup(path, (size_t)(strrchr(path, '/') - path));
	struct open_how how = {
		.flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
		.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
	};

	int fd;

	if (!dir)
		return -ENOMEM;
	if (!p->bind_instance) {
		fd = open(*dir ? dir : "/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	} else {
		if (p->ct_root < 0)
			return -ESRCH;
		fd = (int)syscall(SYS_openat2, p->ct_root, *dir ? dir : "/", &how, sizeof(how));
	}
	return fd < 0 ? -errno : fd;
}

/* Replace a stale socket at the listening path (never anything else). */
static int unix_prepare(struct proxy *p, const char *base, char *why, size_t why_len)
{
	struct stat st;

	if (fstatat(p->listen_dir, base, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return 0;
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(why, why_len, "%s exists and is not a socket", p->listen.path);
		return -EEXIST;
	}
	return unlinkat(p->listen_dir, base, 0) < 0 ? -errno : 0;
}

static void close_listeners(struct proxy *p)
{
	for (size_t i = 0; i < p->n_listeners; i++)
		close_ev(p, &p->listeners[i].ev);
	free(p->listeners);
	p->listeners = NULL;
	p->n_listeners = 0;
	if (p->listen_dir >= 0)
		close(p->listen_dir);
	p->listen_dir = -1;
	p->unix_bound = false;
}

/* A unix path socket is bound through its directory's fd, so that bind=instance creates it
 * inside the container's root and a symlink there cannot redirect it. */
static int bind_unix(struct proxy *p, int fd, char *why, size_t why_len)
{
	const char *base = strrchr(p->listen.path, '/') + 1;
	struct sockaddr_un un = {.sun_family = AF_UNIX};
	int r;

	p->listen_dir = unix_dir(p, p->listen.path);
	if (p->listen_dir < 0)
		return p->listen_dir;
	r = unix_prepare(p, base, why, why_len);
	if (r < 0)
		return r;
	if ((size_t)snprintf(un.sun_path, sizeof(un.sun_path), "/proc/self/fd/%d/%s", p->listen_dir,
			     base) >= sizeof(un.sun_path))
		return -ENAMETOOLONG;
	/* Inside the container the socket belongs to its root: an idmapped root filesystem
	 * refuses to create files for an id it does not map (EOVERFLOW). */
	if (p->bind_instance) {
		setfsgid(p->ct_root_gid);
		setfsuid(p->ct_root_uid);
	}
	r = bind(fd, (struct sockaddr *)&un, sizeof(un)) < 0 ? -errno : 0;
	if (r == 0) {
		p->unix_bound = true;
		if ((p->set_uid || p->set_gid) &&
		    fchownat(p->listen_dir, base, p->set_uid ? p->uid : (uid_t)-1,
			     p->set_gid ? p->gid : (gid_t)-1, AT_SYMLINK_NOFOLLOW) < 0)
			r = -errno;
		else if (fchmodat(p->listen_dir, base, p->mode, AT_SYMLINK_NOFOLLOW) < 0)
			r = -errno;
	}
	if (p->bind_instance) {
		setfsuid(0);
		setfsgid(0);
	}
	return r;
}

static int listen_one(struct proxy *p, struct listener *l, int type, char *why, size_t why_len)
{
	struct sockaddr_storage ss;
	socklen_t len = proxy_addr_sockaddr(&p->listen, l->index, &ss);
	int one = 1, r;

	l->ev.fd = p->bind_instance
			   ? ct_socket(p, p->listen.family, type)
			   : socket(p->listen.family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (l->ev.fd < 0)
		return p->bind_instance ? l->ev.fd : -errno;
	if (p->listen.family != AF_UNIX)
		setsockopt(l->ev.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (p->listen.family == AF_INET6)
		setsockopt(l->ev.fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (p->listen.family == AF_UNIX && !p->listen.abstract)
		r = bind_unix(p, l->ev.fd, why, why_len);
	else
		r = bind(l->ev.fd, (struct sockaddr *)&ss, len) < 0 ? -errno : 0;
	if (r < 0)
		return r;
	if (type == SOCK_STREAM && listen(l->ev.fd, 4096) < 0)
		return -errno;
	return watch(p, &l->ev, EPOLLIN);
}

static int open_listeners(struct proxy *p, char *why, size_t why_len)
{
	size_t n = p->listen.proto == PROXY_UNIX ? 1 : p->listen.n_ports;
	int type = p->listen.proto == PROXY_UDP ? SOCK_DGRAM : SOCK_STREAM;

	p->listeners = calloc(n, sizeof(*p->listeners));
	if (!p->listeners)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		struct listener *l = &p->listeners[i];
		int r;

		*why = '\0';
		l->ev = (struct ev){EV_LISTENER, -1};
		l->index = i;
		p->n_listeners++;
		r = listen_one(p, l, type, why, why_len);
		if (r >= 0)
			continue;
		if (*why)
			return r;
		if (p->listen.family == AF_UNIX)
			snprintf(why, why_len, "cannot listen on %s%s: %s",
				 p->listen.abstract ? "@" : "", p->listen.path, strerror(-r));
		else
			snprintf(why, why_len, "cannot listen on port %u: %s",
				 (unsigned)p->listen.ports[i], strerror(-r));
		return r;
	}
	return 0;
}

/* ---- stream connections ---- */

/* Close a connection. An event for it may still be in the batch epoll_wait returned, so
 * its memory lives until the batch is done (free_dead). */
static void conn_free(struct proxy *p, struct conn *c)
{
	if (c->dead)
		return;
	c->dead = true;
	close_ev(p, &c->client);
	close_ev(p, &c->server);
	for (int d = 0; d < 2; d++)
		for (int k = 0; k < 2; k++)
			if (c->dir[d].pipe[k] >= 0)
				close(c->dir[d].pipe[k]);
	if (c->prev)
		c->prev->next = c->next;
	else
		p->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	p->n_conns--;
	c->prev = NULL;
	c->next = p->dead_conns;
	p->dead_conns = c;
}

/* Move what can move in one direction. 0 when it waits, -errno when the connection is
 * over. */
static int pump(struct conn *c, int d)
{
	struct dir *dr = &c->dir[d];
	int src = d == 0 ? c->client.fd : c->server.fd, dst = d == 0 ? c->server.fd : c->client.fd;

	for (;;) {
		ssize_t n;

		if (dr->queued) {
			n = splice(dr->pipe[0], NULL, dst, NULL, dr->queued,
				   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
			if (n < 0)
				return errno == EAGAIN ? 0 : -errno;
			dr->queued -= (size_t)n;
			continue;
		}
		if (dr->eof) {
			if (!dr->shut)
				shutdown(dst, SHUT_WR);
			dr->shut = true;
			return 0;
		}
		n = splice(src, NULL, dr->pipe[1], NULL, SPLICE_CHUNK,
			   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
		if (n == 0)
			dr->eof = true;
		else if (n < 0)
			return errno == EAGAIN ? 0 : -errno;
		else
			dr->queued += (size_t)n;
	}
}

static void conn_run(struct proxy *p, struct conn *c)
{
	if (c->connecting) {
		struct pollfd pf = {.fd = c->server.fd, .events = POLLOUT};
		int err = 0;
		socklen_t len = sizeof(err);

		if (poll(&pf, 1, 0) == 0)
			return; /* still connecting: the client's data waits in its socket */

		if (getsockopt(c->server.fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
			err = errno;
		if (err == EINPROGRESS || err == EALREADY)
			return;
		if (err) {
			logmsg("cannot connect in the container: %s", strerror(err));
			conn_free(p, c);
			return;
		}
		c->connecting = false;
	}
	for (int d = 0; d < 2; d++)
		if (pump(c, d) < 0) {
			conn_free(p, c);
			return;
		}
	if (c->dir[0].shut && c->dir[1].shut)
		conn_free(p, c);
}

static void accept_stream(struct proxy *p, struct listener *l)
{
	for (int k = 0; k < 64; k++) {
		int fd = accept4(l->ev.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC), s, r;
		struct conn *c;

		if (fd < 0)
			return;
		s = connect_socket(p, SOCK_STREAM);
		if (s < 0) {
			close(fd); /* no container to connect into right now */
			continue;
		}
		c = calloc(1, sizeof(*c));
		if (!c) {
			close(fd);
			close(s);
			continue;
		}
		c->client = (struct ev){EV_CLIENT, fd};
		c->server = (struct ev){EV_SERVER, s};
		for (int d = 0; d < 2; d++)
			if (pipe2(c->dir[d].pipe, O_NONBLOCK | O_CLOEXEC) < 0)
				c->dir[d].pipe[0] = c->dir[d].pipe[1] = -1;
		c->next = p->conns;
		if (p->conns)
			p->conns->prev = c;
		p->conns = c;
		p->n_conns++;
		if (c->dir[0].pipe[0] < 0 || c->dir[1].pipe[0] < 0) {
			conn_free(p, c);
			continue;
		}
		r = ct_connect(p, s, l->index);
		if (r < 0 && r != -EINPROGRESS) {
			logmsg("cannot connect in the container: %s", strerror(-r));
			conn_free(p, c);
			continue;
		}
		c->connecting = r == -EINPROGRESS;
		if (watch(p, &c->client, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET) < 0 ||
		    watch(p, &c->server, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET) < 0) {
			conn_free(p, c);
			continue;
		}
	}
}

/* ---- udp flows ---- */

static void flow_unlink(struct proxy *p, struct flow *f)
{
	if (f->prev)
		f->prev->next = f->next;
	else
		p->flows = f->next;
	if (f->next)
		f->next->prev = f->prev;
	f->prev = f->next = NULL;
}

static void flow_free(struct proxy *p, struct flow *f)
{
	if (f->dead)
		return;
	f->dead = true;
	flow_unlink(p, f);
	close_ev(p, &f->ev);
	p->n_flows--;
	f->next = p->dead_flows;
	p->dead_flows = f;
}

static void free_dead(struct proxy *p)
{
	while (p->dead_conns) {
		struct conn *c = p->dead_conns;

		p->dead_conns = c->next;
		free(c);
	}
	while (p->dead_flows) {
		struct flow *f = p->dead_flows;

		p->dead_flows = f->next;
		free(f);
	}
}

static void flow_front(struct proxy *p, struct flow *f)
{
	flow_unlink(p, f);
	f->next = p->flows;
	if (p->flows)
		p->flows->prev = f;
	p->flows = f;
}

static struct flow *flow_get(struct proxy *p, struct listener *l, const struct sockaddr_storage *ss,
			     socklen_t len)
{
	struct flow *f;
	int r;

	for (f = p->flows; f; f = f->next)
		if (f->l == l && f->client_len == len && memcmp(&f->client, ss, len) == 0)
			return f;
	if (p->n_flows >= UDP_FLOWS_MAX) { /* drop the least recently used */
		struct flow *last = p->flows;

		while (last->next)
			last = last->next;
		flow_free(p, last);
	}
	f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	f->ev = (struct ev){EV_FLOW, connect_socket(p, SOCK_DGRAM)};
	f->l = l;
	memcpy(&f->client, ss, len);
	f->client_len = len;
	f->next = p->flows;
	if (p->flows)
		p->flows->prev = f;
	p->flows = f;
	p->n_flows++;
	if (f->ev.fd < 0) {
		flow_free(p, f);
		return NULL;
	}
	r = ct_connect(p, f->ev.fd, l->index);
	if (r < 0 || watch(p, &f->ev, EPOLLIN) < 0) {
		flow_free(p, f);
		return NULL;
	}
	return f;
}

static void udp_in(struct proxy *p, struct listener *l)
{
	for (int k = 0; k < 64; k++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		ssize_t n = recvfrom(l->ev.fd, p->buf, sizeof(p->buf), MSG_DONTWAIT,
				     (struct sockaddr *)&ss, &len);
		struct flow *f;

		if (n < 0)
			return;
		f = flow_get(p, l, &ss, len);
		if (!f)
			continue;
		f->last = time(NULL);
		flow_front(p, f);
		send(f->ev.fd, p->buf, (size_t)n, MSG_DONTWAIT);
	}
}

static void udp_back(struct proxy *p, struct flow *f)
{
	for (int k = 0; k < 64; k++) {
		ssize_t n = recv(f->ev.fd, p->buf, sizeof(p->buf), MSG_DONTWAIT);

		if (n < 0) /* EAGAIN, or ECONNREFUSED: nothing listens there (yet) */
			return;
		f->last = time(NULL);
		sendto(f->l->ev.fd, p->buf, (size_t)n, MSG_DONTWAIT, (struct sockaddr *)&f->client,
		       f->client_len);
	}
}

static void udp_expire(struct proxy *p)
{
	time_t now = time(NULL);
	struct flow *f = p->flows;

	while (f) {
		struct flow *next = f->next;

		if (now - f->last > UDP_IDLE_S)
			flow_free(p, f);
		f = next;
	}
}

/* ---- the loop ---- */

static void handle(struct proxy *p, struct ev *ev, uint32_t events)
{
	switch (ev->kind) {
	case EV_LISTENER:
		if (p->listen.proto == PROXY_UDP)
			udp_in(p, (struct listener *)ev);
		else
			accept_stream(p, (struct listener *)ev);
		break;
	case EV_CLIENT:
		conn_run(p, container_of(ev, struct conn, client));
		break;
	case EV_SERVER:
		conn_run(p, container_of(ev, struct conn, server));
		break;
	case EV_FLOW:
		udp_back(p, (struct flow *)ev);
		break;
	case EV_MONITOR:
		logmsg("the container stopped");
		p->done = true;
		break;
	case EV_INIT:
		/* PID 1 ended: a reboot (the monitor stays) or a stop (the monitor follows).
		 * Listeners in its namespace went with it. */
		forget_init(p);
		break;
	case EV_SIGNAL: {
		struct signalfd_siginfo si;

		if (read(ev->fd, &si, sizeof(si)) == sizeof(si)) {
			logmsg("signal %u: stopping", si.ssi_signo);
			p->done = true;
		}
		break;
	}
	default:
		break;
	}
}

static int run(struct proxy *p)
{
	struct epoll_event events[64];
	time_t last_sweep = time(NULL);

	while (!p->done) {
		int timeout = p->ct_netns < 0 ? 50 : p->n_flows ? 1000 : -1;
		int n = epoll_wait(p->epfd, events, ARRAY_SIZE(events), timeout);

		if (n < 0 && errno != EINTR)
			return -errno;
		for (int i = 0; i < n && !p->done; i++) {
			struct ev *ev = events[i].data.ptr;

			/* Closed earlier in this batch (the other end of a connection, an
			 * evicted flow): skip. */
			if (ev->fd < 0)
				continue;
			handle(p, ev, events[i].events);
		}
		free_dead(p);
		if (p->ct_netns < 0 && p->bind_instance && p->n_listeners)
			close_listeners(p); /* after the batch: events may point at them */
		if (p->ct_netns < 0 && !p->done && attach_init(p) == 0 && p->bind_instance) {
			char why[512];

			if (open_listeners(p, why, sizeof(why)) < 0)
				logmsg("after the reboot: %s", why);
			else
				logmsg("listening again in the container");
		}
		if (p->n_flows && time(NULL) != last_sweep) {
			udp_expire(p);
			last_sweep = time(NULL);
		}
	}
	return 0;
}

/* ---- start ---- */

static void proxy_free(struct proxy *p)
{
	if (!p)
		return;
	while (p->conns)
		conn_free(p, p->conns);
	while (p->flows)
		flow_free(p, p->flows);
	free_dead(p);
	close_listeners(p);
	forget_init(p);
	close_ev(p, &p->monitor);
	close_ev(p, &p->signals);
	if (p->host_netns >= 0)
		close(p->host_netns);
	if (p->epfd >= 0)
		close(p->epfd);
	proxy_addr_release(&p->listen);
	proxy_addr_release(&p->connect);
	free(p);
}
DEFINE_TRIVIAL_CLEANUP_FUNC(struct proxy *, proxy_free);

/* RUNDIR/proxy.DEVICE.pid, locked for as long as this process lives: berthd tells a live
 * helper from a stale file by trying the lock, so a reused pid cannot fool it. */
static int lock_pid_file(struct proxy *p, char *why, size_t why_len)
{
	char path[4096], buf[32];
	int fd, n;

	snprintf(path, sizeof(path), "%s/proxy.%s.pid", p->rundir, p->device);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		snprintf(why, why_len, "cannot open %.300s: %s", path, strerror(errno));
		return -errno;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int r = -errno;

		snprintf(why, why_len, "%s",
			 r == -EWOULDBLOCK ? "a proxy for this device already runs" : strerror(-r));
		close(fd);
		return r;
	}
	n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
	if (ftruncate(fd, 0) < 0 || write(fd, buf, (size_t)n) != n) {
		snprintf(why, why_len, "cannot write %.300s: %s", path, strerror(errno));
		close(fd);
		return -EIO;
	}
	return fd; /* kept open (and locked) until exit */
}

static int setup(struct proxy *p, char *why, size_t why_len)
{
	struct rlimit rl;
	sigset_t set;
	pid_t mpid;
	int r;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigprocmask(SIG_BLOCK, &set, NULL);
	p->epfd = epoll_create1(EPOLL_CLOEXEC);
	p->signals = (struct ev){EV_SIGNAL, signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK)};
	p->host_netns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	if (p->epfd < 0 || p->signals.fd < 0 || p->host_netns < 0 ||
	    watch(p, &p->signals, EPOLLIN) < 0) {
		snprintf(why, why_len, "cannot set up: %s", strerror(errno));
		return -errno;
	}
	r = read_pid_file(p->rundir, "monitor.pid", &mpid);
	p->monitor = (struct ev){EV_MONITOR, r < 0 ? -1 : pidfd_open(mpid, 0)};
	if (p->monitor.fd < 0 || attach_init(p) < 0) {
		snprintf(why, why_len, "the container is not running");
		return -ESRCH;
	}
	r = watch(p, &p->monitor, EPOLLIN);
	if (r < 0)
		return r;
	return open_listeners(p, why, why_len);
}

static void report(int fd, const char *msg)
{
	if (fd >= 0 && write(fd, msg, strlen(msg)) < 0)
		logmsg("cannot report to berthd: %m");
}

static int start_main(const char *rundir, const char *device)
{
	_cleanup_(proxy_freep) struct proxy *p = calloc(1, sizeof(*p));
	char why[512] = "", log[4096], reply[600];
	int ready[2], pidfd, logfd, null, r;
	ssize_t n;
	pid_t child;

	if (!p || !*device || strchr(device, '/') || rundir[0] != '/') {
		fputs("berth-proxy: bad arguments\n", stderr);
		return 2;
	}
	p->rundir = rundir;
	p->device = device;
	p->epfd = p->host_netns = p->ct_netns = p->ct_root = p->listen_dir = -1;
	p->init = (struct ev){EV_INIT, -1};
	p->monitor = (struct ev){EV_MONITOR, -1};
	p->signals = (struct ev){EV_SIGNAL, -1};
	if (read_spec(p, why, sizeof(why)) < 0) {
		fprintf(stderr, "berth-proxy: %s\n", why);
		return 1;
	}
	if (pipe2(ready, O_CLOEXEC) < 0) {
		perror("berth-proxy: pipe");
		return 1;
	}
	child = fork();
	if (child < 0) {
		perror("berth-proxy: fork");
		return 1;
	}
	if (child > 0) {
		size_t len = 0;

		close(ready[1]);
		while (len < sizeof(reply) - 1 &&
		       (n = read(ready[0], reply + len, sizeof(reply) - 1 - len)) != 0) {
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				break;
			len += (size_t)n;
		}
		reply[len] = '\0';
		if (streq(reply, "ok\n"))
			return 0;
		fprintf(stderr, "%s\n", len ? reply : "the proxy exited before it listened");
		return 1;
	}
	/* The daemon: its own session, stdio on the log. */
	close(ready[0]);
	setsid();
	snprintf(log, sizeof(log), "%s/proxy.%s.log", rundir, device);
	logfd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	null = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (logfd < 0 || null < 0 || dup2(null, 0) < 0 || dup2(logfd, 1) < 0 ||
	    dup2(logfd, 2) < 0) {
		report(ready[1], "cannot open the proxy's log");
		_exit(1);
	}
	close(logfd);
	close(null);
	pidfd = lock_pid_file(p, why, sizeof(why));
	r = pidfd < 0 ? pidfd : setup(p, why, sizeof(why));
	if (r < 0) {
		logmsg("%s", why);
		report(ready[1], why);
		if (p->unix_bound)
			unlinkat(p->listen_dir, strrchr(p->listen.path, '/') + 1, 0);
		if (pidfd >= 0) {
			snprintf(log, sizeof(log), "%s/proxy.%s.pid", rundir, device);
			unlink(log);
		}
		_exit(1);
	}
	logmsg("listening (pid %d) for device \"%s\"", (int)getpid(), device);
	report(ready[1], "ok\n");
	close(ready[1]);
	r = run(p);
	if (r < 0)
		logmsg("epoll: %s", strerror(-r));
	if (p->unix_bound)
		unlinkat(p->listen_dir, strrchr(p->listen.path, '/') + 1, 0);
	snprintf(log, sizeof(log), "%s/proxy.%s.pid", rundir, device);
	unlink(log); /* then the lock goes with the process */
	logmsg("stopped");
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 2 && (streq(argv[1], "--help") || streq(argv[1], "-h"))) {
		puts("Usage: berth-proxy start RUNDIR DEVICE\n"
		     "\n"
		     "Forward the proxy device DEVICE of the container whose run directory is\n"
		     "RUNDIR, as RUNDIR/proxy.DEVICE.spec says (doc/proxy.md).");
		return 0;
	}
	if (argc == 2 && streq(argv[1], "--version")) {
		puts(BERTH_VERSION);
		return 0;
	}
	if (argc == 4 && streq(argv[1], "start"))
		return start_main(argv[2], argv[3]);
	fputs("Usage: berth-proxy start RUNDIR DEVICE\n", stderr);
	return 2;
}
