/* daemon/network/network.c: managed networks as a whole (apply, remove, start-up,
 * leases, link state, unmanaged links) and the seam NIC devices use
 * (network.h): resolving `network=NAME` and registering a NIC's DHCP host entry.
 *
 * One lock serializes every change of networks, so two API requests never run nft or
 * restart the same dnsmasq at once. */
#define LOG_CATEGORY "network"
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <linux/rtnetlink.h>
#include <net/if_arp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/db/db.h"
#include "daemon/network/internal.h"
#include "daemon/network/managed.h"
#include "daemon/network/network.h"
#include "daemon/warnings.h"
#include "lib/json.h"
#include "lib/log.h"
#include "lib/macros.h"
#include "lib/netlink.h"
#include "lib/util.h"

static pthread_mutex_t network_lock = PTHREAD_MUTEX_INITIALIZER;

static void unlockp(pthread_mutex_t **m)
{
	if (*m)
		pthread_mutex_unlock(*m);
}
#define LOCKED_SCOPE                                                                               \
	_cleanup_(unlockp) pthread_mutex_t *_held = &network_lock;                                 \
	pthread_mutex_lock(_held)

int network_apply(struct berth_daemon *d, const char *name, const json_t *config,
		  struct berth_error *err)
{
	struct network_conf c;
	int r;
	LOCKED_SCOPE;

	r = network_conf_parse(name, config, &c, err);
	if (r >= 0)
		r = network_bridge_apply(&c, err);
	if (r >= 0)
		r = network_nft_apply(&c, err);
	if (r >= 0)
		r = network_dnsmasq_apply(d, &c, err);
	return r;
}

int network_remove(struct berth_daemon *d, const char *name, struct berth_error *err)
{
	_cleanup_free_ char *dir = network_path(d, name, NULL);
	int r, ret = 0;
	LOCKED_SCOPE;

	if (!dir)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "Out of memory");
	network_dnsmasq_stop(d, name);
	r = network_nft_remove(name, err);
	if (r < 0)
		ret = r;
	r = network_bridge_remove(name, ret < 0 ? NULL : err);
	if (r < 0 && ret >= 0)
		ret = r;
	{
		const char *argv[] = {"rm", "-rf", "--one-file-system", "--", dir, NULL};
		r = network_run(argv, NULL, NULL, ret < 0 ? NULL : err);
		if (r < 0 && ret >= 0)
			ret = r;
	}
	return ret;
}

/* ---- start-up ---- */

static int create_hook(void *data, struct berth_error *err)
{
	void **args = data;

	return network_apply(args[0], args[1], args[2], err);
}

/* The default profile gets eth0 on the default network, as `lxd init --auto` does. */
static int default_profile_nic(struct db *db, struct berth_error *err)
{
	json_auto_t *profile = NULL;
	json_t *devices;
	int r = db_profile_get(db, "default", "default", &profile, err);

	if (r < 0)
		return r;
	devices = json_object_get(profile, "devices");
	if (!devices || json_object_get(devices, "eth0"))
		return 0;
	json_object_set_new(devices, "eth0",
			    json_pack("{s:s, s:s, s:s}", "type", "nic", "network",
				      NETWORK_DEFAULT_NAME, "name", "eth0"));
	return db_profile_update(db, "default", "default", profile, err);
}

static int create_default(struct berth_daemon *d, struct berth_error *err)
{
	json_auto_t *net = json_pack("{s:s, s:s, s:s, s:{}}", "name", NETWORK_DEFAULT_NAME, "type",
				     "bridge", "description", "", "config");
	json_t *config = json_object_get(net, "config");
	void *args[3] = {d, (void *)NETWORK_DEFAULT_NAME, config};
	int r;

	if (!net)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "Out of memory");
	r = network_config_check(d->db, NETWORK_DEFAULT_NAME, config, true, err);
	if (r >= 0)
		r = db_network_create(d->db, net, create_hook, args, err);
	if (r < 0) {
		struct berth_error ignored = {0};
		network_remove(d, NETWORK_DEFAULT_NAME, &ignored);
		berth_error_release(&ignored);
		return r;
	}
	log_info("Created network \"%s\" (%s, %s)", NETWORK_DEFAULT_NAME,
		 berth_json_string(config, "ipv4.address"),
		 berth_json_string(config, "ipv6.address"));
	return default_profile_nic(d->db, err);
}

/* Record (or with `fmt` NULL, resolve) the "Network unavailable" warning of `name`. */
static void network_warn(struct berth_daemon *d, const char *name, const char *fmt, ...)
	_printf_(3, 4);
static void network_warn(struct berth_daemon *d, const char *name, const char *fmt, ...)
{
	_cleanup_free_ char *url = warnings_entity_url("networks", name, NULL);
	_cleanup_free_ char *msg = NULL;
	va_list ap;

	if (!url)
		return;
	if (!fmt) {
		warnings_resolve(d->db, WARNING_NETWORK_UNAVAILABLE, "default", url);
		return;
	}
	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	warnings_raise(d->db, WARNING_NETWORK_UNAVAILABLE, "default", url, "%s",
		       msg ?: "Network unavailable");
}

void network_startup(struct berth_daemon *d, bool fresh)
{
	struct berth_error err = {0};
	json_auto_t *list = NULL;
	json_t *net;
	size_t i;
	int r;

	if (fresh) {
		r = create_default(d, &err);
		if (r < 0)
			network_warn(d, NETWORK_DEFAULT_NAME,
				     "Cannot create the default network \"%s\": %s; berthd goes on"
				     " without it",
				     NETWORK_DEFAULT_NAME, berth_error_msg(&err, r));
		berth_error_release(&err);
		return;
	}
	r = db_network_list(d->db, &list, &err);
	if (r < 0) {
		log_error("Cannot list networks: %s", berth_error_msg(&err, r));
		berth_error_release(&err);
		return;
	}
	json_array_foreach(list, i, net) {
		const char *name = berth_json_string(net, "name");

		r = network_apply(d, name, json_object_get(net, "config"), &err);
		if (r < 0) {
			network_warn(d, name, "Cannot bring up network \"%s\": %s", name,
				     berth_error_msg(&err, r));
		} else {
			log_info("Network \"%s\" is up", name);
			network_warn(d, name, NULL);
		}
		berth_error_release(&err);
	}
}

/* ---- NIC host entries ---- */

/* The host entry file of a NIC: dnsmasq.hosts/<project>_<instance>.<device>. */
static char *host_entry_path(struct berth_daemon *d, const char *network, const char *project,
			     const char *instance, const char *device)
{
	_cleanup_free_ char *file = berth_strdup_printf("dnsmasq.hosts/%s_%s.%s", project, instance,
							device);

	return file ? network_path(d, network, file) : NULL;
}

/* Is `address` (text) in another NIC's entry? Its file name then goes to *ret_owner. */
static bool address_taken(struct berth_daemon *d, const char *network, const char *self,
			  const char *address, char **ret_owner)
{
	_cleanup_free_ char *dir = network_path(d, network, "dnsmasq.hosts");
	DIR *dh = dir ? opendir(dir) : NULL;
	struct dirent *e;
	bool taken = false;

	if (!dh)
		return false;
	while (!taken && (e = readdir(dh))) {
		_cleanup_free_ char *path = NULL, *text = NULL;
		size_t len = 0;
		char *save = NULL;

		if (e->d_name[0] == '.' || streq(e->d_name, self))
			continue;
		path = berth_strdup_printf("%s/%s", dir, e->d_name);
		if (!path || berth_read_file(path, 4096, &text, &len) < 0)
			continue;
		text[strcspn(text, "\n")] = '\0';
		for (char *t = strtok_r(text, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
			size_t tl = strlen(t);
			if (t[0] == '[' && tl > 2 && t[tl - 1] == ']') {
				t[tl - 1] = '\0';
				t++;
			}
			if (streq(t, address)) {
				taken = true;
				*ret_owner = strdup(e->d_name);
			}
		}
	}
	closedir(dh);
	return taken;
}

/* A static address must be a host of the subnet other than the bridge's own. */
static int check_static(const struct network_conf *c, int family, const char *device,
			const char *text, struct berth_error *err)
{
	unsigned char a[16];
	const unsigned char *gw = family == AF_INET ? (const void *)&c->addr4
						    : (const void *)&c->addr6;
	unsigned int prefix = family == AF_INET ? c->prefix4 : c->prefix6;
	unsigned int bytes = family == AF_INET ? 4 : 16;
	bool zero = true, ones = true;

	if (inet_pton(family, text, a) != 1)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Device \"%s\": invalid IP%s address \"%s\"", device,
				       family == AF_INET ? "v4" : "v6", text);
	if (!(family == AF_INET ? c->has4 : c->has6))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Device \"%s\": network \"%s\" has no IP%s subnet", device,
				       c->name, family == AF_INET ? "v4" : "v6");
	for (unsigned int bit = 0; bit < bytes * 8; bit++) {
		bool set = a[bit / 8] & (0x80 >> (bit % 8));
		bool gset = gw[bit / 8] & (0x80 >> (bit % 8));

		if (bit < prefix && set != gset)
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "Device \"%s\": IP address \"%s\" is not in the"
					       " subnet of network \"%s\"",
					       device, text, c->name);
		if (bit >= prefix) {
			zero = zero && !set;
			ones = ones && set;
		}
	}
	if (memcmp(a, gw, bytes) == 0 || zero || (family == AF_INET && ones))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Device \"%s\": IP address \"%s\" is reserved in network"
				       " \"%s\" (the bridge's, the subnet's or its broadcast)",
				       device, text, c->name);
	return 0;
}

int network_nic_resolve(struct berth_daemon *d, const char *project, const char *network,
			struct network_nic_target *target, struct berth_error *err)
{
	json_auto_t *net = NULL;
	struct berth_nl nl;
	struct berth_nl_link link;
	const char *mtu;
	int r;

	(void)d;
	(void)project;
	if (strlen(network) >= IFNAMSIZ)
		return berth_error_set(err, -ENOENT, BERTH_ERR_BAD_REQUEST,
				       "Network \"%s\" not found", network);
	r = db_network_get(d->db, network, &net, NULL);
	if (r >= 0) {
		memset(target, 0, sizeof(*target));
		strcpy(target->bridge, network);
		mtu = berth_json_string(json_object_get(net, "config"), "bridge.mtu");
		target->mtu = mtu ? (unsigned int)strtoul(mtu, NULL, 10) : 0;
		return 0;
	}
	/* Not managed: an existing bridge of that name (nictype=bridged, parent=X). */
	r = berth_nl_open(&nl);
	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "netlink: %s", strerror(-r));
	r = berth_nl_link_get(&nl, network, &link);
	berth_nl_close(&nl);
	if (r == -ENODEV)
		return berth_error_set(err, -ENOENT, BERTH_ERR_BAD_REQUEST,
				       "Network \"%s\" not found", network);
	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "netlink: %s", strerror(-r));
	if (!streq(link.kind, "bridge"))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Network \"%s\" is not a bridge", network);
	memset(target, 0, sizeof(*target));
	strcpy(target->bridge, link.name);
	target->mtu = link.mtu;
	return 0;
}

int network_nic_lease_add(struct berth_daemon *d, const char *project, const char *network,
			  const char *instance, const char *device, const char *hwaddr,
			  const char *ipv4, const char *ipv6, struct berth_error *err)
{
	_cleanup_free_ char *path = NULL, *line = NULL, *self = NULL, *owner = NULL;
	json_auto_t *net = NULL;
	struct network_conf c;
	int r;

	if (ipv4 && !*ipv4)
		ipv4 = NULL;
	if (ipv6 && !*ipv6)
		ipv6 = NULL;
	r = db_network_get(d->db, network, &net, NULL);
	if (r < 0) {
		if (ipv4 || ipv6)
			return berth_error_set(err, -EOPNOTSUPP, BERTH_ERR_BAD_REQUEST,
					       "Device \"%s\": static addresses need a managed"
					       " network (\"%s\" is not one)",
					       device, network);
		return 0;
	}
	r = network_conf_parse(network, json_object_get(net, "config"), &c, err);
	if (r >= 0 && ipv4)
		r = check_static(&c, AF_INET, device, ipv4, err);
	if (r >= 0 && ipv6)
		r = check_static(&c, AF_INET6, device, ipv6, err);
	if (r < 0)
		return r;
	self = berth_strdup_printf("%s_%s.%s", project, instance, device);
	path = host_entry_path(d, network, project, instance, device);
	line = berth_strdup_printf("%s%s%s%s%s%s,%s\n", hwaddr, ipv4 ? "," : "", ipv4 ?: "",
				   ipv6 ? ",[" : "", ipv6 ?: "", ipv6 ? "]" : "", instance);
	if (!self || !path || !line)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "Out of memory");
	{
		LOCKED_SCOPE;

		if ((ipv4 && address_taken(d, network, self, ipv4, &owner)) ||
		    (ipv6 && address_taken(d, network, self, ipv6, &owner)))
			return berth_error_set(err, -EADDRINUSE, BERTH_ERR_BAD_REQUEST,
					       "Device \"%s\": IP address \"%s\" is already used"
					       " in network \"%s\" (by %s)",
					       device, ipv4 && !ipv6 ? ipv4 : (ipv6 ?: ipv4),
					       network, owner ?: "another instance");
		*strrchr(path, '/') = '\0';
		r = berth_mkdir_p(path, 0755);
		path[strlen(path)] = '/';
		if (r >= 0)
			r = berth_write_file_atomic(path, line, strlen(line), 0644);
		if (r < 0)
			return berth_error_set(err, r, BERTH_ERR_INTERNAL,
					       "Cannot write \"%s\": %s", path, strerror(-r));
		network_dnsmasq_reload(d, network);
	}
	return 0;
}

int network_nic_lease_remove(struct berth_daemon *d, const char *project, const char *network,
			     const char *instance, const char *device, const char *hwaddr)
{
	_cleanup_free_ char *path = host_entry_path(d, network, project, instance, device);
	LOCKED_SCOPE;

	(void)hwaddr;
	if (!path)
		return -ENOMEM;
	if (unlink(path) < 0)
		return errno == ENOENT ? 0 : -errno;
	network_dnsmasq_reload(d, network);
	return 0;
}

/* ---- leases ---- */

static int add_lease(json_t *list, const char *hostname, const char *hwaddr, const char *address,
		     const char *type)
{
	return json_array_append_new(list, json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "hostname",
						     hostname, "hwaddr", hwaddr, "address", address,
						     "type", type, "location", "none", "project",
						     "default"));
}

/* Static entries from dnsmasq.hosts/: "hwaddr[,ipv4][,[ipv6]],name". Also records
 * every (hwaddr,address) pair listed into `seen`. */
static void static_leases(const char *dir, json_t *list, json_t *seen)
{
	DIR *dh = opendir(dir);
	struct dirent *e;

	if (!dh)
		return;
	while ((e = readdir(dh))) {
		_cleanup_free_ char *path = NULL, *text = NULL;
		char *fields[4] = {0}, *save = NULL;
		size_t len = 0, n = 0;

		if (e->d_name[0] == '.')
			continue;
		path = berth_strdup_printf("%s/%s", dir, e->d_name);
		if (!path || berth_read_file(path, 4096, &text, &len) < 0)
			continue;
		text[strcspn(text, "\n")] = '\0';
		for (char *t = strtok_r(text, ",", &save); t && n < 4;
		     t = strtok_r(NULL, ",", &save))
			fields[n++] = t;
		if (n < 3)
			continue;
		for (size_t i = 1; i + 1 < n; i++) {
			char *a = fields[i];
			size_t al = strlen(a);
			_cleanup_free_ char *key = NULL;

			if (a[0] == '[' && al > 2) {
				a[al - 1] = '\0';
				a++;
			}
			add_lease(list, fields[n - 1], fields[0], a, "static");
			key = berth_strdup_printf("%s %s", fields[0], a);
			if (key)
				json_object_set_new(seen, key, json_true());
		}
	}
	closedir(dh);
}

int network_leases(struct berth_daemon *d, const char *name, json_t **ret, struct berth_error *err)
{
	_cleanup_free_ char *hosts = network_path(d, name, "dnsmasq.hosts");
	_cleanup_free_ char *leases = network_path(d, name, "dnsmasq.leases");
	_cleanup_free_ char *text = NULL;
	json_auto_t *list = json_array();
	json_auto_t *seen = json_object();
	size_t len = 0;
	char *save = NULL;

	if (!hosts || !leases || !list || !seen)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "Out of memory");
	static_leases(hosts, list, seen);
	/* dnsmasq's lease file: "EXPIRY MAC IP HOSTNAME CLIENTID" per IPv4 lease, a
	 * "duid ..." line, then "EXPIRY IAID IP HOSTNAME DUID" per IPv6 lease. */
	if (berth_read_file(leases, 1 << 20, &text, &len) >= 0) {
		for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
			char mac[64], ip[64], host[256];
			_cleanup_free_ char *key = NULL;

			if (sscanf(l, "%*s %63s %63s %255s", mac, ip, host) != 3 ||
			    !strchr(mac, ':'))
				continue;
			key = berth_strdup_printf("%s %s", mac, ip);
			if (key && json_object_get(seen, key))
				continue;
			add_lease(list, streq(host, "*") ? "" : host, mac, ip, "dynamic");
		}
	}
	*ret = TAKE_PTR(list);
	return 0;
}

/* ---- links ---- */

static const char *link_type(const struct berth_nl_link *l)
{
	if (l->arphrd == ARPHRD_LOOPBACK)
		return "loopback";
	if (streq(l->kind, "bridge"))
		return "bridge";
	if (streq(l->kind, "bond"))
		return "bond";
	if (streq(l->kind, "vlan"))
		return "vlan";
	if (!l->kind[0] && l->arphrd == ARPHRD_ETHER)
		return "physical";
	return "unknown";
}

static void mac_text(const struct berth_nl_link *l, char *buf)
{
	const unsigned char *m = l->mac;

	if (!l->has_mac) {
		buf[0] = '\0';
		return;
	}
	snprintf(buf, 18, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
}

int network_link_state(const char *name, json_t **ret, struct berth_error *err)
{
	_cleanup_free_ struct berth_nl_link *links = NULL;
	_cleanup_free_ struct berth_nl_addr *addrs = NULL;
	json_auto_t *state = NULL;
	json_t *addresses, *uppers;
	const struct berth_nl_link *l = NULL;
	size_t n_links = 0, n_addrs = 0;
	char mac[18], text[INET6_ADDRSTRLEN], prefix[8];
	struct berth_nl nl;
	int r;

	r = berth_nl_open(&nl);
	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "netlink: %s", strerror(-r));
	r = berth_nl_link_list(&nl, &links, &n_links);
	if (r >= 0)
		r = berth_nl_addr_list(&nl, AF_UNSPEC, &addrs, &n_addrs);
	berth_nl_close(&nl);
	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "netlink: %s", strerror(-r));
	for (size_t i = 0; i < n_links; i++)
		if (streq(links[i].name, name))
			l = &links[i];
	if (!l)
		return berth_error_set(err, -ENOENT, BERTH_ERR_NOT_FOUND,
				       "Network interface \"%s\" not found", name);
	mac_text(l, mac);
	addresses = json_array();
	uppers = json_array();
	for (size_t i = 0; i < n_addrs; i++) {
		const struct berth_nl_addr *a = &addrs[i];

		if (a->index != l->index)
			continue;
		inet_ntop(a->family, a->addr, text, sizeof(text));
		snprintf(prefix, sizeof(prefix), "%u", a->prefixlen);
		json_array_append_new(addresses,
				      json_pack("{s:s, s:s, s:s, s:s}", "family",
						a->family == AF_INET ? "inet" : "inet6", "address",
						text, "netmask", prefix, "scope",
						a->scope == RT_SCOPE_LINK   ? "link"
						: a->scope == RT_SCOPE_HOST ? "local"
									    : "global"));
	}
	for (size_t i = 0; i < n_links; i++)
		if (links[i].master == l->index)
			json_array_append_new(uppers, json_string(links[i].name));
	state = json_pack("{s:o, s:{s:I, s:I, s:I, s:I}, s:s, s:I, s:s, s:s, s:n, s:n, s:n}",
			  "addresses", addresses, "counters", "bytes_received",
			  (json_int_t)l->rx_bytes, "bytes_sent", (json_int_t)l->tx_bytes,
			  "packets_received", (json_int_t)l->rx_packets, "packets_sent",
			  (json_int_t)l->tx_packets, "hwaddr", mac, "mtu", (json_int_t)l->mtu,
			  "state", (l->flags & IFF_UP) ? "up" : "down", "type",
			  l->arphrd == ARPHRD_LOOPBACK ? "loopback" : "broadcast", "bond", "bridge",
			  "vlan");
	if (!state) {
		json_decref(uppers);
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "Out of memory");
	}
	if (streq(l->kind, "bridge")) {
		char id[32];

		snprintf(id, sizeof(id), "8000.%.2s%.2s%.2s%.2s%.2s%.2s", mac, mac + 3, mac + 6,
			 mac + 9, mac + 12, mac + 15);
		json_object_set_new(state, "bridge",
				    json_pack("{s:s, s:b, s:i, s:i, s:b, s:o}", "id", id, "stp", 0,
					      "forward_delay", 1500, "vlan_default", 1,
					      "vlan_filtering", 0, "upper_devices", uppers));
	} else {
		json_decref(uppers);
	}
	*ret = TAKE_PTR(state);
	return 0;
}

int network_unmanaged_list(const json_t *skip, json_t **ret, struct berth_error *err)
{
	_cleanup_free_ struct berth_nl_link *links = NULL;
	json_auto_t *list = json_array();
	size_t n = 0;
	struct berth_nl nl;
	int r;

	r = berth_nl_open(&nl);
	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "netlink: %s", strerror(-r));
	r = berth_nl_link_list(&nl, &links, &n);
	berth_nl_close(&nl);
	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "netlink: %s", strerror(-r));
	for (size_t i = 0; i < n; i++) {
		if (json_object_get(skip, links[i].name))
			continue;
		json_array_append_new(list,
				      json_pack("{s:s, s:s, s:s, s:b, s:s, s:{}, s:[], s:[s]}",
						"name", links[i].name, "description", "", "type",
						link_type(&links[i]), "managed", 0, "status", "",
						"config", "used_by", "locations", "none"));
	}
	*ret = TAKE_PTR(list);
	return 0;
}
