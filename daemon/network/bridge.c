/* daemon/network/bridge.c: a managed network's bridge over netlink: created when
 * missing, its MTU, exactly the configured global addresses (others removed), up;
 * and the forwarding switches its NAT needs. */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/rtnetlink.h>
#include <stdio.h>
#include <string.h>

#include "daemon/network/internal.h"
#include "lib/macros.h"
#include "lib/netlink.h"
#include "lib/util.h"

static int nl_fail(struct berth_error *err, int r, const char *what, const char *name)
{
	return berth_error_set(err, r, BERTH_ERR_INTERNAL, "Cannot %s \"%s\": %s", what, name,
			       strerror(-r));
}

/* Remove the bridge's global addresses that the config does not name; add those it
 * does. */
static int sync_addresses(struct berth_nl *nl, int index, const struct network_conf *c,
			  struct berth_error *err)
{
	_cleanup_free_ struct berth_nl_addr *addrs = NULL;
	bool have4 = false, have6 = false;
	size_t n = 0;
	int r = berth_nl_addr_list(nl, AF_UNSPEC, &addrs, &n);

	if (r < 0)
		return nl_fail(err, r, "list the addresses of", c->name);
	for (size_t i = 0; i < n; i++) {
		const struct berth_nl_addr *a = &addrs[i];
		bool want;

		if (a->index != index || a->scope == RT_SCOPE_LINK)
			continue;
		if (a->family == AF_INET)
			want = c->has4 && a->prefixlen == c->prefix4 &&
			       memcmp(a->addr, &c->addr4, 4) == 0;
		else
			want = c->has6 && a->prefixlen == c->prefix6 &&
			       memcmp(a->addr, &c->addr6, 16) == 0;
		if (want) {
			have4 = have4 || a->family == AF_INET;
			have6 = have6 || a->family == AF_INET6;
			continue;
		}
		r = berth_nl_addr_del(nl, index, a->family, a->addr, a->prefixlen);
		if (r < 0 && r != -EADDRNOTAVAIL)
			return nl_fail(err, r, "remove an old address of", c->name);
	}
	if (c->has4 && !have4) {
		r = berth_nl_addr_add(nl, index, AF_INET, &c->addr4, c->prefix4);
		if (r < 0 && r != -EEXIST)
			return nl_fail(err, r, "add the IPv4 address to", c->name);
	}
	if (c->has6 && !have6) {
		r = berth_nl_addr_add(nl, index, AF_INET6, &c->addr6, c->prefix6);
		if (r < 0 && r != -EEXIST)
			return nl_fail(err, r, "add the IPv6 address to", c->name);
	}
	return 0;
}

static void ipv6_setup(const struct network_conf *c)
{
	_cleanup_free_ char *dad = NULL, *off = NULL;

	if (!c->has6)
		return;
	off = berth_strdup_printf("/proc/sys/net/ipv6/conf/%s/disable_ipv6", c->name);
	/* No duplicate address detection on a bridge we own: dnsmasq must be able to bind
	 * the address at once, before any port joined. */
	dad = berth_strdup_printf("/proc/sys/net/ipv6/conf/%s/accept_dad", c->name);
	if (off)
		network_sysctl(off, "0");
	if (dad)
		network_sysctl(dad, "0");
}

int network_bridge_apply(const struct network_conf *c, struct berth_error *err)
{
	struct berth_nl_link_change change = BERTH_NL_LINK_CHANGE_INIT;
	struct berth_nl_link link;
	struct berth_nl nl;
	int r;

	r = berth_nl_open(&nl);
	if (r < 0)
		return nl_fail(err, r, "open netlink for", c->name);
	r = berth_nl_link_get(&nl, c->name, &link);
	if (r == -ENODEV) {
		r = berth_nl_bridge_add(&nl, c->name, c->mtu);
		if (r < 0) {
			nl_fail(err, r, "create the bridge", c->name);
			goto out;
		}
		r = berth_nl_link_get(&nl, c->name, &link);
	}
	if (r < 0) {
		nl_fail(err, r, "find the bridge", c->name);
		goto out;
	}
	if (!streq(link.kind, "bridge")) {
		r = berth_error_set(err, -EEXIST, BERTH_ERR_BAD_REQUEST,
				    "An interface \"%s\" exists and is not a bridge", c->name);
		goto out;
	}
	ipv6_setup(c);
	r = sync_addresses(&nl, link.index, c, err);
	if (r < 0)
		goto out;
	change.up = 1;
	if (c->mtu && c->mtu != link.mtu)
		change.mtu = c->mtu;
	r = berth_nl_link_set(&nl, link.index, &change);
	if (r < 0) {
		nl_fail(err, r, "bring up", c->name);
		goto out;
	}
	/* The namespace's own switches: a new network namespace starts with forwarding
	 * off. */
	if (c->nat4 && network_sysctl("/proc/sys/net/ipv4/ip_forward", "1") < 0)
		r = berth_error_set(err, -EIO, BERTH_ERR_INTERNAL, "Cannot enable IPv4 forwarding");
	if (r >= 0 && c->nat6 && network_sysctl("/proc/sys/net/ipv6/conf/all/forwarding", "1") < 0)
		r = berth_error_set(err, -EIO, BERTH_ERR_INTERNAL, "Cannot enable IPv6 forwarding");
out:
	berth_nl_close(&nl);
	return r;
}

int network_bridge_remove(const char *name, struct berth_error *err)
{
	struct berth_nl_link link;
	struct berth_nl nl;
	int r;

	r = berth_nl_open(&nl);
	if (r < 0)
		return nl_fail(err, r, "open netlink for", name);
	r = berth_nl_link_get(&nl, name, &link);
	if (r == -ENODEV)
		r = 0;
	else if (r >= 0 && !streq(link.kind, "bridge"))
		r = 0; /* not ours: leave it */
	else if (r >= 0)
		r = berth_nl_link_del(&nl, link.index);
	berth_nl_close(&nl);
	return r < 0 ? nl_fail(err, r, "delete the bridge", name) : 0;
}
