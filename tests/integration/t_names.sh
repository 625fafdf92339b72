#!/bin/bash
# t_names.sh: file names are bytes. The busybox image (a pax tarball, as LXD's are) carries
# names in UTF-8, Latin-1, with a space, a newline, a backslash, a long one, a Latin-1
# directory and links (images/recipes/busybox). Whatever the locale berthd and the CLIs
# run under (C, C.UTF-8, none; en_US.ISO-8859-1 where it exists), the image imports and
# launches, and the instance's files match what the recipe made byte for byte (names,
# contents, link targets, hardlinks);
# so do a snapshot, a copy, and a launch from the image exported and imported again.
# `berth file` and `lxc file` push and pull such names (paths in the query string).
. "$(dirname "$0")/lib.sh"
berth_test_images busybox
berth_test_init "$@"
export LXD_CONF=$TEST_TMP/lxd-conf
mkdir -p "$LXD_CONF"

img=${IMAGE[busybox]}
sub=usr/share/berth-names
pool=$BERTH_DIR/storage-pools/default

# manifest DIR: one line per entry below DIR, names as hex, with type, size, contents'
# hash, link target (hex) and hardlink group; fails when DIR holds fewer than 10 entries.
manifest()
{
	$PY - "$1" <<'EOF'
import hashlib, os, sys
root = os.fsencode(sys.argv[1])
lines, inodes = [], {}
for d, dirs, files in os.walk(root):
    for n in dirs + files:
        p = os.path.join(d, n)
        st = os.lstat(p)
        rel = os.path.relpath(p, root)
        if os.path.islink(p):
            what = "l " + os.readlink(p).hex()
        elif os.path.isdir(p):
            what = "d"
        else:
            data = open(p, "rb").read()
            group = inodes.setdefault(st.st_ino, len(inodes))
            what = "f %d %s h%d" % (len(data), hashlib.sha256(data).hexdigest()[:16], group)
        lines.append("%s %s %o" % (rel.hex(), what, st.st_mode & 0o7777))
if len(lines) < 10:
    sys.exit("only %d entries below %s" % (len(lines), sys.argv[1]))
print("\n".join(sorted(lines)))
EOF
}
# same_tree DESC DIR: DIR's manifest is the recipe's.
same_tree()
{
	local got
	if got=$(manifest "$2" 2>&1) && [ "$got" = "$REF" ]; then
		pass "$1"
	else
		fail "$1" "$(diff <(printf '%s\n' "$REF") <(printf '%s\n' "$got") | head -20)"
	fi
}
# in_locale LOC CMD...: CMD with LC_ALL=LOC, or with no locale variable at all for "none".
in_locale()
{
	local loc=$1
	shift
	if [ "$loc" = none ]; then
		env -u LC_ALL -u LANG -u LC_CTYPE "$@"
	else
		LC_ALL=$loc "$@"
	fi
}

# ---- the image: pax, with the names in pax records ----
ok "the busybox image is a pax tarball with the odd names in pax path records" \
	$PY -c '
import sys, tarfile
t = tarfile.open(sys.argv[1], encoding="utf-8", errors="surrogateescape")
m = [x for x in t.getmembers() if "berth-names/long-" in x.name]
sys.exit(0 if m and "path" in m[0].pax_headers else 1)' "$img"
mkdir -p "$TEST_TMP/ref"
tar -C "$TEST_TMP/ref" -xzf "$img" "rootfs/$sub"
REF=$(manifest "$TEST_TMP/ref/rootfs/$sub") || bail_out "the recipe's names are missing: $REF"

# ---- import and launch in each locale (berthd's and the CLI's) ----
# A Latin-1 locale too where the host has one (Debian's locales package makes it).
LOCALES=(C C.UTF-8 none)
locale -a 2>/dev/null | grep -qix 'en_US.iso88591' && LOCALES+=(en_US.ISO-8859-1)
i=0
for loc in "${LOCALES[@]}"; do
	i=$((i + 1))
	daemon_stop
	if [ "$loc" = none ]; then
		BERTHD_ENV=(-u LC_ALL -u LANG -u LC_CTYPE)
	else
		BERTHD_ENV=(LC_ALL="$loc")
	fi
	daemon_start
	run in_locale "$loc" "$BERTH" image import "$img" --alias bb
	rc_ok "[$loc] berth image import"
	run in_locale "$loc" "$BERTH" launch bb "n$i"
	rc_ok "[$loc] berth launch of the image with odd names"
	same_tree "[$loc] the instance's files match the recipe's byte for byte" \
		"$pool/containers/default_n$i/rootfs/$sub"
	run in_locale "$loc" "$BERTH" image delete bb
done
unset BERTHD_ENV

# ---- snapshot, copy ----
run "$BERTH" snapshot n1 s0
rc_ok "snapshot of the instance"
same_tree "the snapshot holds the names byte for byte" \
	"$pool/containers-snapshots/default_n1/s0/rootfs/$sub"
run "$BERTH" copy n1 n1copy
rc_ok "copy of the instance"
same_tree "the copy holds the names byte for byte" "$pool/containers/default_n1copy/rootfs/$sub"
run "$BERTH" copy n1/s0 n1snapcopy
same_tree "a copy of the snapshot holds the names byte for byte" \
	"$pool/containers/default_n1snapcopy/rootfs/$sub"

# ---- export, import again, launch ----
run "$BERTH" image import "$img" --alias bb
mkdir -p "$TEST_TMP/exp"
run "$BERTH" image export bb "$TEST_TMP/exp"
ok "the image exports byte for byte" cmp "$img" "$TEST_TMP/exp/$(cat "$T_IMAGES/busybox.fp").tar.gz"
run "$BERTH" image delete bb
run "$BERTH" image import "$TEST_TMP/exp/$(cat "$T_IMAGES/busybox.fp").tar.gz" --alias bb
rc_ok "the exported image imports again"
run "$BERTH" launch bb nexp
same_tree "a launch from the re-imported image holds the names byte for byte" \
	"$pool/containers/default_nexp/rootfs/$sub"

# ---- file push and pull (paths in the query string), berth and lxc, in two locales ----
names=("$(printf 'caf\351')" "$(printf 'new\nline')" "with space" 'back\slash'
	"NetLock_Arany_=Class_Gold=_F$(printf '\305\221tan\303\272s\303\255tv\303\241ny').pem"
	"$(printf 'r\351pertoire/\303\251t\303\251')")
root=$pool/containers/default_n1/rootfs
lxc remote add b "unix://$BERTH_SOCKET" >/dev/null 2>&1
for loc in "${LOCALES[@]}"; do
	for cli in berth lxc; do
		cmd=$BERTH
		[ $cli = lxc ] && cmd=lxc
		if [ $cli = lxc ] && ! command -v lxc >/dev/null; then
			skip "[$loc] lxc file pull and push of odd names" "lxc not installed"
			continue
		fi
		target=n1 bad=
		[ $cli = lxc ] && target=b:n1
		rm -rf "$TEST_TMP/pull" "$TEST_TMP/push"
		mkdir -p "$TEST_TMP/pull" "$TEST_TMP/push"
		for n in "${names[@]}"; do
			base=${n##*/}
			if ! in_locale "$loc" "$cmd" file pull "$target/$sub/$n" "$TEST_TMP/pull/" \
				>"$TEST_TMP/out" 2>&1; then
				bad+="pull '$n': $(cat "$TEST_TMP/out"); "
			elif [ "$(cat "$TEST_TMP/pull/$base")" != "$n" ]; then
				bad+="pull '$n': wrong contents; "
			fi
			printf '%s pushed by %s' "$base" "$cli" >"$TEST_TMP/push/$base"
			if ! in_locale "$loc" "$cmd" file push "$TEST_TMP/push/$base" \
				"$target/root/$cli-$base" >"$TEST_TMP/out" 2>&1; then
				bad+="push '$n': $(cat "$TEST_TMP/out"); "
			elif ! cmp -s "$TEST_TMP/push/$base" "$root/root/$cli-$base"; then
				bad+="push '$n': not in the instance under its name; "
			fi
			rm -f "$root/root/$cli-$base"
		done
		if [ -z "$bad" ]; then
			pass "[$loc] $cli file pull and push of odd names, byte for byte"
		else
			fail "[$loc] $cli file pull and push of odd names, byte for byte" "$bad"
		fi
	done
done

# A directory listing is JSON: a name that is not UTF-8 is listed as LXD lists it (U+FFFD
# for each bad byte), not left out; an error names a path printably, in valid JSON.
want=$($PY -c 'import os,sys; print(len(os.listdir(sys.argv[1])))' "$TEST_TMP/ref/rootfs/$sub")
api GET "/1.0/instances/n1/files?path=/$sub"
is "$(jget 'len(j["metadata"])'),$(jget '"caf\ufffd" in j["metadata"]')" "$want,true" \
	"a directory listing keeps a Latin-1 name, as U+FFFD"
run in_locale C "$BERTH" file pull "n1/root/$(printf 'absent\351')" "$TEST_TMP/pull/"
like "$ERR" 'absent\\xe9": not found' "pulling a missing Latin-1 name: a clear error naming it"
api GET "/1.0/instances/n1/files?path=/root/absent%E9%0A"
is "$HTTP_STATUS,$(jget 'j["error"]')" '404,Cannot read "/root/absent\xe9\n": not found' \
	"the error JSON quotes the name's bytes"

# The lifecycle event of a pull names the path as LXD would (U+FFFD for a Latin-1 byte).
"$BERTH" monitor --type=lifecycle >"$TEST_TMP/monitor" 2>&1 &
mon=$!
sleep 1
run "$BERTH" file pull "n1/$sub/$(printf 'caf\351')" "$TEST_TMP/pull/"
for _ in $(seq 50); do
	grep -q 'instance-file-retrieved' "$TEST_TMP/monitor" && break
	sleep 0.1
done
kill "$mon" 2>/dev/null
wait "$mon" 2>/dev/null
like "$(cat "$TEST_TMP/monitor")" "path: /$sub/caf$(printf '\357\277\275')" \
	"the file-retrieved event carries the Latin-1 path, as U+FFFD"

run "$BERTH" delete -f $(seq -f 'n%g' "$i") n1copy n1snapcopy nexp
rc_ok "the instances delete"
