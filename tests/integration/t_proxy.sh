#!/bin/bash
# tests/integration/t_proxy.sh: LXD's proxy device on busybox containers (doc/proxy.md):
# tcp to busybox httpd inside, udp echo, a unix socket on the host to tcp inside, a unix
# socket inside the container's root (and a symlink there that must not lead out), port
# ranges (paired and many-to-one), a device from a profile (and the profile changed),
# bind=instance (tcp and a unix socket made inside the
# container's root, forwarding to a server on the host), hot-plug and unplug on a running container, a reboot of
# the container (same helper, new namespace; a restart from the API starts new ones),
# berthd restarted with SIGTERM and SIGKILL
# (helpers re-adopted, never duplicated; a killed helper restarted), stop (no helper, no
# listener, no socket file left), nat=true rules (present once while running, gone after
# stop; traffic through the DNAT to a veth the test gives the container by hand) and bad
# devices refused with 400. Processes, mounts, cgroups and berthd's fds are
# counted before and after. Everything runs in the test's own network namespace. TAP.
if [ -z "${BERTH_IN_NETNS:-}" ] && [ "$(id -u)" = 0 ]; then
	T_PX_OUT=$(mktemp -d /tmp/berth-t-px.XXXXXX)
	srcdir=${BERTH_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
	"$srcdir/images/build" busybox "$T_PX_OUT" >"$T_PX_OUT/fp" 2>"$T_PX_OUT/log" ||
		rm -f "$T_PX_OUT/fp"
	export T_PX_OUT
fi

. "$(dirname "$0")/lib.sh"
[ -n "${BERTH_IN_NETNS:-}" ] && trap 'rm -rf "$T_PX_OUT"' EXIT
: "${BERTH_MONITOR:=$BERTH_BUILDDIR/berth-monitor}"
: "${BERTH_PROXY:=$BERTH_BUILDDIR/berth-proxy}"
if [ "$(id -u)" = 0 ]; then
	[ -s "$T_PX_OUT/fp" ] || skip_all "the busybox image could not be built: $(tail -n 1 "$T_PX_OUT/log")"
	[ -x "$BERTH_MONITOR" ] || skip_all "no berth-monitor at $BERTH_MONITOR (build it first)"
	[ -x "$BERTH_PROXY" ] || skip_all "no berth-proxy at $BERTH_PROXY (build it first)"
	command -v nft >/dev/null || skip_all "nft (nftables) not installed"
fi
BERTHD_ENV=(BERTH_MONITOR="$BERTH_MONITOR" BERTH_PROXY="$BERTH_PROXY")
berth_test_init "$@"
export PATH=$BERTH_BUILDDIR:$PATH

mounts() { own_mounts; }
CGH=berth-$(printf '%s' "$BERTH_DIR" | sha256sum | cut -c1-8)
cgroups() { find /sys/fs/cgroup -maxdepth 3 -type d -name "$CGH" 2>/dev/null | wc -l; }
helpers() { pgrep -cf "^$BERTH_PROXY start $BERTH_DIR/" || true; }
monitors() { pgrep -cf "^$BERTH_MONITOR start $BERTH_DIR/" || true; }
nfds() { ls "/proc/$1/fd" 2>/dev/null | wc -l; }
helper_pid() { pgrep -f "^$BERTH_PROXY start $BERTH_DIR/run/default_$1 $2\$" | head -n 1; }
tables() { nft list tables 2>/dev/null | grep -c 'berth_proxy_' || true; }
state()
{
	api PUT "/1.0/instances/$2/state" "{\"action\":\"$1\"${3:+,$3}}"
	[ "$HTTP_STATUS" = 202 ] && wait_operation "$(jget 'j["operation"]')"
	return 0
}
opok()
{
	[ "$(jget 'j["metadata"]["status"]')" = Success ] && return 0
	diag "operation: $(jget 'j["metadata"]["status"]'): $(jget 'j["metadata"]["err"]')"
	return 1
}
initpid() { api GET "/1.0/instances/$1/state"; jget 'j["metadata"]["pid"]'; }
# devices JSON: PUT c1 with this whole device map (LXD's PATCH only adds devices) and
# wait for the operation; sets HTTP_* to the finished operation.
devices()
{
	local body
	api GET /1.0/instances/c1
	body=$($PY -c 'import json, sys
m = json.loads(sys.argv[1])["metadata"]
b = {k: m[k] for k in ("config", "profiles", "description", "ephemeral", "architecture")}
b["devices"] = json.loads(sys.argv[2])
print(json.dumps(b))' "$HTTP_BODY" "$1")
	api PUT /1.0/instances/c1 "$body"
	[ "$HTTP_STATUS" = 202 ] && wait_operation "$(jget 'j["operation"]')"
	return 0
}
# tcp_get PORT: one HTTP GET through the proxy (or nothing).
tcp_get() { curl -s -m 5 "http://127.0.0.1:$1/" 2>/dev/null; }
# wait_for CMD...: up to 5 s for CMD to succeed.
wait_for() { local i; for i in $(seq 50); do "$@" && return 0; sleep 0.1; done; return 1; }
serves() { [ "$(tcp_get "$1")" = "$2" ]; }
serves_at() { [ "$(curl -s -m 5 "http://$1/" 2>/dev/null)" = "$2" ]; }
# tcp_read PORT: what a server sends on connect (or nothing).
tcp_read()
{
	$PY -c 'import socket,sys
try:
    c = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=3)
    print(c.recv(100).decode(), end="")
except OSError:
    pass' "$1"
}

cat >"$TEST_TMP/udp_echo.py" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", int(sys.argv[1])))
while True:
    d, a = s.recvfrom(65536)
    s.sendto(b"echo:" + d, a)
EOF
cat >"$TEST_TMP/udp_client.py" <<'EOF'
import socket, sys
out = []
for i in range(2):  # two clients: two flows
    c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    c.settimeout(3)
    c.sendto(b"ping%d" % i, ("127.0.0.1", int(sys.argv[1])))
    try:
        d, a = c.recvfrom(100)
        out.append(d.decode())
    except socket.timeout:
        out.append("timeout")
print(" ".join(out))
EOF
cat >"$TEST_TMP/tcp_ports.py" <<'EOF'
import socket, select, sys
ls = []
for p in sys.argv[1:]:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", int(p)))
    s.listen(16)
    ls.append((s, p))
while True:
    r, _, _ = select.select([s for s, _ in ls], [], [])
    for s, p in ls:
        if s in r:
            c, _ = s.accept()
            c.sendall(("port" + p).encode())
            c.close()
EOF
cat >"$TEST_TMP/unix_server.py" <<'EOF'
import socket, sys, os
p = sys.argv[1]
s = socket.socket(socket.AF_UNIX)
s.bind(p)
os.chmod(p, 0o777)
s.listen(4)
while True:
    c, _ = s.accept()
    c.sendall(sys.argv[2].encode())
    c.close()
EOF
cat >"$TEST_TMP/bench.py" <<'EOF'
import socket, sys, time, threading
mode, port = sys.argv[1], int(sys.argv[2])
if mode == "sink":  # server: read everything, answer each 1-byte ping
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port)); s.listen(64)
    def serve(c):
        while True:
            d = c.recv(1 << 16)
            if not d: break
            if len(d) == 1: c.sendall(d)
        c.close()
    while True:
        c, _ = s.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()
elif mode == "put":  # client: MiB through, MB/s
    n = int(sys.argv[3]); buf = b"x" * (1 << 20)
    c = socket.create_connection(("127.0.0.1", port)); t = time.time()
    for _ in range(n): c.sendall(buf)
    c.shutdown(socket.SHUT_WR); c.recv(1); t = time.time() - t
    print("%.0f" % (n * 1.048576 / t))
else:  # connection latency: connect, 1-byte round trip, close; mean ms
    n = int(sys.argv[3]); t = time.time()
    for _ in range(n):
        c = socket.create_connection(("127.0.0.1", port)); c.sendall(b"p"); c.recv(1); c.close()
    print("%.3f" % ((time.time() - t) * 1000 / n))
EOF
BG=()
bg() { "$@" & BG+=($!); }
cleanup_bg() { local p; for p in "${BG[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; BG=(); }

mounts0=$(mounts)
cgroups0=$(cgroups)
fds0=$(daemon_fds)
helpers0=$(helpers)
monitors0=$(monitors)
tables0=$(tables)

check "import the busybox image" berth image import "$T_PX_OUT/busybox.tar.gz" --alias busybox

# ---- bad devices: 400 at create and at PATCH ----
bad()
{
	local desc=$1 dev=$2 want=$3
	expect_error 400 "refused: $desc" POST /1.0/instances \
		"{\"name\":\"bad\",\"source\":{\"type\":\"image\",\"alias\":\"busybox\"},\"devices\":{\"p\":$dev}}"
	like "$(jget 'j["error"]')" "$want" "... says: $want"
}
bad "no port" '{"type":"proxy","listen":"tcp:127.0.0.1","connect":"tcp:127.0.0.1:80"}' 'missing port'
bad "unknown protocol" '{"type":"proxy","listen":"sctp:127.0.0.1:1","connect":"tcp:127.0.0.1:80"}' 'Unknown protocol type "sctp"'
bad "bad address" '{"type":"proxy","listen":"tcp:300.1.1.1:80","connect":"tcp:127.0.0.1:80"}' 'Invalid IP address "300.1.1.1"'
bad "bad port range" '{"type":"proxy","listen":"tcp:127.0.0.1:90-80","connect":"tcp:127.0.0.1:80"}' 'Invalid port range "90-80"'
bad "port 0" '{"type":"proxy","listen":"tcp:127.0.0.1:0","connect":"tcp:127.0.0.1:80"}' 'Invalid port'
bad "port count mismatch" '{"type":"proxy","listen":"tcp:127.0.0.1:80-81","connect":"tcp:127.0.0.1:80-82"}' 'Mismatch between listen port\(s\) and connect port\(s\) count'
bad "missing connect" '{"type":"proxy","listen":"tcp:127.0.0.1:80"}' 'need "listen" and "connect"'
bad "udp to tcp" '{"type":"proxy","listen":"udp:127.0.0.1:53","connect":"tcp:127.0.0.1:53"}' 'udp to non-udp'
bad "nat with unix" '{"type":"proxy","listen":"unix:/tmp/x.sock","connect":"tcp:10.0.0.5:80","nat":"true"}' 'not supported when using NAT'
bad "nat on a wildcard" '{"type":"proxy","listen":"tcp:0.0.0.0:80","connect":"tcp:10.0.0.5:80","nat":"true"}' 'wildcard address'
bad "nat mixing versions" '{"type":"proxy","listen":"tcp:127.0.0.1:80","connect":"tcp:[fd00::5]:80","nat":"true"}' 'mix IP versions'
bad "nat not a bool" '{"type":"proxy","listen":"tcp:127.0.0.1:80","connect":"tcp:127.0.0.1:80","nat":"maybe"}' 'true or false'
bad "uid on tcp" '{"type":"proxy","listen":"tcp:127.0.0.1:80","connect":"tcp:127.0.0.1:80","uid":"1000"}' 'non-abstract unix sockets'
bad "bad mode" '{"type":"proxy","listen":"unix:/tmp/x.sock","connect":"tcp:127.0.0.1:80","mode":"999"}' 'octal'
bad "unknown option" '{"type":"proxy","listen":"tcp:127.0.0.1:80","connect":"tcp:127.0.0.1:80","colour":"red"}' 'unknown proxy option "colour"'
bad "relative unix path" '{"type":"proxy","listen":"unix:x.sock","connect":"tcp:127.0.0.1:80"}' 'must be absolute'
bad "nat with bind=instance" '{"type":"proxy","listen":"tcp:127.0.0.1:80","connect":"tcp:127.0.0.1:80","bind":"instance","nat":"true"}' 'only host-bound proxies can use NAT'
bad "bad bind" '{"type":"proxy","listen":"tcp:127.0.0.1:80","connect":"tcp:127.0.0.1:80","bind":"moon"}' 'binding side'
api GET /1.0/instances/bad
is "$HTTP_STATUS" 404 "no instance was created by the refused requests"
expect_error 400 "a profile with a bad proxy device is refused" POST /1.0/profiles \
	'{"name":"px","devices":{"p":{"type":"proxy","listen":"tcp:127.0.0.1","connect":"tcp:127.0.0.1:80"}}}'

# ---- tcp into busybox httpd ----
api POST /1.0/instances '{"name":"c1","source":{"type":"image","alias":"busybox"},"devices":{"web":{"type":"proxy","listen":"tcp:127.0.0.1:8080","connect":"tcp:127.0.0.1:80"}}}'
wait_operation "$(jget 'j["operation"]')"
ok "create c1 with a proxy device" opok
state start c1
ok "start c1" opok
is "$(helpers)" $((helpers0 + 1)) "one berth-proxy helper runs for c1"
ok "... it listens on 127.0.0.1:8080" wait_for sh -c "ss -Htln 'sport = :8080' | grep -q 127.0.0.1:8080"
run berth exec c1 -- sh -c 'mkdir -p /www && echo hello-from-c1 >/www/index.html && httpd -p 127.0.0.1:80 -h /www'
rc_ok "start busybox httpd on 127.0.0.1:80 inside c1"
ok "GET through the proxy reaches httpd inside c1" wait_for serves 8080 hello-from-c1
ok "nothing listens on port 80 in the test's namespace (the server is only inside)" \
	sh -c "! ss -Htln 'sport = :80' | grep -q ."
expect_error 400 "PATCH with a bad proxy device is refused" PATCH /1.0/instances/c1 \
	'{"devices":{"x":{"type":"proxy","listen":"tcp:1.2.3.4","connect":"tcp:127.0.0.1:80"}}}'

# ---- hot-plug: udp, unix->tcp, port ranges, unix inside the root ----
cpid=$(initpid c1)
bg nsenter --net=/proc/$cpid/ns/net $PY "$TEST_TMP/udp_echo.py" 53
bg nsenter --net=/proc/$cpid/ns/net $PY "$TEST_TMP/tcp_ports.py" 81 82 83 90
bg $PY "$TEST_TMP/tcp_ports.py" 7777
ROOT=$BERTH_DIR/storage-pools/default/containers/default_c1/rootfs
bg $PY "$TEST_TMP/unix_server.py" "$ROOT/tmp/app.sock" inside-root
bg $PY "$TEST_TMP/unix_server.py" "$TEST_TMP/host.sock" HOST-ESCAPE
ln -s "$TEST_TMP/host.sock" "$ROOT/tmp/evil.sock"
sleep 0.5
DEVS='{"web":{"type":"proxy","listen":"tcp:127.0.0.1:8080","connect":"tcp:127.0.0.1:80"},
"dns":{"type":"proxy","listen":"udp:127.0.0.1:5353","connect":"udp:127.0.0.1:53"},
"sock":{"type":"proxy","listen":"unix:'$TEST_TMP'/c1.sock","connect":"tcp:127.0.0.1:80","mode":"0660"},
"range":{"type":"proxy","listen":"tcp:127.0.0.1:9001-9003","connect":"tcp:127.0.0.1:81-83"},
"many":{"type":"proxy","listen":"tcp:127.0.0.1:9101,9102","connect":"tcp:127.0.0.1:90"},
"app":{"type":"proxy","listen":"tcp:127.0.0.1:9200","connect":"unix:/tmp/app.sock"},
"evil":{"type":"proxy","listen":"tcp:127.0.0.1:9201","connect":"unix:/tmp/evil.sock"},
"back":{"type":"proxy","listen":"tcp:127.0.0.1:7070","connect":"tcp:127.0.0.1:7777","bind":"instance"},
"backsock":{"type":"proxy","listen":"unix:/tmp/host-svc.sock","connect":"tcp:127.0.0.1:7777","bind":"instance","mode":"0600"}}'
webpid=$(helper_pid c1 web)
devices "$DEVS"
ok "PUT adds eight proxy devices to the running c1" opok
is "$(helpers)" $((helpers0 + 9)) "... nine helpers run"
is "$(helper_pid c1 web)" "$webpid" "... the unchanged device keeps its helper"
is "$($PY "$TEST_TMP/udp_client.py" 5353)" "echo:ping0 echo:ping1" "udp: two clients get their own answers"
is "$(curl -s -m 5 --unix-socket "$TEST_TMP/c1.sock" http://x/)" hello-from-c1 "unix socket on the host -> tcp inside"
is "$(stat -c %a "$TEST_TMP/c1.sock")" 660 "... the socket has mode 0660"
is "$(tcp_read 9001) $(tcp_read 9002) $(tcp_read 9003)" "port81 port82 port83" "a port range pairs up in order"
is "$(tcp_read 9101) $(tcp_read 9102)" "port90 port90" "several ports to one"
is "$(tcp_read 9200)" inside-root "unix connect resolves inside the container's root"
is "$(tcp_read 9201)" "" "a symlink inside the root does not lead to a host socket"
back_ok() { [ "$(berth exec c1 -- nc 127.0.0.1 7070 </dev/null 2>/dev/null)" = port7777 ]; }
ok "bind=instance: a port inside the container reaches a server on the host" back_ok
ok "bind=instance: a unix socket is made inside the container's root" test -S "$ROOT/tmp/host-svc.sock"
is "$(stat -c %a "$ROOT/tmp/host-svc.sock")" 600 "... with mode 0600"
is "$($PY -c 'import socket,sys; c=socket.socket(socket.AF_UNIX); c.settimeout(3); c.connect(sys.argv[1]); print(c.recv(100).decode())' "$ROOT/tmp/host-svc.sock" 2>/dev/null)" port7777 "... and forwards to the host's tcp server"

# ---- throughput and latency (figures for the report, not pass/fail) ----
bg nsenter --net=/proc/$cpid/ns/net $PY "$TEST_TMP/bench.py" sink 7000
bench_dev='{"type":"proxy","listen":"tcp:127.0.0.1:7001","connect":"tcp:127.0.0.1:7000"}'
api PATCH /1.0/instances/c1 "{\"devices\":{\"bench\":$bench_dev}}"
is "$HTTP_STATUS" 200 "PATCH hot-plugs a bench device"
sleep 0.3
bpid=$(helper_pid c1 bench)
bfds0=$(nfds "$bpid")
direct=$(nsenter --net=/proc/$cpid/ns/net $PY "$TEST_TMP/bench.py" put 7000 512)
proxied=$($PY "$TEST_TMP/bench.py" put 7001 512)
lat_direct=$(nsenter --net=/proc/$cpid/ns/net $PY "$TEST_TMP/bench.py" lat 7000 300)
lat_proxied=$($PY "$TEST_TMP/bench.py" lat 7001 300)
diag "tcp throughput, 512 MiB: direct ${direct} MB/s, through berth-proxy ${proxied} MB/s"
diag "connect + 1-byte round trip + close: direct ${lat_direct} ms, through berth-proxy ${lat_proxied} ms"
ok "the bench transfer went through the proxy" test -n "$proxied"
fds_back() { [ "$(nfds "$bpid")" -le "$bfds0" ]; }
ok "after 300 connections the helper holds as many fds as before ($bfds0)" wait_for fds_back
devices "$DEVS"

# ---- unplug ----
devices '{"web":{"type":"proxy","listen":"tcp:127.0.0.1:8080","connect":"tcp:127.0.0.1:80"},"dns":{"type":"proxy","listen":"udp:127.0.0.1:5353","connect":"udp:127.0.0.1:53"},"sock":{"type":"proxy","listen":"unix:'$TEST_TMP'/c1.sock","connect":"tcp:127.0.0.1:80","mode":"0660"},"back":{"type":"proxy","listen":"tcp:127.0.0.1:7070","connect":"tcp:127.0.0.1:7777","bind":"instance"}}'
ok "PUT without five devices unplugs them" opok
is "$(helpers)" $((helpers0 + 4)) "... their helpers are gone"
ok "... the instance-side unix socket is removed" test ! -e "$ROOT/tmp/host-svc.sock"
ok "... port 9001 no longer listens" sh -c "! ss -Htln 'sport = :9001' | grep -q ."
ok "... the others still serve" serves 8080 hello-from-c1

# ---- a failing hot-plug is rolled back ----
devices '{"web":{"type":"proxy","listen":"tcp:127.0.0.1:8080","connect":"tcp:127.0.0.1:80"},"dns":{"type":"proxy","listen":"udp:127.0.0.1:5353","connect":"udp:127.0.0.1:53"},"sock":{"type":"proxy","listen":"unix:'$TEST_TMP'/c1.sock","connect":"tcp:127.0.0.1:80","mode":"0660"},"back":{"type":"proxy","listen":"tcp:127.0.0.1:7070","connect":"tcp:127.0.0.1:7777","bind":"instance"},"dup":{"type":"proxy","listen":"tcp:127.0.0.1:8080","connect":"tcp:127.0.0.1:80"}}'
is "$(jget 'j["metadata"]["status"]')" Failure "a device whose listen address is in use fails the update"
like "$(jget 'j["metadata"]["err"]')" 'Failed to start device "dup".*[Aa]ddress already in use' "... saying why"
api GET /1.0/instances/c1
is "$(jget '",".join(sorted(j["metadata"]["devices"]))')" "back,dns,sock,web" "... and the devices are as before"
is "$(helpers)" $((helpers0 + 4)) "... with the same helpers"

# ---- reboot inside the container: same helper, new namespace ----
webpid=$(helper_pid c1 web)
initpid() { api GET /1.0/instances/c1/state; jget 'j["metadata"]["pid"]'; }
pid0=$(initpid)
berth exec c1 -- reboot >/dev/null 2>&1
rebooted() { p=$(initpid); [ -n "$p" ] && [ "$p" != 0 ] && [ "$p" != -1 ] && [ "$p" != "$pid0" ]; }
ok "reboot inside c1 gives a new PID 1" wait_for rebooted
run berth exec c1 -- sh -c 'httpd -p 127.0.0.1:80 -h /www'
ok "after the reboot the same helper reaches the new httpd" wait_for serves 8080 hello-from-c1
is "$(helper_pid c1 web)" "$webpid" "... it is the same helper process"
ok "... and bind=instance listens again in the new namespace" wait_for back_ok

# ---- restart through the API: a stop and a start (LXD's too), so new helpers ----
state restart c1 '"timeout":10'
ok "restart c1" opok
run berth exec c1 -- sh -c 'httpd -p 127.0.0.1:80 -h /www'
ok "after the restart a helper reaches the new httpd" wait_for serves 8080 hello-from-c1
isnt "$(helper_pid c1 web)" "$webpid" "... a new one, started with the container"
is "$(helpers)" $((helpers0 + 4)) "... still one helper per device"
ok "... and bind=instance listens again in the new namespace" wait_for back_ok
webpid=$(helper_pid c1 web)
cleanup_bg

# ---- berthd restarts ----
daemon_restart
is "$(helpers)" $((helpers0 + 4)) "after a clean berthd restart the helpers are re-adopted, not duplicated"
is "$(helper_pid c1 web)" "$webpid" "... the same processes"
ok "... and serve" serves 8080 hello-from-c1
kill -KILL "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null
DAEMON_PID=
ok "with berthd killed the proxy still serves" serves 8080 hello-from-c1
kill -KILL "$(helper_pid c1 sock)"
sleep 0.2
daemon_start
is "$(helpers)" $((helpers0 + 4)) "after berthd's SIGKILL: still one helper per device"
is "$(helper_pid c1 web)" "$webpid" "... web's is the same process"
ok "... the killed helper was started again" test -n "$(helper_pid c1 sock)"
is "$(curl -s -m 5 --unix-socket "$TEST_TMP/c1.sock" http://x/)" hello-from-c1 "... and serves"

# ---- nat=true: the rules ----
# c1 gets a second NIC with a static address on a managed network of the test's own
check "a managed network brp0" berth network create brp0 ipv4.address=10.99.0.1/24 ipv4.nat=false ipv6.address=none
NATDEVS='{"web":{"type":"proxy","listen":"tcp:127.0.0.1:8080","connect":"tcp:127.0.0.1:80"},
"eth1":{"type":"nic","network":"brp0","name":"eth1","ipv4.address":"10.99.0.5"},
"natweb":{"type":"proxy","listen":"tcp:127.0.0.2:8443","connect":"tcp:10.99.0.5:443","nat":"true"},
"natdns":{"type":"proxy","listen":"udp:127.0.0.2:5300-5301","connect":"udp:10.99.0.5:53-54","nat":"true"},
"natreal":{"type":"proxy","listen":"tcp:10.99.0.1:8444","connect":"tcp:10.99.0.5:443","nat":"true"}}'
devices "$NATDEVS"
ok "PUT adds three nat=true devices" opok
is "$(helpers)" $((helpers0 + 1)) "... nat devices run no helper (and the three unplugged ones stopped)"
is "$(tables)" $((tables0 + 1)) "... one berth_proxy table exists"
# (the proxy table only: managed networks have masquerade rules of their own)
rules=$(nft list tables 2>/dev/null | grep 'berth_proxy_' | while read -r _ fam t; do nft list table "$fam" "$t"; done)
is "$(grep -c 'ip daddr 127.0.0.2 tcp dport 8443 dnat ip to 10.99.0.5:443' <<<"$rules")" 2 "... the tcp DNAT rule is there once in prerouting and once in output"
is "$(grep -c 'ip daddr 127.0.0.2 udp dport 5301 dnat ip to 10.99.0.5:54' <<<"$rules")" 2 "... the udp range is paired port by port"
is "$(grep -c 'masquerade' <<<"$rules")" 4 "... and a hairpin masquerade per connect port"
# Traffic through the DNAT: eth1 was hot-plugged into the running c1, where nothing
# runs a DHCP client on it; give it its static address by hand.
run berth exec c1 -- sh -c 'ip link set eth1 up && ip addr add 10.99.0.5/24 dev eth1'
rc_ok "eth1 is in c1 (hot-plugged) and takes 10.99.0.5"
run berth exec c1 -- httpd -p 10.99.0.5:443 -h /www
rc_ok "httpd inside c1 on its static address 10.99.0.5:443"
ok "a connection to 10.99.0.1:8444 reaches it through the DNAT rule" wait_for serves_at 10.99.0.1:8444 hello-from-c1
ok "... no helper listens on 8444 (the kernel forwards it)" sh -c "! ss -Htln 'sport = :8444' | grep -q ."
expect_error 400 "a nat device whose connect IP is not a static NIC address is refused" \
	PATCH /1.0/instances/c1 "{\"devices\":$($PY -c 'import json,sys; d=json.loads(sys.argv[1]); d["natbad"]={"type":"proxy","listen":"tcp:127.0.0.2:9443","connect":"tcp:10.99.0.6:443","nat":"true"}; print(json.dumps(d))' "$NATDEVS")}"
like "$(jget 'j["error"]')" "must be one of the instance's static IPv4 addresses" "... saying why"
daemon_restart
is "$(nft list ruleset 2>/dev/null | grep -c 'dport 8443 dnat')" 2 "after a berthd restart the nat rules are there exactly once"

# ---- a proxy device from a profile ----
api POST /1.0/profiles '{"name":"pxp","devices":{"pweb":{"type":"proxy","listen":"tcp:127.0.0.1:8282","connect":"tcp:127.0.0.1:80"}}}'
is "$HTTP_STATUS" 201 "create a profile with a proxy device"
api PATCH /1.0/instances/c1 '{"profiles":["default","pxp"]}'
is "$HTTP_STATUS" 200 "PATCH c1 to use it"
ok "... its device serves" wait_for serves 8282 hello-from-c1
api PUT /1.0/profiles/pxp '{"description":"","config":{},"devices":{"pweb":{"type":"proxy","listen":"tcp:127.0.0.1:8283","connect":"tcp:127.0.0.1:80"}}}'
is "$HTTP_STATUS" 200 "change the profile's device"
ok "... the running instance follows: the new port serves" wait_for serves 8283 hello-from-c1
ok "... and the old one is closed" sh -c "! ss -Htln 'sport = :8282' | grep -q ."
api PATCH /1.0/instances/c1 '{"profiles":["default"]}'
is "$(helpers)" $((helpers0 + 1)) "dropping the profile stops its helper"
api DELETE /1.0/profiles/pxp

# ---- the stock lxc client: device add and remove ----
export LXD_CONF=$TEST_TMP/lxd-conf
mkdir -p "$LXD_CONF"
lxc remote add b "unix://$BERTH_SOCKET" >/dev/null 2>&1
run lxc config device add b:c1 web2 proxy listen=tcp:127.0.0.1:8181 connect=tcp:127.0.0.1:80
rc_ok "lxc config device add b:c1 web2 proxy ..."
ok "... it serves" wait_for serves 8181 hello-from-c1
run lxc config device remove b:c1 web2
rc_ok "lxc config device remove b:c1 web2"
ok "... the port is closed" sh -c "! ss -Htln 'sport = :8181' | grep -q ."
is "$(helpers)" $((helpers0 + 1)) "... and its helper is gone"

# ---- stop ----
sockpath=$TEST_TMP/c1.sock
state stop c1 '"force":true'
ok "stop c1" opok
is "$(helpers)" "$helpers0" "after stop no helper is left"
is "$(tables)" "$tables0" "... no berth_proxy table is left"
ok "... nothing listens on 8080" sh -c "! ss -Htln 'sport = :8080' | grep -q ."
is "$(ls "$BERTH_DIR/run/default_c1" | grep -c 'proxy\..*\.\(pid\|spec\)$\|proxy.nft')" 0 "... no pid, spec or nft file is left"

# ---- a container whose start fails on a proxy device ----
api POST /1.0/instances '{"name":"c2","source":{"type":"image","alias":"busybox"},"devices":{"p":{"type":"proxy","listen":"unix:/nonexistent-dir/x.sock","connect":"tcp:127.0.0.1:80"}}}'
wait_operation "$(jget 'j["operation"]')"
state start c2
is "$(jget 'j["metadata"]["status"]')" Failure "a start whose proxy cannot listen fails"
like "$(jget 'j["metadata"]["err"]')" 'Failed to start device "p"' "... naming the device"
api GET /1.0/instances/c2/state
is "$(jget 'j["metadata"]["status"]')" Stopped "... and the container is stopped"
is "$(helpers)" "$helpers0" "... with no helper left"

# ---- the stopped container keeps nothing; start again works ----
state start c1
ok "start c1 again" opok
is "$(helpers)" $((helpers0 + 1)) "... its one forwarding device has its helper again"
is "$(tables)" $((tables0 + 1)) "... and its nat table"
kill -KILL "$(cat "$BERTH_DIR/run/default_c1/monitor.pid")"
helpers_gone() { [ "$(helpers)" = "$helpers0" ]; }
tables_gone() { [ "$(tables)" = "$tables0" ]; }
ok "SIGKILL of c1's monitor: its helper ends by itself" wait_for helpers_gone
ok "... and berthd removes the nat table" wait_for tables_gone
api DELETE /1.0/instances/c1
wait_operation "$(jget 'j["operation"]')"
api DELETE /1.0/instances/c2
wait_operation "$(jget 'j["operation"]')"
check "delete the network brp0" berth network delete brp0

is "$(helpers)" "$helpers0" "no helper process left"
is "$(monitors)" "$monitors0" "no monitor process left"
is "$(tables)" "$tables0" "no nft table left"
ok "no socket file left" test ! -e "$sockpath"
is "$(mounts)" "$mounts0" "no mount left"
is "$(cgroups)" "$cgroups0" "no cgroup left"
check_no_fd_leak "$fds0" "berthd holds no more fds than before"
daemon_alive "berthd still answers"
