#!/bin/bash
# tests/integration/t_exec.sh: exec and console through berthd (LXD-API.md §5, §6) with
# the stock lxc client and raw websockets: output, stderr, exit codes, stdin, a 10 MB
# stream both ways, --env/--cwd/--user, a pty (window size, exit code), signal
# forwarding, operation websocket secrets, detached exec, exec on a stopped instance,
# console attach and detach. berthd's fds, mounts, cgroups and container processes are
# counted before and after. TAP output.
if [ -z "${BERTH_IN_NETNS:-}" ] && [ "$(id -u)" = 0 ]; then
	T_EX_OUT=$(mktemp -d /tmp/berth-t-exec.XXXXXX)
	srcdir=${BERTH_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
	"$srcdir/images/build" busybox "$T_EX_OUT" >"$T_EX_OUT/fp" 2>"$T_EX_OUT/log" ||
		rm -f "$T_EX_OUT/fp"
	export T_EX_OUT
fi

. "$(dirname "$0")/lib.sh"
: "${BERTH_MONITOR:=$BERTH_BUILDDIR/berth-monitor}"
if [ "$(id -u)" = 0 ]; then
	[ -s "$T_EX_OUT/fp" ] || skip_all "the busybox image could not be built: $(tail -n 1 "$T_EX_OUT/log")"
	[ -x "$BERTH_MONITOR" ] || skip_all "no berth-monitor at $BERTH_MONITOR (build it first)"
	command -v lxc >/dev/null || skip_all "lxc not installed"
fi
BERTHD_ENV=(BERTH_MONITOR="$BERTH_MONITOR")
berth_test_init "$@"
# the image's directory goes with TEST_TMP (lib.sh's EXIT trap removes that one)
if [ -d "$T_EX_OUT" ]; then
	mv "$T_EX_OUT" "$TEST_TMP/image"
	T_EX_OUT=$TEST_TMP/image
fi
export PATH=$BERTH_BUILDDIR:$PATH
export LXD_CONF=$TEST_TMP/lxd-conf
mkdir -p "$LXD_CONF"
WSC=$(dirname "$0")/wsclient.py

mounts() { own_mounts; }
CGH=berth-$(printf '%s' "$BERTH_DIR" | sha256sum | cut -c1-8)
cgroups() { find /sys/fs/cgroup -maxdepth 3 -type d -name "$CGH" 2>/dev/null | wc -l; }
helpers() { pgrep -cf "^$BERTH_MONITOR exec $BERTH_DIR/" || true; }
state()
{
	api PUT "/1.0/instances/$2/state" "{\"action\":\"$1\"${3:+,$3}}"
	[ "$HTTP_STATUS" = 202 ] && wait_operation "$(jget 'j["operation"]')"
	return 0
}
opok() { [ "$(jget 'j["metadata"]["status"]')" = Success ]; }
# container processes: everything in the container's pids cgroup
ctprocs() { cat "$(find /sys/fs/cgroup/pids -maxdepth 3 -type d -path "*$CGH/default_c1" | head -n 1)/cgroup.procs" 2>/dev/null | wc -l; }

mounts0=$(mounts)
cgroups0=$(cgroups)
check "import the busybox image" berth image import "$T_EX_OUT/busybox.tar.gz" --alias busybox
api POST /1.0/instances '{"name":"c1","source":{"type":"image","alias":"busybox"},"config":{"environment.FROMCONF":"conf-value"}}'
wait_operation "$(jget 'j["operation"]')"
ok "create c1" opok

# ---- exec on a stopped instance ----
expect_error 400 "exec on a stopped instance is refused" POST /1.0/instances/c1/exec '{"command":["true"],"wait-for-websocket":true}'
like "$(jget 'j["error"]')" 'Instance "c1" is not running' "... Instance \"c1\" is not running"
run lxc remote add b "unix://$BERTH_SOCKET"
rc_ok "lxc remote add"
run lxc exec b:c1 -- true
ok "lxc exec on a stopped instance fails" test "$RC" -ne 0

state start c1
ok "start c1" opok
procs0=$(ctprocs)
fds0=$(daemon_fds) # after the start: berthd keeps a wait connection per container
diag "container processes at start: $procs0"

# ---- lxc exec, non-interactive ----
run lxc exec b:c1 -- echo hi
rc_ok "lxc exec -- echo hi exits 0"
is "$OUT" "hi" "... prints hi"
out=$(lxc exec b:c1 -- sh -c 'echo out; echo err >&2; exit 7' 2>"$TEST_TMP/err")
rc=$?
is "$rc" 7 "exit 7 comes back as lxc's exit status"
is "$out" "out" "... stdout separate"
is "$(cat "$TEST_TMP/err")" "err" "... stderr separate"
run lxc exec b:c1 -- /no/such/binary
is "$RC" 127 "a missing binary exits 127"
is "$(echo data | lxc exec b:c1 -- cat)" "data" "stdin is piped through (echo data | cat)"
is "$(lxc exec b:c1 -- sh -c 'echo "$#[$1][$2]"' x "" "a b")" "2[][a b]" \
	"an empty argument reaches the command (sh -c ... x \"\" \"a b\")"
head -c 10000000 /dev/urandom >"$TEST_TMP/big"
want=$(sha256sum <"$TEST_TMP/big" | cut -d' ' -f1)
t0=$(date +%s%N)
got=$(lxc exec b:c1 -- cat <"$TEST_TMP/big" | sha256sum | cut -d' ' -f1)
t1=$(date +%s%N)
is "$got" "$want" "10 MB through cat, both ways, intact"
diag "10 MB round trip: $(((t1 - t0) / 1000000)) ms"
got=$(lxc exec b:c1 -- sh -c 'head -c 3000000 /dev/zero' | wc -c)
is "$got" 3000000 "3 MB of output without input"
is "$(lxc exec b:c1 --env FOO=bar -- sh -c 'echo $FOO')" "bar" "--env FOO=bar"
is "$(lxc exec b:c1 -- sh -c 'echo $FROMCONF')" "conf-value" "environment.* config reaches the command"
is "$(lxc exec b:c1 -- sh -c 'echo $HOME:$USER:$LANG:$PATH')" "/root:root:C.UTF-8:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" "default environment"
is "$(lxc exec b:c1 --cwd /tmp -- pwd)" "/tmp" "--cwd /tmp"
is "$(lxc exec b:c1 --user 1000 --group 1000 -- id -u)" "1000" "--user 1000"
is "$(lxc exec b:c1 --user 1000 --group 1000 -- id -g)" "1000" "--group 1000"

# ---- the command is the monitor's child: no helper process ----
mpid=$(cat "$BERTH_DIR/run/default_c1/monitor.pid")
ipid=$(cat "$BERTH_DIR/run/default_c1/init.pid")
# sleep_of PARENT: the host PID of the `sleep 100` whose parent is PARENT (waits 5 s)
sleep_of()
{
	local i p
	for i in $(seq 100); do
		p=$(pgrep -P "$1" -f '^sleep 100$' | head -n 1)
		[ -n "$p" ] && { echo "$p"; return 0; }
		sleep 0.05
	done
	return 1
}

# ---- signal forwarding ----
lxc exec b:c1 -- sleep 100 </dev/null &
lpid=$!
spid=$(sleep_of "$mpid")
ok "exec: the command is a child of the container's monitor" test -n "$spid"
is "$(helpers)" 0 "... with no berth-monitor exec helper"
is "$(readlink "/proc/$spid/ns/pid" 2>/dev/null)" "$(readlink "/proc/$ipid/ns/pid")" "... in the container's pid namespace"
kill -TERM "$lpid"
wait "$lpid"
is "$?" 143 "SIGTERM to lxc exec kills the command: exit 143"

# long command lines: 60 kB in one monitor request; 3 x 40 kB is more than one request
# takes (256 KiB, escaped), so the helper runs it
long=$(head -c 60000 /dev/zero | tr '\0' 'x')
is "$(lxc exec b:c1 -- sh -c 'echo ${#1}' sh "$long")" 60000 "a 60 kB argument arrives whole"
long=$(head -c 40000 /dev/zero | tr '\0' '%')
is "$(lxc exec b:c1 -- sh -c 'echo $((${#1} + ${#2} + ${#3}))' sh "$long" "$long" "$long")" 120000 \
	"3 x 40 kB of arguments (the helper's path) arrive whole"

# ---- the helper, as used with monitors that predate exec requests ----
BERTHD_ENV+=(BERTH_TEST_EXEC_HELPER=1)
BERTHD_INHERIT_FD=47 # an fd berthd inherited: neither the helper nor the command gets it
daemon_restart
is "$(lxc exec b:c1 -- ls /proc/self/fd | sort -n | tr '\n' ' ')" "0 1 2 3 " "helper: the command has fds 0-2 only (ls's own 3), not berthd's inherited 47"
out=$(lxc exec b:c1 -- sh -c 'echo out; echo err >&2; exit 7' 2>"$TEST_TMP/err")
is "$?" 7 "helper: exit 7 comes back"
is "$out:$(cat "$TEST_TMP/err")" "out:err" "helper: stdout and stderr separate"
run lxc exec b:c1 -- /no/such/binary
is "$RC" 127 "helper: a missing binary exits 127"
is "$(echo data | lxc exec b:c1 -- cat)" "data" "helper: stdin is piped through"
lxc exec b:c1 -- sleep 100 </dev/null &
lpid=$!
for i in $(seq 100); do [ "$(helpers)" -ge 1 ] && break; sleep 0.05; done
is "$(helpers)" 1 "helper: one berth-monitor exec process runs the command"
sleep_of "$(pgrep -f "^$BERTH_MONITOR exec $BERTH_DIR/" | head -n 1)" >/dev/null
kill -TERM "$lpid"
wait "$lpid"
is "$?" 143 "helper: SIGTERM to lxc exec kills the command: exit 143"
unset 'BERTHD_ENV[${#BERTHD_ENV[@]}-1]'
daemon_restart
is "$(lxc exec b:c1 -- ls /proc/self/fd | sort -n | tr '\n' ' ')" "0 1 2 3 " "monitor: the command has fds 0-2 only, not berthd's inherited 47"
BERTHD_INHERIT_FD=
fds0=$(daemon_fds)

# a monitor from before exec requests (still running after an upgrade) answers
# `error unknown request`: berthd runs the command through the helper instead
rundir=$BERTH_DIR/run/default_c1
mv "$rundir/monitor.sock" "$rundir/monitor.sock.real"
$PY "$(dirname "$0")/old_monitor.py" "$rundir/monitor.sock" "$rundir/monitor.sock.real" >"$TEST_TMP/old.out" 2>&1 &
oldpid=$!
for i in $(seq 100); do grep -q ready "$TEST_TMP/old.out" 2>/dev/null && break; sleep 0.05; done
out=$(lxc exec b:c1 -- sh -c 'echo via-old; exit 6' 2>&1)
is "$?:$out" "6:via-old" "an older monitor refuses exec: the helper runs the command (output, exit 6)"
is "$(grep -c refused "$rundir/monitor.sock.refused" 2>/dev/null)" 1 "... after the monitor refused it once"
kill "$oldpid"
wait "$oldpid" 2>/dev/null
rm -f "$rundir/monitor.sock" "$rundir/monitor.sock.refused"
mv "$rundir/monitor.sock.real" "$rundir/monitor.sock"
is "$(lxc exec b:c1 -- echo back)" back "the real monitor again"

# ---- interactive (pty) ----
out=$($PY "$WSC" lxc-pty lxc exec b:c1 -- sh 2>&1)
rc=$?
is "$rc" 3 "interactive sh: exit 3 comes back"
like "$out" "hi-[0-9]+" "interactive sh: output of echo hi-\$\$"
like "$out" "size:40 120" "interactive sh: stty size after a window resize"
like "$out" "tty:yes" "interactive sh: stdin is a terminal"

# through a monitor, the window size also goes to it as a line (a VM's berth-vmmon
# needs it; the container's monitor ignores it): recorded by a proxy on the socket
mv "$rundir/monitor.sock" "$rundir/monitor.sock.real"
$PY "$(dirname "$0")/old_monitor.py" "$rundir/monitor.sock" "$rundir/monitor.sock.real" record \
	>"$TEST_TMP/rec.out" 2>&1 &
recpid=$!
for i in $(seq 100); do grep -q ready "$TEST_TMP/rec.out" 2>/dev/null && break; sleep 0.05; done
out=$($PY "$WSC" lxc-pty lxc exec b:c1 -- sh 2>&1)
is "$?" 3 "interactive sh through a recording proxy: exit 3"
like "$out" "size:40 120" "... stty size after the resize"
is "$(grep -c '^resize 120 40$' "$rundir/monitor.sock.lines" 2>/dev/null)" 1 \
	"... the window size went to the monitor as \"resize 120 40\""
kill "$recpid"
wait "$recpid" 2>/dev/null
rm -f "$rundir/monitor.sock" "$rundir/monitor.sock.lines"
mv "$rundir/monitor.sock.real" "$rundir/monitor.sock"

# a VM's berth-vmmon refuses an exec with LXD 5.0.2's message while the guest's agent
# is not up: berthd fails the exec with it instead of running a helper
mv "$rundir/monitor.sock" "$rundir/monitor.sock.real"
$PY "$(dirname "$0")/old_monitor.py" "$rundir/monitor.sock" "$rundir/monitor.sock.real" \
	vm-offline >"$TEST_TMP/off.out" 2>&1 &
offpid=$!
for i in $(seq 100); do grep -q ready "$TEST_TMP/off.out" 2>/dev/null && break; sleep 0.05; done
out=$(lxc exec b:c1 -- echo ran 2>&1)
is "$?" 1 "agent not running: lxc exec fails"
is "$out" "Error: LXD VM agent isn't currently running" "... with LXD's message, nothing run"
kill "$offpid"
wait "$offpid" 2>/dev/null
rm -f "$rundir/monitor.sock"
mv "$rundir/monitor.sock.real" "$rundir/monitor.sock"
is "$(lxc exec b:c1 -- echo back)" back "the real monitor again"

# the pty comes from the container's own devpts, owned by its root: a shell inside can
# name it and reopen it
out=$(berth exec -t c1 -- sh -c 'tty; stat -c "%u:%g:%a" "$(tty)"; echo reopen >"$(tty)" && echo reopened-ok; read x <"$(tty)" </dev/null; echo rc=$?' </dev/null 2>&1)
like "$out" "/dev/pts/[0-9]+" "berth exec -t: tty names /dev/pts/N"
like "$out" "0:5:620" "... owned by the container's root, group tty, mode 0620"
like "$out" "reopened-ok" "... the shell can reopen its tty by name"
unlike "$out" "not a tty|No such file|Permission denied" "... without errors"
ok "... and the pty is not the host's" test "$(berth exec -t c1 -- sh -c 'ls /dev/pts | grep -c "^[0-9]"' </dev/null | tr -d '\r')" -ge 1

# ---- raw websockets: secrets, fds, return ----
out=$($PY "$WSC" raw "$BERTH_SOCKET" 2>&1)
rc=$?
is "$rc" 0 "raw websocket checks (bad secret 403, second connect refused, unknown op 404, return, the command runs only once its websockets are connected and never without them)"
[ "$rc" = 0 ] || diag "$out"
is "$(pgrep -P "$(cat "$BERTH_DIR/run/default_c1/monitor.pid")" | wc -l)" 1 "... the monitor's only child left is PID 1 (no command left waiting)"

# ---- berth exec: direct stdio (stdio.socket) ----
# pipes, files and /dev/null go to the command as they are: nothing relayed
pipe_pair=$(berth exec c1 -- readlink /proc/self/fd/1 </dev/null | { read -r x; echo "$x $(readlink /proc/self/fd/0)"; })
like "$pipe_pair" '^pipe:\[[0-9]+\] pipe:\[[0-9]+\]$' "direct stdio: the command's stdout is a pipe ($pipe_pair)"
is "${pipe_pair% *}" "${pipe_pair#* }" "... our own pipe, not a relay"
berth exec c1 -- sh -c 'echo out; echo err >&2; exit 7' <"$TEST_TMP/big" >"$TEST_TMP/d.out" 2>"$TEST_TMP/d.err"
is "$?" 7 "direct stdio: exit 7 comes back"
is "$(cat "$TEST_TMP/d.out"):$(cat "$TEST_TMP/d.err")" "out:err" "... stdout and stderr into our files"
is "$(berth exec c1 -- cat <"$TEST_TMP/big" | sha256sum | cut -d' ' -f1)" "$want" "... 10 MB through cat from a file, intact"
is "$(echo data | berth exec c1 -- cat)" data "... stdin from a pipe"
is "$(echo data | berth exec -n c1 -- cat)" "" "... -n: stdin is /dev/null"
run berth exec c1 -- /no/such/binary
is "$RC" 127 "... a missing binary exits 127"
like "$ERR" "command not found" "... saying so on our stderr"
berth exec c1 -- sleep 100 </dev/null >/dev/null &
bpid=$!
spid=$(sleep_of "$mpid")
ok "... the command is the monitor's child" test -n "$spid"
is "$(readlink "/proc/$spid/fd/1")" /dev/null "... writing to our /dev/null"
kill -TERM "$bpid"
wait "$bpid"
is "$?" 143 "... SIGTERM to berth exec reaches the command (control websocket): exit 143"
relay=$(BERTH_EXEC_WEBSOCKETS=1 berth exec c1 -- readlink /proc/self/fd/1 </dev/null | { read -r x; echo "$x $(readlink /proc/self/fd/0)"; })
isnt "${relay% *}" "${relay#* }" "BERTH_EXEC_WEBSOCKETS=1: the output is relayed (another pipe)"
if command -v script >/dev/null; then
	out=$(script -qec "berth exec -T c1 -- readlink /proc/self/fd/1" /dev/null </dev/null | tr -d '\r')
	like "$out" '^pipe:' "a terminal is never handed over: berth exec -T on a tty relays (websockets)"
fi
out=$($PY "$WSC" stdio "$BERTH_SOCKET" 2>&1)
rc=$?
is "$rc" 0 "stdio.socket refuses a terminal, a bad secret, an unknown operation, missing fds, a started exec"
[ "$rc" = 0 ] || diag "$out"
is "$(helpers)" 0 "... no helper left"

# ---- detached exec ----
api POST /1.0/instances/c1/exec '{"command":["sh","-c","echo x > /tmp/detached; exit 5"]}'
is "$HTTP_STATUS" 202 "exec without wait-for-websocket: 202"
wait_operation "$(jget 'j["operation"]')"
is "$(jget 'j["metadata"]["metadata"]["return"]')" 5 "... metadata.return is 5"
is "$(lxc exec b:c1 -- cat /tmp/detached)" "x" "... the command ran"

# ---- what berthd keeps between execs: the expanded instance, and that it runs ----
run berth config set c1 environment.LATER=later-value
rc_ok "config set environment.LATER"
is "$(berth exec c1 -- sh -c 'echo $LATER')" "later-value" "a config change reaches the next exec"
run berth profile set default environment.FROMPROFILE=profile-value
rc_ok "profile set environment.FROMPROFILE"
is "$(berth exec c1 -- sh -c 'echo $FROMPROFILE')" "profile-value" "a profile change reaches the next exec"
run berth profile unset default environment.FROMPROFILE
rc_ok "profile unset environment.FROMPROFILE"
is "$(berth exec c1 -- sh -c 'echo ${FROMPROFILE:-unset}')" "unset" "... and so does its removal"
run berth pause c1
rc_ok "pause c1, right after an exec"
run timeout 10 berth exec c1 -- true
isnt "$RC" 0 "exec on a paused instance fails"
like "$ERR" 'Instance "c1" is frozen' "... Instance \"c1\" is frozen"
run berth start c1
rc_ok "start resumes c1"
is "$(berth exec c1 -- echo resumed)" "resumed" "exec works once resumed"
# frozen behind berthd's back (berthd still believes it runs): the monitor refuses, and
# berthd reports it instead of handing the command to a helper that would wait in the
# frozen cgroup
CTL="$PY $(dirname "$0")/monitorctl.py"
is "$($CTL "$BERTH_DIR/run/default_c1/monitor.sock" freeze)" ok "the monitor freezes c1 on its own"
run timeout 10 berth exec c1 -- true
isnt "$RC" 0 "exec into it fails, at once"
ok "... not after the timeout" test "$RC" -ne 124
like "$ERR" "Instance is frozen" "... Instance is frozen"
is "$(helpers)" 0 "... no helper started"
is "$($CTL "$BERTH_DIR/run/default_c1/monitor.sock" unfreeze)" ok "the monitor thaws c1"
is "$(berth exec c1 -- echo thawed)" "thawed" "exec works again"

# ---- console ----
run lxc console b:c1 --show-log
rc_ok "lxc console --show-log"
out=$($PY "$WSC" lxc-console lxc console b:c1 2>&1)
rc=$?
is "$rc" 0 "lxc console: attach, Enter, output, ctrl+a q detaches"
[ "$rc" = 0 ] || diag "$out"
api GET /1.0/instances/c1/state
is "$(jget 'j["metadata"]["status"]')" Running "the container keeps running after detaching"
expect_error 400 "console type vga is refused for containers" POST /1.0/instances/c1/console '{"type":"vga"}'

# ---- timings ----
t0=$(date +%s%N)
for i in 1 2 3 4 5 6 7 8 9 10; do lxc exec b:c1 -- true; done
t1=$(date +%s%N)
diag "lxc exec -- true: $(((t1 - t0) / 10000000)) ms each (10 runs)"
rundir=$BERTH_DIR/run/default_c1
t0=$(date +%s%N)
for i in 1 2 3 4 5 6 7 8 9 10; do "$BERTH_MONITOR" exec "$rundir" -- true; done
t1=$(date +%s%N)
diag "berth-monitor exec -- true: $(((t1 - t0) / 10000000)) ms each (10 runs)"

# ---- leaks ----
sleep 0.5
is "$(helpers)" 0 "no exec helper left"
is "$(ctprocs)" "$procs0" "no command left in the container"
check_no_fd_leak "$fds0" "no fd left in berthd"
state stop c1 '"force":true'
ok "stop c1" opok
expect_error 400 "exec right after a stop is refused" POST /1.0/instances/c1/exec '{"command":["true"],"wait-for-websocket":true}'
like "$(jget 'j["error"]')" "not running" "... Instance is not running"
api DELETE /1.0/instances/c1
wait_operation "$(jget 'j["operation"]')"
is "$(mounts)" "$mounts0" "no mount left"
is "$(cgroups)" "$cgroups0" "no cgroup left"
