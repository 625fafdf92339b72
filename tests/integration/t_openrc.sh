#!/bin/bash
# tests/integration/t_openrc.sh: an OpenRC system container (the debian-12-openrc recipe:
# sysvinit's init running OpenRC from inittab, as Debian packages it; Alpine boots OpenRC
# the same way from busybox init) through berthd and the berth CLI. Launch to the default
# runlevel with its service (berth-demo, busybox httpd) started and answering, eth0 leased
# on berthbr0 through ifupdown, exec; `berth stop` sends SIGPWR and OpenRC stops every
# service (berth-demo's stop_post logs it into the rootfs) well within the timeout instead
# of being killed at it; `berth start`, `berth restart` and `reboot` from inside each go
# through the same clean stop and boot again. Slow (a 60 MB image, a full boot each time):
# only in the full run (BERTH_TEST_FULL=1).
. "$(dirname "$0")/lib.sh"
[ "${BERTH_TEST_FULL:-}" = 1 ] || skip_all "slow: set BERTH_TEST_FULL=1"
berth_test_images debian-12-openrc
: "${BERTH_MONITOR:=$BERTH_BUILDDIR/berth-monitor}"
BERTHD_ENV=(BERTH_MONITOR="$BERTH_MONITOR")
berth_test_init "$@"
export PATH=$BERTH_BUILDDIR:$PATH

mounts() { grep -c . /proc/self/mountinfo; }
CGH=berth-$(printf '%s' "$BERTH_DIR" | sha256sum | cut -c1-8)
cgroups() { find /sys/fs/cgroup -maxdepth 3 -type d -name "$CGH" 2>/dev/null | wc -l; }
monitors() { pgrep -cf "^$BERTH_MONITOR start $BERTH_DIR/" || true; }
mounts0=$(mounts)
cgroups0=$(cgroups)
ms_since() { echo $((($(date +%s%N) - $1) / 1000000)); }

# booted NAME [SECONDS]: until OpenRC has reached the default runlevel with every
# service of it started, berth-demo among them (rc-status answers from OpenRC's state
# in /run; a boot in progress shows services stopped or starting), and `openrc default`
# has exited (init's "l2" entry is done). OUT is the last rc-status.
booted()
{
	local i
	for i in $(seq $((${2:-120} * 2))); do
		run berth exec "$1" -- rc-status --runlevel
		if [ "$OUT" = default ]; then
			run berth exec "$1" -- rc-status default
			if grep -Eq '^ berth-demo +\[ +started +\]$' <<<"$OUT" &&
				! grep -v '^Runlevel: default$' <<<"$OUT" | grep -Evq '\[ +started +\]$'; then
				local status=$OUT
				run berth exec "$1" -- pgrep -x openrc
				OUT=$status
				[ "$RC" = 1 ] && return 0
			fi
		fi
		sleep 0.5
	done
	return 1
}
# events NAME: berth-demo's log of its starts and stops ("start|stop EPOCH RUNLEVEL",
# OpenRC's runlevel at the time), read through the files API (the instance may be
# stopped), as "start:default stop:default ...".
events()
{
	rm -f "$TEST_TMP/events"
	berth file pull "$1/var/lib/berth-demo/events" "$TEST_TMP/events" >/dev/null 2>&1 &&
		awk '{ printf "%s%s:%s", (NR > 1 ? " " : ""), $1, $3 }' "$TEST_TMP/events"
}
# ipv4_of NAME [SECONDS]: eth0's IPv4 address from the state API once it has one.
ipv4_of()
{
	local i
	for i in $(seq $((${2:-60} * 2))); do
		api GET "/1.0/instances/$1/state"
		jget '[a["address"] for a in ((j["metadata"].get("network") or {}).get("eth0") or {}).get("addresses", []) if a["family"] == "inet"][0]' 2>/dev/null && return 0
		sleep 0.5
	done
	return 1
}
status_of() { api GET "/1.0/instances/$1/state" && jget 'j["metadata"]["status"]'; }

run berth image import "${IMAGE[debian-12-openrc]}" --alias debian/12/openrc
rc_ok "import the debian-12-openrc image"

# ---- boot to the default runlevel ----
t0=$(date +%s%N)
run berth launch debian/12/openrc o1
rc_ok "berth launch debian/12/openrc o1"
ok "rc-status: the default runlevel reached, every service started, berth-demo too" booted o1
diag "launch to the default runlevel: $(ms_since "$t0") ms" "$OUT"
run berth exec o1 -- ps -o comm= -p 1
is "$OUT" init "PID 1 is sysvinit's init"
# bracketed so that a failed exec (empty output) cannot pass as "nothing crashed"
run berth exec o1 -- sh -c 'echo "[$(rc-status --crashed)]"'
is "$OUT" "[]" "no crashed service"
run berth exec o1 -- busybox wget -q -O - http://127.0.0.1:8080/
is "$OUT" "berth-demo is served by OpenRC" "berth-demo answers on port 8080 (exec works)"
run berth exec o1 -- sh -c 'cat /proc/$(cat /run/berth-demo.pid)/comm'
is "$OUT" busybox "the pid OpenRC recorded for berth-demo is the running httpd"
ip=$(ipv4_of o1 60)
prefix=$(berth network get berthbr0 ipv4.address 2>/dev/null | cut -d. -f1-3)
like "$ip" "^${prefix:-none}\." "eth0 holds a DHCP lease on berthbr0 ($ip), taken by OpenRC's networking service"
run berth exec o1 -- ip -4 -o addr show dev eth0
like "$OUT" "inet $ip/" "... and the container sees it on eth0"
is "$(events o1)" "start:default" "berth-demo logged one start"

# ---- a clean stop: SIGPWR, telinit 0, OpenRC stops its services, halt ----
timeout=120
t0=$(date +%s%N)
run berth stop o1 --timeout "$timeout"
stop_ms=$(ms_since "$t0")
rc_ok "berth stop o1 --timeout $timeout"
diag "clean stop: $stop_ms ms (timeout ${timeout}000 ms)"
is "$(status_of o1)" Stopped "o1 is Stopped"
like "$(cat "$BERTH_DIR/run/default_o1/stopped" 2>/dev/null)" '^poweroff' \
	"init halted by itself (not killed at the timeout)"
ok "the stop took $stop_ms ms, under a quarter of the timeout" \
	test "$stop_ms" -lt $((timeout * 1000 / 4))
is "$(events o1)" "start:default stop:default" "berth-demo's stop_post ran while OpenRC went down"
run berth console o1 --show-log
# sysvinit's own "Switching to runlevel: 0" line was missing from the console log in one
# full run (cause not found), so it is not checked: the stop_post event above and OpenRC's
# "Stopping" line are what prove the shutdown ran.
like "$OUT" "Stopping berth-demo" "... and OpenRC stopping berth-demo"

# ---- start again, berth restart, reboot from inside ----
run berth start o1
rc_ok "berth start o1"
ok "... boots to the default runlevel again" booted o1
t0=$(date +%s%N)
run berth restart o1 --timeout "$timeout"
restart_ms=$(ms_since "$t0")
rc_ok "berth restart o1 --timeout $timeout"
diag "restart: $restart_ms ms"
ok "the restart took $restart_ms ms, under a quarter of the timeout" \
	test "$restart_ms" -lt $((timeout * 1000 / 4))
ok "... boots to the default runlevel again" booted o1
is "$(events o1)" "start:default stop:default start:default stop:default start:default" \
	"berth restart stopped berth-demo cleanly before the new boot"
pid1=$(api GET /1.0/instances/o1/state && jget 'j["metadata"]["pid"]')
run berth exec o1 -- reboot
rc_ok "reboot inside o1"
for _ in $(seq 120); do
	pid=$(api GET /1.0/instances/o1/state && jget 'j["metadata"]["pid"]')
	[ -n "$pid" ] && [ "$pid" != 0 ] && [ "$pid" != "$pid1" ] && break
	sleep 0.5
done
isnt "$pid" "$pid1" "o1 came back with a new init after the reboot"
ok "... which reached the default runlevel" booted o1
is "$(status_of o1)" Running "o1 is Running"
is "$(events o1)" "start:default stop:default start:default stop:default start:default stop:default start:default" \
	"the reboot stopped berth-demo cleanly too"

run berth delete --force o1
rc_ok "berth delete --force o1"
for _ in $(seq 50); do [ "$(monitors)" = 0 ] && break; sleep 0.1; done
is "$(monitors)" 0 "no monitor left"
is "$(cgroups)" "$cgroups0" "no cgroup left"
is "$(mounts)" "$mounts0" "no mount left"
