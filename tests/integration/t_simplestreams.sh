#!/bin/bash
# t_simplestreams.sh: berthd pulls images from a simplestreams server (source type image,
# mode pull, protocol simplestreams): a tree made from the busybox image by sstree.py,
# served on 127.0.0.1 inside the test's namespace by ss_server.py (which logs every GET).
# The stock `lxc` client launches from it (`lxc launch ss:busybox b:c1`: the image is
# downloaded once, cached with its source, reused by the next launch without a download)
# and copies from it (`lxc image copy ss:slow b: --alias ...`: downloaded, not cached); the API pulls by alias
# with aliases of its own; progress shows in the operation (download_progress) and the
# pull can be cancelled; a rootfs whose sha256 is wrong and a server dying mid-download
# leave nothing; POST /1.0/images/FP/refresh and images.auto_update_interval replace the
# image with a newer version published in the tree (instances keep running);
# images.remote_cache_expiry prunes the unused cached image; protocol direct is refused, and lxd over plain http.
. "$(dirname "$0")/lib.sh"
berth_test_images busybox
: "${BERTH_MONITOR:=$BERTH_BUILDDIR/berth-monitor}"
if [ "$(id -u)" = 0 ]; then
	[ -x "$BERTH_MONITOR" ] || skip_all "no berth-monitor at $BERTH_MONITOR (build it first)"
fi
command -v lxc >/dev/null || skip_all "lxc not installed (apt-get install lxd-client)"
# Time for the image tasks runs fast: an "hour" lasts 200 ms, and the tick comes every
# 300 ms (images.auto_update_interval and remote_cache_expiry are off until the test
# turns them on).
BERTHD_ENV=(BERTH_MONITOR="$BERTH_MONITOR" BERTH_IMAGES_HOUR_MS=200 BERTH_SNAPSHOT_TICK_MS=300)
berth_test_init "$@"
export PATH=$BERTH_BUILDDIR:$PATH

SSTREE="$PY $BERTH_SRCDIR/tests/integration/sstree.py"
TREE=$TEST_TMP/tree
SERVERS=()
cleanup_servers() { local p; for p in "${SERVERS[@]}"; do kill "$p" 2>/dev/null; done; }
trap 'cleanup_servers; _berth_test_exit' EXIT

# serve NAME [ss_server options]: start a server on $TREE; sets URL and SRV_PID, its log
# in $TEST_TMP/NAME.log.
serve()
{
	local name=$1 i
	shift
	rm -f "$TEST_TMP/$name.port"
	: >"$TEST_TMP/$name.log"
	$PY "$BERTH_SRCDIR/tests/integration/ss_server.py" "$TREE" "$TEST_TMP/$name.port" \
		"$TEST_TMP/$name.log" "$@" &
	SRV_PID=$!
	SERVERS+=("$SRV_PID")
	for i in $(seq 50); do
		[ -s "$TEST_TMP/$name.port" ] && break
		sleep 0.1
	done
	URL=http://127.0.0.1:$(cat "$TEST_TMP/$name.port")
}
gets() { grep -c "$2" "$TEST_TMP/$1.log"; }
count_files() { ls -A "$BERTH_DIR/images" 2>/dev/null | wc -l; }
count_images() { api GET /1.0/images; jget 'len(j["metadata"])'; }
opstatus() { jget 'j["metadata"]["status"]'; }
# pull BODY: POST /1.0/images and wait; HTTP_* is the finished operation.
pull()
{
	api POST /1.0/images "$1"
	[ "$HTTP_STATUS" = 202 ] || return 0
	wait_operation "$(jget 'j["operation"]')"
}
src() { printf '{"type":"image","mode":"pull","server":"%s","protocol":"simplestreams","alias":"%s"}' "$1" "$2"; }

expect_status 200 "image tasks off for now" PATCH /1.0 \
	'{"config":{"images.auto_update_interval":"0","images.remote_cache_expiry":"0"}}'

fp1=$($SSTREE "$TREE" --image "${IMAGE[busybox]}" --serial 20260101_0000 \
	--aliases busybox,busybox/1.36 --mark v1)
like "$fp1" '^[0-9a-f]{64}$' "sstree.py publishes busybox (v1)"
fp_slow=$($SSTREE "$TREE" --image "${IMAGE[busybox]}" --serial 20260101_0000 --aliases slow \
	--os Slowbox --mark slow)
serve main
like "$URL" '^http://127\.0\.0\.1:[0-9]+$' "the simplestreams server listens on loopback"

# ---- the stock lxc client: launch from the remote, then again from the cache ----
export LXD_CONF=$TEST_TMP/lxd-conf
mkdir -p "$LXD_CONF"
unset LXD_DIR
# lxc 5.0.2's `remote add` wants https for simplestreams; its config file takes http.
cat >"$LXD_CONF/config.yml" <<EOF
default-remote: b
remotes:
  b:
    addr: unix://$BERTH_SOCKET
    public: false
  ss:
    addr: $URL
    protocol: simplestreams
    public: true
EOF
run timeout 120 lxc image list ss: -c lf --format csv
rc_ok "lxc image list ss: reads the tree"
like "$OUT" "busybox" "... and lists the busybox alias"

run timeout 120 lxc launch ss:busybox b:c1
rc_ok "lxc launch ss:busybox b:c1"
api GET /1.0/instances/c1/state
is "$(jget 'j["metadata"]["status"]')" Running "c1 runs"
is "$(gets main 'root.tar.xz')" 1 "the rootfs was downloaded once"
api GET "/1.0/images/$fp1"
is "$HTTP_STATUS" 200 "the image is in the store under its fingerprint"
is "$(jget 'j["metadata"]["cached"]')" true "... cached"
is "$(jget 'j["metadata"]["auto_update"]')" true "... auto_update (images.auto_update_cached)"
is "$(jget '[j["metadata"]["update_source"][k] for k in ("server","protocol","alias","image_type")]')" \
	"[\"$URL\", \"simplestreams\", \"busybox\", \"container\"]" "... update_source records the server and alias"
api GET /1.0/instances/c1
is "$(jget 'j["metadata"]["config"]["volatile.base_image"]')" "$fp1" "c1's volatile.base_image"
is "$(jget 'j["metadata"]["config"]["image.os"]')" Busybox "c1's image.os from the products file"

run timeout 120 lxc launch ss:busybox b:c2
rc_ok "lxc launch ss:busybox b:c2"
is "$(gets main 'root.tar.xz')" 1 "the second launch used the cache (no new download)"
is "$(gets main 'lxd.tar.xz')" 1 "... nor of the metadata"
run berth exec c2 -- cat /etc/sstree-mark
is "$OUT" v1 "c2 runs the v1 rootfs"

run timeout 120 lxc image copy ss:slow b: --alias viacopy
rc_ok "lxc image copy ss:slow b: --alias viacopy"
api GET /1.0/images/aliases/viacopy
is "$(jget 'j["metadata"]["target"]')" "$fp_slow" "the alias names the downloaded image"
api GET "/1.0/images/$fp_slow"
is "$(jget 'j["metadata"]["cached"]')" false "... which is not a cache entry"
is "$(jget 'j["metadata"]["update_source"]["alias"]')" slow "... and records its source"
is "$(gets main 'slowbox.*root.tar.xz')" 1 "... downloaded once"

# ---- the API: a pull with aliases of its own, errors ----
pull "{\"source\":$(src "$URL" busybox/1.36/amd64),\"aliases\":[{\"name\":\"bb\"}]}"
is "$(opstatus)" Success "POST /1.0/images pulls by the arch-qualified alias"
is "$(jget 'j["metadata"]["metadata"]["fingerprint"]')" "$fp1" "... its metadata names the fingerprint"
api GET /1.0/images/aliases/bb
is "$(jget 'j["metadata"]["target"]')" "$fp1" "... and the request's alias was made"

# A unified image (lxd_combined.tar.gz): its fingerprint is the tarball's own hash.
fp_combo=$($SSTREE "$TREE" --image "${IMAGE[busybox]}" --serial 20260101_0000 --aliases combo \
	--os Combo --combined)
is "$fp_combo" "$(sha256sum "${IMAGE[busybox]}" | cut -d' ' -f1)" "sstree.py publishes the unified tarball"
pull "{\"source\":$(src "$URL" combo)}"
is "$(jget 'j["metadata"]["metadata"]["fingerprint"]')" "$fp_combo" "a unified image is pulled"
ok "... as one file" test -f "$BERTH_DIR/images/$fp_combo" -a ! -e "$BERTH_DIR/images/$fp_combo.rootfs"
api DELETE "/1.0/images/$fp_combo"
wait_operation "$(jget 'j["operation"]')"

nimg=$(count_images)
nfiles=$(count_files)
pull "{\"source\":$(src "$URL" nosuch)}"
is "$(opstatus)" Failure "an alias the server does not have fails"
like "$(jget 'j["metadata"]["err"]')" 'not found' "... saying so"
expect_error 400 "protocol direct is refused" POST /1.0/images \
	"{\"source\":{\"type\":\"image\",\"mode\":\"pull\",\"server\":\"https://127.0.0.1:1\",\"protocol\":\"direct\",\"alias\":\"x\"}}"
like "$(jget 'j["error"]')" 'protocol "direct" is not supported' "... as not supported, naming it"
expect_error 400 "protocol lxd over plain http is refused" POST /1.0/images \
	"{\"source\":{\"type\":\"image\",\"mode\":\"pull\",\"server\":\"http://127.0.0.1:1\",\"protocol\":\"lxd\",\"alias\":\"x\"}}"
like "$(jget 'j["error"]')" 'an https URL is needed for protocol lxd' "... naming what it needs"
expect_error 400 "an instance from protocol direct is refused" POST /1.0/instances \
	"{\"name\":\"c9\",\"source\":{\"type\":\"image\",\"mode\":\"pull\",\"server\":\"https://127.0.0.1:1\",\"protocol\":\"direct\",\"alias\":\"x\"}}"

# ---- progress and cancel, on a slow server ----
api DELETE "/1.0/images/$fp_slow"
wait_operation "$(jget 'j["operation"]')"
nimg=$(count_images)
nfiles=$(count_files)
serve slow --rate 150000
slow_url=$URL
api POST /1.0/images "{\"source\":$(src "$slow_url" slow)}"
op=$(jget 'j["operation"]')
seen=
for i in $(seq 100); do
	api GET "$op"
	p=$(jget 'j["metadata"]["metadata"].get("download_progress") or ""')
	case $p in rootfs:*%*/s*) seen=$p; break ;; esac
	sleep 0.1
done
like "$seen" '^rootfs: [0-9]+% \([0-9.]+[kMG]?B/s\)$' "the operation shows download_progress ($seen)"
api DELETE "$op"
wait_operation "$op"
is "$(opstatus)" Cancelled "a pull can be cancelled"
is "$(count_images)" "$nimg" "... leaving no image"
is "$(count_files)" "$nfiles" "... nor any file"

# ---- a rootfs that fails its sha256; a server that dies mid-download ----
$SSTREE "$TREE" --image "${IMAGE[busybox]}" --serial 20260101_0000 --aliases bad \
	--os Badbox --mark bad >/dev/null
bad=$(ls "$TREE"/images/badbox/*/*/root.tar.xz)
$PY - "$bad" <<'EOF'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(1000)
    b = f.read(1)
    f.seek(1000)
    f.write(bytes([b[0] ^ 0xff]))
EOF
pull "{\"source\":$(src "$URL" bad)}"
is "$(opstatus)" Failure "a rootfs whose sha256 differs is refused"
like "$(jget 'j["metadata"]["err"]')" 'SHA-256' "... naming the mismatch"
is "$(count_images)" "$nimg" "... leaving no image"
is "$(count_files)" "$nfiles" "... nor any file"
run timeout 60 lxc launch ss:bad b:c9
isnt "$RC" 0 "lxc launch ss:bad fails"
isnt "$RC" 124 "... without hanging"
like "$ERR" 'SHA-256' "... naming the mismatch"
expect_status 404 "... and no instance c9 is left" GET /1.0/instances/c9
is "$(count_files)" "$nfiles" "... nor any image file"

serve dying --die-after 200000
dying_pid=$SRV_PID
pull "{\"source\":$(src "$URL" slow)}"
is "$(opstatus)" Failure "a server that dies mid-download fails the pull"
kill -0 "$dying_pid" 2>/dev/null
isnt "$?" 0 "... (the server is gone)"
is "$(count_images)" "$nimg" "... leaving no image"
is "$(count_files)" "$nfiles" "... nor any file"

# ---- refresh: a newer version published in the tree replaces the image ----
fp2=$($SSTREE "$TREE" --image "${IMAGE[busybox]}" --serial 20260102_0000 \
	--aliases busybox,busybox/1.36 --mark v2)
isnt "$fp2" "$fp1" "v2 has its own fingerprint"
api POST "/1.0/images/$fp1/refresh"
wait_operation "$(jget 'j["operation"]')"
is "$(opstatus)" Success "POST /1.0/images/FP/refresh"
is "$(jget 'j["metadata"]["metadata"]["refreshed"]')" true "... refreshed: true"
expect_status 404 "the old image is gone" GET "/1.0/images/$fp1"
api GET "/1.0/images/$fp2"
is "$(jget 'j["metadata"]["update_source"]["alias"]')" busybox "the new image keeps the source"
is "$(jget 'j["metadata"]["cached"]')" true "... and the cached flag"
api GET /1.0/images/aliases/bb
is "$(jget 'j["metadata"]["target"]')" "$fp2" "aliases moved to the new image"
run berth exec c1 -- cat /etc/sstree-mark
is "$OUT" v1 "c1 keeps running on its own volume"
api POST "/1.0/images/$fp2/refresh"
wait_operation "$(jget 'j["operation"]')"
is "$(jget 'j["metadata"]["metadata"]["refreshed"]')" false "a second refresh finds nothing newer"

run timeout 120 lxc launch ss:busybox b:c3
rc_ok "lxc launch ss:busybox b:c3 after the refresh"
run berth exec c3 -- cat /etc/sstree-mark
is "$OUT" v2 "c3 runs the refreshed (cached) v2"

# ---- images.auto_update_interval: the periodic round does the same ----
fp3=$($SSTREE "$TREE" --image "${IMAGE[busybox]}" --serial 20260103_0000 \
	--aliases busybox,busybox/1.36 --mark v3)
expect_status 200 "images.auto_update_interval=1" PATCH /1.0 \
	'{"config":{"images.auto_update_interval":"1"}}'
for i in $(seq 100); do
	api GET "/1.0/images/$fp3"
	[ "$HTTP_STATUS" = 200 ] && break
	sleep 0.1
done
is "$HTTP_STATUS" 200 "the periodic round pulled v3"
expect_status 404 "... and deleted v2" GET "/1.0/images/$fp2"
expect_status 200 "images.auto_update_interval=0" PATCH /1.0 \
	'{"config":{"images.auto_update_interval":"0"}}'

# ---- images.remote_cache_expiry: the unused cached image goes ----
api GET "/1.0/images/$fp3"
is "$(jget 'j["metadata"]["cached"]')" true "v3 is a cached image"
expect_status 200 "images.remote_cache_expiry=1 (a day is 4.8 s here)" PATCH /1.0 \
	'{"config":{"images.remote_cache_expiry":"1"}}'
for i in $(seq 150); do
	api GET "/1.0/images/$fp3"
	[ "$HTTP_STATUS" = 404 ] && break
	sleep 0.1
done
is "$HTTP_STATUS" 404 "the cached image expired"
ok "... with its files" test ! -e "$BERTH_DIR/images/$fp3" -a ! -e "$BERTH_DIR/images/$fp3.rootfs"
run berth exec c3 -- cat /etc/sstree-mark
is "$OUT" v2 "c3 still runs"

for c in c1 c2 c3; do
	check "delete $c" berth delete --force "$c"
done
