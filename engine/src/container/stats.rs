//! `docker stats`: where a container's numbers are read from, taken under the engine's lock so
//! that the reading itself (and the second between two samples) happens without it.

use std::path::Path;

use super::ContainerError;
use super::engine::Engine;
use super::model::NetworkMode;
use super::state::Status;
use crate::runtime::stats::{self, Sample, Sources};

/// A container's stats sources as they are now; take a new one for each sample, since the
/// container may stop or restart (a new init PID) between two.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsSource {
    /// The container's ID.
    pub id: String,
    /// Its name, without Docker's leading `/`.
    pub name: String,
    /// Running or paused: a stopped container has no cgroup to read, and Docker shows zeros.
    pub running: bool,
    pid: i32,
    cgroups_path: String,
    own_netns: bool,
}

impl StatsSource {
    /// One sample read now; `None` when the container is not running.
    pub fn sample(&self) -> Option<Sample> {
        if !self.running {
            return None;
        }
        Some(stats::read_sample(&Sources {
            cgroup_root: Path::new("/sys/fs/cgroup"),
            cgroups_path: &self.cgroups_path,
            proc_root: Path::new("/proc"),
            net_pid: (self.own_netns && self.pid > 0).then_some(self.pid),
            ticks_per_second: stats::ticks_per_second(),
        }))
    }
}

impl Engine {
    /// Where the stats of container `what` come from.
    pub fn stats_source(&self, what: &str) -> Result<StatsSource, ContainerError> {
        let id = self.resolve(what)?;
        let c = &self.containers[&id];
        Ok(StatsSource {
            running: matches!(c.state.status, Status::Running | Status::Paused),
            pid: c.state.pid,
            cgroups_path: self.cgroups_path(&id),
            // Host networking has no counters of its own; `container:` shares the other's.
            own_netns: !matches!(c.network_mode, NetworkMode::Host),
            name: c.name.clone(),
            id,
        })
    }
}
