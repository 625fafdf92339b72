#!/bin/bash
# t_api.sh: berthd's REST API over raw HTTP, checked against LXD's shapes:
# server info, profiles, projects, instance records, operations, events,
# ?project= and persistence across a restart.
. "$(dirname "$0")/lib.sh"
# This berthd is given no QEMU ($BERTH_QEMU names a missing binary): VM creations are
# refused up front, naming what is missing (t_vm.sh runs them where QEMU is).
BERTHD_ENV=(BERTH_QEMU=/nonexistent/qemu-system-x86_64)
berth_test_init "$@"

# user_config: the instance's config without LXD's volatile.* keys, sorted pairs.
user_config='sorted((k, v) for k, v in j["metadata"]["config"].items() if not k.startswith("volatile."))'

# ---- a fresh berthd is small ----
# berth_test_init waited for a GET /1.0: one request served. About 5 MiB; 9 MiB idle
# and 11 MiB after that request while libcrypto and libarchive (with libxml2, ICU,
# libstdc++...) were linked in (bench/run idle-rss measures it before any request).
# not_mapped LIB MAPS: MAPS (a /proc/PID/maps) is readable and maps no file named LIB.so...
not_mapped() { [ -r "$2" ] && ! grep -q "/$1\.so" "$2"; }
rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$DAEMON_PID/status")
diag "fresh berthd after one GET /1.0: VmRSS $rss kB"
if ldd "$BERTHD" 2>/dev/null | grep -q libasan; then
	skip "a fresh berthd's RSS is under 8 MiB" "AddressSanitizer build (its shadow memory)"
else
	ok "a fresh berthd's RSS is under 8 MiB" test "$rss" -lt $((8 << 10))
fi
ok "... libarchive is not loaded before an image is read" \
	not_mapped libarchive "/proc/$DAEMON_PID/maps"
ok "... nor libcrypto" not_mapped libcrypto "/proc/$DAEMON_PID/maps"

# ---- GET / and /1.0 ----
api GET /
is "$HTTP_STATUS" 200 "GET / answers 200"
is "$(jget 'j["metadata"]')" '["/1.0"]' "GET / lists /1.0"

api GET /1.0
is "$HTTP_STATUS" 200 "GET /1.0 answers 200"
is "$(jget 'j["type"] + " " + str(j["status_code"]) + " " + j["status"]')" "sync 200 Success" \
	"GET /1.0 is a sync envelope"
is "$(jget 'j["metadata"]["api_version"]')" 1.0 "api_version is 1.0"
is "$(jget 'j["metadata"]["api_status"]')" stable "api_status is stable"
is "$(jget 'j["metadata"]["auth"]')" trusted "the unix socket is trusted"
is "$(jget '"instances" in j["metadata"]["api_extensions"]')" true "api_extensions has instances"
is "$(jget 'all(isinstance(x, str) for x in j["metadata"]["api_extensions"])')" true \
	"api_extensions is a list of strings"
is "$(jget 'j["metadata"]["environment"]["server"]')" berth "environment.server is berth"
is "$(jget 'j["metadata"]["environment"]["kernel"]')" "$(uname -s)" "environment.kernel"
is "$(jget 'j["metadata"]["environment"]["kernel_version"]')" "$(uname -r)" "environment.kernel_version"
is "$(jget 'j["metadata"]["environment"]["kernel_architecture"]')" "$(uname -m)" \
	"environment.kernel_architecture"
is "$(jget '"'"$(uname -m)"'" in j["metadata"]["environment"]["architectures"]')" true \
	"environment.architectures has $(uname -m)"
# LXD 5.0.2 itself sends {"Name": ...} here (no JSON tags on that struct).
is "$(jget '"dir" in [d.get("name", d.get("Name")) for d in j["metadata"]["environment"]["storage_supported_drivers"]]')" \
	true "storage_supported_drivers has dir"
like "$(jget 'j["metadata"]["environment"]["firewall"]')" '^(nftables|xtables)$' "environment.firewall"
is "$(jget 'j["metadata"]["environment"]["server_pid"]')" "$DAEMON_PID" "environment.server_pid is berthd's"
like "$HTTP_ETAG" '.' "GET /1.0 sends an ETag"

# ---- server config ----
expect_status 200 "PATCH /1.0 sets a server key" PATCH /1.0 '{"config":{"images.auto_update_interval":"12"}}'
api GET /1.0
is "$(jget 'j["metadata"]["config"].get("images.auto_update_interval")')" 12 "server config key stored"
expect_error 400 "PUT /1.0 with an unknown key is refused" PUT /1.0 '{"config":{"foo.bar":"1"}}'
like "$(jget 'j["error"]')" 'foo\.bar' "the error names the unknown key"
api GET /1.0
is "$(jget 'j["metadata"]["config"].get("images.auto_update_interval")')" 12 "a refused PUT changed nothing"
expect_status 200 "PUT /1.0 replaces the server config" PUT /1.0 '{"config":{}}'
api GET /1.0
is "$(jget 'len(j["metadata"]["config"])')" 0 "PUT without the key removed it"

# ---- profiles ----
api GET /1.0/profiles
is "$HTTP_STATUS" 200 "GET /1.0/profiles answers 200"
is "$(jget '"/1.0/profiles/default" in j["metadata"]')" true "the default profile exists"

api POST /1.0/profiles '{"name":"p1","description":"first","config":{"limits.cpu":"2"},"devices":{}}'
like "$HTTP_STATUS" '^20[01]$' "POST /1.0/profiles creates p1"
api GET /1.0/profiles/p1
is "$HTTP_STATUS" 200 "GET /1.0/profiles/p1"
is "$(jget 'j["metadata"]["name"] + "|" + j["metadata"]["description"] + "|" + j["metadata"]["config"]["limits.cpu"]')" \
	"p1|first|2" "p1 has its name, description and config"
is "$(jget 'j["metadata"]["used_by"]')" "[]" "p1 is used by nothing"
etag=$HTTP_ETAG
like "$etag" '.' "GET profile sends an ETag"
api GET /1.0/profiles?recursion=1
is "$(jget 'sorted(p["name"] for p in j["metadata"])')" '["default", "p1"]' "recursion=1 lists profile objects"

expect_error 409 "creating p1 again is a conflict" POST /1.0/profiles '{"name":"p1"}'
expect_error 412 "PUT with a stale If-Match is refused" PUT /1.0/profiles/p1 \
	'{"description":"x","config":{},"devices":{}}' -H 'If-Match: "stale"'
expect_status 200 "PUT with the current If-Match succeeds" PUT /1.0/profiles/p1 \
	'{"description":"second","config":{"limits.memory":"1GiB"},"devices":{}}' -H "If-Match: $etag"
api GET /1.0/profiles/p1
is "$(jget 'sorted(j["metadata"]["config"].items())')" '[["limits.memory", "1GiB"]]' "PUT replaced the config"
unlike "$HTTP_ETAG" "^$etag\$" "the ETag changed with the content"
expect_status 200 "PATCH merges config" PATCH /1.0/profiles/p1 '{"config":{"limits.cpu":"3"}}'
api GET /1.0/profiles/p1
is "$(jget 'sorted(j["metadata"]["config"].items())')" '[["limits.cpu", "3"], ["limits.memory", "1GiB"]]' \
	"PATCH kept the other keys"
is "$(jget 'j["metadata"]["description"]')" second "PATCH kept the description"

api POST /1.0/profiles/p1 '{"name":"p2"}'
like "$HTTP_STATUS" '^20[01]$' "POST rename p1 to p2"
expect_error 404 "p1 is gone after the rename" GET /1.0/profiles/p1
expect_status 200 "p2 exists after the rename" GET /1.0/profiles/p2
expect_error 403 "the default profile cannot be renamed" POST /1.0/profiles/default '{"name":"other"}'
expect_error 403 "the default profile cannot be deleted" DELETE /1.0/profiles/default

# ---- projects ----
api GET /1.0/projects
is "$(jget '"/1.0/projects/default" in j["metadata"]')" true "the default project exists"
api POST /1.0/projects '{"name":"proj1","config":{"features.profiles":"true"}}'
like "$HTTP_STATUS" '^20[01]$' "POST /1.0/projects creates proj1"
api GET /1.0/projects/proj1
is "$(jget 'j["metadata"]["name"]')" proj1 "GET /1.0/projects/proj1"
api GET "/1.0/profiles?project=proj1"
is "$(jget 'j["metadata"]')" '["/1.0/profiles/default?project=proj1"]' \
	"a project with features.profiles has its own default profile"
api POST "/1.0/profiles?project=proj1" '{"name":"inproj"}'
like "$HTTP_STATUS" '^20[01]$' "create a profile in proj1"
expect_error 404 "the proj1 profile is not in the default project" GET /1.0/profiles/inproj
expect_status 200 "the proj1 profile is found with ?project=" GET "/1.0/profiles/inproj?project=proj1"
expect_error 404 "an unknown project is 404" GET "/1.0/profiles?project=nope"

# ---- storage ----
api GET /1.0/storage-pools?recursion=1
is "$(jget '[(p["name"], p["driver"]) for p in j["metadata"]]')" '[["default", "dir"]]' \
	"the default dir pool exists"

# ---- events: subscribe before creating things ----
fds_before_events=$(daemon_fds)
evlog=$TEST_TMP/events
# python itself in the background (not the rawhttp function's subshell), so
# that $! is the websocket client and killing it closes the connection.
$PY "$RAWHTTP" ws "$BERTH_SOCKET" "/1.0/events?type=operation,lifecycle" --count 100 --timeout 20 \
	--ready "$TEST_TMP/ws-ready" >"$evlog" 2>"$TEST_TMP/ws.err" &
ws_pid=$!
for _ in $(seq 50); do [ -e "$TEST_TMP/ws-ready" ] && break; sleep 0.1; done
ok "events websocket connected" test -e "$TEST_TMP/ws-ready"

# ---- instances ----
api POST /1.0/instances '{"name":"c1","type":"container","source":{"type":"none"},"profiles":["default","p2"],"config":{"user.note":"hi"}}'
is "$HTTP_STATUS" 202 "POST /1.0/instances is async (202)"
is "$(jget 'j["type"]')" async "the envelope is async"
op=$(jget 'j["operation"]')
like "$op" '^/1.0/operations/[0-9a-f-]{36}$' "the envelope names the operation"
is "$HTTP_LOCATION" "$op" "Location points at the operation"
is "$(jget 'j["metadata"]["resources"]["instances"]')" '["/1.0/instances/c1"]' \
	"the operation lists the instance"
wait_operation "$op"
is "$(jget 'j["metadata"]["status"] + " " + str(j["metadata"]["status_code"])')" "Success 200" \
	"the create operation succeeds"
api GET "$op"
is "$(jget 'j["metadata"]["id"]')" "${op##*/}" "GET the operation by id"
api GET /1.0/operations
is "$(jget '"'"$op"'" in j["metadata"].get("success", [])')" true "GET /1.0/operations lists it under success"
api GET /1.0/operations?recursion=1
is "$(jget '[o["id"] for o in j["metadata"].get("success", []) if o["id"] == "'"${op##*/}"'"] != []')" true \
	"recursion=1 lists operation objects"
expect_error 404 "an unknown operation is 404" GET /1.0/operations/00000000-0000-4000-8000-000000000000

api GET /1.0/instances
is "$(jget 'j["metadata"]')" '["/1.0/instances/c1"]' "recursion=0 lists URLs"
api GET /1.0/instances?recursion=1
is "$(jget '[(i["name"], i["status"], i["type"]) for i in j["metadata"]]')" '[["c1", "Stopped", "container"]]' \
	"recursion=1 lists objects (stopped container)"
is "$(jget 'j["metadata"][0]["profiles"]')" '["default", "p2"]' "the instance keeps its profiles"
is "$(jget '"state" in j["metadata"][0]')" false "recursion=1 has no state"
api GET /1.0/instances?recursion=2
is "$(jget 'sorted(k for k in ("state", "snapshots", "backups") if k in j["metadata"][0])')" \
	'["backups", "snapshots", "state"]' "recursion=2 embeds state, snapshots, backups"
is "$(jget 'j["metadata"][0]["state"]["status"]')" Stopped "recursion=2 state says Stopped"

api GET /1.0/instances/c1
is "$HTTP_STATUS" 200 "GET /1.0/instances/c1"
is "$(jget 'j["metadata"]["config"]["user.note"]')" hi "the instance config was stored"
is "$(jget 'j["metadata"]["expanded_config"]["limits.cpu"]')" 3 "expanded_config merges profile p2"
etag=$HTTP_ETAG
api GET /1.0/profiles/p2
is "$(jget 'j["metadata"]["used_by"]')" '["/1.0/instances/c1"]' "p2 is used by c1"
# LXD 5.0.2 answers 500 "Profile is currently in use"; berth says 400 or 409.
expect_error "400|409" "deleting a profile in use is refused" DELETE /1.0/profiles/p2
expect_status 200 "p2 still exists" GET /1.0/profiles/p2

expect_error 412 "instance PUT with a stale If-Match" PUT /1.0/instances/c1 \
	'{"config":{},"devices":{},"profiles":["default"]}' -H 'If-Match: "nope"'
expect_status 200 "instance PATCH merges config" PATCH /1.0/instances/c1 '{"config":{"user.more":"x"}}' \
	-H "If-Match: $etag"
api GET /1.0/instances/c1
is "$(jget "$user_config")" '[["user.more", "x"], ["user.note", "hi"]]' \
	"PATCH kept the existing key"
# PUT what GET returned, changed (LXD refuses to drop its volatile.* keys).
put=$(jget '{"config": dict({k: v for k, v in j["metadata"]["config"].items() if k.startswith("volatile.")},
	**{"user.only": "1"}), "devices": {}, "profiles": ["default"], "description": "d"}')
api PUT /1.0/instances/c1 "$put" -H "If-Match: $HTTP_ETAG"
like "$HTTP_STATUS" '^20[02]$' "instance PUT with the current ETag"
if [ "$HTTP_STATUS" = 202 ]; then
	wait_operation "$(jget 'j["operation"]')"
	is "$(jget 'j["metadata"]["status"]')" Success "the PUT operation succeeds"
fi
api GET /1.0/instances/c1
is "$(jget "$user_config")" '[["user.only", "1"]]' "PUT replaced the config"
is "$(jget 'j["metadata"]["profiles"]')" '["default"]' "PUT replaced the profiles"

api POST /1.0/instances '{"name":"c1","source":{"type":"none"}}'
if [ "$HTTP_STATUS" = 202 ]; then
	wait_operation "$(jget 'j["operation"]')"
	is "$(jget 'j["metadata"]["status"]')" Failure "creating c1 twice fails"
else
	is "$HTTP_STATUS" 409 "creating c1 twice is a conflict"
fi

api POST /1.0/instances/c1 '{"name":"c2"}'
[ "$HTTP_STATUS" = 202 ] && wait_operation "$(jget 'j["operation"]')"
like "$HTTP_STATUS" '^20[02]$' "POST rename c1 to c2"
expect_error 404 "c1 is gone after the rename" GET /1.0/instances/c1
expect_status 200 "c2 exists" GET /1.0/instances/c2

# ---- instances in a project ----
# proj1 has its own profiles; its default profile gets a root disk first (LXD needs one).
expect_status 200 "add a root disk to proj1's default profile" PATCH "/1.0/profiles/default?project=proj1" \
	'{"devices":{"root":{"type":"disk","path":"/","pool":"default"}}}'
api POST "/1.0/instances?project=proj1" '{"name":"pc1","source":{"type":"none"}}'
is "$HTTP_STATUS" 202 "create an instance in proj1"
wait_operation "$(jget 'j["operation"]')"
api GET "/1.0/instances?project=proj1"
is "$(jget 'j["metadata"]')" '["/1.0/instances/pc1?project=proj1"]' "proj1 lists its instance"
api GET /1.0/instances
is "$(jget 'j["metadata"]')" '["/1.0/instances/c2"]' "the default project does not"
api GET "/1.0/instances?all-projects=true&recursion=1"
is "$(jget 'sorted(i["name"] for i in j["metadata"])')" '["c2", "pc1"]' "all-projects lists both"

# ---- events received ----
sleep 1
kill "$ws_pid" 2>/dev/null
wait "$ws_pid" 2>/dev/null
events=$(cat "$evlog")
like "$events" '"type": ?"operation"' "the events websocket received an operation event"
like "$events" '"type": ?"lifecycle"' "the events websocket received a lifecycle event"
like "$events" '"action": ?"instance-created"' "lifecycle instance-created was sent"
like "$events" '"/1.0/instances/c1"' "the lifecycle event names the instance"
check_no_fd_leak "$fds_before_events" "no fd leaked by the events websocket and the instance operations"

# ---- recursion=2 carries the snapshots the single GET shows ----
api POST /1.0/instances '{"name":"sn1","source":{"type":"none"}}'
wait_operation "$(jget 'j["operation"]')"
for s in s1 s2; do
	api POST /1.0/instances/sn1/snapshots "{\"name\":\"$s\"}"
	wait_operation "$(jget 'j["operation"]')"
	is "$(jget 'j["metadata"]["status"]')" Success "snapshot sn1/$s"
done
api GET "/1.0/instances/sn1?recursion=1"
single=$(jget 'j["metadata"]["snapshots"]')
is "$(jget '[s["name"] for s in j["metadata"]["snapshots"]]')" '["s1", "s2"]' \
	"GET sn1?recursion=1 lists its snapshots"
is "$(jget 'j["metadata"]["backups"]')" '[]' "... and an empty backups list"
api GET "/1.0/instances?recursion=2"
is "$(jget '[i["snapshots"] for i in j["metadata"] if i["name"] == "sn1"][0]')" "$single" \
	"recursion=2 gives sn1 the same snapshots as the single GET (every field)"
is "$(jget '[len(i["snapshots"]) for i in j["metadata"] if i["name"] == "c2"]')" '[0]' \
	"recursion=2: c2 has none"
is "$(jget '[i["backups"] for i in j["metadata"] if i["name"] == "sn1"]')" '[[]]' \
	"recursion=2 backups as the single GET renders them"
api GET "/1.0/instances?recursion=1"
is "$(jget '["snapshots" in i for i in j["metadata"]]')" '[false, false]' \
	"recursion=1 lists carry no snapshots"
api GET "/1.0/instances?recursion=2&filter=name+eq+sn1"
is "$(jget '[len(i["snapshots"]) for i in j["metadata"]]')" '[2]' \
	"recursion=2 with a filter keeps the snapshots"

# ---- without QEMU, virtual machines are refused before anything is written ----
vm_refused()
{
	local desc=$1 body=$2
	api POST /1.0/instances "$body"
	if is_error_json 400; then pass "$desc: 400"; else fail "$desc: 400" "got $HTTP_STATUS $HTTP_BODY"; fi
	like "$(jget 'j["error"]')" 'Cannot create instance "vm1": This host cannot run virtual machines: .*qemu-system-x86_64' \
		"$desc: the error names the instance and says why"
	expect_error 404 "$desc: no vm1 record" GET /1.0/instances/vm1
	is "$(find "$BERTH_DIR" -name 'vm1*' | head -n 3)" "" "$desc: nothing of vm1 on disk"
}
vm_refused "an empty VM" '{"name":"vm1","type":"virtual-machine","source":{"type":"none"}}'
vm_refused "a VM from an image" \
	'{"name":"vm1","type":"virtual-machine","source":{"type":"image","alias":"nope"}}'
vm_refused "a VM copied from a container" \
	'{"name":"vm1","type":"virtual-machine","source":{"type":"copy","source":"sn1"}}'
# A VM record made where QEMU was cannot be copied here either.
api POST /1.0/instances '{"name":"oldvm","source":{"type":"none"}}'
wait_operation "$(jget 'j["operation"]')"
sqlite3 "$BERTH_DIR/database/berth.db" "UPDATE instances SET type = 'virtual-machine' WHERE name = 'oldvm'"
api GET /1.0/instances/oldvm
is "$(jget 'j["metadata"]["type"]')" virtual-machine "setup: oldvm is a VM record"
vm_refused "a copy of a VM record" '{"name":"vm1","source":{"type":"copy","source":"oldvm"}}'
api PUT /1.0/instances/oldvm/state '{"action":"start"}'
wait_operation "$(jget 'j["operation"]')"
like "$(jget 'j["metadata"]["err"]')" 'This host cannot run virtual machines: .*qemu' \
	"a start of the VM record says what is missing"
api DELETE /1.0/instances/oldvm
wait_operation "$(jget 'j["operation"]')"
is "$(jget 'j["metadata"]["status"]')" Success "the VM record can still be deleted"
api GET /1.0/operations
is "$(jget 'len(j["metadata"].get("running", []))')" 0 "no operation left running by the refusals"

# ---- failures are logged once, at info level, without query strings ----
log_count() { grep -cF -- "$1" "$DAEMON_LOG"; }
expect_error 404 "GET a missing instance" GET "/1.0/instances/nolog1?project=default"
like "$(grep -F 'nolog1' "$DAEMON_LOG")" \
	' info +\[api\] GET /1\.0/instances/nolog1: 404 Instance "nolog1" not found$' \
	"the daemon log has method, path, status and error, at info level"
is "$(log_count 'GET /1.0/instances/nolog1: ')" 1 "... once"
expect_error 404 "a websocket with a secret for a missing operation" \
	GET "/1.0/operations/00000000-0000-4000-8000-00000000abcd/websocket?secret=s3cr3tw0rd"
like "$(grep -F 00000000abcd "$DAEMON_LOG")" \
	'GET /1\.0/operations/00000000-0000-4000-8000-00000000abcd/websocket: 404 Operation "00000000-0000-4000-8000-00000000abcd" not found' \
	"a failed websocket connect is logged"
is "$(log_count s3cr3tw0rd)" 0 "... without its secret"
expect_error 400 "a bad body" POST /1.0/instances '{"name":'
like "$(grep -F 'POST /1.0/instances:' "$DAEMON_LOG" | tail -n 1)" '400 Invalid JSON' \
	"a refused body is logged with its reason"
api POST /1.0/instances/sn1/snapshots '{"name":"s2"}'
op=$(jget 'j["operation"]')
if [ "$HTTP_STATUS" = 202 ]; then
	wait_operation "$op"
	is "$(jget 'j["metadata"]["status"]')" Failure "a second snapshot s2 fails"
	like "$(grep -F "${op##*/}" "$DAEMON_LOG" | grep -F failed)" \
		" info +\[operation\] Operation ${op##*/} \(.*/1\.0/instances/sn1.*\) failed: .*s2" \
		"the failed operation is logged with what it was for and why"
else
	like "$(grep -F 'POST /1.0/instances/sn1/snapshots:' "$DAEMON_LOG")" "$HTTP_STATUS .*s2" \
		"a second snapshot s2 is refused and logged"
fi
api DELETE /1.0/instances/sn1
wait_operation "$(jget 'j["operation"]')"
is "$(jget 'j["metadata"]["status"]')" Success "delete sn1"

# ---- persistence across a restart ----
daemon_restart
api GET /1.0/profiles/p2
is "$(jget 'j["metadata"]["config"].get("limits.cpu")')" 3 "profile p2 survives a restart"
api GET "/1.0/instances/c2"
is "$(jget "$user_config")" '[["user.only", "1"]]' "instance c2 survives a restart"
api GET "/1.0/instances/pc1?project=proj1"
is "$HTTP_STATUS" 200 "the project's instance survives a restart"

# ---- deletes ----
api DELETE /1.0/instances/c2
is "$HTTP_STATUS" 202 "DELETE instance is async"
wait_operation "$(jget 'j["operation"]')"
is "$(jget 'j["metadata"]["status"]')" Success "the delete operation succeeds"
expect_error 404 "c2 is gone" GET /1.0/instances/c2
expect_status 200 "p2 can be deleted once unused" DELETE /1.0/profiles/p2
expect_error 404 "p2 is gone" GET /1.0/profiles/p2
api DELETE "/1.0/instances/pc1?project=proj1"
wait_operation "$(jget 'j["operation"]')"
expect_status 200 "delete the profile in proj1" DELETE "/1.0/profiles/inproj?project=proj1"
expect_status 200 "delete the empty project" DELETE /1.0/projects/proj1
