//! Any bytes as what reaches a shim's attach socket or leaves it: the request line, detach-key
//! specifications, framed output and input through the detach matcher. Nothing panics; a
//! request that parses prints as a line that parses to itself; the matcher never invents bytes.
#![no_main]

use berth_api::stream::demux;
use engine::runtime::attach::{DetachMatcher, Request, parse_detach_keys};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = demux(data);
    let text = String::from_utf8_lossy(data);
    if let Ok(r) = Request::parse(&text) {
        let line = r.line();
        assert_eq!(Request::parse(line.trim_end()).as_ref(), Ok(&r));
    }
    if let Ok(keys) = parse_detach_keys(&text) {
        assert!(!keys.is_empty());
    }
    let (keys, input) = data.split_at(data.len().min(2));
    let mut m = DetachMatcher::new(keys.to_vec());
    let mut out = Vec::new();
    let detached = m.feed(input, &mut out);
    assert!(out.len() <= input.len());
    if !detached {
        assert!(out.len() + keys.len() >= input.len());
    }
});
