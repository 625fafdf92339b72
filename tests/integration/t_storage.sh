#!/bin/bash
# tests/integration/t_storage.sh: storage pools and custom volumes end to end, against a
# private berthd in its own network and mount namespaces: btrfs on a loop file and dir
# pools through the berth CLI and the stock lxc client, a used pool refused, a full
# pool and a full quota failing cleanly, pools remounted across a restart, and no loop
# device or mount left behind. TAP output.

. "$(dirname "$0")/lib.sh"

if [ "$(id -u)" = 0 ]; then
	command -v mkfs.btrfs >/dev/null || skip_all "mkfs.btrfs not found (apt-get install btrfs-progs)"
	grep -qw btrfs /proc/filesystems || modprobe btrfs 2>/dev/null
	grep -qw btrfs /proc/filesystems || skip_all "kernel without btrfs"
fi
berth_test_init "$@"
export PATH=$BERTH_BUILDDIR:$PATH
export LXD_CONF=$TEST_TMP/lxd-conf
mkdir -p "$LXD_CONF"

# Before lib.sh removes TEST_TMP: berthd stopped (it unmounts its pools), then
# whatever a failed check left mounted unmounted and its loop devices detached.
storage_cleanup()
{
	daemon_stop
	grep -F " $TEST_TMP/" /proc/self/mountinfo | awk '{print $5}' | sort -r |
		while read -r m; do umount -l "$m"; done
	losetup -a | grep -F "$TEST_TMP/" | cut -d: -f1 | while read -r dev; do
		losetup -d "$dev"
	done
	_berth_test_exit
}
trap storage_cleanup EXIT

# check DESC CMD...: CMD succeeds (its output shown when not).
check() { local d=$1; shift; if out=$("$@" 2>&1); then pass "$d"; else fail "$d" "$out"; fi; }
# refuse DESC TEXT CMD...: CMD fails with TEXT in its output.
refuse()
{
	local d=$1 pat=$2
	shift 2
	if out=$("$@" 2>&1); then
		fail "$d (succeeded)" "$out"
	elif printf '%s' "$out" | grep -qF -- "$pat"; then
		pass "$d"
	else
		fail "$d (wrong message)" "$out" "want: $pat"
	fi
}
# has / hasnt DESC TEXT CMD...: CMD's output contains (does not contain) TEXT.
has()
{
	local d=$1 pat=$2
	shift 2
	out=$("$@" 2>&1)
	if printf '%s' "$out" | grep -qF -- "$pat"; then pass "$d"; else fail "$d" "$out" "want: $pat"; fi
}
hasnt()
{
	local d=$1 pat=$2
	shift 2
	out=$("$@" 2>&1)
	if printf '%s' "$out" | grep -qF -- "$pat"; then fail "$d" "$out"; else pass "$d"; fi
}

mounts() { grep -cF " $BERTH_DIR/" /proc/self/mountinfo; }
loops() { losetup -a | grep -cF "$BERTH_DIR/"; }

# ---- btrfs on a loop file ----
check "create a btrfs pool on a 1GiB loop file" berth storage create bt btrfs size=1GiB
has "the pool is listed" "| bt      | btrfs  | $BERTH_DIR/disks/bt.img" berth storage list
[ "$(mounts)" = 1 ] && pass "the pool is mounted" || fail "the pool is mounted ($(mounts))"
[ "$(loops)" = 1 ] && pass "one loop device" || fail "one loop device ($(loops))"
has "storage info shows the total space" "total space: 1.00GiB" berth storage info bt
refuse "a second pool with the same name is refused" "already exists" berth storage create bt btrfs size=1GiB
[ "$(loops)" = 1 ] && pass "the refused pool left no loop device" || fail "the refused pool left a loop device"
refuse "an unknown driver is refused" "isn't supported" berth storage create x zfs
refuse "an unknown key is refused" 'Invalid key "foo"' berth storage create x btrfs foo=bar
[ ! -e "$BERTH_DIR/storage-pools/x" ] && [ ! -e "$BERTH_DIR/disks/x.img" ] &&
	pass "refused pools left nothing on disk" || fail "refused pools left files"

check "create a custom volume with a size" berth storage volume create bt v1 size=64MiB
vol=$BERTH_DIR/storage-pools/bt/custom/default_v1
echo one >"$vol/file"
check "snapshot it (default name)" berth storage volume snapshot bt v1
check "snapshot it (named)" berth storage volume snapshot bt v1 s1
has "snap0 listed" "| custom (snapshot) | v1/snap0" berth storage volume list bt
has "s1 listed" "| custom (snapshot) | v1/s1" berth storage volume list bt
echo two >"$vol/file"
check "restore snap0" berth storage volume restore bt v1 snap0
[ "$(cat "$vol/file" 2>/dev/null)" = one ] && pass "restored content" || fail "restored content"
refuse "deleting a used pool is refused" "The storage pool is currently in use" berth storage delete bt
has "show names the volume in used_by" "/1.0/storage-pools/bt/volumes/custom/v1" berth storage show bt
check "rename the volume" berth storage volume rename bt v1 v2
[ -f "$BERTH_DIR/storage-pools/bt/custom-snapshots/default_v2/s1/file" ] &&
	pass "snapshots follow the rename" || fail "snapshots follow the rename"
check "delete a snapshot" berth storage volume delete bt v2/s1
check "attach the volume to a profile" berth profile device add default data disk pool=bt source=v2 path=/data
has "the volume is used by the profile" "| custom            | v2       |             | filesystem   | 1       |" berth storage volume list bt
refuse "deleting an attached volume is refused" "The storage volume is still in use" berth storage volume delete bt v2
check "detach it" berth profile device remove default data
hasnt "the snapshot is gone" "v2/s1" berth storage volume list bt

# ---- the stock lxc client ----
if command -v lxc >/dev/null; then
	lxc remote add b "unix://$BERTH_DIR/unix.socket" >/dev/null 2>&1
	has "lxc storage list shows the pool" "| bt      | btrfs  | $BERTH_DIR/disks/bt.img " lxc storage list b:
	has "lxc storage list shows its use and state" "|             | 1       | CREATED |" lxc storage list b:
	has "lxc storage volume list" "| custom (snapshot) | v2/snap0 |             | filesystem   | 0       |" lxc storage volume list b:bt
	check "lxc storage volume create" lxc storage volume create b:bt lv
	check "lxc storage volume snapshot" lxc storage volume snapshot b:bt lv ls0
	has "lxc storage volume show" "name: lv" lxc storage volume show b:bt lv
	check "lxc storage volume delete" lxc storage volume delete b:bt lv
	has "lxc storage info shows the total space" "total space: 1.00GiB" lxc storage info b:bt
	has "lxc storage info shows the driver" "driver: btrfs" lxc storage info b:bt
	has "lxc storage info shows the volume using the pool" "  - v2" lxc storage info b:bt
else
	skip "lxc storage commands" "lxc client not installed"
fi

# ---- dir ----
check "create a dir pool" berth storage create d1 dir
check "create a dir volume" berth storage volume create d1 dv
refuse "a size on dir is refused with a reason" "doesn't support volume size limits" berth storage volume create d1 dq size=1GiB
[ ! -e "$BERTH_DIR/storage-pools/d1/custom/default_dq" ] && pass "the refused volume left nothing" || fail "the refused volume left a directory"
hasnt "the refused volume has no row" "dq" berth storage volume list d1
ln -s file "$BERTH_DIR/storage-pools/d1/custom/default_dv/link"
echo x >"$BERTH_DIR/storage-pools/d1/custom/default_dv/file"
check "snapshot a dir volume" berth storage volume snapshot d1 dv
[ -L "$BERTH_DIR/storage-pools/d1/custom-snapshots/default_dv/snap0/link" ] && pass "the symlink is in the snapshot" || fail "the symlink is in the snapshot"
# A dir snapshot copies the tree: other writes must not wait for it (the database lock
# is not held during the copy). 30000 files take seconds to copy here.
mkdir "$BERTH_DIR/storage-pools/d1/custom/default_dv/many"
(cd "$BERTH_DIR/storage-pools/d1/custom/default_dv/many" && seq 1 30000 | xargs touch)
berth storage volume snapshot d1 dv big >"$TEST_TMP/snap.out" 2>&1 &
snap_pid=$!
sleep 0.3
t0=$(date +%s%N)
berth profile create during-snapshot >/dev/null 2>&1 && created=1 || created=0
t1=$(date +%s%N)
if kill -0 $snap_pid 2>/dev/null && [ $created = 1 ]; then
	pass "a profile is created during a long dir snapshot ($(( (t1 - t0) / 1000000 )) ms)"
elif [ $created = 1 ]; then
	skip "a profile is created during a long dir snapshot" "the snapshot ended first"
else
	fail "a profile is created during a long dir snapshot"
fi
wait $snap_pid && pass "the long snapshot succeeds" || { fail "the long snapshot succeeds"; sed 's/^/# /' "$TEST_TMP/snap.out"; }
berth profile delete during-snapshot >/dev/null 2>&1
has "the long snapshot is listed" "dv/big" berth storage volume list d1
refuse "deleting the used dir pool is refused" "currently in use" berth storage delete d1
check "delete the dir volume" berth storage volume delete d1 dv
left=$(find "$BERTH_DIR/storage-pools/d1/custom" "$BERTH_DIR/storage-pools/d1/custom-snapshots" -mindepth 1)
[ -z "$left" ] && pass "deleting left nothing aside (no .deleting)" || { fail "deleting left something aside"; echo "# $left"; }
check "delete the dir pool" berth storage delete d1
[ ! -e "$BERTH_DIR/storage-pools/d1" ] && pass "the dir pool is gone from disk" || fail "the dir pool is gone from disk"

# ---- full disk: a 110MiB pool (btrfs' minimum), a quota and the pool filling up ----
if berth storage create small btrfs size=110MiB >/dev/null 2>&1 ||
	berth storage create small btrfs size=128MiB >/dev/null 2>&1; then
	pass "create a small btrfs pool"
	check "a volume with a 20MiB quota" berth storage volume create small q size=20MiB
	q=$BERTH_DIR/storage-pools/small/custom/default_q
	if dd if=/dev/zero of="$q/fill" bs=1M count=60 conv=fsync 2>"$TEST_TMP/dd.err"; then
		fail "writing past the quota fails"
	else
		grep -q "quota exceeded" "$TEST_TMP/dd.err" && pass "writing past the quota fails (EDQUOT)" ||
			{ fail "writing past the quota fails with EDQUOT"; sed 's/^/# /' "$TEST_TMP/dd.err"; }
	fi
	check "a volume without quota" berth storage volume create small big
	if dd if=/dev/zero of="$BERTH_DIR/storage-pools/small/custom/default_big/fill" bs=1M count=400 conv=fsync 2>"$TEST_TMP/dd.err"; then
		fail "filling the pool fails"
	else
		grep -q "No space left" "$TEST_TMP/dd.err" && pass "filling the pool fails (ENOSPC)" ||
			{ fail "filling the pool fails with ENOSPC"; sed 's/^/# /' "$TEST_TMP/dd.err"; }
	fi
	has "the daemon still answers on a full pool" "small" berth storage list
	check "delete the full volumes" sh -c "berth storage volume delete small big && berth storage volume delete small q"
	check "delete the small pool" berth storage delete small
else
	fail "create a small btrfs pool"
fi

# ---- restart: pools are unmounted at stop and mounted again at start; what a killed
# berthd can leave on disk without a row (the driver's work done, the COMMIT not) is
# cleaned up, and a restore cut between its two renames is put back ----
bp=$BERTH_DIR/storage-pools/bt
btrfs -q subvolume create "$bp/custom/default_orphan" >/dev/null &&
	btrfs -q subvolume snapshot -r "$bp/custom/default_v2" "$bp/custom-snapshots/default_v2/ghost" >/dev/null &&
	mv "$bp/custom/default_v2" "$bp/custom/default_v2.old" &&
	pass "simulate a crash: orphan volume and snapshot, restore cut half-way" ||
	fail "simulate a crash"
# ---- restart: pools are unmounted at stop and mounted again at start ----
daemon_stop
[ "$(mounts)" = 0 ] && pass "stopping unmounted the pools" || fail "stopping unmounted the pools ($(mounts) left)"
[ "$(loops)" = 0 ] && pass "stopping detached the loop devices" || fail "stopping detached the loop devices"
# A pool whose creation was cut before COMMIT: mounted, its loop file, no row.
mkdir -p "$BERTH_DIR/storage-pools/ghostpool" &&
	truncate -s 200M "$BERTH_DIR/disks/ghostpool.img" && mkfs.btrfs -q "$BERTH_DIR/disks/ghostpool.img" >/dev/null 2>&1 &&
	mount -o loop "$BERTH_DIR/disks/ghostpool.img" "$BERTH_DIR/storage-pools/ghostpool" &&
	pass "simulate a crash: an orphan pool, mounted" || fail "simulate a crash: an orphan pool"
daemon_start && pass "berthd restarted"
[ "$(mounts)" = 1 ] && pass "the btrfs pool is mounted again (and only it)" || fail "the btrfs pool is mounted again ($(mounts))"
has "its volume is still there" "| custom (snapshot) | v2/snap0" berth storage volume list bt
[ ! -e "$BERTH_DIR/storage-pools/ghostpool" ] && [ ! -e "$BERTH_DIR/disks/ghostpool.img" ] &&
	pass "the orphan pool is unmounted and gone" || fail "the orphan pool is unmounted and gone"
[ ! -e "$bp/custom/default_orphan" ] && pass "the orphan volume is gone" || fail "the orphan volume is gone"
[ ! -e "$bp/custom-snapshots/default_v2/ghost" ] && pass "the orphan snapshot is gone" || fail "the orphan snapshot is gone"
[ "$(cat "$bp/custom/default_v2/file" 2>/dev/null)" = one ] && [ ! -e "$bp/custom/default_v2.old" ] &&
	pass "the half-done restore is put back" || fail "the half-done restore is put back"
[ -e "$bp/custom-snapshots/default_v2/snap0" ] && pass "the recorded snapshot is kept" || fail "the recorded snapshot is kept"

# ---- tear down through the API ----
check "delete the volume with its snapshots" berth storage volume delete bt v2
check "delete the btrfs pool" berth storage delete bt
[ "$(mounts)" = 0 ] && pass "no mount left" || fail "no mount left ($(mounts))"
[ "$(loops)" = 0 ] && pass "no loop device left" || fail "no loop device left"
[ ! -e "$BERTH_DIR/disks/bt.img" ] && pass "the loop file is gone" || fail "the loop file is gone"
has "only the default pool remains" "| default |" berth storage list
