#!/bin/bash
# tests/integration/t_debian.sh: a Debian 12 system container through berthd and the
# berth CLI, as an admin would run it: `berth launch debian/12 d1`, systemd as PID 1
# reaching `running` (or `degraded`, with the failed units printed), only the
# container's processes visible, root mapped to the host's subordinate range, a clean
# stop through SIGRTMIN+3, delete. Slow (systemd boot, a 150 MB image): only in the full
# run (BERTH_TEST_FULL=1). Mounts, cgroups and monitors are counted before and after.
if [ -z "${BERTH_IN_NETNS:-}" ] && [ "$(id -u)" = 0 ] && [ "${BERTH_TEST_FULL:-}" = 1 ]; then
	T_DEB_OUT=$(mktemp -d /tmp/berth-t-deb.XXXXXX)
	"${BERTH_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}/images/build" debian-12 "$T_DEB_OUT" \
		>"$T_DEB_OUT/fp" 2>"$T_DEB_OUT/log" || rm -f "$T_DEB_OUT/fp"
	export T_DEB_OUT
fi
. "$(dirname "$0")/lib.sh"
[ "${BERTH_TEST_FULL:-}" = 1 ] || skip_all "slow: set BERTH_TEST_FULL=1"
[ -n "${BERTH_IN_NETNS:-}" ] && trap 'rm -rf "$T_DEB_OUT"' EXIT
[ -s "$T_DEB_OUT/fp" ] || skip_all "the debian-12 image could not be built: $(tail -n 1 "$T_DEB_OUT/log")"
: "${BERTH_MONITOR:=$BERTH_BUILDDIR/berth-monitor}"
BERTHD_ENV=(BERTH_MONITOR="$BERTH_MONITOR")
berth_test_init "$@"
trap 'rm -rf "$T_DEB_OUT"; _berth_test_exit' EXIT
export PATH=$BERTH_BUILDDIR:$PATH

mounts() { own_mounts; }
CGH=berth-$(printf '%s' "$BERTH_DIR" | sha256sum | cut -c1-8)
cgroups() { find /sys/fs/cgroup -type d -path "*/$CGH*" 2>/dev/null | wc -l; }
monitors() { pgrep -cf "^$BERTH_MONITOR start $BERTH_DIR/" || true; }
mounts0=$(mounts)
cgroups0=$(cgroups)

run berth image import "$T_DEB_OUT"/*.tar.xz --alias debian/12
rc_ok "import the debian/12 image"
t0=$(date +%s%N)
run berth launch debian/12 d1
rc_ok "berth launch debian/12 d1"
# Until systemd has opened its socket, systemctl cannot ask it ("Failed to connect to
# bus"), and prints nothing: ask again for up to 120 s.
for _ in $(seq 240); do
	run berth exec d1 -- systemctl is-system-running --wait
	[ -n "$OUT" ] && break
	sleep 0.5
done
t1=$(date +%s%N)
diag "launch to systemd ready: $(((t1 - t0) / 1000000)) ms"
like "$OUT" '^(running|degraded)' "systemctl is-system-running --wait: running or degraded"
if [ "$OUT" != running ]; then
	run berth exec d1 -- systemctl --failed --no-legend --plain
	diag "failed units:" "$OUT"
fi
run berth exec d1 -- ps -o pid=,comm= -p 1
like "$OUT" '1 systemd' "PID 1 is systemd"
# ps inside lists exactly the processes of the container's cgroup tree (seen from the
# host), plus ps itself. Services may come and go: up to 5 tries.
api GET /1.0/instances/d1/state
pid=$(jget 'j["metadata"]["pid"]')
cg=$(find /sys/fs/cgroup/unified /sys/fs/cgroup -maxdepth 3 -type d -path "*/$CGH/default_d1" 2>/dev/null | head -n 1)
for _ in 1 2 3 4 5; do
	n_host=$(find "$cg" -name cgroup.procs -exec cat {} + | grep -c .)
	run berth exec d1 -- ps -e -o pid=
	n_in=$(grep -c . <<<"$OUT")
	[ "$n_in" = "$((n_host + 1))" ] && break
	sleep 0.5
done
is "$n_in" "$((n_host + 1))" "ps inside sees exactly the container's processes (and itself)"
subuid0=$(awk -F: '$1 == "root" { print $2; exit }' /etc/subuid)
is "$(awk '/^Uid:/ { print $2 }' /proc/"$pid"/status)" "$subuid0" "container root is host uid $subuid0 (root's first range in /etc/subuid)"
run berth exec d1 -- sh -c 'tr "\0" "\n" </proc/1/environ'
like "$OUT" '^container=lxc$' "PID 1 has container=lxc"
run berth exec d1 -- hostname
is "$OUT" d1 "the hostname is the instance name"

t0=$(date +%s%N)
run berth stop d1
t1=$(date +%s%N)
rc_ok "berth stop d1 (clean: SIGRTMIN+3 to systemd)"
diag "clean stop: $(((t1 - t0) / 1000000)) ms"
api GET /1.0/instances/d1/state
is "$(jget 'j["metadata"]["status"]')" Stopped "d1 is Stopped"
like "$(cat "$BERTH_DIR/run/default_d1/stopped" 2>/dev/null)" '^(poweroff|stopped)' \
	"systemd powered off by itself (not killed after the timeout)"
run berth delete d1
rc_ok "berth delete d1"
for _ in $(seq 50); do [ "$(monitors)" = 0 ] && break; sleep 0.1; done
is "$(monitors)" 0 "no monitor left"
is "$(cgroups)" "$cgroups0" "no cgroup left"
is "$(mounts)" "$mounts0" "no mount left"
