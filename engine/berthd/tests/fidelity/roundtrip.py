"""What a client sends and reads back, printed as facts: tests/netns_api_fidelity.rs runs it
against berthd and against dockerd (API 1.41, the newest both speak) and compares the lines.

A create with most HostConfig and Config fields set, then inspect: each field as sent, and the
whole set of HostConfig keys; a field berth does not apply refused; StopSignal used by stop; log
drivers none and local; swarm endpoints; the /info keys (printed on a line of their own, which
the test checks as a subset of dockerd's); Config.Entrypoint and Config.Cmd as Docker merges
them with an image's; attach with stream=0; network names and disconnect's refusals.
"""
import json, os, sys, time, http.client, socket
class C(http.client.HTTPConnection):
    def __init__(s, path): super().__init__("x"); s.p = path
    def connect(s):
        s.sock = socket.socket(socket.AF_UNIX); s.sock.connect(s.p)
S = os.environ["DOCKER_HOST"][7:]
def api(m, path, body=None):
    c = C(S); c.request(m, "/v1.41" + path, body=json.dumps(body) if body is not None else None, headers={"Content-Type": "application/json"})
    r = c.getresponse(); d = r.read(); return r.status, (json.loads(d) if d else None)
host = {
  "Binds": ["/tmp:/hosttmp:ro"], "NetworkMode": "bridge", "PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "18099"}]},
  "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3}, "AutoRemove": False, "Dns": ["10.0.0.1"], "DnsOptions": ["ndots:2"],
  "DnsSearch": ["example.com"], "ExtraHosts": ["h1:10.0.0.2"], "Links": None, "PublishAllPorts": False, "ReadonlyRootfs": True,
  "Memory": 67108864, "MemorySwap": 134217728, "MemoryReservation": 33554432, "NanoCpus": 500000000, "CpuShares": 512,
  "CpuPeriod": 0, "CpuQuota": 0, "CpusetCpus": "0", "CpusetMems": "0", "PidsLimit": 100, "OomKillDisable": False,
  "Ulimits": [{"Name": "nofile", "Soft": 1024, "Hard": 2048}], "LogConfig": {"Type": "json-file", "Config": {"max-size": "1m"}},
  "CapAdd": ["NET_ADMIN"], "CapDrop": ["MKNOD"], "SecurityOpt": ["no-new-privileges"], "PidMode": "", "IpcMode": "private",
  "UTSMode": "", "UsernsMode": "", "ShmSize": 134217728, "Init": True, "Tmpfs": {"/run": "size=1m"}, "Sysctls": {"net.ipv4.ip_forward": "1"},
  "GroupAdd": ["123"], "OomScoreAdj": 100, "Privileged": False, "CgroupnsMode": "private", "ConsoleSize": [24, 80],
  "Devices": [], "DeviceCgroupRules": ["c 1:3 rmw"],
}
body = {"Image": os.environ["IMAGE"], "Cmd": ["sleep", "5"], "Env": ["A=1", "B=2"], "Labels": {"l": "v"}, "WorkingDir": "/tmp",
        "StopSignal": "SIGINT", "StopTimeout": 3, "Healthcheck": {"Test": ["CMD", "true"], "Interval": 1000000000}, "ExposedPorts": {"80/tcp": {}},
        "Hostname": "hn", "User": "0:0", "Tty": True, "OpenStdin": True, "HostConfig": host}
st, r = api("POST", "/containers/create?name=rt", body)
if st != 201: print("create", st, r); sys.exit(1)
st, i = api("GET", "/containers/rt/json")
H = i["HostConfig"]
for k in sorted(host): print("sent", k, json.dumps(H.get(k, "MISSING"), sort_keys=True))
for k in sorted(H): print("key", k)
for k in ["StopSignal", "StopTimeout", "Healthcheck", "ExposedPorts", "Hostname", "User", "Tty", "OpenStdin", "Env", "Labels", "WorkingDir", "Cmd", "Entrypoint"]:
    print("config", k, json.dumps(i["Config"].get(k, "MISSING"), sort_keys=True))
st, r = api("POST", "/containers/create?name=rt2", {"Image": os.environ["IMAGE"], "HostConfig": {"KernelMemory": 1000000, "CpuCount": 2}, "Domainname": "x"})
print("unsupported", st)

# StopSignal is what stop sends.
st, r = api("POST", "/containers/create?name=sig", {"Image": os.environ["IMAGE"], "StopSignal": "SIGINT",
    "Cmd": ["sh", "-c", "trap 'exit 42' INT; while true; do sleep 0.1; done"]})
api("POST", "/containers/sig/start")
time.sleep(0.5)
st, _ = api("POST", "/containers/sig/stop?t=5")
st, i = api("GET", "/containers/sig/json")
print("stop signal", i["State"]["ExitCode"], i["Config"].get("StopSignal"))
# Log drivers.
for drv in ["none", "local"]:
    st, r = api("POST", f"/containers/create?name=log-{drv}", {"Image": os.environ["IMAGE"], "Cmd": ["echo", "hi"],
        "HostConfig": {"LogConfig": {"Type": drv, "Config": {}}}})
    api("POST", f"/containers/log-{drv}/start")
    api("POST", f"/containers/log-{drv}/wait")
    c = C(S); c.request("GET", f"/v1.41/containers/log-{drv}/logs?stdout=1"); resp = c.getresponse(); body = resp.read()
    _, i = api("GET", f"/containers/log-{drv}/json")
    text = json.loads(body)["message"] if resp.status != 200 else body.decode()[-3:]
    print("log driver", drv, resp.status, repr(text), i["HostConfig"]["LogConfig"]["Type"])
st, r = api("POST", "/containers/create?name=log-bad", {"Image": os.environ["IMAGE"], "Cmd": ["true"], "HostConfig": {"LogConfig": {"Type": "bogus"}}})
print("log driver bogus", st, r["message"])
# Swarm endpoints on a node outside a swarm.
for path in ["/swarm", "/nodes", "/services", "/tasks", "/secrets", "/configs"]:
    st, r = api("GET", path)
    print("swarm", path, st, r["message"])
# kill: the exit is recorded when kill returns; rm right after never 409.
api("POST", "/containers/create?name=killed", {"Image": os.environ["IMAGE"], "Cmd": ["sleep", "100"]})
api("POST", "/containers/killed/start")
st, _ = api("POST", "/containers/killed/kill")
_, i = api("GET", "/containers/killed/json")
st_rm, _ = api("DELETE", "/containers/killed")
print("kill", st, i["State"]["Status"], i["State"]["ExitCode"], st_rm)
_, info = api("GET", "/info")
print("info-keys", " ".join(sorted(info)))
# docker diff: added, changed and deleted paths, without the runtime's mount points.
api("POST", "/containers/create?name=differ", {"Image": os.environ["IMAGE"],
    "Cmd": ["sh", "-c", "mkdir /tmp/d && echo x > /tmp/d/f && rm /bin/true"]})
api("POST", "/containers/differ/start")
api("POST", "/containers/differ/wait")
st, ch = api("GET", "/containers/differ/changes")
print("diff", st, " ".join(f"{c['Kind']}{c['Path']}" for c in sorted(ch or [], key=lambda c: c["Path"])))
# One image's save.
c = C(S); c.request("GET", "/v1.41/images/" + os.environ["IMAGE"] + "/get"); resp = c.getresponse(); body = resp.read()
print("save one", resp.status, b"manifest.json" in body)

# Config.Entrypoint and Config.Cmd as Docker merges them with the image's (an image with both,
# made by commit), and the process they make.
import subprocess
def cli(*args): return subprocess.run(["docker", *args], capture_output=True, text=True)
cli("create", "--name", "epbase", os.environ["IMAGE"], "true")
cli("commit", "-c", 'ENTRYPOINT ["echo", "ep"]', "-c", 'CMD ["c1"]', "-c", "WORKDIR /srv", "epbase", "epimg")
cases = {"e1": {}, "e2": {"Cmd": ["x", "y"]}, "e3": {"Entrypoint": ["sh"]}, "e4": {"Entrypoint": ["sh"], "Cmd": ["-c", "true"]},
         "e5": {"Entrypoint": [""], "Cmd": ["ls"]}, "e6": {"Entrypoint": ["sh", "-c"], "Cmd": ["echo hi"]}, "e7": {"Entrypoint": []},
         "e8": {"Entrypoint": "sh -c", "Cmd": "echo hi"}, "e9": {"Image": os.environ["IMAGE"], "Cmd": ["ls"]}}
for name, extra in cases.items():
    st, r = api("POST", f"/containers/create?name={name}", {"Image": "epimg", **extra})
    _, i = api("GET", f"/containers/{name}/json")
    print("command", name, st, json.dumps([i["Path"], i["Args"], i["Config"]["Entrypoint"], i["Config"]["Cmd"], i["Config"]["WorkingDir"]]))
st, r = api("POST", "/containers/create?name=e10", {"Image": "epimg", "Entrypoint": [""]})
print("command e10", st)
# Domainname: the UTS namespace's domain name, and echoed.
api("POST", "/containers/create?name=dom", {"Image": os.environ["IMAGE"], "Domainname": "example.org",
    "Hostname": "box", "Cmd": ["cat", "/proc/sys/kernel/domainname"]})
api("POST", "/containers/dom/start"); api("POST", "/containers/dom/wait")
c = C(S); c.request("GET", "/v1.41/containers/dom/logs?stdout=1"); body = c.getresponse().read()
_, i = api("GET", "/containers/dom/json")
print("domainname", i["Config"]["Domainname"], body[8:])
# attach with stream=0: the log so far (logs=1) or nothing, and the end.
api("POST", "/containers/create?name=att", {"Image": os.environ["IMAGE"], "Cmd": ["sh", "-c", "echo one; sleep 0.2; echo two >&2"]})
api("POST", "/containers/att/start"); api("POST", "/containers/att/wait")
for q in ["stream=0&logs=1&stdout=1&stderr=1", "stream=0&logs=1&stdout=1", "stream=0&logs=0&stdout=1&stderr=1"]:
    c = C(S); c.request("POST", f"/v1.41/containers/att/attach?{q}"); resp = c.getresponse()
    print("attach", q, resp.status, resp.read())
# Network names as Docker takes them; disconnect with and without -f.
for n in ["a b", "x/y", "x:y", "UPPER", "ok.name_1-2"]:
    made, gone = cli("network", "create", n), cli("network", "rm", n)
    print("network name", repr(n), made.returncode, gone.returncode)
cli("network", "create", "n1")
api("POST", "/containers/create?name=solo", {"Image": os.environ["IMAGE"], "Cmd": ["true"], "HostConfig": {"NetworkMode": "none"}})
_, solo = api("GET", "/containers/solo/json")
for f in [False, True]:
    st, r = api("POST", "/networks/n1/disconnect", {"Container": "solo", "Force": f})
    print("disconnect not connected", f, r["message"].replace(solo["Id"], "ID"))
st, r = api("POST", "/networks/n1/disconnect", {"Container": "nothere", "Force": True})
print("disconnect gone", st, r["message"])
_, n1 = api("GET", "/networks/n1")
print("network keys", sorted(n1), n1["ConfigFrom"], n1["ConfigOnly"])
cli("network", "rm", "n1")
# A subnet chosen for a new network stays off the host's routes (here two on a veth the script
# adds and removes).
import ipaddress
subprocess.run(["ip", "link", "add", "rt0", "type", "veth", "peer", "name", "rt1"], check=True)
try:
    for a in ["172.18.0.1/16", "172.20.5.1/24"]:
        subprocess.run(["ip", "addr", "add", a, "dev", "rt0"], check=True)
    # Up, so the kernel routes the two prefixes.
    subprocess.run(["ip", "link", "set", "rt0", "up"], check=True)
    routed = [ipaddress.ip_network("172.18.0.0/16"), ipaddress.ip_network("172.20.5.0/24")]
    for n in ["auto1", "auto2", "auto3"]:
        cli("network", "create", n)
        _, net = api("GET", f"/networks/{n}")
        subnet = ipaddress.ip_network(net["IPAM"]["Config"][0]["Subnet"])
        print("auto subnet", n, any(subnet.overlaps(r) for r in routed))
    for n in ["auto1", "auto2", "auto3"]:
        cli("network", "rm", n)
finally:
    subprocess.run(["ip", "link", "del", "rt0"])
