#!/bin/bash
# scripts/setup.sh: README command 1. On Debian 12, as root, from any cwd:
# installs berth's build and run dependencies with apt, builds this checkout
# out of tree (build/), installs it (binaries, systemd unit, `berth` group),
# starts berthd with its embedded defaults (state in /var/lib/berth) and prints
# `berth info`.
#
# berthd is started by systemd when systemd is PID 1; otherwise (containers,
# CI) it runs in the background with its log in /var/log/berth/berthd.log and
# its PID in /run/berthd.pid. Running this again rebuilds, reinstalls and
# restarts the daemon cleanly.
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

say "installing dependencies with apt"
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends "${BUILD_DEPS[@]}"

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
