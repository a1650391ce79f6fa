//! `docker top`: the processes of a running container, found by its cgroup (every process of it,
//! execs included) and described from /proc. The parsing of `/proc/PID/stat` and `status` is
//! pure; reading the files is the thin part.

use std::fs;
use std::path::Path;

use super::ContainerError;
use super::engine::Engine;
use super::state::{Op, check};

/// `ps -ef`'s columns, as Docker shows them.
pub const TITLES: [&str; 8] = ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"];

/// From `/proc/PID/stat`: the parent PID and the CPU time in clock ticks (user + system). The
/// command name may hold spaces and parentheses, so the fields are counted after its last `)`.
pub fn parse_stat(stat: &str) -> Option<(i32, u64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state(0) ppid(1) ... utime(11) stime(12).
    let ppid = f.get(1)?.parse().ok()?;
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some((ppid, utime + stime))
}

/// The real UID from `/proc/PID/status`.
pub fn parse_uid(status: &str) -> Option<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|u| u.parse().ok())
}

/// CPU ticks as `ps`'s TIME, `HH:MM:SS`.
pub fn cpu_time(ticks: u64, ticks_per_second: u64) -> String {
    let s = ticks / ticks_per_second.max(1);
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

fn row(pid: i32, ticks_per_second: u64) -> Option<Vec<String>> {
    let proc_dir = Path::new("/proc").join(pid.to_string());
    let (ppid, ticks) = parse_stat(&fs::read_to_string(proc_dir.join("stat")).ok()?)?;
    let uid = parse_uid(&fs::read_to_string(proc_dir.join("status")).ok()?)?;
    let cmdline = fs::read(proc_dir.join("cmdline")).unwrap_or_default();
    let cmd = cmdline
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    Some(vec![
        if uid == 0 {
            "root".into()
        } else {
            uid.to_string()
        },
        pid.to_string(),
        ppid.to_string(),
        "0".into(),
        "-".into(),
        "?".into(),
        cpu_time(ticks, ticks_per_second),
        cmd,
    ])
}

/// A `docker top` planned under the engine's lock, read without it ([`TopPlan::read`]).
#[derive(Debug, Clone)]
pub struct TopPlan {
    name: String,
    cgroup: String,
}

impl Engine {
    /// `docker top`'s first step: the running container `what` and its cgroup.
    pub fn top_plan(&self, what: &str) -> Result<TopPlan, ContainerError> {
        let id = self.resolve(what)?;
        let c = &self.containers[&id];
        check(Op::Exec, c.state.status, &c.name)?;
        Ok(TopPlan {
            name: c.name.clone(),
            cgroup: self.cgroups_path(&id),
        })
    }
}

impl TopPlan {
    /// [`TITLES`] and one row per process of the container, from its cgroup and /proc
    /// (blocking: run it off the async workers).
    pub fn read(&self) -> Result<Vec<Vec<String>>, ContainerError> {
        let root = Path::new("/sys/fs/cgroup");
        let procs = crate::runtime::cgroup::dirs(root, &self.cgroup)
            .into_iter()
            .find_map(|d| fs::read_to_string(d.join("cgroup.procs")).ok())
            // Its cgroup is gone: it stopped since it was looked at.
            .ok_or_else(|| {
                ContainerError::Conflict(format!("Container {} is not running", self.name))
            })?;
        // SAFETY: sysconf only reads a configuration value.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        let mut rows: Vec<Vec<String>> = procs
            .lines()
            .filter_map(|p| p.trim().parse::<i32>().ok())
            .filter_map(|pid| row(pid, hz))
            .collect();
        rows.sort_by_key(|r| r[1].parse::<i32>().unwrap_or(0));
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_status_and_time() {
        let stat = "4242 (my (odd) cmd) S 4200 4242 4242 0 -1 4194560 100 0 0 0 250 150 0 0 20 0 1 0 12345 1000 10 18446744073709551615";
        assert_eq!(parse_stat(stat), Some((4200, 400)));
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("1 (x) S"), None);
        assert_eq!(
            parse_uid("Name:\tsh\nUid:\t1000\t1000\t1000\t1000\n"),
            Some(1000)
        );
        assert_eq!(parse_uid("Name:\tsh\n"), None);
        assert_eq!(cpu_time(3723 * 100, 100), "01:02:03");
    }
}
