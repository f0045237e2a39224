#!/bin/sh
# Make sure `wrk` (the HTTP load generator, C with an event loop: not Python threads on the
# cores the servers use) is on this machine for bench/serving_bench.py. CI machines start
# clean, so install Debian's package when it is missing; a no-op once installed.
set -eu

if command -v wrk >/dev/null 2>&1; then
    exit 0
fi
sh "$(dirname "$0")/apt-install.sh" wrk
command -v wrk >/dev/null 2>&1
