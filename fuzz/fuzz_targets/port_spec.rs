//! Any text as a `-p` specification: parsing never panics, and whatever parses prints back to a
//! specification that parses to the same value, and expands to a bounded list of mappings.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portproxy::PortSpec;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(spec) = text.parse::<PortSpec>() {
        let again: PortSpec = spec.to_string().parse().expect("printed spec must parse");
        assert_eq!(again, spec);
        let m = spec.mappings("172.17.0.2".parse().unwrap());
        assert!(!m.is_empty() && m.len() <= 2 * 65535);
    }
});
