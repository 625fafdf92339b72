/* daemon/runtime/net.h: a container's NICs (doc/runtime.md, "NICs"): created by
 * berth-monitor in the container's fresh network namespace at every (re)boot, and by
 * berthd when a NIC is hot-plugged into a running container. Plain libc and lib/netlink,
 * so both link it. */
#pragma once

#include <sys/types.h>

#include "daemon/runtime/spec.h"
#include "lib/error.h"
#include "lib/netlink.h"

/* Create `nic` for the network namespace `netns_fd`, with `nl` a netlink socket in the
 * host's (the caller's) namespace: a veth whose peer is created directly inside with its
 * final name and MAC, the host end joined to `link` and up, its limits applied with tc;
 * or a macvlan on `parent` created directly inside. The inside link is left down for the
 * container's own network configuration to bring up. On failure nothing of this NIC is
 * left and `err` says what was missing ("bridge \"br0\" not found"...). */
int runtime_net_nic_add(struct berth_nl *nl, const struct runtime_nic *nic, int netns_fd,
			struct berth_error *err);
/* Remove `nic` from a running container: the veth through its host end (the peer goes
 * with it), a macvlan inside `netns_fd`. Absent: 0. */
int runtime_net_nic_del(struct berth_nl *nl, const struct runtime_nic *nic, int netns_fd,
			struct berth_error *err);
/* Every NIC of `spec` for the container whose PID 1 is `pid` (host view). */
int runtime_net_setup(const struct runtime_spec *spec, pid_t pid, struct berth_error *err);
/* Delete the host ends of `spec`'s veths, so that a stop leaves none behind even while
 * the kernel is still dismantling the old namespace. Errors are ignored. */
void runtime_net_teardown(const struct runtime_spec *spec);
