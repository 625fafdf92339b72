#!/bin/bash
# t_remote.sh: `berth remote` and REMOTE:NAME over the TLS client. Without LXD: the
# configuration directory ($BERTH_CONF: config.yml in lxc's format, read back by the
# stock lxc client; no file written by reading), a simplestreams remote added, renamed,
# switched to and removed, the errors (names taken, static local, unknown remotes, a
# malformed config.yml, a simplestreams remote used for instances). Against Debian's LXD
# 5.0.2, a daemon of the test's own (LXD_DIR in the test's temp dir, HTTPS on 127.0.0.1
# inside the test's network namespace, stopped by PID): a wrong trust password refused
# and nothing kept, the fingerprint confirmation (n refused, y accepted), the client
# certificate made on first use (ECDSA P-384), the pinned certificate equal to LXD's,
# list/info/launch/exec/file/snapshot/config/monitor/stop/delete and the profile, storage,
# network and operation lists through lxd:, a certificate add
# token (used once: the second use refused), an image pulled by LXD from another remote
# (the source lxc sends), a pinned certificate that does not match refused by name, and
# lxc itself using the files berth wrote. Skipped without lxd. TAP output.
. "$(dirname "$0")/lib.sh"
berth_test_images busybox
if [ "$(id -u)" = 0 ]; then
	command -v lxc >/dev/null || skip_all "the lxc client is not installed (lxd-client)"
fi
berth_test_init "$@"
export PATH=$BERTH_BUILDDIR:$PATH
export BERTH_CONF=$TEST_TMP/conf
CONF=$BERTH_CONF

# ---- the configuration, no server needed ----
run berth remote list
rc_ok "remote list with no configuration"
like "$OUT" '\| local \(current\) \| unix:// +\| lxd +\| file access \| NO +\| YES ' "... shows local, current and static"
ok "... and writes nothing" test ! -e "$CONF/config.yml"
run berth remote get-default
is "$OUT" local "get-default: local"
check "berth list local: reaches berthd" berth list local:
check "add a simplestreams remote" berth remote add ss https://127.0.0.1:1/streams --protocol simplestreams
run cat "$CONF/config.yml"
like "$OUT" $'ss:\n    addr: https://127.0.0.1:1/streams\n    protocol: simplestreams\n    public: true' "... stored as lxc stores it"
ok "... with no client certificate made (nothing contacted)" test ! -e "$CONF/client.crt"
run env LXD_CONF="$CONF" lxc remote list
like "$OUT" '\| ss +\| https://127.0.0.1:1/streams +\| simplestreams \| none +\| YES ' "the stock lxc client reads berth's config.yml"
refuse "a taken name" "Remote ss exists as <https://127.0.0.1:1/streams>" berth remote add ss https://x --protocol simplestreams
refuse "a name with a colon" "may not contain colons" berth remote add a:b https://x --protocol simplestreams
refuse "an unknown protocol" "Invalid protocol: ftp" berth remote add p https://x --protocol ftp
refuse "local cannot be removed" "Remote local is static and cannot be modified" berth remote remove local
refuse "local cannot be renamed" "Remote local is static" berth remote rename local l2
refuse "an instance on a simplestreams remote" 'remote "ss" is a simplestreams image server' berth list ss:
refuse "an unknown remote" 'The remote "nope" doesn'"'"'t exist' berth info nope:c1
refuse "exec on an unknown remote" 'The remote "nope" doesn'"'"'t exist' berth exec nope:c1 -- true
check "rename ss to s2" berth remote rename ss s2
check "switch to s2" berth remote switch s2
run berth remote get-default
is "$OUT" s2 "get-default: s2"
refuse "the default cannot be removed" "Can't remove the default remote" berth remote remove s2
refuse "a command without a remote goes to the default (s2)" "simplestreams image server" berth list
check "set-url" berth remote set-url s2 https://127.0.0.1:2/other
run berth remote list --format csv
like "$OUT" 's2 \(current\),https://127.0.0.1:2/other,simplestreams,none,YES,NO,NO' "... the new URL listed"
check "switch back to local" berth remote switch local
check "remove s2" berth remote remove s2
refuse "remove it again" "Remote s2 doesn't exist" berth remote remove s2
cp "$CONF/config.yml" "$TEST_TMP/good.yml"
printf 'remotes:\n  x: [1, 2]\n' >"$CONF/config.yml"
refuse "a malformed config.yml is named" "$CONF/config.yml: remote \"x\" has no addr" berth remote list
cp "$TEST_TMP/good.yml" "$CONF/config.yml"

# ---- against LXD 5.0.2 ----
if ! command -v lxd >/dev/null; then
	skip "the LXD 5.0.2 cases" "the lxd daemon is not installed (apt-get install lxd)"
	exit 0
fi
LXD_PID=
LXD_HOME=$TEST_TMP/lxd
lxl() { LXD_DIR=$LXD_HOME LXD_CONF=$TEST_TMP/lxd-conf lxc "$@"; }
lxd_stop()
{
	[ -n "$LXD_PID" ] || return 0
	LXD_DIR=$LXD_HOME timeout 60 lxd shutdown >/dev/null 2>&1
	kill "$LXD_PID" 2>/dev/null
	wait "$LXD_PID" 2>/dev/null
	LXD_PID=
}
trap 'lxd_stop; _berth_test_exit' EXIT
mkdir -p "$LXD_HOME" "$TEST_TMP/lxd-conf"
chmod 0711 "$TEST_TMP"
ip link set lo up
LXD_DIR=$LXD_HOME lxd --group root --logfile "$TEST_TMP/lxd.log" >/dev/null 2>&1 &
LXD_PID=$!
if ! LXD_DIR=$LXD_HOME timeout 90 lxd waitready --timeout 90; then
	fail "LXD starts" "$(tail -n 20 "$TEST_TMP/lxd.log")"
	exit 1
fi
pass "LXD $(lxd --version) of the test's own starts"
check "LXD: HTTPS on 127.0.0.1:8443 (the test's namespace)" lxl config set core.https_address 127.0.0.1:8443
check "LXD: a trust password" lxl config set core.trust_password s3cret
check "LXD: a dir pool" lxl storage create default dir
check "LXD: the default profile's root disk" lxl profile device add default root disk path=/ pool=default
check "LXD: the busybox image, public" lxl image import "${IMAGE[busybox]}" --alias busybox --public
LXD_FP=$(lxl info | sed -n 's/^ *certificate_fingerprint: //p')

refuse "a wrong password is refused, naming the remote" "remote lxd: not authorized" berth remote add lxd 127.0.0.1 --accept-certificate --password nope
run berth remote list
unlike "$OUT" '\| lxd +\| https' "... nothing kept in config.yml"
ok "... nor a pinned certificate" test ! -e "$CONF/servercerts/lxd.crt"
run openssl x509 -in "$CONF/client.crt" -noout -text
like "$OUT" 'NIST CURVE: P-384' "the client certificate made on first use is ECDSA P-384"
like "$OUT" 'Subject: O = linuxcontainers.org, CN = ' "... named as lxc names it"
like "$OUT" 'TLS Web Client Authentication' "... for client authentication"
run stat -c %a "$CONF/client.key"
is "$OUT" 600 "... its key is 0600"
out=$(echo n | berth remote add lxd 127.0.0.1 --password s3cret 2>&1)
like "$out" "Certificate fingerprint: $LXD_FP" "the fingerprint shown is LXD's"
like "$out" "Server certificate NACKed by user" "... answering n refuses it"
out=$(echo y | berth remote add lxd 127.0.0.1 --password s3cret 2>&1)
like "$out" "Client certificate now trusted by server: lxd" "answering y and the password: trusted"
run cat "$CONF/config.yml"
like "$OUT" $'lxd:\n    addr: https://127.0.0.1:8443\n    protocol: lxd\n    public: false\n    auth_type: tls' "... stored with LXD's port"
run openssl x509 -in "$CONF/servercerts/lxd.crt" -noout -fingerprint -sha256
is "$(echo "${OUT#*=}" | tr -d : | tr A-F a-f)" "$LXD_FP" "... LXD's certificate pinned in servercerts/lxd.crt"
run berth info lxd:
like "$OUT" 'auth: trusted' "berth info lxd: (trusted)"
like "$OUT" 'server: lxd' "... it is LXD"
run berth launch lxd:busybox lxd:c1
rc_ok "berth launch lxd:busybox lxd:c1"
run berth list lxd:
like "$OUT" '\| c1 +\| RUNNING ' "berth list lxd: shows c1 running"
run berth exec lxd:c1 -- echo hi
is "$OUT" hi "berth exec lxd:c1 -- echo hi (websockets over TLS)"
run berth exec lxd:c1 -- sh -c 'exit 7'
is "$RC" 7 "... the exit status comes back"
echo "pushed over TLS" >"$TEST_TMP/f"
check "berth file push to lxd:c1" berth file push "$TEST_TMP/f" lxd:c1/tmp/f
run lxl exec c1 -- cat /tmp/f
is "$OUT" "pushed over TLS" "... LXD's c1 has it"
check "berth file pull from lxd:c1" berth file pull lxd:c1/tmp/f "$TEST_TMP/g"
is "$(cat "$TEST_TMP/g")" "pushed over TLS" "... the same content back"
berth monitor lxd: --type lifecycle >"$TEST_TMP/events" 2>&1 &
MON=$!
sleep 1 # its websocket up
check "berth snapshot lxd:c1 s0" berth snapshot lxd:c1 s0
for _ in $(seq 50); do grep -q 'instance-snapshot-created' "$TEST_TMP/events" && break; sleep 0.1; done
kill "$MON" 2>/dev/null
wait "$MON" 2>/dev/null
like "$(cat "$TEST_TMP/events")" 'action: instance-snapshot-created' "berth monitor lxd: (events over TLS) saw the snapshot made"
for what in profile storage network operation; do
	run berth "$what" list lxd: --format csv
	rc_ok "berth $what list lxd:"
done
like "$(berth profile list lxd: --format csv)" '^default,' "... LXD's default profile listed"
like "$(berth storage list lxd: --format csv)" '^default,dir,' "... LXD's dir pool listed"
check "berth config set lxd:c1" berth config set lxd:c1 user.k v1
run berth config get lxd:c1 user.k
is "$OUT" v1 "berth config get lxd:c1"
run lxl info c1
like "$OUT" 's0' "... LXD lists the snapshot"
run berth image list lxd:
like "$OUT" '\| busybox \|' "berth image list lxd:"
check "berth stop -f lxd:c1" berth stop -f lxd:c1
check "berth delete lxd:c1" berth delete lxd:c1
run lxl list -c n --format csv
is "$OUT" "" "... LXD has no instance left"

# a token, with a second configuration (its own client certificate)
TOKEN=$(lxl config trust add --name tok | tail -n 1)
run env BERTH_CONF="$TEST_TMP/conf2" berth remote add lt "$TOKEN"
rc_ok "remote add with a certificate add token"
like "$OUT" "Client certificate now trusted by server: lt" "... trusted"
run env BERTH_CONF="$TEST_TMP/conf2" berth list lt:
rc_ok "... berth list lt: works"
refuse "the same token a second time" "No matching certificate add operation found" env BERTH_CONF="$TEST_TMP/conf3" berth remote add lt "$TOKEN"
ok "... leaves no pinned certificate" test ! -e "$TEST_TMP/conf3/servercerts/lt.crt"
# a token for another server: the fingerprint does not match
BAD=$(printf '{"client_name":"x","fingerprint":"%064d","addresses":["127.0.0.1:8443"],"secret":"00","expires_at":"0001-01-01T00:00:00Z"}' 0 | base64 -w0)
refuse "a token whose fingerprint is not the server's" "Certificate fingerprint mismatch between certificate token and server https://127.0.0.1:8443" env BERTH_CONF="$TEST_TMP/conf3" berth remote add lt "$BAD"

# an image LXD pulls from another remote: a public one (the same LXD under another name)
check "remote add lpub --public" berth remote add lpub 127.0.0.1:8443 --public --accept-certificate
run berth init lpub:busybox lxd:c2
rc_ok "berth init lpub:busybox lxd:c2 (LXD pulls from the lpub remote)"
run lxl list -c ns --format csv
is "$OUT" "c2,STOPPED" "... c2 made on LXD"
check "... delete it" berth delete lxd:c2

# lxc with berth's files
run env LXD_CONF="$CONF" lxc list lxd: --format csv
rc_ok "the stock lxc client uses berth's client certificate and pinned certificate"

# a pinned certificate that is not the server's
cp "$CONF/client.crt" "$CONF/servercerts/lxd.crt"
refuse "a pinned certificate that does not match is refused" "remote \"lxd\": the certificate of 127.0.0.1:8443 is not the one trusted for it" berth list lxd:
lxd_stop
