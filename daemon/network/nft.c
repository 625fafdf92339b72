/* daemon/network/nft.c: a managed network's NAT, in an nftables table of its own,
 * "inet berth-NAME", loaded with `nft -f -`. Each load first creates and deletes the
 * table and then writes it whole, in one nft transaction: the rules exist exactly
 * once whatever was there before (a restarted berthd, a changed subnet), and a
 * network without NAT has no table at all. */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "daemon/network/internal.h"
#include "lib/macros.h"
#include "lib/util.h"

static int oom(struct berth_error *err)
{
	return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "Out of memory");
}

/* The subnet of addr/prefix as text ("10.1.2.0/24"). */
static void subnet_text(int family, const void *addr, unsigned int prefix, char *buf, size_t size)
{
	unsigned char net[16];
	unsigned int bytes = family == AF_INET ? 4 : 16;
	char text[INET6_ADDRSTRLEN];

	memcpy(net, addr, bytes);
	for (unsigned int bit = prefix; bit < bytes * 8; bit++)
		net[bit / 8] &= (unsigned char)~(0x80 >> (bit % 8));
	inet_ntop(family, net, text, sizeof(text));
	snprintf(buf, size, "%s/%u", text, prefix);
}

int network_nft_apply(const struct network_conf *c, struct berth_error *err)
{
	static const char *const argv[] = {"nft", "-f", "-", NULL};
	char net4[64], net6[64];
	_cleanup_free_ char *rules = NULL, *v4 = NULL, *v6 = NULL;
	int r;

	if (!c->nat4 && !c->nat6)
		return network_nft_remove(c->name, err);
	subnet_text(AF_INET, &c->addr4, c->prefix4, net4, sizeof(net4));
	subnet_text(AF_INET6, &c->addr6, c->prefix6, net6, sizeof(net6));
	/* Masquerade what leaves the subnet for elsewhere; traffic between instances of
	 * the bridge keeps its addresses. */
	if (c->nat4)
		v4 = berth_strdup_printf("\t\tip saddr %s ip daddr != %s masquerade\n", net4, net4);
	if (c->nat6)
		v6 = berth_strdup_printf("\t\tip6 saddr %s ip6 daddr != %s masquerade\n", net6,
					 net6);
	if ((c->nat4 && !v4) || (c->nat6 && !v6))
		return oom(err);
	rules = berth_strdup_printf("table inet berth-%1$s\n"
				    "delete table inet berth-%1$s\n"
				    "table inet berth-%1$s {\n"
				    "\tchain postrouting {\n"
				    "\t\ttype nat hook postrouting priority srcnat; policy accept;\n"
				    "%2$s%3$s"
				    "\t}\n"
				    "}\n",
				    c->name, v4 ?: "", v6 ?: "");
	if (!rules)
		return oom(err);
	r = network_run(argv, rules, NULL, err);
	return r < 0 ? berth_error_wrap(err, r, "Cannot load the NAT rules of \"%s\"", c->name) : 0;
}

int network_nft_remove(const char *name, struct berth_error *err)
{
	static const char *const argv[] = {"nft", "-f", "-", NULL};
	_cleanup_free_ char *rules =
		berth_strdup_printf("table inet berth-%1$s\ndelete table inet berth-%1$s\n", name);
	int r;

	if (!rules)
		return oom(err);
	r = network_run(argv, rules, NULL, err);
	return r < 0 ? berth_error_wrap(err, r, "Cannot remove the NAT rules of \"%s\"", name) : 0;
}
