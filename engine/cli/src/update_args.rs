//! `berth update`'s flags and the `UpdateConfig` body they make, as the docker CLI sends it:
//! every resource field, zero meaning "unchanged", `PidsLimit` only when given. Pure.

use clap::Args;
use serde_json::{Value, json};

use crate::run_args::{ArgsError, bad, cpus_flag, memory_flag, restart, size_or};

/// `docker update`'s flags.
#[derive(Debug, Clone, Default, Args)]
pub struct UpdateArgs {
    /// Block IO (relative weight), between 10 and 1000, or 0 to disable
    #[arg(long = "blkio-weight", value_name = "uint16")]
    pub blkio_weight: Option<u16>,
    /// Limit CPU CFS (Completely Fair Scheduler) period
    #[arg(long = "cpu-period", value_name = "int")]
    pub cpu_period: Option<i64>,
    /// Limit CPU CFS (Completely Fair Scheduler) quota
    #[arg(long = "cpu-quota", value_name = "int", allow_hyphen_values = true)]
    pub cpu_quota: Option<i64>,
    /// Limit the CPU real-time period in microseconds
    #[arg(long = "cpu-rt-period", value_name = "int")]
    pub cpu_rt_period: Option<i64>,
    /// Limit the CPU real-time runtime in microseconds
    #[arg(long = "cpu-rt-runtime", value_name = "int")]
    pub cpu_rt_runtime: Option<i64>,
    /// CPU shares (relative weight)
    #[arg(short = 'c', long = "cpu-shares", value_name = "int")]
    pub cpu_shares: Option<i64>,
    /// Number of CPUs
    #[arg(long, value_name = "decimal")]
    pub cpus: Option<f64>,
    /// CPUs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-cpus", value_name = "string")]
    pub cpuset_cpus: Option<String>,
    /// MEMs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-mems", value_name = "string")]
    pub cpuset_mems: Option<String>,
    /// Memory limit
    #[arg(short = 'm', long, value_name = "bytes")]
    pub memory: Option<String>,
    /// Memory soft limit
    #[arg(long = "memory-reservation", value_name = "bytes")]
    pub memory_reservation: Option<String>,
    /// Swap limit equal to memory plus swap: -1 to enable unlimited swap
    #[arg(long = "memory-swap", value_name = "bytes", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Kernel memory limit (deprecated)
    #[arg(long = "kernel-memory", value_name = "bytes")]
    pub kernel_memory: Option<String>,
    /// Tune container pids limit (set -1 for unlimited)
    #[arg(long = "pids-limit", value_name = "int", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Restart policy to apply when a container exits
    #[arg(long, value_name = "string")]
    pub restart: Option<String>,
}

impl UpdateArgs {
    /// Whether any flag was given (the docker CLI refuses an update without one).
    pub fn any(&self) -> bool {
        let a = self;
        a.blkio_weight.is_some()
            || a.cpu_period.is_some()
            || a.cpu_quota.is_some()
            || a.cpu_rt_period.is_some()
            || a.cpu_rt_runtime.is_some()
            || a.cpu_shares.is_some()
            || a.cpus.is_some()
            || a.cpuset_cpus.is_some()
            || a.cpuset_mems.is_some()
            || a.memory.is_some()
            || a.memory_reservation.is_some()
            || a.memory_swap.is_some()
            || a.kernel_memory.is_some()
            || a.pids_limit.is_some()
            || a.restart.is_some()
    }
}

/// The body of `POST /containers/{id}/update`.
pub fn update_body(a: &UpdateArgs) -> Result<Value, ArgsError> {
    let restart = match &a.restart {
        Some(r) => {
            let p = restart(r)?;
            json!({"Name": p.name, "MaximumRetryCount": p.maximum_retry_count})
        }
        None => json!({"Name": "", "MaximumRetryCount": 0}),
    };
    let mut body = json!({
        "BlkioWeight": a.blkio_weight.unwrap_or(0),
        "CpuPeriod": a.cpu_period.unwrap_or(0),
        "CpuQuota": a.cpu_quota.unwrap_or(0),
        "CpuRealtimePeriod": a.cpu_rt_period.unwrap_or(0),
        "CpuRealtimeRuntime": a.cpu_rt_runtime.unwrap_or(0),
        "CpuShares": a.cpu_shares.unwrap_or(0),
        "NanoCpus": cpus_flag(a.cpus)?,
        "CpusetCpus": a.cpuset_cpus.clone().unwrap_or_default(),
        "CpusetMems": a.cpuset_mems.clone().unwrap_or_default(),
        "Memory": memory_flag(&a.memory)?,
        "MemoryReservation": size_or("--memory-reservation", &a.memory_reservation)?,
        "MemorySwap": size_or("--memory-swap", &a.memory_swap)?,
        "KernelMemory": size_or("--kernel-memory", &a.kernel_memory)?,
        "RestartPolicy": restart,
    });
    if let Some(p) = a.pids_limit {
        if p < -1 {
            return Err(bad(
                "--pids-limit",
                &p.to_string(),
                "valid: -1 (unlimited) or more",
            ));
        }
        body["PidsLimit"] = json!(p);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        a: UpdateArgs,
    }

    fn body(args: &[&str]) -> Result<Value, ArgsError> {
        let t = T::try_parse_from(std::iter::once("update").chain(args.iter().copied())).unwrap();
        update_body(&t.a)
    }

    #[test]
    fn flags_become_dockers_update_config() {
        let b = body(&[
            "-m",
            "64m",
            "--memory-swap",
            "-1",
            "--cpus",
            "1.5",
            "--cpuset-cpus",
            "0",
            "--pids-limit",
            "-1",
            "--restart",
            "on-failure:3",
        ])
        .unwrap();
        assert_eq!(b["Memory"], 64 << 20);
        assert_eq!(b["MemorySwap"], -1);
        assert_eq!(b["NanoCpus"], 1_500_000_000i64);
        assert_eq!(b["CpusetCpus"], "0");
        assert_eq!(b["PidsLimit"], -1);
        assert_eq!(b["RestartPolicy"]["Name"], "on-failure");
        assert_eq!(b["RestartPolicy"]["MaximumRetryCount"], 3);
        // Not given: zero (unchanged), and no PidsLimit at all.
        assert_eq!(b["CpuShares"], 0);
        let b = body(&["--cpu-shares", "512"]).unwrap();
        assert!(b.get("PidsLimit").is_none());
        assert_eq!(b["RestartPolicy"]["Name"], "");
    }

    #[test]
    fn bad_values_are_named() {
        for (args, flag) in [
            (&["-m", "1k"][..], "--memory"),
            (&["--restart", "sometimes"][..], "--restart"),
            (&["--pids-limit", "-5"][..], "--pids-limit"),
            (&["--cpus", "0"][..], "--cpus"),
        ] {
            let e = body(args).unwrap_err().to_string();
            assert!(e.contains(flag), "{args:?}: {e}");
        }
    }
}
