#!/bin/bash
# t_completion.sh: bash completion (contrib/bash-completion/berth) against a test
# daemon: the script is sourced in this bash and its function called with COMP_WORDS and
# COMP_CWORD set as bash sets them, then COMPREPLY checked. Verbs, nested sub-commands
# (`storage volume <TAB>`, `config device <TAB>`), flags and a flag's choices come from
# berth's tables without the server; instance names (and instance/snapshot), a profile,
# a pool, a `pool volume` pair, a network, an image alias and fingerprint, a project and
# an operation come from the server, and "REMOTE:" prefixes from config.yml's remotes
# (names after one from that remote); the same line with the server gone completes the
# static words and prints nothing for names, quietly.
. "$(dirname "$0")/lib.sh"
berth_test_images busybox
: "${BERTH_MONITOR:=$BERTH_BUILDDIR/berth-monitor}"
[ "$(id -u)" != 0 ] || [ -x "$BERTH_MONITOR" ] || skip_all "no berth-monitor at $BERTH_MONITOR"
BERTHD_ENV=(BERTH_MONITOR="$BERTH_MONITOR")
berth_test_init "$@"
export PATH=$BERTH_BUILDDIR:$PATH

. "$BERTH_SRCDIR/contrib/bash-completion/berth"

# comp WORD... : COMPREPLY for the line "berth WORD..." (the last word under the
# cursor), sorted, on one line. COMP_LINE and COMP_POINT are set as bash sets them;
# COMP_WORDS too, split at blanks, '=' and ':' as bash's COMP_WORDBREAKS splits them.
comp()
{
	local w head
	COMP_LINE="berth $*"
	COMP_POINT=${#COMP_LINE}
	COMP_WORDS=(berth)
	for w in "$@"; do
		while [[ $w == *[=:]* ]]; do
			head=${w%%[=:]*}
			[ -n "$head" ] && COMP_WORDS+=("$head")
			COMP_WORDS+=("${w:${#head}:1}")
			w=${w:${#head}+1}
		done
		COMP_WORDS+=("$w")
	done
	COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
	COMPREPLY=()
	_berth 2>"$TEST_TMP/comp.err"
	printf '%s\n' "${COMPREPLY[@]}" | LC_ALL=C sort | tr '\n' ' ' | sed 's/ $//'
}
# comp_words WORD...: the same with COMP_WORDS and COMP_CWORD only (no COMP_LINE)
comp_words()
{
	(
		unset COMP_LINE COMP_POINT
		COMP_WORDS=(berth "$@")
		COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
		COMPREPLY=()
		_berth
		printf '%s\n' "${COMPREPLY[@]}" | LC_ALL=C sort | tr '\n' ' ' | sed 's/ $//'
	)
}

is "$(complete -p berth)" "complete -F _berth berth" "the script registers _berth for berth"

# ---- static words: the tables ----
verbs=$(berth --help | awk '/^Available Commands:/ { on = 1; next } /^$/ { on = 0 } on { print $1 }' |
	LC_ALL=C sort | tr '\n' ' ' | sed 's/ $//')
is "$(comp '')" "$verbs" "berth <TAB>: every verb of berth --help (and help)"
is "$(comp st)" "start stop storage" "berth st<TAB>"
is "$(comp storage volume '')" \
	"attach attach-profile copy create delete detach detach-profile list move rename restore set show snapshot" \
	"berth storage volume <TAB>: the volume sub-commands"
is "$(comp storage volume li)" "list" "berth storage volume li<TAB>"
is "$(comp config device '')" "add get list override remove set show unset" \
	"berth config device <TAB>: a dispatcher inside a dispatcher"
is "$(comp profile device a)" "add" "berth profile device a<TAB>"
is "$(comp list --)" "--all-projects --columns --debug --fast --format --help --project --quiet" \
	"berth list --<TAB>: its flags and the global ones"
is "$(comp list --format '')" "compact csv json table yaml" "berth list --format <TAB>: the choices"
is "$(comp image list -f j)" "json" "a short flag's argument"
is "$(comp list --format=c)" "compact csv" "berth list --format=c<TAB>: after '=', as bash replaces it"
is "$(comp_words storage volume li)" "list" "COMP_WORDS and COMP_CWORD alone (no COMP_LINE)"
is "$(comp help sto)" "stop storage" "berth help sto<TAB>: verbs only"
is "$(comp -)" "--debug --help --project --quiet --version" "berth -<TAB>: the global flags"
is "$(comp bogus '')" "" "an unknown verb completes nothing"

# ---- names from the server ----
check "import busybox as bb" berth image import "${IMAGE[busybox]}" --alias bb
api GET /1.0/images
fp=$(jget 'j["metadata"][0].split("/")[-1]')
check "init c1" berth init bb c1
check "init c2" berth init bb c2
check "snapshot c1 snap0" berth snapshot c1 snap0
check "profile create prof1" berth profile create prof1 </dev/null
check "storage create pool2" berth storage create pool2 dir
check "storage volume create pool2 vol1" berth storage volume create pool2 vol1
check "storage volume create pool2 vol2" berth storage volume create pool2 vol2
check "config set c1 user.foo=bar" berth config set c1 user.foo=bar
api POST /1.0/projects '{"name": "proj1"}'
is "$HTTP_STATUS" 201 "project proj1 made"

is "$(comp start '')" "c1 c2" "berth start <TAB>: the instances"
is "$(comp start c1 c)" "c1 c2" "berth start c1 c<TAB>: more instances"
is "$(comp delete c1/)" "c1/snap0" "berth delete c1/<TAB>: its snapshots"
is "$(comp restore '')" "c1 c2" "berth restore <TAB>"
is "$(comp config device list c)" "c1 c2" "berth config device list c<TAB>"
is "$(comp profile show p)" "prof1" "berth profile show p<TAB>: a profile"
is "$(comp init bb c3 --profile pr)" "prof1" "berth init --profile pr<TAB>"
is "$(comp storage show po)" "pool2" "berth storage show po<TAB>: a pool"
is "$(comp storage volume show pool2 '')" "vol1 vol2" \
	"berth storage volume show pool2 <TAB>: that pool's volumes"
is "$(comp storage volume copy pool2/v)" "pool2/vol1 pool2/vol2" \
	"berth storage volume copy pool2/v<TAB>: pool/volume"
is "$(comp init bb c3 -s pool)" "pool2" "berth init -s pool<TAB>: a pool flag"
is "$(comp init bb c3 --profile=pr)" "prof1" "berth init --profile=pr<TAB>"
is "$(comp config get c1 user.)" "user.foo" "berth config get c1 user.<TAB>: its config keys"
is "$(comp config set c1 user.f)" "user.foo=" "berth config set c1 user.f<TAB>: key="
is "$(comp config unset c1 user.foo=)" "" "nothing after a key="
like "$(comp config device get c1 '')" "(^| )root( |$)" \
	"berth config device get c1 <TAB>: its devices (from the profile too)"
like "$(comp config device get c1 root p)" "^(path pool|pool path)$" \
	"berth config device get c1 root p<TAB>: the device's keys"
is "$(comp storage get pool2 s)" "source" "berth storage get pool2 s<TAB>: the pool's keys"
is "$(comp network get berthbr0 ipv4.addr)" "ipv4.address" \
	"berth network get berthbr0 ipv4.addr<TAB>: the network's keys"
like "$(comp network show '')" "(^| )berthbr0( |$)" "berth network show <TAB>: berthbr0"
like "$(comp launch b)" "^(bb|bb [0-9a-f]{64}|[0-9a-f]{64} bb)$" "berth launch b<TAB>: the image alias"
is "$(comp image show "${fp:0:6}")" "$fp" "berth image show <fingerprint prefix><TAB>"
is "$(comp image alias delete '')" "bb" "berth image alias delete <TAB>: aliases only"
is "$(comp --proj)" "--project" "berth --proj<TAB>"
is "$(comp list --project p)" "proj1" "berth list --project p<TAB>: a project"
is "$(comp --project proj1 start '')" "" "the instances of the project given with --project"

# REMOTE: prefixes, from config.yml's remotes: "other" is this berthd too, in a project
# of its own whose only instance is rc1
api POST /1.0/projects '{"name": "rproj", "config": {"features.images": "false", "features.profiles": "false"}}'
is "$HTTP_STATUS" 201 "project rproj made"
check "init rc1 in rproj" berth --project rproj init bb rc1
mkdir -p "$BERTH_CONF"
printf 'default-remote: local\nremotes:\n  other:\n    addr: unix://%s\n    project: rproj\n' \
	"$BERTH_SOCKET" >"$BERTH_CONF/config.yml"
is "$(comp start o)" "other:" "berth start o<TAB>: the remote, as other:"
is "$(comp start l)" "local:" "berth start l<TAB>: local: as well"
is "$(comp start other:)" "rc1" "berth start other:<TAB>: the instances on other (after the colon)"
is "$(comp start other:r)" "rc1" "berth start other:r<TAB>"
is "$(comp config show other:)" "rc1" "berth config show other:<TAB>"
is "$(comp profile show other:)" "$(comp --project rproj profile show '')" \
	"berth profile show other:<TAB>: other's profiles"
is "$(comp start nope:)" "" "an unknown remote: nothing"
is "$(comp start '')" "c1 c2" "an empty word: the default remote's names only"
run berth __complete start o
is "$OUT" $':nospace\nother:' "berth __complete: other: with :nospace (the word goes on)"
rm "$BERTH_CONF/config.yml"

# an operation: a command left running in a started c2
check "start c2" berth start c2
api POST /1.0/instances/c2/exec '{"command": ["sleep", "60"], "wait-for-websocket": false, "interactive": false}'
op=${HTTP_LOCATION##*/}
is "$HTTP_STATUS" 202 "exec sleep 60 in c2: an operation"
like "$(comp operation show '')" "(^| )$op( |$)" "berth operation show <TAB>: the running operation"
check "stop c2" berth stop --force c2

# local files where a command takes them
mkdir -p "$TEST_TMP/files" && touch "$TEST_TMP/files/local.txt"
like "$(cd "$TEST_TMP/files" && comp file push lo)" "local.txt" \
	"berth file push lo<TAB>: a local file"
like "$(cd "$TEST_TMP/files" && comp file push local.txt c)" "c1/" \
	"berth file push local.txt c<TAB>: instance/ as the target"

# ---- the server gone: static words still, names quietly none ----
daemon_stop
t0=$(date +%s%N)
is "$(comp storage volume li)" "list" "server down: sub-commands still complete"
is "$(comp start '')" "" "server down: no instance names"
is "$(cat "$TEST_TMP/comp.err")" "" "server down: nothing on stderr"
run berth __complete start ''
is "$RC/$OUT/$ERR" "0//" "server down: berth __complete exits 0, prints nothing"
ms=$((($(date +%s%N) - t0) / 1000000))
diag "four completions with the server down took ${ms} ms"

# a server that accepts connections and never answers: nothing, after at most 2 s
$PY -c 'import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1])
s.listen(8)
time.sleep(30)' "$TEST_TMP/mute.socket" &
mute=$!
for i in $(seq 50); do [ -S "$TEST_TMP/mute.socket" ] && break; sleep 0.1; done
t0=$(date +%s%N)
BERTH_SOCKET=$TEST_TMP/mute.socket run berth __complete start ''
ms=$((($(date +%s%N) - t0) / 1000000))
is "$RC/$OUT/$ERR" "0//" "a server that never answers: exit 0, nothing printed"
ok "... within 3 s (${ms} ms)" [ "$ms" -lt 3000 ]
is "$(BERTH_SOCKET=$TEST_TMP/mute.socket comp storage volume li)" "list" \
	"a server that never answers: words still complete"
kill "$mute" && wait "$mute" 2>/dev/null
