#!/bin/bash
# tests/integration/t_nic.sh: nic devices on busybox containers driven through berthd.
# In the test's own network namespace: a bridge br0 made by hand with a dnsmasq for
# DHCP on it. Containers with `nictype=bridged parent=br0` and with `network=br0` get
# eth0 with their volatile MAC, a DHCP lease (sending their hostname), show it in GET
# state, `berth list` and `lxc list`, and ping each other and the bridge; p2p (host end
# unbridged), macvlan on a dummy parent, limits (tc qdiscs on the host end, a coarse
# throughput bound), hot-plug and unplug of eth1 on a running container, a reboot from
# inside keeping its NICs, a missing bridge failing the start cleanly, bad input
# refused with 400. Links, mounts, cgroups, monitors, processes and berthd's fds are
# counted before and after. No packet leaves the namespace. TAP output.
if [ -z "${BERTH_IN_NETNS:-}" ] && [ "$(id -u)" = 0 ]; then
	T_NIC_OUT=$(mktemp -d /tmp/berth-t-nic.XXXXXX)
	srcdir=${BERTH_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
	"$srcdir/images/build" busybox "$T_NIC_OUT" >"$T_NIC_OUT/fp" 2>"$T_NIC_OUT/log" ||
		rm -f "$T_NIC_OUT/fp"
	export T_NIC_OUT
fi

. "$(dirname "$0")/lib.sh"
DNSMASQ_PID=
[ -n "${BERTH_IN_NETNS:-}" ] &&
	trap 'st=$?; [ -n "$DNSMASQ_PID" ] && kill "$DNSMASQ_PID" 2>/dev/null; rm -rf "$T_NIC_OUT"; (exit $st); _berth_test_exit' EXIT
: "${BERTH_MONITOR:=$BERTH_BUILDDIR/berth-monitor}"
if [ "$(id -u)" = 0 ]; then
	[ -s "$T_NIC_OUT/fp" ] || skip_all "the busybox image could not be built: $(tail -n 1 "$T_NIC_OUT/log")"
	[ -x "$BERTH_MONITOR" ] || skip_all "no berth-monitor at $BERTH_MONITOR (build it first)"
	command -v dnsmasq >/dev/null || skip_all "dnsmasq is not installed (dnsmasq-base)"
	command -v tc >/dev/null || skip_all "tc is not installed (iproute2)"
fi
BERTHD_ENV=(BERTH_MONITOR="$BERTH_MONITOR")
berth_test_init "$@"
export PATH=$BERTH_BUILDDIR:$PATH
export LXD_CONF=$TEST_TMP/lxd-conf
mkdir -p "$LXD_CONF"

mounts() { own_mounts; }
CGH=berth-$(printf '%s' "$BERTH_DIR" | sha256sum | cut -c1-8)
cgroups() { find /sys/fs/cgroup -maxdepth 3 -type d -name "$CGH" 2>/dev/null | wc -l; }
monitors() { pgrep -cf "^$BERTH_MONITOR start $BERTH_DIR/" || true; }
links() { ip -o link | wc -l; }
veths() { ip -o link show type veth | wc -l; }
# processes in this daemon's container cgroups
procs() { grep -ls "$CGH" /proc/[0-9]*/cgroup 2>/dev/null | wc -l; }
state()
{
	api PUT "/1.0/instances/$2/state" "{\"action\":\"$1\"${3:+,$3}}"
	[ "$HTTP_STATUS" = 202 ] && wait_operation "$(jget 'j["operation"]')"
	return 0
}
opok() { [ "$(jget 'j["metadata"]["status"]')" = Success ]; }
opmsg() { jget 'j["metadata"]["err"]'; }
create()
{
	api POST /1.0/instances "{\"name\":\"$1\",\"source\":{\"type\":\"image\",\"alias\":\"busybox\"},\"devices\":$2}"
	[ "$HTTP_STATUS" = 202 ] && wait_operation "$(jget 'j["operation"]')"
	opok
}
cfg() { api GET "/1.0/instances/$1"; jget "j['metadata']['config'].get('$2', '')"; }
# addr NAME IFACE: the inet address of IFACE in GET state, or nothing
addr()
{
	api GET "/1.0/instances/$1/state"
	jget "[a['address'] for a in ((j['metadata'].get('network') or {}).get('$2') or {}).get('addresses', []) if a['family'] == 'inet'][0] if [a for a in ((j['metadata'].get('network') or {}).get('$2') or {}).get('addresses', []) if a['family'] == 'inet'] else ''"
}
wait_addr()
{
	local i a
	for i in $(seq 1 100); do
		a=$(addr "$1" "$2")
		[ -n "$a" ] && { echo "$a"; return 0; }
		sleep 0.2
	done
	return 1
}
inside() { berth exec "$1" -- "${@:2}" 2>&1; }
wait_gone() { local i; for i in $(seq 1 50); do ip link show "$1" >/dev/null 2>&1 || return 0; sleep 0.1; done; return 1; }

ip link set lo up
mounts0=$(mounts)
cgroups0=$(cgroups)
links0=$(links)
procs0=$(procs)
fds0=$(daemon_fds)

# ---- the "host" side: a bridge with DHCP, a dummy for macvlan ----
ip link add br0 type bridge && ip addr add 10.77.0.1/24 dev br0 && ip link set br0 up
# macvlan parent: a veth pair (this kernel may have no dummy driver)
ip link add mvp0 type veth peer name mvp1 && ip link set mvp0 up && ip link set mvp1 up
dnsmasq --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts --port=0 \
	--bind-interfaces --interface=br0 --except-interface=lo --user=root \
	--dhcp-range=10.77.0.100,10.77.0.199,1h --dhcp-authoritative \
	--dhcp-leasefile="$TEST_TMP/leases" --pid-file= >"$TEST_TMP/dnsmasq.log" 2>&1 &
DNSMASQ_PID=$!
links1=$(links)
veths1=$(veths)

ok "import the busybox image" berth image import "$T_NIC_OUT/busybox.tar.gz" --alias busybox

# ---- bad input: 400 with a message ----
# rejected DESC ERE DEVICE-JSON: creating x1 with that eth0 is a 400 whose message matches
rejected()
{
	expect_error 400 "$1" POST /1.0/instances "{\"name\":\"x1\",\"source\":{\"type\":\"image\",\"alias\":\"busybox\"},\"devices\":{\"eth0\":$3}}"
	like "$(jget 'j["error"]')" "$2" "... saying: $2"
}
rejected "unknown nictype refused" 'unsupported nictype "tunnel"' '{"type":"nic","nictype":"tunnel","parent":"br0"}'
rejected "bridged without parent refused" 'needs a "parent"' '{"type":"nic","nictype":"bridged"}'
rejected "bad hwaddr refused" 'invalid MAC address' '{"type":"nic","nictype":"p2p","hwaddr":"00:16:3e:zz:00:01"}'
rejected "ipv4.address without network= refused" 'static addresses need "network"' '{"type":"nic","nictype":"bridged","parent":"br0","ipv4.address":"10.77.0.50"}'
rejected "bad limits.ingress refused" 'invalid rate "fast"' '{"type":"nic","nictype":"p2p","limits.ingress":"fast"}'
rejected "unknown nic option refused" 'unknown nic option "vlan"' '{"type":"nic","nictype":"p2p","vlan":"4"}'
api GET /1.0/instances/x1
is "$HTTP_STATUS" 404 "no instance x1 was created"

# ---- bridged and network= ----
ok "create c1 (nictype=bridged parent=br0, limits)" create c1 '{"eth0":{"type":"nic","nictype":"bridged","parent":"br0","name":"eth0","limits.ingress":"8Mbit","limits.egress":"4Mbit"}}'
ok "create c2 (network=br0)" create c2 '{"eth0":{"type":"nic","network":"br0","name":"eth0"}}'
t0=$(date +%s%N)
state start c1
t1=$(date +%s%N)
ok "start c1" opok
diag "start of c1 (one veth, tc limits) took $(((t1 - t0) / 1000000)) ms"
t0=$(date +%s%N)
state start c2
t1=$(date +%s%N)
ok "start c2" opok
diag "start of c2 (one veth) took $(((t1 - t0) / 1000000)) ms"
diag "monitor: $(grep -h 'NIC(s) set up' "$BERTH_DIR"/run/default_c*/monitor.log | sed 's/^[^ ]* //' | tr '\n' ';')"

hw1=$(cfg c1 volatile.eth0.hwaddr)
host1=$(cfg c1 volatile.eth0.host_name)
host2=$(cfg c2 volatile.eth0.host_name)
like "$hw1" '^00:16:3e:[0-9a-f]{2}:[0-9a-f]{2}:[0-9a-f]{2}$' "volatile.eth0.hwaddr has LXD's prefix ($hw1)"
like "$host1" '^veth[0-9a-f]{8}$' "volatile.eth0.host_name recorded ($host1)"
is "$(inside c1 cat /sys/class/net/eth0/address)" "$hw1" "eth0 inside c1 has the volatile MAC"
like "$(ip -o link show "$host1")" 'master br0' "c1's host end is in br0"
like "$(ip -o link show "$host2")" 'master br0' "c2's host end (network=br0) is in br0"
like "$(ip -o link show "$host1")" 'state UP|,UP' "c1's host end is up"

a1=$(wait_addr c1 eth0)
ok "c1 gets a DHCP lease ($a1)" test -n "$a1"
a2=$(wait_addr c2 eth0)
ok "c2 gets a DHCP lease ($a2)" test -n "$a2"
like "$a1" '^10\.77\.0\.1[0-9][0-9]$' "c1's address is in the DHCP range"
ok "dnsmasq's lease names c1 (udhcpc sent the hostname)" grep -q " c1 " "$TEST_TMP/leases"
api GET /1.0/instances/c1/state
is "$(jget 'j["metadata"]["network"]["eth0"]["hwaddr"]')" "$hw1" "state: eth0 hwaddr"
is "$(jget 'j["metadata"]["network"]["eth0"]["host_name"]')" "$host1" "state: eth0 host_name"
is "$(jget 'j["metadata"]["network"]["eth0"]["state"]'):$(jget 'j["metadata"]["network"]["eth0"]["type"]')" "up:broadcast" "state: eth0 up, broadcast"
is "$(jget 'j["metadata"]["network"]["lo"]["type"]')" loopback "state: lo is loopback"
ok "state: counters present" test "$(jget 'j["metadata"]["network"]["eth0"]["counters"]["packets_received"]')" -ge 0
like "$(jget '[a["netmask"] for a in j["metadata"]["network"]["eth0"]["addresses"] if a["family"]=="inet"][0]')" '^24$' "state: netmask 24"
run berth list -c n4 -f csv
like "$OUT" "c1,$a1 \\(eth0\\)" "berth list shows c1's IPv4"
like "$OUT" "c2,$a2 \\(eth0\\)" "berth list shows c2's IPv4"
run berth info c1
like "$OUT" "$a1" "berth info shows the address"
lxc remote add b "unix://$BERTH_SOCKET" >/dev/null 2>&1
run lxc list b: -f csv -c n4
like "$OUT" "c1,\"?$a1 \\(eth0\\)" "lxc list shows c1's IPv4"
ok "c1 pings c2" inside c1 ping -c 1 -W 2 "$a2"
ok "c2 pings c1" inside c2 ping -c 1 -W 2 "$a1"
ok "c1 pings the bridge" inside c1 ping -c 1 -W 2 10.77.0.1

# ---- limits ----
ifb1=ifb${host1#veth}
like "$(tc qdisc show dev "$host1")" 'tbf .*rate 8Mbit' "limits.ingress: tbf root qdisc on the host end"
like "$(tc qdisc show dev "$host1")" 'ingress ffff:' "limits.egress: ingress qdisc on the host end"
like "$(tc filter show dev "$host1" parent ffff:)" "mirred \\(Egress Redirect to device $ifb1\\)" "limits.egress: redirected to $ifb1"
like "$(tc qdisc show dev "$ifb1")" 'tbf .*rate 4Mbit' "limits.egress: tbf at 4Mbit on $ifb1"
unlike "$(tc qdisc show dev "$host2")" 'tbf|ingress' "c2 (no limits) has no qdisc of ours"
# coarse bounds: 1.5 MB into c1 at 8 Mbit/s takes >= ~1.5 s, 1 MB out at 4 Mbit/s >= ~2 s
# server SIZE PORT: serve SIZE bytes to one client (SIZE 0: read one client's bytes)
server()
{
	$PY -c '
import socket, sys
size, port = int(sys.argv[1]), int(sys.argv[2])
l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("10.77.0.1", port)); l.listen(1); l.settimeout(20)
c, _ = l.accept(); c.settimeout(20)
if size:
    c.sendall(bytes(size)); c.close()
else:
    while c.recv(65536):
        pass' "$@" &
	srv=$!
	sleep 0.3
}
server 1500000 5001
t0=$(date +%s%N)
got=$(inside c1 sh -c 'nc 10.77.0.1 5001 </dev/null | wc -c')
wait "$srv"
t1=$(date +%s%N)
ms=$(((t1 - t0) / 1000000))
diag "1.5 MB into c1 at limits.ingress=8Mbit: $ms ms ($got bytes)"
is "$got" 1500000 "c1 received the 1.5 MB"
ok "throughput into c1 is bounded ($ms ms >= 1200)" test "$ms" -ge 1200
server 0 5002
t0=$(date +%s%N)
inside c1 sh -c 'head -c 1000000 /dev/zero | nc 10.77.0.1 5002' >/dev/null
wait "$srv"
t1=$(date +%s%N)
ms=$(((t1 - t0) / 1000000))
diag "1 MB out of c1 at limits.egress=4Mbit: $ms ms"
ok "throughput out of c1 is bounded ($ms ms >= 1200)" test "$ms" -ge 1200

# ---- hot-plug and unplug ----
api PATCH /1.0/instances/c1 '{"devices":{"eth1":{"type":"nic","nictype":"bridged","parent":"br0","name":"eth1"}}}'
is "$HTTP_STATUS" 200 "PATCH adding eth1 to running c1 succeeds (synchronously, as in LXD)"
host1b=$(cfg c1 volatile.eth1.host_name)
ok "eth1 exists inside c1" inside c1 test -e /sys/class/net/eth1
like "$(ip -o link show "$host1b" 2>&1)" 'master br0' "eth1's host end ($host1b) is in br0"
is "$(inside c1 cat /sys/class/net/eth1/address)" "$(cfg c1 volatile.eth1.hwaddr)" "eth1 has its volatile MAC"
ok "the spec on disk has eth1" grep -q "^nic=type=veth,name=eth1," "$BERTH_DIR/run/default_c1/spec"

# reboot from inside keeps both NICs
api GET /1.0/instances/c1/state
pid0=$(jget 'j["metadata"]["pid"]')
# reboot(2) straight away (busybox rcK unmounts /run, where /sbin/reboot leaves its mark)
berth exec c1 -- reboot -f >/dev/null 2>&1
pid1=$pid0
for i in $(seq 1 100); do
	api GET /1.0/instances/c1/state
	pid1=$(jget 'j["metadata"]["pid"]')
	[ "$pid1" != "$pid0" ] && [ "$pid1" != 0 ] && [ -n "$(jget 'j["metadata"]["network"].get("eth1") or ""')" ] && break
	sleep 0.1
done
ok "c1 rebooted from inside (pid $pid0 -> $pid1)" test "$pid1" != "$pid0" -a "$pid1" != 0
[ "$pid1" = 0 ] && diag "stopped: $(cat "$BERTH_DIR/run/default_c1/stopped" 2>&1); monitor.log: $(tail -n 8 "$BERTH_DIR/run/default_c1/monitor.log" 2>&1)"
ok "after the reboot eth0 is back" inside c1 test -e /sys/class/net/eth0
ok "after the reboot eth1 is back" inside c1 test -e /sys/class/net/eth1
is "$(inside c1 cat /sys/class/net/eth0/address)" "$hw1" "... eth0 with the same MAC"
like "$(tc qdisc show dev "$host1")" 'tbf' "... and its limits again"
is "$(ip -o link show type veth | grep -c "$host1@")" 1 "... one host end for eth0, not two"
a1b=$(wait_addr c1 eth0)
ok "c1 gets a lease again after the reboot ($a1b)" test -n "$a1b"

api GET /1.0/instances/c1
body=$(jget 'json.dumps({"config": j["metadata"]["config"], "devices": {"eth0": j["metadata"]["devices"]["eth0"]}, "profiles": j["metadata"]["profiles"], "description": "", "ephemeral": False})')
api PUT /1.0/instances/c1 "$body"
[ "$HTTP_STATUS" = 202 ] && wait_operation "$(jget 'j["operation"]')"
ok "PUT without eth1 succeeds" opok
api GET /1.0/instances/c1
is "$(jget '",".join(sorted(j["metadata"]["devices"]))')" eth0 "... and eth1 is gone from the config"
is "$(jget '",".join(sorted(k for k in j["metadata"]["config"] if k.startswith("volatile.eth1.")))')" "" "... and so are volatile.eth1.*"
is "$(cfg c1 volatile.eth0.hwaddr)" "$hw1" "... while volatile.eth0.hwaddr stays"
ok "eth1 is gone from inside c1" test "$(inside c1 sh -c 'test -e /sys/class/net/eth1 && echo yes || echo no')" = no
ok "eth1's host end is gone" wait_gone "$host1b"
ok "the spec on disk has no eth1" test "$(grep -c 'name=eth1,' "$BERTH_DIR/run/default_c1/spec")" = 0
expect_refused 400 "a bad nic in a PATCH of a running instance is refused" PATCH /1.0/instances/c1 '{"devices":{"eth0":{"type":"nic","nictype":"bridged","parent":"br0"},"eth9":{"type":"nic","nictype":"p2p","mtu":"5"}}}'

# ---- p2p and macvlan ----
ok "create c3 (p2p eth0, macvlan eth1 on mvp0)" create c3 '{"eth0":{"type":"nic","nictype":"p2p","name":"eth0"},"eth1":{"type":"nic","nictype":"macvlan","parent":"mvp0","name":"eth1"}}'
state start c3
ok "start c3" opok
host3=$(cfg c3 volatile.eth0.host_name)
ok "p2p host end exists ($host3)" ip link show "$host3"
unlike "$(ip -o link show "$host3")" 'master' "... and is in no bridge"
ok "p2p eth0 exists inside" inside c3 test -e /sys/class/net/eth0
ok "macvlan eth1 exists inside" inside c3 test -e /sys/class/net/eth1
is "$(inside c3 cat /sys/class/net/eth1/address)" "$(cfg c3 volatile.eth1.hwaddr)" "macvlan eth1 has its volatile MAC"
ok "no macvlan left on the host side" test "$(ip -o link show type macvlan | wc -l)" = 0

# ---- a missing bridge fails the start, leaving nothing ----
ok "create c4 (parent=nosuchbr)" create c4 '{"eth0":{"type":"nic","nictype":"bridged","parent":"nosuchbr"}}'
v0=$(veths)
state start c4
unlike "$(jget 'j["metadata"]["status"]')" Success "starting c4 fails"
like "$(opmsg)" 'bridge "nosuchbr" not found' "... saying the bridge is missing"
is "$(veths)" "$v0" "... and leaves no veth"
api GET /1.0/instances/c4/state
is "$(jget 'j["metadata"]["status"]')" Stopped "... c4 is Stopped"

# ---- stop: no host-side veth left ----
for c in c1 c2 c3; do state stop "$c" '"force":true'; done
ok "every container stopped" test "$(monitors)" = 0
is "$(veths)" "$veths1" "no host-side veth is left after the stops"
ok "no ifb is left after the stops" test "$(ip -o link show type ifb | wc -l)" = 0
for c in c1 c2 c3 c4; do
	api DELETE "/1.0/instances/$c"
	[ "$HTTP_STATUS" = 202 ] && wait_operation "$(jget 'j["operation"]')"
done
ok "instances deleted" test "$(jget 'j["metadata"]["status"]')" = Success

kill "$DNSMASQ_PID" 2>/dev/null
wait "$DNSMASQ_PID" 2>/dev/null
DNSMASQ_PID=
is "$(links)" "$links1" "links back to the bridge and dummy only"
ip link del br0
ip link del mvp0
is "$(links)" "$links0" "links counted before and after"
is "$(mounts)" "$mounts0" "mounts counted before and after"
is "$(cgroups)" "$cgroups0" "cgroups counted before and after"
is "$(procs)" "$procs0" "processes in the daemon's cgroups before and after"
check_no_fd_leak "$fds0" "berthd's fds settle back"
daemon_alive "berthd still answers"
