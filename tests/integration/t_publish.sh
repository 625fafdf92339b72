#!/bin/bash
# t_publish.sh: instances and snapshots published as images (POST /1.0/images, source
# type instance or snapshot) through `berth publish` and the stock `lxc publish`: the
# image launches, a file made in the source keeps its content and owner (the container's
# ids, not the host's), properties, aliases, public and the fingerprint (the SHA-256 of
# the exported file) are right; a snapshot publishes its content at the snapshot; each
# compression launches; a running instance is refused without --force and published
# with it (and runs again); a btrfs pool; a cancelled publish leaves no image, file or
# spooled temp file; an image copied to another project (source type image).
if [ -z "${BERTH_IN_NETNS:-}" ] && [ "$(id -u)" = 0 ]; then
	T_PUB_OUT=$(mktemp -d /tmp/berth-t-pub.XXXXXX)
	srcdir=${BERTH_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
	"$srcdir/images/build" busybox "$T_PUB_OUT" >"$T_PUB_OUT/fp" 2>"$T_PUB_OUT/log" ||
		rm -f "$T_PUB_OUT/fp"
	export T_PUB_OUT
fi

. "$(dirname "$0")/lib.sh"
[ -n "${BERTH_IN_NETNS:-}" ] && trap 'rm -rf "$T_PUB_OUT"' EXIT
: "${BERTH_MONITOR:=$BERTH_BUILDDIR/berth-monitor}"
if [ "$(id -u)" = 0 ]; then
	[ -s "$T_PUB_OUT/fp" ] || skip_all "the busybox image could not be built: $(tail -n 1 "$T_PUB_OUT/log")"
	[ -x "$BERTH_MONITOR" ] || skip_all "no berth-monitor at $BERTH_MONITOR (build it first)"
fi
command -v lxc >/dev/null || skip_all "lxc not installed (apt-get install lxd-client)"
BERTHD_ENV=(BERTH_MONITOR="$BERTH_MONITOR")
berth_test_init "$@"
export PATH=$BERTH_BUILDDIR:$PATH
export LXD_CONF=$TEST_TMP/lxd-conf
mkdir -p "$LXD_CONF"
unset LXD_DIR

opok() { [ "$(jget 'j["metadata"]["status"]')" = Success ]; }
st() { api GET "/1.0/instances/$1/state"; jget 'j["metadata"]["status"]'; }
count_images() { api GET /1.0/images; jget 'len(j["metadata"])'; }
count_files() { ls -A "$BERTH_DIR/images" 2>/dev/null | wc -l; }
spool_empty() { [ -z "$(ls -A "$BERTH_DIR/tmp")" ]; }
# in_ct NAME CMD...: run CMD in the container, OUT set.
in_ct() { run berth exec "$@"; }
# image_fp ALIAS
image_fp() { api GET "/1.0/images/aliases/$1"; jget 'j["metadata"]["target"]'; }

check "import the busybox image" berth image import "$T_PUB_OUT/busybox.tar.gz" --alias busybox
check "lxc remote add b" lxc remote add b "unix://$BERTH_SOCKET"

# ---- a stopped container, published by lxc with properties and two aliases ----
check "launch c1" berth launch busybox c1
check "c1: a file owned by 1000:1000" berth exec c1 -- sh -c 'echo hello >/home.txt && chown 1000:1000 /home.txt'
check "c1: a file owned by root" berth exec c1 -- sh -c 'echo rootfile >/root.txt'
check "stop c1" berth stop c1
t0=$(date +%s%N)
run lxc publish b:c1 b: --alias pub1 --alias pub2 --public os=custom release=one
diag "lxc publish of the busybox container (gzip) took $((($(date +%s%N) - t0) / 1000000)) ms"
rc_ok "lxc publish b:c1 with two aliases, --public and properties"
like "$OUT" 'Instance published with fingerprint: [0-9a-f]{64}' "... prints the fingerprint"
fp=$(image_fp pub1)
is "$(image_fp pub2)" "$fp" "both aliases point at the new image"
run lxc image info b:pub1
like "$OUT" "Fingerprint: $fp" "lxc image info: fingerprint"
like "$OUT" "Public: yes" "lxc image info: public"
like "$OUT" "os: custom" "lxc image info: property os"
like "$OUT" "release: one" "lxc image info: property release"
like "$OUT" "- pub1" "lxc image info: alias pub1"
like "$OUT" "- pub2" "lxc image info: alias pub2"
api GET "/1.0/images/$fp"
size=$(jget 'j["metadata"]["size"]')
file="$BERTH_DIR/images/$fp"
is "$(sha256sum "$file" | cut -d' ' -f1)" "$fp" "the fingerprint is the SHA-256 of the image file"
is "$size" "$(stat -c %s "$file")" "the size is the file's"
is "$(jget 'j["metadata"]["architecture"]')" "$(uname -m)" "the architecture is the instance's"
is "$(jget 'j["metadata"]["type"]')" container "the type is container"
run file -b "$file"
like "$OUT" 'gzip' "gzip is the default compression"
run tar -tzf "$file"
is "$(printf '%s\n' "$OUT" | head -n 1)" metadata.yaml "metadata.yaml comes first in the tarball"
spool_empty && pass "nothing is left in the spool" || fail "nothing is left in the spool" "$(ls -A "$BERTH_DIR/tmp")"

check "launch n1 from the published alias" berth launch pub1 n1
in_ct n1 -- stat -c '%u:%g' /home.txt /root.txt /
is "$OUT" $'1000:1000\n0:0\n0:0' "n1: the file keeps 1000:1000, / and a new file are root's"
in_ct n1 -- cat /home.txt
is "$OUT" hello "n1: the file's content is there"

# ---- refusals leave nothing behind ----
imgs0=$(count_images) files0=$(count_files)
expect_error 404 "publishing a missing instance is 404" POST /1.0/images '{"source":{"type":"instance","name":"nope"}}'
expect_error 404 "publishing a missing snapshot is 404" POST /1.0/images '{"source":{"type":"snapshot","name":"c1/nope"}}'
expect_error 400 "an unknown compression is refused" POST /1.0/images '{"source":{"type":"instance","name":"c1"},"compression_algorithm":"lz4"}'
expect_error 400 "a snapshot source without INSTANCE/SNAP is refused" POST /1.0/images '{"source":{"type":"snapshot","name":"c1"}}'
run berth publish c1 --alias pub1
ok "berth publish with an alias that exists fails" test "$RC" != 0
like "$ERR" 'Alias "pub1" already exists' "... saying so"
is "$(count_images):$(count_files)" "$imgs0:$files0" "... and leaves no image row or file"
spool_empty && pass "... nor a spooled file" || fail "... nor a spooled file" "$(ls -A "$BERTH_DIR/tmp")"

# ---- berth publish of a snapshot: its content then, not now ----
check "launch c3" berth launch busybox c3
check "c3: write before" berth exec c3 -- sh -c 'echo before >/s.txt'
check "snapshot c3 snap0" berth snapshot c3 snap0
check "c3: write after" berth exec c3 -- sh -c 'echo after >/s.txt'
run berth publish c3/snap0 --alias snapimg kind=snapshot
rc_ok "berth publish c3/snap0 (of a running instance's snapshot)"
like "$OUT" 'Instance published with fingerprint: [0-9a-f]{64}' "... prints the fingerprint"
is "$(st c3)" Running "c3 still runs"
check "launch s1 from the snapshot's image" berth launch snapimg s1
in_ct s1 -- cat /s.txt
is "$OUT" before "s1 has the file as it was at the snapshot"
api GET "/1.0/images/$(image_fp snapimg)"
is "$(jget 'j["metadata"]["properties"]["kind"]')" snapshot "berth publish key=value sets a property"
is "$(jget 'j["metadata"]["public"]')" false "without --public the image is private"
check "delete s1" berth delete -f s1

# ---- a running instance: refused without --force, published with it ----
run berth publish c3 --alias runimg
ok "berth publish of a running instance fails" test "$RC" != 0
like "$ERR" 'currently running. Use --force' "... saying --force stops and restarts it"
expect_refused 400 "the server refuses it too" POST /1.0/images '{"source":{"type":"instance","name":"c3"}}'
like "$(jget 'j["metadata"]["err"]')" 'Cannot export a running instance' "... as LXD says it"
run berth publish c3 --alias runimg --force
rc_ok "berth publish --force of a running instance"
is "$(st c3)" Running "c3 runs again afterwards"
run lxc publish b:c3 b: --alias runimg2
ok "lxc publish of a running instance fails" test "$RC" != 0
run lxc publish b:c3 b: --alias runimg2 --force
rc_ok "lxc publish --force of a running instance"
is "$(st c3)" Running "c3 runs again after lxc's publish too"
check "launch r1 from the --force image" berth launch runimg r1
in_ct r1 -- cat /s.txt
is "$OUT" after "r1 has the instance's current content"
check "delete r1" berth delete -f r1

# ---- each compression launches ----
for algo in xz zstd none; do
	run berth publish c1 --compression "$algo" --alias "c-$algo"
	rc_ok "berth publish --compression $algo"
	f="$BERTH_DIR/images/$(image_fp "c-$algo")"
	case $algo in xz) want='XZ' ;; zstd) want='Zstandard' ;; none) want='tar archive' ;; esac
	like "$(file -b "$f")" "$want" "... gives a $algo file"
	check "... which launches" berth launch "c-$algo" "l-$algo"
	in_ct "l-$algo" -- stat -c %u:%g /home.txt
	is "$OUT" 1000:1000 "... with the file's owner"
	check "... deleted" berth delete -f "l-$algo"
done
api PATCH /1.0 '{"config":{"images.compression_algorithm":"zstd"}}'
is "$HTTP_STATUS" 200 "set images.compression_algorithm=zstd"
check "berth publish without --compression" berth publish c1 --alias c-server
like "$(file -b "$BERTH_DIR/images/$(image_fp c-server)")" Zstandard "... follows the server's images.compression_algorithm"
api PATCH /1.0 '{"config":{"images.compression_algorithm":""}}'

# ---- cancelled mid-way: nothing left, tar gone ----
check "launch big" berth launch busybox big
check "big: 192 MiB of random data" berth exec big -- dd if=/dev/urandom of=/big bs=1M count=192
check "stop big" berth stop big
imgs0=$(count_images) files0=$(count_files)
api POST /1.0/images '{"source":{"type":"instance","name":"big"},"compression_algorithm":"xz"}'
is "$HTTP_STATUS" 202 "publish of big (xz) starts an operation"
op=$(jget 'j["operation"]')
sleep 1.5
api GET "$op"
like "$(jget 'j["metadata"]["metadata"]["create_image_from_container_pack_progress"]')" '^Image pack: [0-9.]+MB \([0-9.]+MB/s\)$' \
	"the operation reports the pack's progress"
api DELETE "$op"
is "$HTTP_STATUS" 200 "DELETE the operation mid-way"
wait_operation "$op"
is "$(jget 'j["metadata"]["status"]')" Cancelled "the operation ends Cancelled"
is "$(count_images):$(count_files)" "$imgs0:$files0" "... and leaves no image row or file"
spool_empty && pass "... nor a spooled file" || fail "... nor a spooled file" "$(ls -A "$BERTH_DIR/tmp")"
is "$(pgrep -P "$DAEMON_PID" -c tar)" 0 "... nor a tar process"
check "delete big" berth delete big

# ---- source type image: a copy into another project ----
api POST /1.0/projects '{"name":"p1","config":{"features.images":"true","features.profiles":"false"}}'
is "$HTTP_STATUS" 201 "create project p1 with its own images"
fp=$(image_fp pub1)
api POST "/1.0/images?project=p1" "{\"source\":{\"type\":\"image\",\"fingerprint\":\"$fp\",\"project\":\"default\"},\"aliases\":[{\"name\":\"inp1\"}],\"public\":true}"
is "$HTTP_STATUS" 202 "POST source type image into p1"
wait_operation "$(jget 'j["operation"]')"
ok "... succeeds" opok
is "$(jget 'j["metadata"]["metadata"]["fingerprint"]')" "$fp" "... with the same fingerprint"
api GET "/1.0/images/$fp?project=p1"
is "$(jget '[j["metadata"]["properties"]["os"], j["metadata"]["public"], [a["name"] for a in j["metadata"]["aliases"]]]')" \
	'["custom", true, ["inp1"]]' "p1's image has the properties, public and the alias"
is "$(count_files)" "$files0" "no new image file: the store holds one copy"
imgs0=$(count_images)
expect_refused 409 "copying an image into a project that has it is refused" POST /1.0/images "{\"source\":{\"type\":\"image\",\"fingerprint\":\"$fp\"}}"
like "$HTTP_BODY" 'same fingerprint already exists' "... as LXD says it"
is "$(count_images)" "$imgs0" "... and adds nothing"
expect_error 400 "an image pull over protocol direct is refused (not supported)" POST /1.0/images '{"source":{"type":"image","mode":"pull","server":"https://127.0.0.1:1","protocol":"direct","alias":"x"}}'
api POST /1.0/images '{"source":{"type":"instance","name":"c1"},"expires_at":"2031-02-03T04:05:06Z","compression_algorithm":"none","aliases":[{"name":"exp1","description":"expiring"}]}'
wait_operation "$(jget 'j["operation"]')"
ok "a publish with expires_at succeeds" opok
api GET "/1.0/images/$(image_fp exp1)"
is "$(jget 'j["metadata"]["expires_at"][:19]')" 2031-02-03T04:05:06 "... and the image expires then"
api GET /1.0/images/aliases/exp1
is "$(jget 'j["metadata"]["description"]')" expiring "... its alias has the description given"
# a project without features.images: the instance is the project's, the image the default's
api POST /1.0/projects '{"name":"p2","config":{"features.images":"false","features.profiles":"false"}}'
is "$HTTP_STATUS" 201 "create project p2 sharing the default project's images"
check "init q1 in p2" berth --project p2 init busybox q1
run berth --project p2 publish q1 --alias fromp2
rc_ok "berth --project p2 publish q1"
api GET /1.0/images/aliases/fromp2
is "$HTTP_STATUS" 200 "... the image is in the default project"
check "delete q1" berth --project p2 delete q1
# lxc waits for the operation on /1.0/events?project=p2: the operation is p2's, as in LXD,
# though the image is the default project's (it hung when the operation was "default"'s)
check "init q2 in p2" berth --project p2 init busybox q2
run timeout 60 lxc publish --project p2 b:q2 b: --alias fromp2lxc
rc_ok "lxc publish --project p2 of an instance of p2 ends"
like "$OUT" 'Instance published with fingerprint: [0-9a-f]{64}' "... prints the fingerprint"
api GET /1.0/images/aliases/fromp2lxc
is "$HTTP_STATUS" 200 "... the image and its alias are in the default project"
api POST /1.0/images?project=p2 '{"source":{"type":"instance","name":"q2"}}'
op=$(jget 'j["operation"]')
api GET "/1.0/operations?project=p2"
like "$HTTP_BODY" "${op##*/}" "the operation of POST /1.0/images?project=p2 is listed in p2"
wait_operation "$op"
ok "... and succeeds" opok
check "... its image deleted" berth image delete "$(jget 'j["metadata"]["metadata"]["fingerprint"]')"
run timeout 60 lxc image delete --project p2 b:fromp2lxc
rc_ok "lxc image delete --project p2 ends"
api GET /1.0/images/aliases/fromp2lxc
is "$HTTP_STATUS" 404 "... the image is gone"
run timeout 60 lxc snapshot --project p2 b:q2 s0
rc_ok "lxc snapshot --project p2 ends"
run timeout 60 lxc copy --project p2 b:q2 b:q3
rc_ok "lxc copy --project p2 ends"
run timeout 60 lxc delete --project p2 b:q2 b:q3
rc_ok "lxc delete --project p2 ends"
# (lxc 5.0.2's `image copy b:x b: --target-project p1` refuses client-side, "The source
# server isn't listening on the network", as it does against a unix-only LXD.)
check "launch in p1 from the copy" berth --project p1 launch inp1 pc1
check "... it runs" berth --project p1 exec pc1 -- cat /home.txt

# ---- lxc publish of a snapshot ----
run lxc publish b:c3/snap0 b: --alias snapimg2
rc_ok "lxc publish b:c3/snap0"
check "launch s2 from it" berth launch snapimg2 s2
in_ct s2 -- cat /s.txt
is "$OUT" before "s2 has the snapshot's content"
check "delete s2" berth delete -f s2

# ---- a btrfs pool ----
if command -v mkfs.btrfs >/dev/null && { grep -qw btrfs /proc/filesystems || modprobe btrfs 2>/dev/null; }; then
	check "create a btrfs pool" berth storage create bt btrfs size=1GiB
	check "launch b1 on btrfs" berth launch busybox b1 -s bt
	check "b1: a file owned by 1000:1000" berth exec b1 -- sh -c 'echo onbtrfs >/b.txt && chown 1000:1000 /b.txt'
	check "b1: snapshot" berth snapshot b1 snap0
	check "b1: changed after" berth exec b1 -- sh -c 'echo later >/b.txt'
	run berth publish b1 --alias btimg --force
	rc_ok "berth publish --force of b1 on btrfs"
	is "$(st b1)" Running "b1 runs again"
	run berth publish b1/snap0 --alias btsnap
	rc_ok "berth publish b1/snap0 on btrfs"
	check "launch b2 from it on btrfs" berth launch btsnap b2 -s bt
	in_ct b2 -- sh -c 'stat -c %u:%g /b.txt; cat /b.txt'
	is "$OUT" $'1000:1000\nonbtrfs' "b2 has the snapshot's file with its owner"
	check "launch b3 from the instance's image" berth launch btimg b3 -s bt
	in_ct b3 -- cat /b.txt
	is "$OUT" later "b3 has b1's content"
	check "delete the btrfs instances" berth delete -f b1 b2 b3
else
	skip "publish on a btrfs pool" "mkfs.btrfs or the kernel module is missing"
fi

# ---- a root volume shifted on disk (no idmapped mounts): ids mapped back ----
# As t_files.sh does, the shift is made by hand: a marker and host ids base + n.
check "init sh1" berth init busybox sh1
V=$BERTH_DIR/storage-pools/default/containers/default_sh1
echo "100000 200000 65536" >"$V/berth-shift"
echo shifted >"$V/rootfs/sh.txt"
chown 101000:201000 "$V/rootfs/sh.txt"
chown 100000:200000 "$V/rootfs"
run berth publish sh1 --alias shimg
rc_ok "berth publish of sh1, shifted on disk"
run tar --numeric-owner -tvzf "$BERTH_DIR/images/$(image_fp shimg)"
like "$(printf '%s\n' "$OUT" | grep -E ' rootfs/?$')" ' 0/0 ' "the image's rootfs/ is 0/0, not the host's 100000/200000"
like "$(printf '%s\n' "$OUT" | grep -E ' rootfs/sh\.txt$')" ' 1000/1000 ' "the file is 1000/1000 in the image, not 101000/201000"
spool_empty && pass "the id maps are gone from the spool" || fail "the id maps are gone from the spool" "$(ls -A "$BERTH_DIR/tmp")"
check "launch sh2 from it" berth launch shimg sh2
in_ct sh2 -- sh -c 'stat -c %u:%g /sh.txt /; cat /sh.txt'
is "$OUT" $'1000:1000\n0:0\nshifted' "sh2 sees the owners sh1 had inside"
check "delete sh1 and sh2" berth delete -f sh1 sh2

# ---- tar failing: its error is shown, nothing is left ----
check "init broken" berth init busybox broken
rm -rf "$BERTH_DIR/storage-pools/default/containers/default_broken/rootfs"
imgs0=$(count_images) files0=$(count_files)
run berth publish broken --alias brokenimg
ok "publishing an instance whose rootfs is gone fails" test "$RC" != 0
like "$ERR" 'Packing the image failed: .*rootfs: Cannot stat' "... with tar's own error"
is "$(count_images):$(count_files)" "$imgs0:$files0" "... and leaves no image row or file"
spool_empty && pass "... nor a spooled file" || fail "... nor a spooled file" "$(ls -A "$BERTH_DIR/tmp")"
