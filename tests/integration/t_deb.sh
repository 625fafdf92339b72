#!/bin/bash
# tests/integration/t_deb.sh: the Debian package, end to end. `make deb` builds it (or
# BERTH_DEB names one already built) and lintian finds no error in it; a minimal Debian 12
# root is debootstrapped with systemd and the package's Depends (cached as a tarball in
# /var/cache/berth-test, keyed by the mirror and that list); `dpkg -i` installs the
# package there (chroot); the root boots under `systemd-nspawn --boot` with a private
# network (only lo) inside a network namespace this test makes; inside it berthd.socket
# listens and berthd does not run until the first `berth list` starts it through the
# socket; `berth admin init --auto`, the busybox image (copied in) imported, a container
# launched and exec'd into; then `dpkg --purge berth` and nothing of berth is left: no
# file dpkg listed, no /var/lib/berth or /var/log/berth, no group, no units, no process.
#
# debootstrap reaches the Debian archive of the host's apt sources (and only that, from
# the host's network namespace, as t_fresh.sh); the booted root has no network but lo.
# Slow: only in the full run (BERTH_TEST_FULL=1).
. "$(dirname "$0")/lib.sh"
[ "${BERTH_TEST_FULL:-}" = 1 ] || skip_all "slow: set BERTH_TEST_FULL=1"
[ "$(id -u)" = 0 ] || skip_all "needs root (debootstrap, chroot, systemd-nspawn)"
unset BERTH_DIR

for p in debootstrap systemd-nspawn lintian dpkg-buildpackage dpkg-deb unshare nsenter chroot; do
	command -v "$p" >/dev/null || bail_out "$p is not installed (scripts/test.sh installs it)"
done

CACHE=${BERTH_IMAGE_CACHE:-/var/cache/berth-test}
W=$(mktemp -d /var/tmp/berth-deb.XXXXXX)
TEST_TMP=$W/tmp
mkdir -p "$TEST_TMP"
ROOT=$W/root
NSPAWN=
LEADER=

mounts_under() { awk -v d="$1" '$5 == d || index($5, d "/") == 1 { n++ } END { print n + 0 }' /proc/self/mountinfo; }

deb_exit()
{
	if [ -n "$NSPAWN" ] && kill -0 "$NSPAWN" 2>/dev/null; then
		kill -TERM "$NSPAWN" 2>/dev/null
		for _ in $(seq 100); do kill -0 "$NSPAWN" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$NSPAWN" 2>/dev/null
	fi
	if [ "$(mounts_under "$W")" = 0 ]; then
		rm -rf "$W"
	else
		diag "mounts left under $W: not removed"
	fi
	TEST_TMP=
	_berth_test_exit
}
trap deb_exit EXIT
trap 'exit 1' INT TERM

t0=$(date +%s)
# ---- the package ----
if [ -n "${BERTH_DEB:-}" ]; then
	deb=$BERTH_DEB
	diag "package given: $deb"
else
	make -C "$BERTH_BUILDDIR" deb >"$W/deb.log" 2>&1 || diag "$(tail -n 30 "$W/deb.log")"
	deb=$(ls "$BERTH_BUILDDIR"/deb/berth_*.deb 2>/dev/null | head -n 1)
	diag "make deb: $(($(date +%s) - t0)) s"
fi
ok "the package is built" test -s "$deb"
[ -s "$deb" ] || bail_out "no package"
diag "package: $(basename "$deb"), $(stat -c %s "$deb") bytes"
is "$(dpkg-deb -f "$deb" Package)" berth "its name is berth"
run dpkg-deb -c "$deb"
for f in usr/sbin/berthd usr/bin/berth usr/libexec/berth/berth-monitor usr/libexec/berth/berth-proxy \
	usr/libexec/berth/berth-agent lib/systemd/system/berthd.service lib/systemd/system/berthd.socket \
	usr/share/bash-completion/completions/berth usr/share/man/man1/berth.1.gz \
	usr/share/man/man8/berthd.8.gz etc/logrotate.d/berth usr/share/doc/berth/copyright; do
	like "$OUT" " \./$f\$" "it ships /$f"
done
if grep -q 'berth-vmmon' "$BERTH_SRCDIR/Makefile.am"; then
	like "$OUT" " \./usr/libexec/berth/berth-vmmon\$" "it ships berth-vmmon"
fi
lintian "$deb" >"$W/lintian.txt" 2>&1
diag "lintian:" "$(grep -v 'running with root privileges' "$W/lintian.txt")"
unlike "$(cat "$W/lintian.txt")" '^E: ' "lintian reports no error"

# ---- the root: minbase, systemd and the package's dependencies ----
mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
	/etc/apt/sources.list.d/*.sources 2>/dev/null |
	sed -n -e 's|^deb \(\[[^]]*\] \)\{0,1\}\(https\{0,1\}://[^ ]*/debian/\{0,1\}\) .*|\2|p' \
		-e 's|^URIs: *\(https\{0,1\}://[^ ]*/debian/\{0,1\}\)$|\1|p' | head -1)
[ -n "$mirror" ] || bail_out "no Debian mirror in the host's apt sources"
deps=$(dpkg-deb -f "$deb" Depends | tr ',' '\n' | sed -e 's/|.*//' -e 's/(.*)//' -e 's/ //g' |
	grep -v '^$' | sort -u | paste -sd, -)
include=systemd,systemd-sysv,dbus,$deps
diag "debootstrap --include=$include"
key=$(printf '%s' "bookworm minbase amd64 $mirror $include" | sha256sum | cut -c1-16)
tarball=$CACHE/deb-root-bookworm-$key.tar.gz
t1=$(date +%s)
if [ ! -s "$tarball" ]; then
	mkdir -p "$CACHE" "$W/mb"
	if unshare --mount --propagation private -- debootstrap --variant=minbase --arch=amd64 \
		--include="$include" bookworm "$W/mb" "$mirror" >"$W/debootstrap.log" 2>&1; then
		rm -rf "$W"/mb/var/cache/apt/archives/*.deb "$W"/mb/var/lib/apt/lists/*_*
		tar -C "$W/mb" --numeric-owner -cf - . | gzip -n -1 >"$tarball.tmp.$$" &&
			mv "$tarball.tmp.$$" "$tarball"
		rm -rf "$W/mb" "$tarball.tmp.$$"
	else
		diag "$(tail -n 5 "$W/debootstrap.log")"
	fi
fi
ok "a bookworm root with systemd and the package's Depends ($tarball)" test -s "$tarball"
[ -s "$tarball" ] || bail_out "no root"
mkdir -p "$ROOT"
tar -C "$ROOT" --numeric-owner -xzf "$tarball" || bail_out "cannot unpack $tarball"
diag "root ready in $(($(date +%s) - t1)) s"

# ---- dpkg -i in a chroot ----
cp "$deb" "$ROOT/tmp/berth.deb"
echo berth-deb >"$ROOT/etc/hostname"
in_chroot()
{
	unshare --mount --pid --fork --propagation private -- /bin/bash -c '
		root=$1
		shift
		mount -t proc proc "$root/proc" || exit 125
		chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
			LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"
		st=$?
		umount "$root/proc"
		exit $st' in_chroot "$ROOT" "$@" </dev/null
}
run in_chroot dpkg -i /tmp/berth.deb
rc_ok "dpkg -i berth.deb in the root (its dependencies are there)"
[ "$RC" = 0 ] || diag "$OUT"
like "$(cat "$ROOT/etc/group")" '^berth:x:[0-9]+:' "postinst made the berth group"
ok "berthd.socket is enabled" test -L "$ROOT/etc/systemd/system/sockets.target.wants/berthd.socket"
ok "berthd.service is not (the socket starts it)" \
	test ! -e "$ROOT/etc/systemd/system/multi-user.target.wants/berthd.service"
in_chroot dpkg -L berth >"$W/files.txt"
ok "dpkg lists the package's files" grep -qx /usr/sbin/berthd "$W/files.txt"

# What the container will run: the cached busybox image, copied in.
mkdir -p "$W/img"
"$BERTH_SRCDIR/images/build" busybox "$W/img" >"$W/img/fp" 2>"$W/img/log" ||
	diag "$(tail -n 3 "$W/img/log")"
img=$(ls "$W"/img/*.tar.* 2>/dev/null | head -n 1)
ok "the busybox image is there to copy in" test -n "$img"
[ -n "$img" ] && cp "$img" "$ROOT/root/busybox.${img##*/busybox.}"

# ---- boot it: systemd-nspawn in a network namespace of ours, only lo inside ----
# The unified cgroup hierarchy inside: on a legacy or hybrid host nspawn would mount the
# v1 controllers read-only, where berth-monitor could make no cgroup for its container.
SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1 unshare --net -- systemd-nspawn --quiet --boot --register=no --keep-unit --private-network \
	--console=passive -D "$ROOT" -M berth-deb-$$ >"$W/nspawn.log" 2>&1 &
NSPAWN=$!
# The container's PID 1, as the host sees it: the descendant of nspawn whose innermost
# pid is 1.
find_leader()
{
	local p q
	for p in $(ps -e -o pid=); do
		awk '/^NSpid:/ { exit !($NF == 1 && NF > 2) }' "/proc/$p/status" 2>/dev/null || continue
		q=$p
		while [ -n "$q" ] && [ "$q" -gt 1 ] && [ "$q" != "$NSPAWN" ]; do
			q=$(awk '/^PPid:/ { print $2 }' "/proc/$q/status" 2>/dev/null)
		done
		[ "$q" = "$NSPAWN" ] && echo "$p" && return 0
	done
	return 1
}
for _ in $(seq 100); do
	LEADER=$(find_leader) && break
	kill -0 "$NSPAWN" 2>/dev/null || break
	sleep 0.2
done
ok "systemd-nspawn --boot started the root's systemd" test -n "$LEADER"
[ -n "$LEADER" ] || { diag "$(tail -n 20 "$W/nspawn.log")"; bail_out "no container"; }
inside() { nsenter --target "$LEADER" --all -- /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
	HOME=/root LANG=C.UTF-8 "$@"; }
run inside timeout 120 systemctl is-system-running --wait
like "$OUT" '^(running|degraded)$' "its systemd finished booting ($OUT)"
[ "$OUT" = degraded ] && diag "failed units: $(inside systemctl --failed --no-legend 2>&1)"
run inside ip -o link show
is "$(printf '%s\n' "$OUT" | awk -F': ' '{print $2}' | paste -sd' ' -)" lo "only lo inside"

# ---- socket activation, init, a container ----
is "$(inside systemctl is-active berthd.socket)" active "berthd.socket listens"
is "$(inside systemctl is-active berthd.service)" inactive "berthd is not running before the first client"
run inside stat -c '%U:%G %a' /var/lib/berth/unix.socket
is "$OUT" "root:berth 660" "the socket is root:berth, 0660"
run inside timeout 60 berth list
rc_ok "the first 'berth list' is answered"
is "$(inside systemctl is-active berthd.service)" active "and berthd was started by it"
like "$(inside journalctl -u berthd.service --no-pager 2>&1)" 'passed by systemd' \
	"berthd serves the socket systemd passed"
run inside timeout 120 berth admin init --auto
rc_ok "berth admin init --auto"
run inside timeout 120 berth image import "/root/busybox.${img##*/busybox.}" --alias busybox
rc_ok "the busybox image imports"
run inside timeout 120 berth launch busybox c1
rc_ok "a busybox container launches inside the booted root"
[ "$RC" = 0 ] || diag "$(inside journalctl -u berthd.service --no-pager 2>&1 | tail -n 20)"
run inside timeout 30 berth exec c1 -- echo hello
is "$OUT" hello "exec in it answers"
run inside timeout 30 berth list -c ns -f csv
is "$OUT" "c1,RUNNING" "berth list shows it running"
# systemd made the root's "/" shared: the container's own mounts stay in its namespace
run inside sh -c 'grep -c "/containers/default_c1/rootfs/" /proc/$(pidof berthd)/mountinfo'
is "$OUT" 0 "none of the container's mounts shows in berthd's namespace"

# ---- admin shutdown under socket activation: a new connection would start berthd again ----
run inside timeout 60 berth admin shutdown --timeout 30
rc_ok "berth admin shutdown returns under socket activation"
for _ in $(seq 100); do [ "$(inside systemctl is-active berthd.service)" = inactive ] && break; sleep 0.1; done
is "$(inside systemctl is-active berthd.service)" inactive "berthd has stopped"
is "$(inside systemctl is-active berthd.socket)" active "its socket still listens"
run inside timeout 60 berth list -c ns -f csv
is "$OUT" "c1,STOPPED" "the next client starts berthd again, and shutdown had stopped c1"

# ---- purge: nothing left ----
run inside timeout 300 dpkg --purge berth
rc_ok "dpkg --purge berth"
[ "$RC" = 0 ] || diag "$OUT" "$ERR"
left=
while read -r f; do
	# (directories other packages share, /usr/share/man say, stay)
	[ -d "$ROOT$f" ] && [[ $f != *berth* ]] && continue
	[ -e "$ROOT$f" ] || [ -L "$ROOT$f" ] && left="$left $f"
done <"$W/files.txt"
is "$left" "" "none of the package's files is left (directories shared with others aside)"
ok "/var/lib/berth is gone" test ! -e "$ROOT/var/lib/berth"
ok "/var/log/berth is gone" test ! -e "$ROOT/var/log/berth"
unlike "$(cat "$ROOT/etc/group")" '^berth:' "the berth group is gone"
run inside sh -c 'find /etc/systemd /lib/systemd /run/systemd -name "berthd*"'
is "$OUT" "" "no unit or unit link of berthd is left"
run inside systemctl is-active berthd.service berthd.socket
unlike "$OUT" '^active' "neither unit is active"
run inside ps -e -o comm=
unlike "$OUT" '^(berthd|berth-monitor|berth-proxy|dnsmasq)$' "no berthd, berth-monitor, berth-proxy or dnsmasq runs"
is "$(dpkg-query --admindir="$ROOT/var/lib/dpkg" -W -f '${Status}' berth 2>/dev/null)" "" \
	"dpkg knows nothing of berth any more"

# ---- README command 1's install through the package: scripts/setup.sh's start step ----
# In the booted root systemd is PID 1, so setup.sh takes its package path: apt-get
# installs build/deb's package, berthd.socket starts berthd on the first `berth info`.
# Run twice: the second time the package is reinstalled in place, berthd restarted,
# its state kept. (Its deps and build steps need the network: they are not run here.)
mkdir -p "$ROOT/root/src/build/deb"
cp -r "$BERTH_SRCDIR/scripts" "$ROOT/root/src/"
cp "$deb" "$ROOT/root/src/build/deb/"
run inside timeout 300 env SETUP_STEPS=start NO_APT=1 bash /root/src/scripts/setup.sh
rc_ok "setup.sh's start step"
[ "$RC" = 0 ] || diag "$OUT" "$ERR"
like "$OUT" '^==> install path: the Debian package' "it took the package path (systemd is PID 1)"
is "$(inside dpkg-query -W -f '${Status}' berth 2>&1)" "install ok installed" "apt installed the package"
is "$(inside systemctl is-active berthd.service)" active "berthd runs, started through its socket"
pid1=$(inside systemctl show -P MainPID berthd.service)
run inside timeout 60 berth profile create kept
rc_ok "a profile made before setup.sh runs again"
run inside timeout 300 env SETUP_STEPS=start NO_APT=1 bash /root/src/scripts/setup.sh
rc_ok "setup.sh's start step again"
[ "$RC" = 0 ] || diag "$OUT" "$ERR"
like "$OUT" 'Preparing to unpack .*berth_' "the package is unpacked over itself"
pid2=$(inside systemctl show -P MainPID berthd.service)
isnt "$pid2" "$pid1" "berthd was restarted (MainPID $pid1 -> $pid2)"
run inside timeout 60 berth profile list -f csv
like "$OUT" '^kept,' "berthd's state is kept"
run inside timeout 300 dpkg --purge berth
rc_ok "dpkg --purge berth again"

# (SIGRTMIN+4 asks systemd for a poweroff, as systemctl poweroff would)
kill -s SIGRTMIN+4 "$LEADER"
for _ in $(seq 600); do kill -0 "$NSPAWN" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$NSPAWN" 2>/dev/null; then fail "the root powers off" "nspawn still runs after 60 s"; else
	pass "the root powers off"
fi
wait "$NSPAWN" 2>/dev/null
NSPAWN=
is "$(mounts_under "$W")" 0 "nothing is mounted under the test's directory"
diag "t_deb.sh: $(($(date +%s) - t0)) s in all"
