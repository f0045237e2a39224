#!/bin/sh
# Install Debian packages for the native stack test: `sh apt-install.sh PACKAGE...`.
# The ensure-*.sh scripts call this when their program is missing (CI machines start
# clean). A policy-rc.d that refuses service starts keeps each package's postinst from
# starting its own server (PostgreSQL on 5432, nginx on 80, Prometheus on 9090): the tests
# run private servers in temporary folders.
set -eu

if ! command -v apt-get >/dev/null 2>&1; then
    echo "apt-install: apt-get not found; install $* by hand" >&2
    exit 1
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
fi
echo "apt-install: installing $* from Debian's packages"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
    $sudo chmod +x "$policy"
    trap '$sudo rm -f "$policy"' EXIT
fi
$sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
