//! `docker stats`: one [`Sample`] of a container's resource use, read from its cgroup (v1: the
//! `cpuacct`, `cpu`, `memory`, `pids` and `blkio` hierarchies; v2: the unified tree), from
//! `/proc/stat` (the host's CPU time, which the CPU percentage is relative to) and from the
//! container's own `/proc/PID/net/dev`. The parsers are pure functions over the files' text;
//! [`read_sample`] is the only part that reads, and takes its roots as parameters so tests run
//! it on a fake tree. Where the cgroup lives is [`super::cgroup`]'s business.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::time::SystemTime;

use super::cgroup::{Layout, layout};

/// A container's resource use at one moment. Every counter is cumulative since the cgroup was
/// made, so rates (CPU %) come from two samples.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sample {
    /// When it was read; `None` for the zeroed sample of a container that is not running.
    pub read: Option<SystemTime>,
    /// CPU time.
    pub cpu: Cpu,
    /// Memory.
    pub memory: Memory,
    /// Processes.
    pub pids: Pids,
    /// The container's interfaces, loopback left out.
    pub networks: Vec<NetDev>,
    /// Bytes read and written per block device (`io_service_bytes_recursive`).
    pub blkio: Vec<BlkioEntry>,
}

/// CPU time, in nanoseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cpu {
    /// Used by the container's processes in all.
    pub total_ns: u64,
    /// In user mode.
    pub user_ns: u64,
    /// In kernel mode.
    pub system_ns: u64,
    /// Per CPU (v1 `cpuacct.usage_percpu`; empty on v2, which has no such file).
    pub percpu_ns: Vec<u64>,
    /// The host's CPU time at the same moment, over every CPU (Docker's `system_cpu_usage`).
    pub system_total_ns: u64,
    /// CPUs online on the host.
    pub online_cpus: u32,
    /// CFS throttling.
    pub throttling: Throttling,
}

/// CFS bandwidth throttling (`cpu.stat`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Throttling {
    /// Enforcement periods elapsed.
    pub periods: u64,
    /// Periods in which the container was throttled.
    pub throttled_periods: u64,
    /// Time throttled, in nanoseconds.
    pub throttled_ns: u64,
}

/// Memory, in bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Memory {
    /// In use, page cache included (v1 `memory.usage_in_bytes`, v2 `memory.current`).
    pub usage: u64,
    /// The most ever used (v1 only; 0 on v2).
    pub max_usage: u64,
    /// Times the limit was hit (v1 only).
    pub failcnt: u64,
    /// The container's limit, or the host's memory when it has none (or a larger one): what
    /// the container can really use, as Docker reports it.
    pub limit: u64,
    /// `memory.stat` as it is (`cache`, `inactive_file`, `total_inactive_file`, ...): clients
    /// subtract the inactive file cache from `usage` themselves.
    pub stats: BTreeMap<String, u64>,
}

/// Processes (tasks) in the cgroup.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pids {
    /// Now.
    pub current: u64,
    /// `--pids-limit`; `None` when unlimited.
    pub limit: Option<u64>,
}

/// One interface's counters from `/proc/net/dev`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetDev {
    /// `eth0`.
    pub name: String,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Packets received.
    pub rx_packets: u64,
    /// Receive errors.
    pub rx_errors: u64,
    /// Received packets dropped.
    pub rx_dropped: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Send errors.
    pub tx_errors: u64,
    /// Packets dropped on sending.
    pub tx_dropped: u64,
}

/// One line of block I/O accounting: bytes of one operation on one device.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlkioEntry {
    /// Device major number.
    pub major: u64,
    /// Device minor number.
    pub minor: u64,
    /// `Read`, `Write`, ... (v1's spelling) or `read`/`write` (v2's, as Docker gives them).
    pub op: String,
    /// Bytes.
    pub value: u64,
}

/// `key value` lines (`memory.stat`, `cpu.stat`, `cpuacct.stat`): every line whose value is a
/// number; others are skipped.
pub fn parse_key_values(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.trim().split_once(char::is_whitespace)?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

/// `memory.stat` of either cgroup version.
pub fn parse_memory_stat(text: &str) -> BTreeMap<String, u64> {
    parse_key_values(text)
}

/// A single number (`memory.current`, `cpuacct.usage`, `pids.current`); `None` for `max` or
/// anything else that is not one.
pub fn parse_number(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

/// A limit file (`memory.max`, `memory.limit_in_bytes`, `pids.max`): `None` when unlimited
/// (`max`, or v1's page-rounded `i64::MAX`).
pub fn parse_limit(text: &str) -> Option<u64> {
    // v1 writes "unlimited" as i64::MAX rounded down to a page.
    const V1_UNLIMITED: u64 = 0x7FFF_FFFF_FFFF_F000;
    parse_number(text).filter(|n| *n < V1_UNLIMITED)
}

/// What the container can really use: its limit, capped by the host's memory (Docker shows
/// the host's memory for a container without `-m`).
pub fn effective_limit(limit: Option<u64>, host_total: u64) -> u64 {
    match limit {
        Some(l) if host_total == 0 || l < host_total => l,
        _ => host_total,
    }
}

/// `cpuacct.usage_percpu`: nanoseconds per CPU, space-separated.
pub fn parse_percpu(text: &str) -> Vec<u64> {
    text.split_whitespace()
        .filter_map(|n| n.parse().ok())
        .collect()
}

/// `/proc/net/dev`: every interface but loopback, in the file's order.
pub fn parse_net_dev(text: &str) -> Vec<NetDev> {
    text.lines()
        .filter_map(|l| {
            let (name, rest) = l.split_once(':')?;
            let name = name.trim();
            if name == "lo" || name.is_empty() {
                return None;
            }
            let f: Vec<u64> = rest
                .split_whitespace()
                .map(|n| n.parse().ok())
                .collect::<Option<_>>()?;
            // Receive: bytes packets errs drop fifo frame compressed multicast; then transmit:
            // bytes packets errs drop ...
            if f.len() < 12 {
                return None;
            }
            Some(NetDev {
                name: name.to_string(),
                rx_bytes: f[0],
                rx_packets: f[1],
                rx_errors: f[2],
                rx_dropped: f[3],
                tx_bytes: f[8],
                tx_packets: f[9],
                tx_errors: f[10],
                tx_dropped: f[11],
            })
        })
        .collect()
}

/// `/proc/stat`: the host's CPU time in nanoseconds (user, nice, system, idle, iowait, irq and
/// softirq of the `cpu` line, as Docker sums them) and the CPUs online (`cpuN` lines).
/// `ticks_per_second` is `CLK_TCK`.
pub fn parse_proc_stat(text: &str, ticks_per_second: u64) -> Option<(u64, u32)> {
    let mut total = None;
    let mut online = 0u32;
    for l in text.lines() {
        let mut f = l.split_whitespace();
        match f.next() {
            Some("cpu") => {
                let ticks: u64 = f.take(7).filter_map(|n| n.parse::<u64>().ok()).sum();
                total = Some(ticks.saturating_mul(1_000_000_000) / ticks_per_second.max(1));
            }
            Some(c) if c.starts_with("cpu") => online += 1,
            _ => {}
        }
    }
    Some((total?, online))
}

/// `MemTotal` of `/proc/meminfo`, in bytes.
pub fn parse_meminfo_total(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
}

/// v1 `blkio.throttle.io_service_bytes_recursive`: `MAJ:MIN Op bytes` lines (the closing
/// `Total N` line is not a device's and is skipped).
pub fn parse_blkio_v1(text: &str) -> Vec<BlkioEntry> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (major, minor) = parse_dev(f.next()?)?;
            let op = f.next()?.to_string();
            let value = f.next()?.parse().ok()?;
            Some(BlkioEntry {
                major,
                minor,
                op,
                value,
            })
        })
        .collect()
}

/// v2 `io.stat`: `MAJ:MIN rbytes=N wbytes=N rios=N ...` lines, as `read` and `write` entries.
pub fn parse_io_stat(text: &str) -> Vec<BlkioEntry> {
    let mut out = Vec::new();
    for l in text.lines() {
        let mut f = l.split_whitespace();
        let Some((major, minor)) = f.next().and_then(parse_dev) else {
            continue;
        };
        for kv in f {
            let op = match kv.split_once('=') {
                Some(("rbytes", v)) => ("read", v),
                Some(("wbytes", v)) => ("write", v),
                _ => continue,
            };
            if let Ok(value) = op.1.parse() {
                out.push(BlkioEntry {
                    major,
                    minor,
                    op: op.0.to_string(),
                    value,
                });
            }
        }
    }
    out
}

fn parse_dev(s: &str) -> Option<(u64, u64)> {
    let (a, b) = s.split_once(':')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// Where [`read_sample`] reads from.
#[derive(Debug, Clone, Copy)]
pub struct Sources<'a> {
    /// The cgroupfs (`/sys/fs/cgroup`).
    pub cgroup_root: &'a Path,
    /// The container's cgroup under it (`/berth/<id>`).
    pub cgroups_path: &'a str,
    /// procfs (`/proc`).
    pub proc_root: &'a Path,
    /// A process in the container's network namespace, when it has one of its own (host
    /// networking has no counters of its own to show).
    pub net_pid: Option<i32>,
    /// `CLK_TCK`.
    pub ticks_per_second: u64,
}

/// The kernel's clock ticks per second, the unit of `/proc/stat` and `cpuacct.stat`.
pub fn ticks_per_second() -> u64 {
    // SAFETY: sysconf only reads a configuration value.
    unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64
}

/// Reads one sample. A file that is missing or unreadable counts as zero (a container that
/// stops meanwhile yields a partial sample, not an error).
pub fn read_sample(src: &Sources<'_>) -> Sample {
    let rel = src.cgroups_path.trim_start_matches('/');
    let root = src.cgroup_root;
    let cg_layout = layout(root);
    let read = |controller: &str, file: &str| -> Option<String> {
        let path = match cg_layout {
            Layout::V2 => root.join(rel).join(file),
            Layout::V1 => root.join(controller).join(rel).join(file),
        };
        fs::read_to_string(path).ok()
    };
    let num =
        |controller: &str, file: &str| read(controller, file).as_deref().and_then(parse_number);
    let hz = src.ticks_per_second.max(1);
    let (system_total_ns, online_cpus) = fs::read_to_string(src.proc_root.join("stat"))
        .ok()
        .and_then(|t| parse_proc_stat(&t, hz))
        .unwrap_or_default();
    let host_total = fs::read_to_string(src.proc_root.join("meminfo"))
        .ok()
        .and_then(|t| parse_meminfo_total(&t))
        .unwrap_or(0);
    let mut s = Sample {
        read: Some(SystemTime::now()),
        ..Sample::default()
    };
    s.cpu.system_total_ns = system_total_ns;
    s.cpu.online_cpus = online_cpus;
    let cpu_stat = read("cpu", "cpu.stat")
        .map(|t| parse_key_values(&t))
        .unwrap_or_default();
    let memory_limit;
    match cg_layout {
        Layout::V2 => {
            let us = |k: &str| cpu_stat.get(k).copied().unwrap_or(0).saturating_mul(1000);
            s.cpu.total_ns = us("usage_usec");
            s.cpu.user_ns = us("user_usec");
            s.cpu.system_ns = us("system_usec");
            s.cpu.throttling.throttled_ns = us("throttled_usec");
            s.memory.usage = num("memory", "memory.current").unwrap_or(0);
            memory_limit = read("memory", "memory.max")
                .as_deref()
                .and_then(parse_limit);
            s.blkio = read("io", "io.stat")
                .map(|t| parse_io_stat(&t))
                .unwrap_or_default();
        }
        Layout::V1 => {
            s.cpu.total_ns = num("cpuacct", "cpuacct.usage").unwrap_or(0);
            s.cpu.percpu_ns = read("cpuacct", "cpuacct.usage_percpu")
                .map(|t| parse_percpu(&t))
                .unwrap_or_default();
            let ticks = read("cpuacct", "cpuacct.stat")
                .map(|t| parse_key_values(&t))
                .unwrap_or_default();
            let ns = |k: &str| {
                ticks
                    .get(k)
                    .copied()
                    .unwrap_or(0)
                    .saturating_mul(1_000_000_000)
                    / hz
            };
            s.cpu.user_ns = ns("user");
            s.cpu.system_ns = ns("system");
            s.cpu.throttling.throttled_ns = cpu_stat.get("throttled_time").copied().unwrap_or(0);
            s.memory.usage = num("memory", "memory.usage_in_bytes").unwrap_or(0);
            s.memory.max_usage = num("memory", "memory.max_usage_in_bytes").unwrap_or(0);
            s.memory.failcnt = num("memory", "memory.failcnt").unwrap_or(0);
            memory_limit = read("memory", "memory.limit_in_bytes")
                .as_deref()
                .and_then(parse_limit);
            s.blkio = read("blkio", "blkio.throttle.io_service_bytes_recursive")
                .map(|t| parse_blkio_v1(&t))
                .unwrap_or_default();
        }
    }
    s.cpu.throttling.periods = cpu_stat.get("nr_periods").copied().unwrap_or(0);
    s.cpu.throttling.throttled_periods = cpu_stat.get("nr_throttled").copied().unwrap_or(0);
    s.memory.limit = effective_limit(memory_limit, host_total);
    s.memory.stats = read("memory", "memory.stat")
        .map(|t| parse_memory_stat(&t))
        .unwrap_or_default();
    s.pids = Pids {
        current: num("pids", "pids.current").unwrap_or(0),
        limit: read("pids", "pids.max").as_deref().and_then(parse_limit),
    };
    if let Some(pid) = src.net_pid {
        s.networks = fs::read_to_string(src.proc_root.join(pid.to_string()).join("net/dev"))
            .map(|t| parse_net_dev(&t))
            .unwrap_or_default();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const NET_DEV: &str = "Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:    1234      10    0    0    0     0          0         0     1234      10    0    0    0     0       0          0
  eth0:    5338      36    1    2    0     0          0         0      648       8    3    4    0     0       0          0
  eth1: 4641 26 0 0 0 0 0 0 690 9 0 0 0 0 0 0
";

    #[test]
    fn net_dev_skips_loopback() {
        let n = parse_net_dev(NET_DEV);
        assert_eq!(n.len(), 2);
        assert_eq!(
            n[0],
            NetDev {
                name: "eth0".into(),
                rx_bytes: 5338,
                rx_packets: 36,
                rx_errors: 1,
                rx_dropped: 2,
                tx_bytes: 648,
                tx_packets: 8,
                tx_errors: 3,
                tx_dropped: 4,
            }
        );
        assert_eq!((n[1].name.as_str(), n[1].tx_bytes), ("eth1", 690));
        assert!(parse_net_dev("eth0: 1 2 3\ngarbage\n").is_empty());
    }

    #[test]
    fn memory_stat_limits_and_numbers() {
        let m = parse_memory_stat(
            "cache 10436608\nrss 4182016\ninactive_file 16384\ntotal_inactive_file 1977790464\nbad line here\n",
        );
        assert_eq!(m["cache"], 10436608);
        assert_eq!(m["total_inactive_file"], 1977790464);
        assert_eq!(m.len(), 4);
        assert_eq!(parse_limit("max\n"), None);
        assert_eq!(parse_limit("9223372036854771712\n"), None, "v1 unlimited");
        assert_eq!(parse_limit("67108864\n"), Some(64 << 20));
        assert_eq!(parse_number(" 42\n"), Some(42));
        assert_eq!(parse_number("x"), None);
        assert_eq!(effective_limit(Some(64 << 20), 8 << 30), 64 << 20);
        assert_eq!(effective_limit(Some(16 << 30), 8 << 30), 8 << 30);
        assert_eq!(effective_limit(None, 8 << 30), 8 << 30);
        assert_eq!(effective_limit(Some(5), 0), 5);
        assert_eq!(
            parse_meminfo_total("MemTotal:        8040000 kB\nMemFree: 1 kB\n"),
            Some(8040000 * 1024)
        );
        assert_eq!(parse_percpu("100 200 \n"), vec![100, 200]);
    }

    #[test]
    fn proc_stat_in_nanoseconds() {
        let stat = "cpu  100 0 50 800 10 0 40 7 0 0\ncpu0 50 0 25 400 5 0 20 3 0 0\ncpu1 50 0 25 400 5 0 20 4 0 0\nintr 1 2\n";
        // 100+0+50+800+10+0+40 = 1000 ticks (steal left out), at 100 Hz: 10 s.
        assert_eq!(parse_proc_stat(stat, 100), Some((10_000_000_000, 2)));
        assert_eq!(parse_proc_stat("intr 1\n", 100), None);
    }

    #[test]
    fn block_io_both_versions() {
        let v1 = parse_blkio_v1("8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 0\nTotal 12288\n");
        assert_eq!(v1.len(), 3);
        assert_eq!(
            v1[1],
            BlkioEntry {
                major: 8,
                minor: 0,
                op: "Write".into(),
                value: 8192
            }
        );
        let v2 = parse_io_stat("259:0 rbytes=1024 wbytes=2048 rios=1 wios=2 dbytes=0 dios=0\n");
        assert_eq!(v2.len(), 2);
        assert_eq!((v2[0].op.as_str(), v2[0].value), ("read", 1024));
        assert_eq!((v2[1].op.as_str(), v2[1].value), ("write", 2048));
    }

    fn write(p: &Path, text: &str) {
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    fn proc_tree(p: &Path) {
        write(
            &p.join("stat"),
            "cpu  100 0 50 800 10 0 40 0 0 0\ncpu0 1\ncpu1 1\n",
        );
        write(&p.join("meminfo"), "MemTotal: 1048576 kB\n");
        write(&p.join("42/net/dev"), NET_DEV);
    }

    #[test]
    fn reads_a_v1_tree() {
        let root = tempfile::tempdir().unwrap();
        let (cg, proc_root) = (root.path().join("cg"), root.path().join("proc"));
        proc_tree(&proc_root);
        let c = "berth/c1";
        write(
            &cg.join("cpuacct").join(c).join("cpuacct.usage"),
            "5000000000\n",
        );
        write(
            &cg.join("cpuacct").join(c).join("cpuacct.stat"),
            "user 300\nsystem 100\n",
        );
        write(
            &cg.join("cpuacct").join(c).join("cpuacct.usage_percpu"),
            "3000000000 2000000000 \n",
        );
        write(
            &cg.join("cpu").join(c).join("cpu.stat"),
            "nr_periods 10\nnr_throttled 2\nthrottled_time 777\n",
        );
        write(
            &cg.join("memory").join(c).join("memory.usage_in_bytes"),
            "1258291\n",
        );
        write(
            &cg.join("memory").join(c).join("memory.max_usage_in_bytes"),
            "2000000\n",
        );
        write(&cg.join("memory").join(c).join("memory.failcnt"), "0\n");
        write(
            &cg.join("memory").join(c).join("memory.limit_in_bytes"),
            "67108864\n",
        );
        write(
            &cg.join("memory").join(c).join("memory.stat"),
            "cache 4096\ntotal_inactive_file 4096\n",
        );
        write(&cg.join("pids").join(c).join("pids.current"), "2\n");
        write(&cg.join("pids").join(c).join("pids.max"), "max\n");
        write(
            &cg.join("blkio")
                .join(c)
                .join("blkio.throttle.io_service_bytes_recursive"),
            "8:0 Read 10\n8:0 Write 20\nTotal 30\n",
        );
        let s = read_sample(&Sources {
            cgroup_root: &cg,
            cgroups_path: "/berth/c1",
            proc_root: &proc_root,
            net_pid: Some(42),
            ticks_per_second: 100,
        });
        assert!(s.read.is_some());
        assert_eq!(s.cpu.total_ns, 5_000_000_000);
        assert_eq!(
            (s.cpu.user_ns, s.cpu.system_ns),
            (3_000_000_000, 1_000_000_000)
        );
        assert_eq!(s.cpu.percpu_ns.len(), 2);
        assert_eq!(
            (s.cpu.system_total_ns, s.cpu.online_cpus),
            (10_000_000_000, 2)
        );
        assert_eq!(
            s.cpu.throttling,
            Throttling {
                periods: 10,
                throttled_periods: 2,
                throttled_ns: 777
            }
        );
        assert_eq!(
            (s.memory.usage, s.memory.max_usage, s.memory.limit),
            (1258291, 2000000, 64 << 20)
        );
        assert_eq!(s.memory.stats["total_inactive_file"], 4096);
        assert_eq!(
            s.pids,
            Pids {
                current: 2,
                limit: None
            }
        );
        assert_eq!(s.networks.len(), 2);
        assert_eq!(s.blkio.len(), 2);
    }

    #[test]
    fn reads_a_v2_tree_and_caps_the_limit() {
        let root = tempfile::tempdir().unwrap();
        let (cg, proc_root) = (root.path().join("cg"), root.path().join("proc"));
        proc_tree(&proc_root);
        write(&cg.join("cgroup.controllers"), "cpu memory pids io\n");
        let d = cg.join("berth/c2");
        write(
            &d.join("cpu.stat"),
            "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 3\nnr_throttled 1\nthrottled_usec 9\n",
        );
        write(&d.join("memory.current"), "4096\n");
        write(&d.join("memory.max"), "max\n");
        write(&d.join("memory.stat"), "anon 1\ninactive_file 2\n");
        write(&d.join("pids.current"), "1\n");
        write(&d.join("pids.max"), "100\n");
        write(&d.join("io.stat"), "8:0 rbytes=5 wbytes=6 rios=1 wios=1\n");
        let s = read_sample(&Sources {
            cgroup_root: &cg,
            cgroups_path: "/berth/c2",
            proc_root: &proc_root,
            net_pid: None,
            ticks_per_second: 100,
        });
        assert_eq!(
            (s.cpu.total_ns, s.cpu.user_ns, s.cpu.system_ns),
            (1_500_000, 1_000_000, 500_000)
        );
        assert_eq!(
            s.cpu.throttling,
            Throttling {
                periods: 3,
                throttled_periods: 1,
                throttled_ns: 9000
            }
        );
        assert_eq!(s.memory.usage, 4096);
        assert_eq!(s.memory.limit, 1 << 30, "no limit: the host's memory");
        assert_eq!(s.memory.stats["inactive_file"], 2);
        assert_eq!(
            s.pids,
            Pids {
                current: 1,
                limit: Some(100)
            }
        );
        assert!(s.networks.is_empty(), "no namespace of its own");
        assert_eq!(s.blkio.len(), 2);
        // A cgroup that went away reads as zeros, not an error.
        let gone = read_sample(&Sources {
            cgroup_root: &cg,
            cgroups_path: "/berth/none",
            proc_root: &proc_root,
            net_pid: Some(7),
            ticks_per_second: 100,
        });
        assert_eq!(
            (gone.cpu.total_ns, gone.memory.usage, gone.pids.current),
            (0, 0, 0)
        );
    }
}
