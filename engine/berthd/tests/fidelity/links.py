"""Legacy links (`--link` on the default bridge), printed as facts: tests/netns_api_fidelity.rs
runs it against berthd and against dockerd (with a default bridge) and compares the lines. The
linked container's address and the generated names are printed as placeholders.
"""
import os

from dockercli import docker, must

IMAGE = os.environ["IMAGE"]


must("run", "-d", "--name", "db-1", "--expose", "5432", "--expose", "8000-8002/udp", "--expose", "9000",
     "--expose", "7000-7001",
     "-e", "SECRET=s", "-e", "PATH=/bin", "-e", "X=1", IMAGE, "sleep", "60")
ip = must("inspect", "-f", "{{.NetworkSettings.IPAddress}}", "db-1").strip()
norm = lambda text: text.replace(ip, "IP")
# The linking container's environment (its own hostname left out).
env = must("run", "--rm", "--name", "web", "--link", "db-1:my-db", "--link", "db-1", "-e", "MY_DB_ENV_X=mine",
           IMAGE, "sh", "-c", "export")
for line in sorted(env.splitlines()):
    line = line.removeprefix("export ")
    name, _, value = line.partition("=")
    if name != "HOSTNAME":
        print("env", norm(f"{name}={value.strip(chr(39))}"))
# /etc/hosts names the link by alias, ID and name.
hosts = must("run", "--rm", "--link", "db-1:db", IMAGE, "cat", "/etc/hosts")
cid = must("inspect", "-f", "{{.Id}}", "db-1").strip()[:12]
for line in hosts.splitlines():
    if line.startswith(ip):
        print("hosts", norm(line).replace(cid, "ID"))
# A link to a container that does not run refuses the start.
must("stop", "-t", "0", "db-1")
rc, out, err = docker("run", "--rm", "--name", "late", "--link", "db-1:db", IMAGE, "true")
print("link to stopped", rc, "Cannot link to a non running container: /db-1 AS /late/db" in err)
must("rm", "-f", "db-1")
# `docker rm --link`: the link goes, the linked container stays; a container's own name and an
# unknown link are refused.
must("run", "-d", "--name", "db-2", IMAGE, "sleep", "60")
must("create", "--name", "web2", "--link", "db-2:dbx", IMAGE, "true")
print("links", must("inspect", "-f", "{{json .HostConfig.Links}}", "web2").strip())
rc, out, err = docker("rm", "--link", "/web2/dbx")
print("rm link", rc, out.strip())
print("links after", must("inspect", "-f", "{{json .HostConfig.Links}}", "web2").strip())
print("linked stays", docker("inspect", "-f", "{{.State.Running}}", "db-2")[1].strip())
rc, out, err = docker("rm", "--link", "db-2")
print("rm own name", rc, "cannot remove the default link name of the container" in err)
rc, out, err = docker("rm", "--link", "/web2/nothere")
print("rm unknown link", rc, "No such container: web2/nothere" in err)
# The link's name stands for the linked container: `rm` of it removes that container.
must("create", "--name", "web3", "--link", "db-2:dby", IMAGE, "true")
rc, out, err = docker("rm", "-f", "web3/dby")
print("rm by link name", rc, out.strip(), docker("inspect", "db-2")[0])
must("rm", "-f", "web2", "web3")
docker("rm", "-f", "db-2")
