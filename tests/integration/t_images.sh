#!/bin/sh
# tests/integration/t_images.sh: the image store end to end against a real berthd: the
# busybox recipe built (or taken from the cache), imported with `berth image import` and
# with the stock `lxc image import` (unified and split), listed, shown, aliased, exported
# byte for byte, deleted; and bad uploads (wrong fingerprint, truncated tarball,
# interrupted upload, entries escaping the root) refused with nothing left behind.
#
# Phase 1 (host): build the image (the recipe reaches Debian's archive through apt).
# Phase 2: re-run inside `unshare --net --mount --propagation slave` with a private
# BERTH_DIR; nothing there can reach any network.
set -u

srcdir=${BERTH_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
builddir=${BERTH_BUILDDIR:-$srcdir/build}

if [ "$(id -u)" != 0 ]; then
	echo "1..0 # SKIP needs root (network namespace, image build)"
	exit 0
fi
for tool in curl python3 unshare; do
	command -v $tool >/dev/null || { echo "1..0 # SKIP $tool not installed"; exit 0; }
done

if [ -z "${T_IMAGES_INNER:-}" ]; then
	work=$(mktemp -d /tmp/berth-t-images.XXXXXX)
	trap 'rm -rf "$work"' EXIT INT TERM
	note=""
	if ! "$srcdir/images/build" busybox "$work/out" >"$work/fp" 2>"$work/build.log"; then
		note="busybox build failed ($(tail -1 "$work/build.log")); synthetic image"
		mkdir -p "$work/syn/rootfs/bin" "$work/out"
		printf 'architecture: x86_64\ncreation_date: 1700000000\nproperties:\n  os: busybox\n' \
			>"$work/syn/metadata.yaml"
		echo x >"$work/syn/rootfs/bin/busybox"
		tar -C "$work/syn" -czf "$work/out/busybox.tar.gz" metadata.yaml rootfs
		sha256sum "$work/out/busybox.tar.gz" | cut -d' ' -f1 >"$work/fp"
	fi
	T_IMAGES_INNER=1 T_IMAGES_WORK=$work T_IMAGES_NOTE=$note \
		unshare --net --mount --propagation slave "$0"
	exit $?
fi

work=$T_IMAGES_WORK
export BERTH_DIR="$work/state"
sock="$BERTH_DIR/unix.socket"
berth="$builddir/berth"
img="$work/out/busybox.tar.gz"
fp=$(cat "$work/fp")
mkdir -p "$BERTH_DIR"
n=0
failed=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); failed=1; echo "not ok $n - $1"; }
# check DESCRIPTION 'shell command': evaluated here, so the helpers below are in scope.
check() {
	if (eval "$2") >"$work/last" 2>&1; then ok "$1"; else not_ok "$1"; sed 's/^/# /' "$work/last"; fi
}

echo "1..25"
[ -n "${T_IMAGES_NOTE:-}" ] && echo "# $T_IMAGES_NOTE"

ip link set lo up 2>/dev/null
start_berthd() {
	rm -f "$sock"
	"$builddir/berthd" -g root >>"$work/berthd.log" 2>&1 &
	pid=$!
	for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.05; done
}
cleanup() { kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; }
trap cleanup EXIT INT TERM
start_berthd

api() { curl -s --unix-socket "$sock" "$@"; }
# Upload $1 with extra curl args; print the operation's final status code and error.
upload() {
	f=$1; shift
	op=$(api -X POST -H 'Content-Type: application/octet-stream' --data-binary @"$f" "$@" \
		http://b/1.0/images | python3 -c 'import json,sys; print(json.load(sys.stdin)["operation"])')
	api "http://b$op/wait?timeout=30" |
		python3 -c 'import json,sys; m=json.load(sys.stdin)["metadata"]; print(m["status_code"], m["err"])'
}
count_images() { api 'http://b/1.0/images' | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["metadata"]))'; }
count_files() { ls -A "$BERTH_DIR/images" 2>/dev/null | wc -l; }
# No more images and files than $1 and $2, no spooled upload left.
nothing_left() { [ "$(count_images)" = "$1" ] && [ "$(count_files)" = "$2" ] && [ -z "$(ls -A "$BERTH_DIR/tmp")" ]; }

# ---- berth CLI ----
short=$(echo "$fp" | cut -c1-12)
check "berth image import prints the tarball's SHA-256" \
	'"$berth" image import "$img" --alias bb os=busybox | grep -qx "Image imported with fingerprint: $fp"'
check "berth image list shows the alias" '"$berth" image list -f csv | grep -q "^bb,$short,"'
check "berth image info by alias" '"$berth" image info bb | grep -q "Fingerprint: $fp"'
check "berth image show by fingerprint prefix" \
	'"$berth" image show "$(echo "$fp" | cut -c1-6)" | grep -q "os: busybox"'
mkdir -p "$work/exp1"
check "berth image export gives the same bytes" \
	'"$berth" image export bb "$work/exp1" && cmp "$img" "$work/exp1/$fp.tar.gz"'
check "berth image alias rename and list" \
	'"$berth" image alias rename bb bb2 && "$berth" image alias list -f csv | grep -q "^bb2,"'
check "aliases with slashes: create, show, delete; too many refused" \
	'"$berth" image alias create ubuntu/24.04/cloud bb2 && "$berth" image info ubuntu/24.04/cloud |
	 grep -q "ubuntu/24.04/cloud" && "$berth" image alias delete ubuntu/24.04/cloud &&
	 ! "$berth" image alias create a/b/c/d bb2'
check "a duplicate import is refused" '! "$berth" image import "$img"'
check "berth image delete removes row and files" \
	'"$berth" image delete bb2 && [ -z "$("$berth" image list -f csv)" ] && nothing_left 0 0'

# ---- the stock lxc client ----
if command -v lxc >/dev/null; then
	export LXD_CONF="$work/lxdconf"
	mkdir -p "$LXD_CONF"
	lxc remote add b "unix://$sock" >/dev/null 2>&1
	check "lxc image import (unified)" \
		'lxc image import "$img" b: --alias lx | grep -q "fingerprint: $fp"'
	check "lxc image list" 'lxc image list b: -c lf --format csv | grep -q "^lx,"'
	check "lxc image info" 'lxc image info b:lx | grep -q "Fingerprint: $fp"'
	check "lxc image alias rename/list" \
		'lxc image alias rename b:lx lx2 && lxc image alias list b: --format csv | grep -q "^lx2,"'
	mkdir -p "$work/exp2"
	check "lxc image export gives the same bytes" \
		'lxc image export b:lx2 "$work/exp2/" >/dev/null && cmp "$img" "$work/exp2/$fp.tar.gz"'
	# A split image: metadata tarball plus a squashfs (or tarball) rootfs.
	mkdir -p "$work/split/x"
	tar -C "$work/split/x" -xzf "$img"
	tar -C "$work/split/x" -cJf "$work/split/meta.tar.xz" metadata.yaml
	if command -v mksquashfs >/dev/null; then
		mksquashfs "$work/split/x/rootfs" "$work/split/rootfs" -quiet -noappend >/dev/null
	else
		tar -C "$work/split/x/rootfs" -czf "$work/split/rootfs" .
	fi
	sfp=$(cat "$work/split/meta.tar.xz" "$work/split/rootfs" | sha256sum | cut -d' ' -f1)
	check "lxc image import (split) fingerprints metadata then rootfs" \
		'lxc image import "$work/split/meta.tar.xz" "$work/split/rootfs" b: | grep -q "fingerprint: $sfp"'
	mkdir -p "$work/exp3"
	check "lxc image export of a split image gives both files" \
		'lxc image export "b:$sfp" "$work/exp3/" >/dev/null &&
		 cmp "$work/split/meta.tar.xz" "$work/exp3/meta-$sfp.tar.xz" &&
		 cmp "$work/split/rootfs" "$(ls "$work"/exp3/"$sfp".*)"'
	check "lxc image delete" \
		'lxc image delete b:lx2 "b:$sfp" && [ -z "$(lxc image list b: --format csv)" ] && nothing_left 0 0'
else
	for d in "unified import" list info alias export "split import" "split export" delete; do
		n=$((n + 1)); echo "ok $n # SKIP lxc not installed: $d"
	done
fi

# ---- bad input: refused with 400, no file, no row ----
bi=$(count_images) bf=$(count_files)
badfp=$(echo "$fp" | tr 0-9a-f 1-9a-f0)
check "wrong X-LXD-fingerprint" \
	'upload "$img" -H "X-LXD-fingerprint: $badfp" | grep -q "^400 Fingerprint mismatch" && nothing_left $bi $bf'
head -c $(($(stat -c %s "$img") / 2)) "$img" >"$work/trunc.tar.gz"
check "truncated tarball" 'upload "$work/trunc.tar.gz" | grep -q "^400 " && nothing_left $bi $bf'
python3 - "$work" <<'PY'
import io, sys, tarfile
w = sys.argv[1]
meta = b"architecture: x86_64\n"
for name, kind, target in (("dotdot", "file", "rootfs/../../evil"), ("abs", "file", "/etc/evil"),
                           ("link", "link", "rootfs/etc")):
    t = tarfile.open(f"{w}/{name}.tar", "w")
    i = tarfile.TarInfo("metadata.yaml"); i.size = len(meta); t.addfile(i, io.BytesIO(meta))
    if kind == "file":
        i = tarfile.TarInfo(target); i.size = 1; t.addfile(i, io.BytesIO(b"x"))
    else:
        i = tarfile.TarInfo(target); i.type = tarfile.SYMTYPE; i.linkname = "../../../etc"; t.addfile(i)
    t.close()
PY
check "tarball entry with ../ refused" 'upload "$work/dotdot.tar" | grep -q "^400 .*escapes" && nothing_left $bi $bf'
check "tarball entry with an absolute path refused" \
	'upload "$work/abs.tar" | grep -q "^400 .*escapes" && nothing_left $bi $bf'
check "tarball symlink pointing out refused" \
	'upload "$work/link.tar" | grep -q "^400 .*points outside" && nothing_left $bi $bf && [ ! -e /etc/evil ]'
# An upload whose connection drops half-way: never handled, nothing kept.
python3 - "$sock" "$img" <<'PY'
import socket, sys
data = open(sys.argv[2], "rb").read()
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
s.sendall(b"POST /1.0/images HTTP/1.1\r\nHost: b\r\nContent-Type: application/octet-stream\r\n"
          b"Content-Length: %d\r\n\r\n" % len(data) + data[: len(data) // 2])
s.close()
PY
sleep 0.3
check "interrupted upload leaves nothing" 'nothing_left $bi $bf'
check "berthd still answers" '"$berth" image list -f csv'

# ---- berthd killed between naming an import's files and recording them ----
"$berth" image import "$img" >/dev/null
orphan=$(echo "$fp" | tr 0-9a-f a-f0-9)
cp "$img" "$BERTH_DIR/images/$orphan"
cp "$img" "$BERTH_DIR/images/$orphan.rootfs"
kill -9 "$pid"
wait "$pid" 2>/dev/null
start_berthd
check "a restart removes unrecorded image files and keeps recorded ones" \
	'[ ! -e "$BERTH_DIR/images/$orphan" ] && [ ! -e "$BERTH_DIR/images/$orphan.rootfs" ] &&
	 mkdir -p "$work/exp4" && "$berth" image export "$fp" "$work/exp4" &&
	 cmp "$img" "$work/exp4/$fp.tar.gz"'

exit $failed
