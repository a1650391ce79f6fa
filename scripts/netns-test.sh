#!/usr/bin/env bash
# Runs berth's privileged integration tests inside a throwaway outer namespace set:
# a new network namespace (so no test can touch this machine's real interfaces), a private mount
# namespace with its own /run/netns (so the namespaces tests create are invisible outside and vanish
# with it) and a PID namespace (so every process a test starts dies when the run ends, pass or fail).
#
# Usage: scripts/netns-test.sh [extra cargo test args...]
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "netns-test: needs root (network namespaces, veth, nftables); skipping privileged tests" >&2
  exit 1
fi

need=()
command -v ip >/dev/null || need+=(iproute2)
command -v nft >/dev/null || need+=(nftables)
command -v unshare >/dev/null || need+=(util-linux)
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq "${need[@]}"
fi

# Build outside (network for crates may be needed); the namespace has no network at all.
cargo test --workspace --no-run --quiet "$@"

mkdir -p /run/netns
exec unshare --net --mount --pid --fork --mount-proc --propagation private -- bash -euo pipefail -c '
  mount -t tmpfs berth-netns /run/netns
  ip link set lo up
  export BERTH_NETNS_TEST=1
  cargo test --offline --workspace --quiet --test "netns*" "$@" -- --test-threads=1
' netns-test "$@"
