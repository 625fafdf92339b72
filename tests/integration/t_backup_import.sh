#!/bin/bash
# t_backup_import.sh: instance backups in LXD 5.0.2's tarball format, built here from the
# busybox image's rootfs with an index.yaml of 5.0.2's shape (two snapshots), imported
# through the raw API (POST /1.0/instances, application/octet-stream), the stock
# `lxc import` and `berth import`: gzip, xz and uncompressed; under another name
# (X-LXD-name), into another pool (X-LXD-pool, --storage); optimized btrfs (.bin streams
# made here with `btrfs send`). The imported instance starts, and its snapshots (names,
# order, dates, expiry, content), config (volatile keys the exporter had dropped),
# devices and profiles are the backup's. Then the hostile suite: each tarball refused
# with its message, and nothing left behind (instances, volumes, files under the state
# dir, mounts).
. "$(dirname "$0")/lib.sh"
berth_test_images busybox
: "${BERTH_MONITOR:=$BERTH_BUILDDIR/berth-monitor}"
if [ "$(id -u)" = 0 ]; then
	[ -x "$BERTH_MONITOR" ] || skip_all "no berth-monitor at $BERTH_MONITOR (build it first)"
fi
BERTHD_ENV=(BERTH_MONITOR="$BERTH_MONITOR")
berth_test_init "$@"
export PATH=$BERTH_BUILDDIR:$PATH
HAVE_LXC=1
command -v lxc >/dev/null || HAVE_LXC=
export LXD_CONF=$TEST_TMP/lxd-conf
mkdir -p "$LXD_CONF"
unset LXD_DIR

W=$TEST_TMP/work
mkdir -p "$W"
opok() { [ "$(jget 'j["metadata"]["status"]')" = Success ]; }
count_instances() { api GET /1.0/instances; jget 'len(j["metadata"])'; }
count_volumes() { find "$BERTH_DIR/storage-pools" -mindepth 2 -maxdepth 3 2>/dev/null | wc -l; }
count_tmp() { ls -A "$BERTH_DIR/tmp" | wc -l; }

# ---- a backup's content: the busybox rootfs, three states of /state.txt ----
stage=$W/stage
mkdir -p "$stage/img"
tar -xzf "${IMAGE[busybox]}" -C "$stage/img"
mk_tree() # DIR CONTENT
{
	mkdir -p "$1"
	cp -a "$stage/img/." "$1/"
	printf '%s\n' "$2" >"$1/rootfs/state.txt"
	chown 1000:1000 "$1/rootfs/state.txt"
}
mk_tree "$stage/backup/container" current
mk_tree "$stage/backup/snapshots/snap0" zero
mk_tree "$stage/backup/snapshots/snap1" one

# index.yaml in 5.0.2's shape (as backupWriteIndex writes it): NAME BACKEND OPTIMIZED
# [SNAPSHOTS...]
index_yaml()
{
	local name=$1 backend=$2 opt=$3 s
	shift 3
	printf 'name: %s\nbackend: %s\npool: default\n' "$name" "$backend"
	if [ $# -gt 0 ]; then
		printf 'snapshots:\n'
		for s in "$@"; do printf -- '- %s\n' "$s"; done
	fi
	printf 'optimized: %s\noptimized_header: %s\ntype: container\nconfig:\n' "$opt" "$opt"
	cat <<EOF
  container:
    architecture: x86_64
    config:
      image.os: busybox
      limits.memory: 256MiB
      user.note: restored
      volatile.base_image: 612e0b2e977a21be
      volatile.eth0.hwaddr: 00:16:3e:12:34:56
      volatile.idmap.current: '[{"Isuid":true,"Isgid":false,"Hostid":1000000,"Nsid":0,"Maprange":65536}]'
      volatile.idmap.next: '[{"Isuid":true,"Isgid":false,"Hostid":1000000,"Nsid":0,"Maprange":65536}]'
      volatile.last_state.idmap: '[]'
      volatile.last_state.power: STOPPED
      volatile.uuid: 6f0d5a1e-0000-4000-8000-000000000001
    devices:
      data:
        path: /mnt/data
        source: $W/shared
        type: disk
    ephemeral: false
    profiles:
    - default
    - extra
    stateful: false
    description: restored from a backup
    created_at: 2024-01-02T03:04:05Z
    name: $name
    status: Stopped
    status_code: 102
    type: container
  snapshots:
  - architecture: x86_64
    config:
      user.note: at-snap0
    created_at: 2024-02-03T04:05:06Z
    expires_at: 0001-01-01T00:00:00Z
    devices: {}
    ephemeral: false
    name: snap0
    profiles:
    - default
    stateful: false
    description: ""
  - architecture: x86_64
    config:
      user.note: at-snap1
    created_at: 2024-03-04T05:06:07Z
    expires_at: 2030-01-01T00:00:00Z
    devices: {}
    ephemeral: false
    name: snap1
    profiles:
    - default
    stateful: false
    description: ""
  pool:
    name: default
    driver: $backend
    config: {}
EOF
}
mkdir -p "$W/shared"
echo shared-file >"$W/shared/hello"

# mk_backup OUT COMPRESSION(gz|xz|none) [SNAPSHOTS...]: the staged tree with an index
# naming those snapshots (and holding only them).
mk_backup()
{
	local out=$1 comp=$2 s list=(backup/index.yaml backup/container)
	shift 2
	[ $# -gt 0 ] && list+=(backup/snapshots)
	index_yaml c1 dir false "$@" >"$stage/backup/index.yaml"
	local ex=()
	for s in snap0 snap1; do
		[[ " $* " == *" $s "* ]] || ex+=(--exclude="backup/snapshots/$s")
	done
	case $comp in
	gz) tar -C "$stage" "${ex[@]}" -czf "$out" "${list[@]}" ;;
	xz) tar -C "$stage" "${ex[@]}" -cJf "$out" "${list[@]}" ;;
	none) tar -C "$stage" "${ex[@]}" -cf "$out" "${list[@]}" ;;
	esac
}

check "lxc remote add b" lxc remote add b "unix://$BERTH_SOCKET"
check "profile extra" berth profile create extra
check "profile extra: a config key" berth profile set extra user.from-profile yes

# ---- raw API, gzip, two snapshots ----
mk_backup "$W/c1.tar.gz" gz snap0 snap1
vols0=$(count_volumes)
api POST /1.0/instances -d "@$W/c1.tar.gz" -H 'Content-Type: application/octet-stream'
is "$HTTP_STATUS" 202 "POST /1.0/instances with a gzip backup: 202"
is "$(jget 'j["metadata"]["description"]')" "Restoring backup" "... an operation 'Restoring backup'"
is "$(jget 'j["metadata"]["resources"]["instances"][0]')" "/1.0/instances/c1" "... on instance c1"
wait_operation "$(jget 'j["operation"]')"
opok && pass "... the operation succeeds" || fail "... the operation succeeds" "$HTTP_BODY"
api GET /1.0/instances/c1
is "$(jget 'j["metadata"]["description"]')" "restored from a backup" "c1: description kept"
is "$(jget 'j["metadata"]["profiles"]')" '["default", "extra"]' "c1: profiles kept"
is "$(jget 'j["metadata"]["config"]["user.note"]')" "restored" "c1: config kept"
is "$(jget 'j["metadata"]["config"]["limits.memory"]')" "256MiB" "c1: limits kept"
is "$(jget 'j["metadata"]["config"].get("volatile.eth0.hwaddr")')" "00:16:3e:12:34:56" "c1: the NIC's MAC kept"
is "$(jget 'j["metadata"]["config"].get("volatile.base_image")')" "612e0b2e977a21be" "c1: volatile.base_image kept"
is "$(jget 'len([k for k in j["metadata"]["config"] if k.startswith("volatile.idmap") or k.startswith("volatile.last_state") or k == "volatile.uuid"])')" 0 \
	"c1: the exporter's id maps, last state and uuid are not kept"
is "$(jget 'j["metadata"]["devices"]["data"]["source"]')" "$W/shared" "c1: the disk device kept"
is "$(jget 'j["metadata"]["expanded_config"].get("user.from-profile")')" "yes" "c1: the profile applies"
is "$(jget 'j["metadata"]["expanded_devices"]["root"]["pool"]')" "default" "c1: root disk on pool default"
api GET "/1.0/instances/c1/snapshots?recursion=1"
is "$(jget '[s["name"] for s in j["metadata"]]')" '["snap0", "snap1"]' "c1: both snapshots, in order"
is "$(jget '[s["created_at"][:19] for s in j["metadata"]]')" '["2024-02-03T04:05:06", "2024-03-04T05:06:07"]' \
	"c1: the snapshots' creation dates kept"
is "$(jget '[s["expires_at"][:4] for s in j["metadata"]]')" '["0001", "2030"]' "c1: their expiry kept"
is "$(jget '[s["stateful"] for s in j["metadata"]]')" '[false, false]' "c1: not stateful"
is "$(jget '[s["config"].get("user.note") for s in j["metadata"]]')" '["at-snap0", "at-snap1"]' \
	"c1: the snapshots' config kept"
vol=$BERTH_DIR/storage-pools/default
is "$(cat "$vol/containers-snapshots/default_c1/snap0/rootfs/state.txt")" zero "snap0 holds its own content"
is "$(cat "$vol/containers-snapshots/default_c1/snap1/rootfs/state.txt")" one "snap1 holds its own content"
is "$(stat -c %u:%g "$vol/containers/default_c1/rootfs/state.txt")" "1000:1000" "owners kept unshifted on disk"
[ ! -e "$vol/containers/default_c1/backup.yaml" ] && pass "backup.yaml is not left in the volume" ||
	fail "backup.yaml is not left in the volume"
check "start c1" berth start c1
run berth exec c1 -- cat /state.txt
is "$OUT" current "c1 runs the instance's own content"
run berth exec c1 -- stat -c %u:%g /state.txt
is "$OUT" "1000:1000" "c1 sees its file owned by 1000:1000 (shifted by the runtime)"
run berth exec c1 -- cat /mnt/data/hello
is "$OUT" shared-file "c1's disk device is there"
check "stop c1" berth stop c1 --force
check "restore snap0" berth restore c1 snap0
check "start c1 at snap0" berth start c1
run berth exec c1 -- cat /state.txt
is "$OUT" zero "after restore, c1 runs snap0's content"
check "stop c1" berth stop c1 --force
api GET /1.0/instances/c1
is "$(jget 'j["metadata"]["config"]["user.note"]')" "at-snap0" "the restore brings snap0's config back"
is "$(count_tmp)" 0 "no spooled upload left in the state dir"

# ---- a name in use ----
api POST /1.0/instances -d "@$W/c1.tar.gz" -H 'Content-Type: application/octet-stream'
is "$HTTP_STATUS" 409 "the same backup again: 409"
like "$(jget 'j["error"]')" 'Instance "c1" already exists' "... naming the instance"

# ---- another name (X-LXD-name), xz, one snapshot ----
mk_backup "$W/c1.tar.xz" xz snap1
api POST /1.0/instances -d "@$W/c1.tar.xz" -H 'Content-Type: application/octet-stream' -H 'X-LXD-name: c2'
wait_operation "$(jget 'j["operation"]')"
opok && pass "xz backup under the name c2 (X-LXD-name)" || fail "xz backup under the name c2" "$HTTP_BODY"
api GET /1.0/instances/c2/snapshots
is "$(jget 'j["metadata"]')" '["/1.0/instances/c2/snapshots/snap1"]' "c2: its one snapshot"
check "start c2" berth start c2
run berth exec c2 -- cat /state.txt
is "$OUT" current "c2 runs"
check "delete c2" berth delete c2 --force

# ---- lxc import, uncompressed, no snapshot ----
if [ -n "$HAVE_LXC" ]; then
	mk_backup "$W/c1.tar" none
	run lxc import b: "$W/c1.tar" c3
	rc_ok "lxc import b: FILE c3 (uncompressed)"
	check "lxc start b:c3" lxc start b:c3
	run lxc exec b:c3 -- cat /state.txt
	is "$OUT" current "c3 runs the backup's content"
	run lxc info b:c3
	like "$OUT" "Status: RUNNING" "lxc info: c3 running"
	check "lxc delete --force b:c3" lxc delete --force b:c3
else
	skip "lxc import" "lxc not installed"
fi

# ---- berth import ----
run berth import "$W/c1.tar.gz" c4
rc_ok "berth import FILE c4"
api GET /1.0/instances/c4/snapshots
is "$(jget 'len(j["metadata"])')" 2 "c4: two snapshots"
run berth import --help
like "$OUT" "--storage" "berth import --help names --storage"
run berth import "$W/c1.tar.gz" c4
like "$ERR" 'Instance "c4" already exists' "berth import to a taken name: LXD's error"
check "delete c4" berth delete c4

# ---- members in any order: one pass writes each into its own tree as it comes ----
index_yaml c4 dir false snap0 snap1 >"$stage/backup/index.yaml"
tar -C "$stage" -czf "$W/rev.tar.gz" backup/container backup/snapshots/snap1 \
	backup/snapshots/snap0 backup/index.yaml
run berth import "$W/rev.tar.gz" c4r
rc_ok "berth import of a tarball holding the instance first, its index last"
is "$(cat "$vol/containers-snapshots/default_c4r/snap0/rootfs/state.txt")" zero "c4r: snap0's content"
is "$(cat "$vol/containers-snapshots/default_c4r/snap1/rootfs/state.txt")" one "c4r: snap1's content"
is "$(cat "$vol/containers/default_c4r/rootfs/state.txt")" current "c4r: the instance's content"
is "$(stat -c %u:%g "$vol/containers-snapshots/default_c4r/snap0/rootfs/state.txt")" "1000:1000" \
	"c4r: a snapshot's owners kept"
check "delete c4r" berth delete c4r

# ---- a missing profile ----
sed 's/^    - extra$/    - ghost/' "$stage/backup/index.yaml" >/dev/null
index_yaml c5 dir false | sed 's/^    - extra$/    - ghost/' >"$stage/backup/index.yaml"
tar -C "$stage" -czf "$W/ghost.tar.gz" backup/index.yaml backup/container
api POST /1.0/instances -d "@$W/ghost.tar.gz" -H 'Content-Type: application/octet-stream'
is "$HTTP_STATUS" 400 "a backup naming a missing profile: 400"
like "$(jget 'j["error"]')" 'Requested profile "ghost" doesn.t exist' "... LXD's error naming it"

# ---- another pool (X-LXD-pool, --storage): btrfs on a loop file ----
BTRFS=
if command -v mkfs.btrfs >/dev/null && { grep -qw btrfs /proc/filesystems || modprobe btrfs 2>/dev/null; }; then
	BTRFS=1
fi
if [ -n "$BTRFS" ]; then
	check "create a btrfs pool" berth storage create bt btrfs size=1GiB
	run berth import --storage bt "$W/c1.tar.gz" c6
	rc_ok "berth import --storage bt FILE c6"
	api GET /1.0/instances/c6
	is "$(jget 'j["metadata"]["expanded_devices"]["root"]["pool"]')" "bt" "c6: root disk on pool bt"
	is "$(jget 'j["metadata"]["devices"]["root"]["pool"]')" "bt" "c6: a local root device names it"
	bt=$BERTH_DIR/storage-pools/bt
	is "$(btrfs property get -ts "$bt/containers-snapshots/default_c6/snap0" ro)" "ro=true" \
		"c6: snap0 is a read-only subvolume"
	is "$(cat "$bt/containers-snapshots/default_c6/snap1/rootfs/state.txt")" one "c6: snap1's content"
	run berth import --storage bt "$W/rev.tar.gz" c6r
	rc_ok "btrfs: a tarball whose trees are out of order (read again tree by tree)"
	is "$(cat "$bt/containers-snapshots/default_c6r/snap0/rootfs/state.txt"):$(cat "$bt/containers-snapshots/default_c6r/snap1/rootfs/state.txt"):$(cat "$bt/containers/default_c6r/rootfs/state.txt")" \
		"zero:one:current" "c6r: each tree's content"
	check "delete c6r" berth delete c6r
	check "start c6" berth start c6
	run berth exec c6 -- cat /state.txt
	is "$OUT" current "c6 runs from pool bt"
	check "stop c6" berth stop c6 --force
	if [ -n "$HAVE_LXC" ]; then
		run lxc import b: "$W/c1.tar.xz" c7 --storage bt
		rc_ok "lxc import --storage bt"
		api GET /1.0/instances/c7
		is "$(jget 'j["metadata"]["expanded_devices"]["root"]["pool"]')" "bt" "c7: on pool bt"
		check "delete c7" berth delete c7
	fi
	api POST /1.0/instances -d "@$W/c1.tar.gz" -H 'Content-Type: application/octet-stream' \
		-H 'X-LXD-pool: nosuchpool' -H 'X-LXD-name: c8'
	is "$HTTP_STATUS" 404 "X-LXD-pool naming no pool: 404"
	like "$(jget 'j["error"]')" 'Storage pool not found' "... LXD's error"

	# ---- optimized btrfs: .bin streams made with btrfs send ----
	mkdir -p "$W/bfs"
	truncate -s 512M "$W/bfs.img"
	mkfs.btrfs -q "$W/bfs.img"
	mount -o loop "$W/bfs.img" "$W/bfs"
	btrfs -q subvolume create "$W/bfs/default_c9" >/dev/null
	cp -a "$stage/backup/snapshots/snap0/." "$W/bfs/default_c9/"
	btrfs -q subvolume snapshot -r "$W/bfs/default_c9" "$W/bfs/snap0" >/dev/null
	printf 'one\n' >"$W/bfs/default_c9/rootfs/state.txt"
	btrfs -q subvolume snapshot -r "$W/bfs/default_c9" "$W/bfs/snap1" >/dev/null
	printf 'current\n' >"$W/bfs/default_c9/rootfs/state.txt"
	btrfs -q subvolume snapshot -r "$W/bfs/default_c9" "$W/bfs/c9ro" >/dev/null
	ostage=$W/ostage
	mkdir -p "$ostage/backup/snapshots"
	btrfs -q send -f "$ostage/backup/snapshots/snap0.bin" "$W/bfs/snap0" 2>/dev/null
	btrfs -q send -p "$W/bfs/snap0" -f "$ostage/backup/snapshots/snap1.bin" "$W/bfs/snap1" 2>/dev/null
	btrfs -q send -p "$W/bfs/snap1" -f "$ostage/backup/container.bin" "$W/bfs/c9ro" 2>/dev/null
	umount "$W/bfs"
	rm -f "$W/bfs.img"
	index_yaml c9 btrfs true snap0 snap1 >"$ostage/backup/index.yaml"
	tar -C "$ostage" -czf "$W/opt.tar.gz" backup
	run berth import --storage bt "$W/opt.tar.gz"
	rc_ok "berth import of an optimized btrfs backup (three send streams, incremental)"
	is "$(cat "$bt/containers-snapshots/default_c9/snap0/rootfs/state.txt")" zero "c9: snap0 received"
	is "$(cat "$bt/containers-snapshots/default_c9/snap1/rootfs/state.txt")" one "c9: snap1 received"
	is "$(btrfs property get -ts "$bt/containers/default_c9" ro)" "ro=false" "c9: the instance is writable"
	[ -z "$(ls -A "$bt/containers" | grep berth-import)" ] && pass "no receive directory left" ||
		fail "no receive directory left" "$(ls -A "$bt/containers")"
	check "start c9" berth start c9
	run berth exec c9 -- cat /state.txt
	is "$OUT" current "c9 runs the received instance"
	check "stop c9" berth stop c9 --force
	# the streams out of order: the instance's is received against a parent not there
	tar -C "$ostage" -czf "$W/optrev.tar.gz" backup/index.yaml backup/container.bin \
		backup/snapshots
	run berth import --storage bt "$W/optrev.tar.gz" c9r
	like "$ERR" "stream of the instance is out of order" "streams out of order: refused, naming the first"
	[ ! -e "$bt/containers/default_c9r" ] && [ ! -e "$bt/containers-snapshots/default_c9r" ] &&
		pass "... no volume or snapshot left" || fail "... no volume or snapshot left"
	api POST /1.0/instances -d "@$W/opt.tar.gz" -H 'Content-Type: application/octet-stream' -H 'X-LXD-name: c10'
	is "$HTTP_STATUS" 400 "an optimized btrfs backup into a dir pool: 400"
	like "$(jget 'j["error"]')" 'Optimized backup storage driver "btrfs" differs from the target storage pool driver "dir"' \
		"... LXD's error"

	# ---- hostile btrfs streams: real `btrfs send` output with its paths patched ----
	# lnk -> $W/outside (a directory here), then xxx/pwned renamed to lnk/pwned: written
	# through the symlink unless the receive is chrooted; aaaaaaaaaaaa renamed to
	# ../../escape: out of the receive directory.
	mkdir -p "$W/bfs" "$W/outside"
	truncate -s 256M "$W/bfs.img"
	mkfs.btrfs -q "$W/bfs.img"
	mount -o loop "$W/bfs.img" "$W/bfs"
	btrfs -q subvolume create "$W/bfs/sv" >/dev/null
	ln -s "$W/outside" "$W/bfs/sv/lnk"
	mkdir "$W/bfs/sv/xxx"
	printf 'pwned\n' >"$W/bfs/sv/xxx/pwned"
	printf 'escaped\n' >"$W/bfs/sv/aaaaaaaaaaaa"
	# qq -> / (the receive's root), then a symlink made at qq/zz (patched from qqazz):
	# through qq it lands beside the received subvolume, where berthd must not take it
	# for one (it points at another instance's volume)
	ln -s / "$W/bfs/sv/qq"
	ln -s "$bt/containers/default_c9" "$W/bfs/sv/qqazz"
	btrfs -q subvolume snapshot -r "$W/bfs/sv" "$W/bfs/ro" >/dev/null
	btrfs -q send -f "$W/good.bin" "$W/bfs/ro" 2>/dev/null
	# a block device node (the checks of a tarball's members refuse it too)
	btrfs -q subvolume create "$W/bfs/bd" >/dev/null
	mknod "$W/bfs/bd/sda" b 8 0
	btrfs -q subvolume snapshot -r "$W/bfs/bd" "$W/bfs/bdro" >/dev/null
	btrfs -q send -f "$W/blk.bin" "$W/bfs/bdro" 2>/dev/null
	umount "$W/bfs"
	rm -f "$W/bfs.img"
	hostile_stream() # NAME OLD=NEW...: backup NAME.tar.gz whose container.bin is patched
	{
		local name=$1 h=$W/h-$1
		shift
		mkdir -p "$h/backup"
		python3 "$BERTH_SRCDIR/tests/integration/btrfs_stream_patch.py" "$W/good.bin" \
			"$h/backup/container.bin" "$@"
		index_yaml "$name" btrfs true >"$h/backup/index.yaml"
		tar -C "$h" -czf "$W/$name.tar.gz" backup
	}
	hostile_stream hsym 'xxx/=lnk/'
	hostile_stream hdot 'aaaaaaaaaaaa=../../escape'
	# (send makes each new inode under a temporary name, then renames it: the symlink's
	# temporary name too goes through qq, so that the rename stays in one directory)
	orphan=$(btrfs receive --dump -f "$W/good.bin" 2>/dev/null |
		awk '$1 == "symlink" && /default_c9/ { n = $2; sub(/.*\//, "", n); print n }')
	zs=$(printf '%*s' $((${#orphan} - 3)) '' | tr ' ' z)
	hostile_stream hbeside "$orphan=qq/$zs" 'qqazz=qq/zz'
	# a stream cut short: the receive fails half-way
	hostile_stream htrunc
	truncate -s $(($(stat -c %s "$W/h-htrunc/backup/container.bin") / 2)) "$W/h-htrunc/backup/container.bin"
	tar -C "$W/h-htrunc" -czf "$W/htrunc.tar.gz" backup
	# the block device's stream; a stream going on after its end command (two of them)
	mkdir -p "$W/h-hblk/backup" "$W/h-hcat/backup"
	cp "$W/blk.bin" "$W/h-hblk/backup/container.bin"
	cat "$W/good.bin" "$W/good.bin" >"$W/h-hcat/backup/container.bin"
	for h in hblk hcat; do
		index_yaml "$h" btrfs true >"$W/h-$h/backup/index.yaml"
		tar -C "$W/h-$h" -czf "$W/$h.tar.gz" backup
	done
	n_inst=$(count_instances)
	for h in hsym hdot hblk hcat htrunc hbeside; do
		run berth import --storage bt "$W/$h.tar.gz"
		[ "$RC" != 0 ] && pass "berth import of the hostile stream $h: refused" ||
			fail "berth import of the hostile stream $h: refused"
		diag "$h: $ERR"
	done
	like "$ERR" "btrfs stream" "the truncated stream: an error naming the btrfs stream"
	run berth import --storage bt "$W/hsym.tar.gz"
	like "$ERR" "Receiving the btrfs stream" "the symlinked path: refused by the chrooted receive"
	run berth import --storage bt "$W/hdot.tar.gz"
	like "$ERR" "reaches outside its subvolume" "a ../ path: refused by the check, the receive killed"
	run berth import --storage bt "$W/hblk.tar.gz"
	like "$ERR" "btrfs stream makes a block device" "a block device node: refused by the check"
	run berth import --storage bt "$W/hcat.tar.gz"
	like "$ERR" "goes on after its end command" "bytes after the end command: refused"
	run berth import --storage bt "$W/hbeside.tar.gz"
	like "$ERR" 'btrfs stream made "zz*" beside its subvolume' \
		"a symlink made beside the received subvolume (through one to /): refused"
	is "$(ls -A "$W/outside")" "" "nothing written through the stream's symlink"
	[ ! -e "$bt/escape" ] && [ ! -e "$bt/containers/escape" ] && [ ! -e "$BERTH_DIR/escape" ] &&
		pass "nothing written at ../../escape" || fail "nothing written at ../../escape"
	is "$(count_instances)" "$n_inst" "the hostile streams made no instance"
	is "$(ls -A "$bt/containers" | grep -c berth-import)" 0 "no receive directory left"
	is "$(btrfs subvolume list -o "$bt/containers" 2>/dev/null | grep -c berth-import)" 0 \
		"no received subvolume left"
else
	skip "btrfs pools" "no mkfs.btrfs or no btrfs in the kernel"
fi

diag "imports done after ${SECONDS}s"
# ---- hostile tarballs: refused, nothing left ----
# Each builds on the good plain tarball (uncompressed, no snapshot) with Python's tarfile.
mk_backup "$W/base.tar" none
evil() # NAME PYTHON: appends members to a copy of base.tar ("t" the open TarFile)
{
	cp "$W/base.tar" "$W/$1.tar"
	$PY - "$W/$1.tar" <<EOF
import io, sys, tarfile
t = tarfile.open(sys.argv[1], "a", format=tarfile.PAX_FORMAT)
def add(name, type=tarfile.REGTYPE, data=b"x", **kw):
    ti = tarfile.TarInfo(name)
    ti.type = type
    for k, v in kw.items():
        setattr(ti, k, v)
    if type == tarfile.REGTYPE:
        ti.size = len(data)
        t.addfile(ti, io.BytesIO(data))
    else:
        t.addfile(ti)
$2
t.close()
EOF
}
# expect_hostile DESC FILE PATTERN
expect_hostile()
{
	local desc=$1 file=$2 pat=$3 before_i before_v before_t before_m
	before_i=$(count_instances) before_v=$(count_volumes) before_m=$(own_mounts)
	api POST /1.0/instances -d "@$file" -H 'Content-Type: application/octet-stream' -H 'X-LXD-name: evil'
	if [ "$HTTP_STATUS" = 202 ]; then
		wait_operation "$(jget 'j["operation"]')"
		msg=$(jget 'j["metadata"]["err"]')
	else
		msg=$(jget 'j["error"]')
	fi
	like "$msg" "$pat" "$desc: refused ($pat)"
	is "$(count_instances)/$(count_volumes)/$(count_tmp)/$(own_mounts)" \
		"$before_i/$before_v/0/$before_m" "$desc: no instance, volume, temp file or mount left"
	[ ! -e /tmp/berth-evil ] || { fail "$desc: nothing written outside" "/tmp/berth-evil exists"; rm -rf /tmp/berth-evil; }
}
rm -rf /tmp/berth-evil
evil dotdot 'add("backup/container/rootfs/../../../../../../tmp/berth-evil")'
expect_hostile "a member with .." "$W/dotdot.tar" 'Refusing backup tarball member.*absolute name, or one with ".."'
evil absolute 'add("/tmp/berth-evil")'
expect_hostile "an absolute member" "$W/absolute.tar" 'Refusing backup tarball member "/tmp/berth-evil"'
evil through_symlink 'add("backup/container/rootfs/lnk", tarfile.SYMTYPE, linkname="/tmp")
add("backup/container/rootfs/lnk/berth-evil")'
expect_hostile "a member written through an earlier symlink" "$W/through_symlink.tar" 'written through a symlink'
evil hard_out 'add("backup/container/rootfs/h", tarfile.LNKTYPE, linkname="../../../../etc/shadow")'
expect_hostile "a hard link outside" "$W/hard_out.tar" 'hard link to an absolute path or through ".."'
evil hard_other 'add("backup/container/rootfs/h", tarfile.LNKTYPE, linkname="backup/index.yaml")'
expect_hostile "a hard link to another part of the tarball" "$W/hard_other.tar" 'hard link outside its own rootfs'
evil hard_sym 'add("backup/container/rootfs/s", tarfile.SYMTYPE, linkname="/etc/shadow")
add("backup/container/rootfs/h", tarfile.LNKTYPE, linkname="backup/container/rootfs/s")'
expect_hostile "a hard link to a symlink" "$W/hard_sym.tar" 'hard link to something that is not a regular file'
evil rel_sym 'add("backup/container/rootfs/up", tarfile.SYMTYPE, linkname="../../../../etc")'
expect_hostile "a relative symlink climbing out of rootfs" "$W/rel_sym.tar" 'relative symlink that climbs out'
evil blockdev 'add("backup/container/rootfs/dev/sda", tarfile.BLKTYPE, devmajor=8, devminor=0)'
expect_hostile "a block device" "$W/blockdev.tar" 'a block device'
evil kmem 'add("backup/container/rootfs/dev/kmem", tarfile.CHRTYPE, devmajor=1, devminor=2)'
expect_hostile "a character device (kmem)" "$W/kmem.tar" 'character device other than null'
# allowed nodes keep the tarball's mode (set through the node's descriptor)
evil devok 'add("backup/container/rootfs/null2", tarfile.CHRTYPE, devmajor=1, devminor=3, mode=0o640)
add("backup/container/rootfs/fifo1", tarfile.FIFOTYPE, mode=0o604)'
run berth import "$W/devok.tar" cdev
rc_ok "berth import of a backup with a 1:3 node and a FIFO"
is "$(stat -c '%a %t:%T' "$BERTH_DIR/storage-pools/default/containers/default_cdev/rootfs/null2")" \
	"640 1:3" "... the node made with its mode"
is "$(stat -c '%a %F' "$BERTH_DIR/storage-pools/default/containers/default_cdev/rootfs/fifo1")" \
	"604 fifo" "... the FIFO too"
check "delete cdev" berth delete cdev
evil nodev_meta 'add("backup/container/templates/null", tarfile.CHRTYPE, devmajor=1, devminor=3)'
expect_hostile "a device node outside rootfs" "$W/nodev_meta.tar" 'not a regular file or directory'
evil stray 'add("backup/evil.sh")'
expect_hostile "a member outside the layout" "$W/stray.tar" "not part of an instance backup's layout"
head -c $(($(stat -c %s "$W/c1.tar.gz") / 2)) "$W/c1.tar.gz" >"$W/trunc.tar.gz"
expect_hostile "a truncated archive" "$W/trunc.tar.gz" 'truncated or corrupt'
printf 'not a tarball at all\n' >"$W/junk.bin"
expect_hostile "not a tarball" "$W/junk.bin" 'not a \(compressed\) tarball|missing index.yaml'
# the lying index
lie() # NAME INDEX-SED [SNAPSHOT DIRS...]: base tree with index.yaml rewritten
{
	local n=$1 expr=$2
	shift 2
	index_yaml c1 dir false snap0 | sed "$expr" >"$stage/backup/index.yaml"
	tar -C "$stage" -cf "$W/$n.tar" backup/index.yaml backup/container "$@"
}
lie slash 's/^name: c1$/name: a\/b/'
expect_hostile "an index naming the instance a/b" "$W/slash.tar" 'Invalid backup index.*a/b'
lie dots 's/^name: c1$/name: ../'
expect_hostile "an index naming the instance .." "$W/dots.tar" 'Invalid backup index'
lie absent ''
expect_hostile "a snapshot listed but absent" "$W/absent.tar" 'lists snapshot "snap0" but the tarball does not hold it'
lie unlisted '/^snapshots:$/,/^- snap0$/d' backup/snapshots/snap0
expect_hostile "a snapshot present but not listed" "$W/unlisted.tar" 'holds snapshot "snap0" that its index does not list'
lie vm 's/^type: container$/type: virtual-machine/' backup/snapshots/snap0
expect_hostile "a virtual-machine index over a container's trees" "$W/vm.tar" \
	'says type "virtual-machine" but the tarball holds a container.s layout|This host cannot run virtual machines'
lie optlie 's/^optimized: false$/optimized: true/; s/^backend: dir$/backend: btrfs/' backup/snapshots/snap0
if [ -n "$BTRFS" ]; then
	api POST /1.0/instances -d "@$W/optlie.tar" -H 'Content-Type: application/octet-stream' -H 'X-LXD-pool: bt' -H 'X-LXD-name: evil'
	wait_operation "$(jget 'j["operation"]')"
	like "$(jget 'j["metadata"]["err"]')" 'optimized=true but the tarball holds plain directories' \
		"an index saying optimized over plain directories: refused"
fi
lie badsnap 's/^- snap0$/- "..\/x"/' backup/snapshots/snap0
expect_hostile "a snapshot name with / in the index" "$W/badsnap.tar" 'Invalid backup index.*snapshot name'
diag "hostile members and index done after ${SECONDS}s"
# a sparse member of 1 TiB (GNU tar --sparse: tiny on the wire), beyond any pool here
index_yaml c1 dir false >"$stage/backup/index.yaml"
truncate -s 1T "$stage/backup/container/rootfs/huge"
tar -C "$stage" --sparse -czf "$W/sparse.tar.gz" backup/index.yaml backup/container
rm -f "$stage/backup/container/rootfs/huge"
expect_hostile "a 1 TiB sparse file" "$W/sparse.tar.gz" 'more than the [0-9]+ bytes free on the target storage pool'
diag "sparse done after ${SECONDS}s"
# a decompression bomb: 1.5 GiB of zeros in a few hundred KB of zstd
truncate -s 1536M "$stage/backup/container/rootfs/zeros"
tar -C "$stage" -cf - backup/index.yaml backup/container | zstd -q -1 >"$W/bomb.tar.zst"
rm -f "$stage/backup/container/rootfs/zeros"
expect_hostile "a decompression bomb" "$W/bomb.tar.zst" 'decompression bomb'
diag "bomb done after ${SECONDS}s"
is "$(ls -A "$BERTH_DIR/storage-pools/default/containers" | tr '\n' ' ')" "default_c1 " \
	"only c1's volume is on the default pool"

# ---- lxc import without name or pool (the client's plain POST), the backup's own name ----
check "delete c1" berth delete c1
if [ -n "$HAVE_LXC" ]; then
	run lxc import b: "$W/c1.tar.gz"
	rc_ok "lxc import b: FILE (no name, no pool)"
	api GET /1.0/instances/c1/snapshots
	is "$(jget 'len(j["metadata"])')" 2 "c1 is back under the backup's name, with its snapshots"
	check "delete c1 again" berth delete c1
fi

# ---- an older backup: no config in index.yaml, backup/container/backup.yaml instead ----
index_yaml c11 dir false | sed -n '/^config:$/q;p' >"$stage/backup/index.yaml"
index_yaml c11 dir false | sed -n '/^config:$/,$p' | tail -n +2 | sed 's/^  //' >"$stage/backup/container/backup.yaml"
tar -C "$stage" -czf "$W/old.tar.gz" backup/index.yaml backup/container
rm -f "$stage/backup/container/backup.yaml"
run berth import "$W/old.tar.gz"
rc_ok "a backup whose config is only in backup/container/backup.yaml"
api GET /1.0/instances/c11
is "$(jget 'j["metadata"]["config"]["user.note"]')" "restored" "c11: its config from backup.yaml"
check "delete c11" berth delete c11

# ---- ids as LXD writes them: shifted by the exporter's map (volatile.last_state.idmap) ----
sh_stage=$W/shstage
mkdir -p "$sh_stage/backup"
cp -a "$stage/backup/container" "$sh_stage/backup/"
$PY - "$sh_stage/backup/container/rootfs" <<'EOF2'
import os, sys
for root, dirs, files in os.walk(sys.argv[1]):
    for n in [root] + [os.path.join(root, f) for f in dirs + files]:
        st = os.lstat(n)
        os.lchown(n, st.st_uid + 100000, st.st_gid + 100000)
EOF2
map='[{"Isuid":true,"Isgid":false,"Hostid":100000,"Nsid":0,"Maprange":65536},{"Isuid":false,"Isgid":true,"Hostid":100000,"Nsid":0,"Maprange":65536}]'
index_yaml c12 dir false | sed "s/^      volatile.last_state.idmap: .*/      volatile.last_state.idmap: '$map'/" >"$sh_stage/backup/index.yaml"
tar -C "$sh_stage" -czf "$W/shifted.tar.gz" backup
run berth import "$W/shifted.tar.gz"
rc_ok "a backup whose files are shifted by 100000 (its volatile.last_state.idmap)"
r12=$BERTH_DIR/storage-pools/default/containers/default_c12/rootfs
is "$(stat -c %u:%g "$r12/bin/busybox") $(stat -c %u:%g "$r12/state.txt")" "0:0 1000:1000" \
	"c12: shifted back to the container's ids on disk"
check "start c12" berth start c12
run berth exec c12 -- stat -c %u:%g /state.txt /bin/busybox
is "$(echo $OUT)" "1000:1000 0:0" "c12 sees its files owned by 1000 and root"
check "delete c12" berth delete c12 --force

# ---- berthd killed between the restored volume and its rows ----
BERTHD_ENV=(BERTH_MONITOR="$BERTH_MONITOR" BERTH_TEST_HARNESS=1 BERTH_TEST_PAUSE_AT=backup-import-after-disk)
daemon_restart
n0=$(grep -c "berth-test-pause: backup-import-after-disk" "$DAEMON_LOG")
berth import "$W/c1.tar.gz" c13 >"$TEST_TMP/bg.out" 2>&1 &
bg=$!
for _ in $(seq 600); do
	[ "$(grep -c "berth-test-pause: backup-import-after-disk" "$DAEMON_LOG")" -gt "$n0" ] && break
	sleep 0.05
done
[ -d "$BERTH_DIR/storage-pools/default/containers-snapshots/default_c13/snap1" ] &&
	pass "killed import: berthd paused with c13's volume and snapshots on disk" ||
	fail "killed import: berthd paused with c13's volume and snapshots on disk"
kill -KILL "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null
DAEMON_PID=
wait $bg 2>/dev/null
BERTHD_ENV=(BERTH_MONITOR="$BERTH_MONITOR")
daemon_start
api GET /1.0/instances/c13
is "$HTTP_STATUS" 404 "killed import: no instance c13 after the restart"
is "$(ls -A "$BERTH_DIR/storage-pools/default/containers" "$BERTH_DIR/storage-pools/default/containers-snapshots" | grep -c c13)" 0 \
	"killed import: the start-up reconciliation removed its volume and snapshots"
run berth import "$W/c1.tar.gz" c13
rc_ok "the import works afterwards"
check "delete c13" berth delete c13

# ---- the full run: Debian's LXD 5.0.2 exports a container that berth imports and starts ----
if [ "${BERTH_TEST_FULL:-}" = 1 ] && command -v lxd >/dev/null && [ -n "$HAVE_LXC" ]; then
	# LXD's unprivileged containers need to traverse to their rootfs under LXD_DIR
	chmod 0711 "$TEST_TMP"
	(
		export LXD_DIR=$TEST_TMP/lxd
		mkdir -p "$LXD_DIR"
		chmod 0711 "$LXD_DIR"
		lxd --group root --logfile "$TEST_TMP/lxd.log" </dev/null >"$TEST_TMP/lxd.out" 2>&1 &
		echo $! >"$TEST_TMP/lxd.pid"
		lxd waitready --timeout 60 &&
			lxd init --preseed <<-'EOF' &&
			storage_pools:
			- name: default
			  driver: dir
			profiles:
			- name: default
			  devices:
			    root:
			      path: /
			      pool: default
			      type: disk
			EOF
			lxc image import "${IMAGE[busybox]}" --alias bb &&
			lxc launch bb x1 &&
			lxc exec x1 -- sh -c 'echo from-lxd >/lxd.txt; chown 1000:1000 /lxd.txt' &&
			lxc snapshot x1 s0 &&
			lxc exec x1 -- sh -c 'echo later >/later.txt' &&
			lxc stop x1 --force &&
			lxc config set x1 user.made-by lxd &&
			lxc export x1 "$W/lxd-x1.tar.gz" &&
			if [ -n "$BTRFS" ]; then
				lxc storage create lb btrfs size=1GiB &&
					lxc launch bb x2 -s lb &&
					lxc exec x2 -- sh -c 'echo opt-lxd >/opt.txt; chown 1000:1000 /opt.txt' &&
					lxc snapshot x2 s0 &&
					lxc exec x2 -- sh -c 'echo later >/later.txt' &&
					lxc stop x2 --force &&
					lxc export x2 "$W/lxd-x2.tar.gz" --optimized-storage
			fi
		rc=$?
		lxc delete --force x1 >/dev/null 2>&1
		lxc delete --force x2 >/dev/null 2>&1
		lxc storage delete lb >/dev/null 2>&1
		lxd shutdown >/dev/null 2>&1
		exit $rc
	) >"$TEST_TMP/lxd-side.log" 2>&1
	rc=$?
	is "$rc" 0 "LXD 5.0.2 (in this test's namespaces) launched, snapshotted and exported x1"
	[ "$rc" = 0 ] || diag "$(tail -n 20 "$TEST_TMP/lxd-side.log" "$TEST_TMP/lxd.log" 2>/dev/null)"
	lpid=$(cat "$TEST_TMP/lxd.pid" 2>/dev/null)
	for _ in $(seq 100); do kill -0 "$lpid" 2>/dev/null || break; sleep 0.1; done
	kill -0 "$lpid" 2>/dev/null && kill -KILL "$lpid"
	run berth import "$W/lxd-x1.tar.gz"
	rc_ok "berth import of LXD's export"
	api GET /1.0/instances/x1
	is "$(jget 'j["metadata"]["config"]["user.made-by"]')" lxd "x1: LXD's config kept"
	api GET /1.0/instances/x1/snapshots
	is "$(jget 'j["metadata"]')" '["/1.0/instances/x1/snapshots/s0"]' "x1: LXD's snapshot"
	check "start x1" berth start x1
	run berth exec x1 -- cat /lxd.txt
	is "$OUT" from-lxd "x1 runs with the file LXD's container wrote"
	run berth exec x1 -- stat -c %u:%g /lxd.txt
	is "$OUT" "1000:1000" "... owned as inside LXD's container"
	check "stop x1" berth stop x1 --force
	snap=$BERTH_DIR/storage-pools/default/containers-snapshots/default_x1/s0/rootfs
	[ -e "$snap/lxd.txt" ] && [ ! -e "$snap/later.txt" ] &&
		pass "x1's s0 holds what LXD's snapshot held (lxd.txt, not later.txt)" ||
		fail "x1's s0 holds what LXD's snapshot held" "$(ls "$snap" 2>&1 | tr '\n' ' ')"
	check "delete x1" berth delete x1
	if [ -n "$BTRFS" ]; then
		run berth import --storage bt "$W/lxd-x2.tar.gz"
		rc_ok "berth import of LXD's optimized btrfs export"
		s2=$bt/containers-snapshots/default_x2/s0
		is "$(btrfs property get -ts "$s2" ro)" "ro=true" "x2: s0 a read-only subvolume"
		[ -e "$s2/rootfs/opt.txt" ] && [ ! -e "$s2/rootfs/later.txt" ] &&
			pass "x2's s0 holds what LXD's snapshot held" ||
			fail "x2's s0 holds what LXD's snapshot held" "$(ls "$s2/rootfs" 2>&1 | tr '\n' ' ')"
		check "start x2" berth start x2
		run berth exec x2 -- stat -c %u:%g /opt.txt /later.txt
		is "$(echo $OUT)" "1000:1000 0:0" "x2 runs, its files owned as inside LXD's container"
		check "delete x2" berth delete x2 --force
	fi
else
	skip "LXD 5.0.2 interop" "full run only (BERTH_TEST_FULL=1, lxd installed)"
fi
