#!/bin/bash
# scripts/test.sh: README command 2 (and what CI runs). On Debian 12, as root:
# installs what the tests need, then, out of tree under build-ci/:
#   gcc    --enable-werror            make check (unit + integration tests, with the slow
#                                     Debian 12 tests: BERTH_TEST_FULL=1)
#   asan   --enable-sanitize          make check (unit + integration under ASan/UBSan)
#   clang  --enable-werror CC=clang   builds everything, tests included
#   fuzz   --enable-fuzz CC=clang     each libFuzzer target for $FUZZ_SECONDS s
# Prints each failing stage's test-suite.log, and last one line
# "N passed, N failed" summing automake's results (a failed build or fuzz run
# counts as one failure, a clean fuzz run as one pass). Exits non-zero on any
# failure.
#
# Environment: FUZZ_SECONDS (30), STAGES (default "gcc asan clang fuzz"),
# NO_APT=1 to skip the apt step, BERTH_TEST_FULL=0 to leave out the slow tests,
# APT_LOCK_TIMEOUT (600): how long apt waits for a lock another apt holds.
set -uo pipefail

src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=$src/build-ci
FUZZ_SECONDS=${FUZZ_SECONDS:-30}
STAGES=${STAGES:-gcc asan clang fuzz}
jobs=$(nproc)

say() { printf '==> %s\n' "$*"; }

. "$src/scripts/deps.sh"

if [ "$(id -u)" != 0 ]; then
	echo "test.sh: the integration tests need root (network namespaces): sudo bash $0" >&2
	exit 1
fi

if [ "${NO_APT:-}" != 1 ]; then
	missing=()
	for p in "${TEST_DEPS[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed' ||
			missing+=("$p")
	done
	if [ ${#missing[@]} -gt 0 ]; then
		say "installing ${missing[*]}"
		export DEBIAN_FRONTEND=noninteractive
		# (waits up to $APT_LOCK_TIMEOUT s for a lock another apt or dpkg holds)
		apt=(apt-get -o DPkg::Lock::Timeout="${APT_LOCK_TIMEOUT:-600}")
		"${apt[@]}" update </dev/null || {
			echo "test.sh: step \"install test deps\": apt-get update failed: check the network and" \
				"/etc/apt's sources (or NO_APT=1 when the packages in scripts/deps.sh are there)" >&2
			exit 1
		}
		"${apt[@]}" install -y --no-install-recommends "${missing[@]}" </dev/null || {
			echo "test.sh: step \"install test deps\": apt-get install ${missing[*]} failed:" \
				"see apt's message above, then run this again" >&2
			exit 1
		}
	fi
fi

cd "$src" || exit 1
say "autogen"
./autogen.sh || exit 1

passed=0
failed=0
skipped=0
failures=()

# Adds the counts from an automake test-suite.log.
count_log()
{
	local log=$1 n
	n=$(sed -n 's/^# PASS: *//p' "$log" | head -n 1)
	passed=$((passed + ${n:-0}))
	n=$(sed -n 's/^# SKIP: *//p' "$log" | head -n 1)
	skipped=$((skipped + ${n:-0}))
	for k in FAIL XPASS ERROR; do
		n=$(sed -n "s/^# $k: *//p" "$log" | head -n 1)
		failed=$((failed + ${n:-0}))
	done
}

stage_failed()
{
	failed=$((failed + 1))
	failures+=("$1")
}

# configure_build NAME CONFIGURE-ARGS...: a fresh build dir, configured and built.
configure_build()
{
	local name=$1
	shift
	rm -rf "${out:?}/$name"
	mkdir -p "$out/$name"
	say "[$name] configure $*"
	(cd "$out/$name" && "$src/configure" "$@" >configure.out 2>&1) || {
		tail -n 40 "$out/$name/configure.out"
		stage_failed "$name: configure"
		return 1
	}
	say "[$name] make"
	make -C "$out/$name" -j"$jobs" >"$out/$name/make.out" 2>&1 || {
		grep -E 'error|warning' "$out/$name/make.out" | head -n 60
		tail -n 20 "$out/$name/make.out"
		stage_failed "$name: build"
		return 1
	}
}

# slowest DIR: the ten integration tests under DIR that took longest ("# took N s", lib.sh).
slowest()
{
	local f
	for f in "$1"/tests/integration/*.log; do
		sed -n "s|^# took \([0-9]*\)s$|\1 s  $(basename "$f" .log)|p" "$f"
	done 2>/dev/null | sort -rn | head -n 10
}

# check_build NAME: make check, counts, test-suite.log printed on failure.
check_build()
{
	local name=$1 rc t0=$SECONDS
	say "[$name] make check"
	make -C "$out/$name" -j"$jobs" check >"$out/$name/check.out" 2>&1
	rc=$?
	say "[$name] make check took $((SECONDS - t0)) s; the slowest tests:"
	slowest "$out/$name" | sed "s/^/[$name]   /"
	grep -E '^(PASS|FAIL|ERROR|SKIP|XFAIL|XPASS):' "$out/$name/check.out" |
		grep -Ev '^PASS:' | sed "s/^/[$name] /"
	local log=$out/$name/test-suite.log
	if [ -f "$log" ]; then
		count_log "$log"
		sed -n '1,/^# ERROR/p' "$log" | grep '^#' | sed "s/^/[$name] /"
	fi
	if [ $rc -ne 0 ]; then
		if [ -f "$log" ]; then
			say "[$name] test-suite.log"
			cat "$log"
			failures+=("$name: make check")
		else
			tail -n 60 "$out/$name/check.out"
			stage_failed "$name: make check (no test-suite.log)"
		fi
	fi
}

stage_gcc()
{
	# The full run: the slow tests (Debian 12 booting systemd) run here, once; the
	# sanitizer build skips them. BERTH_TEST_FULL=0 leaves them out here too.
	configure_build gcc --enable-werror CC=gcc &&
		BERTH_TEST_FULL=${BERTH_TEST_FULL:-1} check_build gcc
}

stage_asan()
{
	export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
	export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
	configure_build asan --enable-sanitize CC=gcc && check_build asan
}

stage_clang()
{
	# Builds the daemon, CLI and the unit tests (TESTS= runs none of them).
	configure_build clang --enable-werror CC=clang || return
	make -C "$out/clang" -j"$jobs" check TESTS= >"$out/clang/check-build.out" 2>&1 || {
		grep -E 'error|warning' "$out/clang/check-build.out" | head -n 60
		stage_failed "clang: test programs build"
		return
	}
}

# fuzz_one NAME: runs the target NAME for $FUZZ_SECONDS s; its exit status into NAME.rc.
fuzz_one()
{
	local name=$1 corpus=$out/fuzz/corpus/$1 seeds=$src/tests/fuzz/corpus/${1#fuzz_}
	mkdir -p "$corpus"
	# Seeds: tests/fuzz/corpus/http for fuzz_http, and so on. The copy grows.
	[ -d "$seeds" ] && cp -r "$seeds/." "$corpus/"
	(cd "$out/fuzz" && "$out/fuzz/tests/fuzz/$name" -max_total_time="$FUZZ_SECONDS" -timeout=10 \
		-rss_limit_mb=2048 -print_final_stats=1 "$corpus" >"$out/fuzz/$name.out" 2>&1)
	echo $? >"$out/fuzz/$name.rc"
}

stage_fuzz()
{
	configure_build fuzz --enable-fuzz CC=clang || return
	local t name rc names=() running=0
	for t in "$out"/fuzz/tests/fuzz/fuzz_*; do
		[ -x "$t" ] && [ -f "$t" ] && names+=("$(basename "$t")")
	done
	[ ${#names[@]} -gt 0 ] || {
		stage_failed "fuzz: no targets built"
		return
	}
	# Each target is one process: $jobs of them at a time.
	say "[fuzz] ${#names[@]} targets for ${FUZZ_SECONDS}s each, $jobs at a time"
	for name in "${names[@]}"; do
		rm -f "$out/fuzz/$name.rc"
		if [ $running -ge "$jobs" ]; then
			wait -n
			running=$((running - 1))
		fi
		fuzz_one "$name" &
		running=$((running + 1))
	done
	wait
	for name in "${names[@]}"; do
		rc=$(cat "$out/fuzz/$name.rc" 2>/dev/null || echo 1)
		say "[fuzz] $name: exit $rc"
		if [ "$rc" = 0 ]; then
			passed=$((passed + 1))
			grep -E 'stat::number_of_executed_units|Done [0-9]+ runs' "$out/fuzz/$name.out" | tail -n 1
		elif [ "$rc" = 77 ]; then
			skipped=$((skipped + 1))
			say "[fuzz] $name skipped (exit 77)"
		else
			tail -n 60 "$out/fuzz/$name.out"
			stage_failed "fuzz: $name (exit $rc)"
		fi
	done
}

start=$(date +%s)
for s in $STAGES; do
	"stage_$s"
done

say "done in $(($(date +%s) - start)) s; $skipped skipped"
for f in ${failures[@]+"${failures[@]}"}; do
	echo "FAILED: $f"
done
echo "$passed passed, $failed failed"
[ "$failed" = 0 ] && [ ${#failures[@]} = 0 ]
