#!/usr/bin/env bash
# `docker-compose up -d` and `down -v` of a 10-service project (two networks, a named volume per
# service, one published port) driven by Debian's docker-compose 1.29 against berthd and, in the
# same run, a throwaway Debian dockerd (its default bridge and iptables on, as installed). Prints
# the median wall time of each step over R rounds and the ratios, also net of the client's own
# time (a `docker-compose ps`, measured against each daemon). Target (API fidelity): berthd at
# least 3x faster than dockerd for both steps.
# Usage: benches/compose-compare.sh [--short]   (--short: 1 round, for CI; else 5)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/berth/target}"
export DEBIAN_FRONTEND=noninteractive
need=()
command -v dockerd >/dev/null || [ -x /usr/sbin/dockerd ] || need+=(docker.io)
command -v docker-compose >/dev/null || need+=(docker-compose)
[ -x /bin/busybox ] || need+=(busybox-static)
command -v runc >/dev/null || [ -x /usr/sbin/runc ] || need+=(runc)
command -v nft >/dev/null || need+=(nftables)
[ ${#need[@]} -eq 0 ] || { apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null; }
cargo build --release --quiet -p berthd --bin berthd -p engine --bin berth-shim --bin berth-image \
  -p portproxy --bin berth-proxy
BIN="$(realpath "$CARGO_TARGET_DIR/release")"
SHORT=0; [ "${1:-}" = "--short" ] && SHORT=1

exec unshare --net --mount --pid --fork --mount-proc --propagation private -- bash -euo pipefail -c '
  BIN=$1 SHORT=$2 REPO=$3
  PATH=/usr/sbin:/usr/bin:/sbin:/bin
  ip link set lo up
  if [ "$SHORT" = 1 ]; then R=1; else R=5; fi
  run=$(mktemp -d /tmp/berth-compose-bench.XXXXXX)
  mount -t tmpfs compare "$run"
  echo "nameserver 127.0.0.1" > "$run/resolv.conf"
  mkdir -p "$run/rootfs/bin"; cp /bin/busybox "$run/rootfs/bin/"
  for a in sh sleep httpd; do ln -s busybox "$run/rootfs/bin/$a"; done
  tar -C "$run/rootfs" -cf "$run/busybox.tar" .
  export DOCKER_CONFIG=$run/docker-config
  mkdir -p "$run/proj"
  {
    echo "version: \"2.4\""
    echo "services:"
    for i in $(seq 10); do
      echo "  s$i:"
      echo "    image: berth-bench/busybox"
      echo "    command: [\"sleep\", \"600\"]"
      echo "    init: true"
      echo "    volumes: [\"v$i:/data\"]"
      if [ $((i % 2)) = 0 ]; then echo "    networks: [front, back]"; else echo "    networks: [back]"; fi
      [ "$i" = 1 ] && echo "    ports: [\"127.0.0.1:18200:80\"]"
    done
    echo "volumes:"
    for i in $(seq 10); do echo "  v$i:"; done
    echo "networks:"
    echo "  front:"
    echo "  back:"
  } > "$run/proj/docker-compose.yml"
  # R rounds of up -d then down -v; each step'"'"'s milliseconds.
  rounds() {
    local i t0 t1 t2 ups=() downs=()
    for i in $(seq "$R"); do
      t0=$(date +%s%N)
      docker-compose -p bench -f "$run/proj/docker-compose.yml" up -d >"$run/up.log" 2>&1 || { cat "$run/up.log" >&2; exit 1; }
      t1=$(date +%s%N)
      [ "$(docker ps -q | wc -l)" = 10 ] || { echo "$1: not all 10 services run" >&2; docker ps -a >&2; exit 1; }
      docker-compose -p bench -f "$run/proj/docker-compose.yml" down -v >"$run/down.log" 2>&1 || { cat "$run/down.log" >&2; exit 1; }
      t2=$(date +%s%N)
      [ "$(docker ps -aq | wc -l)" = 0 ] || { echo "$1: containers left after down" >&2; exit 1; }
      ups+=($(( (t1 - t0) / 1000000 ))); downs+=($(( (t2 - t1) / 1000000 )))
    done
    # The client'"'"'s own cost (Python start, project load, one list call): the same for both.
    t0=$(date +%s%N)
    docker-compose -p bench -f "$run/proj/docker-compose.yml" ps >/dev/null
    t1=$(date +%s%N)
    echo "{\"up_ms\": [$(IFS=,; echo "${ups[*]}")], \"down_ms\": [$(IFS=,; echo "${downs[*]}")], \"client_ms\": $(( (t1 - t0) / 1000000 ))}"
  }

  "$BIN/berth-image" --data-root "$run/berth/data" import "$run/busybox.tar" berth-bench/busybox >/dev/null
  "$BIN/berthd" --data-root "$run/berth/data" --exec-root "$run/berth/exec" -H "unix://$run/berth.sock" \
    --shim "$BIN/berth-shim" --resolv-conf "$run/resolv.conf" --cgroup-parent berth-compose-bench --log-level error &
  BPID=$!
  . "$REPO/scripts/throwaway-dockerd.sh"
  cleanup() {
    DOCKER_HOST=unix://$run/berth.sock docker rm -f $(DOCKER_HOST=unix://$run/berth.sock docker ps -aq 2>/dev/null) >/dev/null 2>&1 || true
    kill $BPID 2>/dev/null && wait $BPID 2>/dev/null || true
    dockerd_stop berth-compose-bench-docker
    for d in /sys/fs/cgroup/*/berth-compose-bench /sys/fs/cgroup/berth-compose-bench; do
      [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true
    done
    umount "$run" 2>/dev/null || true
    rmdir "$run" 2>/dev/null || true
  }
  trap cleanup EXIT
  export DOCKER_HOST=unix://$run/berth.sock
  for _ in $(seq 100); do docker version >/dev/null 2>&1 && break; sleep 0.1; done
  B=$(rounds berthd)

  mkdir -p "$run/docker"
  dockerd_start "$run/docker" berth-compose-bench-docker
  DV=$(docker version --format "{{.Server.Version}}")
  busybox_image "$run/docker" berth-bench/busybox sleep sh httpd
  D=$(rounds dockerd)

  python3 "$REPO/benches/compose_compare.py" "$B" "$D" "$R" "$DV"
' compose-compare "$BIN" "$SHORT" "$(pwd)"
