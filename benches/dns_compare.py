#!/usr/bin/env python3
"""Compare berth-dns with aardvark-dns, dnsmasq and Docker's embedded resolver, in one run.

Every resolver answers A queries for the same container names and aliases (db, cache, redis, queue,
www), asked by dnsperf from inside a "container" network namespace:

- berth: `berth-net create net1 --subnet 10.89.0.0/24`, namespaces c1..c4 attached with `berth-net
  attach` (web+www, db, cache+redis, queue), and `berth-dns` answering at 127.0.0.11:53 inside each
  attached namespace; dnsperf runs in c1.
- aardvark-dns (podman/netavark's resolver) configured as netavark does: one config file per network
  in a config directory, listening on the gateway 10.89.0.1:53 of the same bridge; dnsperf in c1
  crosses c1's veth to it. Same names, same addresses.
- dnsmasq with --host-record entries, also on 10.89.0.1:53 (as podman's old dnsname plugin ran it).
- Docker's embedded resolver: a throwaway dockerd (scripts/throwaway-dockerd.sh), `docker network
  create` (10.90.0.0/24: net1's bridge holds 10.89.0.0/24 in the same namespace), busybox `sleep`
  containers with the same names and aliases; dnsperf runs in web's namespace at 127.0.0.11.

Per resolver: peak queries/s (dnsperf, fixed time, its default 100 queries in flight); the latency
distribution of a second run at a fixed rate, the same for every resolver, half of berth's peak
(dnsperf 2.10 has no latency histogram: -v reports each answer's latency, p50/p99 come from those);
the resolver's CPU time per query at peak; and how soon a new name is answered: a poller in c1
(web's namespace for Docker) sends an A query for the new name every 1 ms, from just before the
change (berth: `berth-net attach` of a fresh namespace; aardvark-dns: its config line appended and
SIGHUP, as netavark does; dnsmasq: a line appended to its --addn-hosts file and SIGHUP, as dnsname
did; Docker: `docker run -d`) to the first answer carrying an address.

No resolver forwards anywhere but loopback: berth-dns's upstream is 127.0.0.1:5353, aardvark-dns's
network DNS server and dockerd's --dns are 127.0.0.1, dnsmasq has none. Runs inside a throwaway
network/mount/PID namespace (re-executing itself under `unshare`), so nothing leaves it anyway.

Usage: benches/dns-compare.sh [--short]   (the wrapper builds berth-net and berth-dns first)
"""

import argparse
import hashlib
import json
import math
import os
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import ENV, LOGS, PIDS, median, release_bin, run, sh, spawn, stop  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BERTH_NET = release_bin("berth-net")
BERTH_DNS = release_bin("berth-dns")
AARDVARK = "/usr/lib/podman/aardvark-dns"
DNSMASQ = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
SUBNET, GATEWAY = "10.89.0.0/24", "10.89.0.1"
DOCKER_SUBNET = "10.90.0.0/24"
UPSTREAM = "127.0.0.1:5353"  # berth-dns's upstream: nothing listens there
# (namespace, container name, aliases); c1 is where the queries come from.
CONTAINERS = [("c1", "web", ["www"]), ("c2", "db", []), ("c3", "cache", ["redis"]), ("c4", "queue", [])]
QUERY_NAMES = ["db", "cache", "redis", "queue", "www"]
CLK = os.sysconf("SC_CLK_TCK")
SELF = os.path.abspath(__file__)
DOCKER_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
DOCKER_CGROUP = "berth-dns-compare"
# Holds a throwaway dockerd (scripts/throwaway-dockerd.sh) until its stdin is closed: prints
# DOCKER_HOST and dockerd's PID once the daemon answers and the busybox image is imported.
DOCKERD_HOLDER = r'''
. "$1/scripts/throwaway-dockerd.sh"
trap 'dockerd_stop "$3"' EXIT
trap 'exit 143' TERM
dockerd_start "$2" "$3" --bridge none --dns 127.0.0.1
busybox_image "$2" berth-bench/busybox sleep
echo "$DOCKER_HOST $DPID"
read -r _ || true
'''


# --- a tiny DNS client, run inside a namespace as `dns_compare.py --resolve|--poll ...` ---

def dns_query(qid, name):
    qname = b"".join(bytes([len(label)]) + label.encode() for label in name.rstrip(".").split(".")) + b"\0"
    return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + qname + struct.pack("!HH", 1, 1)  # A, IN


def a_records(msg):
    """(id, IPv4 addresses in the answer section); no addresses unless the rcode is NOERROR."""
    qid, flags, qdcount, ancount, _, _ = struct.unpack("!HHHHHH", msg[:12])
    if flags & 0x000F:
        return qid, []

    def skip_name(pos):
        while msg[pos]:
            if msg[pos] & 0xC0 == 0xC0:
                return pos + 2
            pos += 1 + msg[pos]
        return pos + 1

    pos, ips = 12, []
    for _ in range(qdcount):
        pos = skip_name(pos) + 4
    for _ in range(ancount):
        pos = skip_name(pos)
        rtype, _, _, rdlen = struct.unpack("!HHIH", msg[pos:pos + 10])
        pos += 10
        if rtype == 1 and rdlen == 4:
            ips.append(socket.inet_ntoa(msg[pos:pos + 4]))
        pos += rdlen
    return qid, ips


def client(argv):
    """--resolve SERVER NAME...: prints `NAME IP,IP` per name (3 tries of 0.5 s each).
    --poll SERVER NAME TIMEOUT: prints `ready`, then sends an A query every 1 ms until an answer
    carries an address and prints the CLOCK_MONOTONIC time it arrived; exits 1 on timeout."""
    mode, server, *rest = argv
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect((server, 53))
    if mode == "--resolve":
        s.settimeout(0.5)
        for i, name in enumerate(rest):
            ips = []
            for attempt in range(3):
                qid = (i * 3 + attempt) & 0xFFFF
                try:
                    s.send(dns_query(qid, name))
                    while True:
                        rid, ips = a_records(s.recv(4096))
                        if rid == qid:
                            break
                    break
                except OSError:  # a timeout, or nothing listening yet (ICMP port unreachable)
                    ips = []
            print(name, ",".join(ips) or "-", flush=True)
        return 0
    name, timeout = rest[0], float(rest[1])
    s.setblocking(False)
    print("ready", flush=True)
    end = time.monotonic() + timeout
    qid, next_send = 0, 0.0
    while True:
        now = time.monotonic()
        if now >= end:
            return 1
        if now >= next_send:
            qid = (qid + 1) & 0xFFFF
            try:
                s.send(dns_query(qid, name))
            except OSError:
                pass
            next_send = now + 0.001
        if select.select([s], [], [], max(0.0, next_send - time.monotonic()))[0]:
            try:
                msg = s.recv(4096)
            except OSError:
                continue
            t = time.monotonic()
            try:
                ips = a_records(msg)[1]
            except (struct.error, IndexError):
                continue
            if ips:
                print(f"{t:.6f}", flush=True)
                return 0


def nsenter(netns, args):
    return ["nsenter", f"--net={netns}", *args]


def resolve(netns, server, names):
    out = subprocess.run(nsenter(netns, [sys.executable, SELF, "--resolve", server, *names]),
                         capture_output=True, text=True, timeout=30)
    return {line.split()[0]: line.split()[1] for line in out.stdout.splitlines() if len(line.split()) == 2}


def check_answers(label, netns, server, expected, timeout=10.0):
    """Waits until every name gets its expected address (the resolver is up), or gives up."""
    end = time.time() + timeout
    while True:
        got = resolve(netns, server, list(expected))
        if got == expected:
            return
        if time.time() > end:
            raise SystemExit(f"{label} at {server}: expected {expected}, got {got}; logs in {LOGS}")
        time.sleep(0.1)


class Poller:
    """The 1 ms poller for a name that does not exist yet, started before the change is made."""

    def __init__(self, netns, server, name, timeout=10.0):
        self.name, self.timeout = name, timeout
        self.p = subprocess.Popen(nsenter(netns, [sys.executable, SELF, "--poll", server, name, str(timeout)]),
                                  stdout=subprocess.PIPE, text=True)
        PIDS.append(self.p)
        if self.p.stdout.readline().strip() != "ready":
            raise SystemExit(f"the DNS poller in {netns} did not start")

    def answered_ms(self, t0):
        """Milliseconds from monotonic time t0 to the first answer with an address (None: none came)."""
        try:
            out, _ = self.p.communicate(timeout=self.timeout + 5)
        except subprocess.TimeoutExpired:
            self.p.kill()
            out, _ = self.p.communicate()
        return (float(out.strip()) - t0) * 1000 if self.p.returncode == 0 and out.strip() else None


# --- load ---

def with_descendants(pids):
    parent = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    parent[int(d)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (FileNotFoundError, ProcessLookupError):
                pass
    found, todo = set(), list(pids)
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo += [c for c, pp in parent.items() if pp == pid]
    return found


def cpu_ticks(pids):
    """utime + stime of the processes, all their threads and their descendants."""
    total = 0
    for pid in with_descendants(pids):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total


def dnsperf(netns, server, qfile, secs, pids, qps=None):
    """One dnsperf run from inside `netns`; at a fixed rate (`qps`) with each answer's latency."""
    args = ["dnsperf", "-s", server, "-d", qfile, "-l", str(secs), "-t", "2"]
    if qps:
        args += ["-Q", str(qps), "-v"]
    c0 = cpu_ticks(pids)
    out = subprocess.run(nsenter(netns, args), capture_output=True, text=True, timeout=secs + 60).stdout
    cpu_s = (cpu_ticks(pids) - c0) / CLK

    def field(pattern):
        m = re.search(pattern, out)
        if not m:
            raise SystemExit(f"dnsperf against {server} printed no '{pattern}':\n{out[-2000:]}")
        return m

    r = {
        "qps": float(field(r"Queries per second:\s+([\d.]+)").group(1)),
        "completed": int(field(r"Queries completed:\s+(\d+)").group(1)),
        "lost": int(field(r"Queries lost:\s+(\d+)").group(1)),
        "rcodes": field(r"Response codes:\s+(.*)").group(1).strip(),
        "avg_ms": float(field(r"Average Latency \(s\):\s+([\d.]+)").group(1)) * 1000,
        "max_ms": float(field(r"Average Latency \(s\):.*max ([\d.]+)\)").group(1)) * 1000,
    }
    r["cpu_us_per_query"] = cpu_s * 1e6 / r["completed"] if r["completed"] else float("nan")
    r["all_noerror"] = re.fullmatch(r"NOERROR \d+ \(100\.00%\)", r["rcodes"]) is not None
    if qps:
        lat = sorted(float(m.group(1)) * 1000 for m in re.finditer(r"^> \S+ \S+ \S+ ([\d.]+)$", out, re.M))
        if len(lat) != r["completed"]:
            raise SystemExit(f"dnsperf -v against {server}: {len(lat)} latencies for {r['completed']} answers")
        lat += [math.inf] * r["lost"]  # a lost query is later than any answer
        r["p50_ms"], r["p99_ms"] = percentile(lat, 0.50), percentile(lat, 0.99)
    return r


def percentile(xs, q):
    if not xs:
        return float("nan")
    return xs[min(len(xs) - 1, max(0, math.ceil(q * len(xs)) - 1))]


# --- the network every resolver but Docker's shares ---

def berth_net(data_root, *args):
    out = subprocess.run([BERTH_NET, "--data-root", data_root, *args], capture_output=True, text=True, env=ENV)
    if out.returncode != 0:
        raise SystemExit(f"berth-net {' '.join(args)} failed: {out.stderr.strip()}")
    return out.stdout


def attach(data_root, ns, name, aliases):
    sh(f"ip netns add {ns}")
    args = ["attach", "net1", "--netns", f"/run/netns/{ns}", "--name", name]
    for a in aliases:
        args += ["--alias", a]
    return json.loads(berth_net(data_root, *args))["ipv4"].split("/")[0]


def topology(data_root):
    """net1 and c1..c4 attached with berth-net; returns {name or alias: address}."""
    sh("ip link set lo up")
    berth_net(data_root, "create", "net1", "--subnet", SUBNET)
    addrs = {}
    for ns, name, aliases in CONTAINERS:
        ip = attach(data_root, ns, name, aliases)
        for n in [name, *aliases]:
            addrs[n] = ip
    return addrs


def ctr_id(name):
    return hashlib.sha256(name.encode()).hexdigest()


def stop_pid(pid):
    """Stops a daemon that forked away from us (now a child of this PID namespace's init, us)."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    end = time.time() + 10
    while time.time() < end:
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
        except ChildProcessError:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)


# --- the resolvers: each measured while it is the only one running ---

C1 = "/run/netns/c1"


def measure(netns, server, qfile, secs, pids, rate, samples, make):
    """Peak run, fixed-rate run (at `rate`, or half of this peak if None), then the new-name
    samples: make(i) makes name fresh{i} exist and returns the monotonic time it started."""
    r = {"peak": dnsperf(netns, server, qfile, secs, pids)}
    r["rate"] = rate or max(1, int(r["peak"]["qps"] / 2))
    r["fixed"] = dnsperf(netns, server, qfile, secs, pids, qps=r["rate"])
    r["new_name_ms"] = []
    for i in samples:
        poller = Poller(netns, server, f"fresh{i}")
        r["new_name_ms"].append(poller.answered_ms(make(i)))
    return r


class NotMeasured(Exception):
    pass


def run_berth(data_root, addrs, qfile, secs, samples, ns_seq):
    if not os.path.exists(BERTH_DNS):
        raise NotMeasured(f"{BERTH_DNS} does not exist")
    p = spawn([BERTH_DNS, "--data-root", data_root, "--dns", UPSTREAM])
    try:
        check_answers("berth-dns", C1, "127.0.0.11", {n: addrs[n] for n in QUERY_NAMES})
    except SystemExit as e:
        stop([p])
        raise NotMeasured(f"berth-dns did not answer ({'exited ' + str(p.returncode) if p.poll() is not None else 'running'}): {e}")
    attach_ms = []

    def make(i):
        ns = f"c{next(ns_seq)}"
        sh(f"ip netns add {ns}")
        t0 = time.monotonic()
        berth_net(data_root, "attach", "net1", "--netns", f"/run/netns/{ns}", "--name", f"fresh{i}")
        attach_ms.append((time.monotonic() - t0) * 1000)
        return t0

    try:
        r = measure(C1, "127.0.0.11", qfile, secs, [p.pid], None, samples, make)
    finally:
        stop([p])
    r["attach_ms"] = attach_ms
    return r


def run_aardvark(work, addrs, qfile, secs, rate, samples):
    cfg = os.path.join(work, "aardvark")
    os.makedirs(cfg)
    net = os.path.join(cfg, "net1")
    with open(net, "w") as f:
        # aardvark-dns 1.4.0's format, one file per network named after it: the listen (gateway)
        # addresses, a space, the network's DNS servers; then per container: ID, IPv4s, IPv6s (none
        # here: an empty field), names and aliases; fields space-separated, lists comma-separated.
        f.write(f"{GATEWAY} 127.0.0.1\n")
        for _, name, aliases in CONTAINERS:
            f.write(f"{ctr_id(name)} {addrs[name]}  {','.join([name, *aliases])}\n")
    # It forks, the parent exiting once the child serves; the child writes aardvark.pid (netavark's
    # invocation, --config /run/containers/networks/aardvark-dns -p 53 run).
    with open(os.path.join(LOGS, "aardvark-dns.log"), "ab") as log:
        if subprocess.run([AARDVARK, "--config", cfg, "-p", "53", "run"], stdin=subprocess.DEVNULL,
                          stdout=subprocess.DEVNULL, stderr=log, env=ENV, timeout=30).returncode != 0:
            raise SystemExit(f"aardvark-dns did not start; logs in {LOGS}")
    with open(os.path.join(cfg, "aardvark.pid")) as f:
        pid = int(f.read().strip())
    try:
        check_answers("aardvark-dns", C1, GATEWAY, {n: addrs[n] for n in QUERY_NAMES})

        def make(i):
            t0 = time.monotonic()
            with open(net, "a") as f:
                f.write(f"{ctr_id(f'fresh{i}')} 10.89.0.{200 + i}  fresh{i}\n")
            os.kill(pid, signal.SIGHUP)
            return t0

        return measure(C1, GATEWAY, qfile, secs, [pid], rate, samples, make)
    finally:
        stop_pid(pid)


def run_dnsmasq(work, addrs, qfile, secs, rate, samples):
    hosts = os.path.join(work, "dnsmasq.hosts")
    open(hosts, "w").close()
    # --user=root: the hosts file sits in a root-only directory and is read again on SIGHUP.
    args = [DNSMASQ, "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
            "--bind-interfaces", f"--listen-address={GATEWAY}", "--port=53", "--user=root", "--pid-file=",
            "--log-facility=-", f"--addn-hosts={hosts}"]
    for _, name, aliases in CONTAINERS:
        args.append(f"--host-record={','.join([name, *aliases])},{addrs[name]}")
    p = spawn(args)
    try:
        check_answers("dnsmasq", C1, GATEWAY, {n: addrs[n] for n in QUERY_NAMES})

        def make(i):
            t0 = time.monotonic()
            with open(hosts, "a") as f:
                f.write(f"10.89.0.{200 + i} fresh{i}\n")
            p.send_signal(signal.SIGHUP)
            return t0

        return measure(C1, GATEWAY, qfile, secs, [p.pid], rate, samples, make)
    finally:
        stop([p])


class Dockerd:
    """A throwaway dockerd from scripts/throwaway-dockerd.sh, held by a bash process until the
    context ends (its EXIT trap runs dockerd_stop)."""

    def __init__(self, work):
        self.run = os.path.join(work, "docker")
        os.makedirs(self.run)
        self.env = dict(ENV, PATH=DOCKER_PATH)
        with open(os.path.join(LOGS, "dockerd-holder.log"), "ab") as log:
            self.p = subprocess.Popen(["bash", "-euo", "pipefail", "-c", DOCKERD_HOLDER, "holder", REPO, self.run,
                                       DOCKER_CGROUP], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                                      env=self.env, text=True)
        PIDS.append(self.p)

    def __enter__(self):
        line = self.p.stdout.readline().split()
        if len(line) != 2:
            self.p.wait(timeout=60)
            tail = open(os.path.join(LOGS, "dockerd-holder.log")).read()[-1500:]
            raise RuntimeError(f"the throwaway dockerd did not start:\n{tail}")
        self.env["DOCKER_HOST"], self.pid = line[0], int(line[1])
        return self

    def __exit__(self, *exc):
        self.p.stdin.close()
        try:
            self.p.wait(timeout=120)
        except subprocess.TimeoutExpired:
            stop([self.p])

    def __call__(self, *args):
        out = subprocess.run(["docker", *args], capture_output=True, text=True, env=self.env, timeout=120)
        if out.returncode != 0:
            raise RuntimeError(f"docker {' '.join(args)}: {out.stderr.strip()}")
        return out.stdout.strip()


def run_docker(work, qfile, secs, rate, samples):
    with Dockerd(work) as docker:
        version = docker("version", "--format", "{{.Server.Version}}")
        docker("network", "create", "--subnet", DOCKER_SUBNET, "net1")
        addrs = {}
        for _, name, aliases in CONTAINERS:
            args = ["run", "-d", "--name", name, "--network", "net1"]
            for a in aliases:
                args += ["--network-alias", a]
            docker(*args, "berth-bench/busybox", "sleep", "3600")
            ip = docker("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", name)
            for n in [name, *aliases]:
                addrs[n] = ip
        netns = f"/proc/{docker('inspect', '-f', '{{.State.Pid}}', 'web')}/ns/net"
        check_answers("Docker's embedded resolver", netns, "127.0.0.11", {n: addrs[n] for n in QUERY_NAMES})
        run_ms = []

        def make(i):
            t0 = time.monotonic()
            docker("run", "-d", "--name", f"fresh{i}", "--network", "net1", "berth-bench/busybox", "sleep", "3600")
            run_ms.append((time.monotonic() - t0) * 1000)
            return t0

        # The embedded resolver runs inside dockerd: CPU is dockerd's process tree's (containerd's too).
        r = measure(netns, "127.0.0.11", qfile, secs, [docker.pid], rate, samples, make)
        r["run_ms"], r["version"] = run_ms, version
        return r


# --- report ---

def fmt_ms(x):
    if x is None:
        return "no answer"
    if math.isinf(x):
        return "lost"
    return f"{x:.2f}" if x < 10 else f"{x:.0f}"


def version(args, pattern):
    try:
        out = subprocess.run(args, capture_output=True, text=True, timeout=10)
        m = re.search(pattern, out.stdout + out.stderr)
        return m.group(1) if m else "?"
    except OSError:
        return "?"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--short", action="store_true", help="a quick run for CI: 2 s dnsperf runs, 3 new-name samples")
    ap.add_argument("--only", default="berth,aardvark-dns,dnsmasq,docker",
                    help="comma-separated resolvers to run (default: all)")
    args = ap.parse_args()
    only = set(args.only.split(","))
    secs, nsamples = (2, 3) if args.short else (10, 5)
    samples = list(range(1, nsamples + 1))
    started = time.time()
    load0 = open("/proc/loadavg").read().split()[:3]

    work = os.path.join(LOGS, "work")  # berth's state, the peers' configs, dockerd's: a tmpfs private to
    os.makedirs(work)                   # this mount namespace, gone with it
    sh(f"mount -t tmpfs dns-compare {work}")
    data_root = os.path.join(work, "berth")
    addrs = topology(data_root)
    qfile = os.path.join(work, "queries")
    with open(qfile, "w") as f:
        f.writelines(f"{n} A\n" for n in QUERY_NAMES)
    ns_seq = iter(range(len(CONTAINERS) + 1, 10_000))

    # One resolver at a time. berth goes first: the fixed rate for everyone is half of its peak
    # (without berth, half of aardvark-dns's, the first peer's).
    results, notes, rate = {}, [], None
    try:
        if "berth" in only:
            results["berth"] = run_berth(data_root, addrs, qfile, secs, samples, ns_seq)
            rate = results["berth"]["rate"]
    except NotMeasured as e:
        notes.append(f"berth: not measured: {e}")
    if "aardvark-dns" in only:
        results["aardvark-dns"] = run_aardvark(work, addrs, qfile, secs, rate, samples)
        if rate is None:
            rate = results["aardvark-dns"]["rate"]
            notes.append(f"fixed rate: half of aardvark-dns's peak ({rate:,} queries/s), berth being absent")
    if "dnsmasq" in only:
        results["dnsmasq"] = run_dnsmasq(work, addrs, qfile, secs, rate, samples)
    try:
        if "docker" in only:
            results["docker"] = run_docker(work, qfile, secs, rate, samples)
    except (RuntimeError, subprocess.TimeoutExpired, OSError) as e:
        notes.append(f"docker: not measured: {e}")

    load1 = open("/proc/loadavg").read().split()[:3]
    report(args, secs, nsamples, rate, results, notes, load0, load1, started)


def report(args, secs, nsamples, rate, results, notes, load0, load1, started):
    versions = {
        "berth": "berth-dns",
        "aardvark-dns": "aardvark-dns " + version([AARDVARK, "--version"], r"aardvark-dns ([\d.]+)"),
        "dnsmasq": "dnsmasq " + version([DNSMASQ, "--version"], r"Dnsmasq version ([\d.]+)"),
        "docker": "Docker's embedded resolver, dockerd " + results.get("docker", {}).get("version", "?"),
    }
    where = {"berth": "127.0.0.11 in the container", "aardvark-dns": f"{GATEWAY}, the gateway (over the veth)",
             "dnsmasq": f"{GATEWAY}, the gateway (over the veth)", "docker": "127.0.0.11 in the container"}
    berth = results.get("berth")
    mode = f"{'short' if args.short else 'full'} mode: dnsperf -l {secs} per run, median of {nsamples} new-name samples"
    dnsperf_v = version(["dnsperf", "-h"], r"Version ([\d.]+)")
    print(f"DNS resolvers answering container names ({mode}), {time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, "
          f"dnsperf {dnsperf_v}, kernel {os.uname().release}\n")
    whose = "half of berth's peak" if berth else "half of aardvark-dns's peak"
    print(f"dnsperf from inside a container's network namespace, A queries for {', '.join(QUERY_NAMES)} in turn "
          f"(its default 100 in flight); p50/p99 from a second run at a fixed {rate:,} queries/s ({whose}), "
          "the same rate for every resolver.\n")
    print(f"| resolver | answers at | queries/s | berth / resolver, queries/s | avg latency at peak, ms | "
          f"p50 at {rate:,}/s, ms | p99 at {rate:,}/s, ms | resolver CPU, us/query | new name answerable, ms |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        pk, fx = r["peak"], r["fixed"]
        ratio = "" if name == "berth" else (f"{berth['peak']['qps'] / pk['qps']:.2f}x" if berth else "-")
        got = [x for x in r["new_name_ms"] if x is not None]
        new = f"{median(got):.1f}" if got else "-"
        if len(got) < len(r["new_name_ms"]):
            new += f" ({len(r['new_name_ms']) - len(got)} never answered)"
        flag = "" if pk["all_noerror"] and fx["all_noerror"] else " (not all NOERROR: see raw)"
        short_of = f" (kept up with {fx['qps']:,.0f}/s only)" if fx["qps"] < 0.95 * rate else ""
        print(f"| {versions[name]}{flag} | {where[name]} | {pk['qps']:,.0f} | {ratio} | {pk['avg_ms']:.3f} | "
              f"{fmt_ms(fx['p50_ms'])} | {fmt_ms(fx['p99_ms'])}{short_of} | {pk['cpu_us_per_query']:.1f} | {new} |")
    print("\nNew name answerable: from the start of the change to the first answer with an address, polled every "
          "1 ms from the querying container. berth: `berth-net attach` of a fresh namespace (veth, address and "
          "records included); aardvark-dns: its config line appended + SIGHUP (what netavark does); dnsmasq: an "
          "--addn-hosts line appended + SIGHUP (what podman's dnsname plugin did); Docker: `docker run -d` of a new "
          "container. Resolver CPU: the resolver's process tree during the peak run (dockerd's for Docker).")

    print("\nTargets:\n")
    if berth:
        def ok(cond):
            return "met" if cond else "**not met**"

        for peer, need in (("aardvark-dns", 2.0), ("docker", 1.5)):
            if peer in results:
                x = berth["peak"]["qps"] / results[peer]["peak"]["qps"]
                print(f"- berth >= {need}x {peer} queries/s: {x:.2f}x, {ok(x >= need)}")
            else:
                print(f"- berth >= {need}x {peer} queries/s: {peer} not measured")
        p99 = berth["fixed"]["p99_ms"]
        print(f"- berth p99 < 1 ms at half its peak load ({rate:,}/s): {fmt_ms(p99)} ms, {ok(p99 < 1)}")
        got = [x for x in berth["new_name_ms"] if x is not None]
        worst = max(got) if len(got) == len(berth["new_name_ms"]) else None
        after = [x - a for x, a in zip(berth["new_name_ms"], berth["attach_ms"]) if x is not None]
        worst_after = max(after) if worst is not None else None
        print(f"- new name answerable < 10 ms after attach: from the start of `berth-net attach`, median "
              f"{fmt_ms(median(got)) if got else '-'} ms, worst {fmt_ms(worst)} ms, {ok(worst is not None and worst < 10)}; "
              f"from its exit, median {fmt_ms(median(after)) if after else '-'} ms, worst {fmt_ms(worst_after)} ms, "
              f"{ok(worst_after is not None and worst_after < 10)} (the attach process itself: "
              f"{median(berth['attach_ms']):.1f} ms median; negative: answerable before it exited)")
    else:
        print("- not evaluated: berth was not measured")
    if args.short:
        print("\n(short mode: 2 s runs are noisy; the full run is the measurement)")
    for n in notes:
        print(f"\nNote: {n}")

    print(f"\nRaw (for judging noise): load average {' '.join(load0)} at start, {' '.join(load1)} at end; "
          f"{time.time() - started:.0f} s; logs in {LOGS}")
    for name, r in results.items():
        for kind in ("peak", "fixed"):
            x = r[kind]
            print(f"  {name} {kind}: {x['qps']:,.0f} q/s, completed {x['completed']:,}, lost {x['lost']}, "
                  f"rcodes {x['rcodes']}, avg {x['avg_ms']:.3f} ms, max {x['max_ms']:.3f} ms")
        print(f"  {name} new name: " + ", ".join(fmt_ms(x) for x in r["new_name_ms"]) + " ms")
        if "attach_ms" in r:
            print("  berth-net attach itself: " + ", ".join(f"{x:.1f}" for x in r["attach_ms"]) + " ms")
        if "run_ms" in r:
            print("  docker run -d itself: " + ", ".join(f"{x:.0f}" for x in r["run_ms"]) + " ms")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] in ("--resolve", "--poll"):
        sys.exit(client(sys.argv[1:]))
    run(main)
