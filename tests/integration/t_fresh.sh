#!/bin/bash
# tests/integration/t_fresh.sh: README command 1 on a truly fresh Debian 12. In a chroot of
# a minimal Debian 12 root (debootstrap --variant=minbase of bookworm, cached as a tarball
# in /var/cache/berth-test), scripts/setup.sh runs its "deps" and "image" steps
# (SETUP_STEPS="deps image"): apt installs everything setup.sh lists, then images/build
# builds the debian/12 image with debootstrap. Checks: setup.sh succeeds, every program
# the two README commands need is then in the root, the image tarball is there and whole;
# apt waits for a lock another process holds instead of failing; a failing step is named
# with what to do. The chroot runs in a mount and pid namespace of its own, with /proc
# mounted and /dev bound, both unmounted after; nothing is left mounted.
#
# It needs the Debian archive of the host's apt sources (and only that): it runs in the
# host's network namespace, starts no daemon, sends nothing anywhere else. Slow (apt
# installs the build dependencies, debootstrap runs twice the first time): only in the
# full run (BERTH_TEST_FULL=1).
. "$(dirname "$0")/lib.sh"
[ "${BERTH_TEST_FULL:-}" = 1 ] || skip_all "slow: set BERTH_TEST_FULL=1"
[ "$(id -u)" = 0 ] || skip_all "needs root (debootstrap, chroot)"

CACHE=${BERTH_IMAGE_CACHE:-/var/cache/berth-test}
W=$(mktemp -d /var/tmp/berth-fresh.XXXXXX)
ROOT=$W/root
LOCKER=

# mounts_under DIR: how many mounts of this (the host's) namespace are at or below DIR.
mounts_under() { awk -v d="$1" '$5 == d || index($5, d "/") == 1 { n++ } END { print n + 0 }' /proc/self/mountinfo; }

fresh_exit()
{
	[ -n "$LOCKER" ] && kill "$LOCKER" 2>/dev/null
	# The chroot's mounts were made in a namespace that is gone by now; never remove a
	# tree something is still mounted in.
	if [ "$(mounts_under "$W")" = 0 ]; then
		rm -rf "$W"
	else
		diag "mounts left under $W: not removed"
	fi
	_berth_test_exit
}
trap fresh_exit EXIT
trap 'exit 1' INT TERM

for p in debootstrap unshare chroot tar gzip; do
	command -v "$p" >/dev/null || bail_out "$p is not installed (scripts/test.sh installs it)"
done

# The host's Debian mirror, as images/recipes/debian-12 finds it.
mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
	/etc/apt/sources.list.d/*.sources 2>/dev/null |
	sed -n -e 's|^deb \(\[[^]]*\] \)\{0,1\}\(https\{0,1\}://[^ ]*/debian/\{0,1\}\) .*|\2|p' \
		-e 's|^URIs: *\(https\{0,1\}://[^ ]*/debian/\{0,1\}\)$|\1|p' | head -1)
[ -n "$mirror" ] || bail_out "no Debian mirror in the host's apt sources"
diag "mirror: $mirror"

# ---- the minimal root, cached ----
t0=$(date +%s)
key=$(printf '%s' "bookworm minbase amd64 $mirror" | sha256sum | cut -c1-16)
tarball=$CACHE/minbase-bookworm-$key.tar.gz
if [ ! -s "$tarball" ]; then
	mkdir -p "$CACHE" "$W/mb"
	# (in a mount namespace of its own: whatever debootstrap mounts goes with it)
	if unshare --mount --propagation private -- debootstrap --variant=minbase --arch=amd64 \
		bookworm "$W/mb" "$mirror" >"$W/minbase.log" 2>&1; then
		rm -rf "$W"/mb/var/cache/apt/archives/*.deb "$W"/mb/var/lib/apt/lists/*_*
		tar -C "$W/mb" --numeric-owner -cf - . | gzip -n -1 >"$tarball.tmp.$$" &&
			mv "$tarball.tmp.$$" "$tarball"
		rm -rf "$W/mb" "$tarball.tmp.$$"
	else
		diag "$(tail -n 5 "$W/minbase.log")"
	fi
fi
ok "a minbase root of bookworm ($tarball)" test -s "$tarball"
[ -s "$tarball" ] || bail_out "no minbase root"
mkdir -p "$ROOT"
tar -C "$ROOT" --numeric-owner -xzf "$tarball" || bail_out "cannot unpack $tarball"
diag "minbase root ready in $(($(date +%s) - t0)) s"
ok "the root is a minimal one: no xz, debootstrap, ip, nft, dnsmasq, gcc or make in it" \
	chroot "$ROOT" /bin/sh -c '! command -v xz && ! command -v debootstrap && ! command -v ip &&
		! command -v nft && ! command -v dnsmasq && ! command -v gcc && ! command -v make'

# apt reaches the host's Debian archive only; package scripts start no service in a chroot.
printf 'deb %s bookworm main\ndeb %s bookworm-updates main\n' "$mirror" "$mirror" \
	>"$ROOT/etc/apt/sources.list"
rm -f "$ROOT"/etc/apt/sources.list.d/*
cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf"
printf '#!/bin/sh\nexit 101\n' >"$ROOT/usr/sbin/policy-rc.d"
chmod 0755 "$ROOT/usr/sbin/policy-rc.d"

# This checkout, without its build directories.
mkdir -p "$ROOT/src"
tar -C "$BERTH_SRCDIR" --exclude=./build --exclude=./build-ci --exclude=.git \
	--exclude='*.o' --exclude='*.lo' --exclude=.libs -cf - . | tar -C "$ROOT/src" -xf -

# in_root LOG CMD...: CMD run in the chroot with a clean environment, in a mount and pid
# namespace of its own where /proc is mounted and /dev bound into the root; both are
# unmounted after, and the mounts then left under the root counted into LOG.mounts.
in_root()
{
	local log=$1
	shift
	unshare --mount --pid --fork --propagation private -- /bin/bash -c '
		root=$1 log=$2
		shift 2
		mount -t proc proc "$root/proc" && mount --bind /dev "$root/dev" || exit 125
		chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
			LANG=C.UTF-8 "$@" >"$log" 2>&1 </dev/null
		st=$?
		umount "$root/dev" "$root/proc"
		awk -v d="$root/" "index(\$5, d) == 1" /proc/self/mountinfo >"$log.mounts"
		[ -s "$log.mounts" ] && umount -R -l "$root/proc" "$root/dev" 2>/dev/null
		exit $st' in_root "$ROOT" "$log" "$@"
}

# ---- setup.sh: deps and image, with apt's locks held by another process at first ----
# The locker holds the package lists' lock for 8 s (apt-get update has to try again), and
# dpkg's frontend lock until apt-get install has said it waits for it, and 3 s more.
$PY -c '
import fcntl, os, sys, time
lists, front, log = sys.argv[1:4]
fl = os.open(lists, os.O_RDWR | os.O_CREAT, 0o640)
ff = os.open(front, os.O_RDWR | os.O_CREAT, 0o640)
fcntl.lockf(fl, fcntl.LOCK_EX)
fcntl.lockf(ff, fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(8)
os.close(fl)
end = time.time() + 180
while time.time() < end:
    try:
        with open(log, errors="replace") as f:
            if "Waiting for cache lock" in f.read():
                break
    except OSError:
        pass
    time.sleep(0.5)
time.sleep(3)
' "$ROOT/var/lib/apt/lists/lock" "$ROOT/var/lib/dpkg/lock-frontend" "$W/setup.log" >"$W/locker.out" &
LOCKER=$!
for _ in $(seq 50); do grep -q locked "$W/locker.out" && break; sleep 0.1; done
t1=$(date +%s)
in_root "$W/setup.log" env SETUP_STEPS="deps image" APT_LOCK_TIMEOUT=900 bash /src/scripts/setup.sh
rc=$?
t2=$(date +%s)
kill "$LOCKER" 2>/dev/null
wait "$LOCKER"
LOCKER=
diag "setup.sh (deps, image) in the fresh root: $((t2 - t1)) s"
if [ "$rc" = 0 ]; then pass "SETUP_STEPS=\"deps image\" bash scripts/setup.sh succeeds in the chroot"; else
	fail "SETUP_STEPS=\"deps image\" bash scripts/setup.sh succeeds in the chroot" "exit status $rc" \
		"$(tail -n 40 "$W/setup.log")"
fi
like "$(cat "$W/setup.log")" "another apt holds the package lists' lock: apt-get update again" \
	"apt-get update found the lists' lock held, and setup.sh tried again (and went on)"
like "$(cat "$W/setup.log")" 'Waiting for cache lock: Could not get lock /var/lib/dpkg/lock-frontend' \
	"apt-get install waited for dpkg's lock another process held"
is "$(cat "$W/setup.log.mounts" 2>/dev/null)" "" "/proc and /dev unmounted, nothing else left mounted in the root"

# Every program the README commands and what they run need (setup.sh: build, berthd,
# images/build, the recipe; test.sh's list on top is checked by test.sh itself).
need="bash apt-get autoreconf automake libtoolize make gcc pkg-config groupadd ps setsid nft dnsmasq
mkfs.btrfs btrfs ip tc unsquashfs debootstrap xz zstd gzip tar sha256sum find xargs chroot awk"
run chroot "$ROOT" /bin/sh -c "for p in $(echo $need); do command -v \$p >/dev/null || echo \$p; done"
is "$OUT" "" "setup.sh installed every program it and berthd run (missing ones listed)"
run chroot "$ROOT" dpkg-query -W -f '${Package} ${Status}\n' \
	$(bash -c '. "$1/scripts/deps.sh"; echo "${SETUP_DEPS[@]}"' _ "$BERTH_SRCDIR")
unlike "$OUT" 'not-installed|deinstall' "every package in SETUP_DEPS is installed"

img=$(ls "$ROOT"/var/cache/berth-test/debian-12-*.tar.xz 2>/dev/null | head -n 1)
ok "the debian/12 image tarball is in the root's /var/cache/berth-test" test -n "$img"
like "$(cat "$W/setup.log")" 'built: \./debian-12\.tar\.xz \(fingerprint [0-9a-f]{64}\)' \
	"setup.sh says it built debian-12.tar.xz and prints its fingerprint"
if [ -n "$img" ]; then
	diag "image: $(du -h "$img" | cut -f1)"
	run tar -tJf "$img"
	like "$OUT" '^metadata\.yaml$' "... it holds metadata.yaml"
	like "$OUT" '^rootfs/(usr/)?lib/systemd/systemd$' "... and a root with systemd"
	is "$RC" 0 "... and the whole tarball reads back (xz and tar)"
else
	fail "... it holds metadata.yaml"
	fail "... and a root with systemd"
	fail "... and the whole tarball reads back (xz and tar)"
fi

# ---- a failing step is named, with what to do ----
# (the mirror is a closed port on loopback: the recipe's debootstrap fails at once; the
# image built above is removed from the root's cache first, or images/build would copy it)
rm -f "$ROOT"/var/cache/berth-test/debian-12-*
in_root "$W/fail.log" env SETUP_STEPS=image BERTH_DEBIAN_MIRROR=http://127.0.0.1:9/debian/ \
	bash /src/scripts/setup.sh
isnt "$?" 0 "setup.sh with an unreachable mirror fails"
like "$(tail -n 3 "$W/fail.log")" 'setup\.sh: step "image" failed .*mirror.*reachable' \
	"... naming the step and what to do"
is "$(cat "$W/fail.log.mounts" 2>/dev/null)" "" "... and leaves nothing mounted in the root"

in_root "$W/steps.log" env SETUP_STEPS="deps bogus" bash /src/scripts/setup.sh
like "$(cat "$W/steps.log")" 'unknown step "bogus"' "an unknown step in SETUP_STEPS is refused, by name"

is "$(mounts_under "$W")" 0 "nothing is mounted under the test's directory on the host"
diag "t_fresh.sh: $(($(date +%s) - t0)) s in all"
