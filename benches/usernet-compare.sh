#!/usr/bin/env bash
# Compares userspace network stacks for a network namespace in one run: slirp4netns, pasta (passt)
# and berth-slirp. Each stack serves its own fresh network namespace (10.0.2.100/24, gateway 10.0.2.2
# = the host's 127.0.0.1, MTU 65520, a TCP+UDP port published on the host's 127.0.0.1); traffic
# stays on the host's loopback and in those namespaces. Figures: TCP throughput ns->host and
# host->ns (1 and 8 streams), UDP packets/s, new TCP connections/s with p99, the stack's CPU seconds
# per Gbit and its RSS with 1,000 open flows. Prints one table with berth-slirp's ratios to the peers.
#
# Usage: benches/usernet-compare.sh [--short] [--rounds N] [--time S] [--conns N]
#                                   [--stacks slirp4netns,pasta,berth-slirp] [--json FILE]
#   --short: 1 s iperf3 runs, one round, 2,000 connections (what CI runs); default: 3 s runs,
#            median of 3 interleaved rounds, 5,000 connections.
# BERTH_SLIRP: a berth-slirp binary to use instead of building one (cargo build --release).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${BERTH_SLIRP:-}" ]; then
  cargo build --release --quiet -p netcore --bin berth-slirp
  export BERTH_SLIRP="${CARGO_TARGET_DIR:-target}/release/berth-slirp"
fi

need=()
command -v slirp4netns >/dev/null || need+=(slirp4netns)
command -v pasta >/dev/null || need+=(passt)
command -v iperf3 >/dev/null || need+=(iperf3)
command -v python3 >/dev/null || need+=(python3)
for c in ip ss nsenter unshare setpriv; do command -v $c >/dev/null || need+=($c); done
if [ ${#need[@]} -gt 0 ]; then
  pkgs=$(printf '%s\n' "${need[@]}" | sed 's/^ip$/iproute2/; s/^ss$/iproute2/; s/^nsenter$/util-linux/; s/^unshare$/util-linux/; s/^setpriv$/util-linux/' | sort -u)
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq $pkgs >/dev/null
fi

# 1,000 held flows need as many descriptors in the client, the host server and the stack
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

# The python side stops what it started; this trap is the backstop (a killed python): it ends
# every process the run recorded, by PID (checked against its start time, so a reused PID is spared).
state=$(mktemp -d /tmp/usernet-compare.XXXXXX)
export USERNET_PIDFILE="$state/pids"
: >"$USERNET_PIDFILE"
py=""
cleanup() {
  local rc=$?
  trap - EXIT INT TERM HUP
  if [ -n "$py" ] && kill -0 "$py" 2>/dev/null; then
    kill -TERM "$py" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$py" 2>/dev/null || break; sleep 0.1; done
  fi
  # each line: PID and its start time (field 22 of /proc/PID/stat), so a reused PID is left alone
  ours() { [ -r "/proc/$1/stat" ] && [ "$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f20)" = "$2" ]; }
  while read -r pid start; do
    [ -n "$pid" ] && ours "$pid" "$start" && kill -TERM "$pid" 2>/dev/null || true
  done <"$USERNET_PIDFILE"
  sleep 0.2
  while read -r pid start; do
    [ -n "$pid" ] && ours "$pid" "$start" && kill -KILL "$pid" 2>/dev/null || true
  done <"$USERNET_PIDFILE"
  rm -rf "$state"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

python3 benches/usernet_compare.py "$@" &
py=$!
rc=0
wait "$py" || rc=$?
py=""  # reaped: its PID may be reused now
exit "$rc"
