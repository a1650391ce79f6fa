//! What the system routes (`/info`, `/system/df`) ask of the engine ([`SystemBackend`], moby's
//! `router/system` backend): the daemon's configuration, fixed at start, and what the machine
//! offers (cgroup version, swap limits, forwarding, memory), probed there; the containers and
//! images counted from the index and the image store, the volumes from their backend. No lock
//! of the engine is taken: `docker info` answers while the engine is busy.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use tokio::sync::watch;

use crate::container::images::ImageBackend;
use crate::container::{Engine, Index};
use crate::image::store::ImageStore;
use crate::volume::{VolumeBackend, Volumes};

/// A runtime as `/info` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeInfo {
    /// Its name (`runc`, a declared one).
    pub name: String,
    /// The program.
    pub path: String,
    /// `runtimeArgs`.
    pub args: Vec<String>,
}

/// What `/info` reports.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SystemInfo {
    /// Containers running, paused, and neither.
    pub running: usize,
    /// Paused ones.
    pub paused: usize,
    /// The others.
    pub stopped: usize,
    /// Images in the store.
    pub images: usize,
    /// `DockerRootDir`.
    pub data_root: String,
    /// `DefaultRuntime`.
    pub default_runtime: String,
    /// `Runtimes`.
    pub runtimes: Vec<RuntimeInfo>,
    /// `SecurityOptions`.
    pub security_options: Vec<String>,
    /// `CgroupVersion`: `1` or `2`.
    pub cgroup_version: &'static str,
    /// `SwapLimit`: memory.memsw (v1) or memory.swap.max (v2) is there.
    pub swap_limit: bool,
    /// `NCPU` (read at each request).
    pub ncpu: usize,
    /// `MemTotal`, in bytes.
    pub mem_total: u64,
    /// `IPv4Forwarding`.
    pub ipv4_forwarding: bool,
    /// `BridgeNfIptables`.
    pub bridge_nf_iptables: bool,
    /// `BridgeNfIp6tables`.
    pub bridge_nf_ip6tables: bool,
    /// `KernelVersion`.
    pub kernel: String,
    /// `OSVersion`: the host's `VERSION_ID`.
    pub os_version: String,
    /// `Name`: the host name (read at each request).
    pub hostname: String,
}

/// A container as `/system/df` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerUsage {
    /// Its ID.
    pub id: String,
    /// Its name.
    pub name: String,
    /// The image it was created from, as given.
    pub image: String,
    /// Its status word.
    pub state: &'static str,
}

/// An image as `/system/df` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageUsage {
    /// Its ID.
    pub id: String,
    /// Its tags.
    pub tags: Vec<String>,
    /// Its size.
    pub size: u64,
    /// Whether a container uses it.
    pub in_use: bool,
    /// When it was created, in seconds since the epoch.
    pub created: i64,
}

/// A volume as `/system/df` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeUsage {
    /// Its name.
    pub name: String,
    /// How many containers mount it.
    pub users: usize,
}

/// What `/system/df` reports.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DiskUsage {
    /// The bytes the image store's layers take on disk.
    pub layers_size: u64,
    /// The images.
    pub images: Vec<ImageUsage>,
    /// The containers.
    pub containers: Vec<ContainerUsage>,
    /// The volumes.
    pub volumes: Vec<VolumeUsage>,
}

/// What the system routes ask of the engine.
pub trait SystemBackend: Send + Sync + 'static {
    /// `docker info`.
    fn info(&self) -> SystemInfo;
    /// `docker system df` (the layers are measured on disk, off the async workers).
    fn disk_usage(&self) -> impl Future<Output = DiskUsage> + Send;
}

/// The system backend over an engine's index, image store and volumes.
#[derive(Debug, Clone)]
pub struct System {
    fixed: Arc<SystemInfo>,
    index: watch::Receiver<Arc<Index>>,
    images: Arc<ImageStore>,
    image_backend: ImageBackend,
    volumes: Volumes,
}

impl System {
    /// The backend of `engine`'s daemon: its configuration and the machine's facts are read
    /// now, once.
    pub fn new(engine: &Engine, image_backend: ImageBackend) -> System {
        let host = engine.host_resources();
        let cgroup_v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
        let fixed = SystemInfo {
            data_root: engine.config().data_root.display().to_string(),
            default_runtime: engine.runtimes().default_name().to_string(),
            runtimes: engine
                .runtimes()
                .list()
                .map(|(name, path, args)| RuntimeInfo {
                    name: name.to_string(),
                    path: path.display().to_string(),
                    args: args.to_vec(),
                })
                .collect(),
            security_options: engine.host_security().security_options(),
            cgroup_version: if cgroup_v2 { "2" } else { "1" },
            swap_limit: host.swap,

            mem_total: meminfo_total(&std::fs::read_to_string("/proc/meminfo").unwrap_or_default()),
            kernel: nix::sys::utsname::uname()
                .map(|u| u.release().to_string_lossy().into_owned())
                .unwrap_or_default(),
            os_version: os_release_version(
                &std::fs::read_to_string("/etc/os-release").unwrap_or_default(),
            ),
            ..SystemInfo::default()
        };
        System {
            fixed: Arc::new(fixed),
            index: engine.index(),
            images: engine.images().clone(),
            image_backend,
            volumes: engine.volumes().clone(),
        }
    }
}

/// Whether a kernel flag file reads `1` (a missing one: no).
fn proc_flag(path: &str) -> bool {
    std::fs::read_to_string(path).is_ok_and(|s| s.trim() == "1")
}

/// `MemTotal` of /proc/meminfo, in bytes (0 when absent).
pub fn meminfo_total(meminfo: &str) -> u64 {
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// `VERSION_ID` of /etc/os-release (empty when absent).
pub fn os_release_version(os_release: &str) -> String {
    os_release
        .lines()
        .find_map(|l| l.strip_prefix("VERSION_ID="))
        .map(|v| v.trim_matches('"').to_string())
        .unwrap_or_default()
}

impl SystemBackend for System {
    fn info(&self) -> SystemInfo {
        let mut info = (*self.fixed).clone();
        for e in self.index.borrow().entries() {
            match e.container.state.status {
                crate::container::Status::Running => info.running += 1,
                crate::container::Status::Paused => info.paused += 1,
                _ => info.stopped += 1,
            }
        }
        info.images = self.images.snapshot().images().count();
        info.ncpu = std::thread::available_parallelism().map_or(1, |n| n.get());
        info.hostname = nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_default();
        // Changed by the host at any time: read at each request.
        info.ipv4_forwarding = proc_flag("/proc/sys/net/ipv4/ip_forward");
        info.bridge_nf_iptables = proc_flag("/proc/sys/net/bridge/bridge-nf-call-iptables");
        info.bridge_nf_ip6tables = proc_flag("/proc/sys/net/bridge/bridge-nf-call-ip6tables");
        info
    }

    async fn disk_usage(&self) -> DiskUsage {
        let in_use = self.image_backend.in_use();
        let containers = self
            .index
            .borrow()
            .entries()
            .map(|e| ContainerUsage {
                id: e.container.id.clone(),
                name: e.container.name.clone(),
                image: e.container.options.image.clone(),
                state: e.container.state.status.as_str(),
            })
            .collect();
        // The volumes' lock may wait on a change's fsync: off the async workers.
        let vols = self.volumes.clone();
        let volumes = tokio::task::spawn_blocking(move || vols.list(&Default::default()))
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|v| VolumeUsage {
                name: v.volume.name,
                users: v.users,
            })
            .collect();
        let store = self.images.snapshot();
        let images = store
            .images()
            .map(|img| ImageUsage {
                id: img.id.to_string(),
                tags: store
                    .tags_of(&img.id)
                    .into_iter()
                    .map(String::from)
                    .collect(),
                size: img.size,
                in_use: in_use.contains(&img.id.to_string()),
                created: berth_common::time::parse(&img.created).map_or(0, |(s, _)| s),
            })
            .collect();
        DiskUsage {
            layers_size: self.image_backend.disk_usage().await,
            images,
            containers,
            volumes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_files_are_read_as_docker_reports_them() {
        let meminfo = "MemTotal:       24578048 kB\nMemFree:         1000 kB\n";
        assert_eq!(meminfo_total(meminfo), 24578048 * 1024);
        assert_eq!(meminfo_total("nothing"), 0);
        let os = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nVERSION_ID=\"12\"\n";
        assert_eq!(os_release_version(os), "12");
        assert_eq!(os_release_version(""), "");
    }
}
