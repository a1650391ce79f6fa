#!/usr/bin/env python3
"""Compare berth's nftables firewall with the one-rule-per-port layout Docker and netavark use.

berth's rules are constant and every published port is two map elements; Docker (iptables) and
netavark add one DNAT rule per published port to a chain that each new connection walks in order.
This measures, in one run and with repetitions interleaved across the two layouts:

- the time to publish the Nth port (N = 1, 100, 1,000, 10,000): `fw-publish` installs N-1 ports in
  one nft call, then times publishing one more with one nft process (median of its samples);
- traffic through DNAT with 1 and with 10,000 published ports, the client using the last port
  published (the end of the per-port chain): new HTTP connections per second (wrk, `Connection:
  close`: every request is a new conntrack entry, so the NAT rules are walked every time) and UDP
  packets per second of one iperf3 stream (an established flow: NAT is looked at once).

Runs inside a throwaway network/mount/PID namespace (re-executing itself under `unshare`): that
namespace is the "host" (routing, ip_forward=1, the firewall under test); for each traffic run a fresh server
namespace sits behind the bridge berth0 (10.88.1.0/24, tiny-http on :80 and iperf3 on :5201) and a
fresh client namespace behind a veth (10.88.2.0/24) connects to the host's 10.88.2.1 on the
published port.

Usage: benches/firewall-compare.sh [--short]   (the wrapper installs the tools and builds the binaries)
"""

import argparse
import json
import os
import re
import socket
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import ENV, LOGS, PIDS, in_ns, median, release_bin, run, sh, spawn, stop, wait_listen  # noqa: E402

SRV = "10.88.1.2"
HOST = "10.88.2.1"  # the host's address on the client's side: where published ports are reached
CLI = "10.88.2.2"
BASE_PORT = 20000
LAYOUTS = ("berth", "per-port")
FW_PUBLISH = release_bin("fw-publish")
TINY_HTTP = release_bin("tiny-http")
# Conntrack timeouts of the host namespace (per namespace; the machine's own are untouched), so
# closed connections of one run do not linger into the next. The table is also flushed before
# every traffic run.
CT_SYSCTLS = {
    "nf_conntrack_tcp_timeout_time_wait": 2,
    "nf_conntrack_tcp_timeout_fin_wait": 2,
    "nf_conntrack_tcp_timeout_close_wait": 2,
    "nf_conntrack_tcp_timeout_last_ack": 2,
    "nf_conntrack_udp_timeout": 2,
    "nf_conntrack_udp_timeout_stream": 10,
}








def topology():
    """The host side that lives for the whole run: forwarding, conntrack timeouts, the bridge."""
    sh("ip link set lo up")
    sh("sysctl -qw net.ipv4.ip_forward=1")
    for k, v in CT_SYSCTLS.items():
        with open(f"/proc/sys/net/netfilter/{k}", "w") as f:
            f.write(str(v))
    sh("ip link add berth0 type bridge && ip addr add 10.88.1.1/24 dev berth0 && ip link set berth0 up")


class Endpoints:
    """A fresh server namespace behind berth0 (tiny-http on :80, iperf3 on :5201) and a fresh client
    namespace behind a veth, for one traffic run: sockets left in TIME_WAIT by one run's thousands
    of short connections die with its namespaces instead of slowing the next run down."""

    seq = 0

    def __enter__(self):
        Endpoints.seq += 1
        i = Endpoints.seq
        self.srv, self.cli, self.links = f"bsrv{i}", f"bcli{i}", (f"vs{i}", f"vc{i}")
        vs, vc = self.links
        sh(f"ip netns add {self.srv} && ip netns add {self.cli}")
        sh(f"ip link add {vs} type veth peer name eth0 netns {self.srv}")
        sh(f"ip link set {vs} master berth0 && ip link set {vs} up")
        sh(f"ip -n {self.srv} addr add {SRV}/24 dev eth0 && ip -n {self.srv} link set eth0 up")
        sh(f"ip -n {self.srv} link set lo up && ip -n {self.srv} route add default via 10.88.1.1")
        sh(f"ip link add {vc} type veth peer name eth0 netns {self.cli}")
        sh(f"ip addr add {HOST}/24 dev {vc} && ip link set {vc} up")
        sh(f"ip -n {self.cli} addr add {CLI}/24 dev eth0 && ip -n {self.cli} link set eth0 up")
        sh(f"ip -n {self.cli} link set lo up && ip -n {self.cli} route add default via {HOST}")
        sh(f"nsenter --net=/run/netns/{self.cli} sysctl -qw net.ipv4.ip_local_port_range='10000 65000' "
           "net.ipv4.tcp_tw_reuse=1")
        self.procs = [spawn([TINY_HTTP, "0.0.0.0:80"], ns=self.srv), spawn(["iperf3", "-s", "-p", "5201"], ns=self.srv)]
        wait_listen(80, self.srv)
        wait_listen(5201, self.srv)
        return self

    def __exit__(self, *exc):
        stop(self.procs)
        # Deleting the host ends removes the pairs at once (a namespace's own cleanup is deferred).
        sh(f"ip link del {self.links[0]} && ip link del {self.links[1]}")
        sh(f"ip netns del {self.srv} && ip netns del {self.cli}")




def flush_conntrack():
    """`conntrack -F` for IPv4 over ctnetlink (no conntrack-tools needed)."""
    nfnl_subsys_ctnetlink, ipctnl_msg_ct_delete = 1, 2
    nlm_f_request, nlm_f_ack, nlmsg_error = 1, 4, 2
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 12)  # NETLINK_NETFILTER
    try:
        s.bind((0, 0))
        body = struct.pack("=BBH", socket.AF_INET, 0, 0)  # nfgenmsg
        hdr = struct.pack("=IHHII", 16 + len(body), (nfnl_subsys_ctnetlink << 8) | ipctnl_msg_ct_delete,
                          nlm_f_request | nlm_f_ack, 1, 0)
        s.send(hdr + body)
        resp = s.recv(65536)
        _, typ, _, _, _ = struct.unpack("=IHHII", resp[:16])
        if typ == nlmsg_error:
            err = struct.unpack("=i", resp[16:20])[0]
            if err not in (0, -2):  # -ENOENT: nothing to flush
                raise OSError(-err, f"conntrack flush: {os.strerror(-err)}")
    finally:
        s.close()


def tables():
    out = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, check=True).stdout
    return sorted(line.strip() for line in out.splitlines() if line.strip())


EXPECTED_TABLES = {"berth": ["table bridge berth", "table inet berth"], "per-port": ["table ip perport"]}


def fw_args(layout, n, samples, proto, target):
    return [FW_PUBLISH, "--layout", layout, "--ports", str(n), "--samples", str(samples), "--proto", proto,
            "--target", target, "--base-port", str(BASE_PORT), "--bridge", "berth0", "--subnet", "10.88.1.0/24"]


def publish_time(layout, n, samples):
    out = subprocess.run(fw_args(layout, n, samples, "tcp", f"{SRV}:80"), capture_output=True, text=True,
                         env=ENV, timeout=600)
    if out.returncode != 0:
        raise SystemExit(f"fw-publish --layout {layout} --ports {n} failed: {out.stderr.strip()}")
    return json.loads(out.stdout.strip().splitlines()[-1])


class Held:
    """N published ports held in place by `fw-publish --hold` while traffic runs."""

    def __init__(self, layout, n, proto, target):
        self.layout = layout
        with open(os.path.join(LOGS, "fw-publish.log"), "ab") as log:
            self.p = subprocess.Popen(fw_args(layout, n, 0, proto, target) + ["--hold"], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=log, env=ENV, text=True)
        PIDS.append(self.p)
        line = self.p.stdout.readline()
        if not line:
            self.p.wait()
            raise SystemExit(f"fw-publish --hold --layout {layout} --ports {n} failed; logs in {LOGS}")
        self.info = json.loads(line)
        self.port = BASE_PORT + n - 1
        if tables() != EXPECTED_TABLES[layout]:
            raise SystemExit(f"unexpected nft tables for {layout}: {tables()}")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.p.stdin.close()
        if self.p.wait(timeout=120) != 0 and exc[0] is None:
            raise SystemExit(f"fw-publish --hold --layout {self.layout} failed; logs in {LOGS}")
        if tables():
            raise SystemExit(f"tables left behind by fw-publish: {tables()}")


def http_check(cli, port):
    code = (f"import socket; s = socket.create_connection(('{HOST}', {port}), timeout=3); "
            "s.sendall(b'GET / HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n'); "
            "assert s.recv(64).startswith(b'HTTP/1.1 200'), 'no 200'")
    r = subprocess.run(in_ns(cli, [sys.executable, "-c", code]), capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"no HTTP answer through DNAT on {HOST}:{port}: {r.stderr.strip()}")


def wrk(cli, port, secs):
    out = subprocess.run(
        in_ns(cli, ["wrk", "-t2", "-c32", f"-d{secs}s", "--latency", "-H", "Connection: close",
                       f"http://{HOST}:{port}/"]),
        capture_output=True, text=True, timeout=secs + 30,
    ).stdout
    total = re.search(r"(\d+) requests in", out)
    if not total or int(total.group(1)) == 0:
        raise SystemExit(f"wrk through port {port} got nothing:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    m = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    p99 = float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
    errs = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = sum(int(x) for x in errs.groups()) if errs else 0
    return rps, p99, errors


def iperf_udp(cli, port, secs):
    out = subprocess.run(
        in_ns(cli, ["iperf3", "-c", HOST, "-p", str(port), "-u", "-b", "0", "-l", "64", "-t", str(secs), "-J"]),
        capture_output=True, text=True, timeout=secs + 30,
    )
    r = json.loads(out.stdout)
    if "error" in r:
        raise SystemExit(f"iperf3 through port {port}: {r['error']}")
    s = r["end"]["sum"]
    return (s["packets"] - s["lost_packets"]) / s["seconds"]




def ratio(a, b):
    return a / b if b else float("nan")


def pct(r):
    return f"{(r - 1) * 100:+.1f}%"


def n_fmt(n):
    return f"{n:,}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--short", action="store_true", help="a quick run for CI: N up to 1,000, one repetition, 1 s runs")
    args = ap.parse_args()
    if args.short:
        secs, reps, samples, counts = 1, 1, 5, (1, 100, 1000)
    else:
        secs, reps, samples, counts = 4, 5, 10, (1, 100, 1000, 10000)
    big = counts[-1]
    load0 = open("/proc/loadavg").read().split()[:3]
    started = time.time()

    topology()

    pub = {(lay, n): [] for lay in LAYOUTS for n in counts}
    bulk = {(lay, n): [] for lay in LAYOUTS for n in counts}
    nft_only = {n: [] for n in counts}  # berth's batch handed to nft directly
    traffic = {}

    def add(key, value):
        traffic.setdefault(key, []).append(value)

    wrk_errors = 0
    # Repetitions interleave the layouts (and alternate which goes first), so drift in the
    # machine's state spreads over both instead of biasing one.
    for rep in range(reps):
        order = LAYOUTS if rep % 2 == 0 else LAYOUTS[::-1]
        for n in counts:
            for lay in order:
                r = publish_time(lay, n, samples)
                if r["installed"] != n - 1:
                    raise SystemExit(f"{lay}: {r['installed']} ports installed, expected {n - 1}")
                pub[(lay, n)].append(r["publish_us_median"] / 1000)
                bulk[(lay, n)].append(r["bulk_ms"])
                if r["publish_nft_us_median"] is not None:
                    nft_only[n].append(r["publish_nft_us_median"] / 1000)
    for rep in range(reps):
        order = LAYOUTS if rep % 2 == 0 else LAYOUTS[::-1]
        for n in (1, big) if rep % 2 == 0 else (big, 1):
            for lay in order:
                with Endpoints() as ep:
                    with Held(lay, n, "tcp", f"{SRV}:80") as h:
                        http_check(ep.cli, h.port)
                        flush_conntrack()
                        rps, p99, errors = wrk(ep.cli, h.port, secs)
                        wrk_errors += errors
                        add((lay, n, "rps"), rps)
                        add((lay, n, "p99"), p99)
                    # iperf3's control connection is TCP on the same port: the port under test is
                    # published for udp and tcp (the tcp rule last), the N-1 others for udp.
                    with Held(lay, n, "udp,tcp", f"{SRV}:5201") as h:
                        flush_conntrack()
                        add((lay, n, "pps"), iperf_udp(ep.cli, h.port, secs))
    stop(PIDS)
    load1 = open("/proc/loadavg").read().split()[:3]

    P = {k: median(v) for k, v in pub.items()}
    B = {k: median(v) for k, v in bulk.items()}
    NO = {k: median(v) for k, v in nft_only.items()}
    T = {k: median(v) for k, v in traffic.items()}

    mode = f"{'short' if args.short else 'full'} mode: publish time median of {samples} samples per run, " \
           f"traffic {secs} s runs, median of {reps} interleaved repetition(s)"
    print(f"firewall comparison: berth vs one rule per port ({mode}), {time.strftime('%Y-%m-%d')}, "
          f"{os.cpu_count()} cores, nft {subprocess.run(['nft', '-v'], capture_output=True, text=True).stdout.split()[1]}, "
          f"kernel {os.uname().release}\n")

    print("Time to publish the Nth port (ms, median; each publish is one nft process; install times in ms):\n")
    print("| N | berth (Firewall::publish) | per-port | berth / per-port | berth: its nft process alone | "
          "berth: install N-1 in one call | per-port: install N-1 in one call |")
    print("|---|---|---|---|---|---|---|")
    for n in counts:
        b, p = P[("berth", n)], P[("per-port", n)]
        print(f"| {n_fmt(n)} | {b:.2f} | {p:.2f} | {ratio(b, p):.2f}x | {NO[n]:.2f} | {B[('berth', n)]:.1f} | "
              f"{B[('per-port', n)]:.1f} |")
    rb, rp = ratio(P[("berth", big)], P[("berth", 1)]), ratio(P[("per-port", big)], P[("per-port", 1)])
    rn = ratio(NO[big], NO[1])
    print(f"| {n_fmt(big)} vs 1 | {rb:.2f}x | {rp:.2f}x | | {rn:.2f}x | "
          f"{ratio(B[('berth', big)], B[('berth', 1)]):.1f}x | {ratio(B[('per-port', big)], B[('per-port', 1)]):.1f}x |")

    rows = [("new HTTP connections/s (wrk, Connection: close)", "rps", "{:,.0f}"),
            ("HTTP p99 latency, ms", "p99", "{:.2f}"),
            ("UDP 64 B packets/s (one iperf3 stream)", "pps", "{:,.0f}")]
    print(f"\nThrough DNAT, client on the last published port, with 1 and {n_fmt(big)} published ports:\n")
    print(f"| metric | berth, 1 | berth, {n_fmt(big)} | berth {n_fmt(big)} / 1 | per-port, 1 | per-port, {n_fmt(big)} "
          f"| per-port {n_fmt(big)} / 1 | berth / per-port, 1 | berth / per-port, {n_fmt(big)} |")
    print("|---|---|---|---|---|---|---|---|---|")
    for title, key, fmt in rows:
        v = {(lay, n): T[(lay, n, key)] for lay in LAYOUTS for n in (1, big)}
        print(f"| {title} | {fmt.format(v[('berth', 1)])} | {fmt.format(v[('berth', big)])} | "
              f"{ratio(v[('berth', big)], v[('berth', 1)]):.2f}x | {fmt.format(v[('per-port', 1)])} | "
              f"{fmt.format(v[('per-port', big)])} | {ratio(v[('per-port', big)], v[('per-port', 1)]):.2f}x | "
              f"{ratio(v[('berth', 1)], v[('per-port', 1)]):.2f}x | {ratio(v[('berth', big)], v[('per-port', big)]):.2f}x |")

    print(f"\nTarget: berth's figures stay within 10% from N = 1 to N = {n_fmt(big)}; the per-port layout degrades.\n")
    print("| figure | berth change | within 10%? | per-port change |")
    print("|---|---|---|---|")
    checks = [("time to publish the Nth port", rb, rp),
              ("  of which berth's nft process", rn, None),
              ("new HTTP connections/s", ratio(T[("berth", big, "rps")], T[("berth", 1, "rps")]),
               ratio(T[("per-port", big, "rps")], T[("per-port", 1, "rps")])),
              ("UDP packets/s", ratio(T[("berth", big, "pps")], T[("berth", 1, "pps")]),
               ratio(T[("per-port", big, "pps")], T[("per-port", 1, "pps")]))]
    for title, b, p in checks:
        ok = "yes" if abs(b - 1) <= 0.10 else "**no**"
        print(f"| {title} | {pct(b)} | {ok} | {pct(p) if p is not None else ''} |")
    if args.short:
        print("\n(short mode: 1 s runs and one repetition are too noisy to judge the 10% target; the full run is "
              "the measurement)")

    print(f"\nRaw repetitions (for judging noise): load average {' '.join(load0)} at start, {' '.join(load1)} at end; "
          f"wrk socket errors {wrk_errors}; {time.time() - started:.0f} s")
    for (lay, n), v in pub.items():
        print(f"  publish {lay} N={n}: " + ", ".join(f"{x:.2f}" for x in v) + " ms")
    for n, v in nft_only.items():
        print(f"  publish berth nft process alone N={n}: " + ", ".join(f"{x:.2f}" for x in v) + " ms")
    for (lay, n, key), v in traffic.items():
        print(f"  {key} {lay} N={n}: " + ", ".join(f"{x:,.0f}" if key != "p99" else f"{x:.2f}" for x in v))


if __name__ == "__main__":
    run(main)
