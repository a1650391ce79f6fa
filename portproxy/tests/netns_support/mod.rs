//! Namespace topology for privileged tests: the test process's own network namespace plays the
//! host (scripts/netns-test.sh makes it a throwaway one), and each test adds a "container" and an
//! "outside client" namespace wired to it with veth pairs, with names and subnets unique per test.
//! Everything is removed on drop.

use std::fs::File;
use std::os::fd::AsFd;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use nix::sched::{CloneFlags, setns};

/// Whether privileged tests may run; prints why not when they may not.
pub fn enabled(test: &str) -> bool {
    if std::env::var_os("BERTH_NETNS_TEST").is_some() {
        return true;
    }
    eprintln!("skipping {test}: needs root in a throwaway namespace; run scripts/netns-test.sh");
    false
}

/// Runs a command, panicking with its output when it fails.
pub fn sh(cmd: &str) {
    let out = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
    assert!(
        out.status.success(),
        "`{cmd}` failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A network namespace created for one test.
#[derive(Debug)]
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(name: String) -> Netns {
        sh(&format!("ip netns add {name}"));
        sh(&format!("ip -n {name} link set lo up"));
        Netns { name }
    }

    /// Runs `f` on a thread that has entered this namespace: sockets it opens belong here and keep
    /// belonging here when used from any other thread.
    pub fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::spawn(move || {
            let ns = File::open(&path).unwrap();
            setns(ns.as_fd(), CloneFlags::CLONE_NEWNET).unwrap();
            f()
        })
        .join()
        .unwrap()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// host <-veth-> ctr (10.N.1.0/24, fd00:N:1::/64) and host <-veth-> cli (10.N.2.0/24,
/// fd00:N:2::/64); the host side is .1 / ::1 and the namespace side .2 / ::2.
#[derive(Debug)]
pub struct Topo {
    pub id: u32,
    pub ctr: Netns,
    pub cli: Netns,
}

static NEXT: AtomicU32 = AtomicU32::new(1);

impl Topo {
    pub fn new() -> Topo {
        let id = (std::process::id() % 200) + NEXT.fetch_add(1, Ordering::Relaxed);
        let id = id % 250 + 1;
        let ctr = Netns::new(format!("bp-ctr-{id}"));
        let cli = Netns::new(format!("bp-cli-{id}"));
        for (ns, net, host_if) in [(&ctr, 1, format!("bpc{id}")), (&cli, 2, format!("bpk{id}"))] {
            let n = &ns.name;
            sh(&format!(
                "ip link add {host_if} type veth peer name eth0 netns {n}"
            ));
            sh(&format!("ip addr add 10.{id}.{net}.1/24 dev {host_if}"));
            sh(&format!(
                "ip -6 addr add fd00:{id}:{net}::1/64 dev {host_if} nodad"
            ));
            sh(&format!("ip link set {host_if} up"));
            sh(&format!("ip -n {n} addr add 10.{id}.{net}.2/24 dev eth0"));
            sh(&format!(
                "ip -n {n} -6 addr add fd00:{id}:{net}::2/64 dev eth0 nodad"
            ));
            sh(&format!("ip -n {n} link set eth0 up"));
            sh(&format!("ip -n {n} route add default via 10.{id}.{net}.1"));
            sh(&format!(
                "ip -n {n} -6 route add default via fd00:{id}:{net}::1"
            ));
        }
        Topo { id, ctr, cli }
    }

    pub fn ctr_v4(&self) -> String {
        format!("10.{}.1.2", self.id)
    }
    pub fn ctr_v6(&self) -> String {
        format!("fd00:{}:1::2", self.id)
    }
    /// The host address the outside client reaches.
    pub fn host_v4(&self) -> String {
        format!("10.{}.2.1", self.id)
    }
    pub fn host_v6(&self) -> String {
        format!("fd00:{}:2::1", self.id)
    }
    pub fn cli_v4(&self) -> String {
        format!("10.{}.2.2", self.id)
    }
}

impl Drop for Topo {
    fn drop(&mut self) {
        // Deleting the namespaces deletes the veth pairs with them.
        let _ = Command::new("ip")
            .args(["link", "del", &format!("bpc{}", self.id)])
            .status();
        let _ = Command::new("ip")
            .args(["link", "del", &format!("bpk{}", self.id)])
            .status();
    }
}
