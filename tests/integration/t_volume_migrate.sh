#!/bin/bash
# tests/integration/t_volume_migrate.sh: custom storage volumes between two berthds (issue 16,
# Deliver 4: "custom volume copy/move between hosts"), LXD's volume migration: the source
# operation of POST /1.0/storage-pools/P/volumes/custom/V {"migration": true}, pulled by
# the target's POST /1.0/storage-pools/P/volumes/custom {"source": {"type": "migration"}}.
# Daemons A and B in the test's namespaces, each on HTTPS at 127.0.0.1 (ports of their own),
# remotes of both the berth CLI and the stock lxc client, and a btrfs pool on each.
#
# A volume on btrfs with two snapshots (a file differing in each, one owned by 1000:1000, mode
# 0640, with a user xattr), a size and a description goes btrfs->dir with
# `berth storage volume copy a:bt/v1 b:default/v1`, then dir->btrfs with the stock
# `lxc storage volume copy b:default/v1 a:bt/v2`: the snapshots in order with their content,
# every file's owner, mode and xattrs the same, config and description kept, the source
# untouched. --volume-only leaves the snapshots out; --refresh (berth's, then lxc's) after
# changes moves only what changed (an untouched file keeps its inode) and follows the
# source's snapshots (one deleted, one added); `berth storage volume move` and
# `lxc storage volume move` across remotes: the copy on B, the source gone from A. Refused:
# a taken name (409), push mode (400), a unix:// source over HTTPS (403). The
# source daemon SIGKILLed mid-transfer: the target's operation fails naming the volume; no
# volume, no row, no rsync left on B. Full run (BERTH_TEST_FULL=1): LXD 5.0.2 on HTTPS as a
# third remote, lxc storage volume copy lxd:default/lv b:default/lv with a snapshot.
. "$(dirname "$0")/lib.sh"
command -v lxc >/dev/null || skip_all "lxc not installed (apt-get install lxd-client)"
: "${BERTH_TLS_HELPER:=$BERTH_BUILDDIR/berth-tls}"
if [ "$(id -u)" = 0 ]; then
	[ -x "$BERTH_TLS_HELPER" ] || skip_all "no berth-tls at $BERTH_TLS_HELPER (build it first)"
	command -v rsync >/dev/null || skip_all "rsync not found (apt-get install rsync)"
	command -v mkfs.btrfs >/dev/null || skip_all "mkfs.btrfs not found (apt-get install btrfs-progs)"
	command -v setfattr >/dev/null || skip_all "setfattr not found (apt-get install attr)"
	grep -qw btrfs /proc/filesystems || modprobe btrfs 2>/dev/null
	grep -qw btrfs /proc/filesystems || skip_all "kernel without btrfs"
fi
BERTHD_ENV=(BERTH_TLS_HELPER="$BERTH_TLS_HELPER")
berth_test_init "$@"
export PATH=$BERTH_BUILDDIR:$PATH

A_DIR=$BERTH_DIR
A_SOCK=$BERTH_SOCKET
B_DIR=$TEST_TMP/b
B_SOCK=$B_DIR/unix.socket
B_LOG=$TEST_TMP/berthd-b.log
B_PID=
A_ADDR=127.0.0.1:8443
B_ADDR=127.0.0.1:8444
mkdir -p "$B_DIR"
export LXD_CONF=$TEST_TMP/lxc-conf BERTH_CONF=$TEST_TMP/berth-conf
mkdir -p "$LXD_CONF"
unset LXD_DIR
run_lxc() { run timeout 60 lxc "$@"; }
run_berth() { run timeout 60 berth "$@"; }

BERTHD_B_ENV=(BERTH_TLS_HELPER="$BERTH_TLS_HELPER")
vm_cleanup()
{
	local st=$?
	[ "$_tap_failed" -gt 0 ] && [ -f "$B_LOG" ] && diag "---- berthd B log ----" && tail -n 60 "$B_LOG" | sed 's/^/# /'
	daemon_b_stop
	daemon_stop
	grep -F " $TEST_TMP/" /proc/self/mountinfo | awk '{print $5}' | sort -r |
		while read -r m; do umount -l "$m"; done
	losetup -a | grep -F "$TEST_TMP/" | cut -d: -f1 | while read -r dev; do losetup -d "$dev"; done
	(exit $st)
	_berth_test_exit
}
trap vm_cleanup EXIT
daemon_b_start

on_a() { BERTH_SOCKET=$A_SOCK BERTH_DIR=$A_DIR "$@"; }
on_b() { BERTH_SOCKET=$B_SOCK BERTH_DIR=$B_DIR "$@"; }
apia() { BERTH_SOCKET=$A_SOCK api "$@"; }
apib() { BERTH_SOCKET=$B_SOCK api "$@"; }
cvol() { echo "$1/storage-pools/$2/custom/default_$3"; }
csnap() { echo "$1/storage-pools/$2/custom-snapshots/default_$3/$4"; }
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
# vinfo SIDE POOL NAME: description, config and the snapshots' names, in order.
vinfo()
{
	"api$1" GET "/1.0/storage-pools/$2/volumes/custom/$3"
	local v=$HTTP_BODY
	"api$1" GET "/1.0/storage-pools/$2/volumes/custom/$3/snapshots"
	$PY -c 'import json, sys
v = json.loads(sys.argv[1])["metadata"]; s = json.loads(sys.argv[2])["metadata"]
print(json.dumps([v["description"], v["config"], v["content_type"], [x.rsplit("/", 1)[1] for x in s]], sort_keys=True))' "$v" "$HTTP_BODY"
}
# rows SIDE POOL NAME: the volume's rows (itself and its snapshots) on that side's pool.
rows()
{
	"api$1" GET "/1.0/storage-pools/$2/volumes/custom?recursion=1"
	jget "[v['name'] for v in j['metadata'] if v['name'] == '$3' or v['name'].startswith('$3/')]"
}

# ---- both daemons on HTTPS, remotes of lxc and of berth; a btrfs pool on each ----
apia PATCH /1.0 '{"config":{"core.https_address":"'$A_ADDR'","core.trust_password":"pa"}}'
is "$HTTP_STATUS" 200 "A: core.https_address=$A_ADDR"
apib PATCH /1.0 '{"config":{"core.https_address":"'$B_ADDR'","core.trust_password":"pb"}}'
is "$HTTP_STATUS" 200 "B: core.https_address=$B_ADDR"
run_lxc remote add a "https://$A_ADDR" --accept-certificate --password pa
rc_ok "lxc remote add a"
run_lxc remote add b "https://$B_ADDR" --accept-certificate --password pb
rc_ok "lxc remote add b"
run_berth remote add a "https://$A_ADDR" --accept-certificate --password pa
rc_ok "berth remote add a"
run_berth remote add b "https://$B_ADDR" --accept-certificate --password pb
rc_ok "berth remote add b"
for side in a b; do
	check "$side: a btrfs pool on a loop file" "on_$side" berth storage create bt btrfs size=1GiB
done

# ---- v1 on A's btrfs pool: two snapshots, a size, a description ----
check "A: volume v1 on btrfs, size=256MiB" on_a berth storage volume create bt v1 size=256MiB
apia PATCH /1.0/storage-pools/bt/volumes/custom/v1 '{"description": "data of v1"}'
is "$HTTP_STATUS" 200 "A: v1 gets a description"
v1=$(cvol "$A_DIR" bt v1)
state()
{
	printf '%s\n' "$1" >"$v1/state.txt" && chown 1000:1000 "$v1/state.txt" && chmod 0640 "$v1/state.txt" &&
		setfattr -n user.st -v "$1" "$v1/state.txt"
}
check "A: v1 state zero, a tree" sh -c "$(declare -f state); v1=$v1; state zero && mkdir -p $v1/d/e && echo deep >$v1/d/e/f && ln -s d/e/f $v1/link && chown -R 1001:1002 $v1/d"
check "A: snapshot s0" on_a berth storage volume snapshot bt v1 s0
check "A: v1 state one" sh -c "$(declare -f state); v1=$v1; state one && echo x >$v1/later.txt"
check "A: snapshot s1" on_a berth storage volume snapshot bt v1 s1
check "A: v1 state current" sh -c "$(declare -f state); v1=$v1; state current"
a_info=$(vinfo a bt v1)
is "$a_info" '["data of v1", {"size": "256MiB"}, "filesystem", ["s0", "s1"]]' "A: v1 as expected"
# on a dir pool, the size (a btrfs quota) is dropped, as a local copy drops it
dir_info='["data of v1", {}, "filesystem", ["s0", "s1"]]'

# ---- btrfs -> dir: berth storage volume copy a:bt/v1 b:default/v1 ----
t0=$(date +%s%N)
run_berth storage volume copy a:bt/v1 b:default/v1
rc_ok "berth storage volume copy a:bt/v1 b:default/v1 (btrfs->dir over HTTPS)"
diag "volume copy with two snapshots, btrfs->dir: $((($(date +%s%N) - t0) / 1000000)) ms"
is "$(vinfo b default v1)" "$dir_info" "btrfs->dir: description, snapshots in order"
same_tree "btrfs->dir: the volume's files, owners, modes, xattrs" "$v1" "$(cvol "$B_DIR" default v1)"
same_tree "btrfs->dir: snapshot s0's files" "$(csnap "$A_DIR" bt v1 s0)" "$(csnap "$B_DIR" default v1 s0)"
same_tree "btrfs->dir: snapshot s1's files" "$(csnap "$A_DIR" bt v1 s1)" "$(csnap "$B_DIR" default v1 s1)"
is "$(cat "$(csnap "$B_DIR" default v1 s0)/state.txt" 2>&1)" zero "btrfs->dir: s0 holds its own content"
is "$(vinfo a bt v1)" "$a_info" "btrfs->dir: the source is untouched"
apia GET /1.0/operations
is "$(jget 'len((j["metadata"] or {}).get("running", []))')" 0 "A: no source operation left running"

# ---- dir -> btrfs: the stock lxc client ----
run_lxc storage volume copy b:default/v1 a:bt/v2
rc_ok "lxc storage volume copy b:default/v1 a:bt/v2 (dir->btrfs)"
is "$(vinfo a bt v2)" "$dir_info" "dir->btrfs: description, snapshots in order"
same_tree "dir->btrfs: the volume's files" "$v1" "$(cvol "$A_DIR" bt v2)"
same_tree "dir->btrfs: snapshot s0's files" "$(csnap "$A_DIR" bt v1 s0)" "$(csnap "$A_DIR" bt v2 s0)"
same_tree "dir->btrfs: snapshot s1's files" "$(csnap "$A_DIR" bt v1 s1)" "$(csnap "$A_DIR" bt v2 s1)"
ok "dir->btrfs: the snapshots are btrfs subvolumes" btrfs subvolume show "$(csnap "$A_DIR" bt v2 s1)"

# ---- btrfs -> btrfs keeps the size; --volume-only ----
run_berth storage volume copy a:bt/v1 b:bt/v5
rc_ok "berth storage volume copy a:bt/v1 b:bt/v5 (btrfs->btrfs)"
is "$(vinfo b bt v5)" "$a_info" "btrfs->btrfs: config (the size), description, snapshots kept"
run_berth storage volume copy a:bt/v1 b:default/v3 --volume-only
rc_ok "berth storage volume copy --volume-only"
is "$(vinfo b default v3)" '["data of v1", {}, "filesystem", []]' "volume only: no snapshot"
ok "volume only: no snapshot directory" test ! -e "$(csnap "$B_DIR" default v3 s0)"
is "$(cat "$(cvol "$B_DIR" default v3)/state.txt" 2>&1)" current "volume only: the current content"

# ---- move: berth, then lxc ----
run_berth storage volume move a:bt/v2 b:default/v2
rc_ok "berth storage volume move a:bt/v2 b:default/v2"
is "$(vinfo b default v2)" "$dir_info" "berth move: on B with its snapshots"
same_tree "berth move: the files" "$v1" "$(cvol "$B_DIR" default v2)"
is "$(rows a bt v2)" "[]" "berth move: no row of v2 left on A"
ok "berth move: nothing of v2 left on A's disk" test ! -e "$(cvol "$A_DIR" bt v2)"
run_lxc storage volume move b:default/v2 a:default/v4
rc_ok "lxc storage volume move b:default/v2 a:default/v4"
is "$(vinfo a default v4)" "$dir_info" "lxc move: on A with its snapshots"
is "$(rows b default v2)" "[]" "lxc move: no row of v2 left on B"

# ---- --refresh after changes on the source: a file changed, one added, one deleted,
# snapshot s0 deleted and s2 taken ----
bv1=$(cvol "$B_DIR" default v1)
ino0=$(stat -c %i "$bv1/d/e/f")
check "A: v1 changes" sh -c "echo refreshed >$v1/state.txt && echo new >$v1/new.txt && rm $v1/later.txt"
apia DELETE /1.0/storage-pools/bt/volumes/custom/v1/snapshots/s0
BERTH_SOCKET=$A_SOCK wait_operation "$(jget 'j["operation"]')"
is "$(jget 'j["metadata"]["status"]')" Success "A: snapshot s0 deleted"
check "A: snapshot s2" on_a berth storage volume snapshot bt v1 s2
t0=$(date +%s%N)
run_berth storage volume copy a:bt/v1 b:default/v1 --refresh
rc_ok "berth storage volume copy a:bt/v1 b:default/v1 --refresh"
diag "volume copy --refresh after a small change: $((($(date +%s%N) - t0) / 1000000)) ms"
is "$(vinfo b default v1)" '["data of v1", {}, "filesystem", ["s1", "s2"]]' "refresh: s0 gone, s2 added, in order"
same_tree "refresh: the volume's files follow the source" "$v1" "$bv1"
same_tree "refresh: snapshot s2's files" "$(csnap "$A_DIR" bt v1 s2)" "$(csnap "$B_DIR" default v1 s2)"
is "$(cat "$(csnap "$B_DIR" default v1 s1)/state.txt" 2>&1)" one "refresh: s1 is left as it was"
ok "refresh: no s0 directory left" test ! -e "$(csnap "$B_DIR" default v1 s0)"
is "$(stat -c %i "$bv1/d/e/f")" "$ino0" "refresh: an unchanged file is not rewritten (same inode)"
check "A: v1 changes again" sh -c "echo again >$v1/state.txt"
run_lxc storage volume copy a:bt/v1 b:default/v1 --refresh
rc_ok "lxc storage volume copy a:bt/v1 b:default/v1 --refresh (the stock client)"
is "$(cat "$bv1/state.txt" 2>&1)" again "lxc refresh: the change arrived"
is "$(vinfo b default v1)" '["data of v1", {}, "filesystem", ["s1", "s2"]]' "lxc refresh: the snapshots as they were"

# ---- refusals ----
apia POST /1.0/storage-pools/bt/volumes/custom/v1 '{"name": "v1", "migration": true}'
is "$HTTP_STATUS" 202 "A: a source operation for v1"
src_op=$(jget 'j["operation"]')
secrets=$(jget 'json.dumps(j["metadata"]["metadata"])')
src="\"operation\": \"unix://$A_SOCK$src_op\", \"secrets\": $secrets"
apib POST /1.0/storage-pools/default/volumes/custom "{\"name\": \"v1\", \"source\": {\"type\": \"migration\", \"mode\": \"pull\", $src}}"
is "$HTTP_STATUS:$(jget 'j["error_code"]')" 409:409 "a taken name is refused (409)"
apib POST /1.0/storage-pools/default/volumes/custom "{\"name\": \"p\", \"source\": {\"type\": \"migration\", \"mode\": \"push\", $src}}"
is "$HTTP_STATUS" 400 "push mode on the target is refused (400)"
apib POST /1.0/storage-pools/default/volumes/custom "{\"name\": \"p\", \"content_type\": \"block\", \"source\": {\"type\": \"migration\", \"mode\": \"pull\", $src}}"
like "$HTTP_STATUS $(jget 'j["error"]')" '^400 .*block' "a block volume is refused (400)"
apia POST /1.0/storage-pools/default/volumes/custom/nosuch '{"name": "nosuch", "migration": true}'
is "$HTTP_STATUS" 404 "an unknown source volume: 404"
out=$(curl -sk --cert "$LXD_CONF/client.crt" --key "$LXD_CONF/client.key" -X POST \
	-d "{\"name\": \"u\", \"source\": {\"type\": \"migration\", \"mode\": \"pull\", $src}}" \
	"https://$B_ADDR/1.0/storage-pools/default/volumes/custom")
is "$(jget '[j["error_code"], "local unix socket" in j["error"]]' "$out")" '[403, true]' \
	"over HTTPS, a source on a local unix socket is refused (403)"
apia DELETE "$src_op"
apib GET /1.0/storage-pools/default/volumes/custom
is "$(jget '[v for v in j["metadata"] if v.rsplit("/", 1)[1] in ("p", "u")]')" "[]" "refused: no volume made"

# ---- the source killed mid-transfer ----
check "A: volume big" on_a berth storage volume create default big
check "A: a 300 MiB file in big" dd if=/dev/urandom of="$(cvol "$A_DIR" default big)/big.bin" bs=1M count=300 status=none
check "A: snapshot big/s0" on_a berth storage volume snapshot default big s0
apia POST /1.0/storage-pools/default/volumes/custom/big '{"name": "big", "migration": true}'
src_op=$(jget 'j["operation"]')
secrets=$(jget 'json.dumps(j["metadata"]["metadata"])')
apib POST /1.0/storage-pools/default/volumes/custom "{\"name\": \"big\", \"source\": {\"type\": \"migration\", \"mode\": \"pull\", \"operation\": \"unix://$A_SOCK$src_op\", \"secrets\": $secrets}}"
is "$HTTP_STATUS" 202 "kill: the target's operation starts"
tgt_op=$(jget 'j["operation"]')
bigvol=$(cvol "$B_DIR" default big)
for i in $(seq 200); do
	[ -d "$bigvol" ] && [ "$(du -sm "$bigvol" 2>/dev/null | cut -f1)" -gt 20 ] && break
	sleep 0.05
done
ok "kill: the transfer had started when A was killed" test -d "$bigvol"
kill -KILL "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null
DAEMON_PID=
BERTH_SOCKET=$B_SOCK wait_operation "$tgt_op"
is "$(jget 'j["metadata"]["status"]')" Failure "kill: the target's operation fails"
like "$(jget 'j["metadata"]["err"]')" 'storage volume "big".*went away' "kill: the error names the volume and says the source went away"
is "$(rows b default big)" "[]" "kill: no volume row on the target"
ok "kill: no volume left on the target" test ! -e "$bigvol"
ok "kill: no snapshot left on the target" test ! -e "$(csnap "$B_DIR" default big s0)"
pgrep -f "rsync --server.*$B_DIR" >/dev/null && fail "kill: no rsync left on B" || pass "kill: no rsync left on B"
daemon_start
is "$(rows a default big)" '["big", "big/s0"]' "kill: A's big is still there after A's restart"

# ---- full run: Debian's LXD 5.0.2 (a daemon of the test's own) on HTTPS as a third
# remote, one direction: lxc storage volume copy lxd:default/lv b:default/lv (berth pulls
# a volume with a snapshot from LXD) ----
if [ "${BERTH_TEST_FULL:-}" != 1 ] || ! command -v lxd >/dev/null; then
	skip "LXD -> berth volume copy over HTTPS" "full run only (BERTH_TEST_FULL=1, lxd installed)"
else
	LXD_HOME=$TEST_TMP/lxd
	LXD_PID=
	lxl() { LXD_DIR=$LXD_HOME lxc "$@"; }
	lxd_stop()
	{
		[ -n "$LXD_PID" ] || return 0
		LXD_DIR=$LXD_HOME timeout 60 lxd shutdown >/dev/null 2>&1
		kill "$LXD_PID" 2>/dev/null
		wait "$LXD_PID" 2>/dev/null
		LXD_PID=
	}
	trap 'lxd_stop; vm_cleanup' EXIT
	mkdir -p "$LXD_HOME"
	chmod 0711 "$TEST_TMP"
	LXD_DIR=$LXD_HOME lxd --group root --logfile "$TEST_TMP/lxd.log" >/dev/null 2>&1 &
	LXD_PID=$!
	if LXD_DIR=$LXD_HOME timeout 90 lxd waitready --timeout 90; then
		pass "LXD $(lxd --version) of the test's own starts"
		check "LXD: a dir pool" lxl storage create default dir
		check "LXD: core.https_address=127.0.0.1:8445" lxl config set core.https_address 127.0.0.1:8445
		check "LXD: a trust password" lxl config set core.trust_password pl
		run_lxc remote add lxd https://127.0.0.1:8445 --accept-certificate --password pl
		rc_ok "lxc remote add lxd"
		check "LXD: volume lv" lxl storage volume create default lv
		lv=$LXD_HOME/storage-pools/default/custom/default_lv
		check "LXD: lv state zero" sh -c "echo zero >$lv/state.txt && chown 1000:1000 $lv/state.txt"
		check "LXD: snapshot lv s0" lxl storage volume snapshot default lv s0
		check "LXD: lv state one" sh -c "echo one >$lv/state.txt"
		run_lxc storage volume copy lxd:default/lv b:default/lv
		rc_ok "lxc storage volume copy lxd:default/lv b:default/lv (berth pulls from LXD)"
		is "$(vinfo b default lv)" '["", {}, "filesystem", ["s0"]]' "LXD -> berth: the snapshot arrived"
		same_tree "LXD -> berth: the volume's files" "$lv" "$(cvol "$B_DIR" default lv)"
		is "$(cat "$(csnap "$B_DIR" default lv s0)/state.txt" 2>&1)" zero "LXD -> berth: s0 holds its content"
	else
		fail "LXD starts" "$(tail -n 20 "$TEST_TMP/lxd.log")"
	fi
	lxd_stop
fi
