#!/bin/bash
# tests/integration/t_cleanup.sh: what an instance owns goes with it. A running busybox
# container with a proxy device and a recorded exec has a run directory (console.log,
# monitor.log, spec, proxy.* files), a log directory, a cgroup, a monitor and a volume;
# after `lxc delete -f`, and after a DELETE of a stopped one, none is left, while another
# instance's stay. Then berthd is SIGKILLed just before that cleanup (BERTH_TEST_PAUSE_AT
# instance-delete-before-cleanup), which comes before the delete of the row: the instance
# is left whole and stopped, and can be deleted after the restart. Leftovers are made by
# hand (run and log directories, a cgroup with a process in it): the next start removes
# them all and leaves alone the running instance and a cgroup under its parent that has
# no run or log directory (another berthd's with the same state path). A DELETE or
# rename of an instance whose monitor is stopped (SIGSTOP) fails with the monitor's
# timeout, not "currently running", and that timeout names the instance also in a
# project whose name holds a '_'. A running container whose row is gone
# keeps running across a start (its monitor answers), and goes once it does not. TAP output.
. "$(dirname "$0")/lib.sh"
berth_test_images busybox
: "${BERTH_MONITOR:=$BERTH_BUILDDIR/berth-monitor}"
if [ "$(id -u)" = 0 ]; then
	[ -x "$BERTH_MONITOR" ] || skip_all "no berth-monitor at $BERTH_MONITOR (build it first)"
	command -v lxc >/dev/null || skip_all "the lxc client is not installed (lxd-client)"
fi
BERTHD_ENV=(BERTH_MONITOR="$BERTH_MONITOR")
berth_test_init "$@"
export PATH=$BERTH_BUILDDIR:$PATH
export LXD_CONF=$TEST_TMP/lxd-conf
mkdir -p "$LXD_CONF"
lxc remote add b "unix://$BERTH_DIR/unix.socket" >/dev/null 2>&1

CGH=berth-$(printf '%s' "$BERTH_DIR" | sha256sum | cut -c1-8)
# cgroup directories of instance $1 (default project) in every hierarchy
cgroups_of() { find /sys/fs/cgroup -maxdepth 3 -type d -path "*/$CGH/default_$1" 2>/dev/null | wc -l; }
monitors_of() { pgrep -cf "^$BERTH_MONITOR start $BERTH_DIR/run/default_$1\$" || true; }
opok() { [ "$(jget 'j["metadata"]["status"]')" = Success ]; }
# leftovers NAME: what of instance NAME is still on the host, one word each ("" when none)
leftovers()
{
	local out=""
	[ -e "$BERTH_DIR/run/default_$1" ] && out+=" run/default_$1"
	[ -e "$BERTH_DIR/logs/default_$1" ] && out+=" logs/default_$1"
	[ "$(cgroups_of "$1")" -gt 0 ] && out+=" cgroup"
	[ "$(monitors_of "$1")" -gt 0 ] && out+=" monitor"
	[ -e "$BERTH_DIR/storage-pools/default/containers/default_$1" ] && out+=" volume"
	echo "${out# }"
}
# launch NAME: a running busybox container with a proxy device and a recorded exec
launch()
{
	local port=$2
	api POST /1.0/instances "{\"name\":\"$1\",\"source\":{\"type\":\"image\",\"alias\":\"busybox\"},
		\"devices\":{\"p1\":{\"type\":\"proxy\",\"listen\":\"tcp:127.0.0.1:$port\",\"connect\":\"tcp:127.0.0.1:80\"}}}"
	wait_operation "$(jget 'j["operation"]')"
	ok "create $1" opok
	check "start $1" lxc start "b:$1"
	api POST "/1.0/instances/$1/exec" '{"command":["echo","hi"],"record-output":true,"wait-for-websocket":false,"interactive":false}'
	wait_operation "$(jget 'j["operation"]')"
	ok "a recorded exec in $1" opok
}

check "import the busybox image" berth image import "${IMAGE[busybox]}" --alias busybox

# ---- delete ----

launch c1 8111
launch keep 8112
for f in console.log monitor.log spec proxy.p1.spec proxy.p1.pid; do
	ok "c1's run directory holds $f" test -e "$BERTH_DIR/run/default_c1/$f"
done
ok "c1 has a log directory" test -d "$BERTH_DIR/logs/default_c1/exec-output"
ok "c1 has a cgroup" test "$(cgroups_of c1)" -gt 0
is "$(leftovers c1)" "run/default_c1 logs/default_c1 cgroup monitor volume" "what c1 owns is seen"
check "lxc delete -f a running c1" lxc delete -f b:c1
is "$(leftovers c1)" "" "nothing of c1 left: run/, logs/, cgroups, monitor, volume"
api GET /1.0/instances/c1
is "$HTTP_STATUS" 404 "c1 is gone"

check "stop keep" lxc stop b:keep
api DELETE /1.0/instances/keep
wait_operation "$(jget 'j["operation"]')"
ok "DELETE of the stopped keep" opok
is "$(leftovers keep)" "" "nothing of a stopped and deleted instance is left"

launch keep 8112
ok "keep (running) has its run directory" test -S "$BERTH_DIR/run/default_keep/monitor.sock"

# ---- a crash before the cleanup (and so before the row's delete) ----

launch c2 8113
launch lost 8114
BERTHD_ENV=(BERTH_MONITOR="$BERTH_MONITOR" BERTH_TEST_HARNESS=1
	BERTH_TEST_PAUSE_AT=instance-delete-before-cleanup)
daemon_restart
lxc delete -f b:c2 >"$TEST_TMP/bg.out" 2>&1 &
bg=$!
for i in $(seq 300); do
	grep -q "berth-test-pause: instance-delete-before-cleanup" "$DAEMON_LOG" && break
	kill -0 $bg 2>/dev/null || break
	sleep 0.1
done
if grep -q "berth-test-pause: instance-delete-before-cleanup" "$DAEMON_LOG"; then
	pass "berthd paused before c2's cleanup"
else
	fail "berthd paused before c2's cleanup" "$(cat "$TEST_TMP/bg.out")"
fi
kill -KILL "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null
DAEMON_PID=
wait $bg 2>/dev/null
is "$(leftovers c2)" "run/default_c2 logs/default_c2 volume" \
	"the killed berthd left c2 stopped and whole: run and log directories, volume"

# a running container whose row is gone (berthd is down): its monitor still answers
sqlite3 "$BERTH_DIR/database/berth.db" "DELETE FROM instances WHERE name = 'lost'"
lpid=$(cat "$BERTH_DIR/run/default_lost/monitor.pid")

# by hand: what another crash could leave, a process still in the cgroup included
mkdir -p "$BERTH_DIR/run/default_ghost" "$BERTH_DIR/logs/default_ghost/exec-output"
echo x >"$BERTH_DIR/run/default_ghost/console.log"
cg=/sys/fs/cgroup/$CGH/default_ghost # the unified layout, else cgroup v1's pids hierarchy
[ -e /sys/fs/cgroup/cgroup.controllers ] || cg=/sys/fs/cgroup/pids/$CGH/default_ghost
mkdir -p "$cg"
sleep 300 &
ghost=$!
echo $ghost >"$cg/cgroup.procs"
ok "a hand-made cgroup with a process in it" test "$(cgroups_of ghost)" -gt 0
is "$(leftovers ghost)" "run/default_ghost logs/default_ghost cgroup" "hand-made leftovers of ghost"
# a cgroup under our parent with neither run/ nor logs/ entry: another berthd's with the
# same state path in another mount namespace, as far as we know
scg=${cg%/default_ghost}/default_stray
mkdir -p "$scg"
sleep 300 &
stray=$!
echo $stray >"$scg/cgroup.procs"
ok "a hand-made cgroup default_stray with a process in it, nothing else" \
	test "$(leftovers stray)" = cgroup

BERTHD_ENV=(BERTH_MONITOR="$BERTH_MONITOR")
daemon_start && pass "berthd restarted"
api GET /1.0/instances/c2
is "$(jget 'j["metadata"]["status"]')" Stopped "c2 is still there, stopped: its row had not gone"
check "lxc delete c2 after the restart" lxc delete b:c2
is "$(leftovers c2)" "" "... and nothing of c2 is left"
is "$(leftovers ghost)" "" "the start-up removed ghost's directories and cgroup"
# it is this shell's child: a zombie once killed, reaped with its status here
for i in $(seq 20); do [ "$(awk '{print $3}' /proc/$ghost/stat)" = Z ] && break; sleep 0.1; done
[ "$(awk '{print $3}' /proc/$ghost/stat)" = Z ] || kill -TERM $ghost
wait $ghost 2>/dev/null
is $? 137 "the process in ghost's cgroup was killed (SIGKILL)"
ok "the cgroup default_stray, with no run or log directory, was left alone" test -d "$scg"
ok "... and so was its process" kill -0 "$stray"
kill -KILL "$stray"
wait "$stray" 2>/dev/null
for i in $(seq 20); do rmdir "$scg" 2>/dev/null && break; sleep 0.1; done
like "$(cat "$DAEMON_LOG")" '"default_ghost" belongs to no instance' "berthd says what it removed"
ok "lost's monitor was left alone" kill -0 "$lpid"
ok "lost's run directory was left alone" test -S "$BERTH_DIR/run/default_lost/monitor.sock"
like "$(cat "$DAEMON_LOG")" '"default_lost" belongs to no instance but its monitor runs: left alone' \
	"berthd says why it left lost alone"
# once its monitor is gone, the next start removes what is left of it
kill -KILL "$lpid"
daemon_restart
# (its volume is the pool reconcile's business, not checked here)
is "$(leftovers lost | sed 's/ *volume$//')" "" \
	"with its monitor gone, the next start removed lost's run and log dirs and cgroup"
api GET /1.0/instances/c2
is "$HTTP_STATUS" 404 "c2 stays deleted"
api GET /1.0/instances/keep
is "$(jget 'j["metadata"]["status"]')" Running "keep still runs"
ok "keep's run directory was left alone" test -S "$BERTH_DIR/run/default_keep/monitor.sock"
ok "keep's log directory was left alone" test -d "$BERTH_DIR/logs/default_keep/exec-output"
ok "keep's cgroup was left alone" test "$(cgroups_of keep)" -gt 0
check "exec in keep" lxc exec b:keep -- true

# a stuck monitor: delete and rename say so rather than "currently running"
kpid=$(cat "$BERTH_DIR/run/default_keep/monitor.pid")
kill -STOP "$kpid"
want="Monitor of instance keep did not answer within 5s"
api DELETE /1.0/instances/keep
is "$(jget 'j.get("error")')" "$want" "a DELETE of keep with a stuck monitor fails with its timeout"
api POST /1.0/instances/keep '{"name":"keep2"}'
is "$(jget 'j.get("error")')" "$want" "a rename of keep with a stuck monitor fails with its timeout"
kill -CONT "$kpid"
# ... and name the instance, also in a project whose name holds a '_'
check "create project p_x" lxc project create b:p_x -c features.images=false -c features.profiles=false
check "launch c1 in p_x" lxc launch b:busybox b:c1 --project p_x
xpid=$(cat "$BERTH_DIR/run/p_x_c1/monitor.pid")
kill -STOP "$xpid"
api GET "/1.0/instances/c1/state?project=p_x"
kill -CONT "$xpid"
like "$(cat "$DAEMON_LOG")" 'Monitor of instance c1 did not answer' "the timeout names c1 of project p_x"
check "lxc delete -f c1 in p_x" lxc delete -f b:c1 --project p_x

check "lxc delete -f keep" lxc delete -f b:keep
is "$(leftovers keep)" "" "nothing of keep left"
ok "no container cgroup of this daemon left" test -z "$(find /sys/fs/cgroup -maxdepth 2 -type d -name "$CGH")"
