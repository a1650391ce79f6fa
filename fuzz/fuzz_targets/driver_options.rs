//! Any text as `docker network create --driver D -o k=v ...` input: the driver option parser
//! never panics, and what it accepts is a valid configuration (interface names within 15
//! bytes, MTUs in range).
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use netcore::network::{DriverConfig, driver_config, validate_name};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.lines();
    let driver = lines.next().unwrap_or_default();
    let _ = validate_name(driver);
    let options: BTreeMap<String, String> = lines
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    if let Ok(c) = driver_config(driver, id, &options) {
        match c {
            DriverConfig::Bridge { bridge, mtu, .. } => {
                assert!(!bridge.is_empty() && bridge.len() <= 15);
                assert!(mtu.is_none_or(|m| (68..=65535).contains(&m)));
            }
            DriverConfig::Macvlan { parent, .. } | DriverConfig::Ipvlan { parent, .. } => {
                assert!(!parent.is_empty() && parent.len() <= 15);
            }
            DriverConfig::Host | DriverConfig::Null => panic!("host/null cannot be created"),
        }
    }
});
