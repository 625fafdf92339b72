#!/bin/bash
# t_vm.sh: virtual machines under TCG (no /dev/kvm needed) through the stock `lxc`
# client and the API: a VM image in LXD's split format (metadata tarball + qcow2
# rootfs.img, made here: no OS, OVMF boots to its boot manager and prints on the serial
# console), launched on dir and on btrfs; console log, freeze, stop (no OS answers the
# ACPI button: the kill after the timeout), start again, snapshot, restore, copy, rename,
# delete; berthd kill -9 with a VM running, then re-attached; a host without QEMU; a
# hostile qcow2 (backing file on the host) refused. One QEMU at a time; every QEMU,
# socket and volume counted gone at the end.
. "$(dirname "$0")/lib.sh"
command -v lxc >/dev/null || skip_all "lxc not installed (apt-get install lxd-client)"
command -v qemu-system-x86_64 >/dev/null || skip_all "qemu-system-x86_64 not installed"
command -v qemu-img >/dev/null || skip_all "qemu-img not installed (qemu-utils)"
[ -f /usr/share/OVMF/OVMF_CODE_4M.fd ] || [ -f /usr/share/OVMF/OVMF_CODE.fd ] ||
	skip_all "OVMF not installed (ovmf)"
# A backstop for a test that failed half-way: QEMU outlives berthd by design, so kill
# what is left of this test's (by the PIDs in its run dirs, checked against their command
# lines). Set before berth_test_init, which runs it before its own exit.
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

LXD_CONF=$TEST_TMP/lxc-conf
mkdir -p "$LXD_CONF"
export LXD_CONF
unset LXD_DIR
run_lxc() { run lxc "$@"; }
run_lxc remote add b "unix://$BERTH_SOCKET"
rc_ok "lxc remote add b unix://..."

qemus() { qemu_pids | wc -l; }
# status NAME: the instance's status through the API.
status() { api GET "/1.0/instances/$1" && jget 'j["metadata"]["status"]'; }
# alive PID: the process runs (a zombie waiting for its reaper, PID 1, does not).
alive() { [ -n "$1" ] && [ -r "/proc/$1/stat" ] && ! sed 's/.*) //' "/proc/$1/stat" | grep -q '^[ZX]'; }
qemu_pid_of() { cat "$BERTH_DIR/run/default_$1/qemu.pid" 2>/dev/null; }

# ---- the image ----
IMG=$TEST_TMP/vmimg
mkdir -p "$IMG"
cat >"$IMG/metadata.yaml" <<'YAML'
architecture: x86_64
creation_date: 1700000000
properties:
  description: berth test VM (no OS)
  boot.cmdline: console=ttyS0
  os: none
  release: test
templates: {}
YAML
tar -C "$IMG" -cJf "$IMG/meta.tar.xz" metadata.yaml
qemu-img create -q -f qcow2 "$IMG/rootfs.img" 64M
fp=$(cat "$IMG/meta.tar.xz" "$IMG/rootfs.img" | sha256sum | cut -d' ' -f1)

run_lxc image import "$IMG/meta.tar.xz" "$IMG/rootfs.img" b: --alias novm
rc_ok "lxc image import meta.tar.xz rootfs.img"
api GET "/1.0/images/$fp"
is "$HTTP_STATUS" 200 "the image's fingerprint is sha256(metadata then rootfs)"
is "$(jget 'j["metadata"]["type"]')" virtual-machine "the image's type is virtual-machine"
run_lxc image list b: --format csv -c lt
like "$OUT" "novm.*,VIRTUAL-MACHINE" "lxc image list shows VIRTUAL-MACHINE"
# berth's own CLI sends the qcow2 as LXD's client does (the part "rootfs.img").
qemu-img create -q -f qcow2 "$IMG/other.img" 32M
fp2=$(cat "$IMG/meta.tar.xz" "$IMG/other.img" | sha256sum | cut -d' ' -f1)
run_cli image import "$IMG/meta.tar.xz" "$IMG/other.img"
rc_ok "berth image import meta.tar.xz other.img"
api GET "/1.0/images/$fp2"
is "$(jget 'j["metadata"]["type"]')" virtual-machine "... imports a virtual-machine image"
run_cli image delete "$fp2"
rc_ok "berth image delete of it"

# An image of one type does not make an instance of the other (LXD's message). lxc
# takes the type from the image; the API is asked for a container outright.
api POST /1.0/instances '{"name":"notvm","type":"container","source":{"type":"image","alias":"novm"}}'
[ "$HTTP_STATUS" = 202 ] && wait_operation "$(jget 'j["operation"]')"
is "$(jget 'j.get("error") or (j.get("metadata") or {}).get("err") or ""')" \
	"Requested image's type \"virtual-machine\" doesn't match instance type \"container\"" \
	"a container from the VM image is refused with LXD's message"
expect_error 404 "... and no notvm is left" GET /1.0/instances/notvm

# ---- launch on dir ----
start_s=$(date +%s.%N)
run_lxc launch b:novm b:v1 --vm -c limits.memory=256MiB -c limits.cpu=1
rc_ok "lxc launch novm v1 --vm"
diag "lxc launch --vm (unpack, clone, QEMU started): $(awk "BEGIN { printf \"%.2f\", $(date +%s.%N) - $start_s }") s"
is "$(status v1)" Running "v1 is Running"
is "$(qemus)" 1 "one QEMU runs for v1"
like "$(cat "/proc/$(qemu_pid_of v1)/cgroup")" "/berth-$(printf '%s' "$BERTH_DIR" | sha256sum | cut -c1-8)/default_v1\$" \
	"QEMU runs in v1's cgroup under berth's"
run_lxc list b: --format csv -c nts
is "$OUT" "v1,VIRTUAL-MACHINE,RUNNING" "lxc list shows v1 RUNNING VIRTUAL-MACHINE"
is "$(stat -c %s "$BERTH_DIR/storage-pools/default/virtual-machines/default_v1/root.img" 2>/dev/null)" \
	10737418240 "root.img is grown to the default 10GiB root size"
api GET /1.0/storage-pools/default/volumes
like "$HTTP_BODY" '/1.0/storage-pools/default/volumes/virtual-machine/v1' \
	"the volume is listed with type virtual-machine"
# The root disk's size is applied at creation already (and again at each start).
api POST /1.0/instances '{"name":"v5","type":"virtual-machine","source":{"type":"image","alias":"novm"},"devices":{"root":{"type":"disk","path":"/","pool":"default","size":"12GiB"}}}'
wait_operation "$(jget 'j["operation"]')"
is "$(stat -c %s "$BERTH_DIR/storage-pools/default/virtual-machines/default_v5/root.img" 2>/dev/null)" \
	12884901888 "root.img of a VM created with size=12GiB is 12GiB before any start"
is "$(du -k "$BERTH_DIR/storage-pools/default/virtual-machines/default_v5/root.img" | cut -f1)" 0 \
	"... and sparse"
run_lxc delete b:v5
rc_ok "lxc delete v5"
# eth0 from the default profile: a tap QEMU made, on the managed bridge.
api GET /1.0/instances/v1
tap=$(jget 'j["metadata"]["config"].get("volatile.eth0.host_name")')
mac=$(jget 'j["metadata"]["config"].get("volatile.eth0.hwaddr")')
like "$(ip -o link show master berthbr0 2>&1)" ": $tap: .*UP" "v1's eth0 is tap $tap, up on berthbr0"
grep -q "mac = \"$mac\"" "$BERTH_DIR/run/default_v1/qemu.conf" &&
	pass "QEMU's NIC has volatile.eth0.hwaddr ($mac)" || fail "QEMU's NIC has volatile.eth0.hwaddr ($mac)"

# The serial console: OVMF's own output, kept by QEMU's logfile= in console.log.
for i in $(seq 120); do
	run_lxc console b:v1 --show-log
	[[ $OUT == *BdsDxe* ]] && break
	sleep 1
done
like "$OUT" "BdsDxe" "lxc console --show-log shows OVMF's boot output"
# With nothing to boot, OVMF ends in its UEFI shell: talk to it through lxc console.
for i in $(seq 120); do
	grep -q "Shell> " "$BERTH_DIR/run/default_v1/console.log" 2>/dev/null && break
	sleep 1
done
out=$($PY "$BERTH_SRCDIR/tests/integration/wsclient.py" lxc-console-send ver "Interactive Shell" \
	lxc console b:v1 2>&1)
rc=$?
is "$rc" 0 "lxc console: the UEFI shell answers 'ver', ctrl+a q detaches"
[ "$rc" = 0 ] || diag "$out"
api GET /1.0/instances/v1/state
rss=$(jget 'j["metadata"]["memory"]["usage"]')
[ "${rss:-0}" -gt 0 ] && pass "the state has QEMU's memory ($((rss / 1048576)) MiB resident, 256 MiB guest)" ||
	fail "the state has QEMU's memory" "$HTTP_BODY"
api GET /1.0
is "$(jget 'j["metadata"]["environment"]["vm"]["accelerator"]')" \
	"$([ -c /dev/kvm ] && echo kvm || echo tcg)" "GET /1.0 says what VMs run on (tcg without /dev/kvm)"
if [ ! -c /dev/kvm ]; then
	run_cli info
	like "$OUT" "accelerator: tcg" "berth info says VMs run under TCG"
	like "$OUT" "VMs run under TCG \(emulated" "... and why that is slow"
fi

# ---- freeze, stop, start ----
run_lxc pause b:v1
rc_ok "lxc pause v1"
is "$(status v1)" Frozen "v1 is Frozen (QMP stop)"
run_lxc start b:v1
rc_ok "lxc start v1 resumes it"
is "$(status v1)" Running "v1 is Running again (QMP cont)"
pid1=$(qemu_pid_of v1)
t0=$(date +%s)
run_lxc stop b:v1 --timeout 3
rc_ok "lxc stop --timeout 3 v1"
t1=$(date +%s)
[ $((t1 - t0)) -ge 3 ] && pass "no OS answered the ACPI button: the kill came after the timeout ($((t1 - t0)) s)" ||
	fail "the stop waited the timeout" "took $((t1 - t0)) s"
is "$(status v1)" Stopped "v1 is Stopped"
alive "$pid1" && fail "QEMU of v1 is gone" "pid $pid1 still runs" || pass "QEMU of v1 is gone"
[ ! -e "$BERTH_DIR/run/default_v1/qmp.socket" ] && [ ! -e "$BERTH_DIR/run/default_v1/qemu.pid" ] &&
	pass "its QMP socket and pid file are removed" || fail "its QMP socket and pid file are removed"
ip link show "$tap" >/dev/null 2>&1 && fail "its tap went with QEMU" || pass "its tap went with QEMU"
run_lxc start b:v1
rc_ok "lxc start v1"
is "$(status v1)" Running "v1 runs again"
pid1=$(qemu_pid_of v1)
run_lxc restart b:v1 --force
rc_ok "lxc restart --force v1"
is "$(status v1)" Running "v1 runs after the restart"
pid2=$(qemu_pid_of v1)
[ -n "$pid2" ] && [ "$pid2" != "$pid1" ] && ! alive "$pid1" && pass "a new QEMU replaced the old one" ||
	fail "a new QEMU replaced the old one" "before $pid1, after $pid2"
run_lxc stop b:v1 --force
rc_ok "lxc stop --force v1"
is "$(qemus)" 0 "no QEMU runs"

# A frozen VM stops too: it is let run first, then the ACPI button, then the kill.
run_lxc start b:v1
run_lxc pause b:v1
is "$(status v1)" Frozen "setup: v1 is Frozen"
run_lxc stop b:v1 --timeout 1
rc_ok "lxc stop --timeout 1 of a frozen VM"
is "$(status v1)" Stopped "the frozen VM is Stopped"
# delete --force of a running VM kills it first.
run_lxc launch b:novm b:v4 --vm
rc_ok "lxc launch novm v4 --vm"
run_lxc delete --force b:v4
rc_ok "lxc delete --force of the running v4"
is "$(qemus)" 0 "its QEMU is gone"
[ ! -e "$BERTH_DIR/storage-pools/default/virtual-machines/default_v4" ] && [ ! -e "$BERTH_DIR/run/default_v4" ] &&
	pass "... with its volume and run dir" || fail "... with its volume and run dir"

# ---- snapshot, restore, copy, rename ----
run_lxc snapshot b:v1 s1
rc_ok "lxc snapshot v1 s1"
[ -f "$BERTH_DIR/storage-pools/default/virtual-machines-snapshots/default_v1/s1/root.img" ] &&
	pass "the snapshot holds root.img" || fail "the snapshot holds root.img"
echo scribble | dd of="$BERTH_DIR/storage-pools/default/virtual-machines/default_v1/root.img" \
	conv=notrunc status=none
run_lxc restore b:v1 s1
rc_ok "lxc restore v1 s1"
[ "$(head -c 8 "$BERTH_DIR/storage-pools/default/virtual-machines/default_v1/root.img" | tr -d '\0')" = "" ] &&
	pass "restore brought the disk back" || fail "restore brought the disk back"
run_lxc copy b:v1 b:v2
rc_ok "lxc copy v1 v2"
run_lxc list b: --format csv -c nt
like "$OUT" "v2,VIRTUAL-MACHINE" "the copy is a VM"
run_lxc start b:v2
rc_ok "the copy starts"
is "$(status v2)" Running "v2 is Running"
run_lxc stop b:v2 --force
rc_ok "lxc stop --force v2"
run_lxc move b:v2 b:v3
rc_ok "lxc move v2 v3 (rename)"
[ -f "$BERTH_DIR/storage-pools/default/virtual-machines/default_v3/root.img" ] &&
	[ ! -e "$BERTH_DIR/storage-pools/default/virtual-machines/default_v2" ] &&
	pass "the volume follows the rename" || fail "the volume follows the rename"
run_lxc delete b:v3
rc_ok "lxc delete v3"
[ ! -e "$BERTH_DIR/storage-pools/default/virtual-machines/default_v3" ] && [ ! -e "$BERTH_DIR/run/default_v3" ] &&
	pass "delete removes the volume and the run dir" || fail "delete removes the volume and the run dir"

# ---- publish: a VM (and a VM's snapshot) as a split image, as LXD's VM images are ----
VMDIR=$BERTH_DIR/storage-pools/default/virtual-machines
printf 'berth-publish-marker' | dd of="$VMDIR/default_v1/root.img" bs=1M seek=1 conv=notrunc status=none
run_lxc publish b:v1 b: --alias vmpub
rc_ok "lxc publish of the stopped VM v1"
api GET /1.0/images/aliases/vmpub
pfp=$(jget 'j["metadata"]["target"]')
api GET "/1.0/images/$pfp"
is "$(jget 'j["metadata"]["type"]')" virtual-machine "the published image is a virtual-machine image"
is "$(jget 'j["metadata"]["properties"].get("description")')" "berth test VM (no OS)" \
	"... keeping the source image's properties"
is "$(jget '"boot.cmdline" in j["metadata"]["properties"]')" false \
	"... but not the keys of direct kernel boot (the guest's disk is not parsed on the host)"
EXP=$TEST_TMP/vmexport
mkdir -p "$EXP"
run_lxc image export b:vmpub "$EXP/"
rc_ok "lxc image export of it"
pdisk=$(for f in "$EXP"/*; do head -c 4 "$f" | grep -q 'QFI' && echo "$f"; done)
pmeta=$(ls "$EXP"/*.tar.* 2>/dev/null)
is "$(ls "$EXP" | wc -l) $([ -n "$pdisk" ] && qemu-img info "$pdisk" | sed -n 's/^file format: //p')" \
	"2 qcow2" "the export is two files: a metadata tarball and a qcow2 disk"
is "$(tar -tf "$pmeta" | grep -c '^rootfs')/$(tar -tf "$pmeta" | grep -c '^metadata.yaml$')" 0/1 \
	"the metadata tarball has metadata.yaml and no rootfs/"
is "$(cat "$pmeta" "$pdisk" | sha256sum | cut -d' ' -f1)" "$pfp" \
	"its fingerprint is sha256(metadata then rootfs.img)"
run_lxc init b:vmpub b:v6
rc_ok "lxc init from the published image"
is "$(dd if="$VMDIR/default_v6/root.img" bs=1M skip=1 count=1 status=none | head -c 20)" \
	berth-publish-marker "the new VM's disk has what v1's had"
qemu-img compare -q -f raw -F raw "$VMDIR/default_v1/root.img" "$VMDIR/default_v6/root.img" &&
	pass "... byte for byte (qemu-img compare)" || fail "... byte for byte (qemu-img compare)"
run_lxc start b:v6
rc_ok "the VM from the published image starts"
run_lxc delete b:v6 --force
rc_ok "lxc delete v6"
run_lxc publish b:v1/s1 b: --alias vmsnap --compression none
rc_ok "lxc publish of the VM's snapshot, uncompressed"
api GET /1.0/images/aliases/vmsnap
sfp=$(jget 'j["metadata"]["target"]')
api GET "/1.0/images/$sfp"
is "$(jget 'j["metadata"]["type"]')" virtual-machine "... is a virtual-machine image too"
run_lxc image delete b:vmpub b:vmsnap
rc_ok "the published images are deleted"
is "$(ls "$BERTH_DIR/tmp" | grep -c publish)" 0 "no publish spool is left"

# ---- berthd kill -9 with a VM running ----
run_lxc start b:v1
rc_ok "lxc start v1 before killing berthd"
pid1=$(qemu_pid_of v1)
kill -9 "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null
DAEMON_PID=
alive "$pid1" && pass "QEMU outlives berthd's kill -9" || fail "QEMU outlives berthd's kill -9"
daemon_start
is "$(status v1)" Running "after the restart v1 is still Running"
is "$(qemu_pid_of v1)" "$pid1" "the same QEMU"
run_lxc stop b:v1 --force
rc_ok "stop works after the re-attach"
is "$(qemus)" 0 "no QEMU runs"

# ---- devices: a custom block volume, nat proxies, what LXD refuses on a VM ----
run_lxc storage volume create b:default blk --type=block size=64MiB
rc_ok "lxc storage volume create --type=block size=64MiB"
BLK=$BERTH_DIR/storage-pools/default/custom/default_blk/root.img
is "$(stat -c %s "$BLK" 2>/dev/null):$(du -k "$BLK" 2>/dev/null | cut -f1)" 67108864:0 \
	"its disk is a sparse 64MiB root.img"
api GET /1.0/storage-pools/default/volumes/custom/blk
is "$(jget 'j["metadata"]["content_type"]')" block "its content type is block"
run_lxc storage volume set b:default blk size=128MiB
like "$ERR" 'Changing the size of custom block volume "blk" is not supported yet' \
	"a block volume's size change is refused (not yet done)"
run_lxc storage volume copy b:default/blk b:default/blk2
like "$ERR" 'Copying or moving custom block volume "blk" is not supported yet' \
	"a block volume's copy is refused (it would be a filesystem volume)"
run_lxc storage volume create b:default fsv
run_lxc config device add b:v1 blk disk pool=default source=blk path=/mnt
like "$ERR" "Custom block volumes cannot have a path defined" "a block volume with a path: LXD's refusal"
run_lxc config device add b:v1 fs disk pool=default source=fsv
like "$ERR" "Custom filesystem volumes require a path to be defined" \
	"a filesystem volume without a path: LXD's refusal"
run_lxc config device add b:v1 nosrc disk pool=default
like "$ERR" 'Invalid device "nosrc": disk devices need a "path"' "a disk with a pool but no source nor path is refused"
run_lxc config device add b:v1 rel disk source=relative/dir path=/mnt/rel
like "$ERR" "isn't absolute|must be an absolute path" "a shared directory's relative source is refused"
run_lxc config device add b:v1 p1 proxy listen=tcp:127.0.0.1:4321 connect=tcp:127.0.0.1:22
like "$ERR" "Only NAT mode is supported for proxies on VM instances" "a proxy without nat=true: LXD's refusal"
run_lxc config device add b:v1 sh disk source="$TEST_TMP" path=/mnt/h shift=true
like "$ERR" 'The "shift" property cannot be used with virtual machines' "shift=true on a VM is refused"
run_lxc config device add b:v1 mo disk pool=default source=fsv path=/mnt/f raw.mount.options=noatime
like "$ERR" "raw.mount.options cannot be used with virtual machines" "raw.mount.options on a VM is refused"
api GET /1.0/instances/v1
is "$(jget 'sorted(j["metadata"]["devices"])')" "[]" "... and none of them was kept"
api POST /1.0/instances '{"name":"vp","type":"virtual-machine","source":{"type":"image","alias":"novm"},"devices":{"p":{"type":"proxy","listen":"tcp:127.0.0.1:4321","connect":"tcp:127.0.0.1:22"}}}'
like "$(jget 'j.get("error", "")')" "Only NAT mode is supported for proxies on VM instances" \
	"... also when a VM is created with it"
run_lxc config device add b:v1 blk disk pool=default source=blk readonly=true
rc_ok "lxc config device add v1 blk disk pool=default source=blk readonly=true"
# a macvlan NIC (a macvtap, as LXD gives a VM) on a veth of the test's namespace (no dummy
# module everywhere), and a p2p NIC (a tap on no bridge)
ip link add vmdparent type veth peer name vmdpeer && ip link set vmdparent up && ip link set vmdpeer up
run_lxc config device add b:v1 eth1 nic nictype=macvlan parent=vmdparent
rc_ok "lxc config device add v1 eth1 nic nictype=macvlan parent=vmdparent"
run_lxc config device add b:v1 eth2 nic nictype=p2p
rc_ok "lxc config device add v1 eth2 nic nictype=p2p"
# directories shared as 9p (tag lxd_NAME, as LXD's), listed for berth-agent to mount
mkdir -p "$TEST_TMP/share"
run_lxc config device add b:v1 hostdir disk source="$TEST_TMP/share" path=/mnt/host readonly=true
rc_ok "lxc config device add v1 hostdir disk source=DIR path=/mnt/host readonly=true"
run_lxc config device add b:v1 fsv disk pool=default source=fsv path=/srv/fsv
rc_ok "lxc config device add v1 fsv disk pool=default source=fsv path=/srv/fsv"
run_lxc start b:v1
rc_ok "v1 starts with the block volume, the macvlan and the p2p NIC, two shares"
conf=$(cat "$BERTH_DIR/run/default_v1/qemu.conf")
like "$conf" "\[fsdev \"fsdev-hostdir\"\]
fsdriver = \"local\"
security_model = \"passthrough\"
readonly = \"on\"
path = \"$TEST_TMP/share\"" "the host directory is a read-only 9p share"
like "$conf" "mount_tag = \"lxd_hostdir\"" "... tagged lxd_hostdir"
like "$conf" "path = \"$BERTH_DIR/storage-pools/default/custom/default_fsv\"" "the filesystem volume is shared too"
is "$(cat "$BERTH_DIR/run/default_v1/config/berth-mounts" | sort | tr '\t\n' ' |')" \
	"lxd_fsv rw /srv/fsv|lxd_hostdir ro /mnt/host|" "the config drive lists both for berth-agent to mount"
api GET /1.0/instances/v1
mac1=$(jget 'j["metadata"]["config"].get("volatile.eth1.hwaddr")')
p2p=$(jget 'j["metadata"]["config"].get("volatile.eth2.host_name")')
mvt=$(ip -o link show type macvtap 2>/dev/null)
like "$mvt" "@vmdparent: .*UP.* link/ether $mac1" "eth1 is a macvtap on vmdparent, up, with volatile.eth1.hwaddr"
qpid=$(qemu_pid_of v1)
like "$(ls -l "/proc/$qpid/fd/" 2>/dev/null)" "/dev/tap[0-9]+|tap[0-9]+ \(deleted\)" "... whose device QEMU holds open"
grep -A3 '^\[netdev "netdev-eth1"\]' "$BERTH_DIR/run/default_v1/qemu.conf" | grep -q 'fd = "3"' &&
	pass "... as the fd of its netdev" || fail "... as the fd of its netdev"
like "$(ip -o link show "$p2p" 2>&1)" ": $p2p: .*UP" "eth2 is the tap $p2p, up"
unlike "$(ip -o link show "$p2p" 2>&1)" "master" "... on no bridge"
grep -A8 '^\[drive "drive-blk"\]' "$BERTH_DIR/run/default_v1/qemu.conf" >"$TEST_TMP/drive" 2>/dev/null
grep -q 'file = "/dev/fdset/[0-9]*"' "$TEST_TMP/drive" && grep -q 'readonly = "on"' "$TEST_TMP/drive" &&
	grep -q 'device_id = "lxd_blk"' "$BERTH_DIR/run/default_v1/qemu.conf" &&
	pass "QEMU has it read-only, as the scsi disk lxd_blk" || fail "QEMU has it read-only, as the scsi disk lxd_blk" "$(cat "$BERTH_DIR/run/default_v1/qemu.conf")"
like "$(ls -l "/proc/$qpid/fd/" 2>/dev/null)" "-> $BLK\$" "... the file berthd opened and passed it (QEMU never opens the path)"
run_lxc config device remove b:v1 blk
like "$ERR" "running virtual machine" "a disk is not unplugged from a running VM (yet)"
run_lxc stop b:v1 --force
rc_ok "lxc stop --force v1"
# whoever had the volume's directory may have swapped root.img for a symlink: never followed
mv "$BLK" "$BLK.real"
echo untouched >"$TEST_TMP/target"
ln -s "$TEST_TMP/target" "$BLK"
run_lxc start b:v1
[ "$RC" -ne 0 ] && pass "v1 does not start when root.img is a symlink" || fail "v1 does not start when root.img is a symlink"
like "$ERR" "Device \"blk\": the file of block volume \"blk\"" "... the error names the volume"
is "$(cat "$TEST_TMP/target"):$(stat -c %s "$TEST_TMP/target")" "untouched:10" "... and its target is untouched"
is "$(qemus)" 0 "... and no QEMU runs"
rm -f "$BLK" && mv "$BLK.real" "$BLK"
is "$(ip -o link show type macvtap 2>/dev/null | wc -l)" 0 "the stop deletes the macvtap"
ip link show "$p2p" >/dev/null 2>&1 && fail "the p2p tap went with QEMU" || pass "the p2p tap went with QEMU"
run_lxc config device remove b:v1 blk eth1 eth2 hostdir fsv
rc_ok "lxc config device remove v1 blk eth1 eth2 hostdir fsv"
ip link del vmdparent
run_lxc storage volume delete b:default blk
rc_ok "the block volume is deleted"
run_lxc storage volume delete b:default fsv
[ ! -e "$BERTH_DIR/storage-pools/default/custom/default_blk" ] && pass "... with its disk" || fail "... with its disk"

# ---- btrfs ----
if command -v mkfs.btrfs >/dev/null && { grep -qw btrfs /proc/filesystems || modprobe btrfs 2>/dev/null; }; then
	run_cli storage create bt btrfs size=1GiB
	rc_ok "a btrfs pool"
	run_lxc launch b:novm b:vb --vm -s bt
	rc_ok "lxc launch --vm on btrfs"
	is "$(status vb)" Running "vb is Running"
	btrfs subvolume show "$BERTH_DIR/storage-pools/bt/virtual-machines/default_vb" >/dev/null 2>&1 &&
		pass "its volume is a btrfs subvolume" || fail "its volume is a btrfs subvolume"
	run_lxc stop b:vb --force
	rc_ok "lxc stop --force vb"
	run_lxc snapshot b:vb s1
	rc_ok "snapshot on btrfs"
	run_lxc copy b:vb b:vc
	rc_ok "copy on btrfs"
	btrfs subvolume show "$BERTH_DIR/storage-pools/bt/virtual-machines/default_vc" >/dev/null 2>&1 &&
		pass "the copy is a subvolume" || fail "the copy is a subvolume"
	run_lxc restore b:vb s1
	rc_ok "restore on btrfs"
	run_lxc delete b:vc
	rc_ok "delete vc"
	run_lxc delete b:vb
	rc_ok "delete vb"
	[ -z "$(ls "$BERTH_DIR/storage-pools/bt/virtual-machines/")" ] &&
		[ -z "$(ls "$BERTH_DIR/storage-pools/bt/virtual-machines-snapshots/" 2>/dev/null)" ] &&
		pass "no VM volume left on btrfs" || fail "no VM volume left on btrfs"
	run_cli storage delete bt
	rc_ok "the btrfs pool goes"
else
	skip "VMs on btrfs" "no btrfs here"
fi

# ---- a hostile qcow2: its backing file is a host path ----
qemu-img create -q -f qcow2 -b /etc/hostname -F raw "$IMG/evil.img" 64M
run_lxc image import "$IMG/meta.tar.xz" "$IMG/evil.img" b: --alias evil
rc_ok "a qcow2 with a backing file imports (it is only bytes in the store)"
run_lxc launch b:evil b:ev --vm
isnt "$RC" 0 "launching from it fails"
like "$ERR" "refers to another file" "the unpack refuses its backing file"
run_lxc list b: --format csv -c n
unlike "$OUT" "ev" "no instance ev is left"
[ -z "$(ls "$BERTH_DIR/storage-pools/default/images/")" ] || [ "$(ls "$BERTH_DIR/storage-pools/default/images/" | grep -vc "^$fp")" = 0 ] &&
	pass "no image volume is left of it" || fail "no image volume is left of it" "$(ls "$BERTH_DIR/storage-pools/default/images/")"

# ---- a host without QEMU ----
BERTHD_ENV=(BERTH_QEMU=/nonexistent/qemu-system-x86_64)
daemon_restart
run_lxc launch b:novm b:vq --vm
isnt "$RC" 0 "without QEMU, lxc launch --vm fails"
like "$ERR" "cannot run virtual machines: .*qemu" "the message names what is missing"
run_lxc init b:novm b:vq --vm
isnt "$RC" 0 "lxc init --vm fails too"
BERTHD_ENV=()
daemon_restart

# ---- nothing left ----
# QEMU gone on its own (as when the guest powers itself off: no stop ran), then the delete:
# the macvtap its start made goes with the run directory
ip link add vmdparent type veth peer name vmdpeer && ip link set vmdparent up && ip link set vmdpeer up
run_lxc config device add b:v1 eth1 nic nictype=macvlan parent=vmdparent
run_lxc start b:v1
rc_ok "v1 starts with a macvlan NIC again"
is "$(ip -o link show type macvtap 2>/dev/null | wc -l)" 1 "... its macvtap"
qpid=$(qemu_pid_of v1)
kill -9 "$qpid"
for _ in $(seq 50); do alive "$qpid" || break; sleep 0.1; done
alive "$qpid" && fail "v1's QEMU exited" || pass "v1's QEMU exited"
# the record said Running: a GET (and lxc list) finds QEMU gone and says Stopped, so the
# stock client deletes it without --force
api GET /1.0/instances/v1
is "$(jget 'j["metadata"]["status"]')" Stopped "GET /1.0/instances/v1 says Stopped once QEMU is gone"
run_lxc list b: -c ns --format csv
like "$OUT" "v1,STOPPED" "... and lxc list"
run_lxc delete b:v1
rc_ok "lxc delete b:v1 without --force"
is "$(ip -o link show type macvtap 2>/dev/null | wc -l)" 0 "the delete removed the macvtap no stop removed"
ip link del vmdparent
run_lxc image delete b:novm
rc_ok "lxc image delete novm"
is "$(qemus)" 0 "no QEMU left"
[ -z "$(ls "$BERTH_DIR/storage-pools/default/virtual-machines/")" ] &&
	[ -z "$(ls "$BERTH_DIR/storage-pools/default/virtual-machines-snapshots/" 2>/dev/null)" ] &&
	pass "no VM volume left" || fail "no VM volume left" "$(ls -R "$BERTH_DIR/storage-pools/default/virtual-machines"*)"
[ -z "$(find "$BERTH_DIR/run" -name '*.socket' -path '*default_v*')" ] &&
	pass "no QEMU socket left" || fail "no QEMU socket left"
is "$(ip -o link show type tun 2>/dev/null | wc -l)" 0 "no tap left"
cgh=berth-$(printf '%s' "$BERTH_DIR" | sha256sum | cut -c1-8)
left=$(ls -d /sys/fs/cgroup/"$cgh"/default_v* /sys/fs/cgroup/*/"$cgh"/default_v* 2>/dev/null)
[ -z "$left" ] && pass "no VM cgroup left" || fail "no VM cgroup left" "$left"
