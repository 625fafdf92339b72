#!/bin/bash
# t_backup_export.sh: instance backups (/1.0/instances/NAME/backups) and their export
# through the API, the stock `lxc export` and `berth export`: create (backup0, backup1 as
# LXD names them; a name, expiry, instance_only, compression), list (URLs and objects),
# show, rename, delete, an expired backup pruned by the daemon; the tarball streamed with
# its length, in LXD 5.0's layout (backup/index.yaml parsed and its fields checked,
# backup/container with backup.yaml and the rootfs, backup/snapshots/SNAP with the files
# the snapshot had, owners as the container sees them); gzip, xz, zstd, bzip2 and none
# told by their magic, the server's backups.compression_algorithm; optimized_storage on
# dir makes an ordinary backup (LXD's rule), on btrfs `btrfs send` streams that `btrfs
# receive` restores; a running container; a failed and a cancelled backup leave no file;
# backups go with their instance and follow its rename; projects see only their own.
. "$(dirname "$0")/lib.sh"
berth_test_images busybox
: "${BERTH_MONITOR:=$BERTH_BUILDDIR/berth-monitor}"
if [ "$(id -u)" = 0 ]; then
	[ -x "$BERTH_MONITOR" ] || skip_all "no berth-monitor at $BERTH_MONITOR (build it first)"
	command -v lxc >/dev/null || skip_all "the lxc client is not installed (lxd-client)"
fi
# The expiry of backups is checked by the minute tick: make it tick every second.
BERTHD_ENV=(BERTH_MONITOR="$BERTH_MONITOR" BERTH_SNAPSHOT_TICK_MS=1000)
berth_test_init "$@"
export PATH=$BERTH_BUILDDIR:$PATH
export LXD_CONF=$TEST_TMP/lxd-conf
mkdir -p "$LXD_CONF"
unset LXD_DIR

BK=$BERTH_DIR/backups/instances
W=$TEST_TMP/work
mkdir -p "$W"

opok() { [ "$(jget 'j["metadata"]["status"]')" = Success ]; }
# backup_create INSTANCE BODY [QUERY]: POST, wait; HTTP_* is the finished operation.
backup_create()
{
	api POST "/1.0/instances/$1/backups${3:-}" "$2"
	[ "$HTTP_STATUS" = 202 ] || return 1
	wait_operation "$(jget 'j["operation"]')"
}
# fetch PATH FILE: GET PATH into FILE; HDRS gets the response's head.
fetch()
{
	HDRS=$($PY - "$BERTH_SOCKET" "$1" "$2" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(("GET %s HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n" % sys.argv[2]).encode())
data = b""
while True:
    c = s.recv(1 << 20)
    if not c:
        break
    data += c
head, _, body = data.partition(b"\r\n\r\n")
open(sys.argv[3], "wb").write(body)
print(head.decode())
print("Body-Bytes: %d" % len(body))
EOF
)
}
# magic FILE: gzip, xz, zstd, bzip2 or tar, from the first bytes.
magic()
{
	$PY - "$1" <<'EOF'
import sys
b = open(sys.argv[1], "rb").read(512)
for m, n in ((b"\x1f\x8b", "gzip"), (b"\xfd7zXZ\x00", "xz"), (b"\x28\xb5\x2f\xfd", "zstd"),
             (b"BZh", "bzip2")):
    if b.startswith(m):
        print(n); sys.exit(0)
print("tar" if b[257:262] == b"ustar" else "unknown")
EOF
}
# members FILE: the member names, in order (tar finds the compression itself).
members() { tar -tf "$1"; }
# index FILE EXPR: EXPR (Python, `i` = backup/index.yaml parsed) on the tarball's index.
index()
{
	tar -xOf "$1" backup/index.yaml | $PY -c '
import sys, yaml, json
i = yaml.safe_load(sys.stdin)
print(json.dumps(eval(sys.argv[1])) if not isinstance(eval(sys.argv[1]), str) else eval(sys.argv[1]))' "$2"
}
store_files() { find "$BK" -type f 2>/dev/null | wc -l; }
spool_empty() { [ -z "$(ls -A "$BERTH_DIR/tmp")" ]; }

check "import the busybox image" berth image import "${IMAGE[busybox]}" --alias busybox
check "lxc remote add b" lxc remote add b "unix://$BERTH_SOCKET"
api GET /1.0
for e in container_backup backup_compression backup_compression_algorithm; do
	is "$(jget "'$e' in j['metadata']['api_extensions']")" true "GET /1.0 lists $e"
done

# ---- a stopped container with two snapshots ----
check "launch c1" berth launch busybox c1
check "c1: a file owned by 1000:1000" berth exec c1 -- sh -c 'echo one >/home.txt && chown 1000:1000 /home.txt'
check "snapshot snap0" berth snapshot c1 snap0
check "c1: the file changed" berth exec c1 -- sh -c 'echo two >/home.txt'
check "snapshot snap1" berth snapshot c1 snap1
check "c1: a file after the snapshots" berth exec c1 -- sh -c 'echo late >/late.txt'
check "stop c1" berth stop c1

api GET /1.0/instances/c1/backups
is "$HTTP_STATUS/$(jget 'j["metadata"]')" "200/[]" "no backups at first"
backup_create c1 '{}'
opok && pass "POST backups {}: the operation succeeds" || fail "POST backups {}" "$HTTP_BODY"
is "$(jget 'j["metadata"]["resources"]["backups"]')" '["/1.0/backups/backup0"]' \
	"... named backup0, in the operation's resources"
is "$(jget 'j["metadata"]["resources"]["instances"]')" '["/1.0/instances/c1"]' "... and the instance"
backup_create c1 '{"name": ""}'
is "$(jget 'j["metadata"]["resources"]["backups"][0]')" /1.0/backups/backup1 "a second one is backup1"
api GET /1.0/instances/c1/backups
is "$(jget 'j["metadata"]')" '["/1.0/instances/c1/backups/backup0", "/1.0/instances/c1/backups/backup1"]' "GET lists both URLs"
api GET '/1.0/instances/c1/backups?recursion=1'
is "$(jget '[b["name"] for b in j["metadata"]]')" '["backup0", "backup1"]' "recursion=1: objects, oldest first"
api GET '/1.0/instances/c1?recursion=1'
is "$(jget '[b["name"] for b in j["metadata"]["backups"]]')" '["backup0", "backup1"]' "the full instance lists its backups"
run lxc info b:c1
like "$OUT" "backup1" "lxc info shows them"
api GET /1.0/instances/c1/backups/backup0
is "$(jget 'sorted(j["metadata"])')" '["container_only", "created_at", "expires_at", "instance_only", "name", "optimized_storage"]' "GET backup0: LXD's fields"
is "$(jget '[j["metadata"]["expires_at"], j["metadata"]["instance_only"], j["metadata"]["optimized_storage"]]')" \
	'["0001-01-01T00:00:00Z", false, false]' "... never expires, not instance_only, not optimized"
like "$(jget 'j["metadata"]["created_at"]')" "^$(date -u +%Y-%m-%d)T" "... created today"
is "$(stat -c %a "$BK/c1/backup0")" 600 "the tarball is in \$BERTH_DIR/backups/instances/c1, mode 0600"

# ---- the tarball ----
fetch /1.0/instances/c1/backups/backup0/export "$W/b0"
like "$HDRS" "HTTP/1.1 200" "export: 200"
like "$HDRS" "[Cc]ontent-[Tt]ype: application/octet-stream" "... application/octet-stream"
like "$HDRS" "[Cc]ontent-[Ll]ength: $(stat -c %s "$BK/c1/backup0")" "... Content-Length is the file's size"
like "$HDRS" "Body-Bytes: $(stat -c %s "$BK/c1/backup0")" "... and that many bytes came"
is "$(magic "$W/b0")" gzip "gzip by default"
members "$W/b0" >"$W/b0.list"
is "$(head -n 1 "$W/b0.list")" backup/index.yaml "backup/index.yaml comes first"
for m in backup/container/backup.yaml backup/container/rootfs/home.txt backup/container/rootfs/late.txt \
	backup/container/metadata.yaml backup/snapshots/snap0/rootfs/home.txt backup/snapshots/snap1/rootfs/home.txt; do
	grep -qxF "$m" "$W/b0.list" && pass "member $m" || fail "member $m" "$(head -n 20 "$W/b0.list")"
done
is "$(grep -c 'berth-shift' "$W/b0.list")" 0 "nothing of berth's own (berth-shift)"
is "$(grep -c '^backup/snapshots/snap0/rootfs/late.txt$' "$W/b0.list")" 0 "snap0 has no file made after it"
is "$(grep -n '' "$W/b0.list" | grep -m1 'backup/snapshots/' | cut -d: -f1)" 2 "snapshots come before the container, as LXD's"
is "$(tar -xOf "$W/b0" backup/snapshots/snap0/rootfs/home.txt)/$(tar -xOf "$W/b0" backup/container/rootfs/home.txt)" "one/two" \
	"snap0 holds the file as it was, the container as it is"
is "$(tar -tvf "$W/b0" --numeric-owner backup/container/rootfs/home.txt | awk '{print $2}')" 1000/1000 \
	"owners are the container's ids (1000:1000)"
is "$(tar -tvf "$W/b0" --numeric-owner --no-recursion backup/container/rootfs/bin | awk '{print $2}')" 0/0 "... root's are 0:0"
is "$(index "$W/b0" '[i["name"], i["backend"], i["pool"], i["snapshots"], i["optimized"], i["optimized_header"], i["type"]]')" \
	'["c1", "dir", "default", ["snap0", "snap1"], false, false, "container"]' \
	"index.yaml: name, backend, pool, snapshots, optimized, optimized_header, type"
is "$(index "$W/b0" '[i["config"]["container"]["name"], i["config"]["container"]["profiles"], i["config"]["container"]["expanded_devices"]["root"]["pool"]]')" \
	'["c1", ["default"], "default"]' "index.yaml config.container: the instance, expanded"
is "$(index "$W/b0" '[s["name"] for s in i["config"]["snapshots"]]')" '["snap0", "snap1"]' "config.snapshots"
is "$(index "$W/b0" '[(p["name"], sorted(p["devices"])) for p in i["config"]["profiles"]]')" '[["default", ["eth0", "root"]]]' \
	"config.profiles: the default profile with its devices"
is "$(index "$W/b0" '[i["config"]["pool"]["name"], i["config"]["pool"]["driver"], i["config"]["volume"]["name"], i["config"]["volume"]["type"]]')" \
	'["default", "dir", "c1", "container"]' "config.pool and config.volume"
is "$(index "$W/b0" 'i["config"]["container"]["config"]["volatile.last_state.idmap"]')" "[]" \
	"volatile.last_state.idmap is [] (the ids are unshifted)"
is "$(index "$W/b0" '[s["config"]["volatile.last_state.idmap"] for s in i["config"]["snapshots"]]')" '["[]", "[]"]' \
	"... in the snapshots' config too"
is "$(tar -xOf "$W/b0" backup/container/backup.yaml | $PY -c 'import sys,yaml; c=yaml.safe_load(sys.stdin); print(c["container"]["name"], [s["name"] for s in c["snapshots"]])')" \
	"c1 ['snap0', 'snap1']" "backup/container/backup.yaml: the same config"

# ---- names, options, refusals ----
backup_create c1 '{"name": "mine", "instance_only": true, "compression_algorithm": "xz"}'
opok && pass "a named, instance_only, xz backup" || fail "named backup" "$HTTP_BODY"
fetch /1.0/instances/c1/backups/mine/export "$W/mine"
is "$(magic "$W/mine")" xz "... is xz"
is "$(members "$W/mine" | grep -c '^backup/snapshots')" 0 "... has no snapshots"
is "$(index "$W/mine" 'i.get("snapshots")')" null "... and its index lists none"
api GET /1.0/instances/c1/backups/mine
is "$(jget 'j["metadata"]["instance_only"]')" true "... shows instance_only"
expect_refused 409 "a backup name in use is refused" POST /1.0/instances/c1/backups '{"name": "mine"}'
expect_error 400 "a name with a slash is refused" POST /1.0/instances/c1/backups '{"name": "a/b"}'
expect_error 400 "an unknown compression is refused" POST /1.0/instances/c1/backups '{"compression_algorithm": "rar"}'
expect_error 404 "a backup of a missing instance" POST /1.0/instances/nope/backups '{}'
expect_error 404 "a missing backup" GET /1.0/instances/c1/backups/nope
expect_error 404 "the export of a missing backup" GET /1.0/instances/c1/backups/nope/export

# ---- rename and delete (and their lifecycle events) ----
evlog=$TEST_TMP/events
$PY "$RAWHTTP" ws "$BERTH_SOCKET" "/1.0/events?type=lifecycle" --count 100 --timeout 120 \
	--ready "$TEST_TMP/ws-ready" >"$evlog" 2>"$TEST_TMP/ws.err" &
ws_pid=$!
for _ in $(seq 50); do [ -e "$TEST_TMP/ws-ready" ] && break; sleep 0.1; done
api POST /1.0/instances/c1/backups/backup1 '{"name": "kept"}'
wait_operation "$(jget 'j["operation"]')"
opok && pass "rename backup1 to kept" || fail "rename" "$HTTP_BODY"
expect_error 404 "... backup1 is gone" GET /1.0/instances/c1/backups/backup1
expect_status 200 "... kept is there" GET /1.0/instances/c1/backups/kept
[ -f "$BK/c1/kept" ] && [ ! -e "$BK/c1/backup1" ] && pass "... and so is its file" || fail "renamed file" "$(ls -A "$BK/c1")"
expect_refused 409 "a rename onto another backup is refused" POST /1.0/instances/c1/backups/kept '{"name": "mine"}'
api DELETE /1.0/instances/c1/backups/mine
wait_operation "$(jget 'j["operation"]')"
opok && pass "delete mine" || fail "delete" "$HTTP_BODY"
[ ! -e "$BK/c1/mine" ] && [ ! -e "$BK/c1/.mine.json" ] && pass "... its files are gone" || fail "deleted files" "$(ls -A "$BK/c1")"
backup_create c1 '{}'
is "$(jget 'j["metadata"]["resources"]["backups"][0]')" /1.0/backups/backup1 \
	"the next unnamed one is backup1 again (one more than backup0)"

# ---- compression: lxc export --compression, the server's default ----
for algo in zstd bzip2 none; do
	run lxc export b:c1 "$W/c1-$algo" --compression "$algo"
	rc_ok "lxc export --compression $algo"
	want=$algo
	[ "$algo" = none ] && want=tar
	is "$(magic "$W/c1-$algo")" "$want" "... is $want"
done
check "set backups.compression_algorithm=xz" berth config set backups.compression_algorithm xz
t0=$(date +%s%N)
run lxc export b:c1 "$W/c1-default"
diag "lxc export of the busybox container with two snapshots (xz, $(stat -c %s "$W/c1-default") bytes) took $((($(date +%s%N) - t0) / 1000000)) ms"
rc_ok "lxc export with the server's default"
is "$(magic "$W/c1-default")" xz "... is xz"
check "unset backups.compression_algorithm" berth config unset backups.compression_algorithm
is "$(index "$W/c1-default" 'i["snapshots"]')" '["snap0", "snap1"]' "lxc export has the snapshots"
is "$(tar -xOf "$W/c1-default" backup/snapshots/snap1/rootfs/home.txt)" two "... with their files"
api GET /1.0/instances/c1/backups
is "$(jget 'len(j["metadata"])')" 3 "lxc export deleted the backups it made"

# ---- berth export ----
run_cli export --help
like "$OUT" "berth export <instance> \[<file>\]" "berth export --help: usage"
like "$OUT" "--instance-only" "... --instance-only"
like "$OUT" "--optimized-storage" "... --optimized-storage"
like "$OUT" "--compression" "... --compression"
t0=$(date +%s%N)
run_cli export c1 "$W/berth-c1.tar.gz" --instance-only
diag "berth export --instance-only of the busybox container (gzip) took $((($(date +%s%N) - t0) / 1000000)) ms"
rc_ok "berth export c1 --instance-only"
like "$OUT" "Backup exported successfully" "... says so"
is "$(members "$W/berth-c1.tar.gz" | grep -c '^backup/snapshots')" 0 "... without the snapshots"
is "$(tar -xOf "$W/berth-c1.tar.gz" backup/container/rootfs/late.txt)" late "... with the instance's files"
(cd "$W" && "$BERTH" export c1 >/dev/null) && [ "$(magic "$W/backup.tar.gz")" = gzip ] &&
	pass "berth export without a file writes backup.tar.gz" || fail "berth export default file"
run_cli export nope "$W/nope.tar.gz"
[ "$RC" != 0 ] && [ ! -e "$W/nope.tar.gz" ] && pass "berth export of a missing instance fails, no file" ||
	fail "berth export nope" "rc $RC"
# a download that fails half-way (a full filesystem) leaves an existing file as it was
mkdir -p "$W/small"
if mount -t tmpfs -o size=64k tmpfs "$W/small"; then
	head -c 32768 /dev/urandom >"$W/small/keep.tar.gz"
	sum0=$(md5sum <"$W/small/keep.tar.gz")
	run_cli export c1 "$W/small/keep.tar.gz" --instance-only
	[ "$RC" != 0 ] && pass "berth export onto a full filesystem fails" ||
		fail "berth export onto a full filesystem fails"
	is "$(md5sum <"$W/small/keep.tar.gz")" "$sum0" "... the existing file untouched"
	is "$(ls -A "$W/small")" keep.tar.gz "... no temporary file left"
	umount "$W/small"
else
	fail "mount a small tmpfs"
fi

# ---- optimized_storage on dir: LXD makes an ordinary backup ----
run lxc export b:c1 "$W/c1-opt-dir" --optimized-storage
rc_ok "lxc export --optimized-storage on a dir pool"
is "$(index "$W/c1-opt-dir" '[i["optimized"], i["backend"]]')" '[false, "dir"]' "... an ordinary backup, as LXD's"
members "$W/c1-opt-dir" | grep -qx backup/container/rootfs/home.txt && pass "... with the plain layout" ||
	fail "plain layout for optimized on dir"

# ---- a running container ----
check "start c1" berth start c1
check "c1 writes while running" berth exec c1 -- sh -c 'echo live >/live.txt'
run_cli export c1 "$W/running.tar.gz"
rc_ok "berth export of a running container"
is "$(tar -xOf "$W/running.tar.gz" backup/container/rootfs/live.txt)" live "... has what it wrote"
api GET /1.0/instances/c1
is "$(jget 'j["metadata"]["status"]')" Running "... and it still runs"
check "stop c1" berth stop c1

# ---- expiry ----
exp=$(date -u -d '+8 seconds' +%Y-%m-%dT%H:%M:%S.000000000+00:00)
backup_create c1 "{\"name\": \"short\", \"expires_at\": \"$exp\"}"
opok && pass "a backup expiring in 8 s" || fail "short" "$HTTP_BODY"
api GET /1.0/instances/c1/backups/short
like "$(jget 'j["metadata"]["expires_at"]')" "^${exp:0:19}" "... shows its expiry"
backup_create c1 '{"name": "later", "expires_at": "2099-01-01T00:00:00+02:00"}'
api GET /1.0/instances/c1/backups/later
like "$(jget 'j["metadata"]["expires_at"]')" "^2098-12-31T22:00:00" "an offset expiry is shown in UTC"
for i in $(seq 40); do [ -e "$BK/c1/short" ] || break; sleep 0.5; done
expect_error 404 "the expired backup was pruned" GET /1.0/instances/c1/backups/short
[ ! -e "$BK/c1/short" ] && [ ! -e "$BK/c1/.short.json" ] && pass "... with its files" || fail "pruned files"
expect_status 200 "the other one stays" GET /1.0/instances/c1/backups/later
kill "$ws_pid" 2>/dev/null
wait "$ws_pid" 2>/dev/null
for ev in "instance-backup-renamed.*/1.0/instances/c1/backups/kept" "instance-backup-deleted.*/1.0/instances/c1/backups/mine" \
	"instance-backup-created.*/1.0/instances/c1/backups/backup1" "instance-backup-retrieved.*/1.0/instances/c1/backups/" \
	"instance-backup-deleted.*/1.0/instances/c1/backups/short"; do
	grep -qE "$ev" "$evlog" && pass "lifecycle event $ev" || fail "lifecycle event $ev" "$(head -c 2000 "$evlog")"
done
grep -q '"old_name": *"backup1"' "$evlog" && pass "... the rename's context names the old name" || fail "old_name" "$(grep renamed "$evlog")"

# ---- a failed and a cancelled backup leave nothing ----
before=$(store_files)
vol=$BERTH_DIR/storage-pools/default/containers/default_c1
mv "$vol/rootfs" "$vol/rootfs.away"
backup_create c1 '{"name": "broken"}'
is "$(jget 'j["metadata"]["status"]')" Failure "a backup whose rootfs cannot be read fails"
like "$(jget 'j["metadata"]["err"]')" "Creating the backup failed: .*rootfs" "... with tar's reason"
mv "$vol/rootfs.away" "$vol/rootfs"
is "$(store_files)" "$before" "... and leaves no file in the store"
spool_empty && pass "... nor in the spool" || fail "spool after failure" "$(ls -A "$BERTH_DIR/tmp")"
check "c1: 48 MB of random data" sh -c "head -c 48M /dev/urandom >'$vol/rootfs/big'"
api POST /1.0/instances/c1/backups '{"name": "slow", "compression_algorithm": "xz"}'
op=$(jget 'j["operation"]')
for _ in $(seq 50); do
	api GET "$op"
	progress=$(jget 'j["metadata"]["metadata"].get("create_backup_progress", "")')
	[ -n "$progress" ] && break
	sleep 0.2
done
like "$progress" "^Backup: [0-9.]+MB \([0-9.]+MB/s\)$" "a long backup shows create_backup_progress"
api DELETE "$op"
wait_operation "$op"
is "$(jget 'j["metadata"]["status"]')" Cancelled "a slow backup cancelled mid-way"
is "$(store_files)" "$before" "... leaves no file in the store"
spool_empty && pass "... nor in the spool" || fail "spool after cancel" "$(ls -A "$BERTH_DIR/tmp")"
expect_error 404 "... and no backup" GET /1.0/instances/c1/backups/slow
rm -f "$vol/rootfs/big"
# A crash between naming a tarball and writing its record leaves a tarball alone.
head -c 100 /dev/zero >"$BK/c1/orphan"
daemon_restart
[ ! -e "$BK/c1/orphan" ] && pass "berthd removes at start a tarball without its record" || fail "orphan"
expect_status 200 "... and keeps the backups" GET /1.0/instances/c1/backups/later

# ---- a root volume shifted on disk: the container's ids, nothing of the marker ----
check "init sh1" berth init busybox sh1
V=$BERTH_DIR/storage-pools/default/containers/default_sh1
echo "100000 200000 65536" >"$V/berth-shift"
echo shifted >"$V/rootfs/sh.txt"
chown 101000:201000 "$V/rootfs/sh.txt"
chown 100000:200000 "$V/rootfs"
run_cli export sh1 "$W/sh1.tar.gz"
rc_ok "berth export of sh1, shifted on disk"
run tar --numeric-owner -tvzf "$W/sh1.tar.gz"
like "$(printf '%s\n' "$OUT" | grep -E ' backup/container/rootfs/?$')" ' 0/0 ' "rootfs/ is 0/0 in the backup, not the host's 100000/200000"
like "$(printf '%s\n' "$OUT" | grep -E ' backup/container/rootfs/sh\.txt$')" ' 1000/1000 ' "the file is 1000/1000, not 101000/201000"
is "$(printf '%s\n' "$OUT" | grep -c berth-shift)" 0 "the marker is not in the backup"
is "$(index "$W/sh1.tar.gz" 'i["config"]["container"]["config"]["volatile.last_state.idmap"]')" "[]" "... which says nothing is shifted"
spool_empty && pass "the id maps are gone from the spool" || fail "spool after shifted export" "$(ls -A "$BERTH_DIR/tmp")"
check "delete sh1" berth delete sh1

# ---- virtual machines (t_vm_backup.sh): one without a root volume fails ----
api POST /1.0/instances '{"name": "v1", "type": "virtual-machine", "source": {"type": "none"}}'
[ "$HTTP_STATUS" = 202 ] && wait_operation "$(jget 'j["operation"]')"
if opok; then
	backup_create v1 '{}'
	like "$(jget 'j["metadata"]["err"]')" 'Instance "v1" has no root volume' \
		"a backup of a VM without a root volume fails, saying why"
	[ ! -e "$BK/v1/backup0" ] && pass "... nothing stored" || fail "v1 store" "$(ls -A "$BK/v1")"
	check "delete v1" berth delete v1
else
	skip "a backup of a VM without a root volume" "no empty VM could be made: $HTTP_BODY"
fi

# ---- backups follow their instance ----
check "init c2" berth init busybox c2
backup_create c2 '{}'
check "rename c2 to c3" berth rename c2 c3
expect_status 200 "c3 has c2's backup" GET /1.0/instances/c3/backups/backup0
[ -f "$BK/c3/backup0" ] && [ ! -e "$BK/c2" ] && pass "... its store moved" || fail "moved store" "$(ls -A "$BK")"
check "delete c3" berth delete c3
[ ! -e "$BK/c3" ] && pass "deleting the instance deletes its backups" || fail "backups of c3" "$(ls -A "$BK/c3")"

# ---- projects ----
check "create project p1 (default's images and profiles)" lxc project create b:p1 -c features.images=false -c features.profiles=false
check "init c1 in p1" berth init busybox c1 --project p1
backup_create c1 '{"name": "inp1"}' '?project=p1'
opok && pass "a backup of p1's c1" || fail "p1 backup" "$HTTP_BODY"
is "$(jget 'j["metadata"]["resources"]["instances"][0]')" "/1.0/instances/c1?project=p1" "... its operation names p1's instance"
[ -f "$BK/p1_c1/inp1" ] && pass "... stored in backups/instances/p1_c1" || fail "p1 store" "$(ls -A "$BK")"
expect_error 404 "default's c1 does not see it" GET /1.0/instances/c1/backups/inp1
api GET '/1.0/instances/c1/backups?project=p1'
is "$(jget 'j["metadata"]')" '["/1.0/instances/c1/backups/inp1?project=p1"]' "p1's c1 lists only its own"
run lxc export b:c1 "$W/p1.tar.gz" --project p1
rc_ok "lxc export --project p1"
is "$(index "$W/p1.tar.gz" 'i["config"]["container"]["project"]')" p1 "... the index says p1"
check "delete p1's c1" berth delete c1 --project p1
check "delete p1" lxc project delete b:p1

# ---- btrfs: optimized ----
if command -v mkfs.btrfs >/dev/null && { grep -qw btrfs /proc/filesystems || modprobe btrfs 2>/dev/null; }; then
	check "create a btrfs pool" berth storage create bt btrfs size=1GiB
	check "launch b1 on btrfs" berth launch busybox b1 -s bt
	check "b1: a file" berth exec b1 -- sh -c 'echo first >/f.txt && chown 1000:1000 /f.txt'
	check "snapshot b1 s0" berth snapshot b1 s0
	check "b1: the file changed" berth exec b1 -- sh -c 'echo second >/f.txt'
	check "snapshot b1 s1" berth snapshot b1 s1
	check "b1: a third state" berth exec b1 -- sh -c 'echo third >/f.txt'
	run lxc export b:b1 "$W/b1-opt" --optimized-storage
	rc_ok "lxc export --optimized-storage of a running container on btrfs"
	is "$(members "$W/b1-opt" | tr '\n' ' ')" \
		"backup/index.yaml backup/optimized_header.yaml backup/snapshots/s0.bin backup/snapshots/s1.bin backup/container.bin " \
		"members: index, optimized header, a send stream per snapshot, then the container's"
	is "$(index "$W/b1-opt" '[i["backend"], i["pool"], i["optimized"], i["optimized_header"], i["snapshots"]]')" \
		'["btrfs", "bt", true, true, ["s0", "s1"]]' "index.yaml: btrfs, optimized, optimized_header"
	is "$(tar -xOf "$W/b1-opt" backup/optimized_header.yaml | $PY -c 'import sys,yaml; print([(s["path"], s["snapshot"], s["readonly"]) for s in yaml.safe_load(sys.stdin)["subvolumes"]])')" \
		"[('/', 's0', True), ('/', 's1', True), ('/', '', False)]" "optimized_header.yaml lists the subvolumes"
	is "$(tar -xOf "$W/b1-opt" backup/container.bin | head -c 12)" btrfs-stream "container.bin is a btrfs send stream"
	# btrfs receive them, in order, on the pool: the streams hold the instance's states.
	rx=$BERTH_DIR/storage-pools/bt/rx
	mkdir -p "$rx" "$W/opt"
	tar -xf "$W/b1-opt" -C "$W/opt"
	ok=1
	for f in snapshots/s0.bin snapshots/s1.bin container.bin; do
		btrfs receive -q -f "$W/opt/backup/$f" "$rx" >/dev/null 2>&1 || ok=0
	done
	[ "$ok" = 1 ] && pass "btrfs receive takes the three streams in order (incremental)" || fail "btrfs receive"
	# (the instance's subvolume is the backup's read-only snapshot: a dot name, as LXD's)
	got=$(for s in $(ls -A "$rx"); do cat "$rx/$s/rootfs/f.txt"; done | sort | tr '\n' ' ')
	is "$got" "first second third " "... giving s0, s1 and the instance's files"
	for s in $(ls -A "$rx"); do btrfs subvolume delete "$rx/$s" >/dev/null 2>&1; done
	rmdir "$rx"
	is "$(ls -A "$BERTH_DIR/storage-pools/bt/containers-snapshots/default_b1" | tr '\n' ' ')" "s0 s1 " \
		"no temporary snapshot left"
	run_cli export b1 "$W/b1-plain.tar.gz"
	rc_ok "berth export of the running b1 on btrfs (not optimized)"
	is "$(tar -xOf "$W/b1-plain.tar.gz" backup/container/rootfs/f.txt)" third "... from a snapshot of it: its files"
	is "$(index "$W/b1-plain.tar.gz" '[i["backend"], i["optimized"]]')" '["btrfs", false]' "... an ordinary backup"
	# A crash mid-backup: what it left (spool directory, snapshot) goes at the next start.
	BERTHD_ENV=(BERTH_MONITOR="$BERTH_MONITOR" BERTH_SNAPSHOT_TICK_MS=1000 BERTH_TEST_HARNESS=1
		BERTH_TEST_PAUSE_AT=backup-before-pack)
	daemon_restart
	api POST /1.0/instances/b1/backups '{"name": "crash", "optimized_storage": true}'
	for _ in $(seq 300); do grep -q "berth-test-pause: backup-before-pack" "$DAEMON_LOG" && break; sleep 0.1; done
	grep -q "berth-test-pause: backup-before-pack" "$DAEMON_LOG" && pass "berthd paused before packing b1's backup" ||
		fail "berthd paused before packing" "$HTTP_BODY"
	snapdir=$BERTH_DIR/storage-pools/bt/containers-snapshots/default_b1
	is "$(ls -A "$BERTH_DIR/tmp" | grep -c '^backup-')/$(ls -A "$snapdir" | grep -c '^\.berth-backup-')" 1/1 \
		"... with its spool directory and its temporary snapshot"
	kill -KILL "$DAEMON_PID"
	wait "$DAEMON_PID" 2>/dev/null
	DAEMON_PID=
	BERTHD_ENV=(BERTH_MONITOR="$BERTH_MONITOR" BERTH_SNAPSHOT_TICK_MS=1000)
	daemon_start
	is "$(ls -A "$BERTH_DIR/tmp" | grep -c '^backup-')" 0 "after SIGKILL, the next start removes the spool directory"
	is "$(ls -A "$snapdir" | tr '\n' ' ')" "s0 s1 " "... and the temporary snapshot"
	expect_error 404 "... and there is no backup" GET /1.0/instances/b1/backups/crash
	is "$(ls -A "$BK/b1" 2>/dev/null | wc -l)" 0 "... nor any file of one"
	check "delete b1" berth delete -f b1
	check "delete the btrfs pool" berth storage delete bt
else
	skip "optimized backups on btrfs" "mkfs.btrfs or the kernel module is missing"
fi

api GET "/1.0/instances/c1/backups?recursion=1"
is "$(jget "sorted(b['name'] for b in j['metadata'])")" '["backup0", "backup1", "kept", "later"]' "c1 keeps its four backups"
is "$(store_files)" 8 "the store holds them and their records, nothing else"
