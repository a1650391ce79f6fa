"""Prints the table of benches/concurrent-run-compare.sh from each daemon's burst JSON."""
import json
import sys

b, d, c, dv = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3], sys.argv[4]


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


print(f"\n{c} concurrent docker run -d, each its own client, default bridge (dockerd {dv})")
print(f"{'':10} {'wall ms':>9} {'median ms':>10} {'p99 ms':>8}")
rows = {}
for name, r in (("berthd", b), ("dockerd", d)):
    rows[name] = (r["wall_ms"], pct(r["lat_ms"], 0.5), pct(r["lat_ms"], 0.99))
    print(f"{name:10} {rows[name][0]:>9} {rows[name][1]:>10} {rows[name][2]:>8}")
wall = rows["dockerd"][0] / max(rows["berthd"][0], 1)
p99 = rows["dockerd"][2] / max(rows["berthd"][2], 1)
print(f"dockerd/berthd: wall {wall:.1f}x, p99 {p99:.1f}x")
print("target (at least 3x faster in wall time and p99):",
      "met" if wall >= 3 and p99 >= 3 else "MISSED")
