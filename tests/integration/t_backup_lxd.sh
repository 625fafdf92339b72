#!/bin/bash
# t_backup_lxd.sh: what berth exports, Debian's LXD 5.0.2 imports and boots. A busybox
# container with a file owned 1000:1000 and a snapshot taken before the file changed is
# exported by `berth export` (dir pool) and, on btrfs, with --optimized-storage; an
# LXD daemon of the test's own (LXD_DIR in the test's temp dir, inside the test's
# network and mount namespaces, stopped by PID) imports each with `lxc import`: the
# instance and its snapshot are there, it starts (LXD remaps it) and shows the file with
# its content and owner, and a restore of the snapshot brings the older content back.
# Skipped when the lxd daemon is not installed (apt-get install lxd). TAP output.
. "$(dirname "$0")/lib.sh"
berth_test_images busybox
: "${BERTH_MONITOR:=$BERTH_BUILDDIR/berth-monitor}"
if [ "$(id -u)" = 0 ]; then
	[ -x "$BERTH_MONITOR" ] || skip_all "no berth-monitor at $BERTH_MONITOR (build it first)"
	command -v lxc >/dev/null || skip_all "the lxc client is not installed (lxd-client)"
	command -v lxd >/dev/null || skip_all "the lxd daemon is not installed (apt-get install lxd)"
fi
BERTHD_ENV=(BERTH_MONITOR="$BERTH_MONITOR")
berth_test_init "$@"
export PATH=$BERTH_BUILDDIR:$PATH
W=$TEST_TMP/work
mkdir -p "$W"
LXD_PID=
# The LXD daemon of this test, and the lxc client talking to it.
LXD_HOME=$TEST_TMP/lxd
lxl() { LXD_DIR=$LXD_HOME LXD_CONF=$TEST_TMP/lxd-conf lxc "$@"; }
lxd_stop()
{
	[ -n "$LXD_PID" ] || return 0
	LXD_DIR=$LXD_HOME timeout 60 lxd shutdown >/dev/null 2>&1
	kill "$LXD_PID" 2>/dev/null
	wait "$LXD_PID" 2>/dev/null
	LXD_PID=
}
# lib.sh's exit handler stops berthd; LXD goes first.
trap 'lxd_stop; _berth_test_exit' EXIT

check "import the busybox image" berth image import "${IMAGE[busybox]}" --alias busybox
check "launch c1" berth launch busybox c1
check "c1: a file owned by 1000:1000" berth exec c1 -- sh -c 'echo first >/f.txt && chown 1000:1000 /f.txt'
check "snapshot c1 snap0" berth snapshot c1 snap0
check "c1: the file changes" berth exec c1 -- sh -c 'echo second >/f.txt'
check "stop c1" berth stop c1
check "berth export c1" berth export c1 "$W/c1.tar.gz"
btrfs=
if command -v mkfs.btrfs >/dev/null && { grep -qw btrfs /proc/filesystems || modprobe btrfs 2>/dev/null; }; then
	btrfs=1
	check "create a btrfs pool" berth storage create bt btrfs size=1GiB
	check "launch b1 on btrfs" berth launch busybox b1 -s bt
	check "b1: a file owned by 1000:1000" berth exec b1 -- sh -c 'echo first >/f.txt && chown 1000:1000 /f.txt'
	check "snapshot b1 snap0" berth snapshot b1 snap0
	check "b1: the file changes" berth exec b1 -- sh -c 'echo second >/f.txt'
	check "berth export b1 --optimized-storage (running)" berth export b1 "$W/b1.tar.gz" --optimized-storage
	check "delete b1" berth delete -f b1
	check "delete the btrfs pool" berth storage delete bt
fi

mkdir -p "$LXD_HOME" "$TEST_TMP/lxd-conf"
# LXD's containers run as unprivileged ids that must reach its directory (search only).
chmod 0711 "$TEST_TMP"
LXD_DIR=$LXD_HOME lxd --group root --logfile "$TEST_TMP/lxd.log" >/dev/null 2>&1 &
LXD_PID=$!
if ! LXD_DIR=$LXD_HOME timeout 90 lxd waitready --timeout 90; then
	fail "LXD starts" "$(tail -n 20 "$TEST_TMP/lxd.log")"
	exit 1
fi
pass "LXD $(lxd --version) of the test's own starts"
check "LXD: a dir pool" lxl storage create default dir
check "LXD: the default profile's root disk" lxl profile device add default root disk path=/ pool=default

# import_boot NAME FILE [ARGS]: lxc import, start, the file, restore.
import_boot()
{
	local name=$1 file=$2
	shift 2
	run lxl import "$file" "$@"
	rc_ok "LXD imports berth's export of $name $*"
	run lxl info "$name"
	like "$OUT" "snap0" "... with its snapshot"
	run timeout 120 env LXD_DIR="$LXD_HOME" LXD_CONF="$TEST_TMP/lxd-conf" lxc start "$name"
	rc_ok "... and starts it"
	[ "$RC" = 0 ] || diag "$(lxl info --show-log "$name" 2>&1 | tail -n 25)"
	run timeout 30 env LXD_DIR="$LXD_HOME" LXD_CONF="$TEST_TMP/lxd-conf" lxc exec "$name" -- sh -c 'cat /f.txt; stat -c %u:%g /f.txt /'
	is "$OUT" $'second\n1000:1000\n0:0' "... where the file has its content and owner, / is root's"
	check "... stop" timeout 60 env LXD_DIR="$LXD_HOME" LXD_CONF="$TEST_TMP/lxd-conf" lxc stop -f "$name"
	check "... restore snap0" lxl restore "$name" snap0
	check "... start again" timeout 120 env LXD_DIR="$LXD_HOME" LXD_CONF="$TEST_TMP/lxd-conf" lxc start "$name"
	run timeout 30 env LXD_DIR="$LXD_HOME" LXD_CONF="$TEST_TMP/lxd-conf" lxc exec "$name" -- cat /f.txt
	is "$OUT" first "... the snapshot had the older content"
	check "... delete" lxl delete -f "$name"
}
import_boot c1 "$W/c1.tar.gz"
if [ -n "$btrfs" ]; then
	check "LXD: a btrfs pool" lxl storage create lbt btrfs size=1GiB
	import_boot b1 "$W/b1.tar.gz" --storage lbt
	check "LXD: delete the btrfs pool" lxl storage delete lbt
else
	skip "LXD imports an optimized btrfs export" "mkfs.btrfs or the kernel module is missing"
fi
check "LXD: no root disk in the default profile" lxl profile device remove default root
check "LXD: delete the dir pool" lxl storage delete default
lxd_stop
