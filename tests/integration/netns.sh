# tests/integration/netns.sh: the inside half of running in namespaces of our
# own, shared by the integration tests (lib.sh) and the benchmarks (bench/run).
#
# The caller re-executes itself with `unshare --net --mount --propagation slave`
# (mounts then propagate from the host but never back), after recording the
# host's network namespace, and calls berth_netns_prepare first thing inside.
# `ip netns exec` is not used: it remounts /sys and hides /sys/fs/cgroup.

# berth_netns_prepare HOST_NETNS: fails unless this is a network namespace other
# than HOST_NETNS (a readlink of /proc/self/ns/net), brings lo up, mounts a
# fresh sysfs so /sys/class/net shows this namespace's links, and binds the
# host's cgroup tree back onto /sys/fs/cgroup. A sysfs that cannot be remounted
# is only a warning (stderr).
berth_netns_prepare()
{
	local cg
	if [ "$(readlink /proc/self/ns/net)" = "$1" ]; then
		echo "still in the host network namespace after unshare" >&2
		return 1
	fi
	ip link set lo up || { echo "cannot bring up lo in the namespace" >&2; return 1; }
	cg=$(mktemp -d /tmp/berth-cg.XXXXXX) || return 1
	if mount --rbind /sys/fs/cgroup "$cg" 2>/dev/null &&
		mount -t sysfs -o nosuid,nodev,noexec sysfs /sys 2>/dev/null; then
		mount --rbind "$cg" /sys/fs/cgroup ||
			echo "warning: cannot bind the cgroup tree back onto /sys/fs/cgroup" >&2
	else
		echo "warning: cannot remount /sys in the namespace; keeping the host's" >&2
	fi
	umount -l "$cg" 2>/dev/null
	rmdir "$cg" 2>/dev/null
	return 0
}
