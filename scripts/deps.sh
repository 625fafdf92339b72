# scripts/deps.sh: the Debian 12 packages berth needs, sourced by setup.sh and test.sh.

# Build and run: the -dev packages pull in the runtime libraries; passwd has
# groupadd (make install creates the berth group), procps has ps; btrfs-progs
# has mkfs.btrfs, which btrfs storage pools run (the rest is kernel ioctls);
# managed networks and nat=true proxy devices run nft; networks run dnsmasq (DHCP, DNS);
# NIC devices run ip and tc (iproute2); squashfs images are unpacked by unsquashfs;
# util-linux has setsid (setup.sh starts berthd with it where systemd is not PID 1).
# libarchive13: berthd is not linked with libarchive but loads libarchive.so.13 when it
# first reads an image, so no link pulls the library in: it is named here. The same goes
# for libcurl4 (libcurl.so.4, loaded at the first download from an image server).
# None of iproute2, squashfs-tools, nftables or dnsmasq-base is in a minimal Debian.
# Virtual machines (doc/vm.md): qemu-system-x86 (qemu-system-x86_64, KVM or TCG),
# qemu-utils (qemu-img: disk images), ovmf (UEFI firmware, /usr/share/OVMF); test_qmp
# and test_qemu_config run the real QEMU too.
# musl-tools: musl-gcc, which links berth-agent (the program inside VMs) statically.
# isal (igzip) and pigz: publish and backups make gzip with the first there, on every CPU.
# rsync: migrations between hosts send volumes with it, as LXD's protocol does.
# libdqlite-dev (optional, configure --with-dqlite): test_dqlite_node runs a real dqlite
# node against berth's dqlite client (doc/clustering.md).
BUILD_DEPS=(
	autoconf automake libtool make gcc pkg-config musl-tools
	libuv1-dev libsqlite3-dev libjansson-dev libyaml-dev libhttp-parser-dev
	libwslay-dev libssl-dev libarchive-dev libseccomp-dev libapparmor-dev
	libcurl4-openssl-dev
	libarchive13 libcurl4 passwd procps util-linux btrfs-progs
	nftables dnsmasq-base iproute2 squashfs-tools
	qemu-system-x86 qemu-utils ovmf isal pigz
	rsync
	libdqlite-dev
)

# What images/build and the debian-12 recipe run (setup.sh builds debian/12): debootstrap,
# xz (the recipe's compression; gzip is essential), zstd (recipes that ask for it), and
# the CA certificates an https mirror in the apt sources needs.
IMAGE_DEPS=(
	debootstrap xz-utils zstd ca-certificates
)

# What the VM image recipe (debian-12-vm: images/vmdisk makes its disk without loop
# devices) and a VM boot need: sfdisk (fdisk), mkfs.vfat (dosfstools), mcopy (mtools),
# qemu-img (qemu-utils), QEMU itself and OVMF's UEFI firmware. t_vm_image.sh and
# bench/vm-boot use them; debugfs and mkfs.ext4 -d are e2fsprogs' (in every Debian).
VM_DEPS=(
	fdisk dosfstools mtools qemu-utils qemu-system-x86 ovmf
)

# README command 1 (scripts/setup.sh) installs these.
SETUP_DEPS=("${BUILD_DEPS[@]}" "${IMAGE_DEPS[@]}")

# And these where it installs berth as the Debian package (systemd as PID 1): what
# `make deb` (dpkg-buildpackage, dh) runs; debian/control's Build-Depends are BUILD_DEPS.
DEB_BUILD_DEPS=(
	debhelper dpkg-dev
)

# Tests on top: cmocka (unit), clang and its runtimes (clang build, fuzzing),
# the stock lxc client, ip and unshare (namespaces), python3 (rawhttp.py),
# and what the image recipes and t_images.sh use (debootstrap, mksquashfs, xz, zstd);
# python3-pylxd for t_pylxd.sh (it runs under Debian's /usr/bin/python3);
# curl for t_containers.sh, t_files.sh and t_instances.sh (HTTP on the unix socket).
# dnsmasq-base: t_nic.sh serves DHCP on the bridge it makes in its namespace.
# busybox-static: udhcpc, nslookup and nc in t_networks.sh.
# python3-yaml and bzip2: t_backup_export.sh parses backup/index.yaml and exports with bzip2.
# lxd: t_backup_lxd.sh imports berth's exports into an LXD 5.0.2 daemon of its own, and
# t_backup_import.sh's full run has one export a container berth imports (each in the
# test's own namespaces and state dir, never the host's /var/lib/lxd).
# apparmor: apparmor_parser, which test_apparmor runs (-Q, no kernel support needed) on
# the generated profiles.
# clang-format: `make format` and `make format-check` (.clang-format).
# man-db and groff-base: tests/lint/t_man.sh renders the generated man pages (man -l).
# VM_DEPS: the VM image recipe and t_vm_image.sh (above).
# PACKAGE_DEPS: `make deb` (debhelper, with dpkg-dev), lintian over the package, and
# t_deb.sh's boot of a root with it under systemd-nspawn (systemd-container);
# systemd's systemd-socket-activate for t_socket_activation.sh.
PACKAGE_DEPS=(
	debhelper lintian systemd-container systemd
)
TEST_DEPS=(
	"${SETUP_DEPS[@]}"
	libcmocka-dev clang libclang-rt-14-dev clang-format
	lxd-client lxd iproute2 util-linux python3 curl
	debootstrap squashfs-tools xz-utils zstd
	python3-pylxd python3-yaml bzip2
	dnsmasq-base
	busybox-static
	apparmor
	man-db groff-base
	"${VM_DEPS[@]}"
	"${PACKAGE_DEPS[@]}"
)
