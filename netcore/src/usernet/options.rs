//! `--network slirp[:OPTION=VALUE,...]`: the options a user writes and the address layout they
//! give. Podman's slirp4netns option names, where Podman has one.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use ipnet::{Ipv4Net, Ipv6Net};

/// The network mode's name.
pub const MODE: &str = "slirp";

/// The largest MTU: what fits a TAP frame of 65535 bytes with its Ethernet header.
pub const MAX_MTU: u16 = 65520;

/// The options of one userspace network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The gateway address reaches the host's loopback (`127.0.0.1` / `::1`). Off by default, so
    /// the host's local services are out of a container's reach.
    pub allow_host_loopback: bool,
    /// The TAP device's MTU (and the stack's).
    pub mtu: u16,
    /// The IPv4 network: gateway at `.2`, resolver at `.3`, container at `.100`.
    pub cidr: Ipv4Net,
    /// IPv6 alongside IPv4 (fd00::/64, same host numbers).
    pub enable_ipv6: bool,
    /// Host address outgoing IPv4 connections are made from.
    pub outbound_addr: Option<Ipv4Addr>,
    /// Host address outgoing IPv6 connections are made from.
    pub outbound_addr6: Option<Ipv6Addr>,
    /// Who answers published ports: `slirp4netns` keeps the client's source address, `rootlesskit`
    /// (Podman's default) shows the gateway as the source.
    pub port_handler: PortHandler,
}

/// How published ports reach the container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortHandler {
    /// Connections come from the gateway address.
    Rootlesskit,
    /// Connections come from the client's own address (loopback clients from the gateway).
    Slirp4netns,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            allow_host_loopback: false,
            mtu: MAX_MTU,
            cidr: Ipv4Net::new(Ipv4Addr::new(10, 0, 2, 0), 24).expect("valid prefix"),
            enable_ipv6: true,
            outbound_addr: None,
            outbound_addr6: None,
            port_handler: PortHandler::Rootlesskit,
        }
    }
}

/// Why a slirp option was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid slirp network option {option:?}: {reason}")]
pub struct OptionError {
    /// The option as written.
    pub option: String,
    /// What is wrong and what would be valid.
    pub reason: String,
}

fn bad(option: &str, reason: impl Into<String>) -> OptionError {
    OptionError {
        option: option.to_string(),
        reason: reason.into(),
    }
}

fn boolean(option: &str, v: &str) -> Result<bool, OptionError> {
    match v {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(bad(option, "expected true or false")),
    }
}

impl Options {
    /// Parses a network mode: `slirp` or `slirp:OPTION=VALUE,...`. `None` when the mode is not
    /// slirp at all.
    pub fn from_mode(mode: &str) -> Option<Result<Options, OptionError>> {
        if mode == MODE {
            return Some(Ok(Options::default()));
        }
        let rest = mode.strip_prefix(MODE)?.strip_prefix(':')?;
        Some(rest.parse())
    }

    /// The addresses this network gives the gateway, the resolver and the container.
    pub fn layout(&self) -> Layout {
        let base = u32::from(self.cidr.network());
        let v6 = Ipv6Net::new(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0), 64).expect("prefix");
        let host6 = |n: u16| Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, n);
        Layout {
            cidr: self.cidr,
            gateway: Ipv4Addr::from(base + 2),
            dns: Ipv4Addr::from(base + 3),
            container: Ipv4Addr::from(base + 100),
            cidr6: self.enable_ipv6.then_some(v6),
            gateway6: host6(2),
            dns6: host6(3),
            container6: host6(0x100),
        }
    }
}

impl FromStr for Options {
    type Err = OptionError;

    fn from_str(s: &str) -> Result<Options, OptionError> {
        let mut o = Options::default();
        for option in s.split(',').filter(|p| !p.is_empty()) {
            let Some((k, v)) = option.split_once('=') else {
                return Err(bad(option, "expected OPTION=VALUE"));
            };
            match k {
                "allow_host_loopback" => o.allow_host_loopback = boolean(option, v)?,
                "enable_ipv6" => o.enable_ipv6 = boolean(option, v)?,
                "mtu" => {
                    o.mtu = v
                        .parse()
                        .ok()
                        .filter(|m| (1280..=MAX_MTU).contains(m))
                        .ok_or_else(|| bad(option, format!("expected 1280 to {MAX_MTU}")))?
                }
                "cidr" => {
                    let net: Ipv4Net = v
                        .parse()
                        .map_err(|_| bad(option, "expected an IPv4 network such as 10.0.2.0/24"))?;
                    if net.prefix_len() > 25 {
                        return Err(bad(
                            option,
                            "the prefix must be /25 or wider (the container is .100)",
                        ));
                    }
                    o.cidr = net.trunc();
                }
                "outbound_addr" => {
                    o.outbound_addr = Some(
                        v.parse()
                            .map_err(|_| bad(option, "expected an IPv4 address of this host"))?,
                    )
                }
                "outbound_addr6" => {
                    o.outbound_addr6 = Some(
                        v.parse()
                            .map_err(|_| bad(option, "expected an IPv6 address of this host"))?,
                    )
                }
                "port_handler" => {
                    o.port_handler = match v {
                        "rootlesskit" => PortHandler::Rootlesskit,
                        "slirp4netns" => PortHandler::Slirp4netns,
                        _ => return Err(bad(option, "expected rootlesskit or slirp4netns")),
                    }
                }
                _ => {
                    return Err(bad(
                        option,
                        "known options are allow_host_loopback, cidr, enable_ipv6, mtu, \
                         outbound_addr, outbound_addr6 and port_handler",
                    ));
                }
            }
        }
        Ok(o)
    }
}

impl fmt::Display for Options {
    /// The canonical mode text (`slirp` when every option is the default), as inspect echoes it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = Options::default();
        let mut parts = Vec::new();
        if self.allow_host_loopback != d.allow_host_loopback {
            parts.push(format!("allow_host_loopback={}", self.allow_host_loopback));
        }
        if self.cidr != d.cidr {
            parts.push(format!("cidr={}", self.cidr));
        }
        if self.enable_ipv6 != d.enable_ipv6 {
            parts.push(format!("enable_ipv6={}", self.enable_ipv6));
        }
        if self.mtu != d.mtu {
            parts.push(format!("mtu={}", self.mtu));
        }
        if let Some(a) = self.outbound_addr {
            parts.push(format!("outbound_addr={a}"));
        }
        if let Some(a) = self.outbound_addr6 {
            parts.push(format!("outbound_addr6={a}"));
        }
        if self.port_handler != d.port_handler {
            parts.push("port_handler=slirp4netns".to_string());
        }
        if parts.is_empty() {
            write!(f, "{MODE}")
        } else {
            write!(f, "{MODE}:{}", parts.join(","))
        }
    }
}

/// Where everything sits in one userspace network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// The IPv4 network.
    pub cidr: Ipv4Net,
    /// The stack's own address, the container's default route.
    pub gateway: Ipv4Addr,
    /// The resolver the container's resolv.conf names.
    pub dns: Ipv4Addr,
    /// The container's address.
    pub container: Ipv4Addr,
    /// The IPv6 network, when enabled.
    pub cidr6: Option<Ipv6Net>,
    /// The stack's IPv6 address.
    pub gateway6: Ipv6Addr,
    /// The IPv6 resolver address.
    pub dns6: Ipv6Addr,
    /// The container's IPv6 address.
    pub container6: Ipv6Addr,
}

impl Layout {
    /// Whether `ip` is the gateway (either family).
    pub fn is_gateway(&self, ip: IpAddr) -> bool {
        ip == IpAddr::V4(self.gateway) || (self.cidr6.is_some() && ip == IpAddr::V6(self.gateway6))
    }

    /// Whether `ip` is the resolver (either family).
    pub fn is_dns(&self, ip: IpAddr) -> bool {
        ip == IpAddr::V4(self.dns) || (self.cidr6.is_some() && ip == IpAddr::V6(self.dns6))
    }

    /// The container's address in `ip`'s family.
    pub fn container_for(&self, ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V4(_) => IpAddr::V4(self.container),
            IpAddr::V6(_) => IpAddr::V6(self.container6),
        }
    }

    /// The gateway's address in `ip`'s family.
    pub fn gateway_for(&self, ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V4(_) => IpAddr::V4(self.gateway),
            IpAddr::V6(_) => IpAddr::V6(self.gateway6),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_with_podman_names_and_print_back() {
        assert!(Options::from_mode("bridge").is_none());
        assert!(Options::from_mode("slirpx").is_none());
        assert_eq!(Options::from_mode("slirp"), Some(Ok(Options::default())));
        let o = Options::from_mode(
            "slirp:allow_host_loopback=true,mtu=1500,cidr=10.9.0.7/16,port_handler=slirp4netns",
        )
        .unwrap()
        .unwrap();
        assert!(o.allow_host_loopback);
        assert_eq!(o.mtu, 1500);
        assert_eq!(o.cidr.to_string(), "10.9.0.0/16");
        assert_eq!(o.port_handler, PortHandler::Slirp4netns);
        let l = o.layout();
        assert_eq!(
            (
                l.gateway.to_string(),
                l.dns.to_string(),
                l.container.to_string()
            ),
            ("10.9.0.2".into(), "10.9.0.3".into(), "10.9.0.100".into())
        );
        let text = o.to_string();
        assert_eq!(Options::from_mode(&text), Some(Ok(o)));
        assert_eq!(Options::default().to_string(), "slirp");
    }

    #[test]
    fn bad_options_name_themselves_and_the_valid_forms() {
        for (mode, needle) in [
            ("slirp:mtu=70000", "1280 to 65520"),
            ("slirp:cidr=10.0.0.0/30", "/25"),
            ("slirp:cidr=nope", "IPv4 network"),
            ("slirp:allow_host_loopback=yes", "true or false"),
            ("slirp:port_handler=x", "rootlesskit or slirp4netns"),
            ("slirp:frobnicate=1", "known options"),
            ("slirp:mtu", "OPTION=VALUE"),
        ] {
            let e = Options::from_mode(mode).unwrap().unwrap_err();
            assert!(e.to_string().contains(needle), "{mode}: {e}");
            assert!(
                e.to_string().contains(mode.split(':').nth(1).unwrap()),
                "{e}"
            );
        }
    }
}
