//! `berth-proxy serve` and `berth-proxy ctl` as a user runs them, on loopback: publish through the
//! control socket, clear errors with a non-zero exit, and SIGTERM draining an open connection
//! before a clean exit that removes the socket.

mod loopback_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use loopback_support::echo_backend;

const BIN: &str = env!("CARGO_BIN_EXE_berth-proxy");

fn ctl(sock: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--control")
        .arg(sock)
        .arg("ctl")
        .args(args)
        .output()
        .unwrap()
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("berth-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn serve_ctl_and_sigterm_drain() {
    let bport = echo_backend();
    let dir = temp_dir("serve");
    let sock = dir.join("proxy.sock");
    let mut child = Command::new(BIN)
        .arg("--exec-root")
        .arg(&dir)
        .args(["--log-level", "warn", "serve", "--drain-timeout", "10"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !ctl(&sock, &["ping"]).status.success() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "proxy never answered"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    let out = ctl(
        &sock,
        &[
            "publish",
            &format!("127.0.0.1::{bport}"),
            "--container-ip",
            "127.0.0.1",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let host = listed[0]["mappings"][0]["host"]
        .as_str()
        .unwrap()
        .to_string();

    let bad = ctl(
        &sock,
        &["publish", "80:80/sctp", "--container-ip", "127.0.0.1"],
    );
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("\"sctp\""));
    let bad = ctl(&sock, &["unpublish", "999"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("999"));

    let mut c = TcpStream::connect(&host).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(b"one").unwrap();
    let mut buf = [0u8; 3];
    c.read_exact(&mut buf).unwrap();

    // SIGTERM: the listener closes at once, the open connection keeps working until it ends.
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    let start = Instant::now();
    while TcpStream::connect(&host).is_ok() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "still accepting after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    c.write_all(b"two").unwrap();
    c.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"two");
    assert!(
        child.try_wait().unwrap().is_none(),
        "exited before its connection ended"
    );
    drop(c);
    let status = child.wait().unwrap();
    assert!(status.success(), "exit status {status}");
    assert!(!sock.exists(), "control socket left behind");
    std::fs::remove_dir_all(dir).unwrap();
}
