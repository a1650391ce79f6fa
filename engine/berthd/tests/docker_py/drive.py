"""docker-py (PyPI `docker`) drives berthd as a second, independent Docker API client.

Run by tests/netns_docker_py.rs with DOCKER_HOST pointing at berthd, IMAGE a local busybox
image and REGISTRY a loopback docker-registry (host:port). Exits non-zero on any mismatch.
"""
import os
import time
import urllib.request

import docker

IMAGE = os.environ["IMAGE"]
REGISTRY = os.environ["REGISTRY"]
c = docker.from_env(version="1.43")

assert c.ping()
assert c.version()["ApiVersion"] == "1.43"

# containers.run with a published port and a named volume; logs; exec_run.
vol = c.volumes.create("pyvol")
web = c.containers.run(
    IMAGE,
    ["sh", "-c", "echo hello-py > /tmp/index.html; echo started; exec httpd -f -p 80 -h /tmp"],
    name="pyweb",
    detach=True,
    ports={"80/tcp": 18081},
    volumes={"pyvol": {"bind": "/data", "mode": "rw"}},
)
for _ in range(100):
    try:
        body = urllib.request.urlopen("http://127.0.0.1:18081/", timeout=2).read()
        break
    except OSError:
        time.sleep(0.05)
else:
    raise SystemExit("no answer on 18081")
assert body == b"hello-py\n", body
web.reload()
assert web.status == "running", web.status
assert web.ports["80/tcp"][0]["HostPort"] == "18081", web.ports
assert web.logs() == b"started\n", web.logs()
code, out = web.exec_run(["sh", "-c", "echo kept > /data/f; cat /data/f"])
assert (code, out) == (0, b"kept\n"), (code, out)
code, out = web.exec_run(["sh", "-c", "exit 5"])
assert code == 5, code
assert [x.name for x in c.containers.list()] == ["pyweb"]
web.remove(force=True)

# The volume outlives the container.
out = c.containers.run(IMAGE, ["cat", "/data/f"], volumes={"pyvol": {"bind": "/data"}}, remove=True)
assert out == b"kept\n", out
vol.remove()
assert "pyvol" not in [v.name for v in c.volumes.list()]

# Networks: two containers reach each other by name.
net = c.networks.create("pynet")
srv = c.containers.run(
    IMAGE,
    ["sh", "-c", "echo by-name > /tmp/index.html; exec httpd -f -p 80 -h /tmp"],
    name="pysrv",
    detach=True,
    network="pynet",
)
out = c.containers.run(IMAGE, ["wget", "-qO-", "http://pysrv/"], network="pynet", remove=True)
assert out == b"by-name\n", out
srv.remove(force=True)
net.remove()

# Health checks through the high-level API: the state, the container's `health`, the filter.
hc = c.containers.run(
    IMAGE,
    ["sleep", "60"],
    name="pyhealth",
    detach=True,
    healthcheck={"test": ["CMD-SHELL", "test -e /tmp/ok"], "interval": 100_000_000, "retries": 1},
)
hc.reload()
assert hc.attrs["Config"]["Healthcheck"]["Test"] == ["CMD-SHELL", "test -e /tmp/ok"], hc.attrs["Config"]
for want in ["unhealthy", "healthy"]:
    if want == "healthy":
        hc.exec_run(["touch", "/tmp/ok"])
    for _ in range(100):
        hc.reload()
        if hc.attrs["State"]["Health"]["Status"] == want:
            break
        time.sleep(0.05)
    assert hc.health == want, hc.attrs["State"]
    assert [x.name for x in c.containers.list(filters={"health": want})] == ["pyhealth"]
log = hc.attrs["State"]["Health"]["Log"]
assert 0 < len(log) <= 5 and log[-1]["ExitCode"] == 0, log
hc.remove(force=True)

# Images: tag, push to the loopback registry, remove, pull back.
img = c.images.get(IMAGE)
repo = f"{REGISTRY}/py/app"
assert img.tag(repo, "2")
for line in c.images.push(repo, tag="2", stream=True, decode=True):
    assert "error" not in line, line
c.images.remove(f"{repo}:2")
pulled = c.images.pull(repo, tag="2")
assert f"{repo}:2" in pulled.tags, pulled.tags
try:
    c.containers.get("nosuch")
    raise SystemExit("expected NotFound")
except docker.errors.NotFound:
    pass
print("docker-py: all checks passed")
