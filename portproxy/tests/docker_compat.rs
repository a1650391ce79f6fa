//! `berth-proxy` started exactly as a Docker daemon starts docker-proxy: its flags, a status pipe
//! as fd 3 and, with `-use-listen-fd`, the bound socket as fd 4. Loopback only, no privileges.

mod loopback_support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::fcntl::OFlag;
use nix::sys::signal::{Signal, kill};
use nix::unistd::{Pid, pipe2};

use loopback_support::echo_backend;

/// Starts berth-proxy with `args`, a status pipe on fd 3 and optionally `listen` on fd 4;
/// returns the child and the status line it wrote.
fn start(args: &[&str], listen: Option<OwnedFd>) -> (Child, String) {
    // CLOEXEC, so children of tests running in parallel do not hold the write end open.
    let (status_r, status_w) = pipe2(OFlag::O_CLOEXEC).unwrap();
    let w = status_w.as_raw_fd();
    let l = listen.as_ref().map(|f| f.as_raw_fd());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_berth-proxy"));
    cmd.args(args).stdin(Stdio::null());
    // SAFETY: only async-signal-safe fcntl and dup2 calls between fork and exec; the source
    // descriptors stay open in the parent until spawn returns.
    unsafe {
        cmd.pre_exec(move || {
            // Move both sources above the targets first: either may itself be fd 3 or 4 (tests run
            // in parallel, so the numbers vary), and a dup2 onto it would clobber it.
            let mut moved = [None, None];
            for (slot, from) in moved.iter_mut().zip([Some(w), l]) {
                if let Some(from) = from {
                    let high = nix::libc::fcntl(from, nix::libc::F_DUPFD_CLOEXEC, 10);
                    if high < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    *slot = Some(high);
                }
            }
            for (from, to) in moved.into_iter().zip([3, 4]) {
                if let Some(from) = from
                    && nix::libc::dup2(from, to) < 0
                {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let child = cmd.spawn().unwrap();
    drop(status_w);
    drop(listen);
    let mut status = String::new();
    std::fs::File::from(status_r)
        .read_to_string(&mut status)
        .unwrap();
    (child, status)
}

fn stop(mut child: Child) {
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "berth-proxy exited with {status} on SIGTERM"
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn assert_echo(port: u16) {
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(b"via docker-proxy flags").unwrap();
    let mut buf = [0u8; 22];
    c.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"via docker-proxy flags");
}

#[test]
fn docker_20_style_binds_itself_and_reports_ok() {
    let backend = echo_backend().to_string();
    let host = free_port().to_string();
    let (child, status) = start(
        &[
            "-proto",
            "tcp",
            "-host-ip",
            "127.0.0.1",
            "-host-port",
            &host,
            "-container-ip",
            "127.0.0.1",
            "-container-port",
            &backend,
        ],
        None,
    );
    assert_eq!(status, "0\n");
    assert_echo(host.parse().unwrap());
    stop(child);
}

#[test]
fn docker_28_style_uses_the_passed_listener() {
    let backend = echo_backend().to_string();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let host = l.local_addr().unwrap().port();
    let (child, status) = start(
        &[
            "-proto=tcp",
            "-host-ip=127.0.0.1",
            &format!("-host-port={host}"),
            "-container-ip=127.0.0.1",
            &format!("-container-port={backend}"),
            "-use-listen-fd",
        ],
        Some(OwnedFd::from(l)),
    );
    assert_eq!(status, "0\n");
    assert_echo(host);
    stop(child);
}

#[test]
fn udp_with_passed_socket() {
    let backend = UdpSocket::bind("127.0.0.1:0").unwrap();
    let bport = backend.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((n, from)) = backend.recv_from(&mut buf) {
            let _ = backend.send_to(&buf[..n], from);
        }
    });
    let front = UdpSocket::bind("127.0.0.1:0").unwrap();
    let fport = front.local_addr().unwrap().port();
    let (child, status) = start(
        &[
            "-proto",
            "udp",
            "-host-ip",
            "127.0.0.1",
            "-host-port",
            &fport.to_string(),
            "-container-ip",
            "127.0.0.1",
            "-container-port",
            &bport.to_string(),
            "-use-listen-fd",
        ],
        Some(OwnedFd::from(front)),
    );
    assert_eq!(status, "0\n");
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.connect(("127.0.0.1", fport)).unwrap();
    c.send(b"dgram").unwrap();
    let mut buf = [0u8; 16];
    let n = c.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"dgram");
    stop(child);
}

#[test]
fn failures_are_reported_on_fd_3_with_the_value() {
    let squat = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = squat.local_addr().unwrap().port().to_string();
    let (mut child, status) = start(
        &[
            "-proto",
            "tcp",
            "-host-ip",
            "127.0.0.1",
            "-host-port",
            &port,
            "-container-ip",
            "127.0.0.1",
            "-container-port",
            "80",
        ],
        None,
    );
    assert!(status.starts_with("1\n"), "{status:?}");
    assert!(status.contains(&format!("127.0.0.1:{port}")), "{status:?}");
    assert!(status.contains("already in use"), "{status:?}");
    assert!(!child.wait().unwrap().success());

    let (mut child, status) = start(
        &[
            "-proto",
            "sctp",
            "-host-ip",
            "127.0.0.1",
            "-host-port",
            "1",
            "-container-ip",
            "127.0.0.1",
            "-container-port",
            "1",
        ],
        None,
    );
    assert!(
        status.starts_with("1\n") && status.contains("\"sctp\""),
        "{status:?}"
    );
    assert!(!child.wait().unwrap().success());
}
