//! The engine core under hostile containers and concurrent clients, driven by the real docker
//! CLI: a container that swaps its /etc/passwd for a FIFO (with `--restart always`), Docker's
//! rmi rules for images in use (the same steps run against dockerd in the same test), pulls
//! racing `rmi` and `image prune -a`, and `logs --tail 1` of a 1 GiB log. Privileged: run
//! through scripts/netns-test.sh.

#[path = "../../../portproxy/tests/netns_support/mod.rs"]
#[allow(dead_code)]
mod netns_support;

mod support;

use std::io::Write;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use support::{Berthd, DOCKER, Dockerd, IMAGE, Registry};

fn text(o: &Output) -> (i32, String, String) {
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).trim().to_string(),
        String::from_utf8_lossy(&o.stderr).trim().to_string(),
    )
}

/// Runs the docker CLI against `d` with a deadline: an API that hangs fails the test instead
/// of hanging it.
fn docker_within(sock: &std::path::Path, secs: u64, args: &[&str]) -> Output {
    Command::new("timeout")
        .arg(secs.to_string())
        .arg(DOCKER)
        .args(args)
        .env("DOCKER_HOST", format!("unix://{}", sock.display()))
        .output()
        .unwrap()
}

fn wait_until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < Duration::from_secs(secs), "{what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

#[test]
fn netns_engine_core_fifo_passwd_leaves_the_daemon_answering() {
    if !netns_support::enabled("netns_engine_core_fifo_passwd_leaves_the_daemon_answering") {
        return;
    }
    let mut d = Berthd::start();
    // Runs once (its passwd is a file then), swaps it for a FIFO and exits; every restart
    // then finds the FIFO.
    d.ok(&[
        "run",
        "-d",
        "--name",
        "hostile",
        "--restart",
        "always",
        IMAGE,
        "sh",
        "-c",
        "mkdir -p /etc; rm -f /etc/passwd; busybox mkfifo /etc/passwd; exit 3",
    ]);
    wait_until("the FIFO start failure is recorded", 30, || {
        let o = docker_within(
            &d.sock,
            10,
            &["inspect", "-f", "{{.State.Error}}", "hostile"],
        );
        assert!(o.status.success(), "inspect hung or failed: {:?}", text(&o));
        String::from_utf8_lossy(&o.stdout).contains("/etc/passwd in the container is a FIFO")
    });
    // The API answers while the container keeps failing its restarts.
    for args in [
        &["ps", "-a"][..],
        &["version"][..],
        &["run", "--rm", IMAGE, "echo", "still-serving"][..],
    ] {
        let o = docker_within(&d.sock, 10, args);
        assert!(o.status.success(), "{args:?}: {:?}", text(&o));
    }
    // A daemon killed and started again comes up and answers despite the FIFO.
    d.restart();
    let o = docker_within(
        &d.sock,
        15,
        &["ps", "-a", "--format", "{{.Names}} {{.Status}}"],
    );
    let (code, out, err) = text(&o);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("hostile"), "{out}");
    let o = docker_within(&d.sock, 15, &["rm", "-f", "hostile"]);
    assert!(o.status.success(), "{:?}", text(&o));
}

/// The rmi steps run against `docker`: each step's exit code and what it printed, with the
/// image and container IDs replaced by placeholders so two daemons compare.
fn rmi_steps(docker: &dyn Fn(&[&str]) -> Output) -> Vec<(i32, String)> {
    let image = text(&docker(&["inspect", "-f", "{{.Id}}", IMAGE])).1;
    let short = image.trim_start_matches("sha256:")[..12].to_string();
    let mut steps = Vec::new();
    // No network: the dockerd peer runs without a bridge.
    let cid = text(&docker(&[
        "run",
        "-d",
        "--name",
        "keep",
        "--network",
        "none",
        IMAGE,
        "sleep",
        "1000",
    ]))
    .1;
    let cshort = cid[..12].to_string();
    let mut step = |args: &[&str]| {
        let (code, out, err) = text(&docker(args));
        let said = format!("{out}{err}")
            .replace(&image, "IMAGE")
            .replace(&short, "IMAGE")
            .replace(&cshort, "CONTAINER");
        steps.push((code, said));
    };
    step(&["tag", IMAGE, "extra:1"]);
    step(&["rmi", "extra:1"]);
    step(&["rmi", IMAGE]);
    step(&["rmi", "-f", &short]);
    step(&["rmi", &short]);
    // Forced by name under a running container: untagged only.
    step(&["rmi", "-f", IMAGE]);
    // The container keeps its files and can stop and start again.
    step(&["exec", "keep", "ls", "/bin/busybox"]);
    step(&["stop", "-t", "0", "keep"]);
    step(&["rmi", &short]);
    // Forced by ID under a stopped container: deleted, the container still starts.
    step(&["rmi", "-f", &short]);
    step(&["start", "keep"]);
    step(&["exec", "keep", "ls", "/bin/busybox"]);
    step(&["rm", "-f", "keep"]);
    steps
}

/// `docker restart` of an `--rm` container against `docker`: what each step said.
fn restart_rm_steps(docker: &dyn Fn(&[&str]) -> Output) -> Vec<(i32, String)> {
    let (code, _, err) = text(&docker(&[
        "run",
        "-d",
        "--rm",
        "--name",
        "brief",
        "--network",
        "none",
        IMAGE,
        "sleep",
        "1000",
    ]));
    let mut steps = vec![(code, err)];
    let mut step = |args: &[&str]| {
        let (code, out, err) = text(&docker(args));
        steps.push((code, format!("{out}{err}")));
    };
    step(&["restart", "-t", "0", "brief"]);
    // Restarted, not removed: Docker turns AutoRemove off for the restart's stop.
    step(&[
        "inspect",
        "-f",
        "{{.State.Status}} {{.HostConfig.AutoRemove}}",
        "brief",
    ]);
    step(&["stop", "-t", "0", "brief"]);
    wait_until("brief removed after its stop", 15, || {
        !docker(&["inspect", "brief"]).status.success()
    });
    steps
}

#[test]
fn netns_engine_core_restart_keeps_an_rm_container_as_docker_does() {
    if !netns_support::enabled("netns_engine_core_restart_keeps_an_rm_container_as_docker_does") {
        return;
    }
    let d = Berthd::start();
    let berth = restart_rm_steps(&|args| d.docker(args));
    assert_eq!(berth[2], (0, "running true".to_string()), "{berth:?}");
    match Dockerd::start() {
        Some(docker) => {
            let want = restart_rm_steps(&|args| docker.docker(args));
            assert_eq!(berth, want, "berthd (left) and dockerd (right)");
        }
        None => eprintln!("dockerd is not installed: berthd's restart checked alone"),
    }
}

/// `docker kill` while a `docker stop -t 60` waits for a process that ignores SIGTERM: the kill
/// signals at once and the stop ends with the process (both within seconds, not 60).
fn kill_during_stop_steps(docker: &(dyn Fn(&[&str]) -> Output + Sync)) -> Vec<(i32, String)> {
    let (code, _, err) = text(&docker(&[
        "run",
        "-d",
        "--name",
        "stubborn",
        "--network",
        "none",
        IMAGE,
        "sleep",
        "1000",
    ]));
    let mut steps = vec![(code, err)];
    std::thread::scope(|s| {
        let stop = s.spawn(|| {
            let t0 = Instant::now();
            (
                text(&docker(&["stop", "-t", "60", "stubborn"])),
                t0.elapsed(),
            )
        });
        // The stop has sent its SIGTERM (ignored: `sleep` is PID 1) and waits.
        std::thread::sleep(Duration::from_secs(2));
        let t0 = Instant::now();
        let (code, out, err) = text(&docker(&["kill", "stubborn"]));
        let kill_took = t0.elapsed();
        steps.push((code, format!("{out}{err}")));
        let ((code, out, err), stop_took) = stop.join().unwrap();
        steps.push((code, format!("{out}{err}")));
        assert!(
            kill_took < Duration::from_secs(10),
            "kill waited {kill_took:?} for the stop"
        );
        assert!(
            stop_took < Duration::from_secs(20),
            "the stop took {stop_took:?}"
        );
    });
    let (code, out, err) = text(&docker(&[
        "inspect",
        "-f",
        "{{.State.Status}} {{.State.ExitCode}}",
        "stubborn",
    ]));
    steps.push((code, format!("{out}{err}")));
    let _ = docker(&["rm", "-f", "stubborn"]);
    steps
}

#[test]
fn netns_engine_core_kill_during_a_stop_signals_at_once_as_docker_does() {
    if !netns_support::enabled(
        "netns_engine_core_kill_during_a_stop_signals_at_once_as_docker_does",
    ) {
        return;
    }
    let d = Berthd::start();
    let empty = footprint(&d);
    let berth = kill_during_stop_steps(&|args| d.docker(args));
    assert_eq!(footprint(&d), empty, "the killed container left something");
    assert_eq!(berth[1], (0, "stubborn".to_string()), "{berth:?}");
    assert_eq!(berth[3], (0, "exited 137".to_string()), "{berth:?}");
    match Dockerd::start() {
        Some(docker) => {
            let want = kill_during_stop_steps(&|args| docker.docker(args));
            assert_eq!(berth, want, "berthd (left) and dockerd (right)");
        }
        None => eprintln!("dockerd is not installed: berthd's kill checked alone"),
    }
}

#[test]
fn netns_engine_core_rmi_follows_docker() {
    if !netns_support::enabled("netns_engine_core_rmi_follows_docker") {
        return;
    }
    let d = Berthd::start();
    let berth = rmi_steps(&|args| d.docker(args));
    // Spelled out, so a failure here says what berthd did without dockerd.
    assert_eq!(
        berth[3],
        (
            1,
            "Error response from daemon: conflict: unable to delete IMAGE (cannot be forced) - image is being used by running container CONTAINER".to_string()
        )
    );
    assert_eq!(berth[5], (0, format!("Untagged: {IMAGE}:latest")));
    assert_eq!(berth[10], (0, "keep".to_string()));
    match Dockerd::start() {
        Some(docker) => {
            let want = rmi_steps(&|args| docker.docker(args));
            for (i, (b, w)) in berth.iter().zip(&want).enumerate() {
                assert_eq!(b, w, "step {i}: berthd said {b:?}, dockerd {w:?}");
            }
            assert_eq!(berth.len(), want.len());
        }
        None => eprintln!("dockerd is not installed: berthd's rmi checked alone"),
    }
}

#[test]
fn netns_engine_core_pulls_survive_rmi_and_prune() {
    if !netns_support::enabled("netns_engine_core_pulls_survive_rmi_and_prune") {
        return;
    }
    let d = Berthd::start();
    let reg = Registry::start();
    let name = format!("127.0.0.1:{}/core/app:1", reg.port);
    d.ok(&["tag", IMAGE, &name]);
    d.ok(&["push", &name]);
    d.ok(&["rmi", &name, IMAGE]);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sock = d.sock.clone();
    let remover = {
        let (stop, name, sock) = (stop.clone(), name.clone(), sock.clone());
        std::thread::spawn(move || {
            let mut rounds = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = docker_within(&sock, 30, &["rmi", "-f", &name]);
                let o = docker_within(&sock, 30, &["image", "prune", "-a", "-f"]);
                assert!(o.status.success(), "prune: {:?}", text(&o));
                rounds += 1;
            }
            rounds
        })
    };
    for i in 0..8 {
        let o = docker_within(&sock, 60, &["pull", "-q", &name]);
        assert!(o.status.success(), "pull {i} lost a race: {:?}", text(&o));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let rounds = remover.join().unwrap();
    assert!(rounds > 0);
    // Whatever the last rmi left, a pull ends with a complete image that runs.
    d.ok(&["pull", "-q", &name]);
    let out = d.ok(&["run", "--rm", &name, "sh", "-c", "ls /bin/busybox"]);
    assert_eq!(out.trim(), "/bin/busybox");
}

#[test]
fn netns_engine_core_logs_tail_of_a_huge_log_reads_from_the_end() {
    if !netns_support::enabled("netns_engine_core_logs_tail_of_a_huge_log_reads_from_the_end") {
        return;
    }
    let d = Berthd::start();
    let id = d.ok(&[
        "run",
        "-d",
        "--name",
        "talker",
        IMAGE,
        "sh",
        "-c",
        "echo first; sleep 1000",
    ]);
    let id = id.trim();
    wait_until("the first line is logged", 10, || {
        d.ok(&["logs", "talker"]).contains("first")
    });
    // 1 GiB of records appended to the container's json-file log, then one last line.
    let log = d
        .dir
        .path()
        .join("data/containers")
        .join(id)
        .join(format!("{id}-json.log"));
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    let rec = format!(
        "{{\"log\":\"{}\\n\",\"stream\":\"stdout\",\"time\":\"2026-12-06T10:00:00.000000000Z\"}}\n",
        "x".repeat(1000)
    );
    let chunk = rec.repeat((1 << 20) / rec.len());
    let mut written = 0u64;
    while written < 1 << 30 {
        f.write_all(chunk.as_bytes()).unwrap();
        written += chunk.len() as u64;
    }
    f.write_all(
        b"{\"log\":\"the-last-line\\n\",\"stream\":\"stdout\",\"time\":\"2026-12-06T10:00:01.000000000Z\"}\n",
    )
    .unwrap();
    drop(f);
    let before = rss_kib(d.pid());
    let t0 = Instant::now();
    let o = docker_within(&d.sock, 10, &["logs", "--tail", "1", "talker"]);
    let took = t0.elapsed();
    assert_eq!(text(&o), (0, "the-last-line".to_string(), String::new()));
    let grew = rss_kib(d.pid()).saturating_sub(before);
    eprintln!("logs --tail 1 of a 1 GiB log: {took:?}, berthd RSS +{grew} KiB");
    assert!(
        grew < 20 << 10,
        "berthd grew by {grew} KiB reading --tail 1"
    );
    assert!(took < Duration::from_secs(5), "--tail 1 took {took:?}");
    d.ok(&["rm", "-f", "talker"]);
}

/// What this berthd has in the kernel and the process table: veth pairs, rootfs mounts under
/// its run directory, shims serving it, cgroups under its parent, and nft lines naming the
/// test's published port.
#[derive(Debug, PartialEq, Eq)]
struct Footprint {
    veths: usize,
    mounts: usize,
    shims: usize,
    cgroups: usize,
    nft_port: usize,
    proxied: usize,
}

fn footprint(d: &Berthd) -> Footprint {
    let run = d.dir.path().join("run");
    let run = run.to_string_lossy().into_owned();
    let veths = String::from_utf8_lossy(
        &Command::new("ip")
            .args(["-o", "link", "show", "type", "veth"])
            .output()
            .unwrap()
            .stdout,
    )
    .lines()
    .count();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(&run) && l.contains("rootfs"))
        .count();
    let shims = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).into_owned())
        // The shims themselves (argv[0]), not berthd, whose arguments name them too.
        .filter(|c| {
            c.split('\0')
                .next()
                .is_some_and(|a| a.ends_with("berth-shim"))
        })
        .filter(|c| c.contains(&run))
        .count();
    let mut cgroups = 0;
    for h in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        if let Ok(rd) = std::fs::read_dir(h.path().join(d.cgroup_parent())) {
            cgroups += rd.flatten().filter(|e| e.path().is_dir()).count();
        }
    }
    let nft = Command::new("nft")
        .args(["list", "table", "inet", "berth"])
        .output()
        .unwrap();
    let nft_port = String::from_utf8_lossy(&nft.stdout)
        .lines()
        .filter(|l| l.contains("18081"))
        .count();
    Footprint {
        veths,
        mounts,
        shims,
        cgroups,
        nft_port,
        proxied: proxied(d).len(),
    }
}

/// The publications of berthd's port proxy (`{"op":"list"}` on its control socket); none
/// when no proxy runs.
fn proxied(d: &Berthd) -> Vec<serde_json::Value> {
    use std::io::BufRead;
    let Ok(mut s) = std::os::unix::net::UnixStream::connect(d.dir.path().join("run/proxy.sock"))
    else {
        return Vec::new();
    };
    s.write_all(b"{\"op\":\"list\"}\n").unwrap();
    let mut line = String::new();
    std::io::BufReader::new(s).read_line(&mut line).unwrap();
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["ok"], true, "{line}");
    v["published"].as_array().cloned().unwrap_or_default()
}

fn proxy_pid(d: &Berthd) -> Option<i32> {
    std::fs::read_to_string(d.dir.path().join("run/proxy.pid"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
}

/// Writes `n` bytes through `c` (an echo service) and reads them back.
fn echo(c: &mut std::net::TcpStream, n: usize) -> std::io::Result<()> {
    use std::io::Read;
    let chunk: Vec<u8> = (0..64 * 1024).map(|i| (i % 251) as u8).collect();
    let mut back = vec![0u8; chunk.len()];
    let mut done = 0;
    while done < n {
        c.write_all(&chunk)?;
        c.read_exact(&mut back)?;
        if back != chunk {
            return Err(std::io::Error::other("echoed bytes differ"));
        }
        done += chunk.len();
    }
    Ok(())
}

fn connect(port: u16) -> std::io::Result<std::net::TcpStream> {
    let c = std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_secs(2),
    )?;
    c.set_read_timeout(Some(Duration::from_secs(10)))?;
    Ok(c)
}

/// Runs an echo service named `name` published on 127.0.0.1:`port` (and every address).
fn serve(d: &Berthd, name: &str, port: u16) {
    let p = format!("{port}:80");
    let args = [
        "run", "-d", "--name", name, "-p", &p, IMAGE, "busybox", "nc", "-ll", "-p", "80", "-e",
        "busybox", "cat",
    ];
    d.ok(&args);
}

#[test]
fn netns_engine_core_the_port_proxy_outlives_berthd() {
    if !netns_support::enabled("netns_engine_core_the_port_proxy_outlives_berthd") {
        return;
    }
    let mut d = Berthd::start();
    assert_eq!(
        proxy_pid(&d),
        None,
        "a proxy started with nothing to publish"
    );
    serve(&d, "echo1", 18082);
    let pid = proxy_pid(&d).expect("berthd started its proxy for -p");
    let mut c = None;
    wait_until("127.0.0.1:18082 echoes", 30, || {
        c = connect(18082)
            .ok()
            .filter(|c| echo(&mut c.try_clone().unwrap(), 64 * 1024).is_ok());
        c.is_some()
    });
    let mut c = c.unwrap();
    echo(&mut c, 4 << 20).unwrap();

    // A publication on IPv6 loopback only, which the endpoint's records do not hold.
    d.ok(&[
        "run",
        "-d",
        "--name",
        "echo6",
        "-p",
        "[::1]:18086:80",
        IMAGE,
        "busybox",
        "nc",
        "-ll",
        "-p",
        "80",
        "-e",
        "busybox",
        "cat",
    ]);
    let connect6 = || {
        std::net::TcpStream::connect_timeout(
            &"[::1]:18086".parse().unwrap(),
            Duration::from_secs(2),
        )
    };
    wait_until("[::1]:18086 echoes", 30, || {
        connect6().is_ok_and(|mut c| echo(&mut c, 64 * 1024).is_ok())
    });

    // berthd dies mid-transfer: the transfer goes on, and new connections are served.
    let mut moving = c.try_clone().unwrap();
    let transfer = std::thread::spawn(move || echo(&mut moving, 64 << 20));
    std::thread::sleep(Duration::from_millis(20));
    d.kill();
    assert!(
        !transfer.is_finished(),
        "the transfer ended before berthd was killed"
    );
    transfer
        .join()
        .unwrap()
        .expect("the transfer stopped with berthd");
    echo(&mut c, 4 << 20).expect("the connection stopped with berthd");
    let mut fresh = connect(18082).expect("127.0.0.1:18082 refused while berthd was down");
    echo(&mut fresh, 64 * 1024).unwrap();

    // The next berthd adopts the same proxy and its publication (no second one, no restart).
    d.start_again();
    echo(&mut c, 1 << 20).expect("the transfer stopped when berthd came back");
    assert_eq!(proxy_pid(&d), Some(pid), "the proxy was replaced");
    assert_eq!(proxied(&d).len(), 2, "{:?}", proxied(&d));
    echo(
        &mut connect6().expect("[::1]:18086 withdrawn by the next berthd"),
        64 * 1024,
    )
    .unwrap();
    d.ok(&["rm", "-f", "echo6"]);
    assert_eq!(proxied(&d).len(), 1, "{:?}", proxied(&d));
    assert_eq!(
        d.ok(&["port", "echo1", "80"]).lines().next(),
        Some("0.0.0.0:18082")
    );

    // A container that exited while no berthd ran: its publication is withdrawn at the next
    // start, the live one's kept.
    serve(&d, "echo2", 18083);
    let init: i32 = d
        .ok(&["inspect", "-f", "{{.State.Pid}}", "echo2"])
        .trim()
        .parse()
        .unwrap();
    let echo2 = d.ok(&["inspect", "-f", "{{.Id}}", "echo2"]);
    let exit_record = d
        .dir
        .path()
        .join("run/containers")
        .join(echo2.trim())
        .join("exit.json");
    assert_eq!(proxied(&d).len(), 2);
    d.kill();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(init),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    // Its shim records the exit; only then is it an exit that happened while no berthd ran.
    wait_until("echo2's shim records its exit", 10, || exit_record.exists());
    d.start_again();
    // (Its shim may still be finishing: then this berthd records the exit itself.)
    wait_until("echo2 is exited and its port withdrawn", 20, || {
        state(&d, "echo2") == "exited" && proxied(&d).len() == 1
    });
    assert!(connect(18083).is_err(), "127.0.0.1:18083 still served");
    echo(&mut c, 1 << 20).unwrap();
    drop(fresh);

    // The proxy itself killed: the next publication starts a new one, which serves every live
    // container's ports again.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    wait_until("the proxy dies", 10, || connect(18082).is_err());
    serve(&d, "echo3", 18084);
    let again = proxy_pid(&d).unwrap();
    assert_ne!(again, pid);
    for port in [18082, 18084] {
        wait_until(
            &format!("127.0.0.1:{port} echoes on the new proxy"),
            30,
            || connect(port).is_ok_and(|mut c| echo(&mut c, 64 * 1024).is_ok()),
        );
    }
    assert_eq!(proxied(&d).len(), 2, "{:?}", proxied(&d));
    assert!(
        connect(18083).is_err(),
        "the exited container's port came back"
    );

    // rm -f withdraws its publication; nothing is left once every container is gone.
    d.ok(&["rm", "-f", "echo1", "echo2", "echo3"]);
    assert!(connect(18082).is_err(), "127.0.0.1:18082 still served");
    assert_eq!(proxied(&d), Vec::<serde_json::Value>::new());

    // A berthd that stops (SIGTERM) with nothing published leaves no proxy behind.
    assert!(proxy_pid(&d).is_some());
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(d.pid() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert!(
        d.wait_exit(20).is_some_and(|st| st.success()),
        "berthd did not stop"
    );
    assert!(
        !d.dir.path().join("run/proxy.sock").exists() && proxy_pid(&d).is_none(),
        "an idle proxy outlived a berthd that stopped"
    );
}

fn inspect(d: &Berthd, name: &str, format: &str) -> String {
    let o = docker_within(&d.sock, 15, &["inspect", "-f", format, name]);
    text(&o).1
}

/// Waits until `name` is in the middle of a restart by its policy: counted, not yet running
/// (berthd holds each restart 1.5 s between its network and its process).
fn in_restart_window(d: &Berthd, name: &str) {
    wait_until(&format!("{name} is being restarted"), 30, || {
        inspect(d, name, "{{.RestartCount}} {{.State.Status}}")
            .split_once(' ')
            .is_some_and(|(n, st)| n.parse::<u32>().is_ok_and(|n| n >= 1) && st == "restarting")
    });
}

#[test]
fn netns_engine_core_stop_and_rm_are_ordered_with_a_restart_by_policy() {
    if !netns_support::enabled("netns_engine_core_stop_and_rm_are_ordered_with_a_restart_by_policy")
    {
        return;
    }
    let mut d = Berthd::start();
    let empty = footprint(&d);
    d.set_env(&[("BERTH_FAILPOINTS", "start:after-network=sleep(1500)")]);
    d.restart();
    // Fails its first run, then (restarted) runs on: a restart that is not undone shows.
    let looper = |name: &str| {
        d.ok(&[
            "run",
            "-d",
            "--name",
            name,
            "--restart",
            "always",
            IMAGE,
            "sh",
            "-c",
            "[ -e /ran ] && exec sleep 1000; : > /ran; exit 1",
        ]);
    };

    // docker stop while a restart is under way: the container stays stopped once the
    // restart's run is ready (Docker's stop wins over its restart manager).
    looper("looper");
    in_restart_window(&d, "looper");
    d.ok(&["stop", "looper"]);
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(state(&d, "looper"), "exited");
    let count = inspect(&d, "looper", "{{.RestartCount}}");
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(state(&d, "looper"), "exited", "restarted after a stop");
    assert_eq!(inspect(&d, "looper", "{{.RestartCount}}"), count);

    // docker rm -f while a restart is under way: it waits for the restart, then removes
    // (no conflict), and nothing of either is left.
    looper("looper2");
    in_restart_window(&d, "looper2");
    let o = docker_within(&d.sock, 20, &["rm", "-f", "looper2"]);
    assert!(o.status.success(), "rm -f during a restart: {:?}", text(&o));
    assert_eq!(state(&d, "looper2"), "gone");
    d.ok(&["rm", "-f", "looper"]);
    assert_eq!(footprint(&d), empty);
}

#[test]
fn netns_engine_core_an_rm_containers_files_are_removed_without_the_engine() {
    if !netns_support::enabled(
        "netns_engine_core_an_rm_containers_files_are_removed_without_the_engine",
    ) {
        return;
    }
    let mut d = Berthd::start();
    let empty = footprint(&d);
    // Each removal of a container's files is held 5 s.
    d.set_env(&[("BERTH_FAILPOINTS", "rm:before-files=sleep(5000)")]);
    d.restart();
    d.ok(&["run", "-d", "--rm", "--name", "brief", IMAGE, "true"]);
    wait_until("brief's removal is under way", 15, || {
        state(&d, "brief") == "removing"
    });
    // Requests that take the engine's lock answer while its files are being removed, and
    // another container's exit is recorded meanwhile (a foreground run returns): a container
    // that wrote millions of files delays only its own removal.
    let t = Instant::now();
    d.ok(&["volume", "ls"]);
    d.ok(&["create", "--name", "other", IMAGE, "true"]);
    d.ok(&["run", "--name", "quick", "--network", "none", IMAGE, "true"]);
    let took = t.elapsed();
    assert!(
        took < Duration::from_millis(3500),
        "requests waited for an --rm container's files: {took:?}"
    );
    // Removing it meanwhile is Docker's conflict, not a wait.
    let o = docker_within(&d.sock, 3, &["rm", "-f", "brief"]);
    let (code, _, err) = text(&o);
    assert!(
        code != 0 && err.contains("removal of container brief is already in progress"),
        "{err}"
    );
    assert_eq!(state(&d, "brief"), "removing", "the removal was still held");
    wait_until("brief is gone", 15, || state(&d, "brief") == "gone");
    d.ok(&["rm", "other", "quick"]);
    d.set_env(&[]);
    d.restart();
    assert_eq!(footprint(&d), empty);
}

#[test]
fn netns_engine_core_a_start_that_panics_fails_cleanly() {
    if !netns_support::enabled("netns_engine_core_a_start_that_panics_fails_cleanly") {
        return;
    }
    let mut d = Berthd::start();
    let empty = footprint(&d);
    d.set_env(&[("BERTH_FAILPOINTS", "start:prepare=panic")]);
    d.restart();
    // The start fails with a message (a bug's panic is a failed start, not a hung request),
    // and the container is not left busy: it can be removed, and berthd answers on.
    d.ok(&["create", "--name", "doomed", IMAGE, "true"]);
    let (code, _, err) = text(&docker_within(&d.sock, 20, &["start", "doomed"]));
    assert!(code != 0 && err.contains("internal error"), "{code} {err}");
    assert_eq!(state(&d, "doomed"), "created");
    let o = docker_within(&d.sock, 20, &["rm", "doomed"]);
    assert!(
        o.status.success(),
        "rm after a panicked start: {:?}",
        text(&o)
    );
    d.ok(&["ps"]);
    assert!(d.wait_exit(0).is_none(), "berthd ended");
    d.set_env(&[]);
    d.restart();
    assert_eq!(footprint(&d), empty);
}

#[test]
fn netns_engine_core_a_hostile_deep_tree_is_removed_without_hurting_the_daemon() {
    if !netns_support::enabled(
        "netns_engine_core_a_hostile_deep_tree_is_removed_without_hurting_the_daemon",
    ) {
        return;
    }
    let d = Berthd::start();
    let empty = footprint(&d);
    let data = d.dir.path().join("data/containers");
    // Deeper than std's recursive removal can go: one descriptor per level runs out of
    // files (leaving it all behind), and past ~50,000 levels the stack overflows.
    let depth = 30_000;
    let id = d.ok(&[
        "run",
        "-d",
        "--name",
        "deep",
        "--network",
        "none",
        IMAGE,
        "sh",
        "-c",
        &format!(
            // Grown at the top (a shell's `cd` stops at PATH_MAX; a program would not).
            "mkdir d; i=0; while [ $i -lt {depth} ]; do mkdir n && mv d n/ && mv n d || {{ echo failed at $i; exit 1; }}; i=$((i+1)); done"
        ),
    ]);
    let id = id.trim().to_string();
    let t0 = Instant::now();
    let o = docker_within(&d.sock, 300, &["wait", "deep"]);
    assert_eq!(
        text(&o).1,
        "0",
        "the tree was not made: {:?}",
        d.docker(&["logs", "deep"])
    );
    eprintln!("{depth} levels made in {:?}", t0.elapsed());
    // docker cp of it: refused past PATH_MAX (the transfer breaks off: the answer's status
    // was sent), with berthd answering on; its walk recursed once per level and overflowed
    // the stack.
    let cp = text(&docker_within(&d.sock, 120, &["cp", "deep:/d", "-"]));
    let alive = d.docker(&["ps"]).status.success();
    let rm = text(&docker_within(&d.sock, 120, &["rm", "deep"]));
    if data.join(&id).exists() {
        // Removed here, so the test's own cleanup (std's recursive removal) does not overflow.
        engine::tree::remove_tree(&data.join(&id)).unwrap();
        panic!("the container's files were left: rm said {rm:?}");
    }
    assert!(cp.0 != 0, "docker cp of a tree past PATH_MAX: {cp:?}");
    assert!(alive, "berthd stopped answering after docker cp");
    assert_eq!(rm.0, 0, "rm of the deep tree: {rm:?}");
    d.ok(&["ps"]);
    assert_eq!(footprint(&d), empty);
}

/// Runs `args` with berthd armed to die at `failpoint`, checks that it died there, and starts
/// it again unarmed.
fn crash_at(d: &mut Berthd, failpoint: &str, args: &[&str]) {
    d.set_env(&[("BERTH_FAILPOINTS", failpoint)]);
    d.restart();
    let o = docker_within(&d.sock, 30, args);
    match d.wait_exit(30) {
        Some(st) => assert!(!st.success(), "{failpoint}: berthd exited with {st}"),
        None => panic!(
            "{failpoint}: berthd did not die; {args:?} said {:?}",
            text(&o)
        ),
    }
    d.set_env(&[]);
    d.restart();
}

fn state(d: &Berthd, name: &str) -> String {
    let o = docker_within(&d.sock, 15, &["inspect", "-f", "{{.State.Status}}", name]);
    let (code, out, err) = text(&o);
    if code != 0 {
        assert!(
            err.contains("No such object") || err.contains("No such container"),
            "{err}"
        );
        return "gone".into();
    }
    out
}

#[test]
fn netns_engine_core_a_crash_at_any_step_leaves_things_consistent() {
    if !netns_support::enabled("netns_engine_core_a_crash_at_any_step_leaves_things_consistent") {
        return;
    }
    let mut d = Berthd::start();
    let empty = footprint(&d);
    assert_eq!(
        empty.mounts + empty.shims + empty.cgroups + empty.nft_port,
        0,
        "{empty:?}"
    );
    let run = [
        "run", "-d", "--name", "crashy", "-p", "18081:80", IMAGE, "sleep", "1000",
    ];

    // create: before the record nothing is left; after it, a created container.
    crash_at(&mut d, "create:before-record", &run);
    assert_eq!(state(&d, "crashy"), "gone");
    assert_eq!(footprint(&d), empty);
    crash_at(&mut d, "create:after-record", &run);
    assert_eq!(state(&d, "crashy"), "created");
    assert_eq!(footprint(&d), empty);

    // start: a crash before the shim runs leaves it not running and its network gone; a
    // crash after the shim runs leaves it running, adopted by the next berthd.
    crash_at(&mut d, "start:after-network", &["start", "crashy"]);
    assert_eq!(state(&d, "crashy"), "created");
    assert_eq!(footprint(&d), empty);
    crash_at(&mut d, "start:after-spawn", &["start", "crashy"]);
    assert_eq!(state(&d, "crashy"), "running");
    d.ok(&["exec", "crashy", "true"]);
    let live = footprint(&d);
    assert_eq!(
        (live.veths, live.mounts, live.shims),
        (empty.veths + 1, 1, 1),
        "{live:?}"
    );
    assert!(live.nft_port > 0, "{live:?}");
    // The adopted container's port is served on both families again, as `-p 18081:80` was.
    for addr in ["127.0.0.1:18081", "[::1]:18081"] {
        let a: std::net::SocketAddr = addr.parse().unwrap();
        let c = std::net::TcpStream::connect_timeout(&a, Duration::from_secs(2));
        // The proxy accepts and, nothing listening in the container (`sleep`), resets the
        // connection, which can come before the connect returns; refused is nothing there.
        assert!(
            c.is_ok()
                || c.as_ref()
                    .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
            "nothing listens on {addr} after the adoption: {c:?}"
        );
    }

    // stop: killed, not recorded; the next berthd records the exit.
    crash_at(&mut d, "stop:before-record", &["stop", "-t", "0", "crashy"]);
    assert_eq!(state(&d, "crashy"), "exited");
    assert_eq!(footprint(&d), empty);

    // rm -f of a running container: a crash at either step, and the next berthd finishes it.
    for fp in ["rm:after-marking", "rm:after-teardown"] {
        d.ok(&["start", "crashy"]);
        crash_at(&mut d, fp, &["rm", "-f", "crashy"]);
        assert_eq!(state(&d, "crashy"), "gone", "{fp}");
        assert_eq!(footprint(&d), empty, "{fp}");
        d.ok(&run);
    }
    d.ok(&["rm", "-f", "crashy"]);

    // An image load cut short before its record: no image, nothing of it left in the store.
    let saved = d.dir.path().join("saved.tar");
    d.ok(&["tag", IMAGE, "crash/img:1"]);
    d.ok(&["save", "-o", &saved.to_string_lossy(), "crash/img:1"]);
    d.ok(&["rmi", "crash/img:1"]);
    let blob_dir = d.dir.path().join("data/image/blobs/sha256");
    let blobs = || std::fs::read_dir(&blob_dir).unwrap().count();
    let before = blobs();
    d.ok(&["rmi", IMAGE]);
    let without = blobs();
    assert!(without < before);
    crash_at(
        &mut d,
        "image:before-record",
        &["load", "-i", &saved.to_string_lossy()],
    );
    let o = d.docker(&["image", "inspect", "crash/img:1"]);
    assert!(!o.status.success(), "a load cut short left an image");
    assert_eq!(blobs(), without, "a load cut short left blobs");
    let loaded = d.ok(&["load", "-i", &saved.to_string_lossy()]);
    assert!(loaded.contains("crash/img:1"), "{loaded}");

    // A pull cut short after its blobs were written, before its record: the same.
    let reg = Registry::start();
    let pulled = format!("127.0.0.1:{}/crash/pulled:1", reg.port);
    d.ok(&["tag", "crash/img:1", &pulled]);
    d.ok(&["push", &pulled]);
    d.ok(&["rmi", &pulled, "crash/img:1"]);
    assert_eq!(blobs(), without);
    crash_at(&mut d, "image:before-record", &["pull", "-q", &pulled]);
    let o = d.docker(&["image", "inspect", &pulled]);
    assert!(!o.status.success(), "a pull cut short left an image");
    assert_eq!(blobs(), without, "a pull cut short left blobs");
    d.ok(&["pull", "-q", &pulled]);
    d.ok(&["image", "inspect", &pulled]);
    assert_eq!(footprint(&d), empty);

    // A commit cut short while its container is frozen, and one cut short before its record:
    // no image, no blob, and the container runs on, thawed by the next berthd.
    d.ok(&["run", "-d", "--name", "committed", &pulled, "sleep", "1000"]);
    d.ok(&["exec", "committed", "sh", "-c", "echo changed > /changed"]);
    let with_container = blobs();
    let snapshot_dir = d.dir.path().join("data/image/snapshots");
    let snapshots = || std::fs::read_dir(&snapshot_dir).unwrap().count();
    let layers = snapshots();
    for fp in ["commit:frozen", "image:before-record"] {
        crash_at(&mut d, fp, &["commit", "committed", "crash/committed:1"]);
        assert_eq!(state(&d, "committed"), "running", "{fp}");
        let o = docker_within(&d.sock, 15, &["exec", "committed", "cat", "/changed"]);
        assert_eq!(
            text(&o).1,
            "changed",
            "{fp}: the container answers (not left frozen): {:?}",
            text(&o)
        );
        let o = d.docker(&["image", "inspect", "crash/committed:1"]);
        assert!(
            !o.status.success(),
            "{fp}: a commit cut short left an image"
        );
        assert_eq!(
            blobs(),
            with_container,
            "{fp}: a commit cut short left blobs"
        );
        assert_eq!(snapshots(), layers, "{fp}: a commit cut short left a layer");
    }
    d.ok(&["commit", "committed", "crash/committed:1"]);
    d.ok(&["rm", "-f", "committed"]);
    d.ok(&["rmi", "crash/committed:1"]);
    assert_eq!(footprint(&d), empty);
}

/// A runtime that records each call (its arguments, one line) in `log`, then runs runc.
fn traced_runtime(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let log = dir.join("traced.log");
    let script = dir.join("traced");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$*\" >> {}\nexec runc \"$@\"\n",
            log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    (script, log)
}

/// `--runtime NAME` with a runtime the daemon declares (`runtimes` in daemon.json for berthd,
/// `--add-runtime` for dockerd: the same declaration): what runs, what inspect and info show,
/// and an unknown name.
fn runtime_steps(docker: &dyn Fn(&[&str]) -> Output, log: &std::path::Path) -> Vec<String> {
    let mut steps = Vec::new();
    let (code, out, err) = text(&docker(&[
        "run",
        "--rm",
        "--runtime",
        "traced",
        "--network",
        "none",
        IMAGE,
        "echo",
        "hi",
    ]));
    steps.push(format!("run: {code} {out} {err}"));
    let (code, _, err) = text(&docker(&[
        "run",
        "-d",
        "--name",
        "picked",
        "--runtime",
        "traced",
        "--network",
        "none",
        IMAGE,
        "sleep",
        "100",
    ]));
    steps.push(format!("run -d: {code} {err}"));
    let (_, id, _) = text(&docker(&["inspect", "-f", "{{.Id}}", "picked"]));
    let (_, rt, _) = text(&docker(&[
        "inspect",
        "-f",
        "{{.HostConfig.Runtime}}",
        "picked",
    ]));
    steps.push(format!("inspect: {rt}"));
    let (code, out, _) = text(&docker(&["exec", "picked", "echo", "in"]));
    steps.push(format!("exec: {code} {out}"));
    let (code, _, _) = text(&docker(&["rm", "-f", "picked"]));
    steps.push(format!("rm: {code}"));
    let calls = std::fs::read_to_string(log).unwrap_or_default();
    // Every call on the container went to the declared runtime, with its arguments.
    for op in ["create", "start", "exec", "delete"] {
        let seen = calls
            .lines()
            .any(|l| l.contains("--debug") && l.contains(op) && l.contains(&id));
        steps.push(format!("traced {op}: {seen}"));
    }
    let (code, _, _) = text(&docker(&[
        "run",
        "-d",
        "--name",
        "plain",
        "--network",
        "none",
        IMAGE,
        "sleep",
        "100",
    ]));
    let (_, plain, _) = text(&docker(&[
        "inspect",
        "-f",
        "{{.Id}} {{.HostConfig.Runtime}}",
        "plain",
    ]));
    let (plain_id, plain_rt) = plain.split_once(' ').unwrap_or_default();
    let calls = std::fs::read_to_string(log).unwrap_or_default();
    steps.push(format!(
        "default: {code} {plain_rt:?} traced: {}",
        calls.contains(plain_id)
    ));
    docker(&["rm", "-f", "plain"]);
    let (code, _, err) = text(&docker(&[
        "run",
        "--rm",
        "--runtime",
        "bogus",
        IMAGE,
        "true",
    ]));
    steps.push(format!("bogus: {code} {err}"));
    let (_, info, _) = text(&docker(&[
        "info",
        "--format",
        "{{json .Runtimes.traced.Args}}",
    ]));
    steps.push(format!("info: {info}"));
    // A declared runtime whose program is missing fails the starts that ask for it; the
    // daemon runs on.
    let (code, _, _) = text(&docker(&[
        "run",
        "--rm",
        "--runtime",
        "gone",
        "--network",
        "none",
        IMAGE,
        "true",
    ]));
    steps.push(format!("gone fails: {}", code != 0));
    let (code, _, _) = text(&docker(&["ps", "-q"]));
    steps.push(format!("then ps: {code}"));
    steps
}

#[test]
fn netns_engine_core_runtimes_are_chosen_by_name_as_docker_does() {
    if !netns_support::enabled("netns_engine_core_runtimes_are_chosen_by_name_as_docker_does") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (script, log) = traced_runtime(tmp.path());
    let conf = tmp.path().join("daemon.json");
    std::fs::write(
        &conf,
        serde_json::json!({"runtimes": {
            "traced": {"path": script, "runtimeArgs": ["--debug"]},
            "gone": {"path": "/nonexistent/runtime"},
        }})
        .to_string(),
    )
    .unwrap();
    let d = Berthd::start_with_args(&["--config-file", &conf.to_string_lossy()]);
    let berth = runtime_steps(&|args| d.docker(args), &log);
    assert!(berth[0].starts_with("run: 0 hi"), "{berth:#?}");
    assert_eq!(berth[2], "inspect: traced", "{berth:#?}");
    for step in &berth[5..9] {
        assert!(step.ends_with("true"), "{berth:#?}");
    }
    assert_eq!(berth[9], "default: 0 \"runc\" traced: false", "{berth:#?}");
    assert!(
        berth[10].starts_with("bogus: 125")
            && berth[10].contains("Unknown runtime specified bogus"),
        "{berth:#?}"
    );
    assert_eq!(berth[11], "info: [\"--debug\"]", "{berth:#?}");
    assert_eq!(
        berth[12..],
        ["gone fails: true", "then ps: 0"],
        "{berth:#?}"
    );
    let (_, default, _) = text(&d.docker(&["info", "--format", "{{.DefaultRuntime}}"]));
    assert_eq!(default, "runc");
    // Declared twice (flag and file) or under a reserved name: refused by name, as dockerd.
    let validate = |args: &[&str]| {
        let o = Command::new(support::berthd_bin())
            .arg("--validate")
            .args(args)
            .output()
            .unwrap();
        assert!(!o.status.success());
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let conf_arg = conf.to_string_lossy().into_owned();
    let both = validate(&["--config-file", &conf_arg, "--add-runtime", "x=/bin/true"]);
    assert!(
        both.contains("specified both as a flag and in the configuration file: runtimes"),
        "{both}"
    );
    let reserved = validate(&["--add-runtime", "runc=/bin/true"]);
    assert!(
        reserved.contains("runtime name 'runc' is reserved"),
        "{reserved}"
    );
    drop(d);

    let other = tempfile::tempdir().unwrap();
    let (script, log) = traced_runtime(other.path());
    let conf = other.path().join("daemon.json");
    std::fs::write(
        &conf,
        serde_json::json!({"runtimes": {
            "traced": {"path": script, "runtimeArgs": ["--debug"]},
            "gone": {"path": "/nonexistent/runtime"},
        }})
        .to_string(),
    )
    .unwrap();
    match Dockerd::start_with_args(&["--config-file", &conf.to_string_lossy()]) {
        Some(docker) => {
            let want = runtime_steps(&|args| docker.docker(args), &log);
            assert_eq!(berth, want, "berthd (left) and dockerd (right)");
        }
        None => eprintln!("dockerd is not installed: berthd's runtimes checked alone"),
    }
}
