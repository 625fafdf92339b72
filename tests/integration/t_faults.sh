#!/bin/bash
# tests/integration/t_faults.sh: issue 3's bad input and faults on both drivers: a btrfs
# pool on a small loop file and a dir pool on a small loop-mounted ext4, both made here.
# Tarball entries escaping the volume at unpack time; refused uploads leaving no image
# volume; a full pool during an unpack and during copies failing cleanly with nothing
# left; pools with volumes not deletable; an image deleted under its instances; and
# instances created on a filling pool until one fails, every one that was created
# checked file by file against its image (no file silently zeroed). Synthetic images
# (made here with tar) keep it independent of the image recipes. TAP output.

. "$(dirname "$0")/lib.sh"

if [ "$(id -u)" = 0 ]; then
	command -v mkfs.btrfs >/dev/null || skip_all "mkfs.btrfs not found (apt-get install btrfs-progs)"
	command -v mkfs.ext4 >/dev/null || skip_all "mkfs.ext4 not found"
	grep -qw btrfs /proc/filesystems || modprobe btrfs 2>/dev/null
	grep -qw btrfs /proc/filesystems || skip_all "kernel without btrfs"
fi
berth_test_init "$@"
export PATH=$BERTH_BUILDDIR:$PATH

faults_cleanup()
{
	daemon_stop
	grep -F " $TEST_TMP/" /proc/self/mountinfo | awk '{print $5}' | sort -r |
		while read -r m; do umount -l "$m"; done
	losetup -a | grep -F "$TEST_TMP/" | cut -d: -f1 | while read -r dev; do
		losetup -d "$dev"
	done
	_berth_test_exit
}
trap faults_cleanup EXIT

refuse()
{
	local d=$1 pat=$2
	shift 2
	if out=$("$@" 2>&1); then
		fail "$d (succeeded)" "$out"
	elif printf '%s' "$out" | grep -qE -- "$pat"; then
		pass "$d"
	else
		fail "$d (wrong message)" "$out" "want: $pat"
	fi
}
yes_() { if "$@"; then pass "$T"; else fail "$T"; fi; }
mounts() { grep -cF " $TEST_TMP/" /proc/self/mountinfo; }
loops() { losetup -a | grep -cF "$TEST_TMP/"; }
# (berthbr0's dnsmasq also names a file under $TEST_TMP; it lives as long as the network)
helpers() { pgrep -af -- "$TEST_TMP/" | grep -vc '^[0-9]* dnsmasq ' || true; }

# mkimg NAME MiB: a unified image whose rootfs holds MiB of a pattern that gzip shrinks to
# almost nothing (so the unpack's up-front space check lets it start and the pool fills
# during the unpack) and 200 small files; NAME.sums lists their checksums.
mkimg()
{
	local n=$1 mb=$2 d=$TEST_TMP/img-$1 i
	mkdir -p "$d/rootfs/etc" "$d/templates"
	printf 'architecture: x86_64\ncreation_date: 1700000000\nproperties:\n  os: synthetic\n  release: "%s"\ntemplates:\n  /etc/hostname:\n    when:\n    - create\n    - copy\n    template: hostname.tpl\n' "$n" >"$d/metadata.yaml"
	echo '{{ container.name }}' >"$d/templates/hostname.tpl"
	$PY -c 'import sys; u = (sys.argv[1] + "-").encode() + bytes(range(33, 127)); n = int(sys.argv[2]) << 20; sys.stdout.buffer.write((u * (n // len(u) + 1))[:n])' "$n" "$mb" >"$d/rootfs/big"
	for i in $(seq 200); do echo "$n $i" >"$d/rootfs/etc/f$i"; done
	tar -C "$d" -czf "$TEST_TMP/$n.tar.gz" metadata.yaml templates rootfs
	(cd "$d/rootfs" && find . -type f -print0 | sort -z | xargs -0 sha256sum) >"$TEST_TMP/$n.sums"
	sha256sum "$TEST_TMP/$n.tar.gz" | cut -c1-64 >"$TEST_TMP/$n.fp"
}
# intact POOL INSTANCE IMAGE: the instance's rootfs matches the image file by file.
intact() { (cd "$(pool_path "$1")/containers/default_$2/rootfs" 2>/dev/null && sha256sum -c --quiet "$TEST_TMP/$3.sums" >/dev/null 2>&1); }
# pool_path POOL: where its volumes live.
pool_path()
{
	if [ "$1" = ds ]; then echo "$TEST_TMP/ext4/pool"; else echo "$BERTH_DIR/storage-pools/$1"; fi
}
# empty DESC DIR...: the directories hold nothing (their content shown when they do).
empty()
{
	local d=$1 left
	shift
	left=$(ls -A "$@" 2>&1 | grep -v ':$' | grep .)
	if [ -z "$left" ]; then pass "$d"; else fail "$d" "$(ls -lA "$@" 2>&1)"; fi
}
# fill POOL MiB: a filler file leaving about MiB free on the pool.
fill()
{
	local p free
	p=$(pool_path "$1")
	rm -f "$p/filler"
	sync
	free=$(($(stat -f -c '%a * %S' "$p") / 1048576 - $2))
	[ "$free" -gt 0 ] && dd if=/dev/zero of="$p/filler" bs=1M count="$free" conv=fsync 2>/dev/null
	sync
	true
}
unfill() { rm -f "$(pool_path "$1")/filler"; sync; }
# op_fails DESC METHOD PATH BODY: an async request whose operation fails.
op_fails()
{
	local d=$1
	shift
	api "$@"
	[ "$HTTP_STATUS" = 202 ] && wait_operation "$(jget 'j["operation"]')"
	if [ "$(jget 'j["metadata"]["status"]')" = Failure ] || [ "${HTTP_STATUS:0:1}" = 4 ]; then
		pass "$d"
		diag "$(jget 'j["metadata"]["err"] if "err" in j["metadata"] else j.get("error")')"
	else
		fail "$d" "$HTTP_STATUS $HTTP_BODY"
	fi
}
# nothing_half POOL: no volume set aside or half unpacked on the pool.
nothing_half()
{
	T="$1: nothing half-made left"
	yes_ test -z "$(ls -A "$(pool_path "$1")/containers" "$(pool_path "$1")/custom" "$(pool_path "$1")/images" | grep -E '\.(old|restore|deleting)$|\.unpack-')"
}

mounts0=$(mounts) loops0=$(loops)
check "a btrfs pool on a 256MiB loop file" berth storage create bs btrfs size=256MiB
truncate -s 200M "$TEST_TMP/ext4.img" && mkfs.ext4 -q -F "$TEST_TMP/ext4.img" >/dev/null 2>&1 &&
	mkdir -p "$TEST_TMP/ext4" && mount -o loop "$TEST_TMP/ext4.img" "$TEST_TMP/ext4" &&
	pass "a 200MiB ext4 on a loop device" || fail "a 200MiB ext4 on a loop device"
check "a dir pool on it" berth storage create ds dir source="$TEST_TMP/ext4/pool"
POOLS="bs ds"

# ---- tarball entries escaping the volume, caught at unpack time ----
# The store reads only a tarball's head at import; the unpack checks every entry. Swap a
# stored image's file for a hostile tarball behind the store's back and create instances
# from it.
mkimg small 1
check "import a small image" berth image import "$TEST_TMP/small.tar.gz" --alias small
sfp=$(cat "$TEST_TMP/small.fp")
$PY - "$TEST_TMP" <<'EOF'
import io, sys, tarfile
w = sys.argv[1]
meta = b"architecture: x86_64\ncreation_date: 1700000000\n"
cases = (("dotdot", [("file", "rootfs/../../../../../evil-dotdot", "")]),
         ("abs", [("file", w + "/evil-abs", "")]),
         ("symlink", [("sym", "rootfs/etc", w), ("file", "rootfs/etc/evil-symlink", "")]),
         ("hardlink", [("hard", "rootfs/passwd", "/etc/passwd")]))
for name, entries in cases:
    t = tarfile.open(f"{w}/bad-{name}.tar", "w")
    i = tarfile.TarInfo("metadata.yaml"); i.size = len(meta); t.addfile(i, io.BytesIO(meta))
    i = tarfile.TarInfo("rootfs"); i.type = tarfile.DIRTYPE; t.addfile(i)
    for kind, path, target in entries:
        i = tarfile.TarInfo(path)
        if kind == "file":
            i.size = 1; t.addfile(i, io.BytesIO(b"x"))
        else:
            i.type = tarfile.SYMTYPE if kind == "sym" else tarfile.LNKTYPE
            i.linkname = target; t.addfile(i)
    t.close()
EOF
for pool in $POOLS; do
	for bad in dotdot abs hardlink; do
		cp "$TEST_TMP/bad-$bad.tar" "$BERTH_DIR/images/$sfp"
		op_fails "$pool: an image whose $bad entry escapes is refused at unpack" POST /1.0/instances "{\"name\":\"esc\",\"source\":{\"type\":\"image\",\"alias\":\"small\"},\"devices\":{\"root\":{\"type\":\"disk\",\"path\":\"/\",\"pool\":\"$pool\"}}}"
	done
	T="$pool: nothing was written outside"
	yes_ test ! -e "$TEST_TMP/evil-abs" -a ! -e "$TEST_TMP/evil-symlink" -a ! -e "$BERTH_DIR/evil-dotdot" -a ! -e "$(pool_path $pool)/evil-dotdot" -a ! -e /evil-dotdot
	api GET /1.0/instances/esc
	is "$HTTP_STATUS" 404 "$pool: no instance from the hostile image"
	empty "$pool: no volume and no image volume left" "$(pool_path $pool)/containers" "$(pool_path $pool)/images"
	# An absolute symlink is normal in a rootfs (/bin -> usr/bin); what matters is that
	# nothing is written through it: refused, or kept inside the volume.
	cp "$TEST_TMP/bad-symlink.tar" "$BERTH_DIR/images/$sfp"
	api POST /1.0/instances "{\"name\":\"esc2\",\"source\":{\"type\":\"image\",\"alias\":\"small\"},\"devices\":{\"root\":{\"type\":\"disk\",\"path\":\"/\",\"pool\":\"$pool\"}}}"
	[ "$HTTP_STATUS" = 202 ] && wait_operation "$(jget 'j["operation"]')"
	diag "$pool: symlink then a file through it: $(jget 'j["metadata"]["status"]') $(jget 'j["metadata"]["err"]')"
	T="$pool: nothing written through an absolute symlink"; yes_ test ! -e "$TEST_TMP/evil-symlink"
	berth delete esc2 >/dev/null 2>&1
done
# The symlink image's unpack stays cached on the pools: drop it with its image.
check "delete the hostile image" berth image delete small
check "... and import the real one again" berth image import "$TEST_TMP/small.tar.gz" --alias small

# ---- refused uploads leave no image volume on any pool ----
api POST /1.0/images -d @"$TEST_TMP/small.tar.gz" -H 'Content-Type: application/octet-stream' -H "X-LXD-fingerprint: $(echo "$sfp" | tr 0-9a-f 1-9a-f0)"
[ "$HTTP_STATUS" = 202 ] && wait_operation "$(jget 'j["operation"]')"
like "$(jget 'j["metadata"]["err"]')" "Fingerprint mismatch" "a wrong fingerprint is refused"
# Cut before its rootfs/: an import reads only a tarball's head (one cut later imports,
# and fails at unpack: t_images.sh).
head -c 200 "$TEST_TMP/small.tar.gz" >"$TEST_TMP/trunc.tar.gz"
api POST /1.0/images -d @"$TEST_TMP/trunc.tar.gz" -H 'Content-Type: application/octet-stream'
[ "$HTTP_STATUS" = 202 ] && wait_operation "$(jget 'j["operation"]')"
is "$(jget 'j["metadata"]["status"]')" Failure "a truncated upload is refused"
api GET /1.0/images
is "$(jget 'len(j["metadata"])')" 1 "... and neither left an image row"
T="... nor a file"; yes_ test "$(ls -A "$BERTH_DIR/images" | wc -l)" = 1
for pool in $POOLS; do
	T="$pool: no image volume from refused uploads"; yes_ test -z "$(ls -A "$(pool_path $pool)/images")"
done

# ---- a full pool during an unpack and during copies ----
mkimg huge 40
check "import an image that unpacks to 40MiB" berth image import "$TEST_TMP/huge.tar.gz" --alias huge
for pool in $POOLS; do
	fill $pool 20
	op_fails "$pool: creating from the image on a full pool fails" POST /1.0/instances "{\"name\":\"full-$pool\",\"source\":{\"type\":\"image\",\"alias\":\"huge\"},\"devices\":{\"root\":{\"type\":\"disk\",\"path\":\"/\",\"pool\":\"$pool\"}}}"
	api GET /1.0/instances/full-$pool
	is "$HTTP_STATUS" 404 "$pool: ... and the instance does not exist"
	empty "$pool: ... nor any volume or image volume" "$(pool_path $pool)/containers" "$(pool_path $pool)/images"
	nothing_half $pool
	unfill $pool
	check "$pool: with space again the creation works" berth init huge ok-$pool -s $pool
	T="$pool: ... with every file whole"; yes_ intact $pool ok-$pool huge
done
# an instance copy on dir (a copy of the tree) and a custom volume copy onto btrfs
fill ds 20
op_fails "ds: copying an instance onto a full dir pool fails" POST /1.0/instances '{"name":"cp-ds","source":{"type":"copy","source":"ok-ds"}}'
api GET /1.0/instances/cp-ds
is "$HTTP_STATUS" 404 "ds: ... and the copy does not exist"
T="ds: ... nor its volume"; yes_ test ! -e "$TEST_TMP/ext4/pool/containers/default_cp-ds"
T="ds: ... and the source is whole"; yes_ intact ds ok-ds huge
nothing_half ds
unfill ds
check "a 40MiB custom volume on dir" berth storage volume create ds data
head -c 40M /dev/urandom >"$TEST_TMP/ext4/pool/custom/default_data/blob"
check "... with a snapshot" berth storage volume snapshot ds data s0
fill bs 20
op_fails "bs: copying a volume onto a full btrfs pool fails" POST /1.0/storage-pools/bs/volumes/custom '{"name":"data","source":{"type":"copy","pool":"ds","name":"data"}}'
api GET /1.0/storage-pools/bs/volumes/custom/data
is "$HTTP_STATUS" 404 "bs: ... and the copy has no row"
T="bs: ... nor a volume or snapshot"; yes_ test ! -e "$BERTH_DIR/storage-pools/bs/custom/default_data" -a ! -e "$BERTH_DIR/storage-pools/bs/custom-snapshots/default_data"
nothing_half bs
unfill bs
fill ds 20
op_fails "ds: copying a volume within a full dir pool fails" POST /1.0/storage-pools/ds/volumes/custom '{"name":"data2","source":{"type":"copy","pool":"ds","name":"data"}}'
T="ds: ... nothing left of it"; yes_ test ! -e "$TEST_TMP/ext4/pool/custom/default_data2" -a ! -e "$TEST_TMP/ext4/pool/custom-snapshots/default_data2"
unfill ds

# ---- pools with volumes cannot be deleted ----
for pool in $POOLS; do
	refuse "$pool: deleting a pool holding an instance volume is refused" "currently in use" berth storage delete $pool
done
check "bs: a custom volume" berth storage volume create bs keep
check "bs: ... without instances left" berth delete ok-bs
refuse "bs: deleting a pool holding only a custom volume is refused" "currently in use" berth storage delete bs
T="bs: ... the pool is still mounted"; yes_ test "$(mounts)" -gt "$mounts0"
check "bs: delete the volume" berth storage volume delete bs keep

# ---- an image deleted under its instances ----
for pool in $POOLS; do check "$pool: an instance from the small image" berth init small in-$pool -s $pool; done
check "delete the image" berth image delete small
for pool in $POOLS; do
	api GET /1.0/instances/in-$pool
	is "$HTTP_STATUS" 200 "$pool: the instance survives its image"
	T="$pool: ... with its files whole"; yes_ intact $pool in-$pool small
	T="$pool: ... and the image volume is gone"; yes_ test ! -e "$(pool_path $pool)/images/$sfp"
done
check "delete those instances" berth delete in-bs in-ds ok-ds

# ---- filling pools: every instance that was created is whole ----
# btrfs clones share their image's extents, so each instance there comes from an image
# of its own (each unpack writes new data); on dir each instance is a full copy.
for pool in $POOLS; do
	fill $pool 50
	made=() failed=0
	for i in 1 2 3 4 5 6 7 8; do
		n=$pool-fill$i
		[ "$pool" = bs ] || n=ds-fill
		[ -f "$TEST_TMP/$n.tar.gz" ] || { mkimg "$n" 15; berth image import "$TEST_TMP/$n.tar.gz" --alias "$n" >/dev/null 2>&1; }
		if berth init "$n" f$i-$pool -s $pool >"$TEST_TMP/init.out" 2>&1; then
			made+=("f$i-$pool:$n")
		else
			failed=1
			diag "$pool: instance $i refused: $(tail -n 1 "$TEST_TMP/init.out")"
			break
		fi
	done
	[ "$failed" = 1 ] && pass "$pool: the pool filled up and a creation failed (${#made[@]} made first)" ||
		fail "$pool: the pool filled up and a creation failed"
	bad=
	for m in "${made[@]}"; do intact $pool "${m%%:*}" "${m#*:}" || bad="$bad ${m%%:*}"; done
	T="$pool: every instance created on the filling pool has all its files whole${bad:+ (damaged:$bad)}"
	yes_ test -z "$bad" -a "${#made[@]}" -gt 0
	api GET "/1.0/instances/f$((${#made[@]} + 1))-$pool"
	is "$HTTP_STATUS" 404 "$pool: the refused one does not exist"
	nothing_half $pool
	for m in "${made[@]}"; do berth delete "${m%%:*}" >/dev/null 2>&1 || fail "delete ${m%%:*}"; done
	unfill $pool
done

# ---- tear down ----
api GET /1.0/images
for f in $(jget 'print("\n".join(u.split("/")[-1] for u in j["metadata"]))' | sed '/^None$/d'); do
	berth image delete "$f" >/dev/null 2>&1 || fail "delete image $f"
done
check "delete the custom volume" berth storage volume delete ds data
check "delete the pools" sh -c "berth storage delete ds && berth storage delete bs"
T="no helper process left"; yes_ test "$(helpers)" = 0
daemon_stop
umount "$TEST_TMP/ext4" && pass "the ext4 unmounts (nothing of berthd holds it)" || fail "the ext4 unmounts"
[ "$(mounts)" = "$mounts0" ] && pass "no mount left" || fail "no mount left ($(mounts) vs $mounts0)"
[ "$(loops)" = "$loops0" ] && pass "no loop device left" || fail "no loop device left ($(loops) vs $loops0)"
