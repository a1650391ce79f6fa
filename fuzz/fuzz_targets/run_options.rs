//! Any text as `-v`, `--mount`, `-e` and `--env-file`: the parsers never panic, and what they
//! accept is well formed (absolute targets other than `/`, env names without whitespace).
#![no_main]

use engine::runtime::env::{parse_env_arg, parse_env_file};
use engine::volume::spec::{parse_mount, parse_volume};
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
});
