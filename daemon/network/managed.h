/* daemon/network/managed.h: managed bridge networks, for the API layer and berthd's
 * start. A network's config (LXD's bridge keys) is checked and completed by
 * network_config_check(); network_apply() then makes the host match it: the bridge
 * and its addresses over netlink (bridge.c), forwarding and the NAT table (nft.c),
 * and its dnsmasq (dnsmasq.c). Everything is idempotent, so berthd calls it again at
 * every start to re-adopt what kept running.
 *
 * State of network NAME lives under $BERTH_DIR/networks/NAME/ (see doc/networks.md).
 * What the files of daemon/network/ share below this is in internal.h.
 * All functions may block (netlink, subprocesses): call them off the event loop. They
 * serialize on one lock. */
#pragma once

#include <jansson.h>
#include <stdbool.h>

#include "daemon/daemon.h"
#include "lib/error.h"

/* The name of the network made on a fresh database. */
#define NETWORK_DEFAULT_NAME "berthbr0"

/* Check a network name (an interface name: 1-15 characters, no '/', ':', space). */
int network_name_check(const char *name, struct berth_error *err);

/* Check `config` (object of strings, modified in place) for network `name`: unknown
 * keys and bad values are refused (400 naming the key); on `create`, missing
 * ipv4.address / ipv6.address become "auto", and an "auto" address turns its NAT on
 * unless set. "auto" is replaced by a free subnet; a given subnet overlapping a
 * route, an address or another network of berthd's namespace is refused (400 naming
 * the overlap). */
int network_config_check(struct db *db, const char *name, json_t *config, bool create,
			 struct berth_error *err);
/* Bring network `name` to `config`: bridge, addresses, forwarding, NAT, dnsmasq
 * (restarted when its config changed, re-adopted when it runs). */
int network_apply(struct berth_daemon *d, const char *name, const json_t *config,
		  struct berth_error *err);
/* Remove it all: dnsmasq (by PID), the NAT table, the bridge, the state directory. */
int network_remove(struct berth_daemon *d, const char *name, struct berth_error *err);

/* At berthd start (after db_open): apply every network of the database; on a fresh
 * database (`fresh`) first create NETWORK_DEFAULT_NAME and give the default profile
 * an eth0 nic on it. Failures are logged, never fatal. */
void network_startup(struct berth_daemon *d, bool fresh);

/* GET .../leases: [{"hostname","hwaddr","address","type","location","project"}]. */
int network_leases(struct berth_daemon *d, const char *name, json_t **ret, struct berth_error *err);
/* GET .../state of any link of berthd's namespace: -ENOENT (404) if none. */
int network_link_state(const char *name, json_t **ret, struct berth_error *err);
/* Links of berthd's namespace as unmanaged network objects, names not in `skip`
 * (object used as a set). */
int network_unmanaged_list(const json_t *skip, json_t **ret, struct berth_error *err);
