#!/usr/bin/env bash
# `docker build` of the same multi-stage Dockerfile (11 steps: two stages, WORKDIR, a COPY of a
# 50 MB context directory, two RUNs, COPY --from, COPY, ENV, LABEL, CMD) by berthd and, in the
# same run, a throwaway Debian dockerd's legacy builder (the docker CLI with DOCKER_BUILDKIT=0
# drives both) and Debian's buildah (`buildah bud`, its own storage under the run directory).
# Three cases: cold (--no-cache), no change (every step cached), one file of the 50 MB changed
# (the big COPY and what follows rebuilt). Prints the medians over R rounds and the ratios.
# Targets (issue 19): at least 2x faster than dockerd in each case, at least as fast as buildah,
# a no-change rebuild under 100 ms.
# Usage: benches/build-compare.sh [--short]   (--short: 1 round, a 10 MB context, for CI; else 5)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/berth/target}"
export DEBIAN_FRONTEND=noninteractive
need=()
command -v dockerd >/dev/null || [ -x /usr/sbin/dockerd ] || need+=(docker.io)
command -v buildah >/dev/null || need+=(buildah)
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
  if [ "$SHORT" = 1 ]; then R=1; MB=10; else R=5; MB=50; fi
  run=$(mktemp -d /tmp/berth-build-bench.XXXXXX)
  mount -t tmpfs -o size=4g compare "$run"
  echo "nameserver 127.0.0.1" > "$run/resolv.conf"
  mkdir -p "$run/rootfs/bin"; cp /bin/busybox "$run/rootfs/bin/"
  for a in sh cat md5sum echo; do ln -s busybox "$run/rootfs/bin/$a"; done
  tar -C "$run/rootfs" -cf "$run/busybox.tar" .
  export DOCKER_CONFIG=$run/docker-config DOCKER_BUILDKIT=0
  mkdir -p "$DOCKER_CONFIG"; echo "{}" > "$DOCKER_CONFIG/config.json"
  ctx=$run/ctx
  mkdir -p "$ctx/data"
  for i in $(seq "$MB"); do head -c 1048576 /dev/urandom > "$ctx/data/f$i.bin"; done
  echo small > "$ctx/small.txt"
  cat > "$ctx/Dockerfile" <<EOF
FROM berth-bench/busybox AS build
WORKDIR /src
COPY data/ ./data/
RUN cat data/* | md5sum > /sum
RUN echo built > /out
FROM berth-bench/busybox
ENV APP=bench
COPY --from=build /sum /out /app/
COPY small.txt /app/
LABEL bench=build
CMD ["cat", "/app/sum"]
EOF
  ms() { echo $(( ($2 - $1) / 1000000 )); }
  # R rounds of: cold (--no-cache), no change, one data file changed; each case'"'"'s ms.
  rounds() {
    local build=$1 i t0 t1 t2 t3 cold=() same=() one=()
    for i in $(seq "$R"); do
      t0=$(date +%s%N); $build --no-cache >"$run/b.log" 2>&1 || { cat "$run/b.log" >&2; exit 1; }
      t1=$(date +%s%N); $build >"$run/b.log" 2>&1 || { cat "$run/b.log" >&2; exit 1; }
      t2=$(date +%s%N)
      head -c 1048576 /dev/urandom > "$ctx/data/f1.bin"
      t3=$(date +%s%N); $build >"$run/b.log" 2>&1 || { cat "$run/b.log" >&2; exit 1; }
      t4=$(date +%s%N)
      cold+=($(ms $t0 $t1)); same+=($(ms $t1 $t2)); one+=($(ms $t3 $t4))
    done
    echo "{\"cold_ms\": [$(IFS=,; echo "${cold[*]}")], \"nochange_ms\": [$(IFS=,; echo "${same[*]}")], \"onefile_ms\": [$(IFS=,; echo "${one[*]}")]}"
  }
  dk() { docker build -q -t bench:1 "$@" "$ctx"; }
  bah() { buildah --root "$run/buildah/root" --runroot "$run/buildah/runroot" --storage-driver overlay \
      bud --layers -q --isolation oci -t bench:1 "$@" "$ctx"; }

  "$BIN/berth-image" --data-root "$run/berth/data" import "$run/busybox.tar" berth-bench/busybox >/dev/null
  "$BIN/berthd" --data-root "$run/berth/data" --exec-root "$run/berth/exec" -H "unix://$run/berth.sock" \
    --shim "$BIN/berth-shim" --resolv-conf "$run/resolv.conf" --cgroup-parent berth-build-bench --log-level error &
  BPID=$!
  . "$REPO/scripts/throwaway-dockerd.sh"
  cleanup() {
    DOCKER_HOST=unix://$run/berth.sock docker rm -f $(DOCKER_HOST=unix://$run/berth.sock docker ps -aq 2>/dev/null) >/dev/null 2>&1 || true
    kill $BPID 2>/dev/null && wait $BPID 2>/dev/null || true
    dockerd_stop berth-build-bench-docker
    for d in /sys/fs/cgroup/*/berth-build-bench /sys/fs/cgroup/berth-build-bench; do
      [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true
    done
    umount -R "$run" 2>/dev/null || umount -l "$run" 2>/dev/null || true
    rmdir "$run" 2>/dev/null || true
  }
  trap cleanup EXIT
  export DOCKER_HOST=unix://$run/berth.sock
  for _ in $(seq 100); do docker version >/dev/null 2>&1 && break; sleep 0.1; done
  B=$(rounds dk)
  [ "$(docker run --rm bench:1 | wc -c)" -gt 30 ] || { echo "berthd: the built image does not run" >&2; exit 1; }

  mkdir -p "$run/docker"
  dockerd_start "$run/docker" berth-build-bench-docker
  DV=$(docker version --format "{{.Server.Version}}")
  busybox_image "$run/docker" berth-bench/busybox sh cat md5sum echo
  D=$(rounds dk)

  c=$(buildah --root "$run/buildah/root" --runroot "$run/buildah/runroot" --storage-driver overlay from scratch)
  buildah --root "$run/buildah/root" --runroot "$run/buildah/runroot" --storage-driver overlay copy "$c" "$run/rootfs" / >/dev/null
  buildah --root "$run/buildah/root" --runroot "$run/buildah/runroot" --storage-driver overlay commit -q "$c" berth-bench/busybox >/dev/null
  H=$(rounds bah)
  HV=$(buildah --version | cut -d" " -f3)

  python3 "$REPO/benches/build_compare.py" "$B" "$D" "$H" "$R" "$MB" "$DV" "$HV"
' build-compare "$BIN" "$SHORT" "$(pwd)"
