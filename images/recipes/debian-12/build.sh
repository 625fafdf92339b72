#!/bin/sh
# debian-12: Debian bookworm by debootstrap, systemd as init, systemd-networkd taking
# DHCP on eth0 and systemd-resolved answering from the DHCP server's DNS
# (so NAME.berth resolves). Usage: build.sh ROOTFS (an empty directory).
# The mirror is the host's own Debian mirror (its apt sources) unless $BERTH_DEBIAN_MIRROR
# says otherwise, so the build reaches nothing but the archive the host already uses.
set -eu
root=$1

mirror=${BERTH_DEBIAN_MIRROR:-}
if [ -z "$mirror" ]; then
	mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
		/etc/apt/sources.list.d/*.sources 2>/dev/null |
		sed -n -e 's|^deb \(\[[^]]*\] \)\{0,1\}\(https\{0,1\}://[^ ]*/debian/\{0,1\}\) .*|\2|p' \
			-e 's|^URIs: *\(https\{0,1\}://[^ ]*/debian/\{0,1\}\)$|\1|p' | head -1)
fi
[ -n "$mirror" ] || { echo "debian-12: no Debian mirror in the apt sources" >&2; exit 1; }
command -v debootstrap >/dev/null || { echo "debian-12: apt-get install debootstrap" >&2; exit 1; }

debootstrap --variant=minbase --arch=amd64 \
	--include=systemd,systemd-sysv,systemd-resolved,dbus,iproute2,iputils-ping,ca-certificates,less,procps \
	bookworm "$root" "$mirror" >&2

cat >"$root/etc/apt/sources.list" <<EOT
deb $mirror bookworm main
deb $mirror bookworm-updates main
EOT

mkdir -p "$root/etc/systemd/network"
cat >"$root/etc/systemd/network/eth0.network" <<'EOT'
[Match]
Name=eth0

[Network]
DHCP=yes
EOT
# Enable systemd-networkd the way `systemctl enable` would, without running systemctl.
mkdir -p "$root/etc/systemd/system/multi-user.target.wants" \
	"$root/etc/systemd/system/sockets.target.wants" \
	"$root/etc/systemd/system/network-online.target.wants"
ln -sf /lib/systemd/system/systemd-networkd.service \
	"$root/etc/systemd/system/multi-user.target.wants/systemd-networkd.service"
ln -sf /lib/systemd/system/systemd-networkd.socket \
	"$root/etc/systemd/system/sockets.target.wants/systemd-networkd.socket"
ln -sf /lib/systemd/system/systemd-networkd-wait-online.service \
	"$root/etc/systemd/system/network-online.target.wants/systemd-networkd-wait-online.service"
ln -sf /lib/systemd/system/systemd-networkd.service \
	"$root/etc/systemd/system/dbus-org.freedesktop.network1.service"
# Units that cannot work in a container.
for unit in systemd-udevd.service systemd-udevd-control.socket systemd-udevd-kernel.socket \
	systemd-modules-load.service sys-kernel-config.mount sys-kernel-debug.mount \
	sys-kernel-tracing.mount; do
	ln -sf /dev/null "$root/etc/systemd/system/$unit"
done

echo debian >"$root/etc/hostname"
cat >"$root/etc/hosts" <<'EOT'
127.0.0.1	localhost
127.0.1.1	debian
::1		localhost ip6-localhost ip6-loopback
EOT
: >"$root/etc/machine-id"
chroot "$root" passwd -d root >/dev/null
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/var/log/*.log
