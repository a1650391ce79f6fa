//! Any bytes as `--security-opt` entries (one per line) and as a seccomp profile in Docker's
//! format: the options parse or are refused, a profile that parses validates and compiles for
//! any capability set, architecture and kernel, and nothing panics.
#![no_main]

use berth_api::opts::security;
use engine::runtime::seccomp::{Profile, Target, compile};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let entries: Vec<String> = text.lines().take(64).map(str::to_string).collect();
    if let Ok(o) = security::parse(&entries) {
        if let security::Seccomp::Profile(p) = o.seccomp {
            let _ = Profile::parse(&p);
        }
    }
    if let Ok(p) = Profile::parse(&text) {
        let caps = ["CAP_SYS_ADMIN".to_string(), "CAP_CHOWN".to_string()];
        let n = data.len();
        for (arch, caps) in [("amd64", &caps[..]), ("s390x", &caps[..1]), ("arm64", &[][..])] {
            let v = compile(
                &p,
                &Target {
                    caps,
                    arch,
                    kernel: ((n % 7) as u32, (n % 20) as u32),
                },
            );
            assert!(v["syscalls"].as_array().is_some_and(|a| a.len() <= p.syscalls.len()));
        }
    }
});
