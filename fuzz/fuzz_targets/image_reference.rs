//! Any text as an image reference: the parser never panics, and what it accepts prints back to
//! a reference that parses to the same value.
#![no_main]

use engine::image::reference::Reference;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(r) = text.parse::<Reference>() {
        let again: Reference = r.to_string().parse().expect("a printed reference parses");
        assert_eq!(again, r);
        assert!(!r.registry.is_empty() && !r.repository.is_empty());
        assert!(r.tag.is_some() || r.digest.is_some());
    }
});
