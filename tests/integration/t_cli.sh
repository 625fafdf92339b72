#!/bin/bash
# t_cli.sh: the berth CLI against a real berthd: info, version, list and its
# formats, columns and filters, config get/set/unset/show/edit (EDITOR and
# stdin), profiles, operations, monitor, --help and bad verbs.
. "$(dirname "$0")/lib.sh"
# This berthd is given no QEMU ($BERTH_QEMU names a missing binary): VM creations are
# refused up front, naming what is missing (t_vm.sh runs them where QEMU is).
BERTHD_ENV=(BERTH_QEMU=/nonexistent/qemu-system-x86_64)
berth_test_init "$@"

# run_cli_stdin FILE ARGS: the CLI with FILE on stdin.
run_cli_stdin()
{
	local in=$1
	shift
	"$BERTH" "$@" <"$in" >"$TEST_TMP/out" 2>"$TEST_TMP/err"
	RC=$?
	OUT=$(cat "$TEST_TMP/out")
	ERR=$(cat "$TEST_TMP/err")
}

# run_cli_tty ARGS: the CLI on a pseudo-terminal (so `edit` uses $EDITOR).
run_cli_tty()
{
	local cmd
	printf -v cmd '%q ' "$BERTH" "$@"
	script -qec "$cmd" /dev/null </dev/null >"$TEST_TMP/out" 2>"$TEST_TMP/err"
	RC=$?
	OUT=$(tr -d '\r' <"$TEST_TMP/out")
	ERR=$(cat "$TEST_TMP/err")
}

create_instance()
{
	api POST /1.0/instances "$1"
	wait_operation "$(jget 'j["operation"]')"
	[ "$(jget 'j["metadata"]["status"]')" = Success ]
}
ok "setup: instance c1" create_instance '{"name":"c1","source":{"type":"none"},"config":{"user.tag":"blue"}}'
ok "setup: instance c2" create_instance '{"name":"c2","source":{"type":"none"},"config":{"user.tag":"red"}}'
ok "setup: instance web3" create_instance '{"name":"web3","source":{"type":"none"}}'

# ---- version, info ----
run_cli version
rc_ok "berth version exits 0"
like "$OUT" '0\.1\.0' "berth version prints the version"
run_cli info
rc_ok "berth info exits 0"
like "$OUT" 'api_version: "?1\.0' "berth info shows api_version"
like "$OUT" 'server: berth' "berth info shows the server"
like "$OUT" "kernel_version: \"?$(uname -r)" "berth info shows the kernel"

# ---- list ----
run_cli list
rc_ok "berth list exits 0"
like "$OUT" 'NAME' "the table has a header"
like "$OUT" '\| *c1 *\| *STOPPED' "the table shows c1 STOPPED"
like "$OUT" '\| *web3 *\|' "the table shows web3"
run_cli list -f json
rc_ok "berth list -f json exits 0"
is "$(jget 'sorted(i["name"] for i in j)' "$OUT")" '["c1", "c2", "web3"]' "JSON lists all instances"
is "$(jget '[i["status"] for i in j if i["name"] == "c1"]' "$OUT")" '["Stopped"]' "JSON has the status"
run_cli list -f yaml
rc_ok "berth list -f yaml exits 0"
like "$OUT" 'name: c2' "YAML lists c2"
run_cli list -f csv
rc_ok "berth list -f csv exits 0"
like "$OUT" '^c1,STOPPED' "CSV starts a line with c1,STOPPED"
run_cli list -f csv -c n
is "$OUT" $'c1\nc2\nweb3' "-c n lists names only"
run_cli list -f csv -c ns
is "$OUT" $'c1,STOPPED\nc2,STOPPED\nweb3,STOPPED' "-c ns lists name and state"
run_cli list -f csv -c n web
is "$OUT" web3 "a name filter selects web3"
run_cli list -f csv -c n user.tag=red
is "$OUT" c2 "a config filter selects c2"
run_cli list -f bogus
isnt_zero() { [ "$1" != 0 ]; }
ok "an unknown format fails" isnt_zero "$RC"
like "$ERR" 'bogus' "... naming it"

# ---- config (server and instance) ----
run_cli config set images.auto_update_interval 9
rc_ok "config set (server)"
run_cli config get images.auto_update_interval
is "$OUT" 9 "config get (server) returns the value"
run_cli config unset images.auto_update_interval
rc_ok "config unset (server)"
run_cli config get images.auto_update_interval
is "$OUT" "" "the unset key is empty"
run_cli config set c1 user.color green
rc_ok "config set (instance)"
run_cli config get c1 user.color
is "$OUT" green "config get (instance)"
run_cli config show c1
rc_ok "config show exits 0"
like "$OUT" 'user\.color: green' "config show has the key"
like "$OUT" 'profiles:' "config show has the profiles"
run_cli config set c1 nonsense.key 1
ok "config set of an unknown key fails" isnt_zero "$RC"
like "$ERR" 'Unknown configuration key' "... with the server's message"
run_cli config unset c1 user.color
run_cli config get c1 user.color
is "$OUT" "" "config unset (instance)"

# edit from stdin
run_cli config show c1
printf '%s\n' "$OUT" | sed 's/^config:$/config:\n  user.fromstdin: "yes"/' >"$TEST_TMP/c1.yaml"
run_cli_stdin "$TEST_TMP/c1.yaml" config edit c1
rc_ok "config edit from stdin exits 0"
run_cli config get c1 user.fromstdin
is "$OUT" yes "config edit from stdin applied the change"
# edit with $EDITOR on a terminal
cat >"$TEST_TMP/editor" <<'EOF'
#!/bin/sh
sed -i 's/^config:$/config:\n  user.fromeditor: "1"/' "$1"
EOF
chmod +x "$TEST_TMP/editor"
if command -v script >/dev/null; then
	EDITOR=$TEST_TMP/editor VISUAL=$TEST_TMP/editor run_cli_tty config edit c1
	rc_ok "config edit with EDITOR exits 0"
	run_cli config get c1 user.fromeditor
	is "$OUT" 1 "config edit with EDITOR applied the change"
else
	skip "config edit with EDITOR" "no script(1) for a terminal"
fi
printf 'config: [unclosed\n' >"$TEST_TMP/bad.yaml"
run_cli_stdin "$TEST_TMP/bad.yaml" config edit c1
ok "config edit with invalid YAML fails" isnt_zero "$RC"
run_cli config get c1 user.fromstdin
is "$OUT" yes "... and changes nothing"

# ---- profiles ----
run_cli profile list
rc_ok "profile list exits 0"
like "$OUT" 'default' "profile list shows default"
run_cli profile create p1
rc_ok "profile create p1"
run_cli profile set p1 limits.cpu 2
rc_ok "profile set p1 limits.cpu 2"
run_cli profile get p1 limits.cpu
is "$OUT" 2 "profile get p1 limits.cpu"
run_cli profile device add p1 root disk path=/ pool=default
rc_ok "profile device add"
run_cli profile show p1
like "$OUT" 'limits\.cpu: "?2' "profile show has the key"
like "$OUT" 'pool: default' "profile show has the device"
run_cli profile device set p1 root size=1GiB
rc_ok "profile device set"
run_cli profile device get p1 root size
is "$OUT" 1GiB "profile device get reads it back"
run_cli profile device unset p1 root size
run_cli profile device get p1 root size
is "$OUT" "" "profile device unset"
run_cli profile device unset p1 root type
ok "a device's type cannot be unset" isnt_zero "$RC"
run_cli profile device add p1 root disk path=/ pool=default
ok "adding a device that exists fails" isnt_zero "$RC"
like "$ERR" 'already exists' "... saying so"

# ---- instance devices (berth config device ...) ----
run_cli config device add c1 tmpdata disk source=/tmp path=/mnt/tmp
rc_ok "config device add"
run_cli config device list c1
like "$OUT" '^tmpdata$' "config device list shows it"
run_cli config device set c1 tmpdata readonly=true
run_cli config device get c1 tmpdata readonly
is "$OUT" true "config device set/get"
run_cli config device show c1
like "$OUT" 'path: /mnt/tmp' "config device show prints the YAML"
api GET /1.0/instances/c1
is "$(jget '"tmpdata" in j["metadata"]["devices"]')" true "the device is in the instance's own devices"
run_cli config device remove c1 tmpdata
rc_ok "config device remove"
run_cli config device remove c1 tmpdata
ok "removing it again fails" isnt_zero "$RC"
like "$ERR" "doesn't exist" "... saying it doesn't exist"
run_cli config device get c1 root path
is "$OUT" / "config device get reads a device inherited from a profile"
run_cli config device set c1 root size=2GiB
ok "an inherited device cannot be set on the instance" isnt_zero "$RC"
like "$ERR" 'override' "... and the message points at override"
run_cli config device override c1 root size=2GiB
rc_ok "config device override"
run_cli config device show c1
like "$OUT" 'size: 2GiB' "the override holds the change"
run_cli config device override c1 root
ok "overriding an own device fails" isnt_zero "$RC"
run_cli config device override c1 nosuch
ok "overriding a device no profile has fails" isnt_zero "$RC"
run_cli config device remove c1 root
rc_ok "removing the override"
run_cli init --empty cdev -d root,size=1GiB -d root,size.state=2GiB
rc_ok "init -d overrides a profile device"
run_cli config device show cdev
like "$OUT" 'size: 1GiB' "... with the first change"
like "$OUT" 'size.state: 2GiB' "... and the second"
run_cli init --empty cdev2 -d nosuch,x=1
ok "init -d of a device no profile has fails" isnt_zero "$RC"
like "$ERR" 'not found in profile devices' "... saying so"
run_cli list -f csv -c n cdev2
is "$OUT" "" "... and creates nothing"
run_cli delete cdev
run_cli profile list -f csv
like "$OUT" '^p1,' "profile list -f csv shows p1"
run_cli profile unset p1 limits.cpu
run_cli profile get p1 limits.cpu
is "$OUT" "" "profile unset"
run_cli profile create p1
ok "creating p1 again fails" isnt_zero "$RC"
run_cli profile rename p1 p9
rc_ok "profile rename"
run_cli profile show p9
rc_ok "the renamed profile exists"
run_cli profile delete p9
rc_ok "profile delete"
run_cli profile show p9
ok "the deleted profile is gone" isnt_zero "$RC"
like "$ERR" '[Nn]ot found' "... with a not-found message"

# ---- without QEMU, virtual machines are refused, nothing is left ----
run_cli init --vm --empty vm1
ok "berth init --vm --empty exits non-zero" isnt_zero "$RC"
like "$ERR" 'Cannot create instance "vm1": This host cannot run virtual machines: .*qemu-system-x86_64' \
	"... saying why, naming the instance"
run_cli list -c n -f csv
unlike "$OUT" 'vm1' "... and no vm1 is listed"
is "$(find "$BERTH_DIR" -name 'vm1*' | head -n 3)" "" "... nor anything of it on disk"
run_cli copy c1 vm2 --vm
ok "copy has no --vm flag" isnt_zero "$RC"

# ---- errors name their object ----
refused_cli()
{
	local desc=$1 pat=$2
	shift 2
	run_cli "$@"
	if [ "$RC" != 0 ] && printf '%s' "$ERR" | grep -qE -- "$pat"; then
		pass "$desc"
	else
		fail "$desc" "exit $RC" "stderr: $ERR" "want: $pat"
	fi
}
refused_cli "launch of a missing image names it" 'Image "nosuchimage" not found' \
	launch nosuchimage x1
refused_cli "launch from the images: remote says the remote is unknown" \
	'remote "images" doesn.t exist' launch images:debian/12 x
refused_cli "a missing profile is named" 'Profile "nope" not found' profile show nope
refused_cli "a missing network is named" 'Network "nope" not found' network show nope
refused_cli "a missing storage pool is named" 'Storage pool "nope" not found' storage show nope
refused_cli "a missing storage volume is named" 'Storage volume "nope" not found' \
	storage volume show default nope
refused_cli "a missing image is named" '"nope" not found' image show nope
refused_cli "a missing image alias is named" 'Image alias "nope" not found' image alias delete nope
refused_cli "a missing snapshot is named" 'Snapshot "nosnap" not found' delete c1/nosnap
refused_cli "a missing instance is named" 'Instance "nope" not found' config show nope
refused_cli "a missing operation is named" 'Operation "nope" not found' operation show nope
refused_cli "a stopped instance's stop names it" '^Error: c1: The instance is already stopped' stop c1
run_cli list -c n -f csv
unlike "$OUT" '^x1?$' "... and no instance was made by the failed launches"

# ---- operations ----
run_cli operation list
rc_ok "operation list exits 0"
like "$OUT" 'ID' "operation list prints a table"

# ---- monitor ----
"$BERTH" monitor --type=lifecycle >"$TEST_TMP/monitor" 2>&1 &
mon=$!
sleep 1
run_cli profile create watched
for _ in $(seq 50); do grep -q watched "$TEST_TMP/monitor" && break; sleep 0.1; done
kill "$mon" 2>/dev/null
wait "$mon" 2>/dev/null
like "$(cat "$TEST_TMP/monitor")" 'profile-created' "monitor prints the lifecycle event"
like "$(cat "$TEST_TMP/monitor")" '/1.0/profiles/watched' "... for the new profile"

# ---- help and bad verbs ----
for verb in "" info list config profile operation monitor version; do
	run_cli $verb --help
	rc_ok "berth $verb --help exits 0"
	like "$OUT" '[Uu]sage' "berth $verb --help prints usage"
done
run_cli --help
verbs=$(printf '%s\n' "$OUT" | sed -n '/^Available Commands:/,/^$/p' | awk 'NF > 1 && /^  / {print $1}')
is "$(printf '%s\n' "$verbs" | grep -vx help | LC_ALL=C sort -c 2>&1 && echo sorted)" sorted \
	"berth --help lists its verbs in alphabetical order"
bad=
for v in $verbs; do
	run_cli $v --help
	[ "$RC" = 0 ] && printf '%s' "$OUT" | grep -q '[Uu]sage' || bad="$bad $v"
done
is "$bad" "" "every verb berth --help lists answers its own --help ($(echo $verbs | wc -w) verbs)"
run_cli help list
is "$RC" 0 "berth help list exits 0"
like "$OUT" '^  berth list ' "... and is berth list --help"
run_cli help storage volume show
like "$OUT" 'berth storage volume show ' "berth help storage volume show shows that sub-verb's help"
run_cli frobnicate
ok "an unknown verb exits non-zero" isnt_zero "$RC"
like "$ERR" 'frobnicate' "... and names it"
run_cli profile frobnicate
ok "an unknown profile verb exits non-zero" isnt_zero "$RC"

BERTH_SOCKET=$TEST_TMP/nonexistent.socket run_cli info
ok "without a daemon the CLI exits non-zero" isnt_zero "$RC"
like "$ERR" 'berthd' "... and says berthd is not reachable"
