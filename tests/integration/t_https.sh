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
run_lxc launch b:busybox b:c1
rc_ok "lxc launch b:busybox b:c1"
run_lxc list b: -f csv -c ns
is "$OUT" 'c1,RUNNING' "lxc list b: shows c1 RUNNING"
run_lxc exec b:c1 -- echo hi
is "$RC:$OUT" "0:hi" "lxc exec b:c1 -- echo hi"
run_lxc exec b:c1 -- sh -c 'exit 3'
is "$RC" 3 "lxc exec b:c1 passes the exit status back"
