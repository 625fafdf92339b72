#!/bin/bash
# scripts/setup.sh: README command 1. On Debian 12, as root, from any cwd:
# installs berth's build and run dependencies with apt, builds this checkout
# out of tree (build/), installs it (binaries, systemd unit, `berth` group),
# starts berthd with its embedded defaults (state in /var/lib/berth), prints
# `berth info`, then builds the debian/12 image from images/recipes/debian-12
# (debootstrap from the Debian archive, a few minutes the first time; cached in
# /var/cache/berth-test), imports it as `debian/12`, launches a container `web`
# from it, waits for its systemd (`systemctl is-system-running --wait`) and ends
# with `berth list`.
#
# berthd is started by systemd when systemd is PID 1; otherwise (containers,
# CI) it runs in the background with its log in /var/log/berth/berthd.log and
# its PID in /run/berthd.pid. Running this again rebuilds, reinstalls and
# restarts the daemon cleanly. NO_APT=1 skips apt (the packages are there already).
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

[ "$(id -u)" = 0 ] || die "run as root: sudo bash $0"

. "$src/scripts/deps.sh"

if [ "${NO_APT:-}" != 1 ]; then
	say "installing dependencies with apt"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update
	apt-get install -y --no-install-recommends "${BUILD_DEPS[@]}"
fi

say "building $src in $src/build"
cd "$src"
./autogen.sh
mkdir -p build
cd build
../configure --prefix="$prefix" --sysconfdir=/etc --localstatedir=/var
make -j"$(nproc)"

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

if [ -d /run/systemd/system ]; then
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

# ---- the main job: a Debian 12 system container from the local recipe ----
berth=$bindir/berth
say "building the debian/12 image (images/recipes/debian-12; cached in /var/cache/berth-test)"
imgdir=$(mktemp -d /tmp/berth-setup.XXXXXX)
trap 'rm -rf "$imgdir"' EXIT
"$src/images/build" debian/12 "$imgdir" >"$imgdir/fp"
fp=$(cat "$imgdir/fp")
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
