#!/bin/sh
# Make sure nginx is on this machine: the native stack test (and the router's slow-client
# test) run a private nginx in front of the router, as docker-compose does. CI machines
# start clean, so install Debian's package when it is missing. The package's own service
# is not needed and is not started here (the tests run nginx with their own config).
set -eu

if command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; then
    exit 0
fi
sh "$(dirname "$0")/apt-install.sh" nginx
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]
