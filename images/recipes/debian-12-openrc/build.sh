#!/bin/sh
# debian-12-openrc: Debian bookworm by debootstrap booted the way Debian packages OpenRC:
# sysvinit's /sbin/init reads /etc/inittab, whose entries run /etc/init.d/rcS (openrc
# sysinit) and /etc/init.d/rc N (openrc default, or the off and shutdown/reboot runlevels
# on the way down). Stands in for Alpine (OpenRC too) where Alpine's mirrors are out of
# reach. eth0 takes DHCP through ifupdown's `networking` service (dhclient); a small
# service, berth-demo (busybox httpd on port 8080), runs in the default runlevel and logs
# each start and stop (with OpenRC's runlevel at the time) to /var/lib/berth-demo/events.
# `berth stop` sends SIGPWR (what berth sends a sysvinit /sbin/init): the inittab's
# powerwait entry turns that into `telinit 0`, so OpenRC stops every service before halt.
# Usage: build.sh ROOTFS (an empty directory). The mirror is the host's own Debian mirror
# (its apt sources) unless $BERTH_DEBIAN_MIRROR says otherwise.
set -eu
root=$1

mirror=${BERTH_DEBIAN_MIRROR:-}
if [ -z "$mirror" ]; then
	mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
		/etc/apt/sources.list.d/*.sources 2>/dev/null |
		sed -n -e 's|^deb \(\[[^]]*\] \)\{0,1\}\(https\{0,1\}://[^ ]*/debian/\{0,1\}\) .*|\2|p' \
			-e 's|^URIs: *\(https\{0,1\}://[^ ]*/debian/\{0,1\}\)$|\1|p' | head -1)
fi
[ -n "$mirror" ] || { echo "debian-12-openrc: no Debian mirror in the apt sources" >&2; exit 1; }
command -v debootstrap >/dev/null || { echo "debian-12-openrc: apt-get install debootstrap" >&2; exit 1; }

# minbase has no init at all; sysvinit-core and openrc come next through apt, which (unlike
# debootstrap's resolver) picks openrc over sysv-rc for sysvinit-core's "sysv-rc | openrc".
debootstrap --variant=minbase --arch=amd64 \
	--include=iproute2,iputils-ping,ca-certificates,less,procps,busybox \
	bookworm "$root" "$mirror" >&2

cat >"$root/etc/apt/sources.list" <<EOT
deb $mirror bookworm main
deb $mirror bookworm-updates main
EOT
# No service of the image may start inside the build's chroot.
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 755 "$root/usr/sbin/policy-rc.d"
chroot "$root" apt-get -q update >&2
DEBIAN_FRONTEND=noninteractive chroot "$root" apt-get -q -y --no-install-recommends install \
	sysvinit-core openrc initscripts ifupdown isc-dhcp-client >&2
rm -f "$root/usr/sbin/policy-rc.d"

# rc_sys: OpenRC would find "lxc" in PID 1's environment (container=lxc) too; said here
# so that the image does not depend on the manager setting it.
sed -i -e 's/^#\{0,1\}rc_sys=.*/rc_sys="lxc"/' "$root/etc/rc.conf"
grep -q '^rc_sys="lxc"' "$root/etc/rc.conf" || echo 'rc_sys="lxc"' >>"$root/etc/rc.conf"

# What has no place in a container (as LXC's Debian template also drops them): the
# hardware clock, and unmounting or remounting filesystems the host mounted for it.
chroot "$root" rc-update del hwclock.sh sysinit >&2
for svc in umountfs umountnfs.sh umountroot; do
	chroot "$root" rc-update del "$svc" off >&2
done

# inittab: no gettys (a container has no ttys to open); SIGPWR (powerwait) halts cleanly.
cat >"$root/etc/inittab" <<'EOT'
# /etc/inittab for a system container: sysvinit runs OpenRC through /etc/init.d/rc.
id:2:initdefault:
si::sysinit:/etc/init.d/rcS
~~:S:wait:/sbin/sulogin --force
l0:0:wait:/etc/init.d/rc 0
l1:1:wait:/etc/init.d/rc 1
l2:2:wait:/etc/init.d/rc 2
l3:3:wait:/etc/init.d/rc 3
l4:4:wait:/etc/init.d/rc 4
l5:5:wait:/etc/init.d/rc 5
l6:6:wait:/etc/init.d/rc 6
# The container manager's stop request (SIGPWR to PID 1): go to runlevel 0.
pf::powerwait:/sbin/telinit 0
EOT

mkdir -p "$root/etc/inittab.d"

cat >"$root/etc/network/interfaces" <<'EOT'
auto lo
iface lo inet loopback

auto eth0
iface eth0 inet dhcp
EOT

mkdir -p "$root/srv/berth-demo" "$root/var/lib/berth-demo"
echo "berth-demo is served by OpenRC" >"$root/srv/berth-demo/index.html"
cat >"$root/etc/init.d/berth-demo" <<'EOT'
#!/sbin/openrc-run
# berth-demo: busybox httpd on port 8080, serving /srv/berth-demo. Each start and stop
# is appended to /var/lib/berth-demo/events with OpenRC's runlevel at that moment
# (still "default" on the way down: OpenRC stops services before it records the new one).
description="busybox httpd on port 8080 (the image's demonstration service)"
command=/bin/busybox
command_args="httpd -f -p 8080 -h /srv/berth-demo"
command_background=yes
pidfile=/run/berth-demo.pid

depend() {
	after networking
}

log_event() {
	echo "$1 $(date +%s) ${RC_RUNLEVEL:-?}" >>/var/lib/berth-demo/events
}

start_post() {
	log_event start
}

stop_post() {
	log_event stop
	sync /var/lib/berth-demo/events
}
EOT
chmod 755 "$root/etc/init.d/berth-demo"
chroot "$root" rc-update add berth-demo default >&2

echo debian >"$root/etc/hostname"
cat >"$root/etc/hosts" <<'EOT'
127.0.0.1	localhost
127.0.1.1	debian
::1		localhost ip6-localhost ip6-loopback
EOT
chroot "$root" passwd -d root >/dev/null
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/var/log/*.log
