# tests/integration/lib.sh: TAP output and berthd lifecycle for the integration tests.
#
# A test sources this file, calls `berth_test_init "$@"` and then writes checks:
#
#   . "$(dirname "$0")/lib.sh"
#   berth_test_init "$@"      # root? re-exec in a private net+mount namespace,
#                             # temp BERTH_DIR, start berthd, wait for its socket
#   api GET /1.0              # sets HTTP_STATUS HTTP_ETAG HTTP_LOCATION HTTP_BODY
#   is "$HTTP_STATUS" 200 "GET /1.0 answers 200"
#   run_cli list              # sets OUT ERR RC
#
# On exit it stops berthd by PID with SIGTERM and records "berthd exited with
# status 0" as a test (a crash or a hang is a failure), prints the daemon log as
# TAP diagnostics when anything failed, removes the temp directory and prints
# the plan. Skips (TAP "1..0 # SKIP reason") when not root or when network
# namespaces are unavailable; the exit status of a skip is 77 when run by hand
# and 0 under automake's tap-driver (BERTH_TEST_HARNESS=tap), which would count
# a non-zero exit as an error.
#
# Nothing here sends traffic anywhere but the unix socket inside the test's own
# temp dir, and the daemon runs in a network namespace created by the test.

set -u

: "${BERTH_SRCDIR:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
: "${BERTH_BUILDDIR:=$BERTH_SRCDIR}"
export BERTH_SRCDIR BERTH_BUILDDIR

PY=/usr/bin/python3
RAWHTTP="$BERTH_SRCDIR/tests/integration/rawhttp.py"
. "$BERTH_SRCDIR/tests/integration/netns.sh"
BERTHD="$BERTH_BUILDDIR/berthd"
BERTH="$BERTH_BUILDDIR/berth"

_tap_n=0
_tap_failed=0
_tap_done=0
DAEMON_PID=
TEST_TMP=
DAEMON_LOG=

# ---- TAP ----

_tap_exit_status()
{
	if [ "${BERTH_TEST_HARNESS:-}" = tap ]; then
		echo 0
	elif [ "$_tap_failed" -gt 0 ]; then
		echo 1
	else
		echo 0
	fi
}

diag()
{
	printf '%s\n' "$@" | sed 's/^/# /'
}

# _tap_slow: a note when the check being reported took 5 s or more since the last one
# (where a test's time goes, in its log).
_tap_last=0
_tap_slow()
{
	[ $((SECONDS - _tap_last)) -ge 5 ] && echo "# ($((SECONDS - _tap_last)) s since the last check)"
	_tap_last=$SECONDS
}

pass()
{
	_tap_slow
	_tap_n=$((_tap_n + 1))
	echo "ok $_tap_n - $1"
}

fail()
{
	_tap_slow
	_tap_n=$((_tap_n + 1))
	_tap_failed=$((_tap_failed + 1))
	echo "not ok $_tap_n - $1"
	shift
	[ $# -gt 0 ] && diag "$@"
	return 0
}

skip()
{
	_tap_slow
	_tap_n=$((_tap_n + 1))
	echo "ok $_tap_n - $1 # SKIP $2"
}

# ok DESC CMD [ARGS...]: passes when CMD exits 0.
ok()
{
	local desc=$1
	shift
	if "$@"; then pass "$desc"; else fail "$desc" "command failed: $*"; fi
}

# is GOT WANT DESC
is()
{
	if [ "$1" = "$2" ]; then
		pass "$3"
	else
		if [ "$(printf '%s' "$1$2" | wc -l)" -gt 4 ]; then
			# Long values: the lines that differ, not two listings.
			fail "$3" "$(diff -u --label want --label got <(printf '%s\n' "$2") \
				<(printf '%s\n' "$1") | head -n 60)"
		else
			fail "$3" "got:  '$1'" "want: '$2'"
		fi
	fi
}

# isnt GOT UNWANTED DESC
isnt()
{
	if [ "$1" != "$2" ]; then
		pass "$3"
	else
		fail "$3" "got:  '$1'" "must differ"
	fi
}

# like GOT ERE DESC
like()
{
	if printf '%s' "$1" | grep -Eq -- "$2"; then
		pass "$3"
	else
		fail "$3" "got:  '$(printf '%s' "$1" | head -c 2000)'" "want match of: $2"
	fi
}

# unlike GOT ERE DESC
unlike()
{
	if printf '%s' "$1" | grep -Eq -- "$2"; then
		fail "$3" "got:  '$(printf '%s' "$1" | head -c 2000)'" "must not match: $2"
	else
		pass "$3"
	fi
}

# check DESC CMD [ARGS...]: passes when CMD succeeds; its output is shown when it fails.
check() { local d=$1; shift; if out=$("$@" 2>&1); then pass "$d"; else fail "$d" "$out"; fi; }

# refuse DESC TEXT CMD [ARGS...]: passes when CMD fails with TEXT in its output.
refuse()
{
	local d=$1 pat=$2
	shift 2
	if out=$("$@" 2>&1); then
		fail "$d (succeeded)" "$out"
	elif printf '%s' "$out" | grep -qF -- "$pat"; then
		pass "$d"
	else
		fail "$d (wrong message)" "$out" "want: $pat"
	fi
}

skip_all()
{
	echo "1..0 # SKIP $*"
	_tap_done=1
	if [ "${BERTH_TEST_HARNESS:-}" = tap ]; then exit 0; fi
	exit 77
}

bail_out()
{
	echo "Bail out! $*"
	exit 1
}

# ---- namespaces ----

# Re-executes the test in a new network namespace and a private mount
# namespace, where only lo exists (see netns.sh).
_enter_namespaces()
{
	if [ -n "${BERTH_IN_NETNS:-}" ]; then
		berth_netns_prepare "$BERTH_IN_NETNS" || bail_out "cannot set up the test's namespaces"
		return 0
	fi
	[ "$(id -u)" = 0 ] || skip_all "needs root (network namespaces)"
	command -v unshare >/dev/null || skip_all "unshare (util-linux) not installed"
	command -v ip >/dev/null || skip_all "ip (iproute2) not installed"
	unshare --net --mount true 2>/dev/null || skip_all "cannot create network namespaces here"
	BERTH_IN_NETNS=$(readlink /proc/self/ns/net)
	export BERTH_IN_NETNS
	exec unshare --net --mount --propagation slave -- /bin/bash "$0" "$@"
}

# ---- images ----

# berth_test_images RECIPE...: call before berth_test_init. Outside the namespaces
# (where the host's Debian mirror is reachable) it builds each image with images/build
# (cached under /var/cache/berth-test) into $T_IMAGES, a temp dir removed at exit.
# Inside, IMAGE[RECIPE] is set to each tarball; a recipe that could not be built
# skips the whole test with the build's last line as the reason.
declare -A IMAGE=()
berth_test_images()
{
	local r f
	if [ -z "${BERTH_IN_NETNS:-}" ]; then
		[ "$(id -u)" = 0 ] || return 0
		T_IMAGES=$(mktemp -d /tmp/berth-t-img.XXXXXX)
		export T_IMAGES
		for r in "$@"; do
			"$BERTH_SRCDIR/images/build" "$r" "$T_IMAGES/$r" >"$T_IMAGES/$r.fp" \
				2>"$T_IMAGES/$r.log" || rm -f "$T_IMAGES/$r.fp"
		done
		return 0
	fi
	for r in "$@"; do
		if [ ! -s "$T_IMAGES/$r.fp" ]; then
			f=$(tail -n 1 "$T_IMAGES/$r.log")
			rm -rf "$T_IMAGES"
			skip_all "the $r image could not be built: $f"
		fi
		for f in "$T_IMAGES/$r"/*.tar.*; do IMAGE[$r]=$f; done
	done
}

# ---- counting what the test made ----

# own_mounts: how many mounts the test's own mount namespace holds that the host did
# not put there. The namespace is a slave of the host's (_enter_namespaces), so a mount
# or unmount on the host after the unshare (`ip netns add` and `del` under /run/netns,
# another test, a USB stick) shows up here too, tagged master:N in mountinfo: those
# are left out, unless they are under the test's own temp dir. What the test and its
# berthd mount here has no master tag. Compare one count before with one after.
own_mounts()
{
	awk -v t="${TEST_TMP:-/nonexistent}/" '
		{ m = 0; for (i = 7; i <= NF && $i != "-"; i++) if ($i ~ /^master:/) m = 1 }
		!m || index($5, t) == 1 { n++ }
		END { print n + 0 }' /proc/self/mountinfo
}

# ---- daemon lifecycle ----

# berth_test_init "$@": namespaces, temp dirs, berthd started. Extra
# environment for berthd can be put in BERTHD_ENV (an array of VAR=value).
berth_test_init()
{
	_enter_namespaces "$@"
	[ -x "$BERTHD" ] || bail_out "no berthd at $BERTHD (build first)"
	TEST_TMP=$(mktemp -d /tmp/berth-test.XXXXXX)
	BERTH_DIR=$TEST_TMP/state
	BERTH_SOCKET=$BERTH_DIR/unix.socket
	DAEMON_LOG=$TEST_TMP/berthd.log
	export BERTH_DIR BERTH_SOCKET
	# the CLI's config.yml and certificates (doc/remotes.md): the test's own, never ~/.config
	export BERTH_CONF=$TEST_TMP/berth-conf
	mkdir -p "$BERTH_DIR"
	# An EXIT trap the test set before (removing its image directory, say) is kept:
	# one that ends in _berth_test_exit as it is, another run by _berth_test_exit first.
	local prev words
	prev=$(trap -p EXIT)
	if [[ $prev == *_berth_test_exit* ]]; then
		eval "$prev"
	else
		if [ -n "$prev" ]; then
			eval "words=($prev)" # trap -- 'COMMAND' EXIT, quoted for the shell
			_BERTH_PREV_EXIT=${words[2]}
		fi
		trap _berth_test_exit EXIT
	fi
	trap 'exit 1' INT TERM
	daemon_start
}

# daemon_start: starts berthd and waits (10 s) until GET /1.0 answers 200. With
# BERTHD_INHERIT_FD=N, berthd also inherits fd N open on /dev/null (as from a careless
# parent), to show that nothing passes it on.
daemon_start()
{
	echo "==== berthd start $(date +%T.%N)" >>"$DAEMON_LOG"
	# berthd gets only stdin, stdout and stderr: not the TAP driver's fd 3 or
	# whatever else this shell holds, which would also skew daemon_fds.
	(
		for fd in /proc/$BASHPID/fd/*; do
			fd=${fd##*/}
			[ "$fd" -gt 2 ] && eval "exec $fd>&-"
		done
		[ -n "${BERTHD_INHERIT_FD:-}" ] && eval "exec $BERTHD_INHERIT_FD</dev/null"
		exec env ${BERTHD_ENV[@]+"${BERTHD_ENV[@]}"} BERTH_DIR="$BERTH_DIR" "$BERTHD" --debug
	) </dev/null >>"$DAEMON_LOG" 2>&1 &
	DAEMON_PID=$!
	local i
	for i in $(seq 100); do
		if ! kill -0 "$DAEMON_PID" 2>/dev/null; then
			wait "$DAEMON_PID"
			local rc=$?
			DAEMON_PID=
			fail "berthd starts" "berthd exited with status $rc before its socket appeared"
			bail_out "berthd did not start"
		fi
		if [ -S "$BERTH_SOCKET" ] &&
			[ "$($PY "$RAWHTTP" req "$BERTH_SOCKET" GET /1.0 --timeout 2 2>/dev/null | head -n 1)" = 200 ]; then
			return 0
		fi
		sleep 0.1
	done
	fail "berthd starts" "no answer on $BERTH_SOCKET after 10 s"
	bail_out "berthd did not start"
}

# daemon_stop: SIGTERM by PID, up to 15 s to exit, then records its status as a test.
daemon_stop()
{
	[ -n "$DAEMON_PID" ] || return 0
	local pid=$DAEMON_PID i rc
	DAEMON_PID=
	kill -TERM "$pid" 2>/dev/null
	for i in $(seq 150); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
		fail "berthd exits on SIGTERM" "still running 15 s after SIGTERM; killed"
		return 1
	fi
	wait "$pid"
	rc=$?
	echo "==== berthd exited with status $rc $(date +%T.%N)" >>"$DAEMON_LOG"
	is "$rc" 0 "berthd exits cleanly on SIGTERM"
}

daemon_restart()
{
	daemon_stop
	daemon_start
}

# ---- a second daemon (the migration tests) ----

# daemon_b_start: a second berthd with state B_DIR (socket B_SOCK, log B_LOG), started as
# daemon A is; BERTHD_B_ENV (an array of VAR=value) goes into its environment. Sets B_PID.
daemon_b_start()
{
	(
		for fd in /proc/$BASHPID/fd/*; do
			fd=${fd##*/}
			[ "$fd" -gt 2 ] && eval "exec $fd>&-"
		done
		exec env ${BERTHD_B_ENV[@]+"${BERTHD_B_ENV[@]}"} BERTH_DIR="$B_DIR" "$BERTHD" --debug
	) </dev/null >>"$B_LOG" 2>&1 &
	B_PID=$!
	local i
	for i in $(seq 100); do
		[ -S "$B_SOCK" ] &&
			[ "$($PY "$RAWHTTP" req "$B_SOCK" GET /1.0 --timeout 2 2>/dev/null | head -n 1)" = 200 ] &&
			return 0
		sleep 0.1
	done
	bail_out "berthd B did not start"
}

# daemon_b_stop: SIGTERM to the second berthd (SIGKILL after 15 s); one TAP line: it
# exited with status 0.
daemon_b_stop()
{
	[ -n "$B_PID" ] || return 0
	local pid=$B_PID i
	B_PID=
	kill -TERM "$pid" 2>/dev/null
	for i in $(seq 150); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
	wait "$pid"
	is "$?" 0 "berthd B exits cleanly on SIGTERM"
}

# daemon_b_start_netns ADDR_A ADDR_B: daemon_b_start, but berthd B in a network (and
# mount) namespace of its own, joined to the test's by a veth pair: ADDR_A/24 on this
# side (veth "mig-a"), ADDR_B/24 on B's ("mig-b"). Nothing else is routed: no traffic
# leaves the two namespaces. B gets a fresh /sys there (netns.sh, not `ip netns exec`).
daemon_b_start_netns()
{
	local a=$1 b=$2 host
	host=$(readlink /proc/self/ns/net)
	(
		for fd in /proc/$BASHPID/fd/*; do
			fd=${fd##*/}
			[ "$fd" -gt 2 ] && eval "exec $fd>&-"
		done
		exec unshare --net --mount --propagation slave -- /bin/bash -c '
			. "$BERTH_SRCDIR/tests/integration/netns.sh"
			berth_netns_prepare "$1" || exit 1
			shift
			exec env "$@"' _ "$host" ${BERTHD_B_ENV[@]+"${BERTHD_B_ENV[@]}"} \
			BERTH_DIR="$B_DIR" "$BERTHD" --debug
	) </dev/null >>"$B_LOG" 2>&1 &
	B_PID=$!
	local i
	for i in $(seq 100); do
		[ -S "$B_SOCK" ] &&
			[ "$($PY "$RAWHTTP" req "$B_SOCK" GET /1.0 --timeout 2 2>/dev/null | head -n 1)" = 200 ] &&
			break
		kill -0 "$B_PID" 2>/dev/null || bail_out "berthd B exited: $(tail -n 5 "$B_LOG")"
		sleep 0.1
	done
	[ "$(readlink /proc/$B_PID/ns/net)" != "$host" ] || bail_out "berthd B is not in a namespace of its own"
	ip link add mig-a type veth peer name mig-b netns "$B_PID" &&
		ip addr add "$a/24" dev mig-a && ip link set mig-a up &&
		nsenter --net="/proc/$B_PID/ns/net" ip addr add "$b/24" dev mig-b &&
		nsenter --net="/proc/$B_PID/ns/net" ip link set mig-b up ||
		bail_out "cannot join berthd B's namespace with a veth pair"
}

_print_daemon_log()
{
	[ -n "$DAEMON_LOG" ] && [ -f "$DAEMON_LOG" ] || return 0
	diag "---- berthd log (last 200 lines) ----"
	tail -n 200 "$DAEMON_LOG" | sed 's/^/# /'
}

# A backstop for a test that failed half-way: containers outlive berthd by design, so
# kill what is left of this daemon's (its monitors, by the PIDs they recorded; PID 1 of
# each follows its monitor) and remove its cgroups (doc/runtime.md names them).
_kill_leftover_containers()
{
	[ -n "${BERTH_DIR:-}" ] && [ -d "$BERTH_DIR/run" ] || return 0
	local f pid n=0 cg
	for f in "$BERTH_DIR"/run/*/monitor.pid; do
		[ -f "$f" ] || continue
		pid=$(cat "$f")
		case $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) in
		*"berth-monitor start $BERTH_DIR/"*) kill -KILL "$pid" 2>/dev/null && n=$((n + 1)) ;;
		esac
	done
	[ "$n" -gt 0 ] && diag "killed $n container monitor(s) left running" && sleep 0.3
	cg=berth-$(printf '%s' "$BERTH_DIR" | sha256sum | cut -c1-8)
	for f in /sys/fs/cgroup/*/"$cg" /sys/fs/cgroup/"$cg"; do
		[ -d "$f" ] && find "$f" -depth -type d -exec rmdir {} + 2>/dev/null
	done
	return 0
}

# Managed networks outlive berthd too (doc/networks.md): kill the dnsmasq of each of
# this daemon's networks, by the PID it recorded and only when its command line is ours.
_kill_leftover_dnsmasq()
{
	[ -n "${TEST_TMP:-}" ] && [ -d "$TEST_TMP" ] || return 0
	local f pid
	# every daemon's of the test (berthd B's too, under $TEST_TMP/b): berthd leaves its
	# networks' dnsmasq running when it stops, as it leaves containers' networking up
	for f in $(find "$TEST_TMP" -maxdepth 5 -path '*/networks/*/dnsmasq.pid' 2>/dev/null); do
		pid=$(cat "$f")
		case $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) in
		*"--conf-file=$TEST_TMP/"*"/networks/"*) kill -TERM "$pid" 2>/dev/null ;;
		esac
	done
	return 0
}

_berth_test_exit()
{
	local st=$?
	[ "$_tap_done" = 1 ] && return
	if [ -n "${_BERTH_PREV_EXIT:-}" ]; then
		eval "$_BERTH_PREV_EXIT"
		_BERTH_PREV_EXIT=
	fi
	daemon_stop
	[ "$_tap_failed" -gt 0 ] && _print_daemon_log
	_kill_leftover_containers
	_kill_leftover_dnsmasq
	[ -n "$TEST_TMP" ] && rm -rf "$TEST_TMP"
	[ -n "${T_IMAGES:-}" ] && rm -rf "$T_IMAGES"
	# (scripts/test.sh lists the slowest tests from these lines)
	echo "# took ${SECONDS}s"
	echo "1..$_tap_n"
	[ "$st" -ne 0 ] && [ "${BERTH_TEST_HARNESS:-}" != tap ] && exit "$st"
	exit "$(_tap_exit_status)"
}

# daemon_fds: how many sockets, pipes and anonymous inodes (eventfd, timerfd,
# epoll) berthd holds open now. Files are left out: SQLite opens its database
# once per worker thread, lazily, so their count grows without leaking.
daemon_fds()
{
	local fd n=0 target
	for fd in /proc/"$DAEMON_PID"/fd/*; do
		target=$(readlink "$fd") || continue
		case $target in /*) ;; *) n=$((n + 1)) ;; esac
	done
	echo "$n"
}

# check_no_fd_leak BEFORE DESC: berthd's fd count settles back to BEFORE (within 5 s,
# closing connections is asynchronous).
check_no_fd_leak()
{
	local before=$1 desc=$2 now i
	for i in $(seq 50); do
		now=$(daemon_fds)
		[ "$now" -le "$before" ] && break
		sleep 0.1
	done
	if [ "$now" -le "$before" ]; then
		pass "$desc (fds $before -> $now)"
	else
		fail "$desc" "berthd held $before fds before, $now after:" \
			"$(ls -l "/proc/$DAEMON_PID/fd" 2>/dev/null)"
	fi
}

# daemon_alive DESC: berthd's process is still there and answers GET /1.0. When
# it died, the rest of the test cannot mean anything: bail out (the exit trap
# still reports its exit status and prints its log).
daemon_alive()
{
	local st
	st=$($PY "$RAWHTTP" req "$BERTH_SOCKET" GET /1.0 --timeout 5 2>/dev/null | head -n 1)
	if kill -0 "$DAEMON_PID" 2>/dev/null && [ "$st" = 200 ]; then
		pass "$1"
	elif kill -0 "$DAEMON_PID" 2>/dev/null; then
		fail "$1" "GET /1.0 -> '$st'"
	else
		fail "$1" "berthd (pid $DAEMON_PID) is gone"
		bail_out "berthd died"
	fi
}

# ---- HTTP ----

_read_response()
{
	local f=$TEST_TMP/resp
	HTTP_STATUS=$(sed -n 1p "$f")
	HTTP_ETAG=$(sed -n 2p "$f")
	HTTP_LOCATION=$(sed -n 3p "$f")
	HTTP_BODY=$(tail -n +4 "$f")
}

# api METHOD PATH [BODY] [rawhttp options, e.g. -H 'If-Match: x']
api()
{
	local method=$1 path=$2
	shift 2
	local args=()
	if [ $# -gt 0 ] && [ "${1:0:1}" != - ]; then
		args=(-d "$1")
		shift
	fi
	$PY "$RAWHTTP" req "$BERTH_SOCKET" "$method" "$path" "${args[@]}" "$@" >"$TEST_TMP/resp" 2>&1
	_read_response
}

# api_raw BYTES [--timeout S]: sends BYTES as they are (write them with $'..\r\n'
# or printf -v; a pipe would run this in a subshell and lose HTTP_*).
api_raw()
{
	local data=$1
	shift
	printf '%s' "$data" | $PY "$RAWHTTP" raw "$BERTH_SOCKET" "$@" >"$TEST_TMP/resp" 2>&1
	_read_response
}

# rawhttp SUBCOMMAND ARGS: the helper itself, socket filled in.
rawhttp()
{
	local sub=$1
	shift
	$PY "$RAWHTTP" "$sub" "$BERTH_SOCKET" "$@"
}

# jget EXPR [JSON]: evaluates EXPR (Python, document as `j`) on JSON (default HTTP_BODY).
jget()
{
	printf '%s' "${2-$HTTP_BODY}" | $PY "$RAWHTTP" json "$1" 2>/dev/null
}

# expect_status WANT DESC METHOD PATH [BODY] [options]
expect_status()
{
	local want=$1 desc=$2
	shift 2
	api "$@"
	if [ "$HTTP_STATUS" = "$want" ]; then
		pass "$desc"
	else
		fail "$desc" "$1 $2 -> $HTTP_STATUS, want $want" "body: $(printf '%s' "$HTTP_BODY" | head -c 1000)"
	fi
}

# is_error_json CODES: HTTP_STATUS is one of CODES ("400" or "400|409") and the
# body is LXD's error envelope for it:
# {"type":"error","error":"<non-empty>","error_code":<status>,"metadata":null}.
is_error_json()
{
	case "|$1|" in *"|$HTTP_STATUS|"*) ;; *) return 1 ;; esac
	[ "$(jget "j.get('type') == 'error' and j.get('error_code') == $HTTP_STATUS and \
'metadata' in j and j['metadata'] is None and isinstance(j.get('error'), str) and \
len(j['error']) > 0")" = true ]
}

# expect_error CODES DESC METHOD PATH [BODY] [options]: see is_error_json.
expect_error()
{
	local code=$1 desc=$2
	shift 2
	api "$@"
	if is_error_json "$code"; then
		pass "$desc"
	else
		fail "$desc" "$1 $2 -> $HTTP_STATUS, want $code with LXD's error JSON" \
			"body: $(printf '%s' "$HTTP_BODY" | head -c 1000)"
	fi
}

# expect_refused CODES DESC METHOD PATH [BODY] [options]: the request is refused,
# either up front (one of CODES with LXD's error JSON) or, as LXD does for checks
# it makes inside an operation, by a 202 whose operation then fails.
expect_refused()
{
	local codes=$1 desc=$2
	shift 2
	api "$@"
	if [ "$HTTP_STATUS" = 202 ]; then
		wait_operation "$(jget 'j["operation"]')"
		if [ "$(jget 'j["metadata"]["status"]')" = Failure ]; then
			pass "$desc"
		else
			fail "$desc" "$1 $2 -> 202 and the operation did not fail: $HTTP_BODY"
		fi
	elif is_error_json "$codes"; then
		pass "$desc"
	else
		fail "$desc" "$1 $2 -> $HTTP_STATUS, want $codes with LXD's error JSON" \
			"body: $(printf '%s' "$HTTP_BODY" | head -c 1000)"
	fi
}

# expect_create_rejected DESC BODY [CODES]: POST /1.0/instances with BODY is
# refused (see expect_refused; CODES default 400) and no instance of that name
# exists afterwards.
expect_create_rejected()
{
	local desc=$1 body=$2 codes=${3:-400} name before=$_tap_failed
	name=$(jget 'j.get("name")' "$body")
	expect_refused "$codes" "$desc" POST /1.0/instances "$body"
	[ "$_tap_failed" = "$before" ] || return 0
	if [ -n "$name" ]; then
		api GET "/1.0/instances/$name"
		[ "$HTTP_STATUS" = 404 ] || fail "... and instance '$name' does not exist" "GET -> $HTTP_STATUS"
	fi
}

# wait_operation OP_URL [SECONDS]: waits (30 s by default) and sets HTTP_* to the final operation.
wait_operation()
{
	api GET "$1/wait?timeout=${2:-30}"
}

# ---- CLI ----

# run CMD [ARGS]: sets OUT, ERR, RC.
run()
{
	"$@" >"$TEST_TMP/out" 2>"$TEST_TMP/err" </dev/null
	RC=$?
	OUT=$(cat "$TEST_TMP/out")
	ERR=$(cat "$TEST_TMP/err")
}

# rc_ok DESC: the last `run` exited 0; shows its stderr otherwise.
rc_ok()
{
	if [ "$RC" = 0 ]; then
		pass "$1"
	else
		fail "$1" "exit status $RC" "stderr: $ERR"
	fi
}

# run_cli ARGS: the berth CLI against the test daemon.
run_cli()
{
	run "$BERTH" "$@"
}
