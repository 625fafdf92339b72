/* daemon/proxy/nft.h: the nftables rules of proxy devices with nat=true. Each running
 * instance with such devices has a table of its own, `inet berth_proxy_<16 hex digits>`
 * (a hash of the state directory, project and instance, so that two daemons or two
 * instances never share one), replaced as a whole in one `nft -f` transaction whenever
 * its devices change, and deleted when the instance stops. libc only. */
#pragma once

#include <stddef.h>

#include "daemon/proxy/addr.h"

struct proxy_nat_rule {
	const char *device;		  /* borrowed; named in each rule's comment */
	const struct proxy_addr *listen;  /* borrowed; tcp or udp, a specific address */
	const struct proxy_addr *connect; /* borrowed; the instance's static address */
};

/* "berth_proxy_" and 16 hex digits (new string, NULL on allocation failure). */
char *proxy_nft_table(const char *berth_dir, const char *project, const char *instance);

/* An nft script (new string) that replaces `table` with DNAT rules for `rules` (in the
 * prerouting chain for traffic from elsewhere, in the output chain for the host's own, and
 * a masquerade in postrouting so that the instance reaches itself through the listen
 * address), or, with n == 0, removes the table; either way it runs without error whether
 * or not the table exists. NULL on allocation failure. */
char *proxy_nft_script(const char *table, const char *project, const char *instance,
		       const struct proxy_nat_rule *rules, size_t n);
