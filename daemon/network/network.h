/* daemon/network/network.h: what the rest of berthd asks of the networks
 * module. The NIC device code (daemon/instance/) resolves `network=NAME` here
 * and registers or drops a NIC's static lease; the networks module owns the
 * bridges, their addresses, dnsmasq and the NAT rules. */
#pragma once

#include <stdbool.h>
#include <net/if.h>

#include "daemon/daemon.h"
#include "lib/error.h"

/* What a NIC with `network=NAME` attaches to. */
struct network_nic_target {
	char bridge[IFNAMSIZ]; /* the bridge interface to enslave the host end to */
	unsigned int mtu;      /* the network's bridge.mtu, 0 for the default */
};

/* Resolves `network` (in `project`) to the bridge a NIC plugs into: a managed
 * network's bridge (named as the network; mtu = its bridge.mtu, 0 when unset),
 * else an existing bridge interface of that name (nictype=bridged, parent=X).
 * -ENOENT with `err` (400 "Network \"X\" not found") if there is no such
 * network, -EINVAL if it cannot hold NICs. Reads the database: may block. */
int network_nic_resolve(struct berth_daemon *d, const char *project, const char *network,
			struct network_nic_target *target, struct berth_error *err);

/* A NIC of instance `instance` (device `device`) joins `network` with MAC
 * `hwaddr` and, when not NULL (or ""), the static addresses `ipv4`/`ipv6` (a NIC's
 * ipv4.address / ipv6.address): the network's DHCP server then hands the
 * instance that address under the instance's name; without them the entry still
 * names the MAC's host, so NAME.<dns.domain> resolves once it has a lease. Call it
 * for every NIC on a network at start and hot-plug. Idempotent: called again
 * with other values it replaces the entry (one file per project, instance and
 * device under $BERTH_DIR/networks/NETWORK/dnsmasq.hosts/, see doc/networks.md).
 * 400 with `err` if the address is not a host of the network's subnet (or is the
 * bridge's: -EINVAL) or taken by another NIC (-EADDRINUSE). On a network that is
 * not managed: static addresses are refused (400, -EOPNOTSUPP), else 0. */
int network_nic_lease_add(struct berth_daemon *d, const char *project, const char *network,
			  const char *instance, const char *device, const char *hwaddr,
			  const char *ipv4, const char *ipv6, struct berth_error *err);
/* Drops that entry (at delete of the instance or the device, not at stop); a
 * dynamic lease of `hwaddr` stays in dnsmasq's lease file until it expires.
 * Absent: 0. */
int network_nic_lease_remove(struct berth_daemon *d, const char *project, const char *network,
			     const char *instance, const char *device, const char *hwaddr);
