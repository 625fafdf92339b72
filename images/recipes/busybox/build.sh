#!/bin/sh
# busybox: a tiny image with busybox init, from Debian's busybox-static package.
# Usage: build.sh ROOTFS (an empty directory). Needs apt (the host's sources) or a
# busybox-static .deb in $BERTH_BUSYBOX_DEB.
set -eu
root=$1
work=$(mktemp -d "${TMPDIR:-/tmp}/berth-busybox.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

deb=${BERTH_BUSYBOX_DEB:-}
if [ -z "$deb" ]; then
	deb=$(ls /var/cache/apt/archives/busybox-static_*.deb 2>/dev/null | tail -1 || true)
fi
if [ -z "$deb" ]; then
	(cd "$work" && apt-get download -q busybox-static >&2)
	deb=$(ls "$work"/busybox-static_*.deb)
fi
dpkg-deb -x "$deb" "$work/pkg"

cd "$root"
mkdir -p bin sbin usr/bin usr/sbin etc/init.d dev proc sys run tmp root var/log var/run
chmod 1777 tmp
chmod 0700 root
install -m 0755 "$work/pkg/bin/busybox" bin/busybox

# One symlink per applet, relative so that it resolves inside any root.
"$work/pkg/bin/busybox" --list-full | while read -r applet; do
	case $applet in bin/busybox | "") continue ;; esac
	[ -e "$applet" ] || [ -L "$applet" ] && continue
	dir=$(dirname "$applet")
	mkdir -p "$dir"
	case $dir in
	.) ln -s bin/busybox "$applet" ;;
	bin) ln -s busybox "$applet" ;;
	*) ln -s "$(echo "$dir" | sed -e 's|[^/]*|..|g')/bin/busybox" "$applet" ;;
	esac
done
[ -L sbin/init ] || ln -s ../bin/busybox sbin/init

cat >etc/inittab <<'EOT'
::sysinit:/etc/init.d/rcS
::respawn:-/bin/sh
::ctrlaltdel:/sbin/reboot
::shutdown:/bin/umount -a -r
EOT
cat >etc/init.d/rcS <<'EOT'
#!/bin/sh
# Boot: what a container's init still has to do itself.
mountpoint -q /proc || mount -t proc proc /proc
mountpoint -q /sys || mount -t sysfs sysfs /sys 2>/dev/null
mountpoint -q /run || mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p /run/udhcpc
[ -s /etc/hostname ] && hostname -F /etc/hostname
ip link set lo up
if ip link show eth0 >/dev/null 2>&1; then
	ip link set eth0 up
	udhcpc -b -q -i eth0 -s /etc/udhcpc.script >/dev/null 2>&1 &
fi
EOT
chmod 0755 etc/init.d/rcS
cat >etc/udhcpc.script <<'EOT'
#!/bin/sh
# udhcpc hook: configure the lease on $interface.
case $1 in
deconfig) ip addr flush dev "$interface" ;;
bound | renew)
	ip addr flush dev "$interface"
	ip addr add "$ip/${mask:-24}" dev "$interface"
	[ -n "${router:-}" ] && ip route replace default via "${router%% *}" dev "$interface"
	: >/etc/resolv.conf
	for d in ${dns:-}; do echo "nameserver $d" >>/etc/resolv.conf; done
	;;
esac
exit 0
EOT
chmod 0755 etc/udhcpc.script
echo busybox >etc/hostname
cat >etc/hosts <<'EOT'
127.0.0.1	localhost
127.0.1.1	busybox
::1		localhost ip6-localhost ip6-loopback
EOT
cat >etc/passwd <<'EOT'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOT
cat >etc/group <<'EOT'
root:x:0:
nogroup:x:65534:
EOT
echo 'root::19000:0:99999:7:::' >etc/shadow
chmod 0640 etc/shadow
: >etc/resolv.conf
echo 'export PS1="\h:\w\$ "' >etc/profile
