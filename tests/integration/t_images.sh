#!/bin/bash
# t_images.sh: the image store end to end: the busybox recipe built (or taken from the
# cache), imported with `berth image import` and with the stock `lxc image import`
# (unified and split), listed, shown, aliased, exported byte for byte and deleted; bad
# uploads (wrong fingerprint, no rootfs/, a dropped connection) refused with nothing left;
# damaged or hostile tarballs (truncated, entries escaping the root) imported as LXD
# does and refused at launch with nothing left; a berthd killed mid-import reconciled.
#
# The image is built before lib.sh moves the test into its own namespaces: the recipe
# fetches busybox-static through the host's apt sources (Debian's archive), and the
# result is cached under /var/cache/berth-test.
if [ -z "${BERTH_IN_NETNS:-}" ] && [ "$(id -u)" = 0 ]; then
	T_IMAGES_OUT=$(mktemp -d /tmp/berth-t-images.XXXXXX)
	srcdir=${BERTH_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
	if "$srcdir/images/build" busybox "$T_IMAGES_OUT" >"$T_IMAGES_OUT/fp" 2>"$T_IMAGES_OUT/log"; then
		T_IMAGES_NOTE=
	else
		# No archive in reach and nothing cached: a synthetic image keeps the store tested.
		T_IMAGES_NOTE="busybox build failed ($(tail -n 1 "$T_IMAGES_OUT/log")): synthetic image"
		mkdir -p "$T_IMAGES_OUT/syn/rootfs/bin"
		printf 'architecture: x86_64\ncreation_date: 1700000000\nproperties:\n  os: busybox\n' \
			>"$T_IMAGES_OUT/syn/metadata.yaml"
		echo x >"$T_IMAGES_OUT/syn/rootfs/bin/busybox"
		tar -C "$T_IMAGES_OUT/syn" -czf "$T_IMAGES_OUT/busybox.tar.gz" metadata.yaml rootfs
		sha256sum "$T_IMAGES_OUT/busybox.tar.gz" | cut -d' ' -f1 >"$T_IMAGES_OUT/fp"
	fi
	# debian/12 takes minutes to build: only with BERTH_TEST_FULL=1, else when cached.
	cache_only=1
	[ "${BERTH_TEST_FULL:-}" = 1 ] && cache_only=
	BERTH_IMAGE_CACHE_ONLY=$cache_only "$srcdir/images/build" debian/12 "$T_IMAGES_OUT" \
		>"$T_IMAGES_OUT/debian.fp" 2>>"$T_IMAGES_OUT/log" || rm -f "$T_IMAGES_OUT/debian.fp"
	export T_IMAGES_OUT T_IMAGES_NOTE
fi

. "$(dirname "$0")/lib.sh"
berth_test_init "$@"

img=$T_IMAGES_OUT/busybox.tar.gz
fp=$(cat "$T_IMAGES_OUT/fp")
short=${fp:0:12}
trap 'rm -rf "$T_IMAGES_OUT"; _berth_test_exit' EXIT
[ -n "$T_IMAGES_NOTE" ] && diag "$T_IMAGES_NOTE"

count_images() { api GET /1.0/images; jget 'len(j["metadata"])'; }
count_files() { ls -A "$BERTH_DIR/images" 2>/dev/null | wc -l; }
# nothing_left IMAGES FILES: no more records and files than that, no spooled upload.
nothing_left() { [ "$(count_images)" = "$1" ] && [ "$(count_files)" = "$2" ] && [ -z "$(ls -A "$BERTH_DIR/tmp")" ]; }
# upload FILE [rawhttp options]: POST it raw and wait; sets HTTP_* to the final operation.
upload()
{
	local f=$1
	shift
	api POST /1.0/images -d @"$f" -H 'Content-Type: application/octet-stream' "$@"
	[ "$HTTP_STATUS" = 202 ] && wait_operation "$(jget 'j["operation"]')"
}
# refused DESC FILE ERE [options]: the upload's operation fails with 400 and a message
# matching ERE, and no record, file or spooled body is left.
refused()
{
	local desc=$1 f=$2 ere=$3 bi bf
	shift 3
	bi=$(count_images) bf=$(count_files)
	upload "$f" "$@"
	local code err
	code=$(jget 'j["metadata"]["status_code"]') err=$(jget 'j["metadata"]["err"]')
	if [ "$code" = 400 ] && printf '%s' "$err" | grep -Eq -- "$ere" && nothing_left "$bi" "$bf"; then
		pass "$desc"
	else
		fail "$desc" "operation: $code '$err' (want 400 matching $ere)" \
			"images $(count_images) (was $bi), files $(count_files) (was $bf)"
	fi
}

# ---- berth CLI ----
run_cli image import "$img" --alias bb os=busybox
is "$OUT" "Image imported with fingerprint: $fp" "berth image import prints the tarball's SHA-256"
run_cli image list -f csv
like "$OUT" "^bb,$short,no,.*,x86_64,CONTAINER," "berth image list shows the alias"
run_cli image info bb
like "$OUT" "Fingerprint: $fp" "berth image info by alias"
run_cli image show "${fp:0:6}"
like "$OUT" "os: busybox" "berth image show by fingerprint prefix"
mkdir -p "$TEST_TMP/exp1"
run_cli image export bb "$TEST_TMP/exp1"
ok "berth image export gives the same bytes" cmp "$img" "$TEST_TMP/exp1/$fp.tar.gz"
run_cli image alias rename bb bb2
run_cli image alias list -f csv
like "$OUT" "^bb2,$short,CONTAINER," "berth image alias rename and list"
run_cli image alias create ubuntu/24.04/cloud bb2
run_cli image info ubuntu/24.04/cloud
like "$OUT" "- ubuntu/24.04/cloud" "an alias with slashes is created and found"
run_cli image alias delete ubuntu/24.04/cloud
is "$RC" 0 "an alias with slashes is deleted"
run_cli image alias create a/b/c/d bb2
is "$RC" 1 "an alias the routes could not address is refused"
run_cli image import "$img"
like "$ERR" "already exists" "a duplicate import is refused"
expect_error 404 "an unknown image is a 404" GET /1.0/images/zz
run_cli image delete bb2
ok "berth image delete removes record and files" nothing_left 0 0

# ---- the stock lxc client (LXD 5.0.2) ----
if command -v lxc >/dev/null; then
	export LXD_CONF=$TEST_TMP/lxdconf
	mkdir -p "$LXD_CONF"
	lxc remote add b "unix://$BERTH_SOCKET" >/dev/null 2>&1
	run lxc image import "$img" b: --alias lx
	like "$OUT" "fingerprint: $fp" "lxc image import (unified)"
	run lxc image list b: -c lf --format csv
	like "$OUT" "^lx,$short" "lxc image list"
	run lxc image info b:lx
	like "$OUT" "Fingerprint: $fp" "lxc image info"
	run lxc image alias rename b:lx lx2
	run lxc image alias list b: --format csv
	like "$OUT" "^lx2,$short" "lxc image alias rename and list"
	mkdir -p "$TEST_TMP/exp2"
	run lxc image export b:lx2 "$TEST_TMP/exp2/"
	ok "lxc image export gives the same bytes" cmp "$img" "$TEST_TMP/exp2/$fp.tar.gz"
	# A split image: metadata tarball plus a squashfs (or tarball) rootfs.
	split=$TEST_TMP/split
	mkdir -p "$split/x"
	tar -C "$split/x" -xzf "$img"
	tar -C "$split/x" -cJf "$split/meta.tar.xz" metadata.yaml
	if command -v mksquashfs >/dev/null; then
		mksquashfs "$split/x/rootfs" "$split/rootfs" -quiet -noappend >/dev/null
	else
		tar -C "$split/x/rootfs" -czf "$split/rootfs" .
	fi
	sfp=$(cat "$split/meta.tar.xz" "$split/rootfs" | sha256sum | cut -d' ' -f1)
	run lxc image import "$split/meta.tar.xz" "$split/rootfs" b:
	like "$OUT" "fingerprint: $sfp" "lxc image import (split): SHA-256 of metadata then rootfs"
	mkdir -p "$TEST_TMP/exp3"
	run lxc image export "b:$sfp" "$TEST_TMP/exp3/"
	ok "lxc image export of a split image: metadata" \
		cmp "$split/meta.tar.xz" "$TEST_TMP/exp3/meta-$sfp.tar.xz"
	ok "lxc image export of a split image: rootfs" \
		cmp "$split/rootfs" "$(ls "$TEST_TMP"/exp3/"$sfp".*)"
	run lxc image delete b:lx2 "b:$sfp"
	ok "lxc image delete" nothing_left 0 0
else
	for d in "unified import" list info alias export "split import" "split export metadata" \
		"split export rootfs" delete; do
		skip "lxc $d" "lxc not installed"
	done
fi

# ---- debian/12 (systemd), when built ----
if [ -s "$T_IMAGES_OUT/debian.fp" ]; then
	dfp=$(cat "$T_IMAGES_OUT/debian.fp")
	run_cli image import "$T_IMAGES_OUT/debian-12.tar.xz" --alias debian/12
	is "$OUT" "Image imported with fingerprint: $dfp" "debian/12 imports"
	run_cli image info debian/12
	like "$OUT" "os: debian" "debian/12 carries its properties"
	mkdir -p "$TEST_TMP/exp5"
	run_cli image export debian/12 "$TEST_TMP/exp5"
	ok "debian/12 exports byte for byte" cmp "$T_IMAGES_OUT/debian-12.tar.xz" \
		"$TEST_TMP/exp5/$dfp.tar.xz"
	run_cli image delete debian/12
	ok "debian/12 deletes" nothing_left 0 0
else
	for d in import info export delete; do
		skip "debian/12 $d" "not built (BERTH_TEST_FULL=1 builds it)"
	done
fi

# ---- bad uploads: refused with 400, nothing left ----
refused "wrong X-LXD-fingerprint" "$img" "^Fingerprint mismatch" \
	-H "X-LXD-fingerprint: $(echo "$fp" | tr 0-9a-f 1-9a-f0)"
# The rest of a tarball is not read at import (only its head: metadata.yaml and the start
# of rootfs/), as LXD does: a damaged or hostile body is refused when it is unpacked, at
# the first launch, with an error naming the entry, and leaves no instance record and no
# image volume (nor a temporary one) behind.
# refused_at_launch DESC FILE ERE: FILE imports, a launch from it fails matching ERE.
refused_at_launch()
{
	local desc=$1 f=$2 ere=$3 ifp code err vols
	upload "$f"
	ifp=$(jget 'j["metadata"]["metadata"]["fingerprint"]')
	if [ "$(jget 'j["metadata"]["status"]')" != Success ] || [ -z "$ifp" ]; then
		fail "$desc" "the import failed: $(jget 'j["metadata"]["err"]')"
		return
	fi
	api POST /1.0/instances \
		"{\"name\":\"h1\",\"source\":{\"type\":\"image\",\"fingerprint\":\"$ifp\"}}"
	[ "$HTTP_STATUS" = 202 ] && wait_operation "$(jget 'j["operation"]')"
	code=$(jget 'j["metadata"]["status"]') err=$(jget 'j["metadata"]["err"]')
	vols=$(ls -A "$BERTH_DIR/storage-pools/default/images" 2>/dev/null)
	api GET /1.0/instances/h1
	if [ "$code" = Failure ] && printf '%s' "$err" | grep -Eq -- "$ere" &&
		[ "$HTTP_STATUS" = 404 ] && [ -z "$vols" ]; then
		pass "$desc"
	else
		fail "$desc" "launch: $code '$err' (want Failure matching $ere)" \
			"GET h1 -> $HTTP_STATUS; image volumes: $vols"
	fi
	api DELETE "/1.0/images/$ifp"
	[ "$HTTP_STATUS" = 202 ] && wait_operation "$(jget 'j["operation"]')"
}
head -c $(($(stat -c %s "$img") / 2)) "$img" >"$TEST_TMP/trunc.tar.gz"
refused_at_launch "truncated tarball: imported, refused at launch" "$TEST_TMP/trunc.tar.gz" \
	"^Unpacking .*(Truncated|truncated|unexpected end|Damaged)"
head -c 300 "$img" >"$TEST_TMP/head.tar.gz"
refused "a tarball cut before its rootfs/ is refused at import" "$TEST_TMP/head.tar.gz" "."
$PY - "$TEST_TMP" <<'EOF'
import io, sys, tarfile
w = sys.argv[1]
meta = b"architecture: x86_64\n"
for name, kind, target in (("dotdot", "file", "rootfs/../../evil"), ("abs", "file", "/etc/evil"),
                           ("link", "link", "rootfs/etc"), ("later", "file", "rootfs/a/../../../evil")):
    t = tarfile.open(f"{w}/{name}.tar", "w")
    i = tarfile.TarInfo("metadata.yaml"); i.size = len(meta); t.addfile(i, io.BytesIO(meta))
    if name in ("abs", "later"):
        i = tarfile.TarInfo("rootfs/bin"); i.type = tarfile.DIRTYPE; t.addfile(i)
    if kind == "file":
        i = tarfile.TarInfo(target); i.size = 1; t.addfile(i, io.BytesIO(b"x"))
    else:
        i = tarfile.TarInfo(target); i.type = tarfile.SYMTYPE; i.linkname = "../../../etc"
        t.addfile(i)
    t.close()
EOF
refused_at_launch "tarball entry with ../ refused at launch" "$TEST_TMP/dotdot.tar" \
	'entry "rootfs/\.\./\.\./evil" escapes'
refused_at_launch "tarball entry with an absolute path refused at launch" "$TEST_TMP/abs.tar" \
	'entry "/etc/evil" escapes'
refused_at_launch "tarball symlink pointing out refused at launch" "$TEST_TMP/link.tar" \
	'symlink "rootfs/etc" points outside'
refused_at_launch "an escape deep in rootfs/ refused at launch" "$TEST_TMP/later.tar" \
	'escapes the image root'
ok "no launch left an instance volume" \
	test -z "$(ls -A "$BERTH_DIR/storage-pools/default/containers" 2>/dev/null)"
ok "nothing was written outside" test ! -e /etc/evil
# A split image whose metadata tarball holds "rootfs" as a symlink (to a directory of the
# test's): the squashfs rootfs is unpacked as root through <volume>/rootfs, so following
# the link would write onto the host. The launch is refused naming the entry, and
# nothing lands in the link's target.
if command -v mksquashfs >/dev/null; then
	hs=$TEST_TMP/hostile
	mkdir -p "$hs/target" "$hs/sq/bin"
	echo pwned >"$hs/sq/pwned"
	mksquashfs "$hs/sq" "$hs/rootfs.sqfs" -quiet -noappend >/dev/null
	$PY - "$hs" <<'PYEOF'
import io, sys, tarfile
w = sys.argv[1]
meta = b"architecture: x86_64\ncreation_date: 1700000000\nproperties:\n  os: busybox\n"
with tarfile.open(f"{w}/meta.tar", "w") as t:
    i = tarfile.TarInfo("metadata.yaml"); i.size = len(meta); t.addfile(i, io.BytesIO(meta))
    i = tarfile.TarInfo("rootfs"); i.type = tarfile.SYMTYPE; i.linkname = f"{w}/target"
    t.addfile(i)
PYEOF
	run_cli image import "$hs/meta.tar" "$hs/rootfs.sqfs" --alias hostile
	rc_ok "a split image with a \"rootfs\" symlink in its metadata tarball imports"
	run_cli launch hostile h2
	isnt "$RC" 0 "its launch fails"
	like "$ERR" 'the "rootfs" entry of its metadata tarball is not a directory' \
		"... naming the \"rootfs\" entry"
	is "$(ls -A "$hs/target")" "" "nothing was unpacked through the symlink"
	api GET /1.0/instances/h2
	is "$HTTP_STATUS" 404 "no instance record left"
	is "$(ls -A "$BERTH_DIR/storage-pools/default/images" 2>/dev/null)" "" \
		"no image volume (nor a temporary one) left"
	run_cli image delete hostile
	rc_ok "the hostile image is deleted"
else
	skip "a hostile split squashfs image is refused" "mksquashfs missing"
fi
# A connection dropped half-way through the body: never handled, nothing kept.
$PY - "$BERTH_SOCKET" "$img" <<'EOF'
import socket, sys
data = open(sys.argv[2], "rb").read()
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
s.sendall(b"POST /1.0/images HTTP/1.1\r\nHost: b\r\nContent-Type: application/octet-stream\r\n"
          b"Content-Length: %d\r\n\r\n" % len(data) + data[: len(data) // 2])
s.close()
EOF
sleep 0.3
ok "an interrupted upload leaves nothing" nothing_left 0 0
daemon_alive "berthd still answers"

# ---- berthd killed between naming an import's files and recording them ----
run_cli image import "$img"
orphan=$(echo "$fp" | tr 0-9a-f a-f0-9)
cp "$img" "$BERTH_DIR/images/$orphan"
cp "$img" "$BERTH_DIR/images/$orphan.rootfs"
kill -KILL "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null
DAEMON_PID=
daemon_start
ok "a restart removes unrecorded image files" \
	test ! -e "$BERTH_DIR/images/$orphan" -a ! -e "$BERTH_DIR/images/$orphan.rootfs"
mkdir -p "$TEST_TMP/exp4"
run_cli image export "$fp" "$TEST_TMP/exp4"
ok "and keeps the recorded image, byte for byte" cmp "$img" "$TEST_TMP/exp4/$fp.tar.gz"
