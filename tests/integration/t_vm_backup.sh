#!/bin/bash
# t_vm_backup.sh: export and import of virtual machines in LXD 5.0's tarball layout
# (backup/virtual-machine/ with the config files, backup/virtual-machine.img the raw disk,
# backup/virtual-machine-snapshots/SNAP/ and SNAP.img), no VM booted: a VM made from a
# tiny image of LXD's split format (as t_vm.sh makes it) with markers written into its
# disk, two snapshots, config, a device and two profiles; exported by `berth export` and
# `lxc export` (each compression, --instance-only), deleted, imported on dir and btrfs
# (--storage, another name), the disks compared byte for byte and still sparse; a VM
# exported while QEMU runs it; a tarball of LXD's own shape (a non-sparse .img, LXD's
# agent files and qemu.nvram); hostile tarballs refused with nothing left behind. In the
# full run, Debian's LXD 5.0.2 reads berth's export (without /dev/kvm it unpacks it and
# then refuses the VM type, as it refuses any VM there).
. "$(dirname "$0")/lib.sh"
command -v qemu-system-x86_64 >/dev/null || skip_all "qemu-system-x86_64 not installed"
command -v qemu-img >/dev/null || skip_all "qemu-img not installed (qemu-utils)"
[ -f /usr/share/OVMF/OVMF_CODE_4M.fd ] || [ -f /usr/share/OVMF/OVMF_CODE.fd ] ||
	skip_all "OVMF not installed (ovmf)"
qemu_pids()
{
	local p
	for p in $(pgrep -x qemu-system-x86 2>/dev/null); do
		tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -q -- " ${BERTH_DIR:-/nonexistent}/" && echo "$p"
	done
}
kill_qemus() { local p; for p in $(qemu_pids); do kill -9 "$p"; done; }
trap kill_qemus EXIT
berth_test_init "$@"
export PATH=$BERTH_BUILDDIR:$PATH
HAVE_LXC=1
command -v lxc >/dev/null || HAVE_LXC=
export LXD_CONF=$TEST_TMP/lxd-conf
mkdir -p "$LXD_CONF"
unset LXD_DIR

W=$TEST_TMP/work
mkdir -p "$W/shared"
POOL=$BERTH_DIR/storage-pools/default
count_instances() { api GET /1.0/instances; jget 'len(j["metadata"])'; }
count_volumes() { find "$BERTH_DIR/storage-pools" -mindepth 2 -maxdepth 3 2>/dev/null | wc -l; }
count_tmp() { ls -A "$BERTH_DIR/tmp" | wc -l; }
# disk DIR: the checksum of DIR/root.img and its allocated KiB
disk() { printf '%s %s' "$(sha256sum <"$1/root.img" | cut -c1-16)" "$(du -k "$1/root.img" | cut -f1)"; }
sums() # POOLDIR NAME: the disks of NAME and its snapshots s0, s1
{
	local s out
	out=$(sha256sum <"$1/virtual-machines/default_$2/root.img" | cut -c1-16)
	for s in s0 s1; do
		[ -e "$1/virtual-machines-snapshots/default_$2/$s/root.img" ] &&
			out="$out $s:$(sha256sum <"$1/virtual-machines-snapshots/default_$2/$s/root.img" | cut -c1-16)"
	done
	printf '%s' "$out"
}
# what GET shows of an instance, volatile keys left out, the root device apart
inst_json()
{
	api GET "/1.0/instances/$1"
	jget 'json.dumps({k: ({c: v for c, v in j["metadata"][k].items() if not c.startswith("volatile.")} if k == "config" else {d: v for d, v in j["metadata"][k].items() if d != "root"} if k == "devices" else j["metadata"][k]) for k in ("architecture", "config", "devices", "ephemeral", "profiles", "description", "type")}, sort_keys=True)'
}
snaps_json()
{
	api GET "/1.0/instances/$1/snapshots?recursion=1"
	jget 'json.dumps([[s["name"], s["created_at"], {c: v for c, v in s["config"].items() if not c.startswith("volatile.")}, s["profiles"]] for s in j["metadata"]], sort_keys=True)'
}
import_op() # FILE [HEADERS...]: POST it, wait; prints the error, "" on success
{
	local f=$1
	shift
	api POST /1.0/instances -d "@$f" -H 'Content-Type: application/octet-stream' "$@"
	if [ "$HTTP_STATUS" = 202 ]; then
		wait_operation "$(jget 'j["operation"]')"
		jget '(j.get("metadata") or {}).get("err") or ""'
	else
		jget 'j.get("error") or ""'
	fi
}

# ---- the image (no OS: nothing here boots it to an OS) and the VM ----
IMG=$TEST_TMP/vmimg
mkdir -p "$IMG"
cat >"$IMG/metadata.yaml" <<'YAML'
architecture: x86_64
creation_date: 1700000000
properties:
  description: berth test VM (no OS)
  os: none
  release: test
templates: {}
YAML
tar -C "$IMG" -cJf "$IMG/meta.tar.xz" metadata.yaml
qemu-img create -q -f qcow2 "$IMG/rootfs.img" 16M
fp=$(cat "$IMG/meta.tar.xz" "$IMG/rootfs.img" | sha256sum | cut -d' ' -f1)
check "berth image import meta.tar.xz rootfs.img" berth image import "$IMG/meta.tar.xz" "$IMG/rootfs.img"
check "profile extra" berth profile create extra
check "profile extra: a key" berth profile set extra user.from-profile yes
api POST /1.0/instances "{\"name\":\"v1\",\"type\":\"virtual-machine\",\"description\":\"the VM\",\"profiles\":[\"default\",\"extra\"],\"source\":{\"type\":\"image\",\"fingerprint\":\"$fp\"},\"config\":{\"limits.memory\":\"256MiB\",\"user.k\":\"v\"},\"devices\":{\"root\":{\"type\":\"disk\",\"path\":\"/\",\"pool\":\"default\",\"size\":\"32MiB\"},\"data\":{\"type\":\"disk\",\"source\":\"$W/shared\",\"path\":\"/mnt/data\"}}}"
wait_operation "$(jget 'j["operation"]')"
is "$(jget 'j["metadata"]["status"]')" Success "v1: a VM made from the image, not started"
V1=$POOL/virtual-machines/default_v1
# mark DIR TEXT OFFSET-MIB: TEXT written into DIR/root.img, and 64 KiB of random bytes
mark()
{
	printf '%s' "$2" | dd of="$1/root.img" bs=1M seek="$3" conv=notrunc status=none
	head -c 65536 /dev/urandom | dd of="$1/root.img" bs=64K seek=$((($3 + 1) * 16)) conv=notrunc status=none
}
mark "$V1" marker-s0 4
check "snapshot v1 s0" berth snapshot v1 s0
mark "$V1" marker-s1 12
check "snapshot v1 s1" berth snapshot v1 s1
mark "$V1" marker-now 20
want_sums=$(sums "$POOL" v1)
want_obj=$(inst_json v1)
want_snaps=$(snaps_json v1)
alloc=$(du -k "$V1/root.img" | cut -f1)
[ "$alloc" -lt 2048 ] && pass "v1's 32 MiB disk is sparse ($alloc KiB allocated)" ||
	fail "v1's disk is sparse" "$alloc KiB"

# ---- berth export: the layout ----
diag "set-up done after ${SECONDS}s"
t0=$(date +%s.%N)
run berth export v1 "$W/v1.tar.gz"
rc_ok "berth export v1 (a stopped VM, two snapshots)"
diag "export: $(awk "BEGIN { printf \"%.2f\", $(date +%s.%N) - $t0 }") s, $(stat -c %s "$W/v1.tar.gz") bytes"
is "$(tar -tzf "$W/v1.tar.gz" | grep -v '/templates/' | tr '\n' ' ')" \
	"backup/index.yaml backup/virtual-machine-snapshots/s0/ backup/virtual-machine-snapshots/s0/metadata.yaml backup/virtual-machine-snapshots/s0.img backup/virtual-machine-snapshots/s1/ backup/virtual-machine-snapshots/s1/metadata.yaml backup/virtual-machine-snapshots/s1.img backup/virtual-machine/ backup/virtual-machine/backup.yaml backup/virtual-machine/metadata.yaml backup/virtual-machine.img " \
	"the tarball's members in LXD's order: each snapshot's directory then its disk, the VM's last"
tar -xzf "$W/v1.tar.gz" -C "$W" backup/index.yaml
is "$($PY -c 'import sys,yaml; i=yaml.safe_load(open(sys.argv[1])); print(i["type"], i["backend"], i["snapshots"], i["optimized"], i["config"]["container"]["type"], i["config"]["volume"]["type"], "volatile.last_state.idmap" in i["config"]["container"]["config"])' "$W/backup/index.yaml")" \
	"virtual-machine dir ['s0', 's1'] False virtual-machine virtual-machine False" \
	"index.yaml: type virtual-machine, snapshots, the volume's type, no idmap"
is "$($PY - "$W/v1.tar.gz" <<'EOF'
import sys, tarfile, hashlib
t = tarfile.open(sys.argv[1])
out = []
for m in t:
    if m.name.endswith(".img"):
        h = hashlib.sha256(t.extractfile(m).read()).hexdigest()[:16]
        out.append("%s:%d:%s" % (m.name.split("/")[-1], m.size, h))
print(" ".join(out))
EOF
)" "s0.img:33554432:$(sha256sum <"$POOL/virtual-machines-snapshots/default_v1/s0/root.img" | cut -c1-16) s1.img:33554432:$(sha256sum <"$POOL/virtual-machines-snapshots/default_v1/s1/root.img" | cut -c1-16) virtual-machine.img:33554432:$(sha256sum <"$V1/root.img" | cut -c1-16)" \
	"each .img is the raw disk (Python's tarfile reads it whole, 32 MiB)"

# ---- delete, import, compare ----
check "delete v1" berth delete v1
t0=$(date +%s.%N)
run berth import "$W/v1.tar.gz"
rc_ok "berth import of the export"
diag "import: $(awk "BEGIN { printf \"%.2f\", $(date +%s.%N) - $t0 }") s"
is "$(sums "$POOL" v1)" "$want_sums" "the disk and both snapshots' disks byte for byte"
alloc=$(du -k "$V1/root.img" | cut -f1)
[ "$alloc" -lt 2048 ] && pass "... and the disk still sparse ($alloc KiB allocated)" ||
	fail "the imported disk is sparse" "$alloc KiB"
is "$(inst_json v1)" "$want_obj" "config, devices, profiles, description, type as v1's"
is "$(snaps_json v1)" "$want_snaps" "the snapshots: names, dates, config, profiles"
is "$(ls -A "$V1" | tr '\n' ' ')" "metadata.yaml root.img " "the volume holds metadata.yaml and root.img (not backup.yaml)"

# ---- each compression, --instance-only, another name; lxc export / lxc import ----
for z in none xz zstd; do
	run berth export v1 "$W/v1-$z.tar" --compression "$z"
	rc_ok "berth export --compression $z"
done
# 384 KiB of random bytes in the three disks of 32 MiB: the holes are not in the tarball
size=$(stat -c %s "$W/v1-none.tar")
[ "$size" -lt $((2 << 20)) ] && pass "the disks' holes are not in the tarball ($size bytes uncompressed)" ||
	fail "the disks' holes are not in the tarball" "$size bytes"
run berth export v1 "$W/v1-io.tar.gz" --instance-only
rc_ok "berth export --instance-only"
[ -z "$(tar -tzf "$W/v1-io.tar.gz" | grep snapshots)" ] && pass "... holds no snapshot" || fail "--instance-only holds no snapshot"
for z in none xz zstd; do
	run berth import "$W/v1-$z.tar" "v1$z"
	rc_ok "berth import of the $z export as v1$z"
	is "$(sums "$POOL" "v1$z")" "$want_sums" "v1$z: the disks byte for byte"
	check "delete v1$z" berth delete "v1$z"
done
run berth import "$W/v1-io.tar.gz" v1io
rc_ok "berth import of the --instance-only export"
is "$(sums "$POOL" v1io)" "${want_sums%% *}" "v1io: the disk, no snapshot"
check "delete v1io" berth delete v1io
if [ -n "$HAVE_LXC" ]; then
	run lxc remote add b "unix://$BERTH_SOCKET"
	rc_ok "lxc remote add b unix://..."
	run lxc export b:v1 "$W/lxc-v1.tar.gz"
	rc_ok "lxc export b:v1"
	run lxc import b: "$W/lxc-v1.tar.gz" v2
	rc_ok "lxc import b: of it as v2"
	is "$(sums "$POOL" v2)" "$want_sums" "v2: the disks byte for byte"
	is "$(inst_json v2)" "$want_obj" "v2: config, devices, profiles as v1's"
	check "delete v2" berth delete v2
else
	skip "lxc export / lxc import" "lxc not installed"
fi

diag "compressions and lxc done after ${SECONDS}s"
# ---- a running VM: exported as LXD 5.0 does (its disk as QEMU has it) ----
check "start v1 (QEMU, OVMF: nothing to boot)" berth start v1
run berth export v1 "$W/v1-running.tar.gz" --instance-only
rc_ok "berth export of the running VM (LXD 5.0 exports a running VM too)"
check "stop v1" berth stop v1 --force
is "$(qemu_pids | wc -l)" 0 "no QEMU left"
run berth import "$W/v1-running.tar.gz" v1run
rc_ok "... and it imports"
run dd if="$POOL/virtual-machines/default_v1run/root.img" bs=1M skip=20 count=1 status=none
is "${OUT:0:10}" marker-now "... with the marker written before the start"
check "delete v1run" berth delete v1run

# ---- optimized: refused for VMs ----
run berth export v1 "$W/v1-opt.tar.gz" --optimized-storage
rc_ok "--optimized-storage on a dir pool: an ordinary backup, as LXD"

diag "running VM done after ${SECONDS}s"
# ---- btrfs ----
BTRFS=
if command -v mkfs.btrfs >/dev/null && { grep -qw btrfs /proc/filesystems || modprobe btrfs 2>/dev/null; }; then
	BTRFS=1
fi
if [ -n "$BTRFS" ]; then
	check "create a btrfs pool" berth storage create bt btrfs size=1GiB
	BT=$BERTH_DIR/storage-pools/bt
	run berth import --storage bt "$W/v1.tar.gz" v3
	rc_ok "berth import --storage bt of the export as v3"
	is "$(sums "$BT" v3)" "$want_sums" "v3 on btrfs: the disks byte for byte"
	alloc=$(du -k "$BT/virtual-machines/default_v3/root.img" | cut -f1)
	[ "$alloc" -lt 2048 ] && pass "... sparse on btrfs ($alloc KiB allocated)" || fail "v3's disk is sparse" "$alloc KiB"
	is "$(btrfs property get -ts "$BT/virtual-machines-snapshots/default_v3/s0" ro)" "ro=true" "v3's s0 is a read-only subvolume"
	api GET /1.0/instances/v3
	is "$(jget 'j["metadata"]["devices"]["root"]["pool"]')" bt "v3's root device is on bt"
	run berth export v3 "$W/v3.tar.zst" --compression zstd
	rc_ok "berth export of the btrfs VM"
	run berth export v3 "$W/v3-opt.tar.gz" --optimized-storage
	like "$ERR" "Optimized backups of virtual machines are not supported" \
		"--optimized-storage of a VM on btrfs: refused, saying so"
	check "delete v3" berth delete v3
	run berth import --storage default "$W/v3.tar.zst" v4
	rc_ok "the btrfs export imported on dir"
	is "$(sums "$POOL" v4)" "$want_sums" "v4: the disks byte for byte"
	check "delete v4" berth delete v4
else
	skip "btrfs pools" "no btrfs here"
fi

diag "btrfs done after ${SECONDS}s"
# ---- a tarball of LXD's own shape: a non-sparse .img (Go's tar writer), LXD's files ----
mkdir -p "$W/lxdshape"
$PY - "$W/v1-none.tar" "$W/lxd-shape.tar" <<'EOF'
import io, sys, tarfile
src = tarfile.open(sys.argv[1])
out = tarfile.open(sys.argv[2], "w", format=tarfile.PAX_FORMAT)
def add(name, data):
    ti = tarfile.TarInfo(name); ti.size = len(data); ti.mode = 0o600
    out.addfile(ti, io.BytesIO(data))
for m in src:
    data = src.extractfile(m).read() if m.isfile() else None
    if m.name.endswith(".img"):
        m = tarfile.TarInfo(m.name); m.mode = 0o600; m.size = len(data)   # dense
    out.addfile(m, io.BytesIO(data) if data is not None else None)
    if m.name == "backup/virtual-machine/metadata.yaml":
        add("backup/virtual-machine/agent.crt", b"cert")
        add("backup/virtual-machine/qemu.nvram", b"\0" * 4096)
        ti = tarfile.TarInfo("backup/virtual-machine/config"); ti.type = tarfile.DIRTYPE
        out.addfile(ti)
        add("backup/virtual-machine/config/lxd-agent", b"agent")
out.close()
EOF
run berth import "$W/lxd-shape.tar" v5
rc_ok "berth import of a tarball of LXD's shape (dense .img, agent files, qemu.nvram)"
is "$(sums "$POOL" v5)" "$want_sums" "v5: the disks byte for byte"
alloc=$(du -k "$POOL/virtual-machines/default_v5/root.img" | cut -f1)
[ "$alloc" -lt 2048 ] && pass "... the dense member's zeros left as holes ($alloc KiB allocated)" ||
	fail "the dense member is written sparse" "$alloc KiB"
is "$(ls -A "$POOL/virtual-machines/default_v5" | tr '\n' ' ')" "metadata.yaml root.img " \
	"LXD's agent files, qemu.nvram and config/ are not kept"
check "delete v5" berth delete v5

# ---- hostile tarballs: refused, nothing left ----
# (refused as each member comes, at the end of the pass, before the operation; the other
# member checks are test_backup_check's)
# vmtar NAME PYTHON: a copy of the instance-only export (uncompressed, its disk cut to
# 64 KiB: small files to copy and send) through PYTHON, which sees each member as `m`
# (its data `data`) and calls keep(m, data) or add(...).
run berth export v1 "$W/io.tar" --instance-only --compression none
rc_ok "an uncompressed --instance-only export to build on"
$PY - "$W/io.tar" "$W/small.tar" <<'EOF'
import io, sys, tarfile
src = tarfile.open(sys.argv[1])
out = tarfile.open(sys.argv[2], "w", format=tarfile.PAX_FORMAT)
for m in src:
    data = src.extractfile(m).read() if m.isfile() else None
    if m.name.endswith(".img"):
        m = tarfile.TarInfo(m.name); m.mode = 0o600; data = data[:65536]; m.size = len(data)
    out.addfile(m, io.BytesIO(data) if data is not None else None)
out.close()
EOF
vmtar()
{
	$PY - "$W/small.tar" "$W/$1.tar" <<EOF
import io, sys, tarfile
src = tarfile.open(sys.argv[1])
out = tarfile.open(sys.argv[2], "w", format=tarfile.PAX_FORMAT)
def keep(m, data):
    m.sparse = None  # written whole: no sparse map left in its headers
    m.pax_headers = {k: v for k, v in m.pax_headers.items() if not k.startswith("GNU.sparse")}
    out.addfile(m, io.BytesIO(data) if data is not None else None)
def add(name, type=tarfile.REGTYPE, data=b"x", **kw):
    ti = tarfile.TarInfo(name)
    ti.type = type
    for k, v in kw.items():
        setattr(ti, k, v)
    if type == tarfile.REGTYPE:
        ti.size = len(data)
        out.addfile(ti, io.BytesIO(data))
    else:
        out.addfile(ti)
for m in src:
    data = src.extractfile(m).read() if m.isfile() else None
$(sed 's/^/    /' <<<"$2")
out.close()
EOF
}
# expect_hostile DESC FILE PATTERN: what is here after is what was before them all
before="$(count_instances)/$(count_volumes)/0/$(own_mounts)"
expect_hostile()
{
	local desc=$1 file=$2 pat=$3
	like "$(import_op "$file" -H 'X-LXD-name: evil')" "$pat" "$desc: refused ($pat)"
	is "$(count_instances)/$(count_volumes)/$(count_tmp)/$(own_mounts)" "$before" \
		"$desc: no instance, volume, temp file or mount left"
}
IMGM=backup/virtual-machine.img
vmtar symdisk "if m.name == '$IMGM': add(m.name, tarfile.SYMTYPE, linkname='/etc/shadow')
else: keep(m, data)"
expect_hostile "the disk a symlink" "$W/symdisk.tar" 'virtual-machine.img": a disk that is not a regular file'
vmtar devdisk "if m.name == '$IMGM': add(m.name, tarfile.BLKTYPE, devmajor=8, devminor=0)
else: keep(m, data)"
expect_hostile "the disk a block device" "$W/devdisk.tar" 'a disk that is not a regular file'
vmtar dotdot "keep(m, data)
if m.name == 'backup/index.yaml': add('backup/virtual-machine-snapshots/../../x.img')"
expect_hostile "a disk named through .." "$W/dotdot.tar" 'absolute name, or one with ".."'
vmtar cfgsym "if m.name == 'backup/virtual-machine/metadata.yaml': add(m.name, tarfile.SYMTYPE, linkname='/etc/shadow')
else: keep(m, data)"
expect_hostile "a symlink in the config directory" "$W/cfgsym.tar" 'not a regular file or directory'
vmtar nodisk "if m.name != '$IMGM': keep(m, data)"
expect_hostile "no disk" "$W/nodisk.tar" 'holds no disk'
vmtar strays0 "keep(m, data)
if m.name == '$IMGM': add('backup/virtual-machine-snapshots/s9.img')"
expect_hostile "a snapshot disk the index does not list" "$W/strays0.tar" 'snapshot "s9" that its index does not list'
vmtar ctlayout "keep(m, data)
if m.name == 'backup/index.yaml': add('backup/container/metadata.yaml')"
expect_hostile "a container's member in a VM backup" "$W/ctlayout.tar" 'says type "virtual-machine" but the tarball holds a container'
vmtar optvm "if m.name == 'backup/index.yaml': add(m.name, data=data.replace(b'optimized: false', b'optimized: true'))
else: keep(m, data)"
expect_hostile "an optimized VM backup" "$W/optvm.tar" 'Optimized backups of virtual machines cannot be imported'
# a disk of 1 TiB (a sparse member: tiny on the wire), beyond any pool here
mkdir -p "$W/big/backup/virtual-machine"
tar -xf "$W/io.tar" -C "$W/big" backup/index.yaml backup/virtual-machine
truncate -s 1T "$W/big/backup/virtual-machine.img"
tar -C "$W/big" --sparse -cf "$W/big.tar" backup/index.yaml backup/virtual-machine backup/virtual-machine.img
expect_hostile "a 1 TiB disk" "$W/big.tar" 'holds more than the .* bytes free'

diag "hostile tarballs done after ${SECONDS}s"
# ---- the full run: LXD 5.0.2 reads berth's VM export ----
if [ "${BERTH_TEST_FULL:-}" = 1 ] && command -v lxd >/dev/null && [ -n "$HAVE_LXC" ]; then
	chmod 0711 "$TEST_TMP"
	(
		export LXD_DIR=$TEST_TMP/lxd
		mkdir -p "$LXD_DIR"
		chmod 0711 "$LXD_DIR"
		lxd --group root --logfile "$TEST_TMP/lxd.log" </dev/null >"$TEST_TMP/lxd.out" 2>&1 &
		echo $! >"$TEST_TMP/lxd.pid"
		lxd waitready --timeout 60 &&
			lxd init --preseed <<-'EOF'
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
		rc=$?
		if [ "$rc" = 0 ]; then
			lxc profile create extra >/dev/null 2>&1
			lxc import "$W/v1.tar.gz" x1 >"$TEST_TMP/lxd-import.out" 2>&1
			echo "import rc=$?" >>"$TEST_TMP/lxd-import.out"
			if [ -e /dev/kvm ]; then
				sha256sum <"$LXD_DIR/storage-pools/default/virtual-machines/x1/root.img" | cut -c1-16 >>"$TEST_TMP/lxd-import.out"
			fi
			lxc delete --force x1 >/dev/null 2>&1
		fi
		lxd shutdown >/dev/null 2>&1
		exit $rc
	) >"$TEST_TMP/lxd-side.log" 2>&1
	rc=$?
	is "$rc" 0 "LXD 5.0.2 (its own LXD_DIR in this test's namespaces) started"
	[ "$rc" = 0 ] || diag "$(tail -n 20 "$TEST_TMP/lxd-side.log" "$TEST_TMP/lxd.log" 2>/dev/null)"
	lpid=$(cat "$TEST_TMP/lxd.pid" 2>/dev/null)
	for _ in $(seq 100); do kill -0 "$lpid" 2>/dev/null || break; sleep 0.1; done
	kill -0 "$lpid" 2>/dev/null && kill -KILL "$lpid"
	out=$(cat "$TEST_TMP/lxd-import.out" 2>/dev/null)
	if [ -e /dev/kvm ]; then
		like "$out" "import rc=0" "LXD imports berth's VM export"
		like "$out" "${want_sums%% *}" "... its disk byte for byte"
	else
		# LXD unpacks the tarball (pool.CreateInstanceFromBackup) before it creates the
		# instance, which it refuses for a VM on a host without KVM.
		like "$out" 'Instance type "virtual-machine" is not supported on this server: KVM support is missing' \
			"LXD unpacks berth's VM export and then refuses VMs on a host without /dev/kvm"
		skip "berth importing an LXD VM export" "LXD 5.0.2 cannot make a VM without /dev/kvm; the LXD-shaped tarball above stands in"
	fi
else
	skip "LXD 5.0.2 interop" "full run only (BERTH_TEST_FULL=1, lxd installed)"
fi

is "$(qemu_pids | wc -l)" 0 "no QEMU left"
check "delete v1" berth delete v1
