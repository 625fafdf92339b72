#!/bin/bash
# t_security.sh: the security.* keys berthd checks with the runtime's own code:
# security.syscalls.deny/allow naming a syscall libseccomp does not know are refused
# with a 400 naming it (create, PUT, PATCH, profiles), valid lists are stored as
# given, allow and deny together are refused, and GET /1.0 reports AppArmor as the
# runtime detects it. Nothing is left behind: state, mounts, cgroups, processes, fds.
. "$(dirname "$0")/lib.sh"
berth_test_init "$@"

mounts() { grep -cF " $BERTH_DIR/" /proc/self/mountinfo; }
# this daemon's cgroups only (doc/runtime.md: berth-<8 hex of sha256(BERTH_DIR)>): other tests run beside it
CGH=berth-$(printf '%s' "$BERTH_DIR" | sha256sum | cut -c1-8)
cgroups() { find /sys/fs/cgroup -maxdepth 3 -type d -name "$CGH" 2>/dev/null | wc -l; }
children() { pgrep -P "$DAEMON_PID" | wc -l; }
mounts0=$(mounts)
cgroups0=$(cgroups)
children0=$(children)
fds0=$(daemon_fds)

# error_names DESC WORD: the last response is LXD's 400 error JSON and its message has WORD.
error_names()
{
	if is_error_json 400 && [ "$(jget "'''$2''' in j['error']")" = true ]; then
		pass "$1"
	else
		fail "$1" "status $HTTP_STATUS, body: $(printf '%s' "$HTTP_BODY" | head -c 600)"
	fi
}

# ---- create ----
api POST /1.0/instances '{"name":"sec1","source":{"type":"none"},
	"config":{"security.syscalls.deny":"kexec_load\nnot_a_syscall"}}'
error_names "create with an unknown syscall in security.syscalls.deny is refused" \
	'unknown system call "not_a_syscall"'
is "$(jget "'security.syscalls.deny' in j['error']")" true "... and the message names the key"
api GET /1.0/instances/sec1
is "$HTTP_STATUS" 404 "... and no instance was created"

api POST /1.0/instances '{"name":"sec1","source":{"type":"none"},
	"config":{"security.syscalls.deny":"kexec_load\nmount","security.syscalls.deny_default":"true"}}'
[ "$HTTP_STATUS" = 202 ] && wait_operation "$(jget 'j["operation"]')"
is "$(jget 'j["metadata"]["status"]')" Success "create with a valid deny list succeeds"
api GET /1.0/instances/sec1
is "$(jget 'j["metadata"]["config"]["security.syscalls.deny"]')" "$(printf 'kexec_load\nmount')" \
	"... and the list is stored as given"

# ---- PATCH and PUT ----
api PATCH /1.0/instances/sec1 '{"config":{"security.syscalls.deny":"getpid, bogus_call"}}'
error_names "PATCH with an unknown syscall is refused" '"bogus_call"'
api GET /1.0/instances/sec1
is "$(jget 'j["metadata"]["config"]["security.syscalls.deny"]')" "$(printf 'kexec_load\nmount')" \
	"... and the stored list is unchanged"

api PATCH /1.0/instances/sec1 '{"config":{"security.syscalls.deny":"getpid, uname"}}'
is "$HTTP_STATUS" 200 "PATCH with a valid list succeeds"
api GET /1.0/instances/sec1
is "$(jget 'j["metadata"]["config"]["security.syscalls.deny"]')" "getpid, uname" \
	"... and the new list is stored"

api GET /1.0/instances/sec1
put=$(jget 'json.dumps({"config": dict(j["metadata"]["config"], **{"security.syscalls.deny": "open_by_handle_at\nno_such_call_42"}), "devices": j["metadata"]["devices"], "profiles": j["metadata"]["profiles"]})' 2>/dev/null)
[ -n "$put" ] || put='{"config":{"security.syscalls.deny":"open_by_handle_at\nno_such_call_42"}}'
api PUT /1.0/instances/sec1 "$put"
error_names "PUT with an unknown syscall is refused" '"no_such_call_42"'

api PATCH /1.0/instances/sec1 '{"config":{"security.syscalls.deny":"","security.syscalls.allow":"read\nwrite\nexit_group\nnot_a_syscall"}}'
error_names "an unknown syscall in security.syscalls.allow is refused" '"not_a_syscall"'
api PATCH /1.0/instances/sec1 '{"config":{"security.syscalls.deny":"uname","security.syscalls.allow":"read"}}'
error_names "allow and deny lists together are refused" "mutually exclusive"
api PATCH /1.0/instances/sec1 '{"config":{"security.syscalls.deny_compat":"true"}}'
error_names "security.syscalls.deny_compat says it is not implemented" "not implemented"

# ---- profiles ----
api POST /1.0/profiles '{"name":"secp","config":{"security.syscalls.deny":"uname\nnot_a_syscall"}}'
error_names "a profile with an unknown syscall is refused" '"not_a_syscall"'
api POST /1.0/profiles '{"name":"secp","config":{"security.syscalls.deny":"uname"}}'
like "$HTTP_STATUS" '^20[01]$' "a profile with a valid list is created"

# ---- host environment: one AppArmor detection ----
api GET /1.0
if [ -d /sys/kernel/security/apparmor ] && grep -q '^Y' /sys/module/apparmor/parameters/enabled 2>/dev/null; then
	want=true
else
	want=false
fi
is "$(jget 'j["metadata"]["environment"]["kernel_features"]["apparmor"]')" "$want" \
	"GET /1.0 reports AppArmor as /sys/module/apparmor says ($want)"

# ---- clean up and check for leaks ----
api DELETE /1.0/instances/sec1
[ "$HTTP_STATUS" = 202 ] && wait_operation "$(jget 'j["operation"]')"
is "$(jget 'j["metadata"]["status"]')" Success "instance deleted"
api DELETE /1.0/profiles/secp
is "$HTTP_STATUS" 200 "profile deleted"
is "$(mounts)" "$mounts0" "no mount left"
is "$(cgroups)" "$cgroups0" "no cgroup left"
is "$(children)" "$children0" "no child process of berthd left"
check_no_fd_leak "$fds0" "no fd leak"
daemon_alive "berthd still serves"
