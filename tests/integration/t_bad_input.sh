#!/bin/bash
# t_bad_input.sh: every kind of bad input gets the right status and LXD's error
# JSON, the daemon keeps serving everyone else, and nothing is half-written:
# the stored state (compared through GET before and after) and the pool's
# directory are unchanged, and berthd holds no more fds than before.
. "$(dirname "$0")/lib.sh"
BERTHD_ENV=(BERTH_HTTP_IDLE_TIMEOUT=1 BERTH_HTTP_REQUEST_TIMEOUT=2)
berth_test_init "$@"

# A known state to compare against: one profile, one instance.
api POST /1.0/profiles '{"name":"keep","config":{"limits.cpu":"1"}}'
like "$HTTP_STATUS" '^20[01]$' "setup: profile keep"
api POST /1.0/instances '{"name":"keep1","source":{"type":"none"}}'
wait_operation "$(jget 'j["operation"]')"
is "$(jget 'j["metadata"]["status"]')" Success "setup: instance keep1"

snapshot()
{
	local p
	for p in "/1.0?" "/1.0/profiles?recursion=1" "/1.0/instances?recursion=1" \
		"/1.0/projects?recursion=1" "/1.0/storage-pools?recursion=1"; do
		api GET "$p"
		printf '%s %s\n' "$p" "$(jget 'j["metadata"]')"
	done
	find "$BERTH_DIR/storage-pools" | sort
}
state_before=$(snapshot)
fds_before=$(daemon_fds)

# state_unchanged DESC: GETs and the pool directory are as before.
state_unchanged()
{
	local now
	now=$(snapshot)
	if [ "$now" = "$state_before" ]; then
		pass "$1"
	else
		fail "$1" "$(diff <(printf '%s\n' "$state_before") <(printf '%s\n' "$now"))"
	fi
}

# ---- malformed JSON and wrong types ----
expect_error 400 "malformed JSON" POST /1.0/profiles '{"name":'
expect_error 400 "JSON that is not an object" POST /1.0/profiles '["name"]'
expect_error 400 "JSON null" POST /1.0/profiles 'null'
expect_error 400 "empty body" POST /1.0/profiles ''
expect_error 400 "trailing garbage after JSON" POST /1.0/profiles '{"name":"tg"} xyz'
expect_error 400 "invalid UTF-8 in a string" POST /1.0/profiles "$(printf '{"name":"\xff\xfe"}')"
expect_error 400 "name of the wrong type" POST /1.0/profiles '{"name":5}'
expect_error 400 "config of the wrong type" POST /1.0/profiles '{"name":"wt1","config":["a"]}'
expect_error 400 "config value of the wrong type" POST /1.0/profiles '{"name":"wt2","config":{"limits.cpu":2}}'
expect_error 400 "devices of the wrong type" POST /1.0/profiles '{"name":"wt3","devices":"x"}'
expect_create_rejected "instance source of the wrong type" '{"name":"wt4","source":"none"}'
expect_create_rejected "profiles list of the wrong type" \
	'{"name":"wt5","source":{"type":"none"},"profiles":"default"}'
deep=$(printf '%*s' 100000 '' | tr ' ' '[')
expect_error 400 "JSON nested 100000 deep" POST /1.0/profiles "$deep"
expect_error 400 "PUT of malformed JSON on an existing profile" PUT /1.0/profiles/keep '{"config":'
expect_error 400 "PATCH of the wrong type on an instance" PATCH /1.0/instances/keep1 '{"config":"x"}'
daemon_alive "berthd still serves after malformed JSON"
state_unchanged "nothing changed after malformed JSON"

# ---- config keys and values ----
expect_error 400 "unknown config key in a new profile" POST /1.0/profiles '{"name":"ck1","config":{"foo":"1"}}'
like "$(jget 'j["error"]')" 'Unknown configuration key: foo' "the error names the unknown key"
expect_create_rejected "unknown config key in an instance" \
	'{"name":"ck2","source":{"type":"none"},"config":{"bogus.key":"1"}}'
expect_error 400 "invalid boolean value" POST /1.0/profiles '{"name":"ck3","config":{"security.privileged":"maybe"}}'
expect_error 400 "invalid memory value" PATCH /1.0/profiles/keep '{"config":{"limits.memory":"lots"}}'
expect_refused 400 "invalid cpu value" PUT /1.0/instances/keep1 \
	'{"config":{"limits.cpu":"many"},"devices":{},"profiles":["default"]}'
expect_error 400 "unknown server config key" PATCH /1.0 '{"config":{"core.nonsense":"1"}}'
expect_create_rejected "unknown profile in an instance" \
	'{"name":"ck4","source":{"type":"none"},"profiles":["nosuchprofile"]}' "400|404"
daemon_alive "berthd still serves after bad config"
state_unchanged "nothing changed after bad config"

# ---- names (LXD's rules) ----
expect_error 400 "empty profile name" POST /1.0/profiles '{"name":""}'
expect_error 400 "profile name with a slash" POST /1.0/profiles '{"name":"a/b"}'
expect_error 400 "profile name .." POST /1.0/profiles '{"name":".."}'
expect_error 400 "rename a profile to an invalid name" POST /1.0/profiles/keep '{"name":"x/y"}'
for bad in "-lead" "1digit" "trail-" "under_score" "dot.ted" "$(printf 'a%.0s' $(seq 64))"; do
	expect_create_rejected "instance name '${bad:0:20}' is refused" \
		"{\"name\":\"$bad\",\"source\":{\"type\":\"none\"}}"
done
expect_error 400 "rename an instance to an invalid name" POST /1.0/instances/keep1 '{"name":"bad_name"}'
expect_error 400 "empty project name" POST /1.0/projects '{"name":""}'
expect_error 400 "project name with a slash" POST /1.0/projects '{"name":"p/q"}'
daemon_alive "berthd still serves after invalid names"
state_unchanged "nothing changed after invalid names"

# ---- unknown paths and methods ----
expect_error 404 "unknown path under /1.0" GET /1.0/nope
expect_error 404 "unknown API version" GET /2.0
expect_error 404 "unknown profile" GET /1.0/profiles/nosuch
expect_error 404 "unknown instance" GET /1.0/instances/nosuch
expect_error 404 "PUT on an unknown profile" PUT /1.0/profiles/nosuch '{"config":{}}'
expect_error 404 "DELETE of an unknown instance" DELETE /1.0/instances/nosuch
expect_error 404 "unknown project" GET /1.0/projects/nosuch
expect_error 404 "encoded slash in a name" GET /1.0/profiles/a%2Fb
expect_error 404 "dot-dot path" GET /1.0/profiles/../../etc/passwd
expect_error 405 "DELETE /1.0 is not allowed" DELETE /1.0
expect_error 405 "PUT on the profiles collection is not allowed" PUT /1.0/profiles '{}'
expect_error 405 "POST on /1.0/operations is not allowed" POST /1.0/operations '{}'
expect_error 405 "OPTIONS on a known path is not allowed" OPTIONS /1.0
# A method token HTTP parsers do not know is malformed HTTP (400) or, like the
# above, not allowed (405).
expect_error "400|405" "an unknown method token is refused" FROB /1.0
daemon_alive "berthd still serves after unknown paths and methods"

# ---- ?filter= (api_filtering) ----
expect_error 400 "a filter with a dangling operator" GET "/1.0/instances?filter=name%20eq"
expect_error 400 "a filter with an unknown operator" GET "/1.0/instances?filter=name%20like%20x"
# Found by fuzz_json: "not" followed by an unterminated quote freed a token twice.
expect_error 400 "a filter of not and an unterminated quote" GET "/1.0/instances?filter=not%20%22x"
expect_error 400 "a filter with an unterminated quote" GET "/1.0/instances?filter=name%20eq%20%22c1"
daemon_alive "berthd still serves after bad filters"

# ---- malformed HTTP ----
api_raw $'GARBAGE\r\n\r\n'
is "$HTTP_STATUS" 400 "a garbage request line gets 400"
is "$(jget 'j["type"] + " " + str(j["error_code"])')" "error 400" "... with LXD's error JSON"
like "$(grep -F 'Unparsed request: 400' "$DAEMON_LOG")" ' info +\[api\] Unparsed request: 400 .+' \
	"... and berthd's log says so, at info level"
api_raw $'GET /1.0 HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n'
is "$HTTP_STATUS" 400 "a header line without a colon gets 400"
api_raw $'POST /1.0/profiles HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n{}'
is "$HTTP_STATUS" 400 "a non-numeric Content-Length gets 400"
api_raw $'POST /1.0/profiles HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'
like "$HTTP_STATUS" '^4[0-9][0-9]$' "Content-Length with Transfer-Encoding is refused"
out=$(printf 'GARBAGE\r\n\r\nGET /1.0 HTTP/1.1\r\nHost: x\r\n\r\n' |
	$PY "$RAWHTTP" raw "$BERTH_SOCKET" --timeout 5 --dump)
unlike "$out" '"api_version"' "the connection is closed after a malformed request"
daemon_alive "berthd still serves after malformed HTTP"

# ---- oversize ----
rawhttp big-header $((70 * 1024)) >"$TEST_TMP/resp"
_read_response
is "$HTTP_STATUS" 431 "headers over 64 KiB get 431"
is "$(jget 'j["error_code"]')" 431 "... with LXD's error JSON"
like "$(grep -F ': 431 ' "$DAEMON_LOG")" ' info +\[api\] .*: 431 Request header fields too large' \
	"... logged with its reason"
rawhttp big-header $((32 * 1024)) >"$TEST_TMP/resp"
_read_response
is "$HTTP_STATUS" 200 "a 32 KiB header is still fine"
rawhttp big-body /1.0/profiles $((17 * 1024 * 1024)) >"$TEST_TMP/resp"
_read_response
is "$HTTP_STATUS" 413 "a JSON body over 16 MiB gets 413"
is "$(jget 'j["error_code"]')" 413 "... with LXD's error JSON"
like "$(grep -F ': 413 ' "$DAEMON_LOG")" ' info +\[api\] .*: 413 Request body too large' \
	"... logged with its reason"
printf -v req 'POST /1.0/profiles HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n{}' \
	$((1024 * 1024 * 1024))
api_raw "$req" --timeout 10
is "$HTTP_STATUS" 413 "a declared 1 GiB body is refused up front with 413"
# An upload the spool's file system cannot hold is refused before a byte is written:
# the spool (STATE/tmp) on a 16 MiB tmpfs in this test's mount namespace, 64 MiB declared.
mount -t tmpfs -o size=16m berth-test-spool "$BERTH_DIR/tmp"
printf -v req 'POST /1.0/instances HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n%s' \
	$((64 * 1024 * 1024)) "$(head -c 4096 /dev/zero | tr '\0' x)"
api_raw "$req" --timeout 10
is "$HTTP_STATUS" 507 "an upload larger than the spool's free space is refused up front with 507"
like "$(grep -F ': 507 ' "$DAEMON_LOG")" '\[api\] .*: 507 Not enough space to receive the upload' \
	"... logged with its reason"
is "$(df --output=used -k "$BERTH_DIR/tmp" | tail -n 1 | tr -d ' ')" 0 "... and nothing of it was written"
umount "$BERTH_DIR/tmp"
daemon_alive "berthd still serves after oversize requests"
state_unchanged "nothing changed after oversize requests"

# ---- slow and half-open clients ----
res=$(rawhttp slow 100)
st=${res%% *}
ms=${res#* }
is "$st" 200 "GET /1.0 answers while 100 slow clients stall"
ok "... within 2 s (took ${ms} ms)" awk -v m="$ms" 'BEGIN {exit !(m < 2000)}'

res=$(rawhttp half-open --timeout 10)
like "$res" '^closed' "an idle connection is dropped (idle timeout 1 s): $res"
ok "... not before the timeout and within 4 s" awk -v r="${res#closed }" 'BEGIN {exit !(r >= 0.5 && r < 4)}'
res=$(rawhttp half-open --send $'GET /1.0 HTTP/1.1\r\nHost: x\r\n' --timeout 10)
like "$res" '^closed' "a request stalled mid-headers is dropped (request timeout 2 s): $res"
ok "... within 5 s" awk -v r="${res#closed }" 'BEGIN {exit !(r < 5)}'

# A body cut short: the client dies mid-body; nothing may be created.
$PY - "$BERTH_SOCKET" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
body = b'{"name":"halfway","config":{}}'
s.sendall(b"POST /1.0/profiles HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
          b"Content-Length: %d\r\n\r\n" % len(body) + body[:10])
s.close()
EOF
sleep 0.5
expect_error 404 "a profile whose body was cut short was not created" GET /1.0/profiles/halfway
daemon_alive "berthd still serves after slow and half-open clients"
state_unchanged "nothing changed after slow and half-open clients"

# Keep-alive: several requests on one connection still work after all this.
out=$(printf 'GET /1.0 HTTP/1.1\r\nHost: x\r\n\r\nGET /1.0/profiles HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' |
	$PY "$RAWHTTP" raw "$BERTH_SOCKET" --timeout 5 --dump)
is "$(printf '%s' "$out" | grep -ao 'HTTP/1.1 200 ' | wc -l)" 2 "two pipelined requests on one connection both answered"

check_no_fd_leak "$fds_before" "berthd holds no more fds than before the bad input"
