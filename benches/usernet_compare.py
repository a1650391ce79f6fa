#!/usr/bin/env python3
"""Compare userspace network stacks for a network namespace, in one run: slirp4netns, pasta (passt)
and berth-slirp.

Each stack gets its own fresh network namespace (an `unshare --net` holder process; clients run in
it through `nsenter --net=/proc/PID/ns/net`), addressed the same way: 10.0.2.100/24 in the
namespace, gateway 10.0.2.2 standing for the host's 127.0.0.1, MTU 65520, one TCP and one UDP port
published from the host's 127.0.0.1. All traffic stays on the host's loopback and in those
namespaces. Rounds are interleaved over the stacks and each figure is the median over rounds.

Figures per stack:
  TCP ns->host, 1 and 8 streams      iperf3 in the ns to the host's iperf3 at 10.0.2.2
  TCP host->ns, 1 and 8 streams      iperf3 on the host to 127.0.0.1:published port (server in ns)
  TCP host->ns via gw, 1 stream      iperf3 -R from the ns to 10.0.2.2 (data host->ns on the TAP path)
  UDP ns->host pps, loss             iperf3 -u -b 0 -l 1400 from the ns to 10.0.2.2
  UDP host->ns pps, loss             iperf3 -u -b 0 -l 1400 on the host to the published port
  conn/s, p99                        connect + read EOF + close from the ns to a host server that
                                     closes at once, 4 workers
  CPU s/Gbit                         stack's utime+stime (with any children) during the 1-stream
                                     ns->host run, per Gbit received
  RSS idle / with flows              VmRSS of a fresh instance, idle and with 1,000 open TCP flows
                                     ns->host (each proven by a byte from the host server)
  peak RSS                           VmHWM of the instance that carried all the traffic above

pasta, as Debian 12 ships it (passt 0.0~git20230309):
- it is attached with `--netns /proc/PID/ns/net --runas 0:0` to a holder process that holds no
  capabilities: started as root, pasta drops to nobody unless told --runas, and even as uid 0 it
  keeps only a few capabilities, so opening /proc/PID/ns/net of a full-capability root process
  fails its ptrace access check ("Couldn't open network namespace").
- `-a 10.0.2.100 -n 24 -g 10.0.2.2 --config-net` gives it slirp4netns's addressing; the gateway
  maps to the host's loopback (no --no-map-gw), which is its TAP path. `-T none -U none` turns off
  its ns->host loopback forwarding (splice) so that only the gateway path is used ns->host.
- host->ns connections from the host's 127.0.0.1 take its splice path (TCP socket to socket in
  the ns, UDP recvmmsg/sendmmsg), not the TAP; the "via gw -R" column is its TAP path host->ns.
- a remapped UDP port (`-u A:B`) carries datagrams in but never the replies back, so every stack
  publishes the same port number on both sides.

Usage: benches/usernet-compare.sh [--short] [--rounds N] [--time S] [--conns N] [--flows N]
                                  [--stacks slirp4netns,pasta,berth-slirp] [--json FILE]
Meant to be started by the wrapper (which installs the peers, raises the fd limit and cleans up
by PID on exit). BERTH_SLIRP names the berth-slirp binary.
"""

import argparse
import asyncio
import json
import os
import resource
import select
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.abspath(__file__)
NS_ADDR, GW = "10.0.2.100", "10.0.2.2"
MTU = 65520
UDP_LEN = 1400
BERTH_SLIRP = os.environ.get("BERTH_SLIRP", "/var/cache/berth/target/release/berth-slirp")
PIDFILE = os.environ.get("USERNET_PIDFILE")  # the wrapper kills what is listed here on exit
CLK = os.sysconf("SC_CLK_TCK")
PROCS = []
WORK = None  # logs of the run; made by the main command only, not by the helper subcommands
FAILED = []  # set when a stack or a round failed: the logs are then kept


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def raise_nofile(n=65536):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(n, soft), max(n, hard)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# ---------------------------------------------------------------- process bookkeeping


def spawn(args, name, ns=None, **kw):
    """Starts a process (in namespace holder `ns`'s netns if given), stderr to WORK/name.log,
    records its PID for the cleanup."""
    if ns is not None:
        args = ["nsenter", f"--net=/proc/{ns}/ns/net", *args]
    kw.setdefault("stdout", subprocess.DEVNULL)
    with open(os.path.join(WORK, name + ".log"), "ab") as errlog:
        p = subprocess.Popen(args, stderr=errlog, **kw)
    p.bench_name = name
    PROCS.append(p)
    if PIDFILE:
        try:
            with open(f"/proc/{p.pid}/stat") as f:
                start = f.read().rsplit(")", 1)[1].split()[19]
            with open(PIDFILE, "a") as f:
                f.write(f"{p.pid} {start}\n")
        except (FileNotFoundError, IndexError):
            pass
    return p


def stop(procs):
    for p in procs:
        if p.poll() is None:
            try:
                p.terminate()
            except ProcessLookupError:
                pass
    for p in procs:
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    for p in procs:
        if p in PROCS:
            PROCS.remove(p)


def descendants(pid):
    """pid and all its descendants (stacks may fork helpers)."""
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                kids.setdefault(ppid, []).append(int(d))
            except (FileNotFoundError, ProcessLookupError, IndexError):
                pass
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def cpu_seconds(pid):
    total = 0
    for p in descendants(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except FileNotFoundError:
            pass
    return total / CLK


def status_mib(pid, field):
    total = 0
    for p in descendants(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith(field + ":"):
                        total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total / 1024


def rss_mib(pid):
    return status_mib(pid, "VmRSS")


def peak_rss_mib(pid):
    return status_mib(pid, "VmHWM")


# ---------------------------------------------------------------- namespaces and stacks


def new_netns():
    """A fresh network namespace held by a sleeping process whose capabilities are dropped: pasta
    keeps only a few capabilities and opening /proc/PID/ns/net of a process holding more than it
    has is refused (ptrace access check), so the holder must hold none."""
    p = spawn(["unshare", "--net", "setpriv", "--bounding-set=-all", "--inh-caps=-all",
               "sleep", "infinity"], "netns-holder")
    mine = os.readlink("/proc/self/ns/net")
    end = time.time() + 5
    while time.time() < end:
        try:
            with open(f"/proc/{p.pid}/comm") as f:
                comm = f.read().strip()
            if os.readlink(f"/proc/{p.pid}/ns/net") != mine and comm == "sleep":
                break
        except FileNotFoundError:
            pass
        time.sleep(0.01)
    else:
        raise RuntimeError("network namespace holder did not start")
    subprocess.run(["nsenter", f"--net=/proc/{p.pid}/ns/net", "ip", "link", "set", "lo", "up"], check=True)
    return p


def ns_run(ns, args, timeout, check=True):
    r = subprocess.run(["nsenter", f"--net=/proc/{ns}/ns/net", *args], capture_output=True, text=True,
                       timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed in ns: {r.stderr.strip() or r.stdout.strip()}")
    return r


def wait_ns_configured(ns, timeout=10):
    end = time.time() + timeout
    while time.time() < end:
        r = ns_run(ns, ["ip", "-4", "route", "show", "default"], 5, check=False)
        a = ns_run(ns, ["ip", "-4", "-o", "addr", "show"], 5, check=False)
        if GW in r.stdout and f"{NS_ADDR}/" in a.stdout:
            return
        time.sleep(0.05)
    raise RuntimeError(f"namespace not configured after {timeout}s")


def free_port():
    """A port free on 127.0.0.1 for both TCP and UDP (other benches may run on this host)."""
    for _ in range(100):
        t = socket.socket()
        t.bind(("127.0.0.1", 0))
        port = t.getsockname()[1]
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            u.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            u.close()
            t.close()
    raise SystemExit("no free port")


class Stack:
    """One stack serving one fresh namespace. The published port has the same number on the host
    and in the namespace: pasta 2023-03 does not carry UDP replies back through a remapped port
    (`-u A:B`), which iperf3's UDP handshake needs."""
    name = "?"
    path_note = ""

    def __init__(self, servers=True):
        self.ns = None  # holder process
        self.proc = None
        self.servers = servers
        self.host_iperf = self.guest_iperf = None
        self.host_port = self.guest_port = free_port()

    @property
    def nspid(self):
        return self.ns.pid

    def start(self):
        self.ns = new_netns()
        self.launch()
        wait_ns_configured(self.nspid)
        if self.servers:
            self.restart_servers()

    def restart_servers(self):
        """iperf3 servers of this stack's own: one on the host's 127.0.0.1 for ns->host runs, one in
        the namespace behind the published port. Restarted after a failed run, which can leave an
        iperf3 server stuck in its test."""
        stop([p for p in (self.host_iperf, self.guest_iperf) if p])
        self.host_iperf_port = free_port()
        self.host_iperf = spawn(["iperf3", "-s", "-B", "127.0.0.1", "-p", str(self.host_iperf_port)],
                                f"iperf3-host-{self.name}")
        self.guest_iperf = spawn(["iperf3", "-s", "-p", str(self.guest_port)], f"iperf3-ns-{self.name}",
                                 ns=self.nspid)
        wait_listen(self.host_iperf_port)
        wait_listen(self.guest_port, self.nspid)

    def stop(self):
        stop([p for p in (self.host_iperf, self.guest_iperf, self.proc, self.ns) if p])

    def alive(self):
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; see {WORK}/{self.name}.log")


class Slirp4netns(Stack):
    name = "slirp4netns"
    path_note = "libslirp for both directions"

    def launch(self):
        sock = os.path.join(WORK, f"slirp4netns-{self.nspid}.sock")
        r, w = os.pipe()
        self.proc = spawn(["slirp4netns", "--configure", f"--mtu={MTU}", "--api-socket", sock,
                           "--ready-fd", str(w), str(self.nspid), "tap0"], self.name, pass_fds=(w,))
        os.close(w)
        ready, _, _ = select.select([r], [], [], 10)
        data = os.read(r, 16) if ready else b""
        os.close(r)
        if data != b"1":
            raise RuntimeError(f"slirp4netns not ready; see {WORK}/{self.name}.log")
        for proto in ("tcp", "udp"):
            req = {"execute": "add_hostfwd", "arguments": {"proto": proto, "host_addr": "127.0.0.1",
                                                          "host_port": self.host_port, "guest_port": self.guest_port}}
            s = socket.socket(socket.AF_UNIX)
            s.settimeout(5)
            s.connect(sock)
            s.sendall(json.dumps(req).encode())
            resp = json.loads(s.recv(4096))
            s.close()
            if "error" in resp:
                raise RuntimeError(f"slirp4netns add_hostfwd {proto}: {resp}")


class Pasta(Stack):
    name = "pasta"
    path_note = "ns->host: TAP; host->ns published from 127.0.0.1: splice (TCP) / recvmmsg-sendmmsg (UDP)"

    def launch(self):
        p, g = self.host_port, self.guest_port
        fwd = str(p) if p == g else f"{p}:{g}"
        self.args = [
            "pasta", "--runas", "0:0", "-f", "--log-file", os.path.join(WORK, "pasta-internal.log"),
            "-4", "--config-net", "-I", "tap0", "-m", str(MTU),
            "-a", NS_ADDR, "-n", "24", "-g", GW,
            "-t", f"127.0.0.1/{fwd}", "-u", f"127.0.0.1/{fwd}",
            "-T", "none", "-U", "none",
            "--netns", f"/proc/{self.nspid}/ns/net",
        ]
        self.proc = spawn(self.args, self.name)


class BerthSlirp(Stack):
    name = "berth-slirp"
    path_note = "berth's userspace stack"

    def launch(self):
        p, g = self.host_port, self.guest_port
        self.proc = spawn([BERTH_SLIRP, "--netns", f"/proc/{self.nspid}/ns/net", "--mtu", str(MTU),
                           "--allow-host-loopback",
                           "--publish", f"127.0.0.1:{p}:{g}/tcp",
                           "--publish", f"127.0.0.1:{p}:{g}/udp"],
                          self.name, stdout=subprocess.PIPE)
        out = self.proc.stdout
        end = time.time() + 15
        buf = b""
        while time.time() < end:
            ready, _, _ = select.select([out], [], [], max(0.0, end - time.time()))
            if not ready:
                break
            chunk = os.read(out.fileno(), 4096)
            if not chunk:
                break
            buf += chunk
            if any(line.strip() == b"ready" for line in buf.splitlines()):
                # keep draining stdout so a chatty berth-slirp never blocks on a full pipe
                def drain():
                    with open(os.path.join(WORK, "berth-slirp.stdout"), "ab") as f:
                        for line in out:
                            f.write(line)
                threading.Thread(target=drain, daemon=True).start()
                return
        raise RuntimeError(f"berth-slirp did not print 'ready' within 15s; see {WORK}/berth-slirp.log")


# ---------------------------------------------------------------- measurements


def wait_listen(port, ns=None, proto="t", timeout=10.0):
    cmd = ["ss", f"-Hl{proto}n", f"sport = :{port}"]
    if ns:
        cmd = ["nsenter", f"--net=/proc/{ns}/ns/net", *cmd]
    end = time.time() + timeout
    while time.time() < end:
        if subprocess.run(cmd, capture_output=True, text=True).stdout.strip():
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout}s")


def iperf(args, secs, ns=None):
    """Runs an iperf3 client (in ns if given) and returns its JSON; retries once when the server is
    still busy with the previous test."""
    cmd = ["iperf3", "--json", "-t", str(secs), "--connect-timeout", "3000", *args]
    if ns:
        cmd = ["nsenter", f"--net=/proc/{ns}/ns/net", *cmd]
    for attempt in range(3):
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=secs + 10)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"iperf3 {' '.join(args)} timed out")
        try:
            d = json.loads(r.stdout)
        except json.JSONDecodeError:
            d = {"error": r.stdout[-300:] + r.stderr[-300:]}
        if "error" not in d:
            return d
        if "busy" in d["error"] and attempt < 2:
            time.sleep(1)
            continue
        raise RuntimeError(f"iperf3 {' '.join(args)}: {d['error']}")


def tcp_gbps(d):
    return d["end"]["sum_received"]["bits_per_second"] / 1e9


def udp_stats(d):
    rx = d["end"]["sum_received"]
    secs = rx["seconds"] or 1
    got = rx["bytes"] / UDP_LEN
    return got / secs, rx["lost_percent"]


def host_servers():
    close_port, hold_port = free_port(), free_port()
    p = spawn([sys.executable, HERE, "serve", str(close_port), str(hold_port)], "serve")
    wait_listen(close_port)
    wait_listen(hold_port)
    return p, close_port, hold_port


def connrate(stack, port, n, workers):
    r = ns_run(stack.nspid, [sys.executable, HERE, "connrate", GW, str(port), str(n), str(workers)], 300)
    return json.loads(r.stdout)


def hold_rss(stack, port, n):
    """RSS of the stack idle and while n TCP flows from the ns to the host are open."""
    idle = rss_mib(stack.proc.pid)
    p = spawn([sys.executable, HERE, "hold", GW, str(port), str(n)], f"hold-{stack.name}",
              ns=stack.nspid, stdout=subprocess.PIPE, stdin=subprocess.PIPE)
    try:
        ready, _, _ = select.select([p.stdout], [], [], 120)
        line = p.stdout.readline().decode().strip() if ready else ""
        if line != f"held {n}":
            raise RuntimeError(f"hold client: {line or 'no answer in 120s'}")
        time.sleep(0.5)  # let the stack settle
        return idle, rss_mib(stack.proc.pid)
    finally:
        p.stdin.close()
        stop([p])


def measure(stack, servers, secs, conns, notes, rnd):
    """One round of every figure for `stack`. A figure that fails is left out (None) and noted; the
    stack's iperf3 servers are then restarted so the next figure starts clean."""
    close_port, _ = servers
    ns, hp = stack.nspid, stack.host_port
    res = {k: None for k, *_ in COLUMNS}

    def fig(keys, fn):
        try:
            stack.alive()
            vals = fn()
            for k, v in zip(keys, vals if isinstance(vals, tuple) else (vals,)):
                res[k] = v
        except Exception as e:  # noqa: BLE001 - any failure is reported in the table's notes
            notes.append(f"{stack.name} round {rnd}: {'/'.join(keys)} failed: {e}")
            FAILED.append(stack.name)
            if stack.proc.poll() is None and stack.servers:
                stack.restart_servers()

    def n2h_1():
        cpu0 = cpu_seconds(stack.proc.pid)
        d = iperf(["-c", GW, "-p", str(stack.host_iperf_port)], secs, ns=ns)
        cpu1 = cpu_seconds(stack.proc.pid)
        gbit = d["end"]["sum_received"]["bytes"] * 8 / 1e9
        return tcp_gbps(d), ((cpu1 - cpu0) / gbit if gbit else None)

    fig(("n2h_1", "cpu_per_gbit"), n2h_1)
    fig(("n2h_8",), lambda: tcp_gbps(iperf(["-c", GW, "-p", str(stack.host_iperf_port), "-P", "8"], secs, ns=ns)))
    fig(("h2n_1",), lambda: tcp_gbps(iperf(["-c", "127.0.0.1", "-p", str(hp)], secs)))
    fig(("h2n_8",), lambda: tcp_gbps(iperf(["-c", "127.0.0.1", "-p", str(hp), "-P", "8"], secs)))
    fig(("h2n_gw_1",), lambda: tcp_gbps(iperf(["-c", GW, "-p", str(stack.host_iperf_port), "-R"], secs, ns=ns)))
    udp = ["-u", "-b", "0", "-l", str(UDP_LEN)]
    fig(("udp_n2h_pps", "udp_n2h_loss"),
        lambda: udp_stats(iperf(["-c", GW, "-p", str(stack.host_iperf_port), *udp], secs, ns=ns)))
    fig(("udp_h2n_pps", "udp_h2n_loss"), lambda: udp_stats(iperf(["-c", "127.0.0.1", "-p", str(hp), *udp], secs)))

    def conn():
        c = connrate(stack, close_port, conns, 4)
        if c["errors"]:
            notes.append(f"{stack.name} round {rnd}: {c['errors']} of {conns} connections failed")
        return c["rate"], c["p99_ms"]

    fig(("conn_rate", "conn_p99_ms"), conn)
    res["rss_peak"] = peak_rss_mib(stack.proc.pid)
    return res


def measure_memory(cls, servers, flows, notes, rnd):
    """RSS of a fresh instance of the stack (a traffic-worn one keeps its buffers), idle and with
    `flows` open TCP flows from its namespace to the host."""
    s = cls(servers=False)
    try:
        s.start()
        idle, held = hold_rss(s, servers[1], flows)
        return {"rss_idle": idle, "rss_flows": held}
    except Exception as e:  # noqa: BLE001
        notes.append(f"{s.name} round {rnd}: memory with {flows} flows failed: {e}")
        FAILED.append(s.name)
        return {}
    finally:
        s.stop()


# ---------------------------------------------------------------- helpers run as subcommands


def cmd_serve(close_port, hold_port):
    """Host-side servers: close_port accepts and closes at once; hold_port sends one byte and holds
    the connection until the peer closes it."""
    raise_nofile()

    async def on_close(reader, writer):
        writer.close()

    async def on_hold(reader, writer):
        writer.write(b"x")
        try:
            await writer.drain()
            while await reader.read(4096):
                pass
        except (ConnectionError, OSError):
            pass
        writer.close()

    async def main():
        s1 = await asyncio.start_server(on_close, "127.0.0.1", close_port, backlog=4096, reuse_address=True)
        s2 = await asyncio.start_server(on_hold, "127.0.0.1", hold_port, backlog=4096, reuse_address=True)
        async with s1, s2:
            await asyncio.gather(s1.serve_forever(), s2.serve_forever())

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    asyncio.run(main())


def cmd_connrate(host, port, n, workers):
    """n connections spread over `workers` threads, each: connect, read until the server's EOF,
    close. Prints JSON: connections/s, p50/p99 latency of that cycle, errors."""
    lat, errors = [], [0]
    lock = threading.Lock()
    per = [n // workers + (1 if i < n % workers else 0) for i in range(workers)]

    def work(k):
        mine = []
        for _ in range(k):
            t0 = time.perf_counter()
            s = None
            try:
                s = socket.create_connection((host, port), timeout=5)
                while s.recv(64):
                    pass
                s.close()
                s = None
                mine.append(time.perf_counter() - t0)
            except OSError:
                with lock:
                    errors[0] += 1
                    if errors[0] > 50:  # a broken stack: stop rather than time out 2,000 times
                        break
            finally:
                if s:
                    s.close()
        with lock:
            lat.extend(mine)

    threads = [threading.Thread(target=work, args=(k,)) for k in per]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    lat.sort()
    q = lambda f: lat[min(len(lat) - 1, int(f * len(lat)))] * 1e3 if lat else float("nan")  # noqa: E731
    print(json.dumps({"rate": len(lat) / wall, "p50_ms": q(0.50), "p99_ms": q(0.99), "errors": errors[0]}))


def cmd_hold(host, port, n):
    """Opens n connections (each proven end to end by the server's first byte), prints 'held N',
    and holds them until stdin closes."""
    raise_nofile()
    socks = []
    for _ in range(n):
        try:
            s = socket.create_connection((host, port), timeout=5)
            if s.recv(1) != b"x":
                raise OSError("no greeting")
            socks.append(s)
        except OSError as e:
            print(f"failed after {len(socks)}: {e}", flush=True)
            return
    print(f"held {len(socks)}", flush=True)
    sys.stdin.read()
    for s in socks:
        s.close()


# ---------------------------------------------------------------- report

COLUMNS = [
    ("n2h_1", "TCP ns→host 1 (Gbit/s)", "{:.2f}", True),
    ("n2h_8", "TCP ns→host 8 (Gbit/s)", "{:.2f}", True),
    ("h2n_1", "TCP host→ns pub 1 (Gbit/s)", "{:.2f}", True),
    ("h2n_8", "TCP host→ns pub 8 (Gbit/s)", "{:.2f}", True),
    ("h2n_gw_1", "TCP host→ns via gw -R 1 (Gbit/s)", "{:.2f}", True),
    ("udp_n2h_pps", "UDP ns→host (kpps)", "{:.0f}", True),
    ("udp_n2h_loss", "UDP ns→host loss %", "{:.1f}", False),
    ("udp_h2n_pps", "UDP host→ns pub (kpps)", "{:.0f}", True),
    ("udp_h2n_loss", "UDP host→ns pub loss %", "{:.1f}", False),
    ("conn_rate", "conn/s ns→host", "{:.0f}", True),
    ("conn_p99_ms", "conn p99 (ms)", "{:.2f}", False),
    ("cpu_per_gbit", "stack CPU s/Gbit", "{:.3f}", False),
    ("rss_idle", "RSS idle (MiB)", "{:.1f}", False),
    ("rss_flows", "RSS with flows (MiB)", "{:.1f}", False),
    ("rss_peak", "peak RSS under traffic (MiB)", "{:.1f}", False),
]


def fmt(key, v, f):
    if v is None or v != v:
        return "–"
    if key.endswith("_pps"):
        v = v / 1000
    return f.format(v)


def ratio(a, b):
    if a is None or b is None or a != a or b != b or b == 0:
        return "–"
    return f"{a / b:.2f}×"


def report(results, stacks, args, secs, rounds, notes):
    med = {}
    for s in stacks:
        rs = results.get(s.name, [])
        med[s.name] = {}
        for k, *_ in COLUMNS:
            vals = [r[k] for r in rs if r.get(k) is not None]
            # the peak is a high-water mark since the stack started: its largest value is the figure
            med[s.name][k] = (max(vals) if k == "rss_peak" else statistics.median(vals)) if vals else None
        med[s.name]["rounds"] = len(rs)
    print()
    print(f"usernet comparison ({'short' if args.short else 'full'} mode: {secs}s iperf3 runs, "
          f"median of {rounds} interleaved round(s), {args.conns} connections x4 workers, "
          f"{args.flows} held flows)")
    print("| stack | " + " | ".join(c[1] for c in COLUMNS) + " |")
    print("|---|" + "---|" * len(COLUMNS))
    for s in stacks:
        m = med[s.name]
        print(f"| {s.name} | " + " | ".join(fmt(k, m[k], f) for k, _, f, _ in COLUMNS) + " |")
    b = med.get("berth-slirp")
    if b and b["rounds"]:
        for peer in ("slirp4netns", "pasta"):
            if peer in med and med[peer]["rounds"]:
                print(f"| berth-slirp / {peer} | " + " | ".join(ratio(b[k], med[peer][k]) for k, *_ in COLUMNS) + " |")
    print()
    print("Ratios are plain quotients: above 1 is better for throughput, kpps and conn/s; below 1 is better "
          "for loss, latency, CPU and RSS. \"pub\" = through the port published on the host's 127.0.0.1; "
          "\"via gw -R\" = connection from the ns to 10.0.2.2, data host->ns. CPU s/Gbit: the stack's "
          "utime+stime during the 1-stream ns->host run. RSS idle / with flows: a fresh instance; peak: "
          "VmHWM of the instance that carried the traffic.")
    for s in stacks:
        print(f"- {s.name}: {s.path_note}")
    for n in notes:
        print(f"- {n}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"medians": med, "rounds": results, "secs": secs}, f, indent=1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--short", action="store_true", help="1 s runs, one round, 2000 connections")
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--time", type=int, help="seconds per iperf3 run")
    ap.add_argument("--conns", type=int)
    ap.add_argument("--flows", type=int, default=1000, help="TCP flows held open for the memory figure")
    ap.add_argument("--stacks", default="slirp4netns,pasta,berth-slirp")
    ap.add_argument("--json", help="also write raw results here")
    args = ap.parse_args()
    secs = args.time or (1 if args.short else 3)
    rounds = args.rounds or (1 if args.short else 3)
    args.conns = args.conns or (2000 if args.short else 5000)
    raise_nofile()

    wanted = args.stacks.split(",")
    classes = {"slirp4netns": Slirp4netns, "pasta": Pasta, "berth-slirp": BerthSlirp}
    stacks, notes = [], []
    for name in wanted:
        if name not in classes:
            raise SystemExit(f"unknown stack {name}")
        if name == "berth-slirp" and not os.access(BERTH_SLIRP, os.X_OK):
            print("berth-slirp: not built, skipped", flush=True)
            notes.append(f"berth-slirp: not built ({BERTH_SLIRP}), skipped")
            continue
        stacks.append(classes[name]())
    with open("/proc/loadavg") as f:
        load0 = f.read().split()[:3]

    serve, close_port, hold_port = host_servers()
    servers = (close_port, hold_port)
    live = []
    for s in stacks:
        try:
            s.start()
            live.append(s)
            log(f"{s.name}: up (ns holder {s.nspid}, stack pid {s.proc.pid}, published 127.0.0.1:{s.host_port})")
            if isinstance(s, Pasta):
                log("pasta: " + " ".join(s.args))
        except Exception as e:  # noqa: BLE001 - a stack that cannot start is reported, the others still run
            print(f"{s.name}: failed to start: {e}", flush=True)
            notes.append(f"{s.name}: failed to start: {e}")
            FAILED.append(s.name)
            s.stop()
    results = {s.name: [] for s in stacks}
    for rnd in range(1, rounds + 1):
        for s in live:
            t0 = time.time()
            if s.proc.poll() is not None:
                notes.append(f"{s.name} round {rnd}: the stack had exited ({s.proc.returncode})")
                FAILED.append(s.name)
                continue
            r = measure(s, servers, secs, args.conns, notes, rnd)
            r.update(measure_memory(type(s), servers, args.flows, notes, rnd))
            results[s.name].append(r)
            log(f"round {rnd} {s.name} ({time.time() - t0:.1f}s): "
                + ", ".join(f"{k}={v:.3g}" for k, v in r.items() if v is not None))
    for s in live:
        s.stop()
    stop([serve])
    with open("/proc/loadavg") as f:
        load1 = f.read().split()[:3]
    notes.append(f"load average at start {' '.join(load0)}, at end {' '.join(load1)} ({os.cpu_count()} CPUs); "
                 "other work on the machine skews these figures")
    versions = []
    for cmd in (["slirp4netns", "--version"], ["dpkg-query", "-W", "-f", "${Version}", "passt"], ["iperf3", "--version"]):
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=5).stdout.splitlines()
            versions.append((cmd[0] if cmd[0] != "dpkg-query" else "passt") + " " + (out[0] if out else "?"))
        except (OSError, subprocess.TimeoutExpired):
            pass
    notes.append("versions: " + "; ".join(versions))
    report(results, stacks, args, secs, rounds, notes)


def cleanup(keep_logs):
    stop(list(reversed(PROCS)))
    if keep_logs:
        log(f"logs kept in {WORK}")
        return
    try:
        for f in os.listdir(WORK):
            os.unlink(os.path.join(WORK, f))
        os.rmdir(WORK)
    except OSError:
        pass


if __name__ == "__main__":
    sub = sys.argv[1] if len(sys.argv) > 1 else ""
    if sub == "serve":
        cmd_serve(int(sys.argv[2]), int(sys.argv[3]))
    elif sub == "connrate":
        cmd_connrate(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
    elif sub == "hold":
        cmd_hold(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        WORK = tempfile.mkdtemp(prefix="usernet-bench-")
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        signal.signal(signal.SIGHUP, lambda *_: sys.exit(129))
        ok = False
        try:
            main()
            ok = not FAILED
        finally:
            cleanup(keep_logs=not ok)
