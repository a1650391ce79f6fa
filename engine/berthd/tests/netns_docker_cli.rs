//! The real `docker` CLI drives berthd: run -d -p, ps, logs, inspect, stop, rm -f, volumes and
//! networks, and Docker's errors and exit codes. Privileged: run through scripts/netns-test.sh.

#[path = "../../../portproxy/tests/netns_support/mod.rs"]
#[allow(dead_code)]
mod netns_support;

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use support::{Berthd, DOCKER, IMAGE, Registry};

fn http_get(addr: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(3)))?;
    s.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

#[test]
fn netns_docker_cli_drives_berthd() {
    if !netns_support::enabled("netns_docker_cli_drives_berthd") {
        return;
    }
    if !Path::new(DOCKER).exists() {
        panic!("{DOCKER} is missing: the docker CLI is part of this machine");
    }
    let d = Berthd::start();
    let v = d.ok(&["version", "--format", "{{.Server.APIVersion}}"]);
    assert_eq!(v.trim(), "1.43");

    // run -d -p: the ID is printed, the server answers on the published port.
    let id = d.ok(&[
        "run", "-d", "--name", "web", "-p", "8080:80", "--hostname", "webhost", IMAGE, "sh", "-c",
        "echo hello-from-$HOSTNAME > /tmp/index.html; echo started; echo warn >&2; exec httpd -f -p 80 -h /tmp",
    ]);
    let id = id.trim();
    assert_eq!(id.len(), 64, "{id}");
    let t0 = Instant::now();
    let body = loop {
        if let Ok(b) = http_get("127.0.0.1:8080") {
            break b;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "no answer on 8080");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(body.contains("hello-from-webhost"), "{body}");

    // ps: Docker's columns, PORTS as Docker prints them; --format and -q.
    let ps = d.ok(&["ps"]);
    assert!(ps.starts_with("CONTAINER ID"), "{ps}");
    assert!(
        ps.contains("0.0.0.0:8080->80/tcp") && ps.contains(" web"),
        "{ps}"
    );
    let fmt = d.ok(&["ps", "--format", "{{.Names}} {{.Status}} {{.Image}}"]);
    assert!(fmt.starts_with("web Up "), "{fmt}");
    assert!(fmt.trim_end().ends_with(IMAGE), "{fmt}");
    assert_eq!(d.ok(&["ps", "-q"]).trim(), &id[..12]);
    let filtered = d.ok(&["ps", "-a", "--filter", "status=exited", "-q"]);
    assert!(filtered.trim().is_empty(), "{filtered}");

    // logs: stdout and stderr apart.
    let out = d.docker(&["logs", "web"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "started\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "warn\n");

    // exec: output, exit codes (127 for a missing command, as Docker), -d.
    assert_eq!(
        d.ok(&["exec", "web", "sh", "-c", "echo in-$HOSTNAME"]),
        "in-webhost\n"
    );
    let code = d.docker(&["exec", "web", "sh", "-c", "exit 7"]);
    assert_eq!(code.status.code(), Some(7), "{code:?}");
    let nf = d.docker(&["exec", "web", "nope"]);
    assert_eq!(nf.status.code(), Some(127), "{nf:?}");
    d.ok(&["exec", "-d", "web", "sh", "-c", "echo detached > /tmp/f"]);
    let t0 = Instant::now();
    while d.docker(&["exec", "web", "cat", "/tmp/f"]).stdout != b"detached\n" {
        assert!(t0.elapsed() < Duration::from_secs(5), "exec -d did not run");
        std::thread::sleep(Duration::from_millis(50));
    }

    // top lists the container's processes, execs included.
    let top = d.ok(&["top", "web"]);
    assert!(
        top.starts_with("UID") && top.contains("httpd -f -p 80 -h /tmp"),
        "{top}"
    );

    // run attached: output streamed, the container's exit code is docker's; --rm removes it;
    // -i passes stdin; -it under a pty gets a terminal.
    let out = d.docker(&[
        "run",
        "--rm",
        IMAGE,
        "sh",
        "-c",
        "echo hi; echo oops >&2; exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "oops\n");
    let mut cat = Command::new(DOCKER)
        .env("DOCKER_HOST", format!("unix://{}", d.sock.display()))
        .env("DOCKER_CONFIG", d.dir.path().join("docker-config"))
        .args(["run", "--rm", "-i", IMAGE, "cat"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    cat.stdin.take().unwrap().write_all(b"piped-in\n").unwrap();
    let out = cat.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "piped-in\n");
    assert_eq!(out.status.code(), Some(0));
    let it = Command::new("script")
        .env("DOCKER_HOST", format!("unix://{}", d.sock.display()))
        .env("DOCKER_CONFIG", d.dir.path().join("docker-config"))
        .args([
            "-qec",
            &format!("{DOCKER} run --rm -it {IMAGE} sh -c '[ -t 0 ] && echo on-a-tty; exit 4'"),
            "/dev/null",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&it.stdout).contains("on-a-tty"),
        "{it:?}"
    );
    assert_eq!(it.status.code(), Some(4), "{it:?}");
    assert_eq!(
        d.ok(&["ps", "-a", "-q"]).trim(),
        &id[..12],
        "--rm removed the others"
    );

    // inspect through Go templates.
    let ins = d.ok(&[
        "inspect",
        "-f",
        "{{.State.Running}} {{.Name}} {{.NetworkSettings.IPAddress}} {{.Config.Hostname}}",
        "web",
    ]);
    assert!(ins.starts_with("true /web 172.17."), "{ins}");
    assert!(ins.trim_end().ends_with("webhost"), "{ins}");

    // stop: httpd as PID 1 has no SIGTERM handler, so SIGKILL after the timeout: 137, as
    // Docker gives; Docker's errors and exit codes.
    d.ok(&["stop", "-t", "1", "web"]);
    let code = d.ok(&[
        "inspect",
        "-f",
        "{{.State.ExitCode}} {{.State.Status}}",
        "web",
    ]);
    assert_eq!(code.trim(), "137 exited");
    let missing = d.docker(&["rm", "nosuch"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("No such container: nosuch"),
        "{missing:?}"
    );
    let dup = d.docker(&["create", "--name", "web", IMAGE, "true"]);
    assert_ne!(dup.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&dup.stderr).contains("is already in use"),
        "{dup:?}"
    );
    d.ok(&["start", "web"]);
    assert_eq!(d.ok(&["ps", "-q"]).trim(), &id[..12]);
    d.ok(&["rm", "-f", "web"]);
    assert!(d.ok(&["ps", "-a", "-q"]).trim().is_empty());
    assert!(http_get("127.0.0.1:8080").is_err(), "unpublished");

    // volumes and networks.
    d.ok(&["volume", "create", "vol1"]);
    assert!(d.ok(&["volume", "ls", "-q"]).lines().any(|l| l == "vol1"));
    d.ok(&["volume", "rm", "vol1"]);
    assert!(!d.ok(&["volume", "ls", "-q"]).lines().any(|l| l == "vol1"));
    d.ok(&["network", "create", "net1"]);
    assert!(
        d.ok(&["network", "ls", "--format", "{{.Name}}"])
            .lines()
            .any(|l| l == "net1")
    );
    let sub = d.ok(&[
        "network",
        "inspect",
        "-f",
        "{{range .IPAM.Config}}{{.Subnet}}{{end}}",
        "net1",
    ]);
    assert!(sub.contains('/'), "{sub}");
    // connect and disconnect a running container: its name resolves on net1 meanwhile.
    d.ok(&[
        "run",
        "-d",
        "--name",
        "peer",
        IMAGE,
        "sh",
        "-c",
        "echo peer > /tmp/index.html; exec httpd -f -p 80 -h /tmp",
    ]);
    d.ok(&[
        "run",
        "-d",
        "--name",
        "asker",
        "--network",
        "net1",
        IMAGE,
        "sleep",
        "1000",
    ]);
    let ask = |d: &Berthd| d.docker(&["exec", "asker", "wget", "-qO-", "http://peer/"]);
    assert_ne!(ask(&d).status.code(), Some(0), "not on net1 yet");
    d.ok(&["network", "connect", "--alias", "pal", "net1", "peer"]);
    assert_eq!(String::from_utf8_lossy(&ask(&d).stdout), "peer\n");
    let nets = d.ok(&[
        "inspect",
        "-f",
        "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}",
        "peer",
    ]);
    assert_eq!(nets.trim(), "bridge net1");
    d.ok(&["network", "disconnect", "net1", "peer"]);
    assert_ne!(ask(&d).status.code(), Some(0), "disconnected");
    let busy = d.docker(&["network", "rm", "net1"]);
    assert_ne!(busy.status.code(), Some(0), "net1 has asker on it");
    d.ok(&["rm", "-f", "peer", "asker"]);
    d.ok(&["network", "rm", "net1"]);
    let gone = d.docker(&["network", "rm", "net1"]);
    assert_ne!(gone.status.code(), Some(0));
    let images = d.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert!(images.contains("berth-test/busybox:latest"), "{images}");

    // Images through a real registry on loopback: tag, push, rmi, pull, and run pulling a
    // missing image as Docker does; history, save and load.
    let reg = Registry::start();
    let name = format!("127.0.0.1:{}/team/app:1", reg.port);
    d.ok(&["tag", IMAGE, &name]);
    let pushed = d.ok(&["push", &name]);
    assert!(pushed.contains("digest: sha256:"), "{pushed}");
    d.ok(&["rmi", &name]);
    let pulled = d.ok(&["pull", &name]);
    assert!(pulled.contains(&name), "{pulled}");
    d.ok(&["rmi", &name]);
    let run = d.docker(&["run", "--rm", &name, "sh", "-c", "echo from-the-registry"]);
    assert_eq!(
        String::from_utf8_lossy(&run.stdout),
        "from-the-registry\n",
        "{run:?}"
    );
    assert!(
        String::from_utf8_lossy(&run.stderr).contains("Unable to find image"),
        "{run:?}"
    );
    let hist = d.ok(&["history", "-q", IMAGE]);
    assert!(!hist.trim().is_empty(), "{hist}");
    let tar = d.dir.path().join("saved.tar");
    d.ok(&["save", "-o", tar.to_str().unwrap(), &name]);
    d.ok(&["rmi", &name]);
    let loaded = d.ok(&["load", "-i", tar.to_str().unwrap()]);
    assert!(
        loaded.contains(&format!("Loaded image: {name}")),
        "{loaded}"
    );
    let missing = d.docker(&["pull", &format!("127.0.0.1:{}/team/none:1", reg.port)]);
    assert_eq!(missing.status.code(), Some(1), "{missing:?}");

    // system df, and system prune -f: stopped containers and unused networks go, a running
    // container and its image stay.
    d.ok(&["system", "df"]);
    d.ok(&["create", "--name", "stopped", IMAGE, "true"]);
    d.ok(&["network", "create", "spare"]);
    d.ok(&["run", "-d", "--name", "keeper", IMAGE, "sleep", "1000"]);
    d.ok(&["system", "prune", "-f"]);
    let left = d.ok(&["ps", "-a", "--format", "{{.Names}}"]);
    assert_eq!(left.trim(), "keeper");
    assert!(
        !d.ok(&["network", "ls", "--format", "{{.Name}}"])
            .lines()
            .any(|l| l == "spare")
    );
    d.ok(&["rm", "-f", "keeper"]);
}
