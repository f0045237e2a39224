#!/bin/sh
# Make sure PostgreSQL's server binaries (initdb, postgres) are on this machine: the native
# stack test runs its own server from them. CI machines start clean, so install Debian's
# package when they are missing. The package's own cluster service is not needed and is not
# started here (the test runs a private server in a temporary folder).
set -eu

if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1; then
    exit 0
fi
sh "$(dirname "$0")/apt-install.sh" postgresql
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1
