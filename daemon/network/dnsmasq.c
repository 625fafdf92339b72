/* daemon/network/dnsmasq.c: one dnsmasq per managed network, for DHCP (v4, and v6
 * with router advertisements) and DNS under the network's domain ("berth": an
 * instance is NAME.berth).
 *
 * berthd writes $BERTH_DIR/networks/NAME/dnsmasq.conf and runs
 * `dnsmasq --conf-file=<that>`; dnsmasq daemonizes and records its PID in
 * dnsmasq.pid. It outlives berthd like containers do. A dnsmasq is ours when the
 * PID file names a process whose command line is exactly that: then it is
 * re-adopted at start (and kept when its config did not change), otherwise a new one
 * is started. Leases stay in dnsmasq.leases across restarts; NIC host entries are
 * files under dnsmasq.hosts/, re-read on SIGHUP. */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "daemon/network/internal.h"
#include "lib/macros.h"
#include "lib/util.h"

#define DNSMASQ_LEASE_TIME "1h"

static int oom(struct berth_error *err)
{
	return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "Out of memory");
}

/* The PID of network `name`'s dnsmasq when it runs, else 0. */
static pid_t dnsmasq_pid(struct berth_daemon *d, const char *name)
{
	_cleanup_free_ char *pidfile = network_path(d, name, "dnsmasq.pid");
	_cleanup_free_ char *conf = network_path(d, name, "dnsmasq.conf");
	_cleanup_free_ char *text = NULL, *cmdline_path = NULL, *cmdline = NULL;
	_cleanup_free_ char *want = NULL;
	size_t len = 0;
	long pid;

	if (!pidfile || !conf || berth_read_file(pidfile, 64, &text, &len) < 0)
		return 0;
	pid = strtol(text, NULL, 10);
	if (pid <= 1)
		return 0;
	cmdline_path = berth_strdup_printf("/proc/%ld/cmdline", pid);
	want = berth_strdup_printf("dnsmasq%c--conf-file=%s", '\0', conf);
	if (!cmdline_path || !want || berth_read_file(cmdline_path, 4096, &cmdline, &len) < 0)
		return 0;
	/* argv[0] may be a full path: compare from its basename on. */
	{
		const char *base = strrchr(cmdline, '/');
		size_t want_len = strlen("dnsmasq") + 1 + strlen(conf) + strlen("--conf-file=");
		const char *start = base && (size_t)(base - cmdline) < strlen(cmdline) ? base + 1
										       : cmdline;
		size_t rest = len - (size_t)(start - cmdline);

		if (rest < want_len || memcmp(start, want, want_len) != 0)
			return 0;
	}
	return (pid_t)pid;
}

int network_dnsmasq_stop(struct berth_daemon *d, const char *name)
{
	pid_t pid = dnsmasq_pid(d, name);
	_cleanup_free_ char *pidfile = network_path(d, name, "dnsmasq.pid");
	_cleanup_close_ int pfd = -EBADF;

	if (pid <= 0)
		return 0;
	/* Not our child (it daemonized): its pidfd tells when it is gone, zombie or not. */
	pfd = (int)syscall(SYS_pidfd_open, pid, 0);
	kill(pid, SIGTERM);
	if (pfd >= 0) {
		struct pollfd p = {.fd = pfd, .events = POLLIN};

		if (poll(&p, 1, 2000) == 0)
			kill(pid, SIGKILL);
	}
	if (pidfile)
		unlink(pidfile);
	return 0;
}

void network_dnsmasq_reload(struct berth_daemon *d, const char *name)
{
	pid_t pid = dnsmasq_pid(d, name);

	if (pid > 0)
		kill(pid, SIGHUP);
}

static void addr_text(int family, const void *addr, char *buf)
{
	inet_ntop(family, addr, buf, INET6_ADDRSTRLEN);
}

/* The default DHCP range: the subnet without its first two and last addresses. */
static void default_range(const struct network_conf *c, char *first, char *last)
{
	uint32_t a = ntohl(c->addr4.s_addr);
	uint32_t mask = c->prefix4 ? 0xffffffffu << (32 - c->prefix4) : 0;
	struct in_addr f = {htonl((a & mask) + 2)}, l = {htonl((a | ~mask) - 1)};

	addr_text(AF_INET, &f, first);
	addr_text(AF_INET, &l, last);
}

/* dnsmasq.conf's text for `c`. */
static char *dnsmasq_conf(struct berth_daemon *d, const struct network_conf *c)
{
	_cleanup_free_ char *dir = network_path(d, c->name, NULL);
	_cleanup_free_ char *ranges = NULL;
	char a4[INET6_ADDRSTRLEN] = "", a6[INET6_ADDRSTRLEN] = "";
	char *conf;

	if (!dir)
		return NULL;
	if (c->has4)
		addr_text(AF_INET, &c->addr4, a4);
	if (c->has6)
		addr_text(AF_INET6, &c->addr6, a6);
	if (c->dhcp4 && c->ranges4) {
		_cleanup_free_ char *copy = strdup(c->ranges4);
		char *save = NULL;

		ranges = strdup("");
		if (!copy || !ranges)
			return NULL;
		for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
			char *dash = strchr(t, '-'), *more;
			if (!dash)
				continue;
			*dash = '\0';
			more = berth_strdup_printf("%sdhcp-range=%s,%s," DNSMASQ_LEASE_TIME "\n",
						   ranges, t, dash + 1);
			free(ranges);
			ranges = more;
			if (!ranges)
				return NULL;
		}
	} else if (c->dhcp4) {
		char first[INET6_ADDRSTRLEN], last[INET6_ADDRSTRLEN];

		default_range(c, first, last);
		ranges = berth_strdup_printf("dhcp-range=%s,%s," DNSMASQ_LEASE_TIME "\n", first,
					     last);
		if (!ranges)
			return NULL;
	}
	/* dnsmasq stays root: the state directory may sit under a private (0700) parent. */
	conf = berth_strdup_printf(
		"# Written by berthd for network \"%1$s\": changes are overwritten.\n"
		"pid-file=%2$s/dnsmasq.pid\n"
		"user=root\n"
		"strict-order\n"
		"bind-interfaces\n"
		"interface=%1$s\n"
		"except-interface=lo\n"
		"no-resolv\n"
		"no-hosts\n"
		"no-ping\n"
		"no-negcache\n"
		"dhcp-no-override\n"
		"dhcp-authoritative\n"
		"dhcp-rapid-commit\n"
		"dhcp-leasefile=%2$s/dnsmasq.leases\n"
		"dhcp-hostsdir=%2$s/dnsmasq.hosts\n"
		"%3$s%4$s%5$s"
		"%6$s%7$s%8$s"
		"%9$s"
		"%10$s%11$s%12$s"
		"local=/%13$s/\n"
		"domain=%13$s\n"
		"expand-hosts\n"
		"%14$s%15$s",
		c->name, dir, c->has4 ? "listen-address=" : "", a4, c->has4 ? "\n" : "",
		c->has6 ? "listen-address=" : "", a6, c->has6 ? "\n" : "", ranges ?: "",
		c->has6 ? "enable-ra\ndhcp-range=::,constructor:" : "", c->has6 ? c->name : "",
		c->has6 ? (c->dhcp6 ? ",ra-stateless,ra-names\n" : ",ra-only\n") : "", c->domain,
		c->raw ?: "", c->raw && !berth_endswith(c->raw, "\n") ? "\n" : "");
	return conf;
}

int network_dnsmasq_apply(struct berth_daemon *d, const struct network_conf *c,
			  struct berth_error *err)
{
	_cleanup_free_ char *dir = network_path(d, c->name, NULL);
	_cleanup_free_ char *conf_path = network_path(d, c->name, "dnsmasq.conf");
	_cleanup_free_ char *hosts = network_path(d, c->name, "dnsmasq.hosts");
	_cleanup_free_ char *log_path = network_path(d, c->name, "dnsmasq.log");
	_cleanup_free_ char *conf = dnsmasq_conf(d, c);
	_cleanup_free_ char *old = NULL, *opt = NULL;
	size_t old_len = 0;
	pid_t pid;
	int r;

	if (!dir || !conf_path || !hosts || !log_path || !conf)
		return oom(err);
	r = berth_mkdir_p(hosts, 0755);
	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "Cannot create \"%s\": %s",
				       hosts, strerror(-r));
	pid = dnsmasq_pid(d, c->name);
	if (!c->has4 && !c->has6) {
		/* Nothing to serve. */
		network_dnsmasq_stop(d, c->name);
		unlink(conf_path);
		return 0;
	}
	if (pid > 0 && berth_read_file(conf_path, 1 << 20, &old, &old_len) >= 0 &&
	    streq(old, conf)) {
		/* Re-adopted as it runs; it may have missed host entries. */
		kill(pid, SIGHUP);
		return 0;
	}
	if (pid > 0)
		network_dnsmasq_stop(d, c->name);
	r = berth_write_file_atomic(conf_path, conf, strlen(conf), 0644);
	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "Cannot write \"%s\": %s",
				       conf_path, strerror(-r));
	opt = berth_strdup_printf("--conf-file=%s", conf_path);
	if (!opt)
		return oom(err);
	{
		const char *argv[] = {"dnsmasq", opt, NULL};

		r = network_run(argv, NULL, log_path, err);
	}
	if (r < 0)
		return berth_error_wrap(err, r, "Cannot start dnsmasq for network \"%s\"", c->name);
	return 0;
}
