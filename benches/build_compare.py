"""Prints the table of benches/build-compare.sh from each builder's rounds JSON."""
import json
import statistics
import sys

b, d, h = (json.loads(x) for x in sys.argv[1:4])
r, mb, dv, hv = sys.argv[4:8]
print(f"\nbuild of an 11-step multi-stage Dockerfile, {mb} MB context, median of {r} round(s)")
print(f"(dockerd {dv} legacy builder, buildah {hv})")
cases = (("cold", "cold_ms"), ("no change", "nochange_ms"), ("one file changed", "onefile_ms"))
print(f"{'':10} " + " ".join(f"{c:>17}" for c, _ in cases))
rows = {}
for name, x in (("berthd", b), ("dockerd", d), ("buildah", h)):
    rows[name] = [statistics.median(x[k]) for _, k in cases]
    print(f"{name:10} " + " ".join(f"{v:>14.0f} ms" for v in rows[name]))
vs_d = [rows["dockerd"][i] / max(rows["berthd"][i], 1) for i in range(3)]
vs_h = [rows["buildah"][i] / max(rows["berthd"][i], 1) for i in range(3)]
print("dockerd/berthd: " + ", ".join(f"{c} {v:.1f}x" for (c, _), v in zip(cases, vs_d)))
print("buildah/berthd: " + ", ".join(f"{c} {v:.1f}x" for (c, _), v in zip(cases, vs_h)))
met = all(v >= 2 for v in vs_d) and all(v >= 1 for v in vs_h) and rows["berthd"][1] < 100
print("target (2x dockerd, at least buildah, no change under 100 ms):", "met" if met else "MISSED")
