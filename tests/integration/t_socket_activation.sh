#!/bin/bash
# tests/integration/t_socket_activation.sh: berthd started by socket activation, as
# berthd.socket does it, through systemd-socket-activate (systemd's own implementation of
# the protocol, without systemd as PID 1): the socket is there before berthd is; the
# first `berth list` starts it; it serves the socket it was passed (LISTEN_FDS), keeps
# the stdio socket of its own, and leaves the passed socket's file in place when it
# stops; a socket bound elsewhere is refused; without activation it still makes its
# own socket and removes it on exit. TAP.
#
# Everything is unix sockets in the test's temp dir, in its own network namespace.
. "$(dirname "$0")/lib.sh"

if [ "$(id -u)" = 0 ]; then
	command -v systemd-socket-activate >/dev/null ||
		skip_all "systemd-socket-activate not found (apt-get install systemd)"
fi
berth_test_images busybox
berth_test_init "$@"

# The daemon lib.sh started: its own socket, removed when it stops.
daemon_stop
ok "without activation, berthd removes its socket on exit" test ! -e "$BERTH_SOCKET"

ACT_PID=
act_cleanup()
{
	[ -n "$ACT_PID" ] && kill -TERM "$ACT_PID" 2>/dev/null && wait "$ACT_PID" 2>/dev/null
	_berth_test_exit
}
trap act_cleanup EXIT

# activate SOCKET: systemd-socket-activate listening on SOCKET, berthd started on the
# first connection (in the same process: it execs berthd then).
activate()
{
	(
		for fd in /proc/$BASHPID/fd/*; do
			fd=${fd##*/}
			[ "$fd" -gt 2 ] && eval "exec $fd>&-"
		done
		exec systemd-socket-activate -l "$1" -E BERTH_DIR="$BERTH_DIR" \
			"$BERTHD" --debug
	) </dev/null >>"$DAEMON_LOG" 2>&1 &
	ACT_PID=$!
	local i
	for i in $(seq 50); do
		[ -S "$1" ] && return 0
		sleep 0.1
	done
	return 1
}

comm() { cat "/proc/$1/comm" 2>/dev/null; }

ok "systemd-socket-activate listens on the API socket" activate "$BERTH_SOCKET"
sleep 0.3
is "$(comm "$ACT_PID")" systemd-socket- "berthd is not running before the first client"
run_cli list
is "$RC" 0 "the first 'berth list' starts berthd and gets an answer"
is "$(comm "$ACT_PID")" berthd "the process is berthd now"
like "$(cat "$DAEMON_LOG")" "passed by systemd" "berthd says it serves the passed socket"
ok "berthd still makes its stdio socket" test -S "$BERTH_DIR/stdio.socket"
# (berthd's own /proc/PID/environ shows what it was started with; what it spawned,
# dnsmasq and the container's monitor below, must not have inherited LISTEN_PID)
inherited()
{
	local p
	for p in /proc/[0-9]*; do
		[ "${p#/proc/}" = "$ACT_PID" ] && continue
		tr '\0' '\n' <"$p/environ" 2>/dev/null | grep -qx "LISTEN_PID=$ACT_PID" && echo "${p#/proc/}"
	done
}
api GET /1.0
is "$HTTP_STATUS" 200 "GET /1.0 over the passed socket"
run_cli image import "${IMAGE[busybox]}" --alias busybox
is "$RC" 0 "the busybox image is imported through it"
run_cli launch busybox c1
is "$RC" 0 "a container launches through it"
run_cli exec c1 -- true
is "$RC" 0 "exec in it works"
is "$(inherited)" "" "no process berthd started has LISTEN_PID in its environment"
run_cli delete -f c1
is "$RC" 0 "and it is deleted"
fds=$(ls -l "/proc/$ACT_PID/fd" | grep -c 'socket:')
ok "berthd holds the passed socket as its listener (sockets: $fds)" test "$fds" -ge 2

kill -TERM "$ACT_PID"
wait "$ACT_PID"
is "$?" 0 "berthd exits 0 on SIGTERM"
ACT_PID=
ok "the passed socket's file is left for systemd" test -S "$BERTH_SOCKET"
rm -f "$BERTH_SOCKET"

# A socket bound to another path: berthd refuses it rather than serve somewhere else.
other=$TEST_TMP/other.socket
ok "systemd-socket-activate listens on another path" activate "$other"
$PY "$RAWHTTP" req "$other" GET /1.0 --timeout 5 >/dev/null 2>&1
for i in $(seq 50); do
	kill -0 "$ACT_PID" 2>/dev/null || break
	sleep 0.1
done
wait "$ACT_PID"
rc=$?
ACT_PID=
isnt "$rc" 0 "berthd exits with an error on a socket bound elsewhere"
like "$(cat "$DAEMON_LOG")" "is not \"$BERTH_SOCKET\"" "and says which socket it wanted"

# Started plainly again: its own socket, as before.
daemon_start
api GET /1.0
is "$HTTP_STATUS" 200 "without LISTEN_FDS berthd binds its socket itself"
