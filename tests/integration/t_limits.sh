#!/bin/bash
# tests/integration/t_limits.sh: limits.memory, limits.cpu (a count, balanced over the
# CPUs, and a pinned set), limits.cpu.allowance (a percentage: a share of the CPU
# weight, as LXD; a time slice: a hard quota), limits.cpu.priority and
# limits.processes changed on a running busybox container reach its cgroups at once,
# through `berth config set`, the stock `lxc config set`, PUT and PATCH of the instance and
# a profile it uses; unset lifts them; invalid values are refused with the database
# unchanged; a restart runs with the config as it is now; a key that applies only at the
# next start says so while the instance runs. The values are read back from
# the container's cgroup files on the host and, where the kernel shows them, inside.
. "$(dirname "$0")/lib.sh"
berth_test_images busybox
: "${BERTH_MONITOR:=$BERTH_BUILDDIR/berth-monitor}"
if [ "$(id -u)" = 0 ]; then
	[ -x "$BERTH_MONITOR" ] || skip_all "no berth-monitor at $BERTH_MONITOR (build it first)"
fi
BERTHD_ENV=(BERTH_MONITOR="$BERTH_MONITOR")
berth_test_init "$@"
export PATH=$BERTH_BUILDDIR:$PATH
export LXD_CONF=$TEST_TMP/lxd-conf
mkdir -p "$LXD_CONF"

CGH=berth-$(printf '%s' "$BERTH_DIR" | sha256sum | cut -c1-8)
NCPU=$(nproc)
if [ -d /sys/fs/cgroup/memory ]; then V2=; else V2=1; fi
# cg NAME CONTROLLER: the container's directory in that hierarchy (v2: the one tree)
cg()
{
	if [ -n "$V2" ]; then
		find /sys/fs/cgroup -maxdepth 3 -type d -path "*$CGH/default_$1" | head -n 1
	else
		find "/sys/fs/cgroup/$2" -maxdepth 3 -type d -path "*$CGH/default_$1" | head -n 1
	fi
}
rd() { cat "$1" 2>/dev/null | tr -d '\n'; }
mem() { if [ -n "$V2" ]; then rd "$(cg "$1" memory)/memory.max"; else rd "$(cg "$1" memory)/memory.limit_in_bytes"; fi; }
cpus() { rd "$(cg "$1" cpuset)/cpuset.cpus"; }
quota() { if [ -n "$V2" ]; then rd "$(cg "$1" cpu)/cpu.max"; else echo "$(rd "$(cg "$1" cpu)/cpu.cfs_quota_us") $(rd "$(cg "$1" cpu)/cpu.cfs_period_us")"; fi; }
pids() { rd "$(cg "$1" pids)/pids.max"; }
weight() { if [ -n "$V2" ]; then rd "$(cg "$1" cpu)/cpu.weight"; else rd "$(cg "$1" cpu)/cpu.shares"; fi; }
# CPU time used, in microseconds
used() { if [ -n "$V2" ]; then sed -n 's/^usage_usec //p' "$(cg "$1" cpu)/cpu.stat"; else echo $(($(rd "$(cg "$1" cpuacct)/cpuacct.usage") / 1000)); fi; }
# LXD's weight: full (v1 cpu.shares 1024, v2 cpu.weight 100) * percent / 100 - (10 - priority)
FULL_W=1024; [ -n "$V2" ] && FULL_W=100
lxdw() { echo $((FULL_W * $1 / 100 - (10 - $2))); }
UNLIM_MEM=$(rd "/sys/fs/cgroup/memory/memory.limit_in_bytes"); [ -n "$V2" ] && UNLIM_MEM=max
UNLIM_Q="-1 100000"; [ -n "$V2" ] && UNLIM_Q="max 100000"
PARENT_CPUS=$(rd /sys/fs/cgroup/cpuset/cpuset.cpus); [ -n "$V2" ] && PARENT_CPUS=
cfg() { api GET "/1.0/instances/$1"; jget "j['metadata']['config'].get('$2', '<unset>')"; }
opok() { [ "$(jget 'j["metadata"]["status"]')" = Success ]; }
# starttime NAME: the start time of PID 1 inside NAME; "ERR" when the exec fails.
starttime()
{
	local st
	st=$(berth exec "$1" -- cat /proc/1/stat 2>/dev/null) || { echo ERR; return; }
	printf "%s\n" "$st" | cut -d" " -f22
}

run_cli image import "${IMAGE[busybox]}" --alias busybox
rc_ok "import the busybox image"
run_cli launch busybox l1
rc_ok "launch l1"
ok "l1 has a memory cgroup" test -n "$(cg l1 memory)"
is "$(mem l1)" "$UNLIM_MEM" "no limits.memory: unlimited"
is "$(pids l1)" max "no limits.processes: max"

# ---- berth config set: each limit at once ----
t0=$(date +%s%N)
run_cli config set l1 limits.memory 96MiB
t1=$(date +%s%N)
rc_ok "berth config set limits.memory 96MiB"
diag "berth config set of a live limit took $(((t1 - t0) / 1000000)) ms"
is "$(mem l1)" $((96 << 20)) "limits.memory reaches the running cgroup"
MEMSW=$(cg l1 memory)/memory.memsw.limit_in_bytes
if [ -z "$V2" ] && [ -f "$MEMSW" ]; then
	run_cli config set l1 limits.memory.swap false
	is "$(rd "$MEMSW")" $((96 << 20)) "limits.memory.swap=false: memsw limit = memory limit"
	run_cli config set l1 limits.memory 48MiB
	is "$(rd "$MEMSW"):$(mem l1)" "$((48 << 20)):$((48 << 20))" "lowering memory lowers both"
	run_cli config unset l1 limits.memory.swap
	is "$(rd "$MEMSW")" "$UNLIM_MEM" "limits.memory.swap unset: memsw unlimited again"
	run_cli config set l1 limits.memory 96MiB
elif [ -n "$V2" ]; then
	run_cli config set l1 limits.memory.swap false
	is "$(rd "$(cg l1 memory)/memory.swap.max")" 0 "limits.memory.swap=false: memory.swap.max 0"
	run_cli config unset l1 limits.memory.swap
fi
run_cli config set l1 limits.processes 50
rc_ok "berth config set limits.processes 50"
is "$(pids l1)" 50 "limits.processes reaches pids.max"
# inside: 60 background sleeps, but no more than 50 tasks fit in the cgroup
# (a subshell forks them: ash gives up at the first failed fork; counting uses builtins)
run berth exec l1 -- sh -c '(for i in $(seq 60); do sleep 2 >/dev/null 2>&1 & done) 2>/dev/null; n=0; for p in /proc/[0-9]*; do n=$((n + 1)); done; echo $n'
ok "inside: limits.processes=50 stops forks at 50 tasks ($OUT processes seen)" test "${OUT:-99}" -le 50 -a "${OUT:-0}" -ge 40
if [ -n "$V2" ]; then
	run berth exec l1 -- cat /sys/fs/cgroup/pids.max
	is "$OUT" 50 "inside: pids.max says 50"
fi
sleep 2
is "$(weight l1)" "$FULL_W" "no limits.cpu.allowance: the full CPU weight $FULL_W"
run_cli config set l1 limits.cpu.allowance 25%
rc_ok "berth config set limits.cpu.allowance 25%"
is "$(weight l1)" "$(lxdw 25 10)" "25% is a soft limit: weight $(lxdw 25 10) (a quarter of $FULL_W)"
is "$(quota l1)" "$UNLIM_Q" "... and no hard quota"
run_cli config set l1 limits.cpu.allowance 10ms/50ms
rc_ok "berth config set limits.cpu.allowance 10ms/50ms"
is "$(quota l1)" "10000 50000" "10ms/50ms is quota 10000 us, period 50000 us"
is "$(weight l1)" "$FULL_W" "... with the full weight"
run_cli config set l1 limits.cpu.priority 5
rc_ok "berth config set limits.cpu.priority 5"
is "$(weight l1)" "$(lxdw 100 5)" "limits.cpu.priority=5: the weight drops by 5 to $(lxdw 100 5)"
is "$(quota l1)" "10000 50000" "... the quota stays"
run_cli config set l1 limits.cpu.allowance 50%
is "$(weight l1):$(quota l1)" "$(lxdw 50 5):$UNLIM_Q" "50% with priority 5: weight $(lxdw 50 5), the quota lifted"
run_cli config unset l1 limits.cpu.priority
is "$(weight l1)" "$(lxdw 50 10)" "unset limits.cpu.priority: weight $(lxdw 50 10)"
run_cli config set l1 limits.cpu 1
rc_ok "berth config set limits.cpu 1"
is "$(cpus l1)" 0 "limits.cpu=1: one CPU (the first, none in use)"
run berth exec l1 -- nproc
is "$OUT" 1 "inside: nproc says 1"

# ---- unset: back to unlimited ----
run_cli config unset l1 limits.memory
rc_ok "berth config unset limits.memory"
is "$(mem l1)" "$UNLIM_MEM" "unset limits.memory: unlimited again"
run_cli config unset l1 limits.processes
is "$(pids l1)" max "unset limits.processes: max again"
run_cli config set l1 limits.cpu.allowance 10ms/50ms
run_cli config unset l1 limits.cpu.allowance
is "$(quota l1)" "$UNLIM_Q" "unset limits.cpu.allowance: no quota"
is "$(weight l1)" "$FULL_W" "... and the full weight"
run_cli config unset l1 limits.cpu
is "$(cpus l1)" "$PARENT_CPUS" "unset limits.cpu: every CPU again"
run berth exec l1 -- nproc
is "$OUT" "$NCPU" "inside: nproc says $NCPU again"

# ---- invalid values: refused, nothing written ----
run_cli config set l1 limits.memory 64MiB
for bad in "limits.memory=lots" "limits.cpu=0" "limits.cpu=1-" "limits.cpu.allowance=150%" \
	"limits.cpu.allowance=10ms" "limits.cpu.priority=11" "limits.processes=many"; do
	k=${bad%%=*} v=${bad#*=}
	run_cli config set l1 "$k" "$v"
	isnt "$RC" 0 "berth config set $k $v is refused"
done
like "$ERR" "limits.processes" "... the error names the key"
is "$(cfg l1 limits.memory)" 64MiB "the database still has limits.memory=64MiB"
is "$(cfg l1 limits.processes)" "<unset>" "... and no limits.processes"
is "$(mem l1)" $((64 << 20)) "the cgroup keeps 64MiB"
run_cli config set l1 limits.cpu 0-63
isnt "$RC" 0 "limits.cpu=0-63 (CPUs this host lacks) is refused"
like "$ERR" "not available" "... saying a CPU is not available"
is "$(cfg l1 limits.cpu)" "<unset>" "... and the database is unchanged"
run berth exec l1 -- sh -c 'dd if=/dev/zero of=/dev/shm/fill bs=1M count=24 2>/dev/null; echo done'
run_cli config set l1 limits.memory 8MiB
isnt "$RC" 0 "limits.memory below what the container uses is refused by the kernel"
is "$(cfg l1 limits.memory)" 64MiB "... the database keeps 64MiB"
is "$(mem l1)" $((64 << 20)) "... and so does the cgroup"
berth exec l1 -- rm -f /dev/shm/fill

# ---- the stock lxc client ----
lxc remote add b "unix://$BERTH_SOCKET" >/dev/null 2>&1
run lxc config set b:l1 limits.memory 80MiB
rc_ok "lxc config set limits.memory 80MiB"
is "$(mem l1)" $((80 << 20)) "lxc: limits.memory applied live"
run lxc config set b:l1 limits.cpu "$((NCPU - 1))-$((NCPU - 1))"
rc_ok "lxc config set limits.cpu $((NCPU - 1))-$((NCPU - 1)) (pin the last CPU)"
is "$(cpus l1)" "$((NCPU - 1))" "lxc: limits.cpu=N-N pins CPU N"
run berth exec l1 -- nproc
is "$OUT" 1 "inside: nproc says 1"
if [ "$NCPU" -ge 2 ]; then
	run lxc config set b:l1 limits.cpu 0,1
	is "$(cpus l1)" 0-1 "lxc: limits.cpu=0,1 pins CPUs 0 and 1"
fi
run lxc config set b:l1 limits.cpu.allowance 50%
is "$(weight l1):$(quota l1)" "$(lxdw 50 10):$UNLIM_Q" "lxc: limits.cpu.allowance=50% applied live (weight, no quota)"
run lxc config set b:l1 limits.cpu.priority 0
is "$(weight l1)" "$(lxdw 50 0)" "lxc: limits.cpu.priority=0 applied live"
run lxc config unset b:l1 limits.cpu.priority
run lxc config set b:l1 limits.processes 77
is "$(pids l1)" 77 "lxc: limits.processes applied live"
run lxc config unset b:l1 limits.processes
is "$(pids l1)" max "lxc: unset limits.processes lifts it"
run lxc config unset b:l1 limits.cpu
run lxc config unset b:l1 limits.cpu.allowance

# ---- PUT and PATCH ----
api GET /1.0/instances/l1
body=$(jget "json.dumps({'config': dict(j['metadata']['config'], **{'limits.processes': '42', 'limits.memory': '100MiB'}), 'devices': j['metadata']['devices'], 'profiles': j['metadata']['profiles']})")
api PUT /1.0/instances/l1 "$body"
wait_operation "$(jget 'j["operation"]')"
ok "PUT with limits succeeds" opok
is "$(pids l1):$(mem l1)" "42:$((100 << 20))" "PUT: limits applied live"
api PATCH /1.0/instances/l1 '{"config":{"limits.processes":"43"}}'
is "$HTTP_STATUS" 200 "PATCH limits.processes answers 200"
is "$(pids l1)" 43 "PATCH: applied live"
api PATCH /1.0/instances/l1 '{"config":{"limits.memory":"nonsense"}}'
is "$HTTP_STATUS" 400 "PATCH with an invalid limits.memory: 400"
is "$(cfg l1 limits.memory)" 100MiB "... the database is unchanged"

# ---- a profile the instance uses ----
run_cli profile create lim
run lxc profile add b:l1 lim
rc_ok "lxc profile add l1 lim"
run_cli config unset l1 limits.processes
is "$(pids l1)" max "limits.processes unset on the instance"
run_cli profile set lim limits.processes 33
rc_ok "berth profile set lim limits.processes 33"
is "$(pids l1)" 33 "a profile change reaches the running instance"
run lxc profile set b:lim limits.cpu.allowance 20ms/100ms
rc_ok "lxc profile set lim limits.cpu.allowance 20ms/100ms"
is "$(quota l1)" "20000 100000" "lxc profile set: applied live"
run_cli config set l1 limits.processes 60
is "$(pids l1)" 60 "the instance's own key wins over the profile's"
run_cli profile set lim limits.processes 34
is "$(pids l1)" 60 "... also after the profile changes again"
run_cli config unset l1 limits.processes
is "$(pids l1)" 34 "unset on the instance: the profile's value applies"
run_cli profile set lim limits.cpu 0-63
isnt "$RC" 0 "a profile change that cannot apply to l1 is refused"
like "$ERR" "l1" "... naming the instance"
api GET /1.0/profiles/lim
is "$(jget "j['metadata']['config'].get('limits.cpu', '<unset>')")" "<unset>" "... and the profile is unchanged"
run_cli profile set lim limits.processes lots
isnt "$RC" 0 "an invalid profile value is refused"
api GET /1.0/profiles/lim
is "$(jget "j['metadata']['config'].get('limits.processes')")" 34 "... and the profile keeps 34"
is "$(pids l1)" 34 "... and so does the running instance"
run_cli profile unset lim limits.processes
is "$(pids l1)" max "profile unset: lifted on the instance"
run_cli profile set lim security.nesting true
rc_ok "berth profile set lim security.nesting true"
like "$ERR" 'Instance "l1" is running: security.nesting takes effect at its next start' "... warns for the running user l1"
api PATCH /1.0/profiles/lim '{"config":{"limits.processes":"35"}}'
is "$(jget 'j["metadata"].get("warning", "none")'):$(pids l1)" "none:35" "a profile PATCH of a live key: no warning, applied"
run_cli profile unset lim limits.processes
run_cli profile unset lim security.nesting

# ---- balancing: limits.cpu=1 on a second container picks the other CPU ----
if [ "$NCPU" -ge 2 ]; then
	run_cli config set l1 limits.cpu 1
	run_cli launch busybox l2 -c limits.cpu=1
	rc_ok "launch l2 with limits.cpu=1"
	is "$(cpus l1),$(cpus l2)" "0,1" "l1 and l2 get a CPU each"
	run_cli delete -f l2
	run_cli config unset l1 limits.cpu
fi

# ---- the weight at work: two busy containers on one CPU share it by their weights ----
run_cli config set l1 limits.cpu 0-0
run_cli config set l1 limits.cpu.allowance 20%
run_cli launch busybox l3 -c limits.cpu=0-0
rc_ok "launch l3 on CPU 0 beside l1 (l1 at 20%, l3 at the full weight)"
a1=$(used l1) a3=$(used l3)
berth exec l1 -- timeout 2 sh -c 'while :; do :; done' &
p1=$!
berth exec l3 -- timeout 2 sh -c 'while :; do :; done' &
p3=$!
wait "$p1" "$p3"
b1=$(($(used l1) - a1)) b3=$(($(used l3) - a3))
diag "2 s of contention on CPU 0: l1 (20%) used $((b1 / 1000)) ms, l3 (100%) $((b3 / 1000)) ms"
ok "l3 ran (${b3} us)" test "$b3" -gt 200000
ok "l1 at 20% got less than half of l3's CPU time (${b1} vs ${b3} us; 1:5 expected)" test $((b1 * 2)) -lt "$b3"
run_cli delete -f l3
run_cli config unset l1 limits.cpu.allowance
run_cli config unset l1 limits.cpu

# ---- restart: the config as it is now ----
run_cli stop l1
run_cli config set l1 limits.memory 72MiB
run_cli config set l1 limits.processes 21
run_cli config set l1 limits.cpu.allowance 40%
run_cli config set l1 limits.cpu.priority 2
run_cli start l1
is "$(mem l1):$(pids l1)" "$((72 << 20)):21" "start after stop applies the stored limits"
is "$(weight l1):$(quota l1)" "$(lxdw 40 2):$UNLIM_Q" "... limits.cpu.allowance=40% and priority 2 too: weight $(lxdw 40 2), no quota"
run_cli config unset l1 limits.cpu.allowance
run_cli config unset l1 limits.cpu.priority
pid0=$(starttime l1)
run_cli config set l1 limits.processes 22
t0=$(date +%s%N)
run_cli restart l1
t1=$(date +%s%N)
rc_ok "berth restart l1"
diag "berth restart (stop, then start with the current config) took $(((t1 - t0) / 1000000)) ms"
is "$(pids l1)" 22 "after restart: limits.processes is the current value"
is "$(mem l1)" $((72 << 20)) "after restart: limits.memory kept"
api GET /1.0/instances/l1/state
is "$(jget 'j["metadata"]["status"]')" Running "l1 runs after the restart"
pid1=$(starttime l1)
like "$pid0 $pid1" '^[0-9]+ [0-9]+$' "PID 1's start time read before and after the restart"
isnt "$pid1" "$pid0" "PID 1 is a new process (start time $pid0 -> $pid1)"
run lxc restart b:l1
rc_ok "lxc restart l1"
is "$(pids l1):$(mem l1)" "22:$((72 << 20))" "after lxc restart: the limits are kept"
run_cli config unset l1 limits.memory
run lxc restart b:l1 --force
is "$(mem l1)" "$UNLIM_MEM" "after a forced restart: unset limits.memory stays unset"

# ---- restart keeps attached volumes (it is a stop and a start with the current devices) ----
run_cli storage volume create default lv1
rc_ok "create custom volume lv1"
run_cli stop l1
run_cli storage volume attach default lv1 l1 /mnt/lv1
rc_ok "attach lv1 to the stopped l1"
run_cli start l1
# (mounts only: who may write to a custom volume is another issue's)
run berth exec l1 -- grep -c " /mnt/lv1 " /proc/mounts
is "$OUT" 1 "lv1 is mounted after the start"
run_cli restart l1
rc_ok "restart l1 with lv1 attached"
run berth exec l1 -- grep -c " /mnt/lv1 " /proc/mounts
is "$OUT" 1 "after restart lv1 is still mounted"
run_cli storage volume create default lv2
run_cli storage volume attach default lv2 l1 /mnt/lv2
rc_ok "attach lv2 to the running l1"
run_cli restart l1
run berth exec l1 -- sh -c 'grep -c " /mnt/lv[12] " /proc/mounts'
is "$OUT" 2 "after restart both volumes, the one attached while it ran too, are mounted"

# ---- keys a running container reads only at its start: the response says so ----
run_cli config set l1 limits.processes 23
is "$ERR" "" "a live limit change prints no warning"
run_cli config set l1 environment.LIMTEST hello
rc_ok "berth config set environment.LIMTEST on a running instance"
like "$ERR" "environment.LIMTEST takes effect at its next start" "... warns that it applies at the next start"
api PATCH /1.0/instances/l1 '{"config":{"security.nesting":"true"}}'
is "$HTTP_STATUS" 200 "PATCH security.nesting on a running instance: 200"
like "$(jget 'j["metadata"].get("warning", "")')" "security.nesting takes effect at its next start" "... its metadata carries the warning"
api PATCH /1.0/instances/l1 '{"config":{"limits.processes":"24"}}'
is "$(jget 'j["metadata"].get("warning", "none")')" none "PATCH of a live key: no warning"
run berth exec l1 -- sh -c 'tr "\0" "\n" </proc/1/environ'
unlike "$OUT" "LIMTEST" "PID 1 does not have LIMTEST yet"
run_cli restart l1
run berth exec l1 -- sh -c 'tr "\0" "\n" </proc/1/environ'
like "$OUT" "LIMTEST=hello" "after restart PID 1 has LIMTEST=hello"
run_cli stop l1
run_cli config set l1 environment.LIMTEST bye
is "$ERR" "" "the same change on a stopped instance prints no warning"

run_cli delete -f l1
rc_ok "delete l1"
ok "no cgroup left for l1" test -z "$(cg l1 memory)"
