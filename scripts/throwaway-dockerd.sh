# Sourced by scripts that need a real Docker daemon as a peer (scripts/docker-compat.sh,
# benches/container-ports-compare.sh). Call only inside a throwaway network/mount/PID namespace:
# the daemon's state, socket and cgroups are private to the caller's run directory.
#
#   dockerd_start RUN CGROUP_PARENT [dockerd args...]   # sets DOCKER_HOST and DPID, waits for it
#   busybox_image RUN IMAGE APPLET...                   # a one-layer image of Debian's busybox
#   dockerd_stop CGROUP_PARENT                          # removes containers, stops it, cleans up

dockerd_start() {
  local run=$1 cgroup=$2
  shift 2
  export DOCKER_HOST=unix://$run/docker.sock
  dockerd --host "$DOCKER_HOST" --data-root "$run/data" --exec-root "$run/exec" \
    --pidfile "$run/dockerd.pid" --cgroup-parent "$cgroup" "$@" >"$run/dockerd.log" 2>&1 &
  DPID=$!
  for _ in $(seq 100); do docker version >/dev/null 2>&1 && return 0; sleep 0.2; done
  tail -20 "$run/dockerd.log" >&2
  return 1
}

busybox_image() {
  local run=$1 image=$2
  shift 2
  mkdir -p "$run/rootfs/bin"
  cp /bin/busybox "$run/rootfs/bin/"
  for c in "$@"; do ln -sf busybox "$run/rootfs/bin/$c"; done
  tar -C "$run/rootfs" -c . | docker import - "$image" >/dev/null
}

dockerd_stop() {
  local cgroup=$1
  local ids
  ids=$(docker ps -aq 2>/dev/null || true)
  [ -z "$ids" ] || docker rm -f $ids >/dev/null 2>&1 || true
  if [ -n "${DPID:-}" ]; then kill "$DPID" 2>/dev/null && wait "$DPID" 2>/dev/null || true; fi
  for d in /sys/fs/cgroup/*/"$cgroup" /sys/fs/cgroup/"$cgroup"; do
    [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done
}
