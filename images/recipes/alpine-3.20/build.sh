#!/bin/sh
# alpine-3.20: Alpine Linux 3.20 bootstrapped with apk.static, OpenRC as init (busybox
# init starting openrc), busybox udhcpc taking DHCP on eth0 through ifupdown-ng.
# Usage: build.sh ROOTFS (an empty directory).
#
# For hosts that reach an Alpine mirror: $BERTH_ALPINE_MIRROR (default
# https://dl-cdn.alpinelinux.org/alpine). The mirror is probed first, so a host without a
# route to it fails at once with "mirror ... unreachable".
# Packages are verified: apk needs Alpine's signing keys (the *.rsa.pub files of an
# Alpine host's /etc/apk/keys, or of the alpine-keys package) in $BERTH_ALPINE_KEYS
# (default /etc/apk/keys). apk.static itself comes unverified from the mirror, so the
# recipe has it verify its own package against those keys before using it.
# The test suite never builds this recipe.
set -eu
root=$(cd "$1" && pwd)
branch=v3.20
mirror=${BERTH_ALPINE_MIRROR:-https://dl-cdn.alpinelinux.org/alpine}
mirror=${mirror%/}
keys=${BERTH_ALPINE_KEYS:-/etc/apk/keys}

die() { echo "alpine-3.20: $*" >&2; exit 1; }

command -v curl >/dev/null || die "curl is missing (apt-get install curl)"
case $(uname -m) in
x86_64) arch=x86_64 ;;
*) die "this recipe builds x86_64 images only (host is $(uname -m))" ;;
esac
repo=$mirror/$branch/main
work=$(mktemp -d "${TMPDIR:-/tmp}/berth-alpine.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

if ! curl -fsS --max-time 15 -o "$work/APKINDEX.tar.gz" "$repo/$arch/APKINDEX.tar.gz" 2>/dev/null; then
	die "mirror $mirror unreachable (no $repo/$arch/APKINDEX.tar.gz);" \
		"this recipe needs a host that reaches an Alpine mirror (set BERTH_ALPINE_MIRROR)"
fi
ls "$keys"/*.rsa.pub >/dev/null 2>&1 ||
	die "no Alpine signing keys (*.rsa.pub) in $keys (set BERTH_ALPINE_KEYS)"

# The index names the current apk-tools-static: "P:" package, "V:" its version.
ver=$(tar -xzOf "$work/APKINDEX.tar.gz" APKINDEX |
	awk '/^P:/ {p = substr($0, 3)} /^V:/ && p == "apk-tools-static" {print substr($0, 3); exit}')
[ -n "$ver" ] || die "apk-tools-static is not in $repo/$arch/APKINDEX.tar.gz"
curl -fsS --max-time 120 -o "$work/apk-tools-static.apk" \
	"$repo/$arch/apk-tools-static-$ver.apk" || die "cannot download apk-tools-static-$ver.apk"
tar -C "$work" -xzf "$work/apk-tools-static.apk" sbin/apk.static 2>/dev/null ||
	die "apk-tools-static-$ver.apk holds no sbin/apk.static"
"$work/sbin/apk.static" --keys-dir "$keys" verify "$work/apk-tools-static.apk" >&2 ||
	die "apk-tools-static-$ver.apk is not signed by a key in $keys"

mkdir -p "$root/etc/apk/keys"
cp "$keys"/*.rsa.pub "$root/etc/apk/keys/"
printf '%s\n' "$repo" "$mirror/$branch/community" >"$root/etc/apk/repositories"
"$work/sbin/apk.static" --root "$root" --arch "$arch" --initdb --update-cache \
	--repositories-file "$root/etc/apk/repositories" --keys-dir "$root/etc/apk/keys" \
	add alpine-base ifupdown-ng >&2

cat >"$root/etc/network/interfaces" <<'EOT'
auto lo
iface lo inet loopback

auto eth0
iface eth0 inet dhcp
EOT
# OpenRC in a container: no hardware clock, no kernel modules, no gettys on ttys.
sed -i 's/^#\{0,1\}rc_sys=.*/rc_sys="lxc"/' "$root/etc/rc.conf"
sed -i -e 's/^tty[0-9]/#&/' "$root/etc/inittab"
for svc in bootmisc:boot hostname:boot syslog:boot networking:default crond:default \
	killprocs:shutdown savecache:shutdown; do
	mkdir -p "$root/etc/runlevels/${svc#*:}"
	ln -sf "/etc/init.d/${svc%:*}" "$root/etc/runlevels/${svc#*:}/${svc%:*}"
done

echo alpine >"$root/etc/hostname"
cat >"$root/etc/hosts" <<'EOT'
127.0.0.1	localhost
127.0.1.1	alpine
::1		localhost ip6-localhost ip6-loopback
EOT
# Root without a password, like the other recipes: the console is reached through berth.
sed -i 's/^root:[^:]*:/root::/' "$root/etc/shadow"
rm -rf "$root"/var/cache/apk/*
