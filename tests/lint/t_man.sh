#!/bin/bash
# tests/lint/t_man.sh: the man pages make writes into the build's man/ (berth __man,
# doc/man/berthd-man.sh): each renders with `man -l` at MANWIDTH=80 without a groff
# warning (--warnings=w: every category, not only man's default "mac"); every verb of
# `berth --help` has its page berth-VERB.1 and is listed in berth.1; every sub-command's
# usage line and every flag `berth VERB [SUB...] --help` prints appear in the verb's
# page, and every example it prints (its "Examples:", held in the same tables) in the
# page's EXAMPLES section; `berth help VERB` prints what `berth VERB --help` prints;
# berthd.8 has every option and environment variable of `berthd --help`.
# TAP output. Needs the build (BERTH_BUILDDIR) and man-db (scripts/deps.sh).
builddir=${BERTH_BUILDDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
berth=$builddir/berth
berthd=$builddir/berthd
man=$builddir/man
n=0
failed=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok()
{
	n=$((n + 1))
	failed=$((failed + 1))
	echo "not ok $n - $1"
	shift
	printf '%s\n' "$@" | sed 's/^/# /'
}

if ! command -v man >/dev/null; then
	echo "1..0 # SKIP man not found (apt-get install man-db)"
	exit 0
fi
if [ ! -f "$man/.stamp" ]; then
	echo "1..0 # SKIP no man pages in $man (make first)"
	exit 0
fi

# roff source as plain text: the escapes the generators write undone
plain() { sed -e 's/\\f[BIR]//g' -e 's/\\-/-/g' -e 's/\\e/\\/g' -e 's/^\\&//' "$1"; }
# the words of a "Title:" section of a --help output, first column
help_list()
{
	awk -v s="$1:" '$0 == s { on = 1; next } /^$/ { on = 0 } on { print $1 }'
}
# the command lines of a --help output's "Examples:" (their explanations are indented more)
help_examples()
{
	awk '$0 == "Examples:" { on = 1; next } /^[A-Z][A-Za-z ]*:$/ { on = 0 }
		on && /^  [^ ]/ { sub(/^  /, ""); print }'
}
# the long flags of a --help output (and of its Global flags)
help_flags() { grep -Eo -- '(^|  |, )--[a-z0-9-]+' | grep -Eo -- '--[a-z0-9-]+' | sort -u; }

# 1. every page renders without a warning
for page in "$man"/*.[18]; do
	out=$(MANWIDTH=80 man --warnings=w -l "$page" 2>&1 >/dev/null)
	if [ -z "$out" ]; then
		ok "$(basename "$page") renders without warnings"
	else
		not_ok "$(basename "$page") renders without warnings" "$out"
	fi
done

# 2. verbs: a page each, listed in berth.1; help VERB is VERB --help
verbs=$("$berth" --help | help_list "Available Commands" | grep -vx help)
[ -n "$verbs" ] || not_ok "berth --help lists verbs"
for v in $verbs; do
	page=$man/berth-$v.1
	if [ ! -f "$page" ]; then
		not_ok "berth-$v.1 exists" "berth --help lists $v, $man has no page for it"
		continue
	fi
	if grep -q "^\.BR berth\\\\-$v (1)\$" "$man/berth.1"; then
		ok "berth.1 lists $v"
	else
		not_ok "berth.1 lists $v"
	fi
	if [ "$("$berth" help "$v")" = "$("$berth" "$v" --help)" ]; then
		ok "berth help $v prints berth $v --help"
	else
		not_ok "berth help $v prints berth $v --help"
	fi
	text=$(plain "$page")
	examples=$(awk '/^\.SH / { on = ($0 == ".SH EXAMPLES") } on' "$page" | plain /dev/stdin)
	missing=
	# the verb and every command under it, as --help reaches them
	cmds=$v
	while [ -n "$cmds" ]; do
		set -- $cmds
		cmd=$(echo "$1" | tr + ' ')
		shift
		cmds=$*
		h=$("$berth" $cmd --help 2>&1)
		usage=$(printf '%s\n' "$h" | sed -n '2s/^  //p')
		grep -qF -- "$usage" <<<"$text" || missing="$missing usage:'$usage'"
		for f in $(printf '%s\n' "$h" | help_flags); do
			grep -qF -- "$f" <<<"$text" || missing="$missing $cmd:$f"
		done
		while IFS= read -r x; do
			[ -z "$x" ] || grep -qxF -- "$x" <<<"$examples" || missing="$missing example:'$x'"
		done < <(printf '%s\n' "$h" | help_examples)
		for s in $(printf '%s\n' "$h" | help_list "Sub-commands"); do
			cmds="$cmds $(echo "$cmd $s" | tr ' ' +)"
		done
	done
	if [ -z "$missing" ]; then
		ok "berth-$v.1 has the usage lines, flags and examples of every $v command"
	else
		not_ok "berth-$v.1 has the usage lines, flags and examples of every $v command" "missing:$missing"
	fi
done
n_ex=$(grep -l '^\.SH EXAMPLES$' "$man"/berth-*.1 | wc -l)
if [ "$n_ex" -ge 10 ] && grep -q '^\.SH EXAMPLES$' "$man/berth-launch.1"; then
	ok "$n_ex pages have an EXAMPLES section (berth-launch.1 among them)"
else
	not_ok "pages have an EXAMPLES section" "$n_ex pages with one"
fi
pages=$(cd "$man" && ls berth-*.1 | sed 's/^berth-//; s/\.1$//' | sort | tr '\n' ' ')
want=$(printf '%s\n' $verbs | sort | tr '\n' ' ')
if [ "$pages" = "$want" ]; then
	ok "a page for each verb, none for a verb that is not"
else
	not_ok "a page for each verb, none for a verb that is not" "pages: $pages" "verbs: $want"
fi

# 3. berthd.8 says what berthd --help says
h=$("$berthd" --help)
text=$(plain "$man/berthd.8")
missing=
for f in $(printf '%s\n' "$h" | grep -Eo -- '--[a-z-]+|^  -[a-zA-Z]' | tr -d ' '); do
	grep -qF -- "$f" <<<"$text" || missing="$missing $f"
done
for e in $(printf '%s\n' "$h" | awk '/^Environment:/ { on = 1; next } on && NF { print $1 }'); do
	grep -qF -- "$e" <<<"$text" || missing="$missing $e"
done
if [ -z "$missing" ] && grep -q '^\.SH SIGNALS' "$man/berthd.8" && grep -q '^\.SH FILES' "$man/berthd.8"; then
	ok "berthd.8 has berthd --help's options and environment, files and signals"
else
	not_ok "berthd.8 has berthd --help's options and environment, files and signals" "missing:$missing"
fi
echo "1..$n"
exit 0
