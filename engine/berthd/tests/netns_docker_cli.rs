//! The real `docker` CLI drives berthd: run -d -p, ps, logs, inspect, stop, rm -f, volumes and
//! networks, stats and events, and Docker's errors and exit codes. Privileged: run through
//! scripts/netns-test.sh.

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
    // docker info: the daemon's figures (a route lost once in a refactor: keep it asked).
    let info = d.ok(&[
        "info",
        "--format",
        "{{.Containers}} {{.Driver}} {{.OSType}}",
    ]);
    assert_eq!(info.trim(), "0 overlay2 linux", "{info}");

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
    // logs -f follows what comes after.
    let mut follow = Command::new(DOCKER)
        .env("DOCKER_HOST", format!("unix://{}", d.sock.display()))
        .env("DOCKER_CONFIG", d.dir.path().join("docker-config"))
        .args(["logs", "-f", "web"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    d.ok(&["exec", "web", "sh", "-c", "echo later > /proc/1/fd/1"]);
    let mut seen = Vec::new();
    let mut so = follow.stdout.take().unwrap();
    let mut buf = [0u8; 256];
    while !String::from_utf8_lossy(&seen).contains("later") {
        let n = so.read(&mut buf).unwrap();
        assert!(
            n > 0,
            "docker logs -f ended: {}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buf[..n]);
    }
    follow.kill().unwrap();
    follow.wait().unwrap();
    // exec -it under a pty: a terminal inside, the exec's code outside.
    let it = Command::new("script")
        .env("DOCKER_HOST", format!("unix://{}", d.sock.display()))
        .env("DOCKER_CONFIG", d.dir.path().join("docker-config"))
        .args([
            "-qec",
            &format!("{DOCKER} exec -it web sh -c '[ -t 0 ] && echo exec-on-a-tty; exit 6'"),
            "/dev/null",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&it.stdout).contains("exec-on-a-tty"),
        "{it:?}"
    );
    assert_eq!(it.status.code(), Some(6), "{it:?}");

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
    // A network shows the options it was given and no others (compose recreates a network whose
    // options differ from its file's), as dockerd shows them.
    let options = |ok: &dyn Fn(&[&str]) -> String| {
        ok(&[
            "network",
            "create",
            "-o",
            "com.docker.network.bridge.enable_icc=true",
            "optnet",
        ]);
        let out = [
            ok(&["network", "inspect", "-f", "{{json .Options}}", "net1"]),
            ok(&["network", "inspect", "-f", "{{json .Options}}", "optnet"]),
        ]
        .map(|s| s.trim().to_string());
        ok(&["network", "rm", "optnet"]);
        out
    };
    let berth = options(&|a| d.ok(a));
    assert_eq!(
        berth,
        ["{}", r#"{"com.docker.network.bridge.enable_icc":"true"}"#]
    );
    if let Some(docker) = support::Dockerd::start() {
        let ok = |a: &[&str]| {
            let out = docker.docker(a);
            assert!(out.status.success(), "dockerd: {a:?}: {out:?}");
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        ok(&["network", "create", "net1"]);
        let dockerd = options(&ok);
        // dockerd leaves a user network's bridge (and its subnet's address) behind when it
        // stops; later tests in this namespace would find it in their way.
        ok(&["network", "rm", "net1"]);
        assert_eq!(dockerd, berth, "dockerd (left) and berthd");
    }
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

    // stats: a row with CPU %, memory against the -m limit, network I/O and PIDs; the
    // --format '{{json .}}' form parses.
    let since = unix_now();
    d.ok(&[
        "run",
        "-d",
        "--name",
        "capped",
        "-m",
        "64m",
        IMAGE,
        "sh",
        "-c",
        "wget -qO- http://172.17.0.1:1/ 2>/dev/null; exec sleep 1000",
    ]);
    let table = d.ok(&["stats", "--no-stream", "capped"]);
    println!("docker stats --no-stream capped:\n{table}");
    let header = table.lines().next().unwrap_or_default();
    for col in ["CPU %", "MEM USAGE / LIMIT", "NET I/O", "PIDS"] {
        assert!(header.contains(col), "{table}");
    }
    assert!(table.contains("/ 64MiB"), "{table}");
    let json = d.ok(&["stats", "--no-stream", "--format", "{{json .}}", "capped"]);
    println!("docker stats --no-stream --format '{{{{json .}}}}' capped: {json}");
    let row: serde_json::Value = serde_json::from_str(json.trim()).expect("stats JSON");
    assert_eq!(row["Name"], "capped", "{row}");
    let mem = row["MemUsage"].as_str().unwrap_or_default();
    assert!(mem.ends_with("/ 64MiB"), "{row}");
    let pids: u64 = row["PIDs"]
        .as_str()
        .unwrap_or_default()
        .parse()
        .unwrap_or(0);
    assert!(pids >= 1, "{row}");
    assert!(
        row["CPUPerc"].as_str().unwrap_or_default().ends_with('%'),
        "{row}"
    );
    assert!(
        row["NetIO"].as_str().unwrap_or_default().contains(" / "),
        "{row}"
    );
    // Streaming (no --no-stream): a new row every second until the client goes.
    let mut streaming = d.spawn(&["stats", "--format", "{{.MemUsage}}", "capped"]);
    std::thread::sleep(Duration::from_millis(3500));
    let _ = streaming.kill();
    let out = streaming.wait_with_output().unwrap();
    let rows = String::from_utf8_lossy(&out.stdout)
        .matches("/ 64MiB")
        .count();
    assert!(rows >= 2, "{out:?}");
    d.ok(&["rm", "-f", "capped"]);
    let gone = d.docker(&["stats", "--no-stream", "capped"]);
    assert_ne!(gone.status.code(), Some(0), "{gone:?}");

    // events: a container that exits on its own reports create, start, die (its exit code)
    // and, once removed, destroy, to a client listening meanwhile and to one asking later
    // with --since and --until (which ends at --until).
    let mut live = d.spawn(&[
        "events",
        "--format",
        "{{json .}}",
        "--filter",
        "container=brief",
    ]);
    std::thread::sleep(Duration::from_millis(300));
    d.ok(&["run", "-d", "--name", "brief", IMAGE, "sh", "-c", "exit 3"]);
    let t0 = Instant::now();
    while d
        .ok(&["inspect", "-f", "{{.State.Status}}", "brief"])
        .trim()
        != "exited"
    {
        assert!(t0.elapsed() < Duration::from_secs(10), "brief did not exit");
        std::thread::sleep(Duration::from_millis(50));
    }
    // A stopped container's stats are zeros, as Docker's.
    let zeros = d.ok(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.MemUsage}} {{.PIDs}}",
        "brief",
    ]);
    assert_eq!(zeros.trim(), "0B / 0B 0", "{zeros}");
    d.ok(&["rm", "brief"]);
    std::thread::sleep(Duration::from_millis(300));
    let _ = live.kill();
    let heard = live.wait_with_output().unwrap();
    let heard = String::from_utf8_lossy(&heard.stdout);
    let actions: Vec<String> = heard
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("an event per line"))
        .map(|e| e["Action"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(actions, ["create", "start", "die", "destroy"], "{heard}");
    let until = unix_now() + 1;
    let (since, until) = (since.to_string(), until.to_string());
    let lines = d.ok(&[
        "events",
        "--since",
        &since,
        "--until",
        &until,
        "--format",
        "{{json .}}",
    ]);
    let events: Vec<serde_json::Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).expect("an event per line"))
        .collect();
    let of = |name: &str| -> Vec<String> {
        events
            .iter()
            .filter(|e| e["Type"] == "container" && e["Actor"]["Attributes"]["name"] == name)
            .map(|e| e["Action"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    assert_eq!(
        of("brief"),
        ["create", "start", "die", "destroy"],
        "{lines}"
    );
    let die = events
        .iter()
        .find(|e| e["Action"] == "die" && e["Actor"]["Attributes"]["name"] == "brief")
        .unwrap();
    assert_eq!(die["Actor"]["Attributes"]["exitCode"], "3", "{die}");
    assert_eq!(die["Actor"]["Attributes"]["image"], IMAGE, "{die}");
    let capped = of("capped");
    for a in ["create", "start", "kill", "die", "destroy"] {
        assert!(
            capped.iter().any(|x| x == a),
            "capped: {a} missing in {capped:?}"
        );
    }
    let plain = d.ok(&[
        "events",
        "--since",
        &since,
        "--until",
        &until,
        "--filter",
        "container=brief",
        "--filter",
        "event=die",
    ]);
    println!("docker events --filter container=brief --filter event=die: {plain}");
    assert_eq!(plain.lines().count(), 1, "{plain}");
    assert!(
        plain.contains(" container die ")
            && plain.contains("exitCode=3")
            && plain.contains("name=brief"),
        "{plain}"
    );
    let bad = d.docker(&[
        "events",
        "--since",
        &since,
        "--until",
        &until,
        "--filter",
        "colour=red",
    ]);
    assert_ne!(bad.status.code(), Some(0), "{bad:?}");
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("colour"),
        "{bad:?}"
    );
}

trait Spawn {
    /// Starts the docker CLI against berthd with its output piped (a streaming command the
    /// test ends by killing it, by its PID).
    fn spawn(&self, args: &[&str]) -> std::process::Child;
}

impl Spawn for Berthd {
    fn spawn(&self, args: &[&str]) -> std::process::Child {
        Command::new(DOCKER)
            .env("DOCKER_HOST", format!("unix://{}", self.sock.display()))
            .env("DOCKER_CONFIG", self.dir.path().join("docker-config"))
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}
