#!/usr/bin/env python3
"""Compare berth's registry client with skopeo (Debian), in one run, against Debian's
docker-registry on loopback, and berth's layer extractor with GNU tar.

The image: an OCI layout generated here, 4 layers of incompressible data (40, 30, 20 and 10 MB,
gzip), about 100 MB in all, loaded into a fresh berth store (`berth-image load`, untimed).

Each repetition starts a fresh registry (its storage on tmpfs), so neither client can mount a
blob from an earlier repetition or find it already there (skopeo keeps a blob-info cache across
runs; berth remembers the repositories it pushed to), then, alternating which client goes first:
- push: `berth-image push 127.0.0.1:PORT/berth:1` from a fresh store holding the image, and
  `skopeo copy oci:LAYOUT:1 docker://127.0.0.1:PORT/skopeo:1`; both send the same blobs.
- pull: `berth-image pull` into an empty store (download, verify, and unpack every layer into its
  snapshot), and `skopeo copy docker://... oci:EMPTY_DIR:1` (download and verify only: skopeo does
  not unpack), so berth does strictly more work in the pull row.
- unpack: the 40 MB layer unpacked by `berth-image unpack` (berth's extractor: path checks,
  whiteouts, owners) and by `tar -xzf` into an empty directory.
Medians over the repetitions; ratios are skopeo/berth (>1: berth faster) and tar/berth.

Runs inside a throwaway network/mount/PID namespace with its own tmpfs; only loopback is used.
Usage: benches/image-transfer-compare.sh [--short]
"""

import gzip
import hashlib
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import time

sys.path.insert(0, os.path.dirname(__file__))
import benchlib  # noqa: E402

SHORT = "--short" in sys.argv
REPS = 2 if SHORT else 5
LAYER_MB = [40, 30, 20, 10]
BI = benchlib.release_bin("berth-image")


def sha(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


def make_layout(root):
    """An OCI layout with LAYER_MB layers of random data; returns (layout dir, archive, first
    layer's path)."""
    layout = os.path.join(root, "layout")
    blobs = os.path.join(layout, "blobs", "sha256")
    os.makedirs(blobs)

    def put(data):
        d = sha(data)
        with open(os.path.join(blobs, d.split(":")[1]), "wb") as f:
            f.write(data)
        return d

    layers, diff_ids = [], []
    for i, mb in enumerate(LAYER_MB):
        payload = os.urandom(mb * 1_000_000)
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as t:
            info = tarfile.TarInfo(f"data/layer{i}.bin")
            info.size = len(payload)
            info.mode = 0o644
            t.addfile(info, io.BytesIO(payload))
        raw = buf.getvalue()
        gz = gzip.compress(raw, compresslevel=1, mtime=0)
        diff_ids.append(sha(raw))
        layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": put(gz), "size": len(gz)})
    config = json.dumps({
        "architecture": "amd64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created_by": f"layer {i}"} for i in range(len(LAYER_MB))],
    }).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": put(config), "size": len(config)},
        "layers": layers,
    }).encode()
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": put(manifest), "size": len(manifest),
        "annotations": {"io.containerd.image.name": "bench/img:1", "org.opencontainers.image.ref.name": "1"},
    }]}
    with open(os.path.join(layout, "index.json"), "w") as f:
        json.dump(index, f)
    with open(os.path.join(layout, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    archive = os.path.join(root, "layout.tar")
    with tarfile.open(archive, "w") as t:
        for name in os.listdir(layout):
            t.add(os.path.join(layout, name), arcname=name)
    first = os.path.join(blobs, layers[0]["digest"].split(":")[1])
    return layout, archive, first


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_registry(root):
    port = free_port()
    data = os.path.join(root, f"registry-{port}")
    os.makedirs(data)
    cfg = os.path.join(data, "config.yml")
    with open(cfg, "w") as f:
        f.write(f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {data}/data\n"
                f"http:\n  addr: 127.0.0.1:{port}\n")
    p = benchlib.spawn(["docker-registry", "serve", cfg])
    benchlib.wait_listen(port)
    return p, port, data


def timed(args, env=None):
    t0 = time.perf_counter()
    r = subprocess.run(args, capture_output=True, text=True, env=env)
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"{args}: {r.stderr or r.stdout}")
    return dt


def main():
    benchlib.sh("ip link set lo up")
    root = "/tmp/berth-image-bench"
    os.makedirs(root, exist_ok=True)
    benchlib.sh(f"mount -t tmpfs bench {root}")
    layout, archive, first = make_layout(root)
    total_mb = sum(os.path.getsize(os.path.join(layout, "blobs", "sha256", b)) for b in os.listdir(os.path.join(layout, "blobs", "sha256"))) / 1e6
    # skopeo keeps its blob-info cache under HOME/XDG dirs for non-root and /var/lib/containers for
    # root; give it a private one, fresh per repetition, so no run learns from an earlier one.
    res = {k: [] for k in ["berth push", "skopeo push", "berth pull", "skopeo pull", "berth unpack", "tar unpack"]}
    for rep in range(REPS):
        reg, port, regdir = start_registry(root)
        env = dict(benchlib.ENV, HOME=os.path.join(root, f"home{rep}"), XDG_DATA_HOME=os.path.join(root, f"xdg{rep}"))
        os.makedirs(env["HOME"])
        store = os.path.join(root, f"push-store{rep}")
        subprocess.run([BI, "--data-root", store, "load", "-i", archive], check=True, capture_output=True)
        subprocess.run([BI, "--data-root", store, "tag", "bench/img:1", f"127.0.0.1:{port}/berth:1"], check=True)
        order = ["berth", "skopeo"] if rep % 2 == 0 else ["skopeo", "berth"]
        for who in order:
            if who == "berth":
                res["berth push"].append(timed([BI, "--data-root", store, "push", "-q", f"127.0.0.1:{port}/berth:1"]))
            else:
                res["skopeo push"].append(timed(["skopeo", "copy", "-q", "--dest-tls-verify=false",
                                                 f"oci:{layout}:1", f"docker://127.0.0.1:{port}/skopeo:1"], env=env))
        for who in order:
            if who == "berth":
                dest = os.path.join(root, f"pull-store{rep}")
                res["berth pull"].append(timed([BI, "--data-root", dest, "pull", "-q", f"127.0.0.1:{port}/berth:1"]))
                shutil.rmtree(dest)
            else:
                dest = os.path.join(root, f"skopeo-out{rep}")
                res["skopeo pull"].append(timed(["skopeo", "copy", "-q", "--src-tls-verify=false",
                                                 f"docker://127.0.0.1:{port}/skopeo:1", f"oci:{dest}:1"], env=env))
                shutil.rmtree(dest)
        for who in order:
            dest = os.path.join(root, f"unpack-{who}{rep}")
            if who == "berth":
                res["berth unpack"].append(timed([BI, "unpack", first, dest]))
            else:
                os.makedirs(dest)
                res["tar unpack"].append(timed(["tar", "-xzf", first, "-C", dest]))
            shutil.rmtree(dest)
        shutil.rmtree(store)
        benchlib.stop([reg])
        shutil.rmtree(regdir)
    med = {k: benchlib.median(v) for k, v in res.items()}
    print(f"\nimage transfer: {total_mb:.0f} MB in {len(LAYER_MB)} gzip layers, docker-registry on loopback, "
          f"median of {REPS} (tmpfs)\n")
    print(f"| operation | berth | peer | peer/berth |")
    print(f"|---|---|---|---|")
    for op, peer in [("push", "skopeo"), ("pull", "skopeo")]:
        b, p = med[f"berth {op}"], med[f"{peer} {op}"]
        print(f"| {op} ({peer} copy) | {b*1000:.0f} ms ({total_mb/b:.0f} MB/s) | {p*1000:.0f} ms ({total_mb/p:.0f} MB/s) | {p/b:.2f}x |")
    b, p = med["berth unpack"], med["tar unpack"]
    mb = LAYER_MB[0]
    print(f"| unpack {mb} MB layer (tar -xzf) | {b*1000:.0f} ms ({mb/b:.0f} MB/s) | {p*1000:.0f} ms ({mb/p:.0f} MB/s) | {p/b:.2f}x |")
    print("\nraw seconds:", json.dumps({k: [round(x, 3) for x in v] for k, v in res.items()}))
    benchlib.sh(f"umount {root}")


if __name__ == "__main__":
    benchlib.run(main)
