//! A container's CPU, memory, PID and block I/O limits as Docker reads, checks and applies them:
//! at create, and again on `docker update` (which changes them on a running container through
//! the runtime). Pure: [`check`] names what is wrong or what this host cannot apply,
//! [`oci`] is the spec's `linux.resources` (without devices), [`Update::apply`] merges an update.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::ContainerError;
use super::model::CreateOptions;

/// CFS period `--cpus` uses.
pub const CPU_PERIOD: i64 = 100_000;
/// The smallest memory limit or reservation (Docker's).
pub const MIN_MEMORY: u64 = 6 << 20;

/// What this host's cgroups can apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostResources {
    /// The CPUs (`0-1`, as cpuset.cpus).
    pub cpus: String,
    /// The memory nodes.
    pub mems: String,
    /// Swap limits (memory.memsw on v1, memory.swap.max on v2).
    pub swap: bool,
    /// Block I/O weights.
    pub blkio_weight: bool,
    /// `memory.swappiness` (v1 only).
    pub swappiness: bool,
    /// The logical CPU count.
    pub ncpu: usize,
}

impl HostResources {
    /// Reads them from the cgroup file systems under `root` (`/sys/fs/cgroup`).
    pub fn detect(root: &std::path::Path) -> HostResources {
        let read = |p: &str| std::fs::read_to_string(root.join(p)).map(|s| s.trim().to_string());
        let v2 = root.join("cgroup.controllers").exists();
        let ncpu = std::thread::available_parallelism().map_or(1, |n| n.get());
        let (cpus, mems) = if v2 {
            (read("cpuset.cpus.effective"), read("cpuset.mems.effective"))
        } else {
            (
                read("cpuset/cpuset.effective_cpus"),
                read("cpuset/cpuset.effective_mems"),
            )
        };
        HostResources {
            cpus: cpus.unwrap_or_else(|_| format!("0-{}", ncpu.saturating_sub(1))),
            mems: mems.unwrap_or_else(|_| "0".into()),
            swap: if v2 {
                root.join("memory.swap.max").exists()
                    || root.join("init.scope/memory.swap.max").exists()
            } else {
                root.join("memory/memory.memsw.limit_in_bytes").exists()
            },
            blkio_weight: if v2 {
                root.join("io.weight").exists() || root.join("io.bfq.weight").exists()
            } else {
                root.join("blkio/blkio.weight").exists()
                    || root.join("blkio/blkio.bfq.weight").exists()
            },
            swappiness: !v2 && root.join("memory/memory.swappiness").exists(),
            ncpu,
        }
    }
}

/// `docker update`'s fields (Docker's `UpdateConfig`): what is given replaces what was.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Update {
    /// `--memory`, bytes.
    pub memory: Option<u64>,
    /// `--memory-swap`, bytes (-1: unlimited).
    pub memory_swap: Option<i64>,
    /// `--memory-reservation`, bytes.
    pub memory_reservation: Option<u64>,
    /// `--cpus`.
    pub cpus: Option<f64>,
    /// `--cpu-shares`.
    pub cpu_shares: Option<i64>,
    /// `--cpu-period`.
    pub cpu_period: Option<i64>,
    /// `--cpu-quota`.
    pub cpu_quota: Option<i64>,
    /// `--cpuset-cpus`.
    pub cpuset_cpus: Option<String>,
    /// `--cpuset-mems`.
    pub cpuset_mems: Option<String>,
    /// `--pids-limit` (0 or -1: unlimited).
    pub pids_limit: Option<i64>,
    /// `--blkio-weight`.
    pub blkio_weight: Option<u16>,
}

impl Update {
    /// `o` with the update applied (see [`crate::container::update`] for the checks Docker
    /// makes of an update first).
    pub fn apply(&self, o: &CreateOptions) -> CreateOptions {
        let mut n = o.clone();
        if let Some(m) = self.memory {
            n.memory = (m > 0).then_some(m);
        }
        if let Some(s) = self.memory_swap {
            n.memory_swap = (s != 0).then_some(s);
        }
        if let Some(r) = self.memory_reservation {
            n.memory_reservation = (r > 0).then_some(r);
        }
        if let Some(c) = self.cpus {
            n.cpus = (c > 0.0).then_some(c);
        }
        if let Some(s) = self.cpu_shares {
            n.cpu_shares = (s != 0).then_some(s);
        }
        if let Some(p) = self.cpu_period {
            n.cpu_period = (p != 0).then_some(p);
        }
        if let Some(q) = self.cpu_quota {
            n.cpu_quota = (q != 0).then_some(q);
        }
        if let Some(c) = &self.cpuset_cpus {
            n.cpuset_cpus = c.clone();
        }
        if let Some(m) = &self.cpuset_mems {
            n.cpuset_mems = m.clone();
        }
        if let Some(p) = self.pids_limit {
            n.pids_limit = (p > 0).then_some(p);
        }
        if let Some(w) = self.blkio_weight {
            n.blkio_weight = (w != 0).then_some(w);
        }
        n
    }
}

fn invalid(msg: impl Into<String>) -> ContainerError {
    ContainerError::Invalid(msg.into())
}

/// The highest CPU or memory node number a cpuset list may name (Linux's NR_CPUS limit).
pub const MAX_CPU: u32 = 8191;

/// The CPUs a cpuset list names (`0-2,4`), sorted and each once, or `None` when it is not one.
pub fn parse_cpuset(s: &str) -> Option<Vec<u32>> {
    let mut seen = vec![false; MAX_CPU as usize + 1];
    for part in s.split(',') {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let (a, b): (u32, u32) = (a.parse().ok()?, b.parse().ok()?);
        if a > b || b > MAX_CPU {
            return None;
        }
        for c in a..=b {
            seen[c as usize] = true;
        }
    }
    Some((0..=MAX_CPU).filter(|c| seen[*c as usize]).collect())
}

/// Docker's checks of `o`'s limits, and what `host` cannot apply refused by name.
pub fn check(o: &CreateOptions, host: &HostResources) -> Result<(), ContainerError> {
    if let Some(m) = o.memory {
        if m < MIN_MEMORY {
            return Err(invalid(format!(
                "invalid memory limit {m} bytes: minimum memory limit allowed is 6MB"
            )));
        }
    }
    if let Some(s) = o.memory_swap {
        if !host.swap {
            return Err(invalid(
                "--memory-swap: this host's kernel does not account swap (no memory.memsw or memory.swap.max): the limit cannot be applied",
            ));
        }
        match o.memory {
            None => {
                return Err(invalid(
                    "You should always set the Memory limit when using Memoryswap limit, see usage",
                ));
            }
            Some(m) if s > 0 && (s as u64) < m => {
                return Err(invalid(
                    "Minimum memoryswap limit should be larger than memory limit, see usage",
                ));
            }
            _ if s < -1 => {
                return Err(invalid(format!(
                    "invalid --memory-swap {s}: give -1 (unlimited) or a size"
                )));
            }
            _ => {}
        }
    }
    if let Some(r) = o.memory_reservation {
        if r < MIN_MEMORY {
            return Err(invalid("Minimum memory reservation allowed is 6MB"));
        }
        if o.memory.is_some_and(|m| m < r) {
            return Err(invalid(
                "Minimum memory limit can not be less than memory reservation limit, see usage",
            ));
        }
    }
    if let Some(s) = o.memory_swappiness {
        if !(0..=100).contains(&s) {
            return Err(invalid(format!(
                "Invalid value: {s}, valid memory swappiness range is 0-100"
            )));
        }
        if !host.swappiness {
            return Err(invalid(
                "--memory-swappiness: this host's cgroups have no memory.swappiness (cgroup v2): it cannot be applied",
            ));
        }
    }
    if let Some(c) = o.cpus {
        let max = host.ncpu as f64;
        if !(c > 0.0 && c <= max) {
            return Err(invalid(format!(
                "range of CPUs is from 0.01 to {max:.2}, as there are only {} CPUs available (asked for {c})",
                host.ncpu
            )));
        }
        if o.cpu_period.is_some() {
            return Err(invalid(
                "Conflicting options: Nano CPUs and CPU Period cannot both be set",
            ));
        }
        if o.cpu_quota.is_some() {
            return Err(invalid(
                "Conflicting options: Nano CPUs and CPU Quota cannot both be set",
            ));
        }
    }
    if o.cpu_period
        .is_some_and(|p| !(1000..=1_000_000).contains(&p))
    {
        return Err(invalid(
            "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)",
        ));
    }
    if o.cpu_quota.is_some_and(|q| q < -1) {
        return Err(invalid(format!(
            "invalid --cpu-quota {}: give -1 (unlimited) or 1000 or more microseconds",
            o.cpu_quota.unwrap_or(0)
        )));
    }
    if o.cpu_quota.is_some_and(|q| q > 0 && q < 1000) {
        return Err(invalid(
            "CPU cfs quota can not be less than 1ms (i.e. 1000)",
        ));
    }
    if o.cpu_shares.is_some_and(|s| s < 0) {
        return Err(invalid(format!(
            "invalid --cpu-shares {}: give a relative weight of 2 or more",
            o.cpu_shares.unwrap_or(0)
        )));
    }
    for (flag, asked, available) in [
        ("cpus", &o.cpuset_cpus, &host.cpus),
        ("mems", &o.cpuset_mems, &host.mems),
    ] {
        if asked.is_empty() {
            continue;
        }
        let want = parse_cpuset(asked)
            .ok_or_else(|| invalid(format!("Invalid value {asked} for cpuset {flag}")))?;
        let have = parse_cpuset(available).unwrap_or_default();
        if want.iter().any(|c| !have.contains(c)) {
            let what = if flag == "cpus" {
                "CPUs"
            } else {
                "memory nodes"
            };
            return Err(invalid(format!(
                "Requested {what} are not available - requested {asked}, available: {available}"
            )));
        }
    }
    if let Some(w) = o.blkio_weight {
        if !(10..=1000).contains(&w) {
            return Err(invalid("Range of blkio weight is from 10 to 1000"));
        }
        if !host.blkio_weight {
            return Err(invalid(
                "--blkio-weight: this host's block I/O scheduler has no weights (no blkio.weight or io.weight): it cannot be applied",
            ));
        }
    }
    Ok(())
}

/// The spec's `linux.resources` for `o`, without devices.
pub fn oci(o: &CreateOptions) -> Value {
    let mut r = json!({});
    let mut memory = json!({});
    if let Some(m) = o.memory {
        memory["limit"] = json!(i64::try_from(m).unwrap_or(i64::MAX));
    }
    // Memory and swap together (create records Docker's default, twice the memory limit,
    // where the host accounts swap).
    if let Some(s) = o.memory_swap {
        memory["swap"] = json!(s);
    }
    if let Some(res) = o.memory_reservation {
        memory["reservation"] = json!(res);
    }
    if let Some(s) = o.memory_swappiness {
        memory["swappiness"] = json!(s);
    }
    if let Some(d) = o.oom_kill_disable {
        memory["disableOOMKiller"] = json!(d);
    }
    if memory.as_object().is_some_and(|m| !m.is_empty()) {
        r["memory"] = memory;
    }
    let mut cpu = json!({});
    if let Some(c) = o.cpus {
        cpu["quota"] = json!((c * CPU_PERIOD as f64).round() as i64);
        cpu["period"] = json!(CPU_PERIOD);
    }
    if let Some(p) = o.cpu_period {
        cpu["period"] = json!(p);
    }
    if let Some(q) = o.cpu_quota {
        cpu["quota"] = json!(q);
    }
    if let Some(s) = o.cpu_shares {
        // The kernel's range, as Docker clamps it.
        cpu["shares"] = json!(s.clamp(2, 262_144));
    }
    if !o.cpuset_cpus.is_empty() {
        cpu["cpus"] = json!(o.cpuset_cpus);
    }
    if !o.cpuset_mems.is_empty() {
        cpu["mems"] = json!(o.cpuset_mems);
    }
    if cpu.as_object().is_some_and(|m| !m.is_empty()) {
        r["cpu"] = cpu;
    }
    if let Some(p) = o.pids_limit {
        r["pids"] = json!({"limit": p});
    }
    if let Some(w) = o.blkio_weight {
        r["blockIO"] = json!({"weight": w});
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> HostResources {
        HostResources {
            cpus: "0-1".into(),
            mems: "0".into(),
            swap: true,
            blkio_weight: false,
            swappiness: true,
            ncpu: 2,
        }
    }

    fn o(f: impl FnOnce(&mut CreateOptions)) -> CreateOptions {
        let mut o = CreateOptions::default();
        f(&mut o);
        o
    }

    fn err(x: CreateOptions) -> String {
        check(&x, &host()).unwrap_err().to_string()
    }

    #[test]
    fn dockers_checks_and_what_the_host_lacks() {
        assert!(check(&CreateOptions::default(), &host()).is_ok());
        assert!(
            err(o(|o| o.memory_swap = Some(100 << 20)))
                .starts_with("You should always set the Memory limit")
        );
        assert!(
            err(o(|o| {
                o.memory = Some(64 << 20);
                o.memory_swap = Some(32 << 20)
            }))
            .starts_with("Minimum memoryswap limit")
        );
        assert!(
            err(o(|o| {
                o.memory = Some(64 << 20);
                o.memory_reservation = Some(128 << 20)
            }))
            .starts_with("Minimum memory limit can not be less")
        );
        assert_eq!(
            err(o(|o| o.memory_swappiness = Some(101))),
            "Invalid value: 101, valid memory swappiness range is 0-100"
        );
        assert!(
            err(o(|o| {
                o.cpus = Some(1.0);
                o.cpu_quota = Some(50_000)
            }))
            .contains("Nano CPUs and CPU Quota")
        );
        assert!(err(o(|o| o.cpu_period = Some(500))).starts_with("CPU cfs period"));
        assert_eq!(
            err(o(|o| o.cpuset_cpus = "0-3".into())),
            "Requested CPUs are not available - requested 0-3, available: 0-1"
        );
        assert_eq!(
            err(o(|o| o.cpuset_cpus = "x".into())),
            "Invalid value x for cpuset cpus"
        );
        assert!(
            err(o(|o| o.blkio_weight = Some(500)))
                .starts_with("--blkio-weight: this host's block I/O scheduler has no weights")
        );
        assert_eq!(
            err(o(|o| o.blkio_weight = Some(5))),
            "Range of blkio weight is from 10 to 1000"
        );
        let no_swap = HostResources {
            swap: false,
            ..host()
        };
        let e = check(
            &o(|o| {
                o.memory = Some(64 << 20);
                o.memory_swap = Some(-1)
            }),
            &no_swap,
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("--memory-swap: this host's kernel does not account swap")
        );
    }

    #[test]
    fn resources_as_the_runtime_takes_them() {
        let r = oci(&o(|o| {
            o.memory = Some(64 << 20);
            o.memory_swap = Some(128 << 20);
            o.memory_reservation = Some(32 << 20);
            o.cpu_shares = Some(512);
            o.cpu_period = Some(50_000);
            o.cpu_quota = Some(25_000);
            o.cpuset_cpus = "0".into();
            o.pids_limit = Some(10);
        }));
        assert_eq!(
            r["memory"],
            json!({"limit": 64 << 20, "swap": 128 << 20, "reservation": 32 << 20})
        );
        assert_eq!(
            r["cpu"],
            json!({"shares": 512, "period": 50_000, "quota": 25_000, "cpus": "0"})
        );
        assert_eq!(r["pids"]["limit"], 10);
        assert_eq!(oci(&CreateOptions::default()), json!({}));
        assert_eq!(
            oci(&o(|o| o.cpus = Some(1.5)))["cpu"],
            json!({"quota": 150_000, "period": 100_000})
        );
    }

    #[test]
    fn updates_replace_what_they_name() {
        let old = o(|o| {
            o.memory = Some(64 << 20);
            o.memory_swap = Some(128 << 20);
            o.cpu_shares = Some(512);
        });
        let n = Update {
            memory: Some(96 << 20),
            ..Update::default()
        }
        .apply(&old);
        assert_eq!(
            (n.memory, n.memory_swap, n.cpu_shares),
            (Some(96 << 20), Some(128 << 20), Some(512))
        );
        let n = Update {
            memory_swap: Some(-1),
            cpuset_cpus: Some("1".into()),
            ..Update::default()
        }
        .apply(&old);
        assert_eq!((n.memory_swap, n.cpuset_cpus.as_str()), (Some(-1), "1"));
        assert_eq!(parse_cpuset("0-2,4"), Some(vec![0, 1, 2, 4]));
        assert_eq!(parse_cpuset("2-1"), None);
        assert_eq!(parse_cpuset("0-1,1,0"), Some(vec![0, 1]));
        assert_eq!(parse_cpuset("0-9000"), None);
        assert_eq!(
            parse_cpuset("0-4096,".repeat(1000).trim_end_matches(',')).map(|v| v.len()),
            Some(4097)
        );
    }
}
