//! Parsers for the network options a user types (`--subnet`, `--ip-range`, `--gateway`, `--ip`):
//! pure functions whose errors name the option, the value and what would be valid.

use std::net::IpAddr;

use ipnet::IpNet;

/// A network option value that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {option} {value:?}: expected {expected}")]
pub struct OptionError {
    /// The option, as the user wrote it (`--subnet`).
    pub option: &'static str,
    /// The value given.
    pub value: String,
    /// What would be valid.
    pub expected: &'static str,
}

fn err(option: &'static str, value: &str, expected: &'static str) -> OptionError {
    OptionError {
        option,
        value: value.to_string(),
        expected,
    }
}

/// A subnet in CIDR form whose host bits are zero (`172.20.0.0/16`, `fd00:1::/64`).
pub fn parse_subnet(option: &'static str, value: &str) -> Result<IpNet, OptionError> {
    const EXPECTED: &str = "an address in CIDR form with its host bits zero, e.g. 172.20.0.0/16";
    let net: IpNet = value.parse().map_err(|_| err(option, value, EXPECTED))?;
    if net.network() != net.addr() {
        return Err(err(option, value, EXPECTED));
    }
    Ok(net)
}

/// A single IPv4 or IPv6 address (`--gateway`, `--ip`).
pub fn parse_ip(option: &'static str, value: &str) -> Result<IpAddr, OptionError> {
    value
        .parse()
        .map_err(|_| err(option, value, "an IPv4 or IPv6 address, e.g. 172.20.0.1"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_must_be_canonical() {
        assert_eq!(
            parse_subnet("--subnet", "172.20.0.0/16")
                .unwrap()
                .to_string(),
            "172.20.0.0/16"
        );
        assert!(parse_subnet("--subnet", "fd00:1::/64").is_ok());
        let e = parse_subnet("--subnet", "172.20.0.1/16").unwrap_err();
        assert!(e.to_string().contains("\"172.20.0.1/16\""), "{e}");
        assert!(e.to_string().contains("--subnet"));
        assert!(parse_subnet("--subnet", "172.20.0.0/33").is_err());
        assert!(parse_subnet("--subnet", "banana").is_err());
    }

    #[test]
    fn addresses() {
        assert!(parse_ip("--gateway", "172.20.0.1").is_ok());
        let e = parse_ip("--ip", "172.20.0.300").unwrap_err();
        assert!(e.to_string().starts_with("invalid --ip \"172.20.0.300\""));
    }
}
