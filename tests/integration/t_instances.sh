#!/bin/bash
# tests/integration/t_instances.sh: instances with root volumes end to end, on a btrfs
# loop pool and the default dir pool: created from the busybox image (berth and the stock
# lxc client) with the image's templates applied, snapshotted, restored, copied with and
# without snapshots, renamed and deleted with nothing left; an image deleted under its
# instances; a full pool failing the creation with no instance left; a berthd killed
# mid-create consistent after restart; no mount or loop device left. TAP output.
#
# The image is built (or taken from the cache) before lib.sh enters the namespaces, as
# t_images.sh does.
if [ -z "${BERTH_IN_NETNS:-}" ] && [ "$(id -u)" = 0 ]; then
	T_INST_OUT=$(mktemp -d /tmp/berth-t-inst.XXXXXX)
	srcdir=${BERTH_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
	"$srcdir/images/build" busybox "$T_INST_OUT" >"$T_INST_OUT/fp" 2>"$T_INST_OUT/log" ||
		rm -f "$T_INST_OUT/fp"
	export T_INST_OUT
fi

. "$(dirname "$0")/lib.sh"
# Until inst_cleanup takes over: a skip must not leave the built image behind.
[ -n "${BERTH_IN_NETNS:-}" ] && trap 'rm -rf "$T_INST_OUT"' EXIT

if [ "$(id -u)" = 0 ]; then
	command -v mkfs.btrfs >/dev/null || skip_all "mkfs.btrfs not found (apt-get install btrfs-progs)"
	grep -qw btrfs /proc/filesystems || modprobe btrfs 2>/dev/null
	grep -qw btrfs /proc/filesystems || skip_all "kernel without btrfs"
	[ -s "$T_INST_OUT/fp" ] || skip_all "the busybox image could not be built: $(tail -n 1 "$T_INST_OUT/log")"
fi
berth_test_init "$@"
export PATH=$BERTH_BUILDDIR:$PATH
export LXD_CONF=$TEST_TMP/lxd-conf
mkdir -p "$LXD_CONF"
fp=$(cat "$T_INST_OUT/fp")

inst_cleanup()
{
	daemon_stop
	grep -F " $TEST_TMP/" /proc/self/mountinfo | awk '{print $5}' | sort -r |
		while read -r m; do umount -l "$m"; done
	losetup -a | grep -F "$TEST_TMP/" | cut -d: -f1 | while read -r dev; do
		losetup -d "$dev"
	done
	rm -rf "$T_INST_OUT"
	_berth_test_exit
}
trap inst_cleanup EXIT

has()
{
	local d=$1 pat=$2
	shift 2
	out=$("$@" 2>&1)
	if printf '%s' "$out" | grep -qF -- "$pat"; then pass "$d"; else fail "$d" "$out" "want: $pat"; fi
}
yes_() { if "$@"; then pass "$T"; else fail "$T"; fi; }
mounts() { grep -cF " $BERTH_DIR/" /proc/self/mountinfo; }
loops() { losetup -a | grep -cF "$BERTH_DIR/"; }
# op METHOD PATH BODY: an async request that must succeed; HTTP_* is the operation.
op()
{
	api "$@"
	if [ "$HTTP_STATUS" = 202 ]; then
		wait_operation "$(jget 'j["operation"]')"
	fi
	[ "$(jget 'j["metadata"]["status"]')" = Success ]
}
OPMS='"%.1f" % ((__import__("datetime").datetime.fromisoformat(j["metadata"]["updated_at"][:26]) - __import__("datetime").datetime.fromisoformat(j["metadata"]["created_at"][:26])).total_seconds() * 1000)'
# timed DESC METHOD PATH BODY: the request and its operation through curl; prints the
# wall time and the operation's own time (created_at to updated_at, the server's work).
timed()
{
	local d=$1 m=$2 p=$3 b=$4 t0 t1 opurl st
	t0=$(date +%s%N)
	opurl=$(curl -s --unix-socket "$BERTH_SOCKET" -X "$m" -d "$b" "http://b$p" |
		grep -o '"operation":"[^"]*"' | cut -d'"' -f4)
	st=$(curl -s --unix-socket "$BERTH_SOCKET" "http://b$opurl/wait?timeout=30")
	t1=$(date +%s%N)
	diag "$d: $(((t1 - t0) / 1000000)) ms wall (two curl runs), $(jget "$OPMS" "$st") ms in the operation"
	case $st in *'"status":"Success"'*) pass "$d" ;; *) fail "$d" "$st" ;; esac
}

mounts0=$(mounts)
loops0=$(loops)
check "import the busybox image" berth image import "$T_INST_OUT/busybox.tar.gz" --alias busybox
check "create a btrfs pool on a loop file" berth storage create bt btrfs size=1GiB
bp=$BERTH_DIR/storage-pools/bt
dp=$BERTH_DIR/storage-pools/default
lxc remote add b "unix://$BERTH_DIR/unix.socket" >/dev/null 2>&1

for pool in bt default; do
	P=$BERTH_DIR/storage-pools/$pool
	c=c-$pool
	diag "---- pool $pool ----"
	timed "init from the image alias on $pool (first: unpacks the image)" POST /1.0/instances "{\"name\":\"$c\",\"source\":{\"type\":\"image\",\"alias\":\"busybox\"},\"devices\":{\"root\":{\"type\":\"disk\",\"path\":\"/\",\"pool\":\"$pool\"}}}"
	V=$P/containers/default_$c
	T="the rootfs is there"; yes_ test -x "$V/rootfs/bin/busybox"
	# the container root's files are the host's uid 0 on disk: no other host user reaches them
	if setpriv --reuid=65534 --regid=65534 --clear-groups test -e "$V/rootfs/bin/busybox"; then
		fail "another host user cannot reach the rootfs on $pool" "nobody can stat $V/rootfs/bin/busybox"
	else
		pass "another host user cannot reach the rootfs on $pool"
	fi
	T="metadata.yaml and templates/ are there"; yes_ test -f "$V/metadata.yaml" -a -d "$V/templates"
	T="the hostname template is applied"; yes_ test "$(cat "$V/rootfs/etc/hostname")" = "$c"
	T="/etc/hosts names the instance"; yes_ grep -q "127.0.1.1.*$c" "$V/rootfs/etc/hosts"
	T="the image volume is unpacked once on the pool"; yes_ test -d "$P/images/$fp"
	api GET "/1.0/instances/$c"
	is "$(jget 'j["metadata"]["config"]["volatile.base_image"]')" "$fp" "volatile.base_image is recorded"
	is "$(jget 'j["metadata"]["config"]["image.os"]')" busybox "image.* properties are copied"
	has "the root volume is listed on the pool" "$c" berth storage volume list "$pool"

	# snapshots and restore
	echo one >"$V/rootfs/data"
	timed "snapshot (snap0 by default) on $pool" POST "/1.0/instances/$c/snapshots" '{}'
	T="the snapshot is on disk"; yes_ test -f "$P/containers-snapshots/default_$c/snap0/rootfs/data"
	op POST "/1.0/instances/$c/snapshots" '{"name":"s1"}' && pass "a named snapshot" || fail "a named snapshot" "$HTTP_BODY"
	api GET "/1.0/instances/$c/snapshots"
	is "$(jget 'len(j["metadata"])')" 2 "two snapshots listed"
	api GET "/1.0/instances/$c/snapshots/snap0"
	is "$(jget 'j["metadata"]["name"]')" snap0 "GET one snapshot"
	echo two >"$V/rootfs/data"
	rm "$V/rootfs/etc/hostname"
	timed "restore snap0 on $pool" PUT "/1.0/instances/$c" '{"restore":"snap0"}'
	V=$P/containers/default_$c
	T="the content change is reverted"; yes_ test "$(cat "$V/rootfs/data")" = one
	T="the removed file is back"; yes_ test -f "$V/rootfs/etc/hostname"
	op POST "/1.0/instances/$c/snapshots/s1" '{"name":"s2"}' && pass "rename a snapshot" || fail "rename a snapshot" "$HTTP_BODY"
	T="the renamed snapshot moved on disk"; yes_ test -d "$P/containers-snapshots/default_$c/s2"

	# copies
	timed "copy with 2 snapshots on $pool" POST /1.0/instances "{\"name\":\"$c-copy\",\"source\":{\"type\":\"copy\",\"source\":\"$c\"}}"
	T="the copy has its own hostname"; yes_ test "$(cat "$P/containers/default_$c-copy/rootfs/etc/hostname")" = "$c-copy"
	T="the copy has the data"; yes_ test "$(cat "$P/containers/default_$c-copy/rootfs/data")" = one
	api GET "/1.0/instances/$c-copy/snapshots"
	is "$(jget 'len(j["metadata"])')" 2 "the copy has the snapshots"
	T="... on disk too"; yes_ test -d "$P/containers-snapshots/default_$c-copy/snap0"
	op POST /1.0/instances "{\"name\":\"$c-only\",\"source\":{\"type\":\"copy\",\"source\":\"$c\",\"instance_only\":true}}" &&
		pass "copy --instance-only" || fail "copy --instance-only" "$HTTP_BODY"
	api GET "/1.0/instances/$c-only/snapshots"
	is "$(jget 'len(j["metadata"])')" 0 "... has no snapshot"
	T="... and none on disk"; yes_ test ! -e "$P/containers-snapshots/default_$c-only"
	op POST /1.0/instances "{\"name\":\"$c-fromsnap\",\"source\":{\"type\":\"copy\",\"source\":\"$c/s2\"}}" &&
		pass "copy from a snapshot" || fail "copy from a snapshot" "$HTTP_BODY"
	T="... has the snapshot's content"; yes_ test -f "$P/containers/default_$c-fromsnap/rootfs/bin/busybox"
	other=bt; [ "$pool" = bt ] && other=default
	expect_error 400 "a copy to another pool is refused" POST /1.0/instances "{\"name\":\"$c-x\",\"source\":{\"type\":\"copy\",\"source\":\"$c\"},\"devices\":{\"root\":{\"type\":\"disk\",\"path\":\"/\",\"pool\":\"$other\"}}}"

	# rename and delete
	op POST "/1.0/instances/$c-only" "{\"name\":\"$c-renamed\"}" && pass "rename" || fail "rename" "$HTTP_BODY"
	T="the volume follows the rename"; yes_ test -d "$P/containers/default_$c-renamed" -a ! -e "$P/containers/default_$c-only"
	for x in "$c-renamed" "$c-fromsnap" "$c-copy"; do
		op DELETE "/1.0/instances/$x" || fail "delete $x" "$HTTP_BODY"
	done
	T="deleted instances leave no volume"; yes_ test -z "$(ls "$P/containers" | grep -v "^default_$c\$")"
	T="... and no snapshot"; yes_ test -z "$(ls "$P/containers-snapshots" | grep -v "^default_$c\$")"
done

# the berth CLI
check "berth init busybox bc -s bt -c user.k=v" berth init busybox bc -s bt -c user.k=v
T="berth init put the rootfs on bt"; yes_ test "$(cat "$bp/containers/default_bc/rootfs/etc/hostname")" = bc
has "the -c key is set" "user.k: v" berth config show bc
check "berth init by fingerprint prefix" berth init "${fp:0:12}" bc-fp
T="... on the profile's pool (default)"; yes_ test -d "$dp/containers/default_bc-fp/rootfs"
check "berth snapshot" berth snapshot bc
check "berth snapshot with a name" berth snapshot bc keep
has "berth info lists the snapshots" "snap0" berth info bc
echo changed >"$bp/containers/default_bc/rootfs/etc/hostname"
check "berth restore" berth restore bc snap0
T="berth restore reverted the change"; yes_ test "$(cat "$bp/containers/default_bc/rootfs/etc/hostname")" = bc
check "berth rename of a snapshot" berth rename bc/keep kept
check "berth copy" berth copy bc bc2
check "berth copy --instance-only" berth copy bc bc3 --instance-only
check "berth copy of a snapshot" berth copy bc/kept bc4
T="the copies exist"; yes_ test -d "$bp/containers-snapshots/default_bc2/kept" -a ! -e "$bp/containers-snapshots/default_bc3" -a -d "$bp/containers/default_bc4/rootfs"
check "berth rename" berth rename bc4 bc5
check "berth delete of a snapshot" berth delete bc/snap0
T="... removes it from disk"; yes_ test ! -e "$bp/containers-snapshots/default_bc/snap0"
check "berth delete" berth delete bc bc2 bc3 bc5 bc-fp
T="berth delete left no volume"; yes_ test -z "$(ls -A "$bp/containers" "$bp/containers-snapshots" "$dp/containers" "$dp/containers-snapshots" | grep -v : | grep -v '^default_c-' | grep .)"

# stock lxc client
if command -v lxc >/dev/null; then
	check "lxc init b:busybox b:lc" lxc init b:busybox b:lc
	T="lxc init made the rootfs on the default pool"; yes_ test -x "$dp/containers/default_lc/rootfs/bin/busybox"
	check "lxc snapshot" lxc snapshot b:lc
	has "lxc info lists the snapshot" "snap0" lxc info b:lc
	check "lxc restore" lxc restore b:lc snap0
	check "lxc copy" lxc copy b:lc b:lc2
	check "lxc copy --instance-only" lxc copy b:lc b:lc3 --instance-only
	has "lxc list shows them" "lc3" lxc list b:
	check "lxc delete" lxc delete b:lc b:lc2 b:lc3
	T="lxc delete left no volume"; yes_ test ! -e "$dp/containers/default_lc" -a ! -e "$dp/containers-snapshots/default_lc"
else
	skip "lxc client" "lxc not installed"
fi

# btrfs timing: init from the cached image volume
timed "init from the cached image on btrfs" POST /1.0/instances '{"name":"fast","source":{"type":"image","alias":"busybox"},"devices":{"root":{"type":"disk","path":"/","pool":"bt"}}}'

refuse "deleting a pool holding instance volumes is refused" "currently in use" berth storage delete bt

# an image deleted under its instances
check "delete the image" berth image delete busybox
api GET /1.0/instances/fast
is "$HTTP_STATUS" 200 "the instance survives its image"
T="... with its rootfs"; yes_ test -x "$bp/containers/default_fast/rootfs/bin/busybox"
T="the image volumes are removed from the pools"; yes_ test ! -e "$bp/images/$fp" -a ! -e "$dp/images/$fp"
check "re-import the image" berth image import "$T_INST_OUT/busybox.tar.gz" --alias busybox

# a full pool: the creation fails and no instance is left
if berth storage create small btrfs size=110MiB >/dev/null 2>&1 ||
	berth storage create small btrfs size=128MiB >/dev/null 2>&1; then
	sp=$BERTH_DIR/storage-pools/small
	dd if=/dev/urandom of="$sp/filler" bs=1M count=200 2>/dev/null
	sync
	api POST /1.0/instances '{"name":"full","source":{"type":"image","alias":"busybox"},"devices":{"root":{"type":"disk","path":"/","pool":"small"}}}'
	[ "$HTTP_STATUS" = 202 ] && wait_operation "$(jget 'j["operation"]')"
	is "$(jget 'j["metadata"]["status"]')" Failure "a creation on a full pool fails"
	diag "$(jget 'j["metadata"]["err"]')"
	api GET /1.0/instances/full
	is "$HTTP_STATUS" 404 "... and the instance does not exist"
	T="... nor its volume"; yes_ test -z "$(ls -A "$sp/containers")"
	T="... nor a half-unpacked image"; yes_ test -z "$(ls -A "$sp/images" | grep -F .unpack-)"
	rm -f "$sp/filler"
	sync
	check "with space again, a creation on that pool works (no damaged cache left)" berth init busybox roomy -s small
	T="... with its files whole"; yes_ grep -q roomy "$sp/containers/default_roomy/rootfs/etc/hostname"
	check "delete it" berth delete roomy
	check "delete the small pool" berth storage delete small
else
	fail "create a small btrfs pool"
fi

# snapshot expiry: expires_at given, and from snapshots.expiry; pruned at start
check "an instance for expiry" berth init busybox ex
soon=$(date -u -d '+2 seconds' +%Y-%m-%dT%H:%M:%SZ)
op POST /1.0/instances/ex/snapshots "{\"name\":\"short\",\"expires_at\":\"$soon\"}" && pass "a snapshot with expires_at" || fail "a snapshot with expires_at" "$HTTP_BODY"
check "snapshots.expiry set" berth config set ex snapshots.expiry 1d
check "a snapshot under snapshots.expiry" berth snapshot ex long
api GET /1.0/instances/ex/snapshots/long
like "$(jget 'j["metadata"]["expires_at"]')" "^$(date -u -d '+1 day' +%Y-%m-%d)T" "expires_at is now + 1d"
check "berth snapshot --no-expiry ignores snapshots.expiry" berth snapshot ex later --no-expiry
api GET /1.0/instances/ex/snapshots/later
is "$(jget 'j["metadata"]["expires_at"]')" 0001-01-01T00:00:00Z "... its expires_at is never"
refuse "a taken name without --reuse" "already exists" berth snapshot ex later
created=$(jget 'j["metadata"]["created_at"]')
sleep 1
check "berth snapshot --reuse replaces it" berth snapshot ex later --reuse --no-expiry
api GET /1.0/instances/ex/snapshots/later
isnt "$(jget 'j["metadata"]["created_at"]')" "$created" "... a new snapshot (created_at moved)"
# PUT and PATCH change expires_at (LXD's InstanceSnapshotPut; the rest is ignored)
soon2=$(TZ=Etc/GMT-2 date -d '+2 seconds' +%Y-%m-%dT%H:%M:%S+02:00)
op PUT /1.0/instances/ex/snapshots/later "{\"expires_at\":\"$soon2\",\"config\":{},\"profiles\":[\"default\"]}" &&
	pass "PUT sets a snapshot's expires_at (given with an offset)" || fail "PUT expires_at" "$HTTP_BODY"
api GET /1.0/instances/ex/snapshots/later
is "$(jget 'j["metadata"]["expires_at"]')" "$(date -u -d "$soon2" +%Y-%m-%dT%H:%M:%S)Z" "... stored in UTC, written as LXD writes it"
op PATCH /1.0/instances/ex/snapshots/long '{}' && pass "PATCH without expires_at" || fail "PATCH {}" "$HTTP_BODY"
api GET /1.0/instances/ex/snapshots/long
like "$(jget 'j["metadata"]["expires_at"]')" "^$(date -u -d '+1 day' +%Y-%m-%d)T" "... keeps expires_at"
check "a snapshot to clear" berth snapshot ex cleared
api GET /1.0/instances/ex/snapshots/cleared
like "$(jget 'j["metadata"]["expires_at"]')" "^$(date -u -d '+1 day' +%Y-%m-%d)T" "... expiring in 1d"
op PUT /1.0/instances/ex/snapshots/cleared '{}' && pass "PUT without expires_at" || fail "PUT {}" "$HTTP_BODY"
api GET /1.0/instances/ex/snapshots/cleared
is "$(jget 'j["metadata"]["expires_at"]')" 0001-01-01T00:00:00Z "... makes it never expire"
expect_error 400 "PUT with a malformed expires_at" PUT /1.0/instances/ex/snapshots/long '{"expires_at":"soon"}'
is "$(jget 'j["error"]')" 'Invalid expires_at "soon" (RFC 3339)' "... named in the error"
expect_error 404 "PUT on a missing snapshot" PUT /1.0/instances/ex/snapshots/nosuch '{"expires_at":"0001-01-01T00:00:00Z"}'
expect_error 400 "a creation with a malformed expires_at" POST /1.0/instances/ex/snapshots '{"name":"bad","expires_at":"2026-13-01"}'
sleep 3
daemon_restart
api GET /1.0/instances/ex/snapshots/short
is "$HTTP_STATUS" 404 "the expired snapshot is removed at start"
api GET /1.0/instances/ex/snapshots/later
is "$HTTP_STATUS" 404 "the snapshot whose expiry a PUT set is removed at start too"
api GET /1.0/instances/ex/snapshots/cleared
is "$HTTP_STATUS" 200 "the one whose expiry a PUT cleared stays"
check "delete it" berth delete ex/cleared
T="... from disk too"; yes_ test ! -e "$dp/containers-snapshots/default_ex/short"
api GET /1.0/instances/ex/snapshots/long
is "$HTTP_STATUS" 200 "the unexpired one stays"

# snapshots.schedule (the test hook makes the minute tick every 300 ms)
BERTHD_ENV=(BERTH_SNAPSHOT_TICK_MS=300)
daemon_restart
check "snapshots.schedule set" berth config set ex snapshots.schedule '* * * * *'
sleep 1
api GET /1.0/instances/ex/snapshots
is "$(jget 'len(j["metadata"])')" 1 "a stopped instance is not snapshotted by default"
check "snapshots.schedule.stopped=true" berth config set ex snapshots.schedule.stopped true
check "snapshots.pattern" berth config set ex snapshots.pattern 'auto-%d'
sleep 1
api GET /1.0/instances/ex/snapshots/auto-0
is "$HTTP_STATUS" 200 "the schedule took a snapshot named by the pattern"
T="... on disk"; yes_ test -d "$dp/containers-snapshots/default_ex/auto-0"
check "unset the schedule" berth config unset ex snapshots.schedule
BERTHD_ENV=()
daemon_restart

# SIGKILL during a create on dir (a copy of the whole image: slow enough to be caught)
api POST /1.0/instances '{"name":"killed","source":{"type":"image","alias":"busybox"}}'
sleep 0.05
kill -KILL "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null
DAEMON_PID=
# and a volume left without its row, as a kill between clone and COMMIT leaves it, and a
# snapshot left by a kill between the driver's snapshot and its row
mkdir -p "$dp/containers/default_ghost/rootfs" "$dp/containers-snapshots/default_ex/ghost/rootfs"
daemon_start && pass "berthd restarted after SIGKILL"
api GET /1.0/instances/killed
if [ "$HTTP_STATUS" = 200 ]; then
	T="killed mid-create: the row has its volume"; yes_ test -d "$dp/containers/default_killed/rootfs"
else
	T="killed mid-create: no row and no volume"; yes_ test ! -e "$dp/containers/default_killed"
fi
T="the orphan volume is removed at start"; yes_ test ! -e "$dp/containers/default_ghost"
T="the orphan snapshot is removed at start"; yes_ test ! -e "$dp/containers-snapshots/default_ex/ghost"
T="... and the recorded one kept"; yes_ test -d "$dp/containers-snapshots/default_ex/long"
T="no temporary image volume is left"; yes_ test -z "$(ls "$dp/images" | grep -F .unpack-)"

# A kill between a rename's disk work and its COMMIT leaves the volume (and its
# snapshots) under the new name and the row under the old one: the volume must be
# renamed back at start, not removed as an orphan.
check "an instance for the rename window" berth init busybox rnw
check "... with a snapshot" berth snapshot rnw s0
echo keep > "$dp/containers/default_rnw/rootfs/marker"
daemon_stop
mv "$dp/containers/default_rnw" "$dp/containers/default_rnw2"
mv "$dp/containers-snapshots/default_rnw" "$dp/containers-snapshots/default_rnw2"
daemon_start && pass "berthd restarted after a cut rename"
T="the volume is back under its recorded name"; yes_ test -f "$dp/containers/default_rnw/rootfs/marker"
T="... with its snapshot"; yes_ test -d "$dp/containers-snapshots/default_rnw/s0"
T="... and nothing under the unrecorded name"; yes_ test ! -e "$dp/containers/default_rnw2"
api GET /1.0/instances/rnw/snapshots/s0
is "$HTTP_STATUS" 200 "the snapshot is still served"

# tear down
for x in $(berth list -c n -f csv 2>/dev/null); do op DELETE "/1.0/instances/$x" || fail "delete $x" "$HTTP_BODY"; done
api GET /1.0/instances
is "$(jget 'len(j["metadata"])')" 0 "every instance deleted"
T="no instance volume left on dir"; yes_ test -z "$(ls -A "$dp/containers" "$dp/containers-snapshots" | grep -v : | grep .)"
T="no instance volume left on btrfs"; yes_ test -z "$(ls -A "$bp/containers" "$bp/containers-snapshots" | grep -v : | grep .)"
check "delete the btrfs pool" berth storage delete bt
[ "$(mounts)" = "$mounts0" ] && pass "no mount left" || fail "no mount left ($(mounts) vs $mounts0)"
[ "$(loops)" = "$loops0" ] && pass "no loop device left" || fail "no loop device left ($(loops) vs $loops0)"
