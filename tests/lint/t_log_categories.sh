#!/bin/bash
# tests/lint/t_log_categories.sh: one log category per file. Every .c of berthd and its
# libraries that logs (log_error/warn/info/debug) defines its own LOG_CATEGORY, no two
# files share one, and the categories doc/api.md names stay on the files that log what
# it describes (api.c: failed requests, operation.c: failed operations). TAP output;
# reads the sources only.
srcdir=${BERTH_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$srcdir" || exit 1
n=0
failed=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); failed=1; echo "not ok $n - $1"; shift; printf '# %s\n' "$@"; }

files=$(grep -rlE --include='*.c' '\blog_(error|warn|info|debug)(_errno)?\(' daemon lib storage images)
missing=$(for f in $files; do grep -q '^#define LOG_CATEGORY "' "$f" || echo "$f"; done)
if [ -z "$missing" ]; then
	ok "each of the $(echo "$files" | wc -w) files that log defines LOG_CATEGORY"
else
	not_ok "each file that logs defines LOG_CATEGORY" $missing
fi
shared=$(grep -rh --include='*.c' '^#define LOG_CATEGORY "' daemon lib storage images cli |
	sort | uniq -d)
if [ -z "$shared" ]; then
	ok "no two files share a log category"
else
	not_ok "no two files share a log category" "$shared" \
		"$(grep -rl --include='*.c' -F "$shared" daemon lib storage images cli)"
fi
for pair in daemon/api/api.c:api daemon/operation.c:operation; do
	f=${pair%%:*} c=${pair#*:}
	if grep -q "^#define LOG_CATEGORY \"$c\"$" "$f"; then
		ok "$f logs as \"$c\" (doc/api.md)"
	else
		not_ok "$f logs as \"$c\" (doc/api.md)" "$(grep LOG_CATEGORY "$f")"
	fi
done
echo "1..$n"
exit 0
