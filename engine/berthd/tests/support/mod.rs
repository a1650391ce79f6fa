//! What berthd's privileged tests share: a berthd of their own (data root with the busybox
//! image, socket, cgroup parent) and Debian's docker-registry on a free loopback port.

#![allow(dead_code)]

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use engine::image::layer::fixtures::busybox_rootfs;
use engine::image::store::ImageStore;

/// The busybox image every berthd here starts with.
pub const IMAGE: &str = "berth-test/busybox";
/// The docker CLI of this machine.
pub const DOCKER: &str = "/usr/local/bin/docker";

/// A berthd on its own roots; killed (by PID) when dropped.
pub struct Berthd {
    child: Child,
    /// Its roots, the socket and scratch files.
    pub dir: tempfile::TempDir,
    /// The API socket.
    pub sock: PathBuf,
    cgroup_parent: String,
    /// The client `docker()` runs: the docker CLI, or berth's (`with_client`).
    client: PathBuf,
    /// Arguments after the usual ones.
    extra: Vec<String>,
    /// Environment of the next start (failpoints).
    env: Vec<(String, String)>,
}

/// Starts berthd on the roots under `dir` and waits for its socket.
fn spawn(
    dir: &Path,
    sock: &Path,
    cgroup_parent: &str,
    extra: &[String],
    env: &[(String, String)],
) -> Child {
    let bin = berthd_bin();
    let bin = bin.as_path();
    let shim = bin.parent().unwrap().join("berth-shim");
    assert!(
        shim.exists(),
        "{} is built with the workspace",
        shim.display()
    );
    let child = Command::new(bin)
        .arg("--data-root")
        .arg(dir.join("data"))
        .arg("--exec-root")
        .arg(dir.join("run"))
        .arg("-H")
        .arg(format!("unix://{}", sock.display()))
        .arg("--shim")
        .arg(&shim)
        .arg("--resolv-conf")
        .arg(dir.join("resolv.conf"))
        .arg("--cgroup-parent")
        .arg(cgroup_parent)
        .args(extra)
        // berthd reads no credentials file (the clients send theirs per request); were it to
        // read one, it would find an empty directory, not the machine's.
        .env("DOCKER_CONFIG", dir.join("berthd-docker-config"))
        .envs(env.iter().map(|(k, v)| (k, v)))
        .spawn()
        .unwrap();
    wait_for_socket(sock);
    child
}

/// Waits (at most 20 s) for berthd's API socket to appear.
pub fn wait_for_socket(sock: &Path) {
    let t0 = Instant::now();
    while !sock.exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "berthd did not listen"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// berthd, built with the workspace next to the test binaries (`target/debug/berthd`), so
/// the tests of other crates (the berth CLI's) find it too.
pub fn berthd_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().unwrap().parent().unwrap().join("berthd");
    assert!(
        bin.exists(),
        "{} is built with the workspace",
        bin.display()
    );
    bin
}

impl Berthd {
    /// Starts one and waits for its socket.
    pub fn start() -> Berthd {
        Berthd::start_with_args(&[])
    }

    /// Starts one with `extra` after its usual arguments and waits for its socket.
    pub fn start_with_args(extra: &[&str]) -> Berthd {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(&dir.path().join("data/image")).unwrap();
        store
            .import(&busybox_rootfs().unwrap()[..], Some(IMAGE))
            .unwrap();
        drop(store);
        std::fs::write(dir.path().join("resolv.conf"), "nameserver 127.0.0.1\n").unwrap();
        let sock = dir.path().join("berth.sock");
        // Unique to this instance: PIDs repeat across runs of the test namespace, and a run
        // that was killed (its drop never ran) must not leave cgroups in a later run's count.
        let cgroup_parent = format!(
            "berthd-test-{}-{}",
            std::process::id(),
            dir.path()
                .file_name()
                .unwrap()
                .to_string_lossy()
                .trim_start_matches('.')
        );
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let child = spawn(dir.path(), &sock, &cgroup_parent, &extra, &[]);
        Berthd {
            child,
            dir,
            sock,
            cgroup_parent,
            client: PathBuf::from(DOCKER),
            extra,
            env: Vec::new(),
        }
    }

    /// The cgroup parent its containers run under.
    pub fn cgroup_parent(&self) -> &str {
        &self.cgroup_parent
    }

    /// Sets the environment berthd gets at its next [`Berthd::restart`] (e.g.
    /// `BERTH_FAILPOINTS`); an empty list clears it.
    pub fn set_env(&mut self, env: &[(&str, &str)]) {
        self.env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    }

    /// Waits (at most `secs`) for berthd to end by itself (a failpoint killed it); its
    /// status, `None` when it still runs.
    pub fn wait_exit(&mut self, secs: u64) -> Option<std::process::ExitStatus> {
        let t0 = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return Some(st);
            }
            if t0.elapsed() > Duration::from_secs(secs) {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// berthd's PID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills berthd with SIGKILL (its containers keep running) and starts a new one on the
    /// same roots, waiting for its socket.
    pub fn restart(&mut self) {
        self.kill();
        self.start_again();
    }

    /// Kills berthd with SIGKILL; its containers (and its port proxy) keep running.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts berthd again on the same roots after [`Berthd::kill`], waiting for its socket.
    pub fn start_again(&mut self) {
        let _ = std::fs::remove_file(&self.sock);
        self.child = spawn(
            self.dir.path(),
            &self.sock,
            &self.cgroup_parent,
            &self.extra,
            &self.env,
        );
    }

    /// `docker()` and `ok()` run `client` (berth's CLI) instead of the docker CLI.
    pub fn with_client(mut self, client: &Path) -> Berthd {
        self.client = client.to_path_buf();
        self
    }

    /// Runs the client (the docker CLI unless `with_client`) against it.
    pub fn docker(&self, args: &[&str]) -> Output {
        Command::new(&self.client)
            .env("DOCKER_HOST", format!("unix://{}", self.sock.display()))
            .env("BERTH_HOST", format!("unix://{}", self.sock.display()))
            .env("DOCKER_CONFIG", self.dir.path().join("docker-config"))
            .args(args)
            .output()
            .unwrap()
    }

    /// Runs docker, asserting success; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            out.status.success(),
            "{} {args:?}: {}{}",
            self.client.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Berthd {
    fn drop(&mut self) {
        // Containers outlive berthd by design: a test's go with it, or their veths, addresses
        // and rules would stay in the namespace the next test runs in.
        if matches!(self.child.try_wait(), Ok(None)) {
            let ids = self.docker(&["ps", "-aq"]);
            let ids: Vec<String> = String::from_utf8_lossy(&ids.stdout)
                .split_whitespace()
                .map(String::from)
                .collect();
            if !ids.is_empty() {
                let mut args = vec!["rm", "-f"];
                args.extend(ids.iter().map(String::as_str));
                let _ = self.docker(&args);
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The proxy outlives berthd by design; the test's goes with it.
        engine::container::stop_proxy(&self.dir.path().join("run/proxy.pid"));
        if let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") {
            for h in rd.flatten() {
                let _ = std::fs::remove_dir(h.path().join(&self.cgroup_parent));
            }
        }
    }
}

/// Debian's docker-registry on a free loopback port; killed (by PID) when dropped.
pub struct Registry {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Registry {
    /// Starts one and waits until it listens.
    pub fn start() -> Registry {
        Registry::start_with(None)
    }

    /// Starts one that asks for `user` and `password` (htpasswd, from apache2-utils).
    pub fn start_with(htpasswd: Option<(&str, &str)>) -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cfg = dir.path().join("config.yml");
        let mut config = format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        );
        if let Some((user, pass)) = htpasswd {
            let out = Command::new("htpasswd")
                .args(["-Bbn", user, pass])
                .output()
                .expect("htpasswd (Debian package apache2-utils)");
            assert!(out.status.success());
            std::fs::write(dir.path().join("htpasswd"), out.stdout).unwrap();
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: berth-test\n    path: {}\n",
                dir.path().join("htpasswd").display()
            ));
        }
        std::fs::write(&cfg, config).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&cfg)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("docker-registry (Debian package docker-registry) must be installed");
        let t0 = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "docker-registry did not listen"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Registry {
            child,
            port,
            _dir: dir,
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Debian's dockerd on its own roots (no bridge, no iptables: the peer of berthd's checks
/// inside the test's namespace), with the busybox image imported as [`IMAGE`]; stopped (by
/// PID) when dropped.
pub struct Dockerd {
    child: Child,
    /// Its roots and socket.
    pub dir: tempfile::TempDir,
    /// `unix://...` for DOCKER_HOST.
    pub host: String,
    cgroup_parent: String,
}

impl Dockerd {
    /// Starts one and waits until it answers; `None` when dockerd is not installed.
    pub fn start() -> Option<Dockerd> {
        Dockerd::start_with(&["--bridge=none"])
    }

    /// [`Dockerd::start`] with its default bridge on `bip` (e.g. `10.199.0.1/24`), for what
    /// only the default bridge has (legacy links). It must not overlap berthd's.
    pub fn start_with_bridge(bip: &str) -> Option<Dockerd> {
        Dockerd::start_with(&["--bip", bip])
    }

    /// [`Dockerd::start`] with `extra` flags (e.g. `--add-runtime`).
    pub fn start_with_args(extra: &[&str]) -> Option<Dockerd> {
        let mut args = vec!["--bridge=none"];
        args.extend_from_slice(extra);
        Dockerd::start_with(&args)
    }

    fn start_with(network: &[&str]) -> Option<Dockerd> {
        let bin = ["/usr/sbin/dockerd", "/usr/bin/dockerd"]
            .into_iter()
            .find(|p| Path::new(p).exists())?;
        let dir = tempfile::tempdir().unwrap();
        let host = format!("unix://{}", dir.path().join("docker.sock").display());
        let cgroup_parent = format!("dockerd-test-{}", std::process::id());
        let child = Command::new(bin)
            .args(["--host", &host, "--iptables=false", "--ip6tables=false"])
            .args(network)
            .arg("--data-root")
            .arg(dir.path().join("data"))
            .arg("--exec-root")
            .arg(dir.path().join("exec"))
            .arg("--pidfile")
            .arg(dir.path().join("dockerd.pid"))
            .args(["--cgroup-parent", &cgroup_parent])
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("dockerd.log")).unwrap())
            .spawn()
            .unwrap();
        let d = Dockerd {
            child,
            dir,
            host,
            cgroup_parent,
        };
        let t0 = Instant::now();
        while !d.docker(&["version"]).status.success() {
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "dockerd did not answer: {}",
                std::fs::read_to_string(d.dir.path().join("dockerd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let tar = busybox_rootfs().unwrap();
        let mut import = Command::new(DOCKER)
            .env("DOCKER_HOST", &d.host)
            .args(["import", "-", IMAGE])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        use std::io::Write;
        import.stdin.take().unwrap().write_all(&tar).unwrap();
        assert!(
            import.wait().unwrap().success(),
            "docker import into dockerd"
        );
        Some(d)
    }

    /// Runs the docker CLI against it.
    pub fn docker(&self, args: &[&str]) -> Output {
        Command::new(DOCKER)
            .env("DOCKER_HOST", &self.host)
            .env("DOCKER_CONFIG", self.dir.path().join("docker-config"))
            .args(args)
            .output()
            .unwrap()
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        let ids = self.docker(&["ps", "-aq"]);
        for id in String::from_utf8_lossy(&ids.stdout).split_whitespace() {
            let _ = self.docker(&["rm", "-f", id]);
        }
        // SIGTERM, so it unmounts and leaves its roots removable.
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
        if let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") {
            for h in rd.flatten() {
                let _ = std::fs::remove_dir(h.path().join(&self.cgroup_parent));
            }
        }
    }
}
