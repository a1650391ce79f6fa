//! docker-proxy compatibility: its command line and its start-up protocol, so a stock Docker daemon
//! can run `berth-proxy` as its `userland-proxy-path`.
//!
//! Command line (Go's flag syntax: `-name value`, `-name=value`, one or two dashes):
//! `-proto tcp|udp -host-ip IP -host-port N -container-ip IP -container-port N [-use-listen-fd]`.
//! Start-up: the daemon passes a pipe as fd 3 and reads `0\n` on success or `1\n<message>` on
//! failure. With `-use-listen-fd` (Docker 28+) the daemon has bound the host socket itself and
//! passes it as fd 4.

use std::net::{IpAddr, SocketAddr};

use crate::spec::{Mapping, Protocol};

/// The file descriptor the daemon reads the start-up status from.
pub const STATUS_FD: i32 = 3;
/// The file descriptor of the pre-bound socket under `-use-listen-fd`.
pub const LISTEN_FD: i32 = 4;

const FLAGS: [&str; 7] = [
    "proto",
    "host-ip",
    "host-port",
    "container-ip",
    "container-port",
    "use-listen-fd",
    "container-proto",
];

/// A parsed docker-proxy command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerProxyArgs {
    /// The one mapping docker-proxy serves.
    pub mapping: Mapping,
    /// The host socket arrives as fd 4 instead of being opened here.
    pub use_listen_fd: bool,
}

/// Why a docker-proxy command line was refused; the message names the flag and value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompatError {
    /// A flag docker-proxy does not have.
    #[error(
        "unknown flag {0:?}: expected -proto, -host-ip, -host-port, -container-ip, -container-port, -use-listen-fd"
    )]
    UnknownFlag(String),
    /// A flag given without its value.
    #[error("flag -{0} needs a value")]
    MissingValue(String),
    /// A flag whose value does not parse.
    #[error("invalid value {value:?} for flag -{flag}: expected {expected}")]
    BadValue {
        /// The flag.
        flag: String,
        /// Its value.
        value: String,
        /// What would be valid.
        expected: &'static str,
    },
    /// A required flag was not given.
    #[error("flag -{0} is required")]
    Missing(&'static str),
}

fn flag_name(arg: &str) -> Option<(&str, Option<&str>)> {
    let body = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-'))?;
    if body.is_empty() {
        return None;
    }
    Some(match body.split_once('=') {
        Some((n, v)) => (n, Some(v)),
        None => (body, None),
    })
}

/// Whether argv (without the program name) is a docker-proxy command line rather than berth-proxy's
/// own subcommands.
pub fn looks_like_docker_proxy(args: &[String]) -> bool {
    args.first()
        .and_then(|a| flag_name(a))
        .is_some_and(|(n, _)| FLAGS.contains(&n))
}

fn bad(flag: &str, value: &str, expected: &'static str) -> CompatError {
    CompatError::BadValue {
        flag: flag.to_string(),
        value: value.to_string(),
        expected,
    }
}

/// Parses docker-proxy's flags. Pure, so it is unit-tested and fuzzed.
pub fn parse_docker_proxy_args(args: &[String]) -> Result<DockerProxyArgs, CompatError> {
    let mut proto = Protocol::Tcp;
    let (mut host_ip, mut host_port, mut ctr_ip, mut ctr_port) = (None, None, None, None);
    let mut use_listen_fd = false;
    let mut container_proto: Option<(Protocol, &str)> = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let (name, inline) = flag_name(arg).ok_or_else(|| CompatError::UnknownFlag(arg.clone()))?;
        if !FLAGS.contains(&name) {
            return Err(CompatError::UnknownFlag(arg.clone()));
        }
        if name == "use-listen-fd" {
            use_listen_fd = match inline {
                None | Some("true" | "1" | "t" | "T" | "TRUE" | "True") => true,
                Some("false" | "0" | "f" | "F" | "FALSE" | "False") => false,
                Some(v) => return Err(bad(name, v, "true or false")),
            };
            continue;
        }
        let value = match inline {
            Some(v) => v,
            None => it
                .next()
                .map(String::as_str)
                .ok_or_else(|| CompatError::MissingValue(name.to_string()))?,
        };
        match name {
            "proto" => proto = value.parse().map_err(|_| bad(name, value, "tcp or udp"))?,
            // Newer daemons name the container side's protocol separately; berth relays the
            // same protocol on both sides, so it must match (checked after every flag is read).
            "container-proto" => {
                let p: Protocol = value.parse().map_err(|_| bad(name, value, "tcp or udp"))?;
                container_proto = Some((p, value));
            }
            "host-ip" => {
                host_ip = Some(
                    value
                        .parse::<IpAddr>()
                        .map_err(|_| bad(name, value, "an IP address"))?,
                )
            }
            "container-ip" => {
                ctr_ip = Some(
                    value
                        .parse::<IpAddr>()
                        .map_err(|_| bad(name, value, "an IP address"))?,
                )
            }
            "host-port" => {
                host_port = Some(
                    value
                        .parse::<u16>()
                        .map_err(|_| bad(name, value, "a port 0-65535"))?,
                )
            }
            "container-port" => {
                ctr_port = Some(
                    value
                        .parse::<u16>()
                        .ok()
                        .filter(|p| *p != 0)
                        .ok_or_else(|| bad(name, value, "a port 1-65535"))?,
                )
            }
            _ => unreachable!("every name in FLAGS is matched above"),
        }
    }
    if let Some((p, value)) = container_proto
        && p != proto
    {
        return Err(bad(
            "container-proto",
            value,
            if proto == Protocol::Tcp {
                "tcp, as -proto"
            } else {
                "udp, as -proto"
            },
        ));
    }
    let host_ip = host_ip.ok_or(CompatError::Missing("host-ip"))?;
    let host_port = host_port.ok_or(CompatError::Missing("host-port"))?;
    let ctr_ip = ctr_ip.ok_or(CompatError::Missing("container-ip"))?;
    let ctr_port = ctr_port.ok_or(CompatError::Missing("container-port"))?;
    Ok(DockerProxyArgs {
        mapping: Mapping {
            proto,
            host: SocketAddr::new(host_ip, host_port),
            container: SocketAddr::new(ctr_ip, ctr_port),
        },
        use_listen_fd,
    })
}

/// The status line docker-proxy writes to fd 3.
pub fn status_line(result: &Result<(), String>) -> String {
    match result {
        Ok(()) => "0\n".to_string(),
        Err(msg) => format!("1\n{msg}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn docker_20_and_28_command_lines() {
        let a = parse_docker_proxy_args(&args(
            "-proto tcp -host-ip 0.0.0.0 -host-port 8080 -container-ip 172.17.0.2 -container-port 80",
        ))
        .unwrap();
        assert_eq!(a.mapping.host, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(a.mapping.container, "172.17.0.2:80".parse().unwrap());
        assert!(!a.use_listen_fd);
        let a = parse_docker_proxy_args(&args(
            "--proto=udp -host-ip :: -host-port=53 -container-ip 172.17.0.2 -container-port 53 -use-listen-fd",
        ))
        .unwrap();
        assert_eq!(a.mapping.proto, Protocol::Udp);
        assert_eq!(a.mapping.host, "[::]:53".parse().unwrap());
        assert!(a.use_listen_fd);
        assert!(looks_like_docker_proxy(&args("-proto tcp")));
        assert!(!looks_like_docker_proxy(&args("serve --exec-root /tmp")));
    }

    #[test]
    fn errors_name_flag_and_value() {
        let e = |s: &str| parse_docker_proxy_args(&args(s)).unwrap_err().to_string();
        assert!(e("-proto sctp").contains("\"sctp\""));
        assert!(e("-host-port 70000").contains("\"70000\""));
        assert!(e("-bogus 1").contains("\"-bogus\""));
        assert!(e("-host-ip").contains("-host-ip needs a value"));
        assert!(
            e("-host-ip 1.2.3.4 -host-port 1 -container-ip 1.2.3.5").contains("container-port")
        );
    }

    #[test]
    fn status_lines() {
        assert_eq!(status_line(&Ok(())), "0\n");
        assert_eq!(status_line(&Err("port in use".into())), "1\nport in use");
    }
}
