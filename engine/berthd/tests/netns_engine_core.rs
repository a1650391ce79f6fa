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
