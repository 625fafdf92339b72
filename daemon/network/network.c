/* daemon/network/network.c: the seam between NICs and networks. Until managed
 * networks exist, `network=NAME` names an existing bridge interface of that
 * name in berthd's network namespace, and static addresses are refused. */
#include <errno.h>
#include <string.h>

#include "daemon/network/network.h"
#include "lib/macros.h"
#include "lib/netlink.h"

int network_nic_resolve(struct berth_daemon *d, const char *project, const char *network,
			struct network_nic_target *target, struct berth_error *err)
{
	struct berth_nl nl;
	struct berth_nl_link link;
	int r;

	if (strlen(network) >= IFNAMSIZ)
		return berth_error_set(err, -ENOENT, BERTH_ERR_BAD_REQUEST,
				       "Network \"%s\" not found", network);
	r = berth_nl_open(&nl);
	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "netlink: %s", strerror(-r));
	r = berth_nl_link_get(&nl, network, &link);
	berth_nl_close(&nl);
	if (r == -ENODEV)
		return berth_error_set(err, -ENOENT, BERTH_ERR_BAD_REQUEST,
				       "Network \"%s\" not found", network);
	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "netlink: %s", strerror(-r));
	if (!streq(link.kind, "bridge"))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Network \"%s\" is not a bridge", network);
	memset(target, 0, sizeof(*target));
	strcpy(target->bridge, link.name);
	target->mtu = link.mtu;
	return 0;
}

int network_nic_lease_add(struct berth_daemon *d, const char *project, const char *network,
			  const char *instance, const char *device, const char *hwaddr,
			  const char *ipv4, const char *ipv6, struct berth_error *err)
{
	if ((ipv4 && *ipv4) || (ipv6 && *ipv6))
		return berth_error_set(err, -EOPNOTSUPP, BERTH_ERR_BAD_REQUEST,
				       "Static addresses need a managed network");
	return 0;
}

int network_nic_lease_remove(struct berth_daemon *d, const char *project, const char *network,
			     const char *instance, const char *device, const char *hwaddr)
{
	return 0;
}
