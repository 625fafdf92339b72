/* tests/unit/test_netlink.c: lib/netlink.c against the kernel, inside network
 * namespaces this test makes (unshare), so nothing touches the host's links:
 * a bridge, a veth whose peer is born in a second namespace, addresses,
 * routes, enslaving, renaming, a macvlan and deletion. Skipped (77) when the
 * process cannot make network namespaces (not root). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/netlink.h"

static int other_ns = -1; /* a second namespace, for veth peers */

static int setup(void **state)
{
	int self;

	if (unshare(CLONE_NEWNET) < 0)
		return -1;
	self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	if (self < 0 || unshare(CLONE_NEWNET) < 0)
		return -1;
	other_ns = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	if (other_ns < 0 || setns(self, CLONE_NEWNET) < 0)
		return -1;
	close(self);
	return 0;
}

static const struct berth_nl_link *find(const struct berth_nl_link *l, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(l[i].name, name) == 0)
			return &l[i];
	return NULL;
}

static void test_bridge_veth_addr(void **state)
{
	struct berth_nl nl, peer_nl;
	struct berth_nl_link br, v, p, *links = NULL;
	struct berth_nl_addr *addrs = NULL;
	struct berth_nl_route *routes = NULL;
	size_t n, i;
	const unsigned char mac[6] = {0x00, 0x16, 0x3e, 0x01, 0x02, 0x03};
	struct in_addr a;
	bool found;

	assert_int_equal(berth_nl_open(&nl), 0);
	assert_int_equal(berth_nl_link_get(&nl, "nosuch0", &br), -ENODEV);
	assert_int_equal(berth_nl_bridge_add(&nl, "tbr0", 1400), 0);
	assert_int_equal(berth_nl_bridge_add(&nl, "tbr0", 0), -EEXIST);
	assert_int_equal(berth_nl_link_get(&nl, "tbr0", &br), 0);
	assert_string_equal(br.kind, "bridge");
	assert_int_equal(br.mtu, 1400);
	assert_true(br.has_mac);

	struct berth_nl_veth veth = {.name = "vtest0",
				     .peer = "eth0",
				     .peer_netns_fd = other_ns,
				     .peer_mac = mac,
				     .mtu = 1400};
	assert_int_equal(berth_nl_veth_add(&nl, &veth), 0);
	assert_int_equal(berth_nl_link_get(&nl, "vtest0", &v), 0);
	assert_string_equal(v.kind, "veth");
	/* the peer was born in the other namespace, under its final name */
	assert_int_equal(berth_nl_link_get(&nl, "eth0", &p), -ENODEV);
	assert_int_equal(berth_nl_open_netns(&peer_nl, other_ns), 0);
	assert_int_equal(berth_nl_link_get(&peer_nl, "eth0", &p), 0);
	assert_memory_equal(p.mac, mac, 6);
	assert_int_equal(p.mtu, 1400);

	struct berth_nl_link_change c = BERTH_NL_LINK_CHANGE_INIT;
	c.master = br.index;
	c.up = 1;
	assert_int_equal(berth_nl_link_set(&nl, v.index, &c), 0);
	struct berth_nl_link_change up = BERTH_NL_LINK_CHANGE_INIT;
	up.up = 1;
	assert_int_equal(berth_nl_link_set(&nl, br.index, &up), 0);
	assert_int_equal(berth_nl_link_list(&nl, &links, &n), 0);
	assert_non_null(find(links, n, "lo"));
	assert_int_equal(find(links, n, "vtest0")->master, br.index);
	assert_true(find(links, n, "tbr0")->flags & IFF_UP);
	free(links);

	inet_pton(AF_INET, "10.123.45.1", &a);
	assert_int_equal(berth_nl_addr_add(&nl, br.index, AF_INET, &a, 24), 0);
	assert_int_equal(berth_nl_addr_add(&nl, br.index, AF_INET, &a, 24), -EEXIST);
	assert_int_equal(berth_nl_addr_list(&nl, AF_INET, &addrs, &n), 0);
	found = false;
	for (i = 0; i < n; i++)
		if (addrs[i].index == br.index && memcmp(addrs[i].addr, &a, 4) == 0 &&
		    addrs[i].prefixlen == 24)
			found = true;
	assert_true(found);
	free(addrs);

	/* the kernel's connected route for the /24 */
	assert_int_equal(berth_nl_route_list(&nl, AF_INET, &routes, &n), 0);
	found = false;
	for (i = 0; i < n; i++)
		if (routes[i].dst_len == 24 && routes[i].oif == br.index &&
		    memcmp(routes[i].dst, "\x0a\x7b\x2d\x00", 4) == 0)
			found = true;
	assert_true(found);
	free(routes);

	/* the peer side: address it, and route the default through the bridge's address */
	struct berth_nl_link_change pup = BERTH_NL_LINK_CHANGE_INIT;
	struct in_addr pa;
	pup.up = 1;
	assert_int_equal(berth_nl_link_set(&peer_nl, p.index, &pup), 0);
	inet_pton(AF_INET, "10.123.45.2", &pa);
	assert_int_equal(berth_nl_addr_add(&peer_nl, p.index, AF_INET, &pa, 24), 0);
	assert_int_equal(berth_nl_route_add(&peer_nl, AF_INET, NULL, 0, &a, p.index), 0);
	assert_int_equal(berth_nl_route_list(&peer_nl, AF_INET, &routes, &n), 0);
	found = false;
	for (i = 0; i < n; i++)
		if (routes[i].dst_len == 0 && routes[i].has_gateway &&
		    memcmp(routes[i].gateway, &a, 4) == 0)
			found = true;
	assert_true(found);
	free(routes);
	assert_int_equal(berth_nl_addr_del(&peer_nl, p.index, AF_INET, &pa, 24), 0);
	assert_int_equal(berth_nl_addr_del(&peer_nl, p.index, AF_INET, &pa, 24), -EADDRNOTAVAIL);

	/* release, rename (down first), delete: the peer goes with it */
	struct berth_nl_link_change rel = BERTH_NL_LINK_CHANGE_INIT;
	rel.master = -1;
	rel.up = 0;
	assert_int_equal(berth_nl_link_set(&nl, v.index, &rel), 0);
	struct berth_nl_link_change ren = BERTH_NL_LINK_CHANGE_INIT;
	ren.name = "vrenamed";
	assert_int_equal(berth_nl_link_set(&nl, v.index, &ren), 0);
	assert_int_equal(berth_nl_link_get(&nl, "vrenamed", &v), 0);
	assert_int_equal(v.master, 0);
	assert_int_equal(berth_nl_link_del(&nl, v.index), 0);
	assert_int_equal(berth_nl_link_get(&peer_nl, "eth0", &p), -ENODEV);
	assert_int_equal(berth_nl_link_del(&nl, br.index), 0);
	assert_int_equal(berth_nl_link_get(&nl, "tbr0", &br), -ENODEV);
	berth_nl_close(&peer_nl);
	berth_nl_close(&nl);
}

static void test_macvlan_and_move(void **state)
{
	struct berth_nl nl, onl;
	struct berth_nl_link parent, m;
	struct berth_nl_veth veth = {.name = "mvp0", .peer = "mvp1", .peer_netns_fd = -1};

	assert_int_equal(berth_nl_open(&nl), 0);
	assert_int_equal(berth_nl_veth_add(&nl, &veth), 0);
	assert_int_equal(berth_nl_link_get(&nl, "mvp0", &parent), 0);
	assert_int_equal(berth_nl_macvlan_add(&nl, "mv0", parent.index, "nosuchmode", -1, NULL, 0),
			 -EINVAL);
	assert_int_equal(berth_nl_macvlan_add(&nl, "mv0", parent.index, "bridge", -1, NULL, 0), 0);
	assert_int_equal(berth_nl_link_get(&nl, "mv0", &m), 0);
	assert_string_equal(m.kind, "macvlan");
	/* moved into the other namespace under a new name */
	struct berth_nl_link_change mv = BERTH_NL_LINK_CHANGE_INIT;
	mv.netns_fd = other_ns;
	mv.name = "eth7";
	assert_int_equal(berth_nl_link_set(&nl, m.index, &mv), 0);
	assert_int_equal(berth_nl_link_get(&nl, "mv0", &m), -ENODEV);
	assert_int_equal(berth_nl_open_netns(&onl, other_ns), 0);
	assert_int_equal(berth_nl_link_get(&onl, "eth7", &m), 0);
	berth_nl_close(&onl);
	assert_int_equal(berth_nl_link_del(&nl, parent.index), 0);
	berth_nl_close(&nl);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bridge_veth_addr),
		cmocka_unit_test(test_macvlan_and_move),
	};

	if (geteuid() != 0) {
		printf("# SKIP needs root for network namespaces\n");
		return 77;
	}
	return cmocka_run_group_tests(tests, setup, NULL);
}
