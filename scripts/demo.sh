#!/usr/bin/env bash
# The main job, as far as berth goes today: a "container" (a network namespace running a web
# server) attached to berth's default bridge with `-p 8080:80`. A client on another host (an
# "outside" namespace) reaches it through the kernel DNAT berth installs, and the container sees
# the client's real address; the host reaches it on 127.0.0.1:8080 through berth-proxy.
# Runs in a throwaway namespace, so it leaves nothing behind on this machine.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/berth/target}"
export DEBIAN_FRONTEND=noninteractive
command -v curl >/dev/null && command -v ip >/dev/null && command -v nft >/dev/null ||
  { apt-get update -qq && apt-get install -y -qq iproute2 nftables util-linux python3 curl >/dev/null; }
cargo build --release --quiet -p portproxy -p netcore
BIN="$CARGO_TARGET_DIR/release"
mkdir -p /run/netns
exec unshare --net --mount --pid --fork --mount-proc --propagation private -- bash -euo pipefail -c '
  BIN=$1
  mount -t tmpfs demo /run/netns
  run=$(mktemp -d)
  ip link set lo up
  net() { echo "$ berth-net $*"; "$BIN/berth-net" --data-root "$run" "$@"; }

  # Another host on the LAN: 192.0.2.2, reaching this host at 192.0.2.1.
  ip netns add outside
  ip link add lan0 type veth peer name eth0 netns outside
  ip addr add 192.0.2.1/24 dev lan0 && ip link set lan0 up
  ip -n outside addr add 192.0.2.2/24 dev eth0 && ip -n outside link set eth0 up

  # The container: a namespace with a web server on port 80.
  ip netns add web
  net attach bridge --netns /run/netns/web --name web -p 8080:80
  echo "hello from the container" > "$run/index.html"
  nsenter --net=/run/netns/web python3 -m http.server 80 --directory "$run" 2>"$run/http.log" >/dev/null &
  for _ in $(seq 50); do nsenter --net=/run/netns/web curl -sf http://127.0.0.1/ >/dev/null && break; sleep 0.1; done

  # berth-proxy serves the host-local side (127.0.0.1 and ::1) of the same publication.
  "$BIN/berth-proxy" --exec-root "$run" --log-level warn serve >/dev/null &
  for _ in $(seq 50); do [ -S "$run/proxy.sock" ] && break; sleep 0.1; done
  "$BIN/berth-proxy" --exec-root "$run" ctl publish 8080:80 --container-ip 172.17.0.2 >/dev/null

  echo "$ (outside) curl http://192.0.2.1:8080/"
  ip netns exec outside curl -sS http://192.0.2.1:8080/
  echo "  the container saw the client as: $(tail -1 "$run/http.log" | cut -d" " -f1)"
  echo "$ curl http://127.0.0.1:8080/"
  curl -sS http://127.0.0.1:8080/
  echo "  the container saw the client as: $(tail -1 "$run/http.log" | cut -d" " -f1)"
  echo "$ nft list map inet berth dnat4_any_addr"
  nft list map inet berth dnat4_any_addr | grep elements
  net ls
  net detach bridge web
  net reset
  echo "after reset: $(ip -br link | grep -c berth0 || true) berth0 bridge, $(nft list tables | grep -c berth || true) berth tables"
' demo "$BIN"
