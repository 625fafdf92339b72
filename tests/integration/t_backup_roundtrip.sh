#!/bin/bash
# t_backup_roundtrip.sh: berth's export against berth's import, as issue 13 asks ("export,
# delete, import, start, with snapshots, config, devices and profiles intact"). A busybox
# container with two snapshots (a file different in each, one owned by 1000:1000 with a
# user xattr), limits.memory, a user key, a cloud-init key, a disk device to a host dir and
# a second profile goes through `berth export` / `berth delete` / `berth import` and through
# `lxc export` / `lxc import`: the instance object (minus the volatile keys an import makes
# anew), its snapshots (names in order, dates, config, content after a restore of each),
# files, owners and the xattr are the same, and it starts. Then --instance-only, another
# name and another pool (--storage), each compression (gzip, xz, zstd, none), and on a
# btrfs loop pool a plain import (bin/busybox one copy shared by the snapshots and the
# instance; big.bin, changed at its end between them, right in each) and an optimized
# export and import (and its import into the dir pool refused with the import's message,
# nothing left).
. "$(dirname "$0")/lib.sh"
berth_test_images busybox
: "${BERTH_MONITOR:=$BERTH_BUILDDIR/berth-monitor}"
if [ "$(id -u)" = 0 ]; then
	[ -x "$BERTH_MONITOR" ] || skip_all "no berth-monitor at $BERTH_MONITOR (build it first)"
	command -v lxc >/dev/null || skip_all "the lxc client is not installed (lxd-client)"
fi
BERTHD_ENV=(BERTH_MONITOR="$BERTH_MONITOR")
berth_test_init "$@"
export PATH=$BERTH_BUILDDIR:$PATH
export LXD_CONF=$TEST_TMP/lxd-conf
mkdir -p "$LXD_CONF"
unset LXD_DIR

W=$TEST_TMP/work
mkdir -p "$W/shared"
echo shared-file >"$W/shared/hello"
POOLS=$BERTH_DIR/storage-pools

# obj NAME: the instance object as JSON, minus what an import makes anew (volatile keys,
# dates of use, state, the backups list); ROOTPOOL (if set) stands for the root disk's pool.
obj()
{
	api GET "/1.0/instances/$1"
	jget 'json.dumps({k: ({c: v for c, v in j["metadata"][k].items() if not c.startswith("volatile.")} if k in ("config", "expanded_config") else j["metadata"][k]) for k in ("architecture", "config", "devices", "ephemeral", "profiles", "stateful", "description", "type", "expanded_config")}, sort_keys=True)'
}
# snaps NAME: the snapshots' names, dates, expiry and config, in order.
snaps()
{
	api GET "/1.0/instances/$1/snapshots?recursion=1"
	jget 'json.dumps([[s["name"], s["created_at"], s["expires_at"], {c: v for c, v in s["config"].items() if not c.startswith("volatile.")}, s["profiles"], s["devices"]] for s in j["metadata"]], sort_keys=True)'
}
# files VOLUME_ROOTFS: path, owner, mode (size of a file, target of a link) and the user
# xattr of /state.txt, sorted (a directory's size is the file system's own). Not
# /etc/resolv.conf: the image's udhcpc writes it when eth0 gets its lease on berthbr0,
# which happens during some starts and not others (a start-to-stop race, not the round
# trip's doing: it made every check after a start fail in one CI run).
files()
{
	(cd "$1" && find . -xdev -path ./etc/resolv.conf -prune -o \( -type f -printf '%p %U:%G %m %s\n' \) -o -printf '%p %U:%G %m %y %l\n' | sort)
	getfattr -h -d -m '^user\.' -R --absolute-names "$1/state.txt" 2>/dev/null | sed "s|$1||"
}
rootfs() { echo "$POOLS/${2:-default}/containers/default_$1/rootfs"; }
snaprootfs() { echo "$POOLS/${3:-default}/containers-snapshots/default_$1/$2/rootfs"; }
count_instances() { api GET /1.0/instances; jget 'len(j["metadata"])'; }
leftovers() { find "$POOLS" "$BERTH_DIR/tmp" -maxdepth 3 -name '*berth-import*' 2>/dev/null | wc -l; }

check "import the busybox image" berth image import "${IMAGE[busybox]}" --alias busybox
check "lxc remote add b" lxc remote add b "unix://$BERTH_SOCKET"
check "profile extra" berth profile create extra
check "profile extra: a key" berth profile set extra user.from-profile yes

# ---- the container: two snapshots, config, a device, two profiles ----
check "init c1 with profiles default and extra" berth init busybox c1 -p default -p extra \
	-c limits.memory=256MiB -c user.x=kept -c cloud-init.user-data='#cloud-config'
check "c1: a disk device to a host dir" berth config device add c1 data disk source="$W/shared" path=/mnt/data
rf=$(rootfs c1)
# CONTENT: /state.txt in c1, owned by 1000:1000 inside, with a user xattr; and /big.bin,
# 200000 bytes whatever CONTENT, its first 150000 the same in every state
state()
{
	printf '%s\n' "$1" >"$rf/state.txt" && chown 1000:1000 "$rf/state.txt" &&
		setfattr -n user.rt -v "$1" "$rf/state.txt" &&
		{ head -c 150000 /dev/zero | tr '\0' a && yes "$1" | head -c 50000; } >"$rf/big.bin"
}
check "c1: state zero" state zero
check "snapshot snap0" berth snapshot c1 snap0
check "c1: state one, a file only from here" sh -c "$(declare -f state); rf=$rf; state one && echo x >$rf/later.txt"
api POST /1.0/instances/c1/snapshots '{"name": "snap1", "expires_at": "2030-01-01T00:00:00Z"}'
wait_operation "$(jget 'j["operation"]')"
is "$(jget 'j["metadata"]["status"]')" Success "snapshot snap1, expiring in 2030"
check "c1: state current" state current
check "start c1" berth start c1
run berth exec c1 -- stat -c %u:%g /state.txt
is "$OUT" 1000:1000 "c1 sees /state.txt owned by 1000:1000"
check "stop c1" berth stop c1 --force

want_obj=$(obj c1)
want_snaps=$(snaps c1)
want_files=$(files "$rf")
want_s0=$(files "$(snaprootfs c1 snap0)")
want_s1=$(files "$(snaprootfs c1 snap1)")
big() { sha256sum "$(rootfs "$1" "${2:-}")/big.bin" "$(snaprootfs "$1" snap0 "${2:-}")/big.bin" "$(snaprootfs "$1" snap1 "${2:-}")/big.bin" | cut -c1-64 | tr '\n' ' '; }
want_big=$(big c1)
# The physical address of FILE's first extent (one copy of data shared by reflinks).
phys() { filefrag -v "$1" | awk '$1 == "0:" {print $4; exit}'; }
like "$want_snaps" '"snap0".*"snap1"' "the snapshots as made (snap0, snap1)"
like "$want_snaps" "\"snap1\", \"[^\"]*\", \"2030-01-01T00:00:00Z\"" "snap1 expires in 2030"
like "$want_files" 'state.txt 1000:1000' "the file's owner on disk (unshifted)"
like "$want_files" 'user.rt="current"' "the file's xattr on disk"

# same NAME [POOL]: the instance NAME is c1 as it was, and starts with its content.
same()
{
	local n=$1 pool=${2:-default} got
	got=$(obj "$n")
	if [ "$pool" != default ]; then
		# Another pool: the import gives the instance a root device on it.
		got=$($PY -c 'import json,sys; o=json.loads(sys.argv[1]); r=o["devices"].pop("root", None); print(json.dumps(o, sort_keys=True) if r and r.get("pool") == sys.argv[2] else "root: %r" % r)' "$got" "$pool")
	fi
	is "$got" "$want_obj" "$n: config, devices, profiles as c1's"
	is "$(snaps "$n")" "$want_snaps" "$n: snapshots, dates, expiry and their config as c1's"
	is "$(files "$(rootfs "$n" "$pool")")" "$want_files" "$n: files, owners, modes and the xattr as c1's"
	is "$(files "$(snaprootfs "$n" snap0 "$pool")")" "$want_s0" "$n: snap0's files as c1's"
	is "$(files "$(snaprootfs "$n" snap1 "$pool")")" "$want_s1" "$n: snap1's files as c1's"
	check "start $n" berth start "$n"
	run berth exec "$n" -- sh -c 'cat /state.txt; stat -c %u:%g /state.txt; cat /mnt/data/hello'
	is "$OUT" "$(printf 'current\n1000:1000\nshared-file')" "$n runs its content, owners and the device"
	check "stop $n" berth stop "$n" --force
	is "$(files "$(rootfs "$n" "$pool")")" "$want_files" "$n: its files as they were before the start"
}
# restore_each NAME: each snapshot restored brings its own content back.
restore_each()
{
	local s want
	for s in snap0:zero snap1:one; do
		check "$1: restore ${s%%:*}" berth restore "$1" "${s%%:*}"
		run berth start "$1"
		run berth exec "$1" -- cat /state.txt
		want=${s#*:}
		is "$OUT" "$want" "$1 runs ${s%%:*}'s content after the restore"
		berth stop "$1" --force >/dev/null 2>&1
	done
}

# ---- berth export, delete, import ----
run berth export c1 "$W/c1.tar.gz"
rc_ok "berth export c1 FILE"
check "berth delete c1" berth delete c1
run berth import "$W/c1.tar.gz"
rc_ok "berth import FILE"
same c1
restore_each c1
check "delete c1 (restored)" berth delete c1
check "import it again" berth import "$W/c1.tar.gz"

# ---- lxc export, delete, import ----
run lxc export b:c1 "$W/c1-lxc.tar.gz"
rc_ok "lxc export b:c1 FILE"
check "lxc delete b:c1" lxc delete b:c1
run lxc import b: "$W/c1-lxc.tar.gz"
rc_ok "lxc import b: FILE"
same c1

# ---- another name, --instance-only ----
run berth import "$W/c1.tar.gz" c2
rc_ok "berth import FILE c2 (another name)"
same c2
check "delete c2" berth delete c2
run berth export c1 "$W/c1-io.tar.gz" --instance-only
rc_ok "berth export --instance-only"
is "$(tar -tzf "$W/c1-io.tar.gz" | grep -c '^backup/snapshots/')" 0 "... no snapshots in the tarball"
run lxc import b: "$W/c1-io.tar.gz" c3
rc_ok "lxc import of it as c3"
is "$(snaps c3)" "[]" "c3: no snapshots"
is "$(files "$(rootfs c3)")" "$want_files" "c3: c1's files"
check "start c3" berth start c3
run berth exec c3 -- cat /state.txt
is "$OUT" current "c3 runs"
check "delete c3" berth delete c3 --force

# ---- each compression ----
for comp in gzip xz zstd none; do
	f=$W/c1-$comp.tar
	run berth export c1 "$f" --compression "$comp"
	rc_ok "berth export --compression $comp"
	run berth import "$f" "z$comp"
	rc_ok "... and berth import of it"
	is "$(snaps "z$comp")" "$want_snaps" "z$comp: the snapshots"
	is "$(files "$(rootfs "z$comp")")" "$want_files" "z$comp: the files"
	check "delete z$comp" berth delete "z$comp"
done

# ---- btrfs: another pool, optimized ----
BTRFS=
if command -v mkfs.btrfs >/dev/null && { grep -qw btrfs /proc/filesystems || modprobe btrfs 2>/dev/null; }; then
	BTRFS=1
fi
if [ -n "$BTRFS" ]; then
	check "create a btrfs pool" berth storage create bt btrfs size=1GiB
	run berth import --storage bt "$W/c1.tar.gz" cb
	rc_ok "berth import --storage bt FILE cb (another pool, another name)"
	same cb bt
	is "$(big cb bt)" "$want_big" "cb: big.bin in the instance and each snapshot as c1's"
	bb0=$(phys "$(snaprootfs cb snap0 bt)/bin/busybox")
	like "$bb0" '^[0-9]+' "cb: filefrag reads bin/busybox's first extent (what the next check compares)"
	is "$(phys "$(snaprootfs cb snap1 bt)/bin/busybox")/$(phys "$(rootfs cb bt)/bin/busybox")" \
		"$bb0/$bb0" "cb: bin/busybox is one copy on btrfs, shared by the snapshots and the instance"
	run berth export cb "$W/cb-opt.tar.gz" --optimized-storage
	rc_ok "berth export --optimized-storage of cb on btrfs"
	like "$(tar -tzf "$W/cb-opt.tar.gz" | tr '\n' ' ')" 'backup/snapshots/snap0.bin backup/snapshots/snap1.bin backup/container.bin' \
		"... btrfs send streams in the tarball"
	n0=$(count_instances)
	run berth import --storage default "$W/cb-opt.tar.gz" cd
	like "$ERR" 'Optimized backup storage driver "btrfs" differs from the target storage pool driver "dir"' \
		"the optimized backup into the dir pool: the import's message"
	is "$(count_instances)/$(leftovers)" "$n0/0" "... no instance, nothing left"
	[ ! -e "$POOLS/default/containers/default_cd" ] && pass "... no volume" || fail "... no volume"
	check "delete cb" berth delete cb
	run berth import --storage bt "$W/cb-opt.tar.gz"
	rc_ok "berth import --storage bt of the optimized backup"
	same cb bt
	is "$(btrfs property get -ts "$POOLS/bt/containers-snapshots/default_cb/snap0" ro)" ro=true \
		"cb: snap0 a read-only subvolume"
	restore_each cb
	check "lxc delete b:cb" lxc delete b:cb
	run lxc import b: "$W/cb-opt.tar.gz" ce --storage bt
	rc_ok "lxc import --storage bt of the optimized backup as ce"
	is "$(snaps ce)" "$want_snaps" "ce: the snapshots"
	check "delete ce" berth delete ce
	is "$(leftovers)" 0 "no receive directory left"
else
	skip "btrfs pools" "no mkfs.btrfs or no btrfs in the kernel"
fi
diag "done after ${SECONDS}s"
