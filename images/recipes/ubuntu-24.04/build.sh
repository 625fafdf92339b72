#!/bin/sh
# ubuntu-24.04: Ubuntu noble by debootstrap, systemd as init, systemd-networkd taking DHCP
# on eth0 (no netplan: the image configures networkd directly, like debian-12).
# Usage: build.sh ROOTFS (an empty directory).
#
# For hosts that reach an Ubuntu mirror: $BERTH_UBUNTU_MIRROR (default
# http://archive.ubuntu.com/ubuntu/). The mirror is probed first, so a host without a
# route to it fails at once with "mirror ... unreachable" instead of inside debootstrap.
# Needs debootstrap and Ubuntu's archive keyring (Debian's `ubuntu-keyring` package;
# $BERTH_UBUNTU_KEYRING overrides its path): the Release file is verified against it.
# Debian 12's debootstrap predates noble; every Ubuntu release since gutsy uses the same
# debootstrap script, so this recipe names that script explicitly.
# The test suite never builds this recipe.
set -eu
root=$1
suite=noble
mirror=${BERTH_UBUNTU_MIRROR:-http://archive.ubuntu.com/ubuntu/}
keyring=${BERTH_UBUNTU_KEYRING:-/usr/share/keyrings/ubuntu-archive-keyring.gpg}
script=/usr/share/debootstrap/scripts/gutsy

die() { echo "ubuntu-24.04: $*" >&2; exit 1; }

command -v debootstrap >/dev/null || die "debootstrap is missing (apt-get install debootstrap)"
command -v curl >/dev/null || die "curl is missing (apt-get install curl)"
[ -f "$script" ] || die "no debootstrap script $script (debootstrap too old or too new?)"
case $(uname -m) in
x86_64) ;;
*) die "this recipe builds amd64 images only (host is $(uname -m))" ;;
esac
if ! curl -fsS --max-time 15 -o /dev/null "${mirror%/}/dists/$suite/Release" 2>/dev/null; then
	die "mirror ${mirror} unreachable (no ${mirror%/}/dists/$suite/Release);" \
		"this recipe needs a host that reaches an Ubuntu mirror (set BERTH_UBUNTU_MIRROR)"
fi
[ -f "$keyring" ] || die "no Ubuntu archive keyring at $keyring (apt-get install ubuntu-keyring)"

debootstrap --variant=minbase --arch=amd64 --keyring="$keyring" --components=main,universe \
	--include=systemd,systemd-sysv,systemd-resolved,dbus,iproute2,iputils-ping,ca-certificates,less,procps \
	"$suite" "$root" "$mirror" "$script" >&2

cat >"$root/etc/apt/sources.list" <<EOT
deb $mirror $suite main universe
deb $mirror $suite-updates main universe
deb $mirror $suite-security main universe
EOT

mkdir -p "$root/etc/systemd/network"
cat >"$root/etc/systemd/network/eth0.network" <<'EOT'
[Match]
Name=eth0

[Network]
DHCP=yes
EOT
# Enable systemd-networkd and resolved as `systemctl enable` would, without systemctl.
wants=$root/etc/systemd/system
mkdir -p "$wants/multi-user.target.wants" "$wants/sockets.target.wants" \
	"$wants/network-online.target.wants" "$wants/sysinit.target.wants"
ln -sf /usr/lib/systemd/system/systemd-networkd.service \
	"$wants/multi-user.target.wants/systemd-networkd.service"
ln -sf /usr/lib/systemd/system/systemd-networkd.socket \
	"$wants/sockets.target.wants/systemd-networkd.socket"
ln -sf /usr/lib/systemd/system/systemd-networkd-wait-online.service \
	"$wants/network-online.target.wants/systemd-networkd-wait-online.service"
ln -sf /usr/lib/systemd/system/systemd-networkd.service \
	"$wants/dbus-org.freedesktop.network1.service"
ln -sf /usr/lib/systemd/system/systemd-resolved.service \
	"$wants/sysinit.target.wants/systemd-resolved.service"
ln -sf /usr/lib/systemd/system/systemd-resolved.service \
	"$wants/dbus-org.freedesktop.resolve1.service"
ln -sf ../run/systemd/resolve/stub-resolv.conf "$root/etc/resolv.conf"
# Units that cannot work in a container.
for unit in systemd-udevd.service systemd-udevd-control.socket systemd-udevd-kernel.socket \
	systemd-modules-load.service sys-kernel-config.mount sys-kernel-debug.mount \
	sys-kernel-tracing.mount; do
	ln -sf /dev/null "$wants/$unit"
done

echo ubuntu >"$root/etc/hostname"
cat >"$root/etc/hosts" <<'EOT'
127.0.0.1	localhost
127.0.1.1	ubuntu
::1		localhost ip6-localhost ip6-loopback
EOT
: >"$root/etc/machine-id"
chroot "$root" passwd -d root >/dev/null
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/var/log/*.log
