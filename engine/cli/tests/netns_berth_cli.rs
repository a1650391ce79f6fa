//! berth's CLI drives berthd end to end, through the scenarios of the runtime issue: run -d -p,
//! ps (table, --format, -q, json), logs (-f), exec (codes, -d, -t), top, port, run attached
//! (codes, --rm, -i, -it on a pty), 125/126/127, stop/start/restart/rename/wait, networks with
//! DNS and connect/disconnect, volumes, images with the loopback registry (push, pull with
//! progress, tag, rmi, save/load, history), system df/prune, completions. Privileged: run
//! through scripts/netns-test.sh.

#[path = "../../../portproxy/tests/netns_support/mod.rs"]
#[allow(dead_code)]
mod netns_support;

#[path = "../../berthd/tests/support/mod.rs"]
mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{Berthd, IMAGE, Registry};

const BERTH: &str = env!("CARGO_BIN_EXE_berth");

fn http_get(addr: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(3)))?;
    s.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < Duration::from_secs(15), "{what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn netns_berth_cli_containers() {
    if !netns_support::enabled("netns_berth_cli_containers") {
        return;
    }
    let d = Berthd::start().with_client(Path::new(BERTH));
    assert!(d.ok(&["version"]).contains("API version:      1.43"));

    // run -d -p: the full ID, the server answers on the published port.
    let id = d.ok(&[
        "run", "-d", "--name", "web", "-p", "8080:80", "-h", "webhost", "-m", "64m", "-e",
        "GREETING=hello",
        IMAGE, "sh", "-c",
        "echo $GREETING-from-$HOSTNAME > /tmp/index.html; echo started; echo warn >&2; exec httpd -f -p 80 -h /tmp",
    ]);
    let id = id.trim().to_string();
    assert_eq!(id.len(), 64, "{id}");
    let mut body = String::new();
    eventually("no answer on 8080", || {
        body = http_get("127.0.0.1:8080").unwrap_or_default();
        !body.is_empty()
    });
    assert!(body.contains("hello-from-webhost"), "{body}");

    // ps: Docker's columns and PORTS; --format, -q, json, filters.
    let ps = d.ok(&["ps"]);
    let header = ps.lines().next().unwrap();
    for col in [
        "CONTAINER ID",
        "IMAGE",
        "COMMAND",
        "CREATED",
        "STATUS",
        "PORTS",
        "NAMES",
    ] {
        assert!(header.contains(col), "{header}");
    }
    assert!(
        ps.contains("0.0.0.0:8080->80/tcp") && ps.contains(&id[..12]),
        "{ps}"
    );
    assert!(ps.lines().nth(1).unwrap().ends_with("web"), "{ps}");
    let fmt = d.ok(&["ps", "--format", "{{.Names}}\\t{{.Status}}"]);
    assert!(fmt.starts_with("web\tUp "), "{fmt:?}");
    assert_eq!(d.ok(&["ps", "-q"]).trim(), &id[..12]);
    let json: serde_json::Value =
        serde_json::from_str(d.ok(&["ps", "--format", "{{json .}}"]).trim()).unwrap();
    assert_eq!(json["Names"], "web");
    assert_eq!(json["Ports"], "0.0.0.0:8080->80/tcp, [::]:8080->80/tcp");
    let table = d.ok(&["ps", "--format", "table {{.ID}}\t{{.Names}}"]);
    assert_eq!(
        table.lines().next().unwrap().trim_end(),
        "CONTAINER ID   NAMES"
    );
    assert!(
        d.ok(&["ps", "-a", "--filter", "status=exited", "-q"])
            .trim()
            .is_empty()
    );
    assert_eq!(
        d.ok(&["port", "web", "80"]).lines().next(),
        Some("0.0.0.0:8080")
    );
    assert_eq!(
        d.ok(&[
            "inspect",
            "-f",
            "{{.State.Status}} {{.Config.Hostname}}",
            "web"
        ])
        .trim(),
        "running webhost"
    );

    // logs: stdout and stderr apart; -f follows new lines.
    let out = d.docker(&["logs", "web"]);
    assert_eq!(text(&out.stdout), "started\n");
    assert_eq!(text(&out.stderr), "warn\n");
    let mut follow = Command::new(BERTH)
        .env("BERTH_HOST", format!("unix://{}", d.sock.display()))
        .args(["logs", "-f", "web"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    d.ok(&["exec", "web", "sh", "-c", "echo later > /proc/1/fd/1"]);
    let mut seen = Vec::new();
    let mut so = follow.stdout.take().unwrap();
    let mut buf = [0u8; 256];
    while !text(&seen).contains("later") {
        let n = so.read(&mut buf).unwrap();
        assert!(n > 0, "logs -f ended: {}", text(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    follow.kill().unwrap();
    follow.wait().unwrap();

    // exec: output, exit codes (127 for a missing command), -d, -t.
    assert_eq!(
        d.ok(&["exec", "web", "sh", "-c", "echo in-$HOSTNAME"]),
        "in-webhost\n"
    );
    assert_eq!(
        d.docker(&["exec", "web", "sh", "-c", "exit 7"])
            .status
            .code(),
        Some(7)
    );
    assert_eq!(d.docker(&["exec", "web", "nope"]).status.code(), Some(127));
    d.ok(&["exec", "-d", "web", "sh", "-c", "echo detached > /tmp/f"]);
    eventually("exec -d did not run", || {
        d.docker(&["exec", "web", "cat", "/tmp/f"]).stdout == b"detached\n"
    });
    let t = d.docker(&["exec", "-t", "web", "sh", "-c", "[ -t 1 ] && echo exec-tty"]);
    assert_eq!(text(&t.stdout).trim(), "exec-tty", "{t:?}");
    let top = d.ok(&["top", "web"]);
    assert!(
        top.starts_with("UID") && top.contains("httpd -f -p 80 -h /tmp"),
        "{top}"
    );

    // run attached: streams apart, the container's code; --rm; -i; -it on a pty.
    let out = d.docker(&[
        "run",
        "--rm",
        IMAGE,
        "sh",
        "-c",
        "echo hi; echo oops >&2; exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert_eq!(text(&out.stdout), "hi\n");
    assert_eq!(text(&out.stderr), "oops\n");
    let mut cat = Command::new(BERTH)
        .env("BERTH_HOST", format!("unix://{}", d.sock.display()))
        .args(["run", "--rm", "-i", IMAGE, "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    cat.stdin.take().unwrap().write_all(b"piped-in\n").unwrap();
    let out = cat.wait_with_output().unwrap();
    assert_eq!(text(&out.stdout), "piped-in\n");
    assert_eq!(out.status.code(), Some(0));
    let it = Command::new("script")
        .env("BERTH_HOST", format!("unix://{}", d.sock.display()))
        .args([
            "-qec",
            &format!("{BERTH} run --rm -it {IMAGE} sh -c '[ -t 0 ] && echo on-a-tty; exit 4'"),
            "/dev/null",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(text(&it.stdout).contains("on-a-tty"), "{it:?}");
    assert_eq!(it.status.code(), Some(4), "{it:?}");

    // --sig-proxy (the default): a SIGTERM to berth reaches the container, whose code is berth's.
    let mut proxied = Command::new(BERTH)
        .env("BERTH_HOST", format!("unix://{}", d.sock.display()))
        .args([
            "run",
            "--rm",
            "--name",
            "sp",
            IMAGE,
            "sh",
            "-c",
            "trap 'echo got-term; exit 9' TERM; echo ready; while :; do sleep 0.1; done",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = [0u8; 6];
    proxied
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut ready)
        .unwrap();
    assert_eq!(&ready, b"ready\n");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(proxied.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let out = proxied.wait_with_output().unwrap();
    assert_eq!(text(&out.stdout), "got-term\n");
    assert_eq!(out.status.code(), Some(9), "{out:?}");

    // Docker's exit codes: 127 not found, 126 not executable, 125 refused, 1 other errors.
    let nf = d.docker(&["run", "--rm", IMAGE, "/no/such/cmd"]);
    assert_eq!(nf.status.code(), Some(127), "{nf:?}");
    let ne = d.docker(&["run", "--rm", IMAGE, "/etc/passwd"]);
    assert_eq!(ne.status.code(), Some(126), "{ne:?}");
    let bad = d.docker(&["run", "-p", "8080:99999", IMAGE, "true"]);
    assert_eq!(bad.status.code(), Some(125));
    assert!(text(&bad.stderr).contains("8080:99999"), "{bad:?}");
    let dup = d.docker(&["run", "-d", "--name", "web", IMAGE, "true"]);
    assert_eq!(dup.status.code(), Some(125));
    assert!(text(&dup.stderr).contains("is already in use"), "{dup:?}");
    let flag = d.docker(&["run", "--no-such-flag", IMAGE]);
    assert_eq!(flag.status.code(), Some(125));
    let missing = d.docker(&["rm", "nosuch"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        text(&missing.stderr).contains("No such container: nosuch"),
        "{missing:?}"
    );
    let running = d.docker(&["rm", "web"]);
    assert_eq!(running.status.code(), Some(1));

    // stop / start / restart / rename / wait.
    d.ok(&["stop", "-t", "1", "web"]);
    assert!(
        d.ok(&["ps", "-a", "--format", "{{.Status}}"])
            .starts_with("Exited")
    );
    d.ok(&["start", "web"]);
    eventually("web did not serve again", || {
        http_get("127.0.0.1:8080").is_ok()
    });
    d.ok(&["restart", "-t", "1", "web"]);
    d.ok(&["rename", "web", "web2"]);
    assert_eq!(d.ok(&["ps", "--format", "{{.Names}}"]).trim(), "web2");
    d.ok(&[
        "run",
        "-d",
        "--name",
        "quick",
        IMAGE,
        "sh",
        "-c",
        "sleep 0.3; exit 5",
    ]);
    assert_eq!(d.ok(&["wait", "quick"]).trim(), "5");

    // stats with the memory limit; events replayed with the container's exit.
    let st = d.ok(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.Name}} {{.MemUsage}} {{.PIDs}}",
        "web2",
    ]);
    assert!(st.starts_with("web2 ") && st.contains(" / 64MiB "), "{st}");
    let table = d.ok(&["stats", "--no-stream", "web2"]);
    assert!(
        table.starts_with("CONTAINER ID   NAME") && table.contains("MEM USAGE / LIMIT"),
        "{table}"
    );
    let ev = d.ok(&[
        "events",
        "--since",
        "10m",
        "--until",
        "0s",
        "--filter",
        "container=quick",
    ]);
    assert!(
        ev.contains("container create ") && ev.contains("container die "),
        "{ev}"
    );
    assert!(
        ev.contains("exitCode=5") && ev.contains("name=quick"),
        "{ev}"
    );
    let evj = d.ok(&[
        "events",
        "--since",
        "10m",
        "--until",
        "0s",
        "--format",
        "{{json .}}",
    ]);
    for l in evj.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert!(v["Type"].is_string(), "{l}");
    }

    // A restart policy brings a failing container back.
    d.ok(&[
        "run",
        "-d",
        "--name",
        "flaky",
        "--restart",
        "on-failure:2",
        IMAGE,
        "sh",
        "-c",
        "exit 1",
    ]);
    eventually("no restarts", || {
        d.ok(&["inspect", "-f", "{{.RestartCount}}", "flaky"])
            .trim()
            == "2"
    });

    // update: limits of a running container change; no flag, or a bad one, is refused.
    d.ok(&["run", "-d", "--name", "upd", IMAGE, "sleep", "1000"]);
    assert_eq!(
        d.ok(&[
            "update",
            "--memory",
            "64m",
            "--memory-swap",
            "-1",
            "--pids-limit",
            "50",
            "--restart",
            "unless-stopped",
            "upd"
        ])
        .trim(),
        "upd"
    );
    assert_eq!(
        d.ok(&[
            "inspect",
            "-f",
            "{{.HostConfig.Memory}} {{.HostConfig.MemorySwap}} {{.HostConfig.PidsLimit}} {{.HostConfig.RestartPolicy.Name}}",
            "upd"
        ])
        .trim(),
        "67108864 -1 50 unless-stopped"
    );
    // cgroup v2, or v1's pids hierarchy.
    let limit = d.ok(&[
        "exec",
        "upd",
        "sh",
        "-c",
        "cat /sys/fs/cgroup/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids/pids.max",
    ]);
    assert_eq!(limit.trim(), "50");
    let none = d.docker(&["update", "upd"]);
    assert_eq!(none.status.code(), Some(1), "{none:?}");
    assert!(text(&none.stderr).contains("you must provide one or more flags"));
    let bad = d.docker(&["update", "-m", "1k", "upd"]);
    assert_eq!(bad.status.code(), Some(125), "{bad:?}");
    assert!(text(&bad.stderr).contains("--memory"), "{bad:?}");
    let missing = d.docker(&["update", "-m", "64m", "nosuch"]);
    assert_eq!(missing.status.code(), Some(1), "{missing:?}");

    // rm -f leaves no veth behind.
    d.ok(&["rm", "-f", "web2", "quick", "flaky", "upd"]);
    assert!(d.ok(&["ps", "-aq"]).trim().is_empty());
    let links = Command::new("ip").args(["-o", "link"]).output().unwrap();
    assert!(
        !text(&links.stdout).contains("veth"),
        "{}",
        text(&links.stdout)
    );
}

#[test]
fn netns_berth_cli_networks_volumes_images() {
    if !netns_support::enabled("netns_berth_cli_networks_volumes_images") {
        return;
    }
    let d = Berthd::start().with_client(Path::new(BERTH));

    // A user network with DNS by name and alias; connect/disconnect while running.
    let nid = d.ok(&["network", "create", "--subnet", "10.77.0.0/24", "net1"]);
    assert_eq!(nid.trim().len(), 64);
    let ls = d.ok(&["network", "ls"]);
    assert!(
        ls.starts_with("NETWORK ID") && ls.contains("net1") && ls.contains("bridge"),
        "{ls}"
    );
    assert_eq!(
        d.ok(&[
            "network",
            "inspect",
            "-f",
            "{{range .IPAM.Config}}{{.Subnet}}{{end}}",
            "net1"
        ])
        .trim(),
        "10.77.0.0/24"
    );
    d.ok(&[
        "run",
        "-d",
        "--name",
        "peer",
        IMAGE,
        "sh",
        "-c",
        "echo peer-here > /tmp/index.html; exec httpd -f -p 80 -h /tmp",
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
    let ask = |host: &str| d.docker(&["exec", "asker", "wget", "-qO-", &format!("http://{host}/")]);
    assert!(!ask("peer").status.success(), "peer is not on net1 yet");
    let resolv = || d.ok(&["exec", "peer", "cat", "/etc/resolv.conf"]);
    assert!(!resolv().contains("127.0.0.11"), "{}", resolv());
    d.ok(&["network", "connect", "--alias", "svc", "net1", "peer"]);
    eventually("peer not reachable by name", || {
        text(&ask("peer").stdout) == "peer-here\n"
    });
    assert_eq!(text(&ask("svc").stdout), "peer-here\n");
    // Started on the default bridge, now on a user-defined network: it asks the embedded
    // resolver (its resolv.conf rewritten, as Docker's is) and resolves that network's names.
    assert!(resolv().contains("nameserver 127.0.0.11"), "{}", resolv());
    eventually("peer does not resolve asker", || {
        d.docker(&["exec", "peer", "nslookup", "asker"])
            .status
            .success()
    });
    assert_eq!(
        d.ok(&[
            "inspect",
            "-f",
            "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}",
            "peer"
        ])
        .trim(),
        "bridge net1"
    );
    d.ok(&["network", "disconnect", "net1", "peer"]);
    assert!(!ask("peer").status.success(), "peer was disconnected");
    // Off its last user-defined network, nothing serves 127.0.0.11 for it: the host's servers
    // again.
    assert!(!resolv().contains("127.0.0.11"), "{}", resolv());
    let busy = d.docker(&["network", "rm", "net1"]);
    assert_eq!(busy.status.code(), Some(1), "{busy:?}");

    // Volumes: created, listed, kept past their container, refused while in use.
    assert_eq!(d.ok(&["volume", "create", "data"]).trim(), "data");
    let vls = d.ok(&["volume", "ls"]);
    assert!(
        vls.starts_with("DRIVER") && vls.contains("local") && vls.contains("data"),
        "{vls}"
    );
    d.ok(&[
        "run",
        "--rm",
        "-v",
        "data:/data",
        IMAGE,
        "sh",
        "-c",
        "echo kept > /data/f",
    ]);
    assert_eq!(
        d.ok(&[
            "run",
            "--rm",
            "-v",
            "data:/data:ro",
            IMAGE,
            "cat",
            "/data/f"
        ]),
        "kept\n"
    );
    assert!(
        d.ok(&["volume", "inspect", "-f", "{{.Mountpoint}}", "data"])
            .trim()
            .ends_with("/_data")
    );
    d.ok(&["rm", "-f", "peer", "asker"]);
    d.ok(&["network", "rm", "net1"]);
    d.ok(&["volume", "rm", "data"]);
    assert!(d.ok(&["volume", "ls", "-q"]).trim().is_empty());

    // Images with the loopback registry: tag, push, rmi, pull (run pulls a missing one).
    let reg = Registry::start();
    let name = format!("127.0.0.1:{}/team/bb:v1", reg.port);
    d.ok(&["tag", IMAGE, &name]);
    let images = d.ok(&["images"]);
    for col in ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"] {
        assert!(images.lines().next().unwrap().contains(col), "{images}");
    }
    assert!(
        images.contains(&format!("127.0.0.1:{}/team/bb", reg.port)),
        "{images}"
    );
    let push = d.ok(&["push", &name]);
    assert!(push.contains("Pushed") || push.contains("pushed"), "{push}");
    let rmi = d.ok(&["rmi", &name]);
    assert!(rmi.contains(&format!("Untagged: {name}")), "{rmi}");
    let run = d.docker(&["run", "--rm", &name, "sh", "-c", "echo from-the-registry"]);
    assert_eq!(text(&run.stdout), "from-the-registry\n", "{run:?}");
    assert!(
        text(&run.stderr).contains("Unable to find image"),
        "{run:?}"
    );
    d.ok(&["rmi", &name]);
    let pull = d.ok(&["pull", &name]);
    assert!(pull.trim_end().ends_with(&name), "{pull}");
    let missing = d.docker(&["pull", &format!("127.0.0.1:{}/team/none:1", reg.port)]);
    assert_eq!(missing.status.code(), Some(1), "{missing:?}");
    assert!(!text(&missing.stderr).is_empty());

    // save / load round trip, history.
    let tar = d.dir.path().join("bb.tar");
    d.ok(&["save", "-o", tar.to_str().unwrap(), &name]);
    d.ok(&["rmi", &name]);
    let load = d.ok(&["load", "-i", tar.to_str().unwrap()]);
    assert!(load.contains("Loaded image"), "{load}");
    let hist = d.ok(&["history", &name]);
    assert!(
        hist.starts_with("IMAGE") && hist.contains("CREATED BY"),
        "{hist}"
    );
    assert_eq!(
        d.ok(&[
            "inspect",
            "--type",
            "image",
            "-f",
            "{{index .RepoTags 0}}",
            &name
        ])
        .trim(),
        name
    );

    // login: a registry asking for a password; wrong ones are refused, then push works.
    let locked = Registry::start_with(Some(("berth", "s3cret")));
    let private = format!("127.0.0.1:{}/team/private:1", locked.port);
    d.ok(&["tag", IMAGE, &private]);
    let denied = d.docker(&["push", &private]);
    assert_eq!(denied.status.code(), Some(1), "{denied:?}");
    let server = format!("127.0.0.1:{}", locked.port);
    let wrong = d.docker(&["login", "-u", "berth", "-p", "nope", &server]);
    assert_eq!(wrong.status.code(), Some(1), "{wrong:?}");
    assert!(
        text(&wrong.stderr).contains("Error response from daemon"),
        "{wrong:?}"
    );
    assert_eq!(
        d.ok(&["login", "-u", "berth", "-p", "s3cret", &server])
            .trim(),
        "Login Succeeded"
    );
    d.ok(&["push", &private]);
    // berthd keeps no login (Docker's model): berth filed it in the client's file, 0600, where
    // the docker CLI finds it too; a client without it is refused; logout forgets it.
    use std::os::unix::fs::PermissionsExt;
    let kept = d.dir.path().join("docker-config/config.json");
    let mode = std::fs::metadata(&kept).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{kept:?}");
    let docker = |config: &str, args: &[&str]| {
        Command::new(support::DOCKER)
            .env("DOCKER_HOST", format!("unix://{}", d.sock.display()))
            .env("DOCKER_CONFIG", d.dir.path().join(config))
            .args(args)
            .output()
            .unwrap()
    };
    let out = docker("docker-config", &["push", &private]);
    assert!(out.status.success(), "{out:?}");
    let out = docker("no-login", &["push", &private]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(text(&out.stderr).contains("unauthorized"), "{out:?}");
    let out = docker("no-login", &["pull", &private]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        d.ok(&["logout", &server]).trim(),
        format!("Removing login credentials for {server}")
    );
    let denied = d.docker(&["push", &private]);
    assert_eq!(denied.status.code(), Some(1), "{denied:?}");

    // import: a rootfs tarball becomes an image that runs.
    let rootfs = d.dir.path().join("rootfs");
    std::fs::create_dir_all(rootfs.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", rootfs.join("bin/sh")).unwrap();
    let tarball = d.dir.path().join("rootfs.tar");
    let st = Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .arg("-cf")
        .arg(&tarball)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    let imported = d.ok(&["import", tarball.to_str().unwrap(), "imported/bb:1"]);
    assert!(imported.trim().starts_with("sha256:"), "{imported}");
    assert_eq!(
        d.ok(&[
            "run",
            "--rm",
            "imported/bb:1",
            "sh",
            "-c",
            "echo imported-runs"
        ]),
        "imported-runs\n"
    );
    let vf = d.ok(&["volume", "ls", "-q", "--filter", "dangling=true"]);
    assert!(vf.trim().is_empty(), "{vf}");
    let nf = d.ok(&[
        "network",
        "ls",
        "--filter",
        "type=builtin",
        "--format",
        "{{.Name}}",
    ]);
    assert_eq!(
        nf.lines().collect::<Vec<_>>(),
        ["bridge", "host", "none"],
        "{nf}"
    );

    // system df / prune; completions.
    let df = d.ok(&["system", "df"]);
    assert!(
        df.starts_with("TYPE") && df.contains("Images") && df.contains("Local Volumes"),
        "{df}"
    );
    d.ok(&["create", "--name", "leftover", IMAGE, "true"]);
    let prune = d.ok(&["system", "prune", "-f"]);
    assert!(prune.contains("Total reclaimed space"), "{prune}");
    assert!(d.ok(&["ps", "-aq"]).trim().is_empty());
    let comp = d.ok(&["completion", "bash"]);
    assert!(
        comp.contains("_berth") && comp.contains("network"),
        "completion script"
    );
}

/// Runs the docker CLI against the same berthd: berth's output must be the docker CLI's.
fn docker_cli(d: &Berthd, args: &[&str]) -> String {
    let out = Command::new("docker")
        .env("DOCKER_HOST", format!("unix://{}", d.sock.display()))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        text(&out.stderr)
    );
    text(&out.stdout)
}

#[test]
fn netns_berth_cli_diff_commit_export_import() {
    if !netns_support::enabled("netns_berth_cli_diff_commit_export_import") {
        return;
    }
    let d = Berthd::start().with_client(Path::new(BERTH));
    d.ok(&[
        "run",
        "--name",
        "fs",
        "--network",
        "none",
        IMAGE,
        "sh",
        "-c",
        "echo hi > /tmp/f; rm /bin/true; mkdir /data",
    ]);
    // diff: Docker's letters and order, as the docker CLI prints them.
    let diff = d.ok(&["diff", "fs"]);
    assert_eq!(diff, docker_cli(&d, &["diff", "fs"]));
    for line in ["C /bin", "D /bin/true", "A /data", "A /tmp/f"] {
        assert!(diff.lines().any(|l| l == line), "{line:?} not in {diff}");
    }
    // commit with an author, a message and changes; the image runs with them.
    let id = d.ok(&[
        "commit",
        "-a",
        "me",
        "-m",
        "msg",
        "-c",
        "ENV A=from-commit",
        "-c",
        "CMD [\"sh\", \"-c\", \"echo $A; cat /tmp/f\"]",
        "--pause=false",
        "fs",
        "snap:1",
    ]);
    assert!(id.trim().starts_with("sha256:"), "{id}");
    assert_eq!(d.ok(&["run", "--rm", "snap:1"]), "from-commit\nhi\n");
    assert_eq!(
        docker_cli(
            &d,
            &[
                "image",
                "inspect",
                "-f",
                "{{.Author}} {{.Comment}}",
                "snap:1"
            ]
        )
        .trim(),
        "me msg"
    );
    let bad = d.docker(&["commit", "-c", "RUN true", "fs", "snap:2"]);
    assert!(!bad.status.success());
    assert!(
        text(&bad.stderr).contains("run is not a valid change command"),
        "{}",
        text(&bad.stderr)
    );
    // export -o: the merged file system; import -c/-m of it.
    let out = d.dir.path().join("fs.tar");
    let out = out.to_str().unwrap();
    d.ok(&["export", "-o", out, "fs"]);
    let listing = Command::new("tar").args(["-tf", out]).output().unwrap();
    let names = text(&listing.stdout);
    assert!(names.lines().any(|l| l == "tmp/f"), "{names}");
    assert!(names.lines().any(|l| l == "bin/sh"), "{names}");
    assert!(!names.lines().any(|l| l == "bin/true"), "{names}");
    d.ok(&[
        "import",
        "-c",
        "CMD [\"cat\", \"/tmp/f\"]",
        "-m",
        "from export",
        out,
        "reimported",
    ]);
    assert_eq!(d.ok(&["run", "--rm", "reimported"]), "hi\n");
    assert_eq!(
        docker_cli(
            &d,
            &["image", "inspect", "-f", "{{.Comment}}", "reimported"]
        )
        .trim(),
        "from export"
    );
}
