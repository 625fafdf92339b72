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

/* Resolves `network` (in `project`) to the bridge a NIC plugs into.
 * -ENOENT with `err` (400 "Network \"X\" not found") if there is no such
 * network, -EINVAL if it cannot hold NICs. */
int network_nic_resolve(struct berth_daemon *d, const char *project, const char *network,
			struct network_nic_target *target, struct berth_error *err);

/* A NIC of instance `instance` (device `device`) joins `network` with MAC
 * `hwaddr` and, when not NULL, the static addresses `ipv4`/`ipv6` (a NIC's
 * ipv4.address / ipv6.address): the network's DHCP server then hands the
 * instance that address under the instance's name. Idempotent: called again
 * with other values it replaces the entry. 400 with `err` if the address is
 * outside the network's subnet or taken by another instance. */
int network_nic_lease_add(struct berth_daemon *d, const char *project, const char *network,
			  const char *instance, const char *device, const char *hwaddr,
			  const char *ipv4, const char *ipv6, struct berth_error *err);
/* Drops that entry (and the dynamic lease of `hwaddr`). Absent: 0. */
int network_nic_lease_remove(struct berth_daemon *d, const char *project, const char *network,
			     const char *instance, const char *device, const char *hwaddr);
