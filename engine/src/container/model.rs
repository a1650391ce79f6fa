//! The container record: what the user asked for ([`CreateOptions`], kept verbatim), what
//! create resolved from it and the image, and the runtime [`State`]. One JSON file per
//! container, replaced atomically on every change.

use std::collections::{BTreeMap, BTreeSet};

use berth_api::opts::device::DeviceMapping;
use berth_api::opts::mount::MountSpec;
use berth_api::opts::ulimit::UlimitSpec;
use portproxy::PortSpec;
use serde::{Deserialize, Serialize};

use super::restart::RestartPolicy;
use super::state::Status;

/// What a container's `Config` shows of its command, as Docker merges the caller's with the
/// image's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConfigCommand {
    /// `Config.Entrypoint`.
    pub entrypoint: Option<Vec<String>>,
    /// `Config.Cmd`.
    pub cmd: Option<Vec<String>>,
    /// `Config.WorkingDir` (empty when neither set one).
    pub working_dir: String,
}

/// An entrypoint as now kept (a list), or as records kept it before (one string).
fn string_or_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        One(String),
        List(Vec<String>),
    }
    Ok(match Option::<Either>::deserialize(d)? {
        None => None,
        Some(Either::One(s)) => Some(vec![s]),
        Some(Either::List(v)) => Some(v),
    })
}

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
    /// The entrypoint the client sent (`--entrypoint X` is `[X]`; see
    /// [`crate::runtime::command::config`] for `[]` and `[""]`). Records written when this was
    /// one string are read as that string's list.
    #[serde(deserialize_with = "string_or_list")]
    pub entrypoint: Option<Vec<String>>,
    /// `-e`/`--env-file`, as `NAME=VALUE`.
    pub env: Vec<String>,
    /// `-w`.
    pub workdir: Option<String>,
    /// `-u`.
    pub user: Option<String>,
    /// `-h`.
    pub hostname: Option<String>,
    /// `--domainname` (the UTS namespace's NIS domain name).
    pub domainname: Option<String>,
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
    /// `--mount` (and API `Mounts`).
    #[serde(deserialize_with = "legacy::mounts")]
    pub mounts: Vec<MountSpec>,
    /// `--volumes-from CONTAINER[:ro|rw]`.
    pub volumes_from: Vec<String>,
    /// `--network` (`bridge` when absent).
    pub network: Option<String>,
    /// `-p` (and API `PortBindings`).
    pub publish: Vec<PortSpec>,
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
    /// `--ip6`.
    pub ip6: Option<String>,
    /// `--link-local-ip`.
    pub link_local_ips: Vec<String>,
    /// `--mac-address`.
    pub mac_address: Option<String>,
    /// The first network's `--driver-opt`.
    pub endpoint_driver_opts: BTreeMap<String, String>,
    /// The first network's endpoint links (`EndpointsConfig.N.Links`, or a `network connect
    /// --link` back to it); `--link` is [`Self::links`].
    pub endpoint_links: Vec<String>,
    /// `--dns`.
    pub dns: Vec<String>,
    /// `--dns-search`.
    pub dns_search: Vec<String>,
    /// `--dns-option`.
    pub dns_option: Vec<String>,
    /// `--add-host`.
    pub add_hosts: Vec<String>,
    /// `-m`, in bytes.
    #[serde(deserialize_with = "legacy::memory")]
    pub memory: Option<u64>,
    /// `--cpus`.
    pub cpus: Option<f64>,
    /// `--pids-limit`.
    pub pids_limit: Option<i64>,
    /// `--ulimit`.
    pub ulimits: Vec<UlimitSpec>,
    /// `--restart`.
    #[serde(deserialize_with = "legacy::restart")]
    pub restart: RestartPolicy,
    /// `--rm`.
    pub auto_remove: bool,
    /// `--oom-score-adj`.
    pub oom_score_adj: i64,
    /// `MaskedPaths` given (`None`: the defaults).
    pub masked_paths: Option<Vec<String>>,
    /// `ReadonlyPaths` given (`None`: the defaults).
    pub readonly_paths: Option<Vec<String>>,
    /// `ConsoleSize` as sent (`[rows, columns]`).
    pub console_size: Option<[u32; 2]>,
    /// `ContainerIDFile` as sent (the client writes it).
    pub container_id_file: String,
    /// `AttachStdout`, `AttachStderr` as sent.
    pub attach_stdout: bool,
    /// See `attach_stdout`.
    pub attach_stderr: bool,
    /// `Config.Env` as Docker records it: the client's entries, then the image's it does not
    /// set (the process also gets `PATH` and `HOSTNAME` when missing). `None` in records
    /// written before berth kept it.
    pub config_env: Option<Vec<String>>,
    /// `Config.Entrypoint`, `Config.Cmd` and `Config.WorkingDir` as Docker records them
    /// (`None` in records written before berth kept them: the process's arguments are shown as
    /// the command, its directory as the working directory).
    pub config_command: Option<ConfigCommand>,
    /// `--stop-signal`, else the image's `STOPSIGNAL` (`None`: SIGTERM).
    pub stop_signal: Option<String>,
    /// `--runtime`: one of the daemon's runtimes by name; create records the default's
    /// name when none is given (empty in records from before runtimes had names).
    pub runtime: String,
    /// `--log-driver`: `json-file` (also when empty), `local` or `none`.
    pub log_driver: String,
    /// `--log-opt max-size=..`, `max-file=..`.
    pub log_opts: BTreeMap<String, String>,
    /// `--read-only`.
    pub read_only: bool,
    /// `--stop-timeout` (seconds; 10 when absent).
    pub stop_timeout: Option<u32>,
    /// `--privileged`.
    pub privileged: bool,
    /// `--cap-add`, as given.
    pub cap_add: Vec<String>,
    /// `--cap-drop`, as given.
    pub cap_drop: Vec<String>,
    /// `--security-opt`, as given (a seccomp profile as its JSON text).
    pub security_opt: Vec<String>,
    /// `--cgroupns host|private`; create records the host's default when none is given.
    pub cgroupns: String,
    /// `--pid host|container:NAME` (empty: a namespace of its own).
    pub pid_mode: String,
    /// `--ipc private|shareable|host|none`; create records `private` when none is given.
    pub ipc_mode: String,
    /// `--uts host` (empty: a namespace of its own).
    pub uts_mode: String,
    /// `--tmpfs PATH[:OPTIONS]`, by path.
    pub tmpfs: BTreeMap<String, String>,
    /// `--shm-size`, bytes; create records Docker's 64 MiB when none is given.
    pub shm_size: Option<u64>,
    /// `--sysctl`.
    pub sysctls: BTreeMap<String, String>,
    /// `--init`.
    pub init: Option<bool>,
    /// `--health-*` merged over the image's `HEALTHCHECK` at create (`None`: neither has one).
    pub healthcheck: Option<berth_api::container_create::HealthConfig>,
    /// The image's `SHELL` (what `CMD-SHELL` health checks run under; empty: `/bin/sh -c`).
    pub shell: Vec<String>,
    /// `--device`.
    pub devices: Vec<DeviceMapping>,
    /// `--device-cgroup-rule`.
    pub device_cgroup_rules: Vec<String>,
    /// `--group-add`.
    pub group_add: Vec<String>,
    /// `--memory-swap`, bytes (-1: unlimited); create records Docker's default (twice the
    /// memory limit) when a memory limit is given without it.
    pub memory_swap: Option<i64>,
    /// `--memory-reservation`, bytes.
    pub memory_reservation: Option<u64>,
    /// `--memory-swappiness`.
    pub memory_swappiness: Option<i64>,
    /// `--oom-kill-disable`.
    pub oom_kill_disable: Option<bool>,
    /// `--cpu-shares`.
    pub cpu_shares: Option<i64>,
    /// `--cpu-period`.
    pub cpu_period: Option<i64>,
    /// `--cpu-quota`.
    pub cpu_quota: Option<i64>,
    /// `--cpuset-cpus`.
    pub cpuset_cpus: String,
    /// `--cpuset-mems`.
    pub cpuset_mems: String,
    /// `--blkio-weight`.
    pub blkio_weight: Option<u16>,
    /// `--userns` (only `host`, the daemon's only mode: berth does not remap users).
    pub userns_mode: String,
}

/// Records written before the options were typed held these as `docker run` text (`--mount`
/// CSV, `-m 64m`, `--restart on-failure:3`); such text reads through the same parsers.
mod legacy {
    use berth_api::opts::mount::{MountSpec, parse_mount, parse_size};
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer};

    use super::RestartPolicy;

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either<T> {
        Text(String),
        Typed(T),
    }

    pub fn mounts<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<MountSpec>, D::Error> {
        Vec::<Either<MountSpec>>::deserialize(d)?
            .into_iter()
            .map(|m| match m {
                Either::Text(t) => parse_mount(&t).map_err(D::Error::custom),
                Either::Typed(m) => Ok(m),
            })
            .collect()
    }

    pub fn memory<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        match Option::<Either<u64>>::deserialize(d)? {
            None => Ok(None),
            Some(Either::Typed(n)) => Ok(Some(n)),
            Some(Either::Text(t)) => parse_size(&t)
                .map(Some)
                .ok_or_else(|| D::Error::custom(format!("invalid memory {t:?}"))),
        }
    }

    pub fn restart<'de, D: Deserializer<'de>>(d: D) -> Result<RestartPolicy, D::Error> {
        match Option::<Either<RestartPolicy>>::deserialize(d)? {
            None => Ok(RestartPolicy::No),
            Some(Either::Typed(p)) => Ok(p),
            Some(Either::Text(t)) => RestartPolicy::parse(&t).map_err(D::Error::custom),
        }
    }
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
    /// Its own namespace on the userspace network stack: the canonical mode text
    /// (`slirp` or `slirp:OPTION=VALUE,...`).
    Slirp(String),
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
            NetworkMode::Slirp(mode) => mode.clone(),
        }
    }
}

/// What a container asks of one of its networks' endpoints, as the client sent it: for the
/// network of `--network` (kept in [`CreateOptions`], see [`CreateOptions::primary_endpoint`])
/// and for each `docker network connect`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Connection {
    /// `--alias`.
    pub aliases: Vec<String>,
    /// `--ip`.
    pub ip: Option<String>,
    /// `--ip6`.
    pub ip6: Option<String>,
    /// `--link-local-ip`: more addresses on the interface.
    pub link_local_ips: Vec<String>,
    /// `--mac-address`.
    pub mac: Option<String>,
    /// `--driver-opt` (kept and shown: the bridge driver has no endpoint options).
    pub driver_opts: BTreeMap<String, String>,
    /// `network connect --link NAME[:ALIAS]` (the first network's are `HostConfig.Links`).
    pub links: Vec<String>,
}

impl Connection {
    /// Whether it asks for an IPv4 or IPv6 address of its own (Docker refuses that on the
    /// default bridge; link-local addresses it takes there).
    pub fn wants_address(&self) -> bool {
        self.ip.is_some() || self.ip6.is_some()
    }
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
    /// Its health check's results (containers with one, once started).
    pub health: Option<super::health::Health>,
    /// What the userspace network stack of its last run publishes (`--network slirp`).
    pub slirp_published: Vec<portproxy::Mapping>,
}

impl State {
    /// Records a run that began at `started_at` (RFC 3339; `started_ms` since the epoch)
    /// with init `pid` under shim `shim_pid`: what the last run left (code, OOM, error,
    /// finish) is cleared.
    /// `checked`: it has a health check (its health starts over as `starting`).
    pub fn running(
        &mut self,
        pid: i32,
        shim_pid: i32,
        started_at: String,
        started_ms: u64,
        checked: bool,
    ) {
        self.status = super::Status::Running;
        self.pid = pid;
        self.shim_pid = shim_pid;
        self.exit_code = 0;
        self.oom_killed = false;
        self.error.clear();
        self.started_at = started_at;
        self.started_ms = started_ms;
        self.finished_at.clear();
        // Each run starts unproven; the results of earlier runs stay in the log, as Docker's.
        if checked {
            let h = self.health.get_or_insert_with(Default::default);
            h.status = super::health::HealthStatus::Starting;
            h.failing_streak = 0;
        }
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

impl CreateOptions {
    /// What it asks of the endpoint on its `--network`.
    pub fn primary_endpoint(&self) -> Connection {
        Connection {
            aliases: self.network_aliases.clone(),
            ip: self.ip.clone(),
            ip6: self.ip6.clone(),
            link_local_ips: self.link_local_ips.clone(),
            mac: self.mac_address.clone(),
            driver_opts: self.endpoint_driver_opts.clone(),
            links: self.endpoint_links.clone(),
        }
    }

    /// Replaces what it asks of the endpoint on its `--network` (a reconnect's settings);
    /// `--link`s stay.
    pub fn set_primary_endpoint(&mut self, c: &Connection) {
        self.network_aliases = c.aliases.clone();
        self.ip = c.ip.clone();
        self.ip6 = c.ip6.clone();
        self.link_local_ips = c.link_local_ips.clone();
        self.mac_address = c.mac.clone();
        self.endpoint_driver_opts = c.driver_opts.clone();
        self.endpoint_links = c.links.clone();
    }

    /// Whether its log driver keeps a log (all but `none`).
    pub fn keeps_log(&self) -> bool {
        self.log_driver != "none"
    }

    /// `max-size` and `max-file` of its log: as given, else its driver's defaults (`local`:
    /// 20 MB in 5 files, as Docker's; `json-file`: one file without limit).
    pub fn log_rotation(&self) -> (Option<u64>, u32) {
        let local = self.log_driver == "local";
        let size = self
            .log_opts
            .get("max-size")
            .and_then(|s| berth_api::opts::mount::parse_size(s))
            .or(local.then_some(20 << 20));
        let files = self
            .log_opts
            .get("max-file")
            .and_then(|s| s.parse().ok())
            .unwrap_or(if local { 5 } else { 1 });
        (size, files)
    }
}

impl Container {
    /// Its health check as it runs (`None`: it has none).
    pub fn health_probe(&self) -> Option<super::health::Probe> {
        super::health::Probe::from_config(self.options.healthcheck.as_ref(), &self.options.shell)
    }

    /// The networks its record puts it on, each with the aliases and address asked for it:
    /// the one of `--network` (unless disconnected), then those of `network connect`. `host`
    /// and `none` are networks here too, as Docker's inspect lists them.
    pub fn configured_networks(&self) -> Vec<(String, Connection)> {
        let mut out = Vec::new();
        match &self.network_mode {
            NetworkMode::Network(n) if !self.primary_disconnected => {
                out.push((n.clone(), self.options.primary_endpoint()))
            }
            NetworkMode::Host => out.push(("host".into(), Connection::default())),
            NetworkMode::None => out.push(("none".into(), Connection::default())),
            NetworkMode::Slirp(_) => out.push((
                netcore::usernet::options::MODE.into(),
                Connection::default(),
            )),
            _ => {}
        }
        for (n, conn) in &self.connections {
            out.push((n.clone(), conn.clone()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_options_read_back_and_legacy_text_records_still_read() {
        let typed = CreateOptions {
            image: "bb".into(),
            publish: vec!["127.0.0.1:8080:80".parse().unwrap()],
            mounts: vec![
                berth_api::opts::mount::parse_mount("type=tmpfs,target=/t,tmpfs-size=1m").unwrap(),
            ],
            memory: Some(64 << 20),
            ulimits: vec!["nofile=100:200".parse().unwrap()],
            restart: RestartPolicy::OnFailure { max: 3 },
            ..CreateOptions::default()
        };
        let json = serde_json::to_string(&typed).unwrap();
        assert_eq!(serde_json::from_str::<CreateOptions>(&json).unwrap(), typed);
        // As a record written before the options were typed holds them.
        let legacy = r#"{"image": "bb", "publish": ["127.0.0.1:8080:80"],
            "mounts": ["type=tmpfs,target=/t,tmpfs-size=1m"], "memory": "64m",
            "ulimits": ["nofile=100:200"], "restart": "on-failure:3"}"#;
        assert_eq!(
            serde_json::from_str::<CreateOptions>(legacy).unwrap(),
            typed
        );
        let none = r#"{"image": "bb", "memory": null, "restart": null}"#;
        let o: CreateOptions = serde_json::from_str(none).unwrap();
        assert_eq!((o.memory, o.restart), (None, RestartPolicy::No));
        let bad = r#"{"image": "bb", "restart": "sometimes"}"#;
        let e = serde_json::from_str::<CreateOptions>(bad)
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"sometimes\""), "{e}");
    }
}
