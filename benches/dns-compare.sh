#!/usr/bin/env bash
# Builds berth-net and berth-dns, installs the peers, and compares resolvers answering container
# names from inside a container's network namespace: berth-dns, aardvark-dns (podman), dnsmasq and
# Docker's embedded resolver (a throwaway dockerd), with dnsperf: queries/s, p50/p99 at half of
# berth's peak, and how soon a new name is answered. Everything runs in throwaway namespaces.
# Usage: benches/dns-compare.sh [--short]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/berth/target}"
need=()
command -v dnsperf >/dev/null || need+=(dnsperf)
command -v dnsmasq >/dev/null || [ -x /usr/sbin/dnsmasq ] || need+=(dnsmasq-base)
[ -x /usr/lib/podman/aardvark-dns ] || need+=(aardvark-dns)
command -v dockerd >/dev/null || [ -x /usr/sbin/dockerd ] || need+=(docker.io)
[ -x /bin/busybox ] || need+=(busybox-static)
for c in ip nft nsenter unshare; do command -v $c >/dev/null || need+=($c); done
if [ ${#need[@]} -gt 0 ]; then
  pkgs=$(printf '%s\n' "${need[@]}" | sed 's/^ip$/iproute2/; s/^nft$/nftables/; s/^nsenter$/util-linux/; s/^unshare$/util-linux/' | sort -u)
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq $pkgs
fi
cargo build --release --quiet -p netcore --bin berth-dns --bin berth-net
exec python3 benches/dns_compare.py "$@"
