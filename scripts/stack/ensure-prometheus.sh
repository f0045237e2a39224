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
sh "$(dirname "$0")/apt-install.sh" prometheus
command -v prometheus >/dev/null 2>&1
