"""Prints the table of benches/compose-compare.sh from each daemon's rounds JSON."""
import json
import statistics
import sys

b, d, r, dv = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3], sys.argv[4]
print(f"\ndocker-compose 1.29, 10 services, up -d then down -v, median of {r} round(s) (dockerd {dv})")
print(f"{'':10} {'up -d ms':>9} {'down -v ms':>11}")
rows = {}
for name, x in (("berthd", b), ("dockerd", d)):
    rows[name] = (statistics.median(x["up_ms"]), statistics.median(x["down_ms"]))
    print(f"{name:10} {rows[name][0]:>9.0f} {rows[name][1]:>11.0f}")
up = rows["dockerd"][0] / max(rows["berthd"][0], 1)
down = rows["dockerd"][1] / max(rows["berthd"][1], 1)
print(f"dockerd/berthd: up -d {up:.1f}x, down -v {down:.1f}x")
# docker-compose's own time (Python start, project load) is spent whatever the daemon.
cb, cd = b["client_ms"], d["client_ms"]
net_up = (rows["dockerd"][0] - cd) / max(rows["berthd"][0] - cb, 1)
net_down = (rows["dockerd"][1] - cd) / max(rows["berthd"][1] - cb, 1)
print(f"client alone (docker-compose ps): berthd {cb} ms, dockerd {cd} ms")
print(f"net of the client: up -d {net_up:.1f}x, down -v {net_down:.1f}x")
print("target (at least 3x faster for both):", "met" if up >= 3 and down >= 3 else "MISSED")
