#!/bin/bash
# tests/integration/t_cli_containers.sh: the berth verbs for running containers end to end,
# from the busybox image: launch; start, stop, restart, pause with several names and --all;
# exec (exit codes, stdin, separate stdout/stderr, --env/--cwd/--user/--group, signals,
# an interactive session on a pty with window resizes and the terminal put back); shell;
# console attach with ctrl+a q and --show-log; file push/pull/delete/edit/mkdir with -r,
# -p and modes; info NAME; errors for a missing instance and bad flags; --help. TAP.
#
# BERTH_TEST_SERVER=lxd runs the same checks against LXD 5.0.2 (lxd started in the test's
# own namespaces, a dir pool, no network) instead of berthd: the reference the CLI is
# written against. Default: berthd.
#
# Afterwards no process, mount or cgroup of the test's instances may be left.
if [ -z "${BERTH_IN_NETNS:-}" ] && [ "$(id -u)" = 0 ]; then
	T_CC_OUT=$(mktemp -d /tmp/berth-t-cc.XXXXXX)
	srcdir=${BERTH_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
	"$srcdir/images/build" busybox "$T_CC_OUT" >"$T_CC_OUT/fp" 2>"$T_CC_OUT/log" ||
		rm -f "$T_CC_OUT/fp"
	export T_CC_OUT
fi

. "$(dirname "$0")/lib.sh"
[ -n "${BERTH_IN_NETNS:-}" ] && trap 'rm -rf "$T_CC_OUT"' EXIT
SERVER=${BERTH_TEST_SERVER:-berthd}
case $SERVER in berthd | lxd) ;; *) bail_out "BERTH_TEST_SERVER must be berthd or lxd" ;; esac

if [ "$(id -u)" = 0 ] && [ -n "${BERTH_IN_NETNS:-}" ]; then
	[ -s "$T_CC_OUT/fp" ] || skip_all "the busybox image could not be built: $(tail -n 1 "$T_CC_OUT/log")"
	if [ "$SERVER" = lxd ]; then
		command -v lxd >/dev/null || skip_all "lxd not installed"
	fi
fi

# What the test's instances leave behind: their processes (by root directory or command
# line under the test's temp dir), mounts under it, cgroups named after them.
leak_procs()
{
	local p n=0
	for p in /proc/[0-9]*; do
		case "$(readlink "$p/root" 2>/dev/null) $({ tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null)" in
		*"$TEST_TMP/"*) n=$((n + 1)) ;;
		esac
	done
	echo "$n"
}
leak_mounts() { grep -cF " $TEST_TMP/" /proc/self/mountinfo; }
# (berthd's are under berth-HASH, named after this test's BERTH_DIR; LXD's carry the name)
leak_cgroups()
{
	local under='*'
	[ "$SERVER" = berthd ] && under="*/berth-$(printf '%s' "$BERTH_DIR" | sha256sum | cut -c1-8)/*"
	find /sys/fs/cgroup -mindepth 1 -maxdepth 4 -type d -path "$under" -name '*tcc-*' 2>/dev/null | wc -l
}

LXD_PID=
lxd_start()
{
	export LXD_DIR=$BERTH_DIR LXD_CONF=$TEST_TMP/lxc-conf
	mkdir -p "$LXD_CONF"
	# the containers' mapped root must reach their rootfs under the 0700 mktemp dir
	chmod 0711 "$TEST_TMP" "$LXD_DIR"
	(
		for fd in /proc/$BASHPID/fd/*; do
			fd=${fd##*/}
			[ "$fd" -gt 2 ] && eval "exec $fd>&-"
		done
		exec lxd --group root --logfile "$TEST_TMP/lxd.log"
	) </dev/null >>"$DAEMON_LOG" 2>&1 &
	LXD_PID=$!
	lxd waitready --timeout 60 >>"$DAEMON_LOG" 2>&1 || bail_out "lxd did not start"
	lxd init --preseed >>"$DAEMON_LOG" 2>&1 <<-'EOF' || bail_out "lxd init failed"
	storage_pools:
	- name: default
	  driver: dir
	profiles:
	- name: default
	  devices:
	    root:
	      path: /
	      pool: default
	      type: disk
	EOF
}

lxd_stop()
{
	[ -n "$LXD_PID" ] || return 0
	timeout 60 lxd shutdown >>"$DAEMON_LOG" 2>&1
	kill -TERM "$LXD_PID" 2>/dev/null
	local i
	for i in $(seq 100); do
		kill -0 "$LXD_PID" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$LXD_PID" 2>/dev/null
	wait "$LXD_PID" 2>/dev/null
	LXD_PID=
}

if [ "$SERVER" = lxd ]; then
	# lib.sh's berth_test_init, with lxd in place of berthd
	_enter_namespaces "$@"
	TEST_TMP=$(mktemp -d /tmp/berth-test.XXXXXX)
	BERTH_DIR=$TEST_TMP/state
	BERTH_SOCKET=$BERTH_DIR/unix.socket
	DAEMON_LOG=$TEST_TMP/lxd.out
	export BERTH_DIR BERTH_SOCKET
	mkdir -p "$BERTH_DIR"
	trap _berth_test_exit EXIT
	trap 'exit 1' INT TERM
	procs0=$(leak_procs) mounts0=$(leak_mounts) cgroups0=$(leak_cgroups)
	lxd_start
else
	berth_test_init "$@"
	procs0=$(leak_procs) mounts0=$(leak_mounts) cgroups0=$(leak_cgroups)
fi
B=$BERTH
diag "server: $SERVER"

cc_cleanup()
{
	"$B" stop --all --force >/dev/null 2>&1
	for c in tcc-a tcc-b tcc-c; do "$B" delete "$c" >/dev/null 2>&1; done
	if [ "$SERVER" = lxd ]; then lxd_stop; else daemon_stop; fi
	local i
	for i in $(seq 50); do
		[ "$(leak_procs)" -le "$procs0" ] && [ "$(leak_cgroups)" -le "$cgroups0" ] && break
		sleep 0.1
	done
	is "$(leak_procs)" "$procs0" "no instance process is left"
	is "$(leak_mounts)" "$mounts0" "no mount under the test's directory is left"
	is "$(leak_cgroups)" "$cgroups0" "no cgroup of the test's instances is left"
	grep -F " $TEST_TMP/" /proc/self/mountinfo | awk '{print $5}' | sort -r |
		while read -r m; do umount -l "$m"; done
	rm -rf "$T_CC_OUT"
	_berth_test_exit
}
trap cc_cleanup EXIT

# has DESC PATTERN: the last run's stdout+stderr contains PATTERN (fixed string).
has()
{
	if printf '%s\n%s' "$OUT" "$ERR" | grep -qF -- "$2"; then
		pass "$1"
	else
		fail "$1" "exit $RC" "stdout: $OUT" "stderr: $ERR" "want: $2"
	fi
}
# refused DESC PATTERN ARGS: berth ARGS exits non-zero with PATTERN on stderr.
refused()
{
	local d=$1 pat=$2
	shift 2
	run "$B" "$@"
	if [ "$RC" = 0 ]; then
		fail "$d (succeeded)" "stdout: $OUT"
	elif printf '%s' "$ERR" | grep -qiE -- "$pat"; then
		pass "$d"
	else
		fail "$d (wrong message)" "stderr: $ERR" "want: $pat"
	fi
}
status_of() { api GET "/1.0/instances/$1" && jget 'j["metadata"]["status"]'; }
pid_of() { api GET "/1.0/instances/$1/state" && jget 'j["metadata"]["pid"]'; }
# statuses NAMES...: "Running Stopped ..."
statuses() { local c s=""; for c in "$@"; do s="$s $(status_of "$c")"; done; echo "${s# }"; }

# pty.py ROWS COLS SCRIPT CMD...: runs CMD on a new pty of that size. SCRIPT is a list of
# steps separated by ';;': "w:TEXT" types TEXT (\r, \x01 escapes), "e:TEXT" waits (10 s)
# until TEXT was output, "s:R,C" resizes the pty and sends SIGWINCH, "z:SECONDS" sleeps.
# Prints the output, then "EXIT <status>" (or "EXIT hung" after 20 s).
cat >"$TEST_TMP/drive_pty.py" <<'EOF'
import fcntl, os, pty, select, signal, struct, sys, termios, time
rows, cols, script, argv = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4:]
pid, fd = pty.fork()
if pid == 0:
    fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack('HHHH', rows, cols, 0, 0))
    os.execv(argv[0], argv)
fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack('HHHH', rows, cols, 0, 0))
out = b''
def pump(t, until=None):
    global out
    end = time.time() + t
    while time.time() < end:
        if until is not None and until in out:
            return True
        r, _, _ = select.select([fd], [], [], 0.05)
        if r:
            try:
                d = os.read(fd, 65536)
            except OSError:
                return until is None
            if not d:
                return until is None
            out += d
    return until is None
for step in script.split(';;'):
    kind, arg = step[0], step[2:].encode().decode('unicode_escape').encode('latin-1')
    if kind == 'w':
        os.write(fd, arg)
    elif kind == 'e':
        if not pump(10, arg):
            out += b'\n[timed out waiting for ' + arg + b']\n'
    elif kind == 's':
        r, c = arg.decode().split(',')
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack('HHHH', int(r), int(c), 0, 0))
        os.kill(pid, signal.SIGWINCH)
    elif kind == 'z':
        pump(float(arg))
status = None
end = time.time() + 20
while time.time() < end:
    pump(0.1)
    p, st = os.waitpid(pid, os.WNOHANG)
    if p:
        status = os.waitstatus_to_exitcode(st)
        break
pump(0.2)
sys.stdout.write(out.decode(errors='replace').replace('\r', ''))
if status is None:
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    print('\nEXIT hung')
else:
    print('\nEXIT %d' % status)
EOF
on_pty() { run "$PY" "$TEST_TMP/drive_pty.py" "$@"; }

# ---- launch ----
run "$B" image import "$T_CC_OUT/busybox.tar.gz" --alias busybox
rc_ok "import the busybox image"
run "$B" launch busybox tcc-a
rc_ok "berth launch busybox tcc-a"
has "... says it creates and starts it" "Starting tcc-a"
is "$(status_of tcc-a)" Running "tcc-a is running"
run "$B" init busybox tcc-b
rc_ok "berth init busybox tcc-b"
run "$B" launch busybox tcc-c
rc_ok "berth launch busybox tcc-c"
is "$(statuses tcc-a tcc-b tcc-c)" "Running Stopped Running" "launch started, init did not"
refused "launch of a missing image fails" "." launch no-such-image tcc-x
api GET /1.0/instances/tcc-x
is "$HTTP_STATUS" 404 "... and leaves no instance"

# ---- start, stop, restart, pause ----
run "$B" stop --force tcc-a tcc-c
rc_ok "stop --force with two names"
is "$(statuses tcc-a tcc-c)" "Stopped Stopped" "... both are stopped"
run "$B" start tcc-a tcc-b tcc-c
rc_ok "start with three names"
is "$(statuses tcc-a tcc-b tcc-c)" "Running Running Running" "... all three run"
run "$B" pause tcc-a tcc-b
rc_ok "pause with two names"
is "$(statuses tcc-a tcc-b tcc-c)" "Frozen Frozen Running" "... both are frozen"
run "$B" start tcc-a tcc-b
rc_ok "start resumes frozen instances"
is "$(statuses tcc-a tcc-b)" "Running Running" "... both run again"
pid_a=$(pid_of tcc-a)
run "$B" restart --force tcc-a tcc-b
rc_ok "restart --force with two names"
is "$(statuses tcc-a tcc-b)" "Running Running" "... both run"
pid_a2=$(pid_of tcc-a)
if [ -n "$pid_a2" ] && [ "$pid_a2" != "$pid_a" ] && [ "$pid_a2" -gt 0 ]; then
	pass "... with a new init (pid $pid_a -> $pid_a2)"
else
	fail "... with a new init" "pid before $pid_a, after $pid_a2"
fi
run "$B" restart --timeout 10 tcc-c
rc_ok "restart --timeout 10 (a clean shutdown)"
run "$B" stop --force tcc-c no-such-instance
is "$RC" 1 "stop of an existing and a missing instance exits 1"
has "... naming the missing one" "no-such-instance:"
has "... and saying some failed" "Some instances failed to stop"
is "$(status_of tcc-c)" Stopped "... the existing one still stopped"
run "$B" start tcc-a
is "$RC" 1 "start of a running instance exits 1"
like "$ERR" "^Error: " "... with an error message"
like "$ERR" "tcc-a" "... naming the instance"
refused "delete of a running instance" \
	'The instance "?tcc-a"? is currently running, stop it first or (use|pass) --force' delete tcc-a
is "$(status_of tcc-a)" Running "... which still runs"
run "$B" stop --all --force
rc_ok "stop --all --force"
is "$(statuses tcc-a tcc-b tcc-c)" "Stopped Stopped Stopped" "... stops every instance"
run "$B" start --all
rc_ok "start --all"
is "$(statuses tcc-a tcc-b tcc-c)" "Running Running Running" "... starts every instance"
refused "--all and a name together" "both --all" stop --all tcc-a
refused "stop without a name" "missing arguments" stop
refused "a bad --timeout" "invalid argument \"x\" for \"--timeout\"" stop --timeout x tcc-a
refused "an unknown flag" "unknown flag: --bogus" start --bogus tcc-a

# ---- exec ----
run "$B" exec tcc-a -- true
is "$RC" 0 "exec true exits 0"
run "$B" exec tcc-a -- sh -c 'exit 7'
is "$RC" 7 "exec sh -c 'exit 7' exits 7"
run "$B" exec tcc-a -- no-such-command
is "$RC" 127 "exec of a missing binary exits 127"
like "$ERR" "[Nn]ot found" "... saying it was not found"
run "$B" exec tcc-a -- sh -c 'echo to-out; echo to-err >&2'
is "$OUT" to-out "stdout comes on stdout only"
is "$ERR" to-err "stderr comes on stderr only"
out=$(printf 'line1\nline2\n' | "$B" exec tcc-a -- cat)
is "$out" "line1
line2" "piped stdin reaches the command, EOF ends it"
head -c 3000000 /dev/urandom >"$TEST_TMP/big"
sum_local=$(md5sum <"$TEST_TMP/big" | cut -d' ' -f1)
sum_remote=$("$B" exec tcc-a -- md5sum <"$TEST_TMP/big" | cut -d' ' -f1)
is "$sum_remote" "$sum_local" "3 MB of stdin arrive intact"
n=$("$B" exec tcc-a -- sh -c 'head -c 2000000 /dev/zero' </dev/null | wc -c)
is "$n" 2000000 "2 MB of stdout arrive intact"
run "$B" exec tcc-a --env A=1 --env B=x,y -- sh -c 'echo "$A|$B"'
is "$OUT" "1|x,y" "--env sets variables (a value may hold commas)"
run "$B" exec tcc-a --cwd /tmp -- pwd
is "$OUT" /tmp "--cwd sets the directory"
run "$B" exec tcc-a --user 1000 --group 1001 -- sh -c 'echo $(id -u):$(id -g)'
is "$OUT" "1000:1001" "--user and --group set the ids"
run "$B" exec tcc-a -- sh -c 'echo $(id -u) $PWD $HOME'
is "$OUT" "0 /root /root" "the defaults are root in /root"
run "$B" exec -n tcc-a -- cat
is "$RC.$OUT" "0." "-n gives the command an empty stdin"
"$B" exec tcc-a -- sh -c 'trap "echo got-usr1; exit 5" USR1; echo ready; while :; do sleep 0.1; done' \
	</dev/null >"$TEST_TMP/sig.out" 2>&1 &
sig_pid=$!
for i in $(seq 100); do grep -q ready "$TEST_TMP/sig.out" && break; sleep 0.1; done
kill -USR1 "$sig_pid"
wait "$sig_pid"
is "$?" 5 "SIGUSR1 sent to berth reaches the command (its exit status 5)"
like "$(cat "$TEST_TMP/sig.out")" got-usr1 "... which saw the signal"
"$B" exec tcc-a -- sleep 60 </dev/null >/dev/null 2>&1 &
sig_pid=$!
sleep 1
kill -TERM "$sig_pid"
wait "$sig_pid"
is "$?" 143 "SIGTERM to berth ends the command with it (exit 143)"

# interactive: a shell on a pty; stty size shows the window, resizes follow
on_pty 30 100 'e:# ;;w:stty size\r;;e:30 100;;s:40,120;;z:0.5;;w:stty size; echo hi-$$; exit 3\r;;e:hi-' \
	"$B" exec tcc-a -- sh
like "$OUT" "hi-[0-9]+" "interactive exec runs the typed commands"
like "$OUT" "30 100" "... the pty has the terminal's size"
like "$OUT" "40 120" "... and follows a resize (SIGWINCH)"
like "$OUT" "EXIT 3\$" "... and berth exits with the shell's status 3"
# the terminal is put back: stty after berth shows canonical mode again
on_pty 24 80 'e:# ;;w:exit 0\r;;e:after:' /bin/sh -c "\"$B\" exec tcc-a -- sh; echo after: \$(stty -a | grep -o -- '-*icanon')"
like "$OUT" "after: icanon" "the local terminal is back in canonical mode afterwards"
on_pty 24 80 'w:exit 4\r' "$B" exec -T tcc-a -- sh
like "$OUT" "EXIT 4\$" "-T on a terminal: non-interactive, stdin still forwarded"
run "$B" exec -t tcc-a -- sh -c 'test -t 0 && test -t 1 && echo tty'
like "$OUT" "^tty" "-t gives a pty without a local terminal"
refused "-t with -T" "-t and -T" exec -t -T tcc-a -- true
refused "a bad --mode" "Invalid --mode" exec --mode weird tcc-a -- true
refused "exec without a command" "missing arguments" exec tcc-a
refused "a bad --user" "invalid argument" exec --user abc tcc-a -- true

# ---- shell ----
on_pty 24 80 'w:echo sh-$0-$HOME; exit 4\r;;e:sh-' "$B" shell tcc-a
like "$OUT" "sh--[a-z]*sh-/root" "berth shell opens a login shell as root"
like "$OUT" "EXIT 4\$" "... with the shell's exit status"
run "$B" shell --help
has "shell --help says what it runs" "su -l"

# ---- console ----
on_pty 24 80 'e:To detach;;z:0.5;;w:\r;;z:0.5;;w:echo con-$((6*7))\r;;e:con-42;;w:\x01q' \
	"$B" console tcc-a
like "$OUT" "con-42" "console attach: typed commands run on the console"
like "$OUT" "EXIT 0\$" "... ctrl+a q detaches, exit 0"
run "$B" console tcc-a --show-log
rc_ok "console --show-log"
has "... prints the log with what was typed" "con-42"
refused "console with an unknown flag" "unknown flag" console tcc-a --bogus

# ---- files ----
W=$TEST_TMP/files
mkdir -p "$W/src/sub" "$W/out"
echo hello >"$W/src/a.txt"
chmod 0600 "$W/src/a.txt"
echo deep >"$W/src/sub/b.txt"
ln -s a.txt "$W/src/link"
run "$B" file push "$W/src/a.txt" tcc-a/tmp/a.txt
rc_ok "file push"
run "$B" exec tcc-a -- stat -c '%a %u %g %s' /tmp/a.txt
is "$OUT" "600 0 0 6" "... keeps the local mode, size 6"
run "$B" file push --mode 0640 --uid 1000 --gid 1001 "$W/src/a.txt" tcc-a/tmp/a2.txt
rc_ok "file push --mode --uid --gid"
run "$B" exec tcc-a -- stat -c '%a %u %g' /tmp/a2.txt
is "$OUT" "640 1000 1001" "... applies them"
run "$B" file push "$W/src/a.txt" "$W/src/sub/b.txt" tcc-a/tmp/
rc_ok "file push of two files into a directory"
run "$B" exec tcc-a -- cat /tmp/a.txt /tmp/b.txt
is "$OUT" "hello
deep" "... both arrive under their names"
run "$B" file push "$TEST_TMP/big" tcc-a/root/big
rc_ok "file push of 3 MB"
run "$B" exec tcc-a -- md5sum /root/big
is "${OUT%% *}" "$sum_local" "... arrives intact"
run "$B" file push -r "$W/src" tcc-a/tmp/
rc_ok "file push -r"
run "$B" exec tcc-a -- sh -c 'cat /tmp/src/sub/b.txt; readlink /tmp/src/link; stat -c %a /tmp/src/a.txt'
is "$OUT" "deep
a.txt
600" "... copies the tree, the symlink as a symlink, the modes"
refused "file push of a directory without -r" "directory" file push "$W/src" tcc-a/tmp/x
refused "file push into a missing directory" "." file push "$W/src/a.txt" tcc-a/tmp/no/such/a.txt
run "$B" file push -p "$W/src/a.txt" tcc-a/tmp/no/such/a.txt
rc_ok "file push -p creates the parents"
run "$B" exec tcc-a -- stat -c %a /tmp/no/such
is "$OUT" 755 "... with mode 755"
refused "file push --mode 999" "invalid argument" file push --mode 999 "$W/src/a.txt" tcc-a/tmp/m
refused "file push to a path without an instance" "Invalid target" file push "$W/src/a.txt" /tmp/x

run "$B" file pull tcc-a/root/big "$W/out/big"
rc_ok "file pull of 3 MB"
is "$(md5sum <"$W/out/big" | cut -d' ' -f1)" "$sum_local" "... arrives intact"
run "$B" file pull tcc-a/tmp/a.txt "$W/out/"
rc_ok "file pull into a directory"
is "$(stat -c '%a %s' "$W/out/a.txt")" "600 6" "... keeps the name and the mode"
run "$B" file pull tcc-a/tmp/a.txt -
is "$OUT" hello "file pull to - writes stdout"
run "$B" file pull -r tcc-a/tmp/src "$W/out"
rc_ok "file pull -r"
is "$(cat "$W/out/src/sub/b.txt") $(readlink "$W/out/src/link")" "deep /tmp/src/a.txt" \
	"... copies the tree, the symlink as one (LXD gives its absolute target)"
refused "file pull of a directory without -r" "directory" file pull tcc-a/tmp/src "$W/out/x"
run "$B" file pull -p tcc-a/tmp/a.txt "$W/out/new/dir/"
rc_ok "file pull -p creates the local directories"
[ -f "$W/out/new/dir/a.txt" ] && pass "... and the file is there" || fail "... and the file is there"
before=$(ls -A "$W/out" | wc -l)
refused "file pull of a missing file" "not found" file pull tcc-a/tmp/nope "$W/out/nope"
is "$(ls -A "$W/out" | wc -l)" "$before" "... leaves nothing behind (no temporary file)"

run "$B" file mkdir tcc-a/tmp/d1
rc_ok "file mkdir"
run "$B" file mkdir -p --mode 0700 tcc-a/tmp/d2/x/y
rc_ok "file mkdir -p --mode 0700"
run "$B" exec tcc-a -- stat -c '%a %F' /tmp/d1 /tmp/d2/x/y
is "$OUT" "755 directory
700 directory" "... makes directories with those modes"
refused "file mkdir without -p under a missing parent" "." file mkdir tcc-a/tmp/q/r

printf 'replaced\n' >"$TEST_TMP/in"
run_in() { "$B" "$@" <"$TEST_TMP/in" >"$TEST_TMP/out" 2>"$TEST_TMP/err"; RC=$?; OUT=$(cat "$TEST_TMP/out"); ERR=$(cat "$TEST_TMP/err"); }
run_in file edit tcc-a/tmp/a2.txt
rc_ok "file edit from stdin"
run "$B" exec tcc-a -- sh -c 'cat /tmp/a2.txt; stat -c "%a %u" /tmp/a2.txt'
is "$OUT" "replaced
640 1000" "... replaces the content, keeps mode and owner"
printf '#!/bin/sh\necho edited-line >>"$1"\n' >"$TEST_TMP/ed.sh"
chmod +x "$TEST_TMP/ed.sh"
printf -v cmd '%q ' env EDITOR="$TEST_TMP/ed.sh" VISUAL= "$B" file edit tcc-a/tmp/a2.txt
script -qec "$cmd" /dev/null </dev/null >"$TEST_TMP/out" 2>&1
is "$?" 0 "file edit with \$EDITOR on a terminal"
run "$B" exec tcc-a -- cat /tmp/a2.txt
is "$OUT" "replaced
edited-line" "... pushes back what the editor wrote"

run "$B" file delete tcc-a/tmp/a.txt tcc-a/tmp/d1
rc_ok "file delete of a file and a directory"
run "$B" exec tcc-a -- sh -c 'ls /tmp/a.txt /tmp/d1 2>&1 | wc -l; test -e /tmp/a.txt || test -e /tmp/d1 || echo gone'
like "$OUT" gone "... both are gone"
refused "file delete of a missing file" "not found" file delete tcc-a/tmp/nope
refused "an unknown file sub-command" "unknown command" file frob

# ---- info ----
run "$B" snapshot tcc-a snap0
rc_ok "snapshot for info"
run "$B" info tcc-a
rc_ok "info tcc-a"
like "$OUT" "^Name: tcc-a" "... Name"
like "$OUT" "Status: RUNNING" "... Status"
like "$OUT" "PID: [1-9][0-9]*" "... PID"
like "$OUT" "Processes: [1-9][0-9]*" "... Processes"
like "$OUT" "Memory \\(current\\): [0-9.]+[KMG]?i?B" "... memory usage"
like "$OUT" "CPU usage \\(in seconds\\): [0-9]+" "... CPU usage"
like "$OUT" "snap0" "... the snapshot"
run "$B" stop --force tcc-b
run "$B" info tcc-b
like "$OUT" "Status: STOPPED" "info of a stopped instance: STOPPED"
unlike "$OUT" "PID:" "... and no PID"

# ---- a missing instance, everywhere: the error names it ----
missing='no-such-instance.*not found|not found.*no-such-instance'
for v in "start" "stop" "restart" "pause" "info" "console" "console --show-log" "delete" \
	"snapshot" "config show" "config set" "rename"; do
	case $v in
	"config set") args="user.x=1" ;;
	rename) args="other-name" ;;
	*) args="" ;;
	esac
	# shellcheck disable=SC2086
	refused "$v of a missing instance" "$missing" $v no-such-instance $args
done
refused "exec in a missing instance" "$missing" exec no-such-instance -- true
refused "file pull from a missing instance" "$missing" file pull no-such-instance/etc/hosts "$W/out/h"
refused "file push to a missing instance" "$missing" file push "$W/src/a.txt" no-such-instance/tmp/a
refused "copy of a missing instance" "$missing" copy no-such-instance other-name
refused "restore of a missing snapshot" 'nosnap.*not found|not found.*nosnap' restore tcc-a nosnap
refused "delete of a missing snapshot" 'nosnap.*not found|not found.*nosnap' delete tcc-a/nosnap

# ---- images that are not there ----
refused "launch of a missing image" 'nosuchimage.*not found|not found.*nosuchimage' \
	launch nosuchimage tcc-x1
refused "launch from an unknown remote" 'remote "images" (doesn.t exist|is unknown|not found)' \
	launch images:debian/12 tcc-x2
refused "init of a missing image" 'nosuchimage.*not found|not found.*nosuchimage' \
	init nosuchimage tcc-x3
run "$B" list -c n -f csv
unlike "$OUT" "tcc-x" "... none of them left an instance"
run "$B" init local:busybox tcc-x4
rc_ok "init local:busybox (the local remote named)"
run "$B" delete tcc-x4
rc_ok "... and delete it"

# ---- --help ----
for v in start stop restart pause launch exec shell console info "file push" "file pull" \
	"file delete" "file edit" "file mkdir"; do
	# shellcheck disable=SC2086
	run "$B" $v --help
	if [ "$RC" = 0 ] && printf '%s' "$OUT" | grep -q "^  berth $v "; then
		pass "$v --help"
	else
		fail "$v --help" "exit $RC" "$OUT"
	fi
done
