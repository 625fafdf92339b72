#!/bin/bash
# tests/integration/t_runtime_debian.sh: boot the cached Debian 12 image (systemd) with
# berth-monitor and wait for `systemctl is-system-running`. Slow: only in the full run
# (BERTH_TEST_FULL=1).
# The image is built (or copied from /var/cache/berth-test) before lib.sh enters the
# namespaces: building needs the network.
if [ -z "${BERTH_IN_NETNS:-}" ] && [ "$(id -u)" = 0 ] && [ "${BERTH_TEST_FULL:-}" = 1 ]; then
	T_RTD_OUT=$(mktemp -d /tmp/berth-t-rt.XXXXXX)
	"${BERTH_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}/images/build" debian-12 "$T_RTD_OUT" >/dev/null 2>"$T_RTD_OUT/log" || true
	export T_RTD_OUT
fi
. "$(dirname "$0")/lib.sh"

[ "${BERTH_TEST_FULL:-}" = 1 ] || skip_all "slow: set BERTH_TEST_FULL=1"
_enter_namespaces "$@"
MON="$BERTH_BUILDDIR/berth-monitor"
CTL="$PY $BERTH_SRCDIR/tests/integration/monitorctl.py"
IMAGE=$(ls "$T_RTD_OUT"/*.tar.xz 2>/dev/null | head -n 1)
[ -n "$IMAGE" ] || skip_all "the debian-12 image could not be built: $(tail -n 1 "$T_RTD_OUT/log" 2>/dev/null)"

TEST_TMP=$(mktemp -d /tmp/berth-rtd.XXXXXX)
CGP=berth-rtd-$$
trap 'st=$?; [ -f "$TEST_TMP/run/monitor.pid" ] && kill -KILL "$(cat "$TEST_TMP/run/monitor.pid")"; sleep 0.3;
for f in /sys/fs/cgroup/*/"$CGP" /sys/fs/cgroup/"$CGP"; do [ -d "$f" ] && find "$f" -depth -type d -exec rmdir {} + 2>/dev/null; done;
rm -rf "$T_RTD_OUT"; (exit $st); _berth_test_exit' EXIT
trap 'exit 1' INT TERM

MOUNTS0=$(own_mounts)
mkdir -p "$TEST_TMP/run"
tar -C "$TEST_TMP" -xJf "$IMAGE" --numeric-owner rootfs || bail_out "cannot unpack $IMAGE"
echo d12 >"$TEST_TMP/rootfs/etc/hostname"
cat >"$TEST_TMP/run/spec" <<SPEC
name=d12
project=default
rootfs=$TEST_TMP/rootfs
volume=$TEST_TMP
hostname=d12
cgroup=$CGP/d12
uid_map=0 100000 65536
gid_map=0 100000 65536
SPEC
ERR=$("$MON" start "$TEST_TMP/run" 2>&1)
is "$?" 0 "debian 12 starts" || bail_out "$ERR"
# Until systemd has its private bus socket, systemctl cannot even ask: wait for it.
for i in $(seq 240); do
	OUT=$(timeout 120 "$MON" exec "$TEST_TMP/run" -- systemctl is-system-running --wait 2>&1)
	case $OUT in *"Failed to connect to bus"*) sleep 0.5 ;; *) break ;; esac
done
like "$OUT" '^(running|degraded)$' "systemd is running or degraded"
is "$OUT" running "systemd reports running (no failed unit)"
[ "$OUT" = running ] || diag "$("$MON" exec "$TEST_TMP/run" -- systemctl --failed --no-pager 2>&1)"
OUT=$("$MON" exec "$TEST_TMP/run" -- cat /proc/1/comm)
is "$OUT" systemd "PID 1 is systemd"
like "$("$MON" exec "$TEST_TMP/run" -- cat /proc/self/cgroup)" '0::/' "cgroup namespace rooted at the container"
for i in $(seq 100); do grep -q 'd12 login:' "$TEST_TMP/run/console.log" && break; sleep 0.2; done
like "$(cat "$TEST_TMP/run/console.log")" 'd12 login:' "console shows a getty"
OUT=$($CTL "$TEST_TMP/run/monitor.sock" "stop 60" --timeout 90)
is "$OUT" "ok stopped" "systemd powers off on SIGRTMIN+3"
is "$(cat "$TEST_TMP/run/stopped")" poweroff "RUNDIR/stopped says poweroff"
is "$(find /sys/fs/cgroup/*/"$CGP" /sys/fs/cgroup/"$CGP" -mindepth 1 -type d 2>/dev/null | wc -l)" 0 \
	"systemd's sub-cgroups removed"
is "$(own_mounts)" "$MOUNTS0" "no mount left"
for f in /sys/fs/cgroup/*/"$CGP" /sys/fs/cgroup/"$CGP"; do [ -d "$f" ] && rmdir "$f"; done
rm -rf "$TEST_TMP"
