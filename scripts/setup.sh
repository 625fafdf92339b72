#!/bin/bash
# scripts/setup.sh: README command 1. On Debian 12, as root, from any cwd:
# installs berth's build and run dependencies with apt, builds this checkout
# out of tree (build/), installs it (binaries, systemd units, `berth` group),
# starts berthd with its embedded defaults (state in /var/lib/berth), prints
# `berth info`, then builds the debian/12 image from images/recipes/debian-12
# (debootstrap from the Debian archive, a few minutes the first time; cached in
# /var/cache/berth-test), imports it as `debian/12`, launches a container `web`
# from it, waits for its systemd (`systemctl is-system-running --wait`) and ends
# with `berth list`.
#
# Two ways to install, chosen by what runs as PID 1 (SETUP_INSTALL=package or
# source forces one; the script says which it took):
# - package, where systemd is PID 1: the build step makes the Debian package
#   with `make deb` (debhelper and dpkg-dev are installed for it), the start
#   step installs it with `apt-get install --reinstall ./build/deb/berth_*.deb`:
#   berthd.socket listens and starts berthd on the first connection. Run again,
#   the package is upgraded (or reinstalled) in place and a running berthd
#   restarted; its state stays.
# - source, elsewhere (containers, CI): `make install`, and berthd runs in the
#   background with its log in /var/log/berth/berthd.log and its PID in
#   /run/berthd.pid. Running this again rebuilds, reinstalls and restarts the
#   daemon cleanly.
#
# Steps, in this order: deps (apt-get update and install of SETUP_DEPS from
# scripts/deps.sh, waiting up to $APT_LOCK_TIMEOUT s (600) for a dpkg or apt lock another
# apt holds), build (make, or make deb), start (make install or the package installed,
# berthd started), image (images/build debian/12), web (import, launch `web`, wait,
# `berth list`). SETUP_STEPS picks some of
# them (default: all; e.g. SETUP_STEPS="deps image" is what t_fresh.sh runs in a minimal
# Debian root); NO_APT=1 leaves out deps (the packages are there already). A failing
# step is named, with what to do about it.
set -euo pipefail

src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
prefix=/usr
sbindir=$prefix/sbin
bindir=$prefix/bin
statedir=/var/lib/berth
logdir=/var/log/berth
pidfile=/run/berthd.pid

say() { printf '==> %s\n' "$*"; }
die() { printf 'setup.sh: %s\n' "$*" >&2; exit 1; }

# step NAME HINT: from here on a failure is reported as step NAME's, with HINT.
step_name=
step_hint=
step()
{
	step_name=$1
	step_hint=$2
}
on_exit()
{
	local st=$?
	[ -n "${imgdir:-}" ] && rm -rf "$imgdir"
	[ "$st" = 0 ] || [ -z "$step_name" ] ||
		printf 'setup.sh: step "%s" failed (exit status %s): %s\n' "$step_name" "$st" "$step_hint" >&2
}
trap on_exit EXIT

steps=" ${SETUP_STEPS:-deps build start image web} "
want() { [[ $steps == *" $1 "* ]]; }
for s in $steps; do
	case $s in
	deps | build | start | image | web) ;;
	*) die "SETUP_STEPS: unknown step \"$s\" (steps: deps build start image web)" ;;
	esac
done
[ "${NO_APT:-}" != 1 ] || steps=${steps/ deps / }

[ "$(id -u)" = 0 ] || die "run as root: sudo bash $0"

. "$src/scripts/deps.sh"

how=${SETUP_INSTALL:-}
case $how in
package | source) ;;
"") if [ -d /run/systemd/system ] && command -v dpkg >/dev/null; then how=package; else how=source; fi ;;
*) die "SETUP_INSTALL: \"$how\" is neither package nor source" ;;
esac
if [ "$how" = package ]; then
	say "install path: the Debian package (make deb, apt-get install; systemd runs berthd)"
else
	say "install path: make install (systemd is not PID 1 here: berthd runs in the background)"
fi
lock_timeout=${APT_LOCK_TIMEOUT:-600}
apt=(apt-get -o DPkg::Lock::Timeout="$lock_timeout")

if want deps; then
	say "installing dependencies with apt"
	export DEBIAN_FRONTEND=noninteractive
	# Wait for a lock another apt or dpkg holds (unattended-upgrades on a fresh machine)
	# instead of failing at once: DPkg::Lock::Timeout makes apt-get install wait for
	# dpkg's locks; apt-get update does not wait for the package lists' lock, so it is
	# tried again every 5 s while that is what it failed on.
	step deps "apt-get update could not read the package lists: check the network and the \
sources in /etc/apt (or that no other apt held its lock for $lock_timeout s), then run this again"
	deadline=$((SECONDS + lock_timeout))
	until out=$(LC_ALL=C "${apt[@]}" update 2>&1 </dev/null); do
		printf '%s\n' "$out"
		[[ $out == *"Could not get lock"* ]] && [ "$SECONDS" -lt "$deadline" ] || false
		say "another apt holds the package lists' lock: apt-get update again in 5 s"
		sleep 5
	done
	printf '%s\n' "$out"
	step deps "apt-get install of the packages in scripts/deps.sh failed: see apt's message \
above (\"dpkg --configure -a\" repairs an interrupted dpkg), then run this again"
	deps=("${SETUP_DEPS[@]}")
	[ "$how" = source ] || deps+=("${DEB_BUILD_DEPS[@]}")
	"${apt[@]}" install -y --no-install-recommends "${deps[@]}" </dev/null
fi

if want build; then
	say "building $src in $src/build"
	step build "the build failed (its errors are above); without the deps step (NO_APT=1) \
the packages in scripts/deps.sh must be installed already"
	cd "$src"
	./autogen.sh
	mkdir -p build
	cd build
	../configure --prefix="$prefix" --sysconfdir=/etc --localstatedir=/var
	if [ "$how" = package ]; then
		say "making the Debian package (make deb: dpkg-buildpackage in build/deb)"
		DEB_BUILD_OPTIONS="parallel=$(nproc)" make deb
	else
		make -j"$(nproc)"
	fi
fi

# Stop our own previous berthd (by the PID we recorded) before replacing its binary.
stop_berthd()
{
	[ -f "$pidfile" ] || return 0
	local pid exe
	pid=$(cat "$pidfile")
	exe=$(readlink "/proc/$pid/exe" 2>/dev/null || true)
	case "$exe" in
	"$sbindir/berthd" | "$sbindir/berthd (deleted)") ;;
	*)
		rm -f "$pidfile"
		return 0
		;;
	esac
	say "stopping berthd (pid $pid)"
	kill -TERM "$pid"
	for _ in $(seq 150); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$pid" 2>/dev/null && die "berthd (pid $pid) still running 15 s after SIGTERM"
	rm -f "$pidfile"
}

if want start; then
	step start "installing berth (make install, or apt-get install of the package) or starting \
berthd failed: see the messages above (berthd's log: \
journalctl -u berthd with systemd, $logdir/berthd.log without)"
	[ -d "$src/build" ] || die "no build in $src/build: run the build step first"
	cd "$src/build"
	if [ "$how" = package ]; then
		deb=$(ls "$src"/build/deb/berth_*.deb 2>/dev/null | head -n 1)
		[ -n "$deb" ] || die "no package in $src/build/deb: run the build step first"
		stop_berthd
		say "installing $(basename "$deb") with apt (berthd.socket starts berthd on first use)"
		DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y --reinstall "$deb" </dev/null
	elif [ -d /run/systemd/system ]; then
		say "installing"
		make install
		say "starting berthd with systemd"
		systemctl daemon-reload
		systemctl enable berthd
		systemctl restart berthd
	else
		stop_berthd
		say "installing"
		make install
		say "starting berthd in the background (no systemd), log in $logdir/berthd.log"
		mkdir -p "$logdir"
		setsid "$sbindir/berthd" </dev/null >>"$logdir/berthd.log" 2>&1 &
		echo $! >"$pidfile"
	fi

	say "waiting for $statedir/unix.socket"
	for _ in $(seq 300); do
		[ -S "$statedir/unix.socket" ] && "$bindir/berth" info >/dev/null 2>&1 && break
		if [ -f "$pidfile" ] && ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
			tail -n 50 "$logdir/berthd.log" >&2
			die "berthd exited; log above"
		fi
		sleep 0.1
	done
	"$bindir/berth" info
fi

# ---- the main job: a Debian 12 system container from the local recipe ----
berth=$bindir/berth
fp=
if want image; then
	say "building the debian/12 image (images/recipes/debian-12; cached in /var/cache/berth-test)"
	step image "images/build debian/12 failed (its messages are above): it runs debootstrap \
from the Debian mirror in /etc/apt's sources (BERTH_DEBIAN_MIRROR overrides it), which must be \
reachable; run this again when it is"
	imgdir=$(mktemp -d /tmp/berth-setup.XXXXXX)
	"$src/images/build" debian/12 "$imgdir" >"$imgdir/fp"
	fp=$(cat "$imgdir/fp")
	say "built: $(cd "$imgdir" && ls ./*.tar.*) (fingerprint $fp)"
fi
want web || exit 0
[ -n "$fp" ] || die "the web step needs the image step"
step web "importing debian/12 or launching web failed: see the messages above and \
\"$berth info\" (is berthd running? the start step starts it)"
if [ "$("$berth" image alias list -f csv 2>/dev/null | awk -F, '$1 == "debian/12" { print $2 }')" != "${fp:0:12}" ]; then
	"$berth" image alias delete debian/12 >/dev/null 2>&1 || true
	if "$berth" image info "$fp" >/dev/null 2>&1; then
		"$berth" image alias create debian/12 "$fp"
	else
		say "importing it as debian/12"
		"$berth" image import "$imgdir"/*.tar.* --alias debian/12
	fi
fi

name=web
if ! "$berth" info "$name" >/dev/null 2>&1; then
	say "launching $name from debian/12"
	"$berth" launch debian/12 "$name"
elif ! "$berth" list "$name" -c s -f csv | grep -qx RUNNING; then
	say "starting $name"
	"$berth" start "$name"
fi
say "waiting for systemd in $name: berth exec $name -- systemctl is-system-running --wait"
# (until systemd has opened its socket, systemctl cannot ask it and prints nothing)
for _ in $(seq 120); do
	state=$("$berth" exec "$name" -- systemctl is-system-running --wait 2>/dev/null || true)
	[ -n "$state" ] && break
	sleep 0.5
done
echo "${state:-no answer from systemd in $name}"
# systemd's "running" does not wait for the network: give eth0 up to 30 s to lease its
# address on berthbr0, so that the list below shows it.
for _ in $(seq 60); do
	[ -n "$("$berth" list "$name" -c 4 -f csv 2>/dev/null)" ] && break
	sleep 0.5
done
"$berth" list
