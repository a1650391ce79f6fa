#!/usr/bin/env bash
# C concurrent `docker run -d IMAGE sleep 600`, each its own docker CLI process, against berthd
# and, in the same run, a throwaway Debian dockerd, on each daemon's default bridge. Prints the
# wall time until all C containers run, the median and p99 of one run's latency, and the
# ratios. Target (engine core): berthd at least 3x faster than dockerd in wall time and p99.
# Usage: benches/concurrent-run-compare.sh [--short]   (--short: 10 clients, for CI; else 50)
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
cargo build --release --quiet -p berthd --bin berthd -p engine --bin berth-shim --bin berth-image
BIN="$(realpath "$CARGO_TARGET_DIR/release")"
SHORT=0; [ "${1:-}" = "--short" ] && SHORT=1

exec unshare --net --mount --pid --fork --mount-proc --propagation private -- bash -euo pipefail -c '
  BIN=$1 SHORT=$2 REPO=$3
  PATH=/usr/sbin:/usr/bin:/sbin:/bin
  ip link set lo up
  if [ "$SHORT" = 1 ]; then C=10; else C=50; fi
  run=$(mktemp -d /tmp/berth-concurrent-run.XXXXXX)
  mount -t tmpfs compare "$run"
  echo "nameserver 127.0.0.1" > "$run/resolv.conf"
  mkdir -p "$run/rootfs/bin"; cp /bin/busybox "$run/rootfs/bin/"; ln -s busybox "$run/rootfs/bin/sleep"
  tar -C "$run/rootfs" -cf "$run/busybox.tar" .
  export DOCKER_CONFIG=$run/docker-config
  # C clients at once; each prints its own latency in ms; then the wall time.
  burst() {
    local t0 t1 i
    t0=$(date +%s%N)
    for i in $(seq "$C"); do
      ( s=$(date +%s%N); docker run -d --name "r$i" berth-bench/busybox sleep 600 >/dev/null
        e=$(date +%s%N); echo $(( (e - s) / 1000000 )) > "$run/lat.$1.$i" ) &
    done
    wait
    t1=$(date +%s%N)
    echo "{\"wall_ms\": $(( (t1 - t0) / 1000000 )), \"lat_ms\": [$(cat "$run"/lat."$1".* | paste -sd,)]}"
  }

  "$BIN/berth-image" --data-root "$run/berth/data" import "$run/busybox.tar" berth-bench/busybox >/dev/null
  "$BIN/berthd" --data-root "$run/berth/data" --exec-root "$run/berth/exec" -H "unix://$run/berth.sock" \
    --shim "$BIN/berth-shim" --resolv-conf "$run/resolv.conf" --cgroup-parent berth-crun-bench --log-level error &
  BPID=$!
  . "$REPO/scripts/throwaway-dockerd.sh"
  cleanup() {
    DOCKER_HOST=unix://$run/berth.sock docker rm -f $(DOCKER_HOST=unix://$run/berth.sock docker ps -aq 2>/dev/null) >/dev/null 2>&1 || true
    kill $BPID 2>/dev/null && wait $BPID 2>/dev/null || true
    dockerd_stop berth-crun-bench-docker
    for d in /sys/fs/cgroup/*/berth-crun-bench; do [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true; done
  }
  trap cleanup EXIT
  export DOCKER_HOST=unix://$run/berth.sock
  for _ in $(seq 100); do docker version >/dev/null 2>&1 && break; sleep 0.1; done
  B=$(burst berth)
  [ "$(docker ps -q | wc -l)" = "$C" ] || { echo "berthd: not all $C containers run"; docker ps -a; exit 1; }

  mkdir -p "$run/docker"
  dockerd_start "$run/docker" berth-crun-bench-docker
  DV=$(docker version --format "{{.Server.Version}}")
  busybox_image "$run/docker" berth-bench/busybox sleep
  D=$(burst docker)
  [ "$(docker ps -q | wc -l)" = "$C" ] || { echo "dockerd: not all $C containers run"; exit 1; }

  python3 "$REPO/benches/concurrent_run_compare.py" "$B" "$D" "$C" "$DV"
' concurrent-run "$BIN" "$SHORT" "$(pwd)"
