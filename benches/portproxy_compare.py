#!/usr/bin/env python3
"""Compare berth-proxy with docker-proxy, socat and the direct path, in one run.

Runs inside a throwaway network/mount/PID namespace (re-executing itself under `unshare`), with a
"container" namespace behind a veth pair serving iperf3 and a tiny HTTP server. The client runs on
the "host" and reaches the container directly or through 127.0.0.1 and a proxy, which is the path
Docker's userland proxy serves. Prints one markdown table with ratios to docker-proxy and to the
direct path.

Usage: benches/portproxy-compare.sh [--short]   (the wrapper builds the binaries first)
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import LOGS, PIDS, median, release_bin, run, sh, spawn, stop, wait_listen  # noqa: E402

CTR = "10.77.1.2"
BERTH_PROXY = release_bin("berth-proxy")
TINY_HTTP = release_bin("tiny-http")
DOCKER_PROXY = shutil.which("docker-proxy") or "/usr/sbin/docker-proxy"
CLK = os.sysconf("SC_CLK_TCK")
THREADS = []








def docker_proxy(proto, host_ip, host_port, ctr_port):
    """Starts docker-proxy as dockerd does: a status pipe on fd 3 (without it, the Go runtime's own
    descriptor sits at fd 3 and docker-proxy closes it). Returns the process and the pipe's read end."""
    r, w = os.pipe()
    p = spawn([DOCKER_PROXY, "-proto", proto, "-host-ip", host_ip, "-host-port", str(host_port),
               "-container-ip", CTR, "-container-port", str(ctr_port)],
              pass_fds=(w, 3), preexec_fn=lambda: os.dup2(w, 3))  # 3: kept past close_fds
    os.close(w)
    return p, r


def read_status(r):
    with os.fdopen(r, "rb") as f:
        status = f.read(2)
    if status != b"0\n":
        raise SystemExit(f"docker-proxy failed to start: {status!r}")


def wait_port(host, port, timeout=10.0):
    import socket

    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection((host, port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on {host}:{port} after {timeout}s; logs in {LOGS}")




def cpu_ticks(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except FileNotFoundError:
            pass
    return total


def mem_kib(pids):
    rss = pss = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Rss:"):
                        rss += int(line.split()[1])
                    elif line.startswith("Pss:"):
                        pss += int(line.split()[1])
        except FileNotFoundError:
            pass
    return rss, pss


def iperf_tcp(host, port, streams, secs, proxy_pids):
    t0 = cpu_ticks(proxy_pids)
    out = subprocess.run(
        ["iperf3", "-c", host, "-p", str(port), "-P", str(streams), "-t", str(secs), "-J"],
        capture_output=True, text=True, timeout=secs + 30,
    )
    cpu = (cpu_ticks(proxy_pids) - t0) / CLK
    r = json.loads(out.stdout)
    if "error" in r:
        raise SystemExit(f"iperf3 to {host}:{port}: {r['error']}")
    gbit = r["end"]["sum_received"]["bits_per_second"] / 1e9
    return gbit, cpu / secs  # cores busy


def iperf_udp(host, port, secs):
    out = subprocess.run(
        ["iperf3", "-c", host, "-p", str(port), "-u", "-b", "0", "-l", "64", "-t", str(secs), "-J"],
        capture_output=True, text=True, timeout=secs + 30,
    )
    r = json.loads(out.stdout)
    if "error" in r:
        return float("nan")
    s = r["end"]["sum"]
    return (s["packets"] - s["lost_packets"]) / s["seconds"]


def wrk(url, secs, proxy_pids):
    t0 = cpu_ticks(proxy_pids)
    out = subprocess.run(
        ["wrk", "-t2", "-c32", f"-d{secs}s", "--latency", "-H", "Connection: close", url],
        capture_output=True, text=True, timeout=secs + 30,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    m = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    p99 = float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
    cpu_us = (cpu_ticks(proxy_pids) - t0) / CLK * 1e6
    return rps, p99, cpu_us / max(rps * secs, 1)




def topology():
    sh("ip link set lo up")
    sh("sysctl -qw net.ipv4.ip_local_port_range='10000 39999' net.ipv4.tcp_tw_reuse=1")
    sh("ip netns add bctr")
    sh("ip link add bveth type veth peer name eth0 netns bctr")
    sh("ip addr add 10.77.1.1/24 dev bveth && ip link set bveth up")
    sh(f"ip -n bctr addr add {CTR}/24 dev eth0 && ip -n bctr link set eth0 up")
    sh("ip -n bctr link set lo up && ip -n bctr route add default via 10.77.1.1")


def start_paths(tmp):
    """Each path: (host, iperf port, http port, pids of the proxy serving it)."""
    paths = {"direct": (CTR, 5201, 80, [])}
    b = spawn([BERTH_PROXY, "--control", f"{tmp}/proxy.sock", "--log-level", "warn", *THREADS, "serve",
               "-p", f"127.0.0.1:15201:5201@{CTR}", "-p", f"127.0.0.1:15201:5201/udp@{CTR}",
               "-p", f"127.0.0.1:10080:80@{CTR}"])
    paths["berth-proxy"] = ("127.0.0.1", 15201, 10080, [b.pid])
    d = []
    for proto, hp, cp in [("tcp", 25201, 5201), ("udp", 25201, 5201), ("tcp", 20080, 80)]:
        p, r = docker_proxy(proto, "127.0.0.1", hp, cp)
        read_status(r)
        d.append(p)
    paths["docker-proxy"] = ("127.0.0.1", 25201, 20080, [p.pid for p in d])
    s = [spawn(["socat", "TCP4-LISTEN:35201,fork,reuseaddr,bind=127.0.0.1", f"TCP4:{CTR}:5201"]),
         spawn(["socat", "UDP4-LISTEN:35201,fork,reuseaddr,bind=127.0.0.1", f"UDP4:{CTR}:5201"]),
         spawn(["socat", "TCP4-LISTEN:30080,fork,reuseaddr,bind=127.0.0.1", f"TCP4:{CTR}:80"])]
    paths["socat"] = ("127.0.0.1", 35201, 30080, [p.pid for p in s])
    for name, (host, ip, hp, _) in paths.items():
        if name != "direct":
            wait_listen(ip)  # the proxy's own socket; the iperf3 server was waited for already
        wait_port(host, hp)
    return paths


def memory(counts, tmp):
    """Total RSS/PSS to publish N TCP ports on 0.0.0.0 and :: as Docker does."""
    rows = {}
    for n in counts:
        ports = range(50000, 50000 + n)  # outside the ephemeral range above
        args = [BERTH_PROXY, "--control", f"{tmp}/mem.sock", "--log-level", "warn", "serve"]
        for p in ports:
            args += ["-p", f"{p}:80@{CTR}"]
        b = spawn(args)
        wait_port("127.0.0.1", ports[-1], 60)
        time.sleep(0.5)
        berth = mem_kib([b.pid])
        stop([b])
        procs, pipes = [], []
        for p in ports:
            for hip in ("0.0.0.0", "::"):
                pr, r = docker_proxy("tcp", hip, p, 80)
                procs.append(pr)
                pipes.append(r)
        for r in pipes:  # docker's start-up protocol: "0\n" from each
            read_status(r)
        time.sleep(0.5)
        docker = mem_kib([p.pid for p in procs])
        stop(procs)
        rows[n] = (berth, docker, len(procs))
    return rows


def fmt_ratio(a, b):
    if not b or b != b or a != a:
        return "n/a"
    return f"{a / b:.2f}x"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--short", action="store_true", help="a quick run for CI")
    ap.add_argument("--berth-threads", type=int, help="worker threads for berth-proxy (default: one per CPU)")
    args = ap.parse_args()
    secs, reps = (2, 1) if args.short else (5, 5)
    counts = (1, 100) if args.short else (1, 100, 1000)

    if args.berth_threads:
        THREADS.extend(["--threads", str(args.berth_threads)])
    tmp = tempfile.mkdtemp(prefix="berth-bench-")
    topology()
    spawn(["iperf3", "-s", "-p", "5201"], ns="bctr")
    spawn([TINY_HTTP, "[::]:80"], ns="bctr")
    wait_listen(5201, ns="bctr")
    wait_port(CTR, 80)
    paths = start_paths(tmp)
    names = list(paths)

    # Repetitions are interleaved across paths (rep 1 of every path, then rep 2, ...), so drift in
    # the machine's state during the run spreads over all paths instead of biasing one.
    raw = {n: {} for n in names}

    def add(name, key, value):
        raw[name].setdefault(key, []).append(value)

    for _ in range(reps):
        for name in names:
            host, iport, hport, pids = paths[name]
            for streams in (1, 8):
                gbit, cores = iperf_tcp(host, iport, streams, secs, pids)
                add(name, f"TCP {streams} stream(s), Gbit/s", gbit)
                # socat forks a child per connection that exits before it can be sampled.
                if pids and name != "socat":
                    add(name, f"proxy CPU, cores ({streams} stream(s))", cores)
                    add(name, f"proxy CPU per Gbit/s, % core ({streams} stream(s))", 100 * cores / gbit)
            if name != "socat" or not args.short:
                add(name, "UDP 64 B, packets/s", iperf_udp(host, iport, secs))
            rps, p99, cpu_us = wrk(f"http://{host}:{hport}/", secs, pids)
            add(name, "HTTP short connections, req/s", rps)
            add(name, "HTTP short connections, p99 ms", p99)
            if pids and name != "socat":
                add(name, "proxy CPU per HTTP connection, us", cpu_us)
    res = {n: {k: median(v) for k, v in raw[n].items()} for n in names}

    mem = memory(counts, tmp)
    stop(PIDS)

    metrics = []
    for n in names:
        for k in res[n]:
            if k not in metrics:
                metrics.append(k)
    print(f"portproxy comparison ({'short' if args.short else 'full'} mode: {secs}s runs, median of {reps}), "
          f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores\n")
    print("| metric | " + " | ".join(names) + " | berth / docker-proxy | berth / direct |")
    print("|---|" + "---|" * (len(names) + 2))
    for k in metrics:
        vals = [res[n].get(k, float("nan")) for n in names]
        cells = [f"{v:,.2f}" if v == v else "n/a" for v in vals]
        b = res["berth-proxy"].get(k, float("nan"))
        print(f"| {k} | " + " | ".join(cells) + f" | {fmt_ratio(b, res['docker-proxy'].get(k))} | "
              f"{fmt_ratio(b, res['direct'].get(k))} |")
    print("\n| published TCP ports (v4 + v6) | berth-proxy RSS MiB | berth-proxy PSS MiB | docker-proxy processes "
          "| docker-proxy RSS MiB | docker-proxy PSS MiB | PSS docker / berth |")
    print("|---|---|---|---|---|---|---|")
    for n, (b, d, procs) in mem.items():
        print(f"| {n} | {b[0] / 1024:.1f} | {b[1] / 1024:.1f} | {procs} | {d[0] / 1024:.1f} | {d[1] / 1024:.1f} "
              f"| {d[1] / max(b[1], 1):.1f}x |")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    run(main)
