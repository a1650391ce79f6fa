//! The container engine end to end, as `docker run` uses it: busybox images run by runc under
//! berth-shim, networked through netcore (bridge, user network with DNS, -p through the
//! kernel's DNAT and portproxy), volumes, logs, exec, stop codes, OOM, restart policy, and a
//! daemon killed with SIGKILL whose containers a new engine adopts. Privileged: run through
//! scripts/netns-test.sh.

#[path = "../../portproxy/tests/netns_support/mod.rs"]
#[allow(dead_code)]
mod netns_support;

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use engine::container::{
    AfterExit, Connection, CreateOptions, Engine, EngineConfig, ExecOptions, LogOptions, Status,
    supervise,
};
use engine::image::layer::fixtures::busybox_rootfs;
use engine::image::store::ImageStore;
use netcore::network::CreateRequest;
use netns_support::{Topo, enabled};

const IMAGE: &str = "berth-test/busybox";

/// A data root and exec root of their own, with the busybox image, a fake host resolv.conf
/// and a cgroup parent removed at the end.
struct Roots {
    dir: tempfile::TempDir,
    cgroup_parent: String,
}

impl Roots {
    fn new() -> Roots {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(&dir.path().join("data/image")).unwrap();
        store
            .import(&busybox_rootfs().unwrap()[..], Some(IMAGE))
            .unwrap();
        // Nothing is forwarded in these tests; a loopback upstream keeps it that way.
        fs::write(dir.path().join("resolv.conf"), "nameserver 127.0.0.1\n").unwrap();
        Roots {
            cgroup_parent: format!("berth-test-{}", std::process::id()),
            dir,
        }
    }

    fn config(&self) -> EngineConfig {
        EngineConfig {
            data_root: self.dir.path().join("data"),
            exec_root: self.dir.path().join("run"),
            runtime: None,
            runtimes: Default::default(),
            shim: PathBuf::from(env!("CARGO_BIN_EXE_berth-shim")),
            // Built by the workspace's test build (scripts/netns-test.sh) beside the shim.
            proxy: PathBuf::from(env!("CARGO_BIN_EXE_berth-shim")).with_file_name("berth-proxy"),
            resolv_conf: self.dir.path().join("resolv.conf"),
            cgroup_parent: self.cgroup_parent.clone(),
            slirp: PathBuf::from(env!("CARGO_BIN_EXE_berth-shim")).with_file_name("berth-slirp"),
        }
    }

    /// Nothing of any container is left: mounts, namespaces, cgroups, bundles.
    fn assert_clean(&self) {
        let prefix = self.dir.path().display().to_string();
        let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
        let left: Vec<&str> = mounts.lines().filter(|l| l.contains(&prefix)).collect();
        assert!(left.is_empty(), "mounts left: {left:#?}");
        let netns = self.dir.path().join("run/netns");
        assert_eq!(
            fs::read_dir(&netns).map_or(0, |d| d.count()),
            0,
            "namespace files left"
        );
        let bundles = self.dir.path().join("run/containers");
        assert_eq!(
            fs::read_dir(&bundles).map_or(0, |d| d.count()),
            0,
            "bundles left"
        );
        for h in fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
            let p = h.path().join(&self.cgroup_parent);
            let children =
                fs::read_dir(&p).map_or(0, |d| d.flatten().filter(|e| e.path().is_dir()).count());
            assert_eq!(children, 0, "cgroups left under {}", p.display());
        }
    }
}

impl Drop for Roots {
    fn drop(&mut self) {
        // The proxy outlives engines by design; the test's goes with its roots.
        engine::container::stop_proxy(&self.dir.path().join("run/proxy.pid"));
        if let Ok(rd) = fs::read_dir("/sys/fs/cgroup") {
            for h in rd.flatten() {
                let _ = fs::remove_dir(h.path().join(&self.cgroup_parent));
            }
        }
    }
}

fn opts(name: &str, cmd: &str) -> CreateOptions {
    CreateOptions {
        name: Some(name.into()),
        image: IMAGE.into(),
        cmd: vec!["sh".into(), "-c".into(), cmd.into()],
        ..Default::default()
    }
}

fn all_streams() -> LogOptions {
    LogOptions {
        stdout: true,
        stderr: true,
        ..Default::default()
    }
}

fn output(e: &Engine, name: &str) -> String {
    e.logs(name, &all_streams())
        .unwrap()
        .into_iter()
        .map(|l| l.log)
        .collect()
}

/// `GET /` on `addr`, from whatever namespace the calling thread is in.
fn http_get(addr: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(3)))?;
    s.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(10) {
        if let Some(v) = f() {
            return v;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}");
}

const WEB: &str = "echo hello-from-$HOSTNAME > /tmp/index.html; exec httpd -f -p 80 -h /tmp";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn netns_containers_web_dns_volumes_logs_exec_stop() {
    if !enabled("netns_containers_web_dns_volumes_logs_exec_stop") {
        return;
    }
    let roots = Roots::new();
    let mut e = Engine::open(roots.config()).await.unwrap();

    // -p 8080:80 on the default bridge: from the host's loopback (portproxy) and from another
    // namespace through the kernel's DNAT.
    let mut web = opts("web", WEB);
    web.publish = vec!["8080:80".parse().unwrap()];
    web.hostname = Some("webhost".into());
    let web_id = e.create(web).unwrap();
    assert_eq!(e.get("web").unwrap().state.status, Status::Created);
    assert_eq!(e.resolve(&web_id[..6]).unwrap(), web_id);
    e.start("web").await.unwrap();
    assert_eq!(e.get(&web_id).unwrap().state.status, Status::Running);
    // The proxy accepts before httpd listens (and then closes: an empty answer); wait for the page.
    let body = eventually("web on 127.0.0.1:8080", || {
        http_get("127.0.0.1:8080")
            .ok()
            .filter(|b| b.contains("hello-from-webhost"))
    });
    assert!(body.contains("hello-from-webhost"), "{body}");
    let topo = Topo::new();
    let host = topo.host_v4();
    let outside = topo.cli.run(move || http_get(&format!("{host}:8080")));
    assert!(outside.unwrap().contains("hello-from-webhost"));
    // Docker's answers for a name in use and a running container.
    let dup = e.create(opts("web", "true")).unwrap_err().to_string();
    assert!(
        dup.contains("\"/web\" is already in use by container"),
        "{dup}"
    );
    let busy = e.remove("web", false, false).await.unwrap_err().to_string();
    assert!(busy.contains("container is running"), "{busy}");

    // Starts the machine refuses fail with the value named and undo every step before them:
    // a host port another container holds (after the namespace, endpoint and overlay were made),
    // and a user the image does not know (after the overlay was mounted).
    let mut clash = opts("clash", "sleep 60");
    clash.publish = vec!["8080:80".parse().unwrap()];
    e.create(clash).unwrap();
    let err = e.start("clash").await.unwrap_err().to_string();
    assert!(
        err.contains("8080") && err.contains("already allocated"),
        "{err}"
    );
    let mut stranger = opts("stranger", "true");
    stranger.user = Some("nobody".into());
    e.create(stranger).unwrap();
    let err = e.start("stranger").await.unwrap_err().to_string();
    assert!(err.contains("unable to find user nobody"), "{err}");
    for n in ["clash", "stranger"] {
        let c = e.get(n).unwrap();
        assert_eq!(c.state.status, Status::Created, "{n}");
        assert!(!c.state.error.is_empty(), "{n}: the error is recorded");
        let bundle = roots.dir.path().join("run/containers").join(&c.id);
        assert!(!bundle.exists(), "{n}: no bundle or rootfs mount left");
        assert!(
            !roots.dir.path().join("run/netns").join(&c.id).exists(),
            "{n}: no namespace left"
        );
        let id = c.id.clone();
        assert!(
            !e.network_state()
                .endpoints
                .values()
                .any(|ep| ep.container == id),
            "{n}: no endpoint left"
        );
    }
    assert!(
        http_get("127.0.0.1:8080")
            .unwrap()
            .contains("hello-from-webhost"),
        "web keeps its port"
    );

    // exec: environment, working directory, user, stdin; a missing command is 127.
    let out = e
        .exec(
            "web",
            ExecOptions {
                cmd: vec![
                    "sh".into(),
                    "-c".into(),
                    "echo $FOO $(pwd) $(busybox id -u); cat".into(),
                ],
                env: vec!["FOO=bar".into()],
                workdir: Some("/tmp".into()),
                user: Some("1234".into()),
                ..Default::default()
            },
            Some(b"piped\n".to_vec()),
        )
        .await
        .unwrap();
    assert_eq!(
        (out.exit_code, String::from_utf8_lossy(&out.stdout).as_ref()),
        (0, "bar /tmp 1234\npiped\n")
    );
    let missing = e
        .exec(
            "web",
            ExecOptions {
                cmd: vec!["nope".into()],
                ..Default::default()
            },
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        missing.exit_code,
        127,
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );

    // Two containers on a user network reach each other by name and alias.
    e.networks()
        .await
        .create(CreateRequest {
            name: "appnet".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut api = opts("api", WEB);
    api.network = Some("appnet".into());
    api.network_aliases = vec!["backend".into()];
    e.create(api).unwrap();
    e.start("api").await.unwrap();
    let mut client = opts(
        "client",
        // api's httpd may not listen yet when client starts: a few tries, as a client would.
        "cat /etc/resolv.conf; for i in $(seq 50); do wget -qO- http://api/ >/dev/null 2>&1 && break; sleep 0.1; done; wget -qO- http://api/ && wget -qO- http://backend/",
    );
    client.network = Some("appnet".into());
    e.create(client).unwrap();
    e.start("client").await.unwrap();
    let (code, _) = e.wait("client").await.unwrap();
    let out = output(&e, "client");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("nameserver 127.0.0.11"), "{out}");
    assert_eq!(out.matches("hello-from-").count(), 2, "{out}");

    // A named volume outlives its container; --volumes-from shares it read-only; the image's
    // content is copied into an empty volume on first use.
    let mut w = opts("writer", "echo persisted > /data/f");
    w.volumes = vec!["keep:/data".into()];
    e.create(w).unwrap();
    e.start("writer").await.unwrap();
    assert_eq!(e.wait("writer").await.unwrap().0, 0);
    e.remove("writer", false, true).await.unwrap();
    let mut r = opts(
        "reader",
        "cat /data/f; (echo x > /data/g) 2>/dev/null || echo read-only",
    );
    r.volumes = vec!["keep:/data".into()];
    e.create(r).unwrap();
    let mut from = opts(
        "from",
        "cat /data/f; (echo x > /data/g) 2>/dev/null || echo read-only",
    );
    from.volumes_from = vec!["reader:ro".into()];
    e.create(from).unwrap();
    for n in ["reader", "from"] {
        e.start(n).await.unwrap();
        e.wait(n).await.unwrap();
    }
    assert_eq!(output(&e, "reader"), "persisted\n");
    assert_eq!(output(&e, "from"), "persisted\nread-only\n");
    let refused = engine::volume::VolumeBackend::remove(e.volumes(), "keep")
        .unwrap_err()
        .to_string();
    assert!(refused.contains("volume is in use"), "{refused}");
    let mut cu = opts("copyup", "ls /etc");
    cu.volumes = vec!["etcvol:/etc".into()];
    e.create(cu).unwrap();
    e.start("copyup").await.unwrap();
    e.wait("copyup").await.unwrap();
    let vol = roots.dir.path().join("data/volumes/etcvol/_data/passwd");
    assert!(
        vol.exists(),
        "the image's /etc was copied into the new volume"
    );

    // logs -f: lines arrive while the container runs.
    e.create(opts(
        "talker",
        "echo one; sleep 1; echo two; sleep 1; echo three",
    ))
    .unwrap();
    e.start("talker").await.unwrap();
    let (now, mut follower) = e.follow_logs("talker", &all_streams()).unwrap();
    let mut seen: Vec<String> = now.into_iter().map(|l| l.log).collect();
    let mut while_running = None;
    let watch = e.exit_watch("talker").unwrap().expect("running");
    while !seen.iter().any(|l| l == "three\n") {
        seen.extend(
            follower
                .poll(usize::MAX)
                .unwrap()
                .into_iter()
                .map(|l| l.log),
        );
        if while_running.is_none() && !seen.is_empty() && !watch.exited() {
            while_running = Some(seen.clone());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(seen, ["one\n", "two\n", "three\n"]);
    let early = while_running.expect("a line was read before the container ended");
    assert!(early.len() < 3, "{early:?}");

    // stop: SIGTERM handled -> 143; PID 1 ignoring it -> SIGKILL after the timeout -> 137.
    e.create(opts(
        "term",
        "trap 'exit 143' TERM; while :; do sleep 0.1; done",
    ))
    .unwrap();
    e.create(opts("stubborn", "exec sleep 60")).unwrap();
    for n in ["term", "stubborn"] {
        e.start(n).await.unwrap();
    }
    let t0 = Instant::now();
    assert_eq!(
        e.stop("term", Some(Duration::from_secs(5))).await.unwrap(),
        143
    );
    assert!(t0.elapsed() < Duration::from_secs(3));
    assert_eq!(
        e.stop("stubborn", Some(Duration::from_secs(1)))
            .await
            .unwrap(),
        137
    );
    assert_eq!(e.get("stubborn").unwrap().state.status, Status::Exited);
    // Stopping again is a no-op; kill of a stopped container is refused as Docker does.
    assert_eq!(e.stop("stubborn", None).await.unwrap(), 137);
    assert!(e.kill("stubborn", "KILL").is_err());

    // --rm: the exit code comes back and the container is gone.
    let mut rm = opts("gone", "exit 3");
    rm.auto_remove = true;
    e.create(rm).unwrap();
    e.start("gone").await.unwrap();
    assert_eq!(e.wait("gone").await.unwrap(), (3, AfterExit::Removed(3)));
    assert!(e.get("gone").is_err());

    // pause / unpause through the freezer.
    e.pause("web", true).unwrap();
    assert_eq!(e.get("web").unwrap().state.status, Status::Paused);
    assert!(
        e.exec(
            "web",
            ExecOptions {
                cmd: vec!["true".into()],
                ..Default::default()
            },
            None,
        )
        .await
        .is_err()
    );
    e.pause("web", false).unwrap();
    e.rename("web", "web2").unwrap();
    assert_eq!(e.get("web2").unwrap().id, web_id);

    // rm -f of everything leaves nothing behind (mounts, namespaces, cgroups, links, rules).
    let ids: Vec<String> = e.containers().map(|c| c.id.clone()).collect();
    for id in ids {
        e.remove(&id, true, true).await.unwrap();
    }
    assert!(http_get("127.0.0.1:8080").is_err(), "port 8080 unpublished");
    roots.assert_clean();
    let links = std::process::Command::new("ip")
        .args(["-o", "link"])
        .output()
        .unwrap();
    let links = String::from_utf8_lossy(&links.stdout);
    assert!(!links.contains("veth"), "no container veth left: {links}");
    let nft = std::process::Command::new("nft")
        .args(["list", "table", "inet", "berth"])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&nft.stdout).contains("8080"),
        "no DNAT left"
    );
    drop(e);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn netns_containers_oom_restart_policy_and_adoption_after_sigkill() {
    if !enabled("netns_containers_oom_restart_policy_and_adoption_after_sigkill") {
        return;
    }
    let roots = Roots::new();
    let e = Engine::open(roots.config()).await.unwrap();
    let engine = Arc::new(tokio::sync::Mutex::new(e));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let sup = tokio::spawn(supervise(engine.clone(), async move {
        let _ = stop_rx.await;
    }));

    {
        let mut e = engine.lock().await;
        // A memory limit kills with OOMKilled.
        let mut hog = opts(
            "hog",
            "x=$(busybox head -c 200000000 /dev/zero | busybox tr '\\0' a); echo survived",
        );
        hog.memory = Some(32 << 20);
        e.create(hog).unwrap();
        e.start("hog").await.unwrap();
        // An on-failure policy with a limit, and an always policy.
        let mut flaky = opts("flaky", "exec sleep 60");
        flaky.restart = engine::container::RestartPolicy::Always;
        e.create(flaky).unwrap();
        e.start("flaky").await.unwrap();
    }
    let hog = eventually("the OOM kill", || {
        let e = engine.try_lock().ok()?;
        let c = e.get("hog").ok()?;
        (c.state.status == Status::Exited).then(|| c.state.clone())
    });
    assert!(hog.oom_killed && hog.exit_code == 137, "{hog:?}");

    // Killing the container's process from outside: the policy brings it back.
    let first_pid = engine.lock().await.get("flaky").unwrap().state.pid;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(first_pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let back = eventually("the restart", || {
        let e = engine.try_lock().ok()?;
        let s = e.get("flaky").ok()?.state.clone();
        (s.status == Status::Running && s.pid != first_pid).then_some(s)
    });
    // Running again: the exit code is reset, the restart counted (Docker's inspect shows the same).
    assert_eq!((back.restart_count, back.exit_code), (1, 0), "{back:?}");
    // A user stop is not undone by the policy.
    assert_eq!(
        engine
            .lock()
            .await
            .stop("flaky", Some(Duration::from_secs(1)))
            .await
            .unwrap(),
        137
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        engine.lock().await.get("flaky").unwrap().state.status,
        Status::Exited
    );

    // A restart whose start fails (its bind-mount source vanished) is retried with back-off
    // until it can start again.
    let src = roots.dir.path().join("bindsrc");
    let mut retry = opts("retry", "exec sleep 60");
    retry.restart = engine::container::RestartPolicy::Always;
    retry.volumes = vec![format!("{}:/data", src.display())];
    let first_pid = {
        let mut e = engine.lock().await;
        e.create(retry).unwrap();
        e.start("retry").await.unwrap();
        e.get("retry").unwrap().state.pid
    };
    fs::remove_dir(&src).unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(first_pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let failing = eventually("failed restarts", || {
        let e = engine.try_lock().ok()?;
        let s = e.get("retry").ok()?.state.clone();
        (s.restart_count >= 2 && s.status == Status::Restarting).then_some(s)
    });
    assert!(failing.error.contains("bindsrc"), "{failing:?}");
    fs::create_dir(&src).unwrap();
    let back = eventually("the restart once it can start", || {
        let e = engine.try_lock().ok()?;
        let s = e.get("retry").ok()?.state.clone();
        (s.status == Status::Running).then_some(s)
    });
    assert!(back.error.is_empty() && back.pid != first_pid, "{back:?}");
    engine
        .lock()
        .await
        .remove("retry", true, true)
        .await
        .unwrap();
    let _ = stop_tx.send(());
    sup.await.unwrap();
    {
        let mut e = engine.lock().await;
        assert!(matches!(
            e.on_exit("flaky", None).await.unwrap(),
            AfterExit::Exited(137)
        ));
        for n in ["hog", "flaky"] {
            e.remove(n, true, true).await.unwrap();
        }
    }
    drop(engine);

    // A daemon holding the engine starts a published web server and dies by SIGKILL.
    let mut web = opts("survivor", WEB);
    web.publish = vec!["8081:80".parse().unwrap()];
    let spec = roots.dir.path().join("run.json");
    fs::write(&spec, serde_json::to_vec(&vec![web]).unwrap()).unwrap();
    let cfg = roots.config();
    let bin = Path::new(env!("CARGO_BIN_EXE_berth-engine"));
    let mut daemon = std::process::Command::new(bin)
        .arg("--data-root")
        .arg(&cfg.data_root)
        .arg("--exec-root")
        .arg(&cfg.exec_root)
        .arg("--resolv-conf")
        .arg(&cfg.resolv_conf)
        .arg("--cgroup-parent")
        .arg(&cfg.cgroup_parent)
        .arg("daemon")
        .arg("--run")
        .arg(&spec)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(daemon.stdout.take().unwrap()));
    let id = lines.next().unwrap().unwrap();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    let body = eventually("the daemon's web server", || {
        http_get("127.0.0.1:8081")
            .ok()
            .filter(|b| b.contains("hello-from-"))
    });
    assert!(body.contains("hello-from-"));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    daemon.wait().unwrap();
    // The container runs on without it, reachable through the kernel path from outside.
    let topo = Topo::new();
    let host = topo.host_v4();
    let outside = topo.cli.run(move || http_get(&format!("{host}:8081")));
    assert!(
        outside.unwrap().contains("hello-from-"),
        "DNAT survives the daemon"
    );

    // A new engine adopts it: still running, its loopback port served again, stoppable, and
    // its exit recorded.
    let mut e = Engine::open(roots.config()).await.unwrap();
    let c = e.get(&id).unwrap();
    assert_eq!(c.state.status, Status::Running);
    assert!(Path::new(&format!("/proc/{}", c.state.pid)).exists());
    let body = eventually("the adopted web server on loopback", || {
        http_get("127.0.0.1:8081")
            .ok()
            .filter(|b| b.contains("hello-from-"))
    });
    assert!(body.contains("hello-from-"));
    let code = e.stop(&id, Some(Duration::from_secs(1))).await.unwrap();
    assert!(code == 143 || code == 137, "{code}");
    assert_eq!(e.get(&id).unwrap().state.status, Status::Exited);
    e.remove(&id, true, true).await.unwrap();
    roots.assert_clean();
}

/// Reads framed output from an attachment until `needle` shows up (or EOF, or 10 s).
fn read_until(s: &mut std::os::unix::net::UnixStream, needle: &str) -> String {
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut raw = Vec::new();
    let t0 = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        let text = payload(&raw);
        if (!needle.is_empty() && text.contains(needle)) || t0.elapsed() > Duration::from_secs(10) {
            return text;
        }
        match s.read(&mut buf) {
            Ok(0) => return payload(&raw),
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    }
}

/// The payload of every whole frame in `raw`.
fn payload(mut raw: &[u8]) -> String {
    let mut out = Vec::new();
    while let Ok(Some((_, r))) = berth_api::stream::next_frame(raw) {
        out.extend_from_slice(&raw[r.clone()]);
        raw = &raw[r.end..];
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn netns_containers_tty_stdin_attach_detach_and_exec() {
    use berth_api::stream::demux;
    use engine::runtime::attach::AttachRequest;
    if !enabled("netns_containers_tty_stdin_attach_detach_and_exec") {
        return;
    }
    let roots = Roots::new();
    let mut e = Engine::open(roots.config()).await.unwrap();

    // run -it: a shell on a pty, attached before it starts.
    let mut it = opts("shell", "");
    it.cmd = vec!["sh".into()];
    it.tty = true;
    it.open_stdin = true;
    it.stdin_once = true;
    it.network = Some("none".into());
    e.create(it).unwrap();
    let mut s = e
        .start_attached("shell", AttachRequest::all())
        .await
        .unwrap();
    s.write_all(b"[ -t 0 ] && echo \"tty-$((40+2))\"\n")
        .unwrap();
    let out = read_until(&mut s, "tty-42");
    assert!(out.contains("tty-42"), "stdin is a terminal: {out:?}");
    e.resize("shell", 40, 100).unwrap();
    s.write_all(b"busybox stty size\n").unwrap();
    let out = read_until(&mut s, "40 100");
    assert!(out.contains("40 100"), "resized: {out:?}");

    // A second attachment sees the same terminal, and ctrl-p ctrl-q detaches it alone.
    let mut second = e.attach("shell", AttachRequest::all()).unwrap();
    second.write_all(b"echo \"second-$((1+1))\"\n").unwrap();
    assert!(read_until(&mut second, "second-2").contains("second-2"));
    second.write_all(&[16, 17]).unwrap();
    read_until(&mut second, "");
    let mut rest = [0u8; 1];
    second
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    assert_eq!(
        second.read(&mut rest).unwrap(),
        0,
        "the detached stream ends"
    );
    assert_eq!(e.get("shell").unwrap().state.status, Status::Running);
    s.write_all(b"echo still-$((2+2))\n").unwrap();
    assert!(read_until(&mut s, "still-4").contains("still-4"));

    // exit ends the attachment; the code is the container's; the TTY's output is logged.
    s.write_all(b"exit 3\n").unwrap();
    read_until(&mut s, "");
    let (code, _) = e.wait("shell").await.unwrap();
    assert_eq!(code, 3);
    assert!(output(&e, "shell").contains("tty-42"));
    let stopped = e.attach("shell", AttachRequest::all()).unwrap_err();
    assert!(
        stopped.to_string().contains("cannot attach to a stopped"),
        "{stopped}"
    );

    // run -i without -t: stdin is a pipe closed when the client closes its input.
    let mut cat = opts("cat", "cat; echo done >&2");
    cat.open_stdin = true;
    cat.stdin_once = true;
    cat.network = Some("none".into());
    e.create(cat).unwrap();
    let mut s = e.start_attached("cat", AttachRequest::all()).await.unwrap();
    s.write_all(b"hello\n").unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let (out, err) = demux(&raw).unwrap();
    assert_eq!((&out[..], &err[..]), (&b"hello\n"[..], &b"done\n"[..]));
    assert_eq!(e.wait("cat").await.unwrap().0, 0);

    // exec -t and exec -d in a running container, each under its own shim.
    let mut bg = opts("bg", "exec sleep 1000");
    bg.network = Some("none".into());
    e.create(bg).unwrap();
    e.start("bg").await.unwrap();
    let tty = ExecOptions {
        cmd: vec![
            "sh".into(),
            "-c".into(),
            "[ -t 1 ] && echo exec-tty $TERM; exit 5".into(),
        ],
        tty: true,
        ..Default::default()
    };
    let out = e.exec("bg", tty, None).await.unwrap();
    assert_eq!(out.exit_code, 5);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("exec-tty xterm"),
        "{out:?}"
    );
    let detached = e
        .exec_start(
            "bg",
            &ExecOptions {
                cmd: vec!["sh".into(), "-c".into(), "echo detached > /tmp/f".into()],
                ..Default::default()
            },
            None,
        )
        .unwrap();
    assert!(detached.stream.is_none());
    assert_eq!(detached.wait().await, 0);
    let cat = e
        .exec(
            "bg",
            ExecOptions {
                cmd: vec!["cat".into(), "/tmp/f".into()],
                ..Default::default()
            },
            None,
        )
        .await
        .unwrap();
    assert_eq!(cat.stdout, b"detached\n");

    // network connect/disconnect while running; the connection is kept across a restart.
    e.networks()
        .await
        .create(CreateRequest {
            name: "cnet".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut srv = opts("srv", WEB);
    srv.hostname = Some("srvhost".into());
    e.create(srv).unwrap();
    e.start("srv").await.unwrap();
    let mut cli = opts("cli", "exec sleep 1000");
    cli.network = Some("cnet".into());
    e.create(cli).unwrap();
    e.start("cli").await.unwrap();
    let fetch = |name: &str| ExecOptions {
        // (busybox-static's wget -T crashes; a name that does not resolve fails at once.)
        cmd: vec!["wget".into(), "-qO-".into(), format!("http://{name}/")],
        ..Default::default()
    };
    let before = e.exec("cli", fetch("alpha"), None).await.unwrap();
    assert_ne!(before.exit_code, 0, "not connected yet");
    e.connect(
        "srv",
        "cnet",
        Connection {
            aliases: vec!["alpha".into()],
            ..Connection::default()
        },
    )
    .await
    .unwrap();
    for name in ["alpha", "srv"] {
        let got = e.exec("cli", fetch(name), None).await.unwrap();
        assert_eq!(
            String::from_utf8_lossy(&got.stdout),
            "hello-from-srvhost\n",
            "{name}: {got:?}"
        );
    }
    let again = e
        .connect("srv", "cnet", Connection::default())
        .await
        .unwrap_err();
    assert!(
        again.to_string().contains("already exists in network cnet"),
        "{again}"
    );
    let none = e
        .connect("bg", "cnet", Connection::default())
        .await
        .unwrap_err();
    assert!(none.to_string().contains("none network mode"), "{none}");
    e.stop("srv", Some(Duration::from_secs(1))).await.unwrap();
    e.start("srv").await.unwrap();
    let kept = e.exec("cli", fetch("alpha"), None).await.unwrap();
    assert_eq!(
        kept.exit_code, 0,
        "connected again after a restart: {kept:?}"
    );
    e.disconnect("srv", "cnet").await.unwrap();
    let gone = e.exec("cli", fetch("alpha"), None).await.unwrap();
    assert_ne!(gone.exit_code, 0, "disconnected: {gone:?}");
    let not = e.disconnect("srv", "cnet").await.unwrap_err();
    assert!(
        not.to_string().contains("is not connected to network cnet"),
        "{not}"
    );

    // Off its own network too, and back.
    let srv_id = e.resolve("srv").unwrap();
    let on_bridge = |e: &mut Engine| {
        e.network_state()
            .endpoints
            .values()
            .any(|ep| ep.container == srv_id && ep.network == "bridge")
    };
    e.disconnect("srv", "bridge").await.unwrap();
    assert!(!on_bridge(&mut e));
    e.connect("srv", "bridge", Connection::default())
        .await
        .unwrap();
    assert!(on_bridge(&mut e));

    let ids: Vec<String> = e.containers().map(|c| c.id.clone()).collect();
    for id in ids {
        e.remove(&id, true, true).await.unwrap();
    }
    e.networks().await.remove("cnet").await.unwrap();
    roots.assert_clean();
}
