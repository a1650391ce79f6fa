//! `run`'s and `create`'s flags, and the Docker create body they make. As the docker CLI,
//! berth parses `-p`, `-e`/`--env-file`, `-v`, `--mount`, `-m` and `--ulimit` itself, so a bad
//! value is refused before anything reaches berthd; the rest is passed on for berthd to judge
//! (it refuses what it cannot honour, by name). Pure but for reading env files, which the
//! caller does.

use std::collections::BTreeMap;

use berth_api::container_create::{
    ContainerCreate, EndpointConfig, HealthConfig, HostConfig, IpamConfig, LogConfig,
    NetworkingConfig, PortBinding, RestartPolicy, Strings,
};
use berth_api::opts::env::{parse_env_arg, parse_env_file};
use berth_api::opts::mount::{Source, parse_mount, parse_size, parse_volume, to_api};
use berth_api::opts::ulimit::parse_ulimit;
use clap::Args;
use portproxy::PortSpec;
use serde_json::json;

/// The flags `run` and `create` share, with Docker's names.
#[derive(Args, Debug, Clone, Default)]
pub struct ContainerArgs {
    /// Assign a name to the container
    #[arg(long)]
    pub name: Option<String>,
    /// Set environment variables
    #[arg(short = 'e', long = "env", value_name = "list")]
    pub env: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long = "env-file", value_name = "list")]
    pub env_file: Vec<String>,
    /// Publish a container's port(s) to the host
    #[arg(short = 'p', long = "publish", value_name = "list")]
    pub publish: Vec<String>,
    /// Publish all exposed ports to random ports
    #[arg(short = 'P', long = "publish-all")]
    pub publish_all: bool,
    /// Expose a port or a range of ports
    #[arg(long, value_name = "list")]
    pub expose: Vec<String>,
    /// Bind mount a volume
    #[arg(short = 'v', long = "volume", value_name = "list")]
    pub volume: Vec<String>,
    /// Attach a filesystem mount to the container
    #[arg(long, value_name = "mount")]
    pub mount: Vec<String>,
    /// Mount volumes from the specified container(s)
    #[arg(long = "volumes-from", value_name = "list")]
    pub volumes_from: Vec<String>,
    /// Connect a container to a network
    #[arg(long, alias = "net", value_name = "network")]
    pub network: Option<String>,
    /// Add network-scoped alias for the container
    #[arg(long = "network-alias", alias = "net-alias", value_name = "list")]
    pub network_alias: Vec<String>,
    /// IPv4 address (e.g., 172.30.100.104)
    #[arg(long)]
    pub ip: Option<String>,
    /// IPv6 address (e.g., 2001:db8::33)
    #[arg(long)]
    pub ip6: Option<String>,
    /// Container IPv4/IPv6 link-local addresses
    #[arg(long = "link-local-ip", value_name = "list")]
    pub link_local_ip: Vec<String>,
    /// Container MAC address (e.g., 92:d0:c6:0a:29:33)
    #[arg(long = "mac-address")]
    pub mac_address: Option<String>,
    /// Add link to another container
    #[arg(long, value_name = "list")]
    pub link: Vec<String>,
    /// Set custom DNS servers
    #[arg(long, value_name = "list")]
    pub dns: Vec<String>,
    /// Set custom DNS search domains
    #[arg(long = "dns-search", value_name = "list")]
    pub dns_search: Vec<String>,
    /// Set DNS options
    #[arg(long = "dns-option", alias = "dns-opt", value_name = "list")]
    pub dns_option: Vec<String>,
    /// Add a custom host-to-IP mapping (host:ip)
    #[arg(long = "add-host", value_name = "list")]
    pub add_host: Vec<String>,
    /// Container host name
    #[arg(short = 'h', long)]
    pub hostname: Option<String>,
    /// Container NIS domain name
    #[arg(long)]
    pub domainname: Option<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long)]
    pub workdir: Option<String>,
    /// Set meta data on a container
    #[arg(short = 'l', long = "label", value_name = "list")]
    pub label: Vec<String>,
    /// Overwrite the default ENTRYPOINT of the image
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Keep STDIN open even if not attached
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Automatically remove the container and its associated anonymous volumes when it exits
    #[arg(long)]
    pub rm: bool,
    /// Restart policy to apply when a container exits
    #[arg(long, default_value = "no")]
    pub restart: String,
    /// Memory limit
    #[arg(short = 'm', long, value_name = "bytes")]
    pub memory: Option<String>,
    /// Number of CPUs
    #[arg(long, value_name = "decimal")]
    pub cpus: Option<f64>,
    /// Tune container pids limit (set -1 for unlimited)
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Ulimit options
    #[arg(long, value_name = "ulimit")]
    pub ulimit: Vec<String>,
    /// Logging driver for the container
    #[arg(long = "log-driver", value_name = "string")]
    pub log_driver: Option<String>,
    /// Log driver options
    #[arg(long = "log-opt", value_name = "list")]
    pub log_opt: Vec<String>,
    /// Runtime to use for this container
    #[arg(long, value_name = "string")]
    pub runtime: Option<String>,
    /// Mount the container's root filesystem as read only
    #[arg(long = "read-only")]
    pub read_only: bool,
    /// Timeout (in seconds) to stop a container
    #[arg(long = "stop-timeout")]
    pub stop_timeout: Option<i64>,
    /// Signal to stop the container
    #[arg(long = "stop-signal")]
    pub stop_signal: Option<String>,
    /// Tune host's OOM preferences (-1000 to 1000)
    #[arg(long = "oom-score-adj", value_name = "int", allow_hyphen_values = true)]
    pub oom_score_adj: Option<i64>,
    /// Command to run to check health
    #[arg(long = "health-cmd", value_name = "string")]
    pub health_cmd: Option<String>,
    /// Time between running the check (ms|s|m|h) (default 0s)
    #[arg(
        long = "health-interval",
        value_name = "duration",
        allow_hyphen_values = true
    )]
    pub health_interval: Option<String>,
    /// Maximum time to allow one check to run (ms|s|m|h) (default 0s)
    #[arg(
        long = "health-timeout",
        value_name = "duration",
        allow_hyphen_values = true
    )]
    pub health_timeout: Option<String>,
    /// Start period for the container to initialize before starting health-retries countdown
    /// (ms|s|m|h) (default 0s)
    #[arg(
        long = "health-start-period",
        value_name = "duration",
        allow_hyphen_values = true
    )]
    pub health_start_period: Option<String>,
    /// Consecutive failures needed to report unhealthy
    #[arg(
        long = "health-retries",
        value_name = "int",
        allow_hyphen_values = true
    )]
    pub health_retries: Option<i64>,
    /// Disable any container-specified HEALTHCHECK
    #[arg(long = "no-healthcheck")]
    pub no_healthcheck: bool,
    /// Give extended privileges to this container
    #[arg(long)]
    pub privileged: bool,
    /// Add Linux capabilities
    #[arg(long = "cap-add", value_name = "list")]
    pub cap_add: Vec<String>,
    /// Drop Linux capabilities
    #[arg(long = "cap-drop", value_name = "list")]
    pub cap_drop: Vec<String>,
    /// Security Options
    #[arg(long = "security-opt", value_name = "list")]
    pub security_opt: Vec<String>,
    /// CPU shares (relative weight)
    #[arg(short = 'c', long = "cpu-shares", value_name = "int")]
    pub cpu_shares: Option<i64>,
    /// Limit CPU CFS (Completely Fair Scheduler) period
    #[arg(long = "cpu-period", value_name = "int")]
    pub cpu_period: Option<i64>,
    /// Limit CPU CFS (Completely Fair Scheduler) quota
    #[arg(long = "cpu-quota", value_name = "int")]
    pub cpu_quota: Option<i64>,
    /// CPUs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-cpus", value_name = "string")]
    pub cpuset_cpus: Option<String>,
    /// MEMs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-mems", value_name = "string")]
    pub cpuset_mems: Option<String>,
    /// Memory soft limit
    #[arg(long = "memory-reservation", value_name = "bytes")]
    pub memory_reservation: Option<String>,
    /// Swap limit equal to memory plus swap: '-1' to enable unlimited swap
    #[arg(long = "memory-swap", value_name = "bytes")]
    pub memory_swap: Option<String>,
    /// Tune container memory swappiness (0 to 100)
    #[arg(
        long = "memory-swappiness",
        value_name = "int",
        allow_hyphen_values = true
    )]
    pub memory_swappiness: Option<i64>,
    /// Disable OOM Killer
    #[arg(long = "oom-kill-disable")]
    pub oom_kill_disable: bool,
    /// Block IO (relative weight), between 10 and 1000, or 0 to disable
    #[arg(long = "blkio-weight", value_name = "uint16")]
    pub blkio_weight: Option<u16>,
    /// Add a host device to the container
    #[arg(long = "device", value_name = "list")]
    pub device: Vec<String>,
    /// Add a rule to the cgroup allowed devices list
    #[arg(long = "device-cgroup-rule", value_name = "list")]
    pub device_cgroup_rule: Vec<String>,
    /// Add additional groups to join
    #[arg(long = "group-add", value_name = "list")]
    pub group_add: Vec<String>,
    /// Mount a tmpfs directory
    #[arg(long = "tmpfs", value_name = "list")]
    pub tmpfs: Vec<String>,
    /// Size of /dev/shm
    #[arg(long = "shm-size", value_name = "bytes")]
    pub shm_size: Option<String>,
    /// Sysctl options
    #[arg(long = "sysctl", value_name = "map")]
    pub sysctl: Vec<String>,
    /// PID namespace to use
    #[arg(long = "pid", value_name = "string")]
    pub pid: Option<String>,
    /// IPC mode to use
    #[arg(long = "ipc", value_name = "string")]
    pub ipc: Option<String>,
    /// UTS namespace to use
    #[arg(long = "uts", value_name = "string")]
    pub uts: Option<String>,
    /// User namespace to use
    #[arg(long = "userns", value_name = "string")]
    pub userns: Option<String>,
    /// Run an init inside the container that forwards signals and reaps processes
    #[arg(long)]
    pub init: bool,
    /// Cgroup namespace to use (host|private)
    #[arg(long = "cgroupns", value_name = "string")]
    pub cgroupns: Option<String>,
    /// Pull image before creating ("always", "missing", "never")
    #[arg(long, default_value = "missing")]
    pub pull: String,
    /// Set by `run -d` and `create` (not a flag): no client attaches at the start.
    #[arg(skip)]
    pub detached: bool,
}

/// Why flags were refused; each message names the value and what would be valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgsError {
    /// A value of a flag.
    #[error("invalid argument {value:?} for \"{flag}\" flag: {why}")]
    Flag {
        /// `--publish`.
        flag: &'static str,
        /// What the user wrote.
        value: String,
        /// What is wrong and what would be valid.
        why: String,
    },
    /// Flags that cannot go together.
    #[error("conflicting options: {0}")]
    Conflict(String),
}

pub(crate) fn bad(flag: &'static str, value: &str, why: impl ToString) -> ArgsError {
    ArgsError::Flag {
        flag,
        value: value.to_string(),
        why: why.to_string(),
    }
}

/// `--health-*` and `--no-healthcheck` as the docker CLI turns them into `Healthcheck`.
fn health_config(args: &ContainerArgs) -> Result<Option<HealthConfig>, ArgsError> {
    let duration = |flag: &'static str, v: &Option<String>| -> Result<i64, ArgsError> {
        let Some(v) = v else { return Ok(0) };
        let ns = berth_common::time::parse_go_duration(v)
            .ok_or_else(|| bad(flag, v, "valid: a duration such as 500ms, 5s, 1m30s"))?;
        if ns < 0 {
            return Err(bad(flag, v, format!("{flag} cannot be negative")));
        }
        Ok(ns)
    };
    let interval = duration("--health-interval", &args.health_interval)?;
    let timeout = duration("--health-timeout", &args.health_timeout)?;
    let start_period = duration("--health-start-period", &args.health_start_period)?;
    let retries = args.health_retries.unwrap_or(0);
    if retries < 0 {
        return Err(bad(
            "--health-retries",
            &retries.to_string(),
            "--health-retries cannot be negative",
        ));
    }
    let cmd = args.health_cmd.clone().filter(|c| !c.is_empty());
    let any = cmd.is_some() || interval != 0 || timeout != 0 || start_period != 0 || retries != 0;
    if args.no_healthcheck {
        if any {
            return Err(ArgsError::Conflict(
                "--no-healthcheck conflicts with --health-* options".into(),
            ));
        }
        return Ok(Some(HealthConfig {
            test: Some(vec!["NONE".into()]),
            ..HealthConfig::default()
        }));
    }
    if !any {
        return Ok(None);
    }
    Ok(Some(HealthConfig {
        test: cmd.map(|c| vec!["CMD-SHELL".into(), c]),
        interval,
        timeout,
        start_period,
        retries,
    }))
}

/// `PortBindings`: per `80/tcp`, its `{HostIp, HostPort}` bindings.
pub type Bindings = BTreeMap<String, Vec<PortBinding>>;

/// `-p`: the create body's `ExposedPorts` keys and `PortBindings`.
pub fn port_bindings(specs: &[String]) -> Result<(Vec<String>, Bindings), ArgsError> {
    let mut exposed = Vec::new();
    let mut bindings = Bindings::new();
    for s in specs {
        let spec: PortSpec = s.parse().map_err(|e| bad("--publish", s, e))?;
        let ip = spec.host_ip.map(|i| i.to_string()).unwrap_or_default();
        for (i, port) in spec.container_ports.iter().enumerate() {
            let key = format!("{port}/{}", spec.proto);
            let host = match spec.host_ports {
                None => String::new(),
                Some(h) if h.len() == spec.container_ports.len() => {
                    (u32::from(h.start) + i as u32).to_string()
                }
                Some(h) if h.start == h.end => h.start.to_string(),
                Some(h) => format!("{}-{}", h.start, h.end),
            };
            if !exposed.contains(&key) {
                exposed.push(key.clone());
            }
            bindings.entry(key).or_default().push(PortBinding {
                host_ip: ip.clone(),
                host_port: host,
            });
        }
    }
    Ok((exposed, bindings))
}

/// `--expose 80`, `--expose 8000-8002/udp`: port keys.
fn expose(specs: &[String]) -> Result<Vec<String>, ArgsError> {
    let mut out = Vec::new();
    for s in specs {
        let (ports, proto) = s.split_once('/').unwrap_or((s, "tcp"));
        if !matches!(proto, "tcp" | "udp") {
            return Err(bad("--expose", s, "the protocol must be tcp or udp"));
        }
        let (a, b) = ports.split_once('-').unwrap_or((ports, ports));
        let why = "valid: PORT[-PORT][/PROTO], ports 1-65535";
        let a: u16 = a.parse().map_err(|_| bad("--expose", s, why))?;
        let b: u16 = b.parse().map_err(|_| bad("--expose", s, why))?;
        if a == 0 || b < a {
            return Err(bad("--expose", s, why));
        }
        out.extend((a..=b).map(|p| format!("{p}/{proto}")));
    }
    Ok(out)
}

/// `--restart`: the body's `RestartPolicy`.
/// The most bytes of a seccomp profile file read.
const MAX_PROFILE: u64 = 1 << 20;

/// `--security-opt` as the docker CLI sends it: `seccomp=FILE` becomes `seccomp=` and the
/// file's JSON, compacted (the daemon never reads the client's files).
fn security_opts(opts: &[String]) -> Result<Vec<String>, ArgsError> {
    use std::io::Read;
    let mut out = Vec::new();
    for o in opts {
        let Some((key, value)) = o.split_once('=').or_else(|| o.split_once(':')) else {
            out.push(o.clone());
            continue;
        };
        if key != "seccomp" || matches!(value, "unconfined" | "builtin") || value.starts_with('{') {
            out.push(o.clone());
            continue;
        }
        let mut text = String::new();
        std::fs::File::open(value)
            .and_then(|f| f.take(MAX_PROFILE + 1).read_to_string(&mut text))
            .map_err(|e| {
                bad(
                    "--security-opt",
                    o,
                    format!("opening seccomp profile ({value}) failed: {e}"),
                )
            })?;
        if text.len() as u64 > MAX_PROFILE {
            return Err(bad(
                "--security-opt",
                o,
                format!("seccomp profile ({value}) is larger than 1 MiB"),
            ));
        }
        let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
            bad(
                "--security-opt",
                o,
                format!("seccomp profile ({value}) is not JSON: {e}"),
            )
        })?;
        out.push(format!("seccomp={json}"));
    }
    Ok(out)
}

/// `--memory` in bytes (0: not given).
pub(crate) fn memory_flag(v: &Option<String>) -> Result<i64, ArgsError> {
    Ok(match v {
        None => 0,
        Some(m) => parse_size(m)
            .filter(|b| *b >= 6 << 20 && *b <= i64::MAX as u64)
            .ok_or_else(|| {
                bad(
                    "--memory",
                    m,
                    "valid: a size of at least 6m such as 64m, 1g, 512k (binary units)",
                )
            })? as i64,
    })
}

/// A size flag that may be `-1` (unlimited) in bytes (0: not given).
pub(crate) fn size_or(flag: &'static str, v: &Option<String>) -> Result<i64, ArgsError> {
    match v.as_deref() {
        None => Ok(0),
        Some("-1") => Ok(-1),
        Some(s) => parse_size(s)
            .filter(|b| *b <= i64::MAX as u64)
            .map(|b| b as i64)
            .ok_or_else(|| bad(flag, s, "valid: a size such as 64m, 1g (binary units)")),
    }
}

/// `--cpus` in billionths of a CPU (0: not given).
pub(crate) fn cpus_flag(v: Option<f64>) -> Result<i64, ArgsError> {
    match v {
        None => Ok(0),
        Some(c) if c > 0.0 && c <= 1024.0 => Ok((c * 1e9) as i64),
        Some(c) => Err(bad("--cpus", &c.to_string(), "valid: a number above 0")),
    }
}

pub(crate) fn restart(spec: &str) -> Result<RestartPolicy, ArgsError> {
    let why = "valid: no, always, unless-stopped, on-failure[:max-retries]";
    let (name, count) = spec.split_once(':').unwrap_or((spec, ""));
    let count: u32 = match (name, count) {
        (_, "") => 0,
        ("on-failure", n) => n
            .parse()
            .map_err(|_| bad("--restart", spec, "max-retries must be a number"))?,
        _ => return Err(bad("--restart", spec, why)),
    };
    if !matches!(name, "no" | "always" | "unless-stopped" | "on-failure") {
        return Err(bad("--restart", spec, why));
    }
    Ok(RestartPolicy {
        name: name.into(),
        maximum_retry_count: i64::from(count),
    })
}

/// The create body of `args` for `image` and `cmd`. `lookup` reads the caller's environment
/// (`-e NAME`), `env_files` are the contents of the `--env-file`s, in order.
pub fn create_body(
    args: &ContainerArgs,
    image: &str,
    cmd: &[String],
    lookup: impl Fn(&str) -> Option<String> + Copy,
    env_files: &[(String, String)],
) -> Result<ContainerCreate, ArgsError> {
    if args.rm && args.restart != "no" {
        return Err(ArgsError::Conflict(format!(
            "--restart {} and --rm (a container removed when it exits cannot be restarted)",
            args.restart
        )));
    }
    let mut env = Vec::new();
    for (file, text) in env_files {
        for (k, v) in parse_env_file(file, text, lookup).map_err(|e| bad("--env-file", file, e))? {
            env.push(format!("{k}={v}"));
        }
    }
    for e in &args.env {
        if let Some((k, v)) = parse_env_arg(e, lookup).map_err(|err| bad("--env", e, err))? {
            env.push(format!("{k}={v}"));
        }
    }
    let (mut exposed, bindings) = port_bindings(&args.publish)?;
    for p in expose(&args.expose)? {
        if !exposed.contains(&p) {
            exposed.push(p);
        }
    }
    let mut binds = Vec::new();
    let mut volumes = BTreeMap::new();
    for v in &args.volume {
        let m = parse_volume(v).map_err(|e| bad("--volume", v, e))?;
        if m.source == Source::Anonymous {
            volumes.insert(m.target, json!({}));
        } else {
            binds.push(v.clone());
        }
    }
    let mounts = args
        .mount
        .iter()
        .map(|m| {
            parse_mount(m)
                .map(|spec| to_api(&spec))
                .map_err(|e| bad("--mount", m, e))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let memory = memory_flag(&args.memory)?;
    let memory_swap = size_or("--memory-swap", &args.memory_swap)?;
    let memory_reservation = size_or("--memory-reservation", &args.memory_reservation)?;
    let shm_size = match &args.shm_size {
        None => 0,
        Some(s) => parse_size(s)
            .filter(|b| *b > 0 && *b <= i64::MAX as u64)
            .ok_or_else(|| {
                bad(
                    "--shm-size",
                    s,
                    "valid: a size above 0 such as 64m, 1g (binary units)",
                )
            })? as i64,
    };
    let mut tmpfs = BTreeMap::new();
    for t in &args.tmpfs {
        let (path, opts) = t.split_once(':').unwrap_or((t.as_str(), ""));
        tmpfs.insert(path.to_string(), opts.to_string());
    }
    let mut sysctls = BTreeMap::new();
    for s in &args.sysctl {
        let (k, v) = s
            .split_once('=')
            .ok_or_else(|| bad("--sysctl", s, "valid: KEY=VALUE, as net.ipv4.ip_forward=1"))?;
        sysctls.insert(k.to_string(), v.to_string());
    }
    let mut ulimits = Vec::new();
    for u in &args.ulimit {
        ulimits.push(parse_ulimit(u).map_err(|e| bad("--ulimit", u, e))?.to_api());
    }
    let mut log_config = BTreeMap::new();
    for o in &args.log_opt {
        let (k, v) = o
            .split_once('=')
            .ok_or_else(|| bad("--log-opt", o, "valid: KEY=VALUE such as max-size=10m"))?;
        log_config.insert(k.into(), v.into());
    }
    let mut labels = BTreeMap::new();
    for l in &args.label {
        let (k, v) = l.split_once('=').unwrap_or((l, ""));
        if k.is_empty() {
            return Err(bad("--label", l, "valid: KEY[=VALUE]"));
        }
        labels.insert(k.into(), v.into());
    }
    let network = args.network.clone().unwrap_or_default();
    let mut endpoints = BTreeMap::new();
    if !args.network_alias.is_empty()
        || args.ip.is_some()
        || args.ip6.is_some()
        || !args.link_local_ip.is_empty()
    {
        let net = if network.is_empty() {
            "bridge"
        } else {
            &network
        };
        endpoints.insert(
            net.to_string(),
            EndpointConfig {
                aliases: Some(args.network_alias.clone()),
                ipam_config: Some(IpamConfig {
                    ipv4_address: args.ip.clone().unwrap_or_default(),
                    ipv6_address: args.ip6.clone().unwrap_or_default(),
                    link_local_ips: Some(args.link_local_ip.clone()).filter(|l| !l.is_empty()),
                    rest: BTreeMap::new(),
                }),
                ..EndpointConfig::default()
            },
        );
    }
    let cpus = cpus_flag(args.cpus)?;
    let healthcheck = health_config(args)?;
    let string = |v: &Option<String>| v.clone().unwrap_or_default();
    Ok(ContainerCreate {
        image: image.into(),
        cmd: if cmd.is_empty() {
            Strings::None
        } else {
            Strings::List(cmd.to_vec())
        },
        entrypoint: match args.entrypoint.as_deref() {
            None => Strings::None,
            // The docker CLI's reset: no entrypoint, and not the image's command either.
            Some("") => Strings::List(vec![String::new()]),
            Some(e) => Strings::List(vec![e.into()]),
        },
        env: Some(env),
        tty: args.tty,
        open_stdin: args.interactive,
        // Detached (`run -d`, `create`): nobody is attached, and stdin stays open for later
        // attachments, as the docker CLI sets it.
        attach_stdin: args.interactive && !args.detached,
        stdin_once: args.interactive && !args.detached,
        exposed_ports: Some(exposed.into_iter().map(|p| (p, json!({}))).collect()),
        volumes: Some(volumes),
        labels: Some(labels),
        hostname: string(&args.hostname),
        domainname: string(&args.domainname),
        mac_address: string(&args.mac_address),
        user: string(&args.user),
        working_dir: string(&args.workdir),
        stop_signal: string(&args.stop_signal),
        stop_timeout: args.stop_timeout,
        healthcheck,
        shell: None,
        attach_stdout: !args.detached,
        attach_stderr: !args.detached,
        rest: BTreeMap::new(),
        host_config: HostConfig {
            binds: Some(binds),
            mounts: Some(mounts),
            network_mode: network,
            port_bindings: Some(bindings.into_iter().map(|(k, v)| (k, Some(v))).collect()),
            publish_all_ports: args.publish_all,
            restart_policy: Some(restart(&args.restart)?),
            auto_remove: args.rm,
            volumes_from: Some(args.volumes_from.clone()),
            dns: Some(args.dns.clone()),
            dns_search: Some(args.dns_search.clone()),
            dns_options: Some(args.dns_option.clone()),
            extra_hosts: Some(args.add_host.clone()),
            links: Some(args.link.clone()),
            readonly_rootfs: args.read_only,
            memory,
            nano_cpus: cpus,
            pids_limit: args.pids_limit,
            ulimits: Some(ulimits),
            log_config: Some(LogConfig {
                kind: string(&args.log_driver),
                config: log_config,
            }),
            runtime: string(&args.runtime),
            privileged: args.privileged,
            cap_add: Some(args.cap_add.clone()),
            cap_drop: Some(args.cap_drop.clone()),
            security_opt: Some(security_opts(&args.security_opt)?),
            cgroupns_mode: string(&args.cgroupns),
            tmpfs: Some(tmpfs),
            shm_size,
            sysctls: Some(sysctls),
            pid_mode: string(&args.pid),
            ipc_mode: string(&args.ipc),
            uts_mode: string(&args.uts),
            userns_mode: string(&args.userns),
            init: args.init.then_some(true),
            devices: Some(
                args.device
                    .iter()
                    .map(|d| {
                        berth_api::opts::device::DeviceMapping::parse(d)
                            .map_err(|e| bad("--device", d, e))
                    })
                    .collect::<Result<_, _>>()?,
            ),
            device_cgroup_rules: Some(args.device_cgroup_rule.clone()),
            group_add: Some(args.group_add.clone()),
            memory_swap,
            memory_reservation,
            memory_swappiness: args.memory_swappiness,
            oom_kill_disable: args.oom_kill_disable.then_some(true),
            cpu_shares: args.cpu_shares.unwrap_or(0),
            cpu_period: args.cpu_period.unwrap_or(0),
            cpu_quota: args.cpu_quota.unwrap_or(0),
            cpuset_cpus: string(&args.cpuset_cpus),
            cpuset_mems: string(&args.cpuset_mems),
            blkio_weight: args.blkio_weight.unwrap_or(0),
            oom_score_adj: args.oom_score_adj.unwrap_or(0),
            masked_paths: None,
            readonly_paths: None,
            console_size: None,
            container_id_file: String::new(),
            rest: BTreeMap::new(),
        },
        networking_config: NetworkingConfig {
            endpoints_config: Some(endpoints),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use serde_json::Value;

    #[derive(Parser)]
    #[command(disable_help_flag = true)]
    struct T {
        #[command(flatten)]
        a: ContainerArgs,
    }

    fn body(args: &[&str]) -> Result<Value, ArgsError> {
        let t = T::try_parse_from(std::iter::once("run").chain(args.iter().copied())).unwrap();
        let lookup = |n: &str| (n == "HOME").then(|| "/root".to_string());
        create_body(
            &t.a,
            "busybox",
            &["sh".into()],
            lookup,
            &[("e.env".into(), "A=1\n# c\nB\n".into())],
        )
        .map(|b| serde_json::to_value(b).unwrap())
    }

    #[test]
    fn ports_as_the_docker_cli_sends_them() {
        let b = body(&[
            "-p",
            "8080:80",
            "-p",
            "127.0.0.1:5353:53/udp",
            "-p",
            "9000-9001:90-91",
            "-p",
            "443",
        ])
        .unwrap();
        let pb = &b["HostConfig"]["PortBindings"];
        assert_eq!(pb["80/tcp"], json!([{"HostIp": "", "HostPort": "8080"}]));
        assert_eq!(
            pb["53/udp"],
            json!([{"HostIp": "127.0.0.1", "HostPort": "5353"}])
        );
        assert_eq!(pb["91/tcp"], json!([{"HostIp": "", "HostPort": "9001"}]));
        assert_eq!(pb["443/tcp"], json!([{"HostIp": "", "HostPort": ""}]));
        for k in ["80/tcp", "53/udp", "90/tcp", "91/tcp", "443/tcp"] {
            assert!(b["ExposedPorts"].get(k).is_some(), "{k}");
        }
        let e = body(&["-p", "8080:99999"]).unwrap_err().to_string();
        assert!(e.contains("8080:99999") && e.contains("--publish"), "{e}");
    }

    #[test]
    fn env_volumes_and_limits() {
        let b = body(&[
            "-e",
            "X=1",
            "-e",
            "HOME",
            "-e",
            "UNSET",
            "--env-file",
            "e.env",
            "-v",
            "/data",
            "-v",
            "vol:/v:ro",
            "-m",
            "64m",
            "--ulimit",
            "nofile=100:200",
            "--cpus",
            "1.5",
            "-l",
            "a=b",
            "--restart",
            "on-failure:3",
            "--entrypoint",
            "",
        ])
        .unwrap();
        // --env-file entries come first, then -e, as Docker merges them; unset names drop.
        assert_eq!(b["Env"], json!(["A=1", "X=1", "HOME=/root"]));
        assert_eq!(b["Volumes"], json!({"/data": {}}));
        assert_eq!(b["HostConfig"]["Binds"], json!(["vol:/v:ro"]));
        assert_eq!(b["HostConfig"]["Memory"], 64 << 20);
        assert_eq!(b["HostConfig"]["NanoCpus"], 1_500_000_000i64);
        assert_eq!(
            b["HostConfig"]["Ulimits"],
            json!([{"Name": "nofile", "Soft": 100, "Hard": 200}])
        );
        assert_eq!(
            b["HostConfig"]["RestartPolicy"],
            json!({"Name": "on-failure", "MaximumRetryCount": 3})
        );
        assert_eq!(b["Labels"], json!({"a": "b"}));
        assert_eq!(b["Entrypoint"], json!([""]));
        assert_eq!(b["Cmd"], json!(["sh"]));
    }

    #[test]
    fn detached_runs_attach_nothing() {
        let t = T::try_parse_from(["run", "-i"]).unwrap();
        let mut a = t.a;
        let b = serde_json::to_value(create_body(&a, "bb", &[], |_| None, &[]).unwrap()).unwrap();
        assert_eq!(
            (b["AttachStdin"].as_bool(), b["StdinOnce"].as_bool()),
            (Some(true), Some(true))
        );
        a.detached = true;
        let b = serde_json::to_value(create_body(&a, "bb", &[], |_| None, &[]).unwrap()).unwrap();
        assert_eq!(
            (b["OpenStdin"].as_bool(), b["StdinOnce"].as_bool()),
            (Some(true), Some(false))
        );
        assert_eq!(b["AttachStdin"], false);
    }

    #[test]
    fn bad_values_are_named() {
        for (args, needle) in [
            (vec!["-v", "relative:"], "relative:"),
            (vec!["-m", "lots"], "lots"),
            (vec!["-m", "1k"], "at least 6m"),
            (vec!["--restart", "sometimes"], "sometimes"),
            (vec!["--restart", "always:3"], "always:3"),
            (vec!["--mount", "type=nope,target=/x"], "type=nope"),
            (vec!["--ulimit", "bogus=1"], "bogus=1"),
            (vec!["-e", "A B=1"], "A B=1"),
            (vec!["--expose", "70000"], "70000"),
            (vec!["--rm", "--restart", "always"], "--rm"),
        ] {
            let e = body(&args).unwrap_err().to_string();
            assert!(e.contains(needle), "{args:?}: {e}");
        }
    }

    #[test]
    fn mounts_network_and_aliases() {
        let b = body(&[
            "--mount",
            "type=tmpfs,target=/t,tmpfs-size=1m",
            "--mount",
            "type=bind,source=/h,target=/c,readonly",
            "--network",
            "net1",
            "--network-alias",
            "web",
            "--ip",
            "10.1.0.9",
        ])
        .unwrap();
        assert_eq!(b["HostConfig"]["Mounts"][0]["Type"], "tmpfs");
        assert_eq!(
            b["HostConfig"]["Mounts"][0]["TmpfsOptions"]["SizeBytes"],
            1 << 20
        );
        assert_eq!(
            b["HostConfig"]["Mounts"][1],
            json!({"Type": "bind", "Source": "/h", "Target": "/c", "ReadOnly": true, "BindOptions": {"Propagation": "rprivate"}})
        );
        assert_eq!(b["HostConfig"]["NetworkMode"], "net1");
        assert_eq!(
            b["NetworkingConfig"]["EndpointsConfig"]["net1"],
            json!({"Aliases": ["web"], "IPAMConfig": {"IPv4Address": "10.1.0.9"}})
        );
    }
}
