#!/bin/bash
# tests/integration/t_migrate.sh: LXD's migration protocol between two berthds (issue 16,
# Deliver 4), driven through the API: daemon A (lib.sh's) is the source, daemon B (a second
# state dir and unix socket in the same namespaces) the target, pulling from A's operation
# through A's unix socket (source.operation "unix://SOCKET/1.0/operations/ID").
#
# A busybox container with two snapshots (a file differing in each, one owned by
# 1000:1000 with a user xattr), a user key, limits, a disk device, a p2p NIC and a second
# profile goes dir->dir, dir->btrfs, btrfs->btrfs and btrfs->dir: the snapshots arrive in
# order with their dates, config and content; config, devices and profiles are kept,
# volatile keys are not (a new MAC on B's first start); the copy starts; the source is
# untouched. A running source migrates stateless (LXD's final sync), live is refused
# (no CRIU) as LXD refuses it. --instance-only leaves the snapshots out. refresh moves only
# what changed. A source daemon killed mid-transfer (a big file) leaves B with no instance,
# no volume, no rows; so does a btrfs stream too big for B's spool (a small tmpfs). With Debian's LXD 5.0.2 installed: LXD -> berth (pull) and berth ->
# LXD (push), with a snapshot, and the copy boots on the other side.
. "$(dirname "$0")/lib.sh"
berth_test_images busybox
: "${BERTH_MONITOR:=$BERTH_BUILDDIR/berth-monitor}"
if [ "$(id -u)" = 0 ]; then
	[ -x "$BERTH_MONITOR" ] || skip_all "no berth-monitor at $BERTH_MONITOR (build it first)"
	command -v rsync >/dev/null || skip_all "rsync not found (apt-get install rsync)"
	command -v mkfs.btrfs >/dev/null || skip_all "mkfs.btrfs not found (apt-get install btrfs-progs)"
	grep -qw btrfs /proc/filesystems || modprobe btrfs 2>/dev/null
	grep -qw btrfs /proc/filesystems || skip_all "kernel without btrfs"
fi
BERTHD_ENV=(BERTH_MONITOR="$BERTH_MONITOR")
berth_test_init "$@"
export PATH=$BERTH_BUILDDIR:$PATH

A_DIR=$BERTH_DIR
A_SOCK=$BERTH_SOCKET
B_DIR=$TEST_TMP/b
B_SOCK=$B_DIR/unix.socket
B_LOG=$TEST_TMP/berthd-b.log
B_PID=
W=$TEST_TMP/work
mkdir -p "$B_DIR" "$W/shared"
echo shared >"$W/shared/hello"

BERTHD_B_ENV=(BERTH_MONITOR="$BERTH_MONITOR")
mig_cleanup()
{
	local st=$?
	[ "$_tap_failed" -gt 0 ] && [ -f "$B_LOG" ] && diag "---- berthd B log ----" && tail -n 80 "$B_LOG" | sed 's/^/# /'
	BERTH_DIR=$B_DIR BERTH_SOCKET=$B_SOCK berth list -f csv -c n 2>/dev/null |
		while read -r n; do BERTH_DIR=$B_DIR BERTH_SOCKET=$B_SOCK berth stop -f "$n" >/dev/null 2>&1; done
	berth list -f csv -c n 2>/dev/null | while read -r n; do berth stop -f "$n" >/dev/null 2>&1; done
	daemon_b_stop
	daemon_stop
	grep -F " $TEST_TMP/" /proc/self/mountinfo | awk '{print $5}' | sort -r |
		while read -r m; do umount -l "$m"; done
	losetup -a | grep -F "$TEST_TMP/" | cut -d: -f1 | while read -r dev; do losetup -d "$dev"; done
	(exit $st)
	_berth_test_exit
}
trap mig_cleanup EXIT
daemon_b_start

on_a() { BERTH_SOCKET=$A_SOCK BERTH_DIR=$A_DIR "$@"; }
on_b() { BERTH_SOCKET=$B_SOCK BERTH_DIR=$B_DIR "$@"; }
apia() { BERTH_SOCKET=$A_SOCK api "$@"; }
apib() { BERTH_SOCKET=$B_SOCK api "$@"; }

# migrate NAME NEWNAME [TARGET_EXTRA_JSON] [SOURCE_EXTRA_JSON]: the source operation on A,
# the target's creation on B with A's config, devices and profiles (as `lxc copy` sends
# them), then both operations waited for. MIG_B_STATUS/MIG_B_ERR: the target's outcome,
# MIG_A_STATUS: the source's. The body's devices may be overridden by TARGET_EXTRA_JSON.
migrate()
{
	local name=$1 new=$2 extra=${3:-"{}"} sextra=${4:-"{}"} src_op body
	apia GET "/1.0/instances/$name"
	local inst=$HTTP_BODY
	apia POST "/1.0/instances/$name" "$(jget "json.dumps(dict({'migration': True}, **json.loads('$sextra')))" '{}')"
	MIG_A_POST=$HTTP_STATUS
	[ "$HTTP_STATUS" = 202 ] || { MIG_B_STATUS=none; MIG_B_ERR=$HTTP_BODY; return; }
	src_op=$(jget 'j["operation"]')
	local secrets
	secrets=$(jget 'json.dumps(j["metadata"]["metadata"])')
	body=$(printf '%s' "$inst" | $PY -c '
import json, sys
j = json.load(sys.stdin)["metadata"]
new, op, sec, sock, extra = sys.argv[1:6]
b = {"name": new, "architecture": j["architecture"], "config": j["config"],
     "devices": j["devices"], "profiles": j["profiles"], "ephemeral": j["ephemeral"],
     "source": {"type": "migration", "mode": "pull", "operation": "unix://" + sock + op,
                "secrets": json.loads(sec), "certificate": ""}}
e = json.loads(extra)
b["devices"].update(e.pop("devices", {}))
b["source"].update(e.pop("source", {}))
b.update(e)
print(json.dumps(b))' "$new" "$src_op" "$secrets" "$A_SOCK" "$extra")
	apib POST /1.0/instances "$body"
	if [ "$HTTP_STATUS" != 202 ]; then
		MIG_B_STATUS=refused
		MIG_B_ERR=$(jget 'j["error"]')
		apia DELETE "$src_op"
		return
	fi
	local tgt_op
	tgt_op=$(jget 'j["operation"]')
	BERTH_SOCKET=$B_SOCK wait_operation "$tgt_op"
	MIG_B_STATUS=$(jget 'j["metadata"]["status"]')
	MIG_B_ERR=$(jget 'j["metadata"]["err"]')
	MIG_B_PROGRESS=$(jget 'j["metadata"]["metadata"].get("fs_progress", "")')
	# created_at to updated_at (its end), in ms: the figure the test prints for refresh
	MIG_B_MS=$(jget 'int((lambda f: (f(j["metadata"]["updated_at"]) - f(j["metadata"]["created_at"])) * 1000)(lambda s: __import__("datetime").datetime.strptime(s[:26].rstrip("Z"), "%Y-%m-%dT%H:%M:%S.%f").timestamp()))')
	BERTH_SOCKET=$A_SOCK wait_operation "$src_op"
	MIG_A_STATUS=$(jget 'j["metadata"]["status"]')
	MIG_A_ERR=$(jget 'j["metadata"]["err"]')
	MIG_A_PROGRESS=$(jget 'j["metadata"]["metadata"].get("fs_progress", "")')
	MIG_A_SECRETS=$(jget 'sorted(k for k in j["metadata"]["metadata"] if k != "fs_progress")')
}

# snaps SIDE NAME: the snapshots' names, dates, expiry and config, in order. Dates to the
# second: LXD's Snapshot message carries Unix seconds.
snaps()
{
	"api$1" GET "/1.0/instances/$2/snapshots?recursion=1"
	jget 'json.dumps([[s["name"], s["created_at"][:19], s["expires_at"][:19], s["config"], s["devices"]] for s in j["metadata"]], sort_keys=True)'
}
# kept SIDE NAME: what a migration keeps (volatile keys are the target's own).
kept()
{
	"api$1" GET "/1.0/instances/$2"
	jget 'json.dumps({k: ({c: v for c, v in j["metadata"][k].items() if not c.startswith("volatile.")} if k == "config" else j["metadata"][k]) for k in ("architecture", "config", "devices", "profiles", "ephemeral", "type")}, sort_keys=True)'
}
vol() { echo "$1/storage-pools/$2/containers/default_$3"; }
snapvol() { echo "$1/storage-pools/$2/containers-snapshots/default_$3/$4"; }
# tree DIR: path, owner, mode, size or link target, and user xattrs, sorted.
tree()
{
	(cd "$1" && find . -xdev \( -type f -printf '%p %U:%G %m %s\n' \) -o -printf '%p %U:%G %m %y %l\n' | grep -v '^\. ' | sort &&
		getfattr -h -d -m '^user\.' -R . 2>/dev/null | grep -v '^$' | sort)
}
same_tree() # DESC DIR1 DIR2
{
	local a b
	a=$(tree "$2") b=$(tree "$3")
	if [ -n "$a" ] && [ "$a" = "$b" ]; then pass "$1"; else fail "$1" "$(diff <(echo "$a") <(echo "$b") | head -20)"; fi
}

# ---- setup: the image on A, profile extra on both, btrfs pools on both ----
check "A: import the busybox image" on_a berth image import "${IMAGE[busybox]}" --alias busybox
for side in a b; do
	check "$side: profile extra" "on_$side" berth profile create extra
	check "$side: profile extra gets a key" "on_$side" berth profile set extra user.from-profile yes
	check "$side: a btrfs pool on a loop file" "on_$side" berth storage create bt btrfs size=1GiB
done

# ---- c1 on A's dir pool: two snapshots, config, devices, two profiles ----
check "A: init c1 with profiles default and extra" on_a berth init busybox c1 -p default -p extra \
	-c limits.memory=256MiB -c user.x=kept
check "A: c1 gets a disk device" on_a berth config device add c1 data disk source="$W/shared" path=/mnt/data
check "A: c1 gets a p2p NIC" on_a berth config device add c1 eth0 nic nictype=p2p
rf=$(vol "$A_DIR" default c1)/rootfs
state() { printf '%s\n' "$1" >"$rf/state.txt" && chown 1000:1000 "$rf/state.txt" && setfattr -n user.st -v "$1" "$rf/state.txt"; }
check "A: c1 state zero" state zero
check "A: snapshot snap0" on_a berth snapshot c1 snap0
check "A: c1 state one, and a file from here on" sh -c "$(declare -f state); rf=$rf; state one && echo x >$rf/later.txt"
apia POST /1.0/instances/c1/snapshots '{"name": "snap1", "expires_at": "2030-01-01T00:00:00Z"}'
BERTH_SOCKET=$A_SOCK wait_operation "$(jget 'j["operation"]')"
is "$(jget 'j["metadata"]["status"]')" Success "A: snapshot snap1, expiring in 2030"
check "A: c1 state current" state current
check "A: start c1 once (volatile keys, a MAC)" on_a berth start c1
check "A: stop c1" on_a berth stop -f c1
apia GET /1.0/instances/c1
a_mac=$(jget 'j["metadata"]["config"].get("volatile.eth0.hwaddr", "")')
like "$a_mac" '^[0-9a-f]{2}(:[0-9a-f]{2}){5}$' "A: c1 has a MAC in volatile.eth0.hwaddr"
a_snaps=$(snaps a c1)
a_kept=$(kept a c1)

# ---- dir -> dir ----
migrate c1 c1
is "$MIG_B_STATUS" Success "dir->dir: the target's operation succeeds" "$MIG_B_ERR"
is "$MIG_A_STATUS" Success "dir->dir: the source's operation succeeds" "${MIG_A_ERR:-}"
# LXD's fs_progress, which lxc shows while it copies: the last volume sent, the instance
like "$MIG_B_PROGRESS" '^c1: [0-9.]+[kMG]?B \([0-9.]+[kMG]?B/s\)$' "dir->dir: the target's operation shows fs_progress"
like "$MIG_A_PROGRESS" '^c1: [0-9.]+[kMG]?B \([0-9.]+[kMG]?B/s\)$' "dir->dir: the source's operation shows fs_progress"
is "$MIG_A_SECRETS" '["control", "fs"]' "dir->dir: ... beside the source's websocket secrets"
is "$(snaps b c1)" "$a_snaps" "dir->dir: snapshots in order with dates, expiry, config, devices"
is "$(kept b c1)" "$a_kept" "dir->dir: config, devices, profiles, architecture kept"
apib GET /1.0/instances/c1
is "$(jget '[k for k in j["metadata"]["config"] if k.startswith("volatile.") and k != "volatile.base_image"]')" "[]" \
	"dir->dir: no volatile key of the source's on the target"
same_tree "dir->dir: the instance's files, owners, modes, xattrs" "$(vol "$A_DIR" default c1)" "$(vol "$B_DIR" default c1)"
same_tree "dir->dir: snapshot snap0's files" "$(snapvol "$A_DIR" default c1 snap0)" "$(snapvol "$B_DIR" default c1 snap0)"
same_tree "dir->dir: snapshot snap1's files" "$(snapvol "$A_DIR" default c1 snap1)" "$(snapvol "$B_DIR" default c1 snap1)"
is "$(cat "$(snapvol "$B_DIR" default c1 snap0)/rootfs/state.txt")" zero "dir->dir: snap0 holds its own content"
check "B: the copy starts" on_b berth start c1
on_b berth exec c1 -- cat /state.txt >"$TEST_TMP/st" 2>&1
is "$(cat "$TEST_TMP/st")" current "B: the copy runs with the instance's content"
apib GET /1.0/instances/c1
b_mac=$(jget 'j["metadata"]["config"].get("volatile.eth0.hwaddr", "")')
like "$b_mac" '^[0-9a-f]{2}(:[0-9a-f]{2}){5}$' "B: the copy has a MAC of its own"
isnt "$b_mac" "$a_mac" "B: the copy's MAC is not the source's"
check "B: stop c1" on_b berth stop -f c1
# Baselines for the fd check below, once each daemon has started a container.
a_fds0=$(daemon_fds) b_fds0=$(DAEMON_PID=$B_PID daemon_fds)
is "$(snaps a c1)" "$a_snaps" "dir->dir: the source's snapshots are untouched"
is "$(cat "$rf/state.txt")" current "dir->dir: the source's files are untouched"

# ---- dir -> btrfs, btrfs -> btrfs, btrfs -> dir ----
migrate c1 c2 '{"devices": {"root": {"type": "disk", "path": "/", "pool": "bt"}}}'
is "$MIG_B_STATUS" Success "dir->btrfs: the target's operation succeeds" "$MIG_B_ERR"
is "$(snaps b c2)" "$a_snaps" "dir->btrfs: snapshots in order"
same_tree "dir->btrfs: the instance's files" "$(vol "$A_DIR" default c1)" "$(vol "$B_DIR" bt c2)"
same_tree "dir->btrfs: snapshot snap0's files" "$(snapvol "$A_DIR" default c1 snap0)" "$(snapvol "$B_DIR" bt c2 snap0)"
ok "dir->btrfs: snapshots are btrfs subvolumes" btrfs subvolume show "$(snapvol "$B_DIR" bt c2 snap1)"
check "B: c2 starts on btrfs" on_b berth start c2
check "B: stop c2" on_b berth stop -f c2

check "A: init c3 on btrfs" on_a berth init busybox c3 -s bt -p default -p extra -c user.y=on-btrfs
rf3=$(vol "$A_DIR" bt c3)/rootfs
check "A: c3 state zero" sh -c "echo zero >$rf3/state.txt"
check "A: c3 snapshot snap0" on_a berth snapshot c3 snap0
check "A: c3 state one" sh -c "echo one >$rf3/state.txt && echo x >$rf3/later.txt"
check "A: c3 snapshot snap1" on_a berth snapshot c3 snap1
check "A: c3 state current" sh -c "echo current >$rf3/state.txt"
a3_snaps=$(snaps a c3)
migrate c3 c3 '{"devices": {"root": {"type": "disk", "path": "/", "pool": "bt"}}}'
is "$MIG_B_STATUS" Success "btrfs->btrfs: the target's operation succeeds" "$MIG_B_ERR"
like "$MIG_B_PROGRESS" '^c3: [0-9.]+[kMG]?B \([0-9.]+[kMG]?B/s\)$' "btrfs->btrfs: the target shows fs_progress"
like "$MIG_A_PROGRESS" '^c3: [0-9.]+[kMG]?B \([0-9.]+[kMG]?B/s\)$' "btrfs->btrfs: the source shows fs_progress"
is "$(snaps b c3)" "$a3_snaps" "btrfs->btrfs: snapshots in order"
same_tree "btrfs->btrfs: the instance's files" "$(vol "$A_DIR" bt c3)" "$(vol "$B_DIR" bt c3)"
same_tree "btrfs->btrfs: snapshot snap1's files" "$(snapvol "$A_DIR" bt c3 snap1)" "$(snapvol "$B_DIR" bt c3 snap1)"
# the type negotiated (each daemon logs it): btrfs streams between btrfs pools, rsync when
# either side is not btrfs
mig_type() { grep -o "Migration of \"$2\": [a-z /]*" "$1" | tail -n 1 | sed 's/.*": //'; }
is "$(mig_type "$B_LOG" c3)" "btrfs send/receive" "btrfs->btrfs: the target took the BTRFS type"
is "$(mig_type "$DAEMON_LOG" c3)" "btrfs send/receive" "btrfs->btrfs: the source sent btrfs streams"
is "$(mig_type "$B_LOG" c2)" "rsync" "dir->btrfs: rsync (the source is not btrfs)"
same_tree "btrfs->btrfs: snapshot snap0's files" "$(snapvol "$A_DIR" bt c3 snap0)" "$(snapvol "$B_DIR" bt c3 snap0)"
is "$(btrfs property get -ts "$(snapvol "$B_DIR" bt c3 snap0)" ro)" "ro=true" "btrfs->btrfs: a received snapshot is read-only"
is "$(btrfs property get -ts "$(vol "$B_DIR" bt c3)" ro)" "ro=false" "btrfs->btrfs: the received instance is writable"
is "$(ls -A "$B_DIR/storage-pools/bt/containers" "$A_DIR/storage-pools/bt/containers" | grep -c '^\.berth-import')" 0 \
	"btrfs->btrfs: no private receive or send directory left on either side"
check "B: c3 (received by btrfs streams) starts" on_b berth start c3
on_b berth exec c3 -- cat /state.txt >"$TEST_TMP/st" 2>&1
is "$(cat "$TEST_TMP/st")" current "B: c3 runs with the instance's content"
check "B: stop c3" on_b berth stop -f c3
migrate c3 c3o '{"devices": {"root": {"type": "disk", "path": "/", "pool": "bt"}}, "source": {"instance_only": true}}' '{"instance_only": true}'
is "$MIG_B_STATUS" Success "btrfs->btrfs instance only: the target's operation succeeds" "$MIG_B_ERR"
is "$(mig_type "$B_LOG" c3o)" "btrfs send/receive" "btrfs->btrfs instance only: BTRFS"
is "$(snaps b c3o)" "[]" "btrfs->btrfs instance only: no snapshot"
same_tree "btrfs->btrfs instance only: the instance's files" "$(vol "$A_DIR" bt c3)" "$(vol "$B_DIR" bt c3o)"
apia POST /1.0/instances/c3/snapshots/snap0 '{"migration": true}'
src_op=$(jget 'j["operation"]')
secrets=$(jget 'json.dumps(j["metadata"]["metadata"])')
apib POST /1.0/instances "{\"name\": \"c3s\", \"devices\": {\"root\": {\"type\": \"disk\", \"path\": \"/\", \"pool\": \"bt\"}}, \"source\": {\"type\": \"migration\", \"mode\": \"pull\", \"operation\": \"unix://$A_SOCK$src_op\", \"secrets\": $secrets}}"
BERTH_SOCKET=$B_SOCK wait_operation "$(jget 'j["operation"]')"
is "$(jget 'j["metadata"]["status"]')" Success "btrfs snapshot as the source: the target's operation succeeds" "$(jget 'j["metadata"]["err"]')"
is "$(cat "$(vol "$B_DIR" bt c3s)/rootfs/state.txt")" zero "btrfs snapshot as the source: its content, by btrfs stream"
is "$(btrfs property get -ts "$(vol "$B_DIR" bt c3s)" ro)" "ro=false" "btrfs snapshot as the source: a writable instance"
on_b berth delete c3s >/dev/null 2>&1

migrate c3 c4 '{"devices": {"root": {"type": "disk", "path": "/", "pool": "default"}}}'
is "$MIG_B_STATUS" Success "btrfs->dir: the target's operation succeeds" "$MIG_B_ERR"
is "$(snaps b c4)" "$a3_snaps" "btrfs->dir: snapshots in order"
same_tree "btrfs->dir: the instance's files" "$(vol "$A_DIR" bt c3)" "$(vol "$B_DIR" default c4)"
check "B: c4 starts on dir" on_b berth start c4
check "B: stop c4" on_b berth stop -f c4

# ---- instance only; a running source (stateless), live refused ----
migrate c1 c5 '{"source": {"instance_only": true}}' '{"instance_only": true}'
is "$MIG_B_STATUS" Success "instance only: the target's operation succeeds" "$MIG_B_ERR"
is "$(snaps b c5)" "[]" "instance only: no snapshot on the target"
same_tree "instance only: the instance's files" "$(vol "$A_DIR" default c1)" "$(vol "$B_DIR" default c5)"
ok "instance only: no snapshot volume on the target" test ! -e "$B_DIR/storage-pools/default/containers-snapshots/default_c5/snap0"

check "A: start c1" on_a berth start c1
migrate c1 c6 '{}' '{"live": true}'
is "$MIG_A_POST" 400 "live migration of a running container is refused (no CRIU)"
like "$MIG_B_ERR" "CRIU" "live migration: LXD's message"
migrate c1 c6
is "$MIG_B_STATUS" Success "running source, stateless: the target's operation succeeds" "$MIG_B_ERR"
is "$(snaps b c6)" "$a_snaps" "running source: snapshots in order"
is "$(cat "$(vol "$B_DIR" default c6)/rootfs/state.txt")" current "running source: the instance's content"
check "A: stop c1" on_a berth stop -f c1

# ---- refresh: only what changed moves; snapshots follow the source's ----
apib GET /1.0
is "$(jget '"container_incremental_copy" in j["metadata"]["api_extensions"]')" true \
	"GET /1.0 lists container_incremental_copy (what lxc copy --refresh asks for)"
bvol=$(vol "$B_DIR" default c1)/rootfs
ino() { stat -c %i "$1"; }
before_busybox=$(ino "$bvol/bin/busybox") before_later=$(ino "$bvol/later.txt")
check "A: c1 gets a 1 MiB file and a changed state" sh -c "head -c 1048576 /dev/urandom >$rf/changed.bin && echo refreshed >$rf/state.txt"
migrate c1 c1 '{"source": {"refresh": true}}'
is "$MIG_B_STATUS" Success "refresh: the target's operation succeeds" "$MIG_B_ERR"
diag "refresh after a 1 MiB change: the target's operation took $MIG_B_MS ms"
is "$(cmp "$rf/changed.bin" "$bvol/changed.bin" && echo same)" same "refresh: the new file arrived"
is "$(cat "$bvol/state.txt")" refreshed "refresh: the changed file arrived"
is "$(ino "$bvol/bin/busybox")" "$before_busybox" "refresh: an untouched file was not rewritten (same inode)"
is "$(ino "$bvol/later.txt")" "$before_later" "refresh: another untouched file was not rewritten"
is "$(snaps b c1)" "$a_snaps" "refresh: the snapshots are as they were"
check "A: c1 snapshot snap2" on_a berth snapshot c1 snap2
check "A: delete c1's snap0" on_a berth delete c1/snap0
migrate c1 c1 '{"source": {"refresh": true}}'
is "$MIG_B_STATUS" Success "refresh with snapshot changes: the target's operation succeeds" "$MIG_B_ERR"
apib GET /1.0/instances/c1/snapshots
is "$(jget '[s.rsplit("/", 1)[1] for s in j["metadata"]]')" '["snap1", "snap2"]' "refresh: snap0 went, snap2 came"
same_tree "refresh: snapshot snap2's files" "$(snapvol "$A_DIR" default c1 snap2)" "$(snapvol "$B_DIR" default c1 snap2)"
ok "refresh: snap0's volume went" test ! -e "$(snapvol "$B_DIR" default c1 snap0)"
same_tree "refresh: the instance's files" "$(vol "$A_DIR" default c1)" "$(vol "$B_DIR" default c1)"
check "B: start c1 after the refresh" on_b berth start c1
migrate c1 c1 '{"source": {"refresh": true}}'
is "$MIG_B_STATUS" refused "refresh of a running target is refused"
like "$MIG_B_ERR" 'running' "refresh of a running target: the error says why"
check "B: stop c1" on_b berth stop -f c1

# ---- refusals on the target: name taken, bad secret ----
migrate c1 c1
is "$MIG_B_STATUS" refused "an instance name taken on the target is refused"
like "$MIG_B_ERR" 'already exists' "name taken: the error says so"
migrate c1 c7 '{"source": {"secrets": {"control": "0000", "fs": "0000"}}}'
is "$MIG_B_STATUS" Failure "wrong secrets: the target's operation fails"
like "$MIG_B_ERR" 'instance "c7"' "wrong secrets: the error names the instance"
apib GET /1.0/instances/c7
is "$HTTP_STATUS" 404 "wrong secrets: no instance c7 on the target"
ok "wrong secrets: no volume left on the target" test ! -e "$(vol "$B_DIR" default c7)"

check_no_fd_leak "$a_fds0" "A: no fd left behind by its migrations"
DAEMON_PID=$B_PID check_no_fd_leak "$b_fds0" "B: no fd left behind by its migrations"

# ---- the source killed mid-transfer ----
check "A: init big" on_a berth init busybox big
check "A: a 400 MiB file in big" dd if=/dev/urandom of="$(vol "$A_DIR" default big)/rootfs/big.bin" bs=1M count=400 status=none
apia POST /1.0/instances/big '{"migration": true}'
src_op=$(jget 'j["operation"]')
secrets=$(jget 'json.dumps(j["metadata"]["metadata"])')
apib POST /1.0/instances "{\"name\": \"big\", \"source\": {\"type\": \"migration\", \"mode\": \"pull\", \"operation\": \"unix://$A_SOCK$src_op\", \"secrets\": $secrets}}"
tgt_op=$(jget 'j["operation"]')
bigvol=$(vol "$B_DIR" default big)
for i in $(seq 200); do
	[ -d "$bigvol/rootfs" ] && [ "$(du -sm "$bigvol" 2>/dev/null | cut -f1)" -gt 20 ] && break
	sleep 0.05
done
ok "kill: the transfer had started when A was killed" test -d "$bigvol/rootfs"
kill -KILL "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null
DAEMON_PID=
BERTH_SOCKET=$B_SOCK wait_operation "$tgt_op"
is "$(jget 'j["metadata"]["status"]')" Failure "kill: the target's operation fails"
like "$(jget 'j["metadata"]["err"]')" 'instance "big".*went away' "kill: the error names the instance and says the source went away"
apib GET /1.0/instances/big
is "$HTTP_STATUS" 404 "kill: no instance big on the target"
ok "kill: no volume left on the target" test ! -e "$bigvol"
apib GET "/1.0/storage-pools/default/volumes?recursion=1"
is "$(jget '[v["name"] for v in j["metadata"] if v["name"].startswith("big")]')" "[]" "kill: no volume row on the target"
apib GET /1.0/instances
is "$(jget 'len(j["metadata"])')" 7 "kill: B holds the instances it had, no more"
pgrep -f "rsync --server.*$B_DIR" >/dev/null && fail "kill: no rsync left on B" || pass "kill: no rsync left on B"
daemon_start
apia GET /1.0/instances/big
is "$HTTP_STATUS" 200 "kill: A's big is still there after A's restart"

# ---- the source killed mid-stream of a btrfs transfer ----
check "A: init bigb on btrfs" on_a berth init busybox bigb -s bt
check "A: a 300 MiB file in bigb" dd if=/dev/urandom of="$(vol "$A_DIR" bt bigb)/rootfs/big.bin" bs=1M count=300 status=none
apia POST /1.0/instances/bigb '{"migration": true}'
src_op=$(jget 'j["operation"]')
secrets=$(jget 'json.dumps(j["metadata"]["metadata"])')
apib POST /1.0/instances "{\"name\": \"bigb\", \"devices\": {\"root\": {\"type\": \"disk\", \"path\": \"/\", \"pool\": \"bt\"}}, \"source\": {\"type\": \"migration\", \"mode\": \"pull\", \"operation\": \"unix://$A_SOCK$src_op\", \"secrets\": $secrets}}"
tgt_op=$(jget 'j["operation"]')
for i in $(seq 200); do
	pgrep -f "btrfs send -q .*$A_DIR/storage-pools/bt/containers/\.berth-import-mig" >/dev/null && break
	sleep 0.05
done
ok "btrfs kill: A was sending the stream when killed" pgrep -f "btrfs send -q .*$A_DIR/storage-pools/bt"
kill -KILL "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null
DAEMON_PID=
BERTH_SOCKET=$B_SOCK wait_operation "$tgt_op"
is "$(jget 'j["metadata"]["status"]')" Failure "btrfs kill: the target's operation fails"
like "$(jget 'j["metadata"]["err"]')" 'instance "bigb".*went away' "btrfs kill: the error says the source went away"
apib GET /1.0/instances/bigb
is "$HTTP_STATUS" 404 "btrfs kill: no instance bigb on the target"
ok "btrfs kill: no volume left on the target" test ! -e "$(vol "$B_DIR" bt bigb)"
is "$(ls -A "$B_DIR/storage-pools/bt/containers" | grep -c '^\.berth-import')" 0 "btrfs kill: no private receive directory left on the target"
is "$(btrfs subvolume list -o "$B_DIR/storage-pools/bt/containers" 2>/dev/null | grep -c bigb)" 0 "btrfs kill: no subvolume of bigb on the target"
pgrep -f "btrfs receive.*$B_DIR" >/dev/null && fail "btrfs kill: no btrfs receive left on B" || pass "btrfs kill: no btrfs receive left on B"
daemon_start
pgrep -f "btrfs send -q .*$A_DIR" >/dev/null && fail "btrfs kill: no btrfs send left of A" || pass "btrfs kill: no btrfs send left of A"
is "$(ls -A "$A_DIR/storage-pools/bt/containers" | grep -c '^\.berth-import')" 0 "btrfs kill: A's restart removed the snapshot it was sending"

# a btrfs stream is spooled whole before its receive: a spool (B's tmp/) too small for it
# fails the transfer before the disk fills, naming the cause, and leaves nothing
check "B: a 64 MiB spool" mount -t tmpfs -o size=64M berth-test-spool "$B_DIR/tmp"
migrate bigb bigb '{"devices": {"root": {"type": "disk", "path": "/", "pool": "bt"}}}'
umount "$B_DIR/tmp"
is "$MIG_B_STATUS" Failure "spool full: the target's operation fails"
like "$MIG_B_ERR" 'instance "bigb".*spool is full' "spool full: the error says the spool is full"
apib GET /1.0/instances/bigb
is "$HTTP_STATUS" 404 "spool full: no instance bigb on the target"
ok "spool full: no volume left on the target" test ! -e "$(vol "$B_DIR" bt bigb)"
is "$(ls -A "$B_DIR/storage-pools/bt/containers" | grep -c '^\.berth-import')" 0 "spool full: no private receive directory left"

# ---- a snapshot as the source: POST /1.0/instances/c1/snapshots/snap1 ----
apia POST /1.0/instances/c1/snapshots/snap1 '{"migration": true}'
is "$HTTP_STATUS" 202 "snapshot source: the operation"
src_op=$(jget 'j["operation"]')
secrets=$(jget 'json.dumps(j["metadata"]["metadata"])')
apib POST /1.0/instances "{\"name\": \"fromsnap\", \"source\": {\"type\": \"migration\", \"mode\": \"pull\", \"operation\": \"unix://$A_SOCK$src_op\", \"secrets\": $secrets}}"
BERTH_SOCKET=$B_SOCK wait_operation "$(jget 'j["operation"]')"
is "$(jget 'j["metadata"]["status"]')" Success "snapshot source: the target's operation succeeds" "$(jget 'j["metadata"]["err"]')"
is "$(snaps b fromsnap)" "[]" "snapshot source: the copy has no snapshots"
same_tree "snapshot source: the copy holds the snapshot's files" "$(snapvol "$A_DIR" default c1 snap1)" "$(vol "$B_DIR" default fromsnap)"
is "$(cat "$(vol "$B_DIR" default fromsnap)/rootfs/state.txt")" one "snapshot source: the snapshot's content, not the instance's"
apia POST /1.0/instances/c1/snapshots/nosuch '{"migration": true}'
is "$HTTP_STATUS" 404 "snapshot source: an unknown snapshot is 404"

# ---- LXD 5.0.2 (its own daemon and state dir in the test's namespaces) as a peer: a berth
# target pulls from LXD's source operation through LXD's unix socket; a berth source
# pushes to LXD's target operation (push mode) the same way ----
if ! command -v lxd >/dev/null || ! command -v lxc >/dev/null; then
	skip "LXD -> berth" "the lxd daemon or lxc client is not installed (apt-get install lxd)"
else
	LXD_HOME=$TEST_TMP/lxd
	LXD_PID=
	lxl() { LXD_DIR=$LXD_HOME LXD_CONF=$TEST_TMP/lxd-conf lxc "$@"; }
	lxd_stop()
	{
		[ -n "$LXD_PID" ] || return 0
		LXD_DIR=$LXD_HOME timeout 60 lxd shutdown >/dev/null 2>&1
		kill "$LXD_PID" 2>/dev/null
		wait "$LXD_PID" 2>/dev/null
		LXD_PID=
	}
	trap 'lxd_stop; mig_cleanup' EXIT
	mkdir -p "$LXD_HOME" "$TEST_TMP/lxd-conf"
	chmod 0711 "$TEST_TMP"
	LXD_DIR=$LXD_HOME lxd --group root --logfile "$TEST_TMP/lxd.log" >/dev/null 2>&1 &
	LXD_PID=$!
	if LXD_DIR=$LXD_HOME timeout 90 lxd waitready --timeout 90; then
		pass "LXD $(lxd --version) of the test's own starts"
		check "LXD: a dir pool" lxl storage create default dir
		check "LXD: the default profile's root disk" lxl profile device add default root disk path=/ pool=default
		check "LXD: import the busybox image" lxl image import "${IMAGE[busybox]}" --alias busybox
		check "LXD: init l1" lxl init busybox l1 -c user.from=lxd
		lrf=$LXD_HOME/storage-pools/default/containers/l1/rootfs
		check "LXD: l1 state zero" sh -c "echo zero >$lrf/state.txt"
		check "LXD: snapshot l1 s0" lxl snapshot l1 s0
		check "LXD: l1 state one" sh -c "echo one >$lrf/state.txt"
		$PY "$RAWHTTP" req "$LXD_HOME/unix.socket" POST /1.0/instances/l1 -d '{"migration": true}' >"$TEST_TMP/resp" 2>&1
		_read_response
		is "$HTTP_STATUS" 202 "LXD: the source operation"
		lop=$(jget 'j["operation"]')
		lsec=$(jget 'json.dumps(j["metadata"]["metadata"])')
		apib POST /1.0/instances "{\"name\": \"l1\", \"config\": {\"user.from\": \"lxd\"}, \"source\": {\"type\": \"migration\", \"mode\": \"pull\", \"operation\": \"unix://$LXD_HOME/unix.socket$lop\", \"secrets\": $lsec}}"
		BERTH_SOCKET=$B_SOCK wait_operation "$(jget 'j["operation"]')"
		is "$(jget 'j["metadata"]["status"]')" Success "LXD -> berth: the target's operation succeeds" "$(jget 'j["metadata"]["err"]')"
		$PY "$RAWHTTP" req "$LXD_HOME/unix.socket" GET "$lop/wait?timeout=30" >"$TEST_TMP/resp" 2>&1
		_read_response
		is "$(jget 'j["metadata"]["status"]')" Success "LXD -> berth: LXD's source operation succeeds" "$(jget 'j["metadata"]["err"]')"
		apib GET /1.0/instances/l1/snapshots
		is "$(jget '[s.rsplit("/", 1)[1] for s in j["metadata"]]')" '["s0"]' "LXD -> berth: the snapshot arrived"
		same_tree "LXD -> berth: the instance's files" "$lrf" "$(vol "$B_DIR" default l1)/rootfs"
		is "$(cat "$(snapvol "$B_DIR" default l1 s0)/rootfs/state.txt")" zero "LXD -> berth: the snapshot's content"
		check "LXD -> berth: l1 starts on berth" on_b berth start l1
		on_b berth exec l1 -- cat /state.txt >"$TEST_TMP/st" 2>&1
		is "$(cat "$TEST_TMP/st")" one "LXD -> berth: l1 runs with its content"
		check "B: stop l1" on_b berth stop -f l1

		# berth -> LXD: push mode (LXD's target operation holds the secrets, berth's
		# source connects to it through LXD's unix socket)
		check "A: init p1 (default profile only)" on_a berth init busybox p1 -c user.to=lxd
		prf=$(vol "$A_DIR" default p1)/rootfs
		check "A: p1 state zero" sh -c "echo zero >$prf/state.txt && chown 1000:1000 $prf/state.txt"
		check "A: snapshot p1 s0" on_a berth snapshot p1 s0
		check "A: p1 state one" sh -c "echo one >$prf/state.txt"
		$PY "$RAWHTTP" req "$LXD_HOME/unix.socket" POST /1.0/instances -d '{"name": "p1", "architecture": "x86_64", "profiles": ["default"], "config": {"user.to": "lxd"}, "source": {"type": "migration", "mode": "push"}}' >"$TEST_TMP/resp" 2>&1
		_read_response
		is "$HTTP_STATUS" 202 "LXD: the push target's operation" "$HTTP_BODY"
		lop=$(jget 'j["operation"]')
		lsec=$(jget 'json.dumps(j["metadata"]["metadata"])')
		apia POST /1.0/instances/p1 "{\"migration\": true, \"target\": {\"operation\": \"unix://$LXD_HOME/unix.socket$lop\", \"websockets\": $lsec}}"
		is "$HTTP_STATUS" 202 "berth -> LXD: berth's push source operation"
		BERTH_SOCKET=$A_SOCK wait_operation "$(jget 'j["operation"]')"
		is "$(jget 'j["metadata"]["status"]')" Success "berth -> LXD: berth's source operation succeeds" "$(jget 'j["metadata"]["err"]')"
		$PY "$RAWHTTP" req "$LXD_HOME/unix.socket" GET "$lop/wait?timeout=30" >"$TEST_TMP/resp" 2>&1
		_read_response
		is "$(jget 'j["metadata"]["status"]')" Success "berth -> LXD: LXD's target operation succeeds" "$(jget 'j["metadata"]["err"]')"
		$PY "$RAWHTTP" req "$LXD_HOME/unix.socket" GET /1.0/instances/p1/snapshots >"$TEST_TMP/resp" 2>&1
		_read_response
		is "$(jget '[s.rsplit("/", 1)[1] for s in j["metadata"]]')" '["s0"]' "berth -> LXD: LXD lists the snapshot"
		check "berth -> LXD: p1 starts on LXD" timeout 120 env LXD_DIR="$LXD_HOME" LXD_CONF="$TEST_TMP/lxd-conf" lxc start p1
		run timeout 30 env LXD_DIR="$LXD_HOME" LXD_CONF="$TEST_TMP/lxd-conf" lxc exec p1 -- sh -c 'cat /state.txt; stat -c %u:%g /state.txt'
		is "$OUT" "one
1000:1000" "berth -> LXD: p1 runs on LXD with its content and owner" "$ERR"
		check "LXD: stop p1" timeout 60 env LXD_DIR="$LXD_HOME" LXD_CONF="$TEST_TMP/lxd-conf" lxc stop -f p1

		# btrfs pools on both sides: LXD and berth negotiate the BTRFS type, both ways
		check "LXD: a btrfs pool on a loop file" lxl storage create lbt btrfs size=1GiB
		check "LXD: init l2 on btrfs" lxl init busybox l2 -s lbt
		lrf2=$LXD_HOME/storage-pools/lbt/containers/l2/rootfs
		check "LXD: l2 state zero" sh -c "echo zero >$lrf2/state.txt"
		check "LXD: snapshot l2 s0" lxl snapshot l2 s0
		check "LXD: l2 state one" sh -c "echo one >$lrf2/state.txt"
		check "LXD: snapshot l2 s1" lxl snapshot l2 s1
		check "LXD: l2 state two" sh -c "echo two >$lrf2/state.txt"
		$PY "$RAWHTTP" req "$LXD_HOME/unix.socket" POST /1.0/instances/l2 -d '{"migration": true}' >"$TEST_TMP/resp" 2>&1
		_read_response
		lop=$(jget 'j["operation"]')
		lsec=$(jget 'json.dumps(j["metadata"]["metadata"])')
		apib POST /1.0/instances "{\"name\": \"l2\", \"devices\": {\"root\": {\"type\": \"disk\", \"path\": \"/\", \"pool\": \"bt\"}}, \"source\": {\"type\": \"migration\", \"mode\": \"pull\", \"operation\": \"unix://$LXD_HOME/unix.socket$lop\", \"secrets\": $lsec}}"
		BERTH_SOCKET=$B_SOCK wait_operation "$(jget 'j["operation"]')"
		is "$(jget 'j["metadata"]["status"]')" Success "LXD btrfs -> berth btrfs: the target's operation succeeds" "$(jget 'j["metadata"]["err"]')"
		is "$(mig_type "$B_LOG" l2)" "btrfs send/receive" "LXD btrfs -> berth btrfs: the BTRFS type negotiated"
		apib GET /1.0/instances/l2/snapshots
		is "$(jget '[s.rsplit("/", 1)[1] for s in j["metadata"]]')" '["s0", "s1"]' "LXD btrfs -> berth btrfs: the snapshots arrived in order"
		is "$(cat "$(snapvol "$B_DIR" bt l2 s0)/rootfs/state.txt") $(cat "$(snapvol "$B_DIR" bt l2 s1)/rootfs/state.txt")" "zero one" \
			"LXD btrfs -> berth btrfs: each snapshot's content"
		same_tree "LXD btrfs -> berth btrfs: the instance's files" "$lrf2" "$(vol "$B_DIR" bt l2)/rootfs"
		check "LXD btrfs -> berth btrfs: l2 starts on berth" on_b berth start l2
		on_b berth exec l2 -- cat /state.txt >"$TEST_TMP/st" 2>&1
		is "$(cat "$TEST_TMP/st")" two "LXD btrfs -> berth btrfs: l2 runs with its content"
		check "B: stop l2" on_b berth stop -f l2

		check "A: init p2 on btrfs" on_a berth init busybox p2 -s bt
		prf2=$(vol "$A_DIR" bt p2)/rootfs
		check "A: p2 state zero" sh -c "echo zero >$prf2/state.txt && chown 1000:1000 $prf2/state.txt"
		check "A: snapshot p2 s0" on_a berth snapshot p2 s0
		check "A: p2 state one" sh -c "echo one >$prf2/state.txt"
		$PY "$RAWHTTP" req "$LXD_HOME/unix.socket" POST /1.0/instances -d '{"name": "p2", "architecture": "x86_64", "profiles": ["default"], "devices": {"root": {"type": "disk", "path": "/", "pool": "lbt"}}, "source": {"type": "migration", "mode": "push"}}' >"$TEST_TMP/resp" 2>&1
		_read_response
		lop=$(jget 'j["operation"]')
		lsec=$(jget 'json.dumps(j["metadata"]["metadata"])')
		apia POST /1.0/instances/p2 "{\"migration\": true, \"target\": {\"operation\": \"unix://$LXD_HOME/unix.socket$lop\", \"websockets\": $lsec}}"
		BERTH_SOCKET=$A_SOCK wait_operation "$(jget 'j["operation"]')"
		is "$(jget 'j["metadata"]["status"]')" Success "berth btrfs -> LXD btrfs: berth's source operation succeeds" "$(jget 'j["metadata"]["err"]')"
		$PY "$RAWHTTP" req "$LXD_HOME/unix.socket" GET "$lop/wait?timeout=30" >"$TEST_TMP/resp" 2>&1
		_read_response
		is "$(jget 'j["metadata"]["status"]')" Success "berth btrfs -> LXD btrfs: LXD's target operation succeeds" "$(jget 'j["metadata"]["err"]')"
		is "$(mig_type "$DAEMON_LOG" p2)" "btrfs send/receive" "berth btrfs -> LXD btrfs: LXD took the BTRFS type"
		is "$(cat "$LXD_HOME/storage-pools/lbt/containers-snapshots/p2/s0/rootfs/state.txt")" zero \
			"berth btrfs -> LXD btrfs: the snapshot's content on LXD"
		check "berth btrfs -> LXD btrfs: p2 starts on LXD" timeout 120 env LXD_DIR="$LXD_HOME" LXD_CONF="$TEST_TMP/lxd-conf" lxc start p2
		run timeout 30 env LXD_DIR="$LXD_HOME" LXD_CONF="$TEST_TMP/lxd-conf" lxc exec p2 -- sh -c 'cat /state.txt; stat -c %u:%g /state.txt'
		is "$OUT" "one
1000:1000" "berth btrfs -> LXD btrfs: p2 runs on LXD with its content and owner" "$ERR"
		check "LXD: stop p2" timeout 60 env LXD_DIR="$LXD_HOME" LXD_CONF="$TEST_TMP/lxd-conf" lxc stop -f p2
	else
		fail "LXD starts" "$(tail -n 20 "$TEST_TMP/lxd.log")"
	fi
	lxd_stop
fi
