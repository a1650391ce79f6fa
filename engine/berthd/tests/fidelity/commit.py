"""docker commit, export and import --change, printed as facts: tests/netns_api_fidelity.rs runs
it against berthd and against dockerd and compares the lines. Driven by the real docker CLI
and docker-py, as a user runs them; raw API reads at 1.41 (the newest both daemons speak).
"""
import io, json, os, socket, subprocess, sys, tarfile, http.client

from dockercli import docker, must

IMAGE = os.environ["IMAGE"]
S = os.environ["DOCKER_HOST"][7:]


class C(http.client.HTTPConnection):
    def __init__(s, path): super().__init__("x"); s.p = path
    def connect(s):
        s.sock = socket.socket(socket.AF_UNIX); s.sock.connect(s.p)


def api(path):
    c = C(S); c.request("GET", "/v1.41" + path); r = c.getresponse(); return json.loads(r.read())


def fact(*words):
    print(*words)


# A base with a directory of its own, committed first.
must("run", "--name", "c0", "--network", "none", IMAGE, "sh", "-c", "mkdir /data; echo old > /data/old")
must("commit", "c0", "base")
must("rm", "c0")
# A container that adds, changes and deletes files, replaces a directory whole (opaque in the
# layer), makes a link and a second name for a file.
must("run", "--name", "c1", "--network", "none", "-e", "X=1", "-w", "/tmp", "base", "sh", "-c",
     "echo hi > /tmp/f; rm /bin/true; mkdir -p /var/x; touch /var/x/y; rm -rf /data; mkdir /data; "
     "echo only > /data/only; ln -s /nowhere /tmp/link; ln /tmp/f /tmp/hard")
parent = api("/images/base/json")["Id"]
cid = api("/containers/c1/json")["Id"]
must("commit", "-a", "me", "-m", "a message", "-c", "ENV Y=$X", "-c", 'CMD ["cat", "/tmp/f"]',
     "-c", "EXPOSE 80 53/udp", "-c", "LABEL a=b", "-c", "WORKDIR sub", "-c", "USER 0", c1 := "c1", "img1")
i = api("/images/img1/json")
for k in ["Cmd", "Entrypoint", "Env", "ExposedPorts", "Labels", "WorkingDir", "User", "Volumes"]:
    fact("config", k, json.dumps(i["Config"].get(k), sort_keys=True))
fact("author", i["Author"], "comment", i["Comment"])
fact("parent is the image", i["Parent"] == parent, "container", i["Container"] == cid)
fact("layers", len(i["RootFS"]["Layers"]) - len(api("/images/base/json")["RootFS"]["Layers"]))
fact("container config cmd", json.dumps(i["ContainerConfig"]["Cmd"]))
h = api("/images/img1/history")
fact("history", len(h), json.dumps(h[0]["CreatedBy"]), json.dumps(h[0]["Comment"]))
fact("run", must("run", "--rm", "img1"))
fact("files", must("run", "--rm", "-w", "/", "img1", "sh", "-c",
     "test -e /bin/true && echo has-true; ls /data; test -f /var/x/y && echo y; test -L /tmp/link && echo link; cat /tmp/hard; pwd"))
fact("workdir", must("run", "--rm", "img1", "sh", "-c", "pwd"))

# Refused changes, nothing made.
before = len(api("/images/json?all=1"))
for bad in ["RUN echo", "FROM x", "ENV", "EXPOSE 80/icmp", "BOGUS x"]:
    rc, out, err = docker("commit", "-c", bad, "c1", "bad")
    fact("bad change", bad, rc != 0, "is not a valid change command" in err)
fact("nothing made", len(api("/images/json?all=1")) == before)

# A running container is paused while committed (the default) and runs on after.
must("run", "-d", "--name", "c3", "--network", "none", IMAGE, "sh", "-c", "echo a > /a; sleep 60")
must("exec", "c3", "true")
must("commit", "c3", "img3")
fact("running after commit", api("/containers/c3/json")["State"]["Status"])
fact("run img3", must("run", "--rm", "img3", "cat", "/a"))
must("commit", "--pause=false", "c3", "img3b")
fact("run img3b", must("run", "--rm", "img3b", "cat", "/a"))
must("rm", "-f", "c3")

# Without a tag: a dangling image, answered by ID.
out = must("commit", "c1")
fact("untagged", out.startswith("sha256:"), api(f"/images/{out}/json")["RepoTags"])

# export: the container's whole file system, its changes applied.
raw = subprocess.run(["docker", "export", "c1"], capture_output=True).stdout
names = {m.name.rstrip("/") for m in tarfile.open(fileobj=io.BytesIO(raw))}
fact("export", sorted(n for n in names if n in {"tmp/f", "bin/true", "bin/sh", "data/only", "data/old", "var/x/y", "tmp/link"}))
members = {m.name.rstrip("/"): m for m in tarfile.open(fileobj=io.BytesIO(raw))}
fact("export link", members["tmp/link"].linkname, "content", tarfile.open(fileobj=io.BytesIO(raw)).extractfile("tmp/f").read())
fact("export hard link", members["tmp/hard"].islnk(), members["tmp/hard"].linkname)

# import with --change and --message, from the exported tarball.
must("import", "-c", "ENV A=1", "-c", 'CMD ["cat", "/data/only"]', "-m", "imported", "-", "imp1", input=raw)
i = api("/images/imp1/json")
fact("import", json.dumps(i["Config"].get("Env")), json.dumps(i["Config"].get("Cmd")), i["Comment"])
fact("run imp1", must("run", "--rm", "imp1"))
rc, out, err = docker("import", "-c", "RUN x", "-", "imp2", input=raw)
fact("import bad change", rc != 0, "is not a valid change command" in err)

# docker-py's high-level commit.
import docker as dockerpy
client = dockerpy.DockerClient(base_url=os.environ["DOCKER_HOST"], version="1.41")
img = client.containers.get("c1").commit(repository="pyimg", tag="t", message="py", author="a", changes=["ENV P=1"])
fact("docker-py", img.tags, img.attrs["Comment"], img.attrs["Author"], json.dumps(img.attrs["Config"]["Env"]))
client.close()
must("rm", "c1")
