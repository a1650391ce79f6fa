//! berthd's settings: flags, and the daemon config file (`--config-file`, default
//! `/etc/berth/daemon.json` when it exists) with dockerd's key names. As dockerd, a setting given
//! both as a flag and in the file is refused by name, and so is an unknown key. Pure: the caller
//! reads the file.

use std::path::PathBuf;

use serde::Deserialize;

/// The file's keys (dockerd's names; `resolv-conf` and `shim` are berth's own).
#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct FileConfig {
    /// `--data-root`.
    pub data_root: Option<PathBuf>,
    /// `--exec-root`.
    pub exec_root: Option<PathBuf>,
    /// `-H` (one Unix socket).
    pub hosts: Option<Vec<String>>,
    /// `--runtime`.
    pub default_runtime: Option<String>,
    /// `--log-level`.
    pub log_level: Option<String>,
    /// `--cgroup-parent`.
    pub cgroup_parent: Option<String>,
    /// `--resolv-conf`.
    pub resolv_conf: Option<PathBuf>,
    /// `--shim`.
    pub shim: Option<PathBuf>,
}

/// What the flags said (`None`: not given).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Flags {
    /// `--data-root`.
    pub data_root: Option<PathBuf>,
    /// `--exec-root`.
    pub exec_root: Option<PathBuf>,
    /// `-H`.
    pub host: Option<String>,
    /// `--runtime`.
    pub runtime: Option<String>,
    /// `--log-level`.
    pub log_level: Option<String>,
    /// `--cgroup-parent`.
    pub cgroup_parent: Option<String>,
    /// `--resolv-conf`.
    pub resolv_conf: Option<PathBuf>,
    /// `--shim`.
    pub shim: Option<PathBuf>,
}

/// The settings berthd runs with.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Persistent state.
    pub data_root: PathBuf,
    /// Runtime state.
    pub exec_root: PathBuf,
    /// The API socket.
    pub socket: PathBuf,
    /// The OCI runtime (`None`: the first installed).
    pub runtime: Option<String>,
    /// Log filter.
    pub log_level: String,
    /// Parent cgroup of the containers.
    pub cgroup_parent: String,
    /// The host's resolv.conf.
    pub resolv_conf: PathBuf,
    /// berth-shim (`None`: next to berthd).
    pub shim: Option<PathBuf>,
}

/// Why the settings were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
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
    /// A host berthd cannot listen on.
    #[error(
        "invalid host {0:?}: berthd listens on one Unix socket (valid: unix:///path/to.sock); TCP is not supported"
    )]
    Host(String),
}

/// Parses the file's text (`file` names it in errors).
pub fn parse_file(file: &str, text: &str) -> Result<FileConfig, ConfigError> {
    serde_json::from_str(text).map_err(|e| ConfigError::File {
        file: file.to_string(),
        why: e.to_string(),
    })
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

fn socket(host: &str) -> Result<PathBuf, ConfigError> {
    match host.strip_prefix("unix://") {
        Some(p) if p.starts_with('/') => Ok(PathBuf::from(p)),
        None if host.starts_with('/') => Ok(PathBuf::from(host)),
        _ => Err(ConfigError::Host(host.to_string())),
    }
}

/// The settings from the flags and the file, with berthd's defaults for what neither gives.
pub fn merge(flags: &Flags, file: &FileConfig) -> Result<Settings, ConfigError> {
    let file_host = match file.hosts.as_deref() {
        None | Some([]) => None,
        Some([h]) => Some(h.clone()),
        Some(more) => return Err(ConfigError::Host(more.join(","))),
    };
    let exec_root = pick("exec-root", &flags.exec_root, &file.exec_root)?
        .unwrap_or_else(|| PathBuf::from("/run/berth"));
    let socket = match pick("hosts", &flags.host, &file_host)? {
        Some(h) => socket(&h)?,
        None => exec_root.join("berth.sock"),
    };
    Ok(Settings {
        data_root: pick("data-root", &flags.data_root, &file.data_root)?
            .unwrap_or_else(|| PathBuf::from("/var/lib/berth")),
        socket,
        exec_root,
        runtime: pick("default-runtime", &flags.runtime, &file.default_runtime)?,
        log_level: pick("log-level", &flags.log_level, &file.log_level)?
            .unwrap_or_else(|| "info".into()),
        cgroup_parent: pick("cgroup-parent", &flags.cgroup_parent, &file.cgroup_parent)?
            .unwrap_or_else(|| "berth".into()),
        resolv_conf: pick("resolv-conf", &flags.resolv_conf, &file.resolv_conf)?
            .unwrap_or_else(|| PathBuf::from("/etc/resolv.conf")),
        shim: pick("shim", &flags.shim, &file.shim)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_flags_and_file() {
        let s = merge(&Flags::default(), &FileConfig::default()).unwrap();
        assert_eq!(s.socket, PathBuf::from("/run/berth/berth.sock"));
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
        for h in ["tcp://0.0.0.0:2375", "unix://relative", "fd://"] {
            let flags = Flags {
                host: Some(h.into()),
                ..Flags::default()
            };
            let e = merge(&flags, &FileConfig::default())
                .unwrap_err()
                .to_string();
            assert!(e.contains(h) && e.contains("valid"), "{e}");
        }
        let two = parse_file("f", r#"{"hosts": ["unix:///a", "unix:///b"]}"#).unwrap();
        assert!(merge(&Flags::default(), &two).is_err());
    }
}
