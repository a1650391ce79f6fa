"""Prints the table of benches/api-compare.sh from api-load's JSON for berthd and dockerd."""
import json
import sys

b, d = json.loads(sys.argv[1]), json.loads(sys.argv[2])
clients, secs, dv = sys.argv[3], sys.argv[4], sys.argv[5]
print(f"\nDocker API under load: {clients} clients, ps + inspect alternating, {secs} s, "
      f"10 running containers (dockerd {dv})")
print(f"{'':12} {'req/s':>10} {'p50 ms':>9} {'p99 ms':>9} {'errors':>7}")
for name, r in (("berthd", b), ("dockerd", d)):
    print(f"{name:12} {r['rps']:>10.1f} {r['p50_ms']:>9.2f} {r['p99_ms']:>9.2f} {r['errors']:>7}")
ratio = b["rps"] / d["rps"] if d["rps"] else float("nan")
print(f"berthd/dockerd req/s: {ratio:.1f}x; p99 {b['p99_ms']:.2f} vs {d['p99_ms']:.2f} ms")
ok = ratio >= 2 and b["p99_ms"] < d["p99_ms"] and b["errors"] == 0
print("target (at least 2x the requests per second with a lower p99):", "met" if ok else "MISSED")
