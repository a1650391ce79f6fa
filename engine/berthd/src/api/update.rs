//! `POST /containers/{id}/update`: Docker's `UpdateConfig` (what `docker update` and SDKs send)
//! turned into the engine's [`UpdateOptions`]. Pure. As Docker's daemon reads it, a zero means
//! "unchanged" (the docker CLI sends every field), `MemorySwap` -1 is unlimited and a
//! `PidsLimit` of 0 or -1 lifts the limit; fields berth does not apply are refused by name.

use engine::container::RestartPolicy;
use engine::container::resources::Update;
use engine::container::update::UpdateOptions;
use serde::Deserialize;

use super::error::ApiError;

/// `RestartPolicy` of an update.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct Restart {
    /// Empty: unchanged.
    pub name: String,
    /// For `on-failure`.
    pub maximum_retry_count: i64,
}

/// The body.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct UpdateBody {
    /// `--cpu-shares`.
    pub cpu_shares: i64,
    /// `--memory`.
    pub memory: i64,
    /// `--memory-swap`.
    pub memory_swap: i64,
    /// `--memory-reservation`.
    pub memory_reservation: i64,
    /// `--cpus` × 10⁹.
    pub nano_cpus: i64,
    /// `--cpu-period`.
    pub cpu_period: i64,
    /// `--cpu-quota`.
    pub cpu_quota: i64,
    /// `--cpuset-cpus`.
    pub cpuset_cpus: String,
    /// `--cpuset-mems`.
    pub cpuset_mems: String,
    /// `--pids-limit`.
    pub pids_limit: Option<i64>,
    /// `--blkio-weight`.
    pub blkio_weight: u16,
    /// `--kernel-memory` (refused: cgroup v2 and recent kernels have none).
    pub kernel_memory: i64,
    /// `--cpu-rt-period` (refused).
    #[serde(rename = "CpuRealtimePeriod")]
    pub cpu_realtime_period: i64,
    /// `--cpu-rt-runtime` (refused).
    #[serde(rename = "CpuRealtimeRuntime")]
    pub cpu_realtime_runtime: i64,
    /// `--restart`.
    pub restart_policy: Option<Restart>,
}

/// Reads a body; the error names what is wrong in it.
pub fn parse(body: &[u8]) -> Result<UpdateBody, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(UpdateBody::default());
    }
    serde_json::from_slice(body).map_err(|e| ApiError::bad(format!("invalid update config: {e}")))
}

/// The engine's update.
pub fn to_options(b: UpdateBody) -> Result<UpdateOptions, ApiError> {
    for (field, set) in [
        ("KernelMemory", b.kernel_memory != 0),
        ("CPURealtimePeriod", b.cpu_realtime_period != 0),
        ("CPURealtimeRuntime", b.cpu_realtime_runtime != 0),
    ] {
        if set {
            return Err(ApiError::bad(format!(
                "{field} cannot be updated by berth: this host's cgroups do not apply it (valid: 0)"
            )));
        }
    }
    let positive = |field: &str, v: i64| -> Result<Option<u64>, ApiError> {
        match v {
            0 => Ok(None),
            v if v > 0 => Ok(Some(v as u64)),
            v => Err(ApiError::bad(format!(
                "invalid {field} {v}: give a size in bytes"
            ))),
        }
    };
    let nonzero = |v: i64| (v != 0).then_some(v);
    let restart = match b.restart_policy {
        Some(r) if !r.name.is_empty() => Some(
            RestartPolicy::from_parts(&r.name, r.maximum_retry_count)
                .map_err(|e| ApiError::bad(format!("RestartPolicy: {e}")))?,
        ),
        _ => None,
    };
    Ok(UpdateOptions {
        resources: Update {
            memory: positive("Memory", b.memory)?,
            memory_swap: nonzero(b.memory_swap),
            memory_reservation: positive("MemoryReservation", b.memory_reservation)?,
            cpus: (b.nano_cpus > 0).then(|| b.nano_cpus as f64 / 1e9),
            cpu_shares: nonzero(b.cpu_shares),
            cpu_period: nonzero(b.cpu_period),
            cpu_quota: nonzero(b.cpu_quota),
            cpuset_cpus: Some(b.cpuset_cpus).filter(|s| !s.is_empty()),
            cpuset_mems: Some(b.cpuset_mems).filter(|s| !s.is_empty()),
            pids_limit: b.pids_limit,
            blkio_weight: (b.blkio_weight != 0).then_some(b.blkio_weight),
        },
        restart,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_docker_update_sends_becomes_an_update() {
        // `docker update --memory 128m --restart always` sends every field, zero when unset.
        let b = parse(br#"{"CpuShares":0,"Memory":134217728,"CgroupParent":"","BlkioWeight":0,"CpuPeriod":0,"CpuQuota":0,"CpuRealtimePeriod":0,"CpuRealtimeRuntime":0,"CpusetCpus":"","CpusetMems":"","Devices":null,"DeviceCgroupRules":null,"DeviceRequests":null,"KernelMemory":0,"KernelMemoryTCP":0,"MemoryReservation":0,"MemorySwap":0,"MemorySwappiness":null,"NanoCpus":0,"OomKillDisable":null,"PidsLimit":null,"Ulimits":null,"CpuCount":0,"CpuPercent":0,"IOMaximumIOps":0,"IOMaximumBandwidth":0,"RestartPolicy":{"Name":"always","MaximumRetryCount":0}}"#).unwrap();
        let u = to_options(b).unwrap();
        assert_eq!(u.resources.memory, Some(128 << 20));
        assert_eq!(u.resources.cpu_shares, None);
        assert_eq!(u.restart, Some(RestartPolicy::Always));
        let e = to_options(parse(br#"{"KernelMemory":1}"#).unwrap()).unwrap_err();
        assert!(e.message.contains("KernelMemory"), "{e}");
        assert!(parse(b"{").is_err());
    }
}
