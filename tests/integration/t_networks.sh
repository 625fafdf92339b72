#!/bin/bash
# tests/integration/t_networks.sh: managed bridge networks end to end, without
# containers, against a private berthd in its own network and mount namespaces:
# berthbr0 and the default profile's eth0 on first start; a network created, a DHCP
# client in a "client" namespace (a veth enslaved to the bridge) leased an address
# and resolved by NAME.berth through dnsmasq, reaching a server in an "outside"
# namespace through the NAT (the server sees the masqueraded address); refusals
# (overlapping subnets naming the overlap, bad keys and values, delete/rename in
# use); a restart keeping dnsmasq and the NAT rules exactly once; the stock lxc
# client; and nothing left after delete (bridge, nft table, dnsmasq, state). TAP.
#
# Every namespace here is made by this test (unshare), inside the test's own
# network namespace; no packet leaves it.

. "$(dirname "$0")/lib.sh"

if [ "$(id -u)" = 0 ]; then
	command -v dnsmasq >/dev/null || skip_all "dnsmasq not found (apt-get install dnsmasq-base)"
	command -v nft >/dev/null || skip_all "nft not found (apt-get install nftables)"
	command -v busybox >/dev/null || skip_all "busybox not found (apt-get install busybox-static)"
fi
berth_test_init "$@"
export PATH=$BERTH_BUILDDIR:$PATH
export LXD_CONF=$TEST_TMP/lxd-conf
mkdir -p "$LXD_CONF"
unset LXD_DIR

NS_PIDS=()
net_cleanup()
{
	local p
	for p in "${NS_PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	_berth_test_exit
}
trap net_cleanup EXIT

has()
{
	local d=$1 pat=$2
	shift 2
	out=$("$@" 2>&1)
	if printf '%s' "$out" | grep -qE -- "$pat"; then pass "$d"; else fail "$d" "$out" "want: $pat"; fi
}

# What this daemon runs and holds, counted before and after.
dnsmasqs() { pgrep -fc -- "^dnsmasq --conf-file=$BERTH_DIR/networks/" || true; }
dnsmasq_pid() { local f=$BERTH_DIR/networks/$1/dnsmasq.pid; [ -f "$f" ] && cat "$f"; }
links() { ip -o link show | wc -l; }
nft_tables() { nft list tables | grep -c 'berth-' || true; }
masq_rules() { nft list table inet "berth-$1" 2>/dev/null | grep -c masquerade || true; }
mounts() { grep -cF " $BERTH_DIR/" /proc/self/mountinfo || true; }
CG=berth-$(printf '%s' "$BERTH_DIR" | sha256sum | cut -c1-8)
cgroups() { ls -d /sys/fs/cgroup/*/"$CG" /sys/fs/cgroup/"$CG" 2>/dev/null | wc -l; }
# Processes in this test's network namespace (berthd, dnsmasq, the helpers).
procs()
{
	local me p n=0
	me=$(readlink /proc/self/ns/net)
	for p in /proc/[0-9]*; do
		[ "$(readlink "$p/ns/net" 2>/dev/null)" = "$me" ] && n=$((n + 1))
	done
	echo "$n"
}

# ---- first start: berthbr0 and the default profile's eth0 ----
has "berthbr0 is listed as a managed bridge" '\| berthbr0 +\| bridge +\| YES +\| 10\.' berth network list
api GET /1.0/networks/berthbr0
is "$(jget 'j["metadata"]["config"]["ipv4.nat"]')" true "berthbr0 has ipv4.nat"
like "$(jget 'j["metadata"]["config"]["ipv6.address"]')" '^fd[0-9a-f]{2}:.*::1/64$' "berthbr0 has a ULA /64"
is "$(jget 'j["metadata"]["used_by"]')" '["/1.0/profiles/default"]' "berthbr0 is used by the default profile"
api GET /1.0/profiles/default
is "$(jget 'j["metadata"]["devices"]["eth0"]')" '{"name": "eth0", "network": "berthbr0", "type": "nic"}' \
	"the default profile has eth0 on berthbr0"
check "berthbr0's dnsmasq runs" kill -0 "$(dnsmasq_pid berthbr0)"
is "$(masq_rules berthbr0)" 2 "berthbr0's table has one masquerade rule per family"
is "$(sysctl -n net.ipv4.ip_forward)" 1 "IPv4 forwarding is on in berthd's namespace"

# An instance using berthbr0 through the default profile counts as a user.
api POST /1.0/instances '{"name":"i1","source":{"type":"none"}}'
wait_operation "$(jget 'j["operation"]')"
is "$(jget 'j["metadata"]["status"]')" Success "setup: instance record i1 (default profile)"
api GET /1.0/networks/berthbr0
is "$(jget 'j["metadata"]["used_by"]')" '["/1.0/instances/i1", "/1.0/profiles/default"]' \
	"used_by lists the instance using berthbr0 through its profile"
expect_error 400 "DELETE of berthbr0 in use is 400" DELETE /1.0/networks/berthbr0
like "$(jget 'j["error"]')" 'in use by /1.0/instances/i1, /1.0/profiles/default' "... naming its users"
api DELETE /1.0/instances/i1
wait_operation "$(jget 'j["operation"]')"
is "$(jget 'j["metadata"]["status"]')" Success "instance record i1 deleted"

# Unmanaged links are listed.
api GET /1.0/networks
like "$HTTP_BODY" '"/1.0/networks/lo"' "GET /1.0/networks lists lo"
api GET /1.0/networks/lo
is "$(jget '[j["metadata"]["managed"], j["metadata"]["type"]]')" '[false, "loopback"]' "lo: unmanaged loopback"
expect_error 400 "PUT on an unmanaged link is refused" PUT /1.0/networks/lo '{"config":{}}'
expect_error 404 "an unknown network is 404" GET /1.0/networks/nope

# Counts with berthbr0 up, before anything else.
D0=$(dnsmasqs) L0=$(links) T0=$(nft_tables) M0=$(mounts) C0=$(cgroups) P0=$(procs)
is "$D0" 1 "one dnsmasq runs (berthbr0's)"

# ---- create ----
check "create tnet" berth network create tnet ipv4.address=10.123.7.1/24 ipv6.address=none \
	ipv4.nat=true --description "test net"
has "tnet listed" '\| tnet +\| bridge +\| YES +\| 10\.123\.7\.1/24 +\| none +\| test net' berth network list
has "tnet has its address" 'inet 10\.123\.7\.1/24' ip -o addr show dev tnet
is "$(dnsmasqs)" 2 "tnet has its dnsmasq"
is "$(masq_rules tnet)" 1 "tnet's NAT rule is there once"
for f in dnsmasq.conf dnsmasq.pid dnsmasq.hosts; do
	[ -e "$BERTH_DIR/networks/tnet/$f" ] && pass "state file networks/tnet/$f" ||
		fail "state file networks/tnet/$f"
done
has "dnsmasq serves the domain berth" '^domain=berth$' cat "$BERTH_DIR/networks/tnet/dnsmasq.conf"
has "dnsmasq's DHCP range is in the subnet" '^dhcp-range=10\.123\.7\.2,10\.123\.7\.254,' \
	cat "$BERTH_DIR/networks/tnet/dnsmasq.conf"

# ---- refusals ----
refuse "an overlapping subnet is refused, naming the route" \
	'Network address "10.123.7.9/24" overlaps with route 10.123.7.0/24 on dev tnet' \
	berth network create bad1 ipv4.address=10.123.7.9/24 ipv6.address=none
refuse "a subnet containing another is refused" 'overlaps with route 10.123.7.0/24 on dev tnet' \
	berth network create bad1 ipv4.address=10.123.0.1/16 ipv6.address=none
refuse "an unknown key is refused" 'Invalid option for network "bad1" option "bogus.key"' \
	berth network create bad1 bogus.key=1
refuse "a bad boolean is refused" '"maybe" is not a boolean' berth network create bad1 ipv4.nat=maybe
refuse "a bad address is refused" 'option "ipv4.address"' berth network create bad1 ipv4.address=10.1.2.300/24
refuse "the subnet's own address is refused" "the subnet's own address" \
	berth network create bad1 ipv4.address=10.1.2.0/24
refuse "a bad MTU is refused" 'is not an MTU' berth network create bad1 bridge.mtu=12
refuse "a DHCP range outside the subnet is refused" '10.200.0.1 is not in 10.123.8.1/24' \
	berth network create bad1 ipv4.address=10.123.8.1/24 ipv4.dhcp.ranges=10.123.8.10-10.200.0.1
refuse "a too long name is refused" 'must be 1 to 15 characters' berth network create abcdefghijklmnop
refuse "another type is refused" "isn't supported" berth network create bad1 --type macvlan
refuse "an existing name is refused" 'already exists' berth network create tnet
refuse "a set with a bad value is refused" 'is not a boolean' berth network set tnet ipv4.dhcp nah
is "$(links)" "$((L0 + 1))" "no bridge left by the refused creations"
has "tnet's config unchanged by the refused set" '^10\.123\.7\.1/24$' berth network get tnet ipv4.address

# ---- DHCP and DNS: a client namespace on the bridge ----
unshare --net sleep 3600 &
CPID=$!
NS_PIDS+=("$CPID")
unshare --net sleep 3600 &
OPID=$!
NS_PIDS+=("$OPID")
sleep 0.2
cat >"$TEST_TMP/udhcpc.sh" <<'SCRIPT'
#!/bin/sh
case $1 in
bound | renew)
	ip addr add "$ip/$mask" dev "$interface"
	[ -n "$router" ] && ip route add default via "${router%% *}"
	echo "$ip" >"$LEASE_OUT"
	;;
esac
exit 0
SCRIPT
chmod +x "$TEST_TMP/udhcpc.sh"
in_client() { nsenter --net="/proc/$CPID/ns/net" "$@"; }
in_outside() { nsenter --net="/proc/$OPID/ns/net" "$@"; }
ip link add vc0 type veth peer name vc1 &&
	ip link set vc1 netns "$CPID" && ip link set vc0 master tnet up &&
	in_client ip link set lo up && in_client ip link set vc1 address 00:16:3e:aa:bb:01 up
has "the client's veth is in tnet" "master tnet" ip -o link show vc0
api GET /1.0/networks/tnet/state
like "$(jget 'j["metadata"]["bridge"]["upper_devices"]')" "vc0" "GET .../state lists vc0 as an upper device"
is "$(jget 'j["metadata"]["addresses"][0]["address"]')" 10.123.7.1 "GET .../state shows the address"

export LEASE_OUT=$TEST_TMP/lease
check "udhcpc gets a lease" in_client timeout 20 busybox udhcpc -i vc1 -n -q -t 10 -T 1 \
	-x hostname:client1 -s "$TEST_TMP/udhcpc.sh"
LEASE=$(cat "$LEASE_OUT" 2>/dev/null)
like "$LEASE" '^10\.123\.7\.([2-9]|[1-9][0-9]|1[0-9][0-9]|2[0-4][0-9]|25[0-4])$' "the lease is in the DHCP range"
has "berth network list-leases shows it" "\\| client1 +\\| 00:16:3e:aa:bb:01 +\\| $LEASE +\\| DYNAMIC" \
	berth network list-leases tnet
api GET /1.0/networks/tnet/leases
is "$(jget '[(l["hostname"], l["type"], l["location"]) for l in j["metadata"]]')" \
	'[["client1", "dynamic", "none"]]' "GET .../leases: one dynamic lease"
has "client1.berth resolves to the lease" "Address: $LEASE" \
	in_client busybox nslookup client1.berth 10.123.7.1
check "the bridge answers pings from the client" in_client busybox ping -c1 -W2 10.123.7.1

# ---- NAT: an "outside" namespace behind a veth of berthd's namespace ----
ip link add vo0 type veth peer name vo1 &&
	ip link set vo1 netns "$OPID" && ip addr add 192.0.2.1/24 dev vo0 && ip link set vo0 up &&
	in_outside ip link set lo up && in_outside ip addr add 192.0.2.2/24 dev vo1 &&
	in_outside ip link set vo1 up
check "the outside namespace is wired" busybox ping -c1 -W2 192.0.2.2
refuse "a subnet overlapping the outside route is refused" \
	'overlaps with route 192.0.2.0/24 on dev vo0' \
	berth network create bad2 ipv4.address=192.0.2.77/24 ipv6.address=none
in_outside /usr/bin/python3 -c '
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("192.0.2.2", 8080)); s.listen(1); s.settimeout(20)
c, a = s.accept(); open(sys.argv[1], "w").write(a[0]); c.sendall(b"hello from outside\n"); c.close()
' "$TEST_TMP/peer" &
SRV=$!
NS_PIDS+=("$SRV")
sleep 0.5
has "the client reaches the outside server" 'hello from outside' in_client timeout 10 busybox nc 192.0.2.2 8080
wait "$SRV" 2>/dev/null
is "$(cat "$TEST_TMP/peer" 2>/dev/null)" 192.0.2.1 "the server sees the masqueraded address (not $LEASE)"

# ---- config changes ----
DPID=$(dnsmasq_pid tnet)
check "ipv4.nat false" berth network set tnet ipv4.nat=false
is "$(masq_rules tnet)" 0 "without NAT, tnet has no table"
is "$(dnsmasq_pid tnet)" "$DPID" "a NAT change keeps dnsmasq"
check "ipv4.nat true again" berth network set tnet ipv4.nat true
is "$(masq_rules tnet)" 1 "the NAT rule is back, once"
check "dns.domain changed" berth network set tnet dns.domain=example.internal
DPID2=$(dnsmasq_pid tnet)
[ -n "$DPID2" ] && [ "$DPID2" != "$DPID" ] && pass "a dns.domain change restarts dnsmasq" ||
	fail "a dns.domain change restarts dnsmasq" "pid $DPID -> $DPID2"
has "the new domain is served" '^domain=example.internal$' cat "$BERTH_DIR/networks/tnet/dnsmasq.conf"
check "dns.domain unset" berth network unset tnet dns.domain
check "ipv4.dhcp.ranges set" berth network set tnet ipv4.dhcp.ranges=10.123.7.100-10.123.7.150,10.123.7.200-10.123.7.210
has "dnsmasq gets both ranges" '^dhcp-range=10\.123\.7\.100,10\.123\.7\.150,1h$' cat "$BERTH_DIR/networks/tnet/dnsmasq.conf"
has "... the second one too" '^dhcp-range=10\.123\.7\.200,10\.123\.7\.210,1h$' cat "$BERTH_DIR/networks/tnet/dnsmasq.conf"
check "ipv4.dhcp.ranges unset" berth network unset tnet ipv4.dhcp.ranges
refuse "a raw.dnsmasq that dnsmasq rejects fails the change" 'Cannot start dnsmasq for network "tnet"' \
	berth network set tnet raw.dnsmasq=no-such-option=1
is "$(berth network get tnet raw.dnsmasq)" "" "... and the config is unchanged"
check "... and the old dnsmasq config runs again" kill -0 "$(dnsmasq_pid tnet)"
has "... serving the old domain" '^domain=berth$' cat "$BERTH_DIR/networks/tnet/dnsmasq.conf"
is "$(dnsmasqs)" 2 "still one dnsmasq per network"
api PATCH /1.0/networks/tnet '{"config":{"user.note":"x"}}'
is "$HTTP_STATUS" 200 "PATCH merges a user key"
has "... and keeps the rest" '^10\.123\.7\.1/24$' berth network get tnet ipv4.address
printf 'description: edited\nconfig:\n  ipv4.address: 10.123.7.1/24\n  ipv6.address: none\n  ipv4.nat: "true"\n' >"$TEST_TMP/edit.yaml"
check "berth network edit (YAML on stdin)" sh -c "berth network edit tnet <'$TEST_TMP/edit.yaml'"
has "... sets the description" '^description: edited$' berth network show tnet
is "$(berth network get tnet user.note)" "" "... and drops what the YAML leaves out"
api GET /1.0/networks/tnet
api PUT /1.0/networks/tnet '{"config":{}}' -H 'If-Match: "nope"'
is "$HTTP_STATUS" 412 "PUT with a stale ETag is 412"

# ---- in use ----
check "a profile with a nic on tnet" berth profile create pnet
api PATCH /1.0/profiles/pnet '{"devices":{"eth1":{"type":"nic","network":"tnet","name":"eth1"}}}'
is "$HTTP_STATUS" 200 "profile pnet gets a nic on tnet"
api GET /1.0/networks/tnet
is "$(jget 'j["metadata"]["used_by"]')" '["/1.0/profiles/pnet"]' "used_by names the profile"
expect_error 400 "DELETE of a network in use is 400" DELETE /1.0/networks/tnet
like "$(jget 'j["error"]')" '/1.0/profiles/pnet' "... naming the profile"
refuse "rename of a network in use is refused" 'in use by /1.0/profiles/pnet' berth network rename tnet tnet2
check "tnet still up" ip link show tnet
api PUT /1.0/profiles/pnet '{"config":{},"devices":{}}'
is "$HTTP_STATUS" 200 "the nic is removed from pnet"
check "profile pnet deleted" berth profile delete pnet

# ---- restart: dnsmasq re-adopted, NAT rules once, leases kept ----
DPID=$(dnsmasq_pid tnet) BPID=$(dnsmasq_pid berthbr0)
daemon_restart
is "$(dnsmasq_pid tnet)" "$DPID" "tnet's dnsmasq is re-adopted after a restart"
is "$(dnsmasq_pid berthbr0)" "$BPID" "berthbr0's dnsmasq is re-adopted"
is "$(masq_rules tnet)" 1 "tnet's NAT rule is there exactly once after the restart"
is "$(masq_rules berthbr0)" 2 "berthbr0's NAT rules are there exactly once"
is "$(nft list ruleset | grep -c masquerade)" 3 "the ruleset holds 3 masquerade rules in all"
has "the lease survives the restart" "client1 +\\| 00:16:3e:aa:bb:01 +\\| $LEASE" berth network list-leases tnet
# A dnsmasq killed while berthd was down is started again, with its leases.
daemon_stop
kill -TERM "$DPID"
sleep 0.3
daemon_start
FD0=$(daemon_fds)
DPID2=$(dnsmasq_pid tnet)
[ -n "$DPID2" ] && [ "$DPID2" != "$DPID" ] && kill -0 "$DPID2" && pass "a dead dnsmasq is restarted" ||
	fail "a dead dnsmasq is restarted" "pid $DPID -> $DPID2"
has "... keeping the leases" "client1 +\\| 00:16:3e:aa:bb:01 +\\| $LEASE" berth network list-leases tnet
has "client1.berth still resolves" "Address: $LEASE" in_client busybox nslookup client1.berth 10.123.7.1

# ---- the stock lxc client ----
if command -v lxc >/dev/null; then
	check "lxc remote add" lxc remote add b "unix://$BERTH_SOCKET"
	has "lxc network list" '\| tnet +\| bridge +\| YES +\| 10\.123\.7\.1/24' lxc network list b:
	check "lxc network create" lxc network create b:lx1 ipv4.address=10.124.0.1/24 ipv6.address=none
	check "lxc network set" lxc network set b:lx1 ipv4.nat=true
	has "lxc network show" 'ipv4.nat: "true"' lxc network show b:lx1
	has "lxc network info" 'inet\s+10\.124\.0\.1/24' lxc network info b:lx1
	has "lxc network list-leases" "client1 +\\| 00:16:3e:aa:bb:01 +\\| $LEASE +\\| DYNAMIC" \
		lxc network list-leases b:tnet
	check "lxc network delete" lxc network delete b:lx1
	refuse "lx1 is gone" 'not found' lxc network show b:lx1
else
	skip "lxc client" "lxc not installed"
fi

# ---- rename and delete ----
ip link del vc0
check "rename tnet to tnet2" berth network rename tnet tnet2
refuse "no bridge tnet after the rename" 'does not exist' ip link show tnet
check "bridge tnet2 exists" ip link show tnet2
is "$(masq_rules tnet2)" 1 "tnet2 has the NAT rule"
check "delete tnet2" berth network delete tnet2
refuse "no bridge after delete" 'does not exist' ip link show tnet2
is "$(masq_rules tnet2)" 0 "no nft table after delete"
[ ! -e "$BERTH_DIR/networks/tnet2" ] && [ ! -e "$BERTH_DIR/networks/tnet" ] &&
	pass "no state directory after delete" || fail "no state directory after delete"

ip link del vo0
for p in "${NS_PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
NS_PIDS=()
is "$(dnsmasqs)" "$D0" "dnsmasq processes: as before ($D0)"
is "$(links)" "$L0" "links: as before ($L0)"
is "$(nft_tables)" "$T0" "berth nft tables: as before ($T0)"
is "$(mounts)" "$M0" "mounts: as before"
is "$(cgroups)" "$C0" "cgroups: as before"
P1=$(procs)
[ "$P1" -le "$((P0 + 2))" ] && pass "processes: as before ($P0 -> $P1)" || fail "processes: as before" "$P0 -> $P1"

check_no_fd_leak "$FD0" "berthd holds no more fds than before the lxc, rename and delete steps"

# ---- the last network gone: nothing of berth in the ruleset ----
api PUT /1.0/profiles/default '{"description":"Default LXD profile","config":{},"devices":{"root":{"type":"disk","path":"/","pool":"default"}}}'
is "$HTTP_STATUS" 200 "eth0 dropped from the default profile"
check "delete berthbr0" berth network delete berthbr0
is "$(nft list ruleset | grep -c berth)" 0 "no berth table left in the ruleset"
is "$(dnsmasqs)" 0 "no dnsmasq left"
refuse "no berthbr0 left" 'does not exist' ip link show berthbr0

# ---- first start where berthbr0 cannot be made: a warning, berthd runs without it ----
daemon_stop
_kill_leftover_dnsmasq # none when the checks above passed; a failed one may leave some
rm -rf "$BERTH_DIR"
mkdir -p "$BERTH_DIR"
check "a veth named berthbr0 is in the way" ip link add berthbr0 type veth peer name bbpeer0
daemon_start
has "berthd warns that it cannot create berthbr0" \
	'Cannot create the default network "berthbr0".*goes on without it' cat "$DAEMON_LOG"
api GET /1.0/networks/berthbr0
is "$(jget 'j["metadata"]["managed"]')" false "berthbr0 is only the unmanaged veth"
api GET /1.0/profiles/default
is "$(jget '"eth0" in j["metadata"]["devices"]')" false "the default profile has no eth0 then"
is "$(dnsmasqs)" 0 "no dnsmasq runs"
is "$(nft list ruleset | grep -c berth)" 0 "no berth table"
ip link del berthbr0
