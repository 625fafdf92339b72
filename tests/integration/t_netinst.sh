#!/bin/bash
# tests/integration/t_netinst.sh: managed networks with real containers, end to end, as
# an admin sees them: berthd's default network berthbr0, busybox containers taking DHCP
# leases on it, shown by `berth list` and the state API, resolving each other as
# NAME.berth, reaching a server in a third network namespace that stands for the outside
# only through berthd's NAT (the server sees the masqueraded address and has no route
# back), a static ipv4.address honoured (`berth launch -d eth0,ipv4.address=...`), the
# stock lxc client listing the addresses, and in the full run (BERTH_TEST_FULL=1) two
# Debian 12 containers with systemd-networkd pinging each other by name. Everything runs
# inside network namespaces this test made. Links, processes, mounts and cgroups are
# counted before and after.
. "$(dirname "$0")/lib.sh"
recipes=(busybox)
[ "${BERTH_TEST_FULL:-}" = 1 ] && recipes+=(debian-12)
berth_test_images "${recipes[@]}"
: "${BERTH_MONITOR:=$BERTH_BUILDDIR/berth-monitor}"
BERTHD_ENV=(BERTH_MONITOR="$BERTH_MONITOR")
berth_test_init "$@"
export PATH=$BERTH_BUILDDIR:$PATH
export LXD_CONF=$TEST_TMP/lxd-conf
mkdir -p "$LXD_CONF"

mounts() { own_mounts; }
CGH=berth-$(printf '%s' "$BERTH_DIR" | sha256sum | cut -c1-8)
cgroups() { find /sys/fs/cgroup -maxdepth 3 -type d -name "$CGH" 2>/dev/null | wc -l; }
monitors() { pgrep -cf "^$BERTH_MONITOR start $BERTH_DIR/" || true; }
veths() { ip -o link show type veth | grep -c . || true; }
isnt_zero() { [ "$1" != 0 ]; }

# ipv4_of NAME [SECONDS]: the IPv4 address on eth0 from the state API once the
# container holds a lease (empty after SECONDS, default 30).
ipv4_of()
{
	local i
	for i in $(seq $((${2:-30} * 5))); do
		api GET "/1.0/instances/$1/state"
		jget '[a["address"] for a in ((j["metadata"].get("network") or {}).get("eth0") or {}).get("addresses", []) if a["family"] == "inet"][0]' 2>/dev/null && return 0
		sleep 0.2
	done
	return 0
}

mounts0=$(mounts)
cgroups0=$(cgroups)
outside=
server=
cleanup_outside()
{
	local p
	for p in $server $outside; do
		kill "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
}
trap 'cleanup_outside; _berth_test_exit' EXIT

# ---- the default network ----
run berth network list -f csv
rc_ok "berth network list"
like "$OUT" '^berthbr0,bridge,YES' "berthbr0 exists, managed, from the first start"
run berth network get berthbr0 ipv4.address
like "$OUT" '^[0-9]+\.[0-9]+\.[0-9]+\.1/24$' "berthbr0 got an IPv4 /24 ($OUT)"
gw=${OUT%/24}
prefix=${gw%.1}
run berth profile device get default eth0 network
is "$OUT" berthbr0 "the default profile's eth0 joins berthbr0"

# ---- the outside: a third namespace joined to berthd's by a veth ----
unshare --net sleep 3600 &
outside=$!
for _ in $(seq 50); do [ "$(readlink /proc/$outside/ns/net)" != "$(readlink /proc/self/ns/net)" ] && break; sleep 0.05; done
ip link add vout type veth peer name vin netns "$outside"
ip addr add 198.51.100.1/24 dev vout
ip link set vout up
onet() { nsenter --net=/proc/"$outside"/ns/net "$@"; }
onet ip link set lo up
onet ip addr add 198.51.100.2/24 dev vin
onet ip link set vin up
mkdir -p "$TEST_TMP/www"
echo "outside-$$" >"$TEST_TMP/www/marker"
# nsenter itself, not the onet function: a background function is a subshell, and
# killing that would leave the server running
nsenter --net=/proc/"$outside"/ns/net $PY -m http.server 8000 --bind 198.51.100.2 \
	--directory "$TEST_TMP/www" >"$TEST_TMP/http.log" 2>&1 &
server=$!
for _ in $(seq 100); do onet $PY -c 'import socket; socket.create_connection(("198.51.100.2", 8000), 1)' 2>/dev/null && break; sleep 0.1; done
is "$(onet ip -4 route show | grep -c "^$prefix\.")" 0 "the outside has no route back to berthbr0's subnet"
veths0=$(veths)

# ---- busybox containers on berthbr0 ----
check "import the busybox image" berth image import "${IMAGE[busybox]}" --alias busybox
t0=$(date +%s%N)
run berth launch busybox c1
rc_ok "berth launch busybox c1"
ip1=$(ipv4_of c1)
t1=$(date +%s%N)
like "$ip1" "^$prefix\.[0-9]+$" "c1 holds a DHCP lease in berthbr0's subnet ($ip1)"
diag "launch to DHCP lease: $(((t1 - t0) / 1000000)) ms"
run berth list -f csv -c n4
like "$OUT" "^c1,\"?$ip1 \(eth0\)" "berth list shows c1's address"
run berth exec c1 -- ip -4 route show default
like "$OUT" "via $gw" "c1's default route is berthbr0's address"

run berth launch busybox c2 -d "eth0,ipv4.address=$prefix.77"
rc_ok "launch c2 with -d eth0,ipv4.address=$prefix.77"
ip2=$(ipv4_of c2)
is "$ip2" "$prefix.77" "c2 got the static address"
run berth config device get c2 eth0 ipv4.address
is "$OUT" "$prefix.77" "the override is c2's own eth0"
run berth network list-leases berthbr0
like "$OUT" "c1 .*$ip1" "list-leases shows c1"
like "$OUT" "c2 .*$prefix\\.77" "list-leases shows c2"

run berth exec c1 -- ping -4 -c 1 -W 3 c2.berth
rc_ok "c1 pings c2.berth"
like "$OUT" "$prefix\.77" "... which resolves to c2's static address"
run berth exec c2 -- ping -c 1 -W 3 "$gw"
rc_ok "c2 pings berthbr0's address"

# ---- NAT to the outside ----
run berth exec c1 -- wget -q -O - http://198.51.100.2:8000/marker
rc_ok "c1 fetches from the outside namespace"
is "$OUT" "outside-$$" "... the outside's page"
like "$(cat "$TEST_TMP/http.log")" '^198\.51\.100\.1 ' "the outside saw berthd's address (masquerade), not c1's"
unlike "$(cat "$TEST_TMP/http.log")" "^$prefix\." "... never a container address"
run berth network set berthbr0 ipv4.nat=false
rc_ok "turn NAT off"
run berth exec c1 -- wget -q -T 3 -O - http://198.51.100.2:8000/marker
ok "without NAT the outside cannot answer c1" isnt_zero "$RC"
run berth network set berthbr0 ipv4.nat=true
rc_ok "turn NAT on again"
# dnsmasq restarts with the config change: the lease must survive it
is "$(ipv4_of c1)" "$ip1" "c1 keeps its address across the network change"

# ---- the stock lxc client ----
if command -v lxc >/dev/null; then
	lxc remote add b "unix://$BERTH_SOCKET" >/dev/null 2>&1
	out=$(lxc list b: -c n4 --format csv 2>&1)
	like "$out" "c1,$ip1 \(eth0\)" "lxc list shows c1's address"
	out=$(lxc network list-leases b:berthbr0 --format csv 2>&1)
	like "$out" "c2,.*$prefix\.77" "lxc network list-leases shows c2's static lease"
else
	skip "lxc list with addresses" "the lxc client is not installed"
fi

# ---- proxy devices into c2: userspace from berthd's namespace, DNAT from the outside ----
run berth exec c2 -- sh -c 'mkdir -p /www && echo "web-of-c2" >/www/index.html && httpd -p 80 -h /www'
rc_ok "busybox httpd on port 80 in c2"
run berth config device add c2 web proxy listen=tcp:127.0.0.1:8080 connect=tcp:127.0.0.1:80
rc_ok "a proxy device on the running c2 (userspace, listen on berthd's loopback)"
for _ in $(seq 50); do
	got=$($PY -c 'import urllib.request; print(urllib.request.urlopen("http://127.0.0.1:8080/", timeout=2).read().decode().strip())' 2>/dev/null) && break
	sleep 0.1
done
is "$got" web-of-c2 "the proxy serves c2's port 80 on 127.0.0.1:8080"
run berth config device add c2 nat proxy listen=tcp:198.51.100.1:8081 "connect=tcp:$prefix.77:80" nat=true
rc_ok "a nat=true proxy device to c2's static address"
got=$(onet $PY -c 'import urllib.request; print(urllib.request.urlopen("http://198.51.100.1:8081/", timeout=3).read().decode().strip())' 2>&1)
is "$got" web-of-c2 "the outside reaches c2's web server through the DNAT"
run berth config device add c1 natbad proxy listen=tcp:198.51.100.1:8082 "connect=tcp:$ip1:80" nat=true
ok "nat=true to a dynamic address is refused" isnt_zero "$RC"
run berth config device remove c2 web nat
rc_ok "remove both proxy devices"
got=$(onet $PY -c 'import urllib.request; print(urllib.request.urlopen("http://198.51.100.1:8081/", timeout=2).read().decode().strip())' 2>&1)
unlike "$got" web-of-c2 "... and the DNAT is gone"

# ---- launch -n ----
run berth launch busybox c3 -n berthbr0
rc_ok "berth launch -n berthbr0"
run berth config device get c3 eth0 network
is "$OUT" berthbr0 "... gives c3 its own eth0 on berthbr0"
like "$(ipv4_of c3)" "^$prefix\." "... which takes a lease"
if command -v lxc >/dev/null; then
	run lxc launch b:busybox b:c4 -n berthbr0
	rc_ok "lxc launch -n berthbr0"
	like "$(ipv4_of c4)" "^$prefix\." "... c4 takes a lease"
	run berth delete --force c4
fi
run berth delete --force c3

run berth network delete berthbr0
ok "deleting berthbr0 while in use is refused" isnt_zero "$RC"
like "$ERR" 'in use' "... saying it is in use"

# ---- Debian 12 with systemd-networkd (full run) ----
if [ -n "${IMAGE[debian-12]:-}" ]; then
	check "import the debian/12 image" berth image import "${IMAGE[debian-12]}" --alias debian/12
	run berth launch debian/12 d1
	rc_ok "launch debian/12 d1"
	run berth launch debian/12 d2
	rc_ok "launch debian/12 d2"
	d1=$(ipv4_of d1 90)
	d2=$(ipv4_of d2 90)
	like "$d1" "^$prefix\." "d1 holds a lease ($d1)"
	like "$d2" "^$prefix\." "d2 holds a lease ($d2)"
	# -4: once SLAAC has given d2 an address, dnsmasq also answers AAAA and
	# Debian's ping would take that one
	for _ in $(seq 30); do
		run berth exec d1 -- ping -4 -c 1 -W 2 d2.berth
		[ "$RC" = 0 ] && break
		sleep 1
	done
	rc_ok "d1 pings d2.berth"
	like "$OUT" "$d2" "... at d2's IPv4 address"
	run berth exec d2 -- ping -c 1 -W 2 c1.berth
	rc_ok "d2 pings c1.berth"
	run berth delete --force d1 d2
	rc_ok "delete d1 d2"
fi

run berth delete --force c1 c2
rc_ok "delete c1 c2"
for _ in $(seq 50); do [ "$(veths)" = "$veths0" ] && break; sleep 0.1; done
is "$(veths)" "$veths0" "no veth left"
is "$(monitors)" 0 "no monitor left"
is "$(cgroups)" "$cgroups0" "no cgroup left"
is "$(mounts)" "$mounts0" "no mount left"
