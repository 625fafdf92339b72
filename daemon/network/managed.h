/* daemon/network/managed.h: managed bridge networks, for the API layer and berthd's
 * start. A network's config (LXD's bridge keys) is checked and completed by
 * network_config_check(); network_apply() then makes the host match it: the bridge
 * and its addresses over netlink (bridge.c), forwarding and the NAT table (nft.c),
 * and its dnsmasq (dnsmasq.c). Everything is idempotent, so berthd calls it again at
 * every start to re-adopt what kept running.
 *
 * State of network NAME lives under $BERTH_DIR/networks/NAME/ (see doc/networks.md).
 * All functions may block (netlink, subprocesses): call them off the event loop. They
 * serialize on one lock. */
#pragma once

#include <jansson.h>
#include <netinet/in.h>
#include <stdbool.h>

#include "daemon/daemon.h"
#include "lib/error.h"

/* The name of the network made on a fresh database. */
#define NETWORK_DEFAULT_NAME "berthbr0"

/* A network's config, parsed. Strings borrowed from the config object. */
struct network_conf {
	const char *name;
	bool has4, has6;
	struct in_addr addr4;  /* the bridge's (gateway) address */
	unsigned int prefix4;
	struct in6_addr addr6;
	unsigned int prefix6;
	bool nat4, nat6, dhcp4, dhcp6;
	unsigned int mtu;       /* 0: kernel default */
	const char *domain;     /* dns.domain, "berth" by default */
	const char *ranges4;    /* ipv4.dhcp.ranges or NULL */
	const char *raw;        /* raw.dnsmasq or NULL */
};

/* Check a network name (an interface name: 1-15 characters, no '/', ':', space). */
int network_name_check(const char *name, struct berth_error *err);

/* Check `config` (object of strings, modified in place) for network `name`: unknown
 * keys and bad values are refused (400 naming the key); on `create`, missing
 * ipv4.address / ipv6.address become "auto", and an "auto" address turns its NAT on
 * unless set. "auto" is replaced by a free subnet; a given subnet overlapping a
 * route, an address or another network of berthd's namespace is refused (400 naming
 * the overlap). */
int network_config_check(const char *name, json_t *config, bool create,
			 struct berth_error *err);
/* Parse a checked config. */
int network_conf_parse(const char *name, const json_t *config, struct network_conf *ret,
		       struct berth_error *err);

/* Bring network `name` to `config`: bridge, addresses, forwarding, NAT, dnsmasq
 * (restarted when its config changed, re-adopted when it runs). */
int network_apply(struct berth_daemon *d, const char *name, const json_t *config,
		  struct berth_error *err);
/* Remove it all: dnsmasq (by PID), the NAT table, the bridge, the state directory. */
int network_remove(struct berth_daemon *d, const char *name, struct berth_error *err);

/* At berthd start (after db_init): apply every network of the database; on a fresh
 * database (`fresh`) first create NETWORK_DEFAULT_NAME and give the default profile
 * an eth0 nic on it. Failures are logged, never fatal. */
void network_startup(struct berth_daemon *d, bool fresh);

/* GET .../leases: [{"hostname","hwaddr","address","type","location","project"}]. */
int network_leases(struct berth_daemon *d, const char *name, json_t **ret,
		   struct berth_error *err);
/* GET .../state of any link of berthd's namespace: -ENOENT (404) if none. */
int network_link_state(const char *name, json_t **ret, struct berth_error *err);
/* Links of berthd's namespace as unmanaged network objects, names not in `skip`
 * (object used as a set). */
int network_unmanaged_list(const json_t *skip, json_t **ret, struct berth_error *err);

/* ---- internals shared by the files of daemon/network/ ---- */

/* $BERTH_DIR/networks/NAME[/file] as a new string. */
char *network_path(const struct berth_daemon *d, const char *name, const char *file);
/* Run argv (argv[0] searched in the sbin/bin dirs) with `input` (may be NULL) on
 * stdin; stdout+stderr go to `log_path` (truncated) or, when NULL, are kept for the
 * error message. Waits for the process (not for what it daemonizes). 0 on exit 0. */
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
