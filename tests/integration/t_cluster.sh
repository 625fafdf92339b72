#!/bin/bash
# t_cluster.sh: a standalone berthd turned into a one-member cluster (doc/clustering.md):
# PUT /1.0/cluster moves every row of the SQLite database into dqlite and the daemon
# keeps serving from it; instances, profiles, networks and storage volumes made before
# and after are all there after a restart and after kill -9; the refusals LXD makes
# (no core.https_address, enabled twice) with its messages; GET /1.0/cluster and the
# member list as LXD 5.0 shows them; the stock `lxc` client's `cluster list/show/enable`.
. "$(dirname "$0")/lib.sh"
berth_test_init "$@"
[ -e "${BERTH_LIBDQLITE:-/usr/lib/x86_64-linux-gnu/libdqlite.so.0}" ] ||
	ldconfig -p | grep -q 'libdqlite\.so\.0 ' || skip_all "libdqlite not installed (apt-get install libdqlite0)"

# counts: one line of how many instances, profiles, networks and custom volumes there
# are (the custom volumes by name), through the API.
counts()
{
	# one python for the four requests: this runs often, and a process each is slow
	$PY - "$BERTH_SOCKET" <<'PY'
import http.client, json, socket, sys
class Unix(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost")
        self.path = path
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(self.path)
c = Unix(sys.argv[1])
def get(path):
    c.request("GET", path)
    return json.loads(c.getresponse().read())["metadata"]
i = len(get("/1.0/instances"))
p = len(get("/1.0/profiles"))
n = len([x for x in get("/1.0/networks?recursion=1") if x["managed"]])
v = sorted(x["name"] for x in get("/1.0/storage-pools/default/volumes?recursion=1")
           if x["type"] == "custom")
print("instances=%d profiles=%d networks=%d volumes=%s" % (i, p, n, json.dumps(v)))
PY
}

created() # DESC METHOD PATH BODY: a request that makes something (sync or async)
{
	local desc=$1
	shift
	api "$@"
	if [ "$HTTP_STATUS" = 202 ]; then
		wait_operation "$(jget 'j["operation"]')"
		is "$(jget 'j["metadata"]["status"]')" Success "$desc"
	else
		ok "$desc" test "$HTTP_STATUS" = 200 -o "$HTTP_STATUS" = 201
	fi
}

# ---- standalone ----
api GET /1.0/cluster
is "$(jget '[j["metadata"]["enabled"], j["metadata"]["server_name"]]')" '[false, ""]' \
	"standalone: GET /1.0/cluster says not enabled"
api GET /1.0
is "$(jget 'j["metadata"]["environment"]["server_clustered"]')" false \
	"standalone: GET /1.0 says server_clustered false"
expect_error 400 "enabling without core.https_address is refused" \
	PUT /1.0/cluster '{"server_name":"n1","enabled":true}'
like "$(jget 'j["error"]')" "This server is not available on the network" "... with LXD's message"
ok "... and leaves no cluster state" test ! -e "$BERTH_DIR/database/cluster.json" -a \
	! -e "$BERTH_DIR/database/global"

api PATCH /1.0 '{"config":{"core.https_address":"127.0.0.1:18443"}}'
is "$HTTP_STATUS" 200 "core.https_address on loopback"
expect_error 400 "a join (cluster_address, as LXD decides) is refused, not a bootstrap" \
	PUT /1.0/cluster '{"server_name":"n1","enabled":true,"cluster_address":"127.0.0.1:18444"}'
like "$(jget 'j["error"]')" "Joining a cluster is not supported" "... saying so"
expect_error 400 "disabling is refused" PUT /1.0/cluster '{"server_name":"","enabled":false}'
like "$(jget 'j["error"]')" "Disabling clustering is not supported" "... saying so"
created "instance c1" POST /1.0/instances '{"name":"c1","source":{"type":"none"},"config":{"user.k":"v"}}'
created "profile p1" POST /1.0/profiles '{"name":"p1","config":{"limits.cpu":"1"}}'
created "network tbr0" POST /1.0/networks \
	'{"name":"tbr0","type":"bridge","config":{"ipv4.address":"none","ipv6.address":"none"}}'
created "custom volume v1" POST /1.0/storage-pools/default/volumes '{"name":"v1","type":"custom"}'
BEFORE=$(counts)
is "$BEFORE" 'instances=1 profiles=2 networks=2 volumes=["v1"]' \
	"the objects made standalone (and the default network)"

# ---- enable ----
t0=$(date +%s%N)
api PUT /1.0/cluster '{"server_name":"n1","enabled":true}'
is "$HTTP_STATUS" 202 "PUT /1.0/cluster enables clustering (an operation, as LXD)"
wait_operation "$(jget 'j["operation"]')"
is "$(jget 'j["metadata"]["status"]')" Success "... which succeeds"
diag "cluster enable took $((($(date +%s%N) - t0) / 1000000)) ms"
ok "... the member's Raft data is under database/global" test -d "$BERTH_DIR/database/global"
grep -q "Clustering enabled: member \"n1\"" "$DAEMON_LOG"
ok "... and berthd logs it" test $? = 0
is "$(counts)" "$BEFORE" "every object is still there, now read from dqlite"
api GET /1.0/instances/c1
is "$(jget 'j["metadata"]["config"]["user.k"]')" v "... with its config"
api GET /1.0/cluster
is "$(jget '[j["metadata"]["enabled"], j["metadata"]["server_name"], j["metadata"]["member_config"]]')" \
	'[true, "n1", []]' "GET /1.0/cluster: enabled, server_name, member_config"
api GET /1.0/cluster/members
is "$(jget 'j["metadata"]')" '["/1.0/cluster/members/n1"]' "GET /1.0/cluster/members"
api GET /1.0/cluster/members/n1
is "$(jget '[j["metadata"][k] for k in ("server_name", "url", "database", "roles", "status", "message", "failure_domain")]')" \
	'["n1", "https://127.0.0.1:18443", true, ["database"], "Online", "Fully operational", "default"]' \
	"GET /1.0/cluster/members/n1 describes the member as LXD does"
expect_error 404 "an unknown member is 404" GET /1.0/cluster/members/nope
api GET /1.0
is "$(jget '[j["metadata"]["environment"]["server_clustered"], j["metadata"]["environment"]["server_name"], "clustering" in j["metadata"]["api_extensions"]]')" \
	'[true, "n1", true]' "GET /1.0: server_clustered, server_name, the clustering extension"
expect_error 400 "enabling twice is refused" PUT /1.0/cluster '{"server_name":"n2","enabled":true}'
like "$(jget 'j["error"]')" "This server is already clustered" "... with LXD's message"

# ---- writes through dqlite ----
created "instance c2 after enabling" POST /1.0/instances '{"name":"c2","source":{"type":"none"},"profiles":["default","p1"]}'
created "profile p2 after enabling" POST /1.0/profiles '{"name":"p2"}'
created "volume v2 after enabling" POST /1.0/storage-pools/default/volumes '{"name":"v2","type":"custom"}'
created "instance c3 after enabling" POST /1.0/instances '{"name":"c3","source":{"type":"none"}}'
created "delete c3" DELETE /1.0/instances/c3
expect_error 409 "a taken name is still 409 through dqlite" POST /1.0/profiles '{"name":"p2"}'
expect_error "400|409" "a profile in use cannot be deleted" DELETE /1.0/profiles/p1
AFTER=$(counts)
is "$AFTER" 'instances=2 profiles=3 networks=2 volumes=["v1", "v2"]' "the objects after the writes"

# ---- the stock lxc client ----
if command -v lxc >/dev/null; then
	export LXD_CONF=$TEST_TMP/lxc-conf
	mkdir -p "$LXD_CONF"
	unset LXD_DIR
	run lxc remote add b "unix://$BERTH_SOCKET"
	rc_ok "lxc remote add b"
	run lxc cluster list b: -f csv
	rc_ok "lxc cluster list"
	like "$OUT" '^n1,https://127.0.0.1:18443,database,.*,ONLINE,Fully operational' "... shows n1 online"
	run lxc cluster show b:n1
	rc_ok "lxc cluster show b:n1"
	like "$OUT" 'server_name: n1' "... shows its name"
	run lxc cluster enable b: n9
	ok "lxc cluster enable on a clustered server fails" test "$RC" != 0
	like "$ERR" 'already clustered' "... saying so"
	run lxc profile create b:p3
	rc_ok "lxc profile create through dqlite"
	run lxc list b: -f csv -c n
	is "$OUT" $'c1\nc2' "lxc list reads the instances from dqlite"
	run lxc profile delete b:p3
	rc_ok "lxc profile delete through dqlite"
else
	skip "lxc not installed: the stock client's cluster commands are not run" 9
fi

# ---- the berth CLI ----
run_cli cluster list -f csv
rc_ok "berth cluster list"
like "$OUT" '^n1,https://127.0.0.1:18443,database,' "... shows n1"
run_cli cluster show n1
rc_ok "berth cluster show n1"
like "$OUT" 'status: Online' "... shows its status"
run_cli cluster enable n9
ok "berth cluster enable on a clustered server fails" test "$RC" != 0
like "$ERR" 'Failed to configure cluster: This server is already clustered' "... saying so"

# ---- restart and kill -9 ----
daemon_stop
ip link del tbr0 2>/dev/null
daemon_start
is "$(counts)" "$AFTER" "after a restart, nothing is lost"
ok "... and the networks are brought up (bridge tbr0 made again)" ip link show tbr0
api GET /1.0/cluster
is "$(jget 'j["metadata"]["enabled"]')" true "... and the server is still clustered"
created "instance c4 after the restart" POST /1.0/instances '{"name":"c4","source":{"type":"none"}}'
AFTER=$(counts)
kill -KILL "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null
DAEMON_PID=
daemon_start
is "$(counts)" "$AFTER" "after kill -9, every committed write is there"
api GET /1.0/instances/c4
is "$HTTP_STATUS" 200 "... the last instance made before the kill among them"

# ---- the switch is one-way: no start on a stale or empty database ----
ok "enabling retired berth.db" test ! -e "$BERTH_DIR/database/berth.db" -a \
	-e "$BERTH_DIR/database/berth.db.pre-cluster"
created "pool pc after enabling" POST /1.0/storage-pools '{"name":"pc","driver":"dir"}'
pools() { api GET /1.0/storage-pools; jget 'sorted(j["metadata"])'; }
AFTER="$(counts) $(pools)"
daemon_stop
# refused_start DESC PATTERN: berthd must exit (not serve) and say PATTERN
refused_start()
{
	local out rc
	out=$(timeout 30 env ${BERTHD_ENV[@]+"${BERTHD_ENV[@]}"} BERTH_DIR="$BERTH_DIR" \
		"$BERTHD" --debug </dev/null 2>&1 3>&-)
	rc=$?
	echo "$out" >>"$DAEMON_LOG"
	ok "$1" test "$rc" != 0 -a "$rc" != 124
	like "$out" "$2" "... saying why and what to do"
}
mv "$BERTH_DIR/database/cluster.json" "$TEST_TMP/cluster.json"
refused_start "a start with database/global but no cluster.json is refused" \
	'database/global" exists but ".*database/cluster.json" does not: this server is clustered'
ok "... deleting nothing" test -e "$BERTH_DIR/database/global/metadata1" -a \
	-d "$BERTH_DIR/storage-pools/pc" -a ! -e "$BERTH_DIR/database/berth.db"
mv "$TEST_TMP/cluster.json" "$BERTH_DIR/database/cluster.json"
mv "$BERTH_DIR/database/global" "$TEST_TMP/global"
mkdir "$BERTH_DIR/database/global"
refused_start "a clustered start on an empty database/global is refused" \
	'database/global" holds no database: restore it'
rmdir "$BERTH_DIR/database/global"
refused_start "... and on a missing one" 'database/global" holds no database'
mv "$TEST_TMP/global" "$BERTH_DIR/database/global"
daemon_start
is "$(counts) $(pools)" "$AFTER" "restored, every instance, volume and pool is there"
