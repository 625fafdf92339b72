#!/bin/bash
# t_metrics.sh: GET /1.0/metrics (doc/api.md, "Metrics") with a running busybox
# container: LXD 5.0's Prometheus text (checked by promcheck.py: HELP/TYPE blocks,
# quoted labels, numbers, "# EOF"), its CPU, memory, disk, filesystem, network and
# process lines with sane values, counters that grow after work in the container, a
# stopped instance and other projects left out (?project=); over HTTPS a `metrics`
# certificate reads it and is refused (403) everywhere else, an untrusted client is
# refused, a restricted client sees only its projects; core.metrics_address (LXD's
# metrics-only listener, port 9100 by default) serves it and nothing else, is refused
# when bad or busy, comes back after a restart and goes when unset. All on the
# loopback of the test's own network namespace.
. "$(dirname "$0")/lib.sh"
command -v curl >/dev/null || skip_all "curl not installed"
command -v openssl >/dev/null || skip_all "openssl not installed"
berth_test_images busybox
: "${BERTH_MONITOR:=$BERTH_BUILDDIR/berth-monitor}"
BERTHD_ENV=(BERTH_MONITOR="$BERTH_MONITOR")
berth_test_init "$@"
export PATH=$BERTH_BUILDDIR:$PATH
PROMCHECK=$BERTH_SRCDIR/tests/integration/promcheck.py
ADDR=127.0.0.1:8443
URL=https://$ADDR

# scrape NAME [CURL ARGS...]: GET /1.0/metrics into $TEST_TMP/NAME.txt, its samples
# (promcheck.py) into $TEST_TMP/NAME.json; the HTTP status in $CODE.
scrape()
{
	local name=$1
	shift
	if [ $# -eq 0 ]; then
		set -- --unix-socket "$BERTH_SOCKET" http://berth/1.0/metrics
	fi
	CODE=$(curl -sk -D "$TEST_TMP/$name.hdr" -o "$TEST_TMP/$name.txt" -w '%{http_code}' "$@")
	$PY "$PROMCHECK" "$TEST_TMP/$name.txt" >"$TEST_TMP/$name.json" 2>"$TEST_TMP/$name.err"
}
# val NAME METRIC [LABEL=VALUE...]: the sum of METRIC's samples whose labels match ("none"
# when there is none).
val()
{
	$PY - "$TEST_TMP/$1.json" "${@:2}" <<'PYEOF'
import json, sys
samples = json.load(open(sys.argv[1]))
want = dict(a.split("=", 1) for a in sys.argv[3:])
vals = [v for n, l, v in samples if n == sys.argv[2] and all(l.get(k) == x for k, x in want.items())]
print("none" if not vals else repr(sum(vals)) if any(v != int(v) for v in vals) else int(sum(vals)))
PYEOF
}
# gt A B: A > B as numbers
gt() { $PY -c 'import sys; sys.exit(0 if float(sys.argv[1]) > float(sys.argv[2]) else 1)' "$1" "$2"; }

run_cli image import "${IMAGE[busybox]}" --alias busybox
rc_ok "import the busybox image"
run_cli launch busybox c1
rc_ok "launch c1"
run_cli init busybox c2
rc_ok "init c2 (stopped)"

api GET /1.0
is "$(jget '"metrics" in j["metadata"]["api_extensions"]')" true "the metrics API extension is advertised"

# ---- the text ----
fds0=$(daemon_fds)
scrape s1
t0=$(date +%s%N)
curl -s --unix-socket "$BERTH_SOCKET" -o /dev/null http://berth/1.0/metrics
t1=$(date +%s%N)
curl -s --unix-socket "$BERTH_SOCKET" -o /dev/null http://berth/1.0
t2=$(date +%s%N)
diag "curl of /1.0/metrics with one running container: $(((t1 - t0) / 1000000)) ms (of /1.0: $(((t2 - t1) / 1000000)) ms), $(wc -l <"$TEST_TMP/s1.txt") lines:"
diag "$(grep -v "^#" "$TEST_TMP/s1.txt" | awk '!seen[$1 ~ /^lxd_memory/ ? "m" : $1]++' | head -n 20)"
is "$CODE" 200 "GET /1.0/metrics on the unix socket: 200"
like "$(cat "$TEST_TMP/s1.hdr")" 'Content-Type: text/plain' "served as text/plain"
is "$(cat "$TEST_TMP/s1.err")" "" "it parses as Prometheus text exposition"
is "$(tail -n 1 "$TEST_TMP/s1.txt")" "# EOF" "it ends with # EOF"
like "$(grep '^# TYPE lxd_cpu_seconds_total ' "$TEST_TMP/s1.txt")" 'counter$' "lxd_cpu_seconds_total is a counter"
like "$(grep '^# TYPE lxd_procs_total ' "$TEST_TMP/s1.txt")" 'gauge$' "lxd_procs_total is a gauge (as LXD)"
like "$(grep '^lxd_cpu_seconds_total{' "$TEST_TMP/s1.txt" | head -n 1)" \
	'^lxd_cpu_seconds_total\{cpu="0",mode="(system|user)",name="c1",project="default",type="container"\} ' \
	"CPU lines carry LXD's labels in LXD's order"
procs=$(val s1 lxd_procs_total name=c1 project=default type=container)
ok "lxd_procs_total of c1 is at least 1 ($procs)" gt "$procs" 0
mem=$(val s1 lxd_memory_MemTotal_bytes name=c1)
ok "lxd_memory_MemTotal_bytes of c1 is above 0 ($mem)" gt "$mem" 0
for m in Active_anon Active_file Active Cached Dirty Inactive_anon Inactive_file Inactive Mapped \
	MemAvailable MemFree Shmem Swap Unevictable Writeback; do
	isnt "$(val s1 "lxd_memory_${m}_bytes" name=c1)" none "lxd_memory_${m}_bytes of c1 reported"
done
used=$(($(val s1 lxd_memory_MemTotal_bytes name=c1) - $(val s1 lxd_memory_MemFree_bytes name=c1)))
ok "memory in use (MemTotal - MemFree) is above 0 ($used)" gt "$used" 0
for m in receive_bytes receive_packets transmit_bytes transmit_packets receive_errs transmit_errs \
	receive_drop transmit_drop; do
	isnt "$(val s1 "lxd_network_${m}_total" name=c1 device=eth0)" none "lxd_network_${m}_total of c1's eth0"
done
isnt "$(val s1 lxd_network_receive_bytes_total name=c1 device=lo)" none "c1's lo is reported too"
size=$(val s1 lxd_filesystem_size_bytes name=c1 mountpoint=/)
ok "lxd_filesystem_size_bytes of c1's root disk is above 0 ($size)" gt "$size" 0
isnt "$(val s1 lxd_filesystem_avail_bytes name=c1 mountpoint=/)" none "lxd_filesystem_avail_bytes of the root disk"
is "$(grep -c 'name="c2"' "$TEST_TMP/s1.txt")" 0 "the stopped c2 has no lines"

# ---- counters grow after work ----
cpu1=$(val s1 lxd_cpu_seconds_total name=c1)
lo1=$(val s1 lxd_network_receive_packets_total name=c1 device=lo)
run_cli exec c1 -- sh -c 'i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done; ping -c 3 -i 0.2 127.0.0.1 >/dev/null'
rc_ok "some CPU work and pings on lo in c1"
scrape s2
cpu2=$(val s2 lxd_cpu_seconds_total name=c1)
lo2=$(val s2 lxd_network_receive_packets_total name=c1 device=lo)
ok "lxd_cpu_seconds_total of c1 grew ($cpu1 -> $cpu2)" gt "$cpu2" "$cpu1"
ok "c1's lo received packets grew ($lo1 -> $lo2)" gt "$lo2" "$((lo1 + 5))"

# ---- ?project= ----
api POST /1.0/projects '{"name":"p1"}'
is "$HTTP_STATUS" 201 "project p1"
scrape p1 --unix-socket "$BERTH_SOCKET" 'http://berth/1.0/metrics?project=p1'
is "$CODE:$(grep -c 'name="c1"' "$TEST_TMP/p1.txt")" 200:0 "?project=p1: no line of c1"
is "$(cat "$TEST_TMP/p1.txt")" "# EOF" "... nothing but # EOF"
scrape pd --unix-socket "$BERTH_SOCKET" 'http://berth/1.0/metrics?project=default'
isnt "$(val pd lxd_procs_total name=c1)" none "?project=default: c1 is there"
check_no_fd_leak "$fds0" "the scrapes leave no fd open in berthd"

# ---- over HTTPS: metrics certificates, untrusted and restricted clients ----
api PATCH /1.0 '{"config":{"core.https_address":"'$ADDR'"}}'
is "$HTTP_STATUS" 200 "core.https_address=$ADDR"
for c in m r; do
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=$c \
		-keyout "$TEST_TMP/$c.key" -out "$TEST_TMP/$c.crt" -days 2 2>/dev/null
done
run_cli config trust add "$TEST_TMP/m.crt" --type metrics --name m
rc_ok "berth config trust add m.crt --type metrics"
run_cli config trust add "$TEST_TMP/r.crt" --restricted --projects p1 --name r
rc_ok "berth config trust add r.crt --restricted --projects p1"
M=(--cert "$TEST_TMP/m.crt" --key "$TEST_TMP/m.key")
R=(--cert "$TEST_TMP/r.crt" --key "$TEST_TMP/r.key")
scrape h1 "${M[@]}" "$URL/1.0/metrics"
is "$CODE" 200 "a metrics certificate reads /1.0/metrics over HTTPS"
is "$(cat "$TEST_TMP/h1.err")" "" "... Prometheus text"
ok "... with c1's processes" gt "$(val h1 lxd_procs_total name=c1)" 0
for p in /1.0/instances /1.0/instances/c1 /1.0/certificates /1.0/operations /1.0/events; do
	code=$(curl -sk "${M[@]}" -o "$TEST_TMP/o" -w '%{http_code}' "$URL$p")
	is "$code" 403 "a metrics certificate is refused GET $p: 403"
done
code=$(curl -sk "${M[@]}" -o /dev/null -w '%{http_code}' -X PUT -d '{"config":{}}' "$URL/1.0")
is "$code" 403 "a metrics certificate is refused PUT /1.0: 403"
out=$(curl -sk "${M[@]}" "$URL/1.0")
is "$(jget 'j["metadata"]["auth"]' "$out")" untrusted "GET /1.0 with a metrics certificate: auth untrusted"
scrape h2 "$URL/1.0/metrics"
is "$CODE" 403 "no certificate: /1.0/metrics refused (403)"
scrape h3 "${R[@]}" "$URL/1.0/metrics"
is "$CODE:$(grep -c 'name="c1"' "$TEST_TMP/h3.txt")" 200:0 \
	"a client restricted to p1 reads /1.0/metrics without the default project's c1"
scrape h4 "${R[@]}" "$URL/1.0/metrics?project=default"
is "$CODE" 403 "... and is refused ?project=default (403)"

# ---- core.metrics_address: a listener for metrics only ----
api PATCH /1.0 '{"config":{"core.metrics_address":"127.0.0.1:99999"}}'
is "$HTTP_STATUS" 400 "core.metrics_address with a bad port is refused (400)"
like "$HTTP_BODY" 'core.metrics_address' "... naming the key"
api PATCH /1.0 '{"config":{"core.metrics_address":"'$ADDR'"}}'
is "$HTTP_STATUS" 400 "core.metrics_address on core.https_address's port is refused (400)"
curl -sk -o /dev/null "$URL/1.0" && pass "... and the HTTPS listener still answers" ||
	fail "... and the HTTPS listener still answers"
api PATCH /1.0 '{"config":{"core.metrics_address":"127.0.0.1"}}'
is "$HTTP_STATUS" 200 "core.metrics_address=127.0.0.1 (LXD's default port 9100)"
MURL=https://127.0.0.1:9100
scrape h5 "${M[@]}" "$MURL/1.0/metrics"
is "$CODE:$(cat "$TEST_TMP/h5.err")" 200: "the metrics certificate reads Prometheus text on port 9100"
ok "... with c1's processes" gt "$(val h5 lxd_procs_total name=c1)" 0
out=$(curl -sk "${M[@]}" "$MURL/1.0")
is "$(jget 'j["metadata"]["auth"]' "$out")" untrusted "GET /1.0 is served there too"
code=$(curl -sk "${R[@]}" -o /dev/null -w '%{http_code}' "$MURL/1.0/instances?project=p1")
is "$code" 404 "anything but /, /1.0 and /1.0/metrics is 404 there, even for a trusted client"
code=$(curl -sk "${R[@]}" -o /dev/null -w '%{http_code}' "$URL/1.0/instances?project=p1")
is "$code" 200 "... which core.https_address serves"
scrape h6 "$MURL/1.0/metrics"
is "$CODE" 403 "no certificate: refused there too (403)"
daemon_restart
scrape h7 "${M[@]}" "$MURL/1.0/metrics"
is "$CODE:$(val h7 lxd_procs_total name=c1 | grep -c '^[1-9]')" 200:1 \
	"after a restart of berthd it listens on 9100 again, c1 still reported"
api PATCH /1.0 '{"config":{"core.metrics_address":""}}'
is "$HTTP_STATUS" 200 "core.metrics_address unset"
code=$(curl -sk -o /dev/null -w '%{http_code}' "$MURL/1.0")
is "$code" 000 "... nothing listens on 9100 any more"
