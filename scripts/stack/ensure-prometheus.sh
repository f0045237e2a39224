#!/bin/sh
# Make sure Prometheus is on this machine: the native stack test runs its own server from
# Debian's binary, scraping the routers with prometheus/prometheus.yml (targets rewritten to
# loopback), and evaluates every Grafana dashboard query through its HTTP API. CI machines
# start clean, so install Debian's package when it is missing; the package's own service is
# not started (the test runs a private server in a temporary folder).
set -eu

if command -v prometheus >/dev/null 2>&1; then
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-prometheus: prometheus not found; install Prometheus (2.x)" >&2
    exit 1
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
fi
echo "ensure-prometheus: installing Prometheus from Debian's packages"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# policy-rc.d keeps the package's postinst from starting its own server on port 9090.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
    $sudo chmod +x "$policy"
    trap '$sudo rm -f "$policy"' EXIT
fi
$sudo apt-get install -y -qq --no-install-recommends prometheus >/dev/null
command -v prometheus >/dev/null
