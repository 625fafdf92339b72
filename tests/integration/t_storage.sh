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

# ---- copies: same pool and across drivers, with and without snapshots ----
check "a dir pool for copies" berth storage create dc dir
cb=$BERTH_DIR/storage-pools/bt cd_=$BERTH_DIR/storage-pools/dc
check "a btrfs volume to copy" berth storage volume create bt cv
echo a >"$cb/custom/default_cv/file"; mkdir "$cb/custom/default_cv/sub"; ln -s file "$cb/custom/default_cv/sub/link"
check "... snapshot s0" berth storage volume snapshot bt cv s0
echo b >"$cb/custom/default_cv/file"
check "... snapshot s1" berth storage volume snapshot bt cv s1
echo c >"$cb/custom/default_cv/file"
# content FILE WANT: the file holds WANT
content() { [ "$(cat "$1" 2>/dev/null)" = "$2" ]; }
check "copy within the btrfs pool" berth storage volume copy bt/cv bt/cv-same
content "$cb/custom/default_cv-same/file" c && content "$cb/custom-snapshots/default_cv-same/s0/file" a &&
	content "$cb/custom-snapshots/default_cv-same/s1/file" b && pass "... volume and snapshots copied" ||
	fail "... volume and snapshots copied"
has "... the copy's snapshots are listed" "| custom (snapshot) | cv-same/s1" berth storage volume list bt
echo changed >"$cb/custom/default_cv-same/file"
content "$cb/custom/default_cv/file" c && pass "... the copy is independent of its source" || fail "... the copy is independent of its source"
check "copy btrfs -> dir with snapshots" berth storage volume copy bt/cv dc/cv
content "$cd_/custom/default_cv/file" c && content "$cd_/custom-snapshots/default_cv/s0/file" a &&
	content "$cd_/custom-snapshots/default_cv/s1/file" b && pass "... each snapshot has its own content on dir" ||
	fail "... each snapshot has its own content on dir" "$(ls -R "$cd_" 2>&1 | head -20)"
[ -L "$cd_/custom/default_cv/sub/link" ] && pass "... symlinks are kept" || fail "... symlinks are kept"
has "... listed on the dir pool" "| custom (snapshot) | cv/s1" berth storage volume list dc
check "copy dir -> btrfs with snapshots" berth storage volume copy dc/cv bt/cv-back
content "$cb/custom/default_cv-back/file" c && content "$cb/custom-snapshots/default_cv-back/s0/file" a &&
	content "$cb/custom-snapshots/default_cv-back/s1/file" b && pass "... each snapshot has its own content on btrfs" ||
	fail "... each snapshot has its own content on btrfs"
btrfs property get -ts "$cb/custom-snapshots/default_cv-back/s0" ro 2>/dev/null | grep -q true &&
	pass "... recreated as read-only btrfs snapshots" || fail "... recreated as read-only btrfs snapshots"
check "copy --volume-only" berth storage volume copy bt/cv dc/cv-only --volume-only
content "$cd_/custom/default_cv-only/file" c && [ ! -e "$cd_/custom-snapshots/default_cv-only" ] &&
	pass "... without snapshots" || fail "... without snapshots"
hasnt "... none listed" "cv-only/" berth storage volume list dc
check "copy a snapshot to another pool" berth storage volume copy bt/cv/s0 dc/from-s0
content "$cd_/custom/default_from-s0/file" a && pass "... with the snapshot's content" || fail "... with the snapshot's content"
check "copy a snapshot within the pool" berth storage volume copy bt/cv/s1 bt/from-s1
content "$cb/custom/default_from-s1/file" b && pass "... with the snapshot's content (btrfs)" || fail "... with the snapshot's content (btrfs)"
api GET /1.0/storage-pools/bt/volumes/custom/cv/state
used=$(jget 'j["metadata"]["usage"]["used"]')
[ "${used:-0}" -gt 0 ] 2>/dev/null && pass "GET .../state gives the volume's usage ($used bytes)" || fail "GET .../state gives the volume's usage" "$HTTP_BODY"
expect_error 404 "GET .../state of a missing volume is 404" GET /1.0/storage-pools/bt/volumes/custom/nope/state
refuse "a copy onto an existing volume is refused" "already exists" berth storage volume copy bt/cv dc/cv
refuse "a copy of a missing volume is refused" "not found" berth storage volume copy bt/nope dc/nope
refuse "a copy to a missing pool is refused" "not found" berth storage volume copy bt/cv nopool/x
[ ! -e "$cd_/custom/default_nope" ] && pass "refused copies left nothing" || fail "refused copies left nothing"
api POST /1.0/storage-pools/dc/volumes/custom '{"name":"cfg","source":{"type":"copy","pool":"bt","name":"v2"}}'
[ "$HTTP_STATUS" = 202 ] && wait_operation "$(jget 'j["operation"]')"
is "$(jget 'j["metadata"]["status"]')" Success "a copy of a volume with size= to dir (API, operation)"
api GET /1.0/storage-pools/dc/volumes/custom/cfg
is "$(jget 'j["metadata"]["config"].get("size", "none")')" none "... drops the size dir cannot enforce"
api POST /1.0/storage-pools/bt/volumes/custom '{"name":"cfg2","source":{"type":"copy","pool":"bt","name":"v2","volume_only":true}}'
[ "$HTTP_STATUS" = 202 ] && wait_operation "$(jget 'j["operation"]')"
api GET /1.0/storage-pools/bt/volumes/custom/cfg2
is "$(jget 'j["metadata"]["config"]["size"]')" 64MiB "a copy within btrfs keeps the source's config (size)"
check "move a volume to another pool" berth storage volume move bt/cv-back dc/moved
content "$cd_/custom/default_moved/file" c && content "$cd_/custom-snapshots/default_moved/s1/file" b &&
	pass "... with its content and snapshots" || fail "... with its content and snapshots"
[ ! -e "$cb/custom/default_cv-back" ] && [ ! -e "$cb/custom-snapshots/default_cv-back" ] &&
	[ ! -e "$cb/custom/default_cv-back.deleting" ] && pass "... and the source is gone from disk" ||
	fail "... and the source is gone from disk"
hasnt "... and from the source pool's list" "cv-back" berth storage volume list bt
has "... listed on the new pool with its snapshots" "moved/s0" berth storage volume list dc
if command -v lxc >/dev/null; then
	check "lxc storage volume move (across pools)" lxc storage volume move b:dc/moved b:bt/cv-back
	content "$cb/custom-snapshots/default_cv-back/s0/file" a && [ ! -e "$cd_/custom/default_moved" ] &&
		pass "... moved back with snapshots" || fail "... moved back with snapshots"
	check "lxc storage volume copy (across pools)" lxc storage volume copy b:bt/cv b:dc/lcv
	content "$cd_/custom/default_lcv/file" c && content "$cd_/custom-snapshots/default_lcv/s1/file" b &&
		pass "... with its snapshots" || fail "... with its snapshots"
	check "lxc storage volume copy of a snapshot" lxc storage volume copy b:bt/cv/s0 b:dc/lcv-s0
	content "$cd_/custom/default_lcv-s0/file" a && pass "... with the snapshot's content" || fail "... with the snapshot's content"
	check "lxc storage volume delete of it" lxc storage volume delete b:dc lcv-s0
	check "lxc storage volume copy --volume-only" lxc storage volume copy b:bt/cv b:bt/lcv2 --volume-only
	[ -d "$cb/custom/default_lcv2" ] && [ ! -e "$cb/custom-snapshots/default_lcv2" ] &&
		pass "... without snapshots" || fail "... without snapshots"
	has "lxc storage volume list shows the copy's snapshots" "lcv/s1" lxc storage volume list b:dc
	head -c 1M /dev/urandom >"$cd_/custom/default_lcv/mib"
	has "lxc storage volume info shows the usage" "Usage: 1.0" lxc storage volume info b:dc lcv
	has "lxc storage volume info lists the snapshots" "| s1   |" lxc storage volume info b:dc lcv
	has "lxc storage volume show of the copy" "name: lcv" lxc storage volume show b:dc lcv
	check "lxc storage volume delete of the copies" sh -c "lxc storage volume delete b:dc lcv && lxc storage volume delete b:bt lcv2"
else
	skip "lxc storage volume copy" "lxc client not installed"
fi

# ---- attach and detach: disk devices naming custom volumes ----
api POST /1.0/instances '{"name":"i1","source":{"type":"none"}}'
[ "$HTTP_STATUS" = 202 ] && wait_operation "$(jget 'j["operation"]')"
check "attach a volume to an instance (device named after the volume)" berth storage volume attach bt cv i1 /mnt/cv
api GET /1.0/instances/i1
is "$(jget 'json.dumps(j["metadata"]["devices"]["cv"], sort_keys=True)')" '{"path": "/mnt/cv", "pool": "bt", "source": "cv", "type": "disk"}' "... the disk device is on the instance"
api GET /1.0/storage-pools/bt/volumes/custom/cv
is "$(jget 'j["metadata"]["used_by"]')" '["/1.0/instances/i1"]' "... used_by lists the instance"
has "... volume list counts the use" "custom,cv,,filesystem,1" berth storage volume list bt -f csv
refuse "an attached volume can't be deleted" "The storage volume is still in use" berth storage volume delete bt cv
expect_error 400 "... (400 through the API)" DELETE /1.0/storage-pools/bt/volumes/custom/cv
refuse "the same device name twice is refused" "The device already exists" berth storage volume attach bt cv i1 /mnt/again
check "attach with a device name" berth storage volume attach dc cv i1 data /srv/data
api GET /1.0/instances/i1
is "$(jget 'j["metadata"]["devices"]["data"]["source"]')" cv "... named as given"
refuse "a relative path is refused" "isn't absolute" berth storage volume attach bt cv-same i1 rel mnt
refuse "a missing volume is refused" "not found" berth storage volume attach bt nope i1 /x
expect_error 400 "a device naming a missing volume is refused by the API" PATCH /1.0/instances/i1 '{"devices":{"x":{"type":"disk","pool":"bt","source":"nope","path":"/x"}}}'
expect_error 400 "a device naming a missing pool is refused" PATCH /1.0/instances/i1 '{"devices":{"x":{"type":"disk","pool":"nopool","source":"cv","path":"/x"}}}'
expect_error 400 "a device naming a snapshot is refused" PATCH /1.0/instances/i1 '{"devices":{"x":{"type":"disk","pool":"bt","source":"cv/s0","path":"/x"}}}'
check "detach by volume" berth storage volume detach bt cv i1
check "detach by device name" berth storage volume detach dc cv i1 data
api GET /1.0/instances/i1
is "$(jget 'len(j["metadata"]["devices"])')" 0 "... the devices are gone"
refuse "detaching what is not attached is refused" "No device found for this storage volume" berth storage volume detach bt cv i1
check "attach to a profile" berth storage volume attach-profile bt cv default pdata /pdata
api GET /1.0/storage-pools/bt/volumes/custom/cv
is "$(jget 'j["metadata"]["used_by"]')" '["/1.0/profiles/default"]' "... used_by lists the profile"
check "detach from the profile" berth storage volume detach-profile bt cv default
if command -v lxc >/dev/null; then
	check "lxc storage volume attach" lxc storage volume attach b:bt cv i1 /mnt/lxc
	api GET /1.0/instances/i1
	is "$(jget 'j["metadata"]["devices"]["cv"]["path"]')" /mnt/lxc "... the device has the path"
	refuse "lxc storage volume delete of the attached volume is refused" "still in use" lxc storage volume delete b:bt cv
	check "lxc storage volume detach" lxc storage volume detach b:bt cv i1
	check "lxc storage volume attach-profile" lxc storage volume attach-profile b:bt cv default lp /lp
	check "lxc storage volume detach-profile" lxc storage volume detach-profile b:bt cv default
else
	skip "lxc storage volume attach" "lxc client not installed"
fi
api DELETE /1.0/instances/i1
[ "$HTTP_STATUS" = 202 ] && wait_operation "$(jget 'j["operation"]')"
for v in cv cv-same cv-back from-s1 cfg2; do berth storage volume delete bt $v >/dev/null 2>&1 || fail "delete bt/$v"; done
for v in cv cv-only from-s0 cfg; do berth storage volume delete dc $v >/dev/null 2>&1 || fail "delete dc/$v"; done
check "delete the copies' dir pool" berth storage delete dc

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
