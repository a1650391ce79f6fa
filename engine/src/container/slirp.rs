//! `--network slirp`: a container's namespace served by a `berth-slirp` process of its own
//! (netcore's userspace stack) instead of a bridge endpoint. The process is started before the
//! container, in its own process group so it outlives berthd as the shim does, and is ended by
//! its PID (checked against its start time) when the container's network is torn down.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use netcore::usernet::Options;
use portproxy::{Mapping, PortSpec};

use super::{ContainerError, io_err};

/// How long berth-slirp may take to make and configure its TAP device.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// What starting a container's stack takes.
#[derive(Debug, Clone)]
pub(super) struct SlirpPlan {
    /// The container's name, for messages.
    pub name: String,
    /// Its namespace file.
    pub ns_path: PathBuf,
    /// Its options.
    pub options: Options,
    /// Its `-p` specs.
    pub ports: Vec<PortSpec>,
    /// The berth-slirp binary.
    pub bin: PathBuf,
    /// The host's resolv.conf, whose first server the resolver address forwards to.
    pub resolv_conf: PathBuf,
}

/// The stack's process, recorded beside the namespace file.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Proc {
    pid: i32,
    /// Its start time, so a reused PID is never signalled.
    start: u64,
}

/// Where the stack's files for the namespace at `ns_path` (`EXEC_ROOT/netns/ID`) are:
/// `EXEC_ROOT/slirp/ID.EXT`, outside the namespace directory, whose every entry is a namespace.
fn file(ns_path: &Path, ext: &str) -> PathBuf {
    let root = ns_path
        .parent()
        .and_then(Path::parent)
        .unwrap_or(Path::new("/"));
    let id = ns_path.file_name().unwrap_or_default().to_string_lossy();
    root.join("slirp").join(format!("{id}.{ext}"))
}

/// The file that names the stack's process.
fn pid_file(ns_path: &Path) -> PathBuf {
    file(ns_path, "json")
}

fn log_file(ns_path: &Path) -> PathBuf {
    file(ns_path, "log")
}

/// Where the stack writes its counters on SIGUSR1.
pub(super) fn status_file(ns_path: &Path) -> PathBuf {
    file(ns_path, "status")
}

/// A process's start time (field 22 of /proc/PID/stat), which a reused PID does not share.
fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    after.split(' ').nth(19)?.parse().ok()
}

/// Parses a `published PROTO HOST_ADDRESS CONTAINER_PORT` line of berth-slirp.
fn published_line(line: &str, container: std::net::IpAddr) -> Option<Mapping> {
    let mut w = line.strip_prefix("published ")?.split(' ');
    let proto = match w.next()? {
        "tcp" => portproxy::Protocol::Tcp,
        "udp" => portproxy::Protocol::Udp,
        _ => return None,
    };
    let host = w.next()?.parse().ok()?;
    let port: u16 = w.next()?.parse().ok()?;
    Some(Mapping {
        proto,
        host,
        container: std::net::SocketAddr::new(container, port),
    })
}

/// Starts the stack for a namespace that exists, waits until it serves the container, and
/// returns what it publishes. Blocking: run off the runtime's threads. On error nothing is left
/// running.
pub(super) fn start(plan: &SlirpPlan) -> Result<Vec<Mapping>, ContainerError> {
    let log_path = log_file(&plan.ns_path);
    if let Some(dir) = log_path.parent() {
        std::fs::create_dir_all(dir).map_err(io_err(format!("creating {}", dir.display())))?;
    }
    let log = std::fs::File::create(&log_path)
        .map_err(io_err(format!("creating {}", log_path.display())))?;
    let mut cmd = Command::new(&plan.bin);
    cmd.arg("--netns")
        .arg(&plan.ns_path)
        .arg("--options")
        .arg(
            plan.options
                .to_string()
                .strip_prefix("slirp")
                .unwrap_or("")
                .trim_start_matches(':'),
        )
        .arg("--resolv-conf")
        .arg(&plan.resolv_conf)
        .arg("--status")
        .arg(status_file(&plan.ns_path));
    for p in &plan.ports {
        cmd.arg("--publish").arg(p.to_string());
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .process_group(0);
    let mut child = cmd.spawn().map_err(|e| ContainerError::Io {
        what: format!("container {}: starting {}", plan.name, plan.bin.display()),
        source: e,
    })?;
    // Recorded before anything else can fail or berthd can die: a crash from here on leaves a
    // stack the next start or removal finds by its PID file and ends.
    let pid = child.id() as i32;
    let saved = start_time(pid)
        .ok_or_else(|| std::io::Error::other("its /proc/PID/stat is unreadable"))
        .and_then(|start| {
            berth_common::persist::save(&pid_file(&plan.ns_path), &Proc { pid, start })
                .map_err(std::io::Error::other)
        });
    if let Err(e) = saved {
        let _ = child.kill();
        let _ = child.wait();
        return Err(ContainerError::Invalid(format!(
            "container {}: recording its network stack: {e}",
            plan.name
        )));
    }
    let stdout = child.stdout.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    // Lines are read on a thread so the wait has a deadline; berth-slirp prints nothing after
    // `ready`, and the pipe is closed with this end.
    std::thread::spawn(move || {
        let mut lines = Vec::new();
        // One line per published socket: room for every port of both families.
        let mut r = BufReader::new(stdout.take(16 << 20));
        let mut line = String::new();
        while r.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
            let l = line.trim_end().to_string();
            line.clear();
            if l == "ready" {
                let _ = tx.send(Ok(lines));
                return;
            }
            lines.push(l);
        }
        let _ = tx.send(Err(()));
    });
    let container = plan.options.layout().container.into();
    let outcome = rx.recv_timeout(READY_TIMEOUT);
    let lines = match outcome {
        Ok(Ok(lines)) => lines,
        _ => {
            let _ = child.kill();
            let _ = child.wait();
            let _ = std::fs::remove_file(pid_file(&plan.ns_path));
            let why = std::fs::read_to_string(&log_path).unwrap_or_default();
            let why = why
                .lines()
                .last()
                .unwrap_or("no ready line in time")
                .to_string();
            return Err(ContainerError::Invalid(format!(
                "container {}: the userspace network stack did not start: {why}",
                plan.name
            )));
        }
    };
    // Reaped by a waiting thread while this berthd runs, by init after.
    std::thread::spawn(move || child.wait());
    Ok(lines
        .iter()
        .filter_map(|l| published_line(l, container))
        .collect())
}

/// Ends the stack serving the namespace at `ns_path`, if one runs, and waits (by pidfd, 2 s,
/// then SIGKILL) until it has exited, so its published ports are free for the next start.
/// Idempotent.
pub(super) async fn stop(ns_path: &Path) {
    let path = pid_file(ns_path);
    if let Ok(Some(p)) = berth_common::persist::load::<Proc>(&path) {
        // The watch pins the process before its identity is checked.
        let watch = super::exit::ExitWatch::new(p.pid).ok().flatten();
        if let Some(watch) = watch.filter(|_| p.pid > 1 && start_time(p.pid) == Some(p.start)) {
            let pid = nix::unistd::Pid::from_raw(p.pid);
            for signal in [
                nix::sys::signal::Signal::SIGTERM,
                nix::sys::signal::Signal::SIGKILL,
            ] {
                if watch.exited() || nix::sys::signal::kill(pid, signal).is_err() {
                    break;
                }
                if tokio::time::timeout(Duration::from_secs(2), watch.wait())
                    .await
                    .is_ok()
                {
                    break;
                }
            }
        }
    }
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_file(log_file(ns_path));
    let _ = std::fs::remove_file(status_file(ns_path));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_lines_read_back() {
        let c: std::net::IpAddr = "10.0.2.100".parse().unwrap();
        let m = published_line("published udp [::]:4000 53", c).unwrap();
        assert_eq!(m.to_string(), "[::]:4000->10.0.2.100:53/udp");
        assert!(published_line("published sctp 0.0.0.0:1 1", c).is_none());
        assert!(published_line("ready", c).is_none());
        assert!(start_time(std::process::id() as i32).is_some());
    }
}
