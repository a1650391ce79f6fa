//! The files a container gets at /etc/hostname, /etc/hosts and /etc/resolv.conf, generated per
//! container as Docker writes them. Pure: the engine writes what these return.

use std::fmt::Write;
use std::net::IpAddr;

use super::ContainerError;

/// `--add-host NAME:IP` (also `NAME=IP`, and `host-gateway` for the bridge gateway).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraHost {
    /// The name.
    pub name: String,
    /// Its address.
    pub ip: IpAddr,
}

/// Parses one `--add-host`; `gateway` stands in for `host-gateway`.
pub fn parse_add_host(s: &str, gateway: Option<IpAddr>) -> Result<ExtraHost, ContainerError> {
    let bad = |why: &str| {
        ContainerError::Invalid(format!(
            "invalid argument {s:?} for \"--add-host\" flag: {why}; expected HOST:IP or HOST=IP"
        ))
    };
    let (name, ip) = s
        .split_once('=')
        .or_else(|| s.split_once(':'))
        .ok_or_else(|| bad("no address"))?;
    if name.is_empty() || name.chars().any(|c| c.is_whitespace()) {
        return Err(bad("bad host name"));
    }
    let ip = match ip.trim_start_matches('[').trim_end_matches(']') {
        "host-gateway" => gateway.ok_or_else(|| bad("host-gateway needs a bridge network"))?,
        v => v.parse().map_err(|_| bad("bad IP address"))?,
    };
    Ok(ExtraHost {
        name: name.to_string(),
        ip,
    })
}

/// /etc/hosts: loopback and IPv6 well-known names, `--add-host` entries, `--link` entries
/// (`IP alias name`, default bridge), then the container's own addresses with its hostname.
pub fn hosts(
    hostname: &str,
    own: &[IpAddr],
    extra: &[ExtraHost],
    links: &[(IpAddr, Vec<String>)],
) -> String {
    let mut out = String::from(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n",
    );
    for h in extra {
        let _ = writeln!(out, "{}\t{}", h.ip, h.name);
    }
    for (ip, names) in links {
        let _ = writeln!(out, "{ip}\t{}", names.join(" "));
    }
    for ip in own {
        let _ = writeln!(out, "{ip}\t{hostname}");
    }
    out
}

/// The hostname Docker gives: `--hostname`, or the ID's first 12 digits.
pub fn hostname(requested: Option<&str>, id: &str) -> Result<String, ContainerError> {
    match requested {
        None | Some("") => Ok(id[..12.min(id.len())].to_string()),
        Some(h) => {
            let ok = h.len() <= 253
                && h.split('.').all(|l| {
                    !l.is_empty()
                        && l.len() <= 63
                        && !l.starts_with('-')
                        && l.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
                });
            if ok {
                Ok(h.to_string())
            } else {
                Err(ContainerError::Invalid(format!(
                    "invalid hostname {h:?}: expected labels of letters, digits and '-' separated by dots"
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_file_as_docker_writes_it() {
        let h = hosts(
            "abc",
            &["172.17.0.2".parse().unwrap()],
            &[parse_add_host("db.local:10.0.0.9", None).unwrap()],
            &[(
                "172.17.0.3".parse().unwrap(),
                vec!["db".into(), "pg".into()],
            )],
        );
        let lines: Vec<&str> = h.lines().collect();
        assert_eq!(lines[0], "127.0.0.1\tlocalhost");
        assert!(lines.contains(&"10.0.0.9\tdb.local"));
        assert!(lines.contains(&"172.17.0.3\tdb pg"));
        assert_eq!(*lines.last().unwrap(), "172.17.0.2\tabc");
    }

    #[test]
    fn add_host_forms() {
        let gw: IpAddr = "172.17.0.1".parse().unwrap();
        assert_eq!(
            parse_add_host("a=::1", None).unwrap().ip,
            "::1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            parse_add_host("a:[::1]", None).unwrap().ip,
            "::1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(parse_add_host("h:host-gateway", Some(gw)).unwrap().ip, gw);
        for bad in ["nohost", "a:1.2.3", ":1.2.3.4", "h:host-gateway"] {
            let e = parse_add_host(bad, None).unwrap_err().to_string();
            assert!(e.contains(bad) && e.contains("HOST:IP"), "{e}");
        }
    }

    #[test]
    fn hostnames() {
        let id = "0123456789abcdef".repeat(4);
        assert_eq!(hostname(None, &id).unwrap(), "0123456789ab");
        assert_eq!(hostname(Some("web.local"), &id).unwrap(), "web.local");
        assert!(hostname(Some("-bad"), &id).is_err());
        assert!(hostname(Some("a..b"), &id).is_err());
    }
}
