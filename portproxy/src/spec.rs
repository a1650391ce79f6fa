//! Parser for Docker's `-p` publish syntax.
//!
//! Grammar (as `docker run -p`): `[ip:][hostPort[-end]:]containerPort[-end][/proto]`, IPv6 host
//! addresses in brackets (`[::1]:8080:80`). A missing host port means "any free port"; a missing
//! host IP means every address of both families (Docker binds `0.0.0.0` and `::`).
//!
//! The parser is a pure function over text so it can be unit-, property- and fuzz-tested.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What the syntax looks like, repeated in every parse error so the user sees what is valid.
pub const SPEC_SYNTAX: &str = "[ip:][hostPort[-end]:]containerPort[-end][/tcp|udp]";

/// Transport protocol of a published port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// Stream connections, relayed with splice(2).
    Tcp,
    /// Datagrams, relayed through a bounded flow table.
    Udp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        })
    }
}

impl FromStr for Protocol {
    type Err = SpecError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "tcp" => Ok(Protocol::Tcp),
            "udp" => Ok(Protocol::Udp),
            _ => Err(SpecError::UnknownProtocol(s.to_string())),
        }
    }
}

/// An inclusive range of ports; a single port is a range of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PortRange {
    /// First port.
    pub start: u16,
    /// Last port, `>= start`.
    pub end: u16,
}

impl PortRange {
    /// Number of ports in the range (1..=65536).
    pub fn len(&self) -> u32 {
        // Saturating: a range built by hand with end < start counts as one port, never wraps.
        u32::from(self.end).saturating_sub(u32::from(self.start)) + 1
    }

    /// A range always holds at least one port; kept for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The ports of the range, in order.
    pub fn iter(&self) -> impl Iterator<Item = u16> + use<> {
        self.start..=self.end
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.start == self.end {
            write!(f, "{}", self.start)
        } else {
            write!(f, "{}-{}", self.start, self.end)
        }
    }
}

/// A parsed `-p` argument, not yet bound to a container address.
///
/// Serialised as its text form and deserialised through the parser, so a `PortSpec` from JSON is
/// validated like one from the command line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PortSpec {
    /// Host address to listen on; `None` means `0.0.0.0` and `::`.
    pub host_ip: Option<IpAddr>,
    /// Host ports; `None` means one kernel-chosen port per container port.
    pub host_ports: Option<PortRange>,
    /// Container ports, same length as `host_ports` when both are given.
    pub container_ports: PortRange,
    /// Protocol, `tcp` when not written.
    pub proto: Protocol,
}

/// One resolved forwarding: a host socket address to a container socket address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Mapping {
    /// Protocol of both ends.
    pub proto: Protocol,
    /// Where the proxy listens (port 0: kernel-chosen).
    pub host: SocketAddr,
    /// Where the proxy forwards to.
    pub container: SocketAddr,
}

impl fmt::Display for Mapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}->{}/{}", self.host, self.container, self.proto)
    }
}

/// Why a publish specification was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// The text does not follow [`SPEC_SYNTAX`].
    #[error("invalid port mapping {spec:?}: {reason}; expected {SPEC_SYNTAX}")]
    Invalid {
        /// The whole specification as given.
        spec: String,
        /// What part is wrong.
        reason: String,
    },
    /// A protocol other than tcp or udp.
    #[error("unknown protocol {0:?}: expected tcp or udp")]
    UnknownProtocol(String),
}

fn invalid(spec: &str, reason: impl Into<String>) -> SpecError {
    SpecError::Invalid {
        spec: spec.to_string(),
        reason: reason.into(),
    }
}

fn parse_port(spec: &str, what: &str, s: &str) -> Result<u16, SpecError> {
    if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(
            spec,
            format!("{what} {s:?} is not a port number (1-65535)"),
        ));
    }
    match s.parse::<u32>() {
        Ok(p @ 1..=65535) => Ok(p as u16),
        _ => Err(invalid(
            spec,
            format!("{what} {s:?} is out of range (1-65535)"),
        )),
    }
}

fn parse_range(spec: &str, what: &str, s: &str) -> Result<PortRange, SpecError> {
    let (start, end) = match s.split_once('-') {
        Some((a, b)) => (parse_port(spec, what, a)?, parse_port(spec, what, b)?),
        None => {
            let p = parse_port(spec, what, s)?;
            (p, p)
        }
    };
    if end < start {
        return Err(invalid(
            spec,
            format!("{what} range {s:?} ends before it starts"),
        ));
    }
    Ok(PortRange { start, end })
}

fn same_length(
    spec: &str,
    host_ports: Option<PortRange>,
    container_ports: PortRange,
) -> Result<(), SpecError> {
    match host_ports {
        Some(h) if h.len() != container_ports.len() => Err(invalid(
            spec,
            format!(
                "host range {h} has {} ports but container range {container_ports} has {}",
                h.len(),
                container_ports.len()
            ),
        )),
        _ => Ok(()),
    }
}

impl PortSpec {
    /// The spec of one Docker API port binding: `key` is `PortBindings`' key
    /// (`PORT[-PORT][/PROTO]`), `host_ip` and `host_port` its entry's `HostIp` (empty: every
    /// address; IPv6 with or without brackets) and `HostPort` (empty: kernel-chosen). Checked as
    /// `-p` text is; the error shows the binding.
    pub fn from_binding(key: &str, host_ip: &str, host_port: &str) -> Result<PortSpec, SpecError> {
        let spec = format!("{key} (HostIp {host_ip:?}, HostPort {host_port:?})");
        let (ports, proto) = match key.rsplit_once('/') {
            Some((p, proto)) => (p, proto.parse::<Protocol>()?),
            None => (key, Protocol::Tcp),
        };
        let host_ip = match host_ip.trim_start_matches('[').trim_end_matches(']') {
            "" => None,
            ip => Some(
                ip.parse::<IpAddr>()
                    .map_err(|_| invalid(&spec, format!("host IP {ip:?} is not an IP address")))?,
            ),
        };
        let container_ports = parse_range(&spec, "container port", ports)?;
        let host_ports = match host_port {
            "" => None,
            h => Some(parse_range(&spec, "host port", h)?),
        };
        same_length(&spec, host_ports, container_ports)?;
        Ok(PortSpec {
            host_ip,
            host_ports,
            container_ports,
            proto,
        })
    }
}

fn parse_ip(spec: &str, s: &str) -> Result<IpAddr, SpecError> {
    if let Some(inner) = s.strip_prefix('[') {
        let inner = inner
            .strip_suffix(']')
            .ok_or_else(|| invalid(spec, format!("host IP {s:?} lacks its closing ']'")))?;
        return inner
            .parse::<Ipv6Addr>()
            .map(IpAddr::V6)
            .map_err(|_| invalid(spec, format!("host IP {inner:?} is not an IPv6 address")));
    }
    s.parse::<Ipv4Addr>().map(IpAddr::V4).map_err(|_| {
        invalid(
            spec,
            format!("host IP {s:?} is not an IPv4 address (write IPv6 as [addr])"),
        )
    })
}

impl FromStr for PortSpec {
    type Err = SpecError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        if spec.is_empty() {
            return Err(invalid(spec, "it is empty"));
        }
        let (rest, proto) = match spec.rsplit_once('/') {
            Some((rest, p)) => (rest, p.parse::<Protocol>()?),
            None => (spec, Protocol::Tcp),
        };
        // Split the host IP off first: a bracketed IPv6 address contains colons itself.
        let (host_ip, ports) = if rest.starts_with('[') {
            let close = rest
                .find(']')
                .ok_or_else(|| invalid(spec, "IPv6 host IP lacks its closing ']'"))?;
            let ip = parse_ip(spec, &rest[..=close])?;
            let after = rest[close + 1..]
                .strip_prefix(':')
                .ok_or_else(|| invalid(spec, "expected ':' after the bracketed host IP"))?;
            (Some(ip), after)
        } else {
            match rest.matches(':').count() {
                0 | 1 => (None, rest),
                2 => {
                    let (ip, after) = rest.split_once(':').unwrap_or_default();
                    (Some(parse_ip(spec, ip)?), after)
                }
                _ => {
                    return Err(invalid(
                        spec,
                        "too many ':' (write an IPv6 host IP in brackets)",
                    ));
                }
            }
        };
        let (host_part, ctr_part) = match ports.split_once(':') {
            Some((h, c)) => (Some(h), c),
            None if host_ip.is_some() => {
                return Err(invalid(
                    spec,
                    "a host IP needs ':hostPort:containerPort' after it",
                ));
            }
            None => (None, ports),
        };
        let container_ports = parse_range(spec, "container port", ctr_part)?;
        let host_ports = match host_part {
            None | Some("") => None,
            Some(h) => Some(parse_range(spec, "host port", h)?),
        };
        same_length(spec, host_ports, container_ports)?;
        Ok(PortSpec {
            host_ip,
            host_ports,
            container_ports,
            proto,
        })
    }
}

impl TryFrom<String> for PortSpec {
    type Error = SpecError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<PortSpec> for String {
    fn from(s: PortSpec) -> String {
        s.to_string()
    }
}

impl PortSpec {
    /// Resolves the specification against a container address into concrete mappings.
    ///
    /// Without a host IP this yields one mapping on `0.0.0.0` and one on `::` per port, as Docker
    /// publishes both families; an IPv6 host address may forward to an IPv4 container.
    pub fn mappings(&self, container_ip: IpAddr) -> Vec<Mapping> {
        let hosts: Vec<IpAddr> = match self.host_ip {
            Some(ip) => vec![ip],
            None => vec![
                IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            ],
        };
        let mut out = Vec::with_capacity(hosts.len() * self.container_ports.len() as usize);
        for host_ip in hosts {
            for (i, cport) in self.container_ports.iter().enumerate() {
                let hport = self.host_ports.map_or(0, |h| h.start + i as u16);
                out.push(Mapping {
                    proto: self.proto,
                    host: SocketAddr::new(host_ip, hport),
                    container: SocketAddr::new(container_ip, cport),
                });
            }
        }
        out
    }
}

impl fmt::Display for PortSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.host_ip {
            Some(IpAddr::V6(ip)) => write!(f, "[{ip}]:")?,
            Some(IpAddr::V4(ip)) => write!(f, "{ip}:")?,
            None => {}
        }
        match self.host_ports {
            Some(h) => write!(f, "{h}:")?,
            None if self.host_ip.is_some() => f.write_str(":")?,
            None => {}
        }
        write!(f, "{}/{}", self.container_ports, self.proto)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(s: &str) -> PortSpec {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn api_bindings_are_specs() {
        let b = |k: &str, ip: &str, port: &str| PortSpec::from_binding(k, ip, port);
        assert_eq!(b("80/tcp", "", "8080").unwrap(), "8080:80".parse().unwrap());
        assert_eq!(
            b("53/udp", "127.0.0.1", "").unwrap(),
            "127.0.0.1::53/udp".parse().unwrap()
        );
        assert_eq!(
            b("80", "::1", "8080").unwrap(),
            "[::1]:8080:80".parse().unwrap()
        );
        assert_eq!(b("80", "[::1]", "").unwrap(), "[::1]::80".parse().unwrap());
        assert_eq!(
            b("90-91/tcp", "", "9000-9001").unwrap(),
            "9000-9001:90-91".parse().unwrap()
        );
        let e = b("80/tcp", "nowhere", "8080").unwrap_err().to_string();
        assert!(e.contains("\"nowhere\"") && e.contains("80/tcp"), "{e}");
        assert!(b("80/sctp", "", "").is_err());
        assert!(b("0/tcp", "", "").is_err());
        assert!(
            b("80/tcp", "", "8000-8010")
                .unwrap_err()
                .to_string()
                .contains("range")
        );
    }

    #[test]
    fn docker_forms() {
        let s = p("8080:80");
        assert_eq!(s.host_ip, None);
        assert_eq!(
            s.host_ports,
            Some(PortRange {
                start: 8080,
                end: 8080
            })
        );
        assert_eq!(s.container_ports, PortRange { start: 80, end: 80 });
        assert_eq!(s.proto, Protocol::Tcp);

        let s = p("127.0.0.1:53:53/udp");
        assert_eq!(s.host_ip, Some("127.0.0.1".parse().unwrap()));
        assert_eq!(s.proto, Protocol::Udp);

        let s = p("[::1]:8000-8100:8000-8100/tcp");
        assert_eq!(s.host_ip, Some("::1".parse().unwrap()));
        assert_eq!(s.host_ports.unwrap().len(), 101);

        let s = p("80");
        assert_eq!(s.host_ports, None);
        let s = p("10.0.0.1::80/UDP");
        assert_eq!(s.host_ports, None);
        assert_eq!(s.proto, Protocol::Udp);
    }

    #[test]
    fn errors_name_the_bad_part() {
        let e = |s: &str| s.parse::<PortSpec>().unwrap_err().to_string();
        assert!(e("8080:80/sctp").contains("\"sctp\""));
        assert!(e("8080:99999").contains("\"99999\""));
        assert!(e("8080:0").contains("out of range"));
        assert!(e("x:80").contains("\"x\""));
        assert!(e("1.2.3:80:80").contains("\"1.2.3\""));
        assert!(e("::1:80:80").contains("brackets"));
        assert!(e("[::1:80:80").contains("']'"));
        assert!(e("8000-8010:80-81").contains("11 ports"));
        assert!(e("90-80:90-80").contains("ends before"));
        assert!(e("").contains("empty"));
        assert!(e("1.2.3.4:80").contains("host port \"1.2.3.4\""));
    }

    #[test]
    fn mappings_expand_ranges_and_families() {
        let m = p("8000-8002:9000-9002").mappings("172.17.0.2".parse().unwrap());
        assert_eq!(m.len(), 6);
        assert_eq!(m[0].host, "0.0.0.0:8000".parse().unwrap());
        assert_eq!(m[2].container, "172.17.0.2:9002".parse().unwrap());
        assert_eq!(m[3].host, "[::]:8000".parse().unwrap());
        let m = p("[::1]:8080:80").mappings("10.1.0.2".parse().unwrap());
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].container, "10.1.0.2:80".parse().unwrap());
        let m = p("80").mappings("10.1.0.2".parse().unwrap());
        assert_eq!(m[0].host.port(), 0);
    }

    proptest! {
        #[test]
        fn display_round_trips(
            ip in proptest::option::of(any::<IpAddr>()),
            hstart in 1u16..60000, len in 0u16..100, cstart in 1u16..60000,
            with_host in any::<bool>(), udp in any::<bool>(),
        ) {
            let spec = PortSpec {
                host_ip: ip,
                host_ports: with_host.then_some(PortRange { start: hstart, end: hstart + len }),
                container_ports: PortRange { start: cstart, end: cstart + len },
                proto: if udp { Protocol::Udp } else { Protocol::Tcp },
            };
            let text = spec.to_string();
            prop_assert_eq!(text.parse::<PortSpec>().unwrap(), spec);
        }

        #[test]
        fn never_panics(s in "\\PC{0,40}") {
            let _ = s.parse::<PortSpec>();
        }
    }
}
