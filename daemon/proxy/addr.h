/* daemon/proxy/addr.h: the addresses of LXD's proxy device, `tcp:ADDR:PORT[-PORT][,PORT]`,
 * `udp:...` and `unix:PATH` (`unix:@NAME` abstract), parsed into what a socket call takes.
 * libc only: berthd (to check a device) and berth-proxy (to listen and connect) share it. */
#pragma once

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>

/* At most this many ports in one address: each is a listening socket. */
#define PROXY_PORTS_MAX 1024

enum proxy_proto {
	PROXY_TCP,
	PROXY_UDP,
	PROXY_UNIX,
	PROXY_PROTO_MAX,
};

struct proxy_addr {
	enum proxy_proto proto;
	int family; /* AF_INET, AF_INET6 or AF_UNIX */
	union {
		struct in_addr v4;
		struct in6_addr v6;
	} ip;		 /* tcp, udp; an empty host is the wildcard address */
	uint16_t *ports; /* owned; tcp, udp: the ports in order, ranges expanded */
	size_t n_ports;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)]; /* unix, without '@' */
	bool abstract;						/* unix: `unix:@NAME` */
};

/* Parse `s`. -EINVAL with a message in `why` (LXD's wording where it has one) when it is
 * not an address; -ENOMEM. `ret` is written only on success; release it with
 * proxy_addr_release. */
int proxy_addr_parse(const char *s, struct proxy_addr *ret, char *why, size_t why_len);
void proxy_addr_release(struct proxy_addr *a);

/* The socket address of port number `i` (tcp, udp) or of the path (unix; `i` ignored). */
socklen_t proxy_addr_sockaddr(const struct proxy_addr *a, size_t i, struct sockaddr_storage *ss);
/* The port to connect to for listening port `i`: one connect port serves them all,
 * otherwise they pair up in order. */
uint16_t proxy_addr_connect_port(const struct proxy_addr *connect, size_t i);
/* The IP address as text ("10.0.0.1", "fd42::1"). `buf` holds INET6_ADDRSTRLEN. */
const char *proxy_addr_ip_string(const struct proxy_addr *a, char *buf);
/* Whether the IP address is 0.0.0.0 or ::. */
bool proxy_addr_is_wildcard(const struct proxy_addr *a);

/* The checks LXD makes between a listen and a connect address (and a device's nat and
 * bind keys): port counts, udp only to udp, nat only tcp->tcp or udp->udp on one IP
 * version and a specific listen address. -EINVAL with the reason in `why`. */
int proxy_addr_check_pair(const struct proxy_addr *listen, const struct proxy_addr *connect,
			  bool nat, char *why, size_t why_len);
