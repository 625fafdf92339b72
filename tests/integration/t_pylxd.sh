#!/bin/bash
# tests/integration/t_pylxd.sh: Debian's python3-pylxd (2.2.10) against berthd, through
# LXD_DIR as an admin's script would find the local server: create from the busybox
# image, start, state, exec (exit codes, stdout/stderr, stdin, environment, a missing
# binary), files put/get/delete with ownership, freeze, stop, snapshot, delete. The
# checks live in pylxd_check.py, which prints one TAP line each; they are counted here.
# Afterwards no container process, cgroup or mount of this daemon is left. TAP output.
if [ -z "${BERTH_IN_NETNS:-}" ] && [ "$(id -u)" = 0 ]; then
	T_PYLXD_OUT=$(mktemp -d /tmp/berth-t-pylxd.XXXXXX)
	srcdir=${BERTH_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
	"$srcdir/images/build" busybox "$T_PYLXD_OUT" >"$T_PYLXD_OUT/fp" 2>"$T_PYLXD_OUT/log" ||
		rm -f "$T_PYLXD_OUT/fp"
	export T_PYLXD_OUT
fi

. "$(dirname "$0")/lib.sh"
[ -n "${BERTH_IN_NETNS:-}" ] && trap 'rm -rf "$T_PYLXD_OUT"' EXIT
/usr/bin/python3 -c 'import pylxd' 2>/dev/null ||
	skip_all "python3-pylxd not installed (apt-get install python3-pylxd)"
[ -s "$T_PYLXD_OUT/fp" ] || skip_all "the busybox image could not be built: $(tail -n 1 "$T_PYLXD_OUT/log")"
berth_test_init "$@"
export PATH=$BERTH_BUILDDIR:$PATH
trap 'rm -rf "$T_PYLXD_OUT"; _berth_test_exit' EXIT

# What this daemon's containers may leave: cgroups under its own base (doc/runtime.md),
# processes whose parent is a berth-monitor, mounts in this namespace.
CGH=berth-$(printf "%s" "$BERTH_DIR" | sha256sum | cut -c1-8)
container_cgroups() { find /sys/fs/cgroup -mindepth 2 -type d -path "*/$CGH/*" 2>/dev/null | sort; }
container_processes() { pgrep -f "berth-monitor start $BERTH_DIR/" || true; }
before_cg=$(container_cgroups)
before_mounts=$(own_mounts)

run berth image import "$T_PYLXD_OUT"/*.tar.gz --alias busybox
rc_ok "import the busybox image"

# pylxd finds the server through LXD_DIR, not through an endpoint path.
n_ok=0
n_bad=0
while IFS= read -r line; do
	case $line in
	"ok - "*) pass "pylxd: ${line#ok - }"; n_ok=$((n_ok + 1)) ;;
	"not ok - "*) fail "pylxd: ${line#not ok - }"; n_bad=$((n_bad + 1)) ;;
	*) echo "$line" ;;
	esac
done < <(LXD_DIR=$BERTH_DIR timeout 120 /usr/bin/python3 "$BERTH_SRCDIR/tests/integration/pylxd_check.py" busybox pyl1 2>"$TEST_TMP/py.err")
[ -s "$TEST_TMP/py.err" ] && diag "pylxd stderr:" "$(grep -v '^Failed to receive data' "$TEST_TMP/py.err" | tail -n 20)"
# A script that died early prints fewer lines: the full run has 26 checks (the two
# files.get-of-a-missing-file checks are alternatives; one of them prints).
is "$((n_ok + n_bad))" 26 "every pylxd check ran"

is "$(container_cgroups)" "$before_cg" "no cgroup of a container is left"
is "$(own_mounts)" "$before_mounts" "no mount is left"
is "$(container_processes)" "" "no container process is left"
