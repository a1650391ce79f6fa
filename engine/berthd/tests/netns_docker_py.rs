//! docker-py (PyPI `docker`) drives berthd as a second independent client: containers.run with
//! ports and volumes, logs, exec_run, networks, volumes, images push and pull. The Python side
//! is tests/docker_py/drive.py; the venv with docker-py comes from scripts/test.sh
//! (BERTH_PY_VENV, default /var/cache/berth/venv). Privileged: run through scripts/netns-test.sh.

#[path = "../../../portproxy/tests/netns_support/mod.rs"]
#[allow(dead_code)]
mod netns_support;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use engine::image::layer::fixtures::busybox_rootfs;
use engine::image::store::ImageStore;

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn netns_docker_py_drives_berthd() {
    if !netns_support::enabled("netns_docker_py_drives_berthd") {
        return;
    }
    let venv = PathBuf::from(
        std::env::var("BERTH_PY_VENV").unwrap_or_else(|_| "/var/cache/berth/venv".into()),
    );
    let python = venv.join("bin/python");
    assert!(
        python.exists(),
        "{} is missing: scripts/test.sh makes the venv with docker-py",
        python.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let mut store = ImageStore::open(&dir.path().join("data/image")).unwrap();
    store
        .import(&busybox_rootfs().unwrap()[..], Some("berth-test/busybox"))
        .unwrap();
    drop(store);
    std::fs::write(dir.path().join("resolv.conf"), "nameserver 127.0.0.1\n").unwrap();

    let port = free_port();
    let cfg = dir.path().join("registry.yml");
    std::fs::write(
        &cfg,
        format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("registry").display()
        ),
    )
    .unwrap();
    let _registry = Kill(
        Command::new("docker-registry")
            .arg("serve")
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry is installed"),
    );
    let bin = Path::new(env!("CARGO_BIN_EXE_berthd"));
    let sock = dir.path().join("berth.sock");
    let cgroup_parent = format!("berthd-py-{}", std::process::id());
    let _berthd = Kill(
        Command::new(bin)
            .arg("--data-root")
            .arg(dir.path().join("data"))
            .arg("--exec-root")
            .arg(dir.path().join("run"))
            .arg("-H")
            .arg(format!("unix://{}", sock.display()))
            .arg("--shim")
            .arg(bin.parent().unwrap().join("berth-shim"))
            .arg("--resolv-conf")
            .arg(dir.path().join("resolv.conf"))
            .arg("--cgroup-parent")
            .arg(&cgroup_parent)
            .spawn()
            .unwrap(),
    );
    let t0 = Instant::now();
    while !sock.exists() || TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "berthd or the registry did not listen"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = Command::new(&python)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/docker_py/drive.py"))
        .env("DOCKER_HOST", format!("unix://{}", sock.display()))
        .env("IMAGE", "berth-test/busybox")
        .env("REGISTRY", format!("127.0.0.1:{port}"))
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "docker-py: {text}");
    assert!(text.contains("docker-py: all checks passed"), "{text}");
    drop(_berthd);
    for h in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let _ = std::fs::remove_dir(h.path().join(&cgroup_parent));
    }
}
