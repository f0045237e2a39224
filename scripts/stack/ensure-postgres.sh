#!/bin/sh
# Make sure PostgreSQL's server binaries (initdb, postgres) are on this machine: the native
# stack test runs its own server from them. CI machines start clean, so install Debian's
# package when they are missing. The package's own cluster service is not needed and is not
# started here (the test runs a private server in a temporary folder).
set -eu

if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1; then
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-postgres: PostgreSQL server binaries not found; install PostgreSQL (initdb, postgres)" >&2
    exit 1
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
fi
echo "ensure-postgres: installing PostgreSQL from Debian's packages"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# policy-rc.d keeps the package's postinst from starting its own cluster on port 5432.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
    $sudo chmod +x "$policy"
    trap '$sudo rm -f "$policy"' EXIT
fi
$sudo apt-get install -y -qq --no-install-recommends postgresql >/dev/null
ls /usr/lib/postgresql/*/bin/initdb >/dev/null
