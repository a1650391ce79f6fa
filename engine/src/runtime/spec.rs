//! The OCI runtime spec (`config.json`) of a container, as Docker writes it: default
//! namespaces, Docker's default capabilities, masked and read-only paths, `/dev`, `/dev/pts`,
//! `/dev/shm`, `/dev/mqueue`, `/sys` read-only, the generated `/etc/hostname`, `/etc/hosts` and
//! `/etc/resolv.conf` bound in, the user's mounts, rlimits and cgroup resources. A pure function
//! of [`SpecInput`]; the result parses as oci-spec's `Spec`.

use berth_api::opts::device::CgroupRule;
use berth_api::opts::ulimit::UlimitSpec;
use serde_json::{Value, json};

use super::devices::HostDevice;
use super::user::Ids;
use crate::container::namespaces::Ns;

/// Paths Docker hides from containers (but privileged ones).
pub const MASKED_PATHS: [&str; 12] = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths Docker makes read-only (but for privileged containers).
pub const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// A mount as the runtime takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OciMount {
    /// Inside the container.
    pub destination: String,
    /// `bind`, `tmpfs`, ...
    pub kind: String,
    /// Host path or file system source.
    pub source: String,
    /// Mount options.
    pub options: Vec<String>,
}

impl OciMount {
    /// A recursive bind mount of `source` at `destination`.
    pub fn bind(source: &str, destination: &str, read_only: bool, propagation: &str) -> OciMount {
        let mut options = vec!["rbind".to_string(), propagation.to_string()];
        if read_only {
            options.push("ro".into());
        }
        OciMount {
            destination: destination.into(),
            kind: "bind".into(),
            source: source.into(),
            options,
        }
    }
}

/// A resource limit (`--ulimit nofile=1024:2048`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rlimit {
    /// `RLIMIT_NOFILE`, ...
    pub kind: String,
    /// Soft limit.
    pub soft: u64,
    /// Hard limit.
    pub hard: u64,
}

/// A container's `/dev/shm` in the spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DevShm {
    /// None.
    None,
    /// A tmpfs of this many bytes, mounted by the runtime.
    Tmpfs(u64),
    /// This host directory (a tmpfs berth mounted), bound in.
    Bind(String),
}

/// Everything the spec is made from.
#[derive(Debug, Clone)]
pub struct SpecInput {
    /// Bounding, effective and permitted capabilities.
    pub caps: Vec<String>,
    /// `linux.seccomp` (none: unfiltered).
    pub seccomp: Option<Value>,
    /// `--security-opt no-new-privileges`.
    pub no_new_privileges: bool,
    /// `--security-opt apparmor=`.
    pub apparmor: Option<String>,
    /// `--privileged`: nothing masked or read-only, `/sys` and cgroups writable, every device.
    pub privileged: bool,
    /// `MaskedPaths` and `ReadonlyPaths` given (`None`: Docker's defaults, none when
    /// privileged).
    pub masked_paths: Option<Vec<String>>,
    /// See `masked_paths`.
    pub readonly_paths: Option<Vec<String>>,
    /// `--oom-score-adj`.
    pub oom_score_adj: i64,
    /// Device nodes created in the container's `/dev` (the host's, when privileged).
    pub devices: Vec<HostDevice>,
    /// Devices the container may use beyond the runtime's defaults (`--device`,
    /// `--device-cgroup-rule`).
    pub device_rules: Vec<CgroupRule>,
    /// A cgroup namespace of its own.
    pub cgroupns: bool,
    /// PID namespace.
    pub pid_ns: Ns,
    /// IPC namespace (the host's: the host's `/dev/shm` and `/dev/mqueue`).
    pub ipc_ns: Ns,
    /// UTS namespace (the host's: no hostname set).
    pub uts_ns: Ns,
    /// `/dev/shm`: none, a tmpfs of the size, or a host directory bound in.
    pub shm: DevShm,
    /// `--sysctl`.
    pub sysctls: std::collections::BTreeMap<String, String>,
    /// The process arguments.
    pub args: Vec<String>,
    /// `NAME=VALUE` entries.
    pub env: Vec<String>,
    /// Working directory (absolute).
    pub cwd: String,
    /// Who runs it.
    pub user: Ids,
    /// The container's hostname.
    pub hostname: String,
    /// `--domainname`.
    pub domainname: Option<String>,
    /// `-t`.
    pub terminal: bool,
    /// `--read-only`.
    pub read_only_root: bool,
    /// An existing network namespace to join (`None`: a new, empty one).
    pub netns: Option<String>,
    /// `--network host`: no network namespace at all (`netns` is ignored).
    pub host_network: bool,
    /// Directory holding the generated `hostname`, `hosts` and `resolv.conf`.
    pub etc_dir: Option<String>,
    /// The user's mounts, in order.
    pub mounts: Vec<OciMount>,
    /// `--ulimit`s, already checked against the host's hard limits.
    pub rlimits: Vec<Rlimit>,
    /// The host's hard RLIMIT_NOFILE: the default NOFILE limit is capped by it.
    pub host_nofile_hard: u64,
    /// `linux.resources` but devices: CPU, memory, PIDs, block I/O
    /// ([`crate::container::resources::oci`]).
    pub resources: Value,
    /// The cgroup path (`/berth/<id>`).
    pub cgroups_path: String,
}

/// The default file descriptor limit Docker's daemon gives containers (when the host allows).
const DEFAULT_NOFILE: u64 = 1_048_576;

/// The spec as JSON.
pub fn spec(i: &SpecInput) -> Value {
    let caps = &i.caps;
    let rw = |ro: bool| if ro { "ro" } else { "rw" };
    let mut rlimits: Vec<Value> = i
        .rlimits
        .iter()
        .map(|r| json!({"type": r.kind, "soft": r.soft, "hard": r.hard}))
        .collect();
    if !i.rlimits.iter().any(|r| r.kind == "RLIMIT_NOFILE") {
        let n = DEFAULT_NOFILE.min(i.host_nofile_hard);
        rlimits.push(json!({"type": "RLIMIT_NOFILE", "soft": n, "hard": n}));
    }
    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", rw(!i.privileged)]}),
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": [rw(!i.privileged), "nosuid", "noexec", "nodev"]}),
    ];
    if i.ipc_ns == Ns::Host {
        // The host's IPC namespace: its POSIX queues and shared memory too, as Docker.
        for d in ["/dev/mqueue", "/dev/shm"] {
            mounts.push(json!({"destination": d, "type": "bind", "source": d, "options": ["rbind", "nosuid", "noexec", "nodev"]}));
        }
    } else {
        mounts.push(json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]}));
        match &i.shm {
            DevShm::None => {}
            DevShm::Tmpfs(size) => {
                mounts.push(json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", format!("size={size}")]}));
            }
            DevShm::Bind(dir) => {
                mounts.push(json!({"destination": "/dev/shm", "type": "bind", "source": dir, "options": ["rbind", "rprivate", "nosuid", "noexec", "nodev"]}));
            }
        }
    }
    if let Some(dir) = &i.etc_dir {
        // Read-only with a read-only root, as Docker mounts them.
        let mode = if i.read_only_root { "ro" } else { "rw" };
        for f in ["hostname", "hosts", "resolv.conf"] {
            mounts.push(json!({"destination": format!("/etc/{f}"), "type": "bind", "source": format!("{dir}/{f}"), "options": ["rbind", "rprivate", mode]}));
        }
    }
    for m in &i.mounts {
        mounts.push(json!({"destination": m.destination, "type": m.kind, "source": m.source, "options": m.options}));
    }
    let mut namespaces = Vec::new();
    for (kind, ns) in [("pid", &i.pid_ns), ("ipc", &i.ipc_ns), ("uts", &i.uts_ns)] {
        match ns {
            Ns::Private => namespaces.push(json!({"type": kind})),
            Ns::Host => {}
            Ns::Join(path) => namespaces.push(json!({"type": kind, "path": path})),
        }
    }
    namespaces.push(json!({"type": "mount"}));
    if i.cgroupns {
        namespaces.push(json!({"type": "cgroup"}));
    }
    match &i.netns {
        _ if i.host_network => {}
        Some(p) => namespaces.push(json!({"type": "network", "path": p})),
        None => namespaces.push(json!({"type": "network"})),
    }
    let mut device_rules = vec![json!({"allow": i.privileged, "access": "rwm"})];
    for r in &i.device_rules {
        let mut rule = json!({"allow": true, "type": r.kind.to_string(), "access": r.access});
        if let Some(m) = r.major {
            rule["major"] = json!(m);
        }
        if let Some(m) = r.minor {
            rule["minor"] = json!(m);
        }
        device_rules.push(rule);
    }
    let mut resources = if i.resources.is_object() {
        i.resources.clone()
    } else {
        json!({})
    };
    resources["devices"] = json!(device_rules);
    let defaults = |given: &Option<Vec<String>>, all: &[&str]| -> Vec<String> {
        match given {
            Some(g) => g.clone(),
            None if i.privileged => Vec::new(),
            None => all.iter().map(|s| s.to_string()).collect(),
        }
    };
    let masked = defaults(&i.masked_paths, &MASKED_PATHS);
    let readonly = defaults(&i.readonly_paths, &READONLY_PATHS);
    let devices: Vec<Value> = i
        .devices
        .iter()
        .map(|d| json!({"path": d.path, "type": d.kind.to_string(), "major": d.major, "minor": d.minor, "fileMode": d.mode, "uid": d.uid, "gid": d.gid}))
        .collect();
    let mut spec = json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": i.terminal,
            "user": {"uid": i.user.uid, "gid": i.user.gid, "additionalGids": i.user.additional},
            "args": i.args,
            "env": i.env,
            "cwd": i.cwd,
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "rlimits": rlimits,
            "noNewPrivileges": i.no_new_privileges,
            "oomScoreAdj": i.oom_score_adj,
        },
        "root": {"path": "rootfs", "readonly": i.read_only_root},
        "hostname": i.hostname,
        "mounts": mounts,
        "linux": {
            "namespaces": namespaces,
            "maskedPaths": masked,
            "readonlyPaths": readonly,
            "resources": resources,
            "cgroupsPath": i.cgroups_path,
            "devices": devices,
        },
    });
    let mut sysctls = i.sysctls.clone();
    if i.uts_ns == Ns::Host {
        spec.as_object_mut().expect("an object").remove("hostname");
    } else if let Some(d) = &i.domainname {
        // As Docker sets it: the UTS namespace's sysctl (runc 1.1 has no domainname field).
        sysctls.insert("kernel.domainname".into(), d.clone());
    }
    if !sysctls.is_empty() {
        spec["linux"]["sysctl"] = json!(sysctls);
    }
    if let Some(s) = &i.seccomp {
        spec["linux"]["seccomp"] = s.clone();
    }
    if let Some(p) = &i.apparmor {
        spec["process"]["apparmorProfile"] = json!(p);
    }
    spec
}

/// A `--ulimit` above what the host allows (berth has no CAP_SYS_RESOURCE to raise it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ulimit {spec:?}: hard limit {hard} is above the host's hard limit {host} for {name}")]
pub struct UlimitError {
    /// The ulimit, as `--ulimit` text.
    pub spec: String,
    /// The name.
    pub name: String,
    /// Asked for.
    pub hard: u64,
    /// The host's.
    pub host: u64,
}

/// The resource limit of `u`, checked against `host_hard(name)`, the host's hard limit (never
/// ask the kernel for more than it allows: the request would fail at start).
pub fn rlimit(u: &UlimitSpec, host_hard: impl Fn(&str) -> u64) -> Result<Rlimit, UlimitError> {
    let host = host_hard(&u.name);
    if u.hard > host {
        return Err(UlimitError {
            spec: u.to_string(),
            name: u.name.clone(),
            hard: u.hard,
            host,
        });
    }
    Ok(Rlimit {
        kind: format!("RLIMIT_{}", u.name.to_ascii_uppercase()),
        soft: u.soft,
        hard: u.hard,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> SpecInput {
        SpecInput {
            caps: crate::runtime::caps::DEFAULT.map(String::from).to_vec(),
            seccomp: None,
            no_new_privileges: false,
            apparmor: None,
            privileged: false,
            masked_paths: None,
            readonly_paths: None,
            oom_score_adj: 0,
            devices: vec![],
            device_rules: vec![],
            cgroupns: false,
            pid_ns: Ns::Private,
            ipc_ns: Ns::Private,
            uts_ns: Ns::Private,
            shm: DevShm::Tmpfs(64 << 20),
            sysctls: Default::default(),
            args: vec!["sh".into(), "-c".into(), "echo hi".into()],
            env: vec!["PATH=/bin".into()],
            cwd: "/".into(),
            user: Ids {
                uid: 0,
                gid: 0,
                additional: vec![],
                home: None,
            },
            hostname: "abc123def456".into(),
            domainname: None,
            terminal: false,
            read_only_root: false,
            netns: Some("/run/netns/c1".into()),
            host_network: false,
            etc_dir: Some("/run/berth/c/abc".into()),
            mounts: vec![OciMount::bind("/srv", "/data", true, "rprivate")],
            rlimits: vec![],
            host_nofile_hard: 524_288,
            resources: json!({"memory": {"limit": 64 << 20}, "cpu": {"quota": 150_000, "period": 100_000}, "pids": {"limit": 100}}),
            cgroups_path: "/berth/abc".into(),
        }
    }

    #[test]
    fn the_spec_is_valid_oci_with_dockers_defaults() {
        let v = spec(&input());
        let s: oci_spec::runtime::Spec =
            serde_json::from_value(v.clone()).expect("a valid OCI spec");
        let caps = s
            .process()
            .as_ref()
            .unwrap()
            .capabilities()
            .as_ref()
            .unwrap();
        assert_eq!(caps.bounding().as_ref().unwrap().len(), 14);
        assert_eq!(
            v["process"]["rlimits"][0],
            json!({"type": "RLIMIT_NOFILE", "soft": 524_288, "hard": 524_288}),
            "capped by the host"
        );
        let ns: Vec<&str> = v["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["type"].as_str().unwrap())
            .collect();
        assert_eq!(ns, ["pid", "ipc", "uts", "mount", "network"]);
        assert_eq!(v["linux"]["namespaces"][4]["path"], "/run/netns/c1");
        assert_eq!(v["linux"]["resources"]["cpu"]["quota"], 150_000);
        assert_eq!(v["linux"]["resources"]["memory"]["limit"], 64 << 20);
        let dests: Vec<&str> = v["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["destination"].as_str().unwrap())
            .collect();
        assert_eq!(
            &dests[7..],
            ["/etc/hostname", "/etc/hosts", "/etc/resolv.conf", "/data"]
        );
        assert_eq!(
            v["mounts"][10]["options"],
            json!(["rbind", "rprivate", "ro"])
        );
        assert_eq!(
            v["linux"]["maskedPaths"].as_array().unwrap().len(),
            MASKED_PATHS.len()
        );
    }

    #[test]
    fn ulimits_stay_under_the_hosts_hard_limit() {
        let host = |n: &str| if n == "nofile" { 4096 } else { u64::MAX };
        let parse_ulimit = |s: &str, host| rlimit(&s.parse::<UlimitSpec>().unwrap(), host);
        assert_eq!(
            parse_ulimit("nofile=1024:2048", host).unwrap(),
            Rlimit {
                kind: "RLIMIT_NOFILE".into(),
                soft: 1024,
                hard: 2048
            }
        );
        assert_eq!(parse_ulimit("core=-1", host).unwrap().hard, u64::MAX);
        let e = parse_ulimit("nofile=1048576", host).unwrap_err();
        assert_eq!(
            e.to_string(),
            "ulimit \"nofile=1048576:1048576\": hard limit 1048576 is above the host's hard limit 4096 for nofile"
        );
        // The spec with an explicit nofile keeps it and adds no default.
        let mut i = input();
        i.rlimits = vec![parse_ulimit("nofile=100:200", host).unwrap()];
        let v = spec(&i);
        assert_eq!(v["process"]["rlimits"].as_array().unwrap().len(), 1);
    }
}
