#!/bin/bash
# tests/integration/t_files.sh: the files API of a (stopped) container made from the
# busybox image, through raw HTTP (curl on the unix socket, to see the X-LXD-* headers)
# and the stock lxc client: reads, writes (overwrite, append, uid/gid/mode only on
# create), directories, symlinks, deletes, recursive push and pull, ownership through a
# berth-shift marker, a 64 MiB file streamed both ways, and escapes out of the rootfs
# (absolute and relative symlinks, "..") that must neither read nor write the host.
# Mounts, cgroups, processes and berthd's fds are counted before and after. TAP output.
if [ -z "${BERTH_IN_NETNS:-}" ] && [ "$(id -u)" = 0 ]; then
	T_FILES_OUT=$(mktemp -d /tmp/berth-t-files.XXXXXX)
	srcdir=${BERTH_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
	"$srcdir/images/build" busybox "$T_FILES_OUT" >"$T_FILES_OUT/fp" 2>"$T_FILES_OUT/log" ||
		rm -f "$T_FILES_OUT/fp"
	export T_FILES_OUT
fi

. "$(dirname "$0")/lib.sh"
[ -n "${BERTH_IN_NETNS:-}" ] && trap 'rm -rf "$T_FILES_OUT"' EXIT
if [ "$(id -u)" = 0 ]; then
	[ -s "$T_FILES_OUT/fp" ] || skip_all "the busybox image could not be built: $(tail -n 1 "$T_FILES_OUT/log")"
	command -v curl >/dev/null || skip_all "curl not installed"
fi
berth_test_init "$@"
export PATH=$BERTH_BUILDDIR:$PATH
export LXD_CONF=$TEST_TMP/lxd-conf
mkdir -p "$LXD_CONF"
HOSTMARK=$(mktemp /tmp/berth-hostmark.XXXXXX)
HOSTDIR=$(mktemp -d /tmp/berth-hostdir.XXXXXX)
echo "HOST-SECRET-$$" >"$HOSTMARK"

files_cleanup()
{
	rm -f "$HOSTMARK"
	rm -rf "$HOSTDIR" "$T_FILES_OUT"
	_berth_test_exit
}
trap files_cleanup EXIT

mounts() { own_mounts; }
CGH=berth-$(printf '%s' "$BERTH_DIR" | sha256sum | cut -c1-8)
cgroups() { find /sys/fs/cgroup -maxdepth 3 -type d -name "$CGH" 2>/dev/null | wc -l; }
procs() { pgrep -c -P "$DAEMON_PID"; }

# F METHOD PATH [curl args]: a request with curl; sets HTTP_STATUS, HDR (the response
# headers, lowercased names) and writes the body to $TEST_TMP/body (also in HTTP_BODY
# when small).
F()
{
	local m=$1 p=$2
	shift 2
	HTTP_STATUS=$(curl -s -o "$TEST_TMP/body" -D "$TEST_TMP/hdr" -w '%{http_code}' \
		--unix-socket "$BERTH_SOCKET" -X "$m" "$@" "http://b$p")
	HDR=$(tr -d '\r' <"$TEST_TMP/hdr" | sed 's/^\([^:]*\):/\L\1:/')
	HTTP_BODY=
	[ "$(stat -c %s "$TEST_TMP/body")" -lt 65536 ] && HTTP_BODY=$(cat "$TEST_TMP/body")
	return 0
}
hdr() { printf '%s\n' "$HDR" | sed -n "s/^$1: //p"; }
up() { F POST "/1.0/instances/c1/files?path=$1" -H 'Content-Type: application/octet-stream' "${@:2}"; }
not_same() { ! cmp -s "$1" "$2"; }
own() { stat -c '%u:%g:%a' "$1"; }

mounts0=$(mounts)
cgroups0=$(cgroups)
procs0=$(procs)
fds0=$(daemon_fds)

check "import the busybox image" berth image import "$T_FILES_OUT/busybox.tar.gz" --alias busybox
api POST /1.0/instances '{"name":"c1","source":{"type":"image","alias":"busybox"}}'
wait_operation "$(jget 'j["operation"]')"
is "$(jget 'j["metadata"]["status"]')" Success "create c1 from busybox"
api POST /1.0/instances '{"name":"empty","source":{"type":"none"}}'
wait_operation "$(jget 'j["operation"]')"
V=$BERTH_DIR/storage-pools/default/containers/default_c1
R=$V/rootfs
ok "c1's rootfs exists" test -x "$R/bin/busybox"

api GET /1.0
for e in directory_manipulation file_delete file_append file_symlinks file_get_symlink instance_file_head; do
	is "$(jget "'$e' in j['metadata']['api_extensions']")" true "extension $e advertised"
done

# ---- raw HTTP: files ----
up /root/hello.txt --data-binary 'hello world' -H 'X-LXD-uid: 1000' -H 'X-LXD-gid: 1001' -H 'X-LXD-mode: 0640'
is "$HTTP_STATUS" 200 "POST a new file"
is "$(cat "$R/root/hello.txt")" "hello world" "... its content is on disk"
is "$(own "$R/root/hello.txt")" 1000:1001:640 "... with the uid, gid and mode asked"
F GET "/1.0/instances/c1/files?path=/root/hello.txt"
is "$HTTP_STATUS:$HTTP_BODY" "200:hello world" "GET the file back"
is "$(hdr x-lxd-uid):$(hdr x-lxd-gid):$(hdr x-lxd-mode):$(hdr x-lxd-type)" "1000:1001:0640:file" "... with X-LXD-uid/gid/mode/type"
like "$(hdr content-type)" 'application/octet-stream' "... as application/octet-stream"
like "$(hdr x-lxd-modified)" '^[0-9]{4}-[0-9]{2}-[0-9]{2}T' "... and X-LXD-modified"
F HEAD "/1.0/instances/c1/files?path=/root/hello.txt" -I
is "$HTTP_STATUS:$(hdr x-lxd-type):$(hdr content-length)" "200:file:11" "HEAD gives the headers and the length"
up /root/hello.txt --data-binary 'second' -H 'X-LXD-uid: 0' -H 'X-LXD-gid: 0' -H 'X-LXD-mode: 0600'
is "$HTTP_STATUS:$(cat "$R/root/hello.txt")" "200:second" "POST over an existing file replaces its content"
is "$(own "$R/root/hello.txt")" 1000:1001:640 "... and keeps its owner and mode (5.0.2)"
up /root/hello.txt --data-binary '+more' -H 'X-LXD-write: append'
is "$HTTP_STATUS:$(cat "$R/root/hello.txt")" "200:second+more" "X-LXD-write: append appends"
is "$(own "$R/root/hello.txt")" 1000:1001:640 "... keeping owner and mode"
up /root/new-append --data-binary 'first' -H 'X-LXD-write: append' -H 'X-LXD-mode: 420'
is "$HTTP_STATUS:$(cat "$R/root/new-append"):$(own "$R/root/new-append")" "200:first:0:0:644" "append creates a missing file; decimal mode 420 is 0644"
up /root/defaults --data-binary 'x'
is "$(own "$R/root/defaults")" 0:0:644 "a file pushed without headers is root's, 0644"
up /root/empty --data-binary ''
F GET "/1.0/instances/c1/files?path=/root/empty"
is "$HTTP_STATUS:$(stat -c %s "$TEST_TMP/body"):$(hdr content-length)" "200:0:0" "an empty file goes both ways"
up /root/hello.txt --data-binary 'x' -H 'X-LXD-write: sideways'
is "$HTTP_STATUS" 400 "a bad X-LXD-write is a 400"
up /root/hello.txt --data-binary 'x' -H 'X-LXD-type: fifo'
is "$HTTP_STATUS" 400 "a bad X-LXD-type is a 400"
up /nonexistent/dir/file --data-binary 'x'
is "$HTTP_STATUS" 404 "writing under a missing directory is a 404"
up /root --data-binary 'x'
is "$HTTP_STATUS" 400 "writing a file over a directory is a 400"
is "$(find "$R" -name '.berth-file-*' | wc -l)" 0 "no temp file left in the rootfs"

# ---- directories ----
up /root/d1 -H 'X-LXD-type: directory' -H 'X-LXD-uid: 5' -H 'X-LXD-gid: 6'
is "$HTTP_STATUS:$(own "$R/root/d1")" "200:5:6:750" "POST a directory (default mode 0750)"
up /root/d1 -H 'X-LXD-type: directory' -H 'X-LXD-mode: 0700'
is "$HTTP_STATUS:$(own "$R/root/d1")" "200:5:6:750" "POST an existing directory succeeds and changes nothing"
up /root/d1/inner --data-binary 'in'
F GET "/1.0/instances/c1/files?path=/root/d1"
is "$HTTP_STATUS:$(hdr x-lxd-type):$(hdr x-lxd-uid):$(hdr x-lxd-mode)" "200:directory:5:0750" "GET a directory: headers"
is "$(jget 'j["type"] + ":" + ",".join(sorted(j["metadata"]))')" "sync:inner" "... a sync JSON list of its entries"
F GET "/1.0/instances/c1/files?path=/"
is "$(jget '"bin" in j["metadata"] and "." not in j["metadata"]')" true "GET / lists the rootfs"

# ---- symlinks ----
up /root/lnk -H 'X-LXD-type: symlink' --data-binary 'd1/inner'
is "$HTTP_STATUS:$(readlink "$R/root/lnk")" "200:d1/inner" "POST a symlink"
up /root/lnk -H 'X-LXD-type: symlink' --data-binary 'd1/inner'
is "$HTTP_STATUS" 200 "POST the same symlink again is fine"
F GET "/1.0/instances/c1/files?path=/root/lnk"
is "$HTTP_STATUS:$(hdr x-lxd-type):$HTTP_BODY" "200:symlink:/root/d1/inner" "GET a symlink: its absolute target"
up /root/lnk --data-binary 'through'
is "$(cat "$R/root/d1/inner"):$(readlink "$R/root/lnk")" "through:d1/inner" "writing a file through a symlink writes its target"

# ---- delete ----
F DELETE "/1.0/instances/c1/files?path=/root/d1"
is "$HTTP_STATUS" 400 "DELETE of a non-empty directory is refused"
F DELETE "/1.0/instances/c1/files?path=/root/lnk"
is "$HTTP_STATUS:$(test -e "$R/root/lnk" -o -L "$R/root/lnk" && echo there)" "200:" "DELETE a symlink"
ok "... not its target" test -f "$R/root/d1/inner"
F DELETE "/1.0/instances/c1/files?path=/root/d1/inner"
F DELETE "/1.0/instances/c1/files?path=/root/d1"
is "$HTTP_STATUS:$(test -e "$R/root/d1" && echo there)" "200:" "DELETE an emptied directory"
expect_error 404 "DELETE of a missing file is a 404" DELETE "/1.0/instances/c1/files?path=/root/nope"
expect_error 400 "DELETE of / is refused" DELETE "/1.0/instances/c1/files?path=/"
expect_error 400 "a request without path is a 400" GET "/1.0/instances/c1/files"
expect_error 404 "GET of a missing file is a 404" GET "/1.0/instances/c1/files?path=/root/nope"
expect_error 404 "an unknown instance is a 404" GET "/1.0/instances/nope/files?path=/"
expect_error 400 "an instance without a rootfs is a 400" GET "/1.0/instances/empty/files?path=/"

# ---- escapes ----
hm=$(basename "$HOSTMARK")
ln -s "$HOSTMARK" "$R/abs-file"
ln -s /tmp "$R/abs-tmp"
ln -s ../../../../../../../.. "$R/root/up"
ln -s /etc/passwd "$R/passwd-link"
F GET "/1.0/instances/c1/files?path=/abs-tmp/$hm"
is "$HTTP_STATUS" 404 "an absolute symlink to /tmp resolves inside the rootfs (host file not found)"
F GET "/1.0/instances/c1/files?path=/root/up$HOSTMARK"
is "$HTTP_STATUS" 404 "a relative symlink climbing out stays inside"
F GET "/1.0/instances/c1/files?path=/../../../../../..$HOSTMARK"
is "$HTTP_STATUS" 404 "\"..\" in the path stays inside"
F GET "/1.0/instances/c1/files?path=/root/up/etc/passwd"
is "$HTTP_STATUS:$(cmp -s "$TEST_TMP/body" "$R/etc/passwd" && echo same)" "200:same" "../.. then /etc/passwd is the container's /etc/passwd"
ok "... not the host's" not_same "$TEST_TMP/body" /etc/passwd
F GET "/1.0/instances/c1/files?path=/passwd-link"
is "$HTTP_STATUS:$HTTP_BODY" "200:/etc/passwd" "GET of a link to /etc/passwd gives the link, not the host file"
up /abs-file --data-binary 'PWNED'
is "$(cat "$HOSTMARK")" "HOST-SECRET-$$" "writing through an absolute link to a host file leaves the host file alone"
is "$(cat "$R$HOSTMARK" 2>/dev/null)" "PWNED" "... and writes inside the rootfs"
up "/root/up$HOSTDIR/evil" --data-binary 'PWNED'
ok "writing through ../.. to a host directory does not touch it" test ! -e "$HOSTDIR/evil"
up "/abs-tmp/$(basename "$HOSTDIR")" -H 'X-LXD-type: directory'
up "/abs-tmp/$(basename "$HOSTDIR")/evil2" --data-binary 'PWNED'
ok "... nor through an absolute link to /tmp" test ! -e "$HOSTDIR/evil2"
ok "... which lands in the rootfs" test -f "$R$HOSTDIR/evil2"
cp "$HOSTMARK" "$HOSTDIR/keep"
F DELETE "/1.0/instances/c1/files?path=/root/up$HOSTDIR/keep"
is "$HTTP_STATUS" 404 "DELETE through ../.. cannot remove a host file"
ok "... still there" test -f "$HOSTDIR/keep"
up /root/up/etc/passwd-escape -H 'X-LXD-type: symlink' --data-binary '/etc/shadow'
F GET "/1.0/instances/c1/files?path=/root/up/etc/passwd-escape"
is "$HTTP_STATUS:$HTTP_BODY" "200:/etc/shadow" "a symlink created through ../.. lives in the rootfs"
ok "... not on the host" test ! -e /etc/passwd-escape
ok "host /etc/passwd untouched" test -z "$(find /etc/passwd -newer "$HOSTMARK")"

# ---- ownership through berth-shift ----
echo "100000 200000 65536" >"$V/berth-shift"
touch "$R/root/shifted"
chown 100005:200007 "$R/root/shifted"
F GET "/1.0/instances/c1/files?path=/root/shifted"
is "$(hdr x-lxd-uid):$(hdr x-lxd-gid)" "5:7" "berth-shift: host ids are shown as the container's"
chown 0:0 "$R/root/shifted"
F GET "/1.0/instances/c1/files?path=/root/shifted"
is "$(hdr x-lxd-uid):$(hdr x-lxd-gid)" "65534:65534" "... ids outside the map as nobody"
up /root/shifted-new --data-binary 'x' -H 'X-LXD-uid: 33' -H 'X-LXD-gid: 34'
is "$(own "$R/root/shifted-new")" 100033:200034:644 "... a pushed file gets base + id on disk"
up /root/shifted-root --data-binary 'x'
is "$(own "$R/root/shifted-root")" 100000:200000:644 "... and container root by default"
up /root/shifted-far --data-binary 'x' -H 'X-LXD-uid: 70000'
is "$HTTP_STATUS:$(test -e "$R/root/shifted-far" && echo there)" "400:" "... an id outside the map is refused"
rm -f "$V/berth-shift"

# ---- large files stream ----
head -c $((64 << 20)) /dev/urandom >"$TEST_TMP/big"
hwm0=$(awk '/VmHWM/ {print $2}' "/proc/$DAEMON_PID/status")
t0=$(date +%s%N)
up /root/big --data-binary "@$TEST_TMP/big"
t1=$(date +%s%N)
is "$HTTP_STATUS" 200 "push a 64 MiB file"
ok "... intact on disk" cmp -s "$TEST_TMP/big" "$R/root/big"
F GET "/1.0/instances/c1/files?path=/root/big"
t2=$(date +%s%N)
diag "64 MiB: push $(((t1 - t0) / 1000000)) ms, pull $(((t2 - t1) / 1000000)) ms"
ok "pull it back intact" cmp -s "$TEST_TMP/big" "$TEST_TMP/body"
hwm1=$(awk '/VmHWM/ {print $2}' "/proc/$DAEMON_PID/status")
diag "berthd peak RSS: $hwm0 kB before, $hwm1 kB after 64 MiB each way"
if ldd "$BERTHD" 2>/dev/null | grep -q libasan; then
	# AddressSanitizer keeps freed buffers in quarantine (up to 256 MiB): RSS says nothing
	skip "berthd's peak memory grew by less than 24 MiB" "AddressSanitizer build"
else
	ok "berthd's peak memory grew by less than 24 MiB" test $((hwm1 - hwm0)) -lt $((24 << 10))
fi
rm -f "$TEST_TMP/big"

# ---- the stock lxc client ----
lxc remote add b "unix://$BERTH_SOCKET" >/dev/null 2>&1
printf 'from lxc\n' >"$TEST_TMP/f1"
run lxc file push "$TEST_TMP/f1" b:c1/root/f1
rc_ok "lxc file push"
is "$(cat "$R/root/f1")" "from lxc" "... the file arrived"
run lxc file pull b:c1/root/f1 "$TEST_TMP/f1.back"
rc_ok "lxc file pull"
ok "... same bytes" cmp -s "$TEST_TMP/f1" "$TEST_TMP/f1.back"
run lxc file push --uid 1234 --gid 4321 --mode 0600 "$TEST_TMP/f1" b:c1/root/f2
rc_ok "lxc file push --uid --gid --mode"
is "$(own "$R/root/f2")" 1234:4321:600 "... applied"
run lxc file push -p "$TEST_TMP/f1" b:c1/root/deep/er/f3
rc_ok "lxc file push -p creates parents"
ok "... the file is there" test -f "$R/root/deep/er/f3"
mkdir -p "$TEST_TMP/tree/sub/subsub"
echo a >"$TEST_TMP/tree/a"
echo b >"$TEST_TMP/tree/sub/b"
echo c >"$TEST_TMP/tree/sub/subsub/c"
chmod 0751 "$TEST_TMP/tree/sub"
ln -s sub/b "$TEST_TMP/tree/link-b"
run lxc file push -r "$TEST_TMP/tree" b:c1/root/
rc_ok "lxc file push -r"
is "$(cat "$R/root/tree/sub/subsub/c"):$(readlink "$R/root/tree/link-b")" "c:sub/b" "... the tree arrived, its symlink as a symlink"
mkdir "$TEST_TMP/pulled"
run lxc file pull -r b:c1/root/tree "$TEST_TMP/pulled/"
rc_ok "lxc file pull -r"
rm "$TEST_TMP/tree/link-b"
is "$(readlink "$TEST_TMP/pulled/tree/link-b")" /root/tree/sub/b "... a symlink comes back pointing at its absolute target (as LXD)"
rm "$TEST_TMP/pulled/tree/link-b"
ok "... the rest of the pulled tree equals the pushed one" diff -r "$TEST_TMP/tree" "$TEST_TMP/pulled/tree"
is "$(stat -c %a "$TEST_TMP/pulled/tree/sub")" 751 "... with the directories' modes"
run lxc file pull b:c1/root/up/etc/passwd "$TEST_TMP/pw"
rc_ok "lxc file pull through ../.."
ok "... gets the container's passwd" cmp -s "$TEST_TMP/pw" "$R/etc/passwd"
run lxc file delete b:c1/root/f2
rc_ok "lxc file delete"
ok "... gone" test ! -e "$R/root/f2"
run lxc file pull b:c1/root/nope "$TEST_TMP/nope"
ok "lxc file pull of a missing file fails" test "$RC" != 0

ok "host marker intact after everything" test "$(cat "$HOSTMARK")" = "HOST-SECRET-$$"
is "$(mounts)" "$mounts0" "no mount left"
is "$(cgroups)" "$cgroups0" "no cgroup left"
is "$(procs)" "$procs0" "no child process left"
check_no_fd_leak "$fds0" "berthd holds no extra fds"
daemon_alive "berthd still serves"
