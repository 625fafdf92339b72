#!/bin/bash
# tests/lint/t_format.sh: the C sources are as `make format` writes them (.clang-format,
# cli/.clang-format), so that the style the tree is written in stays the one the tool
# keeps. clang-format 14 is Debian 12's and is in scripts/deps.sh's test dependencies;
# another version may wrap differently, so only that one is asked. TAP output; reads the
# sources only.
srcdir=${BERTH_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$srcdir" || exit 1
cf=${CLANG_FORMAT:-clang-format}
echo "1..1"
if ! command -v "$cf" >/dev/null; then
	echo "ok 1 # SKIP $cf not found (apt-get install clang-format)"
	exit 0
fi
case $("$cf" --version) in
*" version 14."*) ;;
*)
	echo "ok 1 # SKIP $("$cf" --version): the tree is formatted with clang-format 14"
	exit 0
	;;
esac
files=$(find agent bench cli daemon images lib storage tests -name '*.[ch]' -type f | LC_ALL=C sort)
out=$("$cf" --style=file --dry-run $files 2>&1)
if [ -z "$out" ]; then
	echo "ok 1 - $(echo "$files" | wc -l) files as make format writes them"
else
	echo "not ok 1 - files that make format would change:"
	echo "$out" | grep -o '^[^:]*\.[ch]' | sort -u | sed 's/^/# /'
	exit 1
fi
