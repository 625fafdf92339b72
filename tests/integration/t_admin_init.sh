#!/bin/bash
# tests/integration/t_admin_init.sh: `berth admin init|waitready|shutdown` against a
# private berthd: --dump gives LXD's preseed document (also what `lxd init --preseed`
# takes); a preseed (server config, a btrfs pool on a loop file, a dir pool, a bridge, a
# project, profile devices) applied twice gives identical dumps; a conflicting preseed
# (an existing pool of another driver) is refused before anything changes, and one the
# server refuses half-way (a profile naming a missing pool) leaves nothing of its run;
# --auto on a daemon without its bridge and profile devices puts them back and changes
# nothing when run again; interactive init answered on stdin; waitready before and after
# the daemon starts; shutdown stops the running instances and the daemon. TAP.
#
# Bridges live in the test's own network namespace; nothing leaves it.
. "$(dirname "$0")/lib.sh"

if [ "$(id -u)" = 0 ]; then
	command -v dnsmasq >/dev/null || skip_all "dnsmasq not found (apt-get install dnsmasq-base)"
	command -v nft >/dev/null || skip_all "nft not found (apt-get install nftables)"
	command -v mkfs.btrfs >/dev/null || skip_all "mkfs.btrfs not found (apt-get install btrfs-progs)"
	grep -qw btrfs /proc/filesystems || modprobe btrfs 2>/dev/null
	grep -qw btrfs /proc/filesystems || skip_all "kernel without btrfs"
fi
berth_test_images busybox
berth_test_init "$@"
export PATH=$BERTH_BUILDDIR:$PATH

admin_cleanup()
{
	daemon_stop
	grep -F " $TEST_TMP/" /proc/self/mountinfo | awk '{print $5}' | sort -r |
		while read -r m; do umount -l "$m"; done
	losetup -a | grep -F "$TEST_TMP/" | cut -d: -f1 | while read -r dev; do
		losetup -d "$dev"
	done
	_berth_test_exit
}
trap admin_cleanup EXIT

dump() { "$BERTH" admin init --dump; }

# ---- --dump ----
run_cli admin init --dump
rc_ok "berth admin init --dump"
d0=$OUT
like "$d0" '^storage_pools:' "the dump has storage_pools"
like "$d0" 'name: berthbr0' "... the default bridge"
like "$d0" 'project: default' "... networks in their project, as lxd init --dump"
like "$d0" '^cluster: null' "... and cluster: null"

# ---- a preseed, twice ----
cat >"$TEST_TMP/seed.yaml" <<YAML
config:
  images.auto_update_interval: "0"
storage_pools:
- name: bt
  driver: btrfs
  description: a loop file
  config:
    size: 1GiB
- name: plain
  driver: dir
networks:
- name: seedbr0
  type: bridge
  config:
    ipv4.address: 10.202.9.1/24
    ipv4.nat: true
    ipv6.address: none
projects:
- name: seeded
  description: from the preseed
  config:
    features.images: false
profiles:
- name: default
  config:
    user.seeded: yes
- name: small
  description: made by the preseed
  config:
    limits.cpu: 1
  devices:
    root:
      type: disk
      path: /
      pool: bt
YAML
run sh -c '"$0" admin init --preseed <"$1"' "$BERTH" "$TEST_TMP/seed.yaml"
rc_ok "berth admin init --preseed applies"
d1=$(dump)
like "$d1" 'name: bt' "... the btrfs pool is there"
api GET /1.0/storage-pools/bt
is "$(jget 'j["metadata"]["driver"]')" btrfs "... with driver btrfs"
is "$(jget 'j["metadata"]["config"]["size"]')" 1GiB "... on a 1GiB loop file"
api GET /1.0/networks/seedbr0
is "$(jget 'j["metadata"]["config"]["ipv4.nat"]')" true "a YAML boolean became the string \"true\""
ok "... the bridge is up" ip link show seedbr0
api GET /1.0/profiles/small
is "$(jget 'j["metadata"]["config"]["limits.cpu"]')" 1 "a YAML number became the string \"1\""
api GET /1.0/profiles/default
is "$(jget 'j["metadata"]["config"]["user.seeded"]')" yes "the default profile got the new key"
is "$(jget '" ".join(sorted(j["metadata"]["devices"]))')" "eth0 root" "... and kept its devices"
api GET /1.0/projects/seeded
is "$(jget 'j["metadata"]["description"]')" "from the preseed" "the project is there"
api GET /1.0
is "$(jget 'j["metadata"]["config"]["images.auto_update_interval"]')" 0 "the server config is set"
run sh -c '"$0" admin init --preseed <"$1"' "$BERTH" "$TEST_TMP/seed.yaml"
rc_ok "the same preseed applied again"
d2=$(dump)
is "$d2" "$d1" "... gives the identical state (dumps equal)"

# the dump is itself a preseed that changes nothing
printf '%s\n' "$d2" >"$TEST_TMP/dump.yaml"
run sh -c '"$0" admin init --preseed <"$1"' "$BERTH" "$TEST_TMP/dump.yaml"
rc_ok "the dump applied as a preseed"
is "$(dump)" "$d2" "... changes nothing"

# ---- refusals leave nothing ----
cat >"$TEST_TMP/conflict.yaml" <<YAML
networks:
- name: newbr0
  type: bridge
  config:
    ipv4.address: none
    ipv6.address: none
storage_pools:
- name: bt
  driver: dir
YAML
run sh -c '"$0" admin init --preseed <"$1"' "$BERTH" "$TEST_TMP/conflict.yaml"
isnt "$RC" 0 "a pool of another driver is refused"
like "$ERR" 'Storage pool "bt" already exists with driver "btrfs"' "... saying why"
is "$(dump)" "$d2" "... and nothing changed"
cat >"$TEST_TMP/halfway.yaml" <<YAML
storage_pools:
- name: extra
  driver: dir
networks:
- name: newbr0
  type: bridge
  config:
    ipv4.address: none
    ipv6.address: none
profiles:
- name: default
  config:
    limits.memory: 1GiB
- name: broken
  devices:
    root:
      type: disk
      path: /
      pool: nosuchpool
YAML
run sh -c '"$0" admin init --preseed <"$1"' "$BERTH" "$TEST_TMP/halfway.yaml"
isnt "$RC" 0 "a preseed the server refuses half-way fails"
like "$ERR" 'Profile "broken"' "... naming what failed"
is "$(dump)" "$d2" "... and what it did is undone (pool, network, profile update)"
refuse "not a preseed" "not a YAML map" sh -c 'echo "- a" | "$0" admin init --preseed' "$BERTH"
refuse "cluster refused" "Clustering" sh -c 'printf "cluster:\n  enabled: true\n" | "$0" admin init --preseed' "$BERTH"
run_cli admin init --auto --network-address 127.0.0.1 --network-port 8443 --trust-password pw
rc_ok "--auto --network-address 127.0.0.1 --network-port 8443 --trust-password pw"
api GET /1.0
is "$(jget '[j["metadata"]["config"].get(k) for k in ("core.https_address", "core.trust_password")]')" \
	'["127.0.0.1:8443", true]' "... sets core.https_address and core.trust_password"
is "$(jget 'j["metadata"]["environment"]["addresses"]')" '["127.0.0.1:8443"]' "... and listens there"
check "unset them" "$BERTH" config unset core.https_address
check "... both" "$BERTH" config unset core.trust_password
refuse "--network-port without --network-address" "need --network-address" \
	"$BERTH" admin init --auto --network-port 8443

# ---- --auto ----
check "remove eth0 from the default profile" "$BERTH" profile device remove default eth0
check "remove the default bridge" "$BERTH" network delete berthbr0
check "remove seedbr0" "$BERTH" network delete seedbr0
run_cli admin init --auto
rc_ok "berth admin init --auto"
api GET /1.0/networks/berthbr0
is "$HTTP_STATUS" 200 "--auto made berthbr0 again"
is "$(jget 'j["metadata"]["config"]["ipv4.address"]' | grep -c '^[0-9.]*/[0-9]*$')" 1 \
	"... with an IPv4 subnet chosen for it"
api GET /1.0/profiles/default
is "$(jget 'j["metadata"]["devices"]["eth0"]["network"]')" berthbr0 "... and eth0 on it in the default profile"
da=$(dump)
run_cli admin init --auto
rc_ok "--auto again"
is "$(dump)" "$da" "... changes nothing"
refuse "--auto with another backend for an existing pool" 'already been configured' \
	"$BERTH" admin init --auto --storage-backend btrfs
run_cli admin init --auto --storage-backend dir --storage-pool autopool
rc_ok "--auto --storage-pool autopool --storage-backend dir"
api GET /1.0/storage-pools/autopool
is "$(jget 'j["metadata"]["driver"]')" dir "... made the pool"
refuse "configuration flags want --auto" "require --auto" "$BERTH" admin init --storage-backend dir

# ---- interactive, answers on stdin ----
check "remove eth0 again" "$BERTH" profile device remove default eth0
run sh -c 'printf "yes\nasked\ndir\nyes\n\nnone\nnone\nno\nyes\n" | "$0" admin init' "$BERTH"
rc_ok "interactive init answered on stdin"
like "$OUT" 'Do you want to configure a new storage pool\? \(yes/no\) \[default=no\]' \
	"it asks for a pool (default no: pools exist)"
like "$OUT" 'Name of the storage backend to use \(btrfs, dir\) \[default=btrfs\]' \
	"... offers btrfs and dir, btrfs first"
like "$OUT" 'What should the new bridge be called\? \[default=berthbr1\]' \
	"... proposes a free bridge name"
like "$OUT" 'Would you like the server to be available over the network\? \(yes/no\) \[default=no\]' \
	"... asks whether to listen on the network (answered no)"
like "$OUT" 'name: asked' "... printed the preseed when asked"
api GET /1.0/storage-pools/asked
is "$(jget 'j["metadata"]["driver"]')" dir "the pool named in the answers exists"
api GET /1.0/networks/berthbr1
is "$(jget 'j["metadata"]["config"]["ipv4.address"]')" none "the bridge with the default name and no IPv4"
api GET /1.0/profiles/default
is "$(jget 'j["metadata"]["devices"]["root"]["pool"]')" asked "the default profile's root disk is on the new pool"
is "$(jget 'j["metadata"]["devices"]["eth0"]["network"]')" berthbr1 "... its eth0 on the new bridge"
run sh -c 'printf "yes\nasked\nnew2\nzfs\ndir\nno\nno\nno\n" | "$0" admin init' "$BERTH"
rc_ok "interactive init with a taken name and a bad backend"
like "$OUT" 'storage pool "asked" already exists. Please choose another name' "... asks again for a taken name"
like "$OUT" "backend \"zfs\" isn't supported" "... and for an unknown backend"
api GET /1.0/storage-pools/new2
is "$HTTP_STATUS" 200 "... then makes the pool"

# ---- waitready and shutdown ----
run_cli admin waitready --timeout 5
rc_ok "waitready on a running daemon"
run_cli image import "${IMAGE[busybox]}" --alias busybox
rc_ok "busybox image imported"
api POST /1.0/instances '{"name":"r1","source":{"type":"image","alias":"busybox"}}'
wait_operation "$HTTP_LOCATION"
api PUT /1.0/instances/r1/state '{"action":"start"}'
wait_operation "$HTTP_LOCATION"
api GET /1.0/instances/r1
is "$(jget 'j["metadata"]["status"]')" Running "a running container"
run_cli admin shutdown --timeout 20
rc_ok "berth admin shutdown"
for i in $(seq 50); do kill -0 "$DAEMON_PID" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$DAEMON_PID" 2>/dev/null; then
	fail "the daemon exited" "still running"
else
	wait "$DAEMON_PID"
	is "$?" 0 "the daemon exited with status 0"
fi
DAEMON_PID=
like "$(grep 'Shutdown requested' "$DAEMON_LOG")" 'through the API' "... as asked through the API"
refuse "waitready times out without a daemon" "still not running after 1s" "$BERTH" admin waitready --timeout 1
# berthd started a second late, as lib.sh's daemon_start does but in the background.
(
	sleep 1
	exec env ${BERTHD_ENV[@]+"${BERTHD_ENV[@]}"} BERTH_DIR="$BERTH_DIR" "$BERTHD" --debug
) </dev/null >>"$DAEMON_LOG" 2>&1 &
DAEMON_PID=$!
run_cli admin waitready --timeout 20
rc_ok "waitready returns once the daemon is up"
api GET /1.0/instances/r1
is "$(jget 'j["metadata"]["status"]')" Stopped "the container was stopped by the shutdown"
