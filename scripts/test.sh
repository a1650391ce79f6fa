#!/usr/bin/env bash
# berth's whole test suite on a fresh Debian 12 machine, as root: installs what it needs, then runs
# formatting and lint checks, unit and loopback tests, the privileged namespace tests, a short fuzz
# of every target, the criterion benches in test mode and the short comparison benchmarks.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/berth/target}"
# One-shot builds gain nothing from incremental artifacts, which grew the cache past the disk.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
FUZZ_SECONDS="${FUZZ_SECONDS:-20}"

step() { printf '\n=== %s\n' "$*"; }

step "packages"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
  gcc libc6-dev iproute2 nftables util-linux procps python3 curl iperf3 wrk socat docker.io busybox-static \
  dnsperf dnsmasq-base aardvark-dns docker-registry skopeo apache2-utils runc podman netavark conmon \
  python3-venv openssl tini docker-compose systemd buildah slirp4netns passt >/dev/null
# docker-py (PyPI `docker`), the second independent API client of berthd's tests.
export BERTH_PY_VENV="${BERTH_PY_VENV:-/var/cache/berth/venv}"
[ -x "$BERTH_PY_VENV/bin/python" ] || python3 -m venv "$BERTH_PY_VENV"
"$BERTH_PY_VENV/bin/python" -c "import docker" 2>/dev/null || "$BERTH_PY_VENV/bin/pip" install -q docker

step "format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings

step "unit and loopback tests"
cargo test --workspace --quiet

step "privileged namespace tests"
scripts/netns-test.sh

step "a stock Docker daemon with berth-proxy as its userland proxy"
scripts/docker-compat.sh

step "fuzz (${FUZZ_SECONDS}s per target)"
if rustup toolchain list | grep -q nightly; then
  command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --quiet
  fuzz_failed=""
  for t in $(cd fuzz && cargo +nightly fuzz list); do
    mkdir -p "fuzz/corpus/$t"
    log=$(mktemp)
    # RUST_BACKTRACE=0: cargo-fuzz's own error would otherwise end in its backtrace.
    if (cd fuzz && RUST_BACKTRACE=0 cargo +nightly fuzz run "$t" "corpus/$t" "seeds/$t" -- \
         -max_total_time="$FUZZ_SECONDS" -print_final_stats=0 >"$log" 2>&1); then
      echo "$t: $(tail -n 1 "$log")"
    else
      # What the failure was (crash, leak, OOM, timeout) and the input, so a red CI says it.
      echo "$t: FAILED"
      grep -v -e '^#' -e 'NEW_FUNC' "$log" | tail -n 60
      for a in fuzz/artifacts/"$t"/*; do
        [ -f "$a" ] && { echo "artifact $a (base64):"; head -c 4096 "$a" | base64 -w 0; echo; }
      done
      fuzz_failed="$fuzz_failed $t"
    fi
    rm -f "$log"
  done
  [ -z "$fuzz_failed" ] || { echo "fuzz targets failed:$fuzz_failed" >&2; exit 1; }
else
  echo "no nightly toolchain: fuzz targets not run" >&2
  exit 1
fi

step "criterion benches (test mode)"
cargo bench --quiet -p berth-benches -- --test

step "portproxy comparison (short)"
benches/portproxy-compare.sh --short

step "firewall comparison (short)"
benches/firewall-compare.sh --short

step "userspace network stack vs slirp4netns and pasta (short)"
benches/usernet-compare.sh --short

step "container start with published ports vs dockerd (short)"
benches/container-ports-compare.sh --short

step "embedded DNS vs aardvark-dns, dnsmasq and Docker (short)"
benches/dns-compare.sh --short

step "image pull/push vs skopeo, unpack vs tar (short)"
benches/image-transfer-compare.sh --short

step "run --rm latency and 10 published containers vs Docker and podman (short)"
benches/run-compare.sh --short

step "Docker API under load, idle and while loading and pulling images: berthd vs dockerd (short)"
benches/api-compare.sh --short

step "concurrent docker run -d: berthd vs dockerd (short)"
benches/concurrent-run-compare.sh --short

step "docker-compose up -d / down -v of 10 services: berthd vs dockerd (short)"
benches/compose-compare.sh --short

step "the default seccomp filter's cost: berthd vs dockerd (short)"
benches/seccomp-compare.sh --short

step "docker build, cold / no change / one file changed: berthd vs dockerd and buildah (short)"
benches/build-compare.sh --short

echo
echo "all berth tests passed"
