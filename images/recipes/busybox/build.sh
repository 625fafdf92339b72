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
# Seen only while nothing is mounted on /run (rcS mounts its tmpfs then).
: >run/.image
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
::askfirst:-/bin/sh
::ctrlaltdel:/sbin/reboot
::shutdown:/etc/init.d/rcK
EOT
cat >etc/init.d/rcS <<'EOT'
#!/bin/sh
# Boot: what a container's init still has to do itself.
# (This busybox has no `mountpoint`: look at what is there instead. A container
# manager has mounted /proc and /sys already; mounting them again would hide its masks.)
# Shell builtins where they do: every command forked costs a container's boot about
# a millisecond of CPU, which adds up over hundreds of containers. The manager has
# brought lo up and set the hostname (from the name /etc/hostname is made from).
[ -e /proc/self ] || mount -t proc proc /proc
[ -d /sys/class ] || mount -t sysfs sysfs /sys 2>/dev/null
# the image's own /run (its marker file shows): nobody mounted one, so ours
[ -e /run/.image ] && mount -t tmpfs -o mode=0755 tmpfs /run
h= cur=
[ -s /etc/hostname ] && read -r h </etc/hostname
read -r cur </proc/sys/kernel/hostname
[ -z "$h" ] || [ "$h" = "$cur" ] || hostname "$h"
if [ -e /sys/class/net/eth0 ]; then
	ip link set eth0 up
	udhcpc -b -i eth0 -x "hostname:${h:-$cur}" -s /etc/udhcpc.script >/dev/null 2>&1 &
fi
EOT
chmod 0755 etc/init.d/rcS
# Shutdown, run by init on poweroff (SIGUSR2), halt (SIGUSR1) and reboot (SIGTERM).
# busybox init would then signal every process and sleep a second twice; in a
# container that is 2 s of nothing. rcK does the same work without the fixed pauses
# (processes get up to 1 s to exit after SIGTERM) and ends with the reboot(2) the
# init was going to make: a reboot when /sbin/reboot asked for one, a poweroff
# otherwise. In a pid namespace that ends PID 1 at once, as the manager expects.
# No sync and no unmounting: the files live in the host's page cache, which the
# host writes back, and sync(2) would wait for every dirty page of the host; the
# mounts go with the container's mount namespace. Only shell builtins in the loops:
# each fork of a command costs more than the work it does.
cat >etc/init.d/rcK <<'EOT'
#!/bin/sh
others() {
	for d in /proc/[0-9]*; do
		p=${d#/proc/}
		[ "$p" = 1 ] || [ "$p" = $$ ] || [ "$p" = "$1" ] || return 0
	done
	return 1
}
kill -TERM -1 2>/dev/null
# Interactive shells (the console's) ignore SIGTERM; a hangup ends them.
for d in /proc/[0-9]*; do
	[ "${d#/proc/}" = $$ ] && continue
	c=
	read -r c 2>/dev/null <"$d/comm"
	case $c in sh | ash | -sh) kill -HUP "${d#/proc/}" 2>/dev/null ;; esac
done
i=0
while others "$$" && [ $i -lt 200 ]; do
	usleep 5000
	i=$((i + 1))
done
kill -KILL -1 2>/dev/null
if [ -e /run/berth-reboot ]; then
	rm -f /run/berth-reboot
	reboot -f
fi
poweroff -f
EOT
chmod 0755 etc/init.d/rcK
# /sbin/reboot marks the request so that rcK reboots instead of powering off.
rm -f sbin/reboot
cat >sbin/reboot <<'EOT'
#!/bin/sh
case " $* " in
*" -f "*) ;;
*) : >/run/berth-reboot ;;
esac
exec /bin/busybox reboot "$@"
EOT
chmod 0755 sbin/reboot
cat >etc/udhcpc.script <<'EOT'
#!/bin/sh
# udhcpc hook: configure the lease on $interface. /run/udhcpc.$interface holds the
# address configured (empty: none), so that the first deconfig and a renewal of the same
# lease run no command (each costs a container's boot a few ms of CPU).
state=/run/udhcpc.$interface
old=
[ -s "$state" ] && read -r old <"$state"
case $1 in
deconfig)
	if [ -n "$old" ]; then
		ip addr flush dev "$interface"
		: >"$state"
	fi
	;;
bound | renew)
	if [ "$old" != "$ip/${mask:-24}" ]; then
		[ -z "$old" ] || ip addr flush dev "$interface"
		ip addr add "$ip/${mask:-24}" dev "$interface"
		[ -n "${router:-}" ] && ip route replace default via "${router%% *}" dev "$interface"
		echo "$ip/${mask:-24}" >"$state"
	fi
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
# File names as real images have them, so that every test run unpacks them (the tarball is
# pax, tar-format): UTF-8 (ca-certificates' NetLock file), Latin-1, a space, a newline, a
# backslash, one longer than a ustar header holds, a Latin-1 directory, and links to them.
# Each file holds its own name. tests/integration/t_names.sh compares them byte for byte.
names=usr/share/berth-names
mkdir -p "$names/$(printf 'r\351pertoire')"
for n in "NetLock_Arany_=Class_Gold=_F$(printf '\305\221tan\303\272s\303\255tv\303\241ny').pem" \
	"$(printf 'caf\351')" "with space" "$(printf 'new\nline')" 'back\slash' \
	"$(printf 'r\351pertoire')/$(printf '\303\251t\303\251')" \
	"long-$(printf '\303\251%.0s' $(seq 60))-name"; do
	printf '%s' "$n" >"$names/$n"
done
ln -s "$(printf 'caf\351')" "$names/$(printf 'lien-\351')"
ln "$names/with space" "$names/$(printf 'dur-\351')"
