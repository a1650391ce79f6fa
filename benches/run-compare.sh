#!/usr/bin/env bash
# `run --rm IMAGE true` latency (median of N) for berth, Docker (Debian docker.io, a throwaway
# dockerd) and podman (Debian), on the bridge and with --network none, and the time to start 50
# containers that each publish one port; all in the same run, inside a throwaway network, mount
# and PID namespace. berth is timed with its engine in-process (berthd's API comes with issue 7);
# Docker and podman through their CLIs, as a user runs them.
# Usage: benches/run-compare.sh [--short]   (--short: 5 samples, 10 containers, for CI)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/berth/target}"
export DEBIAN_FRONTEND=noninteractive
need=()
command -v dockerd >/dev/null || [ -x /usr/sbin/dockerd ] || need+=(docker.io)
command -v podman >/dev/null || need+=(podman)
[ -x /bin/busybox ] || need+=(busybox-static)
command -v runc >/dev/null || [ -x /usr/sbin/runc ] || need+=(runc)
command -v nft >/dev/null || need+=(nftables)
[ ${#need[@]} -eq 0 ] || { apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null; }
cargo build --release --quiet -p berth-benches --bin run-latency -p engine --bin berth-shim -p portproxy --bin berth-proxy
BIN="$(realpath "$CARGO_TARGET_DIR/release/run-latency")"
SHORT=0; [ "${1:-}" = "--short" ] && SHORT=1

exec unshare --net --mount --pid --fork --mount-proc --propagation private -- bash -euo pipefail -c '
  BIN=$1 SHORT=$2 REPO=$3
  PATH=/usr/sbin:/usr/bin:/sbin:/bin
  ip link set lo up
  if [ "$SHORT" = 1 ]; then N=5; C=10; else N=20; C=50; fi
  run=$(mktemp -d /tmp/berth-run-compare.XXXXXX)
  mount -t tmpfs compare "$run"
  med() { python3 -c "import sys,statistics; print(round(statistics.median(float(x) for x in sys.argv[1:]),1))" "$@"; }
  ms() { local t0 t1; t0=$(date +%s%N); "$@" >/dev/null; t1=$(date +%s%N); echo $(( (t1 - t0) / 1000000 )); }
  series() { local out=() i; for i in $(seq $((N + 2))); do out+=($(ms "$@")); done; med "${out[@]:2}"; }

  B_BR=$("$BIN" --root "$run/berth-br" --network bridge --samples "$N" --containers "$C")
  B_NONE=$("$BIN" --root "$run/berth-none" --network none --samples "$N")
  jget() { python3 -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$1" "$2"; }
  declare -A R
  R[berth_br]=$(jget "$B_BR" run_ms_median); R[berth_none]=$(jget "$B_NONE" run_ms_median)
  R[berth_c]=$(jget "$B_BR" start_all_ms)

  . "$REPO/scripts/throwaway-dockerd.sh"
  P="podman --root $run/podman/root --runroot $run/podman/run --cgroup-manager cgroupfs --events-backend file --log-level error"
  cleanup() { dockerd_stop berth-run-compare; $P rm -f -a >/dev/null 2>&1 || true; $P system reset -f >/dev/null 2>&1 || true; for d in /sys/fs/cgroup/*/libpod_parent /sys/fs/cgroup/*/berth-bench; do [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true; done; }
  trap cleanup EXIT
  mkdir -p "$run/docker"
  dockerd_start "$run/docker" berth-run-compare
  DV=$(docker version --format "{{.Server.Version}}")
  busybox_image "$run/docker" berth-bench/busybox true sleep
  R[docker_br]=$(series docker run --rm berth-bench/busybox true)
  R[docker_none]=$(series docker run --rm --network none berth-bench/busybox true)
  R[docker_c]=$(ms bash -c "for i in \$(seq $C); do docker run -d -p \$((30000 + i)):80 berth-bench/busybox sleep 600 >/dev/null; done")
  docker rm -f $(docker ps -aq) >/dev/null

  mkdir -p "$run/podman/rootfs/bin"; cp /bin/busybox "$run/podman/rootfs/bin/"
  for c in true sleep; do ln -sf busybox "$run/podman/rootfs/bin/$c"; done
  tar -C "$run/podman/rootfs" -c . | $P import - berth-bench/busybox >/dev/null 2>&1
  PV=$($P version --format "{{.Client.Version}}")
  # --ulimit host: podman asks for rlimits above this host hard limit otherwise (no CAP_SYS_RESOURCE).
  if perr=$($P run --rm --ulimit host berth-bench/busybox true 2>&1); then
    R[podman_br]=$(series $P run --rm --ulimit host berth-bench/busybox true)
    R[podman_none]=$(series $P run --rm --ulimit host --network none berth-bench/busybox true)
    R[podman_c]=$(ms bash -c "for i in \$(seq $C); do $P run -d --ulimit host -p \$((30000 + i)):80 berth-bench/busybox sleep 600 >/dev/null; done")
  else
    echo "podman does not run here, left out: $perr" >&2
    R[podman_br]=nan; R[podman_none]=nan; R[podman_c]=nan
  fi

  ratio() { python3 -c "import sys; a, b = map(float, sys.argv[1:]); print(\"n/a\" if a != a else f\"{a/b:.1f}x\")" "$1" "$2"; }
  echo
  echo "run --rm IMAGE true, median of $N (ms; dockerd $DV, podman $PV; berth in-process engine, runc)"
  printf "%-22s %10s %10s %10s %14s %14s\n" "" berth docker podman "docker/berth" "podman/berth"
  printf "%-22s %10s %10s %10s %14s %14s\n" "bridge" "${R[berth_br]}" "${R[docker_br]}" "${R[podman_br]}" "$(ratio ${R[docker_br]} ${R[berth_br]})" "$(ratio ${R[podman_br]} ${R[berth_br]})"
  printf "%-22s %10s %10s %10s %14s %14s\n" "--network none" "${R[berth_none]}" "${R[docker_none]}" "${R[podman_none]}" "$(ratio ${R[docker_none]} ${R[berth_none]})" "$(ratio ${R[podman_none]} ${R[berth_none]})"
  printf "%-22s %10s %10s %10s %14s %14s\n" "$C containers, -p each" "${R[berth_c]}" "${R[docker_c]}" "${R[podman_c]}" "$(ratio ${R[docker_c]} ${R[berth_c]})" "$(ratio ${R[podman_c]} ${R[berth_c]})"
  python3 - "${R[berth_br]}" "${R[docker_br]}" "${R[podman_br]}" "${R[berth_none]}" "${R[docker_none]}" "${R[podman_none]}" <<PY
import sys
b, d, p, bn, dn, pn = map(float, sys.argv[1:])
import math
ok = b <= d / 3 and bn <= dn / 3 and all(math.isnan(x) or y <= x / 2 for x, y in ((p, b), (pn, bn)))
print("target (at most a third of Docker, half of podman, bridge and none):", "met" if ok else "MISSED")
PY
' run-compare "$BIN" "$SHORT" "$(pwd)"
