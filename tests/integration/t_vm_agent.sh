#!/bin/bash
# t_vm_agent.sh: berth-agent inside a VM, end to end. The debian-12-vm image (the
# project's recipe, LXD's split format with LXD's agent loader) is imported and launched
# --vm on the managed bridge through berthd in the test's namespaces; berthd gives it a
# config drive with berth-agent and a fresh key, and starts berth-vmmon, which holds the
# agent session. One booted VM serves every case, through the stock `lxc` client and
# `berth`: exec before the agent is up fails with LXD's message; then exec (stdout,
# stderr, exit code, stdin, env, cwd, --user), interactive exec and `lxc shell` through a
# pty, files (push and pull with mode and owner, a directory listing, append, symlink,
# recursive pull, delete), `lxc list` showing the VM's address on the bridge, the guest's
# state; devices from a profile, proven inside the guest: a shared host directory (9p,
# mounted by berth-agent: a file visible both ways), a custom block volume (by LXD's
# /dev/disk/by-id name, written, read back on the host after the stop and in the guest
# after the next start) and a nat=true proxy carrying a TCP connection from the bridge's
# address to the guest's static one; berthd kill -9 and started again, then exec works with no re-attach step, a
# killed berth-vmmon is started again on the next use; a clean stop (the ACPI button: the
# guest's own "Power down" in the console log, no kill); the image's kernel booted
# directly, then (boot.direct=false) through OVMF and its bootloader, each timed to the
# agent. At the end no QEMU, berth-vmmon, tap, mount or loop device that the test made is
# left (counted).
# Slow (two boots under TCG, a minute or two each on a loaded machine): only in the full run
# (BERTH_TEST_FULL=1).
. "$(dirname "$0")/lib.sh"
[ "${BERTH_TEST_FULL:-}" = 1 ] || skip_all "slow (boots a Debian VM under TCG): set BERTH_TEST_FULL=1"
command -v lxc >/dev/null || skip_all "lxc not installed (apt-get install lxd-client)"
for p in qemu-system-x86_64 qemu-img; do
	command -v "$p" >/dev/null || skip_all "$p is not installed (scripts/test.sh installs it)"
done
[ -f /usr/share/OVMF/OVMF_CODE_4M.fd ] || [ -f /usr/share/OVMF/OVMF_CODE.fd ] ||
	skip_all "OVMF not installed (ovmf)"
BOOT_TIMEOUT=${BERTH_VM_BOOT_TIMEOUT:-300}
WSC="$BERTH_SRCDIR/tests/integration/wsclient.py"

# Processes of this test's berthd by command name (QEMU: qemu-system-x86, berth-vmmon),
# told apart from anyone else's by the state directory on their command line.
procs_of()
{
	local p
	for p in $(pgrep -x "$1" 2>/dev/null); do
		tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -q -- "${BERTH_DIR:-/nonexistent}/" && echo "$p"
	done
}
# A backstop for a test that failed half-way: QEMU and berth-vmmon outlive berthd by
# design. Set before berth_test_init, which runs it before its own exit.
kill_leftovers() { local p; for p in $(procs_of qemu-system-x86) $(procs_of berth-vmmon); do kill -9 "$p"; done; }
trap kill_leftovers EXIT
berth_test_images debian-12-vm
berth_test_init "$@"

LXD_CONF=$TEST_TMP/lxc-conf
mkdir -p "$LXD_CONF"
export LXD_CONF
unset LXD_DIR
run_lxc() { run lxc "$@"; }
run_lxc remote add b "unix://$BERTH_SOCKET"
rc_ok "lxc remote add b unix://..."
W=$TEST_TMP/w
mkdir -p "$W"
qemus() { procs_of qemu-system-x86 | wc -l; }
vmmons() { procs_of berth-vmmon | wc -l; }
taps() { ip -o link show type tun 2>/dev/null | wc -l; }
# alive PID: the process runs (a zombie waiting for its reaper does not).
alive() { [ -n "$1" ] && [ -r "/proc/$1/stat" ] && ! sed 's/.*) //' "/proc/$1/stat" | grep -q '^[ZX]'; }
# loop devices backed by a file of this test's (the host's others come and go)
loops() { losetup -a 2>/dev/null | grep -c -- "$TEST_TMP/"; }
mounts0=$(own_mounts)
taps0=$(taps)
loops0=$(loops)
RUN=$BERTH_DIR/run/default_v1
# LXD 5.0.2's error for exec and files on a VM whose agent is not running.
AGENT_MSG="LXD VM agent isn't currently running"

# ---- the image, the VM ----
meta=${IMAGE[debian-12-vm]}
run_lxc image import "$meta" "$(dirname "$meta")/rootfs.img" b: --alias d12vm
rc_ok "lxc image import of the debian-12-vm image"
# Devices through a profile: a static address on the managed bridge, a custom block
# volume, a nat proxy from the bridge's address to the guest's port 8080.
net4=$(lxc network get b:berthbr0 ipv4.address 2>/dev/null)
prefix=${net4%.*}.
brip=${net4%/*}
VMIP=${prefix}50
run_lxc storage volume create b:default data --type=block size=32MiB
rc_ok "lxc storage volume create data --type=block"
DATA=$BERTH_DIR/storage-pools/default/custom/default_data/root.img
run_lxc profile create b:devs
run_lxc profile device add b:devs eth0 nic network=berthbr0 "ipv4.address=$VMIP"
run_lxc profile device add b:devs data disk pool=default source=data
run_lxc profile device add b:devs web proxy nat=true "listen=tcp:$brip:8081" "connect=tcp:$VMIP:8080"
mkdir -p "$W/shared"
echo "from-the-host-$$" >"$W/shared/from-host"
run_lxc profile device add b:devs shared disk "source=$W/shared" path=/mnt/shared
rc_ok "a profile with the NIC, the block volume, the nat proxy and a shared directory"
t0=$(date +%s%N)
run_lxc launch b:d12vm b:v1 --vm -p default -p devs -c limits.cpu=2 -c limits.memory=768MiB
rc_ok "lxc launch d12vm v1 --vm -p default -p devs"
# The launch unpacks the image (qemu-img convert) and copies its volume first: the
# firmware boot below is timed from a plain start, so the boots compare from here.
LAUNCH_MS=$((($(date +%s%N) - t0) / 1000000))
# Right after the start the guest is still in its firmware: no agent yet.
run_lxc exec b:v1 -- true
is "$RC:$ERR" "1:Error: $AGENT_MSG" "lxc exec before the agent is up fails with LXD's message"
run_lxc file pull b:v1/etc/hostname "$W/early"
like "$ERR" "$AGENT_MSG" "lxc file pull too"
is "$(vmmons)" 1 "one berth-vmmon runs for v1"
[ "$(stat -c %a "$RUN/agent.key" 2>/dev/null)" = 400 ] && [ "$(wc -c <"$RUN/agent.key")" = 65 ] &&
	pass "the agent key of this start is in agent.key (0400, 64 hex digits)" ||
	fail "the agent key of this start is in agent.key (0400, 64 hex digits)"
cmp -s "$RUN/agent.key" "$RUN/config/berth-agent.key" &&
	pass "the config drive carries the same key" || fail "the config drive carries the same key"
cmp -s "$RUN/config/lxd-agent" "$BERTH_BUILDDIR/berth-agent" &&
	pass "and the host's berth-agent as lxd-agent" || fail "and the host's berth-agent as lxd-agent"
grep -q 'agent.socket' "$RUN/qemu.conf" && grep -q "$RUN/config" "$RUN/qemu.conf" &&
	pass "QEMU has the agent's port and the config share" || fail "QEMU has the agent's port and the config share"
qcmd=$(tr '\0' ' ' <"/proc/$(cat "$RUN/qemu.pid")/cmdline")
VMVOL=$BERTH_DIR/storage-pools/default/virtual-machines/default_v1
like "$qcmd" "-kernel $VMVOL/boot.kernel -initrd $VMVOL/boot.initrd -append root=LABEL=rootfs rw console=ttyS0" \
	"direct kernel boot: the kernel and initrd copied out of the image at unpack, and its command line"
unlike "$qcmd" "OVMF" "... and no firmware"

ready=
for _ in $(seq "$BOOT_TIMEOUT"); do
	if lxc exec b:v1 -- true 2>/dev/null; then
		ready=1
		break
	fi
	sleep 1
done
READY_MS=$((($(date +%s%N) - t0) / 1000000))
ok "the agent is up within ${BOOT_TIMEOUT}s (launch to exec: $READY_MS ms)" test -n "$ready"
[ -n "$ready" ] || bail_out "no agent: $(tail -n 20 "$RUN/console.log" 2>&1)"

# ---- exec ----
run_lxc exec b:v1 -- sh -c 'echo to-out; echo to-err >&2; exit 7'
is "$RC|$OUT|$ERR" "7|to-out|to-err" "lxc exec: stdout, stderr and the exit code apart"
run_lxc exec b:v1 -- cat /proc/1/comm
is "$OUT" systemd "... the command runs in the guest (PID 1 is systemd)"
is "$(printf 'line1\nline2\n' | lxc exec b:v1 -- sh -c 'wc -l' 2>&1)" 2 "lxc exec: stdin reaches the command"
run_lxc exec b:v1 --env FOO=bar -- sh -c 'echo "$FOO $HOME $PATH"'
is "$OUT" "bar /root /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
	"lxc exec --env: the variable, HOME and PATH"
run_lxc exec b:v1 --cwd /tmp -- pwd
is "$OUT" /tmp "lxc exec --cwd /tmp"
run_lxc exec b:v1 --user 1000 --group 1000 -- sh -c 'echo $(id -u):$(id -g)'
is "$OUT" 1000:1000 "lxc exec --user 1000 --group 1000"
run_lxc exec b:v1 -- sh -c 'kill -9 $$'
is "$RC" 137 "a command killed by a signal: 128 + 9"
run_cli exec v1 -- sh -c 'echo berth-out; echo berth-err >&2; exit 4'
is "$RC|$OUT|$ERR" "4|berth-out|berth-err" "berth exec: stdout, stderr and the exit code"
t1=$(date +%s%N)
for _ in 1 2 3 4 5; do lxc exec b:v1 -- true; done
diag "lxc exec -- true (TCG guest): $((($(date +%s%N) - t1) / 5000000)) ms each"
out=$($PY "$WSC" lxc-pty lxc exec b:v1 -- sh 2>&1)
rc=$?
is "$rc" 3 "interactive lxc exec sh: exit 3 comes back"
like "$out" "size:40 120" "... stty size after a window resize"
like "$out" "tty:yes" "... stdin is a terminal"
like "$out" "hi-[0-9]+" "... the shell's output"
out=$($PY "$WSC" lxc-pty lxc shell b:v1 2>&1)
rc=$?
is "$rc" 3 "lxc shell (su -l on a pty): exit 3 comes back"
like "$out" "tty:yes" "... on a terminal"
out=$("$BERTH" exec -t v1 -- sh -c 'tty; echo rc=$?' </dev/null 2>&1)
like "$out" "/dev/pts/[0-9]+" "berth exec -t: the command has a terminal in the guest"
api POST /1.0/instances/v1/exec '{"command":["sh","-c","echo recorded; echo rec-err >&2"],"record-output":true,"wait-for-websocket":false,"interactive":false}'
wait_operation "$(jget 'j["operation"]')"
is "$(jget 'j["metadata"]["metadata"]["return"]')" 0 "exec with record-output: the command returns 0"
outurl=$(jget 'j["metadata"]["metadata"]["output"]["1"]')
api GET "$outurl"
is "$HTTP_BODY" recorded "... its stdout is recorded"

# ---- files ----
printf 'hello from the host\n' >"$W/f"
run_lxc file push "$W/f" b:v1/root/f --mode 0640 --uid 1000 --gid 1001
rc_ok "lxc file push --mode 0640 --uid 1000 --gid 1001"
run_lxc exec b:v1 -- stat -c '%a %u %g' /root/f
is "$OUT" "640 1000 1001" "... the file in the guest has that mode and owner"
run_lxc exec b:v1 -- cat /root/f
is "$OUT" "hello from the host" "... and that content"
run_lxc file pull b:v1/root/f "$W/back"
rc_ok "lxc file pull"
cmp -s "$W/f" "$W/back" && pass "... the same bytes come back" || fail "... the same bytes come back"
F() { HTTP_STATUS=$(curl -s -H "Content-Type: application/octet-stream" -o "$W/body" -D "$W/hdr" -w '%{http_code}' --unix-socket "$BERTH_SOCKET" "$@"); }
hdr() { tr -d '\r' <"$W/hdr" | sed -n "s/^$1: //Ip"; }
F "http://b/1.0/instances/v1/files?path=/root/f"
is "$HTTP_STATUS:$(hdr x-lxd-uid):$(hdr x-lxd-gid):$(hdr x-lxd-mode):$(hdr x-lxd-type)" "200:1000:1001:0640:file" \
	"GET: X-LXD-uid/gid/mode/type from the guest"
like "$(hdr x-lxd-modified)" '^[0-9]{4}-[0-9]{2}-[0-9]{2}T' "... and X-LXD-modified"
F -X POST -H 'X-LXD-write: append' --data-binary 'more' "http://b/1.0/instances/v1/files?path=/root/f"
run_lxc exec b:v1 -- sh -c 'tail -c 4 /root/f; stat -c " %a %u" /root/f'
is "$HTTP_STATUS:$OUT" "200:more 640 1000" "X-LXD-write: append appends and keeps mode and owner"
dd if=/dev/urandom of="$W/big" bs=1M count=3 status=none
run_lxc file push "$W/big" b:v1/root/big
run_lxc exec b:v1 -- sha256sum /root/big
is "${OUT%% *}" "$(sha256sum <"$W/big" | cut -d' ' -f1)" "a 3 MiB file arrives whole"
run_lxc file push -p "$W/f" b:v1/root/d/sub/g
rc_ok "lxc file push -p makes the parents"
api GET "/1.0/instances/v1/files?path=/root/d"
is "$(jget 'j["metadata"]')" '["sub"]' "GET on a directory lists its entries"
F -X POST -H 'X-LXD-type: symlink' --data-binary 'sub/g' "http://b/1.0/instances/v1/files?path=/root/d/link"
run_lxc exec b:v1 -- readlink /root/d/link
is "$HTTP_STATUS:$OUT" "200:sub/g" "POST X-LXD-type: symlink makes a symlink"
F -X POST -H 'X-LXD-type: directory' -H 'X-LXD-mode: 0700' "http://b/1.0/instances/v1/files?path=/root/d/newdir"
run_lxc exec b:v1 -- stat -c %a /root/d/newdir
is "$HTTP_STATUS:$OUT" "200:700" "POST X-LXD-type: directory makes a directory with its mode"
rm -rf "$W/pulled"
mkdir "$W/pulled"
run_lxc file pull -r b:v1/root/d "$W/pulled/"
cmp -s "$W/pulled/d/sub/g" "$W/f" && pass "lxc file pull -r brings the tree back" ||
	fail "lxc file pull -r brings the tree back" "$ERR $(find "$W/pulled")"
run_lxc file delete b:v1/root/f
rc_ok "lxc file delete"
run_lxc exec b:v1 -- test -e /root/f
is "$RC" 1 "... the file is gone from the guest"
F "http://b/1.0/instances/v1/files?path=/root/nothing-here"
is "$HTTP_STATUS" 404 "GET of a missing path: 404"
like "$(cat "$W/body")" 'not found' "... with the containers' \"not found\""

# ---- state: the guest's addresses ----
net4=$(lxc network get b:berthbr0 ipv4.address 2>/dev/null)
prefix=${net4%.*}.
addr=
for _ in $(seq 60); do
	run_lxc list b: --format csv -c n4
	[[ $OUT == *"$prefix"* ]] && break
	sleep 1
done
like "$OUT" "^v1,${prefix//./\\.}[0-9]+ \(" "lxc list shows v1's IPv4 on the managed bridge ($net4)"
run_cli list
like "$OUT" "${prefix//./\\.}[0-9]+" "berth list shows it too"
api GET /1.0/instances/v1/state
p=$(jget 'j["metadata"]["processes"]')
[ "${p:-0}" -gt 5 ] && pass "the state has the guest's processes ($p)" || fail "the state has the guest's processes" "$p"
like "$(jget 'sorted(j["metadata"]["network"])')" '"lo"' "... and its interfaces"
like "$(jget 'j["metadata"]["network"]["lo"]["addresses"][0]["address"]')" '^127\.0\.0\.1$' "... with their addresses"
mem=$(jget 'j["metadata"]["memory"]["usage"]')
[ "${mem:-0}" -gt 0 ] && [ "$mem" -lt $((768 << 20)) ] &&
	pass "... and the guest's memory use ($((mem >> 20)) MiB of 768)" || fail "... and the guest's memory use" "$mem"
like "$(jget 'j["metadata"]["disk"]["root"]["usage"]')" '^[1-9][0-9]+$' "... and its root disk use"

# ---- the profile's devices, seen from inside the guest ----
BYID=/dev/disk/by-id/scsi-0QEMU_QEMU_HARDDISK_lxd_data
MARK=berth-block-$$
run_lxc exec b:v1 -- sh -c "udevadm settle; ls /dev/disk/by-id/"
like "$OUT" "scsi-0QEMU_QEMU_HARDDISK_lxd_data" "the block volume is in the guest as $BYID"
run_lxc exec b:v1 -- sh -c "printf $MARK | dd of=$BYID conv=fsync status=none && blockdev --getsize64 $BYID"
is "$RC:$OUT" "0:33554432" "the guest writes to it (32MiB)"
run_lxc list b: --format csv -c n4
like "$OUT" "^v1,${VMIP//./\\.} \(" "v1 took its static address $VMIP"
(lxc exec b:v1 -- perl -MIO::Socket::INET -e '$s = IO::Socket::INET->new(LocalPort => 8080, Listen => 1, ReuseAddr => 1) or die "listen: $!"; $c = $s->accept; print $c "from-the-guest\n"; $l = <$c>; print "got: $l";' >"$W/srv" 2>&1 &)
got=$($PY - "$brip" <<'PY'
import socket, sys, time
end = time.time() + 30
while True:
    try:
        s = socket.create_connection((sys.argv[1], 8081), timeout=5)
        break
    except OSError as e:
        if time.time() > end:
            print("no connection: %s" % e)
            sys.exit(1)
        time.sleep(0.5)
s.sendall(b"from-the-host\n")
print(s.makefile().readline().strip())
PY
)
is "$got" from-the-guest "the nat proxy ($brip:8081) carries a TCP connection to the guest's port 8080"
for _ in $(seq 50); do grep -q "got:" "$W/srv" && break; sleep 0.2; done
is "$(cat "$W/srv")" "got: from-the-host" "... both ways"
NFT_TABLE=$(sed -n '1s/^table inet \(berth_proxy_[0-9a-f]*\) {}$/\1/p' "$RUN/proxy.nft" 2>/dev/null)
like "$(nft list table inet "$NFT_TABLE" 2>&1)" "dnat ip to $VMIP:8080" "its nftables table $NFT_TABLE is in place"
run_lxc exec b:v1 -- cat /mnt/shared/from-host
is "$RC:$OUT" "0:from-the-host-$$" "the shared host directory is mounted at /mnt/shared by berth-agent"
run_lxc exec b:v1 -- sh -c "echo from-the-guest-$$ >/mnt/shared/from-guest"
is "$(cat "$W/shared/from-guest" 2>&1)" "from-the-guest-$$" "... and what the guest writes there is on the host"

# ---- berthd kill -9, a killed berth-vmmon ----
qpid=$(cat "$RUN/qemu.pid")
kill -9 "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null
DAEMON_PID=
is "$(qemus):$(vmmons)" 1:1 "QEMU and berth-vmmon outlive berthd's kill -9"
daemon_start
run_lxc exec b:v1 -- echo again
is "$RC:$OUT" "0:again" "after berthd starts again, exec works (no re-attach step)"
kill -9 "$(procs_of berth-vmmon)"
sleep 0.5
is "$(vmmons)" 0 "berth-vmmon killed"
run_lxc exec b:v1 -- echo after-vmmon
is "$RC:$OUT" "0:after-vmmon" "the next exec starts berth-vmmon again and runs"
is "$(vmmons)" 1 "... one berth-vmmon runs"
is "$(cat "$RUN/qemu.pid")" "$qpid" "... for the same QEMU"

# ---- a clean stop: the ACPI button, the guest powers off ----
t1=$(date +%s%N)
run_lxc stop b:v1 --timeout 120
rc_ok "lxc stop v1"
STOP_MS=$((($(date +%s%N) - t1) / 1000000))
like "$(tail -c 20000 "$RUN/console.log" | tr -d '\r')" "reboot: Power down" \
	"the guest powered itself off ($STOP_MS ms): its console says so"
[ "$STOP_MS" -lt 110000 ] && pass "no kill at the timeout" || fail "no kill at the timeout" "$STOP_MS ms"
is "$(qemus):$(vmmons)" 0:0 "no QEMU or berth-vmmon after the stop"
is "$(head -c ${#MARK} "$DATA")" "$MARK" "the stopped VM's block volume holds what the guest wrote"
nft list table inet "$NFT_TABLE" >/dev/null 2>&1 && fail "the nat proxy's table went with the stop" ||
	pass "the nat proxy's table went with the stop"
[ ! -e "$RUN/agent.key" ] && [ ! -e "$RUN/agent.socket" ] &&
	pass "the agent key and socket are removed" || fail "the agent key and socket are removed"
run_lxc exec b:v1 -- true
like "$ERR" "not running" "exec on the stopped VM: not running"
run_lxc file pull b:v1/etc/hostname "$W/x"
like "$ERR" "not running" "file pull on the stopped VM: not running"

# ---- the firmware boot (boot.direct=false): OVMF and the image's systemd-boot ----
run_lxc config set b:v1 boot.direct=false
rc_ok "lxc config set v1 boot.direct=false"
t0=$(date +%s%N)
run_lxc start b:v1
rc_ok "lxc start v1"
qcmd=$(tr '\0' ' ' <"/proc/$(cat "$RUN/qemu.pid")/cmdline" 2>/dev/null)
unlike "$qcmd" "-kernel" "no -kernel: QEMU boots the firmware"
ok "... with OVMF and the VM's own variables" grep -q "$RUN/qemu.nvram" "$RUN/qemu.conf"
ready=
for _ in $(seq "$BOOT_TIMEOUT"); do
	if lxc exec b:v1 -- true 2>/dev/null; then
		ready=1
		break
	fi
	sleep 1
done
FW_MS=$((($(date +%s%N) - t0) / 1000000))
ok "the agent is up after a firmware boot too ($FW_MS ms)" test -n "$ready"
run_lxc exec b:v1 -- cat /proc/cmdline
like "$OUT" "BOOT_IMAGE=|systemd-boot|initrd=" "the guest's kernel came through its bootloader"
run_lxc exec b:v1 -- head -c ${#MARK} "$BYID"
is "$OUT" "$MARK" "after a stop and a start the guest reads back what it wrote to the block volume"
# the guest powers itself off (no stop runs): the delete removes the nat table
like "$(nft list table inet "$NFT_TABLE" 2>&1)" "dnat ip to $VMIP:8080" "the nat table is back with the start"
qpid=$(cat "$RUN/qemu.pid")
run_lxc exec b:v1 -- systemctl poweroff
for _ in $(seq 120); do alive "$qpid" || break; sleep 1; done
alive "$qpid" && fail "the guest powered itself off" || pass "the guest powered itself off"

# ---- nothing left ----
# (the record's status still says Running, which lxc delete believes: the API's delete)
api DELETE /1.0/instances/v1
wait_operation "$(jget 'j["operation"]')"
is "$(jget 'j["metadata"]["status"]')" Success "DELETE /1.0/instances/v1"
nft list table inet "$NFT_TABLE" >/dev/null 2>&1 && fail "the delete removed the nat table no stop removed" ||
	pass "the delete removed the nat table no stop removed"
run_lxc image delete b:d12vm
rc_ok "lxc image delete d12vm"
run_lxc profile delete b:devs
run_lxc storage volume delete b:default data
rc_ok "the profile and the block volume are deleted"
is "$(qemus):$(vmmons)" 0:0 "no QEMU or berth-vmmon left"
is "$(taps)" "$taps0" "no tap left"
is "$(own_mounts)" "$mounts0" "no mount left"
is "$(loops)" "$loops0" "no loop device left"
diag "to agent ready under $([ -w /dev/kvm ] && echo KVM || echo TCG): direct kernel boot $READY_MS ms from the launch (which returned after $LAUNCH_MS ms: unpack, copy, kernel read out, QEMU started), firmware boot ${FW_MS:-?} ms from the start; clean stop: $STOP_MS ms"
