#!/bin/bash
# tests/integration/t_migrate_https.sh: migration between two berthds over HTTPS (issue 16,
# Deliver 4), driven by the stock `lxc` client (Debian's 5.0.2) and by `berth copy/move`:
# daemon A in the test's network namespace, daemon B in a second one the test made,
# joined by a veth pair (10.231.0.1 and .2; nothing else routed), each with
# core.https_address on its veth address. The target connects to the source's operation
# at https://ADDR/1.0/operations/ID, pinning the certificate the request gives and
# showing its own server.crt as LXD does. `lxc copy a:c1 b:c1` (pull) with two
# snapshots, the copy starts on B, the source's operation ends Success; `lxc copy
# --refresh`; `lxc move a:c3 b:c3`; lxc's push and relay modes;
# berth copy and move in each mode (a running source, a snapshot source, --refresh); a
# target given a wrong certificate fails naming the host, and a source killed mid-stream
# leaves nothing on the target. Full run (BERTH_TEST_FULL=1): LXD 5.0.2 on HTTPS as a
# third remote, both ways, and doc/migration.md's recipe moving LXD's instances to berth.
. "$(dirname "$0")/lib.sh"
command -v lxc >/dev/null || skip_all "lxc not installed (apt-get install lxd-client)"
berth_test_images busybox
: "${BERTH_MONITOR:=$BERTH_BUILDDIR/berth-monitor}"
: "${BERTH_TLS_HELPER:=$BERTH_BUILDDIR/berth-tls}"
if [ "$(id -u)" = 0 ]; then
	[ -x "$BERTH_MONITOR" ] || skip_all "no berth-monitor at $BERTH_MONITOR (build it first)"
	[ -x "$BERTH_TLS_HELPER" ] || skip_all "no berth-tls at $BERTH_TLS_HELPER (build it first)"
	command -v rsync >/dev/null || skip_all "rsync not found (apt-get install rsync)"
fi
BERTHD_ENV=(BERTH_MONITOR="$BERTH_MONITOR" BERTH_TLS_HELPER="$BERTH_TLS_HELPER")
berth_test_init "$@"
export PATH=$BERTH_BUILDDIR:$PATH

A_DIR=$BERTH_DIR
A_SOCK=$BERTH_SOCKET
B_DIR=$TEST_TMP/b
B_SOCK=$B_DIR/unix.socket
B_LOG=$TEST_TMP/berthd-b.log
B_PID=
A_IP=10.231.0.1
B_IP=10.231.0.2
A_ADDR=$A_IP:8443
B_ADDR=$B_IP:8443
mkdir -p "$B_DIR"
LXD_CONF=$TEST_TMP/lxc-conf
mkdir -p "$LXD_CONF"
export LXD_CONF
unset LXD_DIR
run_lxc() { run timeout 60 lxc "$@"; }

BERTHD_B_ENV=(BERTH_MONITOR="$BERTH_MONITOR" BERTH_TLS_HELPER="$BERTH_TLS_HELPER")
mig_cleanup()
{
	local st=$?
	[ "$_tap_failed" -gt 0 ] && [ -f "$B_LOG" ] && diag "---- berthd B log ----" && tail -n 80 "$B_LOG" | sed 's/^/# /'
	BERTH_DIR=$B_DIR BERTH_SOCKET=$B_SOCK berth list -f csv -c n 2>/dev/null |
		while read -r n; do BERTH_DIR=$B_DIR BERTH_SOCKET=$B_SOCK berth stop -f "$n" >/dev/null 2>&1; done
	berth list -f csv -c n 2>/dev/null | while read -r n; do berth stop -f "$n" >/dev/null 2>&1; done
	daemon_b_stop
	daemon_stop
	(exit $st)
	_berth_test_exit
}
trap mig_cleanup EXIT
command -v nsenter >/dev/null || skip_all "nsenter (util-linux) not installed"
daemon_b_start_netns "$A_IP" "$B_IP"

on_a() { BERTH_SOCKET=$A_SOCK BERTH_DIR=$A_DIR "$@"; }
on_b() { BERTH_SOCKET=$B_SOCK BERTH_DIR=$B_DIR "$@"; }
apia() { BERTH_SOCKET=$A_SOCK api "$@"; }
apib() { BERTH_SOCKET=$B_SOCK api "$@"; }
SEEN_OPS=
# src_ops_ok DESC [SOCKET]: every migration source operation of a berthd (A's by default)
# ends "Success" once waited for: the target's last message and its close arrive together
# over TLS, and the source used to lose the message ("The migration peer went away").
src_ops_ok()
{
	local sock=${2:-$A_SOCK} ops op bad=
	BERTH_SOCKET=$sock api GET '/1.0/operations?recursion=1'
	ops=$(jget '" ".join(o["id"] for v in (j["metadata"] or {}).values() for o in (v or [])
		if o["description"] == "Migrating instance")')
	for op in $SEEN_OPS; do ops=${ops//$op/}; done
	[ -n "${ops// /}" ] || bad="no new source operation"
	for op in $ops; do
		SEEN_OPS="$SEEN_OPS $op"
		BERTH_SOCKET=$sock wait_operation "/1.0/operations/$op" 20
		[ "$(jget 'j["metadata"]["status"]')" = Success ] ||
			bad="$bad $op: $(jget 'j["metadata"]["status"] + " " + str(j["metadata"]["err"])')"
	done
	if [ -z "$bad" ]; then pass "$1"; else fail "$1" "$bad"; fi
}

# ---- both daemons on HTTPS, both remotes of the lxc client ----
apia PATCH /1.0 '{"config":{"core.https_address":"'$A_ADDR'","core.trust_password":"pa"}}'
is "$HTTP_STATUS" 200 "A: core.https_address=$A_ADDR"
apib PATCH /1.0 '{"config":{"core.https_address":"'$B_ADDR'","core.trust_password":"pb"}}'
is "$HTTP_STATUS" 200 "B: core.https_address=$B_ADDR"
run_lxc remote add a "https://$A_ADDR" --accept-certificate --password pa
rc_ok "lxc remote add a"
run_lxc remote add b "https://$B_ADDR" --accept-certificate --password pb
rc_ok "lxc remote add b"

# ---- c1 on A: two snapshots ----
check "A: import the busybox image" on_a berth image import "${IMAGE[busybox]}" --alias busybox
check "A: init c1" on_a berth init busybox c1 -c user.x=kept
rf=$A_DIR/storage-pools/default/containers/default_c1/rootfs
check "A: c1 state zero" sh -c "echo zero >$rf/state.txt"
check "A: snapshot snap0" on_a berth snapshot c1 snap0
check "A: c1 state one" sh -c "echo one >$rf/state.txt"
check "A: snapshot snap1" on_a berth snapshot c1 snap1
check "A: c1 state current" sh -c "echo current >$rf/state.txt"

# ---- pull: lxc copy a:c1 b:c1 ----
t0=$(date +%s%N)
run_lxc copy a:c1 b:c1
rc_ok "lxc copy a:c1 b:c1 (pull over HTTPS)"
src_ops_ok "A: the source operation of the copy ends Success"
diag "lxc copy a:c1 b:c1 with two snapshots: $((($(date +%s%N) - t0) / 1000000)) ms"
bf=$B_DIR/storage-pools/default/containers/default_c1/rootfs
is "$(cat "$bf/state.txt" 2>&1)" current "B: c1 has the current content"
is "$(cat "$B_DIR/storage-pools/default/containers-snapshots/default_c1/snap0/rootfs/state.txt" 2>&1)" zero \
	"B: snap0 has its content"
is "$(cat "$B_DIR/storage-pools/default/containers-snapshots/default_c1/snap1/rootfs/state.txt" 2>&1)" one \
	"B: snap1 has its content"
apib GET /1.0/instances/c1/snapshots
is "$(jget 'j["metadata"]')" '["/1.0/instances/c1/snapshots/snap0", "/1.0/instances/c1/snapshots/snap1"]' \
	"B: c1's snapshots in order"
apib GET /1.0/instances/c1
is "$(jget 'j["metadata"]["config"]["user.x"]')" kept "B: c1 keeps its config"
run_lxc start b:c1
rc_ok "lxc start b:c1"
run_lxc exec b:c1 -- cat /state.txt
is "$RC:$OUT" "0:current" "the copy runs on B and shows its content"
run_lxc stop -f b:c1
rc_ok "lxc stop -f b:c1"
apia GET /1.0/instances/c1
is "$(jget 'j["metadata"]["status"]')" Stopped "A: c1 is untouched (stopped)"

# ---- refresh after a change ----
check "A: c1 changes" sh -c "echo refreshed >$rf/state.txt && echo new >$rf/new.txt"
t0=$(date +%s%N)
run_lxc copy a:c1 b:c1 --refresh
rc_ok "lxc copy a:c1 b:c1 --refresh"
src_ops_ok "A: the source operation of the refresh ends Success"
diag "lxc copy --refresh after a small change: $((($(date +%s%N) - t0) / 1000000)) ms"
is "$(cat "$bf/state.txt" "$bf/new.txt" 2>&1 | tr '\n' ' ')" "refreshed new " "B: c1 has the change"

# ---- move: lxc move a:c3 b:c3 ----
check "A: init c3" on_a berth init busybox c3
check "A: c3 gets a file" sh -c "echo moved >$A_DIR/storage-pools/default/containers/default_c3/rootfs/m.txt"
check "A: snapshot c3/s0" on_a berth snapshot c3 s0
run_lxc move a:c3 b:c3
rc_ok "lxc move a:c3 b:c3"
apia GET /1.0/instances/c3
is "$HTTP_STATUS" 404 "A: c3 is gone"
is "$(cat "$B_DIR/storage-pools/default/containers/default_c3/rootfs/m.txt" 2>&1)" moved "B: c3 has its content"
apib GET /1.0/instances/c3/snapshots
is "$(jget 'j["metadata"]')" '["/1.0/instances/c3/snapshots/s0"]' "B: c3 keeps its snapshot"

# ---- lxc copy --mode push and relay between the two berthds ----
for mode in push relay; do
	run_lxc copy a:c1 b:lc-$mode --mode $mode
	rc_ok "lxc copy a:c1 b:lc-$mode --mode $mode"
	src_ops_ok "A: the source operation of lxc's $mode copy ends Success"
	is "$(cat "$B_DIR/storage-pools/default/containers/default_lc-$mode/rootfs/state.txt" \
		"$B_DIR/storage-pools/default/containers-snapshots/default_lc-$mode/snap1/rootfs/state.txt" 2>&1 |
		tr '\n' ' ')" "refreshed one " "B: lc-$mode has c1's content and snapshots"
done

# ---- berth copy and move between remotes, in each mode ----
run berth remote add a "https://$A_ADDR" --accept-certificate --password pa
rc_ok "berth remote add a"
run berth remote add b "https://$B_ADDR" --accept-certificate --password pb
rc_ok "berth remote add b"
bpool=$B_DIR/storage-pools/default
for mode in pull push relay; do
	run berth copy a:c1 b:bc-$mode --mode $mode -c user.mode=$mode
	rc_ok "berth copy a:c1 b:bc-$mode --mode $mode"
	[ $mode = relay ] && src_ops_ok "A: the source operation of berth's $mode copy ends Success"
	is "$(cat "$bpool/containers/default_bc-$mode/rootfs/state.txt" \
		"$bpool/containers-snapshots/default_bc-$mode/snap0/rootfs/state.txt" \
		"$bpool/containers-snapshots/default_bc-$mode/snap1/rootfs/state.txt" 2>&1 | tr '\n' ' ')" \
		"refreshed zero one " "B: bc-$mode and its two snapshots have their content"
	[ $mode = pull ] || continue
	apib GET /1.0/instances/bc-$mode
	is "$(jget 'j["metadata"]["config"]["user.x"] + " " + j["metadata"]["config"]["user.mode"]')" \
		"kept $mode" "B: bc-$mode keeps c1's config, with -c applied"
done
run berth copy a:c1 b:bc-pull
like "$RC:$ERR" '^[1-9].*c1.*remote' "a copy onto an existing name fails, naming the instance and remote"
run berth start b:bc-relay
rc_ok "berth start b:bc-relay: the relayed copy starts"
run berth exec b:bc-relay -- cat /state.txt
is "$RC:$OUT" "0:refreshed" "... and runs with its content"
run berth stop -f b:bc-relay
run berth copy a:c1/snap0 b:from-snap
rc_ok "berth copy a:c1/snap0 b:from-snap (a snapshot as the source)"
is "$(cat "$bpool/containers/default_from-snap/rootfs/state.txt" 2>&1)" zero "B: from-snap has snap0's content"

# --refresh sends only what changed: rsync leaves unchanged files as they are (same inode)
ino() { stat -c %i "$bpool/containers/default_bc-pull/rootfs/$1" 2>&1; }
new_ino=$(ino new.txt)
state_ino=$(ino state.txt)
check "A: c1 changes again" sh -c "echo again >$rf/state.txt"
t0=$(date +%s%N)
run berth copy a:c1 b:bc-pull --refresh
rc_ok "berth copy a:c1 b:bc-pull --refresh"
diag "berth copy --refresh after a small change: $((($(date +%s%N) - t0) / 1000000)) ms"
is "$(cat "$bpool/containers/default_bc-pull/rootfs/state.txt" 2>&1)" again "B: the change arrived"
is "$(ino new.txt)" "$new_ino" "B: an unchanged file was not rewritten"
isnt "$(ino state.txt)" "$state_ino" "B: the changed file was"

for mode in pull push relay; do
	check "A: init m-$mode" on_a berth init busybox m-$mode
	check "A: m-$mode gets a file" sh -c "echo $mode >$A_DIR/storage-pools/default/containers/default_m-$mode/rootfs/m.txt"
	check "A: snapshot m-$mode/s0" on_a berth snapshot m-$mode s0
	run berth move a:m-$mode b: --mode $mode
	rc_ok "berth move a:m-$mode b: --mode $mode"
	ok "A: m-$mode is gone" test ! -e "$A_DIR/storage-pools/default/containers/default_m-$mode"
	is "$(cat "$bpool/containers/default_m-$mode/rootfs/m.txt" \
		"$bpool/containers-snapshots/default_m-$mode/s0/rootfs/m.txt" 2>&1 | tr '\n' ' ')" \
		"$mode $mode " "B: m-$mode has its content and its snapshot"
done

# a running source: refused without --stateless (no CRIU, as LXD says), moved with it
check "A: init and start mr" on_a berth launch busybox mr
run berth move a:mr b:mr
like "$RC:$ERR" '^[1-9].*CRIU' "berth move of a running instance without --stateless is refused"
ok "... and leaves nothing on B" test ! -e "$bpool/containers/default_mr"
ok "... and A keeps mr" test -e "$A_DIR/storage-pools/default/containers/default_mr"
run berth move a:mr b:mr --stateless
rc_ok "berth move a:mr b:mr --stateless"
ok "A: mr is gone" test ! -e "$A_DIR/storage-pools/default/containers/default_mr"
apib GET /1.0/instances/mr
is "$(jget 'j["metadata"]["status"]')" Stopped "B: mr arrived, stopped"

# ---- a wrong certificate: the target refuses the source, nothing left ----
apia POST /1.0/instances/c1 '{"migration": true}'
is "$HTTP_STATUS" 202 "A: a source operation for c1"
src_op=$(jget 'j["operation"]')
secrets=$(jget 'json.dumps(j["metadata"]["metadata"])')
body=$($PY -c '
import json, sys
print(json.dumps({"name": "bad", "architecture": "x86_64", "config": {}, "devices": {}, "profiles": ["default"],
    "source": {"type": "migration", "mode": "pull", "operation": "https://" + sys.argv[1] + sys.argv[2],
               "secrets": json.loads(sys.argv[3]), "certificate": open(sys.argv[4]).read()}}))' \
	"$A_ADDR" "$src_op" "$secrets" "$B_DIR/server.crt")
apib POST /1.0/instances "$body"
is "$HTTP_STATUS" 202 "B: a target pinning the wrong certificate starts"
BERTH_SOCKET=$B_SOCK wait_operation "$(jget 'j["operation"]')"
is "$(jget 'j["metadata"]["status"]')" Failure "B: the migration fails"
like "$(jget 'j["metadata"]["err"]')" "${A_ADDR//./\\.}" "... naming the source's host and port"
like "$(jget 'j["metadata"]["err"]')" "[Cc]ertificate" "... saying the certificate is wrong"
apib GET /1.0/instances/bad
is "$HTTP_STATUS" 404 "B: no instance bad"
ok "B: no volume for bad" test ! -e "$B_DIR/storage-pools/default/containers/default_bad"
apia DELETE "$src_op"
SEEN_OPS="$SEEN_OPS ${src_op##*/}"

# ---- the source killed mid-stream: the target keeps nothing ----
check "A: init big" on_a berth init busybox big
check "A: big gets a 2 GiB file" truncate -s 2G "$A_DIR/storage-pools/default/containers/default_big/rootfs/big.img"
berth copy a:big b:big >"$TEST_TMP/big.out" 2>&1 &
cpid=$!
for i in $(seq 400); do
	ls -a "$bpool/containers/default_big/rootfs" 2>/dev/null | grep -q '^\.big\.img\.' && break
	sleep 0.05
done
ok "B: big.img is being received" sh -c "ls -a '$bpool/containers/default_big/rootfs' | grep -q '^\.big\.img\.'"
kill -KILL "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null
DAEMON_PID=
wait "$cpid"
isnt "$?" 0 "berth copy fails when the source dies mid-stream"
apib GET '/1.0/operations?recursion=1'
for op in $(jget '" ".join(o["id"] for o in (j["metadata"] or {}).get("running") or [])'); do
	BERTH_SOCKET=$B_SOCK wait_operation "/1.0/operations/$op" 30
done
apib GET /1.0/instances/big
is "$HTTP_STATUS" 404 "B: no instance big"
ok "B: no volume for big" test ! -e "$bpool/containers/default_big"
daemon_start

# ---- full run: LXD 5.0.2 (its own daemon and state dir in the test's namespaces) on
# HTTPS as the third remote: lxc copy lxd:l1 b:l1 (berth pulls from LXD), lxc copy
# a:p2 lxd:p2 (LXD pulls from berth) and --mode push (berth pushes to LXD), each with a
# snapshot and booting on the other side ----
if [ "${BERTH_TEST_FULL:-}" != 1 ] || ! command -v lxd >/dev/null; then
	skip "LXD <-> berth over HTTPS" "full run only (BERTH_TEST_FULL=1, lxd installed)"
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
	trap 'lxd_stop; mig_cleanup' EXIT
	mkdir -p "$LXD_HOME"
	chmod 0711 "$TEST_TMP"
	LXD_DIR=$LXD_HOME lxd --group root --logfile "$TEST_TMP/lxd.log" >/dev/null 2>&1 &
	LXD_PID=$!
	if LXD_DIR=$LXD_HOME timeout 90 lxd waitready --timeout 90; then
		pass "LXD $(lxd --version) of the test's own starts"
		check "LXD: a dir pool" lxl storage create default dir
		check "LXD: the default profile's root disk" lxl profile device add default root disk path=/ pool=default
		check "LXD: core.https_address=$A_IP:8445" lxl config set core.https_address $A_IP:8445
		check "LXD: a trust password" lxl config set core.trust_password pl
		run_lxc remote add lxd https://$A_IP:8445 --accept-certificate --password pl
		rc_ok "lxc remote add lxd"
		check "LXD: import the busybox image" lxl image import "${IMAGE[busybox]}" --alias busybox
		check "LXD: init l1" lxl init busybox l1
		lrf=$LXD_HOME/storage-pools/default/containers/l1/rootfs
		check "LXD: l1 state zero" sh -c "echo zero >$lrf/state.txt"
		check "LXD: snapshot l1 s0" lxl snapshot l1 s0
		check "LXD: l1 state one" sh -c "echo one >$lrf/state.txt"
		run_lxc copy lxd:l1 b:l1
		rc_ok "lxc copy lxd:l1 b:l1 (berth pulls from LXD over HTTPS)"
		apib GET /1.0/instances/l1/snapshots
		is "$(jget 'j["metadata"]')" '["/1.0/instances/l1/snapshots/s0"]' "LXD -> berth: the snapshot arrived"
		run_lxc start b:l1
		rc_ok "lxc start b:l1"
		run_lxc exec b:l1 -- cat /state.txt
		is "$RC:$OUT" "0:one" "LXD -> berth: l1 runs on berth with its content"
		run_lxc stop -f b:l1
		check "A: init p2" on_a berth init busybox p2
		check "A: p2 state zero" sh -c "echo zero >$A_DIR/storage-pools/default/containers/default_p2/rootfs/state.txt"
		check "A: snapshot p2 s0" on_a berth snapshot p2 s0
		check "A: p2 state one" sh -c "echo one >$A_DIR/storage-pools/default/containers/default_p2/rootfs/state.txt"
		run_lxc copy a:p2 lxd:p2
		rc_ok "lxc copy a:p2 lxd:p2 (LXD pulls from berth over HTTPS)"
		src_ops_ok "A: the source operation LXD pulled from ends Success"
		run_lxc info lxd:p2
		like "$OUT" 's0' "berth -> LXD: LXD lists the snapshot"
		run_lxc start lxd:p2
		rc_ok "lxc start lxd:p2"
		run_lxc exec lxd:p2 -- cat /state.txt
		is "$RC:$OUT" "0:one" "berth -> LXD: p2 runs on LXD with its content"
		run_lxc stop -f lxd:p2
		run_lxc copy a:p2 lxd:p3 --mode push
		rc_ok "lxc copy a:p2 lxd:p3 --mode push (berth pushes to LXD over HTTPS)"
		run_lxc start lxd:p3
		rc_ok "lxc start lxd:p3"
		run_lxc exec lxd:p3 -- cat /state.txt
		is "$RC:$OUT" "0:one" "berth -> LXD pushed: p3 runs on LXD with its content"
		run_lxc stop -f lxd:p3
		# doc/migration.md's recipe: every instance of the LXD host moved onto berth
		check "LXD: p2 and p3 deleted (copies of A's p2)" lxl delete -f p2 p3
		check "LXD: init r1" lxl init busybox r1
		run berth remote add lxd "https://$A_IP:8445" --accept-certificate --password pl
		rc_ok "berth remote add lxd"
		run sh -c 'for c in $(berth list lxd: -c n -f csv); do berth move lxd:$c local:$c --stateless || exit 1; done'
		rc_ok "the recipe: berth move lxd:\$c local:\$c for each LXD instance"
		run berth list lxd: -c n -f csv
		is "$RC:$OUT" "0:" "LXD: no instance left"
		apia GET /1.0/instances
		is "$(jget '" ".join(sorted(u.split("/")[-1] for u in j["metadata"] if u.split("/")[-1] in ("l1", "r1")))')" \
			"l1 r1" "A: l1 and r1 arrived"
		is "$(cat "$A_DIR/storage-pools/default/containers/default_l1/rootfs/state.txt" 2>&1)" one \
			"A: l1 has its content"
	else
		fail "LXD starts" "$(tail -n 20 "$TEST_TMP/lxd.log")"
	fi
	lxd_stop
fi
