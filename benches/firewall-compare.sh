#!/usr/bin/env bash
# Builds fw-publish and tiny-http, installs the tools, and compares berth's firewall (constant rules,
# one map element per published port) with the one-rule-per-port layout Docker and netavark use:
# time to publish the Nth port, new connections/s and UDP packets/s through DNAT with 1 and 10,000
# published ports. Everything runs in throwaway namespaces.
# Usage: benches/firewall-compare.sh [--short]
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
for c in iperf3 wrk ip ss nft nsenter unshare; do command -v $c >/dev/null || need+=($c); done
if [ ${#need[@]} -gt 0 ]; then
  pkgs=$(printf '%s\n' "${need[@]}" | sed 's/^ip$/iproute2/; s/^ss$/iproute2/; s/^nft$/nftables/; s/^nsenter$/util-linux/; s/^unshare$/util-linux/' | sort -u)
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq $pkgs
fi
cargo build --release --quiet -p berth-benches --bin fw-publish --bin tiny-http
exec python3 benches/firewall_compare.py "$@"
