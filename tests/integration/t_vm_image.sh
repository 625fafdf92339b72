#!/bin/bash
# tests/integration/t_vm_image.sh: the debian-12-vm recipe (images/recipes/debian-12-vm)
# gives LXD's split VM image, and that image boots to its agent loader. Checks the format:
# a metadata tarball with metadata.yaml (architecture, creation_date, os, release, variant,
# description, the boot.* properties of direct kernel boot) and templates but no rootfs;
# a qcow2 rootfs.img holding a GPT disk with an EFI system partition (FAT, systemd-boot as
# EFI/BOOT/BOOTX64.EFI, a loader entry with console=ttyS0, kernel and initrd) and an
# ext4 root labelled rootfs (the kernel and initrd at the boot.* paths, an initramfs
# with the virtio, 9p and virtio_console drivers, LXD's agent loader: lxd-agent.service,
# lxd-agent-setup, the udev rule); the fingerprint is LXD's (SHA-256 of the metadata
# tarball then rootfs.img); a second build is a copy from the cache. Then one boot under
# TCG (KVM where usable) by a bare qemu-system-x86_64 with direct kernel boot: the
# kernel's lines on the serial console, and the loader, finding the virtio-serial port
# org.linuxcontainers.lxd, mounts the 9p share tagged "config" and runs the stand-in
# agent on it from /run/lxd_agent, which says READY on the port and is then active for
# systemd (its sd_notify taken). QEMU has no NIC (and runs in the test's own network
# namespace); it is killed by PID, none is left, its files are removed.
# Slow (the image takes minutes to build the first time, the boot about a minute under
# TCG): only in the full run (BERTH_TEST_FULL=1).
. "$(dirname "$0")/lib.sh"
[ "${BERTH_TEST_FULL:-}" = 1 ] || skip_all "slow: set BERTH_TEST_FULL=1"
for p in qemu-system-x86_64 qemu-img sfdisk mdir mtype debugfs zstd; do
	command -v "$p" >/dev/null || skip_all "$p is not installed (scripts/test.sh installs it)"
done
BOOT_TIMEOUT=${BERTH_VM_BOOT_TIMEOUT:-180}
# Built (or copied from the cache) before entering the namespaces; the build's time and
# a second, cached, build's are measured here too.
if [ -z "${BERTH_IN_NETNS:-}" ]; then
	t0=$(date +%s%N)
	berth_test_images debian-12-vm
	BUILD1_MS=$((($(date +%s%N) - t0) / 1000000))
	export BUILD1_MS
	if [ -s "${T_IMAGES:-/nonexistent}/debian-12-vm.fp" ]; then
		t0=$(date +%s%N)
		"$BERTH_SRCDIR/images/build" debian-12-vm "$T_IMAGES/again" >"$T_IMAGES/again.fp" 2>&1
		BUILD2_MS=$((($(date +%s%N) - t0) / 1000000))
		export BUILD2_MS
	fi
fi
_enter_namespaces "$@"
berth_test_images debian-12-vm
TEST_TMP=$(mktemp -d /tmp/berth-test.XXXXXX)
W=$TEST_TMP
QEMU_PID=
vm_exit()
{
	if [ -n "$QEMU_PID" ]; then
		kill "$QEMU_PID" 2>/dev/null
		wait "$QEMU_PID" 2>/dev/null
	fi
	_berth_test_exit
}
trap vm_exit EXIT
trap 'exit 1' INT TERM
PY=/usr/bin/python3

meta=${IMAGE[debian-12-vm]}
dir=$(dirname "$meta")
disk=$dir/rootfs.img
fp=$(cat "$T_IMAGES/debian-12-vm.fp")
diag "image: $fp (build or cache copy: ${BUILD1_MS} ms, again: ${BUILD2_MS:-?} ms); rootfs.img: $(du -k "$disk" | cut -f1) KiB"

# ---- the split image: files, fingerprint, cache ----
ok "a metadata tarball (.tar.xz)" test "$meta" = "$dir/debian-12-vm.tar.xz"
ok "and rootfs.img beside it" test -s "$disk"
like "$fp" '^[0-9a-f]{64}$' "images/build prints a fingerprint"
is "$(cat "$meta" "$disk" | sha256sum | cut -d' ' -f1)" "$fp" \
	"the fingerprint is SHA-256 over the metadata tarball then rootfs.img"
isnt "$(sha256sum <"$meta" | cut -d' ' -f1)" "$fp" "(not the metadata tarball's alone)"
is "$(cat "$T_IMAGES/again.fp" 2>&1)" "$fp" "a second build gives the same image"
ok "the second build is a copy from the cache (${BUILD2_MS:-?} ms)" test "${BUILD2_MS:-99999}" -lt 30000
key=$(cd "$BERTH_SRCDIR/images/recipes/debian-12-vm" && find . -type f | LC_ALL=C sort |
	xargs sha256sum | sha256sum | cut -c1-16)
cache=${BERTH_IMAGE_CACHE:-/var/cache/berth-test}
ok "cached under the recipe's key" cmp -s "$disk" "$cache/debian-12-vm-$key.img"

# ---- metadata tarball ----
is "$(tar -tJf "$meta" | sort | tr '\n' ' ')" \
	"metadata.yaml templates/ templates/hostname.tpl templates/hosts.tpl " \
	"the metadata tarball holds metadata.yaml and templates, no rootfs"
tar -xJOf "$meta" metadata.yaml >"$W/metadata.yaml"
y() { sed -n "s/^$1: *//p" "$W/metadata.yaml" | tr -d '"'; }
is "$(y architecture)" x86_64 "metadata.yaml: architecture"
like "$(y creation_date)" '^[0-9]{10}$' "metadata.yaml: creation_date"
is "$(y '  os')/$(y '  release')/$(y '  variant')" debian/bookworm/default \
	"metadata.yaml: os, release, variant"
like "$(y '  description')" 'Debian bookworm amd64 .*virtual machine' "metadata.yaml: description"
is "$(y '  boot.kernel') $(y '  boot.initrd')" "/boot/vmlinuz /boot/initrd.img" \
	"metadata.yaml: the kernel and initrd of direct kernel boot"
cmdline=$(y '  boot.cmdline')
like "$cmdline" '^root=LABEL=rootfs rw console=ttyS0$' "metadata.yaml: its command line"
is "$(grep -c 'template: host' "$W/metadata.yaml")" 2 "metadata.yaml: hostname and hosts templates"

# ---- rootfs.img: qcow2, GPT, ESP, root ----
info=$(qemu-img info --output=json "$disk")
like "$info" '"format": "qcow2"' "rootfs.img is qcow2"
like "$info" '"virtual-size": 2147483648,' "of 2 GiB"
qemu-img convert -O raw "$disk" "$W/disk.raw"
parts=$(sfdisk -J "$W/disk.raw" | $PY -c '
import json, sys
t = json.load(sys.stdin)["partitiontable"]
print(t["label"], *["%s:%s:%s:%s" % (p["type"], p["name"], p["start"], p["size"]) for p in t["partitions"]])')
is "$(echo "$parts" | sed 's/:[0-9]*:[0-9]*//g')" \
	"gpt C12A7328-F81F-11D2-BA4B-00A0C93EC93B:UEFI 0FC63DAF-8483-4772-8E79-3D69D8477DE4:rootfs" \
	"a GPT disk: an EFI system partition, then a Linux root"
read -r _ p1 p2 <<<"$parts"
esp_off=$(($(echo "$p1" | cut -d: -f3) * 512))
root_off=$(($(echo "$p2" | cut -d: -f3) * 512))
export MTOOLS_SKIP_CHECK=1
esp="$W/disk.raw@@$esp_off"
like "$(mdir -i "$esp" -/ -b :: 2>&1)" '::/EFI/BOOT/BOOTX64.EFI' \
	"the ESP is FAT with EFI/BOOT/BOOTX64.EFI (the removable-media path)"
is "$(mtype -i "$esp" ::/EFI/BOOT/BOOTX64.EFI | head -c 2)" MZ "BOOTX64.EFI is an EFI (PE) program"
like "$(mtype -i "$esp" ::/EFI/BOOT/BOOTX64.EFI | grep -a -c 'systemd-boot')" '^[1-9]' \
	"it is systemd-boot"
entry=$(mtype -i "$esp" ::/loader/entries/debian.conf 2>&1)
like "$entry" "options $cmdline" "its boot entry has the image's command line"
for f in vmlinuz initrd.img; do
	ok "the ESP holds /debian/$f" test "$(mdir -i "$esp" -b "::/debian/$f" 2>/dev/null)" = "::/debian/$f"
done

rootimg="$W/disk.raw?offset=$root_off"
like "$(dumpe2fs -h "$rootimg" 2>/dev/null)" 'Filesystem volume name: +rootfs' \
	"the root partition is ext4 labelled rootfs"
for f in kernel initrd; do
	debugfs -R "dump /boot/$([ $f = kernel ] && echo vmlinuz || echo initrd.img) $W/$f" "$rootimg" 2>/dev/null
done
is "$(head -c 2 "$W/kernel"; dd if="$W/kernel" bs=1 skip=514 count=4 status=none)" MZHdrS \
	"/boot/vmlinuz is a bzImage"
ok "/boot/initrd.img is what the ESP boots" cmp -s "$W/initrd" <(mtype -i "$esp" ::/debian/initrd.img)
# The initramfs's module names (zstd-compressed newc cpio).
mods=$(zstd -dc "$W/initrd" | $PY -c '
import sys
d = sys.stdin.buffer.read()
i = 0
while i + 110 <= len(d) and d[i:i + 6] == b"070701":
    n, s = int(d[i + 94:i + 102], 16), int(d[i + 54:i + 62], 16)
    name = d[i + 110:i + 110 + n - 1].decode()
    i = (i + 110 + n + 3) & ~3
    i = (i + s + 3) & ~3
    if name.endswith(".ko"):
        print(name.rsplit("/", 1)[1][:-3])' | sort | tr '\n' ' ')
for m in virtio_pci virtio_blk virtio_scsi virtio_console 9p 9pnet_virtio ext4; do
	like " $mods" " $m " "the initramfs has $m"
done
cat_root() { debugfs -R "cat $1" "$rootimg" 2>/dev/null; }
unit=$(cat_root /etc/systemd/system/lxd-agent.service)
like "$unit" 'ConditionPathExists=/dev/virtio-ports/org.linuxcontainers.lxd' \
	"lxd-agent.service runs where the port org.linuxcontainers.lxd is"
like "$unit" 'Type=notify' "and waits for the agent's readiness"
like "$unit" 'ExecStartPre=/lib/systemd/lxd-agent-setup' "after lxd-agent-setup"
like "$unit" 'ExecStart=/run/lxd_agent/lxd-agent' "from /run/lxd_agent"
like "$(debugfs -R 'stat /etc/systemd/system/multi-user.target.wants/lxd-agent.service' "$rootimg" 2>/dev/null)" \
	'Type: symlink' "lxd-agent.service is enabled"
like "$(cat_root /lib/systemd/lxd-agent-setup)" 'mount -t 9p .*config' "lxd-agent-setup mounts the 9p share config"
like "$(cat_root /lib/udev/rules.d/99-lxd-agent.rules)" \
	'ATTR\{name\}=="org.linuxcontainers.lxd".*SYSTEMD_WANTS.*lxd-agent.service' \
	"a udev rule starts it when the port appears"
rm -f "$W/disk.raw"

# ---- one boot: direct kernel boot to the agent loader ----
mkdir -p "$W/config" "$W/run"
cat >"$W/config/lxd-agent" <<'EOT'
#!/bin/sh
port=/dev/virtio-ports/org.linuxcontainers.lxd
echo "READY cwd=$(pwd) uid=$(id -u)" >"$port"
systemd-notify --pid=$$ --ready
i=0
while [ "$(systemctl is-active lxd-agent.service)" != active ] && [ $i -lt 300 ]; do
	sleep 0.1
	i=$((i + 1))
done
echo "ACTIVE $(systemctl is-active lxd-agent.service)" >"$port"
exec sleep infinity
EOT
chmod 755 "$W/config/lxd-agent"
qemu-img create -q -f qcow2 -F qcow2 -b "$disk" "$W/run/root.qcow2"
accel=tcg
[ -w /dev/kvm ] && accel=kvm
qemus() { pgrep -f -- "-name berth-t-vm-image,.*$W/" | wc -l; }
t0=$(date +%s%N)
qemu-system-x86_64 -name "berth-t-vm-image,debug-threads=off" -nodefaults -no-user-config \
	-display none -machine q35 -accel "$accel" -smp 2 -m 1024 \
	-kernel "$W/kernel" -initrd "$W/initrd" -append "$cmdline" \
	-drive "if=none,id=root,format=qcow2,file=$W/run/root.qcow2" -device virtio-blk-pci,drive=root \
	-nic none -device virtio-rng-pci -device virtio-serial-pci \
	-chardev "socket,id=agent,path=$W/run/agent.sock,server=on,wait=off" \
	-device virtserialport,chardev=agent,name=org.linuxcontainers.lxd \
	-fsdev "local,id=config,path=$W/config,security_model=none,readonly=on" \
	-device virtio-9p-pci,fsdev=config,mount_tag=config \
	-chardev "file,id=console,path=$W/run/serial.log" -serial chardev:console \
	-monitor none 2>"$W/run/qemu.err" &
QEMU_PID=$!
for _ in $(seq 50); do
	[ "$(qemus)" = 1 ] && break
	sleep 0.1
done
is "$(qemus)" 1 "QEMU runs ($accel)"
# Reads the agent port until ACTIVE (or the timeout); prints "READY_MS ACTIVE_MS", then
# what the stand-in wrote.
got=$($PY - "$t0" "$W/run/agent.sock" "$BOOT_TIMEOUT" "$QEMU_PID" <<'EOT'
import os, socket, sys, time
t0, path, timeout, pid = int(sys.argv[1]), sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
ms = lambda: (time.time_ns() - t0) // 1000000
s, buf, ready = None, b"", "-"
while b"ACTIVE" not in buf and ms() < timeout * 1000 and os.path.exists("/proc/%d" % pid):
    if s is None:
        time.sleep(0.05)
        try:
            s = socket.socket(socket.AF_UNIX)
            s.connect(path)
            s.settimeout(0.2)
        except OSError:
            s = None
        continue
    try:
        data = s.recv(4096)
    except socket.timeout:
        continue
    if not data:
        s = None
        continue
    buf += data
    if ready == "-" and b"READY" in buf:
        ready = ms()
print(ready, ms() if b"ACTIVE" in buf else "-")
print(buf.decode(errors="replace"))
EOT
)
read -r ready_ms active_ms <<<"$(head -1 <<<"$got")"
diag "agent READY after $ready_ms ms, unit active after $active_ms ms (timeout $BOOT_TIMEOUT s)"
serial=$(cat "$W/run/serial.log" 2>/dev/null)
like "$serial" 'Linux version 6\.1\.' "the kernel writes to the serial console (console=ttyS0)"
like "$serial" 'EXT4-fs \(vda2\): mounted filesystem' "the root partition is mounted from virtio-blk"
like "$got" 'READY cwd=/run/lxd_agent uid=0' \
	"the loader copied the config drive (9p) to /run/lxd_agent and ran the agent from there"
like "$got" 'ACTIVE active' "lxd-agent.service is active once the agent notified systemd"
if [[ $got != *ACTIVE* ]]; then
	diag "the console's last lines:" "$(tail -n 20 "$W/run/serial.log" 2>/dev/null)" "$(cat "$W/run/qemu.err")"
fi
kill "$QEMU_PID"
wait "$QEMU_PID" 2>/dev/null
QEMU_PID=
is "$(qemus)" 0 "no QEMU left"
is "$(find /proc/[0-9]*/fd -lname "$W/*" 2>/dev/null | wc -l)" 0 \
	"no process holds a file of the boot open (the overlay, the socket, the console log)"
rm -rf "$W/run" "$W/config" "$W/kernel" "$W/initrd"
