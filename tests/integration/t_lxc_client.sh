#!/bin/bash
# t_lxc_client.sh: the stock `lxc` client (Debian 12's lxd-client 5.0.2) pointed
# at berthd through a unix remote: info, list, profiles, operations, monitor.
# Each command must succeed and show the right values.
. "$(dirname "$0")/lib.sh"
command -v lxc >/dev/null || skip_all "lxc not installed (apt-get install lxd-client)"
# This berthd is given no QEMU ($BERTH_QEMU names a missing binary): VM creations are
# refused up front, naming what is missing (t_vm.sh runs them where QEMU is).
BERTHD_ENV=(BERTH_QEMU=/nonexistent/qemu-system-x86_64)
berth_test_init "$@"

LXD_CONF=$TEST_TMP/lxc-conf
mkdir -p "$LXD_CONF"
export LXD_CONF
unset LXD_DIR

run_lxc() { run lxc "$@"; }

run_lxc remote add b "unix://$BERTH_SOCKET"
rc_ok "lxc remote add b unix://..."
run_lxc version
like "$OUT" 'Client version: 5\.' "lxc is a 5.x client"

api POST /1.0/instances '{"name":"c1","source":{"type":"none"},"config":{"user.tag":"x"}}'
wait_operation "$(jget 'j["operation"]')"
is "$(jget 'j["metadata"]["status"]')" Success "setup: instance c1"

# ---- info ----
run_lxc info b:
rc_ok "lxc info b: exits 0"
like "$OUT" 'api_version: "?1\.0' "lxc info shows api_version"
like "$OUT" 'server: berth' "lxc info shows the server name"
like "$OUT" "kernel_version: \"?$(uname -r)" "lxc info shows the kernel version"
like "$OUT" "server_pid: $DAEMON_PID" "lxc info shows berthd's pid"

# ---- list ----
run_lxc list b:
rc_ok "lxc list b: exits 0"
like "$OUT" '\| *c1 *\| *STOPPED *\|' "lxc list shows c1 STOPPED"
run_lxc list b: -f csv -c nst
is "$OUT" 'c1,STOPPED,CONTAINER' "lxc list -f csv -c nst"
run_lxc list b: -f json
is "$(jget '[(i["name"], i["config"].get("user.tag")) for i in j]' "$OUT")" '[["c1", "x"]]' \
	"lxc list -f json has the instance and its config"
run_lxc list b: user.tag=nomatch -f csv
is "$RC:$OUT" "0:" "lxc list with a non-matching filter is empty"

# ---- snapshots: lxc list -c S reads them from recursion=2 ----
run_lxc list b: -f csv -c nS
is "$OUT" 'c1,0' "lxc list -c S: no snapshots yet"
run_lxc snapshot b:c1 s1
rc_ok "lxc snapshot b:c1 s1"
run_lxc snapshot b:c1 s2
rc_ok "lxc snapshot b:c1 s2"
run_lxc list b: -f csv -c nS
is "$OUT" 'c1,2' "lxc list -c S counts both snapshots"
run_lxc list b: -f json
is "$(jget '[[s["name"] for s in i["snapshots"]] for i in j]' "$OUT")" '[["s1", "s2"]]' \
	"lxc list -f json carries the snapshots"
run_lxc delete b:c1/s1
rc_ok "lxc delete b:c1/s1"
run_lxc list b: -f csv -c nS
is "$OUT" 'c1,1' "lxc list -c S follows the delete"

# ---- refusals leave nothing behind ----
run_lxc init --empty b:vm1 --vm
ok "lxc init --vm --empty is refused" test "$RC" != 0
like "$ERR" 'Cannot create instance "vm1": This host cannot run virtual machines: .*qemu-system-x86_64' "... saying why"
run_lxc list b: -f csv -c n
is "$OUT" 'c1' "lxc list shows no VM record"
is "$(find "$BERTH_DIR" -name 'vm1*' | head -n 3)" "" "... and nothing of one is on disk"
run_lxc init b:nosuchimage b:x1
ok "lxc init of a missing image fails" test "$RC" != 0
like "$ERR" '[Nn]ot found' "... saying it is not found"
run_lxc info b:nope
ok "lxc info of a missing instance fails" test "$RC" != 0
like "$ERR" 'Instance "nope" not found' "... naming it"
like "$(grep -F 'GET /1.0/instances/nope: ' "$DAEMON_LOG")" ' info +\[api\] .*: 404 Instance "nope" not found' \
	"berthd's log says which request failed and why"

# ---- profiles ----
run_lxc profile list b:
rc_ok "lxc profile list b: exits 0"
like "$OUT" '\| *default *\|' "lxc profile list shows default"
run_lxc profile create b:p1
rc_ok "lxc profile create b:p1"
like "$OUT" 'Profile p1 created' "lxc profile create reports it"
run_lxc profile set b:p1 limits.cpu 2
rc_ok "lxc profile set b:p1 limits.cpu 2"
run_lxc profile set b:p1 user.note hello
rc_ok "lxc profile set b:p1 user.note hello"
run_lxc profile device add b:p1 root disk path=/ pool=default
rc_ok "lxc profile device add b:p1 root disk"
run_lxc profile show b:p1
is "$RC" 0 "lxc profile show b:p1 exits 0"
like "$OUT" 'limits\.cpu: "2"' "lxc profile show has limits.cpu"
like "$OUT" 'user\.note: hello' "lxc profile show has user.note"
like "$OUT" 'pool: default' "lxc profile show has the root disk device"
like "$OUT" 'name: p1' "lxc profile show has the name"
run_lxc profile get b:p1 limits.cpu
is "$OUT" 2 "lxc profile get"
run_lxc profile set b:p1 bogus.key 1
ok "lxc profile set of an unknown key fails" test "$RC" != 0
like "$ERR" 'Unknown configuration key' "... with berthd's message"
run_lxc profile list b:
like "$OUT" '\| *p1 *\|' "lxc profile list shows p1"
run_lxc profile delete b:p1
rc_ok "lxc profile delete b:p1"
run_lxc profile show b:p1
ok "the deleted profile is gone" test "$RC" != 0
like "$ERR" '[Nn]ot found' "... not found"

# ---- operations ----
run_lxc operation list b:
rc_ok "lxc operation list b: exits 0"
like "$OUT" 'ID' "lxc operation list prints its table"

# ---- monitor ----
timeout 20 lxc monitor b: --type=lifecycle >"$TEST_TMP/monitor" 2>&1 &
mon=$!
sleep 1.5
api POST /1.0/profiles '{"name":"watched"}'
for _ in $(seq 100); do grep -q watched "$TEST_TMP/monitor" && break; sleep 0.1; done
kill "$mon" 2>/dev/null
wait "$mon" 2>/dev/null
mout=$(cat "$TEST_TMP/monitor")
like "$mout" 'type: lifecycle' "lxc monitor receives a lifecycle event"
like "$mout" 'action: profile-created' "... profile-created"
like "$mout" 'source: /1.0/profiles/watched' "... for the new profile"

daemon_alive "berthd still serves after the lxc client"
