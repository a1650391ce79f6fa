//! Any bytes as berthd's daemon.json, merged with no flags and with flags that overlap it:
//! parsing and merging never panic, and a merge that succeeds keeps at most one Unix socket and
//! one TCP listener, the TCP one only with every TLS file.
#![no_main]

use berthd::config::{Flags, merge, parse_file};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(file) = parse_file("daemon.json", text) else {
        return;
    };
    let with_flags = Flags {
        hosts: vec!["unix:///run/berth-fuzz.sock".into()],
        tlsverify: Some(true),
        ..Flags::default()
    };
    for flags in [Flags::default(), with_flags] {
        if let Ok(s) = merge(&flags, &file) {
            assert!(s.socket.is_absolute(), "{s:?}");
            if let Some(t) = &s.tcp {
                for p in [&t.ca, &t.cert, &t.key] {
                    assert!(!p.as_os_str().is_empty(), "{s:?}");
                }
            }
        }
    }
});
