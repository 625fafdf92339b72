/* daemon/runtime/net.c: a container's NICs over lib/netlink (see net.h). Limits go
 * through iproute2's `tc`, run only for a NIC that has them. */
#include "daemon/runtime/net.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "lib/macros.h"
#include "lib/spawn.h"
#include "lib/util.h"

#define IPROUTE_TIMEOUT_MS 30000

/* Run iproute2's `tool` ("tc" or "ip") with `argv` (argv[0] unused) and `input` (NULL:
 * none) on its stdin, through lib/spawn; its output only ends up in the error. */
static int run_iproute(const char *tool, char *const *argv, const char *input,
		       struct berth_error *err)
{
	_cleanup_(berth_spawn_release) struct berth_spawn s = {
		.input = input,
		.input_len = input ? strlen(input) : 0,
		.io = {BERTH_SPAWN_DEFAULT, BERTH_SPAWN_DEFAULT, BERTH_SPAWN_TO_STDOUT},
		.capture_max = 1024,
		.timeout_ms = IPROUTE_TIMEOUT_MS,
		.flags = BERTH_SPAWN_NO_CHECK,
	};
	_cleanup_free_ char *path = NULL;
	const char *args[32];
	char tail[512];
	int r = berth_program_find(tool, &path);

	if (r == -ENOENT)
		return berth_error_set(err, -ENOENT, BERTH_ERR_INTERNAL,
				       "limits need iproute2's %s, which is not installed", tool);
	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "Out of memory");
	args[0] = path;
	args[1] = NULL;
	for (size_t i = 1; i < ARRAY_SIZE(args) - 1 && argv[i]; i++) {
		args[i] = argv[i];
		args[i + 1] = NULL;
	}
	s.argv = args;
	r = berth_spawn_run(&s, err);
	if (r < 0)
		return r;
	if (s.exit_code == 0)
		return 0;
	berth_spawn_tail(&s, tail, sizeof(tail));
	return berth_error_set(err, -EIO, BERTH_ERR_INTERNAL, "%s %s %s failed%s%s", tool, argv[1],
			       argv[2], tail[0] ? ": " : "", tail);
}

/* The ifb device that carries a veth's egress limit: "ifb" and the host name's random
 * part for berth's own names (vethXXXXXXXX), else a prefix of the host name. */
static void ifb_name(const struct runtime_nic *nic, char ret[IFNAMSIZ])
{
	if (berth_startswith(nic->host, "veth"))
		snprintf(ret, IFNAMSIZ, "ifb%s", nic->host + 4);
	else
		snprintf(ret, IFNAMSIZ, "ifb%.12s", nic->host);
}

static void ifb_del(struct berth_nl *nl, const struct runtime_nic *nic)
{
	struct berth_nl_link l;
	char ifb[IFNAMSIZ];

	if (!nic->egress)
		return;
	ifb_name(nic, ifb);
	if (berth_nl_link_get(nl, ifb, &l) == 0 && streq(l.kind, "ifb"))
		berth_nl_link_del(nl, l.index);
}

static void burst_for(uint64_t rate, char buf[32])
{
	uint64_t b = rate / 8 / 100; /* about 10 ms at the rate, at least 64 KiB */

	snprintf(buf, 32, "%llu", (unsigned long long)(b < 65536 ? 65536 : b));
}

/* Traffic into the container leaves the host end: a token bucket as its root qdisc.
 * Traffic out of the container enters the host end; ingress policing needs act_police,
 * which kernels often lack, so it is redirected (act_mirred) to an ifb device whose root
 * qdisc is the token bucket. Each exec of ip or tc costs milliseconds, so: one `ip` for
 * the ifb, one `tc -batch` for every qdisc and filter. */
static int apply_limits(const struct runtime_nic *nic, struct berth_error *err)
{
	char batch[1024], burst[32], ifb[IFNAMSIZ];
	size_t n = 0;
	int r;

	batch[0] = '\0';
	if (nic->ingress) {
		burst_for(nic->ingress, burst);
		n += (size_t)snprintf(batch + n, sizeof(batch) - n,
				      "qdisc replace dev %s root handle 1: tbf rate %llubit burst "
				      "%s latency 50ms\n",
				      nic->host, (unsigned long long)nic->ingress, burst);
	}
	if (nic->egress) {
		char *const add[] = {"", "link", "add", "name", ifb, "up", "type", "ifb", NULL};

		ifb_name(nic, ifb);
		burst_for(nic->egress, burst);
		r = run_iproute("ip", add, NULL, err);
		if (r < 0)
			return r;
		snprintf(batch + n, sizeof(batch) - n,
			 "qdisc replace dev %s root handle 1: tbf rate %llubit burst %s latency "
			 "50ms\n"
			 "qdisc replace dev %s handle ffff: ingress\n"
			 "filter add dev %s parent ffff: protocol all u32 match u32 0 0 action "
			 "mirred egress redirect dev %s\n",
			 ifb, (unsigned long long)nic->egress, burst, nic->host, nic->host, ifb);
	}
	if (!batch[0])
		return 0;
	char *const tc[] = {"", "-batch", "-", NULL};
	r = run_iproute("tc", tc, batch, err);
	if (r < 0)
		return berth_error_wrap(err, r, "limits on \"%s\"", nic->host);
	return 0;
}

static int veth_add(struct berth_nl *nl, const struct runtime_nic *nic, int netns_fd,
		    struct berth_error *err)
{
	struct berth_nl_link host, br = {0};
	struct berth_nl_veth v = {.name = nic->host,
				  .peer = nic->name,
				  .peer_netns_fd = netns_fd,
				  .peer_mac = nic->has_hwaddr ? nic->hwaddr : NULL,
				  .mtu = nic->mtu};
	struct berth_nl_link_change ch = BERTH_NL_LINK_CHANGE_INIT;
	int r;

	if (nic->link) {
		r = berth_nl_link_get(nl, nic->link, &br);
		if (r == -ENODEV)
			return berth_error_set(err, r, BERTH_ERR_BAD_REQUEST,
					       "bridge \"%s\" not found", nic->link);
		if (r >= 0 && !streq(br.kind, "bridge"))
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "\"%s\" is not a bridge", nic->link);
		if (r < 0)
			return berth_error_set(err, r, BERTH_ERR_INTERNAL, "bridge \"%s\": %s",
					       nic->link, strerror(-r));
		if (!nic->mtu)
			v.mtu = br.mtu;
	}
	/* A host end left by an earlier run of this container (its namespace still being
	 * dismantled) goes first; any other interface of that name is a conflict. */
	if (berth_nl_link_get(nl, nic->host, &host) == 0) {
		if (!streq(host.kind, "veth"))
			return berth_error_set(err, -EEXIST, BERTH_ERR_BAD_REQUEST,
					       "host interface \"%s\" exists already", nic->host);
		berth_nl_link_del(nl, host.index);
	}
	ifb_del(nl, nic);
	r = berth_nl_veth_add(nl, &v);
	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "creating veth \"%s\": %s",
				       nic->host, strerror(-r));
	r = berth_nl_link_get(nl, nic->host, &host);
	if (r >= 0) {
		ch.up = 1;
		ch.master = nic->link ? br.index : 0;
		r = berth_nl_link_set(nl, host.index, &ch);
		if (r < 0)
			berth_error_set(err, r, BERTH_ERR_INTERNAL, "veth \"%s\" into \"%s\": %s",
					nic->host, nic->link ? nic->link : "-", strerror(-r));
	} else {
		berth_error_set(err, r, BERTH_ERR_INTERNAL, "veth \"%s\": %s", nic->host,
				strerror(-r));
	}
	if (r >= 0)
		r = apply_limits(nic, err);
	if (r < 0 && berth_nl_link_get(nl, nic->host, &host) == 0)
		berth_nl_link_del(nl, host.index);
	if (r < 0)
		ifb_del(nl, nic);
	return r;
}

static int macvlan_add(struct berth_nl *nl, const struct runtime_nic *nic, int netns_fd,
		       struct berth_error *err)
{
	struct berth_nl_link parent;
	int r = berth_nl_link_get(nl, nic->parent, &parent);

	if (r == -ENODEV)
		return berth_error_set(err, r, BERTH_ERR_BAD_REQUEST,
				       "parent interface \"%s\" not found", nic->parent);
	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "parent \"%s\": %s", nic->parent,
				       strerror(-r));
	r = berth_nl_macvlan_add(nl, nic->name, parent.index, nic->mode, netns_fd,
				 nic->has_hwaddr ? nic->hwaddr : NULL, nic->mtu);
	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL,
				       "creating macvlan \"%s\" on \"%s\": %s", nic->name,
				       nic->parent, strerror(-r));
	return 0;
}

int runtime_net_nic_add(struct berth_nl *nl, const struct runtime_nic *nic, int netns_fd,
			struct berth_error *err)
{
	int r = nic->type == RUNTIME_NIC_VETH ? veth_add(nl, nic, netns_fd, err)
					      : macvlan_add(nl, nic, netns_fd, err);

	if (r < 0)
		return berth_error_wrap(err, r, "NIC \"%s\"", nic->name);
	return 0;
}

int runtime_net_nic_del(struct berth_nl *nl, const struct runtime_nic *nic, int netns_fd,
			struct berth_error *err)
{
	struct berth_nl inside = {.fd = -1};
	struct berth_nl_link l;
	int r;

	if (nic->type == RUNTIME_NIC_VETH) {
		r = berth_nl_link_get(nl, nic->host, &l);
		if (r == 0)
			r = berth_nl_link_del(nl, l.index);
		ifb_del(nl, nic);
	} else {
		r = berth_nl_open_netns(&inside, netns_fd);
		if (r == 0) {
			r = berth_nl_link_get(&inside, nic->name, &l);
			if (r == 0)
				r = berth_nl_link_del(&inside, l.index);
			berth_nl_close(&inside);
		}
	}
	if (r < 0 && r != -ENODEV)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "removing NIC \"%s\": %s",
				       nic->name, strerror(-r));
	return 0;
}

int runtime_net_setup(const struct runtime_spec *spec, pid_t pid, struct berth_error *err)
{
	_cleanup_close_ int netns = -EBADF;
	struct berth_nl nl = {.fd = -1};
	char path[64];
	int r = 0;

	if (!spec->n_nics)
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)pid);
	netns = open(path, O_RDONLY | O_CLOEXEC);
	if (netns < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "opening %s: %m", path);
	r = berth_nl_open(&nl);
	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "netlink: %s", strerror(-r));
	for (size_t i = 0; i < spec->n_nics && r >= 0; i++)
		r = runtime_net_nic_add(&nl, &spec->nics[i], netns, err);
	berth_nl_close(&nl);
	return r;
}

void runtime_net_teardown(const struct runtime_spec *spec)
{
	struct berth_nl nl = {.fd = -1};
	struct berth_nl_link l;

	if (!spec->n_nics || berth_nl_open(&nl) < 0)
		return;
	for (size_t i = 0; i < spec->n_nics; i++) {
		if (spec->nics[i].type != RUNTIME_NIC_VETH)
			continue;
		if (berth_nl_link_get(&nl, spec->nics[i].host, &l) == 0 && streq(l.kind, "veth"))
			berth_nl_link_del(&nl, l.index);
		ifb_del(&nl, &spec->nics[i]);
	}
	berth_nl_close(&nl);
}
