//! The namespaces a container shares and what goes with them, as Docker reads `--pid`,
//! `--ipc`, `--uts`, `--sysctl`, `--tmpfs`, `--shm-size` and `--init`. Pure: [`check`] at
//! create refuses what cannot work, naming it; [`resolve`] at every start turns the options
//! into the spec's namespaces and mounts, with the containers joined looked up by the caller.
//!
//! `/dev/shm`, as Docker: a private container's is a tmpfs in its own mount namespace; a
//! `shareable` one's is a tmpfs berth mounts on the host, in the container's bundle, and binds
//! in, so that `--ipc container:X` can bind the same one beside joining X's IPC namespace (SysV
//! segments and POSIX queues live in the namespace, POSIX shared memory in `/dev/shm`). Never a
//! path inside the donor's root: that is the donor's to redirect.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::ContainerError;
use super::model::{CreateOptions, NetworkMode};
use crate::runtime::spec::OciMount;

/// One namespace of the spec.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Ns {
    /// A new one.
    #[default]
    Private,
    /// The host's (none in the spec).
    Host,
    /// Another process's (`/proc/PID/ns/KIND`).
    Join(String),
}

/// What a container's namespaces and their mounts are.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Namespaces {
    /// PID namespace.
    pub pid: Ns,
    /// IPC namespace.
    pub ipc: Ns,
    /// UTS namespace (no hostname set when the host's).
    pub uts: Ns,
    /// Where `/dev/shm` comes from.
    pub shm: Shm,
    /// `linux.sysctl`.
    pub sysctls: BTreeMap<String, String>,
    /// `--tmpfs` mounts.
    pub tmpfs: Vec<OciMount>,
}

/// Where a container's `/dev/shm` comes from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Shm {
    /// None (`--ipc none`), or the host's (`--ipc host`, which binds the host's `/dev/shm`).
    #[default]
    None,
    /// A tmpfs of this size in the container's own mount namespace (`private`).
    Tmpfs(u64),
    /// A tmpfs of this size mounted on the host at the container's [`SHM_DIR`] and bound in,
    /// for others to join (`shareable`).
    Host(u64),
    /// Another container's host-side tmpfs, bound in (`container:X`).
    Join(PathBuf),
}

/// The directory of a shareable container's `/dev/shm`, in its bundle.
pub const SHM_DIR: &str = "shm";

/// What a start needs of a container it joins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Donor {
    /// Its process.
    pub pid: u32,
    /// Its host-side `/dev/shm` when it is shareable.
    pub shm: Option<PathBuf>,
}

/// Docker's `/dev/shm` size.
pub const DEFAULT_SHM: u64 = 64 << 20;

fn invalid(msg: String) -> ContainerError {
    ContainerError::Invalid(msg)
}

/// The sysctls of the IPC namespace.
const IPC_SYSCTLS: [&str; 8] = [
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
];

/// Options `--tmpfs` takes (tmpfs's own and the generic ones).
const TMPFS_FLAGS: [&str; 22] = [
    "rw",
    "ro",
    "exec",
    "noexec",
    "suid",
    "nosuid",
    "dev",
    "nodev",
    "sync",
    "async",
    "dirsync",
    "atime",
    "noatime",
    "diratime",
    "nodiratime",
    "relatime",
    "norelatime",
    "strictatime",
    "nostrictatime",
    "mand",
    "nomand",
    "tmpcopyup",
];
const TMPFS_KEYS: [&str; 6] = ["size", "mode", "uid", "gid", "nr_inodes", "nr_blocks"];

fn check_sysctl(key: &str, o: &CreateOptions, host_net: bool) -> Result<(), ContainerError> {
    let ipc_host = o.ipc_mode == "host";
    let well_formed = key.len() <= 256
        && key.split('.').count() >= 2
        && key.split('.').all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        });
    if !well_formed {
        return Err(invalid(format!(
            "invalid sysctl {key:?}: a key is dot-separated names of letters, digits, '_' and '-'"
        )));
    }
    if IPC_SYSCTLS.contains(&key) || key.starts_with("fs.mqueue.") {
        if ipc_host {
            return Err(invalid(format!(
                "sysctl {key:?} is not allowed in host IPC mode"
            )));
        }
        return Ok(());
    }
    if key.starts_with("net.") {
        if host_net {
            return Err(invalid(format!(
                "sysctl {key:?} is not allowed in host network namespace"
            )));
        }
        return Ok(());
    }
    if key == "kernel.domainname" {
        if o.uts_mode == "host" {
            return Err(invalid(format!(
                "sysctl {key:?} is not allowed in host UTS mode"
            )));
        }
        return Ok(());
    }
    Err(invalid(format!(
        "sysctl {key:?} is not namespaced, so a container may not set it (valid: {}, fs.mqueue.*, net.*, kernel.domainname)",
        IPC_SYSCTLS.join(", ")
    )))
}

/// `--tmpfs PATH` with options `opts` as the runtime mounts it (Docker's defaults: noexec,
/// nosuid, nodev unless asked otherwise).
pub fn tmpfs_mount(path: &str, opts: &str) -> Result<OciMount, ContainerError> {
    let bad = |why: &str| invalid(format!("invalid --tmpfs {path}:{opts}: {why}"));
    if !path.starts_with('/') || path.trim_end_matches('/').is_empty() {
        return Err(bad("the path must be absolute and not /"));
    }
    let mut options = Vec::new();
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        let ok = match o.split_once('=') {
            Some((k, v)) => TMPFS_KEYS.contains(&k) && !v.is_empty() && !v.contains(['\0', ',']),
            None => TMPFS_FLAGS.contains(&o),
        };
        if !ok {
            return Err(bad(&format!(
                "unknown option {o:?} (valid: {}, {}=VALUE)",
                TMPFS_FLAGS.join(", "),
                TMPFS_KEYS.join("=VALUE, ")
            )));
        }
        options.push(o.to_string());
    }
    for (on, off) in [("noexec", "exec"), ("nosuid", "suid"), ("nodev", "dev")] {
        if !options.iter().any(|o| o == on || o == off) {
            options.push(on.to_string());
        }
    }
    Ok(OciMount {
        destination: path.to_string(),
        kind: "tmpfs".into(),
        source: "tmpfs".into(),
        options,
    })
}

/// Refuses at create what no start could apply, naming the option.
pub fn check(o: &CreateOptions, network: &NetworkMode) -> Result<(), ContainerError> {
    match o.pid_mode.as_str() {
        "" | "host" => {}
        m if m.strip_prefix("container:").is_some_and(|c| !c.is_empty()) => {}
        m => {
            return Err(invalid(format!(
                "invalid --pid {m:?}: valid are host and container:NAME"
            )));
        }
    }
    match o.ipc_mode.as_str() {
        "" | "private" | "shareable" | "host" | "none" => {}
        m if m.strip_prefix("container:").is_some_and(|c| !c.is_empty()) => {}
        m => {
            return Err(invalid(format!(
                "invalid --ipc {m:?}: valid are private, shareable, host, none and container:NAME"
            )));
        }
    }
    match o.userns_mode.as_str() {
        "" | "host" => {}
        m => {
            return Err(invalid(format!(
                "invalid --userns {m:?}: berth does not remap users into a user namespace (valid: host)"
            )));
        }
    }
    match o.uts_mode.as_str() {
        "" => {}
        "host" if o.hostname.as_deref().is_some_and(|h| !h.is_empty()) => {
            return Err(invalid(
                "Conflicting options: hostname and the UTS mode".into(),
            ));
        }
        "host" => {}
        m => return Err(invalid(format!("invalid --uts {m:?}: valid is host"))),
    }
    if o.shm_size == Some(0) {
        return Err(invalid(
            "invalid --shm-size 0: give a size above 0, as 64m".into(),
        ));
    }
    for k in o.sysctls.keys() {
        check_sysctl(k, o, *network == NetworkMode::Host)?;
    }
    for (path, opts) in &o.tmpfs {
        tmpfs_mount(path, opts)?;
    }
    Ok(())
}

/// The namespaces of a start: `donor(NAME, KIND)` is the running container NAME whose KIND
/// namespace (`PID`, `IPC`) is joined, or why it cannot be joined.
pub fn resolve(
    o: &CreateOptions,
    donor: impl Fn(&str, &str) -> Result<Donor, ContainerError>,
) -> Result<Namespaces, ContainerError> {
    let pid = match o.pid_mode.as_str() {
        "host" => Ns::Host,
        m => match m.strip_prefix("container:") {
            Some(c) => Ns::Join(format!("/proc/{}/ns/pid", donor(c, "PID")?.pid)),
            None => Ns::Private,
        },
    };
    let size = o.shm_size.unwrap_or(DEFAULT_SHM);
    let (ipc, shm) = match o.ipc_mode.as_str() {
        "host" => (Ns::Host, Shm::None),
        "none" => (Ns::Private, Shm::None),
        "shareable" => (Ns::Private, Shm::Host(size)),
        m => match m.strip_prefix("container:") {
            Some(c) => {
                let d = donor(c, "IPC")?;
                let shm = d.shm.ok_or_else(|| {
                    ContainerError::Conflict(format!(
                        "cannot join IPC of container {c}: non-shareable IPC (hint: use IpcMode:shareable for the donor container)"
                    ))
                })?;
                (Ns::Join(format!("/proc/{}/ns/ipc", d.pid)), Shm::Join(shm))
            }
            None => (Ns::Private, Shm::Tmpfs(size)),
        },
    };
    let uts = if o.uts_mode == "host" {
        Ns::Host
    } else {
        Ns::Private
    };
    let mut tmpfs = Vec::new();
    for (path, opts) in &o.tmpfs {
        tmpfs.push(tmpfs_mount(path, opts)?);
    }
    Ok(Namespaces {
        pid,
        ipc,
        uts,
        shm,
        sysctls: o.sysctls.clone(),
        tmpfs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(f: impl FnOnce(&mut CreateOptions)) -> CreateOptions {
        let mut o = CreateOptions::default();
        f(&mut o);
        o
    }

    fn err(o: CreateOptions, net: NetworkMode) -> String {
        check(&o, &net).unwrap_err().to_string()
    }

    #[test]
    fn modes_and_sysctls_are_checked_as_docker_checks_them() {
        let bridge = NetworkMode::Network("bridge".into());
        assert!(check(&CreateOptions::default(), &bridge).is_ok());
        let ok = opts(|o| {
            o.sysctls.insert("net.ipv4.ip_forward".into(), "1".into());
            o.sysctls.insert("kernel.shmmax".into(), "1000".into());
            o.sysctls.insert("fs.mqueue.msg_max".into(), "20".into());
            o.pid_mode = "container:db".into();
            o.ipc_mode = "shareable".into();
        });
        assert!(check(&ok, &bridge).is_ok());
        let net = opts(|o| {
            o.sysctls.insert("net.ipv4.ip_forward".into(), "1".into());
        });
        assert!(err(net, NetworkMode::Host).contains("not allowed in host network namespace"));
        let odd = opts(|o| {
            o.sysctls.insert("net.ipv4/../../x".into(), "1".into());
        });
        assert!(err(odd, bridge.clone()).starts_with("invalid sysctl"));
        let vm = opts(|o| {
            o.sysctls.insert("vm.swappiness".into(), "1".into());
        });
        assert!(err(vm, bridge.clone()).starts_with("sysctl \"vm.swappiness\" is not namespaced"));
        let ipc = opts(|o| {
            o.ipc_mode = "host".into();
            o.sysctls.insert("kernel.sem".into(), "1 2 3 4".into());
        });
        assert!(err(ipc, bridge.clone()).contains("not allowed in host IPC mode"));
        let uts = opts(|o| {
            o.uts_mode = "host".into();
            o.hostname = Some("x".into());
        });
        assert_eq!(
            err(uts, bridge.clone()),
            "Conflicting options: hostname and the UTS mode"
        );
        let userns = opts(|o| o.userns_mode = "private".into());
        assert!(err(userns, bridge.clone()).contains("invalid --userns \"private\""));
        let pid = opts(|o| o.pid_mode = "bogus".into());
        assert!(err(pid, bridge.clone()).contains("invalid --pid \"bogus\""));
        let join = opts(|o| o.ipc_mode = "container:db".into());
        assert!(check(&join, &bridge).is_ok());
        let bad = opts(|o| o.ipc_mode = "container:".into());
        assert!(err(bad, bridge).contains("container:NAME"));
    }

    #[test]
    fn tmpfs_takes_dockers_defaults_and_refuses_unknown_options() {
        let m = tmpfs_mount("/run", "size=1m,exec").unwrap();
        assert_eq!(m.options, ["size=1m", "exec", "nosuid", "nodev"]);
        assert_eq!(
            tmpfs_mount("/t", "").unwrap().options,
            ["noexec", "nosuid", "nodev"]
        );
        let e = tmpfs_mount("/t", "size=1m,bogus").unwrap_err().to_string();
        assert!(
            e.contains("invalid --tmpfs /t:size=1m,bogus: unknown option \"bogus\""),
            "{e}"
        );
        assert!(tmpfs_mount("rel", "").is_err());
        assert!(tmpfs_mount("/", "").is_err());
    }

    #[test]
    fn joins_name_the_other_containers_namespace() {
        let o = opts(|o| {
            o.pid_mode = "container:db".into();
            o.ipc_mode = "none".into();
            o.uts_mode = "host".into();
        });
        let donors = |c: &str, _: &str| match c {
            "db" => Ok(Donor { pid: 42, shm: None }),
            "cache" => Ok(Donor {
                pid: 7,
                shm: Some("/run/berth/cache/bundle/shm".into()),
            }),
            _ => Err(invalid(c.into())),
        };
        let n = resolve(&o, donors).unwrap();
        assert_eq!(n.pid, Ns::Join("/proc/42/ns/pid".into()));
        assert_eq!((n.ipc, n.uts, n.shm), (Ns::Private, Ns::Host, Shm::None));
        let d = resolve(&CreateOptions::default(), |_, _| unreachable!()).unwrap();
        assert_eq!(d.shm, Shm::Tmpfs(DEFAULT_SHM));
        // Shareable: mounted on the host, of the size asked.
        let s = opts(|o| {
            o.ipc_mode = "shareable".into();
            o.shm_size = Some(1 << 20);
        });
        assert_eq!(resolve(&s, donors).unwrap().shm, Shm::Host(1 << 20));
        // Joining: the donor's namespace and its host-side /dev/shm, only when shareable.
        let j = resolve(&opts(|o| o.ipc_mode = "container:cache".into()), donors).unwrap();
        assert_eq!(j.ipc, Ns::Join("/proc/7/ns/ipc".into()));
        assert_eq!(j.shm, Shm::Join("/run/berth/cache/bundle/shm".into()));
        let e = resolve(&opts(|o| o.ipc_mode = "container:db".into()), donors)
            .unwrap_err()
            .to_string();
        assert!(e.contains("non-shareable IPC"), "{e}");
    }
}
