#!/bin/bash
# tests/integration/t_crash.sh: berthd killed with SIGKILL in the middle of storage work,
# for real, on a btrfs loop pool and on the default dir pool: an image import, an unpack,
# an instance create, copy, snapshot and restore, a custom volume snapshot, copy, move and
# cross-pool copy, each cut at a named point (berthd's test-only BERTH_TEST_PAUSE_AT hook,
# see doc/internals.md), and a dir copy cut while its cp runs. After each restart the
# database and the disk must agree: no half instance or volume, no orphan volume or
# snapshot directory, no helper process left, the source intact. TAP output.
#
# The image is built (or taken from the cache) before lib.sh enters the namespaces, as
# t_instances.sh does.
if [ -z "${BERTH_IN_NETNS:-}" ] && [ "$(id -u)" = 0 ]; then
	T_CRASH_OUT=$(mktemp -d /tmp/berth-t-crash.XXXXXX)
	srcdir=${BERTH_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
	"$srcdir/images/build" busybox "$T_CRASH_OUT" >"$T_CRASH_OUT/fp" 2>"$T_CRASH_OUT/log" ||
		rm -f "$T_CRASH_OUT/fp"
	export T_CRASH_OUT
fi

. "$(dirname "$0")/lib.sh"
[ -n "${BERTH_IN_NETNS:-}" ] && trap 'rm -rf "$T_CRASH_OUT"' EXIT

if [ "$(id -u)" = 0 ]; then
	command -v mkfs.btrfs >/dev/null || skip_all "mkfs.btrfs not found (apt-get install btrfs-progs)"
	grep -qw btrfs /proc/filesystems || modprobe btrfs 2>/dev/null
	grep -qw btrfs /proc/filesystems || skip_all "kernel without btrfs"
	[ -s "$T_CRASH_OUT/fp" ] || skip_all "the busybox image could not be built: $(tail -n 1 "$T_CRASH_OUT/log")"
fi
berth_test_init "$@"
export PATH=$BERTH_BUILDDIR:$PATH
fp=$(cat "$T_CRASH_OUT/fp")

crash_cleanup()
{
	daemon_stop
	grep -F " $TEST_TMP/" /proc/self/mountinfo | awk '{print $5}' | sort -r |
		while read -r m; do umount -l "$m"; done
	losetup -a | grep -F "$TEST_TMP/" | cut -d: -f1 | while read -r dev; do
		losetup -d "$dev"
	done
	rm -rf "$T_CRASH_OUT"
	_berth_test_exit
}
trap crash_cleanup EXIT

yes_() { if "$@"; then pass "$T"; else fail "$T"; fi; }
mounts() { grep -cF " $BERTH_DIR/" /proc/self/mountinfo; }
loops() { losetup -a | grep -cF "$BERTH_DIR/"; }
# Processes (other than berthd) working on the state directory: cp, rm, find, tar...
helpers() { pgrep -f -- "$BERTH_DIR/storage-pools" | grep -vx "${DAEMON_PID:-0}" | wc -l; }
# cgroups of this daemon's instances: under berth-HASH, the parent cgroup named after
# this test's BERTH_DIR (other tests on the machine have their own)
CGH=berth-$(printf '%s' "$BERTH_DIR" | sha256sum | cut -c1-8)
cgroups() { find /sys/fs/cgroup -maxdepth 4 -type d -path "*/$CGH/*" 2>/dev/null | wc -l; }
# tree_sum DIR: one checksum over the names, modes, link targets and contents of DIR.
tree_sum()
{
	(cd "$1" 2>/dev/null && find . -printf '%p %m %l\n' | sort &&
		find . -type f -print0 | sort -z | xargs -0 -r sha256sum) | sha256sum | cut -c1-16
}

# kill_at POINT CMD...: restart berthd so that it stops at POINT, run CMD in the
# background, wait for berthd to say it reached POINT, SIGKILL it, start it again
# normally (its start-up reconciliation runs), and reap CMD (which fails).
kill_at()
{
	local point=$1 n0 i bg
	shift
	BERTHD_ENV=(BERTH_TEST_HARNESS=1 "BERTH_TEST_PAUSE_AT=$point")
	daemon_restart
	n0=$(grep -c "berth-test-pause: $point" "$DAEMON_LOG")
	"$@" >"$TEST_TMP/bg.out" 2>&1 &
	bg=$!
	for i in $(seq 600); do
		[ "$(grep -c "berth-test-pause: $point" "$DAEMON_LOG")" -gt "$n0" ] && break
		kill -0 $bg 2>/dev/null || break
		sleep 0.05
	done
	if [ "$(grep -c "berth-test-pause: $point" "$DAEMON_LOG")" -gt "$n0" ]; then
		pass "berthd stopped at $point"
	else
		fail "berthd stopped at $point" "$(cat "$TEST_TMP/bg.out")"
	fi
	kill -KILL "$DAEMON_PID"
	wait "$DAEMON_PID" 2>/dev/null
	DAEMON_PID=
	wait $bg 2>/dev/null
	sleep 0.2
	T="no helper process outlives the killed berthd ($point)"; yes_ test "$(helpers)" = 0
	BERTHD_ENV=()
	daemon_start && pass "berthd restarted after SIGKILL at $point"
}

# db_matches_disk POOL: every volume and snapshot row of POOL has its directory and
# every directory has its row; nothing set aside (.old, .restore, .deleting, .unpack-).
db_matches_disk()
{
	local pool=$1 P=$BERTH_DIR/storage-pools/$1 want got
	api GET "/1.0/storage-pools/$pool/volumes?recursion=1"
	want=$(jget 'print("\n".join(sorted(("%s/default_%s" % ({"container": "containers", "custom": "custom"}[v["type"]], v["name"])) if "/" not in v["name"] else ("%s-snapshots/default_%s" % ({"container": "containers", "custom": "custom"}[v["type"]], v["name"])) for v in j["metadata"] if v["type"] in ("container", "custom"))))' | sed '/^None$/d')
	got=$(cd "$P" && { ls -1d containers/* custom/* 2>/dev/null; ls -1d containers-snapshots/*/* custom-snapshots/*/* 2>/dev/null; } | sort)
	if [ "$want" = "$got" ]; then
		pass "$pool: database and disk agree"
	else
		fail "$pool: database and disk agree" "rows:" "$want" "disk:" "$got"
	fi
	T="$pool: nothing set aside or half unpacked"
	yes_ test -z "$(ls -A "$P/containers" "$P/custom" "$P/images" | grep -E '\.(old|restore|deleting)$|\.unpack-')"
}

mounts0=$(mounts) loops0=$(loops) cg0=$(cgroups)
check "create a btrfs pool on a loop file" berth storage create bt btrfs size=1GiB
dp=$BERTH_DIR/storage-pools/default

# ---- an image import cut between its file and its row ----
kill_at image-import-after-file berth image import "$T_CRASH_OUT/busybox.tar.gz" --alias busybox
api GET /1.0/images
is "$(jget 'len(j["metadata"])')" 0 "killed import: no image row"
T="killed import: no image file left"; yes_ test -z "$(ls -A "$BERTH_DIR/images" 2>/dev/null)"
check "the import works afterwards" berth image import "$T_CRASH_OUT/busybox.tar.gz" --alias busybox
T="... and stores the image file"; yes_ test -f "$BERTH_DIR/images/$fp"

for pool in bt default; do
	P=$BERTH_DIR/storage-pools/$pool
	c=c-$pool
	diag "---- pool $pool ----"
	# unpack and create
	kill_at image-unpack-before-rename berth init busybox u-$pool -s $pool
	api GET /1.0/instances/u-$pool
	is "$HTTP_STATUS" 404 "killed unpack: no instance"
	T="killed unpack: no image volume, whole or partial"; yes_ test -z "$(ls -A "$P/images")"
	kill_at instance-create-after-disk berth init busybox u-$pool -s $pool
	api GET /1.0/instances/u-$pool
	is "$HTTP_STATUS" 404 "killed create: no instance"
	T="killed create: no root volume"; yes_ test ! -e "$P/containers/default_u-$pool"
	T="killed create: the unpacked image volume is kept (a cache)"; yes_ test -d "$P/images/$fp"
	db_matches_disk $pool

	check "an instance on $pool" berth init busybox $c -s $pool
	V=$P/containers/default_$c
	echo one >"$V/rootfs/marker"
	check "... with a snapshot s0" berth snapshot $c s0
	echo two >"$V/rootfs/marker"
	sum=$(tree_sum "$V")

	# instance copy cut before its rows
	kill_at instance-copy-after-disk berth copy $c cc-$pool
	api GET /1.0/instances/cc-$pool
	is "$HTTP_STATUS" 404 "killed copy: no instance"
	T="killed copy: no volume and no snapshot directory"
	yes_ test ! -e "$P/containers/default_cc-$pool" -a ! -e "$P/containers-snapshots/default_cc-$pool"
	T="killed copy: the source is intact"; yes_ test "$(tree_sum "$V")" = "$sum"
	api GET /1.0/instances/$c/snapshots/s0
	is "$HTTP_STATUS" 200 "killed copy: the source keeps its snapshot"

	# instance snapshot cut before its row
	kill_at instance-snapshot-after-disk berth snapshot $c k1
	api GET /1.0/instances/$c/snapshots/k1
	is "$HTTP_STATUS" 404 "killed snapshot: no snapshot row"
	T="killed snapshot: no snapshot directory"; yes_ test ! -e "$P/containers-snapshots/default_$c/k1"
	T="killed snapshot: s0 kept on disk"; yes_ test -f "$P/containers-snapshots/default_$c/s0/rootfs/marker"
	T="killed snapshot: the instance is intact"; yes_ test "$(tree_sum "$V")" = "$sum"

	# restore cut between its two renames: the volume as it was before is put back
	kill_at restore-mid-swap berth restore $c s0
	T="killed restore: the volume is there"; yes_ test -d "$V/rootfs"
	T="killed restore: ... as it was before the restore"; yes_ test "$(tree_sum "$V")" = "$sum"
	check "a restore works afterwards" berth restore $c s0
	T="... and restores"; yes_ test "$(cat "$V/rootfs/marker")" = one
	db_matches_disk $pool

	# custom volumes
	check "a custom volume on $pool" berth storage volume create $pool v-$pool
	echo a >"$P/custom/default_v-$pool/f"
	check "... with a snapshot" berth storage volume snapshot $pool v-$pool vs0
	kill_at volume-snapshot-after-disk berth storage volume snapshot $pool v-$pool vk
	T="killed volume snapshot: no directory"; yes_ test ! -e "$P/custom-snapshots/default_v-$pool/vk"
	api GET /1.0/storage-pools/$pool/volumes/custom/v-$pool/snapshots/vk
	is "$HTTP_STATUS" 404 "killed volume snapshot: no row"
	kill_at volume-copy-after-disk berth storage volume copy $pool/v-$pool $pool/vc
	api GET /1.0/storage-pools/$pool/volumes/custom/vc
	is "$HTTP_STATUS" 404 "killed volume copy: no row"
	T="killed volume copy: no volume or snapshots"; yes_ test ! -e "$P/custom/default_vc" -a ! -e "$P/custom-snapshots/default_vc"
	T="killed volume copy: the source is intact"; yes_ test "$(cat "$P/custom/default_v-$pool/f")" = a -a -d "$P/custom-snapshots/default_v-$pool/vs0"
	db_matches_disk $pool
done

# across pools: cut after the first snapshot was recreated, and a move cut before its rows
kill_at transfer-after-snapshot berth storage volume copy bt/v-bt default/vx
api GET /1.0/storage-pools/default/volumes/custom/vx
is "$HTTP_STATUS" 404 "killed cross-pool copy: no row"
T="killed cross-pool copy: no volume or snapshot on the destination"; yes_ test ! -e "$dp/custom/default_vx" -a ! -e "$dp/custom-snapshots/default_vx"
kill_at volume-move-after-disk berth storage volume move bt/v-bt default/vm
api GET /1.0/storage-pools/bt/volumes/custom/v-bt/snapshots/vs0
is "$HTTP_STATUS" 200 "killed move: the source and its snapshot rows stay"
T="killed move: the source is intact on disk"; yes_ test "$(cat "$BERTH_DIR/storage-pools/bt/custom/default_v-bt/f")" = a
T="killed move: nothing on the destination"; yes_ test ! -e "$dp/custom/default_vm" -a ! -e "$dp/custom-snapshots/default_vm"
db_matches_disk bt
db_matches_disk default

# ---- a dir copy cut while cp runs (no pause point: a big instance) ----
check "a big instance on dir" berth init busybox big -s default
B=$dp/containers/default_big
mkdir "$B/rootfs/data" && for i in $(seq 40); do
	head -c 4M /dev/urandom >"$B/rootfs/data/f$i"
done
(cd "$B/rootfs/data" && seq 1 4000 | xargs touch)
bsum=$(tree_sum "$B")
api POST /1.0/instances '{"name":"bigc","source":{"type":"copy","source":"big"}}'
for i in $(seq 200); do [ -d "$dp/containers/default_bigc/rootfs" ] && break; sleep 0.02; done
sleep 0.1
running=$(helpers)
kill -KILL "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null
DAEMON_PID=
if [ "$running" -gt 0 ]; then pass "berthd killed while its cp ran"; else skip "berthd killed while its cp ran" "the copy ended first"; fi
sleep 0.2
T="the cp died with berthd"; yes_ test "$(helpers)" = 0
daemon_start && pass "berthd restarted"
api GET /1.0/instances/bigc
is "$HTTP_STATUS" 404 "killed mid-cp: no instance"
T="killed mid-cp: no half volume"; yes_ test ! -e "$dp/containers/default_bigc"
T="killed mid-cp: the source is intact"; yes_ test "$(tree_sum "$B")" = "$bsum"
db_matches_disk default

# ---- tear down ----
for x in $(berth list -c n -f csv 2>/dev/null); do berth delete "$x" >/dev/null 2>&1 || fail "delete $x"; done
for v in v-bt; do berth storage volume delete bt $v >/dev/null 2>&1 || fail "delete bt/$v"; done
berth storage volume delete default v-default >/dev/null 2>&1 || fail "delete default/v-default"
check "delete the btrfs pool" berth storage delete bt
[ "$(mounts)" = "$mounts0" ] && pass "no mount left" || fail "no mount left ($(mounts) vs $mounts0)"
[ "$(loops)" = "$loops0" ] && pass "no loop device left" || fail "no loop device left"
[ "$(cgroups)" = "$cg0" ] && pass "no cgroup left" || fail "no cgroup left"
T="no helper process left"; yes_ test "$(helpers)" = 0
