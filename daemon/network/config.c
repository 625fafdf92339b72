/* daemon/network/config.c: a bridge network's config keys (LXD's names), their checks,
 * and the choice of free subnets for "auto": a random 10.x.y.0/24 or fdxx:...::/64
 * that overlaps no route, no address of berthd's network namespace and no other
 * network. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <linux/rtnetlink.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "daemon/db/db.h"
#include "daemon/network/internal.h"
#include "daemon/network/managed.h"
#include "lib/json.h"
#include "lib/macros.h"
#include "lib/netlink.h"
#include "lib/util.h"

enum key_kind { KEY_ADDR4, KEY_ADDR6, KEY_BOOL, KEY_RANGES4, KEY_MTU, KEY_DOMAIN, KEY_STRING };

static const struct {
	const char *key;
	enum key_kind kind;
} keys[] = {
	{"ipv4.address", KEY_ADDR4},	   {"ipv4.nat", KEY_BOOL},	{"ipv4.dhcp", KEY_BOOL},
	{"ipv4.dhcp.ranges", KEY_RANGES4}, {"ipv6.address", KEY_ADDR6}, {"ipv6.nat", KEY_BOOL},
	{"ipv6.dhcp", KEY_BOOL},	   {"bridge.mtu", KEY_MTU},	{"dns.domain", KEY_DOMAIN},
	{"raw.dnsmasq", KEY_STRING},
};

int network_name_check(const char *name, struct berth_error *err)
{
	size_t len = strlen(name);

	if (len == 0 || len >= IFNAMSIZ)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Invalid network name \"%s\": must be 1 to %d characters",
				       name, IFNAMSIZ - 1);
	if (streq(name, ".") || streq(name, ".."))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Invalid network name \"%s\"", name);
	for (size_t i = 0; i < len; i++)
		if (!isalnum((unsigned char)name[i]) && !strchr("-_.", name[i]))
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "Invalid network name \"%s\": only letters, digits"
					       " and - _ . are allowed",
					       name);
	return 0;
}

static int parse_bool(const char *v, bool *ret)
{
	static const char *const yes[] = {"true", "1", "yes", "on"};
	static const char *const no[] = {"false", "0", "no", "off"};

	for (size_t i = 0; i < ARRAY_SIZE(yes); i++) {
		if (strcasecmp(v, yes[i]) == 0) {
			*ret = true;
			return 0;
		}
		if (strcasecmp(v, no[i]) == 0) {
			*ret = false;
			return 0;
		}
	}
	return -EINVAL;
}

/* "ADDR/PREFIX" of `family` into addr (4 or 16 bytes) and prefix. */
static int parse_cidr(int family, const char *s, void *addr, unsigned int *prefix)
{
	char buf[INET6_ADDRSTRLEN + 8];
	const char *slash = strchr(s, '/');
	unsigned int max = family == AF_INET ? 32 : 128;
	char *end = NULL;
	unsigned long p;

	if (!slash || (size_t)(slash - s) >= sizeof(buf) - 1)
		return -EINVAL;
	memcpy(buf, s, (size_t)(slash - s));
	buf[slash - s] = '\0';
	if (inet_pton(family, buf, addr) != 1)
		return -EINVAL;
	errno = 0;
	p = strtoul(slash + 1, &end, 10);
	if (!isdigit((unsigned char)slash[1]) || *end || errno || p == 0 || p > max)
		return -EINVAL;
	*prefix = (unsigned int)p;
	return 0;
}

/* Do a/alen and b/blen (byte strings of `bytes`) share their first min(alen, blen)
 * bits? */
static bool prefix_overlap(const unsigned char *a, unsigned int alen, const unsigned char *b,
			   unsigned int blen)
{
	unsigned int n = alen < blen ? alen : blen;

	for (unsigned int i = 0; i < n / 8; i++)
		if (a[i] != b[i])
			return false;
	if (n % 8) {
		unsigned char mask = (unsigned char)(0xff << (8 - n % 8));
		if ((a[n / 8] & mask) != (b[n / 8] & mask))
			return false;
	}
	return true;
}

static void ifname_of(const struct berth_nl_link *links, size_t n, int index, char *buf)
{
	snprintf(buf, IFNAMSIZ, "%d", index);
	for (size_t i = 0; i < n; i++)
		if (links[i].index == index)
			snprintf(buf, IFNAMSIZ, "%s", links[i].name);
}

/* Refuse addr/prefix of `family` (as the user wrote it: `text`) when it overlaps a
 * non-default route or an address of a link other than bridge `self`, or the subnet of
 * another network. -EADDRINUSE (400) naming the overlap. */
static int check_overlap(struct db *db, const char *self, int family, const unsigned char *addr,
			 unsigned int prefix, const char *text, struct berth_error *err)
{
	_cleanup_free_ struct berth_nl_link *links = NULL;
	_cleanup_free_ struct berth_nl_route *routes = NULL;
	_cleanup_free_ struct berth_nl_addr *addrs = NULL;
	json_auto_t *nets = NULL;
	size_t n_links = 0, n_routes = 0, n_addrs = 0, i;
	char ifname[IFNAMSIZ], other[INET6_ADDRSTRLEN];
	struct berth_nl nl;
	int self_index = -1;
	json_t *net;
	int r;

	r = berth_nl_open(&nl);
	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "netlink: %s", strerror(-r));
	r = berth_nl_link_list(&nl, &links, &n_links);
	if (r >= 0)
		r = berth_nl_route_list(&nl, family, &routes, &n_routes);
	if (r >= 0)
		r = berth_nl_addr_list(&nl, family, &addrs, &n_addrs);
	berth_nl_close(&nl);
	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "netlink: %s", strerror(-r));
	for (i = 0; i < n_links; i++)
		if (streq(links[i].name, self))
			self_index = links[i].index;
	for (i = 0; i < n_routes; i++) {
		const struct berth_nl_route *rt = &routes[i];

		if (rt->dst_len == 0 || (self_index > 0 && rt->oif == self_index))
			continue;
		/* The local table's host routes of the namespace's own addresses are covered
		 * by the address check below (with their real prefix). */
		if (rt->table == 255)
			continue;
		if (!prefix_overlap(rt->dst, rt->dst_len, addr, prefix))
			continue;
		inet_ntop(family, rt->dst, other, sizeof(other));
		ifname_of(links, n_links, rt->oif, ifname);
		return berth_error_set(err, -EADDRINUSE, BERTH_ERR_BAD_REQUEST,
				       "Network address \"%s\" overlaps with route %s/%u on dev %s",
				       text, other, rt->dst_len, ifname);
	}
	for (i = 0; i < n_addrs; i++) {
		const struct berth_nl_addr *a = &addrs[i];

		if ((self_index > 0 && a->index == self_index) || a->scope == RT_SCOPE_LINK)
			continue;
		if (!prefix_overlap(a->addr, a->prefixlen, addr, prefix))
			continue;
		inet_ntop(family, a->addr, other, sizeof(other));
		ifname_of(links, n_links, a->index, ifname);
		return berth_error_set(
			err, -EADDRINUSE, BERTH_ERR_BAD_REQUEST,
			"Network address \"%s\" overlaps with address %s/%u on dev %s", text, other,
			a->prefixlen, ifname);
	}
	r = db_network_list(db, &nets, err);
	if (r < 0)
		return r;
	json_array_foreach(nets, i, net) {
		const char *name = berth_json_string(net, "name");
		const char *v = berth_json_string(json_object_get(net, "config"),
						  family == AF_INET ? "ipv4.address"
								    : "ipv6.address");
		unsigned char oaddr[16];
		unsigned int oprefix;

		if (!name || streq(name, self) || !v || parse_cidr(family, v, oaddr, &oprefix) < 0)
			continue;
		if (prefix_overlap(oaddr, oprefix, addr, prefix))
			return berth_error_set(err, -EADDRINUSE, BERTH_ERR_BAD_REQUEST,
					       "Network address \"%s\" overlaps with network \"%s\""
					       " (%s)",
					       text, name, v);
	}
	return 0;
}

/* A free random subnet for "auto", written as the gateway's CIDR into `buf`. */
static int pick_subnet(struct db *db, const char *self, int family, char *buf, size_t size,
		       struct berth_error *err)
{
	for (int attempt = 0; attempt < 200; attempt++) {
		unsigned char rnd[8], addr[16] = {0};
		char text[INET6_ADDRSTRLEN];
		unsigned int prefix;
		int r;

		if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd))
			return berth_error_set(err, -EIO, BERTH_ERR_INTERNAL, "getrandom: %m");
		if (family == AF_INET) {
			addr[0] = 10;
			addr[1] = rnd[0];
			addr[2] = rnd[1];
			addr[3] = 1;
			prefix = 24;
		} else {
			addr[0] = 0xfd;
			memcpy(addr + 1, rnd, 7);
			addr[15] = 1;
			prefix = 64;
		}
		inet_ntop(family, addr, text, sizeof(text));
		snprintf(buf, size, "%s/%u", text, prefix);
		r = check_overlap(db, self, family, addr, prefix, buf, NULL);
		if (r == -EADDRINUSE)
			continue;
		if (r < 0)
			return berth_error_set(err, r, BERTH_ERR_INTERNAL,
					       "Cannot look for a free subnet: %s", strerror(-r));
		return 0;
	}
	return berth_error_set(err, -EADDRNOTAVAIL, BERTH_ERR_INTERNAL,
			       "No free %s subnet found for the network",
			       family == AF_INET ? "IPv4" : "IPv6");
}

/* ipv4.address / ipv6.address: "auto" resolved, "none" kept, a CIDR checked. */
static int check_address(struct db *db, const char *self, json_t *config, const char *key,
			 int family, struct berth_error *err)
{
	const char *v = berth_json_string(config, key);
	unsigned char addr[16], net[16];
	char buf[INET6_ADDRSTRLEN + 8];
	unsigned int prefix, bytes = family == AF_INET ? 4 : 16;
	bool host_zero = true;
	int r;

	if (!v || streq(v, "none"))
		return 0;
	if (streq(v, "auto")) {
		if (family == AF_INET6 && access("/proc/sys/net/ipv6", F_OK) < 0) {
			json_object_set_new(config, key, json_string("none"));
			return 0;
		}
		r = pick_subnet(db, self, family, buf, sizeof(buf), err);
		if (r < 0)
			return r;
		json_object_set_new(config, key, json_string(buf));
		return 0;
	}
	if (parse_cidr(family, v, addr, &prefix) < 0)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Invalid value for network \"%s\" option \"%s\": \"%s\" is"
				       " not \"auto\", \"none\" or an %s address with a prefix"
				       " (like %s)",
				       self, key, v, family == AF_INET ? "IPv4" : "IPv6",
				       family == AF_INET ? "10.1.2.1/24" : "fd42::1/64");
	if (family == AF_INET && prefix > 30)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Invalid value for network \"%s\" option \"%s\": a /%u"
				       " leaves no room for instances",
				       self, key, prefix);
	memcpy(net, addr, bytes);
	for (unsigned int bit = prefix; bit < bytes * 8; bit++) {
		if (addr[bit / 8] & (0x80 >> (bit % 8)))
			host_zero = false;
		net[bit / 8] &= (unsigned char)~(0x80 >> (bit % 8));
	}
	if (host_zero)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Invalid value for network \"%s\" option \"%s\": \"%s\" is"
				       " the subnet's own address, give the bridge's address"
				       " (like %s)",
				       self, key, v,
				       family == AF_INET ? "10.1.2.1/24" : "fd42::1/64");
	return check_overlap(db, self, family, net, prefix, v, err);
}

static int check_ranges(const char *self, const char *v, struct berth_error *err)
{
	_cleanup_free_ char *copy = strdup(v);
	char *save = NULL;

	if (!copy)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "Out of memory");
	for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *dash = strchr(tok, '-');
		struct in_addr a, b;

		if (dash)
			*dash = '\0';
		if (!dash || inet_pton(AF_INET, tok, &a) != 1 ||
		    inet_pton(AF_INET, dash + 1, &b) != 1 || ntohl(a.s_addr) > ntohl(b.s_addr))
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "Invalid value for network \"%s\" option"
					       " \"ipv4.dhcp.ranges\": \"%s\" is not a list of"
					       " FIRST-LAST IPv4 ranges",
					       self, v);
	}
	return 0;
}

/* Every ipv4.dhcp.ranges address must be in the IPv4 subnet (checked once the address
 * is known). */
static int check_ranges_in_subnet(const char *self, const json_t *config, struct berth_error *err)
{
	const char *ranges = berth_json_string(config, "ipv4.dhcp.ranges");
	const char *a4 = berth_json_string(config, "ipv4.address");
	_cleanup_free_ char *copy = NULL;
	struct in_addr gw;
	unsigned int prefix;
	uint32_t mask;
	char *save = NULL;

	if (!ranges)
		return 0;
	if (!a4 || parse_cidr(AF_INET, a4, &gw, &prefix) < 0)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Network \"%s\": ipv4.dhcp.ranges needs an ipv4.address",
				       self);
	mask = 0xffffffffu << (32 - prefix);
	copy = strdup(ranges);
	if (!copy)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "Out of memory");
	for (char *tok = strtok_r(copy, ",-", &save); tok; tok = strtok_r(NULL, ",-", &save)) {
		struct in_addr a;

		if (inet_pton(AF_INET, tok, &a) != 1 ||
		    (ntohl(a.s_addr) & mask) != (ntohl(gw.s_addr) & mask))
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "Invalid value for network \"%s\" option"
					       " \"ipv4.dhcp.ranges\": %s is not in %s",
					       self, tok, a4);
	}
	return 0;
}

static int check_value(const char *self, const char *key, enum key_kind kind, const char *v,
		       struct berth_error *err)
{
	bool b;

	switch (kind) {
	case KEY_BOOL:
		if (parse_bool(v, &b) < 0)
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "Invalid value for network \"%s\" option \"%s\":"
					       " \"%s\" is not a boolean",
					       self, key, v);
		return 0;
	case KEY_MTU: {
		char *end = NULL;
		long mtu = strtol(v, &end, 10);

		if (!*v || *end || mtu < 576 || mtu > 65535)
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "Invalid value for network \"%s\" option \"%s\":"
					       " \"%s\" is not an MTU (576 to 65535)",
					       self, key, v);
		return 0;
	}
	case KEY_DOMAIN:
		for (const char *p = v; *p; p++)
			if (!isalnum((unsigned char)*p) && *p != '-' && *p != '.')
				return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
						       "Invalid value for network \"%s\" option"
						       " \"%s\": \"%s\" is not a domain name",
						       self, key, v);
		if (!*v)
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "Invalid value for network \"%s\" option \"%s\":"
					       " empty domain",
					       self, key);
		return 0;
	case KEY_RANGES4:
		return check_ranges(self, v, err);
	default:
		return 0;
	}
}

int network_config_check(struct db *db, const char *name, json_t *config, bool create,
			 struct berth_error *err)
{
	const char *key;
	json_t *val;
	int r;

	json_object_foreach(config, key, val) {
		size_t i;

		if (!json_is_string(val))
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "Config key \"%s\" must be a string", key);
		if (berth_startswith(key, "user."))
			continue;
		for (i = 0; i < ARRAY_SIZE(keys); i++)
			if (streq(keys[i].key, key))
				break;
		if (i == ARRAY_SIZE(keys))
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "Invalid option for network \"%s\" option \"%s\":"
					       " unknown key",
					       name, key);
		if (keys[i].kind == KEY_ADDR4 || keys[i].kind == KEY_ADDR6)
			continue;
		r = check_value(name, key, keys[i].kind, json_string_value(val), err);
		if (r < 0)
			return r;
	}
	if (create) {
		static const char *const fam[2][2] = {{"ipv4.address", "ipv4.nat"},
						      {"ipv6.address", "ipv6.nat"}};

		for (int f = 0; f < 2; f++) {
			const char *a = berth_json_string(config, fam[f][0]);

			if (!a)
				json_object_set_new(config, fam[f][0], json_string(a = "auto"));
			if (streq(a, "auto") && !json_object_get(config, fam[f][1]))
				json_object_set_new(config, fam[f][1], json_string("true"));
		}
	}
	r = check_address(db, name, config, "ipv4.address", AF_INET, err);
	if (r >= 0)
		r = check_address(db, name, config, "ipv6.address", AF_INET6, err);
	if (r >= 0)
		r = check_ranges_in_subnet(name, config, err);
	return r;
}

static bool conf_bool(const json_t *config, const char *key, bool def)
{
	const char *v = berth_json_string(config, key);
	bool b = def;

	if (v)
		parse_bool(v, &b);
	return b;
}

int network_conf_parse(const char *name, const json_t *config, struct network_conf *ret,
		       struct berth_error *err)
{
	struct network_conf c = {.name = name};
	const char *a4 = berth_json_string(config, "ipv4.address");
	const char *a6 = berth_json_string(config, "ipv6.address");
	const char *mtu = berth_json_string(config, "bridge.mtu");

	if (a4 && !streq(a4, "none")) {
		if (parse_cidr(AF_INET, a4, &c.addr4, &c.prefix4) < 0)
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "Network \"%s\": bad ipv4.address \"%s\"", name, a4);
		c.has4 = true;
	}
	if (a6 && !streq(a6, "none")) {
		if (parse_cidr(AF_INET6, a6, &c.addr6, &c.prefix6) < 0)
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "Network \"%s\": bad ipv6.address \"%s\"", name, a6);
		c.has6 = true;
	}
	c.nat4 = c.has4 && conf_bool(config, "ipv4.nat", false);
	c.nat6 = c.has6 && conf_bool(config, "ipv6.nat", false);
	c.dhcp4 = c.has4 && conf_bool(config, "ipv4.dhcp", true);
	c.dhcp6 = c.has6 && conf_bool(config, "ipv6.dhcp", true);
	c.mtu = mtu ? (unsigned int)strtoul(mtu, NULL, 10) : 0;
	c.domain = berth_json_string(config, "dns.domain") ?: "berth";
	c.ranges4 = berth_json_string(config, "ipv4.dhcp.ranges");
	c.raw = berth_json_string(config, "raw.dnsmasq");
	*ret = c;
	return 0;
}
