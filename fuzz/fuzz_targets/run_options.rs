//! Any text as the small `docker run` parsers: `-v`, `--mount`, `-e`, `--env-file`,
//! `--add-host`, `--restart`, `--volumes-from`, `--name`, `--hostname`, `logs --since` (as the
//! CLI reads it and as berthd does). They
//! never panic, and what they accept is well formed (absolute targets other than `/`, env names
//! without whitespace, names Docker would take).
#![no_main]

use engine::container::RestartPolicy;
use engine::container::etc::{hostname, parse_add_host};
use engine::container::mounts::parse_volumes_from;
use engine::container::names::validate_name;
use berth_api::opts::env::{parse_env_arg, parse_env_file};
use berth_api::opts::mount::{parse_mount, parse_volume};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    for m in [parse_volume(s), parse_mount(s)].into_iter().flatten() {
        assert!(m.target.starts_with('/') && m.target.trim_end_matches('/') != "");
    }
    let lookup = |n: &str| (n == "HOME").then(|| "/root".to_string());
    if let Ok(Some((k, _))) = parse_env_arg(s, lookup) {
        assert!(!k.is_empty() && !k.chars().any(char::is_whitespace));
    }
    if let Ok(entries) = parse_env_file("f", s, lookup) {
        assert!(entries.iter().all(|(k, _)| !k.is_empty() && !k.contains('=')));
    }
    let gateway = Some(std::net::Ipv4Addr::new(172, 17, 0, 1).into());
    let _ = parse_add_host(s, gateway);
    if let Ok(p) = RestartPolicy::parse(s) {
        // What parses names itself again.
        let _ = p.name();
    }
    if let Ok((container, _)) = parse_volumes_from(s) {
        assert!(!container.is_empty());
    }
    if let Ok(name) = validate_name(s) {
        assert!(name.len() >= 2 && !name.contains('/'));
    }
    let _ = hostname(Some(s), "0123456789abcdef0123456789abcdef");
    if let Some((_, nanos)) = berth_common::time::parse(s) {
        assert!(nanos < 1_000_000_000);
    }
    if let Ok(t) = berth_common::time::docker_timestamp_from_now(s) {
        assert!(berth_common::time::parse_unix(&t).is_some(), "{t}");
    }
});
