/* daemon/network/internal.h: what the files of daemon/network/ share and nothing else
 * sees: a network's parsed config (config.c) and the host-side pieces network.c drives
 * (the bridge, nft, dnsmasq, running programs). None of these uses network.c (managed.h),
 * so that network.c <- dnsmasq.c, bridge.c, nft.c, run.c has no cycle. */
#pragma once

#include <jansson.h>
#include <netinet/in.h>
#include <stdbool.h>

#include "daemon/daemon.h"
#include "lib/error.h"
#include "lib/util.h"

/* A network's config, parsed. Strings borrowed from the config object. */
struct network_conf {
	const char *name;
	bool has4, has6;
	struct in_addr addr4; /* the bridge's (gateway) address */
	unsigned int prefix4;
	struct in6_addr addr6;
	unsigned int prefix6;
	bool nat4, nat6, dhcp4, dhcp6;
	unsigned int mtu;    /* 0: kernel default */
	const char *domain;  /* dns.domain, "berth" by default */
	const char *ranges4; /* ipv4.dhcp.ranges or NULL */
	const char *raw;     /* raw.dnsmasq or NULL */
};

/* Parse a checked config. */
int network_conf_parse(const char *name, const json_t *config, struct network_conf *ret,
		       struct berth_error *err);

/* $BERTH_DIR/networks/NAME[/file] as a new string. */
static inline char *network_path(const struct berth_daemon *d, const char *name, const char *file)
{
	if (file)
		return berth_strdup_printf("%s/networks/%s/%s", d->dir, name, file);
	return berth_strdup_printf("%s/networks/%s", d->dir, name);
}

/* Run argv (argv[0] found by berth_program_find) through lib/spawn with `input` (may be
 * NULL) on stdin; stdout+stderr go to `log_path` (truncated) or, when NULL, are kept
 * for the error message. Waits for the process (not for what it daemonizes), at most
 * a minute. 0 on exit 0. */
int network_run(const char *const *argv, const char *input, const char *log_path,
		struct berth_error *err);
/* Write "1" or a value to a /proc/sys file. */
int network_sysctl(const char *path, const char *value);

int network_bridge_apply(const struct network_conf *c, struct berth_error *err);
int network_bridge_remove(const char *name, struct berth_error *err);
int network_nft_apply(const struct network_conf *c, struct berth_error *err);
int network_nft_remove(const char *name, struct berth_error *err);
int network_dnsmasq_apply(struct berth_daemon *d, const struct network_conf *c,
			  struct berth_error *err);
int network_dnsmasq_stop(struct berth_daemon *d, const char *name);
/* SIGHUP the running dnsmasq (re-read its hosts). */
void network_dnsmasq_reload(struct berth_daemon *d, const char *name);
