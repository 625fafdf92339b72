#!/bin/bash
# tests/integration/t_exec_logs.sh: exec with record-output and the instance logs API as
# LXD 5.0.2 serves them (LXD-API.md §5; /1.0/instances/{name}/logs[/exec-output]):
# refused combinations, stdout and stderr recorded under the operation's id with their
# URLs and the exit code in the operation's metadata, listing, reading, deleting, bad
# names, lxc.log, the logs following a rename and going with the instance. berthd's fds,
# mounts, cgroups and exec helpers are counted before and after. TAP output.
if [ -z "${BERTH_IN_NETNS:-}" ] && [ "$(id -u)" = 0 ]; then
	T_EL_OUT=$(mktemp -d /tmp/berth-t-exec-logs.XXXXXX)
	srcdir=${BERTH_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
	"$srcdir/images/build" busybox "$T_EL_OUT" >"$T_EL_OUT/fp" 2>"$T_EL_OUT/log" ||
		rm -f "$T_EL_OUT/fp"
	export T_EL_OUT
fi

. "$(dirname "$0")/lib.sh"
: "${BERTH_MONITOR:=$BERTH_BUILDDIR/berth-monitor}"
if [ "$(id -u)" = 0 ]; then
	[ -s "$T_EL_OUT/fp" ] || skip_all "the busybox image could not be built: $(tail -n 1 "$T_EL_OUT/log")"
	[ -x "$BERTH_MONITOR" ] || skip_all "no berth-monitor at $BERTH_MONITOR (build it first)"
fi
BERTHD_ENV=(BERTH_MONITOR="$BERTH_MONITOR")
berth_test_init "$@"
# the image's directory goes with TEST_TMP (lib.sh's EXIT trap removes that one)
if [ -d "$T_EL_OUT" ]; then
	mv "$T_EL_OUT" "$TEST_TMP/image"
	T_EL_OUT=$TEST_TMP/image
fi
export PATH=$BERTH_BUILDDIR:$PATH

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
# body of a GET, as it came
getraw() { rawhttp req GET "$1" | tail -n +4; }

mounts0=$(mounts)
cgroups0=$(cgroups)
api GET /1.0
like "$(jget '" ".join(j["metadata"]["api_extensions"])')" "container_exec_recording" \
	"GET /1.0 advertises container_exec_recording"
check "import the busybox image" berth image import "$T_EL_OUT/busybox.tar.gz" --alias busybox
api POST /1.0/instances '{"name":"c1","source":{"type":"image","alias":"busybox"}}'
wait_operation "$(jget 'j["operation"]')"
ok "create c1" opok
api GET /1.0/instances/c1/logs/exec-output
is "$(jget 'len(j["metadata"])')" 0 "no exec output before any exec: an empty list"
state start c1
ok "start c1" opok
fds0=$(daemon_fds)

# ---- refused combinations ----
expect_error 400 "record-output with wait-for-websocket is refused" POST /1.0/instances/c1/exec \
	'{"command":["true"],"record-output":true,"wait-for-websocket":true}'
like "$(jget 'j["error"]')" 'record-output.*wait-for-websocket' "... saying why"
expect_error 400 "record-output with interactive is refused" POST /1.0/instances/c1/exec \
	'{"command":["true"],"record-output":true,"interactive":true}'

# ---- a recorded exec ----
api POST /1.0/instances/c1/exec '{"command":["sh","-c","echo out-line; echo err-line >&2; exit 3"],"record-output":true}'
is "$HTTP_STATUS" 202 "record-output exec: 202"
op=$(jget 'j["operation"]')
opid=${op##*/}
wait_operation "$op"
ok "... the operation succeeds" opok
is "$(jget 'j["metadata"]["metadata"]["return"]')" 3 "... metadata.return is 3"
out1=$(jget 'j["metadata"]["metadata"]["output"]["1"]')
out2=$(jget 'j["metadata"]["metadata"]["output"]["2"]')
is "$out1" "/1.0/instances/c1/logs/exec-output/exec_$opid.stdout" "... output.1 is the stdout URL named after the operation"
is "$out2" "/1.0/instances/c1/logs/exec-output/exec_$opid.stderr" "... output.2 is the stderr URL"
is "$(getraw "$out1")" "out-line" "GET output.1 gives stdout"
is "$(getraw "$out2")" "err-line" "GET output.2 gives stderr"
api GET "$out1"
like "$(sed -n 1p "$TEST_TMP/resp")" 200 "... 200"
api GET /1.0/instances/c1/logs/exec-output
is "$(jget 'sorted(j["metadata"]) == sorted(["'"$out1"'", "'"$out2"'"])')" true \
	"GET .../logs/exec-output lists both files"

# a second exec, larger output: its own files, complete
api POST /1.0/instances/c1/exec '{"command":["sh","-c","head -c 1000000 /dev/zero"],"record-output":true}'
wait_operation "$(jget 'j["operation"]')"
big=$(jget 'j["metadata"]["metadata"]["output"]["1"]')
is "$(getraw "$big" | wc -c)" 1000000 "1 MB of recorded output is complete"
api GET /1.0/instances/c1/logs/exec-output
is "$(jget 'len(j["metadata"])')" 4 "... two more files listed"

# a detached exec without record-output records nothing
api POST /1.0/instances/c1/exec '{"command":["echo","unrecorded"]}'
wait_operation "$(jget 'j["operation"]')"
is "$(jget '"output" in j["metadata"]["metadata"]')" false "without record-output: no output in the metadata"
api GET /1.0/instances/c1/logs/exec-output
is "$(jget 'len(j["metadata"])')" 4 "... and no file"

# ---- deleting, bad names ----
expect_status 200 "DELETE an exec output file" DELETE "$out2"
expect_error 404 "... then GET it is 404" GET "$out2"
expect_error 404 "... and DELETE it again is 404" DELETE "$out2"
api GET /1.0/instances/c1/logs/exec-output
is "$(jget 'len(j["metadata"])')" 3 "... three files left"
expect_error 400 "an exec-output name not exec_*.stdout|stderr is refused" GET /1.0/instances/c1/logs/exec-output/exec_x.txt
expect_error 400 "a name with .. is refused" GET /1.0/instances/c1/logs/exec-output/exec_..stdout
expect_error 404 "exec output of a missing instance is 404" GET /1.0/instances/nope/logs/exec-output

# ---- the other logs ----
api GET /1.0/instances/c1/logs
like "$(jget '" ".join(j["metadata"])')" "/1.0/instances/c1/logs/lxc.log" "GET .../logs lists lxc.log"
is "$HTTP_STATUS" 200 "... 200"
api GET /1.0/instances/c1/logs/lxc.log
is "$HTTP_STATUS" 200 "GET .../logs/lxc.log (the monitor's log)"
if command -v lxc >/dev/null; then
	export LXD_CONF=$TEST_TMP/lxd-conf
	mkdir -p "$LXD_CONF"
	lxc remote add b "unix://$BERTH_SOCKET" >/dev/null 2>&1
	like "$(lxc info --show-log b:c1 2>&1)" "started init" "lxc info --show-log shows the monitor's log"
else
	skip "lxc info --show-log" "lxc not installed"
fi
expect_error 400 "lxc.log may not be deleted" DELETE /1.0/instances/c1/logs/lxc.log
expect_error 400 "an unknown log name is refused" GET /1.0/instances/c1/logs/passwd
expect_error 404 "logs of a missing instance are 404" GET /1.0/instances/nope/logs

# ---- leaks while running ----
sleep 0.3
is "$(helpers)" 0 "no exec helper left"
check_no_fd_leak "$fds0" "no fd left in berthd"

# ---- rename and delete take the logs along ----
state stop c1 '"force":true'
ok "stop c1" opok
api POST /1.0/instances/c1 '{"name":"c2"}'
wait_operation "$(jget 'j["operation"]')"
ok "rename c1 to c2" opok
is "$(getraw "/1.0/instances/c2/logs/exec-output/exec_$opid.stdout")" "out-line" "the recorded output follows the rename"
ok "... nothing left under the old name" test ! -e "$BERTH_DIR/logs/default_c1"
api DELETE /1.0/instances/c2
wait_operation "$(jget 'j["operation"]')"
ok "delete c2" opok
ok "the instance's log directory went with it" test ! -e "$BERTH_DIR/logs/default_c2"
is "$(mounts)" "$mounts0" "no mount left"
is "$(cgroups)" "$cgroups0" "no cgroup left"
