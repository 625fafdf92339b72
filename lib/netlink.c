/* lib/netlink.c: see netlink.h. Requests are built in a fixed 4 KiB buffer
 * with rtattr helpers; dumps are read until NLMSG_DONE and handed to a
 * per-message parser. */
/* net/if.h (through netlink.h) before the linux/ headers, which defer to it. */
#include "lib/netlink.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if_addr.h>
#include <linux/if_arp.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/macros.h"

#define NL_BUF 4096
#define NL_RECV_BUF 32768

struct nl_req {
	struct nlmsghdr *h;
	size_t cap;
	union {
		char buf[NL_BUF];
		struct nlmsghdr align;
	} u;
};

int berth_nl_open(struct berth_nl *nl)
{
	struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
	int one = 1;

	nl->seq = 1;
	nl->fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (nl->fd < 0)
		return -errno;
	/* Error answers carry only the header of the failed request, and dumps
	 * are checked for being complete. */
	(void)setsockopt(nl->fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));
	(void)setsockopt(nl->fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one));
	if (bind(nl->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int r = -errno;

		close(nl->fd);
		nl->fd = -1;
		return r;
	}
	return 0;
}

int berth_nl_open_netns(struct berth_nl *nl, int netns_fd)
{
	_cleanup_close_ int self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	int r;

	if (self < 0)
		return -errno;
	if (setns(netns_fd, CLONE_NEWNET) < 0)
		return -errno;
	r = berth_nl_open(nl);
	/* Going back cannot fail for a namespace this thread was just in, short
	 * of the kernel running out of memory; a thread stuck in the wrong
	 * namespace would be worse than an error, so say so loudly. */
	if (setns(self, CLONE_NEWNET) < 0) {
		if (r == 0)
			berth_nl_close(nl);
		return -ENOTRECOVERABLE;
	}
	return r;
}

void berth_nl_close(struct berth_nl *nl)
{
	if (nl->fd >= 0)
		close(nl->fd);
	nl->fd = -1;
}

/* ---- building requests ---- */

static void req_init(struct nl_req *q, int type, int flags, const void *payload, size_t len)
{
	memset(q->u.buf, 0, sizeof(q->u.buf));
	q->cap = sizeof(q->u.buf);
	q->h = &q->u.align;
	q->h->nlmsg_len = NLMSG_LENGTH(len);
	q->h->nlmsg_type = type;
	q->h->nlmsg_flags = NLM_F_REQUEST | flags;
	memcpy(NLMSG_DATA(q->h), payload, len);
}

static struct rtattr *req_attr(struct nl_req *q, int type, const void *data, size_t len)
{
	size_t off = NLMSG_ALIGN(q->h->nlmsg_len);
	struct rtattr *rta;

	if (off + RTA_SPACE(len) > q->cap)
		return NULL;
	rta = (struct rtattr *)(q->u.buf + off);
	rta->rta_type = type;
	rta->rta_len = RTA_LENGTH(len);
	if (len)
		memcpy(RTA_DATA(rta), data, len);
	q->h->nlmsg_len = off + RTA_SPACE(len);
	return rta;
}

static int req_str(struct nl_req *q, int type, const char *s)
{
	return req_attr(q, type, s, strlen(s) + 1) ? 0 : -E2BIG;
}

static int req_u32(struct nl_req *q, int type, uint32_t v)
{
	return req_attr(q, type, &v, sizeof(v)) ? 0 : -E2BIG;
}

/* Opens a nested attribute; close it with req_nest_end. */
static struct rtattr *req_nest(struct nl_req *q, int type)
{
	return req_attr(q, type, NULL, 0);
}

static void req_nest_end(struct nl_req *q, struct rtattr *nest)
{
	nest->rta_len = (char *)q->h + q->h->nlmsg_len - (char *)nest;
}

/* Reserves room for a struct inside a nest (VETH_INFO_PEER's ifinfomsg). */
static void *req_reserve(struct nl_req *q, size_t len)
{
	size_t off = NLMSG_ALIGN(q->h->nlmsg_len);

	if (off + NLMSG_ALIGN(len) > q->cap)
		return NULL;
	q->h->nlmsg_len = off + NLMSG_ALIGN(len);
	return q->u.buf + off;
}

/* ---- talking ---- */

typedef int (*nl_parse_fn)(const struct nlmsghdr *h, void *ctx);

/* Sends `q` and reads answers until the ack (or NLMSG_DONE for a dump),
 * passing data messages to `parse`. */
static int nl_talk(struct berth_nl *nl, struct nl_req *q, nl_parse_fn parse, void *ctx)
{
	struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
	_cleanup_free_ char *buf = NULL;
	uint32_t seq = nl->seq++;
	int ret = 0;

	q->h->nlmsg_seq = seq;
	q->h->nlmsg_flags |= NLM_F_ACK;
	if (sendto(nl->fd, q->h, q->h->nlmsg_len, 0, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -errno;
	buf = malloc(NL_RECV_BUF);
	if (!buf)
		return -ENOMEM;
	for (;;) {
		ssize_t n = recv(nl->fd, buf, NL_RECV_BUF, 0);
		struct nlmsghdr *h;

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EPROTO;
		for (h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
			if (h->nlmsg_seq != seq)
				continue;
			if (h->nlmsg_type == NLMSG_DONE)
				return ret;
			if (h->nlmsg_type == NLMSG_ERROR) {
				const struct nlmsgerr *e = NLMSG_DATA(h);

				if (h->nlmsg_len < NLMSG_LENGTH(sizeof(*e)))
					return -EPROTO;
				/* An ack (error 0) ends a plain request; a dump ends with DONE. */
				if (e->error)
					return e->error;
				return ret;
			}
			if (h->nlmsg_flags & NLM_F_DUMP_INTR)
				return -EAGAIN;
			if (parse && ret == 0)
				ret = parse(h, ctx);
		}
	}
}

/* ---- dumps into growing arrays ---- */

struct vec {
	void *items;
	size_t n, cap, size;
};

static void *vec_push(struct vec *v)
{
	if (v->n == v->cap) {
		size_t cap = v->cap ? v->cap * 2 : 16;
		void *p = realloc(v->items, cap * v->size);

		if (!p)
			return NULL;
		v->items = p;
		v->cap = cap;
	}
	memset((char *)v->items + v->n * v->size, 0, v->size);
	return (char *)v->items + v->n++ * v->size;
}

static void parse_attrs(struct rtattr **tb, int max, struct rtattr *rta, int len)
{
	memset(tb, 0, sizeof(*tb) * (max + 1));
	for (; RTA_OK(rta, len); rta = RTA_NEXT(rta, len))
		if (rta->rta_type <= max && !tb[rta->rta_type])
			tb[rta->rta_type] = rta;
}

static void attr_str(char *dst, size_t size, const struct rtattr *rta)
{
	size_t len = RTA_PAYLOAD(rta);

	if (len >= size)
		len = size - 1;
	memcpy(dst, RTA_DATA(rta), len);
	dst[len] = '\0';
	dst[strnlen(dst, len)] = '\0';
}

static const char *operstate_name(unsigned int s)
{
	static const char *const names[] = {"unknown", "notpresent", "down", "lowerlayerdown",
					    "testing", "dormant",    "up"};

	return s < ARRAY_SIZE(names) ? names[s] : "unknown";
}

static int parse_link(const struct nlmsghdr *h, void *ctx)
{
	struct vec *v = ctx;
	const struct ifinfomsg *ifi = NLMSG_DATA(h);
	struct rtattr *tb[IFLA_MAX + 1];
	struct berth_nl_link *l;

	if (h->nlmsg_type != RTM_NEWLINK || h->nlmsg_len < NLMSG_LENGTH(sizeof(*ifi)))
		return 0;
	l = vec_push(v);
	if (!l)
		return -ENOMEM;
	parse_attrs(tb, IFLA_MAX, IFLA_RTA(ifi), (int)IFLA_PAYLOAD(h));
	l->index = ifi->ifi_index;
	l->flags = ifi->ifi_flags;
	l->arphrd = ifi->ifi_type;
	if (tb[IFLA_IFNAME])
		attr_str(l->name, sizeof(l->name), tb[IFLA_IFNAME]);
	if (tb[IFLA_MASTER] && RTA_PAYLOAD(tb[IFLA_MASTER]) >= 4)
		l->master = (int)*(uint32_t *)RTA_DATA(tb[IFLA_MASTER]);
	if (tb[IFLA_MTU] && RTA_PAYLOAD(tb[IFLA_MTU]) >= 4)
		l->mtu = *(uint32_t *)RTA_DATA(tb[IFLA_MTU]);
	if (tb[IFLA_ADDRESS] && RTA_PAYLOAD(tb[IFLA_ADDRESS]) == 6) {
		memcpy(l->mac, RTA_DATA(tb[IFLA_ADDRESS]), 6);
		l->has_mac = true;
	}
	snprintf(l->operstate, sizeof(l->operstate), "%s",
		 tb[IFLA_OPERSTATE] ? operstate_name(*(uint8_t *)RTA_DATA(tb[IFLA_OPERSTATE]))
				    : "unknown");
	if (tb[IFLA_STATS64] && RTA_PAYLOAD(tb[IFLA_STATS64]) >= sizeof(struct rtnl_link_stats64)) {
		struct rtnl_link_stats64 st;

		memcpy(&st, RTA_DATA(tb[IFLA_STATS64]), sizeof(st));
		l->rx_bytes = st.rx_bytes;
		l->tx_bytes = st.tx_bytes;
		l->rx_packets = st.rx_packets;
		l->tx_packets = st.tx_packets;
		l->rx_errors = st.rx_errors;
		l->tx_errors = st.tx_errors;
		l->rx_dropped = st.rx_dropped;
		l->tx_dropped = st.tx_dropped;
	}
	if (tb[IFLA_LINKINFO]) {
		struct rtattr *li[IFLA_INFO_MAX + 1];

		parse_attrs(li, IFLA_INFO_MAX, RTA_DATA(tb[IFLA_LINKINFO]),
			    (int)RTA_PAYLOAD(tb[IFLA_LINKINFO]));
		if (li[IFLA_INFO_KIND])
			attr_str(l->kind, sizeof(l->kind), li[IFLA_INFO_KIND]);
	}
	return 0;
}

int berth_nl_link_list(struct berth_nl *nl, struct berth_nl_link **links, size_t *n)
{
	struct ifinfomsg ifi = {.ifi_family = AF_UNSPEC};
	struct vec v = {.size = sizeof(struct berth_nl_link)};
	struct nl_req q;
	int r;

	req_init(&q, RTM_GETLINK, NLM_F_DUMP, &ifi, sizeof(ifi));
	r = nl_talk(nl, &q, parse_link, &v);
	if (r < 0) {
		free(v.items);
		return r;
	}
	*links = v.items;
	*n = v.n;
	return 0;
}

int berth_nl_link_get(struct berth_nl *nl, const char *name, struct berth_nl_link *link)
{
	struct ifinfomsg ifi = {.ifi_family = AF_UNSPEC};
	struct vec v = {.size = sizeof(struct berth_nl_link)};
	struct nl_req q;
	int r;

	if (strlen(name) >= IFNAMSIZ)
		return -ENODEV;
	req_init(&q, RTM_GETLINK, 0, &ifi, sizeof(ifi));
	r = req_str(&q, IFLA_IFNAME, name);
	if (r >= 0)
		r = nl_talk(nl, &q, parse_link, &v);
	if (r >= 0 && v.n == 0)
		r = -ENODEV;
	if (r >= 0)
		*link = *(struct berth_nl_link *)v.items;
	free(v.items);
	return r;
}

/* ---- creating and changing links ---- */

static int newlink_begin(struct nl_req *q, const char *name, unsigned int mtu, const char *kind,
			 struct rtattr **info)
{
	struct ifinfomsg ifi = {.ifi_family = AF_UNSPEC};
	int r;

	if (strlen(name) >= IFNAMSIZ || !*name)
		return -EINVAL;
	req_init(q, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, &ifi, sizeof(ifi));
	r = req_str(q, IFLA_IFNAME, name);
	if (r >= 0 && mtu)
		r = req_u32(q, IFLA_MTU, mtu);
	if (r < 0)
		return r;
	*info = req_nest(q, IFLA_LINKINFO);
	if (!*info || req_str(q, IFLA_INFO_KIND, kind) < 0)
		return -E2BIG;
	return 0;
}

int berth_nl_bridge_add(struct berth_nl *nl, const char *name, unsigned int mtu)
{
	struct nl_req q;
	struct rtattr *info;
	int r = newlink_begin(&q, name, mtu, "bridge", &info);

	if (r < 0)
		return r;
	req_nest_end(&q, info);
	return nl_talk(nl, &q, NULL, NULL);
}

int berth_nl_veth_add(struct berth_nl *nl, const struct berth_nl_veth *veth)
{
	struct nl_req q;
	struct rtattr *info, *data, *peer;
	struct ifinfomsg *pifi;
	int r;

	if (!veth->peer || strlen(veth->peer) >= IFNAMSIZ || !*veth->peer)
		return -EINVAL;
	r = newlink_begin(&q, veth->name, veth->mtu, "veth", &info);
	if (r < 0)
		return r;
	data = req_nest(&q, IFLA_INFO_DATA);
	peer = data ? req_nest(&q, VETH_INFO_PEER) : NULL;
	pifi = peer ? req_reserve(&q, sizeof(*pifi)) : NULL;
	if (!pifi)
		return -E2BIG;
	pifi->ifi_family = AF_UNSPEC;
	r = req_str(&q, IFLA_IFNAME, veth->peer);
	if (r >= 0 && veth->mtu)
		r = req_u32(&q, IFLA_MTU, veth->mtu);
	if (r >= 0 && veth->peer_mac && !req_attr(&q, IFLA_ADDRESS, veth->peer_mac, 6))
		r = -E2BIG;
	if (r >= 0 && veth->peer_netns_fd >= 0)
		r = req_u32(&q, IFLA_NET_NS_FD, (uint32_t)veth->peer_netns_fd);
	if (r < 0)
		return r;
	req_nest_end(&q, peer);
	req_nest_end(&q, data);
	req_nest_end(&q, info);
	return nl_talk(nl, &q, NULL, NULL);
}

static int macvx_add(struct berth_nl *nl, const char *kind, const char *name, int parent_index,
		     const char *mode, int netns_fd, const unsigned char *mac, unsigned int mtu);

int berth_nl_macvlan_add(struct berth_nl *nl, const char *name, int parent_index, const char *mode,
			 int netns_fd, const unsigned char *mac, unsigned int mtu)
{
	return macvx_add(nl, "macvlan", name, parent_index, mode, netns_fd, mac, mtu);
}

int berth_nl_macvtap_add(struct berth_nl *nl, const char *name, int parent_index, const char *mode,
			 const unsigned char *mac, unsigned int mtu)
{
	return macvx_add(nl, "macvtap", name, parent_index, mode, -1, mac, mtu);
}

static int macvx_add(struct berth_nl *nl, const char *kind, const char *name, int parent_index,
		     const char *mode, int netns_fd, const unsigned char *mac, unsigned int mtu)
{
	struct nl_req q;
	struct rtattr *info, *data;
	uint32_t m;
	int r;

	if (!mode || streq(mode, "bridge"))
		m = MACVLAN_MODE_BRIDGE;
	else if (streq(mode, "vepa"))
		m = MACVLAN_MODE_VEPA;
	else if (streq(mode, "private"))
		m = MACVLAN_MODE_PRIVATE;
	else if (streq(mode, "passthru"))
		m = MACVLAN_MODE_PASSTHRU;
	else
		return -EINVAL;
	r = newlink_begin(&q, name, mtu, kind, &info);
	if (r < 0)
		return r;
	data = req_nest(&q, IFLA_INFO_DATA);
	if (!data || req_u32(&q, IFLA_MACVLAN_MODE, m) < 0)
		return -E2BIG;
	req_nest_end(&q, data);
	req_nest_end(&q, info);
	r = req_u32(&q, IFLA_LINK, (uint32_t)parent_index);
	if (r >= 0 && netns_fd >= 0)
		r = req_u32(&q, IFLA_NET_NS_FD, (uint32_t)netns_fd);
	if (r >= 0 && mac && !req_attr(&q, IFLA_ADDRESS, mac, 6))
		r = -E2BIG;
	if (r < 0)
		return r;
	return nl_talk(nl, &q, NULL, NULL);
}

int berth_nl_link_set(struct berth_nl *nl, int index, const struct berth_nl_link_change *c)
{
	struct ifinfomsg ifi = {.ifi_family = AF_UNSPEC, .ifi_index = index};
	struct nl_req q;
	int r = 0;

	if (c->up >= 0) {
		ifi.ifi_change = IFF_UP;
		ifi.ifi_flags = c->up ? IFF_UP : 0;
	}
	req_init(&q, RTM_NEWLINK, 0, &ifi, sizeof(ifi));
	if (c->name) {
		if (strlen(c->name) >= IFNAMSIZ || !*c->name)
			return -EINVAL;
		r = req_str(&q, IFLA_IFNAME, c->name);
	}
	if (r >= 0 && c->master)
		r = req_u32(&q, IFLA_MASTER, c->master > 0 ? (uint32_t)c->master : 0);
	if (r >= 0 && c->mtu)
		r = req_u32(&q, IFLA_MTU, c->mtu);
	if (r >= 0 && c->mac && !req_attr(&q, IFLA_ADDRESS, c->mac, 6))
		r = -E2BIG;
	if (r >= 0 && c->netns_fd >= 0)
		r = req_u32(&q, IFLA_NET_NS_FD, (uint32_t)c->netns_fd);
	if (r < 0)
		return r;
	return nl_talk(nl, &q, NULL, NULL);
}

int berth_nl_link_del(struct berth_nl *nl, int index)
{
	struct ifinfomsg ifi = {.ifi_family = AF_UNSPEC, .ifi_index = index};
	struct nl_req q;

	req_init(&q, RTM_DELLINK, 0, &ifi, sizeof(ifi));
	return nl_talk(nl, &q, NULL, NULL);
}

/* ---- addresses ---- */

static size_t family_len(int family)
{
	return family == AF_INET ? 4 : family == AF_INET6 ? 16 : 0;
}

static int addr_req(struct berth_nl *nl, int type, int flags, int index, int family,
		    const void *addr, unsigned int prefixlen)
{
	struct ifaddrmsg ifa = {
		.ifa_family = (unsigned char)family,
		.ifa_prefixlen = (unsigned char)prefixlen,
		.ifa_index = (unsigned int)index,
	};
	size_t len = family_len(family);
	struct nl_req q;

	if (!len || prefixlen > len * 8)
		return -EINVAL;
	req_init(&q, type, flags, &ifa, sizeof(ifa));
	if (!req_attr(&q, IFA_LOCAL, addr, len) || !req_attr(&q, IFA_ADDRESS, addr, len))
		return -E2BIG;
	return nl_talk(nl, &q, NULL, NULL);
}

int berth_nl_addr_add(struct berth_nl *nl, int index, int family, const void *addr,
		      unsigned int prefixlen)
{
	return addr_req(nl, RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, index, family, addr, prefixlen);
}

int berth_nl_addr_del(struct berth_nl *nl, int index, int family, const void *addr,
		      unsigned int prefixlen)
{
	return addr_req(nl, RTM_DELADDR, 0, index, family, addr, prefixlen);
}

static int parse_addr(const struct nlmsghdr *h, void *ctx)
{
	struct vec *v = ctx;
	const struct ifaddrmsg *ifa = NLMSG_DATA(h);
	struct rtattr *tb[IFA_MAX + 1];
	const struct rtattr *a;
	struct berth_nl_addr *out;
	size_t len = family_len(ifa->ifa_family);

	if (h->nlmsg_type != RTM_NEWADDR || h->nlmsg_len < NLMSG_LENGTH(sizeof(*ifa)) || !len)
		return 0;
	parse_attrs(tb, IFA_MAX, IFA_RTA(ifa), (int)IFA_PAYLOAD(h));
	/* IFA_LOCAL is the interface's own address on point-to-point links. */
	a = tb[IFA_LOCAL] ? tb[IFA_LOCAL] : tb[IFA_ADDRESS];
	if (!a || RTA_PAYLOAD(a) < len)
		return 0;
	out = vec_push(v);
	if (!out)
		return -ENOMEM;
	out->index = (int)ifa->ifa_index;
	out->family = ifa->ifa_family;
	memcpy(out->addr, RTA_DATA(a), len);
	out->prefixlen = ifa->ifa_prefixlen;
	out->scope = ifa->ifa_scope;
	out->flags = ifa->ifa_flags;
	if (tb[IFA_FLAGS] && RTA_PAYLOAD(tb[IFA_FLAGS]) >= 4)
		out->flags = *(uint32_t *)RTA_DATA(tb[IFA_FLAGS]);
	return 0;
}

int berth_nl_addr_list(struct berth_nl *nl, int family, struct berth_nl_addr **addrs, size_t *n)
{
	struct ifaddrmsg ifa = {.ifa_family = (unsigned char)family};
	struct vec v = {.size = sizeof(struct berth_nl_addr)};
	struct nl_req q;
	int r;

	req_init(&q, RTM_GETADDR, NLM_F_DUMP, &ifa, sizeof(ifa));
	r = nl_talk(nl, &q, parse_addr, &v);
	if (r < 0) {
		free(v.items);
		return r;
	}
	*addrs = v.items;
	*n = v.n;
	return 0;
}

/* ---- routes ---- */

static int parse_route(const struct nlmsghdr *h, void *ctx)
{
	struct vec *v = ctx;
	const struct rtmsg *rtm = NLMSG_DATA(h);
	struct rtattr *tb[RTA_MAX + 1];
	struct berth_nl_route *out;
	size_t len = family_len(rtm->rtm_family);

	if (h->nlmsg_type != RTM_NEWROUTE || h->nlmsg_len < NLMSG_LENGTH(sizeof(*rtm)) || !len)
		return 0;
	parse_attrs(tb, RTA_MAX, RTM_RTA(rtm), (int)RTM_PAYLOAD(h));
	out = vec_push(v);
	if (!out)
		return -ENOMEM;
	out->family = rtm->rtm_family;
	out->dst_len = rtm->rtm_dst_len;
	out->table = rtm->rtm_table;
	if (tb[RTA_TABLE] && RTA_PAYLOAD(tb[RTA_TABLE]) >= 4)
		out->table = *(uint32_t *)RTA_DATA(tb[RTA_TABLE]);
	if (tb[RTA_DST] && RTA_PAYLOAD(tb[RTA_DST]) >= len)
		memcpy(out->dst, RTA_DATA(tb[RTA_DST]), len);
	if (tb[RTA_GATEWAY] && RTA_PAYLOAD(tb[RTA_GATEWAY]) >= len) {
		memcpy(out->gateway, RTA_DATA(tb[RTA_GATEWAY]), len);
		out->has_gateway = true;
	}
	if (tb[RTA_OIF] && RTA_PAYLOAD(tb[RTA_OIF]) >= 4)
		out->oif = (int)*(uint32_t *)RTA_DATA(tb[RTA_OIF]);
	return 0;
}

int berth_nl_route_list(struct berth_nl *nl, int family, struct berth_nl_route **routes, size_t *n)
{
	struct rtmsg rtm = {.rtm_family = (unsigned char)family};
	struct vec v = {.size = sizeof(struct berth_nl_route)};
	struct nl_req q;
	int r;

	req_init(&q, RTM_GETROUTE, NLM_F_DUMP, &rtm, sizeof(rtm));
	r = nl_talk(nl, &q, parse_route, &v);
	if (r < 0) {
		free(v.items);
		return r;
	}
	*routes = v.items;
	*n = v.n;
	return 0;
}

int berth_nl_route_add(struct berth_nl *nl, int family, const void *dst, unsigned int dst_len,
		       const void *gateway, int oif)
{
	struct rtmsg rtm = {
		.rtm_family = (unsigned char)family,
		.rtm_dst_len = (unsigned char)dst_len,
		.rtm_table = RT_TABLE_MAIN,
		.rtm_protocol = RTPROT_STATIC,
		.rtm_scope = gateway ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK,
		.rtm_type = RTN_UNICAST,
	};
	size_t len = family_len(family);
	struct nl_req q;
	int r = 0;

	if (!len || dst_len > len * 8)
		return -EINVAL;
	req_init(&q, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, &rtm, sizeof(rtm));
	if (dst_len && !req_attr(&q, RTA_DST, dst, len))
		r = -E2BIG;
	if (r >= 0 && gateway && !req_attr(&q, RTA_GATEWAY, gateway, len))
		r = -E2BIG;
	if (r >= 0 && oif > 0)
		r = req_u32(&q, RTA_OIF, (uint32_t)oif);
	if (r < 0)
		return r;
	return nl_talk(nl, &q, NULL, NULL);
}
