#!/usr/bin/env bash
# Builds berth-image, installs the peers, and compares pull, push and unpack of a ~100 MB
# four-layer image against Debian's docker-registry on loopback: berth vs skopeo copy, and
# berth's extractor vs tar -xzf. See benches/image_transfer_compare.py.
# Usage: benches/image-transfer-compare.sh [--short]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/berth/target}"
need=()
for c in docker-registry skopeo unshare; do command -v $c >/dev/null || need+=($c); done
if [ ${#need[@]} -gt 0 ]; then
  pkgs=$(printf '%s\n' "${need[@]}" | sed 's/^unshare$/util-linux/' | sort -u)
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq $pkgs
fi
cargo build --release --quiet -p engine --bin berth-image
exec python3 benches/image_transfer_compare.py "$@"
