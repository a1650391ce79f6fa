//! berthd's settings: flags, and the daemon config file (`--config-file`, default
//! `/etc/berth/daemon.json` when it exists) with dockerd's key names. As dockerd, a setting given
//! both as a flag and in the file is refused by name, and so is an unknown key. Pure: the caller
//! reads the file.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use engine::runtime::registry::{self, RuntimeSpec};
use serde::Deserialize;

/// The file's keys (dockerd's names; `resolv-conf`, `shim` and `proxy` are berth's own).
#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct FileConfig {
    /// `--data-root`.
    pub data_root: Option<PathBuf>,
    /// `--exec-root`.
    pub exec_root: Option<PathBuf>,
    /// `-H` (at most one Unix socket and one `tcp://IP:PORT`).
    pub hosts: Option<Vec<String>>,
    /// `--tlsverify`.
    pub tlsverify: Option<bool>,
    /// `--tlscacert`.
    pub tlscacert: Option<PathBuf>,
    /// `--tlscert`.
    pub tlscert: Option<PathBuf>,
    /// `--tlskey`.
    pub tlskey: Option<PathBuf>,
    /// `--runtime`.
    pub default_runtime: Option<String>,
    /// `--add-runtime`: more OCI runtimes by name.
    pub runtimes: Option<BTreeMap<String, FileRuntime>>,
    /// `--log-level`.
    pub log_level: Option<String>,
    /// `--cgroup-parent`.
    pub cgroup_parent: Option<String>,
    /// `--resolv-conf`.
    pub resolv_conf: Option<PathBuf>,
    /// `--shim`.
    pub shim: Option<PathBuf>,
    /// `--proxy`.
    pub proxy: Option<PathBuf>,
}

/// A `runtimes` entry, as dockerd reads it.
#[derive(Debug, Default, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FileRuntime {
    /// The program.
    pub path: String,
    /// Given before every subcommand.
    #[serde(default, rename = "runtimeArgs")]
    pub runtime_args: Vec<String>,
}

/// What the flags said (`None`: not given).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Flags {
    /// `--data-root`.
    pub data_root: Option<PathBuf>,
    /// `--exec-root`.
    pub exec_root: Option<PathBuf>,
    /// `-H`, as often as given (empty: not given).
    pub hosts: Vec<String>,
    /// `--tlsverify` (`None`: not given).
    pub tlsverify: Option<bool>,
    /// `--tlscacert`.
    pub tlscacert: Option<PathBuf>,
    /// `--tlscert`.
    pub tlscert: Option<PathBuf>,
    /// `--tlskey`.
    pub tlskey: Option<PathBuf>,
    /// `--runtime`.
    pub runtime: Option<String>,
    /// `--add-runtime NAME=PATH`, as often as given.
    pub add_runtime: Vec<String>,
    /// `--log-level`.
    pub log_level: Option<String>,
    /// `--cgroup-parent`.
    pub cgroup_parent: Option<String>,
    /// `--resolv-conf`.
    pub resolv_conf: Option<PathBuf>,
    /// `--shim`.
    pub shim: Option<PathBuf>,
    /// `--proxy`.
    pub proxy: Option<PathBuf>,
}

/// The settings berthd runs with.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Persistent state.
    pub data_root: PathBuf,
    /// Runtime state.
    pub exec_root: PathBuf,
    /// The API socket berthd binds; with [`Self::systemd_socket`], the socket systemd holds.
    pub socket: PathBuf,
    /// `-H fd://`: the Unix socket is the one systemd passes (socket activation, as dockerd's
    /// `docker.socket`), not bound nor removed by berthd.
    pub systemd_socket: bool,
    /// The TCP listener, always with mutual TLS (`None`: none).
    pub tcp: Option<TcpListen>,
    /// The default OCI runtime (`None`: runc, else crun).
    pub runtime: Option<String>,
    /// The runtimes declared by name (`runtimes`, `--add-runtime`).
    pub runtimes: BTreeMap<String, RuntimeSpec>,
    /// Log filter.
    pub log_level: String,
    /// Parent cgroup of the containers.
    pub cgroup_parent: String,
    /// The host's resolv.conf.
    pub resolv_conf: PathBuf,
    /// berth-shim (`None`: next to berthd).
    pub shim: Option<PathBuf>,
    /// berth-proxy (`None`: next to berthd).
    pub proxy: Option<PathBuf>,
}

/// A TCP listener: its address and the TLS files it requires.
#[derive(Debug, Clone, PartialEq)]
pub struct TcpListen {
    /// `tcp://IP:PORT`'s address.
    pub addr: SocketAddr,
    /// The CA that signs the clients' certificates (`--tlscacert`).
    pub ca: PathBuf,
    /// berthd's certificate chain (`--tlscert`).
    pub cert: PathBuf,
    /// berthd's private key (`--tlskey`).
    pub key: PathBuf,
}

/// Why the settings were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A log level that is none of the levels (nor a `target=level` filter).
    #[error(
        "invalid log level {0:?} (valid: error, warn, info, debug, trace, or a filter such as berthd=debug,info)"
    )]
    LogLevel(String),
    /// The file is not valid JSON of the known keys.
    #[error("invalid daemon config file {file}: {why}")]
    File {
        /// Its path.
        file: String,
        /// The parse error (names the unknown key and the valid ones).
        why: String,
    },
    /// A setting in both places.
    #[error(
        "the following directives are specified both as a flag and in the configuration file: {key} (from flag: {flag}, from file: {file})"
    )]
    Conflict {
        /// The key.
        key: &'static str,
        /// The flag's value.
        flag: String,
        /// The file's value.
        file: String,
    },
    /// A root directory that is not an absolute path, or an empty file path.
    #[error("invalid {key} {value:?}: give a path (roots absolute, as /var/lib/berth)")]
    Relative {
        /// The setting.
        key: &'static str,
        /// What was given.
        value: String,
    },
    /// A runtime declared wrongly (`--add-runtime`).
    #[error("{0}")]
    Runtime(String),
    /// A host berthd cannot listen on.
    #[error(
        "invalid host {0:?}: berthd listens on at most one Unix socket and one TCP address (valid: unix:///path/to.sock, fd:// for the socket systemd passes, tcp://IP:PORT)"
    )]
    Host(String),
    /// A TCP host without the TLS settings that make it safe.
    #[error("refusing to listen on {host} without {missing}: the API is root on this host")]
    InsecureTcp {
        /// The `tcp://` host.
        host: String,
        /// The missing flags, as a phrase (`--tlsverify, --tlscacert and --tlskey`).
        missing: String,
    },
}

/// Parses the file's text (`file` names it in errors).
pub fn parse_file(file: &str, text: &str) -> Result<FileConfig, ConfigError> {
    let err = |why: String| ConfigError::File {
        file: file.to_string(),
        why,
    };
    // An object of the known keys only (serde would also take an array of the fields in order).
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| err(e.to_string()))?;
    if !value.is_object() {
        return Err(err("the file must hold one JSON object of settings".into()));
    }
    serde_json::from_value(value).map_err(|e| err(e.to_string()))
}

fn pick<T: Clone + std::fmt::Debug>(
    key: &'static str,
    flag: &Option<T>,
    file: &Option<T>,
) -> Result<Option<T>, ConfigError> {
    match (flag, file) {
        (Some(a), Some(b)) => Err(ConfigError::Conflict {
            key,
            flag: format!("{a:?}"),
            file: format!("{b:?}"),
        }),
        (Some(a), None) | (None, Some(a)) => Ok(Some(a.clone())),
        (None, None) => Ok(None),
    }
}

/// A host berthd listens on.
#[derive(Debug, PartialEq)]
enum Host {
    Unix(PathBuf),
    Systemd,
    Tcp(SocketAddr),
}

fn host(h: &str) -> Result<Host, ConfigError> {
    if let Some(a) = h.strip_prefix("tcp://") {
        return a
            .parse()
            .map(Host::Tcp)
            .map_err(|_| ConfigError::Host(h.to_string()));
    }
    if h == "fd://" {
        return Ok(Host::Systemd);
    }
    match h.strip_prefix("unix://") {
        Some(p) if p.starts_with('/') => Ok(Host::Unix(PathBuf::from(p))),
        None if h.starts_with('/') => Ok(Host::Unix(PathBuf::from(h))),
        _ => Err(ConfigError::Host(h.to_string())),
    }
}

/// `level` when it is a level, or a filter whose every part is `target=level` or a level (a
/// bare word would be taken as a target and silence everything else).
fn log_level(level: String) -> Result<String, ConfigError> {
    const LEVELS: [&str; 5] = ["error", "warn", "info", "debug", "trace"];
    let is_level = |s: &str| LEVELS.contains(&s.to_ascii_lowercase().as_str());
    let ok = !level.is_empty()
        && level.split(',').all(|part| match part.split_once('=') {
            Some((target, l)) => !target.is_empty() && is_level(l),
            None => is_level(part),
        });
    if ok {
        Ok(level)
    } else {
        Err(ConfigError::LogLevel(level))
    }
}

/// "a", "a and b", "a, b and c".
fn phrase(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => one.to_string(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// `path` when it is absolute: the roots hold berth's state and the socket, which must not
/// depend on the directory berthd happens to start in.
fn absolute(key: &'static str, path: PathBuf) -> Result<PathBuf, ConfigError> {
    if path.is_absolute() {
        Ok(path)
    } else {
        Err(ConfigError::Relative {
            key,
            value: path.display().to_string(),
        })
    }
}

/// The runtimes `--add-runtime` or the file's `runtimes` declare (not both, as dockerd).
fn runtimes(
    flags: &Flags,
    file: &FileConfig,
) -> Result<BTreeMap<String, RuntimeSpec>, ConfigError> {
    let from_flags = (!flags.add_runtime.is_empty())
        .then(|| {
            flags
                .add_runtime
                .iter()
                .map(|f| registry::parse_add_runtime(f))
                .collect::<Result<BTreeMap<_, _>, _>>()
        })
        .transpose()
        .map_err(ConfigError::Runtime)?;
    let from_file = file.runtimes.as_ref().map(|r| {
        r.iter()
            .map(|(n, r)| {
                (
                    n.clone(),
                    RuntimeSpec {
                        path: r.path.clone(),
                        args: r.runtime_args.clone(),
                    },
                )
            })
            .collect::<BTreeMap<_, _>>()
    });
    let declared = pick("runtimes", &from_flags, &from_file)?.unwrap_or_default();
    for name in declared.keys() {
        registry::check_declared_name(name).map_err(ConfigError::Runtime)?;
    }
    Ok(declared)
}

/// The settings from the flags and the file, with berthd's defaults for what neither gives.
pub fn merge(flags: &Flags, file: &FileConfig) -> Result<Settings, ConfigError> {
    let flag_hosts = (!flags.hosts.is_empty()).then(|| flags.hosts.clone());
    let file_hosts = file.hosts.clone().filter(|h| !h.is_empty());
    let hosts = pick("hosts", &flag_hosts, &file_hosts)?.unwrap_or_default();
    let (mut unix, mut tcp, mut systemd_socket) = (None, None, false);
    for h in &hosts {
        match host(h)? {
            Host::Unix(p) if unix.is_none() && !systemd_socket => unix = Some(p),
            Host::Systemd if unix.is_none() && !systemd_socket => systemd_socket = true,
            Host::Tcp(a) if tcp.is_none() => tcp = Some((h, a)),
            _ => return Err(ConfigError::Host(hosts.join(","))),
        }
    }
    let exec_root = absolute(
        "exec-root",
        pick("exec-root", &flags.exec_root, &file.exec_root)?
            .unwrap_or_else(|| PathBuf::from("/run/berth")),
    )?;
    let data_root = absolute(
        "data-root",
        pick("data-root", &flags.data_root, &file.data_root)?
            .unwrap_or_else(|| PathBuf::from("/var/lib/berth")),
    )?;
    // Outside the exec root (0700, root's only), as dockerd's /run/docker.sock: the `berth`
    // group reaches the socket.
    let socket = unix.unwrap_or_else(|| PathBuf::from("/run/berth.sock"));
    let tlsverify = pick("tlsverify", &flags.tlsverify, &file.tlsverify)?;
    let ca = pick("tlscacert", &flags.tlscacert, &file.tlscacert)?;
    let cert = pick("tlscert", &flags.tlscert, &file.tlscert)?;
    let key = pick("tlskey", &flags.tlskey, &file.tlskey)?;
    let tcp = match tcp {
        None => None,
        Some((h, addr)) => match (tlsverify, ca, cert, key) {
            (Some(true), Some(ca), Some(cert), Some(key)) => {
                for (name, p) in [("tlscacert", &ca), ("tlscert", &cert), ("tlskey", &key)] {
                    if p.as_os_str().is_empty() {
                        return Err(ConfigError::Relative {
                            key: name,
                            value: String::new(),
                        });
                    }
                }
                Some(TcpListen {
                    addr,
                    ca,
                    cert,
                    key,
                })
            }
            (verify, ca, cert, key) => {
                let mut missing = Vec::new();
                for (name, absent) in [
                    ("--tlsverify", verify != Some(true)),
                    ("--tlscacert", ca.is_none()),
                    ("--tlscert", cert.is_none()),
                    ("--tlskey", key.is_none()),
                ] {
                    if absent {
                        missing.push(name);
                    }
                }
                return Err(ConfigError::InsecureTcp {
                    host: h.clone(),
                    missing: phrase(&missing),
                });
            }
        },
    };
    Ok(Settings {
        data_root,
        socket,
        systemd_socket,
        tcp,
        exec_root,
        runtime: pick("default-runtime", &flags.runtime, &file.default_runtime)?,
        runtimes: runtimes(flags, file)?,
        log_level: log_level(
            pick("log-level", &flags.log_level, &file.log_level)?.unwrap_or_else(|| "info".into()),
        )?,
        cgroup_parent: pick("cgroup-parent", &flags.cgroup_parent, &file.cgroup_parent)?
            .unwrap_or_else(|| "berth".into()),
        resolv_conf: pick("resolv-conf", &flags.resolv_conf, &file.resolv_conf)?
            .unwrap_or_else(|| PathBuf::from("/etc/resolv.conf")),
        shim: pick("shim", &flags.shim, &file.shim)?,
        proxy: pick("proxy", &flags.proxy, &file.proxy)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_is_an_object_and_tls_files_are_named() {
        let e = parse_file("daemon.json", r#"[" ", ""]"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("one JSON object"), "{e}");
        let file = parse_file(
            "daemon.json",
            r#"{"hosts":["tcp://127.0.0.1:2376"],"tlsverify":true,"tlscacert":"","tlscert":"c","tlskey":"k"}"#,
        )
        .unwrap();
        let e = merge(&Flags::default(), &file).unwrap_err().to_string();
        assert!(e.contains("invalid tlscacert"), "{e}");
    }

    #[test]
    fn roots_must_be_absolute() {
        for (text, key) in [
            (r#"{"data-root": " "}"#, "data-root"),
            (r#"{"exec-root": ""}"#, "exec-root"),
            (r#"{"exec-root": "run/berth"}"#, "exec-root"),
        ] {
            let file = parse_file("daemon.json", text).unwrap();
            let e = merge(&Flags::default(), &file).unwrap_err().to_string();
            assert!(
                e.contains(&format!("invalid {key}")) && e.contains("absolute"),
                "{e}"
            );
        }
    }

    #[test]
    fn defaults_flags_and_file() {
        let s = merge(&Flags::default(), &FileConfig::default()).unwrap();
        assert_eq!(s.socket, PathBuf::from("/run/berth.sock"));
        assert_eq!(s.data_root, PathBuf::from("/var/lib/berth"));
        assert_eq!(
            (s.log_level.as_str(), s.cgroup_parent.as_str()),
            ("info", "berth")
        );
        let file = parse_file(
            "daemon.json",
            r#"{"data-root": "/srv/berth", "hosts": ["unix:///tmp/b.sock"], "log-level": "debug", "default-runtime": "crun"}"#,
        )
        .unwrap();
        let flags = Flags {
            exec_root: Some("/run/b2".into()),
            ..Flags::default()
        };
        let s = merge(&flags, &file).unwrap();
        assert_eq!(s.data_root, PathBuf::from("/srv/berth"));
        assert_eq!(s.exec_root, PathBuf::from("/run/b2"));
        assert_eq!(s.socket, PathBuf::from("/tmp/b.sock"));
        assert_eq!(s.runtime.as_deref(), Some("crun"));
        assert_eq!(s.log_level, "debug");
    }

    #[test]
    fn runtimes_come_from_the_file_or_the_flags_not_both() {
        let file = parse_file(
            "daemon.json",
            r#"{"runtimes": {"fast": {"path": "/usr/bin/crun", "runtimeArgs": ["--debug"]}}}"#,
        )
        .unwrap();
        let s = merge(&Flags::default(), &file).unwrap();
        assert_eq!(
            s.runtimes["fast"],
            RuntimeSpec {
                path: "/usr/bin/crun".into(),
                args: vec!["--debug".into()]
            }
        );
        let flags = Flags {
            add_runtime: vec!["slow=/usr/bin/runc".into()],
            ..Flags::default()
        };
        assert_eq!(
            merge(&flags, &FileConfig::default()).unwrap().runtimes["slow"].path,
            "/usr/bin/runc"
        );
        let both = merge(&flags, &file).unwrap_err().to_string();
        assert!(both.contains("configuration file: runtimes"), "{both}");
        let bad = parse_file(
            "daemon.json",
            r#"{"runtimes": {"x": {"path": "/a", "args": []}}}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(bad.contains("args"), "{bad}");
        let reserved = Flags {
            add_runtime: vec!["io.containerd.runc.v2=/x".into()],
            ..Flags::default()
        };
        let e = merge(&reserved, &FileConfig::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("'io.containerd.runc.v2' is reserved"), "{e}");
    }

    #[test]
    fn log_levels_are_levels_or_filters() {
        for ok in ["info", "DEBUG", "berthd=debug,info", "engine=trace"] {
            assert_eq!(log_level(ok.into()).unwrap(), ok);
        }
        for bad in ["", "loud", "berthd=loud", "=debug", "info,"] {
            let e = log_level(bad.into()).unwrap_err().to_string();
            assert!(e.contains("valid: error, warn"), "{e}");
        }
    }

    #[test]
    fn conflicts_unknown_keys_and_hosts_are_refused_by_name() {
        let file = parse_file("f", r#"{"log-level": "debug"}"#).unwrap();
        let flags = Flags {
            log_level: Some("warn".into()),
            ..Flags::default()
        };
        let e = merge(&flags, &file).unwrap_err().to_string();
        assert!(
            e.contains("log-level") && e.contains("warn") && e.contains("debug"),
            "{e}"
        );
        let e = parse_file("/etc/berth/daemon.json", r#"{"debug-level": 1}"#)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("/etc/berth/daemon.json") && e.contains("debug-level"),
            "{e}"
        );
        assert!(parse_file("f", "{").is_err());
        for h in [
            "tcp://localhost:2375",
            "tcp://1.2.3.4",
            "unix://relative",
            "fd://3",
        ] {
            let flags = Flags {
                hosts: vec![h.into()],
                ..Flags::default()
            };
            let e = merge(&flags, &FileConfig::default())
                .unwrap_err()
                .to_string();
            assert!(e.contains(h) && e.contains("valid"), "{e}");
        }
        let two = parse_file("f", r#"{"hosts": ["unix:///a", "unix:///b"]}"#).unwrap();
        assert!(merge(&Flags::default(), &two).is_err());
        let flags = Flags {
            hosts: vec!["tcp://127.0.0.1:1".into(), "tcp://127.0.0.1:2".into()],
            ..tls_flags()
        };
        assert!(matches!(
            merge(&flags, &FileConfig::default()),
            Err(ConfigError::Host(_))
        ));
        let flags = Flags {
            hosts: vec!["unix:///a".into()],
            ..Flags::default()
        };
        let e = merge(
            &flags,
            &parse_file("f", r#"{"hosts": ["unix:///b"]}"#).unwrap(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("hosts"), "{e}");
    }

    fn tls_flags() -> Flags {
        Flags {
            tlsverify: Some(true),
            tlscacert: Some("/etc/berth/ca.pem".into()),
            tlscert: Some("/etc/berth/cert.pem".into()),
            tlskey: Some("/etc/berth/key.pem".into()),
            ..Flags::default()
        }
    }

    #[test]
    fn tcp_needs_mutual_tls_and_keeps_the_unix_socket() {
        // A Unix socket and a TCP address, with the four TLS flags.
        let flags = Flags {
            hosts: vec!["unix:///tmp/b.sock".into(), "tcp://0.0.0.0:2376".into()],
            ..tls_flags()
        };
        let s = merge(&flags, &FileConfig::default()).unwrap();
        assert_eq!(s.socket, PathBuf::from("/tmp/b.sock"));
        assert_eq!(
            s.tcp,
            Some(TcpListen {
                addr: "0.0.0.0:2376".parse().unwrap(),
                ca: "/etc/berth/ca.pem".into(),
                cert: "/etc/berth/cert.pem".into(),
                key: "/etc/berth/key.pem".into(),
            })
        );
        // TCP alone: the default socket too.
        let flags = Flags {
            hosts: vec!["tcp://[::1]:2376".into()],
            ..tls_flags()
        };
        let s = merge(&flags, &FileConfig::default()).unwrap();
        assert_eq!(s.socket, PathBuf::from("/run/berth.sock"));
        assert_eq!(s.tcp.unwrap().addr, "[::1]:2376".parse().unwrap());
        // `fd://`: systemd's socket (one Unix socket only).
        let flags = Flags {
            hosts: vec!["fd://".into()],
            ..Flags::default()
        };
        let s = merge(&flags, &FileConfig::default()).unwrap();
        assert!(s.systemd_socket);
        assert!(
            !merge(&Flags::default(), &FileConfig::default())
                .unwrap()
                .systemd_socket
        );
        for two in [
            ["fd://", "unix:///tmp/b.sock"],
            ["unix:///tmp/b.sock", "fd://"],
        ] {
            let flags = Flags {
                hosts: two.iter().map(|h| h.to_string()).collect(),
                ..Flags::default()
            };
            let e = merge(&flags, &FileConfig::default())
                .unwrap_err()
                .to_string();
            assert!(e.contains("at most one Unix socket"), "{e}");
        }
        // No TCP: no listener, whatever the TLS flags.
        let s = merge(&tls_flags(), &FileConfig::default()).unwrap();
        assert_eq!(s.tcp, None);
        // Without TLS: refused, naming every missing flag.
        let flags = Flags {
            hosts: vec!["tcp://0.0.0.0:2376".into()],
            ..Flags::default()
        };
        assert_eq!(
            merge(&flags, &FileConfig::default())
                .unwrap_err()
                .to_string(),
            "refusing to listen on tcp://0.0.0.0:2376 without --tlsverify, --tlscacert, --tlscert and --tlskey: the API is root on this host"
        );
        let flags = Flags {
            hosts: vec!["tcp://0.0.0.0:2376".into()],
            tlskey: None,
            tlsverify: Some(false),
            ..tls_flags()
        };
        let e = merge(&flags, &FileConfig::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("without --tlsverify and --tlskey:") && !e.contains("--tlscert"),
            "{e}"
        );
        // The file's keys (dockerd's), mixed with flags; a key in both is a conflict.
        let file = parse_file(
            "f",
            r#"{"hosts": ["tcp://127.0.0.1:2376"], "tlsverify": true, "tlscacert": "/c/ca.pem", "tlscert": "/c/cert.pem"}"#,
        )
        .unwrap();
        let flags = Flags {
            tlskey: Some("/c/key.pem".into()),
            ..Flags::default()
        };
        let s = merge(&flags, &file).unwrap();
        assert_eq!(s.tcp.unwrap().key, PathBuf::from("/c/key.pem"));
        let e = merge(&tls_flags(), &file).unwrap_err().to_string();
        assert!(e.contains("tlsverify"), "{e}");
        let e = merge(&Flags::default(), &file).unwrap_err().to_string();
        assert!(e.contains("without --tlskey:"), "{e}");
    }
}
