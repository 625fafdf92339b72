#!/bin/bash
# tests/integration/t_device_nodes.sh: a device node that reaches an unprivileged
# container's root or disks from outside (an image, a backup, a host directory) cannot
# be opened inside it: berth mounts those trees nodev (berth sets no device cgroup
# policy; LXD's stops the same nodes with one). The nodes planted here are copies of
# null (1:3) and zero (1:5), owned by the container's root with mode 0666, so a failure
# of this test opens nothing harmful. The container's own /dev (bind mounts of the
# host's standard nodes) keeps working. Checked for the root, a host directory disk,
# a custom volume, a disk hot-plugged into the running container and a restart; a
# privileged container (which could mknod anyway) still opens them. TAP output.
. "$(dirname "$0")/lib.sh"
berth_test_images busybox
: "${BERTH_MONITOR:=$BERTH_BUILDDIR/berth-monitor}"
BERTHD_ENV=(BERTH_MONITOR="$BERTH_MONITOR")
berth_test_init "$@"
export PATH=$BERTH_BUILDDIR:$PATH

check "import the busybox image" berth image import "${IMAGE[busybox]}" --alias busybox
rootfs() { echo "$BERTH_DIR/storage-pools/default/containers/default_$1/rootfs"; }
# plant DIR: a null and a zero node in DIR, owned by the container's root (0 on disk:
# root volumes hold the container's ids and are idmapped at start), mode 0666.
plant()
{
	mknod -m 0666 "$1/planted-null" c 1 3 && mknod -m 0666 "$1/planted-zero" c 1 5
}
# opens C PATH: what opening PATH/planted-null for writing and PATH/planted-zero for
# reading inside container C answers, one word each (ok or the shell's error).
opens()
{
	berth exec "$1" -- sh -c "
		if echo x 2>/dev/null > $2/planted-null; then echo null:ok; else echo null:refused; fi
		if head -c 4 $2/planted-zero >/dev/null 2>&1; then echo zero:ok; else echo zero:refused; fi" 2>&1 |
		tr '\n' ' '
}

# ---- an unprivileged container: root, host directory disk, custom volume ----
check "create c1" berth init busybox c1
ok "plant nodes in c1's root" plant "$(rootfs c1)"
hostdir=$TEST_TMP/hostdir
mkdir -p "$hostdir" && plant "$hostdir"
check "attach a host directory holding nodes" \
	berth config device add c1 host disk source="$hostdir" path=/mnt/host
check "create a custom volume" berth storage volume create default v1
vol=$BERTH_DIR/storage-pools/default/custom/default_v1
ok "plant nodes in the volume" plant "$vol"
check "attach the volume" berth config device add c1 data disk pool=default source=v1 path=/mnt/data
check "start c1" berth start c1
is "$(opens c1 /)" "null:refused zero:refused " "nodes in the root cannot be opened"
is "$(opens c1 /mnt/host)" "null:refused zero:refused " "nodes in a host directory disk cannot be opened"
is "$(opens c1 /mnt/data)" "null:refused zero:refused " "nodes in a custom volume cannot be opened"
is "$(berth exec c1 -- sh -c 'echo x > /dev/null && head -c 4 /dev/zero | wc -c' 2>&1)" 4 \
	"the container's own /dev/null and /dev/zero work"
like "$(berth exec c1 -- sh -c 'ls -l /planted-null' 2>&1)" "^c.* 1, +3 " "the planted node is there"
hot=$TEST_TMP/hot
mkdir -p "$hot" && plant "$hot"
check "hot-plug a host directory holding nodes" \
	berth config device add c1 hot disk source="$hot" path=/mnt/hot
is "$(opens c1 /mnt/hot)" "null:refused zero:refused " "nodes in a hot-plugged disk cannot be opened"
check "restart c1" berth restart c1
is "$(opens c1 /)" "null:refused zero:refused " "after a restart, still refused in the root"
is "$(opens c1 /mnt/hot)" "null:refused zero:refused " "after a restart, still refused in the disk"
check "delete c1" berth delete -f c1

# ---- a privileged container keeps device nodes ----
check "create a privileged c2" berth init busybox c2 -c security.privileged=true
ok "plant nodes in c2's root" plant "$(rootfs c2)"
check "start c2" berth start c2
is "$(opens c2 /)" "null:ok zero:ok " "a privileged container opens nodes in its root"
check "delete c2" berth delete -f c2
check "delete the volume" berth storage volume delete default v1
