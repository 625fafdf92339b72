#!/bin/bash
# tests/integration/t_warnings.sh: LXD's warnings API (/1.0/warnings) against a private
# berthd whose conditions the test makes happen: the host's own (no AppArmor, VMs without
# KVM: present exactly when GET /1.0 says so), a managed network that cannot come up at
# start (an interface of its name that is not a bridge), a storage pool on a small tmpfs
# filled past the threshold (checked on the minute tick, which the test hook makes tick
# every 300 ms), a snapshot schedule that fails. Each is listed, acknowledged, resolved
# when its condition goes, raised again idempotently (count moves, no second row), and
# deleted, through the API, `berth warning` and the stock `lxc warning`; lifecycle events
# for ack, reset and delete. TAP.
#
# The network lives in the test's own network namespace; nothing leaves it.
. "$(dirname "$0")/lib.sh"

if [ "$(id -u)" = 0 ]; then
	command -v dnsmasq >/dev/null || skip_all "dnsmasq not found (apt-get install dnsmasq-base)"
	command -v nft >/dev/null || skip_all "nft not found (apt-get install nftables)"
fi
BERTHD_ENV=(BERTH_SNAPSHOT_TICK_MS=300)
berth_test_init "$@"
export PATH=$BERTH_BUILDDIR:$PATH
export LXD_CONF=$TEST_TMP/lxd-conf
mkdir -p "$LXD_CONF"
unset LXD_DIR
check "lxc remote add b" lxc remote add b "unix://$BERTH_SOCKET"
check "lxc remote switch b" lxc remote switch b

warn_cleanup()
{
	daemon_stop
	ip link del wbr0 2>/dev/null
	umount -l "$TEST_TMP/small" 2>/dev/null
	_berth_test_exit
}
trap warn_cleanup EXIT

# warning_field TYPE ENTITY FIELD: FIELD of the warning of TYPE about ENTITY ("" when none).
warning_field()
{
	api GET '/1.0/warnings?recursion=1'
	jget "[w['$3'] for w in j['metadata'] if w['type'] == '$1' and w['entity_url'] == '$2'][0]"
}
# wait_field TYPE ENTITY FIELD WANT: up to 10 s for FIELD to become WANT; prints the value.
wait_field()
{
	local i v
	for i in $(seq 100); do
		v=$(warning_field "$1" "$2" "$3")
		[ "$v" = "$4" ] && break
		sleep 0.1
	done
	printf '%s' "$v"
}
count_of() { api GET '/1.0/warnings?recursion=1'; jget "len([w for w in j['metadata'] if w['type'] == '$1' and w['entity_url'] == '$2'])"; }

# ---- the API's shape ----
api GET /1.0
like "$(jget '" ".join(j["metadata"]["api_extensions"])')" '(^| )warnings( |$)' \
	"GET /1.0 lists the warnings extension"
apparmor=$(jget 'j["metadata"]["environment"]["kernel_features"]["apparmor"]')
kvm=$(jget 'j["metadata"]["environment"]["vm"]["kvm"]')
api GET /1.0/warnings
is "$HTTP_STATUS" 200 "GET /1.0/warnings answers 200"
like "$HTTP_BODY" '"metadata": ?\[' "... with a list of URLs"

# ---- the host's own, raised at start ----
aa=$(warning_field "AppArmor support has been disabled" "" status)
if [ "$apparmor" = false ]; then
	is "$aa" new "no AppArmor in the kernel: the AppArmor warning is there, status new"
	is "$(warning_field "AppArmor support has been disabled" "" severity)" low "... severity low, as LXD"
	is "$(warning_field "AppArmor support has been disabled" "" project)" "" "... a host warning (no project)"
else
	is "$aa" "" "AppArmor in the kernel: no AppArmor warning"
fi
vmw=$(warning_field "Instance type not operational" "" last_message)
if [ "$kvm" = False ] || [ "$kvm" = false ]; then
	like "$vmw" 'KVM|QEMU|virtual-machine' "no KVM: \"Instance type not operational\" says why"
else
	is "$vmw" "" "KVM here: no instance type warning"
fi
n_before=$(api GET '/1.0/warnings?recursion=1'; jget 'len(j["metadata"])')
daemon_restart
n_after=$(api GET '/1.0/warnings?recursion=1'; jget 'len(j["metadata"])')
is "$n_after" "$n_before" "a restart raises the host's warnings again without new rows"
if [ "$apparmor" = false ]; then
	is "$(warning_field "AppArmor support has been disabled" "" count)" 2 "... its count moved to 2"
	api GET '/1.0/warnings?recursion=1'
	first=$(jget "[w['first_seen_at'] for w in j['metadata'] if w['type'].startswith('AppArmor')][0]")
	last=$(jget "[w['last_seen_at'] for w in j['metadata'] if w['type'].startswith('AppArmor')][0]")
	isnt "$first" "$last" "... last_seen_at moved, first_seen_at kept"
fi

# ---- a network that cannot come up at start ----
check "network wbr0 created" berth network create wbr0 ipv4.address=10.201.7.1/24 ipv6.address=none
daemon_stop
ip link del wbr0 2>/dev/null
check "an interface wbr0 that is not a bridge" ip link add wbr0 type veth peer name wbr0p
daemon_start
NET=/1.0/networks/wbr0
is "$(warning_field "Network unavailable" $NET status)" new "a network that cannot come up is a warning"
is "$(warning_field "Network unavailable" $NET severity)" high "... severity high, as LXD"
like "$(warning_field "Network unavailable" $NET last_message)" 'not a bridge' "... its message says why"
is "$(warning_field "Network unavailable" $NET project)" default "... in project default"
uuid=$(warning_field "Network unavailable" $NET uuid)
like "$uuid" '^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$' "... a v4 UUID"
api GET /1.0/warnings
like "$HTTP_BODY" "\"/1.0/warnings/$uuid\"" "GET /1.0/warnings lists its URL"
api GET "/1.0/warnings/$uuid"
is "$(jget '" ".join(sorted(j["metadata"].keys()))')" \
	"count entity_url first_seen_at last_message last_seen_at location project severity status type uuid" \
	"GET /1.0/warnings/UUID has LXD's fields"
api GET '/1.0/warnings?project=default&recursion=1'
like "$HTTP_BODY" "$uuid" "?project=default lists it"
unlike "$HTTP_BODY" '"AppArmor' "... and not the host's warnings"
api GET '/1.0/warnings?recursion=1&filter=severity+eq+high'
is "$(jget '" ".join(w["uuid"] for w in j["metadata"])')" "$uuid" "?filter=severity eq high finds only it"

run_cli warning list
rc_ok "berth warning list"
like "$OUT" "$uuid.*Network unavailable.*NEW.*HIGH" "... shows it new and high"
run lxc warning list --format csv
rc_ok "lxc warning list"
like "$OUT" "$uuid,Network unavailable,NEW,HIGH,1" "... shows it too"
run lxc warning show "$uuid"
rc_ok "lxc warning show"
like "$OUT" "entity_url: /1.0/networks/wbr0" "... with its entity"

# ack through lxc; the lifecycle events
$PY "$RAWHTTP" ws "$BERTH_SOCKET" '/1.0/events?type=lifecycle' --count 3 --timeout 30 \
	--ready "$TEST_TMP/ev.ready" >"$TEST_TMP/events" 2>&1 &
evpid=$!
for i in $(seq 50); do [ -e "$TEST_TMP/ev.ready" ] && break; sleep 0.1; done
run lxc warning ack "$uuid"
rc_ok "lxc warning ack"
is "$(warning_field "Network unavailable" $NET status)" acknowledged "... the status is acknowledged"
expect_status 403 "PUT status resolved is refused (403), as LXD" PUT "/1.0/warnings/$uuid" '{"status":"resolved"}'
expect_status 400 "PUT an unknown status is refused (400)" PUT "/1.0/warnings/$uuid" '{"status":"gone"}'
expect_status 200 "PATCH status new resets it" PATCH "/1.0/warnings/$uuid" '{"status":"new"}'
is "$(warning_field "Network unavailable" $NET status)" new "... the status is new again"
run_cli warning ack "$uuid"
rc_ok "berth warning ack"
is "$(warning_field "Network unavailable" $NET status)" acknowledged "... acknowledged again"
wait "$evpid"
events=$(cat "$TEST_TMP/events")
like "$events" "warning-acknowledged.*/1.0/warnings/$uuid" "a warning-acknowledged lifecycle event"
like "$events" "warning-reset.*/1.0/warnings/$uuid" "a warning-reset lifecycle event"

# the condition goes: a network update that brings it up resolves it
ip link del wbr0
check "the network is updated and comes up" berth network set wbr0 ipv4.nat=true
is "$(warning_field "Network unavailable" $NET status)" resolved "the network up: the warning is resolved"
run_cli warning list
unlike "$OUT" "$uuid" "berth warning list hides resolved warnings"
run_cli warning list --all
like "$OUT" "$uuid.*RESOLVED" "... --all shows it resolved"

# ---- a pool nearly full (the tick checks every 300 ms here) ----
mkdir -p "$TEST_TMP/small"
check "a 4 MiB tmpfs" mount -t tmpfs -o size=4m tmpfs "$TEST_TMP/small"
check "pool small on it" berth storage create small dir source="$TEST_TMP/small/pool"
POOL=/1.0/storage-pools/small
sleep 1
is "$(warning_field "Storage pool running out of space" $POOL status)" "" "a pool with room: no warning"
dd if=/dev/zero of="$TEST_TMP/small/fill" bs=64k count=60 status=none
is "$(wait_field "Storage pool running out of space" $POOL status new)" new \
	"filled past 90 %: the pool's warning is raised"
is "$(warning_field "Storage pool running out of space" $POOL severity)" moderate "... severity moderate"
like "$(warning_field "Storage pool running out of space" $POOL last_message)" 'small.*bytes free' \
	"... its message gives the free space"
sleep 1
c=$(warning_field "Storage pool running out of space" $POOL count)
[ "$c" -gt 1 ] 2>/dev/null && pass "each check raises it again: count $c" || fail "count moves" "count: $c"
is "$(count_of "Storage pool running out of space" $POOL)" 1 "... still one warning"
rm -f "$TEST_TMP/small/fill"
is "$(wait_field "Storage pool running out of space" $POOL status resolved)" resolved \
	"space back: the warning is resolved"

# ---- a failing snapshot schedule ----
api POST /1.0/instances '{"name":"w1","source":{"type":"none"}}'
wait_operation "$HTTP_LOCATION"
is "$(jget 'j["metadata"]["status"]')" Success "an instance without an image"
INST=/1.0/instances/w1
# A pattern without %d names every snapshot the same: the second one fails.
check "a schedule every tick, a fixed name" berth config set w1 snapshots.schedule='* * * * *' \
	snapshots.schedule.stopped=true snapshots.pattern=fixed
is "$(wait_field "Failed to take scheduled snapshot" $INST status new)" new \
	"a scheduled snapshot that fails is a warning on its instance"
like "$(warning_field "Failed to take scheduled snapshot" $INST last_message)" 'w1' "... naming it"
check "a pattern that works" berth config set w1 snapshots.pattern='auto-%d'
is "$(wait_field "Failed to take scheduled snapshot" $INST status resolved)" resolved \
	"the next scheduled snapshot works: resolved"
check "schedule unset" berth config unset w1 snapshots.schedule

# ---- delete ----
rm -f "$TEST_TMP/ev.ready"
$PY "$RAWHTTP" ws "$BERTH_SOCKET" '/1.0/events?type=lifecycle' --count 1 --timeout 30 \
	--ready "$TEST_TMP/ev.ready" >"$TEST_TMP/events" 2>&1 &
evpid=$!
for i in $(seq 50); do [ -e "$TEST_TMP/ev.ready" ] && break; sleep 0.1; done
run lxc warning delete "$uuid"
rc_ok "lxc warning delete"
expect_status 404 "the deleted warning is gone (404)" GET "/1.0/warnings/$uuid"
expect_status 404 "deleting it again is 404" DELETE "/1.0/warnings/$uuid"
wait "$evpid"
like "$(cat "$TEST_TMP/events")" "warning-deleted.*/1.0/warnings/$uuid" \
	"a warning-deleted lifecycle event"
run_cli warning delete --all
rc_ok "berth warning delete --all"
api GET /1.0/warnings
is "$(jget 'len(j["metadata"])')" 0 "no warning left"
run_cli warning delete
like "$ERR" "UUID or --all" "berth warning delete wants a UUID or --all"
