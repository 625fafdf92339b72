#!/bin/bash
# tests/integration/t_image_pull.sh: image pulls over the LXD protocol (issue 16, item 3)
# between two berthds: A in the test's network namespace, B in a second one the test
# made, joined by a veth pair (10.233.0.1 and .2; nothing else routed), each with
# core.https_address on its veth address. A pulls B's public image by alias and by
# fingerprint (update_source with protocol lxd and the pinned certificate), a split image
# (the multipart export) too; a wrong
# pinned certificate and a server whose bytes are not the image it names are refused
# with nothing stored; a private image is refused without a secret, pulled with one
# (POST /1.0/images/FP/secret on B, its operation then Success), refused when the
# secret is used again, and still refused without one when B trusts A's server
# certificate (a pull shows no client certificate, as LXD's); `berth image copy b:IMG
# local:` (with --alias, --copy-aliases, asking B for a secret); the stock lxc
# client's `lxc image copy b:busybox a:` and `lxc init b:busybox a:c1`, each using up
# a secret of B's (its token operation ends Success). Secrets expire
# (core.remote_token_expiry), at most 100 live ones per project, and B stops at once
# with 100 unused. A lying server (lxd_stub.py, HTTPS on loopback): an export larger than
# the size it announced, an image announcing more than the disk's free space and a
# record over 1 MiB are refused; a pull cancelled while a
# slow server sends ends Cancelled at once. Full run (BERTH_TEST_FULL=1):
# Debian's LXD 5.0.2 of the test's own on A's side, HTTPS on the veth address: `lxc
# image copy` of a private image from LXD to berth and from berth to LXD. TAP output.
. "$(dirname "$0")/lib.sh"
berth_test_images busybox
: "${BERTH_MONITOR:=$BERTH_BUILDDIR/berth-monitor}"
: "${BERTH_TLS_HELPER:=$BERTH_BUILDDIR/berth-tls}"
if [ "$(id -u)" = 0 ]; then
	[ -x "$BERTH_MONITOR" ] || skip_all "no berth-monitor at $BERTH_MONITOR (build it first)"
	[ -x "$BERTH_TLS_HELPER" ] || skip_all "no berth-tls at $BERTH_TLS_HELPER (build it first)"
fi
export BERTH_TLS_HELPER
BERTHD_ENV=(BERTH_MONITOR="$BERTH_MONITOR" BERTH_TLS_HELPER="$BERTH_TLS_HELPER")
berth_test_init "$@"
export PATH=$BERTH_BUILDDIR:$PATH

A_DIR=$BERTH_DIR
A_SOCK=$BERTH_SOCKET
B_DIR=$TEST_TMP/b
B_SOCK=$B_DIR/unix.socket
B_LOG=$TEST_TMP/berthd-b.log
B_PID=
STUB_PID=
A_IP=10.233.0.1
B_IP=10.233.0.2
A_ADDR=$A_IP:8443
B_ADDR=$B_IP:8443
mkdir -p "$B_DIR"
export BERTH_CONF=$TEST_TMP/conf
LXD_CONF=$TEST_TMP/lxc-conf
mkdir -p "$LXD_CONF"
export LXD_CONF
unset LXD_DIR

BERTHD_B_ENV=(BERTH_MONITOR="$BERTH_MONITOR" BERTH_TLS_HELPER="$BERTH_TLS_HELPER")
pull_cleanup()
{
	local st=$?
	[ -n "$STUB_PID" ] && kill "$STUB_PID" 2>/dev/null
	[ "$_tap_failed" -gt 0 ] && [ -f "$B_LOG" ] && diag "---- berthd B log ----" && tail -n 60 "$B_LOG" | sed 's/^/# /'
	berth list -f csv -c n 2>/dev/null | while read -r n; do berth stop -f "$n" >/dev/null 2>&1; done
	daemon_b_stop
	daemon_stop
	(exit $st)
	_berth_test_exit
}
trap pull_cleanup EXIT
command -v nsenter >/dev/null || skip_all "nsenter (util-linux) not installed"
daemon_b_start_netns "$A_IP" "$B_IP"

apia() { BERTH_SOCKET=$A_SOCK api "$@"; }
apib() { BERTH_SOCKET=$B_SOCK api "$@"; }
on_b() { BERTH_SOCKET=$B_SOCK BERTH_DIR=$B_DIR "$@"; }
count_images() { apia GET /1.0/images; jget 'len(j["metadata"])'; }
count_files() { find "$A_DIR/images" -maxdepth 1 -type f 2>/dev/null | wc -l; }
# pull SOURCE-JSON-FIELDS: POST /1.0/images on A pulling from B, waited for; OPST and
# OPERR are the operation's status and error.
pull()
{
	apia POST /1.0/images "{\"source\":{\"type\":\"image\",\"mode\":\"pull\",\"protocol\":\"lxd\",\"server\":\"${PULL_SERVER:-https://$B_ADDR}\",$1}${2:+,$2}}"
	if [ "$HTTP_STATUS" != 202 ]; then
		OPST="HTTP $HTTP_STATUS"
		OPERR=$(jget 'j["error"]')
		return
	fi
	BERTH_SOCKET=$A_SOCK wait_operation "$(jget 'j["operation"]')" 60
	local r
	r=$(jget 'j["metadata"]["status"] + "|" + (j["metadata"]["err"] or "")')
	OPST=${r%%|*}
	OPERR=${r#*|}
}
# token_ops: the ids of B's token operations that ended Success, one a line.
token_ops() { apib GET '/1.0/operations?recursion=1'; jget '"\n".join(sorted(o["id"] for o in (j["metadata"].get("success") or []) if o["class"] == "token"))'; }
# used_secret DESC BEFORE: a token operation of B's ended Success since BEFORE (token_ops).
used_secret() { is "$(comm -13 <(printf '%s\n' "$2" | sort) <(token_ops | sort) | grep -c .)" 1 "$1"; }
jstr() { $PY -c 'import json,sys; print(json.dumps(open(sys.argv[1]).read()))' "$1"; }
delete_on_a() { apia DELETE "/1.0/images/$1"; BERTH_SOCKET=$A_SOCK wait_operation "$(jget 'j["operation"]')"; }

apia PATCH /1.0 '{"config":{"core.https_address":"'$A_ADDR'","core.trust_password":"pa"}}'
is "$HTTP_STATUS" 200 "A: core.https_address=$A_ADDR"
apib PATCH /1.0 '{"config":{"core.https_address":"'$B_ADDR'","core.trust_password":"pb"}}'
is "$HTTP_STATUS" 200 "B: core.https_address=$B_ADDR"
B_CERT=$(jstr "$B_DIR/server.crt")
A_CERT=$(jstr "$A_DIR/server.crt")
check "B: import busybox, public" on_b berth image import "${IMAGE[busybox]}" --alias busybox --public
apib GET /1.0/images/aliases/busybox
FP=$(jget 'j["metadata"]["target"]')
is "${#FP}" 64 "B: the image's fingerprint"

# ---- public: by alias, by fingerprint ----
pull "\"alias\":\"busybox\",\"certificate\":$B_CERT" '"aliases":[{"name":"bb"}]'
is "$OPST" Success "A pulls B's public image by alias" "$OPERR"
apia GET "/1.0/images/$FP"
is "$HTTP_STATUS" 200 "... A has it under B's fingerprint"
is "$(jget 'j["metadata"]["update_source"]["protocol"] + " " + j["metadata"]["update_source"]["server"] + " " + j["metadata"]["update_source"]["alias"]')" \
	"lxd https://$B_ADDR busybox" "... its update_source names protocol lxd, B and the alias"
is "$(jget 'j["metadata"]["update_source"]["certificate"] == open("'"$B_DIR"'/server.crt").read()')" true \
	"... and the pinned certificate"
is "$(jget 'j["metadata"]["cached"]')" false "... not a cache entry"
apia GET /1.0/images/aliases/bb
is "$(jget 'j["metadata"]["target"]')" "$FP" "... with the alias asked for"
ok "... its files in A's store" test -e "$A_DIR/images/$FP"
delete_on_a "$FP"
pull "\"fingerprint\":\"$FP\",\"certificate\":$B_CERT"
is "$OPST" Success "A pulls it by fingerprint" "$OPERR"
delete_on_a "$FP"
pull "\"alias\":\"nosuch\",\"certificate\":$B_CERT"
is "$OPST" Failure "an alias B does not have fails"
like "$OPERR" "Image \"nosuch\" not found on https://$B_ADDR" "... naming it and the server"

# ---- a split image: LXD's multipart export ----
split=$TEST_TMP/split
mkdir -p "$split/x"
tar -C "$split/x" -xzf "${IMAGE[busybox]}"
tar -C "$split/x" -cJf "$split/meta.tar.xz" metadata.yaml
tar -C "$split/x/rootfs" -czf "$split/rootfs.tar.gz" .
SFP=$(cat "$split/meta.tar.xz" "$split/rootfs.tar.gz" | sha256sum | cut -d' ' -f1)
check "B: import a split image, public" on_b berth image import "$split/meta.tar.xz" "$split/rootfs.tar.gz" --alias split --public
pull "\"alias\":\"split\",\"certificate\":$B_CERT"
is "$OPST" Success "A pulls B's split image (multipart export)" "$OPERR"
ok "... both files in A's store, by the fingerprint of metadata then rootfs" \
	cmp "$split/rootfs.tar.gz" "$A_DIR/images/$SFP.rootfs"
delete_on_a "$SFP"

# ---- a wrong pinned certificate, a lying server ----
nimg=$(count_images)
nfiles=$(count_files)
pull "\"alias\":\"busybox\",\"certificate\":$A_CERT"
is "$OPST" Failure "a certificate that is not B's is refused"
like "$OPERR" "$B_IP" "... naming the server"
is "$(count_images):$(count_files)" "$nimg:$nfiles" "... nothing stored"
bfile=$(ls "$B_DIR/images/$FP"* | head -n 1)
bsize=$(stat -c %s "$bfile")
check "B: its file no longer the image it names" sh -c "printf 'x' >>'$bfile'"
pull "\"fingerprint\":\"$FP\",\"certificate\":$B_CERT"
is "$OPST" Failure "bytes that are not the image B names are refused"
like "$OPERR" "Fingerprint mismatch" "... as a fingerprint mismatch"
is "$(count_images):$(count_files)" "$nimg:$nfiles" "... nothing stored"
check "B: its file restored" truncate -s "$bsize" "$bfile"

# ---- private: a secret, used once; a trusted puller ----
apib PATCH "/1.0/images/$FP" '{"public":false}'
is "$HTTP_STATUS" 200 "B: the image made private"
pull "\"fingerprint\":\"$FP\",\"certificate\":$B_CERT"
is "$OPST" Failure "a private image without a secret is not found"
like "$OPERR" "not found" "... as LXD says it"
apib POST "/1.0/images/$FP/secret"
is "$HTTP_STATUS" 202 "B: POST /1.0/images/FP/secret starts an operation"
SECRET=$(jget 'j["metadata"]["metadata"]["secret"]')
SOP=$(jget 'j["operation"]')
is "$(jget 'j["metadata"]["class"] + " " + j["metadata"]["resources"]["images"][0]')" "token /1.0/images/$FP" \
	"... a token naming the image"
is "${#SECRET}" 64 "... with a secret"
pull "\"fingerprint\":\"$FP\",\"secret\":\"$SECRET\",\"certificate\":$B_CERT"
is "$OPST" Success "A pulls the private image with the secret" "$OPERR"
BERTH_SOCKET=$B_SOCK wait_operation "$SOP" 10
is "$(jget 'j["metadata"]["status"]')" Success "B: the secret's operation ends Success, used"
delete_on_a "$FP"
pull "\"fingerprint\":\"$FP\",\"secret\":\"$SECRET\",\"certificate\":$B_CERT"
is "$OPST" Failure "the same secret again is refused"
is "$(count_images)" "$nimg" "... nothing stored"
apib POST "/1.0/images/$FP/secret"
SOP=$(jget 'j["operation"]')
SECRET2=$(jget 'j["metadata"]["metadata"]["secret"]')
apib DELETE "$SOP"
is "$HTTP_STATUS" 200 "B: a secret's operation cancelled"
pull "\"fingerprint\":\"$FP\",\"secret\":\"$SECRET2\",\"certificate\":$B_CERT"
is "$OPST" Failure "... and its secret withdrawn"
A_B64=$($PY -c 'import sys; print("".join(l for l in open(sys.argv[1]).read().splitlines() if "---" not in l))' "$A_DIR/server.crt")
apib POST /1.0/certificates "{\"type\":\"client\",\"name\":\"berth-a\",\"certificate\":\"$A_B64\"}"
is "$HTTP_STATUS" 201 "B: trusts A's server certificate"
pull "\"alias\":\"busybox\",\"certificate\":$B_CERT"
is "$OPST" Failure "... A still needs a secret: a pull shows no client certificate"
is "$(count_images)" "$nimg" "... nothing stored"

# ---- berth image copy ----
run berth remote add b "https://$B_ADDR" --accept-certificate --password pb
rc_ok "berth remote add b"
run berth remote add a "https://$A_ADDR" --accept-certificate --password pa
rc_ok "berth remote add a"
before=$(token_ops)
run berth image copy b:busybox a: --alias copied --copy-aliases
rc_ok "berth image copy b:busybox a: (private: berth asks B for a secret)"
used_secret "... B's secret used up (its token operation Success)" "$before"
apia GET /1.0/images/aliases/copied
is "$(jget 'j["metadata"]["target"]')" "$FP" "... the copy on A with --alias"
apia GET /1.0/images/aliases/busybox
is "$(jget 'j["metadata"]["target"]')" "$FP" "... and the source's alias (--copy-aliases)"
apia GET "/1.0/images/$FP"
is "$(jget 'j["metadata"]["public"]')" false "... private, as asked"
refuse "a copy onto the same remote" "same" berth image copy b:busybox b:
refuse "a target that is not a remote" "must be a remote" berth image copy b:busybox a:name
delete_on_a "$FP"

# ---- the stock lxc client ----
if command -v lxc >/dev/null; then
	run timeout 60 lxc remote add b1 "https://$A_ADDR" --accept-certificate --password pa
	rc_ok "lxc remote add b1 (A)"
	run timeout 60 lxc remote add b2 "https://$B_ADDR" --accept-certificate --password pb
	rc_ok "lxc remote add b2 (B)"
	before=$(token_ops)
	run timeout 60 lxc image copy b2:busybox b1:
	rc_ok "lxc image copy b2:busybox b1: (a private image)"
	used_secret "... with a secret of B's" "$before"
	apia GET "/1.0/images/$FP"
	is "$(jget 'j["metadata"]["update_source"]["protocol"]')" lxd "... A pulled it over the LXD protocol"
	delete_on_a "$FP"
	before=$(token_ops)
	run timeout 60 lxc init b2:busybox b1:c1
	rc_ok "lxc init b2:busybox b1:c1"
	used_secret "... with a secret of B's" "$before"
	apia GET /1.0/instances/c1
	is "$(jget 'j["metadata"]["status"]')" Stopped "... c1 made on A"
	apia GET "/1.0/images/$FP"
	is "$(jget 'j["metadata"]["cached"]')" true "... from a cached image"
	run timeout 60 lxc delete -f b1:c1
	rc_ok "lxc delete -f b1:c1"
	delete_on_a "$FP"
else
	skip "the lxc client cases" "lxc not installed (apt-get install lxd-client)"
fi

# ---- an image server that lies (lxd_stub.py on loopback) ----
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=stub \
	-days 1 -keyout "$TEST_TMP/stub.key" -out "$TEST_TMP/stub.crt" >/dev/null 2>&1
$PY "$BERTH_SRCDIR/tests/integration/lxd_stub.py" "$TEST_TMP/stub.crt" "$TEST_TMP/stub.key" \
	"$TEST_TMP/stub.port" &
STUB_PID=$!
for i in $(seq 50); do
	[ -s "$TEST_TMP/stub.port" ] && break
	sleep 0.1
done
STUB=https://127.0.0.1:$(cat "$TEST_TMP/stub.port")
STUB_CERT=$(jstr "$TEST_TMP/stub.crt")
nfiles=$(count_files)
PULL_SERVER=$STUB pull "\"alias\":\"lying\",\"certificate\":$STUB_CERT"
is "$OPST" Failure "an export larger than the image's announced size is refused"
like "$OPERR" "larger than 66536 bytes" "... once it passes the size and the multipart slack"
is "$(count_images):$(count_files)" "$nimg:$nfiles" "... nothing stored"
PULL_SERVER=$STUB pull "\"alias\":\"vast\",\"certificate\":$STUB_CERT"
is "$OPST" Failure "an image larger than the image store's free space is refused"
like "$OPERR" "Not enough space in .* for image \"0f0f0f0f0f0f\"" "... before its download, naming it"
is "$(count_images):$(count_files)" "$nimg:$nfiles" "... nothing stored"
PULL_SERVER=$STUB pull "\"alias\":\"huge\",\"certificate\":$STUB_CERT"
is "$OPST" Failure "an image record over 1 MiB is refused"
like "$OPERR" "larger than 1048576 bytes" "... naming the cap"
apia POST /1.0/images "{\"source\":{\"type\":\"image\",\"mode\":\"pull\",\"protocol\":\"lxd\",\"server\":\"$STUB\",\"alias\":\"slow\",\"certificate\":$STUB_CERT}}"
SOP=$(jget 'j["operation"]')
sleep 1
apia DELETE "$SOP"
t0=$(date +%s%N)
BERTH_SOCKET=$A_SOCK wait_operation "$SOP" 20
t1=$(date +%s%N)
is "$(jget 'j["metadata"]["status"]')" Cancelled "a pull cancelled mid-download (a slow server) ends Cancelled"
ok "... within 2 s ($(((t1 - t0) / 1000000)) ms), not when the server is done" test $(((t1 - t0) / 1000000)) -lt 2000
is "$(count_images)" "$nimg" "... nothing stored"
kill "$STUB_PID"
wait "$STUB_PID" 2>/dev/null
STUB_PID=

# ---- secrets expire, are capped, and do not hold B up when it stops ----
secrets_finale()
{
	local codes t0 t1
	apib PATCH /1.0 '{"config":{"core.remote_token_expiry":"1S"}}'
	apib POST "/1.0/images/$FP/secret"
	SOP=$(jget 'j["operation"]')
	sleep 1.5
	BERTH_SOCKET=$B_SOCK wait_operation "$SOP" 10
	is "$(jget 'j["metadata"]["status"]')" Cancelled "B: a secret unused past core.remote_token_expiry expires"
	apib PATCH /1.0 '{"config":{"core.remote_token_expiry":""}}'
	codes=$($PY - "$B_SOCK" "$FP" <<-'EOF'
		import json, socket, sys
		out = []
		for i in range(110):
		    s = socket.socket(socket.AF_UNIX)
		    s.connect(sys.argv[1])
		    s.sendall(("POST /1.0/images/%s/secret HTTP/1.1\r\nHost: b\r\n"
		               "Content-Length: 0\r\nConnection: close\r\n\r\n" % sys.argv[2]).encode())
		    data = b""
		    while True:
		        b = s.recv(65536)
		        if not b:
		            break
		        data += b
		    s.close()
		    code = int(data.split(b" ", 2)[1])
		    if code != 202:
		        out.append("%d %d %s" % (i, code, json.loads(data.split(b"\r\n\r\n", 1)[1])["error"]))
		        break
		print(out[0] if out else "none")
		EOF
	)
	like "$codes" "^100 503 Too many image secrets in project \"default\" \(at most 100" \
		"B: the 101st live secret of a project is refused, naming the cap"
	t0=$(date +%s%N)
	daemon_b_stop
	t1=$(date +%s%N)
	ok "... and B stops within 5 s with 100 unused secrets ($(((t1 - t0) / 1000000)) ms)" \
		test $(((t1 - t0) / 1000000)) -lt 5000
}

# ---- LXD 5.0.2 (full run): berth pulls from LXD, LXD pulls a private image from berth ----
if [ "${BERTH_TEST_FULL:-}" != 1 ] || ! command -v lxd >/dev/null || ! command -v lxc >/dev/null; then
	skip "LXD <-> berth image pulls" "full run only (BERTH_TEST_FULL=1, lxd installed)"
	secrets_finale
	exit 0
fi
LXD_HOME=$TEST_TMP/lxd
LXD_PID=
lxl() { LXD_DIR=$LXD_HOME lxc "$@"; }
lxd_stop()
{
	[ -n "$LXD_PID" ] || return 0
	LXD_DIR=$LXD_HOME timeout 60 lxd shutdown >/dev/null 2>&1
	kill "$LXD_PID" 2>/dev/null
	wait "$LXD_PID" 2>/dev/null
	LXD_PID=
}
trap 'lxd_stop; pull_cleanup' EXIT
mkdir -p "$LXD_HOME"
chmod 0711 "$TEST_TMP"
LXD_DIR=$LXD_HOME lxd --group root --logfile "$TEST_TMP/lxd.log" >/dev/null 2>&1 &
LXD_PID=$!
LXD_DIR=$LXD_HOME timeout 90 lxd waitready --timeout 90 || bail_out "LXD did not start: $(tail -n 5 "$TEST_TMP/lxd.log")"
pass "LXD $(lxd --version) of the test's own starts"
check "LXD: core.https_address=$A_IP:8445" lxl config set core.https_address "$A_IP:8445"
check "LXD: a trust password" lxl config set core.trust_password pl
run timeout 60 lxc remote add lxd "https://$A_IP:8445" --accept-certificate --password pl
rc_ok "lxc remote add lxd"
check "LXD: import the busybox image, private" lxl image import "${IMAGE[busybox]}" --alias lbusy
run timeout 120 lxc image copy lxd:lbusy b1: --alias froml
rc_ok "lxc image copy lxd:lbusy b1: (berth pulls a private image from LXD, with a secret)"
apia GET /1.0/images/aliases/froml
is "$(jget 'j["metadata"]["target"]')" "$FP" "... the image on A, by LXD's fingerprint"
apia GET "/1.0/images/$FP"
is "$(jget 'j["metadata"]["update_source"]["protocol"] + " " + j["metadata"]["update_source"]["server"]')" \
	"lxd https://$A_IP:8445" "... its source LXD, over protocol lxd"
check "LXD: its image deleted" lxl image delete lbusy
before=$(token_ops)
run timeout 120 lxc image copy b2:busybox lxd: --alias fromb
rc_ok "lxc image copy b2:busybox lxd: (LXD pulls berth's private image with a secret)"
used_secret "... using up a secret of B's" "$before"
run lxl image info fromb
like "$OUT" "Fingerprint: $FP" "... LXD has it under berth's fingerprint"
secrets_finale
