/* daemon/proxy/addr.c: parsing and pairing of proxy device addresses (see addr.h). */
#include "daemon/proxy/addr.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/macros.h"

static int fail(char *why, size_t why_len, const char *fmt, ...) _printf_(3, 4);
static int fail(char *why, size_t why_len, const char *fmt, ...)
{
	va_list ap;

	if (why && why_len) {
		va_start(ap, fmt);
		vsnprintf(why, why_len, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

static bool parse_port(const char *s, size_t len, uint16_t *ret)
{
	unsigned long v = 0;

	if (len == 0 || len > 5)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (!isdigit((unsigned char)s[i]))
			return false;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v == 0 || v > 65535)
		return false;
	*ret = (uint16_t)v;
	return true;
}

/* "80", "80-90", "80,443,8000-8010" into a->ports. */
static int parse_ports(const char *s, struct proxy_addr *a, char *why, size_t why_len)
{
	const char *p = s;

	if (!*s)
		return fail(why, why_len, "At least one port is required");
	while (*p) {
		const char *end = strchrnul(p, ','), *dash = memchr(p, '-', (size_t)(end - p));
		uint16_t first, last;
		uint16_t *n;

		if (!dash) {
			if (!parse_port(p, (size_t)(end - p), &first))
				return fail(why, why_len, "Invalid port \"%.*s\"", (int)(end - p),
					    p);
			last = first;
		} else if (!parse_port(p, (size_t)(dash - p), &first) ||
			   !parse_port(dash + 1, (size_t)(end - dash - 1), &last) || last < first) {
			return fail(why, why_len, "Invalid port range \"%.*s\"", (int)(end - p), p);
		}
		if (a->n_ports + (size_t)(last - first) + 1 > PROXY_PORTS_MAX)
			return fail(why, why_len, "Too many ports (at most %d)", PROXY_PORTS_MAX);
		n = realloc(a->ports, (a->n_ports + (size_t)(last - first) + 1) * sizeof(*n));
		if (!n)
			return -ENOMEM;
		a->ports = n;
		for (uint32_t port = first; port <= last; port++)
			a->ports[a->n_ports++] = (uint16_t)port;
		p = *end ? end + 1 : end;
		if (*end && !*p)
			return fail(why, why_len, "Invalid port list \"%s\"", s);
	}
	return 0;
}

/* "ADDR:PORTS", "[V6]:PORTS" or ":PORTS" (the wildcard address). */
static int parse_inet(const char *s, struct proxy_addr *a, char *why, size_t why_len)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *ports;
	size_t hlen;

	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (!close || close[1] != ':')
			return fail(why, why_len, "Invalid address \"%s\": expected [IPV6]:PORT",
				    s);
		hlen = (size_t)(close - s - 1);
		if (hlen >= sizeof(host))
			return fail(why, why_len, "Invalid IPv6 address in \"%s\"", s);
		memcpy(host, s + 1, hlen);
		host[hlen] = '\0';
		if (inet_pton(AF_INET6, host, &a->ip.v6) != 1)
			return fail(why, why_len, "Invalid IPv6 address \"%s\"", host);
		a->family = AF_INET6;
		ports = close + 2;
	} else {
		const char *colon = strrchr(s, ':');

		if (!colon)
			return fail(why, why_len, "Invalid address \"%s\": missing port", s);
		hlen = (size_t)(colon - s);
		if (memchr(s, ':', hlen))
			return fail(why, why_len,
				    "Invalid address \"%s\": IPv6 addresses go in brackets, "
				    "[ADDR]:PORT",
				    s);
		if (hlen >= sizeof(host))
			return fail(why, why_len, "Invalid IP address in \"%s\"", s);
		memcpy(host, s, hlen);
		host[hlen] = '\0';
		a->family = AF_INET;
		if (hlen && inet_pton(AF_INET, host, &a->ip.v4) != 1)
			return fail(why, why_len, "Invalid IP address \"%s\"", host);
		if (!hlen)
			a->ip.v4.s_addr = htonl(INADDR_ANY);
		ports = colon + 1;
	}
	return parse_ports(ports, a, why, why_len);
}

int proxy_addr_parse(const char *s, struct proxy_addr *ret, char *why, size_t why_len)
{
	static const char *const protos[] = {"tcp", "udp", "unix"};
	struct proxy_addr a = {.proto = PROXY_PROTO_MAX};
	const char *colon = strchr(s, ':');
	int r;

	for (size_t i = 0; colon && i < ARRAY_SIZE(protos); i++)
		if (strlen(protos[i]) == (size_t)(colon - s) &&
		    strneq(s, protos[i], (size_t)(colon - s)))
			a.proto = (enum proxy_proto)i;
	if (a.proto == PROXY_PROTO_MAX)
		return fail(why, why_len, "Unknown protocol type \"%.*s\" (tcp, udp or unix)",
			    colon ? (int)(colon - s) : (int)strlen(s), s);
	s = colon + 1;
	if (!*s)
		return fail(why, why_len, "Missing address");
	if (a.proto == PROXY_UNIX) {
		a.family = AF_UNIX;
		a.abstract = s[0] == '@';
		if (a.abstract)
			s++;
		if (!*s)
			return fail(why, why_len, "Missing unix socket name");
		if (strlen(s) >= sizeof(a.path))
			return fail(why, why_len, "Unix socket path too long (at most %zu bytes)",
				    sizeof(a.path) - 1);
		if (!a.abstract && s[0] != '/')
			return fail(why, why_len, "Unix socket path \"%s\" must be absolute", s);
		strcpy(a.path, s);
		*ret = a;
		return 0;
	}
	r = parse_inet(s, &a, why, why_len);
	if (r < 0) {
		free(a.ports);
		return r;
	}
	*ret = a;
	return 0;
}

void proxy_addr_release(struct proxy_addr *a)
{
	if (!a)
		return;
	free(a->ports);
	a->ports = NULL;
	a->n_ports = 0;
}

socklen_t proxy_addr_sockaddr(const struct proxy_addr *a, size_t i, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (a->family == AF_UNIX) {
		struct sockaddr_un *un = (struct sockaddr_un *)ss;
		size_t len = strlen(a->path);

		un->sun_family = AF_UNIX;
		if (a->abstract) {
			/* The name is the bytes after a NUL, no terminator: length counts. */
			memcpy(un->sun_path + 1, a->path, len);
			return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + len);
		}
		memcpy(un->sun_path, a->path, len + 1);
		return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1);
	}
	if (a->family == AF_INET6) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;

		in6->sin6_family = AF_INET6;
		in6->sin6_addr = a->ip.v6;
		in6->sin6_port = htons(i < a->n_ports ? a->ports[i] : 0);
		return sizeof(*in6);
	}
	{
		struct sockaddr_in *in = (struct sockaddr_in *)ss;

		in->sin_family = AF_INET;
		in->sin_addr = a->ip.v4;
		in->sin_port = htons(i < a->n_ports ? a->ports[i] : 0);
		return sizeof(*in);
	}
}

uint16_t proxy_addr_connect_port(const struct proxy_addr *connect, size_t i)
{
	if (connect->n_ports == 0)
		return 0;
	return connect->n_ports == 1 ? connect->ports[0] : connect->ports[i % connect->n_ports];
}

const char *proxy_addr_ip_string(const struct proxy_addr *a, char *buf)
{
	if (!inet_ntop(a->family,
		       a->family == AF_INET6 ? (const void *)&a->ip.v6 : (const void *)&a->ip.v4,
		       buf, INET6_ADDRSTRLEN))
		buf[0] = '\0';
	return buf;
}

bool proxy_addr_is_wildcard(const struct proxy_addr *a)
{
	if (a->family == AF_INET6)
		return IN6_IS_ADDR_UNSPECIFIED(&a->ip.v6);
	return a->family == AF_INET && a->ip.v4.s_addr == htonl(INADDR_ANY);
}

int proxy_addr_check_pair(const struct proxy_addr *listen, const struct proxy_addr *connect,
			  bool nat, char *why, size_t why_len)
{
	static const char *const names[] = {"tcp", "udp", "unix"};

	if (listen->proto == PROXY_UDP && connect->proto != PROXY_UDP)
		return fail(why, why_len, "Proxying from udp to non-udp protocol is not supported");
	if (listen->proto != PROXY_UDP && connect->proto == PROXY_UDP)
		return fail(why, why_len, "Proxying from %s to udp is not supported",
			    names[listen->proto]);
	if (listen->proto == PROXY_UNIX && connect->n_ports > 1)
		return fail(why, why_len,
			    "Mismatch between listen port(s) and connect port(s) count");
	if (listen->proto != PROXY_UNIX && connect->proto != PROXY_UNIX && connect->n_ports > 1 &&
	    connect->n_ports != listen->n_ports)
		return fail(why, why_len,
			    "Mismatch between listen port(s) and connect port(s) count");
	if (!nat)
		return 0;
	if (listen->proto == PROXY_UNIX || connect->proto == PROXY_UNIX ||
	    listen->proto != connect->proto)
		return fail(why, why_len, "Proxying %s <-> %s is not supported when using NAT",
			    names[listen->proto], names[connect->proto]);
	if (proxy_addr_is_wildcard(listen))
		return fail(why, why_len,
			    "Cannot listen on wildcard address \"%s\" when in nat mode",
			    listen->family == AF_INET6 ? "::" : "0.0.0.0");
	if (listen->family != connect->family)
		return fail(why, why_len,
			    "Cannot mix IP versions between listen and connect in nat mode");
	return 0;
}
