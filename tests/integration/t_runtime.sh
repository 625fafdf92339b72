#!/bin/bash
# tests/integration/t_runtime.sh: berth-monitor driven directly, without berthd
# (doc/runtime.md): start, status, exec, console, reboot, freeze, stop, a failing init,
# privileged mode, process and memory limits, a killed monitor, the on-disk shift.
# Runs in a private net+mount namespace (lib.sh); counts mounts, cgroups and processes
# before and after.
# The image is built (or copied from /var/cache/berth-test) before lib.sh enters the
# namespaces: building needs the network.
if [ -z "${BERTH_IN_NETNS:-}" ] && [ "$(id -u)" = 0 ]; then
	T_RT_OUT=$(mktemp -d /tmp/berth-t-rt.XXXXXX)
	"${BERTH_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}/images/build" busybox "$T_RT_OUT" >/dev/null 2>"$T_RT_OUT/log" || true
	export T_RT_OUT
fi
. "$(dirname "$0")/lib.sh"

_enter_namespaces "$@"
MON="$BERTH_BUILDDIR/berth-monitor"
CTL="$PY $BERTH_SRCDIR/tests/integration/monitorctl.py"
[ -x "$MON" ] || bail_out "no berth-monitor at $MON (build first)"
IMAGE=$(ls "$T_RT_OUT"/*.tar.gz 2>/dev/null | head -n 1)
[ -n "$IMAGE" ] || skip_all "the busybox image could not be built: $(tail -n 1 "$T_RT_OUT/log" 2>/dev/null)"

TEST_TMP=$(mktemp -d /tmp/berth-rt.XXXXXX)
CGP=berth-rt-$$
rt_cleanup()
{
	local f pid
	for f in "$TEST_TMP"/*/run/monitor.pid; do
		[ -f "$f" ] && pid=$(cat "$f") && kill -KILL "$pid" 2>/dev/null
	done
	sleep 0.2
	for f in /sys/fs/cgroup/*/"$CGP" /sys/fs/cgroup/"$CGP"; do
		[ -d "$f" ] && find "$f" -depth -type d -exec rmdir {} + 2>/dev/null
	done
}
trap 'st=$?; rt_cleanup; rm -rf "$T_RT_OUT"; (exit $st); _berth_test_exit' EXIT
trap 'exit 1' INT TERM

count_mounts() { own_mounts; }
count_cgroups() { find /sys/fs/cgroup/ -mindepth 1 -maxdepth 2 -type d -path "*/$CGP*" 2>/dev/null | wc -l; }
count_cgroups_all() { find /sys/fs/cgroup/*/"$CGP" /sys/fs/cgroup/"$CGP" -mindepth 1 -type d 2>/dev/null | wc -l; }
# processes whose command line names our temp dir (monitors) or that run in our cgroups
count_procs()
{
	local n=0 p
	for p in /proc/[0-9]*; do
		if grep -qs "$CGP" "$p/cgroup" || { tr "\\0" " " <"$p/cmdline"; } 2>/dev/null | grep -q "$TEST_TMP"; then
			n=$((n + 1))
		fi
	done
	echo "$n"
}
now_ms() { echo $(($(date +%s%N) / 1000000)); }

MOUNTS0=$(count_mounts)
CGROUPS0=$(count_cgroups)
PROCS0=$(count_procs)

# new_container NAME [SPEC LINES...]: unpacks the image into $TEST_TMP/NAME and writes
# its spec (busybox init; an rcS that leaves /proc alone, so we see our own mounts).
new_container()
{
	local name=$1
	shift
	local vol=$TEST_TMP/$name
	mkdir -p "$vol/run"
	tar -C "$vol" -xzf "$IMAGE" rootfs || return 1
	printf '#!/bin/sh\necho rcS-done\n' >"$vol/rootfs/etc/init.d/rcS"
	chmod 755 "$vol/rootfs/etc/init.d/rcS"
	{
		echo "name=$name"
		echo "project=default"
		echo "rootfs=$vol/rootfs"
		echo "volume=$vol"
		echo "hostname=rt-$name"
		echo "cgroup=$CGP/$name"
		printf '%s\n' "$@"
	} >"$vol/run/spec"
}
RUN() { echo "$TEST_TMP/$1/run"; }
status() { $CTL "$(RUN "$1")/monitor.sock" status 2>/dev/null; }
# xc NAME CMD...: exec in the container, sets OUT and RC
xc()
{
	local name=$1
	shift
	OUT=$("$MON" exec "$(RUN "$name")" -- "$@" 2>&1)
	RC=$?
}
wait_gone() { local i; for i in $(seq 100); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.05; done; return 1; }

USERNS="uid_map=0 100000 65536
gid_map=0 100000 65536"

# ---- an unprivileged busybox container ----
new_container c1 "uid_map=0 100000 65536" "gid_map=0 100000 65536" || bail_out "cannot unpack $IMAGE"
t0=$(now_ms)
ERR=$("$MON" start "$(RUN c1)" 2>&1)
rc=$?
t1=$(now_ms)
is "$rc" 0 "start returns 0" || diag "$ERR"
diag "busybox start (spec written -> start returned): $((t1 - t0)) ms"
[ "$rc" = 0 ] || { diag "$(cat "$(RUN c1)/monitor.log" 2>/dev/null)"; bail_out "start failed: $ERR"; }
MPID=$(cat "$(RUN c1)/monitor.pid")
IPID=$(cat "$(RUN c1)/init.pid")
is "$(status c1)" "ok running $IPID" "status reports running with init.pid's PID"
is "$(stat -c %u "/proc/$IPID")" 100000 "PID 1 runs as host uid 100000"
like "$(cat "/proc/$IPID/uid_map")" '^ +0 +100000 +65536$' "uid_map is 0 100000 65536"
is "$(stat -c %a "$(RUN c1)/monitor.sock")" 600 "monitor.sock is 0600"
is "$(grep -E '^Seccomp(_filters)?:' "/proc/$IPID/status" | tr -s '\t ' ' ')" "Seccomp: 2
Seccomp_filters: 1" "PID 1 runs under one seccomp filter"

xc c1 id -u
is "$OUT" 0 "exec: id -u is 0 inside"
xc c1 ps -o pid,comm
like "$OUT" '^ *PID +COMMAND' "exec: ps runs" 
like "$(printf '%s\n' "$OUT" | sed -n 2p)" '^ +1 +init$' "ps: init is PID 1"
is "$(printf '%s\n' "$OUT" | tail -n +2 | awk '$1 > 50 {print}' | wc -l)" 0 \
	"ps: only the container's processes (small PIDs)"
xc c1 nosuch-command
is "$RC" 127 "exec of a missing command exits 127"
like "$OUT" 'not found' "... and says not found"
xc c1 /etc/hostname
is "$RC" 126 "exec of a non-executable file exits 126"
xc c1 sh -c 'exit 7'
is "$RC" 7 "exec exit code propagates"
xc c1 sh -c 'kill -TERM $$'
is "$RC" 143 "exec killed by a signal exits 128+signal"
xc c1 hostname
is "$OUT" rt-c1 "hostname comes from the spec"
OUT=$("$MON" exec "$(RUN c1)" --uid 1000 --gid 1000 --cwd /tmp --env FOO=bar -- \
	sh -c 'echo $(id -u):$(id -g):$(pwd):$FOO:$HOME' 2>&1)
is "$OUT" "1000:1000:/tmp:bar:/" "exec --uid --gid --cwd --env"
OUT=$("$MON" exec "$(RUN c1)" --status-fd 3 -- true 3>"$TEST_TMP/status-fd")
like "$(cat "$TEST_TMP/status-fd")" '^started [0-9]+$' "--status-fd reports started PID"
OUT=$("$MON" exec "$TEST_TMP/nonexistent" --status-fd 3 -- true 3>"$TEST_TMP/status-fd" 2>/dev/null)
is "$?" 255 "exec into a missing container exits 255"
like "$(cat "$TEST_TMP/status-fd")" '^error ' "... and --status-fd says error"

# ---- exec requests on monitor.sock: the monitor forks the command itself ----
mx() { $CTL "$(RUN c1)/monitor.sock" exec --proto "$TEST_TMP/proto" "$@"; }
OUT=$(mx -- --uid 1000 --gid 1000 --cwd /tmp --env FOO=bar -- sh -c 'echo "$(id -u):$(id -g):$(pwd):$FOO:$HOME:$$"; echo "a b%c"; exit 3' 2>&1)
is "$?" 3 "monitor exec: the command's exit status in \"exit 3\""
is "$OUT" "1000:1000:/tmp:bar:/:$(echo "$OUT" | head -n 1 | cut -d: -f6)
a b%c" "... --uid --gid --cwd --env, and arguments with spaces and %"
like "$(echo "$OUT" | head -n 1 | cut -d: -f6)" '^[0-9]{1,2}$' "... it runs in the container's pid namespace (a small PID)"
like "$(tr '\n' ' ' <"$TEST_TMP/proto")" '^started [0-9]+ exit 3 $' "... the monitor says started HOSTPID, then exit 3"
OUT=$(mx -- -- nosuch-command 2>&1)
is "$?" 127 "monitor exec of a missing command exits 127"
like "$OUT" 'nosuch-command: command not found' "... with the reason on the command's stderr"
like "$(head -n 1 "$TEST_TMP/proto")" '^failed nosuch-command: command not found$' "... and \"failed\" on the connection"
mx -- --cwd /no/such/dir -- true 2>/dev/null
is "$?" 255 "monitor exec into a missing --cwd exits 255 (setup failure)"
OUT=$(mx --signal-after 0.3 -- -- sleep 30 2>&1)
is "$?" 143 "\"signal 15\" on the connection ends the command: exit 143"
mx --nfds 1 -- -- true
like "$(cat "$TEST_TMP/proto")" '^error ' "an exec request without three fds is refused"
mx --raw 'x%zz'
like "$(cat "$TEST_TMP/proto")" '^error ' "a malformed escape is refused"
mx -- --bogus -- true
like "$(cat "$TEST_TMP/proto")" '^error ' "an unknown option is refused"
# the client may leave: the command runs on, and is reaped
mx --leave -- -- sh -c 'sleep 0.3; echo left >/tmp/left' </dev/null >/dev/null 2>&1
sleep 0.8
xc c1 cat /tmp/left
is "$OUT" left "a command whose client left runs to its end"
is "$(ps -o stat= --ppid "$MPID" | grep -c Z)" 0 "... and the monitor reaped it (no zombie)"
mx -- -- sh -c 'sleep 30' </dev/null >/dev/null 2>&1 &
mxpid=$!
for i in $(seq 50); do pgrep -P "$MPID" -x sleep >/dev/null && break; sleep 0.05; done
spid=$(pgrep -P "$MPID" -x sleep | head -n 1)
ok "the command is the monitor's child (no helper process)" test -n "$spid"
is "$(readlink "/proc/$spid/ns/pid")" "$(readlink "/proc/$IPID/ns/pid")" "... in init's pid namespace"
is "$(readlink "/proc/$spid/ns/mnt")" "$(readlink "/proc/$IPID/ns/mnt")" "... and mount namespace"
is "$(grep -v '^0::' "/proc/$spid/cgroup" | sort)" "$(grep -v '^0::' "/proc/$IPID/cgroup" | sort)" "... and init's cgroups"
is "$(grep -E '^Seccomp(_filters)?:' "/proc/$spid/status" | tr -s '\t ' ' ')" "Seccomp: 2
Seccomp_filters: 1" "... under one seccomp filter"
is "$(grep -c 'no compiled filter' "$(RUN c1)/monitor.log")" 0 "... the program init's child compiled (the monitor had one for its commands)"
kill -KILL "$spid"
wait "$mxpid"
is "$?" 137 "SIGKILL of the command comes back as exit 137"

xc c1 sh -c 'echo h > /proc/sysrq-trigger'
isnt_rc=$RC
[ "$isnt_rc" != 0 ] && pass "/proc/sysrq-trigger is not writable" || fail "/proc/sysrq-trigger is not writable" "$OUT"
xc c1 cat /proc/mounts
MNT=$OUT
like "$MNT" '^proc /proc/sys proc ro,' "/proc/sys is read-only"
like "$MNT" '^proc /proc/sys/net proc rw,' "/proc/sys/net is writable"
like "$MNT" '^sysfs /sys sysfs ro,' "/sys is a read-only sysfs"
like "$MNT" '^cgroup2 /sys/fs/cgroup cgroup2 rw,' "/sys/fs/cgroup is a cgroup2 mount"
like "$MNT" '^devpts /dev/pts devpts ' "/dev/pts is devpts"
like "$MNT" '^[^ ]+ /dev/console devpts ' "/dev/console is a pty"
like "$MNT" '^tmpfs /dev/shm tmpfs ' "/dev/shm is a tmpfs"
xc c1 ls /sys/fs/cgroup/cgroup.procs
is "$RC" 0 "the container's cgroup tree is visible at /sys/fs/cgroup"
xc c1 sh -c 'mkdir /sys/fs/cgroup/sub && rmdir /sys/fs/cgroup/sub'
is "$RC" 0 "the unified cgroup is delegated (root inside can make sub-cgroups)"
xc c1 cat /proc/self/cgroup
like "$OUT" '^0::/$' "cgroup namespace: the container sees itself at /"
xc c1 ip link
is "$(printf '%s\n' "$OUT" | grep -cE '^[0-9]+: ')" 1 "network namespace has only lo"
like "$OUT" 'lo: <LOOPBACK,UP' "lo is up"
like "$(cat "$(RUN c1)/console.log")" 'rcS-done' "console.log has the init's output"
OUT=$($CTL "$(RUN c1)/monitor.sock" console --send '\necho con-$((6*7))\n' --expect 'con-42' --timeout 5)
like "$OUT" 'con-42' "console attach: a shell answers"
is "$($CTL "$(RUN c1)/monitor.sock" 'console-resize 100 40')" ok "console-resize"
is "$($CTL "$(RUN c1)/monitor.sock" bogus)" 'error unknown request "bogus"' "unknown request refused"

# freeze
is "$($CTL "$(RUN c1)/monitor.sock" freeze)" ok "freeze"
is "$(status c1)" "ok frozen $IPID" "status says frozen"
mx -- -- true </dev/null >/dev/null 2>&1
like "$(cat "$TEST_TMP/proto")" '^error the container is frozen' "an exec request while frozen is refused (its command would wait in the frozen cgroup)"
is "$($CTL "$(RUN c1)/monitor.sock" unfreeze)" ok "unfreeze"
is "$(status c1)" "ok running $IPID" "status says running again"

# a wait client that must survive a reboot
$CTL "$(RUN c1)/monitor.sock" wait --timeout 120 >"$TEST_TMP/wait.out" 2>&1 &
WAITER=$!
sleep 0.2

# reboot from inside: busybox reboot -> reboot(2) -> PID 1 killed by SIGHUP -> restart
xc c1 reboot
NPID=
for i in $(seq 150); do
	st=$(status c1)
	case $st in "ok running "*) NPID=${st#ok running } ;; esac
	[ -n "$NPID" ] && [ "$NPID" != "$IPID" ] && break
	sleep 0.1
done
[ -n "$NPID" ] && [ "$NPID" != "$IPID" ] && pass "reboot inside restarts with a new PID 1 ($IPID -> $NPID)" ||
	fail "reboot inside restarts with a new PID 1" "status: $st" "$(tail -8 "$(RUN c1)/monitor.log")" "console: $(tail -c 600 "$(RUN c1)/console.log")"
is "$(cat "$(RUN c1)/init.pid")" "$NPID" "init.pid rewritten at reboot"
kill -0 "$WAITER" 2>/dev/null && pass "wait client still connected after the reboot" ||
	fail "wait client still connected after the reboot" "$(cat "$TEST_TMP/wait.out")"
sleep 0.3
xc c1 id -u
is "$OUT" 0 "exec works after the reboot"
is "$(grep -E '^Seccomp(_filters)?:' "/proc/$NPID/status" | tr -s '\t ' ' ')" "Seccomp: 2
Seccomp_filters: 1" "the new PID 1 runs under one seccomp filter (the program kept from the first boot)"
mx -- -- sh -c 'sleep 30' </dev/null >/dev/null 2>&1 &
mxpid=$!
for i in $(seq 50); do pgrep -P "$MPID" -x sleep >/dev/null && break; sleep 0.05; done
spid=$(pgrep -P "$MPID" -x sleep | head -n 1)
is "$(grep -v '^0::' "/proc/$spid/cgroup" 2>&1 | sort)" "$(grep -v '^0::' "/proc/$NPID/cgroup" | sort)" "a command after the reboot joins the new init's cgroups"
kill -KILL "$spid" 2>/dev/null
wait "$mxpid"

# restart request
OUT=$($CTL "$(RUN c1)/monitor.sock" "restart 10" --timeout 30)
like "$OUT" '^ok restarted [0-9]+$' "restart request restarts"
IPID=$(cat "$(RUN c1)/init.pid")
is "$OUT" "ok restarted $IPID" "... with init.pid's PID"

# clean stop
t0=$(now_ms)
OUT=$($CTL "$(RUN c1)/monitor.sock" "stop 30" --timeout 60)
t1=$(now_ms)
is "$OUT" "ok stopped" "stop replies ok stopped"
diag "busybox clean stop (SIGUSR2 to busybox init, its rcK): $((t1 - t0)) ms"
wait "$WAITER"
is "$(cat "$TEST_TMP/wait.out")" "ok stopped poweroff" "wait client gets ok stopped poweroff"
wait_gone "$MPID" && pass "monitor exits after the stop" || fail "monitor exits after the stop"
kill -0 "$IPID" 2>/dev/null && fail "PID 1 gone after the stop" || pass "PID 1 gone after the stop"
is "$(cat "$(RUN c1)/stopped")" poweroff "RUNDIR/stopped says poweroff"
ok "socket and pid files removed" test ! -e "$(RUN c1)/monitor.sock" -a ! -e "$(RUN c1)/init.pid" -a ! -e "$(RUN c1)/monitor.pid"
is "$(count_cgroups_all)" 0 "no cgroup left after the stop"

# ---- an init that exits at once ----
new_container bad "$USERNS" "init=/bin/false"
ERR=$("$MON" start "$(RUN bad)" 2>&1)
is "$?" 1 "start of an init that exits at once fails"
like "$ERR" 'init exited with status 1' "... and says init exited"
ok "... nothing left: no socket" test ! -e "$(RUN bad)/monitor.sock"
like "$(cat "$(RUN bad)/stopped")" '^failed: ' "... RUNDIR/stopped says failed"
is "$(count_cgroups_all)" 0 "... no cgroup left"
new_container bad2 "$USERNS" "init=/nonexistent/init"
ERR=$("$MON" start "$(RUN bad2)" 2>&1)
is "$?" 1 "start of a missing init fails"
like "$ERR" '/nonexistent/init' "... and names it"
new_container bad3 "$USERNS" "colour=blue"
ERR=$("$MON" start "$(RUN bad3)" 2>&1)
is "$?" 1 "a spec with an unknown key is refused"
like "$ERR" 'unknown key "colour"' "... naming the key"

# ---- readiness: PID 1 started a process of its own; a failure after that is recorded ----
# The grace period is long here: start must answer well before it (readiness), and the
# init's exit 200 ms later, still inside it, must be recorded as a failed start.
new_container late "$USERNS" "start_grace_ms=3000" "init=/bin/sh" "init=-c" \
	"init=echo late-init-says-bye; sleep 0.2; exit 3"
t0=$(date +%s%N)
ERR=$("$MON" start "$(RUN late)" 2>&1)
rc=$?
t1=$(date +%s%N)
is "$rc" 0 "start of an init that forks at once answers ok" || diag "$ERR"
ok "... before the grace period is over ($(((t1 - t0) / 1000000)) ms < 2000)" \
	test $(((t1 - t0) / 1000000)) -lt 2000
LPID=$(cat "$(RUN late)/monitor.pid" 2>/dev/null)
wait_gone "$LPID" && pass "... the monitor ends when init exits" || fail "... the monitor ends when init exits"
like "$(cat "$(RUN late)/stopped" 2>/dev/null)" \
	'^failed: init exited with status 3 right after the start; console: .*late-init-says-bye' \
	"... RUNDIR/stopped records the failure with the console"
is "$(count_cgroups_all)" 0 "... no cgroup left"
# An init that never forks is ready once it lived start_grace_ms.
new_container lone "$USERNS" "start_grace_ms=300" "init=/bin/sleep" "init=1000"
t0=$(date +%s%N)
ERR=$(BERTH_TEST_EXEC_FORK=1 "$MON" start "$(RUN lone)" 2>&1)
rc=$?
t1=$(date +%s%N)
is "$rc" 0 "start of an init that never forks" || diag "$ERR"
ok "... answers after start_grace_ms ($(((t1 - t0) / 1000000)) ms >= 300)" \
	test $(((t1 - t0) / 1000000)) -ge 300
# this monitor forks each exec'd command (the path without a compiled seccomp filter, or
# with an AppArmor profile to apply) instead of sharing its memory with the child
OUT=$($CTL "$(RUN lone)/monitor.sock" exec --proto "$TEST_TMP/proto" -- --cwd /tmp -- sh -c 'echo "forked:$(pwd):$(ls /proc/self/fd | tr -d "\n")"; exit 5' </dev/null 2>&1)
is "$?:$OUT" "5:forked:/tmp:0123" "a forking monitor runs an exec request too (exit 5, cwd, fds 0-2)"
like "$(cat "$(RUN lone)/monitor.log")" 'exec: forking each command' "... and says it forks"
OUT=$($CTL "$(RUN lone)/monitor.sock" exec --proto "$TEST_TMP/proto" -- -- nosuch 2>&1)
is "$?" 127 "... a missing command exits 127"
c1log=$(cat "$(RUN c1)/monitor.log" 2>/dev/null)
like "$c1log" 'init ready' "c1's monitor.log is still there"
case $c1log in
*"forking each command (an AddressSanitizer build)"*)
	skip "... c1's monitor shared its memory with each exec'd command" "an ASan build forks" ;;
*) unlike "$c1log" 'exec: forking' "... c1's monitor shared its memory with each exec'd command (it never forked one)" ;;
esac
OUT=$($CTL "$(RUN lone)/monitor.sock" kill --timeout 30)
is "$OUT" "ok killed" "... and is killed"
sleep 0.2
is "$(count_cgroups_all)" 0 "... no cgroup left"

# ---- privileged ----
new_container priv "privileged=1"
ERR=$("$MON" start "$(RUN priv)" 2>&1)
is "$?" 0 "privileged start" || diag "$ERR"
PPID_=$(cat "$(RUN priv)/init.pid" 2>/dev/null)
is "$(stat -c %u "/proc/$PPID_" 2>/dev/null)" 0 "privileged PID 1 is host root"
like "$(cat "/proc/$PPID_/uid_map" 2>/dev/null)" '^ +0 +0 +4294967295$' "privileged: no user namespace"
xc priv id -u
is "$OUT" 0 "privileged exec works"
OUT=$($CTL "$(RUN priv)/monitor.sock" kill --timeout 30)
is "$OUT" "ok killed" "kill replies ok killed"
wait_gone "$PPID_" && pass "PID 1 gone after kill" || fail "PID 1 gone after kill"
sleep 0.2
is "$(cat "$(RUN priv)/stopped" 2>/dev/null)" killed "RUNDIR/stopped says killed"

# ---- limits ----
new_container lim "$USERNS" "limits_processes=100" "limits_memory=67108864" "limits_memory_swap=0"
ERR=$("$MON" start "$(RUN lim)" 2>&1)
is "$?" 0 "start with limits" || diag "$ERR"
LPID=$(cat "$(RUN lim)/init.pid" 2>/dev/null)
if [ -d /sys/fs/cgroup/pids ]; then PIDS=/sys/fs/cgroup/pids/$CGP/lim; MEMD=/sys/fs/cgroup/memory/$CGP/lim; else PIDS=/sys/fs/cgroup/$CGP/lim; MEMD=$PIDS; fi
is "$(cat "$PIDS/pids.max")" 100 "pids.max is 100"
xc lim sh -c 'i=0; while [ $i -lt 400 ]; do sleep 4 & i=$((i+1)); done 2>/dev/null; echo spawned'
cur=$(cat "$PIDS/pids.current")
[ "$cur" -le 100 ] && pass "fork bomb capped by pids.max (pids.current $cur)" || fail "fork bomb capped" "pids.current $cur"
is "$(timeout 5 sh -c 'echo alive')" alive "the host stays responsive"
# the bomb's sleeps end by themselves; until then nothing in the container can fork
for _ in $(seq 100); do [ "$(cat "$PIDS/pids.current")" -le 20 ] && break; sleep 0.1; done
xc lim sh -c 'x=$(head -c 200000000 /dev/zero | tr "\\0" a); echo survived'
[ "$RC" != 0 ] && pass "memory hog killed inside the container (exit $RC)" || fail "memory hog killed" "$OUT"
is "$(status lim)" "ok running $LPID" "the container survives its OOM kill"
if [ -f "$MEMD/memory.oom_control" ]; then
	like "$(cat "$MEMD/memory.oom_control")" 'oom_kill [1-9]' "the OOM kill was in the container's memory cgroup"
else
	like "$(cat "$MEMD/memory.events")" 'oom_kill [1-9]' "the OOM kill was in the container's memory cgroup"
fi

# ---- SIGKILL of the monitor ----
LMON=$(cat "$(RUN lim)/monitor.pid")
kill -KILL "$LMON"
wait_gone "$LPID" && pass "SIGKILL of the monitor kills PID 1" || fail "SIGKILL of the monitor kills PID 1"
sleep 0.3
find /sys/fs/cgroup/*/"$CGP"/lim /sys/fs/cgroup/"$CGP"/lim -depth -type d -exec rmdir {} + 2>/dev/null
is "$(count_cgroups_all)" 0 "its cgroups can be removed afterwards"

# ---- on-disk shift where idmapped mounts are not used ----
new_container shift "uid_map=0 200000 65536" "gid_map=0 200000 65536"
ERR=$(BERTH_MONITOR_NO_IDMAP=1 "$MON" start "$(RUN shift)" 2>&1)
is "$?" 0 "start with the on-disk shift" || diag "$ERR"
is "$(cat "$TEST_TMP/shift/berth-shift" 2>/dev/null)" "200000 200000 65536" "berth-shift records the bases"
is "$(stat -c %u:%g "$TEST_TMP/shift/rootfs/bin/busybox")" 200000:200000 "files are shifted on disk"
xc shift stat -c %u /bin/busybox
is "$OUT" 0 "... and owned by root inside"
is "$($CTL "$(RUN shift)/monitor.sock" "stop 0" --timeout 30)" "ok killed" "stop with timeout 0 kills"
sed -i 's/200000/300000/' "$(RUN shift)/spec"
ERR=$(BERTH_MONITOR_NO_IDMAP=1 "$MON" start "$(RUN shift)" 2>&1)
is "$?" 0 "restart with another map" || diag "$ERR"
is "$(stat -c %u "$TEST_TMP/shift/rootfs/bin/busybox")" 300000 "the tree is shifted from the recorded base"
$CTL "$(RUN shift)/monitor.sock" "stop 0" --timeout 30 >/dev/null

# ---- a rootfs on a shared mount, as anywhere systemd is PID 1 ("/" shared) ----
# The monitor's copy of the root must not join the host mount's peer group: pivot_root
# refuses a shared new root (EINVAL), and the container's /proc, /sys, /dev would show
# on the host. Both kinds of container, each on a shared bind mount of its own.
for c in shr "shp privileged=1"; do
	set -- $c
	new_container "$1" "${2:-$USERNS}" || bail_out "cannot unpack $IMAGE"
	mount --bind "$TEST_TMP/$1" "$TEST_TMP/$1" && mount --make-shared "$TEST_TMP/$1"
	ok "$1: its volume is a shared mount" grep -q " $TEST_TMP/$1 [^-]* shared:" /proc/self/mountinfo
	ERR=$("$MON" start "$(RUN "$1")" 2>&1)
	is "$?" 0 "$1: starts on a shared mount" || diag "$ERR"
	xc "$1" hostname
	is "$OUT" "rt-$1" "$1: exec in it answers"
	xc "$1" sh -c 'grep -c " /proc " /proc/self/mountinfo'
	is "$OUT" 1 "$1: its /proc is mounted inside"
	is "$(grep -c " $TEST_TMP/$1/rootfs/" /proc/self/mountinfo)" 0 "$1: none of its mounts shows here"
	$CTL "$(RUN "$1")/monitor.sock" "stop 0" --timeout 30 >/dev/null
	umount "$TEST_TMP/$1"
done

# ---- leaks ----
sleep 0.3
is "$(count_mounts)" "$MOUNTS0" "no mount left in the test's namespace"
is "$(count_cgroups_all)" 0 "no cgroup left below $CGP"
is "$(count_procs)" "$PROCS0" "no process left"
for f in /sys/fs/cgroup/*/"$CGP" /sys/fs/cgroup/"$CGP"; do [ -d "$f" ] && rmdir "$f"; done
is "$(count_cgroups)" "$CGROUPS0" "cgroup parents removed"
