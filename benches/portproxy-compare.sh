#!/usr/bin/env bash
# Builds berth-proxy and the bench helpers, installs the peers, and runs the portproxy comparison
# (berth-proxy vs docker-proxy vs socat vs the direct path) in a throwaway namespace.
# Usage: benches/portproxy-compare.sh [--short]
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
for c in iperf3 wrk socat ip nsenter; do command -v $c >/dev/null || need+=($c); done
command -v docker-proxy >/dev/null || [ -x /usr/sbin/docker-proxy ] || need+=(docker.io)
if [ ${#need[@]} -gt 0 ]; then
  pkgs=$(printf '%s\n' "${need[@]}" | sed 's/^ip$/iproute2/; s/^nsenter$/util-linux/' | sort -u)
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq $pkgs
fi
cargo build --release --quiet -p portproxy -p berth-benches
exec python3 benches/portproxy_compare.py "$@"
