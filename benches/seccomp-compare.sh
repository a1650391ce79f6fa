#!/usr/bin/env bash
# What the default seccomp filter costs: `docker run --rm --network none IMAGE true` latency
# (median of N) with the default profile and with `--security-opt seccomp=unconfined`, for
# berthd and, in the same run, a throwaway Debian dockerd; then a syscall-heavy container (`dd`
# of D one-byte blocks: 2·D read/write calls) with and without the filter, on both.
# Target (issue 17): the filter costs berth at most 5 ms per start.
# Usage: benches/seccomp-compare.sh [--short]   (--short: 5 samples, 200k blocks, for CI; else
# 20 samples, 2M blocks)
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
cargo build --release --quiet -p berthd --bin berthd -p engine --bin berth-shim --bin berth-image -p portproxy --bin berth-proxy
BIN="$(realpath "$CARGO_TARGET_DIR/release")"
SHORT=0; [ "${1:-}" = "--short" ] && SHORT=1

exec unshare --net --mount --pid --fork --mount-proc --propagation private -- bash -euo pipefail -c '
  BIN=$1 SHORT=$2 REPO=$3
  PATH=/usr/sbin:/usr/bin:/sbin:/bin
  ip link set lo up
  if [ "$SHORT" = 1 ]; then N=5; D=200000; else N=20; D=2000000; fi
  run=$(mktemp -d /tmp/berth-seccomp-compare.XXXXXX)
  mount -t tmpfs compare "$run"
  echo "nameserver 127.0.0.1" > "$run/resolv.conf"
  mkdir -p "$run/rootfs/bin"; cp /bin/busybox "$run/rootfs/bin/"
  for c in true dd; do ln -s busybox "$run/rootfs/bin/$c"; done
  tar -C "$run/rootfs" -cf "$run/busybox.tar" .
  med() { python3 -c "import sys,statistics; print(round(statistics.median(float(x) for x in sys.argv[1:]),1))" "$@"; }
  ms() { local t0 t1; t0=$(date +%s%N); "$@" >/dev/null 2>&1; t1=$(date +%s%N); echo $(( (t1 - t0) / 1000000 )); }
  # Filtered and unconfined runs alternate, so drift in the load of the machine hits both alike.
  pair() {
    local n=$1 a=() b=() i; shift
    for i in $(seq $((n + 1))); do
      a+=($(ms docker run --rm --network none "$@"))
      b+=($(ms docker run --rm --network none --security-opt seccomp=unconfined "$@"))
    done
    echo "$(med "${a[@]:1}") $(med "${b[@]:1}")"
  }
  # One daemon at DOCKER_HOST: start latency and dd, filtered and not, into R[$1_...].
  declare -A R
  measure() {
    local who=$1 p
    p=($(pair $N berth-bench/busybox true)); R[${who}_start]=${p[0]}; R[${who}_start_u]=${p[1]}
    p=($(pair 3 berth-bench/busybox dd if=/dev/zero of=/dev/null bs=1 count=$D)); R[${who}_dd]=${p[0]}; R[${who}_dd_u]=${p[1]}
  }

  "$BIN/berth-image" --data-root "$run/berth/data" import "$run/busybox.tar" berth-bench/busybox >/dev/null
  "$BIN/berthd" --data-root "$run/berth/data" --exec-root "$run/berth/exec" -H "unix://$run/berth.sock" \
    --resolv-conf "$run/resolv.conf" --cgroup-parent berth-seccomp-bench --log-level error &
  BPID=$!
  . "$REPO/scripts/throwaway-dockerd.sh"
  cleanup() {
    kill $BPID 2>/dev/null && wait $BPID 2>/dev/null || true
    dockerd_stop berth-seccomp-bench-docker
    for d in /sys/fs/cgroup/*/berth-seccomp-bench; do [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true; done
  }
  trap cleanup EXIT
  export DOCKER_CONFIG=$run/docker-config DOCKER_HOST=unix://$run/berth.sock
  for _ in $(seq 100); do docker version >/dev/null 2>&1 && break; sleep 0.1; done
  measure berth
  mkdir -p "$run/docker"
  dockerd_start "$run/docker" berth-seccomp-bench-docker --bridge=none --iptables=false
  docker import "$run/busybox.tar" berth-bench/busybox >/dev/null
  DV=$(docker version --format "{{.Server.Version}}")
  measure docker

  python3 - "$D" "$DV" "${R[berth_start]}" "${R[berth_start_u]}" "${R[docker_start]}" "${R[docker_start_u]}" \
    "${R[berth_dd]}" "${R[berth_dd_u]}" "${R[docker_dd]}" "${R[docker_dd_u]}" <<"PY"
import sys
d, dv = int(sys.argv[1]), sys.argv[2]
bs, bsu, ds, dsu, bd, bdu, dd, ddu = map(float, sys.argv[3:])
print(f"run --rm true, median ms: berth {bs} (unconfined {bsu}), docker {dv} {ds} (unconfined {dsu})")
verdict = "met" if bs - bsu <= 5 else "MISSED"
print(f"  seccomp cost per start: berth {bs - bsu:+.1f} ms, docker {ds - dsu:+.1f} ms; target: berth <= 5 ms: {verdict}")
print(f"  berth start with the filter vs docker with its filter: {ds / bs:.2f}x faster")
calls = 2 * d / 1e6
print(f"dd of {d} 1-byte blocks ({calls:.1f}M syscalls), median ms: berth {bd} (unconfined {bdu}), docker {dd} (unconfined {ddu})")
print(f"  filter overhead: berth {(bd - bdu) / calls:+.1f} ms per million syscalls ({(bd - bdu) / max(bdu - bsu, 1) * 100:+.0f}%), docker {(dd - ddu) / calls:+.1f} ms per million ({(dd - ddu) / max(ddu - dsu, 1) * 100:+.0f}%)")
PY
' seccomp-compare "$BIN" "$SHORT" "$PWD"
