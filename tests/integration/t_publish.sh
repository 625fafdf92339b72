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
run lxc publish b:c1 b: --alias pub1 --alias pub2 --public os=custom release=one
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
