#!/bin/bash
# tests/integration/t_projects.sh: projects as in LXD 5.0, through raw HTTP, `berth
# --project` and the stock `lxc` client: the features a new project gets (images, profiles,
# custom volumes; no networks) and its own empty "default" profile; a project without a
# feature using the "default" project's images (list, aliases, launch), profiles and
# custom volumes; features changed only on empty projects and never on "default"; each
# limits.* key refusing what would pass it with LXD's wording and leaving nothing behind,
# and refusing to be set below the current use; only empty projects renamed or deleted.
# TAP.
. "$(dirname "$0")/lib.sh"
command -v lxc >/dev/null || skip_all "lxc not installed (apt-get install lxd-client)"
berth_test_images busybox
berth_test_init "$@"
IMG=${IMAGE[busybox]}

export LXD_CONF=$TEST_TMP/lxc-conf
mkdir -p "$LXD_CONF"
unset LXD_DIR
run_lxc() { run lxc "$@"; }
run_lxc remote add b "unix://$BERTH_SOCKET"
rc_ok "setup: lxc remote add b"

# refused DESC PATTERN: the last run failed and said PATTERN (a fixed string).
refused()
{
	if [ "$RC" != 0 ] && printf '%s' "$ERR" | grep -qF -- "$2"; then
		pass "$1"
	else
		fail "$1" "exit status $RC" "stdout: $OUT" "stderr: $ERR" "want: $2"
	fi
}
# api_refused DESC PATTERN METHOD PATH [BODY]: 400 with LXD's error JSON saying PATTERN.
api_refused()
{
	local d=$1 pat=$2
	shift 2
	api "$@"
	if is_error_json 400 && [[ $(jget 'j["error"]') == *"$pat"* ]]; then
		pass "$d"
	else
		fail "$d" "$1 $2 -> $HTTP_STATUS" "body: $HTTP_BODY" "want: $pat"
	fi
}
# gone DESC PATH: GET PATH is 404.
gone()
{
	api GET "$2"
	is "$HTTP_STATUS" 404 "$1"
}
# create NAME PROJECT [JSON-CONFIG] [JSON-DEVICES]: an instance without an image.
create()
{
	api POST "/1.0/instances?project=$2" \
		"{\"name\":\"$1\",\"source\":{\"type\":\"none\"},\"config\":${3:-{\}},\"devices\":${4:-{\}}}"
	[ "$HTTP_STATUS" = 202 ] && wait_operation "$(jget 'j["operation"]')"
}

run_cli image import "$IMG" --alias bb
rc_ok "setup: the busybox image in the default project, alias bb"
FP=$(sha256sum "$IMG" | cut -d' ' -f1)

# ---- a new project: LXD 5.0's defaults ----
run_lxc project create b:p1
rc_ok "lxc project create b:p1"
api GET /1.0/projects/p1
is "$(jget 'sorted(j["metadata"]["config"].items())')" \
	'[["features.images", "true"], ["features.profiles", "true"], ["features.storage.volumes", "true"]]' \
	"a new project has features.images, .profiles and .storage.volumes true (networks off)"
run_lxc project show b:p1
like "$OUT" 'features\.images: "true"' "lxc project show p1: features.images"
like "$OUT" 'features\.storage\.volumes: "true"' "lxc project show p1: features.storage.volumes"
unlike "$OUT" 'features\.networks' "lxc project show p1: no features.networks"
like "$OUT" '/1\.0/profiles/default\?project=p1' "lxc project show p1: used by its default profile"
api GET "/1.0/profiles/default?project=p1"
is "$(jget '[j["metadata"]["config"], j["metadata"]["devices"]]')" "[{}, {}]" \
	"p1's own default profile is empty, as LXD makes it"
run_lxc profile list b: --project p1 -f csv
like "$OUT" '^default,' "lxc profile list --project p1 shows its default profile"
run_lxc project create b:p2 -c features.images=false -c features.profiles=false -c features.storage.volumes=false
rc_ok "lxc project create b:p2 with every feature off"
run_lxc project list b: -f csv
like "$OUT" '(^|[[:space:]])p1,YES,YES,YES,NO,' "lxc project list: p1 has images, profiles, volumes, no networks"
like "$OUT" '(^|[[:space:]])p2,NO,NO,NO,NO,' "lxc project list: p2 has none of them"
api GET "/1.0/profiles?project=p2&recursion=1"
is "$(jget '[(p["name"], "root" in p["devices"]) for p in j["metadata"]]')" '[["default", true]]' \
	"p2 has no profile of its own: it sees the default project's (with its root disk)"
api_refused "features.networks=true is refused (networks are not per project here)" \
	'features.networks' POST /1.0/projects '{"name":"pn","config":{"features.networks":"true"}}'
gone "... and no project pn is left" /1.0/projects/pn
api_refused "limits.networks is refused" "limits.networks" POST /1.0/projects \
	'{"name":"pn","config":{"limits.networks":"1"}}'

# ---- images ----
api GET "/1.0/images?project=p1"
is "$(jget 'j["metadata"]')" "[]" "p1 (features.images) has no image"
run_lxc image list b: --project p1 -f csv
is "$RC:$OUT" "0:" "lxc image list --project p1 is empty"
run_cli --project p1 image list -f csv
is "$RC:$OUT" "0:" "berth --project p1 image list is empty"
run_lxc image list b: --project p2 -f csv -c lf
is "$OUT" "bb,${FP:0:12}" "lxc image list --project p2 shows the default project's image"
run_cli --project p2 image list -f csv
like "$OUT" "^bb,${FP:0:12}," "berth --project p2 image list shows it too"
expect_status 200 "the alias resolves in p2" GET "/1.0/images/aliases/bb?project=p2"
expect_error 404 "... and not in p1" GET "/1.0/images/aliases/bb?project=p1"
run_lxc init b:bb b:i1 --project p1
refused "lxc init b:bb --project p1 fails: p1 has no such image" "not found"
gone "... and leaves no instance" "/1.0/instances/i1?project=p1"
run_lxc init b:bb b:c2 --project p2
rc_ok "lxc init b:bb c2 --project p2: the default project's image and profile"
api GET "/1.0/instances/c2?project=p2"
is "$(jget '[j["metadata"]["profiles"], j["metadata"]["expanded_devices"]["root"]["pool"]]')" \
	'[["default"], "default"]' "c2 has the default project's default profile, root disk included"
api GET /1.0/profiles/default
is "$(jget 'j["metadata"]["used_by"]')" '["/1.0/instances/c2?project=p2"]' \
	"the default project's default profile is used by p2's c2"
run_lxc profile create b:extra
run_lxc profile add b:c2 extra --project p2
rc_ok "lxc profile add: p2's c2 takes the default project's profile extra"
run_lxc profile delete b:extra
refused "... which then can't be deleted" 'Profile "extra" is used by 1 instance'
run_lxc profile remove b:c2 extra --project p2
rc_ok "lxc profile remove: c2 drops it"
run_lxc profile delete b:extra
rc_ok "... and it can be deleted"
run_lxc image import "$IMG" b: --project p1 --alias own
rc_ok "lxc image import --project p1 (its own images)"
run_lxc image list b: --project p1 -f csv -c l
is "$OUT" "own" "p1 lists its own image only"
run_lxc image list b: -f csv -c l
is "$OUT" "bb" "the default project does not list p1's image"
run_lxc profile device add b:default root disk path=/ pool=default --project p1
rc_ok "a root disk in p1's own default profile"
run_lxc launch b:own b:c1 --project p1
rc_ok "lxc launch b:own c1 --project p1"
run_lxc list b: --project p1 -f csv -c ns
is "$OUT" "c1,RUNNING" "lxc list --project p1 shows c1 running"
run_cli --project p1 list -f csv -c n
is "$OUT" "c1" "berth --project p1 list shows c1"
run_lxc list b: -f csv -c n
is "$OUT" "" "the default project lists neither c1 nor c2"

# ---- custom volumes ----
run_cli storage volume create default vd
rc_ok "setup: custom volume vd in the default project"
api GET "/1.0/storage-pools/default/volumes/custom?project=p1"
is "$(jget 'j["metadata"]')" "[]" "p1 (features.storage.volumes) has no custom volume"
run_lxc storage volume list b:default --project p2 -f csv -c tn
like "$OUT" '(^|[[:space:]])custom,vd($|[[:space:]])' \
	"lxc storage volume list --project p2 shows the default project's vd"
like "$OUT" 'container,c2' "... beside p2's own instance volume c2"
run_cli --project p2 storage volume list default -f csv
like "$OUT" '(^|[[:space:]])custom,vd,' "berth --project p2 storage volume list shows vd too"
expect_status 200 "GET custom/vd?project=p2 finds it" \
	GET "/1.0/storage-pools/default/volumes/custom/vd?project=p2"
run_lxc storage volume create b:default v2 --project p2
rc_ok "lxc storage volume create --project p2"
expect_status 200 "... the volume lands in the default project" \
	GET "/1.0/storage-pools/default/volumes/custom/v2"
# lxc waits for these operations on /1.0/events?project=p2: they are p2's, as in LXD,
# though the volumes are the default project's (it hung when they were "default"'s)
run timeout 60 lxc storage volume snapshot b:default v2 s0 --project p2
rc_ok "lxc storage volume snapshot --project p2 ends"
expect_status 200 "... the snapshot is the default project's volume's" \
	GET "/1.0/storage-pools/default/volumes/custom/v2/snapshots/s0"
run timeout 60 lxc storage volume copy b:default/v2 b:default/v3 --project p2
rc_ok "lxc storage volume copy --project p2 ends"
expect_status 200 "... the copy lands in the default project" \
	GET "/1.0/storage-pools/default/volumes/custom/v3"
# ... and so are their lifecycle events, as LXD sends them: in p2, with p2's URL
mon=$TEST_TMP/p2-events.yaml
timeout 20 lxc monitor b: --project p2 --type lifecycle >"$mon" 2>&1 &
monpid=$!
sleep 1
run_lxc storage volume create b:default v4 --project p2
rc_ok "setup: lxc storage volume create v4 --project p2"
for _ in $(seq 50); do grep -q "storage-volume-created" "$mon" && break; sleep 0.1; done
kill "$monpid" 2>/dev/null
wait "$monpid" 2>/dev/null
like "$(cat "$mon")" "action: storage-volume-created" \
	"lxc monitor --project p2 sees the volume's storage-volume-created"
like "$(cat "$mon")" "source: /1.0/storage-pools/default/volumes/custom/v4\\?project=p2" \
	"... with p2's URL"
like "$(cat "$mon")" "project: p2" "... in project p2"
run_lxc storage volume attach b:default vd c2 /mnt --project p2
rc_ok "p2's instance attaches the default project's volume vd"
run_lxc start b:c2 --project p2
rc_ok "... and starts with it"
run_lxc exec b:c2 --project p2 -- sh -c 'grep -c " /mnt " /proc/mounts'
is "$OUT" "1" "... mounted at /mnt"
run_lxc stop b:c2 --project p2 --force
run_lxc storage volume create b:default v1 --project p1
rc_ok "lxc storage volume create --project p1 (its own)"
gone "... not in the default project" /1.0/storage-pools/default/volumes/custom/v1
run_lxc storage volume attach b:default v1 c1 /mnt --project p1
rc_ok "p1's c1 attaches its own volume v1"
run_lxc stop b:c1 --project p1 --force
run_lxc start b:c1 --project p1
rc_ok "... and starts again"
run_lxc exec b:c1 --project p1 -- sh -c 'grep -c " /mnt " /proc/mounts'
is "$OUT" "1" "... with it mounted at /mnt"

# ---- changing features ----
run_lxc project set b:p1 features.images false
refused "features of a project that holds things can't change" \
	"Features can only be changed on empty projects"
api GET /1.0/projects/p1
is "$(jget 'j["metadata"]["config"]["features.images"]')" true "... and p1 keeps features.images"
api GET /1.0/projects/default
cfg=$(jget 'j["metadata"]["config"]')
api_refused "the default project's features can't change" \
	"You can't change the features of the default project" PATCH /1.0/projects/default \
	'{"config":{"features.images":"false"}}'
run_lxc project create b:p3
run_lxc project set b:p3 features.profiles false
rc_ok "an empty project turns features.profiles off"
api GET /1.0/projects/p3
is "$(jget 'j["metadata"]["used_by"]')" "[]" "... and its own default profile is gone"
api GET "/1.0/profiles/default?project=p3"
is "$(jget 'j["metadata"]["description"]')" "Default LXD profile" \
	"... so p3 sees the default project's"
run_lxc project set b:p3 features.profiles true
rc_ok "... and back on"
api GET "/1.0/profiles/default?project=p3"
is "$HTTP_STATUS:$(jget '[j["metadata"]["description"], j["metadata"]["devices"]]')" \
	'200:["Default LXD profile for project p3", {}]' "... with a new empty default profile of its own"

# ---- limits: instance counts ----
run_lxc project set b:p2 limits.containers 1
rc_ok "limits.containers=1 on p2 (it holds one container)"
run_lxc init b:bb b:c3 --project p2
refused "a second container in p2 is refused" \
	'Reached maximum number of instances of type "container" in project "p2"'
gone "... and leaves no instance" "/1.0/instances/c3?project=p2"
run_cli --project p2 init bb c3
refused "berth --project p2 init is refused the same way" \
	'Reached maximum number of instances of type "container" in project "p2"'
gone "... and leaves no instance" "/1.0/instances/c3?project=p2"
[ -e "$BERTH_DIR/storage-pools/default/containers/p2_c3" ] &&
	fail "... nor its root volume" || pass "... nor its root volume"
run_lxc project set b:p2 limits.containers 0
refused "limits.containers below the current count is refused" \
	'"limits.containers" is too low: there currently are 1 instances of type container in project "p2"'
run_lxc project unset b:p2 limits.containers
run_lxc project set b:p2 limits.instances 1
rc_ok "limits.instances=1 on p2"
api_refused "a second instance in p2 is refused" \
	'Reached maximum number of instances in project "p2"' POST "/1.0/instances?project=p2" \
	'{"name":"c3","source":{"type":"none"}}'
gone "... and leaves no instance" "/1.0/instances/c3?project=p2"
api_refused "limits.instances=0 is refused" '"limits.instances" is too low: there currently are 1 total instances' \
	PATCH /1.0/projects/p2 '{"config":{"limits.instances":"0"}}'
run_lxc project unset b:p2 limits.instances
create c3 p2
is "$(jget 'j["metadata"]["status"]')" Success "without the limit the instance is made"

# Six creations from the image at once under limits.instances=2: each request passes
# the API's check before any row exists; the insert's own check lets exactly two in.
run_lxc project create b:pc -c features.images=false -c features.profiles=false \
	-c limits.instances=2
rc_ok "pc: the default project's images and profiles, limits.instances=2"
racers=()
for i in 1 2 3 4 5 6; do
	curl -s --unix-socket "$BERTH_SOCKET" -X POST \
		-d "{\"name\":\"r$i\",\"source\":{\"type\":\"image\",\"alias\":\"bb\"}}" \
		"http://b/1.0/instances?project=pc" >"$TEST_TMP/race$i" &
	racers+=($!)
done
wait "${racers[@]}" # not berthd, also a child of this shell
ok_ops=0
for i in 1 2 3 4 5 6; do
	HTTP_BODY=$(cat "$TEST_TMP/race$i")
	op=$(jget 'j.get("operation") or ""')
	[ -n "$op" ] || continue
	wait_operation "$op"
	[ "$(jget 'j["metadata"]["status"]')" = Success ] && ok_ops=$((ok_ops + 1))
done
is "$ok_ops" 2 "six concurrent creations under limits.instances=2: two succeed"
api GET "/1.0/instances?project=pc"
is "$(jget 'len(j["metadata"])')" 2 "... and pc holds two instances"
is "$(find "$BERTH_DIR/storage-pools/default/containers" -maxdepth 1 -name 'pc_*' | wc -l)" 2 \
	"... and two root volumes: the refused ones removed theirs"

# ---- limits: aggregates ----
run_lxc project set b:p2 limits.memory 1GiB
refused "limits.memory on a project whose instances have none is refused" \
	'Instance "c2" in project "p2" has no "limits.memory" config, either directly or via a profile'
run_lxc project create b:p4 -c features.profiles=false -c limits.memory=256MiB \
	-c limits.processes=100 -c limits.cpu=2
rc_ok "p4 with limits.memory=256MiB, limits.processes=100, limits.cpu=2"
api_refused "an instance without limits.memory in p4 is refused" \
	'Failed checking if instance creation allowed: Instance "m0" in project "p4" has no "limits.memory" config, either directly or via a profile' \
	POST "/1.0/instances?project=p4" '{"name":"m0","source":{"type":"none"}}'
gone "... and leaves no instance" "/1.0/instances/m0?project=p4"
LIM='"limits.processes":"50","limits.cpu":"1"'
create m1 p4 "{\"limits.memory\":\"200MiB\",$LIM}"
is "$(jget 'j["metadata"]["status"]')" Success "m1 with 200MiB, 50 processes, 1 CPU fits"
api_refused "m2 with 100MiB more is refused" \
	'Reached maximum aggregate value "256MiB" for "limits.memory" in project "p4"' \
	POST "/1.0/instances?project=p4" "{\"name\":\"m2\",\"source\":{\"type\":\"none\"},\"config\":{\"limits.memory\":\"100MiB\",$LIM}}"
gone "... and leaves no instance" "/1.0/instances/m2?project=p4"
api_refused "m2 with 51 more processes is refused" \
	'Reached maximum aggregate value "100" for "limits.processes" in project "p4"' \
	POST "/1.0/instances?project=p4" '{"name":"m2","source":{"type":"none"},"config":{"limits.memory":"50MiB","limits.processes":"51","limits.cpu":"1"}}'
api_refused "m2 with 2 more CPUs is refused" \
	'Reached maximum aggregate value "2" for "limits.cpu" in project "p4"' \
	POST "/1.0/instances?project=p4" '{"name":"m2","source":{"type":"none"},"config":{"limits.memory":"50MiB","limits.processes":"5","limits.cpu":"2"}}'
api_refused "pinned CPUs are refused under limits.cpu" 'Failed parsing "limits.cpu" for instance "m2"' \
	POST "/1.0/instances?project=p4" '{"name":"m2","source":{"type":"none"},"config":{"limits.memory":"50MiB","limits.processes":"5","limits.cpu":"0-1"}}'
gone "... and none of them left an instance" "/1.0/instances/m2?project=p4"
run_lxc config set b:m1 limits.memory 300MiB --project p4
refused "raising m1 past limits.memory is refused" \
	'Failed checking if instance update allowed: Reached maximum aggregate value "256MiB" for "limits.memory" in project "p4"'
run_cli --project p4 config set m1 limits.memory 300MiB
refused "... with berth too" 'Reached maximum aggregate value "256MiB" for "limits.memory"'
api GET "/1.0/instances/m1?project=p4"
is "$(jget 'j["metadata"]["config"]["limits.memory"]')" 200MiB "... and m1 keeps 200MiB"
run_lxc config set b:m1 limits.memory 250MiB --project p4
rc_ok "a change that fits is made"
run_lxc project set b:p4 limits.memory 100MiB
refused "limits.memory below the current total is refused" \
	'"limits.memory" is too low: current total is "250MiB"'
run_lxc project set b:p4 limits.processes 10
refused "limits.processes below the current total is refused" \
	'"limits.processes" is too low: current total is "50"'
api GET /1.0/projects/p4
is "$(jget '[j["metadata"]["config"][k] for k in ("limits.memory", "limits.processes")]')" \
	'["256MiB", "100"]' "... and p4 keeps its limits"
api GET /1.0/projects/p4/state
is "$(jget '[(k, v["limit"], v["usage"]) for k, v in sorted(j["metadata"]["resources"].items())]')" \
	'[["containers", -1, 1], ["cpu", 2, 1], ["disk", -1, 0], ["instances", -1, 1], ["memory", 268435456, 262144000], ["processes", 100, 50], ["virtual-machines", -1, 0]]' \
	"GET /1.0/projects/p4/state: each limit and its use"
run_lxc project info b:p4
like "$OUT" 'MEMORY +\| +256\.00MiB +\| +250\.00MiB' "lxc project info p4 shows memory's limit and use"
like "$OUT" 'PROCESSES +\| +100 +\| +50 ' "... and the processes'"

# profile changes count too (p5 has its own profiles)
run_lxc project create b:p5 -c limits.memory=300MiB
run_lxc profile device add b:default root disk path=/ pool=default --project p5
run_lxc profile set b:default limits.memory 200MiB --project p5
rc_ok "p5's default profile gives 200MiB"
create n1 p5
is "$(jget 'j["metadata"]["status"]')" Success "n1 takes 200MiB from its profile"
run_lxc profile set b:default limits.memory 400MiB --project p5
refused "raising the profile past p5's limit is refused" \
	'Failed checking if profile update allowed: Reached maximum aggregate value "300MiB" for "limits.memory" in project "p5"'
api GET "/1.0/profiles/default?project=p5"
is "$(jget 'j["metadata"]["config"]["limits.memory"]')" 200MiB "... and the profile is unchanged"

# limits.disk: custom volumes' and root disks' sizes (on a btrfs pool: dir has no quotas)
loops() { losetup -a | grep -cF "$BERTH_DIR/"; }
loops0=$(loops)
run_cli storage create bt btrfs size=512MiB
rc_ok "setup: a btrfs pool on a loop file"
run_lxc project create b:p6 -c limits.disk=100MiB
run_lxc storage volume create b:bt w0 --project p6
refused "a custom volume without a size under limits.disk is refused" \
	'Custom volume "w0" in project "p6" has no "size" config set'
run_lxc storage volume create b:bt w1 size=60MiB --project p6
rc_ok "a 60MiB volume fits in 100MiB"
run_lxc storage volume create b:bt w2 size=60MiB --project p6
refused "a second 60MiB volume is refused" \
	'Reached maximum aggregate value "100MiB" for "limits.disk" in project "p6"'
gone "... and leaves no volume" "/1.0/storage-pools/bt/volumes/custom/w2?project=p6"
[ -e "$BERTH_DIR/storage-pools/bt/custom/p6_w2" ] &&
	fail "... nor its directory" || pass "... nor its directory"
run_lxc storage volume set b:bt w1 size=200MiB --project p6
refused "growing w1 past limits.disk is refused" 'for "limits.disk" in project "p6"'
run_lxc profile device add b:default root disk path=/ pool=bt --project p6
api_refused "an instance without a root disk size under limits.disk is refused" \
	'Instance "d1" in project "p6" has no "size" config set on the root device' \
	POST "/1.0/instances?project=p6" '{"name":"d1","source":{"type":"none"}}'
create d1 p6 '{}' '{"root":{"type":"disk","path":"/","pool":"bt","size":"30MiB"}}'
is "$(jget 'j["metadata"]["status"]')" Success "a 30MiB root disk fits beside w1"
run_lxc project set b:p6 limits.disk 50MiB
refused "limits.disk below 90MiB in use is refused" '"limits.disk" is too low: current total is "90MiB"'

# ---- renaming and deleting ----
# Run dirs, cgroups and volumes are named <project>_<name>: as LXD, only an empty
# project is renamed.
run_lxc project rename b:p1 p1x
refused "a project that holds instances can't be renamed" "Only empty projects can be renamed"
api_refused "... nor through the API" "Only empty projects can be renamed" \
	POST /1.0/projects/p1 '{"name":"p1x"}'
gone "... and no p1x appears" /1.0/projects/p1x
run_lxc project delete b:p1
refused "a project that holds instances can't be deleted" "Only empty projects can be removed"
api GET /1.0/projects/p1
is "$HTTP_STATUS" 200 "... and p1 is still there"
run_lxc delete b:c1 --project p1 --force
run_lxc project rename b:p1 p1x
refused "without instances, its custom volume keeps it from a rename" \
	"Only empty projects can be renamed"
run_lxc storage volume delete b:default v1 --project p1
run_lxc project rename b:p1 p1x
refused "... then its image" "Only empty projects can be renamed"
run_lxc image delete b:own --project p1
run_lxc profile create b:extra --project p1
run_lxc project rename b:p1 p1x
refused "... then a profile besides default" "Only empty projects can be renamed"
run_lxc profile delete b:extra --project p1
run_lxc project rename b:p1 p1x
rc_ok "emptied, p1 is renamed p1x"
gone "... p1 is gone" /1.0/projects/p1
api GET /1.0/profiles/default?project=p1x
is "$HTTP_STATUS" 200 "... and p1x has its default profile"
expect_status 202 "... and back to p1 through the API, an operation as in LXD" \
	POST /1.0/projects/p1x '{"name":"p1"}'
wait_operation "$(jget 'j["operation"]')"
is "$(jget 'j["metadata"]["status"]')" Success "... that succeeds"
run_lxc project delete b:p1
rc_ok "emptied, p1 is deleted"
gone "... with its default profile" "/1.0/profiles/default?project=p1"
api GET "/1.0/images/$FP"
is "$HTTP_STATUS" 200 "the default project keeps its image"
api DELETE "/1.0/instances/d1?project=p6"
wait_operation "$(jget 'j["operation"]')"
run_lxc storage volume delete b:bt w1 --project p6
run_lxc project delete b:p6
rc_ok "p6 is deleted once emptied (its profile held the pool)"
run_cli storage delete bt
rc_ok "the btrfs pool is deleted once emptied"
is "$(loops)" "$loops0" "no loop device left"
