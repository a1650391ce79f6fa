//! Validation of `docker network create` input: names and driver options become a
//! [`DriverConfig`] or an error naming the bad value and what would be valid. Pure.

use std::collections::BTreeMap;

use super::NetworkError;
use super::model::DriverConfig;
use crate::link::{IpvlanMode, MacvlanMode};

const MTU: &str = "com.docker.network.driver.mtu";
const BRIDGE_NAME: &str = "com.docker.network.bridge.name";
const ICC: &str = "com.docker.network.bridge.enable_icc";
const MASQ: &str = "com.docker.network.bridge.enable_ip_masquerade";
const PARENT: &str = "parent";
const MACVLAN_MODE: &str = "macvlan_mode";
const IPVLAN_MODE: &str = "ipvlan_mode";

/// Checks a network name as Docker does: any non-empty name (spaces, `/`, `:` and `.`
/// included). berth also refuses control characters, which only break logs and terminals.
pub fn validate_name(name: &str) -> Result<(), NetworkError> {
    if name.is_empty() {
        return Err(NetworkError::Invalid(
            "invalid network name \"\": a network needs a name".into(),
        ));
    }
    if let Some(c) = name.chars().find(|c| c.is_control()) {
        return Err(NetworkError::Invalid(format!(
            "invalid network name {name:?}: control characters such as {c:?} are not allowed"
        )));
    }
    Ok(())
}

/// Checks an interface name: 1 to 15 bytes, no `/`, whitespace or `:`.
pub fn validate_ifname(option: &str, name: &str) -> Result<(), NetworkError> {
    let ok = !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(NetworkError::Invalid(format!(
            "invalid {option} {name:?}: an interface name is 1 to 15 characters without '/', ':' or spaces"
        )))
    }
}

fn parse_bool(key: &str, value: &str) -> Result<bool, NetworkError> {
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(NetworkError::Invalid(format!(
            "invalid option {key}={value:?}: expected true or false"
        ))),
    }
}

fn parse_mtu(value: &str) -> Result<u32, NetworkError> {
    match value.parse::<u32>() {
        Ok(m) if (68..=65535).contains(&m) => Ok(m),
        _ => Err(NetworkError::Invalid(format!(
            "invalid option {MTU}={value:?}: expected an MTU between 68 and 65535"
        ))),
    }
}

/// Turns `--driver` and `-o` options into a validated driver configuration. `id` is the new
/// network's ID (a user bridge is named `br-` + its first 12 digits, as Docker names them).
pub fn driver_config(
    driver: &str,
    id: &str,
    options: &BTreeMap<String, String>,
) -> Result<DriverConfig, NetworkError> {
    let allowed: &[&str] = match driver {
        "bridge" => &[MTU, BRIDGE_NAME, ICC, MASQ],
        "macvlan" => &[MTU, PARENT, MACVLAN_MODE],
        "ipvlan" => &[MTU, PARENT, IPVLAN_MODE],
        "host" | "null" | "none" => {
            return Err(NetworkError::Invalid(format!(
                "only one instance of {driver:?} network is allowed: it is predefined"
            )));
        }
        _ => {
            return Err(NetworkError::Invalid(format!(
                "unknown network driver {driver:?}: expected bridge, macvlan or ipvlan"
            )));
        }
    };
    if let Some(key) = options.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(NetworkError::Invalid(format!(
            "unknown option {key:?} for the {driver} driver: expected one of {}",
            allowed.join(", ")
        )));
    }
    let get = |k: &str| options.get(k).map(String::as_str);
    let mtu = get(MTU).map(parse_mtu).transpose()?;
    let parent = || -> Result<String, NetworkError> {
        let p = get(PARENT).ok_or_else(|| {
            NetworkError::Invalid(format!(
                "the {driver} driver needs -o parent=<host interface>"
            ))
        })?;
        validate_ifname("parent", p)?;
        Ok(p.to_string())
    };
    Ok(match driver {
        "bridge" => {
            let bridge = match get(BRIDGE_NAME) {
                Some(b) => {
                    validate_ifname(BRIDGE_NAME, b)?;
                    b.to_string()
                }
                None => format!("br-{}", &id[..12.min(id.len())]),
            };
            DriverConfig::Bridge {
                bridge,
                mtu,
                icc: get(ICC)
                    .map(|v| parse_bool(ICC, v))
                    .transpose()?
                    .unwrap_or(true),
                masquerade: get(MASQ)
                    .map(|v| parse_bool(MASQ, v))
                    .transpose()?
                    .unwrap_or(true),
            }
        }
        "macvlan" => DriverConfig::Macvlan {
            parent: parent()?,
            mode: get(MACVLAN_MODE)
                .map(|m| m.parse::<MacvlanMode>())
                .transpose()
                .map_err(|e| NetworkError::Invalid(e.to_string()))?
                .unwrap_or(MacvlanMode::Bridge),
            mtu,
        },
        _ => DriverConfig::Ipvlan {
            parent: parent()?,
            mode: get(IPVLAN_MODE)
                .map(|m| m.parse::<IpvlanMode>())
                .transpose()
                .map_err(|e| NetworkError::Invalid(e.to_string()))?
                .unwrap_or(IpvlanMode::L2),
            mtu,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn bridge_defaults_and_options() {
        let id = "0123456789abcdef0123";
        assert_eq!(
            driver_config("bridge", id, &opts(&[])).unwrap(),
            DriverConfig::Bridge {
                bridge: "br-0123456789ab".into(),
                mtu: None,
                icc: true,
                masquerade: true
            }
        );
        let c = driver_config(
            "bridge",
            id,
            &opts(&[(BRIDGE_NAME, "mybr"), (ICC, "false"), (MTU, "1400")]),
        )
        .unwrap();
        assert_eq!(
            c,
            DriverConfig::Bridge {
                bridge: "mybr".into(),
                mtu: Some(1400),
                icc: false,
                masquerade: true
            }
        );
    }

    #[test]
    fn errors_name_the_value_and_what_is_valid() {
        let e = |d, o: &[(&str, &str)]| driver_config(d, "ab", &opts(o)).unwrap_err().to_string();
        assert!(e("overlay", &[]).contains("\"overlay\": expected bridge, macvlan or ipvlan"));
        assert!(e("bridge", &[(ICC, "maybe")]).contains("\"maybe\": expected true or false"));
        assert!(e("bridge", &[(MTU, "9")]).contains("between 68 and 65535"));
        assert!(e("bridge", &[("foo", "1")]).contains("unknown option \"foo\""));
        assert!(e("bridge", &[(BRIDGE_NAME, "a-very-long-bridge-name")]).contains("1 to 15"));
        assert!(e("macvlan", &[]).contains("-o parent="));
        assert!(e("macvlan", &[(PARENT, "eth0"), (MACVLAN_MODE, "x")]).contains("\"x\""));
        assert!(e("host", &[]).contains("predefined"));
    }

    #[test]
    fn macvlan_and_ipvlan() {
        let c = driver_config(
            "macvlan",
            "ab",
            &opts(&[(PARENT, "eth0"), (MACVLAN_MODE, "vepa")]),
        );
        assert_eq!(
            c.unwrap(),
            DriverConfig::Macvlan {
                parent: "eth0".into(),
                mode: MacvlanMode::Vepa,
                mtu: None
            }
        );
        let c = driver_config(
            "ipvlan",
            "ab",
            &opts(&[(PARENT, "eth0"), (IPVLAN_MODE, "l3")]),
        );
        assert_eq!(
            c.unwrap(),
            DriverConfig::Ipvlan {
                parent: "eth0".into(),
                mode: IpvlanMode::L3,
                mtu: None
            }
        );
    }

    #[test]
    fn names() {
        // What dockerd 20.10 accepts.
        for ok in ["my-net_1.2", "-x", "a b", "x/y", "x:y", ".", "UPPER"] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        assert!(validate_name("").is_err());
        assert!(
            validate_name("a\nb")
                .unwrap_err()
                .to_string()
                .contains("\"a\\nb\"")
        );
    }
}
