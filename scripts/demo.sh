#!/usr/bin/env bash
# The main job: berthd serving the Docker API, and berth's CLI running a busybox web server with
# `berth run -d -p 8080:80` on berth's default bridge (the real `docker` CLI lists it too) (image imported into berth's
# store, rootfs on overlayfs, runc under berth-shim, address, veth and DNAT from netcore, the
# loopback side through portproxy). A client on another host (an "outside" namespace) reaches it
# through the kernel's DNAT; the host reaches it on 127.0.0.1:8080. berthd is then killed with
# SIGKILL and the container keeps serving (127.0.0.1:8080 too: berth-proxy outlives berthd); a new
# berthd adopts it and `berth rm -f` removes it.
# Runs in a throwaway namespace, so it leaves nothing behind on this machine.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/berth/target}"
export DEBIAN_FRONTEND=noninteractive
need=()
for c in curl ip nft runc; do command -v $c >/dev/null || [ -x /usr/sbin/$c ] || need+=($c); done
[ -x /bin/busybox ] || need+=(busybox-static)
command -v docker >/dev/null || need+=(docker.io)
[ ${#need[@]} -eq 0 ] || { apt-get update -qq && apt-get install -y -qq iproute2 nftables util-linux curl runc busybox-static "${need[@]}" >/dev/null; }
cargo build --release --quiet -p berthd --bin berthd -p berth-cli --bin berth -p engine --bin berth-shim --bin berth-image -p portproxy --bin berth-proxy
BIN="$CARGO_TARGET_DIR/release"
DOCKER=$(command -v docker)
mkdir -p /run/netns
exec unshare --net --mount --pid --fork --mount-proc --propagation private -- bash -euo pipefail -c '
  BIN=$1 DOCKER=$2
  PATH=/usr/sbin:/usr/bin:/sbin:/bin
  mount -t tmpfs demo /run/netns
  run=$(mktemp -d)
  mount -t tmpfs demo "$run"
  ip link set lo up
  echo "nameserver 127.0.0.1" > "$run/resolv.conf"
  export DOCKER_HOST="unix://$run/berth.sock" DOCKER_CONFIG="$run/docker-config" BERTH_HOST="unix://$run/berth.sock"
  berthd() {
    "$BIN/berthd" --data-root "$run/data" --exec-root "$run/exec" -H "$DOCKER_HOST" \
      --resolv-conf "$run/resolv.conf" --cgroup-parent berth-demo --log-level warn &
    DPID=$!
    for _ in $(seq 100); do "$BIN/berth" version >/dev/null 2>&1 && break; sleep 0.1; done
  }

  # Another host on the LAN: 192.0.2.2, reaching this host at 192.0.2.1.
  ip netns add outside
  ip link add lan0 type veth peer name eth0 netns outside
  ip addr add 192.0.2.1/24 dev lan0 && ip link set lan0 up
  ip -n outside addr add 192.0.2.2/24 dev eth0 && ip -n outside link set eth0 up

  # An image: Debian busybox-static as a one-layer rootfs.
  mkdir -p "$run/rootfs/bin" "$run/rootfs/etc" "$run/rootfs/www"
  cp /bin/busybox "$run/rootfs/bin/"; for a in sh httpd; do ln -s busybox "$run/rootfs/bin/$a"; done
  echo "root:x:0:0:root:/root:/bin/sh" > "$run/rootfs/etc/passwd"
  echo "hello from a berth container" > "$run/rootfs/www/index.html"
  tar -C "$run/rootfs" -cf "$run/busybox.tar" .
  echo "$ berth-image import busybox.tar demo/busybox:1"
  "$BIN/berth-image" --data-root "$run/data" import "$run/busybox.tar" demo/busybox:1

  echo "$ berthd -H unix://.../berth.sock &   # the Docker API"
  berthd
  echo "$ berth version --format {{.Server.APIVersion}}"
  "$BIN/berth" version --format "{{.Server.APIVersion}}"
  echo "$ berth run -d --name web -p 8080:80 demo/busybox:1 httpd -f -p 80 -h /www"
  "$BIN/berth" run -d --name web -p 8080:80 demo/busybox:1 httpd -f -p 80 -h /www
  for _ in $(seq 50); do curl -sf http://127.0.0.1:8080/ >/dev/null && break; sleep 0.1; done
  echo "$ berth ps"
  "$BIN/berth" ps
  echo "$ docker ps --format ...   # the real docker CLI against the same berthd"
  "$DOCKER" ps --format "{{.ID}} {{.Names}} {{.Ports}}"
  echo "$ (outside) curl http://192.0.2.1:8080/"
  ip netns exec outside curl -sS http://192.0.2.1:8080/
  echo "$ curl http://127.0.0.1:8080/"
  curl -sS http://127.0.0.1:8080/
  echo "$ kill -KILL <berthd>; (outside) curl http://192.0.2.1:8080/"
  kill -KILL $DPID; wait $DPID 2>/dev/null || true
  ip netns exec outside curl -sS http://192.0.2.1:8080/
  echo "$ curl http://127.0.0.1:8080/   # berth-proxy outlives berthd too"
  curl -sS http://127.0.0.1:8080/
  echo "$ berthd &; berth ps --format ...   # a new berthd adopts the running container"
  berthd
  "$BIN/berth" ps --format "{{.Names}} {{.Status}} {{.Ports}}"
  echo "$ berth rm -f web"
  "$BIN/berth" rm -f web
  kill -TERM $DPID; wait $DPID 2>/dev/null || true
  echo "after rm -f: $(ip -br link | grep -c veth || true) veth, $(grep -c "$run" /proc/self/mountinfo) mounts under the run directory (its own tmpfs)"
  umount "$run"
  for d in /sys/fs/cgroup/*/berth-demo; do rmdir "$d" 2>/dev/null || true; done
' demo "$BIN" "$DOCKER"
