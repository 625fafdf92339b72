/* daemon/instance/nic.c: nic devices (see nic.h). The runtime side (creating the links)
 * is daemon/runtime/net.c, shared with berth-monitor; this file turns device config into
 * runtime_nic entries and keeps the volatile keys and leases that go with them. */
#define LOG_CATEGORY "nic"
#include "daemon/instance/nic.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <fcntl.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <linux/rtnetlink.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "daemon/db/db.h"
#include "daemon/instance/common.h"
#include "daemon/network/network.h"
#include "daemon/runtime/net.h"
#include "lib/json.h"
#include "lib/log.h"
#include "lib/netlink.h"
#include "lib/util.h"

/* ---- validation ---- */

enum nic_kind { NIC_NETWORK, NIC_BRIDGED, NIC_MACVLAN, NIC_P2P, NIC_KIND_MAX };

/* Which keys each kind takes (bit per enum nic_kind). */
#define KN (1u << NIC_NETWORK)
#define KB (1u << NIC_BRIDGED)
#define KM (1u << NIC_MACVLAN)
#define KP (1u << NIC_P2P)
static const struct {
	const char *key;
	unsigned kinds;
} nic_keys[] = {
	{"type", KN | KB | KM | KP},
	{"nictype", KB | KM | KP},
	{"network", KN},
	{"parent", KB | KM},
	{"name", KN | KB | KM | KP},
	{"hwaddr", KN | KB | KM | KP},
	{"mtu", KN | KB | KM | KP},
	{"host_name", KN | KB | KP},
	{"mode", KM},
	{"ipv4.address", KN},
	{"ipv6.address", KN},
	{"limits.ingress", KN | KB | KP},
	{"limits.egress", KN | KB | KP},
	{"limits.max", KN | KB | KP},
};

static bool ifname_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n >= IFNAMSIZ || streq(s, ".") || streq(s, ".."))
		return false;
	for (; *s; s++)
		if (*s <= ' ' || *s == '/' || *s == ':' || *s == ',' || *s == '=' || *s == 0x7f)
			return false;
	return true;
}

static int parse_mac(const char *s, unsigned char mac[6])
{
	unsigned v[6];
	int used = 0;

	if (strlen(s) != 17 ||
	    sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%n", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
		   &used) != 6 ||
	    used != 17)
		return -EINVAL;
	for (int i = 0; i < 6; i++)
		mac[i] = (unsigned char)v[i];
	return 0;
}

int nic_parse_rate(const char *s, uint64_t *ret)
{
	static const struct {
		const char *suffix;
		uint64_t mult;
	} units[] = {{"", 1},
		     {"bit", 1},
		     {"kbit", 1000ULL},
		     {"Mbit", 1000000ULL},
		     {"Gbit", 1000000000ULL},
		     {"Tbit", 1000000000000ULL}};
	char *end = NULL;
	unsigned long long v;

	if (!s || !isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -EINVAL;
	for (size_t i = 0; i < ARRAY_SIZE(units); i++)
		if (streq(end, units[i].suffix)) {
			if (v == 0 || v > UINT64_MAX / units[i].mult)
				return -EINVAL;
			*ret = v * units[i].mult;
			return 0;
		}
	return -EINVAL;
}

static enum nic_kind nic_kind(const json_t *dev)
{
	const char *t = berth_json_string(dev, "nictype");

	if (berth_json_string(dev, "network") && !t)
		return NIC_NETWORK;
	if (!t)
		return NIC_KIND_MAX;
	if (streq(t, "bridged"))
		return NIC_BRIDGED;
	if (streq(t, "macvlan"))
		return NIC_MACVLAN;
	if (streq(t, "p2p"))
		return NIC_P2P;
	return NIC_KIND_MAX;
}

#define BAD(...) berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST, __VA_ARGS__)

static int check_value(const char *name, const char *key, const char *v, struct berth_error *err)
{
	unsigned char mac[6], a[16];
	uint64_t u;

	if (streq(key, "name") || streq(key, "host_name") || streq(key, "parent") ||
	    streq(key, "network")) {
		if (!ifname_ok(v))
			return BAD("Invalid device \"%s\": invalid interface name \"%s\" for \"%s\"",
				   name, v, key);
	} else if (streq(key, "hwaddr")) {
		if (parse_mac(v, mac) < 0 || (mac[0] & 1))
			return BAD(
				"Invalid device \"%s\": invalid MAC address \"%s\" for \"hwaddr\"",
				name, v);
	} else if (streq(key, "mtu")) {
		char *end = NULL;
		unsigned long m = strtoul(v, &end, 10);
		if (!isdigit((unsigned char)*v) || *end || m < 68 || m > 65535)
			return BAD("Invalid device \"%s\": invalid MTU \"%s\" (68 to 65535)", name,
				   v);
	} else if (streq(key, "mode")) {
		if (!streq(v, "bridge") && !streq(v, "vepa") && !streq(v, "private") &&
		    !streq(v, "passthru"))
			return BAD("Invalid device \"%s\": invalid macvlan mode \"%s\"", name, v);
	} else if (streq(key, "ipv4.address")) {
		if (inet_pton(AF_INET, v, a) != 1)
			return BAD("Invalid device \"%s\": invalid IPv4 address \"%s\"", name, v);
	} else if (streq(key, "ipv6.address")) {
		if (inet_pton(AF_INET6, v, a) != 1)
			return BAD("Invalid device \"%s\": invalid IPv6 address \"%s\"", name, v);
	} else if (berth_startswith(key, "limits.")) {
		if (nic_parse_rate(v, &u) < 0)
			return BAD("Invalid device \"%s\": invalid rate \"%s\" for \"%s\" (e.g. "
				   "10Mbit)",
				   name, v, key);
	}
	return 0;
}

int nic_check_device(const char *name, const json_t *dev, struct berth_error *err)
{
	const char *nictype = berth_json_string(dev, "nictype");
	const char *network = berth_json_string(dev, "network");
	enum nic_kind kind = nic_kind(dev);
	const char *key;
	json_t *val;

	if (nictype && network)
		return BAD("Invalid device \"%s\": \"network\" and \"nictype\" exclude each other",
			   name);
	if (!nictype && !network)
		return BAD("Invalid device \"%s\": nic devices need a \"nictype\" or a "
			   "\"network\"",
			   name);
	if (kind == NIC_KIND_MAX)
		return BAD("Invalid device \"%s\": unsupported nictype \"%s\" (bridged, macvlan "
			   "or p2p)",
			   name, nictype);
	if ((kind == NIC_BRIDGED || kind == NIC_MACVLAN) && !berth_json_string(dev, "parent"))
		return BAD("Invalid device \"%s\": nictype \"%s\" needs a \"parent\"", name,
			   nictype);
	if (!berth_json_string(dev, "name") && !ifname_ok(name))
		return BAD("Invalid device \"%s\": no \"name\" and the device name is not a valid "
			   "interface name",
			   name);
	json_object_foreach((json_t *)dev, key, val) {
		size_t i;
		int r;

		for (i = 0; i < ARRAY_SIZE(nic_keys); i++)
			if (streq(nic_keys[i].key, key))
				break;
		if (i == ARRAY_SIZE(nic_keys))
			return BAD("Invalid device \"%s\": unknown nic option \"%s\"", name, key);
		if (!(nic_keys[i].kinds & (1u << kind)))
			return BAD("Invalid device \"%s\": \"%s\" does not apply to %s%s%s", name,
				   key, network ? "network=" : "nictype ", network ? "" : nictype,
				   streq(key, "ipv4.address") || streq(key, "ipv6.address")
					   ? " (static addresses need \"network\")"
					   : "");
		if (!json_is_string(val))
			return BAD("Invalid device \"%s\": \"%s\" must be a string", name, key);
		r = check_value(name, key, json_string_value(val), err);
		if (r < 0)
			return r;
	}
	return 0;
}

/* ---- spec entries ---- */

static int random_hex(char *buf, size_t nbytes, const char *fmt_sep)
{
	unsigned char b[8];
	size_t off = 0;

	if (nbytes > sizeof(b) || getrandom(b, nbytes, 0) != (ssize_t)nbytes)
		return -EIO;
	for (size_t i = 0; i < nbytes; i++)
		off += (size_t)sprintf(buf + off, "%s%02x", i && fmt_sep ? fmt_sep : "", b[i]);
	return 0;
}

/* The value of `key` from the device, else volatile.<dev>.<vkey> from `cfg`, else a new
 * one from `gen` recorded in `vol` (to be stored). */
static const char *volatile_value(const json_t *dev, const char *key, const json_t *cfg,
				  const char *devname, const char *vkey, json_t *vol,
				  const char *generated)
{
	_cleanup_free_ char *k = berth_strdup_printf("volatile.%s.%s", devname, vkey);
	const char *v = berth_json_string(dev, key);

	if (v && *v)
		return v;
	if (!k)
		return NULL;
	v = berth_json_string(cfg, k);
	if (v && *v)
		return v;
	v = berth_json_string(vol, k);
	if (v)
		return v;
	json_object_set_new(vol, k, json_string(generated));
	return berth_json_string(vol, k);
}

static char *dup_or_null(const char *s, bool *oom)
{
	char *r = s ? strdup(s) : NULL;

	if (s && !r)
		*oom = true;
	return r;
}

/* Device `devname` of instance `inst` as a runtime NIC; new volatile keys go into `vol`. */
static int build_one(struct berth_daemon *d, const char *project, const char *inst,
		     const char *devname, const json_t *dev, const json_t *cfg, json_t *vol,
		     struct runtime_nic *ret, struct berth_error *err)
{
	enum nic_kind kind = nic_kind(dev);
	struct network_nic_target target = {0};
	struct runtime_nic nic = {0};
	const char *network = berth_json_string(dev, "network");
	const char *mtu = berth_json_string(dev, "mtu");
	const char *lim;
	char mac[32] = "00:16:3e:", host[32] = "veth";
	const char *hw, *hn = NULL;
	bool oom = false;
	int r;

	r = nic_check_device(devname, dev, err);
	if (r < 0)
		return r;
	if (random_hex(mac + 9, 3, ":") < 0 || random_hex(host + 4, 4, NULL) < 0)
		return berth_error_set(err, -EIO, BERTH_ERR_INTERNAL, "getrandom: %m");
	hw = volatile_value(dev, "hwaddr", cfg, devname, "hwaddr", vol, mac);
	if (kind != NIC_MACVLAN)
		hn = volatile_value(dev, "host_name", cfg, devname, "host_name", vol, host);
	if (!hw || (kind != NIC_MACVLAN && !hn))
		return -ENOMEM;
	if (kind == NIC_NETWORK) {
		r = network_nic_resolve(d, project, network, &target, err);
		if (r >= 0)
			r = network_nic_lease_add(d, project, network, inst, devname, hw,
						  berth_json_string(dev, "ipv4.address"),
						  berth_json_string(dev, "ipv6.address"), err);
		if (r < 0)
			return berth_error_wrap(err, r, "Device \"%s\"", devname);
	}
	nic.type = kind == NIC_MACVLAN ? RUNTIME_NIC_MACVLAN : RUNTIME_NIC_VETH;
	nic.name = dup_or_null(berth_json_string(dev, "name") ?: devname, &oom);
	nic.host = dup_or_null(hn, &oom);
	nic.link = dup_or_null(kind == NIC_NETWORK   ? target.bridge
			       : kind == NIC_BRIDGED ? berth_json_string(dev, "parent")
						     : NULL,
			       &oom);
	nic.parent = dup_or_null(kind == NIC_MACVLAN ? berth_json_string(dev, "parent") : NULL,
				 &oom);
	nic.mode = dup_or_null(kind == NIC_MACVLAN ? berth_json_string(dev, "mode") : NULL, &oom);
	nic.has_hwaddr = parse_mac(hw, nic.hwaddr) == 0;
	nic.mtu = mtu ? (unsigned)strtoul(mtu, NULL, 10) : target.mtu;
	lim = berth_json_string(dev, "limits.max");
	if (lim) {
		nic_parse_rate(lim, &nic.ingress);
		nic.egress = nic.ingress;
	}
	if ((lim = berth_json_string(dev, "limits.ingress")))
		nic_parse_rate(lim, &nic.ingress);
	if ((lim = berth_json_string(dev, "limits.egress")))
		nic_parse_rate(lim, &nic.egress);
	if (oom) {
		runtime_nic_release(&nic);
		return -ENOMEM;
	}
	*ret = nic;
	return 0;
}

static bool is_nic(const json_t *dev)
{
	const char *t = berth_json_string(dev, "type");

	return t && streq(t, "nic");
}

/* Store the generated volatile keys in the instance's own config. */
static int store_volatile(struct db *db, const char *project, const char *name, const json_t *vol,
			  struct berth_error *err)
{
	json_auto_t *inst = NULL;
	const char *k;
	json_t *v;
	int r;

	if (!json_object_size(vol))
		return 0;
	r = db_instance_get(db, project, name, &inst, err);
	if (r < 0)
		return r;
	json_object_foreach((json_t *)vol, k, v)
		json_object_set(json_object_get(inst, "config"), k, v);
	return db_instance_update(db, project, name, inst, err);
}

static int build_list(struct berth_daemon *d, const char *project, const json_t *inst,
		      const json_t *only, struct runtime_nic **ret, size_t *ret_n,
		      struct berth_error *err)
{
	const char *name = berth_json_string(inst, "name");
	const json_t *cfg = json_object_get(inst, "expanded_config");
	json_auto_t *vol = json_object();
	struct runtime_nic *nics = NULL;
	size_t n = 0;
	const char *devname;
	json_t *dev;
	int r = 0;

	if (!vol)
		return -ENOMEM;
	json_object_foreach(json_object_get(inst, "expanded_devices"), devname, dev) {
		struct runtime_nic *na;

		if (!is_nic(dev) || (only && !json_object_get(only, devname)))
			continue;
		na = realloc(nics, (n + 1) * sizeof(*na));
		if (!na) {
			r = -ENOMEM;
			break;
		}
		nics = na;
		r = build_one(d, project, name, devname, dev, cfg, vol, &nics[n], err);
		if (r < 0)
			break;
		n++;
	}
	if (r >= 0)
		r = store_volatile(d->db, project, name, vol, err);
	if (r < 0) {
		for (size_t i = 0; i < n; i++)
			runtime_nic_release(&nics[i]);
		free(nics);
		return r;
	}
	*ret = nics;
	*ret_n = n;
	return 0;
}

int nic_spec_build(struct berth_daemon *d, const char *project, const json_t *inst,
		   struct runtime_spec *spec, struct berth_error *err)
{
	struct runtime_nic *nics = NULL;
	size_t n = 0;
	int r = build_list(d, project, inst, NULL, &nics, &n, err);

	if (r < 0)
		return r;
	runtime_spec_set_nics(spec, nics, n);
	return 0;
}

/* ---- leases ---- */

void nic_release_leases(struct berth_daemon *d, const char *project, const json_t *before,
			const json_t *after)
{
	const json_t *cfg = json_object_get(before, "expanded_config");
	const json_t *adevs = after ? json_object_get(after, "expanded_devices") : NULL;
	const char *name = berth_json_string(before, "name");
	const char *devname;
	json_t *dev;

	json_object_foreach(json_object_get(before, "expanded_devices"), devname, dev) {
		const char *network = berth_json_string(dev, "network");
		_cleanup_free_ char *k = berth_strdup_printf("volatile.%s.hwaddr", devname);
		const char *hw = berth_json_string(dev, "hwaddr");

		if (!is_nic(dev) || !network ||
		    (adevs && json_equal(dev, json_object_get(adevs, devname))))
			continue;
		if (!hw && k)
			hw = berth_json_string(cfg, k);
		int r = network_nic_lease_remove(d, project, network, name, devname, hw ?: "");
		if (r < 0)
			log_warn("Instance \"%s\" device \"%s\": dropping its lease: %s, ignoring",
				 name, devname, strerror(-r));
	}
}

int nic_forget_volatile(struct db *db, const char *project, const json_t *before,
			const json_t *after, struct berth_error *err)
{
	const json_t *adevs = json_object_get(after, "expanded_devices");
	const char *name = berth_json_string(after, "name");
	json_auto_t *inst = NULL;
	const char *devname, *key;
	json_t *dev, *cfg, *v;
	void *tmp;
	bool changed = false;
	int r = db_instance_get(db, project, name, &inst, err);

	if (r < 0)
		return r;
	cfg = json_object_get(inst, "config");
	json_object_foreach(json_object_get(before, "expanded_devices"), devname, dev) {
		_cleanup_free_ char *prefix = NULL;

		if (json_object_get(adevs, devname))
			continue;
		prefix = berth_strdup_printf("volatile.%s.", devname);
		if (!prefix)
			return -ENOMEM;
		json_object_foreach_safe(cfg, tmp, key, v)
			if (berth_startswith(key, prefix)) {
				json_object_del(cfg, key);
				changed = true;
			}
	}
	return changed ? db_instance_update(db, project, name, inst, err) : 0;
}

/* ---- hot-plug ---- */

static const char *inside_name(const char *devname, const json_t *dev)
{
	return berth_json_string(dev, "name") ?: devname;
}

int nic_hotplug(struct berth_daemon *d, const char *project, pid_t pid, const json_t *before,
		const json_t *after, struct berth_error *err)
{
	const char *name = berth_json_string(after, "name");
	json_auto_t *gone = container_devices_diff(before, after, is_nic);
	json_auto_t *added = container_devices_diff(after, before, is_nic);
	_cleanup_(runtime_spec_freep) struct runtime_spec *spec = NULL;
	_cleanup_free_ char *specpath = NULL;
	_cleanup_close_ int netns = -EBADF;
	struct berth_nl nl = {.fd = -1};
	struct runtime_nic *nics = NULL;
	size_t n = 0, kept = 0;
	const char *devname;
	json_t *dev;
	char path[64];
	int r;

	if (!gone || !added)
		return -ENOMEM;
	if (!json_object_size(gone) && !json_object_size(added))
		return 0;
	if (pid <= 0)
		return 0; /* it stopped meanwhile: the next start builds the NICs */
	specpath = container_spec_path(d, project, name);
	if (!specpath)
		return -ENOMEM;
	r = runtime_spec_load(specpath, &spec, err);
	if (r < 0)
		return r;
	snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)pid);
	netns = open(path, O_RDONLY | O_CLOEXEC);
	if (netns < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "opening %s: %m", path);
	r = berth_nl_open(&nl);
	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "netlink: %s", strerror(-r));
	/* Unplug: the spec's entry for the inside name of each device that went. */
	for (size_t i = 0; i < spec->n_nics; i++) {
		bool drop = false;

		json_object_foreach(gone, devname, dev)
			drop |= streq(spec->nics[i].name, inside_name(devname, dev));
		if (!drop) {
			if (kept != i) {
				spec->nics[kept] = spec->nics[i];
				spec->nics[i] = (struct runtime_nic){0};
			}
			kept++;
			continue;
		}
		r = runtime_net_nic_del(&nl, &spec->nics[i], netns, err);
		runtime_nic_release(&spec->nics[i]);
		if (r < 0)
			goto out;
	}
	spec->n_nics = kept;
	nic_release_leases(d, project, before, after);
	/* Plug: build and create each new one. */
	r = build_list(d, project, after, added, &nics, &n, err);
	for (size_t i = 0; r >= 0 && i < n; i++) {
		struct runtime_nic *na;

		r = runtime_net_nic_add(&nl, &nics[i], netns, err);
		if (r < 0)
			break;
		na = realloc(spec->nics, (spec->n_nics + 1) * sizeof(*na));
		if (!na) {
			r = -ENOMEM;
			break;
		}
		spec->nics = na;
		spec->nics[spec->n_nics++] = nics[i];
		nics[i] = (struct runtime_nic){0};
	}
	for (size_t i = 0; i < n; i++)
		runtime_nic_release(&nics[i]);
	free(nics);
out:
	berth_nl_close(&nl);
	/* What is in the namespace now, whatever failed, so that a reboot matches it. */
	{
		int w = runtime_spec_write(specpath, spec);
		if (w < 0 && r >= 0)
			r = berth_error_set(err, w, BERTH_ERR_INTERNAL, "rewriting the spec: %s",
					    strerror(-w));
	}
	return r;
}

/* ---- state ---- */

static const char *scope_name(unsigned scope)
{
	switch (scope) {
	case RT_SCOPE_UNIVERSE:
		return "global";
	case RT_SCOPE_LINK:
		return "link";
	case RT_SCOPE_HOST:
		return "local";
	default:
		return "global";
	}
}

static json_t *link_json(const struct berth_nl_link *l, const struct berth_nl_addr *addrs,
			 size_t na, const struct runtime_spec *spec)
{
	json_t *list = json_array();
	char mac[32] = "";
	const char *host = "";

	for (size_t i = 0; list && i < na; i++) {
		char a[INET6_ADDRSTRLEN], mask[8];

		if (addrs[i].index != l->index ||
		    !inet_ntop(addrs[i].family, addrs[i].addr, a, sizeof(a)))
			continue;
		snprintf(mask, sizeof(mask), "%u", addrs[i].prefixlen);
		json_array_append_new(list, json_pack("{s:s, s:s, s:s, s:s}", "family",
						      addrs[i].family == AF_INET ? "inet" : "inet6",
						      "address", a, "netmask", mask, "scope",
						      scope_name(addrs[i].scope)));
	}
	if (l->has_mac && l->arphrd == ARPHRD_ETHER)
		snprintf(mac, sizeof(mac), "%02x:%02x:%02x:%02x:%02x:%02x", l->mac[0], l->mac[1],
			 l->mac[2], l->mac[3], l->mac[4], l->mac[5]);
	for (size_t i = 0; spec && i < spec->n_nics; i++)
		if (streq(spec->nics[i].name, l->name) && spec->nics[i].host)
			host = spec->nics[i].host;
	return json_pack(
		"{s:o, s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}, s:s, s:s, s:i, s:s, s:s}",
		"addresses", list ? list : json_array(), "counters", "bytes_received",
		(json_int_t)l->rx_bytes, "bytes_sent", (json_int_t)l->tx_bytes, "packets_received",
		(json_int_t)l->rx_packets, "packets_sent", (json_int_t)l->tx_packets,
		"errors_received", (json_int_t)l->rx_errors, "errors_sent",
		(json_int_t)l->tx_errors, "packets_dropped_outbound", (json_int_t)l->tx_dropped,
		"packets_dropped_inbound", (json_int_t)l->rx_dropped, "hwaddr", mac, "host_name",
		host, "mtu", (int)l->mtu, "state", (l->flags & IFF_UP) ? "up" : "down", "type",
		(l->flags & IFF_LOOPBACK)      ? "loopback"
		: (l->flags & IFF_POINTOPOINT) ? "point-to-point"
					       : "broadcast");
}

json_t *nic_state(const char *rundir, pid_t pid)
{
	_cleanup_(runtime_spec_freep) struct runtime_spec *spec = NULL;
	_cleanup_free_ struct berth_nl_link *links = NULL;
	_cleanup_free_ struct berth_nl_addr *addrs = NULL;
	_cleanup_free_ char *specpath = berth_strdup_printf("%s/spec", rundir);
	_cleanup_close_ int netns = -EBADF;
	struct berth_nl nl = {.fd = -1};
	size_t nl_n = 0, na = 0;
	json_t *out = json_object();
	char path[64];
	int r;

	if (!out || pid <= 0)
		return out;
	snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)pid);
	netns = open(path, O_RDONLY | O_CLOEXEC);
	if (netns < 0 || berth_nl_open_netns(&nl, netns) < 0)
		return out;
	r = berth_nl_link_list(&nl, &links, &nl_n);
	if (r >= 0)
		r = berth_nl_addr_list(&nl, AF_UNSPEC, &addrs, &na);
	berth_nl_close(&nl);
	if (r < 0)
		return out;
	if (specpath)
		runtime_spec_load(specpath, &spec, NULL);
	for (size_t i = 0; i < nl_n; i++)
		json_object_set_new(out, links[i].name, link_json(&links[i], addrs, na, spec));
	return out;
}
