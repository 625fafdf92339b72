/* daemon/instance/proxy.c: proxy devices on the berthd side (see proxy.h, doc/proxy.md).
 *
 * Files in the container's run directory, one set per forwarding device DEV:
 *   proxy.DEV.spec  what the helper does (written here before each start of a helper)
 *   proxy.DEV.pid   the helper's pid, locked by the helper for as long as it lives
 *   proxy.DEV.log   the helper's log (kept after it stops)
 *   proxy.nft       the nft script last applied for the nat=true devices (its presence
 *                   says a table may exist and must be removed at stop)
 * A helper runs as long as its container: it ends by itself when the monitor goes, so a
 * berthd that is not there to stop it leaves nothing behind. */
#define LOG_CATEGORY "proxy"
#include "daemon/instance/proxy.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/pidfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/db/db.h"
#include "daemon/instance/common.h"
#include "daemon/instance/expand.h"
#include "daemon/proxy/addr.h"
#include "daemon/proxy/nft.h"
#include "daemon/runtime/launch.h"
#include "lib/json.h"
#include "lib/log.h"
#include "lib/spawn.h"
#include "lib/util.h"

/* ---- checks ---- */

static const char *const proxy_keys[] = {
	"type", "listen",	"connect",	"bind",		  "nat", "uid", "gid",
	"mode", "security.uid", "security.gid", "proxy_protocol",
};

static bool parse_bool(const char *v, bool *ret)
{
	static const char *const yes[] = {"true", "1", "yes", "on"};
	static const char *const no[] = {"false", "0", "no", "off", ""};

	for (size_t i = 0; i < ARRAY_SIZE(yes); i++)
		if (streq(v, yes[i]))
			return *ret = true;
	for (size_t i = 0; i < ARRAY_SIZE(no); i++)
		if (streq(v, no[i])) {
			*ret = false;
			return true;
		}
	return false;
}

static bool parse_u32(const char *v, int base, unsigned long max)
{
	char *end;
	unsigned long n;

	if (!*v || *v < '0' || *v > '9')
		return false;
	errno = 0;
	n = strtoul(v, &end, base);
	return !errno && !*end && n <= max;
}

static bool is_true(const json_t *dev, const char *key)
{
	const char *v = berth_json_string(dev, key);
	bool b = false;

	return v && parse_bool(v, &b) && b;
}

static int check_keys(const char *name, const json_t *dev, struct berth_error *err)
{
	const char *key;
	json_t *v;

	json_object_foreach((json_t *)dev, key, v) {
		const char *s = json_string_value(v);
		bool known = false, b;

		for (size_t i = 0; i < ARRAY_SIZE(proxy_keys); i++)
			known |= streq(key, proxy_keys[i]);
		if (!known)
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "Invalid device \"%s\": unknown proxy option \"%s\"",
					       name, key);
		if (!s)
			continue;
		if ((streq(key, "nat") || streq(key, "proxy_protocol")) && !parse_bool(s, &b))
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "Invalid device \"%s\": \"%s\" must be true or false",
					       name, key);
		if ((streq(key, "uid") || streq(key, "gid") || streq(key, "security.uid") ||
		     streq(key, "security.gid")) &&
		    *s && !parse_u32(s, 10, 0xfffffffeUL))
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "Invalid device \"%s\": \"%s\" must be a user or "
					       "group id",
					       name, key);
		if (streq(key, "mode") && *s && !parse_u32(s, 8, 07777))
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "Invalid device \"%s\": \"mode\" must be an octal "
					       "file mode such as 0644",
					       name);
	}
	return 0;
}

static int check_unsupported(const char *name, const json_t *dev, struct berth_error *err)
{
	const char *bind = berth_json_string(dev, "bind");
	const char *suid = berth_json_string(dev, "security.uid");
	const char *sgid = berth_json_string(dev, "security.gid");

	if (bind && *bind && !streq(bind, "host") && !streq(bind, "instance") &&
	    !streq(bind, "guest") && !streq(bind, "container"))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Invalid device \"%s\": invalid binding side given. Must "
				       "be \"host\" or \"instance\"",
				       name);
	if (bind && *bind && !streq(bind, "host") && is_true(dev, "nat"))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Invalid device \"%s\": only host-bound proxies can use NAT",
				       name);
	if (bind && *bind && !streq(bind, "host") &&
	    (*(berth_json_string(dev, "uid") ?: "") || *(berth_json_string(dev, "gid") ?: "")))
		return berth_error_set(err, -EOPNOTSUPP, BERTH_ERR_BAD_REQUEST,
				       "Invalid device \"%s\": uid and gid with bind=%s are not "
				       "supported yet",
				       name, bind);
	if ((suid && *suid && strtoul(suid, NULL, 10) != 0) ||
	    (sgid && *sgid && strtoul(sgid, NULL, 10) != 0))
		return berth_error_set(err, -EOPNOTSUPP, BERTH_ERR_BAD_REQUEST,
				       "Invalid device \"%s\": security.uid and security.gid "
				       "are not supported yet",
				       name);
	if (is_true(dev, "proxy_protocol"))
		return berth_error_set(err, -EOPNOTSUPP, BERTH_ERR_BAD_REQUEST,
				       "Invalid device \"%s\": proxy_protocol is not supported "
				       "yet",
				       name);
	return 0;
}

int proxy_device_check(const char *name, const json_t *dev, struct berth_error *err)
{
	struct proxy_addr listen = {0}, connect = {0};
	const char *l = berth_json_string(dev, "listen"), *c = berth_json_string(dev, "connect");
	bool has_unix_opts = false;
	char why[256];
	int r = check_keys(name, dev, err);

	if (r < 0)
		return r;
	if (!l || !*l || !c || !*c)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Invalid device \"%s\": proxy devices need \"listen\" and "
				       "\"connect\"",
				       name);
	r = check_unsupported(name, dev, err);
	if (r < 0)
		return r;
	r = proxy_addr_parse(l, &listen, why, sizeof(why));
	if (r < 0)
		return berth_error_set(err, r,
				       r == -ENOMEM ? BERTH_ERR_INTERNAL : BERTH_ERR_BAD_REQUEST,
				       "Invalid device \"%s\": listen: %s", name, why);
	r = proxy_addr_parse(c, &connect, why, sizeof(why));
	if (r < 0) {
		proxy_addr_release(&listen);
		return berth_error_set(err, r,
				       r == -ENOMEM ? BERTH_ERR_INTERNAL : BERTH_ERR_BAD_REQUEST,
				       "Invalid device \"%s\": connect: %s", name, why);
	}
	r = proxy_addr_check_pair(&listen, &connect, is_true(dev, "nat"), why, sizeof(why));
	for (size_t i = 0; i < 3; i++) {
		const char *v = berth_json_string(dev, (const char *[]){"uid", "gid", "mode"}[i]);
		has_unix_opts |= v && *v;
	}
	if (r == 0 && has_unix_opts && (listen.proto != PROXY_UNIX || listen.abstract)) {
		snprintf(why, sizeof(why),
			 "Only proxy devices for non-abstract unix sockets can "
			 "carry uid, gid, or mode properties");
		r = -EINVAL;
	}
	proxy_addr_release(&listen);
	proxy_addr_release(&connect);
	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_BAD_REQUEST, "Invalid device \"%s\": %s",
				       name, why);
	return 0;
}

/* ---- helpers ---- */

int proxy_helper_binary(char **ret)
{
	return berth_helper_binary("berth-proxy", "BERTH_PROXY", ret);
}

static char *dev_file(const char *rundir, const char *dev, const char *ext)
{
	return berth_strdup_printf("%s/proxy.%s.%s", rundir, dev, ext);
}

/* The helper's pid when one holds the lock on its pid file, else 0. */
static pid_t helper_pid(const char *rundir, const char *dev)
{
	_cleanup_free_ char *path = dev_file(rundir, dev, "pid");
	_cleanup_close_ int fd = path ? open(path, O_RDONLY | O_CLOEXEC) : -EBADF;
	char buf[32] = "";
	ssize_t n;

	if (fd < 0 || flock(fd, LOCK_SH | LOCK_NB) == 0 || errno != EWOULDBLOCK)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	return n > 0 ? (pid_t)strtol(buf, NULL, 10) : 0;
}

/* SIGTERM, up to 3 s to go, then SIGKILL. Removes the pid file and, when the helper could
 * not, its unix socket. */
static void helper_stop(const char *rundir, const char *dev)
{
	_cleanup_free_ char *pidpath = dev_file(rundir, dev, "pid");
	_cleanup_free_ char *specpath = dev_file(rundir, dev, "spec");
	_cleanup_free_ char *spec = NULL;
	pid_t pid = helper_pid(rundir, dev);

	if (pid > 0) {
		_cleanup_close_ int pidfd = pidfd_open(pid, 0);

		/* Still the locked helper once we hold its pidfd: not a reused pid. */
		if (pidfd >= 0 && helper_pid(rundir, dev) == pid) {
			struct pollfd pfd = {.fd = pidfd, .events = POLLIN};

			pidfd_send_signal(pidfd, SIGTERM, NULL, 0);
			if (poll(&pfd, 1, 3000) == 0) {
				log_warn(
					"The proxy helper of device \"%s\" ignored SIGTERM; killing it",
					dev);
				pidfd_send_signal(pidfd, SIGKILL, NULL, 0);
				poll(&pfd, 1, 1000);
			}
		}
	}
	if (pidpath)
		unlink(pidpath);
	/* A killed helper leaves its unix socket: remove it (only a socket). */
	if (specpath && berth_read_file(specpath, 1 << 16, &spec, NULL) >= 0) {
		char *l = strstr(spec, "listen=unix:/");
		struct stat st;

		if (l && (l == spec || l[-1] == '\n') && !strstr(spec, "bind=instance\n")) {
			l += strlen("listen=unix:");
			l[strcspn(l, "\n")] = '\0';
			if (lstat(l, &st) == 0 && S_ISSOCK(st.st_mode) && !helper_pid(rundir, dev))
				unlink(l);
		}
	}
}

static int helper_start(const char *rundir, const char *dev, struct berth_error *err)
{
	_cleanup_free_ char *bin = NULL;
	struct berth_error serr = {0};
	int r = proxy_helper_binary(&bin);

	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL,
				       "Cannot find berth-proxy (set BERTH_PROXY)");
	r = runtime_proxy_launch(rundir, dev, &serr);
	if (r < 0) {
		const char *msg = berth_error_msg(&serr, r);
		const char *colon = strstr(msg, "): ");

		berth_error_set(err, r, BERTH_ERR_BAD_REQUEST, "Failed to start device \"%s\": %s",
				dev, colon ? colon + 3 : msg);
		berth_error_release(&serr);
	}
	return r;
}

static char *render_spec(const json_t *dev)
{
	static const char *const keys[] = {"listen", "connect", "uid", "gid", "mode"};
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (!f)
		return NULL;
	const char *bind = berth_json_string(dev, "bind");

	for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
		const char *v = berth_json_string(dev, keys[i]);

		if (v && *v)
			fprintf(f, "%s=%s\n", keys[i], v);
	}
	/* LXD's legacy names for the instance side: "guest", "container". */
	if (bind && *bind && !streq(bind, "host"))
		fputs("bind=instance\n", f);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

/* Start the helper of `dev` unless one runs with the same spec. */
static int helper_ensure(const char *rundir, const char *name, const json_t *dev,
			 struct berth_error *err)
{
	_cleanup_free_ char *spec = render_spec(dev), *path = dev_file(rundir, name, "spec");
	_cleanup_free_ char *old = NULL;
	int r;

	if (!spec || !path)
		return -ENOMEM;
	if (helper_pid(rundir, name) > 0 && berth_read_file(path, 1 << 16, &old, NULL) >= 0 &&
	    streq(old, spec))
		return 0;
	helper_stop(rundir, name);
	r = berth_write_file_atomic(path, spec, strlen(spec), 0600);
	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "Cannot write \"%s\": %s", path,
				       strerror(-r));
	r = helper_start(rundir, name, err);
	if (r < 0)
		unlink(path);
	else
		log_info("Proxy device \"%s\" forwards %s to %s", name,
			 berth_json_string(dev, "listen"), berth_json_string(dev, "connect"));
	return r;
}

/* Each proxy.DEV.spec in the run directory whose DEV is not a forwarding device any more. */
static void helpers_prune(const char *rundir, const json_t *devices)
{
	DIR *dir = opendir(rundir);
	struct dirent *de;

	if (!dir)
		return;
	while ((de = readdir(dir))) {
		_cleanup_free_ char *dev = NULL;
		const json_t *d;
		size_t len = strlen(de->d_name);

		if (!berth_startswith(de->d_name, "proxy.") ||
		    !berth_endswith(de->d_name, ".spec") || len <= strlen("proxy..spec"))
			continue;
		dev = strndup(de->d_name + 6, len - 6 - 5);
		if (!dev)
			continue;
		d = devices ? json_object_get(devices, dev) : NULL;
		if (d && streq(berth_json_string(d, "type") ?: "", "proxy") && !is_true(d, "nat"))
			continue;
		helper_stop(rundir, dev);
		unlinkat(dirfd(dir), de->d_name, 0);
		log_info("Proxy device \"%s\" stopped", dev);
	}
	closedir(dir);
}

/* ---- nat ---- */

/* The static address of the instance's NIC that a nat device connects to: the one equal
 * to the connect address, or the first of the right family when that is the wildcard. */
static int nat_target(const char *name, const json_t *devices, struct proxy_addr *connect,
		      struct berth_error *err)
{
	const char *key = connect->family == AF_INET6 ? "ipv6.address" : "ipv4.address";
	int v = connect->family == AF_INET6 ? 6 : 4;
	const char *dname;
	char ip[INET6_ADDRSTRLEN];
	json_t *dev;

	json_object_foreach((json_t *)devices, dname, dev) {
		const char *type = berth_json_string(dev, "type");
		const char *nictype = berth_json_string(dev, "nictype");
		const char *addr = berth_json_string(dev, key);
		struct proxy_addr a = {0};
		_cleanup_free_ char *text = NULL;

		if (!type || !streq(type, "nic") || !addr || !*addr)
			continue;
		if (!berth_json_string(dev, "network") &&
		    !(nictype && (streq(nictype, "bridged") || streq(nictype, "routed"))))
			continue;
		text = berth_strdup_printf(v == 6 ? "tcp:[%s]:1" : "tcp:%s:1", addr);
		if (!text)
			return -ENOMEM;
		if (proxy_addr_parse(text, &a, NULL, 0) < 0)
			continue;
		proxy_addr_release(&a);
		if (!proxy_addr_is_wildcard(connect) &&
		    memcmp(&a.ip, &connect->ip, v == 6 ? sizeof(a.ip.v6) : sizeof(a.ip.v4)) != 0)
			continue;
		connect->ip = a.ip;
		return 0;
	}
	if (proxy_addr_is_wildcard(connect))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Failed to start device \"%s\": Instance has no static "
				       "IPv%d address assigned to be used as the connect IP",
				       name, v);
	return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
			       "Failed to start device \"%s\": Connect IP \"%s\" must be one of "
			       "the instance's static IPv%d addresses (%s of a NIC on a managed "
			       "bridge)",
			       name, proxy_addr_ip_string(connect, ip), v, key);
}

static int nft_apply(const char *rundir, const char *script, struct berth_error *err)
{
	_cleanup_free_ char *path = berth_strdup_printf("%s/proxy.nft", rundir);
	const char *argv[] = {"nft", "-f", path, NULL};
	_cleanup_(berth_spawn_release) struct berth_spawn s = {
		.argv = argv,
		.io = {BERTH_SPAWN_NULL, BERTH_SPAWN_DEFAULT, BERTH_SPAWN_TO_STDOUT},
		.timeout_ms = 60000,
	};
	int r;

	if (!path)
		return -ENOMEM;
	r = berth_write_file_atomic(path, script, strlen(script), 0600);
	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "Cannot write \"%s\": %s", path,
				       strerror(-r));
	return berth_spawn_run(&s, err);
}

static void nat_rules_free(struct proxy_nat_rule *rules, struct proxy_addr *addrs, size_t n)
{
	for (size_t i = 0; i < 2 * n; i++)
		proxy_addr_release(&addrs[i]);
	free(addrs);
	free(rules);
}

static int nat_sync(struct berth_daemon *d, const char *project, const char *name,
		    const char *rundir, const json_t *devices, struct berth_error *err)
{
	_cleanup_free_ char *table = proxy_nft_table(d->dir, project, name);
	_cleanup_free_ char *script = NULL, *marker = berth_strdup_printf("%s/proxy.nft", rundir);
	size_t n = 0, cap = devices ? json_object_size(devices) : 0;
	struct proxy_nat_rule *rules = calloc(cap + 1, sizeof(*rules));
	struct proxy_addr *addrs = calloc(2 * cap + 1, sizeof(*addrs));
	const char *dname;
	json_t *dev;
	int r = 0;

	if (!table || !marker || !rules || !addrs) {
		nat_rules_free(rules, addrs, 0);
		return -ENOMEM;
	}
	json_object_foreach((json_t *)devices, dname, dev) {
		const char *type = berth_json_string(dev, "type");

		if (!type || !streq(type, "proxy") || !is_true(dev, "nat"))
			continue;
		if (proxy_addr_parse(berth_json_string(dev, "listen") ?: "", &addrs[2 * n], NULL,
				     0) < 0 ||
		    proxy_addr_parse(berth_json_string(dev, "connect") ?: "", &addrs[2 * n + 1],
				     NULL, 0) < 0) {
			r = berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					    "Invalid device \"%s\"", dname);
			break;
		}
		rules[n] = (struct proxy_nat_rule){dname, &addrs[2 * n], &addrs[2 * n + 1]};
		n++;
		r = nat_target(dname, devices, &addrs[2 * n - 1], err);
		if (r < 0)
			break;
	}
	if (r < 0) {
		nat_rules_free(rules, addrs, cap);
		return r;
	}
	if (n == 0 && access(marker, F_OK) < 0) {
		nat_rules_free(rules, addrs, cap);
		return 0; /* no table was ever made */
	}
	script = proxy_nft_script(table, project, name, rules, n);
	nat_rules_free(rules, addrs, cap);
	if (!script)
		return -ENOMEM;
	r = nft_apply(rundir, script, err);
	if (r < 0)
		return berth_error_wrap(err, r, "Cannot set up the nat proxy rules");
	if (n == 0)
		unlink(marker);
	return 0;
}

void proxy_rundir_release(const char *rundir)
{
	_cleanup_free_ char *marker = berth_strdup_printf("%s/proxy.nft", rundir);
	_cleanup_free_ char *buf = NULL, *script = NULL;
	struct berth_error err = {0};
	char table[64];
	size_t len = 0;
	int r;

	if (!marker || berth_read_file(marker, 1 << 20, &buf, &len) < 0)
		return;
	/* its first line declares the table: "table inet berth_proxy_<16 hex digits> {}" */
	if (sscanf(buf, "table inet %63[a-z0-9_] {}", table) != 1 ||
	    strncmp(table, "berth_proxy_", 12) != 0) {
		log_warn("\"%s\" names no nat table of berth's, ignoring", marker);
		return;
	}
	script = berth_strdup_printf("table inet %s {}\ndelete table inet %s\n", table, table);
	r = script ? nft_apply(rundir, script, &err) : -ENOMEM;
	if (r < 0)
		log_warn("Cannot remove the nat table %s: %s, ignoring", table,
			 berth_error_msg(&err, r));
	else
		unlink(marker);
	berth_error_release(&err);
}

/* ---- entry points ---- */

int proxy_sync(struct berth_daemon *d, const char *project, const char *name, const json_t *devices,
	       struct berth_error *err)
{
	_cleanup_free_ char *rundir = container_rundir(d, project, name);
	const char *dname;
	json_t *dev;
	int first = 0;

	if (!rundir)
		return -ENOMEM;
	helpers_prune(rundir, devices);
	json_object_foreach((json_t *)devices, dname, dev) {
		const char *type = berth_json_string(dev, "type");
		int r;

		if (!type || !streq(type, "proxy") || is_true(dev, "nat"))
			continue;
		r = helper_ensure(rundir, dname, dev, first < 0 ? NULL : err);
		if (r < 0 && first == 0)
			first = r;
	}
	{
		int r = nat_sync(d, project, name, rundir, devices, first < 0 ? NULL : err);
		if (r < 0 && first == 0)
			first = r;
	}
	return first;
}

int proxy_instance_updated(struct berth_daemon *d, const char *project, const char *name,
			   struct berth_error *err)
{
	json_auto_t *inst = NULL;
	int r = instance_expand_load(d->db, project, name, &inst, err);

	if (r < 0)
		return r;
	return proxy_sync(d, project, name, json_object_get(inst, "expanded_devices"), err);
}

void proxy_stop_all(struct berth_daemon *d, const char *project, const char *name)
{
	_cleanup_free_ char *rundir = container_rundir(d, project, name);
	struct berth_error err = {0};

	if (!rundir)
		return;
	helpers_prune(rundir, NULL);
	if (nat_sync(d, project, name, rundir, NULL, &err) < 0)
		log_warn("Cannot remove the nat proxy rules of \"%s\": %s, ignoring", name,
			 berth_error_msg(&err, -EIO));
	berth_error_release(&err);
}
