#!/usr/bin/env bash
# Time to start one container publishing N ports (N = 1, 100, 1,000; 10,000 for berth): berth's
# network attach (netcore NetworkManager: address, veth, routes, firewall, records) against a real
# Debian dockerd 20.10 running `docker run -d -p A-B:A-B` (network, docker-proxy per port, rules,
# runc start). Docker's N=1 time is its fixed container start cost, so the table also shows
# what the ports themselves cost (t(N) - t(1)). Everything runs in throwaway namespaces.
# Usage: benches/container-ports-compare.sh [--short]   (--short: N up to 100, for CI)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/berth/target}"
export DEBIAN_FRONTEND=noninteractive
need=()
command -v dockerd >/dev/null || [ -x /usr/sbin/dockerd ] || need+=(docker.io)
[ -x /bin/busybox ] || need+=(busybox-static)
command -v nft >/dev/null || need+=(nftables)
command -v ip >/dev/null || need+=(iproute2)
[ ${#need[@]} -eq 0 ] || { apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null; }
cargo build --release --quiet -p berth-benches --bin net-attach
ATTACH="$(realpath "$CARGO_TARGET_DIR/release/net-attach")"
SHORT=0; [ "${1:-}" = "--short" ] && SHORT=1

exec unshare --net --mount --pid --fork --mount-proc --propagation private -- bash -euo pipefail -c '
  ATTACH=$1 SHORT=$2 REPO=$3
  PATH=/usr/sbin:/usr/bin:/sbin:/bin
  mkdir -p /run/netns && mount -t tmpfs netns /run/netns
  ip link set lo up
  if [ "$SHORT" = 1 ]; then NS="1 100"; BERTH_NS="1 100"; SAMPLES=1; else NS="1 100 1000"; BERTH_NS="1 100 1000 10000"; SAMPLES=3; fi
  declare -A BERTH DOCKER DRULES
  for n in $BERTH_NS; do
    BERTH[$n]=$("$ATTACH" --ports "$n" --samples "$SAMPLES" | python3 -c "import json,sys; print(json.load(sys.stdin)[\"attach_ms_median\"])")
  done

  run=$(mktemp -d /tmp/berth-ports-compare.XXXXXX)
  mount -t tmpfs compare "$run"
  . "$REPO/scripts/throwaway-dockerd.sh"
  trap "dockerd_stop berth-ports-compare" EXIT
  dockerd_start "$run" berth-ports-compare
  DV=$(docker version --format "{{.Server.Version}}")
  busybox_image "$run" berth-bench/busybox sleep
  for n in $NS; do
    times=()
    for i in $(seq "$SAMPLES"); do
      t0=$(date +%s%N)
      docker run -d --name "p$n-$i" -p "20000-$((20000 + n - 1)):20000-$((20000 + n - 1))" berth-bench/busybox sleep 600 >/dev/null
      t1=$(date +%s%N)
      times+=($(( (t1 - t0) / 1000000 )))
      rules=$(iptables-save 2>/dev/null | grep -c -- "-j DNAT" || true)
      docker rm -f "p$n-$i" >/dev/null
    done
    DOCKER[$n]=$(printf "%s\n" "${times[@]}" | sort -n | sed -n "$(( (SAMPLES + 1) / 2 ))p")
    DRULES[$n]=$rules
  done
  echo
  echo "Container start with N published ports (median of $SAMPLES; dockerd $DV; berth: network attach only)"
  printf "%-8s %10s %14s %18s %14s %14s\n" N "berth ms" "docker run ms" "docker port cost" "docker/berth" "docker DNAT"
  for n in $BERTH_NS; do
    d=${DOCKER[$n]:-}
    if [ -n "$d" ]; then
      cost=$(( d - ${DOCKER[1]} ))
      printf "%-8s %10s %14s %18s %14s %14s\n" "$n" "${BERTH[$n]}" "$d" "$cost" "$(python3 -c "print(f\"{$d/${BERTH[$n]}:.0f}x\")")" "${DRULES[$n]}"
    else
      printf "%-8s %10s %14s %18s %14s %14s\n" "$n" "${BERTH[$n]}" "-" "-" "-" "-"
    fi
  done
  python3 - "${BERTH[1000]:-}" <<"PY"
import sys
if sys.argv[1]:
    b = float(sys.argv[1])
    verdict = "under" if b < 1000 else "OVER"
    print(f"berth, 1,000 ports: {b:.0f} ms ({verdict} the 1 s target)")
PY
' compare "$ATTACH" "$SHORT" "$PWD"
