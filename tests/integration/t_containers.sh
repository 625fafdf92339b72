#!/bin/bash
# tests/integration/t_containers.sh: busybox containers run by berth-monitor and driven
# through berthd: start (raw HTTP and `lxc launch`), state (pid, processes, memory, cpu),
# `lxc list`, stop, restart, freeze/unfreeze, refusals (delete, rename, start twice),
# stop --force, berthd killed with containers running (they keep running and are
# re-attached), a monitor killed (the instance shows Stopped, no cgroup left), an init
# that exits at once, and limits applied to the cgroups. Mounts, cgroups, processes and
# berthd's fds are counted before and after. TAP output.
if [ -z "${BERTH_IN_NETNS:-}" ] && [ "$(id -u)" = 0 ]; then
	T_CT_OUT=$(mktemp -d /tmp/berth-t-ct.XXXXXX)
	srcdir=${BERTH_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
	"$srcdir/images/build" busybox "$T_CT_OUT" >"$T_CT_OUT/fp" 2>"$T_CT_OUT/log" ||
		rm -f "$T_CT_OUT/fp"
	export T_CT_OUT
fi

. "$(dirname "$0")/lib.sh"
[ -n "${BERTH_IN_NETNS:-}" ] && trap 'rm -rf "$T_CT_OUT"' EXIT
: "${BERTH_MONITOR:=$BERTH_BUILDDIR/berth-monitor}"
if [ "$(id -u)" = 0 ]; then
	[ -s "$T_CT_OUT/fp" ] || skip_all "the busybox image could not be built: $(tail -n 1 "$T_CT_OUT/log")"
	[ -x "$BERTH_MONITOR" ] || skip_all "no berth-monitor at $BERTH_MONITOR (build it first)"
fi
BERTHD_ENV=(BERTH_MONITOR="$BERTH_MONITOR")
berth_test_init "$@"
export PATH=$BERTH_BUILDDIR:$PATH
export LXD_CONF=$TEST_TMP/lxd-conf
mkdir -p "$LXD_CONF"

mounts() { own_mounts; }
# this daemon's cgroups (doc/runtime.md: berth-<8 hex of sha256(BERTH_DIR)>/...)
CGH=berth-$(printf '%s' "$BERTH_DIR" | sha256sum | cut -c1-8)
cgroups() { find /sys/fs/cgroup -maxdepth 3 -type d -name "$CGH" 2>/dev/null | wc -l; }
monitors() { pgrep -cf "^$BERTH_MONITOR start $BERTH_DIR/" || true; }
# state ACTION NAME [extra json]: PUT state and wait for the operation; sets HTTP_*.
state()
{
	api PUT "/1.0/instances/$2/state" "{\"action\":\"$1\"${3:+,$3}}"
	[ "$HTTP_STATUS" = 202 ] && wait_operation "$(jget 'j["operation"]')"
	return 0
}
opok() { [ "$(jget 'j["metadata"]["status"]')" = Success ]; }
st() { api GET "/1.0/instances/$1/state"; jget 'j["metadata"]["status"]'; }
cgdir() { find /sys/fs/cgroup -maxdepth 4 -type d -path "*$CGH/default_$1" 2>/dev/null | head -n 1; }

mounts0=$(mounts)
cgroups0=$(cgroups)
fds0=$(daemon_fds)

check "import the busybox image" berth image import "$T_CT_OUT/busybox.tar.gz" --alias busybox
api POST /1.0/instances '{"name":"c1","source":{"type":"image","alias":"busybox"},"config":{"limits.memory":"128MiB","limits.processes":"100","limits.cpu":"1"}}'
wait_operation "$(jget 'j["operation"]')"
ok "create c1" opok

# ---- start ----
t0=$(date +%s%N)
state start c1
t1=$(date +%s%N)
ok "PUT state start succeeds" opok
diag "start took $(((t1 - t0) / 1000000)) ms (request to operation done)"
api GET /1.0/instances/c1/state
is "$(jget 'j["metadata"]["status"]'):$(jget 'j["metadata"]["status_code"]')" "Running:103" "state is Running"
pid=$(jget 'j["metadata"]["pid"]')
ok "state has PID 1's host pid ($pid)" kill -0 "$pid"
ok "processes > 0" test "$(jget 'j["metadata"]["processes"]')" -gt 0
ok "memory usage > 0" test "$(jget 'j["metadata"]["memory"]["usage"]')" -gt 0
ok "cpu usage > 0" test "$(jget 'j["metadata"]["cpu"]["usage"]')" -gt 0
api GET /1.0/instances/c1
is "$(jget 'j["metadata"]["status"]')" Running "GET instance says Running"
cg=$(cgdir c1)
ok "the container has a cgroup" test -n "$cg"
mcg=$(find /sys/fs/cgroup/memory -maxdepth 3 -type d -path "*$CGH/default_c1" | head -n 1)
is "$(cat "$mcg/memory.limit_in_bytes" 2>/dev/null)" $((128 << 20)) "limits.memory applied"
pcg=$(find /sys/fs/cgroup/pids -maxdepth 3 -type d -path "*$CGH/default_c1" | head -n 1)
is "$(cat "$pcg/pids.max" 2>/dev/null)" 100 "limits.processes applied"
ccg=$(find /sys/fs/cgroup/cpuset -maxdepth 3 -type d -path "*$CGH/default_c1" | head -n 1)
is "$(cat "$ccg/cpuset.cpus" 2>/dev/null)" 0 "limits.cpu=1 pins one cpu"
expect_error 400 "starting a running instance is refused" PUT /1.0/instances/c1/state '{"action":"start"}'
like "$(jget 'j["error"]')" "already running" "... The instance is already running"
expect_error 400 "deleting a running instance is refused" DELETE /1.0/instances/c1
expect_error 400 "renaming a running instance is refused" POST /1.0/instances/c1 '{"name":"c9"}'
api POST /1.0/instances/c1/snapshots '{"name":"s0"}'
wait_operation "$(jget 'j["operation"]')"
ok "a snapshot of a running instance works" opok

api GET /1.0/instances/c1/console
like "$HTTP_BODY" 'BusyBox|/ #|login|c1|activate this console' "GET console gives the console log"
F=$(curl -s -D - -o /dev/null --unix-socket "$BERTH_SOCKET" http://b/1.0/instances/c1/console | tr -d '\r')
like "$F" 'Content-Type: text/plain' "... as text/plain"
api DELETE /1.0/instances/c1/console
is "$HTTP_STATUS" 200 "DELETE console clears the log"
is "$(stat -c %s "$BERTH_DIR/run/default_c1/console.log")" 0 "... it is empty"

# ---- isolated idmap ----
api POST /1.0/instances '{"name":"iso","source":{"type":"image","alias":"busybox"},"config":{"security.idmap.isolated":"true"}}'
wait_operation "$(jget 'j["operation"]')"
state start iso
ok "start an instance with security.idmap.isolated" opok
api GET /1.0/instances/iso
base=$(jget 'j["metadata"]["config"].get("volatile.idmap.base")')
is "$base" 65536 "volatile.idmap.base is the first block after the shared one"
like "$(jget 'j["metadata"]["config"].get("volatile.idmap.current")')" '"Hostid": ?[0-9]+' "volatile.idmap.current holds LXD's map JSON"
api GET /1.0/instances/iso/state
ipid=$(jget 'j["metadata"]["pid"]')
sub=$(awk -F: '$1 == "root" {print $2; exit}' /etc/subuid)
is "$(awk '{print $1, $2, $3}' "/proc/$ipid/uid_map")" "0 $((sub + 65536)) 65536" "its uid_map is its own range"
api GET /1.0/instances/c1/state
is "$(awk '{print $1, $2, $3}' "/proc/$(jget 'j["metadata"]["pid"]')/uid_map")" "0 $sub 65536" "a default container uses the shared range"
state stop iso '"force":true'
ok "stop iso" opok

# ---- lxc ----
lxc remote add b "unix://$BERTH_SOCKET" >/dev/null 2>&1
run lxc list b: -f csv -c ns
like "$OUT" 'c1,RUNNING' "lxc list shows c1 RUNNING"
run lxc launch b:busybox b:c2
rc_ok "lxc launch b:busybox b:c2"
is "$(st c2)" Running "c2 runs"
run lxc info b:c2
like "$OUT" 'Status: RUNNING' "lxc info shows RUNNING"
like "$OUT" 'PID: [0-9]+' "... and a PID"

# ---- freeze, restart, stop ----
state freeze c1
ok "freeze" opok
is "$(st c1)" Frozen "state is Frozen"
run lxc list b: -f csv -c ns
like "$OUT" 'c1,FROZEN' "lxc list shows FROZEN"
state unfreeze c1
ok "unfreeze" opok
is "$(st c1)" Running "Running again"
api GET /1.0/instances/c1/state
pid1=$(jget 'j["metadata"]["pid"]')
state restart c1 '"timeout":10'
ok "restart" opok
api GET /1.0/instances/c1/state
pid2=$(jget 'j["metadata"]["pid"]')
ok "restart gives a new PID 1 ($pid1 -> $pid2)" test "$pid2" -gt 0 -a "$pid2" != "$pid1"
# the largest timeout an int holds still leaves room for the kill's wait after it
state restart c1 '"timeout":2147483647'
ok "restart with timeout INT_MAX" opok
api GET /1.0/instances/c1/state
pid2=$(jget 'j["metadata"]["pid"]')
t0=$(date +%s%N)
state stop c1 '"timeout":10'
t1=$(date +%s%N)
ok "clean stop" opok
diag "clean stop took $(((t1 - t0) / 1000000)) ms"
is "$(st c1)" Stopped "state is Stopped"
ok "PID 1 is gone" test ! -d "/proc/$pid2"
ok "its cgroup is gone" test -z "$(cgdir c1)"
expect_error 400 "stopping a stopped instance is refused" PUT /1.0/instances/c1/state '{"action":"stop"}'
run lxc stop b:c2 --force
rc_ok "lxc stop --force"
is "$(st c2)" Stopped "c2 is Stopped"

# ---- berthd killed while containers run ----
state start c1
ok "start c1 again" opok
api GET /1.0/instances/c1/state
pid=$(jget 'j["metadata"]["pid"]')
kill -KILL "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null
DAEMON_PID=
ok "c1 keeps running without berthd" kill -0 "$pid"
daemon_start
is "$(st c1)" Running "after berthd restarts c1 shows Running"
run lxc list b: -f csv -c ns
like "$OUT" 'c1,RUNNING' "... in lxc list too"
state stop c1 '"timeout":10'
ok "and it can be stopped" opok

# ---- twenty containers, berthd SIGKILLed, a fork bomb in one of them ----
# (issue 4: all keep running; after the restart `berth list` shows them RUNNING and exec
# works in each; a fork bomb under limits.processes leaves the others responsive)
names=
for i in $(seq -w 1 20); do names="$names m$i"; done
n_ok=0
for n in $names; do
	berth launch busybox "$n" -c limits.processes=50 >/dev/null 2>"$TEST_TMP/launch.err" && n_ok=$((n_ok + 1))
done
is "$n_ok" 20 "berth launch of 20 busybox containers" || diag "$(cat "$TEST_TMP/launch.err")"
berth exec m01 -- sh -c 'i=0; while [ $i -lt 300 ]; do sleep 5 & i=$((i+1)); done 2>/dev/null; true' >/dev/null 2>&1
pcg=$(find /sys/fs/cgroup/pids -maxdepth 3 -type d -path "*$CGH/default_m01" | head -n 1)
ok "the fork bomb in m01 is capped at 50 processes" test "$(cat "$pcg/pids.current")" -le 50
t0=$(date +%s%N)
run berth exec m02 -- echo responsive
t1=$(date +%s%N)
is "$OUT" responsive "m02 answers while m01 is at its process limit ($(((t1 - t0) / 1000000)) ms)"
pids=
for n in $names; do
	api GET "/1.0/instances/$n/state"
	pids="$pids $(jget 'j["metadata"]["pid"]')"
done
kill -KILL "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null
DAEMON_PID=
alive=0
for p in $pids; do kill -0 "$p" 2>/dev/null && alive=$((alive + 1)); done
is "$alive" 20 "all 20 keep running without berthd"
daemon_start
run berth list -c ns -f csv
is "$(grep -c '^m[0-9]*,RUNNING$' <<<"$OUT")" 20 "after the restart berth list shows all 20 RUNNING"
n_ok=0
for n in $names; do
	[ "$(berth exec "$n" -- hostname 2>/dev/null)" = "$n" ] && n_ok=$((n_ok + 1))
done
is "$n_ok" 20 "exec works in all 20"
run berth delete --force $names
rc_ok "berth delete --force of all 20"
for _ in $(seq 100); do [ -z "$(find /sys/fs/cgroup/pids -maxdepth 3 -type d -path "*$CGH/default_m*")" ] && break; sleep 0.1; done
ok "... their cgroups are gone" test -z "$(find /sys/fs/cgroup -maxdepth 4 -type d -path "*$CGH/default_m*")"

# ---- a monitor killed ----
state start c1
api GET /1.0/instances/c1/state
pid=$(jget 'j["metadata"]["pid"]')
mpid=$(cat "$BERTH_DIR/run/default_c1/monitor.pid")
kill -KILL "$mpid"
for _ in $(seq 50); do [ "$(st c1)" = Stopped ] && break; sleep 0.1; done
is "$(st c1)" Stopped "SIGKILL of the monitor: the instance shows Stopped"
api GET /1.0/instances/c1
is "$(jget 'j["metadata"]["status"]')" Stopped "... in its record too"
for _ in $(seq 50); do [ -z "$(cgdir c1)" ] && break; sleep 0.1; done
ok "... no cgroup left" test -z "$(cgdir c1)"
for _ in $(seq 50); do [ -d "/proc/$pid" ] || break; sleep 0.1; done
ok "... PID 1 gone" test ! -d "/proc/$pid"

# ---- an init that exits at once ----
api POST /1.0/instances '{"name":"bad","source":{"type":"image","alias":"busybox"}}'
wait_operation "$(jget 'j["operation"]')"
R=$BERTH_DIR/storage-pools/default/containers/default_bad/rootfs
rm -f "$R/sbin/init"
printf '#!/bin/sh\necho "init-says-goodbye"\nexit 3\n' >"$R/sbin/init"
chmod 755 "$R/sbin/init"
state start bad
is "$(jget 'j["metadata"]["status"]')" Failure "an init that exits at once fails the start"
like "$(jget 'j["metadata"]["err"]')" 'init-says-goodbye' "... with the console log in the error"
is "$(st bad)" Stopped "... and the instance is Stopped"
ok "... no cgroup left" test -z "$(cgdir bad)"

# ---- berthd stopped cleanly while a container runs on a btrfs pool ----
# (its pools must stay mounted: the container's root lives there)
if grep -qw btrfs /proc/filesystems && command -v mkfs.btrfs >/dev/null; then
	check "create a btrfs loop pool" berth storage create bt btrfs size=512MiB
	api POST /1.0/instances '{"name":"cb","source":{"type":"image","alias":"busybox"},"devices":{"root":{"type":"disk","path":"/","pool":"bt"}}}'
	wait_operation "$(jget 'j["operation"]')"
	state start cb
	ok "start cb on btrfs" opok
	api GET /1.0/instances/cb/state
	pid=$(jget 'j["metadata"]["pid"]')
	daemon_restart
	ok "cb keeps running across a clean berthd restart" kill -0 "$pid"
	is "$(st cb)" Running "... and shows Running"
	ok "... its pool is still mounted" mountpoint -q "$BERTH_DIR/storage-pools/bt"
	is "$(losetup -j "$BERTH_DIR/disks/bt.img" | grep -c .)" 1 "... on one loop device (not unmounted and mounted again)"
	api GET "/1.0/instances/cb/files?path=/etc/hostname"
	is "$HTTP_STATUS" 200 "... and its files are reachable"
	state stop cb '"force":true'
	ok "stop cb" opok
	api DELETE /1.0/instances/cb
	wait_operation "$(jget 'j["operation"]')"
	ok "delete cb" opok
	check "delete the btrfs pool" berth storage delete bt
else
	skip "berthd restart with a container on btrfs" "no btrfs here"
fi

# ---- a start whose `berth-monitor start` fails once the monitor has forked ----
# (as when it hits its timeout): berthd reports the failure and leaves nothing running.
cat >"$TEST_TMP/monitor-fails" <<EOF
#!/bin/sh
[ "\$1" = start ] || exec "$BERTH_MONITOR" "\$@"
"$BERTH_MONITOR" "\$@"
echo "injected failure"
exit 1
EOF
chmod +x "$TEST_TMP/monitor-fails"
api POST /1.0/instances '{"name":"cf","source":{"type":"image","alias":"busybox"}}'
wait_operation "$(jget 'j["operation"]')"
ok "create cf" opok
daemon_stop
BERTHD_ENV=(BERTH_MONITOR="$TEST_TMP/monitor-fails")
daemon_start
state start cf
is "$(jget 'j["metadata"]["status"]')" Failure "a start whose monitor launch fails late fails"
is "$(st cf)" Stopped "... cf is Stopped"
is "$(monitors)" 0 "... no monitor is left running"
ok "... nor its cgroup" test -z "$(cgdir cf)"
ok "... nor its monitor.pid" test ! -e "$BERTH_DIR/run/default_cf/monitor.pid"
daemon_stop
BERTHD_ENV=(BERTH_MONITOR="$BERTH_MONITOR")
daemon_start
api DELETE /1.0/instances/cf
wait_operation "$(jget 'j["operation"]')"
ok "delete cf" opok

# ---- leaks ----
for _ in $(seq 50); do [ "$(monitors)" = 0 ] && break; sleep 0.1; done
is "$(monitors)" 0 "no monitor left"
is "$(mounts)" "$mounts0" "no mount left"
is "$(cgroups)" "$cgroups0" "no cgroup left"
check_no_fd_leak "$fds0" "berthd holds no extra fds"
daemon_alive "berthd still serves"
