"""What berth's comparison scripts share: running themselves inside a throwaway network, mount
and PID namespace, starting and stopping the processes under test, and waiting for listeners."""

import os
import statistics
import subprocess
import sys
import tempfile
import time

TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(os.path.dirname(__file__), "..", "target"))
PIDS = []
LOGS = tempfile.mkdtemp(prefix="berth-bench-logs-")
ENV = dict(os.environ, RUST_BACKTRACE="0")


def release_bin(name):
    return os.path.join(TARGET, "release", name)


def sh(cmd):
    subprocess.run(cmd, shell=True, check=True)


def in_ns(ns, args):
    return ["nsenter", f"--net=/run/netns/{ns}", *args]


def spawn(args, ns=None, **kw):
    """Starts a process (inside namespace `ns` if given), its stderr to a log under LOGS; it is
    stopped when the script ends."""
    name = os.path.basename(args[0])
    if ns:
        args = in_ns(ns, args)
    kw.setdefault("env", ENV)
    with open(os.path.join(LOGS, name + ".log"), "ab") as log:
        p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=log, **kw)
    PIDS.append(p)
    return p


def stop(procs):
    for p in procs:
        if p.poll() is None:
            if p.stdin:
                p.stdin.close()
            p.terminate()
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def wait_listen(port, ns=None, timeout=10.0):
    """Waits until something listens on TCP `port` without connecting to it: iperf3 takes a bare
    probe connection for a broken test and may reset the next real client while recovering."""
    cmd = ["ss", "-Hltn", f"sport = :{port}"]
    if ns:
        cmd = in_ns(ns, cmd)
    end = time.time() + timeout
    while time.time() < end:
        if subprocess.run(cmd, capture_output=True, text=True).stdout.strip():
            return
        time.sleep(0.05)
    raise SystemExit(f"nothing listens on port {port} ({ns or 'host'}) after {timeout}s; logs in {LOGS}")


def median(xs):
    return statistics.median(xs)


def run(main):
    """Runs `main` inside a throwaway network/mount/PID namespace with its own /run/netns
    (re-executing this script under unshare), then stops every process it spawned."""
    if os.environ.get("BERTH_BENCH_INNER") != "1":
        os.makedirs("/run/netns", exist_ok=True)
        env = dict(os.environ, BERTH_BENCH_INNER="1")
        cmd = ["unshare", "--net", "--mount", "--pid", "--fork", "--mount-proc", "--propagation", "private",
               "sh", "-c", 'mount -t tmpfs bench /run/netns && exec "$@"', "sh", sys.executable, *sys.argv]
        sys.exit(subprocess.run(cmd, env=env).returncode)
    try:
        main()
    finally:
        stop(PIDS)
