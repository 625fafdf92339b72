/* daemon/main.c: berthd's entry point: options, the state directory, the unix
 * socket, the loop, and a clean shutdown on SIGTERM/SIGINT. */
#define LOG_CATEGORY "berthd"
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <locale.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "daemon/api/api.h"
#include "daemon/instance/volume.h"
#include "daemon/api/stdio_socket.h"
#include "daemon/cluster.h"
#include "daemon/daemon.h"
#include "daemon/db/db.h"
#include "daemon/instance/cleanup.h"
#include "daemon/instance/container.h"
#include "daemon/instance/backup.h"
#include "daemon/image_cache.h"
#include "daemon/image_secret.h"
#include "daemon/instance/snapshot.h"
#include "daemon/instance/expand.h"
#include "daemon/network/managed.h"
#include "daemon/storage/pools.h"
#include "daemon/host.h"
#include "daemon/https.h"
#include "daemon/trust.h"
#include "daemon/warnings.h"
#include "daemon/worker.h"
#include "images/store.h"
#include "lib/json.h"
#include "lib/log.h"
#include "lib/util.h"

struct options {
	bool debug;
	const char *group;
	/* The API socket systemd passed us (berthd.socket), or -EBADF. */
	int listen_fd;
};

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: berthd [OPTIONS]\n"
		"\n"
		"The berth daemon: manages system containers and virtual machines and serves\n"
		"LXD's REST API (1.0) on $BERTH_DIR/unix.socket.\n"
		"\n"
		"Options:\n"
		"  -d, --debug        log debug messages\n"
		"  -g, --group NAME   group owning the socket (default: berth)\n"
		"  -V, --version      print the version and exit\n"
		"  -h, --help         print this help and exit\n"
		"\n"
		"Environment:\n"
		"  BERTH_DIR                    state directory (default: %s)\n"
		"  BERTH_HTTP_IDLE_TIMEOUT      seconds an idle client connection is kept (60)\n"
		"  BERTH_HTTP_REQUEST_TIMEOUT   seconds a request may take to arrive (30)\n"
		"  BERTH_QEMU                   QEMU for VMs (default: qemu-system-x86_64 in PATH)\n"
		"  LISTEN_PID, LISTEN_FDS       socket activation: fd 3, bound to the socket's\n"
		"                               path, is served instead of a socket of our own\n",
		BERTH_DEFAULT_DIR);
}

static int parse_options(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{"debug", no_argument, NULL, 'd'},
		{"group", required_argument, NULL, 'g'},
		{"version", no_argument, NULL, 'V'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int c;

	o->group = "berth";
	while ((c = getopt_long(argc, argv, "dg:Vh", longopts, NULL)) != -1) {
		switch (c) {
		case 'd':
			o->debug = true;
			break;
		case 'g':
			o->group = optarg;
			break;
		case 'V':
			printf("%s\n", BERTH_VERSION);
			return 1;
		case 'h':
			usage(stdout);
			return 1;
		default:
			fprintf(stderr, "Try 'berthd --help' for more information.\n");
			return -EINVAL;
		}
	}
	if (optind < argc) {
		fprintf(stderr,
			"berthd: unexpected argument '%s'\n"
			"Try 'berthd --help' for more information.\n",
			argv[optind]);
		return -EINVAL;
	}
	return 0;
}

static uint64_t env_seconds(const char *name, uint64_t def_ms)
{
	const char *v = getenv(name);
	char *end;
	double s;

	if (!v || !*v)
		return def_ms;
	s = strtod(v, &end);
	if (*end || s <= 0) {
		log_warn("Invalid %s=\"%s\", ignoring", name, v);
		return def_ms;
	}
	return (uint64_t)(s * 1000);
}

/* One daemon per state directory: an exclusive lock held for our lifetime. */
static int lock_dir(const char *dir, int *ret_fd)
{
	_cleanup_free_ char *path = berth_strdup_printf("%s/.lock", dir);
	int fd;

	if (!path)
		return -ENOMEM;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return log_error_errno(-errno, "Cannot open \"%s\"", path);
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		close(fd);
		return log_error_errno(-EBUSY, "Another berthd is already using \"%s\"", dir);
	}
	*ret_fd = fd;
	return 0;
}

static int open_socket(const char *path, const char *group)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	_cleanup_close_ int fd = -EBADF;
	struct group *gr;

	if (strlen(path) >= sizeof(sa.sun_path))
		return log_error_errno(-ENAMETOOLONG, "Socket path \"%s\" is too long", path);
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return log_error_errno(-errno, "socket()");
	/* We hold the directory lock, so a socket file left here is stale. */
	if (unlink(path) < 0 && errno != ENOENT)
		return log_error_errno(-errno, "Cannot remove stale socket \"%s\"", path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return log_error_errno(-errno, "Cannot bind \"%s\"", path);
	gr = getgrnam(group);
	if (!gr)
		log_warn("Group \"%s\" does not exist, socket is owned by root only, ignoring",
			 group);
	else if (chown(path, 0, gr->gr_gid) < 0)
		log_warn_errno(-errno, "Cannot give \"%s\" to group \"%s\", ignoring", path, group);
	if (chmod(path, 0660) < 0)
		return log_error_errno(-errno, "Cannot chmod \"%s\"", path);
	if (listen(fd, 511) < 0)
		return log_error_errno(-errno, "listen()");
	return TAKE_FD(fd);
}

/* Socket activation (sd_listen_fds(3)'s protocol, by hand): the first fd passed, 3, when
 * LISTEN_PID names us. The variables are dropped so that nothing we spawn sees them. */
static int activation_take_fd(void)
{
	const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
	struct stat st;
	int fd = 3;

	if (!pid || !fds)
		return -EBADF;
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	if (strtol(pid, NULL, 10) != (long)getpid() || strtol(fds, NULL, 10) < 1)
		return -EBADF;
	if (fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode)) {
		log_warn("LISTEN_FDS is set but fd 3 is not a socket, ignoring");
		return -EBADF;
	}
	return fd;
}

/* The socket systemd passed, if it is the unix stream socket listening on @path. */
static int adopt_socket(int fd, const char *path)
{
	struct sockaddr_un sa = {0};
	socklen_t len = sizeof(sa);
	int type = 0, listening = 0;
	socklen_t optlen = sizeof(int);

	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &optlen) < 0 || type != SOCK_STREAM)
		return log_error_errno(-EINVAL, "The socket systemd passed is not a stream socket");
	optlen = sizeof(int);
	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &optlen) < 0 || !listening)
		return log_error_errno(-EINVAL, "The socket systemd passed is not listening");
	if (getsockname(fd, (struct sockaddr *)&sa, &len) < 0)
		return log_error_errno(-errno, "getsockname()");
	if (sa.sun_family != AF_UNIX || strncmp(sa.sun_path, path, sizeof(sa.sun_path)) != 0)
		return log_error_errno(-EINVAL,
				       "The socket systemd passed is not \"%s\" (ListenStream=)",
				       path);
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0 ||
	    fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
		return log_error_errno(-errno, "fcntl()");
	log_info("Listening on \"%s\" passed by systemd", path);
	return fd;
}

/* Tell systemd we are ready (Type=notify), when it asked. */
static void notify_ready(void)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	_cleanup_close_ int fd = -EBADF;
	socklen_t len;

	if (!path || !*path || strlen(path) >= sizeof(sa.sun_path))
		return;
	strcpy(sa.sun_path, path);
	if (sa.sun_path[0] == '@')
		sa.sun_path[0] = '\0';
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path));
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd >= 0)
		sendto(fd, "READY=1", 7, MSG_NOSIGNAL, (struct sockaddr *)&sa, len);
}

static void log_to_events(enum berth_log_level level, const char *category, const char *msg,
			  void *data)
{
	struct berth_daemon *d = data;

	events_emit(d->events, EVENT_LOGGING, NULL,
		    json_pack("{s:s, s:s, s:{s:s}}", "message", msg, "level",
			      berth_log_level_name(level), "context", "category", category));
}

/* glibc's defaults give each worker thread its own arena and return memory to
 * the kernel after every large response, only to fault it back in for the next
 * one: a 1,000-instance listing spent most of its time in page faults. One
 * arena with a high trim threshold keeps large responses fast; a periodic trim
 * after activity hands the memory back once the burst is over, with the database
 * connections the burst opened. */
#define TRIM_INTERVAL_MS 30000

static void malloc_setup(void)
{
	mallopt(M_ARENA_MAX, 1);
	mallopt(M_TRIM_THRESHOLD, 32 << 20);
	mallopt(M_TOP_PAD, 4 << 20);
	mallopt(M_MMAP_THRESHOLD, 32 << 20);
}

static void on_trim_timer(uv_timer_t *t)
{
	struct berth_daemon *d = t->data;

	if (d->requests_since_trim == 0)
		return;
	d->requests_since_trim = 0;
	/* Connections a burst opened hold SQLite's page cache: keep one. */
	db_trim(d->db, 1);
	malloc_trim(0);
}

struct shutdown_state {
	struct berth_daemon *d;
	uv_signal_t sigterm, sigint;
	uv_timer_t trim;
	uv_timer_t tick; /* snapshot schedules and expiry, pool space, at each minute's start */
	bool stopping;
};

/* Arm the tick for just after the next minute starts, so that cron schedules see every
 * minute once. */
static void tick_arm(uv_timer_t *t);

static void on_tick(uv_timer_t *t)
{
	time_t now = time(NULL);

	snapshots_tick(t->data, now - now % 60);
	warnings_tick(t->data);
	backups_tick(t->data);
	images_tick(t->data);
	tick_arm(t);
}

static void tick_arm(uv_timer_t *t)
{
	struct timespec ts;
	uint64_t ms;
	/* A test hook: tick every N ms instead (the schedule then sees the current minute
	 * several times). */
	const char *every = getenv("BERTH_SNAPSHOT_TICK_MS");

	if (every && atoi(every) > 0) {
		uv_timer_start(t, on_tick, (uint64_t)atoi(every), 0);
		return;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	ms = (uint64_t)(ts.tv_sec % 60) * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	uv_timer_start(t, on_tick, 60000 - ms + 100, 0);
}

static void on_http_closed(void *data)
{
	struct shutdown_state *s = data;

	log_debug("All connections closed");
	events_hub_close(s->d->events);
}

static void on_signal(uv_signal_t *h, int signum)
{
	struct shutdown_state *s = h->data;

	if (s->stopping)
		return;
	s->stopping = true;
	log_info("Received %s, shutting down", strsignal(signum));
	berth_log_set_hook(NULL, NULL);
	operation_registry_shutdown(s->d->ops);
	stdio_socket_close(s->d->stdio);
	container_watcher_close(s->d->containers);
	if (s->d->trust)
		trust_shutdown(s->d->trust);
	image_secret_shutdown();
	https_close(s->d->https);
	https_close(s->d->metrics_https);
	berth_http_server_close(s->d->http, on_http_closed, s);
	uv_close((uv_handle_t *)&s->sigterm, NULL);
	uv_close((uv_handle_t *)&s->sigint, NULL);
	uv_close((uv_handle_t *)&s->trim, NULL);
	uv_close((uv_handle_t *)&s->tick, NULL);
}

static int image_known(const char *fingerprint, bool *ret, void *data)
{
	struct db *db = data;

	return db_image_fingerprint_used(db, fingerprint, ret, NULL);
}

/* Image files that no row records are what an import killed mid-way leaves. */
static int reconcile_images(struct db *db, const char *dir)
{
	struct berth_error err = {0};
	_cleanup_free_ char *images = berth_strdup_printf("%s/images", dir);
	int r;

	if (!images)
		return -ENOMEM;
	r = image_store_reconcile(images, image_known, db, &err);
	if (r < 0) {
		log_warn("Cannot reconcile the image store: %s, ignoring",
			 berth_error_msg(&err, r));
		berth_error_release(&err);
	} else if (r > 0) {
		log_info("Removed %d image files that no image record names", r);
	}
	return 0;
}

/* The trust store and the HTTPS listeners on core.https_address and core.metrics_address,
 * if set. */
static int https_setup(struct berth_daemon *d, const struct berth_http_limits *limits)
{
	struct berth_error err = {0};
	json_auto_t *config = NULL;
	int r;

	r = trust_new(d->db, d->loop, &d->trust);
	if (r < 0)
		return log_error_errno(r, "Cannot read the trust store");
	r = db_server_config_get(d->db, &config, &err);
	if (r < 0) {
		log_error("Cannot read the server configuration: %s", berth_error_msg(&err, r));
		berth_error_release(&err);
		return r;
	}
	r = https_new(d, limits, berth_json_string(config, "core.https_address"), &d->https);
	if (r < 0)
		return log_error_errno(r, "Cannot set up the HTTPS endpoint");
	r = https_new_metrics(d, limits, berth_json_string(config, "core.metrics_address"),
			      &d->metrics_https);
	if (r < 0)
		return log_error_errno(r, "Cannot set up the metrics endpoint");
	return 0;
}

static int daemon_setup(struct berth_daemon *d, const struct options *o)
{
	_cleanup_free_ char *db_path = NULL;
	_cleanup_free_ char *pool_path = NULL;
	struct berth_error err = {0};
	struct berth_http_limits limits;
	bool fresh;
	int r, fd;

	r = berth_mkdir_p(d->dir, 0711);
	if (r < 0)
		return log_error_errno(r, "Cannot create \"%s\"", d->dir);
	db_path = berth_strdup_printf("%s/database", d->dir);
	pool_path = berth_strdup_printf("%s/storage-pools/default", d->dir);
	d->socket_path = berth_strdup_printf("%s/unix.socket", d->dir);
	d->stdio_path = berth_strdup_printf("%s/stdio.socket", d->dir);
	if (!db_path || !pool_path || !d->socket_path || !d->stdio_path)
		return -ENOMEM;
	r = berth_mkdir_p(db_path, 0700);
	if (r >= 0)
		r = berth_mkdir_p(pool_path, 0711);
	if (r < 0)
		return log_error_errno(r, "Cannot create the state directories in \"%s\"", d->dir);
	free(db_path);
	db_path = berth_strdup_printf("%s/database/berth.db", d->dir);
	if (!db_path)
		return -ENOMEM;
	fresh = access(db_path, F_OK) < 0;
	r = https_certificate_ensure(d->dir);
	if (r < 0)
		return r;
	r = cluster_open_db(d, db_path, pool_path, &err);
	if (r < 0) {
		log_error("Cannot open the database \"%s\": %s", db_path, berth_error_msg(&err, r));
		berth_error_release(&err);
		return r;
	}
	/* A clustered server has no berth.db (retired at enable): not a fresh one. */
	fresh = fresh && !cluster_enabled(d);
	r = reconcile_images(d->db, d->dir);
	if (r < 0)
		return r;
	/* A pool that fails to mount is logged; the others and the API still work. */
	storage_pools_mount(d->db, d->dir, true);
	/* Networks before containers: re-attached ones keep their NICs on the bridges.
	 * A fresh database gets the default network (a failure is only a warning). */
	network_startup(d, fresh);
	d->environment = host_environment_probe();
	if (!d->environment)
		return -ENOMEM;
	warnings_host(d->db, d->environment);
	r = events_hub_new(d->loop, &d->events);
	if (r < 0)
		return r;
	r = operation_registry_new(d->loop, d->events, &d->ops);
	if (r < 0)
		return r;
	r = worker_pool_new(d->loop, "berth-api", API_REQUEST_WORKERS, &d->requests);
	if (r < 0)
		return r;
	r = container_watcher_new(d, &d->containers);
	if (r < 0)
		return r;
	/* Containers that kept running while berthd was down are re-attached, dead ones
	 * cleaned up, before anything is served. */
	container_reconcile(d);
	/* What a crash left of deleted instances (run and log directories, cgroups). */
	cleanup_reconcile(d);
	/* Snapshots that expired while berthd was down go before anything is served. */
	snapshots_prune(d);
	/* Backups too, and what a crash left of one being created. */
	backups_prune(d, true);
	d->spool_dir = berth_strdup_printf("%s/tmp", d->dir);
	if (!d->spool_dir)
		return -ENOMEM;
	r = berth_mkdir_p(d->spool_dir, 0700);
	if (r < 0)
		return log_error_errno(r, "Cannot create \"%s\"", d->spool_dir);
	backup_leftovers_remove(d, d->spool_dir);
	berth_http_limits_default(&limits);
	limits.spool_dir = d->spool_dir;
	limits.spool_url = api_spool_url;
	limits.idle_timeout_ms = env_seconds("BERTH_HTTP_IDLE_TIMEOUT", limits.idle_timeout_ms);
	limits.request_timeout_ms = env_seconds("BERTH_HTTP_REQUEST_TIMEOUT",
						limits.request_timeout_ms);
	r = berth_http_server_new(d->loop, &limits, api_handle, d, &d->http);
	if (r < 0)
		return r;
	berth_http_server_set_error_hook(d->http, api_log_error_response, NULL);
	if (o->listen_fd >= 0)
		fd = adopt_socket(o->listen_fd, d->socket_path);
	else
		fd = open_socket(d->socket_path, o->group);
	if (fd < 0)
		return fd;
	r = berth_http_server_listen_fd(d->http, fd);
	if (r < 0)
		return log_error_errno(r, "Cannot listen on \"%s\"", d->socket_path);
	r = image_secret_init(d->loop);
	if (r < 0)
		return log_error_errno(r, "Cannot set up image secrets");
	r = https_setup(d, &limits);
	if (r < 0)
		return r;
	fd = open_socket(d->stdio_path, o->group);
	if (fd < 0)
		return fd;
	r = stdio_socket_new(d->loop, d->ops, fd, &d->stdio);
	if (r < 0)
		return log_error_errno(r, "Cannot listen on \"%s\"", d->stdio_path);
	return 0;
}

/* Containers outlive berthd: their root filesystems stay where they are, so the pools
 * under them must stay mounted when berthd stops. */
static bool any_container_running(struct db *db)
{
	json_auto_t *list = NULL;
	json_t *inst;
	size_t i;

	if (db_instance_list(db, NULL, &list, NULL) < 0)
		return true;
	json_array_foreach(list, i, inst) {
		json_int_t code = json_integer_value(json_object_get(inst, "status_code"));

		if (code != 102 /* Stopped */)
			return true;
	}
	return false;
}

int main(int argc, char **argv)
{
	struct berth_daemon d = {0};
	struct shutdown_state s = {.d = &d};
	struct options o = {.listen_fd = -EBADF};
	_cleanup_close_ int lock_fd = -EBADF;
	const char *dir;
	int r;

	r = parse_options(argc, argv, &o);
	if (r != 0)
		return r > 0 ? 0 : 2;
	malloc_setup();
	berth_log_set_level(o.debug ? BERTH_LOG_DEBUG : BERTH_LOG_INFO);
	/* Whatever locale we were started in: libarchive reads pax names as UTF-8 and then
	 * converts them to the locale's charset, warning when it cannot. Names are bytes
	 * either way (images/unpack.c keeps them as the tarball has them); a UTF-8 LC_CTYPE
	 * only spares the warning for UTF-8 names. Nothing else here depends on LC_CTYPE. */
	if (!setlocale(LC_CTYPE, "C.UTF-8") && !setlocale(LC_CTYPE, "C.utf8"))
		log_debug("No C.UTF-8 locale: image file names are read in the C locale");
	signal(SIGPIPE, SIG_IGN);
	o.listen_fd = activation_take_fd();
	/* What we inherited beyond stdio (a shell's or a service manager's fds) must not
	 * reach the helpers we spawn, nor through them a container. */
	close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
	dir = getenv("BERTH_DIR");
	d.dir = strdup(dir && *dir ? dir : BERTH_DEFAULT_DIR);
	d.loop = uv_default_loop();
	if (!d.dir)
		return 1;
	r = berth_mkdir_p(d.dir, 0711);
	if (r < 0) {
		log_error_errno(r, "Cannot create \"%s\"", d.dir);
		return 1;
	}
	r = lock_dir(d.dir, &lock_fd);
	if (r < 0)
		return 1;
	r = daemon_setup(&d, &o);
	if (r < 0)
		return 1;
	uv_signal_init(d.loop, &s.sigterm);
	uv_signal_init(d.loop, &s.sigint);
	s.sigterm.data = s.sigint.data = &s;
	uv_signal_start(&s.sigterm, on_signal, SIGTERM);
	uv_signal_start(&s.sigint, on_signal, SIGINT);
	uv_timer_init(d.loop, &s.trim);
	s.trim.data = &d;
	uv_timer_start(&s.trim, on_trim_timer, TRIM_INTERVAL_MS, TRIM_INTERVAL_MS);
	uv_timer_init(d.loop, &s.tick);
	s.tick.data = &d;
	tick_arm(&s.tick);
	berth_log_set_hook(log_to_events, &d);
	log_info("berthd %s ready on \"%s\"", BERTH_VERSION, d.socket_path);
	notify_ready();

	uv_run(d.loop, UV_RUN_DEFAULT);

	log_info("Stopped");
	events_hub_free(d.events);
	berth_http_server_free(d.http);
	https_free(d.https);
	https_free(d.metrics_https);
	operation_registry_free(d.ops);
	worker_pool_free(d.requests);
	container_watcher_free(d.containers);
	container_cleanup_cgroups(&d);
	if (any_container_running(d.db))
		log_info("Leaving storage pools mounted: containers run on them");
	else
		storage_pools_mount(d.db, d.dir, false);
	/* A socket systemd passed is systemd's: it listens on it again once we are gone. */
	if (o.listen_fd < 0)
		unlink(d.socket_path);
	if (d.stdio_path)
		unlink(d.stdio_path);
	instance_expand_cache_release();
	trust_free(d.trust);
	db_close(d.db);
	cluster_free(d.cluster); /* after the database: its connections go to the node */
	json_decref(d.environment);
	uv_loop_close(d.loop);
	free(d.socket_path);
	free(d.stdio_path);
	free(d.spool_dir);
	free(d.dir);
	return 0;
}
