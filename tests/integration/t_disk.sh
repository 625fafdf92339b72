#!/bin/bash
# tests/integration/t_disk.sh: disk devices on running busybox containers, against a
# private berthd in its own network and mount namespaces, on a dir pool and a btrfs pool
# (a loop file): a custom volume hot-plugged (berth config device add, lxc storage volume
# attach) shows as the container's root's, which writes, chowns and sees its own ids
# while the host holds them unshifted; unplugged live (berth config device remove, lxc
# storage volume detach), re-attached, kept across `berth restart`, read-only; one volume
# shared with a container of another map (security.idmap.isolated); host paths without
# shift (host root's files are nobody's inside) and with shift=true (they are root's);
# a target that is a file, a missing volume and a missing host path refused with nothing
# stored or mounted. Host mounts and berthd's fds are counted before and after. TAP
# output.
. "$(dirname "$0")/lib.sh"
berth_test_images busybox
: "${BERTH_MONITOR:=$BERTH_BUILDDIR/berth-monitor}"
if [ "$(id -u)" = 0 ]; then
	[ -x "$BERTH_MONITOR" ] || skip_all "no berth-monitor at $BERTH_MONITOR (build it first)"
	command -v mkfs.btrfs >/dev/null || skip_all "mkfs.btrfs not found (apt-get install btrfs-progs)"
	grep -qw btrfs /proc/filesystems || modprobe btrfs 2>/dev/null
	grep -qw btrfs /proc/filesystems || skip_all "kernel without btrfs"
	command -v lxc >/dev/null || skip_all "the lxc client is not installed (lxd-client)"
fi
BERTHD_ENV=(BERTH_MONITOR="$BERTH_MONITOR")
berth_test_init "$@"
export PATH=$BERTH_BUILDDIR:$PATH
export LXD_CONF=$TEST_TMP/lxd-conf
mkdir -p "$LXD_CONF"

# berthd stopped (it unmounts its pools), then what a failed check left mounted
# unmounted and the loop devices detached, before lib.sh removes TEST_TMP.
disk_cleanup()
{
	local st=$?
	daemon_stop
	grep -F " $TEST_TMP/" /proc/self/mountinfo | awk '{print $5}' | sort -r |
		while read -r m; do umount -l "$m"; done
	losetup -a | grep -F "$TEST_TMP/" | cut -d: -f1 | while read -r dev; do
		losetup -d "$dev"
	done
	(exit $st)
	_berth_test_exit
}
trap disk_cleanup EXIT

# inside NAME CMD: a shell command inside the container, its output (stderr too).
inside() { berth exec "$1" -- sh -c "$2" 2>&1; }
# mounted NAME PATH: how many mounts sit on PATH inside NAME; "ERR" when the exec
# itself fails (e.g. the container died), so that an expected 0 cannot pass vacuously.
mounted()
{
	local mi
	mi=$(berth exec "$1" -- cat /proc/self/mountinfo) || { echo ERR; return; }
	printf '%s\n' "$mi" | awk '{print $5}' | grep -cxF "$2"
}
host_mounts() { grep -c . /proc/self/mountinfo; }
ids() { stat -c '%u:%g' "$1" 2>&1; }
pid1() { api GET "/1.0/instances/$1/state"; jget 'j["metadata"]["pid"]'; }
devices() { berth config device list "$1" 2>&1 | tr '\n' ' '; }

check "import the busybox image" berth image import "${IMAGE[busybox]}" --alias busybox
check "create a btrfs pool on a loop file" berth storage create bt btrfs size=512MiB
lxc remote add b "unix://$BERTH_DIR/unix.socket" >/dev/null 2>&1
mounts0=$(host_mounts)
fds0=$(daemon_fds)

# ---- custom volumes, on each pool ----
for pool in default bt; do
	c=c-$pool
	vol=$BERTH_DIR/storage-pools/$pool/custom/default_v1
	check "[$pool] create volume v1" berth storage volume create $pool v1
	check "[$pool] launch $c" berth launch busybox $c -s $pool
	t0=$(date +%s%N)
	check "[$pool] attach v1 while $c runs (berth config device add)" \
		berth config device add $c data disk pool=$pool source=v1 path=/mnt/data
	diag "[$pool] berth config device add took $(( ($(date +%s%N) - t0) / 1000000 )) ms"
	is "$(mounted $c /mnt/data)" 1 "[$pool] /mnt/data is mounted inside at once"
	is "$(inside $c 'stat -c %u:%g /mnt/data')" 0:0 "[$pool] the volume's root is the container root's"
	is "$(inside $c 'touch /mnt/data/f && mkdir /mnt/data/d && chown 1000:1000 /mnt/data/d &&
		touch /mnt/data/d/g && chown 1000:1001 /mnt/data/d/g && echo done')" done \
		"[$pool] the container's root creates and chowns files there"
	like "$(inside $c 'ls -ln /mnt/data /mnt/data/d' | tr '\n' ' ')" \
		'drwxr-xr-x +[0-9]+ +1000 +1000 .* d.*-rw-r--r-- +1 +0 +0 .* f.*-rw-r--r-- +1 +1000 +1001 .* g' \
		"[$pool] ls -ln inside shows the container's ids"
	is "$(ids "$vol/f") $(ids "$vol/d") $(ids "$vol/d/g")" "0:0 1000:1000 1000:1001" \
		"[$pool] the host stores them unshifted"
	touch "$vol/from-host" && chown 1234:4321 "$vol/from-host"
	is "$(inside $c 'stat -c %u:%g /mnt/data/from-host')" 1234:4321 \
		"[$pool] a file the host gives to 1234 is 1234's inside"
	t0=$(date +%s%N)
	check "[$pool] detach it live (berth config device remove)" berth config device remove $c data
	diag "[$pool] berth config device remove took $(( ($(date +%s%N) - t0) / 1000000 )) ms"
	is "$(mounted $c /mnt/data)" 0 "[$pool] /mnt/data is no longer mounted"
	is "$(inside $c 'ls /mnt/data')" "" "[$pool] its files are gone inside"
	is "$(ids "$vol/f")" 0:0 "[$pool] and still on the volume"
	check "[$pool] re-attach with lxc storage volume attach" \
		lxc storage volume attach b:$pool v1 $c data /mnt/data
	is "$(inside $c 'ls /mnt/data | tr "\n" " "')" "d f from-host " "[$pool] the files are back inside"
	like "$(berth storage volume show $pool v1)" "/1.0/instances/$c" "[$pool] v1 is used by $c"
	p0=$(pid1 $c)
	check "[$pool] berth restart $c" berth restart $c
	isnt "$(pid1 $c)" "$p0" "[$pool] $c has a new PID 1"
	is "$(mounted $c /mnt/data)" 1 "[$pool] the volume is still mounted after the restart"
	is "$(inside $c 'touch /mnt/data/after-restart && stat -c %u:%g /mnt/data/after-restart')" 0:0 \
		"[$pool] and still writable by the container's root"
	check "[$pool] detach with lxc storage volume detach" lxc storage volume detach b:$pool v1 $c data
	is "$(mounted $c /mnt/data)" 0 "[$pool] unmounted after lxc storage volume detach"
	check "[$pool] attach it read-only" \
		berth config device add $c ro disk pool=$pool source=v1 path=/srv/ro readonly=true
	like "$(inside $c 'cat /mnt/../srv/ro/d/g; touch /srv/ro/x')" "Read-only file system" \
		"[$pool] writes to the read-only mount fail"
	is "$(inside $c 'ls /srv/ro | tr "\n" " "')" "after-restart d f from-host " "[$pool] it shows the files"
	[ ! -e "$vol/x" ] && pass "[$pool] nothing was written to the volume" ||
		fail "[$pool] nothing was written to the volume"
	check "[$pool] make it writable (berth config device set)" berth config device set $c ro readonly=false
	is "$(inside $c 'touch /srv/ro/x && echo ok')" ok "[$pool] the device is mounted again, writable"
	is "$(mounted $c /srv/ro)" 1 "[$pool] once"
	check "[$pool] remove the device" berth config device remove $c ro
	rm -f "$vol/x"
done

# ---- a volume shared with a container of another map ----
check "launch c-iso (security.idmap.isolated)" \
	berth launch busybox c-iso -c security.idmap.isolated=true
uid_iso=$(inside c-iso 'cat /proc/self/uid_map' | awk '{print $2}')
isnt "$uid_iso" 100000 "c-iso has a map of its own ($uid_iso)"
check "attach v1 to c-default and to c-iso (berth storage volume attach)" sh -c \
	"berth config device add c-default data disk pool=default source=v1 path=/mnt/data &&
	 berth storage volume attach default v1 c-iso data /mnt/data"
is "$(inside c-iso 'stat -c %u:%g /mnt/data /mnt/data/f /mnt/data/d | tr "\n" " "')" "0:0 0:0 1000:1000 " \
	"c-iso sees the same ids as c-default"
inside c-iso 'echo iso > /mnt/data/shared' >/dev/null
is "$(inside c-default 'cat /mnt/data/shared; stat -c %u:%g /mnt/data/shared')" "iso
0:0" "what c-iso's root writes is c-default's root's"
check "stop c-iso with v1 attached" berth stop c-iso
check "start it again" berth start c-iso
is "$(inside c-iso 'cat /mnt/data/shared')" iso "the volume is mounted at start"
check "berth storage volume detach" berth storage volume detach default v1 c-iso data
is "$(mounted c-iso /mnt/data)" 0 "v1 is unmounted from c-iso"
is "$(inside c-default 'cat /mnt/data/shared')" iso "and still mounted in c-default"

# ---- host paths ----
hp=$TEST_TMP/hostdir
mkdir -p "$hp" && touch "$hp/rootfile" && chmod 755 "$hp"
check "attach a host path without shift" \
	berth config device add c-default host disk source="$hp" path=/mnt/host
is "$(inside c-default 'stat -c %u:%g /mnt/host /mnt/host/rootfile | tr "\n" " "')" "65534:65534 65534:65534 " \
	"without shift host root's files are nobody's inside"
like "$(inside c-default 'touch /mnt/host/x')" "Permission denied" "and the container's root cannot write there"
check "attach it with shift=true" \
	berth config device add c-default hshift disk source="$hp" path=/mnt/hshift shift=true
is "$(inside c-default 'stat -c %u:%g /mnt/hshift/rootfile')" 0:0 "with shift=true host uid 0 is 0 inside"
is "$(inside c-default 'touch /mnt/hshift/new && echo ok')" ok "and the container's root writes there"
is "$(ids "$hp/new")" 0:0 "stored as host root's"
check "the same through lxc config device add" \
	lxc config device add b:c-iso hshift disk source="$hp" path=/mnt/hshift shift=true
is "$(inside c-iso 'stat -c %u:%g /mnt/hshift/new')" 0:0 "c-iso's root sees host root's file as its own"
check "lxc config device remove" lxc config device remove b:c-iso hshift
is "$(mounted c-iso /mnt/hshift)" 0 "unmounted inside c-iso"
touch "$TEST_TMP/hostfile"
check "a host file onto a new path" berth config device add c-default hf disk source="$TEST_TMP/hostfile" path=/etc/hostfile readonly=true
is "$(mounted c-default /etc/hostfile)" 1 "the file is mounted"

# ---- refusals: nothing stored, nothing mounted ----
n0=$(mounted c-default /etc/passwd)
# a failed first count must not match a failed second one
case $n0 in '' | *[!0-9]*) n0="a count (first exec failed: $n0)" ;; esac
refuse "a directory onto a file is refused" 'Path "/etc/passwd" exists in the instance and isn'"'"'t a directory' \
	berth config device add c-default bad disk pool=default source=v1 path=/etc/passwd
is "$(mounted c-default /etc/passwd)" "$n0" "nothing was mounted on /etc/passwd"
refuse "a missing volume is refused" 'storage volume "nope" doesn'"'"'t exist on pool "default"' \
	berth config device add c-default bad disk pool=default source=nope path=/mnt/nope
refuse "a missing host path is refused" "Missing source path \"$TEST_TMP/nonexistent\" for disk \"bad\"" \
	berth config device add c-default bad disk source="$TEST_TMP/nonexistent" path=/mnt/nope
refuse "lxc storage volume attach of a missing volume is refused" "doesn't exist" \
	lxc storage volume attach b:default nope c-default nope /mnt/nope
refuse "shift=true on a filesystem without idmapped mounts (procfs) is refused" \
	'idmapped mount of "/proc/sys/kernel": this kernel or filesystem does not support it' \
	berth config device add c-default bad disk source=/proc/sys/kernel path=/mnt/nope shift=true
unlike "$(devices c-default)" "bad|nope" "no refused device is stored"
is "$(inside c-default 'ls -d /mnt/nope 2>&1')" "ls: /mnt/nope: No such file or directory" \
	"no mount point was made for them"
check "the instance config is still valid (a restart works)" berth restart c-default
is "$(mounted c-default /mnt/data)$(mounted c-default /mnt/hshift)$(mounted c-default /etc/hostfile)" 111 \
	"its disks are all mounted again"

# ---- a block volume's directory is never a container's (it holds a VM's disk file) ----
# the device was stored for a filesystem volume whose name now is a block volume's
check "c-iso stops" berth stop -f c-iso
check "create filesystem volume fsb, attach it to c-iso, rename it, a block volume fsb" sh -c \
	"berth storage volume create default fsb &&
	 berth config device add c-iso fsb disk pool=default source=fsb path=/mnt/fsb &&
	 lxc storage volume rename b:default fsb fsb2 &&
	 lxc storage volume create b:default fsb --type=block size=8MiB"
refuse "c-iso does not start with the block volume's directory at /mnt/fsb" \
	'Device "fsb": Custom block volumes cannot be used on containers' berth start c-iso

# ---- clean up ----
for c in c-default c-bt c-iso; do berth delete -f $c >/dev/null 2>&1; done
check "delete the volumes fsb and fsb2" sh -c \
	'berth storage volume delete default fsb && berth storage volume delete default fsb2'
check "delete v1 on both pools" sh -c 'berth storage volume delete default v1 && berth storage volume delete bt v1'
is "$(host_mounts)" "$mounts0" "no mount left on the host"
check_no_fd_leak "$fds0" "berthd holds no more fds than before"
