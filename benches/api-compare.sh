#!/usr/bin/env bash
# API latency under load: C concurrent clients doing `ps` and `inspect` (GET /containers/json and
# GET /containers/NAME/json, alternating, each client on its own keep-alive connection) for S
# seconds against berthd and, in the same run, a throwaway Debian dockerd, each holding the same
# 10 running busybox containers. Prints requests per second and p99, and the ratios.
# Then the same again while each daemon is busy with images: a `docker load` of an M MB image
# and a `docker pull` of it from Debian's docker-registry on loopback, each in a loop.
# Targets: berthd at least 2x dockerd's requests per second with a lower p99 (issue 7); berthd's
# p99 while loading and pulling within 2x of its idle p99 (engine core).
# Usage: benches/api-compare.sh [--short]   (--short: 20 clients for 3 s and a 50 MB image, for
# CI; else 100 clients for 10 s and 500 MB)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/berth/target}"
export DEBIAN_FRONTEND=noninteractive
need=()
command -v dockerd >/dev/null || [ -x /usr/sbin/dockerd ] || need+=(docker.io)
[ -x /bin/busybox ] || need+=(busybox-static)
command -v runc >/dev/null || [ -x /usr/sbin/runc ] || need+=(runc)
command -v nft >/dev/null || need+=(nftables)
command -v docker-registry >/dev/null || need+=(docker-registry)
[ ${#need[@]} -eq 0 ] || { apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null; }
cargo build --release --quiet -p berth-benches --bin api-load -p berthd --bin berthd -p engine --bin berth-shim --bin berth-image
BIN="$(realpath "$CARGO_TARGET_DIR/release")"
SHORT=0; [ "${1:-}" = "--short" ] && SHORT=1

exec unshare --net --mount --pid --fork --mount-proc --propagation private -- bash -euo pipefail -c '
  BIN=$1 SHORT=$2 REPO=$3
  PATH=/usr/sbin:/usr/bin:/sbin:/bin
  ip link set lo up
  if [ "$SHORT" = 1 ]; then C=20; S=3; M=50; else C=100; S=10; M=500; fi
  run=$(mktemp -d /tmp/berth-api-compare.XXXXXX)
  mount -t tmpfs compare "$run"
  echo "nameserver 127.0.0.1" > "$run/resolv.conf"
  mkdir -p "$run/rootfs/bin"; cp /bin/busybox "$run/rootfs/bin/"; ln -s busybox "$run/rootfs/bin/sleep"
  tar -C "$run/rootfs" -cf "$run/busybox.tar" .
  # The image of the busy phase: M MB that do not compress, saved by berth (both daemons load it).
  mkdir -p "$run/big/data"
  head -c "${M}M" /dev/urandom > "$run/big/data/blob"
  tar -C "$run/big" -cf "$run/big.tar" .
  rm -rf "$run/big"
  "$BIN/berth-image" --data-root "$run/img" import "$run/big.tar" berth-bench/big:1 >/dev/null
  "$BIN/berth-image" --data-root "$run/img" save -o "$run/big-image.tar" berth-bench/big:1
  rm -rf "$run/img" "$run/big.tar"
  mkdir -p "$run/registry"
  RPORT=$(python3 -c "import socket; s=socket.socket(); s.bind((\"127.0.0.1\", 0)); print(s.getsockname()[1])")
  printf "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: 127.0.0.1:%s\n" "$run/registry" "$RPORT" > "$run/registry.yml"
  docker-registry serve "$run/registry.yml" >/dev/null 2>&1 &
  RPID=$!
  REF=127.0.0.1:$RPORT/bench/big:1
  # Loops of load + rmi and pull + rmi against DOCKER_HOST, until the file STOP appears.
  busy() {
    ( while [ ! -e "$run/STOP" ]; do docker load -q -i "$run/big-image.tar" >/dev/null 2>&1 || true; docker rmi berth-bench/big:1 >/dev/null 2>&1 || true; done ) &
    L=$!
    ( while [ ! -e "$run/STOP" ]; do docker pull -q "$REF" >/dev/null 2>&1 || true; docker rmi "$REF" >/dev/null 2>&1 || true; done ) &
    P=$!
    sleep 1
  }
  unbusy() { touch "$run/STOP"; wait $L $P 2>/dev/null || true; rm -f "$run/STOP"; }
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
    kill $RPID 2>/dev/null || true
    dockerd_stop berth-api-bench-docker
    for d in /sys/fs/cgroup/*/berth-api-bench; do [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true; done
  }
  trap cleanup EXIT
  export DOCKER_CONFIG=$run/docker-config
  for _ in $(seq 100); do DOCKER_HOST=unix://$run/berth.sock docker version >/dev/null 2>&1 && break; sleep 0.1; done
  for i in $(seq 10); do DOCKER_HOST=unix://$run/berth.sock docker run -d --name c$i berth-bench/busybox sleep 600 >/dev/null; done
  B=$("$BIN/api-load" --socket "$run/berth.sock" --clients $C --seconds $S --container c5)
  export DOCKER_HOST=unix://$run/berth.sock
  docker load -q -i "$run/big-image.tar" >/dev/null
  docker tag berth-bench/big:1 "$REF"; docker push -q "$REF" >/dev/null; docker rmi "$REF" >/dev/null
  busy
  BB=$("$BIN/api-load" --socket "$run/berth.sock" --clients $C --seconds $S --container c5)
  unbusy
  unset DOCKER_HOST

  # dockerd
  mkdir -p "$run/docker"
  dockerd_start "$run/docker" berth-api-bench-docker
  DV=$(docker version --format "{{.Server.Version}}")
  busybox_image "$run/docker" berth-bench/busybox sleep
  for i in $(seq 10); do docker run -d --name c$i berth-bench/busybox sleep 600 >/dev/null; done
  D=$("$BIN/api-load" --socket "$run/docker/docker.sock" --clients $C --seconds $S --container c5)
  busy
  DB=$("$BIN/api-load" --socket "$run/docker/docker.sock" --clients $C --seconds $S --container c5)
  unbusy

  python3 "$REPO/benches/api_compare.py" "$B" "$D" "$C" "$S" "$DV" "$BB" "$DB" "$M"
' api-compare "$BIN" "$SHORT" "$(pwd)"
