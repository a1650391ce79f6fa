#!/usr/bin/env bash
# API latency under load: C concurrent clients doing `ps` and `inspect` (GET /containers/json and
# GET /containers/NAME/json, alternating, each client on its own keep-alive connection) for S
# seconds against berthd and, in the same run, a throwaway Debian dockerd, each holding the same
# 10 running busybox containers. Prints requests per second and p99, and the ratios.
# Target (issue 7): berthd at least 2x dockerd's requests per second, with a lower p99.
# Usage: benches/api-compare.sh [--short]   (--short: 20 clients for 3 s, for CI)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/berth/target}"
export DEBIAN_FRONTEND=noninteractive
need=()
command -v dockerd >/dev/null || [ -x /usr/sbin/dockerd ] || need+=(docker.io)
[ -x /bin/busybox ] || need+=(busybox-static)
command -v runc >/dev/null || [ -x /usr/sbin/runc ] || need+=(runc)
command -v nft >/dev/null || need+=(nftables)
[ ${#need[@]} -eq 0 ] || { apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null; }
cargo build --release --quiet -p berth-benches --bin api-load -p berthd --bin berthd -p engine --bin berth-shim --bin berth-image
BIN="$(realpath "$CARGO_TARGET_DIR/release")"
SHORT=0; [ "${1:-}" = "--short" ] && SHORT=1

exec unshare --net --mount --pid --fork --mount-proc --propagation private -- bash -euo pipefail -c '
  BIN=$1 SHORT=$2 REPO=$3
  PATH=/usr/sbin:/usr/bin:/sbin:/bin
  ip link set lo up
  if [ "$SHORT" = 1 ]; then C=20; S=3; else C=100; S=10; fi
  run=$(mktemp -d /tmp/berth-api-compare.XXXXXX)
  mount -t tmpfs compare "$run"
  echo "nameserver 127.0.0.1" > "$run/resolv.conf"
  mkdir -p "$run/rootfs/bin"; cp /bin/busybox "$run/rootfs/bin/"; ln -s busybox "$run/rootfs/bin/sleep"
  tar -C "$run/rootfs" -cf "$run/busybox.tar" .
  jget() { python3 -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$1" "$2"; }

  # berthd
  "$BIN/berth-image" --data-root "$run/berth/data" import "$run/busybox.tar" berth-bench/busybox >/dev/null
  "$BIN/berthd" --data-root "$run/berth/data" --exec-root "$run/berth/exec" -H "unix://$run/berth.sock" \
    --resolv-conf "$run/resolv.conf" --cgroup-parent berth-api-bench --log-level error &
  BPID=$!
  . "$REPO/scripts/throwaway-dockerd.sh"
  cleanup() {
    DOCKER_HOST=unix://$run/berth.sock docker rm -f $(DOCKER_HOST=unix://$run/berth.sock docker ps -aq 2>/dev/null) >/dev/null 2>&1 || true
    kill $BPID 2>/dev/null && wait $BPID 2>/dev/null || true
    dockerd_stop berth-api-bench-docker
    for d in /sys/fs/cgroup/*/berth-api-bench; do [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true; done
  }
  trap cleanup EXIT
  export DOCKER_CONFIG=$run/docker-config
  for _ in $(seq 100); do DOCKER_HOST=unix://$run/berth.sock docker version >/dev/null 2>&1 && break; sleep 0.1; done
  for i in $(seq 10); do DOCKER_HOST=unix://$run/berth.sock docker run -d --name c$i berth-bench/busybox sleep 600 >/dev/null; done
  B=$("$BIN/api-load" --socket "$run/berth.sock" --clients $C --seconds $S --container c5)

  # dockerd
  mkdir -p "$run/docker"
  dockerd_start "$run/docker" berth-api-bench-docker
  DV=$(docker version --format "{{.Server.Version}}")
  busybox_image "$run/docker" berth-bench/busybox sleep
  for i in $(seq 10); do docker run -d --name c$i berth-bench/busybox sleep 600 >/dev/null; done
  D=$("$BIN/api-load" --socket "$run/docker/docker.sock" --clients $C --seconds $S --container c5)

  python3 "$REPO/benches/api_compare.py" "$B" "$D" "$C" "$S" "$DV"
' api-compare "$BIN" "$SHORT" "$(pwd)"
