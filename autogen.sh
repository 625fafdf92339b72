#!/bin/sh
# Regenerate the build system from configure.ac and Makefile.am.
set -e
cd "$(dirname "$0")"
autoreconf --install --force --warnings=all
# automake installs tap-driver.sh only on request; the tests use it.
cp -f "$(automake --print-libdir)/tap-driver.sh" build-aux/tap-driver.sh
