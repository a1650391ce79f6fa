#!/usr/bin/env bash
# Verifies that a stock Docker daemon (Debian's docker.io) runs berth-proxy unchanged as its
# userland proxy: dockerd --userland-proxy-path berth-proxy, a busybox container publishing
# 127.0.0.1:18080->80, a request through it, and the proxy gone after `docker rm -f`.
# Then images move both ways: `docker save` -> berth-image load, and berth-image save -> `docker
# load` -> `docker run`, with the image ID kept.
# Everything runs in a throwaway network/mount/PID namespace with its own dockerd state.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/berth/target}"
export DEBIAN_FRONTEND=noninteractive
need=()
command -v dockerd >/dev/null || [ -x /usr/sbin/dockerd ] || need+=(docker.io)
[ -x /bin/busybox ] && /bin/busybox --list | grep -qx httpd || need+=(busybox-static)
command -v curl >/dev/null || need+=(curl)
command -v ss >/dev/null || need+=(iproute2)
[ ${#need[@]} -eq 0 ] || { apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null; }
cargo build --release --quiet -p portproxy -p engine
BP="$(realpath "$CARGO_TARGET_DIR/release/berth-proxy")"
BI="$(realpath "$CARGO_TARGET_DIR/release/berth-image")"

exec unshare --net --mount --pid --fork --mount-proc --propagation private -- bash -euo pipefail -c '
  BP=$1 REPO=$2 BI=$3
  PATH=/usr/sbin:/usr/bin:/sbin:/bin
  run=$(mktemp -d /tmp/berth-docker-compat.XXXXXX)
  mount -t tmpfs compat "$run"
  ip link set lo up
  . "$REPO/scripts/throwaway-dockerd.sh"
  cleanup() { dockerd_stop berth-compat-test; }
  trap cleanup EXIT
  dockerd_start "$run" berth-compat-test --userland-proxy-path "$BP"
  docker version --format "dockerd {{.Server.Version}}" || { tail -20 "$run/dockerd.log"; exit 1; }

  # A one-layer image from Debian busybox-static, as the tests will use everywhere.
  mkdir -p "$run/rootfs/www"
  echo "served through berth-proxy" > "$run/rootfs/www/index.html"
  busybox_image "$run" berth-test/busybox sh httpd

  docker run -d --name web -p 127.0.0.1:18080:80 berth-test/busybox httpd -f -p 80 -h /www >/dev/null
  for _ in $(seq 50); do curl -sf http://127.0.0.1:18080/ >/dev/null && break; sleep 0.1; done
  body=$(curl -sS http://127.0.0.1:18080/)
  owner=$(ss -Hltnp "sport = :18080" | grep -o "\"[^\"]*\"" | head -1)
  echo "GET http://127.0.0.1:18080/ -> $body (listener owned by $owner)"
  [ "$body" = "served through berth-proxy" ] || { echo "FAIL: wrong body"; exit 1; }
  [ "$owner" = "\"berth-proxy\"" ] || { echo "FAIL: 127.0.0.1:18080 is served by $owner"; exit 1; }
  docker rm -f web >/dev/null
  sleep 0.5
  if ss -Hltn "sport = :18080" | grep -q .; then echo "FAIL: port still open after rm -f"; exit 1; fi
  if pgrep -x berth-proxy >/dev/null; then echo "FAIL: berth-proxy left running"; exit 1; fi
  echo "docker-compat: dockerd used berth-proxy as its userland proxy: ok"

  # docker save -> berth load: same image ID, tag kept.
  want=$(docker inspect -f "{{.Id}}" berth-test/busybox)
  docker save -o "$run/from-docker.tar" berth-test/busybox
  out=$("$BI" --data-root "$run/berth" load -i "$run/from-docker.tar")
  echo "berth-image load: $out"
  [ "$out" = "Loaded image: berth-test/busybox:latest" ] || { echo "FAIL: load said $out"; exit 1; }
  got=$("$BI" --data-root "$run/berth" inspect berth-test/busybox | python3 -c "import json,sys; print(json.load(sys.stdin)[0][\"Id\"])")
  [ "$got" = "$want" ] || { echo "FAIL: berth loaded $got, docker had $want"; exit 1; }

  # berth save -> docker load -> docker run, with the layers coming from berth alone.
  "$BI" --data-root "$run/berth" tag berth-test/busybox berth-test/from-berth:1
  "$BI" --data-root "$run/berth" save -o "$run/from-berth.tar" berth-test/from-berth:1
  docker rmi berth-test/busybox >/dev/null
  [ -z "$(docker images -q)" ] || { echo "FAIL: docker still has images"; exit 1; }
  out=$(docker load -i "$run/from-berth.tar")
  echo "docker load: $out"
  [ "$out" = "Loaded image: berth-test/from-berth:1" ] || { echo "FAIL: docker load said $out"; exit 1; }
  [ "$(docker inspect -f "{{.Id}}" berth-test/from-berth:1)" = "$want" ] || { echo "FAIL: image ID changed"; exit 1; }
  said=$(docker run --rm berth-test/from-berth:1 sh -c "echo hello from a berth-saved image")
  [ "$said" = "hello from a berth-saved image" ] || { echo "FAIL: docker run said $said"; exit 1; }
  echo "docker-compat: docker save -> berth load and berth save -> docker load -> docker run: ok"
' compat "$BP" "$PWD" "$BI"
