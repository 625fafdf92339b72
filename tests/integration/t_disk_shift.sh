#!/bin/bash
# tests/integration/t_disk_shift.sh: custom volumes shifted on disk where idmapped mounts
# are refused (forced with BERTH_MONITOR_NO_IDMAP=1 in berthd's environment), against a
# private berthd in its own network and mount namespaces, on busybox containers: a volume
# hot-plugged into a running container and one attached before its start are shifted
# once to its map (its root owns and writes them, the host holds shifted ids, the map is
# recorded as volatile.idmap.last/next on the volume); a second attach, a restart and a
# stop/start do not shift again; a container with another map
# (security.idmap.isolated) is refused with LXD's error while the first uses the volume,
# with nothing stored and nothing shifted; once the first no longer uses it, the volume
# is shifted to the new container's map; a default-project volume used from a project
# without features.storage.volumes is found, shifted and recorded in "default". TAP output.
. "$(dirname "$0")/lib.sh"
berth_test_images busybox
: "${BERTH_MONITOR:=$BERTH_BUILDDIR/berth-monitor}"
if [ "$(id -u)" = 0 ]; then
	[ -x "$BERTH_MONITOR" ] || skip_all "no berth-monitor at $BERTH_MONITOR (build it first)"
	command -v lxc >/dev/null || skip_all "the lxc client is not installed (lxd-client)"
fi
BERTHD_ENV=(BERTH_MONITOR="$BERTH_MONITOR" BERTH_MONITOR_NO_IDMAP=1)
berth_test_init "$@"
export PATH=$BERTH_BUILDDIR:$PATH
export LXD_CONF=$TEST_TMP/lxd-conf
mkdir -p "$LXD_CONF"

shift_cleanup()
{
	local st=$?
	daemon_stop
	(exit $st)
	_berth_test_exit
}
trap shift_cleanup EXIT

inside() { berth exec "$1" -- sh -c "$2" 2>&1; }
# mounted NAME PATH: how many mounts sit on PATH inside NAME; "ERR" when the exec
# itself fails (e.g. the container died), so that an expected 0 cannot pass vacuously.
mounted()
{
	local mi
	mi=$(berth exec "$1" -- cat /proc/self/mountinfo) || { echo ERR; return; }
	printf '%s\n' "$mi" | awk '{print $5}' | grep -cxF "$2"
}
ids() { stat -c '%u:%g' "$1" 2>&1; }
base() { inside "$1" 'cat /proc/self/uid_map' | awk '{print $2}'; }
last_map() { berth storage volume show default "$1" 2>&1 | grep 'volatile.idmap.last'; }
devices() { berth config device list "$1" 2>&1 | tr '\n' ' '; }

check "import the busybox image" berth image import "${IMAGE[busybox]}" --alias busybox
lxc remote add b "unix://$BERTH_DIR/unix.socket" >/dev/null 2>&1
vol=$BERTH_DIR/storage-pools/default/custom/default_v1
vol2=$BERTH_DIR/storage-pools/default/custom/default_v2

# ---- hot-plug into a running container ----
check "create volume v1" berth storage volume create default v1
check "launch c1" berth launch busybox c1
b=$(base c1)
[ -n "$b" ] && [ "$b" != 0 ] && pass "c1 runs in a user namespace (host base $b)" ||
	fail "c1 runs in a user namespace" "$b"
is "$(ids "$vol")" 0:0 "v1 is unshifted before its first attach"
t0=$(date +%s%N)
check "attach v1 while c1 runs" berth config device add c1 data disk pool=default source=v1 path=/mnt/data
diag "the attach with its shift took $(( ($(date +%s%N) - t0) / 1000000 )) ms"
is "$(mounted c1 /mnt/data)" 1 "/mnt/data is mounted inside"
is "$(inside c1 'stat -c %u:%g /mnt/data')" 0:0 "the volume's root is the container root's"
is "$(inside c1 'touch /mnt/data/f && mkdir /mnt/data/d && chown 1000:1000 /mnt/data/d &&
	echo hi > /mnt/data/d/g && chown 1000:1001 /mnt/data/d/g && echo done')" done \
	"the container's root writes and chowns there"
is "$(ids "$vol") $(ids "$vol/f") $(ids "$vol/d") $(ids "$vol/d/g")" \
	"$b:$b $b:$b $((b + 1000)):$((b + 1000)) $((b + 1000)):$((b + 1001))" \
	"the host holds shifted ids"
like "$(last_map v1)" "volatile.idmap.last: .*\"Hostid\":$b,.*\"Hostid\":$b," \
	"volatile.idmap.last records c1's map"
like "$(berth storage volume show default v1)" "volatile.idmap.next: .*\"Hostid\":$b," \
	"and volatile.idmap.next"
like "$(lxc storage volume show b:default v1)" "volatile.idmap.last: .*Hostid.:$b" \
	"lxc storage volume show shows it too"

# A file the host gives to id 7 would move if the volume were shifted again from scratch.
touch "$vol/canary" && chown 7:7 "$vol/canary"
check "detach v1" berth config device remove c1 data
is "$(mounted c1 /mnt/data)" 0 "unmounted"
check "attach it again (lxc storage volume attach)" lxc storage volume attach b:default v1 c1 data /mnt/data
is "$(ids "$vol/canary") $(ids "$vol/d")" "7:7 $((b + 1000)):$((b + 1000))" "the second attach does not shift again"
is "$(inside c1 'cat /mnt/data/d/g; stat -c %u:%g /mnt/data/d/g')" "hi
1000:1001" "c1 sees its files as before"
check "berth restart c1" berth restart c1
is "$(inside c1 'touch /mnt/data/r && stat -c %u:%g /mnt/data/r /mnt/data/d | tr "\n" " "')" "0:0 1000:1000 " \
	"after a restart the volume is mounted and writable by the container's root"
is "$(ids "$vol/canary") $(ids "$vol/r")" "7:7 $b:$b" "the restart did not shift it again"

# ---- attached before the start ----
check "create volume v2" berth storage volume create default v2
check "stop c1" berth stop c1
check "attach v2 to the stopped c1" berth storage volume attach default v2 c1 v2 /srv/v2
is "$(ids "$vol2")" 0:0 "v2 is not shifted while c1 is stopped"
check "start c1" berth start c1
is "$(inside c1 'stat -c %u:%g /srv/v2; touch /srv/v2/x && echo ok')" "0:0
ok" "at start v2 is the container root's, which writes there"
is "$(ids "$vol2") $(ids "$vol2/x")" "$b:$b $b:$b" "the host holds v2 shifted"
like "$(last_map v2)" "\"Hostid\":$b," "v2's volatile.idmap.last records the map"
is "$(ids "$vol/canary")" 7:7 "v1 was not shifted again at start"

# ---- another map while the volume is in use ----
check "launch c-iso (security.idmap.isolated)" \
	berth launch busybox c-iso -c security.idmap.isolated=true
bi=$(base c-iso)
isnt "$bi" "$b" "c-iso has a map of its own ($bi)"
refuse "c-iso is refused v1 while c1 uses it" \
	'Idmaps of container "c1" and storage volume "v1" are not identical' \
	berth config device add c-iso data disk pool=default source=v1 path=/mnt/data
refuse "the same through lxc storage volume attach" "are not identical" \
	lxc storage volume attach b:default v1 c-iso data /mnt/data
unlike "$(devices c-iso)" "data" "no device is stored on c-iso"
is "$(mounted c-iso /mnt/data)" 0 "nothing is mounted in c-iso"
is "$(ids "$vol/d") $(ids "$vol/canary")" "$((b + 1000)):$((b + 1000)) 7:7" "v1 was not shifted"
like "$(last_map v1)" "\"Hostid\":$b," "its recorded map is still c1's"
is "$(inside c1 'cat /mnt/data/d/g')" hi "c1 still uses it"

# ---- re-shifted once no other instance uses it ----
check "detach v1 from c1" lxc storage volume detach b:default v1 c1 data
check "attach v1 to c-iso" berth config device add c-iso data disk pool=default source=v1 path=/mnt/data
is "$(ids "$vol") $(ids "$vol/d") $(ids "$vol/d/g")" \
	"$bi:$bi $((bi + 1000)):$((bi + 1000)) $((bi + 1000)):$((bi + 1001))" \
	"v1 is shifted to c-iso's map"
is "$(inside c-iso 'stat -c %u:%g /mnt/data /mnt/data/d /mnt/data/d/g | tr "\n" " "; cat /mnt/data/d/g')" \
	"0:0 1000:1000 1000:1001 hi" "c-iso's root sees the files as c1's did"
like "$(last_map v1)" "\"Hostid\":$bi," "volatile.idmap.last records c-iso's map"
refuse "now c1 is refused it" 'Idmaps of container "c-iso" and storage volume "v1" are not identical' \
	berth config device add c1 data disk pool=default source=v1 path=/mnt/data

# ---- a default-project volume used from a project without features.storage.volumes ----
vol3=$BERTH_DIR/storage-pools/default/custom/default_v3
check "create project p2 (features.storage.volumes off)" lxc project create b:p2 \
	-c features.images=false -c features.profiles=false -c features.storage.volumes=false
check "create volume v3 (project default)" berth storage volume create default v3
check "launch c3 in p2" lxc launch b:busybox b:c3 --project p2
b3=$(lxc exec b:c3 --project p2 -- cat /proc/self/uid_map | awk '{print $2}')
check "attach v3 to c3 while it runs (p2)" lxc config device add b:c3 data disk pool=default \
	source=v3 path=/mnt/v3 --project p2
is "$(ids "$vol3")" "$b3:$b3" "v3 is shifted to c3's map"
like "$(last_map v3)" "\"Hostid\":$b3," "the default project's v3 records c3's map"
check "restart c3 (p2) with v3 attached" lxc restart b:c3 --project p2
is "$(lxc exec b:c3 --project p2 -- sh -c 'touch /mnt/v3/y && stat -c %u:%g /mnt/v3/y' 2>&1)" 0:0 \
	"after the restart c3's root writes to v3"
lxc delete -f b:c3 --project p2 >/dev/null 2>&1
check "delete v3" berth storage volume delete default v3

# ---- clean up ----
for c in c1 c-iso; do berth delete -f $c >/dev/null 2>&1; done
check "delete v1 and v2" sh -c 'berth storage volume delete default v1 && berth storage volume delete default v2'
