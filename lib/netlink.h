/* lib/netlink.h: a small rtnetlink client (links, addresses, routes) on plain
 * libc, shared by berthd (bridges, addresses, hot-plug) and berth-monitor (the
 * container's NICs at start). No libmnl: each request is one message built in
 * a fixed buffer, sent with NLM_F_ACK, and its answer read back in full.
 *
 * Every function returns 0 or -errno (the kernel's answer for a refused
 * request: -EEXIST, -ENODEV, -EBUSY...). Nothing here logs. */
#pragma once

#include <net/if.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct berth_nl {
	int fd;
	uint32_t seq;
};

/* A NETLINK_ROUTE socket in the calling thread's network namespace. */
int berth_nl_open(struct berth_nl *nl);
/* The same in the network namespace `netns_fd` (an fd of /proc/PID/ns/net or a
 * pidfd): the calling thread enters it, opens the socket and returns to its
 * own namespace. The socket stays bound to `netns_fd`'s namespace. */
int berth_nl_open_netns(struct berth_nl *nl, int netns_fd);
void berth_nl_close(struct berth_nl *nl);

#define BERTH_NL_KIND_MAX 16

struct berth_nl_link {
	int index;
	char name[IFNAMSIZ];
	char kind[BERTH_NL_KIND_MAX]; /* "bridge", "veth", "macvlan", "" for physical/lo */
	int master;		      /* index of the bridge it is enslaved to, 0 if none */
	unsigned int mtu;
	unsigned int flags;  /* IFF_UP, IFF_LOWER_UP, IFF_LOOPBACK... */
	unsigned int arphrd; /* ARPHRD_ETHER, ARPHRD_LOOPBACK... */
	unsigned char mac[6];
	bool has_mac;
	char operstate[16]; /* "up", "down", "unknown" ... */
	uint64_t rx_bytes, tx_bytes, rx_packets, tx_packets;
	uint64_t rx_errors, tx_errors, rx_dropped, tx_dropped;
};

/* All links; *links is malloc'ed (free()), *n its length. */
int berth_nl_link_list(struct berth_nl *nl, struct berth_nl_link **links, size_t *n);
/* One link by name; -ENODEV when there is none. */
int berth_nl_link_get(struct berth_nl *nl, const char *name, struct berth_nl_link *link);

/* Creates a bridge `name` (down). mtu 0 keeps the kernel's default. */
int berth_nl_bridge_add(struct berth_nl *nl, const char *name, unsigned int mtu);

struct berth_nl_veth {
	const char *name;	       /* this end, created in nl's namespace */
	const char *peer;	       /* the other end */
	int peer_netns_fd;	       /* -1: the peer stays in nl's namespace */
	const unsigned char *peer_mac; /* 6 bytes or NULL */
	unsigned int mtu;	       /* both ends; 0 = default */
};
int berth_nl_veth_add(struct berth_nl *nl, const struct berth_nl_veth *veth);

/* A macvlan `name` on `parent_index`, mode one of "bridge", "vepa", "private",
 * "passthru" (NULL = bridge), moved into `netns_fd` when >= 0. */
int berth_nl_macvlan_add(struct berth_nl *nl, const char *name, int parent_index, const char *mode,
			 int netns_fd, const unsigned char *mac, unsigned int mtu);
/* A macvtap `name` on `parent_index` (a VM's macvlan NIC: its /dev/tapN is QEMU's), mode as
 * a macvlan's. */
int berth_nl_macvtap_add(struct berth_nl *nl, const char *name, int parent_index, const char *mode,
			 const unsigned char *mac, unsigned int mtu);

/* Changes to one link; each field applies only when set. */
struct berth_nl_link_change {
	const char *name;	  /* rename (the link must be down) */
	int up;			  /* 1 up, 0 down, -1 leave */
	int master;		  /* > 0 enslave to that index, 0 leave, -1 release */
	unsigned int mtu;	  /* 0 leave */
	const unsigned char *mac; /* 6 bytes or NULL */
	int netns_fd;		  /* >= 0: move into that namespace; -1 leave */
};
#define BERTH_NL_LINK_CHANGE_INIT                                                                  \
	{                                                                                          \
		.name = NULL, .up = -1, .master = 0, .mtu = 0, .mac = NULL, .netns_fd = -1         \
	}
int berth_nl_link_set(struct berth_nl *nl, int index, const struct berth_nl_link_change *change);
int berth_nl_link_del(struct berth_nl *nl, int index);

struct berth_nl_addr {
	int index;
	int family; /* AF_INET or AF_INET6 */
	unsigned char addr[16];
	unsigned int prefixlen;
	unsigned int scope; /* RT_SCOPE_UNIVERSE, RT_SCOPE_LINK, RT_SCOPE_HOST */
	unsigned int flags; /* IFA_F_* (IFA_F_TENTATIVE...) */
};
/* Adds addr/prefixlen to `index`. -EEXIST if it is there already. */
int berth_nl_addr_add(struct berth_nl *nl, int index, int family, const void *addr,
		      unsigned int prefixlen);
int berth_nl_addr_del(struct berth_nl *nl, int index, int family, const void *addr,
		      unsigned int prefixlen);
/* Addresses of `family` (AF_UNSPEC for both) on every link; malloc'ed. */
int berth_nl_addr_list(struct berth_nl *nl, int family, struct berth_nl_addr **addrs, size_t *n);

struct berth_nl_route {
	int family;
	unsigned char dst[16];
	unsigned int dst_len; /* 0: default route */
	unsigned char gateway[16];
	bool has_gateway;
	int oif;
	unsigned int table;
};
/* Routes of `family` in every table; malloc'ed. */
int berth_nl_route_list(struct berth_nl *nl, int family, struct berth_nl_route **routes, size_t *n);
/* A route to dst/dst_len via gateway (NULL: on-link through oif) in the main table. */
int berth_nl_route_add(struct berth_nl *nl, int family, const void *dst, unsigned int dst_len,
		       const void *gateway, int oif);
