#!/usr/bin/env bash
# The main job, as far as berth goes today: a "container" (a network namespace running a web
# server) with port 80 published on the host's 127.0.0.1:8080 by berth-proxy, fetched with curl.
# Runs in a throwaway namespace, so it leaves nothing behind on this machine.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/berth/target}"
export DEBIAN_FRONTEND=noninteractive
command -v curl >/dev/null && command -v ip >/dev/null ||
  { apt-get update -qq && apt-get install -y -qq iproute2 util-linux python3 curl >/dev/null; }
cargo build --release --quiet -p portproxy
BP="$CARGO_TARGET_DIR/release/berth-proxy"
mkdir -p /run/netns
exec unshare --net --mount --pid --fork --mount-proc --propagation private -- bash -euo pipefail -c '
  BP=$1
  mount -t tmpfs demo /run/netns
  run=$(mktemp -d)
  ip link set lo up
  ip netns add web
  ip link add berth-demo type veth peer name eth0 netns web
  ip addr add 10.88.0.1/24 dev berth-demo && ip link set berth-demo up
  ip -n web addr add 10.88.0.2/24 dev eth0 && ip -n web link set eth0 up && ip -n web link set lo up
  echo "hello from the container at 10.88.0.2" > "$run/index.html"
  nsenter --net=/run/netns/web python3 -m http.server 80 --bind 10.88.0.2 --directory "$run" >/dev/null 2>&1 &
  "$BP" --exec-root "$run" --log-level warn serve >/dev/null &
  for _ in $(seq 50); do [ -S "$run/proxy.sock" ] && break; sleep 0.1; done
  echo "$ berth-proxy ctl publish 8080:80 --container-ip 10.88.0.2"
  "$BP" --exec-root "$run" ctl publish 8080:80 --container-ip 10.88.0.2 >/dev/null
  for _ in $(seq 50); do curl -sf http://10.88.0.2:80/ >/dev/null && break; sleep 0.1; done
  echo "$ curl http://127.0.0.1:8080/"
  curl -sS http://127.0.0.1:8080/
  echo "$ curl http://[::1]:8080/"
  curl -sS "http://[::1]:8080/"
  echo "$ berth-proxy ctl ls"
  "$BP" --exec-root "$run" ctl ls
' demo "$BP"
