#!/usr/bin/env bash
# Installs berth as a service, as a user expects of a daemon:
#   - berthd, berth, berth-shim, berth-proxy and berth-slirp in PREFIX/bin (/usr/local/bin);
#   - berthd.service and berthd.socket in /etc/systemd/system (socket activation: the API
#     socket /run/berth.sock, mode 0660, group berth);
#   - /etc/berth/daemon.json (dockerd's keys), written only when there is none;
#   - the system group `berth` (its members may use the API socket);
#   - with systemd running: the units enabled and the socket started (berthd starts on the
#     first client), unless --no-start.
# Without systemd (a container, a chroot) everything is installed and berthd is left to be
# started by hand: `berthd` (its own socket) or through any socket activator (`-H fd://`).
#
# Usage: scripts/install.sh [--prefix DIR] [--destdir DIR] [--from DIR] [--no-start]
#        scripts/install.sh --uninstall [--prefix DIR] [--destdir DIR]
#   --prefix DIR   where bin/ goes (default /usr/local)
#   --destdir DIR  install under DIR instead of / (packaging, tests); implies --no-start and
#                  leaves the group alone
#   --from DIR     take the binaries from DIR instead of building them (cargo build --release)
#   --uninstall    remove the binaries and units; state (/var/lib/berth) and
#                  /etc/berth/daemon.json stay
set -euo pipefail

prefix=/usr/local destdir="" from="" start=1 uninstall=0
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix=${2:?--prefix needs a directory}; shift 2 ;;
    --destdir) destdir=${2:?--destdir needs a directory}; start=0; shift 2 ;;
    --from) from=${2:?--from needs a directory}; shift 2 ;;
    --no-start) start=0; shift ;;
    --uninstall) uninstall=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "install.sh: unknown option $1 (valid: --prefix, --destdir, --from, --no-start, --uninstall)" >&2; exit 2 ;;
  esac
done
# The prefix goes into the unit's ExecStart: a plain absolute path only.
[[ "$prefix" =~ ^/[A-Za-z0-9._/-]*$ ]] || { echo "install.sh: --prefix $prefix: give an absolute path of letters, digits, '.', '_', '-' and '/'" >&2; exit 2; }

root=$(cd "$(dirname "$0")/.." && pwd)
bins=(berthd berth berth-shim berth-proxy berth-slirp)
bindir="$destdir$prefix/bin"
unitdir="$destdir/etc/systemd/system"
systemd_running() { [ -z "$destdir" ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null; }

if [ "$uninstall" = 1 ]; then
  if systemd_running; then
    systemctl disable --now berthd.socket berthd.service >/dev/null 2>&1 || true
  fi
  for b in "${bins[@]}"; do rm -f "$bindir/$b"; done
  rm -f "$unitdir/berthd.service" "$unitdir/berthd.socket"
  systemd_running && systemctl daemon-reload
  echo "berth removed from $prefix/bin and /etc/systemd/system; /var/lib/berth and /etc/berth stay"
  exit 0
fi

if [ -z "$from" ]; then
  command -v cargo >/dev/null || { echo "install.sh: cargo is needed to build berth (or give --from DIR)" >&2; exit 1; }
  export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/cache/berth/target}
  (cd "$root" && cargo build --release --quiet -p berthd --bin berthd -p berth-cli --bin berth \
      -p engine --bin berth-shim -p portproxy --bin berth-proxy -p netcore --bin berth-slirp)
  from="$CARGO_TARGET_DIR/release"
fi
for b in "${bins[@]}"; do
  [ -x "$from/$b" ] || { echo "install.sh: no $b in $from" >&2; exit 1; }
done

# Binaries: copied beside each other (berthd finds berth-shim, berth-proxy and berth-slirp next to it),
# each replaced by a rename so a running berthd keeps its own file.
install -d -m 0755 "$bindir"
for b in "${bins[@]}"; do
  install -m 0755 "$from/$b" "$bindir/.$b.new"
  mv -f "$bindir/.$b.new" "$bindir/$b"
done

install -d -m 0755 "$unitdir"
sed "s|@BINDIR@|$prefix/bin|g" "$root/engine/berthd/systemd/berthd.service" > "$unitdir/berthd.service"
install -m 0644 "$root/engine/berthd/systemd/berthd.socket" "$unitdir/berthd.socket"
chmod 0644 "$unitdir/berthd.service"

install -d -m 0755 "$destdir/etc/berth"
if [ ! -e "$destdir/etc/berth/daemon.json" ] && [ ! -L "$destdir/etc/berth/daemon.json" ]; then
  # berthd's defaults, spelled out to be edited; `hosts` stays out (the unit gives -H fd://,
  # and a setting given both ways is refused, as by dockerd).
  conf_tmp=$(mktemp "$destdir/etc/berth/.daemon.json.XXXXXX")
  cat > "$conf_tmp" <<'JSON'
{
  "data-root": "/var/lib/berth",
  "exec-root": "/run/berth",
  "log-level": "info",
  "cgroup-parent": "berth"
}
JSON
  chmod 0644 "$conf_tmp"
  mv -f "$conf_tmp" "$destdir/etc/berth/daemon.json"
fi

if [ -z "$destdir" ] && ! getent group berth >/dev/null; then
  groupadd --system berth
fi

if [ "$start" = 1 ] && systemd_running; then
  systemctl daemon-reload
  systemctl enable --now berthd.socket >/dev/null
  systemctl enable berthd.service >/dev/null
  echo "berthd.socket is listening on /run/berth.sock; add users to the berth group to let them use it"
else
  echo "berth installed in $destdir$prefix/bin; start it with: $prefix/bin/berthd (or systemctl enable --now berthd.socket where systemd runs)"
fi
echo "clients: export DOCKER_HOST=unix:///run/berth.sock"
