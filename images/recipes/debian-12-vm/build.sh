#!/bin/sh
# debian-12-vm: Debian bookworm for a virtual machine, packed by images/build as LXD's
# split VM image (instance-type says so): metadata tarball + qcow2 rootfs.img, a GPT disk
# with an EFI system partition and an ext4 root (images/vmdisk makes it). Usage: build.sh
# ROOTFS (an empty directory); ROOTFS/boot/efi receives what goes into the ESP.
#
# What is in it: debootstrap minbase, systemd and udev, Debian's generic kernel
# (linux-image-amd64: it has 9p and virtiofs, the cloud kernel has no 9p) with modules no
# VM uses left out, an initramfs holding the virtio, 9p and ext4 drivers, systemd-boot
# as EFI/BOOT/BOOTX64.EFI (OVMF boots it with no NVRAM entry), console=ttyS0,
# systemd-networkd taking DHCP on the virtio NIC, and the loader of LXD's VM images
# (lxd-agent.service, lxd-agent-setup, a udev rule): when the virtio-serial port
# org.linuxcontainers.lxd exists, it copies the config drive (9p or virtiofs tag
# "config") to /run/lxd_agent and runs the lxd-agent found there, Type=notify.
# The kernel and initrd are also /boot/vmlinuz and /boot/initrd.img on the root
# filesystem (metadata.yaml's boot.* properties) for direct kernel boot.
# The mirror is the host's own Debian mirror (its apt sources) unless
# $BERTH_DEBIAN_MIRROR says otherwise.
set -eu
root=$1
here=$(cd "$(dirname "$0")" && pwd)

mirror=${BERTH_DEBIAN_MIRROR:-}
if [ -z "$mirror" ]; then
	mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
		/etc/apt/sources.list.d/*.sources 2>/dev/null |
		sed -n -e 's|^deb \(\[[^]]*\] \)\{0,1\}\(https\{0,1\}://[^ ]*/debian/\{0,1\}\) .*|\2|p' \
			-e 's|^URIs: *\(https\{0,1\}://[^ ]*/debian/\{0,1\}\)$|\1|p' | head -1)
fi
[ -n "$mirror" ] || { echo "debian-12-vm: no Debian mirror in the apt sources" >&2; exit 1; }
command -v debootstrap >/dev/null || { echo "debian-12-vm: apt-get install debootstrap" >&2; exit 1; }

debootstrap --variant=minbase --arch=amd64 \
	--include=systemd,systemd-sysv,udev,kmod,dbus,iproute2,iputils-ping,ca-certificates,less,procps \
	bookworm "$root" "$mirror" >&2

cat >"$root/etc/apt/sources.list" <<EOT
deb $mirror bookworm main
deb $mirror bookworm-updates main
EOT

# The initramfs: the drivers a berth or LXD VM needs (q35's PCI or microvm's virtio-mmio,
# virtio disks and console, the 9p and virtiofs config drive, ext4), not the build host's;
# udev loads those whose device is there, ext4 is loaded for the root. zstd.
mkdir -p "$root/etc/initramfs-tools/conf.d" "$root/etc/initramfs-tools/hooks"
cat >"$root/etc/initramfs-tools/conf.d/berth-vm.conf" <<'EOT'
MODULES=list
COMPRESS=zstd
EOT
echo ext4 >"$root/etc/initramfs-tools/modules"
cat >"$root/etc/initramfs-tools/hooks/berth-vm-drivers" <<'EOT'
#!/bin/sh
# Copies the drivers of a virtual machine's devices into the initramfs (loaded by udev
# there only when their device exists).
[ "${1:-}" = prereqs ] && exit 0
. /usr/share/initramfs-tools/hook-functions
for m in virtio_pci virtio_mmio virtio_blk virtio_scsi sd_mod virtio_console virtio_rng \
	9p 9pnet_virtio virtiofs ext4 crc32c_generic; do
	manual_add_modules "$m"
done
EOT
chmod 755 "$root/etc/initramfs-tools/hooks/berth-vm-drivers"
# Drivers of q35 chipset functions no guest uses, which udev would load at every boot
# (each costs a module load, and its signature check, slow under TCG).
cat >"$root/etc/modprobe.d/berth-vm.conf" <<'EOT'
# Chipset functions of QEMU's q35 that a VM has no use for.
blacklist pcspkr
blacklist iTCO_wdt
blacklist iTCO_vendor_support
blacklist lpc_ich
blacklist i2c_i801
EOT

# No service may start inside the build's chroot.
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 755 "$root/usr/sbin/policy-rc.d"
chroot "$root" apt-get -q update >&2
DEBIAN_FRONTEND=noninteractive chroot "$root" apt-get -q -y --no-install-recommends install \
	linux-image-amd64 initramfs-tools zstd systemd-boot-efi >&2
rm -f "$root/usr/sbin/policy-rc.d"

"$here/vm-prune" "$root"

kver=$(cd "$root/lib/modules" && ls)
[ "$(echo "$kver" | wc -l)" = 1 ] || { echo "debian-12-vm: not one kernel: $kver" >&2; exit 1; }
# Modules left out by vm-prune: depmod again, then the initramfs from what is left.
chroot "$root" depmod "$kver"
chroot "$root" update-initramfs -u -k "$kver" >&2
# Real files (hard links), so that a reader of the filesystem needs no symlink resolution.
ln -f "$root/boot/vmlinuz-$kver" "$root/boot/vmlinuz"
ln -f "$root/boot/initrd.img-$kver" "$root/boot/initrd.img"

"$here/vm-guest" "$root" "$kver"

echo debian >"$root/etc/hostname"
cat >"$root/etc/hosts" <<'EOT'
127.0.0.1	localhost
127.0.1.1	debian
::1		localhost ip6-localhost ip6-loopback
EOT
: >"$root/etc/machine-id"
chroot "$root" passwd -d root >/dev/null
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/var/log/*.log
