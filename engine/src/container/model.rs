//! The container record: what the user asked for ([`CreateOptions`], kept verbatim), what
//! create resolved from it and the image, and the runtime [`State`]. One JSON file per
//! container, replaced atomically on every change.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::restart::RestartPolicy;
use super::state::Status;

/// What `docker create`/`docker run` asks for, as the client sends it (environment entries
/// already `NAME=VALUE`: the client looks up `-e NAME` and reads `--env-file`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CreateOptions {
    /// `--name`; generated when absent.
    pub name: Option<String>,
    /// The image as the user named it.
    pub image: String,
    /// Arguments after the image name.
    pub cmd: Vec<String>,
    /// `--entrypoint` (`""` clears the image's).
    pub entrypoint: Option<String>,
    /// `-e`/`--env-file`, as `NAME=VALUE`.
    pub env: Vec<String>,
    /// `-w`.
    pub workdir: Option<String>,
    /// `-u`.
    pub user: Option<String>,
    /// `-h`.
    pub hostname: Option<String>,
    /// `-l`.
    pub labels: BTreeMap<String, String>,
    /// `-t`.
    pub tty: bool,
    /// `-i`.
    pub open_stdin: bool,
    /// Close the container's stdin when the attached client closes its input (Docker's
    /// `StdinOnce`, what `docker run -i` sets).
    pub stdin_once: bool,
    /// `-v`.
    pub volumes: Vec<String>,
    /// `--mount`.
    pub mounts: Vec<String>,
    /// `--volumes-from CONTAINER[:ro|rw]`.
    pub volumes_from: Vec<String>,
    /// `--network` (`bridge` when absent).
    pub network: Option<String>,
    /// `-p`.
    pub publish: Vec<String>,
    /// `-P`.
    pub publish_all: bool,
    /// `--expose`.
    pub expose: Vec<String>,
    /// `--network-alias`.
    pub network_aliases: Vec<String>,
    /// `--link NAME[:ALIAS]`.
    pub links: Vec<String>,
    /// `--ip`.
    pub ip: Option<String>,
    /// `--dns`.
    pub dns: Vec<String>,
    /// `--dns-search`.
    pub dns_search: Vec<String>,
    /// `--dns-option`.
    pub dns_option: Vec<String>,
    /// `--add-host`.
    pub add_hosts: Vec<String>,
    /// `-m` (`64m`, bytes).
    pub memory: Option<String>,
    /// `--cpus`.
    pub cpus: Option<f64>,
    /// `--pids-limit`.
    pub pids_limit: Option<i64>,
    /// `--ulimit`.
    pub ulimits: Vec<String>,
    /// `--restart`.
    pub restart: Option<String>,
    /// `--rm`.
    pub auto_remove: bool,
    /// `--log-opt max-size=..`, `max-file=..`.
    pub log_opts: BTreeMap<String, String>,
    /// `--read-only`.
    pub read_only: bool,
    /// `--stop-timeout` (seconds; 10 when absent).
    pub stop_timeout: Option<u32>,
}

/// How a container is networked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "mode", content = "of")]
pub enum NetworkMode {
    /// Its own namespace on a network (`bridge` or a user-defined one).
    Network(String),
    /// The host's namespace.
    Host,
    /// Its own namespace with only loopback.
    None,
    /// Another container's namespace (`container:ID`).
    Container(String),
}

impl NetworkMode {
    /// Docker's text (`HostConfig.NetworkMode`).
    pub fn text(&self) -> String {
        match self {
            NetworkMode::Network(n) if n == "bridge" => "default".into(),
            NetworkMode::Network(n) => n.clone(),
            NetworkMode::Host => "host".into(),
            NetworkMode::None => "none".into(),
            NetworkMode::Container(id) => format!("container:{id}"),
        }
    }
}

/// How a container joins a network it was connected to (`docker network connect`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Connection {
    /// `--alias`.
    pub aliases: Vec<String>,
    /// `--ip`.
    pub ip: Option<String>,
}

/// A mount as create resolved it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountPoint {
    /// `volume`, `bind` or `tmpfs`.
    pub kind: String,
    /// The volume's name.
    pub name: Option<String>,
    /// Host path (binds).
    pub source: String,
    /// Path in the container.
    pub destination: String,
    /// Writable.
    pub rw: bool,
    /// Bind propagation.
    pub propagation: String,
    /// Do not copy the image's content into an empty volume.
    pub no_copy: bool,
    /// tmpfs size in bytes.
    pub tmpfs_size: Option<u64>,
    /// tmpfs mode.
    pub tmpfs_mode: Option<u32>,
    /// Created for this container (`-v /path`, image VOLUME): `rm -v` and `--rm` remove it.
    pub anonymous: bool,
}

/// Runtime state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct State {
    /// Lifecycle status.
    pub status: Status,
    /// The init process's host PID while live.
    pub pid: i32,
    /// The shim's PID while live.
    pub shim_pid: i32,
    /// The last exit code.
    pub exit_code: i32,
    /// RFC 3339.
    pub started_at: String,
    /// Milliseconds since the epoch at the last start (for the restart back-off).
    pub started_ms: u64,
    /// RFC 3339.
    pub finished_at: String,
    /// The last run ended by the OOM killer.
    pub oom_killed: bool,
    /// Why the last start failed.
    pub error: String,
    /// Restarts by the policy since the last user start.
    pub restart_count: u32,
    /// The user stopped or killed it (restart policies and `unless-stopped` honour this).
    pub stopped_by_user: bool,
    /// Milliseconds of the current back-off delay.
    pub backoff_ms: u64,
    /// A removal in progress also removes the anonymous volumes (`rm -v`, `--rm`).
    pub remove_volumes: bool,
}

impl State {
    /// Records a run that began at `started_at` (RFC 3339; `started_ms` since the epoch)
    /// with init `pid` under shim `shim_pid`: what the last run left (code, OOM, error,
    /// finish) is cleared.
    pub fn running(&mut self, pid: i32, shim_pid: i32, started_at: String, started_ms: u64) {
        self.status = super::Status::Running;
        self.pid = pid;
        self.shim_pid = shim_pid;
        self.exit_code = 0;
        self.oom_killed = false;
        self.error.clear();
        self.started_at = started_at;
        self.started_ms = started_ms;
        self.finished_at.clear();
    }
}

/// One container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Container {
    /// 64 hex digits.
    pub id: String,
    /// Unique name, without Docker's leading `/`.
    pub name: String,
    /// RFC 3339 with nanoseconds.
    pub created: String,
    /// The image ID (`sha256:...`).
    pub image_id: String,
    /// The layers it runs on (chain IDs, bottom first), held in the image store for as long
    /// as the container exists: an `rmi -f` of its image under a stopped container leaves it
    /// startable, as in Docker. Empty in records written before berth kept them; taken from
    /// the image then.
    #[serde(default)]
    pub layers: Vec<crate::image::reference::Digest>,
    /// The process: entrypoint and command resolved.
    pub args: Vec<String>,
    /// Merged environment.
    pub env: Vec<String>,
    /// Working directory.
    pub workdir: String,
    /// `--user` or the image's user.
    pub user: String,
    /// Hostname.
    pub hostname: String,
    /// Networking.
    pub network_mode: NetworkMode,
    /// Resolved mounts.
    pub mounts: Vec<MountPoint>,
    /// Exposed ports (`80/tcp`), image and `--expose`.
    pub exposed_ports: BTreeSet<String>,
    /// Networks joined with `docker network connect`, beyond the one of `network_mode`.
    #[serde(default)]
    pub connections: BTreeMap<String, Connection>,
    /// `docker network disconnect` took it off the network of `network_mode`.
    #[serde(default)]
    pub primary_disconnected: bool,
    /// Parsed `--restart`.
    pub restart_policy: RestartPolicy,
    /// What was asked.
    pub options: CreateOptions,
    /// Runtime state.
    pub state: State,
}
