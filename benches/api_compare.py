"""Prints the table of benches/api-compare.sh from api-load's JSON for berthd and dockerd."""
import json
import sys

b, d = json.loads(sys.argv[1]), json.loads(sys.argv[2])
clients, secs, dv = sys.argv[3], sys.argv[4], sys.argv[5]
bb, db, mb = json.loads(sys.argv[6]), json.loads(sys.argv[7]), sys.argv[8]
print(f"\nDocker API under load: {clients} clients, ps + inspect alternating, {secs} s, "
      f"10 running containers (dockerd {dv})")
print(f"{'':12} {'req/s':>10} {'p50 ms':>9} {'p99 ms':>9} {'errors':>7}")
for name, r in (("berthd", b), ("dockerd", d)):
    print(f"{name:12} {r['rps']:>10.1f} {r['p50_ms']:>9.2f} {r['p99_ms']:>9.2f} {r['errors']:>7}")
ratio = b["rps"] / d["rps"] if d["rps"] else float("nan")
print(f"berthd/dockerd req/s: {ratio:.1f}x; p99 {b['p99_ms']:.2f} vs {d['p99_ms']:.2f} ms")
ok = ratio >= 2 and b["p99_ms"] < d["p99_ms"] and b["errors"] == 0
print("target (at least 2x the requests per second with a lower p99):", "met" if ok else "MISSED")

print(f"\nThe same while each daemon loads a {mb} MB image and pulls it from a loopback registry, "
      "in loops")
print(f"{'':12} {'req/s':>10} {'p50 ms':>9} {'p99 ms':>9} {'errors':>7} {'p99 busy/idle':>14}")
for name, busy, idle in (("berthd", bb, b), ("dockerd", db, d)):
    r = busy["p99_ms"] / idle["p99_ms"] if idle["p99_ms"] else float("nan")
    print(f"{name:12} {busy['rps']:>10.1f} {busy['p50_ms']:>9.2f} {busy['p99_ms']:>9.2f} "
          f"{busy['errors']:>7} {r:>13.2f}x")
ratio_busy = bb["p99_ms"] / b["p99_ms"] if b["p99_ms"] else float("nan")
ok_busy = ratio_busy <= 2 and bb["errors"] == 0
print("target (berthd's p99 while loading and pulling within 2x of its idle p99):",
      "met" if ok_busy else "MISSED")
