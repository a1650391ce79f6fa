//! The body of `POST /containers/create` as Docker's clients send it: what `berth run` builds
//! from its flags and what berthd reads, one typed model for both. Fields take Docker's names
//! and shapes (`Cmd` as an array, a string or null; absent lists as `null`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `Entrypoint` and `Cmd` come as an array, a string, or null.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Strings {
    /// `["sh", "-c", "..."]`.
    List(Vec<String>),
    /// `"sh"` (old clients).
    One(String),
    /// `null`.
    #[default]
    None,
}

impl Strings {
    /// The list, `None` for null.
    pub fn into_vec(self) -> Option<Vec<String>> {
        match self {
            Strings::List(v) => Some(v),
            Strings::One(s) => Some(vec![s]),
            Strings::None => None,
        }
    }
}

/// `HostConfig.PortBindings` entry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct PortBinding {
    /// `HostIp`.
    pub host_ip: String,
    /// `HostPort` (empty: any).
    pub host_port: String,
}

/// `HostConfig.RestartPolicy`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct RestartPolicy {
    /// `no`, `always`, `unless-stopped`, `on-failure`.
    pub name: String,
    /// For `on-failure` (Go's int: a negative one is sent as it is, and refused).
    pub maximum_retry_count: i64,
}

/// `HostConfig.Ulimits` entry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct Ulimit {
    /// `nofile`.
    pub name: String,
    /// Soft limit.
    pub soft: i64,
    /// Hard limit.
    pub hard: i64,
}

/// `HostConfig.Mounts` entry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct Mount {
    /// `bind`, `volume`, `tmpfs`.
    #[serde(rename = "Type")]
    pub kind: String,
    /// Host path or volume name.
    pub source: String,
    /// Path in the container.
    pub target: String,
    /// Read-only.
    pub read_only: bool,
    /// `volume-nocopy`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume_options: Option<VolumeOptions>,
    /// `bind-propagation`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bind_options: Option<BindOptions>,
    /// `tmpfs-size`, `tmpfs-mode`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tmpfs_options: Option<TmpfsOptions>,
}

/// `Mount.VolumeOptions`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct VolumeOptions {
    /// Do not copy the image's files into a new volume.
    pub no_copy: bool,
    /// Labels of a volume it creates (refused when set: not applied yet).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// The volume driver (refused unless `local`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver_config: Option<DriverConfig>,
    /// A directory of the volume to mount instead of its root (refused when set).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub subpath: String,
}

/// `VolumeOptions.DriverConfig`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct DriverConfig {
    /// `local` (or empty).
    pub name: String,
    /// Driver options (refused when set).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub options: Option<BTreeMap<String, String>>,
}

/// `Mount.BindOptions`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct BindOptions {
    /// `rprivate`, `private`, `rshared`, `shared`, `rslave`, `slave` (empty: the default).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub propagation: String,
    /// Not recursive (refused when set: berth's binds are recursive).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub non_recursive: bool,
    /// Create a missing source (refused when set).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub create_mountpoint: bool,
    /// Read-only but not its submounts (refused when set).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub read_only_non_recursive: bool,
    /// Read-only submounts forced (refused when set).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub read_only_force_recursive: bool,
}

/// `Mount.TmpfsOptions`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct TmpfsOptions {
    /// Size in bytes (0: the kernel's default).
    #[serde(skip_serializing_if = "is_zero")]
    pub size_bytes: i64,
    /// Permission bits (Go's `os.FileMode`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

fn is_zero_u16(n: &u16) -> bool {
    *n == 0
}

/// `HostConfig.LogConfig`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct LogConfig {
    /// `json-file` (or empty).
    #[serde(rename = "Type")]
    pub kind: String,
    /// `max-size`, `max-file`.
    pub config: BTreeMap<String, String>,
}

/// The part of `HostConfig` berth reads.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct HostConfig {
    /// `-v` (binds and named volumes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub binds: Option<Vec<String>>,
    /// `--network`.
    pub network_mode: String,
    /// `-p`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port_bindings: Option<BTreeMap<String, Option<Vec<PortBinding>>>>,
    /// `--restart`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<RestartPolicy>,
    /// `--rm`.
    pub auto_remove: bool,
    /// `--volumes-from`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volumes_from: Option<Vec<String>>,
    /// `--mount`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mounts: Option<Vec<Mount>>,
    /// `--dns`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns: Option<Vec<String>>,
    /// `--dns-option`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns_options: Option<Vec<String>>,
    /// `--dns-search`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns_search: Option<Vec<String>>,
    /// `--add-host`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extra_hosts: Option<Vec<String>>,
    /// `--link`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub links: Option<Vec<String>>,
    /// `-P`.
    pub publish_all_ports: bool,
    /// `--read-only`.
    pub readonly_rootfs: bool,
    /// `-m`, bytes.
    pub memory: i64,
    /// `--cpus` × 10⁹.
    pub nano_cpus: i64,
    /// `--pids-limit`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pids_limit: Option<i64>,
    /// `--memory-swap` (-1: unlimited).
    #[serde(skip_serializing_if = "is_zero")]
    pub memory_swap: i64,
    /// `--memory-reservation`.
    #[serde(skip_serializing_if = "is_zero")]
    pub memory_reservation: i64,
    /// `--memory-swappiness` (-1 or absent: the host's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_swappiness: Option<i64>,
    /// `--oom-kill-disable`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oom_kill_disable: Option<bool>,
    /// `--cpu-shares`.
    #[serde(skip_serializing_if = "is_zero")]
    pub cpu_shares: i64,
    /// `--cpu-period`.
    #[serde(skip_serializing_if = "is_zero")]
    pub cpu_period: i64,
    /// `--cpu-quota`.
    #[serde(skip_serializing_if = "is_zero")]
    pub cpu_quota: i64,
    /// `--cpuset-cpus`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cpuset_cpus: String,
    /// `--cpuset-mems`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cpuset_mems: String,
    /// `--blkio-weight`.
    #[serde(skip_serializing_if = "is_zero_u16")]
    pub blkio_weight: u16,
    /// `--ulimit`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ulimits: Option<Vec<Ulimit>>,
    /// `--log-driver`, `--log-opt`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_config: Option<LogConfig>,
    /// `--runtime`: one of the daemon's runtimes by name (empty: its default).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub runtime: String,
    /// `--privileged`.
    pub privileged: bool,
    /// `--cgroupns`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cgroupns_mode: String,
    /// `--pid`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub pid_mode: String,
    /// `--ipc`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub ipc_mode: String,
    /// `--uts`.
    #[serde(rename = "UTSMode", skip_serializing_if = "String::is_empty")]
    pub uts_mode: String,
    /// `--userns`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub userns_mode: String,
    /// `--shm-size`, bytes (0: Docker's 64 MiB).
    #[serde(skip_serializing_if = "is_zero")]
    pub shm_size: i64,
    /// `--init`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init: Option<bool>,
    /// `--cap-add`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cap_add: Option<Vec<String>>,
    /// `--cap-drop`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cap_drop: Option<Vec<String>>,
    /// `--security-opt`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub security_opt: Option<Vec<String>>,
    /// `--device`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub devices: Option<Vec<crate::opts::device::DeviceMapping>>,
    /// `--device-cgroup-rule`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_cgroup_rules: Option<Vec<String>>,
    /// `--group-add`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_add: Option<Vec<String>>,
    /// `--sysctl`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sysctls: Option<BTreeMap<String, String>>,
    /// `--tmpfs`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tmpfs: Option<BTreeMap<String, String>>,
    /// `--oom-score-adj`.
    #[serde(skip_serializing_if = "is_zero")]
    pub oom_score_adj: i64,
    /// Paths masked in the container (`None`: Docker's defaults; `--security-opt
    /// systempaths=unconfined` sends `[]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub masked_paths: Option<Vec<String>>,
    /// Paths read-only in the container (as `MaskedPaths`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub readonly_paths: Option<Vec<String>>,
    /// The terminal's first size, `[rows, columns]` (the CLI's `run -t`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub console_size: Option<[u32; 2]>,
    /// `--cidfile` (written by the client; kept as given).
    #[serde(rename = "ContainerIDFile", skip_serializing_if = "String::is_empty")]
    pub container_id_file: String,
    /// Every other member, refused unless it holds its zero value (see [`unapplied`]).
    #[serde(flatten)]
    pub rest: BTreeMap<String, serde_json::Value>,
}

/// The members of `rest` (what berth does not read) that ask for something: not null, 0,
/// false, "", [] or {}, and not a value Docker takes as its default (`Isolation: "default"`,
/// `VolumeDriver: "local"`). Such a member would be dropped, so it is
/// refused by name instead.
pub fn unapplied(rest: &BTreeMap<String, serde_json::Value>) -> Vec<String> {
    use serde_json::Value;
    rest.iter()
        .filter(|(k, v)| {
            let zero = match v {
                Value::Null => true,
                Value::Bool(b) => !b,
                Value::Number(n) => n.as_f64() == Some(0.0),
                Value::String(s) => {
                    s.is_empty()
                        || matches!(
                            (k.as_str(), s.as_str()),
                            ("Isolation", "default") | ("VolumeDriver", "local") | ("Cgroup", "")
                        )
                }
                Value::Array(a) => a.is_empty(),
                Value::Object(o) => o.is_empty(),
            };
            !zero
        })
        .map(|(k, v)| format!("{k}={v}"))
        .collect()
}

/// `Config.Healthcheck` (also an image config's): durations in nanoseconds, 0 for "inherit or
/// Docker's default".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct HealthConfig {
    /// `[]` inherit, `["NONE"]` disabled, `["CMD", args...]`, `["CMD-SHELL", command]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test: Option<Vec<String>>,
    /// Between probes (`--health-interval`).
    #[serde(skip_serializing_if = "is_zero")]
    pub interval: i64,
    /// A probe's limit (`--health-timeout`).
    #[serde(skip_serializing_if = "is_zero")]
    pub timeout: i64,
    /// Failures in it do not count (`--health-start-period`).
    #[serde(skip_serializing_if = "is_zero")]
    pub start_period: i64,
    /// Failures in a row that make it unhealthy (`--health-retries`).
    #[serde(skip_serializing_if = "is_zero")]
    pub retries: i64,
}

/// `NetworkingConfig.EndpointsConfig` entry (also `EndpointConfig` of `network connect`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct EndpointConfig {
    /// `--network-alias`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aliases: Option<Vec<String>>,
    /// `--ip`, `--ip6`, `--link-local-ip`.
    #[serde(rename = "IPAMConfig")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipam_config: Option<IpamConfig>,
    /// `network connect --link NAME[:ALIAS]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub links: Option<Vec<String>>,
    /// `--mac-address` (API 1.44+; older clients send `Config.MacAddress`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub mac_address: String,
    /// `--driver-opt`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver_opts: Option<BTreeMap<String, String>>,
    /// Every other member, refused unless it holds its zero value (see [`unapplied`]); what
    /// an inspect echoes (`NetworkID`, `EndpointID`, `IPAddress`, ...) is zero when sent back.
    #[serde(flatten)]
    pub rest: BTreeMap<String, serde_json::Value>,
}

/// `IPAMConfig`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct IpamConfig {
    /// `--ip`.
    #[serde(rename = "IPv4Address", skip_serializing_if = "String::is_empty")]
    pub ipv4_address: String,
    /// `--ip6`.
    #[serde(rename = "IPv6Address", skip_serializing_if = "String::is_empty")]
    pub ipv6_address: String,
    /// `--link-local-ip`.
    #[serde(rename = "LinkLocalIPs", skip_serializing_if = "Option::is_none")]
    pub link_local_ips: Option<Vec<String>>,
    /// Every other member, refused unless it holds its zero value (see [`unapplied`]).
    #[serde(flatten)]
    pub rest: BTreeMap<String, serde_json::Value>,
}

/// `NetworkingConfig`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct NetworkingConfig {
    /// Per network.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoints_config: Option<BTreeMap<String, EndpointConfig>>,
}

/// The body of `POST /containers/create`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct ContainerCreate {
    /// `-h`.
    pub hostname: String,
    /// `--domainname`.
    pub domainname: String,
    /// `--mac-address` as clients of API 1.43 and older send it (for the first network).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub mac_address: String,
    /// `-u`.
    pub user: String,
    /// `--expose` and the ports of `-p`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    /// `-t`.
    pub tty: bool,
    /// `-i`.
    pub open_stdin: bool,
    /// `run -i` without `-d`: the client attaches its stdin.
    pub attach_stdin: bool,
    /// `run -i` (attached).
    pub stdin_once: bool,
    /// `-e`, `--env-file`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    /// Arguments after the image.
    pub cmd: Strings,
    /// `--entrypoint`.
    pub entrypoint: Strings,
    /// The image.
    pub image: String,
    /// `-v /path` (anonymous volumes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volumes: Option<BTreeMap<String, serde_json::Value>>,
    /// `-w`.
    pub working_dir: String,
    /// `-l`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// `--stop-timeout`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_timeout: Option<i64>,
    /// `--stop-signal`.
    pub stop_signal: String,
    /// The shell of `CMD-SHELL` health checks (the image's `SHELL` when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shell: Option<Vec<String>>,
    /// `--health-*`, `--no-healthcheck`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<HealthConfig>,
    /// `run -a stdout` / attached (as sent, echoed by inspect).
    pub attach_stdout: bool,
    /// `run -a stderr` / attached (as sent, echoed by inspect).
    pub attach_stderr: bool,
    /// Host settings.
    pub host_config: HostConfig,
    /// Network endpoints.
    pub networking_config: NetworkingConfig,
    /// Every other member, refused unless it holds its zero value (see [`unapplied`]).
    #[serde(flatten)]
    pub rest: BTreeMap<String, serde_json::Value>,
}

/// Reads a body. A `null` member is read as absent, as Go reads it into a zero value
/// (docker-py sends `"Source": null` for a tmpfs mount, `"Hard": null` for a ulimit).
pub fn parse(body: &[u8]) -> Result<ContainerCreate, serde_json::Error> {
    let mut v: serde_json::Value = serde_json::from_slice(body)?;
    drop_nulls(&mut v, 0);
    serde_json::from_value(v)
}

/// Removes `null` members of objects, at most 64 levels down (serde_json refuses deeper
/// documents anyway).
fn drop_nulls(v: &mut serde_json::Value, depth: usize) {
    if depth > 64 {
        return;
    }
    match v {
        serde_json::Value::Object(m) => {
            m.retain(|_, x| !x.is_null());
            m.values_mut().for_each(|x| drop_nulls(x, depth + 1));
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(|x| drop_nulls(x, depth + 1)),
        _ => {}
    }
}
