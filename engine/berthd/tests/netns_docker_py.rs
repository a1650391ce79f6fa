//! docker-py (PyPI `docker`) drives berthd as a second independent client: containers.run with
//! ports and volumes, logs, exec_run, networks, volumes, health checks, images push and pull.
//! The Python side is tests/docker_py/drive.py; the venv with docker-py comes from
//! scripts/test.sh (BERTH_PY_VENV, default /var/cache/berth/venv). Privileged: run through
//! scripts/netns-test.sh.

#[path = "../../../portproxy/tests/netns_support/mod.rs"]
#[allow(dead_code)]
mod netns_support;
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::{Berthd, IMAGE, Registry};

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
    let registry = Registry::start();
    let d = Berthd::start();
    let out = Command::new(&python)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/docker_py/drive.py"))
        .env("DOCKER_HOST", format!("unix://{}", d.sock.display()))
        .env("IMAGE", IMAGE)
        .env("REGISTRY", format!("127.0.0.1:{}", registry.port))
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "docker-py: {text}");
    assert!(text.contains("docker-py: all checks passed"), "{text}");
}
