#!/bin/bash
# t_https.sh: berthd's remote API over HTTPS (doc/remote-api.md): the server certificate,
# core.https_address set, moved and unset at run time, LXD's trust model (trust password,
# single-use tokens, restricted certificates, untrusted callers), TLS versions and
# ciphers, all through the stock `lxc` client (Debian's 5.0.2), curl, openssl s_client
# and pylxd. Everything stays on the loopback of the test's own network namespace.
. "$(dirname "$0")/lib.sh"
command -v lxc >/dev/null || skip_all "lxc not installed (apt-get install lxd-client)"
command -v openssl >/dev/null || skip_all "openssl not installed"
command -v curl >/dev/null || skip_all "curl not installed"
berth_test_images busybox
berth_test_init "$@"

PORT=8443
ADDR=127.0.0.1:$PORT
URL=https://$ADDR
LXD_CONF=$TEST_TMP/lxc-conf
mkdir -p "$LXD_CONF"
export LXD_CONF
unset LXD_DIR
run_lxc() { run timeout 30 lxc "$@"; }

# ---- the server certificate ----
ok "server.crt and server.key made on first start" test -s "$BERTH_DIR/server.crt" -a -s "$BERTH_DIR/server.key"
is "$(stat -c %a "$BERTH_DIR/server.key")" 600 "server.key is 0600"
txt=$(openssl x509 -in "$BERTH_DIR/server.crt" -noout -text)
like "$txt" 'ASN1 OID: secp384r1' "the key is ECDSA P-384"
like "$txt" 'IP Address:127\.0\.0\.1' "a SAN for 127.0.0.1"
like "$txt" 'IP Address:0:0:0:0:0:0:0:1' "a SAN for ::1"
like "$txt" "DNS:$(hostname)" "a SAN for the host name"
end=$(date -d "$(openssl x509 -in "$BERTH_DIR/server.crt" -noout -enddate | cut -d= -f2)" +%s)
ok "valid for about 10 years" test $(((end - $(date +%s)) / 86400)) -ge 3640
fp=$(openssl x509 -in "$BERTH_DIR/server.crt" -outform der | sha256sum | cut -d' ' -f1)
api GET /1.0
is "$(jget 'j["metadata"]["environment"]["certificate_fingerprint"]')" "$fp" \
	"GET /1.0 shows the certificate's sha256 fingerprint"
is "$(jget 'j["metadata"]["environment"]["certificate"].strip()')" "$(cat "$BERTH_DIR/server.crt")" \
	"GET /1.0 shows the certificate (PEM)"
is "$(jget 'j["metadata"]["auth_methods"]')" '["tls"]' "auth_methods is tls"
is "$(jget 'j["metadata"]["environment"]["addresses"]')" '[]' "no addresses before core.https_address"

# ---- core.https_address ----
api PATCH /1.0 '{"config":{"core.https_address":"'$ADDR'"}}'
is "$HTTP_STATUS" 200 "PATCH core.https_address=$ADDR"
api GET /1.0
is "$(jget 'j["metadata"]["environment"]["addresses"]')" "[\"$ADDR\"]" "addresses lists it"
out=$(curl -sk "$URL/1.0")
is "$(jget 'j["metadata"]["auth"]' "$out")" untrusted "curl without a certificate: auth untrusted"
is "$(jget 'sorted(j["metadata"])' "$out")" \
	'["api_extensions", "api_status", "api_version", "auth", "auth_methods", "public"]' \
	"an untrusted GET /1.0 shows only LXD's untrusted fields"
code=$(curl -sk -o /dev/null -w '%{http_code}' -X PUT "$URL/internal/shutdown")
is "$code" 403 "untrusted PUT /internal/shutdown: 403"
code=$(curl -sk -o "$TEST_TMP/o" -w '%{http_code}' "$URL/1.0/instances")
is "$code:$(jget 'j["error"]' "$(cat "$TEST_TMP/o")")" "403:not authorized" \
	"untrusted GET /1.0/instances: 403 not authorized"

# ---- the trust password ----
api PATCH /1.0 '{"config":{"core.trust_password":"s3cret"}}'
is "$HTTP_STATUS" 200 "set core.trust_password"
api GET /1.0
is "$(jget 'j["metadata"]["config"]["core.trust_password"]')" true \
	"GET /1.0 shows core.trust_password as true, not its value"
stored=$($PY -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT value FROM config WHERE key=?", ("core.trust_password",)).fetchone()[0])' "$BERTH_DIR/database/berth.db")
like "$stored" '^[0-9a-f]{192}$' "the password is stored as hex(salt 32 + scrypt 64)"
run_lxc remote add b "$URL" --accept-certificate --password wrong
isnt "$RC" 0 "lxc remote add with a wrong password is refused"
like "$OUT$ERR" 'not authorized' "... with LXD's 'not authorized'"
run_lxc remote add b "$URL" --accept-certificate --password s3cret
rc_ok "lxc remote add b $URL --accept-certificate --password s3cret"
api GET '/1.0/certificates?recursion=1'
is "$(jget 'len(j["metadata"])')" 1 "the client's certificate is in the trust store"
cfp=$(openssl x509 -in "$LXD_CONF/client.crt" -outform der | sha256sum | cut -d' ' -f1)
is "$(jget 'j["metadata"][0]["fingerprint"]')" "$cfp" "... with the client certificate's fingerprint"
run_lxc info b:
rc_ok "lxc info b:"
like "$OUT" 'auth: trusted' "lxc info b: shows auth: trusted"
like "$OUT" "certificate_fingerprint: $fp" "lxc info b: shows the server fingerprint"

# ---- instances over HTTPS: list and exec (websockets over TLS) ----
run_cli image import "${IMAGE[busybox]}" --alias busybox
rc_ok "import the busybox image"
out=$(curl -sk "$URL/1.0/images")
is "$(jget 'j["metadata"]' "$out")" '[]' \
	"untrusted GET /1.0/images: a private image is not listed"
api GET /1.0/images/aliases/busybox
ifp=$(jget 'j["metadata"]["target"]')
is "$(curl -sk -o /dev/null -w '%{http_code}' "$URL/1.0/images/$ifp")" 404 \
	"untrusted GET of a private image: 404"
api PATCH "/1.0/images/$ifp" '{"public":true}'
out=$(curl -sk "$URL/1.0/images")
is "$(jget 'j["metadata"]' "$out")" "[\"/1.0/images/$ifp\"]" "untrusted: a public image is listed"
is "$(jget '[a["name"] for a in j["metadata"]]' "$(curl -sk "$URL/1.0/images/aliases?recursion=1")")" \
	'["busybox"]' "untrusted: its alias is listed"
curl -sk -o "$TEST_TMP/export" "$URL/1.0/images/$ifp/export"
is "$(sha256sum <"$TEST_TMP/export" | cut -d' ' -f1)" "$ifp" "untrusted: a public image exports"
run_lxc launch b:busybox b:c1
rc_ok "lxc launch b:busybox b:c1"
run_lxc list b: -f csv -c ns
is "$OUT" 'c1,RUNNING' "lxc list b: shows c1 RUNNING"
run_lxc exec b:c1 -- echo hi
is "$RC:$OUT" "0:hi" "lxc exec b:c1 -- echo hi"
run_lxc exec b:c1 -- sh -c 'exit 3'
is "$RC" 3 "lxc exec b:c1 passes the exit status back"
timeout 8 lxc monitor b: --type lifecycle --format json >"$TEST_TMP/monitor" 2>&1 &
mon=$!
sleep 2
run_lxc config set b:c1 user.seen yes
for _ in $(seq 20); do grep -q instance-updated "$TEST_TMP/monitor" && break; sleep 0.3; done
kill "$mon" 2>/dev/null; wait "$mon" 2>/dev/null
like "$(cat "$TEST_TMP/monitor")" '"action": ?"instance-updated"' "lxc monitor b: gets events over TLS"

# ---- tokens, made with `berth config trust add` ----
export PATH=$BERTH_BUILDDIR:$PATH
run_cli config trust add --name tok1
rc_ok "berth config trust add --name tok1"
like "$OUT" '^Client tok1 certificate add token:' "it prints the token as lxc does"
token=$(printf '%s\n' "$OUT" | sed -n 2p)
is "$($PY -c 'import base64,json,sys; t=json.loads(base64.b64decode(sys.argv[1])); print(t["client_name"], t["fingerprint"], t["addresses"], len(t["secret"]))' "$token")" \
	"tok1 $fp ['$ADDR'] 64" "the token is base64 of LXD's JSON (name, fingerprint, addresses, secret)"
run_cli config trust list-tokens -f csv
like "$OUT" '^tok1,' "berth config trust list-tokens lists it"
run lxc config trust list-tokens b: -f csv
like "$OUT" '^tok1,' "lxc config trust list-tokens b: lists it"
LXD_CONF=$TEST_TMP/lxc-tok
mkdir -p "$LXD_CONF"
run_lxc remote add b2 "$token"
rc_ok "lxc remote add b2 <token> (a second client)"
run_lxc list b2: -f csv -c n
is "$RC:$OUT" "0:c1" "the token's client lists the instances"
api GET '/1.0/certificates?recursion=1'
is "$(jget '[c["name"] for c in j["metadata"] if c["name"] == "tok1"]')" '["tok1"]' \
	"the certificate is named after the token's client name"
LXD_CONF=$TEST_TMP/lxc-reuse
mkdir -p "$LXD_CONF"
run_lxc remote add b3 "$token"
isnt "$RC" 0 "a token used once is refused the second time"
api GET '/1.0/operations?recursion=1'
is "$(jget '[o["class"] for o in j["metadata"].get("running", []) if o["class"] == "token"]')" '[]' \
	"the used token's operation is no longer running"
run_cli config trust add --name tok2
run_cli config trust revoke-token tok2
rc_ok "berth config trust revoke-token tok2"
run_cli config trust list-tokens -f csv
is "$OUT" "" "the revoked token is gone"
api PATCH /1.0 '{"config":{"core.remote_token_expiry":"2S"}}'
is "$HTTP_STATUS" 200 "core.remote_token_expiry=2S"
api PATCH /1.0 '{"config":{"core.remote_token_expiry":"soon"}}'
is "$HTTP_STATUS" 400 "a malformed core.remote_token_expiry is refused"
run_cli config trust add --name tok3
token3=$(printf '%s\n' "$OUT" | sed -n 2p)
like "$($PY -c 'import base64,json,sys; print(json.loads(base64.b64decode(sys.argv[1]))["expires_at"])' "$token3")" \
	'^20[0-9-]+T' "a token made with an expiry carries expires_at"
sleep 3
run_cli config trust list-tokens -f csv
is "$OUT" "" "an expired token's operation ends on its own"
run_lxc remote add b3 "$token3"
isnt "$RC" 0 "an expired token is refused"
api PATCH /1.0 '{"config":{"core.remote_token_expiry":""}}'

# ---- TLS versions and ciphers ----
s_client() { timeout 10 openssl s_client -connect "$ADDR" "$@" </dev/null 2>&1; }
out=$(s_client -tls1_1)
like "$out" 'alert protocol version' "TLS 1.1 is refused (protocol version alert)"
out=$(s_client -tls1_2)
like "$out" 'New, TLSv1\.2, Cipher is ECDHE-ECDSA-(AES(128|256)-GCM|CHACHA20)' \
	"TLS 1.2 is taken, with an ECDHE AEAD cipher"
out=$(s_client -tls1_3)
like "$out" 'New, TLSv1\.3, Cipher is TLS_(AES_(128|256)_GCM|CHACHA20_POLY1305)' "TLS 1.3 is taken"
out=$(s_client -tls1_2 -cipher AES128-SHA)
unlike "$out" 'Cipher is AES128-SHA' "a weak cipher (AES128-SHA, no ECDHE, CBC) is refused"
out=$(s_client -tls1_2 -cipher ECDHE-ECDSA-AES128-SHA)
unlike "$out" 'Cipher is ECDHE-ECDSA-AES128-SHA' "a CBC cipher is refused"

# ---- restricted certificates ----
LXD_CONF=$TEST_TMP/lxc-conf
api POST /1.0/projects '{"name":"p1"}'
is "$HTTP_STATUS" 201 "project p1"
api POST '/1.0/instances?project=p1' '{"name":"r1","source":{"type":"none"}}'
wait_operation "$(jget 'j["operation"]')"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=restricted \
	-keyout "$TEST_TMP/r.key" -out "$TEST_TMP/r.crt" -days 2 2>/dev/null
run_cli config trust add "$TEST_TMP/r.crt" --restricted --projects p1 --name r
rc_ok "berth config trust add r.crt --restricted --projects p1"
run_cli config trust list -f csv
like "$OUT" 'client,r,[0-9a-f]{12},YES,p1' "berth config trust list shows it restricted to p1"
rcurl() { curl -sk --cert "$TEST_TMP/r.crt" --key "$TEST_TMP/r.key" "$@"; }
out=$(rcurl "$URL/1.0/instances?project=p1")
is "$(jget 'j["metadata"]' "$out")" '["/1.0/instances/r1?project=p1"]' "restricted: p1's instances listed"
code=$(rcurl -o /dev/null -w '%{http_code}' "$URL/1.0/instances")
is "$code" 403 "restricted: the default project is refused"
code=$(rcurl -o /dev/null -w '%{http_code}' "$URL/1.0/instances?all-projects=true")
is "$code" 403 "restricted: all-projects is refused"
code=$(rcurl -o /dev/null -w '%{http_code}' -X PATCH -d '{"config":{}}' "$URL/1.0")
is "$code" 403 "restricted: server configuration is refused"
out=$(rcurl "$URL/1.0")
is "$(jget 'j["metadata"]["auth"]' "$out")" trusted "restricted: GET /1.0 says trusted"
out=$(rcurl "$URL/1.0/projects")
is "$(jget 'j["metadata"]' "$out")" '["/1.0/projects/p1"]' "restricted: it lists its own projects only"
out=$(rcurl "$URL/1.0/certificates?recursion=1")
is "$(jget '[c["name"] for c in j["metadata"]]' "$out")" '["r"]' "restricted: it sees its own certificate only"
rfp=$(openssl x509 -in "$TEST_TMP/r.crt" -outform der | sha256sum | cut -d' ' -f1)
api PATCH "/1.0/certificates/${rfp:0:16}" '{"projects":["default"]}'
is "$HTTP_STATUS" 200 "PATCH the certificate by a fingerprint prefix: projects default"
code=$(rcurl -o /dev/null -w '%{http_code}' "$URL/1.0/instances?project=p1")
is "$code" 403 "restricted: p1 refused once taken away"
code=$(rcurl -o /dev/null -w '%{http_code}' "$URL/1.0/instances")
is "$code" 200 "restricted: default allowed once given"
# a migration peer on a local unix socket is for unix-socket clients only
out=$(rcurl -X POST -d "{\"name\":\"m1\",\"source\":{\"type\":\"migration\",\"mode\":\"pull\",\"operation\":\"unix://$BERTH_DIR/unix.socket/1.0/operations/x\",\"secrets\":{\"control\":\"a\",\"fs\":\"b\"}}}" "$URL/1.0/instances")
is "$(jget '[j["error_code"], "local unix socket" in j["error"]]' "$out")" '[403, true]' \
	"over HTTPS, a migration source on a local unix socket is refused (403)"
out=$(rcurl -X POST -d "{\"migration\":true,\"target\":{\"operation\":\"unix:///run/x.sock/1.0/operations/x\",\"websockets\":{\"control\":\"a\",\"fs\":\"b\"}}}" "$URL/1.0/instances/r1")
is "$(jget 'j["error_code"]' "$out")" 403 "... and so is a push target there"
api GET /1.0/instances/m1
is "$HTTP_STATUS" 404 "... with no instance made"
run_cli config trust show "${rfp:0:12}"
like "$OUT" 'restricted: true' "berth config trust show"
run_cli config trust remove "${rfp:0:12}"
rc_ok "berth config trust remove"
out=$(rcurl "$URL/1.0")
is "$(jget 'j["metadata"]["auth"]' "$out")" untrusted "a removed certificate is untrusted at once"

# ---- pylxd with a client certificate ----
api POST /1.0/certificates "{\"type\":\"client\",\"name\":\"py\",\"certificate\":\"$(openssl x509 -in "$TEST_TMP/r.crt" -outform der | base64 -w0)\"}"
is "$HTTP_STATUS" 201 "POST /1.0/certificates with a base64 DER certificate"
# (requests takes a CA bundle named in the environment over verify=False)
out=$(env -u REQUESTS_CA_BUNDLE -u CURL_CA_BUNDLE $PY - "$URL" "$TEST_TMP/r.crt" "$TEST_TMP/r.key" <<'PYEOF' 2>&1
import sys, warnings
warnings.filterwarnings("ignore")
import pylxd
c = pylxd.Client(endpoint=sys.argv[1], cert=(sys.argv[2], sys.argv[3]), verify=False)
print(c.trusted, sorted(i.name for i in c.containers.all()))
PYEOF
)
is "$out" "True ['c1']" "pylxd over HTTPS with a client certificate: trusted, containers.all()"

# ---- core.https_address moved, refused, unset ----
$PY -c 'import socket,time; s=socket.socket(); s.bind(("127.0.0.1", 9555)); s.listen(); time.sleep(30)' &
holder=$!
sleep 0.5
api PATCH /1.0 '{"config":{"core.https_address":"127.0.0.1:9555"}}'
is "$HTTP_STATUS:$(jget 'j["error"]')" '400:Cannot listen on "127.0.0.1:9555": Address already in use' \
	"a busy address is refused, naming it"
kill "$holder"; wait "$holder" 2>/dev/null
api GET /1.0
is "$(jget 'j["metadata"]["config"]["core.https_address"]')" "$ADDR" "... and nothing changed"
is "$(curl -sk -o /dev/null -w '%{http_code}' "$URL/1.0")" 200 "... the listener still answers"
api PATCH /1.0 '{"config":{"core.https_address":"256.1.1.1:1"}}'
is "$HTTP_STATUS" 400 "a malformed address is refused"
api PATCH /1.0 '{"config":{"core.https_address":"[::]:8444"}}'
is "$HTTP_STATUS" 200 "move to [::]:8444"
is "$(curl -sk -o /dev/null -w '%{http_code}' "https://[::1]:8444/1.0")" 200 "[::1]:8444 answers"
is "$(curl -sk -o /dev/null -w '%{http_code}' "https://127.0.0.1:8444/1.0")" 200 "127.0.0.1:8444 answers (dual stack)"
is "$(curl -sk -o /dev/null -w '%{http_code}' "$URL/1.0")" 000 "the old address no longer answers"
api PATCH /1.0 '{"config":{"core.https_address":":8443"}}'
is "$HTTP_STATUS" 200 "back to :8443 (LXD's short form)"
run_lxc list b: -f csv -c n
is "$RC:$OUT" "0:c1" "lxc list b: works on the moved listener"
api PATCH /1.0 '{"config":{"core.https_address":""}}'
is "$HTTP_STATUS" 200 "unset core.https_address"
is "$(curl -sk -o /dev/null -w '%{http_code}' "$URL/1.0")" 000 "nothing listens any more"

# ---- tokens hold no worker: 70 live tokens, and operations still run ----
for i in $(seq 70); do api POST /1.0/certificates "{\"name\":\"many$i\",\"token\":true}"; done
is "$HTTP_STATUS" 202 "70 tokens made"
run timeout 30 berth delete --force c1
rc_ok "an operation (delete --force c1) runs beside 70 live tokens"
run_cli config trust list-tokens -f csv
is "$(printf '%s\n' "$OUT" | grep -c '^many')" 70 "all 70 are listed"
