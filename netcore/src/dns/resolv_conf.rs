//! The host's resolv.conf, read leniently (a bad line is a warning, never a dead resolver), and the
//! resolv.conf a container gets.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

/// The embedded resolver's address inside every container namespace.
pub const EMBEDDED: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 11));

/// Docker's fallback nameservers for default-bridge containers whose host has none usable.
const DOCKER_FALLBACK: [&str; 2] = ["8.8.8.8", "8.8.4.4"];

/// What a resolv.conf says, as far as containers are concerned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvConf {
    /// `nameserver` lines, in order, at port 53.
    pub nameservers: Vec<SocketAddr>,
    /// `search` (or `domain`) domains.
    pub search: Vec<String>,
    /// `options` words (`ndots:2`, `rotate`, ...), passed on to containers.
    pub options: Vec<String>,
}

/// A line that was skipped, with why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong and what would be valid.
    pub message: String,
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// Parses a nameserver as `IP`, `IP:PORT` or `[IPv6]:PORT`; port 53 unless given.
pub fn parse_server(s: &str) -> Result<SocketAddr, String> {
    let s = s.trim();
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, 53));
    }
    s.parse::<SocketAddr>().map_err(|_| {
        format!("invalid DNS server {s:?}: expected an IP address, IP:PORT or [IPv6]:PORT")
    })
}

impl ResolvConf {
    /// Parses resolv.conf text. Unknown keywords are ignored as the C library does; malformed
    /// values are skipped with a warning.
    pub fn parse(text: &str) -> (ResolvConf, Vec<Warning>) {
        let mut rc = ResolvConf::default();
        let mut warnings = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.split(['#', ';']).next().unwrap_or("").trim();
            let mut words = line.split_whitespace();
            let Some(key) = words.next() else { continue };
            let warn = |message: String| Warning {
                line: i + 1,
                message,
            };
            match key {
                "nameserver" => match (words.next(), words.next()) {
                    (Some(addr), None) => {
                        // A link-local IPv6 server may carry its zone: fe80::1%eth0.
                        let ip = addr.split('%').next().unwrap_or(addr);
                        match ip.parse::<IpAddr>() {
                            Ok(ip) => rc.nameservers.push(SocketAddr::new(ip, 53)),
                            Err(_) => warnings.push(warn(format!(
                                "nameserver {addr:?} is not an IP address; skipped"
                            ))),
                        }
                    }
                    _ => warnings.push(warn(format!(
                        "{line:?}: expected `nameserver ADDRESS`; skipped"
                    ))),
                },
                "search" | "domain" => {
                    let domains: Vec<String> = words.map(str::to_string).collect();
                    if domains.is_empty() {
                        warnings.push(warn(format!("`{key}` without a domain; skipped")));
                    } else {
                        rc.search = domains;
                    }
                }
                "options" => rc.options.extend(words.map(str::to_string)),
                _ => {}
            }
        }
        (rc, warnings)
    }

    /// Nameservers a container's own namespace can reach: loopback ones are the host's.
    fn reachable_from_container(&self) -> impl Iterator<Item = &SocketAddr> {
        self.nameservers.iter().filter(|s| !s.ip().is_loopback())
    }
}

/// What a container's resolv.conf should say beyond the host's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerDns {
    /// `--dns`.
    pub servers: Vec<IpAddr>,
    /// `--dns-search`.
    pub search: Vec<String>,
    /// `--dns-option`.
    pub options: Vec<String>,
}

/// The resolv.conf a container gets, as Docker writes it: on a user-defined network it points at
/// the embedded resolver (which forwards to the host's servers, or `--dns`) and keeps the host's
/// search domains; on the default bridge it gets the host's servers minus loopback ones (Docker's
/// public fallback when none remain).
pub fn container_resolv_conf(host: &ResolvConf, dns: &ContainerDns, embedded: bool) -> String {
    let search = if dns.search.is_empty() {
        &host.search
    } else {
        &dns.search
    };
    let mut options: Vec<&str> = if dns.options.is_empty() {
        host.options.iter().map(String::as_str).collect()
    } else {
        dns.options.iter().map(String::as_str).collect()
    };
    let mut out = String::new();
    if embedded {
        let _ = writeln!(out, "nameserver {EMBEDDED}");
        if !options.iter().any(|o| o.starts_with("ndots:")) {
            options.insert(0, "ndots:0");
        }
    } else if !dns.servers.is_empty() {
        for s in &dns.servers {
            let _ = writeln!(out, "nameserver {s}");
        }
    } else {
        let mut any = false;
        for s in host.reachable_from_container() {
            let _ = writeln!(out, "nameserver {}", s.ip());
            any = true;
        }
        if !any {
            for s in DOCKER_FALLBACK {
                let _ = writeln!(out, "nameserver {s}");
            }
        }
    }
    if !search.is_empty() {
        let _ = writeln!(out, "search {}", search.join(" "));
    }
    if !options.is_empty() {
        let _ = writeln!(out, "options {}", options.join(" "));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_servers_search_and_options() {
        let (rc, w) = ResolvConf::parse(
            "# generated\nnameserver 10.0.0.2\nnameserver fe80::1%eth0 \nsearch a.example b.example\noptions ndots:2 rotate\n",
        );
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(
            rc.nameservers,
            vec![
                "10.0.0.2:53".parse().unwrap(),
                "[fe80::1]:53".parse().unwrap()
            ]
        );
        assert_eq!(rc.search, ["a.example", "b.example"]);
        assert_eq!(rc.options, ["ndots:2", "rotate"]);
    }

    #[test]
    fn malformed_lines_warn_and_the_rest_still_counts() {
        let (rc, w) =
            ResolvConf::parse("nameserver bogus\nnameserver\nsearch\nnameserver 10.0.0.3\n");
        assert_eq!(rc.nameservers, vec!["10.0.0.3:53".parse().unwrap()]);
        assert_eq!(w.len(), 3);
        assert_eq!(w[0].line, 1);
        assert!(w[0].message.contains("\"bogus\""), "{}", w[0]);
        assert!(w[2].message.contains("search"), "{}", w[2]);
    }

    #[test]
    fn servers_parse_with_and_without_port() {
        assert_eq!(
            parse_server("10.1.2.3").unwrap(),
            "10.1.2.3:53".parse().unwrap()
        );
        assert_eq!(
            parse_server("127.0.0.1:5353").unwrap(),
            "127.0.0.1:5353".parse().unwrap()
        );
        assert_eq!(
            parse_server("[::1]:5353").unwrap(),
            "[::1]:5353".parse().unwrap()
        );
        let e = parse_server("dns.example").unwrap_err();
        assert!(
            e.contains("\"dns.example\"") && e.contains("IP:PORT"),
            "{e}"
        );
    }

    #[test]
    fn container_file_points_at_the_embedded_resolver_on_user_networks() {
        let (host, _) = ResolvConf::parse("nameserver 127.0.0.53\nsearch corp.example\n");
        let f = container_resolv_conf(&host, &ContainerDns::default(), true);
        assert_eq!(
            f,
            "nameserver 127.0.0.11\nsearch corp.example\noptions ndots:0\n"
        );
    }

    #[test]
    fn default_bridge_drops_loopback_servers() {
        let (host, _) = ResolvConf::parse("nameserver 127.0.0.53\nnameserver 10.0.0.2\n");
        let f = container_resolv_conf(&host, &ContainerDns::default(), false);
        assert_eq!(f, "nameserver 10.0.0.2\n");
        let (only_lo, _) = ResolvConf::parse("nameserver 127.0.0.53\n");
        let f = container_resolv_conf(&only_lo, &ContainerDns::default(), false);
        assert_eq!(f, "nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
        let dns = ContainerDns {
            servers: vec!["10.9.9.9".parse().unwrap()],
            search: vec!["x.example".into()],
            options: vec!["ndots:3".into()],
        };
        let f = container_resolv_conf(&only_lo, &dns, false);
        assert_eq!(
            f,
            "nameserver 10.9.9.9\nsearch x.example\noptions ndots:3\n"
        );
    }
}
