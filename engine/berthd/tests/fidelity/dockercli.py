"""The docker CLI as the fidelity scripts run it: `docker(*args)` gives the exit code and the
stripped output and error; `must(*args)` gives the output, or prints the failure and exits 1."""
import subprocess
import sys


def docker(*args, input=None):
    r = subprocess.run(["docker", *args], capture_output=True, input=input)
    return r.returncode, r.stdout.decode(errors="replace").strip(), r.stderr.decode(errors="replace").strip()


def must(*args, input=None):
    rc, out, err = docker(*args, input=input)
    if rc != 0:
        print("FAILED", args, out, err); sys.exit(1)
    return out
